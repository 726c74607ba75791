//! Large plugins: from a file landing in a running weir's plugins folder to
//! that version serving calls, and to its optimised build taking over. Each
//! `--foreign` file is dropped (written beside, then renamed in, as a
//! deploy tool would) into a fresh weir with an empty compile cache.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use super::harness::Running;
use super::{BenchArgs, row};

pub(super) async fn tiered(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.foreign.is_empty(),
        "--only tiered times the --foreign plugin files; give at least one"
    );
    let client = reqwest::Client::new();
    for path in &args.foreign {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("a plugin file name")?;
        let weir = Running::start("", &args.plugins_dir).await?;
        let plugins = weir.dir().join("plugins");
        std::fs::write(plugins.join(".landing"), &bytes)?;
        let landed = Instant::now();
        std::fs::rename(
            plugins.join(".landing"),
            plugins.join(format!("{name}.wasm")),
        )?;
        let mut in_effect = None;
        let optimised = loop {
            anyhow::ensure!(
                landed.elapsed() < Duration::from_secs(120),
                "{name} was not in effect within 120 s"
            );
            let list: serde_json::Value = client
                .get(format!("{}/v1/plugins", weir.url))
                .send()
                .await?
                .json()
                .await?;
            let serving = list["plugins"].as_array().into_iter().flatten().find(|p| {
                p["name"] == name && p["sha256"] == sha.as_str() && p["state"] == "ready"
            });
            if let Some(p) = serving {
                let at = in_effect
                    .get_or_insert_with(|| (landed.elapsed(), p["compiler"].clone()))
                    .clone();
                if p["compiler"] == "cranelift" {
                    break (landed.elapsed(), at);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        weir.stop().await?;
        let (cranelift, (first, compiler)) = optimised;
        row(
            &format!(
                "large plugin {name} ({} KB): landed -> in effect",
                bytes.len() / 1024
            ),
            format!("{:.2} s", first.as_secs_f64()),
            format!("on {}", compiler.as_str().unwrap_or("?")),
            None,
        );
        row(
            "  landed -> optimised (Cranelift) build swapped in",
            format!("{:.2} s", cranelift.as_secs_f64()),
            String::new(),
            None,
        );
    }
    Ok(())
}

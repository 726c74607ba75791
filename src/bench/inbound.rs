//! Inbound: GitHub-signed requests at `/in/{source}`, each verified
//! (HMAC-SHA256 of the body) and committed before its `202`, then routed to
//! a webhook; beside the same client posting the same bodies straight to
//! the sink.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};

use super::harness::{Post, Running, Sink, blast, blast_requests, own_cpu};
use super::{BenchArgs, row};

const SECRET: &str = "bench inbound secret";

fn signed(template: &serde_json::Value, n: usize) -> Vec<Post> {
    (0..n)
        .map(|i| {
            // The sender's body is the event's `data` (what app_scope reads).
            let mut data = template["data"].clone();
            data["n"] = serde_json::Value::from(i);
            let body = data.to_string();
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET.as_bytes())
                .expect("any key length");
            mac.update(body.as_bytes());
            let sig = hex::encode(mac.finalize().into_bytes());
            Post {
                body,
                headers: vec![
                    ("x-hub-signature-256", format!("sha256={sig}")),
                    ("x-github-event", "record.create".into()),
                    ("x-github-delivery", format!("gh-{i}")),
                    ("content-type", "application/json".into()),
                ],
            }
        })
        .collect()
}

pub(super) async fn inbound(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let sink = Sink::default();
    let url = sink.start().await?;
    let n = args.events;
    let requests = Arc::new(signed(template, n));
    let bodies: Vec<String> = requests.iter().map(|r| r.body.clone()).collect();
    let own0 = own_cpu();
    let ceiling = blast(&url, Arc::new(bodies), args.concurrency).await?;
    let ceiling_cpu = (own_cpu() - own0) * 1e6 / n as f64;
    let ceiling_rate = n as f64 / ceiling.as_secs_f64();
    sink.count.store(0, Ordering::Relaxed);

    let config = format!(
        "[[sources]]\nid = \"gh\"\nverify = \"github\"\nsecrets = [\"{SECRET}\"]\n\n{}",
        super::webhook("bench", &url, args.concurrency)
    );
    let weir = Running::start(&config, &args.plugins_dir).await?;
    let cpu0 = weir.cpu();
    let started = Instant::now();
    let caught = blast_requests(&format!("{}/in/gh", weir.url), requests, args.concurrency).await?;
    sink.wait_for(n, Duration::from_secs(600)).await?;
    let total = started.elapsed();
    let weir_cpu = (weir.cpu() - cpu0) * 1e6 / n as f64;
    weir.stop().await?;
    let caught_rate = n as f64 / caught.as_secs_f64();
    row(
        &format!("inbound: caught (verified, durable 202s), {n} requests"),
        format!("{caught_rate:.0} req/s"),
        format!("{ceiling_rate:.0} req/s"),
        Some(caught_rate / ceiling_rate),
    );
    let rate = n as f64 / total.as_secs_f64();
    row(
        "  caught, routed and delivered (+ app_scope)",
        format!("{rate:.0} ev/s"),
        String::new(),
        Some(rate / ceiling_rate),
    );
    super::cpu_row(weir_cpu, Some(ceiling_cpu));
    Ok(())
}

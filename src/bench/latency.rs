//! Latency: ingest ack to arrival, alone and beside hostile plugins.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::harness::{Running, Sink, event_bodies};
use super::{BenchArgs, cpu_row, row, webhook};

pub(super) async fn latency(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let rate = 1000;
    let (p50, p99, cpu) = ack_to_arrival(args, template, rate, 5, "", &[]).await?;
    row(
        &format!("latency at {rate} ev/s: ingest ack -> sink (p50 / p99)"),
        format!("{:.1} ms", p50.as_secs_f64() * 1e3),
        format!("p99 {:.1} ms", p99.as_secs_f64() * 1e3),
        None,
    );
    cpu_row(cpu, None);
    Ok(())
}

/// A healthy webhook's latency alone, then beside three webhooks whose
/// plugins spin to their deadline, blow their memory limit or trap on every
/// event: what the neighbours cost it, against their 50 ms time budget.
pub(super) async fn hostile(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let rate = 20;
    let names = &args.hostile;
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| args.hostile_dir.join(format!("{n}.wasm")))
        .collect();
    let neighbours: String = names
        .iter()
        .map(|n| {
            format!(
                "[[webhooks]]\nid = \"{}\"\nurl = \"https://example.com/never\"\n\
                 [[webhooks.plugins]]\nname = \"{n}\"\non_error = \"hold\"\n\n",
                n.replace('_', "-")
            )
        })
        .collect();
    let seconds = 15;
    let (alone50, alone99, _) = ack_to_arrival(args, template, rate, seconds, "", &[]).await?;
    let (with50, with99, _) =
        ack_to_arrival(args, template, rate, seconds, &neighbours, &files).await?;
    row(
        &format!("hostile neighbours, {rate} ev/s for {seconds} s: healthy webhook alone"),
        format!("{:.1} ms p50", alone50.as_secs_f64() * 1e3),
        format!("p99 {:.1} ms", alone99.as_secs_f64() * 1e3),
        None,
    );
    row(
        &format!("  beside webhooks with {}", names.join(", ")),
        format!("{:.1} ms p50", with50.as_secs_f64() * 1e3),
        format!("p99 {:.1} ms", with99.as_secs_f64() * 1e3),
        None,
    );
    Ok(())
}

/// Posts one event at a time at `rate` per second for `seconds` to a webhook with
/// `app_scope` (plus `extra_hooks`) and returns the p50 and p99 of ingest
/// ack -> arrival at the sink, and weir's CPU per event (µs).
async fn ack_to_arrival(
    args: &BenchArgs,
    template: &serde_json::Value,
    rate: u64,
    seconds: u64,
    extra_hooks: &str,
    extra_plugins: &[PathBuf],
) -> anyhow::Result<(Duration, Duration, f64)> {
    let sink = Sink::default();
    sink.record_times.store(true, Ordering::Relaxed);
    let url = sink.start().await?;
    let config = format!("{}{extra_hooks}", webhook("lat", &url, args.concurrency));
    let weir = Running::start_with(&config, &args.plugins_dir, extra_plugins).await?;
    let client = reqwest::Client::new();
    let cpu0 = weir.cpu();
    let n = (rate * seconds) as usize;
    let bodies = event_bodies(template, n, "l");
    let acks = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::new();
    for body in bodies {
        tick.tick().await;
        let (client, url, acks) = (
            client.clone(),
            format!("{}/v1/events", weir.url),
            acks.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let id = body["id"].as_str().unwrap_or_default().to_owned();
            let r = client.post(url).json(&body).send().await;
            if matches!(r, Ok(ref r) if r.status() == 202) {
                acks.lock().expect("acks").push((id, Instant::now()));
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    sink.wait_for(n, Duration::from_secs(120)).await?;
    let cpu = (weir.cpu() - cpu0) * 1e6 / n as f64;
    weir.stop().await?;
    let arrivals: std::collections::HashMap<String, Instant> =
        sink.times.lock().expect("times").iter().cloned().collect();
    let mut lat: Vec<Duration> = acks
        .lock()
        .expect("acks")
        .iter()
        .filter_map(|(id, acked)| {
            arrivals
                .get(id)
                .map(|a| a.saturating_duration_since(*acked))
        })
        .collect();
    anyhow::ensure!(!lat.is_empty(), "no event arrived");
    lat.sort();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    Ok((pct(50), pct(99), cpu))
}

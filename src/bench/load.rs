//! Memory and load: idle webhooks, overload, and a large backlog.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::harness::{RssWatch, Running, Shape, Sink, blast, event_bodies, rss_kib_of};
use super::{BenchArgs, row, webhook};

pub(super) async fn idle_memory(args: &BenchArgs) -> anyhow::Result<()> {
    let config: String = (0..1000)
        .map(|i| webhook(&format!("idle{i}"), "https://example.com/hook", 32))
        .collect();
    let weir = Running::start(&config, &args.plugins_dir).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = rss_kib_of(weir.pid());
    weir.stop().await?;
    row(
        "memory: 1,000 webhooks configured, idle (weir's RSS)",
        format!("{:.0} MB", during as f64 / 1024.0),
        String::new(),
        None,
    );
    Ok(())
}

/// Producers offering twice what ingest can commit: weir must answer 429
/// with `Retry-After` for what it cannot take, keep memory bounded, and
/// deliver everything it accepted.
pub(super) async fn overload(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let sink = Sink::default();
    let url = sink.start().await?;
    let weir = Running::start(&webhook("over", &url, args.concurrency), &args.plugins_dir).await?;
    let ingest_url = format!("{}/v1/events", weir.url);
    // Capacity: closed-loop producers, as fast as durable 202s come back.
    let n = args.events;
    let batches: Vec<String> = event_bodies(template, n, "cap")
        .chunks(args.batch)
        .map(|c| serde_json::Value::Array(c.to_vec()).to_string())
        .collect();
    let took = blast(&ingest_url, Arc::new(batches), args.concurrency).await?;
    let capacity = n as f64 / took.as_secs_f64();
    // Open loop at twice that for 5 s: requests go out on a clock, whatever
    // comes back.
    let offered_rate = 2.0 * capacity;
    let seconds = 5.0;
    let requests = (offered_rate * seconds / args.batch as f64) as usize;
    let interval = Duration::from_secs_f64(seconds / requests as f64);
    let client = reqwest::Client::new();
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    let retry_after_ok = Arc::new(AtomicUsize::new(0));
    let others = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let watch = RssWatch::start(weir.pid());
    let started = Instant::now();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(requests);
    let shape = Shape::new(template);
    for i in 0..requests {
        tick.tick().await;
        let body = shape.batch("over", i * args.batch, args.batch);
        let (client, url) = (client.clone(), ingest_url.clone());
        let (accepted, refused, other, retry_after_ok, others) = (
            accepted.clone(),
            refused.clone(),
            other.clone(),
            retry_after_ok.clone(),
            others.clone(),
        );
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match r.map(|r| (r.status().as_u16(), r.headers().contains_key("retry-after"))) {
                Ok((202, _)) => {
                    accepted.fetch_add(batch, Ordering::Relaxed);
                }
                Ok((429 | 503, has_retry_after)) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    if has_retry_after {
                        retry_after_ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
                unexpected => {
                    other.fetch_add(1, Ordering::Relaxed);
                    let mut seen = others.lock().expect("others");
                    if seen.len() < 3 {
                        seen.push(format!("{unexpected:?}"));
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let offered_for = started.elapsed();
    let accepted = accepted.load(Ordering::Relaxed);
    // Nothing accepted is lost: all of it (and the capacity run) arrives.
    sink.wait_for(n + accepted, Duration::from_secs(900))
        .await?;
    let peak = watch.peak_mb();
    drop(watch);
    weir.stop().await?;
    let refused = refused.load(Ordering::Relaxed);
    for o in others.lock().expect("others").iter() {
        println!("  (unexpected answer: {o})");
    }
    row(
        &format!(
            "overload: offered {:.0} ev/s, 2x ingest capacity",
            requests as f64 * args.batch as f64 / offered_for.as_secs_f64()
        ),
        format!("{:.0} ev/s in", accepted as f64 / offered_for.as_secs_f64()),
        format!("capacity {capacity:.0} ev/s"),
        None,
    );
    row(
        "  refused with 429/503 (with Retry-After) / other answers",
        format!("{refused} ({})", retry_after_ok.load(Ordering::Relaxed)),
        format!("{} other", other.load(Ordering::Relaxed)),
        None,
    );
    row(
        "  accepted events delivered; weir's peak RSS",
        format!("{accepted} of {accepted}"),
        format!("{peak:.0} MB"),
        None,
    );
    Ok(())
}

/// A subscriber down while a backlog of `--backlog` deliveries builds, then
/// back: peak memory while it builds, and how fast it drains.
pub(super) async fn backlog(args: &BenchArgs, template: &serde_json::Value) -> anyhow::Result<()> {
    let sink = Sink::default();
    sink.down.store(true, Ordering::Relaxed);
    let url = sink.start().await?;
    let weir = Running::start(&webhook("down", &url, args.concurrency), &args.plugins_dir).await?;
    let n = args.backlog;
    let watch = RssWatch::start(weir.pid());
    let started = Instant::now();
    // Bodies are made a chunk at a time so the producer stays small.
    let shape = Shape::new(template);
    let chunk = 100_000;
    for first in (0..n).step_by(chunk) {
        let batches: Vec<String> = (first..(first + chunk).min(n))
            .step_by(1000)
            .map(|from| shape.batch("b", from, 1000.min(n - from)))
            .collect();
        blast(&format!("{}/v1/events", weir.url), Arc::new(batches), 4).await?;
    }
    let built = started.elapsed();
    let build_peak = watch.peak_mb();
    // Down for at least 30 s from its first refusal: an outage, not a blip.
    let first = *sink
        .first_refusal
        .get()
        .context("the subscriber saw no attempt")?;
    tokio::time::sleep(Duration::from_secs(31).saturating_sub(first.elapsed())).await;
    let back = Instant::now();
    sink.down.store(false, Ordering::Relaxed);
    sink.wait_for(n, Duration::from_secs(3600)).await?;
    let drained = back.elapsed();
    let peak = watch.peak_mb();
    drop(watch);
    weir.stop().await?;
    row(
        &format!("backlog: {n} pending for a down subscriber, built in"),
        format!("{:.1} s", built.as_secs_f64()),
        format!("{:.0} ev/s", n as f64 / built.as_secs_f64()),
        None,
    );
    row(
        "  weir's peak RSS while it builds / overall",
        format!("{build_peak:.0} MB"),
        format!("{peak:.0} MB"),
        None,
    );
    row(
        "  drain once the subscriber is back",
        format!("{:.0} dl/s", n as f64 / drained.as_secs_f64()),
        format!("{:.1} s", drained.as_secs_f64()),
        None,
    );
    Ok(())
}

//! The export never holds up the work that makes spans, whatever the
//! collector does. (What reaches a working collector is tested end to end
//! in `tests/telemetry.rs`.)

use std::time::{Duration, Instant};

use super::*;
use crate::config::telemetry::{RawTelemetry, resolve};
use crate::metrics::Metrics;

fn config(endpoint: &str) -> TelemetryConfig {
    resolve(RawTelemetry {
        otlp_endpoint: endpoint.into(),
        ..RawTelemetry::default()
    })
    .expect("valid")
}

fn event(i: usize) -> Event {
    Event {
        id: format!("evt_{i}"),
        event_type: "record.create".into(),
        owner_id: None,
        data: "{}".into(),
        occurred_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

/// Ends `n` root spans as one ingest call would; returns how long it took.
fn ingest(t: &Telemetry, n: usize) -> Duration {
    let started = Instant::now();
    let mut spans = t.ingest(IngestSource::Api);
    for i in 0..n {
        spans.event(&event(i), 1, SystemTime::now(), None);
    }
    spans.stored(&vec![Ingested::Stored(Vec::new()); n]);
    started.elapsed()
}

fn count(m: &Metrics, result: &str) -> u64 {
    m.trace_spans.with_label_values(&[result]).get()
}

#[test]
fn off_without_an_endpoint() {
    let m = Metrics::new();
    let t = Telemetry::start(&TelemetryConfig::default(), "n1", &m).expect("starts");
    assert!(t.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_costs_spans_not_time_or_memory() {
    // Accepts connections and reads nothing: every export hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (hold_tx, _hold_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let _ = hold_tx.send(sock);
        }
    });
    let m = Metrics::new();
    let t = Telemetry::start(&config(&format!("http://{addr}")), "n1", &m)
        .unwrap()
        .expect("on");
    let extra = 1000;
    let took = ingest(&t, export::QUEUE + export::BATCH + extra);
    assert!(took < Duration::from_secs(2), "ending spans took {took:?}");
    let dropped = count(&m, "dropped_queue_full");
    assert!(dropped >= extra as u64, "only {dropped} dropped");
    assert_eq!(count(&m, "exported"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_is_counted_and_shutdown_does_not_hang() {
    // A port nothing listens on: connections are refused at once.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let m = Metrics::new();
    let t = Telemetry::start(&config(&format!("http://{addr}")), "n1", &m)
        .unwrap()
        .expect("on");
    ingest(&t, 10);
    let started = Instant::now();
    t.shutdown().await;
    assert!(
        started.elapsed() < FLUSH_DEADLINE,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(count(&m, "dropped_export_failed"), 10);
    assert_eq!(count(&m, "exported"), 0);
}

//! Getting finished spans to the collector without ever holding up the work
//! that made them: a span ends into a bounded queue (`try_send`; a full queue
//! drops the span and counts it), and one task sends batches over OTLP/HTTP,
//! each with a deadline. A collector that is down or slow costs spans, never
//! delivery latency or memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};
use prometheus::IntCounterVec;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::OtlpEndpoint;

/// Finished spans waiting for export, at most. Past it spans are dropped.
pub const QUEUE: usize = 4096;
/// Spans per OTLP request, at most.
pub const BATCH: usize = 512;
/// How long a span may wait for others to share its request.
const LINGER: Duration = Duration::from_secs(1);
/// One export request's deadline, connecting included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sending half of the queue; `None` once shutdown began.
pub(super) type Sender = Arc<Mutex<Option<mpsc::Sender<SpanData>>>>;

/// The SDK's span processor: hands finished spans to the queue.
#[derive(Debug)]
pub(super) struct Enqueue {
    tx: Sender,
    /// `weir_trace_spans_total{result}`.
    spans: IntCounterVec,
}

impl SpanProcessor for Enqueue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let sent = match &*self.tx.lock().expect("span queue") {
            Some(tx) => tx.try_send(span).is_ok(),
            None => false,
        };
        if !sent {
            self.spans.with_label_values(&["dropped_queue_full"]).inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.tx.lock().expect("span queue").take();
        Ok(())
    }
}

/// The running export: the processor to install and the task to await.
pub(super) struct Pipeline {
    pub processor: Enqueue,
    pub closer: Sender,
    pub task: tokio::task::JoinHandle<()>,
}

/// Builds the OTLP/HTTP (protobuf) exporter for `endpoint` and starts the
/// task that feeds it. Must run inside the tokio runtime.
pub(super) fn start(
    endpoint: &OtlpEndpoint,
    resource: &opentelemetry_sdk::Resource,
    spans: IntCounterVec,
) -> anyhow::Result<Pipeline> {
    use anyhow::Context as _;
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .connect_timeout(EXPORT_TIMEOUT / 2)
        .build()
        .context("building the OTLP HTTP client")?;
    let mut headers = std::collections::HashMap::new();
    if let Some(auth) = endpoint.basic_auth() {
        headers.insert("authorization".to_owned(), auth);
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(endpoint.traces_url())
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(client)
        .with_headers(headers)
        .build()
        .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
    exporter.set_resource(resource);
    let (tx, rx) = mpsc::channel(QUEUE);
    let closer: Sender = Arc::new(Mutex::new(Some(tx)));
    let task = tokio::spawn(export_loop(
        rx,
        exporter,
        spans.clone(),
        endpoint.to_string(),
    ));
    Ok(Pipeline {
        processor: Enqueue {
            tx: closer.clone(),
            spans,
        },
        closer,
        task,
    })
}

/// Sends batches until the queue is closed and empty.
async fn export_loop(
    mut rx: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    spans: IntCounterVec,
    shown: String,
) {
    let mut failing = false;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            tokio::select! {
                n = rx.recv_many(&mut batch, room) => if n == 0 { break },
                _ = &mut linger => break,
            }
        }
        let n = batch.len() as u64;
        let sent =
            tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(std::mem::take(&mut batch)))
                .await
                .map_err(|_| "timed out".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()));
        batch = Vec::with_capacity(BATCH);
        match sent {
            Ok(()) => {
                spans.with_label_values(&["exported"]).inc_by(n);
                if failing {
                    failing = false;
                    info!(collector = %shown, "trace export works again");
                }
            }
            Err(e) => {
                spans
                    .with_label_values(&["dropped_export_failed"])
                    .inc_by(n);
                // Once per outage, not once per batch.
                if !failing {
                    failing = true;
                    warn!(collector = %shown, error = %e, dropped = n, "trace export failed; spans are dropped until it works again");
                }
            }
        }
    }
}

//! OpenTelemetry traces: one trace per event, from ingest through each
//! webhook's plugin chain to each delivery attempt, whichever node does it.
//!
//! Off unless `[telemetry] otlp_endpoint` is set; then the server holds one
//! [`Telemetry`] and the stages ask it for spans. Off, they hold `None` and
//! build nothing. Trace ids come from the stored event ([`ids`]), so no node
//! needs another's state; spans leave through a bounded queue ([`export`]).
//! Spans are made with the OpenTelemetry API directly, per server rather
//! than through a global subscriber, so several servers in one process (the
//! tests' clusters) each export as their own node.

mod export;
pub mod ids;

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Link, Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::config::{OnError, TelemetryConfig};
use crate::event::Event;
use crate::plugin::{PluginError, Verdict};
use crate::store::{AfterAttempt, Attempt, Ingested, Render};
pub use ids::{EventTrace, parse_traceparent};
/// A span named by a `traceparent`, for linking to it.
pub use opentelemetry::trace::SpanContext;

/// How long shutdown waits for the last spans to reach the collector.
const FLUSH_DEADLINE: Duration = Duration::from_secs(12);

/// Where an event came in: the `weir.ingest.source` of its root span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestSource {
    /// `POST /v1/events`.
    Api,
    /// A request caught at `/in/{source}`.
    Inbound,
    /// `POST /v1/webhooks/{id}/test`.
    Test,
}

impl IngestSource {
    fn as_str(self) -> &'static str {
        match self {
            IngestSource::Api => "api",
            IngestSource::Inbound => "inbound",
            IngestSource::Test => "test",
        }
    }
}

/// This server's tracer and its export.
pub struct Telemetry {
    tracer: SdkTracer,
    /// Kept to shut down: spans started after that are not recorded.
    provider: SdkTracerProvider,
    /// Every span's `weir.node`.
    node: String,
    /// Emptied at shutdown, which closes the queue: the export task then
    /// sends what is left and ends.
    closer: export::Sender,
    /// The export task, awaited (with a deadline) at shutdown.
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Telemetry {
    /// Starts exporting when `config` names an endpoint; `None` otherwise.
    /// Must run inside the tokio runtime.
    pub fn start(
        config: &TelemetryConfig,
        node: &str,
        metrics: &crate::metrics::Metrics,
    ) -> anyhow::Result<Option<Telemetry>> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(None);
        };
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attributes([
                KeyValue::new("service.instance.id", node.to_owned()),
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            ])
            .build();
        let pipeline = export::start(endpoint, &resource, metrics.trace_spans.clone())?;
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(pipeline.processor)
            .build();
        let tracer = provider.tracer("weir");
        tracing::info!(collector = %endpoint, service = %config.service_name, "exporting traces over OTLP/HTTP");
        Ok(Some(Telemetry {
            tracer,
            provider,
            node: node.to_owned(),
            closer: pipeline.closer,
            task: Mutex::new(Some(pipeline.task)),
        }))
    }

    /// Stops taking spans and waits (up to a deadline) until those queued
    /// have been sent.
    pub async fn shutdown(&self) {
        let _ = self.provider.shutdown();
        self.closer.lock().expect("span queue").take();
        let task = self.task.lock().expect("export task").take();
        if let Some(task) = task
            && tokio::time::timeout(FLUSH_DEADLINE, task).await.is_err()
        {
            tracing::warn!("the last spans did not reach the collector before the deadline");
        }
    }

    /// Root spans for the events of one ingest call, sent once stored.
    pub fn ingest(&self, source: IngestSource) -> IngestSpans<'_> {
        IngestSpans {
            telemetry: self,
            source,
            events: Vec::new(),
        }
    }

    /// The span of `webhook`'s plugin chain over `event`.
    pub fn chain(&self, event: &Event, webhook: &str, delivery: &str) -> ChainSpan<'_> {
        let span = self
            .tracer
            .span_builder("chain")
            .with_attributes(self.child_attributes(event, webhook, delivery))
            .start_with_context(&self.tracer, &root(event));
        ChainSpan {
            telemetry: self,
            cx: Context::new().with_span(span),
            webhook: webhook.to_owned(),
            delivery: delivery.to_owned(),
        }
    }

    /// The span of one HTTP attempt (`number` counts from 1).
    pub fn attempt(
        &self,
        event: &Event,
        webhook: &str,
        delivery: &str,
        number: u32,
        host: Option<&str>,
    ) -> AttemptSpan {
        let mut attributes = self.child_attributes(event, webhook, delivery);
        attributes.push(KeyValue::new("weir.attempt", i64::from(number)));
        attributes.push(KeyValue::new("http.request.method", "POST"));
        if let Some(host) = host {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        let span = self
            .tracer
            .span_builder("attempt")
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &root(event));
        let trace = EventTrace::of(event);
        let traceparent = trace.traceparent(span.span_context().span_id());
        AttemptSpan {
            cx: Context::new().with_span(span),
            traceparent,
        }
    }

    fn child_attributes(&self, event: &Event, webhook: &str, delivery: &str) -> Vec<KeyValue> {
        vec![
            KeyValue::new("weir.node", self.node.clone()),
            KeyValue::new("weir.webhook", webhook.to_owned()),
            KeyValue::new("weir.delivery.id", delivery.to_owned()),
            KeyValue::new("weir.event.id", event.id.clone()),
        ]
    }
}

/// A context whose span is `event`'s root, wherever it was made.
fn root(event: &Event) -> Context {
    Context::new().with_remote_span_context(EventTrace::of(event).root_context())
}

/// The root spans of one ingest call, collected before the events move
/// into the store.
pub struct IngestSpans<'a> {
    telemetry: &'a Telemetry,
    source: IngestSource,
    events: Vec<Pending>,
}

/// A root span to send if its event is stored.
struct Pending {
    trace: EventTrace,
    attributes: Vec<KeyValue>,
    /// When the event arrived: the span's start.
    arrived: SystemTime,
    /// The producer's span, from the `traceparent` it sent.
    link: Option<SpanContext>,
}

impl IngestSpans<'_> {
    /// Notes an event about to be stored, matched to `webhooks` webhooks.
    pub fn event(
        &mut self,
        event: &Event,
        webhooks: usize,
        arrived: SystemTime,
        link: Option<SpanContext>,
    ) {
        let mut attributes = vec![
            KeyValue::new("weir.node", self.telemetry.node.clone()),
            KeyValue::new("weir.event.id", event.id.clone()),
            KeyValue::new("weir.event.type", event.event_type.clone()),
            KeyValue::new("weir.ingest.source", self.source.as_str()),
            KeyValue::new("weir.webhooks", webhooks as i64),
        ];
        if let Some(owner) = &event.owner_id {
            attributes.push(KeyValue::new("weir.owner_id", owner.clone()));
        }
        self.events.push(Pending {
            trace: EventTrace::of(event),
            attributes,
            arrived,
            link,
        });
    }

    /// Sends the root span of each event the store kept; a duplicate has
    /// its root already. `outcomes` are in the order of [`Self::event`].
    pub fn stored(self, outcomes: &[Ingested]) {
        let tracer = &self.telemetry.tracer;
        let kind = match self.source {
            IngestSource::Api | IngestSource::Inbound => SpanKind::Server,
            IngestSource::Test => SpanKind::Internal,
        };
        for (p, outcome) in self.events.into_iter().zip(outcomes) {
            if !matches!(outcome, Ingested::Stored(_)) {
                continue;
            }
            let mut span = tracer
                .span_builder("ingest")
                .with_kind(kind.clone())
                .with_trace_id(p.trace.trace_id)
                .with_span_id(p.trace.root)
                .with_start_time(p.arrived)
                .with_attributes(p.attributes)
                .with_links(p.link.map(Link::with_context).into_iter().collect())
                .start_with_context(tracer, &Context::new());
            span.end();
        }
    }
}

/// One webhook's plugin chain over one event.
pub struct ChainSpan<'a> {
    telemetry: &'a Telemetry,
    /// Holds the chain's span: the parent of its plugin calls.
    cx: Context,
    webhook: String,
    delivery: String,
}

impl ChainSpan<'_> {
    /// The span of one call of plugin `name`.
    pub fn plugin(&self, name: &str) -> PluginSpan {
        let tracer = &self.telemetry.tracer;
        let span = tracer
            .span_builder("plugin")
            .with_attributes([
                KeyValue::new("weir.node", self.telemetry.node.clone()),
                KeyValue::new("weir.webhook", self.webhook.clone()),
                KeyValue::new("weir.delivery.id", self.delivery.clone()),
                KeyValue::new("weir.plugin", name.to_owned()),
            ])
            .start_with_context(tracer, &self.cx);
        PluginSpan {
            cx: Context::new().with_span(span),
        }
    }

    /// Ends the chain's span with what it made of the event.
    pub fn finish(self, outcome: &Render) {
        let span = self.cx.span();
        let (label, reason) = match outcome {
            Render::Deliver(_) => ("deliver", None),
            Render::Filtered(r) => ("filtered", Some(r)),
            Render::Held(r) => ("held", Some(r)),
        };
        span.set_attribute(KeyValue::new("weir.chain.outcome", label));
        if let Some(reason) = reason {
            span.set_attribute(KeyValue::new("weir.chain.reason", reason.clone()));
        }
        if let Render::Held(r) = outcome {
            span.set_status(Status::error(r.clone()));
        }
        span.end();
    }
}

/// One plugin call.
pub struct PluginSpan {
    cx: Context,
}

impl PluginSpan {
    /// Ends the call's span with its verdict; a failure also records what
    /// `on_error` made of it.
    pub fn finish(self, result: &Result<Verdict, PluginError>, on_error: OnError) {
        let span = self.cx.span();
        match result {
            Ok(Verdict::Deliver(_)) => {
                span.set_attribute(KeyValue::new("weir.plugin.verdict", "deliver"))
            }
            Ok(Verdict::Drop(reason)) => {
                span.set_attribute(KeyValue::new("weir.plugin.verdict", "drop"));
                span.set_attribute(KeyValue::new("weir.plugin.reason", reason.clone()));
            }
            Err(e) => {
                let policy = match on_error {
                    OnError::Hold => "hold",
                    OnError::Skip => "skip",
                    OnError::Pass => "pass",
                };
                span.set_attribute(KeyValue::new("weir.plugin.verdict", "failure"));
                span.set_attribute(KeyValue::new("weir.plugin.on_error", policy));
                span.set_status(Status::error(e.to_string()));
            }
        }
        span.end();
    }
}

/// One HTTP attempt; its id travels in the request's `traceparent`.
pub struct AttemptSpan {
    cx: Context,
    traceparent: String,
}

impl AttemptSpan {
    /// `00-<event trace>-<this span>-01`.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// Ends the attempt's span with the subscriber's answer and what
    /// follows from it.
    pub fn finish(self, attempt: &Attempt, after: AfterAttempt) {
        let span = self.cx.span();
        let outcome = match after {
            AfterAttempt::Delivered => "delivered",
            AfterAttempt::Retry { .. } => "retrying",
            AfterAttempt::Dead => "dead",
        };
        span.set_attribute(KeyValue::new("weir.attempt.outcome", outcome));
        if let Some(status) = attempt.status {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if after != AfterAttempt::Delivered {
            let (kind, description): (Cow<'static, str>, String) =
                match (&attempt.error, attempt.status) {
                    (Some(e), _) => ("transport".into(), e.clone()),
                    (None, Some(s)) => (s.to_string().into(), format!("answered {s}")),
                    (None, None) => ("unknown".into(), "failed".into()),
                };
            span.set_attribute(KeyValue::new("error.type", kind));
            span.set_status(Status::error(description));
        }
        span.end();
    }
}

#[cfg(test)]
mod tests;

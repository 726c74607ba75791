//! Routing: which webhooks want an event, and what each of them is sent.
//!
//! Matching happens at ingest, inside the same commit as the event, so a 202
//! means the fan-out is durable. The plugin chain runs later, when the
//! deliverer first picks the delivery up, so a slow plugin never slows ingest.

pub mod glob;
pub mod table;

use crate::config::{OnError, Webhook};
use crate::event::Event;
use crate::plugin::{CallContext, Plugins, Verdict};
use crate::store::{PluginLog, Render, Rendered};
use crate::telemetry::{ChainSpan, Telemetry};

pub use table::Table;

/// What a webhook's plugin chain made of an event.
pub struct Chain {
    pub outcome: Render,
    /// What the plugins logged on the way.
    pub log: PluginLog,
    /// Whether a plugin delivered a body other than the one it was given,
    /// so the request's body is no longer the event's envelope.
    pub body_changed: bool,
}

/// Runs `hook`'s plugin chain over `event`: each plugin sees the original
/// event and the request the previous one produced; the first drop ends it.
/// With `telemetry`, a chain of plugins leaves a span, and each call one.
pub async fn render(
    plugins: &Plugins,
    hook: &Webhook,
    event: &Event,
    delivery: &str,
    telemetry: Option<&Telemetry>,
) -> Chain {
    let span = telemetry
        .filter(|_| !hook.plugins.is_empty())
        .map(|t| t.chain(event, &hook.id, delivery));
    let (mut log, mut body_changed) = (PluginLog::default(), false);
    let outcome = run_chain(
        plugins,
        hook,
        event,
        delivery,
        span.as_ref(),
        &mut log,
        &mut body_changed,
    )
    .await;
    if let Some(span) = span {
        span.finish(&outcome);
    }
    Chain {
        outcome,
        log,
        body_changed,
    }
}

async fn run_chain(
    plugins: &Plugins,
    hook: &Webhook,
    event: &Event,
    delivery: &str,
    span: Option<&ChainSpan<'_>>,
    log: &mut PluginLog,
    body_changed: &mut bool,
) -> Render {
    let snapshot = plugins.snapshot();
    let mut request = Rendered {
        body: event.envelope_json(),
        headers: Vec::new(),
    };
    for step in &hook.plugins {
        let ctx = CallContext {
            webhook: &hook.id,
            event: &event.id,
            delivery,
        };
        let call_span = span.map(|c| c.plugin(&step.name));
        let (result, lines) = plugins
            .call_capturing_logs(
                &snapshot,
                &step.name,
                event,
                &request,
                &step.config_json,
                &ctx,
            )
            .await;
        if let Some(call_span) = call_span {
            call_span.finish(&result, step.on_error);
        }
        log.extend(&step.name, lines);
        match result {
            Ok(Verdict::Deliver(next)) => {
                *body_changed |= next.body != request.body;
                request = next;
            }
            Ok(Verdict::Drop(reason)) => {
                return Render::Filtered(format!("{}: {reason}", step.name));
            }
            Err(failure) => {
                let why = format!("plugin {} failed: {failure}", step.name);
                tracing::warn!(webhook = %hook.id, event = %event.id, plugin = %step.name, error = %failure, policy = ?step.on_error, "plugin failure");
                match step.on_error {
                    OnError::Hold => return Render::Held(why),
                    OnError::Skip => return Render::Filtered(why),
                    OnError::Pass => {}
                }
            }
        }
    }
    Render::Deliver(request)
}

//! Turning caught requests into events, off the request path.
//!
//! One task per node takes pending requests in batches (leased to the node
//! where the store is shared), makes each one's events (by the source's
//! `type_from`/`id_from`, or its source plugin), ingests the events of the
//! whole batch in one call, and records what each request became. Event ids
//! are fixed by the request (the sender's delivery id, or the request's id
//! and the event's place), so a batch routed twice (a crash between the
//! ingest and the record, a lease that lapsed) is recognised by ingest's
//! dedup and stored once.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::normalise_type;
use crate::app::App;
use crate::config::InboundSource;
use crate::event::{Event, rfc3339};
use crate::ingest::DEDUP_WINDOW_MS;
use crate::ingest::envelope::{check_id, check_type};
use crate::plugin::{Incoming, MAX_BODY};
use crate::store::{CaughtRequest, InboundOutcome, InboundState, Ingested, NewEvent, StoreError};
use crate::telemetry::{IngestSource, SpanContext};

/// Requests routed per batch.
const BATCH: usize = 32;
/// How often to look without being woken: requests a dead node leased, and
/// any wake-up lost.
const POLL: Duration = Duration::from_secs(2);
/// After a store error, before trying again.
const BACKOFF: Duration = Duration::from_secs(1);

pub async fn run(app: Arc<App>, stop: CancellationToken) {
    loop {
        if stop.is_cancelled() {
            return;
        }
        let batch = match app.store.pending_inbound(BATCH).await {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "cannot read caught requests; retrying");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = app.inbound.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.cancelled() => return,
            }
            continue;
        }
        if let Err(e) = route_alone_on_failure(&app, batch).await {
            warn!(error = %e, "routing caught requests failed; they stay pending and are retried");
            tokio::select! {
                _ = tokio::time::sleep(BACKOFF) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// Routes a batch; if the store refuses it for a reason other than being
/// away, each request is routed alone, and one the store keeps refusing is
/// held with the reason, so one bad request cannot stop every source.
async fn route_alone_on_failure(app: &App, batch: Vec<CaughtRequest>) -> Result<(), StoreError> {
    let err = match route_batch(app, batch.clone()).await {
        Ok(()) => return Ok(()),
        Err(e @ (StoreError::Unavailable(_) | StoreError::Closed)) => return Err(e),
        Err(e) => e,
    };
    warn!(error = %err, requests = batch.len(), "a batch of caught requests failed; routing them one by one");
    for req in batch {
        let (seq, id, source) = (req.seq, req.id.clone(), req.source.clone());
        match route_batch(app, vec![req]).await {
            Ok(()) => {}
            Err(e @ (StoreError::Unavailable(_) | StoreError::Closed)) => return Err(e),
            Err(e) => {
                warn!(%source, request = %id, error = %e, "caught request held: the store refused its events");
                app.store
                    .finish_inbound(
                        vec![InboundOutcome {
                            seq,
                            state: InboundState::Held,
                            reason: Some(format!("its events could not be stored: {e}")),
                            events: Vec::new(),
                        }],
                        app.clock.now(),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

async fn route_batch(app: &App, batch: Vec<CaughtRequest>) -> Result<(), StoreError> {
    let sources = app.inbound.sources.load_full();
    let made = futures_util::future::join_all(batch.iter().map(|req| {
        let source = sources.get(&req.source).cloned();
        async move {
            match source {
                // An id given up and taken by another owner: what the
                // earlier source caught is not the new owner's to route.
                Some(source) if source.owner_id != req.tenant => Err(format!(
                    "source {:?} now belongs to another owner than when this request was caught",
                    req.source
                )),
                Some(source) => events_of(app, &source, req).await,
                None => Err(format!(
                    "source {:?} no longer exists; replay after declaring it again",
                    req.source
                )),
            }
        }
    }))
    .await;
    let table = app.hooks.load();
    let mut new_events = Vec::new();
    // With traces on: each event's arrival and its sender's span, in step
    // with `new_events`.
    let mut arrivals = Vec::new();
    let mut outcomes = Vec::new();
    for (req, result) in batch.iter().zip(made) {
        let (state, reason, ids) = match result {
            Ok(events) => {
                let ids = events.iter().map(|e| e.id.clone()).collect();
                if app.telemetry.is_some() {
                    arrivals.extend(std::iter::repeat_n(arrival(req), events.len()));
                }
                for event in events {
                    new_events.push(NewEvent {
                        webhooks: table.matching(&event),
                        event,
                    });
                }
                (InboundState::Routed, None, ids)
            }
            Err(reason) => {
                info!(source = %req.source, request = %req.id, %reason, "caught request held");
                (InboundState::Held, Some(reason), Vec::new())
            }
        };
        app.metrics
            .inbound_routed
            .with_label_values(&[req.source.as_str(), state.as_str()])
            .inc();
        outcomes.push(InboundOutcome {
            seq: req.seq,
            state,
            reason,
            events: ids,
        });
    }
    let now = app.clock.now();
    let mut woken = std::collections::HashSet::new();
    while !new_events.is_empty() {
        let rest = new_events.split_off(new_events.len().min(1000));
        let chunk = std::mem::replace(&mut new_events, rest);
        let traced = app.telemetry.as_deref().map(|t| {
            let mut spans = t.ingest(IngestSource::Inbound);
            for (e, (at, link)) in chunk.iter().zip(arrivals.drain(..chunk.len())) {
                spans.event(&e.event, e.webhooks.len(), at, link);
            }
            spans
        });
        let stored = app.store.ingest(chunk, now, DEDUP_WINDOW_MS).await?;
        if let Some(spans) = traced {
            spans.stored(&stored);
        }
        for outcome in stored {
            match outcome {
                Ingested::Stored(deliveries) => {
                    app.metrics.events_accepted.inc();
                    for d in deliveries {
                        if woken.insert(d.webhook.clone()) {
                            app.deliverer.notify(&d.webhook);
                        }
                    }
                }
                Ingested::Duplicate => app.metrics.events_duplicate.inc(),
            }
        }
    }
    app.store.finish_inbound(outcomes, now).await
}

/// When `req` was caught and the span its sender named in `traceparent`.
fn arrival(req: &CaughtRequest) -> (std::time::SystemTime, Option<SpanContext>) {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(req.received_at.max(0) as u64);
    let link = req
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("traceparent"))
        .and_then(|(_, value)| crate::telemetry::parse_traceparent(value));
    (at, link)
}

/// The events one caught request becomes, or why it is held.
async fn events_of(
    app: &App,
    source: &InboundSource,
    req: &CaughtRequest,
) -> Result<Vec<Event>, String> {
    let received = rfc3339(req.received_at);
    match &source.plugin {
        None => one_event(source, req, received).map(|e| vec![e]),
        Some(plugin) => {
            let (path, query) = match req.target.split_once('?') {
                Some((p, q)) => (p.to_owned(), q.to_owned()),
                None => (req.target.clone(), String::new()),
            };
            let incoming = Incoming {
                method: req.method.clone(),
                path,
                query,
                headers: req
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
                    .collect(),
                body: req.body.clone(),
            };
            let drafts = app
                .plugins
                .map_request(&plugin.name, &incoming, &plugin.config_json, &source.id)
                .await
                .map_err(|e| format!("plugin {} failed: {e}", plugin.name))?;
            drafts
                .into_iter()
                .enumerate()
                .map(|(i, d)| {
                    let id = d.id.unwrap_or_else(|| format!("{}.{i}", req.id));
                    check_id(&id).map_err(|e| format!("event {i}: id {e}"))?;
                    Ok(Event {
                        id,
                        event_type: d.event_type,
                        // A source's owner is every event's owner: its
                        // plugin cannot speak for another tenant.
                        owner_id: source.owner_id.clone().or(d.owner_id),
                        data: d.data,
                        occurred_at: d
                            .occurred_at
                            .filter(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
                            .unwrap_or_else(|| received.clone()),
                    })
                })
                .collect()
        }
    }
}

/// Without a plugin: the JSON body is the event's `data`.
fn one_event(
    source: &InboundSource,
    req: &CaughtRequest,
    received: String,
) -> Result<Event, String> {
    let text = std::str::from_utf8(&req.body).map_err(|_| {
        "the body is not UTF-8 JSON; a source without a plugin routes JSON bodies only".to_string()
    })?;
    let body: Value = serde_json::from_str(text).map_err(|e| {
        format!("the body is not JSON ({e}); a source without a plugin routes JSON bodies only")
    })?;
    // The checks a posted event's `data` gets.
    if text.len() > MAX_BODY {
        return Err(format!(
            "the body is {} bytes, over the {MAX_BODY} bytes an event's data may have",
            text.len()
        ));
    }
    crate::json::check_interoperable(text)
        .map_err(|e| format!("the body's JSON does not round-trip: {e}"))?;
    let headers = header_map(&req.headers);
    let Some(place) = &source.type_from else {
        return Err("the source has no type_from".into());
    };
    let raw_type = place
        .get(&headers, Some(&body))
        .ok_or_else(|| format!("no event type: {} is not in the request", place.describe()))?;
    let event_type = normalise_type(&raw_type);
    check_type(&event_type).map_err(|e| format!("event type from {}: {e}", place.describe()))?;
    let id = source
        .id_from
        .as_ref()
        .and_then(|p| p.get(&headers, Some(&body)))
        .filter(|id| check_id(id).is_ok())
        .unwrap_or_else(|| req.id.clone());
    Ok(Event {
        id,
        event_type,
        owner_id: source.owner_id.clone(),
        data: text.to_owned(),
        occurred_at: received,
    })
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in pairs {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(n.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            map.append(n, v);
        }
    }
    map
}

//! HTTP in: `POST /v1/events`. Parses the body, matches webhooks and answers
//! `202` only after the events and their deliveries are committed.

pub mod envelope;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::app::App;
use crate::error::ApiError;
use crate::store::{Ingested, NewEvent};
use crate::token::Scope;

/// How long a repeated `(owner_id, id)` is recognised as a retry.
pub const DEDUP_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// What a `429` asks producers to wait, in seconds.
const OVERLOAD_RETRY_AFTER: u32 = 1;

/// Backpressure: counts the events inside ingest (parsed and waiting for
/// their commit). A request whose events would take the count past
/// `[server] max_pending_events` is refused with `429` and `Retry-After`
/// rather than queued, so a producer faster than the disk sees it at once and
/// memory stays bounded. Once the count is at the limit, requests are refused
/// before their body is even read (and the connection is closed, since the
/// unread body would otherwise be taken for the next request).
#[derive(Default)]
pub struct Admission {
    pending: AtomicUsize,
}

/// Slots held by one request; released when it is answered.
pub struct Admitted<'a> {
    gate: &'a Admission,
    held: usize,
}

impl Admission {
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    fn is_full(&self, limit: usize) -> bool {
        self.pending() >= limit
    }

    /// Takes `n` slots if that stays within `limit`.
    fn admit(&self, n: usize, limit: usize) -> Option<Admitted<'_>> {
        let before = self.pending.fetch_add(n, Ordering::AcqRel);
        if before + n > limit {
            self.pending.fetch_sub(n, Ordering::AcqRel);
            return None;
        }
        Some(Admitted {
            gate: self,
            held: n,
        })
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.gate.pending.fetch_sub(self.held, Ordering::AcqRel);
    }
}

fn overloaded(limit: usize) -> ApiError {
    ApiError {
        retry_after: Some(OVERLOAD_RETRY_AFTER),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            format!(
                "over {limit} events are waiting to be stored; nothing of this request was stored, retry after {OVERLOAD_RETRY_AFTER}s"
            ),
        )
    }
}

#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = crate::api::EventsIn,
    responses((status = 202, body = crate::api::Accepted),
        (status = 400, body = crate::api::ErrorBody), (status = 401, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 413, body = crate::api::ErrorBody),
        (status = 415, body = crate::api::ErrorBody), (status = 429, body = crate::api::ErrorBody),
        (status = 503, body = crate::api::ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn post_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<crate::api::Accepted>), ApiError> {
    let received = std::time::SystemTime::now();
    let m = &app.metrics;
    let reject = |reason: &str| m.events_rejected.with_label_values(&[reason]).inc();
    if app.shutting_down.is_cancelled() {
        reject("shutting_down");
        return Err(ApiError::unavailable(
            "shutting_down",
            "weir is shutting down; retry shortly",
        ));
    }
    crate::api::require_json(&headers).inspect_err(|_| reject("unsupported_media_type"))?;
    let config = app.config.load_full();
    let principal = app
        .principal(&headers)
        .and_then(|p| p.require(Scope::EventsWrite).map(|()| p))
        .inspect_err(|_| reject("unauthorized"))?;
    let max_pending = config.server.max_pending_events;
    if app.pending_events.is_full(max_pending) {
        reject("overloaded");
        return Err(ApiError {
            close_connection: true,
            ..overloaded(max_pending)
        });
    }
    let limit = config.server.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        reject("too_large");
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body is over max_body_bytes ({limit} bytes)"),
        )
    })?;
    let now = app.clock.now();
    let mut events = envelope::parse_body(&bytes, now).map_err(|e| {
        reject("invalid");
        ApiError::bad_request("invalid_event", e.to_string())
    })?;
    if let Some(owner) = &principal.owner {
        own_events(&mut events, owner).inspect_err(|_| reject("forbidden_owner"))?;
    }
    // Held until the answer: the events count as pending until committed.
    let Some(_admitted) = app.pending_events.admit(events.len(), max_pending) else {
        reject("overloaded");
        return Err(overloaded(max_pending));
    };
    m.events_received.inc_by(events.len() as u64);
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let table = app.hooks.load();
    let producer = app.telemetry.as_ref().and_then(|_| {
        let value = headers.get("traceparent")?.to_str().ok()?;
        crate::telemetry::parse_traceparent(value)
    });
    let mut traced = app
        .telemetry
        .as_deref()
        .map(|t| t.ingest(crate::telemetry::IngestSource::Api));
    let batch = events
        .into_iter()
        .map(|event| {
            let webhooks = table.matching(&event);
            if let Some(spans) = &mut traced {
                spans.event(&event, webhooks.len(), received, producer.clone());
            }
            NewEvent { webhooks, event }
        })
        .collect();
    let stored = app
        .store
        .ingest(batch, now, DEDUP_WINDOW_MS)
        .await
        .inspect_err(|_| reject("store"))?;
    if let Some(spans) = traced {
        spans.stored(&stored);
    }
    // Wake each webhook's worker once per request, not once per delivery.
    let mut woken = std::collections::HashSet::new();
    for outcome in &stored {
        match outcome {
            Ingested::Stored(deliveries) => {
                m.events_accepted.inc();
                for d in deliveries {
                    if woken.insert(d.webhook.as_str()) {
                        app.deliverer.notify(&d.webhook);
                    }
                }
            }
            Ingested::Duplicate => m.events_duplicate.inc(),
        }
    }
    Ok((StatusCode::ACCEPTED, Json(crate::api::Accepted { ids })))
}

/// An owner-scoped token posts only its owner's events: a missing `owner_id`
/// becomes the owner, another owner's refuses the whole request.
fn own_events(events: &mut [crate::event::Event], owner: &str) -> Result<(), ApiError> {
    for (i, e) in events.iter_mut().enumerate() {
        match &e.owner_id {
            None => e.owner_id = Some(owner.to_owned()),
            Some(o) if o == owner => {}
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden_owner",
                    format!("event {i}: owner_id is not this token's owner; nothing was stored"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Admission;

    #[test]
    fn admission_holds_slots_until_the_request_is_answered() {
        let gate = Admission::default();
        let a = gate.admit(600, 1000).expect("room");
        assert_eq!(gate.pending(), 600);
        // 600 + 401 would pass the limit: refused, and nothing is kept of it.
        assert!(gate.admit(401, 1000).is_none());
        assert_eq!(gate.pending(), 600);
        let b = gate.admit(400, 1000).expect("exactly full");
        assert!(gate.is_full(1000));
        assert!(gate.admit(1, 1000).is_none());
        drop(a);
        assert_eq!(gate.pending(), 400);
        assert!(!gate.is_full(1000));
        drop(b);
        assert_eq!(gate.pending(), 0);
    }
}

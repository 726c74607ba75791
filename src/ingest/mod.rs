//! HTTP in: `POST /v1/events`. Parses the body, matches webhooks and answers
//! `202` only after the events and their deliveries are committed.

pub mod envelope;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::error::ApiError;
use crate::router::matching_webhooks;
use crate::server::{App, bearer_ok};
use crate::store::{Ingested, NewEvent};

/// How long a repeated `(owner_id, id)` is recognised as a retry.
pub const DEDUP_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// What a `429` asks producers to wait, in seconds.
const OVERLOAD_RETRY_AFTER: u32 = 1;

/// Backpressure: counts the events inside ingest (read, parsed or waiting for
/// their commit). Past `[server] max_pending_events` a request is refused at
/// once with `429` and `Retry-After` rather than queued, so a producer faster
/// than the disk sees it, and memory stays bounded. A request holds one slot
/// while its body is read, then one per event.
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

    fn admit(&self, n: usize, limit: usize) -> Option<Admitted<'_>> {
        let mut held = Admitted {
            gate: self,
            held: 0,
        };
        held.grow(n, limit).then_some(held)
    }
}

impl Admitted<'_> {
    /// Takes `n` more slots if that stays within `limit`.
    fn grow(&mut self, n: usize, limit: usize) -> bool {
        let before = self.gate.pending.fetch_add(n, Ordering::AcqRel);
        if before + n > limit {
            self.gate.pending.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        self.held += n;
        true
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

pub async fn post_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let m = &app.metrics;
    let reject = |reason: &str| m.events_rejected.with_label_values(&[reason]).inc();
    if app.shutting_down.is_cancelled() {
        reject("shutting_down");
        return Err(ApiError::unavailable(
            "shutting_down",
            "weir is shutting down; retry shortly",
        ));
    }
    let config = app.config.load_full();
    if let Some(token) = &config.server.ingest_token
        && !bearer_ok(&headers, token)
    {
        reject("unauthorized");
        return Err(ApiError::unauthorized());
    }
    let max_pending = config.server.max_pending_events;
    let Some(mut admitted) = app.pending_events.admit(1, max_pending) else {
        reject("overloaded");
        return Err(overloaded(max_pending));
    };
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
    let events = envelope::parse_body(&bytes, now).map_err(|e| {
        reject("invalid");
        ApiError::bad_request("invalid_event", e.to_string())
    })?;
    if !admitted.grow(events.len().saturating_sub(1), max_pending) {
        reject("overloaded");
        return Err(overloaded(max_pending));
    }
    m.events_received.inc_by(events.len() as u64);
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let batch = events
        .into_iter()
        .map(|event| NewEvent {
            webhooks: matching_webhooks(&config, &event),
            event,
        })
        .collect();
    let stored = app
        .store
        .ingest(batch, now, DEDUP_WINDOW_MS)
        .await
        .inspect_err(|_| reject("store"))?;
    // Wake each webhook's worker once per request, not once per delivery.
    let mut woken = std::collections::HashSet::new();
    for outcome in &stored {
        match outcome {
            Ingested::Stored(deliveries) => {
                m.events_accepted.inc();
                for (hook, _) in deliveries {
                    if woken.insert(hook.as_str()) {
                        app.deliverer.notify(hook);
                    }
                }
            }
            Ingested::Duplicate => m.events_duplicate.inc(),
        }
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "ids": ids }))))
}

#[cfg(test)]
mod tests {
    use super::Admission;

    #[test]
    fn admission_holds_slots_until_the_request_is_answered() {
        let gate = Admission::default();
        let mut a = gate.admit(1, 1000).expect("room");
        assert!(a.grow(599, 1000));
        assert_eq!(gate.pending(), 600);
        let mut b = gate.admit(1, 1000).expect("room for a body");
        // 600 + 1 + 499 would be 1100: refused, and nothing is kept of it.
        assert!(!b.grow(499, 1000));
        assert_eq!(gate.pending(), 601);
        assert!(b.grow(399, 1000));
        assert!(gate.admit(1, 1000).is_none(), "full");
        drop(a);
        assert_eq!(gate.pending(), 400);
        drop(b);
        assert_eq!(gate.pending(), 0);
    }
}

//! HTTP in: `POST /v1/events`. Parses the body, matches webhooks and answers
//! `202` only after the events and their deliveries are committed.

pub mod envelope;

use std::sync::Arc;

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

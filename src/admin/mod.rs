//! The operator's HTTP API: webhooks with live state, the delivery log,
//! replays, test sends and plugin states. Every route here sits behind the
//! admin token when one is set (see [`crate::server`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Webhook;
use crate::error::ApiError;
use crate::event::{Event, Millis, rfc3339};
use crate::server::App;
use crate::store::{DeliveryFilter, DeliveryRecord, DeliveryState, NewEvent, ReplayRefused};

type ApiResult = Result<Json<Value>, ApiError>;

pub async fn list_webhooks(State(app): State<Arc<App>>) -> ApiResult {
    let config = app.config.load_full();
    let depths = app.store.queue_depths().await?;
    let mut out = Vec::new();
    for hook in &config.webhooks {
        let depth = depths
            .iter()
            .find(|(id, _)| id == &hook.id)
            .map_or(0, |(_, n)| *n);
        out.push(webhook_json(&app, hook, depth).await?);
    }
    let config_error = app
        .reload_status
        .last_error
        .lock()
        .expect("reload status")
        .clone();
    Ok(Json(json!({
        "webhooks": out,
        "config": { "path": config.path.display().to_string(), "last_reload_error": config_error },
    })))
}

pub async fn get_webhook(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    let config = app.config.load_full();
    let hook = config
        .webhook(&id)
        .ok_or_else(|| ApiError::not_found("webhook", &id))?;
    let depths = app.store.queue_depths().await?;
    let depth = depths.iter().find(|(w, _)| w == &id).map_or(0, |(_, n)| *n);
    Ok(Json(webhook_json(&app, hook, depth).await?))
}

async fn webhook_json(app: &App, hook: &Webhook, queue_depth: u64) -> Result<Value, ApiError> {
    let health = app.store.health(&hook.id).await?;
    let disabled = app.deliverer.disabled_reason(&hook.id);
    let mut url = hook.url.clone();
    // Credentials in a URL are secrets too.
    if url.password().is_some() {
        let _ = url.set_password(Some("redacted"));
    }
    Ok(json!({
        "id": hook.id,
        "url": url.as_str(),
        "events": hook.events.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "owners": hook.owners,
        "active": hook.active && disabled.is_none(),
        "configured_active": hook.active,
        "disabled_reason": disabled,
        "ordering": match hook.ordering { crate::config::Ordering::Fifo => "fifo", _ => "unordered" },
        "plugins": hook.plugins.iter().map(|p| json!({"name": p.name, "on_error": p.on_error})).collect::<Vec<_>>(),
        "signed": !hook.secrets.is_empty(),
        "queue_depth": queue_depth,
        "last_success_at": health.last_success_at.map(rfc3339),
        "last_failure_at": health.last_failure_at.map(rfc3339),
        "failing_since": health.failing_since.map(rfc3339),
    }))
}

/// `POST /v1/webhooks/{id}/enable`: lifts an automatic disable.
pub async fn enable_webhook(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    if app.config.load().webhook(&id).is_none() {
        return Err(ApiError::not_found("webhook", &id));
    }
    app.deliverer.enable(&id).await?;
    Ok(Json(json!({ "id": id, "enabled": true })))
}

pub async fn test_webhook(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if app.config.load().webhook(&id).is_none() {
        return Err(ApiError::not_found("webhook", &id));
    }
    let now = app.clock.now();
    let event = Event {
        id: format!("evt_{}", ulid::Ulid::new().to_string().to_lowercase()),
        event_type: "weir.test".into(),
        owner_id: None,
        data: json!({"webhook": id, "message": "test event sent by weir"}).to_string(),
        occurred_at: rfc3339(now),
    };
    let event_id = event.id.clone();
    let stored = app
        .store
        .ingest(
            vec![NewEvent {
                event,
                webhooks: vec![id.clone()],
            }],
            now,
            0,
        )
        .await?;
    let delivery = match stored.into_iter().next() {
        Some(crate::store::Ingested::Stored(mut d)) if !d.is_empty() => d.remove(0).1,
        _ => return Err(ApiError::internal("test event was not stored")),
    };
    app.deliverer.notify(&id);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "delivery_id": delivery, "event_id": event_id })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    webhook: Option<String>,
    status: Option<String>,
    event: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

pub async fn list_deliveries(
    State(app): State<Arc<App>>,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let state = q.status.as_deref().map(parse_state).transpose()?;
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(s) => match s.parse::<usize>() {
            Ok(n @ 1..=1000) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "bad_limit",
                    format!("limit {s:?} must be a number from 1 to 1000"),
                ));
            }
        },
    };
    if let Some(after) = &q.after
        && !after.starts_with("dlv_")
    {
        return Err(ApiError::bad_request(
            "bad_cursor",
            format!("after {after:?} is not a delivery id"),
        ));
    }
    let filter = DeliveryFilter {
        webhook: q.webhook,
        state,
        event_id: q.event,
        after: q.after,
        limit,
    };
    let rows = app.store.list_deliveries(filter).await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(json!({
        "deliveries": rows.iter().map(record_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

fn parse_state(s: &str) -> Result<DeliveryState, ApiError> {
    DeliveryState::parse(s).ok_or_else(|| {
        let all: Vec<&str> = DeliveryState::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::bad_request(
            "bad_status",
            format!("status {s:?} is not one of {}", all.join(", ")),
        )
    })
}

fn record_json(r: &DeliveryRecord) -> Value {
    json!({
        "id": r.id,
        "webhook": r.webhook,
        "event_id": r.event_id,
        "event_type": r.event_type,
        "status": r.state,
        "attempts": r.attempts,
        "next_attempt_at": r.next_attempt_at.map(rfc3339),
        "reason": r.reason,
        "created_at": rfc3339(r.created_at),
        "updated_at": rfc3339(r.updated_at),
    })
}

pub async fn get_delivery(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    let (record, attempts) = app
        .store
        .delivery(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery", &id))?;
    let mut v = record_json(&record);
    v["attempt_log"] = json!(
        attempts
            .iter()
            .map(|a| json!({
                "at": rfc3339(a.at),
                "status": a.status,
                "error": a.error,
                "latency_ms": a.latency_ms,
                "response": a.response,
            }))
            .collect::<Vec<_>>()
    );
    Ok(Json(v))
}

pub async fn replay_delivery(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // The webhook must still exist before anything changes.
    let (record, _) = app
        .store
        .delivery(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery", &id))?;
    if app.config.load().webhook(&record.webhook).is_none() {
        return Err(webhook_gone(&record.webhook));
    }
    match app.store.replay(&id, app.clock.now()).await? {
        Ok(hook) => {
            app.deliverer.notify(&hook);
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "id": id, "status": "pending" })),
            ))
        }
        Err(ReplayRefused::NotFound) => Err(ApiError::not_found("delivery", &id)),
        Err(ReplayRefused::AlreadyQueued) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_queued",
            format!("delivery {id} is already pending or retrying"),
        )),
    }
}

fn webhook_gone(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "webhook_not_configured",
        format!("webhook {id:?} is no longer in config.toml; add it back to replay its deliveries"),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkReplay {
    webhook: String,
    status: String,
    since: Option<String>,
}

pub async fn bulk_replay(
    State(app): State<Arc<App>>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req: BulkReplay = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
    let state = parse_state(&req.status)?;
    if !matches!(
        state,
        DeliveryState::Dead
            | DeliveryState::Held
            | DeliveryState::Canceled
            | DeliveryState::Filtered
    ) {
        return Err(ApiError::bad_request(
            "bad_status",
            "bulk replay takes status dead, held, canceled or filtered",
        ));
    }
    if app.config.load().webhook(&req.webhook).is_none() {
        return Err(webhook_gone(&req.webhook));
    }
    let since: Option<Millis> = match &req.since {
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    ApiError::bad_request("bad_since", format!("since {s:?} is not RFC 3339 ({e})"))
                })?
                .timestamp_millis(),
        ),
        None => None,
    };
    let n = app
        .store
        .replay_all(&req.webhook, state, since, app.clock.now())
        .await?;
    app.deliverer.notify(&req.webhook);
    Ok((StatusCode::ACCEPTED, Json(json!({ "replayed": n }))))
}

pub async fn list_plugins(State(app): State<Arc<App>>) -> ApiResult {
    Ok(Json(json!({ "plugins": app.plugins.states() })))
}

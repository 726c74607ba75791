//! `/v1/deliveries` and replays: the log, scoped to the caller's owner.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{json_body, required};
use crate::api::{self, BulkReplay, ErrorBody};
use crate::app::App;
use crate::auth::Principal;
use crate::deliver::http::{per_attempt_headers, shown_headers};
use crate::error::ApiError;
use crate::event::rfc3339;
use crate::store::{
    DeliveryFilter, DeliveryRecord, DeliveryState, ReplayFilter, ReplayRefused, StoredDelivery,
};
use crate::token::Scope;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only this webhook's deliveries.
    webhook: Option<String>,
    /// pending, delivered, retrying, dead, held, canceled or filtered.
    status: Option<String>,
    /// Only deliveries of this event id.
    event: Option<String>,
    /// Only deliveries of events of exactly this type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// RFC 3339: only deliveries created at or after this time.
    since: Option<String>,
    /// RFC 3339: only deliveries created before this time.
    until: Option<String>,
    /// 1..=1000, default 50.
    limit: Option<String>,
    /// The last delivery id of the previous page (newest first).
    after: Option<String>,
}

#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries", params(LogQuery),
    responses((status = 200, body = api::DeliveryList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<api::DeliveryList>, ApiError> {
    p.require(Scope::DeliveriesRead)?;
    let q = super::query(q)?;
    let state = q.status.as_deref().map(parse_state).transpose()?;
    let limit = super::limit(q.limit.as_deref(), 50)?;
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
        tenant: p.owner.clone(),
        state,
        event_id: q.event,
        event_type: q.event_type,
        since: time(q.since.as_deref(), "since")?,
        until: time(q.until.as_deref(), "until")?,
        after: q.after,
        limit,
    };
    let rows = app.store.list_deliveries(filter).await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(api::DeliveryList {
        deliveries: rows.iter().map(view).collect(),
        next,
    }))
}

/// An optional RFC 3339 parameter; a bad one is `400 bad_time` naming it.
fn time(raw: Option<&str>, field: &str) -> Result<Option<crate::event::Millis>, ApiError> {
    raw.map(|s| super::parse_time(field, s)).transpose()
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

fn view(r: &DeliveryRecord) -> api::Delivery {
    api::Delivery {
        id: r.id.clone(),
        webhook: r.webhook.clone(),
        event_id: r.event_id.clone(),
        event_type: r.event_type.clone(),
        status: r.state,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at.map(rfc3339),
        reason: r.reason.clone(),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

#[utoipa::path(get, path = "/v1/deliveries/{id}", tag = "deliveries",
    params(("id" = String, Path, description = "delivery id")),
    responses((status = 200, body = api::DeliveryDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<api::DeliveryDetail>, ApiError> {
    p.require(Scope::DeliveriesRead)?;
    let found = app
        .store
        .delivery(&id)
        .await?
        .filter(|d| p.sees_tenant(d.record.tenant.as_deref()))
        .ok_or_else(|| ApiError::not_found("delivery", &id))?;
    Ok(Json(detail(&app, found)))
}

fn detail(app: &App, d: StoredDelivery) -> api::DeliveryDetail {
    // The webhook this delivery was made for: an id reused by another owner
    // since is another webhook, and tells nothing about this one.
    let hook = app
        .hooks
        .load()
        .get(&d.record.webhook)
        .filter(|h| h.tenant() == d.record.tenant.as_deref())
        .cloned();
    let signed = hook
        .as_ref()
        .is_none_or(|h| !h.signing_secrets(app.clock.now()).is_empty());
    let request = d.rendered.map(|r| api::RequestView {
        // A webhook gone since: only what the plugins set is known.
        headers: match &hook {
            Some(h) => shown_headers(h, &r),
            None => r.headers.clone(),
        },
        body: r.body,
    });
    let e = d.event;
    api::DeliveryDetail {
        delivery: view(&d.record),
        attempt_log: d
            .attempts
            .into_iter()
            .map(|a| api::AttemptView {
                at: rfc3339(a.at),
                status: a.status,
                error: a.error,
                latency_ms: a.latency_ms,
                response: a.response,
                node: a.node,
            })
            .collect(),
        event: Some(api::EventView {
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null),
            id: e.id,
            event_type: e.event_type,
            owner_id: e.owner_id,
            occurred_at: e.occurred_at,
        }),
        request,
        plugin_log: d.plugin_log,
        signed_headers: per_attempt_headers(signed)
            .into_iter()
            .map(str::to_owned)
            .collect(),
    }
}

#[utoipa::path(post, path = "/v1/deliveries/{id}/replay", tag = "deliveries",
    params(("id" = String, Path, description = "delivery id")),
    responses((status = 202, body = api::Replayed), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<api::Replayed>), ApiError> {
    p.require(Scope::DeliveriesReplay)?;
    // The webhook must still exist before anything changes.
    let record = app
        .store
        .delivery(&id)
        .await?
        .filter(|d| p.sees_tenant(d.record.tenant.as_deref()))
        .ok_or_else(|| ApiError::not_found("delivery", &id))?
        .record;
    // Only to the webhook it was made for: an id deleted and taken again by
    // another owner (or given other owners) is not where this event goes.
    match app.hooks.load().get(&record.webhook) {
        Some(h) if h.tenant() == record.tenant.as_deref() => {}
        _ => return Err(webhook_gone(&record.webhook)),
    }
    match app.store.replay(&id, app.clock.now()).await? {
        Ok(hook) => {
            app.deliverer.notify(&hook);
            Ok((
                StatusCode::ACCEPTED,
                Json(api::Replayed {
                    id,
                    status: DeliveryState::Pending,
                }),
            ))
        }
        Err(ReplayRefused::NotFound) => Err(ApiError::not_found("delivery", &id)),
        Err(ReplayRefused::AlreadyQueued) => Err(ApiError::conflict(
            "already_queued",
            format!("delivery {id} is already pending or retrying"),
        )),
    }
}

fn webhook_gone(id: &str) -> ApiError {
    ApiError::conflict(
        "webhook_not_configured",
        format!("webhook {id:?} no longer exists; add it back to replay its deliveries"),
    )
}

#[utoipa::path(post, path = "/v1/replay", tag = "deliveries", request_body = BulkReplay,
    responses((status = 200, body = api::BulkReplayed, description = "a dry run: nothing changed"),
        (status = 202, body = api::BulkReplayed), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn bulk_replay(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<api::BulkReplayed>), ApiError> {
    p.require(Scope::DeliveriesReplay)?;
    let req: BulkReplay = required(json_body(&headers, &body)?)?;
    if !matches!(
        req.status,
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
    let table = app.hooks.load();
    let tenant = match table.get(&req.webhook) {
        Some(h) if p.sees(h) => h.tenant().map(str::to_owned),
        Some(_) => return Err(ApiError::not_found("webhook", &req.webhook)),
        None if p.owner.is_some() => return Err(ApiError::not_found("webhook", &req.webhook)),
        None => return Err(webhook_gone(&req.webhook)),
    };
    let filter = ReplayFilter {
        webhook: req.webhook,
        // Only deliveries made for the webhook as it is now, for every
        // caller: those of an earlier webhook with this id, of another
        // owner, stay where they are.
        tenant,
        state: req.status,
        event_type: req.event_type,
        since: time(req.since.as_deref(), "since")?,
        until: time(req.until.as_deref(), "until")?,
    };
    if req.dry_run {
        let matched = app.store.count_replayable(&filter).await?;
        return Ok((
            StatusCode::OK,
            Json(api::BulkReplayed {
                replayed: 0,
                matched,
            }),
        ));
    }
    let n = app.store.replay_all(&filter, app.clock.now()).await?;
    app.deliverer.notify(&filter.webhook);
    Ok((
        StatusCode::ACCEPTED,
        Json(api::BulkReplayed {
            replayed: n,
            matched: n,
        }),
    ))
}

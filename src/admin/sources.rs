//! `/v1/sources`: inbound sources (config and API ones), the requests they
//! caught and refused, and replays of caught requests.
//!
//! An API source is validated by the function `[[sources]]` tables go
//! through. An owner-scoped token sees only sources whose `owner_id` is its
//! owner (another owner's answer 404) and creates sources for its owner only.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{json_body, required};
use crate::api::{self, BodyEncoding, ErrorBody};
use crate::app::App;
use crate::auth::Principal;
use crate::config::{InboundSource, Problem, SourceSpec};
use crate::error::ApiError;
use crate::event::rfc3339;
use crate::store::{CaughtRequest, InboundFilter, InboundState, StoredSource};
use crate::token::Scope;

type Answer<T> = Result<Json<T>, ApiError>;

fn view(s: &InboundSource) -> api::InboundSource {
    api::InboundSource {
        id: s.id.clone(),
        source: s.origin,
        path: format!("/in/{}", s.id),
        verify: s.scheme.name().into(),
        secrets: s.secrets.len(),
        tolerance_secs: s.tolerance_secs,
        type_from: s.type_from.as_ref().map(|e| e.describe()),
        id_from: s.id_from.as_ref().map(|e| e.describe()),
        owner_id: s.owner_id.clone(),
        plugin: s.plugin.as_ref().map(|p| p.name.clone()),
        max_body_bytes: s.max_body_bytes,
        methods: s.methods.iter().map(|m| m.to_string()).collect(),
        description: s.description.clone(),
        created_at: s.created_at.map(rfc3339),
    }
}

/// The source `id` if the caller may see it; 404 otherwise.
fn visible(app: &App, p: &Principal, id: &str) -> Result<Arc<InboundSource>, ApiError> {
    app.inbound
        .sources
        .load()
        .get(id)
        .filter(|s| p.sees_tenant(s.owner_id.as_deref()))
        .cloned()
        .ok_or_else(|| ApiError::not_found("source", id))
}

#[utoipa::path(get, path = "/v1/sources", tag = "sources",
    responses((status = 200, body = api::SourceList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
) -> Answer<api::SourceList> {
    p.require(Scope::SourcesRead)?;
    let table = app.inbound.sources.load();
    let mut sources: Vec<api::InboundSource> = table
        .values()
        .filter(|s| p.sees_tenant(s.owner_id.as_deref()))
        .map(|s| view(s))
        .collect();
    sources.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(api::SourceList { sources }))
}

#[utoipa::path(get, path = "/v1/sources/{id}", tag = "sources",
    params(("id" = String, Path, description = "source id")),
    responses((status = 200, body = api::InboundSource), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Answer<api::InboundSource> {
    p.require(Scope::SourcesRead)?;
    let source = visible(&app, &p, &id)?;
    Ok(Json(view(&source)))
}

#[utoipa::path(post, path = "/v1/sources", tag = "sources", request_body = SourceSpec,
    responses((status = 201, body = api::InboundSource), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<api::InboundSource>), ApiError> {
    p.require(Scope::SourcesWrite)?;
    let mut spec: SourceSpec = required(json_body(&headers, &body)?)?;
    if let Some(owner) = &p.owner {
        match &spec.owner_id {
            None => spec.owner_id = Some(owner.clone()),
            Some(o) if o == owner => {}
            Some(_) => return Err(super::other_owner()),
        }
    }
    let id = spec
        .id
        .get_or_insert_with(|| format!("src_{}", ulid::Ulid::new().to_string().to_lowercase()))
        .clone();
    let config = app.config.load_full();
    let mut source = config.validate_api_source(&spec, true).map_err(invalid)?;
    let now = app.clock.now();
    source.created_at = Some(now);
    let _writing = app.hooks_write.lock().await;
    if app.inbound.sources.load().contains_key(&id) {
        return Err(taken(&id));
    }
    let stored = StoredSource {
        id: id.clone(),
        owner: spec.owner_id.clone(),
        spec,
        created_at: now,
        updated_at: now,
    };
    if app.store.put_source(stored).await?.is_err() {
        return Err(taken(&id));
    }
    let source = Arc::new(source);
    // What an earlier source of this id refused is not the new owner's.
    app.inbound.forget_refused(&id);
    let mut table = (**app.inbound.sources.load()).clone();
    table.insert(id, source.clone());
    app.inbound.sources.store(Arc::new(table));
    Ok((StatusCode::CREATED, Json(view(&source))))
}

#[utoipa::path(delete, path = "/v1/sources/{id}", tag = "sources",
    params(("id" = String, Path, description = "source id")),
    responses((status = 200, body = api::SourceDeleted), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Answer<api::SourceDeleted> {
    p.require(Scope::SourcesWrite)?;
    let source = visible(&app, &p, &id)?;
    if source.origin == crate::config::Source::Config {
        return Err(ApiError::conflict(
            "defined_in_config",
            format!("source {id:?} is defined in config.toml; change it there"),
        ));
    }
    let _writing = app.hooks_write.lock().await;
    if !app.store.delete_source(&id).await? {
        return Err(ApiError::not_found("source", &id));
    }
    app.inbound.forget_refused(&id);
    let mut table = (**app.inbound.sources.load()).clone();
    table.remove(&id);
    app.inbound.sources.store(Arc::new(table));
    Ok(Json(api::SourceDeleted { id, deleted: true }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RequestsQuery {
    /// `pending`, `routed` or `held`.
    state: Option<String>,
    /// The last id of the previous page.
    before: Option<String>,
    /// 1..=1000, default 100.
    limit: Option<String>,
}

fn request_view(r: &CaughtRequest) -> api::CaughtRequest {
    api::CaughtRequest {
        id: r.id.clone(),
        source: r.source.clone(),
        received_at: rfc3339(r.received_at),
        method: r.method.clone(),
        target: r.target.clone(),
        body_bytes: r.body_bytes,
        dedup_key: r.dedup_key.clone(),
        state: r.state,
        reason: r.reason.clone(),
        events: r.events.clone(),
        updated_at: rfc3339(r.updated_at),
    }
}

#[utoipa::path(get, path = "/v1/sources/{id}/requests", tag = "sources",
    params(("id" = String, Path, description = "source id"), RequestsQuery),
    responses((status = 200, body = api::CaughtRequestList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn requests(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer<api::CaughtRequestList> {
    p.require(Scope::SourcesRead)?;
    let q = super::query(q)?;
    let limit = super::limit(q.limit.as_deref(), 100)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(InboundState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "bad_state",
                format!("state {s:?} must be pending, routed or held"),
            )
        })?),
    };
    let source = visible(&app, &p, &id)?;
    let rows = app
        .store
        .inbound_requests(InboundFilter {
            source: Some(source.id.clone()),
            tenant: p.owner.clone(),
            state,
            before: q.before.clone(),
            limit,
        })
        .await?;
    let next = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let refused = if q.before.is_none() && state.is_none() {
        app.inbound
            .refused_of(&source.id)
            .into_iter()
            .map(|r| {
                let (body, body_encoding) = BodyEncoding::show(&r.body);
                api::RefusedRequest {
                    at: rfc3339(r.at),
                    method: r.method,
                    target: r.target,
                    reason: r.reason,
                    headers: r.headers,
                    body,
                    body_encoding,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(api::CaughtRequestList {
        requests: rows.iter().map(request_view).collect(),
        next,
        refused,
    }))
}

/// The caught request `rid` of source `id`, if the caller may see both.
async fn caught(app: &App, p: &Principal, id: &str, rid: &str) -> Result<CaughtRequest, ApiError> {
    let source = visible(app, p, id)?;
    app.store
        .inbound_request(rid)
        .await?
        .filter(|r| r.source == source.id && p.sees_tenant(r.tenant.as_deref()))
        .ok_or_else(|| ApiError::not_found("request", rid))
}

#[utoipa::path(get, path = "/v1/sources/{id}/requests/{request}", tag = "sources",
    params(("id" = String, Path, description = "source id"),
        ("request" = String, Path, description = "caught request id")),
    responses((status = 200, body = api::CaughtRequestDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn request(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path((id, rid)): Path<(String, String)>,
) -> Answer<api::CaughtRequestDetail> {
    p.require(Scope::SourcesRead)?;
    let r = caught(&app, &p, &id, &rid).await?;
    let (body, body_encoding) = BodyEncoding::show(&r.body);
    Ok(Json(api::CaughtRequestDetail {
        request: request_view(&r),
        headers: r.headers,
        body,
        body_encoding,
    }))
}

#[utoipa::path(post, path = "/v1/sources/{id}/requests/{request}/replay", tag = "sources",
    params(("id" = String, Path, description = "source id"),
        ("request" = String, Path, description = "caught request id")),
    responses((status = 202, body = api::InboundReplayed), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path((id, rid)): Path<(String, String)>,
) -> Result<(StatusCode, Json<api::InboundReplayed>), ApiError> {
    p.require(Scope::SourcesWrite)?;
    let r = caught(&app, &p, &id, &rid).await?;
    if !app.store.replay_inbound(&r.id, app.clock.now()).await? {
        return Err(ApiError::not_found("request", &rid));
    }
    app.inbound.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(api::InboundReplayed {
            id: r.id,
            state: InboundState::Pending,
        }),
    ))
}

fn taken(id: &str) -> ApiError {
    super::taken("source_exists", "source", id)
}

fn invalid(problems: Vec<Problem>) -> ApiError {
    super::invalid("invalid_source", problems)
}

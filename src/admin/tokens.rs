//! `/v1/tokens`: API tokens, for admins only. A new token is shown once;
//! afterwards only its id and prefix are.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::{json_body, required};
use crate::api::{ErrorBody, TokenCreated, TokenList, TokenRequest, TokenView};
use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::event::rfc3339;
use crate::token::{self, Scope, TokenRecord};

#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = TokenRequest,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    p.require(Scope::Admin)?;
    let req: TokenRequest = required(json_body(&headers, &body)?)?;
    let now = app.clock.now();
    if req.scopes.is_empty() {
        return Err(bad("scopes: name at least one scope"));
    }
    if let Some(owner) = &req.owner {
        if let Err(why) = crate::ingest::envelope::check_id(owner) {
            return Err(bad(&format!("owner: {why}")));
        }
        if req.scopes.contains(&Scope::Admin) {
            return Err(bad(
                "scopes: admin covers every owner, so an owner's token cannot have it",
            ));
        }
    }
    let description = req.description.unwrap_or_default();
    if description.chars().count() > 1024 {
        return Err(bad("description: at most 1024 characters"));
    }
    let expires_at = req
        .expires_at
        .as_deref()
        .map(|s| super::parse_time("expires_at", s))
        .transpose()?;
    if expires_at.is_some_and(|t| t <= now) {
        return Err(bad("expires_at: must be in the future"));
    }
    let mut scopes = req.scopes;
    scopes.sort();
    scopes.dedup();
    let (text, record) = token::issue(req.owner, scopes, description, now, expires_at);
    let _writing = app.tokens.writing().await;
    app.store.put_token(record.clone()).await?;
    app.tokens.put(record.clone());
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            view: view(&record),
            token: text,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
) -> Result<Json<TokenList>, ApiError> {
    p.require(Scope::Admin)?;
    let tokens = app.store.tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.iter().map(view).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "token id (tok_...)")),
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    p.require(Scope::Admin)?;
    let _writing = app.tokens.writing().await;
    let record = app
        .store
        .revoke_token(&id, app.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("token", &id))?;
    app.tokens.put(record.clone());
    Ok(Json(view(&record)))
}

fn bad(message: &str) -> ApiError {
    ApiError::bad_request("invalid_token_request", message)
}

fn view(t: &TokenRecord) -> TokenView {
    TokenView {
        id: t.id.clone(),
        prefix: t.prefix.clone(),
        owner: t.owner.clone(),
        scopes: t.scopes.clone(),
        description: t.description.clone(),
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
    }
}

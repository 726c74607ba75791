//! The management API: webhooks (config and API ones) and their stats, the
//! delivery log and replays, plugin states and dry runs, API tokens and the
//! caller's own (`whoami`). Every route here runs behind
//! [`crate::auth`]: a handler takes the caller's [`Principal`], checks the
//! scope it needs, and answers `404` for anything of another owner.
//!
//! [`Principal`]: crate::auth::Principal

pub mod deliveries;
pub mod plugins;
pub mod sources;
pub mod stats;
pub mod tokens;
pub mod webhooks;
pub mod whoami;

use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::event::Millis;

/// A JSON request body: `None` when empty. A body must say it is JSON
/// (`415` otherwise), which also keeps a browser's simple form posts out.
pub fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<T>, ApiError> {
    let empty = body.iter().all(u8::is_ascii_whitespace);
    if empty && headers.get(header::CONTENT_TYPE).is_none() {
        return Ok(None);
    }
    crate::api::require_json(headers)?;
    if empty {
        return Ok(None);
    }
    // Every API body is an object; serde would also read a struct from an
    // array (`[]` as a RotateSecret with every field left out).
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_body",
            "invalid type: the body must be a JSON object",
        ));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))
}

/// A body that must be there.
pub fn required<T>(body: Option<T>) -> Result<T, ApiError> {
    body.ok_or_else(|| ApiError::bad_request("invalid_body", "a JSON body is required"))
}

/// `limit=` of a list: 1..=1000, `default` when absent.
pub fn limit(raw: Option<&str>, default: usize) -> Result<usize, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n @ 1..=1000) => Ok(n),
            _ => Err(ApiError::bad_request(
                "bad_limit",
                format!("limit {s:?} must be a number from 1 to 1000"),
            )),
        },
    }
}

/// An RFC 3339 time from a request field.
pub fn parse_time(field: &str, s: &str) -> Result<Millis, ApiError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            ApiError::bad_request(
                "bad_time",
                format!("{field} {s:?} is not an RFC 3339 time ({e})"),
            )
        })
}

/// Query strings are parsed by hand into these so a bad one is a JSON 400.
pub fn query<T: DeserializeOwned>(
    q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|axum::extract::Query(q)| q)
        .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
}

/// `403 forbidden_owner`: an owner-scoped token named another owner.
pub fn other_owner() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "forbidden_owner",
        "this token may only name its own owner",
    )
}

/// `409 <what>_exists`.
pub fn taken(code: &'static str, what: &str, id: &str) -> ApiError {
    ApiError::conflict(code, format!("a {what} with id {id:?} already exists"))
}

/// `400 <code>` listing every problem of a spec as `key: message`.
pub fn invalid(code: &'static str, problems: Vec<crate::config::Problem>) -> ApiError {
    let text: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.key, p.message))
        .collect();
    ApiError::bad_request(code, text.join("; "))
}

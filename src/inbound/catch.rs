//! `ANY /in/{source}`: verify, commit the request whole, answer.
//!
//! A request is refused as early as it can be: an unknown source, a method
//! the source does not take, a missing or stale signature header (before
//! the body is read, so a flood of unsigned requests costs no body and no
//! store write), then a body over the limit, then a signature that does
//! not match the body. What passes is committed before the `202`; a
//! sender's retry of a delivery already caught answers `200` and is not
//! kept twice.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::verify::{self, Refusal};
use super::{REFUSED_BODY_BYTES, Refused, redact};
use crate::api::CaughtAnswer;
use crate::app::App;
use crate::config::{Extract, InboundSource};
use crate::error::ApiError;
use crate::store::{Caught, NewCaught, log_text, new_request_id};

/// The metric label of a request for a source nobody declared (ids a
/// stranger sends are not labels).
const UNKNOWN: &str = "(unknown)";

pub async fn catch(
    State(app): State<Arc<App>>,
    Path(source_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match catch_inner(&app, &source_id, method, uri, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn catch_inner(
    app: &App,
    source_id: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let m = &app.metrics;
    let sources = app.inbound.sources.load();
    let Some(source) = sources.get(source_id).cloned() else {
        m.inbound_requests
            .with_label_values(&[UNKNOWN, "unknown_source"])
            .inc();
        return Err(ApiError::not_found("source", source_id));
    };
    let count = |result: &str| {
        m.inbound_requests
            .with_label_values(&[source.id.as_str(), result])
            .inc()
    };
    if app.shutting_down.is_cancelled() {
        count("shutting_down");
        return Err(ApiError::unavailable(
            "shutting_down",
            "weir is shutting down; retry shortly",
        ));
    }
    if !source.methods.contains(&method) {
        count("method_not_allowed");
        let allow: Vec<&str> = source.methods.iter().map(Method::as_str).collect();
        let mut res = ApiError {
            close_connection: true,
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("source {:?} takes {}", source.id, allow.join(", ")),
            )
        }
        .into_response();
        if let Ok(v) = allow.join(", ").parse() {
            res.headers_mut().insert(header::ALLOW, v);
        }
        return Ok(res);
    }
    let now = app.clock.now();
    let now_secs = now.div_euclid(1000);
    let target = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    // Headers alone settle a missing, malformed or stale signature.
    if let Err(refusal) = verify::check_headers(
        &source.scheme,
        &source.secrets,
        source.tolerance_secs,
        now_secs,
        &headers,
    ) {
        return Err(refuse(
            app,
            &source,
            &method,
            &target,
            &headers,
            &[],
            &refusal,
            true,
        ));
    }
    let limit = source.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        count("too_large");
        ApiError {
            close_connection: true,
            ..ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "body is over this source's max_body_bytes ({limit} bytes); nothing was kept"
                ),
            )
        }
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    if let Err(refusal) = verify::verify(
        &source.scheme,
        &source.secrets,
        source.tolerance_secs,
        now_secs,
        &headers,
        &bytes,
    ) {
        return Err(refuse(
            app, &source, &method, &target, &headers, &bytes, &refusal, false,
        ));
    }
    // Slack checks a new Events API URL with a signed challenge to echo
    // back; it is an answer, not an event.
    if source.scheme == verify::Scheme::Slack
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && v["type"] == "url_verification"
        && let Some(challenge) = v["challenge"].as_str()
    {
        count("slack_challenge");
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "challenge": challenge })),
        )
            .into_response());
    }
    let dedup_key = source.id_from.as_ref().and_then(|place| match place {
        Extract::Literal(_) => None,
        Extract::Header(_) => place.get(&headers, None),
        Extract::Json(_) => {
            let parsed = serde_json::from_slice(&bytes).ok();
            place.get(&headers, parsed.as_ref())
        }
    });
    let id = new_request_id();
    let caught = app
        .store
        .catch(NewCaught {
            id: id.clone(),
            source: source.id.clone(),
            tenant: source.owner_id.clone(),
            received_at: now,
            method: method.to_string(),
            target: log_text(&target).into_owned(),
            headers: header_pairs(&headers),
            body: bytes.to_vec(),
            dedup_key: dedup_key.map(|k| dedup_text(&k)),
            node: Some(app.node.clone()),
        })
        .await
        .inspect_err(|_| count("store"))?;
    Ok(match caught {
        Caught::Stored => {
            count("caught");
            app.inbound.wake.notify_one();
            (
                StatusCode::ACCEPTED,
                Json(CaughtAnswer {
                    id,
                    status: "caught".into(),
                }),
            )
                .into_response()
        }
        Caught::Duplicate(first) => {
            count("duplicate");
            (
                StatusCode::OK,
                Json(CaughtAnswer {
                    id: first,
                    status: "duplicate".into(),
                }),
            )
                .into_response()
        }
    })
}

/// A sender's delivery id as kept: long ones (past what an index entry
/// holds) by their SHA-256.
fn dedup_text(key: &str) -> String {
    use sha2::Digest as _;
    if key.len() <= 255 {
        log_text(key).into_owned()
    } else {
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(key.as_bytes()))
        )
    }
}

/// Headers as text pairs, credentials redacted; a value that is not
/// UTF-8 keeps its bytes as U+FFFD.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            let text = String::from_utf8_lossy(v.as_bytes());
            (n.as_str().to_owned(), redact(n.as_str(), &log_text(&text)))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn refuse(
    app: &App,
    source: &InboundSource,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
    refusal: &Refusal,
    body_unread: bool,
) -> ApiError {
    app.metrics
        .inbound_requests
        .with_label_values(&[source.id.as_str(), &format!("refused_{}", refusal.kind())])
        .inc();
    app.inbound.refuse(
        &source.id,
        Refused {
            at: app.clock.now(),
            method: method.to_string(),
            target: target.to_owned(),
            headers: header_pairs(headers),
            body: body[..body.len().min(REFUSED_BODY_BYTES)].to_vec(),
            reason: refusal.to_string(),
        },
    );
    ApiError {
        close_connection: body_unread,
        ..ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unverified",
            format!("{refusal}; nothing was kept"),
        )
    }
}

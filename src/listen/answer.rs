//! What a request is answered: the router's answer, except that a request
//! whose body did not arrive in time gets `408`, and an error the router's
//! extractors wrote as plain text (a bad path, a JSON body of the wrong
//! shape) is given the API's JSON error shape.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use tower::ServiceExt as _;

use super::body::Deadline;
use crate::config::Config;
use crate::error::ApiError;

/// How much of a plain-text error the JSON answer keeps as its message.
const TEXT_KEPT: usize = 4096;

pub async fn handle(
    router: Router,
    config: Arc<ArcSwap<Config>>,
    req: Request<Incoming>,
) -> Result<Response, Infallible> {
    let within = config.load().server.body_read_timeout;
    let expired = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| Body::new(Deadline::new(body, within, expired.clone())));
    let Ok(res) = router.oneshot(req).await;
    if expired.load(Ordering::Acquire) {
        // Whatever the handler made of its failed read, this is what happened.
        return Ok(ApiError {
            close_connection: true,
            ..ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    within.as_secs()
                ),
            )
        }
        .into_response());
    }
    Ok(as_json(res).await)
}

async fn as_json(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(res.headers()) {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, TEXT_KEPT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut json = ApiError::new(status, code(status), message).into_response();
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            json.headers_mut().append(name.clone(), value.clone());
        }
    }
    json
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The error code for a status the router's extractors answer with.
fn code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// `error` as the bytes of a whole HTTP/1.1 answer that closes the
/// connection, for answers written below hyper.
pub fn raw(error: &ApiError) -> Vec<u8> {
    let body = serde_json::to_string(&error.body()).expect("an error body serialises");
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        error.status.as_u16(),
        error.status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let Some(secs) = error.retry_after {
        head.push_str(&format!("retry-after: {secs}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    head.into_bytes()
}

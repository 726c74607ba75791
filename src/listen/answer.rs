//! What a request is answered: the router's answer, except that a request
//! whose body did not arrive in time gets `408`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use tower::ServiceExt as _;

use super::body::Deadline;
use crate::config::Config;
use crate::error::ApiError;

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
    Ok(res)
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

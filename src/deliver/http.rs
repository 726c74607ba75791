//! One HTTP attempt: build the signed request, send it through a guarded,
//! keep-alive client, and report what came back without ever failing itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};

use super::classify::{Verdict, classify};
use super::sign::signature;
use super::ssrf::{self, GuardedResolver};
use crate::config::Webhook;
use crate::event::{Millis, now_millis};
use crate::store::{Attempt, Rendered};

/// How much of a response body the log keeps.
const LOGGED_RESPONSE: usize = 1024;
/// Read (and discard) up to this much so the connection can be reused.
const DRAINED_RESPONSE: usize = 64 * 1024;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

pub const USER_AGENT_VALUE: &str = concat!("weir/", env!("CARGO_PKG_VERSION"));

/// Headers a plugin or static config may not set: weir owns them. The
/// first three are the ones each attempt signs anew ([`per_attempt_headers`]).
const RESERVED: [&str; 6] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "host",
    "content-length",
    "transfer-encoding",
];

/// One keep-alive client per distinct `allow_targets` list (usually one).
#[derive(Default)]
pub struct Clients {
    by_allow: Mutex<HashMap<Vec<IpNet>, reqwest::Client>>,
}

impl Clients {
    pub fn get(&self, allow: &[IpNet]) -> reqwest::Client {
        let mut map = self.by_allow.lock().expect("clients");
        map.entry(allow.to_vec())
            .or_insert_with(|| {
                reqwest::Client::builder()
                    // A proxy from HTTP_PROXY & co. would resolve names itself,
                    // past the guard's resolver: weir connects directly.
                    .no_proxy()
                    .redirect(reqwest::redirect::Policy::none())
                    .dns_resolver(std::sync::Arc::new(GuardedResolver::new(allow.to_vec())))
                    .pool_idle_timeout(Duration::from_secs(90))
                    .pool_max_idle_per_host(64)
                    .tcp_nodelay(true)
                    .build()
                    .expect("client builds")
            })
            .clone()
    }
}

/// What an attempt produced: the record for the log and the verdict.
pub struct Outcome {
    pub attempt: Attempt,
    pub verdict: Verdict,
}

/// Sends `rendered` to `hook` for the event `event_id`.
/// `at` is when the attempt is recorded as made; the signature's timestamp
/// is always the wall clock, which subscribers check. `traceparent` (only
/// while traces are exported) names the attempt's span.
pub async fn send(
    client: &reqwest::Client,
    hook: &Webhook,
    event_id: &str,
    rendered: &Rendered,
    at: Millis,
    traceparent: Option<&str>,
) -> Outcome {
    let started = Instant::now();
    let result = try_send(client, hook, event_id, rendered, at, traceparent).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok((status, headers, response)) => Outcome {
            verdict: classify(status, &headers, &hook.policy.success),
            attempt: Attempt {
                at,
                status: Some(status),
                error: None,
                latency_ms,
                response,
                node: None,
            },
        },
        Err(error) => Outcome {
            verdict: Verdict::Retry { retry_after: None },
            attempt: Attempt {
                at,
                status: None,
                error: Some(error),
                latency_ms,
                response: String::new(),
                node: None,
            },
        },
    }
}

async fn try_send(
    client: &reqwest::Client,
    hook: &Webhook,
    event_id: &str,
    rendered: &Rendered,
    at: Millis,
    traceparent: Option<&str>,
) -> Result<(u16, HeaderMap, String), String> {
    if let Some(host) = hook.url.host() {
        let literal = match host {
            url::Host::Ipv4(a) => Some(std::net::IpAddr::V4(a)),
            url::Host::Ipv6(a) => Some(std::net::IpAddr::V6(a)),
            url::Host::Domain(_) => None,
        };
        if let Some(addr) = literal {
            ssrf::check(addr, &hook.policy.allow_targets).map_err(|e| e.to_string())?;
        }
    }
    let mut headers = build_headers(hook, event_id, rendered, now_millis() / 1000, at);
    if let Some(tp) = traceparent.and_then(|tp| HeaderValue::try_from(tp).ok()) {
        // weir's span replaces whatever trace context the webhook's static
        // headers or its plugins set.
        headers.insert(TRACEPARENT, tp);
        headers.remove(TRACESTATE);
    }
    let mut response = client
        .post(hook.url.clone())
        .headers(headers)
        .timeout(hook.policy.timeout)
        .body(rendered.body.clone())
        .send()
        .await
        .map_err(|e| describe(&e, hook.policy.timeout))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut kept = Vec::new();
    let mut read = 0usize;
    while read < DRAINED_RESPONSE {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len();
                let room = LOGGED_RESPONSE.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => return Err(describe(&e, hook.policy.timeout)),
        }
    }
    Ok((status, headers, String::from_utf8_lossy(&kept).into_owned()))
}

/// The headers weir adds to each attempt itself, signed anew every time:
/// the Standard Webhooks id and timestamp, and the signature when `signed`.
pub fn per_attempt_headers(signed: bool) -> Vec<&'static str> {
    let n = if signed { 3 } else { 2 };
    RESERVED[..n].to_vec()
}

/// What the log shows of a request: the headers every attempt carries
/// (those of [`per_attempt_headers`] left out), the webhook's static header
/// values shown as `(redacted)`, as elsewhere in the API. What a plugin set
/// is shown as it set it.
pub fn shown_headers(hook: &Webhook, rendered: &Rendered) -> Vec<(String, String)> {
    let redacted = HeaderValue::from_static("(redacted)");
    let h = base_headers(hook, rendered, Some(&redacted));
    h.iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_owned(), v)
        })
        .collect()
}

/// The headers of an attempt: defaults, the webhook's static headers, the
/// plugin's headers, then the Standard Webhooks headers, which nothing else
/// may set. `timestamp` (wall clock, seconds) is what is signed; `at` (server
/// clock) decides which secrets still sign.
pub fn build_headers(
    hook: &Webhook,
    event_id: &str,
    rendered: &Rendered,
    timestamp: i64,
    at: Millis,
) -> HeaderMap {
    let mut h = base_headers(hook, rendered, None);
    let id =
        HeaderValue::try_from(event_id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    h.insert("webhook-id", id);
    h.insert("webhook-timestamp", HeaderValue::from(timestamp));
    let secrets = hook.signing_secrets(at);
    if let Some(sig) = signature(secrets, event_id, timestamp, rendered.body.as_bytes()) {
        h.insert(
            "webhook-signature",
            HeaderValue::try_from(sig).expect("base64 is a valid header"),
        );
    }
    h
}

/// The headers every attempt of `rendered` carries before weir signs it:
/// defaults, the webhook's static headers (their values replaced by
/// `static_value` when given), then the plugin's.
fn base_headers(
    hook: &Webhook,
    rendered: &Rendered,
    static_value: Option<&HeaderValue>,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    for (name, value) in &hook.headers {
        if !RESERVED.contains(&name.as_str()) {
            h.insert(name.clone(), static_value.unwrap_or(value).clone());
        }
    }
    for (name, value) in &rendered.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) else {
            continue;
        };
        if !RESERVED.contains(&name.as_str()) {
            // A plugin that sets content-type replaces the default; other
            // headers it adds are sent as given, repeats included.
            if name == CONTENT_TYPE {
                h.insert(name, value);
            } else {
                h.append(name, value);
            }
        }
    }
    h
}

/// A one-line description of a transport error, with its causes.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timeout: no full answer within {}s", timeout.as_secs());
    }
    let kind = if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "error reading the answer"
    } else {
        "request error"
    };
    let mut msg = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(extra: &str) -> Webhook {
        let text = format!("[[webhooks]]\nid = \"a\"\nurl = \"https://example.com/h\"\n{extra}\n");
        let config = crate::config::Config::parse(std::path::Path::new("/c.toml"), &text).unwrap();
        (*config.webhooks[0]).clone()
    }

    #[test]
    fn the_log_shows_what_a_plugin_set_and_hides_the_webhooks_own_values() {
        let hook = hook("headers = { authorization = \"Bearer s3cret\", x-env = \"prod\" }");
        let rendered = Rendered {
            body: "{}".into(),
            headers: vec![
                ("x-team".into(), "geo".into()),
                ("content-type".into(), "text/plain".into()),
                ("webhook-id".into(), "forged".into()),
            ],
        };
        let shown = shown_headers(&hook, &rendered);
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            shown,
            [
                pair("content-type", "text/plain"),
                pair("user-agent", USER_AGENT_VALUE),
                pair("authorization", "(redacted)"),
                pair("x-env", "(redacted)"),
                pair("x-team", "geo"),
            ]
        );
        // What is sent carries the real values, and the signed headers.
        let sent = build_headers(&hook, "evt_1", &rendered, 1, 0);
        assert_eq!(sent["authorization"], "Bearer s3cret");
        assert_eq!(sent["webhook-id"], "evt_1");
        for (name, _) in &shown {
            assert!(sent.contains_key(name.as_str()), "{name}");
        }
    }

    #[test]
    fn per_attempt_headers_name_the_signature_only_when_signing() {
        assert_eq!(
            per_attempt_headers(true),
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
        assert_eq!(
            per_attempt_headers(false),
            ["webhook-id", "webhook-timestamp"]
        );
    }
}

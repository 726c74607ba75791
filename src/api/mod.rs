//! The HTTP API's request and answer bodies: one set of types used by the
//! handlers, the CLI, the tests and the OpenAPI document ([`openapi`]), so
//! the four cannot drift apart.

pub mod openapi;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::config::{OnError, Ordering, Source};
use crate::plugin::PluginStatus;
use crate::store::DeliveryState;
use crate::token::Scope;

/// Refuses a request body not declared as JSON (ingest and every API write). A browser sends a cross-site form
/// post as `text/plain` or a form type without asking first; only
/// `application/json` needs its CORS preflight, which weir never grants.
pub fn require_json(headers: &axum::http::HeaderMap) -> Result<(), crate::error::ApiError> {
    let declared = headers.get(axum::http::header::CONTENT_TYPE);
    let is_json = declared
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        return Ok(());
    }
    let got = match declared {
        None => "no Content-Type".to_owned(),
        Some(v) => match v.to_str() {
            Ok(v) => format!("Content-Type {:?}", v.chars().take(100).collect::<String>()),
            Err(_) => "a Content-Type that is not text".to_owned(),
        },
    };
    Err(crate::error::ApiError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("the body must be sent as Content-Type: application/json; got {got}"),
    ))
}

/// Refuses a write a browser made for a page of another site (cross-site
/// request forgery). A route that reads no body (replay, test, enable)
/// cannot count on [`require_json`], and with no `admin_token` a request
/// needs no credentials at all. Browsers say where a request comes from:
/// `Sec-Fetch-Site`, or else an `Origin` to compare with `Host`. Clients
/// that are not browsers send neither and are not affected.
pub fn same_origin(headers: &axum::http::HeaderMap) -> Result<(), crate::error::ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let crossed = match text("sec-fetch-site") {
        Some(site) => !matches!(site, "same-origin" | "none"),
        None => match text("origin") {
            None => false,
            Some(origin) => {
                let authority = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"));
                authority.is_none() || authority != text("host")
            }
        },
    };
    if crossed {
        return Err(crate::error::ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "cross_site",
            "a write from a page of another site is refused",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod same_origin_tests {
    use axum::http::HeaderMap;

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn pages_of_other_sites_are_refused_and_everyone_else_passes() {
        let ok = |p: &[(&'static str, &'static str)]| super::same_origin(&with(p)).is_ok();
        assert!(ok(&[]), "curl, the CLI, servers");
        assert!(ok(&[("sec-fetch-site", "same-origin")]));
        assert!(
            ok(&[("sec-fetch-site", "none")]),
            "typed into the address bar"
        );
        assert!(!ok(&[("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[("sec-fetch-site", "same-site")]));
        assert!(ok(&[
            ("origin", "http://127.0.0.1:8700"),
            ("host", "127.0.0.1:8700")
        ]));
        assert!(!ok(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8700")
        ]));
        assert!(!ok(&[("origin", "null"), ("host", "127.0.0.1:8700")]));
    }
}

/// Every error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `invalid_event`, `not_found`, `forbidden`, ...
    pub code: String,
    /// For people: what was wrong and where.
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// An event as producers post it (SPEC §1).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// Assigned (`evt_…`) when absent; `(owner_id, id)` deduplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `resource.action`, 1..=128 chars of `[a-z0-9_.-]`.
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Any JSON value.
    pub data: Value,
    /// RFC 3339; the receive time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
}

/// The body of `POST /v1/events`: one event or up to 1000.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EventsIn {
    One(EventIn),
    Many(Vec<EventIn>),
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The id of each event, in order.
    pub ids: Vec<String>,
}

/// One step of a webhook's plugin chain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginStep {
    pub name: String,
    pub on_error: OnError,
    #[schema(value_type = Object)]
    pub config: Value,
}

/// A webhook with its live state. Secrets and header values are never shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    /// `config`: declared in config.toml (read-only here); `api`: through this API.
    pub source: Source,
    /// A password in the URL is shown as `redacted`.
    pub url: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub events: Vec<String>,
    pub owners: Option<Vec<String>>,
    /// Receiving now: configured active and not disabled.
    pub active: bool,
    pub configured_active: bool,
    /// Why weir disabled it (410 Gone, continuous failure).
    pub disabled_reason: Option<String>,
    pub ordering: Ordering,
    pub plugins: Vec<PluginStep>,
    /// Header names; their values are write-only.
    pub headers: BTreeMap<String, String>,
    pub timeout_secs: u64,
    pub max_retries: u32,
    /// `[low, high]`, inclusive.
    pub success_status: [u16; 2],
    pub retry_delays_secs: Vec<u64>,
    pub max_in_flight: usize,
    pub disable_after_hours: u64,
    pub rate_limit_per_sec: u32,
    /// Whether deliveries carry signatures.
    pub signed: bool,
    /// Live (pending or retrying) deliveries.
    pub queue_depth: u64,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub failing_since: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// `POST /v1/webhooks`: the webhook, and its signing secret, shown only here.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`: keep it to verify signatures; it is not shown again.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConfigStatus {
    pub path: String,
    /// The last config.toml edit that was rejected, until a valid one lands.
    pub last_reload_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<String>,
    /// Only for admin tokens.
    pub config: Option<ConfigStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeleted {
    pub id: String,
    pub deleted: bool,
    /// Pending deliveries that became `canceled`.
    pub canceled: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the previous secret keeps signing beside the new one; default 86400.
    #[serde(default)]
    pub overlap_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretRotated {
    pub id: String,
    /// `whsec_…`, shown only here.
    pub secret: String,
    /// When the previous secret stops signing.
    pub previous_expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestSent {
    pub delivery_id: String,
    pub event_id: String,
}

/// `GET /v1/webhooks/{id}/stats`: the last `minutes` of a webhook's attempts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookStats {
    pub webhook: String,
    /// The window: this many one-minute buckets, the last being the current
    /// (partial) minute.
    pub minutes: u32,
    /// Live (pending or retrying) deliveries now.
    pub queue_depth: u64,
    /// Attempts in the window: `delivered` + `failed`.
    pub attempts: u64,
    /// Attempts answered with a status in the webhook's `success_status`.
    pub delivered: u64,
    /// Every other attempt: another status, a timeout, no connection.
    pub failed: u64,
    /// `delivered / attempts`; `null` without attempts.
    pub success_rate: Option<f64>,
    /// Over every attempt of the window.
    pub latency_ms: Latency,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    /// One per minute, oldest first, minutes without attempts included.
    pub buckets: Vec<StatsBucket>,
    /// The window held more than 100,000 attempts: only the newest were
    /// counted, so the oldest minutes show too few.
    pub capped: bool,
}

/// Nearest-rank percentiles, in milliseconds; `null` without attempts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Latency {
    pub p50: Option<u64>,
    pub p99: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsBucket {
    /// The minute's start, RFC 3339.
    pub at: String,
    pub delivered: u64,
    pub failed: u64,
    pub p50_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Enabled {
    pub id: String,
    pub enabled: bool,
}

/// A delivery as the log lists it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: String,
    pub webhook: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    /// Why it is filtered, held, failing or canceled.
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
    /// Pass as `after` for the next page; `null` on the last.
    pub next: Option<String>,
}

/// One attempt: when, what came back, how long it took.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub at: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The first 1 KiB of the answer's body.
    pub response: String,
    /// The weir node that made the attempt.
    pub node: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempt_log: Vec<AttemptView>,
    /// The event delivered; `null` if it is gone.
    pub event: Option<EventView>,
    /// The request as last sent (or about to be): `null` until the plugin
    /// chain made one (and for a filtered or held delivery).
    pub request: Option<RequestView>,
    /// What the webhook's plugins logged the last time the chain ran for
    /// this delivery, each line prefixed with the plugin's name (at most 50
    /// lines, 4 KiB).
    pub plugin_log: Vec<String>,
    /// Headers weir adds to each attempt, not in `request`: `webhook-id`,
    /// `webhook-timestamp` and, when the webhook signs, `webhook-signature`.
    pub signed_headers: Vec<String>,
}

/// An event as stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub owner_id: Option<String>,
    pub occurred_at: String,
    /// The producer's `data`.
    pub data: Value,
}

/// A request to a subscriber, less what each attempt adds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    pub body: String,
    /// `[name, value]` pairs in order. Values of the webhook's own
    /// `headers` are shown as `(redacted)`; those a plugin set are shown.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    pub id: String,
    pub status: DeliveryState,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReplay {
    pub webhook: String,
    /// `dead`, `held`, `canceled` or `filtered`.
    pub status: DeliveryState,
    /// RFC 3339: only deliveries last updated at or after this time.
    #[serde(default)]
    pub since: Option<String>,
    /// RFC 3339: only deliveries last updated before this time.
    #[serde(default)]
    pub until: Option<String>,
    /// Only deliveries of events of exactly this type.
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
    /// Count what would be replayed and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BulkReplayed {
    /// Deliveries made pending again (0 on a dry run).
    pub replayed: u64,
    /// Deliveries the filter matched (absent from weirs before dry runs).
    #[serde(default)]
    pub matched: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginView>,
}

/// A plugin, which of the caller's webhooks use it, and its calls on the
/// node that answers (each node counts its own, since it started).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginView {
    #[serde(flatten)]
    pub status: PluginStatus,
    /// Ids of the webhooks whose chain names it, of those the token sees.
    pub used_by: Vec<String>,
    /// Calls on this node, whatever came of them.
    pub calls: u64,
    /// Calls that gave no verdict: failed, or skipped while benched.
    pub failures: u64,
    /// Mean time of a call that ran; `null` when none has.
    pub mean_ms: Option<f64>,
}

/// `POST /v1/plugins/{name}/run`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunPlugin {
    /// One event, as `POST /v1/events` takes it.
    #[schema(value_type = EventIn)]
    pub event: Box<serde_json::value::RawValue>,
    /// The plugin's config, as a webhook's chain would give it; `{}` when absent.
    #[serde(default)]
    #[schema(value_type = Option<Value>)]
    pub config: Option<Box<serde_json::value::RawValue>>,
}

/// What one dry run of a plugin produced.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PluginRun {
    pub plugin: String,
    pub verdict: RunVerdict,
    /// Why it dropped the event.
    pub reason: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The body it made, for `deliver`.
    pub body: Option<String>,
    /// The headers it set, for `deliver`, as `[name, value]` pairs.
    pub headers: Vec<(String, String)>,
    /// What it logged (`host.log`, stdout and stderr).
    pub logs: Vec<String>,
    /// How long the call took.
    pub time_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunVerdict {
    Deliver,
    Drop,
    /// The plugin trapped, returned an error, ran out of time or memory, or
    /// made a request weir would not send.
    Failure,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Limit the token to this owner's webhooks and deliveries.
    #[serde(default)]
    pub owner: Option<String>,
    pub scopes: Vec<Scope>,
    /// RFC 3339; never expires when absent.
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A token as listed: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    /// The token's first characters.
    pub prefix: String,
    pub owner: Option<String>,
    pub scopes: Vec<Scope>,
    pub description: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub view: TokenView,
    /// The bearer token, shown only here.
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

/// `GET /v1/whoami`: the caller's token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The owner the token is limited to; `null` for every owner.
    pub owner: Option<String>,
    /// Every scope it holds (`admin` brings all the others).
    pub scopes: Vec<Scope>,
    pub admin: bool,
    /// The API token presented; `null` for the config's admin or ingest
    /// token and for a caller without a token where none is needed.
    pub token: Option<TokenIdentity>,
}

/// An API token as it is known without the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenIdentity {
    pub id: String,
    pub prefix: String,
}

/// An inbound source. Secrets are never shown, only how many there are.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InboundSource {
    pub id: String,
    /// `config` or `api`, as for webhooks.
    pub source: Source,
    /// Where senders post: `/in/{id}`.
    pub path: String,
    pub verify: String,
    pub secrets: usize,
    pub tolerance_secs: u64,
    pub type_from: Option<String>,
    pub id_from: Option<String>,
    pub owner_id: Option<String>,
    pub plugin: Option<String>,
    pub max_body_bytes: usize,
    pub methods: Vec<String>,
    pub description: String,
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceList {
    pub sources: Vec<InboundSource>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceDeleted {
    pub id: String,
    pub deleted: bool,
}

/// The answer a sender gets at `/in/{source}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaughtAnswer {
    /// The caught request (for a `duplicate`, the first one).
    pub id: String,
    /// `caught` (202) or `duplicate` (200).
    pub status: String,
}

/// A caught request in the source's log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaughtRequest {
    pub id: String,
    pub source: String,
    pub received_at: String,
    pub method: String,
    /// Path and query as requested.
    pub target: String,
    pub body_bytes: u64,
    /// The sender's delivery id, by which its retries are recognised.
    pub dedup_key: Option<String>,
    pub state: crate::store::InboundState,
    /// Why it is held.
    pub reason: Option<String>,
    /// The ids of the events it became.
    pub events: Vec<String>,
    pub updated_at: String,
}

/// A request refused at the door (kept by the node that refused it, the
/// last 50 per source).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefusedRequest {
    pub at: String,
    pub method: String,
    pub target: String,
    pub reason: String,
    /// Credentials (`Authorization`) shown as `***`.
    pub headers: Vec<(String, String)>,
    /// The first 4 KiB, as `body_encoding` says.
    pub body: String,
    pub body_encoding: BodyEncoding,
}

/// How a body is shown: as text when it is UTF-8, else base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    Text,
    Base64,
}

impl BodyEncoding {
    /// `bytes` shown as text if they are UTF-8, else as base64.
    pub fn show(bytes: &[u8]) -> (String, BodyEncoding) {
        match std::str::from_utf8(bytes) {
            Ok(t) => (t.to_owned(), BodyEncoding::Text),
            Err(_) => {
                use base64::Engine as _;
                (
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                    BodyEncoding::Base64,
                )
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaughtRequestList {
    /// Newest first.
    pub requests: Vec<CaughtRequest>,
    /// Pass as `before` for the next page; `null` on the last.
    pub next: Option<String>,
    /// Requests refused lately (newest first), on the first page only.
    pub refused: Vec<RefusedRequest>,
}

/// One caught request with its headers and body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CaughtRequestDetail {
    #[serde(flatten)]
    pub request: CaughtRequest,
    /// As received, credentials shown as `***`.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub body_encoding: BodyEncoding,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InboundReplayed {
    pub id: String,
    pub state: crate::store::InboundState,
}

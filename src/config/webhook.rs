//! One webhook, as written and as validated: [`WebhookSpec`] is the shape of a
//! `[[webhooks]]` table and of the body of `POST /v1/webhooks`, and
//! [`validate`] is the one function both go through, so a webhook means the
//! same thing wherever it was declared. Problems name the key they are about
//! (`url`, `plugins[0].name`); the caller says where that key was written.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{DeliveryPolicy, OnError, Ordering, PluginRef, Secret, Source, Webhook};
use crate::router::glob::Glob;

/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 1024;
/// Largest `metadata` object, as JSON text.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
const MAX_URL: usize = 2048;
const MAX_LIST: usize = 100;
const MAX_PLUGINS: usize = 16;
const MAX_SECRETS: usize = 10;

/// A webhook as written: every key of a `[[webhooks]]` table. Absent keys take
/// the `[delivery]` defaults; `allow_targets` only counts in `config.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// `[a-z0-9_-]{1,64}`; generated (`wh_…`) when an API create leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Where deliveries are POSTed: `http://` or `https://`.
    #[serde(default)]
    pub url: String,
    /// Globs on the event type; default `["*"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// Only events with one of these `owner_id`s; absent = every owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// `whsec_<base64>`; the first signs, all are sent during a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<String>>,
    /// Static headers added to every delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// `unordered` (default) or `fifo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<Vec<PluginSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free-form JSON object kept with the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// `[low, high]`, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_status: Option<Vec<u16>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delays_secs: Option<Vec<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// Operator only: accepted in `config.toml`, refused through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_targets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_after_hours: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_sec: Option<u32>,
}

/// One step of a plugin chain, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// `<plugins_dir>/<name>.wasm`.
    pub name: String,
    #[serde(default = "hold")]
    pub on_error: OnError,
    /// Handed to the plugin as JSON text.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
}

fn hold() -> OnError {
    OnError::Hold
}

/// `[delivery]`: the defaults every webhook starts from.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryDefaults {
    pub timeout_secs: Option<u64>,
    pub max_retries: Option<u32>,
    pub success_status: Option<Vec<u16>>,
    pub retry_delays_secs: Option<Vec<u64>>,
    pub max_in_flight: Option<usize>,
    pub allow_targets: Option<Vec<String>>,
    pub disable_after_hours: Option<u64>,
    pub rate_limit_per_sec: Option<u32>,
}

/// Where a webhook was declared, which decides what it may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `config.toml`: the operator's file.
    Config,
    /// The management API: a tenant's request. `check_plugins` is off when an
    /// already accepted webhook is loaded back from the store.
    Api { check_plugins: bool },
}

/// What validation needs besides the spec.
pub struct Context<'a> {
    pub defaults: &'a DeliveryDefaults,
    /// `allow_targets` of `[delivery]`, parsed.
    pub allow: &'a [IpNet],
    pub plugins_dir: &'a Path,
    pub origin: Origin,
}

/// One thing wrong with a spec: the key (`url`, `plugins[1].name`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

/// Whether `id` is a valid webhook id.
pub fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// Validates `spec` into a [`Webhook`], or lists every problem at once.
pub fn validate(spec: &WebhookSpec, cx: &Context<'_>) -> Result<Webhook, Vec<Problem>> {
    let mut p = Problems(Vec::new());
    let id = spec.id.clone().unwrap_or_default();
    if !id_ok(&id) {
        p.add("id", "must be 1..=64 chars of [a-z0-9_-]");
    }
    let url = url(&spec.url, cx, &mut p);
    let mut events = Vec::new();
    let patterns = spec.events.clone().unwrap_or_else(|| vec!["*".into()]);
    if patterns.is_empty() || patterns.len() > MAX_LIST {
        p.add("events", format!("must list 1..={MAX_LIST} globs"));
    }
    for pattern in &patterns {
        match Glob::new(pattern) {
            Ok(g) => events.push(g),
            Err(e) => p.add("events", e),
        }
    }
    if let Some(owners) = &spec.owners {
        if owners.len() > MAX_LIST {
            p.add("owners", format!("must list at most {MAX_LIST} owners"));
        }
        if let Some(why) = owners
            .iter()
            .find_map(|o| crate::ingest::envelope::check_id(o).err())
        {
            p.add("owners", format!("each owner {why}"));
        }
    }
    let ordering = match spec.ordering.as_deref() {
        None | Some("unordered") => Ordering::Unordered,
        Some("fifo") => Ordering::Fifo,
        Some(_) => {
            p.add("ordering", "must be \"unordered\" or \"fifo\"");
            Ordering::Unordered
        }
    };
    let secrets = secrets(spec, &mut p);
    let headers = headers(spec, &mut p);
    let plugins = plugins(spec, cx, &mut p);
    let policy = policy(spec, cx, &mut p);
    let description = spec.description.clone().unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION {
        p.add(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        );
    }
    let metadata = spec.metadata.clone().unwrap_or_default();
    let metadata_len = serde_json::to_string(&metadata).map_or(0, |s| s.len());
    if metadata_len > MAX_METADATA_BYTES {
        p.add(
            "metadata",
            format!("must be at most {MAX_METADATA_BYTES} bytes as JSON ({metadata_len} given)"),
        );
    }
    match (url, p.0.is_empty()) {
        (Some(url), true) => Ok(Webhook {
            id,
            source: match cx.origin {
                Origin::Config => Source::Config,
                Origin::Api { .. } => Source::Api,
            },
            url,
            events,
            owners: spec.owners.clone(),
            active: spec.active.unwrap_or(true),
            secrets,
            headers,
            ordering,
            policy,
            plugins,
            description,
            metadata,
            created_at: None,
            updated_at: None,
        }),
        _ => Err(p.0),
    }
}

fn url(text: &str, cx: &Context<'_>, p: &mut Problems) -> Option<reqwest::Url> {
    if text.len() > MAX_URL {
        p.add("url", format!("must be at most {MAX_URL} characters"));
        return None;
    }
    let url = match reqwest::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        Ok(_) => {
            p.add("url", "must be an http:// or https:// URL with a host");
            return None;
        }
        Err(e) => {
            // The text may carry a password: never repeat it.
            p.add("url", format!("not a valid URL ({e})"));
            return None;
        }
    };
    if matches!(
        cx.origin,
        Origin::Api {
            check_plugins: true
        }
    ) {
        let literal = match url.host() {
            Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
            _ => None,
        };
        if let Some(addr) = literal
            && let Err(e) = crate::deliver::ssrf::check(addr, cx.allow)
        {
            p.add("url", e.to_string());
        }
    }
    Some(url)
}

fn secrets(spec: &WebhookSpec, p: &mut Problems) -> Vec<Secret> {
    let list = spec.secrets.as_deref().unwrap_or_default();
    if list.len() > MAX_SECRETS {
        p.add(
            "secrets",
            format!("must list at most {MAX_SECRETS} secrets"),
        );
    }
    let mut out = Vec::new();
    for s in list {
        match Secret::parse(s) {
            Ok(s) => out.push(s),
            // The message never repeats the secret itself.
            Err(e) => p.add("secrets", e),
        }
    }
    out
}

fn headers(spec: &WebhookSpec, p: &mut Problems) -> Vec<(HeaderName, HeaderValue)> {
    let map = spec.headers.clone().unwrap_or_default();
    if map.len() > MAX_LIST {
        p.add("headers", format!("must have at most {MAX_LIST} headers"));
    }
    let mut out = Vec::new();
    for (name, value) in &map {
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(n), Ok(v)) => out.push((n, v)),
            // A header value may be a credential: name the header only.
            _ => p.add(
                "headers",
                format!("{name:?} is not a valid header name and value"),
            ),
        }
    }
    out
}

fn plugins(spec: &WebhookSpec, cx: &Context<'_>, p: &mut Problems) -> Vec<PluginRef> {
    let list = spec.plugins.as_deref().unwrap_or_default();
    if list.len() > MAX_PLUGINS {
        p.add(
            "plugins",
            format!("a chain has at most {MAX_PLUGINS} plugins"),
        );
    }
    let check = !matches!(
        cx.origin,
        Origin::Api {
            check_plugins: false
        }
    );
    let mut out = Vec::new();
    for (j, step) in list.iter().enumerate() {
        let name = &step.name;
        let file = cx.plugins_dir.join(format!("{name}.wasm"));
        if !super::plugin_name_ok(name) {
            p.add(
                format!("plugins[{j}].name"),
                "must be 1..=64 chars of [A-Za-z0-9_-]",
            );
        } else if check && !file.is_file() {
            let message = match cx.origin {
                Origin::Config => format!("plugin {name:?} not found: no {}", file.display()),
                Origin::Api { .. } => format!("plugin {name:?} not found in the plugins folder"),
            };
            p.add(format!("plugins[{j}].name"), message);
        }
        out.push(PluginRef {
            name: name.clone(),
            on_error: step.on_error,
            config_json: Value::Object(step.config.clone()).to_string(),
        });
    }
    out
}

fn policy(spec: &WebhookSpec, cx: &Context<'_>, p: &mut Problems) -> DeliveryPolicy {
    let d = cx.defaults;
    let success = match spec.success_status.as_ref().or(d.success_status.as_ref()) {
        Some(r) if r.len() != 2 || r[0] > r[1] || r[0] < 100 || r[1] > 599 => {
            p.add(
                "success_status",
                "must be [low, high] with 100 <= low <= high <= 599",
            );
            200..=207
        }
        Some(r) => r[0]..=r[1],
        None => 200..=207,
    };
    let allow_targets = match (&spec.allow_targets, cx.origin) {
        (Some(_), Origin::Api { .. }) => {
            p.add(
                "allow_targets",
                "can only be set by the operator, in config.toml",
            );
            cx.allow.to_vec()
        }
        (Some(list), Origin::Config) => parse_cidrs(list).unwrap_or_else(|bad| {
            p.add(
                "allow_targets",
                format!("{bad:?} is not a CIDR like \"10.0.0.0/8\""),
            );
            Vec::new()
        }),
        (None, _) => cx.allow.to_vec(),
    };
    let delays = spec
        .retry_delays_secs
        .as_ref()
        .or(d.retry_delays_secs.as_ref());
    if delays.is_some_and(|v| v.len() > MAX_LIST) {
        p.add(
            "retry_delays_secs",
            format!("must list at most {MAX_LIST} delays"),
        );
    }
    let hours = spec
        .disable_after_hours
        .or(d.disable_after_hours)
        .unwrap_or(120);
    DeliveryPolicy {
        timeout: Duration::from_secs(
            spec.timeout_secs
                .or(d.timeout_secs)
                .unwrap_or(20)
                .clamp(1, 3600),
        ),
        max_retries: spec.max_retries.or(d.max_retries).unwrap_or(25),
        success,
        retry_delays: delays
            .map(|v| v.iter().map(|s| Duration::from_secs(*s)).collect())
            .unwrap_or_default(),
        max_in_flight: spec
            .max_in_flight
            .or(d.max_in_flight)
            .unwrap_or(32)
            .clamp(1, 10_000),
        allow_targets,
        disable_after: Duration::from_secs(hours.min(100 * 365 * 24) * 3600),
        rate_limit_per_sec: spec
            .rate_limit_per_sec
            .or(d.rate_limit_per_sec)
            .unwrap_or(0),
    }
}

/// Parses CIDRs (or bare addresses); the first bad entry is the error.
pub fn parse_cidrs(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|cidr| {
            cidr.parse::<IpNet>()
                .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| cidr.clone())
        })
        .collect()
}

//! `config.toml`: parsing, validation and the resolved, immutable [`Config`].
//!
//! A `Config` is only ever built whole and valid: every problem in the file is
//! collected (file, line, key) before anything is returned, so `weir check` can
//! report them all at once and a live reload can keep the old config on error.
//! Relative paths are resolved against the directory holding the config file.

mod raw;
mod toml_error;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;
use reqwest::header::{HeaderName, HeaderValue};

use crate::router::glob::Glob;
use raw::{RawConfig, RawDelivery, RawWebhook, Spanned};

/// Everything weir runs on, resolved and validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config was read from; reloads re-read this file.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub plugins: PluginLimits,
    pub webhooks: Vec<Arc<Webhook>>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub plugins_dir: PathBuf,
    pub max_body_bytes: usize,
    /// Events received but not yet committed, at most; past it ingest
    /// answers 429 with `Retry-After` instead of queueing without bound.
    pub max_pending_events: usize,
    pub ingest_token: Option<Token>,
    pub admin_token: Option<Token>,
    pub retention: Duration,
    /// A request head (or the next one on a kept-alive connection) must
    /// arrive within this; a client trickling headers is cut off.
    pub header_read_timeout: Duration,
    /// A request body must arrive within this after its head.
    pub body_read_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PluginLimits {
    pub timeout: Duration,
    pub memory_bytes: usize,
}

impl PluginLimits {
    pub const DEFAULT: PluginLimits = PluginLimits {
        timeout: Duration::from_millis(50),
        memory_bytes: 32 << 20,
    };
}

/// One `[[webhooks]]` entry with every `[delivery]` default folded in.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: String,
    pub url: reqwest::Url,
    pub events: Vec<Glob>,
    /// `None` = every owner (and events without one).
    pub owners: Option<Vec<String>>,
    pub active: bool,
    /// The first signs; all are sent while a secret is being rotated.
    pub secrets: Vec<Secret>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub ordering: Ordering,
    pub policy: DeliveryPolicy,
    pub plugins: Vec<PluginRef>,
}

impl Webhook {
    /// Whether this webhook wants an event of `event_type` owned by `owner`.
    pub fn wants(&self, event_type: &str, owner: Option<&str>) -> bool {
        let owner_ok = match (&self.owners, owner) {
            (None, _) => true,
            (Some(list), Some(o)) => list.iter().any(|x| x == o),
            (Some(_), None) => false,
        };
        owner_ok && self.events.iter().any(|g| g.matches(event_type))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    Unordered,
    Fifo,
}

/// How deliveries to one webhook are attempted.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPolicy {
    pub timeout: Duration,
    pub max_retries: u32,
    pub success: RangeInclusive<u16>,
    /// Empty = the default `n^4 + 15 + jitter` schedule.
    pub retry_delays: Vec<Duration>,
    pub max_in_flight: usize,
    pub allow_targets: Vec<IpNet>,
    pub disable_after: Duration,
    /// Attempts per second; 0 = unlimited.
    pub rate_limit_per_sec: u32,
}

/// One step of a webhook's plugin chain.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginRef {
    pub name: String,
    pub on_error: OnError,
    /// The `config` table as JSON text, handed to the plugin verbatim.
    pub config_json: String,
}

/// What a plugin failure (err, trap, deadline, memory, not loadable) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Keep the delivery `held` for a replay once the plugin is fixed.
    Hold,
    /// Treat the failure as a drop.
    Skip,
    /// Continue as if the plugin returned its input unchanged.
    Pass,
}

/// A signing key (`whsec_<base64>`), decoded. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn parse(s: &str) -> Result<Self, String> {
        let b64 = s
            .strip_prefix("whsec_")
            .ok_or("a secret must start with `whsec_`")?;
        // base64's own message names the offending character and its offset.
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| "the part after `whsec_` is not valid standard base64")?;
        if key.len() < 16 {
            return Err("a secret must decode to at least 16 bytes".into());
        }
        Ok(Secret(key))
    }

    pub fn key(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A bearer token, compared in constant time and never printed.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    fn new(s: String) -> Option<Self> {
        (!s.is_empty()).then_some(Token(s))
    }

    pub fn matches(&self, presented: &str) -> bool {
        use sha2::Digest;
        use subtle::ConstantTimeEq;
        // Hash both sides so the comparison time depends on neither length.
        let a = sha2::Sha256::digest(self.0.as_bytes());
        let b = sha2::Sha256::digest(presented.as_bytes());
        a.ct_eq(&b).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Every problem found in a config file, each naming file, line and key.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl Config {
    /// Reads and validates `path`. Token env vars (`WEIR_INGEST_TOKEN`,
    /// `WEIR_ADMIN_TOKEN`) fill in tokens the file leaves empty.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("{}: cannot read: {e}", path.display())],
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            problems: vec![toml_error::describe(&file, text, &e)],
        })?;
        let mut v = Validator {
            file: &file,
            text,
            problems: Vec::new(),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let config = v.config(path, base, raw);
        if v.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                problems: v.problems,
            })
        }
    }

    pub fn webhook(&self, id: &str) -> Option<&Arc<Webhook>> {
        self.webhooks.iter().find(|w| w.id == id)
    }

    /// Where `<name>.wasm` lives.
    pub fn plugin_path(&self, name: &str) -> PathBuf {
        self.server.plugins_dir.join(format!("{name}.wasm"))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
    problems: Vec<String>,
}

impl Validator<'_> {
    fn problem<T>(&mut self, at: &Spanned<T>, key: &str, msg: impl fmt::Display) {
        let line = line_of(self.text, at.span().start);
        self.problems
            .push(format!("{}:{line}: {key}: {msg}", self.file));
    }

    fn config(&mut self, path: &Path, base: &Path, raw: RawConfig) -> Config {
        let s = raw.server;
        let listen = match s.listen.get_ref().parse() {
            Ok(a) => a,
            Err(e) => {
                self.problem(
                    &s.listen,
                    "server.listen",
                    format!("not an address:port ({e})"),
                );
                SocketAddr::from(([127, 0, 0, 1], 8700))
            }
        };
        let env_token = |var: &str, from_file: String| {
            Token::new(from_file).or_else(|| std::env::var(var).ok().and_then(Token::new))
        };
        if *s.max_pending_events.get_ref() < crate::ingest::envelope::MAX_BATCH {
            self.problem(
                &s.max_pending_events,
                "server.max_pending_events",
                format!(
                    "must be at least {} so a full batch fits",
                    crate::ingest::envelope::MAX_BATCH
                ),
            );
        }
        let server = ServerConfig {
            listen,
            data_dir: base.join(s.data_dir),
            plugins_dir: base.join(s.plugins_dir),
            max_body_bytes: s.max_body_bytes,
            max_pending_events: s.max_pending_events.into_inner(),
            ingest_token: env_token("WEIR_INGEST_TOKEN", s.ingest_token),
            admin_token: env_token("WEIR_ADMIN_TOKEN", s.admin_token),
            retention: Duration::from_secs(u64::from(s.retention_days) * 86_400),
            header_read_timeout: Duration::from_secs(s.header_read_timeout_secs.max(1)),
            body_read_timeout: Duration::from_secs(s.body_read_timeout_secs.max(1)),
            max_connections: s.max_connections.max(1),
        };
        let plugins = PluginLimits {
            timeout: Duration::from_millis(raw.plugins.timeout_ms.max(1)),
            memory_bytes: raw.plugins.memory_mb.max(1) << 20,
        };
        let defaults = raw.delivery;
        let mut seen = HashSet::new();
        let mut webhooks = Vec::new();
        for (i, hook) in raw.webhooks.into_iter().enumerate() {
            let key = format!("webhooks[{i}]");
            if !seen.insert(hook.id.get_ref().clone()) {
                self.problem(
                    &hook.id,
                    &format!("{key}.id"),
                    format!("duplicate webhook id {:?}", hook.id.get_ref()),
                );
            }
            if let Some(w) = self.webhook(&key, &defaults, &server.plugins_dir, hook) {
                webhooks.push(Arc::new(w));
            }
        }
        Config {
            path: path.to_path_buf(),
            server,
            plugins,
            webhooks,
        }
    }

    fn webhook(
        &mut self,
        key: &str,
        defaults: &RawDelivery,
        plugins_dir: &Path,
        raw: RawWebhook,
    ) -> Option<Webhook> {
        let id = raw.id.get_ref().clone();
        let valid_id = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
        if !valid_id {
            self.problem(
                &raw.id,
                &format!("{key}.id"),
                "must be 1..=64 chars of [a-z0-9_-]",
            );
        }
        let url = match reqwest::Url::parse(raw.url.get_ref()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(_) => {
                self.problem(
                    &raw.url,
                    &format!("{key}.url"),
                    "must be an http:// or https:// URL with a host",
                );
                None
            }
            Err(e) => {
                self.problem(
                    &raw.url,
                    &format!("{key}.url"),
                    // Not quoted: userinfo, or a path, may be the credential.
                    format!("invalid URL: {e}"),
                );
                None
            }
        };
        let mut events = Vec::new();
        for pattern in raw.events.get_ref() {
            match Glob::new(pattern) {
                Ok(g) => events.push(g),
                Err(e) => self.problem(&raw.events, &format!("{key}.events"), e),
            }
        }
        let mut secrets = Vec::new();
        for s in raw.secrets.get_ref() {
            match Secret::parse(s) {
                Ok(s) => secrets.push(s),
                // The message never repeats the secret itself.
                Err(e) => self.problem(&raw.secrets, &format!("{key}.secrets"), e),
            }
        }
        let mut headers = Vec::new();
        for (name, value) in raw.headers.get_ref() {
            match (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                (Ok(n), Ok(v)) => headers.push((n, v)),
                _ => self.problem(
                    &raw.headers,
                    &format!("{key}.headers"),
                    format!("{name:?} is not a valid header name and value"),
                ),
            }
        }
        let policy = self.policy(key, defaults, &raw.overrides());
        let mut plugins = Vec::new();
        for (j, p) in raw.plugins.into_iter().enumerate() {
            let pkey = format!("{key}.plugins[{j}]");
            let name = p.name.get_ref();
            if !plugin_name_ok(name) {
                self.problem(
                    &p.name,
                    &format!("{pkey}.name"),
                    "must be 1..=64 chars of [A-Za-z0-9_-]",
                );
            } else if !plugins_dir.join(format!("{name}.wasm")).is_file() {
                self.problem(
                    &p.name,
                    &format!("{pkey}.name"),
                    format!(
                        "plugin {name:?} not found: no {}",
                        plugins_dir.join(format!("{name}.wasm")).display()
                    ),
                );
            }
            plugins.push(PluginRef {
                name: name.clone(),
                on_error: p.on_error,
                config_json: serde_json::to_string(&p.config)
                    .expect("TOML values are JSON-representable"),
            });
        }
        let ordering = match raw.ordering.get_ref().as_str() {
            "fifo" => Ordering::Fifo,
            "unordered" => Ordering::Unordered,
            _ => {
                self.problem(
                    &raw.ordering,
                    &format!("{key}.ordering"),
                    "must be \"unordered\" or \"fifo\"",
                );
                Ordering::Unordered
            }
        };
        Some(Webhook {
            id,
            url: url?,
            events,
            owners: raw.owners,
            active: raw.active,
            secrets,
            headers,
            ordering,
            policy,
            plugins,
        })
    }

    fn policy(&mut self, key: &str, d: &RawDelivery, o: &RawDelivery) -> DeliveryPolicy {
        let success = o.success_status.as_ref().or(d.success_status.as_ref());
        let success = match success {
            Some(s) => {
                let r = s.get_ref();
                if r.len() != 2 || r[0] > r[1] || r[0] < 100 || r[1] > 599 {
                    self.problem(
                        s,
                        &format!("{key}.success_status"),
                        "must be [low, high] with 100 <= low <= high <= 599",
                    );
                    200..=207
                } else {
                    r[0]..=r[1]
                }
            }
            None => 200..=207,
        };
        let mut allow = Vec::new();
        if let Some(list) = o.allow_targets.as_ref().or(d.allow_targets.as_ref()) {
            for cidr in list.get_ref() {
                match cidr
                    .parse::<IpNet>()
                    .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from))
                {
                    Ok(n) => allow.push(n),
                    Err(_) => self.problem(
                        list,
                        &format!("{key}.allow_targets"),
                        format!("{cidr:?} is not a CIDR like \"10.0.0.0/8\""),
                    ),
                }
            }
        }
        let delays = o
            .retry_delays_secs
            .as_ref()
            .or(d.retry_delays_secs.as_ref());
        let retry_delays = delays
            .map(|v| v.iter().map(|s| Duration::from_secs(*s)).collect())
            .unwrap_or_default();
        DeliveryPolicy {
            timeout: Duration::from_secs(o.timeout_secs.or(d.timeout_secs).unwrap_or(20).max(1)),
            max_retries: o.max_retries.or(d.max_retries).unwrap_or(25),
            success,
            retry_delays,
            max_in_flight: o.max_in_flight.or(d.max_in_flight).unwrap_or(32).max(1),
            allow_targets: allow,
            disable_after: Duration::from_secs(
                o.disable_after_hours
                    .or(d.disable_after_hours)
                    .unwrap_or(120)
                    * 3600,
            ),
            rate_limit_per_sec: o.rate_limit_per_sec.or(d.rate_limit_per_sec).unwrap_or(0),
        }
    }
}

fn plugin_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests;

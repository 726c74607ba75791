//! `config.toml`: parsing, validation and the resolved, immutable [`Config`].
//!
//! A `Config` is only ever built whole and valid: every problem in the file is
//! collected (file, line, key) before anything is returned, so `weir check` can
//! report them all at once and a live reload can keep the old config on error.
//! Relative paths are resolved against the directory holding the config file.

mod lines;
mod raw;
pub mod source;
mod store;
pub mod telemetry;
mod toml_error;
pub mod webhook;

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
use serde_json::{Map, Value};

use crate::event::Millis;
use crate::router::glob::Glob;
use lines::{Lines, line_of};
use raw::RawConfig;
pub use source::{Extract, InboundSource, SourcePluginSpec, SourceSpec};
pub use store::{DatabaseUrl, StoreConfig};
pub use telemetry::{OtlpEndpoint, TelemetryConfig};
pub use webhook::{DeliveryDefaults, Origin, PluginSpec, Problem, WebhookSpec};

/// Everything weir runs on, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the config was read from; reloads re-read this file.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub plugins: PluginLimits,
    /// `[delivery]`: what webhooks (API ones too) leave out.
    pub delivery: DeliveryDefaults,
    /// `[delivery] allow_targets`, parsed.
    pub allow_targets: Vec<IpNet>,
    /// `[store]`: where events, deliveries and the catalog live.
    pub store: StoreConfig,
    /// `[telemetry]`: OpenTelemetry trace export, off by default.
    pub telemetry: TelemetryConfig,
    /// The `[[webhooks]]` tables; API webhooks live in the store.
    pub webhooks: Vec<Arc<Webhook>>,
    /// The `[[sources]]` tables; API sources live in the store.
    pub sources: Vec<Arc<InboundSource>>,
}

#[derive(Debug, Clone, PartialEq)]
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
    /// This node's name in a cluster; `None` = hostname plus a random
    /// suffix, chosen at start.
    pub node_id: Option<String>,
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

/// A validated webhook with every `[delivery]` default folded in, from a
/// `[[webhooks]]` table or the management API.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: String,
    pub source: Source,
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
    pub description: String,
    pub metadata: Map<String, Value>,
    /// When an API webhook was created and last changed.
    pub created_at: Option<Millis>,
    pub updated_at: Option<Millis>,
}

/// Where a webhook was declared: config ones can only change in the file.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Config,
    Api,
}

impl Webhook {
    /// The one owner this webhook belongs to (`owners` is exactly that
    /// owner), which is what an owner-scoped token may see.
    pub fn tenant(&self) -> Option<&str> {
        match self.owners.as_deref() {
            Some([one]) => Some(one),
            _ => None,
        }
    }

    /// The secrets that sign at `now`: a rotated-out one stops at its expiry.
    pub fn signing_secrets(&self, now: Millis) -> Vec<&Secret> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .collect()
    }

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

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
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
pub struct Secret {
    key: Vec<u8>,
    /// When a rotated-out secret stops signing; `None` = while configured.
    pub expires_at: Option<Millis>,
}

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
        Ok(Secret {
            key,
            expires_at: None,
        })
    }

    /// A new random secret, as its `whsec_` text.
    pub fn generate() -> String {
        let bytes: [u8; 24] = rand::random();
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A bearer token, compared in constant time and never printed. Two tokens
/// are equal when their values are, so a reload sees a token-only edit.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(s: String) -> Option<Self> {
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
            lines: Lines::new(text),
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

    pub fn source(&self, id: &str) -> Option<&Arc<InboundSource>> {
        self.sources.iter().find(|s| s.id == id)
    }

    /// Validates a source declared through the API: the same function
    /// `[[sources]]` tables go through.
    pub fn validate_api_source(
        &self,
        spec: &SourceSpec,
        check_plugins: bool,
    ) -> Result<InboundSource, Vec<Problem>> {
        source::validate(
            spec,
            &source::Context {
                plugins_dir: &self.server.plugins_dir,
                max_body_bytes: self.server.max_body_bytes,
                origin: Origin::Api { check_plugins },
            },
        )
    }

    /// Where `<name>.wasm` lives.
    pub fn plugin_path(&self, name: &str) -> PathBuf {
        self.server.plugins_dir.join(format!("{name}.wasm"))
    }

    /// Validates a webhook declared through the API against this config's
    /// defaults: the same function `[[webhooks]]` tables go through.
    pub fn validate_api_webhook(
        &self,
        spec: &WebhookSpec,
        check_plugins: bool,
    ) -> Result<Webhook, Vec<Problem>> {
        webhook::validate(
            spec,
            &webhook::Context {
                defaults: &self.delivery,
                allow: &self.allow_targets,
                plugins_dir: &self.server.plugins_dir,
                origin: Origin::Api { check_plugins },
            },
        )
    }
}

struct Validator<'a> {
    file: &'a str,
    lines: Lines<'a>,
    problems: Vec<String>,
}

impl Validator<'_> {
    fn problem(&mut self, key: &str, msg: impl fmt::Display) {
        let line = self.lines.of(key);
        self.problems
            .push(format!("{}:{line}: {key}: {msg}", self.file));
    }

    fn config(&mut self, path: &Path, base: &Path, raw: RawConfig) -> Config {
        let s = raw.server;
        let listen = match s.listen.parse() {
            Ok(a) => a,
            Err(e) => {
                self.problem("server.listen", format!("not an address:port ({e})"));
                SocketAddr::from(([127, 0, 0, 1], 8700))
            }
        };
        let env_token = |var: &str, from_file: String| {
            Token::new(from_file).or_else(|| std::env::var(var).ok().and_then(Token::new))
        };
        if s.max_pending_events < crate::ingest::envelope::MAX_BATCH {
            self.problem(
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
            max_pending_events: s.max_pending_events,
            ingest_token: env_token("WEIR_INGEST_TOKEN", s.ingest_token),
            admin_token: env_token("WEIR_ADMIN_TOKEN", s.admin_token),
            retention: Duration::from_secs(u64::from(s.retention_days) * 86_400),
            header_read_timeout: Duration::from_secs(s.header_read_timeout_secs.max(1)),
            body_read_timeout: Duration::from_secs(s.body_read_timeout_secs.max(1)),
            max_connections: s.max_connections.max(1),
            node_id: Some(s.node_id).filter(|n| !n.is_empty()),
        };
        if let Some(n) = &server.node_id
            && !plugin_name_ok(n)
        {
            self.problem("server.node_id", "use 1-64 letters, digits, '-' or '_'");
        }
        let store = match store::resolve(raw.store, std::env::var("WEIR_DATABASE_URL").ok()) {
            Ok(s) => s,
            Err((key, message)) => {
                self.problem(key, message);
                StoreConfig::Sqlite
            }
        };
        let telemetry = telemetry::resolve(raw.telemetry).unwrap_or_else(|problems| {
            for (key, message) in problems {
                self.problem(key, message);
            }
            TelemetryConfig::default()
        });
        let plugins = PluginLimits {
            timeout: Duration::from_millis(raw.plugins.timeout_ms.max(1)),
            memory_bytes: raw.plugins.memory_mb.max(1) << 20,
        };
        let delivery = raw.delivery;
        let allow_targets =
            match webhook::parse_cidrs(delivery.allow_targets.as_deref().unwrap_or_default()) {
                Ok(list) => list,
                Err(bad) => {
                    self.problem(
                        "delivery.allow_targets",
                        format!("{bad:?} is not a CIDR like \"10.0.0.0/8\""),
                    );
                    Vec::new()
                }
            };
        if let Some(r) = &delivery.success_status
            && (r.len() != 2 || r[0] > r[1] || r[0] < 100 || r[1] > 599)
        {
            self.problem(
                "delivery.success_status",
                "must be [low, high] with 100 <= low <= high <= 599",
            );
        }
        let mut seen = HashSet::new();
        let mut webhooks = Vec::new();
        for (i, spec) in raw.webhooks.iter().enumerate() {
            let key = format!("webhooks[{i}]");
            let id = spec.id.clone().unwrap_or_default();
            if !seen.insert(id.clone()) {
                self.problem(&format!("{key}.id"), format!("duplicate webhook id {id:?}"));
            }
            let cx = webhook::Context {
                defaults: &delivery,
                allow: &allow_targets,
                plugins_dir: &server.plugins_dir,
                origin: Origin::Config,
            };
            match webhook::validate(spec, &cx) {
                Ok(w) => webhooks.push(Arc::new(w)),
                Err(problems) => {
                    for p in problems {
                        self.problem(&format!("{key}.{}", p.key), p.message);
                    }
                }
            }
        }
        let mut seen = HashSet::new();
        let mut sources = Vec::new();
        for (i, spec) in raw.sources.iter().enumerate() {
            let key = format!("sources[{i}]");
            let id = spec.id.clone().unwrap_or_default();
            if !seen.insert(id.clone()) {
                self.problem(&format!("{key}.id"), format!("duplicate source id {id:?}"));
            }
            let cx = source::Context {
                plugins_dir: &server.plugins_dir,
                max_body_bytes: server.max_body_bytes,
                origin: Origin::Config,
            };
            match source::validate(spec, &cx) {
                Ok(s) => sources.push(Arc::new(s)),
                Err(problems) => {
                    for p in problems {
                        self.problem(&format!("{key}.{}", p.key), p.message);
                    }
                }
            }
        }
        Config {
            path: path.to_path_buf(),
            server,
            plugins,
            delivery,
            allow_targets,
            store,
            telemetry,
            webhooks,
            sources,
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

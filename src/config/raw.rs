//! The file as written: serde shapes with every key named, unknown keys refused.
//! Values that validation may complain about keep their span for the line number.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::OnError;

pub use toml::Spanned;

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub delivery: RawDelivery,
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: Spanned<String>,
    pub data_dir: String,
    pub plugins_dir: String,
    pub max_body_bytes: usize,
    pub max_pending_events: Spanned<usize>,
    pub ingest_token: String,
    pub admin_token: String,
    pub retention_days: u32,
    pub header_read_timeout_secs: u64,
    pub body_read_timeout_secs: u64,
    pub max_connections: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: spanned("127.0.0.1:8700".into()),
            data_dir: "data".into(),
            plugins_dir: "plugins".into(),
            max_body_bytes: 1 << 20,
            max_pending_events: spanned(10_000),
            ingest_token: String::new(),
            admin_token: String::new(),
            retention_days: 14,
            header_read_timeout_secs: 5,
            body_read_timeout_secs: 10,
            max_connections: 1024,
        }
    }
}

/// `[delivery]`, and the same keys overridden on a webhook.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub timeout_secs: Option<u64>,
    pub max_retries: Option<u32>,
    pub success_status: Option<Spanned<Vec<u16>>>,
    pub retry_delays_secs: Option<Vec<u64>>,
    pub max_in_flight: Option<usize>,
    pub allow_targets: Option<Spanned<Vec<String>>>,
    pub disable_after_hours: Option<u64>,
    pub rate_limit_per_sec: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPlugins {
    pub timeout_ms: u64,
    pub memory_mb: usize,
}

impl Default for RawPlugins {
    fn default() -> Self {
        RawPlugins {
            timeout_ms: 50,
            memory_mb: 32,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub id: Spanned<String>,
    pub url: Spanned<String>,
    #[serde(default = "all_events")]
    pub events: Spanned<Vec<String>>,
    pub owners: Option<Vec<String>>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default = "empty")]
    pub secrets: Spanned<Vec<String>>,
    #[serde(default = "empty")]
    pub headers: Spanned<BTreeMap<String, String>>,
    #[serde(default = "unordered")]
    pub ordering: Spanned<String>,
    #[serde(default)]
    pub plugins: Vec<RawPluginRef>,
    // Per-webhook overrides of `[delivery]`.
    pub timeout_secs: Option<u64>,
    pub max_retries: Option<u32>,
    pub success_status: Option<Spanned<Vec<u16>>>,
    pub retry_delays_secs: Option<Vec<u64>>,
    pub max_in_flight: Option<usize>,
    pub allow_targets: Option<Spanned<Vec<String>>>,
    pub disable_after_hours: Option<u64>,
    pub rate_limit_per_sec: Option<u32>,
}

impl RawWebhook {
    /// The `[delivery]` keys this webhook overrides.
    pub fn overrides(&self) -> RawDelivery {
        RawDelivery {
            timeout_secs: self.timeout_secs,
            max_retries: self.max_retries,
            success_status: self.success_status.clone(),
            retry_delays_secs: self.retry_delays_secs.clone(),
            max_in_flight: self.max_in_flight,
            allow_targets: self.allow_targets.clone(),
            disable_after_hours: self.disable_after_hours,
            rate_limit_per_sec: self.rate_limit_per_sec,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPluginRef {
    pub name: Spanned<String>,
    #[serde(default = "hold")]
    pub on_error: OnError,
    #[serde(default = "empty_table")]
    pub config: toml::Table,
}

fn all_events() -> Spanned<Vec<String>> {
    spanned(vec!["*".into()])
}
fn yes() -> bool {
    true
}
fn empty<T: Default>() -> Spanned<T> {
    spanned(T::default())
}
fn unordered() -> Spanned<String> {
    spanned("unordered".into())
}
fn hold() -> OnError {
    OnError::Hold
}
fn empty_table() -> toml::Table {
    toml::Table::new()
}

//! The file as written: serde shapes with every key named, unknown keys
//! refused. Line numbers for validation problems come from [`super::lines`].

use serde::Deserialize;

use super::telemetry::RawTelemetry;
use super::{DeliveryDefaults, SourceSpec, WebhookSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub delivery: DeliveryDefaults,
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    #[serde(default)]
    pub webhooks: Vec<WebhookSpec>,
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    pub backend: String,
    pub url: String,
    pub pool_size: usize,
    pub lease_secs: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            backend: "sqlite".into(),
            url: String::new(),
            pool_size: 16,
            lease_secs: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub data_dir: String,
    pub plugins_dir: String,
    pub max_body_bytes: usize,
    pub max_pending_events: usize,
    pub ingest_token: String,
    pub admin_token: String,
    pub retention_days: u32,
    pub header_read_timeout_secs: u64,
    pub body_read_timeout_secs: u64,
    pub max_connections: usize,
    pub node_id: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8700".into(),
            data_dir: "data".into(),
            plugins_dir: "plugins".into(),
            max_body_bytes: 1 << 20,
            max_pending_events: 10_000,
            ingest_token: String::new(),
            admin_token: String::new(),
            retention_days: 14,
            header_read_timeout_secs: 5,
            body_read_timeout_secs: 10,
            max_connections: 1024,
            node_id: String::new(),
        }
    }
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

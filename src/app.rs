//! The state every HTTP handler shares, in its own module so handlers and
//! the server wiring both depend on it rather than on each other.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::HeaderMap;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, Principal, Tokens};
use crate::config::Config;
use crate::deliver::Deliverer;
use crate::error::ApiError;
use crate::event::Clock;
use crate::ingest;
use crate::metrics::Metrics;
use crate::plugin::Plugins;
use crate::reload::ReloadStatus;
use crate::router::Table;
use crate::store::Store;

/// State shared by every HTTP handler.
pub struct App {
    pub config: Arc<ArcSwap<Config>>,
    /// Every webhook, config and API ones, indexed for routing; swapped whole.
    pub hooks: Arc<ArcSwap<Table>>,
    /// Held while the set of webhooks changes (an API write, a config
    /// reload), so each new table is built from the one before it.
    pub hooks_write: tokio::sync::Mutex<()>,
    pub store: Arc<dyn Store>,
    pub deliverer: Arc<Deliverer>,
    pub plugins: Arc<Plugins>,
    pub metrics: Arc<Metrics>,
    pub tokens: Tokens,
    /// Cancelled when shutdown begins: ingest answers 503 from then on.
    pub shutting_down: CancellationToken,
    pub reload_status: ReloadStatus,
    pub clock: Arc<dyn Clock>,
    /// Events inside ingest and not yet committed (see [`ingest::Admission`]).
    pub pending_events: ingest::Admission,
    /// Inbound sources, refused requests and the routing task's bell.
    pub inbound: Arc<crate::inbound::Inbound>,
    /// This node's id.
    pub node: String,
    /// Trace export; `None` (off) builds no spans at all.
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

impl App {
    /// The caller of a request, or 401.
    pub fn principal(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        auth::authenticate(
            headers,
            &self.config.load().server,
            &self.tokens,
            self.clock.now(),
        )
    }

    /// Swaps in `table` and brings the delivery workers in line with it.
    /// Call with `hooks_write` held.
    pub async fn install(&self, table: Table) {
        let old = self.hooks.swap(Arc::new(table));
        self.deliverer
            .reconcile(Some(&old), &self.hooks.load())
            .await;
    }
}

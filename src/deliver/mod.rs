//! The durable deliverer: per-webhook workers that POST signed requests and
//! retry on the schedule until the subscriber succeeds or the delivery dies.
//!
//! Work is driven from the store, so nothing is lost when weir stops; the
//! deliverer only tracks which workers run and which webhooks are disabled.

pub mod classify;
pub mod http;
pub mod schedule;
pub mod sign;
pub mod ssrf;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::plugin::Plugins;
use crate::router::Table;
use crate::store::Store;

/// What every worker and attempt needs.
pub struct Shared {
    pub store: Arc<dyn Store>,
    /// Every webhook; swapped whole when the config or the API changes one.
    pub hooks: Arc<ArcSwap<Table>>,
    pub plugins: Arc<Plugins>,
    pub clients: http::Clients,
    /// Webhooks disabled (410, continuous failure) with the reason. Their
    /// deliveries stay queued for when they are enabled again.
    pub disabled: Mutex<HashMap<String, String>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub clock: Arc<dyn crate::event::Clock>,
    /// Attempts on the wire across every webhook: `max_in_flight` bounds
    /// one webhook, this bounds the node, so 10,000 webhooks cannot open
    /// 10,000 × `max_in_flight` connections at once.
    pub outbound: tokio::sync::Semaphore,
    /// This node's id, recorded with each attempt.
    pub node: String,
    /// Trace export; `None` (off) builds no spans at all.
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
}

/// Attempts on the wire at once, node-wide.
pub const MAX_OUTBOUND: usize = 1024;

impl Shared {
    async fn disable(&self, webhook: &str, reason: String) {
        warn!(webhook, %reason, "disabling webhook");
        self.disabled
            .lock()
            .expect("disabled")
            .insert(webhook.to_owned(), reason.clone());
        if let Err(e) = self.store.set_disabled(webhook, Some(reason)).await {
            warn!(webhook, error = %e, "cannot record the disabled state");
        }
    }
}

struct Running {
    wake: Arc<Notify>,
    stop: CancellationToken,
}

pub struct Deliverer {
    pub shared: Arc<Shared>,
    workers: Mutex<HashMap<String, Running>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Deliverer {
    pub fn new(shared: Arc<Shared>, tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        Deliverer {
            shared,
            workers: Mutex::new(HashMap::new()),
            tracker,
            shutdown,
        }
    }

    /// Loads persisted webhook health and starts a worker per webhook.
    pub async fn start(&self) -> Result<(), crate::store::StoreError> {
        self.load_disabled().await?;
        let table = self.shared.hooks.load_full();
        self.reconcile(None, &table).await;
        Ok(())
    }

    /// Takes the disabled webhooks from the store (another node may have
    /// disabled or enabled one), waking the workers of those enabled again.
    pub async fn load_disabled(&self) -> Result<(), crate::store::StoreError> {
        let now = self.shared.store.disabled().await?;
        let before = std::mem::replace(&mut *self.shared.disabled.lock().expect("disabled"), now);
        let current = self.shared.disabled.lock().expect("disabled").clone();
        for id in before.keys().filter(|id| !current.contains_key(*id)) {
            self.notify(id);
        }
        Ok(())
    }

    /// Wakes every worker (after a gap in what other nodes told this one).
    pub fn wake_all(&self) {
        for w in self.workers.lock().expect("workers").values() {
            w.wake.notify_one();
        }
    }

    /// Wakes the worker of `webhook` (new deliveries, a replay).
    pub fn notify(&self, webhook: &str) {
        if let Some(w) = self.workers.lock().expect("workers").get(webhook) {
            w.wake.notify_one();
        }
    }

    /// Brings workers in line with `new` after a table swap: starts workers
    /// for added webhooks, stops removed ones, cancels the live deliveries of
    /// webhooks that are (now) inactive, and wakes the rest so they pick up
    /// changed settings.
    pub async fn reconcile(&self, old: Option<&Table>, new: &Table) {
        for hook in new.all() {
            let was_active = old.and_then(|o| o.get(&hook.id)).map(|h| h.active);
            if !hook.active && was_active != Some(false) {
                match self
                    .shared
                    .store
                    .cancel_live(&hook.id, "webhook deactivated", self.shared.clock.now())
                    .await
                {
                    Ok(n) if n > 0 => {
                        info!(webhook = %hook.id, canceled = n, "webhook inactive: canceled pending deliveries")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        warn!(webhook = %hook.id, error = %e, "cannot cancel deliveries of inactive webhook")
                    }
                }
            }
        }
        let mut workers = self.workers.lock().expect("workers");
        workers.retain(|id, w| {
            let keep = new.get(id).is_some();
            if !keep {
                w.stop.cancel();
            }
            keep
        });
        for hook in new.all() {
            if let Some(w) = workers.get(&hook.id) {
                // Only a changed webhook needs its worker to look again.
                let before = old.and_then(|o| o.get(&hook.id));
                if before.is_none_or(|b| !Arc::ptr_eq(b, hook) && **b != **hook) {
                    w.wake.notify_one();
                }
                continue;
            }
            let wake = Arc::new(Notify::new());
            let stop = self.shutdown.child_token();
            let worker = worker::Worker {
                id: hook.id.clone(),
                shared: self.shared.clone(),
                wake: wake.clone(),
                stop: stop.clone(),
            };
            self.tracker.spawn(worker.run());
            workers.insert(hook.id.clone(), Running { wake, stop });
        }
    }

    /// Clears a webhook's disabled state and wakes it.
    pub async fn enable(&self, webhook: &str) -> Result<(), crate::store::StoreError> {
        self.shared
            .disabled
            .lock()
            .expect("disabled")
            .remove(webhook);
        self.shared.store.set_disabled(webhook, None).await?;
        self.notify(webhook);
        Ok(())
    }

    pub fn disabled_reason(&self, webhook: &str) -> Option<String> {
        self.shared
            .disabled
            .lock()
            .expect("disabled")
            .get(webhook)
            .cloned()
    }
}

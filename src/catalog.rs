//! Webhooks declared through the API, next to those of `config.toml`: how a
//! stored one becomes a [`Webhook`] (the same validation as a config one,
//! against the current `[delivery]` defaults) and how the routing table is
//! rebuilt from both when either side changes.

use std::sync::Arc;

use tracing::error;

use crate::config::{Config, Problem, Webhook};
use crate::router::Table;
use crate::store::{Store, StoreError, StoredWebhook};

/// Resolves a stored API webhook against `config`. Plugin files are not
/// checked again: a webhook accepted once keeps routing, and a missing
/// plugin is then a plugin failure its `on_error` handles.
pub fn resolve(
    config: &Config,
    stored: &StoredWebhook,
    check_plugins: bool,
) -> Result<Webhook, Vec<Problem>> {
    let mut spec = stored.spec.clone();
    spec.id = Some(stored.id.clone());
    spec.secrets = Some(stored.secrets.iter().map(|s| s.secret.clone()).collect());
    let mut hook = config.validate_api_webhook(&spec, check_plugins)?;
    for (secret, kept) in hook.secrets.iter_mut().zip(&stored.secrets) {
        secret.expires_at = kept.expires_at;
    }
    hook.created_at = Some(stored.created_at);
    hook.updated_at = Some(stored.updated_at);
    Ok(hook)
}

/// Why a table cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("webhook id {0:?} is defined in config.toml and also through the API; rename one")]
    Collision(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A table of `config`'s webhooks and `api`'s, refusing an id used by both.
pub fn table(config: &Config, api: Vec<Arc<Webhook>>) -> Result<Table, TableError> {
    if let Some(clash) = api.iter().find(|h| config.webhook(&h.id).is_some()) {
        return Err(TableError::Collision(clash.id.clone()));
    }
    Ok(Table::new(&config.webhooks, api))
}

/// The table at start: `config` plus every API webhook in the store. A stored
/// webhook that no longer validates is logged and left out (its deliveries
/// wait in the store) rather than keeping weir from starting.
pub async fn load(config: &Config, store: &dyn Store) -> Result<Table, TableError> {
    let mut api = Vec::new();
    for stored in store.api_webhooks().await? {
        match resolve(config, &stored, false) {
            Ok(h) => api.push(Arc::new(h)),
            Err(problems) => {
                let why: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.key, p.message))
                    .collect();
                error!(webhook = %stored.id, problems = %why.join("; "), "stored webhook no longer valid; it is not routed");
            }
        }
    }
    table(config, api)
}

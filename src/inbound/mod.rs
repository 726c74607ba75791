//! Inbound: webhooks other services send to weir's users.
//!
//! `ANY /in/{source}` ([`catch`]) verifies a request against its source's
//! scheme ([`verify`]) and commits it whole before answering `202`; nothing
//! else runs on the request path. A routing task ([`route`]) then turns
//! each caught request into events (by the source's `type_from`/`id_from`,
//! or its source plugin) and ingests them like posted events, so they reach
//! webhooks through the same plugins, retries and log.

pub mod catch;
pub mod route;
pub mod verify;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tracing::error;

use crate::config::{Config, InboundSource, Problem};
use crate::event::Millis;
use crate::store::{Store, StoreError, StoredSource};

/// Refused requests kept per source, for debugging a sender's signing.
pub const REFUSED_KEPT: usize = 50;
/// Bytes of a refused request's body kept.
pub const REFUSED_BODY_BYTES: usize = 4096;

/// Every source, config and API ones, by id; swapped whole.
pub type SourceTable = HashMap<String, Arc<InboundSource>>;

/// The inbound state a node shares between its handlers and its router.
#[derive(Default)]
pub struct Inbound {
    pub sources: ArcSwap<SourceTable>,
    /// The last refused requests per source, newest last (this node's).
    pub refused: Mutex<HashMap<String, VecDeque<Refused>>>,
    /// Rings the routing task when a request was caught or replayed.
    pub wake: Notify,
}

/// A request refused at the door, kept (bounded) so its sender can see why.
#[derive(Debug, Clone)]
pub struct Refused {
    pub at: Millis,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// At most [`REFUSED_BODY_BYTES`]; empty when refused before the body
    /// was read.
    pub body: Vec<u8>,
    pub reason: String,
}

impl Inbound {
    pub fn new(table: SourceTable) -> Inbound {
        Inbound {
            sources: ArcSwap::from_pointee(table),
            ..Inbound::default()
        }
    }

    pub fn refuse(&self, source: &str, r: Refused) {
        let mut all = self.refused.lock().expect("refused log");
        let ring = all.entry(source.to_owned()).or_default();
        if ring.len() == REFUSED_KEPT {
            ring.pop_front();
        }
        ring.push_back(r);
    }

    pub fn forget_refused(&self, source: &str) {
        self.refused.lock().expect("refused log").remove(source);
    }

    pub fn refused_of(&self, source: &str) -> Vec<Refused> {
        let all = self.refused.lock().expect("refused log");
        all.get(source)
            .map(|r| r.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

/// Resolves a stored API source against `config` (plugin files are not
/// checked again: a missing plugin holds its requests, replayable).
pub fn resolve(config: &Config, stored: &StoredSource) -> Result<InboundSource, Vec<Problem>> {
    let mut spec = stored.spec.clone();
    spec.id = Some(stored.id.clone());
    let mut source = config.validate_api_source(&spec, false)?;
    source.created_at = Some(stored.created_at);
    Ok(source)
}

/// Why a source table cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("source id {0:?} is defined in config.toml and also through the API; rename one")]
    Collision(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `config`'s sources and every API source in the store. A stored source
/// that no longer validates is logged and left out.
pub async fn load(config: &Config, store: &dyn Store) -> Result<SourceTable, TableError> {
    let mut table: SourceTable = config
        .sources
        .iter()
        .map(|s| (s.id.clone(), s.clone()))
        .collect();
    for stored in store.api_sources().await? {
        if table.contains_key(&stored.id) {
            return Err(TableError::Collision(stored.id));
        }
        match resolve(config, &stored) {
            Ok(s) => {
                table.insert(s.id.clone(), Arc::new(s));
            }
            Err(problems) => {
                let why: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.key, p.message))
                    .collect();
                error!(source = %stored.id, problems = %why.join("; "), "stored source no longer valid; it catches nothing");
            }
        }
    }
    Ok(table)
}

/// Header values that carry a credential: kept as `<scheme> ***`.
pub fn redact(name: &str, value: &str) -> String {
    if name.eq_ignore_ascii_case("authorization")
        || name.eq_ignore_ascii_case("proxy-authorization")
    {
        match value.split_once(' ') {
            Some((scheme, _)) => format!("{scheme} ***"),
            None => "***".into(),
        }
    } else {
        value.to_owned()
    }
}

/// An event type made from what a sender wrote: lower case, any character
/// outside `[a-z0-9_.-]` becomes `.` (Shopify's `orders/create` becomes
/// `orders.create`), at most 128 characters.
pub fn normalise_type(raw: &str) -> String {
    raw.trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '.'
            }
        })
        .take(128)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_from_senders_are_made_valid() {
        assert_eq!(normalise_type("orders/create"), "orders.create");
        assert_eq!(normalise_type("Push"), "push");
        assert_eq!(
            normalise_type("customer.subscription.created"),
            "customer.subscription.created"
        );
        assert_eq!(normalise_type(&"x".repeat(300)).len(), 128);
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact("Authorization", "Bearer abc"), "Bearer ***");
        assert_eq!(redact("authorization", "abc"), "***");
        assert_eq!(redact("x-hub-signature-256", "sha256=ab"), "sha256=ab");
    }
}

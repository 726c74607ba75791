//! The plugin stage: a sandboxed host for `weir:plugin` components and the
//! registry of loaded plugins.
//!
//! One engine and one linker; each plugin is compiled once (cached on disk by
//! content hash) and pre-instantiated; every call gets a fresh `Store` with a
//! deadline and a memory limit, on a blocking thread so the async workers
//! never stall. The registry is swapped whole, so a call always runs entirely
//! on the version it started with.

mod bindings;
mod breaker;
mod host;
mod registry;

use serde::Serialize;

pub use host::{Plugins, Snapshot, check_output};

use crate::store::Rendered;

/// What a plugin decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Drop(String),
    Deliver(Rendered),
}

/// Ids a plugin call is logged under.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    pub webhook: &'a str,
    pub event: &'a str,
    pub delivery: &'a str,
}

/// Why a plugin call produced no verdict. Each is a "plugin failure" that the
/// webhook's `on_error` policy handles.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginError {
    #[error("not loaded: {0}")]
    NotLoaded(String),
    #[error("returned err: {0}")]
    Returned(String),
    #[error("exceeded its time limit of {0} ms")]
    Timeout(u64),
    #[error("exceeded its memory limit of {0} MiB")]
    Memory(usize),
    #[error("{0}")]
    Trap(String),
    #[error("produced an invalid request: {0}")]
    InvalidOutput(String),
    #[error(
        "benched: it ran out of time or memory {strikes} times in a row, so it is skipped for {secs_left} s more"
    )]
    Benched { strikes: u32, secs_left: u64 },
}

/// A plugin as `GET /v1/plugins` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PluginStatus {
    pub name: String,
    pub sha256: Option<String>,
    pub loaded_at: Option<String>,
    pub state: PluginState,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    Ready,
    Failed,
}

/// One change a rescan made, for the reload log.
#[derive(Debug, Clone)]
pub struct Change {
    pub name: String,
    pub what: &'static str,
    pub error: Option<String>,
}

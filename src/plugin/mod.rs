//! The plugin stage: a sandboxed host for `weir:plugin` components and the
//! registry of loaded plugins. A component is a filter plugin (a webhook's
//! chain calls it per event) or a source plugin (it maps a caught request to
//! events); the registry records which, and a call of the wrong kind fails.
//!
//! An engine and a linker per compiler (Cranelift, and Winch for a large
//! plugin's first build); each plugin is compiled (cached on disk by content
//! hash) and pre-instantiated; every call gets a fresh `Store`, on the engine
//! that compiled it, with a deadline and a memory limit, on a blocking thread
//! so the async workers never stall. The registry is swapped whole, so a call
//! always runs entirely on the version it started with.

mod bindings;
mod breaker;
mod compile;
mod dry_run;
mod engine;
mod host;
mod pace;
mod registry;
mod source;
mod state;
mod tier;

use serde::Serialize;

pub use dry_run::DryRun;
pub use host::{MAX_BODY, Plugins, Snapshot, check_output};
pub use source::{EventDraft, Incoming};

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
    /// What the plugin returned fails weir's checks: a request it cannot
    /// send, or (from a source plugin) an event it cannot accept.
    #[error("produced invalid output: {0}")]
    InvalidOutput(String),
    /// The plugin is of the other kind than the call needs.
    #[error("plugin {plugin} is a {is} plugin; {}", is.misplaced())]
    WrongKind { plugin: String, is: PluginKind },
    #[error(
        "benched: it ran out of time or memory {strikes} times in a row, so it is skipped for {secs_left} s more"
    )]
    Benched { strikes: u32, secs_left: u64 },
}

/// Which world a plugin's component targets, and so where it may be used.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `handle`: a step of a webhook's chain.
    Filter,
    /// Exports `map-request`: turns a request caught at `POST /in/{source}` into events.
    Source,
}

impl PluginKind {
    /// Where a plugin of this kind was used by mistake, and what belongs there.
    fn misplaced(self) -> &'static str {
        match self {
            PluginKind::Filter => "a source needs a source plugin",
            PluginKind::Source => "a webhook's chain needs a filter plugin",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Filter => "filter",
            PluginKind::Source => "source",
        })
    }
}

/// A plugin as `GET /v1/plugins` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PluginStatus {
    pub name: String,
    pub sha256: Option<String>,
    pub loaded_at: Option<String>,
    pub state: PluginState,
    pub error: Option<String>,
    /// The kind of the version serving; `null` while none is loaded. Absent
    /// in answers of weirs older than source plugins, hence the default.
    #[serde(default)]
    pub kind: Option<PluginKind>,
    /// Which compiler built the version serving: `winch` while a large
    /// plugin's optimised build is still compiling, then `cranelift`; `null`
    /// while none is loaded. Absent in answers of weirs before tiering.
    #[serde(default)]
    pub compiler: Option<Compiler>,
}

/// Which compiler made a loaded plugin's machine code.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    /// The baseline compiler: builds a large component several times faster
    /// and runs it slower. A large plugin's first build, until Cranelift's
    /// is ready.
    Winch,
    /// The optimising compiler: what every plugin ends up running on.
    Cranelift,
}

impl std::fmt::Display for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compiler::Winch => "winch",
            Compiler::Cranelift => "cranelift",
        })
    }
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

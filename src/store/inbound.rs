//! What the store keeps for inbound sources: the requests they caught and
//! the sources declared through the API.

use serde::Serialize;

use crate::config::SourceSpec;
use crate::event::Millis;

/// A request a source caught, to commit before the sender gets its `2xx`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCaught {
    pub id: String,
    pub source: String,
    /// The source's `owner_id`, so its log stays scoped.
    pub tenant: Option<String>,
    pub received_at: Millis,
    pub method: String,
    /// Path and query, as requested.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The sender's own delivery id: a second request with it is a retry.
    pub dedup_key: Option<String>,
    pub node: Option<String>,
}

/// What became of a caught request at commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Caught {
    Stored,
    /// The sender already delivered this (same `dedup_key`): the first one's id.
    Duplicate(String),
}

/// Where a caught request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InboundState {
    /// Committed, not yet turned into events.
    Pending,
    /// Turned into events (possibly none), which route like posted ones.
    Routed,
    /// Could not be turned into events (a plugin failed, no type): kept,
    /// replayable.
    Held,
}

impl InboundState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Routed => "routed",
            Self::Held => "held",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Routed, Self::Held]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A caught request as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CaughtRequest {
    pub seq: i64,
    pub id: String,
    pub source: String,
    pub tenant: Option<String>,
    pub received_at: Millis,
    pub method: String,
    pub target: String,
    /// Empty in lists; whole when one request is read.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub body_bytes: u64,
    pub dedup_key: Option<String>,
    pub state: InboundState,
    pub reason: Option<String>,
    pub events: Vec<String>,
    pub updated_at: Millis,
}

/// Which caught requests to list: newest first.
#[derive(Debug, Clone, Default)]
pub struct InboundFilter {
    pub source: Option<String>,
    pub tenant: Option<String>,
    pub state: Option<InboundState>,
    /// Only requests older than the one with this id.
    pub before: Option<String>,
    pub limit: usize,
}

/// What routing made of a caught request.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundOutcome {
    pub seq: i64,
    pub state: InboundState,
    pub reason: Option<String>,
    pub events: Vec<String>,
}

/// A source declared through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSource {
    pub id: String,
    pub spec: SourceSpec,
    pub owner: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A new request id: sortable by arrival, unique across nodes.
pub fn new_request_id() -> String {
    format!("req_{}", ulid::Ulid::new().to_string().to_lowercase())
}

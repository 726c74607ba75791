//! The durable store: events, deliveries, attempts and webhook health.
//!
//! The router and deliverer speak to it only through [`Store`], in domain
//! terms, and never learn which backend runs: SQLite ([`SqliteStore`]) is
//! the embedded one, PostgreSQL ([`PgStore`]) lets several nodes share one
//! database. A write method returns only once its change is committed, so an
//! `Ok` from [`Store::ingest`] is the promise behind a `202`.

mod catalog;
mod inbound;
pub mod migrate;
pub mod postgres;
mod query;
pub mod sqlite;

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::config::{Ordering, WebhookSpec};
use crate::event::{Event, Millis};
use crate::token::TokenRecord;

pub use inbound::{
    Caught, CaughtRequest, InboundFilter, InboundOutcome, InboundState, NewCaught, StoredSource,
    new_request_id,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store is closed")]
    Closed,
    /// The database cannot be reached (down, failing over, pool exhausted):
    /// worth retrying shortly; ingest answers 503 with `Retry-After`.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(String),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("cannot open store: {0}")]
    Open(String),
    #[error("{0}")]
    Schema(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Where a delivery stands. `Pending` and `Retrying` are the live states the
/// deliverer works through; the rest are final until a replay.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Retrying,
    Dead,
    Held,
    Canceled,
    Filtered,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 7] = [
        Self::Pending,
        Self::Delivered,
        Self::Retrying,
        Self::Dead,
        Self::Held,
        Self::Canceled,
        Self::Filtered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Held => "held",
            Self::Canceled => "canceled",
            Self::Filtered => "filtered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Text a subscriber, producer or plugin wrote, made fit for the log: a NUL
/// (which PostgreSQL text cannot hold) becomes U+FFFD on every backend, so
/// both keep the same thing.
pub(crate) fn log_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// A new delivery's id: sortable by creation, unique across nodes.
pub(crate) fn new_delivery_id() -> String {
    format!("dlv_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// An event to store, with the webhooks the router matched it to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: Event,
    pub webhooks: Vec<Target>,
}

/// A webhook an event goes to, and the owner its delivery belongs to (the
/// webhook's tenant), so the log stays scoped after the webhook is gone.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub webhook: String,
    pub tenant: Option<String>,
}

/// What happened to one event of an ingest call.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Stored, with one new delivery per matched webhook.
    Stored(Vec<NewDelivery>),
    /// The same `(owner_id, id)` was accepted inside the dedup window.
    Duplicate,
}

/// A delivery made at ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub webhook: String,
    pub id: String,
}

/// A request a plugin chain produced (or the default envelope).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Rendered {
    pub body: String,
    pub headers: Vec<(String, String)>,
}

/// The outcome of running a delivery's plugin chain.
#[derive(Debug, Clone, PartialEq)]
pub enum Render {
    Deliver(Rendered),
    Filtered(String),
    Held(String),
}

/// What a delivery's plugin chain logged the last time it ran, kept with
/// the delivery so the log can show it: each line prefixed with its
/// plugin's name, at most [`PluginLog::MAX_LINES`] lines and
/// [`PluginLog::MAX_BYTES`] in all (a last line says how many were left out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginLog {
    lines: Vec<String>,
    bytes: usize,
    dropped: usize,
}

impl PluginLog {
    pub const MAX_LINES: usize = 50;
    pub const MAX_BYTES: usize = 4096;
    /// Room kept for the line that counts the dropped ones.
    const MARK_ROOM: usize = 64;

    /// Adds what plugin `plugin` logged in one call.
    pub fn extend(&mut self, plugin: &str, lines: Vec<String>) {
        for line in lines {
            let line = format!("{plugin}: {line}");
            let fits = self.lines.len() + 1 < Self::MAX_LINES
                && self.bytes + line.len() + Self::MARK_ROOM <= Self::MAX_BYTES;
            if fits && self.dropped == 0 {
                self.bytes += line.len();
                self.lines.push(line);
            } else {
                self.dropped += 1;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped == 0
    }

    /// The lines, with the count of those left out last.
    pub fn lines(&self) -> Vec<String> {
        let mut out = self.lines.clone();
        if self.dropped > 0 {
            out.push(format!("({} more lines not kept)", self.dropped));
        }
        out
    }

    /// As stored: JSON `[line, ...]`, or `NULL` when nothing was logged
    /// (most chains log nothing, and then nothing is written).
    pub(crate) fn to_column(&self) -> Option<String> {
        (!self.is_empty()).then(|| {
            let lines: Vec<String> = self
                .lines()
                .iter()
                .map(|l| log_text(l).into_owned())
                .collect();
            serde_json::to_string(&lines).expect("strings serialise")
        })
    }

    pub(crate) fn from_column(text: Option<&str>) -> Result<Vec<String>, StoreError> {
        text.map_or(Ok(Vec::new()), |t| {
            serde_json::from_str(t).map_err(|e| StoreError::Corrupt(format!("plugin log: {e}")))
        })
    }
}

/// A stored render (`body`, `headers` as JSON) read back; `None` until the
/// chain ran. The chain's headers are stored whenever it ran; its body only
/// when a plugin changed it from `event`'s envelope (see [`Fresh::new`]), so a `NULL`
/// body beside stored headers is the envelope, unchanged.
pub(crate) fn stored_render(
    body: Option<String>,
    headers: Option<&str>,
    event: &Event,
) -> Result<Option<Rendered>, StoreError> {
    let headers = match headers {
        Some(h) => serde_json::from_str(h)
            .map_err(|e| StoreError::Corrupt(format!("delivery headers: {e}")))?,
        None if body.is_some() => Vec::new(),
        None => return Ok(None),
    };
    let body = body.unwrap_or_else(|| event.envelope_json());
    Ok(Some(Rendered { body, headers }))
}

/// A request the plugin chain made for this attempt, and what it logged,
/// as the store keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct Fresh {
    /// `None` when the chain left the body as the event's envelope: most
    /// filters do, and the store need not write the same bytes again.
    pub body: Option<String>,
    /// The headers as a JSON array of pairs (the column's form).
    pub headers: String,
    pub log: PluginLog,
}

impl Fresh {
    /// What to keep of `rendered`, the chain's request; `body_changed`
    /// says whether its body is still the event's envelope.
    pub fn new(rendered: &Rendered, body_changed: bool, log: PluginLog) -> Fresh {
        let body = body_changed.then(|| rendered.body.clone());
        Fresh {
            body,
            headers: serde_json::to_string(&rendered.headers).expect("headers serialise"),
            log,
        }
    }
}

/// What a worker asks for: due deliveries of one webhook, within its limits.
#[derive(Debug, Clone)]
pub struct Claim {
    pub webhook: String,
    /// Deliveries due at or before this count (`Millis::MAX` when a webhook
    /// catches up after an outage).
    pub due_by: Millis,
    /// The server clock, for leases.
    pub now: Millis,
    pub ordering: Ordering,
    /// In flight at once for this webhook (across the cluster, where the
    /// backend is shared).
    pub max_in_flight: usize,
    /// Attempts per second for this webhook; 0 = unlimited.
    pub rate_limit_per_sec: u32,
    /// Deliveries this worker already has in flight.
    pub in_flight: Vec<i64>,
    /// At most this many now (a rate-limited worker takes one at a time, so
    /// it never holds deliveries another node could send).
    pub batch: usize,
}

impl Claim {
    /// How many this claim may take: its batch, within what `max_in_flight`
    /// leaves beside this worker's own in flight.
    pub fn wanted(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight.len())
            .min(self.batch)
    }
}

/// What a claim got.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    pub due: Vec<Due>,
    /// Set when a limit shared with other nodes held deliveries back: look
    /// again then.
    pub blocked_until: Option<Millis>,
    /// When the claim got fewer than it asked for, a backend may say in the
    /// same breath when the next live delivery is due (`Some(None)`: none
    /// is live), sparing the worker a [`Store::next_due_at`] round trip.
    pub next_due: Option<Option<Millis>>,
}

/// Live deliveries of one webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    pub webhook: String,
    pub live: u64,
}

/// Something another node changed, for backends shared by several nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// New or replayed deliveries for this webhook.
    Due(String),
    /// API webhooks or tokens changed.
    Catalog,
    /// The change feed was down and is back: anything may have changed.
    Resync,
}

/// A delivery the deliverer should attempt now.
#[derive(Debug, Clone)]
pub struct Due {
    pub seq: i64,
    pub id: String,
    pub webhook_id: String,
    pub event: Event,
    /// `None` until the plugin chain has run.
    pub rendered: Option<Rendered>,
    /// Failures since creation or the last replay: `n` of the schedule.
    pub failures: u32,
    /// Attempts ever made.
    pub attempts: u32,
}

/// One HTTP attempt, as recorded in the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub at: Millis,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The first 1 KiB of the response body.
    pub response: String,
    /// The node that made the attempt.
    pub node: Option<String>,
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterAttempt {
    Delivered,
    Retry { at: Millis },
    Dead,
}

/// Persistent health of a webhook, kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebhookHealth {
    pub disabled_reason: Option<String>,
    pub last_success_at: Option<Millis>,
    pub last_failure_at: Option<Millis>,
    /// Start of the current run of failures, if the last attempt failed.
    pub failing_since: Option<Millis>,
}

/// One attempt as a webhook's stats count it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptPoint {
    pub at: Millis,
    pub status: Option<u16>,
    pub latency_ms: u64,
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub id: String,
    pub webhook: String,
    /// The owner of the webhook when the delivery was made.
    pub tenant: Option<String>,
    pub event_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Option<Millis>,
    pub reason: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One delivery with everything its detail shows.
#[derive(Debug, Clone)]
pub struct StoredDelivery {
    pub record: DeliveryRecord,
    pub attempts: Vec<Attempt>,
    pub event: Event,
    /// The request as the plugin chain made it; `None` until the chain ran.
    pub rendered: Option<Rendered>,
    /// What the chain logged the last time it ran.
    pub plugin_log: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub webhook: Option<String>,
    /// Only deliveries of this owner's webhooks.
    pub tenant: Option<String>,
    pub state: Option<DeliveryState>,
    pub event_id: Option<String>,
    /// Only deliveries of events of exactly this type.
    pub event_type: Option<String>,
    /// Created at or after.
    pub since: Option<Millis>,
    /// Created before.
    pub until: Option<Millis>,
    /// Return deliveries older than this one (its id).
    pub after: Option<String>,
    pub limit: usize,
}

/// Which final deliveries a bulk replay takes.
#[derive(Debug, Clone)]
pub struct ReplayFilter {
    pub webhook: String,
    /// Only deliveries made for this owner (`None`: made for no owner):
    /// the webhook's owner now, so deliveries of an earlier webhook that had
    /// this id are never sent to the current one.
    pub tenant: Option<String>,
    pub state: DeliveryState,
    pub event_type: Option<String>,
    /// Last updated at or after.
    pub since: Option<Millis>,
    /// Last updated before.
    pub until: Option<Millis>,
}

/// Why a replay did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayRefused {
    NotFound,
    /// Already pending or retrying: it will be sent anyway.
    AlreadyQueued,
}

/// A webhook created through the API, as kept in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhook {
    pub id: String,
    /// What was asked for, with `secrets` left out (they are kept below).
    pub spec: WebhookSpec,
    pub secrets: Vec<StoredSecret>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// Bumped on every change, for compare-and-set updates.
    pub version: i64,
}

/// A signing secret and, once rotated out, when it stops signing.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StoredSecret {
    pub secret: String,
    pub expires_at: Option<Millis>,
}

/// Why a webhook write did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookConflict {
    /// Create: the id is taken.
    Exists,
    /// Update/delete: no such webhook.
    Missing,
    /// Update: someone else changed it since it was read.
    Changed,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores events and their deliveries atomically; duplicates inside the
    /// dedup window are recognised and get no new deliveries.
    async fn ingest(
        &self,
        events: Vec<NewEvent>,
        now: Millis,
        dedup_window_ms: Millis,
    ) -> Result<Vec<Ingested>, StoreError>;

    /// Live deliveries of the claim's webhook that are due, oldest due first,
    /// leaving out those in flight, up to `max_in_flight` in flight in all.
    /// With `Ordering::Fifo`, only the head of the queue, and only when
    /// nothing is in flight. Claimed deliveries are this node's until their
    /// attempt is recorded (a shared backend leases them).
    async fn claim(&self, claim: Claim) -> Result<Claimed, StoreError>;

    /// When the claim could next get something: the earliest live delivery
    /// of its webhook that is not in flight (for FIFO, the head, unless it
    /// is in flight). A delivery another node holds counts from when its
    /// lease would lapse.
    async fn next_due_at(&self, claim: &Claim) -> Result<Option<Millis>, StoreError>;

    /// Records a plugin chain outcome that ends the delivery (filtered, held),
    /// with what the chain logged, in one statement.
    async fn save_render(
        &self,
        seq: i64,
        render: &Render,
        log: &PluginLog,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// Records an attempt and moves the delivery on. A delivery canceled while
    /// its attempt was in flight stays canceled unless the attempt succeeded.
    /// `fresh` is the plugin chain's request (and log) when it ran for this
    /// attempt. Returns the webhook's health after the attempt.
    async fn finish_attempt(
        &self,
        seq: i64,
        webhook: &str,
        fresh: Option<Fresh>,
        attempt: Attempt,
        after: AfterAttempt,
    ) -> Result<WebhookHealth, StoreError>;

    /// Cancels every live delivery of `webhook` with `reason`; returns how many.
    async fn cancel_live(
        &self,
        webhook: &str,
        reason: &str,
        now: Millis,
    ) -> Result<u64, StoreError>;

    async fn health(&self, webhook: &str) -> Result<WebhookHealth, StoreError>;
    async fn set_disabled(&self, webhook: &str, reason: Option<String>) -> Result<(), StoreError>;
    /// Every disabled webhook, with the reason.
    async fn disabled(&self) -> Result<HashMap<String, String>, StoreError>;
    /// Live deliveries per webhook.
    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError>;
    /// Live deliveries of one webhook (on its index, without counting the
    /// others' queues).
    async fn queue_depth(&self, webhook: &str) -> Result<u64, StoreError>;

    /// The log, newest first, only the rows `filter` names.
    async fn list_deliveries(
        &self,
        filter: DeliveryFilter,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    async fn delivery(&self, id: &str) -> Result<Option<StoredDelivery>, StoreError>;

    /// The attempts made for `webhook` at or after `since`, newest first, at
    /// most `cap` of them.
    async fn attempt_points(
        &self,
        webhook: &str,
        since: Millis,
        cap: usize,
    ) -> Result<Vec<AttemptPoint>, StoreError>;

    /// Makes a final delivery pending again (held and filtered ones re-run the
    /// plugin chain). Returns its webhook.
    async fn replay(
        &self,
        id: &str,
        now: Millis,
    ) -> Result<Result<String, ReplayRefused>, StoreError>;
    /// Replays every delivery `filter` names, in one transaction; returns
    /// how many.
    async fn replay_all(&self, filter: &ReplayFilter, now: Millis) -> Result<u64, StoreError>;
    /// How many deliveries [`Store::replay_all`] would replay now.
    async fn count_replayable(&self, filter: &ReplayFilter) -> Result<u64, StoreError>;

    /// Deletes up to `batch` delivered/filtered deliveries older than `before`
    /// (and events left without deliveries); returns how many went.
    async fn purge(&self, before: Millis, batch: usize) -> Result<u64, StoreError>;

    /// Every webhook created through the API.
    async fn api_webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError>;
    async fn api_webhook(&self, id: &str) -> Result<Option<StoredWebhook>, StoreError>;
    /// Creates a webhook (`expected` = `None`) or replaces one whose version
    /// is still `expected`; the stored version becomes `hook.version`.
    async fn put_webhook(
        &self,
        hook: StoredWebhook,
        expected: Option<i64>,
    ) -> Result<Result<(), WebhookConflict>, StoreError>;
    /// Deletes an API webhook and cancels its live deliveries (kept, with
    /// the reason) in one transaction; returns how many were canceled.
    async fn delete_webhook(
        &self,
        id: &str,
        now: Millis,
    ) -> Result<Result<u64, WebhookConflict>, StoreError>;

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    async fn put_token(&self, token: TokenRecord) -> Result<(), StoreError>;
    /// Marks a token revoked; `None` when there is no such token.
    async fn revoke_token(&self, id: &str, now: Millis) -> Result<Option<TokenRecord>, StoreError>;

    /// Commits a caught request (or recognises the sender's retry of one)
    /// before the sender is answered.
    async fn catch(&self, request: NewCaught) -> Result<Caught, StoreError>;

    /// Up to `limit` caught requests still to route, oldest first. Where
    /// nodes share the store, each is leased to this node for `[store]
    /// lease_secs`, so a node that dies leaves its share to the others.
    async fn pending_inbound(&self, limit: usize) -> Result<Vec<CaughtRequest>, StoreError>;

    /// Records what routing made of caught requests, in one commit.
    async fn finish_inbound(
        &self,
        outcomes: Vec<InboundOutcome>,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// Caught requests, newest first, without headers and bodies.
    async fn inbound_requests(
        &self,
        filter: InboundFilter,
    ) -> Result<Vec<CaughtRequest>, StoreError>;

    /// One caught request, whole.
    async fn inbound_request(&self, id: &str) -> Result<Option<CaughtRequest>, StoreError>;

    /// Sends a caught request through routing again (after a plugin fix).
    /// `false` if there is no such request.
    async fn replay_inbound(&self, id: &str, now: Millis) -> Result<bool, StoreError>;

    /// Sources declared through the API.
    async fn api_sources(&self) -> Result<Vec<StoredSource>, StoreError>;

    /// Creates a source; `Err(Exists)` if the id is taken.
    async fn put_source(
        &self,
        source: StoredSource,
    ) -> Result<Result<(), WebhookConflict>, StoreError>;

    /// Deletes a source; its caught requests stay in the log.
    async fn delete_source(&self, id: &str) -> Result<bool, StoreError>;

    /// What other nodes change, for a backend several nodes share; `None`
    /// for one that only this process writes.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    /// Hands back whatever this node still holds (leases) before it stops.
    async fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_log_names_each_plugin_and_stays_bounded() {
        let mut log = PluginLog::default();
        assert!(log.is_empty());
        assert_eq!(log.to_column(), None, "nothing logged, nothing written");
        log.extend("a", vec!["info: one".into()]);
        log.extend("b", vec![]);
        log.extend("c", vec!["warn: two\0".into()]);
        let column = log.to_column().unwrap();
        assert_eq!(
            PluginLog::from_column(Some(&column)).unwrap(),
            ["a: info: one", "c: warn: two\u{FFFD}"]
        );

        let mut many = PluginLog::default();
        many.extend("p", (0..80).map(|i| format!("info: {i}")).collect());
        let lines = many.lines();
        assert_eq!(lines.len(), PluginLog::MAX_LINES);
        assert_eq!(lines[48], "p: info: 48");
        assert_eq!(lines[49], "(31 more lines not kept)");

        let mut long = PluginLog::default();
        long.extend("p", (0..10).map(|_| "x".repeat(1000)).collect());
        let lines = long.lines();
        assert!(lines.iter().map(|l| l.len()).sum::<usize>() <= PluginLog::MAX_BYTES);
        assert_eq!(lines.last().unwrap(), "(6 more lines not kept)");
    }

    #[test]
    fn a_stored_render_reads_back_and_a_broken_one_is_an_error() {
        let event = Event {
            id: "evt_1".into(),
            event_type: "record.create".into(),
            owner_id: None,
            data: r#"{"n":1}"#.into(),
            occurred_at: "2026-11-24T00:00:00Z".into(),
        };
        let r = stored_render(Some("{}".into()), Some(r#"[["a","b"]]"#), &event).unwrap();
        assert_eq!(r.unwrap().headers, [("a".to_owned(), "b".to_owned())]);
        assert_eq!(stored_render(None, None, &event).unwrap(), None);
        assert!(stored_render(Some("{}".into()), Some("nope"), &event).is_err());
        // The chain ran and left the body alone: only its headers were kept.
        let kept = Fresh::new(
            &Rendered {
                body: event.envelope_json(),
                headers: vec![("x-a".into(), "1".into())],
            },
            false,
            PluginLog::default(),
        );
        assert_eq!(kept.body, None);
        let back = stored_render(kept.body, Some(&kept.headers), &event)
            .unwrap()
            .unwrap();
        assert_eq!(back.body, event.envelope_json());
        assert_eq!(back.headers, [("x-a".to_owned(), "1".to_owned())]);
        assert!(PluginLog::from_column(Some("nope")).is_err());
    }
}

//! PostgreSQL: the store several weir nodes share.
//!
//! Every node may take events, run plugins and deliver. Ingest groups
//! concurrent requests into one transaction ([`ingest`]); deliveries are
//! claimed in batches under `FOR UPDATE SKIP LOCKED` with a lease that the
//! node renews while it works and that lapses when it dies ([`claim`]); nodes
//! wake each other with `LISTEN/NOTIFY` ([`feed`]). Leases and heartbeats use
//! the database's clock (`weir_now_ms()`), the one clock all nodes share.

mod claim;
mod feed;
mod inbound;
mod ingest;
mod log;
mod node;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::*;
use crate::config::DatabaseUrl;
use crate::token::TokenRecord;

/// Channel for "deliveries of webhook <payload> are due".
const DUE_CHANNEL: &str = "weir_due";
/// Channel for "API webhooks, tokens or webhook health changed".
const CATALOG_CHANNEL: &str = "weir_catalog";

pub struct PgStore {
    pool: Pool,
    node: String,
    ingest: mpsc::Sender<ingest::Job>,
    /// Deliveries this node holds leases on, renewed with the heartbeat.
    leased: Arc<Mutex<HashSet<i64>>>,
    changes: broadcast::Sender<Change>,
    stop: CancellationToken,
    /// How long a claim stays this node's without renewal.
    lease: Duration,
    /// Set when another process took over this node's id (this one was
    /// presumed dead): it must not claim again, or both would send.
    evicted: Arc<std::sync::atomic::AtomicBool>,
}

/// Where and as whom to connect.
pub struct Options {
    pub url: DatabaseUrl,
    pub pool_size: usize,
    /// The configured `[server] node_id`, or `None` for a generated one.
    pub node_id: Option<String>,
    /// `[store] lease_secs`: a node renews its leases and heartbeat six
    /// times per lease; a node silent for half a lease is gone.
    pub lease: Duration,
}

impl PgStore {
    /// Connects, applies pending migrations, registers this node and starts
    /// its heartbeat, ingest and change-feed tasks.
    pub async fn open(opts: Options) -> Result<PgStore, StoreError> {
        let pool = pool(&opts)?;
        {
            let mut client = pool.get().await.map_err(|e| {
                StoreError::Open(format!(
                    "cannot connect to {}: {}",
                    opts.url,
                    pool_error(&e)
                ))
            })?;
            super::migrate::postgres(&mut client).await?;
        }
        let stop = CancellationToken::new();
        let node = node::register(&pool, opts.node_id, opts.lease).await?;
        let (changes, _) = broadcast::channel(1024);
        let leased = Arc::new(Mutex::new(HashSet::new()));
        let (tx, rx) = mpsc::channel(4096);
        ingest::spawn(pool.clone(), rx);
        // The heartbeat has a connection of its own: a pool starved by work
        // must not let this node's leases lapse while it still sends.
        let beat_pool = self::pool(&Options {
            url: opts.url.clone(),
            pool_size: 1,
            node_id: None,
            lease: opts.lease,
        })?;
        let evicted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn(node::heartbeat(
            beat_pool,
            node.clone(),
            leased.clone(),
            opts.lease,
            evicted.clone(),
            stop.clone(),
        ));
        tokio::spawn(feed::listen(opts.url, changes.clone(), stop.clone()));
        Ok(PgStore {
            pool,
            node: node.id,
            ingest: tx,
            leased,
            changes,
            stop,
            lease: opts.lease,
            evicted,
        })
    }

    /// Applies pending migrations and returns the schema version.
    pub async fn migrate(url: &DatabaseUrl) -> Result<u32, StoreError> {
        let pool = pool(&Options {
            url: url.clone(),
            pool_size: 1,
            node_id: None,
            lease: Duration::from_secs(30),
        })?;
        let mut client = pool.get().await.map_err(|e| {
            StoreError::Open(format!("cannot connect to {url}: {}", pool_error(&e)))
        })?;
        super::migrate::postgres(&mut client).await
    }

    /// This node's id in the cluster.
    pub fn node(&self) -> &str {
        &self.node
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(pool_error(&e)))
    }

    fn release(&self, seq: i64) {
        self.leased.lock().expect("leases").remove(&seq);
    }
}

/// A delivery row's stored render (its `body` and `headers` columns) for
/// `event`; see [`stored_render`].
fn render_of(row: &tokio_postgres::Row, event: &Event) -> Result<Option<Rendered>, StoreError> {
    let body: Option<Vec<u8>> = row.get("body");
    let body = body
        .map(String::from_utf8)
        .transpose()
        .map_err(|_| StoreError::Corrupt("a rendered body is not UTF-8".into()))?;
    let headers: Option<String> = row.get("headers");
    stored_render(body, headers.as_deref(), event)
}

fn pool(opts: &Options) -> Result<Pool, StoreError> {
    let mut pg = tokio_postgres::Config::from_str(opts.url.expose())
        .map_err(|e| StoreError::Open(format!("{}: {e}", opts.url)))?;
    pg.connect_timeout(Duration::from_secs(5));
    pg.application_name("weir");
    // Claims and dedup rely on READ COMMITTED (each statement sees what
    // committed before it, after a lock wait), whatever the server's default.
    pg.options("-c default_transaction_isolation=read\\ committed");
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(opts.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| StoreError::Open(e.to_string()))
}

/// A pool error, said without the URL (which may hold a password).
fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error_text(e),
        other => other.to_string(),
    }
}

fn db_error_text(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{}: {}", db.code().code(), db.message()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Without a SQLSTATE, the driver says whether the connection failed
        // (closed, unreachable, timed out) or something else did (a value
        // that would not convert). Class 08 is a connection exception,
        // 57P0x the server shutting down or starting.
        let unavailable = match e.code() {
            None => {
                e.is_closed() || {
                    let text = e.to_string();
                    [
                        "error communicating",
                        "error connecting",
                        "timeout",
                        "connection closed",
                    ]
                    .iter()
                    .any(|p| text.starts_with(p))
                }
            }
            Some(code) => {
                let c = code.code();
                c.starts_with("08") || c.starts_with("57P")
            }
        };
        if unavailable {
            StoreError::Unavailable(db_error_text(&e))
        } else {
            StoreError::Db(db_error_text(&e))
        }
    }
}

const LIVE: &str = "('pending','retrying')";

/// An id or filter with a NUL in it (from a URL's `%00`) names nothing
/// stored, and PostgreSQL text cannot even hold it: answer "none" without
/// asking.
fn names_nothing(s: &str) -> bool {
    s.contains('\0')
}

fn replay_names_nothing(f: &ReplayFilter) -> bool {
    names_nothing(&f.webhook)
        || [&f.tenant, &f.event_type]
            .into_iter()
            .flatten()
            .any(|s| names_nothing(s))
}

#[async_trait]
impl Store for PgStore {
    async fn ingest(
        &self,
        events: Vec<NewEvent>,
        now: Millis,
        dedup_window_ms: Millis,
    ) -> Result<Vec<Ingested>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = ingest::Job {
            events,
            now,
            dedup_window_ms,
            reply,
        };
        self.ingest
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn claim(&self, claim: Claim) -> Result<Claimed, StoreError> {
        if self.evicted.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Unavailable(format!(
                "node_id {:?} was taken over by another process; this node no longer delivers: restart it",
                self.node
            )));
        }
        let mut client = self.client().await?;
        let claimed = claim::claim(&mut client, &self.node, self.lease, &claim).await?;
        self.leased
            .lock()
            .expect("leases")
            .extend(claimed.due.iter().map(|d| d.seq));
        Ok(claimed)
    }

    async fn next_due_at(&self, claim: &Claim) -> Result<Option<Millis>, StoreError> {
        let client = self.client().await?;
        claim::next_due_at(&client, &self.node, claim).await
    }

    async fn save_render(
        &self,
        seq: i64,
        render: &Render,
        log: &PluginLog,
        now: Millis,
    ) -> Result<(), StoreError> {
        if !matches!(render, Render::Deliver(_)) {
            // The outcome ends the attempt: stop renewing, whatever happens.
            self.release(seq);
        }
        let log = log.to_column();
        let client = self.client().await?;
        match render {
            Render::Deliver(r) => {
                let headers = serde_json::to_string(&r.headers).expect("headers serialise");
                let stmt = client
                    .prepare_cached(
                        "UPDATE deliveries SET body = $2, headers = $3, plugin_log = $5, updated_at = $4
                         WHERE seq = $1",
                    )
                    .await?;
                client
                    .execute(&stmt, &[&seq, &r.body.as_bytes(), &headers, &now, &log])
                    .await?;
            }
            Render::Filtered(reason) | Render::Held(reason) => {
                let state = if matches!(render, Render::Held(_)) {
                    "held"
                } else {
                    "filtered"
                };
                let stmt = client
                    .prepare_cached(&format!(
                        "UPDATE deliveries SET state = $2, reason = $3, updated_at = $4, plugin_log = $6,
                           lease_until = CASE WHEN lease_node = $5 THEN NULL ELSE lease_until END,
                           lease_node = CASE WHEN lease_node = $5 THEN NULL ELSE lease_node END
                         WHERE seq = $1 AND state IN {LIVE}"
                    ))
                    .await?;
                client
                    .execute(
                        &stmt,
                        &[&seq, &state, &log_text(reason), &now, &self.node, &log],
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn finish_attempt(
        &self,
        seq: i64,
        webhook: &str,
        fresh: Option<Fresh>,
        attempt: Attempt,
        after: AfterAttempt,
    ) -> Result<WebhookHealth, StoreError> {
        // Whatever happens, this node stops renewing the lease: if the write
        // failed, the lease lapses and the delivery is claimed again.
        self.release(seq);
        let client = self.client().await?;
        log::finish_attempt(&client, &self.node, seq, webhook, fresh, attempt, after).await
    }

    async fn cancel_live(
        &self,
        webhook: &str,
        reason: &str,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        log::cancel_live(&client, webhook, reason, now).await
    }

    async fn health(&self, webhook: &str) -> Result<WebhookHealth, StoreError> {
        let client = self.client().await?;
        log::health(&client, webhook).await
    }

    async fn set_disabled(&self, webhook: &str, reason: Option<String>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO webhook_state (webhook_id, disabled_reason) VALUES ($1, $2)
                 ON CONFLICT (webhook_id) DO UPDATE SET disabled_reason = $2,
                   failing_since = CASE WHEN $2 IS NULL THEN NULL ELSE webhook_state.failing_since END",
            )
            .await?;
        tx.execute(&stmt, &[&webhook, &reason]).await?;
        notify(&tx, CATALOG_CHANNEL, "health").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn disabled(&self) -> Result<HashMap<String, String>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT webhook_id, disabled_reason FROM webhook_state WHERE disabled_reason IS NOT NULL",
            )
            .await?;
        Ok(client
            .query(&stmt, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT webhook_id, count(*) FROM deliveries WHERE state IN {LIVE} GROUP BY webhook_id"
            ))
            .await?;
        Ok(client
            .query(&stmt, &[])
            .await?
            .iter()
            .map(|r| QueueDepth {
                webhook: r.get(0),
                live: r.get::<_, i64>(1) as u64,
            })
            .collect())
    }

    async fn queue_depth(&self, webhook: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND state IN {LIVE}"
            ))
            .await?;
        Ok(client.query_one(&stmt, &[&webhook]).await?.get::<_, i64>(0) as u64)
    }

    async fn list_deliveries(&self, f: DeliveryFilter) -> Result<Vec<DeliveryRecord>, StoreError> {
        let given = [&f.webhook, &f.tenant, &f.event_id, &f.event_type, &f.after];
        if given
            .iter()
            .any(|v| v.as_deref().is_some_and(names_nothing))
        {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        log::list(&client, f).await
    }

    async fn delivery(&self, id: &str) -> Result<Option<StoredDelivery>, StoreError> {
        if names_nothing(id) {
            return Ok(None);
        }
        let client = self.client().await?;
        log::delivery(&client, id).await
    }

    async fn attempt_points(
        &self,
        webhook: &str,
        since: Millis,
        cap: usize,
    ) -> Result<Vec<AttemptPoint>, StoreError> {
        if names_nothing(webhook) {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        log::attempt_points(&client, webhook, since, cap).await
    }

    async fn replay(
        &self,
        id: &str,
        now: Millis,
    ) -> Result<Result<String, ReplayRefused>, StoreError> {
        if names_nothing(id) {
            return Ok(Err(ReplayRefused::NotFound));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let out = log::replay(&tx, id, now).await?;
        if let Ok(hook) = &out {
            notify(&tx, DUE_CHANNEL, hook).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn replay_all(&self, filter: &ReplayFilter, now: Millis) -> Result<u64, StoreError> {
        if replay_names_nothing(filter) {
            return Ok(0);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = log::replay_all(&tx, filter, now).await?;
        if n > 0 {
            notify(&tx, DUE_CHANNEL, &filter.webhook).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn count_replayable(&self, filter: &ReplayFilter) -> Result<u64, StoreError> {
        if replay_names_nothing(filter) {
            return Ok(0);
        }
        let client = self.client().await?;
        log::count_replayable(&client, filter).await
    }

    async fn purge(&self, before: Millis, batch: usize) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = log::purge(&tx, before, batch).await? + inbound::purge(&tx, before, batch).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn api_webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        let client = self.client().await?;
        log::webhooks(&client, None).await
    }

    async fn api_webhook(&self, id: &str) -> Result<Option<StoredWebhook>, StoreError> {
        if names_nothing(id) {
            return Ok(None);
        }
        let client = self.client().await?;
        Ok(log::webhooks(&client, Some(id)).await?.pop())
    }

    async fn put_webhook(
        &self,
        hook: StoredWebhook,
        expected: Option<i64>,
    ) -> Result<Result<(), WebhookConflict>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let out = log::put_webhook(&tx, &hook, expected).await?;
        if out.is_ok() {
            notify(&tx, CATALOG_CHANNEL, "webhooks").await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn delete_webhook(
        &self,
        id: &str,
        now: Millis,
    ) -> Result<Result<u64, WebhookConflict>, StoreError> {
        if names_nothing(id) {
            return Ok(Err(WebhookConflict::Missing));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare_cached("DELETE FROM webhooks WHERE id = $1")
            .await?;
        if tx.execute(&stmt, &[&id]).await? == 0 {
            return Ok(Err(WebhookConflict::Missing));
        }
        let n = log::cancel_live(&tx, id, "webhook deleted", now).await?;
        notify(&tx, CATALOG_CHANNEL, "webhooks").await?;
        tx.commit().await?;
        Ok(Ok(n))
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let client = self.client().await?;
        log::tokens(&client).await
    }

    async fn put_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        log::put_token(&tx, &token).await?;
        notify(&tx, CATALOG_CHANNEL, "tokens").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_token(&self, id: &str, now: Millis) -> Result<Option<TokenRecord>, StoreError> {
        if names_nothing(id) {
            return Ok(None);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let out = log::revoke_token(&tx, id, now).await?;
        notify(&tx, CATALOG_CHANNEL, "tokens").await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn catch(&self, request: NewCaught) -> Result<Caught, StoreError> {
        let client = self.client().await?;
        inbound::catch(&client, &request).await
    }

    async fn pending_inbound(&self, limit: usize) -> Result<Vec<CaughtRequest>, StoreError> {
        if self.evicted.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        inbound::pending(&client, &self.node, self.lease, limit).await
    }

    async fn finish_inbound(
        &self,
        outcomes: Vec<InboundOutcome>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        inbound::finish(&client, &outcomes, now).await
    }

    async fn inbound_requests(
        &self,
        filter: InboundFilter,
    ) -> Result<Vec<CaughtRequest>, StoreError> {
        if [&filter.source, &filter.tenant, &filter.before]
            .into_iter()
            .flatten()
            .any(|s| names_nothing(s))
        {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        inbound::list(&client, &filter).await
    }

    async fn inbound_request(&self, id: &str) -> Result<Option<CaughtRequest>, StoreError> {
        if names_nothing(id) {
            return Ok(None);
        }
        let client = self.client().await?;
        inbound::one(&client, id).await
    }

    async fn replay_inbound(&self, id: &str, now: Millis) -> Result<bool, StoreError> {
        if names_nothing(id) {
            return Ok(false);
        }
        let client = self.client().await?;
        inbound::replay(&client, id, now).await
    }

    async fn api_sources(&self) -> Result<Vec<StoredSource>, StoreError> {
        let client = self.client().await?;
        inbound::sources(&client).await
    }

    async fn put_source(
        &self,
        source: StoredSource,
    ) -> Result<Result<(), WebhookConflict>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let out = inbound::put_source(&tx, &source).await?;
        if out.is_ok() {
            notify(&tx, CATALOG_CHANNEL, "sources").await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn delete_source(&self, id: &str) -> Result<bool, StoreError> {
        if names_nothing(id) {
            return Ok(false);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare_cached("DELETE FROM sources WHERE id = $1")
            .await?;
        let gone = tx.execute(&stmt, &[&id]).await? == 1;
        if gone {
            notify(&tx, CATALOG_CHANNEL, "sources").await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    async fn close(&self) {
        self.stop.cancel();
        let leased: Vec<i64> = self.leased.lock().expect("leases").drain().collect();
        let result = async {
            let client = self.client().await?;
            node::leave(&client, &self.node, &leased).await
        }
        .await;
        if let Err(e) = result {
            warn!(error = %e, "cannot hand back this node's leases; they lapse on their own");
        }
    }
}

/// Queues a notification, sent when `tx` commits.
async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    channel: &str,
    payload: &str,
) -> Result<(), StoreError> {
    let stmt = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
    tx.execute(&stmt, &[&channel, &payload]).await?;
    Ok(())
}

//! SQLite in WAL mode with `synchronous = FULL`: the embedded backend.
//!
//! All writes go through the group-commit writer ([`writer`]); reads use a
//! small pool of separate connections, which WAL lets run alongside. One
//! process owns the file, so a claim needs no lease: in-flight deliveries are
//! the worker's own.

mod inbound;
mod writer;

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::catalog::{self, corrupt};
use super::query::{self, Arg};
use super::*;
use crate::event::Millis;
use crate::token::TokenRecord;
use writer::{Job, in_savepoint, open_conn, writer_loop};

pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/weir.db`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
        let path = dir.join("weir.db");
        let conn = open_conn(&path)?;
        super::migrate::sqlite(&conn)?;
        let (tx, rx) = mpsc::channel::<Job>(4096);
        std::thread::Builder::new()
            .name("weir-store-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Open(e.to_string()))?;
        Ok(SqliteStore {
            jobs: tx,
            readers: Mutex::new(Vec::new()),
            path,
        })
    }

    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit: Result<(), String>| {
                let out = match commit {
                    Ok(()) => result.map_err(StoreError::from),
                    Err(e) => Err(StoreError::Commit(e)),
                };
                let _ = tx.send(out);
            })
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let pooled = self.readers.lock().expect("reader pool").pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_conn(&self.path)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let r = f(&conn);
            (conn, r)
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        let mut pool = self.readers.lock().expect("reader pool");
        if pool.len() < 8 {
            pool.push(conn);
        }
        Ok(result?)
    }
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Text(s) => s.to_sql(),
            Arg::Int(n) => n.to_sql(),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

const LIVE: &str = "('pending','retrying')";

fn due_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Due> {
    let event = Event {
        id: row.get("event_id")?,
        event_type: row.get("type")?,
        owner_id: row.get("owner_id")?,
        data: row.get("data")?,
        occurred_at: row.get("occurred_at")?,
    };
    let body: Option<String> = row.get("body")?;
    let headers: Option<String> = row.get("headers")?;
    let rendered =
        stored_render(body, headers.as_deref(), &event).map_err(|e| corrupt(e.to_string()))?;
    Ok(Due {
        seq: row.get("seq")?,
        id: row.get("id")?,
        webhook_id: row.get("webhook_id")?,
        event,
        rendered,
        failures: row.get("failures")?,
        attempts: row.get("attempts")?,
    })
}

const DUE_COLUMNS: &str = "d.seq, d.id, d.webhook_id, d.body, d.headers, d.failures, d.attempts,
     e.id AS event_id, e.type, e.owner_id, e.data, e.occurred_at";

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let state: String = row.get("state")?;
    let live = matches!(state.as_str(), "pending" | "retrying");
    let Some(state) = DeliveryState::parse(&state) else {
        return Err(corrupt(format!("unknown delivery state {state:?}")));
    };
    Ok(DeliveryRecord {
        id: row.get("id")?,
        webhook: row.get("webhook_id")?,
        tenant: row.get("tenant")?,
        event_id: row.get("event_id")?,
        event_type: row.get("type")?,
        state,
        attempts: row.get("attempts")?,
        next_attempt_at: if live { row.get("next_at")? } else { None },
        reason: row.get("reason")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

const RECORD_COLUMNS: &str =
    "d.id, d.webhook_id, d.tenant, d.state, d.attempts, d.next_at, d.reason,
     d.created_at, d.updated_at, e.id AS event_id, e.type";

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(
        &self,
        events: Vec<NewEvent>,
        now: Millis,
        dedup_window_ms: Millis,
    ) -> Result<Vec<Ingested>, StoreError> {
        self.write(move |c| {
            let mut seen = c.prepare_cached(
                "SELECT 1 FROM events WHERE owner_key = ?1 AND id = ?2 AND received_at > ?3",
            )?;
            let mut put_event = c.prepare_cached(
                "INSERT INTO events (id, owner_key, owner_id, type, data, occurred_at, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut put_delivery = c.prepare_cached(
                "INSERT INTO deliveries (id, event_seq, webhook_id, tenant, event_type, state, next_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?6, 'pending', ?5, ?5, ?5)",
            )?;
            let mut out = Vec::with_capacity(events.len());
            for NewEvent { event: e, webhooks } in events {
                let owner_key = e.owner_id.as_deref().unwrap_or("");
                if seen.exists(params![owner_key, e.id, now - dedup_window_ms])? {
                    out.push(Ingested::Duplicate);
                    continue;
                }
                put_event.execute(params![e.id, owner_key, e.owner_id, e.event_type, e.data, e.occurred_at, now])?;
                let seq = c.last_insert_rowid();
                let mut made = Vec::with_capacity(webhooks.len());
                for Target { webhook, tenant } in webhooks {
                    let id = super::new_delivery_id();
                    put_delivery.execute(params![id, seq, webhook, tenant, now, e.event_type])?;
                    made.push(NewDelivery { webhook, id });
                }
                out.push(Ingested::Stored(made));
            }
            Ok(out)
        })
        .await
    }

    async fn claim(&self, claim: Claim) -> Result<Claimed, StoreError> {
        self.write(move |c| {
            let due = claim_due(c, &claim)?;
            // Fewer than wanted: the queue is drained for now, so say when
            // it is next due (counting what was just claimed as in flight).
            let next_due = if due.len() < claim.wanted() {
                let mut after = claim.clone();
                after.in_flight.extend(due.iter().map(|d| d.seq));
                Some(next_due(c, &after)?)
            } else {
                None
            };
            Ok(Claimed {
                due,
                blocked_until: None,
                next_due,
            })
        })
        .await
    }

    async fn next_due_at(&self, claim: &Claim) -> Result<Option<Millis>, StoreError> {
        let claim = claim.clone();
        // On the writer, like the claim before it: thousands of workers asking at
        // once would otherwise each open a reader connection.
        self.write(move |c| next_due(c, &claim)).await
    }

    async fn save_render(
        &self,
        seq: i64,
        render: &Render,
        log: &PluginLog,
        now: Millis,
    ) -> Result<(), StoreError> {
        let render = render.clone();
        let log = log.to_column();
        self.write(move |c| {
            match &render {
                Render::Deliver(r) => {
                    let headers = serde_json::to_string(&r.headers).expect("headers serialise");
                    c.prepare_cached(
                        "UPDATE deliveries SET body = ?2, headers = ?3, plugin_log = ?5, updated_at = ?4 WHERE seq = ?1",
                    )?
                    .execute(params![seq, r.body, headers, now, log])?;
                }
                Render::Filtered(reason) | Render::Held(reason) => {
                    let state = if matches!(render, Render::Held(_)) { "held" } else { "filtered" };
                    c.prepare_cached(&format!(
                        "UPDATE deliveries SET state = ?4, reason = ?2, plugin_log = ?5, updated_at = ?3
                         WHERE seq = ?1 AND state IN {LIVE}"
                    ))?
                    .execute(params![seq, log_text(reason), now, state, log])?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn finish_attempt(
        &self,
        seq: i64,
        webhook: &str,
        fresh: Option<Fresh>,
        attempt: Attempt,
        after: AfterAttempt,
    ) -> Result<WebhookHealth, StoreError> {
        let webhook = webhook.to_owned();
        self.write(move |c| {
            let at = attempt.at;
            let (body, headers, log) = match fresh {
                Some(Fresh { body, headers, log }) => (body, Some(headers), log.to_column()),
                None => (None, None, None),
            };
            let reason = attempt
                .error
                .as_deref()
                .map(|e| log_text(e).into_owned())
                .or_else(|| attempt.status.map(|s| format!("HTTP {s}")));
            let (next_state, next_at) = match after {
                AfterAttempt::Delivered => ("delivered", None),
                AfterAttempt::Retry { at } => ("retrying", Some(at)),
                AfterAttempt::Dead => ("dead", None),
            };
            // One statement moves the delivery on. SET expressions see the old
            // row, so a delivery canceled meanwhile stays canceled unless this
            // attempt succeeded. A fresh render (its headers are always
            // given, its body only when the chain changed it) replaces the
            // plugin log too.
            let n: u32 = c
                .prepare_cached(&format!(
                    "UPDATE deliveries SET
                       attempts = attempts + 1,
                       body = coalesce(?2, body),
                       headers = coalesce(?3, headers),
                       plugin_log = CASE WHEN ?3 IS NULL THEN plugin_log ELSE ?8 END,
                       state = CASE WHEN ?4 = 'delivered' OR state IN {LIVE} THEN ?4 ELSE state END,
                       failures = failures + (?4 != 'delivered' AND state IN {LIVE}),
                       next_at = CASE WHEN ?4 = 'retrying' AND state IN {LIVE} THEN ?5 ELSE next_at END,
                       reason = CASE WHEN ?4 = 'delivered' THEN NULL WHEN state IN {LIVE} THEN ?6 ELSE reason END,
                       updated_at = ?7
                     WHERE seq = ?1 RETURNING attempts"
                ))?
                .query_row(params![seq, body, headers, next_state, next_at, reason, at, log], |r| r.get(0))?;
            c.prepare_cached(
                "INSERT INTO attempts (delivery_seq, n, at, status, error, latency_ms, response, node, webhook_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                seq,
                n,
                at,
                attempt.status,
                attempt.error.as_deref().map(log_text),
                attempt.latency_ms as i64,
                log_text(&attempt.response),
                attempt.node,
                webhook
            ])?;
            let ok = matches!(after, AfterAttempt::Delivered);
            c.prepare_cached(
                "INSERT INTO webhook_state (webhook_id, last_success_at, last_failure_at, failing_since)
                 VALUES (?1, CASE WHEN ?2 THEN ?3 END, CASE WHEN ?2 THEN NULL ELSE ?3 END, CASE WHEN ?2 THEN NULL ELSE ?3 END)
                 ON CONFLICT (webhook_id) DO UPDATE SET
                   last_success_at = CASE WHEN ?2 THEN ?3 ELSE last_success_at END,
                   last_failure_at = CASE WHEN ?2 THEN last_failure_at ELSE ?3 END,
                   failing_since = CASE WHEN ?2 THEN NULL ELSE coalesce(failing_since, ?3) END
                 RETURNING disabled_reason, last_success_at, last_failure_at, failing_since",
            )?
            .query_row(params![webhook, ok, at], |r| {
                Ok(WebhookHealth {
                    disabled_reason: r.get(0)?,
                    last_success_at: r.get(1)?,
                    last_failure_at: r.get(2)?,
                    failing_since: r.get(3)?,
                })
            })
        })
        .await
    }

    async fn cancel_live(
        &self,
        webhook: &str,
        reason: &str,
        now: Millis,
    ) -> Result<u64, StoreError> {
        let (webhook, reason) = (webhook.to_owned(), reason.to_owned());
        self.write(move |c| cancel_live(c, &webhook, &reason, now))
            .await
    }

    async fn health(&self, webhook: &str) -> Result<WebhookHealth, StoreError> {
        let webhook = webhook.to_owned();
        self.read(move |c| read_health(c, &webhook)).await
    }

    async fn set_disabled(&self, webhook: &str, reason: Option<String>) -> Result<(), StoreError> {
        let webhook = webhook.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO webhook_state (webhook_id, disabled_reason) VALUES (?1, ?2)
                 ON CONFLICT (webhook_id) DO UPDATE SET disabled_reason = ?2,
                   failing_since = CASE WHEN ?2 IS NULL THEN NULL ELSE failing_since END",
            )?
            .execute(params![webhook, reason])?;
            Ok(())
        })
        .await
    }

    async fn disabled(&self) -> Result<HashMap<String, String>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT webhook_id, disabled_reason FROM webhook_state WHERE disabled_reason IS NOT NULL",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
        })
        .await
    }

    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT webhook_id, count(*) FROM deliveries WHERE state IN {LIVE} GROUP BY webhook_id"
            ))?
            .query_map([], |r| {
                Ok(QueueDepth {
                    webhook: r.get(0)?,
                    live: r.get::<_, i64>(1)? as u64,
                })
            })?
            .collect()
        })
        .await
    }

    async fn queue_depth(&self, webhook: &str) -> Result<u64, StoreError> {
        let webhook = webhook.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT count(*) FROM deliveries WHERE webhook_id = ?1 AND state IN {LIVE}"
            ))?
            .query_row(params![webhook], |r| Ok(r.get::<_, i64>(0)? as u64))
        })
        .await
    }

    async fn list_deliveries(&self, f: DeliveryFilter) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.read(move |c| {
            // A cursor that names no delivery (purged since) ends the list.
            let before: Option<(i64, i64)> = match &f.after {
                Some(id) => match c
                    // Another owner's delivery is no cursor for a tenant:
                    // it must not tell whether it exists, nor when it was made.
                    .prepare_cached(
                        "SELECT created_at, seq FROM deliveries
                         WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)",
                    )?
                    .query_row(params![id, f.tenant], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                {
                    Some(at) => Some(at),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            let unindexed = driving(c, &f)?;
            let mut w = query::log_where(&f, before, query::sqlite_placeholder, &unindexed);
            w.args.push(Arg::Int(f.limit as i64));
            let sql = format!(
                "SELECT {RECORD_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
                 {} {} LIMIT ?{}",
                w.sql,
                query::LOG_ORDER,
                w.args.len()
            );
            c.prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(&w.args), record_from_row)?
                .collect()
        })
        .await
    }

    async fn delivery(&self, id: &str) -> Result<Option<StoredDelivery>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            let found = c
                .prepare_cached(&format!(
                    "SELECT d.seq, {RECORD_COLUMNS}, d.body, d.headers, d.plugin_log,
                       e.owner_id, e.data, e.occurred_at
                     FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.id = ?1"
                ))?
                .query_row(params![id], |r| {
                    let record = record_from_row(r)?;
                    let event = Event {
                        id: record.event_id.clone(),
                        event_type: record.event_type.clone(),
                        owner_id: r.get("owner_id")?,
                        data: r.get("data")?,
                        occurred_at: r.get("occurred_at")?,
                    };
                    let body: Option<String> = r.get("body")?;
                    let headers: Option<String> = r.get("headers")?;
                    let log: Option<String> = r.get("plugin_log")?;
                    Ok((r.get::<_, i64>("seq")?, record, event, body, headers, log))
                })
                .optional()?;
            let Some((seq, record, event, body, headers, log)) = found else { return Ok(None) };
            let attempts = c
                .prepare_cached(
                    "SELECT at, status, error, latency_ms, response, node FROM attempts WHERE delivery_seq = ?1 ORDER BY n",
                )?
                .query_map(params![seq], |r| {
                    Ok(Attempt {
                        at: r.get(0)?,
                        status: r.get(1)?,
                        error: r.get(2)?,
                        latency_ms: r.get::<_, i64>(3)? as u64,
                        response: r.get(4)?,
                        node: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((record, attempts, event, body, headers, log)))
        })
        .await?
        .map(|(record, attempts, event, body, headers, log)| {
            Ok(StoredDelivery {
                rendered: stored_render(body, headers.as_deref(), &event)?,
                record,
                attempts,
                event,
                plugin_log: PluginLog::from_column(log.as_deref())?,
            })
        })
        .transpose()
    }

    async fn attempt_points(
        &self,
        webhook: &str,
        since: Millis,
        cap: usize,
    ) -> Result<Vec<AttemptPoint>, StoreError> {
        let webhook = webhook.to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT at, status, latency_ms FROM attempts
                 WHERE webhook_id = ?1 AND at >= ?2 ORDER BY at DESC LIMIT ?3",
            )?
            .query_map(params![webhook, since, cap as i64], |r| {
                Ok(AttemptPoint {
                    at: r.get(0)?,
                    status: r.get(1)?,
                    latency_ms: r.get::<_, i64>(2)? as u64,
                })
            })?
            .collect()
        })
        .await
    }

    async fn replay(
        &self,
        id: &str,
        now: Millis,
    ) -> Result<Result<String, ReplayRefused>, StoreError> {
        let id = id.to_owned();
        self.write(move |c| {
            let hook: Option<(String, String)> = c
                .prepare_cached("SELECT webhook_id, state FROM deliveries WHERE id = ?1")?
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((hook, state)) = hook else {
                return Ok(Err(ReplayRefused::NotFound));
            };
            if matches!(state.as_str(), "pending" | "retrying") {
                return Ok(Err(ReplayRefused::AlreadyQueued));
            }
            c.prepare_cached(&format!(
                "UPDATE deliveries SET {} WHERE id = ?2",
                query::replay_set("?1")
            ))?
            .execute(params![now, id])?;
            Ok(Ok(hook))
        })
        .await
    }

    async fn replay_all(&self, filter: &ReplayFilter, now: Millis) -> Result<u64, StoreError> {
        let mut w = query::replay_where(filter, query::sqlite_placeholder);
        w.args.push(Arg::Int(now));
        let sql = format!(
            "UPDATE deliveries AS d SET {} {}",
            query::replay_set(&format!("?{}", w.args.len())),
            w.sql
        );
        self.write(move |c| {
            let n = c
                .prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(&w.args))?;
            Ok(n as u64)
        })
        .await
    }

    async fn count_replayable(&self, filter: &ReplayFilter) -> Result<u64, StoreError> {
        let w = query::replay_where(filter, query::sqlite_placeholder);
        self.read(move |c| {
            let sql = format!("SELECT count(*) FROM deliveries d {}", w.sql);
            c.prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(&w.args), |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
        .await
    }

    async fn purge(&self, before: Millis, batch: usize) -> Result<u64, StoreError> {
        self.write(move |c| {
            let seqs: Vec<(i64, i64)> = c
                .prepare_cached(
                    // created_at < ?1 is implied (updated after created) and
                    // lets deliveries_state_log find them.
                    "SELECT seq, event_seq FROM deliveries
                     WHERE state IN ('delivered','filtered') AND created_at < ?1 AND updated_at < ?1 LIMIT ?2",
                )?
                .query_map(params![before, batch as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (seq, event_seq) in &seqs {
                c.prepare_cached("DELETE FROM attempts WHERE delivery_seq = ?1")?.execute(params![seq])?;
                c.prepare_cached("DELETE FROM deliveries WHERE seq = ?1")?.execute(params![seq])?;
                c.prepare_cached(
                    "DELETE FROM events WHERE seq = ?1 AND received_at < ?2
                     AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = ?1)",
                )?
                .execute(params![event_seq, before])?;
            }
            let requests = inbound::purge(c, before, batch)?;
            Ok(seqs.len() as u64 + requests)
        })
        .await
    }

    async fn api_webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        self.read(|c| catalog::webhooks(c, None)).await
    }

    async fn api_webhook(&self, id: &str) -> Result<Option<StoredWebhook>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| Ok(catalog::webhooks(c, Some(&id))?.pop()))
            .await
    }

    async fn put_webhook(
        &self,
        hook: StoredWebhook,
        expected: Option<i64>,
    ) -> Result<Result<(), WebhookConflict>, StoreError> {
        self.write(move |c| catalog::put_webhook(c, &hook, expected))
            .await
    }

    async fn delete_webhook(
        &self,
        id: &str,
        now: Millis,
    ) -> Result<Result<u64, WebhookConflict>, StoreError> {
        let id = id.to_owned();
        self.write(move |c| {
            let gone = c
                .prepare_cached("DELETE FROM webhooks WHERE id = ?1")?
                .execute(params![id])?;
            if gone == 0 {
                return Ok(Err(WebhookConflict::Missing));
            }
            Ok(Ok(cancel_live(c, &id, "webhook deleted", now)?))
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(catalog::tokens).await
    }

    async fn put_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        self.write(move |c| catalog::put_token(c, &token)).await
    }

    async fn revoke_token(&self, id: &str, now: Millis) -> Result<Option<TokenRecord>, StoreError> {
        let id = id.to_owned();
        self.write(move |c| catalog::revoke_token(c, &id, now))
            .await
    }

    async fn catch(&self, request: NewCaught) -> Result<Caught, StoreError> {
        self.write(move |c| inbound::catch(c, &request)).await
    }

    async fn pending_inbound(&self, limit: usize) -> Result<Vec<CaughtRequest>, StoreError> {
        self.read(move |c| inbound::pending(c, limit)).await
    }

    async fn finish_inbound(
        &self,
        outcomes: Vec<InboundOutcome>,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |c| inbound::finish(c, &outcomes, now))
            .await
    }

    async fn inbound_requests(
        &self,
        filter: InboundFilter,
    ) -> Result<Vec<CaughtRequest>, StoreError> {
        self.read(move |c| inbound::list(c, &filter)).await
    }

    async fn inbound_request(&self, id: &str) -> Result<Option<CaughtRequest>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| inbound::one(c, &id)).await
    }

    async fn replay_inbound(&self, id: &str, now: Millis) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |c| inbound::replay(c, &id, now)).await
    }

    async fn api_sources(&self) -> Result<Vec<StoredSource>, StoreError> {
        self.read(inbound::sources).await
    }

    async fn put_source(
        &self,
        source: StoredSource,
    ) -> Result<Result<(), WebhookConflict>, StoreError> {
        self.write(move |c| inbound::put_source(c, &source)).await
    }

    async fn delete_source(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |c| inbound::delete_source(c, &id)).await
    }
}

/// Rows a probe counts at most, tried in turn: filters that all reach one
/// cap are counted again up to the next, so a tie between two large
/// filters (a busy webhook's pending rows, a type with 1 % of a million
/// rows) is settled by counting further, and small ones stay cheap.
const PROBE_CAPS: [i64; 3] = [10_000, 100_000, 1_000_000];

/// Which of a log query's filters should drive it, as the columns whose
/// conditions must not use an index. SQLite plans without statistics, so
/// given two filters it may walk a large index (a big owner's deliveries)
/// to find the few rows another (a rare status) names at once, and scan a
/// million rows for an empty page. With more than one filter, each one's
/// index is counted (up to [`PROBE_CAPS`]) and the smallest drives; an
/// event id always does (it names a handful of rows).
fn driving(c: &Connection, f: &DeliveryFilter) -> rusqlite::Result<Vec<&'static str>> {
    const ALL: [&str; 4] = ["d.webhook_id", "d.state", "d.tenant", "d.event_type"];
    if f.event_id.is_some() {
        return Ok(ALL.to_vec());
    }
    let state = f.state.map(|s| s.as_str().to_owned());
    // (columns that drive, the probe's condition, its values)
    let mut candidates: Vec<(&[&str], &str, Vec<&String>)> = Vec::new();
    match (&f.webhook, &state) {
        (Some(w), Some(s)) => candidates.push((
            &["d.webhook_id", "d.state"],
            "webhook_id = ?1 AND state = ?2",
            vec![w, s],
        )),
        (Some(w), None) => candidates.push((&["d.webhook_id"], "webhook_id = ?1", vec![w])),
        (None, Some(s)) => candidates.push((&["d.state"], "state = ?1", vec![s])),
        (None, None) => {}
    }
    if let Some(t) = &f.tenant {
        candidates.push((&["d.tenant"], "tenant = ?1", vec![t]));
    }
    if let Some(t) = &f.event_type {
        candidates.push((&["d.event_type"], "event_type = ?1", vec![t]));
    }
    if candidates.len() < 2 {
        return Ok(Vec::new());
    }
    let mut left = candidates;
    for cap in PROBE_CAPS {
        let mut counted = Vec::with_capacity(left.len());
        for (columns, cond, args) in left {
            let sql =
                format!("SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE {cond} LIMIT {cap})");
            let n: i64 = c
                .prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(&args), |r| r.get(0))?;
            counted.push((columns, cond, args, n));
        }
        let least = counted.iter().map(|x| x.3).min().unwrap_or(0);
        if least < cap {
            let (columns, ..) = counted
                .into_iter()
                .find(|x| x.3 == least)
                .expect("a candidate");
            return Ok(ALL.into_iter().filter(|c| !columns.contains(c)).collect());
        }
        // Every filter reached the cap: count further.
        left = counted
            .into_iter()
            .map(|(columns, cond, args, _)| (columns, cond, args))
            .collect();
    }
    let columns = left.first().map_or(&[][..], |x| x.0);
    Ok(ALL.into_iter().filter(|c| !columns.contains(c)).collect())
}

/// The due deliveries a claim gets. Phase one walks the (index-only) queue
/// order; phase two loads the few rows wanted, so deliveries already in
/// flight cost nothing.
fn claim_due(c: &Connection, claim: &Claim) -> rusqlite::Result<Vec<Due>> {
    let fifo = claim.ordering == Ordering::Fifo;
    let skip = &claim.in_flight;
    let limit = claim.wanted();
    let sql = if fifo {
        format!(
            "SELECT seq, next_at <= ?2 FROM deliveries WHERE webhook_id = ?1 AND state IN {LIVE}
             ORDER BY seq LIMIT ?3"
        )
    } else {
        format!(
            "SELECT seq, 1 FROM deliveries WHERE webhook_id = ?1 AND state IN {LIVE} AND next_at <= ?2
             ORDER BY next_at, seq LIMIT ?3"
        )
    };
    let head: Vec<(i64, bool)> = c
        .prepare_cached(&sql)?
        .query_map(
            params![claim.webhook, claim.due_by, (limit + skip.len()) as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    let mut load = c.prepare_cached(&format!(
        "SELECT {DUE_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.seq = ?1"
    ))?;
    let mut out = Vec::with_capacity(limit);
    for (seq, is_due) in head {
        if out.len() >= limit || (fifo && (!is_due || !skip.is_empty() || !out.is_empty())) {
            break;
        }
        if !skip.contains(&seq) {
            out.push(load.query_row(params![seq], due_from_row)?);
        }
    }
    Ok(out)
}

/// When the first live delivery of `claim`'s webhook that is not in flight
/// falls due; for FIFO, only the head counts, and only when nothing is in
/// flight.
fn next_due(c: &Connection, claim: &Claim) -> rusqlite::Result<Option<Millis>> {
    // The first few in queue order: those in flight are skipped.
    let sql = match claim.ordering {
        Ordering::Fifo => format!(
            "SELECT seq, next_at FROM deliveries WHERE webhook_id = ?1 AND state IN {LIVE} ORDER BY seq LIMIT ?2"
        ),
        Ordering::Unordered => format!(
            "SELECT seq, next_at FROM deliveries WHERE webhook_id = ?1 AND state IN {LIVE}
             ORDER BY next_at, seq LIMIT ?2"
        ),
    };
    let rows: Vec<(i64, Millis)> = c
        .prepare_cached(&sql)?
        .query_map(
            params![claim.webhook, claim.in_flight.len() as i64 + 1],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows
        .into_iter()
        .find(|(seq, _)| !claim.in_flight.contains(seq))
        .filter(|_| claim.ordering == Ordering::Unordered || claim.in_flight.is_empty())
        .map(|(_, at)| at))
}

fn cancel_live(c: &Connection, webhook: &str, reason: &str, now: Millis) -> rusqlite::Result<u64> {
    let n = c
        .prepare_cached(&format!(
            "UPDATE deliveries SET state = 'canceled', reason = ?3, updated_at = ?2
             WHERE webhook_id = ?1 AND state IN {LIVE}"
        ))?
        .execute(params![webhook, now, reason])?;
    Ok(n as u64)
}

fn read_health(c: &Connection, webhook: &str) -> rusqlite::Result<WebhookHealth> {
    Ok(c.prepare_cached(
        "SELECT disabled_reason, last_success_at, last_failure_at, failing_since FROM webhook_state WHERE webhook_id = ?1",
    )?
    .query_row(params![webhook], |r| {
        Ok(WebhookHealth {
            disabled_reason: r.get(0)?,
            last_success_at: r.get(1)?,
            last_failure_at: r.get(2)?,
            failing_since: r.get(3)?,
        })
    })
    .optional()?
    .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> NewEvent {
        NewEvent {
            event: Event {
                id: id.into(),
                event_type: "a.b".into(),
                owner_id: None,
                data: "{}".into(),
                occurred_at: "2026-01-01T00:00:00Z".into(),
            },
            webhooks: vec![Target {
                webhook: "w".into(),
                tenant: None,
            }],
        }
    }

    fn attempt(at: Millis) -> Attempt {
        Attempt {
            at,
            status: Some(200),
            error: None,
            latency_ms: 1,
            response: String::new(),
            node: None,
        }
    }

    #[tokio::test]
    async fn purge_removes_only_old_final_deliveries_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let day = 86_400_000;
        let old = 1_000 * day;
        store
            .ingest(
                (0..5).map(|i| event(&format!("old{i}"))).collect(),
                old,
                day,
            )
            .await
            .unwrap();
        store
            .ingest(vec![event("new"), event("pending")], old + 20 * day, day)
            .await
            .unwrap();
        // Deliver the five old ones at `old`, and "new" 20 days later.
        let due = store
            .claim(Claim {
                webhook: "w".into(),
                due_by: old + 30 * day,
                now: old + 30 * day,
                ordering: Ordering::Unordered,
                max_in_flight: 10,
                rate_limit_per_sec: 0,
                in_flight: vec![],
                batch: 10,
            })
            .await
            .unwrap()
            .due;
        for d in &due {
            let at = if d.event.id.starts_with("old") {
                old
            } else if d.event.id == "new" {
                old + 20 * day
            } else {
                continue;
            };
            store
                .finish_attempt(d.seq, "w", None, attempt(at), AfterAttempt::Delivered)
                .await
                .unwrap();
        }
        // Retention of 14 days, measured at old + 21 days: the five old go, in batches of 2.
        let before = old + 21 * day - 14 * day;
        assert_eq!(store.purge(before, 2).await.unwrap(), 2);
        assert_eq!(store.purge(before, 2).await.unwrap(), 2);
        assert_eq!(store.purge(before, 2).await.unwrap(), 1);
        assert_eq!(store.purge(before, 2).await.unwrap(), 0);
        let left: Vec<String> = store
            .list_deliveries(DeliveryFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|d| format!("{}:{}", d.event_id, d.state.as_str()))
            .collect();
        assert_eq!(left, ["pending:pending", "new:delivered"]);
    }

    #[test]
    fn the_smallest_filter_drives_a_log_page() {
        let c = Connection::open_in_memory().unwrap();
        crate::store::migrate::sqlite(&c).unwrap();
        c.execute_batch(
            "INSERT INTO events (seq, id, owner_key, type, data, occurred_at, received_at)
               VALUES (1, 'e', '', 'a.b', '{}', 't', 0);",
        )
        .unwrap();
        for i in 0..30 {
            let state = if i == 0 { "dead" } else { "delivered" };
            c.execute(
                "INSERT INTO deliveries (id, event_seq, webhook_id, tenant, event_type, state, next_at, created_at, updated_at)
                 VALUES (?1, 1, 'w', 't', 'a.b', ?2, 0, 0, 0)",
                params![format!("d{i}"), state],
            )
            .unwrap();
        }
        let filter = |f: DeliveryFilter| driving(&c, &f).unwrap();
        let some = |s: &str| Some(s.to_owned());
        // One filter: the planner needs no help.
        assert!(
            filter(DeliveryFilter {
                webhook: some("w"),
                ..Default::default()
            })
            .is_empty()
        );
        // Webhook and status name one row; the owner's thirty are filtered.
        assert_eq!(
            filter(DeliveryFilter {
                webhook: some("w"),
                state: Some(DeliveryState::Dead),
                tenant: some("t"),
                ..Default::default()
            }),
            ["d.tenant", "d.event_type"]
        );
        // A type nobody has drives over the owner's thirty.
        assert_eq!(
            filter(DeliveryFilter {
                tenant: some("t"),
                event_type: some("x.y"),
                ..Default::default()
            }),
            ["d.webhook_id", "d.state", "d.tenant"]
        );
        // An event id always drives.
        assert_eq!(
            filter(DeliveryFilter {
                event_id: some("e"),
                tenant: some("t"),
                ..Default::default()
            })
            .len(),
            4
        );
    }

    #[tokio::test]
    async fn duplicates_inside_the_window_get_no_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let t = 1_700_000_000_000;
        let window = 24 * 3_600_000;
        let first = store.ingest(vec![event("e")], t, window).await.unwrap();
        assert!(matches!(&first[0], Ingested::Stored(d) if d.len() == 1));
        let again = store
            .ingest(vec![event("e"), event("e")], t + 1000, window)
            .await
            .unwrap();
        assert_eq!(again, vec![Ingested::Duplicate, Ingested::Duplicate]);
        // After the window, the same id is a new event.
        let later = store
            .ingest(vec![event("e")], t + window + 1, window)
            .await
            .unwrap();
        assert!(matches!(&later[0], Ingested::Stored(_)));
    }
}

//! PostgreSQL statements for attempts, the delivery log and the catalog
//! (API webhooks and tokens): the same queries as the SQLite store, in
//! PostgreSQL's dialect, one round trip where SQLite takes several.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::LIVE;
use crate::event::{Event, Millis};
use crate::store::query::{self, Arg};
use crate::store::{
    AfterAttempt, Attempt, AttemptPoint, DeliveryFilter, DeliveryRecord, DeliveryState, Fresh,
    PluginLog, ReplayFilter, ReplayRefused, StoreError, StoredDelivery, StoredSecret,
    StoredWebhook, WebhookConflict, WebhookHealth, log_text,
};
use crate::token::{Scope, TokenRecord};

/// Moves a delivery on after an attempt, records the attempt and the
/// webhook's health, and hands the lease back: one statement. SET
/// expressions see the old row, so a delivery canceled meanwhile stays
/// canceled unless this attempt succeeded.
pub async fn finish_attempt(
    c: &impl GenericClient,
    node: &str,
    seq: i64,
    webhook: &str,
    fresh: Option<Fresh>,
    a: Attempt,
    after: AfterAttempt,
) -> Result<WebhookHealth, StoreError> {
    let (body, headers, log) = match fresh {
        Some(Fresh { body, headers, log }) => {
            (body.map(String::into_bytes), Some(headers), log.to_column())
        }
        None => (None, None, None),
    };
    let reason = a
        .error
        .as_deref()
        .map(|e| log_text(e).into_owned())
        .or_else(|| a.status.map(|s| format!("HTTP {s}")));
    let error = a.error.as_deref().map(log_text);
    let response = log_text(&a.response);
    let (next_state, next_at) = match after {
        AfterAttempt::Delivered => ("delivered", None),
        AfterAttempt::Retry { at } => ("retrying", Some(at)),
        AfterAttempt::Dead => ("dead", None),
    };
    let ok = matches!(after, AfterAttempt::Delivered);
    let stmt = c
        .prepare_cached(&format!(
            "WITH d AS (
               UPDATE deliveries SET
                 attempts = attempts + 1,
                 body = coalesce($2, body),
                 headers = coalesce($3, headers),
                 plugin_log = CASE WHEN $3::text IS NULL THEN plugin_log ELSE $16 END,
                 state = CASE WHEN $4::text = 'delivered' OR state IN {LIVE} THEN $4::text ELSE state END,
                 failures = failures + CASE WHEN $4::text <> 'delivered' AND state IN {LIVE} THEN 1 ELSE 0 END,
                 next_at = CASE WHEN $4::text = 'retrying' AND state IN {LIVE} THEN $5::bigint ELSE next_at END,
                 reason = CASE WHEN $4::text = 'delivered' THEN NULL WHEN state IN {LIVE} THEN $6 ELSE reason END,
                 updated_at = $7,
                 lease_until = CASE WHEN lease_node = $15 THEN NULL ELSE lease_until END,
                 lease_node = CASE WHEN lease_node = $15 THEN NULL ELSE lease_node END
               WHERE seq = $1 RETURNING attempts),
             a AS (
               INSERT INTO attempts (delivery_seq, n, at, status, error, latency_ms, response, node, webhook_id)
               SELECT $1, d.attempts, $7, $8, $9, $10, $11, $12, $13 FROM d)
             INSERT INTO webhook_state (webhook_id, last_success_at, last_failure_at, failing_since)
             VALUES ($13, CASE WHEN $14 THEN $7 END, CASE WHEN $14 THEN NULL ELSE $7 END,
                     CASE WHEN $14 THEN NULL ELSE $7 END)
             ON CONFLICT (webhook_id) DO UPDATE SET
               last_success_at = CASE WHEN $14 THEN $7 ELSE webhook_state.last_success_at END,
               last_failure_at = CASE WHEN $14 THEN webhook_state.last_failure_at ELSE $7 END,
               failing_since = CASE WHEN $14 THEN NULL ELSE coalesce(webhook_state.failing_since, $7) END
             RETURNING disabled_reason, last_success_at, last_failure_at, failing_since"
        ))
        .await?;
    let status = a.status.map(i32::from);
    let row = c
        .query_one(
            &stmt,
            &[
                &seq,
                &body,
                &headers,
                &next_state,
                &next_at,
                &reason,
                &a.at,
                &status,
                &error,
                &(a.latency_ms as i64),
                &response,
                &a.node,
                &webhook,
                &ok,
                &node,
                &log,
            ],
        )
        .await?;
    Ok(health_from_row(&row))
}

fn health_from_row(r: &Row) -> WebhookHealth {
    WebhookHealth {
        disabled_reason: r.get(0),
        last_success_at: r.get(1),
        last_failure_at: r.get(2),
        failing_since: r.get(3),
    }
}

pub async fn health(c: &impl GenericClient, webhook: &str) -> Result<WebhookHealth, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT disabled_reason, last_success_at, last_failure_at, failing_since
             FROM webhook_state WHERE webhook_id = $1",
        )
        .await?;
    Ok(c.query_opt(&stmt, &[&webhook])
        .await?
        .map(|r| health_from_row(&r))
        .unwrap_or_default())
}

pub async fn cancel_live(
    c: &impl GenericClient,
    webhook: &str,
    reason: &str,
    now: Millis,
) -> Result<u64, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "UPDATE deliveries SET state = 'canceled', reason = $3, updated_at = $2
             WHERE webhook_id = $1 AND state IN {LIVE}"
        ))
        .await?;
    Ok(c.execute(&stmt, &[&webhook, &now, &reason]).await?)
}

const RECORD_COLUMNS: &str =
    "d.id, d.webhook_id, d.tenant, d.state, d.attempts, d.next_at, d.reason,
     d.created_at, d.updated_at, e.id AS event_id, e.type";

fn record_from_row(row: &Row) -> Result<DeliveryRecord, StoreError> {
    let state: String = row.get("state");
    let live = matches!(state.as_str(), "pending" | "retrying");
    let Some(parsed) = DeliveryState::parse(&state) else {
        return Err(StoreError::Corrupt(format!(
            "unknown delivery state {state:?}"
        )));
    };
    Ok(DeliveryRecord {
        id: row.get("id"),
        webhook: row.get("webhook_id"),
        tenant: row.get("tenant"),
        event_id: row.get("event_id"),
        event_type: row.get("type"),
        state: parsed,
        attempts: row.get::<_, i32>("attempts") as u32,
        next_attempt_at: if live { row.get("next_at") } else { None },
        reason: row.get("reason"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// Boxes the values of a [`query::Where`] for the driver.
fn pg_args(args: &[Arg]) -> Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> {
    args.iter()
        .map(|a| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match a {
                Arg::Text(s) => Box::new(s.clone()),
                Arg::Int(n) => Box::new(*n),
            }
        })
        .collect()
}

fn arg_refs(
    boxed: &[Box<dyn tokio_postgres::types::ToSql + Sync + Send>],
) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    boxed
        .iter()
        .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

pub async fn list(
    c: &impl GenericClient,
    f: DeliveryFilter,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    // A cursor that names no delivery (purged since) ends the list.
    let before: Option<(i64, i64)> = match &f.after {
        Some(id) => {
            // Another owner's delivery is no cursor for a tenant: it must
            // not tell whether it exists, nor when it was made.
            let stmt = c
                .prepare_cached(
                    "SELECT created_at, seq FROM deliveries
                     WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)",
                )
                .await?;
            match c.query_opt(&stmt, &[id, &f.tenant]).await? {
                Some(r) => Some((r.get(0), r.get(1))),
                None => return Ok(Vec::new()),
            }
        }
        None => None,
    };
    let mut w = query::log_where(&f, before, query::postgres_placeholder, &[]);
    w.args.push(Arg::Int(f.limit as i64));
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
             {} {} LIMIT ${}",
            w.sql,
            query::LOG_ORDER,
            w.args.len()
        ))
        .await?;
    let args = pg_args(&w.args);
    c.query(&stmt, &arg_refs(&args))
        .await?
        .iter()
        .map(record_from_row)
        .collect()
}

pub async fn delivery(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<StoredDelivery>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT d.seq, {RECORD_COLUMNS}, d.body, d.headers, d.plugin_log,
               e.owner_id, e.data, e.occurred_at
             FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.id = $1"
        ))
        .await?;
    let Some(row) = c.query_opt(&stmt, &[&id]).await? else {
        return Ok(None);
    };
    let seq: i64 = row.get("seq");
    let record = record_from_row(&row)?;
    let event = Event {
        id: record.event_id.clone(),
        event_type: record.event_type.clone(),
        owner_id: row.get("owner_id"),
        data: row.get("data"),
        occurred_at: row.get("occurred_at"),
    };
    let rendered = super::render_of(&row, &event)?;
    let log: Option<String> = row.get("plugin_log");
    let stmt = c
        .prepare_cached(
            "SELECT at, status, error, latency_ms, response, node FROM attempts
             WHERE delivery_seq = $1 ORDER BY n",
        )
        .await?;
    let attempts = c
        .query(&stmt, &[&seq])
        .await?
        .iter()
        .map(|r| Attempt {
            at: r.get(0),
            status: r.get::<_, Option<i32>>(1).map(|s| s as u16),
            error: r.get(2),
            latency_ms: r.get::<_, i64>(3) as u64,
            response: r.get(4),
            node: r.get(5),
        })
        .collect();
    Ok(Some(StoredDelivery {
        rendered,
        record,
        attempts,
        event,
        plugin_log: PluginLog::from_column(log.as_deref())?,
    }))
}

pub async fn attempt_points(
    c: &impl GenericClient,
    webhook: &str,
    since: Millis,
    cap: usize,
) -> Result<Vec<AttemptPoint>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT at, status, latency_ms FROM attempts
             WHERE webhook_id = $1 AND at >= $2 ORDER BY at DESC LIMIT $3",
        )
        .await?;
    Ok(c.query(&stmt, &[&webhook, &since, &(cap as i64)])
        .await?
        .iter()
        .map(|r| AttemptPoint {
            at: r.get(0),
            status: r.get::<_, Option<i32>>(1).map(|s| s as u16),
            latency_ms: r.get::<_, i64>(2) as u64,
        })
        .collect())
}

pub async fn replay(
    c: &impl GenericClient,
    id: &str,
    now: Millis,
) -> Result<Result<String, ReplayRefused>, StoreError> {
    let stmt = c
        .prepare_cached("SELECT webhook_id, state FROM deliveries WHERE id = $1 FOR UPDATE")
        .await?;
    let Some(row) = c.query_opt(&stmt, &[&id]).await? else {
        return Ok(Err(ReplayRefused::NotFound));
    };
    let (hook, state): (String, String) = (row.get(0), row.get(1));
    if matches!(state.as_str(), "pending" | "retrying") {
        return Ok(Err(ReplayRefused::AlreadyQueued));
    }
    let stmt = c
        .prepare_cached(&format!(
            "UPDATE deliveries SET {}, lease_node = NULL, lease_until = NULL WHERE id = $2",
            query::replay_set("$1")
        ))
        .await?;
    c.execute(&stmt, &[&now, &id]).await?;
    Ok(Ok(hook))
}

pub async fn replay_all(
    c: &impl GenericClient,
    f: &ReplayFilter,
    now: Millis,
) -> Result<u64, StoreError> {
    let mut w = query::replay_where(f, query::postgres_placeholder);
    w.args.push(Arg::Int(now));
    let stmt = c
        .prepare_cached(&format!(
            "UPDATE deliveries d SET {}, lease_node = NULL, lease_until = NULL {}",
            query::replay_set(&format!("${}", w.args.len())),
            w.sql
        ))
        .await?;
    let args = pg_args(&w.args);
    Ok(c.execute(&stmt, &arg_refs(&args)).await?)
}

pub async fn count_replayable(c: &impl GenericClient, f: &ReplayFilter) -> Result<u64, StoreError> {
    let w = query::replay_where(f, query::postgres_placeholder);
    let stmt = c
        .prepare_cached(&format!("SELECT count(*) FROM deliveries d {}", w.sql))
        .await?;
    let args = pg_args(&w.args);
    let n: i64 = c.query_one(&stmt, &arg_refs(&args)).await?.get(0);
    Ok(n as u64)
}

pub async fn purge(
    c: &impl GenericClient,
    before: Millis,
    batch: usize,
) -> Result<u64, StoreError> {
    let stmt = c
        .prepare_cached(
            // The conditions stand on the deleted row too: a row a replay
            // changed while this waited for it is re-checked, not deleted.
            // created_at < $1 is implied (updated after created) and lets
            // deliveries_state_log find them.
            "WITH gone AS (
               DELETE FROM deliveries d WHERE d.seq IN (
                 SELECT seq FROM deliveries
                 WHERE state IN ('delivered','filtered') AND created_at < $1 AND updated_at < $1
                 LIMIT $2)
               AND d.state IN ('delivered','filtered') AND d.updated_at < $1
               RETURNING d.seq, d.event_seq),
             a AS (DELETE FROM attempts WHERE delivery_seq IN (SELECT seq FROM gone))
             SELECT seq, event_seq FROM gone",
        )
        .await?;
    let gone = c.query(&stmt, &[&before, &(batch as i64)]).await?;
    let events: Vec<i64> = gone.iter().map(|r| r.get(1)).collect();
    let stmt = c
        .prepare_cached(
            "DELETE FROM events ev WHERE ev.seq = ANY($1) AND ev.received_at < $2
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = ev.seq)",
        )
        .await?;
    c.execute(&stmt, &[&events, &before]).await?;
    Ok(gone.len() as u64)
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Every API webhook, or the one with id `only`.
pub async fn webhooks(
    c: &impl GenericClient,
    only: Option<&str>,
) -> Result<Vec<StoredWebhook>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT id, spec, secrets, created_at, updated_at, version FROM webhooks
             WHERE $1::text IS NULL OR id = $1 ORDER BY id",
        )
        .await?;
    c.query(&stmt, &[&only])
        .await?
        .iter()
        .map(|r| {
            let spec: String = r.get(1);
            let secrets: String = r.get(2);
            Ok(StoredWebhook {
                id: r.get(0),
                spec: json(&spec, "webhook spec")?,
                secrets: json::<Vec<StoredSecret>>(&secrets, "webhook secrets")?,
                created_at: r.get(3),
                updated_at: r.get(4),
                version: r.get(5),
            })
        })
        .collect()
}

pub async fn put_webhook(
    c: &impl GenericClient,
    h: &StoredWebhook,
    expected: Option<i64>,
) -> Result<Result<(), WebhookConflict>, StoreError> {
    let spec = serde_json::to_string(&h.spec).expect("a spec serialises");
    let secrets = serde_json::to_string(&h.secrets).expect("secrets serialise");
    let Some(expected) = expected else {
        let stmt = c
            .prepare_cached(
                "INSERT INTO webhooks (id, spec, secrets, created_at, updated_at, version)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        let n = c
            .execute(
                &stmt,
                &[
                    &h.id,
                    &spec,
                    &secrets,
                    &h.created_at,
                    &h.updated_at,
                    &h.version,
                ],
            )
            .await?;
        return Ok(if n == 1 {
            Ok(())
        } else {
            Err(WebhookConflict::Exists)
        });
    };
    let stmt = c
        .prepare_cached(
            "UPDATE webhooks SET spec = $2, secrets = $3, updated_at = $4, version = $5
             WHERE id = $1 AND version = $6",
        )
        .await?;
    let n = c
        .execute(
            &stmt,
            &[&h.id, &spec, &secrets, &h.updated_at, &h.version, &expected],
        )
        .await?;
    if n == 1 {
        return Ok(Ok(()));
    }
    let stmt = c
        .prepare_cached("SELECT 1 FROM webhooks WHERE id = $1")
        .await?;
    let exists = c.query_opt(&stmt, &[&h.id]).await?.is_some();
    Ok(Err(if exists {
        WebhookConflict::Changed
    } else {
        WebhookConflict::Missing
    }))
}

const TOKEN_COLUMNS: &str =
    "id, prefix, hash, owner, scopes, description, created_at, expires_at, revoked_at";

fn token_from_row(r: &Row) -> Result<TokenRecord, StoreError> {
    let hash: Vec<u8> = r.get(2);
    let scopes: String = r.get(4);
    let scopes = scopes
        .split_whitespace()
        .map(|s| Scope::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown scope {s:?}"))))
        .collect::<Result<_, _>>()?;
    Ok(TokenRecord {
        id: r.get(0),
        prefix: r.get(1),
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("a token hash is not 32 bytes".into()))?,
        owner: r.get(3),
        scopes,
        description: r.get(5),
        created_at: r.get(6),
        expires_at: r.get(7),
        revoked_at: r.get(8),
    })
}

pub async fn tokens(c: &impl GenericClient) -> Result<Vec<TokenRecord>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
        ))
        .await?;
    c.query(&stmt, &[])
        .await?
        .iter()
        .map(token_from_row)
        .collect()
}

pub async fn put_token(c: &impl GenericClient, t: &TokenRecord) -> Result<(), StoreError> {
    let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
    let stmt = c
        .prepare_cached(&format!(
            "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .await?;
    c.execute(
        &stmt,
        &[
            &t.id,
            &t.prefix,
            &t.hash.as_slice(),
            &t.owner,
            &scopes.join(" "),
            &log_text(&t.description),
            &t.created_at,
            &t.expires_at,
            &t.revoked_at,
        ],
    )
    .await?;
    Ok(())
}

pub async fn revoke_token(
    c: &impl GenericClient,
    id: &str,
    now: Millis,
) -> Result<Option<TokenRecord>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "UPDATE tokens SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1 RETURNING {TOKEN_COLUMNS}"
        ))
        .await?;
    c.query_opt(&stmt, &[&id, &now])
        .await?
        .map(|r| token_from_row(&r))
        .transpose()
}

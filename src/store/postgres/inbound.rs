//! PostgreSQL statements for inbound sources: caught requests (leased to one
//! node while it routes them) and API sources.

use std::time::Duration;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::event::Millis;
use crate::store::{
    Caught, CaughtRequest, InboundFilter, InboundOutcome, InboundState, NewCaught, StoreError,
    StoredSource, WebhookConflict,
};

type Client = deadpool_postgres::Object;

/// One statement: a retry of the same sender delivery (same dedup key)
/// conflicts on the unique index, and then the first request is named.
pub async fn catch(c: &Client, r: &NewCaught) -> Result<Caught, StoreError> {
    let headers = serde_json::to_string(&r.headers).expect("headers serialise");
    let insert = c
        .prepare_cached(
            "INSERT INTO inbound (id, source_id, tenant, received_at, method, target, headers, body,
                                  dedup_key, state, node, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $4)
             ON CONFLICT (source_id, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
             RETURNING seq",
        )
        .await?;
    let params: [&(dyn ToSql + Sync); 10] = [
        &r.id,
        &r.source,
        &r.tenant,
        &r.received_at,
        &r.method,
        &r.target,
        &headers,
        &r.body,
        &r.dedup_key,
        &r.node,
    ];
    if c.query_opt(&insert, &params).await?.is_some() {
        return Ok(Caught::Stored);
    }
    let first = c
        .prepare_cached("SELECT id FROM inbound WHERE source_id = $1 AND dedup_key = $2")
        .await?;
    let row = c.query_one(&first, &[&r.source, &r.dedup_key]).await?;
    Ok(Caught::Duplicate(row.get(0)))
}

const SUMMARY: &str = "seq, id, source_id, tenant, received_at, method, target,
     octet_length(body)::bigint AS body_bytes, dedup_key, state, reason, events, updated_at";

fn from_row(r: &Row, whole: bool) -> Result<CaughtRequest, StoreError> {
    let state: String = r.get("state");
    let state = InboundState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown inbound state {state:?}")))?;
    let events: Option<String> = r.get("events");
    let events = match events {
        Some(e) => serde_json::from_str(&e)
            .map_err(|e| StoreError::Corrupt(format!("inbound events: {e}")))?,
        None => Vec::new(),
    };
    let (headers, body) = if whole {
        let h: String = r.get("headers");
        (
            serde_json::from_str(&h)
                .map_err(|e| StoreError::Corrupt(format!("inbound headers: {e}")))?,
            r.get("body"),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(CaughtRequest {
        seq: r.get("seq"),
        id: r.get("id"),
        source: r.get("source_id"),
        tenant: r.get("tenant"),
        received_at: r.get("received_at"),
        method: r.get("method"),
        target: r.get("target"),
        headers,
        body,
        body_bytes: r.get::<_, i64>("body_bytes") as u64,
        dedup_key: r.get("dedup_key"),
        state,
        reason: r.get("reason"),
        events,
        updated_at: r.get("updated_at"),
    })
}

/// Leases up to `limit` pending requests to `node`: unleased ones, this
/// node's own, and those whose node let the lease lapse (it died).
pub async fn pending(
    c: &Client,
    node: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<CaughtRequest>, StoreError> {
    let stmt = c
        .prepare_cached(
            "WITH picked AS (
               SELECT seq FROM inbound
               WHERE state = 'pending'
                 AND (lease_until IS NULL OR lease_until <= weir_now_ms() OR lease_node = $1)
               ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED)
             UPDATE inbound i SET lease_node = $1, lease_until = weir_now_ms() + $2
             FROM picked WHERE i.seq = picked.seq
             RETURNING i.seq, i.id, i.source_id, i.tenant, i.received_at, i.method, i.target,
                       octet_length(i.body)::bigint AS body_bytes, i.dedup_key, i.state,
                       i.reason, i.events, i.updated_at, i.headers, i.body",
        )
        .await?;
    let rows = c
        .query(
            &stmt,
            &[&node, &(lease.as_millis() as i64), &(limit as i64)],
        )
        .await?;
    let mut out = rows
        .iter()
        .map(|r| from_row(r, true))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|r| r.seq);
    Ok(out)
}

pub async fn finish(
    c: &Client,
    outcomes: &[InboundOutcome],
    now: Millis,
) -> Result<(), StoreError> {
    let seqs: Vec<i64> = outcomes.iter().map(|o| o.seq).collect();
    let states: Vec<&str> = outcomes.iter().map(|o| o.state.as_str()).collect();
    let reasons: Vec<Option<String>> = outcomes
        .iter()
        .map(|o| {
            o.reason
                .as_deref()
                .map(|r| crate::store::log_text(r).into_owned())
        })
        .collect();
    let events: Vec<String> = outcomes
        .iter()
        .map(|o| serde_json::to_string(&o.events).expect("ids serialise"))
        .collect();
    let stmt = c
        .prepare_cached(
            "UPDATE inbound i SET state = u.state, reason = u.reason, events = u.events,
                    updated_at = $5, lease_node = NULL, lease_until = NULL
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(seq, state, reason, events)
             WHERE i.seq = u.seq AND i.state = 'pending'",
        )
        .await?;
    c.execute(&stmt, &[&seqs, &states, &reasons, &events, &now])
        .await?;
    Ok(())
}

pub async fn list(c: &Client, f: &InboundFilter) -> Result<Vec<CaughtRequest>, StoreError> {
    let before: Option<i64> = match &f.before {
        Some(id) => {
            let stmt = c
                .prepare_cached("SELECT seq FROM inbound WHERE id = $1")
                .await?;
            match c.query_opt(&stmt, &[id]).await? {
                Some(r) => Some(r.get(0)),
                None => return Ok(Vec::new()),
            }
        }
        None => None,
    };
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {SUMMARY} FROM inbound
             WHERE ($1::text IS NULL OR source_id = $1) AND ($2::text IS NULL OR tenant = $2)
               AND ($3::text IS NULL OR state = $3) AND ($4::bigint IS NULL OR seq < $4)
             ORDER BY seq DESC LIMIT $5"
        ))
        .await?;
    let rows = c
        .query(
            &stmt,
            &[
                &f.source,
                &f.tenant,
                &f.state.map(InboundState::as_str),
                &before,
                &(f.limit as i64),
            ],
        )
        .await?;
    rows.iter().map(|r| from_row(r, false)).collect()
}

pub async fn one(c: &Client, id: &str) -> Result<Option<CaughtRequest>, StoreError> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {SUMMARY}, headers, body FROM inbound WHERE id = $1"
        ))
        .await?;
    c.query_opt(&stmt, &[&id])
        .await?
        .map(|r| from_row(&r, true))
        .transpose()
}

pub async fn replay(c: &Client, id: &str, now: Millis) -> Result<bool, StoreError> {
    let stmt = c
        .prepare_cached(
            "UPDATE inbound SET state = 'pending', reason = NULL, lease_node = NULL,
                    lease_until = NULL, updated_at = $2
             WHERE id = $1 AND state <> 'pending'",
        )
        .await?;
    if c.execute(&stmt, &[&id, &now]).await? == 1 {
        return Ok(true);
    }
    // Already pending: it will be routed anyway.
    let exists = c
        .prepare_cached("SELECT 1 FROM inbound WHERE id = $1")
        .await?;
    Ok(c.query_opt(&exists, &[&id]).await?.is_some())
}

pub async fn purge(
    tx: &deadpool_postgres::Transaction<'_>,
    before: Millis,
    batch: usize,
) -> Result<u64, StoreError> {
    let stmt = tx
        .prepare_cached(
            "DELETE FROM inbound WHERE seq IN (
               SELECT seq FROM inbound WHERE state <> 'pending' AND updated_at < $1 LIMIT $2)",
        )
        .await?;
    Ok(tx.execute(&stmt, &[&before, &(batch as i64)]).await?)
}

pub async fn sources(c: &Client) -> Result<Vec<StoredSource>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT id, spec, owner_id, created_at, updated_at FROM sources ORDER BY id",
        )
        .await?;
    c.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| {
            let spec: String = r.get(1);
            Ok(StoredSource {
                id: r.get(0),
                spec: serde_json::from_str(&spec)
                    .map_err(|e| StoreError::Corrupt(format!("source spec: {e}")))?,
                owner: r.get(2),
                created_at: r.get(3),
                updated_at: r.get(4),
            })
        })
        .collect()
}

pub async fn put_source(
    tx: &deadpool_postgres::Transaction<'_>,
    s: &StoredSource,
) -> Result<Result<(), WebhookConflict>, StoreError> {
    let spec = serde_json::to_string(&s.spec).expect("spec serialises");
    let stmt = tx
        .prepare_cached(
            "INSERT INTO sources (id, spec, owner_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let n = tx
        .execute(
            &stmt,
            &[&s.id, &spec, &s.owner, &s.created_at, &s.updated_at],
        )
        .await?;
    Ok(if n == 1 {
        Ok(())
    } else {
        Err(WebhookConflict::Exists)
    })
}

//! SQLite statements for inbound sources: caught requests and API sources.

use rusqlite::{Connection, OptionalExtension, params};

use super::super::catalog::corrupt;
use crate::event::Millis;
use crate::store::{
    Caught, CaughtRequest, InboundFilter, InboundOutcome, InboundState, NewCaught, StoredSource,
    WebhookConflict,
};

pub fn catch(c: &Connection, r: &NewCaught) -> rusqlite::Result<Caught> {
    if let Some(key) = &r.dedup_key {
        let first: Option<String> = c
            .prepare_cached("SELECT id FROM inbound WHERE source_id = ?1 AND dedup_key = ?2")?
            .query_row(params![r.source, key], |row| row.get(0))
            .optional()?;
        if let Some(first) = first {
            return Ok(Caught::Duplicate(first));
        }
    }
    let headers = serde_json::to_string(&r.headers).expect("headers serialise");
    c.prepare_cached(
        "INSERT INTO inbound (id, source_id, tenant, received_at, method, target, headers, body,
                              dedup_key, state, node, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?4)",
    )?
    .execute(params![
        r.id,
        r.source,
        r.tenant,
        r.received_at,
        r.method,
        r.target,
        headers,
        r.body,
        r.dedup_key,
        r.node
    ])?;
    Ok(Caught::Stored)
}

const SUMMARY: &str =
    "seq, id, source_id, tenant, received_at, method, target, length(body) AS body_bytes,
     dedup_key, state, reason, events, updated_at";

fn from_row(r: &rusqlite::Row<'_>, whole: bool) -> rusqlite::Result<CaughtRequest> {
    let state: String = r.get("state")?;
    let Some(state) = InboundState::parse(&state) else {
        return Err(corrupt(format!("unknown inbound state {state:?}")));
    };
    let events: Option<String> = r.get("events")?;
    let events = match events {
        Some(e) => serde_json::from_str(&e).map_err(|e| corrupt(format!("inbound events: {e}")))?,
        None => Vec::new(),
    };
    let (headers, body) = if whole {
        let h: String = r.get("headers")?;
        (
            serde_json::from_str(&h).map_err(|e| corrupt(format!("inbound headers: {e}")))?,
            r.get("body")?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(CaughtRequest {
        seq: r.get("seq")?,
        id: r.get("id")?,
        source: r.get("source_id")?,
        tenant: r.get("tenant")?,
        received_at: r.get("received_at")?,
        method: r.get("method")?,
        target: r.get("target")?,
        headers,
        body,
        body_bytes: r.get::<_, i64>("body_bytes")? as u64,
        dedup_key: r.get("dedup_key")?,
        state,
        reason: r.get("reason")?,
        events,
        updated_at: r.get("updated_at")?,
    })
}

pub fn pending(c: &Connection, limit: usize) -> rusqlite::Result<Vec<CaughtRequest>> {
    c.prepare_cached(&format!(
        "SELECT {SUMMARY}, headers, body FROM inbound WHERE state = 'pending' ORDER BY seq LIMIT ?1"
    ))?
    .query_map(params![limit as i64], |r| from_row(r, true))?
    .collect()
}

pub fn finish(c: &Connection, outcomes: &[InboundOutcome], now: Millis) -> rusqlite::Result<()> {
    let mut stmt = c.prepare_cached(
        "UPDATE inbound SET state = ?2, reason = ?3, events = ?4, updated_at = ?5
         WHERE seq = ?1 AND state = 'pending'",
    )?;
    for o in outcomes {
        let events = serde_json::to_string(&o.events).expect("ids serialise");
        stmt.execute(params![o.seq, o.state.as_str(), o.reason, events, now])?;
    }
    Ok(())
}

pub fn list(c: &Connection, f: &InboundFilter) -> rusqlite::Result<Vec<CaughtRequest>> {
    let before: Option<i64> = match &f.before {
        Some(id) => match c
            .prepare_cached("SELECT seq FROM inbound WHERE id = ?1")?
            .query_row(params![id], |r| r.get(0))
            .optional()?
        {
            Some(seq) => Some(seq),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    c.prepare_cached(&format!(
        "SELECT {SUMMARY} FROM inbound
         WHERE (?1 IS NULL OR source_id = ?1) AND (?2 IS NULL OR tenant = ?2)
           AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR seq < ?4)
         ORDER BY seq DESC LIMIT ?5"
    ))?
    .query_map(
        params![
            f.source,
            f.tenant,
            f.state.map(InboundState::as_str),
            before,
            f.limit as i64
        ],
        |r| from_row(r, false),
    )?
    .collect()
}

pub fn one(c: &Connection, id: &str) -> rusqlite::Result<Option<CaughtRequest>> {
    c.prepare_cached(&format!(
        "SELECT {SUMMARY}, headers, body FROM inbound WHERE id = ?1"
    ))?
    .query_row(params![id], |r| from_row(r, true))
    .optional()
}

pub fn replay(c: &Connection, id: &str, now: Millis) -> rusqlite::Result<bool> {
    Ok(c.prepare_cached(
        "UPDATE inbound SET state = 'pending', reason = NULL, updated_at = ?2
         WHERE id = ?1 AND state <> 'pending'",
    )?
    .execute(params![id, now])?
        == 1
        || c.prepare_cached("SELECT 1 FROM inbound WHERE id = ?1")?
            .exists(params![id])?)
}

pub fn purge(c: &Connection, before: Millis, batch: usize) -> rusqlite::Result<u64> {
    Ok(c.prepare_cached(
        "DELETE FROM inbound WHERE seq IN (
           SELECT seq FROM inbound WHERE state <> 'pending' AND updated_at < ?1 LIMIT ?2)",
    )?
    .execute(params![before, batch as i64])? as u64)
}

pub fn sources(c: &Connection) -> rusqlite::Result<Vec<StoredSource>> {
    c.prepare_cached("SELECT id, spec, owner_id, created_at, updated_at FROM sources ORDER BY id")?
        .query_map([], |r| {
            let spec: String = r.get(1)?;
            Ok(StoredSource {
                id: r.get(0)?,
                spec: serde_json::from_str(&spec)
                    .map_err(|e| corrupt(format!("source spec: {e}")))?,
                owner: r.get(2)?,
                created_at: r.get(3)?,
                updated_at: r.get(4)?,
            })
        })?
        .collect()
}

pub fn put_source(
    c: &Connection,
    s: &StoredSource,
) -> rusqlite::Result<Result<(), WebhookConflict>> {
    let spec = serde_json::to_string(&s.spec).expect("spec serialises");
    let n = c
        .prepare_cached(
            "INSERT INTO sources (id, spec, owner_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![s.id, spec, s.owner, s.created_at, s.updated_at])?;
    Ok(if n == 1 {
        Ok(())
    } else {
        Err(WebhookConflict::Exists)
    })
}

pub fn delete_source(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(c.prepare_cached("DELETE FROM sources WHERE id = ?1")?
        .execute(params![id])?
        == 1)
}

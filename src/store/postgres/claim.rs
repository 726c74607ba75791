//! Claiming due deliveries across nodes.
//!
//! Claims for one webhook are serialised by a transaction-scoped advisory
//! lock on its id, so the limits that must hold for the whole cluster can be
//! counted under it: `max_in_flight` (live leases of every node), FIFO (only
//! the queue's head, leased by one node at a time) and `rate_limit_per_sec`
//! (a shared next-slot row). Rows are picked with `FOR UPDATE SKIP LOCKED`
//! and leased to this node for `[store] lease_secs`.

use tokio_postgres::Row;

use std::time::Duration;

use super::LIVE;
use super::render_of;
use crate::config::Ordering;
use crate::event::{Event, Millis};
use crate::store::{Claim, Claimed, Due, StoreError};

/// How soon to look again when another node holds what this one would send.
const BUSY_ELSEWHERE_MS: i64 = 1_000;

pub async fn claim(
    client: &mut deadpool_postgres::Object,
    node: &str,
    lease: Duration,
    c: &Claim,
) -> Result<Claimed, StoreError> {
    let tx = client.transaction().await?;
    let lock = tx
        .prepare_cached(
            "SELECT pg_advisory_xact_lock(hashtextextended('weir:claim:' || $1, 0)), weir_now_ms()",
        )
        .await?;
    let db_now: i64 = tx.query_one(&lock, &[&c.webhook]).await?.get(1);
    // FIFO claims exactly the head it looked at, never the row after it.
    let (limit, only) = match c.ordering {
        Ordering::Fifo => match fifo_head(&tx, node, c, db_now).await? {
            Ok(head) => (Ok(usize::from(head.is_some())), head),
            Err(at) => (Err(at), None),
        },
        Ordering::Unordered => (unordered_limit(&tx, node, c).await?, None),
    };
    let mut want = match limit {
        Ok(n) => n.min(c.batch),
        Err(blocked_until) => {
            tx.commit().await?;
            return Ok(Claimed {
                due: Vec::new(),
                blocked_until: Some(blocked_until),
                next_due: None,
            });
        }
    };
    if want == 0 {
        tx.commit().await?;
        return Ok(Claimed::default());
    }
    let mut slots = None;
    if c.rate_limit_per_sec > 0 {
        match rate_slots(&tx, c, want).await? {
            Ok(s) => {
                want = s.free;
                slots = Some(s);
            }
            Err(blocked_until) => {
                tx.commit().await?;
                return Ok(Claimed {
                    due: Vec::new(),
                    blocked_until: Some(blocked_until),
                    next_due: None,
                });
            }
        }
    }
    // FIFO takes the head by sequence, waiting for a row lock rather than
    // skipping to the next row; otherwise the oldest due first, skipping
    // rows another transaction holds.
    let (order, lock) = match c.ordering {
        Ordering::Fifo => ("seq", "FOR UPDATE"),
        Ordering::Unordered => ("next_at, seq", "FOR UPDATE SKIP LOCKED"),
    };
    let stmt = tx
        .prepare_cached(&format!(
            "WITH picked AS (
               SELECT seq FROM deliveries
               WHERE webhook_id = $1 AND state IN {LIVE} AND next_at <= $2
                 AND (lease_until IS NULL OR lease_until <= weir_now_ms() OR lease_node = $3)
                 AND NOT (seq = ANY($4)) AND ($7::bigint IS NULL OR seq = $7)
               ORDER BY {order} LIMIT $5 {lock}),
             leased AS (
               UPDATE deliveries d SET lease_node = $3, lease_until = weir_now_ms() + $6
               FROM picked WHERE d.seq = picked.seq
               RETURNING d.seq, d.id, d.webhook_id, d.body, d.headers, d.failures, d.attempts,
                         d.next_at, d.event_seq)
             SELECT l.seq, l.id, l.webhook_id, l.body, l.headers, l.failures, l.attempts,
                    e.id AS event_id, e.type, e.owner_id, e.data, e.occurred_at
             FROM leased l JOIN events e ON e.seq = l.event_seq
             ORDER BY l.next_at, l.seq"
        ))
        .await?;
    let lease_ms = lease.as_millis() as i64;
    let rows = tx
        .query(
            &stmt,
            &[
                &c.webhook,
                &c.due_by,
                &node,
                &c.in_flight,
                &(want as i64),
                &lease_ms,
                &only,
            ],
        )
        .await?;
    if let Some(s) = slots
        && !rows.is_empty()
    {
        // Only the slots used are taken.
        let stmt = tx
            .prepare_cached("UPDATE rate_slots SET next_us = $2 WHERE webhook_id = $1")
            .await?;
        let next = s.from_us + rows.len() as i64 * s.interval_us;
        tx.execute(&stmt, &[&c.webhook, &next]).await?;
    }
    tx.commit().await?;
    let due = rows.iter().map(due_from_row).collect::<Result<_, _>>()?;
    Ok(Claimed {
        due,
        blocked_until: None,
        next_due: None,
    })
}

/// How many more this node may claim: `max_in_flight` less what every node
/// has in flight. `Err(when)` when other nodes hold all of it.
async fn unordered_limit(
    tx: &deadpool_postgres::Transaction<'_>,
    node: &str,
    c: &Claim,
) -> Result<Result<usize, Millis>, StoreError> {
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT count(*) FROM deliveries
             WHERE webhook_id = $1 AND state IN {LIVE} AND lease_node <> $2 AND lease_until > weir_now_ms()"
        ))
        .await?;
    let elsewhere = tx
        .query_one(&stmt, &[&c.webhook, &node])
        .await?
        .get::<_, i64>(0) as usize;
    let free = c
        .max_in_flight
        .saturating_sub(c.in_flight.len())
        .saturating_sub(elsewhere);
    if free == 0 && elsewhere > 0 {
        return Ok(Err(c.now + BUSY_ELSEWHERE_MS));
    }
    Ok(Ok(free))
}

/// FIFO: the head of the queue (its `seq`), if it is due and nobody has it
/// in flight.
async fn fifo_head(
    tx: &deadpool_postgres::Transaction<'_>,
    node: &str,
    c: &Claim,
    db_now: i64,
) -> Result<Result<Option<i64>, Millis>, StoreError> {
    if !c.in_flight.is_empty() {
        return Ok(Ok(None));
    }
    // Not a cached statement: planned for this webhook each time, since a
    // cached generic plan walks the primary key when one webhook has a
    // million live deliveries (0.05 ms became 200 ms in a review).
    let sql = format!(
        "SELECT seq, next_at, lease_node, lease_until FROM deliveries
         WHERE webhook_id = $1 AND state IN {LIVE} ORDER BY seq LIMIT 1"
    );
    let Some(head) = tx.query_opt(sql.as_str(), &[&c.webhook]).await? else {
        return Ok(Ok(None));
    };
    let seq: i64 = head.get(0);
    let next_at: i64 = head.get(1);
    let lease_node: Option<String> = head.get(2);
    let lease_until: Option<i64> = head.get(3);
    if let (Some(holder), Some(until)) = (lease_node, lease_until)
        && holder != node
        && until > db_now
    {
        // Another node is sending the head; if it dies, the lease lapses.
        return Ok(Err(c.now + (until - db_now).min(BUSY_ELSEWHERE_MS)));
    }
    // Only the head may go, and only when it is due.
    Ok(Ok((next_at <= c.due_by).then_some(seq)))
}

/// Send slots free now under the webhook's shared rate.
struct Slots {
    free: usize,
    /// Where the slots start (microseconds, database clock).
    from_us: i64,
    interval_us: i64,
}

/// Up to `want` free send slots of the webhook's shared rate (the row stays
/// locked until the claim commits, which advances it by the slots used);
/// `Err(when)` when the next slot is in the future.
async fn rate_slots(
    tx: &deadpool_postgres::Transaction<'_>,
    c: &Claim,
    want: usize,
) -> Result<Result<Slots, Millis>, StoreError> {
    let interval_us = (1_000_000 / i64::from(c.rate_limit_per_sec)).max(1);
    let stmt = tx
        .prepare_cached(
            "INSERT INTO rate_slots (webhook_id, next_us) VALUES ($1, 0)
             ON CONFLICT (webhook_id) DO UPDATE SET next_us = rate_slots.next_us
             RETURNING next_us, weir_now_ms() * 1000",
        )
        .await?;
    let row = tx.query_one(&stmt, &[&c.webhook]).await?;
    let (next_us, now_us): (i64, i64) = (row.get(0), row.get(1));
    if next_us > now_us {
        return Ok(Err(c.now + (next_us - now_us) / 1000 + 1));
    }
    // An idle webhook may send one slot's worth at once, no more.
    let from = next_us.max(now_us - interval_us);
    let free = (((now_us - from) / interval_us) as usize).clamp(1, want);
    Ok(Ok(Slots {
        free,
        from_us: from,
        interval_us,
    }))
}

/// See [`crate::store::Store::next_due_at`]. Rows another node leases
/// count from when the lease lapses (converted to the caller's clock).
pub async fn next_due_at(
    client: &deadpool_postgres::Object,
    node: &str,
    c: &Claim,
) -> Result<Option<Millis>, StoreError> {
    let order = match c.ordering {
        Ordering::Fifo => "seq",
        Ordering::Unordered => "next_at, seq",
    };
    let stmt = client
        .prepare_cached(&format!(
            "SELECT seq, next_at,
                    CASE WHEN lease_node <> $2 AND lease_until > weir_now_ms()
                         THEN lease_until - weir_now_ms() END
             FROM deliveries WHERE webhook_id = $1 AND state IN {LIVE}
             ORDER BY {order} LIMIT $3"
        ))
        .await?;
    let limit = match c.ordering {
        Ordering::Fifo => 1,
        Ordering::Unordered => c.in_flight.len() as i64 + 1,
    };
    let rows = client.query(&stmt, &[&c.webhook, &node, &limit]).await?;
    let next = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                r.get::<_, Option<i64>>(2),
            )
        })
        .find(|(seq, _, _)| !c.in_flight.contains(seq));
    Ok(match next {
        None => None,
        Some((_, next_at, None)) => Some(next_at),
        Some((_, next_at, Some(lapses_in))) => Some(next_at.max(c.now + lapses_in)),
    })
}

fn due_from_row(row: &Row) -> Result<Due, StoreError> {
    let event = Event {
        id: row.get("event_id"),
        event_type: row.get("type"),
        owner_id: row.get("owner_id"),
        data: row.get("data"),
        occurred_at: row.get("occurred_at"),
    };
    Ok(Due {
        seq: row.get("seq"),
        id: row.get("id"),
        webhook_id: row.get("webhook_id"),
        rendered: render_of(row, &event)?,
        event,
        failures: row.get::<_, i32>("failures") as u32,
        attempts: row.get::<_, i32>("attempts") as u32,
    })
}

//! This node's row in the `nodes` table: its id, kept unique while it runs,
//! and the heartbeat that also renews the leases of deliveries in flight.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::store::StoreError;

/// A heartbeat older than this means the node is gone.
fn lapse(lease: Duration) -> Duration {
    lease / 2
}

/// How often a node beats: several times per lapse, so one slow beat is
/// not a death.
fn interval(lease: Duration) -> Duration {
    lease / 6
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    /// Tells this process from an earlier one with the same id.
    pub instance: String,
}

/// The default id: the host's name and a random suffix, so two nodes on
/// one host (or two containers with one hostname) never share one.
fn default_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| {
            h.trim()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .take(40)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weir".into());
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Claims `id` (or a generated one) for this process. A node whose
/// heartbeat has lapsed (it was killed) is taken over; for one whose
/// heartbeat is fresh, this waits up to the lapse time and refuses to start
/// if the heartbeat moves meanwhile: two live nodes never share an id.
pub async fn register(
    pool: &Pool,
    id: Option<String>,
    lease: Duration,
) -> Result<Node, StoreError> {
    let lapse_ms = lapse(lease).as_millis() as i64;
    let node = Node {
        id: id.unwrap_or_else(default_id),
        instance: format!("{:016x}", rand::random::<u64>()),
    };
    let client = pool
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(super::pool_error(&e)))?;
    let take = client
        .prepare_cached(
            "INSERT INTO nodes (id, instance, started_at, heartbeat_at)
             VALUES ($1, $2, weir_now_ms(), weir_now_ms())
             ON CONFLICT (id) DO UPDATE SET instance = $2, started_at = weir_now_ms(), heartbeat_at = weir_now_ms()
             WHERE nodes.heartbeat_at < weir_now_ms() - $3
             RETURNING id",
        )
        .await?;
    // Nodes killed long ago (generated ids never come back) are forgotten.
    client
        .execute(
            "DELETE FROM nodes WHERE heartbeat_at < weir_now_ms() - 86400000",
            &[],
        )
        .await?;
    let look = client
        .prepare_cached("SELECT heartbeat_at FROM nodes WHERE id = $1")
        .await?;
    let mut first_seen: Option<i64> = None;
    let deadline = tokio::time::Instant::now() + lapse(lease) + interval(lease) * 2;
    loop {
        if client
            .query_opt(&take, &[&node.id, &node.instance, &lapse_ms])
            .await?
            .is_some()
        {
            return Ok(node);
        }
        let beat: Option<i64> = client
            .query_opt(&look, &[&node.id])
            .await?
            .map(|r| r.get(0));
        match (first_seen, beat) {
            (None, Some(b)) => {
                info!(node = %node.id, "another process holds this node_id; waiting to see whether it is alive");
                first_seen = Some(b);
            }
            (Some(first), Some(b)) if b != first => {
                return Err(StoreError::Open(format!(
                    "node_id {:?} is in use by another running weir node; give each node its own [server] node_id (or leave it out for a generated one)",
                    node.id
                )));
            }
            _ => {}
        }
        if tokio::time::Instant::now() > deadline {
            return Err(StoreError::Open(format!(
                "node_id {:?} is still held by another node",
                node.id
            )));
        }
        tokio::time::sleep(interval(lease) / 2).await;
    }
}

/// Marks this node alive and renews the leases of the deliveries it is
/// working on, several times per lease, until `stop`.
pub async fn heartbeat(
    pool: Pool,
    node: Node,
    leased: Arc<Mutex<HashSet<i64>>>,
    lease: Duration,
    evicted: Arc<std::sync::atomic::AtomicBool>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval(lease));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let seqs: Vec<i64> = leased.lock().expect("leases").iter().copied().collect();
        match beat(&pool, &node, &seqs, lease).await {
            Ok(true) => {}
            Ok(false) => {
                error!(node = %node.id, "another process took over this node_id (this node was presumed dead): this node stops delivering; restart it");
                evicted.store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            Err(e) => {
                warn!(node = %node.id, error = %e, "heartbeat failed; leases lapse if the database stays away")
            }
        }
    }
}

async fn beat(pool: &Pool, node: &Node, seqs: &[i64], lease: Duration) -> Result<bool, StoreError> {
    let client = pool
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(super::pool_error(&e)))?;
    let stmt = client
        .prepare_cached(
            "UPDATE nodes SET heartbeat_at = weir_now_ms() WHERE id = $1 AND instance = $2",
        )
        .await?;
    let alive = client.execute(&stmt, &[&node.id, &node.instance]).await? == 1;
    if !seqs.is_empty() {
        let stmt = client
            .prepare_cached(
                "UPDATE deliveries SET lease_until = weir_now_ms() + $3
                 WHERE seq = ANY($1) AND lease_node = $2",
            )
            .await?;
        client
            .execute(&stmt, &[&seqs, &node.id, &(lease.as_millis() as i64)])
            .await?;
    }
    Ok(alive)
}

/// Hands back the leases still held and removes the node, so a restart
/// with the same id need not wait.
pub async fn leave(
    client: &deadpool_postgres::Object,
    node: &str,
    seqs: &[i64],
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE deliveries SET lease_node = NULL, lease_until = NULL
             WHERE seq = ANY($1) AND lease_node = $2",
        )
        .await?;
    client.execute(&stmt, &[&seqs, &node]).await?;
    let stmt = client
        .prepare_cached("DELETE FROM nodes WHERE id = $1")
        .await?;
    client.execute(&stmt, &[&node]).await?;
    Ok(())
}

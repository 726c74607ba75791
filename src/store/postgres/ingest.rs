//! Group commit for ingest: concurrent ingest calls wait in a queue, and
//! each transaction takes every call waiting (up to a cap), so one commit
//! answers many requests. Each table gets one multi-row statement per group
//! (arrays through `unnest`), not one statement per event or delivery.
//!
//! Dedup holds across nodes: the `(owner, id)` keys of a group are locked
//! (transaction-scoped advisory locks, in a fixed order) before they are
//! looked up, so two nodes taking the same retried event cannot both store it.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::DUE_CHANNEL;
use crate::event::Millis;
use crate::store::{Ingested, NewDelivery, NewEvent, StoreError, Target};

/// Groups committing at once, each on its own connection.
const COMMITTERS: usize = 2;
/// Events in one group at most.
const MAX_GROUP_EVENTS: usize = 5_000;

pub struct Job {
    pub events: Vec<NewEvent>,
    pub now: Millis,
    pub dedup_window_ms: Millis,
    pub reply: oneshot::Sender<Result<Vec<Ingested>, StoreError>>,
}

pub fn spawn(pool: Pool, rx: mpsc::Receiver<Job>) {
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..COMMITTERS {
        tokio::spawn(committer(pool.clone(), rx.clone()));
    }
}

async fn committer(pool: Pool, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let group = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut events = first.events.len();
            let mut group = vec![first];
            while events < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(job) => {
                        events += job.events.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            group
        };
        let result = commit(&pool, &group).await;
        match result {
            Ok(mut outcomes) => {
                for job in group.into_iter().rev() {
                    let mine = outcomes.split_off(outcomes.len() - job.events.len());
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let unavailable = matches!(e, StoreError::Unavailable(_));
                let text = match e {
                    StoreError::Unavailable(t) => t,
                    other => other.to_string(),
                };
                for job in group {
                    let e = if unavailable {
                        StoreError::Unavailable(text.clone())
                    } else {
                        StoreError::Commit(text.clone())
                    };
                    let _ = job.reply.send(Err(e));
                }
            }
        }
    }
}

fn dedup_key(e: &NewEvent) -> String {
    // The unit separator cannot appear in a sane owner id; the id follows.
    format!(
        "{}\u{1f}{}",
        e.event.owner_id.as_deref().unwrap_or(""),
        e.event.id
    )
}

/// Stores the group's events and deliveries in one transaction; outcomes in
/// the order of the jobs and their events.
async fn commit(pool: &Pool, group: &[Job]) -> Result<Vec<Ingested>, StoreError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| StoreError::Unavailable(super::pool_error(&e)))?;
    let tx = client.transaction().await?;
    let all: Vec<(&Job, &NewEvent)> = group
        .iter()
        .flat_map(|j| j.events.iter().map(move |e| (j, e)))
        .collect();
    let keys: Vec<String> = all.iter().map(|(_, e)| dedup_key(e)).collect();
    let sorted: Vec<&String> = keys.iter().collect::<BTreeSet<_>>().into_iter().collect();
    let lock = tx
        .prepare_cached(
            "SELECT count(pg_advisory_xact_lock(h)) FROM
               (SELECT DISTINCT hashtextextended('weir:event:' || k, 0) AS h FROM unnest($1::text[]) k ORDER BY 1) s",
        )
        .await?;
    tx.query_one(&lock, &[&sorted]).await?;
    // Which keys were taken inside their job's window (jobs of one group
    // share a clock reading to the millisecond, give or take).
    let oldest_window = group
        .iter()
        .map(|j| j.now - j.dedup_window_ms)
        .min()
        .unwrap_or(0);
    let seen_stmt = tx
        .prepare_cached(
            "SELECT e.owner_key || chr(31) || e.id, max(e.received_at) FROM events e
             JOIN unnest($1::text[], $2::text[]) AS u(owner_key, id)
               ON e.owner_key = u.owner_key AND e.id = u.id
             WHERE e.received_at > $3 GROUP BY 1",
        )
        .await?;
    let owners: Vec<&str> = all
        .iter()
        .map(|(_, e)| e.event.owner_id.as_deref().unwrap_or(""))
        .collect();
    let ids: Vec<&str> = all.iter().map(|(_, e)| e.event.id.as_str()).collect();
    let seen: std::collections::HashMap<String, i64> = tx
        .query(&seen_stmt, &[&owners, &ids, &oldest_window])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    let mut outcomes = Vec::with_capacity(all.len());
    let mut fresh: Vec<usize> = Vec::new();
    let mut in_group = HashSet::new();
    for (i, (job, _)) in all.iter().enumerate() {
        let dup_stored = seen
            .get(&keys[i])
            .is_some_and(|at| *at > job.now - job.dedup_window_ms);
        if dup_stored || !in_group.insert(keys[i].as_str()) {
            outcomes.push(Ingested::Duplicate);
        } else {
            outcomes.push(Ingested::Stored(Vec::new()));
            fresh.push(i);
        }
    }
    if fresh.is_empty() {
        tx.commit().await?;
        return Ok(outcomes);
    }

    let seq_stmt = tx
        .prepare_cached("SELECT nextval('events_seq_seq') FROM generate_series(1, $1::bigint)")
        .await?;
    let seqs: Vec<i64> = tx
        .query(&seq_stmt, &[&(fresh.len() as i64)])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut ev = EventColumns::default();
    let mut dl = DeliveryColumns::default();
    let mut woken = BTreeSet::new();
    for (&i, &seq) in fresh.iter().zip(&seqs) {
        let (job, e) = all[i];
        ev.push(seq, e, job.now);
        let mut made = Vec::with_capacity(e.webhooks.len());
        for Target { webhook, tenant } in &e.webhooks {
            let id = crate::store::new_delivery_id();
            dl.push(&id, seq, webhook, tenant, &e.event.event_type, job.now);
            woken.insert(webhook.as_str());
            made.push(NewDelivery {
                webhook: webhook.clone(),
                id,
            });
        }
        outcomes[i] = Ingested::Stored(made);
    }
    let put_events = tx
        .prepare_cached(
            "INSERT INTO events (seq, id, owner_key, owner_id, type, data, occurred_at, received_at)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::bigint[])",
        )
        .await?;
    tx.execute(
        &put_events,
        &[
            &ev.seq,
            &ev.id,
            &ev.owner_key,
            &ev.owner_id,
            &ev.event_type,
            &ev.data,
            &ev.occurred_at,
            &ev.received_at,
        ],
    )
    .await?;
    if !dl.id.is_empty() {
        let put_deliveries = tx
            .prepare_cached(
                "INSERT INTO deliveries (id, event_seq, webhook_id, tenant, event_type, state, next_at, created_at, updated_at)
                 SELECT id, event_seq, webhook_id, tenant, event_type, 'pending', at, at, at
                 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[])
                   AS u(id, event_seq, webhook_id, tenant, at, event_type)",
            )
            .await?;
        tx.execute(
            &put_deliveries,
            &[
                &dl.id,
                &dl.event_seq,
                &dl.webhook,
                &dl.tenant,
                &dl.at,
                &dl.event_type,
            ],
        )
        .await?;
        let wake = tx
            .prepare_cached("SELECT count(pg_notify($1, w)) FROM unnest($2::text[]) w")
            .await?;
        let woken: Vec<&str> = woken.into_iter().collect();
        tx.query_one(&wake, &[&DUE_CHANNEL, &woken]).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

#[derive(Default)]
struct EventColumns<'a> {
    seq: Vec<i64>,
    id: Vec<&'a str>,
    owner_key: Vec<&'a str>,
    owner_id: Vec<Option<&'a str>>,
    event_type: Vec<&'a str>,
    data: Vec<&'a str>,
    occurred_at: Vec<&'a str>,
    received_at: Vec<i64>,
}

impl<'a> EventColumns<'a> {
    fn push(&mut self, seq: i64, e: &'a NewEvent, now: Millis) {
        let ev = &e.event;
        self.seq.push(seq);
        self.id.push(&ev.id);
        self.owner_key.push(ev.owner_id.as_deref().unwrap_or(""));
        self.owner_id.push(ev.owner_id.as_deref());
        self.event_type.push(&ev.event_type);
        self.data.push(&ev.data);
        self.occurred_at.push(&ev.occurred_at);
        self.received_at.push(now);
    }
}

#[derive(Default)]
struct DeliveryColumns<'a> {
    id: Vec<String>,
    event_seq: Vec<i64>,
    webhook: Vec<&'a str>,
    tenant: Vec<Option<&'a str>>,
    event_type: Vec<&'a str>,
    at: Vec<i64>,
}

impl<'a> DeliveryColumns<'a> {
    fn push(
        &mut self,
        id: &str,
        seq: i64,
        webhook: &'a str,
        tenant: &'a Option<String>,
        event_type: &'a str,
        at: Millis,
    ) {
        self.id.push(id.to_owned());
        self.event_seq.push(seq);
        self.webhook.push(webhook);
        self.tenant.push(tenant.as_deref());
        self.event_type.push(event_type);
        self.at.push(at);
    }
}

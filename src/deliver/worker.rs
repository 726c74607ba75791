//! One worker per webhook drives that webhook's queue from the store.
//!
//! The queue lives on disk; the worker only keeps the ids it has in flight.
//! It wakes when ingest notifies it, when an attempt finishes, or when the next
//! retry falls due, and never has more than `max_in_flight` attempts (one for
//! `fifo`) under way. A worker never blocks another webhook's worker.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, debug, info_span, warn};

use super::Shared;
use super::classify::Verdict;
use super::http;
use super::schedule::{self, Next};
use crate::config::{Ordering, Webhook};
use crate::event::Millis;
use crate::router;
use crate::store::{AfterAttempt, Due, Render};

/// Longest a worker sleeps without looking at the store again.
const MAX_IDLE: Duration = Duration::from_secs(30);

pub struct Worker {
    pub id: String,
    pub shared: Arc<Shared>,
    pub wake: Arc<Notify>,
    pub stop: tokio_util::sync::CancellationToken,
}

impl Worker {
    pub async fn run(self) {
        let mut inflight: JoinSet<i64> = JoinSet::new();
        let mut busy: HashSet<i64> = HashSet::new();
        let mut next_slot = Instant::now();
        loop {
            let mut wake_at = Instant::now() + MAX_IDLE;
            if let Some(hook) = self.runnable() {
                let cap = match hook.ordering {
                    Ordering::Fifo => 1,
                    Ordering::Unordered => hook.policy.max_in_flight,
                };
                // Refill in batches: look at the store again once half the
                // slots are free, not after every single completion.
                if busy.len() * 2 <= cap && busy.len() < cap {
                    match self
                        .fill(&hook, cap, &mut busy, &mut inflight, &mut next_slot)
                        .await
                    {
                        Ok(Some(at)) => wake_at = wake_at.min(at),
                        Ok(None) => {}
                        Err(e) => {
                            warn!(webhook = %self.id, error = %e, "cannot read the queue");
                            wake_at = Instant::now() + Duration::from_secs(1);
                        }
                    }
                }
            }
            tokio::select! {
                Some(done) = inflight.join_next() => {
                    let mut done = Some(done);
                    while let Some(result) = done {
                        match result {
                            Ok(seq) => {
                                busy.remove(&seq);
                            }
                            // A panicked attempt task: forget everything in
                            // flight and let the store tell what is still due.
                            Err(_) => busy.clear(),
                        }
                        done = inflight.try_join_next();
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = self.stop.cancelled() => break,
            }
        }
        // Let attempts already on the wire finish (and be recorded).
        while inflight.join_next().await.is_some() {}
    }

    /// The webhook's current config, if it is configured, active and enabled.
    fn runnable(&self) -> Option<Arc<Webhook>> {
        let config = self.shared.config.load();
        let hook = config.webhook(&self.id)?.clone();
        let disabled = self
            .shared
            .disabled
            .lock()
            .expect("disabled")
            .contains_key(&self.id);
        (hook.active && !disabled).then_some(hook)
    }

    /// Starts attempts for due deliveries until `cap` are in flight. Returns
    /// when it next wants to look, if earlier than usual.
    async fn fill(
        &self,
        hook: &Arc<Webhook>,
        cap: usize,
        busy: &mut HashSet<i64>,
        inflight: &mut JoinSet<i64>,
        next_slot: &mut Instant,
    ) -> Result<Option<Instant>, crate::store::StoreError> {
        let fifo = hook.ordering == Ordering::Fifo;
        if hook.policy.rate_limit_per_sec > 0 && *next_slot > Instant::now() {
            return Ok(Some(*next_slot));
        }
        let store = &self.shared.store;
        let now = self.shared.clock.now();
        let want = cap - busy.len();
        let due = store
            .due(&self.id, now, want, fifo, busy.iter().copied().collect())
            .await?;
        let found = due.len();
        for d in due {
            if hook.policy.rate_limit_per_sec > 0 {
                let now = Instant::now();
                if *next_slot > now {
                    return Ok(Some(*next_slot));
                }
                *next_slot =
                    now.max(*next_slot) + Duration::from_secs(1) / hook.policy.rate_limit_per_sec;
            }
            busy.insert(d.seq);
            let shared = self.shared.clone();
            let hook = hook.clone();
            let span = info_span!("attempt", webhook = %self.id, delivery = %d.id, event = %d.event.id, attempt = d.attempts + 1);
            inflight.spawn(attempt(shared, hook, d).instrument(span));
        }
        if busy.len() >= cap || found >= want {
            return Ok(None);
        }
        // Nothing more is due now: sleep until the next one is.
        let next = store.next_due_at(&self.id, fifo).await?;
        Ok(next.map(|at| {
            Instant::now() + Duration::from_millis((at - self.shared.clock.now()).max(0) as u64)
        }))
    }
}

/// Renders (if needed), sends and records one attempt; returns the delivery's seq.
async fn attempt(shared: Arc<Shared>, hook: Arc<Webhook>, due: Due) -> i64 {
    let seq = due.seq;
    let (rendered, fresh) = match due.rendered.clone() {
        Some(r) => (r, false),
        None => match router::render(&shared.plugins, &hook, &due.event, &due.id).await {
            Render::Deliver(r) => (r, true),
            outcome => {
                let label = if matches!(outcome, Render::Held(_)) {
                    "held"
                } else {
                    "filtered"
                };
                shared
                    .metrics
                    .deliveries
                    .with_label_values(&[hook.id.as_str(), label])
                    .inc();
                if let Err(e) = shared
                    .store
                    .save_render(seq, &outcome, shared.clock.now())
                    .await
                {
                    warn!(error = %e, "cannot record the plugin outcome");
                }
                return seq;
            }
        },
    };
    let client = shared.clients.get(&hook.policy.allow_targets);
    let out = http::send(&client, &hook, &due.event.id, &rendered, shared.clock.now()).await;
    let after = after_attempt(&hook, &due, out.verdict, out.attempt.at);
    let m = &shared.metrics;
    m.attempt_seconds
        .with_label_values(&[hook.id.as_str()])
        .observe(out.attempt.latency_ms as f64 / 1000.0);
    let outcome = match after {
        AfterAttempt::Delivered => "delivered",
        AfterAttempt::Retry { .. } => "retrying",
        AfterAttempt::Dead => "dead",
    };
    m.deliveries
        .with_label_values(&[hook.id.as_str(), outcome])
        .inc();
    debug!(status = ?out.attempt.status, error = ?out.attempt.error, ?after, "attempt done");
    let at = out.attempt.at;
    let recorded = shared
        .store
        .finish_attempt(seq, &hook.id, fresh.then_some(rendered), out.attempt, after)
        .await;
    match recorded {
        Ok(health) => {
            if out.verdict == Verdict::Gone {
                shared
                    .disable(&hook.id, "subscriber answered 410 Gone".into())
                    .await;
            } else if let Some(since) = health.failing_since {
                let limit = hook.policy.disable_after.as_millis() as Millis;
                if at - since >= limit {
                    let reason = format!(
                        "failing continuously for {} hours",
                        hook.policy.disable_after.as_secs() / 3600
                    );
                    shared.disable(&hook.id, reason).await;
                }
            }
        }
        Err(e) => warn!(error = %e, "cannot record the attempt; it will be repeated"),
    }
    seq
}

fn after_attempt(hook: &Webhook, due: &Due, verdict: Verdict, now: Millis) -> AfterAttempt {
    let retry_after = match verdict {
        Verdict::Success => return AfterAttempt::Delivered,
        Verdict::Retry { retry_after } => retry_after,
        Verdict::Gone => None,
    };
    match schedule::after_failure(&hook.policy, due.failures, retry_after, schedule::jitter()) {
        Next::RetryIn(d) => AfterAttempt::Retry {
            at: now + d.as_millis() as Millis,
        },
        Next::GiveUp => AfterAttempt::Dead,
    }
}

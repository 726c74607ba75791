//! One worker per webhook drives that webhook's queue from the store.
//!
//! The queue lives on disk; the worker only keeps the ids it has in flight.
//! It wakes when ingest notifies it, when an attempt finishes, or when the next
//! retry falls due, and never has more than `max_in_flight` attempts (one for
//! `fifo`) under way. A worker never blocks another webhook's worker.
//!
//! Two things bend the schedule. If the store cannot record an attempt, the
//! worker pauses briefly rather than resend that delivery in a loop. And when
//! a subscriber that has been failing for [`OUTAGE`] answers 2xx again, the
//! worker catches up: everything live counts as due until the backlog is
//! gone, so a recovered subscriber is not left waiting on day-long retries.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use super::Shared;
use super::classify::Verdict;
use super::http;
use super::schedule::{self, Next};
use crate::config::{Ordering, Webhook};
use crate::event::Millis;
use crate::router::{self, Chain};
use crate::store::{AfterAttempt, Claim, Due, Fresh, Render};

/// Longest a worker sleeps without looking at the store again.
const MAX_IDLE: Duration = Duration::from_secs(30);
/// How long a worker waits before sending again after the store refused to
/// record an attempt: the delivery is still live, so sending at once would
/// repeat it to the subscriber in a tight loop.
const STORE_BACKOFF: Duration = Duration::from_secs(1);

/// A failure streak at least this long is an outage: when the subscriber
/// answers 2xx again, its whole backlog is sent at once instead of each
/// retry waiting out its own schedule (which may be days away by then).
const OUTAGE: Duration = Duration::from_secs(30);

/// An attempt task's report.
struct Finished {
    seq: i64,
    /// Whether the outcome reached the store.
    recorded: bool,
    /// `Some(true)` for a 2xx, `Some(false)` for a failed attempt, `None`
    /// when nothing was sent (the plugin chain dropped or held it).
    success: Option<bool>,
    /// When the attempt was handed to the task (server clock).
    started: Millis,
}

pub struct Worker {
    pub id: String,
    pub shared: Arc<Shared>,
    pub wake: Arc<Notify>,
    pub stop: tokio_util::sync::CancellationToken,
}

/// What a worker keeps between wake-ups.
struct Queue {
    inflight: JoinSet<Finished>,
    busy: HashSet<i64>,
    /// The rate limit's next free slot.
    next_slot: Instant,
    /// Set after a store error: no new attempts before then.
    paused_until: Option<Instant>,
    /// Start of the current run of failed attempts (server clock).
    failing_since: Option<Millis>,
    /// When the last 2xx came back (server clock).
    last_success: Option<Millis>,
    /// Sending the backlog regardless of schedule after an outage.
    catch_up: bool,
}

impl Worker {
    pub async fn run(self) {
        let mut q = Queue {
            inflight: JoinSet::new(),
            busy: HashSet::new(),
            next_slot: Instant::now(),
            paused_until: None,
            failing_since: None,
            last_success: None,
            catch_up: false,
        };
        loop {
            let mut wake_at = Instant::now() + MAX_IDLE;
            if let Some(until) = q.paused_until {
                if until > Instant::now() {
                    wake_at = until;
                } else {
                    q.paused_until = None;
                }
            }
            if q.paused_until.is_none()
                && let Some(hook) = self.runnable()
            {
                let cap = match hook.ordering {
                    Ordering::Fifo => 1,
                    Ordering::Unordered => hook.policy.max_in_flight,
                };
                // Refill in batches: look at the store again once half the
                // slots are free, not after every single completion.
                if q.busy.len() * 2 <= cap && q.busy.len() < cap {
                    match self.fill(&hook, cap, &mut q).await {
                        Ok(Some(at)) => wake_at = wake_at.min(at),
                        Ok(None) => {}
                        Err(e) => {
                            warn!(webhook = %self.id, error = %e, "cannot read the queue");
                            q.paused_until = Some(Instant::now() + STORE_BACKOFF);
                            wake_at = wake_at.min(Instant::now() + STORE_BACKOFF);
                        }
                    }
                }
            }
            tokio::select! {
                Some(done) = q.inflight.join_next() => {
                    let mut done = Some(done);
                    while let Some(result) = done {
                        match result {
                            Ok(finished) => self.finished(&mut q, finished),
                            // A panicked attempt task: forget everything in
                            // flight and let the store tell what is still due.
                            Err(_) => q.busy.clear(),
                        }
                        done = q.inflight.try_join_next();
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = self.stop.cancelled() => break,
            }
        }
        // Let attempts already on the wire finish (and be recorded).
        while q.inflight.join_next().await.is_some() {}
    }

    fn finished(&self, q: &mut Queue, f: Finished) {
        q.busy.remove(&f.seq);
        if !f.recorded {
            q.paused_until = Some(Instant::now() + STORE_BACKOFF);
        }
        // A failure of an attempt started before the last success is old
        // news: it says nothing about the subscriber now.
        let stale = q.last_success.is_some_and(|at| f.started < at);
        let now = self.shared.clock.now();
        match f.success {
            Some(true) => {
                q.last_success = Some(now);
                if let Some(since) = q.failing_since.take()
                    && now - since >= OUTAGE.as_millis() as Millis
                {
                    info!(webhook = %self.id, down_for_secs = (now - since) / 1000, "subscriber is back: sending its backlog now");
                    q.catch_up = true;
                }
            }
            Some(false) if !stale => {
                q.failing_since.get_or_insert(now);
                q.catch_up = false;
            }
            Some(false) | None => {}
        }
    }

    /// The webhook's current config, if it is configured, active and enabled.
    fn runnable(&self) -> Option<Arc<Webhook>> {
        let hook = self.shared.hooks.load().get(&self.id)?.clone();
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
        q: &mut Queue,
    ) -> Result<Option<Instant>, crate::store::StoreError> {
        if hook.policy.rate_limit_per_sec > 0 && q.next_slot > Instant::now() {
            return Ok(Some(q.next_slot));
        }
        let store = &self.shared.store;
        let now = self.shared.clock.now();
        // Paced, a worker takes one slot's delivery at a time, so it never
        // holds deliveries another node could send.
        let want = if hook.policy.rate_limit_per_sec > 0 {
            1
        } else {
            cap - q.busy.len()
        };
        let claim = Claim {
            webhook: self.id.clone(),
            // Catching up, everything live counts as due, oldest schedule first.
            due_by: if q.catch_up { Millis::MAX } else { now },
            now,
            ordering: hook.ordering,
            max_in_flight: cap,
            rate_limit_per_sec: hook.policy.rate_limit_per_sec,
            in_flight: q.busy.iter().copied().collect(),
            batch: want,
        };
        let claimed = store.claim(claim.clone()).await?;
        let due = claimed.due;
        let found = due.len();
        if q.catch_up && found < want {
            q.catch_up = false;
        }
        for d in due {
            if hook.policy.rate_limit_per_sec > 0 {
                let now = Instant::now();
                if q.next_slot > now {
                    return Ok(Some(q.next_slot));
                }
                q.next_slot =
                    now.max(q.next_slot) + Duration::from_secs(1) / hook.policy.rate_limit_per_sec;
            }
            q.busy.insert(d.seq);
            let shared = self.shared.clone();
            let hook = hook.clone();
            let span = info_span!("attempt", webhook = %self.id, delivery = %d.id, event = %d.event.id, attempt = d.attempts + 1);
            q.inflight.spawn(attempt(shared, hook, d).instrument(span));
        }
        if q.busy.len() >= cap || found >= want {
            return Ok(None);
        }
        // Nothing more is due now: sleep until the next one is.
        let at_instant = |at: Millis| {
            Instant::now() + Duration::from_millis((at - self.shared.clock.now()).max(0) as u64)
        };
        if let Some(at) = claimed.blocked_until {
            // A limit shared with other nodes held deliveries back.
            return Ok(Some(at_instant(at)));
        }
        let next = match claimed.next_due {
            Some(next) => next,
            None => {
                let claim = Claim {
                    in_flight: q.busy.iter().copied().collect(),
                    ..claim
                };
                store.next_due_at(&claim).await?
            }
        };
        Ok(next.map(at_instant))
    }
}

/// Renders (if needed), sends and records one attempt.
async fn attempt(shared: Arc<Shared>, hook: Arc<Webhook>, mut due: Due) -> Finished {
    let seq = due.seq;
    let started = shared.clock.now();
    let (rendered, fresh) = match due.rendered.take() {
        Some(r) => (r, None),
        None => match router::render(
            &shared.plugins,
            &hook,
            &due.event,
            &due.id,
            shared.telemetry.as_deref(),
        )
        .await
        {
            Chain {
                outcome: Render::Deliver(r),
                log,
                body_changed,
            } => (r, Some((log, body_changed))),
            Chain { outcome, log, .. } => {
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
                let saved = shared
                    .store
                    .save_render(seq, &outcome, &log, shared.clock.now())
                    .await;
                if let Err(e) = &saved {
                    warn!(error = %e, "cannot record the plugin outcome");
                }
                return Finished {
                    seq,
                    recorded: saved.is_ok(),
                    success: None,
                    started,
                };
            }
        },
    };
    let client = shared.clients.get(&hook.policy.allow_targets);
    let (mut out, span) = {
        let _wire = shared.outbound.acquire().await.expect("never closed");
        let span = shared.telemetry.as_deref().map(|t| {
            t.attempt(
                &due.event,
                &hook.id,
                &due.id,
                due.attempts + 1,
                hook.url.host_str(),
            )
        });
        let traceparent = span.as_ref().map(|s| s.traceparent());
        let sent = http::send(
            &client,
            &hook,
            &due.event.id,
            &rendered,
            shared.clock.now(),
            traceparent,
        );
        (sent.await, span)
    };
    let after = after_attempt(&hook, &due, out.verdict, out.attempt.at);
    if let Some(span) = span {
        span.finish(&out.attempt, after);
    }
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
    out.attempt.node = Some(shared.node.clone());
    let fresh = fresh.map(|(log, changed)| Fresh::new(&rendered, changed, log));
    let recorded = shared
        .store
        .finish_attempt(seq, &hook.id, fresh, out.attempt, after)
        .await;
    let ok = recorded.is_ok();
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
    Finished {
        seq,
        recorded: ok,
        success: Some(out.verdict == Verdict::Success),
        started,
    }
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

//! `GET /v1/webhooks/{id}/stats`: how a webhook has fared lately, per
//! minute, from its attempts. The store hands back the window's attempts
//! (newest first, capped); everything else is computed here, once for both
//! backends: an attempt answered inside the webhook's success range counts
//! as delivered, anything else (another status, no answer) as failed.

use std::ops::RangeInclusive;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use serde::Deserialize;

use crate::api::{self, ErrorBody};
use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::event::{Millis, rfc3339};
use crate::store::AttemptPoint;
use crate::token::Scope;

/// Attempts read for one answer at most; beyond, the oldest go uncounted.
pub const MAX_POINTS: usize = 100_000;
const MINUTE: Millis = 60_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The window in minutes, 1..=1440; default 60.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1440)]
    minutes: Option<String>,
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/stats", tag = "webhooks",
    params(("id" = String, Path, description = "webhook id"), StatsQuery),
    responses((status = 200, body = api::WebhookStats), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stats(
    State(app): State<Arc<App>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<api::WebhookStats>, ApiError> {
    p.require(Scope::WebhooksRead)?;
    let q = super::query(q)?;
    let minutes = match q.minutes.as_deref() {
        None => 60,
        Some(s) => match s.parse::<u32>() {
            Ok(n @ 1..=1440) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "bad_minutes",
                    format!("minutes {s:?} must be a number from 1 to 1440"),
                ));
            }
        },
    };
    let hook = super::webhooks::visible(&app, &p, &id)?;
    let start = window_start(app.clock.now(), minutes);
    let points = app.store.attempt_points(&id, start, MAX_POINTS).await?;
    let health = app.store.health(&id).await?;
    let queue_depth = app.store.queue_depth(&id).await?;
    let capped = points.len() >= MAX_POINTS;
    let a = aggregate(&points, &hook.policy.success, start, minutes);
    Ok(Json(api::WebhookStats {
        webhook: id,
        minutes,
        queue_depth,
        attempts: a.delivered + a.failed,
        delivered: a.delivered,
        failed: a.failed,
        success_rate: a.success_rate(),
        latency_ms: api::Latency {
            p50: a.p50,
            p99: a.p99,
        },
        last_success_at: health.last_success_at.map(rfc3339),
        last_failure_at: health.last_failure_at.map(rfc3339),
        buckets: a
            .buckets
            .into_iter()
            .map(|b| api::StatsBucket {
                at: rfc3339(b.at),
                delivered: b.delivered,
                failed: b.failed,
                p50_ms: b.p50,
            })
            .collect(),
        capped,
    }))
}

/// The start of the first of `minutes` one-minute buckets, the last of
/// which is the minute `now` is in.
pub fn window_start(now: Millis, minutes: u32) -> Millis {
    now.div_euclid(MINUTE) * MINUTE - (minutes as Millis - 1) * MINUTE
}

/// What a window of attempts comes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub delivered: u64,
    pub failed: u64,
    pub p50: Option<u64>,
    pub p99: Option<u64>,
    /// One per minute, oldest first, empty minutes included.
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub at: Millis,
    pub delivered: u64,
    pub failed: u64,
    pub p50: Option<u64>,
}

impl Aggregate {
    pub fn success_rate(&self) -> Option<f64> {
        let all = self.delivered + self.failed;
        (all > 0).then(|| self.delivered as f64 / all as f64)
    }
}

/// Counts `points` into `minutes` buckets from `start`. Attempts before
/// `start` are left out; one stamped after the last minute (another node's
/// clock running ahead) counts in the last.
pub fn aggregate(
    points: &[AttemptPoint],
    success: &RangeInclusive<u16>,
    start: Millis,
    minutes: u32,
) -> Aggregate {
    let n = minutes as usize;
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut buckets: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            at: start + i as Millis * MINUTE,
            delivered: 0,
            failed: 0,
            p50: None,
        })
        .collect();
    for p in points.iter().filter(|p| p.at >= start) {
        let i = (((p.at - start) / MINUTE) as usize).min(n - 1);
        if p.status.is_some_and(|s| success.contains(&s)) {
            buckets[i].delivered += 1;
        } else {
            buckets[i].failed += 1;
        }
        latencies[i].push(p.latency_ms);
    }
    for (b, l) in buckets.iter_mut().zip(latencies.iter_mut()) {
        l.sort_unstable();
        b.p50 = percentile(l, 50);
    }
    let mut all: Vec<u64> = latencies.into_iter().flatten().collect();
    all.sort_unstable();
    Aggregate {
        delivered: buckets.iter().map(|b| b.delivered).sum(),
        failed: buckets.iter().map(|b| b.failed).sum(),
        p50: percentile(&all, 50),
        p99: percentile(&all, 99),
        buckets,
    }
}

/// The nearest-rank percentile of sorted values; `None` for none.
pub fn percentile(sorted: &[u64], pct: u32) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * pct as usize).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: Millis, status: Option<u16>, latency_ms: u64) -> AttemptPoint {
        AttemptPoint {
            at,
            status,
            latency_ms,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 99), Some(7));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50), Some(50));
        assert_eq!(percentile(&hundred, 99), Some(99));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 1000], 99), Some(1000));
    }

    #[test]
    fn the_window_ends_with_the_current_minute() {
        let now = 10 * MINUTE + 59_999;
        assert_eq!(window_start(now, 1), 10 * MINUTE);
        assert_eq!(window_start(now, 60), -49 * MINUTE);
        assert_eq!(window_start(10 * MINUTE, 3), 8 * MINUTE);
    }

    #[test]
    fn attempts_fall_into_minutes_by_outcome_with_empty_minutes_kept() {
        let start = 100 * MINUTE;
        let points = [
            // Newest first, as the store gives them.
            at(start + 2 * MINUTE + 5, Some(200), 30),
            at(start + 2 * MINUTE, Some(503), 10),
            at(start + 2 * MINUTE + 1, None, 5000),
            at(start + 1, Some(299), 20),
            at(start, Some(300), 40),
            at(start - 1, Some(200), 1),
            at(start + 99 * MINUTE, Some(204), 60),
        ];
        let a = aggregate(&points, &(200..=299), start, 3);
        let got: Vec<(Millis, u64, u64, Option<u64>)> = a
            .buckets
            .iter()
            .map(|b| (b.at - start, b.delivered, b.failed, b.p50))
            .collect();
        assert_eq!(
            got,
            [
                (0, 1, 1, Some(20)),
                (MINUTE, 0, 0, None),
                (2 * MINUTE, 2, 2, Some(30)),
            ]
        );
        assert_eq!((a.delivered, a.failed), (3, 3));
        assert_eq!(a.success_rate(), Some(0.5));
        assert_eq!((a.p50, a.p99), (Some(30), Some(5000)));
    }

    #[test]
    fn no_attempts_means_no_rate_and_no_latency() {
        let a = aggregate(&[], &(200..=299), 0, 60);
        assert_eq!(a.buckets.len(), 60);
        assert!(a.buckets.iter().all(|b| b.delivered + b.failed == 0));
        assert_eq!((a.success_rate(), a.p50, a.p99), (None, None, None));
    }
}

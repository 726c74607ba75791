//! *When* to try again: the retry schedule, apart from *whether* (see
//! [`super::classify`]). Pure functions of the failure count so they can be
//! tested without clocks.

use std::time::Duration;

use crate::config::DeliveryPolicy;

/// Longest a subscriber's `Retry-After` may push an attempt back.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What follows the `n`-th failure (n = 0 for the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryIn(Duration),
    GiveUp,
}

/// The default schedule: `n^4 + 15 + jitter * (n + 1)` seconds, with `jitter`
/// drawn from `0..30`. 25 retries span about 20 days.
pub fn default_delay(n: u32, jitter: u64) -> Duration {
    let n = u64::from(n);
    Duration::from_secs(n.pow(4) + 15 + jitter.min(29) * (n + 1))
}

/// Decides the step after the `n`-th failure under `policy`. `retry_after` is
/// the subscriber's own wish (429/503), honoured within
/// `[scheduled delay, 24 h]`.
pub fn after_failure(
    policy: &DeliveryPolicy,
    n: u32,
    retry_after: Option<Duration>,
    jitter: u64,
) -> Next {
    if n >= policy.max_retries {
        return Next::GiveUp;
    }
    let scheduled = match policy.retry_delays.as_slice() {
        [] => default_delay(n, jitter),
        list => list[(n as usize).min(list.len() - 1)],
    };
    let delay = match retry_after {
        Some(wish) => wish.min(MAX_RETRY_AFTER).max(scheduled),
        None => scheduled,
    };
    Next::RetryIn(delay)
}

/// A fresh jitter value for [`default_delay`].
pub fn jitter() -> u64 {
    rand::random_range(0..30)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_retries: u32, delays: &[u64]) -> DeliveryPolicy {
        DeliveryPolicy {
            timeout: Duration::from_secs(20),
            max_retries,
            success: 200..=207,
            retry_delays: delays.iter().map(|s| Duration::from_secs(*s)).collect(),
            max_in_flight: 32,
            allow_targets: vec![],
            disable_after: Duration::from_secs(120 * 3600),
            rate_limit_per_sec: 0,
        }
    }

    #[test]
    fn default_schedule_matches_the_formula() {
        assert_eq!(default_delay(0, 0), Duration::from_secs(15));
        assert_eq!(default_delay(0, 29), Duration::from_secs(44));
        assert_eq!(default_delay(1, 10), Duration::from_secs(1 + 15 + 20));
        assert_eq!(default_delay(3, 5), Duration::from_secs(81 + 15 + 20));
        assert_eq!(default_delay(24, 0), Duration::from_secs(331_776 + 15));
        // Out-of-range jitter is clamped, never larger than the formula allows.
        assert_eq!(default_delay(0, 1000), Duration::from_secs(44));
    }

    #[test]
    fn twenty_five_retries_take_about_twenty_days() {
        let min: Duration = (0..25).map(|n| default_delay(n, 0)).sum();
        let max: Duration = (0..25).map(|n| default_delay(n, 29)).sum();
        let day = 86_400.0;
        assert!((19.0..21.0).contains(&(min.as_secs_f64() / day)), "{min:?}");
        assert!(max.as_secs_f64() / day < 21.5, "{max:?}");
    }

    #[test]
    fn gives_up_after_max_retries() {
        let p = policy(2, &[]);
        assert!(matches!(after_failure(&p, 0, None, 0), Next::RetryIn(_)));
        assert!(matches!(after_failure(&p, 1, None, 0), Next::RetryIn(_)));
        assert_eq!(after_failure(&p, 2, None, 0), Next::GiveUp);
        assert_eq!(after_failure(&policy(0, &[]), 0, None, 0), Next::GiveUp);
    }

    #[test]
    fn explicit_list_repeats_its_last_value() {
        let p = policy(10, &[5, 300, 1800]);
        let d = |n| after_failure(&p, n, None, 17);
        assert_eq!(d(0), Next::RetryIn(Duration::from_secs(5)));
        assert_eq!(d(1), Next::RetryIn(Duration::from_secs(300)));
        assert_eq!(d(2), Next::RetryIn(Duration::from_secs(1800)));
        assert_eq!(d(9), Next::RetryIn(Duration::from_secs(1800)));
        assert_eq!(d(10), Next::GiveUp);
    }

    #[test]
    fn retry_after_is_clamped_between_schedule_and_a_day() {
        let p = policy(5, &[60]);
        let d = |wish| after_failure(&p, 0, Some(Duration::from_secs(wish)), 0);
        assert_eq!(d(1), Next::RetryIn(Duration::from_secs(60)));
        assert_eq!(d(600), Next::RetryIn(Duration::from_secs(600)));
        assert_eq!(d(10 * 86_400), Next::RetryIn(MAX_RETRY_AFTER));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn delays() -> impl Strategy<Value = Vec<u64>> {
            prop::collection::vec(0u64..100_000, 0..6)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn never_retries_past_max_retries(max in 0u32..40, n in 0u32..60, list in delays(), jitter in 0u64..30) {
                let next = after_failure(&policy(max, &list), n, None, jitter);
                prop_assert_eq!(next == Next::GiveUp, n >= max);
            }

            #[test]
            fn the_default_schedule_grows_and_jitter_stays_in_its_band(n in 0u32..40, j1 in 0u64..30, j2 in 0u64..30) {
                // With the same jitter a later retry never comes sooner (across
                // jitters it may: 0 + 15 + 29 > 1 + 15 + 0, as the formula says).
                prop_assert!(default_delay(n, j1) <= default_delay(n + 1, j1));
                let base = u64::from(n).pow(4) + 15;
                let d = default_delay(n, j2).as_secs();
                prop_assert!((base..=base + 29 * (u64::from(n) + 1)).contains(&d));
            }

            #[test]
            fn retry_after_moves_a_retry_later_but_never_past_a_day(
                n in 0u32..24,
                list in delays(),
                jitter in 0u64..30,
                wish in 0u64..10_000_000,
            ) {
                let p = policy(25, &list);
                let Next::RetryIn(plain) = after_failure(&p, n, None, jitter) else {
                    return Err(TestCaseError::fail("gave up early"));
                };
                let Next::RetryIn(with) =
                    after_failure(&p, n, Some(Duration::from_secs(wish)), jitter)
                else {
                    return Err(TestCaseError::fail("gave up early"));
                };
                prop_assert!(with >= plain);
                prop_assert!(with <= plain.max(MAX_RETRY_AFTER));
                prop_assert!(with >= Duration::from_secs(wish).min(MAX_RETRY_AFTER));
            }

            #[test]
            fn an_explicit_list_is_followed_then_its_last_value_repeats(list in prop::collection::vec(0u64..100_000, 1..6), n in 0u32..24) {
                let p = policy(25, &list);
                let want = list[(n as usize).min(list.len() - 1)];
                prop_assert_eq!(after_failure(&p, n, None, 29), Next::RetryIn(Duration::from_secs(want)));
            }

            #[test]
            fn any_jitter_keeps_25_retries_near_twenty_days(jitters in prop::collection::vec(0u64..30, 25)) {
                let total: Duration = jitters.iter().enumerate().map(|(n, j)| default_delay(n as u32, *j)).sum();
                let days = total.as_secs_f64() / 86_400.0;
                prop_assert!((19.0..21.5).contains(&days), "{days} days");
            }
        }
    }
}

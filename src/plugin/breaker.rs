//! Benching plugins that keep exhausting their limits.
//!
//! A call that runs into its deadline or memory limit costs the whole budget
//! (50 ms of a core by default) and produces nothing. A plugin that does so
//! on every event would take a core from every other webhook, so after
//! [`STRIKES`] such failures in a row for one webhook it is benched: calls
//! fail at once, without running, for [`BENCH`]. Then one call goes through
//! as a probe; a success clears the record, another exhaustion benches it
//! again. A new version of the plugin starts with a clean record. Cheap
//! failures (a trap, an `err`, bad output) do not count: they cost little,
//! and often depend on the event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Exhaustions in a row that bench a plugin.
pub const STRIKES: u32 = 5;
/// How long a benched plugin is skipped.
pub const BENCH: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Record {
    /// Which loaded version the record is about.
    version: usize,
    strikes: u32,
    benched_until: Option<Instant>,
}

/// Records per (webhook, plugin).
#[derive(Default)]
pub struct Breaker {
    records: Mutex<HashMap<(String, String), Record>>,
}

impl Breaker {
    /// `Some(time left)` if the plugin is benched for this webhook now.
    pub fn benched(
        &self,
        webhook: &str,
        plugin: &str,
        version: usize,
        now: Instant,
    ) -> Option<Duration> {
        let records = self.records.lock().expect("breaker");
        if records.is_empty() {
            return None;
        }
        let r = records.get(&(webhook.to_owned(), plugin.to_owned()))?;
        if r.version != version {
            return None;
        }
        r.benched_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Records a call's outcome: `exhausted` for a timeout or memory limit.
    pub fn record(
        &self,
        webhook: &str,
        plugin: &str,
        version: usize,
        exhausted: bool,
        now: Instant,
    ) {
        let mut records = self.records.lock().expect("breaker");
        if !exhausted {
            // A success forgets the record, so in the common case the map is
            // empty and nothing is allocated.
            if !records.is_empty() {
                records.remove(&(webhook.to_owned(), plugin.to_owned()));
            }
            return;
        }
        let key = (webhook.to_owned(), plugin.to_owned());
        let r = records.entry(key).or_default();
        if r.version != version {
            *r = Record {
                version,
                ..Record::default()
            };
        }
        r.strikes += 1;
        if r.strikes >= STRIKES {
            r.benched_until = Some(now + BENCH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benched_after_strikes_in_a_row_then_probed() {
        let b = Breaker::default();
        let t = Instant::now();
        for _ in 0..STRIKES - 1 {
            b.record("w", "p", 1, true, t);
        }
        assert_eq!(b.benched("w", "p", 1, t), None, "not yet");
        b.record("w", "p", 1, true, t);
        assert_eq!(b.benched("w", "p", 1, t), Some(BENCH));
        // Only for this webhook, and only this version.
        assert_eq!(b.benched("other", "p", 1, t), None);
        assert_eq!(b.benched("w", "p", 2, t), None);
        // After the bench a probe runs; failing again benches at once.
        let later = t + BENCH;
        assert_eq!(b.benched("w", "p", 1, later), None);
        b.record("w", "p", 1, true, later);
        assert_eq!(b.benched("w", "p", 1, later), Some(BENCH));
        // A success clears everything.
        let much_later = later + BENCH;
        b.record("w", "p", 1, false, much_later);
        b.record("w", "p", 1, true, much_later);
        assert_eq!(b.benched("w", "p", 1, much_later), None);
    }

    #[test]
    fn a_success_in_between_resets_the_count() {
        let b = Breaker::default();
        let t = Instant::now();
        for i in 0..3 * STRIKES {
            b.record("w", "p", 1, i % STRIKES != 0, t);
        }
        assert_eq!(b.benched("w", "p", 1, t), None);
    }

    #[test]
    fn a_new_version_starts_clean() {
        let b = Breaker::default();
        let t = Instant::now();
        for _ in 0..STRIKES {
            b.record("w", "p", 1, true, t);
        }
        b.record("w", "p", 2, true, t);
        assert_eq!(b.benched("w", "p", 2, t), None);
    }
}

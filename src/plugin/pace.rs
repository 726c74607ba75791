//! Where a call runs: on the calling thread, or on a blocking thread.
//!
//! Most filters answer in tens of microseconds, less than the hand-off to a
//! blocking thread and back costs (a wake-up on each side; about a fifth of
//! weir's CPU per delivery when every call made it). So a plugin version
//! whose calls have been cheap runs where it is called, under a short
//! deadline ([`INLINE_BUDGET`]) instead of its full one. A call that runs
//! out of that budget, or of its memory, is not a failure: the version is
//! moved to blocking threads for good and the call is made again there,
//! from a fresh instance as every call is, with its full deadline. So a
//! spinning plugin holds the caller's thread for one budget, once.
//!
//! One more thing sends a version to blocking threads: a WASI call that
//! blocks (writing to stdout or stderr, say) runs a future to completion,
//! which panics on an async worker thread. [`run_inline`] catches that
//! panic, quietly, and the call is made again on a blocking thread.
//!
//! Running a call twice is safe because a call has no effect outside its
//! own fresh instance: no network, no files, and its log lines and output
//! are those of the call that finished.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The longest a call may hold the calling thread. Deadlines are counted in
/// epoch ticks, so a call is interrupted between this and one tick later.
pub const INLINE_BUDGET: Duration = Duration::from_millis(2);

/// Versions whose calls average more than this run on blocking threads:
/// a JavaScript or Python guest (near a millisecond a call) would otherwise
/// hold an async worker for as long on every call.
const INLINE_MEAN: Duration = Duration::from_micros(200);

/// One plugin version's record of its calls.
#[derive(Default)]
pub struct Pace {
    /// Moving average of call times in nanoseconds; 0 before the first.
    mean_ns: AtomicU64,
    /// Set once a call overran the inline budget or its memory.
    blocking: AtomicBool,
}

impl Pace {
    /// Whether the next call may run on the calling thread.
    pub fn inline(&self) -> bool {
        !self.blocking.load(Ordering::Relaxed)
            && self.mean_ns.load(Ordering::Relaxed) <= INLINE_MEAN.as_nanos() as u64
    }

    /// From now on this version runs on blocking threads.
    pub fn to_blocking(&self) {
        self.blocking.store(true, Ordering::Relaxed);
    }

    /// Adds a call's time to the average (weight 1/8; the first call sets it).
    pub fn record(&self, took: Duration) {
        let took = took.as_nanos().min(u64::MAX as u128) as u64;
        let mean = self.mean_ns.load(Ordering::Relaxed);
        let next = if mean == 0 {
            took.max(1)
        } else {
            mean - mean / 8 + took / 8
        };
        // Concurrent calls may lose an update; an average needs no more.
        self.mean_ns.store(next, Ordering::Relaxed);
    }
}

thread_local! {
    /// Set while this thread runs a call inline.
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `call` on this thread; `None` if it panicked (the panic is not
/// printed: the caller makes the call again elsewhere, where a panic of its
/// own is reported as usual).
pub fn run_inline<R>(call: impl FnOnce() -> R) -> Option<R> {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !INLINE.get() {
                report(info);
            }
        }));
    });
    INLINE.set(true);
    let out = catch_unwind(AssertUnwindSafe(call));
    INLINE.set(false);
    out.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheap_calls_stay_inline_and_slow_or_overrunning_ones_leave() {
        let pace = Pace::default();
        assert!(pace.inline(), "a new version starts inline");
        for _ in 0..100 {
            pace.record(Duration::from_micros(20));
        }
        assert!(pace.inline());
        // A version that turns slow (a JS guest, say) leaves within a few calls.
        let slow = Pace::default();
        slow.record(Duration::from_micros(700));
        assert!(!slow.inline());
        // One overrun is enough, whatever the average says.
        pace.to_blocking();
        pace.record(Duration::from_micros(1));
        assert!(!pace.inline());
    }
}

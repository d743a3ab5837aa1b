//! The machine's own floor under the latencies a run measures.
//!
//! A thread that asks to wake every millisecond during the measured window
//! and records how late it woke. A message's end-to-end path is several such
//! wake-ups (the producer's threads, the broker's, the consumer's), so when
//! the cores are shared this delay bounds from below what any broker can
//! show on this machine: a broker cannot answer a client thread that has not
//! been scheduled yet.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use crate::payload::Clock;
use crate::stats::Latency;

/// How often the probe asks to wake: often enough to see a stall of a few
/// milliseconds, rarely enough to cost nothing measurable (1,000 wakes/s).
pub const PERIOD: Duration = Duration::from_millis(1);

/// Sleeps from one period mark to the next from `start_ns` to `end_ns` (on
/// `clock`), and returns how late (µs) each wake-up was. Returns early once
/// `stop` is set. The marks are absolute, so one late wake does not shift
/// the ones after it.
pub fn probe(clock: &Clock, start_ns: u64, end_ns: u64, stop: &AtomicBool) -> Latency {
    let mut late = Latency::new();
    let period = PERIOD.as_nanos() as u64;
    let mut mark = start_ns;
    clock.sleep_until(mark);
    while mark < end_ns && !stop.load(Relaxed) {
        mark += period;
        clock.sleep_until(mark);
        let now = clock.now_ns();
        late.record(now.saturating_sub(mark) / 1_000);
        // After a stall longer than a period, resume from now rather than
        // recording the missed marks as one long, then shrinking, delay each.
        if now > mark + period {
            mark = now - (now - mark) % period;
        }
    }
    late
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_one_wake_per_period_of_the_window() {
        let clock = Clock::new();
        let start = clock.now_ns();
        let end = start + 50 * PERIOD.as_nanos() as u64;
        let late = probe(&clock, start, end, &AtomicBool::new(false));
        let p = late.percentiles();
        // A stalled wake-up skips marks, so a loaded machine records fewer.
        assert!(p.count >= 1 && p.count <= 50, "{p:?}");
        assert!(clock.now_ns() >= end);
    }

    #[test]
    fn stops_when_asked() {
        let clock = Clock::new();
        let start = clock.now_ns();
        let late = probe(&clock, start, u64::MAX, &AtomicBool::new(true));
        assert_eq!(late.percentiles().count, 0);
    }
}

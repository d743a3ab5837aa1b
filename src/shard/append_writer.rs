//! Where this shard writes produced batches now (`append_writer`).
//!
//! `inline` writes on the shard thread, the cheapest in CPU, but a write
//! the kernel throttles (dirty pages past its limits, slow write-back)
//! holds every socket on the core: with `--shard-stall-warn-ms 20`, five
//! minutes of 50k msg/s held a shard 18 times, up to 318 ms, every time in
//! the inline `pwritev`, in bursts some 30 s apart. `thread` writes on the
//! blocking thread and never holds the shard, at about a third more CPU.
//! `adaptive` writes inline until one write is slow, then off the reactor
//! until none has been slow for a while: a burst costs one held write
//! instead of all of them, and calm stretches cost what inline costs. It
//! is not the default: in one pair of runs it held the shard twice where
//! inline did 10 times, but its produce p99 was twice inline's (the thread
//! hop during a hold); see `tuning/README.md`.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::config::AppendWriter;

/// A write that took this long was throttled: a page-cache append of a
/// request's batches takes well under a millisecond when the kernel does
/// not hold it (p99.9 about 1.4 ms over ten minutes on a 2-vCPU VM).
pub const SLOW_WRITE: Duration = Duration::from_millis(10);

/// How long writes stay off the reactor after the last slow one: a burst
/// of throttled writes lasted up to 2 s in those runs.
pub const OFF_REACTOR_HOLD: Duration = Duration::from_secs(10);

pub struct AppendWriterState {
    mode: AppendWriter,
    /// Adaptive: writes go off the reactor until then.
    off_reactor_until: Cell<Option<Instant>>,
}

impl AppendWriterState {
    pub fn new(mode: AppendWriter) -> AppendWriterState {
        AppendWriterState {
            mode,
            off_reactor_until: Cell::new(None),
        }
    }

    /// Whether a produce arriving now writes on the shard thread; only the
    /// adaptive writer reads the clock for it.
    pub fn inline(&self) -> bool {
        match self.mode {
            AppendWriter::Inline => true,
            AppendWriter::Thread | AppendWriter::Uring => false,
            AppendWriter::Adaptive => self.inline_at(Instant::now()),
        }
    }

    /// Whether writes off the shard thread go through io_uring rather than
    /// the blocking thread.
    pub fn ring(&self) -> bool {
        self.mode == AppendWriter::Uring
    }

    /// Whether a produce arriving `now` writes on the shard thread.
    fn inline_at(&self, now: Instant) -> bool {
        match self.mode {
            AppendWriter::Inline => true,
            AppendWriter::Thread | AppendWriter::Uring => false,
            AppendWriter::Adaptive => self
                .off_reactor_until
                .get()
                .is_none_or(|until| now >= until),
        }
    }

    /// A write (inline, or a request's job off the reactor) ended `now`
    /// after `took`; a slow one keeps or sends the adaptive writer off the
    /// reactor.
    pub fn note_write(&self, took: Duration, now: Instant) {
        if self.mode != AppendWriter::Adaptive || took < SLOW_WRITE {
            return;
        }
        if self.inline_at(now) {
            crate::stats::APPEND_WRITES_MOVED_OFF_REACTOR.add(1);
            tracing::debug!(
                took_ms = took.as_millis() as u64,
                "a slow append write: writing off the shard thread for a while"
            );
        }
        self.off_reactor_until.set(Some(now + OFF_REACTOR_HOLD));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_goes_off_the_reactor_after_a_slow_write_until_the_hold_passes() {
        let writer = AppendWriterState::new(AppendWriter::Adaptive);
        let start = Instant::now();
        assert!(writer.inline_at(start));
        writer.note_write(SLOW_WRITE - Duration::from_micros(1), start);
        assert!(writer.inline_at(start), "a fast write changes nothing");
        writer.note_write(SLOW_WRITE, start);
        assert!(!writer.inline_at(start));
        // A slow write off the reactor extends the hold.
        let later = start + OFF_REACTOR_HOLD / 2;
        writer.note_write(SLOW_WRITE * 3, later);
        assert!(!writer.inline_at(start + OFF_REACTOR_HOLD));
        assert!(writer.inline_at(later + OFF_REACTOR_HOLD));
    }

    #[test]
    fn fixed_writers_never_move() {
        let now = Instant::now();
        for (mode, inline) in [
            (AppendWriter::Inline, true),
            (AppendWriter::Thread, false),
            (AppendWriter::Uring, false),
        ] {
            let writer = AppendWriterState::new(mode);
            writer.note_write(Duration::from_secs(1), now);
            assert_eq!(writer.inline_at(now), inline, "{mode:?}");
        }
    }
}

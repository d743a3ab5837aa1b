//! Failed writes to the log dir (a full disk, an I/O error): counted at
//! `/metrics` and logged at most once per [`LINE_INTERVAL_MS`] for the
//! whole process, with how many failed since the last line, so producers
//! at line rate against a full disk do not turn into a line per request.
//! The first write that succeeds after a run of failures says so once.
//!
//! One process-wide [`FailureLog`] of relaxed atomics, like `stats`: every
//! shard writes to the same log dir, and no lock joins the produce path.

use std::fmt::Display;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::TopicPartition;
use crate::storage::StorageError;

/// At most one "log dir is full" line per this many ms.
pub const LINE_INTERVAL_MS: i64 = 10_000;
/// `last_line_ms` before the first line of a run of failures.
const NO_LINE: i64 = i64::MIN;

static LOG_DIR: FailureLog = FailureLog::new();

/// When to log failures: pure bookkeeping, the caller logs.
pub struct FailureLog {
    /// Clock of the last line of the current run of failures.
    last_line_ms: AtomicI64,
    /// Failures since that line.
    unlogged: AtomicU64,
    /// Failures since the last success.
    in_run: AtomicU64,
}

impl FailureLog {
    pub const fn new() -> FailureLog {
        FailureLog {
            last_line_ms: AtomicI64::new(NO_LINE),
            unlogged: AtomicU64::new(0),
            in_run: AtomicU64::new(0),
        }
    }

    /// A write failed at `now_ms`. `Some(n)` when a line is due, `n` being
    /// the failures since the last line that it reports too.
    pub fn failed(&self, now_ms: i64) -> Option<u64> {
        self.in_run.fetch_add(1, Ordering::Relaxed);
        let last = self.last_line_ms.load(Ordering::Relaxed);
        let due = last == NO_LINE || now_ms.saturating_sub(last) >= LINE_INTERVAL_MS;
        // Of shards failing at once, one wins the line.
        if due
            && self
                .last_line_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.unlogged.swap(0, Ordering::Relaxed));
        }
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// A write succeeded. `Some(n)` once after a run of `n` failures.
    /// One relaxed load when nothing failed.
    pub fn succeeded(&self) -> Option<u64> {
        if self.in_run.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let run = self.in_run.swap(0, Ordering::Relaxed);
        self.last_line_ms.store(NO_LINE, Ordering::Relaxed);
        self.unlogged.store(0, Ordering::Relaxed);
        (run > 0).then_some(run)
    }
}

/// A write for `what` to `tp`'s log failed with `error`.
pub fn failed_io(what: &'static str, tp: &TopicPartition, error: &std::io::Error) {
    failed(what, tp, error, crate::storage::is_out_of_space(error));
}

/// [`failed_io`] for a storage error, which only I/O errors are (a refused
/// batch is the client's doing); false for the others.
pub fn failed_storage(what: &'static str, tp: &TopicPartition, error: &StorageError) -> bool {
    if !matches!(error, StorageError::Io(_)) {
        return false;
    }
    failed(what, tp, error, error.is_out_of_space());
    true
}

/// Counts the failure; logs it if a line is due.
fn failed(what: &'static str, tp: &TopicPartition, error: &dyn Display, out_of_space: bool) {
    crate::stats::STORAGE_WRITE_ERRORS.add(1);
    let Some(unlogged) = LOG_DIR.failed(crate::runtime::now_ms()) else {
        return;
    };
    if out_of_space {
        tracing::warn!(
            what,
            topic = %tp.topic,
            partition = tp.partition,
            %error,
            failed_since_last_line = unlogged,
            "log dir is full: writes get KAFKA_STORAGE_ERROR until space returns; reads go on"
        );
    } else {
        tracing::error!(
            what,
            topic = %tp.topic,
            partition = tp.partition,
            %error,
            failed_since_last_line = unlogged,
            "log dir write failed: writes get KAFKA_STORAGE_ERROR; reads go on"
        );
    }
}

/// A write to the log dir succeeded: ends a run of failures, logged once.
pub fn succeeded() {
    if let Some(failures) = LOG_DIR.succeeded() {
        tracing::info!(failures, "log dir writable again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_one_when_writes_resume() {
        let log = FailureLog::new();
        assert_eq!(log.succeeded(), None, "nothing failed");
        assert_eq!(log.failed(1_000), Some(0), "the first failure is logged");
        for now in 1_001..1_101 {
            assert_eq!(log.failed(now), None);
        }
        let next = 1_000 + LINE_INTERVAL_MS;
        assert_eq!(log.failed(next), Some(100), "with the failures between");
        assert_eq!(log.failed(next + 1), None);
        assert_eq!(log.succeeded(), Some(103));
        assert_eq!(log.succeeded(), None, "once");
        assert_eq!(log.failed(next + 2), Some(0), "a new run logs at once");
    }
}

//! Process-wide counters, exported at `/metrics`. Plain atomics: one
//! relaxed add per response, no lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Counter {
    name: &'static str,
    help: &'static str,
    value: AtomicU64,
}

impl Counter {
    const fn new(name: &'static str, help: &'static str) -> Counter {
        Counter {
            name,
            help,
            value: AtomicU64::new(0),
        }
    }

    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

pub static FETCH_SENDFILE_BYTES: Counter = Counter::new(
    "sluice_fetch_sendfile_bytes_total",
    "Record bytes sent to consumers with sendfile, from the page cache.",
);
pub static FETCH_COPIED_BYTES: Counter = Counter::new(
    "sluice_fetch_copied_bytes_total",
    "Record bytes sent to consumers through a user-space buffer (fetch.zero_copy = false).",
);
pub static PRODUCED_BYTES: Counter = Counter::new(
    "sluice_produce_bytes_total",
    "Record batch bytes appended to logs.",
);
pub static REQUESTS: Counter = Counter::new("sluice_requests_total", "Requests answered.");
pub static LOG_FLUSHES: Counter = Counter::new(
    "sluice_log_flushes_total",
    "fdatasyncs of a partition's log for the flush policy (flush.messages, flush.ms, fsync-on-ack).",
);
pub static STORAGE_WRITE_ERRORS: Counter = Counter::new(
    "sluice_storage_write_errors_total",
    "Writes to the log dir that failed (a full disk or an I/O error); a produce among them got KAFKA_STORAGE_ERROR.",
);
pub static ROLL_SYNCS: Counter = Counter::new(
    "sluice_roll_syncs_total",
    "Background fdatasyncs of rolled segments that moved the recovery point.",
);

pub static PRODUCE_DUPLICATES: Counter = Counter::new(
    "sluice_produce_duplicate_batches_total",
    "Idempotent producers' retries of batches already in the log, answered with the original offsets.",
);
pub static PRODUCERS_EXPIRED: Counter = Counter::new(
    "sluice_producers_expired_total",
    "Idempotent producer states a partition forgot after producer_id_expiration_ms idle.",
);

pub static TXN_COMMITTED: Counter = Counter::new(
    "sluice_transactions_committed_total",
    "Transactions a coordinator completed as committed (every marker written).",
);
pub static TXN_ABORTED: Counter = Counter::new(
    "sluice_transactions_aborted_total",
    "Transactions a coordinator completed as aborted, timed-out ones included.",
);
pub static TXN_TIMED_OUT: Counter = Counter::new(
    "sluice_transactions_timed_out_total",
    "Transactions a coordinator aborted because they were open past their timeout.",
);

pub static REPLICA_BYTES_FETCHED: Counter = Counter::new(
    "sluice_replica_fetched_bytes_total",
    "Record bytes followers appended from their leaders.",
);
pub static REPLICA_TRUNCATED_OFFSETS: Counter = Counter::new(
    "sluice_replica_truncated_offsets_total",
    "Offsets followers cut from their logs where they diverged from the leader's.",
);
pub static ISR_SHRINKS: Counter = Counter::new(
    "sluice_isr_shrinks_total",
    "ISR changes a leader proposed to drop lagging followers.",
);
pub static ISR_EXPANDS: Counter = Counter::new(
    "sluice_isr_expands_total",
    "ISR changes a leader proposed to add caught-up followers.",
);

pub static FETCH_DOWN_CONVERSIONS: Counter = Counter::new(
    "sluice_fetch_down_conversions_total",
    "Fetch v0-3 responses down-converted to the magic 0/1 message formats.",
);
pub static FETCH_DOWN_CONVERTED_BYTES: Counter = Counter::new(
    "sluice_fetch_down_converted_bytes_total",
    "Bytes of v2 batches read into memory and down-converted for Fetch v0-3.",
);
pub static PRODUCE_UP_CONVERSIONS: Counter = Counter::new(
    "sluice_produce_up_conversions_total",
    "Produce v0-2 message sets converted to v2 batches.",
);

const ALL: &[&Counter] = &[
    &FETCH_SENDFILE_BYTES,
    &FETCH_COPIED_BYTES,
    &PRODUCED_BYTES,
    &REQUESTS,
    &LOG_FLUSHES,
    &ROLL_SYNCS,
    &STORAGE_WRITE_ERRORS,
    &PRODUCE_DUPLICATES,
    &PRODUCERS_EXPIRED,
    &TXN_COMMITTED,
    &TXN_ABORTED,
    &TXN_TIMED_OUT,
    &REPLICA_BYTES_FETCHED,
    &REPLICA_TRUNCATED_OFFSETS,
    &ISR_SHRINKS,
    &ISR_EXPANDS,
    &FETCH_DOWN_CONVERSIONS,
    &FETCH_DOWN_CONVERTED_BYTES,
    &PRODUCE_UP_CONVERSIONS,
];

/// The Prometheus text exposition of every counter.
pub fn render() -> String {
    let mut out = String::new();
    for c in ALL {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} counter\n{} {}",
            c.name,
            c.help,
            c.name,
            c.name,
            c.get()
        );
    }
    out
}

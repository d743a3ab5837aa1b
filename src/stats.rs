//! What `/metrics` exports. Counters and latency histograms here are
//! process-wide plain atomics: a relaxed add or two per event, no lock.
//! The submodules hold what is labeled (per topic, API, listener) and what
//! is state rather than a count (logs, groups, the process), read or
//! published off the data path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod errors;
mod groups;
mod listeners;
mod logs;
mod process;
mod published;
mod requests;
mod topics;

pub use errors::{count_error, CountedApi};
pub use groups::{publish_groups, GroupGauge};
pub use listeners::{listener_stats, ListenerStats};
pub use logs::{publish_logs, LogGauge};
pub use process::shard_thread_started;
pub use requests::count_request;
pub use topics::{topic_traffic, TopicTraffic};

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
pub static FETCH_FOLLOWER_READS: Counter = Counter::new(
    "sluice_fetch_follower_reads_total",
    "Partitions read for consumers while this broker follows them (KIP-392).",
);
pub static FETCH_READ_REPLICA_REDIRECTS: Counter = Counter::new(
    "sluice_fetch_read_replica_redirects_total",
    "Partitions a leader pointed a consumer at a replica in its rack for (KIP-392).",
);
pub static FETCH_PARTITIONS_KEPT: Counter = Counter::new(
    "sluice_fetch_partitions_kept_total",
    "Partitions a long-poll fetch did not read again after its wait: unchanged since its last read.",
);
pub static PRODUCED_BYTES: Counter = Counter::new(
    "sluice_produce_bytes_total",
    "Record batch bytes appended to logs by produce requests (a retried duplicate is not counted again).",
);
pub static CLIENT_TELEMETRY_PUSHES: Counter = Counter::new(
    "sluice_client_telemetry_pushes_total",
    "Client metrics pushes (KIP-714) accepted.",
);
pub static CLIENT_TELEMETRY_REFUSED: Counter = Counter::new(
    "sluice_client_telemetry_refused_total",
    "Client metrics pushes refused (too early, an old subscription, too large, unreadable).",
);
pub static CLIENT_TELEMETRY_SERIES_DROPPED: Counter = Counter::new(
    "sluice_client_telemetry_series_dropped_total",
    "Pushed client metric series not kept: client_telemetry_series_max was reached.",
);

// Client quotas (issue 15): requests whose charge went over their quota,
// and the throttle time they were given, per quota type.
pub static QUOTA_PRODUCE_THROTTLED: Counter = Counter::new(
    "sluice_quota_produce_throttled_requests_total",
    "Produce requests that went over their producer_byte_rate quota and were throttled.",
);
pub static QUOTA_PRODUCE_THROTTLE_MS: Counter = Counter::new(
    "sluice_quota_produce_throttle_ms_total",
    "Milliseconds of throttle given for producer_byte_rate quotas.",
);
pub static QUOTA_FETCH_THROTTLED: Counter = Counter::new(
    "sluice_quota_fetch_throttled_requests_total",
    "Fetch requests that went over their consumer_byte_rate quota and were throttled.",
);
pub static QUOTA_FETCH_THROTTLE_MS: Counter = Counter::new(
    "sluice_quota_fetch_throttle_ms_total",
    "Milliseconds of throttle given for consumer_byte_rate quotas.",
);
pub static QUOTA_REQUEST_THROTTLED: Counter = Counter::new(
    "sluice_quota_request_throttled_requests_total",
    "Requests that went over their request_percentage quota and were throttled.",
);
pub static QUOTA_REQUEST_THROTTLE_MS: Counter = Counter::new(
    "sluice_quota_request_throttle_ms_total",
    "Milliseconds of throttle given for request_percentage quotas.",
);
pub static QUOTA_MUTATION_THROTTLED: Counter = Counter::new(
    "sluice_quota_controller_mutation_throttled_requests_total",
    "CreateTopics, CreatePartitions and DeleteTopics requests over their controller_mutation_rate quota (throttled, or refused with THROTTLING_QUOTA_EXCEEDED).",
);
pub static QUOTA_MUTATION_THROTTLE_MS: Counter = Counter::new(
    "sluice_quota_controller_mutation_throttle_ms_total",
    "Milliseconds of throttle given for controller_mutation_rate quotas.",
);
pub static QUOTA_CONNECTIONS_REFUSED: Counter = Counter::new(
    "sluice_quota_connections_refused_total",
    "Connections closed at accept because their IP went over its connection_creation_rate quota.",
);
pub static QUOTA_SENSOR_OVERFLOW: Counter = Counter::new(
    "sluice_quota_sensor_overflow_total",
    "Requests counted in the shared overflow quota sensor because no sensor slot was free for their entity.",
);
// The OAUTHBEARER JWKS endpoint (security/jwks_endpoint.rs): a provider
// that stopped answering shows here before its rotated keys refuse logins.
pub static JWKS_FETCHES: Counter = Counter::new(
    "sluice_oauthbearer_jwks_fetches_total",
    "Fetches of the identity provider's JWKS endpoint that brought keys.",
);
pub static JWKS_FETCH_FAILURES: Counter = Counter::new(
    "sluice_oauthbearer_jwks_fetch_failures_total",
    "Fetches of the identity provider's JWKS endpoint that failed (the keys in use stayed).",
);
pub static LOG_FLUSHES: Counter = Counter::new(
    "sluice_log_flushes_total",
    "fdatasyncs of a partition's log for the flush policy (flush.messages, flush.ms, fsync-on-ack).",
);
pub static STORAGE_WRITE_ERRORS: Counter = Counter::new(
    "sluice_storage_write_errors_total",
    "Writes to the log dir that failed (a full disk or an I/O error); a produce among them got KAFKA_STORAGE_ERROR.",
);
pub static APPEND_WRITES_MOVED_OFF_REACTOR: Counter = Counter::new(
    "sluice_append_writes_moved_off_reactor_total",
    "Times the adaptive append writer met a slow write on a shard thread and wrote off it for a while.",
);
pub static ROLL_SYNCS: Counter = Counter::new(
    "sluice_roll_syncs_total",
    "Background fdatasyncs of rolled segments that moved the recovery point.",
);

pub static PREFAULT_BYTES: Counter = Counter::new(
    "sluice_prefault_bytes_total",
    "Bytes of page cache filled ahead of appends off the shard thread (`log_prefault_bytes`).",
);

pub static PREFAULTS_DROPPED: Counter = Counter::new(
    "sluice_prefaults_dropped_total",
    "Page-cache fills not queued because the shard's prefault thread was behind.",
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
pub static TXN_VERIFICATIONS: Counter = Counter::new(
    "sluice_transaction_verifications_total",
    "Transactional batches that would open a transaction in their partition, checked (or, under transaction version 2, added) with the coordinator first (KIP-890).",
);
pub static TXN_UNVERIFIED_REFUSED: Counter = Counter::new(
    "sluice_transaction_unverified_batches_refused_total",
    "Transactional batches refused because the coordinator did not confirm their partition is in the producer's open transaction, or a marker ended it meanwhile (KIP-890): what would otherwise open a hanging transaction.",
);
pub static TXN_TIMED_OUT: Counter = Counter::new(
    "sluice_transactions_timed_out_total",
    "Transactions a coordinator aborted because they were open past their timeout.",
);

pub static SHARE_RECORDS_ACQUIRED: Counter = Counter::new(
    "sluice_share_records_acquired_total",
    "Records share group members acquired (KIP-932), each delivery counted.",
);
pub static SHARE_RECORDS_ACCEPTED: Counter = Counter::new(
    "sluice_share_records_accepted_total",
    "Records share group members acknowledged as processed.",
);
pub static SHARE_RECORDS_RELEASED: Counter = Counter::new(
    "sluice_share_records_released_total",
    "Records share group members released for another delivery.",
);
pub static SHARE_RECORDS_REJECTED: Counter = Counter::new(
    "sluice_share_records_rejected_total",
    "Records share group members rejected (archived, never delivered again).",
);
pub static SHARE_LOCKS_EXPIRED: Counter = Counter::new(
    "sluice_share_acquisition_locks_expired_total",
    "Acquired records whose member did not acknowledge them within the lock duration: delivered again, or archived at the delivery limit.",
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
pub static LOG_FILES_OPENED: Counter = Counter::new(
    "sluice_log_files_opened_total",
    "Segment files opened (or created) through the shards' file-handle caches.",
);
pub static LOG_FILES_EVICTED: Counter = Counter::new(
    "sluice_log_files_evicted_total",
    "Segment files closed to make room in a full file-handle cache.",
);
pub static LOG_FILES_IDLE_CLOSED: Counter = Counter::new(
    "sluice_log_files_idle_closed_total",
    "Segment files closed after `log_open_files_idle_ms` without use.",
);

// Replication throttles (`replication::throttle`).
pub static REPLICATION_LEADER_THROTTLED: Counter = Counter::new(
    "sluice_replication_leader_throttled_total",
    "Follower reads of throttled partitions this broker leads answered without records: over leader.replication.throttled.rate.",
);
pub static REPLICATION_FOLLOWER_THROTTLED: Counter = Counter::new(
    "sluice_replication_follower_throttled_total",
    "Throttled partitions this broker follows left out of a fetch: over follower.replication.throttled.rate.",
);

const ALL: &[&Counter] = &[
    &CLIENT_TELEMETRY_PUSHES,
    &CLIENT_TELEMETRY_REFUSED,
    &CLIENT_TELEMETRY_SERIES_DROPPED,
    &REPLICATION_LEADER_THROTTLED,
    &REPLICATION_FOLLOWER_THROTTLED,
    &FETCH_SENDFILE_BYTES,
    &FETCH_COPIED_BYTES,
    &FETCH_PARTITIONS_KEPT,
    &FETCH_FOLLOWER_READS,
    &FETCH_READ_REPLICA_REDIRECTS,
    &PRODUCED_BYTES,
    &QUOTA_PRODUCE_THROTTLED,
    &QUOTA_PRODUCE_THROTTLE_MS,
    &QUOTA_FETCH_THROTTLED,
    &QUOTA_FETCH_THROTTLE_MS,
    &QUOTA_REQUEST_THROTTLED,
    &QUOTA_REQUEST_THROTTLE_MS,
    &QUOTA_MUTATION_THROTTLED,
    &QUOTA_MUTATION_THROTTLE_MS,
    &QUOTA_CONNECTIONS_REFUSED,
    &QUOTA_SENSOR_OVERFLOW,
    &JWKS_FETCHES,
    &JWKS_FETCH_FAILURES,
    &LOG_FLUSHES,
    &ROLL_SYNCS,
    &PREFAULT_BYTES,
    &PREFAULTS_DROPPED,
    &APPEND_WRITES_MOVED_OFF_REACTOR,
    &STORAGE_WRITE_ERRORS,
    &PRODUCE_DUPLICATES,
    &PRODUCERS_EXPIRED,
    &TXN_COMMITTED,
    &TXN_ABORTED,
    &TXN_VERIFICATIONS,
    &TXN_UNVERIFIED_REFUSED,
    &TXN_TIMED_OUT,
    &SHARE_RECORDS_ACQUIRED,
    &SHARE_RECORDS_ACCEPTED,
    &SHARE_RECORDS_RELEASED,
    &SHARE_RECORDS_REJECTED,
    &SHARE_LOCKS_EXPIRED,
    &REPLICA_BYTES_FETCHED,
    &REPLICA_TRUNCATED_OFFSETS,
    &ISR_SHRINKS,
    &ISR_EXPANDS,
    &FETCH_DOWN_CONVERSIONS,
    &FETCH_DOWN_CONVERTED_BYTES,
    &PRODUCE_UP_CONVERSIONS,
    &LOG_FILES_OPENED,
    &LOG_FILES_EVICTED,
    &LOG_FILES_IDLE_CLOSED,
];

/// A value that goes up and down (Prometheus' gauge).
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    value: std::sync::atomic::AtomicI64,
}

impl Gauge {
    const fn new(name: &'static str, help: &'static str) -> Gauge {
        Gauge {
            name,
            help,
            value: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Counts one in until the returned guard drops.
    pub fn enter(&'static self) -> GaugeGuard {
        self.value.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(self)
    }

    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Moves the gauge by `n` (negative: down), for a count kept by its
    /// owner rather than held by guards.
    pub fn add(&self, n: i64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }
}

/// One unit of a [`Gauge`], given back on drop (also when a future holding
/// it is cancelled).
pub struct GaugeGuard(&'static Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.value.fetch_sub(1, Ordering::Relaxed);
    }
}

pub static FETCHES_PARKED: Gauge = Gauge::new(
    "sluice_fetch_parked",
    "Long-poll fetches waiting on a partition owner for an append right now.",
);

pub static LOG_FILES_OPEN: Gauge = Gauge::new(
    "sluice_log_files_open",
    "Segment files the shards' file-handle caches hold open now.",
);

const GAUGES: &[&Gauge] = &[&FETCHES_PARKED, &LOG_FILES_OPEN];

/// Upper bounds of the histogram buckets, in microseconds: fine where
/// the targets are (p99 of a millisecond or two), coarse in the tail.
const BUCKET_BOUNDS_US: [u64; 16] = [
    25, 50, 100, 250, 500, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 25_000, 50_000, 100_000,
    250_000, 1_000_000,
];
const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;

/// A latency histogram in Prometheus' form: a count per bucket (the last
/// one unbounded), the sum and the count. Where the time of a request goes
/// is read from these, stage by stage.
pub struct Histogram {
    name: &'static str,
    /// `key="value"` or empty.
    label: &'static str,
    help: &'static str,
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Histogram {
    const fn new(name: &'static str, label: &'static str, help: &'static str) -> Histogram {
        Histogram {
            name,
            label,
            help,
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far (the sum of the buckets).
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, with_header: bool) {
        let name = self.name;
        if with_header {
            header(out, name, self.help, "histogram");
        }
        let sep = if self.label.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = match BUCKET_BOUNDS_US.get(i) {
                Some(us) => format!("{}", *us as f64 / 1e6),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{{}{sep}le=\"{le}\"}} {cumulative}",
                self.label
            );
        }
        let labels = if self.label.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", self.label)
        };
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_sum{labels} {sum}\n{name}_count{labels} {cumulative}"
        );
    }
}

const REQUEST_HELP: &str =
    "Time from a request read whole to its response written, by API (produce, fetch, other).";
pub static REQUEST_PRODUCE: Histogram =
    Histogram::new("sluice_request_seconds", "api=\"produce\"", REQUEST_HELP);
pub static REQUEST_FETCH: Histogram =
    Histogram::new("sluice_request_seconds", "api=\"fetch\"", REQUEST_HELP);
pub static REQUEST_OTHER: Histogram =
    Histogram::new("sluice_request_seconds", "api=\"other\"", REQUEST_HELP);
pub static RESPONSE_WRITE: Histogram = Histogram::new(
    "sluice_response_write_seconds",
    "",
    "Time to write a response to its socket (framing, sendfile of record bytes).",
);
pub static SHARD_QUEUE: Histogram = Histogram::new(
    "sluice_shard_queue_seconds",
    "",
    "Queueing on the connection's shard: how long a connection waits for its turn after each request, while the shard's other tasks run.",
);
pub static MESH_HOP: Histogram = Histogram::new(
    "sluice_mesh_hop_seconds",
    "",
    "Time from a message sent to another shard to its receipt there.",
);
pub static APPEND: Histogram = Histogram::new(
    "sluice_append_seconds",
    "",
    "Time of one batch's append to its partition log (into the page cache); with `append_writer = thread`, of one request's appends on the owner shard, written off the shard thread.",
);
pub static REPLICATION_WAIT: Histogram = Histogram::new(
    "sluice_produce_replication_wait_seconds",
    "",
    "Time an acks=all batch waits after its append for the high watermark (the ISR's fetches).",
);
pub static FETCH_WAKEUP: Histogram = Histogram::new(
    "sluice_fetch_wakeup_seconds",
    "",
    "Time from an append (or high watermark move) to the long-poll fetch waiting on it resuming.",
);

const HISTOGRAMS: &[&Histogram] = &[
    &REQUEST_PRODUCE,
    &REQUEST_FETCH,
    &REQUEST_OTHER,
    &RESPONSE_WRITE,
    &SHARD_QUEUE,
    &MESH_HOP,
    &APPEND,
    &REPLICATION_WAIT,
    &FETCH_WAKEUP,
];

/// A label value in Prometheus text: backslash, quote and newline escaped.
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `# HELP` and `# TYPE` lines that open a metric family.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One unlabeled series with its header.
pub fn scalar(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    header(out, name, help, kind);
    let _ = writeln!(out, "{name} {value}");
}

/// The Prometheus text exposition of every counter and histogram.
///
/// Per-partition series (each replica's log, each group's committed
/// offsets) are written while there are at most `partition_series_max` of
/// each kind; past it only their per-topic and per-group sums are, and
/// `sluice_metrics_partition_series_omitted` counts what was left out.
pub fn render(partition_series_max: usize) -> String {
    let mut out = String::new();
    process::render(&mut out);
    requests::render(&mut out);
    errors::render(&mut out);
    listeners::render(&mut out);
    topics::render(&mut out);
    let logs = logs::snapshot();
    let groups = groups::snapshot();
    let offsets: usize = groups.iter().map(|g| g.offsets.len()).sum();
    let per_replica = logs.len() <= partition_series_max;
    let per_group_partition = offsets <= partition_series_max;
    logs::render(&mut out, &logs, per_replica);
    let led = logs::led_high_watermarks(&logs);
    groups::render(&mut out, &groups, &led, per_group_partition);
    let omitted = [(per_replica, logs.len()), (per_group_partition, offsets)]
        .iter()
        .filter(|(written, _)| !written)
        .map(|(_, rows)| rows)
        .sum::<usize>();
    scalar(
        &mut out,
        "sluice_metrics_partition_series_omitted",
        "Replicas and committed offsets not written per partition: more than metrics_partition_series_max of their kind.",
        "gauge",
        omitted,
    );
    for c in ALL {
        scalar(&mut out, c.name, c.help, "counter", c.get());
    }
    for g in GAUGES {
        scalar(&mut out, g.name, g.help, "gauge", g.get());
    }
    let mut previous = "";
    for h in HISTOGRAMS {
        // Labeled series of one name share one header.
        h.render(&mut out, h.name != previous);
        previous = h.name;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_bounded_above() {
        let h = Histogram::new("t_seconds", "api=\"x\"", "test");
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(25));
        h.observe(Duration::from_micros(26));
        h.observe(Duration::from_secs(5));
        assert_eq!(h.count(), 4);
        let mut out = String::new();
        h.render(&mut out, true);
        assert!(out.contains("# TYPE t_seconds histogram"), "{out}");
        assert!(
            out.contains("t_seconds_bucket{api=\"x\",le=\"0.000025\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_bucket{api=\"x\",le=\"0.00005\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_bucket{api=\"x\",le=\"1\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_bucket{api=\"x\",le=\"+Inf\"} 4"),
            "{out}"
        );
        assert!(out.contains("t_seconds_count{api=\"x\"} 4"), "{out}");
    }
}

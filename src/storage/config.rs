//! Per-partition log configuration, with Kafka's topic-level defaults.

/// Kafka `segment.bytes` default: 1 GiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 1 << 30;
/// Positions in the offset index are u32 and Kafka caps `segment.bytes` at
/// i32::MAX; larger settings are clamped to this.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Kafka `segment.ms` default: 7 days.
pub const DEFAULT_SEGMENT_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka `index.interval.bytes` default.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u32 = 4096;
/// Kafka `retention.ms` default: 7 days.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka `max.message.bytes` default (1 MiB + the 12-byte log overhead).
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 1_048_588;
/// Kafka `delete.retention.ms` default: 1 day.
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// Kafka `min.cleanable.dirty.ratio` default.
pub const DEFAULT_MIN_CLEANABLE_DIRTY_RATIO: f64 = 0.5;
/// Kafka `segment.index.bytes` default: 10 MiB of offset index.
pub const DEFAULT_SEGMENT_INDEX_BYTES: u32 = 10 * 1024 * 1024;
/// Kafka `file.delete.delay.ms` default: one minute.
pub const DEFAULT_FILE_DELETE_DELAY_MS: i64 = 60_000;

/// Idempotent producers remembered per partition by default.
pub const DEFAULT_PRODUCERS_MAX: usize = 10_000;

/// Which timestamp the log stores for each batch (`message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    #[default]
    CreateTime,
    /// Stamp each batch with the broker's clock at append.
    LogAppendTime,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Roll before an append would make a non-empty active segment exceed this.
    pub segment_bytes: u64,
    /// Roll when the active segment's first append is older than this,
    /// less the segment's jitter.
    pub segment_ms: i64,
    /// Each segment rolls up to this much before `segment_ms` (a random
    /// share, drawn per segment), so partitions created together do not
    /// all roll at once.
    pub segment_jitter_ms: i64,
    /// Roll before a segment's offset or time index would outgrow this
    /// many bytes (Kafka's entry sizes: 8 and 12 bytes).
    pub segment_index_bytes: u32,
    /// An offset index entry every this many bytes of log.
    pub index_interval_bytes: u32,
    /// Delete segments whose newest timestamp is older than this; -1 = unlimited.
    pub retention_ms: i64,
    /// Delete oldest segments while the log stays at least this big; -1 = unlimited.
    pub retention_bytes: i64,
    /// Largest accepted batch.
    pub max_message_bytes: u32,
    pub timestamp_type: TimestampType,
    /// Ask for an fsync after this many messages since the last flush (i64::MAX = never).
    pub flush_messages: i64,
    /// Ask for an fsync when the oldest unflushed append is older than this (i64::MAX = never).
    pub flush_ms: i64,
    /// `cleanup.policy` holds `delete`: time and size retention apply.
    pub cleanup_delete: bool,
    /// `cleanup.policy` holds `compact`: closed segments keep only the
    /// latest record of each key (see `PartitionLog::compact`).
    pub cleanup_compact: bool,
    /// How long a tombstone (null value) stays after its segment was first
    /// cleaned, so consumers can see the delete.
    pub delete_retention_ms: i64,
    /// Compaction starts when the never-cleaned share of the closed
    /// segments' bytes reaches this.
    pub min_cleanable_dirty_ratio: f64,
    /// A record stays uncompacted at least this long: segments holding a
    /// newer timestamp are not rewritten.
    pub min_compaction_lag_ms: i64,
    /// A record stays uncompacted at most about this long: a log whose
    /// oldest dirty segment is older is compacted whatever its dirty
    /// ratio, and its active segment rolls by then.
    pub max_compaction_lag_ms: i64,
    /// How long a deleted segment's files stay (renamed) before they are
    /// unlinked.
    pub file_delete_delay_ms: i64,
    /// Idempotent producers whose state the partition keeps; past it the
    /// least recently seen are forgotten (as if expired).
    pub producers_max: usize,
    /// Allocate each active segment's blocks up to `segment_bytes` ahead
    /// of its appends (Kafka's `preallocate`; see `Segment::preallocate`).
    pub preallocate: bool,
    /// How far ahead of the active segment's appends the page cache may be
    /// filled, at most (0: not at all; see `storage::prefault`). Not with
    /// `preallocate`: ext4 writes into cached unwritten extents slower.
    pub prefault_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            segment_ms: DEFAULT_SEGMENT_MS,
            segment_jitter_ms: 0,
            segment_index_bytes: DEFAULT_SEGMENT_INDEX_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            retention_ms: DEFAULT_RETENTION_MS,
            retention_bytes: -1,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            timestamp_type: TimestampType::CreateTime,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            min_cleanable_dirty_ratio: DEFAULT_MIN_CLEANABLE_DIRTY_RATIO,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            file_delete_delay_ms: DEFAULT_FILE_DELETE_DELAY_MS,
            producers_max: DEFAULT_PRODUCERS_MAX,
            preallocate: false,
            prefault_bytes: 0,
        }
    }
}

/// Bytes of one offset index and one time index entry in Kafka's files,
/// which `segment_index_bytes` counts in.
const OFFSET_INDEX_ENTRY_BYTES: u32 = 8;
const TIME_INDEX_ENTRY_BYTES: u32 = 12;

impl LogConfig {
    /// `segment_bytes` clamped so every position fits the offset index.
    pub fn segment_bytes_effective(&self) -> u64 {
        self.segment_bytes.clamp(1, SEGMENT_BYTES_MAX)
    }

    /// How old the active segment gets before it rolls (before jitter):
    /// `segment_ms`, or sooner on a compacted log whose
    /// `max_compaction_lag_ms` is shorter, since only closed segments are
    /// compacted (Kafka's `maxSegmentMs`).
    pub fn roll_ms(&self) -> i64 {
        if self.cleanup_compact {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }

    /// The most entries a segment's offset and time index hold before it
    /// rolls (`segment_index_bytes` over Kafka's entry sizes, at least one).
    pub fn index_entries_max(&self) -> (usize, usize) {
        let entries = |entry_bytes: u32| (self.segment_index_bytes / entry_bytes).max(1) as usize;
        (
            entries(OFFSET_INDEX_ENTRY_BYTES),
            entries(TIME_INDEX_ENTRY_BYTES),
        )
    }
}

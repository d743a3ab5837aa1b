//! A partition's log on disk: segments, indexes, recovery, retention.
//!
//! `storage` knows nothing about Kafka API types, the network or glommio: it
//! is synchronous code on `std::fs::File` (positioned I/O through the page
//! cache). The caller decides when to fsync, on a blocking thread, using
//! [`PartitionLog::active_file`] and [`PartitionLog::mark_flushed`].
//!
//! # Layout
//!
//! `data_dir/<topic>-<partition>/` holds `<20-digit base>.log` (whole v2
//! batches), `.index` (relative offset -> position, every
//! `index_interval_bytes`), `.timeindex` (largest timestamp so far ->
//! relative offset), `recovery-point`, `<20-digit offset>.snapshot` (idempotent producer
//! state as of that offset, written at each roll and at close),
//! `leader-epoch-checkpoint` (where each leader epoch starts; only once a
//! leader stamped one) and, for compacted topics, `cleaner-checkpoint`
//! (offsets below it were cleaned at least once), `log-start-offset` (once
//! records were deleted past the first segment's base: see [`log_start`])
//! and `owner-<topic id>` (empty: whose log it is, see [`owner`]).
//! A `high-watermark` file
//! there is the layout before `data_dir/replication-offset-checkpoint-<shard>`
//! (every replica's high watermark, see [`hw_checkpoint`]), read at open when
//! that has no value and removed once it has.

mod checkpoint_file;
mod compaction;
mod config;
mod error;
mod group_close;
mod handles;
mod high_watermark;
mod hw_checkpoint;
mod index;
mod index_file;
mod io;
mod leader_epoch;
mod log;
mod log_start;
mod owner;
mod prefault;
mod producer_state;
mod recovery;
mod replication;
mod retention;
mod segment;
mod time_index;
mod truncate;
mod txn_index;

pub use compaction::{
    CompactionStats, CompactionWork, CLEANER_CHECKPOINT_FILE, COMPACTION_PASS_BYTES_MAX,
};
pub use config::*;
pub use error::StorageError;
pub use group_close::{GroupClose, GroupSynced};
pub use handles::{FileHandles, LOG_OPEN_FILES_ALONE};
pub use high_watermark::HIGH_WATERMARK_FILE;
pub use hw_checkpoint::{
    hw_checkpoint_path, load_high_watermarks, HwCheckpoint, HwEntry, LegacyHwFile,
    StoredHighWatermarks, HW_CHECKPOINT_PREFIX,
};
pub use index::{IndexEntry, OffsetIndex, OFFSET_INDEX_ENTRY_BYTES};
pub(crate) use io::is_out_of_space;
pub use leader_epoch::{
    EpochEntry, LeaderEpochCache, LEADER_EPOCH_CHECKPOINT_FILE, LEADER_EPOCH_ENTRIES_MAX,
    UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET,
};
pub use log::{
    AppendOrigin, AppendResult, FileSlice, PartitionLog, Prepared, PreparedAppend, ReadPlan,
};
pub use log_start::{LogStartMoved, LogStartSync, LOG_START_FILE};
pub use prefault::{extension_writes_back, Prefault};
pub use producer_state::{
    BatchMeta, ProducerEntry, ProducerError, ProducerStates, PRODUCER_BATCHES_KEPT,
};
pub use recovery::RECOVERY_POINT_FILE;
pub use segment::segment_path;
pub use segment::DeletedSegment;
pub use segment::WriteFailed;
pub use time_index::{TimeEntry, TimeIndex, TIME_INDEX_ENTRY_BYTES};
pub use txn_index::{AbortedTxn, TXN_INDEX_ENTRY_BYTES};

#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod handles_tests;
#[cfg(test)]
mod hw_checkpoint_tests;
#[cfg(test)]
mod log_start_tests;
#[cfg(test)]
mod owner_tests;
#[cfg(test)]
mod producer_state_tests;
#[cfg(test)]
mod replication_tests;
#[cfg(test)]
mod tests;

//! `PartitionLog`: the ordered set of segments of one partition, with
//! append, read planning and flush bookkeeping.
//!
//! Owned by the partition's owner shard alone; other shards reach it only
//! by messages to that shard. Reads hand out `Arc<File>` slices, which stay
//! readable even after retention deletes the segment.
//!
//! Nothing here blocks on the disk during a roll: a rolled segment joins the
//! unsynced list, and the shard runs its fdatasync and the recovery point on
//! the blocking thread ([`PartitionLog::take_roll_sync`]), as Kafka flushes
//! rolled segments in the background. The recovery point only moves once the
//! segments below it are durable.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::record::{
    parse_marker, validate_batches, with_log_append_time, BatchHeader, BatchInfo, Validated,
};

use super::compaction::Cleaner;
use super::handles::{FileHandles, LOG_OPEN_FILES_ALONE};
use super::high_watermark::{read_high_watermark, HIGH_WATERMARK_FILE};
use super::leader_epoch::{self, LeaderEpochCache};
use super::producer_state::{
    write_snapshot, write_snapshot_bytes, CompletedTxn, ProducerStates, Verdict,
};
use super::recovery::{
    load_leader_epochs, load_producer_state, load_segments, reset_recovery_point,
    stored_recovery_point, write_recovery_point, write_recovery_point_unsynced, SnapshotDigest,
};
use super::segment::{PendingBatch, Segment, SegmentWrite, Segments, WriteFailed};
use super::txn_index::AbortedTxn;
use super::{LogConfig, StorageError, TimestampType};

pub struct AppendResult {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time stamped on the batches; -1 for CreateTime.
    pub log_append_time_ms: i64,
    pub records: u64,
    /// The flush policy asks the caller to fdatasync `active_file()`.
    pub flush_needed: bool,
    /// A producer's retry of batches the log already holds: nothing was
    /// written, and the offsets are the original append's.
    pub duplicate: bool,
}

/// What [`PartitionLog::prepare_append`] leaves to do.
pub enum Prepared {
    /// Batches to write, then hand to [`PartitionLog::finish_append`].
    Write(PreparedAppend),
    /// A producer's retry of batches the log holds: nothing to write.
    Duplicate(AppendResult),
}

/// An append placed at the log's end whose bytes are not written yet.
pub struct PreparedAppend {
    pub write: SegmentWrite,
    generation: u64,
    base_offset: i64,
    next: i64,
    records: u64,
    now_ms: i64,
    log_append_time: bool,
}

/// Who writes a produce's batches: a client (sequences checked, retries
/// deduplicated) or a coordinator on a producer's behalf (Kafka's
/// AppendOrigin.COORDINATOR: transactional offset commits, epoch only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
}

/// A byte range of a segment file holding whole batches.
#[derive(Clone, Debug)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u32,
}

/// What a fetch sends: slices in offset order.
#[derive(Clone, Debug, Default)]
pub struct ReadPlan {
    pub slices: Vec<FileSlice>,
    pub bytes: u64,
}

/// Rolled segments whose fdatasync has not run yet, at most this many; past
/// it a roll syncs on the spot, so a stuck disk cannot grow the list.
const UNSYNCED_ROLLS_MAX: usize = 64;

/// A rolled segment not yet known durable. It names the segment rather
/// than holding its files: those are opened through the shard's cache only
/// for the sync itself, so waiting rolls hold no descriptor.
pub(super) struct UnsyncedRoll {
    /// The rolled segment's base offset; gone from the log when retention
    /// or a truncation removed it, which leaves nothing to sync.
    base: i64,
    /// The log end at the roll: the recovery point once this is synced.
    pub(super) next_base: i64,
}

/// Work for the blocking thread: make rolled segments durable, then move
/// the recovery point past them.
pub struct RollSync {
    dir: PathBuf,
    /// The directory's inode when the log opened it: a topic deleted and
    /// recreated meanwhile has a new directory at the same path, whose
    /// recovery point this must not write.
    dir_ino: u64,
    files: Vec<Arc<File>>,
    scope: RollSyncScope,
}

/// What a [`RollSync`] makes durable, handed back to
/// [`PartitionLog::finish_roll_sync`].
#[derive(Clone, Copy, Debug)]
pub struct RollSyncScope {
    recovery_point: i64,
    /// The log's count of unsynced leader-epoch checkpoint writes when the
    /// job was made, if it had any: the sync covers those.
    epoch_writes: Option<u64>,
}

impl RollSync {
    pub fn run(&self) -> std::io::Result<()> {
        for file in &self.files {
            // Also makes a preallocated segment's trim at its roll durable:
            // fdatasync flushes a size change (fdatasync(2)).
            file.sync_data()?;
        }
        // The log went away (deleted, maybe recreated): nothing to record.
        if super::io::same_dir(&self.dir, self.dir_ino)? {
            // Epochs starting below the new recovery point are not
            // rebuilt from batch headers at an unclean open: durable first.
            if self.scope.epoch_writes.is_some() {
                leader_epoch::sync_checkpoint(&self.dir)?;
            }
            write_recovery_point(&self.dir, self.scope.recovery_point)?;
        }
        Ok(())
    }

    pub fn recovery_point(&self) -> i64 {
        self.scope.recovery_point
    }

    pub fn scope(&self) -> RollSyncScope {
        self.scope
    }
}

pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Keyed by base offset; never empty, the last one is the active segment.
    pub(super) segments: Segments,
    /// First offset a consumer can read: the first segment's base, or past
    /// it when records were deleted or a leader's start was taken (see
    /// [`super::log_start`]); never as far as the second segment's base.
    pub(super) log_start_offset: i64,
    /// Offsets below this are on disk (fsynced).
    pub(super) flushed_offset: i64,
    /// Clock of the oldest append not yet flushed, for `flush_ms`.
    pub(super) first_unflushed_ms: Option<i64>,
    /// Inode of `dir`, to tell it from a later directory at the same path.
    pub(super) dir_ino: u64,
    /// Device of `dir`: the filesystem a group close syncs for it.
    pub(super) dir_dev: u64,
    /// Rolled segments awaiting fdatasync, oldest first.
    pub(super) unsynced_rolls: Vec<UnsyncedRoll>,
    /// A [`RollSync`] is out; another is not handed out until it returns.
    pub(super) roll_sync_out: bool,
    /// The lowest log end a truncation left while a [`RollSync`] was out:
    /// what that sync made durable stops there, since the bytes past it
    /// were cut (and may have been written again, unsynced).
    pub(super) truncated_during_roll_sync: Option<i64>,
    /// Where each leader epoch starts; persisted when it changes.
    pub(super) epochs: LeaderEpochCache,
    /// Checkpoint writes of `epochs` from the append path, which go to the
    /// page cache only, and how many of those are known durable; the
    /// recovery point moves only past synced ones.
    pub(super) epoch_writes: u64,
    pub(super) epoch_writes_synced: u64,
    /// The epoch this replica stamps on what it appends as leader; `None`
    /// as a follower or on a single-node broker (batches keep their bytes).
    pub(super) leader_epoch: Option<i32>,
    /// Made leader or follower since it opened: a replica in a cluster,
    /// whose high watermark is worth a checkpoint. A log no one made either
    /// (a single node) has its log end as its high watermark at every open.
    pub(super) replicated: bool,
    /// Offsets below this are replicated to the ISR (consumers read up to
    /// here). The shard sets it; storage keeps it within the log.
    pub(super) high_watermark: i64,
    /// The value the shard's checkpoint holds for this log, to skip
    /// unchanged writes; `None` before the first.
    pub(super) high_watermark_checkpointed: Option<i64>,
    /// Opened from a per-partition `high-watermark` file (the layout
    /// before the shard checkpoint), still to remove.
    pub(super) legacy_high_watermark_file: bool,
    /// Compaction progress, for `cleanup.policy=compact`.
    pub(super) cleaner: Cleaner,
    /// Idempotent producers' epochs and last batches, as of the log end.
    pub(super) producers: ProducerStates,
    /// The producer snapshot file known to be on disk durably (close wrote
    /// it, or a clean open read it at the log end): close skips writing
    /// the same bytes again, which at 100,000 idle partitions is most of
    /// a clean stop.
    pub(super) durable_snapshot: Option<SnapshotDigest>,
    /// The owner shard's open-file cache, shared by all its logs: the
    /// segments' files are open only while recently used.
    pub(super) handles: FileHandles,
    /// A [`PreparedAppend`] is out: its bytes are being written at the end,
    /// and nothing else may append or roll until it comes back.
    pub(super) write_in_flight: bool,
    /// Bumped by whatever moves the end other than an append (truncation,
    /// close): a prepared append from before it is void.
    pub(super) generation: u64,
}

impl PartitionLog {
    /// Opens a log on its own, with a cache of its own of
    /// [`LOG_OPEN_FILES_ALONE`] files (tests, tools); a shard's logs share
    /// the shard's cache through [`Self::open_in`].
    pub fn open(
        dir: PathBuf,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<Self, StorageError> {
        let handles = FileHandles::new(LOG_OPEN_FILES_ALONE);
        Self::open_in(dir, config, clean_shutdown, &handles)
    }

    /// Opens the log in `dir`, its files open only through `handles`.
    pub fn open_in(
        dir: PathBuf,
        config: LogConfig,
        clean_shutdown: bool,
        handles: &FileHandles,
    ) -> Result<Self, StorageError> {
        Self::open_with(dir, config, clean_shutdown, handles, None)
    }

    /// [`Self::open_in`] of a directory that must be `owner`'s (a topic
    /// id; see [`super::owner`]): another owner's is
    /// [`StorageError::OtherOwner`], with nothing in it read or changed.
    pub fn open_owned(
        dir: PathBuf,
        config: LogConfig,
        clean_shutdown: bool,
        handles: &FileHandles,
        owner: &str,
    ) -> Result<Self, StorageError> {
        Self::open_with(dir, config, clean_shutdown, handles, Some(owner))
    }

    fn open_with(
        dir: PathBuf,
        config: LogConfig,
        clean_shutdown: bool,
        handles: &FileHandles,
        owner: Option<&str>,
    ) -> Result<Self, StorageError> {
        let mut loaded = load_segments(
            &dir,
            &config,
            clean_shutdown,
            handles,
            UNSYNCED_ROLLS_MAX,
            owner,
        )?;
        let log_start_offset = *loaded.segments.keys().next().expect("at least one segment");
        let mut log = PartitionLog {
            dir,
            config: config.clone(),
            segments: loaded.segments,
            log_start_offset,
            flushed_offset: 0,
            first_unflushed_ms: None,
            dir_ino: 0,
            dir_dev: 0,
            unsynced_rolls: Vec::new(),
            roll_sync_out: false,
            truncated_during_roll_sync: None,
            epochs: LeaderEpochCache::new(),
            epoch_writes: 0,
            epoch_writes_synced: 0,
            leader_epoch: None,
            replicated: false,
            high_watermark: 0,
            high_watermark_checkpointed: None,
            legacy_high_watermark_file: false,
            cleaner: Cleaner::default(),
            producers: ProducerStates::new(config.producers_max),
            durable_snapshot: None,
            handles: handles.clone(),
            write_in_flight: false,
            generation: 0,
        };
        log.restore_log_start(&loaded.listing)?;
        let (producers, snapshot) = load_producer_state(
            &log.dir,
            std::mem::take(&mut loaded.listing.snapshots),
            &mut log.segments,
            log.log_start_offset,
            config.producers_max,
        )?;
        log.producers = producers;
        // Only a clean shutdown's files are known durable: a crash may
        // have left a roll's unsynced snapshot at the log end.
        log.durable_snapshot = snapshot.filter(|_| clean_shutdown);
        let log_end = log.log_end_offset();
        let epoch_file_listed = loaded
            .listing
            .has(leader_epoch::LEADER_EPOCH_CHECKPOINT_FILE);
        let (epochs, epochs_changed) = load_leader_epochs(
            &log.dir,
            epoch_file_listed,
            &log.segments,
            log.log_start_offset,
            log_end,
            loaded.recovery_point,
        )?;
        log.epochs = epochs;
        // A clean open without the file has a log no leader stamped (a
        // single-node broker's: a clean close syncs any file the append
        // path wrote), whose cache the headers give again at every open
        // for two reads a segment, so none is written. Writing it cost a
        // file and a directory fsync per partition: the first restart of a
        // single node with 10,000 written partitions took 9.7 s, 0.7 s
        // without. A stale or unreadable file is replaced.
        if epochs_changed && loaded.deferred {
            // The recovery point stays below the rescanned epochs: synced
            // before it passes them, like the append path's writes.
            log.checkpoint_epochs_unsynced()?;
        } else if epochs_changed && epoch_file_listed {
            log.epochs.write_checkpoint(&log.dir)?;
        }
        // No file: a new log, one a single-node broker wrote (every
        // offset counted as replicated), or one whose value is in its
        // shard's checkpoint (`restore_high_watermark` comes next).
        let stored = loaded
            .listing
            .has(HIGH_WATERMARK_FILE)
            .then(|| read_high_watermark(&log.dir))
            .flatten();
        log.high_watermark_checkpointed = stored;
        log.legacy_high_watermark_file = stored.is_some();
        log.high_watermark = stored
            .unwrap_or(log_end)
            .clamp(log.log_start_offset, log_end);
        let dir_meta = fs::metadata(&log.dir)?;
        log.dir_ino = std::os::unix::fs::MetadataExt::ino(&dir_meta);
        log.dir_dev = std::os::unix::fs::MetadataExt::dev(&dir_meta);
        if loaded.deferred {
            let recovery_point = loaded.recovery_point.expect("only an unclean open defers");
            log.leave_rescan_unsynced(&loaded.unsynced_rolls, recovery_point);
        } else {
            log.move_recovery_point_to_end();
        }
        log.active().assert_file_len()?;
        log.preallocate_active();
        log.check_invariants();
        Ok(log)
    }

    /// Preallocates the active segment up to `segment.bytes`, if the log
    /// is configured to (see [`Segment::preallocate`]).
    pub(super) fn preallocate_active(&mut self) {
        if self.config.preallocate {
            let len = self.config.segment_bytes_effective();
            self.active_mut().preallocate(len);
        }
    }

    /// The page cache to fill ahead of the active segment's appends, if
    /// the log is configured to and the last append asks for it (see
    /// [`super::prefault`]).
    pub fn take_prefault(&mut self) -> Option<super::Prefault> {
        if self.config.preallocate {
            return None;
        }
        let max_window = self.config.prefault_bytes;
        let segment_end = self.config.segment_bytes_effective();
        self.active_mut().prefault_due(max_window, segment_end)
    }

    /// After an open that synced what it rescanned, or rescanned nothing:
    /// everything below the log end is on disk.
    fn move_recovery_point_to_end(&mut self) {
        let log_end = self.log_end_offset();
        self.flushed_offset = log_end;
        // Unchanged after a clean shutdown (close wrote it): no write. A
        // new log's end is 0, which is what no file says: topic creation
        // paid two fsyncs per partition on the shard thread for it.
        if stored_recovery_point(&self.dir).unwrap_or(0) == log_end {
            return;
        }
        if let Err(e) = write_recovery_point(&self.dir, log_end) {
            // A full disk: the old point is lower, which only means a
            // longer rescan after a crash. Reads must go on meanwhile.
            tracing::warn!(dir = %self.dir.display(), error = %e, "recovery point not moved at open");
        }
    }

    /// After an unclean open that left its rescan to the page cache: the
    /// recovery point stays, the rescanned rolled segments wait for a roll
    /// sync like any roll, and the flush policy counts from the recovery
    /// point (`flush.ms` from now).
    fn leave_rescan_unsynced(&mut self, rolls: &[(i64, i64)], recovery_point: i64) {
        assert!(self.unsynced_rolls.is_empty(), "at open");
        assert!(rolls.len() <= UNSYNCED_ROLLS_MAX);
        self.unsynced_rolls = rolls
            .iter()
            .map(|&(base, next_base)| UnsyncedRoll { base, next_base })
            .collect();
        let log_end = self.log_end_offset();
        assert!(recovery_point <= log_end, "a deferred rescan cut nothing");
        self.flushed_offset = recovery_point.max(self.log_start_offset);
        if self.flushed_offset < log_end {
            self.first_unflushed_ms = Some(crate::runtime::now_ms());
        }
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.producers.set_producers_max(config.producers_max);
        self.config = config;
    }

    /// The idempotent producers this partition knows.
    pub fn producers(&self) -> &ProducerStates {
        &self.producers
    }

    /// Forgets producers idle for `expiration_ms`; returns how many.
    pub fn expire_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.expire(now_ms, expiration_ms)
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub(super) fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("at least one segment")
    }

    pub(super) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("at least one segment")
    }

    pub(super) fn check_invariants(&self) {
        assert!(
            self.log_start_offset <= self.high_watermark,
            "log_start <= high_watermark"
        );
        assert!(
            self.high_watermark <= self.log_end_offset(),
            "high_watermark <= log_end"
        );
        let mut bases = self.segments.keys();
        let first = *bases.next().expect("at least one segment");
        assert!(
            first <= self.log_start_offset,
            "the first segment holds the log start"
        );
        if let Some(&second) = bases.next() {
            assert!(
                self.log_start_offset < second,
                "no segment lies wholly below the log start"
            );
        }
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The active segment's `.log`, reopened if the shard's cache closed it.
    pub fn active_file(&self) -> std::io::Result<Arc<File>> {
        self.active().file()
    }

    /// Every file an fdatasync must cover for the whole log to be durable:
    /// rolled segments not synced yet, then the active one.
    pub fn files_to_sync(&self) -> std::io::Result<Vec<Arc<File>>> {
        let mut files = self.unsynced_files()?;
        files.push(self.active_file()?);
        files.extend(self.active().txn_index.file()?);
        Ok(files)
    }

    /// The files of the rolled segments waiting for fdatasync, reopened
    /// where the cache closed them.
    fn unsynced_files(&self) -> std::io::Result<Vec<Arc<File>>> {
        let mut files = Vec::with_capacity(self.unsynced_rolls.len());
        for roll in &self.unsynced_rolls {
            let Some(segment) = self.segments.get(&roll.base) else {
                continue;
            };
            files.push(segment.file()?);
            files.extend(segment.txn_index.file()?);
        }
        Ok(files)
    }

    /// The fdatasync of rolled segments for the blocking thread, if any is
    /// due and none is out; answer with [`Self::finish_roll_sync`]. `None`
    /// too when a file cannot be reopened now: the rolls stay, for the
    /// next try.
    pub fn take_roll_sync(&mut self) -> Option<RollSync> {
        if self.roll_sync_out || self.unsynced_rolls.is_empty() {
            return None;
        }
        let files = match self.unsynced_files() {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot reopen rolled segments to sync them; retried later");
                return None;
            }
        };
        self.roll_sync_out = true;
        Some(RollSync {
            dir: self.dir.clone(),
            dir_ino: self.dir_ino,
            files,
            scope: RollSyncScope {
                recovery_point: self.unsynced_rolls.last().expect("non-empty").next_base,
                epoch_writes: self.epochs_unsynced().then_some(self.epoch_writes),
            },
        })
    }

    /// A [`RollSync`] came back; on success its segments are durable, and
    /// the epoch checkpoint as it was when the job was made.
    pub fn finish_roll_sync(&mut self, scope: RollSyncScope, synced: bool) {
        assert!(self.roll_sync_out, "a roll sync was out");
        self.roll_sync_out = false;
        let recovery_point = scope.recovery_point;
        if synced {
            if let Some(writes) = scope.epoch_writes {
                assert!(
                    writes <= self.epoch_writes,
                    "a job covers writes made before it"
                );
                self.epoch_writes_synced = self.epoch_writes_synced.max(writes);
            }
        }
        // A truncation while the sync was out cut what it made durable.
        let durable = match self.truncated_during_roll_sync.take() {
            Some(truncated_to) if truncated_to < recovery_point => {
                if synced {
                    // The sync wrote a recovery point past the cut; bring
                    // the file back (rare: a follower truncating while its
                    // rolls sync).
                    if let Err(err) = reset_recovery_point(&self.dir, truncated_to) {
                        tracing::warn!(dir = %self.dir.display(), error = %err, "cannot rewrite the recovery point after a truncation");
                    }
                }
                truncated_to
            }
            _ => recovery_point,
        };
        if synced {
            self.unsynced_rolls.retain(|r| r.next_base > durable);
            self.mark_flushed(durable);
        }
    }

    /// Whether `flush.ms` has passed since the oldest unflushed append, so
    /// a flush is due even without a new append to notice it.
    pub fn flush_overdue(&self, now_ms: i64) -> bool {
        self.first_unflushed_ms
            .is_some_and(|since| now_ms.saturating_sub(since) >= self.config.flush_ms)
    }

    /// Validates every batch, then writes them all at the next offsets.
    /// Nothing is written if any batch is invalid.
    pub fn append(&mut self, records: &Bytes, now_ms: i64) -> Result<AppendResult, StorageError> {
        self.append_from(records, now_ms, AppendOrigin::Client)
    }

    /// [`Self::append`] for batches from `origin`.
    pub fn append_from(
        &mut self,
        records: &Bytes,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendResult, StorageError> {
        let checked = Validated::check(records.clone(), self.config.max_message_bytes)?;
        self.append_validated(&checked, now_ms, origin)
    }

    /// Writes batches already validated where they arrived (their CRCs and
    /// records are not walked again; debug builds check); only this log's
    /// `max.message.bytes` is held against them here.
    pub fn append_validated(
        &mut self,
        checked: &Validated,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendResult, StorageError> {
        match self.prepare_append(checked, now_ms, origin)? {
            Prepared::Duplicate(result) => Ok(result),
            Prepared::Write(prepared) => {
                let written = prepared.write.run();
                self.finish_append(prepared, written)
            }
        }
    }

    /// The first half of [`Self::append_validated`]: checks the batches and
    /// their producers, rolls if due, and places them at the end with their
    /// offsets; nothing a reader sees changes. The bytes are written by
    /// [`PreparedAppend::write`]'s `run` (here or on another thread), then
    /// [`Self::finish_append`] makes them part of the log. Until then no
    /// other append may be prepared.
    pub fn prepare_append(
        &mut self,
        checked: &Validated,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<Prepared, StorageError> {
        assert!(!self.write_in_flight, "one append at a time");
        let records = checked.bytes();
        let infos = checked.infos();
        debug_assert_eq!(
            validate_batches(records, u32::MAX).ok().as_deref(),
            Some(infos),
            "validated batches changed"
        );
        let max = self.config.max_message_bytes;
        if let Some(big) = infos.iter().find(|i| i.total_len as u64 > u64::from(max)) {
            return Err(StorageError::MessageTooLarge {
                size: big.total_len as u64,
                max: u64::from(max),
            });
        }
        let log_append_time = self.config.timestamp_type == TimestampType::LogAppendTime;
        let bodies: Vec<Bytes> = infos
            .iter()
            .map(|i| {
                let batch = records.slice(i.offset..i.offset + i.total_len);
                if log_append_time {
                    with_log_append_time(&batch, now_ms).freeze()
                } else {
                    batch
                }
            })
            .collect();
        let mut headers: Vec<BatchHeader> = bodies
            .iter()
            .map(|bytes| BatchHeader::parse(bytes).expect("validated batch"))
            .collect();
        let verdict = match origin {
            AppendOrigin::Client => self.producers.check(&headers)?,
            AppendOrigin::Coordinator => {
                self.producers.check_coordinator(&headers)?;
                Verdict::Append
            }
        };
        if let Verdict::Duplicate(original) = verdict {
            return Ok(Prepared::Duplicate(AppendResult {
                base_offset: original.first_offset,
                last_offset: original.last_offset,
                log_append_time_ms: if log_append_time {
                    original.timestamp
                } else {
                    -1
                },
                records: 0,
                flush_needed: false,
                duplicate: true,
            }));
        }
        let total_bytes: u64 = bodies.iter().map(|b| b.len() as u64).sum();
        let record_count: u64 = infos.iter().map(|i| i.records_count as u64).sum();
        self.maybe_roll(total_bytes, record_count, now_ms)?;

        let base_offset = self.log_end_offset();
        let mut next = base_offset;
        for header in &mut headers {
            header.base_offset = next;
            next = header.last_offset() + 1;
            if let Some(epoch) = self.leader_epoch {
                header.partition_leader_epoch = epoch;
            }
        }
        let pending = headers
            .into_iter()
            .zip(bodies)
            .map(|(header, bytes)| PendingBatch { header, bytes })
            .collect();
        let write = self.active_mut().prepare_write(pending)?;
        self.write_in_flight = true;
        Ok(Prepared::Write(PreparedAppend {
            write,
            generation: self.generation,
            base_offset,
            next,
            records: record_count,
            now_ms,
            log_append_time,
        }))
    }

    /// The second half of [`Self::append_validated`]: the prepared batches,
    /// once written, become part of the log (offsets, indexes, producer
    /// state). A write that failed changes nothing; one the log moved on
    /// from (a truncation or close while it ran) is void, its bytes past
    /// the end cut before the next append.
    pub fn finish_append(
        &mut self,
        prepared: PreparedAppend,
        written: Result<(), WriteFailed>,
    ) -> Result<AppendResult, StorageError> {
        assert!(self.write_in_flight, "a prepared append is out");
        self.write_in_flight = false;
        let PreparedAppend {
            write,
            generation,
            base_offset,
            next,
            records,
            now_ms,
            log_append_time,
        } = prepared;
        if generation != self.generation {
            let active = self.active_mut();
            if active.base_offset == write.segment_base() && active.size <= write.start() {
                active.mark_tail_uncut();
            }
            return Err(StorageError::Superseded);
        }
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        active.finish_write(&write, written, interval)?;
        active.rolling_base_ms.get_or_insert(now_ms);
        assert_eq!(self.log_end_offset(), next);
        for header in write.headers() {
            let completed = self.producers.apply(header, None, now_ms);
            assert!(completed.is_none(), "clients write no markers");
        }
        Ok(AppendResult {
            base_offset,
            last_offset: next - 1,
            log_append_time_ms: if log_append_time { now_ms } else { -1 },
            records,
            flush_needed: self.note_unflushed(now_ms),
            duplicate: false,
        })
    }

    /// Whether a [`PreparedAppend`] is out.
    pub fn write_in_flight(&self) -> bool {
        self.write_in_flight
    }

    /// Appends a transaction marker (a control batch the coordinator built)
    /// at the next offset, ending its producer's transaction here.
    pub fn append_marker(
        &mut self,
        batch: &Bytes,
        now_ms: i64,
    ) -> Result<AppendResult, StorageError> {
        assert!(!self.write_in_flight, "one append at a time");
        let infos = validate_batches(batch, u32::MAX)?;
        assert_eq!(infos.len(), 1, "a marker is one batch");
        let header = BatchHeader::parse(batch)?;
        let marker = parse_marker(batch).expect("a marker batch holds a marker");
        self.producers
            .check_marker(&header, marker.coordinator_epoch)?;
        self.maybe_roll(batch.len() as u64, 1, now_ms)?;
        let mut header = header;
        header.base_offset = self.log_end_offset();
        if let Some(epoch) = self.leader_epoch {
            header.partition_leader_epoch = epoch;
        }
        let pending = vec![PendingBatch {
            header,
            bytes: batch.clone(),
        }];
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        active.append(pending, interval)?;
        active.rolling_base_ms.get_or_insert(now_ms);
        if let Some(completed) = self.producers.apply(&header, Some(marker), now_ms) {
            self.index_completed(completed);
        }
        Ok(AppendResult {
            base_offset: header.base_offset,
            last_offset: header.base_offset,
            log_append_time_ms: -1,
            records: 1,
            flush_needed: self.note_unflushed(now_ms),
            duplicate: false,
        })
    }

    /// Puts an aborted transaction in the active segment's index, with the
    /// last stable offset right after its marker (as recovery replay does,
    /// so a follower appending many batches at once indexes the same).
    pub(super) fn index_completed(&mut self, completed: CompletedTxn) {
        if !completed.aborted {
            return;
        }
        let last_stable_offset = self
            .producers
            .first_unstable_offset()
            .unwrap_or(completed.last_offset + 1);
        let appended = self.active_mut().txn_index.append(AbortedTxn {
            producer_id: completed.producer_id,
            first_offset: completed.first_offset,
            last_offset: completed.last_offset,
            last_stable_offset,
        });
        if let Err(e) = appended {
            // The marker is in the log and the entry in memory: failing now
            // would refuse a write that was made. The roll writes the file.
            tracing::warn!(dir = %self.dir.display(), error = %e, "aborted-transaction index write failed; kept in memory until the roll");
        }
    }

    /// Writes every aborted-transaction index file a failed write left
    /// behind its entries (usually none: a flag per segment).
    fn persist_txn_indexes(&mut self) -> std::io::Result<()> {
        self.segments
            .values_mut()
            .try_for_each(|s| s.txn_index.persist())
    }

    /// Offsets below this are settled: no open transaction holds them
    /// (what read_committed consumers may see).
    pub fn last_stable_offset(&self) -> i64 {
        let log_end = self.log_end_offset();
        // A transaction open below a start records were deleted to holds
        // nothing readable back (Kafka's first unstable offset is at least
        // the log start).
        self.producers
            .first_unstable_offset()
            .map_or(log_end, |first| first.clamp(self.log_start_offset, log_end))
    }

    /// Aborted transactions a read_committed fetch of `[from, to)` must
    /// name: those whose marker is at or past `from` and that started
    /// before `to` (Kafka's collectAbortedTransactions), at most `max`.
    pub fn aborted_transactions(&self, from: i64, to: i64, max: usize) -> Vec<AbortedTxn> {
        let first_base = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(self.log_start_offset, |(base, _)| *base);
        self.segments
            .range(first_base..)
            .flat_map(|(_, s)| s.txn_index.entries())
            .filter(|t| t.last_offset >= from && t.first_offset < to)
            .take(max)
            .copied()
            .collect()
    }

    /// Counts an append against the flush policy; true if a flush is due.
    pub(super) fn note_unflushed(&mut self, now_ms: i64) -> bool {
        let since = *self.first_unflushed_ms.get_or_insert(now_ms);
        let unflushed = self.log_end_offset() - self.flushed_offset;
        unflushed >= self.config.flush_messages
            || now_ms.saturating_sub(since) >= self.config.flush_ms
    }

    pub(super) fn should_roll(&self, append_bytes: u64, append_records: u64, now_ms: i64) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        let too_big = active.size + append_bytes > self.config.segment_bytes_effective();
        let roll_ms = self
            .config
            .roll_ms()
            .saturating_sub(self.roll_jitter_ms(active.base_offset));
        let too_old = active
            .rolling_base_ms
            .is_some_and(|base| now_ms.saturating_sub(base) >= roll_ms);
        let (offsets_max, times_max) = self.config.index_entries_max();
        let index_full = active.index.len() >= offsets_max || active.time_index.len() >= times_max;
        let last_relative = active.next_offset - active.base_offset + append_records as i64;
        too_big || too_old || index_full || last_relative > i64::from(u32::MAX)
    }

    /// How much earlier than the roll time the segment at `base_offset`
    /// rolls (`segment_jitter_ms`): a share of it that differs from
    /// segment to segment and partition to partition, as Kafka draws one
    /// at random per segment, so partitions created together do not roll
    /// together. A hash, not a draw: the same segment gets the same after
    /// a restart.
    pub(super) fn roll_jitter_ms(&self, base_offset: i64) -> i64 {
        use std::hash::{Hash, Hasher};
        let span = self.config.segment_jitter_ms.min(self.config.segment_ms);
        if span <= 0 {
            return 0;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&self.dir, base_offset).hash(&mut hasher);
        (hasher.finish() % span as u64) as i64
    }

    pub(super) fn maybe_roll(
        &mut self,
        append_bytes: u64,
        append_records: u64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        if self.should_roll(append_bytes, append_records, now_ms) {
            self.roll()?;
        }
        Ok(())
    }

    /// Closes the active segment (indexes written) and starts a new one at
    /// the log end. Its fdatasync and the recovery point are left to a
    /// [`RollSync`], unless too many rolls already wait for one.
    pub(super) fn roll(&mut self) -> Result<(), StorageError> {
        assert!(
            !self.write_in_flight,
            "an append being written holds the active segment"
        );
        let new_base = self.log_end_offset();
        // Before the snapshot: recovery replays no marker below it, so the
        // aborted-transaction indexes must be whole on disk by then.
        self.persist_txn_indexes()?;
        let active = self.active_mut();
        assert!(!active.is_empty(), "only a non-empty segment rolls");
        active.trim_extension()?;
        active.cut_tail()?;
        active.finish_time_index();
        active.write_indexes_unsynced()?;
        let rolled_base = active.base_offset;
        // The state as of the new segment's base, so recovery after a crash
        // replays at most the active segment.
        // Not synced, and it may replace or prune the durable one.
        self.durable_snapshot = None;
        write_snapshot(&self.dir, &self.producers, new_base, false)?;
        let segment = Segment::create(&self.dir, new_base, &self.handles)?;
        self.segments.insert(new_base, Box::new(segment));
        self.segments
            .get_mut(&rolled_base)
            .expect("the rolled segment stays")
            .release_indexes();
        self.preallocate_active();
        tracing::debug!(dir = %self.dir.display(), new_base, "rolled segment");
        self.unsynced_rolls.push(UnsyncedRoll {
            base: rolled_base,
            next_base: new_base,
        });
        if self.unsynced_rolls.len() > UNSYNCED_ROLLS_MAX {
            // The background syncs are not keeping up: pay for these here.
            // On failure they stay listed, so no later sync moves the
            // recovery point past them.
            tracing::warn!(dir = %self.dir.display(), "rolled segments wait for fdatasync; syncing inline");
            for file in self.unsynced_files()? {
                file.sync_data()?;
            }
            self.unsynced_rolls.clear();
            self.sync_epochs_inline()?;
            write_recovery_point(&self.dir, new_base)?;
            self.mark_flushed(new_base);
        }
        assert!(self.unsynced_rolls.len() <= UNSYNCED_ROLLS_MAX);
        Ok(())
    }

    /// The whole batches from the one holding `offset` on, up to
    /// `max_bytes` (or the first batch whole if `min_one_batch`).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
    ) -> Result<ReadPlan, StorageError> {
        self.read_below(offset, max_bytes, min_one_batch, self.log_end_offset())
    }

    /// [`Self::read`] of the batches below `upper` only (a read_committed
    /// fetch stops at the last stable offset, always a batch boundary).
    pub fn read_below(
        &self,
        offset: i64,
        max_bytes: u32,
        min_one_batch: bool,
        upper: i64,
    ) -> Result<ReadPlan, StorageError> {
        let log_end = self.log_end_offset();
        assert!(upper <= log_end, "reads stop at the log end");
        if offset < self.log_start_offset || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        let mut plan = ReadPlan::default();
        if offset >= upper {
            return Ok(plan);
        }
        let budget = u64::from(max_bytes);
        let (&first_base, _) = self
            .segments
            .range(..=offset)
            .next_back()
            .expect("offset >= log start");
        for segment in self.segments.range(first_base..upper).map(|(_, s)| s) {
            let from = if segment.base_offset == first_base {
                match segment.find_batch(offset)? {
                    Some(pos) => pos,
                    None => continue,
                }
            } else {
                0
            };
            // `upper` starts a batch: stop right before it.
            let end = if upper < segment.next_offset {
                segment.find_batch(upper)?.unwrap_or(segment.size)
            } else {
                segment.size
            };
            let force_first = min_one_batch && plan.bytes == 0;
            let (len, full) =
                segment.read_range(from, end, budget - plan.bytes.min(budget), force_first)?;
            if len > 0 {
                // The slice's `Arc` keeps the file open until the send
                // is done, even if the cache closes its own handle.
                plan.slices.push(FileSlice {
                    file: segment.file()?,
                    position: from,
                    len: u32::try_from(len).expect("a read slice fits in u32"),
                });
                plan.bytes += len;
            }
            if full {
                break;
            }
        }
        Ok(plan)
    }

    /// (offset, timestamp) of the first record carrying the log's largest
    /// timestamp (ListOffsets MAX_TIMESTAMP); `None` for an empty log or one
    /// without timestamps.
    pub fn offset_of_max_timestamp(&self) -> Result<Option<(i64, i64)>, StorageError> {
        // The first segment holding the largest timestamp, as Kafka picks it.
        let mut best: Option<&Segment> = None;
        for segment in self.segments.values().filter(|s| !s.is_empty()) {
            if best.is_none_or(|b| segment.max_timestamp > b.max_timestamp) {
                best = Some(segment);
            }
        }
        match best {
            Some(segment) if segment.max_timestamp >= 0 => {
                segment.find_timestamp(segment.max_timestamp, self.log_start_offset)
            }
            _ => Ok(None),
        }
    }

    /// ListOffsets v0's offset array, as Kafka 3.x built it
    /// (`legacyFetchOffsetsBefore`): every segment's start (never below the
    /// log start) stamped with its file's mtime, then the log end stamped
    /// `now_ms` when the active segment holds anything. The walk starts at
    /// the last entry for latest (-1), the first for earliest (-2), else the
    /// newest entry stamped at or before `timestamp`, and goes back from
    /// there: at most `max` offsets, largest first. A time older than every
    /// segment gives none.
    pub fn offsets_before(
        &self,
        timestamp: i64,
        max: usize,
        now_ms: i64,
    ) -> Result<Vec<i64>, StorageError> {
        const LATEST: i64 = -1;
        const EARLIEST: i64 = -2;
        let starts = self
            .segments
            .values()
            .map(|s| s.base_offset.max(self.log_start_offset));
        let mut entries: Vec<i64> = starts.collect();
        let active_has_data = !self.active().is_empty();
        if active_has_data {
            entries.push(self.log_end_offset());
        }
        let last = match timestamp {
            LATEST => entries.len().checked_sub(1),
            EARLIEST => Some(0),
            _ => {
                // Only a time needs the mtimes: one stat per segment.
                let mut stamps = Vec::with_capacity(entries.len());
                for segment in self.segments.values() {
                    stamps.push(super::io::modified_ms(&segment.log_path())?);
                }
                if active_has_data {
                    stamps.push(now_ms);
                }
                stamps.iter().rposition(|&stamp| stamp <= timestamp)
            }
        };
        let Some(last) = last else {
            return Ok(Vec::new());
        };
        Ok(entries[..=last].iter().rev().take(max).copied().collect())
    }

    /// (offset, timestamp) of the first record at or past the log start
    /// whose timestamp is >= `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        for segment in self.segments.values() {
            if let Some(found) = segment.find_timestamp(ts, self.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The caller fsynced the active file up to `up_to_offset`.
    pub fn mark_flushed(&mut self, up_to_offset: i64) {
        let log_end = self.log_end_offset();
        self.flushed_offset = self.flushed_offset.max(up_to_offset.min(log_end));
        if self.flushed_offset == log_end {
            self.first_unflushed_ms = None;
        }
    }

    /// fdatasync (rolled segments still waiting too), write the active
    /// segment's indexes and the recovery point. The high watermark is the
    /// shard's to checkpoint, with its other logs'.
    pub fn close(&mut self) -> Result<(), StorageError> {
        self.close_files(true)?;
        self.sync_epochs_inline()?;
        self.mark_closed(true)
    }

    /// The first half of a close in a [`super::GroupClose`]: every file a
    /// close writes, to the page cache only; the recovery point is left
    /// as it is, so a crash now recovers as from any unclean stop.
    pub(super) fn close_unsynced(&mut self) -> Result<(), StorageError> {
        self.close_files(false)
    }

    /// The second half, once a filesystem sync made the first durable: the
    /// recovery point moves to the log end, for the group's next sync.
    pub(super) fn seal_after_sync(&mut self) -> Result<(), StorageError> {
        self.epoch_writes_synced = self.epoch_writes;
        self.mark_closed(false)
    }

    /// A close's last step, once everything else it wrote is durable: the
    /// recovery point moves to the log end, fsynced with its directory when
    /// `durable`, else left for the caller's filesystem sync. An equal
    /// point stands (a partition untouched since a clean open).
    fn mark_closed(&mut self, durable: bool) -> Result<(), StorageError> {
        let log_end = self.log_end_offset();
        if recovery_point_moves(&self.dir, log_end) {
            if durable {
                write_recovery_point(&self.dir, log_end)?;
            } else {
                write_recovery_point_unsynced(&self.dir, log_end)?;
            }
        }
        self.mark_flushed(log_end);
        Ok(())
    }

    /// Everything a close writes but the recovery point: cut the tail,
    /// write the active segment's indexes and the producer snapshot. With
    /// `sync_each`, each file is made durable on its own.
    fn close_files(&mut self, sync_each: bool) -> Result<(), StorageError> {
        // An append still being written (a partition closed while its
        // produce waits on the writer) is void: what it wrote so far is cut
        // here; what lands later is past the end the recovery point names.
        self.generation += 1;
        let racing = self.write_in_flight;
        // A half-done compaction round is dropped; the next open starts over.
        self.abandon_round();
        if sync_each {
            for file in self.unsynced_files()? {
                file.sync_data()?;
            }
        }
        self.unsynced_rolls.clear();
        self.persist_txn_indexes()?;
        let index_interval_bytes = self.config.index_interval_bytes;
        let active = self.active_mut();
        if racing {
            active.mark_tail_uncut();
        }
        active.trim_extension()?;
        active.cut_tail()?;
        if !racing {
            active.assert_file_len()?;
        }
        if sync_each {
            active.sync_if_written()?;
            if let Some(txn_file) = active.txn_index.file()? {
                txn_file.sync_data()?;
            }
        }
        active.finish_time_index();
        active.write_indexes_for_close(sync_each, index_interval_bytes)?;
        let log_end = self.log_end_offset();
        let snapshot = self.producers.encode_snapshot(log_end);
        let digest = SnapshotDigest::of(log_end, &snapshot);
        // A log never appended to has no producers, and its open finds the
        // same with no snapshot at all.
        let never_written = log_end == 0 && self.producers.is_empty();
        if self.durable_snapshot != Some(digest) && !never_written {
            write_snapshot_bytes(&self.dir, &snapshot, log_end, sync_each)?;
            self.durable_snapshot = sync_each.then_some(digest);
        }
        Ok(())
    }

    /// Drops the log for a deleted partition: appends in flight are void
    /// and a compaction round is dropped, but nothing is written or synced,
    /// since the caller removes the directory.
    pub fn discard(&mut self) {
        self.generation += 1;
        self.abandon_round();
    }

    /// Removes the partition directory and everything in it.
    pub fn delete(self) -> Result<(), StorageError> {
        fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

/// Whether a close must write `log_end` as the recovery point: not when
/// the file holds it already, nor for a log never appended to, whose
/// missing file reads as 0 too.
fn recovery_point_moves(dir: &Path, log_end: i64) -> bool {
    match stored_recovery_point(dir) {
        Some(stored) => stored != log_end,
        None => log_end != 0,
    }
}

pub(super) fn batch_bytes<'a>(records: &'a Bytes, info: &BatchInfo) -> &'a [u8] {
    &records[info.offset..info.offset + info.total_len]
}

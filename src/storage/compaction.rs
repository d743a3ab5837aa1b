//! Log compaction (`cleanup.policy=compact`): closed segments keep only the
//! latest record of each key, as Kafka's log cleaner does.
//!
//! A cleaning round runs in two phases, spread over as many pieces of
//! work ([`PartitionLog::take_compaction_work`]) as its byte budget needs:
//!
//! 1. Map: the keys of every record from the first dirty offset (the
//!    `cleaner-checkpoint`) to the log end, active segment included, into
//!    key -> newest offset.
//! 2. Rewrite: every closed segment from the log start, oldest first, into
//!    `<base>.log.cleaned`, keeping each surviving record in its original
//!    batch; then fsync, rename over `<base>.log`, and rebuild the indexes.
//!
//! Both phases' reads, filtering (decompression included) and writes, and
//! every fsync, run on a blocking thread, not the shard's:
//! [`PartitionLog::take_compaction_work`] hands out the next piece
//! ([`CompactionWork`]: a bounded key scan, a bounded rewrite step, a
//! finished rewrite's fdatasync, or the round's directory fsync and
//! checkpoint) and
//! [`PartitionLog::finish_compaction_work`] takes its answer back on the
//! shard: it tracks the written batches, and swaps a synced rewrite in by
//! rename there, so no read ever sees a path and its segment disagree. A
//! scan step takes the key map and gives it back; rewrite steps share it
//! read-only (phase 2 only reads it). The shard itself only starts rounds
//! and rewrites (a file create) and looks up where a scan starts.
//! The swapped-in segment's indexes are written without fsync, as a roll
//! writes them: a crash leaves them short or empty, which only slows
//! lookups (they scan on from an earlier position).
//!
//! # Invariants
//!
//! - Offsets never move: a kept batch keeps its baseOffset, lastOffsetDelta
//!   and every record's offsetDelta (only batchLength, recordsCount and the
//!   CRC change), so offsets stay strictly increasing with gaps, and the log
//!   start and end offsets are untouched. Record bytes are copied, never
//!   re-encoded.
//! - A record goes only if the map holds a newer offset for its key (a
//!   record below the log end), if it has no key (Kafka refuses those on a
//!   compacted topic), or if it is a tombstone (null value) in a segment
//!   cleaned more than `delete_retention_ms` ago.
//! - The active segment is read, never rewritten, and neither is a closed
//!   segment from the first one holding a record younger than
//!   `min_compaction_lag_ms` on (a round's `end`). Control batches
//!   (transaction markers) and batches whose records cannot be read are
//!   kept whole.
//! - Transactions: the key map stops at the last stable offset and skips
//!   aborted transactions' records, so neither an open nor an aborted
//!   transaction's record can make a committed one go.
//! - Each scan or rewrite step reads at most about the budget it is given
//!   ([`COMPACTION_PASS_BYTES_MAX`] on a shard; always at least one batch); the key map holds at most about
//!   [`COMPACTION_MAP_BYTES_MAX`] bytes, and a round covers what fits.
//! - In-flight fetches keep the replaced file's `Arc<File>`: the old inode
//!   lives on until they finish. A crash leaves at worst a `.cleaned` file
//!   (deleted at open) or a segment without indexes (rebuilt at open).
//! - While work is out, the round does nothing else; a truncation or a
//!   close drops the round, and the work's answer then finds none (its
//!   writes went to a `.cleaned` file already unlinked).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::compression::{compress, decompress, Codec, DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT};
use crate::record::{
    recompute_crc, BatchHeader, Record, Records, BATCH_HEADER_LEN, BATCH_LENGTH_OFFSET,
    LOG_OVERHEAD, RECORDS_COUNT_OFFSET,
};

use super::io::{modified_ms, pwrite_all, same_dir, sync_dir, write_atomic};
use super::segment::TIME_INDEX_SUFFIX;
use super::segment::{cleaned_path, segment_path, Segment, INDEX_SUFFIX, LOG_SUFFIX};
use super::{AbortedTxn, PartitionLog, StorageError};

/// Bytes of log one scan or rewrite step reads, so one piece of work holds
/// a blocking thread (and its round) for a bounded time.
pub const COMPACTION_PASS_BYTES_MAX: u64 = 8 << 20;
/// Memory of one round's key map; a round that fills it cleans up to the
/// offset it reached and the next round goes on from there.
pub const COMPACTION_MAP_BYTES_MAX: usize = 64 << 20;
/// What one map entry costs beyond its key bytes (hash table slot, Vec).
const MAP_ENTRY_OVERHEAD_BYTES: usize = 64;
/// File in the partition dir holding the offset below which every record
/// was cleaned at least once (Kafka's cleaner-offset-checkpoint).
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";

/// What one [`PartitionLog::compact`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Log bytes read, keys or rewrites.
    pub bytes_read: u64,
    /// Segments rewritten and swapped in.
    pub segments_cleaned: usize,
    /// Records dropped from the rewritten segments.
    pub records_dropped: u64,
    /// A round is under way and wants another call soon.
    pub more_work: bool,
}

/// Compaction progress of one partition, kept across calls.
#[derive(Default)]
pub struct Cleaner {
    /// Offsets below this were cleaned at least once; `None` until read
    /// from [`CLEANER_CHECKPOINT_FILE`].
    clean_offset: Option<i64>,
    /// When a kept tombstone may go: a round is due then even without new
    /// dirty bytes. Unknown after a restart (the next round learns it).
    tombstones_due_ms: Option<i64>,
    /// Boxed: only compacted logs ever have one.
    round: Option<Box<Round>>,
    /// A [`CompactionWork`] is out; the round waits for its answer.
    work_out: bool,
}

/// The next piece of a round for the blocking thread: run it with
/// [`CompactionWork::run`], answer with [`PartitionLog::finish_compaction_work`].
pub struct CompactionWork(Work);

enum Work {
    /// Keys of the next batches from where the map stopped.
    Scan(ScanStep),
    /// Survivors of the next batches of the segment being rewritten.
    Rewrite(RewriteStep),
    /// The finished rewrite's data, before its rename.
    Sync(Arc<fs::File>),
    /// The round's renames (a directory fsync), then the new clean offset.
    Checkpoint {
        dir: PathBuf,
        /// The directory's inode when the log opened it: a topic deleted
        /// and recreated meanwhile has a new directory at the same path,
        /// which must not get this log's checkpoint.
        dir_ino: u64,
        clean_offset: i64,
    },
}

/// What a [`CompactionWork`] did, for [`PartitionLog::finish_compaction_work`].
pub struct WorkDone(Result<Done, StorageError>);

enum Done {
    Scanned(Scanned),
    Rewritten(Rewritten),
    Synced,
    Checkpointed { clean_offset: i64 },
}

impl CompactionWork {
    pub fn run(self) -> WorkDone {
        WorkDone(self.0.run())
    }
}

impl Work {
    fn run(self) -> Result<Done, StorageError> {
        match self {
            Work::Scan(step) => step.run().map(Done::Scanned),
            Work::Rewrite(step) => step.run().map(Done::Rewritten),
            Work::Sync(file) => {
                file.sync_all()?;
                Ok(Done::Synced)
            }
            Work::Checkpoint {
                dir,
                dir_ino,
                clean_offset,
            } => {
                // The log went away (deleted, maybe recreated): nothing to record.
                if same_dir(&dir, dir_ino)? {
                    sync_dir(&dir)?;
                    let path = dir.join(CLEANER_CHECKPOINT_FILE);
                    write_atomic(&path, clean_offset.to_string().as_bytes())?;
                }
                Ok(Done::Checkpointed { clean_offset })
            }
        }
    }
}

/// One bounded key scan, owning what it reads: the segments from the one
/// holding `scanned_to`, and the map it fills.
struct ScanStep {
    segments: Vec<ScanSegment>,
    /// The last stable offset: no key at or past it goes in the map.
    limit: i64,
    scanned_to: i64,
    map: Arc<KeyMap>,
    map_bytes: usize,
    /// Aborted transactions from the first segment on: their records never
    /// shadow committed ones.
    aborted: Vec<AbortedTxn>,
    budget: u64,
}

struct ScanSegment {
    file: Arc<fs::File>,
    /// The first batch to read (the one holding `scanned_to` in the first
    /// segment, else 0).
    from: u64,
    size: u64,
    /// The next segment's base, or the log end: where a whole read leaves
    /// `scanned_to` (a compacted segment's own last offset may fall short).
    end: i64,
}

/// A scan step's answer: the map back, and how far it got.
struct Scanned {
    map: Arc<KeyMap>,
    map_bytes: usize,
    scanned_to: i64,
    map_done: bool,
    bytes_read: u64,
}

impl ScanStep {
    fn run(self) -> Result<Scanned, StorageError> {
        let mut done = Scanned {
            map: self.map,
            map_bytes: self.map_bytes,
            scanned_to: self.scanned_to,
            map_done: false,
            bytes_read: 0,
        };
        let mut budget = self.budget;
        for segment in &self.segments {
            if budget == 0 || done.scanned_to >= self.limit || done.map_done {
                break;
            }
            let mut pos = segment.from;
            while pos < segment.size && budget > 0 && !done.map_done {
                let (header, batch) = read_batch(&segment.file, pos, segment.size)?;
                if header.base_offset >= self.limit {
                    done.scanned_to = self.limit;
                    break;
                }
                let len = batch.len() as u64;
                pos += len;
                budget = budget.saturating_sub(len);
                done.bytes_read += len;
                if !aborted(&self.aborted, &header) {
                    let map = Arc::get_mut(&mut done.map).expect("a scan owns the map");
                    done.map_done = add_keys(map, &mut done.map_bytes, &header, &batch);
                }
                done.scanned_to = header.last_offset() + 1;
            }
            if pos >= segment.size {
                done.scanned_to = done.scanned_to.max(segment.end).min(self.limit);
            }
        }
        done.map_done |= done.scanned_to >= self.limit;
        Ok(done)
    }
}

/// Whether `header`'s batch belongs to a transaction that was aborted (its
/// ABORT marker, after the batch, names it).
fn aborted(txns: &[AbortedTxn], header: &BatchHeader) -> bool {
    if !header.is_transactional() || header.is_control() {
        return false;
    }
    txns.iter().any(|t| {
        t.producer_id == header.producer_id
            && t.first_offset <= header.base_offset
            && header.base_offset <= t.last_offset
    })
}

/// Adds the keys of one data batch to `map`; true once the map is full
/// ([`COMPACTION_MAP_BYTES_MAX`]). Unreadable batches add nothing.
fn add_keys(map: &mut KeyMap, map_bytes: &mut usize, header: &BatchHeader, batch: &[u8]) -> bool {
    if let Some(section) = readable_records(batch, header) {
        if let Some(records) = split_records(&section, header.records_count) {
            for (record, _) in records {
                let Some(key) = record.key else { continue };
                let offset = header.base_offset + i64::from(record.offset_delta);
                match map.get_mut(key) {
                    Some(newest) => *newest = (*newest).max(offset),
                    None => {
                        *map_bytes += key.len() + MAP_ENTRY_OVERHEAD_BYTES;
                        map.insert(key.to_vec(), offset);
                    }
                }
            }
        }
    }
    *map_bytes >= COMPACTION_MAP_BYTES_MAX
}

/// One bounded rewrite step, owning all it reads and writes.
struct RewriteStep {
    base: i64,
    source: Arc<fs::File>,
    /// The source segment's bytes end here (whole batches).
    source_size: u64,
    from: u64,
    out: Arc<fs::File>,
    /// Where the survivors go: the `.cleaned` file's size so far.
    out_size: u64,
    map: Arc<KeyMap>,
    drop_tombstones: bool,
    budget: u64,
}

/// A rewrite step's answer.
struct Rewritten {
    base: i64,
    /// Headers of the batches written, in file order from `out_size`.
    kept: Vec<BatchHeader>,
    /// Next batch to read in the source.
    next: u64,
    bytes_read: u64,
    records_dropped: u64,
    kept_tombstone: bool,
}

impl RewriteStep {
    fn run(self) -> Result<Rewritten, StorageError> {
        let mut done = Rewritten {
            base: self.base,
            kept: Vec::new(),
            next: self.from,
            bytes_read: 0,
            records_dropped: 0,
            kept_tombstone: false,
        };
        let mut survivors: Vec<Vec<u8>> = Vec::new();
        let mut budget = self.budget;
        while done.next < self.source_size && budget > 0 {
            let (header, batch) = read_batch(&self.source, done.next, self.source_size)?;
            let len = batch.len() as u64;
            done.next += len;
            budget = budget.saturating_sub(len);
            done.bytes_read += len;
            let filtered = filter_batch(&batch, &header, &self.map, self.drop_tombstones);
            done.records_dropped += filtered.dropped;
            done.kept_tombstone |= filtered.kept_tombstone;
            match filtered.kept {
                Kept::Whole => {
                    done.kept.push(header);
                    survivors.push(batch);
                }
                Kept::Rebuilt(bytes) => {
                    done.kept
                        .push(BatchHeader::parse(&bytes).expect("a rebuilt batch parses"));
                    survivors.push(bytes);
                }
                Kept::Nothing => {}
            }
        }
        let bufs: Vec<&[u8]> = survivors.iter().map(Vec::as_slice).collect();
        pwrite_all(&self.out, self.out_size, &bufs)?;
        Ok(done)
    }
}

/// Key -> newest offset.
type KeyMap = HashMap<Vec<u8>, i64>;

/// One cleaning round.
struct Round {
    /// Key -> newest offset seen in `[clean_offset, scanned_to)`; shared
    /// read-only with rewrite steps once built.
    map: Arc<KeyMap>,
    map_bytes: usize,
    /// Offsets below this have been read into the map.
    scanned_to: i64,
    /// Phase 1 is over: the log end was reached or the map is full.
    map_done: bool,
    /// The clean offset when the round started: segments that end at or
    /// below it were cleaned before, and their tombstones age.
    cleaned_before: i64,
    /// Segments with a base at or above this are still to rewrite.
    next_base: i64,
    /// Where the segments this round may rewrite end (`cleanable_end` at
    /// its start): the active segment, or the first segment holding a
    /// record younger than `min_compaction_lag_ms`.
    end: i64,
    rewrite: Option<Rewrite>,
    /// A finished rewrite waiting for its fdatasync, then its swap-in.
    swap: Option<Rewrite>,
    /// Every segment is rewritten: the round waits for its checkpoint.
    finished: bool,
    tombstones_due_ms: Option<i64>,
}

/// One segment being rewritten.
struct Rewrite {
    /// The replacement, at [`cleaned_path`].
    out: Box<Segment>,
    /// Next batch to read in the source segment.
    src_pos: u64,
    /// Tombstones here are past `delete_retention_ms`.
    drop_tombstones: bool,
    /// When the segment was first cleaned; kept as the new file's mtime.
    cleaned_at_ms: i64,
    kept_tombstone: bool,
}

impl PartitionLog {
    /// Moves a `cleanup.policy=compact` log's cleaning on (a no-op
    /// otherwise): starts a round when enough closed bytes are dirty
    /// (`min_cleanable_dirty_ratio`) or a kept tombstone is due, and the
    /// round's next rewrite once its map is built. The reading and writing
    /// is [`Self::take_compaction_work`]'s, for the blocking thread.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionStats, StorageError> {
        if !self.config.cleanup_compact {
            self.abandon_round();
            return Ok(CompactionStats::default());
        }
        if self.cleaner.work_out {
            return Ok(CompactionStats::default());
        }
        let clean_offset = self.clean_offset();
        let mut round = match self.cleaner.round.take() {
            Some(round) => round,
            None if self.cleanable(clean_offset, now_ms) => {
                Box::new(Round::new(clean_offset, self.cleanable_end(now_ms)))
            }
            None => return Ok(CompactionStats::default()),
        };
        let result = self.run_round(&mut round, now_ms);
        self.cleaner.round = Some(round);
        if result.is_err() {
            self.abandon_round();
        }
        let stats = CompactionStats {
            more_work: self.cleaner.round.is_some(),
            ..CompactionStats::default()
        };
        result.map(|()| stats)
    }

    /// Drops the round under way and its half-written or unswapped file,
    /// if any. Work still out then finds no round to answer.
    pub(super) fn abandon_round(&mut self) {
        let Some(round) = self.cleaner.round.take() else {
            return;
        };
        for rewrite in [round.rewrite, round.swap].into_iter().flatten() {
            remove_if_exists(&cleaned_path(&self.dir, rewrite.out.base_offset));
        }
    }

    /// The next piece of the round for the blocking thread, if the round
    /// waits for one: a key scan or a rewrite step reading about `budget`
    /// bytes (at least one batch), a finished rewrite's data sync, or the
    /// round's checkpoint. Answer with [`Self::finish_compaction_work`].
    pub fn take_compaction_work(
        &mut self,
        budget: u64,
    ) -> Result<Option<CompactionWork>, StorageError> {
        if self.cleaner.work_out || self.cleaner.round.is_none() {
            return Ok(None);
        }
        let work = match self.next_work(budget) {
            Ok(Some(work)) => work,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.abandon_round();
                return Err(e);
            }
        };
        self.cleaner.work_out = true;
        Ok(Some(CompactionWork(work)))
    }

    fn next_work(&mut self, budget: u64) -> Result<Option<Work>, StorageError> {
        let round = self.cleaner.round.as_ref().expect("a round");
        if !round.map_done {
            return self.scan_work(budget).map(Some);
        }
        if let Some(swap) = &round.swap {
            return Ok(Some(Work::Sync(swap.out.file()?)));
        }
        if round.finished {
            return Ok(Some(Work::Checkpoint {
                dir: self.dir.clone(),
                dir_ino: self.dir_ino,
                clean_offset: round
                    .scanned_to
                    .min(self.active().base_offset)
                    .min(round.end),
            }));
        }
        let Some(rewrite) = &round.rewrite else {
            return Ok(None);
        };
        let base = rewrite.out.base_offset;
        let Some(source) = self.segments.get(&base) else {
            // Retention deleted the segment meanwhile.
            remove_if_exists(&cleaned_path(&self.dir, base));
            let round = self.cleaner.round.as_mut().expect("a round");
            round.rewrite = None;
            round.next_base = base + 1;
            return Ok(None);
        };
        Ok(Some(Work::Rewrite(RewriteStep {
            base,
            source: source.file()?,
            source_size: source.size,
            from: rewrite.src_pos,
            out: rewrite.out.file()?,
            out_size: rewrite.out.size,
            map: Arc::clone(&round.map),
            drop_tombstones: rewrite.drop_tombstones,
            budget,
        })))
    }

    /// A key scan from where the map stopped: the segments it may read
    /// within `budget`, and the map, lent until the answer.
    fn scan_work(&mut self, budget: u64) -> Result<Work, StorageError> {
        // Keys of open transactions may still be aborted: the map stops at
        // the last stable offset, as Kafka's cleaner stops at its first
        // uncleanable offset.
        let limit = self.last_stable_offset();
        let log_start = self.log_start_offset;
        let round = self.cleaner.round.as_mut().expect("a round");
        round.scanned_to = round.scanned_to.max(log_start);
        let scanned_to = round.scanned_to;
        let map = std::mem::take(&mut round.map);
        let map_bytes = round.map_bytes;
        let first_base = *self
            .segments
            .range(..=scanned_to)
            .next_back()
            .expect("scanned_to >= log start")
            .0;
        let mut segments = Vec::new();
        let mut planned = 0u64;
        for (&base, segment) in self.segments.range(first_base..limit.max(first_base + 1)) {
            if planned >= budget {
                break;
            }
            let from = if base == first_base {
                segment.find_batch(scanned_to)?.unwrap_or(segment.size)
            } else {
                0
            };
            planned += segment.size - from;
            segments.push(ScanSegment {
                file: segment.file()?,
                from,
                size: segment.size,
                end: self.segment_end(base),
            });
        }
        let aborted = self
            .segments
            .range(first_base..)
            .flat_map(|(_, s)| s.txn_index.entries().iter().copied())
            .collect();
        Ok(Work::Scan(ScanStep {
            segments,
            limit,
            scanned_to,
            map,
            map_bytes,
            aborted,
            budget,
        }))
    }

    /// A [`CompactionWork`] came back: take a scan's map back, track a
    /// rewrite step's batches (a finished rewrite then waits for its sync),
    /// swap a synced rewrite in, or record the round's clean offset. A
    /// failure drops the round (the next one starts over). Nothing happens
    /// if the round went away meanwhile (a truncation, a close).
    pub fn finish_compaction_work(
        &mut self,
        done: WorkDone,
    ) -> Result<CompactionStats, StorageError> {
        assert!(self.cleaner.work_out, "compaction work was out");
        self.cleaner.work_out = false;
        let mut stats = CompactionStats::default();
        if self.cleaner.round.is_none() {
            return Ok(stats);
        }
        let applied = done.0.and_then(|done| self.apply_work(done, &mut stats));
        if applied.is_err() {
            self.abandon_round();
        }
        stats.more_work = self.cleaner.round.is_some();
        applied.map(|()| stats)
    }

    fn apply_work(&mut self, done: Done, stats: &mut CompactionStats) -> Result<(), StorageError> {
        let round = self.cleaner.round.as_mut().expect("the round");
        match done {
            Done::Scanned(scanned) => {
                round.map = scanned.map;
                round.map_bytes = scanned.map_bytes;
                round.scanned_to = scanned.scanned_to;
                round.map_done = scanned.map_done;
                stats.bytes_read += scanned.bytes_read;
                Ok(())
            }
            Done::Rewritten(rewritten) => self.track_rewritten(rewritten, stats),
            Done::Synced => {
                let rewrite = round.swap.take().expect("a synced rewrite");
                self.swap_in(rewrite)?;
                stats.segments_cleaned = 1;
                Ok(())
            }
            Done::Checkpointed { clean_offset } => {
                let round = self.cleaner.round.take().expect("the round");
                self.finish_round(*round, clean_offset);
                Ok(())
            }
        }
    }

    /// The clean offset as stored, read from the checkpoint once.
    fn stored_clean_offset(&mut self) -> i64 {
        let start = self.log_start_offset;
        *self.cleaner.clean_offset.get_or_insert_with(|| {
            fs::read_to_string(self.dir.join(CLEANER_CHECKPOINT_FILE))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(start)
        })
    }

    /// The log's tail was cut (a follower truncating): the round under way
    /// may hold segments that are gone, and a clean offset past the new end
    /// would call batches written later clean.
    pub(super) fn truncate_cleaner(&mut self) -> Result<(), StorageError> {
        self.abandon_round();
        let end = self.log_end_offset();
        if self.stored_clean_offset() > end {
            let path = self.dir.join(CLEANER_CHECKPOINT_FILE);
            if let Err(e) = write_atomic(&path, end.to_string().as_bytes()) {
                // A full disk: without the file the next start counts the
                // whole log dirty, which only costs a cleaning round.
                tracing::warn!(path = %path.display(), error = %e, "cannot lower the cleaner checkpoint; removing it");
                remove_if_exists(&path);
            }
            self.cleaner.clean_offset = Some(end);
        }
        Ok(())
    }

    /// The checkpointed clean offset, read once, within the log's range.
    fn clean_offset(&mut self) -> i64 {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        let stored = self.stored_clean_offset();
        if stored > end {
            start
        } else {
            stored.max(start)
        }
    }

    /// Whether a round is worth starting now: a kept tombstone is due, or
    /// of the closed segments old enough to rewrite, the dirty ones hold
    /// `min_cleanable_dirty_ratio` of the bytes, or the oldest dirty one
    /// waited past `max_compaction_lag_ms` (Kafka's cleaner compacts such a
    /// log whatever its ratio).
    fn cleanable(&self, clean_offset: i64, now_ms: i64) -> bool {
        if self.segments.len() < 2 {
            return false;
        }
        if self
            .cleaner
            .tombstones_due_ms
            .is_some_and(|due| now_ms >= due)
        {
            return true;
        }
        let end = self.cleanable_end(now_ms);
        let (mut total, mut dirty) = (0u64, 0u64);
        let mut oldest_dirty_ms: Option<i64> = None;
        for (base, segment) in self.closed_segments().take_while(|(base, _)| *base < end) {
            total += segment.size;
            if self.segment_end(base) > clean_offset {
                dirty += segment.size;
                let first_ms = segment.rolling_base_ms.unwrap_or(segment.max_timestamp);
                oldest_dirty_ms.get_or_insert(first_ms);
            }
        }
        let overdue = oldest_dirty_ms.is_some_and(|first_ms| {
            first_ms >= 0 && now_ms.saturating_sub(first_ms) > self.config.max_compaction_lag_ms
        });
        dirty > 0
            && (overdue || dirty as f64 >= self.config.min_cleanable_dirty_ratio * total as f64)
    }

    /// Where the closed segments a round may rewrite now end: the active
    /// segment, or the first segment holding a record younger than
    /// `min_compaction_lag_ms` (by its largest timestamp, as Kafka's
    /// cleaner judges it), so every record stays uncompacted that long.
    fn cleanable_end(&self, now_ms: i64) -> i64 {
        let active = self.active().base_offset;
        let lag = self.config.min_compaction_lag_ms;
        if lag <= 0 {
            return active;
        }
        let youngest_allowed = now_ms.saturating_sub(lag);
        self.closed_segments()
            .find(|(_, segment)| segment.max_timestamp > youngest_allowed)
            .map_or(active, |(base, _)| base)
    }

    fn closed_segments(&self) -> impl Iterator<Item = (i64, &Segment)> {
        let active_base = self.active().base_offset;
        self.segments
            .range(..active_base)
            .map(|(b, s)| (*b, s.as_ref()))
    }

    /// Where the segment at `base` ends: the next segment's base, or the
    /// log end for the active one (a compacted segment's own next offset
    /// may fall short of it).
    fn segment_end(&self, base: i64) -> i64 {
        self.segments
            .range(base + 1..)
            .next()
            .map_or(self.log_end_offset(), |(b, _)| *b)
    }

    /// Starts the round's next rewrite once the map is built and nothing
    /// else is under way; scans, rewrite steps and syncs are work for the
    /// blocking thread ([`Self::take_compaction_work`]).
    fn run_round(&mut self, round: &mut Round, now_ms: i64) -> Result<(), StorageError> {
        let idle = round.rewrite.is_none() && round.swap.is_none() && !round.finished;
        if round.map_done && idle {
            match self.next_to_rewrite(round) {
                Some(base) => round.rewrite = Some(self.start_rewrite(round, base, now_ms)?),
                None => round.finished = true,
            }
        }
        Ok(())
    }

    /// The next closed segment of the round: below the part the map
    /// covers, and old enough to rewrite.
    fn next_to_rewrite(&self, round: &Round) -> Option<i64> {
        let limit = round
            .scanned_to
            .min(self.active().base_offset)
            .min(round.end);
        let base = *self.segments.range(round.next_base..).next()?.0;
        (base < limit).then_some(base)
    }

    fn start_rewrite(
        &self,
        round: &Round,
        base: i64,
        now_ms: i64,
    ) -> Result<Rewrite, StorageError> {
        let source = &self.segments[&base];
        let cleaned_before = self.segment_end(base) <= round.cleaned_before;
        let cleaned_at_ms = if cleaned_before {
            modified_ms(&source.log_path()).unwrap_or(now_ms)
        } else {
            now_ms
        };
        let drop_tombstones = cleaned_before
            && now_ms.saturating_sub(cleaned_at_ms) > self.config.delete_retention_ms;
        Ok(Rewrite {
            out: Box::new(Segment::create_cleaned(&self.dir, base, &self.handles)?),
            src_pos: 0,
            drop_tombstones,
            cleaned_at_ms,
            kept_tombstone: false,
        })
    }

    /// Phase 2, on the shard: the batches a rewrite step wrote join the
    /// `.cleaned` segment; once the source is read whole, the rewrite waits
    /// for its sync.
    fn track_rewritten(
        &mut self,
        done: Rewritten,
        stats: &mut CompactionStats,
    ) -> Result<(), StorageError> {
        let interval = self.config.index_interval_bytes;
        let delete_retention_ms = self.config.delete_retention_ms;
        let round = self.cleaner.round.as_mut().expect("the round");
        let rewrite = round.rewrite.as_mut().expect("a rewrite under way");
        assert_eq!(rewrite.out.base_offset, done.base, "the step's segment");
        for header in &done.kept {
            let out = &mut rewrite.out;
            out.track_batch(out.size, header, interval);
        }
        rewrite.src_pos = done.next;
        rewrite.kept_tombstone |= done.kept_tombstone;
        stats.bytes_read += done.bytes_read;
        stats.records_dropped += done.records_dropped;
        let source_done = self
            .segments
            .get(&done.base)
            .is_none_or(|source| rewrite.src_pos >= source.size);
        if !source_done {
            return Ok(());
        }
        let mut rewrite = round.rewrite.take().expect("the rewrite");
        if rewrite.kept_tombstone {
            let due = rewrite
                .cleaned_at_ms
                .saturating_add(delete_retention_ms)
                .saturating_add(1);
            round.tombstones_due_ms = Some(round.tombstones_due_ms.map_or(due, |d| d.min(due)));
        }
        round.next_base = done.base + 1;
        rewrite.out.finish_time_index();
        let cleaned_at = UNIX_EPOCH + Duration::from_millis(rewrite.cleaned_at_ms.max(0) as u64);
        rewrite.out.file()?.set_modified(cleaned_at)?;
        round.swap = Some(rewrite);
        Ok(())
    }

    /// Makes the finished, synced rewrite the segment: drop the old
    /// indexes, rename over the old log, write the new indexes. An empty
    /// result goes away unless it is the first segment (which holds the log
    /// start); a source retention deleted while the sync was out takes its
    /// rewrite with it. The directory fsync comes with the checkpoint.
    fn swap_in(&mut self, rewrite: Rewrite) -> Result<(), StorageError> {
        let mut out = rewrite.out;
        let base = out.base_offset;
        if !self.segments.contains_key(&base) {
            remove_if_exists(&cleaned_path(&self.dir, base));
            return Ok(());
        }
        // Old indexes first: a crash before the new ones are written leaves
        // a log without indexes, which open rebuilds by scanning.
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_exists(&segment_path(&self.dir, base, suffix));
        }
        fs::rename(
            cleaned_path(&self.dir, base),
            segment_path(&self.dir, base, LOG_SUFFIX),
        )?;
        out.renamed_from_cleaned();
        // The first segment stays even when emptied: it holds the log start.
        if out.is_empty() && self.segments.keys().next() != Some(&base) {
            self.segments.remove(&base);
            out.delete_files()?;
        } else {
            // The log file is swapped in: the segment must follow it even if
            // its indexes cannot be written (a full disk), which open rebuilds.
            if let Err(e) = out.write_indexes_unsynced() {
                tracing::warn!(dir = %self.dir.display(), base, error = %e, "compacted segment's indexes not written; open rebuilds them");
            }
            // A rolled segment (compaction rewrites no other) reads its
            // indexes from the files.
            if self.segments.keys().next_back() > Some(&base) {
                out.release_indexes();
            }
            self.segments.insert(base, out);
        }
        self.check_invariants();
        tracing::debug!(dir = %self.dir.display(), base, "compacted segment");
        Ok(())
    }

    /// The round's checkpoint is durable: how far it cleaned.
    fn finish_round(&mut self, round: Round, clean_offset: i64) {
        self.cleaner.clean_offset = Some(clean_offset);
        self.cleaner.tombstones_due_ms = round.tombstones_due_ms;
        tracing::info!(
            dir = %self.dir.display(),
            clean_offset,
            keys = round.map.len(),
            size = self.size_bytes(),
            "compaction round done"
        );
    }
}

impl Round {
    fn new(clean_offset: i64, end: i64) -> Self {
        Round {
            map: Arc::new(HashMap::new()),
            map_bytes: 0,
            scanned_to: clean_offset,
            map_done: false,
            cleaned_before: clean_offset,
            next_base: 0,
            end,
            rewrite: None,
            swap: None,
            finished: false,
            tombstones_due_ms: None,
        }
    }
}

/// The header and bytes of the batch at `pos` in a file of whole batches
/// up to `size`.
fn read_batch(
    file: &fs::File,
    pos: u64,
    size: u64,
) -> Result<(BatchHeader, Vec<u8>), StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("{what} at position {pos}"));
    if pos + BATCH_HEADER_LEN as u64 > size {
        return Err(corrupt("batch header past the end"));
    }
    let mut head = [0u8; BATCH_HEADER_LEN];
    file.read_exact_at(&mut head, pos)?;
    let header = BatchHeader::parse(&head).map_err(|e| corrupt(&e.to_string()))?;
    if pos + header.total_len() as u64 > size {
        return Err(corrupt("batch past the end"));
    }
    let mut batch = vec![0u8; header.total_len()];
    file.read_exact_at(&mut batch, pos)?;
    Ok((header, batch))
}

/// The records section of a data batch, decompressed when needed; `None`
/// for control batches and sections that cannot be read (kept whole).
fn readable_records<'a>(batch: &'a [u8], header: &BatchHeader) -> Option<Cow<'a, [u8]>> {
    if header.is_control() {
        return None;
    }
    let section = batch.get(BATCH_HEADER_LEN..)?;
    if !header.is_compressed() {
        return Some(Cow::Borrowed(section));
    }
    let codec = Codec::from_attributes(header.attributes).ok()?;
    decompress(codec, section, DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT)
        .ok()
        .map(Cow::Owned)
}

/// Every record of a records section with its raw bytes (length prefix
/// included); `None` unless exactly `count` records parse.
fn split_records(section: &[u8], count: i32) -> Option<Vec<(Record<'_>, &[u8])>> {
    let mut records = Records::new(section, count);
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    loop {
        let start = section.len() - records.remaining();
        match records.next() {
            None => break,
            Some(Err(_)) => return None,
            Some(Ok(record)) => {
                let end = section.len() - records.remaining();
                out.push((record, &section[start..end]));
            }
        }
    }
    (out.len() == usize::try_from(count).ok()?).then_some(out)
}

/// What survives of one batch.
enum Kept {
    Whole,
    Rebuilt(Vec<u8>),
    Nothing,
}

struct Filtered {
    kept: Kept,
    dropped: u64,
    kept_tombstone: bool,
}

/// Keeps the records of `batch` that are their key's newest in `map` (or
/// newer than it), minus expired tombstones; see the module invariants.
fn filter_batch(
    batch: &[u8],
    header: &BatchHeader,
    map: &HashMap<Vec<u8>, i64>,
    drop_tombstones: bool,
) -> Filtered {
    let whole = |kept_tombstone| Filtered {
        kept: Kept::Whole,
        dropped: 0,
        kept_tombstone,
    };
    let Some(section) = readable_records(batch, header) else {
        return whole(false);
    };
    let Some(records) = split_records(&section, header.records_count) else {
        return whole(false);
    };
    let survives = |record: &Record<'_>| {
        let Some(key) = record.key else {
            return false;
        };
        let offset = header.base_offset + i64::from(record.offset_delta);
        let superseded = map.get(key).is_some_and(|&newest| newest > offset);
        let expired_tombstone = drop_tombstones && record.value.is_none();
        !(superseded || expired_tombstone)
    };
    let kept: Vec<&(Record<'_>, &[u8])> = records.iter().filter(|(r, _)| survives(r)).collect();
    let kept_tombstone = kept.iter().any(|(r, _)| r.value.is_none());
    let dropped = (records.len() - kept.len()) as u64;
    let kept = if dropped == 0 {
        Kept::Whole
    } else if kept.is_empty() {
        Kept::Nothing
    } else {
        let raw: Vec<u8> = kept
            .iter()
            .flat_map(|(_, bytes)| bytes.iter().copied())
            .collect();
        match rebuild_batch(batch, header, &raw, kept.len()) {
            Some(bytes) => Kept::Rebuilt(bytes),
            None => {
                let any_tombstone = records.iter().any(|(r, _)| r.value.is_none());
                return whole(any_tombstone);
            }
        }
    };
    Filtered {
        kept,
        dropped,
        kept_tombstone,
    }
}

/// `batch`'s header with `records` (raw, uncompressed, `count` of them)
/// as its records, compressed again in the batch's codec; batchLength,
/// recordsCount and the CRC recomputed. `None` if the codec is unknown.
fn rebuild_batch(
    batch: &[u8],
    header: &BatchHeader,
    records: &[u8],
    count: usize,
) -> Option<Vec<u8>> {
    let mut out = batch[..BATCH_HEADER_LEN].to_vec();
    if header.is_compressed() {
        let codec = Codec::from_attributes(header.attributes).ok()?;
        compress(codec, records, None, &mut out);
    } else {
        out.extend_from_slice(records);
    }
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).ok()?;
    let count = i32::try_from(count).ok()?;
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&count.to_be_bytes());
    recompute_crc(&mut out);
    Some(out)
}

/// Best effort: a file that cannot be removed now is removed at next open.
fn remove_if_exists(path: &Path) {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove");
        }
        _ => {}
    }
}

//! The replica side of a partition log: the leader stamps its epoch on what
//! it appends, a follower appends the leader's batches byte for byte at the
//! leader's offsets, and both keep the leader-epoch cache that tells a
//! follower where its log diverges (see `truncate.rs` for the cut).
//!
//! A log that neither [`PartitionLog::become_leader`] nor
//! [`PartitionLog::become_follower`] touched (a single-node broker) stamps
//! nothing: batches keep the bytes their client sent.

use bytes::Bytes;

use crate::record::{parse_marker, validate_batches, BatchHeader, BatchInfo};

use super::log::batch_bytes;
use super::segment::PendingBatch;
use super::{AppendResult, PartitionLog, StorageError};

impl PartitionLog {
    /// The epoch stamped on appended batches; `None` unless leader.
    pub fn leader_epoch_for_append(&self) -> Option<i32> {
        self.leader_epoch
    }

    /// From now on every batch appended by `append_from` and
    /// `append_marker` carries `epoch` as its partitionLeaderEpoch, and the
    /// epoch starts at the current log end.
    pub fn become_leader(&mut self, epoch: i32) -> Result<(), StorageError> {
        assert!(epoch >= 0, "leader epochs are non-negative");
        // An append being written was placed under the old leadership (its
        // batches stamped with the old epoch): void it.
        self.generation += 1;
        if self.latest_epoch().is_some_and(|latest| epoch < latest) {
            tracing::warn!(dir = %self.dir.display(), epoch, latest = ?self.latest_epoch(), "leader with an epoch older than the log's");
        }
        self.leader_epoch = Some(epoch);
        self.replicated = true;
        if self.epochs.assign(epoch, self.log_end_offset()) {
            self.checkpoint_epochs_unsynced()?;
        }
        Ok(())
    }

    /// Writes the epoch cache after a change on the append path without
    /// waiting for the disk: every replica of a new topic, and every
    /// partition a failover hands a node, starts an epoch, and each paid a
    /// file and a directory fsync on the shard thread. Durable before the
    /// recovery point passes it ([`super::RollSync`], [`Self::close`]).
    pub(super) fn checkpoint_epochs_unsynced(&mut self) -> Result<(), StorageError> {
        self.epochs.write_checkpoint_unsynced(&self.dir)?;
        self.epoch_writes += 1;
        Ok(())
    }

    /// Whether an epoch checkpoint write is still only in the page cache.
    pub(super) fn epochs_unsynced(&self) -> bool {
        assert!(self.epoch_writes_synced <= self.epoch_writes);
        self.epoch_writes > self.epoch_writes_synced
    }

    /// Syncs the epoch checkpoint on this thread, for the paths that move
    /// the recovery point inline (close, a roll past the waiting bound).
    pub(super) fn sync_epochs_inline(&mut self) -> std::io::Result<()> {
        if self.epochs_unsynced() {
            super::leader_epoch::sync_checkpoint(&self.dir)?;
            self.epoch_writes_synced = self.epoch_writes;
        }
        Ok(())
    }

    /// Stops stamping: a follower's batches keep the leader's epochs.
    pub fn become_follower(&mut self) {
        self.generation += 1;
        self.leader_epoch = None;
        self.replicated = true;
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// (epoch, end offset) for OffsetForLeaderEpoch: where `epoch` ended in
    /// this log (see [`super::LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// The leader's epoch entries, oldest first.
    pub fn leader_epochs(&self) -> impl Iterator<Item = super::EpochEntry> + '_ {
        self.epochs.entries()
    }

    /// A follower appends batches the leader sent, unchanged and at the
    /// leader's offsets (gaps allowed: a compacted leader has them). Every
    /// batch is validated and its offsets checked against the log end
    /// first; nothing is written if any fails. No producer checks (the
    /// leader decided), but producer state, the aborted-transaction index
    /// and the epoch cache follow the batches, so they equal the leader's.
    pub fn append_replicated(
        &mut self,
        records: &Bytes,
        now_ms: i64,
    ) -> Result<AppendResult, StorageError> {
        assert!(!self.write_in_flight, "one append at a time");
        let log_end = self.log_end_offset();
        if records.is_empty() {
            return Ok(AppendResult {
                base_offset: log_end,
                last_offset: log_end - 1,
                log_append_time_ms: -1,
                records: 0,
                flush_needed: false,
                duplicate: false,
            });
        }
        let infos = validate_batches(records, u32::MAX)?;
        let headers = replicated_headers(records, &infos, self.log_start_offset, log_end)?;
        let first_offset = headers
            .first()
            .expect("validated: one batch at least")
            .base_offset;
        let next = headers.last().expect("non-empty").last_offset() + 1;
        let total_bytes: u64 = infos.iter().map(|i| i.total_len as u64).sum();
        self.maybe_roll(total_bytes, (next - log_end) as u64, now_ms)?;
        let segment_base = self.active().base_offset;
        if next - 1 - segment_base > i64::from(u32::MAX) {
            // Only a leader that compacted away ~4G offsets gets here.
            return Err(StorageError::OffsetOutOfRange {
                offset: next - 1,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        let pending: Vec<PendingBatch> = headers
            .iter()
            .zip(&infos)
            .map(|(header, info)| PendingBatch {
                header: *header,
                bytes: records.slice(info.offset..info.offset + info.total_len),
            })
            .collect();
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        active.append(pending, interval)?;
        active.rolling_base_ms.get_or_insert(now_ms);
        assert_eq!(self.log_end_offset(), next);
        let mut epochs_changed = false;
        for (header, info) in headers.iter().zip(&infos) {
            let marker = header
                .is_control()
                .then(|| parse_marker(batch_bytes(records, info)))
                .flatten();
            if let Some(completed) = self.producers.apply(header, marker, now_ms) {
                self.index_completed(completed);
            }
            epochs_changed |= self
                .epochs
                .assign(header.partition_leader_epoch, header.base_offset);
        }
        if epochs_changed {
            self.checkpoint_epochs_unsynced()?;
        }
        Ok(AppendResult {
            base_offset: first_offset,
            last_offset: next - 1,
            log_append_time_ms: -1,
            records: infos.iter().map(|i| i.records_count as u64).sum(),
            flush_needed: self.note_unflushed(now_ms),
            duplicate: false,
        })
    }
}

/// The headers of validated replicated batches, each checked to start at
/// or past `log_end` and past the previous batch's last offset.
fn replicated_headers(
    records: &Bytes,
    infos: &[BatchInfo],
    log_start: i64,
    log_end: i64,
) -> Result<Vec<BatchHeader>, StorageError> {
    let mut expected = log_end;
    let mut headers = Vec::with_capacity(infos.len());
    for info in infos {
        let header = BatchHeader::parse(batch_bytes(records, info)).expect("validated batch");
        if header.base_offset < expected {
            // The leader's batches do not continue this log: the caller
            // fetches from the log end again, or truncates.
            return Err(StorageError::OffsetOutOfRange {
                offset: header.base_offset,
                log_start,
                log_end,
            });
        }
        expected = header.last_offset() + 1;
        headers.push(header);
    }
    Ok(headers)
}

//! A follower cutting its log back to where it agrees with the leader
//! (Kafka's truncateTo and truncateFullyAndStartAt). Everything derived
//! from the cut bytes follows: indexes, producer state and its snapshots,
//! aborted transactions, leader epochs, the flush and recovery points, the
//! high watermark and the cleaner checkpoint.
//!
//! Segments are removed newest first, so a crash part way leaves a prefix
//! of the log, which the next open recovers like any other and the
//! follower truncates again if it must. Removed files are unlinked at once:
//! a follower's log is not read by consumers, so no fetch holds them
//! (and a held `Arc<File>` stays readable anyway).

use super::log_start::remove_log_start;
use super::producer_state::{list_snapshots, remove_snapshot, ProducerStates};
use super::recovery::{load_producer_state, read_recovery_point, reset_recovery_point};
use super::segment::{Segment, Segments};
use super::{PartitionLog, StorageError};

impl PartitionLog {
    /// Removes every offset at or past `offset` (from the first batch whose
    /// last offset reaches it, so the log may end below `offset`; the
    /// follower fetches again from the new end). At or past the log end
    /// only the leader-epoch cache may change; at or below the log start,
    /// the log is emptied and starts at `offset`
    /// ([`Self::truncate_fully_and_start_at`]).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        // An append being written now lands past the new end: void it.
        self.generation += 1;
        let old_end = self.log_end_offset();
        if offset >= old_end {
            // A replica that led an epoch without appending to it keeps
            // that epoch's entry at its log end; a new leader that never
            // saw the epoch answers every fetch with a divergence at this
            // very offset, and the follower would loop on it for ever
            // unless the entry goes (as Kafka's truncateTo does).
            if self.epochs.truncate_from_end(old_end) {
                self.epochs.write_checkpoint(&self.dir)?;
            }
            return Ok(());
        }
        if offset <= self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        let old_size = self.size_bytes();
        let removed: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for base in removed.iter().rev() {
            self.segments[base].delete_files()?;
            self.segments.remove(base);
        }
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        active.truncate_to(offset, interval)?;
        // Its index files may be a roll's, listing batches now gone. A
        // failed write removes them, which is as good: open rebuilds them.
        if let Err(e) = active.write_indexes_unsynced() {
            tracing::warn!(dir = %self.dir.display(), error = %e, "indexes not rewritten after a truncation; open rebuilds them");
        }
        self.preallocate_active();
        let new_end = self.log_end_offset();
        self.lower_log_start_to(new_end)?;
        self.unsynced_rolls.retain(|r| r.next_base <= new_end);
        // A truncation may rewrite or remove snapshot files: close writes
        // its own again.
        self.durable_snapshot = None;
        (self.producers, _) = load_producer_state(
            &self.dir,
            list_snapshots(&self.dir)?,
            &mut self.segments,
            self.log_start_offset,
            self.config.producers_max,
        )?;
        if self.epochs.truncate_from_end(new_end) {
            self.epochs.write_checkpoint(&self.dir)?;
        }
        self.clamp_points(new_end)?;
        if read_recovery_point(&self.dir) > new_end {
            reset_recovery_point(&self.dir, new_end)?;
        }
        self.check_invariants();
        tracing::info!(
            dir = %self.dir.display(),
            from = old_end,
            to = offset,
            log_end = new_end,
            offsets_removed = old_end - new_end,
            bytes_removed = old_size - self.size_bytes(),
            segments_removed = removed.len(),
            "truncated log"
        );
        Ok(())
    }

    /// Deletes the whole log and starts an empty one at `offset` (a
    /// follower whose log ends before the leader's starts, or whose every
    /// batch diverges).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        assert!(offset >= 0, "log offsets are non-negative");
        self.generation += 1;
        let (old_start, old_end) = (self.log_start_offset, self.log_end_offset());
        // Snapshots first: a crash part way must not leave producer state
        // for offsets the log no longer holds.
        self.durable_snapshot = None;
        for snapshot in list_snapshots(&self.dir)? {
            remove_snapshot(&self.dir, snapshot)?;
        }
        for segment in self.segments.values().rev() {
            segment.delete_files()?;
        }
        // The new log starts at its only segment's base.
        remove_log_start(&self.dir)?;
        let segment = Segment::create(&self.dir, offset, &self.handles)?;
        self.segments = Segments::from([(offset, Box::new(segment))]);
        self.preallocate_active();
        self.log_start_offset = offset;
        self.unsynced_rolls.clear();
        self.producers = ProducerStates::new(self.config.producers_max);
        if self.epochs.clear() {
            self.epochs.write_checkpoint(&self.dir)?;
        }
        self.clamp_points(offset)?;
        reset_recovery_point(&self.dir, offset)?;
        self.check_invariants();
        tracing::info!(
            dir = %self.dir.display(),
            from_start = old_start,
            from_end = old_end,
            to = offset,
            "truncated the whole log"
        );
        Ok(())
    }

    /// What points into the log follows a cut that left it ending at `new_end`.
    fn clamp_points(&mut self, new_end: i64) -> Result<(), StorageError> {
        assert_eq!(self.log_end_offset(), new_end);
        if self.roll_sync_out {
            let lowest = self
                .truncated_during_roll_sync
                .map_or(new_end, |t| t.min(new_end));
            self.truncated_during_roll_sync = Some(lowest);
        }
        self.flushed_offset = self.flushed_offset.min(new_end);
        if self.flushed_offset == new_end {
            self.first_unflushed_ms = None;
        }
        self.clamp_high_watermark();
        self.truncate_cleaner()
    }
}

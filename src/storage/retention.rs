//! Time- and size-based retention: whole oldest segments are deleted.

use super::segment::{DeletedSegment, Segment};
use super::{PartitionLog, StorageError};

impl PartitionLog {
    /// Deletes the oldest segments whose largest timestamp is older than
    /// `retention_ms`, or while the log stays at least `retention_bytes`
    /// without them. An expired non-empty active segment is rolled first so
    /// it can go too (as Kafka does). Returns the segments that went, their
    /// files renamed, for the caller to unlink off the shard's thread.
    /// Nothing happens unless `cleanup.policy` holds `delete`.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<Vec<DeletedSegment>, StorageError> {
        if !self.config.cleanup_delete {
            return Ok(Vec::new());
        }
        // An append being written holds the active segment; the next pass
        // rolls it.
        let rollable = !self.write_in_flight;
        if rollable && !self.active().is_empty() && self.expired(self.active(), now_ms) {
            if let Err(e) = self.roll() {
                // A full disk: the older segments still go, and their space
                // may be what lets the next roll through.
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot roll the expired active segment; retention goes on without it");
            }
        }
        let mut deleted = Vec::new();
        while self.oldest_deletable(now_ms) {
            let (_, segment) = self.segments.pop_first().expect("more than one segment");
            deleted.push(segment.into_deleted()?);
        }
        // A start records were deleted to may lie past the first base.
        let first_base = *self
            .segments
            .keys()
            .next()
            .expect("the active segment stays");
        self.log_start_offset = self.log_start_offset.max(first_base);
        self.producers.truncate_head(self.log_start_offset);
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs.write_checkpoint(&self.dir)?;
        }
        self.clamp_high_watermark();
        self.check_invariants();
        if !deleted.is_empty() {
            tracing::info!(dir = %self.dir.display(), deleted = deleted.len(), log_start = self.log_start_offset, "retention");
        }
        Ok(deleted)
    }

    fn expired(&self, segment: &Segment, now_ms: i64) -> bool {
        let retention_ms = self.config.retention_ms;
        retention_ms >= 0 && now_ms.saturating_sub(largest_timestamp_ms(segment)) > retention_ms
    }

    /// Whether the oldest segment may go; the active one never does.
    fn oldest_deletable(&self, now_ms: i64) -> bool {
        if self.segments.len() < 2 {
            return false;
        }
        let oldest = self.segments.values().next().expect("non-empty");
        let retention_bytes = self.config.retention_bytes;
        let over_size =
            retention_bytes >= 0 && self.size_bytes() - oldest.size >= retention_bytes as u64;
        self.expired(oldest, now_ms) || over_size
    }
}

/// The segment's largest record timestamp or, when its batches carry none
/// (-1), the file's modification time, as Kafka does. Unknown counts as now
/// (never expired).
fn largest_timestamp_ms(segment: &Segment) -> i64 {
    if segment.max_timestamp >= 0 {
        return segment.max_timestamp;
    }
    super::io::modified_ms(&segment.log_path()).unwrap_or(i64::MAX)
}

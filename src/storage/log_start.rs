//! A log start moved past a segment's base: by a client deleting records
//! (DeleteRecords, KIP-107), or by a follower taking its leader's. Offsets
//! below it are gone to every reader, though the first segment may still
//! hold some of them; segments wholly below it go at once.
//!
//! Unlike a start that retention leaves at a segment's base, this one is in
//! no file name, so it has a file of its own, `log-start-offset`, written
//! before any segment goes: a crash in between leaves the segments, which
//! the next open drops again. Open takes the larger of the file's value and
//! the first segment's base (retention may since have passed the file).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::io::{sync_dir, write_replacing};
use super::recovery::Listing;
use super::segment::DeletedSegment;
use super::{PartitionLog, StorageError};

pub const LOG_START_FILE: &str = "log-start-offset";

impl PartitionLog {
    /// Moves the log start up to `offset`, which must not pass the high
    /// watermark (a leader checks the client's offset against it; a
    /// follower takes at most its own). A lower or equal offset changes
    /// nothing (Kafka's maybeIncrementLogStartOffset): `None`.
    pub fn advance_log_start(
        &mut self,
        offset: i64,
    ) -> Result<Option<LogStartMoved>, StorageError> {
        assert!(
            offset <= self.high_watermark,
            "the log start stays within what the ISR holds"
        );
        if offset <= self.log_start_offset {
            return Ok(None);
        }
        let old_start = self.log_start_offset;
        write_log_start(&self.dir, offset)?;
        self.log_start_offset = offset;
        let deleted = self.take_segments_below_start()?;
        self.producers.truncate_head(offset);
        if self.epochs.truncate_from_start(offset) {
            self.epochs.write_checkpoint(&self.dir)?;
        }
        self.check_invariants();
        tracing::info!(
            dir = %self.dir.display(),
            from = old_start,
            to = offset,
            segments_deleted = deleted.len(),
            "log start moved"
        );
        Ok(Some(LogStartMoved {
            deleted,
            sync: LogStartSync {
                dir: self.dir.clone(),
            },
        }))
    }

    /// At open: the start a `log-start-offset` file holds, within the log,
    /// and the segments wholly below it (a crash left them) removed.
    pub(super) fn restore_log_start(&mut self, listing: &Listing) -> Result<(), StorageError> {
        if !listing.has(LOG_START_FILE) {
            return Ok(());
        }
        let Some(stored) = read_log_start(&self.dir) else {
            tracing::warn!(dir = %self.dir.display(), "unreadable log start file; the log starts at its first segment");
            return Ok(());
        };
        let (first_base, end) = (self.log_start_offset, self.log_end_offset());
        self.log_start_offset = stored.clamp(first_base, end);
        for segment in self.take_segments_below_start()? {
            segment.remove()?;
        }
        Ok(())
    }

    /// A cut that left the log ending below its start (a follower's
    /// truncation may cut back a batch that straddles it) brings the start
    /// down to the end, and the file with it, so that the next open does
    /// not take a start past what the log holds then.
    pub(super) fn lower_log_start_to(&mut self, end: i64) -> Result<(), StorageError> {
        if self.log_start_offset <= end {
            return Ok(());
        }
        write_log_start(&self.dir, end)?;
        self.log_start_offset = end;
        Ok(())
    }

    /// Takes out the leading segments whose every offset lies below the log
    /// start (the next one starts at or below it); the active one stays.
    fn take_segments_below_start(&mut self) -> Result<Vec<DeletedSegment>, StorageError> {
        let mut deleted = Vec::new();
        while self
            .segments
            .keys()
            .nth(1)
            .is_some_and(|&next| next <= self.log_start_offset)
        {
            let (_, segment) = self.segments.pop_first().expect("two segments at least");
            deleted.push(segment.into_deleted()?);
        }
        Ok(deleted)
    }
}

/// What moving a log start leaves the caller to do off the shard's thread.
pub struct LogStartMoved {
    /// The segments now wholly below the start, out of the log with their
    /// files renamed, to unlink.
    pub deleted: Vec<DeletedSegment>,
    /// The `log-start-offset` file was written, not synced.
    pub sync: LogStartSync,
}

/// Makes a partition's `log-start-offset` file durable.
pub struct LogStartSync {
    dir: PathBuf,
}

impl LogStartSync {
    pub fn run(&self) -> io::Result<()> {
        File::open(self.dir.join(LOG_START_FILE))?.sync_data()?;
        sync_dir(&self.dir)
    }
}

fn write_log_start(dir: &Path, offset: i64) -> io::Result<()> {
    assert!(offset >= 0, "a log start is an offset");
    write_replacing(&dir.join(LOG_START_FILE), offset.to_string().as_bytes())
}

/// Removes the file (a log started over at its only segment's base).
pub(super) fn remove_log_start(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join(LOG_START_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn read_log_start(dir: &Path) -> Option<i64> {
    fs::read_to_string(dir.join(LOG_START_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&o: &i64| o >= 0)
}

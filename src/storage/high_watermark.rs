//! The high watermark: offsets below it are on every in-sync replica, so
//! consumers may read them. The shard computes it (the ISR minimum as a
//! leader, min(leader's, own log end) as a follower); storage keeps it
//! within `[log_start, log_end]` and persists it in [`HIGH_WATERMARK_FILE`],
//! so a restarted replica does not expose, or forget, what was committed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::io::{same_dir, sync_dir, write_atomic};
use super::{PartitionLog, StorageError};

/// File in the partition dir holding the checkpointed high watermark, text
/// `0\n<hw>\n` (a version line, then the offset).
pub const HIGH_WATERMARK_FILE: &str = "high-watermark";
const HIGH_WATERMARK_VERSION: &str = "0";

/// The checkpointed high watermark in `dir`; `None` when there is no file.
/// A corrupt file (never written so: it is replaced atomically) counts as
/// none, logged.
pub fn read_high_watermark(dir: &Path) -> Option<i64> {
    let path = dir.join(HIGH_WATERMARK_FILE);
    let text = fs::read_to_string(&path).ok()?;
    let mut lines = text.lines();
    let parsed = match (lines.next(), lines.next(), lines.next()) {
        (Some(HIGH_WATERMARK_VERSION), Some(hw), None) => hw.trim().parse::<i64>().ok(),
        _ => None,
    };
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "corrupt high watermark file; ignoring it");
    }
    parsed.filter(|hw| *hw >= 0)
}

impl PartitionLog {
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Sets the high watermark, clamped into `[log_start, log_end]`. It may
    /// go down: a follower takes min(leader's, own log end), and a new
    /// leader's may lag the old one's (Kafka's follower does the same).
    pub fn set_high_watermark(&mut self, hw: i64) {
        self.high_watermark = hw.clamp(self.log_start_offset, self.log_end_offset());
    }

    /// Clamps the high watermark after the log start or end moved.
    pub(super) fn clamp_high_watermark(&mut self) {
        self.set_high_watermark(self.high_watermark);
    }

    /// The checkpoint to write when the high watermark moved since the last
    /// one written; `None` when the file already holds it. The shard hands
    /// it to the blocking thread, then records it with
    /// [`PartitionLog::high_watermark_checkpointed`].
    ///
    /// Also `None` for a log no one made leader or follower (a single
    /// node): its high watermark is its log end again at every open, so a
    /// checkpoint would be two fsyncs for nothing, and at 10,000 partitions
    /// they were a third of the broker's CPU. A file it has (from when it
    /// was a replica) stays, lower, so safe if it becomes one again.
    pub fn high_watermark_checkpoint(&self) -> Option<HighWatermarkCheckpoint> {
        let hw = self.high_watermark;
        let due = self.replicated && self.high_watermark_checkpointed != Some(hw);
        due.then(|| HighWatermarkCheckpoint {
            dir: self.dir.clone(),
            dir_ino: self.dir_ino,
            high_watermark: hw,
        })
    }

    /// Records that [`HIGH_WATERMARK_FILE`] now holds `hw`.
    pub fn high_watermark_checkpointed(&mut self, hw: i64) {
        self.high_watermark_checkpointed = Some(hw);
    }

    /// Writes the checkpoint here and now, on the calling thread: for
    /// `close`, which must leave the file current.
    pub fn checkpoint_high_watermark(&mut self) -> Result<(), StorageError> {
        if let Some(checkpoint) = self.high_watermark_checkpoint() {
            checkpoint.run()?;
            self.high_watermark_checkpointed(checkpoint.high_watermark);
        }
        Ok(())
    }
}

/// Work for the blocking thread: one log's high watermark to persist. A
/// checkpoint is a lower bound a restarted replica starts from, so one that
/// lands late (lower than the log's by then) is still safe.
pub struct HighWatermarkCheckpoint {
    dir: PathBuf,
    /// The log directory's inode when the log opened it: a partition
    /// deleted and recreated meanwhile must not get the old one's value.
    dir_ino: u64,
    high_watermark: i64,
}

impl HighWatermarkCheckpoint {
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Replaces [`HIGH_WATERMARK_FILE`] (tmp + fsync + rename, then the
    /// directory fsync); nothing if the log's directory is gone.
    pub fn run(&self) -> io::Result<()> {
        if !same_dir(&self.dir, self.dir_ino)? {
            return Ok(());
        }
        let text = format!("{HIGH_WATERMARK_VERSION}\n{}\n", self.high_watermark);
        write_atomic(&self.dir.join(HIGH_WATERMARK_FILE), text.as_bytes())?;
        sync_dir(&self.dir)
    }
}

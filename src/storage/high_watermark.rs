//! The high watermark: offsets below it are on every in-sync replica, so
//! consumers may read them. The shard computes it (the ISR minimum as a
//! leader, min(leader's, own log end) as a follower); storage keeps it
//! within `[log_start, log_end]`. The shard persists it in its checkpoint
//! ([`super::hw_checkpoint`]) so a restarted replica does not expose, or
//! forget, what was committed.

use std::fs;
use std::path::Path;

use super::hw_checkpoint::LegacyHwFile;
use super::PartitionLog;

/// File in the partition dir that held the checkpointed high watermark
/// before the shard checkpoint did, text `0\n<hw>\n` (a version line, then
/// the offset): read at open when the shard checkpoint has no value for the
/// log, and removed once it has.
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

    /// Whether the high watermark moved since the shard's checkpoint last
    /// took it: the shard writes its file ([`super::HwCheckpoint`]) when any
    /// of its logs is due, then records it with
    /// [`PartitionLog::high_watermark_checkpointed`].
    ///
    /// Never for a log no one made leader or follower (a single node): its
    /// high watermark is its log end again at every open, so a checkpoint
    /// would be two fsyncs for nothing, and at 10,000 partitions they were a
    /// third of the broker's CPU.
    ///
    /// Also due while its value is still in a per-partition file (the
    /// layout before) that the shard checkpoint has not taken over.
    pub fn high_watermark_due(&self) -> bool {
        self.legacy_high_watermark_file
            || (self.replicated && self.high_watermark_checkpointed != Some(self.high_watermark))
    }

    /// This log's value in its shard's checkpoint: the high watermark of a
    /// replica; for a log not (yet) made one, the value it was opened with,
    /// kept (lower, so safe) in case it becomes one again; else none.
    pub fn high_watermark_to_checkpoint(&self) -> Option<i64> {
        if self.replicated {
            Some(self.high_watermark)
        } else {
            self.high_watermark_checkpointed
        }
    }

    /// Records that the shard's checkpoint now holds `hw` for this log: a
    /// per-partition file is no longer needed (the checkpoint removes it,
    /// and wins over it at open if that failed).
    pub fn high_watermark_checkpointed(&mut self, hw: i64) {
        self.high_watermark_checkpointed = Some(hw);
        self.legacy_high_watermark_file = false;
    }

    /// Takes the value the shard's checkpoint held at start; it wins over
    /// a per-partition file read at open (the layout before), which the
    /// next checkpoint removes.
    pub fn restore_high_watermark(&mut self, hw: i64) {
        assert!(hw >= 0, "a checkpointed high watermark is an offset");
        self.high_watermark_checkpointed = Some(hw);
        self.set_high_watermark(hw);
    }

    /// The per-partition file this log was opened from, to remove once the
    /// shard's checkpoint holds its value; `None` when there is none.
    pub fn legacy_high_watermark_file(&self) -> Option<LegacyHwFile> {
        self.legacy_high_watermark_file.then(|| LegacyHwFile {
            dir: self.dir.clone(),
            dir_ino: self.dir_ino,
        })
    }
}

//! The high watermark: offsets below it are on every in-sync replica, so
//! consumers may read them. The shard computes it (the ISR minimum as a
//! leader, min(leader's, own log end) as a follower); storage keeps it
//! within `[log_start, log_end]` and persists it in [`HIGH_WATERMARK_FILE`],
//! so a restarted replica does not expose, or forget, what was committed.

use std::fs;
use std::path::Path;

use super::io::{sync_dir, write_atomic};
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

    /// Writes the high watermark to [`HIGH_WATERMARK_FILE`] (tmp + fsync +
    /// rename), unless the file already holds it. The shard calls it
    /// periodically; `close` calls it too.
    pub fn checkpoint_high_watermark(&mut self) -> Result<(), StorageError> {
        let hw = self.high_watermark;
        if self.high_watermark_checkpointed == Some(hw) {
            return Ok(());
        }
        let text = format!("{HIGH_WATERMARK_VERSION}\n{hw}\n");
        write_atomic(&self.dir.join(HIGH_WATERMARK_FILE), text.as_bytes())?;
        sync_dir(&self.dir)?;
        self.high_watermark_checkpointed = Some(hw);
        Ok(())
    }
}

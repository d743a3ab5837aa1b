//! The shard's high watermark checkpoint (Kafka's
//! replication-offset-checkpoint): every 5 s, when a replica's high
//! watermark moved, one file with all of this shard's replicas replaces the
//! last, so a restart exposes nothing the ISR did not have.
//!
//! The write (an fsync and a directory fsync) runs on the blocking thread:
//! on the shard it held every request for tens of ms. A round counts in
//! flight, so a shutdown's `close_all` (which writes the last one inline)
//! comes after it.

use std::rc::Rc;

use super::{InFlight, Partition, Shard};
use crate::storage::{hw_checkpoint_path, HwCheckpoint, HwEntry};

/// What a checkpoint's success is recorded on: each log and the value it
/// went in with.
type Written = Vec<(Rc<Partition>, i64)>;

impl Shard {
    /// Writes the shard's checkpoint if any replica's high watermark moved
    /// since the last one.
    pub async fn checkpoint_high_watermarks(&self) {
        let Some((checkpoint, written)) = self.high_watermark_checkpoint() else {
            return;
        };
        let _in_flight = InFlight::enter(self);
        let outcome = crate::runtime::blocking(move || checkpoint.run()).await;
        self.high_watermarks_written(outcome, written);
    }

    /// Writes the shard's checkpoint here and now if it is not current:
    /// for `close_all`, which must leave it so.
    pub(super) fn checkpoint_high_watermarks_inline(&self) {
        if let Some((checkpoint, written)) = self.high_watermark_checkpoint() {
            self.high_watermarks_written(checkpoint.run(), written);
        }
    }

    /// The checkpoint to write: every log with a value, when one of them
    /// is due. A single node's logs never are (see
    /// `PartitionLog::high_watermark_due`), so there it only walks its
    /// partitions.
    fn high_watermark_checkpoint(&self) -> Option<(HwCheckpoint, Written)> {
        let partitions = self.partitions.borrow();
        let due = partitions
            .values()
            .any(|p| p.log.borrow().high_watermark_due());
        if !due {
            return None;
        }
        let mut entries = Vec::with_capacity(partitions.len());
        let mut legacy = Vec::new();
        let mut written = Vec::with_capacity(partitions.len());
        for (tp, partition) in partitions.iter() {
            let log = partition.log.borrow();
            let Some(high_watermark) = log.high_watermark_to_checkpoint() else {
                continue;
            };
            written.push((partition.clone(), high_watermark));
            legacy.extend(log.legacy_high_watermark_file());
            entries.push(HwEntry {
                topic: tp.topic,
                partition: tp.partition,
                topic_id: partition.topic_id.clone(),
                high_watermark,
            });
        }
        let path = hw_checkpoint_path(&self.config.data_dir, self.id);
        Some((
            HwCheckpoint {
                path,
                entries,
                legacy,
            },
            written,
        ))
    }

    fn high_watermarks_written(&self, outcome: std::io::Result<()>, written: Written) {
        match outcome {
            Ok(()) => {
                for (partition, hw) in written {
                    partition.log.borrow_mut().high_watermark_checkpointed(hw);
                }
            }
            // The old file stays: lower, so safe; the next round retries.
            Err(e) => {
                crate::stats::STORAGE_WRITE_ERRORS.add(1);
                tracing::warn!(shard = self.id, error = %e, "high watermark checkpoint failed; retried in the next round");
            }
        }
    }
}

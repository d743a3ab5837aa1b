//! What `/metrics` shows of this shard's logs: each replica's offsets,
//! size and segments, gathered every `metrics_refresh_ms` and published
//! for a scrape to read without asking the shard.

use crate::stats::LogGauge;

use super::{Shard, APPLY_PARTITIONS_PER_TURN};

impl Shard {
    /// Publishes every replica this shard holds, with a turn for other
    /// tasks every so many (a shard may hold tens of thousands).
    pub async fn publish_log_gauges(&self) {
        let held = self.owned_partitions();
        let mut logs = Vec::with_capacity(held.len());
        for chunk in held.chunks(APPLY_PARTITIONS_PER_TURN) {
            for (tp, partition) in chunk {
                let leader = partition.role.borrow().is_leader();
                let log = partition.log.borrow();
                logs.push(LogGauge {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    leader,
                    log_start_offset: log.log_start_offset(),
                    log_end_offset: log.log_end_offset(),
                    high_watermark: log.high_watermark(),
                    size_bytes: log.size_bytes(),
                    segments: log.segment_count(),
                });
            }
            crate::runtime::yield_now().await;
        }
        crate::stats::publish_logs(self.id, logs);
    }
}

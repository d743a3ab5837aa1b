//! Each replica's log as Kafka's `kafka.log:type=Log` gauges show it
//! (Size, LogStartOffset, LogEndOffset, NumLogSegments), and the high
//! watermarks of the partitions led here, which consumer lag is counted
//! from. Published by each shard every `metrics_refresh_ms`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use super::published::Published;

/// One replica's log on this broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogGauge {
    pub topic: Arc<str>,
    pub partition: i32,
    /// This broker leads the partition: its high watermark is where
    /// consumers read to.
    pub leader: bool,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub segments: usize,
}

static LOGS: Published<LogGauge> = Published::new();

/// Replaces the logs `shard` published last.
pub fn publish_logs(shard: usize, logs: Vec<LogGauge>) {
    LOGS.publish(shard, logs);
}

/// Every shard's replicas, by topic and partition.
pub(super) fn snapshot() -> Vec<LogGauge> {
    let mut logs = LOGS.snapshot();
    logs.sort_unstable_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    logs
}

/// The high watermark of each partition led here.
pub(super) fn led_high_watermarks(logs: &[LogGauge]) -> BTreeMap<(&str, i32), i64> {
    logs.iter()
        .filter(|l| l.leader)
        .map(|l| ((&*l.topic, l.partition), l.high_watermark))
        .collect()
}

/// A per-replica series: name, help, whether a follower has it, the value.
type ReplicaSeries = (&'static str, &'static str, bool, fn(&LogGauge) -> u64);

/// The per-topic sizes always; the per-replica series when `per_replica`.
pub(super) fn render(out: &mut String, logs: &[LogGauge], per_replica: bool) {
    let name = "sluice_topic_log_size_bytes";
    super::header(
        out,
        name,
        "Bytes the segments of the topic's replicas here hold.",
        "gauge",
    );
    let mut sizes: BTreeMap<&str, u64> = BTreeMap::new();
    for log in logs {
        *sizes.entry(&log.topic).or_default() += log.size_bytes;
    }
    for (topic, size) in sizes {
        let _ = writeln!(out, "{name}{{topic=\"{topic}\"}} {size}");
    }
    if !per_replica {
        return;
    }
    // Offsets are never negative in a log; a high watermark is at least 0.
    const SERIES: [ReplicaSeries; 5] = [
        (
            "sluice_log_size_bytes",
            "Bytes the replica's segments hold (Kafka's Log Size).",
            true,
            |l| l.size_bytes,
        ),
        (
            "sluice_log_start_offset",
            "The replica's log start offset (Kafka's LogStartOffset).",
            true,
            |l| l.log_start_offset.max(0) as u64,
        ),
        (
            "sluice_log_end_offset",
            "The offset the replica's next record gets (Kafka's LogEndOffset).",
            true,
            |l| l.log_end_offset.max(0) as u64,
        ),
        (
            "sluice_log_segments",
            "Segments in the replica's log (Kafka's NumLogSegments).",
            true,
            |l| l.segments as u64,
        ),
        (
            "sluice_partition_high_watermark",
            "The high watermark of a partition this broker leads: where consumers read to.",
            false,
            |l| l.high_watermark.max(0) as u64,
        ),
    ];
    for (name, help, followers, value) in SERIES {
        super::header(out, name, help, "gauge");
        for log in logs.iter().filter(|l| followers || l.leader) {
            let _ = writeln!(
                out,
                "{name}{{topic=\"{}\",partition=\"{}\"}} {}",
                log.topic,
                log.partition,
                value(log)
            );
        }
    }
}

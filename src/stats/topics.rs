//! Per-topic client traffic (Kafka's BrokerTopicMetrics).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// One topic's client traffic on this broker (Kafka's per-topic
/// BrokerTopicMetrics), shared by the topic's partitions on every shard:
/// each holds the `Arc` it took when it opened, so an append or a read
/// adds to it without a lookup, and a scrape reads it without asking the
/// shards.
#[derive(Debug, Default)]
pub struct TopicTraffic {
    bytes_in: AtomicU64,
    records_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl TopicTraffic {
    /// Producers' batches appended to a partition led here.
    pub fn produced(&self, bytes: u64, records: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.records_in.fetch_add(records, Ordering::Relaxed);
    }

    /// Record bytes a consumer is given.
    pub fn consumed(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Every topic with a partition open here, by name; taken at a partition's
/// open and at a scrape only.
static TOPIC_TRAFFIC: std::sync::Mutex<
    std::collections::BTreeMap<String, std::sync::Arc<TopicTraffic>>,
> = std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The traffic counters of `topic`, for a partition of it opening.
pub fn topic_traffic(topic: &str) -> std::sync::Arc<TopicTraffic> {
    let mut topics = TOPIC_TRAFFIC.lock().unwrap_or_else(|e| e.into_inner());
    topics.entry(topic.to_string()).or_default().clone()
}

/// A per-topic series: name, help, the counter it reads.
type TopicSeries = (&'static str, &'static str, fn(&TopicTraffic) -> &AtomicU64);

/// The per-topic series; a topic none of whose partitions is open here
/// any more (deleted, moved away) is dropped, and starts again from zero
/// if one opens, as Prometheus takes a counter's reset.
pub(super) fn render(out: &mut String) {
    let mut topics = TOPIC_TRAFFIC.lock().unwrap_or_else(|e| e.into_inner());
    topics.retain(|_, t| std::sync::Arc::strong_count(t) > 1);
    const SERIES: [TopicSeries; 3] = [
        (
            "sluice_topic_bytes_in_total",
            "Record batch bytes producers appended to the topic's partitions led here.",
            |t| &t.bytes_in,
        ),
        (
            "sluice_topic_records_in_total",
            "Records producers appended to the topic's partitions led here.",
            |t| &t.records_in,
        ),
        (
            "sluice_topic_bytes_out_total",
            "Record bytes consumers were given from the topic's replicas here.",
            |t| &t.bytes_out,
        ),
    ];
    for (name, help, counter) in SERIES {
        super::header(out, name, help, "counter");
        for (topic, traffic) in topics.iter() {
            let value = counter(traffic).load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{topic=\"{topic}\"}} {value}");
        }
    }
}

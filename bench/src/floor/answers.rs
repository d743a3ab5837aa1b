//! The floor broker's answers, one function per API it serves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::disk::Disk;
use super::store::Store;

/// The floor's only node id.
const NODE: i32 = 1;
/// A fetch waits at most this long, whatever it asks.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const LIST_EARLIEST: i64 = -2;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// The APIs served and their version ranges: enough for librdkafka's
/// producers, admin client and `assign()` consumers.
const VERSIONS: [(ApiKey, i16, i16); 8] = [
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 9),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 5),
    (ApiKey::InitProducerId, 0, 4),
];

pub fn supports(api: ApiKey, version: i16) -> bool {
    VERSIONS
        .iter()
        .any(|&(k, lo, hi)| k == api && (lo..=hi).contains(&version))
}

pub struct Answers {
    store: Store,
    /// Where produced bytes are also written, with `--log-dir`.
    disk: Option<Disk>,
    /// A failed disk write is logged once, not once per request.
    disk_failed: AtomicBool,
    host: StrBytes,
    port: i32,
    next_producer_id: AtomicI64,
}

impl Answers {
    pub fn new(local: SocketAddr, disk: Option<Disk>) -> Answers {
        Answers {
            store: Store::default(),
            disk,
            disk_failed: AtomicBool::new(false),
            host: StrBytes::from_string(local.ip().to_string()),
            port: i32::from(local.port()),
            next_producer_id: AtomicI64::new(1000),
        }
    }

    /// `None` for a request without an answer (produce with acks=0).
    pub fn answer(&self, request: RequestKind) -> Option<ResponseKind> {
        Some(match request {
            RequestKind::Produce(r) => {
                let acks = r.acks;
                let answer = self.produce(r);
                if acks == 0 {
                    return None;
                }
                ResponseKind::Produce(answer)
            }
            RequestKind::Fetch(r) => ResponseKind::Fetch(self.fetch(r)),
            RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(self.list_offsets(r)),
            RequestKind::Metadata(r) => ResponseKind::Metadata(self.metadata(r)),
            RequestKind::FindCoordinator(_) => ResponseKind::FindCoordinator(self.coordinator()),
            RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(self.create_topics(r)),
            RequestKind::InitProducerId(_) => ResponseKind::InitProducerId(self.producer_id()),
            other => unreachable!("{other:?} passed `supports`"),
        })
    }

    /// The answer to ApiVersions and the version to encode it in: v0 with
    /// UNSUPPORTED_VERSION for a version above ours, as Kafka answers.
    pub fn api_versions(&self, version: i16) -> (ResponseKind, i16) {
        let mut r = ApiVersionsResponse::default();
        r.api_keys = VERSIONS
            .iter()
            .map(|&(k, lo, hi)| {
                let mut v = ApiVersion::default();
                v.api_key = k as i16;
                v.min_version = lo;
                v.max_version = hi;
                v
            })
            .collect();
        let version = if supports(ApiKey::ApiVersions, version) {
            version
        } else {
            r.error_code = UNSUPPORTED_VERSION;
            0
        };
        (ResponseKind::ApiVersions(r), version)
    }

    fn produce(&self, r: ProduceRequest) -> ProduceResponse {
        let mut answer = ProduceResponse::default();
        for topic in r.topic_data {
            let mut t = TopicProduceResponse::default();
            for p in topic.partition_data {
                let mut out = PartitionProduceResponse::default();
                out.index = p.index;
                out.log_append_time_ms = -1;
                let records = p.records.unwrap_or_default();
                let stored = self
                    .write(&topic.name, p.index, &records)
                    .and_then(|()| self.store.append(&topic.name, p.index, &records));
                match stored {
                    Ok((base, start)) => {
                        out.base_offset = base;
                        out.log_start_offset = start;
                    }
                    Err(code) => {
                        out.error_code = code;
                        out.base_offset = -1;
                        out.log_start_offset = -1;
                    }
                }
                t.partition_responses.push(out);
            }
            t.name = topic.name;
            answer.responses.push(t);
        }
        answer
    }

    /// With a disk, the write of a partition's produced bytes: after the
    /// store's checks (so nothing it refuses reaches a file, and no unknown
    /// partition takes one of the disk's files), before it shows them to
    /// anyone.
    fn write(&self, topic: &str, partition: i32, records: &[u8]) -> Result<(), i16> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        self.store.check(topic, partition, records)?;
        disk.append(topic, partition, records).map_err(|e| {
            if !self.disk_failed.swap(true, Relaxed) {
                eprintln!("floor: writing {topic}-{partition}: {e} (logged once)");
            }
            KAFKA_STORAGE_ERROR
        })
    }

    /// Answers at once when there are `min_bytes` to send or the wait is
    /// over; otherwise waits for the next append anywhere and looks again.
    fn fetch(&self, r: FetchRequest) -> FetchResponse {
        let wait = Duration::from_millis(r.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MAX);
        let deadline = Instant::now() + wait;
        loop {
            let seen = self.store.appends();
            let (answer, bytes, failed) = self.fetch_once(&r);
            if failed || bytes >= i64::from(r.min_bytes) || Instant::now() >= deadline {
                return answer;
            }
            self.store.wait_past(seen, deadline);
        }
    }

    /// One look at every partition the fetch names: the answer, the bytes
    /// it carries and whether any partition failed.
    fn fetch_once(&self, r: &FetchRequest) -> (FetchResponse, i64, bool) {
        let mut answer = FetchResponse::default();
        let mut budget = r.max_bytes.max(0) as usize;
        let (mut bytes, mut failed) = (0i64, false);
        for topic in &r.topics {
            let mut t = FetchableTopicResponse::default();
            t.topic = topic.topic.clone();
            for p in &topic.partitions {
                let mut out = PartitionData::default();
                out.partition_index = p.partition;
                out.preferred_read_replica = BrokerId(-1);
                out.aborted_transactions = Some(Vec::new());
                let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
                match self
                    .store
                    .read(&topic.topic, p.partition, p.fetch_offset, limit)
                {
                    // Kafka answers no records once the response is full,
                    // but still the watermarks.
                    Ok(read) => {
                        out.high_watermark = read.high_watermark;
                        out.last_stable_offset = read.high_watermark;
                        out.log_start_offset = read.log_start;
                        if budget > 0 && !read.records.is_empty() {
                            budget = budget.saturating_sub(read.records.len());
                            bytes += read.records.len() as i64;
                            out.records = Some(read.records);
                        }
                    }
                    Err(code) => {
                        failed = true;
                        out.error_code = code;
                        out.high_watermark = -1;
                        out.last_stable_offset = -1;
                        out.log_start_offset = -1;
                    }
                }
                t.partitions.push(out);
            }
            answer.responses.push(t);
        }
        (answer, bytes, failed)
    }

    fn list_offsets(&self, r: ListOffsetsRequest) -> ListOffsetsResponse {
        let mut answer = ListOffsetsResponse::default();
        for topic in r.topics {
            let mut t = ListOffsetsTopicResponse::default();
            for p in topic.partitions {
                let mut out = ListOffsetsPartitionResponse::default();
                out.partition_index = p.partition_index;
                out.timestamp = -1;
                out.leader_epoch = -1;
                // No time index: every other timestamp is answered with the end.
                match self.store.offsets(&topic.name, p.partition_index) {
                    Ok((start, _)) if p.timestamp == LIST_EARLIEST => out.offset = start,
                    Ok((_, end)) => out.offset = end,
                    Err(code) => {
                        out.error_code = code;
                        out.offset = -1;
                    }
                }
                t.partitions.push(out);
            }
            t.name = topic.name;
            answer.topics.push(t);
        }
        answer
    }

    fn metadata(&self, r: MetadataRequest) -> MetadataResponse {
        let mut answer = MetadataResponse::default();
        let mut broker = MetadataResponseBroker::default();
        broker.node_id = BrokerId(NODE);
        broker.host = self.host.clone();
        broker.port = self.port;
        answer.brokers.push(broker);
        answer.cluster_id = Some(StrBytes::from_static_str("sluice-bench-floor"));
        answer.controller_id = BrokerId(NODE);
        let names: Option<Vec<String>> = r.topics.map(|ts| {
            ts.into_iter()
                .filter_map(|t| t.name)
                .map(|n| n.to_string())
                .collect()
        });
        for (name, partitions) in self.store.describe(names.as_deref()) {
            let mut t = MetadataResponseTopic::default();
            t.name = Some(TopicName(StrBytes::from_string(name)));
            match partitions {
                Some(n) => {
                    t.partitions = (0..n as i32).map(partition_metadata).collect();
                }
                None => t.error_code = super::store::code::UNKNOWN_TOPIC_OR_PARTITION,
            }
            answer.topics.push(t);
        }
        answer
    }

    fn coordinator(&self) -> FindCoordinatorResponse {
        let mut answer = FindCoordinatorResponse::default();
        answer.node_id = BrokerId(NODE);
        answer.host = self.host.clone();
        answer.port = self.port;
        answer
    }

    fn create_topics(&self, r: CreateTopicsRequest) -> CreateTopicsResponse {
        let mut answer = CreateTopicsResponse::default();
        for topic in r.topics {
            let mut out = CreatableTopicResult::default();
            let partitions = match (topic.num_partitions, topic.assignments.len()) {
                (-1, 0) => 1,
                (-1, n) => n as i32,
                (n, _) => n,
            };
            out.num_partitions = partitions;
            out.replication_factor = 1;
            out.error_code = if !matches!(topic.replication_factor, -1 | 1) {
                INVALID_REPLICATION_FACTOR
            } else if r.validate_only {
                0
            } else {
                self.store.create(&topic.name, partitions)
            };
            out.name = topic.name;
            answer.topics.push(out);
        }
        answer
    }

    fn producer_id(&self) -> InitProducerIdResponse {
        let mut answer = InitProducerIdResponse::default();
        answer.producer_id = ProducerId(self.next_producer_id.fetch_add(1, Relaxed));
        answer.producer_epoch = 0;
        answer
    }
}

/// Every partition is led by the floor's one node, epoch unknown (-1), so
/// clients validate no positions against leader epochs.
fn partition_metadata(index: i32) -> MetadataResponsePartition {
    let mut p = MetadataResponsePartition::default();
    p.partition_index = index;
    p.leader_id = BrokerId(NODE);
    p.leader_epoch = -1;
    p.replica_nodes = vec![BrokerId(NODE)];
    p.isr_nodes = vec![BrokerId(NODE)];
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::floor::store::{code, test_batch};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};

    fn produce(topic: &str, partition: i32, records: Vec<u8>) -> ProduceRequest {
        let mut p = PartitionProduceData::default();
        p.index = partition;
        p.records = Some(records.into());
        let mut t = TopicProduceData::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        t.partition_data.push(p);
        let mut r = ProduceRequest::default();
        r.acks = -1;
        r.topic_data.push(t);
        r
    }

    fn error_code(answer: &ProduceResponse) -> i16 {
        answer.responses[0].partition_responses[0].error_code
    }

    fn file_sizes(dir: &std::path::Path) -> Vec<u64> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect()
    }

    /// With a disk, what the store refuses reaches no file, and what it
    /// takes is on disk before the answer.
    #[test]
    fn a_disk_gets_only_what_the_store_takes() {
        let dir = std::env::temp_dir().join(format!("floor-answers-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let answers = Answers::new("127.0.0.1:1".parse().unwrap(), Some(Disk::new(dir.clone())));
        assert_eq!(answers.store.create("t", 1), 0);

        let unknown = answers.produce(produce("nope", 0, test_batch(1)));
        assert_eq!(error_code(&unknown), code::UNKNOWN_TOPIC_OR_PARTITION);
        let corrupt = answers.produce(produce("t", 0, vec![0; 10]));
        assert_eq!(error_code(&corrupt), code::CORRUPT_MESSAGE);
        assert!(file_sizes(&dir).is_empty());

        let taken = answers.produce(produce("t", 0, test_batch(2)));
        assert_eq!(error_code(&taken), 0);
        let sizes = file_sizes(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(sizes, [test_batch(2).len() as u64]);
    }
}

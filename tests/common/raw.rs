//! A blocking raw Kafka protocol client for wire-level tests.
//!
//! Requests are encoded with `kafka-protocol`; the request header version comes
//! from `ApiKey::request_header_version`, the response header version from
//! `ApiKey::response_header_version`.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{Record, RecordBatchDecoder};

/// How long a single response may take before the read fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

pub struct RawClient {
    stream: TcpStream,
    next_correlation_id: i32,
    /// (api key, version, correlation id) of requests awaiting a response.
    pending: std::collections::VecDeque<(i16, i16, i32)>,
}

impl RawClient {
    pub fn connect(addr: &str) -> RawClient {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            next_correlation_id: 1,
            pending: Default::default(),
        }
    }

    /// Like [`RawClient::connect`], but a refused or timed-out connection is
    /// an `Err` (for polling nodes that may be down or stopped).
    pub fn try_connect(addr: &str, timeout: Duration) -> std::io::Result<RawClient> {
        let sock: std::net::SocketAddr = addr
            .parse()
            .unwrap_or_else(|e| panic!("bad address {addr}: {e}"));
        let stream = TcpStream::connect_timeout(&sock, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            next_correlation_id: 1,
            pending: Default::default(),
        })
    }

    /// Like [`RawClient::call`], but I/O errors (a dead, stopped or slow
    /// broker) are an `Err`; a response that does not decode still panics.
    pub fn try_call<R: Request>(&mut self, version: i16, req: &R) -> std::io::Result<R::Response> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let frame = request_frame(version, correlation_id, req);
        self.stream.write_all(&frame)?;
        let mut frame = self.read_frame()?;
        let api_key = ApiKey::try_from(R::KEY).unwrap();
        let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
            .expect("decode response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "response correlation id"
        );
        let resp = R::Response::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("decode {api_key:?} v{version} response: {e}"));
        assert!(
            !frame.has_remaining(),
            "{} trailing bytes after {api_key:?} v{version} response",
            frame.remaining()
        );
        Ok(resp)
    }

    /// Encodes and sends `req` as version `version`; returns the correlation id.
    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let frame = request_frame(version, correlation_id, req);
        self.stream.write_all(&frame).expect("write request");
        self.pending.push_back((R::KEY, version, correlation_id));
        correlation_id
    }

    /// Reads the next response (for the oldest pending request) and decodes it
    /// as `Resp` with the version that request was sent with.
    pub fn recv<Resp: Decodable>(&mut self) -> Resp {
        let (key, version, correlation_id) = self
            .pending
            .pop_front()
            .expect("recv without a pending request");
        let api_key = ApiKey::try_from(key).unwrap();
        let mut frame = self.read_frame().expect("read response frame");
        let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
            .expect("decode response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "response correlation id"
        );
        let resp = Resp::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("decode {api_key:?} v{version} response: {e}"));
        assert!(
            !frame.has_remaining(),
            "{} trailing bytes after {api_key:?} v{version} response",
            frame.remaining()
        );
        resp
    }

    /// Sends a request and waits for its response.
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        self.send(version, req);
        self.recv::<R::Response>()
    }

    /// Writes raw bytes to the socket (for malformed frames). Write errors are
    /// returned, not panicked on: the broker may already have closed the socket.
    pub fn send_bytes(&mut self, raw: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(raw)?;
        self.stream.flush()
    }

    /// Reads one size-prefixed frame (without the size) or an I/O error.
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        assert!(size >= 0, "negative response size {size}");
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// Waits up to `timeout` for the broker to close this connection
    /// (EOF or reset), discarding anything it sends first. Returns whether it closed.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 4096];
        let closed = loop {
            if Instant::now() >= deadline {
                break false;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    continue
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break true, // reset / aborted
            }
        };
        self.stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        closed
    }

    /// True if the broker has closed this connection (checked within 10 s).
    pub fn is_closed(&mut self) -> bool {
        self.wait_closed(Duration::from_secs(10))
    }

    /// True if the connection is still open and idle (nothing arrives, no EOF)
    /// during `window`.
    pub fn is_open_for(&mut self, window: Duration) -> bool {
        !self.wait_closed(window)
    }
}

/// A size-prefixed request frame, as a client sends it.
pub fn request_frame<R: Request>(version: i16, correlation_id: i32, req: &R) -> Vec<u8> {
    let api_key = ApiKey::try_from(R::KEY).expect("known api key");
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-raw-test")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api_key.request_header_version(version))
        .expect("encode request header");
    req.encode(&mut body, version).expect("encode request body");
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Decodes every complete record batch in a fetch response's `records` bytes
/// (a trailing partial batch, which Kafka allows, is ignored).
pub fn decode_records(records: &Option<Bytes>) -> Vec<Record> {
    let mut out = Vec::new();
    let Some(buf) = records else { return out };
    let mut buf = buf.clone();
    while buf.len() >= 12 {
        let batch_len = i32::from_be_bytes(buf[8..12].try_into().unwrap());
        assert!(batch_len >= 0, "negative batch length in fetch response");
        let total = 12 + batch_len as usize;
        if buf.len() < total {
            break;
        }
        let mut batch = buf.split_to(total);
        let set = RecordBatchDecoder::decode(&mut batch).expect("decode fetched record batch");
        out.extend(set.records);
    }
    out
}

/// Kafka error codes used by the tests.
pub mod err {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_CONFIG: i16 = 40;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

// ---------------------------------------------------------------------------
// Request builders
// ---------------------------------------------------------------------------

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, FetchRequest, FetchResponse, ListOffsetsRequest, ProduceRequest,
    ProduceResponse,
};

/// A Produce request writing one record batch to each given partition of `topic`.
pub fn produce_request(topic: &str, acks: i16, batches: Vec<(i32, Bytes)>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(
                batches
                    .into_iter()
                    .map(|(p, b)| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(b))
                    })
                    .collect(),
            )])
}

/// A Fetch request for `(partition, offset)` pairs of `topic`, long-polling up
/// to `max_wait_ms` for at least one byte, with roomy limits.
pub fn fetch_request(topic: &str, partitions: &[(i32, i64)], max_wait_ms: i32) -> FetchRequest {
    fetch_request_limited(topic, partitions, 64 << 20, 4 << 20, max_wait_ms)
}

/// [`fetch_request`] with the response's and each partition's byte limits.
pub fn fetch_request_limited(
    topic: &str,
    partitions: &[(i32, i64)],
    max_bytes: i32,
    partition_max_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(p, off)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(off)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )])
}

/// The id (KIP-516) of `topic`, from Metadata v12.
pub fn topic_id(c: &mut RawClient, topic: &str) -> uuid::Uuid {
    use kafka_protocol::messages::{metadata_request, MetadataRequest, MetadataResponse};
    let wanted =
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(topic)));
    let request = MetadataRequest::default().with_topics(Some(vec![wanted]));
    let response: MetadataResponse = c.call(12, &request);
    response.topics[0].topic_id
}

/// A DescribeTopicPartitions of `names` (every topic when empty), at most
/// `limit` partitions, from `cursor` (topic, partition) on.
pub fn describe_topic_partitions_request(
    names: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> kafka_protocol::messages::DescribeTopicPartitionsRequest {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let mut request = kafka_protocol::messages::DescribeTopicPartitionsRequest::default();
    request.topics = names
        .iter()
        .map(|n| TopicRequest::default().with_name(topic_name(n)))
        .collect();
    request.response_partition_limit = limit;
    request.cursor = cursor.map(|(topic, partition)| {
        Cursor::default()
            .with_topic_name(topic_name(topic))
            .with_partition_index(partition)
    });
    request
}

/// A Fetch (v13+) of `partitions` of the topic with id `id`, no waiting.
pub fn fetch_by_id(id: uuid::Uuid, partitions: &[(i32, i64)]) -> FetchRequest {
    let mut request = fetch_request("", partitions, 0);
    request.topics[0].topic = Default::default();
    request.topics[0].topic_id = id;
    request
}

/// A ListOffsets request for one partition at `timestamp` (-1 latest, -2 earliest).
pub fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])])
}

pub fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-tests"))
        .with_client_software_version(StrBytes::from_static_str("0.1.0"))
}

impl RawClient {
    /// Sets topic configs with IncrementalAlterConfigs (SET) at `version`;
    /// returns the resource's (error code, error message).
    pub fn alter_topic_configs(
        &mut self,
        version: i16,
        topic: &str,
        configs: &[(&str, &str)],
    ) -> (i16, Option<String>) {
        const RESOURCE_TOPIC: i8 = 2;
        const OP_SET: i8 = 0;
        let ops: Vec<(&str, i8, Option<&str>)> = configs
            .iter()
            .map(|(k, v)| (*k, OP_SET, Some(*v)))
            .collect();
        self.incremental_alter(version, RESOURCE_TOPIC, topic, &ops)
    }

    /// IncrementalAlterConfigs at `version` for one resource with (key,
    /// operation, value) entries; returns its (error code, error message).
    pub fn incremental_alter(
        &mut self,
        version: i16,
        resource_type: i8,
        name: &str,
        ops: &[(&str, i8, Option<&str>)],
    ) -> (i16, Option<String>) {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        use kafka_protocol::messages::{
            IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
        };
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            AlterableConfig::default()
                                .with_name(str_bytes(k))
                                .with_config_operation(*op)
                                .with_value(v.map(str_bytes))
                        })
                        .collect(),
                ),
        ]);
        let resp: IncrementalAlterConfigsResponse = self.call(version, &req);
        assert_eq!(resp.responses.len(), 1);
        let r = &resp.responses[0];
        assert_eq!(r.resource_type, resource_type);
        assert_eq!(r.resource_name.as_str(), name);
        (
            r.error_code,
            r.error_message.as_ref().map(|s| s.as_str().to_string()),
        )
    }

    /// DescribeConfigs v4 of one resource, every key; asserts it was
    /// answered without error and returns its entries.
    pub fn describe_configs(
        &mut self,
        resource_type: i8,
        name: &str,
        include_synonyms: bool,
    ) -> Vec<kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult>
    {
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
        let request = DescribeConfigsRequest::default()
            .with_include_synonyms(include_synonyms)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name))
                .with_configuration_keys(None)]);
        let r: DescribeConfigsResponse = self.call(4, &request);
        assert_eq!(r.results[0].error_code, 0, "{r:?}");
        r.results.into_iter().next().expect("one result").configs
    }

    /// Produces values `v{first}` to `v{first + count - 1}` to partition 0,
    /// in one batch stamped `timestamp_ms`, and asserts they land from
    /// offset `first` on.
    pub fn produce_values_at(&mut self, topic: &str, first: i64, count: i64, timestamp_ms: i64) {
        let values: Vec<String> = (first..first + count).map(|i| format!("v{i}")).collect();
        let specs: Vec<_> = values
            .iter()
            .map(|v| (None, Some(v.as_bytes()), timestamp_ms, &[][..]))
            .collect();
        let batch = sluice::record::build::build_batch(0, &specs);
        assert_eq!(self.produce_batch(topic, 0, batch), (0, first));
    }

    /// Produces one batch to one partition (Produce v9, acks=-1); returns
    /// (error code, base offset).
    pub fn produce_batch(&mut self, topic: &str, partition: i32, batch: Bytes) -> (i16, i64) {
        self.produce_batch_with(topic, partition, -1, 10_000, batch)
    }

    /// Produces one batch to one partition (Produce v9) with the given acks
    /// and the request's `timeout_ms` (how long the leader may wait for
    /// the ISR with acks=-1); returns (error code, base offset).
    pub fn produce_batch_with(
        &mut self,
        topic: &str,
        partition: i32,
        acks: i16,
        timeout_ms: i32,
        batch: Bytes,
    ) -> (i16, i64) {
        let request =
            produce_request(topic, acks, vec![(partition, batch)]).with_timeout_ms(timeout_ms);
        let resp: ProduceResponse = self.call(9, &request);
        assert_eq!(resp.responses.len(), 1, "one topic in the produce response");
        let t = &resp.responses[0];
        assert_eq!(t.name.0.as_str(), topic);
        assert_eq!(
            t.partition_responses.len(),
            1,
            "one partition in the produce response"
        );
        let p = &t.partition_responses[0];
        assert_eq!(p.index, partition);
        (p.error_code, p.base_offset)
    }

    /// Latest offset (log end offset) of a partition via ListOffsets v7.
    pub fn log_end_offset(&mut self, topic: &str, partition: i32) -> i64 {
        self.list_offset(topic, partition, -1)
    }

    /// ListOffsets v7 for one partition; asserts no error; returns the offset.
    pub fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> i64 {
        let resp = self.call(7, &list_offsets_request(topic, partition, timestamp));
        let p = &resp.topics[0].partitions[0];
        assert_eq!(
            p.error_code,
            err::NONE,
            "ListOffsets error for {topic}/{partition}"
        );
        p.offset
    }

    /// Fetch v12 for one partition at `offset`; returns the response.
    pub fn fetch_one(&mut self, topic: &str, partition: i32, offset: i64) -> FetchResponse {
        self.call(12, &fetch_request(topic, &[(partition, offset)], 500))
    }
}

impl RawClient {
    /// FindCoordinator v3 for group `group`; returns (error code, node id).
    pub fn find_group_coordinator(&mut self, group: &str) -> (i16, i32) {
        self.find_coordinator(group, 0)
    }

    /// FindCoordinator v3 for a group (`key_type` 0) or a transactional id (1).
    pub fn find_coordinator(&mut self, key: &str, key_type: i8) -> (i16, i32) {
        let request = kafka_protocol::messages::FindCoordinatorRequest::default()
            .with_key(str_bytes(key))
            .with_key_type(key_type);
        let resp = self.call(3, &request);
        (resp.error_code, resp.node_id.0)
    }
}

/// A transactional producer with an open transaction on `partitions` of
/// `topic`, the way clients before transaction version 2 open one
/// (InitProducerId v4, AddPartitionsToTxn v3): its (producer id, epoch).
#[allow(dead_code)] // Not every test binary opens transactions.
pub fn open_transaction(
    client: &mut RawClient,
    transactional_id: &str,
    topic: &str,
    partitions: &[i32],
) -> (i64, i16) {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, InitProducerIdRequest, ProducerId, TransactionalId,
    };
    let id = TransactionalId(StrBytes::from_string(transactional_id.to_string()));
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(id.clone()))
        .with_transaction_timeout_ms(60_000);
    // The first transactional request creates `__transaction_state`; its
    // coordinator answers once loaded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let init = loop {
        let init = client.call(4, &request);
        let retriable = [
            err::COORDINATOR_LOAD_IN_PROGRESS,
            err::COORDINATOR_NOT_AVAILABLE,
            err::NOT_COORDINATOR,
        ];
        if !retriable.contains(&init.error_code) || Instant::now() > deadline {
            break init;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(init.error_code, err::NONE, "InitProducerId");
    let producer = (init.producer_id.0, init.producer_epoch);
    let added = client.call(
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(id)
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions.to_vec())]),
    );
    for p in &added.results_by_topic_v3_and_below[0].results_by_partition {
        assert_eq!(p.partition_error_code, err::NONE, "AddPartitionsToTxn");
    }
    producer
}

/// Produces one transactional batch of `transactional_id` to one
/// partition (acks=-1) with Produce `version`; returns (error code, base
/// offset).
#[allow(dead_code)]
pub fn produce_transactional(
    client: &mut RawClient,
    version: i16,
    transactional_id: &str,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> (i16, i64) {
    let id = kafka_protocol::messages::TransactionalId(StrBytes::from_string(
        transactional_id.to_string(),
    ));
    let request =
        produce_request(topic, -1, vec![(partition, batch)]).with_transactional_id(Some(id));
    let response: ProduceResponse = client.call(version, &request);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

//! Mutated and truncated requests of every served API and version: each may
//! close its own connection, none may take the broker down.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use bytes::{BufMut, Bytes, BytesMut};
use common::raw::{self, RawClient};
use common::*;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    consumer_group_heartbeat_request, AddRaftVoterRequest, ApiKey, ApiVersionsRequest,
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, GetTelemetrySubscriptionsRequest, MetadataRequest,
    PushTelemetryRequest, RemoveRaftVoterRequest, RequestHeader,
};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};

/// Mutations per (request, version): enough to reach every field's decoder.
const MUTATIONS: usize = 32;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The request body (header included) of `req` at `version`.
fn encode<R: Request>(req: &R, version: i16) -> Bytes {
    let key = ApiKey::try_from(R::KEY).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, key.request_header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    body.freeze()
}

/// Valid requests of the served APIs, each at every version it encodes to.
fn seeds(topic: &str) -> Vec<Bytes> {
    let batch = sluice::record::build::build_batch(
        0,
        &[(
            Some(b"k".as_slice()),
            Some(b"value".as_slice()),
            1_700_000_000_000,
            &[("h", Some(b"1".as_slice()))],
        )],
    );
    let mut out = Vec::new();
    macro_rules! all_versions {
        ($req:expr, $range:expr) => {
            for v in $range {
                out.push(encode(&$req, v));
            }
        };
    }
    all_versions!(ApiVersionsRequest::default(), 0..=3);
    all_versions!(
        MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(raw::topic_name(topic)))
        ])),
        0..=12
    );
    all_versions!(
        raw::produce_request(topic, 1, vec![(0, batch.clone())]),
        3..=9
    );
    all_versions!(raw::fetch_request(topic, &[(0, 0)], 0), 4..=12);
    all_versions!(raw::list_offsets_request(topic, 0, -2), 1..=7);
    all_versions!(
        CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(raw::topic_name("fuzz-created"))
            .with_num_partitions(1)
            .with_replication_factor(1)]),
        2..=7
    );
    all_versions!(
        DeleteTopicsRequest::default().with_topic_names(vec![raw::topic_name("fuzz-created")]),
        1..=5
    );
    all_versions!(DescribeConfigsRequest::default(), 1..=4);
    out.push(encode(&consumer_heartbeat(topic, None), 0));
    out.push(encode(&consumer_heartbeat(topic, Some("fuzz.*")), 1));
    all_versions!(
        ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![raw::str_bytes("fuzz-group").into()]),
        0..=1
    );
    all_versions!(
        raw::describe_topic_partitions_request(&[topic, "fuzz-none"], 2, Some((topic, 0))),
        0..=0
    );
    all_versions!(AddRaftVoterRequest::default().with_voter_id(2), 0..=0);
    all_versions!(RemoveRaftVoterRequest::default().with_voter_id(2), 0..=0);
    all_versions!(GetTelemetrySubscriptionsRequest::default(), 0..=0);
    all_versions!(
        PushTelemetryRequest::default()
            .with_client_instance_id(uuid::Uuid::from_u128(7))
            .with_compression_type(4)
            .with_metrics(Bytes::from_static(b"\x28\xb5\x2f\xfd\x00\x58\x01\x00\x00")),
        0..=0
    );
    out.extend(dropped_version_seeds(topic));
    out
}

/// A consumer protocol member's first heartbeat: names, a regex (v1 only),
/// a server assignor and owned partitions, so each field's decoder and the
/// coordinator's checks are reached.
fn consumer_heartbeat(topic: &str, regex: Option<&str>) -> ConsumerGroupHeartbeatRequest {
    let owned = consumer_group_heartbeat_request::TopicPartitions::default()
        .with_topic_id(uuid::Uuid::from_u128(7))
        .with_partitions(vec![0, 1]);
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(raw::str_bytes("fuzz-group").into())
        .with_member_id(raw::str_bytes("fuzz-member"))
        .with_rebalance_timeout_ms(1000)
        .with_subscribed_topic_names(Some(vec![raw::topic_name(topic)]))
        .with_subscribed_topic_regex(regex.map(raw::str_bytes))
        .with_server_assignor(Some(raw::str_bytes("uniform")))
        .with_topic_partitions(Some(vec![owned]))
}

/// The versions Kafka 4.0 dropped, as Kafka 3.x clients encode them.
fn dropped_version_seeds(topic: &str) -> Vec<Bytes> {
    use common::raw_v3::s;
    use kafka_protocol_v3::messages as old;
    let mut out = Vec::new();
    // The frame without its size prefix.
    let mut push = |frame: Vec<u8>| out.push(Bytes::from(frame).slice(4..));
    let mut lp = old::list_offsets_request::ListOffsetsPartition::default();
    lp.timestamp = -1;
    lp.max_num_offsets = 5;
    let mut lt = old::list_offsets_request::ListOffsetsTopic::default();
    lt.name = s(topic).into();
    lt.partitions = vec![lp];
    let mut list = old::ListOffsetsRequest::default();
    list.topics = vec![lt];
    push(common::raw_v3::frame(0, 1, &list));
    let mut cp = old::offset_commit_request::OffsetCommitRequestPartition::default();
    cp.committed_offset = 1;
    let mut ct = old::offset_commit_request::OffsetCommitRequestTopic::default();
    ct.name = s(topic).into();
    ct.partitions = vec![cp];
    let mut commit = old::OffsetCommitRequest::default();
    commit.group_id = s("fuzz-group").into();
    commit.topics = vec![ct];
    push(common::raw_v3::frame(0, 1, &commit));
    commit.topics[0].partitions[0].commit_timestamp = 1_700_000_000_000;
    push(common::raw_v3::frame(1, 1, &commit));
    let mut fetch = old::OffsetFetchRequest::default();
    fetch.group_id = s("fuzz-group").into();
    let mut ft = old::offset_fetch_request::OffsetFetchRequestTopic::default();
    ft.name = s(topic).into();
    ft.partition_indexes = vec![0];
    fetch.topics = Some(vec![ft]);
    push(common::raw_v3::frame(0, 1, &fetch));
    let mut create = old::CreateTopicsRequest::default();
    let mut created = old::create_topics_request::CreatableTopic::default();
    created.name = s("fuzz-created-old").into();
    created.num_partitions = 1;
    created.replication_factor = 1;
    create.topics = vec![created];
    push(common::raw_v3::frame(0, 1, &create));
    push(common::raw_v3::frame(1, 1, &create));
    let mut delete = old::DeleteTopicsRequest::default();
    delete.topic_names = vec![s("fuzz-created-old").into()];
    push(common::raw_v3::frame(0, 1, &delete));
    let mut resource = old::describe_configs_request::DescribeConfigsResource::default();
    resource.resource_type = 2;
    resource.resource_name = s(topic);
    let mut describe = old::DescribeConfigsRequest::default();
    describe.resources = vec![resource];
    push(common::raw_v3::frame(0, 1, &describe));
    let mut ep = old::offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
    ep.leader_epoch = 0;
    let mut et = old::offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
    et.topic = s(topic).into();
    et.partitions = vec![ep];
    let mut epoch = old::OffsetForLeaderEpochRequest::default();
    epoch.topics = vec![et];
    push(common::raw_v3::frame(0, 1, &epoch));
    push(common::raw_v3::frame(1, 1, &epoch));
    let mut marker = old::write_txn_markers_request::WritableTxnMarker::default();
    let mut mt = old::write_txn_markers_request::WritableTxnMarkerTopic::default();
    mt.name = s(topic).into();
    mt.partition_indexes = vec![0];
    marker.topics = vec![mt];
    let mut markers = old::WriteTxnMarkersRequest::default();
    markers.markers = vec![marker];
    push(common::raw_v3::frame(0, 1, &markers));
    for (magic, version) in [(0i8, 0i16), (0, 1), (1, 2)] {
        let mut set = Vec::new();
        let m = sluice::message_format::Message {
            offset: 0,
            magic,
            attributes: 0,
            timestamp: 1_700_000_000_000,
            key: Some(b"k"),
            value: Some(b"value"),
        };
        sluice::message_format::write_message(&mut set, &m);
        let mut p = old::produce_request::PartitionProduceData::default();
        p.records = Some(set.into());
        let mut t = old::produce_request::TopicProduceData::default();
        t.name = s(topic).into();
        t.partition_data = vec![p];
        let mut produce = old::ProduceRequest::default();
        produce.acks = 1;
        produce.timeout_ms = 1_000;
        produce.topic_data = vec![t];
        push(common::raw_v3::frame(version, 1, &produce));
    }
    let mut fp = old::fetch_request::FetchPartition::default();
    fp.partition_max_bytes = 1 << 20;
    let mut ft = old::fetch_request::FetchTopic::default();
    ft.topic = s(topic).into();
    ft.partitions = vec![fp];
    let mut fetch = old::FetchRequest::default();
    fetch.replica_id = (-1).into();
    fetch.topics = vec![ft];
    for version in 0..=3 {
        push(common::raw_v3::frame(version, 1, &fetch));
    }
    out
}

fn mutate(seed: &Bytes, rng: &mut Rng) -> Bytes {
    let mut b = seed.to_vec();
    match rng.below(4) {
        // Truncate anywhere after the fixed header prefix.
        0 => b.truncate(8 + rng.below(b.len().saturating_sub(8).max(1))),
        // Flip a few bytes past the api key and version.
        1 | 2 => {
            for _ in 0..1 + rng.below(4) {
                let at = 4 + rng.below(b.len() - 4);
                b[at] ^= 1 << rng.below(8);
            }
        }
        // Overwrite a 4-byte run (a length or count) with an extreme value.
        _ => {
            let at = 8 + rng.below(b.len().saturating_sub(12).max(1));
            let v: [u8; 4] = [
                [0x7f, 0xff, 0xff, 0xff],
                [0xff, 0xff, 0xff, 0xfe],
                [0x80, 0, 0, 0],
            ][rng.below(3)];
            let end = (at + 4).min(b.len());
            b[at..end].copy_from_slice(&v[..end - at]);
        }
    }
    Bytes::from(b)
}

fn send_and_hang_up(bootstrap: &str, body: &[u8]) {
    let mut s = TcpStream::connect(bootstrap).expect("connect");
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.put_slice(body);
    // The broker may close first; that is an allowed answer.
    let _ = s.write_all(&frame);
    let _ = s.shutdown(Shutdown::Write);
    // Wait until the broker is done with it: it closes after answering (or
    // refusing) and seeing our end of stream.
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// Thousands of mutated frames across every served API and version leave a
/// broker that still negotiates, produces and consumes.
#[test]
fn mutated_requests_never_take_the_broker_down() {
    // A metrics endpoint, so the client telemetry requests are served too.
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "fuzz", 2, &[]);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let seeds = seeds("fuzz");
    assert!(seeds.len() > 50);
    for seed in &seeds {
        for _ in 0..MUTATIONS {
            send_and_hang_up(&bs, &mutate(seed, &mut rng));
        }
    }
    let mut fresh = RawClient::connect(&bs);
    let versions: kafka_protocol::messages::ApiVersionsResponse =
        fresh.call(3, &raw::api_versions_request());
    assert_eq!(versions.error_code, 0);
    let d = produce_values(&bs, "fuzz", Some(0), &["after the storm".to_string()]);
    let start = d[0].offset;
    let got = consume_from(
        &bs,
        "fuzz",
        &[(0, rdkafka::Offset::Offset(start))],
        1,
        std::time::Duration::from_secs(30),
    );
    assert_eq!(payload_str(&got[0]), "after the storm");
    let log = broker.stderr_tail(100_000);
    assert!(!log.contains("panicked"), "a shard panicked:\n{log}");
}

//! The request versions Kafka 4.0 dropped (KIP-896) and Kafka 3.9 served,
//! sent as Kafka 3.x clients encode them, over raw sockets.

mod common;

use common::raw::{self, err, RawClient};
use common::raw_v3::{self, s};
use common::Broker;
use kafka_protocol_v3::messages as old;
use sluice::group::records::{self, OffsetsRecord};

fn create_topic_v0(c: &mut RawClient, name: &str, partitions: i32) {
    let mut topic = old::create_topics_request::CreatableTopic::default();
    topic.name = s(name).into();
    topic.num_partitions = partitions;
    topic.replication_factor = 1;
    let mut r = old::CreateTopicsRequest::default();
    r.topics = vec![topic];
    r.timeout_ms = 10_000;
    let resp = raw_v3::call(c, 0, &r);
    assert_eq!(resp.topics[0].error_code, err::NONE, "CreateTopics v0");
}

fn list_offsets_v0(c: &mut RawClient, topic: &str, timestamp: i64, max: i32) -> (i16, Vec<i64>) {
    let mut p = old::list_offsets_request::ListOffsetsPartition::default();
    p.timestamp = timestamp;
    p.max_num_offsets = max;
    let mut t = old::list_offsets_request::ListOffsetsTopic::default();
    t.name = s(topic).into();
    t.partitions = vec![p];
    let mut r = old::ListOffsetsRequest::default();
    r.replica_id = (-1).into();
    r.topics = vec![t];
    let resp = raw_v3::call(c, 0, &r);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.old_style_offsets.clone())
}

/// (partition -> offset) of an OffsetCommit v0/v1 request for one topic;
/// `commit_timestamp` only goes out in v1.
fn commit(
    c: &mut RawClient,
    version: i16,
    group: &str,
    topic: &str,
    offsets: &[(i32, i64, i64)],
) -> Vec<i16> {
    let mut t = old::offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = s(topic).into();
    t.partitions = offsets
        .iter()
        .map(|&(partition, offset, commit_timestamp)| {
            let mut p = old::offset_commit_request::OffsetCommitRequestPartition::default();
            p.partition_index = partition;
            p.committed_offset = offset;
            p.committed_metadata = Some(s("legacy"));
            if version == 1 {
                p.commit_timestamp = commit_timestamp;
            }
            p
        })
        .collect();
    let mut r = old::OffsetCommitRequest::default();
    r.group_id = s(group).into();
    r.topics = vec![t];
    let resp = raw_v3::call(c, version, &r);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

fn fetch_offsets_v0(c: &mut RawClient, group: &str, topic: &str, partitions: &[i32]) -> Vec<i64> {
    let mut t = old::offset_fetch_request::OffsetFetchRequestTopic::default();
    t.name = s(topic).into();
    t.partition_indexes = partitions.to_vec();
    let mut r = old::OffsetFetchRequest::default();
    r.group_id = s(group).into();
    r.topics = Some(vec![t]);
    let resp = raw_v3::call(c, 0, &r);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, err::NONE);
            assert_eq!(p.metadata.as_deref(), Some("legacy"));
            p.committed_offset
        })
        .collect()
}

/// The commit times in `__consumer_offsets` for `group`, per partition.
fn stored_commit_times(c: &mut RawClient, group: &str) -> Vec<(i32, i64)> {
    let mut out = Vec::new();
    let meta: kafka_protocol::messages::MetadataResponse = c.call(
        1,
        &kafka_protocol::messages::MetadataRequest::default().with_topics(None),
    );
    let offsets_topic = meta
        .topics
        .iter()
        .find(|t| t.name.as_deref().map(|n| n.as_str()) == Some("__consumer_offsets"))
        .expect("__consumer_offsets exists");
    for p in &offsets_topic.partitions {
        let fetched = c.fetch_one("__consumer_offsets", p.partition_index, 0);
        let records = raw::decode_records(&fetched.responses[0].partitions[0].records);
        for r in records {
            let decoded = records::decode(r.key.as_deref(), r.value.as_deref());
            if let Ok(OffsetsRecord::Offset {
                group: g,
                partition,
                value: Some(v),
                ..
            }) = decoded
            {
                if g == group {
                    out.push((partition, v.commit_timestamp));
                }
            }
        }
    }
    out.sort();
    out
}

/// ListOffsets v0 answers as Kafka 3.x did (`legacyFetchOffsetsBefore`):
/// segment starts chosen by their files' times, then the log end.
#[test]
fn list_offsets_v0_walks_segments_by_file_time() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    common::create_topic(&bs, "rolled", 1, &[("segment.bytes", "100")]);
    let mut c = RawClient::connect(&bs);
    for _ in 0..3 {
        // Each batch outgrows a 100-byte segment: one segment per batch.
        let batch = common::build_owned_batch(&[common::OwnedRecord {
            key: None,
            value: Some(vec![b'v'; 60]),
            timestamp: common::now_ms(),
            headers: vec![],
        }]);
        assert_eq!(c.produce_batch("rolled", 0, batch).0, err::NONE);
    }
    let files = broker.segment_files("rolled", 0);
    assert_eq!(files.len(), 3, "{files:?}");
    // Segment i's file last written (i + 1) * 10 s after the epoch.
    for (i, path) in files.iter().enumerate() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(10 * (i as u64 + 1));
        std::fs::File::open(path).unwrap().set_modified(at).unwrap();
    }
    assert_eq!(
        list_offsets_v0(&mut c, "rolled", -1, 10),
        (0, vec![3, 2, 1, 0])
    );
    assert_eq!(list_offsets_v0(&mut c, "rolled", -1, 2), (0, vec![3, 2]));
    assert_eq!(list_offsets_v0(&mut c, "rolled", -2, 10), (0, vec![0]));
    assert_eq!(
        list_offsets_v0(&mut c, "rolled", 25_000, 10),
        (0, vec![1, 0])
    );
    assert_eq!(list_offsets_v0(&mut c, "rolled", 30_000, 1), (0, vec![2]));
    assert_eq!(list_offsets_v0(&mut c, "rolled", 9_999, 10), (0, vec![]));
    let (code, offsets) = list_offsets_v0(&mut c, "no-such-topic", -1, 10);
    assert_eq!((code, offsets), (err::UNKNOWN_TOPIC_OR_PARTITION, vec![]));
}

/// CreateTopics v0, ListOffsets v0, OffsetCommit v0-1, OffsetFetch v0,
/// DescribeConfigs v0, OffsetForLeaderEpoch v0, Metadata v0,
/// DescribeLogDirs v0 and DeleteTopics v0 do what Kafka 3.9 did with them.
#[test]
fn dropped_versions_are_served() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(&bs);
    create_topic_v0(&mut c, "legacy", 2);
    common::wait_for_partitions(&bs, "legacy", 2);

    // Metadata v0: an empty topic list means every topic.
    let meta = raw_v3::call(&mut c, 0, &old::MetadataRequest::default());
    assert!(
        meta.topics
            .iter()
            .any(|t| t.name.as_deref().map(|n| n.as_str()) == Some("legacy")),
        "Metadata v0 with no topics lists them all"
    );

    for ts in 0..3 {
        let batch = common::build_owned_batch(&[common::OwnedRecord {
            key: None,
            value: Some(vec![b'v'; 10]),
            timestamp: 1_000 + ts,
            headers: vec![],
        }]);
        assert_eq!(c.produce_batch("legacy", 0, batch).0, err::NONE);
    }
    assert_eq!(list_offsets_v0(&mut c, "legacy", -1, 10), (0, vec![3, 0]));
    assert_eq!(list_offsets_v0(&mut c, "legacy", -1, 1), (0, vec![3]));
    assert_eq!(list_offsets_v0(&mut c, "legacy", -2, 1), (0, vec![0]));
    // A time is matched against segment file times, not record times.
    assert_eq!(list_offsets_v0(&mut c, "legacy", 1_001, 1), (0, vec![]));
    let later = common::now_ms() + 86_400_000;
    assert_eq!(
        list_offsets_v0(&mut c, "legacy", later, 10),
        (0, vec![3, 0])
    );

    // A simple consumer's commit (v0: no generation, no member) and v1's
    // commit time, which Kafka 3.x stored as the commit's time.
    let day_ago = common::now_ms() - 86_400_000;
    assert_eq!(
        commit(&mut c, 0, "old-group", "legacy", &[(0, 2, 0)]),
        [err::NONE]
    );
    assert_eq!(
        commit(&mut c, 1, "old-group", "legacy", &[(1, 0, day_ago)]),
        [err::NONE]
    );
    assert_eq!(
        fetch_offsets_v0(&mut c, "old-group", "legacy", &[0, 1]),
        [2, 0]
    );
    let times = stored_commit_times(&mut c, "old-group");
    assert_eq!(times.len(), 2, "{times:?}");
    assert!(
        times[0].1 > day_ago + 3_600_000,
        "v0 commits now: {times:?}"
    );
    assert_eq!(times[1], (1, day_ago), "v1's commit time is kept");

    let mut res = old::describe_configs_request::DescribeConfigsResource::default();
    res.resource_type = 2; // topic
    res.resource_name = s("legacy");
    res.configuration_keys = None; // every config
    let mut r = old::DescribeConfigsRequest::default();
    r.resources = vec![res];
    let resp = raw_v3::call(&mut c, 0, &r);
    let configs = &resp.results[0].configs;
    assert_eq!(resp.results[0].error_code, err::NONE);
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .expect("retention.ms described");
    assert!(retention.is_default, "an unset config is a default");

    let mut p = old::offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
    p.partition = 0;
    p.leader_epoch = 0;
    let mut t = old::offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
    t.topic = s("legacy").into();
    t.partitions = vec![p];
    let mut r = old::OffsetForLeaderEpochRequest::default();
    r.topics = vec![t];
    let resp = raw_v3::call(&mut c, 0, &r);
    let e = &resp.topics[0].partitions[0];
    assert_eq!((e.error_code, e.end_offset), (err::NONE, 3));

    // DescribeLogDirs v0: null topics means every replica.
    let mut r = old::DescribeLogDirsRequest::default();
    r.topics = None;
    let resp = raw_v3::call(&mut c, 0, &r);
    let dir = &resp.results[0];
    assert_eq!(dir.error_code, err::NONE);
    let legacy = dir
        .topics
        .iter()
        .find(|t| t.name.as_str() == "legacy")
        .expect("DescribeLogDirs v0 lists the topic");
    let sizes: Vec<(i32, bool)> = legacy
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.partition_size > 0))
        .collect();
    assert_eq!(
        sizes,
        [(0, true), (1, false)],
        "partition 0 holds the batches"
    );

    let mut r = old::DeleteTopicsRequest::default();
    r.topic_names = vec![s("legacy").into()];
    r.timeout_ms = 10_000;
    let resp = raw_v3::call(&mut c, 0, &r);
    assert_eq!(resp.responses[0].error_code, err::NONE, "DeleteTopics v0");
}

/// A version no one serves closes the connection, as Kafka 3.9's socket
/// server did (its `parseRequestHeader` refuses a version the API does not
/// enable), and the log line names the client software from ApiVersions.
#[test]
fn unsupported_version_names_the_client_software() {
    let broker = Broker::start(1);
    let mut c = RawClient::connect(&broker.bootstrap());
    let mut hello = old::ApiVersionsRequest::default();
    hello.client_software_name = s("legacy-test-client");
    hello.client_software_version = s("1.22.0");
    let versions = raw_v3::call(&mut c, 3, &hello);
    assert_eq!(versions.error_code, err::NONE);
    let commit = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == 8)
        .expect("OffsetCommit advertised");
    assert_eq!(commit.min_version, 0, "Kafka 3.9's oldest OffsetCommit");

    // Produce v14: past every version served (and past what the protocol
    // crate encodes, so the frame is written by hand: the size, then the
    // header's api key, version, correlation id and client id).
    let mut frame = Vec::new();
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&14i16.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    frame.push(0); // no tagged fields
    let mut sized = (frame.len() as i32).to_be_bytes().to_vec();
    sized.extend_from_slice(&frame);
    c.send_bytes(&sized).expect("send");
    assert!(c.wait_closed(common::OP_TIMEOUT), "connection closed");
    let deadline = std::time::Instant::now() + common::OP_TIMEOUT;
    loop {
        let log = broker.stderr_tail(50);
        if log.contains("Produce version 14") && log.contains("legacy-test-client 1.22.0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no log line: {log}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A message set of `(key, value, timestamp)` in `magic`, gzip-wrapped when
/// `gzip` (inner offsets from 0, as a magic 1 producer numbers them).
fn message_set(magic: i8, msgs: &[(&str, &str, i64)], gzip: bool) -> bytes::Bytes {
    use sluice::message_format::{write_message, Message};
    let mut set = Vec::new();
    for (i, (k, v, ts)) in msgs.iter().enumerate() {
        let m = Message {
            offset: i as i64,
            magic,
            attributes: 0,
            timestamp: *ts,
            key: Some(k.as_bytes()),
            value: Some(v.as_bytes()),
        };
        write_message(&mut set, &m);
    }
    if !gzip {
        return set.into();
    }
    let mut value = Vec::new();
    sluice::compression::compress(sluice::compression::Codec::Gzip, &set, None, &mut value);
    let mut out = Vec::new();
    let wrapper = Message {
        offset: msgs.len() as i64 - 1,
        magic,
        attributes: 1, // gzip
        timestamp: msgs.iter().map(|m| m.2).max().unwrap_or(-1),
        key: None,
        value: Some(&value),
    };
    write_message(&mut out, &wrapper);
    out.into()
}

fn produce_v(c: &mut RawClient, version: i16, topic: &str, set: bytes::Bytes) -> (i16, i64) {
    let mut p = old::produce_request::PartitionProduceData::default();
    p.index = 0;
    p.records = Some(set);
    let mut t = old::produce_request::TopicProduceData::default();
    t.name = s(topic).into();
    t.partition_data = vec![p];
    let mut r = old::ProduceRequest::default();
    r.acks = 1;
    r.timeout_ms = 10_000;
    r.topic_data = vec![t];
    let resp = raw_v3::call(c, version, &r);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Produce v0 (magic 0), v2 (magic 1, plain and gzip-wrapped) read back by
/// librdkafka as v2 batches with the same keys, values and timestamps; a
/// Fetch v2 of them comes back down-converted to magic 1, counted at
/// /metrics.
#[test]
fn old_message_formats_produce_and_fetch() {
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    common::create_topic(&bs, "old-formats", 1, &[]);
    let mut c = RawClient::connect(&bs);
    let t0 = common::now_ms();
    let v0 = message_set(0, &[("k0", "zero-0", -1), ("k1", "zero-1", -1)], false);
    assert_eq!(produce_v(&mut c, 0, "old-formats", v0), (err::NONE, 0));
    let v1 = message_set(1, &[("k2", "one-2", t0), ("k3", "one-3", t0 + 1)], false);
    assert_eq!(produce_v(&mut c, 2, "old-formats", v1), (err::NONE, 2));
    let gz = message_set(1, &[("k4", "gz-4", t0 + 2), ("k5", "gz-5", t0 + 3)], true);
    assert_eq!(produce_v(&mut c, 1, "old-formats", gz), (err::NONE, 4));
    // A v2 batch has no place in Produce v0-2: Kafka's INVALID_RECORD.
    let v2 = common::build_owned_batch(&[common::OwnedRecord {
        key: None,
        value: Some(b"v2".to_vec()),
        timestamp: t0,
        headers: vec![],
    }]);
    assert_eq!(produce_v(&mut c, 2, "old-formats", v2).0, 87);

    let got = common::consume_all(&bs, "old-formats", 1, 6, common::OP_TIMEOUT);
    let seen: Vec<(String, String, Option<i64>)> = got
        .iter()
        .map(|m| {
            use rdkafka::message::Message as _;
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            (key, common::payload_str(m), m.timestamp().to_millis())
        })
        .collect();
    let want: Vec<(String, String, Option<i64>)> = [
        ("k0", "zero-0", None),
        ("k1", "zero-1", None),
        ("k2", "one-2", Some(t0)),
        ("k3", "one-3", Some(t0 + 1)),
        ("k4", "gz-4", Some(t0 + 2)),
        ("k5", "gz-5", Some(t0 + 3)),
    ]
    .iter()
    .map(|(k, v, ts)| (k.to_string(), v.to_string(), *ts))
    .collect();
    assert_eq!(seen, want);

    // Fetch v2: magic 1 messages at the same offsets.
    let mut fp = old::fetch_request::FetchPartition::default();
    fp.fetch_offset = 0;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = old::fetch_request::FetchTopic::default();
    ft.topic = s("old-formats").into();
    ft.partitions = vec![fp];
    let mut r = old::FetchRequest::default();
    r.replica_id = (-1).into();
    r.max_wait_ms = 100;
    r.topics = vec![ft];
    let resp = raw_v3::call(&mut c, 2, &r);
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (err::NONE, 6));
    let records = p.records.clone().expect("records");
    let mut out = Vec::new();
    for m in sluice::message_format::Messages::new(&records) {
        let m = m.expect("a whole magic 1 message");
        assert_eq!(m.magic, 1);
        let codec = m.codec().unwrap();
        if codec == sluice::compression::Codec::None {
            out.push((m.offset, m.key.unwrap().to_vec(), m.timestamp));
            continue;
        }
        let inner = sluice::compression::decompress(codec, m.value.unwrap(), 1 << 20).unwrap();
        let n = sluice::message_format::Messages::new(&inner).count() as i64;
        for im in sluice::message_format::Messages::new(&inner) {
            let im = im.unwrap();
            // Inner offsets count from 0; the wrapper holds the last one.
            out.push((
                m.offset - n + 1 + im.offset,
                im.key.unwrap().to_vec(),
                im.timestamp,
            ));
        }
    }
    let offsets: Vec<i64> = out.iter().map(|o| o.0).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);
    assert_eq!(out[3], (3, b"k3".to_vec(), t0 + 1));
    assert_eq!(out[0].2, -1, "magic 0 had no timestamp");
    assert!(broker.metric("sluice_fetch_down_conversions_total") >= 1);
    assert!(broker.metric("sluice_produce_up_conversions_total") >= 3);
}

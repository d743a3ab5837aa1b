//! ListOffsets, topic admin (create / delete / partitions / configs) and error codes.

mod common;

use std::time::{Duration, Instant};

use common::raw::{self, err, RawClient};
use common::*;
use rdkafka::admin::{NewPartitions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// Earliest/latest offsets track the log, and offsets_for_times maps timestamps to the first offset at or after them.
#[test]
fn list_offsets_earliest_latest_and_by_timestamp() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "lo-times";
    create_topic(&bs, topic, 1, &[]);
    assert_eq!(watermarks(&bs, topic, 0), (0, 0), "empty partition");

    // Ten messages one second apart, in the recent past (so retention never applies).
    let base = now_ms() - 600_000;
    let msgs: Vec<Msg> = (0..10)
        .map(|i| Msg::value(format!("m{i}")).to(0).at(base + i * 1000))
        .collect();
    produce(&producer_config(&bs), topic, &msgs);
    assert_eq!(watermarks(&bs, topic, 0), (0, 10));

    let consumer = query_consumer(&bs);
    let lookup = |ts: i64| -> Offset {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
            .unwrap();
        let res = consumer
            .offsets_for_times(tpl, OP_TIMEOUT)
            .expect("offsets_for_times");
        let e = res.find_partition(topic, 0).expect("partition in result");
        assert!(
            e.error().is_ok(),
            "offsets_for_times error for ts {ts}: {:?}",
            e.error()
        );
        e.offset()
    };
    assert_eq!(
        lookup(base - 60_000),
        Offset::Offset(0),
        "timestamp before all messages"
    );
    assert_eq!(lookup(base), Offset::Offset(0), "exact first timestamp");
    assert_eq!(
        lookup(base + 3_000),
        Offset::Offset(3),
        "exact timestamp of message 3"
    );
    assert_eq!(
        lookup(base + 3_001),
        Offset::Offset(4),
        "between messages 3 and 4"
    );
    assert_eq!(lookup(base + 9_000), Offset::Offset(9), "last message");
    assert_eq!(
        lookup(base + 9_001),
        Offset::End,
        "after the last message: no offset (-1)"
    );

    // Raw ListOffsets across versions agrees.
    let mut c = RawClient::connect(&bs);
    for v in 1..=7 {
        for (ts, want) in [(-2, 0), (-1, 10), (base + 5_000, 5)] {
            let resp = c.call(v, &raw::list_offsets_request(topic, 0, ts));
            let p = &resp.topics[0].partitions[0];
            assert_eq!(p.error_code, err::NONE, "ListOffsets v{v} ts {ts}");
            assert_eq!(p.offset, want, "ListOffsets v{v} ts {ts}");
            if ts == base + 5_000 {
                assert_eq!(
                    p.timestamp,
                    base + 5_000,
                    "ListOffsets v{v} returns the found record's timestamp"
                );
            }
        }
    }
}

/// ListOffsets v7's MAX_TIMESTAMP (-3) finds the record with the largest
/// timestamp, wherever it sits in the log; older versions refuse it.
#[test]
fn list_offsets_max_timestamp() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let topic = "lo-max-ts";
    // Small segments, so the largest timestamp is not in the active one.
    create_topic(&bs, topic, 1, &[("segment.bytes", "1024")]);
    let mut c = RawClient::connect(&bs);
    let query = |c: &mut RawClient, v: i16| {
        let resp = c.call(v, &raw::list_offsets_request(topic, 0, -3));
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    assert_eq!(query(&mut c, 7), (err::NONE, -1, -1), "empty partition");

    let base = now_ms() - 600_000;
    let peak = base + 120_000;
    let msgs: Vec<Msg> = (0..30)
        .map(|i| {
            let ts = if i == 7 { peak } else { base + i * 1000 };
            Msg::value(format!("message-{i:03}-{}", "x".repeat(200)))
                .to(0)
                .at(ts)
        })
        .collect();
    produce(&producer_config(&bs), topic, &msgs);
    assert_eq!(watermarks(&bs, topic, 0), (0, 30));
    assert_eq!(query(&mut c, 7), (err::NONE, 7, peak));
    assert_eq!(query(&mut c, 6), (err::UNSUPPORTED_VERSION, -1, -1));
    // The other special timestamps still work alongside.
    let resp = c.call(7, &raw::list_offsets_request(topic, 0, -1));
    assert_eq!(resp.topics[0].partitions[0].offset, 30);
}

/// A deleted topic disappears, and recreating it with another partition count yields an empty topic with the new count.
#[test]
fn delete_then_recreate_with_different_partition_count() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "del-recreate";
    create_topic(&bs, topic, 3, &[]);
    let values: Vec<String> = (0..20).map(|i| format!("old-{i}")).collect();
    produce_values(&bs, topic, Some(0), &values);
    assert_eq!(watermarks(&bs, topic, 0), (0, 20));

    let admin = admin(&bs);
    let res = futures::executor::block_on(admin.delete_topics(&[topic], &admin_opts()))
        .expect("DeleteTopics");
    assert_eq!(res, vec![Ok(topic.to_string())]);
    // Gone from metadata (bounded poll: deletion may complete asynchronously).
    let deadline = Instant::now() + OP_TIMEOUT;
    while topic_partition_counts(&bs).contains_key(topic) {
        assert!(
            Instant::now() < deadline,
            "deleted topic still listed in metadata"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Recreate with 5 partitions (retrying while a deletion is still in progress).
    let nt = NewTopic::new(topic, 5, TopicReplication::Fixed(1));
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let res = futures::executor::block_on(admin.create_topics([&nt], &admin_opts()))
            .expect("CreateTopics");
        match &res[0] {
            Ok(_) => break,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("recreating {topic}: {e:?}"),
        }
    }
    wait_for_partitions(&bs, topic, 5);
    for p in 0..5 {
        assert_eq!(
            watermarks(&bs, topic, p),
            (0, 0),
            "recreated partition {p} is empty"
        );
    }
    // The recreated topic works and starts at offset 0.
    let d = produce_values(&bs, topic, Some(4), &["new".to_string()]);
    assert_eq!((d[0].partition, d[0].offset), (4, 0));
    let got = consume_all(&bs, topic, 5, 1, Duration::from_secs(30));
    assert_eq!(payload_str(&got[0]), "new");
    assert_eq!(got[0].partition(), 4);
}

/// Entries of the data dir whose names start with `prefix`.
fn data_dir_entries(broker: &Broker, prefix: &str) -> Vec<String> {
    std::fs::read_dir(broker.data_dir())
        .expect("data dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// Every partition of a topic whose name holds dots leaves the data dir
/// when it is deleted (their directories once met at one renamed name),
/// and a deleted partition's directory a stop left behind is removed at
/// the next start.
#[test]
fn deleted_partitions_leave_the_data_dir() {
    let mut broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "dotted.topic.name";
    create_topic(&bs, topic, 3, &[]);
    for p in 0..3 {
        produce_values(&bs, topic, Some(p), &[format!("v{p}")]);
    }
    assert_eq!(data_dir_entries(&broker, "dotted").len(), 3);
    let admin = admin(&bs);
    let res = futures::executor::block_on(admin.delete_topics(&[topic], &admin_opts()))
        .expect("DeleteTopics");
    assert_eq!(res, vec![Ok(topic.to_string())]);
    let deadline = Instant::now() + OP_TIMEOUT;
    while !data_dir_entries(&broker, "dotted").is_empty() {
        assert!(
            Instant::now() < deadline,
            "left in the data dir: {:?}",
            data_dir_entries(&broker, "dotted")
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    broker.stop();
    let left = broker
        .data_dir()
        .join("gone-0.AAAAAAAAAAAAAAAAAAAAAA.deleted");
    std::fs::create_dir(&left).expect("a leftover deleted partition");
    std::fs::write(left.join("00000000000000000000.log"), b"old bytes").expect("its log");
    broker.start_again();
    let deadline = Instant::now() + OP_TIMEOUT;
    while left.exists() {
        assert!(
            Instant::now() < deadline,
            "a deleted partition left by the last stop was never removed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CreatePartitions grows a topic, and the new partitions accept and serve messages.
#[test]
fn create_partitions_grows_topic() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "grow";
    create_topic(&bs, topic, 2, &[]);
    produce_values(&bs, topic, Some(1), &["before".to_string()]);

    let admin = admin(&bs);
    let res = futures::executor::block_on(
        admin.create_partitions([&NewPartitions::new(topic, 5)], &admin_opts()),
    )
    .expect("CreatePartitions");
    assert_eq!(res, vec![Ok(topic.to_string())]);
    wait_for_partitions(&bs, topic, 5);

    // Existing data is untouched; new partitions are empty and usable.
    assert_eq!(watermarks(&bs, topic, 1), (0, 1));
    for p in 2..5 {
        assert_eq!(watermarks(&bs, topic, p), (0, 0), "new partition {p}");
    }
    let values: Vec<String> = (2..5).map(|p| format!("to-{p}")).collect();
    for (p, v) in (2..5).zip(&values) {
        let d = produce_values(&bs, topic, Some(p), std::slice::from_ref(v));
        assert_eq!((d[0].partition, d[0].offset), (p, 0));
    }
    let got = consume_all(&bs, topic, 5, 4, Duration::from_secs(30));
    let mut pairs: Vec<(i32, String)> = got
        .iter()
        .map(|m| (m.partition(), payload_str(m)))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            (1, "before".into()),
            (2, "to-2".into()),
            (3, "to-3".into()),
            (4, "to-4".into())
        ]
    );

    // Shrinking is not allowed.
    let res = futures::executor::block_on(
        admin.create_partitions([&NewPartitions::new(topic, 3)], &admin_opts()),
    )
    .expect("CreatePartitions");
    assert!(res[0].is_err(), "shrinking partitions must fail: {res:?}");
    assert_eq!(topic_partition_counts(&bs).get(topic), Some(&5));
}

/// DescribeConfigs shows the configs a topic was created with.
#[test]
fn describe_configs_shows_creation_configs() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "described";
    create_topic(
        &bs,
        topic,
        1,
        &[
            ("retention.ms", "123456"),
            ("max.message.bytes", "65536"),
            ("cleanup.policy", "delete"),
        ],
    );
    let cfg = describe_topic_config(&bs, topic);
    assert_eq!(
        cfg.get("retention.ms"),
        Some(&Some("123456".to_string())),
        "configs: {cfg:?}"
    );
    assert_eq!(
        cfg.get("max.message.bytes"),
        Some(&Some("65536".to_string())),
        "configs: {cfg:?}"
    );
    assert_eq!(
        cfg.get("cleanup.policy"),
        Some(&Some("delete".to_string())),
        "configs: {cfg:?}"
    );
    // Configs not set at creation are still described (with their defaults).
    assert!(
        cfg.contains_key("segment.bytes"),
        "segment.bytes missing from {cfg:?}"
    );
}

fn alter_topic_config(
    c: &mut RawClient,
    version: i16,
    topic: &str,
    name: &str,
    value: &str,
) -> (i16, Option<String>) {
    c.alter_topic_configs(version, topic, &[(name, value)])
}

/// IncrementalAlterConfigs (v0 and v1) changes topic configs and DescribeConfigs reflects the change.
#[test]
fn incremental_alter_configs_changes_retention() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "altered";
    create_topic(&bs, topic, 1, &[("retention.ms", "600000")]);
    let mut c = RawClient::connect(&bs);

    let (code, msg) = alter_topic_config(&mut c, 1, topic, "retention.ms", "999999");
    assert_eq!(code, err::NONE, "IncrementalAlterConfigs v1: {msg:?}");
    let cfg = describe_topic_config(&bs, topic);
    assert_eq!(
        cfg.get("retention.ms"),
        Some(&Some("999999".to_string())),
        "configs: {cfg:?}"
    );

    let (code, msg) = alter_topic_config(&mut c, 0, topic, "retention.bytes", "1048576");
    assert_eq!(code, err::NONE, "IncrementalAlterConfigs v0: {msg:?}");
    let cfg = describe_topic_config(&bs, topic);
    assert_eq!(
        cfg.get("retention.bytes"),
        Some(&Some("1048576".to_string())),
        "configs: {cfg:?}"
    );
    assert_eq!(
        cfg.get("retention.ms"),
        Some(&Some("999999".to_string())),
        "earlier change kept: {cfg:?}"
    );
}

/// Invalid topic names are rejected with INVALID_TOPIC_EXCEPTION and not created.
#[test]
fn invalid_topic_name_is_rejected() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let admin = admin(&bs);
    let too_long = "a".repeat(250);
    for name in ["bad topic name!", "..", too_long.as_str()] {
        let nt = NewTopic::new(name, 1, TopicReplication::Fixed(1));
        let res = futures::executor::block_on(admin.create_topics([&nt], &admin_opts()))
            .expect("CreateTopics");
        assert_eq!(
            res,
            vec![Err((name.to_string(), RDKafkaErrorCode::InvalidTopic))],
            "creating topic {name:?}"
        );
    }
    let topics = topic_partition_counts(&bs);
    assert!(
        topics.is_empty(),
        "no topic may have been created: {topics:?}"
    );
}

/// Bad config values are rejected with INVALID_CONFIG, at creation and in IncrementalAlterConfigs.
#[test]
fn bad_config_value_is_rejected() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let admin = admin(&bs);
    let nt = NewTopic::new("bad-config", 1, TopicReplication::Fixed(1))
        .set("retention.ms", "not-a-number");
    let res = futures::executor::block_on(admin.create_topics([&nt], &admin_opts()))
        .expect("CreateTopics");
    assert_eq!(
        res,
        vec![Err((
            "bad-config".to_string(),
            RDKafkaErrorCode::InvalidConfig
        ))]
    );
    assert!(
        !topic_partition_counts(&bs).contains_key("bad-config"),
        "topic with a bad config was created"
    );

    let topic = "good-config";
    create_topic(&bs, topic, 1, &[("segment.bytes", "1048576")]);
    let mut c = RawClient::connect(&bs);
    for (name, value) in [
        ("segment.bytes", "lots"),
        ("retention.ms", "1.5"),
        ("cleanup.policy", "shred"),
    ] {
        let (code, msg) = alter_topic_config(&mut c, 1, topic, name, value);
        assert_eq!(code, err::INVALID_CONFIG, "setting {name}={value}: {msg:?}");
    }
    let cfg = describe_topic_config(&bs, topic);
    assert_eq!(
        cfg.get("segment.bytes"),
        Some(&Some("1048576".to_string())),
        "config unchanged: {cfg:?}"
    );
}

/// A Fetch beyond the log end returns OFFSET_OUT_OF_RANGE; a Fetch at the log end is empty but fine.
#[test]
fn fetch_out_of_range_offset() {
    let broker = Broker::start_with(1, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    let topic = "fetch-oor";
    create_topic(&bs, topic, 1, &[]);
    produce_values(&bs, topic, Some(0), &["a".into(), "b".into(), "c".into()]);

    let mut c = RawClient::connect(&bs);
    for v in [4, 12] {
        let resp = c.call(v, &raw::fetch_request(topic, &[(0, 100)], 100));
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.partition_index, 0);
        assert_eq!(
            p.error_code,
            err::OFFSET_OUT_OF_RANGE,
            "Fetch v{v} at offset 100"
        );

        let resp = c.call(v, &raw::fetch_request(topic, &[(0, 3)], 100));
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, err::NONE, "Fetch v{v} at the log end");
        assert_eq!(p.high_watermark, 3);
        assert!(
            raw::decode_records(&p.records).is_empty(),
            "no records past the log end"
        );

        let resp = c.call(v, &raw::fetch_request(topic, &[(0, 1)], 100));
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, err::NONE, "Fetch v{v} at offset 1");
        assert_eq!(p.high_watermark, 3);
        let recs = raw::decode_records(&p.records);
        // The broker may return the whole batch containing offset 1; clients skip earlier offsets.
        let vals: Vec<(i64, Vec<u8>)> = recs
            .iter()
            .filter(|r| r.offset >= 1)
            .map(|r| (r.offset, r.value.clone().unwrap().to_vec()))
            .collect();
        assert_eq!(
            vals,
            vec![(1, b"b".to_vec()), (2, b"c".to_vec())],
            "Fetch v{v} from offset 1"
        );
    }
    // Counted as Kafka's ErrorsPerSec: once per version asked.
    assert_eq!(
        broker.metric("sluice_request_errors_total{api=\"Fetch\",error=\"OFFSET_OUT_OF_RANGE\"}"),
        2
    );
}

/// A Produce to a partition the topic does not have returns UNKNOWN_TOPIC_OR_PARTITION and writes nothing.
#[test]
fn produce_to_unknown_partition() {
    let broker = Broker::start_with(1, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    let topic = "one-partition";
    create_topic(&bs, topic, 1, &[]);
    let mut c = RawClient::connect(&bs);
    let batch =
        || sluice::record::build::build_batch(0, &[(Some(b"k"), Some(b"v"), now_ms(), &[])]);

    for v in [3, 9] {
        let resp = c.call(v, &raw::produce_request(topic, -1, vec![(5, batch())]));
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.index, 5);
        assert_eq!(
            p.error_code,
            err::UNKNOWN_TOPIC_OR_PARTITION,
            "Produce v{v} to partition 5"
        );
    }
    assert_eq!(
        c.log_end_offset(topic, 0),
        0,
        "nothing written to partition 0"
    );
    assert_eq!(
        topic_partition_counts(&bs).get(topic),
        Some(&1),
        "no partition created"
    );

    // The same batch to the real partition works.
    let (code, base) = c.produce_batch(topic, 0, batch());
    assert_eq!((code, base), (err::NONE, 0));
    assert_eq!(c.log_end_offset(topic, 0), 1);
    let errors = |api: &str, error: &str| {
        series_value(
            &broker.metrics_text(),
            &format!("sluice_request_errors_total{{api=\"{api}\",error=\"{error}\"}}"),
        )
    };
    assert_eq!(errors("Produce", "UNKNOWN_TOPIC_OR_PARTITION"), Some(2));
    assert_eq!(errors("Fetch", "UNKNOWN_TOPIC_OR_PARTITION"), None);
}

/// DescribeLogDirs v1-4 (v0: `legacy_versions.rs`): the data dir,
/// every hosted replica with the bytes of its batches, or only the named
/// ones this node hosts; from v4 the filesystem's total and usable bytes.
#[test]
fn describe_log_dirs_lists_every_replica_with_its_size() {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    create_topic(&bs, "ld-a", 3, &[]);
    create_topic(&bs, "ld-b", 1, &[]);
    let values: Vec<String> = (0..10).map(|i| format!("value-{i}")).collect();
    produce_values(&bs, "ld-a", Some(1), &values);
    let stored: usize = broker
        .segment_files("ld-a", 1)
        .iter()
        .map(|f| segment_batch_bytes(f).len())
        .sum();
    assert!(stored > 0);
    let data_dir = std::path::absolute(broker.data_dir()).unwrap();

    let sizes = |response: &DescribeLogDirsResponse| -> Vec<(String, i32, i64)> {
        assert_eq!(response.error_code, err::NONE);
        assert_eq!(response.results.len(), 1, "one log dir");
        let dir = &response.results[0];
        assert_eq!(dir.error_code, err::NONE);
        assert_eq!(dir.log_dir.as_str(), data_dir.to_str().unwrap());
        dir.topics
            .iter()
            .filter(|t| !t.name.0.starts_with("__"))
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.partition_size))
            })
            .collect()
    };
    let mut raw_client = RawClient::connect(&bs);
    for version in 1..=4 {
        let mut all = DescribeLogDirsRequest::default();
        all.topics = None;
        let all = raw_client.call(version, &all);
        let stored = stored as i64;
        assert_eq!(
            sizes(&all),
            [
                ("ld-a".to_string(), 0, 0),
                ("ld-a".to_string(), 1, stored),
                ("ld-a".to_string(), 2, 0),
                ("ld-b".to_string(), 0, 0),
            ],
            "v{version}"
        );
        if version >= 4 {
            let dir = &all.results[0];
            assert!(
                dir.total_bytes >= dir.usable_bytes && dir.usable_bytes > 0,
                "{dir:?}"
            );
        }
        let mut named = DescribeLogDirsRequest::default();
        let mut topic = DescribableLogDirTopic::default();
        topic.topic = TopicName(raw::str_bytes("ld-a"));
        topic.partitions = vec![1, 7];
        named.topics = Some(vec![topic]);
        let named = raw_client.call(version, &named);
        assert_eq!(
            sizes(&named),
            [("ld-a".to_string(), 1, stored)],
            "v{version}"
        );
    }
}

/// DescribeQuorum on a broker without a metadata quorum: it is its own
/// controller and describes itself as a one-node Kafka does, the only
/// voter, leading (Java's admin client retries an error here until it
/// times out); a request that names more than one partition, or another
/// partition, is refused as in Kafka.
#[test]
fn describe_quorum_on_a_lone_broker_describes_itself() {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::{DescribeQuorumRequest, TopicName};

    let broker = Broker::start(1);
    let request = |partitions: &[i32]| {
        let mut topic = TopicData::default();
        topic.topic_name = TopicName(raw::str_bytes("__cluster_metadata"));
        topic.partitions = partitions
            .iter()
            .map(|&p| {
                let mut data = PartitionData::default();
                data.partition_index = p;
                data
            })
            .collect();
        let mut r = DescribeQuorumRequest::default();
        r.topics = vec![topic];
        r
    };
    let mut client = RawClient::connect(&broker.bootstrap());
    for version in 0..=2 {
        let answer = client.call(version, &request(&[0]));
        assert_eq!(answer.error_code, err::NONE);
        let p = &answer.topics[0].partitions[0];
        assert_eq!(p.error_code, err::NONE, "v{version}");
        assert_eq!(p.leader_id.0, 0, "v{version}");
        let voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
        assert_eq!(voters, [0], "v{version}");
        assert!(p.observers.is_empty(), "v{version}");
        if version >= 1 {
            assert!(
                p.current_voters[0].last_caught_up_timestamp > 0,
                "v{version}"
            );
        }
    }
    assert_eq!(
        client.call(2, &request(&[1])).topics[0].partitions[0].error_code,
        err::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        client.call(0, &request(&[0, 1])).error_code,
        42,
        "INVALID_REQUEST"
    );
}

/// AlterReplicaLogDirs: a replica "moved" to the data dir it is in is a
/// success; another path is not a log dir of this broker
/// (LOG_DIR_NOT_FOUND), and a partition it holds no replica of answers
/// REPLICA_NOT_AVAILABLE, as Kafka answers them.
#[test]
fn alter_replica_log_dirs_moves_only_to_the_data_dir() {
    use kafka_protocol::messages::alter_replica_log_dirs_request::{
        AlterReplicaLogDir, AlterReplicaLogDirTopic,
    };
    use kafka_protocol::messages::AlterReplicaLogDirsRequest;

    const LOG_DIR_NOT_FOUND: i16 = 57;
    const REPLICA_NOT_AVAILABLE: i16 = 9;
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "ld-move", 2, &[]);
    let data_dir = std::path::absolute(broker.data_dir()).unwrap();
    let move_to = |path: &str, partitions: Vec<i32>| {
        AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
            .with_path(raw::str_bytes(path))
            .with_topics(vec![AlterReplicaLogDirTopic::default()
                .with_name(raw::topic_name("ld-move"))
                .with_partitions(partitions)])])
    };
    let mut c = RawClient::connect(&bs);
    for version in 1..=2 {
        let here = c.call(version, &move_to(data_dir.to_str().unwrap(), vec![0, 1, 5]));
        let codes: Vec<(i32, i16)> = here.results[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.error_code))
            .collect();
        assert_eq!(
            codes,
            [(0, err::NONE), (1, err::NONE), (5, REPLICA_NOT_AVAILABLE)],
            "v{version}"
        );
        let elsewhere = c.call(version, &move_to("/var/lib/kafka/other", vec![0]));
        assert_eq!(
            elsewhere.results[0].partitions[0].error_code, LOG_DIR_NOT_FOUND,
            "v{version}"
        );
    }
}

/// Replica assignments on a single broker, as `kafka-topics.sh
/// --replica-assignment` and sarama send them: every replica on this
/// broker is taken (CreateTopics, CreatePartitions); another broker, a
/// broker named twice, or fewer assignments than added partitions answer
/// INVALID_REPLICA_ASSIGNMENT, as Kafka answers them.
#[test]
fn replica_assignments_on_one_broker() {
    use rdkafka::admin::{NewTopic, TopicReplication};
    use rdkafka::types::RDKafkaErrorCode::InvalidReplicaAssignment;

    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let admin = admin(&bs);
    let create = |name: &str, assignment: &[&[i32]]| {
        let topic = NewTopic::new(
            name,
            assignment.len() as i32,
            TopicReplication::Variable(assignment),
        );
        let res = futures::executor::block_on(admin.create_topics([&topic], &admin_opts()))
            .expect("CreateTopics");
        res[0].clone().map_err(|(_, code)| code)
    };
    assert_eq!(
        create("assigned", &[&[0], &[0]]),
        Ok("assigned".to_string())
    );
    wait_for_partitions(&bs, "assigned", 2);
    assert_eq!(
        create("assigned-away", &[&[7]]),
        Err(InvalidReplicaAssignment)
    );
    assert_eq!(
        create("assigned-twice", &[&[0, 0]]),
        Err(InvalidReplicaAssignment)
    );
    assert!(!topic_partition_counts(&bs).contains_key("assigned-away"));

    let grow = |count: usize, assignment: &[&[i32]]| {
        let more = NewPartitions::new("assigned", count).assign(assignment);
        let res = futures::executor::block_on(admin.create_partitions([&more], &admin_opts()))
            .expect("CreatePartitions");
        res[0].clone().map_err(|(_, code)| code)
    };
    assert_eq!(grow(4, &[&[0]]), Err(InvalidReplicaAssignment), "one short");
    assert_eq!(grow(3, &[&[7]]), Err(InvalidReplicaAssignment));
    assert_eq!(topic_partition_counts(&bs).get("assigned"), Some(&2));
    assert_eq!(grow(4, &[&[0], &[0]]), Ok("assigned".to_string()));
    wait_for_partitions(&bs, "assigned", 4);
    let delivered = produce_values(&bs, "assigned", Some(3), &["new".to_string()]);
    assert_eq!((delivered[0].partition, delivered[0].offset), (3, 0));
}

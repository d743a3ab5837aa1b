//! DeleteRecords (KIP-107) through librdkafka's AdminClient and raw
//! requests: the log start moves, nothing below it is served again, the
//! segments wholly below it go, a restart keeps it, and on a cluster the
//! leader answers once its followers hold the same start, so a new leader
//! serves nothing below it either.

mod common;

use std::time::Duration;

use common::cluster::{Cluster, WAIT};
use common::raw::{self, err, RawClient};
use common::*;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const POLICY_VIOLATION: i16 = 44;

/// Sends `values` to partition 0 in `batches` separate produce calls, so
/// that the log holds at least that many batches.
fn produce_batches(bootstrap: &str, topic: &str, batches: usize, per_batch: usize) {
    for b in 0..batches {
        let values: Vec<String> = (0..per_batch)
            .map(|i| format!("{:0100}", b * per_batch + i))
            .collect();
        produce_values(bootstrap, topic, Some(0), &values);
    }
}

/// DeleteRecords through librdkafka: (partition, offset or error) for each
/// partition asked, in partition order.
fn delete_records(
    bootstrap: &str,
    topic: &str,
    offsets: &[(i32, Offset)],
) -> Vec<(i32, Result<i64, String>)> {
    let mut tpl = TopicPartitionList::new();
    for &(p, offset) in offsets {
        tpl.add_partition_offset(topic, p, offset).unwrap();
    }
    let admin = admin(bootstrap);
    let done = futures::executor::block_on(admin.delete_records(&tpl, &admin_opts()))
        .expect("DeleteRecords request");
    let mut out: Vec<(i32, Result<i64, String>)> = done
        .elements()
        .iter()
        .map(|e| {
            let answer = match e.error() {
                Ok(()) => match e.offset() {
                    Offset::Offset(o) => Ok(o),
                    other => Err(format!("offset {other:?}")),
                },
                Err(e) => Err(e.to_string()),
            };
            (e.partition(), answer)
        })
        .collect();
    out.sort_by_key(|(p, _)| *p);
    out
}

/// DeleteRecords as a raw request of `version`: (error, low watermark) per
/// (topic, partition, offset) asked, in order.
fn raw_delete(bootstrap: &str, version: i16, asked: &[(&str, i32, i64)]) -> Vec<(i16, i64)> {
    let mut request = DeleteRecordsRequest::default();
    request.timeout_ms = 10_000;
    for &(topic, partition, offset) in asked {
        let mut t = DeleteRecordsTopic::default();
        t.name = TopicName(StrBytes::from_string(topic.to_string()));
        let mut p = DeleteRecordsPartition::default();
        p.partition_index = partition;
        p.offset = offset;
        t.partitions.push(p);
        request.topics.push(t);
    }
    let response: DeleteRecordsResponse = RawClient::connect(bootstrap).call(version, &request);
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (p.error_code, p.low_watermark)))
        .collect()
}

/// The base offsets of a partition's segment files, ascending.
fn segment_bases(broker: &Broker, topic: &str, partition: i32) -> Vec<i64> {
    let mut bases: Vec<i64> = broker
        .segment_files(topic, partition)
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    bases.sort();
    bases
}

fn offsets_consumed(bootstrap: &str, topic: &str, expected: usize) -> Vec<i64> {
    consume_all(bootstrap, topic, 1, expected, WAIT)
        .iter()
        .map(|m| m.offset())
        .collect()
}

#[test]
fn deleted_records_are_gone_for_good_and_a_restart_keeps_the_start() {
    let mut broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "dr-single";
    create_topic(&bs, topic, 2, &[("segment.bytes", "1000")]);
    produce_batches(&bs, topic, 10, 10);
    produce_values(&bs, topic, Some(1), &["a".into(), "b".into(), "c".into()]);
    assert_eq!(watermarks(&bs, topic, 0), (0, 100));
    let before = segment_bases(&broker, topic, 0);
    assert!(
        before.len() >= 10,
        "one segment a batch at least: {before:?}"
    );

    let deleted = delete_records(&bs, topic, &[(0, Offset::Offset(42)), (1, Offset::End)]);
    assert_eq!(deleted, [(0, Ok(42)), (1, Ok(3))], "low watermarks");
    assert_eq!(watermarks(&bs, topic, 0), (42, 100));
    assert_eq!(watermarks(&bs, topic, 1), (3, 3));
    // From the beginning is from the new start, mid-batch as it may be.
    assert_eq!(
        offsets_consumed(&bs, topic, 58),
        (42..100).collect::<Vec<_>>()
    );
    // Below it is out of range.
    let mut raw_client = RawClient::connect(&bs);
    let fetched = raw_client.call(12, &raw::fetch_request(topic, &[(0, 41)], 0));
    let answer = &fetched.responses[0].partitions[0];
    assert_eq!(answer.error_code, err::OFFSET_OUT_OF_RANGE);
    assert_eq!(answer.log_start_offset, 42);
    // Every segment left but the first starts past the start; the ones
    // wholly below it are gone.
    let after = segment_bases(&broker, topic, 0);
    assert!(
        after[0] <= 42 && after[1..].iter().all(|&b| b > 42),
        "{after:?}"
    );
    assert_eq!(
        after.len(),
        before.iter().filter(|&&b| b > 42).count() + 1,
        "before {before:?}, after {after:?}"
    );
    // Timestamps older than every record find the start.
    let consumer = query_consumer(&bs);
    let mut times = TopicPartitionList::new();
    times
        .add_partition_offset(topic, 0, Offset::Offset(0))
        .unwrap();
    let found = consumer.offsets_for_times(times, WAIT).unwrap();
    assert_eq!(found.elements()[0].offset(), Offset::Offset(42));

    broker.restart();
    let bs = broker.bootstrap();
    assert_eq!(watermarks(&bs, topic, 0), (42, 100), "after a restart");
    assert_eq!(watermarks(&bs, topic, 1), (3, 3), "after a restart");
    assert_eq!(
        offsets_consumed(&bs, topic, 58),
        (42..100).collect::<Vec<_>>()
    );

    // A lower offset changes nothing and answers the start as it is.
    let again = delete_records(&bs, topic, &[(0, Offset::Offset(10))]);
    assert_eq!(again, [(0, Ok(42))]);
}

#[test]
fn delete_records_refusals_are_kafkas() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    create_topic(&bs, "dr-plain", 2, &[]);
    create_topic(&bs, "dr-compact", 1, &[("cleanup.policy", "compact")]);
    create_topic(&bs, "dr-kept", 1, &[("cleanup.policy", "")]);
    produce_values(&bs, "dr-plain", Some(0), &["a".into(), "b".into()]);
    produce_values(&bs, "dr-kept", Some(0), &["k".into()]);
    produce_values(&bs, "dr-plain", Some(1), &["c".into()]);
    for version in [0, 1, 2] {
        let answers = raw_delete(
            &bs,
            version,
            &[
                ("dr-plain", 0, 3),
                ("dr-plain", 0, -2),
                ("dr-plain", 7, 0),
                ("dr-nope", 0, 0),
                ("dr-compact", 0, 0),
                ("dr-plain", 1, -1),
                ("dr-kept", 0, 1),
            ],
        );
        assert_eq!(
            answers,
            [
                (err::OFFSET_OUT_OF_RANGE, -1),
                (err::OFFSET_OUT_OF_RANGE, -1),
                (err::UNKNOWN_TOPIC_OR_PARTITION, -1),
                (err::UNKNOWN_TOPIC_OR_PARTITION, -1),
                (POLICY_VIOLATION, -1),
                (err::NONE, 1),
                // No cleanup at all is not compaction: records may go.
                (err::NONE, 1),
            ],
            "v{version}"
        );
    }
    // Down to where it starts already: nothing moves, nothing fails.
    assert_eq!(raw_delete(&bs, 2, &[("dr-plain", 0, 0)]), [(err::NONE, 0)]);
    // Nothing refused moved a start.
    assert_eq!(watermarks(&bs, "dr-plain", 0), (0, 2));
    assert_eq!(watermarks(&bs, "dr-compact", 0), (0, 0));
}

#[test]
fn followers_take_the_start_before_the_answer_and_a_new_leader_keeps_it() {
    const TOPIC: &str = "dr-replicated";
    let mut cluster = Cluster::start(3);
    cluster.create_topic(
        &NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3)).set("segment.bytes", "1000"),
    );
    cluster.wait_isr(TOPIC, 1, &[1, 2, 3]);
    let bs = cluster.bootstrap();
    produce_batches(&bs, TOPIC, 5, 10);
    let leader = cluster.leader_of(TOPIC, 0);

    let deleted = delete_records(&bs, TOPIC, &[(0, Offset::Offset(30))]);
    assert_eq!(deleted, [(0, Ok(30))]);
    // Answered once every replica had taken the start: each holds it.
    for id in cluster.ids() {
        let file = cluster
            .node(id)
            .partition_dir(TOPIC, 0)
            .join("log-start-offset");
        let stored = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("node {id} (leader {leader}): {e}"));
        assert_eq!(stored, "30", "node {id}");
    }

    cluster.kill9(leader);
    cluster.wait_view(TOPIC, 0, "a new leader", |v| {
        v.leader > 0 && v.leader != leader
    });
    let bs = cluster.bootstrap_of(&cluster.live());
    cluster.wait_for("the new leader's watermarks", WAIT, || {
        let consumer = query_consumer(&bs);
        match consumer.fetch_watermarks(TOPIC, 0, Duration::from_secs(5)) {
            Ok((30, 50)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(
        offsets_consumed(&bs, TOPIC, 20),
        (30..50).collect::<Vec<_>>()
    );
}

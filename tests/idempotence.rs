//! Idempotent producers: InitProducerId, duplicate and sequence checks,
//! producer state across restarts and crashes, DescribeProducers, driven by
//! librdkafka and by the raw protocol client.

mod common;

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::{self, RawClient};
use common::*;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    DescribeProducersRequest, InitProducerIdRequest, InitProducerIdResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::message::Message;
use rdkafka::producer::BaseRecord;
use sluice::record::build::{build_simple_batch, with_producer};

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

fn init_producer_id(client: &mut RawClient, version: i16) -> InitProducerIdResponse {
    let response = client.call(
        version,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(response.error_code, 0, "InitProducerId v{version}");
    assert_eq!(response.producer_epoch, 0);
    response
}

/// A batch of `n` records from producer `pid` at `epoch`, starting at `seq`.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    with_producer(&build_simple_batch(0, n, now_ms()), pid, epoch, seq, false)
}

fn produce(client: &mut RawClient, topic: &str, batch: Bytes) -> (i16, i64) {
    client.produce_batch(topic, 0, batch)
}

/// Every InitProducerId version hands out a distinct id, and ids stay
/// distinct after a crash (the next block was persisted before use).
#[test]
fn producer_ids_are_unique_across_versions_and_crashes() {
    let mut broker = Broker::start(2);
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..2 {
        // A new connection each time spreads the calls over both shards.
        for version in 0..=5 {
            let mut client = RawClient::connect(&broker.bootstrap());
            let id = init_producer_id(&mut client, version).producer_id.0;
            assert!(id >= 0);
            assert!(seen.insert(id), "id {id} handed out twice (round {round})");
        }
        broker.kill9();
        broker.start_again();
    }
}

/// A retried batch gets its first append's offsets back and is not
/// appended again, after a clean restart and after kill -9; gaps and old
/// epochs are refused and leave nothing in the log.
#[test]
fn retries_are_answered_with_the_original_offsets_across_restarts() {
    let mut broker = Broker::start(1);
    let topic = "idem-raw";
    create_topic(&broker.bootstrap(), topic, 1, &[]);
    let mut client = RawClient::connect(&broker.bootstrap());
    let pid = init_producer_id(&mut client, 4).producer_id.0;

    assert_eq!(
        produce(&mut client, topic, idempotent_batch(pid, 0, 0, 3)),
        (0, 0)
    );
    let second = idempotent_batch(pid, 0, 3, 2);
    assert_eq!(produce(&mut client, topic, second.clone()), (0, 3));
    assert_eq!(produce(&mut client, topic, second.clone()), (0, 3));
    assert_eq!(client.log_end_offset(topic, 0), 5);

    for crash in [false, true] {
        if crash {
            broker.kill9();
            broker.start_again();
        } else {
            broker.restart();
        }
        let mut client = RawClient::connect(&broker.bootstrap());
        assert_eq!(
            produce(&mut client, topic, second.clone()),
            (0, 3),
            "retry after {}",
            if crash { "kill -9" } else { "a clean restart" }
        );
        assert_eq!(client.log_end_offset(topic, 0), 5);
    }

    let mut client = RawClient::connect(&broker.bootstrap());
    let gap = idempotent_batch(pid, 0, 9, 1);
    assert_eq!(
        produce(&mut client, topic, gap).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    // A new epoch starts at sequence 0; then the old epoch is fenced.
    assert_eq!(
        produce(&mut client, topic, idempotent_batch(pid, 1, 0, 1)),
        (0, 5)
    );
    let stale = idempotent_batch(pid, 0, 5, 1);
    assert_eq!(produce(&mut client, topic, stale).0, INVALID_PRODUCER_EPOCH);
    assert_eq!(
        client.log_end_offset(topic, 0),
        6,
        "refused batches left nothing"
    );
    // A transactional batch opens a transaction: read_committed readers
    // stop before it until a marker ends it.
    let (txn_pid, txn_epoch) = raw::open_transaction(&mut client, "idem-txn", topic, &[0]);
    let txn = with_producer(
        &build_simple_batch(0, 1, now_ms()),
        txn_pid,
        txn_epoch,
        0,
        true,
    );
    assert_eq!(
        raw::produce_transactional(&mut client, 9, "idem-txn", topic, 0, txn),
        (0, 6)
    );
    assert_eq!(client.log_end_offset(topic, 0), 7);
    let committed = raw::list_offsets_request(topic, 0, -1).with_isolation_level(1);
    let response = client.call(7, &committed);
    assert_eq!(response.topics[0].partitions[0].offset, 6);
}

/// DescribeProducers lists a partition's producers with their epoch, last
/// sequence and the first offset of their open transaction (what
/// `kafka-transactions.sh find-hanging` looks for), and refuses unknown
/// partitions.
#[test]
fn describe_producers_lists_active_producers() {
    let broker = Broker::start(2);
    let topic = "idem-describe";
    create_topic(&broker.bootstrap(), topic, 2, &[]);
    let mut client = RawClient::connect(&broker.bootstrap());
    let pid = init_producer_id(&mut client, 3).producer_id.0;
    assert_eq!(
        client
            .produce_batch(topic, 1, idempotent_batch(pid, 0, 0, 4))
            .0,
        0
    );
    // A transaction opened at offset 4, after the idempotent batch.
    let (txn_pid, epoch) = raw::open_transaction(&mut client, "idem-describe", topic, &[1]);
    let txn = with_producer(&build_simple_batch(0, 2, now_ms()), txn_pid, epoch, 0, true);
    assert_eq!(
        raw::produce_transactional(&mut client, 9, "idem-describe", topic, 1, txn),
        (0, 4)
    );
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_static_str(topic)))
        .with_partition_indexes(vec![0, 1, 7])]);
    let response = client.call(0, &request);
    let partitions = &response.topics[0].partitions;
    assert_eq!(partitions.len(), 3);
    assert_eq!(partitions[0].error_code, 0);
    assert!(partitions[0].active_producers.is_empty());
    assert_eq!(partitions[1].error_code, 0);
    let producers = &partitions[1].active_producers;
    assert_eq!(producers.len(), 2);
    let idempotent = producers.iter().find(|p| p.producer_id.0 == pid).unwrap();
    assert_eq!(idempotent.producer_epoch, 0);
    assert_eq!(idempotent.last_sequence, 3);
    assert_eq!(idempotent.current_txn_start_offset, -1);
    let transactional = producers
        .iter()
        .find(|p| p.producer_id.0 == txn_pid)
        .unwrap();
    assert_eq!(transactional.last_sequence, 1);
    assert_eq!(transactional.current_txn_start_offset, 4);
    assert_eq!(
        partitions[2].error_code,
        raw::err::UNKNOWN_TOPIC_OR_PARTITION
    );
}

/// librdkafka with enable.idempotence=true delivers every message once, in
/// order, while the broker is killed with -9 and restarted under it:
/// batches appended but not answered are retried and deduplicated.
#[test]
fn librdkafka_idempotent_producer_survives_kill9_without_duplicates() {
    let mut broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    broker.keep_port();
    let topic = "idem-kill";
    let partitions = 3;
    create_topic(&broker.bootstrap(), topic, partitions, &[]);
    let mut config = producer_config(&broker.bootstrap());
    config
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "120000")
        .set("linger.ms", "2")
        .set("batch.num.messages", "50")
        .set("retry.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "200");
    let (producer, ctx) = collecting_producer(&config);
    let producer = std::sync::Arc::new(producer);
    let total = 6000;
    let sender = {
        let producer = producer.clone();
        let topic = topic.to_string();
        thread::spawn(move || {
            for i in 0..total {
                let value = format!("m-{i:06}");
                let key = format!("k-{}", i % 97);
                let record: BaseRecord<'_, [u8], [u8], usize> =
                    BaseRecord::with_opaque_to(&topic, i)
                        .key(key.as_bytes())
                        .payload(value.as_bytes());
                send_retrying(&producer, record);
                if i % 100 == 0 {
                    thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };
    // Kill twice while deliveries flow, with more batches in flight.
    for share in [1, 2] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while ctx.ok_count() < total * share / 3 {
            assert!(
                Instant::now() < deadline,
                "deliveries stalled before kill {share}"
            );
            thread::sleep(Duration::from_millis(5));
        }
        broker.kill9();
        thread::sleep(Duration::from_millis(300));
        broker.start_again();
    }
    sender.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ctx.ok_count() + ctx.failed_count() < total {
        assert!(Instant::now() < deadline, "deliveries stalled");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        ctx.failed_count(),
        0,
        "failed deliveries: {:?}",
        &ctx.failed.lock().unwrap()[..ctx.failed_count().min(5)]
    );
    let messages = consume_all(
        &broker.bootstrap(),
        topic,
        partitions,
        total,
        Duration::from_secs(60),
    );
    assert_eq!(messages.len(), total, "exactly one copy of each message");
    let stored: i64 = (0..partitions)
        .map(|p| watermarks(&broker.bootstrap(), topic, p).1)
        .sum();
    assert_eq!(stored, total as i64, "the logs hold each message once");
    // How many retries this run happened to deduplicate (timing decides).
    eprintln!(
        "duplicate batches answered after the restart: {}",
        broker.metric("sluice_produce_duplicate_batches_total")
    );
    // Per key (one partition each), values arrive in the order sent.
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &messages {
        let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
        by_key.entry(key).or_default().push(payload_str(m));
    }
    for (key, values) in by_key {
        let mut sorted = values.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(values, sorted, "key {key} out of order or duplicated");
    }
}

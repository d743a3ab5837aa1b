//! `--append-writer thread` and `uring`: produced batches written off the
//! shard thread (by the blocking thread, one job per request and owner
//! shard; or through io_uring, one write per partition, all of a request's
//! at once), with real clients. Every
//! acknowledged message must be in the log once, in order, at the offset
//! it was acknowledged with; transaction markers must land after the
//! batches they end; followers must replicate what the leader wrote.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::*;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

const THREAD_WRITER: [&str; 2] = ["--append-writer", "thread"];
const URING_WRITER: [&str; 2] = ["--append-writer", "uring"];
const WAIT: Duration = Duration::from_secs(60);

/// `per_partition` numbered messages to each of `partitions` partitions,
/// sent interleaved so every request carries many partitions.
fn numbered_messages(partitions: i32, per_partition: usize) -> Vec<Msg> {
    (0..per_partition)
        .flat_map(|seq| (0..partitions).map(move |p| Msg::value(format!("p{p}-{seq:06}")).to(p)))
        .collect()
}

/// Each partition's values in offset order hold exactly seq 0.. once, and
/// each sits at the offset its delivery report gave.
fn assert_numbered_in_order(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    per_partition: usize,
    delivered: &[Delivered],
) {
    let total = partitions as usize * per_partition;
    let msgs = consume_all(bootstrap, topic, partitions, total, WAIT);
    assert_eq!(msgs.len(), total, "every message read back once");
    for (partition, read) in by_partition(&msgs) {
        let values: Vec<String> = read.iter().map(|m| payload_str(m)).collect();
        let expected: Vec<String> = (0..per_partition)
            .map(|seq| format!("p{partition}-{seq:06}"))
            .collect();
        assert_eq!(
            values, expected,
            "partition {partition}: order, gaps or duplicates"
        );
        let offsets: Vec<i64> = read.iter().map(|m| m.offset()).collect();
        assert_eq!(offsets, (0..per_partition as i64).collect::<Vec<_>>());
    }
    let mut acked: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for d in delivered {
        assert!(
            acked.insert((d.partition, d.offset), d.id).is_none(),
            "two deliveries at {}/{}",
            d.partition,
            d.offset
        );
    }
    assert_eq!(
        acked.len(),
        total,
        "every message acknowledged at its own offset"
    );
}

#[test]
fn idempotent_producer_over_two_shards_keeps_order_and_offsets() {
    idempotent_producer_keeps_order_and_offsets(&THREAD_WRITER);
}

#[test]
fn idempotent_producer_keeps_order_and_offsets_with_the_uring_writer() {
    idempotent_producer_keeps_order_and_offsets(&URING_WRITER);
}

fn idempotent_producer_keeps_order_and_offsets(writer: &[&str]) {
    const TOPIC: &str = "writer-idempotent";
    const PARTITIONS: i32 = 8;
    const PER_PARTITION: usize = 2_000;
    let broker = Broker::start_with(2, writer);
    create_topic(&broker.bootstrap(), TOPIC, PARTITIONS, &[]);
    let mut config = producer_config(&broker.bootstrap());
    config
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("batch.num.messages", "50");
    let delivered = produce(
        &config,
        TOPIC,
        &numbered_messages(PARTITIONS, PER_PARTITION),
    );
    assert_numbered_in_order(
        &broker.bootstrap(),
        TOPIC,
        PARTITIONS,
        PER_PARTITION,
        &delivered,
    );
}

/// Values a read_committed consumer sees from the start of every partition,
/// until the log ends are reached.
fn read_committed(bootstrap: &str, topic: &str, partitions: i32) -> Vec<String> {
    let ends: Vec<i64> = (0..partitions)
        .map(|p| watermarks(bootstrap, topic, p).1)
        .collect();
    let mut config = consumer_config(bootstrap);
    config
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut values = Vec::new();
    let mut at_end = vec![false; partitions as usize];
    while at_end.iter().any(|e| !e) {
        assert!(
            Instant::now() < deadline,
            "read_committed did not reach {ends:?}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => values.push(payload_str(&m.detach())),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => at_end[p as usize] = true,
            _ => {}
        }
    }
    values.sort();
    values
}

#[test]
fn transaction_markers_follow_the_batches_they_end() {
    transaction_markers_follow_their_batches(&THREAD_WRITER);
}

#[test]
fn transaction_markers_follow_the_batches_they_end_with_the_uring_writer() {
    transaction_markers_follow_their_batches(&URING_WRITER);
}

fn transaction_markers_follow_their_batches(writer: &[&str]) {
    const TOPIC: &str = "writer-txn";
    const PARTITIONS: i32 = 4;
    const ROUNDS: usize = 5;
    const PER_TXN: usize = 40;
    let broker = Broker::start_with(2, writer);
    create_topic(&broker.bootstrap(), TOPIC, PARTITIONS, &[]);
    let producer = transactional_producer(&broker.bootstrap(), "writer-txn", 60_000);
    let mut committed = Vec::new();
    for round in 0..ROUNDS {
        for commit in [true, false] {
            producer.begin_transaction().expect("begin");
            for i in 0..PER_TXN {
                let value = format!("r{round}-{commit}-{i:03}");
                send_keyed(&producer, TOPIC, &value, &value);
                if commit {
                    committed.push(value);
                }
            }
            if commit {
                producer.commit_transaction(WAIT).expect("commit");
            } else {
                producer.abort_transaction(WAIT).expect("abort");
            }
        }
    }
    committed.sort();
    assert_eq!(
        read_committed(&broker.bootstrap(), TOPIC, PARTITIONS),
        committed
    );
}

#[test]
fn followers_replicate_what_the_leader_wrote_off_its_shard_thread() {
    followers_replicate_what_the_leader_wrote(&THREAD_WRITER);
}

#[test]
fn followers_replicate_what_the_leader_wrote_through_io_uring() {
    followers_replicate_what_the_leader_wrote(&URING_WRITER);
}

fn followers_replicate_what_the_leader_wrote(writer: &[&str]) {
    const TOPIC: &str = "writer-rf3";
    const PARTITIONS: i32 = 4;
    const PER_PARTITION: usize = 500;
    let cluster = Cluster::start_with(3, writer);
    cluster.create_topic(
        &NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))
            .set("min.insync.replicas", "2"),
    );
    cluster.wait_isr(TOPIC, PARTITIONS, &[1, 2, 3]);
    let bootstrap = cluster.bootstrap();
    let mut config = producer_config(&bootstrap);
    config.set("enable.idempotence", "true");
    let delivered = produce(
        &config,
        TOPIC,
        &numbered_messages(PARTITIONS, PER_PARTITION),
    );
    assert_numbered_in_order(&bootstrap, TOPIC, PARTITIONS, PER_PARTITION, &delivered);
    for partition in 0..PARTITIONS {
        cluster.wait_logs_identical(TOPIC, partition, &[1, 2, 3]);
    }
}

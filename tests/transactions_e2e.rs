//! Transactions end to end with librdkafka: what read_committed and
//! read_uncommitted consumers see, consume-transform-produce with offsets
//! committed in the transaction, and a producer killed mid-transaction.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

/// Every value readable from the start of `topic` at `isolation`, read
/// until `expected` arrive or `quiet` passes with nothing new after the
/// log ends were reached.
fn read_values(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expected: usize,
) -> Vec<String> {
    let mut config = consumer_config(bootstrap);
    config.set("isolation.level", isolation);
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut values = Vec::new();
    while values.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    // Anything more that arrives soon is a record that should not be seen.
    let extra_until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < extra_until {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    values.sort();
    values
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:03}")).collect();
    v.sort();
    v
}

/// Committed transactions are visible to read_committed consumers, aborted
/// ones only to read_uncommitted, and both stay so across a clean restart
/// and a kill -9.
#[test]
fn read_committed_sees_committed_transactions_only() {
    let mut broker = Broker::start(2);
    let topic = "txn-visibility";
    create_topic(&broker.bootstrap(), topic, 2, &[]);
    let producer = transactional_producer(&broker.bootstrap(), "txn-visibility-1", 60_000);
    for (prefix, n, commit) in [("c1", 10, true), ("a1", 10, false), ("c2", 5, true)] {
        producer.begin_transaction().unwrap();
        for i in 0..n {
            send_keyed(
                &producer,
                topic,
                &format!("k{}", i % 3),
                &format!("{prefix}-{i:03}"),
            );
        }
        producer.flush(TXN_TIMEOUT).unwrap();
        if commit {
            producer.commit_transaction(TXN_TIMEOUT).unwrap();
        } else {
            producer.abort_transaction(TXN_TIMEOUT).unwrap();
        }
    }
    drop(producer);
    let mut committed = numbered("c1", 10);
    committed.extend(numbered("c2", 5));
    committed.sort();
    let mut everything = committed.clone();
    everything.extend(numbered("a1", 10));
    everything.sort();
    for round in 0..3 {
        let bs = broker.bootstrap();
        assert_eq!(
            read_values(&bs, topic, 2, "read_committed", committed.len()),
            committed,
            "read_committed, round {round}"
        );
        assert_eq!(
            read_values(&bs, topic, 2, "read_uncommitted", everything.len()),
            everything,
            "read_uncommitted, round {round}"
        );
        match round {
            0 => broker.restart(),
            1 => {
                broker.kill9();
                broker.start_again();
            }
            _ => {}
        }
    }
}

/// Consume-transform-produce: output records and the group's offsets are
/// committed together; an aborted round leaves neither.
#[test]
fn consume_transform_produce_commits_offsets_and_output_atomically() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let (input, output, group) = ("ctp-in", "ctp-out", "ctp-group");
    create_topic(&bs, input, 2, &[]);
    create_topic(&bs, output, 2, &[]);
    let first: Vec<String> = (0..40).map(|i| format!("in-{i:03}")).collect();
    produce_values(&bs, input, None, &first);

    let mut config = consumer_config(&bs);
    config
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create().unwrap();
    consumer.subscribe(&[input]).unwrap();
    let producer = transactional_producer(&bs, "ctp-1", 60_000);

    // Commit rounds of up to 10 until the 40 inputs are through; then one
    // more round over 10 new inputs that is aborted.
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while done < 40 {
        assert!(Instant::now() < deadline, "consumed only {done} of 40");
        done += transform_round(&consumer, &producer, output, true);
    }
    let second: Vec<String> = (0..10).map(|i| format!("late-{i:03}")).collect();
    produce_values(&bs, input, None, &second);
    let mut aborted = 0;
    while aborted < 10 {
        assert!(
            Instant::now() < deadline,
            "consumed only {aborted} of 10 late inputs"
        );
        aborted += transform_round(&consumer, &producer, output, false);
    }

    let expected: Vec<String> = first.iter().map(|v| format!("out-{v}")).collect();
    assert_eq!(read_values(&bs, output, 2, "read_committed", 40), expected);
    let mut reader = consumer_config(&bs);
    reader.set("group.id", group);
    let reader: BaseConsumer = reader.create().unwrap();
    let committed = committed_offsets(&reader, input, 2);
    let total: i64 = committed.values().sum();
    assert_eq!(
        total, 40,
        "offsets of the committed rounds only: {committed:?}"
    );
}

/// One transaction: the messages one poll burst gives, transformed to
/// `output`, with the consumer's positions; returns how many it carried.
fn transform_round(
    consumer: &BaseConsumer,
    producer: &ThreadedProducer<DefaultProducerContext>,
    output: &str,
    commit: bool,
) -> usize {
    let mut polled = Vec::new();
    let until = Instant::now() + Duration::from_millis(500);
    while polled.len() < 10 && Instant::now() < until {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            polled.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    if polled.is_empty() {
        return 0;
    }
    producer.begin_transaction().unwrap();
    for v in &polled {
        send_keyed(producer, output, v, &format!("out-{v}"));
    }
    let positions = consumer.position().unwrap();
    producer
        .send_offsets_to_transaction(&positions, &consumer.group_metadata().unwrap(), TXN_TIMEOUT)
        .unwrap();
    if commit {
        producer.commit_transaction(TXN_TIMEOUT).unwrap();
    } else {
        producer.abort_transaction(TXN_TIMEOUT).unwrap();
        // Rewind, as a real pipeline does after an abort, so the positions
        // the consumer holds match what is committed.
        let committed = consumer
            .committed(Duration::from_secs(15))
            .unwrap_or_else(|_| TopicPartitionList::new());
        for e in committed.elements() {
            let offset = match e.offset() {
                Offset::Offset(_) => e.offset(),
                _ => Offset::Beginning,
            };
            let _ = consumer.seek(e.topic(), e.partition(), offset, Duration::from_secs(5));
        }
    }
    polled.len()
}

const CHILD_ENV: &str = "SLUICE_TXN_CHILD";

/// The producer the killed-producer test runs in a child process: opens a
/// transaction, writes to it, says so, and waits to be killed.
fn run_child_producer(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let (bs, topic) = (parts[0], parts[1]);
    let producer = transactional_producer(bs, "txn-killed", 4000);
    producer.begin_transaction().unwrap();
    for i in 0..5 {
        send_keyed(&producer, topic, "k", &format!("open-{i:03}"));
    }
    producer.flush(TXN_TIMEOUT).unwrap();
    println!("SENT");
    thread::sleep(Duration::from_secs(120));
}

/// A transactional producer killed mid-transaction: once its
/// transaction.timeout.ms passes the coordinator aborts it, and
/// read_committed consumers move past it.
#[test]
fn a_killed_producers_transaction_is_aborted_after_its_timeout() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return run_child_producer(&spec);
    }
    let broker = Broker::start_with(
        1,
        &[
            "--transaction-abort-timed-out-transaction-cleanup-interval-ms",
            "500",
        ],
    );
    let bs = broker.bootstrap();
    let topic = "txn-killed";
    create_topic(&bs, topic, 1, &[]);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_killed_producers_transaction_is_aborted_after_its_timeout",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, format!("{bs}|{topic}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child producer");
    let stdout = child.stdout.take().unwrap();
    let sent = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("SENT"));
    assert!(sent, "the child opened its transaction");
    child.kill().unwrap();
    let _ = child.wait();
    // A plain write after the open transaction: read_committed readers see
    // it only once the transaction is settled.
    produce_values(&bs, topic, Some(0), &["after".to_string()]);
    assert_eq!(read_values(&bs, topic, 1, "read_committed", 1), ["after"]);
    let all = read_values(&bs, topic, 1, "read_uncommitted", 6);
    assert_eq!(
        all.len(),
        6,
        "the open transaction's records are in the log: {all:?}"
    );
}

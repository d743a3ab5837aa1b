//! Log compaction (`cleanup.policy=compact`) end to end: a compacted topic
//! shrinks to the latest value per key, and committed group offsets in the
//! compacted `__consumer_offsets` survive compaction and a restart.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::raw::RawClient;
use common::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// Compaction looks at compacted topics every 200 ms here.
const FLAGS: &[&str] = &[
    "--log-cleaner-backoff-ms",
    "200",
    "--offsets-topic-num-partitions",
    "1",
];

/// Bytes of the `.log` files in a partition directory, and their base offsets.
/// The cleaner may remove a file between listing and reading it: such a
/// file is no longer part of the log and is skipped.
fn log_files(dir: &Path) -> (u64, Vec<i64>) {
    let mut bytes = 0;
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        match entry.metadata() {
            Ok(m) => {
                bytes += m.len();
                bases.push(stem.parse().unwrap());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("stat {name}: {e}"),
        }
    }
    bases.sort_unstable();
    (bytes, bases)
}

/// Polls (bounded) until the partition's `.log` files hold at most `max_bytes`.
fn wait_for_log_bytes_at_most(
    broker: &Broker,
    dir: &Path,
    max_bytes: u64,
    timeout: Duration,
) -> (u64, Vec<i64>) {
    let deadline = Instant::now() + timeout;
    loop {
        let (bytes, bases) = log_files(dir);
        if bytes <= max_bytes {
            return (bytes, bases);
        }
        assert!(
            Instant::now() < deadline,
            "log of {} still {bytes} bytes (want <= {max_bytes}) after {timeout:?}; segments {bases:?}; broker log:\n{}",
            dir.display(),
            broker.stderr_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every message of partition 0 from the beginning up to the high watermark.
fn consume_to_end(bootstrap: &str, topic: &str) -> Vec<OwnedMessage> {
    let (_, high) = watermarks(bootstrap, topic, 0);
    let consumer: BaseConsumer = consumer_config(bootstrap).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out: Vec<OwnedMessage> = Vec::new();
    while out.last().is_none_or(|m| m.offset() < high - 1) {
        assert!(
            Instant::now() < deadline,
            "consumed up to {:?} of {high}",
            out.last().map(|m| m.offset())
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.detach());
        }
    }
    out
}

/// Many updates of a few keys: once compaction has run, the log is a fraction
/// of its size, a consumer from the beginning sees offsets strictly
/// increasing, each record exactly as produced at its offset, every key's
/// latest value, and at most one record per key below the active segment.
#[test]
fn compacted_topic_keeps_latest_value_per_key() {
    let broker = Broker::start_with(1, FLAGS);
    let bs = broker.bootstrap();
    let topic = "compacted";
    create_topic(
        &bs,
        topic,
        1,
        &[("cleanup.policy", "compact"), ("segment.bytes", "10000")],
    );
    let keys = 10;
    let msgs: Vec<Msg> = (0..3_000)
        .map(|i| {
            Msg::value(format!("value-{i}-{}", "x".repeat(40)))
                .key(format!("key-{}", i % keys))
                .to(0)
        })
        .collect();
    // Small batches, so segments roll and hold many of them.
    let mut config = producer_config(&bs);
    config.set("batch.num.messages", "50");
    let delivered = produce(&config, topic, &msgs);
    let produced: HashMap<i64, (Vec<u8>, Vec<u8>)> = delivered
        .iter()
        .map(|d| {
            let m = &msgs[d.id];
            (d.offset, (m.key.clone().unwrap(), m.value.clone().unwrap()))
        })
        .collect();
    let mut latest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for (offset, (key, _)) in &produced {
        let e = latest.entry(key.clone()).or_insert(*offset);
        *e = (*e).max(*offset);
    }

    let dir = broker.partition_dir(topic, 0);
    // Uncompacted, the log is over 250 KB; compacted, about one segment. The
    // cleaner works in rounds, so segments that rolled after a round are
    // still dirty: wait (bounded) until no key repeats below the active segment.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (bytes, got) = loop {
        let (bytes, bases) =
            wait_for_log_bytes_at_most(&broker, &dir, 40_000, Duration::from_secs(60));
        let active_base = *bases.last().unwrap();
        let got = consume_to_end(&bs, topic);
        let mut below_active = HashSet::new();
        let repeated = got
            .iter()
            .filter(|m| m.offset() < active_base)
            .any(|m| !below_active.insert(produced[&m.offset()].0.clone()));
        if !repeated {
            break (bytes, got);
        }
        assert!(
            Instant::now() < deadline,
            "a key still repeats below the active segment {active_base} after 60 s; broker log:\n{}",
            broker.stderr_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        watermarks(&bs, topic, 0),
        (0, 3_000),
        "log start and end unchanged"
    );
    assert!(
        got.len() < 3_000,
        "{} records after compaction to {bytes} bytes",
        got.len()
    );
    assert!(
        got.windows(2).all(|w| w[0].offset() < w[1].offset()),
        "offsets strictly increase"
    );
    for m in &got {
        let (key, value) = &produced[&m.offset()];
        assert_eq!(m.key(), Some(&key[..]), "key at {}", m.offset());
        assert_eq!(m.payload(), Some(&value[..]), "value at {}", m.offset());
    }
    for (key, offset) in &latest {
        assert!(
            got.iter().any(|m| m.offset() == *offset),
            "latest value of {key:?} (offset {offset}) present"
        );
    }
}

fn alter_topic_config(bootstrap: &str, topic: &str, name: &str, value: &str) {
    let (code, message) =
        RawClient::connect(bootstrap).alter_topic_configs(1, topic, &[(name, value)]);
    assert_eq!(code, 0, "IncrementalAlterConfigs: {message:?}");
}

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    consumer_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

fn commit(consumer: &BaseConsumer, topic: &str, offsets: &[(i32, i64)]) {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
}

fn committed(bootstrap: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    committed_offsets(&group_consumer(bootstrap, group), topic, 3)
}

/// Hundreds of commits compact `__consumer_offsets` down to the latest one
/// per partition, and the committed offsets are the same after a restart.
#[test]
fn committed_offsets_survive_compaction_and_restart() {
    let mut broker = Broker::start_with(1, FLAGS);
    let bs = broker.bootstrap();
    let topic = "committed";
    let group = "compaction-group";
    create_topic(&bs, topic, 3, &[]);
    let consumer = group_consumer(&bs, group);
    // Partition 2's only commit comes first and must outlive everything.
    commit(&consumer, topic, &[(2, 7)]);
    alter_topic_config(&bs, "__consumer_offsets", "segment.bytes", "2000");
    for i in 1..=400 {
        commit(&consumer, topic, &[(0, i), (1, 1000 + i)]);
    }
    drop(consumer);
    let expected: BTreeMap<i32, i64> = [(0, 400), (1, 1400), (2, 7)].into();
    assert_eq!(committed(&bs, group, topic), expected);

    // Uncompacted, 400 commits of two records take about 100 KB.
    let dir = broker.partition_dir("__consumer_offsets", 0);
    wait_for_log_bytes_at_most(&broker, &dir, 10_000, Duration::from_secs(60));
    assert_eq!(committed(&bs, group, topic), expected, "after compaction");

    broker.restart();
    assert_eq!(
        committed(&broker.bootstrap(), group, topic),
        expected,
        "after compaction and a restart"
    );
}

/// A compacted topic refuses keyless records with INVALID_RECORD and writes
/// nothing of that batch; keyed records still go in.
#[test]
fn keyless_records_are_refused_on_compacted_topics() {
    let broker = Broker::start_with(1, FLAGS);
    let bs = broker.bootstrap();
    create_topic(&bs, "compacted-keys", 1, &[("cleanup.policy", "compact")]);
    let mut c = RawClient::connect(&bs);
    let ts = now_ms();
    let keyless = sluice::record::build::build_batch(
        0,
        &[
            (Some(b"k".as_slice()), Some(b"v".as_slice()), ts, &[]),
            (None, Some(b"no key".as_slice()), ts, &[]),
        ],
    );
    let (error, _) = c.produce_batch("compacted-keys", 0, keyless);
    assert_eq!(error, 87, "INVALID_RECORD");
    assert_eq!(
        c.log_end_offset("compacted-keys", 0),
        0,
        "nothing of the refused batch is in the log"
    );
    let keyed = sluice::record::build::build_batch(
        0,
        &[(Some(b"k".as_slice()), Some(b"v".as_slice()), ts, &[])],
    );
    let (error, offset) = c.produce_batch("compacted-keys", 0, keyed);
    assert_eq!((error, offset), (0, 0));
}

//! Many partitions: a topic of thousands is created while the shard serves
//! others, and on a small `log_open_files_max` the broker keeps no more
//! segment files open than the bound, and every record still goes in and
//! comes back out, across segments and a restart.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::message::Message;

const SHARDS: usize = 2;
/// Split over the two shards: four open segment files each.
const OPEN_FILES_MAX: usize = 8;
const PARTITIONS: i32 = 48;
const PER_PARTITION: usize = 30;
/// Small segments, so every partition rolls several times and files
/// outnumber partitions.
const SEGMENT_BYTES: &str = "4096";

/// Segment files of `data_dir` the process `pid` holds open (`.log`,
/// `.log.cleaned`, `.txnindex`), from its /proc fd table.
fn open_segment_files(pid: u32, data_dir: &Path) -> Vec<PathBuf> {
    let data_dir = data_dir.canonicalize().expect("data dir");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.starts_with(&data_dir))
        .filter(|target| {
            let name = target.to_string_lossy();
            name.contains(".log") || name.ends_with(".txnindex")
        })
        .collect()
}

/// Asserts the broker holds at most [`OPEN_FILES_MAX`] segment files. A
/// fetch still sending (its client just left) may hold a file the cache
/// closed until the send ends, so a count over the bound is looked at
/// again until it settles, within a bounded wait.
fn assert_within_bound(broker: &Broker, when: &str) {
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let open = open_segment_files(broker.pid(), broker.data_dir());
        if open.len() <= OPEN_FILES_MAX {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: {} segment files open, more than {OPEN_FILES_MAX}: {open:?}",
            open.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_all_back(bootstrap: &str, topic: &str) {
    let got = consume_all(
        bootstrap,
        topic,
        PARTITIONS,
        PARTITIONS as usize * PER_PARTITION,
        Duration::from_secs(60),
    );
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for m in &got {
        by_partition
            .entry(m.partition())
            .or_default()
            .push(payload_str(m));
    }
    assert_eq!(by_partition.len(), PARTITIONS as usize);
    for (p, values) in by_partition {
        let expected: Vec<String> = (0..PER_PARTITION).map(|i| value(p, i)).collect();
        assert_eq!(values, expected, "partition {p} in order, whole");
    }
}

fn value(partition: i32, i: usize) -> String {
    // ~500 bytes: a few records fill a 4 KiB segment.
    format!("p{partition}-{i}-{}", "x".repeat(480))
}

/// 48 partitions of several segments each on a node allowed 8 open segment
/// files: produce and consume everything, restart, consume again; the
/// broker never holds more than 8 segment files (as /proc sees them).
#[test]
fn many_partitions_stay_within_log_open_files_max() {
    let max = OPEN_FILES_MAX.to_string();
    let mut broker = Broker::start_with(
        SHARDS,
        &[
            "--log-open-files-max",
            &max,
            "--log-segment-bytes",
            SEGMENT_BYTES,
            "--offsets-topic-num-partitions",
            "2",
        ],
    );
    let topic = "many";
    create_topic(&broker.bootstrap(), topic, PARTITIONS, &[]);
    assert_within_bound(&broker, "after creating the topic");

    let msgs: Vec<Msg> = (0..PER_PARTITION)
        .flat_map(|i| (0..PARTITIONS).map(move |p| Msg::value(value(p, i)).to(p)))
        .collect();
    let mut config = producer_config(&broker.bootstrap());
    // A batch per record or two, so segments roll.
    config.set("batch.size", "1024");
    produce(&config, topic, &msgs);
    assert_within_bound(&broker, "after producing");
    let segments = broker.segment_files(topic, 0).len();
    assert!(segments > 1, "partition 0 rolled: {segments} segments");

    check_all_back(&broker.bootstrap(), topic);
    assert_within_bound(&broker, "after consuming");

    broker.restart();
    assert_within_bound(&broker, "after a restart");
    check_all_back(&broker.bootstrap(), topic);
    assert_within_bound(&broker, "after consuming again");
    let more: Vec<Msg> = (0..PARTITIONS)
        .map(|p| Msg::value(format!("after-{p}")).to(p))
        .collect();
    produce(&producer_config(&broker.bootstrap()), topic, &more);
    assert_within_bound(&broker, "after producing again");
    broker.stop();
}

/// Partitions that went quiet give their descriptors back even when the
/// cache has room: with `log_open_files_idle_ms`, the broker's segment files
/// close once nothing uses them, `/metrics` counts them, and the partitions
/// serve again on demand.
#[test]
fn idle_segment_files_close_and_reopen() {
    let broker = Broker::start_with(
        1,
        &[
            "--log-open-files-idle-ms",
            "200",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let topic = "quiet";
    create_topic(&broker.bootstrap(), topic, 4, &[]);
    let msgs: Vec<Msg> = (0..4).map(|p| Msg::value(format!("v{p}")).to(p)).collect();
    produce(&producer_config(&broker.bootstrap()), topic, &msgs);

    let deadline = Instant::now() + OP_TIMEOUT;
    while !open_segment_files(broker.pid(), broker.data_dir()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "segment files still open: {:?}",
            open_segment_files(broker.pid(), broker.data_dir())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(broker.metric("sluice_log_files_idle_closed_total") >= 4);
    assert_eq!(broker.metric("sluice_log_files_open"), 0);

    let got = consume_all(&broker.bootstrap(), topic, 4, 4, Duration::from_secs(30));
    let mut values: Vec<String> = got.iter().map(payload_str).collect();
    values.sort();
    assert_eq!(values, ["v0", "v1", "v2", "v3"]);
}

/// A topic of many partitions has its logs created while the shard goes on
/// serving: a client that produces to another topic meanwhile is answered
/// before the new topic's last partition has its directory.
#[test]
fn creating_a_big_topic_does_not_hold_the_shard() {
    const BIG: i32 = 2_000;
    let mut broker = Broker::start(1);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "busy", 1, &[]);
    let mut config = producer_config(&bootstrap);
    config.set("linger.ms", "0");
    produce(&config, "busy", &[Msg::value("before")]);

    let creating = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            let admin = admin(&bootstrap);
            let topic = NewTopic::new("big", BIG, TopicReplication::Fixed(1));
            let opts = AdminOptions::new()
                .operation_timeout(Some(Duration::from_secs(120)))
                .request_timeout(Some(Duration::from_secs(120)));
            futures::executor::block_on(admin.create_topics([&topic], &opts))
                .expect("CreateTopics request")
        })
    };
    let first = broker.partition_dir("big", 0);
    let deadline = Instant::now() + OP_TIMEOUT;
    while !first.exists() {
        assert!(
            Instant::now() < deadline,
            "the big topic's first log never appeared"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // A new client: bootstrap, metadata and produce, all on the shard that
    // is creating the logs.
    produce(&config, "busy", &[Msg::value("during")]);
    let last = broker.partition_dir("big", BIG - 1);
    assert!(
        !last.exists(),
        "the produce waited until all {BIG} logs were created"
    );

    let created = creating.join().expect("the admin thread");
    assert_eq!(created, vec![Ok("big".to_string())]);
    wait_for_partitions(&bootstrap, "big", BIG as usize);
    assert!(last.exists());
    broker.stop();
}

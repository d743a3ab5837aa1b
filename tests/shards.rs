//! A multi-shard broker: partitions spread over shards, served through single connections.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::raw::{self, err, RawClient};
use common::*;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{FetchResponse, MetadataRequest, MetadataResponse, ProduceResponse};
use rdkafka::message::Message;

const PARTITIONS: i32 = 16;

/// With 2 shards, one producer connection writes to all 16 partitions and one consumer reads everything back in order.
#[test]
fn one_producer_one_consumer_cover_all_partitions() {
    one_producer_one_consumer(&[]);
}

/// The same with shards that poll a while before they park: cross-shard
/// messages found by polling rather than a wake-up.
#[test]
fn shards_that_spin_before_parking_serve_the_same() {
    one_producer_one_consumer(&["--shard-spin-before-park-us", "200"]);
}

/// With 2 shards, a consumer long-polling all 16 partitions while a
/// producer writes to all of them in rounds: its fetches are woken by
/// appends on either shard, often on both at once, and take each wake's
/// read from the owner that woke them. It still receives every message
/// once, in order, each at its own partition.
#[test]
fn a_consumer_long_polling_both_shards_meanwhile_gets_everything_in_order() {
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 3;
    let broker = Broker::start_with(2, &[]);
    let bs = broker.bootstrap();
    let topic = "polled-meanwhile";
    create_topic(&bs, topic, PARTITIONS, &[]);
    let expected = ROUNDS * PER_ROUND * PARTITIONS as usize;
    let consumer = {
        let bs = bs.clone();
        std::thread::spawn(move || {
            consume_all(&bs, topic, PARTITIONS, expected, Duration::from_secs(60))
        })
    };
    let config = producer_config(&bs);
    for round in 0..ROUNDS {
        let msgs: Vec<Msg> = (0..PER_ROUND)
            .flat_map(|i| {
                (0..PARTITIONS)
                    .map(move |p| Msg::value(format!("p{p}-{}", round * PER_ROUND + i)).to(p))
            })
            .collect();
        produce(&config, topic, &msgs);
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = consumer.join().expect("the consumer thread");
    assert_eq!(got.len(), expected, "every message once");
    let parts = by_partition(&got);
    assert_eq!(parts.len(), PARTITIONS as usize);
    for (p, ms) in parts {
        let vals: Vec<String> = ms.iter().map(|m| payload_str(m)).collect();
        let want: Vec<String> = (0..ROUNDS * PER_ROUND)
            .map(|i| format!("p{p}-{i}"))
            .collect();
        assert_eq!(vals, want, "partition {p}");
    }
}

fn one_producer_one_consumer(args: &[&str]) {
    let broker = Broker::start_with(2, args);
    let bs = broker.bootstrap();
    let topic = "sharded";
    create_topic(&bs, topic, PARTITIONS, &[]);

    const PER_PARTITION: usize = 200;
    let msgs: Vec<Msg> = (0..PER_PARTITION)
        .flat_map(|i| (0..PARTITIONS).map(move |p| Msg::value(format!("p{p}-{i}")).to(p)))
        .collect();
    let delivered = produce(&producer_config(&bs), topic, &msgs);
    let mut acked: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for d in &delivered {
        acked.entry(d.partition).or_default().push(d.offset);
    }
    assert_eq!(
        acked.len(),
        PARTITIONS as usize,
        "deliveries to every partition"
    );
    for (p, offs) in &mut acked {
        offs.sort_unstable();
        assert_eq!(
            *offs,
            (0..PER_PARTITION as i64).collect::<Vec<_>>(),
            "offsets of partition {p}"
        );
    }

    let got = consume_all(&bs, topic, PARTITIONS, msgs.len(), Duration::from_secs(60));
    let parts = by_partition(&got);
    assert_eq!(parts.len(), PARTITIONS as usize);
    for (p, ms) in parts {
        let vals: Vec<String> = ms.iter().map(|m| payload_str(m)).collect();
        let want: Vec<String> = (0..PER_PARTITION).map(|i| format!("p{p}-{i}")).collect();
        assert_eq!(vals, want, "partition {p}");
        for (i, m) in ms.iter().enumerate() {
            assert_eq!(m.offset(), i as i64);
        }
    }
    for p in 0..PARTITIONS {
        assert_eq!(
            watermarks(&bs, topic, p),
            (0, PER_PARTITION as i64),
            "watermarks of partition {p}"
        );
    }
}

fn batch_for(p: i32, round: usize, n: usize) -> Bytes {
    let values: Vec<String> = (0..n).map(|i| format!("r{round}-p{p}-{i}")).collect();
    let ts = now_ms();
    let records: Vec<sluice::record::build::RecordSpec<'_>> = values
        .iter()
        .map(|v| (None, Some(v.as_bytes()), ts, &[][..]))
        .collect();
    sluice::record::build::build_batch(0, &records)
}

/// On 2 shards, one raw Produce to 16 partitions and one raw Fetch of 16 partitions return results for every partition; a long-polling multi-partition Fetch returns data produced while it waits.
#[test]
fn raw_multi_partition_produce_and_fetch() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let topic = "sharded-raw";
    create_topic(&bs, topic, PARTITIONS, &[]);
    let mut c = RawClient::connect(&bs);

    // Metadata: every partition led by the one broker, which advertises the listening address.
    let md: MetadataResponse = c.call(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(raw::topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(md.brokers.len(), 1);
    let b = &md.brokers[0];
    assert_eq!(
        format!("{}:{}", b.host.as_str(), b.port),
        bs,
        "advertised address"
    );
    assert_eq!(md.topics.len(), 1);
    assert_eq!(md.topics[0].error_code, err::NONE);
    assert_eq!(md.topics[0].partitions.len(), PARTITIONS as usize);
    for p in &md.topics[0].partitions {
        assert_eq!(p.error_code, err::NONE);
        assert_eq!(
            p.leader_id, b.node_id,
            "leader of partition {}",
            p.partition_index
        );
    }

    // Round 0: one Produce request with a batch of p+1 records for every partition p.
    let count = |p: i32| (p + 1) as usize;
    let resp: ProduceResponse = c.call(
        9,
        &raw::produce_request(
            topic,
            -1,
            (0..PARTITIONS)
                .map(|p| (p, batch_for(p, 0, count(p))))
                .collect(),
        ),
    );
    assert_eq!(resp.responses.len(), 1);
    let mut bases: BTreeMap<i32, (i16, i64)> = BTreeMap::new();
    for pr in &resp.responses[0].partition_responses {
        bases.insert(pr.index, (pr.error_code, pr.base_offset));
    }
    let want: BTreeMap<i32, (i16, i64)> = (0..PARTITIONS).map(|p| (p, (err::NONE, 0))).collect();
    assert_eq!(bases, want, "produce results per partition");

    // One Fetch for all 16 partitions from offset 0 returns every partition's records.
    let all: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    for v in [4, 12] {
        let resp: FetchResponse = c.call(v, &raw::fetch_request(topic, &all, 1000));
        assert_eq!(resp.error_code, err::NONE);
        let mut seen: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for t in &resp.responses {
            assert_eq!(t.topic.0.as_str(), topic);
            for pd in &t.partitions {
                assert_eq!(
                    pd.error_code,
                    err::NONE,
                    "Fetch v{v} partition {}",
                    pd.partition_index
                );
                assert_eq!(
                    pd.high_watermark,
                    count(pd.partition_index) as i64,
                    "Fetch v{v} hw of {}",
                    pd.partition_index
                );
                let recs = raw::decode_records(&pd.records);
                let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
                assert_eq!(
                    offsets,
                    (0..count(pd.partition_index) as i64).collect::<Vec<_>>()
                );
                seen.insert(
                    pd.partition_index,
                    recs.iter()
                        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
                        .collect(),
                );
            }
        }
        let want: BTreeMap<i32, Vec<String>> = (0..PARTITIONS)
            .map(|p| (p, (0..count(p)).map(|i| format!("r0-p{p}-{i}")).collect()))
            .collect();
        assert_eq!(seen, want, "Fetch v{v}: data for every partition");
    }

    // A Fetch of all partitions at their log end long-polls; a produce from another
    // connection to one partition during the wait shows up in the response.
    let at_end: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, count(p) as i64)).collect();
    c.send(12, &raw::fetch_request(topic, &at_end, 10_000));
    std::thread::sleep(Duration::from_millis(300));
    let mut producer = RawClient::connect(&bs);
    let target = 13;
    assert_eq!(
        producer.produce_batch(topic, target, batch_for(target, 1, 2)),
        (err::NONE, count(target) as i64)
    );
    let resp: FetchResponse = c.recv();
    let mut with_data = Vec::new();
    for t in &resp.responses {
        for pd in &t.partitions {
            assert_eq!(pd.error_code, err::NONE);
            let recs = raw::decode_records(&pd.records);
            if !recs.is_empty() {
                with_data.push(pd.partition_index);
                let vals: Vec<String> = recs
                    .iter()
                    .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
                    .collect();
                assert_eq!(
                    vals,
                    vec![format!("r1-p{target}-0"), format!("r1-p{target}-1")]
                );
                assert_eq!(recs[0].offset, count(target) as i64);
            }
        }
    }
    assert_eq!(
        with_data,
        vec![target],
        "only the produced-to partition has new data"
    );
}

/// On 2 shards, a long poll over every partition, woken by an append to
/// one, reads again only what moved: the others keep their first read
/// (counted at `/metrics`), and each round answers the new records once,
/// every other partition empty at its unchanged high watermark. The wake
/// carries the owner's read: a round costs at most three cross-shard
/// messages (the fetch's first read and its wait on the other shard, and
/// the produce if it arrived on a shard that does not own the partition),
/// not a fourth to read again after the wake. The fetch names topics by id
/// (v13), an unknown one first: a partition answered without a read sits
/// before the others, so the wake's outcomes must find their places.
#[test]
fn a_woken_long_poll_reads_again_only_what_moved() {
    const ROUNDS: u64 = 4;
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    let topic = "woken-poll";
    create_topic(&bs, topic, PARTITIONS, &[]);
    let mut fetcher = RawClient::connect(&bs);
    let mut producer = RawClient::connect(&bs);
    let id = raw::topic_id(&mut fetcher, topic);
    let unknown = uuid::Uuid::from_u128(0x5eed);
    let mut ends: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let hops_before = broker.metric("sluice_mesh_hop_seconds_count");
    for round in 0..ROUNDS as usize {
        let target = (round as i32 * 5 + 3) % PARTITIONS;
        let records = round + 1;
        let kept_before = broker.metric("sluice_fetch_partitions_kept_total");
        let at_end: Vec<(i32, i64)> = ends.iter().map(|(&p, &end)| (p, end)).collect();
        let mut request = raw::fetch_by_id(id, &at_end).with_max_wait_ms(60_000);
        let mut nobody = request.topics[0].clone();
        nobody.topic_id = unknown;
        nobody.partitions.truncate(1);
        request.topics.insert(0, nobody);
        fetcher.send(13, &request);
        let parked = broker.wait_metric("sluice_fetch_parked", 1);
        assert!(parked >= 1, "round {round}: the fetch never parked");
        assert_eq!(
            producer.produce_batch(topic, target, batch_for(target, round, records)),
            (err::NONE, ends[&target])
        );
        let resp: FetchResponse = fetcher.recv();
        assert_eq!(resp.error_code, err::NONE);
        let mut answered = 0;
        assert_eq!(resp.responses[0].topic_id, unknown);
        assert_eq!(
            resp.responses[0].partitions[0].error_code,
            err::UNKNOWN_TOPIC_ID
        );
        for pd in resp.responses.iter().skip(1).flat_map(|t| &t.partitions) {
            let p = pd.partition_index;
            answered += 1;
            assert_eq!(pd.error_code, err::NONE, "round {round} partition {p}");
            let values: Vec<String> = raw::decode_records(&pd.records)
                .iter()
                .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
                .collect();
            if p == target {
                let want: Vec<String> =
                    (0..records).map(|i| format!("r{round}-p{p}-{i}")).collect();
                assert_eq!(values, want, "round {round}: the new records, once");
                assert_eq!(pd.high_watermark, ends[&p] + records as i64);
            } else {
                assert!(values.is_empty(), "round {round} partition {p}: {values:?}");
                assert_eq!(pd.high_watermark, ends[&p], "round {round} partition {p}");
            }
        }
        assert_eq!(
            answered, PARTITIONS,
            "round {round}: every partition answered"
        );
        // Every partition but the one the wake read again.
        let kept = broker.metric("sluice_fetch_partitions_kept_total") - kept_before;
        assert_eq!(
            kept,
            PARTITIONS as u64 - 1,
            "round {round}: partitions that kept their first read"
        );
        *ends.get_mut(&target).unwrap() += records as i64;
        // The other owner's wait ends once it hears the fetch is answered;
        // the next round's parked fetch must be the next round's own.
        let mut still_parked = broker.metric("sluice_fetch_parked");
        for _ in 0..100 {
            if still_parked == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            still_parked = broker.metric("sluice_fetch_parked");
        }
        assert_eq!(still_parked, 0, "round {round}: a wait outlived its fetch");
    }
    let hops = broker.metric("sluice_mesh_hop_seconds_count") - hops_before;
    assert!(
        hops <= 3 * ROUNDS,
        "{hops} cross-shard messages for {ROUNDS} woken long polls"
    );
}

/// Long polls on parts of one topic wake only for their own partitions;
/// one holding all of a topic's partitions (it waits on the topic's
/// shared event, not on each partition) wakes for any of them. Each append
/// below wakes exactly one of the three parked fetches
/// (`sluice_fetch_wakeup_seconds_count`), which answers with its record.
#[test]
fn long_polls_on_parts_of_a_topic_wake_only_for_their_own() {
    let broker = Broker::start_with(1, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "halves", 8, &[]);
    create_topic(&bs, "whole", 8, &[]);
    let mut producer = RawClient::connect(&bs);
    let from_start = |ps: std::ops::Range<i32>| ps.map(|p| (p, 0)).collect::<Vec<(i32, i64)>>();
    let mut low = RawClient::connect(&bs);
    let mut high = RawClient::connect(&bs);
    let mut all = RawClient::connect(&bs);
    low.send(12, &raw::fetch_request("halves", &from_start(0..4), 60_000));
    high.send(12, &raw::fetch_request("halves", &from_start(4..8), 60_000));
    all.send(12, &raw::fetch_request("whole", &from_start(0..8), 60_000));
    assert_eq!(broker.wait_metric("sluice_fetch_parked", 3), 3);
    let mut wakes = broker.metric("sluice_fetch_wakeup_seconds_count");
    for (fetcher, topic, target) in [
        (&mut low, "halves", 1),
        (&mut all, "whole", 6),
        (&mut high, "halves", 5),
    ] {
        assert_eq!(
            producer.produce_batch(topic, target, batch_for(target, 0, 1)),
            (err::NONE, 0)
        );
        let resp: FetchResponse = fetcher.recv();
        for pd in &resp.responses[0].partitions {
            let p = pd.partition_index;
            assert_eq!(pd.error_code, err::NONE, "{topic} {p}");
            let values: Vec<Bytes> = raw::decode_records(&pd.records)
                .into_iter()
                .map(|r| r.value.unwrap())
                .collect();
            let want: Vec<Bytes> = match p == target {
                true => vec![Bytes::from(format!("r0-p{p}-0"))],
                false => Vec::new(),
            };
            assert_eq!(values, want, "{topic} {p}");
        }
        let now = broker.metric("sluice_fetch_wakeup_seconds_count");
        assert_eq!(now - wakes, 1, "{topic} {target}: waits woken");
        wakes = now;
    }
}

/// `--shard-stall-warn-ms` logs a shard thread held past its task queue's
/// budget, with a backtrace of where: a produce of one 90 MB record is
/// checked and written to the page cache in single steps (a CRC over it,
/// then one `pwritev`), each far past the serving queue's 1 ms quota plus
/// the 1 ms warning. Without the flag nothing watches.
#[test]
fn a_shard_held_past_the_stall_warning_is_logged() {
    const RECORD_BYTES: usize = 90 << 20;
    let stall = "stall-detector";
    let held = |broker: &Broker| {
        let bootstrap = broker.bootstrap();
        create_topic(&bootstrap, "big", 1, &[("max.message.bytes", "100000000")]);
        let mut config = producer_config(&bootstrap);
        config
            .set("message.max.bytes", "100000000")
            .set("request.timeout.ms", "60000");
        produce(&config, "big", &[Msg::value(vec![7u8; RECORD_BYTES])]);
    };
    let watched = Broker::start_with(1, &["--shard-stall-warn-ms", "1"]);
    held(&watched);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !watched.stderr_tail(10_000).contains(stall) {
        assert!(
            std::time::Instant::now() < deadline,
            "no stall logged within 10 s:\n{}",
            watched.stderr_tail(50)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(watched.stderr_tail(10_000).contains("went over-budget"));

    let unwatched = Broker::start(1);
    held(&unwatched);
    assert!(
        !unwatched.stderr_tail(10_000).contains(stall),
        "{}",
        unwatched.stderr_tail(50)
    );
}

/// A second broker on a port a running broker listens on refuses to start,
/// as Kafka's would: the shards' SO_REUSEPORT listeners must not let it
/// bind beside the first and take a share of its connections. The first
/// keeps serving.
#[test]
fn a_second_broker_on_a_port_in_use_refuses_to_start() {
    let first = Broker::start(2);
    let dir = tempfile::tempdir().unwrap();
    let refused = refused_start_on(&first.bootstrap(), dir.path(), &[]);
    assert!(refused.contains("in use"), "{refused}");
    create_topic(&first.bootstrap(), "still-served", 2, &[]);
    wait_for_partitions(&first.bootstrap(), "still-served", 2);
}

/// What /proc says of the executable mapping of the sluice binary in
/// process `pid`: its `Size:` and `Rss:` in kB, and whether it is locked
/// (`lo` among its `VmFlags:`).
fn binary_code(pid: u32) -> (u64, u64, bool) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_sluice"))
        .canonicalize()
        .unwrap();
    let binary = binary.to_string_lossy();
    let mut lines = smaps.lines();
    let header = |l: &str| l.contains(" r-xp ") && l.trim_end().ends_with(&*binary);
    lines
        .find(|l| header(l))
        .expect("the binary's code mapping");
    let mut field = |name: &str| -> &str {
        let line = lines.find(|l| l.starts_with(name)).unwrap();
        line[name.len()..].trim()
    };
    let kb = |v: &str| -> u64 { v.trim_end_matches("kB").trim().parse().unwrap() };
    let size = kb(field("Size:"));
    let rss = kb(field("Rss:"));
    let locked = field("VmFlags:").split_whitespace().any(|f| f == "lo");
    (size, rss, locked)
}

/// Whether this process may lock any amount of memory (CAP_IPC_LOCK).
fn may_lock_memory() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap();
    u64::from_str_radix(eff.trim(), 16).unwrap() & (1 << CAP_IPC_LOCK) != 0
}

/// `--lock-code` locks the whole of the binary's code in memory and the
/// broker serves as before; without it nothing is locked. Where locking is
/// not allowed (no CAP_IPC_LOCK, and RLIMIT_MEMLOCK at 0) the broker
/// refuses to start and names the limit, rather than serving with its code
/// evictable when it was asked not to.
#[test]
fn lock_code_keeps_the_binary_resident_or_refuses_to_start() {
    if !may_lock_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut no_memlock = std::process::Command::new("sh");
        no_memlock
            .args(["-c", r#"ulimit -l 0 && exec "$0" "$@""#])
            .arg(env!("CARGO_BIN_EXE_sluice"));
        let refused = refused_start_as(no_memlock, "127.0.0.1:0", dir.path(), &["--lock-code"]);
        assert!(refused.contains("RLIMIT_MEMLOCK"), "{refused}");
        return;
    }
    let locked = Broker::start_with(2, &["--lock-code"]);
    let (size_kb, rss_kb, is_locked) = binary_code(locked.pid());
    assert!(is_locked, "the binary's code mapping is not locked");
    assert!(size_kb > 0);
    assert_eq!(rss_kb, size_kb, "all of the binary's code resident");
    let bootstrap = locked.bootstrap();
    create_topic(&bootstrap, "locked", 2, &[]);
    let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    produce_values(&bootstrap, "locked", None, &values);
    let got = consume_all(
        &bootstrap,
        "locked",
        2,
        values.len(),
        Duration::from_secs(30),
    );
    assert_eq!(got.len(), values.len());

    let unlocked = Broker::start(1);
    assert!(!binary_code(unlocked.pid()).2);
}

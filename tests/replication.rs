//! Partition replication across real `sluice` nodes, as Kafka defines it:
//! followers fetch from the leader, the ISR shrinks and grows, acks=all
//! waits for the ISR and is refused below `min.insync.replicas`, a
//! diverged replica truncates to the leader's log (leader epochs), and the
//! group coordinator moves with its `__consumer_offsets` partition.
//!
//! Broker flags these tests rely on: `--replica-lag-time-max-ms`,
//! `--replica-fetch-wait-max-ms`, `--offsets-topic-replication-factor`
//! (besides the session / heartbeat flags the harness sets); topic configs
//! `min.insync.replicas` and `unclean.leader.election.enable`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, LearnerListen, PartitionView, WAIT};
use common::raw::{self, err, RawClient};
use common::*;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const INVALID_TXN_STATE: i16 = 48;

/// Every node of a 3-node cluster, sorted as ISRs are.
const ALL3: [i32; 3] = [1, 2, 3];

/// A topic with replication factor 3 and `configs`.
fn rf3<'a>(topic: &'a str, partitions: i32, configs: &[(&'a str, &'a str)]) -> NewTopic<'a> {
    configs.iter().fold(
        NewTopic::new(topic, partitions, TopicReplication::Fixed(3)),
        |t, (k, v)| t.set(k, v),
    )
}

/// The compression codec (attributes & 7) of every record batch in a
/// partition's concatenated `.log` bytes.
fn batch_codecs(log: &[u8]) -> Vec<u8> {
    // v2 batch: baseOffset i64, batchLength i32, partitionLeaderEpoch i32,
    // magic i8, crc u32, attributes i16, ...
    const ATTRIBUTES_AT: usize = 8 + 4 + 4 + 1 + 4;
    let mut codecs = Vec::new();
    let mut at = 0;
    while at + ATTRIBUTES_AT + 2 <= log.len() {
        let length = i32::from_be_bytes(log[at + 8..at + 12].try_into().unwrap());
        assert!(length > 0, "bad batch length {length} at byte {at}");
        assert_eq!(log[at + 16], 2, "magic at byte {at}");
        let attributes = u16::from_be_bytes(
            log[at + ATTRIBUTES_AT..at + ATTRIBUTES_AT + 2]
                .try_into()
                .unwrap(),
        );
        codecs.push((attributes & 7) as u8);
        at += 12 + length as usize;
    }
    assert_eq!(at, log.len(), "the log ends with a whole batch");
    codecs
}

/// A consumed record: its offset and value.
type Read = (i64, Vec<u8>);

/// Reads partitions `0..partitions` of `topic` from the beginning up to
/// their high watermarks (taken first), through `bootstrap`.
fn read_to_end(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<Read>> {
    let ends: BTreeMap<i32, i64> = (0..partitions)
        .map(|p| (p, watermarks(bootstrap, topic, p).1))
        .collect();
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .create()
        .expect("create consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out: BTreeMap<i32, Vec<Read>> = (0..partitions).map(|p| (p, Vec::new())).collect();
    let done = |out: &BTreeMap<i32, Vec<Read>>| {
        ends.iter().all(|(p, &end)| {
            out[p]
                .last()
                .map_or(end == 0, |(offset, _)| *offset + 1 >= end)
        })
    };
    let deadline = Instant::now() + WAIT;
    let mut errors = Vec::new();
    while !done(&out) {
        assert!(
            Instant::now() < deadline,
            "reading {topic} up to {ends:?} took over {WAIT:?}; read up to {:?}; errors {errors:?}",
            out.iter()
                .map(|(p, v)| (*p, v.last().map(|r| r.0)))
                .collect::<Vec<_>>()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) if m.offset() < ends[&m.partition()] => out
                .get_mut(&m.partition())
                .unwrap()
                .push((m.offset(), m.payload().unwrap_or_default().to_vec())),
            Some(Ok(_)) | None => {}
            Some(Err(e)) if errors.len() < 20 => errors.push(e.to_string()),
            Some(Err(_)) => {}
        }
    }
    out
}

fn value_str(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// acks=all with min.insync.replicas=2 under kill -9 of the leader of
/// partition 0, twice: every acknowledged message is in the log at the
/// offset it was acknowledged with, in send order within its partition.
#[test]
fn acks_all_survives_leader_kill9() {
    const TOPIC: &str = "repl-acks-all";
    const PARTITIONS: usize = 4;
    const TOTAL: usize = 50_000;
    /// Five chunks: kills after the first and the third, restarts before
    /// the third and the fifth.
    const CHUNK: usize = TOTAL / 5;
    /// Idempotent: no duplicates and no reordering are allowed at all. A
    /// non-idempotent producer (max.in.flight 1) may duplicate on retry.
    const IDEMPOTENT: bool = true;

    let mut cluster = Cluster::start(3);
    cluster.create_topic(&rf3(
        TOPIC,
        PARTITIONS as i32,
        &[("min.insync.replicas", "2")],
    ));
    cluster.wait_isr(TOPIC, PARTITIONS as i32, &ALL3);

    // Every node's port is kept across restarts, so this list stays valid.
    let mut config = producer_config(&cluster.bootstrap());
    config
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "10000")
        .set("enable.idempotence", IDEMPOTENT.to_string());
    if !IDEMPOTENT {
        config.set("max.in.flight.requests.per.connection", "1");
    }
    let (producer, ctx) = collecting_producer(&config);
    let send = |range: std::ops::Range<usize>| {
        for i in range {
            let key = format!("key-{}", i % PARTITIONS);
            let value = i.to_string();
            let record = BaseRecord::with_opaque_to(TOPIC, i)
                .partition((i % PARTITIONS) as i32)
                .key(key.as_bytes())
                .payload(value.as_bytes());
            send_retrying(&producer, record);
        }
    };

    send(0..CHUNK);
    let mut sent = CHUNK;
    for round in 1..=2 {
        // Kill while this chunk is in flight: a tenth of it acknowledged.
        let flowing = sent - CHUNK + CHUNK / 10;
        cluster.wait_until(
            &format!("round {round}: {flowing} acknowledgements"),
            WAIT,
            || ctx.ok_count() >= flowing,
        );
        let victim = cluster.leader_of(TOPIC, 0);
        assert!(victim > 0, "partition 0 has a leader before round {round}");
        eprintln!(
            "round {round}: kill -9 node {victim} (leads partition 0) after {} acks",
            ctx.ok_count()
        );
        cluster.kill9(victim);
        send(sent..sent + CHUNK);
        sent += CHUNK;
        cluster.wait_view(
            TOPIC,
            0,
            &format!("round {round}: a leader for partition 0 other than {victim}"),
            |v| v.leader > 0 && v.leader != victim,
        );
        cluster.start_again(victim);
        // Back in every ISR before the next kill, or min.insync.replicas=2
        // could not be met after it.
        for p in 0..PARTITIONS as i32 {
            cluster.wait_view(
                TOPIC,
                p,
                &format!("round {round}: node {victim} back in the ISR of partition {p}"),
                |v| v.isr == ALL3,
            );
        }
        send(sent..sent + CHUNK);
        sent += CHUNK;
    }
    assert_eq!(sent, TOTAL);
    let flushed = producer.flush(Duration::from_secs(120));
    let delivered = ctx.ok.lock().unwrap().clone();
    let failed = ctx.failed.lock().unwrap().clone();
    eprintln!(
        "{} acknowledged, {} failed, flush: {flushed:?}",
        delivered.len(),
        failed.len()
    );

    let log = read_to_end(&cluster.bootstrap(), TOPIC, PARTITIONS as i32);
    let at: BTreeMap<(i32, i64), &[u8]> = log
        .iter()
        .flat_map(|(p, reads)| reads.iter().map(move |(o, v)| ((*p, *o), &v[..])))
        .collect();

    // Safety first: every acknowledged message is where it was acknowledged.
    let mut lost = Vec::new();
    for d in &delivered {
        assert_eq!(
            d.partition,
            (d.id % PARTITIONS) as i32,
            "message {} went to its partition",
            d.id
        );
        let found = at.get(&(d.partition, d.offset)).map(|v| value_str(v));
        if found.as_deref() != Some(d.id.to_string().as_str()) {
            lost.push((d.id, d.partition, d.offset, found));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages are not at their acknowledged offset; first (id, partition, offset, found): {:?}",
        lost.len(),
        delivered.len(),
        &lost[..lost.len().min(10)]
    );

    // Order within each partition, and duplicates.
    let acked: BTreeSet<usize> = delivered.iter().map(|d| d.id).collect();
    let mut seen = BTreeSet::new();
    let mut duplicates = 0usize;
    for (p, reads) in &log {
        let mut last: Option<(usize, i64)> = None;
        for (offset, value) in reads {
            let id: usize = value_str(value)
                .parse()
                .unwrap_or_else(|_| panic!("{p}@{offset}: value {value:?} is no sequence number"));
            assert!(
                id < TOTAL && id % PARTITIONS == *p as usize,
                "{p}@{offset}: id {id} was never sent here"
            );
            if !seen.insert(id) {
                duplicates += 1;
                continue;
            }
            if !acked.contains(&id) {
                continue;
            }
            if let Some((prev, prev_offset)) = last {
                assert!(
                    id > prev,
                    "partition {p}: acknowledged {id} at offset {offset} after acknowledged {prev} at {prev_offset}"
                );
            }
            last = Some((id, *offset));
        }
    }
    if IDEMPOTENT {
        assert_eq!(
            duplicates, 0,
            "an idempotent producer's messages were written twice"
        );
    } else {
        eprintln!("{duplicates} duplicates (allowed: the producer is not idempotent)");
    }

    // Liveness: with one node down at a time, ISR >= 2 always held.
    assert!(
        failed.is_empty(),
        "{} deliveries failed (the ISR kept two nodes throughout); first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(
        delivered.len(),
        TOTAL,
        "every message got a delivery report"
    );
}

/// min.insync.replicas=2 with two of the three replicas paused: once the
/// ISR is the leader alone, acks=all is refused with NOT_ENOUGH_REPLICAS
/// and nothing is appended; after they resume and rejoin it succeeds.
#[test]
fn min_insync_refuses_when_two_of_three_replicas_stop() {
    const TOPIC: &str = "repl-min-insync";
    // Five voters, so the metadata quorum survives two paused nodes.
    let mut cluster = Cluster::start(5);
    cluster.create_topic(
        &NewTopic::new(TOPIC, 1, TopicReplication::Variable(&[&[3, 4, 5]]))
            .set("min.insync.replicas", "2"),
    );
    let view = cluster.wait_view(TOPIC, 0, "ISR [3, 4, 5]", |v| v.isr == [3, 4, 5]);
    assert_eq!(view.replicas, [3, 4, 5], "the assignment is kept as given");
    let leader = view.leader;
    let followers: Vec<i32> = [3, 4, 5].into_iter().filter(|&id| id != leader).collect();
    let record = |tag: &str| {
        build_owned_batch(&[OwnedRecord {
            key: None,
            value: Some(tag.as_bytes().to_vec()),
            timestamp: now_ms(),
            headers: Vec::new(),
        }])
    };

    let mut raw = RawClient::connect(&cluster.node(leader).bootstrap());
    let (code, first) = raw.produce_batch_with(TOPIC, 0, -1, 10_000, record("before"));
    assert_eq!(code, err::NONE, "acks=all with the full ISR");
    let end_before = raw.log_end_offset(TOPIC, 0);
    assert_eq!(
        end_before,
        first + 1,
        "the high watermark covers the acknowledged record"
    );
    let log_before = cluster.log_bytes(leader, TOPIC, 0);

    for &f in &followers {
        cluster.sigstop(f);
    }
    cluster.wait_view(
        TOPIC,
        0,
        &format!("the ISR shrunk to the leader {leader}"),
        |v| v.leader == leader && v.isr == [leader],
    );
    let mut raw = RawClient::connect(&cluster.node(leader).bootstrap());
    let (code, _) = raw.produce_batch_with(TOPIC, 0, -1, 5_000, record("refused"));
    assert_eq!(
        code,
        err::NOT_ENOUGH_REPLICAS,
        "acks=all with ISR [{leader}] below min.insync.replicas=2 (19 NOT_ENOUGH_REPLICAS, checked before appending)"
    );
    assert_eq!(
        raw.log_end_offset(TOPIC, 0),
        end_before,
        "the refused record moved the high watermark"
    );
    assert_eq!(
        cluster.log_bytes(leader, TOPIC, 0),
        log_before,
        "the refused record reached the leader's log"
    );

    for &f in &followers {
        cluster.sigcont(f);
    }
    let view = cluster.wait_view(TOPIC, 0, "the ISR back to [3, 4, 5]", |v| {
        v.isr == [3, 4, 5]
    });
    let mut raw = RawClient::connect(&cluster.node(view.leader).bootstrap());
    let (code, base) = raw.produce_batch_with(TOPIC, 0, -1, 10_000, record("after"));
    assert_eq!(code, err::NONE, "acks=all once the ISR is whole again");
    assert_eq!(
        base, end_before,
        "the next record follows the last acknowledged one"
    );
}

/// A 3-node cluster with `topic` (1 partition, RF3, all in the ISR), its
/// partition's view, and a follower to pause: not the active controller,
/// so the metadata quorum needs no election. The brokers use the given
/// replica.lag.time.max.ms and broker session timeout.
fn pausable_follower(
    topic: &str,
    lag_max_ms: &str,
    session_ms: &str,
) -> (Cluster, PartitionView, i32) {
    pausable_follower_with(topic, lag_max_ms, session_ms, &[])
}

/// [`pausable_follower`], with `extra` flags for every node.
fn pausable_follower_with(
    topic: &str,
    lag_max_ms: &str,
    session_ms: &str,
    extra: &[&str],
) -> (Cluster, PartitionView, i32) {
    let mut args = vec![
        "--replica-lag-time-max-ms",
        lag_max_ms,
        "--broker-session-timeout-ms",
        session_ms,
        "--broker-heartbeat-interval-ms",
        "300",
    ];
    args.extend_from_slice(extra);
    let cluster = Cluster::start_with(3, &args);
    cluster.create_topic(&rf3(topic, 1, &[]));
    let view = cluster.wait_isr(topic, 1, &ALL3).remove(0);
    let controller = cluster.metadata(view.leader).controller_id.0;
    let follower = ALL3
        .into_iter()
        .filter(|&id| id != view.leader)
        .max_by_key(|&id| id != controller)
        .unwrap();
    (cluster, view, follower)
}

/// A follower paused past replica.lag.time.max.ms leaves the ISR (the
/// controller does not fence it: the session timeout is long), rejoins
/// once resumed and caught up, and ends with the leader's exact bytes.
#[test]
fn lagging_follower_leaves_and_rejoins_isr() {
    const TOPIC: &str = "repl-lagging";
    let (mut cluster, view, lagger) = pausable_follower(TOPIC, "2000", "60000");
    let values: Vec<String> = (0..200).map(|i| format!("before-{i}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &values);
    cluster.sigstop(lagger);

    let mut config = producer_config(&cluster.bootstrap());
    config.set("acks", "1");
    let (producer, ctx) = collecting_producer(&config);
    let mut sent = 0usize;
    cluster.wait_for(&format!("node {lagger} out of the ISR"), WAIT, || {
        for _ in 0..100 {
            let value = format!("during-{sent}");
            send_retrying(
                &producer,
                BaseRecord::with_opaque_to(TOPIC, sent)
                    .partition(0)
                    .payload(value.as_bytes()),
            );
            sent += 1;
        }
        producer
            .flush(Duration::from_secs(30))
            .map_err(|e| format!("flush: {e}"))?;
        let v = cluster.agreed_view(TOPIC, 0)?;
        if v.isr.contains(&lagger) {
            Err(format!("{v:?}"))
        } else {
            assert_eq!(
                v.leader, view.leader,
                "the leader stays while a follower lags"
            );
            Ok(())
        }
    });
    cluster.sigcont(lagger);
    cluster.wait_view(TOPIC, 0, &format!("node {lagger} back in the ISR"), |v| {
        v.isr == ALL3
    });
    assert_eq!(
        ctx.failed_count(),
        0,
        "acks=1 produce failed: {:?}",
        ctx.failed.lock().unwrap().first()
    );

    cluster.wait_logs_identical(TOPIC, 0, &ALL3);
    let log = read_to_end(&cluster.bootstrap(), TOPIC, 1);
    let stored: BTreeSet<String> = log[&0].iter().map(|(_, v)| value_str(v)).collect();
    let expected = values
        .iter()
        .cloned()
        .chain((0..sent).map(|i| format!("during-{i}")));
    let missing: Vec<String> = expected.filter(|v| !stored.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages missing, first {:?}",
        missing.len(),
        missing.first()
    );
}

/// A leader that alone took acks=1 writes, is killed and replaced by a
/// follower, truncates them away on restart: all three logs end
/// byte-identical with the acks=all writes and without the diverged ones.
#[test]
fn diverged_leader_truncates_on_restart() {
    const TOPIC: &str = "repl-diverged";
    let mut cluster = Cluster::start_with(
        3,
        &[
            "--replica-lag-time-max-ms",
            "60000",
            "--replica-fetch-wait-max-ms",
            "500",
        ],
    );
    cluster.create_topic(&rf3(
        TOPIC,
        1,
        &[
            ("min.insync.replicas", "1"),
            ("unclean.leader.election.enable", "false"),
        ],
    ));
    let view = cluster.wait_isr(TOPIC, 1, &ALL3).remove(0);
    let leader = view.leader;
    let followers: Vec<i32> = ALL3.into_iter().filter(|&id| id != leader).collect();

    let committed: Vec<String> = (0..100).map(|i| format!("all-{i}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &committed);
    let common_log = cluster.wait_logs_identical(TOPIC, 0, &ALL3);

    for &f in &followers {
        cluster.sigstop(f);
    }
    // Not pollable: a follower's fetch parked at the leader before the
    // pause is answered (empty) within replica.fetch.wait.max.ms (500 ms);
    // after that the paused followers cannot receive the writes below.
    thread::sleep(Duration::from_millis(1500));
    let mut acks1 = producer_config(&cluster.node(leader).bootstrap());
    acks1.set("acks", "1");
    let diverged: Vec<Msg> = (0..50)
        .map(|i| Msg::value(format!("one-{i}")).to(0))
        .collect();
    produce(&acks1, TOPIC, &diverged);
    assert!(
        cluster.log_bytes(leader, TOPIC, 0).len() > common_log.len(),
        "the leader holds the acks=1 writes"
    );

    cluster.kill9(leader);
    for &f in &followers {
        cluster.sigcont(f);
    }
    let new_view = cluster.wait_view(TOPIC, 0, "a follower elected leader", |v| {
        followers.contains(&v.leader)
    });
    assert!(
        new_view.leader_epoch > view.leader_epoch,
        "a new leader means a new leader epoch: {view:?} then {new_view:?}"
    );
    let after: Vec<String> = (0..70).map(|i| format!("after-{i}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &after);
    check_epochs_on_new_leader(&cluster, TOPIC, &view, &new_view, committed.len() as i64);

    cluster.start_again(leader);
    cluster.wait_view(TOPIC, 0, &format!("node {leader} back in the ISR"), |v| {
        v.isr == ALL3
    });
    cluster.wait_logs_identical(TOPIC, 0, &ALL3);

    let log = read_to_end(&cluster.bootstrap(), TOPIC, 1);
    let stored: Vec<String> = log[&0].iter().map(|(_, v)| value_str(v)).collect();
    let expected: Vec<String> = committed.iter().chain(&after).cloned().collect();
    assert_eq!(
        stored, expected,
        "the log is the acks=all writes in order, without the truncated acks=1 ones"
    );
}

/// What a client asks a new leader after a leader change (KIP-320): the old
/// epoch ended where the new leader's log took over (so a consumer that had
/// read the deposed leader's acks=1 tail sees it was truncated), and
/// requests naming the old epoch are fenced, a future one unknown.
fn check_epochs_on_new_leader(
    cluster: &Cluster,
    topic: &str,
    old: &PartitionView,
    new: &PartitionView,
    old_epoch_end: i64,
) {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
    let mut c = RawClient::connect(&cluster.node(new.leader).bootstrap());
    let ask = |current: i32, epoch: i32| {
        OffsetForLeaderEpochRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(common::raw::topic_name(topic))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(epoch)])])
    };
    let answer = |r: OffsetForLeaderEpochResponse| {
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    };
    let r: OffsetForLeaderEpochResponse = c.call(4, &ask(new.leader_epoch, old.leader_epoch));
    assert_eq!(
        answer(r),
        (0, old.leader_epoch, old_epoch_end),
        "the old epoch ends where the new leader took over"
    );
    let r: OffsetForLeaderEpochResponse = c.call(4, &ask(old.leader_epoch, old.leader_epoch));
    assert_eq!(
        answer(r).0,
        74,
        "FENCED_LEADER_EPOCH for a stale current epoch"
    );
    let fetch = common::raw::fetch_request(topic, &[(0, 0)], 0);
    let mut stale = fetch.clone();
    stale.topics[0].partitions[0].current_leader_epoch = old.leader_epoch;
    let r: kafka_protocol::messages::FetchResponse = c.call(12, &stale);
    assert_eq!(
        r.responses[0].partitions[0].error_code, 74,
        "Fetch is fenced too"
    );
    let mut future = fetch;
    future.topics[0].partitions[0].current_leader_epoch = new.leader_epoch + 1;
    let r: kafka_protocol::messages::FetchResponse = c.call(12, &future);
    assert_eq!(
        r.responses[0].partitions[0].error_code, 75,
        "UNKNOWN_LEADER_EPOCH for an epoch the leader has not reached"
    );
}

/// Batches of every codec are copied to the followers as they are: the
/// three replicas' logs are byte-identical and keep each codec.
#[test]
fn followers_are_byte_identical_for_every_codec() {
    const TOPIC: &str = "repl-codecs";
    const CODECS: [(&str, u8); 5] = [
        ("none", 0),
        ("gzip", 1),
        ("snappy", 2),
        ("lz4", 3),
        ("zstd", 4),
    ];
    let cluster = Cluster::start(3);
    cluster.create_topic(&rf3(TOPIC, 1, &[]));
    cluster.wait_isr(TOPIC, 1, &ALL3);
    let mut expected = Vec::new();
    for (codec, _) in CODECS {
        let mut config = producer_config(&cluster.bootstrap());
        config
            .set("compression.type", codec)
            .set("linger.ms", "20")
            .set("batch.num.messages", "50");
        let values: Vec<Msg> = (0..300)
            .map(|i| Msg::value(format!("{codec}-{i:05}-{}", "compressible ".repeat(8))).to(0))
            .collect();
        produce(&config, TOPIC, &values);
        expected.extend(values.into_iter().map(|m| m.value.unwrap()));
    }
    let log = cluster.wait_logs_identical(TOPIC, 0, &ALL3);
    let codecs: BTreeSet<u8> = batch_codecs(&log).into_iter().collect();
    assert_eq!(
        codecs,
        CODECS.iter().map(|(_, c)| *c).collect(),
        "the replicated log keeps every producer codec"
    );
    let read = read_to_end(&cluster.bootstrap(), TOPIC, 1);
    let stored: Vec<Vec<u8>> = read[&0].iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(stored.len(), expected.len(), "record count");
    assert!(
        stored == expected,
        "the records read back are the ones produced, in order"
    );
}

/// A group consumer, manual commits, fast heartbeats, earliest reset (so a
/// lost commit shows as a re-read from offset 0, not as a stall).
fn group_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = consumer_config(bootstrap);
    c.set("group.id", group)
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "300")
        .set("auto.offset.reset", "earliest");
    c
}

/// The node coordinating `group`, as a live node tells it (FindCoordinator
/// asked again, bounded, while the coordinator moves).
fn group_coordinator(cluster: &Cluster, group: &str) -> i32 {
    cluster.wait_for("the group's coordinator", WAIT, || {
        let live = cluster.bootstrap_of(&[cluster.live()[0]]);
        let (code, node) = RawClient::connect(&live).find_group_coordinator(group);
        if code == err::NONE {
            Ok(node)
        } else {
            Err(format!("FindCoordinator error {code}"))
        }
    })
}

/// The group's coordinator killed after a commit: a new member of the
/// group resumes exactly at the committed offsets, served by the node that
/// took over the `__consumer_offsets` partition.
#[test]
fn group_survives_coordinator_kill9() {
    const TOPIC: &str = "repl-group-topic";
    const GROUP: &str = "repl-group";
    const PARTITIONS: i32 = 3;
    const TOTAL: usize = 1_000;
    let mut cluster = Cluster::start_with(
        3,
        &[
            "--offsets-topic-replication-factor",
            "3",
            "--offsets-topic-num-partitions",
            "3",
            "--group-initial-rebalance-delay-ms",
            "0",
        ],
    );
    cluster.create_topic(&rf3(TOPIC, PARTITIONS, &[]));
    cluster.wait_isr(TOPIC, PARTITIONS, &ALL3);
    let msgs: Vec<Msg> = (0..TOTAL)
        .map(|i| Msg::value(i.to_string()).to(i as i32 % PARTITIONS))
        .collect();
    produce(&producer_config(&cluster.bootstrap()), TOPIC, &msgs);
    let ends: BTreeMap<i32, i64> = (0..PARTITIONS)
        .map(|p| (p, watermarks(&cluster.bootstrap(), TOPIC, p).1))
        .collect();

    // Consume half and commit it synchronously.
    let first: BaseConsumer = group_config(&cluster.bootstrap(), GROUP)
        .create()
        .expect("consumer");
    first.subscribe(&[TOPIC]).expect("subscribe");
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut consumed = 0;
    let deadline = Instant::now() + WAIT;
    while consumed < TOTAL / 2 {
        assert!(
            Instant::now() < deadline,
            "the first consumer read {consumed} of {} in {WAIT:?}",
            TOTAL / 2
        );
        match first.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                consumed += 1;
            }
            Some(Err(e)) => eprintln!("first consumer: {e}"),
            None => {}
        }
    }
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in &next {
        tpl.add_partition_offset(TOPIC, p, Offset::Offset(o))
            .unwrap();
    }
    first
        .commit(&tpl, CommitMode::Sync)
        .expect("synchronous commit");
    assert_eq!(
        committed_offsets(&first, TOPIC, PARTITIONS),
        next,
        "the commit is read back"
    );
    drop(first);

    let coordinator = group_coordinator(&cluster, GROUP);
    eprintln!("coordinator of {GROUP}: node {coordinator}; committed {next:?}");
    cluster.kill9(coordinator);

    // Resume with a new member through the live nodes.
    let second: BaseConsumer = group_config(&cluster.bootstrap(), GROUP)
        .create()
        .expect("consumer");
    second.subscribe(&[TOPIC]).expect("subscribe");
    let start = |p: i32| next.get(&p).copied().unwrap_or(0);
    let remaining: usize = (0..PARTITIONS)
        .map(|p| (ends[&p] - start(p)) as usize)
        .sum();
    assert_eq!(remaining, TOTAL - TOTAL / 2);
    let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
    let mut got: BTreeSet<(i32, i64)> = BTreeSet::new();
    let mut rereads = 0usize;
    let deadline = Instant::now() + Duration::from_secs(90);
    while got.len() < remaining {
        assert!(
            Instant::now() < deadline,
            "after the coordinator's kill the new member read {} of {remaining} in 90 s (first offsets {firsts:?})\n{}",
            got.len(),
            cluster.stderr_tails(25)
        );
        match second.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let (p, o) = (m.partition(), m.offset());
                let first_offset = *firsts.entry(p).or_insert(o);
                assert_eq!(
                    first_offset,
                    start(p),
                    "partition {p}: the new member started at {first_offset}, the group committed {}",
                    start(p)
                );
                assert!(
                    o >= start(p),
                    "partition {p}: offset {o} was committed already"
                );
                if !got.insert((p, o)) {
                    // A rebalance restarts from the commit: allowed, counted.
                    rereads += 1;
                }
            }
            Some(Err(e)) => eprintln!("second consumer: {e}"),
            None => {}
        }
    }
    let expected: BTreeSet<(i32, i64)> = (0..PARTITIONS)
        .flat_map(|p| (start(p)..ends[&p]).map(move |o| (p, o)))
        .collect();
    assert_eq!(
        got, expected,
        "the rest of every partition, nothing before the commit"
    );
    eprintln!("{rereads} uncommitted messages read again after a rebalance");
    drop(second);

    cluster.start_again(coordinator);
    cluster.wait_metadata(coordinator, &format!("node {coordinator} back"), |m| {
        m.brokers.iter().any(|b| b.node_id.0 == coordinator)
    });
}

/// Auto leader rebalance (Kafka's auto.leader.rebalance.enable): a
/// preferred replica that lost its leadership to a kill -9 takes it back
/// once it is in sync again, and what was written meanwhile is all there.
#[test]
fn preferred_leader_takes_its_partition_back() {
    const TOPIC: &str = "repl-rebalance";
    let mut cluster = Cluster::start_with(3, &["--leader-imbalance-check-interval-seconds", "1"]);
    let assigned = NewTopic::new(TOPIC, 1, TopicReplication::Variable(&[&[2, 3, 1]]));
    cluster.create_topic(&assigned);
    let view = cluster.wait_isr(TOPIC, 1, &ALL3).remove(0);
    assert_eq!(view.leader, 2, "the first replica leads a new partition");

    let before: Vec<String> = (0..50).map(|i| format!("before-{i}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &before);
    cluster.kill9(2);
    cluster.wait_view(TOPIC, 0, "another replica leads", |v| {
        v.leader == 3 || v.leader == 1
    });
    let during: Vec<String> = (0..50).map(|i| format!("during-{i}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &during);

    cluster.start_again(2);
    let back = cluster.wait_view(TOPIC, 0, "node 2 leads again, in sync", |v| {
        v.leader == 2 && v.isr == ALL3
    });
    assert!(
        back.leader_epoch > view.leader_epoch + 1,
        "two leader changes"
    );
    let log = read_to_end(&cluster.bootstrap(), TOPIC, 1);
    let stored: Vec<String> = log[&0].iter().map(|(_, v)| value_str(v)).collect();
    let expected: Vec<String> = before.iter().chain(&during).cloned().collect();
    assert_eq!(stored, expected);
}

/// A transactional producer carries on when its coordinator's broker is
/// killed: the broker that comes to lead the `__transaction_state`
/// partition loads the transactional id from the log, and every committed
/// transaction (and none of the aborted one) is what read_committed sees.
#[test]
fn transactions_survive_coordinator_kill9() {
    use rdkafka::producer::{DefaultProducerContext, ThreadedProducer};
    const TOPIC: &str = "repl-txn";
    const TXN_ID: &str = "repl-txn-producer";
    let mut cluster = Cluster::start_with(
        3,
        &[
            "--transaction-state-num-partitions",
            "3",
            "--offsets-topic-replication-factor",
            "3",
        ],
    );
    cluster.create_topic(&rf3(TOPIC, 2, &[("min.insync.replicas", "2")]));
    cluster.wait_isr(TOPIC, 2, &ALL3);

    let producer_for = |bootstrap: &str| -> ThreadedProducer<DefaultProducerContext> {
        let mut config = producer_config(bootstrap);
        config
            .set("transactional.id", TXN_ID)
            .set("enable.idempotence", "true")
            .set("transaction.timeout.ms", "60000")
            .set("message.timeout.ms", "60000");
        let producer: ThreadedProducer<DefaultProducerContext> =
            config.create().expect("transactional producer");
        producer
            .init_transactions(Duration::from_secs(60))
            .expect("init_transactions");
        producer
    };
    let send_txn =
        |producer: &ThreadedProducer<DefaultProducerContext>, tag: &str, commit: bool| {
            producer.begin_transaction().expect("begin");
            for i in 0..20 {
                let value = format!("{tag}-{i}");
                let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(TOPIC)
                    .payload(value.as_bytes())
                    .partition(i % 2);
                let deadline = Instant::now() + WAIT;
                while let Err((e, r)) = producer.send(record) {
                    assert!(Instant::now() < deadline, "send kept failing: {e}");
                    record = r;
                    thread::sleep(Duration::from_millis(5));
                }
            }
            if commit {
                producer
                    .commit_transaction(Duration::from_secs(60))
                    .expect("commit");
            } else {
                producer
                    .abort_transaction(Duration::from_secs(60))
                    .expect("abort");
            }
        };

    let producer = producer_for(&cluster.bootstrap());
    send_txn(&producer, "before", true);
    let coordinator = cluster.wait_for("the transaction coordinator", WAIT, || {
        let (code, node) = RawClient::connect(&cluster.bootstrap_of(&[cluster.live()[0]]))
            .find_coordinator(TXN_ID, 1);
        if code == err::NONE {
            Ok(node)
        } else {
            Err(format!("FindCoordinator error {code}"))
        }
    });
    drop(producer);
    cluster.kill9(coordinator);

    // A new producer instance of the same transactional id, through the
    // live nodes: its InitProducerId goes to the new coordinator, which
    // knows the id (a bumped epoch) from the replicated log.
    let producer = producer_for(&cluster.bootstrap());
    send_txn(&producer, "aborted", false);
    send_txn(&producer, "after", true);
    drop(producer);
    cluster.start_again(coordinator);

    let mut config = consumer_config(&cluster.bootstrap());
    config.set("isolation.level", "read_committed");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..2 {
        assignment
            .add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 40 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            seen.insert(value_str(m.payload().unwrap_or_default()));
        }
    }
    let expected: BTreeSet<String> = ["before", "after"]
        .iter()
        .flat_map(|tag| (0..20).map(move |i| format!("{tag}-{i}")))
        .collect();
    assert_eq!(seen, expected, "committed transactions only, all of them");
}

/// KIP-890 across brokers: a partition's leader verifies a transactional
/// batch with the transactional id's coordinator on another broker
/// (AddPartitionsToTxn v5 between brokers): a partition in the
/// transaction takes the batch, one never added refuses it, and so does a
/// late batch after the transaction was aborted; and under transaction
/// version 2 the coordinator adds the partition.
#[test]
fn a_leader_verifies_transactions_with_a_coordinator_on_another_broker() {
    const TOPIC: &str = "repl-verify";
    const TXN_ID: &str = "repl-verify-producer";
    let cluster = Cluster::start_with(3, &["--transaction-state-num-partitions", "1"]);
    // The coordinator: the leader of the one `__transaction_state`
    // partition, which the first transactional request creates.
    let mut any = RawClient::connect(&cluster.bootstrap_of(&[1]));
    let init = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(Some(kafka_protocol::messages::TransactionalId(
            raw::str_bytes(TXN_ID),
        )))
        .with_transaction_timeout_ms(60_000);
    any.call(4, &init);
    let coordinator = cluster
        .wait_view("__transaction_state", 0, "its leader", |v| v.leader > 0)
        .leader;
    let leader = if coordinator == 1 { 2 } else { 1 };
    // (Any node but the coordinator.)
    cluster.create_topic(&NewTopic::new(
        TOPIC,
        2,
        TopicReplication::Variable(&[&[leader], &[leader]]),
    ));
    cluster.wait_view(TOPIC, 1, "the topic led by the other broker", |v| {
        v.leader == leader
    });
    let mut at_coordinator = RawClient::connect(&cluster.bootstrap_of(&[coordinator]));
    let (id, epoch) = raw::open_transaction(&mut at_coordinator, TXN_ID, TOPIC, &[0]);
    let mut at_leader = RawClient::connect(&cluster.bootstrap_of(&[leader]));
    let batch = |seq| {
        sluice::record::build::with_producer(
            &sluice::record::build::build_simple_batch(0, 1, now_ms()),
            id,
            epoch,
            seq,
            true,
        )
    };
    let mut produce = |partition, seq| {
        raw::produce_transactional(&mut at_leader, 9, TXN_ID, TOPIC, partition, batch(seq)).0
    };
    assert_eq!(produce(0, 0), err::NONE);
    assert_eq!(
        produce(1, 1),
        INVALID_TXN_STATE,
        "partition 1 was never added"
    );
    assert_eq!(produce(0, 1), err::NONE, "joins the open transaction");

    use kafka_protocol::messages::{EndTxnRequest, ProducerId, TransactionalId};
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(raw::str_bytes(TXN_ID)))
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
        .with_committed(false);
    assert_eq!(at_coordinator.call(3, &end).error_code, err::NONE);
    cluster.wait_until("the abort marker", WAIT, || {
        RawClient::connect(&cluster.bootstrap_of(&[leader])).log_end_offset(TOPIC, 0) == 3
    });
    let mut produce = |partition, seq| {
        raw::produce_transactional(&mut at_leader, 9, TXN_ID, TOPIC, partition, batch(seq)).0
    };
    assert_eq!(
        produce(0, 2),
        INVALID_TXN_STATE,
        "after its transaction ended"
    );
    let mut check = RawClient::connect(&cluster.bootstrap_of(&[leader]));
    assert_eq!(check.log_end_offset(TOPIC, 0), 3);
    assert_eq!(check.log_end_offset(TOPIC, 1), 0);

    // Produce v12 (transaction version 2): the leader has the other
    // broker's coordinator add the partition, opening the next transaction.
    let added = raw::produce_transactional(&mut at_leader, 12, TXN_ID, TOPIC, 1, batch(0)).0;
    assert_eq!(added, err::NONE);
    let described = at_coordinator.call(
        0,
        &kafka_protocol::messages::DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(raw::str_bytes(TXN_ID))]),
    );
    let state = &described.transaction_states[0];
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    assert_eq!(state.topics[0].partitions, vec![1]);
}

/// Record batches in a log's bytes (base offset, length, then the rest).
fn batch_count(log: &[u8]) -> usize {
    let mut count = 0;
    let mut at = 0;
    while at + 12 <= log.len() {
        let length = i32::from_be_bytes(log[at + 8..at + 12].try_into().unwrap());
        at += 12 + length as usize;
        count += 1;
    }
    count
}

/// acks=all produces waiting on a connection that closes give their
/// partition's waiting slots back (`--replica-acks-waiting-max`): a slot
/// kept would refuse the partition's next acks=all produce
/// (REQUEST_TIMED_OUT, nothing appended) for as long as the broker runs.
#[test]
fn a_closed_connection_gives_back_its_waiting_acks_slots() {
    const TOPIC: &str = "repl-slots";
    let (mut cluster, view, paused) = pausable_follower_with(
        TOPIC,
        "600000",
        "600000",
        &["--replica-acks-waiting-max", "2"],
    );
    let waits = |tag: &str| {
        let record = OwnedRecord {
            key: None,
            value: Some(tag.as_bytes().to_vec()),
            timestamp: now_ms(),
            headers: Vec::new(),
        };
        common::raw::produce_request(TOPIC, -1, vec![(0, build_owned_batch(&[record]))])
            .with_timeout_ms(600_000)
    };
    cluster.sigstop(paused);
    {
        // Both slots taken by produces that wait for the paused follower,
        // pipelined on one connection, which then closes.
        let mut raw = RawClient::connect(&cluster.node(view.leader).bootstrap());
        raw.send(9, &waits("first"));
        raw.send(9, &waits("second"));
        cluster.wait_for("both appended", WAIT, || {
            match batch_count(&cluster.log_bytes(view.leader, TOPIC, 0)) {
                2 => Ok(()),
                c => Err(format!("{c} batches in the leader's log")),
            }
        });
    }
    // The leader sees the close and drops both waits; until it has, a new
    // produce may still find the slots taken and be refused before it
    // appends, so it is sent again (bounded) until the log has it. Either
    // way it is answered REQUEST_TIMED_OUT: appended, it waits out its own
    // second for the paused follower.
    let mut raw = RawClient::connect(&cluster.node(view.leader).bootstrap());
    let deadline = Instant::now() + WAIT;
    while batch_count(&cluster.log_bytes(view.leader, TOPIC, 0)) < 3 {
        assert!(
            Instant::now() < deadline,
            "the closed connection's slots were never given back"
        );
        raw.send(9, &waits("third").with_timeout_ms(1_000));
        let r: kafka_protocol::messages::ProduceResponse = raw.recv();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, err::REQUEST_TIMED_OUT);
    }
    assert_eq!(batch_count(&cluster.log_bytes(view.leader, TOPIC, 0)), 3);
    cluster.sigcont(paused);
    let r: kafka_protocol::messages::ProduceResponse = raw.call(9, &waits("fourth"));
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (err::NONE, 3));
    cluster.wait_logs_identical(TOPIC, 0, &ALL3);
}

/// A produce waiting for a paused follower's acknowledgement does not hold
/// up the produce after it on the same connection (librdkafka sends one
/// partition per request and keeps many in flight): the second is appended
/// while the first still waits, and the answers come in request order.
#[test]
fn a_waiting_acks_all_produce_does_not_hold_up_the_next_on_its_connection() {
    const TOPIC: &str = "repl-pipelined";
    let (mut cluster, view, paused) = pausable_follower(TOPIC, "600000", "600000");
    let batch = |tag: &str, n: usize| {
        let records: Vec<OwnedRecord> = (0..n)
            .map(|i| OwnedRecord {
                key: None,
                value: Some(format!("{tag}-{i}").into_bytes()),
                timestamp: now_ms(),
                headers: Vec::new(),
            })
            .collect();
        build_owned_batch(&records)
    };
    cluster.sigstop(paused);

    let mut raw = RawClient::connect(&cluster.node(view.leader).bootstrap());
    // Waits for the paused follower (it stays in the ISR) far longer than
    // this test runs; only resuming it answers this produce.
    let waiting = common::raw::produce_request(TOPIC, -1, vec![(0, batch("waits", 3))])
        .with_timeout_ms(600_000);
    let first = raw.send(9, &waiting);
    let next = common::raw::produce_request(TOPIC, 1, vec![(0, batch("next", 2))]);
    let second = raw.send(9, &next);
    assert!(second > first);
    cluster.wait_for(
        "the second produce appended while the first waits",
        WAIT,
        || match batch_count(&cluster.log_bytes(view.leader, TOPIC, 0)) {
            2 => Ok(()),
            n => Err(format!("{n} batches in the leader's log")),
        },
    );

    cluster.sigcont(paused);
    let answers: Vec<(i16, i64)> = (0..2)
        .map(|_| {
            let r: kafka_protocol::messages::ProduceResponse = raw.recv();
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        })
        .collect();
    assert_eq!(
        answers,
        [(err::NONE, 0), (err::NONE, 3)],
        "answered in request order, each at its own offsets"
    );
    cluster.wait_logs_identical(TOPIC, 0, &ALL3);
}

/// A consumer group protocol member (KIP-848) whose coordinator is killed
/// goes on as it was: the coordinator that takes over `__consumer_offsets`
/// reads the group's membership from it, so the member keeps its id, its
/// member epoch and every partition, and the group its epoch (a second
/// member joined and left first, so a group started afresh would show a
/// lower one). Everything produced before and after the kill is consumed.
#[test]
fn a_consumer_protocol_member_outlives_its_coordinator() {
    const TOPIC: &str = "kip848-failover";
    const GROUP: &str = "kip848-failover";
    const PARTITIONS: i32 = 3;
    let mut cluster = Cluster::start_with(
        3,
        &[
            "--offsets-topic-replication-factor",
            "3",
            "--offsets-topic-num-partitions",
            "3",
            "--group-consumer-heartbeat-interval-ms",
            "200",
        ],
    );
    cluster.create_topic(&rf3(TOPIC, PARTITIONS, &[]));
    cluster.wait_isr(TOPIC, PARTITIONS, &ALL3);
    let produce_range = |cluster: &Cluster, range: std::ops::Range<usize>| {
        let msgs: Vec<Msg> = range
            .map(|i| Msg::value(i.to_string()).to(i as i32 % PARTITIONS))
            .collect();
        produce(&producer_config(&cluster.bootstrap()), TOPIC, &msgs);
    };
    let mut config = consumer_config(&cluster.bootstrap());
    config
        .set("group.id", GROUP)
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest");
    let member: BaseConsumer = config.create().expect("consumer");
    member.subscribe(&[TOPIC]).expect("subscribe");
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut consume_until = |count: usize, cluster: &Cluster| {
        let deadline = Instant::now() + Duration::from_secs(90);
        while seen.len() < count {
            assert!(
                Instant::now() < deadline,
                "the member consumed {} of {count}\n{}",
                seen.len(),
                cluster.stderr_tails(25)
            );
            if let Some(Ok(m)) = member.poll(Duration::from_millis(100)) {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default());
                seen.insert(value.into_owned());
            }
        }
    };
    produce_range(&cluster, 0..300);
    consume_until(300, &cluster);

    // A second member comes and goes: the group epoch moves on.
    let describe = |cluster: &Cluster| {
        let mut request = kafka_protocol::messages::ConsumerGroupDescribeRequest::default();
        request.group_ids = vec![common::raw::str_bytes(GROUP).into()];
        let node = group_coordinator(cluster, GROUP);
        let mut response: kafka_protocol::messages::ConsumerGroupDescribeResponse =
            RawClient::connect(&cluster.client_addr(node)).call(0, &request);
        response.groups.remove(0)
    };
    let stable =
        |g: &kafka_protocol::messages::consumer_group_describe_response::DescribedGroup,
         members: usize| {
            let owned: usize = g
                .members
                .iter()
                .flat_map(|m| m.assignment.topic_partitions.iter())
                .map(|tp| tp.partitions.len())
                .sum();
            g.error_code == 0
                && g.group_state.as_str() == "Stable"
                && g.members.len() == members
                && owned == PARTITIONS as usize
        };
    let second: BaseConsumer = config.create().expect("consumer");
    second.subscribe(&[TOPIC]).expect("subscribe");
    cluster.wait_for("two members", WAIT, || {
        let _ = member.poll(Duration::from_millis(20));
        let _ = second.poll(Duration::from_millis(20));
        let g = describe(&cluster);
        if stable(&g, 2) {
            Ok(())
        } else {
            Err(format!("{g:?}"))
        }
    });
    drop(second);
    let before = cluster.wait_for("one member again", WAIT, || {
        let _ = member.poll(Duration::from_millis(20));
        let g = describe(&cluster);
        if stable(&g, 1) {
            Ok(g)
        } else {
            Err(format!("{g:?}"))
        }
    });
    assert!(before.group_epoch >= 3, "{before:?}");

    let coordinator = group_coordinator(&cluster, GROUP);
    cluster.kill9(coordinator);
    produce_range(&cluster, 300..600);
    consume_until(600, &cluster);
    let expected: BTreeSet<String> = (0..600).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected);
    let after = cluster.wait_for("the group at the new coordinator", WAIT, || {
        let _ = member.poll(Duration::from_millis(50));
        let g = describe(&cluster);
        if stable(&g, 1) {
            Ok(g)
        } else {
            Err(format!("{g:?}"))
        }
    });
    assert_eq!(after.group_epoch, before.group_epoch, "{after:?}");
    let who = |g: &kafka_protocol::messages::consumer_group_describe_response::DescribedGroup| {
        (
            g.members[0].member_id.to_string(),
            g.members[0].member_epoch,
        )
    };
    assert_eq!(
        who(&after),
        who(&before),
        "the same member at the same epoch"
    );
}

/// A broker whose disk was replaced comes back under its id, on an empty
/// data dir, before its session ran out: it leaves the ISR it was in
/// (`LogsLost`, proposed before it is unfenced), so when the leader is
/// lost next, the replica that holds the acknowledged records leads, not
/// the empty one first in the replica order, and nothing acknowledged is
/// lost. Without it the empty broker stayed in the ISR and led, and the
/// other follower truncated to it. (It may rejoin the ISR later, once it
/// has caught up from the new leader.)
#[test]
fn a_broker_back_on_an_empty_disk_leaves_its_isrs() {
    comes_back_out_of_its_isrs("repl-new-disk", |dir| {
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::create_dir_all(dir).unwrap();
    });
}

/// The same for a broker stopped uncleanly whose machine restarted (its
/// data dir last used under another boot id): the page cache is gone, so
/// its logs may be missing their unflushed tails.
#[test]
fn a_broker_back_from_a_machine_restart_leaves_its_isrs() {
    comes_back_out_of_its_isrs("repl-reboot", |dir| {
        std::fs::write(dir.join("boot.id"), "another-boot").unwrap();
    });
}

/// The last in-sync replica of a partition comes back on an empty disk
/// (`LastInSyncLost`): the partition stays offline rather than have it lead
/// an empty log, which would make the other replica truncate the records
/// it holds. An unclean election then elects that other replica, with
/// them (the writes only the emptied replica took are gone with its disk),
/// and the emptied replica follows it back into the ISR. Without the
/// record the emptied replica led again and the other truncated to it:
/// nothing was left.
#[test]
fn the_last_in_sync_replica_back_on_an_empty_disk_leads_nothing() {
    const TOPIC: &str = "repl-last-isr-lost";
    let mut cluster = Cluster::start(3);
    let controller = cluster.metadata(1).controller_id.0;
    let others: Vec<i32> = ALL3.into_iter().filter(|&id| id != controller).collect();
    let (last, other) = (others[0], others[1]);
    cluster.create_topic(&NewTopic::new(
        TOPIC,
        1,
        TopicReplication::Variable(&[&[last, other]]),
    ));
    cluster.wait_view(TOPIC, 0, "both in sync, the first leading", |v| {
        v.isr.len() == 2 && v.leader == last
    });
    let held: Vec<String> = (0..200).map(|i| format!("v-{i}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &held);
    cluster.wait_logs_identical(TOPIC, 0, &[last, other]);

    cluster.kill9(other);
    cluster.wait_view(TOPIC, 0, "the ISR down to its leader", |v| v.isr == [last]);
    let only_on_last: Vec<String> = (0..50).map(|i| format!("w-{i}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &only_on_last);
    cluster.kill9(last);
    let dir = cluster.node(last).data_dir().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    cluster.start_again(other);
    cluster.start_again(last);
    // It proposed the record before its first heartbeat.
    wait_unfenced(&cluster, controller, &[last, other]);
    let view = cluster.wait_view(TOPIC, 0, "every node's view", |_| true);
    assert_eq!(
        view.leader, -1,
        "offline, not led by the emptied replica: {view:?}"
    );

    allow_unclean_election(&cluster, TOPIC);
    cluster.wait_view(TOPIC, 0, "the other replica elected", |v| v.leader == other);
    let read = read_to_end(&cluster.bootstrap(), TOPIC, 1);
    let values: Vec<String> = read[&0].iter().map(|(_, v)| value_str(v)).collect();
    assert_eq!(values, held, "what the other replica held, in order");
    cluster.wait_view(TOPIC, 0, "the emptied replica back in the ISR", |v| {
        v.isr.len() == 2
    });
    cluster.wait_logs_identical(TOPIC, 0, &[last, other]);
}

/// An unclean election elects the replica that left the ISR last, which
/// holds every record acknowledged before it left, not the first live one
/// in the replica order (which left earlier and holds less): Kafka's
/// unclean recovery picks the longest log the same way (KIP-966).
#[test]
fn an_unclean_election_elects_the_last_replica_out_of_the_isr() {
    const TOPIC: &str = "repl-last-out";
    let (mut cluster, held) = replicas_leave_in_turn(TOPIC, 1, false);
    allow_unclean_election(&cluster, TOPIC);
    led_by_the_last_out(&mut cluster, TOPIC, &held);
}

/// With `min.insync.replicas=2`, the replica that left the ISR when it
/// fell to one holds every acks=all record (none could be acknowledged
/// since): when the last in-sync replica dies, it takes over without an
/// unclean election (Kafka's eligible leader replicas, KIP-966). The one
/// that left first, while two stayed, may not.
#[test]
fn a_replica_eligible_to_lead_takes_over_without_an_unclean_election() {
    const TOPIC: &str = "repl-elr";
    let (mut cluster, held) = replicas_leave_in_turn(TOPIC, 2, false);
    led_by_the_last_out(&mut cluster, TOPIC, &held);
}

/// The same, but the eligible replica's disk was replaced while it was
/// down: it comes back empty, is no longer eligible (`LogsLost` takes it
/// out of the departures), and the partition waits offline for its last
/// in-sync replica, which then leads with every acknowledged record.
/// Without that the emptied replica led cleanly and the returning one
/// truncated everything to it.
#[test]
fn an_eligible_replica_back_on_an_empty_disk_leads_nothing() {
    const TOPIC: &str = "repl-elr-emptied";
    let (mut cluster, held) = replicas_leave_in_turn(TOPIC, 2, true);
    // Until its session ends, the killed first replica still leads.
    let view = cluster.wait_view(TOPIC, 0, "the first replica fenced", |v| v.leader != 2);
    assert_eq!(
        view.leader, -1,
        "offline, not led by the emptied replica: {view:?}"
    );
    cluster.start_again(2);
    cluster.wait_view(TOPIC, 0, "the first replica back", |v| v.leader == 2);
    let read = read_to_end(&cluster.bootstrap(), TOPIC, 1);
    let values: Vec<String> = read[&0].iter().map(|(_, v)| value_str(v)).collect();
    assert_eq!(values, held, "every acknowledged record");
    cluster.wait_view(TOPIC, 0, "all in sync again", |v| v.isr == [2, 3, 4]);
    cluster.wait_logs_identical(TOPIC, 0, &[2, 3, 4]);
}

/// Replicas `[2, 4, 3]` of one partition (one voter and three broker-only
/// nodes, so the quorum outlives them all): 4 leaves the ISR, 100 records
/// are acknowledged by 2 and 3, 3 leaves (with `min_insync` 1, 2 then
/// alone acknowledges 50 more), 2 dies, and 4 and 3 come back out of sync
/// (3 on an emptied data dir with `wipe_late`). Returns the records 3
/// held.
fn replicas_leave_in_turn(
    topic: &str,
    min_insync: usize,
    wipe_late: bool,
) -> (Cluster, Vec<String>) {
    let mut cluster = Cluster::start_mixed(1, 3, LearnerListen::Fixed, &[]);
    let (first, early, late) = (2, 4, 3);
    cluster.create_topic(
        &NewTopic::new(
            topic,
            1,
            TopicReplication::Variable(&[&[first, early, late]]),
        )
        .set("min.insync.replicas", &min_insync.to_string()),
    );
    cluster.wait_view(topic, 0, "all in sync", |v| v.isr == [2, 3, 4]);
    cluster.kill9(early);
    cluster.wait_view(topic, 0, "the early one out", |v| v.isr == [first, late]);
    let held: Vec<String> = (0..100).map(|i| format!("a-{i}")).collect();
    produce_values(&cluster.bootstrap(), topic, Some(0), &held);
    cluster.wait_logs_identical(topic, 0, &[first, late]);
    cluster.kill9(late);
    cluster.wait_view(topic, 0, "the late one out", |v| v.isr == [first]);
    // The late one may lead cleanly only if no acks=all write could be
    // acknowledged without it since: with min.insync.replicas 2, not 1.
    let eligible = if min_insync == 2 { vec![late] } else { vec![] };
    assert_eq!(eligible_leaders(&cluster, topic), eligible);
    if min_insync == 1 {
        let only_on_first: Vec<String> = (0..50).map(|i| format!("b-{i}")).collect();
        produce_values(&cluster.bootstrap(), topic, Some(0), &only_on_first);
    }
    cluster.kill9(first);
    if wipe_late {
        let dir = cluster.node(late).data_dir().to_path_buf();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
    }
    cluster.start_again(early);
    cluster.start_again(late);
    wait_unfenced(&cluster, 1, &[early, late]);
    (cluster, held)
}

/// The replica that left last (3) leads, with every record acknowledged
/// while it was in sync; the first comes back, truncates what only it
/// took, and all three are in sync again.
fn led_by_the_last_out(cluster: &mut Cluster, topic: &str, held: &[String]) {
    // Until its session ends, the killed first replica still leads.
    let view = cluster.wait_view(topic, 0, "a new leader", |v| v.leader > 0 && v.leader != 2);
    assert_eq!(view.leader, 3, "the last out of the ISR: {view:?}");
    let read = read_to_end(&cluster.bootstrap(), topic, 1);
    let values: Vec<String> = read[&0].iter().map(|(_, v)| value_str(v)).collect();
    assert_eq!(
        values, held,
        "every record acknowledged while it was in sync"
    );
    cluster.start_again(2);
    cluster.wait_view(topic, 0, "all in sync again", |v| v.isr == [2, 3, 4]);
    cluster.wait_logs_identical(topic, 0, &[2, 3, 4]);
}

/// Partition 0's eligible leader replicas as DescribeTopicPartitions
/// gives them (node 1, the voter, asked once its ISR is one replica).
fn eligible_leaders(cluster: &Cluster, topic: &str) -> Vec<i32> {
    let mut raw = RawClient::connect(&cluster.client_addr(1));
    let request = common::raw::describe_topic_partitions_request(&[topic], 10, None);
    let partition = cluster.wait_for("an ISR of one in DescribeTopicPartitions", WAIT, || {
        let response: kafka_protocol::messages::DescribeTopicPartitionsResponse =
            raw.call(0, &request);
        let partition = response.topics[0].partitions[0].clone();
        if partition.isr_nodes.len() == 1 {
            Ok(partition)
        } else {
            Err(format!("{response:?}"))
        }
    });
    partition
        .eligible_leader_replicas
        .expect("a list, if empty")
        .iter()
        .map(|b| b.0)
        .collect()
}

/// Sets `unclean.leader.election.enable` on `topic`.
fn allow_unclean_election(cluster: &Cluster, topic: &str) {
    let admin = admin(&cluster.bootstrap());
    let unclean = rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(topic))
        .set("unclean.leader.election.enable", "true");
    let altered = futures::executor::block_on(admin.alter_configs([&unclean], &admin_opts()))
        .expect("AlterConfigs");
    assert!(altered.iter().all(|r| r.is_ok()), "{altered:?}");
}

/// Waits until node `asked`'s Metadata lists every broker of `ids` (a
/// broker is listed once unfenced).
fn wait_unfenced(cluster: &Cluster, asked: i32, ids: &[i32]) {
    cluster.wait_metadata(asked, &format!("{ids:?} back and unfenced"), |m| {
        let listed: Vec<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
        ids.iter().all(|id| listed.contains(id))
    });
}

/// Kills a follower that is first in the replica order, changes its data
/// dir with `lose` while it is down, pauses the leader (not the active
/// controller, so the metadata quorum keeps its leader; so the follower
/// cannot catch up first) and starts the follower again: the third replica
/// must lead, with every acknowledged record.
fn comes_back_out_of_its_isrs(topic: &str, lose: impl FnOnce(&std::path::Path)) {
    const COUNT: usize = 200;
    let mut cluster = Cluster::start_with(
        3,
        &[
            // Long enough that the follower is back before its old
            // process's session ends, and so before the paused leader's.
            "--broker-session-timeout-ms",
            "8000",
            "--broker-heartbeat-interval-ms",
            "300",
        ],
    );
    let controller = cluster.metadata(1).controller_id.0;
    assert!(ALL3.contains(&controller), "a controller: {controller}");
    let others: Vec<i32> = ALL3.into_iter().filter(|&id| id != controller).collect();
    let (leader, emptied) = (others[0], others[1]);
    let order = [leader, emptied, controller];
    cluster.create_topic(
        &NewTopic::new(topic, 1, TopicReplication::Variable(&[&order]))
            .set("min.insync.replicas", "2"),
    );
    cluster.wait_isr(topic, 1, &ALL3);
    cluster.wait_view(topic, 0, "the preferred leader", |v| v.leader == leader);
    let msgs: Vec<Msg> = (0..COUNT)
        .map(|i| Msg::value(format!("v-{i}")).to(0))
        .collect();
    produce(&producer_config(&cluster.bootstrap()), topic, &msgs);
    cluster.wait_logs_identical(topic, 0, &ALL3);

    cluster.kill9(emptied);
    lose(cluster.node(emptied).data_dir());
    cluster.sigstop(leader);
    cluster.start_again(emptied);
    // The view every live node showed at once: asked again, the emptied
    // replica may be back in the ISR on one node and not yet on another.
    let view = cluster.wait_view(topic, 0, "a leader other than the paused one", |v| {
        v.leader > 0 && v.leader != leader
    });
    assert_eq!(view.leader, controller, "{view:?}");
    let read = read_to_end(&cluster.bootstrap_of(&[controller]), topic, 1);
    let values: Vec<String> = read[&0].iter().map(|(_, v)| value_str(v)).collect();
    let expected: Vec<String> = (0..COUNT).map(|i| format!("v-{i}")).collect();
    assert_eq!(values, expected, "every acknowledged record, in order");

    cluster.sigcont(leader);
    cluster.wait_isr(topic, 1, &ALL3);
    cluster.wait_logs_identical(topic, 0, &ALL3);
}

/// With the ISR below `min.insync.replicas`, the high watermark stays
/// (KIP-966): a replica that left then is eligible to lead, and does not
/// have what the leader alone took since, so no consumer may see it. An
/// acks=1 write to the leader alone is appended but not readable until a
/// follower is back in sync. (Consumers read it before, and when the
/// eligible replica took over, they had read past its log end and
/// committed offsets it did not have: a chaos run saw a group's committed
/// offset go back.)
#[test]
fn nothing_is_readable_past_the_isr_while_it_is_below_min_insync() {
    const TOPIC: &str = "repl-hwm-min-isr";
    let mut cluster = Cluster::start_mixed(1, 3, LearnerListen::Fixed, &[]);
    cluster.create_topic(
        &NewTopic::new(TOPIC, 1, TopicReplication::Variable(&[&[2, 4, 3]]))
            .set("min.insync.replicas", "2"),
    );
    cluster.wait_view(TOPIC, 0, "all in sync", |v| v.isr == [2, 3, 4]);
    let acked: Vec<String> = (0..20).map(|i| format!("a-{i}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &acked);
    cluster.kill9(4);
    cluster.wait_view(TOPIC, 0, "4 out", |v| v.isr == [2, 3]);
    cluster.kill9(3);
    cluster.wait_view(TOPIC, 0, "3 out", |v| v.isr == [2]);

    let mut leader = RawClient::connect(&cluster.client_addr(2));
    let batch = sluice::record::build::build_batch(0, &[(None, Some(b"alone"), now_ms(), &[])]);
    let (code, offset) = leader.produce_batch_with(TOPIC, 0, 1, 10_000, batch);
    assert_eq!((code, offset), (err::NONE, 20), "acks=1 takes it");
    assert_eq!(
        leader.log_end_offset(TOPIC, 0),
        20,
        "but the high watermark stays"
    );
    let read = read_to_end(&cluster.bootstrap_of(&[1, 2]), TOPIC, 1);
    assert_eq!(read[&0].len(), 20, "nothing past the acknowledged records");

    cluster.start_again(3);
    cluster.wait_view(TOPIC, 0, "3 back in sync", |v| v.isr == [2, 3]);
    cluster.wait_for("the high watermark past the acks=1 write", WAIT, || {
        let hw = leader.log_end_offset(TOPIC, 0);
        if hw == 21 {
            Ok(())
        } else {
            Err(format!("high watermark {hw}"))
        }
    });
}

/// KIP-392 with the rack-aware selector (`--replica-selector rack-aware`,
/// each node in its own rack): the leader points a consumer of Fetch v11+
/// that names a follower's rack at that follower (no records, its
/// offsets), and not one in its own rack, one of an older version, or one
/// in a rack no replica is in; the follower serves consumers of v11+ up to
/// its own high watermark (older versions still get NOT_LEADER_OR_FOLLOWER,
/// an offset past its log OFFSET_OUT_OF_RANGE); and librdkafka with
/// `client.rack` reads every record through the follower.
#[test]
fn a_consumer_reads_from_the_replica_in_its_rack() {
    use kafka_protocol::messages::FetchResponse;
    let cluster = Cluster::start_in_racks(3);
    cluster.create_topic(&rf3("racks", 1, &[]));
    cluster.wait_view("racks", 0, "the ISR full", |v| v.isr == ALL3);
    let bs = cluster.bootstrap();
    let values: Vec<String> = (0..50).map(|i| format!("rack-{i}")).collect();
    produce_values(&bs, "racks", Some(0), &values);
    let leader = cluster.leader_of("racks", 0);
    let follower = *ALL3.iter().find(|&&id| id != leader).unwrap();
    let fetch = |node: i32, version: i16, rack: &str, offset: i64| -> (i16, i32, i64, usize) {
        let mut request = raw::fetch_request("racks", &[(0, offset)], 0);
        request.rack_id = raw::str_bytes(rack);
        let mut c = RawClient::connect(&cluster.node(node).bootstrap());
        let r: FetchResponse = c.call(version, &request);
        let p = &r.responses[0].partitions[0];
        let records = p.records.as_ref().map_or(0, |b| b.len());
        (
            p.error_code,
            p.preferred_read_replica.0,
            p.high_watermark,
            records,
        )
    };
    let rack = |id: i32| format!("rack-{id}");

    // The leader points the follower's rack at the follower.
    let (error, preferred, hw, records) = fetch(leader, 11, &rack(follower), 0);
    assert_eq!(
        (error, preferred, hw, records),
        (err::NONE, follower, 50, 0)
    );
    assert!(
        cluster
            .node(leader)
            .metric("sluice_fetch_read_replica_redirects_total")
            >= 1
    );
    for (version, asker) in [
        (10, rack(follower)),
        (11, rack(leader)),
        (11, "rack-9".into()),
        (11, String::new()),
    ] {
        let (error, preferred, _, records) = fetch(leader, version, &asker, 0);
        assert_eq!(
            (error, preferred),
            (err::NONE, -1),
            "v{version} from {asker:?}"
        );
        assert!(
            records > 0,
            "v{version} from {asker:?}: read from the leader"
        );
    }

    // The follower serves v11+ up to its high watermark, once it has it.
    let deadline = Instant::now() + WAIT;
    loop {
        let (error, preferred, hw, records) = fetch(follower, 11, &rack(follower), 0);
        assert_eq!((error, preferred), (err::NONE, -1));
        if hw == 50 && records > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never served the records (hw {hw})"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(fetch(follower, 10, "", 0).0, err::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(fetch(follower, 11, "", 51).0, err::OFFSET_OUT_OF_RANGE);

    // librdkafka follows the redirect and reads everything there.
    let reads_before = cluster
        .node(follower)
        .metric("sluice_fetch_follower_reads_total");
    let consumer: BaseConsumer = consumer_config(&bs)
        .set("client.rack", rack(follower))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("racks", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut read = Vec::new();
    let deadline = Instant::now() + WAIT;
    while read.len() < values.len() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            read.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(read, values);
    assert!(
        cluster
            .node(follower)
            .metric("sluice_fetch_follower_reads_total")
            > reads_before,
        "the consumer read from the follower"
    );
}

/// KIP-1166 (Fetch v18): a follower tells the leader the high watermark it
/// knows, and a leader whose high watermark is past it answers at once. The
/// follower's fetch that moves the high watermark finds nothing new and
/// would otherwise wait out `replica.fetch.wait.max.ms` (here far longer
/// than the test waits) before the follower learns it, and serves reads
/// up to it.
#[test]
fn a_follower_learns_the_high_watermark_without_waiting_out_its_fetch() {
    use kafka_protocol::messages::FetchResponse;
    let cluster = Cluster::start_with(3, &["--replica-fetch-wait-max-ms", "25000"]);
    cluster.create_topic(&rf3("hw18", 1, &[]));
    cluster.wait_view("hw18", 0, "the ISR full", |v| v.isr == ALL3);
    let leader = cluster.leader_of("hw18", 0);
    let mut c = RawClient::connect(&cluster.node(leader).bootstrap());
    // The lowest high watermark the followers serve reads up to.
    let followers_hw = || -> i64 {
        let request = raw::fetch_request("hw18", &[(0, 0)], 0);
        let hw = |node: i32| {
            // v11: a consumer's fetch, which a follower answers (KIP-392).
            let mut f = RawClient::connect(&cluster.node(node).bootstrap());
            let r: FetchResponse = f.call(11, &request);
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, err::NONE);
            p.high_watermark
        };
        ALL3.iter()
            .filter(|&&id| id != leader)
            .map(|&id| hw(id))
            .min()
            .expect("followers")
    };
    for round in 1..=3i64 {
        let batch =
            sluice::record::build::build_batch(0, &[(None, Some(b"v".as_slice()), now_ms(), &[])]);
        let r: kafka_protocol::messages::ProduceResponse =
            c.call(9, &raw::produce_request("hw18", -1, vec![(0, batch)]));
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (err::NONE, round - 1));
        // Far less than the follower's fetch wait.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut hw = followers_hw();
        while hw < round && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            hw = followers_hw();
        }
        assert_eq!(hw, round, "round {round}: the followers' high watermark");
    }
}

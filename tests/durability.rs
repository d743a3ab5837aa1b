//! Persistence across restarts and crashes, log recovery, segment rolling and retention.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::Offset;

/// After a clean SIGTERM shutdown and restart on the same dir, topics, configs and all data are back and appends continue.
#[test]
fn restart_keeps_topics_and_data() {
    let mut broker = Broker::start(2);
    let bs = broker.bootstrap();
    create_topic(&bs, "persist-a", 3, &[]);
    create_topic(&bs, "persist-b", 1, &[("retention.ms", "86400000")]);
    let msgs: Vec<Msg> = (0..3_000)
        .map(|i| Msg::value(format!("a-{i}")).key(format!("k{}", i % 37)))
        .collect();
    produce(&producer_config(&bs), "persist-a", &msgs);
    let b_values: Vec<String> = (0..100).map(|i| format!("b-{i}")).collect();
    produce_values(&bs, "persist-b", Some(0), &b_values);

    type Contents = BTreeMap<(i32, i64), (Option<Vec<u8>>, String)>;
    let snapshot = |bs: &str| -> Contents {
        consume_all(bs, "persist-a", 3, 3_000, Duration::from_secs(60))
            .iter()
            .map(|m| {
                (
                    (m.partition(), m.offset()),
                    (m.key().map(|k| k.to_vec()), payload_str(m)),
                )
            })
            .collect()
    };
    let before = snapshot(&bs);
    let marks_before: Vec<(i64, i64)> = (0..3).map(|p| watermarks(&bs, "persist-a", p)).collect();

    broker.restart();
    let bs = broker.bootstrap();

    let topics = topic_partition_counts(&bs);
    assert_eq!(
        topics.get("persist-a"),
        Some(&3),
        "topics after restart: {topics:?}"
    );
    assert_eq!(
        topics.get("persist-b"),
        Some(&1),
        "topics after restart: {topics:?}"
    );
    let marks_after: Vec<(i64, i64)> = (0..3).map(|p| watermarks(&bs, "persist-a", p)).collect();
    assert_eq!(marks_after, marks_before, "watermarks after restart");
    assert_eq!(snapshot(&bs), before, "persist-a contents after restart");
    let got = consume_all(&bs, "persist-b", 1, 100, Duration::from_secs(30));
    assert_eq!(got.iter().map(payload_str).collect::<Vec<_>>(), b_values);
    let cfg = describe_topic_config(&bs, "persist-b");
    assert_eq!(
        cfg.get("retention.ms"),
        Some(&Some("86400000".to_string())),
        "topic config after restart"
    );

    // Appends continue at the next offset.
    let d = produce_values(&bs, "persist-b", Some(0), &["after-restart".to_string()]);
    assert_eq!(d[0].offset, 100);
}

/// Every message acknowledged (acks=all) before a kill -9 is present after restart, at its acknowledged offset, with offsets contiguous from 0.
#[test]
fn kill9_during_produce_keeps_acknowledged_messages() {
    let mut broker = Broker::start_with(2, &["--fsync-on-ack"]);
    let bs = broker.bootstrap();
    let topic = "crash";
    let partitions = 2;
    create_topic(&bs, topic, partitions, &[]);

    let mut cfg = producer_config(&bs);
    cfg.set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "5000")
        .set("request.timeout.ms", "3000");
    let (producer, ctx) = collecting_producer(&cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let value_of = |i: usize| format!("crash-{i}");

    // Produce continuously from another thread until told to stop.
    let producer_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) && i < 2_000_000 {
                let v = format!("crash-{i}");
                let rec: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, i)
                    .partition((i % 2) as i32)
                    .payload(v.as_bytes());
                match producer.send(rec) {
                    Ok(()) => i += 1,
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
                if i.is_multiple_of(100) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            // Outstanding messages fail within message.timeout.ms since the broker is gone.
            let _ = producer.flush(Duration::from_secs(20));
            producer
        })
    };

    // Kill once a good number of messages were acknowledged.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctx.ok_count() < 3_000 {
        assert!(
            Instant::now() < deadline,
            "only {} messages acknowledged in 60s",
            ctx.ok_count()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    broker.kill9();
    stop.store(true, Ordering::Relaxed);
    let producer = producer_thread.join().expect("producer thread");
    drop(producer);
    let acked = ctx.ok.lock().unwrap().clone();
    assert!(acked.len() >= 3_000);

    broker.start_again();
    let bs = broker.bootstrap();

    let mut consumed = 0;
    for p in 0..partitions {
        let (lo, hi) = watermarks(&bs, topic, p);
        assert_eq!(lo, 0, "low watermark of partition {p}");
        let acked_here: Vec<&Delivered> = acked.iter().filter(|d| d.partition == p).collect();
        let max_acked = acked_here.iter().map(|d| d.offset).max().unwrap_or(-1);
        assert!(
            hi > max_acked,
            "partition {p}: high watermark {hi} but offset {max_acked} was acknowledged"
        );

        let msgs = consume_from(
            &bs,
            topic,
            &[(p, Offset::Beginning)],
            hi as usize,
            Duration::from_secs(60),
        );
        let offsets: Vec<i64> = msgs.iter().map(|m| m.offset()).collect();
        assert_eq!(
            offsets,
            (0..hi).collect::<Vec<i64>>(),
            "partition {p}: offsets contiguous from 0"
        );
        for d in acked_here {
            let m = &msgs[d.offset as usize];
            assert_eq!(
                payload_str(m),
                value_of(d.id),
                "partition {p} offset {}: acknowledged message",
                d.offset
            );
        }
        consumed += msgs.len();
    }
    assert!(consumed >= acked.len());

    // Appends continue after recovery.
    let (_, hi) = watermarks(&bs, topic, 0);
    let d = produce_values(&bs, topic, Some(0), &["after-crash".to_string()]);
    assert_eq!(d[0].offset, hi, "first append after recovery");
}

/// Garbage appended to the active segment after a kill -9 is truncated on restart: acknowledged data stays readable and appends continue at the next offset.
#[test]
fn garbage_at_segment_tail_is_recovered() {
    let mut broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "torn";
    create_topic(&bs, topic, 1, &[]);
    let mut expected: Vec<String> = (0..500).map(|i| format!("torn-{i}")).collect();
    let d = produce_values(&bs, topic, Some(0), &expected);
    assert_eq!(d.last().unwrap().offset, 499);

    // Two rounds: a torn (half-written) batch, then random-looking garbage.
    let base = now_ms();
    let whole = sluice::record::build::build_batch(
        500,
        &[
            (Some(b"k"), Some(&[7u8; 300][..]), base, &[]),
            (None, Some(b"second"), base, &[]),
        ],
    );
    let torn = whole[..whole.len() / 2].to_vec();
    let mut garbage = Vec::with_capacity(4096);
    let mut x: u32 = 0x1234_5678;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push((x >> 24) as u8);
    }

    for (round, tail) in [("torn batch", torn), ("garbage", garbage)] {
        broker.kill9();
        let segments = broker.segment_files(topic, 0);
        let active = segments.last().expect("a .log segment exists");
        std::fs::OpenOptions::new()
            .append(true)
            .open(active)
            .unwrap()
            .write_all(&tail)
            .unwrap();

        broker.start_again();
        let bs = broker.bootstrap();
        let n = expected.len() as i64;
        assert_eq!(
            watermarks(&bs, topic, 0),
            (0, n),
            "{round}: watermarks after recovery"
        );
        let got = consume_all(&bs, topic, 1, expected.len(), Duration::from_secs(30));
        assert_eq!(
            got.iter().map(payload_str).collect::<Vec<_>>(),
            expected,
            "{round}: data after recovery"
        );

        let v = format!("after-{round}");
        let d = produce_values(&bs, topic, Some(0), std::slice::from_ref(&v));
        assert_eq!(d[0].offset, n, "{round}: next append offset");
        expected.push(v);
        let got = consume_all(&bs, topic, 1, expected.len(), Duration::from_secs(30));
        assert_eq!(
            got.iter().map(payload_str).collect::<Vec<_>>(),
            expected,
            "{round}: data after new append"
        );
    }
}

/// Creates `topic` with 10 kB segments and produces `n` numbered ~100-byte
/// values to partition 0 in small batches, so the log rolls many times;
/// returns the values in offset order.
fn produce_into_small_segments(bs: &str, topic: &str, n: usize) -> Vec<String> {
    create_topic(bs, topic, 1, &[("segment.bytes", "10000")]);
    let values: Vec<String> = (0..n)
        .map(|i| format!("{i:06}-{}", "x".repeat(90)))
        .collect();
    let mut cfg = producer_config(bs);
    cfg.set("batch.size", "4000");
    let msgs: Vec<Msg> = values.iter().map(|v| Msg::value(v.clone()).to(0)).collect();
    produce(&cfg, topic, &msgs);
    values
}

/// A small segment.bytes rolls the log into several segment files; all data stays readable, also after a restart.
#[test]
fn small_segment_bytes_rolls_segments() {
    let mut broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "rolling";
    let values = produce_into_small_segments(&bs, topic, 2_000);

    let segments = broker.segment_files(topic, 0);
    assert!(
        segments.len() >= 3,
        "expected several segments, got {segments:?}"
    );
    // Segment files are named by base offset: the first one starts at 0.
    assert_eq!(
        segments[0].file_name().unwrap().to_str().unwrap(),
        "00000000000000000000.log"
    );

    let check = |bs: &str| {
        assert_eq!(watermarks(bs, topic, 0), (0, 2_000));
        let got = consume_all(bs, topic, 1, 2_000, Duration::from_secs(60));
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.offset(), i as i64);
            assert_eq!(payload_str(m), values[i], "value at offset {i}");
        }
    };
    check(&bs);
    broker.restart();
    check(&broker.bootstrap());
    assert_eq!(
        broker.segment_files(topic, 0),
        segments,
        "segments unchanged by restart"
    );
}

/// A roll leaves its fdatasync to the background: the recovery point still
/// reaches the newest rolled segment's base, with no further appends, and a
/// kill -9 right after loses nothing acknowledged.
#[test]
fn rolled_segments_are_synced_in_the_background() {
    let mut broker = Broker::start_with(1, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    let topic = "bg-roll";
    produce_into_small_segments(&bs, topic, 1_000);
    let segments = broker.segment_files(topic, 0);
    assert!(segments.len() >= 3, "{segments:?}");
    let newest_base: i64 = segments
        .last()
        .unwrap()
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let recovery_file = broker.partition_dir(topic, 0).join("recovery-point");
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let point: i64 = std::fs::read_to_string(&recovery_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1);
        if point == newest_base {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recovery point {point}, newest segment base {newest_base}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(broker.metric("sluice_roll_syncs_total") >= 1);
    broker.kill9();
    broker.start_again();
    let bs = broker.bootstrap();
    assert_eq!(watermarks(&bs, topic, 0), (0, 1_000));
    let got = consume_all(&bs, topic, 1, 1_000, Duration::from_secs(60));
    assert_eq!(got.len(), 1_000);
}

/// `--log-preallocate`: the active segment's file is allocated to
/// segment.bytes ahead of its batches, a rolled one holds exactly its
/// batches, and a kill -9 (the zeros left in place) loses nothing: the
/// restart trims them and appends go on after the last batch.
#[test]
fn preallocated_segments_survive_kill9() {
    const SEGMENT_BYTES: u64 = 64 * 1024;
    let mut broker = Broker::start_with(1, &["--log-preallocate"]);
    let bs = broker.bootstrap();
    let topic = "prealloc";
    create_topic(
        &bs,
        topic,
        1,
        &[("segment.bytes", &SEGMENT_BYTES.to_string())],
    );
    let first: Vec<String> = (0..300).map(|i| format!("{i:0500}")).collect();
    // Small batches, so the log rolls.
    let mut cfg = producer_config(&bs);
    cfg.set("batch.size", "8000");
    let msgs: Vec<Msg> = first.iter().map(|v| Msg::value(v.clone()).to(0)).collect();
    produce(&cfg, topic, &msgs);
    let segments = broker.segment_files(topic, 0);
    assert!(segments.len() >= 2, "{segments:?}");
    let lengths: Vec<u64> = segments
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    let (active, rolled) = lengths.split_last().unwrap();
    assert_eq!(*active, SEGMENT_BYTES, "{lengths:?}");
    assert!(rolled.iter().all(|&l| l < SEGMENT_BYTES), "{lengths:?}");

    kill9_keeps_every_value_and_appends_go_on(&mut broker, topic, first, 100);
}

/// The page cache filled ahead of appends (`--log-prefault-bytes`, on
/// by default, off on XFS): large batches get the active segment extended with
/// a hole as far as the fill window and its next pages cached off the
/// shard, reads see only the batches, and a kill -9 (any hole left in
/// place) loses nothing: the restart trims it and appends go on after the
/// last batch. On XFS the broker says it turned fills off and fills none.
#[test]
fn prefaulted_segments_survive_kill9() {
    const SEGMENT_BYTES: u64 = 8 << 20;
    let mut broker = Broker::start_with(1, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    let topic = "prefault";
    create_topic(
        &bs,
        topic,
        1,
        &[("segment.bytes", &SEGMENT_BYTES.to_string())],
    );
    let first: Vec<String> = (0..2_000).map(|i| format!("{i:01000}")).collect();
    // Batches of many messages: a window is four appends, at least 64 KiB.
    let mut cfg = producer_config(&bs);
    cfg.set("batch.size", "1000000").set("linger.ms", "50");
    let msgs: Vec<Msg> = first.iter().map(|v| Msg::value(v.clone()).to(0)).collect();
    let fills_off = sluice::storage::extension_writes_back(broker.data_dir()).unwrap();
    produce(&cfg, topic, &msgs);
    match fills_off {
        None => assert!(broker.wait_metric("sluice_prefault_bytes_total", 1) > 0),
        Some(fs) => {
            assert_eq!(broker.metric("sluice_prefault_bytes_total"), 0, "{fs}");
            let log = std::fs::read_to_string(broker.stderr_path()).unwrap();
            assert!(log.contains("log_prefault_bytes off"), "{fs}: {log}");
        }
    }
    let segments = broker.segment_files(topic, 0);
    assert_eq!(segments.len(), 1, "{segments:?}");
    let len = std::fs::metadata(&segments[0]).unwrap().len();
    let batches = segment_batch_bytes(&segments[0]).len() as u64;
    // While fills are cheap only some appends ask for one, and the appends
    // after the last window may have passed its end: no hole is left then.
    assert!(
        len >= batches && len <= batches + (1 << 20),
        "extended at most one window past the batches ({len} bytes, {batches} of batches)"
    );
    let got = consume_all(&bs, topic, 1, 2_000, Duration::from_secs(60));
    assert_eq!(got.len(), 2_000, "the hole reads as no batch");

    kill9_keeps_every_value_and_appends_go_on(&mut broker, topic, first, 100);
}

/// After a kill -9 and restart, partition 0 of `topic` holds exactly
/// `first`, and `more` new values of the same width land after them.
fn kill9_keeps_every_value_and_appends_go_on(
    broker: &mut Broker,
    topic: &str,
    first: Vec<String>,
    more: usize,
) {
    broker.kill9();
    broker.start_again();
    let bs = broker.bootstrap();
    let n = first.len();
    assert_eq!(watermarks(&bs, topic, 0), (0, n as i64));
    let width = first[0].len();
    let more: Vec<String> = (n..n + more).map(|i| format!("{i:0width$}")).collect();
    produce_values(&bs, topic, Some(0), &more);
    let got = consume_all(&bs, topic, 1, n + more.len(), Duration::from_secs(60));
    let values: Vec<String> = got.iter().map(payload_str).collect();
    let expected: Vec<String> = first.into_iter().chain(more).collect();
    assert_eq!(values, expected);
}

/// A topic's flush.ms fsyncs data even when no later append comes to
/// notice that the time has passed.
#[test]
fn flush_ms_flushes_without_further_appends() {
    let broker = Broker::start_with(
        1,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-flush-scheduler-interval-ms",
            "50",
        ],
    );
    let bs = broker.bootstrap();
    let topic = "flush-ms";
    create_topic(&bs, topic, 1, &[("flush.ms", "200")]);
    let before = broker.metric("sluice_log_flushes_total");
    produce_values(&bs, topic, Some(0), &["one".to_string()]);
    let deadline = Instant::now() + OP_TIMEOUT;
    while broker.metric("sluice_log_flushes_total") == before {
        assert!(
            Instant::now() < deadline,
            "flush.ms passed and nothing was flushed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Flushed once; with nothing new appended, no more flushes follow.
    let after = broker.metric("sluice_log_flushes_total");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(broker.metric("sluice_log_flushes_total"), after);
}

/// retention.bytes deletes old segments, so the earliest offset moves above 0 while the tail stays readable.
#[test]
fn retention_bytes_deletes_old_segments() {
    let broker = Broker::start_with(1, &["--retention-check-interval-ms", "200"]);
    let bs = broker.bootstrap();
    let topic = "retained";
    create_topic(
        &bs,
        topic,
        1,
        &[("segment.bytes", "10000"), ("retention.bytes", "20000")],
    );
    let values: Vec<String> = (0..2_000)
        .map(|i| format!("{i:06}-{}", "r".repeat(90)))
        .collect();
    let mut cfg = producer_config(&bs);
    cfg.set("batch.size", "4000");
    let msgs: Vec<Msg> = values.iter().map(|v| Msg::value(v.clone()).to(0)).collect();
    produce(&cfg, topic, &msgs);

    // Wait (bounded) until the low watermark moved above 0 and then stayed put
    // for several retention check intervals, so no deletion races the reads below.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = watermarks(&bs, topic, 0);
    let mut stable_polls = 0;
    while Instant::now() < deadline && !(last.0 > 0 && stable_polls >= 8) {
        std::thread::sleep(Duration::from_millis(100));
        let now = watermarks(&bs, topic, 0);
        stable_polls = if now == last { stable_polls + 1 } else { 0 };
        last = now;
    }
    let (lo, hi) = last;
    assert!(
        lo > 0,
        "retention never deleted a segment (low watermark still 0)"
    );
    assert!(stable_polls >= 8, "low watermark kept moving: now {lo}");
    assert_eq!(hi, 2_000, "retention must not touch the log end");
    let segments = broker.segment_files(topic, 0);
    assert!(
        segments[0].file_name().unwrap().to_str().unwrap() != "00000000000000000000.log",
        "first segment still present: {segments:?}"
    );

    // Reading from the beginning starts at the new log start, and the rest is intact.
    let got = consume_all(&bs, topic, 1, (hi - lo) as usize, Duration::from_secs(30));
    assert_eq!(
        got[0].offset(),
        lo,
        "first readable offset is the low watermark"
    );
    for (j, m) in got.iter().enumerate() {
        let off = lo + j as i64;
        assert_eq!(m.offset(), off);
        assert_eq!(
            payload_str(m),
            values[off as usize],
            "value at offset {off}"
        );
    }
}

/// The names of `dir`'s deleted segment files still waiting to be unlinked.
fn deleted_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".deleted"))
        .collect()
}

/// `file.delete.delay.ms`: segments retention deleted leave the log at
/// once (the low watermark moves) but their files wait, renamed, for the
/// delay; with none they are unlinked at once.
#[test]
fn deleted_segments_wait_out_the_file_delete_delay() {
    let broker = Broker::start_with(1, &["--retention-check-interval-ms", "200"]);
    let bs = broker.bootstrap();
    let retained = [("segment.bytes", "10000"), ("retention.bytes", "20000")];
    let delayed = [&retained[..], &[("file.delete.delay.ms", "600000")]].concat();
    let at_once = [&retained[..], &[("file.delete.delay.ms", "0")]].concat();
    create_topic(&bs, "delayed", 1, &delayed);
    create_topic(&bs, "at-once", 1, &at_once);
    let msgs: Vec<Msg> = (0..2_000)
        .map(|i| Msg::value(format!("{i:06}-{}", "d".repeat(90))).to(0))
        .collect();
    let mut cfg = producer_config(&bs);
    cfg.set("batch.size", "4000");
    for topic in ["delayed", "at-once"] {
        produce(&cfg, topic, &msgs);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let moved = |topic| watermarks(&bs, topic, 0).0 > 0;
    while Instant::now() < deadline && !(moved("delayed") && moved("at-once")) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        moved("delayed") && moved("at-once"),
        "retention deleted segments"
    );
    let waiting = deleted_files(&broker.partition_dir("delayed", 0));
    assert!(
        waiting.iter().any(|name| name.ends_with(".log.deleted")),
        "the delayed topic's deleted segments wait: {waiting:?}"
    );
    let at_once_dir = broker.partition_dir("at-once", 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !deleted_files(&at_once_dir).is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(deleted_files(&at_once_dir), Vec::<String>::new());
}

//! End-to-end produce / consume through librdkafka.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, Timestamp};
use rdkafka::producer::{BaseRecord, Producer};

const KEYS: usize = 1_000;
const PER_KEY: usize = 100;
const TOTAL: usize = KEYS * PER_KEY; // 100,000
const PARTITIONS: i32 = 8;

/// The headers message `i` carries: a unique one, a duplicated key (in order), and a null value.
fn expected_headers(i: usize) -> Vec<(String, Option<Vec<u8>>)> {
    vec![
        ("idx".to_string(), Some(i.to_string().into_bytes())),
        ("dup".to_string(), Some(b"first".to_vec())),
        ("dup".to_string(), Some(b"second".to_vec())),
        ("null-value".to_string(), None),
    ]
}

fn headers_of(m: &impl Message) -> Vec<(String, Option<Vec<u8>>)> {
    match m.headers() {
        None => vec![],
        Some(h) => h
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
            .collect(),
    }
}

/// 100,000 keyed messages with headers and timestamps on 8 partitions (acks=all) come back exactly once, in per-key order, intact.
#[test]
fn hundred_thousand_keyed_messages_round_trip() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "pc-100k";
    create_topic(&bs, topic, PARTITIONS, &[]);
    // Known, distinct timestamps: one hour ago plus the message index (recent,
    // so time-based retention with default settings never applies).
    let base_ts = now_ms() - 3_600_000;

    let mut cfg = producer_config(&bs);
    cfg.set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "60000");
    let (producer, ctx) = collecting_producer(&cfg);
    // Message i: key k = i % KEYS, per-key sequence number seq = i / KEYS.
    for i in 0..TOTAL {
        let (k, seq) = (i % KEYS, i / KEYS);
        let key = format!("key-{k}");
        let value = format!("{k}:{seq}");
        let mut headers = OwnedHeaders::new_with_capacity(4);
        for (hk, hv) in expected_headers(i) {
            headers = headers.insert(Header {
                key: &hk,
                value: hv.as_deref(),
            });
        }
        let rec: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, i)
            .key(key.as_bytes())
            .payload(value.as_bytes())
            .timestamp(base_ts + i as i64)
            .headers(headers);
        send_retrying(&producer, rec);
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("flush 100k messages");
    {
        let failed = ctx.failed.lock().unwrap();
        assert!(
            failed.is_empty(),
            "{} deliveries failed, first: {:?}",
            failed.len(),
            failed.first()
        );
    }
    let delivered = ctx.ok.lock().unwrap().clone();
    assert_eq!(delivered.len(), TOTAL, "every message acknowledged");
    drop(producer);

    // Acknowledged offsets: unique per partition and dense from 0.
    let mut acked: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for d in &delivered {
        acked.entry(d.partition).or_default().push(d.offset);
    }
    for (p, offs) in acked.iter_mut() {
        offs.sort_unstable();
        let expect: Vec<i64> = (0..offs.len() as i64).collect();
        assert!(
            *offs == expect,
            "acknowledged offsets of partition {p} are not 0..{}",
            offs.len()
        );
    }

    // Log end offsets add up to the message count; nothing was truncated.
    let mut total_hw = 0;
    for p in 0..PARTITIONS {
        let (lo, hi) = watermarks(&bs, topic, p);
        assert_eq!(lo, 0, "low watermark of partition {p}");
        assert_eq!(
            hi,
            acked.get(&p).map(|v| v.len()).unwrap_or(0) as i64,
            "high watermark of partition {p}"
        );
        total_hw += hi;
    }
    assert_eq!(total_hw, TOTAL as i64);

    let msgs = consume_all(&bs, topic, PARTITIONS, TOTAL, Duration::from_secs(120));

    let mut seen = HashSet::with_capacity(TOTAL);
    let mut key_partition: HashMap<usize, i32> = HashMap::new();
    let mut last_seq: HashMap<usize, usize> = HashMap::new();
    let mut last_offset: HashMap<i32, i64> = HashMap::new();
    for m in &msgs {
        let value = payload_str(m);
        let (k, seq) = value.split_once(':').expect("value is k:seq");
        let (k, seq): (usize, usize) = (k.parse().unwrap(), seq.parse().unwrap());
        let i = seq * KEYS + k;
        assert!(seen.insert(i), "message {i} ({value}) consumed twice");

        assert_eq!(
            m.key(),
            Some(format!("key-{k}").as_bytes()),
            "key of message {i}"
        );
        assert_eq!(
            m.timestamp(),
            Timestamp::CreateTime(base_ts + i as i64),
            "timestamp of message {i}"
        );
        assert_eq!(headers_of(m), expected_headers(i), "headers of message {i}");

        // Offsets strictly increase within a partition.
        if let Some(prev) = last_offset.insert(m.partition(), m.offset()) {
            assert!(
                m.offset() > prev,
                "partition {} offsets went {prev} -> {}",
                m.partition(),
                m.offset()
            );
        }
        // All messages of a key are in one partition, and in production order.
        let p = *key_partition.entry(k).or_insert(m.partition());
        assert_eq!(
            p,
            m.partition(),
            "key {k} spread over partitions {p} and {}",
            m.partition()
        );
        if let Some(prev) = last_seq.insert(k, seq) {
            assert!(seq > prev, "key {k}: sequence {seq} consumed after {prev}");
        }
    }
    assert_eq!(seen.len(), TOTAL);
    // The producer's key hashing should have used more than one partition.
    let used: HashSet<i32> = key_partition.values().copied().collect();
    assert!(used.len() > 1, "all keys landed in one partition: {used:?}");
}

/// Messages produced with acks=0 and with acks=1 can all be consumed back in order.
#[test]
fn acks_zero_and_one_round_trip() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    for acks in ["0", "1"] {
        let topic = format!("acks-{acks}");
        create_topic(&bs, &topic, 1, &[]);
        let mut cfg = producer_config(&bs);
        cfg.set("acks", acks);
        let msgs: Vec<Msg> = (0..2_000)
            .map(|i| Msg::value(format!("acks{acks}-{i}")).key(format!("k{i}")))
            .collect();
        let delivered = produce(&cfg, &topic, &msgs);
        if acks == "1" {
            let offsets: Vec<i64> = delivered.iter().map(|d| d.offset).collect();
            assert_eq!(offsets, (0..2_000).collect::<Vec<i64>>(), "acks=1 offsets");
        }
        let got = consume_all(&bs, &topic, 1, msgs.len(), Duration::from_secs(30));
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.offset(), i as i64, "acks={acks}: offset of message {i}");
            assert_eq!(
                payload_str(m),
                format!("acks{acks}-{i}"),
                "acks={acks}: value at offset {i}"
            );
            assert_eq!(m.key(), Some(format!("k{i}").as_bytes()));
        }
    }
}

/// Producing to an unknown topic auto-creates it with 1 partition, visible in metadata.
#[test]
fn produce_auto_creates_topic() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "auto-created-topic";
    assert!(
        !topic_partition_counts(&bs).contains_key(topic),
        "topic exists before the test"
    );

    let delivered = produce_values(
        &bs,
        topic,
        None,
        &["hello".to_string(), "world".to_string()],
    );
    assert_eq!(
        delivered
            .iter()
            .map(|d| (d.partition, d.offset))
            .collect::<Vec<_>>(),
        vec![(0, 0), (0, 1)]
    );

    assert_eq!(
        topic_partition_counts(&bs).get(topic),
        Some(&1),
        "auto-created topic has 1 partition"
    );
    let c = query_consumer(&bs);
    let md = c.fetch_metadata(Some(topic), OP_TIMEOUT).expect("metadata");
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .expect("topic in metadata");
    assert!(t.error().is_none(), "topic error {:?}", t.error());
    assert_eq!(t.partitions().len(), 1);
    let leader = t.partitions()[0].leader();
    assert!(
        md.brokers().iter().any(|b| b.id() == leader),
        "partition leader {leader} is a listed broker"
    );
    let b = md.brokers().iter().find(|b| b.id() == leader).unwrap();
    assert_eq!(
        format!("{}:{}", b.host(), b.port()),
        bs,
        "advertised address is the listening address"
    );

    let got = consume_all(&bs, topic, 1, 2, Duration::from_secs(30));
    assert_eq!(
        got.iter().map(payload_str).collect::<Vec<_>>(),
        vec!["hello", "world"]
    );
}

/// One consumer assigned partitions of three topics, interleaved and with
/// different partition counts, gets each partition's own records: its
/// fetches name the topics together, and the owner reads each topic's
/// partitions as a run (one lookup of the name for the run), so a run
/// that kept the previous topic's partitions would answer with theirs.
#[test]
fn one_consumer_of_several_topics_gets_each_partitions_own_records() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topics = [("many-a", 3), ("many-b", 2), ("many-c", 4)];
    let per_partition = 20;
    for (topic, partitions) in topics {
        create_topic(&bs, topic, partitions, &[]);
        let msgs: Vec<Msg> = (0..partitions)
            .flat_map(|p| {
                (0..per_partition).map(move |i| Msg::value(format!("{topic}/{p}/{i}")).to(p))
            })
            .collect();
        produce(&producer_config(&bs), topic, &msgs);
    }
    let consumer: rdkafka::consumer::BaseConsumer = consumer_config(&bs).create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    // Interleaved: a's, then b's, then a's again, then c's.
    for (topic, p) in [
        ("many-a", 0),
        ("many-b", 0),
        ("many-b", 1),
        ("many-a", 1),
        ("many-a", 2),
    ]
    .into_iter()
    .chain((0..4).map(|p| ("many-c", p)))
    {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let expected = 9 * per_partition as usize;
    let mut got: BTreeMap<(String, i32), Vec<String>> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut count = 0;
    while count < expected && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            got.entry((m.topic().to_string(), m.partition()))
                .or_default()
                .push(payload_str(&m.detach()));
            count += 1;
        }
    }
    for (topic, partitions) in topics {
        for p in 0..partitions {
            let want: Vec<String> = (0..per_partition)
                .map(|i| format!("{topic}/{p}/{i}"))
                .collect();
            assert_eq!(
                got.get(&(topic.to_string(), p)),
                Some(&want),
                "{topic} partition {p}"
            );
        }
    }
    assert_eq!(count, expected);
}

/// Kafka's per-topic BrokerTopicMetrics at `/metrics`: the records and
/// bytes producers appended to a topic and the bytes consumers were given
/// from it, over partitions on both shards; another topic's are its own.
#[test]
fn per_topic_traffic_is_counted_at_metrics() {
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "traffic", 2, &[]);
    create_topic(&bs, "quiet", 1, &[]);
    let values: Vec<String> = (0..50).map(|i| format!("value-{i:03}")).collect();
    for partition in 0..2 {
        produce_values(&bs, "traffic", Some(partition), &values[..25]);
    }
    let got = consume_all(&bs, "traffic", 2, 50, Duration::from_secs(30));
    assert_eq!(got.len(), 50);
    let topic = |name: &str, topic: &str| broker.metric(&format!("{name}{{topic=\"{topic}\"}}"));
    assert_eq!(topic("sluice_topic_records_in_total", "traffic"), 50);
    let bytes_in = topic("sluice_topic_bytes_in_total", "traffic");
    assert!(bytes_in > 50 * 9, "{bytes_in}");
    assert!(topic("sluice_topic_bytes_out_total", "traffic") >= bytes_in);
    for name in [
        "sluice_topic_records_in_total",
        "sluice_topic_bytes_in_total",
        "sluice_topic_bytes_out_total",
    ] {
        assert_eq!(topic(name, "quiet"), 0, "{name}");
    }
    // The process's CPU, and each shard's reactor thread's (which may be
    // under the kernel's 10 ms tick yet).
    let body = broker.metrics_text();
    let seconds = |name: &str| {
        let line = body.lines().find(|l| l.starts_with(name));
        let value = line.and_then(|l| l.rsplit_once(' '));
        value.map(|(_, v)| v.parse::<f64>().expect("seconds"))
    };
    let cpu = seconds("process_cpu_seconds_total ");
    assert!(cpu.is_some_and(|s| s > 0.0), "{cpu:?}");
    for shard in 0..2 {
        let name = format!("sluice_shard_cpu_seconds_total{{shard=\"{shard}\"}} ");
        assert!(seconds(&name).is_some_and(|s| s >= 0.0), "{name}");
    }
    let fds = series_value(&body, "process_open_fds").unwrap();
    assert!(
        fds > 3 && Some(fds) < series_value(&body, "process_max_fds"),
        "{fds}"
    );
}

/// Kafka's Log gauges at `/metrics`: each replica's offsets, size and
/// segments as they move (appends, a roll, DeleteRecords), the high
/// watermark of what is led here, and per topic the size; past
/// `metrics_partition_series_max` only the per-topic sizes.
#[test]
fn each_replica_log_is_gauged_at_metrics() {
    let broker = Broker::start_with(
        2,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-refresh-ms",
            "50",
        ],
    );
    let bs = broker.bootstrap();
    create_topic(&bs, "gauged", 2, &[("segment.bytes", "1000")]);
    let value = "v".repeat(600);
    for _ in 0..4 {
        // One batch each: every second one rolls the segment.
        produce_values(&bs, "gauged", Some(0), std::slice::from_ref(&value));
    }
    let series = |name: &str, partition: i32| {
        format!("{name}{{topic=\"gauged\",partition=\"{partition}\"}}")
    };
    assert_eq!(
        broker.wait_series(&series("sluice_log_end_offset", 0), |v| v == Some(4)),
        Some(4)
    );
    let body = broker.metrics_text();
    let at = |name: &str, partition: i32| series_value(&body, &series(name, partition));
    assert_eq!(at("sluice_partition_high_watermark", 0), Some(4));
    assert_eq!(at("sluice_log_start_offset", 0), Some(0));
    let segments = at("sluice_log_segments", 0).unwrap();
    assert!(
        segments >= 2,
        "{segments} segments after four 600-byte batches"
    );
    let size = at("sluice_log_size_bytes", 0).unwrap();
    assert!(size > 4 * 600, "{size}");
    assert_eq!(
        at("sluice_log_end_offset", 1),
        Some(0),
        "the other partition, on the other shard"
    );
    assert_eq!(at("sluice_log_size_bytes", 1), Some(0));
    assert_eq!(
        series_value(&body, "sluice_topic_log_size_bytes{topic=\"gauged\"}"),
        Some(size)
    );
    assert_eq!(
        series_value(&body, "sluice_metrics_partition_series_omitted"),
        Some(0)
    );
    // Requests by API: a producer's and its metadata lookups.
    for api in ["Produce", "Metadata"] {
        let requests = series_value(&body, &format!("sluice_requests_total{{api=\"{api}\"}}"));
        assert!(requests >= Some(4), "{api}: {requests:?}");
    }

    let admin = admin(&bs);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("gauged", 0, rdkafka::Offset::Offset(3))
        .unwrap();
    futures::executor::block_on(admin.delete_records(&tpl, &admin_opts())).expect("delete records");
    assert_eq!(
        broker.wait_series(&series("sluice_log_start_offset", 0), |v| v == Some(3)),
        Some(3)
    );
    let fewer = broker
        .wait_series(&series("sluice_log_segments", 0), |v| v < Some(segments))
        .unwrap();
    assert!(
        fewer < segments,
        "DeleteRecords left {fewer} of {segments} segments"
    );

    // Two replicas here, one per-partition series of each kind allowed.
    let capped = Broker::start_with(
        1,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-refresh-ms",
            "50",
            "--metrics-partition-series-max",
            "1",
        ],
    );
    create_topic(&capped.bootstrap(), "capped", 2, &[]);
    assert_eq!(
        capped.wait_series("sluice_metrics_partition_series_omitted", |v| v == Some(2)),
        Some(2)
    );
    let body = capped.metrics_text();
    assert!(!body.contains("sluice_log_end_offset{"), "{body}");
    assert_eq!(
        series_value(&body, "sluice_topic_log_size_bytes{topic=\"capped\"}"),
        Some(0)
    );
}

//! Client quotas (issue 15, KIP-13/55/124/219/546): AlterClientQuotas and
//! DescribeClientQuotas as Kafka answers them, kept across a restart; a
//! produce quota and a fetch quota holding real librdkafka clients to
//! their rate; throttle_time_ms in the responses and the connection muted
//! for it; a throttled fetch answered empty, losing and repeating
//! nothing, its fetch session kept; the throttling counted at /metrics.
//! Quotas on operations (mutations, connections) are in `quota_limits`.

mod common;
mod quotas_common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::raw::{err, fetch_request_limited, produce_request, RawClient};
use common::*;
use kafka_protocol::messages::{FetchResponse, MetadataRequest, MetadataResponse, ProduceResponse};
use quotas_common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::ClientContext;

/// Alter and describe at the byte level: Kafka's entity and key checks per
/// entry, validate_only, exact/default/any filters strict or not, removal,
/// and the quotas kept across a restart.
#[test]
fn client_quotas_are_altered_described_and_kept_across_restart() {
    let mut broker = Broker::start(2);
    let mut c = RawClient::connect(&broker.bootstrap());
    let alice: Entity = vec![("user", Some("alice"))];
    let default_user: Entity = vec![("user", None)];
    let alice_app: Entity = vec![("user", Some("alice")), ("client-id", Some("app"))];
    let default_client: Entity = vec![("client-id", None)];
    let codes = alter(
        &mut c,
        vec![
            entry(
                &alice,
                &[
                    ("producer_byte_rate", 1_048_576.0, false),
                    ("request_percentage", 50.5, false),
                ],
            ),
            entry(&default_user, &[("consumer_byte_rate", 2048.0, false)]),
            entry(&alice_app, &[("producer_byte_rate", 4096.0, false)]),
            entry(&default_client, &[("request_percentage", 25.0, false)]),
            entry(
                &vec![("client-id", Some("x"))],
                &[("bogus_rate", 1.0, false)],
            ),
            entry(
                &vec![("user", Some("bob"))],
                &[("producer_byte_rate", 1.5, false)],
            ),
            entry(&vec![], &[("producer_byte_rate", 1.0, false)]),
            entry(
                &vec![("group", Some("g"))],
                &[("producer_byte_rate", 1.0, false)],
            ),
        ],
        false,
    );
    assert_eq!(
        codes,
        [
            0,
            0,
            0,
            0,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST
        ]
    );
    // validate_only checks and changes nothing.
    let carol: Entity = vec![("user", Some("carol"))];
    assert_eq!(
        alter(
            &mut c,
            vec![entry(&carol, &[("producer_byte_rate", 10.0, false)])],
            true
        ),
        [0]
    );
    assert_eq!(
        alter(
            &mut c,
            vec![entry(&carol, &[("nonsense", 10.0, false)])],
            true
        ),
        [INVALID_REQUEST]
    );

    let alice_values = vec![
        ("producer_byte_rate".to_string(), 1_048_576.0),
        ("request_percentage".to_string(), 50.5),
    ];
    let all = describe(&mut c, &[], false);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        all.contains(&(owned(&alice), alice_values.clone())),
        "{all:?}"
    );
    assert!(
        describe(&mut c, &[], true).is_empty(),
        "an empty strict filter matches nothing"
    );
    let names = |d: Described| d.into_iter().map(|(e, _)| e).collect::<Vec<_>>();
    let mut alices = vec![owned(&alice), owned(&alice_app)];
    alices.sort();
    assert_eq!(
        names(describe(
            &mut c,
            &[("user", MATCH_EXACT, Some("alice"))],
            false
        )),
        alices
    );
    assert_eq!(
        names(describe(
            &mut c,
            &[("user", MATCH_EXACT, Some("alice"))],
            true
        )),
        [owned(&alice)]
    );
    assert_eq!(
        names(describe(&mut c, &[("user", MATCH_DEFAULT, None)], false)),
        [owned(&default_user)]
    );
    let mut users = vec![owned(&alice), owned(&default_user)];
    users.sort();
    assert_eq!(
        names(describe(&mut c, &[("user", MATCH_ANY, None)], true)),
        users
    );
    assert_eq!(
        names(describe(
            &mut c,
            &[("client-id", MATCH_DEFAULT, None)],
            true
        )),
        [owned(&default_client)]
    );
    assert_eq!(
        names(describe(
            &mut c,
            &[
                ("user", MATCH_ANY, None),
                ("client-id", MATCH_EXACT, Some("app"))
            ],
            true
        )),
        [owned(&alice_app)]
    );
    // Kafka's refusals of a filter: the whole response carries the error.
    let dup = describe_raw(
        &mut c,
        0,
        &[("user", MATCH_ANY, None), ("user", MATCH_DEFAULT, None)],
        false,
    );
    assert_eq!(dup.error_code, INVALID_REQUEST);
    assert!(dup.entries.is_none());
    let custom = describe_raw(&mut c, 1, &[("group", MATCH_ANY, None)], false);
    assert_eq!(custom.error_code, err::UNSUPPORTED_VERSION);

    // Removing a key keeps the others; removing the last drops the entity.
    assert_eq!(
        alter(
            &mut c,
            vec![
                entry(&alice, &[("request_percentage", 0.0, true)]),
                entry(&default_client, &[("request_percentage", 0.0, true)]),
            ],
            false
        ),
        [0, 0]
    );
    let after = describe(&mut c, &[], false);
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.contains(&(owned(&alice), vec![alice_values[0].clone()])));

    drop(c);
    broker.restart();
    let mut c = RawClient::connect(&broker.bootstrap());
    assert_eq!(
        describe(&mut c, &[], false),
        after,
        "quotas survive a restart"
    );
}

/// A request that pushes a client over its quota gets throttle_time_ms in
/// its response, and the connection reads nothing more for that long
/// (KIP-219); fetch responses carry it too; /metrics counts it.
#[test]
fn throttle_time_is_reported_and_the_connection_muted() {
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    create_topic(&broker.bootstrap(), "throttled", 1, &[]);
    let mut c = RawClient::connect(&broker.bootstrap());
    let raw: Entity = vec![("client-id", Some(RAW_CLIENT_ID))];
    // 1000 B/s: a young sensor's rate is taken over 10 s, so 12 kB in one
    // request is about 2 s over.
    assert_eq!(
        alter(
            &mut c,
            vec![entry(
                &raw,
                &[
                    ("producer_byte_rate", 1000.0, false),
                    ("consumer_byte_rate", 1000.0, false)
                ]
            )],
            false
        ),
        [0]
    );
    let throttle = produce_throttle(&mut c, "throttled", 12_000);
    assert!(throttle > 0, "no throttle_time_ms in the produce response");
    assert!(broker.metric("sluice_quota_produce_throttled_requests_total") >= 1);
    assert!(broker.metric("sluice_quota_produce_throttle_ms_total") >= throttle as u64);
    // The next request waits out the mute: no answer before the throttle.
    let sent = Instant::now();
    let again = produce_throttle(&mut c, "throttled", 10);
    assert!(
        sent.elapsed() >= Duration::from_millis(throttle as u64 * 9 / 10),
        "answered after {:?}, throttled for {throttle} ms",
        sent.elapsed()
    );
    assert!(again > 0, "still over the quota");

    // A fetch of the 12 kB back goes over the consumer quota the same way,
    // and, as from Kafka, is answered without partitions and not charged:
    // the same fetch again (after the mute) is throttled no longer than
    // the first but for the sample window's part its span moved (charged
    // twice, it would be throttled the whole 11 s rate window).
    let req = fetch_request_limited("throttled", &[(0, 0)], 1 << 20, 1 << 20, 0);
    let fetch: FetchResponse = c.call(12, &req);
    assert!(
        fetch.throttle_time_ms > 0,
        "no throttle_time_ms in the fetch response"
    );
    assert!(
        fetch.responses.is_empty(),
        "a throttled fetch carries no partitions"
    );
    assert!(broker.metric("sluice_quota_fetch_throttled_requests_total") >= 1);
    let again: FetchResponse = c.call(12, &req);
    assert!(again.responses.is_empty(), "12 kB never fit 1000 B/s");
    assert!(
        again.throttle_time_ms <= fetch.throttle_time_ms + 1000,
        "the throttled fetch was charged: {} ms then {} ms",
        fetch.throttle_time_ms,
        again.throttle_time_ms
    );
    // Through the version bridge (Fetch v3, before KIP-219: answered after
    // the throttle) it is answered empty too.
    fetch_v3_is_throttled_empty(&broker);
    // Within a larger quota the same fetch brings the records.
    assert_eq!(
        alter(
            &mut c,
            vec![entry(&raw, &[("consumer_byte_rate", 1e9, false)])],
            false
        ),
        [0]
    );
    let fetch: FetchResponse = c.call(12, &req);
    assert_eq!(fetch.throttle_time_ms, 0);
    let records = fetch.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, |r| r.len());
    assert!(records > 12_000, "fetched {records} bytes");

    // The quota is the client id's, not the connection's: a new connection
    // is over it too. Produce v5 predates KIP-219, so its client does not
    // back off by itself: the response waits out the throttle instead.
    let mut old = RawClient::connect(&broker.bootstrap());
    let record = OwnedRecord {
        key: None,
        value: Some(vec![b'o'; 10]),
        timestamp: now_ms(),
        headers: Vec::new(),
    };
    let req = produce_request("throttled", 1, vec![(0, build_owned_batch(&[record]))]);
    let sent = Instant::now();
    let resp: ProduceResponse = old.call(5, &req);
    assert!(
        resp.throttle_time_ms > 0,
        "the client id is still over its quota"
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(resp.throttle_time_ms as u64 * 9 / 10),
        "a v5 response came after {:?}, throttled for {} ms",
        sent.elapsed(),
        resp.throttle_time_ms
    );
}

/// A Fetch v3 (Kafka 3.x's schema, through the version bridge) of the
/// 12 kB in "throttled", over a 1000 B/s quota of its own client id.
fn fetch_v3_is_throttled_empty(broker: &Broker) {
    use common::raw_v3;
    use kafka_protocol_v3::messages as old;
    let mut c = RawClient::connect(&broker.bootstrap());
    let v3_client: Entity = vec![("client-id", Some("sluice-raw-v3-test"))];
    assert_eq!(
        alter(
            &mut c,
            vec![entry(&v3_client, &[("consumer_byte_rate", 1000.0, false)])],
            false
        ),
        [0]
    );
    let mut fp = old::fetch_request::FetchPartition::default();
    fp.partition_max_bytes = 1 << 20;
    let mut ft = old::fetch_request::FetchTopic::default();
    ft.topic = raw_v3::s("throttled").into();
    ft.partitions = vec![fp];
    let mut r = old::FetchRequest::default();
    r.replica_id = (-1).into();
    r.max_bytes = 1 << 20;
    r.topics = vec![ft];
    let v3 = raw_v3::call(&mut c, 3, &r);
    assert!(v3.throttle_time_ms > 0, "Fetch v3 not throttled");
    assert!(
        v3.responses.is_empty(),
        "a throttled Fetch v3 carries records"
    );
}

/// Delivery reports with the time each came back.
#[derive(Clone, Default)]
struct TimedAcks {
    acks: Arc<Mutex<Vec<(Instant, usize)>>>,
    failed: Arc<Mutex<usize>>,
}

impl ClientContext for TimedAcks {}

impl ProducerContext for TimedAcks {
    type DeliveryOpaque = ();

    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                let len = m.payload().map_or(0, <[u8]>::len);
                self.acks.lock().unwrap().push((Instant::now(), len));
            }
            Err(_) => *self.failed.lock().unwrap() += 1,
        }
    }
}

/// The rate window of a default broker: 11 samples of 1 s.
const RATE_WINDOW: Duration = Duration::from_secs(11);
/// How long the rate tests measure from the first delivery.
const MEASURE: Duration = Duration::from_secs(20);

/// What a greedy client's deliveries over [`MEASURE`] from the first one
/// say its rate is. As on Kafka (whose young sensors count ten windows of
/// time), a greedy client gets each rate window's whole quota as the window
/// opens and is muted for the rest of it, so over whole rate windows its
/// average is exact, while any 20 s alone holds one window too many or too
/// few. So the 20 s from the first delivery are held against two rate
/// windows (22 s): they hold the first two windows' bursts, and the third
/// opens 22 s after the first request, 2 s after the measurement ends.
fn measured_rate(times: &[(Instant, usize)]) -> f64 {
    let t0 = times
        .iter()
        .map(|(t, _)| *t)
        .min()
        .expect("something was delivered");
    let mut per_second = [0usize; 30];
    for (t, n) in times {
        if let Some(s) = per_second.get_mut(t.duration_since(t0).as_secs() as usize) {
            *s += n;
        }
    }
    eprintln!("bytes per second from the first: {per_second:?}");
    let bytes: usize = times
        .iter()
        .filter(|(t, _)| *t < t0 + MEASURE)
        .map(|(_, n)| n)
        .sum();
    bytes as f64 / (2 * RATE_WINDOW).as_secs_f64()
}

/// Runs `producers` greedy producers sharing one client id whose
/// producer_byte_rate is `quota` against a fresh broker of two shards; what
/// they got per second, together.
fn greedy_producers(producers: usize, quota: f64) -> f64 {
    const VALUE: usize = 1000;
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "quota-produce", 2, &[]);
    let mut c = RawClient::connect(&bootstrap);
    let fast: Entity = vec![("client-id", Some("fast-producer"))];
    assert_eq!(
        alter(
            &mut c,
            vec![entry(&fast, &[("producer_byte_rate", quota, false)])],
            false
        ),
        [0]
    );
    let mut config = producer_config(&bootstrap);
    // Small batches: a muted window still lets one request in (as on
    // Kafka), so the batch size bounds the overshoot. Long timeouts: a
    // muted connection holds requests back for up to a rate window.
    config
        .set("client.id", "fast-producer")
        .set("acks", "1")
        .set("batch.size", "16384")
        .set("linger.ms", "2")
        .set("queue.buffering.max.messages", "20000")
        .set("request.timeout.ms", "60000")
        .set("message.timeout.ms", "120000");
    let ctx = TimedAcks::default();
    let all: Vec<ThreadedProducer<TimedAcks>> = (0..producers)
        .map(|_| config.create_with_context(ctx.clone()).expect("producer"))
        .collect();
    let value = vec![b'p'; VALUE];
    let started = Instant::now();
    let run_for = MEASURE + Duration::from_secs(2);
    let mut enqueued = 0usize;
    while started.elapsed() < run_for {
        let mut full = 0;
        for producer in &all {
            match producer.send(BaseRecord::<[u8], [u8], ()>::to("quota-produce").payload(&value)) {
                Ok(()) => enqueued += 1,
                Err(_) => full += 1,
            }
        }
        if full == all.len() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    for producer in &all {
        producer.purge(PurgeConfig::default().queue().inflight());
    }
    let acks = ctx.acks.lock().unwrap().clone();
    drop(all);
    let rate = measured_rate(&acks);
    eprintln!(
        "{producers} producer(s), produce quota {quota} B/s: measured {rate:.0} B/s ({:+.1}%), {} acked of {enqueued} enqueued, throttled {} times for {} ms",
        (rate - quota) / quota * 100.0,
        acks.len(),
        broker.metric("sluice_quota_produce_throttled_requests_total"),
        broker.metric("sluice_quota_produce_throttle_ms_total"),
    );
    assert!(
        enqueued >= acks.len() + 10_000,
        "the producers were not held back: {enqueued} enqueued, {} acked",
        acks.len()
    );
    assert!(broker.metric("sluice_quota_produce_throttled_requests_total") > 0);
    rate
}

/// A producer_byte_rate quota holds a producer that could go far faster to
/// within 10% of the quota.
#[test]
fn a_produce_quota_holds_a_fast_producer_to_its_rate() {
    const QUOTA: f64 = 1_000_000.0;
    let rate = greedy_producers(1, QUOTA);
    assert!(
        (rate - QUOTA).abs() / QUOTA < 0.10,
        "produced {rate:.0} B/s against a quota of {QUOTA} B/s"
    );
}

/// The quota is the broker's, not a connection's: two producers with the
/// same client id (two connections, on whichever shards the kernel puts
/// them) share it.
#[test]
fn two_producers_of_one_client_id_share_its_quota() {
    const QUOTA: f64 = 1_000_000.0;
    let rate = greedy_producers(2, QUOTA);
    assert!(
        (rate - QUOTA).abs() / QUOTA < 0.10,
        "two producers got {rate:.0} B/s together against a quota of {QUOTA} B/s"
    );
}

/// A consumer_byte_rate quota holds a consumer reading a backlog to within
/// 10% of the quota.
#[test]
fn a_fetch_quota_holds_a_consumer_to_its_rate() {
    const QUOTA: f64 = 500_000.0;
    const VALUE: usize = 1000;
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "quota-fetch", 2, &[]);
    // A backlog of 16 MB (more than 21.5 s at the quota), produced unthrottled.
    let backlog = 16_000usize;
    let msgs: Vec<Msg> = (0..backlog)
        .map(|i| Msg::value(vec![b'f'; VALUE]).to((i % 2) as i32))
        .collect();
    // Small batches: a fetch returns at least one whole batch, and each
    // muted window still lets one fetch through.
    let mut config = producer_config(&bootstrap);
    config.set("batch.size", "16384");
    assert_eq!(produce(&config, "quota-fetch", &msgs).len(), backlog);
    let mut c = RawClient::connect(&bootstrap);
    let slow: Entity = vec![("client-id", Some("slow-consumer"))];
    assert_eq!(
        alter(
            &mut c,
            vec![entry(&slow, &[("consumer_byte_rate", QUOTA, false)])],
            false
        ),
        [0]
    );
    let mut config: ClientConfig = consumer_config(&bootstrap);
    // Small responses: each muted window still lets one fetch through.
    config
        .set("client.id", "slow-consumer")
        .set("fetch.max.bytes", "16384")
        .set("message.max.bytes", "16384")
        .set("max.partition.fetch.bytes", "8192")
        .set("socket.timeout.ms", "60000");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset("quota-fetch", p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut received = Vec::new();
    let deadline = Instant::now() + MEASURE + Duration::from_secs(15);
    let mut first = None;
    while Instant::now() < deadline
        && first.is_none_or(|t0: Instant| t0.elapsed() < MEASURE + Duration::from_secs(1))
    {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let now = Instant::now();
            first.get_or_insert(now);
            received.push((now, m.payload().map_or(0, <[u8]>::len)));
        }
    }
    assert!(
        received.len() < backlog,
        "the consumer read the whole backlog: nothing was left to throttle"
    );
    let rate = measured_rate(&received);
    eprintln!(
        "fetch quota {QUOTA} B/s: measured {rate:.0} B/s ({:+.1}%), throttled {} times for {} ms",
        (rate - QUOTA) / QUOTA * 100.0,
        broker.metric("sluice_quota_fetch_throttled_requests_total"),
        broker.metric("sluice_quota_fetch_throttle_ms_total"),
    );
    assert!(
        (rate - QUOTA).abs() / QUOTA < 0.10,
        "consumed {rate:.0} B/s against a quota of {QUOTA} B/s"
    );
}

/// A consumer held to a small fetch quota loses and repeats nothing: a
/// throttled fetch is answered without records (Kafka's throttled
/// response) and the consumer asks for the same offsets again after it,
/// so it reads every record once, in order.
#[test]
fn a_throttled_consumer_reads_every_record_once_in_order() {
    const QUOTA: f64 = 100_000.0;
    const RECORDS: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sluice.toml");
    // Two samples of 1 s: a young sensor's rate is taken over 1 s, so the
    // throttling starts after 100 kB rather than 1 MB.
    std::fs::write(
        &config_path,
        "quota_window_num = 2\nquota_window_size_seconds = 1\n",
    )
    .unwrap();
    let broker = Broker::start_with(
        2,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--config",
            config_path.to_str().unwrap(),
        ],
    );
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "quota-exact", 2, &[]);
    let msgs: Vec<Msg> = (0..RECORDS)
        .map(|i| Msg::value(format!("{i:0>100}")).to((i % 2) as i32))
        .collect();
    let mut config = producer_config(&bootstrap);
    config.set("batch.size", "8192");
    assert_eq!(produce(&config, "quota-exact", &msgs).len(), RECORDS);
    let mut c = RawClient::connect(&bootstrap);
    let exact: Entity = vec![("client-id", Some("exact-consumer"))];
    assert_eq!(
        alter(
            &mut c,
            vec![entry(&exact, &[("consumer_byte_rate", QUOTA, false)])],
            false
        ),
        [0]
    );
    let mut config: ClientConfig = consumer_config(&bootstrap);
    // Responses far below a second's quota, so each can get through.
    config
        .set("client.id", "exact-consumer")
        .set("fetch.max.bytes", "16384")
        .set("message.max.bytes", "16384")
        .set("max.partition.fetch.bytes", "8192");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset("quota-exact", p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut read: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while read[0].len() + read[1].len() < RECORDS && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            let value = std::str::from_utf8(m.payload().unwrap()).unwrap();
            read[m.partition() as usize].push(value.parse().unwrap());
        }
    }
    // Nothing more comes after the last record either.
    let extra = consumer.poll(Duration::from_millis(500));
    assert!(extra.is_none(), "a record past the last one");
    for (p, values) in read.iter().enumerate() {
        let expected: Vec<usize> = (0..RECORDS).filter(|i| i % 2 == p).collect();
        assert_eq!(
            values.len(),
            expected.len(),
            "partition {p}: read {} of {}",
            values.len(),
            expected.len()
        );
        assert!(
            values == &expected,
            "partition {p} out of order or repeated"
        );
    }
    let throttled = broker.metric("sluice_quota_fetch_throttled_requests_total");
    eprintln!(
        "{RECORDS} records at {QUOTA} B/s: {throttled} fetches throttled for {} ms",
        broker.metric("sluice_quota_fetch_throttle_ms_total")
    );
    assert!(throttled > 0, "no fetch was throttled");
}

/// In a cluster a quota altered through one node goes through the quorum
/// (ClientQuota and IpQuota records): every node describes it, so every
/// node enforces it, and it survives a restart of all.
#[test]
fn cluster_quotas_go_through_the_quorum() {
    let mut cluster = common::cluster::Cluster::start(3);
    let mut via_2 = RawClient::connect(&cluster.node(2).bootstrap());
    let app: Entity = vec![("user", None), ("client-id", Some("app"))];
    // An ip entity goes through the quorum too (IpQuota records).
    let ip: Entity = vec![("ip", Some("192.0.2.7"))];
    assert_eq!(
        alter(
            &mut via_2,
            vec![
                entry(
                    &app,
                    &[
                        ("producer_byte_rate", 4096.0, false),
                        ("request_percentage", 30.0, false)
                    ]
                ),
                entry(&ip, &[("connection_creation_rate", 7.0, false)]),
            ],
            false
        ),
        [0, 0]
    );
    let mut expected = vec![
        (
            owned(&app),
            vec![
                ("producer_byte_rate".to_string(), 4096.0),
                ("request_percentage".to_string(), 30.0),
            ],
        ),
        (
            owned(&ip),
            vec![("connection_creation_rate".to_string(), 7.0)],
        ),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let seen_everywhere = |cluster: &common::cluster::Cluster| {
        for id in cluster.ids() {
            let mut c = RawClient::try_connect(&cluster.node(id).bootstrap(), OP_TIMEOUT)
                .map_err(|e| format!("node {id}: {e}"))?;
            let seen = describe(&mut c, &[], false);
            if seen != expected {
                return Err(format!("node {id}: {seen:?}"));
            }
        }
        Ok(())
    };
    cluster.wait_for("the quota on every node", common::cluster::WAIT, || {
        seen_everywhere(&cluster)
    });
    for id in cluster.ids() {
        cluster.stop(id);
    }
    cluster.start_all_again();
    cluster.wait_for(
        "the quota after a full restart",
        common::cluster::WAIT,
        || seen_everywhere(&cluster),
    );
}

/// A request_percentage quota counts the time requests keep a shard busy:
/// a client over a tiny one is throttled, for at most one sample window,
/// and its Produce responses report it.
#[test]
fn a_request_percentage_quota_throttles_a_busy_client() {
    let broker = Broker::start_with(1, &["--metrics-listen", "127.0.0.1:0"]);
    create_topic(&broker.bootstrap(), "busy", 1, &[]);
    let mut c = RawClient::connect(&broker.bootstrap());
    let raw: Entity = vec![
        ("user", Some("ANONYMOUS")),
        ("client-id", Some(RAW_CLIENT_ID)),
    ];
    // 0.001% of a core: 10 µs of handling per second, 100 µs per 10 s.
    assert_eq!(
        alter(
            &mut c,
            vec![entry(&raw, &[("request_percentage", 0.001, false)])],
            false
        ),
        [0]
    );
    let mut throttle = 0;
    for _ in 0..200 {
        throttle = produce_throttle(&mut c, "busy", 100);
        if throttle > 0 {
            break;
        }
    }
    assert!(throttle > 0, "200 produces never went over 10 µs a second");
    assert!(
        throttle <= 1000,
        "a request throttle is bounded by one sample window: {throttle} ms"
    );
    assert!(broker.metric("sluice_quota_request_throttled_requests_total") >= 1);
    assert_eq!(
        broker.metric("sluice_quota_produce_throttled_requests_total"),
        0
    );
    // Any API's response reports it: Metadata's too.
    let metadata = (0..50).find_map(|_| {
        let resp: MetadataResponse = c.call(12, &MetadataRequest::default());
        (resp.throttle_time_ms > 0).then_some(resp.throttle_time_ms)
    });
    assert!(
        metadata.is_some(),
        "50 Metadata requests never reported a throttle"
    );
}

/// A throttled fetch of an incremental session (KIP-227) keeps the session
/// and leaves its partitions unmarked: the next fetch brings what the
/// throttled one held back. A throttled full fetch makes no session, as
/// Kafka makes one only with an answer that carries partitions.
#[test]
fn a_throttled_fetch_keeps_its_session() {
    let broker = Broker::start(1);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "throttled-session", 1, &[]);
    let mut c = RawClient::connect(&bootstrap);
    let full = common::raw::fetch_request("throttled-session", &[(0, 0)], 0)
        .with_session_id(0)
        .with_session_epoch(0);
    let made: FetchResponse = c.call(12, &full);
    let session = made.session_id;
    assert_ne!(session, 0, "a session was made");
    let raw: Entity = vec![("client-id", Some(RAW_CLIENT_ID))];
    assert_eq!(
        alter(
            &mut c,
            vec![entry(&raw, &[("consumer_byte_rate", 1000.0, false)])],
            false
        ),
        [0]
    );
    assert_eq!(produce_throttle(&mut c, "throttled-session", 12_000), 0);
    let idle = |epoch| {
        common::raw::fetch_request("throttled-session", &[], 0)
            .with_session_id(session)
            .with_session_epoch(epoch)
    };
    let throttled: FetchResponse = c.call(12, &idle(1));
    assert!(throttled.throttle_time_ms > 0, "12 kB is over 1000 B/s");
    assert_eq!(throttled.error_code, 0);
    assert_eq!(throttled.session_id, session, "the session is kept");
    assert!(throttled.responses.is_empty());

    // A full fetch over the quota (on a connection not muted) makes none.
    let mut other = RawClient::connect(&bootstrap);
    let refused: FetchResponse = other.call(12, &full);
    assert!(refused.throttle_time_ms > 0);
    assert_eq!(
        refused.session_id, 0,
        "no session for a throttled full fetch"
    );
    assert!(refused.responses.is_empty());

    // Within a larger quota the session's next fetch (naming nothing, the
    // fetcher's position unchanged) brings the records held back.
    let mut admin = RawClient::connect(&bootstrap);
    assert_eq!(
        alter(
            &mut admin,
            vec![entry(&raw, &[("consumer_byte_rate", 1e9, false)])],
            false
        ),
        [0]
    );
    let next: FetchResponse = c.call(12, &idle(2));
    assert_eq!(next.throttle_time_ms, 0);
    assert_eq!(next.session_id, session);
    let partition = &next.responses[0].partitions[0];
    assert_eq!(partition.partition_index, 0);
    let records = partition.records.as_ref().map_or(0, |r| r.len());
    assert!(records > 12_000, "fetched {records} bytes");
}

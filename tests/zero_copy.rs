//! Zero-copy fetch: fetched batches equal the produced bytes across segments, shards, codecs and
//! byte limits; slow and vanishing clients during large fetches; the sendfile path is taken.

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use common::raw::{self, err, RawClient};
use common::*;
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use rdkafka::message::{Message, OwnedMessage};
use sluice::compression::{recompress_batch, validate_compressed, Codec};

const SENDFILE_BYTES: &str = "sluice_fetch_sendfile_bytes_total";
const COPIED_BYTES: &str = "sluice_fetch_copied_bytes_total";
const PRODUCED_BYTES: &str = "sluice_produce_bytes_total";

// ---------------------------------------------------------------------------
// Data: deterministic record batches, plain and compressed
// ---------------------------------------------------------------------------

/// splitmix64: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

use common::OwnedRecord as Rec;

/// One produced batch: where it went and its exact bytes (baseOffset 0 as sent).
#[derive(Clone, Debug)]
struct Sent {
    codec: Codec,
    bytes: Bytes,
    records: Vec<Rec>,
    /// Offset the broker assigned to the batch.
    base_offset: i64,
}

/// A v2 batch of `recs` in `codec`, baseOffset 0.
fn make_batch(recs: &[Rec], codec: Codec) -> Bytes {
    let plain = common::build_owned_batch(recs);
    if codec == Codec::None {
        return plain;
    }
    let batch = recompress_batch(&plain, codec, None, 64 << 20).expect("compress batch");
    assert_eq!(
        Codec::from_attributes(i16::from_be_bytes([batch[21], batch[22]])).unwrap(),
        codec
    );
    batch
}

/// The batches to produce to partition `p`: mixed sizes, keys, null values,
/// headers and codecs (none, gzip, lz4, snappy), with a few uncompressed
/// batches far larger than a segment and than the small fetch limits.
fn dataset(p: i32, batches: usize, jumbo_every: usize) -> Vec<(Codec, Vec<Rec>)> {
    let mut rng = Rng(0x5eed_0000 + p as u64);
    let codecs = [Codec::None, Codec::Gzip, Codec::Lz4, Codec::Snappy];
    // Recent timestamps: time-based retention must not touch the data.
    let base_ts = now_ms() - 600_000 + 1000 * i64::from(p);
    (0..batches)
        .map(|i| {
            if jumbo_every > 0 && i % jumbo_every == jumbo_every - 1 {
                let n = 12_000 + rng.below(4000) as usize;
                let rec = Rec {
                    key: Some(format!("jumbo-{p}-{i}").into_bytes()),
                    value: Some(rng.bytes(n)),
                    timestamp: base_ts + i as i64,
                    headers: vec![("kind".into(), Some(b"jumbo".to_vec()))],
                };
                return (Codec::None, vec![rec]);
            }
            let codec = codecs[i % codecs.len()];
            let n = 1 + rng.below(12) as usize;
            let recs = (0..n)
                .map(|j| {
                    let value = match rng.below(8) {
                        0 => None,
                        1 => {
                            let n = rng.below(300) as usize;
                            Some(rng.bytes(n))
                        }
                        _ => Some(
                            format!("p{p}-b{i}-r{j}-")
                                .repeat(1 + rng.below(30) as usize)
                                .into_bytes(),
                        ),
                    };
                    let headers = (0..rng.below(3))
                        .map(|h| {
                            let v =
                                (rng.below(4) != 0).then(|| format!("hv{i}.{j}.{h}").into_bytes());
                            (format!("h{h}"), v)
                        })
                        .collect();
                    Rec {
                        key: (j % 3 != 2).then(|| format!("key-{p}-{i}-{j}").into_bytes()),
                        value,
                        timestamp: base_ts + (i * 100 + j) as i64,
                        headers,
                    }
                })
                .collect();
            (codec, recs)
        })
        .collect()
}

/// Produces `datasets[p]` to partition `p`, one raw Produce per batch, round
/// robin over the partitions; returns what was sent with the assigned offsets.
fn produce_datasets(
    c: &mut RawClient,
    topic: &str,
    datasets: &BTreeMap<i32, Vec<(Codec, Vec<Rec>)>>,
) -> BTreeMap<i32, Vec<Sent>> {
    let mut sent: BTreeMap<i32, Vec<Sent>> = BTreeMap::new();
    let rounds = datasets.values().map(Vec::len).max().unwrap_or(0);
    for i in 0..rounds {
        for (&p, batches) in datasets {
            let Some((codec, recs)) = batches.get(i) else {
                continue;
            };
            let bytes = make_batch(recs, *codec);
            let expected_base: i64 = sent
                .get(&p)
                .map_or(0, |v| v.iter().map(|s| s.records.len() as i64).sum());
            assert_eq!(
                c.produce_batch(topic, p, bytes.clone()),
                (err::NONE, expected_base),
                "produce batch {i} ({codec:?}) to partition {p}"
            );
            sent.entry(p).or_default().push(Sent {
                codec: *codec,
                bytes,
                records: recs.clone(),
                base_offset: expected_base,
            });
        }
    }
    sent
}

fn next_offset(sent: &[Sent]) -> i64 {
    sent.iter().map(|s| s.records.len() as i64).sum()
}

// ---------------------------------------------------------------------------
// Raw fetching
// ---------------------------------------------------------------------------

/// Splits a fetch response's records into whole batches; a partial batch is
/// a failure (the broker only ever sends whole batches).
fn split_batches(records: &Bytes) -> Vec<Bytes> {
    let mut buf = records.clone();
    let mut out = Vec::new();
    while !buf.is_empty() {
        assert!(
            buf.len() >= 61,
            "a partial batch header in a fetch response"
        );
        let len = i32::from_be_bytes(buf[8..12].try_into().unwrap());
        assert!(len >= 49, "batchLength {len}");
        let total = 12 + len as usize;
        assert!(
            total <= buf.len(),
            "a partial batch ({total} bytes, {} left) in a fetch response",
            buf.len()
        );
        out.push(buf.split_to(total));
    }
    out
}

fn batch_base(b: &[u8]) -> i64 {
    i64::from_be_bytes(b[..8].try_into().unwrap())
}

fn batch_last(b: &[u8]) -> i64 {
    batch_base(b) + i64::from(i32::from_be_bytes(b[23..27].try_into().unwrap()))
}

/// Fetches every partition of `hws` from offset 0 up to its high watermark
/// with repeated multi-partition Fetch requests at `version` with the given
/// limits, checking each response against the limits; returns the batches
/// received per partition.
fn fetch_everything(
    c: &mut RawClient,
    version: i16,
    topic: &str,
    hws: &BTreeMap<i32, i64>,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> BTreeMap<i32, Vec<Bytes>> {
    let what =
        format!("Fetch v{version} max_bytes {max_bytes} partition_max_bytes {partition_max_bytes}");
    let mut next: BTreeMap<i32, i64> = hws.keys().map(|&p| (p, 0)).collect();
    let mut got: BTreeMap<i32, Vec<Bytes>> = BTreeMap::new();
    for _ in 0..100_000 {
        let want: Vec<(i32, i64)> = next
            .iter()
            .filter(|(p, o)| **o < hws[p])
            .map(|(&p, &o)| (p, o))
            .collect();
        if want.is_empty() {
            return got;
        }
        let resp: FetchResponse = c.call(
            version,
            &raw::fetch_request_limited(topic, &want, max_bytes, partition_max_bytes, 0),
        );
        assert_eq!(resp.error_code, err::NONE, "{what}");
        assert_eq!(resp.responses.len(), 1, "{what}");
        let mut total = 0usize;
        let mut batches_in_response = 0usize;
        for pd in &resp.responses[0].partitions {
            let p = pd.partition_index;
            assert_eq!(pd.error_code, err::NONE, "{what}: partition {p}");
            assert_eq!(pd.high_watermark, hws[&p], "{what}: hw of {p}");
            assert_eq!(pd.last_stable_offset, hws[&p], "{what}: lso of {p}");
            if version >= 5 {
                assert_eq!(pd.log_start_offset, 0, "{what}: log start of {p}");
            }
            let records = pd.records.clone().unwrap_or_default();
            let batches = split_batches(&records);
            assert!(
                records.len() <= partition_max_bytes as usize || batches.len() == 1,
                "{what}: partition {p} got {} bytes in {} batches",
                records.len(),
                batches.len()
            );
            for b in &batches {
                assert_eq!(
                    batch_base(b),
                    next[&p],
                    "{what}: partition {p}: batches must follow each other"
                );
                *next.get_mut(&p).unwrap() = batch_last(b) + 1;
            }
            total += records.len();
            batches_in_response += batches.len();
            got.entry(p).or_default().extend(batches);
        }
        assert!(
            batches_in_response >= 1,
            "{what}: no progress with data left at {want:?}"
        );
        assert!(
            total <= max_bytes as usize || batches_in_response == 1,
            "{what}: {total} record bytes in {batches_in_response} batches exceed max_bytes"
        );
    }
    panic!("{what}: did not reach the high watermarks {hws:?}");
}

/// Asserts the fetched batches of every partition are the produced ones, byte
/// for byte, except baseOffset, which must be the offset the broker assigned.
fn assert_same_batches(
    what: &str,
    sent: &BTreeMap<i32, Vec<Sent>>,
    got: &BTreeMap<i32, Vec<Bytes>>,
) {
    for (p, sent) in sent {
        let got = got.get(p).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(
            got.len(),
            sent.len(),
            "{what}: number of batches in partition {p}"
        );
        for (i, (g, s)) in got.iter().zip(sent).enumerate() {
            assert_eq!(
                batch_base(g),
                s.base_offset,
                "{what}: baseOffset of batch {i} of partition {p}"
            );
            assert_eq!(
                g.len(),
                s.bytes.len(),
                "{what}: length of batch {i} of partition {p} ({:?})",
                s.codec
            );
            assert!(
                g[8..] == s.bytes[8..],
                "{what}: bytes of batch {i} of partition {p} ({:?}) differ from what was produced",
                s.codec
            );
        }
    }
}

/// Decodes a Fetch response frame body (after the size prefix).
fn decode_fetch(mut frame: Bytes, version: i16, correlation_id: i32) -> FetchResponse {
    let header = ResponseHeader::decode(&mut frame, ApiKey::Fetch.response_header_version(version))
        .expect("response header");
    assert_eq!(header.correlation_id, correlation_id);
    let resp = FetchResponse::decode(&mut frame, version).expect("decode Fetch response");
    assert!(
        !frame.has_remaining(),
        "trailing bytes after the Fetch response"
    );
    resp
}

/// A plain socket with a small receive buffer, so a large response stays
/// mostly on the broker's side while the test reads it slowly.
fn small_buffer_socket(addr: &str) -> TcpStream {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(64 << 10).unwrap();
    s.connect(&addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(raw::READ_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(raw::READ_TIMEOUT)).unwrap();
    s
}

/// Reads exactly `buf.len()` bytes in reads of at most `chunk` bytes,
/// sleeping `pause` after each.
fn read_slowly(s: &mut TcpStream, buf: &mut [u8], chunk: usize, pause: Duration) {
    let mut at = 0;
    while at < buf.len() {
        let end = (at + chunk).min(buf.len());
        match s.read(&mut buf[at..end]) {
            Ok(0) => panic!(
                "broker closed the connection after {at} of {} bytes",
                buf.len()
            ),
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read after {at} of {} bytes: {e}", buf.len()),
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

/// Sets topic configs with IncrementalAlterConfigs v0 (SET); asserts success.
fn alter_topic_configs(c: &mut RawClient, topic: &str, configs: &[(&str, &str)]) {
    let (code, message) = c.alter_topic_configs(0, topic, configs);
    assert_eq!(code, err::NONE, "IncrementalAlterConfigs: {message:?}");
}

/// `count` uncompressed batches of `per_batch` records of `value_bytes`
/// bytes each, produced raw to the end of partition 0; returns them with
/// their offsets.
fn produce_bulk(
    c: &mut RawClient,
    topic: &str,
    count: usize,
    per_batch: usize,
    value_bytes: usize,
) -> Vec<Sent> {
    let mut rng = Rng(value_bytes as u64);
    let start = c.log_end_offset(topic, 0);
    let ts = now_ms();
    let mut out: Vec<Sent> = Vec::with_capacity(count);
    for i in 0..count {
        let recs: Vec<Rec> = (0..per_batch)
            .map(|j| Rec {
                key: None,
                value: Some(rng.bytes(value_bytes)),
                timestamp: ts + (i * per_batch + j) as i64,
                headers: Vec::new(),
            })
            .collect();
        let bytes = make_batch(&recs, Codec::None);
        let base = start + next_offset(&out);
        assert_eq!(c.produce_batch(topic, 0, bytes.clone()), (err::NONE, base));
        out.push(Sent {
            codec: Codec::None,
            bytes,
            records: recs,
            base_offset: base,
        });
    }
    out
}

/// A fresh client produces to `topic` and fetches what it wrote back, and an
/// rdkafka round trip works.
fn assert_broker_serves(bs: &str, topic: &str, partition: i32) {
    let mut c = RawClient::connect(bs);
    let end = c.log_end_offset(topic, partition);
    let recs = vec![Rec {
        key: Some(b"still".to_vec()),
        value: Some(b"serving".to_vec()),
        timestamp: now_ms(),
        headers: Vec::new(),
    }];
    let bytes = make_batch(&recs, Codec::None);
    assert_eq!(
        c.produce_batch(topic, partition, bytes.clone()),
        (err::NONE, end)
    );
    let resp = c.fetch_one(topic, partition, end);
    let pd = &resp.responses[0].partitions[0];
    assert_eq!(pd.error_code, err::NONE);
    let got = split_batches(&pd.records.clone().unwrap_or_default());
    assert_eq!(got.len(), 1);
    assert_eq!(batch_base(&got[0]), end);
    assert!(
        got[0][8..] == bytes[8..],
        "fetched bytes equal produced bytes"
    );

    let d = produce_values(bs, topic, Some(partition), &["rdkafka too".to_string()]);
    let got = consume_from(
        bs,
        topic,
        &[(partition, rdkafka::Offset::Offset(d[0].offset))],
        1,
        Duration::from_secs(30),
    );
    assert_eq!(payload_str(&got[0]), "rdkafka too");
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

const PARTITIONS: i32 = 4;
/// Raw fetch limits: (max_bytes, partition_max_bytes).
const LIMITS: [(i32, i32); 5] = [
    (1, 1),
    (3000, 1000),
    (6000, 64 << 10),
    (40 << 10, 8 << 10),
    (64 << 20, 16 << 20),
];

/// On 2 shards with 4 KiB segments, raw Fetch v4 and v12 with small and large limits return every produced batch (plain, gzip, lz4, snappy, larger than the limits) byte for byte, with its assigned offset.
#[test]
fn fetched_batches_equal_produced_bytes() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let topic = "zc-bytes";
    create_topic(&bs, topic, PARTITIONS, &[("segment.bytes", "4096")]);
    let owners: Vec<usize> = (0..PARTITIONS)
        .map(|p| sluice::metadata::owner_shard(topic, p, 2))
        .collect();
    assert!(
        owners.contains(&0) && owners.contains(&1),
        "partitions on both shards: {owners:?}"
    );

    let datasets: BTreeMap<i32, Vec<(Codec, Vec<Rec>)>> =
        (0..PARTITIONS).map(|p| (p, dataset(p, 48, 12))).collect();
    let mut c = RawClient::connect(&bs);
    let sent = produce_datasets(&mut c, topic, &datasets);
    let hws: BTreeMap<i32, i64> = sent.iter().map(|(&p, s)| (p, next_offset(s))).collect();
    for p in 0..PARTITIONS {
        let segments = broker.segment_files(topic, p).len();
        assert!(
            segments >= 8,
            "partition {p} spans many segments, has {segments}"
        );
        assert!(
            sent[&p].iter().any(|s| s.bytes.len() > 12_000),
            "batches larger than segments and limits"
        );
    }

    for version in [4, 12] {
        for (max_bytes, partition_max_bytes) in LIMITS {
            let got =
                fetch_everything(&mut c, version, topic, &hws, max_bytes, partition_max_bytes);
            assert_same_batches(
                &format!("Fetch v{version} max_bytes {max_bytes} partition_max_bytes {partition_max_bytes}"),
                &sent,
                &got,
            );
        }
    }

    // A fetch from an offset inside a batch returns that batch whole, first,
    // also when it is larger than both limits.
    for p in 0..PARTITIONS {
        for s in sent[&p]
            .iter()
            .filter(|s| s.records.len() > 1 || s.bytes.len() > 12_000)
        {
            let inside = s.base_offset + s.records.len() as i64 - 1;
            for version in [4, 12] {
                let resp: FetchResponse = c.call(
                    version,
                    &raw::fetch_request_limited(topic, &[(p, inside)], 100, 100, 0),
                );
                let pd = &resp.responses[0].partitions[0];
                assert_eq!(pd.error_code, err::NONE);
                let got = split_batches(&pd.records.clone().unwrap_or_default());
                assert_eq!(got.len(), 1, "offset {inside} of partition {p}");
                assert_eq!(batch_base(&got[0]), s.base_offset);
                assert!(got[0][8..] == s.bytes[8..], "batch holding offset {inside}");
            }
        }
    }

    // Every compressed batch as fetched is still a valid batch.
    let got = fetch_everything(&mut c, 12, topic, &hws, 64 << 20, 16 << 20);
    for batches in got.values() {
        for b in batches {
            validate_compressed(b, 64 << 20).expect("fetched batch is valid");
        }
    }
}

/// Expected (offset, key, value, headers, timestamp) of every record of `sent`.
fn expected_records(sent: &[Sent]) -> Vec<(i64, Rec)> {
    sent.iter()
        .flat_map(|s| {
            s.records
                .iter()
                .enumerate()
                .map(move |(i, r)| (s.base_offset + i as i64, r.clone()))
        })
        .collect()
}

/// Consumes `expected` messages from every partition of `topic` from the
/// start with rdkafka and `fetch` settings layered on the assign-only config.
fn rdkafka_consume(
    bs: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    settings: &[(&str, &str)],
) -> Vec<OwnedMessage> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut config = consumer_config(bs);
    for (k, v) in settings {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().expect("create consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut out = Vec::with_capacity(expected);
    let mut errors = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) if errors.len() < 20 => errors.push(e.to_string()),
            _ => {}
        }
    }
    assert_eq!(
        out.len(),
        expected,
        "consumed {} of {expected} from {topic}; errors: {errors:?}",
        out.len()
    );
    out
}

/// rdkafka, with both small and default fetch sizes, reads back every record of raw-produced plain, gzip, lz4 and snappy batches across segments and shards with identical keys, values, headers, timestamps and offsets.
#[test]
fn rdkafka_reads_back_identical_records() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let topic = "zc-rdkafka";
    create_topic(&bs, topic, PARTITIONS, &[("segment.bytes", "4096")]);
    let datasets: BTreeMap<i32, Vec<(Codec, Vec<Rec>)>> =
        (0..PARTITIONS).map(|p| (p, dataset(p, 40, 10))).collect();
    let mut c = RawClient::connect(&bs);
    let sent = produce_datasets(&mut c, topic, &datasets);
    let total: usize = sent.values().map(|s| next_offset(s) as usize).sum();

    let small = [
        ("fetch.max.bytes", "5000"),
        ("message.max.bytes", "1000"),
        ("max.partition.fetch.bytes", "1500"),
        ("receive.message.max.bytes", "100000"),
    ];
    for settings in [&small[..], &[][..]] {
        let got = rdkafka_consume(&bs, topic, PARTITIONS, total, settings);
        let parts = by_partition(&got);
        assert_eq!(parts.len(), PARTITIONS as usize);
        for (p, msgs) in parts {
            let have: Vec<(i64, Rec)> = msgs
                .iter()
                .map(|m| (m.offset(), Rec::received(m)))
                .collect();
            let want = expected_records(&sent[&p]);
            assert_eq!(
                have.len(),
                want.len(),
                "records of partition {p} ({settings:?})"
            );
            for (h, w) in have.iter().zip(&want) {
                assert_eq!(h, w, "partition {p} ({settings:?})");
            }
        }
    }
}

type KeyValue = (Vec<u8>, Vec<u8>);

/// Batches compressed by librdkafka (lz4, gzip) come back from raw Fetch v4 and v12 identical between fetches and limits, valid, and rdkafka reads back the same keys and values.
#[test]
fn rdkafka_compressed_batches_fetch_identically() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let topic = "zc-librdkafka-codecs";
    create_topic(&bs, topic, 2, &[("segment.bytes", "8192")]);

    let mut want: BTreeMap<i32, Vec<KeyValue>> = BTreeMap::new();
    for (codec, p) in [("lz4", 0), ("gzip", 1)] {
        let mut config = producer_config(&bs);
        config
            .set("compression.type", codec)
            .set("linger.ms", "20")
            .set("batch.num.messages", "50");
        let msgs: Vec<Msg> = (0..600)
            .map(|i| {
                Msg::value(format!("{codec} value {i} ").repeat(1 + i % 7))
                    .key(format!("{codec}-key-{i}"))
                    .to(p)
            })
            .collect();
        produce(&config, topic, &msgs);
        want.insert(
            p,
            msgs.iter()
                .map(|m| (m.key.clone().unwrap(), m.value.clone().unwrap()))
                .collect(),
        );
    }
    let mut c = RawClient::connect(&bs);
    let hws: BTreeMap<i32, i64> = (0..2).map(|p| (p, c.log_end_offset(topic, p))).collect();
    assert_eq!(hws, BTreeMap::from([(0, 600), (1, 600)]));
    assert!(
        broker.segment_files(topic, 0).len() >= 2,
        "several segments"
    );

    let reference = fetch_everything(&mut c, 12, topic, &hws, 64 << 20, 16 << 20);
    for (p, codec) in [(0, Codec::Lz4), (1, Codec::Gzip)] {
        let batches = &reference[&p];
        assert!(batches.len() > 1);
        // librdkafka sends a batch uncompressed when compressing does not pay.
        let codecs: Vec<Codec> = batches
            .iter()
            .map(|b| Codec::from_attributes(i16::from_be_bytes([b[21], b[22]])).unwrap())
            .collect();
        assert!(
            codecs.iter().all(|c| *c == codec || *c == Codec::None),
            "partition {p}: {codecs:?}"
        );
        assert!(
            codecs.iter().filter(|c| **c == codec).count() * 2 >= codecs.len(),
            "partition {p} holds mostly {codec:?} batches: {codecs:?}"
        );
        for b in batches {
            validate_compressed(b, 64 << 20).expect("fetched batch is valid");
        }
    }
    for version in [4, 12] {
        for (max_bytes, partition_max_bytes) in LIMITS {
            let got =
                fetch_everything(&mut c, version, topic, &hws, max_bytes, partition_max_bytes);
            assert!(
                got == reference,
                "Fetch v{version} max_bytes {max_bytes} partition_max_bytes {partition_max_bytes}: batches differ"
            );
        }
    }

    let got = rdkafka_consume(&bs, topic, 2, 1200, &[]);
    for (p, msgs) in by_partition(&got) {
        let have: Vec<KeyValue> = msgs
            .iter()
            .map(|m| (m.key().unwrap().to_vec(), m.payload().unwrap().to_vec()))
            .collect();
        assert!(have == want[&p], "records of partition {p}");
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.offset(), i as i64);
        }
    }
}

/// Retention deletes the segments of a 24 MiB fetch that a slow client is still reading: the client gets the whole, well-formed response with the produced bytes, and other clients keep producing and fetching meanwhile.
#[test]
fn retention_during_slow_large_fetch() {
    let broker = Broker::start_with(2, &["--retention-check-interval-ms", "100"]);
    let bs = broker.bootstrap();
    let topic = "zc-doomed";
    let other = "zc-bystander";
    create_topic(&bs, topic, 1, &[("segment.bytes", "1048576")]);
    create_topic(&bs, other, 2, &[]);
    let mut producer = RawClient::connect(&bs);
    // 96 batches of 64 x 4000 bytes: about 24 MiB in about 24 segments.
    let sent = produce_bulk(&mut producer, topic, 96, 64, 4000);
    let log_end = next_offset(&sent);
    let first_segment = broker.segment_files(topic, 0)[0].clone();
    assert!(broker.segment_files(topic, 0).len() >= 20);
    let total: usize = sent.iter().map(|s| s.bytes.len()).sum();

    let version = 12;
    let mut slow = small_buffer_socket(&bs);
    slow.write_all(&raw::request_frame(
        version,
        7,
        &raw::fetch_request_limited(topic, &[(0, 0)], 64 << 20, 64 << 20, 0),
    ))
    .unwrap();
    let mut size = [0u8; 4];
    read_slowly(&mut slow, &mut size, 4, Duration::ZERO);
    let size = i32::from_be_bytes(size) as usize;
    assert!(
        size > total,
        "the response holds every batch ({size} bytes)"
    );
    let mut body = vec![0u8; size];
    // A little, slowly: the broker is now mid-send.
    read_slowly(
        &mut slow,
        &mut body[..32 << 10],
        4096,
        Duration::from_millis(10),
    );

    // Retention: keep nothing but the active segment.
    let mut admin = RawClient::connect(&bs);
    alter_topic_configs(&mut admin, topic, &[("retention.bytes", "1")]);
    let mut gone = false;
    for _ in 0..300 {
        if !first_segment.exists() && admin.list_offset(topic, 0, -2) > 0 {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone, "retention deleted the old segments");
    let log_start = admin.list_offset(topic, 0, -2);
    assert!(broker.segment_files(topic, 0).len() <= 2);

    // Other clients are served meanwhile, on the same topic too.
    assert_broker_serves(&bs, other, 0);
    assert_broker_serves(&bs, other, 1);
    let resp = admin.fetch_one(topic, 0, 0);
    assert_eq!(
        resp.responses[0].partitions[0].error_code,
        err::OFFSET_OUT_OF_RANGE,
        "offset 0 is gone"
    );
    let resp = admin.fetch_one(topic, 0, log_start);
    assert_eq!(resp.responses[0].partitions[0].error_code, err::NONE);
    let tail = split_batches(
        &resp.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default(),
    );
    assert!(!tail.is_empty());
    assert_eq!(batch_base(&tail[0]), log_start);

    // The slow client reads on, still slowly at first, and gets it all.
    let at = 32 << 10;
    read_slowly(
        &mut slow,
        &mut body[at..at + (256 << 10)],
        8192,
        Duration::from_millis(2),
    );
    let at = at + (256 << 10);
    read_slowly(&mut slow, &mut body[at..], 256 << 10, Duration::ZERO);
    let resp = decode_fetch(Bytes::from(body), version, 7);
    assert_eq!(resp.error_code, err::NONE);
    let pd = &resp.responses[0].partitions[0];
    assert_eq!(pd.error_code, err::NONE);
    assert_eq!(pd.high_watermark, log_end);
    let got = split_batches(&pd.records.clone().unwrap_or_default());
    assert_same_batches(
        "slow fetch during retention",
        &BTreeMap::from([(0, sent)]),
        &BTreeMap::from([(0, got)]),
    );

    // The connection stays usable.
    slow.write_all(&raw::request_frame(
        version,
        8,
        &raw::fetch_request_limited(topic, &[(0, log_start)], 1 << 20, 1 << 20, 0),
    ))
    .unwrap();
    let mut size = [0u8; 4];
    read_slowly(&mut slow, &mut size, 4, Duration::ZERO);
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    read_slowly(&mut slow, &mut body, 1 << 20, Duration::ZERO);
    let resp = decode_fetch(Bytes::from(body), version, 8);
    assert_eq!(resp.responses[0].partitions[0].error_code, err::NONE);
    assert_broker_serves(&bs, topic, 0);
}

/// A topic deleted while a slow client reads a 16 MiB fetch of it: the client gets the whole response, and the broker keeps serving.
#[test]
fn topic_deleted_during_slow_large_fetch() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let topic = "zc-deleted";
    let other = "zc-survivor";
    create_topic(&bs, topic, 1, &[("segment.bytes", "2097152")]);
    create_topic(&bs, other, 1, &[]);
    let mut producer = RawClient::connect(&bs);
    let sent = produce_bulk(&mut producer, topic, 64, 64, 4000);

    let mut slow = small_buffer_socket(&bs);
    slow.write_all(&raw::request_frame(
        4,
        1,
        &raw::fetch_request_limited(topic, &[(0, 0)], 64 << 20, 64 << 20, 0),
    ))
    .unwrap();
    let mut size = [0u8; 4];
    read_slowly(&mut slow, &mut size, 4, Duration::ZERO);
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    read_slowly(
        &mut slow,
        &mut body[..16 << 10],
        4096,
        Duration::from_millis(10),
    );

    let admin = admin(&bs);
    let res = futures::executor::block_on(admin.delete_topics(&[topic], &admin_opts()))
        .expect("DeleteTopics");
    assert_eq!(res, vec![Ok(topic.to_string())]);
    let mut gone = false;
    for _ in 0..300 {
        if !broker.partition_dir(topic, 0).exists() {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone, "the partition directory was removed");
    assert_broker_serves(&bs, other, 0);

    read_slowly(&mut slow, &mut body[16 << 10..], 256 << 10, Duration::ZERO);
    let resp = decode_fetch(Bytes::from(body), 4, 1);
    let pd = &resp.responses[0].partitions[0];
    assert_eq!(pd.error_code, err::NONE);
    let got = split_batches(&pd.records.clone().unwrap_or_default());
    assert_same_batches(
        "slow fetch during topic deletion",
        &BTreeMap::from([(0, sent)]),
        &BTreeMap::from([(0, got)]),
    );
    assert_broker_serves(&bs, other, 0);
}

/// Clients that drop the connection in the middle of large fetches (after a little, after nothing, with a reset) leave the broker serving: a connection that was open meanwhile, new clients, and a full large fetch all work.
#[test]
fn disconnect_mid_fetch_keeps_broker_serving() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let topic = "zc-abandoned";
    create_topic(&bs, topic, 1, &[("segment.bytes", "4194304")]);
    let mut bystander = RawClient::connect(&bs);
    let sent = produce_bulk(&mut bystander, topic, 64, 64, 4000);
    let log_end = next_offset(&sent);

    for round in 0..30 {
        let mut s = small_buffer_socket(&bs);
        s.write_all(&raw::request_frame(
            12,
            round,
            &raw::fetch_request_limited(topic, &[(0, 0)], 64 << 20, 64 << 20, 0),
        ))
        .unwrap();
        match round % 3 {
            0 => {
                let mut buf = vec![0u8; 1024];
                read_slowly(&mut s, &mut buf, 1024, Duration::ZERO);
            }
            1 => {}
            _ => {
                let mut buf = vec![0u8; 200 << 10];
                read_slowly(&mut s, &mut buf, 64 << 10, Duration::ZERO);
                // Close with a reset rather than a FIN.
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        }
        drop(s);
        // Interleave: the bystander still gets answers.
        assert_eq!(bystander.log_end_offset(topic, 0), log_end);
    }

    // Concurrent abandoned fetches on one topic, then a full fetch.
    let abandoned: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut s = small_buffer_socket(&bs);
            s.write_all(&raw::request_frame(
                12,
                100 + i,
                &raw::fetch_request_limited(topic, &[(0, 0)], 64 << 20, 64 << 20, 0),
            ))
            .unwrap();
            s
        })
        .collect();
    let hws = BTreeMap::from([(0, log_end)]);
    let got = fetch_everything(&mut bystander, 12, topic, &hws, 64 << 20, 64 << 20);
    drop(abandoned);
    assert_same_batches("after disconnects", &BTreeMap::from([(0, sent)]), &got);
    assert_broker_serves(&bs, topic, 0);
}

/// Fetches `topic`/0..partitions to their ends with `version`, asserts the
/// produced bytes came back, and returns the record bytes received.
fn fetch_and_check(c: &mut RawClient, topic: &str, sent: &BTreeMap<i32, Vec<Sent>>) -> u64 {
    let hws: BTreeMap<i32, i64> = sent.iter().map(|(&p, s)| (p, next_offset(s))).collect();
    let got = fetch_everything(c, 12, topic, &hws, 8 << 20, 1 << 20);
    assert_same_batches("metrics fetch", sent, &got);
    got.values().flatten().map(|b| b.len() as u64).sum()
}

/// The metrics test's batches: every partition's dataset, plus bulk in partition 0.
fn metrics_dataset(c: &mut RawClient, topic: &str) -> BTreeMap<i32, Vec<Sent>> {
    let datasets: BTreeMap<i32, Vec<(Codec, Vec<Rec>)>> =
        (0..PARTITIONS).map(|p| (p, dataset(p, 24, 6))).collect();
    let mut sent = produce_datasets(c, topic, &datasets);
    // Plus about 4 MiB more in partition 0, for sends that fill the socket.
    let bulk = produce_bulk(c, topic, 16, 64, 4000);
    sent.get_mut(&0).unwrap().extend(bulk);
    sent
}

/// The produce counter holds the appended batch bytes. With fetch.zero_copy on (the default), the record bytes of a plain-text fetch from both shards go out by sendfile and none are copied; with `--fetch-zero-copy false` they are all copied and none go by sendfile, and the bytes are the same.
#[test]
fn zero_copy_path_is_taken() {
    for zero_copy in [true, false] {
        let mut args = vec!["--metrics-listen", "127.0.0.1:0"];
        if !zero_copy {
            args.extend(["--fetch-zero-copy", "false"]);
        }
        let broker = Broker::start_with(2, &args);
        let bs = broker.bootstrap();
        let topic = "zc-metrics";
        create_topic(&bs, topic, PARTITIONS, &[("segment.bytes", "65536")]);
        assert_eq!(broker.metric(SENDFILE_BYTES), 0);
        assert_eq!(broker.metric(COPIED_BYTES), 0);
        let mut c = RawClient::connect(&bs);
        let sent = metrics_dataset(&mut c, topic);
        let fetched = fetch_and_check(&mut c, topic, &sent);
        assert!(fetched > 4 << 20, "fetched {fetched} record bytes");
        // Batches are stored whole, so what was appended is what was fetched.
        assert_eq!(broker.metric(PRODUCED_BYTES), fetched, "appended bytes");
        if zero_copy {
            let sendfile = broker.wait_metric(SENDFILE_BYTES, fetched);
            assert!(
                sendfile >= fetched,
                "sendfile counter {sendfile} < {fetched} record bytes fetched"
            );
            assert_eq!(broker.metric(COPIED_BYTES), 0, "no record byte copied");
        } else {
            let copied = broker.wait_metric(COPIED_BYTES, fetched);
            assert!(
                copied >= fetched,
                "copied counter {copied} < {fetched} record bytes fetched"
            );
            assert_eq!(broker.metric(SENDFILE_BYTES), 0, "no sendfile when off");
        }
    }
}

/// Each stage of a request's time is counted at `/metrics`: requests by
/// API, response writes, queueing on the shard, mesh hops, appends, the
/// acks=all wait, and the wake-up of a long-poll fetch parked on an
/// empty partition when a batch arrives (the batch is sent once the
/// parked-fetch gauge shows the fetch waiting).
#[test]
fn stage_histograms_count_what_happened() {
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    let topic = "stage-times";
    create_topic(&bs, topic, 4, &[]);
    let count = |stage: &str| broker.metric(&format!("{stage}_count"));
    let mut fetcher = RawClient::connect(&bs);
    let mut producer = RawClient::connect(&bs);
    let end = producer.log_end_offset(topic, 0);
    fetcher.send(12, &raw::fetch_request(topic, &[(0, end)], 60_000));
    let parked = broker.wait_metric("sluice_fetch_parked", 1);
    assert_eq!(parked, 1, "the fetch never parked");
    let batch = build_owned_batch(&[Rec {
        key: None,
        value: Some(b"wake".to_vec()),
        timestamp: now_ms(),
        headers: Vec::new(),
    }]);
    assert_eq!(producer.produce_batch(topic, 0, batch).0, err::NONE);
    let fetched: FetchResponse = fetcher.recv();
    let answer = &fetched.responses[0].partitions[0];
    assert_eq!(answer.error_code, err::NONE);
    assert!(answer.records.as_ref().is_some_and(|r| !r.is_empty()));
    assert!(broker.wait_metric("sluice_fetch_wakeup_seconds_count", 1) >= 1);
    assert_eq!(broker.metric("sluice_fetch_parked"), 0);
    let produce_requests = broker.wait_metric("sluice_request_seconds_count{api=\"produce\"}", 1);
    assert!(produce_requests >= 1);
    assert!(broker.metric("sluice_request_seconds_count{api=\"fetch\"}") >= 1);
    assert!(broker.metric("sluice_request_seconds_count{api=\"other\"}") >= 1);
    assert!(count("sluice_append_seconds") >= 1);
    assert!(count("sluice_produce_replication_wait_seconds") >= 1);
    assert!(count("sluice_response_write_seconds") >= produce_requests);
    assert!(count("sluice_shard_queue_seconds") >= 1);
    // The topic's creation reached the second shard over the mesh.
    assert!(count("sluice_mesh_hop_seconds") >= 1);
}

//! Whole-batch compression end to end: every producer codec through a real
//! client, the producer codec x topic `compression.type` matrix, and
//! corrupt, mislabelled and bomb batches on raw sockets.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::raw::{self, err, RawClient};
use common::*;
use kafka_protocol::messages::{FetchResponse, ProduceResponse};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use sluice::compression::{self, Codec};
use sluice::record::build::{build_batch, RecordSpec};
use sluice::record::{self as rec, BatchHeader, BATCH_HEADER_LEN};

/// Kafka's UNSUPPORTED_COMPRESSION_TYPE.
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
/// Kafka's INVALID_RECORD.
const INVALID_RECORD: i16 = 87;
const CONSUME_TIMEOUT: Duration = Duration::from_secs(90);
const GIB: usize = 1 << 30;

/// The librdkafka `compression.codec` names of the five producer codecs.
const PRODUCER_CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
/// Below this a stored batch of a `producer`-typed topic may be one the
/// client left uncompressed (see `producer_codec_by_topic_type_matrix`).
const CLIENT_FALLBACK_BATCH_BYTES_MAX: usize = 256;
/// The topic `compression.type` values.
const TOPIC_TYPES: [&str; 6] = ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];

/// One message to produce and expect back.
use common::OwnedRecord as TestMsg;

/// `n` messages of mixed sizes (empty, null, ~100 B, ~1 KB, 16 KB), with
/// null and present keys and, when `with_headers`, duplicate header keys.
/// Values are text, so every codec shrinks them.
fn mixed_messages(n: usize, with_headers: bool) -> Vec<TestMsg> {
    let base_ts = now_ms() - 60_000;
    (0..n)
        .map(|i| {
            let line = format!(
                "message {i} of a compression test, level=INFO path=/api/v1/items/{} ",
                i % 97
            );
            let value = match i % 10 {
                0 => Some(Vec::new()),
                1 => None,
                2 => Some(line.repeat(1 + 16 * 1024 / line.len()).into_bytes()),
                3 | 4 => Some(line.repeat(12).into_bytes()),
                _ => Some(line.clone().into_bytes()),
            };
            let key = (i % 4 != 0).then(|| format!("key-{}", i % 50).into_bytes());
            let headers = if with_headers && i % 3 == 0 {
                vec![
                    ("trace".to_string(), Some(format!("t{i}").into_bytes())),
                    ("trace".to_string(), None),
                    ("empty".to_string(), Some(Vec::new())),
                ]
            } else {
                Vec::new()
            };
            TestMsg {
                key,
                value,
                timestamp: base_ts + (i as i64 % 1000),
                headers,
            }
        })
        .collect()
}

/// Producer config with librdkafka's `compression.codec` set to `codec`
/// and batches large enough to compress.
fn codec_producer(bootstrap: &str, codec: &str) -> rdkafka::ClientConfig {
    let mut c = producer_config(bootstrap);
    // `compression.type` is librdkafka's alias of `compression.codec`, and
    // producer_config sets it to none: set both, or the config map's
    // iteration order decides which one wins.
    c.set("compression.codec", codec)
        .set("compression.type", codec)
        .set("linger.ms", "20")
        .set("batch.num.messages", "2000");
    c
}

/// Produces `msgs` to partition 0 of `topic` and asserts every delivery.
fn produce_msgs(config: &rdkafka::ClientConfig, topic: &str, msgs: &[TestMsg]) {
    let (p, ctx) = collecting_producer(config);
    for (i, m) in msgs.iter().enumerate() {
        let mut r: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, i)
            .partition(0)
            .timestamp(m.timestamp);
        if let Some(k) = &m.key {
            r = r.key(&k[..]);
        }
        if let Some(v) = &m.value {
            r = r.payload(&v[..]);
        }
        if !m.headers.is_empty() {
            let mut h = OwnedHeaders::new();
            for (key, value) in &m.headers {
                h = h.insert(Header {
                    key,
                    value: value.as_deref(),
                });
            }
            r = r.headers(h);
        }
        send_retrying(&p, r);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    let failed = ctx.failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} deliveries to {topic} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(
        ctx.ok_count(),
        msgs.len(),
        "every message gets a delivery report"
    );
}

/// Consumes partition 0 of `topic` and asserts it holds exactly `expected`, in order.
fn assert_consumed(bootstrap: &str, topic: &str, expected: &[TestMsg]) {
    let got = consume_all(bootstrap, topic, 1, expected.len(), CONSUME_TIMEOUT);
    for (i, (m, want)) in got.iter().zip(expected).enumerate() {
        assert_eq!(m.offset(), i as i64, "{topic}: offsets are dense");
        let have = TestMsg::received(m);
        assert!(
            have == *want,
            "{topic}: message {i} differs:\n got  {:?}\n want {:?}",
            summary(&have),
            summary(want)
        );
    }
}

/// A short description of a message for failure output.
fn summary(m: &TestMsg) -> String {
    format!(
        "key {:?} value {:?} ts {} headers {:?}",
        m.key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        m.value.as_ref().map(Vec::len),
        m.timestamp,
        m.headers
    )
}

/// Every complete batch in a fetch response's records, as raw bytes.
fn fetched_batches(resp: &FetchResponse) -> Vec<Bytes> {
    assert_eq!(resp.error_code, err::NONE, "fetch error");
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, err::NONE, "fetch partition error");
    let mut out = Vec::new();
    let Some(mut buf) = p.records.clone() else {
        return out;
    };
    while buf.len() >= BATCH_HEADER_LEN {
        let len = BatchHeader::parse(&buf)
            .expect("fetched batch header")
            .total_len();
        if buf.len() < len {
            break;
        }
        out.push(buf.split_to(len));
    }
    out
}

/// Every stored batch of partition 0 of `topic`, read with raw Fetch v12.
fn stored_batches(c: &mut RawClient, topic: &str) -> Vec<Bytes> {
    let end = c.log_end_offset(topic, 0);
    let mut offset = 0;
    let mut all = Vec::new();
    while offset < end {
        let batches = fetched_batches(&c.fetch_one(topic, 0, offset));
        assert!(
            !batches.is_empty(),
            "{topic}: no batch at offset {offset} (end {end})"
        );
        for b in batches {
            let h = BatchHeader::parse(&b).unwrap();
            if h.last_offset() >= offset {
                offset = h.last_offset() + 1;
                all.push(b);
            }
        }
    }
    all
}

/// Each producer codec: 10,000 messages of mixed sizes come back identical.
fn round_trip_with_codec(codec: &str) {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let topic = format!("codec-{codec}");
    create_topic(&bs, &topic, 1, &[]);
    let msgs = mixed_messages(10_000, true);
    produce_msgs(&codec_producer(&bs, codec), &topic, &msgs);
    assert_consumed(&bs, &topic, &msgs);
    // Stored as sent: the producer's codec (none for `none`).
    let mut c = RawClient::connect(&bs);
    let want = Codec::from_name(codec).unwrap();
    let batches = stored_batches(&mut c, &topic);
    let stored: Vec<(Codec, usize)> = batches
        .iter()
        .map(|b| (compression::batch_codec(b).unwrap(), b.len()))
        .collect();
    // librdkafka sends a batch uncompressed when compressing does not
    // shrink it (tiny batches); every other batch keeps the producer's codec.
    for (codec, len) in &stored {
        assert!(
            *codec == want || *codec == Codec::None,
            "{topic}: a batch of {len} bytes in {codec:?}; all: {stored:?}"
        );
    }
    // Under load librdkafka sends many tiny batches, so only require that the
    // codec was kept wherever the producer used it.
    assert!(
        stored.iter().any(|(c, _)| *c == want),
        "{topic}: no batch stored in {want:?}: {stored:?}"
    );
    // librdkafka's framing of each codec passes Sluice's own validation,
    // and survives recompression to every codec.
    for b in &batches {
        compression::validate_compressed(b, 64 << 20)
            .unwrap_or_else(|e| panic!("{topic}: librdkafka batch refused: {e}"));
    }
    let first = &batches[0];
    let plain = compression::recompress_batch(first, Codec::None, None, 64 << 20).unwrap();
    for target in Codec::ALL {
        let again = compression::recompress_batch(first, target, None, 64 << 20).unwrap();
        let back = compression::recompress_batch(&again, Codec::None, None, 64 << 20).unwrap();
        assert!(
            back == plain,
            "{topic}: {target} round trip changed the records"
        );
    }
}

/// Producer codec none: 10,000 mixed messages round trip.
#[test]
fn producer_codec_none_round_trips() {
    round_trip_with_codec("none");
}

/// Producer codec gzip: 10,000 mixed messages round trip.
#[test]
fn producer_codec_gzip_round_trips() {
    round_trip_with_codec("gzip");
}

/// Producer codec snappy: 10,000 mixed messages round trip.
#[test]
fn producer_codec_snappy_round_trips() {
    round_trip_with_codec("snappy");
}

/// Producer codec lz4: 10,000 mixed messages round trip.
#[test]
fn producer_codec_lz4_round_trips() {
    round_trip_with_codec("lz4");
}

/// Producer codec zstd: 10,000 mixed messages round trip.
#[test]
fn producer_codec_zstd_round_trips() {
    round_trip_with_codec("zstd");
}

/// Batches compressed by Sluice (xerial snappy, LZ4 frames, zstd, gzip, at
/// several levels) are read back identical by librdkafka.
#[test]
fn sluice_compressed_batches_are_read_by_librdkafka() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(&bs);
    let msgs = mixed_messages(300, true);
    let plain = common::build_owned_batch(&msgs);
    for (codec, level) in [
        (Codec::None, None),
        (Codec::Gzip, Some(1)),
        (Codec::Gzip, None),
        (Codec::Snappy, None),
        (Codec::Lz4, None),
        (Codec::Zstd, Some(1)),
        (Codec::Zstd, Some(19)),
    ] {
        let topic = format!("sluice-{codec}-{}", level.unwrap_or(0));
        create_topic(&bs, &topic, 1, &[]);
        let batch = compression::recompress_batch(&plain, codec, level, 64 << 20).unwrap();
        let (code, base) = c.produce_batch(&topic, 0, batch);
        assert_eq!((code, base), (err::NONE, 0), "{topic}");
        assert_consumed(&bs, &topic, &msgs);
    }
}

/// Producer codec x topic compression.type: consumers read what was
/// produced, and every stored batch carries the topic's codec (the
/// producer's for `producer`).
#[test]
fn producer_codec_by_topic_type_matrix() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let msgs = mixed_messages(1_000, true);
    let mut c = RawClient::connect(&bs);
    for producer in PRODUCER_CODECS {
        for topic_type in TOPIC_TYPES {
            let topic = format!("matrix-{producer}-{topic_type}");
            create_topic(&bs, &topic, 1, &[("compression.type", topic_type)]);
            produce_msgs(&codec_producer(&bs, producer), &topic, &msgs);
            assert_consumed(&bs, &topic, &msgs);
            let want = match topic_type {
                "producer" => Codec::from_name(producer).unwrap(),
                other => Codec::from_name(other).unwrap(),
            };
            let batches = stored_batches(&mut c, &topic);
            assert!(!batches.is_empty());
            for b in &batches {
                let stored = compression::batch_codec(b).unwrap();
                // librdkafka sends a batch uncompressed when its codec would
                // not make it smaller, which happens to a batch of a message
                // or two (how messages fall into batches depends on timing).
                let client_fallback = topic_type == "producer"
                    && stored == Codec::None
                    && b.len() < CLIENT_FALLBACK_BATCH_BYTES_MAX;
                if !client_fallback {
                    assert_eq!(stored, want, "{topic}: stored codec");
                }
                // Stored batches are whole and valid, records included.
                compression::validate_compressed(b, 64 << 20)
                    .unwrap_or_else(|e| panic!("{topic}: stored batch invalid: {e}"));
            }
        }
    }
}

/// Topic codec levels are accepted and used: the same batch is stored
/// smaller at the higher level, and reads back identical.
#[test]
fn topic_compression_levels_apply() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(&bs);
    let batch = plain_batch(2_000);
    let mut sizes = Vec::new();
    for (codec, key, level) in [
        ("gzip", "compression.gzip.level", "1"),
        ("gzip", "compression.gzip.level", "9"),
        ("zstd", "compression.zstd.level", "1"),
        ("zstd", "compression.zstd.level", "19"),
        ("lz4", "compression.lz4.level", "17"),
    ] {
        let topic = format!("level-{codec}-{level}");
        create_topic(&bs, &topic, 1, &[("compression.type", codec), (key, level)]);
        let (code, _) = c.produce_batch(&topic, 0, batch.clone());
        assert_eq!(code, err::NONE, "{topic}");
        let stored = stored_batches(&mut c, &topic);
        assert_eq!(stored.len(), 1, "{topic}");
        let want = Codec::from_name(codec).unwrap();
        assert_eq!(compression::batch_codec(&stored[0]).unwrap(), want);
        let back = compression::recompress_batch(&stored[0], Codec::None, None, 64 << 20).unwrap();
        assert!(
            back[BATCH_HEADER_LEN..] == batch[BATCH_HEADER_LEN..],
            "{topic}: records differ"
        );
        sizes.push((codec, level, stored[0].len()));
    }
    assert!(sizes[0].2 > sizes[1].2, "gzip 1 vs 9: {sizes:?}");
    assert!(sizes[2].2 > sizes[3].2, "zstd 1 vs 19: {sizes:?}");
}

// ---------------------------------------------------------------------------
// Bad batches on raw sockets
// ---------------------------------------------------------------------------

/// A valid uncompressed batch of `n` text records.
fn plain_batch(n: usize) -> Bytes {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("raw record {i} with some repeated text text text").into_bytes())
        .collect();
    let specs: Vec<RecordSpec<'_>> = values
        .iter()
        .map(|v| (Some(&b"k"[..]), Some(&v[..]), now_ms(), &[][..]))
        .collect();
    build_batch(0, &specs)
}

fn in_codec(codec: Codec, batch: &[u8]) -> Bytes {
    compression::recompress_batch(batch, codec, None, 64 << 20).expect("recompress")
}

/// `batch` with its records section replaced by `payload` and its codec id
/// set to `codec_id`, with batchLength and CRC made consistent again, so
/// only what is inside the compressed bytes is wrong.
fn relabel(batch: &[u8], codec_id: u8, payload: &[u8]) -> Bytes {
    let mut b = batch[..BATCH_HEADER_LEN].to_vec();
    b.extend_from_slice(payload);
    let len = (b.len() - rec::LOG_OVERHEAD) as i32;
    b[rec::BATCH_LENGTH_OFFSET..rec::BATCH_LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
    let at = rec::ATTRIBUTES_OFFSET;
    let attributes = i16::from_be_bytes([b[at], b[at + 1]]);
    let attributes = (attributes & !rec::ATTR_CODEC_MASK) | i16::from(codec_id);
    b[at..at + 2].copy_from_slice(&attributes.to_be_bytes());
    rec::recompute_crc(&mut b);
    Bytes::from(b)
}

/// A broker with topic `topic` holding one good batch; returns the broker,
/// a raw client, and the log's (end offset, stored bytes) to compare with.
fn broker_with_one_batch(
    topic: &str,
    configs: &[(&str, &str)],
) -> (Broker, RawClient, (i64, Vec<Bytes>)) {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    create_topic(&bs, topic, 1, configs);
    let mut c = RawClient::connect(&bs);
    let (code, base) = c.produce_batch(topic, 0, in_codec(Codec::Lz4, &plain_batch(5)));
    assert_eq!((code, base), (err::NONE, 0));
    let state = log_state(&mut c, topic);
    (broker, c, state)
}

fn log_state(c: &mut RawClient, topic: &str) -> (i64, Vec<Bytes>) {
    (c.log_end_offset(topic, 0), stored_batches(c, topic))
}

/// After a refused produce: the log is as it was and the broker still takes
/// a good batch of every codec.
fn assert_unchanged_and_serving(c: &mut RawClient, topic: &str, before: &(i64, Vec<Bytes>)) {
    assert!(log_state(c, topic) == *before, "{topic}: the log changed");
    let mut end = before.0;
    for codec in Codec::ALL {
        let (code, base) = c.produce_batch(topic, 0, in_codec(codec, &plain_batch(3)));
        assert_eq!(
            (code, base),
            (err::NONE, end),
            "{topic}: good {codec} batch after a bad one"
        );
        end += 3;
    }
}

/// Compressed payloads that do not decode get CORRUPT_MESSAGE; nothing is appended.
#[test]
fn corrupt_compressed_payload_is_refused() {
    let topic = "corrupt-payload";
    let (_broker, mut c, before) = broker_with_one_batch(topic, &[]);
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let good = in_codec(codec, &plain_batch(20));
        let mut payload = good[BATCH_HEADER_LEN..].to_vec();
        // A mangled stream header (magic / xerial header).
        payload[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let bad = relabel(&good, codec.id(), &payload);
        let (code, _) = c.produce_batch(topic, 0, bad);
        assert_eq!(code, err::CORRUPT_MESSAGE, "{codec}: mangled header");
        // Bytes no decoder takes: no gzip, LZ4 or zstd magic, and as raw
        // snappy a copy from before the start of the output.
        let bad = relabel(&good, codec.id(), b"\x0a\x02\xff\xffnever compressed");
        let (code, _) = c.produce_batch(topic, 0, bad);
        assert_eq!(code, err::CORRUPT_MESSAGE, "{codec}: plain bytes");
    }
    // A stream that decodes but holds fewer records than the header says.
    let three = in_codec(Codec::Zstd, &plain_batch(3));
    let two = in_codec(Codec::None, &plain_batch(2));
    let mut payload = Vec::new();
    compression::compress(Codec::Zstd, &two[BATCH_HEADER_LEN..], None, &mut payload);
    let (code, _) = c.produce_batch(topic, 0, relabel(&three, Codec::Zstd.id(), &payload));
    assert_eq!(
        code, INVALID_RECORD,
        "record count mismatch inside a zstd batch"
    );
    assert_unchanged_and_serving(&mut c, topic, &before);
}

/// Codec ids 5-7, and valid ids naming the wrong codec, get CORRUPT_MESSAGE.
#[test]
fn wrong_codec_ids_are_refused() {
    let topic = "wrong-codec";
    let (_broker, mut c, before) = broker_with_one_batch(topic, &[]);
    let gz = in_codec(Codec::Gzip, &plain_batch(10));
    for id in 5..=7 {
        let (code, _) = c.produce_batch(topic, 0, relabel(&gz, id, &gz[BATCH_HEADER_LEN..]));
        assert_eq!(code, err::CORRUPT_MESSAGE, "codec id {id}");
    }
    for wrong in [Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let (code, _) =
            c.produce_batch(topic, 0, relabel(&gz, wrong.id(), &gz[BATCH_HEADER_LEN..]));
        assert_eq!(code, err::CORRUPT_MESSAGE, "gzip bytes labelled {wrong}");
    }
    // Compressed bytes labelled uncompressed are not records either.
    let (code, _) = c.produce_batch(topic, 0, relabel(&gz, 0, &gz[BATCH_HEADER_LEN..]));
    assert_eq!(code, err::CORRUPT_MESSAGE, "gzip bytes labelled none");
    assert_unchanged_and_serving(&mut c, topic, &before);
}

/// A zigzag varint, as records encode lengths.
fn varint(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push(raw as u8 | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// `total` bytes of zeros behind `head`, compressed with `codec` without
/// compressing `total` bytes: the decoders read concatenated frames, so
/// one 1 MiB frame of zeros is repeated.
fn bomb(codec: Codec, head: &[u8], total: usize) -> Vec<u8> {
    let mut out = Vec::new();
    compression::compress(codec, head, None, &mut out);
    let mut frame = Vec::new();
    compression::compress(codec, &vec![0u8; 1 << 20], None, &mut frame);
    for _ in 0..total >> 20 {
        out.extend_from_slice(&frame);
    }
    out
}

/// Decompression bombs (1 GiB of zeros in a batch of at most a few MB)
/// are refused quickly, the broker stays up and the log is unchanged.
#[test]
fn decompression_bomb_is_refused() {
    let topic = "bomb";
    // Batches up to 16 MiB, so the bomb meets the decoder, not the size check.
    let (broker, mut c, before) =
        broker_with_one_batch(topic, &[("max.message.bytes", "16777216")]);
    let header_of = plain_batch(1);
    // One record that claims a 1 GiB value, then the zeros.
    let mut head = Vec::new();
    varint(&mut head, GIB as i64 + 8);
    head.push(0); // attributes
    varint(&mut head, 0); // timestamp delta
    varint(&mut head, 0); // offset delta
    varint(&mut head, -1); // null key
    varint(&mut head, GIB as i64); // value length
    for codec in [Codec::Gzip, Codec::Zstd, Codec::Lz4] {
        let payload = bomb(codec, &head, GIB);
        assert!(
            payload.len() < 8 << 20,
            "{codec} bomb is {} bytes",
            payload.len()
        );
        let (code, _) = c.produce_batch(topic, 0, relabel(&header_of, codec.id(), &payload));
        assert_eq!(code, err::CORRUPT_MESSAGE, "{codec}: huge record bomb");
        // Bare zeros: empty records, refused at the first one.
        let payload = bomb(codec, b"", GIB);
        let (code, _) = c.produce_batch(topic, 0, relabel(&header_of, codec.id(), &payload));
        assert!(
            code == err::CORRUPT_MESSAGE || code == INVALID_RECORD,
            "{codec}: zeros bomb got {code}"
        );
    }
    assert_unchanged_and_serving(&mut c, topic, &before);
    drop(c);
    // Still serving real clients.
    let bs = broker.bootstrap();
    let msgs = mixed_messages(100, false);
    create_topic(&bs, "after-bomb", 1, &[("compression.type", "zstd")]);
    produce_msgs(&codec_producer(&bs, "gzip"), "after-bomb", &msgs);
    assert_consumed(&bs, "after-bomb", &msgs);
}

/// zstd needs Produce v7+: a zstd batch on v3-v6 gets UNSUPPORTED_COMPRESSION_TYPE.
#[test]
fn zstd_needs_produce_v7() {
    let topic = "zstd-produce-version";
    let (broker, mut c, before) = broker_with_one_batch(topic, &[]);
    let zstd = in_codec(Codec::Zstd, &plain_batch(4));
    for version in [3, 6] {
        let req = raw::produce_request(topic, -1, vec![(0, zstd.clone())]);
        let resp: ProduceResponse = c.call(version, &req);
        let code = resp.responses[0].partition_responses[0].error_code;
        assert_eq!(code, UNSUPPORTED_COMPRESSION_TYPE, "Produce v{version}");
    }
    assert!(log_state(&mut c, topic) == before, "the log changed");
    // A topic that recompresses to zstd takes older produces of other codecs.
    let bs = broker.bootstrap();
    create_topic(
        &bs,
        "zstd-topic-old-produce",
        1,
        &[("compression.type", "zstd")],
    );
    let req = raw::produce_request(
        "zstd-topic-old-produce",
        -1,
        vec![(0, in_codec(Codec::Gzip, &plain_batch(4)))],
    );
    let resp: ProduceResponse = c.call(3, &req);
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        err::NONE
    );
    let req = raw::produce_request(topic, -1, vec![(0, zstd)]);
    let resp: ProduceResponse = c.call(7, &req);
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        err::NONE,
        "Produce v7"
    );
}

/// Fetch < v10 of zstd data gets UNSUPPORTED_COMPRESSION_TYPE; v10+ gets the batch.
#[test]
fn zstd_needs_fetch_v10() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(&bs);
    // A zstd topic (Kafka's rule) and a producer-codec topic holding a zstd batch.
    create_topic(&bs, "zstd-by-topic", 1, &[("compression.type", "zstd")]);
    create_topic(&bs, "zstd-by-batch", 1, &[]);
    for topic in ["zstd-by-topic", "zstd-by-batch"] {
        let (code, _) = c.produce_batch(topic, 0, in_codec(Codec::Zstd, &plain_batch(4)));
        assert_eq!(code, err::NONE);
        for version in [4, 9] {
            let resp: FetchResponse = c.call(version, &raw::fetch_request(topic, &[(0, 0)], 100));
            let code = resp.responses[0].partitions[0].error_code;
            assert_eq!(
                code, UNSUPPORTED_COMPRESSION_TYPE,
                "{topic}: Fetch v{version}"
            );
        }
        let resp: FetchResponse = c.call(10, &raw::fetch_request(topic, &[(0, 0)], 100));
        let batches = fetched_batches(&resp);
        assert_eq!(batches.len(), 1, "{topic}: Fetch v10");
        assert_eq!(compression::batch_codec(&batches[0]).unwrap(), Codec::Zstd);
    }
    // Older fetches of other codecs are served.
    create_topic(&bs, "lz4-old-fetch", 1, &[]);
    let (code, _) = c.produce_batch("lz4-old-fetch", 0, in_codec(Codec::Lz4, &plain_batch(4)));
    assert_eq!(code, err::NONE);
    let resp: FetchResponse = c.call(4, &raw::fetch_request("lz4-old-fetch", &[(0, 0)], 100));
    assert_eq!(fetched_batches(&resp).len(), 1);
}

//! The message formats against kafka-protocol 0.15.1's encoder and decoder
//! (Kafka 3.x's, which still wrote them).

use bytes::{Bytes, BytesMut};
use kafka_protocol_v3::records::{
    Compression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};

use super::down::{from_v2_batches, Bounds};
use super::up::to_v2_batch;
use super::*;
use crate::compression::{compress, decompress, recompress_batch};
use crate::record::build::build_batch;
use crate::record::{validate_batches, BatchHeader, Records, BATCH_HEADER_LEN};

const MAX: usize = 1 << 20;

fn kp_record(offset: i64, ts: i64, key: Option<&str>, value: &str) -> KpRecord {
    KpRecord {
        transactional: false,
        control: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: -1,
        timestamp: ts,
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers: Default::default(),
    }
}

fn sample(n: i64) -> Vec<KpRecord> {
    (0..n)
        .map(|i| {
            kp_record(
                i,
                1_700_000_000_000 + i,
                Some(&format!("k{i}")),
                &format!("v{i}"),
            )
        })
        .collect()
}

/// A message set as kafka-protocol writes it; compressed ones through our
/// codecs (its own are not built).
fn kp_set(records: &[KpRecord], magic: i8, codec: Codec) -> Bytes {
    let compression = match codec {
        Codec::None => Compression::None,
        Codec::Gzip => Compression::Gzip,
        Codec::Snappy => Compression::Snappy,
        Codec::Lz4 => Compression::Lz4,
        Codec::Zstd => Compression::Zstd,
    };
    let options = RecordEncodeOptions {
        version: magic,
        compression,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        records,
        &options,
        Some(|inner: &mut BytesMut, out: &mut BytesMut, _| {
            let mut v = Vec::new();
            compress(codec, inner, None, &mut v);
            out.extend_from_slice(&v);
            Ok(())
        }),
    )
    .unwrap();
    buf.freeze()
}

/// (offset delta, timestamp, key, value) of one record.
type Fields = (i32, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// The fields of every record of one v2 batch.
fn v2_records(batch: &[u8]) -> Vec<Fields> {
    let header = BatchHeader::parse(batch).unwrap();
    let codec = Codec::from_attributes(header.attributes).unwrap();
    let section = decompress(codec, &batch[BATCH_HEADER_LEN..], MAX).unwrap();
    Records::new(&section, header.records_count)
        .map(|r| {
            let r = r.unwrap();
            (
                r.offset_delta,
                header.base_timestamp + r.timestamp_delta,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            )
        })
        .collect()
}

/// Our writer and kafka-protocol's agree byte for byte.
#[test]
fn writes_what_kafka_protocol_writes() {
    for magic in [MAGIC_0, MAGIC_1] {
        let records = sample(3);
        let mut ours = Vec::new();
        for r in &records {
            // kafka-protocol writes offset 0 in every message; the broker
            // assigns offsets anyway.
            let message = Message {
                offset: 0,
                magic,
                attributes: 0,
                timestamp: r.timestamp,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
            };
            write_message(&mut ours, &message);
        }
        assert_eq!(ours, kp_set(&records, magic, Codec::None), "magic {magic}");
        let parsed: Vec<_> = Messages::new(&ours).map(Result::unwrap).collect();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2].key, Some(&b"k2"[..]));
        let ts = if magic == MAGIC_1 {
            1_700_000_000_002
        } else {
            -1
        };
        assert_eq!(parsed[2].timestamp, ts);
    }
}

/// Magic 0 and 1 sets, plain and in a compressed wrapper, become one valid
/// v2 batch with the same keys, values and timestamps, codec kept.
#[test]
fn message_sets_become_one_v2_batch() {
    for magic in [MAGIC_0, MAGIC_1] {
        for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4] {
            if magic == MAGIC_0 && codec == Codec::Lz4 {
                continue; // kafka-protocol does not write it
            }
            let records = sample(4);
            let batch = to_v2_batch(&kp_set(&records, magic, codec), MAX).unwrap();
            validate_batches(&batch, MAX as u32).unwrap();
            crate::compression::validate_compressed(&batch, MAX).unwrap();
            let header = BatchHeader::parse(&batch).unwrap();
            assert_eq!(header.codec(), codec.id(), "magic {magic} {codec}");
            assert_eq!(header.records_count, 4);
            let got = v2_records(&batch);
            for (i, (delta, ts, key, value)) in got.into_iter().enumerate() {
                let r = &records[i];
                assert_eq!(delta, i as i32);
                assert_eq!(ts, if magic == MAGIC_1 { r.timestamp } else { -1 });
                assert_eq!(key.as_deref(), r.key.as_deref());
                assert_eq!(value.as_deref(), r.value.as_deref());
            }
            let want_max = if magic == MAGIC_1 {
                1_700_000_000_003
            } else {
                -1
            };
            assert_eq!(header.max_timestamp, want_max);
        }
    }
}

/// Broken sets are refused with Kafka's codes, never panicking.
#[test]
fn broken_message_sets_are_refused() {
    let set = kp_set(&sample(2), MAGIC_1, Codec::None);
    let mut flipped = set.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(to_v2_batch(&flipped, MAX), Err(FormatError::Crc));
    assert_eq!(
        to_v2_batch(&set[..set.len() - 3], MAX),
        Err(FormatError::Truncated)
    );
    assert_eq!(to_v2_batch(&[], MAX), Err(FormatError::Empty));
    // A compressed message inside a compressed message.
    let inner = kp_set(&sample(2), MAGIC_1, Codec::Gzip);
    let mut value = Vec::new();
    compress(Codec::Gzip, &inner, None, &mut value);
    let mut nested = Vec::new();
    let wrapper = Message {
        offset: 0,
        magic: MAGIC_1,
        attributes: Codec::Gzip.id() as i8,
        timestamp: 0,
        key: None,
        value: Some(&value),
    };
    write_message(&mut nested, &wrapper);
    assert_eq!(to_v2_batch(&nested, MAX), Err(FormatError::Nested));
    // A bomb: more than the bound once decompressed.
    let big = kp_set(
        &[kp_record(0, 0, None, &"x".repeat(10_000))],
        MAGIC_1,
        Codec::Gzip,
    );
    let refused = to_v2_batch(&big, 1_000).unwrap_err();
    assert_eq!(refused.error_code(), crate::compression::CORRUPT_MESSAGE);
    for cut in 0..set.len() {
        let _ = to_v2_batch(&set[..cut], MAX);
    }
}

fn v2_at(base: i64, n: usize, ts: i64) -> Bytes {
    let values: Vec<String> = (0..n)
        .map(|i| format!("value-{}", base + i as i64))
        .collect();
    let specs: Vec<crate::record::build::RecordSpec<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (
                Some(&b"key"[..]),
                Some(v.as_bytes()),
                ts + i as i64,
                &[][..],
            )
        })
        .collect();
    build_batch(base, &specs)
}

/// Fetched v2 batches read back, by kafka-protocol's decoder, as messages
/// at the same offsets with the same keys, values and timestamps.
#[test]
fn v2_batches_down_convert() {
    let mut batches = v2_at(10, 3, 5_000).to_vec();
    batches.extend_from_slice(&v2_at(13, 2, 6_000));
    let bounds = Bounds {
        out_max: MAX,
        decompressed_max: MAX,
    };
    for magic in [MAGIC_0, MAGIC_1] {
        let set = from_v2_batches(&batches, magic, bounds).unwrap();
        let mut buf = Bytes::from(set);
        let mut records = Vec::new();
        for s in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
            records.extend(s.records);
        }
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [10, 11, 12, 13, 14]);
        assert_eq!(records[4].value.as_deref(), Some(&b"value-14"[..]));
        let ts = if magic == MAGIC_1 { 6_001 } else { -1 };
        assert_eq!(records[4].timestamp, ts);
    }

    // A trailing partial batch is left out; the bound keeps whole batches.
    let partial = &batches[..batches.len() - 5];
    let set = from_v2_batches(partial, MAGIC_1, bounds).unwrap();
    assert_eq!(Messages::new(&set).count(), 3);
    let tight = Bounds {
        out_max: 10,
        decompressed_max: MAX,
    };
    let set = from_v2_batches(&batches, MAGIC_1, tight).unwrap();
    assert_eq!(Messages::new(&set).count(), 3, "the first batch goes whole");
}

/// A compressed batch becomes one wrapper in its codec, inner offsets from
/// 0 in magic 1, the wrapper at the last offset.
#[test]
fn compressed_batch_down_converts_to_a_wrapper() {
    let plain = v2_at(20, 3, 7_000);
    let gzip = recompress_batch(&plain, Codec::Gzip, None, MAX).unwrap();
    let bounds = Bounds {
        out_max: MAX,
        decompressed_max: MAX,
    };
    for magic in [MAGIC_0, MAGIC_1] {
        let set = from_v2_batches(&gzip, magic, bounds).unwrap();
        let wrappers: Vec<_> = Messages::new(&set).map(Result::unwrap).collect();
        assert_eq!(wrappers.len(), 1);
        assert_eq!(wrappers[0].offset, 22);
        assert_eq!(wrappers[0].codec().unwrap(), Codec::Gzip);
        let inner = decompress(Codec::Gzip, wrappers[0].value.unwrap(), MAX).unwrap();
        let mut buf = Bytes::from(inner);
        let set = RecordBatchDecoder::decode_all(&mut buf).unwrap();
        let offsets: Vec<i64> = set
            .iter()
            .flat_map(|s| &s.records)
            .map(|r| r.offset)
            .collect();
        let want: &[i64] = if magic == MAGIC_1 {
            &[0, 1, 2]
        } else {
            &[20, 21, 22]
        };
        assert_eq!(offsets, want);
        let back = to_v2_batch(&set_bytes(&wrappers[0]), MAX).unwrap();
        assert_eq!(v2_records(&back).len(), 3, "and converts back up");
    }
}

fn set_bytes(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write_message(&mut out, m);
    out
}

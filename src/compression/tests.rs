//! Unit tests: codec framings, bombs, corrupt input, recompression.

use std::io::Write;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::record::build::{build_batch, build_simple_batch, HeaderSpec, RecordSpec};
use crate::record::*;

const MAX: usize = 4 << 20;
const GIB: usize = 1 << 30;

/// Deterministic bytes that compress somewhat, like real payloads.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 7 < 4 {
                b"sluice-"[i % 7]
            } else {
                x as u8
            }
        })
        .collect()
}

/// A batch with nulls, duplicate header keys and odd timestamps, whose
/// producer fields, leader epoch and attributes are set as a transactional
/// idempotent producer would.
fn rich_batch() -> Bytes {
    let dup: &[HeaderSpec<'_>] = &[("k", Some(b"1")), ("k", None), ("k", Some(b""))];
    let big = sample(100_000, 3);
    let specs: Vec<RecordSpec<'_>> = vec![
        (None, None, 1_000, &[]),
        (Some(b""), Some(b""), 999, dup),
        (Some(b"key"), Some(&big), -5, &[]),
        (Some(b"\x00\xff"), None, i64::from(i32::MAX) * 4, dup),
    ];
    let mut b = build_batch(40, &specs).to_vec();
    b[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&7i32.to_be_bytes());
    b[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&123_456i64.to_be_bytes());
    b[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&3i16.to_be_bytes());
    b[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&77i32.to_be_bytes());
    let attributes = ATTR_TRANSACTIONAL | ATTR_LOG_APPEND_TIME;
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    recompute_crc(&mut b);
    Bytes::from(b)
}

/// `batch` (uncompressed) with its records section replaced by `payload`
/// and its codec id set to `codec_id`; length and CRC fixed.
fn with_payload(batch: &[u8], codec_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = batch[..BATCH_HEADER_LEN].to_vec();
    b.extend_from_slice(payload);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
    let attributes = i16::from_be_bytes([b[ATTRIBUTES_OFFSET], b[ATTRIBUTES_OFFSET + 1]]);
    let attributes = (attributes & !ATTR_CODEC_MASK) | i16::from(codec_id);
    b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    recompute_crc(&mut b);
    b
}

fn compressed(codec: Codec, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress(codec, data, None, &mut out);
    out
}

/// Header fields that recompression must keep.
fn kept_fields(h: &BatchHeader) -> (i64, i32, i32, i64, i64, i64, i16, i32, i32, i16) {
    (
        h.base_offset,
        h.partition_leader_epoch,
        h.last_offset_delta,
        h.base_timestamp,
        h.max_timestamp,
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.records_count,
        h.attributes & !ATTR_CODEC_MASK,
    )
}

#[test]
fn codec_ids_names_and_attributes() {
    for codec in Codec::ALL {
        assert_eq!(Codec::from_id(codec.id()).unwrap(), codec);
        assert_eq!(Codec::from_name(&codec.to_string()), Some(codec));
        let attrs = codec.apply_to(ATTR_TRANSACTIONAL | 0x07);
        assert_eq!(Codec::from_attributes(attrs).unwrap(), codec);
        assert_eq!(attrs & !ATTR_CODEC_MASK, ATTR_TRANSACTIONAL);
    }
    for id in 5..=7 {
        let err = Codec::from_id(id).unwrap_err();
        assert_eq!(err, CompressionError::UnknownCodec(id));
        assert_eq!(err.error_code(), CORRUPT_MESSAGE);
    }
    assert_eq!(Codec::from_name("uncompressed"), Some(Codec::None));
    assert_eq!(
        TopicCompression::parse("producer"),
        Some(TopicCompression::Producer)
    );
    assert_eq!(
        TopicCompression::parse("uncompressed"),
        Some(TopicCompression::Codec(Codec::None))
    );
    assert_eq!(TopicCompression::parse("none"), None);
    assert_eq!(TopicCompression::parse("brotli"), None);
    assert_eq!(
        TopicCompression::Producer.stored_codec(Codec::Lz4),
        Codec::Lz4
    );
}

#[test]
fn levels_follow_kafka_ranges() {
    assert!(Codec::Gzip.is_valid_level(-1) && Codec::Gzip.is_valid_level(9));
    assert!(!Codec::Gzip.is_valid_level(0) && !Codec::Gzip.is_valid_level(10));
    assert!(Codec::Lz4.is_valid_level(17) && !Codec::Lz4.is_valid_level(18));
    assert!(Codec::Zstd.is_valid_level(-131_072) && Codec::Zstd.is_valid_level(22));
    assert!(!Codec::Zstd.is_valid_level(23) && !Codec::Snappy.is_valid_level(1));
    assert_eq!(
        Codec::Zstd.level_config_key(),
        Some("compression.zstd.level")
    );
    let levels = Levels {
        gzip: Some(1),
        lz4: None,
        zstd: Some(19),
    };
    assert_eq!(levels.for_codec(Codec::Zstd), Some(19));
    assert_eq!(levels.for_codec(Codec::Snappy), None);
    // Every level of every range, and a few outside, compresses readably.
    let data = sample(10_000, 1);
    for codec in [Codec::Gzip, Codec::Lz4, Codec::Zstd] {
        for level in [-1, 1, 9, 17, 22, 99, -131_072] {
            let mut out = Vec::new();
            compress(codec, &data, Some(level), &mut out);
            assert!(
                decompress(codec, &out, MAX).unwrap() == data,
                "{codec} {level}"
            );
        }
    }
}

#[test]
fn zstd_version_rules() {
    use crate::compression::{check_fetch_version, check_produce_version};
    let err = check_produce_version(Codec::Zstd, 6).unwrap_err();
    assert_eq!(err.error_code(), UNSUPPORTED_COMPRESSION_TYPE);
    check_produce_version(Codec::Zstd, 7).unwrap();
    check_produce_version(Codec::Lz4, 3).unwrap();
    let err = check_fetch_version(Codec::Zstd, 9).unwrap_err();
    assert_eq!(err.error_code(), UNSUPPORTED_COMPRESSION_TYPE);
    check_fetch_version(Codec::Zstd, 10).unwrap();
    check_fetch_version(Codec::Gzip, 4).unwrap();
}

#[test]
fn round_trip_each_codec() {
    for codec in Codec::ALL {
        for len in [0, 1, 100, 32 * 1024, 32 * 1024 + 1, 300_000] {
            let data = sample(len, len as u64);
            let out = compressed(codec, &data);
            assert!(
                decompress(codec, &out, MAX).unwrap() == data,
                "{codec} {len}"
            );
        }
    }
}

#[test]
fn decompress_bound_is_exact() {
    let data = sample(50_000, 9);
    for codec in Codec::ALL {
        let out = compressed(codec, &data);
        assert!(decompress(codec, &out, data.len()).unwrap() == data);
        assert_eq!(
            decompress(codec, &out, data.len() - 1).unwrap_err(),
            CompressionError::TooLarge {
                max: data.len() - 1
            },
            "{codec}"
        );
    }
}

#[test]
fn xerial_snappy_as_the_java_client_writes_it() {
    let data = sample(100_000, 5);
    // snappy-java: header, then [i32 BE length][raw block] per 32 KiB.
    let mut java = vec![
        0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
    ];
    for block in data.chunks(32 * 1024) {
        let raw = snap::raw::Encoder::new().compress_vec(block).unwrap();
        java.extend_from_slice(&(raw.len() as i32).to_be_bytes());
        java.extend_from_slice(&raw);
    }
    assert!(decompress(Codec::Snappy, &java, MAX).unwrap() == data);
    // Ours is byte-identical to that stream.
    assert!(compressed(Codec::Snappy, &data) == java);
    // A concatenated second stream (header again) is read on.
    let mut twice = java.clone();
    twice.extend_from_slice(&java);
    assert!(decompress(Codec::Snappy, &twice, MAX).unwrap() == [data.clone(), data].concat());
    // Truncations are corrupt, never a panic.
    for cut in [17, 19, 20, 100, java.len() - 1] {
        assert!(matches!(
            decompress(Codec::Snappy, &java[..cut], MAX),
            Err(CompressionError::Corrupt { .. })
        ));
    }
}

#[test]
fn raw_snappy_as_librdkafka_writes_it() {
    let batch = rich_batch();
    let raw = snappy::compress_raw(&batch[BATCH_HEADER_LEN..]);
    let b = with_payload(&batch, 2, &raw);
    validate_compressed(&b, MAX).unwrap();
    let back = recompress_batch(&b, Codec::None, None, MAX).unwrap();
    assert!(back == batch);
    // A raw block that claims 1 GiB is refused before anything is decoded.
    let mut claim = Vec::new();
    let mut n = GIB as u64;
    while n >= 0x80 {
        claim.push(n as u8 | 0x80);
        n >>= 7;
    }
    claim.push(n as u8);
    claim.extend_from_slice(&[0u8; 16]);
    let b = with_payload(&batch, 2, &claim);
    assert_eq!(
        validate_compressed(&b, MAX).unwrap_err(),
        CompressionError::TooLarge { max: MAX }
    );
}

#[test]
fn xxh32_vectors() {
    assert_eq!(lz4::xxh32(b"", 0), 0x02CC_5D05);
    assert_eq!(lz4::xxh32(b"a", 0), 0x550D_7456);
    assert_eq!(lz4::xxh32(b"abc", 0), 0x32D1_53FF);
    assert_eq!(
        lz4::xxh32(b"Nobody inspects the spammish repetition", 0),
        0xE229_3B2F
    );
}

#[test]
fn lz4_frames_as_kafka_writes_them() {
    let data = sample(200_000, 2);
    let frame = compressed(Codec::Lz4, &data);
    assert_eq!(&frame[..4], &[0x04, 0x22, 0x4d, 0x18]);
    // FLG: version 01, independent blocks, no checksums, no content size.
    assert_eq!(frame[4], 0x60);
    // BD: 64 KiB blocks.
    assert_eq!(frame[5], 0x40);
    assert_eq!(frame[6], (lz4::xxh32(&frame[4..6], 0) >> 8) as u8);
    assert!(decompress(Codec::Lz4, &frame, MAX).unwrap() == data);

    // Pre-KIP-57 clients hashed the magic too: accepted, as librdkafka does.
    let mut broken = frame.clone();
    lz4::break_header_checksum(&mut broken);
    assert_ne!(broken[6], frame[6]);
    assert!(decompress(Codec::Lz4, &broken, MAX).unwrap() == data);

    // Any other checksum is refused.
    let mut bad = frame.clone();
    bad[6] = bad[6].wrapping_add(1);
    if bad[6] == broken[6] {
        bad[6] = bad[6].wrapping_add(1);
    }
    assert!(matches!(
        decompress(Codec::Lz4, &bad, MAX),
        Err(CompressionError::Corrupt { .. })
    ));

    // Frames with a content size and checksums (other LZ4 writers) decode,
    // with the broken checksum too.
    let info = lz4_flex::frame::FrameInfo::new()
        .content_size(Some(data.len() as u64))
        .content_checksum(true)
        .block_checksums(true);
    let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
    enc.write_all(&data).unwrap();
    let mut sized = enc.finish().unwrap();
    assert!(decompress(Codec::Lz4, &sized, MAX).unwrap() == data);
    lz4::break_header_checksum(&mut sized);
    assert!(decompress(Codec::Lz4, &sized, MAX).unwrap() == data);

    // The legacy LZ4 format is not a frame Kafka accepts.
    let legacy = [0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0];
    assert!(decompress(Codec::Lz4, &legacy, MAX).is_err());
}

#[test]
fn frames_and_members_concatenate() {
    let data = sample(20_000, 4);
    for codec in [Codec::Gzip, Codec::Zstd, Codec::Lz4] {
        let one = compressed(codec, &data);
        let two = [one.clone(), one].concat();
        let out = decompress(codec, &two, MAX).unwrap();
        assert!(out == [data.clone(), data.clone()].concat(), "{codec}");
        // Trailing garbage after the last frame is corrupt, never ignored.
        let garbage = [compressed(codec, &data), vec![1, 2, 3, 4, 5, 6, 7, 8]].concat();
        assert!(decompress(codec, &garbage, MAX).is_err(), "{codec}");
    }
}

#[test]
fn zstd_window_beyond_the_limit_is_refused() {
    // Frame header: magic, FHD 0 (window descriptor follows), windowLog 31.
    let mut frame = 0xFD2F_B528u32.to_le_bytes().to_vec();
    frame.push(0x00);
    frame.push((31 - 10) << 3);
    frame.extend_from_slice(&[0x01, 0x00, 0x00]); // an empty last raw block
    assert!(matches!(
        decompress(Codec::Zstd, &frame, MAX),
        Err(CompressionError::Corrupt { .. })
    ));
}

/// Compressed streams of `GIB` zeros without spending time compressing
/// them: codecs whose decoders read concatenated frames get one 1 MiB
/// frame repeated.
fn zeros_bomb(codec: Codec, total: usize) -> Vec<u8> {
    let block = vec![0u8; 1 << 20];
    match codec {
        Codec::Snappy => {
            let mut one = Vec::new();
            snappy::compress_xerial(&vec![0u8; 32 * 1024], &mut one);
            let chunk = one[16..].to_vec();
            let mut out = one;
            for _ in 1..total / (32 * 1024) {
                out.extend_from_slice(&chunk);
            }
            out
        }
        _ => compressed(codec, &block).repeat(total / block.len()),
    }
}

#[test]
fn bomb_of_zeros_is_refused_quickly() {
    let batch = build_simple_batch(0, 3, 10);
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        // snappy cannot pack 1 GiB small (21:1 at best): 256 MiB for it.
        let total = if codec == Codec::Snappy { GIB / 4 } else { GIB };
        let bomb = zeros_bomb(codec, total);
        assert!(
            bomb.len() < 16 << 20,
            "{codec} bomb is {} bytes",
            bomb.len()
        );
        let b = with_payload(&batch, codec.id(), &bomb);
        // Zeros are empty records: refused at the first one.
        let err = validate_compressed(&b, MAX).unwrap_err();
        assert_eq!(err.error_code(), INVALID_RECORD, "{codec}: {err}");
        // Decoding it whole stops at the bound.
        let err = recompress_batch(&b, Codec::None, None, MAX).unwrap_err();
        assert_eq!(err, CompressionError::TooLarge { max: MAX }, "{codec}");
        assert_eq!(err.error_code(), CORRUPT_MESSAGE);
    }
}

#[test]
fn bomb_in_one_huge_record_is_refused_at_its_length() {
    // A record claiming a 1 GiB value, followed by zeros.
    let batch = build_simple_batch(0, 1, 10);
    let mut head = Vec::new();
    let varint = |out: &mut Vec<u8>, v: i64| {
        let mut raw = ((v << 1) ^ (v >> 63)) as u64;
        while raw >= 0x80 {
            out.push(raw as u8 | 0x80);
            raw >>= 7;
        }
        out.push(raw as u8);
    };
    varint(&mut head, GIB as i64 + 8);
    head.push(0); // attributes
    varint(&mut head, 0); // timestamp delta
    varint(&mut head, 0); // offset delta
    varint(&mut head, -1); // null key
    varint(&mut head, GIB as i64); // value length
    for codec in [Codec::Gzip, Codec::Lz4, Codec::Zstd] {
        let mut stream = compressed(codec, &head);
        stream.extend(zeros_bomb(codec, GIB));
        let b = with_payload(&batch, codec.id(), &stream);
        assert_eq!(
            validate_compressed(&b, MAX).unwrap_err(),
            CompressionError::TooLarge { max: MAX },
            "{codec}"
        );
    }
}

#[test]
fn many_valid_records_beyond_the_bound_are_refused() {
    // Valid records right up to the bound and past it.
    let n = 3_000;
    let value = vec![b'v'; 1_000];
    let specs: Vec<RecordSpec<'_>> = (0..n)
        .map(|_| (None, Some(&value[..]), 1, &[][..]))
        .collect();
    let batch = build_batch(0, &specs);
    let section_len = batch.len() - BATCH_HEADER_LEN;
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let b = recompress_batch(&batch, codec, None, MAX).unwrap();
        validate_compressed(&b, section_len).unwrap();
        assert_eq!(
            validate_compressed(&b, section_len - 1).unwrap_err(),
            CompressionError::TooLarge {
                max: section_len - 1
            },
            "{codec}"
        );
    }
}

#[test]
fn records_inside_must_match_the_header() {
    let three = build_simple_batch(0, 3, 10);
    let two = build_simple_batch(0, 2, 10);
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        // Header says 3, stream holds 2.
        let b = with_payload(
            &three,
            codec.id(),
            &compressed(codec, &two[BATCH_HEADER_LEN..]),
        );
        let err = validate_compressed(&b, MAX).unwrap_err();
        assert_eq!(err.error_code(), INVALID_RECORD, "{codec}: {err}");
        assert!(recompress_batch(&b, Codec::None, None, MAX).is_err());
        // Header says 2, stream holds 3.
        let b = with_payload(
            &two,
            codec.id(),
            &compressed(codec, &three[BATCH_HEADER_LEN..]),
        );
        let err = validate_compressed(&b, MAX).unwrap_err();
        assert_eq!(err.error_code(), INVALID_RECORD, "{codec}: {err}");
        // Offset deltas 0, 0, 2 instead of 0, 1, 2.
        let mut section = three[BATCH_HEADER_LEN..].to_vec();
        let second = 1 + (section[0] >> 1) as usize; // first record: 1-byte length
        let delta_at = second + 1 + 1 + 1; // length, attributes, timestamp delta
        assert_eq!(section[delta_at], 2); // zigzag(1)
        section[delta_at] = 0;
        let b = with_payload(&three, codec.id(), &compressed(codec, &section));
        assert_eq!(
            validate_compressed(&b, MAX).unwrap_err(),
            CompressionError::InvalidRecord("record offset deltas out of order")
        );
        // A partial record at the end.
        let b = with_payload(
            &three,
            codec.id(),
            &compressed(codec, &three[BATCH_HEADER_LEN..three.len() - 1]),
        );
        assert_eq!(
            validate_compressed(&b, MAX).unwrap_err().error_code(),
            INVALID_RECORD
        );
    }
}

#[test]
fn batch_level_errors() {
    let batch = rich_batch();
    let gz = recompress_batch(&batch, Codec::Gzip, None, MAX).unwrap();
    // Unknown codec ids.
    for id in 5..=7 {
        let b = with_payload(&gz, id, &gz[BATCH_HEADER_LEN..]);
        let err = validate_compressed(&b, MAX).unwrap_err();
        assert_eq!(err, CompressionError::UnknownCodec(id));
        assert!(recompress_batch(&b, Codec::None, None, MAX).is_err());
    }
    // Bad CRC, wrong length.
    let mut b = gz.to_vec();
    let last = b.len() - 1;
    b[last] ^= 1;
    assert_eq!(
        validate_compressed(&b, MAX).unwrap_err().error_code(),
        CORRUPT_MESSAGE
    );
    assert!(validate_compressed(&gz[..gz.len() - 1], MAX).is_err());
    assert!(validate_compressed(&[gz.to_vec(), vec![0]].concat(), MAX).is_err());
    assert_eq!(batch_codec(&gz).unwrap(), Codec::Gzip);
}

#[test]
fn corrupt_payloads_are_errors_not_panics() {
    // Small records with headers and nulls: many cases, quickly.
    let dup: &[HeaderSpec<'_>] = &[("k", Some(b"1")), ("k", None)];
    let specs: Vec<RecordSpec<'_>> = (0..40)
        .map(|i| {
            (
                Some(&b"key"[..]),
                (i % 5 != 0).then_some(&b"some value text"[..]),
                i,
                dup,
            )
        })
        .collect();
    let batch = build_batch(0, &specs);
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut rng = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let good = recompress_batch(&batch, codec, None, MAX).unwrap();
        let payload = &good[BATCH_HEADER_LEN..];
        // Every truncation of the compressed bytes.
        for cut in 0..payload.len() {
            let b = with_payload(&good, codec.id(), &payload[..cut]);
            let err = validate_compressed(&b, MAX)
                .expect_err(&format!("{codec} cut {cut} of {}", payload.len()));
            assert!(
                matches!(err.error_code(), CORRUPT_MESSAGE | INVALID_RECORD),
                "{codec} cut {cut}: {err}"
            );
        }
        // Random byte changes: any outcome but a panic (a change inside a
        // stored block may even decode to valid records).
        for _ in 0..200 {
            let mut p = payload.to_vec();
            for _ in 0..(rng() % 3 + 1) {
                let at = rng() as usize % p.len();
                p[at] = rng() as u8;
            }
            let b = with_payload(&good, codec.id(), &p);
            let _ = validate_compressed(&b, MAX);
            let _ = recompress_batch(&b, Codec::None, None, MAX);
        }
        // Garbage in the codec's name.
        let b = with_payload(&good, codec.id(), b"definitely not compressed");
        assert!(validate_compressed(&b, MAX).is_err(), "{codec}");
    }
}

#[test]
fn recompress_every_pair_keeps_every_field() {
    let original = rich_batch();
    let original_header = BatchHeader::parse(&original).unwrap();
    for from in Codec::ALL {
        let source = recompress_batch(&original, from, None, MAX).unwrap();
        for to in Codec::ALL {
            let out = recompress_batch(&source, to, Some(1), MAX).unwrap();
            let h = BatchHeader::parse(&out).unwrap();
            assert_eq!(
                kept_fields(&h),
                kept_fields(&original_header),
                "{from}->{to}"
            );
            assert_eq!(h.codec(), to.id());
            assert_eq!(h.total_len(), out.len());
            assert_eq!(h.crc, compute_crc(&out));
            validate_batches(&out, u32::MAX).unwrap();
            validate_compressed(&out, MAX).unwrap();
            // The records are the original bytes.
            let section = decompress(to, &out[BATCH_HEADER_LEN..], MAX).unwrap();
            assert!(section == original[BATCH_HEADER_LEN..], "{from}->{to}");
            // And back to uncompressed is the original batch, byte for byte.
            assert!(recompress_batch(&out, Codec::None, None, MAX).unwrap() == original);
        }
    }
}

#[test]
fn prepare_produce_stores_as_sent_or_rebuilds() {
    let plain = build_simple_batch(0, 10, 10);
    let lz4 = recompress_batch(&plain, Codec::Lz4, None, MAX).unwrap();
    let policy = |topic, api_version| ProducePolicy {
        topic,
        levels: Levels::default(),
        decompressed_bytes_max: MAX,
        api_version,
        timestamps: None,
        now_ms: 0,
    };
    // producer: the very same bytes, no copy.
    let out = prepare_produce(&lz4, u32::MAX, &policy(TopicCompression::Producer, 9)).unwrap();
    assert_eq!(out.bytes().as_ptr(), lz4.as_ptr());
    // Same codec as the topic: no copy either.
    let same = policy(TopicCompression::Codec(Codec::Lz4), 9);
    assert_eq!(
        prepare_produce(&lz4, u32::MAX, &same)
            .unwrap()
            .bytes()
            .as_ptr(),
        lz4.as_ptr()
    );
    // Another codec: rebuilt, every batch of a concatenation.
    let two = Bytes::from([plain.to_vec(), lz4.to_vec()].concat());
    let zstd = policy(TopicCompression::Codec(Codec::Zstd), 9);
    let out = prepare_produce(&two, u32::MAX, &zstd).unwrap();
    let infos = validate_batches(out.bytes(), u32::MAX).unwrap();
    assert_eq!(infos, out.infos(), "what prepare_produce says it validated");
    assert_eq!(infos.len(), 2);
    for info in &infos {
        assert_eq!(
            Codec::from_attributes(info.attributes).unwrap(),
            Codec::Zstd
        );
    }
    // zstd before Produce v7, from the producer or not.
    let zstd_batch = recompress_batch(&plain, Codec::Zstd, None, MAX).unwrap();
    let err = prepare_produce(
        &zstd_batch,
        u32::MAX,
        &policy(TopicCompression::Producer, 6),
    )
    .unwrap_err();
    assert_eq!(err.error_code(), UNSUPPORTED_COMPRESSION_TYPE);
    // Corrupt records in a stored-as-sent batch are caught.
    let bad = with_payload(&lz4, 3, &compressed(Codec::Lz4, b"\x00\x00"));
    let err = prepare_produce(
        &Bytes::from(bad),
        u32::MAX,
        &policy(TopicCompression::Producer, 9),
    )
    .unwrap_err();
    assert_eq!(err.error_code(), INVALID_RECORD);
    // A rebuilt batch over max.message.bytes is too large.
    let big = build_batch(0, &[(None, Some(&sample(10_000, 8)[..]), 1, &[])]);
    let gz = recompress_batch(&big, Codec::Gzip, None, MAX).unwrap();
    let none = policy(TopicCompression::Codec(Codec::None), 9);
    let err = prepare_produce(&gz, gz.len() as u32 + 100, &none).unwrap_err();
    assert_eq!(err.error_code(), MESSAGE_TOO_LARGE);
}

#[test]
fn keyless_records_are_found_by_index_across_batches() {
    let k = Some(b"k".as_slice());
    let v = Some(b"v".as_slice());
    // Records 0..2: keyed, keyless (gzip).
    let first = build_batch(0, &[(k, v, 1, &[]), (None, v, 1, &[])]);
    let first = recompress_batch(&first, Codec::Gzip, None, MAX).unwrap();
    // Records 2..4: a control batch, whose records count but never refuse.
    let mut control = build_batch(0, &[(k, v, 1, &[]), (k, v, 1, &[])]).to_vec();
    let attributes =
        i16::from_be_bytes([control[ATTRIBUTES_OFFSET], control[ATTRIBUTES_OFFSET + 1]]);
    control[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2]
        .copy_from_slice(&(attributes | ATTR_CONTROL).to_be_bytes());
    recompute_crc(&mut control);
    // Records 4..7: keyless, keyed, keyless.
    let last = build_batch(
        0,
        &[(None, v, 1, &[]), (k, v, 1, &[]), (None, None, 1, &[])],
    );
    let records = Bytes::from([&first[..], &control, &last[..]].concat());
    let all = keyless_records(&records, MAX, 10).unwrap();
    assert_eq!((all.count, all.indexes), (3, vec![1, 4, 6]));
    let bounded = keyless_records(&records, MAX, 2).unwrap();
    assert_eq!((bounded.count, bounded.indexes), (3, vec![1, 4]));
    let keyed = build_batch(0, &[(k, v, 1, &[])]);
    assert_eq!(
        keyless_records(&keyed, MAX, 10).unwrap(),
        RefusedRecords::default()
    );
}

/// Record timestamps out of the topic's range are refused whether the
/// batch is compressed or not, and a record below its batch's base
/// timestamp is caught too; records without a timestamp pass.
#[test]
fn prepare_produce_refuses_timestamps_out_of_range() {
    const NOW: i64 = 1_000_000;
    let bounds = TimestampBounds {
        before_ms: 1_000,
        after_ms: 500,
    };
    let policy = |timestamps| ProducePolicy {
        topic: TopicCompression::Producer,
        levels: Levels::default(),
        decompressed_bytes_max: MAX,
        api_version: 9,
        timestamps,
        now_ms: NOW,
    };
    let (k, v): (Option<&[u8]>, Option<&[u8]>) = (Some(b"k"), Some(b"v"));
    let batch = |timestamps: &[i64]| {
        let specs: Vec<RecordSpec<'_>> = timestamps.iter().map(|&ts| (k, v, ts, &[][..])).collect();
        build_batch(0, &specs)
    };
    let bounded = policy(Some(bounds));
    let within = batch(&[NOW - 1_000, NOW, NOW + 500]);
    let too_old_later = batch(&[NOW, NOW - 1_001]);
    let too_new = batch(&[NOW + 501]);
    let unstamped = batch(&[-1, -1]);
    for plain in [&within, &unstamped] {
        for codec in [Codec::None, Codec::Zstd] {
            let b = recompress_batch(plain, codec, None, MAX).unwrap();
            assert!(prepare_produce(&b, u32::MAX, &bounded).is_ok(), "{codec:?}");
        }
    }
    for (plain, refused_index) in [(&too_old_later, 1), (&too_new, 0)] {
        for codec in [Codec::None, Codec::Lz4] {
            let b = recompress_batch(plain, codec, None, MAX).unwrap();
            assert_eq!(
                prepare_produce(&b, u32::MAX, &bounded).unwrap_err(),
                CompressionError::InvalidTimestamp,
                "{codec:?}"
            );
            let refused = out_of_range_timestamps(&b, bounds, &bounded, 10).unwrap();
            assert_eq!((refused.count, refused.indexes), (1, vec![refused_index]));
            assert!(prepare_produce(&b, u32::MAX, &policy(None)).is_ok());
        }
    }
    // A topic that recompresses checks what its rebuild walked.
    let recompressing = ProducePolicy {
        topic: TopicCompression::Codec(Codec::Zstd),
        ..bounded
    };
    let lz4 = |plain: &Bytes| recompress_batch(plain, Codec::Lz4, None, MAX).unwrap();
    assert!(prepare_produce(&lz4(&within), u32::MAX, &recompressing).is_ok());
    assert_eq!(
        prepare_produce(&lz4(&too_old_later), u32::MAX, &recompressing).unwrap_err(),
        CompressionError::InvalidTimestamp
    );
    // Indexes count over every batch of the partition's records.
    let two = Bytes::from([&within[..], &too_new[..]].concat());
    let refused = out_of_range_timestamps(&two, bounds, &bounded, 10).unwrap();
    assert_eq!((refused.count, refused.indexes), (1, vec![3]));
    assert_eq!(
        CompressionError::InvalidTimestamp.error_code(),
        INVALID_TIMESTAMP
    );
}

/// One record to build in property tests: key, value, timestamp, headers.
type OwnedRecord = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    i64,
    Vec<(String, Option<Vec<u8>>)>,
);

fn record_strategy() -> impl Strategy<Value = OwnedRecord> {
    let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300));
    let header = (
        proptest::sample::select(vec!["a", "b", "trace-id", ""]).prop_map(str::to_string),
        bytes(),
    );
    (
        bytes(),
        bytes(),
        -1_000_000i64..1_000_000_000_000,
        proptest::collection::vec(header, 0..4),
    )
}

fn codec_strategy() -> impl Strategy<Value = Codec> {
    proptest::sample::select(Codec::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn recompress_round_trips(
        records in proptest::collection::vec(record_strategy(), 1..40),
        from in codec_strategy(),
        to in codec_strategy(),
    ) {
        let headers: Vec<Vec<HeaderSpec<'_>>> = records
            .iter()
            .map(|r| r.3.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect())
            .collect();
        let specs: Vec<RecordSpec<'_>> = records
            .iter()
            .zip(&headers)
            .map(|(r, h)| (r.0.as_deref(), r.1.as_deref(), r.2, &h[..]))
            .collect();
        let original = build_batch(5, &specs);
        let source = recompress_batch(&original, from, None, MAX).unwrap();
        validate_compressed(&source, MAX).unwrap();
        let target = recompress_batch(&source, to, None, MAX).unwrap();
        validate_compressed(&target, MAX).unwrap();
        prop_assert_eq!(
            kept_fields(&BatchHeader::parse(&target).unwrap()),
            kept_fields(&BatchHeader::parse(&original).unwrap())
        );
        let back = recompress_batch(&target, Codec::None, None, MAX).unwrap();
        prop_assert_eq!(back, original);
    }
}

//! Bounded decompression per codec. The first input byte picks the codec
//! (bits 0-1: gzip, snappy, lz4, zstd), the bound (bits 2-5: 1 B .. 32 KiB)
//! and the mode (bits 6-7):
//!
//! - 0, 1: the rest is a compressed stream, given to `compression::decompress`
//!   (snappy: raw or xerial, lz4: frame format). It must never yield more
//!   than the bound; what it yields must compress and come back identical.
//! - 2, 3: the rest is a batch's records section, uncompressed. The harness
//!   compresses it with the codec, wraps it in a v2 batch (recordsCount from
//!   the second byte, CRC correct) and runs the produce path over it:
//!   `validate_compressed`, then `prepare_produce` into the codec mode 3
//!   names (bits 2-4 of the second byte), so the record walk over
//!   decompressed bytes and recompression see well-formed streams.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::compression::{
    compress, decompress, prepare_produce, validate_compressed, Codec, CompressionError, Levels,
    ProducePolicy, TopicCompression, DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT,
};
use sluice::record::{
    recompute_crc, validate_batches, ATTRIBUTES_OFFSET, BATCH_HEADER_LEN, BATCH_LENGTH_OFFSET,
    LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD, MAGIC_OFFSET, MAGIC_V2, RECORDS_COUNT_OFFSET,
};

const CODECS: [Codec; 4] = [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];
/// The produce path's batch bound for the batch mode: well above the
/// 64 KiB inputs libFuzzer makes by default.
const BATCH_BYTES_MAX: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let codec = CODECS[usize::from(mode & 3)];
    let max = 1usize << ((mode >> 2) & 15);
    if mode >> 6 < 2 {
        stream(codec, rest, max);
    } else if let Some((&shape, section)) = rest.split_first() {
        let target = (mode >> 6 == 3).then(|| Codec::ALL[usize::from(shape >> 2) % 5]);
        batch(codec, i32::from(shape & 3) + 1, section, max, target);
    }
});

fn stream(codec: Codec, compressed: &[u8], max: usize) {
    match decompress(codec, compressed, max) {
        Ok(out) => {
            assert!(out.len() <= max, "{codec} yielded {} > {max}", out.len());
            let mut again = Vec::new();
            compress(codec, &out, None, &mut again);
            assert_eq!(
                decompress(codec, &again, max).as_deref(),
                Ok(out.as_slice())
            );
        }
        Err(CompressionError::TooLarge { max: m }) => assert_eq!(m, max),
        Err(_) => {}
    }
}

fn batch(codec: Codec, count: i32, section: &[u8], max: usize, target: Option<Codec>) {
    let mut batch = vec![0u8; BATCH_HEADER_LEN];
    compress(codec, section, None, &mut batch);
    let batch_length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[BATCH_LENGTH_OFFSET..][..4].copy_from_slice(&batch_length.to_be_bytes());
    batch[MAGIC_OFFSET] = MAGIC_V2 as u8;
    batch[ATTRIBUTES_OFFSET..][..2].copy_from_slice(&codec.apply_to(0).to_be_bytes());
    batch[LAST_OFFSET_DELTA_OFFSET..][..4].copy_from_slice(&(count - 1).to_be_bytes());
    batch[RECORDS_COUNT_OFFSET..][..4].copy_from_slice(&count.to_be_bytes());
    recompute_crc(&mut batch);
    let valid = validate_compressed(&batch, max);
    if section.len() <= max {
        // Records that fit the bound pass or fail as under the default bound
        // (the error may differ: a record claiming more than the bound is
        // refused as a bomb before its bytes are read).
        let default = validate_compressed(&batch, DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT);
        assert_eq!(valid.is_ok(), default.is_ok(), "{valid:?} vs {default:?}");
    }
    let Some(target) = target else {
        return;
    };
    let policy = ProducePolicy {
        topic: TopicCompression::Codec(target),
        levels: Levels::default(),
        decompressed_bytes_max: max,
        api_version: 9,
    };
    let records = Bytes::from(batch);
    match prepare_produce(&records, BATCH_BYTES_MAX, &policy) {
        Ok(stored) => {
            assert!(
                valid.is_ok(),
                "prepare_produce stored a batch validation refuses"
            );
            let infos =
                validate_batches(stored.bytes(), BATCH_BYTES_MAX).expect("stored batch valid");
            assert_eq!(infos, stored.infos());
            assert_eq!(infos.len(), 1);
            assert_eq!(Codec::from_attributes(infos[0].attributes), Ok(target));
            assert_eq!(infos[0].records_count, count);
            if target != Codec::None {
                assert_eq!(validate_compressed(stored.bytes(), max), Ok(()));
            }
        }
        Err(e) => assert!(valid.is_err(), "prepare_produce refused a valid batch: {e}"),
    }
}

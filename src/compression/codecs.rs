//! One entry point per direction over the four codecs: [`compress`] appends
//! a compressed stream to a buffer; [`with_reader`] lends a bounded reader of
//! the decompressed bytes.

use std::cell::RefCell;
use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::bounded::{map_io, Bounded};
use super::{lz4, snappy, Codec, CompressionError};

/// zstd's decoder may allocate its window (up to 2^windowLog bytes) before
/// producing output. Frames that need more than this are refused.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// The window every zstd level up to 19 fits in when streaming (8 MiB).
const ZSTD_WINDOW_LOG_FLOOR: u32 = 23;

thread_local! {
    /// One zstd compression context per shard thread, with its level:
    /// contexts are costly to create and are reused across batches.
    static ZSTD_CCTX: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static ZSTD_DCTX: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { RefCell::new(None) };
}

/// Appends `data` compressed with `codec` (at `level`, or the codec's
/// default; out-of-range levels are clamped) to `out`. `Codec::None`
/// appends `data` as is.
pub fn compress(codec: Codec, data: &[u8], level: Option<i32>, out: &mut Vec<u8>) {
    match codec {
        Codec::None => out.extend_from_slice(data),
        Codec::Gzip => {
            let level = match level {
                Some(l) if (1..=9).contains(&l) => l as u32,
                Some(l) if l > 9 => 9,
                _ => 6,
            };
            let mut encoder = GzEncoder::new(out, flate2::Compression::new(level));
            encoder
                .write_all(data)
                .expect("gzip writes to a Vec cannot fail");
            encoder.finish().expect("gzip writes to a Vec cannot fail");
        }
        Codec::Snappy => snappy::compress_xerial(data, out),
        Codec::Lz4 => lz4::compress(data, out),
        Codec::Zstd => zstd_compress(data, level.unwrap_or(3).clamp(-131_072, 22), out),
    }
}

fn zstd_compress(data: &[u8], level: i32, out: &mut Vec<u8>) {
    ZSTD_CCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let compressor =
                zstd::bulk::Compressor::new(level).expect("zstd context for a clamped level");
            *slot = Some((level, compressor));
        }
        let (_, compressor) = slot.as_mut().expect("set above");
        let bound = zstd::zstd_safe::compress_bound(data.len());
        let mut frame = Vec::with_capacity(bound);
        compressor
            .compress_to_buffer(data, &mut frame)
            .expect("zstd output sized by compress_bound");
        out.extend_from_slice(&frame);
    })
}

/// The zstd window log the decoder allows when at most `max` bytes may come
/// out: enough for every stream an honest producer writes for that much
/// data, never above [`ZSTD_WINDOW_LOG_MAX`].
fn zstd_window_log(max: usize) -> u32 {
    let needed = usize::BITS - max.saturating_sub(1).leading_zeros();
    needed.clamp(ZSTD_WINDOW_LOG_FLOOR, ZSTD_WINDOW_LOG_MAX)
}

/// Calls `f` with a reader of `data` decompressed with `codec` that yields
/// at most `max` bytes; more is [`CompressionError::TooLarge`] and a bad
/// stream [`CompressionError::Corrupt`]. Decoders hold a bounded working
/// set (one snappy block, one LZ4 block, the zstd window, gzip's 32 KiB),
/// except raw (unframed) snappy, which is decoded whole after its declared
/// length is checked against `max`.
pub fn with_reader<T>(
    codec: Codec,
    data: &[u8],
    max: usize,
    f: impl FnOnce(&mut dyn Read) -> Result<T, CompressionError>,
) -> Result<T, CompressionError> {
    match codec {
        Codec::None => f(&mut Bounded::new(data, max)),
        Codec::Gzip => f(&mut Bounded::new(MultiGzDecoder::new(data), max)),
        Codec::Snappy => f(&mut Bounded::new(snappy::reader(data, max)?, max)),
        Codec::Lz4 => f(&mut Bounded::new(lz4::reader(data)?, max)),
        Codec::Zstd => ZSTD_DCTX.with(|cell| {
            let mut slot = cell.borrow_mut();
            let dctx = slot.get_or_insert_with(zstd::zstd_safe::DCtx::create);
            let mut decoder = zstd::stream::read::Decoder::with_context(data, dctx);
            decoder
                .window_log_max(zstd_window_log(max))
                .map_err(|e| CompressionError::corrupt(Codec::Zstd, e))?;
            // A named local: it must drop before `slot`, which it borrows.
            let mut reader = Bounded::new(decoder, max);
            f(&mut reader)
        }),
    }
}

/// `data` decompressed whole, at most `max` bytes.
pub fn decompress(codec: Codec, data: &[u8], max: usize) -> Result<Vec<u8>, CompressionError> {
    with_reader(codec, data, max, |reader| {
        // Typical ratios are below 8; the Vec grows past that if needed.
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max));
        reader
            .read_to_end(&mut out)
            .map_err(|e| map_io(codec, e, max))?;
        Ok(out)
    })
}

//! Whole-batch compression: the four codecs Kafka clients use, in the exact
//! framings they write, with bounded decompression.
//!
//! `compression` knows nothing about shards, files or the network: it turns
//! one v2 batch's bytes into a verdict ([`validate_compressed`]) or into a
//! new batch in another codec ([`recompress_batch`]). The produce path calls
//! [`prepare_produce`] on the connection's shard, before the batch goes to
//! its partition's owner, so the owner only appends.
//!
//! # Invariants
//!
//! - Nothing decodes more than the caller's `max_decompressed` bytes: a
//!   decompression bomb is [`CompressionError::TooLarge`], never an
//!   allocation. Decoders hold a bounded working set.
//! - Records are never re-encoded: recompression copies the decompressed
//!   record bytes into the new codec, so duplicate header keys, null keys
//!   and values and every varint survive exactly.
//! - A rebuilt batch differs from its source only in the attributes' codec
//!   bits, batchLength, the CRC and the compressed bytes.
//!
//! # Layout
//!
//! - `codec`: [`Codec`], [`TopicCompression`], [`Levels`], version rules.
//! - `codecs`: [`compress`] / [`with_reader`] / [`decompress`] per codec.
//! - `snappy`, `lz4`: the xerial framing and the LZ4 frame header rules.
//! - `bounded`: the reader that turns a bomb into an error.
//! - `walk`: record framing and count checks over decompressed bytes.
//! - `batch`: [`validate_compressed`], [`recompress_batch`], [`prepare_produce`].

mod batch;
mod bounded;
mod codec;
mod codecs;
mod error;
mod lz4;
mod snappy;
mod walk;

#[cfg(test)]
mod tests;

pub use batch::{
    batch_codec, keyless_records, out_of_range_timestamps, prepare_produce, recompress_batch,
    validate_compressed, ProducePolicy, RefusedRecords, TimestampBounds,
};
pub use codec::{
    check_fetch_version, check_produce_version, Codec, Levels, TopicCompression,
    FETCH_ZSTD_VERSION_MIN, PRODUCE_ZSTD_VERSION_MIN,
};
pub use codecs::{compress, decompress, with_reader, ZSTD_WINDOW_LOG_MAX};
pub use error::{
    CompressionError, CORRUPT_MESSAGE, INVALID_RECORD, INVALID_TIMESTAMP, MESSAGE_TOO_LARGE,
    UNSUPPORTED_COMPRESSION_TYPE,
};

/// A default for the broker's bound on one batch's decompressed records:
/// far above what clients send (librdkafka's batch.size is 1 MB, Kafka's
/// max.message.bytes 1 MiB), far below what would hurt a shard.
pub const DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT: usize = 64 * 1024 * 1024;

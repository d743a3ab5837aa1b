//! Why a compressed batch was refused, and the Kafka error code for it.

use super::Codec;
use crate::record::RecordError;

/// Kafka's CORRUPT_MESSAGE.
pub const CORRUPT_MESSAGE: i16 = 2;
/// Kafka's MESSAGE_TOO_LARGE.
pub const MESSAGE_TOO_LARGE: i16 = 10;
/// Kafka's UNSUPPORTED_COMPRESSION_TYPE.
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
/// Kafka's INVALID_RECORD.
pub const INVALID_RECORD: i16 = 87;
/// Kafka's INVALID_TIMESTAMP.
pub const INVALID_TIMESTAMP: i16 = 32;

/// A batch the broker will not store. Every variant is bad input, never a
/// broker fault: see [`CompressionError::error_code`] for the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The batch header or CRC is wrong (from [`crate::record`]).
    #[error(transparent)]
    Batch(#[from] RecordError),
    /// Attributes bits 0-2 hold 5, 6 or 7.
    #[error("unknown compression codec id {0}")]
    UnknownCodec(u8),
    /// zstd on a Produce < v7 or a Fetch < v10.
    #[error("{codec} is not supported at API version {api_version}")]
    Unsupported { codec: Codec, api_version: i16 },
    /// The compressed bytes do not decode in the batch's codec.
    #[error("corrupt {codec} payload: {reason}")]
    Corrupt { codec: Codec, reason: String },
    /// The batch decompresses to more than the allowed bytes: a
    /// decompression bomb or a batch beyond the broker's bound.
    #[error("batch decompresses to more than {max} bytes")]
    TooLarge { max: usize },
    /// The decompressed bytes are not recordsCount well-formed records with
    /// increasing offset deltas.
    #[error("invalid records in compressed batch: {0}")]
    InvalidRecord(&'static str),
    /// A record's CreateTime is further from the broker's clock than the
    /// topic allows (`message.timestamp.before.max.ms`, `.after.max.ms`).
    #[error("a record timestamp is out of the topic's range")]
    InvalidTimestamp,
}

impl CompressionError {
    /// The Kafka error code a produce of this batch is answered with.
    pub fn error_code(&self) -> i16 {
        match self {
            CompressionError::Batch(RecordError::TooLarge { .. }) => MESSAGE_TOO_LARGE,
            CompressionError::Batch(RecordError::Corrupt(_)) => CORRUPT_MESSAGE,
            CompressionError::UnknownCodec(_) => CORRUPT_MESSAGE,
            CompressionError::Unsupported { .. } => UNSUPPORTED_COMPRESSION_TYPE,
            CompressionError::Corrupt { .. } => CORRUPT_MESSAGE,
            CompressionError::TooLarge { .. } => CORRUPT_MESSAGE,
            CompressionError::InvalidRecord(_) => INVALID_RECORD,
            CompressionError::InvalidTimestamp => INVALID_TIMESTAMP,
        }
    }

    pub(crate) fn corrupt(codec: Codec, reason: impl ToString) -> CompressionError {
        CompressionError::Corrupt {
            codec,
            reason: reason.to_string(),
        }
    }
}

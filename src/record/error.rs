//! Errors from parsing and validating record batches.

/// Why a record batch was rejected. Maps to CORRUPT_MESSAGE and
/// MESSAGE_TOO_LARGE at the Kafka edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("corrupt record batch: {0}")]
    Corrupt(&'static str),
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge { size: u64, max: u64 },
}

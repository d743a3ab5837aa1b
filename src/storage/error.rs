//! Errors from the storage layer. Each maps to one Kafka error code at the
//! edge (CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, OFFSET_OUT_OF_RANGE,
//! KAFKA_STORAGE_ERROR).

use crate::record::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A produced batch failed validation, or bytes on disk are not a valid batch.
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge { size: u64, max: u64 },
    #[error("offset {offset} is outside the log [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Producer(#[from] super::ProducerError),
    /// The log was truncated or closed while a prepared append was being
    /// written: the append is void (a leader that stepped down).
    #[error("the log moved on while the append was written")]
    Superseded,
    /// The directory holds another topic's log (one deleted and created
    /// again under the name while this broker was down).
    #[error("{dir} belongs to topic id {found}, not {expected}")]
    OtherOwner {
        dir: std::path::PathBuf,
        found: String,
        expected: String,
    },
}

impl From<RecordError> for StorageError {
    fn from(err: RecordError) -> Self {
        match err {
            RecordError::Corrupt(reason) => StorageError::Corrupt(reason.to_string()),
            RecordError::TooLarge { size, max } => StorageError::MessageTooLarge { size, max },
        }
    }
}

impl StorageError {
    /// The filesystem is full: writes fail until space returns, reads go on.
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, StorageError::Io(e) if super::io::is_out_of_space(e))
    }
}

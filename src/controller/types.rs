//! openraft's type configuration for the metadata quorum, and the small
//! checked-file format the quorum's state files share.

use std::io::Cursor;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::records::{MetadataRecord, RecordError, RecordOutcome};

/// What applying a log entry answered; a refusal is a result too, the
/// same on every node, not a Raft failure.
pub type Applied = Result<RecordOutcome, RecordError>;

openraft::declare_raft_types!(
    /// The quorum's Raft types: records in, outcomes out, node ids are
    /// Kafka node ids (non-negative i32) widened to u64.
    pub TypeConfig:
        D = MetadataRecord,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type Vote = openraft::Vote<u64>;
pub type StorageError = openraft::StorageError<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;

/// Bytes of the CRC-32C that heads every checked file and log entry.
pub const CRC_BYTES: usize = 4;

/// `crc32c(body) ++ body`, body the postcard encoding of `value`.
pub fn encode_checked<T: Serialize>(value: &T) -> Vec<u8> {
    let body = postcard::to_allocvec(value).expect("metadata types always encode");
    let mut out = Vec::with_capacity(CRC_BYTES + body.len());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The inverse of `encode_checked`; a CRC mismatch is `InvalidData`.
pub fn decode_checked<T: DeserializeOwned>(bytes: &[u8]) -> std::io::Result<T> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    if bytes.len() < CRC_BYTES {
        return Err(invalid(format!("{} bytes is too short", bytes.len())));
    }
    let (crc, body) = bytes.split_at(CRC_BYTES);
    let expected = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    if crc32c::crc32c(body) != expected {
        return Err(invalid("CRC mismatch".into()));
    }
    postcard::from_bytes(body).map_err(|e| invalid(e.to_string()))
}

/// A checked file written by write-fsync-rename, so a crash leaves the old
/// or the new value, never half of one.
pub fn write_checked_file<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    crate::metadata::write_atomically(path, &encode_checked(value))
}

/// `None` when the file does not exist.
pub fn read_checked_file<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => decode_checked(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

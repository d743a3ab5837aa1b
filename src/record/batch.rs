//! The 61-byte v2 batch header: layout constants, parsing and the CRC.
//!
//! All fields are big-endian. The CRC-32C covers bytes `ATTRIBUTES_OFFSET..`
//! to the end of the batch, so baseOffset, batchLength and
//! partitionLeaderEpoch can be rewritten without recomputing it.

use bytes::BytesMut;

use super::RecordError;

pub const BASE_OFFSET_OFFSET: usize = 0;
pub const BATCH_LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORDS_COUNT_OFFSET: usize = 57;
pub const BATCH_HEADER_LEN: usize = 61;
/// baseOffset + batchLength: the bytes not counted by batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// The smallest legal batchLength: a header with no records.
pub const BATCH_LENGTH_MIN: usize = BATCH_HEADER_LEN - LOG_OVERHEAD;
/// The only batch format Sluice accepts.
pub const MAGIC_V2: i8 = 2;

/// attributes bits 0-2: compression codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
pub const ATTR_CODEC_MASK: i16 = 0x07;
/// The highest codec id Kafka defines (zstd).
pub const CODEC_MAX: u8 = 4;
/// attributes bit 3: timestamps are LogAppendTime (maxTimestamp holds it).
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

const _: () = assert!(BATCH_LENGTH_OFFSET == BASE_OFFSET_OFFSET + 8);
const _: () = assert!(PARTITION_LEADER_EPOCH_OFFSET == BATCH_LENGTH_OFFSET + 4);
const _: () = assert!(LOG_OVERHEAD == PARTITION_LEADER_EPOCH_OFFSET);
const _: () = assert!(MAGIC_OFFSET == PARTITION_LEADER_EPOCH_OFFSET + 4);
const _: () = assert!(CRC_OFFSET == MAGIC_OFFSET + 1);
const _: () = assert!(ATTRIBUTES_OFFSET == CRC_OFFSET + 4);
const _: () = assert!(LAST_OFFSET_DELTA_OFFSET == ATTRIBUTES_OFFSET + 2);
const _: () = assert!(BASE_TIMESTAMP_OFFSET == LAST_OFFSET_DELTA_OFFSET + 4);
const _: () = assert!(MAX_TIMESTAMP_OFFSET == BASE_TIMESTAMP_OFFSET + 8);
const _: () = assert!(PRODUCER_ID_OFFSET == MAX_TIMESTAMP_OFFSET + 8);
const _: () = assert!(PRODUCER_EPOCH_OFFSET == PRODUCER_ID_OFFSET + 8);
const _: () = assert!(BASE_SEQUENCE_OFFSET == PRODUCER_EPOCH_OFFSET + 2);
const _: () = assert!(RECORDS_COUNT_OFFSET == BASE_SEQUENCE_OFFSET + 4);
const _: () = assert!(BATCH_HEADER_LEN == RECORDS_COUNT_OFFSET + 4);
const _: () = assert!(BATCH_HEADER_LEN == 61 && BATCH_LENGTH_MIN == 49);

/// A parsed v2 batch header. Parsing checks only that the bytes are present
/// and that batchLength is at least [`BATCH_LENGTH_MIN`]; see [`check_header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

impl BatchHeader {
    /// Parses the first [`BATCH_HEADER_LEN`] bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, RecordError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(RecordError::Corrupt("truncated batch header"));
        }
        let header = BatchHeader {
            base_offset: i64::from_be_bytes(be(buf, BASE_OFFSET_OFFSET)),
            batch_length: i32::from_be_bytes(be(buf, BATCH_LENGTH_OFFSET)),
            partition_leader_epoch: i32::from_be_bytes(be(buf, PARTITION_LEADER_EPOCH_OFFSET)),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: u32::from_be_bytes(be(buf, CRC_OFFSET)),
            attributes: i16::from_be_bytes(be(buf, ATTRIBUTES_OFFSET)),
            last_offset_delta: i32::from_be_bytes(be(buf, LAST_OFFSET_DELTA_OFFSET)),
            base_timestamp: i64::from_be_bytes(be(buf, BASE_TIMESTAMP_OFFSET)),
            max_timestamp: i64::from_be_bytes(be(buf, MAX_TIMESTAMP_OFFSET)),
            producer_id: i64::from_be_bytes(be(buf, PRODUCER_ID_OFFSET)),
            producer_epoch: i16::from_be_bytes(be(buf, PRODUCER_EPOCH_OFFSET)),
            base_sequence: i32::from_be_bytes(be(buf, BASE_SEQUENCE_OFFSET)),
            records_count: i32::from_be_bytes(be(buf, RECORDS_COUNT_OFFSET)),
        };
        if header.batch_length < BATCH_LENGTH_MIN as i32 {
            return Err(RecordError::Corrupt("batch length below header size"));
        }
        Ok(header)
    }

    /// Bytes of the whole batch, baseOffset included.
    pub fn total_len(&self) -> usize {
        debug_assert!(self.batch_length >= BATCH_LENGTH_MIN as i32);
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn codec(&self) -> u8 {
        (self.attributes & ATTR_CODEC_MASK) as u8
    }

    pub fn is_compressed(&self) -> bool {
        self.codec() != 0
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
}

/// Checks everything about a header that needs no record bytes: magic,
/// record count against lastOffsetDelta, and the codec id.
pub fn check_header(header: &BatchHeader) -> Result<(), RecordError> {
    if header.magic != MAGIC_V2 {
        return Err(RecordError::Corrupt("unsupported magic (only v2 batches)"));
    }
    if header.records_count <= 0 {
        return Err(RecordError::Corrupt("batch without records"));
    }
    if i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1 {
        return Err(RecordError::Corrupt("records count != lastOffsetDelta + 1"));
    }
    if header.codec() > CODEC_MAX {
        return Err(RecordError::Corrupt("unknown compression codec"));
    }
    Ok(())
}

/// CRC-32C over `batch[ATTRIBUTES_OFFSET..]`; `batch` is one whole batch.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// Recomputes and stores the CRC of one whole batch.
pub fn recompute_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The 8 bytes that replace a batch's baseOffset in the log.
pub fn base_offset_bytes(base_offset: i64) -> [u8; 8] {
    base_offset.to_be_bytes()
}

/// A copy of `batch` stamped with the broker's append time, as Kafka's
/// LogValidator does in place: the LogAppendTime attribute bit is set and
/// maxTimestamp becomes `now_ms` (baseTimestamp is left alone; readers take
/// every record's timestamp from maxTimestamp), then the CRC is recomputed.
pub fn with_log_append_time(batch: &[u8], now_ms: i64) -> BytesMut {
    assert!(
        batch.len() >= BATCH_HEADER_LEN,
        "batch must be validated first"
    );
    let mut out = BytesMut::from(batch);
    let attributes = i16::from_be_bytes(be(&out, ATTRIBUTES_OFFSET)) | ATTR_LOG_APPEND_TIME;
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    out[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    recompute_crc(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::build::build_batch;

    #[test]
    fn parse_built_batch() {
        let batch = build_batch(
            7,
            &[(None, Some(b"a"), 10, &[]), (None, Some(b"b"), 30, &[])],
        );
        let h = BatchHeader::parse(&batch).unwrap();
        assert_eq!(h.base_offset, 7);
        assert_eq!(h.total_len(), batch.len());
        assert_eq!(h.magic, MAGIC_V2);
        assert_eq!(h.records_count, 2);
        assert_eq!(h.last_offset(), 8);
        assert_eq!(h.base_timestamp, 10);
        assert_eq!(h.max_timestamp, 30);
        assert_eq!(h.producer_id, -1);
        assert_eq!(h.crc, compute_crc(&batch));
        check_header(&h).unwrap();
    }

    #[test]
    fn log_append_time_stamps_and_keeps_crc_valid() {
        let batch = build_batch(0, &[(None, Some(b"a"), 10, &[])]);
        let stamped = with_log_append_time(&batch, 999);
        let h = BatchHeader::parse(&stamped).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 999);
        assert_eq!(h.base_timestamp, 10);
        assert_eq!(h.crc, compute_crc(&stamped));
    }

    #[test]
    fn base_offset_is_outside_crc() {
        let batch = build_batch(0, &[(None, Some(b"a"), 10, &[])]);
        let mut moved = batch.to_vec();
        moved[..8].copy_from_slice(&base_offset_bytes(1234));
        assert_eq!(compute_crc(&moved), BatchHeader::parse(&batch).unwrap().crc);
        assert_eq!(BatchHeader::parse(&moved).unwrap().base_offset, 1234);
    }
}

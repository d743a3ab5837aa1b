//! Building valid uncompressed v2 batches. Production code: the records the
//! group and transaction coordinators write to their internal topics
//! (`build_batch`, `with_producer` for TxnOffsetCommit's transactional
//! batches), control markers (`control.rs`) and up-converted message sets
//! (`message_format::up`, through `encode_record` and `BatchFields`).
//! `build_simple_batch` is for tests and tools that craft raw produce
//! requests.

use bytes::Bytes;

use super::varint::{write_varint, write_varlong};
use super::*;

/// A header of a record to build: key and value (`None` = null).
pub type HeaderSpec<'a> = (&'a str, Option<&'a [u8]>);
/// A record to build: key, value, timestamp (ms) and headers.
pub type RecordSpec<'a> = (
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    i64,
    &'a [HeaderSpec<'a>],
);

fn write_nullable(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => write_varint(out, -1),
        Some(bytes) => {
            write_varint(out, i32::try_from(bytes.len()).expect("field fits in i32"));
            out.extend_from_slice(bytes);
        }
    }
}

/// Appends one record (length-prefixed) to a records section.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    offset_delta: i32,
    base_ts: i64,
    spec: &RecordSpec<'_>,
) {
    let (key, value, timestamp, headers) = *spec;
    let mut body = vec![0u8]; // attributes
    write_varlong(&mut body, timestamp - base_ts);
    write_varint(&mut body, offset_delta);
    write_nullable(&mut body, key);
    write_nullable(&mut body, value);
    write_varint(&mut body, headers.len() as i32);
    for (hkey, hvalue) in headers {
        write_nullable(&mut body, Some(hkey.as_bytes()));
        write_nullable(&mut body, *hvalue);
    }
    write_varint(out, body.len() as i32);
    out.extend_from_slice(&body);
}

/// A valid uncompressed v2 batch (CreateTime, producerId -1, epoch -1,
/// sequence -1) holding `records` at offsets `base_offset..`.
/// baseTimestamp is the first record's timestamp, maxTimestamp the largest.
pub fn build_batch(base_offset: i64, records: &[RecordSpec<'_>]) -> Bytes {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let base_ts = records[0].2;
    let max_ts = records.iter().map(|r| r.2).max().unwrap_or(base_ts);
    let mut out = vec![0u8; BATCH_HEADER_LEN];
    for (i, spec) in records.iter().enumerate() {
        encode_record(&mut out, i as i32, base_ts, spec);
    }
    let header = BatchFields {
        base_offset,
        attributes: 0,
        count: records.len() as i32,
        base_ts,
        max_ts,
    };
    header.write(&mut out);
    Bytes::from(out)
}

/// The header fields of a plain batch (producerId -1, epoch -1, sequence
/// -1, partitionLeaderEpoch -1) that [`BatchFields::write`] fills in.
pub(crate) struct BatchFields {
    pub base_offset: i64,
    /// Codec and timestamp type bits.
    pub attributes: i16,
    pub count: i32,
    pub base_ts: i64,
    pub max_ts: i64,
}

impl BatchFields {
    /// Fills the header of `out`, a whole batch whose first
    /// [`BATCH_HEADER_LEN`] bytes are reserved, and its CRC.
    pub(crate) fn write(&self, out: &mut [u8]) {
        assert!(out.len() >= BATCH_HEADER_LEN && self.count > 0);
        let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).expect("a batch is under 2 GiB");
        let put = |out: &mut [u8], at: usize, bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
        };
        put(out, BASE_OFFSET_OFFSET, &self.base_offset.to_be_bytes());
        put(out, BATCH_LENGTH_OFFSET, &batch_length.to_be_bytes());
        put(out, PARTITION_LEADER_EPOCH_OFFSET, &(-1i32).to_be_bytes());
        out[MAGIC_OFFSET] = MAGIC_V2 as u8;
        put(out, ATTRIBUTES_OFFSET, &self.attributes.to_be_bytes());
        put(
            out,
            LAST_OFFSET_DELTA_OFFSET,
            &(self.count - 1).to_be_bytes(),
        );
        put(out, BASE_TIMESTAMP_OFFSET, &self.base_ts.to_be_bytes());
        put(out, MAX_TIMESTAMP_OFFSET, &self.max_ts.to_be_bytes());
        put(out, PRODUCER_ID_OFFSET, &(-1i64).to_be_bytes());
        put(out, PRODUCER_EPOCH_OFFSET, &(-1i16).to_be_bytes());
        put(out, BASE_SEQUENCE_OFFSET, &(-1i32).to_be_bytes());
        put(out, RECORDS_COUNT_OFFSET, &self.count.to_be_bytes());
        recompute_crc(out);
    }
}

/// A batch of `n` records with values `value-<i>`, all at `timestamp`.
pub fn build_simple_batch(base_offset: i64, n: usize, timestamp: i64) -> Bytes {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
    let specs: Vec<RecordSpec<'_>> = values
        .iter()
        .map(|v| (None, Some(v.as_slice()), timestamp, &[][..]))
        .collect();
    build_batch(base_offset, &specs)
}

/// A copy of `batch` stamped as an idempotent producer's (`producer_id`,
/// `epoch`, `base_sequence`), optionally transactional, CRC recomputed.
pub fn with_producer(
    batch: &[u8],
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    transactional: bool,
) -> Bytes {
    let mut out = batch.to_vec();
    out[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer_id.to_be_bytes());
    out[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&epoch.to_be_bytes());
    out[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4]
        .copy_from_slice(&base_sequence.to_be_bytes());
    if transactional {
        let attributes = i16::from_be_bytes([out[ATTRIBUTES_OFFSET], out[ATTRIBUTES_OFFSET + 1]])
            | ATTR_TRANSACTIONAL;
        out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    }
    recompute_crc(&mut out);
    Bytes::from(out)
}

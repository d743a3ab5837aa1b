//! Validation of the record batches of one produce partition, before any
//! byte reaches the log.

use bytes::Bytes;

use super::{check_header, compute_crc, BatchHeader, RecordError, Records, BATCH_HEADER_LEN};

/// Where one validated batch sits in the produce buffer, and the header
/// fields the log needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// Start of the batch in the validated buffer.
    pub offset: usize,
    pub total_len: usize,
    pub last_offset_delta: i32,
    pub records_count: i32,
    pub max_timestamp: i64,
    pub base_timestamp: i64,
    pub attributes: i16,
    /// The spread of the records' timestamp deltas, when validation read
    /// the records (an uncompressed batch).
    pub timestamp_deltas: Option<DeltaSpan>,
}

/// The lowest and highest timestamp delta of a batch's records: with the
/// base timestamp, the span of their timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaSpan {
    pub min: i64,
    pub max: i64,
}

impl DeltaSpan {
    /// The span of no record (every timestamp check passes it).
    pub const EMPTY: DeltaSpan = DeltaSpan {
        min: i64::MAX,
        max: i64::MIN,
    };

    pub fn add(&mut self, delta: i64) {
        self.min = self.min.min(delta);
        self.max = self.max.max(delta);
    }

    pub fn is_empty(&self) -> bool {
        self.min > self.max
    }
}

/// Batches that passed [`validate_batches`], with what it learned about
/// each. Made only by [`Validated::check`], so the log appends them without
/// a second CRC pass (debug builds check again).
#[derive(Clone, Debug)]
pub struct Validated {
    bytes: Bytes,
    infos: Vec<BatchInfo>,
}

impl Validated {
    pub fn check(bytes: Bytes, max_batch_bytes: u32) -> Result<Validated, RecordError> {
        let infos = validate_batches(&bytes, max_batch_bytes)?;
        Ok(Validated { bytes, infos })
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn infos(&self) -> &[BatchInfo] {
        &self.infos
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The (producer id, epoch) of the first batch when it is
    /// transactional: a produce holds one producer's batches.
    pub fn transactional_producer(&self) -> Option<(i64, i16)> {
        let first = self.infos.first()?;
        if first.attributes & super::ATTR_TRANSACTIONAL == 0 {
            return None;
        }
        let header = BatchHeader::parse(&self.bytes[first.offset..]).expect("validated batch");
        Some((header.producer_id, header.producer_epoch))
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Validates the one or more concatenated batches in `records`: each must be
/// complete, v2, CRC-correct, consistent in its record count, at most
/// `max_batch_bytes` long and, when uncompressed, made of exactly
/// recordsCount well-formed records. Work is linear in the buffer size.
pub fn validate_batches(
    records: &Bytes,
    max_batch_bytes: u32,
) -> Result<Vec<BatchInfo>, RecordError> {
    let buf: &[u8] = records;
    if buf.is_empty() {
        return Err(RecordError::Corrupt("no record batches"));
    }
    let mut infos = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let mut info = validate_one(&buf[pos..], max_batch_bytes)?;
        info.offset = pos;
        pos += info.total_len;
        infos.push(info);
    }
    assert_eq!(pos, buf.len());
    Ok(infos)
}

/// Validates the batch at the start of `buf` (more may follow it).
fn validate_one(buf: &[u8], max_batch_bytes: u32) -> Result<BatchInfo, RecordError> {
    let header = BatchHeader::parse(buf)?;
    let total_len = header.total_len();
    if total_len > buf.len() {
        return Err(RecordError::Corrupt("batch truncated"));
    }
    if total_len as u64 > u64::from(max_batch_bytes) {
        return Err(RecordError::TooLarge {
            size: total_len as u64,
            max: u64::from(max_batch_bytes),
        });
    }
    check_header(&header)?;
    let batch = &buf[..total_len];
    if compute_crc(batch) != header.crc {
        return Err(RecordError::Corrupt("CRC mismatch"));
    }
    let timestamp_deltas = if header.is_compressed() {
        None
    } else {
        Some(check_records(
            &batch[BATCH_HEADER_LEN..],
            header.records_count,
        )?)
    };
    Ok(BatchInfo {
        offset: 0,
        total_len,
        last_offset_delta: header.last_offset_delta,
        records_count: header.records_count,
        max_timestamp: header.max_timestamp,
        base_timestamp: header.base_timestamp,
        attributes: header.attributes,
        timestamp_deltas,
    })
}

/// The records section must hold exactly `count` records with strictly
/// increasing offset deltas below `count`. Returns their timestamp deltas'
/// span.
fn check_records(section: &[u8], count: i32) -> Result<DeltaSpan, RecordError> {
    let mut records = Records::new(section, count);
    let mut seen = 0i32;
    let mut previous_delta = -1i32;
    let mut span = DeltaSpan::EMPTY;
    for record in records.by_ref() {
        let record = record?;
        if record.offset_delta <= previous_delta || record.offset_delta >= count {
            return Err(RecordError::Corrupt("record offset deltas out of order"));
        }
        previous_delta = record.offset_delta;
        span.add(record.timestamp_delta);
        seen += 1;
    }
    if seen != count {
        return Err(RecordError::Corrupt("fewer records than recordsCount"));
    }
    if records.remaining() != 0 {
        return Err(RecordError::Corrupt("bytes after the last record"));
    }
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::build::{self, build_batch, build_simple_batch};
    use crate::record::*;

    const MAX: u32 = 1 << 20;

    fn corrupt(bytes: Vec<u8>) -> RecordError {
        validate_batches(&Bytes::from(bytes), MAX).unwrap_err()
    }

    #[test]
    fn good_batches_concatenated() {
        let a = build_simple_batch(0, 3, 10);
        let b = build_batch(0, &[(Some(b"k"), None, 20, &[("h", None)])]);
        let both = Bytes::from([a.to_vec(), b.to_vec()].concat());
        let infos = validate_batches(&both, MAX).unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!((infos[0].offset, infos[0].records_count), (0, 3));
        assert_eq!((infos[1].offset, infos[1].total_len), (a.len(), b.len()));
        assert_eq!(infos[1].last_offset_delta, 0);
        assert_eq!(infos[0].max_timestamp, 10);
    }

    #[test]
    fn bad_crc() {
        let mut b = build_simple_batch(0, 2, 10).to_vec();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(corrupt(b), RecordError::Corrupt("CRC mismatch"));
    }

    #[test]
    fn bad_magic() {
        let mut b = build_simple_batch(0, 2, 10).to_vec();
        b[MAGIC_OFFSET] = 1;
        assert!(matches!(corrupt(b), RecordError::Corrupt(_)));
    }

    #[test]
    fn wrong_count() {
        let mut b = build_simple_batch(0, 2, 10).to_vec();
        b[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&3i32.to_be_bytes());
        recompute_crc(&mut b);
        assert!(matches!(corrupt(b.clone()), RecordError::Corrupt(_)));
        // Consistent header but fewer records than declared.
        b[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
            .copy_from_slice(&2i32.to_be_bytes());
        recompute_crc(&mut b);
        assert!(matches!(corrupt(b), RecordError::Corrupt(_)));
    }

    #[test]
    fn truncated_and_empty() {
        let b = build_simple_batch(0, 2, 10).to_vec();
        for cut in 0..b.len() {
            assert!(
                matches!(corrupt(b[..cut].to_vec()), RecordError::Corrupt(_)),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn too_large() {
        let b = build_simple_batch(0, 100, 10);
        let err = validate_batches(&b, 100).unwrap_err();
        assert_eq!(
            err,
            RecordError::TooLarge {
                size: b.len() as u64,
                max: 100
            }
        );
    }

    #[test]
    fn compressed_header_only_and_unknown_codec() {
        let mut b = build_simple_batch(0, 2, 10).to_vec();
        b[ATTRIBUTES_OFFSET + 1] = 1; // gzip: records are not parsed
        b.truncate(BATCH_HEADER_LEN + 3);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
        recompute_crc(&mut b);
        assert!(validate_batches(&Bytes::from(b.clone()), MAX).is_ok());
        b[ATTRIBUTES_OFFSET + 1] = 5;
        recompute_crc(&mut b);
        assert_eq!(
            corrupt(b),
            RecordError::Corrupt("unknown compression codec")
        );
    }

    #[test]
    fn trailing_bytes_inside_batch() {
        let mut b = build_simple_batch(0, 1, 10).to_vec();
        b.push(0);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
        recompute_crc(&mut b);
        assert!(matches!(corrupt(b), RecordError::Corrupt(_)));
    }

    /// A small xorshift generator so the fuzz tests need no dependency.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let len = (rng(&mut seed) % 300) as usize;
            let buf: Vec<u8> = (0..len).map(|_| rng(&mut seed) as u8).collect();
            let _ = validate_batches(&Bytes::from(buf.clone()), MAX);
            let _ = first_offset_at_or_after_timestamp(&buf, 0, 0);
        }
    }

    #[test]
    fn mutated_batches_never_panic() {
        let headers: &[(&str, Option<&[u8]>)] = &[("a", Some(b"b"))];
        let spec: build::RecordSpec<'_> = (Some(b"key"), Some(b"value"), 5, headers);
        let good = build_batch(0, &[spec; 4]);
        let mut seed = 42u64;
        for _ in 0..5000 {
            let mut b = good.to_vec();
            for _ in 0..(rng(&mut seed) % 4 + 1) {
                let at = (rng(&mut seed) as usize) % b.len();
                b[at] = rng(&mut seed) as u8;
            }
            if rng(&mut seed).is_multiple_of(2) {
                recompute_crc(&mut b); // reach the record parser
            }
            let cut = (rng(&mut seed) as usize) % (b.len() + 1);
            let _ = validate_batches(&Bytes::from(b[..cut].to_vec()), MAX);
            let _ = first_offset_at_or_after_timestamp(&b[..cut], 3, 0);
        }
    }
}

//! Walking the records inside an uncompressed batch, borrowing from it.

use super::varint::{read_varint, read_varlong};
use super::{BatchHeader, RecordError, BATCH_HEADER_LEN};

/// One record, borrowed from its batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub header_count: i32,
    /// The encoded headers (checked while parsing), kept raw so duplicate
    /// keys and exact bytes survive.
    pub headers: &'a [u8],
}

/// Iterator over the records section (`batch[BATCH_HEADER_LEN..]`) of an
/// uncompressed batch. Yields at most `records_count` items and stops after
/// the first error.
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    left: i32,
    failed: bool,
}

impl<'a> Records<'a> {
    /// `records` is the section after the header; `count` the header's recordsCount.
    pub fn new(records: &'a [u8], count: i32) -> Self {
        Records {
            buf: records,
            pos: 0,
            left: count.max(0),
            failed: false,
        }
    }

    /// Bytes of the section not consumed yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.failed {
            return None;
        }
        self.left -= 1;
        let result = parse_record(self.buf, &mut self.pos);
        self.failed = result.is_err();
        Some(result)
    }
}

fn read_nullable<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, RecordError> {
    let len = read_varint(buf, pos)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| RecordError::Corrupt("negative field length"))?;
    let end = pos
        .checked_add(len)
        .filter(|end| *end <= buf.len())
        .ok_or(RecordError::Corrupt("field past end of record"))?;
    let field = &buf[*pos..end];
    *pos = end;
    Ok(Some(field))
}

fn skip_headers(body: &[u8], pos: &mut usize, count: i32) -> Result<(), RecordError> {
    if count < 0 {
        return Err(RecordError::Corrupt("negative header count"));
    }
    // Each header takes at least two bytes, so this loop ends with the body.
    for _ in 0..count {
        if read_nullable(body, pos)?.is_none() {
            return Err(RecordError::Corrupt("null header key"));
        }
        read_nullable(body, pos)?;
    }
    Ok(())
}

/// Parses one length-prefixed record at `pos` in `buf`, advancing `pos`.
fn parse_record<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Record<'a>, RecordError> {
    let len = read_varint(buf, pos)?;
    let len = usize::try_from(len).map_err(|_| RecordError::Corrupt("negative record length"))?;
    let end = pos
        .checked_add(len)
        .filter(|end| *end <= buf.len())
        .ok_or(RecordError::Corrupt("record past end of batch"))?;
    let body = &buf[*pos..end];
    *pos = end;
    let mut at = 0;
    let attributes = *body.first().ok_or(RecordError::Corrupt("empty record"))? as i8;
    at += 1;
    let timestamp_delta = read_varlong(body, &mut at)?;
    let offset_delta = read_varint(body, &mut at)?;
    let key = read_nullable(body, &mut at)?;
    let value = read_nullable(body, &mut at)?;
    let header_count = read_varint(body, &mut at)?;
    let headers_start = at;
    skip_headers(body, &mut at, header_count)?;
    if at != body.len() {
        return Err(RecordError::Corrupt(
            "record length does not match its fields",
        ));
    }
    Ok(Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        header_count,
        headers: &body[headers_start..],
    })
}

/// The first record of one whole, valid batch at or past offsetDelta
/// `min_delta` whose timestamp is at least `target_ts`, as (offsetDelta,
/// timestamp). Compressed and LogAppendTime batches answer with
/// `min_delta` (at least the batch's start) and their maxTimestamp, which is
/// every record's timestamp for LogAppendTime and an upper bound for
/// compressed batches (codecs are decoded elsewhere).
pub fn first_offset_at_or_after_timestamp(
    batch: &[u8],
    target_ts: i64,
    min_delta: i32,
) -> Option<(i32, i64)> {
    let header = BatchHeader::parse(batch).ok()?;
    if min_delta > header.last_offset_delta {
        return None;
    }
    if header.is_compressed() || header.is_log_append_time() {
        let found = (min_delta.max(0), header.max_timestamp);
        return (header.max_timestamp >= target_ts).then_some(found);
    }
    let end = header.total_len().min(batch.len());
    let section = batch.get(BATCH_HEADER_LEN..end)?;
    Records::new(section, header.records_count)
        .map_while(Result::ok)
        .map(|r| {
            (
                r.offset_delta,
                header.base_timestamp.wrapping_add(r.timestamp_delta),
            )
        })
        .find(|&(delta, ts)| delta >= min_delta && ts >= target_ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::build::build_batch;

    #[test]
    fn walks_records_with_headers() {
        let headers: &[(&str, Option<&[u8]>)] = &[("h", Some(b"1")), ("h", None)];
        let batch = build_batch(
            0,
            &[(Some(b"k"), None, 5, headers), (None, Some(b"v2"), 6, &[])],
        );
        let h = BatchHeader::parse(&batch).unwrap();
        let mut it = Records::new(&batch[BATCH_HEADER_LEN..], h.records_count);
        let r0 = it.next().unwrap().unwrap();
        assert_eq!(
            (r0.key, r0.value, r0.header_count),
            (Some(&b"k"[..]), None, 2)
        );
        let r1 = it.next().unwrap().unwrap();
        assert_eq!((r1.offset_delta, r1.value), (1, Some(&b"v2"[..])));
        assert!(it.next().is_none());
        assert_eq!(it.remaining(), 0);
    }

    #[test]
    fn timestamp_lookup_in_batch() {
        let recs: Vec<_> = [100, 50, 200, 300]
            .iter()
            .map(|ts| (None, Some(&b"x"[..]), *ts, &[][..]))
            .collect();
        let batch = build_batch(0, &recs);
        assert_eq!(
            first_offset_at_or_after_timestamp(&batch, 0, 0),
            Some((0, 100))
        );
        assert_eq!(
            first_offset_at_or_after_timestamp(&batch, 101, 0),
            Some((2, 200))
        );
        assert_eq!(
            first_offset_at_or_after_timestamp(&batch, 300, 0),
            Some((3, 300))
        );
        assert_eq!(first_offset_at_or_after_timestamp(&batch, 301, 0), None);
        let stamped = crate::record::with_log_append_time(&batch, 1000);
        assert_eq!(
            first_offset_at_or_after_timestamp(&stamped, 999, 0),
            Some((0, 1000))
        );
        assert_eq!(first_offset_at_or_after_timestamp(&stamped, 1001, 0), None);
    }
}

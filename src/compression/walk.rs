//! Checking the records inside a batch's decompressed bytes: exactly
//! recordsCount well-formed records whose offset deltas are 0, 1, 2, ...
//!
//! [`check_stream`] reads them from a decoder through a small window and
//! holds at most one chunk or the largest record, never the whole batch.

use std::io::{ErrorKind, Read};

use super::bounded::map_io;
use super::{Codec, CompressionError};
use crate::record::{DeltaSpan, Record, RecordError, Records};

/// Bytes read from the decoder at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// Longest encoding of a 32-bit varint (a record's length prefix).
const VARINT_BYTES_MAX: usize = 5;

fn invalid(error: RecordError) -> CompressionError {
    match error {
        RecordError::Corrupt(reason) => CompressionError::InvalidRecord(reason),
        RecordError::TooLarge { .. } => CompressionError::InvalidRecord("record too large"),
    }
}

/// Offset deltas must be strictly increasing and below recordsCount; with
/// exactly recordsCount records that makes them 0, 1, 2, ... Notes the
/// span of the timestamp deltas on the way.
struct DeltaCheck {
    count: i32,
    previous: i32,
    timestamps: DeltaSpan,
}

impl DeltaCheck {
    fn new(count: i32) -> Self {
        DeltaCheck {
            count,
            previous: -1,
            timestamps: DeltaSpan::EMPTY,
        }
    }

    fn next(&mut self, record: &Record<'_>) -> Result<(), CompressionError> {
        let delta = record.offset_delta;
        if delta <= self.previous || delta >= self.count {
            return Err(CompressionError::InvalidRecord(
                "record offset deltas out of order",
            ));
        }
        self.previous = delta;
        self.timestamps.add(record.timestamp_delta);
        Ok(())
    }
}

/// The records section `section` (decompressed) must hold exactly `count`
/// records. Returns their timestamp deltas' span.
pub(crate) fn check_slice(section: &[u8], count: i32) -> Result<DeltaSpan, CompressionError> {
    let mut records = Records::new(section, count);
    let mut deltas = DeltaCheck::new(count);
    let mut seen = 0i32;
    for record in records.by_ref() {
        deltas.next(&record.map_err(invalid)?)?;
        seen += 1;
    }
    if seen != count {
        return Err(CompressionError::InvalidRecord(
            "fewer records than recordsCount",
        ));
    }
    if records.remaining() != 0 {
        return Err(CompressionError::InvalidRecord(
            "bytes after the last record",
        ));
    }
    Ok(deltas.timestamps)
}

/// A window over a decoder's output: `buf[lo..hi]` is read but unparsed.
struct Window<'r> {
    reader: &'r mut dyn Read,
    codec: Codec,
    max: usize,
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    eof: bool,
}

impl Window<'_> {
    fn available(&self) -> &[u8] {
        &self.buf[self.lo..self.hi]
    }

    /// Reads until at least `n` bytes are available or the stream ends.
    /// `n` is at most the bound plus a length prefix, so `buf` stays bounded.
    fn fill(&mut self, n: usize) -> Result<(), CompressionError> {
        if self.hi - self.lo >= n || self.eof {
            return Ok(());
        }
        if self.lo > 0 {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.hi < n {
            match self.reader.read(&mut self.buf[self.hi..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(got) => self.hi += got,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(map_io(self.codec, e, self.max)),
            }
        }
        Ok(())
    }

    /// True if the decoder has nothing after what was parsed.
    fn at_end(&mut self) -> Result<bool, CompressionError> {
        if self.hi > self.lo {
            return Ok(false);
        }
        self.fill(1)?;
        Ok(self.hi == self.lo)
    }
}

/// The record length prefix at the start of `buf`: (prefix bytes, length).
/// `None` if `buf` ends inside it.
fn length_prefix(buf: &[u8]) -> Result<Option<(usize, usize)>, CompressionError> {
    let mut raw = 0u32;
    for (i, byte) in buf.iter().take(VARINT_BYTES_MAX).enumerate() {
        raw |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let len = ((raw >> 1) as i32) ^ -((raw & 1) as i32);
            let len = usize::try_from(len)
                .map_err(|_| CompressionError::InvalidRecord("negative record length"))?;
            return Ok(Some((i + 1, len)));
        }
    }
    if buf.len() >= VARINT_BYTES_MAX {
        return Err(CompressionError::InvalidRecord("varint too long"));
    }
    Ok(None)
}

/// Reads `count` records from `reader` (a decoder yielding at most `max`
/// bytes) and checks them as [`check_slice`] does, one record at a time.
pub(crate) fn check_stream(
    reader: &mut dyn Read,
    count: i32,
    codec: Codec,
    max: usize,
) -> Result<DeltaSpan, CompressionError> {
    let mut window = Window {
        reader,
        codec,
        max,
        buf: vec![0u8; CHUNK_BYTES.min(max.max(VARINT_BYTES_MAX))],
        lo: 0,
        hi: 0,
        eof: false,
    };
    let mut deltas = DeltaCheck::new(count);
    for _ in 0..count.max(0) {
        window.fill(VARINT_BYTES_MAX)?;
        let Some((prefix, len)) = length_prefix(window.available())? else {
            return Err(CompressionError::InvalidRecord(if window.hi == window.lo {
                "fewer records than recordsCount"
            } else {
                "truncated varint"
            }));
        };
        if len > max {
            // Larger than everything the decoder may yield: a bomb.
            return Err(CompressionError::TooLarge { max });
        }
        let total = prefix + len;
        window.fill(total)?;
        let bytes = window
            .available()
            .get(..total)
            .ok_or(CompressionError::InvalidRecord("record past end of batch"))?;
        let record = Records::new(bytes, 1)
            .next()
            .expect("one record requested")
            .map_err(invalid)?;
        deltas.next(&record)?;
        window.lo += total;
    }
    if !window.at_end()? {
        return Err(CompressionError::InvalidRecord(
            "bytes after the last record",
        ));
    }
    Ok(deltas.timestamps)
}

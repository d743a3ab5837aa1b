//! Snappy as Kafka clients frame it.
//!
//! The Java client writes snappy-java's (xerial) stream: the 8-byte magic
//! `0x82 "SNAPPY" 0`, i32 version and i32 compatible version (both 1), then
//! blocks of `[i32 BE compressed length][raw snappy block]`, each block at
//! most 32 KiB uncompressed. librdkafka writes one raw snappy block without
//! framing and reads both; snappy-java reads both too. We write xerial (as a
//! Kafka broker does) and read both.

use std::io::{self, Cursor, Read};

use super::bounded::bound_exceeded;
use super::{Codec, CompressionError};

pub(crate) const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version, compatible version.
pub(crate) const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's `SnappyOutputStream` default block size.
pub(crate) const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
const XERIAL_VERSION: i32 = 1;
const XERIAL_COMPATIBLE_VERSION: i32 = 1;
const CHUNK_LEN_BYTES: usize = 4;

/// Appends `data` in the xerial framing to `out`.
pub(crate) fn compress_xerial(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&XERIAL_VERSION.to_be_bytes());
    out.extend_from_slice(&XERIAL_COMPATIBLE_VERSION.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for block in data.chunks(XERIAL_BLOCK_BYTES) {
        let len_at = out.len();
        let bound = snap::raw::max_compress_len(block.len());
        out.resize(len_at + CHUNK_LEN_BYTES + bound, 0);
        let written = encoder
            .compress(block, &mut out[len_at + CHUNK_LEN_BYTES..])
            .expect("snappy output sized by max_compress_len");
        out.truncate(len_at + CHUNK_LEN_BYTES + written);
        let written = i32::try_from(written).expect("a 32 KiB block compresses below 2 GiB");
        out[len_at..len_at + CHUNK_LEN_BYTES].copy_from_slice(&written.to_be_bytes());
    }
}

#[cfg(test)]
/// One raw snappy block, unframed, as librdkafka writes it (for tests).
pub(crate) fn compress_raw(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("snappy compresses any input")
}

pub(crate) fn is_xerial(data: &[u8]) -> bool {
    data.len() >= XERIAL_HEADER_LEN && data[..XERIAL_MAGIC.len()] == XERIAL_MAGIC
}

/// A reader of the decompressed bytes, refusing up front any block that
/// claims more than `max` bytes.
pub(crate) fn reader<'a>(data: &'a [u8], max: usize) -> Result<SnappyReader<'a>, CompressionError> {
    if is_xerial(data) {
        return Ok(SnappyReader::Xerial(XerialReader {
            data,
            pos: XERIAL_HEADER_LEN,
            block: Vec::new(),
            block_pos: 0,
            decoder: snap::raw::Decoder::new(),
            max,
        }));
    }
    // Raw snappy cannot be decoded in pieces; its length comes first, so a
    // bomb is refused before anything is allocated.
    let len =
        snap::raw::decompress_len(data).map_err(|e| CompressionError::corrupt(Codec::Snappy, e))?;
    if len > max {
        return Err(CompressionError::TooLarge { max });
    }
    let out = snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| CompressionError::corrupt(Codec::Snappy, e))?;
    Ok(SnappyReader::Raw(Cursor::new(out)))
}

pub(crate) enum SnappyReader<'a> {
    Xerial(XerialReader<'a>),
    Raw(Cursor<Vec<u8>>),
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            SnappyReader::Xerial(r) => r.read(buf),
            SnappyReader::Raw(r) => r.read(buf),
        }
    }
}

/// Decodes xerial blocks one at a time: holds one block's output at most.
pub(crate) struct XerialReader<'a> {
    data: &'a [u8],
    /// Next unread byte of `data` (a block length prefix or a header).
    pos: usize,
    block: Vec<u8>,
    block_pos: usize,
    decoder: snap::raw::Decoder,
    /// No block may claim more than this many bytes.
    max: usize,
}

fn invalid(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

impl XerialReader<'_> {
    /// Decodes the next block into `self.block`; false at the end of data.
    fn next_block(&mut self) -> io::Result<bool> {
        loop {
            let rest = &self.data[self.pos..];
            if rest.is_empty() {
                return Ok(false);
            }
            // snappy-java reads concatenated streams: a header may follow a
            // block. Its first 4 bytes read as a negative length otherwise.
            if is_xerial(rest) {
                self.pos += XERIAL_HEADER_LEN;
                continue;
            }
            if rest.len() < CHUNK_LEN_BYTES {
                return Err(invalid("truncated xerial block length"));
            }
            let len = i32::from_be_bytes(rest[..CHUNK_LEN_BYTES].try_into().unwrap());
            let len = usize::try_from(len).map_err(|_| invalid("negative xerial block length"))?;
            let block = rest[CHUNK_LEN_BYTES..]
                .get(..len)
                .ok_or_else(|| invalid("xerial block past end of data"))?;
            let out_len = snap::raw::decompress_len(block).map_err(io::Error::other)?;
            if out_len > self.max {
                return Err(bound_exceeded());
            }
            self.block.resize(out_len, 0);
            let written = self
                .decoder
                .decompress(block, &mut self.block)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if written != out_len {
                return Err(invalid("xerial block shorter than its declared length"));
            }
            self.pos += CHUNK_LEN_BYTES + len;
            self.block_pos = 0;
            if out_len > 0 {
                return Ok(true);
            }
        }
    }
}

impl Read for XerialReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.block_pos == self.block.len() && !self.next_block()? {
            return Ok(0);
        }
        let n = buf.len().min(self.block.len() - self.block_pos);
        buf[..n].copy_from_slice(&self.block[self.block_pos..self.block_pos + n]);
        self.block_pos += n;
        Ok(n)
    }
}

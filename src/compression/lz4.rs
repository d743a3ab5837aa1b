//! LZ4 frames as Kafka clients write them (KafkaLZ4BlockOutputStream,
//! librdkafka): frame format version 01, independent 64 KiB blocks, no
//! block or content checksum.
//!
//! Kafka before 0.10 computed the frame header checksum (HC) over the magic
//! too (KAFKA-3160); KIP-57 fixed it for message format v1+, and librdkafka
//! still accepts both on read. We write the correct HC and accept either.
//!
//! `compression.lz4.level` is accepted but has no effect: lz4_flex has one
//! (fast) compressor. Any level produces frames every client can read.

use std::io::{self, Chain, Cursor, Read, Write};

use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use super::{Codec, CompressionError};

const MAGIC: [u8; 4] = 0x184D_2204u32.to_le_bytes();
const FLG_DICT_ID: u8 = 0x01;
const FLG_CONTENT_SIZE: u8 = 0x08;
/// Magic, FLG, BD, HC.
const HEADER_LEN_MIN: usize = 7;
/// HC plus the optional content size (8) and dictionary id (4).
const HEADER_LEN_MAX: usize = HEADER_LEN_MIN + 8 + 4;

/// Appends `data` as one LZ4 frame to `out`.
pub(crate) fn compress(data: &[u8], out: &mut Vec<u8>) {
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent);
    let mut encoder = FrameEncoder::with_frame_info(info, out);
    encoder
        .write_all(data)
        .expect("lz4 writes to a Vec cannot fail");
    encoder.finish().expect("lz4 writes to a Vec cannot fail");
}

/// The frame header's length (through HC), if `data` starts with a frame.
fn header_len(data: &[u8]) -> Result<usize, CompressionError> {
    if data.len() < HEADER_LEN_MIN || data[..4] != MAGIC {
        return Err(CompressionError::corrupt(Codec::Lz4, "no LZ4 frame magic"));
    }
    let flg = data[4];
    let mut len = HEADER_LEN_MIN;
    if flg & FLG_CONTENT_SIZE != 0 {
        len += 8;
    }
    if flg & FLG_DICT_ID != 0 {
        len += 4;
    }
    debug_assert!(len <= HEADER_LEN_MAX);
    if data.len() < len {
        return Err(CompressionError::corrupt(
            Codec::Lz4,
            "truncated frame header",
        ));
    }
    Ok(len)
}

const FLG_CONTENT_CHECKSUM: u8 = 0x04;
const FLG_BLOCK_CHECKSUM: u8 = 0x10;
/// Block size high bit: the block is stored uncompressed.
const BLOCK_UNCOMPRESSED: u32 = 0x8000_0000;
const CHECKSUM_LEN: usize = 4;

/// The length of the whole frame at the start of `data`, found by walking
/// its block headers (no decoding): a frame cut short, end mark included,
/// is corrupt.
fn frame_len(data: &[u8]) -> Result<usize, CompressionError> {
    let truncated = || CompressionError::corrupt(Codec::Lz4, "truncated frame");
    let flg = data.get(4).copied().ok_or_else(truncated)?;
    let block_checksum = if flg & FLG_BLOCK_CHECKSUM != 0 {
        CHECKSUM_LEN
    } else {
        0
    };
    let mut pos = header_len(data)?;
    loop {
        let size = data.get(pos..pos + 4).ok_or_else(truncated)?;
        let size = u32::from_le_bytes(size.try_into().expect("4 bytes"));
        pos += 4;
        if size == 0 {
            if flg & FLG_CONTENT_CHECKSUM != 0 {
                pos += CHECKSUM_LEN;
            }
            return if pos <= data.len() {
                Ok(pos)
            } else {
                Err(truncated())
            };
        }
        let len = (size & !BLOCK_UNCOMPRESSED) as usize;
        pos = pos
            .checked_add(len + block_checksum)
            .filter(|end| *end <= data.len())
            .ok_or_else(truncated)?;
    }
}

/// The header checksum over `bytes`, as the frame format defines it.
fn header_checksum(bytes: &[u8]) -> u8 {
    (xxh32(bytes, 0) >> 8) as u8
}

type FrameSource<'a> = Chain<Cursor<[u8; HEADER_LEN_MAX]>, &'a [u8]>;

/// A streaming decoder of the frames in `data`. Every frame's header may
/// carry the pre-KIP-57 HC (computed over the magic too): it is repaired
/// before lz4_flex checks it. Frames that follow one another are all read,
/// as librdkafka reads them, so nothing in the payload goes unchecked.
pub(crate) struct Lz4Reader<'a> {
    decoder: FrameDecoder<FrameSource<'a>>,
}

pub(crate) fn reader(data: &[u8]) -> Result<Lz4Reader<'_>, CompressionError> {
    // lz4_flex takes the end of input at a block boundary for the end of the
    // frame; Kafka's decoder does not. Check every frame is whole first.
    let mut pos = 0;
    while pos < data.len() {
        pos += frame_len(&data[pos..])?;
    }
    Ok(Lz4Reader {
        decoder: FrameDecoder::new(frame_source(data)?),
    })
}

/// `data` with its first frame header's HC repaired, without copying the
/// payload: the header sits at the end of a fixed array behind a cursor.
fn frame_source(data: &[u8]) -> Result<FrameSource<'_>, CompressionError> {
    let len = header_len(data)?;
    let hc = data[len - 1];
    let correct = header_checksum(&data[4..len - 1]);
    let broken = header_checksum(&data[..len - 1]);
    if hc != correct && hc != broken {
        return Err(CompressionError::corrupt(
            Codec::Lz4,
            "bad frame header checksum",
        ));
    }
    let skip = HEADER_LEN_MAX - len;
    let mut header = [0u8; HEADER_LEN_MAX];
    header[skip..].copy_from_slice(&data[..len]);
    header[HEADER_LEN_MAX - 1] = correct;
    let mut head = Cursor::new(header);
    head.set_position(skip as u64);
    Ok(head.chain(&data[len..]))
}

impl Read for Lz4Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let got = self.decoder.read(buf)?;
            if got > 0 || buf.is_empty() {
                return Ok(got);
            }
            // lz4_flex answers 0 at the end of each frame: go on with the
            // next one, if any (the header cursor is spent by now).
            let rest: &[u8] = self.decoder.get_ref().get_ref().1;
            if rest.is_empty() {
                return Ok(0);
            }
            let source =
                frame_source(rest).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.decoder = FrameDecoder::new(source);
        }
    }
}

const P1: u32 = 0x9E37_79B1;
const P2: u32 = 0x85EB_CA77;
const P3: u32 = 0xC2B2_AE3D;
const P4: u32 = 0x27D4_EB2F;
const P5: u32 = 0x1656_67B1;

fn lane(acc: u32, input: &[u8]) -> u32 {
    let v = u32::from_le_bytes(input[..4].try_into().unwrap());
    acc.wrapping_add(v.wrapping_mul(P2))
        .rotate_left(13)
        .wrapping_mul(P1)
}

/// XXH32, the hash of the LZ4 frame header checksum.
pub(crate) fn xxh32(input: &[u8], seed: u32) -> u32 {
    let mut rest = input;
    let mut h = if input.len() >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 16 {
            for (i, acc) in v.iter_mut().enumerate() {
                *acc = lane(*acc, &rest[i * 4..]);
            }
            rest = &rest[16..];
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(input.len() as u32);
    while rest.len() >= 4 {
        let v = u32::from_le_bytes(rest[..4].try_into().unwrap());
        h = h
            .wrapping_add(v.wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        rest = &rest[4..];
    }
    for &byte in rest {
        h = h
            .wrapping_add(u32::from(byte).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

#[cfg(test)]
/// `frame` with its first header's HC replaced by the pre-KIP-57 (broken)
/// one, as Kafka 0.8/0.9 clients wrote it (for tests).
pub(crate) fn break_header_checksum(frame: &mut [u8]) {
    let len = header_len(frame).expect("a frame");
    frame[len - 1] = header_checksum(&frame[..len - 1]);
}

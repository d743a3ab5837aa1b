//! The message formats before record batches: magic 0 (Kafka 0.8) and
//! magic 1 (0.10, which adds a timestamp). Produce v0-2 carries them and
//! Fetch v0-3 expects them back; the log only ever holds v2 batches.
//!
//! A message set is `(offset i64, size i32, message)*`; a message is
//! `crc u32, magic i8, attributes i8, [timestamp i64 if magic 1], key
//! bytes, value bytes`, its CRC-32 (IEEE, not the v2 format's CRC-32C)
//! over magic..end. A compressed message (codec in attributes bits 0-2)
//! holds a whole inner message set in its value; in magic 1 the inner
//! offsets count from 0 and the wrapper carries the last one's absolute
//! offset.
//!
//! [`up`] turns a produced message set into one v2 batch, [`down`] turns
//! fetched v2 batches into a message set, as Kafka 3.x's LogValidator and
//! down-conversion did. Invariant: like `record`, this knows nothing about
//! files or the network, and decodes nothing past its bounds.

pub mod down;
pub mod up;

use crate::compression::{
    Codec, CompressionError, CORRUPT_MESSAGE, INVALID_RECORD, MESSAGE_TOO_LARGE,
};

/// The newest Produce version that carries these formats.
const PRODUCE_LEGACY_VERSION_MAX: i16 = 2;

pub const MAGIC_0: i8 = 0;
pub const MAGIC_1: i8 = 1;

/// attributes bits 0-2: the codec, as in v2 batches.
const ATTR_CODEC_MASK: i8 = 0x07;
/// attributes bit 3 (magic 1): the timestamp is LogAppendTime.
const ATTR_LOG_APPEND_TIME: i8 = 0x08;

/// offset i64 and message size i32 before every message.
pub const LOG_OVERHEAD: usize = 12;
/// crc, magic, attributes, key length, value length.
const MESSAGE_MIN_V0: usize = 4 + 1 + 1 + 4 + 4;
/// ... and the timestamp.
const MESSAGE_MIN_V1: usize = MESSAGE_MIN_V0 + 8;

const _: () = assert!(MESSAGE_MIN_V0 == 14 && MESSAGE_MIN_V1 == 22);

/// A message set the broker will not convert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("message set ends inside a message")]
    Truncated,
    #[error("message of {0} bytes")]
    Size(i32),
    #[error("message CRC mismatch")]
    Crc,
    #[error("magic {0} where a message of magic 0 or 1 belongs")]
    Magic(i8),
    #[error("a compressed message inside a compressed message")]
    Nested,
    #[error("a message set with no message")]
    Empty,
    #[error("converted records past {max} bytes")]
    TooLarge { max: usize },
    #[error(transparent)]
    Compression(#[from] CompressionError),
}

impl FormatError {
    /// The Kafka error code a produce of this message set gets.
    pub fn error_code(&self) -> i16 {
        match self {
            FormatError::TooLarge { .. } => MESSAGE_TOO_LARGE,
            // A v2 batch in Produce v0-2: Kafka's InvalidRecordException.
            FormatError::Magic(magic) if *magic >= 2 => INVALID_RECORD,
            FormatError::Compression(e) => e.error_code(),
            _ => CORRUPT_MESSAGE,
        }
    }
}

/// One message, borrowed from its set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub offset: i64,
    pub magic: i8,
    pub attributes: i8,
    /// -1 (no timestamp) in magic 0.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

impl Message<'_> {
    pub fn codec(&self) -> Result<Codec, FormatError> {
        match Codec::from_id((self.attributes & ATTR_CODEC_MASK) as u8)? {
            // zstd came with v2 batches (KIP-110): Kafka answers
            // UNSUPPORTED_COMPRESSION_TYPE to it in an older format.
            Codec::Zstd => Err(CompressionError::Unsupported {
                codec: Codec::Zstd,
                api_version: PRODUCE_LEGACY_VERSION_MAX,
            }
            .into()),
            codec => Ok(codec),
        }
    }

    pub fn is_log_append_time(&self) -> bool {
        self.magic == MAGIC_1 && self.attributes & ATTR_LOG_APPEND_TIME != 0
    }
}

/// The messages of a whole message set, in order; a set that ends inside a
/// message is an error (a producer sends whole messages).
pub struct Messages<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Messages<'a> {
    pub fn new(buf: &'a [u8]) -> Messages<'a> {
        Messages { buf, failed: false }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        let parsed = parse_message(self.buf);
        match parsed {
            Ok((message, len)) => {
                self.buf = &self.buf[len..];
                Some(Ok(message))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The message at the start of `buf` and the bytes it takes (offset and
/// size included).
fn parse_message(buf: &[u8]) -> Result<(Message<'_>, usize), FormatError> {
    if buf.len() < LOG_OVERHEAD {
        return Err(FormatError::Truncated);
    }
    let offset = i64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
    let size = i32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
    let len = usize::try_from(size)
        .ok()
        .filter(|&l| l >= MESSAGE_MIN_V0)
        .ok_or(FormatError::Size(size))?;
    let body = buf
        .get(LOG_OVERHEAD..LOG_OVERHEAD + len)
        .ok_or(FormatError::Truncated)?;
    // The magic sits at the same place in every format (byte 16), so a v2
    // batch is told apart before its CRC is mistaken for a wrong one.
    let magic = body[4] as i8;
    if magic != MAGIC_0 && magic != MAGIC_1 {
        return Err(FormatError::Magic(magic));
    }
    let crc = u32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
    if crc32fast::hash(&body[4..]) != crc {
        return Err(FormatError::Crc);
    }
    let attributes = body[5] as i8;
    let (timestamp, mut at) = match magic {
        MAGIC_0 => (-1, 6),
        MAGIC_1 if len >= MESSAGE_MIN_V1 => {
            let ts = i64::from_be_bytes(body[6..14].try_into().expect("8 bytes"));
            (ts, 14)
        }
        MAGIC_1 => return Err(FormatError::Size(size)),
        other => return Err(FormatError::Magic(other)),
    };
    let key = take_bytes(body, &mut at)?;
    let value = take_bytes(body, &mut at)?;
    if at != len {
        return Err(FormatError::Size(size));
    }
    let message = Message {
        offset,
        magic,
        attributes,
        timestamp,
        key,
        value,
    };
    Ok((message, LOG_OVERHEAD + len))
}

/// An i32-length-prefixed nullable byte string of `body` at `at`.
fn take_bytes<'a>(body: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, FormatError> {
    let len_bytes = body.get(*at..*at + 4).ok_or(FormatError::Truncated)?;
    let len = i32::from_be_bytes(len_bytes.try_into().expect("4 bytes"));
    *at += 4;
    if len < 0 {
        return Ok(None);
    }
    let end = at
        .checked_add(len as usize)
        .filter(|&e| e <= body.len())
        .ok_or(FormatError::Truncated)?;
    let bytes = &body[*at..end];
    *at = end;
    Ok(Some(bytes))
}

/// Appends one message (offset and size included) to `out`.
pub fn write_message(out: &mut Vec<u8>, m: &Message<'_>) {
    debug_assert!(m.magic == MAGIC_0 || m.magic == MAGIC_1);
    out.extend_from_slice(&m.offset.to_be_bytes());
    let size_at = out.len();
    out.extend_from_slice(&[0; 4]); // size
    let crc_at = out.len();
    out.extend_from_slice(&[0; 4]); // crc
    out.push(m.magic as u8);
    out.push(m.attributes as u8);
    if m.magic == MAGIC_1 {
        out.extend_from_slice(&m.timestamp.to_be_bytes());
    }
    for field in [m.key, m.value] {
        match field {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                let len = i32::try_from(b.len()).expect("a field under 2 GiB");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
    let crc = crc32fast::hash(&out[crc_at + 4..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_be_bytes());
    let size = i32::try_from(out.len() - crc_at).expect("a message under 2 GiB");
    out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
}

#[cfg(test)]
mod tests;

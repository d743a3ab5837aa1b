//! Big-endian field readers and writers for the records Kafka's own
//! coordinators keep in internal topics (`__consumer_offsets`,
//! `__transaction_state`): fixed-width integers and i16-length strings,
//! every read bounds-checked.

use bytes::{Buf, BufMut};

/// Why a field could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("record truncated")]
    Truncated,
    #[error("string is not UTF-8")]
    Utf8,
}

pub fn need(b: &[u8], n: usize) -> Result<(), ReadError> {
    if b.len() < n {
        Err(ReadError::Truncated)
    } else {
        Ok(())
    }
}

pub fn get_i8(b: &mut &[u8]) -> Result<i8, ReadError> {
    need(b, 1)?;
    Ok(b.get_i8())
}

pub fn get_i16(b: &mut &[u8]) -> Result<i16, ReadError> {
    need(b, 2)?;
    Ok(b.get_i16())
}

pub fn get_i32(b: &mut &[u8]) -> Result<i32, ReadError> {
    need(b, 4)?;
    Ok(b.get_i32())
}

pub fn get_i64(b: &mut &[u8]) -> Result<i64, ReadError> {
    need(b, 8)?;
    Ok(b.get_i64())
}

/// `len` bytes of UTF-8.
pub fn take_str(b: &mut &[u8], len: usize) -> Result<String, ReadError> {
    need(b, len)?;
    let s = std::str::from_utf8(&b[..len])
        .map_err(|_| ReadError::Utf8)?
        .to_string();
    b.advance(len);
    Ok(s)
}

/// An i16-length string; a negative length is null.
pub fn get_nullable_str(b: &mut &[u8]) -> Result<Option<String>, ReadError> {
    let len = get_i16(b)?;
    if len < 0 {
        return Ok(None);
    }
    take_str(b, len as usize).map(Some)
}

/// An i16-length string; null reads as empty.
pub fn get_str(b: &mut &[u8]) -> Result<String, ReadError> {
    Ok(get_nullable_str(b)?.unwrap_or_default())
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    out.put_i16(i16::try_from(s.len()).expect("ids and topic names are bounded below 32 KiB"));
    out.extend_from_slice(s.as_bytes());
}

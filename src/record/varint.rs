//! Zigzag varints as used inside v2 records (protobuf encoding).

use super::RecordError;

/// Longest encoding of a 32-bit varint.
const VARINT_BYTES_MAX: usize = 5;
/// Longest encoding of a 64-bit varlong.
const VARLONG_BYTES_MAX: usize = 10;

fn read_unsigned(buf: &[u8], pos: &mut usize, bytes_max: usize) -> Result<u64, RecordError> {
    let mut value = 0u64;
    for i in 0..bytes_max {
        let byte = *buf
            .get(*pos)
            .ok_or(RecordError::Corrupt("truncated varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RecordError::Corrupt("varint too long"))
}

/// Reads a zigzag varint (i32) at `pos`, advancing it.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, RecordError> {
    let raw = read_unsigned(buf, pos, VARINT_BYTES_MAX)? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zigzag varlong (i64) at `pos`, advancing it.
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordError> {
    let raw = read_unsigned(buf, pos, VARLONG_BYTES_MAX)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Appends a zigzag varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_varlong(out, i64::from(value));
}

/// Appends a zigzag varlong.
pub(crate) fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i32::MIN as i64,
        ] {
            let mut out = Vec::new();
            write_varint(&mut out, v as i32);
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos).unwrap() as i64, v);
            assert_eq!(pos, out.len());
        }
        for v in [i64::MAX, i64::MIN, 1 << 40, -(1 << 40)] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            let mut pos = 0;
            assert_eq!(read_varlong(&out, &mut pos).unwrap(), v);
        }
    }

    #[test]
    fn truncated_and_overlong() {
        let mut pos = 0;
        assert!(read_varint(&[0x80], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varint(&[0xff; 6], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varlong(&[0xff; 11], &mut pos).is_err());
    }
}

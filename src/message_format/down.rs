//! Fetch v0-3: v2 batches become a message set in magic 0 (Fetch v0-1) or
//! magic 1 (v2-3), as Kafka before 4.0 down-converted them. Each record
//! becomes a message at its absolute offset with its key, value and
//! timestamp (the batch's maxTimestamp when the batch is LogAppendTime);
//! headers have no place in these formats and are dropped, as Kafka
//! dropped them; control batches (transaction markers) are skipped. A
//! compressed batch becomes one compressed message in the same codec,
//! except lz4 in magic 0, whose frame Kafka wrote with a wrong header
//! checksum that clients expect: those records go out uncompressed.

use super::{write_message, FormatError, Message, ATTR_LOG_APPEND_TIME, MAGIC_0, MAGIC_1};
use crate::compression::{compress, decompress, Codec};
use crate::record::{BatchHeader, Records, BATCH_HEADER_LEN, MAGIC_V2};

/// What one down-conversion may use.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Most bytes of messages written: batches past it are left out, save
    /// the first (a client must be able to make progress).
    pub out_max: usize,
    /// Most bytes one compressed batch may decompress to.
    pub decompressed_max: usize,
}

/// The message set for the whole v2 batches at the start of `batches`
/// (a trailing partial batch, which a fetch may end with, is left out).
pub fn from_v2_batches(batches: &[u8], magic: i8, bounds: Bounds) -> Result<Vec<u8>, FormatError> {
    assert!(magic == MAGIC_0 || magic == MAGIC_1);
    let mut out = Vec::with_capacity(batches.len().min(bounds.out_max));
    let mut rest = batches;
    while rest.len() >= BATCH_HEADER_LEN {
        let header =
            BatchHeader::parse(rest).map_err(crate::compression::CompressionError::from)?;
        if header.magic != MAGIC_V2 {
            return Err(FormatError::Magic(header.magic));
        }
        let Some(batch) = rest.get(..header.total_len()) else {
            break;
        };
        rest = &rest[batch.len()..];
        if header.is_control() {
            continue;
        }
        let before = out.len();
        convert_batch(&header, &batch[BATCH_HEADER_LEN..], magic, bounds, &mut out)?;
        if before > 0 && out.len() > bounds.out_max {
            out.truncate(before);
            break;
        }
    }
    Ok(out)
}

fn convert_batch(
    header: &BatchHeader,
    section: &[u8],
    magic: i8,
    bounds: Bounds,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let codec = Codec::from_attributes(header.attributes)?;
    let decompressed;
    let records = match codec {
        Codec::None => section,
        _ => {
            decompressed = decompress(codec, section, bounds.decompressed_max)?;
            &decompressed[..]
        }
    };
    let keep_codec = codec != Codec::None && !(magic == MAGIC_0 && codec == Codec::Lz4);
    if !keep_codec {
        return write_records(header, records, magic, false, out);
    }
    let mut inner = Vec::with_capacity(records.len() + records.len() / 4);
    write_records(header, records, magic, true, &mut inner)?;
    let mut value = Vec::with_capacity(inner.len() / 2);
    compress(codec, &inner, None, &mut value);
    let lat = if header.is_log_append_time() && magic == MAGIC_1 {
        ATTR_LOG_APPEND_TIME
    } else {
        0
    };
    let wrapper = Message {
        offset: header.last_offset(),
        magic,
        attributes: codec.id() as i8 | lat,
        timestamp: header.max_timestamp,
        key: None,
        value: Some(&value),
    };
    write_message(out, &wrapper);
    Ok(())
}

/// Writes each record as a message; `inner`: inside a compressed message,
/// where magic 1 numbers the offsets from 0.
fn write_records(
    header: &BatchHeader,
    records: &[u8],
    magic: i8,
    inner: bool,
    out: &mut Vec<u8>,
) -> Result<(), FormatError> {
    let lat = header.is_log_append_time();
    for (i, record) in Records::new(records, header.records_count).enumerate() {
        let record = record.map_err(crate::compression::CompressionError::from)?;
        let offset_delta = i64::from(record.offset_delta);
        let message = Message {
            offset: if inner && magic == MAGIC_1 {
                i as i64
            } else {
                header.base_offset + offset_delta
            },
            magic,
            attributes: if lat && magic == MAGIC_1 && !inner {
                ATTR_LOG_APPEND_TIME
            } else {
                0
            },
            timestamp: if lat {
                header.max_timestamp
            } else {
                header.base_timestamp.wrapping_add(record.timestamp_delta)
            },
            key: record.key,
            value: record.value,
        };
        write_message(out, &message);
    }
    Ok(())
}

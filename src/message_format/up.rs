//! Produce v0-2: a message set becomes one v2 batch, as Kafka 3.x's
//! LogValidator converted it. Every message, and every message inside a
//! compressed one, becomes a record in order with its key, value and
//! timestamp (-1 in magic 0; the wrapper's for a LogAppendTime wrapper);
//! the batch takes the codec of the compressed messages, or none. The batch
//! is CreateTime: the log stamps it when the topic's
//! `message.timestamp.type` is LogAppendTime, as for any batch.

use bytes::Bytes;

use super::{FormatError, Message, Messages};
use crate::compression::{compress, decompress, Codec};
use crate::record::build::{encode_record, BatchFields};
use crate::record::BATCH_HEADER_LEN;

/// One v2 batch (base offset 0) holding the records of `set`. Compressed
/// messages decompress to at most `decompressed_max` bytes all together.
pub fn to_v2_batch(set: &[u8], decompressed_max: usize) -> Result<Bytes, FormatError> {
    let mut section = Section::default();
    let mut codec = Codec::None;
    let mut budget = decompressed_max;
    for message in Messages::new(set) {
        let message = message?;
        match message.codec()? {
            Codec::None => section.push(&message, message.timestamp)?,
            wrapper_codec => {
                let inner = decompress(wrapper_codec, message.value.unwrap_or_default(), budget)?;
                budget -= inner.len();
                if codec == Codec::None {
                    codec = wrapper_codec;
                }
                for m in Messages::new(&inner) {
                    let m = m?;
                    if m.codec()? != Codec::None {
                        return Err(FormatError::Nested);
                    }
                    let ts = if message.is_log_append_time() {
                        message.timestamp
                    } else {
                        m.timestamp
                    };
                    section.push(&m, ts)?;
                }
            }
        }
        if section.records.len() > decompressed_max {
            return Err(FormatError::TooLarge {
                max: decompressed_max,
            });
        }
    }
    section.into_batch(codec)
}

/// The records section of the batch being built.
#[derive(Default)]
struct Section {
    records: Vec<u8>,
    count: i32,
    /// The first record's timestamp, which the others are deltas from.
    base_ts: Option<i64>,
    max_ts: i64,
}

impl Section {
    fn push(&mut self, m: &Message<'_>, timestamp: i64) -> Result<(), FormatError> {
        let base_ts = *self.base_ts.get_or_insert(timestamp);
        self.max_ts = if self.count == 0 {
            timestamp
        } else {
            self.max_ts.max(timestamp)
        };
        let offset_delta = self.count;
        self.count = self.count.checked_add(1).ok_or(FormatError::TooLarge {
            max: i32::MAX as usize,
        })?;
        encode_record(
            &mut self.records,
            offset_delta,
            base_ts,
            &(m.key, m.value, timestamp, &[]),
        );
        Ok(())
    }

    fn into_batch(self, codec: Codec) -> Result<Bytes, FormatError> {
        let Some(base_ts) = self.base_ts else {
            return Err(FormatError::Empty);
        };
        let mut out = Vec::with_capacity(BATCH_HEADER_LEN + self.records.len());
        out.resize(BATCH_HEADER_LEN, 0);
        compress(codec, &self.records, None, &mut out);
        let fields = BatchFields {
            base_offset: 0,
            attributes: codec.apply_to(0),
            count: self.count,
            base_ts,
            max_ts: self.max_ts,
        };
        fields.write(&mut out);
        Ok(Bytes::from(out))
    }
}

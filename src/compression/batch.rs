//! Whole-batch operations: validating a compressed batch's records and
//! rebuilding a batch in another codec.

use std::borrow::Cow;

use bytes::Bytes;

use super::codecs::{compress, decompress, with_reader};
use super::walk::{check_slice, check_stream};
use super::{check_produce_version, Codec, CompressionError, Levels, TopicCompression};
use crate::record::{
    check_header, compute_crc, recompute_crc, BatchHeader, BatchInfo, DeltaSpan, Record,
    RecordError, Validated, ATTRIBUTES_OFFSET, BATCH_HEADER_LEN, BATCH_LENGTH_OFFSET, LOG_OVERHEAD,
};

/// Parses and checks the header and CRC of `batch`, exactly one whole batch.
fn parse_batch(batch: &[u8]) -> Result<(BatchHeader, Codec), CompressionError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        return Err(RecordError::Corrupt("batch length does not match its bytes").into());
    }
    let codec = Codec::from_attributes(header.attributes)?;
    check_header(&header)?;
    if compute_crc(batch) != header.crc {
        return Err(RecordError::Corrupt("CRC mismatch").into());
    }
    Ok((header, codec))
}

/// The codec of the batch whose header starts `header` (at least the first
/// [`BATCH_HEADER_LEN`] bytes), for the fetch path's zstd version rule.
pub fn batch_codec(header: &[u8]) -> Result<Codec, CompressionError> {
    Codec::from_attributes(BatchHeader::parse(header)?.attributes)
}

/// Checks one whole batch (header, CRC, and for every codec the records
/// inside): the decompressed records section must be exactly recordsCount
/// well-formed records with offset deltas 0, 1, 2, ... and at most
/// `max_decompressed` bytes. Decompresses as a stream, holding one window
/// of the output (64 KiB or the largest record), not the whole batch.
/// Returns the span of the records' timestamp deltas.
pub fn validate_compressed(
    batch: &[u8],
    max_decompressed: usize,
) -> Result<DeltaSpan, CompressionError> {
    let (header, codec) = parse_batch(batch)?;
    let section = &batch[BATCH_HEADER_LEN..];
    match codec {
        Codec::None => check_slice(section, header.records_count),
        _ => with_reader(codec, section, max_decompressed, |reader| {
            check_stream(reader, header.records_count, codec, max_decompressed)
        }),
    }
}

/// Rebuilds one whole, valid batch with its records compressed in `target`
/// (at `level`, or the codec's default). The decompressed record bytes are
/// copied, never re-encoded, so every record field survives byte for byte;
/// the 61-byte header is kept except for the codec bits of the attributes,
/// batchLength and the CRC, which are recomputed. Records are checked as
/// [`validate_compressed`] does and may take at most `max_decompressed`
/// bytes.
pub fn recompress_batch(
    batch: &[u8],
    target: Codec,
    level: Option<i32>,
    max_decompressed: usize,
) -> Result<Bytes, CompressionError> {
    recompress_spanned(batch, target, level, max_decompressed).map(|(rebuilt, _)| rebuilt)
}

/// [`recompress_batch`], with the span of the records' timestamp deltas
/// its check of the records noted.
fn recompress_spanned(
    batch: &[u8],
    target: Codec,
    level: Option<i32>,
    max_decompressed: usize,
) -> Result<(Bytes, DeltaSpan), CompressionError> {
    let (header, codec) = parse_batch(batch)?;
    let section = &batch[BATCH_HEADER_LEN..];
    let records: Cow<'_, [u8]> = match codec {
        Codec::None if section.len() > max_decompressed => {
            return Err(CompressionError::TooLarge {
                max: max_decompressed,
            })
        }
        Codec::None => Cow::Borrowed(section),
        _ => Cow::Owned(decompress(codec, section, max_decompressed)?),
    };
    let span = check_slice(&records, header.records_count)?;

    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + records.len() / 2);
    out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
    compress(target, &records, level, &mut out);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| {
        CompressionError::Batch(RecordError::TooLarge {
            size: out.len() as u64,
            max: i32::MAX as u64,
        })
    })?;
    out[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = target.apply_to(header.attributes);
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    recompute_crc(&mut out);
    debug_assert!(parse_batch(&out).is_ok(), "rebuilt batch must parse");
    Ok((Bytes::from(out), span))
}

/// What the produce path knows about one partition's topic and request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducePolicy {
    /// The topic's `compression.type`.
    pub topic: TopicCompression,
    /// The topic's `compression.<codec>.level` values.
    pub levels: Levels,
    /// The most bytes one batch's records may decompress to.
    pub decompressed_bytes_max: usize,
    /// The Produce request's version (zstd needs v7+).
    pub api_version: i16,
    /// How far from the broker's clock record timestamps may be; none for
    /// a `LogAppendTime` topic.
    pub timestamps: Option<TimestampBounds>,
    /// The broker's clock for this request, Unix milliseconds.
    pub now_ms: i64,
}

/// Kafka's RecordBatch.NO_TIMESTAMP.
const NO_TIMESTAMP: i64 = -1;

/// How far a record's CreateTime may be from the broker's clock
/// (`message.timestamp.before.max.ms`, `message.timestamp.after.max.ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampBounds {
    pub before_ms: i64,
    pub after_ms: i64,
}

impl TimestampBounds {
    /// Whether `timestamp` is within the bounds of `now_ms`. A record
    /// without a timestamp (-1) is, as Kafka lets it through.
    pub fn admits(&self, timestamp: i64, now_ms: i64) -> bool {
        timestamp == NO_TIMESTAMP
            || (timestamp >= now_ms.saturating_sub(self.before_ms)
                && timestamp <= now_ms.saturating_add(self.after_ms))
    }
}

/// Everything the produce path does with compression, for one partition's
/// records (one or more concatenated batches): validates every batch
/// ([`validate_batches`], then the records inside compressed ones), refuses
/// zstd before Produce v7, and rebuilds batches whose codec differs from the
/// topic's `compression.type`, and refuses a batch holding a record whose
/// timestamp is out of the topic's bounds (`InvalidTimestamp`; the
/// records to name are [`out_of_range_timestamps`]'s). Returns `records` itself (no copy) when no
/// batch was rebuilt. Rebuilt batches are held to `max_batch_bytes` again.
/// The result is [`Validated`]: the log trusts it without a second pass.
pub fn prepare_produce(
    records: &Bytes,
    max_batch_bytes: u32,
    policy: &ProducePolicy,
) -> Result<Validated, CompressionError> {
    let checked = Validated::check(records.clone(), max_batch_bytes)?;
    // The batches as they will be stored, once one of them is rebuilt.
    let mut rebuilt: Option<Vec<Bytes>> = None;
    for (i, info) in checked.infos().iter().enumerate() {
        let batch = records.slice(info.offset..info.offset + info.total_len);
        let codec = Codec::from_attributes(info.attributes)?;
        check_produce_version(codec, policy.api_version)?;
        let target = policy.topic.stored_codec(codec);
        // Every batch's records are walked once: as they are, or to
        // rebuild them; the walk gives their timestamps' span.
        if target == codec {
            let span = match info.timestamp_deltas {
                Some(span) => span,
                None => validate_compressed(&batch, policy.decompressed_bytes_max)?,
            };
            check_timestamps(&batch, info, span, policy)?;
            if let Some(rebuilt) = &mut rebuilt {
                rebuilt.push(batch);
            }
            continue;
        }
        let level = policy.levels.for_codec(target);
        let (new, span) = recompress_spanned(&batch, target, level, policy.decompressed_bytes_max)?;
        check_timestamps(&batch, info, span, policy)?;
        if new.len() as u64 > u64::from(max_batch_bytes) {
            return Err(RecordError::TooLarge {
                size: new.len() as u64,
                max: u64::from(max_batch_bytes),
            }
            .into());
        }
        let earlier = &checked.infos()[..i];
        rebuilt
            .get_or_insert_with(|| {
                earlier
                    .iter()
                    .map(|e| records.slice(e.offset..e.offset + e.total_len))
                    .collect()
            })
            .push(new);
    }
    let Some(mut rebuilt) = rebuilt else {
        return Ok(checked);
    };
    // Rebuilt batches are new bytes: validated as such (the rare path of a
    // topic that recompresses).
    let bytes = if rebuilt.len() == 1 {
        rebuilt.pop().expect("one batch")
    } else {
        Bytes::from(rebuilt.concat())
    };
    Ok(Validated::check(bytes, max_batch_bytes)?)
}

/// Refuses `batch` (described by `info`) if a record's timestamp is out of
/// the topic's bounds. The span of its records' timestamps, which the
/// validation walk noted, decides, unless it leaves the bounds: then the
/// records are read one by one (a record without a timestamp passes).
fn check_timestamps(
    batch: &Bytes,
    info: &BatchInfo,
    span: DeltaSpan,
    policy: &ProducePolicy,
) -> Result<(), CompressionError> {
    let Some(bounds) = policy.timestamps else {
        return Ok(());
    };
    let admits =
        |delta: i64| bounds.admits(info.base_timestamp.saturating_add(delta), policy.now_ms);
    if span.is_empty() || (admits(span.min) && admits(span.max)) {
        return Ok(());
    }
    if out_of_range_timestamps(batch, bounds, policy, 1)?.count > 0 {
        return Err(CompressionError::InvalidTimestamp);
    }
    Ok(())
}

/// Records a produce refuses one by one (Kafka's `record_errors`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RefusedRecords {
    /// How many records are refused.
    pub count: usize,
    /// Where the first of them are (at most the bound the caller gave),
    /// counted over every record of the partition's batches, control
    /// batches' included, so an index names a position in what was sent.
    pub indexes: Vec<i32>,
}

impl RefusedRecords {
    fn note(&mut self, index: i32, indexes_max: usize) {
        self.count += 1;
        if self.indexes.len() < indexes_max {
            self.indexes.push(index);
        }
    }
}

/// The records of `records` (whole, already validated batches) that have
/// no key, as a compacted topic must refuse them; the first `indexes_max`
/// by index. Compressed batches are decompressed within `max_decompressed`;
/// control batches carry no user records.
pub fn keyless_records(
    records: &Bytes,
    max_decompressed: usize,
    indexes_max: usize,
) -> Result<RefusedRecords, CompressionError> {
    let mut keyless = RefusedRecords::default();
    for_each_user_record(records, max_decompressed, |index, _, record| {
        if record.key.is_none() {
            keyless.note(index, indexes_max);
        }
    })?;
    Ok(keyless)
}

/// The records of `records` (whole, already validated batches) whose
/// timestamp `bounds` do not admit at `policy.now_ms`, as Kafka's
/// `LogValidator` refuses them; the first `indexes_max` by index.
pub fn out_of_range_timestamps(
    records: &Bytes,
    bounds: TimestampBounds,
    policy: &ProducePolicy,
    indexes_max: usize,
) -> Result<RefusedRecords, CompressionError> {
    let mut refused = RefusedRecords::default();
    for_each_user_record(
        records,
        policy.decompressed_bytes_max,
        |index, header, record| {
            let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
            if !bounds.admits(timestamp, policy.now_ms) {
                refused.note(index, indexes_max);
            }
        },
    )?;
    Ok(refused)
}

/// Calls `each` with every record of `records` (whole, already validated
/// batches) outside control batches, its index among all the batches'
/// records and its batch's header; compressed batches are decompressed
/// within `max_decompressed`.
fn for_each_user_record(
    records: &Bytes,
    max_decompressed: usize,
    mut each: impl FnMut(i32, &BatchHeader, &Record<'_>),
) -> Result<(), CompressionError> {
    let mut index: i32 = 0;
    let mut at = 0;
    while at < records.len() {
        let header = BatchHeader::parse(&records[at..])?;
        let batch = &records[at..at + header.total_len()];
        at += header.total_len();
        if header.is_control() {
            index = index.saturating_add(header.records_count);
            continue;
        }
        let section = &batch[BATCH_HEADER_LEN..];
        let codec = Codec::from_attributes(header.attributes)?;
        let decompressed: Cow<'_, [u8]> = match codec {
            Codec::None => Cow::Borrowed(section),
            codec => Cow::Owned(decompress(codec, section, max_decompressed)?),
        };
        for record in crate::record::Records::new(&decompressed, header.records_count) {
            each(index, &header, &record?);
            index = index.saturating_add(1);
        }
    }
    Ok(())
}

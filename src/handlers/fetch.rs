//! Fetch: read plans from the owners, trimmed to the byte limits, with
//! long polling on min_bytes / max_wait_ms.
//!
//! The owner answers with file slices, not bytes; this (the connection's)
//! shard reads them. Whole batches only: Kafka clients accept a truncated
//! last batch, but none is needed.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::ApiSpec;
use crate::shard::{ReadItem, ReadOutcome, Shard, TopicPartition};
use crate::storage::FileSlice;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::Fetch,
    min: 4,
    max: 12,
};

/// Bytes in a batch before its length field ends: baseOffset + batchLength.
const BATCH_LENGTH_END: usize = 12;

struct Wanted {
    tp: TopicPartition,
    offset: i64,
    partition_max_bytes: u32,
}

pub async fn handle(
    shard: &Rc<Shard>,
    _header: &RequestHeader,
    request: FetchRequest,
) -> FetchResponse {
    let max_wait = Duration::from_millis(
        (request.max_wait_ms.max(0) as u64).min(shard.config.fetch_max_wait_ms_max),
    );
    let deadline = Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as u64;
    let response_max = request.max_bytes.max(0) as u64;
    let wanted: Vec<Wanted> = request
        .topics
        .iter()
        .flat_map(|t| {
            let topic: Arc<str> = Arc::from(t.topic.0.as_str());
            t.partitions.iter().map(move |p| Wanted {
                tp: TopicPartition {
                    topic: topic.clone(),
                    partition: p.partition,
                },
                offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes.max(0) as u32,
            })
        })
        .collect();
    loop {
        let outcomes = read_all(shard, &wanted, response_max).await;
        let parts = collect(&wanted, outcomes, response_max);
        let bytes: u64 = parts.iter().map(|p| p.records.len() as u64).sum();
        let any_error = parts.iter().any(|p| p.error != 0);
        let now = Instant::now();
        if bytes >= min_bytes || any_error || now >= deadline || shard.is_stopping() {
            return respond(&request, parts);
        }
        let waits = parts
            .iter()
            .zip(&wanted)
            .map(|(p, w)| (w.tp.clone(), p.high_watermark))
            .collect();
        let woke = crate::runtime::timeout(deadline - now, shard.wait_for_append(waits)).await;
        if woke.is_none() {
            // Waited the whole max_wait: answer with what there is now.
            let outcomes = read_all(shard, &wanted, response_max).await;
            return respond(&request, collect(&wanted, outcomes, response_max));
        }
    }
}

async fn read_all(shard: &Rc<Shard>, wanted: &[Wanted], response_max: u64) -> Vec<ReadOutcome> {
    let items = wanted
        .iter()
        .map(|w| ReadItem {
            tp: w.tp.clone(),
            offset: w.offset,
            max_bytes: (w.partition_max_bytes as u64).min(response_max) as u32,
            min_one_batch: true,
        })
        .collect();
    shard.read(items).await
}

struct Part {
    error: i16,
    high_watermark: i64,
    log_start_offset: i64,
    records: Bytes,
}

/// Reads each partition's slices and trims to the response limit at batch
/// boundaries; only the first partition with data may exceed it (Kafka's rule).
fn collect(wanted: &[Wanted], outcomes: Vec<ReadOutcome>, response_max: u64) -> Vec<Part> {
    let mut used = 0u64;
    wanted
        .iter()
        .zip(outcomes)
        .map(|(w, o)| {
            let mut part = Part {
                error: o.error,
                high_watermark: o.high_watermark,
                log_start_offset: o.log_start_offset,
                records: Bytes::new(),
            };
            if o.error != 0 || o.slices.is_empty() {
                return part;
            }
            match read_slices(&o.slices) {
                Ok(bytes) => {
                    let budget = if used == 0 { u64::MAX } else { response_max.saturating_sub(used) };
                    let keep = whole_batches_within(&bytes, budget);
                    used += keep as u64;
                    part.records = bytes.freeze().slice(..keep);
                }
                Err(e) => {
                    tracing::error!(topic = %w.tp.topic, partition = w.tp.partition, error = %e, "reading log for fetch");
                    part.error = ResponseError::KafkaStorageError.code();
                }
            }
            part
        })
        .collect()
}

/// Copies the slices out of the page cache. (The zero-copy path sends them
/// with sendfile instead.)
fn read_slices(slices: &[FileSlice]) -> std::io::Result<BytesMut> {
    use std::os::unix::fs::FileExt;
    let total: usize = slices.iter().map(|s| s.len as usize).sum();
    let mut buf = BytesMut::zeroed(total);
    let mut at = 0;
    for s in slices {
        let len = s.len as usize;
        s.file.read_exact_at(&mut buf[at..at + len], s.position)?;
        at += len;
    }
    Ok(buf)
}

/// The length of the longest run of whole batches at the start of `bytes`
/// that fits in `budget`; at least the first batch.
fn whole_batches_within(bytes: &[u8], budget: u64) -> usize {
    let mut end = 0usize;
    while end + BATCH_LENGTH_END <= bytes.len() {
        let len = i32::from_be_bytes(bytes[end + 8..end + 12].try_into().expect("4 bytes"));
        let next = end + BATCH_LENGTH_END + len.max(0) as usize;
        if next > bytes.len() || (end > 0 && next as u64 > budget) {
            break;
        }
        end = next;
    }
    end
}

fn respond(request: &FetchRequest, parts: Vec<Part>) -> FetchResponse {
    let mut parts = parts.into_iter();
    let mut response = FetchResponse::default();
    response.responses = request
        .topics
        .iter()
        .map(|t| {
            let mut topic = FetchableTopicResponse::default();
            topic.topic = t.topic.clone();
            topic.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let part = parts.next().expect("one part per requested partition");
                    let mut data = PartitionData::default();
                    data.partition_index = p.partition;
                    data.error_code = part.error;
                    data.high_watermark = part.high_watermark;
                    data.last_stable_offset = part.high_watermark;
                    data.log_start_offset = part.log_start_offset;
                    data.aborted_transactions = Some(Vec::new());
                    data.preferred_read_replica = BrokerId(-1);
                    data.records = Some(part.records);
                    data
                })
                .collect();
            topic
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[8..12].copy_from_slice(&((len - 12) as i32).to_be_bytes());
        b
    }

    #[test]
    fn trims_at_batch_boundaries_but_keeps_the_first() {
        let mut bytes = batch(100);
        bytes.extend(batch(50));
        assert_eq!(whole_batches_within(&bytes, 10), 100);
        assert_eq!(whole_batches_within(&bytes, 149), 100);
        assert_eq!(whole_batches_within(&bytes, 150), 150);
        assert_eq!(whole_batches_within(&bytes[..120], 1000), 100);
    }
}

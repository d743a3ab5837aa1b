//! Produce v0-2 and Fetch v0-3: the APIs that carry records in the magic 0
//! and 1 message formats (`crate::message_format`). A produced message set
//! becomes one v2 batch before the Produce v3 handler sees it; a Fetch
//! v0-3 is served as a Fetch v4 with its byte limits lowered to
//! `fetch.down_conversion_max_bytes`, whose batches are read into memory
//! here, on the connection's shard, and down-converted. Newer clients never
//! come through here: their fetches stay zero-copy.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol_v3 as v3;
use v3::messages::{FetchRequest, FetchResponse, ProduceRequest, ProduceResponse};

use super::fixups::{Answer, Forward};
use super::{decode, encode, Carried};
use crate::handlers::RequestError;
use crate::message_format::down::{from_v2_batches, Bounds};
use crate::message_format::up::to_v2_batch;
use crate::message_format::{MAGIC_0, MAGIC_1};

/// The bounds the record conversions work under, from the broker config.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// `decompressed_batch_bytes_max`: one message set or batch, inflated.
    pub(crate) decompressed_max: usize,
    /// `fetch.down_conversion_max_bytes`.
    pub(crate) down_conversion_max: usize,
}

/// The first Fetch version whose records are v2 batches; v0-1 read magic 0.
const FETCH_MAGIC_1_SINCE: i16 = 2;

/// Each partition's message set as a v2 batch. A set that does not convert
/// goes on with no records (the handler answers CORRUPT_MESSAGE) and its
/// own error code replaces that answer.
pub(super) fn produce(
    buf: &mut Bytes,
    key: ApiKey,
    (version, to): (i16, i16),
    limits: Limits,
) -> Result<Forward, RequestError> {
    let mut request: ProduceRequest = decode(buf, key, version, version)?;
    let mut refusals = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data.iter_mut() {
        let mut topic_refusals = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data.iter_mut() {
            let converted = p
                .records
                .as_deref()
                .map(|set| to_v2_batch(set, limits.decompressed_max));
            let refusal = match converted {
                Some(Ok(batch)) => {
                    crate::stats::PRODUCE_UP_CONVERSIONS.add(1);
                    p.records = Some(batch);
                    None
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "produce v{version} message set refused");
                    p.records = None;
                    Some(e.error_code())
                }
                None => None,
            };
            topic_refusals.push(refusal);
        }
        refusals.push(topic_refusals);
    }
    let mut body = BytesMut::new();
    encode(&request, &mut body, to)?;
    Ok(Forward {
        body: body.freeze(),
        carried: Carried::default(),
        answer: Answer::Produce(refusals),
    })
}

pub(super) fn produce_answer(
    buf: &mut Bytes,
    key: ApiKey,
    (from, to): (i16, i16),
    refusals: Vec<Vec<Option<i16>>>,
) -> Result<Bytes, RequestError> {
    let mut response: ProduceResponse = decode(buf, key, from, from)?;
    for (t, topic_refusals) in response.responses.iter_mut().zip(refusals) {
        for (p, refusal) in t.partition_responses.iter_mut().zip(topic_refusals) {
            if let Some(code) = refusal {
                p.error_code = code;
            }
        }
    }
    let mut out = BytesMut::new();
    encode(&response, &mut out, to)?;
    Ok(out.freeze())
}

/// A Fetch v0-3 as a Fetch v4 that reads at most
/// `fetch.down_conversion_max_bytes` (save a first batch past it, as any
/// fetch returns).
pub(super) fn fetch(
    buf: &mut Bytes,
    key: ApiKey,
    (version, to): (i16, i16),
    limits: Limits,
) -> Result<Forward, RequestError> {
    let mut request: FetchRequest = decode(buf, key, version, version)?;
    let max = i32::try_from(limits.down_conversion_max).unwrap_or(i32::MAX);
    // v0-2 have no response limit: the field decodes as its default.
    request.max_bytes = if version >= 3 {
        request.max_bytes.min(max)
    } else {
        max
    };
    let partitions = request
        .topics
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut());
    for p in partitions {
        p.partition_max_bytes = p.partition_max_bytes.min(max);
    }
    let mut body = BytesMut::new();
    encode(&request, &mut body, to)?;
    let magic = if version < FETCH_MAGIC_1_SINCE {
        MAGIC_0
    } else {
        MAGIC_1
    };
    Ok(Forward {
        body: body.freeze(),
        carried: Carried::default(),
        answer: Answer::DownConvert { magic, limits },
    })
}

/// The Fetch v4 answer with every partition's batches down-converted.
pub(super) fn fetch_answer(
    buf: &mut Bytes,
    key: ApiKey,
    (from, to): (i16, i16),
    magic: i8,
    limits: Limits,
) -> Result<Bytes, RequestError> {
    let mut response: FetchResponse = decode(buf, key, from, from)?;
    let bounds = Bounds {
        out_max: limits.down_conversion_max,
        decompressed_max: limits.decompressed_max,
    };
    crate::stats::FETCH_DOWN_CONVERSIONS.add(1);
    let partitions = response
        .responses
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut());
    for p in partitions {
        // Fields v4 added, which the client's version has no place for.
        p.last_stable_offset = -1;
        p.log_start_offset = -1;
        p.aborted_transactions = None;
        let Some(batches) = p.records.take() else {
            continue;
        };
        if batches.is_empty() {
            p.records = Some(batches);
            continue;
        }
        crate::stats::FETCH_DOWN_CONVERTED_BYTES.add(batches.len() as u64);
        match from_v2_batches(&batches, magic, bounds) {
            Ok(set) => p.records = Some(Bytes::from(set)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot down-convert fetched batches");
                p.error_code = e.error_code();
            }
        }
    }
    let mut out = BytesMut::new();
    encode(&response, &mut out, to)?;
    Ok(out.freeze())
}

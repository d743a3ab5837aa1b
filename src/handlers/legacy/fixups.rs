//! Per API: the forwarded request, and the client's answer rebuilt from the
//! forwarded version's. Most versions differ only in fields the forwarded
//! version adds with a neutral default; the exceptions are spelled out.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol_v3 as v3;
use v3::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use v3::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use v3::messages::{
    CreateAclsRequest, CreateAclsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteAclsRequest, DeleteAclsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeAclsRequest, DescribeAclsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};

use super::records::{self, Limits};
use super::{decode, encode, reencode, Carried};
use crate::handlers::RequestError;

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// DescribeConfigs' ConfigSource.DEFAULT_CONFIG: v0 said `is_default`.
const DEFAULT_CONFIG: i8 = 5;

/// A request ready to dispatch at the forwarded version.
pub(crate) struct Forward {
    pub(super) body: Bytes,
    pub(super) carried: Carried,
    pub(super) answer: Answer,
}

/// How to build the client's answer from the forwarded one.
pub(crate) enum Answer {
    /// Decode at the forwarded version, encode at the client's.
    Plain,
    /// ListOffsets v0: what each partition asked, in request order.
    OldStyleOffsets(Vec<Vec<OffsetsAsk>>),
    /// Produce v0-2: per topic, per partition, the error code of a message
    /// set that did not convert.
    Produce(Vec<Vec<Option<i16>>>),
    /// Fetch v0-3: the batches go back in this message format.
    DownConvert { magic: i8, limits: Limits },
}

/// One ListOffsets v0 partition. Kafka 3.x answered it from segment base
/// offsets and file times (`legacyFetchOffsetsBefore`): latest first, then
/// older segment starts, at most `max_num_offsets`. Sluice answers the same
/// array for latest (high watermark, then log start) and earliest; for a
/// time it gives the first offset at or after the time (the forwarded
/// version's answer), or latest when no record is that new.
#[derive(Clone, Copy, Debug)]
pub(super) struct OffsetsAsk {
    timestamp: i64,
    max_num_offsets: usize,
}

impl OffsetsAsk {
    /// The timestamps asked in the forwarded request for this partition.
    fn queries(&self) -> &'static [i64] {
        match self.timestamp {
            LATEST if self.max_num_offsets > 1 => &[LATEST, EARLIEST],
            LATEST => &[LATEST],
            EARLIEST => &[EARLIEST],
            _ => &[0, LATEST], // 0 stands for the asked time, see `forward`
        }
    }

    /// The v0 answer from the forwarded answers to [`Self::queries`].
    fn answer(&self, got: &[ListOffsetsPartitionResponse]) -> (i16, Vec<i64>) {
        if let Some(failed) = got.iter().find(|p| p.error_code != 0) {
            return (failed.error_code, Vec::new());
        }
        let offsets: Vec<i64> = match (self.timestamp, got) {
            (LATEST, [latest, earliest]) if earliest.offset < latest.offset => {
                vec![latest.offset, earliest.offset]
            }
            (LATEST | EARLIEST, [first, ..]) => vec![first.offset],
            (_, [at, latest]) if at.offset < 0 => vec![latest.offset],
            (_, [at, ..]) => vec![at.offset],
            (_, []) => Vec::new(),
        };
        let kept = offsets.into_iter().filter(|&o| o >= 0);
        (0, kept.take(self.max_num_offsets).collect())
    }
}

pub(super) fn forward_request(
    key: ApiKey,
    (version, to): (i16, i16),
    buf: &mut Bytes,
    limits: Limits,
) -> Result<Forward, RequestError> {
    let versions = (version, to);
    let plain = |body| Forward {
        body,
        carried: Carried::default(),
        answer: Answer::Plain,
    };
    match key {
        ApiKey::Produce => records::produce(buf, key, versions, limits),
        ApiKey::Fetch => records::fetch(buf, key, versions, limits),
        ApiKey::ListOffsets => list_offsets_v0(buf, key, versions),
        ApiKey::OffsetCommit => {
            let mut times = Vec::new();
            let body = reencode(buf, key, versions, |r: &mut OffsetCommitRequest| {
                let partitions = r.topics.iter_mut().flat_map(|t| t.partitions.iter_mut());
                for p in partitions {
                    // v1 only; v2+ commit at the broker's clock.
                    times.push(std::mem::replace(&mut p.commit_timestamp, -1));
                }
            })?;
            Ok(Forward {
                body,
                carried: Carried {
                    commit_timestamps: times,
                },
                answer: Answer::Plain,
            })
        }
        ApiKey::OffsetFetch => {
            reencode(buf, key, versions, |_: &mut OffsetFetchRequest| {}).map(plain)
        }
        ApiKey::CreateTopics => {
            reencode(buf, key, versions, |_: &mut CreateTopicsRequest| {}).map(plain)
        }
        ApiKey::DeleteTopics => {
            reencode(buf, key, versions, |_: &mut DeleteTopicsRequest| {}).map(plain)
        }
        ApiKey::DescribeConfigs => {
            reencode(buf, key, versions, |_: &mut DescribeConfigsRequest| {}).map(plain)
        }
        ApiKey::OffsetForLeaderEpoch => {
            reencode(buf, key, versions, |_: &mut OffsetForLeaderEpochRequest| {}).map(plain)
        }
        ApiKey::WriteTxnMarkers => {
            reencode(buf, key, versions, |_: &mut WriteTxnMarkersRequest| {}).map(plain)
        }
        // v0 knows only literal patterns: its requests decode with
        // LITERAL, so its filters match literal ACLs only and its answers
        // hold nothing v0 cannot say.
        ApiKey::DescribeAcls => {
            reencode(buf, key, versions, |_: &mut DescribeAclsRequest| {}).map(plain)
        }
        ApiKey::CreateAcls => {
            reencode(buf, key, versions, |_: &mut CreateAclsRequest| {}).map(plain)
        }
        ApiKey::DeleteAcls => {
            reencode(buf, key, versions, |_: &mut DeleteAclsRequest| {}).map(plain)
        }
        _ => Err(RequestError::Encode(format!("{key:?} is not bridged"))),
    }
}

/// ListOffsets v0: each partition becomes the queries its answer needs.
fn list_offsets_v0(
    buf: &mut Bytes,
    key: ApiKey,
    (version, to): (i16, i16),
) -> Result<Forward, RequestError> {
    let request: ListOffsetsRequest = decode(buf, key, version, version)?;
    let mut forwarded = ListOffsetsRequest::default();
    forwarded.replica_id = request.replica_id;
    let mut asks = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let mut topic = ListOffsetsTopic::default();
        topic.name = t.name;
        let mut topic_asks = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let ask = OffsetsAsk {
                timestamp: p.timestamp,
                max_num_offsets: usize::try_from(p.max_num_offsets).unwrap_or(0),
            };
            for &q in ask.queries() {
                let mut query = ListOffsetsPartition::default();
                query.partition_index = p.partition_index;
                query.timestamp = if q == 0 { p.timestamp } else { q };
                topic.partitions.push(query);
            }
            topic_asks.push(ask);
        }
        forwarded.topics.push(topic);
        asks.push(topic_asks);
    }
    let mut body = BytesMut::new();
    encode(&forwarded, &mut body, to)?;
    Ok(Forward {
        body: body.freeze(),
        carried: Carried::default(),
        answer: Answer::OldStyleOffsets(asks),
    })
}

/// The client's response body from the forwarded version's.
pub(super) fn answer(
    key: ApiKey,
    from: i16,
    to: i16,
    buf: &mut Bytes,
    answer: Answer,
) -> Result<Bytes, RequestError> {
    let versions = (from, to);
    match answer {
        Answer::Plain => {}
        Answer::OldStyleOffsets(asks) => return old_style_offsets(buf, key, versions, asks),
        Answer::Produce(refusals) => return records::produce_answer(buf, key, versions, refusals),
        Answer::DownConvert { magic, limits } => {
            return records::fetch_answer(buf, key, versions, magic, limits)
        }
    }
    match key {
        ApiKey::OffsetCommit => reencode(buf, key, versions, |_: &mut OffsetCommitResponse| {}),
        ApiKey::OffsetFetch => reencode(buf, key, versions, |_: &mut OffsetFetchResponse| {}),
        ApiKey::CreateTopics => reencode(buf, key, versions, |r: &mut CreateTopicsResponse| {
            if to < 1 {
                r.topics.iter_mut().for_each(|t| t.error_message = None);
            }
        }),
        ApiKey::DeleteTopics => reencode(buf, key, versions, |_: &mut DeleteTopicsResponse| {}),
        ApiKey::DescribeConfigs => {
            reencode(buf, key, versions, |r: &mut DescribeConfigsResponse| {
                let configs = r.results.iter_mut().flat_map(|r| r.configs.iter_mut());
                for c in configs {
                    c.is_default = to == 0 && c.config_source == DEFAULT_CONFIG;
                }
            })
        }
        ApiKey::OffsetForLeaderEpoch => reencode(
            buf,
            key,
            versions,
            |_: &mut OffsetForLeaderEpochResponse| {},
        ),
        ApiKey::WriteTxnMarkers => {
            reencode(buf, key, versions, |_: &mut WriteTxnMarkersResponse| {})
        }
        ApiKey::DescribeAcls => reencode(buf, key, versions, |_: &mut DescribeAclsResponse| {}),
        ApiKey::CreateAcls => reencode(buf, key, versions, |_: &mut CreateAclsResponse| {}),
        ApiKey::DeleteAcls => reencode(buf, key, versions, |_: &mut DeleteAclsResponse| {}),
        _ => Err(RequestError::Encode(format!("{key:?} is not bridged"))),
    }
}

/// ListOffsets v0's answer: offset arrays built from the forwarded answers.
fn old_style_offsets(
    buf: &mut Bytes,
    key: ApiKey,
    (from, to): (i16, i16),
    asks: Vec<Vec<OffsetsAsk>>,
) -> Result<Bytes, RequestError> {
    let got: ListOffsetsResponse = decode(buf, key, from, from)?;
    let mut response = ListOffsetsResponse::default();
    for (t, topic_asks) in got.topics.into_iter().zip(asks) {
        let mut topic = ListOffsetsTopicResponse::default();
        let mut answers = t.partitions.as_slice();
        for ask in topic_asks {
            let n = ask.queries().len().min(answers.len());
            let (mine, rest) = answers.split_at(n);
            answers = rest;
            let mut p = ListOffsetsPartitionResponse::default();
            p.partition_index = mine.first().map_or(-1, |m| m.partition_index);
            (p.error_code, p.old_style_offsets) = ask.answer(mine);
            topic.partitions.push(p);
        }
        topic.name = t.name;
        response.topics.push(topic);
    }
    let mut out = BytesMut::new();
    encode(&response, &mut out, to)?;
    Ok(out.freeze())
}

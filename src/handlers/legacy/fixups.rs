//! Per API: the forwarded request, and the client's answer rebuilt from the
//! forwarded version's. Most versions differ only in fields the forwarded
//! version adds with a neutral default; the exceptions are spelled out.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol_v3 as v3;
use v3::messages::{
    CreateAclsRequest, CreateAclsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteAclsRequest, DeleteAclsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeAclsRequest, DescribeAclsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeLogDirsRequest, DescribeLogDirsResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};

use super::records::{self, Limits};
use super::{reencode, Carried};
use crate::handlers::RequestError;

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
    /// Produce v0-2: per topic, per partition, the error code of a message
    /// set that did not convert.
    Produce(Vec<Vec<Option<i16>>>),
    /// Fetch v0-3: the batches go back in this message format.
    DownConvert { magic: i8, limits: Limits },
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
        ApiKey::DescribeLogDirs => {
            reencode(buf, key, versions, |_: &mut DescribeLogDirsRequest| {}).map(plain)
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
        ApiKey::DescribeLogDirs => {
            reencode(buf, key, versions, |_: &mut DescribeLogDirsResponse| {})
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

//! OffsetCommit: acknowledged once written to `__consumer_offsets`.
//! v9 (KIP-848) reads `generation_id_or_member_epoch` as a member epoch for
//! "consumer" groups only; every group here is classic, for which Kafka 3.9
//! takes it as the generation, as in v8.

use std::rc::Rc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use kafka_protocol::ResponseError;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::OffsetCommit,
    // v0-1 through the version bridge (`handlers::legacy`).
    min: 0,
    max: 9,
};

/// `commit_timestamps`: OffsetCommit v1's per-partition commit times, in
/// request order, carried by the version bridge (empty otherwise).
/// Needs Read on the group (else every partition answers
/// GROUP_AUTHORIZATION_FAILED) and Read on each topic
/// (TOPIC_AUTHORIZATION_FAILED), as Kafka checks it.
pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
    version: i16,
    mut request: OffsetCommitRequest,
    commit_timestamps: Vec<i64>,
) -> OffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let mut response = OffsetCommitResponse::default();
    if !access.group(Operation::Read, &group_id) {
        let code = ResponseError::GroupAuthorizationFailed.code();
        response.topics = answered(&request.topics, code);
        return response;
    }
    // Refused topics leave the request, with their commit times.
    let mut times = commit_timestamps.into_iter();
    let mut kept_times = Vec::new();
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|t| {
            let allowed = access.topic(Operation::Read, t.name.0.as_str());
            let mine = times.by_ref().take(t.partitions.len());
            if allowed {
                kept_times.extend(mine);
            } else {
                mine.for_each(drop);
            }
            allowed
        });
    let refused = answered(&denied, ResponseError::TopicAuthorizationFailed.code());
    // Kafka answers a request whose topics were all refused without the
    // coordinator; an empty request still goes to it (its group checks).
    if !allowed.is_empty() || denied.is_empty() {
        request.topics = allowed;
        // What to answer if the coordinator is unreachable.
        let fallback = answered(&request.topics, crate::group::not_available());
        response = call(groups, &group_id, |reply| GroupMsg::Commit {
            version,
            request,
            commit_timestamps: kept_times,
            reply,
        })
        .await
        .unwrap_or_else(|| {
            let mut r = OffsetCommitResponse::default();
            r.topics = fallback;
            r
        });
    }
    response.topics.extend(refused);
    response
}

/// Every partition of `topics` answered `code`.
fn answered(
    topics: &[kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic],
    code: i16,
) -> Vec<OffsetCommitResponseTopic> {
    topics
        .iter()
        .map(|t| {
            let mut rt = OffsetCommitResponseTopic::default();
            rt.name = t.name.clone();
            rt.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut rp = OffsetCommitResponsePartition::default();
                    rp.partition_index = p.partition_index;
                    rp.error_code = code;
                    rp
                })
                .collect();
            rt
        })
        .collect()
}

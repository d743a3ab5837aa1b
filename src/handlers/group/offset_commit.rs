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
use crate::handlers::ApiSpec;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::OffsetCommit,
    // v0-1 through the version bridge (`handlers::legacy`).
    min: 0,
    max: 9,
};

/// `commit_timestamps`: OffsetCommit v1's per-partition commit times, in
/// request order, carried by the version bridge (empty otherwise).
pub async fn handle(
    groups: &Rc<Coordinator>,
    version: i16,
    request: OffsetCommitRequest,
    commit_timestamps: Vec<i64>,
) -> OffsetCommitResponse {
    let group_id = request.group_id.to_string();
    // What to answer if the coordinator is unreachable.
    let mut fallback = OffsetCommitResponse::default();
    fallback.topics = request
        .topics
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
                    rp.error_code = crate::group::not_available();
                    rp
                })
                .collect();
            rt
        })
        .collect();
    call(groups, &group_id, |reply| GroupMsg::Commit {
        version,
        request,
        commit_timestamps,
        reply,
    })
    .await
    .unwrap_or(fallback)
}

//! TxnOffsetCommit: offsets a transactional producer commits for a group,
//! settled by its transaction's marker (see `group::txn_offsets`).

use std::rc::Rc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::ApiSpec;

/// v5 is KIP-890's (the coordinator verifies the transaction); Kafka 3.9
/// served up to v4.
pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::TxnOffsetCommit,
    min: 0,
    max: 4,
};

pub async fn handle(
    groups: &Rc<Coordinator>,
    _header: &RequestHeader,
    _version: i16,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let mut fallback = TxnOffsetCommitResponse::default();
    fallback.topics = request
        .topics
        .iter()
        .map(|t| {
            let mut rt = TxnOffsetCommitResponseTopic::default();
            rt.name = t.name.clone();
            rt.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut rp = TxnOffsetCommitResponsePartition::default();
                    rp.partition_index = p.partition_index;
                    rp.error_code = crate::group::not_available();
                    rp
                })
                .collect();
            rt
        })
        .collect();
    call(groups, &group_id, |reply| GroupMsg::TxnCommit {
        request,
        reply,
    })
    .await
    .unwrap_or(fallback)
}

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
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use kafka_protocol::ResponseError;

/// v5 is KIP-890's (the coordinator verifies the transaction); Kafka 3.9
/// served up to v4.
pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::TxnOffsetCommit,
    min: 0,
    max: 4,
};

/// Needs Write on the transactional id (else every partition answers
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED), Read on the group
/// (GROUP_AUTHORIZATION_FAILED) and Read on each topic
/// (TOPIC_AUTHORIZATION_FAILED), as Kafka checks it.
pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    mut request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let mut response = TxnOffsetCommitResponse::default();
    let refused_all = if !access.transactional_id(Operation::Write, &request.transactional_id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else {
        (!access.group(Operation::Read, &group_id))
            .then_some(ResponseError::GroupAuthorizationFailed.code())
    };
    if let Some(code) = refused_all {
        response.topics = answered(&request.topics, code);
        return response;
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|t| access.topic(Operation::Read, t.name.0.as_str()));
    let refused = answered(&denied, ResponseError::TopicAuthorizationFailed.code());
    // Kafka answers a request whose topics were all refused without the
    // coordinator; an empty request still goes to it (its group checks).
    if !allowed.is_empty() || denied.is_empty() {
        request.topics = allowed;
        let fallback = answered(&request.topics, crate::group::not_available());
        response = call(groups, &group_id, |reply| GroupMsg::TxnCommit {
            request,
            reply,
        })
        .await
        .unwrap_or_else(|| {
            let mut r = TxnOffsetCommitResponse::default();
            r.topics = fallback;
            r
        });
    }
    response.topics.extend(refused);
    response
}

/// Every partition of `topics` answered `code`.
fn answered(
    topics: &[kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic],
    code: i16,
) -> Vec<TxnOffsetCommitResponseTopic> {
    topics
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
                    rp.error_code = code;
                    rp
                })
                .collect();
            rt
        })
        .collect()
}

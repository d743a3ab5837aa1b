//! TxnOffsetCommit: offsets a transactional producer commits for a group,
//! settled by its transaction's marker (see `group::txn_offsets`).

use std::rc::Rc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::call;
use crate::group::Coordinator;
use crate::group::GroupMsg;
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use kafka_protocol::ResponseError;

/// v5 is transaction version 2's: the group's `__consumer_offsets`
/// partition joins the transaction here (clients send no
/// AddOffsetsToTxn); before, it must already be in it (KIP-890's
/// verification, as Kafka 3.6+).
pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::TxnOffsetCommit,
    min: 0,
    max: 5,
};

/// The first version whose clients take TRANSACTION_ABORTABLE.
const ABORTABLE_SINCE: i16 = 4;
/// The first version that adds the offsets partition to the transaction.
const ADDS_PARTITION_SINCE: i16 = 5;

/// Needs Write on the transactional id (else every partition answers
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED), Read on the group
/// (GROUP_AUTHORIZATION_FAILED) and Read on each topic
/// (TOPIC_AUTHORIZATION_FAILED), as Kafka checks it.
pub async fn handle(
    groups: &Rc<Coordinator>,
    txns: &Rc<crate::txn::Coordinator>,
    access: &Access,
    version: i16,
    mut request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let mut response = TxnOffsetCommitResponse::default();
    let refused_all = if !access.transactional_id(Operation::Write, &request.transactional_id) {
        Err(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else if !access.group(Operation::Read, &group_id) {
        Err(ResponseError::GroupAuthorizationFailed.code())
    } else {
        verify(txns, version, &request).await
    };
    let verified = match refused_all {
        Ok(verified) => verified,
        Err(code) => {
            response.topics = answered(&request.topics, code);
            return response;
        }
    };
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
            verified,
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

/// KIP-890: the group's offsets partition must be in the producer's open
/// transaction (v5: is added to it) before transactional offsets reach
/// it, or a late commit could open a transaction there that no
/// coordinator ends, holding back every `require_stable` offset fetch of
/// the group. `Ok`: the verification point the write is appended at (as
/// a produce's, `shard::produce::check_verified`); `Err`: the code every
/// partition gets.
async fn verify(
    txns: &Rc<crate::txn::Coordinator>,
    version: i16,
    request: &TxnOffsetCommitRequest,
) -> Result<Option<i64>, i16> {
    use crate::group::{offsets_partition, offsets_partition_count, OFFSETS_TOPIC};
    let id = request.transactional_id.as_str();
    if !crate::txn::valid_transactional_id(id) || !crate::group::valid_group_id(&request.group_id) {
        // The group coordinator answers these as Kafka's does.
        return Ok(None);
    }
    let partition = crate::shard::TopicPartition {
        topic: std::sync::Arc::from(OFFSETS_TOPIC),
        partition: offsets_partition(&request.group_id, offsets_partition_count(txns.shard())),
    };
    let producer = (request.producer_id.0, request.producer_epoch);
    let asked = vec![(partition.clone(), producer)];
    let point = match txns.shard().txn_verification_points(asked).await.remove(0) {
        // A transaction open there already: its commits join it.
        Ok(None) => return Ok(None),
        Ok(Some(point)) => point,
        // Not there yet (the first commit creates `__consumer_offsets`),
        // or another broker's (the group coordinator answers that): no
        // marker there yet.
        Err(_) => -1,
    };
    let add = version >= ADDS_PARTITION_SINCE;
    let code = crate::handlers::txn_verify::ask(txns, id, producer, vec![partition], add)
        .await
        .remove(0);
    if code == 0 {
        return Ok(Some(point));
    }
    // The transaction coordinator's retriable codes, not the group's: the
    // client retries without looking the group up again, and retries
    // CONCURRENT_TRANSACTIONS itself.
    let retriable = ResponseError::CoordinatorLoadInProgress.code();
    let abortable_known = version >= ABORTABLE_SINCE;
    Err(crate::handlers::txn_verify::client_code(
        code,
        abortable_known,
        false,
        retriable,
    ))
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

//! AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the
//! producer's transaction, so the offsets it then commits through
//! TxnOffsetCommit get the transaction's marker.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey, RequestHeader,
};
use kafka_protocol::ResponseError;

use crate::group::{offsets_partition, offsets_partition_count, OFFSETS_TOPIC};
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use crate::shard::TopicPartition;
use crate::txn::Coordinator;
use crate::txn::TxnMsg;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::AddOffsetsToTxn,
    min: 0,
    max: 4,
};

/// First version that knows PRODUCER_FENCED (KIP-588).
const FENCED_SINCE: i16 = 2;

/// Needs Write on the transactional id and Read on the group, as Kafka
/// checks them.
pub async fn handle(
    txns: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    version: i16,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let mut response = AddOffsetsToTxnResponse::default();
    let id = request.transactional_id.to_string();
    if !crate::txn::valid_transactional_id(&id) {
        response.error_code = ResponseError::InvalidRequest.code();
        return response;
    }
    if !crate::group::valid_group_id(&request.group_id) {
        response.error_code = ResponseError::InvalidGroupId.code();
        return response;
    }
    if !access.transactional_id(Operation::Write, &id) {
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return response;
    }
    if !access.group(Operation::Read, &request.group_id) {
        response.error_code = ResponseError::GroupAuthorizationFailed.code();
        return response;
    }
    let partition = TopicPartition {
        topic: Arc::from(OFFSETS_TOPIC),
        partition: offsets_partition(&request.group_id, offsets_partition_count(txns.shard())),
    };
    let answer = super::call(txns, &id, |reply| TxnMsg::AddPartitions {
        transactional_id: id.clone(),
        producer: (request.producer_id.0, request.producer_epoch),
        partitions: vec![partition],
        verify_only: false,
        reply,
    })
    .await;
    if let Err(e) = answer {
        response.error_code = e.code(version >= FENCED_SINCE);
    }
    response
}

//! EndTxn: commits or aborts the producer's open transaction. Answered once
//! the coordinator has persisted PrepareCommit/PrepareAbort and (bounded)
//! written the markers and the Complete* state.

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse, ProducerId, RequestHeader};
use kafka_protocol::ResponseError;

use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use crate::txn::Coordinator;
use crate::txn::TxnMsg;

/// v5 is transaction version 2's (KIP-890's second part): every end bumps
/// the producer's epoch, and the answer carries the producer id and epoch
/// the producer goes on with.
pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::EndTxn,
    min: 0,
    max: 5,
};

/// The first version of transaction version 2.
const BUMPS_EPOCH_SINCE: i16 = 5;

/// First version that knows PRODUCER_FENCED (KIP-588).
const FENCED_SINCE: i16 = 2;

/// Needs Write on the transactional id, as Kafka checks it.
pub async fn handle(
    txns: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    version: i16,
    request: EndTxnRequest,
) -> EndTxnResponse {
    let mut response = EndTxnResponse::default();
    let id = request.transactional_id.to_string();
    if !crate::txn::valid_transactional_id(&id) {
        response.error_code = ResponseError::InvalidRequest.code();
        return response;
    }
    if !access.transactional_id(Operation::Write, &id) {
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return response;
    }
    let answer = super::call(txns, &id, |reply| TxnMsg::End {
        transactional_id: id.clone(),
        producer: (request.producer_id.0, request.producer_epoch),
        commit: request.committed,
        bump_epoch: version >= BUMPS_EPOCH_SINCE,
        reply,
    })
    .await;
    match answer {
        Ok((producer_id, epoch)) => {
            response.producer_id = ProducerId(producer_id);
            response.producer_epoch = epoch;
        }
        Err(e) => response.error_code = e.code(version >= FENCED_SINCE),
    }
    response
}

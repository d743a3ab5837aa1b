//! EndTxn: commits or aborts the producer's open transaction. Answered once
//! the coordinator has persisted PrepareCommit/PrepareAbort; the markers
//! and the Complete* state follow on the coordinator.

use std::rc::Rc;

use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse, RequestHeader};
use kafka_protocol::ResponseError;

use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use crate::txn::Coordinator;
use crate::txn::TxnMsg;

/// v5 belongs to transactions version 2 (KIP-890: an epoch bump at every
/// end), which this coordinator does not run.
pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::EndTxn,
    min: 0,
    max: 4,
};

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
        reply,
    })
    .await;
    if let Err(e) = answer {
        response.error_code = e.code(version >= FENCED_SINCE);
    }
    response
}

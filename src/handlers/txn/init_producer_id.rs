//! InitProducerId with a transactional id: the transactional id's
//! coordinator hands out its producer id and bumps its epoch, fencing the
//! previous producer (the API's spec and the non-transactional case live
//! in `handlers::producer`).

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::txn::Coordinator;
use crate::txn::TxnMsg;

/// First InitProducerId version that knows PRODUCER_FENCED (KIP-588).
const FENCED_SINCE: i16 = 4;
/// First version carrying the client's producer id and epoch (KIP-360).
const EXPECTED_SINCE: i16 = 3;

/// Fills `response` for a request whose transactional id is non-empty.
pub async fn init_producer_id(
    txns: &Rc<Coordinator>,
    version: i16,
    request: &InitProducerIdRequest,
    response: &mut InitProducerIdResponse,
) {
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|id| id.to_string())
        .unwrap_or_default();
    if !crate::txn::valid_transactional_id(&transactional_id) {
        response.error_code = kafka_protocol::ResponseError::InvalidRequest.code();
        return;
    }
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let expected = match (pid, epoch) {
        _ if version < EXPECTED_SINCE => None,
        (-1, -1) => None,
        (-1, _) | (_, -1) => {
            // Kafka: both or neither.
            response.error_code = kafka_protocol::ResponseError::InvalidRequest.code();
            return;
        }
        named => Some(named),
    };
    let answer = super::call(txns, &transactional_id, |reply| TxnMsg::InitProducerId {
        transactional_id: transactional_id.clone(),
        timeout_ms: request.transaction_timeout_ms,
        expected,
        reply,
    })
    .await;
    match answer {
        Ok((producer_id, producer_epoch)) => {
            response.producer_id = ProducerId(producer_id);
            response.producer_epoch = producer_epoch;
        }
        Err(e) => response.error_code = e.code(version >= FENCED_SINCE),
    }
}

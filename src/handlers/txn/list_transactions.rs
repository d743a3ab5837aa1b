//! ListTransactions: every shard's coordinator lists the ids it holds that
//! pass the filters (states, producer ids, v1's minimum duration); v2's
//! transactional id pattern (KIP-1152) is matched here, against whole ids.

use std::rc::Rc;

use futures::channel::oneshot;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ApiKey, ListTransactionsRequest, ListTransactionsResponse, ProducerId, RequestHeader,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use crate::txn::Coordinator;
use crate::txn::{ListFilter, TxnMsg, TxnState};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ListTransactions,
    min: 0,
    max: 2,
};

/// Lists only the ids the principal may Describe, as Kafka filters them;
/// a pattern that is not a valid regex answers INVALID_REGULAR_EXPRESSION.
pub async fn handle(
    txns: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    // Empty or null: every id.
    let pattern = match request.transactional_id_pattern.as_deref() {
        None | Some("") => None,
        Some(pattern) => match crate::pattern::whole_match(pattern) {
            Ok(regex) => Some(regex),
            Err(e) => {
                response.error_code = ResponseError::InvalidRegularExpression.code();
                tracing::debug!(error = %e, "ListTransactions pattern refused");
                return response;
            }
        },
    };
    let states: Vec<String> = request
        .state_filters
        .iter()
        .map(|s| s.to_string())
        .collect();
    response.unknown_state_filters = request
        .state_filters
        .into_iter()
        .filter(|s| TxnState::from_name(s).is_none())
        .collect();
    let filter = ListFilter {
        states,
        producer_ids: request.producer_id_filters.iter().map(|p| p.0).collect(),
        // v0 has no duration filter; its default (-1) filters nothing.
        duration_ms: request.duration_filter,
    };
    let asks = (0..txns.shard().count).map(|target| {
        let filter = filter.clone();
        async move {
            let (reply, answer) = oneshot::channel();
            crate::txn::send(txns, target, TxnMsg::List { filter, reply }).await;
            answer.await
        }
    });
    for answer in futures::future::join_all(asks).await {
        let listed = match answer {
            Ok(Ok(listed)) => listed,
            Ok(Err(e)) => {
                response.error_code = e.code(true);
                continue;
            }
            Err(_) => {
                response.error_code = crate::group::not_available();
                continue;
            }
        };
        response.transaction_states.extend(
            listed
                .into_iter()
                .filter(|l| {
                    pattern
                        .as_ref()
                        .is_none_or(|p| p.is_match(&l.transactional_id))
                })
                .filter(|l| access.transactional_id(Operation::Describe, &l.transactional_id))
                .map(|l| {
                    let mut s = TransactionState::default();
                    s.transactional_id = TransactionalId(StrBytes::from_string(l.transactional_id));
                    s.producer_id = ProducerId(l.producer_id);
                    s.transaction_state = StrBytes::from_static_str(l.state.name());
                    s
                }),
        );
    }
    response
}

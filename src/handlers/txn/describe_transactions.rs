//! DescribeTransactions: each transactional id's state as its coordinator
//! holds it.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use crate::txn::Coordinator;
use crate::txn::{TxnError, TxnMetadata, TxnMsg};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DescribeTransactions,
    min: 0,
    max: 0,
};

/// Each id needs Describe (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); its
/// partitions are listed only for topics the principal may Describe.
pub async fn handle(
    txns: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let asks = request.transactional_ids.into_iter().map(|id| async move {
        let key = id.to_string();
        let answer = if key.is_empty() {
            Err(TxnError::UnknownId)
        } else if !access.transactional_id(Operation::Describe, &key) {
            let mut s = described(id, Err(TxnError::UnknownId));
            s.error_code = kafka_protocol::ResponseError::TransactionalIdAuthorizationFailed.code();
            return s;
        } else {
            super::call(txns, &key, |reply| TxnMsg::Describe {
                transactional_id: key.clone(),
                reply,
            })
            .await
        };
        let mut s = described(id, answer);
        s.topics
            .retain(|t| access.topic(Operation::Describe, t.topic.0.as_str()));
        s
    });
    let mut response = DescribeTransactionsResponse::default();
    response.transaction_states = futures::future::join_all(asks).await;
    response
}

fn described(
    id: kafka_protocol::messages::TransactionalId,
    answer: Result<TxnMetadata, TxnError>,
) -> TransactionState {
    let mut s = TransactionState::default();
    s.transactional_id = id;
    s.transaction_start_time_ms = -1;
    s.producer_id = ProducerId(-1);
    s.producer_epoch = -1;
    let m = match answer {
        Ok(m) => m,
        Err(e) => {
            s.error_code = e.code(true);
            return s;
        }
    };
    s.transaction_state = StrBytes::from_static_str(m.state.name());
    s.transaction_timeout_ms = m.timeout_ms;
    s.transaction_start_time_ms = m.txn_start_ms;
    s.producer_id = ProducerId(m.producer_id);
    s.producer_epoch = m.producer_epoch;
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in &m.partitions {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    s.topics = topics
        .into_iter()
        .map(|(topic, partitions)| {
            let mut t = TopicData::default();
            t.topic = TopicName(StrBytes::from_string(topic.to_string()));
            t.partitions = partitions;
            t
        })
        .collect();
    s
}

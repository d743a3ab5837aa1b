//! AddPartitionsToTxn: partitions join the producer's open transaction
//! (starting one if none is open). v0-3 carry one transaction (the client
//! form); v4 a batch of them, each optionally `verify_only` (the form
//! brokers use to check that a partition is in a transaction). v5 says the
//! sending broker understands TRANSACTION_ABORTABLE (KIP-890); Kafka 3.9's
//! coordinator answers v4 and v5 alike (a broker maps the code back for
//! its older producers), and so does this one.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, RequestHeader, TransactionalId,
};
use kafka_protocol::ResponseError;

use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use crate::shard::TopicPartition;
use crate::txn::Coordinator;
use crate::txn::TxnMsg;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::AddPartitionsToTxn,
    min: 0,
    max: 5,
};

/// First version that knows PRODUCER_FENCED (KIP-588).
const FENCED_SINCE: i16 = 2;
/// First version with the batched `transactions` form.
const BATCHED_SINCE: i16 = 4;

/// Authorization as Kafka's: the batched form (v4+, from brokers) needs
/// ClusterAction on the cluster; each transaction needs Write on its id
/// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and Write on each topic
/// (TOPIC_AUTHORIZATION_FAILED, the other partitions OPERATION_NOT_ATTEMPTED).
pub async fn handle(
    txns: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    version: i16,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut response = AddPartitionsToTxnResponse::default();
    if version >= BATCHED_SINCE && !access.cluster(Operation::ClusterAction) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    if version < BATCHED_SINCE {
        let txn = Txn {
            id: request.v3_and_below_transactional_id,
            producer: (
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
            ),
            verify_only: false,
        };
        response.results_by_topic_v3_and_below =
            add(txns, access, version, txn, request.v3_and_below_topics).await;
        return response;
    }
    for t in request.transactions {
        let txn = Txn {
            id: t.transactional_id.clone(),
            producer: (t.producer_id.0, t.producer_epoch),
            verify_only: t.verify_only,
        };
        let mut result = AddPartitionsToTxnResult::default();
        result.transactional_id = t.transactional_id;
        result.topic_results = add(txns, access, version, txn, t.topics).await;
        response.results_by_transaction.push(result);
    }
    response
}

/// One transaction of a request.
struct Txn {
    id: TransactionalId,
    producer: (i64, i16),
    verify_only: bool,
}

/// The result of one transaction's partitions, as Kafka answers it: every
/// partition gets the coordinator's code, unless some partition is unknown,
/// in which case those get UNKNOWN_TOPIC_OR_PARTITION and the rest
/// OPERATION_NOT_ATTEMPTED.
async fn add(
    txns: &Rc<Coordinator>,
    access: &Access,
    version: i16,
    txn: Txn,
    topics: Vec<AddPartitionsToTxnTopic>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let snapshot = txns.shard().topics();
    let mut partitions = Vec::new();
    // Per partition: why it is refused before the coordinator sees it.
    let mut unknown = Vec::new();
    let unknown_code = ResponseError::UnknownTopicOrPartition.code();
    for t in &topics {
        let name: Arc<str> = Arc::from(t.name.0.as_str());
        let count = snapshot.get(&name).map(|m| m.partitions);
        let writable = access.topic(Operation::Write, &name);
        for &p in &t.partitions {
            unknown.push(if !writable {
                Some(ResponseError::TopicAuthorizationFailed.code())
            } else {
                (!count.is_some_and(|n| (0..n).contains(&p))).then_some(unknown_code)
            });
            partitions.push(TopicPartition {
                topic: name.clone(),
                partition: p,
            });
        }
    }
    let id = txn.id.to_string();
    let codes: Vec<i16> = if !crate::txn::valid_transactional_id(&id) {
        vec![ResponseError::InvalidRequest.code(); partitions.len()]
    } else if !access.transactional_id(Operation::Write, &id) {
        let code = ResponseError::TransactionalIdAuthorizationFailed.code();
        vec![code; partitions.len()]
    } else if unknown.iter().any(Option::is_some) {
        let not_attempted = ResponseError::OperationNotAttempted.code();
        unknown.iter().map(|u| u.unwrap_or(not_attempted)).collect()
    } else {
        let count = partitions.len();
        let answer = super::call(txns, &id, |reply| TxnMsg::AddPartitions {
            transactional_id: id.clone(),
            producer: txn.producer,
            partitions,
            verify_only: txn.verify_only,
            reply,
        })
        .await;
        let abortable = ResponseError::TransactionAbortable.code();
        match answer {
            Ok(inside) => inside
                .into_iter()
                .map(|ok| if ok { 0 } else { abortable })
                .collect(),
            Err(e) => vec![e.code(version >= FENCED_SINCE); count],
        }
    };
    let mut codes = codes.into_iter();
    topics
        .into_iter()
        .map(|t| {
            let mut result = AddPartitionsToTxnTopicResult::default();
            result.results_by_partition = t
                .partitions
                .iter()
                .map(|&p| {
                    let mut r = AddPartitionsToTxnPartitionResult::default();
                    r.partition_index = p;
                    r.partition_error_code = codes.next().expect("a code per partition");
                    r
                })
                .collect();
            result.name = t.name;
            result
        })
        .collect()
}

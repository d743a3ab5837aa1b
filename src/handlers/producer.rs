//! InitProducerId (idempotent producers; transactional ones go to
//! `handlers::txn`) and DescribeProducers.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::security::acl::{Operation, ResourceType};
use crate::services::Services;
use crate::shard::{ProducerIdError, Shard, TopicPartition};

pub const INIT_PRODUCER_ID: ApiSpec = ApiSpec {
    key: ApiKey::InitProducerId,
    min: 0,
    max: 5,
};
pub const DESCRIBE_PRODUCERS: ApiSpec = ApiSpec {
    key: ApiKey::DescribeProducers,
    min: 0,
    max: 0,
};

/// A new producer id at epoch 0. As in Kafka, a producer without a
/// transactional id gets a fresh id on every call, whatever id and epoch it
/// names (KIP-360's bump applies to transactional producers only).
/// Authorization as Kafka's: a transactional id needs Write on itself
/// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent producer needs
/// IdempotentWrite on the cluster or Write on some topic
/// (CLUSTER_AUTHORIZATION_FAILED).
pub async fn init_producer_id(
    services: &Services,
    access: &Access,
    header: &RequestHeader,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let shard = &services.shard;
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    response.ongoing_txn_producer_id = ProducerId(-1);
    response.ongoing_txn_producer_epoch = -1;
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|id| id.is_empty())
    {
        // Kafka's TransactionCoordinator refuses an empty transactional id.
        response.error_code = ResponseError::InvalidRequest.code();
        return response;
    }
    match &request.transactional_id {
        Some(id) if !access.transactional_id(Operation::Write, id) => {
            response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return response;
        }
        None if !access.cluster(Operation::IdempotentWrite)
            && !access.allows_any(Operation::Write, ResourceType::Topic) =>
        {
            response.error_code = ResponseError::ClusterAuthorizationFailed.code();
            return response;
        }
        _ => {}
    }
    if request.transactional_id.is_some() {
        let version = header.request_api_version;
        super::txn::init_producer_id(&services.txns, version, &request, &mut response).await;
        return response;
    }
    match shard.new_producer_id().await {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::warn!(error = %e, "InitProducerId failed");
            response.error_code = match e {
                ProducerIdError::Exhausted => ResponseError::ClusterAuthorizationFailed.code(),
                ProducerIdError::Io(_) | ProducerIdError::Unreachable => {
                    ResponseError::CoordinatorNotAvailable.code()
                }
            };
        }
    }
    response
}

/// Each requested partition's active producers, read on its owner shard.
/// Each topic needs Read (TOPIC_AUTHORIZATION_FAILED), as Kafka checks it.
pub async fn describe_producers(
    shard: &Rc<Shard>,
    access: &Access,
    _header: &RequestHeader,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = shard.topics();
    let mut items = Vec::new();
    // (topic, partition) slots of the response that go to an owner shard.
    let mut slots = Vec::new();
    let mut response = DescribeProducersResponse::default();
    for (t, topic) in request.topics.into_iter().enumerate() {
        let name: Arc<str> = Arc::from(topic.name.0.as_str());
        let known = topics.get(&name).map(|m| m.partitions);
        let mut out = TopicResponse::default();
        for (p, partition) in topic.partition_indexes.into_iter().enumerate() {
            let mut answer = PartitionResponse::default();
            answer.partition_index = partition;
            if !access.topic(Operation::Read, &name) {
                answer.error_code = ResponseError::TopicAuthorizationFailed.code();
            } else if known.is_some_and(|n| (0..n).contains(&partition)) {
                slots.push((t, p));
                items.push(TopicPartition {
                    topic: name.clone(),
                    partition,
                });
            } else {
                answer.error_code = ResponseError::UnknownTopicOrPartition.code();
                answer.error_message = Some(StrBytes::from_static_str("unknown partition"));
            }
            out.partitions.push(answer);
        }
        out.name = topic.name;
        response.topics.push(out);
    }
    let outcomes = shard.describe_producers(items).await;
    for ((t, p), outcome) in slots.into_iter().zip(outcomes) {
        let answer = &mut response.topics[t].partitions[p];
        answer.error_code = outcome.error;
        answer.active_producers = outcome
            .producers
            .into_iter()
            .map(|s| {
                let mut state = ProducerState::default();
                state.producer_id = ProducerId(s.producer_id);
                state.producer_epoch = i32::from(s.epoch);
                state.last_sequence = s.last_sequence;
                state.last_timestamp = s.last_timestamp;
                state.coordinator_epoch = s.coordinator_epoch;
                state.current_txn_start_offset = s.current_txn_start_offset;
                state
            })
            .collect();
    }
    response
}

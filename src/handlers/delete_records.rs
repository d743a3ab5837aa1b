//! DeleteRecords (KIP-107): each partition's log start moves up to the
//! offset asked (-1: the high watermark), on its leader, which answers the
//! low watermark once every live replica has moved as far. Needs Delete on
//! the topic (TOPIC_AUTHORIZATION_FAILED); admin tools send it
//! (`kafka-delete-records.sh`, AdminClient.deleteRecords), and so does
//! Kafka Streams, to purge the repartition topics it has consumed.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader,
};
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::security::acl::Operation;
use crate::shard::{DeleteRecordsItem, Shard, TopicPartition, DELETE_RECORDS_WAIT_MAX};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DeleteRecords,
    min: 0,
    max: 2,
};

pub async fn handle(
    shard: &Rc<Shard>,
    access: &Access,
    _header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let wait = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let deadline = Instant::now() + wait.min(DELETE_RECORDS_WAIT_MAX);
    let topics = shard.topics();
    let mut items = Vec::new();
    // (topic, partition) slots of the response that go to a leader.
    let mut slots = Vec::new();
    let mut response = DeleteRecordsResponse::default();
    for (t, topic) in request.topics.into_iter().enumerate() {
        let name: Arc<str> = Arc::from(topic.name.0.as_str());
        let allowed = access.topic(Operation::Delete, &name);
        let known = topics.get(&name).map(|m| m.partitions);
        let mut out = DeleteRecordsTopicResult::default();
        for (p, partition) in topic.partitions.into_iter().enumerate() {
            let mut answer = DeleteRecordsPartitionResult::default();
            answer.partition_index = partition.partition_index;
            answer.low_watermark = -1;
            if !allowed {
                answer.error_code = ResponseError::TopicAuthorizationFailed.code();
            } else if known.is_some_and(|n| (0..n).contains(&partition.partition_index)) {
                slots.push((t, p));
                items.push(DeleteRecordsItem {
                    tp: TopicPartition {
                        topic: name.clone(),
                        partition: partition.partition_index,
                    },
                    offset: partition.offset,
                    deadline,
                });
            } else {
                answer.error_code = ResponseError::UnknownTopicOrPartition.code();
            }
            out.partitions.push(answer);
        }
        out.name = topic.name;
        response.topics.push(out);
    }
    let outcomes = shard.delete_records(items).await;
    for ((t, p), outcome) in slots.into_iter().zip(outcomes) {
        let answer = &mut response.topics[t].partitions[p];
        answer.error_code = outcome.error;
        answer.low_watermark = outcome.low_watermark;
    }
    response
}

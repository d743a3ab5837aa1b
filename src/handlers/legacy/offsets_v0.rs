//! ListOffsets v0, answered here rather than forwarded: its offset arrays
//! come from segment starts and segment file times (Kafka 3.x's
//! `legacyFetchOffsetsBefore`), which no newer version can ask for.

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol_v3 as v3;
use v3::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use v3::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::shard::{OffsetQuery, Shard, TopicPartition};

/// Offsets one partition's array may hold, whatever the client asks (Kafka
/// took any `max_num_offsets`): a log with more segments answers with its
/// newest ones, and each partition asked costs the response at most 8 KiB.
const OFFSETS_PER_PARTITION_MAX: usize = 1_024;

/// Each partition's offset array, in request order; a topic the principal
/// may not Describe answers TOPIC_AUTHORIZATION_FAILED on each partition,
/// after the others (as Kafka 3.x's v0 handler ordered them).
pub(super) async fn answer(
    shard: &Rc<Shard>,
    access: &crate::handlers::access::Access,
    mut request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|t| access.topic(crate::security::acl::Operation::Describe, t.name.0.as_str()));
    request.topics = allowed;
    let queries = request
        .topics
        .iter()
        .flat_map(|t| {
            let topic: Arc<str> = Arc::from(t.name.0.as_str());
            t.partitions.iter().map(move |p| OffsetQuery {
                tp: TopicPartition {
                    topic: topic.clone(),
                    partition: p.partition_index,
                },
                timestamp: p.timestamp,
                committed: false,
                current_leader_epoch: -1,
                any_replica: false,
                max_num_offsets: Some(
                    usize::try_from(p.max_num_offsets)
                        .unwrap_or(0)
                        .min(OFFSETS_PER_PARTITION_MAX),
                ),
            })
        })
        .collect();
    let mut outcomes = shard.list_offsets(queries).await.into_iter();
    let mut response = ListOffsetsResponse::default();
    for t in request.topics {
        let mut topic = ListOffsetsTopicResponse::default();
        for p in &t.partitions {
            let outcome = outcomes.next().expect("one outcome per query");
            let mut partition = ListOffsetsPartitionResponse::default();
            partition.partition_index = p.partition_index;
            partition.error_code = outcome.error;
            partition.old_style_offsets = outcome.old_style_offsets;
            topic.partitions.push(partition);
        }
        topic.name = t.name;
        response.topics.push(topic);
    }
    for t in denied {
        let mut topic = ListOffsetsTopicResponse::default();
        for p in &t.partitions {
            let mut partition = ListOffsetsPartitionResponse::default();
            partition.partition_index = p.partition_index;
            partition.error_code = ResponseError::TopicAuthorizationFailed.code();
            topic.partitions.push(partition);
        }
        topic.name = t.name;
        response.topics.push(topic);
    }
    response
}

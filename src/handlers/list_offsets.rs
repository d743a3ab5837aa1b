//! ListOffsets: earliest (-2), latest (-1), the record with the largest
//! timestamp (-3, from v7), the earliest local offset (-4, from v8, KIP-405:
//! the log start, as nothing is tiered), the latest tiered offset (-5, from
//! v9, KIP-1005: -1, nothing is tiered), or the first offset at or after a
//! timestamp (time index).

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::ApiSpec;
use crate::shard::{
    OffsetQuery, Shard, TopicPartition, EARLIEST_LOCAL, LATEST_TIERED, MAX_TIMESTAMP,
};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ListOffsets,
    // Older versions through the version bridge (`handlers::legacy`). v10
    // adds a timeout for reads from tiered storage, which has nothing here.
    min: 0,
    max: 10,
};

/// Kafka's replica id of a debugging consumer (`ListOffsetsRequest`):
/// a follower answers it too.
const DEBUGGING_REPLICA_ID: i32 = -2;

/// Leader epochs appear in responses from v4 on.
const LEADER_EPOCH_SINCE: i16 = 4;
/// The first version that may ask for each special timestamp: MAX_TIMESTAMP
/// (KIP-734), EARLIEST_LOCAL (KIP-405), LATEST_TIERED (KIP-1005).
const SPECIAL_SINCE: [(i64, i16); 3] =
    [(MAX_TIMESTAMP, 7), (EARLIEST_LOCAL, 8), (LATEST_TIERED, 9)];

/// Whether `version` predates the special `timestamp`: an older client
/// cannot have meant it, and Kafka answers UNSUPPORTED_VERSION.
fn too_new_for(version: i16, timestamp: i64) -> bool {
    SPECIAL_SINCE
        .iter()
        .any(|&(special, since)| special == timestamp && version < since)
}

/// Kafka's IsolationLevel.READ_COMMITTED: latest is the last stable offset.
const READ_COMMITTED: i8 = 1;

/// A topic the principal may not Describe answers
/// TOPIC_AUTHORIZATION_FAILED on each partition, after the others.
pub async fn handle(
    shard: &Rc<Shard>,
    access: &super::access::Access,
    header: &RequestHeader,
    mut request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|t| access.topic(crate::security::acl::Operation::Describe, t.name.0.as_str()));
    request.topics = allowed;
    let mut response = answer(shard, header, request).await;
    response.topics.extend(denied.into_iter().map(|t| {
        let mut topic = ListOffsetsTopicResponse::default();
        topic.partitions = t
            .partitions
            .iter()
            .map(|p| {
                let mut part = ListOffsetsPartitionResponse::default();
                part.partition_index = p.partition_index;
                part.error_code = ResponseError::TopicAuthorizationFailed.code();
                (part.offset, part.timestamp, part.leader_epoch) = (-1, -1, -1);
                part
            })
            .collect();
        topic.name = t.name;
        topic
    }));
    response
}

async fn answer(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let has_epoch = header.request_api_version >= LEADER_EPOCH_SINCE;
    let version = header.request_api_version;
    let committed = request.isolation_level == READ_COMMITTED;
    let any_replica = request.replica_id.0 == DEBUGGING_REPLICA_ID;
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
                committed,
                current_leader_epoch: p.current_leader_epoch,
                any_replica,
                max_num_offsets: None,
            })
        })
        .collect();
    let mut outcomes = shard.list_offsets(queries).await.into_iter();
    let mut response = ListOffsetsResponse::default();
    response.topics = request
        .topics
        .into_iter()
        .map(|t| {
            let mut topic = ListOffsetsTopicResponse::default();
            topic.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut o = outcomes.next().expect("one outcome per partition");
                    if too_new_for(version, p.timestamp) {
                        o.error = ResponseError::UnsupportedVersion.code();
                        (o.offset, o.timestamp) = (-1, -1);
                    }
                    let mut part = ListOffsetsPartitionResponse::default();
                    part.partition_index = p.partition_index;
                    part.error_code = o.error;
                    part.offset = o.offset;
                    part.timestamp = o.timestamp;
                    part.leader_epoch = if has_epoch && o.offset >= 0 {
                        o.leader_epoch
                    } else {
                        -1
                    };
                    part
                })
                .collect();
            topic.name = t.name;
            topic
        })
        .collect();
    response
}

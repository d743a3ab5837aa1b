//! ListOffsets: earliest (-2), latest (-1), the record with the largest
//! timestamp (-3, from v7), or the first offset at or after a timestamp
//! (time index).

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::ApiSpec;
use crate::shard::{OffsetQuery, Shard, TopicPartition, MAX_TIMESTAMP};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ListOffsets,
    // Older versions through the version bridge (`handlers::legacy`).
    min: 0,
    max: 7,
};

/// Leader epochs appear in responses from v4 on.
const LEADER_EPOCH_SINCE: i16 = 4;
/// MAX_TIMESTAMP (-3) queries exist from v7 on (KIP-734).
const MAX_TIMESTAMP_SINCE: i16 = 7;

/// Kafka's IsolationLevel.READ_COMMITTED: latest is the last stable offset.
const READ_COMMITTED: i8 = 1;

pub async fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let has_epoch = header.request_api_version >= LEADER_EPOCH_SINCE;
    // Older clients cannot have meant -3: Kafka answers UNSUPPORTED_VERSION.
    let refuse_max_timestamp = header.request_api_version < MAX_TIMESTAMP_SINCE;
    let committed = request.isolation_level == READ_COMMITTED;
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
                    if refuse_max_timestamp && p.timestamp == MAX_TIMESTAMP {
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

//! OffsetForLeaderEpoch (KIP-101, KIP-279, KIP-320): for each partition,
//! the largest leader epoch at or below the asked one and the offset where
//! it ended on the leader. Clients use it after a leader change to detect a
//! truncated log; followers could use it too (ours use Fetch's diverging
//! epoch instead).

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, RequestHeader,
};

use kafka_protocol::ResponseError;

use super::ApiSpec;
use crate::shard::{EpochQuery, Shard, TopicPartition};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::OffsetForLeaderEpoch,
    // v0-1 (removed in Kafka 4.0 and by the codec) through the version
    // bridge (`handlers::legacy`).
    min: 0,
    max: 4,
};

/// ClusterAction on the cluster (a follower) allows every topic; else
/// each topic needs Describe (KIP-320's consumers), as Kafka checks it.
pub async fn handle(
    shard: &Rc<Shard>,
    access: &super::access::Access,
    header: &RequestHeader,
    mut request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    use crate::security::acl::Operation;
    let denied = if access.cluster(Operation::ClusterAction) {
        Vec::new()
    } else {
        let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
            .into_iter()
            .partition(|t| access.topic(Operation::Describe, t.topic.0.as_str()));
        request.topics = allowed;
        denied
    };
    let mut response = answer(shard, header, request).await;
    response.topics.extend(denied.into_iter().map(|t| {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                EpochEndOffset::default()
                    .with_partition(p.partition)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_leader_epoch(-1)
                    .with_end_offset(-1)
            })
            .collect();
        OffsetForLeaderTopicResult::default()
            .with_topic(t.topic)
            .with_partitions(partitions)
    }));
    response
}

async fn answer(
    shard: &Rc<Shard>,
    _header: &RequestHeader,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let queries = request
        .topics
        .iter()
        .flat_map(|t| {
            let topic: Arc<str> = Arc::from(t.topic.0.as_str());
            t.partitions.iter().map(move |p| EpochQuery {
                tp: TopicPartition {
                    topic: topic.clone(),
                    partition: p.partition,
                },
                current_leader_epoch: p.current_leader_epoch,
                leader_epoch: p.leader_epoch,
            })
        })
        .collect();
    let mut outcomes = shard.offsets_for_leader_epoch(queries).await.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let o = outcomes.next().expect("one outcome per partition");
                    EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_error_code(o.error)
                        .with_leader_epoch(o.leader_epoch)
                        .with_end_offset(o.end_offset)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

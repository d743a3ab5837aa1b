//! DescribeTopicPartitions (KIP-966): the partitions of topics, a page at a
//! time, with each partition's eligible leader replicas. Kafka's admin
//! client (3.8+, `kafka-topics.sh --describe`) asks this before Metadata.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::metadata::{ClusterView, TopicMeta};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DescribeTopicPartitions,
    min: 0,
    max: 0,
};

/// The most partitions one response holds, whatever the request asks
/// (Kafka's `max.request.partition.size.limit` default); the client pages
/// on with the cursor.
pub const MAX_PARTITIONS_PER_RESPONSE: usize = 2000;

/// Topics in name order from the cursor on, as Kafka's
/// `DescribeTopicPartitionsRequestHandler`: none named means every topic the
/// principal may describe; a named one it may not is answered
/// TOPIC_AUTHORIZATION_FAILED without saying whether it exists. A cursor
/// naming a topic not asked for, or a negative partition, is an invalid
/// request.
pub fn handle(
    shard: &Shard,
    access: &Access,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let all = request.topics.is_empty();
    let cursor = request
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let from = cursor.as_ref().map_or("", |(name, _)| name.as_str());
    let topics_snapshot = shard.topics();
    let mut names: Vec<String> = if all {
        topics_snapshot.topics.keys().cloned().collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.retain(|n| n.as_str() >= from);
    names.sort();
    names.dedup();
    let cursor_valid = match &cursor {
        Some((name, partition)) => *partition >= 0 && (all || names.contains(name)),
        None => true,
    };
    if !cursor_valid {
        return invalid(&request);
    }
    let mut refused = Vec::new();
    names.retain(|name| {
        let allowed = access.topic(Operation::Describe, name);
        if !allowed && !all {
            refused.push(failed(name, ResponseError::TopicAuthorizationFailed));
        }
        allowed
    });
    let limit = usize::try_from(request.response_partition_limit)
        .unwrap_or(0)
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE);
    let mut page = Page {
        remaining: limit,
        response: DescribeTopicPartitionsResponse::default(),
    };
    let view = topics_snapshot.cluster.as_deref();
    for name in &names {
        if page.remaining == 0 {
            page.response.next_cursor = Some(next_cursor(name, 0));
            break;
        }
        let first = match &cursor {
            Some((cursor_topic, partition)) if cursor_topic == name => *partition,
            _ => 0,
        };
        let Some(topic) = topics_snapshot.get(name) else {
            if !all {
                page.response
                    .topics
                    .push(failed(name, ResponseError::UnknownTopicOrPartition));
            }
            continue;
        };
        if !page.add(shard, access, topic, first, view) {
            break;
        }
    }
    page.response.topics.extend(refused);
    page.response
}

/// A response being filled up to its partition limit.
struct Page {
    remaining: usize,
    response: DescribeTopicPartitionsResponse,
}

impl Page {
    /// Adds `topic`'s partitions from `first` on, as many as there is room
    /// for; false, with the next cursor set, when some did not fit.
    fn add(
        &mut self,
        shard: &Shard,
        access: &Access,
        topic: &TopicMeta,
        first: i32,
        view: Option<&ClusterView>,
    ) -> bool {
        let count = topic.partitions.max(0);
        let room = i32::try_from(self.remaining).unwrap_or(i32::MAX);
        let end = count.min(first.saturating_add(room));
        let min_insync = view.map(|v| {
            v.image
                .min_insync(&topic.name, shard.config.min_insync_replicas)
        });
        let mut out = DescribeTopicPartitionsResponseTopic::default();
        out.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
        out.topic_id = topic.uuid();
        out.is_internal = super::metadata::is_internal(&topic.name);
        out.topic_authorized_operations = access.operations(ResourceType::Topic, &topic.name);
        out.partitions = (first.min(end)..end)
            .map(|p| match (view, min_insync) {
                (Some(view), Some(min_insync)) => replicated(view, &topic.name, p, min_insync),
                _ => alone(shard.config.node_id, p),
            })
            .collect();
        assert!(out.partitions.len() <= self.remaining);
        self.remaining -= out.partitions.len();
        self.response.topics.push(out);
        if end < count {
            self.response.next_cursor = Some(next_cursor(&topic.name, end));
            return false;
        }
        true
    }
}

/// A partition as the cluster image has it; an offline one answers
/// LEADER_NOT_AVAILABLE, as Kafka does.
fn replicated(
    view: &ClusterView,
    topic: &str,
    index: i32,
    min_insync: u32,
) -> DescribeTopicPartitionsResponsePartition {
    let ids = |ids: &mut dyn Iterator<Item = i32>| ids.map(BrokerId).collect::<Vec<_>>();
    let mut out = DescribeTopicPartitionsResponsePartition::default();
    out.partition_index = index;
    let Some(state) = view.partition(topic, index) else {
        out.error_code = ResponseError::LeaderNotAvailable.code();
        out.leader_id = BrokerId(-1);
        out.eligible_leader_replicas = Some(Vec::new());
        out.last_known_elr = Some(Vec::new());
        return out;
    };
    out.leader_id = BrokerId(state.leader);
    out.leader_epoch = state.leader_epoch;
    out.replica_nodes = ids(&mut state.replicas.iter().copied());
    out.isr_nodes = ids(&mut state.isr.iter().copied());
    out.offline_replicas = ids(&mut state
        .replicas
        .iter()
        .copied()
        .filter(|&id| !view.image.broker_live(id)));
    let past = view.image.past(topic, index, min_insync);
    out.eligible_leader_replicas = Some(ids(&mut past
        .eligible()
        .filter(|b| state.replicas.contains(b) && !state.isr.contains(b))));
    out.last_known_elr = Some(Vec::new());
    if state.leader < 0 {
        out.error_code = ResponseError::LeaderNotAvailable.code();
    }
    out
}

/// A partition of a single node: led by it, its only replica.
fn alone(node: i32, index: i32) -> DescribeTopicPartitionsResponsePartition {
    let mut out = DescribeTopicPartitionsResponsePartition::default();
    out.partition_index = index;
    out.leader_id = BrokerId(node);
    out.leader_epoch = 0;
    out.replica_nodes = vec![BrokerId(node)];
    out.isr_nodes = vec![BrokerId(node)];
    out.eligible_leader_replicas = Some(Vec::new());
    out.last_known_elr = Some(Vec::new());
    out
}

fn next_cursor(topic: &str, partition: i32) -> Cursor {
    let mut c = Cursor::default();
    c.topic_name = TopicName(StrBytes::from_string(topic.to_string()));
    c.partition_index = partition;
    c
}

/// A named topic answered with `error` alone (no id: an unauthorized
/// principal learns nothing of it).
fn failed(name: &str, error: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    let mut t = DescribeTopicPartitionsResponseTopic::default();
    t.error_code = error.code();
    t.name = Some(TopicName(StrBytes::from_string(name.to_string())));
    t
}

/// Kafka's error response to this request: every named topic answers the
/// error.
fn invalid(request: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let mut response = DescribeTopicPartitionsResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|t| failed(&t.name.0, ResponseError::InvalidRequest))
        .collect();
    response
}

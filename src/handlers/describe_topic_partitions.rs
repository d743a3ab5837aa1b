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
        let min_insync = view.map_or(1, |v| {
            v.image
                .min_insync(&topic.name, shard.config.min_insync_replicas)
        });
        let mut out = DescribeTopicPartitionsResponseTopic::default();
        out.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
        out.topic_id = topic.uuid();
        out.is_internal = super::metadata::is_internal(&topic.name);
        out.topic_authorized_operations = access.operations(ResourceType::Topic, &topic.name);
        out.partitions = (first.min(end)..end)
            .map(|p| described(view, shard.config.node_id, &topic.name, p, min_insync))
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

/// A partition as Metadata describes it, with its eligible leader
/// replicas: those out of the ISR that may lead it cleanly.
fn described(
    view: Option<&ClusterView>,
    node: i32,
    topic: &str,
    index: i32,
    min_insync: u32,
) -> DescribeTopicPartitionsResponsePartition {
    let placed = super::metadata::placement(view, node, topic, index);
    let eligible: Vec<BrokerId> = view.map_or_else(Vec::new, |view| {
        view.image
            .past(topic, index, min_insync)
            .eligible()
            .map(BrokerId)
            .filter(|b| placed.replicas.contains(b) && !placed.isr.contains(b))
            .collect()
    });
    let mut out = DescribeTopicPartitionsResponsePartition::default();
    out.partition_index = index;
    out.error_code = placed.error;
    out.leader_id = BrokerId(placed.leader);
    out.leader_epoch = placed.leader_epoch;
    out.replica_nodes = placed.replicas;
    out.isr_nodes = placed.isr;
    out.offline_replicas = placed.offline;
    out.eligible_leader_replicas = Some(eligible);
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

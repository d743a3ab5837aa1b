//! Metadata: this broker as the only broker and controller, every
//! partition led by it; unknown topics auto-created when allowed.

use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataRequest, MetadataResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::metadata::ClusterView;
use crate::metadata::{valid_topic_name, TopicMeta};
use crate::security::acl::Operation;
use crate::shard::{AdminOp, Shard};

/// v13 (KIP-1102) adds a top-level error, for a broker that wants its
/// clients to bootstrap again; this one never does.
pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::Metadata,
    min: 0,
    max: 13,
};

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// The cluster id in force (set from the data dir's identity at start).
pub fn cluster_id(shard: &Shard) -> String {
    shard.config.cluster_id.clone().unwrap_or_default()
}

/// Authorization as Kafka's KafkaApis: a topic the principal may not
/// Describe is left out of an all-topics answer and answered
/// TOPIC_AUTHORIZATION_FAILED when named; auto-creation needs Create on the
/// cluster or on the topic, else the topic answers the same.
pub async fn handle(
    shard: &Rc<Shard>,
    access: &Access,
    header: &RequestHeader,
    client: &super::Client,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    // Before v4 the request had no flag and brokers always auto-created.
    let may_create = (version < 4 || request.allow_auto_topic_creation)
        && shard.config.auto_create_topics_enable;
    // In v0 an empty list meant "all topics"; later versions use null.
    let requested = request.topics.filter(|t| version > 0 || !t.is_empty());
    // The ids topics were asked by (v12+; nil for one asked by name), so
    // an unknown or hidden one is answered under the id it was asked by.
    // An id wins over a name, as in Kafka: Java's client sends "" beside it.
    let asked_ids: Vec<uuid::Uuid> = requested.iter().flatten().map(|t| t.topic_id).collect();
    let names: Option<Vec<Option<String>>> = requested.map(|topics| {
        topics
            .into_iter()
            .map(|t| match t.name {
                Some(name) if t.topic_id.is_nil() => Some(name.0.to_string()),
                _ => shard
                    .topics()
                    .topics
                    .values()
                    .find(|m| m.uuid() == t.topic_id)
                    .map(|m| m.name.clone()),
            })
            .collect()
    });
    // Named topics refused: not describable, or missing and not creatable.
    let mut refused = std::collections::BTreeSet::new();
    for name in names.iter().flatten().flatten() {
        let exists = shard.topics().get(name).is_some();
        if !access.topic(Operation::Describe, name)
            || (!exists
                && may_create
                && valid_topic_name(name)
                && !access.cluster(Operation::Create)
                && !access.topic(Operation::Create, name))
        {
            refused.insert(name.clone());
        }
    }
    if let (Some(names), true) = (&names, may_create) {
        for name in names.iter().flatten() {
            if shard.topics().get(name).is_none()
                && valid_topic_name(name)
                && !refused.contains(name)
            {
                create_default(shard, name).await;
            }
        }
    }
    let topics = shard.topics();
    let node = shard.config.node_id;
    let view = topics.cluster.as_deref();
    let mut response = MetadataResponse::default();
    response.brokers = match view {
        Some(view) => live_brokers(view, &client.session.listener.name),
        None => Vec::new(),
    };
    if response.brokers.is_empty() {
        // With every broker fenced (a controller change can do that for a
        // moment), an empty list would make librdkafka (2.10+) drop every
        // broker it knows and stop until it bootstraps again, minutes
        // later. The node answering is one the client can reach: name it,
        // so the client asks it again.
        response.brokers.push(broker(shard, client));
    }
    response.cluster_id = Some(StrBytes::from_string(cluster_id(shard)));
    response.controller_id = BrokerId(controller_id(shard));
    // v8-10 may ask for the cluster's, v8+ for each topic's.
    response.cluster_authorized_operations =
        if version >= 8 && request.include_cluster_authorized_operations {
            access.cluster_operations()
        } else {
            OPERATIONS_OMITTED
        };
    let with_operations = version >= 8 && request.include_topic_authorized_operations;
    let described = |t: &TopicMeta| {
        let mut d = described(t, node, view);
        if with_operations {
            d.topic_authorized_operations =
                access.operations(crate::security::acl::ResourceType::Topic, &t.name);
        }
        d
    };
    response.topics = match names {
        None => topics
            .topics
            .values()
            .filter(|t| access.topic(Operation::Describe, &t.name))
            .map(|t| described(t))
            .collect(),
        Some(names) => names
            .into_iter()
            .zip(asked_ids)
            .map(|(name, id)| match name.as_deref() {
                Some(n) if refused.contains(n) => unauthorized(n, id),
                _ => match name.as_deref().and_then(|n| topics.get(n)) {
                    Some(t) => described(t),
                    None => missing(name, id),
                },
            })
            .collect(),
    };
    response
}

/// Kafka's internal topics (`Topic.isInternal`): the group and the
/// transaction coordinators' logs.
pub fn is_internal(topic: &str) -> bool {
    topic == crate::group::OFFSETS_TOPIC || topic == crate::txn::TXN_TOPIC
}

/// The active controller: this node alone, else as the quorum last said
/// (-1 while none is elected).
pub fn controller_id(shard: &Shard) -> i32 {
    match &shard.controller {
        Some(controller) => controller.leader().unwrap_or(-1),
        None => shard.config.node_id,
    }
}

/// Every unfenced broker with its client endpoint and rack.
fn live_brokers(view: &ClusterView, listener: &str) -> Vec<MetadataResponseBroker> {
    view.image
        .live_brokers()
        .filter_map(|b| {
            let endpoint = b.endpoint(listener)?;
            let mut out = MetadataResponseBroker::default();
            out.node_id = BrokerId(b.id);
            out.host = StrBytes::from_string(endpoint.host.clone());
            out.port = i32::from(endpoint.port);
            out.rack = b.rack.clone().map(StrBytes::from_string);
            Some(out)
        })
        .collect()
}

async fn create_default(shard: &Rc<Shard>, name: &str) {
    let outcome = shard
        .admin(AdminOp::CreateTopic {
            name: name.to_string(),
            assignments: None,
            replication_factor: -1,
            partitions: -1,
            configs: Default::default(),
            validate_only: false,
        })
        .await;
    // TOPIC_ALREADY_EXISTS means another client won the race: fine.
    if outcome.error != 0 && outcome.error != ResponseError::TopicAlreadyExists.code() {
        tracing::warn!(
            topic = name,
            error = outcome.error,
            "auto-creating topic failed"
        );
    }
}

fn broker(shard: &Shard, client: &super::Client) -> MetadataResponseBroker {
    let advertised = &client.session.listener.advertised;
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(shard.config.node_id);
    b.host = StrBytes::from_string(advertised.0.clone());
    b.port = advertised.1;
    b
}

fn described(topic: &TopicMeta, node: i32, view: Option<&ClusterView>) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    t.topic_id = topic.uuid();
    t.is_internal = is_internal(&topic.name);
    t.topic_authorized_operations = OPERATIONS_OMITTED;
    t.partitions = (0..topic.partitions)
        .map(|p| {
            let placed = placement(view, node, &topic.name, p);
            let mut part = MetadataResponsePartition::default();
            part.partition_index = p;
            part.error_code = placed.error;
            part.leader_id = BrokerId(placed.leader);
            part.leader_epoch = placed.leader_epoch;
            part.replica_nodes = placed.replicas;
            part.isr_nodes = placed.isr;
            part.offline_replicas = placed.offline;
            part
        })
        .collect();
    t
}

/// What Metadata and DescribeTopicPartitions say of one partition.
pub(super) struct Placement {
    pub error: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub offline: Vec<BrokerId>,
}

/// Partition `p` of `topic` as the cluster image has it (an offline one,
/// without a leader, answers LEADER_NOT_AVAILABLE, as Kafka does), else
/// led by this node (`node`) alone.
pub(super) fn placement(view: Option<&ClusterView>, node: i32, topic: &str, p: i32) -> Placement {
    let ids = |ids: &[i32]| ids.iter().map(|&id| BrokerId(id)).collect::<Vec<_>>();
    match view.and_then(|v| Some((v, v.partition(topic, p)?))) {
        Some((view, state)) => Placement {
            error: if state.leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            },
            leader: state.leader,
            leader_epoch: state.leader_epoch,
            replicas: ids(&state.replicas),
            isr: ids(&state.isr),
            offline: state
                .replicas
                .iter()
                .filter(|&&id| !view.image.broker_live(id))
                .map(|&id| BrokerId(id))
                .collect(),
        },
        None => Placement {
            error: 0,
            leader: node,
            leader_epoch: 0,
            replicas: vec![BrokerId(node)],
            isr: vec![BrokerId(node)],
            offline: Vec::new(),
        },
    }
}

/// A topic the principal may not see (or create): nothing about it is
/// disclosed, not even whether it exists; one asked by id (`id` not nil)
/// is answered under the id alone, as Kafka answers it.
fn unauthorized(name: &str, id: uuid::Uuid) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.error_code = ResponseError::TopicAuthorizationFailed.code();
    if id.is_nil() {
        t.name = Some(TopicName(StrBytes::from_string(name.to_string())));
    } else {
        t.name = None;
        t.topic_id = id;
    }
    t.topic_authorized_operations = OPERATIONS_OMITTED;
    t
}

/// A topic that does not exist: by name, UNKNOWN_TOPIC_OR_PARTITION (or
/// INVALID_TOPIC_EXCEPTION for a name no topic can have); by id
/// (`id` not nil), UNKNOWN_TOPIC_ID under that id, which is how Java's
/// client matches the answer to what it asked.
fn missing(name: Option<String>, id: uuid::Uuid) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.error_code = match &name {
        _ if !id.is_nil() => ResponseError::UnknownTopicId.code(),
        Some(n) if !valid_topic_name(n) => ResponseError::InvalidTopicException.code(),
        _ => ResponseError::UnknownTopicOrPartition.code(),
    };
    t.topic_id = id;
    t.name = name.map(|n| TopicName(StrBytes::from_string(n)));
    t.topic_authorized_operations = OPERATIONS_OMITTED;
    t
}

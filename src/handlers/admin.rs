//! CreateTopics, DeleteTopics, CreatePartitions: validated here for the
//! request's own rules, carried out by the controller shard.

use std::rc::Rc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::throttle::Mutations;
use super::{ApiSpec, Client};
use crate::config::TopicConfigs;
use crate::security::acl::Operation;
use crate::shard::{AdminOp, AdminOutcome, Shard};

pub const CREATE_TOPICS: ApiSpec = ApiSpec {
    key: ApiKey::CreateTopics,
    // Older versions through the version bridge (`handlers::legacy`).
    min: 0,
    max: 7,
};
pub const DELETE_TOPICS: ApiSpec = ApiSpec {
    key: ApiKey::DeleteTopics,
    // Older versions through the version bridge (`handlers::legacy`).
    min: 0,
    max: 6,
};
pub const CREATE_PARTITIONS: ApiSpec = ApiSpec {
    key: ApiKey::CreatePartitions,
    min: 0,
    max: 3,
};

/// The first versions that refuse a mutation over the controller mutation
/// quota (KIP-599's strict mode); older ones are throttled after it.
const CREATE_TOPICS_STRICT_SINCE: i16 = 6;
const CREATE_PARTITIONS_STRICT_SINCE: i16 = 3;
const DELETE_TOPICS_STRICT_SINCE: i16 = 5;

/// A topic refused for the controller mutation quota, in Kafka's words.
fn over_mutation_quota() -> AdminOutcome {
    refused(
        ResponseError::ThrottlingQuotaExceeded,
        "The throttling quota has been exceeded.".into(),
    )
}

/// Partitions as counted against the controller mutation quota.
fn partitions(n: i32) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn refused(error: ResponseError, message: String) -> AdminOutcome {
    AdminOutcome {
        error: error.code(),
        message: Some(message),
    }
}

/// The first CreateTopics version whose result holds the topic's configs
/// (KIP-525).
const CONFIGS_IN_RESULT_SINCE: i16 = 5;

/// Create on the cluster allows every topic; else each needs Create on
/// itself (TOPIC_AUTHORIZATION_FAILED), as Kafka checks it. From v5 each
/// created topic's configs come back, if the principal may describe them
/// (else TOPIC_AUTHORIZATION_FAILED as its config error).
pub async fn create_topics(
    shard: &Rc<Shard>,
    access: &Access,
    client: &Client,
    header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    let mut quota = Mutations::new(
        shard,
        client,
        header,
        CREATE_TOPICS_STRICT_SINCE,
        request.validate_only,
    );
    let cluster_create = access.cluster(Operation::Create);
    let with_configs = header.request_api_version >= CONFIGS_IN_RESULT_SINCE;
    for topic in request.topics {
        // What the request sets, for the result's configs of a topic only
        // validated (not created, so not in the topics snapshot).
        let requested: TopicConfigs = topic
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let name = topic.name.0.to_string();
        let one_node = shard.controller.is_none();
        let outcome = if !cluster_create && !access.topic(Operation::Create, &name) {
            refused(
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".into(),
            )
        } else if one_node && !matches!(topic.replication_factor, -1 | 1) {
            refused(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {} is not 1, and this broker is the only one",
                    topic.replication_factor
                ),
            )
        } else if !topic.assignments.is_empty()
            && (topic.num_partitions != -1 || topic.replication_factor != -1)
        {
            // Kafka's rule: assignments say both.
            refused(
                ResponseError::InvalidRequest,
                "both numPartitions or replicationFactor and replicasAssignments were set".into(),
            )
        } else {
            let configs: Option<TopicConfigs> = topic
                .configs
                .iter()
                .map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            match configs {
                Some(_) if !quota.admit() => over_mutation_quota(),
                Some(configs) => {
                    let assignments = explicit_assignments(&topic.assignments);
                    let partitions = match &assignments {
                        Some(a) => i32::try_from(a.len()).unwrap_or(i32::MAX),
                        None => topic.num_partitions,
                    };
                    shard
                        .admin(AdminOp::CreateTopic {
                            name: name.clone(),
                            replication_factor: i32::from(topic.replication_factor),
                            assignments,
                            partitions,
                            configs,
                            validate_only: request.validate_only,
                        })
                        .await
                }
                None => refused(
                    ResponseError::InvalidConfig,
                    "a config has a null value".into(),
                ),
            }
        };
        let mut result = CreatableTopicResult::default();
        if outcome.error == 0 {
            if let Some(meta) = shard.topics().get(&name) {
                result.topic_id = meta.uuid();
                result.num_partitions = meta.partitions;
                quota.record(partitions(meta.partitions));
            } else {
                // validate_only: report what would have been created.
                result.num_partitions = if topic.num_partitions == -1 {
                    shard.config.num_partitions
                } else {
                    topic.num_partitions
                };
            }
            result.replication_factor = replication_factor(shard, &name);
            if with_configs {
                if access.topic(Operation::DescribeConfigs, &name) {
                    let created = shard.topics().get(&name).map(|meta| meta.configs.clone());
                    let own = created.unwrap_or(requested);
                    result.configs = Some(super::configs::created_topic_configs(shard, &own));
                } else {
                    result.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
                }
            }
        } else {
            result.num_partitions = -1;
            result.replication_factor = -1;
        }
        result.name = topic.name;
        result.error_code = outcome.error;
        result.error_message = outcome.message.map(StrBytes::from_string);
        results.push(result);
    }
    let mut response = CreateTopicsResponse::default();
    response.topics = results;
    response.throttle_time_ms = quota.finish();
    response
}

/// Replicas per partition in partition order, or `None` when the request
/// names none (or names partitions out of order, which the controller's
/// validation then refuses as a count mismatch).
fn explicit_assignments(
    assignments: &[kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment],
) -> Option<Vec<Vec<i32>>> {
    if assignments.is_empty() {
        return None;
    }
    let mut sorted: Vec<_> = assignments.iter().collect();
    sorted.sort_by_key(|a| a.partition_index);
    Some(
        sorted
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if a.partition_index != i as i32 {
                    return Vec::new(); // refused later: a partition without replicas
                }
                a.broker_ids.iter().map(|b| b.0).collect()
            })
            .collect(),
    )
}

/// The replication factor a created topic got (its first partition's).
fn replication_factor(shard: &Shard, topic: &str) -> i16 {
    let topics = shard.topics();
    match topics.cluster.as_deref() {
        Some(view) => view
            .partition(topic, 0)
            .map_or(-1, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX)),
        None => 1,
    }
}

/// Each topic needs Delete (TOPIC_AUTHORIZATION_FAILED).
pub async fn delete_topics(
    shard: &Rc<Shard>,
    access: &Access,
    client: &Client,
    header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let mut quota = Mutations::new(shard, client, header, DELETE_TOPICS_STRICT_SINCE, false);
    // v0-5 name topics in `topic_names`; v6 in `topics` (by name or id).
    let names: Vec<Result<String, uuid::Uuid>> = if header.request_api_version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| match t.name {
                Some(name) => Ok(name.0.to_string()),
                None => shard
                    .topics()
                    .topics
                    .values()
                    .find(|m| m.uuid() == t.topic_id)
                    .map(|m| m.name.clone())
                    .ok_or(t.topic_id),
            })
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| Ok(n.0.to_string()))
            .collect()
    };
    let mut responses = Vec::with_capacity(names.len());
    for name in names {
        let mut result = DeletableTopicResult::default();
        match name {
            Ok(name) if !access.topic(Operation::Delete, &name) => {
                result.error_code = ResponseError::TopicAuthorizationFailed.code();
                result.name = Some(TopicName(StrBytes::from_string(name)));
            }
            Ok(name) => {
                let (topic_id, count) = shard
                    .topics()
                    .get(&name)
                    .map_or((uuid::Uuid::nil(), 0), |m| (m.uuid(), m.partitions));
                result.topic_id = topic_id;
                let outcome = if quota.admit() {
                    shard
                        .admin(AdminOp::DeleteTopic { name: name.clone() })
                        .await
                } else {
                    over_mutation_quota()
                };
                if outcome.error == 0 {
                    quota.record(partitions(count));
                }
                result.error_code = outcome.error;
                result.error_message = outcome.message.map(StrBytes::from_string);
                result.name = Some(TopicName(StrBytes::from_string(name)));
            }
            Err(id) => {
                result.topic_id = id;
                result.error_code = ResponseError::UnknownTopicId.code();
            }
        }
        responses.push(result);
    }
    let mut response = DeleteTopicsResponse::default();
    response.responses = responses;
    response.throttle_time_ms = quota.finish();
    response
}

/// Each topic needs Alter (TOPIC_AUTHORIZATION_FAILED).
pub async fn create_partitions(
    shard: &Rc<Shard>,
    access: &Access,
    client: &Client,
    header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    let mut quota = Mutations::new(
        shard,
        client,
        header,
        CREATE_PARTITIONS_STRICT_SINCE,
        request.validate_only,
    );
    for topic in request.topics {
        let outcome = if !access.topic(Operation::Alter, topic.name.0.as_str()) {
            refused(
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".into(),
            )
        } else if !quota.admit() {
            over_mutation_quota()
        } else {
            let name = topic.name.0.to_string();
            let before = shard.topics().get(&name).map_or(0, |m| m.partitions);
            let outcome = shard
                .admin(AdminOp::CreatePartitions {
                    name,
                    count: topic.count,
                    assignments: topic.assignments.as_ref().map(|added| {
                        added
                            .iter()
                            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                            .collect()
                    }),
                    validate_only: request.validate_only,
                })
                .await;
            if outcome.error == 0 {
                quota.record(partitions(topic.count.saturating_sub(before)));
            }
            outcome
        };
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name;
        result.error_code = outcome.error;
        result.error_message = outcome.message.map(StrBytes::from_string);
        results.push(result);
    }
    let mut response = CreatePartitionsResponse::default();
    response.results = results;
    response.throttle_time_ms = quota.finish();
    response
}

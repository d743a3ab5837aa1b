//! DescribeConfigs, IncrementalAlterConfigs and the legacy AlterConfigs for
//! topic configs. Broker configs are static (the config file); they describe
//! as empty and cannot be altered.

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::messages::alter_configs_request::AlterableConfig as LegacyConfig;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as LegacyResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, ApiKey, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::ApiSpec;
use crate::config::{ConfigChange, LIST_TOPIC_CONFIG_KEYS, TOPIC_CONFIG_KEYS};
use crate::shard::{AdminOp, Shard};

pub const DESCRIBE_CONFIGS: ApiSpec = ApiSpec {
    key: ApiKey::DescribeConfigs,
    // Older versions through the version bridge (`handlers::legacy`).
    min: 0,
    max: 4,
};
pub const ALTER_CONFIGS: ApiSpec = ApiSpec {
    key: ApiKey::AlterConfigs,
    min: 0,
    max: 2,
};
pub const INCREMENTAL_ALTER_CONFIGS: ApiSpec = ApiSpec {
    key: ApiKey::IncrementalAlterConfigs,
    min: 0,
    max: 1,
};

/// Kafka's ConfigResource.Type values.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's AlterConfigOp.OpType values.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Kafka's ConfigEntry.ConfigType of each topic config (v3+ responses).
fn config_type(key: &str) -> i8 {
    const BOOLEAN: i8 = 1;
    const STRING: i8 = 2;
    const INT: i8 = 3;
    const LONG: i8 = 5;
    const LIST: i8 = 7;
    match key {
        _ if LIST_TOPIC_CONFIG_KEYS.contains(&key) => LIST,
        "compression.type" | "message.timestamp.type" => STRING,
        "unclean.leader.election.enable" => BOOLEAN,
        "index.interval.bytes" | "max.message.bytes" | "segment.bytes" | "min.insync.replicas" => {
            INT
        }
        _ => LONG,
    }
}

pub fn describe(
    shard: &Rc<Shard>,
    _header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let topics = shard.topics();
    let mut response = DescribeConfigsResponse::default();
    response.results = request
        .resources
        .into_iter()
        .map(|resource| {
            let mut result = DescribeConfigsResult::default();
            result.resource_type = resource.resource_type;
            match resource.resource_type {
                RESOURCE_TOPIC => match topics.get(resource.resource_name.as_str()) {
                    Some(topic) => {
                        let wanted = |key: &str| {
                            resource
                                .configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
                        };
                        result.configs = TOPIC_CONFIG_KEYS
                            .iter()
                            .filter(|key| wanted(key))
                            .map(|key| entry(shard, &topic.configs, key))
                            .collect();
                    }
                    None => {
                        result.error_code = ResponseError::UnknownTopicOrPartition.code();
                        result.error_message = Some(StrBytes::from_static_str("unknown topic"));
                    }
                },
                RESOURCE_BROKER => {}
                _ => {
                    result.error_code = ResponseError::InvalidRequest.code();
                    result.error_message =
                        Some(StrBytes::from_static_str("unsupported resource type"));
                }
            }
            result.resource_name = resource.resource_name;
            result
        })
        .collect();
    response
}

fn entry(
    shard: &Shard,
    configs: &crate::config::TopicConfigs,
    key: &str,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default();
    e.name = StrBytes::from_string(key.to_string());
    e.value = shard
        .config
        .topic_config_value(configs, key)
        .map(StrBytes::from_string);
    e.config_source = if configs.contains_key(key) {
        SOURCE_TOPIC
    } else {
        SOURCE_DEFAULT
    };
    e.config_type = config_type(key);
    e
}

pub async fn incremental_alter(
    shard: &Rc<Shard>,
    _header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let shape: Vec<(&str, bool)> = resource
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.config_operation != OP_DELETE && c.value.is_none(),
                )
            })
            .collect();
        let changes = match malformed(&shape) {
            Some(refused) => Err(refused),
            None => resource.configs.iter().map(incremental_change).collect(),
        };
        let (error, message) = alter_resource(
            shard,
            resource.resource_type,
            &resource.resource_name,
            changes,
            false,
            request.validate_only,
        )
        .await;
        let mut result = AlterConfigsResourceResponse::default();
        result.error_code = error;
        result.error_message = message.map(StrBytes::from_string);
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name;
        responses.push(result);
    }
    let mut response = IncrementalAlterConfigsResponse::default();
    response.responses = responses;
    response
}

/// The legacy whole-set form older tools send: for a topic, the configs
/// given become its whole set of explicit configs, and every other key goes
/// back to its default (as Kafka's controller does it, by deleting them).
pub async fn alter(
    shard: &Rc<Shard>,
    _header: &RequestHeader,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let shape: Vec<(&str, bool)> = resource
            .configs
            .iter()
            .map(|c| (c.name.as_str(), c.value.is_none()))
            .collect();
        let changes = match malformed(&shape) {
            Some(refused) => Err(refused),
            None => Ok(resource.configs.iter().map(legacy_change).collect()),
        };
        let (error, message) = alter_resource(
            shard,
            resource.resource_type,
            &resource.resource_name,
            changes,
            true,
            request.validate_only,
        )
        .await;
        let mut result = LegacyResourceResponse::default();
        result.error_code = error;
        result.error_message = message.map(StrBytes::from_string);
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name;
        responses.push(result);
    }
    let mut response = AlterConfigsResponse::default();
    response.responses = responses;
    response
}

/// A resource's answer: Kafka error code and message.
type Outcome = (i16, Option<String>);

fn invalid_request(message: impl Into<String>) -> Outcome {
    (ResponseError::InvalidRequest.code(), Some(message.into()))
}

/// What Kafka refuses in a resource before it reads any config (its
/// ConfigAdminManager.preprocess, same messages): a key named twice, or no
/// value where the operation needs one. `configs` are (name, value missing).
fn malformed(configs: &[(&str, bool)]) -> Option<Outcome> {
    let mut seen = BTreeSet::new();
    if !configs.iter().all(|&(name, _)| seen.insert(name)) {
        return Some(invalid_request("Error due to duplicate config keys"));
    }
    let missing: Vec<&str> = configs
        .iter()
        .filter(|&&(_, missing)| missing)
        .map(|&(name, _)| name)
        .collect();
    if !missing.is_empty() {
        return Some(invalid_request(format!(
            "Null value not supported for : {}",
            missing.join(", ")
        )));
    }
    None
}

/// One IncrementalAlterConfigs operation as a change (values checked present).
fn incremental_change(c: &AlterableConfig) -> Result<(String, ConfigChange), Outcome> {
    let value = || {
        c.value
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    };
    let change = match c.config_operation {
        OP_SET => ConfigChange::Set(value()),
        OP_DELETE => ConfigChange::Delete,
        OP_APPEND => ConfigChange::Append(value()),
        OP_SUBTRACT => ConfigChange::Subtract(value()),
        op => return Err(invalid_request(format!("Unknown operations type {op}"))),
    };
    Ok((c.name.to_string(), change))
}

/// One legacy AlterConfigs entry as a set (values checked present).
fn legacy_change(c: &LegacyConfig) -> (String, ConfigChange) {
    let value = c
        .value
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    (c.name.to_string(), ConfigChange::Set(value))
}

/// Runs one resource's changes: a topic's on the controller shard; broker
/// configs are static (the config file), so they cannot change here.
async fn alter_resource(
    shard: &Rc<Shard>,
    resource_type: i8,
    name: &StrBytes,
    changes: Result<Vec<(String, ConfigChange)>, Outcome>,
    replace: bool,
    validate_only: bool,
) -> Outcome {
    match (resource_type, changes) {
        (_, Err(refused)) => refused,
        (RESOURCE_TOPIC, Ok(changes)) => {
            let outcome = shard
                .admin(AdminOp::AlterConfigs {
                    name: name.to_string(),
                    changes,
                    replace,
                    validate_only,
                })
                .await;
            (outcome.error, outcome.message)
        }
        (RESOURCE_BROKER, _) => {
            invalid_request("broker configs are static: set them in the config file")
        }
        _ => invalid_request("unsupported resource type"),
    }
}

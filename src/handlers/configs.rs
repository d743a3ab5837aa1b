//! DescribeConfigs and IncrementalAlterConfigs for topic configs. Broker
//! configs are static (the config file); they describe as empty.

use std::rc::Rc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::ApiSpec;
use crate::config::TOPIC_CONFIG_KEYS;
use crate::shard::{AdminOp, Shard};

pub const DESCRIBE_CONFIGS: ApiSpec = ApiSpec {
    key: ApiKey::DescribeConfigs,
    min: 1,
    max: 4,
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

/// Kafka's ConfigEntry.ConfigType of each topic config (v3+ responses).
fn config_type(key: &str) -> i8 {
    const STRING: i8 = 2;
    const INT: i8 = 3;
    const LONG: i8 = 5;
    const LIST: i8 = 7;
    match key {
        "cleanup.policy" => LIST,
        "compression.type" | "message.timestamp.type" => STRING,
        "index.interval.bytes" | "max.message.bytes" | "segment.bytes" => INT,
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
        let mut result = AlterConfigsResourceResponse::default();
        result.resource_type = resource.resource_type;
        let changes: Result<Vec<(String, Option<String>)>, String> = resource
            .configs
            .iter()
            .map(|c| match c.config_operation {
                OP_SET => match &c.value {
                    Some(v) => Ok((c.name.to_string(), Some(v.to_string()))),
                    None => Err(format!("{} needs a value", c.name.as_str())),
                },
                OP_DELETE => Ok((c.name.to_string(), None)),
                op => Err(format!(
                    "operation {op} on {} is not supported",
                    c.name.as_str()
                )),
            })
            .collect();
        let (error, message) = match (resource.resource_type, changes) {
            (RESOURCE_TOPIC, Ok(changes)) => {
                let outcome = shard
                    .admin(AdminOp::AlterConfigs {
                        name: resource.resource_name.to_string(),
                        changes,
                        validate_only: request.validate_only,
                    })
                    .await;
                (outcome.error, outcome.message)
            }
            (RESOURCE_TOPIC, Err(message)) => (ResponseError::InvalidConfig.code(), Some(message)),
            (RESOURCE_BROKER, _) => (
                ResponseError::InvalidRequest.code(),
                Some("broker configs are static: set them in the config file".into()),
            ),
            _ => (
                ResponseError::InvalidRequest.code(),
                Some("unsupported resource type".into()),
            ),
        };
        result.error_code = error;
        result.error_message = message.map(StrBytes::from_string);
        result.resource_name = resource.resource_name;
        responses.push(result);
    }
    let mut response = IncrementalAlterConfigsResponse::default();
    response.responses = responses;
    response
}

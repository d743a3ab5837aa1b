//! The BROKER_LOGGER config resource of DescribeConfigs and
//! IncrementalAlterConfigs (KIP-412): this broker's log levels
//! ([`crate::log_levels`]), read and changed while it runs, as
//! `kafka-configs.sh --entity-type broker-loggers` does it. Each broker
//! answers for itself: the resource names this node's id. Changes are not
//! kept across a restart, as in Kafka.

use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::config::ConfigChange;
use crate::log_levels::{self, LevelError};

/// Kafka's ConfigSource of a logger's level.
const SOURCE_DYNAMIC_BROKER_LOGGER: i8 = 6;

/// A resource's error: Kafka code and message.
pub type Refusal = (i16, String);

/// The resource must name this broker, as Kafka requires.
fn check_broker(node_id: i32, name: &str) -> Result<(), Refusal> {
    let refuse = |message: String| Err((ResponseError::InvalidRequest.code(), message));
    if name.is_empty() {
        return refuse("Broker id must not be empty".into());
    }
    match name.parse::<i32>() {
        Ok(id) if id == node_id => Ok(()),
        _ => refuse(format!(
            "Unexpected broker id, expected {node_id} but received {name}"
        )),
    }
}

/// Each logger with a level (`wanted` filters by name).
pub fn describe(
    node_id: i32,
    name: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<DescribeConfigsResourceResult>, Refusal> {
    check_broker(node_id, name)?;
    Ok(log_levels::loggers()
        .into_iter()
        .filter(|(logger, _)| wanted(logger))
        .map(|(logger, level)| {
            let mut e = DescribeConfigsResourceResult::default();
            e.name = StrBytes::from_string(logger);
            e.value = Some(StrBytes::from_string(level));
            e.config_source = SOURCE_DYNAMIC_BROKER_LOGGER;
            e
        })
        .collect())
}

/// Sets or removes loggers' levels, all or none. APPEND and SUBTRACT mean
/// nothing for a level, and Kafka refuses them.
pub fn alter(
    node_id: i32,
    name: &str,
    changes: Vec<(String, ConfigChange)>,
    validate_only: bool,
) -> Result<(), Refusal> {
    check_broker(node_id, name)?;
    let invalid_request = |message: String| (ResponseError::InvalidRequest.code(), message);
    let levels = changes
        .into_iter()
        .map(|(logger, change)| match change {
            ConfigChange::Set(level) => Ok((logger, Some(level))),
            ConfigChange::Delete => Ok((logger, None)),
            ConfigChange::Append(_) => Err(invalid_request(
                "APPEND operation is not allowed for the BROKER_LOGGER resource".into(),
            )),
            ConfigChange::Subtract(_) => Err(invalid_request(
                "SUBTRACT operation is not allowed for the BROKER_LOGGER resource".into(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    log_levels::change(&levels, validate_only).map_err(|e| {
        let code = match e {
            LevelError::Level { .. } | LevelError::Logger(_) | LevelError::TooMany => {
                ResponseError::InvalidConfig
            }
            LevelError::RootRemoval => ResponseError::InvalidRequest,
            LevelError::NotInstalled | LevelError::Rebuild(_) => ResponseError::UnknownServerError,
        };
        (code.code(), e.to_string())
    })
}

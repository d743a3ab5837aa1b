//! DescribeConfigs, IncrementalAlterConfigs and the legacy AlterConfigs for
//! topic configs, dynamic broker configs (`broker_configs`): the topic
//! defaults, cluster-wide (the broker resource named "") or per broker,
//! group configs (`group_configs`) and client metrics subscriptions
//! (`client_metrics`).
//! Other broker configs come from the config file and cannot change here.

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::messages::alter_configs_request::AlterableConfig as LegacyConfig;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as LegacyResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
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

use super::{broker_loggers, ApiSpec};
use crate::broker_configs::{
    broker_key_of, in_config_unit, topic_key_of, BrokerConfigs, BrokerTarget, Source,
    REPLICATION_RATE_KEYS, TIME_UNIT_SYNONYMS,
};
use crate::config::ConfigChange;
use crate::metadata::Topics;
use crate::security::acl::Operation;
use crate::shard::{AdminOp, Shard};
use crate::topic_configs::{self, TOPIC_CONFIGS};

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

/// Kafka's ConfigResource.Type values (ListConfigResources names them too).
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;
pub(super) const RESOURCE_BROKER_LOGGER: i8 = 8;
pub(super) const RESOURCE_CLIENT_METRICS: i8 = 16;
pub(super) const RESOURCE_GROUP: i8 = 32;
/// Kafka's ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_CLIENT_METRICS: i8 = 7;
const SOURCE_STATIC_BROKER: i8 = 4;
pub(super) const SOURCE_DEFAULT: i8 = 5;
/// Kafka's AlterConfigOp.OpType values.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Kafka's ConfigEntry.ConfigType values (v3+ responses).
const TYPE_BOOLEAN: i8 = 1;
pub(super) const TYPE_STRING: i8 = 2;
pub(super) const TYPE_INT: i8 = 3;
const TYPE_SHORT: i8 = 4;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

/// The ConfigType of a topic config, of the broker config that defaults
/// one, or of a coarser spelling (an INT).
fn config_type(key: &str) -> i8 {
    if TIME_UNIT_SYNONYMS.iter().any(|(k, _, _)| *k == key) {
        return TYPE_INT;
    }
    topic_config_of(key).map_or(TYPE_LONG, |c| c.valid.kind().code())
}

/// The topic config `key` names, or defaults as a broker config.
fn topic_config_of(key: &str) -> Option<&'static topic_configs::TopicConfig> {
    topic_configs::get(key).or_else(|| topic_key_of(key).and_then(topic_configs::get))
}

/// A topic needs DescribeConfigs on itself, a broker DescribeConfigs on
/// the cluster (TOPIC_/CLUSTER_AUTHORIZATION_FAILED), as Kafka checks it.
pub fn describe(
    shard: &Rc<Shard>,
    access: &super::access::Access,
    _header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let topics = shard.topics();
    let include_synonyms = request.include_synonyms;
    let include_documentation = request.include_documentation;
    let mut response = DescribeConfigsResponse::default();
    response.results = request
        .resources
        .into_iter()
        .map(|resource| {
            let mut result = DescribeConfigsResult::default();
            result.resource_type = resource.resource_type;
            if let Some(code) = denied(
                access,
                Operation::DescribeConfigs,
                resource.resource_type,
                resource.resource_name.as_str(),
            ) {
                result.error_code = code;
                result.error_message = Some(StrBytes::from_static_str("Authorization failed."));
                result.resource_name = resource.resource_name;
                return result;
            }
            // The keys asked for (null: all).
            let wanted = |key: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == key))
            };
            match resource.resource_type {
                RESOURCE_TOPIC => match topics.get(resource.resource_name.as_str()) {
                    Some(topic) => {
                        result.configs = TOPIC_CONFIGS
                            .iter()
                            .filter(|c| wanted(c.name))
                            .map(|c| {
                                topic_entry(
                                    shard,
                                    &topics,
                                    &topic.configs,
                                    c.name,
                                    include_synonyms,
                                )
                            })
                            .collect();
                    }
                    None => {
                        result.error_code = ResponseError::UnknownTopicOrPartition.code();
                        result.error_message = Some(StrBytes::from_static_str("unknown topic"));
                    }
                },
                RESOURCE_BROKER => {
                    match broker_entries(shard, &topics, resource.resource_name.as_str()) {
                        Ok(entries) => {
                            result.configs = entries
                                .into_iter()
                                .filter(|e| wanted(e.name.as_str()))
                                .map(|mut e| {
                                    e.synonyms = match (include_synonyms, e.synonyms.is_empty()) {
                                        (false, _) => Vec::new(),
                                        // A config set at one level alone
                                        // is its own only synonym, as
                                        // Kafka lists it.
                                        (true, true) => synonyms(vec![(
                                            e.name.to_string(),
                                            e.value.as_ref().map(|v| v.to_string()),
                                            e.config_source,
                                        )]),
                                        (true, false) => e.synonyms,
                                    };
                                    e
                                })
                                .collect();
                        }
                        Err(message) => {
                            result.error_code = ResponseError::InvalidRequest.code();
                            result.error_message = Some(StrBytes::from_string(message));
                        }
                    }
                }
                RESOURCE_GROUP => {
                    let group = resource.resource_name.as_str();
                    let described = super::group_configs::describe(
                        &shard.config,
                        &topics,
                        group,
                        include_synonyms,
                        wanted,
                    );
                    match described {
                        Ok(entries) => result.configs = entries,
                        Err(message) => {
                            result.error_code = ResponseError::InvalidRequest.code();
                            result.error_message = Some(StrBytes::from_string(message));
                        }
                    }
                }
                RESOURCE_CLIENT_METRICS => {
                    match client_metrics_entries(&topics, resource.resource_name.as_str()) {
                        Ok(entries) => {
                            result.configs = entries
                                .into_iter()
                                .filter(|e| wanted(e.name.as_str()))
                                .collect()
                        }
                        Err(message) => {
                            result.error_code = ResponseError::InvalidRequest.code();
                            result.error_message = Some(StrBytes::from_static_str(message));
                        }
                    }
                }
                RESOURCE_BROKER_LOGGER => {
                    let node = shard.config.node_id;
                    match broker_loggers::describe(node, resource.resource_name.as_str(), wanted) {
                        Ok(entries) => result.configs = entries,
                        Err((code, message)) => {
                            result.error_code = code;
                            result.error_message = Some(StrBytes::from_string(message));
                        }
                    }
                }
                _ => {
                    result.error_code = ResponseError::InvalidRequest.code();
                    result.error_message =
                        Some(StrBytes::from_static_str("unsupported resource type"));
                }
            }
            result.resource_name = resource.resource_name;
            // Null where Kafka sends null: no error message on success, and
            // documentation only when asked (v3+), for the topic configs
            // and the broker configs that default them (the rest have none
            // here).
            if result.error_code == 0 {
                result.error_message = None;
            }
            for config in &mut result.configs {
                config.documentation = include_documentation
                    .then(|| documentation(config.name.as_str()))
                    .flatten()
                    .map(StrBytes::from_static_str);
            }
            result
        })
        .collect();
    response
}

/// A client metrics subscription's configs, those set on it (as Kafka
/// describes them: a subscription that does not exist has none).
fn client_metrics_entries(
    topics: &Topics,
    name: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, &'static str> {
    use crate::client_metrics::configs::{INTERVAL_MS, KEYS};
    if name.is_empty() {
        // Kafka's wording.
        return Err("Client metrics subscription name must not be empty");
    }
    let Some(set) = topics.client_metrics.of(name) else {
        return Ok(Vec::new());
    };
    Ok(KEYS
        .iter()
        .filter_map(|&key| {
            let value = set.get(key)?;
            let mut e = DescribeConfigsResourceResult::default();
            e.name = StrBytes::from_static_str(key);
            e.value = Some(StrBytes::from_string(value.clone()));
            e.config_source = SOURCE_CLIENT_METRICS;
            e.config_type = if key == INTERVAL_MS {
                TYPE_INT
            } else {
                TYPE_LIST
            };
            Some(e)
        })
        .collect())
}

/// What a topic config, or the broker config that defaults one, does.
fn documentation(key: &str) -> Option<&'static str> {
    topic_config_of(key).map(|c| c.doc)
}

/// Every config of a topic whose own are `configs`, as CreateTopics v5+
/// answers a created topic (KIP-525): value, source, read-only, sensitive.
pub(super) fn created_topic_configs(
    shard: &Shard,
    configs: &crate::config::TopicConfigs,
) -> Vec<kafka_protocol::messages::create_topics_response::CreatableTopicConfigs> {
    let topics = shard.topics();
    TOPIC_CONFIGS
        .iter()
        .map(|c| {
            let described = topic_entry(shard, &topics, configs, c.name, false);
            let mut c =
                kafka_protocol::messages::create_topics_response::CreatableTopicConfigs::default();
            c.name = described.name;
            c.value = described.value;
            c.read_only = described.read_only;
            c.config_source = described.config_source;
            c.is_sensitive = described.is_sensitive;
            c
        })
        .collect()
}

/// A topic config's value and where it comes from: the topic, this
/// broker's dynamic config, the cluster-wide one, else the config file.
/// With `include_synonyms` (v1+), every level that has a value, highest first.
fn topic_entry(
    shard: &Shard,
    topics: &Topics,
    configs: &crate::config::TopicConfigs,
    key: &str,
    include_synonyms: bool,
) -> DescribeConfigsResourceResult {
    let node = shard.config.node_id;
    let broker_key = broker_key_of(key);
    let mut levels: Vec<(String, Option<String>, i8)> = Vec::new();
    if let Some(v) = configs.get(key) {
        levels.push((key.to_string(), Some(v.clone()), SOURCE_TOPIC));
    }
    if let Some(broker_key) = broker_key {
        levels.extend(dynamic_levels(&topics.broker_configs, node, broker_key));
    }
    let static_value = shard.config.topic_config_value(&Default::default(), key);
    levels.push((
        broker_key.unwrap_or(key).to_string(),
        static_value,
        SOURCE_DEFAULT,
    ));
    let mut e = DescribeConfigsResourceResult::default();
    e.name = StrBytes::from_string(key.to_string());
    let (value, source) = effective(&levels);
    e.value = value.map(StrBytes::from_string);
    e.config_source = source;
    e.config_type = config_type(key);
    if include_synonyms {
        e.synonyms = synonyms(levels);
    }
    e
}

/// The dynamic levels of a broker config on `node`, with the sources
/// DescribeConfigs names them by (`BrokerConfigs::levels`).
fn dynamic_levels(
    configs: &BrokerConfigs,
    node: i32,
    broker_key: &str,
) -> Vec<(String, Option<String>, i8)> {
    configs
        .levels(node, broker_key)
        .into_iter()
        .map(|level| {
            let source = match level.source {
                Source::Broker => SOURCE_DYNAMIC_BROKER,
                Source::ClusterDefault => SOURCE_DYNAMIC_DEFAULT_BROKER,
                Source::Static => SOURCE_STATIC_BROKER,
            };
            (level.key.to_string(), Some(level.value.to_string()), source)
        })
        .collect()
}

/// The value of the first level, in the unit of the config described,
/// and its source.
fn effective(levels: &[(String, Option<String>, i8)]) -> (Option<String>, i8) {
    let (name, value, source) = &levels[0];
    let value = value.as_deref().and_then(|v| in_config_unit(name, v));
    (value, *source)
}

pub(super) fn synonyms(levels: Vec<(String, Option<String>, i8)>) -> Vec<DescribeConfigsSynonym> {
    levels
        .into_iter()
        .map(|(name, value, source)| {
            let mut s = DescribeConfigsSynonym::default();
            s.name = StrBytes::from_string(name);
            s.value = value.map(StrBytes::from_string);
            s.source = source;
            s
        })
        .collect()
}

/// A broker resource's configs, as Kafka's ConfigHelper lists them: the
/// empty name lists the cluster-wide dynamic configs; this broker's id
/// lists its configs with their sources; another id is refused, because
/// only that broker knows its own (clients send it there).
fn broker_entries(
    shard: &Shard,
    topics: &Topics,
    name: &str,
) -> Result<Vec<DescribeConfigsResourceResult>, String> {
    let node = shard.config.node_id;
    let wrong_id =
        || format!("Unexpected broker id, expected {node} or empty string, but received {name}");
    let entry = |name: &str, value: Option<String>, source: i8, config_type: i8| {
        let mut e = DescribeConfigsResourceResult::default();
        e.name = StrBytes::from_string(name.to_string());
        e.value = value.map(StrBytes::from_string);
        e.config_source = source;
        e.config_type = config_type;
        e
    };
    match BrokerTarget::parse(name).map_err(|_| wrong_id())? {
        BrokerTarget::ClusterDefault => Ok(topics
            .broker_configs
            .cluster_default
            .iter()
            .map(|(key, value)| {
                let topic_key = topic_key_of(key).unwrap_or(key);
                entry(
                    key,
                    Some(value.clone()),
                    SOURCE_DYNAMIC_DEFAULT_BROKER,
                    config_type(topic_key),
                )
            })
            .collect()),
        BrokerTarget::Broker(id) if id == node => {
            const INT: i8 = 3;
            let mut entries = vec![
                read_only(entry(
                    "broker.id",
                    Some(node.to_string()),
                    SOURCE_STATIC_BROKER,
                    INT,
                )),
                read_only(entry(
                    "node.id",
                    Some(node.to_string()),
                    SOURCE_STATIC_BROKER,
                    INT,
                )),
            ];
            // A config's value on this broker: its own or the cluster-wide
            // dynamic one, else `default`; typed as `type_key` is.
            // Every level with a value, highest first, as its synonyms.
            let described = |key: &str, default: Option<String>, type_key: &str| {
                let mut levels = dynamic_levels(&topics.broker_configs, node, key);
                levels.push((key.to_string(), default, SOURCE_DEFAULT));
                let (value, source) = effective(&levels);
                let mut e = entry(key, value, source, config_type(type_key));
                e.synonyms = synonyms(levels);
                e
            };
            let mut defaults: Vec<_> = topic_configs::broker_synonyms().collect();
            defaults.sort_unstable();
            for (broker_key, topic_key) in defaults {
                let default = shard
                    .config
                    .topic_config_value(&Default::default(), topic_key);
                entries.push(described(broker_key, default, topic_key));
            }
            // The coarser spellings themselves: set, or null (the
            // millisecond key's default stands for them).
            for (key, _, _) in TIME_UNIT_SYNONYMS {
                let levels = dynamic_levels(&topics.broker_configs, node, key);
                let (value, source) = levels
                    .first()
                    .map_or((None, SOURCE_DEFAULT), |(_, v, source)| {
                        (v.clone(), *source)
                    });
                let mut e = entry(key, value, source, TYPE_INT);
                e.synonyms = synonyms(levels);
                entries.push(e);
            }
            for rate_key in REPLICATION_RATE_KEYS {
                // Kafka's default: Long.MAX_VALUE, unthrottled.
                entries.push(described(rate_key, Some(i64::MAX.to_string()), rate_key));
            }
            entries.extend(static_entries(shard));
            Ok(entries)
        }
        BrokerTarget::Broker(_) => Err(wrong_id()),
    }
}

/// The broker's static configs that Kafka's tools show (`kafka-configs.sh
/// --describe --all`), under Kafka's names: read-only, as in Kafka, and
/// STATIC_BROKER_CONFIG where they differ from Sluice's default (set in
/// the config file or on the command line), else DEFAULT_CONFIG.
fn static_entries(shard: &Shard) -> Vec<DescribeConfigsResourceResult> {
    let config = &shard.config;
    let default = crate::config::BrokerConfig::default();
    // (Kafka's name, this broker's value, Sluice's default, type); `None`
    // for a setting with no value, which Kafka describes as null.
    macro_rules! field {
        ($name:literal, $field:ident, $type:expr) => {
            (
                $name,
                Some(config.$field.to_string()),
                Some(default.$field.to_string()),
                $type,
            )
        };
    }
    let log_dirs = super::describe_log_dirs::log_dir(shard)
        .display()
        .to_string();
    let values = [
        field!(
            "auto.create.topics.enable",
            auto_create_topics_enable,
            TYPE_BOOLEAN
        ),
        field!("num.partitions", num_partitions, TYPE_INT),
        field!(
            "default.replication.factor",
            default_replication_factor,
            TYPE_INT
        ),
        field!(
            "offsets.topic.num.partitions",
            offsets_topic_num_partitions,
            TYPE_INT
        ),
        field!(
            "offsets.topic.replication.factor",
            offsets_topic_replication_factor,
            TYPE_INT
        ),
        field!(
            "offsets.retention.minutes",
            offsets_retention_minutes,
            TYPE_INT
        ),
        field!(
            "group.initial.rebalance.delay.ms",
            group_initial_rebalance_delay_ms,
            TYPE_INT
        ),
        field!(
            "group.min.session.timeout.ms",
            group_min_session_timeout_ms,
            TYPE_INT
        ),
        field!(
            "group.max.session.timeout.ms",
            group_max_session_timeout_ms,
            TYPE_INT
        ),
        field!(
            "auto.leader.rebalance.enable",
            auto_leader_rebalance_enable,
            TYPE_BOOLEAN
        ),
        field!(
            "replica.lag.time.max.ms",
            replica_lag_time_max_ms,
            TYPE_LONG
        ),
        field!(
            "socket.request.max.bytes",
            socket_request_max_bytes,
            TYPE_INT
        ),
        ("log.dirs", Some(log_dirs), None, TYPE_STRING),
        field!(
            "group.consumer.min.session.timeout.ms",
            group_consumer_min_session_timeout_ms,
            TYPE_INT
        ),
        field!(
            "group.consumer.max.session.timeout.ms",
            group_consumer_max_session_timeout_ms,
            TYPE_INT
        ),
        field!(
            "group.consumer.min.heartbeat.interval.ms",
            group_consumer_min_heartbeat_interval_ms,
            TYPE_INT
        ),
        field!(
            "group.consumer.max.heartbeat.interval.ms",
            group_consumer_max_heartbeat_interval_ms,
            TYPE_INT
        ),
        field!(
            "group.share.min.session.timeout.ms",
            group_share_min_session_timeout_ms,
            TYPE_INT
        ),
        field!(
            "group.share.max.session.timeout.ms",
            group_share_max_session_timeout_ms,
            TYPE_INT
        ),
        field!(
            "group.share.min.heartbeat.interval.ms",
            group_share_min_heartbeat_interval_ms,
            TYPE_INT
        ),
        field!(
            "group.share.max.heartbeat.interval.ms",
            group_share_max_heartbeat_interval_ms,
            TYPE_INT
        ),
        field!(
            "group.share.min.record.lock.duration.ms",
            group_share_min_record_lock_duration_ms,
            TYPE_INT
        ),
        field!(
            "group.share.max.record.lock.duration.ms",
            group_share_max_record_lock_duration_ms,
            TYPE_INT
        ),
        field!(
            "delegation.token.max.lifetime.ms",
            delegation_token_max_lifetime_ms,
            TYPE_LONG
        ),
        field!(
            "delegation.token.expiry.time.ms",
            delegation_token_expiry_time_ms,
            TYPE_LONG
        ),
        field!("group.max.size", group_max_size, TYPE_INT),
        field!(
            "group.consumer.heartbeat.interval.ms",
            group_consumer_heartbeat_interval_ms,
            TYPE_INT
        ),
        field!(
            "group.consumer.session.timeout.ms",
            group_consumer_session_timeout_ms,
            TYPE_INT
        ),
        (
            "group.consumer.migration.policy",
            Some(policy_name(config.group_consumer_migration_policy)),
            Some(policy_name(default.group_consumer_migration_policy)),
            TYPE_STRING,
        ),
        field!("group.share.max.size", group_share_max_size, TYPE_SHORT),
        field!(
            "group.share.heartbeat.interval.ms",
            group_share_heartbeat_interval_ms,
            TYPE_INT
        ),
        field!(
            "group.share.session.timeout.ms",
            group_share_session_timeout_ms,
            TYPE_INT
        ),
        field!(
            "group.share.record.lock.duration.ms",
            group_share_record_lock_duration_ms,
            TYPE_INT
        ),
        field!(
            "group.share.delivery.count.limit",
            group_share_delivery_count_limit,
            TYPE_INT
        ),
        field!(
            "group.share.partition.max.record.locks",
            group_share_partition_max_record_locks,
            TYPE_INT
        ),
        field!(
            "group.share.max.share.sessions",
            group_share_max_share_sessions,
            TYPE_INT
        ),
        field!(
            "offsets.commit.timeout.ms",
            offsets_commit_timeout_ms,
            TYPE_INT
        ),
        field!(
            "offset.metadata.max.bytes",
            offset_metadata_max_bytes,
            TYPE_INT
        ),
        field!(
            "transaction.state.log.num.partitions",
            transaction_state_num_partitions,
            TYPE_INT
        ),
        field!(
            "transaction.max.timeout.ms",
            transaction_max_timeout_ms,
            TYPE_INT
        ),
        field!(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            transaction_abort_timed_out_transaction_cleanup_interval_ms,
            TYPE_INT
        ),
        field!(
            "transactional.id.expiration.ms",
            transactional_id_expiration_ms,
            TYPE_INT
        ),
        field!(
            "producer.id.expiration.ms",
            producer_id_expiration_ms,
            TYPE_INT
        ),
        field!(
            "producer.id.expiration.check.interval.ms",
            producer_id_expiration_check_interval_ms,
            TYPE_INT
        ),
        field!("replica.fetch.max.bytes", replica_fetch_max_bytes, TYPE_INT),
        field!(
            "replica.fetch.response.max.bytes",
            replica_fetch_response_max_bytes,
            TYPE_INT
        ),
        field!(
            "replica.fetch.wait.max.ms",
            replica_fetch_wait_max_ms,
            TYPE_INT
        ),
        field!(
            "replica.fetch.backoff.ms",
            replica_fetch_backoff_ms,
            TYPE_INT
        ),
        field!(
            "replica.socket.timeout.ms",
            replica_socket_timeout_ms,
            TYPE_INT
        ),
        field!(
            "replica.high.watermark.checkpoint.interval.ms",
            replica_high_watermark_checkpoint_interval_ms,
            TYPE_LONG
        ),
        field!(
            "leader.imbalance.check.interval.seconds",
            leader_imbalance_check_interval_seconds,
            TYPE_LONG
        ),
        field!(
            "leader.imbalance.per.broker.percentage",
            leader_imbalance_per_broker_percentage,
            TYPE_INT
        ),
        field!(
            "broker.session.timeout.ms",
            broker_session_timeout_ms,
            TYPE_INT
        ),
        field!(
            "broker.heartbeat.interval.ms",
            broker_heartbeat_interval_ms,
            TYPE_INT
        ),
        field!(
            "log.retention.check.interval.ms",
            retention_check_interval_ms,
            TYPE_LONG
        ),
        field!("log.cleaner.backoff.ms", log_cleaner_backoff_ms, TYPE_LONG),
        field!(
            "log.flush.scheduler.interval.ms",
            log_flush_scheduler_interval_ms,
            TYPE_LONG
        ),
        field!(
            "connections.max.idle.ms",
            connections_max_idle_ms,
            TYPE_LONG
        ),
        field!(
            "connections.max.reauth.ms",
            connections_max_reauth_ms,
            TYPE_LONG
        ),
        field!(
            "max.incremental.fetch.session.cache.slots",
            max_incremental_fetch_session_cache_slots,
            TYPE_INT
        ),
        field!("quota.window.num", quota_window_num, TYPE_INT),
        field!(
            "quota.window.size.seconds",
            quota_window_size_seconds,
            TYPE_INT
        ),
        field!("telemetry.max.bytes", telemetry_max_bytes, TYPE_INT),
        field!(
            "allow.everyone.if.no.acl.found",
            allow_everyone_if_no_acl_found,
            TYPE_BOOLEAN
        ),
        (
            "super.users",
            Some(config.super_users.join(";")).filter(|u| !u.is_empty()),
            None,
            TYPE_STRING,
        ),
        ("broker.rack", config.broker_rack.clone(), None, TYPE_STRING),
        (
            "controller.quorum.voters",
            config.controller_quorum_voters.clone(),
            None,
            TYPE_LIST,
        ),
        (
            "inter.broker.listener.name",
            config.inter_broker_listener_name.clone(),
            None,
            TYPE_STRING,
        ),
        (
            "listeners",
            Some(listeners(config, |name, l| {
                format!("{name}://{}", l.listen)
            })),
            Some(format!("PLAINTEXT://{}", default.listen)),
            TYPE_LIST,
        ),
        (
            "listener.security.protocol.map",
            Some(listeners(config, |name, l| {
                format!("{name}:{}", l.protocol.name())
            })),
            Some("PLAINTEXT:PLAINTEXT".to_string()),
            TYPE_STRING,
        ),
    ];
    let secret_key = token_secret_key(config.delegation_token_secret_key.is_some());
    values
        .into_iter()
        .map(|(name, value, default_value, config_type)| {
            let mut e = DescribeConfigsResourceResult::default();
            e.name = StrBytes::from_static_str(name);
            e.config_source = if value == default_value {
                SOURCE_DEFAULT
            } else {
                SOURCE_STATIC_BROKER
            };
            e.value = value.map(StrBytes::from_string);
            e.config_type = config_type;
            read_only(e)
        })
        .chain(std::iter::once(secret_key))
        .collect()
}

/// Each listener as `format` writes it, comma-separated: the configured
/// ones, or the single PLAINTEXT one at `listen`.
fn listeners(
    config: &crate::config::BrokerConfig,
    format: impl Fn(&str, &crate::security::listeners::ListenerConfig) -> String,
) -> String {
    use crate::security::listeners::{ListenerConfig, SecurityProtocol, DEFAULT_LISTENER};
    if config.listeners.is_empty() {
        let plaintext = ListenerConfig::bare(SecurityProtocol::Plaintext, &config.listen, None);
        return format(DEFAULT_LISTENER, &plaintext);
    }
    let named: Vec<String> = config
        .listeners
        .iter()
        .map(|(name, l)| format(name, l))
        .collect();
    named.join(",")
}

fn policy_name(policy: crate::config::MigrationPolicy) -> String {
    use clap::ValueEnum;
    policy
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

/// `delegation.token.secret.key` as Kafka describes a password: sensitive,
/// its value never shown; set or not by its source.
fn token_secret_key(set: bool) -> DescribeConfigsResourceResult {
    const TYPE_PASSWORD: i8 = 9;
    let mut e = DescribeConfigsResourceResult::default();
    e.name = StrBytes::from_static_str("delegation.token.secret.key");
    e.config_source = if set {
        SOURCE_STATIC_BROKER
    } else {
        SOURCE_DEFAULT
    };
    e.config_type = TYPE_PASSWORD;
    e.value = None;
    e.is_sensitive = true;
    read_only(e)
}

fn read_only(mut e: DescribeConfigsResourceResult) -> DescribeConfigsResourceResult {
    e.read_only = true;
    e
}

pub async fn incremental_alter(
    shard: &Rc<Shard>,
    access: &super::access::Access,
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
            access,
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
    access: &super::access::Access,
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
            access,
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

/// The authorization error for `op` on a config resource, if refused.
fn denied(
    access: &super::access::Access,
    op: Operation,
    resource_type: i8,
    name: &str,
) -> Option<i16> {
    match resource_type {
        RESOURCE_TOPIC if !access.topic(op, name) => {
            Some(ResponseError::TopicAuthorizationFailed.code())
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER | RESOURCE_CLIENT_METRICS
            if !access.cluster(op) =>
        {
            Some(ResponseError::ClusterAuthorizationFailed.code())
        }
        RESOURCE_GROUP if !access.group(op, name) => {
            Some(ResponseError::GroupAuthorizationFailed.code())
        }
        _ => None,
    }
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

/// Runs one resource's changes on the controller shard (through the
/// quorum in a cluster): a topic's configs or dynamic broker configs.
/// A topic needs AlterConfigs on itself, a broker AlterConfigs on the
/// cluster, as Kafka checks it.
async fn alter_resource(
    shard: &Rc<Shard>,
    access: &super::access::Access,
    resource_type: i8,
    name: &StrBytes,
    changes: Result<Vec<(String, ConfigChange)>, Outcome>,
    replace: bool,
    validate_only: bool,
) -> Outcome {
    if let Some(code) = denied(
        access,
        Operation::AlterConfigs,
        resource_type,
        name.as_str(),
    ) {
        return (code, Some("Authorization failed.".into()));
    }
    let op = match (resource_type, changes) {
        (_, Err(refused)) => return refused,
        (RESOURCE_TOPIC, Ok(changes)) => AdminOp::AlterConfigs {
            name: name.to_string(),
            changes,
            replace,
            validate_only,
        },
        (RESOURCE_BROKER, Ok(changes)) => match BrokerTarget::parse(name.as_str()) {
            Ok(target) => AdminOp::AlterBrokerConfigs {
                target,
                changes,
                replace,
                validate_only,
            },
            Err(e) => return invalid_request(e.to_string()),
        },
        (RESOURCE_GROUP, Ok(_)) if name.is_empty() => {
            return invalid_request("a group config resource needs a group name")
        }
        (RESOURCE_GROUP, Ok(changes)) => AdminOp::AlterGroupConfigs {
            group: name.to_string(),
            changes,
            replace,
            validate_only,
        },
        (RESOURCE_CLIENT_METRICS, Ok(changes)) => AdminOp::AlterClientMetricsConfigs {
            name: name.to_string(),
            changes,
            replace,
            validate_only,
        },
        // Kafka's legacy AlterConfigs takes no loggers.
        (RESOURCE_BROKER_LOGGER, Ok(changes)) if !replace => {
            return match broker_loggers::alter(
                shard.config.node_id,
                name.as_str(),
                changes,
                validate_only,
            ) {
                Ok(()) => (0, None),
                Err((code, message)) => (code, Some(message)),
            };
        }
        _ => return invalid_request("unsupported resource type"),
    };
    let outcome = shard.admin(op).await;
    (outcome.error, outcome.message)
}

//! Dynamic broker configs: the topic defaults an operator changes at run
//! time (`kafka-configs --entity-type brokers --alter`), for the whole
//! cluster (Kafka's broker resource with an empty name) or for one broker.
//!
//! A topic's value comes from, in order: the topic's own config, this
//! broker's dynamic config, the cluster-wide dynamic default, the config
//! file (Kafka's TOPIC_CONFIG, DYNAMIC_BROKER_CONFIG,
//! DYNAMIC_DEFAULT_BROKER_CONFIG, STATIC_BROKER_CONFIG). Only keys set
//! explicitly are stored, as for topics; in a cluster they live in the
//! metadata image, on a one-node broker in the topics snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{
    edited_list, validate_topic_config, BrokerConfig, ConfigChange, InvalidConfig, TopicConfigs,
};
use crate::throttle_configs as throttle;
use crate::topic_configs;

/// Kafka's coarser spellings of millisecond broker configs: (key, the
/// millisecond key, milliseconds per unit). A topic default takes the
/// millisecond key when it is set at any dynamic level, else these in
/// order, else the config file (Kafka's `log.retention.hours = 168` is
/// its default, here the file's `retention_ms`).
pub const TIME_UNIT_SYNONYMS: &[(&str, &str, i64)] = &[
    ("log.retention.minutes", "log.retention.ms", 60_000),
    ("log.retention.hours", "log.retention.ms", 3_600_000),
    ("log.roll.hours", "log.roll.ms", 3_600_000),
    ("log.roll.jitter.hours", "log.roll.jitter.ms", 3_600_000),
];

/// The coarser spellings of `ms_key`, in the order they count.
pub fn time_unit_synonyms(ms_key: &str) -> impl Iterator<Item = (&'static str, i64)> + '_ {
    TIME_UNIT_SYNONYMS
        .iter()
        .filter(move |(_, ms, _)| *ms == ms_key)
        .map(|(key, _, unit)| (*key, *unit))
}

/// A value of a coarser spelling in milliseconds, as Kafka's KafkaConfig
/// computes it: any negative value is -1 (no limit).
pub fn unit_to_ms(value: &str, unit: i64) -> Option<String> {
    let v: i64 = value.trim().parse().ok()?;
    Some(if v < 0 {
        "-1".to_string()
    } else {
        v.saturating_mul(unit).to_string()
    })
}

/// `value` of broker config `key` in the unit of the config it spells: a
/// coarser spelling's in milliseconds, any other as it is.
pub fn in_config_unit(key: &str, value: &str) -> Option<String> {
    match TIME_UNIT_SYNONYMS.iter().find(|(k, _, _)| *k == key) {
        Some(&(_, _, unit)) => unit_to_ms(value, unit),
        None => Some(value.to_string()),
    }
}

/// One dynamic level of a broker config that has a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub source: Source,
}

/// The replication throttle rates (`throttle_configs`), bytes per
/// second: dynamic broker configs of their own, no topic's default.
pub const REPLICATION_RATE_KEYS: &[&str] = &[throttle::LEADER_RATE, throttle::FOLLOWER_RATE];

/// Kafka's throttle on replicas moving between one broker's log dirs,
/// which `kafka-reassign-partitions.sh --verify` deletes after a move.
/// A broker here has one data dir: deleting it changes nothing, and a
/// value is refused rather than ignored.
pub const ALTER_LOG_DIRS_THROTTLE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";

/// A set of broker configs: only the keys set explicitly.
pub type DynamicConfigs = BTreeMap<String, String>;

/// The topic config a dynamic broker config is the default of.
pub fn topic_key_of(broker_key: &str) -> Option<&'static str> {
    topic_configs::broker_synonyms()
        .find(|(b, _)| *b == broker_key)
        .map(|(_, t)| t)
}

/// The broker config that is the default of a topic config.
pub fn broker_key_of(topic_key: &str) -> Option<&'static str> {
    topic_configs::get(topic_key).and_then(|c| c.broker)
}

/// Which broker configs a request names: Kafka's broker resource name is
/// empty for the cluster-wide default, else a broker id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerTarget {
    ClusterDefault,
    Broker(i32),
}

impl BrokerTarget {
    pub fn parse(resource_name: &str) -> Result<BrokerTarget, BrokerConfigError> {
        if resource_name.is_empty() {
            return Ok(BrokerTarget::ClusterDefault);
        }
        match resource_name.parse::<i32>() {
            Ok(id) if id >= 0 => Ok(BrokerTarget::Broker(id)),
            _ => Err(BrokerConfigError::BadBrokerId(resource_name.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerConfigError {
    /// Kafka's text for a broker config that is not dynamic.
    #[error("Cannot update these configs dynamically: {0}")]
    NotDynamic(String),
    #[error("invalid broker id {0:?}: expected a broker id or the empty string")]
    BadBrokerId(String),
    #[error("invalid value {value:?} for broker config {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: &'static str,
    },
}

impl BrokerConfigError {
    /// Kafka answers a key that cannot change with INVALID_REQUEST and a
    /// bad value with INVALID_CONFIG.
    pub fn is_invalid_value(&self) -> bool {
        matches!(self, BrokerConfigError::Invalid { .. })
    }

    fn invalid(broker_key: &str, e: InvalidConfig) -> BrokerConfigError {
        BrokerConfigError::Invalid {
            key: broker_key.to_string(),
            value: e.value,
            reason: e.reason,
        }
    }
}

/// Every dynamic broker config the cluster holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerConfigs {
    /// Kafka's broker resource with an empty name.
    #[serde(default)]
    pub cluster_default: DynamicConfigs,
    /// By broker id, as a string so the set persists as a TOML table.
    #[serde(default)]
    pub per_broker: BTreeMap<String, DynamicConfigs>,
}

/// Where a broker config's effective value comes from (Kafka's ConfigSource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Broker,
    ClusterDefault,
    /// The config file or the built-in default.
    Static,
}

impl BrokerConfigs {
    pub fn is_empty(&self) -> bool {
        self.cluster_default.is_empty() && self.per_broker.values().all(|c| c.is_empty())
    }

    pub fn of(&self, target: BrokerTarget) -> Option<&DynamicConfigs> {
        match target {
            BrokerTarget::ClusterDefault => Some(&self.cluster_default),
            BrokerTarget::Broker(id) => self.per_broker.get(&id.to_string()),
        }
    }

    /// A dynamic broker config's value on broker `node` and where it comes
    /// from; `None` when only the config file says.
    pub fn dynamic_value(&self, node: i32, broker_key: &str) -> Option<(&str, Source)> {
        if let Some(v) = self
            .of(BrokerTarget::Broker(node))
            .and_then(|c| c.get(broker_key))
        {
            return Some((v, Source::Broker));
        }
        self.cluster_default
            .get(broker_key)
            .map(|v| (v.as_str(), Source::ClusterDefault))
    }

    /// Every dynamic level of `broker_key` on broker `node` that has a
    /// value, in the order they count: the key itself (this broker's, then
    /// the cluster's), then each coarser spelling (`TIME_UNIT_SYNONYMS`)
    /// likewise, as Kafka lists a config's synonyms.
    pub fn levels<'a>(&'a self, node: i32, broker_key: &'a str) -> Vec<Level<'a>> {
        let own = self.of(BrokerTarget::Broker(node));
        std::iter::once(broker_key)
            .chain(time_unit_synonyms(broker_key).map(|(key, _)| key))
            .flat_map(|key| {
                let level = |configs: Option<&'a DynamicConfigs>, source| {
                    let value = configs?.get(key)?;
                    Some(Level { key, value, source })
                };
                let broker = level(own, Source::Broker);
                broker
                    .into_iter()
                    .chain(level(Some(&self.cluster_default), Source::ClusterDefault))
            })
            .collect()
    }

    /// A topic default's dynamic value on broker `node`, in the topic
    /// config's unit: the first of its [`Self::levels`].
    pub fn dynamic_default(&self, node: i32, broker_key: &str) -> Option<String> {
        let first = self.levels(node, broker_key).into_iter().next()?;
        in_config_unit(first.key, first.value)
    }

    /// The topic defaults broker `node` applies, keyed by topic config name:
    /// its own dynamic configs over the cluster-wide ones.
    pub fn topic_defaults(&self, node: i32) -> TopicConfigs {
        topic_configs::broker_synonyms()
            .filter_map(|(broker_key, topic_key)| {
                let value = self.dynamic_default(node, broker_key)?;
                Some((topic_key.to_string(), value))
            })
            .collect()
    }

    /// A replication throttle rate on broker `node` (`rate_key`, one of
    /// [`REPLICATION_RATE_KEYS`]): its own, else the cluster default;
    /// `None`: unthrottled.
    pub fn replication_rate(&self, node: i32, rate_key: &str) -> Option<u64> {
        let (value, _) = self.dynamic_value(node, rate_key)?;
        throttle::parse_rate(value).ok()
    }

    /// The configs after `changes` to `target`, applied in order to its
    /// current set or, with `replace` (AlterConfigs' whole-set form), to
    /// none. Every value set is validated as the topic config it defaults,
    /// so nothing invalid is stored.
    pub fn altered(
        &self,
        static_config: &BrokerConfig,
        target: BrokerTarget,
        changes: Vec<(String, ConfigChange)>,
        replace: bool,
    ) -> Result<BrokerConfigs, BrokerConfigError> {
        let mut set = if replace {
            DynamicConfigs::new()
        } else {
            self.of(target).cloned().unwrap_or_default()
        };
        for (key, change) in changes {
            if key == ALTER_LOG_DIRS_THROTTLE {
                checked_change(&mut set, key, change, |_| {
                    Err("a broker here has one data dir: no replica moves between log dirs")
                })?;
                continue;
            }
            if REPLICATION_RATE_KEYS.contains(&key.as_str()) {
                checked_change(&mut set, key, change, |v| {
                    throttle::parse_rate(v).map(|_| ())
                })?;
                continue;
            }
            if let Some(&(_, ms_key, unit)) = TIME_UNIT_SYNONYMS.iter().find(|(k, _, _)| *k == key)
            {
                checked_change(&mut set, key, change, |v| check_time_unit(ms_key, unit, v))?;
                continue;
            }
            let Some(topic_key) = topic_key_of(&key) else {
                return Err(BrokerConfigError::NotDynamic(key));
            };
            let value = match change {
                ConfigChange::Set(value) => value,
                ConfigChange::Delete => {
                    set.remove(&key);
                    continue;
                }
                ConfigChange::Append(items) | ConfigChange::Subtract(items)
                    if !topic_configs::is_list(topic_key) =>
                {
                    return Err(BrokerConfigError::Invalid {
                        key,
                        value: items,
                        reason: "APPEND and SUBTRACT apply only to list configs",
                    });
                }
                ConfigChange::Append(items) => {
                    self.edited_list(static_config, target, &set, &key, &items, true)
                }
                ConfigChange::Subtract(items) => {
                    self.edited_list(static_config, target, &set, &key, &items, false)
                }
            };
            validate_topic_config(topic_key, &value)
                .map_err(|e| BrokerConfigError::invalid(&key, e))?;
            set.insert(key, value);
        }
        let mut next = self.clone();
        match target {
            BrokerTarget::ClusterDefault => next.cluster_default = set,
            BrokerTarget::Broker(id) if set.is_empty() => {
                next.per_broker.remove(&id.to_string());
            }
            BrokerTarget::Broker(id) => {
                next.per_broker.insert(id.to_string(), set);
            }
        }
        Ok(next)
    }

    /// A list config with `items` appended or subtracted, starting from the
    /// value in effect for `target` (its own, else the cluster default,
    /// else the config file's), as Kafka's controller computes them.
    fn edited_list(
        &self,
        static_config: &BrokerConfig,
        target: BrokerTarget,
        set: &DynamicConfigs,
        broker_key: &str,
        items: &str,
        append: bool,
    ) -> String {
        let topic_key = topic_key_of(broker_key).expect("checked dynamic");
        let current = set
            .get(broker_key)
            .cloned()
            .or_else(|| match target {
                BrokerTarget::Broker(_) => self.cluster_default.get(broker_key).cloned(),
                BrokerTarget::ClusterDefault => None,
            })
            .or_else(|| static_config.topic_config_value(&TopicConfigs::new(), topic_key))
            .unwrap_or_default();
        edited_list(&current, items, append)
    }
}

/// Whether a coarser spelling's value, in milliseconds, is a valid value
/// of the topic config its millisecond key defaults.
fn check_time_unit(ms_key: &str, unit: i64, value: &str) -> Result<(), &'static str> {
    let ms = unit_to_ms(value, unit).ok_or("not an integer")?;
    let topic_key = topic_key_of(ms_key).expect("a topic default");
    validate_topic_config(topic_key, &ms).map_err(|e| e.reason)
}

/// A change to a broker config that defaults no topic config itself:
/// deleted, or set to a value `check` accepts (kept as given); APPEND and
/// SUBTRACT are for list configs only.
fn checked_change(
    set: &mut DynamicConfigs,
    key: String,
    change: ConfigChange,
    check: impl FnOnce(&str) -> Result<(), &'static str>,
) -> Result<(), BrokerConfigError> {
    let invalid =
        |key: String, value: String, reason| BrokerConfigError::Invalid { key, value, reason };
    match change {
        ConfigChange::Delete => {
            set.remove(&key);
            Ok(())
        }
        ConfigChange::Set(value) => match check(&value) {
            Ok(()) => {
                set.insert(key, value);
                Ok(())
            }
            Err(reason) => Err(invalid(key, value, reason)),
        },
        ConfigChange::Append(value) | ConfigChange::Subtract(value) => Err(invalid(
            key,
            value,
            "APPEND and SUBTRACT apply only to list configs",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> (String, ConfigChange) {
        (key.to_string(), ConfigChange::Set(value.to_string()))
    }

    #[test]
    fn every_synonym_names_a_topic_config() {
        for (broker_key, topic_key) in topic_configs::broker_synonyms() {
            assert_eq!(topic_key_of(broker_key), Some(topic_key));
            assert_eq!(broker_key_of(topic_key), Some(broker_key));
        }
        for (coarse, ms_key, _) in TIME_UNIT_SYNONYMS {
            assert!(topic_key_of(ms_key).is_some(), "{coarse} -> {ms_key}");
        }
    }

    #[test]
    fn broker_values_win_over_the_cluster_default() {
        let config = BrokerConfig::default();
        let configs = BrokerConfigs::default()
            .altered(
                &config,
                BrokerTarget::ClusterDefault,
                vec![
                    set("log.retention.ms", "100"),
                    set("log.segment.bytes", "1024"),
                ],
                false,
            )
            .unwrap()
            .altered(
                &config,
                BrokerTarget::Broker(2),
                vec![set("log.retention.ms", "200")],
                false,
            )
            .unwrap();
        let on_2 = configs.topic_defaults(2);
        assert_eq!(on_2["retention.ms"], "200");
        assert_eq!(on_2["segment.bytes"], "1024");
        assert_eq!(configs.topic_defaults(1)["retention.ms"], "100");
        assert_eq!(
            configs.dynamic_value(2, "log.retention.ms"),
            Some(("200", Source::Broker))
        );
        assert_eq!(
            configs.dynamic_value(1, "log.retention.ms"),
            Some(("100", Source::ClusterDefault))
        );
        assert_eq!(configs.dynamic_value(1, "log.roll.ms"), None);
    }

    #[test]
    fn refuses_static_keys_and_bad_values_and_keeps_nothing() {
        let config = BrokerConfig::default();
        let none = BrokerConfigs::default();
        let static_key = none.altered(
            &config,
            BrokerTarget::ClusterDefault,
            vec![set("num.io.threads", "8")],
            false,
        );
        assert!(matches!(static_key, Err(BrokerConfigError::NotDynamic(_))));
        let bad = none.altered(
            &config,
            BrokerTarget::Broker(0),
            vec![
                set("log.retention.ms", "100"),
                set("log.segment.bytes", "1"),
            ],
            false,
        );
        assert!(bad.unwrap_err().is_invalid_value());
    }

    #[test]
    fn delete_and_replace_go_back_to_the_file() {
        let config = BrokerConfig::default();
        let configs = BrokerConfigs::default()
            .altered(
                &config,
                BrokerTarget::Broker(0),
                vec![set("log.retention.ms", "5"), set("log.roll.ms", "7")],
                false,
            )
            .unwrap();
        let deleted = configs
            .altered(
                &config,
                BrokerTarget::Broker(0),
                vec![("log.retention.ms".into(), ConfigChange::Delete)],
                false,
            )
            .unwrap();
        assert_eq!(deleted.topic_defaults(0).len(), 1);
        let replaced = configs
            .altered(&config, BrokerTarget::Broker(0), vec![], true)
            .unwrap();
        assert!(replaced.is_empty());
        assert!(replaced.per_broker.is_empty(), "no empty entries kept");
    }

    #[test]
    fn append_starts_from_the_value_in_effect() {
        let config = BrokerConfig::default();
        let configs = BrokerConfigs::default()
            .altered(
                &config,
                BrokerTarget::Broker(1),
                vec![(
                    "log.cleanup.policy".into(),
                    ConfigChange::Append("compact".into()),
                )],
                false,
            )
            .unwrap();
        assert_eq!(
            configs.topic_defaults(1)["cleanup.policy"],
            "delete,compact"
        );
        let refused = configs.altered(
            &config,
            BrokerTarget::Broker(1),
            vec![("log.retention.ms".into(), ConfigChange::Append("5".into()))],
            false,
        );
        assert!(refused.unwrap_err().is_invalid_value());
    }

    #[test]
    fn coarser_spellings_count_after_the_millisecond_key() {
        let config = BrokerConfig::default();
        let with = |configs: &BrokerConfigs, target, key: &str, value: &str| {
            configs.altered(&config, target, vec![set(key, value)], false)
        };
        let cluster = BrokerTarget::ClusterDefault;
        let hours = with(
            &BrokerConfigs::default(),
            cluster,
            "log.retention.hours",
            "2",
        )
        .unwrap();
        let rolls = with(&hours, cluster, "log.roll.hours", "1").unwrap();
        let configs = with(
            &rolls,
            BrokerTarget::Broker(2),
            "log.retention.minutes",
            "3",
        )
        .unwrap();
        assert_eq!(configs.topic_defaults(1)["retention.ms"], "7200000");
        assert_eq!(configs.topic_defaults(1)["segment.ms"], "3600000");
        // Minutes before hours, whatever level each is set at.
        assert_eq!(configs.topic_defaults(2)["retention.ms"], "180000");
        // The millisecond key, even cluster-wide, before either.
        let with_ms = with(&configs, cluster, "log.retention.ms", "5000").unwrap();
        assert_eq!(with_ms.topic_defaults(2)["retention.ms"], "5000");
        let unlimited = with(&configs, cluster, "log.retention.hours", "-1").unwrap();
        assert_eq!(unlimited.topic_defaults(1)["retention.ms"], "-1");
        for (key, bad) in [("log.retention.hours", "x"), ("log.roll.hours", "0")] {
            let refused = with(&configs, BrokerTarget::Broker(1), key, bad);
            assert!(refused.unwrap_err().is_invalid_value());
        }
    }

    #[test]
    fn targets_parse_like_kafka_resource_names() {
        assert_eq!(
            BrokerTarget::parse("").unwrap(),
            BrokerTarget::ClusterDefault
        );
        assert_eq!(BrokerTarget::parse("3").unwrap(), BrokerTarget::Broker(3));
        assert!(BrokerTarget::parse("-1").is_err());
        assert!(BrokerTarget::parse("x").is_err());
    }
}

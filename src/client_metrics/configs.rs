//! Client metrics subscriptions as configs (KIP-714's CLIENT_METRICS
//! config resource: `kafka-client-metrics.sh`, `kafka-configs
//! --entity-type client-metrics`): each named subscription holds the
//! metric name prefixes it asks for, how often clients push them, and
//! which clients it applies to.
//!
//! Only keys set explicitly are stored, as for groups; in a cluster they
//! live in the metadata image, on a one-node broker in the topics
//! snapshot, so every broker and shard answers clients from the same set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{edited_list, list_items, ConfigChange};

/// Metric name prefixes the subscription asks for (a list; `*` alone is
/// every metric).
pub const METRICS: &str = "metrics";
/// How often matching clients push, in milliseconds.
pub const INTERVAL_MS: &str = "interval.ms";
/// `selector=regex` items a client must all match (a list; none matches
/// every client).
pub const MATCH: &str = "match";

/// Kafka's ClientMetricsConfigs defaults and bounds.
pub const INTERVAL_MS_DEFAULT: i32 = 300_000;
pub const INTERVAL_MS_MIN: i32 = 100;
pub const INTERVAL_MS_MAX: i32 = 3_600_000;

/// What a `match` item may select on, as Kafka names them.
pub const SELECTORS: [&str; 6] = [
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];

/// Subscriptions a cluster may hold; past it a new one is refused (the
/// set is rewritten whole on every change, and every client's request
/// matches against all of them).
pub const SUBSCRIPTIONS_MAX: usize = 1_000;
/// Longest config value stored (a list of prefixes or patterns).
pub const VALUE_BYTES_MAX: usize = 4_096;
/// Compiled size allowed for one `match` pattern, so a pattern cannot
/// make every client's request expensive.
pub const PATTERN_SIZE_MAX: usize = 64 << 10;

/// Every config a subscription has, in the order DescribeConfigs lists them.
pub const KEYS: [&str; 3] = [INTERVAL_MS, MATCH, METRICS];

/// One subscription's configs: only the keys set explicitly.
pub type SubscriptionConfigs = BTreeMap<String, String>;

/// Why a subscription change was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientMetricsConfigError {
    /// Kafka's wording (ClientMetricsConfigs.validate).
    #[error("Subscription name can't be empty")]
    EmptyName,
    /// Kafka's wording.
    #[error("Unknown client metrics configuration: {0}")]
    Unknown(String),
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("APPEND and SUBTRACT apply only to list configs, and {0} is not one")]
    NotAList(String),
    #[error("at most {SUBSCRIPTIONS_MAX} client metrics subscriptions may exist")]
    TooMany,
}

impl ClientMetricsConfigError {
    /// Kafka answers a bad value INVALID_CONFIG, the rest INVALID_REQUEST.
    pub fn is_invalid_value(&self) -> bool {
        matches!(self, ClientMetricsConfigError::Invalid { .. })
    }
}

/// Every subscription's configs, by name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientMetricsConfigs(BTreeMap<String, SubscriptionConfigs>);

impl ClientMetricsConfigs {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn of(&self, name: &str) -> Option<&SubscriptionConfigs> {
        self.0.get(name)
    }

    /// The subscriptions, and their configs.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &SubscriptionConfigs)> {
        self.0.iter()
    }

    /// `name`'s set replaced by `set` (removed when empty), as a metadata
    /// record leaves it.
    pub fn put(&mut self, name: &str, set: SubscriptionConfigs) {
        if set.is_empty() {
            self.0.remove(name);
        } else {
            self.0.insert(name.to_string(), set);
        }
    }

    /// The subscriptions after `changes` to `name`, applied in order to its
    /// current set or, with `replace` (AlterConfigs' whole-set form), to
    /// none; every value checked as Kafka checks it.
    pub fn altered(
        &self,
        name: &str,
        changes: Vec<(String, ConfigChange)>,
        replace: bool,
    ) -> Result<ClientMetricsConfigs, ClientMetricsConfigError> {
        if name.is_empty() {
            return Err(ClientMetricsConfigError::EmptyName);
        }
        let mut set = if replace {
            SubscriptionConfigs::new()
        } else {
            self.of(name).cloned().unwrap_or_default()
        };
        for (key, change) in changes {
            let Some(&key) = KEYS.iter().find(|k| **k == key) else {
                return Err(ClientMetricsConfigError::Unknown(key));
            };
            let value = match change {
                ConfigChange::Delete => {
                    set.remove(key);
                    continue;
                }
                ConfigChange::Set(value) => value,
                ConfigChange::Append(_) | ConfigChange::Subtract(_) if key == INTERVAL_MS => {
                    return Err(ClientMetricsConfigError::NotAList(key.into()));
                }
                ConfigChange::Append(items) => {
                    edited_list(set.get(key).map_or("", String::as_str), &items, true)
                }
                ConfigChange::Subtract(items) => {
                    edited_list(set.get(key).map_or("", String::as_str), &items, false)
                }
            };
            check(key, &value).map_err(|reason| ClientMetricsConfigError::Invalid {
                key: key.into(),
                value: value.clone(),
                reason,
            })?;
            set.insert(key.to_string(), value);
        }
        let mut next = self.clone();
        next.put(name, set);
        if next.0.len() > SUBSCRIPTIONS_MAX && next.0.len() > self.0.len() {
            return Err(ClientMetricsConfigError::TooMany);
        }
        Ok(next)
    }
}

/// A subscription's values, its own over Kafka's defaults; every stored
/// value was checked, so none fails here.
pub struct SubscriptionValues<'a> {
    pub metrics: Vec<&'a str>,
    pub interval_ms: i32,
    /// (selector, pattern) pairs.
    pub matches: Vec<(&'a str, &'a str)>,
}

impl<'a> SubscriptionValues<'a> {
    pub fn of(set: &'a SubscriptionConfigs) -> SubscriptionValues<'a> {
        let list = |key: &str| set.get(key).map(|v| list_items(v)).unwrap_or_default();
        SubscriptionValues {
            metrics: list(METRICS),
            interval_ms: set
                .get(INTERVAL_MS)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(INTERVAL_MS_DEFAULT),
            matches: list(MATCH)
                .into_iter()
                .filter_map(|item| item.split_once('='))
                .map(|(selector, pattern)| (selector.trim(), pattern.trim()))
                .collect(),
        }
    }
}

/// The text a config's default is described by.
pub fn default_value(key: &str) -> String {
    match key {
        INTERVAL_MS => INTERVAL_MS_DEFAULT.to_string(),
        _ => String::new(),
    }
}

/// Whether `value` is one `key` takes.
fn check(key: &str, value: &str) -> Result<(), String> {
    if value.len() > VALUE_BYTES_MAX {
        return Err(format!("longer than {VALUE_BYTES_MAX} bytes"));
    }
    match key {
        INTERVAL_MS => match value.trim().parse::<i64>() {
            Ok(v) if v < INTERVAL_MS_MIN.into() => {
                Err(format!("Value must be at least {INTERVAL_MS_MIN}"))
            }
            Ok(v) if v > INTERVAL_MS_MAX.into() => {
                Err(format!("Value must be no more than {INTERVAL_MS_MAX}"))
            }
            Ok(_) => Ok(()),
            Err(_) => Err("Not a number of type INT".into()),
        },
        MATCH => list_items(value).into_iter().try_for_each(check_match),
        _ => Ok(()),
    }
}

/// One `selector=regex` item, as Kafka's validateClientMatchPattern reads it.
fn check_match(item: &str) -> Result<(), String> {
    let Some((selector, pattern)) = item.split_once('=') else {
        return Err(format!("Illegal client matching pattern: {item}"));
    };
    let selector = selector.trim();
    if !SELECTORS.contains(&selector) {
        return Err(format!(
            "Illegal client matching pattern: {item} ({selector} is not one of {})",
            SELECTORS.join(", ")
        ));
    }
    super::subscription::compile(pattern.trim())
        .map(|_| ())
        .map_err(|e| format!("Illegal regex pattern: {pattern}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> (String, ConfigChange) {
        (key.to_string(), ConfigChange::Set(value.to_string()))
    }

    #[test]
    fn a_subscription_takes_kafkas_configs() {
        let configs = ClientMetricsConfigs::default()
            .altered(
                "s",
                vec![
                    set(
                        METRICS,
                        "org.apache.kafka.producer., org.apache.kafka.consumer.",
                    ),
                    set(INTERVAL_MS, "1000"),
                    set(
                        MATCH,
                        "client_id=app-.*,client_software_name=apache-kafka-java",
                    ),
                ],
                false,
            )
            .expect("valid");
        let values = SubscriptionValues::of(configs.of("s").expect("stored"));
        assert_eq!(
            values.metrics,
            ["org.apache.kafka.producer.", "org.apache.kafka.consumer."]
        );
        assert_eq!(values.interval_ms, 1000);
        assert_eq!(
            values.matches,
            [
                ("client_id", "app-.*"),
                ("client_software_name", "apache-kafka-java")
            ]
        );
        // Lists take APPEND and SUBTRACT; deleting every key removes it.
        let edited = configs
            .altered(
                "s",
                vec![
                    (
                        METRICS.into(),
                        ConfigChange::Subtract("org.apache.kafka.consumer.".into()),
                    ),
                    (METRICS.into(), ConfigChange::Append("*".into())),
                ],
                false,
            )
            .expect("valid");
        assert_eq!(
            SubscriptionValues::of(edited.of("s").unwrap()).metrics,
            ["org.apache.kafka.producer.", "*"]
        );
        let gone = edited
            .altered(
                "s",
                KEYS.iter()
                    .map(|k| (k.to_string(), ConfigChange::Delete))
                    .collect(),
                false,
            )
            .expect("valid");
        assert!(gone.is_empty());
        assert_eq!(
            SubscriptionValues::of(&Default::default()).interval_ms,
            INTERVAL_MS_DEFAULT
        );
    }

    #[test]
    fn bad_changes_are_refused_with_kafkas_reasons() {
        let none = ClientMetricsConfigs::default();
        let alter = |changes| none.altered("s", changes, false);
        assert_eq!(
            none.altered("", vec![set(METRICS, "*")], false),
            Err(ClientMetricsConfigError::EmptyName)
        );
        assert_eq!(
            alter(vec![set("no.such", "1")]),
            Err(ClientMetricsConfigError::Unknown("no.such".into()))
        );
        for (key, value) in [
            (INTERVAL_MS, "99"),
            (INTERVAL_MS, "3600001"),
            (INTERVAL_MS, "soon"),
            (MATCH, "client_id"),
            (MATCH, "client_colour=red"),
            (MATCH, "client_id=(unclosed"),
        ] {
            let refused = alter(vec![set(key, value)]).expect_err(value);
            assert!(refused.is_invalid_value(), "{key}={value}: {refused}");
        }
        assert_eq!(
            alter(vec![(INTERVAL_MS.into(), ConfigChange::Append("5".into()))]),
            Err(ClientMetricsConfigError::NotAList(INTERVAL_MS.into()))
        );
        assert!(alter(vec![set(METRICS, &"m,".repeat(VALUE_BYTES_MAX))])
            .expect_err("too long")
            .is_invalid_value());
    }

    #[test]
    fn the_number_of_subscriptions_is_bounded() {
        let mut configs = ClientMetricsConfigs::default();
        for i in 0..SUBSCRIPTIONS_MAX {
            configs = configs
                .altered(&format!("s{i}"), vec![set(METRICS, "*")], false)
                .expect("within the bound");
        }
        assert_eq!(
            configs.altered("one-more", vec![set(METRICS, "*")], false),
            Err(ClientMetricsConfigError::TooMany)
        );
        // An existing one may still change.
        assert!(configs
            .altered("s0", vec![set(INTERVAL_MS, "1000")], false)
            .is_ok());
    }
}

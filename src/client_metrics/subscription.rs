//! Which subscriptions a client matches, and so what it is asked to push
//! (GetTelemetrySubscriptions' answer), as Kafka's ClientMetricsManager
//! works it out.

use std::collections::BTreeSet;

use regex::Regex;
use uuid::Uuid;

use super::configs::{
    ClientMetricsConfigs, SubscriptionValues, INTERVAL_MS_DEFAULT, PATTERN_SIZE_MAX, SELECTORS,
};

/// Kafka's "every metric" prefix list.
pub const ALL_METRICS: &str = "*";

/// A `match` pattern as Kafka applies it: to the whole value.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(PATTERN_SIZE_MAX)
        .build()
}

/// What a client is known by, for matching and for the labels of the
/// metrics it pushes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    pub client_id: String,
    /// From its ApiVersions request (KIP-511); empty if it sent none.
    pub software_name: String,
    pub software_version: String,
    pub source_address: String,
    pub source_port: String,
}

impl ClientIdentity {
    /// The value a selector (one of [`SELECTORS`]) matches against.
    fn value(&self, instance: Uuid, selector: &str) -> String {
        match selector {
            "client_instance_id" => instance.to_string(),
            "client_id" => self.client_id.clone(),
            "client_software_name" => self.software_name.clone(),
            "client_software_version" => self.software_version.clone(),
            "client_source_address" => self.source_address.clone(),
            "client_source_port" => self.source_port.clone(),
            _ => unreachable!("selectors are checked when stored: {selector}"),
        }
    }
}

/// What one client is asked to push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Changes whenever what is asked changes, so a push made for an
    /// older answer is told UNKNOWN_SUBSCRIPTION_ID.
    pub id: i32,
    /// Metric name prefixes; empty: none; `*` alone: all.
    pub metrics: Vec<String>,
    pub interval_ms: i32,
}

/// The subscriptions of one config set, their patterns compiled.
pub struct Subscriptions {
    from: ClientMetricsConfigs,
    each: Vec<Compiled>,
}

struct Compiled {
    metrics: Vec<String>,
    interval_ms: i32,
    /// (one of [`SELECTORS`], pattern).
    matches: Vec<(&'static str, Regex)>,
}

impl Subscriptions {
    pub fn new(configs: &ClientMetricsConfigs) -> Subscriptions {
        let each = configs
            .iter()
            .map(|(_, set)| {
                let values = SubscriptionValues::of(set);
                Compiled {
                    metrics: values.metrics.iter().map(|m| m.to_string()).collect(),
                    interval_ms: values.interval_ms,
                    matches: values
                        .matches
                        .iter()
                        .filter_map(|(selector, pattern)| {
                            // Both checked when stored.
                            let selector = SELECTORS.iter().find(|s| *s == selector)?;
                            compile(pattern).ok().map(|re| (*selector, re))
                        })
                        .collect(),
                }
            })
            .collect();
        Subscriptions {
            from: configs.clone(),
            each,
        }
    }

    /// Whether these were compiled from `configs`.
    pub fn is_of(&self, configs: &ClientMetricsConfigs) -> bool {
        &self.from == configs
    }

    /// What `instance` is asked to push: the prefixes of every subscription
    /// it matches (all, if one asks for all), at the shortest of their
    /// intervals; nothing, at Kafka's default interval, if none matches.
    pub fn for_client(&self, instance: Uuid, client: &ClientIdentity) -> Subscription {
        let mut metrics = BTreeSet::new();
        let mut interval_ms = INTERVAL_MS_DEFAULT;
        let mut all = false;
        for s in &self.each {
            let matches = s
                .matches
                .iter()
                .all(|(selector, re)| re.is_match(&client.value(instance, selector)));
            if !matches {
                continue;
            }
            all |= s.metrics.iter().any(|m| m == ALL_METRICS);
            metrics.extend(s.metrics.iter().cloned());
            interval_ms = interval_ms.min(s.interval_ms);
        }
        let metrics: Vec<String> = if all {
            vec![ALL_METRICS.to_string()]
        } else {
            metrics.into_iter().collect()
        };
        Subscription {
            id: subscription_id(&metrics, interval_ms, instance),
            metrics,
            interval_ms,
        }
    }
}

/// Kafka's computeSubscriptionId in spirit: a checksum of what is asked,
/// plus the instance, the same on every broker for the same answer (a
/// client that moves to another broker keeps pushing unrefused).
fn subscription_id(metrics: &[String], interval_ms: i32, instance: Uuid) -> i32 {
    let text = format!("{}|{interval_ms}", metrics.join(","));
    let (high, low) = instance.as_u64_pair();
    let instance_hash = (high ^ low) as i32 ^ ((high ^ low) >> 32) as i32;
    (crc32c::crc32c(text.as_bytes()) as i32).wrapping_add(instance_hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_metrics::configs::{INTERVAL_MS, MATCH, METRICS};
    use crate::config::ConfigChange;

    fn subscriptions(each: &[(&str, &[(&str, &str)])]) -> Subscriptions {
        let mut configs = ClientMetricsConfigs::default();
        for (name, pairs) in each {
            let changes = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ConfigChange::Set(v.to_string())))
                .collect();
            configs = configs.altered(name, changes, false).expect("valid");
        }
        Subscriptions::new(&configs)
    }

    fn java(client_id: &str) -> ClientIdentity {
        ClientIdentity {
            client_id: client_id.into(),
            software_name: "apache-kafka-java".into(),
            software_version: "4.3.0".into(),
            source_address: "127.0.0.1".into(),
            source_port: "50000".into(),
        }
    }

    #[test]
    fn a_client_gets_every_matching_subscription_at_the_shortest_interval() {
        let subs = subscriptions(&[
            (
                "producers",
                &[
                    (METRICS, "org.apache.kafka.producer."),
                    (INTERVAL_MS, "60000"),
                    (MATCH, "client_id=app-.*"),
                ],
            ),
            (
                "java",
                &[
                    (METRICS, "org.apache.kafka.consumer."),
                    (INTERVAL_MS, "30000"),
                    (
                        MATCH,
                        "client_software_name=apache-kafka-java,client_source_port=5.*",
                    ),
                ],
            ),
            (
                "librdkafka",
                &[(METRICS, "*"), (MATCH, "client_software_name=librdkafka")],
            ),
        ]);
        let id = Uuid::new_v4();
        let both = subs.for_client(id, &java("app-1"));
        assert_eq!(
            both.metrics,
            ["org.apache.kafka.consumer.", "org.apache.kafka.producer."]
        );
        assert_eq!(both.interval_ms, 30_000);
        // A pattern matches the whole value, not a part of it.
        let one = subs.for_client(id, &java("my-app-1"));
        assert_eq!(one.metrics, ["org.apache.kafka.consumer."]);
        assert_ne!(one.id, both.id);
        let none = subs.for_client(id, &ClientIdentity::default());
        assert!(none.metrics.is_empty());
        assert_eq!(none.interval_ms, INTERVAL_MS_DEFAULT);
        let rdkafka = ClientIdentity {
            software_name: "librdkafka".into(),
            ..ClientIdentity::default()
        };
        assert_eq!(subs.for_client(id, &rdkafka).metrics, [ALL_METRICS]);
        // The same answer has the same id wherever it is worked out.
        assert_eq!(subs.for_client(id, &java("app-1")), both);
    }

    #[test]
    fn a_client_can_be_picked_by_its_instance_id() {
        let id = Uuid::new_v4();
        let subs = subscriptions(&[(
            "one",
            &[(METRICS, "*"), (MATCH, &format!("client_instance_id={id}"))],
        )]);
        assert_eq!(subs.for_client(id, &java("a")).metrics, [ALL_METRICS]);
        assert!(subs
            .for_client(Uuid::new_v4(), &java("a"))
            .metrics
            .is_empty());
    }
}

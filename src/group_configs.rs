//! Group configs (KIP-848's GROUP config resource, `kafka-configs
//! --entity-type groups`): one group's own values of the broker's group
//! settings, such as where a share group starts reading.
//!
//! A group's value comes from its own config, else the broker's (Kafka's
//! GROUP_CONFIG, then DEFAULT_CONFIG). Only keys set explicitly are stored,
//! as for topics; in a cluster they live in the metadata image, on a
//! one-node broker in the topics snapshot, so every broker and shard reads
//! the same ones (a share partition's leader as well as the coordinator).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{BrokerConfig, ConfigChange, ShareAutoOffsetReset};

/// Groups that may have configs of their own; past it a new one is
/// refused (the set is rewritten whole on every change).
pub const GROUPS_WITH_CONFIGS_MAX: usize = 10_000;

/// One group's configs: only the keys set explicitly.
pub type GroupConfigSet = BTreeMap<String, String>;

/// What kind of value a group config takes, and its bounds (Kafka's
/// ConfigDef type and validator; an integer's range is the broker's
/// `group.consumer.min.session.timeout.ms` and its kin).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// An integer within the (min, max) the broker's config gives.
    Int {
        bounds: fn(&BrokerConfig) -> (i64, i64),
    },
    /// `latest`, `earliest` or `by_duration:<ISO 8601 duration>`.
    OffsetReset,
    /// `read_uncommitted` or `read_committed`.
    Isolation,
}

/// One group config Sluice honours: its name, kind, and the broker setting
/// it overrides.
pub struct GroupConfigKey {
    pub name: &'static str,
    pub kind: Kind,
    pub default: fn(&BrokerConfig) -> String,
}

pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";
pub const SHARE_SESSION_TIMEOUT_MS: &str = "share.session.timeout.ms";
pub const SHARE_HEARTBEAT_INTERVAL_MS: &str = "share.heartbeat.interval.ms";
pub const SHARE_RECORD_LOCK_DURATION_MS: &str = "share.record.lock.duration.ms";
pub const SHARE_DELIVERY_COUNT_LIMIT: &str = "share.delivery.count.limit";
pub const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
pub const SHARE_ISOLATION_LEVEL: &str = "share.isolation.level";

/// Every group config honoured here, in the order DescribeConfigs lists
/// them: the one table every group config path reads.
pub const GROUP_CONFIG_KEYS: &[GroupConfigKey] = &[
    GroupConfigKey {
        name: CONSUMER_HEARTBEAT_INTERVAL_MS,
        kind: Kind::Int {
            bounds: |c| {
                (
                    c.group_consumer_min_heartbeat_interval_ms.into(),
                    c.group_consumer_max_heartbeat_interval_ms.into(),
                )
            },
        },
        default: |c| c.group_consumer_heartbeat_interval_ms.to_string(),
    },
    GroupConfigKey {
        name: CONSUMER_SESSION_TIMEOUT_MS,
        kind: Kind::Int {
            bounds: |c| {
                (
                    c.group_consumer_min_session_timeout_ms.into(),
                    c.group_consumer_max_session_timeout_ms.into(),
                )
            },
        },
        default: |c| c.group_consumer_session_timeout_ms.to_string(),
    },
    GroupConfigKey {
        name: SHARE_AUTO_OFFSET_RESET,
        kind: Kind::OffsetReset,
        default: |c| match c.share_auto_offset_reset {
            ShareAutoOffsetReset::Latest => "latest".into(),
            ShareAutoOffsetReset::Earliest => "earliest".into(),
        },
    },
    GroupConfigKey {
        name: SHARE_DELIVERY_COUNT_LIMIT,
        // Kafka's validator: no broker config moves it.
        kind: Kind::Int {
            bounds: |_| (2, 10),
        },
        default: |c| c.group_share_delivery_count_limit.to_string(),
    },
    GroupConfigKey {
        name: SHARE_HEARTBEAT_INTERVAL_MS,
        kind: Kind::Int {
            bounds: |c| {
                (
                    c.group_share_min_heartbeat_interval_ms.into(),
                    c.group_share_max_heartbeat_interval_ms.into(),
                )
            },
        },
        default: |c| c.group_share_heartbeat_interval_ms.to_string(),
    },
    GroupConfigKey {
        name: SHARE_ISOLATION_LEVEL,
        kind: Kind::Isolation,
        default: |_| "read_uncommitted".into(),
    },
    GroupConfigKey {
        name: SHARE_RECORD_LOCK_DURATION_MS,
        kind: Kind::Int {
            bounds: |c| {
                (
                    c.group_share_min_record_lock_duration_ms.into(),
                    c.group_share_max_record_lock_duration_ms.into(),
                )
            },
        },
        default: |c| c.group_share_record_lock_duration_ms.to_string(),
    },
    GroupConfigKey {
        name: SHARE_SESSION_TIMEOUT_MS,
        kind: Kind::Int {
            bounds: |c| {
                (
                    c.group_share_min_session_timeout_ms.into(),
                    c.group_share_max_session_timeout_ms.into(),
                )
            },
        },
        default: |c| c.group_share_session_timeout_ms.to_string(),
    },
];

/// Group configs Kafka has and Sluice does not honour (streams groups,
/// assignment batching, offloaded assignors): refused by name rather than
/// stored and ignored.
const NOT_HONOURED: &[&str] = &[
    "consumer.assignment.interval.ms",
    "consumer.assignor.offload.enable",
    "share.assignment.interval.ms",
    "share.assignor.offload.enable",
    "streams.session.timeout.ms",
    "streams.heartbeat.interval.ms",
    "streams.num.standby.replicas",
    "streams.initial.rebalance.delay.ms",
    "streams.assignment.interval.ms",
    "streams.assignor.offload.enable",
];

pub fn key(name: &str) -> Option<&'static GroupConfigKey> {
    GROUP_CONFIG_KEYS.iter().find(|k| k.name == name)
}

/// Why a group config change was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupConfigError {
    /// Kafka's wording (GroupConfig.validateNames).
    #[error("Unknown group config name: {0}")]
    Unknown(String),
    #[error("group config {0} is not supported by this broker")]
    NotHonoured(String),
    #[error("invalid value {value:?} for group config {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("APPEND and SUBTRACT apply only to list configs, and no group config is one")]
    NotAList,
    /// Kafka's wording (GroupConfig.validateValues).
    #[error("{0} must be greater than {1}")]
    SessionNotAboveHeartbeat(&'static str, &'static str),
    #[error("at most {GROUPS_WITH_CONFIGS_MAX} groups may have configs")]
    TooMany,
}

/// Where a share group's partition starts when it has no state yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareStart {
    Latest,
    Earliest,
    /// At the first record no older than this (Kafka's `by_duration`):
    /// the first offset whose timestamp is at least now less this.
    ByDurationMs(i64),
}

/// A group's settings, its own configs over the broker's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupSettings {
    pub consumer_session_timeout_ms: i32,
    pub consumer_heartbeat_interval_ms: i32,
    pub share_session_timeout_ms: i32,
    pub share_heartbeat_interval_ms: i32,
    pub share_record_lock_duration_ms: i32,
    pub share_delivery_count_limit: i16,
    pub share_start: ShareStart,
    /// `share.isolation.level=read_committed`: members get only records of
    /// committed transactions (and none past the last stable offset).
    pub share_read_committed: bool,
}

impl GroupSettings {
    /// The broker's settings, for a group with no configs of its own.
    pub fn of_broker(c: &BrokerConfig) -> GroupSettings {
        GroupSettings {
            consumer_session_timeout_ms: c.group_consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: c.group_consumer_heartbeat_interval_ms,
            share_session_timeout_ms: c.group_share_session_timeout_ms,
            share_heartbeat_interval_ms: c.group_share_heartbeat_interval_ms,
            share_record_lock_duration_ms: c.group_share_record_lock_duration_ms,
            share_delivery_count_limit: c.group_share_delivery_count_limit,
            share_start: match c.share_auto_offset_reset {
                ShareAutoOffsetReset::Latest => ShareStart::Latest,
                ShareAutoOffsetReset::Earliest => ShareStart::Earliest,
            },
            // Kafka's broker has no setting for it: the group's own config.
            share_read_committed: false,
        }
    }

    /// The broker's settings with `set`'s over them; every value in `set`
    /// was checked when stored.
    fn with(mut self, set: &GroupConfigSet) -> GroupSettings {
        for (name, value) in set {
            let value = value.trim();
            let applied = match self.millis_mut(name) {
                Some(field) => value.parse().ok().map(|v| *field = v),
                None => match name.as_str() {
                    SHARE_DELIVERY_COUNT_LIMIT => value
                        .parse()
                        .ok()
                        .map(|v| self.share_delivery_count_limit = v),
                    SHARE_AUTO_OFFSET_RESET => parse_share_start(value)
                        .ok()
                        .map(|start| self.share_start = start),
                    SHARE_ISOLATION_LEVEL => parse_read_committed(value)
                        .ok()
                        .map(|committed| self.share_read_committed = committed),
                    _ => None,
                },
            };
            debug_assert!(applied.is_some(), "a stored group config {name}={value}");
        }
        self
    }

    /// The millisecond setting `name` overrides, if it is one.
    fn millis_mut(&mut self, name: &str) -> Option<&mut i32> {
        Some(match name {
            CONSUMER_SESSION_TIMEOUT_MS => &mut self.consumer_session_timeout_ms,
            CONSUMER_HEARTBEAT_INTERVAL_MS => &mut self.consumer_heartbeat_interval_ms,
            SHARE_SESSION_TIMEOUT_MS => &mut self.share_session_timeout_ms,
            SHARE_HEARTBEAT_INTERVAL_MS => &mut self.share_heartbeat_interval_ms,
            SHARE_RECORD_LOCK_DURATION_MS => &mut self.share_record_lock_duration_ms,
            _ => return None,
        })
    }
}

/// Every group's configs, by group id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupConfigs(BTreeMap<String, GroupConfigSet>);

impl GroupConfigs {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn of(&self, group: &str) -> Option<&GroupConfigSet> {
        self.0.get(group)
    }

    /// The groups with configs, and theirs.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &GroupConfigSet)> {
        self.0.iter()
    }

    /// `group`'s set replaced by `set` (removed when empty), as a metadata
    /// record leaves it.
    pub fn put(&mut self, group: &str, set: GroupConfigSet) {
        if set.is_empty() {
            self.0.remove(group);
        } else {
            self.0.insert(group.to_string(), set);
        }
    }

    /// `group`'s settings: its own configs over the broker's.
    pub fn settings(&self, broker: &BrokerConfig, group: &str) -> GroupSettings {
        let base = GroupSettings::of_broker(broker);
        match self.of(group) {
            Some(set) => base.with(set),
            None => base,
        }
    }

    /// The configs after `changes` to `group`, applied in order to its
    /// current set or, with `replace` (AlterConfigs' whole-set form), to
    /// none. Each value is checked against its kind, and the result as a
    /// whole as Kafka checks it (a session longer than its heartbeat).
    pub fn altered(
        &self,
        broker: &BrokerConfig,
        group: &str,
        changes: Vec<(String, ConfigChange)>,
        replace: bool,
    ) -> Result<GroupConfigs, GroupConfigError> {
        let mut set = if replace {
            GroupConfigSet::new()
        } else {
            self.of(group).cloned().unwrap_or_default()
        };
        for (name, change) in changes {
            let Some(key) = key(&name) else {
                return Err(if NOT_HONOURED.contains(&name.as_str()) {
                    GroupConfigError::NotHonoured(name)
                } else {
                    GroupConfigError::Unknown(name)
                });
            };
            match change {
                ConfigChange::Delete => {
                    set.remove(&name);
                }
                ConfigChange::Set(value) => {
                    check(broker, key, &value).map_err(|reason| GroupConfigError::Invalid {
                        key: name.clone(),
                        value: value.clone(),
                        reason,
                    })?;
                    set.insert(name, value);
                }
                ConfigChange::Append(_) | ConfigChange::Subtract(_) => {
                    return Err(GroupConfigError::NotAList)
                }
            }
        }
        let settings = GroupSettings::of_broker(broker).with(&set);
        if settings.consumer_session_timeout_ms <= settings.consumer_heartbeat_interval_ms {
            return Err(GroupConfigError::SessionNotAboveHeartbeat(
                CONSUMER_SESSION_TIMEOUT_MS,
                CONSUMER_HEARTBEAT_INTERVAL_MS,
            ));
        }
        if settings.share_session_timeout_ms <= settings.share_heartbeat_interval_ms {
            return Err(GroupConfigError::SessionNotAboveHeartbeat(
                SHARE_SESSION_TIMEOUT_MS,
                SHARE_HEARTBEAT_INTERVAL_MS,
            ));
        }
        let mut next = self.clone();
        next.put(group, set);
        if next.0.len() > GROUPS_WITH_CONFIGS_MAX && next.0.len() > self.0.len() {
            return Err(GroupConfigError::TooMany);
        }
        Ok(next)
    }
}

/// Whether `value` is one `key` takes.
fn check(broker: &BrokerConfig, key: &GroupConfigKey, value: &str) -> Result<(), String> {
    match key.kind {
        Kind::Int { bounds } => {
            let (min, max) = bounds(broker);
            match value.trim().parse::<i64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(()),
                Ok(_) => Err(format!("must be between {min} and {max}")),
                Err(_) => Err("not an integer".into()),
            }
        }
        Kind::OffsetReset => parse_share_start(value).map(|_| ()),
        Kind::Isolation => parse_read_committed(value).map(|_| ()),
    }
}

/// Whether a `share.isolation.level` value is `read_committed` (Kafka's
/// values, matched exactly as its validator does).
fn parse_read_committed(value: &str) -> Result<bool, String> {
    match value {
        "read_uncommitted" => Ok(false),
        "read_committed" => Ok(true),
        _ => Err("expected read_uncommitted or read_committed".into()),
    }
}

/// A `share.auto.offset.reset` value, as Kafka's
/// ShareGroupAutoOffsetResetStrategy reads it (case-insensitive).
pub fn parse_share_start(value: &str) -> Result<ShareStart, String> {
    let lower = value.trim().to_ascii_lowercase();
    match lower.as_str() {
        "latest" => Ok(ShareStart::Latest),
        "earliest" => Ok(ShareStart::Earliest),
        _ => match lower.strip_prefix("by_duration:") {
            Some(duration) => java_duration_ms(duration)
                .map(ShareStart::ByDurationMs)
                .ok_or_else(|| {
                    format!("{duration:?} is not a non-negative ISO 8601 duration (PnDTnHnMn.nS)")
                }),
            None => Err("expected latest, earliest or by_duration:<duration>".into()),
        },
    }
}

/// A non-negative duration in Java's `Duration.parse` form (`PnDTnHnMn.nS`,
/// days and time only), in milliseconds. Written here because that is the
/// grammar Kafka accepts: the ISO 8601 crates also take years and months,
/// which Kafka refuses.
fn java_duration_ms(text: &str) -> Option<i64> {
    let rest = text.strip_prefix('p')?;
    let (days, time) = match rest.split_once('t') {
        Some((days, time)) => (days, Some(time)),
        None => (rest, None),
    };
    let mut ms: i64 = 0;
    let mut any = false;
    if !days.is_empty() {
        let n: i64 = days.strip_suffix('d')?.parse().ok()?;
        ms = ms.checked_add(n.checked_mul(86_400_000)?)?;
        any = true;
    }
    if let Some(mut time) = time {
        if time.is_empty() {
            return None; // "PT" alone, as Java refuses it
        }
        for (unit, unit_ms) in [('h', 3_600_000i64), ('m', 60_000)] {
            if let Some(at) = time.find(unit) {
                let n: i64 = time[..at].parse().ok()?;
                ms = ms.checked_add(n.checked_mul(unit_ms)?)?;
                time = &time[at + 1..];
                any = true;
            }
        }
        if !time.is_empty() {
            let seconds: f64 = time.strip_suffix('s')?.parse().ok()?;
            if !seconds.is_finite() {
                return None;
            }
            ms = ms.checked_add((seconds * 1000.0).round() as i64)?;
            any = true;
        }
    }
    (any && ms >= 0).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> (String, ConfigChange) {
        (key.to_string(), ConfigChange::Set(value.to_string()))
    }

    #[test]
    fn durations_read_as_java_reads_them() {
        assert_eq!(java_duration_ms("pt1h"), Some(3_600_000));
        assert_eq!(java_duration_ms("p1dt2h3m4.5s"), Some(93_784_500));
        assert_eq!(java_duration_ms("p2d"), Some(172_800_000));
        assert_eq!(java_duration_ms("pt0s"), Some(0));
        for bad in ["p", "pt", "1h", "pt-1h", "p1y", "pt1x", "pt1h1h", "p1m"] {
            assert_eq!(java_duration_ms(bad), None, "{bad}");
        }
        assert_eq!(
            parse_share_start("BY_DURATION:PT30M"),
            Ok(ShareStart::ByDurationMs(1_800_000))
        );
        assert!(parse_share_start("by_duration:").is_err());
        assert!(parse_share_start("none").is_err());
    }

    #[test]
    fn a_group_setting_is_its_own_else_the_brokers() {
        let broker = BrokerConfig::default();
        let configs = GroupConfigs::default()
            .altered(
                &broker,
                "g",
                vec![
                    set(SHARE_AUTO_OFFSET_RESET, "earliest"),
                    set(SHARE_RECORD_LOCK_DURATION_MS, "15000"),
                    set(SHARE_ISOLATION_LEVEL, "read_committed"),
                ],
                false,
            )
            .expect("valid");
        let own = configs.settings(&broker, "g");
        assert_eq!(own.share_start, ShareStart::Earliest);
        assert_eq!(own.share_record_lock_duration_ms, 15_000);
        assert!(own.share_read_committed);
        assert_eq!(
            own.share_delivery_count_limit,
            broker.group_share_delivery_count_limit
        );
        assert_eq!(
            configs.settings(&broker, "other"),
            GroupSettings::of_broker(&broker)
        );
        // Deleting the last one removes the group's set.
        let deleted = configs
            .altered(
                &broker,
                "g",
                vec![
                    (SHARE_AUTO_OFFSET_RESET.into(), ConfigChange::Delete),
                    (SHARE_RECORD_LOCK_DURATION_MS.into(), ConfigChange::Delete),
                    (SHARE_ISOLATION_LEVEL.into(), ConfigChange::Delete),
                ],
                false,
            )
            .expect("valid");
        assert!(deleted.is_empty());
    }

    #[test]
    fn refused_changes_name_their_reason() {
        let broker = BrokerConfig::default();
        let none = GroupConfigs::default();
        let alter = |changes| none.altered(&broker, "g", changes, false);
        assert_eq!(
            alter(vec![set("no.such", "1")]),
            Err(GroupConfigError::Unknown("no.such".into()))
        );
        assert_eq!(
            alter(vec![set("streams.num.standby.replicas", "1")]),
            Err(GroupConfigError::NotHonoured(
                "streams.num.standby.replicas".into()
            ))
        );
        for (key, value) in [
            (SHARE_RECORD_LOCK_DURATION_MS, "999"),
            (SHARE_DELIVERY_COUNT_LIMIT, "11"),
            (CONSUMER_SESSION_TIMEOUT_MS, "x"),
            (SHARE_ISOLATION_LEVEL, "READ_COMMITTED"),
            (SHARE_AUTO_OFFSET_RESET, "by_duration:-PT1H"),
        ] {
            assert!(
                matches!(
                    alter(vec![set(key, value)]),
                    Err(GroupConfigError::Invalid { .. })
                ),
                "{key}={value}"
            );
        }
        assert_eq!(
            alter(vec![set(SHARE_HEARTBEAT_INTERVAL_MS, "15000")]).map(|_| ()),
            Ok(())
        );
        // 45 s sessions at least: a 15 s heartbeat fits, and each bound holds.
        let tight = BrokerConfig {
            group_share_session_timeout_ms: 10_000,
            ..BrokerConfig::default()
        };
        assert_eq!(
            GroupConfigs::default().altered(
                &tight,
                "g",
                vec![set(SHARE_HEARTBEAT_INTERVAL_MS, "15000")],
                false
            ),
            Err(GroupConfigError::SessionNotAboveHeartbeat(
                SHARE_SESSION_TIMEOUT_MS,
                SHARE_HEARTBEAT_INTERVAL_MS
            ))
        );
        assert_eq!(
            alter(vec![(
                SHARE_AUTO_OFFSET_RESET.into(),
                ConfigChange::Append("earliest".into())
            )]),
            Err(GroupConfigError::NotAList)
        );
    }

    #[test]
    fn the_brokers_bounds_are_a_groups_range() {
        let two_minutes = set(CONSUMER_SESSION_TIMEOUT_MS, "120000");
        let none = GroupConfigs::default();
        assert!(matches!(
            none.altered(&BrokerConfig::default(), "g", vec![two_minutes.clone()], false),
            Err(GroupConfigError::Invalid { reason, .. }) if reason == "must be between 45000 and 60000"
        ));
        let longer = BrokerConfig {
            group_consumer_max_session_timeout_ms: 180_000,
            ..BrokerConfig::default()
        };
        let altered = none
            .altered(&longer, "g", vec![two_minutes], false)
            .expect("within the broker's bounds");
        assert_eq!(
            altered.settings(&longer, "g").consumer_session_timeout_ms,
            120_000
        );
    }

    #[test]
    fn every_default_is_a_value_its_key_takes_or_the_brokers_own() {
        let broker = BrokerConfig::default();
        for key in GROUP_CONFIG_KEYS {
            assert_eq!(
                check(&broker, key, &(key.default)(&broker)),
                Ok(()),
                "{}",
                key.name
            );
        }
    }
}

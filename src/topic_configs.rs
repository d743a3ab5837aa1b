//! Topic configs: every config Kafka's `TopicConfig` names, in one table
//! of (name, type, valid values, the broker config that is its default,
//! the default itself) that every config path reads: validation,
//! DescribeConfigs, CreateTopics' answer, dynamic broker defaults, and the
//! parse into [`crate::storage::LogConfig`].
//!
//! Tiered storage's configs (`remote.storage.enable`, `local.retention.*`,
//! `remote.log.*`) are accepted as a Kafka broker without a remote log
//! manager accepts them: `remote.storage.enable=true` is refused in
//! Kafka's words, and the rest change nothing while it is off. So is
//! `message.downconversion.enable`, a no-op since Kafka 4.0.

use crate::compression::Codec;
use crate::config::{list_items, BrokerConfig};
use crate::throttle_configs::{self as throttle, ThrottledReplicas};

/// Kafka's ConfigDef types, with the code DescribeConfigs v3+ names each by
/// (Kafka's `ConfigEntry.ConfigType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Boolean,
    String,
    Int,
    Long,
    Double,
    List,
}

impl Type {
    pub fn code(self) -> i8 {
        match self {
            Type::Boolean => 1,
            Type::String => 2,
            Type::Int => 3,
            Type::Long => 5,
            Type::Double => 6,
            Type::List => 7,
        }
    }
}

/// The values a topic config accepts (Kafka's validator for it), which
/// also say its type.
#[derive(Clone, Copy, Debug)]
pub enum Valid {
    /// A 32-bit integer (Kafka's INT) in `[min, max]`.
    Int(i64, i64),
    /// A 64-bit integer (Kafka's LONG) in `[min, max]`.
    Long(i64, i64),
    /// A number in `[0, 1]`.
    Ratio,
    Boolean,
    /// Only `false`: a feature this broker does not have, refused in
    /// Kafka's words when asked for.
    Off(&'static str),
    OneOf(&'static [&'static str]),
    /// A list of `delete` and `compact` (the empty list since Kafka 4.2).
    CleanupPolicy,
    /// A compression level of the codec.
    Level(Codec),
    /// `*` or a list of `partition:broker`.
    Replicas,
}

/// One topic config: its name, valid values (and so its type), the broker config that
/// is its default (Kafka's `ServerTopicConfigSynonyms`; dynamic here), and
/// that default's value from the config file.
pub struct TopicConfig {
    pub name: &'static str,
    /// What it does here, for DescribeConfigs' documentation.
    pub doc: &'static str,
    pub valid: Valid,
    pub broker: Option<&'static str>,
    pub default: fn(&BrokerConfig) -> String,
}

pub const CLEANUP_POLICY: &str = "cleanup.policy";
pub const COMPRESSION_TYPE: &str = "compression.type";
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
pub const FILE_DELETE_DELAY_MS: &str = "file.delete.delay.ms";
pub const FLUSH_MESSAGES: &str = "flush.messages";
pub const FLUSH_MS: &str = "flush.ms";
pub const INDEX_INTERVAL_BYTES: &str = "index.interval.bytes";
pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const MESSAGE_TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";
pub const MESSAGE_TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
pub const PREALLOCATE: &str = "preallocate";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const RETENTION_MS: &str = "retention.ms";
pub const SEGMENT_BYTES: &str = "segment.bytes";
pub const SEGMENT_INDEX_BYTES: &str = "segment.index.bytes";
pub const SEGMENT_JITTER_MS: &str = "segment.jitter.ms";
pub const SEGMENT_MS: &str = "segment.ms";
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

const INT_MAX: i64 = i32::MAX as i64;
const LONG_MAX: i64 = i64::MAX;

/// Kafka's refusal of tiered storage on a broker without it.
const TIERED_STORAGE_OFF: &str =
    "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.";

/// Every topic config, in the order DescribeConfigs lists them.
pub const TOPIC_CONFIGS: &[TopicConfig] = &[
    TopicConfig {
        name: CLEANUP_POLICY,
        doc: "What happens to old segments: `delete` removes them by retention time or size, `compact` keeps the newest record of each key; both, or neither (an empty list).",
        valid: Valid::CleanupPolicy,
        broker: Some("log.cleanup.policy"),
        default: |_| "delete".into(),
    },
    TopicConfig {
        name: "compression.gzip.level",
        doc: "The gzip level batches are compressed at when the topic recompresses to gzip.",
        valid: Valid::Level(Codec::Gzip),
        broker: Some("compression.gzip.level"),
        default: |_| "-1".into(),
    },
    TopicConfig {
        name: "compression.lz4.level",
        doc: "The lz4 level batches are compressed at when the topic recompresses to lz4.",
        valid: Valid::Level(Codec::Lz4),
        broker: Some("compression.lz4.level"),
        default: |_| "9".into(),
    },
    TopicConfig {
        name: COMPRESSION_TYPE,
        doc: "The codec batches are stored in: `producer` keeps each batch as its producer compressed it; any other value recompresses to it.",
        valid: Valid::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        broker: Some("compression.type"),
        default: |_| "producer".into(),
    },
    TopicConfig {
        name: "compression.zstd.level",
        doc: "The zstd level batches are compressed at when the topic recompresses to zstd.",
        valid: Valid::Level(Codec::Zstd),
        broker: Some("compression.zstd.level"),
        default: |_| "3".into(),
    },
    TopicConfig {
        name: DELETE_RETENTION_MS,
        doc: "How long a tombstone stays in a compacted log after its segment was first cleaned, so readers see the delete.",
        valid: Valid::Long(0, LONG_MAX),
        broker: Some("log.cleaner.delete.retention.ms"),
        default: |c| c.log.delete_retention_ms.to_string(),
    },
    TopicConfig {
        name: FILE_DELETE_DELAY_MS,
        doc: "How long a deleted segment's files stay, renamed, before they are removed from the filesystem.",
        valid: Valid::Long(0, LONG_MAX),
        broker: Some("log.segment.delete.delay.ms"),
        default: |c| c.log.file_delete_delay_ms.to_string(),
    },
    TopicConfig {
        name: FLUSH_MESSAGES,
        doc: "Records appended between forced fsyncs of the log (the default never forces one: replication gives durability).",
        valid: Valid::Long(1, LONG_MAX),
        broker: Some("log.flush.interval.messages"),
        default: |c| c.log.flush_messages.to_string(),
    },
    TopicConfig {
        name: FLUSH_MS,
        doc: "The longest an appended record waits before a forced fsync of the log (the default never forces one).",
        valid: Valid::Long(1, LONG_MAX),
        broker: Some("log.flush.interval.ms"),
        default: |c| c.log.flush_ms.to_string(),
    },
    TopicConfig {
        name: throttle::FOLLOWER_REPLICAS,
        doc: "The replicas, as partition:broker pairs or `*`, whose follower fetches the follower replication rate throttles.",
        valid: Valid::Replicas,
        broker: None,
        default: |_| String::new(),
    },
    TopicConfig {
        name: INDEX_INTERVAL_BYTES,
        doc: "Bytes of log between two entries of the offset index.",
        valid: Valid::Int(0, INT_MAX),
        broker: Some("log.index.interval.bytes"),
        default: |c| c.log.index_interval_bytes.to_string(),
    },
    TopicConfig {
        name: throttle::LEADER_REPLICAS,
        doc: "The replicas, as partition:broker pairs or `*`, whose leader answers the leader replication rate throttles.",
        valid: Valid::Replicas,
        broker: None,
        default: |_| String::new(),
    },
    TopicConfig {
        name: "local.retention.bytes",
        doc: "Tiered storage's local retention size (-2: as retention.bytes); no effect on a broker without tiered storage.",
        valid: Valid::Long(-2, LONG_MAX),
        broker: Some("log.local.retention.bytes"),
        default: |_| "-2".into(),
    },
    TopicConfig {
        name: "local.retention.ms",
        doc: "Tiered storage's local retention time (-2: as retention.ms); no effect on a broker without tiered storage.",
        valid: Valid::Long(-2, LONG_MAX),
        broker: Some("log.local.retention.ms"),
        default: |_| "-2".into(),
    },
    TopicConfig {
        name: MAX_COMPACTION_LAG_MS,
        doc: "The longest a record stays ineligible for compaction: a log whose oldest dirty segment is older is compacted whatever its dirty ratio.",
        valid: Valid::Long(1, LONG_MAX),
        broker: Some("log.cleaner.max.compaction.lag.ms"),
        default: |c| c.log.max_compaction_lag_ms.to_string(),
    },
    TopicConfig {
        name: MAX_MESSAGE_BYTES,
        doc: "The largest record batch the topic accepts, in bytes.",
        valid: Valid::Int(0, INT_MAX),
        broker: Some("message.max.bytes"),
        default: |c| c.log.max_message_bytes.to_string(),
    },
    TopicConfig {
        name: "message.downconversion.enable",
        doc: "Kept for old tools: down-conversion of fetches is decided by the fetch version.",
        valid: Valid::Boolean,
        broker: None,
        default: |_| "true".into(),
    },
    TopicConfig {
        name: MESSAGE_TIMESTAMP_AFTER_MAX_MS,
        doc: "How far ahead of the broker's clock a record's CreateTime may be; a batch holding one further ahead is refused.",
        valid: Valid::Long(0, LONG_MAX),
        broker: Some("log.message.timestamp.after.max.ms"),
        default: |c| c.log.message_timestamp_after_max_ms.to_string(),
    },
    TopicConfig {
        name: MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
        doc: "How far behind the broker's clock a record's CreateTime may be; a batch holding one further behind is refused.",
        valid: Valid::Long(0, LONG_MAX),
        broker: Some("log.message.timestamp.before.max.ms"),
        default: |c| c.log.message_timestamp_before_max_ms.to_string(),
    },
    TopicConfig {
        name: MESSAGE_TIMESTAMP_TYPE,
        doc: "Which time a record keeps: the producer's (`CreateTime`) or the broker's at append (`LogAppendTime`).",
        valid: Valid::OneOf(&["CreateTime", "LogAppendTime"]),
        broker: Some("log.message.timestamp.type"),
        default: |_| "CreateTime".into(),
    },
    TopicConfig {
        name: MIN_CLEANABLE_DIRTY_RATIO,
        doc: "The share of the closed segments' bytes never compacted at which a compaction round starts.",
        valid: Valid::Ratio,
        broker: Some("log.cleaner.min.cleanable.ratio"),
        default: |c| c.log.min_cleanable_dirty_ratio.to_string(),
    },
    TopicConfig {
        name: MIN_COMPACTION_LAG_MS,
        doc: "The least time a record stays uncompacted: a segment holding a younger record is not compacted.",
        valid: Valid::Long(0, LONG_MAX),
        broker: Some("log.cleaner.min.compaction.lag.ms"),
        default: |c| c.log.min_compaction_lag_ms.to_string(),
    },
    TopicConfig {
        name: MIN_INSYNC_REPLICAS,
        doc: "The fewest in-sync replicas an acks=all write needs.",
        valid: Valid::Int(1, INT_MAX),
        broker: Some("min.insync.replicas"),
        default: |c| c.min_insync_replicas.to_string(),
    },
    TopicConfig {
        name: PREALLOCATE,
        doc: "Whether the active segment's disk blocks are allocated ahead of its appends.",
        valid: Valid::Boolean,
        broker: Some("log.preallocate"),
        default: |c| c.log_preallocate.to_string(),
    },
    TopicConfig {
        name: "remote.log.copy.disable",
        doc: "Tiered storage: stop copying segments to remote storage; no effect on a broker without tiered storage.",
        valid: Valid::Boolean,
        broker: None,
        default: |_| "false".into(),
    },
    TopicConfig {
        name: "remote.log.delete.on.disable",
        doc: "Tiered storage: delete the remote log when tiering is turned off; no effect on a broker without tiered storage.",
        valid: Valid::Boolean,
        broker: None,
        default: |_| "false".into(),
    },
    TopicConfig {
        name: "remote.storage.enable",
        doc: "Tiered storage for the topic; this broker has none, so only `false` is taken.",
        valid: Valid::Off(TIERED_STORAGE_OFF),
        broker: None,
        default: |_| "false".into(),
    },
    TopicConfig {
        name: RETENTION_BYTES,
        doc: "The size a partition's log is cut back to by deleting its oldest segments (-1: no limit).",
        valid: Valid::Long(-1, LONG_MAX),
        broker: Some("log.retention.bytes"),
        default: |c| c.log.retention_bytes.to_string(),
    },
    TopicConfig {
        name: RETENTION_MS,
        doc: "How long a segment is kept after its newest record (-1: forever).",
        valid: Valid::Long(-1, LONG_MAX),
        broker: Some("log.retention.ms"),
        default: |c| c.log.retention_ms.to_string(),
    },
    TopicConfig {
        name: SEGMENT_BYTES,
        doc: "The size at which the active segment rolls.",
        valid: Valid::Int(14, INT_MAX),
        broker: Some("log.segment.bytes"),
        default: |c| c.log.segment_bytes.to_string(),
    },
    TopicConfig {
        name: SEGMENT_INDEX_BYTES,
        doc: "The size of offset index (8-byte entries) or time index (12-byte entries) at which the active segment rolls.",
        valid: Valid::Int(4, INT_MAX),
        broker: Some("log.index.size.max.bytes"),
        default: |c| c.log.segment_index_bytes.to_string(),
    },
    TopicConfig {
        name: SEGMENT_JITTER_MS,
        doc: "Up to how much before segment.ms a segment rolls, a share that differs per segment, so partitions do not roll together.",
        valid: Valid::Long(0, LONG_MAX),
        broker: Some("log.roll.jitter.ms"),
        default: |c| c.log.segment_jitter_ms.to_string(),
    },
    TopicConfig {
        name: SEGMENT_MS,
        doc: "The age at which the active segment rolls.",
        valid: Valid::Long(1, LONG_MAX),
        broker: Some("log.roll.ms"),
        default: |c| c.log.segment_ms.to_string(),
    },
    TopicConfig {
        name: UNCLEAN_LEADER_ELECTION_ENABLE,
        doc: "Whether a replica out of the ISR may lead when no in-sync one is live, losing what it lacks.",
        valid: Valid::Boolean,
        broker: Some("unclean.leader.election.enable"),
        default: |_| "false".into(),
    },
];

/// The topic config named `name`, if Kafka has one.
pub fn get(name: &str) -> Option<&'static TopicConfig> {
    TOPIC_CONFIGS.iter().find(|c| c.name == name)
}

/// Whether `name` is a list config (Kafka's ConfigDef type LIST): the only
/// ones IncrementalAlterConfigs may APPEND to or SUBTRACT from.
pub fn is_list(name: &str) -> bool {
    get(name).is_some_and(|c| c.valid.kind() == Type::List)
}

/// (broker config, the topic config it is the default of), for every topic
/// config a broker config defaults.
pub fn broker_synonyms() -> impl Iterator<Item = (&'static str, &'static str)> {
    TOPIC_CONFIGS
        .iter()
        .filter_map(|c| Some((c.broker?, c.name)))
}

impl Valid {
    /// The ConfigDef type of these values.
    pub fn kind(self) -> Type {
        match self {
            Valid::Int(..) | Valid::Level(_) => Type::Int,
            Valid::Long(..) => Type::Long,
            Valid::Ratio => Type::Double,
            Valid::Boolean | Valid::Off(_) => Type::Boolean,
            Valid::OneOf(_) => Type::String,
            Valid::CleanupPolicy | Valid::Replicas => Type::List,
        }
    }

    /// Whether `value` is one of these values; the reason if not.
    pub fn check(self, value: &str) -> Result<(), &'static str> {
        match self {
            Valid::Int(min, max) | Valid::Long(min, max) => match value.trim().parse::<i64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(()),
                Ok(_) => Err("out of range"),
                Err(_) => Err("not an integer"),
            },
            Valid::Ratio => match value.trim().parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
                Ok(_) => Err("out of range: expected a number from 0 to 1"),
                Err(_) => Err("not a number"),
            },
            Valid::Boolean => parse_bool(value)
                .map(|_| ())
                .ok_or("expected true or false"),
            Valid::Off(refusal) => match parse_bool(value) {
                Some(false) => Ok(()),
                Some(true) => Err(refusal),
                None => Err("expected true or false"),
            },
            Valid::OneOf(values) => {
                if values.contains(&value) {
                    Ok(())
                } else {
                    Err("not one of the values the config takes")
                }
            }
            // Kafka documents the empty list (since 4.2, KAFKA-19112) as no
            // cleanup at all: neither retention nor compaction, which is how
            // `log_config` reads it. SUBTRACT of the last policy leaves it.
            Valid::CleanupPolicy => {
                if list_items(value)
                    .iter()
                    .all(|p| matches!(*p, "delete" | "compact"))
                {
                    Ok(())
                } else {
                    Err("expected a list of delete and compact")
                }
            }
            Valid::Level(codec) => match value.trim().parse::<i32>() {
                Ok(level) if codec.is_valid_level(level) => Ok(()),
                Ok(_) => Err("level out of range for the codec"),
                Err(_) => Err("not an integer"),
            },
            Valid::Replicas => ThrottledReplicas::parse(value).map(|_| ()),
        }
    }
}

/// A boolean as Kafka's ConfigDef parses one: `true` or `false` in any case.
pub fn parse_bool(value: &str) -> Option<bool> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_int_config_fits_32_bits() {
        for c in TOPIC_CONFIGS {
            if let Valid::Int(min, max) = c.valid {
                assert!(min >= i64::from(i32::MIN) && max <= INT_MAX, "{}", c.name);
            }
        }
    }

    #[test]
    fn names_are_sorted_and_unique() {
        let names: Vec<&str> = TOPIC_CONFIGS.iter().map(|c| c.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn every_default_is_valid() {
        let broker = BrokerConfig::default();
        for c in TOPIC_CONFIGS {
            let default = (c.default)(&broker);
            assert!(c.valid.check(&default).is_ok(), "{} = {default}", c.name);
        }
    }

    #[test]
    fn broker_synonyms_are_unique() {
        let mut brokers: Vec<&str> = broker_synonyms().map(|(b, _)| b).collect();
        let n = brokers.len();
        brokers.sort_unstable();
        brokers.dedup();
        assert_eq!(brokers.len(), n);
    }

    #[test]
    fn values_are_checked_as_kafka_checks_them() {
        let check = |name: &str, value: &str| get(name).unwrap().valid.check(value);
        assert!(check(MIN_CLEANABLE_DIRTY_RATIO, "0.1").is_ok());
        assert!(check(MIN_CLEANABLE_DIRTY_RATIO, "1.5").is_err());
        assert!(check(MIN_CLEANABLE_DIRTY_RATIO, "x").is_err());
        assert!(check(PREALLOCATE, "TRUE").is_ok());
        assert!(check(PREALLOCATE, "yes").is_err());
        assert!(check("remote.storage.enable", "false").is_ok());
        assert_eq!(
            check("remote.storage.enable", "true"),
            Err(TIERED_STORAGE_OFF)
        );
        assert!(check("local.retention.ms", "-2").is_ok());
        assert!(check("local.retention.ms", "-3").is_err());
        assert!(check(MAX_COMPACTION_LAG_MS, "0").is_err());
        assert!(check(SEGMENT_INDEX_BYTES, "3").is_err());
        assert!(check(SEGMENT_INDEX_BYTES, "2147483648").is_err());
        assert!(check(COMPRESSION_TYPE, "brotli").is_err());
        assert!(check(CLEANUP_POLICY, "compact, delete").is_ok());
        assert!(check(CLEANUP_POLICY, "").is_ok());
    }
}

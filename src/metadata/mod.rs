//! Topics and partition ownership.
//!
//! The controller shard (shard 0) alone changes the topic set; it persists a
//! new snapshot with write-and-rename, then sends it to every shard. Each
//! shard reads only its own copy (`Arc<Topics>`), so no lock guards reads.

mod cluster_view;
mod health;

pub use cluster_view::{topics_from_image, ClusterView};
pub use health::{ControllerHealth, Health};

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::broker_configs::BrokerConfigs;
use crate::client_metrics::ClientMetricsConfigs;
use crate::config::{BrokerConfig, ParsedTopicConfigs, TopicConfigs};
use crate::group_configs::GroupConfigs;
use crate::throttle_configs::{self as throttle, ThrottledReplicas};

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_LEN_MAX: usize = 249;
/// Upper bound on partitions per topic, so one request cannot create millions of logs.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
const METADATA_FILE: &str = "topics.toml";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    /// Random per creation, so a recreated topic is told apart from the old
    /// one; hex, because TOML integers stop at 64 bits.
    pub id: String,
    pub partitions: i32,
    #[serde(default)]
    pub configs: TopicConfigs,
    /// `configs` parsed against the broker's defaults, once for this
    /// snapshot of the topic and shared by every shard.
    #[serde(skip)]
    pub parsed: ParsedOnce,
}

/// A cache of [`TopicMeta::parsed`]. A clone starts empty, because a clone
/// is how a config change begins (clone, then edit `configs`); it compares
/// equal whatever it holds.
#[derive(Debug, Default)]
pub struct ParsedOnce(std::sync::OnceLock<ParsedTopicConfigs>);

impl Clone for ParsedOnce {
    fn clone(&self) -> Self {
        ParsedOnce::default()
    }
}

impl PartialEq for ParsedOnce {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl TopicMeta {
    /// The storage and produce settings of this topic: parsed from the
    /// config strings on the first call only (the produce path asks for
    /// them per partition per request).
    /// `dynamic` must be the broker configs of the snapshot this topic is
    /// in: a snapshot that changes them carries fresh copies of its topics.
    pub fn parsed(&self, broker: &BrokerConfig, dynamic: &BrokerConfigs) -> &ParsedTopicConfigs {
        self.parsed.0.get_or_init(|| {
            let mut configs = dynamic.topic_defaults(broker.node_id);
            configs.extend(self.configs.iter().map(|(k, v)| (k.clone(), v.clone())));
            let throttled = |key: &str| {
                let value = configs.get(key).map_or("", String::as_str);
                ThrottledReplicas::parse(value).unwrap_or_default()
            };
            ParsedTopicConfigs {
                log: broker.log_config(&configs),
                produce: broker.produce_policy(&configs, 0),
                min_insync_replicas: broker.topic_min_insync_replicas(&configs),
                leader_throttled: throttled(throttle::LEADER_REPLICAS),
                follower_throttled: throttled(throttle::FOLLOWER_REPLICAS),
            }
        })
    }

    pub fn uuid(&self) -> uuid::Uuid {
        u128::from_str_radix(&self.id, 16).map_or(uuid::Uuid::nil(), uuid::Uuid::from_u128)
    }
}

/// One immutable snapshot of all topics; replaced whole on every change.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Topics {
    /// Bumped on every change; shards ignore snapshots older than theirs.
    pub version: u64,
    #[serde(default)]
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Dynamic broker configs: the topic defaults set at run time.
    #[serde(default, skip_serializing_if = "BrokerConfigs::is_empty")]
    pub broker_configs: BrokerConfigs,
    /// Group configs (KIP-848's GROUP resource), by group.
    #[serde(default, skip_serializing_if = "GroupConfigs::is_empty")]
    pub group_configs: GroupConfigs,
    /// Client metrics subscriptions (KIP-714's CLIENT_METRICS resource),
    /// by name.
    #[serde(default, skip_serializing_if = "ClientMetricsConfigs::is_empty")]
    pub client_metrics: ClientMetricsConfigs,
    /// SASL SCRAM credentials (salted, never a password) by user and
    /// mechanism (issue 15); on a one-node broker only, so far.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub scram_credentials: crate::security::scram::Credentials,
    /// Client quotas by entity (issue 15); in a cluster, the image's.
    #[serde(default, skip_serializing_if = "crate::quota::ClientQuotas::is_empty")]
    pub client_quotas: crate::quota::ClientQuotas,
    /// connection_creation_rate by ip (KIP-612); in a cluster, the image's.
    #[serde(default, skip_serializing_if = "crate::quota::IpQuotas::is_empty")]
    pub ip_quotas: crate::quota::IpQuotas,
    /// ACLs (issue 15), changed by CreateAcls and DeleteAcls.
    #[serde(default, skip_serializing_if = "crate::security::acl::Acls::is_empty")]
    pub acls: crate::security::acl::Acls,
    /// Delegation tokens by id (KIP-48); in a cluster, the image's.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub delegation_tokens: crate::security::delegation_tokens::DelegationTokens,
    /// In a cluster, the metadata image this snapshot came from; `None` on
    /// a one-node broker, which leads every partition it has.
    #[serde(skip)]
    pub cluster: Option<Arc<ClusterView>>,
    /// Topic ids to names, built on first use (Fetch v13+ names topics by
    /// id).
    #[serde(skip)]
    pub by_id: IdIndex,
}

/// A cache of [`Topics::name_of`]. Like [`ParsedOnce`], a clone starts
/// empty, because a clone is how a change to the topics begins.
#[derive(Debug, Default)]
pub struct IdIndex(std::sync::OnceLock<std::collections::HashMap<uuid::Uuid, String>>);

impl Clone for IdIndex {
    fn clone(&self) -> Self {
        IdIndex::default()
    }
}

impl Topics {
    pub fn get(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    /// Whether this node leads the partition (always, without a cluster).
    pub fn leads(&self, name: &str, partition: i32) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|c| c.leads(name, partition))
    }

    /// Whether another broker leads the partition (it exists, and this
    /// node does not lead it): its coordinator, for an internal topic.
    pub fn led_elsewhere(&self, name: &str, partition: i32) -> bool {
        self.has_partition(name, partition) && !self.leads(name, partition)
    }

    /// Whether this node keeps a log of the partition.
    pub fn hosts(&self, name: &str, partition: i32) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|c| c.hosts(name, partition))
    }

    /// The name of the topic with id `id`, if this snapshot has it.
    pub fn name_of(&self, id: uuid::Uuid) -> Option<&str> {
        self.by_id
            .0
            .get_or_init(|| {
                self.topics
                    .values()
                    .map(|t| (t.uuid(), t.name.clone()))
                    .collect()
            })
            .get(&id)
            .map(String::as_str)
    }

    pub fn has_partition(&self, name: &str, partition: i32) -> bool {
        self.get(name)
            .is_some_and(|t| partition >= 0 && partition < t.partitions)
    }

    pub fn load(data_dir: &Path) -> std::io::Result<Topics> {
        let path = data_dir.join(METADATA_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Topics::default()),
            Err(e) => Err(e),
        }
    }

    /// Write-and-rename, fsynced, so a crash leaves the old or the new file, never half.
    pub fn persist(&self, data_dir: &Path) -> std::io::Result<()> {
        let text = toml::to_string(self)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_atomically(&data_dir.join(METADATA_FILE), text.as_bytes())
    }
}

/// Replaces `path` with `bytes` so readers see the old or the new contents.
/// On failure (a full disk) `path` keeps the old ones and the temporary
/// file is removed, giving its space back.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Kafka's rule: 1-249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TOPIC_NAME_LEN_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The shard that owns a partition. Stable for a given shard count, so a
/// restart with the same count puts every partition back on the same core.
pub fn owner_shard(topic: &str, partition: i32, shards: usize) -> usize {
    assert!(shards > 0);
    // One shard (the default on small machines) owns all: no hash of the
    // name for every partition of every request.
    if shards == 1 {
        return 0;
    }
    // FNV-1a: stable across runs and Rust versions, unlike DefaultHasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    ((hash as usize).wrapping_add(partition as usize)) % shards
}

/// Kafka's `Utils.abs(key.hashCode()) % partitions`, with Java's
/// String.hashCode over UTF-16 code units: the partition of an internal
/// topic (`__consumer_offsets`, `__transaction_state`) a group or
/// transactional id lives in, the same as on a Kafka broker.
pub fn java_hash_partition(key: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in key.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    (h & 0x7fff_ffff) % partitions.max(1)
}

/// The directory of a partition's log: `data_dir/<topic>-<partition>`.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// A fresh topic id; uniqueness, not secrecy, is what matters here.
pub fn new_topic_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let hi = h.finish();
    let lo = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{:032x}", (u128::from(hi) << 64) | u128::from(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(valid_topic_name("orders.v1_a-b"));
        assert!(!valid_topic_name(""));
        assert!(!valid_topic_name(".."));
        assert!(!valid_topic_name("a/b"));
        assert!(!valid_topic_name(&"x".repeat(250)));
    }

    #[test]
    fn partitions_spread_over_shards() {
        let owners: std::collections::HashSet<_> =
            (0..16).map(|p| owner_shard("t", p, 2)).collect();
        assert_eq!(owners.len(), 2);
        assert_eq!(owner_shard("t", 3, 2), owner_shard("t", 3, 2));
    }

    #[test]
    fn snapshot_round_trips_through_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut topics = Topics {
            version: 3,
            ..Topics::default()
        };
        topics.topics.insert(
            "a".into(),
            Arc::new(TopicMeta {
                name: "a".into(),
                id: new_topic_id(),
                partitions: 4,
                configs: [("retention.ms".to_string(), "10".to_string())].into(),
                parsed: Default::default(),
            }),
        );
        topics.persist(dir.path()).unwrap();
        let back = Topics::load(dir.path()).unwrap();
        assert_eq!(back.version, 3);
        assert_eq!(
            back.get("a").unwrap().as_ref(),
            topics.get("a").unwrap().as_ref()
        );
    }

    /// Parsed once per TopicMeta; a clone (how a config change starts)
    /// parses its own configs afresh.
    #[test]
    fn parsed_configs_follow_the_configs_of_each_copy() {
        let broker = BrokerConfig::default();
        let none = BrokerConfigs::default();
        let meta = TopicMeta {
            name: "a".into(),
            id: new_topic_id(),
            partitions: 1,
            configs: [("retention.ms".to_string(), "10".to_string())].into(),
            parsed: Default::default(),
        };
        assert_eq!(meta.parsed(&broker, &none).log.retention_ms, 10);
        let mut changed = meta.clone();
        changed
            .configs
            .insert("retention.ms".to_string(), "20".to_string());
        assert_eq!(changed.parsed(&broker, &none).log.retention_ms, 20);
        assert_eq!(meta.parsed(&broker, &none).log.retention_ms, 10);
    }
}

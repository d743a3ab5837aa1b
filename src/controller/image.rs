//! The cluster image: the state the metadata log describes, applied record
//! by record (`records::apply`). Brokers and shards read it only as an
//! `Arc<ClusterImage>` snapshot; it is never changed in place once shared.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A config set: name -> value, as Kafka's DescribeConfigs lists them.
pub type Configs = BTreeMap<String, String>;

/// Everything the cluster agrees on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterImage {
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// By name, the key every Kafka API but a few uses.
    pub topics: BTreeMap<String, TopicImage>,
    /// Topic id -> name, so ids stay unique and id-addressed APIs resolve.
    pub topic_ids: BTreeMap<Uuid, String>,
    /// Dynamic broker configs; the `None` key is the cluster-wide default
    /// (Kafka's empty broker resource name).
    pub broker_configs: BTreeMap<Option<i32>, Configs>,
    /// The first producer id of the next block handed out.
    pub next_producer_id: i64,
    /// SASL SCRAM credentials by user and mechanism (issue 15): salted,
    /// never a password. Last, so `BeforeCredentials` reads older snapshots.
    #[serde(default)]
    pub scram_credentials: crate::security::scram::Credentials,
    /// Client quotas by entity (issue 15), as Kafka's ClientQuotaRecords
    /// leave them.
    #[serde(default)]
    pub client_quotas: crate::quota::ClientQuotas,
    /// ACLs (issue 15). With the quotas, last, so `BeforeSecurity` reads
    /// older snapshots.
    #[serde(default)]
    pub acls: crate::security::acl::Acls,
    /// connection_creation_rate by ip (KIP-612). Last, so `BeforeIpQuotas`
    /// reads older snapshots.
    #[serde(default)]
    pub ip_quotas: crate::quota::IpQuotas,
    /// Partition reassignments under way (KIP-455), by topic and
    /// partition. Last, so `BeforeReassignments` reads older snapshots.
    #[serde(default)]
    pub reassignments: BTreeMap<String, BTreeMap<i32, Reassignment>>,
    /// Each voter's metadata log directory id, once the active controller
    /// wrote it (`directories`). Last, so `BeforeVoterDirectories` reads
    /// older snapshots.
    #[serde(default)]
    pub voter_directories: BTreeMap<i32, Uuid>,
    /// Partitions, by topic, whose last in-sync replica lost its log
    /// (`MetadataRecord::LastInSyncLost`): only a replica eligible to lead
    /// (`isr_departures`) may lead them cleanly, and an unclean election
    /// passes over that one. Last, so `BeforeLostIsrs` reads older
    /// snapshots.
    #[serde(default)]
    pub lost_isrs: BTreeMap<String, std::collections::BTreeSet<i32>>,
    /// By topic and partition, the replicas out of the ISR in the order
    /// they left it (the last left last): one that left later holds every
    /// record acknowledged before it left, so an unclean election prefers
    /// it (Kafka's unclean recovery prefers the longest log), and one after
    /// whose leaving the ISR stayed below `min.insync.replicas` holds every
    /// acks=all record and may lead cleanly (Kafka's eligible leader
    /// replicas; both KIP-966). A replica whose log was lost is not listed.
    /// With `lost_isrs`, last, so `BeforeLostIsrs` reads older snapshots.
    #[serde(default)]
    pub isr_departures: BTreeMap<String, BTreeMap<i32, Vec<Departure>>>,
    /// Group configs by group (KIP-848's GROUP resource). Last, so
    /// `BeforeGroupConfigs` reads older snapshots.
    #[serde(default)]
    pub group_configs: crate::group_configs::GroupConfigs,
    /// Delegation tokens by id (Kafka's DelegationTokenRecords). Last, so
    /// `BeforeDelegationTokens` reads older snapshots.
    #[serde(default)]
    pub delegation_tokens: crate::security::delegation_tokens::DelegationTokens,
    /// Client metrics subscriptions by name (KIP-714's CLIENT_METRICS
    /// resource). Last, so `BeforeClientMetrics` reads older snapshots.
    #[serde(default)]
    pub client_metrics: crate::client_metrics::ClientMetricsConfigs,
}

/// A replica that left a partition's ISR (`ClusterImage::isr_departures`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Departure {
    pub broker: i32,
    /// The largest the ISR has been since it left: while that is below
    /// `min.insync.replicas`, no acks=all write was acknowledged without
    /// this replica.
    pub isr_max_since: u32,
}

/// A partition moving to new replicas (Kafka's adding and removing
/// replicas). Meanwhile its replicas are the target's followed by the ones
/// leaving, so the target is its replicas less `removing`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// In the target, not in the replicas it started from.
    pub adding: Vec<i32>,
    /// In the replicas it started from, not in the target.
    pub removing: Vec<i32>,
}

/// Decodes an image from a snapshot, whichever layout wrote it.
///
/// postcard is not self-describing: a struct is its fields back to back,
/// and a missing trailing field is an error, not a default. So each older
/// layout is the one before it followed by the fields that came next, and
/// the newest layout is tried first.
pub fn decode(data: &[u8]) -> Result<ClusterImage, postcard::Error> {
    postcard::from_bytes(data)
        .or_else(|e| layout::<BeforeClientMetrics>(data, e))
        .or_else(|e| layout::<BeforeDelegationTokens>(data, e))
        .or_else(|e| layout::<BeforeGroupConfigs>(data, e))
        .or_else(|e| layout::<BeforeLostIsrs>(data, e))
        .or_else(|e| layout::<BeforeVoterDirectories>(data, e))
        .or_else(|e| layout::<BeforeReassignments>(data, e))
        .or_else(|e| layout::<BeforeIpQuotas>(data, e))
        .or_else(|e| layout::<BeforeSecurity>(data, e))
        .or_else(|e| layout::<BeforeCredentials>(data, e))
}

/// `data` read as the older layout `L`; else the newest layout's error.
fn layout<L>(data: &[u8], newest: postcard::Error) -> Result<ClusterImage, postcard::Error>
where
    L: for<'de> Deserialize<'de> + Into<ClusterImage>,
{
    postcard::from_bytes::<L>(data)
        .map(Into::into)
        .map_err(|_| newest)
}

/// The image before SCRAM credentials.
#[derive(Deserialize)]
struct BeforeCredentials {
    brokers: BTreeMap<i32, BrokerRegistration>,
    topics: BTreeMap<String, TopicImage>,
    topic_ids: BTreeMap<Uuid, String>,
    broker_configs: BTreeMap<Option<i32>, Configs>,
    next_producer_id: i64,
}

/// The image before client quotas and ACLs (they came in together).
#[derive(Deserialize)]
struct BeforeSecurity(BeforeCredentials, crate::security::scram::Credentials);

/// The image before ip quotas.
#[derive(Deserialize)]
struct BeforeIpQuotas(
    BeforeSecurity,
    crate::quota::ClientQuotas,
    crate::security::acl::Acls,
);

/// The image before reassignments.
#[derive(Deserialize)]
struct BeforeReassignments(BeforeIpQuotas, crate::quota::IpQuotas);

/// The image before client metrics subscriptions.
#[derive(Deserialize)]
struct BeforeClientMetrics(
    BeforeDelegationTokens,
    crate::security::delegation_tokens::DelegationTokens,
);

impl From<BeforeClientMetrics> for ClusterImage {
    fn from(BeforeClientMetrics(older, delegation_tokens): BeforeClientMetrics) -> ClusterImage {
        ClusterImage {
            delegation_tokens,
            ..older.into()
        }
    }
}

/// The image before delegation tokens.
#[derive(Deserialize)]
struct BeforeDelegationTokens(BeforeGroupConfigs, crate::group_configs::GroupConfigs);

impl From<BeforeDelegationTokens> for ClusterImage {
    fn from(BeforeDelegationTokens(older, group_configs): BeforeDelegationTokens) -> ClusterImage {
        ClusterImage {
            group_configs,
            ..older.into()
        }
    }
}

/// The image before group configs.
#[derive(Deserialize)]
struct BeforeGroupConfigs(
    BeforeLostIsrs,
    BTreeMap<String, std::collections::BTreeSet<i32>>,
    BTreeMap<String, BTreeMap<i32, Vec<Departure>>>,
);

impl From<BeforeGroupConfigs> for ClusterImage {
    fn from(
        BeforeGroupConfigs(older, lost_isrs, isr_departures): BeforeGroupConfigs,
    ) -> ClusterImage {
        ClusterImage {
            lost_isrs,
            isr_departures,
            ..older.into()
        }
    }
}

/// The image before lost ISRs and ISR departures (they came in together).
#[derive(Deserialize)]
struct BeforeLostIsrs(BeforeVoterDirectories, BTreeMap<i32, Uuid>);

impl From<BeforeLostIsrs> for ClusterImage {
    fn from(BeforeLostIsrs(older, voter_directories): BeforeLostIsrs) -> ClusterImage {
        ClusterImage {
            voter_directories,
            ..older.into()
        }
    }
}

/// The image before voters' directory ids.
#[derive(Deserialize)]
struct BeforeVoterDirectories(
    BeforeReassignments,
    BTreeMap<String, BTreeMap<i32, Reassignment>>,
);

impl From<BeforeCredentials> for ClusterImage {
    fn from(old: BeforeCredentials) -> ClusterImage {
        ClusterImage {
            brokers: old.brokers,
            topics: old.topics,
            topic_ids: old.topic_ids,
            broker_configs: old.broker_configs,
            next_producer_id: old.next_producer_id,
            ..ClusterImage::default()
        }
    }
}

impl From<BeforeSecurity> for ClusterImage {
    fn from(BeforeSecurity(older, scram_credentials): BeforeSecurity) -> ClusterImage {
        ClusterImage {
            scram_credentials,
            ..older.into()
        }
    }
}

impl From<BeforeIpQuotas> for ClusterImage {
    fn from(BeforeIpQuotas(older, client_quotas, acls): BeforeIpQuotas) -> ClusterImage {
        ClusterImage {
            client_quotas,
            acls,
            ..older.into()
        }
    }
}

impl From<BeforeVoterDirectories> for ClusterImage {
    fn from(BeforeVoterDirectories(older, reassignments): BeforeVoterDirectories) -> ClusterImage {
        ClusterImage {
            reassignments,
            ..older.into()
        }
    }
}

impl From<BeforeReassignments> for ClusterImage {
    fn from(BeforeReassignments(older, ip_quotas): BeforeReassignments) -> ClusterImage {
        ClusterImage {
            ip_quotas,
            ..older.into()
        }
    }
}

/// A broker as it registered (Kafka's BrokerRegistration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    /// New on every process start, so a restarted broker is told apart
    /// from a stale one and must catch up again before it is unfenced.
    pub incarnation: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// A fenced broker leads nothing and is left out of Metadata.
    pub fenced: bool,
}

impl BrokerRegistration {
    /// The endpoint of the listener named `listener` (a client is told the
    /// brokers' endpoints of the listener it came in on; issue 15).
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == listener)
    }
}

/// A listener clients reach the broker on (`host:port` as advertised).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    pub id: Uuid,
    pub name: String,
    pub configs: Configs,
    /// Index = partition number.
    pub partitions: Vec<PartitionState>,
}

/// One partition's replicas and leadership (Kafka's PartitionRegistration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// In preference order: the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// `NO_LEADER` when offline.
    pub leader: i32,
    /// Bumped on every leader change; replicas and clients fence on it.
    pub leader_epoch: i32,
    /// Bumped on every change of this partition, so a proposal made from a
    /// stale view (AlterPartition) is refused.
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// Kafka's leader id of an offline partition.
pub const NO_LEADER: i32 = -1;

/// Topic config that allows an out-of-sync replica to lead (also a broker
/// config, cluster-wide default or per broker).
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

impl ClusterImage {
    pub fn broker_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Unfenced brokers, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// The reassignment of `topic`'s `partition` under way, if any.
    pub fn reassignment(&self, topic: &str, partition: i32) -> Option<&Reassignment> {
        self.reassignments.get(topic)?.get(&partition)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(index)
    }

    /// Whether `topic` may elect an out-of-sync leader: its own config,
    /// else the cluster default, as Kafka resolves it.
    pub fn unclean_election_allowed(&self, topic: &str) -> bool {
        let topic_value = self
            .topics
            .get(topic)
            .and_then(|t| t.configs.get(UNCLEAN_LEADER_ELECTION));
        let default = self
            .broker_configs
            .get(&None)
            .and_then(|c| c.get(UNCLEAN_LEADER_ELECTION));
        topic_value
            .or(default)
            .and_then(|v| crate::topic_configs::parse_bool(v))
            .unwrap_or(false)
    }

    /// What elections of `topic`'s `partition` go by besides its state;
    /// `min_insync`: the topic's (`min_insync`, looked up once per topic).
    pub fn past(&self, topic: &str, partition: i32, min_insync: u32) -> super::election::Past<'_> {
        super::election::Past {
            isr_lost: self.isr_lost(topic, partition),
            departures: self
                .isr_departures
                .get(topic)
                .and_then(|t| t.get(&partition))
                .map_or(&[], Vec::as_slice),
            min_insync,
        }
    }

    /// `topic`'s `min.insync.replicas`: its own, else the cluster's
    /// dynamic default, else `default`; at least 1.
    pub fn min_insync(&self, topic: &str, default: i32) -> u32 {
        const KEY: &str = "min.insync.replicas";
        let topic_value = self.topics.get(topic).and_then(|t| t.configs.get(KEY));
        let cluster_value = self.broker_configs.get(&None).and_then(|c| c.get(KEY));
        let value = topic_value
            .or(cluster_value)
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(default);
        u32::try_from(value.max(1)).unwrap_or(1)
    }

    /// Whether the last in-sync replica of `topic`'s `partition` lost its
    /// log (`lost_isrs`) while another replica that may hold more is
    /// still registered. Once an operator has unregistered every other
    /// (gone for good), the emptied one may lead again.
    pub fn isr_lost(&self, topic: &str, partition: i32) -> bool {
        let marked = self
            .lost_isrs
            .get(topic)
            .is_some_and(|l| l.contains(&partition));
        marked
            && self.partition(topic, partition).is_some_and(|state| {
                state
                    .replicas
                    .iter()
                    .any(|r| !state.isr.contains(r) && self.brokers.contains_key(r))
            })
    }
}

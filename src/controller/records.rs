//! Metadata records: each changes one thing in the cluster image, and
//! `apply` is the one function that changes it. Applying is deterministic
//! (no clock, no randomness, no I/O), so every node that applies the same
//! log holds the same image; a record that does not fit the image is
//! refused the same way everywhere and changes nothing.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::image::{
    BrokerRegistration, ClusterImage, Configs, Departure, Endpoint, PartitionState, TopicImage,
    NO_LEADER,
};
use super::reassignment;
use crate::metadata::{valid_topic_name, PARTITIONS_PER_TOPIC_MAX};

/// The most producer ids one AllocateProducerIds hands out (Kafka's blocks
/// are 1000); a bound so one bad request cannot drain the id space.
pub const PRODUCER_ID_BLOCK_MAX: i32 = 1 << 20;
/// Upper bound on a replica set, far above any sane replication factor.
pub const REPLICAS_MAX: usize = 64;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)starts; a new incarnation is fenced until it catches up.
    RegisterBroker {
        id: i32,
        incarnation: Uuid,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    FenceBroker {
        id: i32,
    },
    /// Only for the incarnation that asked, so a late heartbeat from a dead
    /// process cannot unfence its successor.
    UnfenceBroker {
        id: i32,
        incarnation: Uuid,
    },
    /// `assignments[p]` are partition p's replicas; the first live one leads.
    CreateTopic {
        name: String,
        id: Uuid,
        configs: Configs,
        assignments: Vec<Vec<i32>>,
    },
    DeleteTopic {
        name: String,
    },
    /// Appends partitions to an existing topic.
    CreatePartitions {
        topic: String,
        assignments: Vec<Vec<i32>>,
    },
    AlterConfigs {
        resource: ConfigResource,
        changes: Vec<ConfigChange>,
    },
    /// A new leader and ISR (election, AlterPartition). `partition_epoch` is
    /// the epoch the proposer saw: refused unless it is still the current
    /// one. `leader_epoch` is the resulting epoch: higher when the leader
    /// changes, never lower.
    ChangePartition {
        topic: String,
        partition: i32,
        leader: i32,
        isr: Vec<i32>,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    AllocateProducerIds {
        broker: i32,
        count: i32,
    },
    /// A user's SCRAM credential for one mechanism set (`Some`) or deleted
    /// (`None`) (issue 15).
    ScramCredential {
        user: String,
        mechanism: crate::security::scram::Mechanism,
        credential: Option<crate::security::scram::Credential>,
    },
    /// One quota key of one client entity set (`Some`) or removed (`None`)
    /// (Kafka's ClientQuotaRecord; issue 15).
    ClientQuota {
        entity: crate::quota::QuotaEntity,
        key: crate::quota::QuotaKey,
        value: Option<f64>,
    },
    /// An ACL added (Kafka's AccessControlEntryRecord), issue 15.
    AccessControlEntry {
        acl: crate::security::acl::AclBinding,
    },
    /// An ACL removed (Kafka's RemoveAccessControlEntryRecord).
    RemoveAccessControlEntry {
        acl: crate::security::acl::AclBinding,
    },
    /// An ip's connection_creation_rate set (`Some`) or removed (`None`)
    /// (Kafka's ClientQuotaRecord for an ip entity, KIP-612). Last, so
    /// older log entries keep their variant numbers.
    IpQuota {
        ip: crate::quota::EntityName,
        value: Option<f64>,
    },
    /// Moves a partition to `target` replicas (KIP-455), or with `None`
    /// cancels the reassignment under way. Last, so older log entries keep
    /// their variant numbers.
    ReassignPartition {
        topic: String,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    /// A fenced broker taken out of the cluster for good (Kafka's
    /// UnregisterBroker): it is no longer registered, and the replicas it
    /// held are offline ones. Last, so older log entries keep their
    /// variant numbers.
    UnregisterBroker {
        id: i32,
    },
    /// Broker `id`, registered as process `incarnation`, came back with
    /// logs that may be missing records it acknowledged (a new data dir: a
    /// replaced disk; or an unclean stop across a machine restart:
    /// `cluster::log_state`): it leaves every ISR it shares with another
    /// replica, and a partition it led goes to a live in-sync replica
    /// (offline if none is), as Kafka's controller takes an uncleanly
    /// restarted broker out of its ISRs (KIP-966). It joins each ISR again
    /// once it has caught up. Proposed by the broker before its first
    /// heartbeat, so before it is unfenced and serves. Last, so older log
    /// entries keep their variant numbers.
    LogsLost {
        id: i32,
        incarnation: Uuid,
    },
    /// Voter `node`'s metadata log is directory `directory_id` (KIP-853;
    /// `directories`): its vote is asked as that directory. Last, so older
    /// log entries keep their variant numbers.
    VoterDirectory {
        node: i32,
        directory_id: Uuid,
    },
    /// Broker `id`, registered as process `incarnation`, came back with
    /// logs that may be missing records it acknowledged (as `LogsLost`),
    /// and it is the last in-sync replica of partitions that have others:
    /// those go offline with their ISR marked lost
    /// (`ClusterImage::lost_isrs`), so that it cannot lead them again
    /// cleanly on an empty log and make the other replicas truncate what
    /// they hold. Only a replica eligible to lead (`election`) or an
    /// unclean election of another replica brings one back, as Kafka
    /// leaves such a partition leaderless until then (KIP-966). Level 2;
    /// last, so older log entries keep their variant numbers.
    LastInSyncLost {
        id: i32,
        incarnation: Uuid,
    },
    /// A delegation token made or changed (`Some`: Kafka's
    /// DelegationTokenRecord) or removed (`None`: its
    /// RemoveDelegationTokenRecord). Level 4; last, so older log entries
    /// keep their variant numbers.
    DelegationToken {
        id: String,
        token: Option<crate::security::delegation_tokens::DelegationToken>,
    },
}

/// The newest level of record kinds this version reads: 1 brought
/// `LogsLost` and `VoterDirectory`, 2 `LastInSyncLost`, 3 group configs
/// (`ConfigResource::Group`), 4 `DelegationToken`, 5 client metrics
/// subscriptions (`ConfigResource::ClientMetrics`). Peers say theirs in
/// their hello.
pub const RECORD_LEVEL: u16 = 5;

impl MetadataRecord {
    /// The name and level of a record kind newer nodes only read (`None`:
    /// every version reads it); proposed only once every member reads that
    /// level.
    pub fn newer_kind(&self) -> Option<(&'static str, u16)> {
        match self {
            MetadataRecord::LogsLost { .. } => Some(("LogsLost", 1)),
            MetadataRecord::VoterDirectory { .. } => Some(("VoterDirectory", 1)),
            MetadataRecord::LastInSyncLost { .. } => Some(("LastInSyncLost", 2)),
            MetadataRecord::AlterConfigs {
                resource: ConfigResource::Group(_),
                ..
            } => Some(("group AlterConfigs", 3)),
            MetadataRecord::DelegationToken { .. } => Some(("DelegationToken", 4)),
            MetadataRecord::AlterConfigs {
                resource: ConfigResource::ClientMetrics(_),
                ..
            } => Some(("client metrics AlterConfigs", 5)),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
    /// Kafka's broker resource with an empty name: the default for all.
    ClusterDefault,
    /// A group's configs (KIP-848). Level 3, last, so older log entries
    /// keep their variant numbers.
    Group(String),
    /// A client metrics subscription's configs (KIP-714). Level 5, last,
    /// so older log entries keep their variant numbers.
    ClientMetrics(String),
}

/// Sets a config, or with `value: None` removes it (back to its default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    pub name: String,
    pub value: Option<String>,
}

/// What applying a record produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordOutcome {
    Applied,
    /// The image already said so (a retried registration, a fenced broker
    /// fenced again): nothing changed.
    Unchanged,
    /// `[first, first + count)` belongs to the asking broker.
    ProducerIds {
        first: i64,
        count: i32,
    },
}

/// Why a record was refused. Carried in the applied result, so it is the
/// same on every node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RecordError {
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    #[error("broker {0} registered with another incarnation")]
    StaleIncarnation(i32),
    #[error("invalid broker id {0}")]
    InvalidBrokerId(i32),
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("topic id {0} is already in use")]
    TopicIdInUse(Uuid),
    #[error("invalid topic name {0:?}")]
    InvalidTopicName(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("unknown partition {topic}-{partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("invalid replica assignment: {0}")]
    InvalidAssignment(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("no replica of a new partition is on an unfenced broker")]
    NoLiveReplica,
    #[error("stale partition epoch {proposed}, current {current}")]
    StalePartitionEpoch { current: i32, proposed: i32 },
    #[error("invalid leader epoch {proposed}, current {current}")]
    InvalidLeaderEpoch { current: i32, proposed: i32 },
    #[error("invalid partition change: {0}")]
    InvalidPartitionChange(String),
    #[error("invalid producer id count {0}")]
    InvalidProducerIdCount(i32),
    #[error("producer ids exhausted")]
    ProducerIdsExhausted,
    #[error("unacceptable SCRAM credential: {0}")]
    UnacceptableCredential(String),
    #[error("invalid client quota: {0}")]
    InvalidQuota(#[from] crate::quota::QuotaError),
    #[error("at most {} ACLs", crate::security::acl::ACLS_MAX)]
    TooManyAcls,
    #[error(
        "at most {} delegation tokens",
        crate::security::delegation_tokens::TOKENS_MAX
    )]
    TooManyTokens,
    #[error("no reassignment of {topic}-{partition} is in progress")]
    NoReassignmentInProgress { topic: String, partition: i32 },
    #[error("broker {0} is live: stop it before unregistering it")]
    BrokerLive(i32),
    #[error("a node of the quorum runs an older version, which cannot read a {0} record: upgrade every node first")]
    OlderNodes(String),
}

impl RecordError {
    /// The Kafka error code a broker answers with.
    pub fn error_code(&self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            RecordError::UnknownBroker(_) => E::BrokerIdNotRegistered,
            RecordError::StaleIncarnation(_) => E::StaleBrokerEpoch,
            RecordError::InvalidBrokerId(_) => E::InvalidRequest,
            RecordError::TopicExists(_) | RecordError::TopicIdInUse(_) => E::TopicAlreadyExists,
            RecordError::InvalidTopicName(_) => E::InvalidTopicException,
            RecordError::UnknownTopic(_) | RecordError::UnknownPartition { .. } => {
                E::UnknownTopicOrPartition
            }
            RecordError::InvalidAssignment(_) => E::InvalidReplicaAssignment,
            RecordError::InvalidPartitions(_) => E::InvalidPartitions,
            RecordError::NoLiveReplica => E::InvalidReplicationFactor,
            RecordError::StalePartitionEpoch { .. } => E::InvalidUpdateVersion,
            RecordError::InvalidLeaderEpoch { .. } => E::FencedLeaderEpoch,
            RecordError::InvalidPartitionChange(_) | RecordError::InvalidProducerIdCount(_) => {
                E::InvalidRequest
            }
            RecordError::ProducerIdsExhausted => E::UnknownServerError,
            RecordError::UnacceptableCredential(_) => E::UnacceptableCredential,
            RecordError::InvalidQuota(_) => E::InvalidRequest,
            RecordError::TooManyAcls | RecordError::TooManyTokens => E::PolicyViolation,
            RecordError::NoReassignmentInProgress { .. } => E::NoReassignmentInProgress,
            RecordError::BrokerLive(_) => E::InvalidRequest,
            RecordError::OlderNodes(_) => E::UnsupportedVersion,
        }
        .code()
    }
}

/// Applies one record to the image, or refuses it and changes nothing.
pub fn apply(
    image: &mut ClusterImage,
    record: &MetadataRecord,
) -> Result<RecordOutcome, RecordError> {
    use MetadataRecord as R;
    match record {
        R::RegisterBroker {
            id,
            incarnation,
            endpoints,
            rack,
        } => register_broker(image, *id, *incarnation, endpoints, rack),
        R::FenceBroker { id } => set_fenced(image, *id, None, true),
        R::UnfenceBroker { id, incarnation } => set_fenced(image, *id, Some(*incarnation), false),
        R::CreateTopic {
            name,
            id,
            configs,
            assignments,
        } => create_topic(image, name, *id, configs, assignments),
        R::DeleteTopic { name } => {
            let topic = image
                .topics
                .remove(name)
                .ok_or_else(|| RecordError::UnknownTopic(name.clone()))?;
            image.topic_ids.remove(&topic.id);
            image.reassignments.remove(name);
            image.lost_isrs.remove(name);
            image.isr_departures.remove(name);
            Ok(RecordOutcome::Applied)
        }
        R::CreatePartitions { topic, assignments } => create_partitions(image, topic, assignments),
        R::AlterConfigs { resource, changes } => alter_configs(image, resource, changes),
        R::ScramCredential {
            user,
            mechanism,
            credential,
        } => scram_credential(image, user, *mechanism, credential.as_ref()),
        R::ClientQuota { entity, key, value } => client_quota(image, entity, *key, *value),
        R::DelegationToken { id, token } => delegation_token(image, id, token.as_ref()),
        R::IpQuota { ip, value } => ip_quota(image, ip, *value),
        R::AccessControlEntry { acl } => {
            if image.acls.contains(acl) {
                return Ok(RecordOutcome::Unchanged);
            }
            if image.acls.len() >= crate::security::acl::ACLS_MAX {
                return Err(RecordError::TooManyAcls);
            }
            image.acls.insert(acl.clone());
            Ok(RecordOutcome::Applied)
        }
        R::RemoveAccessControlEntry { acl } => Ok(if image.acls.remove(acl) {
            RecordOutcome::Applied
        } else {
            RecordOutcome::Unchanged
        }),
        R::ChangePartition {
            topic,
            partition,
            leader,
            isr,
            leader_epoch,
            partition_epoch,
        } => {
            let change = PartitionChange {
                leader: *leader,
                isr,
                leader_epoch: *leader_epoch,
                partition_epoch: *partition_epoch,
            };
            change_partition(image, topic, *partition, change)
        }
        R::AllocateProducerIds { broker, count } => allocate_producer_ids(image, *broker, *count),
        R::ReassignPartition {
            topic,
            partition,
            target: Some(target),
        } => reassignment::reassign(image, topic, *partition, target),
        R::ReassignPartition {
            topic,
            partition,
            target: None,
        } => reassignment::cancel(image, topic, *partition),
        R::UnregisterBroker { id } => unregister_broker(image, *id),
        R::LogsLost { id, incarnation } => logs_lost(image, *id, *incarnation),
        R::LastInSyncLost { id, incarnation } => last_in_sync_lost(image, *id, *incarnation),
        R::VoterDirectory { node, directory_id } => {
            Ok(voter_directory(image, *node, *directory_id))
        }
    }
}

fn register_broker(
    image: &mut ClusterImage,
    id: i32,
    incarnation: Uuid,
    endpoints: &[Endpoint],
    rack: &Option<String>,
) -> Result<RecordOutcome, RecordError> {
    if id < 0 {
        return Err(RecordError::InvalidBrokerId(id));
    }
    // A retried registration of the same process keeps its fencing state;
    // a new process starts fenced (Kafka's rule).
    let fenced = match image.brokers.get(&id) {
        Some(b) if b.incarnation == incarnation => {
            if b.endpoints == endpoints && &b.rack == rack {
                return Ok(RecordOutcome::Unchanged);
            }
            b.fenced
        }
        _ => true,
    };
    let registration = BrokerRegistration {
        id,
        incarnation,
        endpoints: endpoints.to_vec(),
        rack: rack.clone(),
        fenced,
    };
    image.brokers.insert(id, registration);
    Ok(RecordOutcome::Applied)
}

fn voter_directory(image: &mut ClusterImage, node: i32, directory_id: Uuid) -> RecordOutcome {
    match image.voter_directories.insert(node, directory_id) {
        Some(old) if old == directory_id => RecordOutcome::Unchanged,
        _ => RecordOutcome::Applied,
    }
}

/// Refuses a record about broker `id` from another incarnation than its
/// registered one.
fn check_incarnation(image: &ClusterImage, id: i32, incarnation: Uuid) -> Result<(), RecordError> {
    let broker = image
        .brokers
        .get(&id)
        .ok_or(RecordError::UnknownBroker(id))?;
    if broker.incarnation != incarnation {
        return Err(RecordError::StaleIncarnation(id));
    }
    Ok(())
}

fn logs_lost(
    image: &mut ClusterImage,
    id: i32,
    incarnation: Uuid,
) -> Result<RecordOutcome, RecordError> {
    check_incarnation(image, id, incarnation)?;
    let live: BTreeSet<i32> = image
        .live_brokers()
        .map(|b| b.id)
        .filter(|&b| b != id)
        .collect();
    let mut outcome = RecordOutcome::Unchanged;
    let partitions = image.topics.values_mut().flat_map(|t| &mut t.partitions);
    // Where it is the last in-sync replica, no other holds more: it stays.
    for state in partitions.filter(|p| p.isr.contains(&id) && p.isr.len() > 1) {
        state.isr.retain(|&b| b != id);
        if state.leader == id {
            state.leader = state
                .replicas
                .iter()
                .copied()
                .find(|b| state.isr.contains(b) && live.contains(b))
                .unwrap_or(NO_LEADER);
            state.leader_epoch += 1;
        }
        state.partition_epoch += 1;
        debug_assert!(!state.isr.is_empty() && !state.isr.contains(&id));
        outcome = RecordOutcome::Applied;
    }
    // Out of an ISR, it no longer holds what it held when it left.
    if forget_departed(image, id) {
        outcome = RecordOutcome::Applied;
    }
    Ok(outcome)
}

/// Takes broker `id` out of every partition's ISR departures; whether it
/// was in any.
fn forget_departed(image: &mut ClusterImage, id: i32) -> bool {
    let mut found = false;
    for by_partition in image.isr_departures.values_mut() {
        for departures in by_partition.values_mut() {
            let before = departures.len();
            departures.retain(|d| d.broker != id);
            found |= departures.len() != before;
        }
        // No empty entries, so equal departures mean equal images.
        by_partition.retain(|_, d| !d.is_empty());
    }
    image.isr_departures.retain(|_, p| !p.is_empty());
    found
}

fn last_in_sync_lost(
    image: &mut ClusterImage,
    id: i32,
    incarnation: Uuid,
) -> Result<RecordOutcome, RecordError> {
    check_incarnation(image, id, incarnation)?;
    let mut outcome = RecordOutcome::Unchanged;
    for (name, topic) in &mut image.topics {
        for (partition, state) in topic.partitions.iter_mut().enumerate() {
            if state.isr != [id] || state.replicas.len() < 2 {
                continue;
            }
            let partition = i32::try_from(partition).expect("partition counts fit i32");
            let lost = image.lost_isrs.entry(name.clone()).or_default();
            if !lost.insert(partition) {
                continue;
            }
            if state.leader != NO_LEADER {
                state.leader = NO_LEADER;
                state.leader_epoch += 1;
            }
            state.partition_epoch += 1;
            outcome = RecordOutcome::Applied;
        }
    }
    Ok(outcome)
}

/// Only a fenced broker goes: a live one would keep serving replicas the
/// image no longer knows it for.
fn unregister_broker(image: &mut ClusterImage, id: i32) -> Result<RecordOutcome, RecordError> {
    let broker = image
        .brokers
        .get(&id)
        .ok_or(RecordError::UnknownBroker(id))?;
    if !broker.fenced {
        return Err(RecordError::BrokerLive(id));
    }
    image.brokers.remove(&id);
    Ok(RecordOutcome::Applied)
}

fn set_fenced(
    image: &mut ClusterImage,
    id: i32,
    incarnation: Option<Uuid>,
    fenced: bool,
) -> Result<RecordOutcome, RecordError> {
    let broker = image
        .brokers
        .get_mut(&id)
        .ok_or(RecordError::UnknownBroker(id))?;
    if incarnation.is_some_and(|i| i != broker.incarnation) {
        return Err(RecordError::StaleIncarnation(id));
    }
    if broker.fenced == fenced {
        return Ok(RecordOutcome::Unchanged);
    }
    broker.fenced = fenced;
    Ok(RecordOutcome::Applied)
}

fn create_topic(
    image: &mut ClusterImage,
    name: &str,
    id: Uuid,
    configs: &Configs,
    assignments: &[Vec<i32>],
) -> Result<RecordOutcome, RecordError> {
    if !valid_topic_name(name) {
        return Err(RecordError::InvalidTopicName(name.to_string()));
    }
    if image.topics.contains_key(name) {
        return Err(RecordError::TopicExists(name.to_string()));
    }
    if id.is_nil() || image.topic_ids.contains_key(&id) {
        return Err(RecordError::TopicIdInUse(id));
    }
    let partitions = new_partitions(image, 0, assignments)?;
    image.topic_ids.insert(id, name.to_string());
    let topic = TopicImage {
        id,
        name: name.to_string(),
        configs: configs.clone(),
        partitions,
    };
    image.topics.insert(name.to_string(), topic);
    Ok(RecordOutcome::Applied)
}

fn create_partitions(
    image: &mut ClusterImage,
    topic: &str,
    assignments: &[Vec<i32>],
) -> Result<RecordOutcome, RecordError> {
    let existing = image
        .topics
        .get(topic)
        .ok_or_else(|| RecordError::UnknownTopic(topic.to_string()))?
        .partitions
        .len();
    let added = new_partitions(image, existing, assignments)?;
    let topic = image.topics.get_mut(topic).expect("looked up above");
    topic.partitions.extend(added);
    Ok(RecordOutcome::Applied)
}

/// New partitions' states: ISR = the replicas on unfenced brokers, leader
/// the first of them (a new partition is empty, so all are in sync).
fn new_partitions(
    image: &ClusterImage,
    existing: usize,
    assignments: &[Vec<i32>],
) -> Result<Vec<PartitionState>, RecordError> {
    let total = existing + assignments.len();
    if assignments.is_empty() || total > PARTITIONS_PER_TOPIC_MAX as usize {
        return Err(RecordError::InvalidPartitions(format!(
            "{} new partitions, {total} in all (at most {PARTITIONS_PER_TOPIC_MAX})",
            assignments.len()
        )));
    }
    let factor = assignments[0].len();
    let mut states = Vec::with_capacity(assignments.len());
    for replicas in assignments {
        check_replicas(image, replicas, factor)?;
        let isr: Vec<i32> = replicas
            .iter()
            .copied()
            .filter(|&b| image.broker_live(b))
            .collect();
        let leader = *isr.first().ok_or(RecordError::NoLiveReplica)?;
        states.push(PartitionState {
            replicas: replicas.clone(),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            isr,
        });
    }
    Ok(states)
}

fn check_replicas(
    image: &ClusterImage,
    replicas: &[i32],
    factor: usize,
) -> Result<(), RecordError> {
    let bad = |why: String| Err(RecordError::InvalidAssignment(why));
    if replicas.is_empty() || replicas.len() > REPLICAS_MAX {
        return bad(format!("{} replicas (1 to {REPLICAS_MAX})", replicas.len()));
    }
    if replicas.len() != factor {
        return bad("partitions have different replication factors".into());
    }
    if has_duplicates(replicas) {
        return bad(format!("a broker appears twice in {replicas:?}"));
    }
    if let Some(b) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
        return bad(format!("broker {b} is not registered"));
    }
    Ok(())
}

fn has_duplicates(ids: &[i32]) -> bool {
    ids.iter().enumerate().any(|(i, id)| ids[..i].contains(id))
}

fn alter_configs(
    image: &mut ClusterImage,
    resource: &ConfigResource,
    changes: &[ConfigChange],
) -> Result<RecordOutcome, RecordError> {
    let configs = match resource {
        ConfigResource::Topic(name) => {
            &mut image
                .topics
                .get_mut(name)
                .ok_or_else(|| RecordError::UnknownTopic(name.clone()))?
                .configs
        }
        ConfigResource::Broker(id) => image.broker_configs.entry(Some(*id)).or_default(),
        ConfigResource::ClusterDefault => image.broker_configs.entry(None).or_default(),
        ConfigResource::Group(group) => {
            let mut set = image.group_configs.of(group).cloned().unwrap_or_default();
            apply_changes(&mut set, changes);
            image.group_configs.put(group, set);
            return Ok(RecordOutcome::Applied);
        }
        ConfigResource::ClientMetrics(name) => {
            let mut set = image.client_metrics.of(name).cloned().unwrap_or_default();
            apply_changes(&mut set, changes);
            image.client_metrics.put(name, set);
            return Ok(RecordOutcome::Applied);
        }
    };
    apply_changes(configs, changes);
    // No empty broker entries, so equal configs mean equal images.
    image.broker_configs.retain(|_, c| !c.is_empty());
    Ok(RecordOutcome::Applied)
}

fn apply_changes(configs: &mut super::image::Configs, changes: &[ConfigChange]) {
    for change in changes {
        match &change.value {
            Some(value) => configs.insert(change.name.clone(), value.clone()),
            None => configs.remove(&change.name),
        };
    }
}

/// A delegation token set or removed; a new one past `TOKENS_MAX` is
/// refused.
fn delegation_token(
    image: &mut ClusterImage,
    id: &str,
    token: Option<&crate::security::delegation_tokens::DelegationToken>,
) -> Result<RecordOutcome, RecordError> {
    use crate::security::delegation_tokens::TOKENS_MAX;
    let tokens = &mut image.delegation_tokens;
    match token {
        Some(t) if tokens.get(id) == Some(t) => Ok(RecordOutcome::Unchanged),
        Some(_) if !tokens.contains_key(id) && tokens.len() >= TOKENS_MAX => {
            Err(RecordError::TooManyTokens)
        }
        Some(t) => {
            tokens.insert(id.to_string(), t.clone());
            Ok(RecordOutcome::Applied)
        }
        None if tokens.remove(id).is_some() => Ok(RecordOutcome::Applied),
        None => Ok(RecordOutcome::Unchanged),
    }
}

fn scram_credential(
    image: &mut ClusterImage,
    user: &str,
    mechanism: crate::security::scram::Mechanism,
    credential: Option<&crate::security::scram::Credential>,
) -> Result<RecordOutcome, RecordError> {
    use crate::security::scram::{USERS_MAX, USER_BYTES_MAX};
    let refuse = |m: &str| Err(RecordError::UnacceptableCredential(m.into()));
    if user.is_empty() || user.len() > USER_BYTES_MAX {
        return refuse("user name empty or too long");
    }
    match credential {
        Some(c) => {
            if !image.scram_credentials.contains_key(user)
                && image.scram_credentials.len() >= USERS_MAX
            {
                return refuse("too many users");
            }
            image
                .scram_credentials
                .entry(user.to_string())
                .or_default()
                .insert(mechanism, c.clone());
        }
        None => {
            let Some(set) = image.scram_credentials.get_mut(user) else {
                return Ok(RecordOutcome::Unchanged);
            };
            if set.remove(&mechanism).is_none() {
                return Ok(RecordOutcome::Unchanged);
            }
            // No empty entries, so equal credentials mean equal images.
            if set.is_empty() {
                image.scram_credentials.remove(user);
            }
        }
    }
    Ok(RecordOutcome::Applied)
}

fn client_quota(
    image: &mut ClusterImage,
    entity: &crate::quota::QuotaEntity,
    key: crate::quota::QuotaKey,
    value: Option<f64>,
) -> Result<RecordOutcome, RecordError> {
    if entity.user.is_none() && entity.client_id.is_none() {
        return Err(crate::quota::QuotaError::EmptyEntity.into());
    }
    if let Some(v) = value {
        crate::quota::check_value(key.name(), v)?;
    }
    if image.client_quotas.get(entity).and_then(|q| q.get(key)) == value {
        return Ok(RecordOutcome::Unchanged);
    }
    image.client_quotas.set(entity, key, value)?;
    Ok(RecordOutcome::Applied)
}

fn ip_quota(
    image: &mut ClusterImage,
    ip: &crate::quota::EntityName,
    value: Option<f64>,
) -> Result<RecordOutcome, RecordError> {
    if let Some(v) = value {
        crate::quota::check_ip_value(crate::quota::entity::CONNECTION_CREATION_RATE, v)?;
    }
    if image.ip_quotas.get(ip) == value {
        return Ok(RecordOutcome::Unchanged);
    }
    image.ip_quotas.set(ip, value)?;
    Ok(RecordOutcome::Applied)
}

/// The fields of a ChangePartition record.
struct PartitionChange<'a> {
    leader: i32,
    isr: &'a [i32],
    leader_epoch: i32,
    partition_epoch: i32,
}

fn change_partition(
    image: &mut ClusterImage,
    topic: &str,
    partition: i32,
    change: PartitionChange<'_>,
) -> Result<RecordOutcome, RecordError> {
    let unknown = || RecordError::UnknownPartition {
        topic: topic.to_string(),
        partition,
    };
    let index = usize::try_from(partition).map_err(|_| unknown())?;
    let current = image
        .topics
        .get(topic)
        .ok_or_else(unknown)?
        .partitions
        .get(index)
        .ok_or_else(unknown)?;
    check_change(current, &change)?;
    check_joiners(image, current, &change)?;
    let (mut old_isr, replicas) = (current.isr.clone(), current.replicas.clone());
    if image
        .lost_isrs
        .get(topic)
        .is_some_and(|l| l.contains(&partition))
    {
        // A lost ISR's member holds nothing: it did not leave in sync.
        old_isr.clear();
    }
    let state = image
        .topics
        .get_mut(topic)
        .expect("looked up above")
        .partitions
        .get_mut(index)
        .expect("looked up above");
    state.leader = change.leader;
    state.isr = change.isr.to_vec();
    state.leader_epoch = change.leader_epoch;
    state.partition_epoch += 1;
    // Only an election that knew the ISR was lost changes such a
    // partition (an eligible replica's or an unclean one): its new ISR is
    // sound again.
    forget_lost_isr(image, topic, partition);
    note_departures(image, topic, partition, &replicas, (&old_isr, change.isr));
    // The ISR change that brings the last target replica in completes a
    // reassignment.
    reassignment::try_complete(image, topic, partition);
    Ok(RecordOutcome::Applied)
}

fn check_change(state: &PartitionState, change: &PartitionChange<'_>) -> Result<(), RecordError> {
    if change.partition_epoch != state.partition_epoch {
        return Err(RecordError::StalePartitionEpoch {
            current: state.partition_epoch,
            proposed: change.partition_epoch,
        });
    }
    let leader_moves = change.leader != state.leader;
    if change.leader_epoch < state.leader_epoch
        || (leader_moves && change.leader_epoch == state.leader_epoch)
    {
        return Err(RecordError::InvalidLeaderEpoch {
            current: state.leader_epoch,
            proposed: change.leader_epoch,
        });
    }
    let bad = |why: &str| Err(RecordError::InvalidPartitionChange(why.to_string()));
    if change.isr.is_empty() || has_duplicates(change.isr) {
        return bad("the ISR must be a non-empty set");
    }
    if !change.isr.iter().all(|b| state.replicas.contains(b)) {
        return bad("every ISR member must be a replica");
    }
    if change.leader != NO_LEADER && !change.isr.contains(&change.leader) {
        return bad("the leader must be in the ISR");
    }
    Ok(())
}

/// KIP-841: a fenced broker does not join an ISR (a leader's stale view of
/// a dead follower would otherwise hold the high watermark back).
fn check_joiners(
    image: &ClusterImage,
    state: &PartitionState,
    change: &PartitionChange<'_>,
) -> Result<(), RecordError> {
    let joining_fenced = change
        .isr
        .iter()
        .find(|b| !state.isr.contains(b) && !image.broker_live(**b));
    match joining_fenced {
        Some(b) => Err(RecordError::InvalidPartitionChange(format!(
            "broker {b} is fenced and cannot join the ISR"
        ))),
        None => Ok(()),
    }
}

/// Keeps `ClusterImage::isr_departures`: who left the ISR goes last, who
/// joined it or is no longer a replica leaves the list.
fn note_departures(
    image: &mut ClusterImage,
    topic: &str,
    partition: i32,
    replicas: &[i32],
    (old_isr, new_isr): (&[i32], &[i32]),
) {
    let anyone_left = old_isr.iter().any(|b| !new_isr.contains(b));
    let listed = image
        .isr_departures
        .get(topic)
        .is_some_and(|t| t.contains_key(&partition));
    if !anyone_left && !listed {
        return; // most changes: nothing to note, no entry to make
    }
    let departures = image
        .isr_departures
        .entry(topic.to_string())
        .or_default()
        .entry(partition)
        .or_default();
    departures.retain(|d| !new_isr.contains(&d.broker) && replicas.contains(&d.broker));
    let isr_len = u32::try_from(new_isr.len()).expect("an ISR is at most REPLICAS_MAX");
    for d in departures.iter_mut() {
        d.isr_max_since = d.isr_max_since.max(isr_len);
    }
    for left in old_isr.iter().filter(|b| !new_isr.contains(b)) {
        departures.retain(|d| d.broker != *left);
        departures.push(Departure {
            broker: *left,
            isr_max_since: isr_len,
        });
    }
    // Each replica at most once: bounded by the replica count.
    debug_assert!(departures.len() <= REPLICAS_MAX);
    // No empty entries, so equal departures mean equal images.
    if departures.is_empty() {
        let by_partition = image.isr_departures.get_mut(topic).expect("entered above");
        by_partition.remove(&partition);
        if by_partition.is_empty() {
            image.isr_departures.remove(topic);
        }
    }
}

fn forget_lost_isr(image: &mut ClusterImage, topic: &str, partition: i32) {
    if let Some(lost) = image.lost_isrs.get_mut(topic) {
        lost.remove(&partition);
        // No empty entries, so equal marks mean equal images.
        if lost.is_empty() {
            image.lost_isrs.remove(topic);
        }
    }
}

fn allocate_producer_ids(
    image: &mut ClusterImage,
    broker: i32,
    count: i32,
) -> Result<RecordOutcome, RecordError> {
    if !image.brokers.contains_key(&broker) {
        return Err(RecordError::UnknownBroker(broker));
    }
    if count <= 0 || count > PRODUCER_ID_BLOCK_MAX {
        return Err(RecordError::InvalidProducerIdCount(count));
    }
    let first = image.next_producer_id;
    let next = first
        .checked_add(i64::from(count))
        .ok_or(RecordError::ProducerIdsExhausted)?;
    image.next_producer_id = next;
    Ok(RecordOutcome::ProducerIds { first, count })
}

#[cfg(test)]
mod tests;

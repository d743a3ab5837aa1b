//! Groups that move between the classic and the consumer protocol while
//! they consume (KIP-848's online migration, Kafka's
//! `group.consumer.migration.policy`), on the coordinator shard.
//!
//! - *Upgrade*: the first ConsumerGroupHeartbeat into a classic consumer
//!   group with members turns it into a consumer protocol group. Each
//!   classic member is kept, at the classic generation as its member epoch,
//!   owning what its last assignment gave it; parked JoinGroups and
//!   SyncGroups answer REBALANCE_IN_PROGRESS, so those members join again,
//!   now as classic members of a consumer protocol group.
//! - *Classic members* of a consumer protocol group send JoinGroup,
//!   SyncGroup, Heartbeat and LeaveGroup; the group assigns their
//!   partitions (`consumer_protocol::classic`), translated here from and to
//!   the embedded consumer protocol's bytes.
//! - *Downgrade*: once every remaining member speaks the classic protocol
//!   (the last consumer protocol member left or timed out), the group is a
//!   classic group again at the group epoch as its generation, with each
//!   member's assignment, and starts a rebalance so a leader assigns anew.
//!
//! A conversion writes the group's classic record and its consumer record
//! in one batch (`Changed::Protocol`), so a coordinator that takes the
//! group over finds it in one shape or the other, never in both.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    consumer_protocol_assignment, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

use super::consumer_protocol::classic::{ClassicJoin, ClassicMember, Seed};
use super::consumer_protocol::{Assignment, ConsumerGroup, TopicShape};
use super::membership::{self, join_error, sync_error};
use super::state::{Group, GroupState, Member};
use super::{consumer_heartbeat, Coordinator, Sender};
use crate::config::MigrationPolicy;
use crate::metadata::Topics;

/// The protocol type of consumer groups, classic or not.
pub const CONSUMER: &str = "consumer";

/// What a request changed, and so what must be written before it is
/// answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    Nothing,
    /// The consumer protocol membership.
    Membership,
    /// The group changed protocol: both records, in one batch.
    Protocol,
}

impl Changed {
    pub fn from_membership(changed: bool) -> Changed {
        if changed {
            Changed::Membership
        } else {
            Changed::Nothing
        }
    }
}

fn policy(coord: &Coordinator) -> MigrationPolicy {
    coord.shard.config.group_consumer_migration_policy
}

/// The ConsumerProtocolSubscription in a classic member's metadata.
/// `None` if it is not one.
pub fn decode_subscription(metadata: &Bytes) -> Option<ConsumerProtocolSubscription> {
    decode_embedded(metadata)
}

/// One of the embedded consumer protocol's messages: version-prefixed,
/// a newer version read as the newest this build knows (as Kafka reads
/// them).
fn decode_embedded<T: Decodable>(bytes: &Bytes) -> Option<T> {
    let mut b = bytes.clone();
    if b.len() < 2 {
        return None;
    }
    let version = b.get_i16();
    // The decoder panics on some malformed input; a client's bytes must
    // not take the shard down.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        T::decode(&mut b, version.clamp(0, 3))
    }))
    .ok()?
    .ok()
}

/// An assignment as the embedded consumer protocol carries it (version
/// 0, which every client reads).
fn encode_assignment(assigned: &Assignment, topics: &Topics) -> Bytes {
    let mut wire = ConsumerProtocolAssignment::default();
    wire.assigned_partitions = assigned
        .iter()
        .filter_map(|(id, partitions)| {
            let mut tp = consumer_protocol_assignment::TopicPartition::default();
            tp.topic = StrBytes::from_string(topics.name_of(*id)?.to_string()).into();
            tp.partitions = partitions.iter().copied().collect();
            Some(tp)
        })
        .collect();
    let mut out = BytesMut::new();
    out.put_i16(0);
    wire.encode(&mut out, 0)
        .expect("an assignment encodes at version 0");
    out.freeze()
}

/// Partitions by topic name as an assignment by topic id; topics that do
/// not exist (any more) are left out.
fn by_id<'a>(topics: &Topics, named: impl Iterator<Item = (&'a str, &'a [i32])>) -> Assignment {
    let mut out = Assignment::new();
    for (name, partitions) in named {
        let Some(topic) = topics.get(name) else {
            continue;
        };
        let valid = partitions
            .iter()
            .filter(|p| (0..topic.partitions).contains(*p));
        out.entry(topic.uuid()).or_default().extend(valid);
    }
    out.retain(|_, ps| !ps.is_empty());
    out
}

/// Turns a classic consumer group with members into a consumer protocol
/// group; why not, if it cannot be.
pub fn upgrade(coord: &Coordinator, group: &mut Group, now_ms: i64) -> Result<(), String> {
    if !policy(coord).upgrades() {
        return Err("the migration policy allows no upgrade".into());
    }
    if group.protocol_type.as_deref() != Some(CONSUMER) {
        return Err("its members are not consumers".into());
    }
    if group.members.len() > coord.shard.config.group_max_size {
        return Err("it has more members than a group may".into());
    }
    let topics = coord.shard.topics();
    let mut seeds = Vec::with_capacity(group.members.len());
    for m in group.members.values() {
        let metadata = match group.protocol.as_deref() {
            Some(protocol) => m.metadata_for(protocol),
            None => m
                .protocols
                .first()
                .map(|(_, b)| b.clone())
                .unwrap_or_default(),
        };
        let subscription = decode_subscription(&metadata)
            .filter(|s| s.topics.iter().all(|t| super::fits_record(t)))
            .ok_or_else(|| format!("member {} has no consumer subscription it can keep", m.id))?;
        let assignment: ConsumerProtocolAssignment =
            decode_embedded(&m.assignment).unwrap_or_default();
        let assigned = by_id(
            &topics,
            assignment
                .assigned_partitions
                .iter()
                .map(|tp| (tp.topic.as_str(), tp.partitions.as_slice())),
        );
        seeds.push(Seed {
            id: m.id.clone(),
            instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            classic: ClassicMember {
                session_timeout_ms: m.session_timeout_ms,
                protocols: m.protocols.clone(),
                deadline_ms: None,
            },
            subscribed: subscription.topics.iter().map(|t| t.to_string()).collect(),
            assigned,
        });
    }
    let names: BTreeSet<&String> = seeds.iter().flat_map(|s| s.subscribed.iter()).collect();
    let shapes = consumer_heartbeat::shapes_of(&topics, names.into_iter());
    // Parked joins and syncs belong to a generation that is gone.
    for m in group.members.values_mut() {
        if let Some(w) = m.join_waiter.take() {
            let _ = w.reply.send(join_error(rebalancing(), &m.id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(sync_error(rebalancing()));
        }
    }
    tracing::info!(group = %group.id, generation = group.generation, members = seeds.len(), "classic group becomes a consumer protocol group");
    group.consumer = Some(ConsumerGroup::from_classic(
        group.generation,
        seeds,
        &shapes,
        now_ms,
    ));
    group.members.clear();
    group.static_members.clear();
    group.pending.clear();
    group.leader = None;
    group.state = GroupState::Empty;
    group.empty_since_ms = now_ms;
    Ok(())
}

fn rebalancing() -> i16 {
    ResponseError::RebalanceInProgress.code()
}

/// Turns a consumer protocol group whose members all speak the classic
/// protocol back into a classic group, and starts its rebalance; true if
/// it did.
pub fn maybe_downgrade(
    coord: &Coordinator,
    group: &mut Group,
    limits: &membership::Limits,
    now_ms: i64,
) -> bool {
    let Some(consumer) = group.consumer.as_ref().filter(|c| c.only_classic_members()) else {
        return false;
    };
    if !policy(coord).downgrades() || consumer.members.len() > limits.max_size {
        return false;
    }
    let topics = coord.shard.topics();
    let generation = consumer.epoch;
    let seeds = consumer.classic_seeds();
    group.members = seeds
        .into_iter()
        .map(|seed| {
            let member = Member {
                id: seed.id.clone(),
                instance_id: seed.instance_id,
                client_id: seed.client_id,
                client_host: seed.client_host,
                session_timeout_ms: seed.classic.session_timeout_ms,
                rebalance_timeout_ms: seed.rebalance_timeout_ms,
                protocols: seed.classic.protocols,
                assignment: encode_assignment(&seed.assigned, &topics),
                join_waiter: None,
                sync_waiter: None,
                last_seen_ms: now_ms,
            };
            (seed.id, member)
        })
        .collect();
    let Some(protocol) = membership::select_protocol(group) else {
        // No assignor every member knows: the group stays as it is.
        group.members.clear();
        return false;
    };
    group.static_members = group
        .members
        .values()
        .filter_map(|m| Some((m.instance_id.clone()?, m.id.clone())))
        .collect();
    group.pending.clear();
    group.generation = generation;
    group.protocol_type = Some(CONSUMER.to_string());
    group.protocol = Some(protocol);
    group.leader = group.members.keys().next().cloned();
    group.state = GroupState::Stable;
    group.consumer = None;
    tracing::info!(group = %group.id, generation, members = group.members.len(), "consumer protocol group becomes a classic group");
    membership::prepare_rebalance(group, limits, now_ms);
    true
}

/// A JoinGroup into a consumer protocol group with members.
pub fn join(
    coord: &Coordinator,
    group: &mut Group,
    sender: Sender,
    request: JoinGroupRequest,
    now_ms: i64,
) -> (JoinGroupResponse, Changed) {
    let consumer = group.consumer.as_mut().expect("a consumer protocol group");
    let refuse = |e: i16, member_id: &str| (join_error(e, member_id), Changed::Nothing);
    let given_id = request.member_id.to_string();
    if request.protocol_type.as_str() != CONSUMER {
        return refuse(ResponseError::InconsistentGroupProtocol.code(), &given_id);
    }
    let known = consumer.members.contains_key(&given_id);
    if !known && policy(coord) == MigrationPolicy::Disabled {
        // With no migration allowed the group never converges back, so a
        // new classic member is refused as Kafka refuses it (KAFKA-20640).
        return refuse(ResponseError::InconsistentGroupProtocol.code(), &given_id);
    }
    let instance_id = request.group_instance_id.as_ref().map(|i| i.to_string());
    let member_id = if given_id.is_empty() {
        let id = membership::new_member_id(&sender.client_id);
        if instance_id.is_none() && sender.version >= 4 {
            // As a classic group asks (KIP-394): join again with this id.
            return refuse(ResponseError::MemberIdRequired.code(), &id);
        }
        id
    } else {
        given_id
    };
    let protocols: Vec<(String, Bytes)> = request
        .protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect();
    let Some(subscription) = protocols.first().and_then(|(_, m)| decode_subscription(m)) else {
        return refuse(ResponseError::InconsistentGroupProtocol.code(), &member_id);
    };
    if !subscription.topics.iter().all(|t| super::fits_record(t)) {
        return refuse(ResponseError::InvalidRequest.code(), &member_id);
    }
    let topics = coord.shard.topics();
    let owned = by_id(
        &topics,
        subscription
            .owned_partitions
            .iter()
            .map(|tp| (tp.topic.as_str(), tp.partitions.as_slice())),
    );
    let subscribed: BTreeSet<String> = subscription.topics.iter().map(|t| t.to_string()).collect();
    let names = consumer
        .members
        .values()
        .flat_map(|m| m.subscribed.iter())
        .chain(subscribed.iter());
    let shapes: BTreeMap<String, TopicShape> = consumer_heartbeat::shapes_of(&topics, names);
    let rebalance_timeout_ms = if sender.version >= 1 {
        request.rebalance_timeout_ms
    } else {
        request.session_timeout_ms
    };
    let join = ClassicJoin {
        member_id: member_id.clone(),
        instance_id,
        client_id: sender.client_id,
        client_host: sender.client_host,
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms,
        protocols,
        subscribed,
        owned,
    };
    let before = consumer.changes;
    let limits = consumer_heartbeat::limits(coord, &coord.settings(&group.id));
    match consumer.classic_join(join, &shapes, &limits, now_ms) {
        Ok(answer) => {
            let classic = consumer.members[&answer.member_id]
                .classic
                .as_ref()
                .expect("a classic member after its join");
            let mut r = JoinGroupResponse::default();
            r.member_id = StrBytes::from_string(answer.member_id);
            r.generation_id = answer.member_epoch;
            r.protocol_type = Some(StrBytes::from_static_str(CONSUMER));
            r.protocol_name = Some(StrBytes::from_string(classic.protocol_name().to_string()));
            // Nobody leads: every member syncs for what the group assigned.
            r.leader = StrBytes::default();
            let changed = Changed::from_membership(consumer.changes != before);
            (r, changed)
        }
        Err(e) => {
            tracing::debug!(group = %group.id, error = %e, "classic join refused");
            refuse(e.code(), &member_id)
        }
    }
}

/// A SyncGroup of a classic member of a consumer protocol group.
pub fn sync(
    coord: &Coordinator,
    group: &mut Group,
    version: i16,
    request: &SyncGroupRequest,
    now_ms: i64,
) -> SyncGroupResponse {
    let consumer = group.consumer.as_mut().expect("a consumer protocol group");
    let member_id = request.member_id.as_str();
    let (assigned, classic) = match consumer.classic_sync(member_id, request.generation_id, now_ms)
    {
        Ok(synced) => synced,
        Err(e) => return sync_error(e.code()),
    };
    let type_mismatch = request
        .protocol_type
        .as_ref()
        .is_some_and(|t| t.as_str() != CONSUMER);
    let name_mismatch = request
        .protocol_name
        .as_ref()
        .is_some_and(|n| n.as_str() != classic.protocol_name());
    if version >= 5 && (type_mismatch || name_mismatch) {
        return sync_error(ResponseError::InconsistentGroupProtocol.code());
    }
    let mut r = SyncGroupResponse::default();
    r.protocol_type = Some(StrBytes::from_static_str(CONSUMER));
    r.protocol_name = Some(StrBytes::from_string(classic.protocol_name().to_string()));
    r.assignment = encode_assignment(&assigned, &coord.shard.topics());
    r
}

/// A Heartbeat of a classic member of a consumer protocol group.
pub fn heartbeat(group: &mut Group, request: &HeartbeatRequest, now_ms: i64) -> HeartbeatResponse {
    let consumer = group.consumer.as_mut().expect("a consumer protocol group");
    let mut r = HeartbeatResponse::default();
    let member_id = request.member_id.as_str();
    if let Err(e) = consumer.classic_heartbeat(member_id, request.generation_id, now_ms) {
        r.error_code = e.code();
    }
    r
}

/// A LeaveGroup of classic members of a consumer protocol group.
pub fn leave(
    group: &mut Group,
    version: i16,
    request: &LeaveGroupRequest,
) -> (LeaveGroupResponse, Changed) {
    let consumer = group.consumer.as_mut().expect("a consumer protocol group");
    let before = consumer.changes;
    let members = membership::leave_identities(version, request)
        .into_iter()
        .map(|(member_id, instance_id)| {
            let mut m = MemberResponse::default();
            if let Err(e) = consumer.classic_leave(&member_id, instance_id.as_deref()) {
                m.error_code = e.code();
            }
            m.member_id = StrBytes::from_string(member_id);
            m.group_instance_id = instance_id.map(StrBytes::from_string);
            m
        })
        .collect();
    let changed = Changed::from_membership(consumer.changes != before);
    (membership::leave_response(version, members), changed)
}

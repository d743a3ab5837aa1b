//! One consumer group's state, as its coordinator shard holds it.
//!
//! Only the coordinator shard of a group touches its [`Group`]; other
//! shards reach it by a `GroupMsg` over the coordinators' mesh. Everything
//! here is synchronous: the membership rules in `membership.rs` change a
//! `Group` and answer the waiting requests through their oneshots; writing
//! to the log happens around them, in `mod.rs`.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};

use super::consumer_protocol::ConsumerGroup;
use super::records::{GroupValue, MemberValue, Part, Protocol};
use super::share_protocol::ShareGroup;
use super::written::{Change, Touched, Written};

/// Kafka's classic group states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name ListGroups and DescribeGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A JoinGroup waiting for the rebalance to complete.
pub struct JoinWaiter {
    pub reply: oneshot::Sender<JoinGroupResponse>,
}

pub struct Member {
    pub id: String,
    /// KIP-345 static membership: survives restarts of the client.
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (assignor name, subscription metadata), in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// What the leader assigned this member in the current generation.
    pub assignment: Bytes,
    pub join_waiter: Option<JoinWaiter>,
    pub sync_waiter: Option<oneshot::Sender<SyncGroupResponse>>,
    /// Last sign of life (join, sync, heartbeat, commit); the session
    /// timeout runs from here.
    pub last_seen_ms: i64,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Kept alive while a join or sync of its is parked here.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.join_waiter.is_none()
            && self.sync_waiter.is_none()
            && now_ms.saturating_sub(self.last_seen_ms) > i64::from(self.session_timeout_ms)
    }
}

/// A committed offset, and where in the log it was written so that
/// commits finishing out of order cannot roll it back.
#[derive(Clone, Debug)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    pub log_offset: i64,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    /// The assignor chosen for the current generation.
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they rejoin or
    /// their deadline (ms) passes.
    pub pending: HashMap<String, i64>,
    /// group.instance.id -> the member id that currently holds it.
    pub static_members: HashMap<String, String>,
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// TxnOffsetCommit offsets per producer id, written but not yet
    /// settled by their transaction's marker.
    pub pending_txn_offsets: HashMap<i64, BTreeMap<(String, i32), Committed>>,
    /// The join phase ends by then whoever has rejoined.
    pub join_deadline_ms: i64,
    /// A new group's first join phase lasts at least until then
    /// (`group.initial.rebalance.delay.ms`, extended by each new member).
    pub initial_delay_until_ms: Option<i64>,
    /// The leader must send the assignment by then.
    pub sync_deadline_ms: i64,
    pub rebalance_started_ms: i64,
    /// When the group last became Empty, for offset expiry.
    pub empty_since_ms: i64,
    /// Log offset of the last group metadata record applied.
    pub metadata_log_offset: i64,
    /// The consumer protocol's membership (KIP-848), once a member joined
    /// that way; the classic fields above then stay empty.
    pub consumer: Option<super::consumer_protocol::ConsumerGroup>,
    /// What `__consumer_offsets` holds of `consumer` (kept when it goes,
    /// for the tombstones of its records).
    pub consumer_written: Written,
    /// A share group's membership (KIP-932), once a member joined that
    /// way.
    pub share: Option<super::share_protocol::ShareGroup>,
    /// What `__consumer_offsets` holds of `share`.
    pub share_written: Written,
    /// A share group's partition states, by (topic, partition), as its
    /// partitions' leaders last wrote them (`share_state`).
    pub share_states: BTreeMap<(String, i32), super::ShareSnapshot>,
}

impl Group {
    pub fn new(id: String, now_ms: i64) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets: BTreeMap::new(),
            pending_txn_offsets: HashMap::new(),
            join_deadline_ms: 0,
            initial_delay_until_ms: None,
            sync_deadline_ms: 0,
            rebalance_started_ms: 0,
            empty_since_ms: now_ms,
            metadata_log_offset: -1,
            consumer: None,
            consumer_written: Written::new(Protocol::Consumer),
            share: None,
            share_written: Written::new(Protocol::Share),
            share_states: BTreeMap::new(),
        }
    }

    /// Members joined through the consumer protocol.
    pub fn has_consumer_members(&self) -> bool {
        self.consumer.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// The records that bring `__consumer_offsets` to the consumer
    /// protocol and share group memberships as they are now (tombstones of
    /// one that is gone), noted as written.
    pub fn membership_changes(&mut self) -> Vec<Change> {
        let touched = self
            .consumer
            .as_mut()
            .map_or(Touched::All, ConsumerGroup::take_touched);
        let consumer = self.consumer.as_ref();
        let mut changes = self.consumer_written.changes_within(consumer, &touched);
        let touched = self
            .share
            .as_mut()
            .map_or(Touched::All, ShareGroup::take_touched);
        let share = self.share.as_ref();
        changes.extend(self.share_written.changes_within(share, &touched));
        changes
    }

    /// A tombstone for every membership record the group has, noted as
    /// written (the group deleted).
    pub fn membership_tombstones(&mut self) -> Vec<Change> {
        let mut changes = self.consumer_written.tombstones();
        changes.extend(self.share_written.tombstones());
        changes
    }

    /// The records of `parts` were not written: written again at the next
    /// write.
    pub fn membership_failed(&mut self, parts: &[(Protocol, Part)]) {
        self.consumer_written.failed(parts);
        self.share_written.failed(parts);
    }

    /// Members joined through the share group protocol.
    pub fn has_share_members(&self) -> bool {
        self.share.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// A share group with neither members nor partition state gives its
    /// id up to a group of another kind; false while it has either (the
    /// id is a share group's until deleted, as in Kafka).
    pub fn forget_empty_share(&mut self) -> bool {
        if self.has_share_members() || !self.share_states.is_empty() {
            return false;
        }
        self.share = None;
        true
    }

    /// The group metadata record for the current state.
    pub fn to_value(&self, now_ms: i64) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: now_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores membership from a replayed group metadata record. Members
    /// come back as if just heard from, so silent ones time out.
    pub fn restore(&mut self, v: GroupValue, now_ms: i64) {
        self.generation = v.generation;
        self.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        self.protocol = v.protocol.clone();
        self.leader = v.leader;
        self.members.clear();
        self.static_members.clear();
        let protocol = v.protocol.unwrap_or_default();
        for m in v.members {
            if let Some(instance) = &m.instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            self.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    last_seen_ms: now_ms,
                },
            );
        }
        self.state = if self.members.is_empty() {
            self.empty_since_ms = now_ms;
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }
}

//! Classic protocol members of a consumer protocol group: how Kafka (3.7+,
//! `group.consumer.migration.policy`) lets a group move between protocols
//! while it consumes. A rolling upgrade starts consumers with
//! `group.protocol=consumer` beside classic ones; the classic members stay
//! in the group, speaking JoinGroup, SyncGroup and Heartbeat, while the
//! coordinator assigns their partitions as it does everyone's:
//!
//! - a JoinGroup is a heartbeat that names the member's subscription and
//!   what it owns (from the ConsumerProtocolSubscription); its generation
//!   is the member epoch, and its SyncGroup answers the member's assignment
//!   (nobody leads: the coordinator assigns);
//! - a Heartbeat answers REBALANCE_IN_PROGRESS while the member is behind:
//!   the group has a newer epoch, it must give partitions up, or partitions
//!   of its target are free to take. It then joins again, within its
//!   rebalance timeout, and syncs within another;
//! - a classic member is removed after its own session timeout.
//!
//! The conversions themselves (a classic group into a consumer protocol
//! group at a consumer member's first heartbeat, and back when the last
//! consumer member leaves) are in the coordinator's glue
//! (`group::migration`); `Seed` is what they carry between the two shapes.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::{
    difference, Answer, Assignment, ConsumerGroup, Heartbeat, HeartbeatError, Limits, Member,
    TopicShape, JOINING_EPOCH, LEAVING_EPOCH,
};

/// What the classic protocol adds to a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicMember {
    pub session_timeout_ms: i32,
    /// (assignor name, subscription metadata), in the member's preference
    /// order, as its JoinGroup named them.
    pub protocols: Vec<(String, Bytes)>,
    /// It must join again (after a REBALANCE_IN_PROGRESS) or sync (after
    /// a join) by then, or it is removed. Not written: a coordinator that
    /// takes the group over gives it a whole session instead.
    pub deadline_ms: Option<i64>,
}

impl ClassicMember {
    pub fn late(&self, now_ms: i64) -> bool {
        self.deadline_ms.is_some_and(|d| now_ms > d)
    }

    /// The assignor name its JoinGroup and SyncGroup answers carry.
    pub fn protocol_name(&self) -> &str {
        self.protocols.first().map_or("", |(name, _)| name.as_str())
    }
}

/// A JoinGroup of a classic member, as the group needs it.
#[derive(Clone, Debug, Default)]
pub struct ClassicJoin {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    /// The topics its subscription names.
    pub subscribed: BTreeSet<String>,
    /// What its subscription says it owns (cooperative assignors; eager
    /// ones gave everything up before joining).
    pub owned: Assignment,
}

/// One member as a conversion carries it between the classic and the
/// consumer protocol shapes.
#[derive(Clone, Debug)]
pub struct Seed {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub classic: ClassicMember,
    pub subscribed: BTreeSet<String>,
    pub assigned: Assignment,
}

impl ConsumerGroup {
    /// A classic group's members as a consumer protocol group at the
    /// classic generation: each owns what it was assigned, which is also
    /// the target, so nothing moves until a member joins or leaves.
    pub fn from_classic(
        generation: i32,
        seeds: Vec<Seed>,
        topics: &BTreeMap<String, TopicShape>,
        now_ms: i64,
    ) -> ConsumerGroup {
        let mut group = ConsumerGroup {
            epoch: generation,
            target_epoch: generation,
            shapes: topics.clone(),
            assignor: super::assignor::UNIFORM,
            ..ConsumerGroup::default()
        };
        for seed in seeds {
            group.target.insert(seed.id.clone(), seed.assigned.clone());
            let member = Member {
                id: seed.id.clone(),
                instance_id: seed.instance_id,
                client_id: seed.client_id,
                client_host: seed.client_host,
                epoch: generation,
                previous_epoch: generation,
                rebalance_timeout_ms: seed.rebalance_timeout_ms,
                names: seed.subscribed.clone(),
                subscribed: seed.subscribed,
                regex: None,
                assignor: None,
                told: Some(seed.assigned.clone()),
                assigned: seed.assigned,
                revoking: Assignment::new(),
                revoke_deadline_ms: None,
                departed: false,
                last_seen_ms: now_ms,
                classic: Some(seed.classic),
            };
            group.members.insert(seed.id, member);
        }
        group.changes += 1;
        group
    }

    /// True when members remain and every one speaks the classic
    /// protocol: the group goes back to being a classic group.
    pub fn only_classic_members(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(|m| m.classic.is_some())
    }

    /// The members as a classic group takes them back.
    pub fn classic_seeds(&self) -> Vec<Seed> {
        self.members
            .values()
            .filter_map(|m| {
                Some(Seed {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    classic: m.classic.clone()?,
                    subscribed: m.subscribed.clone(),
                    assigned: m.assigned.clone(),
                })
            })
            .collect()
    }

    /// A classic member's JoinGroup: joins it (or updates its subscription)
    /// and moves it towards its target. The answer's epoch is the
    /// generation its SyncGroup and Heartbeats must carry.
    pub fn classic_join(
        &mut self,
        join: ClassicJoin,
        topics: &BTreeMap<String, TopicShape>,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<Answer, HeartbeatError> {
        if let Some(instance) = &join.instance_id {
            // A classic static member that joins under a new member id
            // (its process restarted) replaces the one holding its
            // instance id, as a classic group does.
            let holder = self.members.values_mut().find(|m| {
                m.instance_id.as_deref() == Some(instance.as_str()) && m.id != join.member_id
            });
            if let Some(holder) = holder {
                holder.departed = true;
            }
        }
        let epoch = self
            .members
            .get(&join.member_id)
            .filter(|m| !m.departed)
            .map_or(JOINING_EPOCH, |m| m.epoch);
        let beat = Heartbeat {
            member_id: join.member_id.clone(),
            member_epoch: epoch,
            instance_id: join.instance_id.clone(),
            rebalance_timeout_ms: join.rebalance_timeout_ms,
            subscribed: Some(join.subscribed.clone()),
            names: join.subscribed,
            regex: None,
            assignor: None,
            owned: Some(join.owned),
            client_id: join.client_id,
            client_host: join.client_host,
        };
        let answer = self.heartbeat(beat, topics, limits, now_ms)?;
        let member = self
            .members
            .get_mut(&answer.member_id)
            .expect("a member after its heartbeat");
        let deadline = now_ms.saturating_add(i64::from(member.rebalance_timeout_ms));
        member.classic = Some(ClassicMember {
            session_timeout_ms: join.session_timeout_ms,
            protocols: join.protocols,
            deadline_ms: Some(deadline),
        });
        self.changes += 1;
        Ok(answer)
    }

    /// A classic member's SyncGroup: its assignment at `generation`.
    pub fn classic_sync(
        &mut self,
        member_id: &str,
        generation: i32,
        now_ms: i64,
    ) -> Result<(Assignment, &ClassicMember), ResponseError> {
        let member = self.classic_member(member_id, generation)?;
        member.last_seen_ms = now_ms;
        let classic = member.classic.as_mut().expect("a classic member");
        classic.deadline_ms = None;
        Ok((member.assigned.clone(), classic))
    }

    /// A classic member's Heartbeat: REBALANCE_IN_PROGRESS while it must
    /// join again to catch up (and by when it must).
    pub fn classic_heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        let behind = self.classic_member(member_id, generation)?.epoch < self.epoch;
        let must_rejoin = behind || self.has_work_for(member_id);
        let member = self.members.get_mut(member_id).expect("checked above");
        member.last_seen_ms = now_ms;
        if !must_rejoin {
            return Ok(());
        }
        let deadline = now_ms.saturating_add(i64::from(member.rebalance_timeout_ms));
        let classic = member.classic.as_mut().expect("a classic member");
        classic.deadline_ms.get_or_insert(deadline);
        Err(ResponseError::RebalanceInProgress)
    }

    /// A classic member's LeaveGroup, by member id or by instance id
    /// (which a static member leaves under).
    pub fn classic_leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let holder = match instance_id {
            Some(instance) => self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(instance)),
            None => self.members.get(member_id),
        };
        let holder = holder
            .filter(|m| m.classic.is_some())
            .ok_or(ResponseError::UnknownMemberId)?;
        if !member_id.is_empty() && holder.id != member_id {
            return Err(ResponseError::FencedInstanceId);
        }
        let id = holder.id.clone();
        self.leave(&id, LEAVING_EPOCH);
        Ok(())
    }

    /// The live classic member `member_id` at `generation`.
    fn classic_member(
        &mut self,
        member_id: &str,
        generation: i32,
    ) -> Result<&mut Member, ResponseError> {
        let member = self
            .members
            .get_mut(member_id)
            .filter(|m| m.classic.is_some() && !m.departed)
            .ok_or(ResponseError::UnknownMemberId)?;
        if generation != member.epoch {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(member)
    }

    /// Whether the member must give partitions up, or may take partitions
    /// of its target that nobody owns any more: both need a join.
    fn has_work_for(&self, member_id: &str) -> bool {
        let member = &self.members[member_id];
        if !member.revoking.is_empty() {
            return true;
        }
        let Some(target) = self.target.get(member_id) else {
            return false;
        };
        let missing = difference(target, &member.assigned);
        if missing.is_empty() {
            return false;
        }
        let owned_elsewhere: BTreeSet<_> = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(Member::owns)
            .collect();
        missing
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            .any(|tp| !owned_elsewhere.contains(&tp))
    }
}

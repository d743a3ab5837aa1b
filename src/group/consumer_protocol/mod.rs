//! The consumer group protocol (KIP-848; `group.protocol=consumer` in
//! librdkafka and the Java client): members only heartbeat
//! (ConsumerGroupHeartbeat), the coordinator assigns the partitions and
//! hands each member its share, one step at a time, so no partition is
//! ever owned by two members.
//!
//! The group has an epoch, bumped by every change of membership or
//! subscription; a new epoch gets a new target assignment (`assignor`).
//! Each member then reconciles towards its target: first it gives up what
//! the target takes away (the coordinator answers its assignment without
//! them and waits until a heartbeat no longer lists them as owned), then it
//! takes the new partitions that no other member still owns, and its
//! member epoch becomes the target's. A member that does not give up its
//! partitions within its rebalance timeout, or is silent for the session
//! timeout, is removed, and its partitions go to the others.
//!
//! Everything here is pure and synchronous, on the coordinator shard. The
//! coordinator writes what changed of the group to `__consumer_offsets`
//! (`record`, `written`) after every heartbeat that changed it and before
//! answering, so a coordinator
//! that takes the group over (a moved leadership, a restart) goes on from
//! it: members keep their ids, epochs and partitions.

pub mod assignor;
pub mod classic;
pub mod record;

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use uuid::Uuid;

pub use assignor::TopicShape;

use super::written::{Touched, Touches};

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Kafka's member epochs with a meaning of their own.
pub const JOINING_EPOCH: i32 = 0;
pub const LEAVING_EPOCH: i32 = -1;
pub const LEAVING_STATIC_EPOCH: i32 = -2;

/// Why a heartbeat was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("member {0:?} is not in the group")]
    UnknownMember(String),
    #[error("member epoch {given} is not the member's {current}")]
    Fenced { given: i32, current: i32 },
    #[error("the group has {0} members, its most")]
    Full(usize),
    #[error("assignor {0:?} is not served: uniform or range")]
    UnsupportedAssignor(String),
    #[error("instance id {0:?} is held by a member that has not left")]
    UnreleasedInstance(String),
}

impl HeartbeatError {
    pub fn code(&self) -> i16 {
        match self {
            HeartbeatError::Invalid(_) => ResponseError::InvalidRequest,
            HeartbeatError::UnknownMember(_) => ResponseError::UnknownMemberId,
            HeartbeatError::Fenced { .. } => ResponseError::FencedMemberEpoch,
            HeartbeatError::Full(_) => ResponseError::GroupMaxSizeReached,
            HeartbeatError::UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
            HeartbeatError::UnreleasedInstance(_) => ResponseError::UnreleasedInstanceId,
        }
        .code()
    }
}

/// One heartbeat, as the coordinator needs it.
#[derive(Clone, Debug, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// The topics subscribed to, by name and by the regex's matches;
    /// `None`: unchanged since the last heartbeat.
    pub subscribed: Option<BTreeSet<String>>,
    /// The subscription as asked: the names, and the regex (KIP-848 v1),
    /// kept so that the matches can be found again as topics come and go.
    pub names: BTreeSet<String>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    /// The partitions the member owns now; `None`: unchanged.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// What the member is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub member_id: String,
    pub member_epoch: i32,
    /// Its assignment, when it changed since the last one it was told.
    pub assignment: Option<Assignment>,
}

#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    /// The epoch before the last bump: a heartbeat at it is a retry whose
    /// answer was lost, not a fenced member.
    pub previous_epoch: i32,
    pub rebalance_timeout_ms: i32,
    /// Every topic it subscribes to: `names` and the matches of `regex`.
    pub subscribed: BTreeSet<String>,
    pub names: BTreeSet<String>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    /// What it may consume now.
    pub assigned: Assignment,
    /// What it must give up, still its own until a heartbeat shows it gone.
    pub revoking: Assignment,
    /// It must have given up `revoking` by then (ms).
    pub revoke_deadline_ms: Option<i64>,
    /// The assignment it was last told.
    pub told: Option<Assignment>,
    /// A static member that left for a while (epoch -2): it keeps what it
    /// owns for whoever joins under its instance id.
    pub departed: bool,
    pub last_seen_ms: i64,
    /// A member that speaks the classic protocol (JoinGroup, SyncGroup,
    /// Heartbeat) in a group moving between protocols (`classic`).
    pub classic: Option<classic::ClassicMember>,
}

impl Member {
    fn owns(&self) -> impl Iterator<Item = (Uuid, i32)> + '_ {
        let pairs = |a: &'_ Assignment| {
            a.iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
                .collect::<Vec<_>>()
        };
        pairs(&self.assigned)
            .into_iter()
            .chain(pairs(&self.revoking))
    }
}

/// A consumer protocol group's membership.
#[derive(Clone, Debug, Default)]
pub struct ConsumerGroup {
    /// Bumped by every membership or subscription change.
    pub epoch: i32,
    /// The epoch `target` was computed at.
    pub target_epoch: i32,
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics `target` was computed from: one created,
    /// deleted or grown since makes a new epoch.
    pub shapes: BTreeMap<String, TopicShape>,
    /// The assignor `target` came from.
    pub assignor: &'static str,
    pub members: BTreeMap<String, Member>,
    /// Bumped by every change a coordinator taking the group over must
    /// know (`record`): the caller writes the group again when it moved.
    pub changes: u64,
    /// The members heartbeats changed since the group was last written.
    touches: Touches,
}

/// The bounds a coordinator puts on its groups.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_size: usize,
    pub session_timeout_ms: i64,
}

impl ConsumerGroup {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kafka's consumer group states, as ListGroups names them.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.target_epoch < self.epoch {
            "Assigning"
        } else if self.members.values().any(|m| m.epoch != self.target_epoch) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Which members changed since the last call, which is taken as the
    /// group being written: only the members heartbeats named, if nothing
    /// else changed the group (a new epoch, an expiry, a classic member).
    pub fn take_touched(&mut self) -> Touched {
        self.touches.take(self.changes)
    }

    /// One heartbeat. `topics` are the topics that exist now, by name.
    pub fn heartbeat(
        &mut self,
        beat: Heartbeat,
        topics: &BTreeMap<String, TopicShape>,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<Answer, HeartbeatError> {
        let (changes, epochs) = (self.changes, (self.epoch, self.target_epoch));
        let member_id = beat.member_id.clone();
        let answered = self.take(beat, topics, limits, now_ms);
        // Taking a departed static member's place also changes that
        // member: `take_over` names it.
        let same_epochs = epochs == (self.epoch, self.target_epoch);
        (self.touches).heartbeat(member_id, (changes, self.changes), same_epochs);
        answered
    }

    fn take(
        &mut self,
        beat: Heartbeat,
        topics: &BTreeMap<String, TopicShape>,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<Answer, HeartbeatError> {
        if let Some(name) = beat.assignor.as_deref() {
            if name != assignor::UNIFORM && name != assignor::RANGE {
                return Err(HeartbeatError::UnsupportedAssignor(name.to_string()));
            }
        }
        if beat.member_id.is_empty() {
            return Err(HeartbeatError::Invalid("a member id is needed"));
        }
        if beat.member_epoch == LEAVING_EPOCH || beat.member_epoch == LEAVING_STATIC_EPOCH {
            return Ok(self.leave(&beat.member_id, beat.member_epoch));
        }
        if beat.member_epoch == JOINING_EPOCH {
            self.join(&beat, limits, now_ms)?;
        }
        let member = self
            .members
            .get_mut(&beat.member_id)
            .filter(|m| !m.departed)
            .ok_or_else(|| HeartbeatError::UnknownMember(beat.member_id.clone()))?;
        let retry = beat.member_epoch == member.previous_epoch
            && beat
                .owned
                .as_ref()
                .is_some_and(|o| within(o, &member.assigned));
        let joined = beat.member_epoch == JOINING_EPOCH;
        if beat.member_epoch != member.epoch && !retry && !joined {
            return Err(HeartbeatError::Fenced {
                given: beat.member_epoch,
                current: member.epoch,
            });
        }
        member.last_seen_ms = now_ms;
        // What a coordinator taking the group over must know moves
        // `changes`; the rest (when it was heard) does not.
        let mut recorded = false;
        if beat.rebalance_timeout_ms > 0 && beat.rebalance_timeout_ms != member.rebalance_timeout_ms
        {
            member.rebalance_timeout_ms = beat.rebalance_timeout_ms;
            recorded = true;
        }
        if let Some(owned) = &beat.owned {
            if !member.revoking.is_empty() && disjoint(owned, &member.revoking) {
                member.revoking.clear();
                member.revoke_deadline_ms = None;
                recorded = true;
            }
        }
        if beat.names != member.names || beat.regex != member.regex {
            member.names = beat.names;
            member.regex = beat.regex;
            recorded = true;
        }
        if recorded {
            self.changes += 1;
        }
        let member = self
            .members
            .get_mut(&beat.member_id)
            .expect("looked up above");
        let mut changed = false;
        if let Some(subscribed) = beat.subscribed {
            if subscribed != member.subscribed {
                member.subscribed = subscribed;
                changed = true;
            }
        }
        if beat.assignor.is_some() && beat.assignor != member.assignor {
            member.assignor = beat.assignor;
            changed = true;
        }
        // One new epoch for whatever changed (a join bumped it already).
        let retargeted = self.target_epoch == self.epoch;
        if (changed || topics != &self.shapes) && retargeted {
            self.bump();
        }
        self.retarget(topics);
        self.reconcile(&beat.member_id, now_ms);
        let member = self.members.get_mut(&beat.member_id).expect("reconciled");
        let joining = beat.member_epoch == JOINING_EPOCH;
        // A member that owns other than it was given lost an answer, or is
        // still giving some up: it is told again.
        let owns_other = beat.owned.as_ref().is_some_and(|o| *o != member.assigned);
        let tell = joining || owns_other || member.told.as_ref() != Some(&member.assigned);
        let assignment = tell.then(|| member.assigned.clone());
        if assignment.is_some() {
            member.told = assignment.clone();
        }
        Ok(Answer {
            member_id: member.id.clone(),
            member_epoch: member.epoch,
            assignment,
        })
    }

    fn join(
        &mut self,
        beat: &Heartbeat,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<(), HeartbeatError> {
        let Some(subscribed) = beat.subscribed.clone() else {
            return Err(HeartbeatError::Invalid(
                "a joining member names its subscription",
            ));
        };
        if beat.rebalance_timeout_ms <= 0 {
            return Err(HeartbeatError::Invalid(
                "the rebalance timeout must be positive",
            ));
        }
        if let Some(instance) = &beat.instance_id {
            if self.take_over(instance, beat, now_ms)? {
                return Ok(());
            }
        }
        // A member joining again under its id starts afresh: what it owned
        // went when it lost its epoch.
        let known = self.members.remove(&beat.member_id).is_some();
        if !known && self.members.len() >= limits.max_size {
            return Err(HeartbeatError::Full(limits.max_size));
        }
        self.members.insert(
            beat.member_id.clone(),
            Member {
                id: beat.member_id.clone(),
                instance_id: beat.instance_id.clone(),
                client_id: beat.client_id.clone(),
                client_host: beat.client_host.clone(),
                epoch: JOINING_EPOCH,
                previous_epoch: JOINING_EPOCH,
                rebalance_timeout_ms: beat.rebalance_timeout_ms,
                subscribed,
                names: beat.names.clone(),
                regex: beat.regex.clone(),
                assignor: beat.assignor.clone(),
                assigned: Assignment::new(),
                revoking: Assignment::new(),
                revoke_deadline_ms: None,
                told: None,
                departed: false,
                last_seen_ms: now_ms,
                classic: None,
            },
        );
        self.bump();
        Ok(())
    }

    /// A static member (KIP-345) joining under the instance id of one that
    /// left for a while (epoch -2) takes its place: its epoch, what it owns
    /// and its target, with no new group epoch, so nothing moves. True if
    /// it did; UNRELEASED_INSTANCE_ID while that member has not left.
    fn take_over(
        &mut self,
        instance: &str,
        beat: &Heartbeat,
        now_ms: i64,
    ) -> Result<bool, HeartbeatError> {
        let holder = self
            .members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance) && m.id != beat.member_id);
        let Some(holder) = holder else {
            return Ok(false);
        };
        if !holder.departed {
            return Err(HeartbeatError::UnreleasedInstance(instance.to_string()));
        }
        let old_id = holder.id.clone();
        let mut member = self.members.remove(&old_id).expect("found above");
        member.id = beat.member_id.clone();
        member.departed = false;
        member.told = None;
        member.client_id = beat.client_id.clone();
        member.client_host = beat.client_host.clone();
        member.last_seen_ms = now_ms;
        if let Some(target) = self.target.remove(&old_id) {
            self.target.insert(beat.member_id.clone(), target);
        }
        self.members.insert(beat.member_id.clone(), member);
        self.touches.also(old_id);
        self.changes += 1;
        Ok(true)
    }

    fn leave(&mut self, member_id: &str, epoch: i32) -> Answer {
        let stays = epoch == LEAVING_STATIC_EPOCH
            && self
                .members
                .get(member_id)
                .is_some_and(|m| m.instance_id.is_some());
        if stays {
            // A static member away for a restart keeps what it owns until
            // it is back or its session times out.
            let member = self.members.get_mut(member_id).expect("checked");
            member.departed = true;
            self.changes += 1;
        } else if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.bump();
        }
        Answer {
            member_id: member_id.to_string(),
            member_epoch: epoch,
            assignment: None,
        }
    }

    fn bump(&mut self) {
        self.epoch = self.epoch.checked_add(1).unwrap_or(1);
        self.changes += 1;
    }

    /// A new target for a new group epoch.
    fn retarget(&mut self, topics: &BTreeMap<String, TopicShape>) {
        if self.target_epoch == self.epoch {
            return;
        }
        // The group's assignor: what its members ask for, range only if
        // every member that names one names range.
        let range = self
            .members
            .values()
            .filter_map(|m| m.assignor.as_deref())
            .all(|a| a == assignor::RANGE)
            && self.members.values().any(|m| m.assignor.is_some());
        let name = if range {
            assignor::RANGE
        } else {
            assignor::UNIFORM
        };
        let input = assignor::AssignInput {
            subscriptions: self
                .members
                .iter()
                .map(|(id, m)| (id.as_str(), &m.subscribed))
                .collect(),
            topics,
            previous: &self.target,
        };
        self.target = assignor::assign(name, &input);
        self.assignor = name;
        self.target_epoch = self.epoch;
        self.shapes = topics.clone();
    }

    /// Moves member `id` one step towards its target: first what it must
    /// give up, then, once it has, what no one else still owns.
    fn reconcile(&mut self, id: &str, now_ms: i64) {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let target_epoch = self.target_epoch;
        let member = self.members.get_mut(id).expect("a member");
        if !member.revoking.is_empty() {
            return;
        }
        let taken_away = difference(&member.assigned, &target);
        if !taken_away.is_empty() {
            member.assigned = intersect(&member.assigned, &target);
            member.revoking = taken_away;
            let timeout = i64::from(member.rebalance_timeout_ms);
            member.revoke_deadline_ms = Some(now_ms.saturating_add(timeout));
            self.changes += 1;
            return;
        }
        if member.epoch != target_epoch {
            member.previous_epoch = member.epoch;
            member.epoch = target_epoch;
            self.changes += 1;
        }
        // What the target adds, once no other member owns it. Looked for
        // only while something is missing: a stable member's heartbeat
        // costs its own partitions, not the group's.
        let missing = difference(&target, &member.assigned);
        if missing.is_empty() {
            return;
        }
        let owned_elsewhere: BTreeSet<(Uuid, i32)> = self
            .members
            .values()
            .filter(|m| m.id != id)
            .flat_map(Member::owns)
            .collect();
        let member = self.members.get_mut(id).expect("a member");
        for (topic, partitions) in missing {
            for p in partitions {
                if !owned_elsewhere.contains(&(topic, p)) {
                    member.assigned.entry(topic).or_default().insert(p);
                    self.changes += 1;
                }
            }
        }
    }

    /// Removes members silent for the session timeout or late giving up
    /// their partitions; true if any went.
    pub fn expire(&mut self, limits: &Limits, now_ms: i64) -> bool {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                let session = m.classic.as_ref().map_or(limits.session_timeout_ms, |c| {
                    i64::from(c.session_timeout_ms)
                });
                let silent = now_ms.saturating_sub(m.last_seen_ms) > session;
                let late = m.revoke_deadline_ms.is_some_and(|d| now_ms > d)
                    || m.classic.as_ref().is_some_and(|c| c.late(now_ms));
                silent || late
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            tracing::info!(member = %id, "consumer group member removed: silent or late revoking");
            self.leave(id, LEAVING_EPOCH);
        }
        !gone.is_empty()
    }

    /// An offset commit's check for a member of this group (Kafka's
    /// STALE_MEMBER_EPOCH for an older epoch, FENCED_MEMBER_EPOCH for a
    /// newer one); 0 when it may commit.
    pub fn check_commit(&mut self, member_id: &str, epoch: i32, now_ms: i64) -> i16 {
        if member_id.is_empty() && epoch < 0 {
            // A commit from outside the group (an admin tool, a consumer
            // that assigns itself): only while no member owns anything.
            return if self.members.is_empty() {
                0
            } else {
                ResponseError::UnknownMemberId.code()
            };
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if member.classic.is_some() && epoch != member.epoch {
            // A classic member commits under its generation: the member epoch.
            return ResponseError::IllegalGeneration.code();
        }
        if epoch < member.epoch {
            return ResponseError::StaleMemberEpoch.code();
        }
        if epoch > member.epoch {
            return ResponseError::FencedMemberEpoch.code();
        }
        member.last_seen_ms = now_ms;
        0
    }
}

fn within(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| b.get(t).is_some_and(|bs| ps.is_subset(bs)) || ps.is_empty())
}

fn disjoint(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| b.get(t).is_none_or(|bs| ps.is_disjoint(bs)))
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter()
        .filter_map(|(t, ps)| {
            let common: BTreeSet<i32> = ps.intersection(b.get(t)?).copied().collect();
            (!common.is_empty()).then_some((*t, common))
        })
        .collect()
}

fn difference(a: &Assignment, b: &Assignment) -> Assignment {
    a.iter()
        .filter_map(|(t, ps)| {
            let rest: BTreeSet<i32> = match b.get(t) {
                Some(bs) => ps.difference(bs).copied().collect(),
                None => ps.clone(),
            };
            (!rest.is_empty()).then_some((*t, rest))
        })
        .collect()
}

#[cfg(test)]
mod tests;

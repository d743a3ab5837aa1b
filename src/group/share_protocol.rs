//! Share groups' membership (KIP-932, Kafka's "queues"): members only
//! heartbeat (ShareGroupHeartbeat), and the coordinator hands each a set
//! of partitions to fetch from. Unlike a consumer group, a partition may be
//! assigned to several members at once (its records are shared out by the
//! partition's leader, in the share service), so an assignment changes at once,
//! with no revocation step: a member's epoch is the group's after every
//! heartbeat.
//!
//! Every change of membership or subscription bumps the group epoch and
//! computes a new assignment (Kafka's `simple` assignor: every subscribed
//! partition to at least one member, members spread over partitions).
//! Pure and synchronous, on the coordinator shard. The coordinator writes
//! what changed of the membership to `__consumer_offsets`
//! (`share_record`) before answering, so a coordinator taking the group
//! over answers its members at their epochs, with their partitions.

use std::collections::{BTreeMap, BTreeSet};

use super::consumer_protocol::{
    Assignment, HeartbeatError as ShareError, TopicShape, JOINING_EPOCH, LEAVING_EPOCH,
};
use super::written::{Touched, Touches};

/// One heartbeat, as the group needs it.
#[derive(Clone, Debug, Default)]
pub struct ShareBeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed: Option<BTreeSet<String>>,
    pub client_id: String,
    pub client_host: String,
}

pub struct ShareMember {
    pub id: String,
    pub epoch: i32,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: BTreeSet<String>,
    pub assignment: Assignment,
    pub last_seen_ms: i64,
}

/// The answer to a heartbeat taken.
#[derive(Debug, PartialEq, Eq)]
pub struct ShareAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's partitions, when they are new to it (its join, or a
    /// new assignment since its last heartbeat).
    pub assignment: Option<Assignment>,
}

#[derive(Default)]
pub struct ShareGroup {
    /// Bumped by every change of membership, subscription or topic shape.
    pub epoch: i32,
    pub members: BTreeMap<String, ShareMember>,
    /// The topic shapes the current assignment was made for.
    pub(super) shapes: BTreeMap<String, TopicShape>,
    /// Bumped by every change a coordinator taking the group over must
    /// know (`share_record`): the caller writes the group when it moved.
    pub changes: u64,
    /// The members heartbeats changed since the group was last written.
    touches: Touches,
}

/// The most a group holds, and how long a silent member stays.
#[derive(Clone, Copy, Debug)]
pub struct ShareLimits {
    pub max_size: usize,
    pub session_timeout_ms: i64,
}

impl ShareGroup {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The state DescribeGroups and ListGroups name.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Every topic a member subscribes to.
    pub fn subscribed(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// Which members changed since the last call, which is taken as the
    /// group being written: only the members heartbeats named, if nothing
    /// else changed the group (a new epoch, an expiry).
    pub fn take_touched(&mut self) -> Touched {
        self.touches.take(self.changes)
    }

    /// Takes one heartbeat. `topics` are the shapes of every topic a member
    /// (or this heartbeat) subscribes to, as they exist now.
    pub fn heartbeat(
        &mut self,
        beat: ShareBeat,
        topics: &BTreeMap<String, TopicShape>,
        limits: &ShareLimits,
        now_ms: i64,
    ) -> Result<ShareAnswer, ShareError> {
        let (changes, epoch) = (self.changes, self.epoch);
        let member_id = beat.member_id.clone();
        let answered = self.take(beat, topics, limits, now_ms);
        (self.touches).heartbeat(member_id, (changes, self.changes), epoch == self.epoch);
        answered
    }

    fn take(
        &mut self,
        beat: ShareBeat,
        topics: &BTreeMap<String, TopicShape>,
        limits: &ShareLimits,
        now_ms: i64,
    ) -> Result<ShareAnswer, ShareError> {
        if beat.member_id.is_empty() {
            return Err(ShareError::Invalid("a member brings its own member id"));
        }
        if beat.member_epoch == LEAVING_EPOCH {
            if self.members.remove(&beat.member_id).is_some() {
                self.reassign(topics);
            }
            return Ok(ShareAnswer {
                member_id: beat.member_id,
                member_epoch: LEAVING_EPOCH,
                assignment: None,
            });
        }
        let known = self.members.contains_key(&beat.member_id);
        if beat.member_epoch == JOINING_EPOCH && !known {
            let Some(subscribed) = beat.subscribed.clone() else {
                return Err(ShareError::Invalid("a joining member names its topics"));
            };
            if self.members.len() >= limits.max_size {
                return Err(ShareError::Full(self.members.len()));
            }
            let member = ShareMember {
                id: beat.member_id.clone(),
                epoch: 0,
                rack_id: beat.rack_id.clone(),
                client_id: beat.client_id.clone(),
                client_host: beat.client_host.clone(),
                subscribed,
                assignment: Assignment::new(),
                last_seen_ms: now_ms,
            };
            self.members.insert(beat.member_id.clone(), member);
            self.reassign(topics);
        } else {
            let member = self
                .members
                .get_mut(&beat.member_id)
                .ok_or_else(|| ShareError::UnknownMember(beat.member_id.clone()))?;
            // A member that rejoins with epoch 0 (after an error of its
            // own) is taken back as it is.
            if beat.member_epoch != JOINING_EPOCH && beat.member_epoch != member.epoch {
                return Err(ShareError::Fenced {
                    given: beat.member_epoch,
                    current: member.epoch,
                });
            }
            member.last_seen_ms = now_ms;
            if beat.rack_id.is_some() && beat.rack_id != member.rack_id {
                member.rack_id = beat.rack_id.clone();
                self.changes += 1;
            }
            let resubscribed = beat
                .subscribed
                .as_ref()
                .is_some_and(|s| *s != member.subscribed);
            if let Some(subscribed) = beat.subscribed.clone() {
                member.subscribed = subscribed;
            }
            if resubscribed || self.shapes != shapes_of(&self.subscribed(), topics) {
                self.reassign(topics);
            }
        }
        let member = self.members.get_mut(&beat.member_id).expect("a member now");
        member.last_seen_ms = now_ms;
        let fresh = member.epoch != self.epoch || beat.member_epoch == JOINING_EPOCH;
        if member.epoch != self.epoch {
            member.epoch = self.epoch;
            self.changes += 1;
        }
        Ok(ShareAnswer {
            member_id: member.id.clone(),
            member_epoch: member.epoch,
            assignment: fresh.then(|| member.assignment.clone()),
        })
    }

    /// Removes the members silent past the session timeout; whether any
    /// went (the others get a new assignment at their next heartbeat).
    pub fn expire(&mut self, limits: &ShareLimits, now_ms: i64) -> bool {
        let before = self.members.len();
        self.members
            .retain(|_, m| now_ms.saturating_sub(m.last_seen_ms) <= limits.session_timeout_ms);
        let gone = self.members.len() != before;
        if gone {
            let shapes = self.shapes.clone();
            self.reassign(&shapes);
        }
        gone
    }

    /// A new epoch and assignment for the members and topics as they are.
    fn reassign(&mut self, topics: &BTreeMap<String, TopicShape>) {
        self.epoch += 1;
        self.changes += 1;
        self.shapes = shapes_of(&self.subscribed(), topics);
        let assignments = assign(&self.members, &self.shapes);
        for (id, member) in &mut self.members {
            member.assignment = assignments.get(id).cloned().unwrap_or_default();
        }
    }
}

/// The shapes of the subscribed topics that exist.
fn shapes_of(
    subscribed: &BTreeSet<String>,
    topics: &BTreeMap<String, TopicShape>,
) -> BTreeMap<String, TopicShape> {
    subscribed
        .iter()
        .filter_map(|name| Some((name.clone(), *topics.get(name)?)))
        .collect()
}

/// Kafka's simple share assignor, topic by topic: with no more members
/// than partitions each partition goes to one of the topic's subscribers,
/// dealt round; with more, each subscriber gets one partition, dealt
/// round, so every partition has members and every member a partition.
/// Where each topic's deal starts rotates, so small topics do not all land
/// on the first members.
fn assign(
    members: &BTreeMap<String, ShareMember>,
    shapes: &BTreeMap<String, TopicShape>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    let mut rotation = 0usize;
    for (name, shape) in shapes {
        let subscribers: Vec<&String> = members
            .values()
            .filter(|m| m.subscribed.contains(name))
            .map(|m| &m.id)
            .collect();
        let partitions = usize::try_from(shape.partitions).unwrap_or(0);
        if subscribers.is_empty() || partitions == 0 {
            continue;
        }
        let mut give = |member: &String, partition: usize| {
            out.entry(member.clone())
                .or_default()
                .entry(shape.id)
                .or_default()
                .insert(partition as i32);
        };
        if subscribers.len() <= partitions {
            for p in 0..partitions {
                give(subscribers[(p + rotation) % subscribers.len()], p);
            }
        } else {
            for (i, member) in subscribers.iter().enumerate() {
                give(member, (i + rotation) % partitions);
            }
        }
        rotation += partitions;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const LIMITS: ShareLimits = ShareLimits {
        max_size: 3,
        session_timeout_ms: 100,
    };

    fn topics(partitions: i32) -> BTreeMap<String, TopicShape> {
        let shape = TopicShape {
            id: Uuid::from_u128(7),
            partitions,
        };
        BTreeMap::from([("t".to_string(), shape)])
    }

    fn join(id: &str) -> ShareBeat {
        ShareBeat {
            member_id: id.into(),
            member_epoch: JOINING_EPOCH,
            subscribed: Some(BTreeSet::from(["t".to_string()])),
            ..ShareBeat::default()
        }
    }

    fn beat(id: &str, epoch: i32) -> ShareBeat {
        ShareBeat {
            member_id: id.into(),
            member_epoch: epoch,
            ..ShareBeat::default()
        }
    }

    fn partitions(a: &Option<Assignment>) -> Vec<i32> {
        a.as_ref()
            .expect("an assignment")
            .values()
            .flatten()
            .copied()
            .collect()
    }

    #[test]
    fn members_split_partitions_and_share_them_when_they_outnumber_them() {
        let mut g = ShareGroup::default();
        let t = topics(2);
        let a = g.heartbeat(join("a"), &t, &LIMITS, 0).expect("joins");
        assert_eq!((a.member_epoch, partitions(&a.assignment)), (1, vec![0, 1]));
        let b = g.heartbeat(join("b"), &t, &LIMITS, 0).expect("joins");
        assert_eq!(b.member_epoch, 2);
        // a learns of the new epoch and its smaller share at once.
        let a = g.heartbeat(beat("a", 1), &t, &LIMITS, 0).expect("beats");
        assert_eq!(a.member_epoch, 2);
        let (pa, pb) = (partitions(&a.assignment), partitions(&b.assignment));
        assert_eq!((pa.len(), pb.len()), (1, 1));
        assert_ne!(pa, pb);
        // Unchanged: no assignment sent.
        let again = g.heartbeat(beat("a", 2), &t, &LIMITS, 0).expect("beats");
        assert_eq!(again.assignment, None);
        // A third member shares a partition with one of the others.
        let c = g.heartbeat(join("c"), &t, &LIMITS, 0).expect("joins");
        assert_eq!(partitions(&c.assignment).len(), 1);
        let full = g.heartbeat(join("d"), &t, &LIMITS, 0);
        assert_eq!(full, Err(ShareError::Full(3)));
    }

    #[test]
    fn stale_epochs_unknown_members_leaving_and_expiry() {
        let mut g = ShareGroup::default();
        let t = topics(4);
        g.heartbeat(join("a"), &t, &LIMITS, 0).expect("joins");
        g.heartbeat(join("b"), &t, &LIMITS, 0).expect("joins");
        assert_eq!(
            g.heartbeat(beat("a", 1), &t, &LIMITS, 0)
                .map(|a| a.member_epoch),
            Ok(2)
        );
        assert!(matches!(
            g.heartbeat(beat("a", 1), &t, &LIMITS, 0),
            Err(ShareError::Fenced {
                given: 1,
                current: 2
            })
        ));
        assert!(matches!(
            g.heartbeat(beat("x", 3), &t, &LIMITS, 0),
            Err(ShareError::UnknownMember(_))
        ));
        let left = g.heartbeat(beat("b", LEAVING_EPOCH), &t, &LIMITS, 0);
        assert_eq!(left.map(|l| l.member_epoch), Ok(LEAVING_EPOCH));
        let a = g.heartbeat(beat("a", 2), &t, &LIMITS, 50).expect("beats");
        assert_eq!(partitions(&a.assignment), vec![0, 1, 2, 3]);
        assert!(!g.expire(&LIMITS, 150));
        assert!(g.expire(&LIMITS, 151));
        assert!(g.is_empty());
        assert_eq!(g.state(), "Empty");
    }

    #[test]
    fn new_partitions_of_a_topic_are_assigned_at_the_next_heartbeat() {
        let mut g = ShareGroup::default();
        g.heartbeat(join("a"), &topics(1), &LIMITS, 0)
            .expect("joins");
        let a = g
            .heartbeat(beat("a", 1), &topics(3), &LIMITS, 0)
            .expect("beats");
        assert_eq!(
            (a.member_epoch, partitions(&a.assignment)),
            (2, vec![0, 1, 2])
        );
    }
}

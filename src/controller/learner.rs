//! Learners: the controllers of nodes not in the voter list (Kafka's
//! broker-only nodes).
//!
//! A learner runs the same controller as a voter but never initializes a
//! membership, never votes and never leads. At every start it asks the
//! active controller (`Request::AddLearner`, through any voter) to add it
//! to the membership as an openraft learner at the address its listener
//! is reachable on; from then on the leader replicates the metadata log to
//! it like to any follower, and it applies the log to its own image. Its
//! proposals and heartbeats go to the active controller as a non-leader
//! voter's do.
//!
//! Learners are added, or their address set anew, and removed once their
//! broker is unregistered (UnregisterBroker, for a node decommissioned for
//! good); voters change in `voter_change`. A node that started as a
//! learner and was made a voter still joins at each start, which then only
//! sets its address anew if it moved. A learner gone but not removed
//! costs the leader one dial at a time, at most every
//! `LEARNER_BACKOFF_MAX` (`peers`), and no commit waits for it: learners
//! are in no quorum.
//!
//! A restart at the same address adds nothing. If the leader's log moved
//! on meanwhile, though, its stream to the learner may sit in that long
//! backoff, which openraft cannot cut short; the leader then writes the
//! learner's entry again (same address), which rebuilds the replication
//! streams, so the restarted node catches up at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, RaftMetrics};

use super::driver::{leader_of, Core};
use super::rpc::{Request, Response};
use super::ControllerError;

/// The pause between a learner's attempts to join while the quorum forms
/// or the leader moves (each attempt is bounded by the propose timeout).
pub const JOIN_RETRY_INTERVAL: Duration = Duration::from_millis(200);
/// Most learners (broker-only nodes) a cluster takes: each costs the
/// leader a replication stream until its broker is unregistered.
pub const LEARNERS_MAX: usize = 256;

/// The quorum as one node's membership shows it (no Kafka API lists it:
/// Metadata and DescribeCluster list brokers, and the controller id is
/// always a voter's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quorum {
    pub voters: BTreeSet<i32>,
    /// Each voter's quorum listener as the membership has it.
    pub voter_addrs: BTreeMap<i32, String>,
    /// Each learner and the address the leader replicates to it at.
    pub learners: BTreeMap<i32, String>,
    /// The log index of the membership in force; `None` before any.
    pub membership_index: Option<u64>,
}

pub fn quorum(metrics: &RaftMetrics<u64, BasicNode>) -> Quorum {
    let stored = &metrics.membership_config;
    let membership = stored.membership();
    let addr_of = |id: u64| Some((id as i32, membership.get_node(&id)?.addr.clone()));
    Quorum {
        voters: membership.voter_ids().map(|id| id as i32).collect(),
        voter_addrs: membership.voter_ids().filter_map(addr_of).collect(),
        learners: membership.learner_ids().filter_map(addr_of).collect(),
        membership_index: stored.log_id().map(|l| l.index),
    }
}

/// What the membership needs for learner `id` at `addr`.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// It is there at that address, and the leader's log has reached it.
    None,
    /// It is there at that address, but behind: its stream may be backing
    /// off from while it was down.
    Refresh,
    Add,
    /// It is there at another address (a new port, say).
    Move,
}

/// `behind`: the leader has entries the learner has not matched.
fn change_for(
    quorum: &Quorum,
    id: i32,
    addr: &str,
    behind: bool,
) -> Result<Change, ControllerError> {
    if quorum.voters.contains(&id) {
        // A learner made a voter (`voter_change`), restarted.
        return Ok(match quorum.voter_addrs.get(&id) {
            Some(known) if known != addr => Change::Move,
            _ => Change::None,
        });
    }
    Ok(match quorum.learners.get(&id) {
        Some(known) if known == addr && behind => Change::Refresh,
        Some(known) if known == addr => Change::None,
        Some(_) => Change::Move,
        None if quorum.learners.len() >= LEARNERS_MAX => {
            return Err(ControllerError::Config(format!(
                "node {id} cannot join: the cluster has {LEARNERS_MAX} broker-only nodes already"
            )))
        }
        None => Change::Add,
    })
}

/// On the leader: whether `id`'s replication has not matched the last log
/// entry (`None` sorts before any index).
pub(super) fn behind(metrics: &RaftMetrics<u64, BasicNode>, id: i32) -> bool {
    let matched = metrics
        .replication
        .as_ref()
        .and_then(|r| r.get(&(id as u64)).cloned().flatten())
        .map(|log_id| log_id.index);
    matched < metrics.last_log_index
}

impl Core {
    /// On the active controller: makes learner `id` a member at `addr`,
    /// answered once the membership is committed (or at once if it is
    /// there already).
    pub async fn add_learner_as_leader(
        &self,
        id: i32,
        addr: String,
    ) -> Result<(), ControllerError> {
        if !self.is_leader() {
            return Err(ControllerError::NotLeader {
                leader: self.leader(),
            });
        }
        let raft = self.raft();
        let node = BasicNode::new(addr.clone());
        let change = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            change_for(&quorum(&metrics), id, &addr, behind(&metrics, id))?
        };
        let write = match change {
            Change::None => return Ok(()),
            Change::Add => raft.add_learner(id as u64, node, false).await,
            Change::Move | Change::Refresh => {
                let nodes = BTreeMap::from([(id as u64, node)]);
                raft.change_membership(ChangeMembers::SetNodes(nodes), true)
                    .await
            }
        };
        write.map_err(membership_write_failed)?;
        tracing::info!(learner = id, %addr, ?change, "learner in the membership");
        Ok(())
    }

    /// On the active controller: takes learner `id` out of the membership
    /// once its broker is no longer registered (a registered one may be
    /// running, and would stop hearing the metadata log). Not a learner
    /// (gone already, or a voter): nothing to do.
    pub async fn remove_learner_as_leader(&self, id: i32) -> Result<(), ControllerError> {
        if !self.is_leader() {
            return Err(ControllerError::NotLeader {
                leader: self.leader(),
            });
        }
        if self.image().1.brokers.contains_key(&id) {
            return Err(ControllerError::Config(format!(
                "broker {id} is registered: unregister it before it leaves the quorum"
            )));
        }
        let raft = self.raft();
        let learner = quorum(&raft.metrics().borrow()).learners.contains_key(&id);
        if !learner {
            return Ok(());
        }
        let gone = std::collections::BTreeSet::from([id as u64]);
        raft.change_membership(ChangeMembers::RemoveNodes(gone), false)
            .await
            .map_err(membership_write_failed)?;
        tracing::info!(learner = id, "learner out of the membership");
        Ok(())
    }

    /// Asks the active controller to take learner `id` out.
    pub(super) async fn remove_learner(&self, id: i32) -> Result<(), ControllerError> {
        self.at_leader(
            || self.remove_learner_as_leader(id),
            || Request::RemoveLearner { id },
            |r| match r {
                Response::RemoveLearner(r) => Some(r),
                _ => None,
            },
            self.propose_timeout,
        )
        .await
    }

    /// A learner asks the active controller to add it at `addr`.
    async fn join(&self, addr: &str) -> Result<(), ControllerError> {
        let id = self.node_id;
        self.at_leader(
            || self.add_learner_as_leader(id, addr.to_string()),
            || Request::AddLearner {
                id,
                addr: addr.to_string(),
            },
            |r| match r {
                Response::AddLearner(r) => Some(r),
                _ => None,
            },
            self.propose_timeout,
        )
        .await
    }
}

/// Why a membership change was not written, as the asker sees it.
pub(super) fn membership_write_failed(
    e: RaftError<u64, ClientWriteError<u64, BasicNode>>,
) -> ControllerError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ControllerError::NotLeader {
            leader: f.leader_id.map(|l| l as i32),
        },
        // Another membership change (another learner) is being committed:
        // the asker asks again.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ControllerError::Unavailable(e.to_string())
        }
        e => ControllerError::Raft(e.to_string()),
    }
}

/// A learner's start: until the active controller has it in the
/// membership at `addr` (this node's log may say so already, after a
/// restart; the leader checks again, so a stale log only costs a request).
pub async fn join_loop(core: Arc<Core>, addr: String) {
    loop {
        let asked = tokio::time::timeout(core.propose_timeout, core.join(&addr)).await;
        match asked {
            Ok(Ok(())) => {
                tracing::info!(node = core.node_id, %addr, "in the quorum's membership");
                core.stats.joined.store(true, Ordering::SeqCst);
                return;
            }
            Ok(Err(e @ ControllerError::Config(_))) => {
                // The cluster holds its most learners: asking again
                // cannot help.
                tracing::error!(node = core.node_id, error = %e, "cannot join as a learner");
                return;
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "join not answered yet; retrying"),
            Err(_) => tracing::debug!("join timed out; retrying"),
        }
        tokio::time::sleep(JOIN_RETRY_INTERVAL).await;
    }
}

/// A node that finds itself out of the membership it was in asks to be a
/// learner again at `addr`: the active controller that removed itself
/// from the voters (`voter_change`), which openraft only makes step down
/// out of the membership. A node that has no membership yet waits for it.
pub async fn rejoin_loop(core: Arc<Core>, addr: String) {
    let id = core.node_id;
    let mut metrics = core.raft().metrics();
    loop {
        let out = {
            let m = metrics.borrow_and_update();
            let q = quorum(&m);
            let absent = !q.voters.contains(&id) && !q.learners.contains_key(&id);
            // Still leading: it steps down at a later tick.
            let leading = leader_of(&m) == Some(id);
            q.membership_index.is_some() && absent && !leading
        };
        if out {
            tracing::info!(node = id, %addr, "out of the quorum's membership: joining as a learner");
            join_loop(core.clone(), addr.clone()).await;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quorum_of(voters: &[i32], learners: &[(i32, &str)]) -> Quorum {
        Quorum {
            voters: voters.iter().copied().collect(),
            voter_addrs: voters.iter().map(|id| (*id, format!("h:{id}"))).collect(),
            learners: learners
                .iter()
                .map(|(id, a)| (*id, a.to_string()))
                .collect(),
            membership_index: Some(1),
        }
    }

    #[test]
    fn a_learner_is_added_once_and_moved_when_its_address_changes() {
        let q = quorum_of(&[1, 2, 3], &[(4, "h:4")]);
        assert_eq!(change_for(&q, 4, "h:4", false).unwrap(), Change::None);
        assert_eq!(change_for(&q, 4, "h:4", true).unwrap(), Change::Refresh);
        assert_eq!(change_for(&q, 4, "h:44", false).unwrap(), Change::Move);
        assert_eq!(change_for(&q, 5, "h:5", true).unwrap(), Change::Add);
    }

    #[test]
    fn a_learner_made_a_voter_only_moves() {
        let q = quorum_of(&[1, 2, 3], &[]);
        assert_eq!(change_for(&q, 2, "h:2", true).unwrap(), Change::None);
        assert_eq!(change_for(&q, 2, "h:22", false).unwrap(), Change::Move);
    }

    #[test]
    fn learners_are_bounded_but_known_ones_still_move() {
        let addrs: Vec<(i32, String)> = (0..LEARNERS_MAX as i32)
            .map(|i| (10 + i, format!("h:{i}")))
            .collect();
        let learners: Vec<(i32, &str)> = addrs.iter().map(|(i, a)| (*i, a.as_str())).collect();
        let q = quorum_of(&[1, 2, 3], &learners);
        assert!(matches!(
            change_for(&q, 5, "h:5", false),
            Err(ControllerError::Config(_))
        ));
        assert_eq!(change_for(&q, 10, "h:new", false).unwrap(), Change::Move);
    }
}

//! Changing the voters of a running quorum (KIP-853's AddRaftVoter and
//! RemoveRaftVoter, `kafka-metadata-quorum.sh add-controller` and
//! `remove-controller`): how a dead controller's machine is replaced, or
//! the quorum grown from one voter to three.
//!
//! `controller_quorum_voters` only bootstraps a new cluster; from then on
//! the voters are the membership in the metadata log. A voter is added
//! from the learners, so the node must first run as a broker-only node
//! (it joins as a learner and copies the log), and it becomes a voter only
//! once it holds every entry the leader has: a lagging voter would count
//! toward every majority while it could not yet acknowledge anything. A
//! removed voter stays a learner, so a node that keeps running keeps
//! hearing the log (UnregisterBroker takes it out for good); the active
//! controller removing itself leaves the membership, steps down, and joins
//! its successor as a learner. openraft
//! changes the membership by joint consensus, one change at a time; a
//! leader that removes itself steps down once the change is committed.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::driver::Core;
use super::learner::{behind, membership_write_failed, quorum, Quorum};
use super::rpc::{Request, Response};
use super::ControllerError;

/// The longest an AddRaftVoter waits for its node to catch up.
pub const ADD_VOTER_WAIT_MAX: Duration = Duration::from_secs(300);

/// Why a voter change was refused, as Kafka tells it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum VoterChangeError {
    #[error("node {0} is a voter already")]
    Duplicate(i32),
    #[error("node {0} is not a voter")]
    NotFound(i32),
    #[error(
        "node {0} does not follow the metadata log: start it as a broker-only node \
         (outside controller_quorum_voters) first"
    )]
    NotFollowing(i32),
    #[error("node {0} has not caught up with the metadata log in time")]
    Lagging(i32),
    #[error("node {0} is the last voter")]
    LastVoter(i32),
}

impl VoterChangeError {
    pub fn error_code(&self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            VoterChangeError::Duplicate(_) => E::DuplicateVoter,
            VoterChangeError::NotFound(_) => E::VoterNotFound,
            // Kafka's answer while the new voter has not caught up.
            VoterChangeError::NotFollowing(_) | VoterChangeError::Lagging(_) => E::RequestTimedOut,
            VoterChangeError::LastVoter(_) => E::InvalidRequest,
        }
        .code()
    }
}

/// Whether `id` may become a voter in `quorum`.
fn check_add(quorum: &Quorum, id: i32) -> Result<(), VoterChangeError> {
    if quorum.voters.contains(&id) {
        return Err(VoterChangeError::Duplicate(id));
    }
    if !quorum.learners.contains_key(&id) {
        return Err(VoterChangeError::NotFollowing(id));
    }
    Ok(())
}

/// Whether voter `id` may leave `quorum`'s voters.
fn check_remove(quorum: &Quorum, id: i32) -> Result<(), VoterChangeError> {
    if !quorum.voters.contains(&id) {
        return Err(VoterChangeError::NotFound(id));
    }
    if quorum.voters.len() == 1 {
        return Err(VoterChangeError::LastVoter(id));
    }
    Ok(())
}

fn refused(e: VoterChangeError) -> ControllerError {
    ControllerError::Voters(e)
}

impl Core {
    fn not_leader(&self) -> ControllerError {
        ControllerError::NotLeader {
            leader: self.leader(),
        }
    }

    /// On the active controller: makes learner `id` a voter once it holds
    /// every entry the leader has, waiting at most `wait` for that.
    pub async fn add_voter_as_leader(
        &self,
        id: i32,
        wait: Duration,
    ) -> Result<(), ControllerError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let raft = self.raft();
        check_add(&quorum(&raft.metrics().borrow()), id).map_err(refused)?;
        let mut metrics = raft.metrics();
        let caught_up = tokio::time::timeout(wait, async {
            loop {
                if !behind(&metrics.borrow_and_update(), id) {
                    return true;
                }
                if metrics.changed().await.is_err() {
                    return false;
                }
            }
        });
        if !caught_up.await.unwrap_or(false) {
            return Err(refused(VoterChangeError::Lagging(id)));
        }
        let ids = BTreeSet::from([id as u64]);
        raft.change_membership(ChangeMembers::AddVoterIds(ids), true)
            .await
            .map_err(membership_write_failed)?;
        tracing::info!(voter = id, "voter added to the quorum");
        Ok(())
    }

    /// On the active controller: voter `id` becomes a learner.
    pub async fn remove_voter_as_leader(&self, id: i32) -> Result<(), ControllerError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let raft = self.raft();
        check_remove(&quorum(&raft.metrics().borrow()), id).map_err(refused)?;
        // openraft lets a leader kept as a learner lead on, for ever; out
        // of the membership it steps down once the change commits, the
        // voters elect a successor, and it joins that one as a learner
        // (`learner::rejoin_loop`).
        let leaving = id == self.node_id;
        let ids = BTreeSet::from([id as u64]);
        raft.change_membership(ChangeMembers::RemoveVoters(ids), !leaving)
            .await
            .map_err(membership_write_failed)?;
        tracing::info!(
            voter = id,
            leaving,
            "voter removed from the quorum; it stays a learner"
        );
        Ok(())
    }

    /// AddRaftVoter, asked of the active controller wherever it is.
    pub(super) async fn add_voter(&self, id: i32, wait: Duration) -> Result<(), ControllerError> {
        let ttl = wait + self.propose_timeout;
        self.at_leader(
            || self.add_voter_as_leader(id, wait),
            || Request::AddVoter {
                id,
                wait_ms: wait.as_millis() as u64,
            },
            |r| match r {
                Response::AddVoter(r) => Some(r),
                _ => None,
            },
            ttl,
        )
        .await
    }

    /// RemoveRaftVoter, asked of the active controller wherever it is.
    pub(super) async fn remove_voter(&self, id: i32) -> Result<(), ControllerError> {
        self.at_leader(
            || self.remove_voter_as_leader(id),
            || Request::RemoveVoter { id },
            |r| match r {
                Response::RemoveVoter(r) => Some(r),
                _ => None,
            },
            self.propose_timeout,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quorum_of(voters: &[i32], learners: &[i32]) -> Quorum {
        Quorum {
            voters: voters.iter().copied().collect(),
            learners: learners.iter().map(|&id| (id, format!("h:{id}"))).collect(),
            ..Quorum::default()
        }
    }

    #[test]
    fn only_a_learner_becomes_a_voter() {
        let q = quorum_of(&[1, 2, 3], &[4]);
        assert_eq!(check_add(&q, 4), Ok(()));
        assert_eq!(check_add(&q, 2), Err(VoterChangeError::Duplicate(2)));
        assert_eq!(check_add(&q, 5), Err(VoterChangeError::NotFollowing(5)));
    }

    #[test]
    fn any_voter_but_the_last_leaves() {
        assert_eq!(check_remove(&quorum_of(&[1, 2], &[4]), 1), Ok(()));
        assert_eq!(
            check_remove(&quorum_of(&[1, 2], &[4]), 4),
            Err(VoterChangeError::NotFound(4))
        );
        assert_eq!(
            check_remove(&quorum_of(&[3], &[]), 3),
            Err(VoterChangeError::LastVoter(3))
        );
    }

    #[test]
    fn refusals_carry_kafkas_codes() {
        use kafka_protocol::ResponseError as E;
        assert_eq!(
            VoterChangeError::Duplicate(1).error_code(),
            E::DuplicateVoter.code()
        );
        assert_eq!(
            VoterChangeError::NotFound(1).error_code(),
            E::VoterNotFound.code()
        );
        assert_eq!(
            VoterChangeError::Lagging(1).error_code(),
            E::RequestTimedOut.code()
        );
    }
}

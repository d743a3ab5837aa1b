//! Partition replication, Kafka's model: followers pull their leader's
//! batches with the Fetch API and append them byte for byte at the
//! leader's offsets; the leader tracks each follower's log end from its
//! fetches, moves the high watermark to the least log end over the ISR,
//! and proposes ISR changes to the controller.
//!
//! Everything here runs on the partition's owner shard: the role and the
//! leader's follower state sit next to the log in `shard::Partition`, and
//! a shard's fetchers (one per source broker) append to logs it owns.

pub mod leader;
pub mod throttle;

use crate::controller::image::{PartitionState, NO_LEADER};

pub use leader::LeaderState;

/// What this node is for one partition it hosts.
#[derive(Debug)]
pub enum Role {
    /// A one-node broker: leads alone, the high watermark is the log end.
    Solo,
    Leader(Box<LeaderState>),
    Follower {
        leader: i32,
        leader_epoch: i32,
    },
    /// No leader now (every ISR member is down): neither served nor fetched.
    Offline {
        leader_epoch: i32,
    },
}

impl Role {
    /// The leader epoch clients and followers are checked against; 0 for
    /// a one-node broker (Kafka's first epoch).
    pub fn leader_epoch(&self) -> i32 {
        match self {
            Role::Solo => 0,
            Role::Leader(l) => l.leader_epoch,
            Role::Follower { leader_epoch, .. } | Role::Offline { leader_epoch } => *leader_epoch,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self, Role::Solo | Role::Leader(_))
    }

    /// The ISR size acks=all is checked against (min.insync.replicas).
    pub fn isr_len(&self) -> usize {
        match self {
            Role::Solo => 1,
            Role::Leader(l) => l.isr.len(),
            _ => 0,
        }
    }

    /// Whether `state` (from the metadata log) keeps this role as is, or
    /// only changes the ISR or replicas of the same leadership.
    pub fn same_leadership(&self, node_id: i32, state: &PartitionState) -> bool {
        match self {
            Role::Solo => false,
            Role::Leader(l) => state.leader == node_id && state.leader_epoch == l.leader_epoch,
            Role::Follower {
                leader,
                leader_epoch,
            } => state.leader == *leader && state.leader_epoch == *leader_epoch,
            Role::Offline { leader_epoch } => {
                state.leader == NO_LEADER && state.leader_epoch == *leader_epoch
            }
        }
    }
}

/// The role `state` gives this node, new (a leader's followers unknown).
pub fn role_for(node_id: i32, state: &PartitionState, now_ms: i64) -> Role {
    if state.leader == node_id {
        Role::Leader(Box::new(LeaderState::new(node_id, state, now_ms)))
    } else if state.leader == NO_LEADER {
        Role::Offline {
            leader_epoch: state.leader_epoch,
        }
    } else {
        Role::Follower {
            leader: state.leader,
            leader_epoch: state.leader_epoch,
        }
    }
}

//! What the quorum's peers say to each other: a hello, then requests and
//! their responses, one at a time per connection. Encoded with postcard.

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::quorum_status::QuorumStatus;
use super::records::MetadataRecord;
use super::types::{Applied, TypeConfig};
use super::ControllerError;

/// Bumped when a message changes incompatibly; a peer speaking another
/// version is refused at hello. New variants go last, which keeps the
/// others' encoding.
pub const PROTOCOL_VERSION: u16 = 1;

/// The first frame each side sends on a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u16,
    pub node_id: i32,
    pub cluster_id: String,
}

/// A broker saying it is alive (Kafka's BrokerHeartbeat).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    pub broker: i32,
    pub incarnation: Uuid,
    /// The last metadata index the broker has applied; it is unfenced
    /// once this reaches the active controller's.
    pub metadata_index: u64,
    /// Controlled shutdown: move this broker's leaderships away first.
    pub want_shutdown: bool,
}

/// The active controller's answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub fenced: bool,
    pub caught_up: bool,
    /// After `want_shutdown`: the broker leads nothing another in-sync
    /// replica could lead, so it may stop without taking a partition
    /// offline.
    pub should_shutdown: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Vote(VoteRequest<u64>),
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A record a non-leader forwards to the active controller.
    Propose(MetadataRecord),
    Heartbeat(BrokerHeartbeat),
    /// A non-voter asks the active controller to replicate to it at `addr`
    /// (only for itself: `id` is the sender's hello).
    AddLearner {
        id: i32,
        addr: String,
    },
    /// DescribeQuorum, which only the active controller can answer.
    DescribeQuorum,
    /// Take learner `id` out of the membership (its broker unregistered).
    RemoveLearner {
        id: i32,
    },
    /// AddRaftVoter: make learner `id` a voter once it has caught up,
    /// waiting at most `wait_ms` for that.
    AddVoter {
        id: i32,
        wait_ms: u64,
    },
    /// RemoveRaftVoter: voter `id` becomes a learner.
    RemoveVoter {
        id: i32,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// The committed entry's index and what applying it answered.
    Propose(Result<(u64, Applied), ControllerError>),
    Heartbeat(Result<HeartbeatReply, ControllerError>),
    AddLearner(Result<(), ControllerError>),
    DescribeQuorum(Result<QuorumStatus, ControllerError>),
    RemoveLearner(Result<(), ControllerError>),
    AddVoter(Result<(), ControllerError>),
    RemoveVoter(Result<(), ControllerError>),
}

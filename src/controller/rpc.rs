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
    /// The sender's metadata log directory id (`directories`); nil from a
    /// node older than directory ids.
    pub directory_id: Uuid,
    /// The newest kind of metadata record the sender reads
    /// (`records::RECORD_LEVEL`): a record of a newer level is proposed
    /// only once every member reads it.
    pub record_level: u16,
}

/// A hello from before directory ids.
#[derive(Deserialize)]
struct HelloWithoutDirectory {
    version: u16,
    node_id: i32,
    cluster_id: String,
}

/// A hello from before record levels: its sender reads level 1's records
/// (directory ids came with them).
#[derive(Deserialize)]
struct HelloWithoutLevel {
    version: u16,
    node_id: i32,
    cluster_id: String,
    directory_id: Uuid,
}

impl Hello {
    /// A hello of any layout (postcard reads a struct's fields back to
    /// back, so a missing last field fails the newer one; an older node
    /// reading this one ignores the bytes past what it knows).
    pub fn decode(body: &[u8]) -> Result<Hello, postcard::Error> {
        postcard::from_bytes(body)
            .or_else(|newest| {
                let old: HelloWithoutLevel = postcard::from_bytes(body).map_err(|_| newest)?;
                Ok(Hello {
                    version: old.version,
                    node_id: old.node_id,
                    cluster_id: old.cluster_id,
                    directory_id: old.directory_id,
                    record_level: 1,
                })
            })
            .or_else(|newest: postcard::Error| {
                let old: HelloWithoutDirectory = postcard::from_bytes(body).map_err(|_| newest)?;
                Ok(Hello {
                    version: old.version,
                    node_id: old.node_id,
                    cluster_id: old.cluster_id,
                    directory_id: Uuid::nil(),
                    record_level: 0,
                })
            })
    }
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
    /// A vote asked of the voter whose metadata log is directory
    /// `voter_directory_id` (`directories`; Kafka's VoteRequest
    /// VoterDirectoryId). Last, so the others keep their encoding.
    VoteAs {
        vote: VoteRequest<u64>,
        voter_directory_id: Uuid,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_of_every_layout_decode() {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            node_id: 3,
            cluster_id: "c".into(),
            directory_id: Uuid::from_u128(9),
            record_level: 7,
        };
        let bytes = postcard::to_allocvec(&hello).unwrap();
        assert_eq!(Hello::decode(&bytes).unwrap(), hello);
        let before_levels =
            postcard::to_allocvec(&(PROTOCOL_VERSION, 3i32, "c", Uuid::from_u128(9))).unwrap();
        let decoded = Hello::decode(&before_levels).unwrap();
        assert_eq!(
            (decoded.directory_id, decoded.record_level),
            (Uuid::from_u128(9), 1)
        );
        let old = postcard::to_allocvec(&(PROTOCOL_VERSION, 3i32, "c")).unwrap();
        let decoded = Hello::decode(&old).unwrap();
        assert_eq!(
            (decoded.node_id, decoded.directory_id, decoded.record_level),
            (3, Uuid::nil(), 0)
        );
        assert!(Hello::decode(&bytes[..2]).is_err());
    }
}

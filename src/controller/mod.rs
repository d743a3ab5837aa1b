//! The metadata quorum's model: the cluster image and the records that
//! change it, with replica placement and leader election. Pure functions,
//! no I/O; the Raft quorum that orders the records comes next.
//!
//! # Layout
//!
//! - `image`: the cluster image (brokers, topics, partitions, configs).
//! - `records`: the metadata records and `apply`, the one way to change it.
//! - `placement`, `election`: replica placement and leader election.

pub mod election;
pub mod image;
pub mod placement;
pub mod records;

pub use image::{
    BrokerRegistration, ClusterImage, Endpoint, PartitionState, TopicImage, NO_LEADER,
};
pub use records::{ConfigChange, ConfigResource, MetadataRecord, RecordError, RecordOutcome};

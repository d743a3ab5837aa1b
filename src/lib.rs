//! Sluice: a Kafka-compatible message broker, thread-per-core on io_uring.
//!
//! # Layout
//!
//! - [`config`]: broker configuration (file + flags) and topic configs.
//! - [`kafka_properties`]: a Kafka broker's server.properties read as the config.
//! - [`broker_configs`]: dynamic broker configs (topic defaults changed at run time).
//! - [`group_configs`]: group configs (a group's own session, heartbeat and share settings).
//! - [`client_metrics`]: client metrics subscriptions, the client instances that push, and their series (KIP-714).
//! - [`record`]: the v2 record batch format, parsed and validated without copying.
//! - [`compression`]: whole-batch codecs, bounded validation and recompression.
//! - [`message_format`]: the magic 0 and 1 message formats of Produce v0-2 and Fetch v0-3, converted to and from v2 batches.
//! - [`storage`]: a partition's log on disk: segments, indexes, recovery, retention.
//! - [`metadata`]: topics and partition ownership, persisted in the data dir.
//! - [`controller`]: the metadata quorum (Raft on its own thread) and the cluster image.
//! - [`cluster`]: this node's identity, voters, controller and registration, and the image as a topics snapshot.
//! - [`replication`]: a replica's role and a leader's follower state, high watermark and ISR proposals.
//! - [`runtime`]: the thin layer over glommio (shards, meshes, blocking work).
//! - [`shard`]: what one core owns (partition logs, roles, metadata copy) and the shard's messages between cores.
//! - [`quota`]: client quotas: what is configured, broker-wide rates, a connection's throttle.
//! - [`security`]: listener configuration, SASL SCRAM/PLAIN and the credentials it checks, ACLs and the decision over them.
//! - [`group`]: consumer group coordinators and committed offsets.
//! - [`txn`]: transaction coordinators and their state in `__transaction_state`.
//! - [`services`]: what one core serves above its shard: the coordinators, replica fetchers and fetch sessions, wired together.
//! - [`handlers`]: one module per Kafka API.
//! - [`net`]: the listener, connections and request framing.
//! - [`broker`]: starts the shards and wires everything together.
//! - [`stats`]: process-wide counters served at `/metrics`.
//! - [`log_levels`]: the log filter, its levels changeable at run time (Kafka's broker loggers).
//! - [`alloc`]: the allocator that keeps absurd wire-sized capacities lazy.
//! - [`code_lock`]: locking the program's code in memory (`lock_code`).

pub mod alloc;
pub mod broker;
pub mod broker_configs;
pub mod client_metrics;
pub mod cluster;
pub mod code_lock;
pub mod compression;
pub mod config;
pub mod controller;
pub mod group;
pub mod group_configs;
pub mod handlers;
pub mod kafka_properties;
#[cfg(test)]
mod layering;
pub mod log_levels;
pub mod message_format;
pub mod metadata;
pub mod net;
pub mod pattern;
pub mod quota;
pub mod record;
pub mod replication;
pub mod runtime;
pub mod security;
pub mod services;
pub mod shard;
pub mod share;
pub mod stats;
pub mod storage;
pub mod throttle_configs;
pub mod topic_configs;
pub mod txn;

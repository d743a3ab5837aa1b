//! The metadata quorum: Raft (openraft) over the cluster image.
//!
//! Every node of a cluster runs one `Controller`: its own OS thread with a
//! tokio current-thread runtime (metadata changes are rare, and the glommio
//! shards must never block on them), its own TCP listener, and its Raft
//! log, vote and snapshots under `<data_dir>/__cluster_metadata/`. A node
//! in the voter list is a voter; any other node is a learner (Kafka's
//! broker-only node): it never votes nor leads, receives the same log by
//! replication and applies it to the same image (see `learner`). The
//! handle is `Send + Sync`; its calls return at once with futures backed
//! by `futures::channel::oneshot`, so a shard awaits them without blocking.
//! Shards see the cluster only as `Arc<ClusterImage>` snapshots.
//!
//! # Layout
//!
//! - `image`: the cluster image (brokers, topics, partitions, configs).
//! - `records`: the metadata records and `apply`, the one way to change it.
//! - `placement`, `election`: replica placement and leader election, pure.
//! - `fencing`: broker sessions and leadership repair on the active controller.
//! - `learner`: non-voters joining the quorum's membership, and `Quorum`.
//! - `voter_change`: learners made voters and voters made learners.
//! - `log_store`, `state_machine`, `types`: openraft storage on disk.
//! - `network`, `peers`, `rpc`: quorum framing, listener, clients, messages.
//! - `driver`: the controller thread.

mod directories;
mod driver;
pub mod election;
mod fencing;
pub mod image;
mod learner;
mod log_store;
mod network;
mod peers;
pub mod placement;
pub mod quorum_metrics;
pub mod quorum_status;
mod reassignment;
pub mod records;
mod rpc;
mod state_machine;
pub mod tls;
mod types;
pub mod voter_change;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Notify};

pub use fencing::FENCE_CHECK_INTERVAL;
pub use image::{
    BrokerRegistration, ClusterImage, Endpoint, PartitionState, TopicImage, NO_LEADER,
};
pub use learner::Quorum;
pub use network::FRAME_BYTES_MAX;
pub use records::{ConfigChange, ConfigResource, MetadataRecord, RecordError, RecordOutcome};
pub use rpc::{BrokerHeartbeat, HeartbeatReply};
pub use state_machine::Published;

use driver::{Command, Stats};
use quorum_status::QuorumStatus;

/// The quorum's directory inside the data dir (Kafka's name).
pub const METADATA_DIR: &str = "__cluster_metadata";
/// Most voters a quorum may have; more only slows commits.
pub const VOTERS_MAX: usize = 9;
/// Requests queued for the controller thread before callers get `Busy`.
pub const COMMANDS_MAX: usize = 1024;
/// Kafka's cluster ids are 22 characters; this only bounds the hello.
pub const CLUSTER_ID_BYTES_MAX: usize = 255;

/// How a controller starts: a voter when `node_id` is in `voters`, else a
/// learner. `new` fills the other fields with their defaults.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    pub node_id: i32,
    pub cluster_id: String,
    /// The quorum listener (`controller_listen`); port 0 picks one.
    pub listen: SocketAddr,
    /// Every voter (`controller_quorum_voters`), this node included unless
    /// it is a learner.
    pub voters: Vec<(i32, SocketAddr)>,
    /// A learner only: the host the active controller dials to replicate
    /// to it, with the port `listen` bound (voters are dialed at their
    /// entry in `voters`). `None`: `listen`'s IP, which must then not be
    /// unspecified (0.0.0.0 or ::).
    pub advertised_host: Option<String>,
    pub data_dir: PathBuf,
    /// How long a proposal may wait to be committed and applied; past it
    /// the caller answers REQUEST_TIMED_OUT (as when a majority is lost).
    pub metadata_propose_timeout_ms: u64,
    /// Kafka's `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// Kafka's `auto.leader.rebalance.enable` with
    /// `leader.imbalance.check.interval.seconds` (here in ms) and
    /// `leader.imbalance.per.broker.percentage`: `None` never rebalances.
    pub leader_rebalance: Option<(u64, u32)>,
    /// `min.insync.replicas` of a topic that sets none and of a cluster
    /// whose dynamic default sets none (this node's config): which
    /// replicas out of the ISR may still lead cleanly (`election`).
    pub min_insync_replicas: i32,
    /// Raft heartbeats from the leader.
    pub raft_heartbeat_interval_ms: u64,
    /// A follower that hears no leader for this long (up to twice it,
    /// randomized) starts an election.
    pub raft_election_timeout_ms: u64,
    /// Mutual TLS between controllers (`tls`); `None`: plaintext.
    pub tls: Option<tls::TlsFiles>,
}

impl ControllerConfig {
    pub fn new(
        node_id: i32,
        cluster_id: impl Into<String>,
        listen: SocketAddr,
        voters: Vec<(i32, SocketAddr)>,
        data_dir: impl Into<PathBuf>,
    ) -> ControllerConfig {
        ControllerConfig {
            node_id,
            cluster_id: cluster_id.into(),
            listen,
            voters,
            advertised_host: None,
            data_dir: data_dir.into(),
            metadata_propose_timeout_ms: 10_000,
            broker_session_timeout_ms: 9_000,
            leader_rebalance: None,
            min_insync_replicas: 1,
            raft_heartbeat_interval_ms: 100,
            raft_election_timeout_ms: 1_000,
            tls: None,
        }
    }

    /// Refuses voter lists that cannot form this node's quorum.
    fn validate(&self) -> Result<(), ControllerError> {
        let bad = |why: String| Err(ControllerError::Config(why));
        if self.cluster_id.is_empty() || self.cluster_id.len() > CLUSTER_ID_BYTES_MAX {
            return bad(format!(
                "cluster id {:?} is empty or too long",
                self.cluster_id
            ));
        }
        if self.voters.is_empty() || self.voters.len() > VOTERS_MAX {
            return bad(format!("{} voters (1 to {VOTERS_MAX})", self.voters.len()));
        }
        for (i, (id, addr)) in self.voters.iter().enumerate() {
            if *id < 0 {
                return bad(format!("voter id {id} is negative"));
            }
            if let Some((other, _)) = self.voters[..i].iter().find(|(o, a)| o == id || a == addr) {
                return bad(format!(
                    "voters {other} and {id} repeat a node id or address"
                ));
            }
            if *id != self.node_id && *addr == self.listen {
                return bad(format!(
                    "the voter list gives this node's controller address {addr} to node {id}, not {}",
                    self.node_id
                ));
            }
        }
        if !self.is_voter() && self.advertised_host.is_none() && self.listen.ip().is_unspecified() {
            return bad(format!(
                "learner {} listens on {} and has no advertised host the voters could dial",
                self.node_id, self.listen
            ));
        }
        if self.raft_heartbeat_interval_ms == 0
            || self.raft_election_timeout_ms <= self.raft_heartbeat_interval_ms
            || self.metadata_propose_timeout_ms == 0
        {
            return bad("raft heartbeat < election timeout, and timeouts > 0".into());
        }
        Ok(())
    }

    /// Whether this node votes (else it is a learner).
    pub fn is_voter(&self) -> bool {
        self.voters.iter().any(|(id, _)| *id == self.node_id)
    }

    /// Where a learner's listener, bound at `bound`, is dialed from the
    /// voters: `None` for a voter.
    fn learner_address(&self, bound: SocketAddr) -> Option<String> {
        if self.is_voter() {
            return None;
        }
        let host = match &self.advertised_host {
            // An IPv6 literal needs its brackets before the port.
            Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
            Some(h) => h.clone(),
            None => return Some(bound.to_string()),
        };
        Some(format!("{host}:{}", bound.port()))
    }
}

/// Errors of the quorum, as callers see them. Plain data, because they
/// also travel back from the active controller to a forwarding node.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("controller config: {0}")]
    Config(String),
    #[error("metadata storage: {0}")]
    Storage(String),
    #[error("controller listener {addr}: {error}")]
    Listen { addr: String, error: String },
    #[error("not committed within {0} ms (no quorum?)")]
    Timeout(u64),
    #[error("record refused: {0}")]
    Refused(RecordError),
    #[error("not the active controller (the leader is {leader:?})")]
    NotLeader { leader: Option<i32> },
    #[error("the active controller is unreachable: {0}")]
    Unavailable(String),
    #[error("too many requests waiting for the controller")]
    Busy,
    #[error("the controller is shut down")]
    ShuttingDown,
    #[error("raft: {0}")]
    Raft(String),
    #[error("voter change refused: {0}")]
    Voters(voter_change::VoterChangeError),
}

impl ControllerError {
    /// The Kafka error code a broker answers with.
    pub fn error_code(&self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            ControllerError::Refused(e) => return e.error_code(),
            ControllerError::Voters(e) => return e.error_code(),
            ControllerError::Timeout(_) => E::RequestTimedOut,
            ControllerError::NotLeader { .. } => E::NotController,
            ControllerError::Busy
            | ControllerError::ShuttingDown
            | ControllerError::Unavailable(_) => E::CoordinatorNotAvailable,
            _ => E::UnknownServerError,
        }
        .code()
    }
}

/// A node of the metadata quorum, voter or learner. `Send + Sync`; no
/// call blocks but `shutdown`.
pub struct Controller {
    node_id: i32,
    directory_id: uuid::Uuid,
    listen_addr: SocketAddr,
    commands: mpsc::Sender<Command>,
    images: watch::Receiver<Published>,
    metrics: watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>,
    stop: Arc<Notify>,
    stats: Arc<Stats>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The quorum's TLS, shared with the controller thread's transport.
    tls: Option<tls::QuorumTls>,
}

impl Controller {
    /// Opens the quorum's storage, binds its listener and starts its
    /// thread. A single voter elects itself at once; a learner asks the
    /// active controller to add it (in the background, until it is in).
    pub fn start(config: ControllerConfig) -> Result<Controller, ControllerError> {
        config.validate()?;
        let dir = config.data_dir.join(METADATA_DIR);
        let storage =
            |e: &dyn std::fmt::Display| ControllerError::Storage(format!("{}: {e}", dir.display()));
        let log = log_store::LogStore::open(&dir).map_err(|e| storage(&e))?;
        let directory_id = directories::open_or_create(&dir).map_err(|e| storage(&e))?;
        let tls = config.tls.as_ref().map(tls::QuorumTls::load).transpose()?;
        let transport = if tls.is_some() {
            "mutual TLS"
        } else {
            "plaintext"
        };
        let (state_machine, images) =
            state_machine::StateMachine::open(&dir).map_err(|e| storage(&e))?;
        let listen_error = |e: std::io::Error| ControllerError::Listen {
            addr: config.listen.to_string(),
            error: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(config.listen).map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let listen_addr = listener.local_addr().map_err(listen_error)?;
        let learner_address = config.learner_address(listen_addr);
        let (commands, command_rx) = mpsc::channel(COMMANDS_MAX);
        let stop = Arc::new(Notify::new());
        let stats = Arc::new(Stats::default());
        let node_id = config.node_id;
        let start = driver::Start {
            config,
            learner_address,
            listener,
            log,
            state_machine,
            directory_id,
            tls: tls.clone(),
            images: images.clone(),
            commands: command_rx,
            stop: stop.clone(),
            stats: stats.clone(),
        };
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("controller-{node_id}"))
            .spawn(move || driver::run(start, started_tx))
            .map_err(|e| ControllerError::Storage(format!("controller thread: {e}")))?;
        let metrics = match started_rx.recv() {
            Ok(Ok(metrics)) => metrics,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ControllerError::ShuttingDown),
        };
        let voter = learner::quorum(&metrics.borrow()).voters.contains(&node_id);
        let role = if voter { "voter" } else { "learner" };
        tracing::info!(node = node_id, %listen_addr, role, transport, "controller started");
        Ok(Controller {
            node_id,
            directory_id,
            listen_addr,
            commands,
            images,
            metrics,
            stop,
            stats,
            thread: Mutex::new(Some(thread)),
            tls,
        })
    }

    /// Whether the quorum's transport speaks TLS.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads the quorum's certificate files again (SIGHUP): new quorum
    /// connections take them.
    pub fn reload_tls(&self) {
        if let Some(tls) = &self.tls {
            tls.reload();
        }
    }

    /// This node's metadata log directory id (KIP-853; `directories`).
    pub fn directory_id(&self) -> uuid::Uuid {
        self.directory_id
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Whether the membership in force here makes this node a voter (else
    /// a learner: it never votes, never leads).
    pub fn is_voter(&self) -> bool {
        self.quorum().voters.contains(&self.node_id)
    }

    /// Whether this node is in the quorum's membership: a voter always, a
    /// learner once the active controller has confirmed it (each start).
    pub fn joined(&self) -> bool {
        self.stats.joined.load(Ordering::SeqCst)
    }

    /// Voters and learners as this node's membership shows them.
    pub fn quorum(&self) -> Quorum {
        learner::quorum(&self.metrics.borrow())
    }

    /// Whether the controller thread still runs: false once it stopped,
    /// for a shutdown or because it died.
    pub fn is_running(&self) -> bool {
        self.thread
            .lock()
            .expect("the thread lock is never poisoned")
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// The bound quorum listener address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Proposes `record` from this node (forwarded to the active controller
    /// if another node leads). Resolves once it is committed and applied on
    /// this node, with its log index and outcome; a refusal is
    /// `ControllerError::Refused`, no quorum is `Timeout`.
    pub fn propose(
        &self,
        record: MetadataRecord,
    ) -> impl Future<Output = Result<(u64, RecordOutcome), ControllerError>> + Send + 'static {
        let (reply, answer) = futures::channel::oneshot::channel();
        let sent = self.send(Command::Propose { record, reply });
        async move {
            sent?;
            answer.await.unwrap_or(Err(ControllerError::ShuttingDown))
        }
    }

    /// DescribeQuorum: the quorum as the active controller sees it (asked
    /// of it wherever it is).
    pub fn describe_quorum(
        &self,
    ) -> impl Future<Output = Result<QuorumStatus, ControllerError>> + Send + 'static {
        let (reply, answer) = futures::channel::oneshot::channel();
        let sent = self.send(Command::DescribeQuorum { reply });
        async move {
            sent?;
            answer.await.unwrap_or(Err(ControllerError::ShuttingDown))
        }
    }

    /// Takes learner `id` out of the quorum's membership, once its broker
    /// is unregistered (asked of the active controller wherever it is); a
    /// node that is not a learner there needs nothing.
    pub fn remove_learner(
        &self,
        id: i32,
    ) -> impl Future<Output = Result<(), ControllerError>> + Send + 'static {
        let (reply, answer) = futures::channel::oneshot::channel();
        let sent = self.send(Command::RemoveLearner { id, reply });
        async move {
            sent?;
            answer.await.unwrap_or(Err(ControllerError::ShuttingDown))
        }
    }

    /// AddRaftVoter: learner `id` becomes a voter once it has caught up
    /// with the metadata log, which it may take `wait` for (asked of the
    /// active controller wherever it is).
    pub fn add_voter(
        &self,
        id: i32,
        wait: Duration,
    ) -> impl Future<Output = Result<(), ControllerError>> + Send + 'static {
        let (reply, answer) = futures::channel::oneshot::channel();
        let wait = wait.min(voter_change::ADD_VOTER_WAIT_MAX);
        let sent = self.send(Command::AddVoter { id, wait, reply });
        async move {
            sent?;
            answer.await.unwrap_or(Err(ControllerError::ShuttingDown))
        }
    }

    /// RemoveRaftVoter: voter `id` becomes a learner.
    pub fn remove_voter(
        &self,
        id: i32,
    ) -> impl Future<Output = Result<(), ControllerError>> + Send + 'static {
        let (reply, answer) = futures::channel::oneshot::channel();
        let sent = self.send(Command::RemoveVoter { id, reply });
        async move {
            sent?;
            answer.await.unwrap_or(Err(ControllerError::ShuttingDown))
        }
    }

    /// Kafka's BrokerHeartbeat: `metadata_index` is the last index the
    /// broker has applied. Renews its session on the active controller and
    /// unfences it once it has caught up.
    pub fn heartbeat(
        &self,
        broker: i32,
        incarnation: uuid::Uuid,
        metadata_index: u64,
    ) -> impl Future<Output = Result<HeartbeatReply, ControllerError>> + Send + 'static {
        self.send_heartbeat(BrokerHeartbeat {
            broker,
            incarnation,
            metadata_index,
            want_shutdown: false,
        })
    }

    /// A heartbeat asking for controlled shutdown (Kafka's wantShutDown):
    /// the active controller moves the broker's leaderships to other
    /// in-sync replicas and takes it out of every ISR; the broker repeats
    /// it (bounded by its `controlled_shutdown_timeout_ms`) until the reply
    /// says `should_shutdown`.
    pub fn request_shutdown(
        &self,
        broker: i32,
        incarnation: uuid::Uuid,
        metadata_index: u64,
    ) -> impl Future<Output = Result<HeartbeatReply, ControllerError>> + Send + 'static {
        self.send_heartbeat(BrokerHeartbeat {
            broker,
            incarnation,
            metadata_index,
            want_shutdown: true,
        })
    }

    fn send_heartbeat(
        &self,
        heartbeat: BrokerHeartbeat,
    ) -> impl Future<Output = Result<HeartbeatReply, ControllerError>> + Send + 'static {
        let (reply, answer) = futures::channel::oneshot::channel();
        let sent = self.send(Command::Heartbeat { heartbeat, reply });
        async move {
            sent?;
            answer.await.unwrap_or(Err(ControllerError::ShuttingDown))
        }
    }

    fn send(&self, command: Command) -> Result<(), ControllerError> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ControllerError::Busy,
            mpsc::error::TrySendError::Closed(_) => ControllerError::ShuttingDown,
        })
    }

    /// The latest image applied on this node and the index it reflects.
    pub fn image(&self) -> Published {
        self.images.borrow().clone()
    }

    /// Yields each newly applied image; a slow reader skips to the newest.
    pub fn watch(&self) -> ImageWatch {
        ImageWatch {
            images: self.images.clone(),
        }
    }

    /// The active controller as this node last heard.
    pub fn leader(&self) -> Option<i32> {
        driver::leader_of(&self.metrics.borrow())
    }

    /// Connections this node refused: at hello (another cluster), or a
    /// request a peer may not send (Raft traffic from a non-voter).
    pub fn peers_refused(&self) -> u64 {
        self.stats.peers_refused.load(Ordering::Relaxed)
    }

    /// Stops the controller thread and waits for it (bounded by the
    /// driver's shutdown timeout). Call it from a plain thread, not a shard.
    pub fn shutdown(&self) {
        self.stop.notify_one();
        let thread = self.thread.lock().expect("never poisoned").take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// New images as they are applied (`Controller::watch`).
pub struct ImageWatch {
    images: watch::Receiver<Published>,
}

impl ImageWatch {
    /// The next image newer than the last one seen; `None` once the
    /// controller is gone. Runtime-agnostic: awaitable on a shard.
    pub async fn changed(&mut self) -> Option<Published> {
        self.images.changed().await.ok()?;
        Some(self.images.borrow_and_update().clone())
    }

    /// The newest image, marking it seen.
    pub fn latest(&mut self) -> Published {
        self.images.borrow_and_update().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn config(node: i32, voters: &[(i32, u16)]) -> ControllerConfig {
        let voters = voters.iter().map(|(id, port)| (*id, addr(*port))).collect();
        ControllerConfig::new(node, "c", addr(9001), voters, "/nonexistent")
    }

    /// The module's invariant, checked the way the README table is: no
    /// controller file uses a glommio path or the crate's runtime module (the shards'
    /// layer), so none of it can end up on a shard.
    #[test]
    fn nothing_here_touches_glommio() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/controller");
        let mut files = vec![dir.clone()];
        let mut checked = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                for needle in [["glommio", "::"].concat(), ["crate::", "runtime"].concat()] {
                    assert!(!text.contains(&needle), "{} uses {needle}", path.display());
                }
                checked += 1;
            }
        }
        assert!(checked >= 10);
    }

    #[test]
    fn voter_lists_that_cannot_work_are_refused() {
        assert!(config(1, &[(1, 9001), (2, 9002), (3, 9003)])
            .validate()
            .is_ok());
        // A node not in the list is a learner.
        let mut learner = config(4, &[(1, 9001), (2, 9002), (3, 9003)]);
        assert!(
            learner.validate().is_err(),
            "listening at voter 1's address"
        );
        learner.listen = addr(9004);
        assert!(learner.validate().is_ok() && !learner.is_voter());
        let refused = [
            config(1, &[]),
            config(1, &[(1, 9001), (1, 9002), (3, 9003)]),
            config(1, &[(1, 9001), (2, 9002), (3, 9002)]),
            config(1, &[(2, 9001), (1, 9002), (3, 9003)]),
            config(1, &[(1, 9001), (-2, 9002), (3, 9003)]),
        ];
        for c in refused {
            assert!(
                matches!(c.validate(), Err(ControllerError::Config(_))),
                "{:?}",
                c.voters
            );
        }
        let mut c = config(1, &[(1, 9001)]);
        c.cluster_id.clear();
        assert!(c.validate().is_err());
        let mut c = config(4, &[(1, 9001)]);
        c.listen = "0.0.0.0:0".parse().unwrap();
        assert!(c.validate().is_err(), "a learner nobody could dial");
        c.advertised_host = Some("::1".into());
        assert!(c.validate().is_ok());
        assert_eq!(
            c.learner_address("0.0.0.0:7001".parse().unwrap()),
            Some("[::1]:7001".into())
        );
        assert_eq!(config(1, &[(1, 9001)]).learner_address(addr(1)), None);
    }
}

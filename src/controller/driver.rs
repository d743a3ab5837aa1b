//! The controller thread: a tokio current-thread runtime that runs
//! openraft, the quorum listener, the fencing loop, a learner's join, and
//! the commands the `Controller` handle sends. Nothing here runs on a
//! glommio shard; the shards reach it only through the handle's channel
//! and oneshots.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft};
use tokio::sync::{mpsc, watch, Notify};

use super::fencing::{fence_loop, movable_leaderships, Sessions};
use super::learner::{self, join_loop, rejoin_loop};
use super::log_store::LogStore;
use super::network::accept_loop;
use super::peers::{Forwarder, Network};
use super::quorum_status::{self, QuorumStatus};
use super::records::{MetadataRecord, RecordOutcome};
use super::rpc::{BrokerHeartbeat, HeartbeatReply, Hello, Request, Response, PROTOCOL_VERSION};
use super::state_machine::{Published, StateMachine};
use super::types::{Applied, TypeConfig};
use super::voter_change::ADD_VOTER_WAIT_MAX;
use super::{ControllerConfig, ControllerError};

/// How long a proposal waits before asking again who leads, while an
/// election is under way or the leader's address fails.
pub const LEADER_RETRY_INTERVAL: Duration = Duration::from_millis(50);
/// The least a heartbeat waits for the controller's answer.
const HEARTBEAT_CALL_TIMEOUT_MIN: Duration = Duration::from_millis(100);
/// How long shutdown waits for openraft to stop its tasks.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Snapshot after this many applied entries, then purge the log below it.
pub const SNAPSHOT_LOGS_SINCE_LAST: u64 = 1000;
/// Entries kept in the log below a snapshot, so a follower slightly behind
/// catches up from the log rather than a whole snapshot.
pub const LOGS_KEPT_AFTER_SNAPSHOT: u64 = 100;
/// Entries per AppendEntries; with records far below 64 KiB each this keeps
/// a frame well under `FRAME_BYTES_MAX`.
pub const APPEND_ENTRIES_MAX: u64 = 64;
/// Bytes per InstallSnapshot chunk.
pub const SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;

/// What the handle asks of the controller thread.
pub enum Command {
    Propose {
        record: MetadataRecord,
        reply: futures::channel::oneshot::Sender<Result<(u64, RecordOutcome), ControllerError>>,
    },
    Heartbeat {
        heartbeat: BrokerHeartbeat,
        reply: futures::channel::oneshot::Sender<Result<HeartbeatReply, ControllerError>>,
    },
    DescribeQuorum {
        reply: futures::channel::oneshot::Sender<Result<QuorumStatus, ControllerError>>,
    },
    RemoveLearner {
        id: i32,
        reply: futures::channel::oneshot::Sender<Result<(), ControllerError>>,
    },
    AddVoter {
        id: i32,
        /// How long the node may take to catch up.
        wait: Duration,
        reply: futures::channel::oneshot::Sender<Result<(), ControllerError>>,
    },
    RemoveVoter {
        id: i32,
        reply: futures::channel::oneshot::Sender<Result<(), ControllerError>>,
    },
}

#[derive(Default)]
pub struct Stats {
    /// Connections refused: at hello (wrong cluster), or a request the
    /// peer may not send.
    pub peers_refused: AtomicU64,
    /// In the membership: a voter always, a learner once the active
    /// controller has added it (at this start).
    pub joined: AtomicBool,
}

/// What the controller thread's tasks share.
pub struct Core {
    pub node_id: i32,
    pub cluster_id: String,
    /// This node's metadata log directory id (`directories`).
    pub directory_id: uuid::Uuid,
    /// Mutual TLS with the other controllers, when configured.
    pub tls: Option<super::tls::QuorumTls>,
    /// The directory ids peers' hellos gave, for the active controller to
    /// write (`directories::pass`).
    pub directories_seen: Mutex<BTreeMap<i32, uuid::Uuid>>,
    /// The record level each peer's hello gave (`records::RECORD_LEVEL`).
    pub levels_seen: Mutex<BTreeMap<i32, u16>>,
    /// `controller_quorum_voters`, which bootstrapped the cluster; the
    /// voters now are the membership's (`voter_change`).
    pub voters: BTreeMap<i32, SocketAddr>,
    /// Which voter a learner that knows no leader asks next.
    voter_turn: AtomicUsize,
    pub propose_timeout: Duration,
    pub session_timeout: Duration,
    /// Auto leader rebalance: check interval and allowed imbalance (%).
    pub leader_rebalance: Option<(Duration, u32)>,
    /// This node's `min.insync.replicas` (`ControllerConfig`).
    pub min_insync_replicas: i32,
    pub stats: Arc<Stats>,
    /// Set once `Raft::new` returns; the network it is built with needs
    /// the core first.
    raft: OnceLock<Raft<TypeConfig>>,
    pub images: watch::Receiver<Published>,
    pub forwarder: Forwarder,
    pub sessions: Mutex<Sessions>,
}

impl Core {
    pub fn raft(&self) -> &Raft<TypeConfig> {
        self.raft.get().expect("raft is set before any task runs")
    }

    pub fn hello(&self) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            node_id: self.node_id,
            cluster_id: self.cluster_id.clone(),
            directory_id: self.directory_id,
            record_level: super::records::RECORD_LEVEL,
        }
    }

    pub fn leader(&self) -> Option<i32> {
        leader_of(&self.raft().metrics().borrow())
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.node_id)
    }

    /// The Raft term this node leads in, if it leads now.
    pub fn leading_term(&self) -> Option<u64> {
        let raft = self.raft();
        let metrics = raft.metrics();
        let m = metrics.borrow();
        (leader_of(&m) == Some(self.node_id)).then_some(m.current_term)
    }

    /// The next voter in turn, for a learner that knows no leader (or a
    /// dead one): any voter answers with the leader it knows. A voter asks
    /// no one and waits for the election instead; a voter removed while it
    /// led is no longer one, and asks.
    fn next_voter(&self) -> Option<i32> {
        if self.is_voter_now(self.node_id) {
            return None;
        }
        let turn = self.voter_turn.fetch_add(1, Ordering::Relaxed);
        let mut voters = self.voters_known();
        voters.remove(&self.node_id);
        voters.iter().nth(turn % voters.len().max(1)).copied()
    }

    /// The voter list this node started with and the membership's voters.
    pub fn voters_known(&self) -> BTreeSet<i32> {
        let membership = learner::quorum(&self.raft().metrics().borrow()).voters;
        self.voters.keys().copied().chain(membership).collect()
    }

    /// Where node `id`'s quorum listener is: the voter list's address for
    /// a node in it, else the membership's.
    pub fn address_of(&self, id: i32) -> Option<String> {
        let metrics = self.raft().metrics();
        let metrics = metrics.borrow();
        let member = metrics
            .membership_config
            .membership()
            .get_node(&(id as u64));
        self.address_given(id, member.map(|n| n.addr.as_str()))
    }

    /// Node `id`'s address: the voter list's for a node in it (a voter's
    /// address is set in its config), else `member`, the membership's (a
    /// learner's own, kept once it is made a voter).
    pub fn address_given(&self, id: i32, member: Option<&str>) -> Option<String> {
        match self.voters.get(&id) {
            Some(addr) => Some(addr.to_string()),
            None => member.map(str::to_string),
        }
    }

    /// Whether the membership in force makes `id` a voter.
    pub fn is_voter_now(&self, id: i32) -> bool {
        learner::quorum(&self.raft().metrics().borrow())
            .voters
            .contains(&id)
    }

    pub fn image(&self) -> Published {
        self.images.borrow().clone()
    }

    /// Serves one request from a peer.
    pub async fn handle(&self, request: Request) -> Response {
        let raft = self.raft();
        match request {
            Request::Vote(vote) | Request::VoteAs { vote, .. } => {
                Response::Vote(raft.vote(vote).await)
            }
            Request::AppendEntries(r) => Response::AppendEntries(raft.append_entries(r).await),
            Request::InstallSnapshot(r) => {
                Response::InstallSnapshot(raft.install_snapshot(r).await)
            }
            Request::Propose(record) => Response::Propose(self.propose_as_leader(record).await),
            Request::Heartbeat(h) => Response::Heartbeat(self.heartbeat_as_leader(h).await),
            Request::AddLearner { id, addr } => {
                Response::AddLearner(self.add_learner_as_leader(id, addr).await)
            }
            Request::DescribeQuorum => Response::DescribeQuorum(self.describe_quorum_as_leader()),
            Request::RemoveLearner { id } => {
                Response::RemoveLearner(self.remove_learner_as_leader(id).await)
            }
            Request::AddVoter { id, wait_ms } => {
                let wait = Duration::from_millis(wait_ms).min(ADD_VOTER_WAIT_MAX);
                Response::AddVoter(self.add_voter_as_leader(id, wait).await)
            }
            Request::RemoveVoter { id } => {
                Response::RemoveVoter(self.remove_voter_as_leader(id).await)
            }
        }
    }

    /// The quorum's status if this node leads it.
    fn describe_quorum_as_leader(&self) -> Result<QuorumStatus, ControllerError> {
        let addrs: BTreeMap<i32, String> = self
            .voters
            .iter()
            .map(|(&id, addr)| (id, addr.to_string()))
            .collect();
        quorum_status::status_of(&self.raft().metrics().borrow(), &addrs).ok_or(
            ControllerError::NotLeader {
                leader: self.leader(),
            },
        )
    }

    /// The quorum's status from the active controller, wherever it is.
    async fn describe_quorum(&self) -> Result<QuorumStatus, ControllerError> {
        self.at_leader(
            || async { self.describe_quorum_as_leader() },
            || Request::DescribeQuorum,
            |r| match r {
                Response::DescribeQuorum(r) => Some(r),
                _ => None,
            },
            self.propose_timeout,
        )
        .await
    }

    /// Appends `record` if this node leads, and answers once it is
    /// committed and applied here. A leadership lost before that answers
    /// NotLeader at once: openraft 0.9 leaves a deposed leader's pending
    /// writes unanswered, and a node restarted with its own committed vote
    /// on disk leads until its first contact with the others, so its first
    /// proposal (its registration) waited out the whole propose timeout.
    /// The write may still commit under the successor, like any proposal
    /// whose answer was lost; callers retry only idempotent records.
    pub async fn propose_as_leader(
        &self,
        record: MetadataRecord,
    ) -> Result<(u64, Applied), ControllerError> {
        let Some(term) = self.leading_term() else {
            return Err(ControllerError::NotLeader {
                leader: self.leader(),
            });
        };
        if let Some((kind, level)) = record.newer_kind() {
            if !super::directories::every_member_reads(self, level) {
                let refused = super::RecordError::OlderNodes(kind.to_string());
                return Err(ControllerError::Refused(refused));
            }
        }
        let write = tokio::time::timeout(self.propose_timeout, self.raft().client_write(record));
        let (write, deposed) = (std::pin::pin!(write), std::pin::pin!(self.deposed(term)));
        let written = match futures::future::select(write, deposed).await {
            futures::future::Either::Left((written, _)) => written,
            futures::future::Either::Right((leader, _)) => {
                return Err(ControllerError::NotLeader { leader })
            }
        };
        match written {
            Ok(Ok(response)) => Ok((response.log_id.index, response.data)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(ControllerError::NotLeader {
                    leader: f.leader_id.map(|id| id as i32),
                })
            }
            Ok(Err(e)) => Err(ControllerError::Raft(e.to_string())),
            Err(_) => Err(self.timeout()),
        }
    }

    /// Resolves, with the leader known then, once this node no longer
    /// leads in `term`.
    async fn deposed(&self, term: u64) -> Option<i32> {
        let mut metrics = self.raft().metrics();
        loop {
            {
                let m = metrics.borrow_and_update();
                let leader = m.current_leader.map(|id| id as i32);
                if m.current_term != term || leader != Some(self.node_id) {
                    return leader.filter(|&l| l != self.node_id);
                }
            }
            if metrics.changed().await.is_err() {
                return None;
            }
        }
    }

    fn timeout(&self) -> ControllerError {
        ControllerError::Timeout(self.propose_timeout.as_millis() as u64)
    }

    /// A proposal from any node: run here if this node leads, else
    /// forwarded; answered once applied on this node too.
    async fn propose(
        &self,
        record: MetadataRecord,
    ) -> Result<(u64, RecordOutcome), ControllerError> {
        let (index, applied) = self
            .at_leader(
                || self.propose_as_leader(record.clone()),
                || Request::Propose(record.clone()),
                |r| match r {
                    Response::Propose(r) => Some(r),
                    _ => None,
                },
                self.propose_timeout,
            )
            .await?;
        let mut images = self.images.clone();
        images
            .wait_for(|(applied, _)| *applied >= index)
            .await
            .map_err(|_| ControllerError::ShuttingDown)?;
        applied
            .map(|outcome| (index, outcome))
            .map_err(ControllerError::Refused)
    }

    async fn heartbeat(
        &self,
        heartbeat: BrokerHeartbeat,
    ) -> Result<HeartbeatReply, ControllerError> {
        self.at_leader(
            || self.heartbeat_as_leader(heartbeat.clone()),
            || Request::Heartbeat(heartbeat.clone()),
            |r| match r {
                Response::Heartbeat(r) => Some(r),
                _ => None,
            },
            self.heartbeat_call_timeout(),
        )
        .await
    }

    /// How long one heartbeat waits for a controller that may be gone. A
    /// heartbeat that waited out the propose timeout on a cut-off
    /// controller would miss the session its new successor started, and
    /// get this broker fenced though it never stopped: a third of the
    /// session leaves room for two more tries, each at the leader known then.
    fn heartbeat_call_timeout(&self) -> Duration {
        (self.session_timeout / 3)
            .min(self.propose_timeout)
            .max(HEARTBEAT_CALL_TIMEOUT_MIN)
    }

    /// Runs `local` if this node leads, else sends `remote()` to the
    /// leader, waiting at most `ttl` for its answer; while there is none,
    /// or it moved, asks again, first the leader a refusing peer named. A
    /// learner that knows no leader, or cannot reach it, asks the voters in
    /// turn. The caller bounds the whole.
    pub(super) async fn at_leader<T, Fut>(
        &self,
        local: impl Fn() -> Fut,
        remote: impl Fn() -> Request,
        unpack: impl Fn(Response) -> Option<Result<T, ControllerError>>,
        ttl: Duration,
    ) -> Result<T, ControllerError>
    where
        Fut: Future<Output = Result<T, ControllerError>>,
    {
        let mut named: Option<i32> = None;
        loop {
            let target = named
                .take()
                .or_else(|| self.leader())
                .or_else(|| self.next_voter());
            let result = match target {
                Some(leader) if leader == self.node_id => local().await,
                Some(leader) => {
                    let call = self.forwarder.call(self, leader, &remote(), ttl).await;
                    match call.map(&unpack) {
                        Ok(Some(r)) => r,
                        Ok(None) => Err(ControllerError::Unavailable("mismatched response".into())),
                        Err(e) => Err(ControllerError::Unavailable(e.to_string())),
                    }
                }
                None => Err(ControllerError::NotLeader { leader: None }),
            };
            match result {
                Err(ControllerError::NotLeader { leader }) => {
                    named = leader.filter(|&l| Some(l) != target);
                    tokio::time::sleep(LEADER_RETRY_INTERVAL).await;
                }
                Err(ControllerError::Unavailable(_)) => {
                    named = self.next_voter();
                    tokio::time::sleep(LEADER_RETRY_INTERVAL).await;
                }
                other => return other,
            }
        }
    }

    /// Kafka's BrokerHeartbeat on the active controller: renews the
    /// broker's session, and unfences it once it has caught up.
    async fn heartbeat_as_leader(
        &self,
        heartbeat: BrokerHeartbeat,
    ) -> Result<HeartbeatReply, ControllerError> {
        let Some(term) = self.leading_term() else {
            return Err(ControllerError::NotLeader {
                leader: self.leader(),
            });
        };
        let (index, image) = self.image();
        let id = heartbeat.broker;
        let broker = image.brokers.get(&id).ok_or(ControllerError::Refused(
            super::RecordError::UnknownBroker(id),
        ))?;
        if broker.incarnation != heartbeat.incarnation {
            return Err(ControllerError::Refused(
                super::RecordError::StaleIncarnation(id),
            ));
        }
        let leaving = {
            let mut sessions = self
                .sessions
                .lock()
                .expect("the sessions lock is never poisoned");
            sessions.in_term(term);
            sessions.heard(id, Instant::now());
            if heartbeat.want_shutdown {
                sessions.leaving(id, heartbeat.incarnation);
            }
            sessions.leaving_in(&image)
        };
        let caught_up = heartbeat.metadata_index >= index;
        if heartbeat.want_shutdown {
            // Leaderships move in the fencing pass; the broker asks again.
            // Only to brokers that stay: when all leave at once, none waits.
            let should_shutdown = movable_leaderships(&image, id, &leaving) == 0;
            return Ok(HeartbeatReply {
                fenced: broker.fenced,
                caught_up,
                should_shutdown,
            });
        }
        if broker.fenced && caught_up {
            let unfence = MetadataRecord::UnfenceBroker {
                id,
                incarnation: heartbeat.incarnation,
            };
            let (_, applied) = self.propose_as_leader(unfence).await?;
            applied.map_err(ControllerError::Refused)?;
            tracing::info!(
                broker = id,
                "unfenced broker: caught up with the metadata log"
            );
            return Ok(HeartbeatReply {
                fenced: false,
                caught_up,
                should_shutdown: false,
            });
        }
        Ok(HeartbeatReply {
            fenced: broker.fenced,
            caught_up,
            should_shutdown: false,
        })
    }

    async fn serve_command(self: Arc<Self>, command: Command) {
        let limit = self.propose_timeout;
        match command {
            Command::Propose { record, reply } => {
                let result = tokio::time::timeout(limit, self.propose(record)).await;
                let _ = reply.send(result.unwrap_or_else(|_| Err(self.timeout())));
            }
            Command::Heartbeat { heartbeat, reply } => {
                let result = tokio::time::timeout(limit, self.heartbeat(heartbeat)).await;
                let _ = reply.send(result.unwrap_or_else(|_| Err(self.timeout())));
            }
            Command::DescribeQuorum { reply } => {
                let result = tokio::time::timeout(limit, self.describe_quorum()).await;
                let _ = reply.send(result.unwrap_or_else(|_| Err(self.timeout())));
            }
            Command::RemoveLearner { id, reply } => {
                let result = tokio::time::timeout(limit, self.remove_learner(id)).await;
                let _ = reply.send(result.unwrap_or_else(|_| Err(self.timeout())));
            }
            Command::AddVoter { id, wait, reply } => {
                let result = tokio::time::timeout(wait + limit, self.add_voter(id, wait)).await;
                let _ = reply.send(result.unwrap_or_else(|_| Err(self.timeout())));
            }
            Command::RemoveVoter { id, reply } => {
                let result = tokio::time::timeout(limit, self.remove_voter(id)).await;
                let _ = reply.send(result.unwrap_or_else(|_| Err(self.timeout())));
            }
        }
    }
}

/// What the controller thread starts from; opened on the caller's thread
/// so that start-up errors are returned, not logged.
pub struct Start {
    pub config: ControllerConfig,
    /// A learner's address, for its join; `None` on a voter.
    pub learner_address: Option<String>,
    pub listener: std::net::TcpListener,
    pub log: LogStore,
    pub state_machine: StateMachine,
    pub directory_id: uuid::Uuid,
    pub tls: Option<super::tls::QuorumTls>,
    pub images: watch::Receiver<Published>,
    pub commands: mpsc::Receiver<Command>,
    pub stop: Arc<Notify>,
    pub stats: Arc<Stats>,
}

/// Started: the metrics receiver the handle reads the leader from.
pub type Started = Result<watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>, ControllerError>;

/// The controller thread's body.
pub fn run(start: Start, started: std::sync::mpsc::Sender<Started>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = started.send(Err(ControllerError::Storage(format!("runtime: {e}"))));
            return;
        }
    };
    runtime.block_on(serve(start, started));
    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
}

async fn serve(start: Start, started: std::sync::mpsc::Sender<Started>) {
    let Start {
        config,
        learner_address,
        listener,
        log,
        state_machine,
        directory_id,
        tls,
        images,
        mut commands,
        stop,
        stats,
    } = start;
    let core = Arc::new(Core {
        node_id: config.node_id,
        cluster_id: config.cluster_id.clone(),
        directory_id,
        tls,
        directories_seen: Mutex::default(),
        levels_seen: Mutex::default(),
        voters: config.voters.iter().copied().collect(),
        voter_turn: AtomicUsize::new(0),
        propose_timeout: Duration::from_millis(config.metadata_propose_timeout_ms),
        session_timeout: Duration::from_millis(config.broker_session_timeout_ms),
        leader_rebalance: config
            .leader_rebalance
            .map(|(ms, percent)| (Duration::from_millis(ms.max(1)), percent)),
        min_insync_replicas: config.min_insync_replicas,
        stats,
        raft: OnceLock::new(),
        images,
        forwarder: Forwarder::default(),
        sessions: Mutex::new(Sessions::default()),
    });
    let raft = match start_raft(&config, &core, log, state_machine).await {
        Ok(r) => r,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = started.send(Err(ControllerError::Listen {
                addr: config.listen.to_string(),
                error: e.to_string(),
            }));
            return;
        }
    };
    tokio::spawn(accept_loop(listener, core.clone()));
    tokio::spawn(fence_loop(core.clone()));
    let own_address = learner_address.clone().or_else(|| {
        let voter = core.voters.get(&config.node_id);
        voter.map(|addr| addr.to_string())
    });
    if let Some(address) = learner_address {
        tokio::spawn(join_loop(core.clone(), address));
    } else {
        core.stats.joined.store(true, Ordering::SeqCst);
    }
    if let Some(address) = own_address {
        tokio::spawn(rejoin_loop(core.clone(), address));
    }
    let _ = started.send(Ok(raft.metrics()));
    let mut died = std::pin::pin!(core_died(raft.metrics()));
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(c) => { tokio::spawn(core.clone().serve_command(c)); }
                None => break,
            },
            _ = stop.notified() => break,
            error = &mut died => {
                // Without its core this controller would answer nothing
                // while its broker served on: stop the thread, and the node
                // halts (Kafka halts on a metadata log it cannot write).
                tracing::error!(node = config.node_id, %error, "the metadata quorum stopped on a fatal error (a metadata log it cannot write, or a panic in its core); stopping the controller");
                break;
            }
        }
    }
    tracing::info!(node = config.node_id, "controller stopping");
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, raft.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("raft did not stop in time");
    }
}

/// The leader these metrics know. A node that led and was then removed
/// from the membership keeps its own committed vote, so openraft still
/// names it until it hears from its successor: it leads no more.
pub fn leader_of(metrics: &openraft::RaftMetrics<u64, BasicNode>) -> Option<i32> {
    let leader = metrics.current_leader?;
    if leader == metrics.id && metrics.state != openraft::ServerState::Leader {
        return None;
    }
    Some(leader as i32)
}

/// Resolves once openraft's core stopped on its own, with why: a storage
/// error (a metadata log write failed) is fatal to it.
async fn core_died(mut metrics: watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>) -> String {
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "the quorum's core is gone".to_string();
        }
    }
}

async fn start_raft(
    config: &ControllerConfig,
    core: &Arc<Core>,
    log: LogStore,
    state_machine: StateMachine,
) -> Result<Raft<TypeConfig>, ControllerError> {
    let raft_config = raft_config(config)?;
    let network = Network { core: core.clone() };
    let fresh = log.state() == (None, None) && log.vote().is_none();
    let raft = Raft::new(
        config.node_id as u64,
        Arc::new(raft_config),
        network,
        log.clone(),
        state_machine,
    )
    .await
    .map_err(|e| ControllerError::Raft(e.to_string()))?;
    core.raft.set(raft.clone()).ok().expect("raft is set once");
    if fresh && config.is_voter() {
        // Every voter of a new cluster initializes itself with the same
        // static membership; openraft allows that, and the first log entry
        // (index 0) is identical on all of them. A learner never does: it
        // takes the membership from the leader's log.
        let members: BTreeMap<u64, BasicNode> = config
            .voters
            .iter()
            .map(|(id, addr)| (*id as u64, BasicNode::new(addr.to_string())))
            .collect();
        if let Err(e) = raft.initialize(members).await {
            tracing::debug!(error = %e, "quorum already initialized");
        }
    }
    Ok(raft)
}

fn raft_config(config: &ControllerConfig) -> Result<openraft::Config, ControllerError> {
    let election = config.raft_election_timeout_ms;
    openraft::Config {
        cluster_name: config.cluster_id.clone(),
        heartbeat_interval: config.raft_heartbeat_interval_ms,
        election_timeout_min: election,
        election_timeout_max: election * 2,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_LOGS_SINCE_LAST),
        max_in_snapshot_log_to_keep: LOGS_KEPT_AFTER_SNAPSHOT,
        max_payload_entries: APPEND_ENTRIES_MAX,
        snapshot_max_chunk_size: SNAPSHOT_CHUNK_BYTES,
        ..Default::default()
    }
    .validate()
    .map_err(|e| ControllerError::Config(e.to_string()))
}

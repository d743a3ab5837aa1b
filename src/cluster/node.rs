//! A broker in a cluster: it runs its controller, a voter (combined mode)
//! when it is in the voter list, else a learner (a broker-only node),
//! registers with the quorum, heartbeats, and serves clients only once the
//! active controller has unfenced it, which needs this node's image caught
//! up; at stop it asks for a controlled shutdown first.
//!
//! A broker-only node's controller listens at `controller_listen`, by
//! default on the client listener's host with a port the OS picks: the
//! node tells the active controller its address at every start, so
//! nothing else needs to know it.
//!
//! Everything here runs on plain threads (the main thread and a heartbeat
//! thread); shards reach the controller through the `Send + Sync` handle.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::executor::block_on;

use super::log_state::LogState;
use super::voters::{self, Voter};
use crate::config::BrokerConfig;
use crate::controller::image::Endpoint;
use crate::controller::records::{MetadataRecord, RecordError, RecordOutcome};
use crate::controller::{Controller, ControllerConfig, ControllerError};

/// Failed controlled-shutdown requests before stopping anyway (Kafka's
/// `controlled.shutdown.max.retries`).
const CONTROLLED_SHUTDOWN_RETRIES_MAX: u32 = 3;
/// Pause between attempts while the quorum forms or a controller moves.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Voters(#[from] voters::VotersError),
    #[error("controller address {addr}: {error}")]
    Address { addr: String, error: String },
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error(
        "not in the quorum within {0:?}: no active controller took this broker-only node \
         as a learner (are the voters up and reachable?)"
    )]
    Join(Duration),
    #[error(
        "no quorum within {0:?}: could not register with the controller (a broker-only \
         node also needs its controller listener reachable from the voters)"
    )]
    Register(Duration),
    #[error("the controller did not unfence this broker within {0:?}")]
    Unfence(Duration),
}

/// This node's part of the cluster while it runs.
pub struct ClusterNode {
    pub controller: Arc<Controller>,
    pub node_id: i32,
    /// New on every start: the controller tells this process from a
    /// previous one of the same node.
    pub incarnation: uuid::Uuid,
    stop: Arc<AtomicBool>,
    heartbeats: std::sync::Mutex<Option<JoinHandle<()>>>,
}

fn resolve(addr: &str) -> Result<SocketAddr, NodeError> {
    let fail = |error: String| NodeError::Address {
        addr: addr.to_string(),
        error,
    };
    addr.to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("resolves to no address".into()))
}

/// A broker-only node's controller listener: `controller_listen`, else
/// the client listener's host with a port the OS picks.
fn learner_listen(config: &BrokerConfig) -> String {
    if let Some(listen) = &config.controller_listen {
        return listen.clone();
    }
    let host = config
        .listen
        .rsplit_once(':')
        .map_or(config.listen.as_str(), |(host, _)| host);
    format!("{host}:0")
}

/// The host the voters dial a broker-only node's controller at: the one
/// it listens on, unless that is a wildcard (0.0.0.0, ::), then the host
/// it advertises to clients.
fn learner_host(listen: &str, bound: SocketAddr, advertised: &(String, i32)) -> String {
    if bound.ip().is_unspecified() {
        return advertised.0.clone();
    }
    let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// How long a broker whose logs may be short waits for the active
/// controller to take its `LogsLost` while it refuses it for an older member.
const OLDER_NODES_WAIT: Duration = Duration::from_secs(10);

/// The exit status of a node whose controller thread died.
const CONTROLLER_DIED_EXIT_CODE: i32 = 70;

impl ClusterNode {
    /// Starts the controller (voter or learner), registers the broker at
    /// `advertised` and waits (bounded) until the active controller
    /// unfences it.
    pub fn start(
        config: &BrokerConfig,
        cluster_id: &str,
        voters: &[Voter],
        advertised: &(String, i32),
        endpoints: Vec<Endpoint>,
        log_state: LogState,
    ) -> Result<ClusterNode, NodeError> {
        let node_id = config.node_id;
        let voter_listen = voters::this_node(voters, node_id, config.controller_listen.as_deref())?;
        let learner = voter_listen.is_none();
        let listen = match voter_listen {
            Some(listen) => listen,
            None => learner_listen(config),
        };
        let mut voter_addrs = Vec::with_capacity(voters.len());
        for v in voters {
            voter_addrs.push((v.id, resolve(&v.addr)?));
        }
        let bind = resolve(&listen)?;
        let mut controller_config =
            ControllerConfig::new(node_id, cluster_id, bind, voter_addrs, &config.data_dir);
        if learner {
            controller_config.advertised_host = Some(learner_host(&listen, bind, advertised));
        }
        controller_config.tls = config
            .controller_tls()
            .map_err(|e| NodeError::Controller(ControllerError::Config(e)))?;
        controller_config.broker_session_timeout_ms = config.broker_session_timeout_ms;
        controller_config.metadata_propose_timeout_ms = config.metadata_propose_timeout_ms;
        controller_config.min_insync_replicas = config.min_insync_replicas;
        controller_config.leader_rebalance = config.auto_leader_rebalance_enable.then_some((
            config
                .leader_imbalance_check_interval_seconds
                .saturating_mul(1000),
            config.leader_imbalance_per_broker_percentage,
        ));
        let controller = Arc::new(Controller::start(controller_config)?);
        let node = ClusterNode {
            controller,
            node_id,
            incarnation: uuid::Uuid::new_v4(),
            stop: Arc::new(AtomicBool::new(false)),
            heartbeats: std::sync::Mutex::new(None),
        };
        let wait = Duration::from_millis(config.broker_startup_timeout_ms);
        node.wait_joined(wait)?;
        node.register(endpoints, config.broker_rack.clone(), wait)?;
        if log_state.lost_any() {
            // Before the first heartbeat, so before it is unfenced and
            // leads anything with a log that may be missing records.
            node.logs_lost(log_state, wait)?;
        }
        let heartbeats = node.spawn_heartbeats(config.broker_heartbeat_interval_ms)?;
        *node.heartbeats.lock().expect("never poisoned") = Some(heartbeats);
        node.wait_unfenced(wait)?;
        Ok(node)
    }

    /// Registers one endpoint per listener, the inter-broker listener's
    /// first: replica fetchers and KIP-951 hints take the first.
    fn register(
        &self,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        wait: Duration,
    ) -> Result<(), NodeError> {
        let record = MetadataRecord::RegisterBroker {
            id: self.node_id,
            incarnation: self.incarnation,
            endpoints,
            rack,
        };
        self.propose_retrying(record, wait)?;
        tracing::info!(node = self.node_id, incarnation = %self.incarnation, "registered with the controller");
        Ok(())
    }

    /// A node whose logs may be missing records it acknowledged (a new
    /// data dir, an unclean stop across a machine restart: `LogState`):
    /// the ISRs it was in must not count on it, nor may it lead, until it
    /// has caught up (`MetadataRecord::LogsLost`). On a new data dir it
    /// holds nothing, so where it was the last in-sync replica the
    /// partition goes offline rather than have it lead an empty log
    /// (`MetadataRecord::LastInSyncLost`); after a machine restart its log
    /// is likely the longest there is, and it leads again. A first start
    /// changes nothing.
    fn logs_lost(&self, state: LogState, wait: Duration) -> Result<(), NodeError> {
        let (_, image) = self.controller.image();
        let id = self.node_id;
        let partitions = || image.topics.values().flat_map(|t| &t.partitions);
        // In no ISR with another replica at a first start: the image holds
        // every change up to this registration, and none can add this
        // broker to an ISR before it serves.
        let shared = partitions().any(|p| p.isr.len() > 1 && p.isr.contains(&id));
        // Out of an ISR, it must not count as holding what it held then.
        let departed = image
            .isr_departures
            .values()
            .flat_map(|t| t.values().flatten())
            .any(|d| d.broker == id);
        let last = partitions().any(|p| p.isr == [id] && p.replicas.len() > 1);
        let incarnation = self.incarnation;
        if shared || departed {
            let record = MetadataRecord::LogsLost { id, incarnation };
            if self.propose_newer(record, state, wait)? == Some(RecordOutcome::Applied) {
                tracing::warn!(
                    node = id,
                    ?state,
                    "logs may be missing acknowledged records: this broker left the ISRs it was in; it rejoins each once caught up"
                );
            }
        }
        if last && state == LogState::New {
            let record = MetadataRecord::LastInSyncLost { id, incarnation };
            if self.propose_newer(record, state, wait)? == Some(RecordOutcome::Applied) {
                tracing::error!(
                    node = id,
                    "this broker's data dir is new and it was the last in-sync replica of partitions other replicas hold: they are offline until a replica eligible to lead comes back (min.insync.replicas above 1) or an unclean election (unclean.leader.election.enable, or kafka-leader-election --election-type unclean) elects one of those"
                );
            }
        }
        Ok(())
    }

    /// Proposes a record of a newer kind (`MetadataRecord::newer_kind`);
    /// `None` when a member of the quorum runs an older version that
    /// could not read it (this broker then goes on as that version would).
    fn propose_newer(
        &self,
        record: MetadataRecord,
        state: LogState,
        wait: Duration,
    ) -> Result<Option<RecordOutcome>, NodeError> {
        // A new active controller may not have heard every member yet;
        // past this, a member is taken to run an older version.
        let older_deadline = Instant::now() + OLDER_NODES_WAIT.min(wait);
        loop {
            match self.propose_retrying(record.clone(), wait) {
                Err(NodeError::Controller(ControllerError::Refused(RecordError::OlderNodes(
                    _,
                )))) if Instant::now() < older_deadline => std::thread::sleep(RETRY_PAUSE),
                Err(NodeError::Controller(ControllerError::Refused(
                    e @ RecordError::OlderNodes(_),
                ))) => {
                    tracing::error!(node = self.node_id, ?state, error = %e, "logs may be missing acknowledged records, but the quorum cannot record it");
                    return Ok(None);
                }
                other => return other.map(Some),
            }
        }
    }

    /// Proposes `record` until it commits, for at most `wait`; a refusal
    /// is final.
    fn propose_retrying(
        &self,
        record: MetadataRecord,
        wait: Duration,
    ) -> Result<RecordOutcome, NodeError> {
        let deadline = Instant::now() + wait;
        loop {
            match block_on(self.controller.propose(record.clone())) {
                Ok((_, outcome)) => return Ok(outcome),
                Err(ControllerError::Refused(e)) => {
                    return Err(NodeError::Controller(ControllerError::Refused(e)))
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "not committed yet; retrying");
                    std::thread::sleep(RETRY_PAUSE);
                }
                Err(_) => return Err(NodeError::Register(wait)),
            }
        }
    }

    /// Heartbeats every `interval_ms` with the index this node applied,
    /// until [`Self::shutdown`].
    fn spawn_heartbeats(&self, interval_ms: u64) -> Result<JoinHandle<()>, NodeError> {
        let controller = self.controller.clone();
        let stop = self.stop.clone();
        let (node_id, incarnation) = (self.node_id, self.incarnation);
        let every = Duration::from_millis(interval_ms.max(10));
        std::thread::Builder::new()
            .name("sluice-heartbeat".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if !controller.is_running() && !stop.load(Ordering::SeqCst) {
                        // Without its controller this node would go on
                        // serving stale metadata and leaderships it lost;
                        // like Kafka on a fatal error, halt, and let the
                        // supervisor restart it (logs recover on start).
                        tracing::error!(
                            node = node_id,
                            "the controller thread died; halting the broker"
                        );
                        std::process::exit(CONTROLLER_DIED_EXIT_CODE);
                    }
                    let applied = controller.image().0;
                    if let Err(e) = block_on(controller.heartbeat(node_id, incarnation, applied)) {
                        tracing::debug!(error = %e, "heartbeat not answered");
                    }
                    std::thread::sleep(every);
                }
            })
            .map_err(|e| NodeError::Address {
                addr: "heartbeat thread".into(),
                error: e.to_string(),
            })
    }

    /// A broker-only node: until the active controller has it as a
    /// learner, so that the metadata log reaches it.
    fn wait_joined(&self, wait: Duration) -> Result<(), NodeError> {
        let deadline = Instant::now() + wait;
        while !self.controller.joined() {
            if Instant::now() >= deadline {
                return Err(NodeError::Join(wait));
            }
            std::thread::sleep(RETRY_PAUSE / 4);
        }
        Ok(())
    }

    fn wait_unfenced(&self, wait: Duration) -> Result<(), NodeError> {
        let deadline = Instant::now() + wait;
        let mine = |reg: &crate::controller::image::BrokerRegistration| {
            reg.incarnation == self.incarnation && !reg.fenced
        };
        while Instant::now() < deadline {
            let (_, image) = self.controller.image();
            if image.brokers.get(&self.node_id).is_some_and(mine) {
                tracing::info!(node = self.node_id, "unfenced: serving clients");
                return Ok(());
            }
            std::thread::sleep(RETRY_PAUSE / 4);
        }
        Err(NodeError::Unfence(wait))
    }

    /// Controlled shutdown (bounded by `timeout`): asks the active
    /// controller to move this broker's leaderships away. The broker keeps
    /// serving meanwhile; [`Self::stop`] follows once the shards stopped.
    pub fn controlled_shutdown(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut failures = 0;
        while Instant::now() < deadline && failures < CONTROLLED_SHUTDOWN_RETRIES_MAX {
            let applied = self.controller.image().0;
            let asked = self
                .controller
                .request_shutdown(self.node_id, self.incarnation, applied);
            match block_on(asked) {
                Ok(reply) if reply.should_shutdown => {
                    tracing::info!(
                        node = self.node_id,
                        "controlled shutdown: leaderships moved"
                    );
                    return;
                }
                Ok(_) => std::thread::sleep(RETRY_PAUSE),
                Err(e) => {
                    // No quorum (the rest of the cluster is stopping too):
                    // give up after a few tries, as Kafka's
                    // controlled.shutdown.max.retries does.
                    failures += 1;
                    tracing::info!(error = %e, failures, "controlled shutdown not answered");
                    std::thread::sleep(RETRY_PAUSE);
                }
            }
        }
        tracing::warn!(
            node = self.node_id,
            "stopping without a completed controlled shutdown"
        );
    }

    /// Stops the heartbeats and the controller.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(heartbeats) = self.heartbeats.lock().expect("never poisoned").take() {
            let _ = heartbeats.join();
        }
        self.controller.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_only_node_listens_beside_its_clients_and_is_dialed_where_reachable() {
        let mut config = BrokerConfig {
            listen: "127.0.0.1:9092".into(),
            ..BrokerConfig::default()
        };
        assert_eq!(learner_listen(&config), "127.0.0.1:0");
        config.controller_listen = Some("[::]:9093".into());
        assert_eq!(learner_listen(&config), "[::]:9093");
        let advertised = ("kafka-4.example".to_string(), 9092);
        let any: SocketAddr = "[::]:9093".parse().unwrap();
        assert_eq!(
            learner_host("[::]:9093", any, &advertised),
            "kafka-4.example"
        );
        let own: SocketAddr = "10.0.0.4:9093".parse().unwrap();
        assert_eq!(learner_host("node4:9093", own, &advertised), "node4");
        let v6: SocketAddr = "[fd00::4]:9093".parse().unwrap();
        assert_eq!(learner_host("[fd00::4]:9093", v6, &advertised), "fd00::4");
    }
}

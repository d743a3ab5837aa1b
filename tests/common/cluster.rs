//! Several real `sluice` processes under one Raft metadata quorum, for
//! placement, failover and replication tests. Nodes `1..=voters` are in the
//! voter list (combined mode: a controller voter and a broker); nodes after
//! them, if any, are broker-only nodes (not in the list: their controller
//! is a learner).
//!
//! Node ids are `1..=n`. Each node keeps its client port across restarts,
//! so a bootstrap list stays valid. Nodes can be killed (`kill9`), stopped
//! cleanly (`stop`), paused (`sigstop` / `sigcont`) and started again; a
//! paused node is resumed before it is killed, also when a test panics.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use rdkafka::admin::NewTopic;
use rdkafka::types::RDKafkaErrorCode;

use super::raw::RawClient;
use super::{admin, admin_opts, Broker};

/// Fast failure detection for tests (Kafka's defaults are 9000 / 2000);
/// used unless the extra args set these flags themselves.
pub const SESSION_TIMEOUT_MS: &str = "3000";
pub const HEARTBEAT_MS: &str = "300";
/// A stopping node's wait for its leaderships to move (30 s in the broker),
/// well within [`super::SHUTDOWN_TIMEOUT`]: when the whole cluster stops at
/// once, the last node may lead partitions nobody else can take.
pub const CONTROLLED_SHUTDOWN_TIMEOUT_MS: &str = "10000";

/// The default bound of every wait on the cluster.
pub const WAIT: Duration = Duration::from_secs(60);

/// How long one Metadata poll of one node may take before it counts as
/// failed (a paused or dead node must not stall a poll loop).
const POLL_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Lines of each node's stderr a failed wait shows.
const TAIL_LINES: usize = 25;

/// Where controller (quorum) ports are picked: below the kernel's
/// ephemeral range (32768 and up), so no port-0 listener or outgoing
/// connection of another node takes one between our pick and its bind.
const CONTROLLER_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// How often a cluster start is tried again when a port was taken anyway
/// (another test picked the same one).
const START_ATTEMPTS: usize = 3;

/// A loopback port in [`CONTROLLER_PORTS`] nothing listens on now (bound,
/// checked, released), picked at random, and held for this test process's
/// life: no other test process picks it (an abstract unix socket named for
/// it, which the kernel frees when the process ends, however it ends), so a
/// node killed and started again finds its port free; and never one this
/// process picked before (a voter list naming one port twice is refused).
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    static PICKED: std::sync::Mutex<BTreeMap<u16, UnixListener>> =
        std::sync::Mutex::new(BTreeMap::new());
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let span = (CONTROLLER_PORTS.end - CONTROLLER_PORTS.start) as u64;
        let port = CONTROLLER_PORTS.start + (h.finish() % span) as u16;
        let mut picked = PICKED.lock().unwrap();
        if picked.contains_key(&port) {
            continue;
        }
        let name = format!("sluice-test-controller-port-{port}");
        let Ok(claim) = SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| UnixListener::bind_addr(&addr))
        else {
            continue; // another test process holds it
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            picked.insert(port, claim);
            return port;
        }
    }
    panic!("no free port in {CONTROLLER_PORTS:?} after 1000 tries");
}

/// One partition as one node's Metadata shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// Sorted, so views from different nodes compare equal.
    pub isr: Vec<i32>,
    pub error_code: i16,
}

/// `topic`/`partition` in a Metadata answer, if it is there.
pub fn partition_view(
    metadata: &MetadataResponse,
    topic: &str,
    partition: i32,
) -> Option<PartitionView> {
    let t = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))?;
    let p = t
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)?;
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort_unstable();
    Some(PartitionView {
        leader: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
        isr,
        error_code: p.error_code,
    })
}

/// Where a broker-only node's controller listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnerListen {
    /// `--controller-listen` at a port picked once, kept across restarts.
    Fixed,
    /// No flag: the node's default (its client host, a port the OS picks
    /// at every start).
    Default,
}

pub struct Cluster {
    nodes: BTreeMap<i32, Broker>,
    /// Nodes `1..=voters` are voters; the others broker-only.
    voters: i32,
    /// Nodes SIGSTOPped and not resumed since: not live, and resumed
    /// before they are killed.
    paused: BTreeSet<i32>,
    /// The listener the helpers talk to (Metadata polls, CreateTopics,
    /// `bootstrap`); `None`: the inter-broker one each node reports first.
    client_listener: Option<String>,
}

impl Cluster {
    /// Starts nodes `1..=n`, all voters, with the test session timeouts.
    pub fn start(n: i32) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// Starts nodes `1..=n` at once (each waits for a quorum before it
    /// prints its ready line), passing `extra_args` to every node.
    pub fn start_with(n: i32, extra_args: &[&str]) -> Cluster {
        Cluster::start_mixed(n, 0, LearnerListen::Fixed, extra_args)
    }

    /// Starts voters `1..=voters` and broker-only nodes after them, all at
    /// once (each waits for the quorum before it prints its ready line),
    /// passing `extra_args` to every node, `{id}` in them replaced by the
    /// node's id (`--broker-rack rack-{id}`).
    pub fn start_mixed(
        voters: i32,
        brokers_only: i32,
        learner_listen: LearnerListen,
        extra_args: &[&str],
    ) -> Cluster {
        assert!(voters >= 1, "a cluster has at least one voter");
        assert!(brokers_only >= 0);
        let n = voters + brokers_only;
        let mut common: Vec<String> = Vec::new();
        for (flag, default) in [
            ("--broker-session-timeout-ms", SESSION_TIMEOUT_MS),
            ("--broker-heartbeat-interval-ms", HEARTBEAT_MS),
            (
                "--controlled-shutdown-timeout-ms",
                CONTROLLED_SHUTDOWN_TIMEOUT_MS,
            ),
        ] {
            if !extra_args.contains(&flag) {
                common.extend([flag.to_string(), default.to_string()]);
            }
        }
        common.extend(extra_args.iter().map(|s| s.to_string()));
        for attempt in 1..=START_ATTEMPTS {
            let (nodes, failures) = start_nodes(voters, brokers_only, learner_listen, &common);
            let cluster = Cluster {
                nodes,
                voters,
                paused: BTreeSet::new(),
                client_listener: None,
            };
            if failures.is_empty() {
                return cluster;
            }
            let msg = format!(
                "starting a {n}-node cluster with extra args {extra_args:?} failed (attempt {attempt}):\n{}",
                failures.join("\n")
            );
            if attempt < START_ATTEMPTS && msg.contains("Address already in use") {
                eprintln!("{msg}\n----- a port was taken: starting again on new ports -----");
                continue;
            }
            // Panics with the started nodes alive, so their Drop keeps
            // their data dirs and shows their logs.
            cluster.fail(&msg);
        }
        unreachable!("the last attempt returns or fails");
    }

    /// [`Cluster::start`] with each node in its own rack (`rack-<id>`), the
    /// rack-aware replica selector (KIP-392) and `/metrics` served.
    pub fn start_in_racks(n: i32) -> Cluster {
        Cluster::start_with(
            n,
            &[
                "--broker-rack",
                "rack-{id}",
                "--replica-selector",
                "rack-aware",
                "--metrics-listen",
                "127.0.0.1:0",
            ],
        )
    }

    /// Makes the helpers use listener `name` (a PLAINTEXT one) instead of
    /// the inter-broker listener, for clusters whose inter-broker listener
    /// needs TLS or SASL.
    pub fn use_client_listener(&mut self, name: &str) {
        self.client_listener = Some(name.to_string());
    }

    /// `host:port` of node `id`'s client listener (see `use_client_listener`).
    pub fn client_addr(&self, id: i32) -> String {
        let node = self.node(id);
        match &self.client_listener {
            Some(name) => node.listener(name),
            None => node.bootstrap(),
        }
    }

    pub fn ids(&self) -> Vec<i32> {
        self.nodes.keys().copied().collect()
    }

    /// The nodes in the voter list.
    pub fn voters(&self) -> BTreeSet<i32> {
        (1..=self.voters).collect()
    }

    pub fn node(&self, id: i32) -> &Broker {
        self.nodes
            .get(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_mut(&mut self, id: i32) -> &mut Broker {
        self.nodes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Nodes that run and are not paused.
    pub fn live(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|(id, b)| b.is_running() && !self.paused.contains(id))
            .map(|(id, _)| *id)
            .collect()
    }

    /// `bootstrap.servers` listing every live node.
    pub fn bootstrap(&self) -> String {
        self.bootstrap_of(&self.live())
    }

    /// `bootstrap.servers` listing `ids` (which must be running).
    pub fn bootstrap_of(&self, ids: &[i32]) -> String {
        ids.iter()
            .map(|&id| self.client_addr(id))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `id`'s Metadata for all topics; panics if it does not answer.
    pub fn metadata(&self, id: i32) -> MetadataResponse {
        self.try_metadata(id)
            .unwrap_or_else(|e| panic!("Metadata from node {id}: {e}"))
    }

    /// Node `id`'s Metadata for all topics (`topics: null`; the default
    /// request's empty list would ask for none).
    pub fn try_metadata(&self, id: i32) -> Result<MetadataResponse, String> {
        let broker = self.node(id);
        if !broker.is_running() {
            return Err(format!("node {id} is not running"));
        }
        let addr = self.client_addr(id);
        let mut client =
            RawClient::try_connect(&addr, POLL_IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
        client
            .try_call(12, &MetadataRequest::default().with_topics(None))
            .map_err(|e| format!("Metadata call: {e}"))
    }

    /// `topic`/`partition` as node `id` shows it (Err: no answer or absent).
    pub fn view_from(&self, id: i32, topic: &str, partition: i32) -> Result<PartitionView, String> {
        let metadata = self.try_metadata(id)?;
        partition_view(&metadata, topic, partition)
            .ok_or_else(|| format!("node {id}: {topic}/{partition} not in Metadata"))
    }

    /// `topic`/`partition` once every live node shows the same view (Err
    /// describes the disagreement or the node that did not answer).
    pub fn agreed_view(&self, topic: &str, partition: i32) -> Result<PartitionView, String> {
        let live = self.live();
        let mut views = BTreeMap::new();
        for &id in &live {
            views.insert(id, self.view_from(id, topic, partition)?);
        }
        let first = views
            .values()
            .next()
            .cloned()
            .ok_or_else(|| "no live node".to_string())?;
        if views.values().all(|v| *v == first) {
            Ok(first)
        } else {
            Err(format!(
                "live nodes disagree on {topic}/{partition}: {views:?}"
            ))
        }
    }

    /// The leader of `topic`/`partition` in the first live node's Metadata
    /// (-1 while it has none).
    pub fn leader_of(&self, topic: &str, partition: i32) -> i32 {
        self.first_live_view(topic, partition).leader
    }

    /// The ISR (sorted) of `topic`/`partition` in the first live node's Metadata.
    pub fn isr_of(&self, topic: &str, partition: i32) -> Vec<i32> {
        self.first_live_view(topic, partition).isr
    }

    fn first_live_view(&self, topic: &str, partition: i32) -> PartitionView {
        let id = *self.live().first().expect("no live node");
        self.view_from(id, topic, partition)
            .unwrap_or_else(|e| self.fail(&format!("reading {topic}/{partition}: {e}")))
    }

    /// Polls (bounded) until every live node shows the same view of
    /// `topic`/`partition` and `done` holds for it; returns that view.
    pub fn wait_view(
        &self,
        topic: &str,
        partition: i32,
        desc: &str,
        mut done: impl FnMut(&PartitionView) -> bool,
    ) -> PartitionView {
        self.wait_for(desc, WAIT, || {
            let view = self.agreed_view(topic, partition)?;
            if done(&view) {
                Ok(view)
            } else {
                Err(format!("{topic}/{partition}: {view:?}"))
            }
        })
    }

    /// Polls (bounded) until node `id`'s Metadata satisfies `done`.
    pub fn wait_metadata(
        &self,
        id: i32,
        desc: &str,
        mut done: impl FnMut(&MetadataResponse) -> bool,
    ) -> MetadataResponse {
        self.wait_for(desc, WAIT, || {
            let metadata = self.try_metadata(id)?;
            if done(&metadata) {
                Ok(metadata)
            } else {
                Err(format!("{metadata:?}"))
            }
        })
    }

    /// Polls `cond` every 100 ms until it holds; after `timeout` panics
    /// with `desc` and every node's stderr tail.
    pub fn wait_until(&self, desc: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        self.wait_for(desc, timeout, || {
            if cond() {
                Ok(())
            } else {
                Err("condition false".into())
            }
        })
    }

    /// Polls `attempt` every 100 ms until it gives `Ok`; after `timeout`
    /// panics with `desc`, the last `Err` and every node's stderr tail.
    pub fn wait_for<T>(
        &self,
        desc: &str,
        timeout: Duration,
        mut attempt: impl FnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match attempt() {
                Ok(v) => return v,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "waited {timeout:?} for {desc}; last state: {last}"
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Panics with `msg` and every node's stderr tail.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.stderr_tails(TAIL_LINES))
    }

    /// The last `lines` lines of every node's stderr, labelled.
    pub fn stderr_tails(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|(id, b)| {
                let state = if self.paused.contains(id) {
                    "paused"
                } else if b.is_running() {
                    "running"
                } else {
                    "down"
                };
                // The quorum library's INFO lines would crowd out the broker's.
                let tail = b.stderr_tail(lines * 20);
                let kept: Vec<&str> = tail.lines().filter(|l| !l.contains("openraft")).collect();
                format!(
                    "----- node {id} ({state}) stderr tail, openraft lines left out -----\n{}",
                    kept[kept.len().saturating_sub(lines)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGSTOP: the node keeps its sockets but answers nothing, like a
    /// long GC pause or a frozen VM.
    pub fn sigstop(&mut self, id: i32) {
        assert!(self.paused.insert(id), "node {id} is already paused");
        signal(self.node(id).pid(), libc::SIGSTOP);
    }

    /// SIGCONT: resumes a node paused by [`Cluster::sigstop`].
    pub fn sigcont(&mut self, id: i32) {
        assert!(self.paused.remove(&id), "node {id} is not paused");
        signal(self.node(id).pid(), libc::SIGCONT);
    }

    /// kill -9 (a paused node is resumed first).
    pub fn kill9(&mut self, id: i32) {
        if self.paused.contains(&id) {
            self.sigcont(id);
        }
        self.node_mut(id).kill9();
    }

    /// SIGTERM and a clean exit (controlled shutdown).
    pub fn stop(&mut self, id: i32) {
        if self.paused.contains(&id) {
            self.sigcont(id);
        }
        self.node_mut(id).stop();
    }

    /// Starts node `id` again on its data dir and port.
    pub fn start_again(&mut self, id: i32) {
        self.node_mut(id).start_again();
    }

    /// Stops every node at once (controlled shutdowns need the quorum).
    pub fn stop_all(&mut self) {
        for id in self.paused.clone() {
            self.sigcont(id);
        }
        thread::scope(|s| {
            for broker in self.nodes.values_mut() {
                s.spawn(move || broker.stop());
            }
        });
    }

    /// Starts every node again at once (each waits for a quorum).
    pub fn start_all_again(&mut self) {
        thread::scope(|s| {
            for broker in self.nodes.values_mut() {
                s.spawn(move || broker.start_again());
            }
        });
    }

    /// CreateTopics through the live nodes, retried (bounded) while the
    /// cluster settles (brokers still registering); an existing topic
    /// counts as created, an invalid config fails at once. Then waits until
    /// every live node shows every partition with a leader.
    pub fn create_topic(&self, topic: &NewTopic<'_>) {
        let admin = admin(&self.bootstrap());
        self.wait_for(&format!("CreateTopics {}", topic.name), WAIT, || {
            let results = futures::executor::block_on(admin.create_topics([topic], &admin_opts()))
                .map_err(|e| format!("CreateTopics request: {e}"))?;
            match &results[0] {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(()),
                Err((_, RDKafkaErrorCode::InvalidConfig)) => self.fail(&format!(
                    "CreateTopics {}: INVALID_CONFIG for configs {:?} (does the broker know them?)",
                    topic.name, topic.config
                )),
                Err((name, code)) => Err(format!("{name}: {code:?}")),
            }
        });
        for partition in 0..topic.num_partitions {
            self.wait_view(
                topic.name,
                partition,
                &format!(
                    "{}/{partition} to have a leader on every live node",
                    topic.name
                ),
                |v| v.leader >= 0,
            );
        }
    }

    /// Waits until every partition of `topic` has the ISR `isr` (sorted) on
    /// every live node; returns the views.
    pub fn wait_isr(&self, topic: &str, partitions: i32, isr: &[i32]) -> Vec<PartitionView> {
        (0..partitions)
            .map(|p| {
                self.wait_view(topic, p, &format!("ISR {isr:?} for {topic}/{p}"), |v| {
                    v.leader >= 0 && v.isr == isr
                })
            })
            .collect()
    }

    /// Waits (bounded) until nodes `ids` hold byte-identical, non-empty
    /// `.log` data for `topic`/`partition`; returns those bytes.
    pub fn wait_logs_identical(&self, topic: &str, partition: i32, ids: &[i32]) -> Vec<u8> {
        self.wait_for(
            &format!("nodes {ids:?} to hold identical {topic}/{partition} logs"),
            WAIT,
            || {
                let logs: Vec<(i32, Vec<u8>)> = ids
                    .iter()
                    .map(|&id| (id, self.log_bytes(id, topic, partition)))
                    .collect();
                let first = &logs[0].1;
                if !first.is_empty() && logs.iter().all(|(_, l)| l == first) {
                    return Ok(first.clone());
                }
                let sizes: Vec<String> = logs
                    .iter()
                    .map(|(id, l)| {
                        let relation = match l.iter().zip(first).position(|(a, b)| a != b) {
                            Some(at) => format!("differs from node {} at byte {at}", logs[0].0),
                            None if l.len() == first.len() => "same".to_string(),
                            None => format!("shares a prefix with node {}", logs[0].0),
                        };
                        format!("node {id}: {} bytes ({relation})", l.len())
                    })
                    .collect();
                Err(sizes.join("; "))
            },
        )
    }

    /// The concatenated batches of node `id`'s `.log` segment files of
    /// `topic`/`partition`, in offset order (empty when it has none yet).
    /// Segment boundaries may differ between replicas; the bytes may not.
    pub fn log_bytes(&self, id: i32, topic: &str, partition: i32) -> Vec<u8> {
        let dir = self.node(id).partition_dir(topic, partition);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        // Names are zero-padded base offsets: name order is offset order.
        files.sort();
        let mut out = Vec::new();
        for f in files {
            // A segment removed between listing and reading reads as
            // missing; callers compare in a bounded retry. An active
            // segment's file may run past its batches (a prefault's hole).
            out.extend_from_slice(&super::segment_batch_bytes(&f));
        }
        out
    }
}

/// Starts voters `1..=voters` and broker-only nodes after them at once on
/// new controller ports; returns the nodes that started and a message per
/// node that did not.
fn start_nodes(
    voters: i32,
    brokers_only: i32,
    learner_listen: LearnerListen,
    common: &[String],
) -> (BTreeMap<i32, Broker>, Vec<String>) {
    let list: Vec<String> = (1..=voters)
        .map(|id| format!("{id}@127.0.0.1:{}", free_port()))
        .collect();
    let list = list.join(",");
    let starting: Vec<_> = (1..=voters + brokers_only)
        .map(|id| {
            let mut args = vec![
                "--node-id".to_string(),
                id.to_string(),
                "--controller-quorum-voters".to_string(),
                list.clone(),
            ];
            if id > voters && learner_listen == LearnerListen::Fixed {
                args.push("--controller-listen".to_string());
                args.push(format!("127.0.0.1:{}", free_port()));
            }
            args.extend(common.iter().map(|a| a.replace("{id}", &id.to_string())));
            let thread = thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut broker = Broker::start_with(1, &args);
                broker.keep_port();
                broker
            });
            (id, thread)
        })
        .collect();
    // Join every thread, so a failure leaves no node unaccounted for.
    let mut nodes = BTreeMap::new();
    let mut failures = Vec::new();
    for (id, thread) in starting {
        match thread.join() {
            Ok(broker) => {
                nodes.insert(id, broker);
            }
            Err(payload) => {
                failures.push(format!("node {id}: {}", panic_message(payload.as_ref())))
            }
        }
    }
    (nodes, failures)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Resume paused nodes so the brokers' Drop kills running processes.
        for &id in &self.paused {
            if let Some(b) = self.nodes.get(&id).filter(|b| b.is_running()) {
                // SAFETY: kill(2) with a pid of a child we started and have
                // not reaped (it is still `running`); no memory involved.
                unsafe { libc::kill(b.pid() as libc::pid_t, libc::SIGCONT) };
            }
        }
        self.paused.clear();
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid of a child we started and have not reaped;
    // no memory is involved.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}) failed: {}",
        std::io::Error::last_os_error()
    );
}

/// The message of a panic payload (a `String` or `&str`), for re-raising.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".into())
}

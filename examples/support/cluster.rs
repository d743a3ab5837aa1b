//! A 3-node Sluice cluster on this machine for the replication probes
//! (`replication_catchup`, `replication_failover`): every node a controller
//! voter and a broker, on free loopback ports, with its data and log under
//! one root directory. Nodes can be killed, stopped, continued and
//! restarted; dropping the cluster kills every node it started.
//!
//! Not a test harness: every wait is bounded and a failure panics with the
//! node's log path, which is what a probe run by hand needs.

// Each probe includes this file with `#[path]` and uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// How long a node may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long SIGTERM (controlled shutdown) may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
const READY_PREFIX: &str = "sluice listening on ";

pub struct Node {
    pub id: i32,
    pub client_port: u16,
    pub metrics_port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The running process's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node is running").id()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A panicking probe still stops what it started.
impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    voters: String,
    bin: PathBuf,
    /// Flags every node gets on top of identity, ports and data dir.
    extra_args: Vec<String>,
}

/// A free loopback port (bound, read, released: good enough on a machine
/// that is not starting servers by the hundred).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

/// `SLUICE_BIN`, else the release binary of this workspace (or of
/// `CARGO_TARGET_DIR`).
fn broker_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("SLUICE_BIN") {
        return b.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    target.join("release/sluice")
}

impl Cluster {
    /// Starts three nodes under `root` (node-N/ and node-N.log) and waits
    /// for every ready line.
    pub fn start(root: &Path, extra_args: &[String]) -> Cluster {
        let quorum: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let voters = (1..=3)
            .map(|id| format!("{id}@127.0.0.1:{}", quorum[id - 1]))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (1..=3)
            .map(|id| Node {
                id,
                client_port: free_port(),
                metrics_port: free_port(),
                dir: root.join(format!("node-{id}")),
                log: root.join(format!("node-{id}.log")),
                child: None,
            })
            .collect();
        let mut c = Cluster {
            nodes,
            voters,
            bin: broker_bin(),
            extra_args: extra_args.to_vec(),
        };
        // All three before waiting: a node is ready only once the quorum
        // it belongs to has formed.
        let ready: Vec<_> = (1..=3).map(|id| (id, c.launch(id))).collect();
        for (id, rx) in ready {
            c.wait_ready(id, &rx);
        }
        c
    }

    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(Node::addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&self, id: i32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Starts node `id` (again) and waits for its ready line; returns when
    /// it was spawned.
    pub fn spawn(&mut self, id: i32) -> Instant {
        let spawned = Instant::now();
        let rx = self.launch(id);
        self.wait_ready(id, &rx);
        spawned
    }

    fn wait_ready(&self, id: i32, ready: &mpsc::Receiver<()>) {
        if ready.recv_timeout(READY_TIMEOUT).is_err() {
            panic!(
                "node {id} printed no ready line within {}s; see {}",
                READY_TIMEOUT.as_secs(),
                self.node(id).log.display()
            );
        }
    }

    /// Starts node `id`; the receiver hears of its ready line.
    fn launch(&mut self, id: i32) -> mpsc::Receiver<()> {
        let (bin, voters, extra) = (
            self.bin.clone(),
            self.voters.clone(),
            self.extra_args.clone(),
        );
        let n = self.node_mut(id);
        assert!(n.child.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .expect("opening the node log");
        let mut cmd = Command::new(&bin);
        // SAFETY: the closure runs in the forked child before exec and only
        // calls prctl(2), which is async-signal-safe. It makes the node die
        // with this probe even when the probe is killed (`timeout`, SIGKILL)
        // and no destructor runs.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .args(["serve", "--node-id", &id.to_string()])
            .args(["--listen", &n.addr()])
            .args(["--controller-quorum-voters", &voters])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", n.metrics_port)])
            .arg("--data-dir")
            .arg(&n.dir)
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} (set SLUICE_BIN): {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        n.child = Some(child);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            // Keep draining after the ready line so the node never blocks.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with(READY_PREFIX) {
                    let _ = tx.send(());
                }
            }
        });
        rx
    }

    /// kill -9.
    pub fn kill9(&mut self, id: i32) {
        self.node_mut(id).kill9();
    }

    /// SIGTERM (controlled shutdown), SIGKILL after [`STOP_TIMEOUT`].
    pub fn stop(&mut self, id: i32) {
        let n = self.node_mut(id);
        let Some(child) = n.child.as_mut() else {
            return;
        };
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                eprintln!("node {id} did not stop within {STOP_TIMEOUT:?}; killing it");
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        n.kill9();
    }

    /// Stops every running node (controlled shutdown).
    pub fn stop_all(&mut self) {
        for id in 1..=3 {
            self.stop(id);
        }
    }

    /// A counter from node `id`'s /metrics; `None` if it cannot be read.
    pub fn metric(&self, id: i32, name: &str) -> Option<f64> {
        let mut s = TcpStream::connect(("127.0.0.1", self.node(id).metrics_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.take(1 << 20).read_to_string(&mut body).ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// kill(2) of a process this probe started.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is a child
    // this program spawned and has not reaped.
    unsafe { libc::kill(pid as i32, sig) };
}

/// utime + stime of a live process, seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(end) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[end + 1..].split_whitespace().collect();
    // After the command name: field 3 (state) first; utime 14, stime 15.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// One partition as Metadata shows it.
#[derive(Debug, Clone)]
pub struct PartitionView {
    pub id: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// `topic`'s partitions from one Metadata request; empty on error.
pub fn partitions(bootstrap: &str, topic: &str) -> Vec<PartitionView> {
    let Ok(c) = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("log_level", "0")
        .create::<BaseConsumer>()
    else {
        return Vec::new();
    };
    let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return Vec::new();
    };
    let Some(t) = md.topics().first().filter(|t| t.error().is_none()) else {
        return Vec::new();
    };
    let mut out: Vec<PartitionView> = t
        .partitions()
        .iter()
        .map(|p| PartitionView {
            id: p.id(),
            leader: p.leader(),
            replicas: p.replicas().to_vec(),
            isr: p.isr().to_vec(),
        })
        .collect();
    out.sort_by_key(|p| p.id);
    out
}

/// Polls Metadata every 100 ms until `ok` holds for `topic`'s partitions
/// (at least one); `None` after `limit`.
pub fn wait_partitions(
    bootstrap: &str,
    topic: &str,
    limit: Duration,
    ok: impl Fn(&[PartitionView]) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let ps = partitions(bootstrap, topic);
        if !ps.is_empty() && ok(&ps) {
            return Some(start.elapsed());
        }
        thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Every partition led and with its whole replica set in sync.
pub fn all_in_sync(ps: &[PartitionView]) -> bool {
    ps.iter()
        .all(|p| p.leader > 0 && !p.replicas.is_empty() && p.isr.len() == p.replicas.len())
}

/// The middle value (upper middle for an even count); 0 for none.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Creates `topic` (retrying while the quorum settles) and waits until its
/// `partitions` partitions are led with every replica in sync; both bounded
/// by `limit`.
pub fn create_topic_in_sync(
    bootstrap: &str,
    topic: &rdkafka::admin::NewTopic<'_>,
    partitions: i32,
    limit: Duration,
) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let start = Instant::now();
    loop {
        let r = futures::executor::block_on(admin.create_topics([topic], &opts));
        match r.as_deref() {
            Ok([Ok(_)]) => break,
            _ if start.elapsed() < limit => thread::sleep(Duration::from_millis(500)),
            _ => panic!("CreateTopics failed for {limit:?}: {r:?}"),
        }
    }
    wait_partitions(bootstrap, topic.name, limit, |ps| {
        ps.len() == partitions as usize && all_in_sync(ps)
    })
    .expect("the new topic's replicas never all joined the ISR");
}

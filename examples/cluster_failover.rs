//! Failover and metadata propagation of a 3-node cluster on this machine
//! (issue 10's measurements; a probe, not a test):
//! `cargo run --release --example cluster_failover -- [ROUNDS]`.
//!
//! - failover: kill -9 of partition 0's leader, then the time until a
//!   librdkafka producer with default settings (acks=all) gets its first
//!   successful delivery to that partition; the killed node restarts
//!   between rounds.
//! - propagation: CreateTopics answered by node 1, then the time until
//!   nodes 2 and 3 list the topic in Metadata.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

struct Node {
    id: i32,
    child: Option<Child>,
    client: u16,
    dir: std::path::PathBuf,
    voters: String,
}

fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A panicking probe still stops what it started.
impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl Node {
    fn spawn(&mut self) {
        let bin = std::env::var_os("SLUICE_BIN").map_or_else(
            || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/sluice"),
            std::path::PathBuf::from,
        );
        let mut child = Command::new(bin)
            .args(["serve", "--shards", "1", "--node-id", &self.id.to_string()])
            .args(["--listen", &format!("127.0.0.1:{}", self.client)])
            .args(["--controller-quorum-voters", &self.voters])
            .arg("--data-dir")
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.with_extension("log"))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
            )
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || for _ in BufReader::new(stdout).lines() {});
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn metadata_leader(bootstrap: &str, topic: &str) -> Option<i32> {
    let c: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
    let t = md.topics().first()?;
    t.partitions().first().map(|p| p.leader())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let root = tempfile::tempdir().unwrap();
    eprintln!("node logs: {}/nN.log", root.path().display());
    let voters: Vec<String> = (1..=3)
        .map(|id| format!("{id}@127.0.0.1:{}", port()))
        .collect();
    let voters = voters.join(",");
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| Node {
            id,
            child: None,
            client: port(),
            dir: root.path().join(format!("n{id}")),
            voters: voters.clone(),
        })
        .collect();
    for n in &mut nodes {
        n.spawn();
    }
    let bootstrap: String = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.client))
        .collect::<Vec<_>>()
        .join(",");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    // Wait for the cluster.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = NewTopic::new("failover", 1, TopicReplication::Fixed(3));
        let r = futures::executor::block_on(admin.create_topics([&t], &opts));
        if matches!(r.as_deref(), Ok([Ok(_)])) {
            break;
        }
        assert!(Instant::now() < deadline, "cluster did not form: {r:?}");
        thread::sleep(Duration::from_millis(500));
    }

    // Metadata propagation.
    let mut propagation = Vec::new();
    for round in 0..rounds {
        let name = format!("prop-{round}");
        let via: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set(
                "bootstrap.servers",
                format!("127.0.0.1:{}", nodes[0].client),
            )
            .create()
            .unwrap();
        let t = NewTopic::new(&name, 1, TopicReplication::Fixed(3));
        futures::executor::block_on(via.create_topics([&t], &opts)).unwrap();
        let answered = Instant::now();
        for n in &nodes[1..] {
            let b = format!("127.0.0.1:{}", n.client);
            while metadata_leader(&b, &name).is_none_or(|l| l < 0) {
                thread::sleep(Duration::from_millis(1));
            }
        }
        propagation.push(answered.elapsed().as_secs_f64() * 1000.0);
    }

    // Failover.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let mut failover = Vec::new();
    for round in 0..rounds {
        // A fresh topic each round: without replication a restarted broker
        // never rejoins an ISR, so an old topic's ISR only shrinks.
        let topic = format!("failover-{round}");
        let t = NewTopic::new(&topic, 1, TopicReplication::Fixed(3));
        futures::executor::block_on(admin.create_topics([&t], &opts)).unwrap();
        let topic: &'static str = Box::leak(topic.into_boxed_str());
        let leader = loop {
            if let Some(l) = metadata_leader(&bootstrap, topic).filter(|l| *l > 0) {
                break l;
            }
            thread::sleep(Duration::from_millis(100));
        };
        // Warm: one delivery before the kill.
        futures::executor::block_on(
            producer.send(
                FutureRecord::<str, str>::to(topic)
                    .partition(0)
                    .payload("warm"),
                Timeout::After(Duration::from_secs(30)),
            ),
        )
        .unwrap();
        let victim = nodes.iter_mut().find(|n| n.id == leader).unwrap();
        let killed = Instant::now();
        victim.kill9();
        let first_ok: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let done = Arc::new(AtomicBool::new(false));
        while !done.load(Ordering::SeqCst) {
            let p = producer.clone();
            let first = first_ok.clone();
            let done2 = done.clone();
            thread::spawn(move || {
                let f = p.send(
                    FutureRecord::<str, str>::to(topic)
                        .partition(0)
                        .payload("x"),
                    Timeout::After(Duration::from_secs(60)),
                );
                if futures::executor::block_on(f).is_ok() {
                    let mut g = first.lock().unwrap();
                    if g.is_none() {
                        *g = Some(Instant::now());
                    }
                    done2.store(true, Ordering::SeqCst);
                }
            });
            // One attempt every 50 ms: the resolution of the figure, and a
            // bound on threads waiting meanwhile.
            thread::sleep(Duration::from_millis(50));
            assert!(killed.elapsed() < Duration::from_secs(120), "no failover");
        }
        let at = first_ok.lock().unwrap().unwrap();
        failover.push((at - killed).as_secs_f64() * 1000.0);
        let victim = nodes.iter_mut().find(|n| n.id == leader).unwrap();
        victim.spawn();
        // Until it is registered and unfenced again.
        thread::sleep(Duration::from_secs(5));
    }
    for n in &mut nodes {
        n.kill9();
    }
    println!("metadata propagation ms (CreateTopics answered -> visible on the other 2 nodes): {propagation:.1?}, median {:.1}", median(propagation.clone()));
    println!("failover ms (kill -9 of the leader -> first acknowledged produce): {failover:.0?}, median {:.0}", median(failover.clone()));
}

//! Follower catch-up from a cold start on a 3-node cluster on this machine
//! (a probe, not a test):
//! `cargo run --release --example replication_catchup -- [--gib 2] [--partitions 8] [--out FILE.md] [-- BROKER FLAGS]`.
//!
//! 1. A topic of replication factor 3 (min.insync.replicas=2) whose
//!    partitions are all led by nodes 1 and 2, node 3 following every one.
//! 2. Node 3 stops (controlled shutdown) while its replicas are still
//!    empty, so everything produced next must be replicated to it.
//! 3. `--gib` GiB of incompressible 1 KiB messages (acks=all) go to the
//!    topic, spread evenly over its partitions.
//! 4. Node 3 restarts. Caught up: for every partition, node 3's log files
//!    hold as many bytes as the leader's (appends are byte-identical), and,
//!    separately, Metadata shows node 3 back in every ISR.
//!
//! Reported: bytes replicated (node 3's `sluice_replica_fetched_bytes_total`),
//! catch-up MB/s (from the ready line to equal logs), and CPU seconds
//! (utime+stime from /proc/PID/stat) of the follower and of both leaders
//! over the catch-up, per replicated GiB.

#[path = "support/cluster.rs"]
mod cluster;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use cluster::{cpu_seconds, create_topic_in_sync, wait_partitions, Cluster};

const TOPIC: &str = "catchup";
const MESSAGE_BYTES: usize = 1024;
const FOLLOWER: i32 = 3;
/// Bounds on the phases, so the probe always ends.
const PRODUCE_LIMIT: Duration = Duration::from_secs(900);
const CATCHUP_LIMIT: Duration = Duration::from_secs(900);
const SETUP_LIMIT: Duration = Duration::from_secs(60);
const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

/// `-- FLAGS` after the options go to every broker.
#[derive(clap::Parser)]
struct Args {
    /// GiB to produce while the follower is down.
    #[arg(long, default_value_t = 2.0)]
    gib: f64,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i32).range(2..=1000))]
    partitions: i32,
    /// Also write the report to this Markdown file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    #[arg(last = true)]
    broker_args: Vec<String>,
}

fn args() -> Args {
    let a = <Args as clap::Parser>::parse();
    assert!(a.gib > 0.0 && a.gib <= 64.0, "--gib must be in (0, 64]");
    a
}

fn log_bytes(data_dir: &Path, topic: &str, p: i32) -> u64 {
    let Ok(dir) = std::fs::read_dir(data_dir.join(format!("{topic}-{p}"))) else {
        return 0;
    };
    dir.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn create_topic(bootstrap: &str, partitions: i32) {
    // Leaders alternate between nodes 1 and 2 (the first replica is the
    // preferred leader); node 3 follows everything.
    let assignment: Vec<Vec<i32>> = (0..partitions)
        .map(|p| {
            let lead = 1 + p % 2;
            vec![lead, 3 - lead, FOLLOWER]
        })
        .collect();
    let refs: Vec<&[i32]> = assignment.iter().map(Vec::as_slice).collect();
    let topic = NewTopic::new(TOPIC, partitions, TopicReplication::Variable(&refs))
        .set("min.insync.replicas", "2");
    create_topic_in_sync(bootstrap, &topic, partitions, SETUP_LIMIT);
}

/// Produces `bytes` of 1 KiB messages, round robin over partitions, acks=all.
fn produce(bootstrap: &str, partitions: i32, bytes: u64) -> Duration {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "1048576")
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    let messages = bytes.div_ceil(MESSAGE_BYTES as u64);
    // Incompressible: a fixed xorshift stream, each message a window of it.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..MESSAGE_BYTES * 64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let start = Instant::now();
    for i in 0..messages {
        let at = (i as usize % 63) * MESSAGE_BYTES;
        let payload = &noise[at..at + MESSAGE_BYTES];
        let mut record = BaseRecord::<(), [u8]>::to(TOPIC)
            .partition((i % partitions as u64) as i32)
            .payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    assert!(start.elapsed() < PRODUCE_LIMIT, "producing took too long");
                    thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("flushing the producer");
    start.elapsed()
}

fn main() {
    let a = args();
    let root = tempfile::tempdir().expect("temp dir");
    eprintln!("node data and logs: {}", root.path().display());
    let mut c = Cluster::start(root.path(), &a.broker_args);
    let bootstrap = c.bootstrap();
    create_topic(&bootstrap, a.partitions);

    eprintln!("stopping node {FOLLOWER} (its replicas are empty)...");
    c.stop(FOLLOWER);
    let bytes = (a.gib * GIB) as u64;
    eprintln!("producing {:.2} GiB...", a.gib);
    let took = produce(&bootstrap, a.partitions, bytes);
    eprintln!(
        "produced in {:.1}s ({:.0} MB/s, RF3 with node {FOLLOWER} down)",
        took.as_secs_f64(),
        bytes as f64 / MIB / took.as_secs_f64()
    );
    // Leaders' logs are what node 3 must reach; nothing writes them now.
    let leader_dir = |p: i32| &c.node(1 + p % 2).dir;
    let target: Vec<u64> = (0..a.partitions)
        .map(|p| log_bytes(leader_dir(p), TOPIC, p))
        .collect();
    let target_total: u64 = target.iter().sum();
    let leaders_cpu0 = cpu_seconds(c.node(1).pid()) + cpu_seconds(c.node(2).pid());

    eprintln!("restarting node {FOLLOWER}...");
    let spawned = c.spawn(FOLLOWER);
    let ready = spawned.elapsed();
    let follower_dir = c.node(FOLLOWER).dir.clone();
    let caught_up = loop {
        let equal =
            (0..a.partitions).all(|p| log_bytes(&follower_dir, TOPIC, p) == target[p as usize]);
        if equal {
            break spawned.elapsed();
        }
        assert!(
            spawned.elapsed() < CATCHUP_LIMIT,
            "node {FOLLOWER} did not catch up within {CATCHUP_LIMIT:?}"
        );
        thread::sleep(Duration::from_millis(20));
    };
    let follower_cpu = cpu_seconds(c.node(FOLLOWER).pid());
    let leaders_cpu = cpu_seconds(c.node(1).pid()) + cpu_seconds(c.node(2).pid()) - leaders_cpu0;
    let fetched = c
        .metric(FOLLOWER, "sluice_replica_fetched_bytes_total")
        .unwrap_or(f64::NAN);
    let isr = wait_partitions(&bootstrap, TOPIC, CATCHUP_LIMIT, |ps| {
        ps.iter().all(|p| p.isr.contains(&FOLLOWER))
    })
    .map(|_| spawned.elapsed());
    c.stop_all();

    let replicated = target_total as f64;
    let window = (caught_up - ready).as_secs_f64();
    let md = format!(
        "| measure | value |\n| --- | --- |\n\
         | partitions (leaders on nodes 1, 2; node 3 follows all) | {} |\n\
         | bytes to replicate (leaders' log bytes) | {:.3} GiB |\n\
         | bytes node 3 fetched (`sluice_replica_fetched_bytes_total`) | {:.3} GiB |\n\
         | restart -> ready line | {:.2} s |\n\
         | restart -> logs equal to the leaders' | {:.2} s |\n\
         | restart -> node 3 in every ISR | {} |\n\
         | **catch-up rate** (ready -> logs equal) | **{:.0} MB/s** |\n\
         | follower CPU (restart -> logs equal) | {:.2} s = **{:.2} s/GiB** |\n\
         | both leaders' CPU (restart -> logs equal) | {:.2} s = **{:.2} s/GiB** |\n\
         | load phase (acks=all, node 3 down) | {:.2} GiB in {:.1} s |\n",
        a.partitions,
        replicated / GIB,
        fetched / GIB,
        ready.as_secs_f64(),
        caught_up.as_secs_f64(),
        isr.map_or("not within the bound".into(), |d| format!(
            "{:.2} s",
            d.as_secs_f64()
        )),
        replicated / MIB / window,
        follower_cpu,
        follower_cpu / (replicated / GIB),
        leaders_cpu,
        leaders_cpu / (replicated / GIB),
        bytes as f64 / GIB,
        took.as_secs_f64(),
    );
    println!("{md}");
    if let Some(out) = &a.out {
        std::fs::write(out, &md).expect("writing --out");
        eprintln!("wrote {}", out.display());
    }
}

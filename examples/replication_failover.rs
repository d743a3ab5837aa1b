//! Failover under acks=all on a 3-node cluster on this machine (a probe,
//! not a test; issue 10's `cluster_failover` measured it without
//! replication):
//! `cargo run --release --example replication_failover -- [--rounds 5] [--partitions 6] [--out FILE.md] [-- BROKER FLAGS]`.
//!
//! A producer (acks=all, one message per partition every
//! [`SEND_INTERVAL`]) writes without pause to a topic of replication factor
//! 3 with min.insync.replicas=2. Each round kill -9s the broker leading
//! partition 0 and measures, for every partition that broker led, the time
//! from the kill to the first acknowledged write of a message produced
//! after the kill: the first such partition ("first ack") and the last
//! ("all its partitions"). The killed node restarts and the round ends once
//! every replica is back in its ISR, which is timed too.

#[path = "support/cluster.rs"]
mod cluster;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use cluster::{all_in_sync, create_topic_in_sync, median, partitions, wait_partitions, Cluster};

const TOPIC: &str = "failover";
/// One message per partition this often: the figure's resolution.
const SEND_INTERVAL: Duration = Duration::from_millis(5);
/// Bounds, so the probe always ends.
const FAILOVER_LIMIT: Duration = Duration::from_secs(120);
const REJOIN_LIMIT: Duration = Duration::from_secs(180);
const SETUP_LIMIT: Duration = Duration::from_secs(60);

/// Acknowledgements since the last kill, per partition.
struct Acks {
    /// Only messages produced at or after this count.
    since: Option<Instant>,
    /// First acknowledgement per partition of such a message.
    first: Vec<Option<Instant>>,
    /// Deliveries that failed (any time), counted for the report.
    failed: u64,
}

struct Recorder(Arc<Mutex<Acks>>);

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    /// When the message was handed to the producer.
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, produced: Box<Instant>) {
        let now = Instant::now();
        let mut a = self.0.lock().unwrap();
        match result {
            Ok(m) => {
                let p = m.partition() as usize;
                if a.since.is_some_and(|s| *produced >= s) && a.first[p].is_none() {
                    a.first[p] = Some(now);
                }
            }
            Err(_) => a.failed += 1,
        }
    }
}

/// `-- FLAGS` after the options go to every broker.
#[derive(clap::Parser)]
struct Args {
    /// Kills of a leader's broker, each measured.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: u64,
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..=1000))]
    partitions: i32,
    /// Also write the report to this Markdown file.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    #[arg(last = true)]
    broker_args: Vec<String>,
}

fn args() -> Args {
    <Args as clap::Parser>::parse()
}

fn create_topic(bootstrap: &str, partitions: i32) {
    let topic = NewTopic::new(TOPIC, partitions, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2");
    create_topic_in_sync(bootstrap, &topic, partitions, SETUP_LIMIT);
}

/// One round's figures, ms.
struct Round {
    victim: i32,
    led: usize,
    first_ms: f64,
    all_ms: f64,
    rejoin_ms: Option<f64>,
}

fn main() {
    let a = args();
    let root = tempfile::tempdir().expect("temp dir");
    eprintln!("node data and logs: {}", root.path().display());
    let mut c = Cluster::start(root.path(), &a.broker_args);
    let bootstrap = c.bootstrap();
    create_topic(&bootstrap, a.partitions);

    let acks = Arc::new(Mutex::new(Acks {
        since: None,
        first: vec![None; a.partitions as usize],
        failed: 0,
    }));
    let producer: ThreadedProducer<Recorder> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("broker.address.family", "v4")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", FAILOVER_LIMIT.as_millis().to_string())
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .create_with_context(Recorder(acks.clone()))
        .expect("producer");
    let producer = Arc::new(producer);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (producer, stop, n) = (producer.clone(), stop.clone(), a.partitions);
        thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for p in 0..n {
                    let r = BaseRecord::<(), str, Box<Instant>>::with_opaque_to(
                        TOPIC,
                        Box::new(Instant::now()),
                    )
                    .partition(p)
                    .payload("x");
                    // A full queue (leaderless for long) drops the message:
                    // the next tick sends another.
                    let _ = producer.send(r);
                }
                thread::sleep(SEND_INTERVAL);
            }
        })
    };

    let mut rounds = Vec::new();
    for round in 0..a.rounds {
        // Writes flow before the kill.
        thread::sleep(Duration::from_secs(2));
        let before = partitions(&bootstrap, TOPIC);
        let victim = before.first().map_or(-1, |p| p.leader);
        assert!(victim > 0, "partition 0 has no leader: {before:?}");
        let led: Vec<usize> = before
            .iter()
            .filter(|p| p.leader == victim)
            .map(|p| p.id as usize)
            .collect();
        // Counted from just before SIGKILL: no message produced from here
        // on can have been acknowledged by the victim.
        let killed = Instant::now();
        {
            let mut g = acks.lock().unwrap();
            g.since = Some(killed);
            g.first.iter_mut().for_each(|f| *f = None);
        }
        c.kill9(victim);
        let times: Vec<Instant> = loop {
            let g = acks.lock().unwrap();
            let times: Option<Vec<Instant>> = led.iter().map(|&p| g.first[p]).collect();
            drop(g);
            if let Some(t) = times {
                break t;
            }
            assert!(
                killed.elapsed() < FAILOVER_LIMIT,
                "round {round}: no acknowledged write to node {victim}'s partitions \
                 {led:?} within {FAILOVER_LIMIT:?}"
            );
            thread::sleep(Duration::from_millis(1));
        };
        let ms = |t: &Instant| (*t - killed).as_secs_f64() * 1000.0;
        let first_ms = times.iter().map(ms).fold(f64::INFINITY, f64::min);
        let all_ms = times.iter().map(ms).fold(0.0, f64::max);
        let restarted = c.spawn(victim);
        let rejoin = wait_partitions(&bootstrap, TOPIC, REJOIN_LIMIT, all_in_sync)
            .map(|_| restarted.elapsed().as_secs_f64() * 1000.0);
        eprintln!(
            "round {round}: killed node {victim} (led {} partitions): first ack {first_ms:.0} ms, \
             all {all_ms:.0} ms; back in every ISR {} after restart",
            led.len(),
            rejoin.map_or("not within the bound".into(), |r| format!("{r:.0} ms"))
        );
        rounds.push(Round {
            victim,
            led: led.len(),
            first_ms,
            all_ms,
            rejoin_ms: rejoin,
        });
        if rejoin.is_none() {
            eprintln!("stopping early: the restarted node did not rejoin the ISR");
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().expect("sender thread");
    let _ = producer.flush(Duration::from_secs(10));
    let failed = acks.lock().unwrap().failed;
    c.stop_all();

    let mut md = String::from(
        "| round | killed node | its partitions | kill -> first ack ms | kill -> all its partitions acked ms | restart -> all replicas in ISR ms |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for (i, r) in rounds.iter().enumerate() {
        md += &format!(
            "| {i} | {} | {} | {:.0} | {:.0} | {} |\n",
            r.victim,
            r.led,
            r.first_ms,
            r.all_ms,
            r.rejoin_ms.map_or("-".into(), |v| format!("{v:.0}"))
        );
    }
    let col = |f: fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let rejoined: Vec<f64> = rounds.iter().filter_map(|r| r.rejoin_ms).collect();
    md += &format!(
        "| **median** | | | **{:.0}** | **{:.0}** | {:.0} |\n\n\
         {} partitions, one acks=all write per partition every {} ms; deliveries that \
         failed over the whole run (timed out or refused while leaderless): {failed}.\n",
        col(|r| r.first_ms),
        col(|r| r.all_ms),
        median(&rejoined),
        a.partitions,
        SEND_INTERVAL.as_millis(),
    );
    println!("{md}");
    if let Some(out) = &a.out {
        std::fs::write(out, &md).expect("writing --out");
        eprintln!("wrote {}", out.display());
    }
}

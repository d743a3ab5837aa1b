//! Wide fetch benchmark: what a consumer's sessionless fetch costs the
//! broker per partition it names, when (as in most of a wide fetch) the
//! partitions have nothing new.
//!
//! ```text
//! cargo build --release            # the broker binary: target/release/sluice
//! cargo run --release --example wide_fetch -- [--topics 10] [--partitions 1000] [--secs 10]
//! ```
//!
//! Starts a one-shard broker (`--sluice PATH`, default the release binary
//! next to this example) with a temp data dir, creates `--topics` topics of
//! `--partitions` partitions, and then, for `--secs` seconds, sends one
//! Fetch v12 after another naming every partition at its end (no session,
//! `max_wait_ms` 0), reading each answer whole. Reports fetches a second
//! and the broker's CPU (utime + stime from /proc, over the fetch loop
//! only) per fetch and per partition named. librdkafka fetches this way:
//! it does not use fetch sessions, so each of its fetches names every
//! partition it consumes from that broker.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

#[path = "support/wire.rs"]
mod wire;

const FETCH_VERSION: i16 = 12;

struct Args {
    topics: usize,
    partitions: i32,
    secs: u64,
    sluice: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        topics: 10,
        partitions: 1000,
        secs: 10,
        sluice: default_sluice(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--topics" => args.topics = value.parse().unwrap_or_else(|_| usage()),
            "--partitions" => args.partitions = value.parse().unwrap_or_else(|_| usage()),
            "--secs" => args.secs = value.parse().unwrap_or_else(|_| usage()),
            "--sluice" => args.sluice = value.into(),
            _ => usage(),
        }
    }
    args
}

fn usage() -> ! {
    eprintln!("usage: wide_fetch [--topics N] [--partitions N] [--secs N] [--sluice PATH]");
    std::process::exit(2)
}

fn default_sluice() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("sluice")));
    beside
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/sluice"))
}

/// The broker, killed when dropped.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &Args, data_dir: &std::path::Path) -> (Broker, String) {
    let mut child = Command::new(&args.sluice)
        .args(["serve", "--listen", "127.0.0.1:0", "--shards", "1"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", args.sluice.display()));
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let broker = Broker(child);
    let addr = loop {
        let line = lines
            .next()
            .and_then(Result::ok)
            .expect("the broker exited before listening");
        if let Some(a) = line.trim().strip_prefix("sluice listening on ") {
            break a.trim().to_string();
        }
    };
    // Drained so the broker never blocks writing to it.
    std::thread::spawn(move || for _ in lines {});
    (broker, addr)
}

fn topic_name(t: usize) -> String {
    format!("wide-{t}")
}

fn create_topics(s: &mut TcpStream, args: &Args) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(120_000)
        .with_topics(
            (0..args.topics)
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic_name(t))))
                        .with_num_partitions(args.partitions)
                        .with_replication_factor(1)
                })
                .collect(),
        );
    s.write_all(&wire::frame(4, 1, "wide-fetch", &req))
        .expect("send CreateTopics");
    let mut buf = Vec::new();
    wire::read_frame(s, &mut buf);
    let mut b = Bytes::from(buf);
    ResponseHeader::decode(&mut b, ApiKey::CreateTopics.response_header_version(4))
        .expect("response header");
    let resp = CreateTopicsResponse::decode(&mut b, 4).expect("CreateTopics response");
    for t in &resp.topics {
        assert_eq!(t.error_code, 0, "CreateTopics: {resp:?}");
    }
}

fn fetch_request(args: &Args) -> Vec<u8> {
    let topics = (0..args.topics)
        .map(|t| {
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic_name(t))))
                .with_partitions(
                    (0..args.partitions)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                )
        })
        .collect();
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    wire::frame(FETCH_VERSION, 1, "wide-fetch", &req)
}

fn main() {
    let args = parse_args();
    assert!(
        args.sluice.is_file(),
        "no broker binary at {}: run `cargo build --release` first (or pass --sluice PATH)",
        args.sluice.display()
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let (broker, addr) = start(&args, dir.path());
    let mut s = TcpStream::connect(&addr).expect("connect");
    s.set_nodelay(true).expect("TCP_NODELAY");
    let creating = Instant::now();
    create_topics(&mut s, &args);
    println!(
        "created {} topics x {} partitions in {:.1} s; fetching for {} s",
        args.topics,
        args.partitions,
        creating.elapsed().as_secs_f64(),
        args.secs
    );
    let request = fetch_request(&args);
    let mut buf = Vec::new();
    // Warm up: every partition's first read, and the allocator's pools.
    for _ in 0..20 {
        s.write_all(&request).expect("send Fetch");
        wire::read_frame(&mut s, &mut buf);
    }
    let pid = broker.0.id();
    let cpu_before = wire::cpu_seconds(pid);
    let started = Instant::now();
    let mut fetches = 0u64;
    while started.elapsed() < Duration::from_secs(args.secs) {
        s.write_all(&request).expect("send Fetch");
        wire::read_frame(&mut s, &mut buf);
        fetches += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = wire::cpu_seconds(pid) - cpu_before;
    let named = args.topics as f64 * f64::from(args.partitions);
    println!(
        "{} partitions a fetch ({} topics x {}), request {} B, answer {} B",
        named,
        args.topics,
        args.partitions,
        request.len(),
        buf.len() + 4
    );
    println!(
        "{fetches} fetches in {elapsed:.1} s ({:.0}/s); broker CPU {cpu:.2} s: {:.1} us a fetch, {:.0} ns a partition",
        fetches as f64 / elapsed,
        cpu * 1e6 / fetches as f64,
        cpu * 1e9 / (fetches as f64 * named)
    );
}

//! Fetch benchmark: zero-copy (sendfile) against copying fetches, and both
//! against a plain loopback TCP transfer of the same bytes.
//!
//! ```text
//! cargo build --release            # the broker binary: target/release/sluice
//! cargo run --release --example fetch_bench -- [--gib 4] [--message-bytes 1024]
//! ```
//!
//! Fills one partition with `--gib` GiB of `--message-bytes` messages (raw
//! Produce of pre-built ~1 MiB batches, pipelined), so the log sits in the
//! page cache; then, for `fetch.zero_copy = true` and `false` (the same log,
//! the broker restarted in between), reads it all back with one raw Fetch
//! loop (`--fetch-max-bytes` per response). Reports MB/s (10^6 bytes) and
//! the broker's CPU seconds (utime + stime from /proc/<pid>/stat, over the
//! consume phase only) per GiB delivered. With zero copy on, the same log is
//! also read with Fetch v3, which the broker down-converts to magic 1
//! messages in memory (issue 16): its CPU is per GiB of the same log bytes. Two baselines run in the same
//! process, their CPU being the sending thread's: the loopback baseline
//! sends the same number of bytes between two threads over 127.0.0.1 with
//! plain write/read calls of a 1 MiB buffer; the plain-sendfile baseline
//! sends the partition's segment files with blocking sendfile(2) from a
//! thread, which is the kernel's own ceiling for zero copy on this machine.
//!
//! The zero-copy broker also has a TLS listener (issue 15; certificates made
//! with rcgen in a temp dir): the same log is fetched over rustls, which
//! encrypts in user space and so takes the copying path; its CPU per GiB is
//! reported against plaintext.
//!
//! Every consumer reads in 1 MiB chunks and keeps no record bytes (the fetch
//! loop follows batch headers as they stream past), so the receivers do the
//! same work per byte. Memory stays bounded: one batch and one produce
//! frame on the producer side, one read buffer on the consumer side.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, ProduceRequest, ProduceResponse,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};

#[path = "support/wire.rs"]
mod wire;

const TOPIC: &str = "fetch-bench";
const GIB: f64 = (1u64 << 30) as f64;
/// Target size of one produced batch.
const BATCH_BYTES: usize = 1 << 20;
/// Batches per Produce request.
const BATCHES_PER_PRODUCE: usize = 16;
/// Produce requests in flight on the connection.
const PRODUCE_WINDOW: usize = 4;
/// Read size of the consumers, the baseline's and the fetch loop's alike.
const STREAM_CHUNK_BYTES: usize = 1 << 20;

struct Args {
    gib: f64,
    message_bytes: usize,
    fetch_max_bytes: i32,
    sluice: PathBuf,
    data_dir: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: fetch_bench [--gib N (4)] [--message-bytes N (1024)] [--fetch-max-bytes N (67108864)] \
         [--sluice PATH (target/release/sluice)] [--data-dir DIR (a temp dir)]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        gib: 4.0,
        message_bytes: 1024,
        fetch_max_bytes: 64 << 20,
        sluice: default_sluice(),
        data_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--gib" => args.gib = value().parse().unwrap_or_else(|_| usage()),
            "--message-bytes" => args.message_bytes = value().parse().unwrap_or_else(|_| usage()),
            "--fetch-max-bytes" => {
                args.fetch_max_bytes = value().parse().unwrap_or_else(|_| usage())
            }
            "--sluice" => args.sluice = value().into(),
            "--data-dir" => args.data_dir = Some(value().into()),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if args.gib <= 0.0 || args.message_bytes == 0 || args.fetch_max_bytes <= 0 {
        usage();
    }
    args
}

/// `sluice` next to this example's target dir (`<target>/release/examples/..`),
/// else `target/release/sluice` in the crate.
fn default_sluice() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(release) = exe.parent().and_then(|examples| examples.parent()) {
            let candidate = release.join("sluice");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/sluice")
}

// ---------------------------------------------------------------------------
// The broker process
// ---------------------------------------------------------------------------

struct Broker {
    child: Child,
    addr: String,
    /// The TLS listener's address, when started with one.
    tls_addr: Option<String>,
}

impl Broker {
    /// `tls`: a config file naming a PLAINTEXT and a `TLS` (SSL) listener.
    fn start(
        args: &Args,
        data_dir: &std::path::Path,
        zero_copy: bool,
        tls: Option<&std::path::Path>,
    ) -> Broker {
        assert!(
            args.sluice.is_file(),
            "no broker binary at {}: run `cargo build --release` first (or pass --sluice PATH)",
            args.sluice.display()
        );
        let mut child = Command::new(&args.sluice)
            .args(["serve", "--listen", "127.0.0.1:0", "--shards", "1"])
            .args(
                tls.map(|c| ["--config".as_ref(), c.as_os_str()])
                    .into_iter()
                    .flatten(),
            )
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--fetch-zero-copy",
                if zero_copy { "true" } else { "false" },
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", args.sluice.display()));
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut tls_addr = None;
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.trim().strip_prefix("sluice listener TLS on ") {
                        tls_addr = Some(a.trim().to_string());
                    }
                    if let Some(a) = line.trim().strip_prefix("sluice listening on ") {
                        break a.trim().to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("broker exited before listening");
                }
            }
        };
        // Keep draining stdout so the broker never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Broker {
            child,
            addr,
            tls_addr,
        }
    }

    /// utime + stime of the broker process, in seconds.
    fn cpu_seconds(&self) -> f64 {
        wire::cpu_seconds(self.child.id())
    }

    fn stop(mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("broker did not stop within 60 s");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// A minimal raw client
// ---------------------------------------------------------------------------

fn frame<R: Request>(version: i16, correlation_id: i32, req: &R) -> Vec<u8> {
    wire::frame(version, correlation_id, "fetch-bench", req)
}

fn decode<R: Decodable>(key: ApiKey, version: i16, buf: &[u8]) -> R {
    let mut b = Bytes::copy_from_slice(buf);
    ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
    R::decode(&mut b, version).unwrap()
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).unwrap();
    s
}

fn create_topic(addr: &str) {
    let mut s = connect(addr);
    let configs = [
        ("segment.bytes", "1073741824"),
        ("max.message.bytes", "16777216"),
        ("retention.bytes", "-1"),
        ("retention.ms", "-1"),
    ];
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str(k))
                            .with_value(Some(StrBytes::from_static_str(v)))
                    })
                    .collect(),
            )]);
    s.write_all(&frame(4, 1, &req)).unwrap();
    let mut buf = Vec::new();
    wire::read_frame(&mut s, &mut buf);
    let resp: CreateTopicsResponse = decode(ApiKey::CreateTopics, 4, &buf);
    assert_eq!(resp.topics[0].error_code, 0, "CreateTopics: {resp:?}");
}

/// One uncompressed batch of `count` records of `message_bytes` bytes.
fn build_batch(count: usize, message_bytes: usize) -> Bytes {
    let value: Vec<u8> = (0..message_bytes).map(|i| (i * 31 % 251) as u8).collect();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let records: Vec<sluice::record::build::RecordSpec<'_>> = (0..count)
        .map(|_| (None, Some(&value[..]), ts, &[][..]))
        .collect();
    sluice::record::build::build_batch(0, &records)
}

/// Produces about `target` bytes of `message_bytes` messages; returns
/// (messages, batch bytes written).
fn fill(addr: &str, target: u64, message_bytes: usize) -> (u64, u64) {
    let per_batch = (BATCH_BYTES / (message_bytes + 16)).max(1);
    let batch = build_batch(per_batch, message_bytes);
    let mut records = BytesMut::with_capacity(batch.len() * BATCHES_PER_PRODUCE);
    for _ in 0..BATCHES_PER_PRODUCE {
        records.extend_from_slice(&batch);
    }
    let request_bytes = records.len() as u64;
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records.freeze()))])]);
    // One frame, re-sent with a new correlation id (bytes 8..12).
    let mut request = frame(7, 0, &req);
    let requests = target.div_ceil(request_bytes);
    let mut s = connect(addr);
    let mut buf = Vec::new();
    let mut sent = 0u64;
    let mut answered = 0u64;
    while answered < requests {
        while sent < requests && sent - answered < PRODUCE_WINDOW as u64 {
            request[8..12].copy_from_slice(&(sent as i32).to_be_bytes());
            s.write_all(&request).expect("send produce");
            sent += 1;
        }
        wire::read_frame(&mut s, &mut buf);
        let resp: ProduceResponse = decode(ApiKey::Produce, 7, &buf);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "produce failed: {p:?}");
        answered += 1;
    }
    let messages = requests * (per_batch * BATCHES_PER_PRODUCE) as u64;
    (messages, requests * request_bytes)
}

/// A Fetch v4 request frame for partition 0 at `offset`.
fn fetch_frame(correlation_id: i32, offset: i64, max_bytes: i32) -> Vec<u8> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let req = kafka_protocol::messages::FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])]);
    frame(4, correlation_id, &req)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Reads exactly `n` bytes into `buf` (cleared first).
fn read_exact_into(s: &mut impl Read, buf: &mut Vec<u8>, n: usize) {
    buf.resize(n, 0);
    s.read_exact(buf).expect("read response");
}

/// Reads the head of a Fetch v4 response for one partition, up to and
/// including the records length: returns (high watermark, records bytes).
fn read_fetch_v4_head(s: &mut impl Read, buf: &mut Vec<u8>) -> (i64, usize) {
    // size, correlation id, throttle_time_ms, topic count, name length
    read_exact_into(s, buf, 4 + 4 + 4 + 4 + 2);
    assert_eq!(be_i32(buf, 12), 1, "one topic");
    let name_len = be_i16(buf, 16) as usize;
    // name, partition count, index, error, high watermark, last stable, aborted count
    read_exact_into(s, buf, name_len + 4 + 4 + 2 + 8 + 8 + 4);
    let mut at = name_len;
    assert_eq!(be_i32(buf, at), 1, "one partition");
    at += 4 + 4;
    let error = be_i16(buf, at);
    assert_eq!(error, 0, "fetch error {error}");
    at += 2;
    let hw = be_i64(buf, at);
    at += 8 + 8;
    let aborted = be_i32(buf, at).max(0) as usize;
    // aborted transactions, records length
    read_exact_into(s, buf, 16 * aborted + 4);
    let len = be_i32(buf, 16 * aborted).max(0) as usize;
    (hw, len)
}

/// Streams `len` record bytes through `buf` (as the loopback receiver does:
/// bounded reads, bytes not kept), following the batch headers as they pass;
/// returns the offset after the last whole batch.
fn stream_batches(s: &mut impl Read, buf: &mut [u8], len: usize) -> Option<i64> {
    // Where the next batch starts, relative to the records' start, and the
    // first 27 bytes of it (base offset .. last offset delta), gathered
    // across reads.
    let mut batch_at = 0usize;
    let mut head = [0u8; 27];
    let mut next = None;
    let mut pos = 0usize;
    while pos < len {
        let want = (len - pos).min(buf.len());
        let n = s.read(&mut buf[..want]).expect("read records");
        assert!(n > 0, "broker closed mid-response");
        let chunk = &buf[..n];
        // Copy out the header bytes of every batch that starts or continues here.
        loop {
            let head_end = batch_at + head.len();
            if batch_at >= pos + n || head_end > len {
                break;
            }
            let from = batch_at.max(pos);
            let to = head_end.min(pos + n);
            head[from - batch_at..to - batch_at].copy_from_slice(&chunk[from - pos..to - pos]);
            if to < head_end {
                break;
            }
            let total = 12 + be_i32(&head, 8) as usize;
            if batch_at + total <= len {
                next = Some(be_i64(&head, 0) + i64::from(be_i32(&head, 23)) + 1);
            }
            batch_at += total;
        }
        pos += n;
    }
    next
}

/// Fetches the whole partition; returns (record bytes, seconds).
fn consume(addr: &str, max_bytes: i32) -> (u64, f64) {
    consume_on(connect(addr), max_bytes)
}

/// The fetch loop over any stream (plain TCP or TLS).
fn consume_on(mut s: impl Read + Write, max_bytes: i32) -> (u64, f64) {
    let mut head = Vec::new();
    let mut buf = vec![0u8; STREAM_CHUNK_BYTES];
    let start = Instant::now();
    let mut offset = 0i64;
    let mut bytes = 0u64;
    let mut correlation_id = 0;
    loop {
        s.write_all(&fetch_frame(correlation_id, offset, max_bytes))
            .unwrap();
        correlation_id += 1;
        let (hw, len) = read_fetch_v4_head(&mut s, &mut head);
        let next = stream_batches(&mut s, &mut buf, len);
        bytes += len as u64;
        offset = next.expect("a fetch below the high watermark returns a batch");
        if offset >= hw {
            break;
        }
    }
    (bytes, start.elapsed().as_secs_f64())
}

/// Fetches the whole partition with Fetch v3 (magic 1 messages, which the
/// broker down-converts); returns (log bytes covered, response record
/// bytes, seconds). The response is read whole: the broker bounds it by
/// `fetch.down_conversion_max_bytes`.
fn consume_down_converted(addr: &str, max_bytes: i32, log_bytes: u64) -> (u64, u64, f64) {
    use kafka_protocol_v3::messages::fetch_request::{FetchPartition, FetchTopic};
    let mut s = connect(addr);
    let mut buf = Vec::new();
    let start = Instant::now();
    let (mut offset, mut bytes, mut correlation_id) = (0i64, 0u64, 0i32);
    loop {
        let mut p = FetchPartition::default();
        p.fetch_offset = offset;
        p.partition_max_bytes = max_bytes;
        let mut t = FetchTopic::default();
        t.topic = kafka_protocol_v3::protocol::StrBytes::from_static_str(TOPIC).into();
        t.partitions = vec![p];
        let mut req = kafka_protocol_v3::messages::FetchRequest::default();
        req.replica_id = (-1).into();
        req.max_wait_ms = 500;
        req.min_bytes = 1;
        req.max_bytes = max_bytes;
        req.topics = vec![t];
        s.write_all(&legacy_frame(3, correlation_id, &req)).unwrap();
        correlation_id += 1;
        read_exact_into(&mut s, &mut buf, 4);
        let size = be_i32(&buf, 0) as usize;
        read_exact_into(&mut s, &mut buf, size);
        // correlation id, throttle, topic count, name, partition count,
        // index, error, high watermark, records length
        let name_len = be_i16(&buf, 12) as usize;
        let mut at = 14 + name_len + 4 + 4;
        assert_eq!(be_i16(&buf, at), 0, "fetch error");
        let hw = be_i64(&buf, at + 2);
        at += 2 + 8;
        let len = be_i32(&buf, at).max(0) as usize;
        at += 4;
        let records = &buf[at..at + len];
        bytes += len as u64;
        let mut last = None;
        let mut pos = 0;
        while pos + 12 <= records.len() {
            last = Some(be_i64(records, pos));
            pos += 12 + be_i32(records, pos + 8) as usize;
        }
        offset = last.expect("a fetch below the high watermark returns messages") + 1;
        if offset >= hw {
            break;
        }
    }
    (log_bytes, bytes, start.elapsed().as_secs_f64())
}

/// A request frame in Kafka 3.x's schemas (for the versions 4.0 dropped).
fn legacy_frame<R: kafka_protocol_v3::protocol::Request>(
    version: i16,
    correlation_id: i32,
    req: &R,
) -> Vec<u8> {
    use kafka_protocol_v3::protocol::Encodable as _;
    let key = kafka_protocol_v3::messages::ApiKey::try_from(R::KEY).unwrap();
    let mut header = kafka_protocol_v3::messages::RequestHeader::default();
    header.request_api_key = R::KEY;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    let mut body = BytesMut::new();
    header
        .encode(&mut body, key.request_header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    let mut out = Vec::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32);
    out.extend_from_slice(&body);
    out
}

/// Sends `bytes` from one thread to another over loopback TCP; returns
/// (seconds, CPU seconds of the sending thread).
fn loopback(bytes: u64, chunk: usize) -> (f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let buf = vec![7u8; chunk];
        let mut left = bytes;
        let cpu_before = thread_cpu_seconds();
        while left > 0 {
            let n = left.min(chunk as u64) as usize;
            s.write_all(&buf[..n]).unwrap();
            left -= n as u64;
        }
        thread_cpu_seconds() - cpu_before
    });
    let secs = receive(addr, bytes, chunk);
    (secs, sender.join().unwrap())
}

/// Connects to `addr` and reads `bytes` in `chunk`-sized reads, keeping
/// nothing; returns the seconds it took.
fn receive(addr: std::net::SocketAddr, bytes: u64, chunk: usize) -> f64 {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut buf = vec![0u8; chunk];
    let start = Instant::now();
    let mut got = 0u64;
    while got < bytes {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the sender closed early");
        got += n as u64;
    }
    start.elapsed().as_secs_f64()
}

/// Sends the partition's segment files over loopback TCP with blocking
/// sendfile(2) from a plain thread: what the kernel does for zero copy with
/// no broker around it. Returns (bytes, seconds, CPU seconds of the sender).
fn loopback_sendfile(data_dir: &std::path::Path, chunk: usize) -> (u64, f64, f64) {
    use std::os::fd::AsRawFd;
    let partition = data_dir.join(format!("{TOPIC}-0"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&partition)
        .unwrap_or_else(|e| panic!("read {}: {e}", partition.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let bytes: u64 = logs.iter().map(|p| p.metadata().unwrap().len()).sum();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let cpu_before = thread_cpu_seconds();
        for log in logs {
            let file = std::fs::File::open(&log).unwrap();
            let mut offset: libc::off_t = 0;
            let mut left = file.metadata().unwrap().len() as usize;
            while left > 0 {
                // SAFETY: both fds are open; offset is a valid pointer.
                let n = unsafe {
                    libc::sendfile(
                        s.as_raw_fd(),
                        file.as_raw_fd(),
                        &mut offset,
                        left.min(chunk),
                    )
                };
                assert!(n > 0, "sendfile: {}", std::io::Error::last_os_error());
                left -= n as usize;
            }
        }
        thread_cpu_seconds() - cpu_before
    });
    let secs = receive(addr, bytes, chunk);
    (bytes, secs, sender.join().unwrap())
}

/// User + system CPU seconds of the calling thread.
fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

struct Row {
    name: &'static str,
    bytes: u64,
    secs: f64,
    cpu: Option<f64>,
}

impl Row {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
    fn cpu_per_gib(&self) -> Option<f64> {
        self.cpu.map(|c| c / (self.bytes as f64 / GIB))
    }
}

/// A CA and a server certificate for 127.0.0.1 (rcgen), and a broker config
/// with a PLAINTEXT and a `TLS` listener; returns the config's path.
fn tls_files(dir: &std::path::Path) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let config = dir.join("broker.toml");
    std::fs::write(
        &config,
        "[listeners.PLAINTEXT]\nprotocol = \"PLAINTEXT\"\nlisten = \"127.0.0.1:0\"\n\
         [listeners.TLS]\nprotocol = \"SSL\"\nlisten = \"127.0.0.1:0\"\n\
         ssl_cert = \"server.pem\"\nssl_key = \"server.key\"\n",
    )
    .unwrap();
    config
}

/// A blocking rustls client (the default provider's AES-GCM, as the broker).
fn tls_connect(
    addr: &str,
    dir: &std::path::Path,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name.to_owned()).unwrap();
    rustls::StreamOwned::new(conn, connect(addr))
}

fn main() {
    let args = parse_args();
    let tmp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("sluice-fetch-bench-")
                .tempdir()
                .expect("temp dir");
            tmp.path().join("data")
        }
    };
    std::fs::create_dir_all(&data_dir).unwrap();
    let target = (args.gib * GIB) as u64;
    println!(
        "fetch_bench: {:.2} GiB of {}-byte messages, fetch max_bytes {}, broker {}, data {}",
        args.gib,
        args.message_bytes,
        args.fetch_max_bytes,
        args.sluice.display(),
        data_dir.display()
    );

    let pki = tempfile::tempdir().expect("temp dir");
    let tls_config = tls_files(pki.path());
    let mut rows = Vec::new();
    let mut tls_row = None;
    let mut log_bytes = 0u64;
    for zero_copy in [true, false] {
        let broker = Broker::start(&args, &data_dir, zero_copy, Some(&tls_config));
        if zero_copy {
            create_topic(&broker.addr);
            let start = Instant::now();
            let (messages, bytes) = fill(&broker.addr, target, args.message_bytes);
            let secs = start.elapsed().as_secs_f64();
            log_bytes = bytes;
            println!(
                "filled: {messages} messages, {:.2} GiB of batches in {secs:.1} s ({:.0} MB/s)",
                bytes as f64 / GIB,
                bytes as f64 / 1e6 / secs
            );
            // The baseline, while the log is fresh in the page cache.
            let (secs, sender_cpu) = loopback(bytes, STREAM_CHUNK_BYTES);
            rows.push(Row {
                name: "loopback TCP",
                bytes,
                secs,
                cpu: Some(sender_cpu),
            });
            let (bytes, secs, sender_cpu) = loopback_sendfile(&data_dir, STREAM_CHUNK_BYTES);
            rows.push(Row {
                name: "loopback sendfile",
                bytes,
                secs,
                cpu: Some(sender_cpu),
            });
        }
        let cpu_before = broker.cpu_seconds();
        let (bytes, secs) = consume(&broker.addr, args.fetch_max_bytes);
        let cpu = broker.cpu_seconds() - cpu_before;
        assert_eq!(bytes, log_bytes, "every produced byte fetched");
        rows.push(Row {
            name: if zero_copy {
                "fetch, zero_copy=true"
            } else {
                "fetch, zero_copy=false"
            },
            bytes,
            secs,
            cpu: Some(cpu),
        });
        if zero_copy {
            // The same log over TLS: rustls on both ends, the copying path.
            let addr = broker.tls_addr.clone().expect("the TLS listener");
            let cpu_before = broker.cpu_seconds();
            let (bytes, secs) = consume_on(tls_connect(&addr, pki.path()), args.fetch_max_bytes);
            let cpu = broker.cpu_seconds() - cpu_before;
            assert_eq!(bytes, log_bytes, "every produced byte fetched over TLS");
            tls_row = Some(Row {
                name: "fetch over TLS (copy)",
                bytes,
                secs,
                cpu: Some(cpu),
            });
            let cpu_before = broker.cpu_seconds();
            let (bytes, sent, secs) =
                consume_down_converted(&broker.addr, args.fetch_max_bytes, log_bytes);
            let cpu = broker.cpu_seconds() - cpu_before;
            println!(
                "down-converted: {:.2} GiB of batches sent as {:.2} GiB of magic 1 messages",
                bytes as f64 / GIB,
                sent as f64 / GIB
            );
            rows.push(Row {
                name: "fetch v3, down-converted",
                bytes,
                secs,
                cpu: Some(cpu),
            });
        }
        broker.stop();
    }
    rows.extend(tls_row);

    println!();
    println!(
        "{:<24} {:>10} {:>9} {:>10} {:>16}",
        "mode", "GiB", "seconds", "MB/s", "sender CPU s/GiB"
    );
    for r in &rows {
        println!(
            "{:<24} {:>10.2} {:>9.2} {:>10.0} {:>16}",
            r.name,
            r.bytes as f64 / GIB,
            r.secs,
            r.mb_s(),
            r.cpu_per_gib()
                .map_or("-".to_string(), |c| format!("{c:.3}"))
        );
    }
    let (loop_row, zc, down, copy) = (&rows[0], &rows[2], &rows[3], &rows[4]);
    println!(
        "down-converted CPU/GiB / zero-copy CPU/GiB = {:.1}",
        down.cpu_per_gib().unwrap() / zc.cpu_per_gib().unwrap()
    );
    let cpu_ratio = zc.cpu_per_gib().unwrap() / copy.cpu_per_gib().unwrap();
    let bw_ratio = zc.mb_s() / loop_row.mb_s();
    println!();
    println!(
        "zero-copy CPU/GiB / copy CPU/GiB = {cpu_ratio:.2}  (target <= 0.50: {})",
        if cpu_ratio <= 0.5 { "met" } else { "NOT met" }
    );
    println!(
        "zero-copy MB/s / loopback MB/s   = {bw_ratio:.2}  (target >= 0.80: {})",
        if bw_ratio >= 0.8 { "met" } else { "NOT met" }
    );
    println!(
        "copy MB/s / loopback MB/s        = {:.2}",
        copy.mb_s() / loop_row.mb_s()
    );
    if let Some(tls) = rows.get(5) {
        println!(
            "TLS (copy) vs plaintext: CPU/GiB {:.2}x zero-copy, {:.2}x copy; MB/s {:.2}x zero-copy",
            tls.cpu_per_gib().unwrap() / zc.cpu_per_gib().unwrap(),
            tls.cpu_per_gib().unwrap() / copy.cpu_per_gib().unwrap(),
            tls.mb_s() / zc.mb_s()
        );
    }
    // The kernel's own ceiling for zero copy here: a plain thread sending
    // the same segment files with sendfile, no broker involved.
    let plain = &rows[1];
    println!(
        "zero-copy fetch vs plain sendfile: MB/s {:.2}, CPU/GiB {:.2}",
        zc.mb_s() / plain.mb_s(),
        zc.cpu_per_gib().unwrap() / plain.cpu_per_gib().unwrap()
    );
}

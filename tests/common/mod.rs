//! Shared harness for Sluice's integration tests.
//!
//! - [`Broker`]: runs the real `sluice` binary on a temporary data dir, on an
//!   ephemeral port, and stops / kills / restarts it.
//! - rdkafka client config builders with short timeouts so that failures are
//!   bounded instead of hanging.
//! - [`produce`], [`consume_all`] and friends: bounded produce / consume helpers.
//! - [`raw`]: a blocking raw Kafka protocol client for wire-level tests.
//! - [`cluster`]: several real nodes under one Raft metadata quorum.
//! - [`clients`]: other clients' scripts (kafka-python, kafkajs) as children.
#![allow(dead_code)]

pub mod clients;
pub mod cluster;
pub mod raw;
pub mod raw_v3;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message, OwnedMessage};
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// How long we wait for the broker to print its listening line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long we wait for the broker to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout for individual client operations (metadata, admin, watermarks).
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);

const LISTENING_PREFIX: &str = "sluice listening on ";
const METRICS_PREFIX: &str = "sluice metrics on ";
const LISTENER_PREFIX: &str = "sluice listener ";

/// A running `sluice serve` process.
pub struct Broker {
    child: Option<Child>,
    /// Owns the temporary directory (data dir + logs) when we created it.
    _root: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    stderr_path: PathBuf,
    shards: usize,
    extra_args: Vec<String>,
    addr: String,
    /// `host:port` of the `/metrics` endpoint, when started with `--metrics-listen`.
    metrics: Option<String>,
    starts: usize,
    /// What `--listen` gets: an ephemeral port until [`Broker::keep_port`].
    listen: String,
    /// Every listener's bound address by name, as the broker printed them.
    listeners: BTreeMap<String, String>,
}

impl Broker {
    /// Starts a broker with `shards` shards on a fresh temporary data dir.
    pub fn start(shards: usize) -> Broker {
        Broker::start_with(shards, &[])
    }

    /// Starts a broker with `shards` shards and extra command-line args on a
    /// fresh temporary data dir.
    pub fn start_with(shards: usize, extra_args: &[&str]) -> Broker {
        let root = tempfile::Builder::new()
            .prefix("sluice-it-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = root.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        let stderr_path = root.path().join("broker.stderr.log");
        let mut b = Broker {
            child: None,
            _root: Some(root),
            data_dir,
            stderr_path,
            shards,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            addr: String::new(),
            metrics: None,
            starts: 0,
            listen: "127.0.0.1:0".into(),
            listeners: BTreeMap::new(),
        };
        b.spawn();
        b
    }

    /// Starts a broker on an existing data dir (which the caller keeps alive).
    /// Stderr goes to `<data_dir>.stderr.log` next to it.
    pub fn start_in(data_dir: &Path, shards: usize, extra_args: &[&str]) -> Broker {
        std::fs::create_dir_all(data_dir).expect("create data dir");
        let stderr_path = data_dir.with_extension("stderr.log");
        let mut b = Broker {
            child: None,
            _root: None,
            data_dir: data_dir.to_path_buf(),
            stderr_path,
            shards,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            addr: String::new(),
            metrics: None,
            starts: 0,
            listen: "127.0.0.1:0".into(),
            listeners: BTreeMap::new(),
        };
        b.spawn();
        b
    }

    /// `host:port` of the listener named `name` (issue 15's listeners).
    pub fn listener(&self, name: &str) -> String {
        self.listeners
            .get(name)
            .unwrap_or_else(|| panic!("no listener {name}: {:?}", self.listeners))
            .clone()
    }

    /// Sends SIGHUP (reloads TLS certificates).
    pub fn sighup(&self) {
        signal(self.child.as_ref().expect("running"), libc::SIGHUP);
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        self.starts += 1;
        self.metrics = None;
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("open stderr log");
        {
            use std::io::Write;
            let mut s = &stderr;
            let _ = writeln!(s, "===== test harness: broker start #{} =====", self.starts);
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--shards")
            .arg(self.shards.to_string())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd.spawn().expect("spawn sluice binary");
        let stdout = child.stdout.take().expect("piped stdout");

        // Read stdout on a thread: forward lines through a channel and keep
        // draining afterwards so the broker can never block on a full pipe.
        let (tx, rx) = mpsc::channel::<String>();
        thread::Builder::new()
            .name("sluice-stdout".into())
            .spawn(move || {
                let reader = BufReader::new(stdout);
                for line in reader.lines() {
                    match line {
                        Ok(l) => {
                            let _ = tx.send(l);
                        }
                        Err(_) => break,
                    }
                }
            })
            .expect("spawn stdout reader");

        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut other_lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.fail_startup(&format!(
                    "broker did not print its listening line within {STARTUP_TIMEOUT:?}; stdout so far: {other_lines:?}"
                ));
            }
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(addr) = line.trim().strip_prefix(LISTENING_PREFIX) {
                        let addr = addr.trim().to_string();
                        assert!(
                            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
                            "unexpected listening address {addr:?}"
                        );
                        self.addr = addr;
                        return;
                    }
                    if let Some(rest) = line.trim().strip_prefix(LISTENER_PREFIX) {
                        if let Some((name, addr)) = rest.split_once(" on ") {
                            self.listeners.insert(name.into(), addr.trim().into());
                        }
                    }
                    if let Some(addr) = line.trim().strip_prefix(METRICS_PREFIX) {
                        self.metrics = Some(addr.trim().to_string());
                    }
                    other_lines.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                        self.fail_startup(&format!(
                            "broker exited during startup with {status}; stdout: {other_lines:?}"
                        ));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: wait briefly for the exit status for the message.
                    let status =
                        wait_with_timeout(self.child.as_mut().unwrap(), Duration::from_secs(5));
                    self.fail_startup(&format!(
                        "broker closed stdout before listening (exit: {status:?}); stdout: {other_lines:?}"
                    ));
                }
            }
        }
    }

    fn fail_startup(&mut self, msg: &str) -> ! {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        panic!(
            "{msg}\n----- broker stderr -----\n{}",
            self.stderr_tail(200)
        );
    }

    /// `host:port` to use as `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        assert!(self.child.is_some(), "broker is not running");
        self.addr.clone()
    }

    /// `host:port` of the `/metrics` endpoint (requires `--metrics-listen`).
    pub fn metrics_addr(&self) -> String {
        assert!(self.child.is_some(), "broker is not running");
        self.metrics
            .clone()
            .expect("broker was not started with --metrics-listen")
    }

    /// The body of `/metrics` (plain HTTP GET over a blocking socket,
    /// bounded by timeouts).
    pub fn metrics_text(&self) -> String {
        use std::io::Write;
        let addr = self.metrics_addr();
        let mut s = std::net::TcpStream::connect(&addr)
            .unwrap_or_else(|e| panic!("connect to metrics at {addr}: {e}"));
        s.set_read_timeout(Some(OP_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(OP_TIMEOUT)).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("send metrics request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read metrics response");
        assert!(
            text.starts_with("HTTP/1.1 200"),
            "metrics response: {text:?}"
        );
        text[text.find("\r\n\r\n").expect("end of HTTP headers") + 4..].to_string()
    }

    /// The value of counter `name` from `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let body = self.metrics_text();
        series_value(&body, name)
            .unwrap_or_else(|| panic!("no counter {name} in /metrics:\n{body}"))
    }

    /// Series `name` (with its labels; `None`: not written) once `done`
    /// holds for it, or what it is after about 10 s of polling.
    pub fn wait_series(&self, name: &str, done: impl Fn(Option<u64>) -> bool) -> Option<u64> {
        let mut v = series_value(&self.metrics_text(), name);
        for _ in 0..200 {
            if done(v) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            v = series_value(&self.metrics_text(), name);
        }
        v
    }

    /// Counter or gauge `name` once it reaches `at_least`, or its value
    /// after about 10 s of polling.
    pub fn wait_metric(&self, name: &str, at_least: u64) -> u64 {
        self.wait_series(name, |v| v.is_some_and(|v| v >= at_least))
            .unwrap_or_else(|| panic!("no counter {name} in /metrics"))
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Path of the captured stderr log of this broker (all starts appended).
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// Whether the process was started and not stopped or killed since
    /// (a SIGSTOPped broker still counts as running).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    /// The last `n` lines of the broker's stderr.
    pub fn stderr_tail(&self, n: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.stderr_path) {
            // Only read the last 256 KiB; logs can get long.
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let start = len.saturating_sub(256 * 1024);
            let _ = f.seek(SeekFrom::Start(start));
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; asserts exit code 0.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("broker is not running");
        signal(&child, libc::SIGTERM);
        match wait_with_timeout(&mut child, SHUTDOWN_TIMEOUT) {
            Some(status) => {
                assert!(
                    status.success(),
                    "broker exited with {status} after SIGTERM\n----- broker stderr -----\n{}",
                    self.stderr_tail(200)
                );
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker did not exit within {SHUTDOWN_TIMEOUT:?} after SIGTERM\n----- broker stderr -----\n{}",
                    self.stderr_tail(200)
                );
            }
        }
    }

    /// Waits (bounded) for the broker to exit on its own: its exit status,
    /// or `None` while it still runs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("broker is not running");
        let status = wait_with_timeout(child, timeout)?;
        self.child = None;
        Some(status)
    }

    /// Kills the broker with SIGKILL (no chance to flush or clean up).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker is not running");
        signal(&child, libc::SIGKILL);
        let status = wait_with_timeout(&mut child, SHUTDOWN_TIMEOUT)
            .expect("broker did not die after SIGKILL");
        assert!(
            !status.success(),
            "SIGKILLed broker reported success: {status}"
        );
    }

    /// Starts the broker again on the same data dir with the same arguments.
    /// The port changes: re-read [`Broker::bootstrap`] and build new clients.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Moves the broker (stopped and started again now) to a port it keeps
    /// across later starts, so clients that keep their bootstrap address
    /// reconnect to it: one held for this test process and outside the
    /// kernel's ephemeral range (`cluster::free_port`), so no outgoing
    /// connection takes it while the broker is down. Call it before making
    /// clients.
    pub fn keep_port(&mut self) {
        self.stop();
        self.listen = format!("127.0.0.1:{}", cluster::free_port());
        self.start_again();
    }

    /// Later starts run `shards` shards.
    pub fn set_shards(&mut self, shards: usize) {
        self.shards = shards;
    }

    /// Clean stop (SIGTERM, exit 0) followed by a start on the same data dir.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// The partition directory `DIR/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Sorted `.log` segment files of a partition.
    pub fn segment_files(&self, topic: &str, partition: i32) -> Vec<PathBuf> {
        let dir = self.partition_dir(topic, partition);
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read partition dir {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().map(|x| x == "log").unwrap_or(false))
            .collect();
        v.sort();
        v
    }
}

/// The value of series `name` (labels included) in a `/metrics` body.
pub fn series_value(body: &str, name: &str) -> Option<u64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == name).then(|| v.trim().parse::<u64>().expect("series value"))
    })
}

/// The whole batches at the start of segment file `path`: the bytes up to
/// the first position that holds no batch (its end, a partial batch, or
/// the zeros a prefault's hole or a preallocation leaves past the batches
/// of an active segment). Empty when the file cannot be read.
pub fn segment_batch_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    const LOG_OVERHEAD: u64 = 12;
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut head = [0u8; LOG_OVERHEAD as usize];
    loop {
        let pos = out.len() as u64;
        if file.read_exact_at(&mut head, pos).is_err() {
            return out;
        }
        let len = i32::from_be_bytes(head[8..12].try_into().unwrap());
        if len <= 0 {
            return out;
        }
        let mut batch = vec![0u8; LOG_OVERHEAD as usize + len as usize];
        if file.read_exact_at(&mut batch, pos).is_err() {
            return out;
        }
        out.extend_from_slice(&batch);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if thread::panicking() {
            // Keep the data dir and full log of a failed test for inspection.
            if let Some(root) = self._root.take() {
                let kept = root.keep();
                eprintln!(
                    "----- test failed: broker data dir and log kept in {} -----",
                    kept.display()
                );
            }
            eprintln!(
                "----- broker stderr ({}) tail -----\n{}\n----- end broker stderr -----",
                self.stderr_path.display(),
                self.stderr_tail(80)
            );
        }
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({}, {sig}) failed: {}",
        child.id(),
        std::io::Error::last_os_error()
    );
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// rdkafka configuration
// ---------------------------------------------------------------------------

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("socket.connection.setup.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("retry.backoff.ms", "50")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("log_level", "4");
    c
}

/// Runs `sluice serve` on `data_dir` with `args`, expecting it to refuse to
/// start; returns what it printed on stderr.
pub fn refused_start(data_dir: &std::path::Path, args: &[&str]) -> String {
    refused_start_on("127.0.0.1:0", data_dir, args)
}

/// [`refused_start`] with the client listener on `listen`.
pub fn refused_start_on(listen: &str, data_dir: &std::path::Path, args: &[&str]) -> String {
    refused_start_as(
        Command::new(env!("CARGO_BIN_EXE_sluice")),
        listen,
        data_dir,
        args,
    )
}

/// [`refused_start_on`] through `program`: the sluice binary, or a wrapper
/// that execs the sluice binary it is given as its next argument.
pub fn refused_start_as(
    mut program: Command,
    listen: &str,
    data_dir: &std::path::Path,
    args: &[&str],
) -> String {
    let mut child = program
        .args(["serve", "--listen", listen, "--shards", "1", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sluice");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("sluice did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "sluice started: {stderr}");
    stderr
}

/// Producer config: acks=all, short timeouts, small linger.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut c = base_config(bootstrap);
    c.set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("request.timeout.ms", "10000")
        .set("linger.ms", "5")
        .set("enable.idempotence", "false")
        .set("compression.type", "none");
    c
}

/// Consumer config for assign()-only consumption, never joining a group.
///
/// librdkafka's `rd_kafka_assign()` refuses to work without a `group.id`
/// ("Requires a consumer with group.id configured"), so a dummy group id is
/// set, but the consumer never subscribes, never commits and always assigns
/// explicit offsets, so it never needs a group coordinator.
pub fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut c = base_config(bootstrap);
    c.set("group.id", "sluice-it-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("allow.auto.create.topics", "false");
    c
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    base_config(bootstrap)
        .create()
        .expect("create admin client")
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(OP_TIMEOUT))
        .request_timeout(Some(OP_TIMEOUT))
}

/// A consumer used for metadata / watermark / offsets_for_times queries.
pub fn query_consumer(bootstrap: &str) -> BaseConsumer {
    consumer_config(bootstrap)
        .create()
        .expect("create consumer")
}

/// Creates a topic with `partitions` partitions and the given configs; asserts success.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut nt = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        nt = nt.set(k, v);
    }
    let res = futures::executor::block_on(admin.create_topics([&nt], &admin_opts()))
        .expect("CreateTopics request failed");
    assert_eq!(res.len(), 1);
    assert_eq!(res[0], Ok(topic.to_string()), "creating topic {topic}");
    wait_for_partitions(bootstrap, topic, partitions as usize);
}

/// Polls metadata (bounded) until `topic` exists with `partitions` partitions.
pub fn wait_for_partitions(bootstrap: &str, topic: &str, partitions: usize) {
    let c = query_consumer(bootstrap);
    let deadline = Instant::now() + OP_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match c.fetch_metadata(None, Duration::from_secs(5)) {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    if t.error().is_none() && t.partitions().len() == partitions {
                        return;
                    }
                    last = format!("error {:?}, {} partitions", t.error(), t.partitions().len());
                } else {
                    last = "topic absent".into();
                }
            }
            Err(e) => last = e.to_string(),
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("topic {topic} never showed {partitions} partitions in metadata: {last}");
}

/// Topic -> partition count from a full metadata request.
pub fn topic_partition_counts(bootstrap: &str) -> BTreeMap<String, usize> {
    let c = query_consumer(bootstrap);
    let md = c.fetch_metadata(None, OP_TIMEOUT).expect("metadata");
    md.topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect()
}

/// Low and high watermark of a partition (ListOffsets earliest / latest).
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let c = query_consumer(bootstrap);
    c.fetch_watermarks(topic, partition, OP_TIMEOUT)
        .unwrap_or_else(|e| panic!("fetch_watermarks {topic}/{partition}: {e}"))
}

// ---------------------------------------------------------------------------
// Producing
// ---------------------------------------------------------------------------

/// A successful delivery: the message's id (delivery opaque), partition, offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub id: usize,
    pub partition: i32,
    pub offset: i64,
}

/// Producer context that records every delivery report.
#[derive(Default, Clone)]
pub struct CollectingContext {
    pub ok: Arc<Mutex<Vec<Delivered>>>,
    pub failed: Arc<Mutex<Vec<(usize, KafkaError)>>>,
}

impl ClientContext for CollectingContext {}

impl ProducerContext for CollectingContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, r: &DeliveryResult<'_>, id: usize) {
        match r {
            Ok(m) => self.ok.lock().unwrap().push(Delivered {
                id,
                partition: m.partition(),
                offset: m.offset(),
            }),
            Err((e, _)) => self.failed.lock().unwrap().push((id, e.clone())),
        }
    }
}

impl CollectingContext {
    pub fn ok_count(&self) -> usize {
        self.ok.lock().unwrap().len()
    }
    pub fn failed_count(&self) -> usize {
        self.failed.lock().unwrap().len()
    }
}

pub type CollectingProducer = ThreadedProducer<CollectingContext>;

pub fn collecting_producer(config: &ClientConfig) -> (CollectingProducer, CollectingContext) {
    let ctx = CollectingContext::default();
    let p = config
        .create_with_context(ctx.clone())
        .expect("create producer");
    (p, ctx)
}

/// Enqueues one record, retrying (bounded) while the local queue is full.
pub fn send_retrying(producer: &CollectingProducer, mut record: BaseRecord<'_, [u8], [u8], usize>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                r,
            )) => {
                assert!(
                    Instant::now() < deadline,
                    "producer queue stayed full for 60s"
                );
                record = r;
                thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("enqueue failed: {e}"),
        }
    }
}

/// A message to produce in tests.
#[derive(Debug, Clone, Default)]
pub struct Msg {
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
}

impl Msg {
    pub fn value(v: impl Into<Vec<u8>>) -> Msg {
        Msg {
            value: Some(v.into()),
            ..Default::default()
        }
    }
    pub fn to(mut self, partition: i32) -> Msg {
        self.partition = Some(partition);
        self
    }
    pub fn key(mut self, k: impl Into<Vec<u8>>) -> Msg {
        self.key = Some(k.into());
        self
    }
    pub fn at(mut self, ts: i64) -> Msg {
        self.timestamp = Some(ts);
        self
    }
}

/// Produces `msgs` with `config`, flushes (bounded), asserts every message was
/// delivered, and returns the deliveries ordered by message index.
pub fn produce(config: &ClientConfig, topic: &str, msgs: &[Msg]) -> Vec<Delivered> {
    let (p, ctx) = collecting_producer(config);
    for (i, m) in msgs.iter().enumerate() {
        let mut r: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(topic, i);
        if let Some(part) = m.partition {
            r = r.partition(part);
        }
        if let Some(k) = &m.key {
            r = r.key(&k[..]);
        }
        if let Some(v) = &m.value {
            r = r.payload(&v[..]);
        }
        if let Some(ts) = m.timestamp {
            r = r.timestamp(ts);
        }
        send_retrying(&p, r);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    let failed = ctx.failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} deliveries failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    let mut ok = ctx.ok.lock().unwrap().clone();
    assert_eq!(
        ok.len(),
        msgs.len(),
        "every message must get a delivery report"
    );
    ok.sort_by_key(|d| d.id);
    ok
}

/// How long a transactional producer's init, commit and abort may take.
pub const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// A transactional (so idempotent) producer with `txn_timeout_ms`,
/// transactions initialized.
pub fn transactional_producer(
    bootstrap: &str,
    transactional_id: &str,
    txn_timeout_ms: u32,
) -> ThreadedProducer<DefaultProducerContext> {
    let mut config = producer_config(bootstrap);
    config
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set("transaction.timeout.ms", txn_timeout_ms.to_string())
        // librdkafka refuses a message timeout past the transaction's.
        .set("message.timeout.ms", txn_timeout_ms.min(30_000).to_string())
        .set("socket.timeout.ms", txn_timeout_ms.min(60_000).to_string());
    let producer: ThreadedProducer<DefaultProducerContext> =
        config.create().expect("transactional producer");
    producer
        .init_transactions(TXN_TIMEOUT)
        .expect("init_transactions");
    producer
}

/// Sends one keyed string record, retrying (bounded) while the producer's
/// queue is full.
pub fn send_keyed(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    value: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut record: BaseRecord<'_, str, str> = BaseRecord::to(topic).key(key).payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                assert!(Instant::now() < deadline, "send kept failing");
                record = r;
                thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Produces string values with acks=all (default partitioner, or the given partition).
pub fn produce_values(
    bootstrap: &str,
    topic: &str,
    partition: Option<i32>,
    values: &[String],
) -> Vec<Delivered> {
    let msgs: Vec<Msg> = values
        .iter()
        .map(|v| Msg {
            partition,
            value: Some(v.clone().into_bytes()),
            ..Default::default()
        })
        .collect();
    produce(&producer_config(bootstrap), topic, &msgs)
}

// ---------------------------------------------------------------------------
// Consuming
// ---------------------------------------------------------------------------

/// Assigns all `partitions` of `topic` from the beginning and polls until
/// `expected` messages have arrived or `timeout` passes (then panics with what
/// was received). Returns the messages in arrival order (which is offset order
/// within each partition).
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let starts: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Beginning)).collect();
    consume_from(bootstrap, topic, &starts, expected, timeout)
}

/// Like [`consume_all`] with explicit start offsets per partition.
pub fn consume_from(
    bootstrap: &str,
    topic: &str,
    starts: &[(i32, Offset)],
    expected: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .create()
        .expect("create consumer");
    let mut tpl = TopicPartitionList::new();
    for (p, off) in starts {
        tpl.add_partition_offset(topic, *p, *off).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(expected);
    let mut errors = Vec::new();
    while out.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) if errors.len() < 20 => errors.push(e.to_string()),
            Some(Err(_)) => {}
            None => {}
        }
    }
    // Anything beyond `expected` that is already buffered is a duplicate or extra.
    if out.len() == expected {
        let extra_deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < extra_deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                out.push(m.detach());
            }
        }
    }
    assert!(
        out.len() >= expected,
        "consumed {} of {expected} messages from {topic} within {timeout:?}; consumer errors: {errors:?}",
        out.len()
    );
    assert_eq!(
        out.len(),
        expected,
        "consumed more messages than expected from {topic} (duplicates or extras)"
    );
    out
}

/// Payload of a message as a UTF-8 string.
pub fn payload_str(m: &OwnedMessage) -> String {
    String::from_utf8(m.payload().expect("payload").to_vec()).expect("utf8 payload")
}

/// Groups messages by partition, keeping arrival (offset) order.
pub fn by_partition(msgs: &[OwnedMessage]) -> BTreeMap<i32, Vec<&OwnedMessage>> {
    let mut m: BTreeMap<i32, Vec<&OwnedMessage>> = BTreeMap::new();
    for msg in msgs {
        m.entry(msg.partition()).or_default().push(msg);
    }
    m
}

/// Fetch a topic config through DescribeConfigs (rdkafka admin).
pub fn describe_topic_config(bootstrap: &str, topic: &str) -> BTreeMap<String, Option<String>> {
    let admin = admin(bootstrap);
    let res = futures::executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_opts()),
    )
    .expect("DescribeConfigs request failed");
    assert_eq!(res.len(), 1);
    let r = res
        .into_iter()
        .next()
        .unwrap()
        .expect("DescribeConfigs resource error");
    r.entries.into_iter().map(|e| (e.name, e.value)).collect()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A record as tests hold it, owning its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl OwnedRecord {
    /// What a consumer received, as the record that was produced.
    #[allow(dead_code)] // not every test binary consumes records
    pub fn received(m: &rdkafka::message::OwnedMessage) -> OwnedRecord {
        use rdkafka::message::{Headers, Message};
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let timestamp = match m.timestamp() {
            rdkafka::Timestamp::CreateTime(ts) => ts,
            other => panic!("expected CreateTime timestamps, got {other:?}"),
        };
        OwnedRecord {
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            timestamp,
            headers,
        }
    }
}

/// The offsets `consumer`'s group committed for partitions `0..partitions`
/// of `topic` (OffsetFetch); partitions without a commit are left out.
#[allow(dead_code)] // not every test binary uses groups
pub fn committed_offsets(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i64> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, OP_TIMEOUT)
        .expect("committed offsets")
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// `records` as one uncompressed v2 batch with baseOffset 0.
#[allow(dead_code)] // not every test binary builds batches
pub fn build_owned_batch(records: &[OwnedRecord]) -> bytes::Bytes {
    use sluice::record::build::{build_batch, HeaderSpec, RecordSpec};
    let headers: Vec<Vec<HeaderSpec<'_>>> = records
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect()
        })
        .collect();
    let specs: Vec<RecordSpec<'_>> = records
        .iter()
        .zip(&headers)
        .map(|(r, h)| (r.key.as_deref(), r.value.as_deref(), r.timestamp, &h[..]))
        .collect();
    build_batch(0, &specs)
}

/// Sets `user`'s SCRAM credentials (both mechanisms, 4096 iterations) for
/// `password` with AlterUserScramCredentials, through a listener at `addr`
/// whose principal may alter them.
pub fn set_scram_user(addr: &str, user: &str, password: &str) {
    use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
    use kafka_protocol::messages::AlterUserScramCredentialsRequest;
    use sluice::security::scram::Mechanism;
    let mut raw = raw::RawClient::connect(addr);
    let mut req = AlterUserScramCredentialsRequest::default();
    for m in Mechanism::ALL {
        let salt = format!("salt-{user}-{}", m.name()).into_bytes();
        let mut u = ScramCredentialUpsertion::default();
        u.name = raw::str_bytes(user);
        u.mechanism = m.kafka_type();
        u.iterations = 4096;
        u.salted_password = m.salted_password(password.as_bytes(), &salt, 4096).into();
        u.salt = salt.into();
        req.upsertions.push(u);
    }
    let resp = raw.call(0, &req);
    assert_eq!(resp.results.len(), 1, "{resp:?}");
    assert_eq!(resp.results[0].error_code, 0, "{resp:?}");
}

/// A new CA named `name`: its certificate and key.
fn new_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("sluice test {name}"));
    (params.self_signed(&key).unwrap(), key)
}

/// Certificate and key with CN `cn` (only it: an SSL principal `CN=<cn>`)
/// for localhost and 127.0.0.1 with `usages`, signed by `ca`, written as
/// `<name>.pem` and `<name>.key` in `dir`.
fn write_signed(
    dir: &Path,
    name: &str,
    cn: &str,
    usages: Vec<rcgen::ExtendedKeyUsagePurpose>,
    ca: &(rcgen::Certificate, rcgen::KeyPair),
) {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = usages;
    let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// A new CA and, signed by it, certificate `name` for 127.0.0.1 and
/// localhost with both the server and the client key usage (a controller
/// dials and is dialed): writes `name-ca.pem`, `name.pem`, `name.key` in
/// `dir` and returns their paths.
pub fn write_quorum_certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let ca = new_ca(&format!("quorum CA {name}"));
    write_signed(dir, name, name, vec![ServerAuth, ClientAuth], &ca);
    let ca_path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_path, ca.0.pem()).unwrap();
    (
        ca_path,
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

/// Test certificates, made at test time (never checked in): writes
/// `<ca>.pem`, `<server>.pem`/`.key` (CN `server`) and `<client>.pem`/`.key`
/// (CN `client_cn`), both for localhost and 127.0.0.1, all signed by a new CA.
pub fn write_certificates(dir: &Path, ca: &str, server: &str, client: &str, client_cn: &str) {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let authority = new_ca(ca);
    std::fs::write(dir.join(format!("{ca}.pem")), authority.0.pem()).unwrap();
    write_signed(dir, server, server, vec![ServerAuth], &authority);
    write_signed(dir, client, client_cn, vec![ClientAuth], &authority);
}

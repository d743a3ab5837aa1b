//! `sluice-bench ingest`: a broker's produce ceiling, with no consumer and
//! with `raw` connections instead of librdkafka, read against the
//! machine's sustained page-cache append rate measured in the same run.
//!
//! On a small machine librdkafka's producers take the cores before the
//! broker runs out of them (four of them used 1.4 of two cores for 133
//! MiB/s); requests encoded once cost the client only the syscalls.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;

use crate::baseline::Baseline;
use crate::kafka;
use crate::raw::{Connection, Frame, RequestShape};
use crate::report::Table;
use crate::run::TargetSpec;
use crate::spawn::read_usage_sum;
use crate::stats::{mib, Latency, Percentiles};
use crate::workload::{Acks, Workload};

/// Bounds on the shape of the load, so a typo cannot exhaust memory.
pub const CONNECTIONS_MAX: usize = 64;
pub const IN_FLIGHT_MAX: usize = 64;
pub const RECORDS_PER_BATCH_MAX: usize = 10_000;
/// Value bytes one connection's encoded requests may hold.
const FRAME_BYTES_MAX: u64 = 256 << 20;

/// How the load is shaped.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    /// Connections to each partition leader.
    pub connections: usize,
    /// Requests each connection keeps unanswered.
    pub in_flight: usize,
    /// Partitions one request writes (one batch each).
    pub partitions_per_request: usize,
    pub records_per_batch: usize,
}

impl Shape {
    pub fn validate(&self) -> Result<()> {
        if !(1..=CONNECTIONS_MAX).contains(&self.connections) {
            bail!("--connections must be 1..={CONNECTIONS_MAX}");
        }
        if !(1..=IN_FLIGHT_MAX).contains(&self.in_flight) {
            bail!("--in-flight must be 1..={IN_FLIGHT_MAX}");
        }
        if self.partitions_per_request == 0 {
            bail!("--partitions-per-request must be at least 1");
        }
        if !(1..=RECORDS_PER_BATCH_MAX).contains(&self.records_per_batch) {
            bail!("--batch-records must be 1..={RECORDS_PER_BATCH_MAX}");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestResult {
    pub workload: String,
    pub target: String,
    pub shape: Shape,
    pub value_bytes: usize,
    pub acks: &'static str,
    pub duration_secs: f64,
    pub msgs_per_sec: f64,
    /// Record batch bytes acknowledged per second: what the broker appends.
    pub batch_mib_per_sec: f64,
    /// Request to answer, per request, over the measured window (µs).
    pub produce_latency: Percentiles,
    pub broker_cpu_seconds: Option<f64>,
    /// Broker CPU seconds per GiB of batches.
    pub broker_cpu_s_per_gib: Option<f64>,
    /// Batch MiB/s in each second of the window.
    pub samples: Vec<f64>,
    pub baseline: Option<Baseline>,
    /// `batch_mib_per_sec` over the baseline's sustained page-cache rate.
    pub share_of_page_cache: Option<f64>,
    /// The nice level a spawned broker ran at (`--nice`); absent: the
    /// harness's own.
    pub broker_nice: Option<i32>,
    /// The filesystem a spawned broker's data dir was on (`data_fs`).
    pub broker_data_fs: Option<String>,
    /// Whether the guest gives freed memory back to its host (`host_memory`).
    pub free_page_reporting: Option<String>,
}

impl IngestResult {
    pub fn table(&self) -> Table {
        let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        let p = &self.produce_latency;
        let mut rows = vec![
            (
                "messages/s".to_string(),
                format!("{:.0}", self.msgs_per_sec),
            ),
            (
                "batch MiB/s (appended)".into(),
                format!("{:.1}", self.batch_mib_per_sec),
            ),
            (
                "share of sustained page-cache append".into(),
                opt(self.share_of_page_cache.map(|s| s * 100.0), 1) + " %",
            ),
            (
                "produce p50 / p99 / p99.99 / max ms".into(),
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2}",
                    p.p50 as f64 / 1e3,
                    p.p99 as f64 / 1e3,
                    p.p9999 as f64 / 1e3,
                    p.max as f64 / 1e3
                ),
            ),
            ("broker CPU s".into(), opt(self.broker_cpu_seconds, 1)),
            ("broker CPU s/GiB".into(), opt(self.broker_cpu_s_per_gib, 2)),
        ];
        if let Some(n) = self.broker_nice {
            rows.push(("broker nice".into(), n.to_string()));
        }
        if let Some(fs) = &self.broker_data_fs {
            rows.push(("data dir filesystem".into(), fs.clone()));
        }
        if let Some(reporting) = &self.free_page_reporting {
            rows.push(("host memory".into(), reporting.clone()));
        }
        Table {
            header: vec![format!("ingest: {}", self.target), String::new()],
            rows: rows.into_iter().map(|(k, v)| vec![k, v]).collect(),
        }
    }
}

/// What all connection threads share.
struct Shared {
    records: AtomicU64,
    batch_bytes: AtomicU64,
    window_start: Instant,
    window_end: Instant,
    /// Set when the window ends, or when a connection fails.
    stop: AtomicBool,
}

/// Creates the workload's topics on the target and writes to them as fast
/// as its answers allow for the workload's warm-up and duration.
pub fn run(t: &TargetSpec, w: &Workload, shape: Shape) -> Result<IngestResult> {
    shape.validate()?;
    let acks = match w.acks {
        Acks::None => bail!("ingest counts acknowledged writes: acks must be 1 or all"),
        Acks::Leader => 1,
        Acks::All => -1,
    };
    kafka::check_reachable(t.name, t.bootstrap)?;
    let tag = crate::run::run_tag();
    let topics: Vec<String> = (0..w.topics)
        .map(|i| format!("sluice-bench-ingest-{tag:08x}-{i}"))
        .collect();
    kafka::create_topics(t.bootstrap, &topics, w)
        .map_err(|e| anyhow!("target {}: {e:#}", t.name))?;
    let plans = plan(t.bootstrap, &topics, w, shape, acks)?;

    let start = Instant::now();
    let window_start = start + Duration::from_secs(w.warmup_secs);
    let shared = Arc::new(Shared {
        records: AtomicU64::new(0),
        batch_bytes: AtomicU64::new(0),
        window_start,
        window_end: window_start + Duration::from_secs(w.duration_secs),
        stop: AtomicBool::new(false),
    });
    let threads: Vec<_> = plans
        .into_iter()
        .enumerate()
        .map(|(i, (addr, shapes))| {
            let s = shared.clone();
            let in_flight = shape.in_flight;
            thread::Builder::new()
                .name(format!("ingest-{i}"))
                .spawn(move || {
                    let out = connection(&addr, &shapes, in_flight, i as u64, &s);
                    if out.is_err() {
                        s.stop.store(true, Relaxed);
                    }
                    out
                })
                .expect("spawn an ingest thread")
        })
        .collect();

    let measured = measure(&shared, t);
    shared.stop.store(true, Relaxed);
    let mut latency = Latency::new();
    let mut first_error = None;
    for th in threads {
        match th.join().expect("ingest thread panicked") {
            Ok(h) => latency.merge(&h),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // A connection's own error says more than the measurement's "failed".
    if let Some(e) = first_error {
        return Err(e.context(format!("target {}", t.name)));
    }
    let (records, bytes, secs, cpu, samples) = measured?;
    let cpu_per_gib = cpu.map(|c| c / crate::stats::gib(bytes).max(f64::EPSILON));
    Ok(IngestResult {
        workload: w.name.clone(),
        target: t.name.to_string(),
        shape,
        value_bytes: w.message_size,
        acks: w.acks.as_str(),
        duration_secs: secs,
        msgs_per_sec: records as f64 / secs,
        batch_mib_per_sec: mib(bytes as f64 / secs),
        produce_latency: latency.percentiles(),
        broker_cpu_seconds: cpu,
        broker_cpu_s_per_gib: cpu_per_gib,
        samples,
        baseline: None,
        share_of_page_cache: None,
        broker_nice: None,
        broker_data_fs: None,
        free_page_reporting: None,
    })
}

/// (records, batch bytes, seconds, broker CPU seconds, MiB/s per second)
/// over the window.
type Measured = (u64, u64, f64, Option<f64>, Vec<f64>);

/// Samples the counters at the window's edges and once a second between.
fn measure(s: &Shared, t: &TargetSpec) -> Result<Measured> {
    let stopped = |until: Instant| -> bool {
        while Instant::now() < until {
            if s.stop.load(Relaxed) {
                return true;
            }
            thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        s.stop.load(Relaxed)
    };
    if stopped(s.window_start) {
        bail!("a connection failed during warm-up");
    }
    let cpu_at_start = read_usage_sum(&t.broker_pids).map(|u| u.cpu_seconds);
    let (records0, bytes0) = (s.records.load(Relaxed), s.batch_bytes.load(Relaxed));
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut last = bytes0;
    let mut next = started + Duration::from_secs(1);
    while next <= s.window_end {
        if stopped(next) {
            bail!("a connection failed during the run");
        }
        let now = s.batch_bytes.load(Relaxed);
        samples.push(mib((now - last) as f64));
        last = now;
        next += Duration::from_secs(1);
    }
    if stopped(s.window_end) {
        bail!("a connection failed during the run");
    }
    let secs = started.elapsed().as_secs_f64();
    let records = s.records.load(Relaxed) - records0;
    let bytes = s.batch_bytes.load(Relaxed) - bytes0;
    let cpu = match (cpu_at_start, read_usage_sum(&t.broker_pids)) {
        (Some(a), Some(b)) => Some(b.cpu_seconds - a),
        _ => None,
    };
    Ok((records, bytes, secs, cpu, samples))
}

/// Which requests each connection sends: per partition leader,
/// `shape.connections` connections, the leader's partitions grouped
/// `partitions_per_request` to a request and dealt round-robin.
fn plan(
    bootstrap: &str,
    topics: &[String],
    w: &Workload,
    shape: Shape,
    acks: i16,
) -> Result<Vec<(String, Vec<RequestShape>)>> {
    let consumer: BaseConsumer = kafka::base_config(bootstrap).create()?;
    let md = consumer.fetch_metadata(None, kafka::CONNECT_TIMEOUT)?;
    let address = |id: i32| {
        md.brokers()
            .iter()
            .find(|b| b.id() == id)
            .map(|b| format!("{}:{}", b.host(), b.port()))
    };
    let mut by_leader: std::collections::BTreeMap<String, Vec<RequestShape>> = Default::default();
    for name in topics {
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .with_context(|| format!("{name} is not in Metadata"))?;
        let mut led: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
        for p in t.partitions() {
            let addr = address(p.leader())
                .with_context(|| format!("{name} partition {} has no leader", p.id()))?;
            led.entry(addr).or_default().push(p.id());
        }
        for (addr, partitions) in led {
            for chunk in partitions.chunks(shape.partitions_per_request) {
                by_leader
                    .entry(addr.clone())
                    .or_default()
                    .push(RequestShape {
                        topic: name.clone(),
                        partitions: chunk.to_vec(),
                        records: shape.records_per_batch,
                        value_bytes: w.message_size,
                        acks,
                    });
            }
        }
    }
    let mut plans = Vec::new();
    for (addr, requests) in by_leader {
        let n = shape.connections.min(requests.len());
        let mut dealt: Vec<Vec<RequestShape>> = vec![Vec::new(); n];
        for (i, r) in requests.into_iter().enumerate() {
            dealt[i % n].push(r);
        }
        plans.extend(dealt.into_iter().map(|d| (addr.clone(), d)));
    }
    // Checked before anything is encoded: the frames are built whole.
    for (_, requests) in &plans {
        let held: u64 = requests.iter().map(RequestShape::value_bytes_total).sum();
        if held > FRAME_BYTES_MAX {
            bail!(
                "one connection's requests would hold {held} bytes of values (at most \
                 {FRAME_BYTES_MAX}); use fewer records per batch or more connections"
            );
        }
    }
    Ok(plans)
}

/// One connection: keeps `in_flight` requests outstanding, cycling through
/// its frames, until told to stop; then collects what is outstanding.
fn connection(
    addr: &str,
    shapes: &[RequestShape],
    in_flight: usize,
    seed: u64,
    s: &Shared,
) -> Result<Latency> {
    let mut frames = shapes
        .iter()
        .enumerate()
        .map(|(i, shape)| Frame::encode(shape, seed << 32 | i as u64))
        .collect::<Result<Vec<_>>>()?;
    let mut c = Connection::open(addr)?;
    let mut latency = Latency::new();
    let mut next = 0;
    loop {
        let stopping = s.stop.load(Relaxed);
        if !stopping && c.in_flight() < in_flight {
            c.send(&mut frames, next)?;
            next = (next + 1) % frames.len();
            continue;
        }
        if c.in_flight() == 0 {
            return Ok(latency);
        }
        let answer = c.receive()?;
        let f = &frames[answer.frame];
        s.records.fetch_add(f.records, Relaxed);
        s.batch_bytes.fetch_add(f.batch_bytes, Relaxed);
        if answer.sent >= s.window_start && answer.sent < s.window_end {
            latency.record(answer.sent.elapsed().as_micros() as u64);
        }
    }
}

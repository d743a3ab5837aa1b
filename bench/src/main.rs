//! `sluice-bench`: throughput, latency and compression measurements against
//! any Kafka-API broker, through librdkafka.
//!
//! # Layout
//! - `workload`: the TOML workload format and its validation.
//! - `run`: one workload against each target; `clients`: the producer and
//!   consumer threads; `kafka`: client configs and topic setup; `rate`: the
//!   fixed-rate schedule; `payload`: the timestamp header; `stats`: latency
//!   histograms and throughput samples.
//! - `ingest`: a produce-only ceiling through `raw`, the harness's own
//!   Kafka-protocol producer, which costs the client almost nothing.
//! - `search`: the max-rate search (`producer_rate = 0`); `txn`: the
//!   transactional producers' commit loop (`messages_per_transaction`).
//! - `spawn`: a local broker for `--spawn` (or the floor for `--floor`) and
//!   its /proc usage; `local`: the process behind a loopback `--target`, to
//!   read the same usage.
//! - `floor`: the in-memory broker that answers at once, the latency floor
//!   the clients and the machine set on their own.
//! - `baseline`: loopback TCP and disk append limits.
//! - `restart`: a spawned broker with many partitions, stopped and started
//!   again: how soon it serves, and the files and memory it holds.
//! - `compression` and `datasets`: the codec study on deterministic data;
//!   `codec_runs`: its through-the-broker part, one run per codec.
//! - `report` and `plot`: result.json types, tables, Markdown, SVG/PNG plots;
//!   `compare`: earlier runs' result.json side by side.
//!
//! Only `spawn` and the watchdog in `run` signal processes; only `clients`,
//! `kafka` and `raw` talk to brokers.

mod baseline;
mod clients;
mod codec_runs;
mod compare;
mod compression;
mod data_fs;
mod datasets;
mod floor;
mod host_memory;
mod ingest;
mod kafka;
mod local;
mod payload;
mod plot;
mod rate;
mod raw;
mod report;
mod restart;
mod run;
mod search;
mod share;
mod spawn;
mod stages;
mod stats;
mod txn;
mod wakeup;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::report::RunResult;
use crate::spawn::SpawnedBroker;
use crate::workload::Workload;

/// The grace period is bounded so a run always ends.
const GRACE_SECS_MAX: u64 = 300;
/// Bound on `baseline --disk-gib` (half the free space bounds it too).
const DISK_GIB_MAX: f64 = 1024.0;
/// Name of the `--spawn` target.
const SPAWN_NAME: &str = "sluice";
/// Name of the `--floor` target.
const FLOOR_NAME: &str = "floor";
/// Name of the `--floor-disk` target.
const FLOOR_DISK_NAME: &str = "floor-disk";

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    version,
    about = "Benchmarks any Kafka-API broker through librdkafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload against one or more brokers.
    Run(RunArgs),
    /// Measure loopback TCP and disk append bandwidth.
    Baseline(BaselineArgs),
    /// Produce as fast as a broker answers, with no consumer and a client
    /// of the harness's own that costs almost no CPU; read the result
    /// against the page-cache append rate measured after it.
    Ingest(IngestArgs),
    /// Compare codecs and batch sizes on built-in or user data.
    Compression(CompressionArgs),
    /// Put earlier runs side by side, each against the first.
    Compare(CompareArgs),
    /// Fill a spawned sluice with many partitions, restart it cleanly, and
    /// time how soon every partition serves again; report the open files
    /// and memory it holds before and after.
    Restart(RestartArgs),
    /// Serve the in-memory floor broker (what `run --floor` starts).
    FloorBroker(FloorBrokerArgs),
}

#[derive(Args)]
struct FloorBrokerArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: std::net::SocketAddr,
    /// Also append every produced partition's bytes to a file of its own
    /// in this directory (an existing one, kept), before answering.
    #[arg(long)]
    log_dir: Option<PathBuf>,
}

#[derive(Args)]
struct CompareArgs {
    /// Run output directories (or their result.json), the reference first.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The target to read in each run (default: each run's first).
    #[arg(long)]
    target: Option<String>,
    /// Also write the comparison as Markdown to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Workload TOML file (see bench/workloads/).
    workload: PathBuf,
    /// A broker to measure, as NAME=HOST:PORT[,HOST:PORT...] (a cluster's
    /// bootstrap list); repeat to compare brokers.
    #[arg(long = "target", value_name = "NAME=HOST:PORT")]
    targets: Vec<String>,
    /// A broker (or cluster: HOST:PORT,HOST:PORT...) to measure, named after
    /// its address.
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    bootstraps: Vec<String>,
    /// Start a local sluice with a temporary data dir (target "sluice").
    #[arg(long)]
    spawn: bool,
    /// Also run against the floor: an in-memory broker of the harness's own
    /// that answers at once (target "floor", after the others), so latency
    /// can be read against what the clients and machine cost alone.
    #[arg(long)]
    floor: bool,
    /// Also run against the floor with a disk (target "floor-disk", last):
    /// it appends every produced partition's bytes to a file through the
    /// page cache before answering, what any broker's write costs and no
    /// more.
    #[arg(long)]
    floor_disk: bool,
    #[command(flatten)]
    broker: SpawnedBrokerArgs,
    #[command(flatten)]
    window: WindowArgs,
    /// Override the workload's producer_rate, msg/s (0 = max).
    #[arg(long)]
    rate: Option<u64>,
    /// Override the workload's replication_factor.
    #[arg(long)]
    replication_factor: Option<u32>,
    /// Override the workload's min_insync_replicas (topic config).
    #[arg(long)]
    min_insync_replicas: Option<u32>,
    /// Seconds allowed for the final flush and for consumers to drain.
    #[arg(long, default_value_t = 10)]
    grace: u64,
    /// Output directory (default: bench/results/<workload name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip the machine baselines.
    #[arg(long)]
    no_baseline: bool,
    /// Seconds for each baseline measurement.
    #[arg(long, default_value_t = 1.0)]
    baseline_secs: f64,
    /// Skip plots.
    #[arg(long)]
    no_plots: bool,
}

/// The broker `--spawn` starts.
#[derive(Args)]
struct SpawnedBrokerArgs {
    /// The sluice binary for --spawn (default: next to sluice-bench, then PATH).
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// --shards for the spawned broker.
    #[arg(long)]
    shards: Option<usize>,
    /// Nice level of every broker this run starts (--spawn and --floor
    /// alike); negative needs root or CAP_SYS_NICE. On a small machine the
    /// clients share the broker's cores, and one thread per core competes
    /// with them for its share (see the bench README).
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(-20..=19))]
    nice: Option<i32>,
}

/// The measured window, over the workload's.
#[derive(Args)]
struct WindowArgs {
    /// Override the workload's measured duration, seconds.
    #[arg(long)]
    duration: Option<u64>,
    /// Override the workload's warm-up, seconds.
    #[arg(long)]
    warmup: Option<u64>,
}

impl WindowArgs {
    fn apply(&self, w: &mut Workload) {
        if let Some(d) = self.duration {
            w.duration_secs = d;
        }
        if let Some(s) = self.warmup {
            w.warmup_secs = s;
        }
    }
}

#[derive(Args)]
struct IngestArgs {
    /// Workload TOML file: its topics, partitions, message size, acks,
    /// replication, warm-up and duration are used; its producers, rates
    /// and consumers are not.
    workload: PathBuf,
    /// A broker to measure, as HOST:PORT[,HOST:PORT...].
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    bootstrap: Option<String>,
    /// Start a local sluice with a temporary data dir instead.
    #[arg(long)]
    spawn: bool,
    #[command(flatten)]
    broker: SpawnedBrokerArgs,
    #[command(flatten)]
    window: WindowArgs,
    /// Connections to each partition leader.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Unanswered requests each connection keeps (librdkafka keeps 5).
    #[arg(long, default_value_t = 5)]
    in_flight: usize,
    /// Partitions each request writes, one batch each.
    #[arg(long, default_value_t = 4)]
    partitions_per_request: usize,
    /// Records in each batch.
    #[arg(long, default_value_t = 16)]
    batch_records: usize,
    /// Output directory for ingest.json.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip the page-cache baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Seconds of the baseline's disk measurement: long enough to reach
    /// the sustained rate.
    #[arg(long, default_value_t = 10.0)]
    baseline_secs: f64,
}

#[derive(Args)]
struct RestartArgs {
    /// Topics to create.
    #[arg(long, default_value_t = 10)]
    topics: u32,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 1_000)]
    partitions: u32,
    #[command(flatten)]
    broker: SpawnedBrokerArgs,
    /// The broker's open-file limit, soft and hard (an operator's `ulimit
    /// -n`), at most this process's hard limit; 0 leaves it this process's.
    #[arg(long, default_value_t = 65_536)]
    open_files_limit: u64,
    /// Output directory for restart.json and the broker's logs.
    #[arg(long, default_value = "bench/results/restart")]
    out: PathBuf,
}

#[derive(Args)]
struct BaselineArgs {
    /// Output directory for baseline.json.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Directory whose filesystem is measured (default: the temp dir, where
    /// --spawn puts the broker's data).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds for each measurement.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Most GiB each disk run writes (also at most half the free space);
    /// raise it with --secs to see the sustained page-cache rate.
    #[arg(long, default_value_t = 4.0)]
    disk_gib: f64,
}

#[derive(Args)]
struct CompressionArgs {
    /// Also measure this file (split into lines, or 1 KiB chunks).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output directory for compression.json, compression.md and plots.
    #[arg(long, default_value = "bench/results/compression")]
    out: PathBuf,
    /// Messages per dataset.
    #[arg(long, default_value_t = compression::DATASET_MESSAGES)]
    messages: usize,
    /// Minimum seconds for each speed measurement.
    #[arg(long, default_value_t = 0.1)]
    min_secs: f64,
    /// Skip plots.
    #[arg(long)]
    no_plots: bool,
    /// Also produce and consume through a local sluice (temporary data dir),
    /// once per codec (target "sluice").
    #[arg(long)]
    spawn: bool,
    /// Also produce and consume through this broker, once per codec, as
    /// NAME=HOST:PORT; repeat for several brokers.
    #[arg(long = "target", value_name = "NAME=HOST:PORT")]
    targets: Vec<String>,
    /// The sluice binary for --spawn (default: next to sluice-bench, then PATH).
    #[arg(long)]
    broker_bin: Option<PathBuf>,
    /// Measured seconds per codec through the broker.
    #[arg(long, default_value_t = codec_runs::DEFAULT_SECS)]
    broker_secs: u64,
    /// Warm-up seconds per codec through the broker.
    #[arg(long, default_value_t = codec_runs::DEFAULT_WARMUP_SECS)]
    broker_warmup: u64,
    /// Fixed producer rate through the broker, msg/s.
    #[arg(long, default_value_t = codec_runs::DEFAULT_RATE)]
    broker_rate: u64,
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Run(a) => cmd_run(a),
        Command::Baseline(a) => cmd_baseline(a),
        Command::Ingest(a) => cmd_ingest(a),
        Command::Compression(a) => cmd_compression(a),
        Command::Compare(a) => cmd_compare(a),
        Command::Restart(a) => cmd_restart(a),
        Command::FloorBroker(a) => floor::serve(a.listen, a.log_dir),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Where a target's load goes.
enum Endpoint {
    Spawn,
    Floor,
    FloorDisk,
    Remote(String),
}

/// `NAME=HOST:PORT` -> (name, address).
fn parse_target(s: &str) -> Result<(String, String)> {
    let Some((name, addr)) = s.split_once('=') else {
        bail!("--target {s:?}: expected NAME=HOST:PORT");
    };
    check_addr(addr).with_context(|| format!("--target {s:?}"))?;
    if name.is_empty() || name.contains(['/', ' ']) {
        bail!("--target {s:?}: the name must be non-empty, without '/' or spaces");
    }
    Ok((name.to_string(), addr.to_string()))
}

/// `HOST:PORT`, or a comma-separated list of them (a cluster's bootstrap
/// servers).
fn check_addr(addrs: &str) -> Result<()> {
    for addr in addrs.split(',') {
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
            _ => bail!("{addr:?} is not HOST:PORT"),
        }
    }
    Ok(())
}

fn targets(a: &RunArgs, w: &Workload) -> Result<Vec<(String, Endpoint)>> {
    let mut out = endpoints(a.spawn, &a.targets, &a.bootstraps)?;
    let floors = [
        (a.floor, FLOOR_NAME, Endpoint::Floor),
        (a.floor_disk, FLOOR_DISK_NAME, Endpoint::FloorDisk),
    ];
    for (_, name, endpoint) in floors.into_iter().filter(|f| f.0) {
        if w.producer_mode().messages_per_transaction().is_some()
            || w.consumer_mode != workload::ConsumerMode::Assign
        {
            bail!(
                "--floor and --floor-disk serve neither transactions nor consumer groups; this workload uses one"
            );
        }
        if out.iter().any(|(n, _)| n == name) {
            bail!("target name {name:?} is used twice");
        }
        out.push((name.to_string(), endpoint));
    }
    if out.is_empty() {
        bail!("no target: pass --spawn, --target NAME=HOST:PORT or --bootstrap HOST:PORT");
    }
    Ok(out)
}

/// The named endpoints of `--spawn`, `--target` and `--bootstrap`, in that
/// order; possibly none. Names must be unique: they key the results.
fn endpoints(
    spawn: bool,
    targets: &[String],
    bootstraps: &[String],
) -> Result<Vec<(String, Endpoint)>> {
    let mut out = Vec::new();
    if spawn {
        out.push((SPAWN_NAME.to_string(), Endpoint::Spawn));
    }
    for t in targets {
        let (name, addr) = parse_target(t)?;
        out.push((name, Endpoint::Remote(addr)));
    }
    for b in bootstraps {
        check_addr(b).with_context(|| format!("--bootstrap {b:?}"))?;
        out.push((b.clone(), Endpoint::Remote(b.clone())));
    }
    for (i, (name, _)) in out.iter().enumerate() {
        if out[..i].iter().any(|(n, _)| n == name) {
            bail!("target name {name:?} is used twice");
        }
    }
    Ok(out)
}

/// How `--spawn` starts its broker.
struct SpawnOpts<'a> {
    broker_bin: Option<&'a Path>,
    shards: Option<usize>,
    nice: Option<i32>,
    /// Where `broker-<name>.log` goes.
    log_dir: &'a Path,
}

/// Runs `f` against one endpoint; for `--spawn` and `--floor`, a broker is
/// started first and stopped after (or killed on drop if `f` fails).
fn with_endpoint<T>(
    name: &str,
    endpoint: &Endpoint,
    opts: &SpawnOpts,
    f: impl FnOnce(&run::TargetSpec) -> Result<T>,
) -> Result<T> {
    let log = opts.log_dir.join(format!("broker-{name}.log"));
    let broker = match endpoint {
        Endpoint::Remote(addr) => {
            return f(&run::TargetSpec {
                name,
                bootstrap: addr,
                spawned: false,
                // Every local broker of a bootstrap list: a cluster's CPU is
                // what replication costs.
                broker_pids: addr.split(',').filter_map(local::listening_pid).collect(),
                metrics: None,
            });
        }
        Endpoint::Spawn => {
            let bin = spawn::find_broker_bin(opts.broker_bin);
            SpawnedBroker::start(&bin, opts.shards, opts.nice, &log)?
        }
        Endpoint::Floor => SpawnedBroker::start_floor(opts.nice, false, &log)?,
        Endpoint::FloorDisk => SpawnedBroker::start_floor(opts.nice, true, &log)?,
    };
    if let Some(want) = opts.nice {
        let got = spawn::read_nice(broker.pid())?;
        if got != want {
            bail!("{name} runs at nice {got}, not the --nice {want} asked");
        }
    }
    let out = f(&run::TargetSpec {
        name,
        bootstrap: &broker.addr,
        spawned: true,
        broker_pids: vec![broker.pid()],
        metrics: broker.metrics.clone(),
    })?;
    broker.stop()?;
    Ok(out)
}

fn load_workload(a: &RunArgs) -> Result<Workload> {
    let mut w = Workload::load(&a.workload)?;
    a.window.apply(&mut w);
    if let Some(r) = a.rate {
        w.producer_rate = r;
    }
    if let Some(rf) = a.replication_factor {
        w.replication_factor = rf;
    }
    if let Some(m) = a.min_insync_replicas {
        w.min_insync_replicas = Some(m);
    }
    w.validate().context("after command-line overrides")?;
    Ok(w)
}

/// Says so on stderr when a fixed-rate run would write more than half of
/// the free space where the spawned brokers keep their data; the report's
/// filesystem line gives the free space either way.
fn warn_if_crowded(w: &Workload) {
    let planned = w.planned_bytes();
    let free = data_fs::free_bytes(&std::env::temp_dir()).ok();
    if let Some(warning) = planned.zip(free).and_then(|(p, f)| data_fs::crowding(p, f)) {
        eprintln!("warning: {warning}");
    }
}

fn cmd_run(a: RunArgs) -> Result<()> {
    let w = load_workload(&a)?;
    let targets = targets(&a, &w)?;
    if !(1..=GRACE_SECS_MAX).contains(&a.grace) {
        bail!("--grace must be 1..={GRACE_SECS_MAX} seconds");
    }
    let grace = Duration::from_secs(a.grace);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| Path::new("bench/results").join(&w.name));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut run = RunResult {
        workload: w.clone(),
        producer_mode: w.producer_mode().label(),
        harness_version: env!("CARGO_PKG_VERSION").into(),
        librdkafka_version: rdkafka::util::get_rdkafka_version().1,
        started_unix_secs: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        broker_nice: a.broker.nice,
        broker_shards: a.broker.shards,
        broker_data_fs: (a.spawn || a.floor_disk)
            .then(data_fs::of_spawned)
            .flatten(),
        free_page_reporting: host_memory::free_page_reporting(),
        baseline: None,
        order: targets.iter().map(|(n, _)| n.clone()).collect(),
        targets: Default::default(),
    };
    if a.spawn || a.floor_disk {
        warn_if_crowded(&w);
    }
    let opts = SpawnOpts {
        broker_bin: a.broker.broker_bin.as_deref(),
        shards: a.broker.shards,
        nice: a.broker.nice,
        log_dir: &out,
    };
    for (name, endpoint) in &targets {
        eprintln!(
            "running {} ({} producers) against {name}...",
            w.name, run.producer_mode
        );
        let result = with_endpoint(name, endpoint, &opts, |spec| {
            run::run_target(spec, &w, grace)
        })?;
        run.targets.insert(name.clone(), result);
    }
    // After the targets, not before: the disk baselines write and then free
    // gigabytes of page cache, and a broker started right after pays for
    // that memory again (write-back, or a VM host handing it back) in its
    // latency tail.
    if !a.no_baseline {
        eprintln!(
            "measuring machine baselines ({} s each)...",
            a.baseline_secs
        );
        run.baseline = Some(baseline::measure(
            &std::env::temp_dir(),
            a.baseline_secs,
            baseline::DISK_BYTES_DEFAULT,
        )?);
    }
    write_run(&run, &out, !a.no_plots)
}

fn write_run(run: &RunResult, out: &Path, plots: bool) -> Result<()> {
    let json = out.join("result.json");
    std::fs::write(&json, serde_json::to_string_pretty(run)?)?;
    let files = if plots {
        plot::run_plots(run, out).unwrap_or_else(|e| {
            eprintln!("warning: no plots: {e:#}");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let md = out.join("report.md");
    std::fs::write(&md, report::markdown(run, &files))?;
    if let Some(b) = &run.baseline {
        println!("{}", b.table().terminal());
    }
    println!("{} ({} producers)", run.workload.name, run.producer_mode);
    println!("{}", report::results_table(run).terminal());
    for w in report::warnings(run) {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "wrote {}, {} and {} plot files",
        json.display(),
        md.display(),
        files.len()
    );
    Ok(())
}

fn cmd_ingest(a: IngestArgs) -> Result<()> {
    let mut w = Workload::load(&a.workload)?;
    a.window.apply(&mut w);
    w.validate().context("after command-line overrides")?;
    let shape = ingest::Shape {
        connections: a.connections,
        in_flight: a.in_flight,
        partitions_per_request: a.partitions_per_request,
        records_per_batch: a.batch_records,
    };
    shape.validate()?;
    let mut targets = endpoints(a.spawn, &[], a.bootstrap.as_slice())?;
    let (name, endpoint) = match (targets.pop(), targets.is_empty()) {
        (Some(one), true) => one,
        _ => bail!("pass exactly one of --spawn and --bootstrap HOST:PORT"),
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| Path::new("bench/results/ingest").join(&w.name));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let opts = SpawnOpts {
        broker_bin: a.broker.broker_bin.as_deref(),
        shards: a.broker.shards,
        nice: a.broker.nice,
        log_dir: &out,
    };
    eprintln!(
        "ingest: {} against {name} for {} s after {} s of warm-up...",
        w.name, w.duration_secs, w.warmup_secs
    );
    let mut result = with_endpoint(&name, &endpoint, &opts, |spec| ingest::run(spec, &w, shape))?;
    result.broker_nice = a.broker.nice;
    if a.spawn {
        result.broker_data_fs = data_fs::of_spawned();
    }
    result.free_page_reporting = host_memory::free_page_reporting();
    // After the broker, as in `run`: the baseline's gigabytes of page cache
    // would otherwise be the broker's write-back to pay.
    if !a.no_baseline {
        eprintln!(
            "measuring machine baselines ({} s each)...",
            a.baseline_secs
        );
        let b = baseline::measure(
            &std::env::temp_dir(),
            a.baseline_secs,
            baseline::DISK_BYTES_MAX_SUSTAINED,
        )?;
        result.share_of_page_cache =
            Some(result.batch_mib_per_sec / b.disk_append_page_cache_tail_mb.max(f64::EPSILON));
        result.baseline = Some(b);
    }
    let json = out.join("ingest.json");
    std::fs::write(&json, serde_json::to_string_pretty(&result)?)?;
    if let Some(b) = &result.baseline {
        println!("{}", b.table().terminal());
    }
    println!("{}", result.table().terminal());
    eprintln!("wrote {}", json.display());
    Ok(())
}

fn cmd_restart(a: RestartArgs) -> Result<()> {
    let shape = restart::Shape {
        topics: a.topics,
        partitions_per_topic: a.partitions,
    };
    shape.validate()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let serve = spawn::Serve {
        bin: spawn::find_broker_bin(a.broker.broker_bin.as_deref()),
        shards: a.broker.shards,
        nice: a.broker.nice,
        open_files_limit: (a.open_files_limit > 0).then_some(a.open_files_limit),
    };
    eprintln!(
        "restart: {} topics x {} partitions...",
        shape.topics, shape.partitions_per_topic
    );
    let result = restart::run(serve, shape, &a.out)?;
    let json = a.out.join("restart.json");
    std::fs::write(&json, serde_json::to_string_pretty(&result)?)?;
    println!("{}", result.table().terminal());
    eprintln!("wrote {}", json.display());
    Ok(())
}

fn cmd_compare(a: CompareArgs) -> Result<()> {
    let runs = a
        .runs
        .iter()
        .map(|p| compare::load(p, a.target.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    println!("{}", compare::table(&runs).terminal());
    for w in compare::warnings(&runs) {
        eprintln!("warning: {w}");
    }
    if let Some(out) = &a.out {
        std::fs::write(out, compare::markdown(&runs))
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

fn cmd_baseline(a: BaselineArgs) -> Result<()> {
    if !(a.secs > 0.0 && a.secs <= 600.0) {
        bail!("--secs must be in (0, 600]");
    }
    let dir = a.dir.unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&a.out)?;
    eprintln!(
        "measuring baselines in {} ({} s each)...",
        dir.display(),
        a.secs
    );
    if !(a.disk_gib > 0.0 && a.disk_gib <= DISK_GIB_MAX) {
        bail!("--disk-gib must be in (0, {DISK_GIB_MAX}]");
    }
    let b = baseline::measure(&dir, a.secs, (a.disk_gib * (1u64 << 30) as f64) as u64)?;
    let path = a.out.join("baseline.json");
    std::fs::write(&path, serde_json::to_string_pretty(&b)?)?;
    println!("{}", b.table().terminal());
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn cmd_compression(a: CompressionArgs) -> Result<()> {
    if !(0.0..=60.0).contains(&a.min_secs) || a.messages == 0 {
        bail!("--min-secs must be 0..=60 and --messages positive");
    }
    // Every flag is checked before anything runs.
    let sets = compression_datasets(&a)?;
    let settings = codec_runs::Settings::new(a.broker_secs, a.broker_warmup, a.broker_rate)?;
    let targets = endpoints(a.spawn, &a.targets, &[])?;
    std::fs::create_dir_all(&a.out)?;
    // Through the broker first: an unreachable target or a missing broker
    // binary then fails in seconds, not after the in-memory study.
    let broker_runs = broker_codec_runs(&a, &targets, &settings)?;
    let mut r = memory_study(&sets, a.min_secs)?;
    r.notes
        .push(codec_runs::note((!targets.is_empty()).then_some(&settings)));
    r.broker_runs = broker_runs;
    write_compression(&r, &a.out, !a.no_plots)
}

/// The built-in datasets plus `--data`.
fn compression_datasets(a: &CompressionArgs) -> Result<Vec<compression::Dataset>> {
    let mut sets = compression::builtin_datasets(a.messages);
    if let Some(path) = &a.data {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let messages = datasets::from_file_bytes(&bytes, a.messages);
        if messages.is_empty() {
            bail!("{} is empty", path.display());
        }
        let name = path
            .file_name()
            .map_or("data".into(), |n| n.to_string_lossy().into_owned());
        sets.push(compression::Dataset { name, messages });
    }
    Ok(sets)
}

/// Every codec through every target; one spawned broker serves all codecs.
fn broker_codec_runs(
    a: &CompressionArgs,
    targets: &[(String, Endpoint)],
    settings: &codec_runs::Settings,
) -> Result<Vec<codec_runs::BrokerCodecRow>> {
    let opts = SpawnOpts {
        broker_bin: a.broker_bin.as_deref(),
        shards: None,
        nice: None,
        log_dir: &a.out,
    };
    let mut rows = Vec::new();
    for (name, endpoint) in targets {
        rows.extend(with_endpoint(name, endpoint, &opts, |spec| {
            codec_runs::run_codecs(spec, settings)
        })?);
    }
    Ok(rows)
}

/// The in-memory codec study, with a progress bar.
fn memory_study(
    sets: &[compression::Dataset],
    min_secs: f64,
) -> Result<compression::CompressionResult> {
    let total = sets.len() * compression::Codec::ALL.len() * compression::BATCH_SIZES.len();
    let pb = ProgressBar::new(total as u64);
    pb.set_style(
        ProgressStyle::with_template("compression [{bar:30}] {pos}/{len} {msg}")?
            .progress_chars("=> "),
    );
    let r = compression::study(sets, Duration::from_secs_f64(min_secs), |row| {
        pb.inc(1);
        pb.set_message(format!(
            "{} {} x{}",
            row.dataset, row.codec_label, row.batch_messages
        ));
    })?;
    pb.finish_and_clear();
    Ok(r)
}

/// compression.json, plots, compression.md and the terminal tables.
fn write_compression(r: &compression::CompressionResult, out: &Path, plots: bool) -> Result<()> {
    let json = out.join("compression.json");
    std::fs::write(&json, serde_json::to_string_pretty(r)?)?;
    let files = if plots {
        plot::compression_plots(r, out).unwrap_or_else(|e| {
            eprintln!("warning: no plots: {e:#}");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let table = compression::table(r);
    let broker = codec_runs::table(&r.broker_runs);
    let warnings = codec_runs::warnings(&r.broker_runs);
    let mut md = format!(
        "# sluice-bench compression\n\nRatio = raw / compressed per batch size (messages per \
         compressed batch); speeds are MB/s (2^20 bytes) of raw data on one core.\n\n{}\n",
        table.markdown()
    );
    if !r.broker_runs.is_empty() {
        md += &format!(
            "## Through the broker\n\nOne fixed-rate run per codec; MB/s are of uncompressed \
             messages.\n\n{}\n",
            broker.markdown()
        );
        for w in &warnings {
            md += &format!("- warning: {w}\n");
        }
    }
    for n in &r.notes {
        md += &format!("- {n}\n");
    }
    for f in &files {
        md += &format!("\n![{f}]({f})\n");
    }
    std::fs::write(out.join("compression.md"), md)?;
    println!("{}", table.terminal());
    if !r.broker_runs.is_empty() {
        println!("{}", broker.terminal());
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    eprintln!("wrote {}", json.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_reject_mistakes() {
        assert_eq!(
            parse_target("kafka=127.0.0.1:9093").unwrap(),
            ("kafka".to_string(), "127.0.0.1:9093".to_string())
        );
        assert_eq!(
            parse_target("c=127.0.0.1:9092,127.0.0.1:9093").unwrap().1,
            "127.0.0.1:9092,127.0.0.1:9093"
        );
        for bad in [
            "k=h:1,h",
            "k=h:1,",
            "kafka",
            "=1.2.3.4:9",
            "k=host",
            "k=host:0",
            "k=:9092",
            "k=h:99999",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}

//! End-to-end checks of the `sluice-bench` binary against a spawned broker.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BENCH: &str = env!("CARGO_BIN_EXE_sluice-bench");

/// The `sluice` binary next to `sluice-bench`, built on demand when only this
/// crate was built.
fn broker_bin() -> PathBuf {
    let dir = Path::new(BENCH).parent().expect("binary has a directory");
    let bin = dir.join("sluice");
    if !bin.is_file() {
        let target_dir = dir.parent().expect("profile dir has a parent");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "sluice", "--bin", "sluice"])
            .env("CARGO_TARGET_DIR", target_dir);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build -p sluice");
        assert!(status.success(), "cargo build -p sluice failed");
    }
    assert!(bin.is_file(), "no sluice binary at {}", bin.display());
    bin
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-bench-smoke-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn bench(args: &[&str]) -> Output {
    Command::new(BENCH)
        .args(args)
        .output()
        .expect("running sluice-bench")
}

/// Runs `sluice-bench` and fails the test with its stderr if it fails.
fn bench_ok(args: &[&str]) {
    let o = bench(args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "sluice-bench failed: {stderr}");
}

fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn write_workload(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("smoke.toml");
    let text = format!(
        "name = \"smoke\"\ntopics = 1\npartitions_per_topic = 4\nmessage_size = 256\n\
         producers_per_topic = 1\nconsumers_per_topic = 2\nproducer_rate = 2000\n\
         warmup_secs = 1\nduration_secs = 2\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A 3-second fixed-rate run against a spawned broker yields a complete,
/// consistent result.json and a report.
#[test]
fn three_second_run_against_spawned_broker() {
    let dir = temp_dir("run");
    let workload = write_workload(&dir, "");
    let out = dir.join("out");
    let broker = broker_bin();
    bench_ok(&[
        "run",
        workload.to_str().unwrap(),
        "--spawn",
        "--broker-bin",
        broker.to_str().unwrap(),
        "--shards",
        "2",
        "--baseline-secs",
        "0.2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let json = read_json(&out.join("result.json"));
    let t = &json["targets"]["sluice"];
    for f in [
        "publish_rate_msgs",
        "publish_rate_mb",
        "consume_rate_msgs",
        "consume_rate_mb",
    ] {
        assert!(t[f].as_f64().unwrap() > 0.0, "{f} in {t}");
    }
    let sent = t["messages_sent"].as_u64().unwrap();
    assert!(sent > 0);
    // A message whose delivery report never came (purged in flight at the
    // final flush on a loaded machine) counts as failed, yet the broker may
    // have taken it: consumed, it is one of those, never a stranger.
    let failed = t["messages_failed"].as_u64().unwrap();
    let received = t["messages_received"].as_u64().unwrap();
    assert!(
        (sent..=sent + failed).contains(&received),
        "every acked message consumed, and only messages sent: {t}"
    );
    for h in ["publish_latency_us", "e2e_latency_us"] {
        let p: Vec<u64> = ["p50", "p75", "p95", "p99", "p999", "p9999", "max"]
            .iter()
            .map(|k| t[h][k].as_u64().unwrap_or_else(|| panic!("{h}.{k}")))
            .collect();
        assert!(p.windows(2).all(|w| w[0] <= w[1]), "{h} not ordered: {p:?}");
        assert!(t[h]["count"].as_u64().unwrap() > 0, "{h} recorded nothing");
    }
    assert!(t["broker"]["peak_rss_mb"].as_f64().unwrap() > 0.0);
    assert!(json["baseline"]["loopback_tcp_mb"].as_f64().unwrap() > 0.0);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| publish msg/s |"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ingest` writes through its own raw producer and reads the rate
/// against the page-cache baseline of the same run.
#[test]
fn ingest_against_spawned_broker() {
    let dir = temp_dir("ingest");
    let workload = write_workload(&dir, "");
    let out = dir.join("out");
    let broker = broker_bin();
    bench_ok(&[
        "ingest",
        workload.to_str().unwrap(),
        "--spawn",
        "--broker-bin",
        broker.to_str().unwrap(),
        "--connections",
        "2",
        "--partitions-per-request",
        "3",
        "--batch-records",
        "8",
        "--baseline-secs",
        "0.2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let json = read_json(&out.join("ingest.json"));
    for f in [
        "msgs_per_sec",
        "batch_mib_per_sec",
        "broker_cpu_seconds",
        "share_of_page_cache",
    ] {
        assert!(json[f].as_f64().unwrap() > 0.0, "{f} in {json}");
    }
    let p = &json["produce_latency"];
    assert!(p["count"].as_u64().unwrap() > 0, "no answer timed: {p}");
    assert!(p["p50"].as_u64().unwrap() <= p["max"].as_u64().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A restart of a broker holding a few partitions on two shards: every
/// partition takes a record before the stop and the next offset after the
/// start (checked by the harness, which fails otherwise), and the report
/// counts what the broker held under the open-file limit it ran with.
/// (The times are not checked: they say how fast, which is `make bench`'s.)
#[test]
fn restart_of_a_spawned_broker() {
    let dir = temp_dir("restart");
    let out = dir.join("out");
    let broker = broker_bin();
    bench_ok(&[
        "restart",
        "--topics",
        "2",
        "--partitions",
        "5",
        "--broker-bin",
        broker.to_str().unwrap(),
        "--shards",
        "2",
        "--open-files-limit",
        "4096",
        "--out",
        out.to_str().unwrap(),
    ]);
    let json = read_json(&out.join("restart.json"));
    assert_eq!(json["partitions"], 10, "{json}");
    let limit = json["open_files_limit"].as_u64().unwrap();
    assert!((1..=4096).contains(&limit), "{json}");
    for held in ["before", "at_ready", "after"] {
        let files = json[held]["open_files"].as_u64().unwrap();
        assert!(files > 0 && files < limit, "{held} in {json}");
        assert!(
            json[held]["rss_mib"].as_f64().unwrap() > 0.0,
            "{held} in {json}"
        );
    }
    assert!(out.join("broker-sluice-restarted.log").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad input fails fast with a message naming the problem.
#[test]
fn bad_input_gets_a_clear_error() {
    let dir = temp_dir("bad");
    let typo = write_workload(&dir, "linger_msec = 5\n");
    let o = bench(&["run", typo.to_str().unwrap(), "--target", "x=127.0.0.1:9"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("linger_msec"));

    let good = write_workload(&dir, "");
    let o = bench(&[
        "run",
        good.to_str().unwrap(),
        "--rate",
        "900000000",
        "--target",
        "x=127.0.0.1:9",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("impossible rate"));

    // Port 9 (discard) is closed on loopback: nothing listens there.
    let o = bench(&[
        "run",
        good.to_str().unwrap(),
        "--no-baseline",
        "--target",
        "x=127.0.0.1:9",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("unreachable"), "{stderr}");

    let o = bench(&["restart", "--topics", "1000", "--partitions", "1000"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("--topics times --partitions"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A broker started outside the harness, killed when dropped.
struct LocalBroker {
    child: std::process::Child,
    addr: String,
}

impl LocalBroker {
    fn start(data_dir: &Path) -> LocalBroker {
        use std::io::BufRead;
        let mut child = Command::new(broker_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting sluice");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("broker exited before listening")
                .unwrap();
            if let Some(a) = line.strip_prefix("sluice listening on ") {
                break a.trim().to_string();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        LocalBroker { child, addr }
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `producer_rate = 0` searches: the asked rate moves with what the broker
/// sustains (up while it keeps up, down when it falls behind; which one
/// depends on the machine's load, so only the movement is checked). A
/// loopback `--target` the harness did not start still gets its CPU and
/// memory read from /proc.
#[test]
fn max_rate_search_against_a_local_target() {
    let dir = temp_dir("search");
    let broker = LocalBroker::start(&dir.join("data"));
    // 4 KiB messages: the search starts at 32 MiB/s, 8,192 msg/s.
    let workload = dir.join("search.toml");
    std::fs::write(
        &workload,
        "name = \"search\"\ntopics = 1\npartitions_per_topic = 4\nmessage_size = 4096\n\
         producers_per_topic = 1\nconsumers_per_topic = 1\nproducer_rate = 0\n\
         warmup_secs = 2\nduration_secs = 2\n",
    )
    .unwrap();
    let out = dir.join("out");
    let target = format!("local={}", broker.addr);
    bench_ok(&[
        "run",
        workload.to_str().unwrap(),
        "--no-baseline",
        "--no-plots",
        "--target",
        &target,
        "--out",
        out.to_str().unwrap(),
    ]);
    let json = read_json(&out.join("result.json"));
    let t = &json["targets"]["local"];
    let asked: Vec<f64> = t["throughput"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["asked_msgs"].as_f64().unwrap())
        .collect();
    assert_eq!(asked.len(), 4, "{asked:?}");
    assert_eq!(asked[0], 8192.0, "the search's starting rate: {asked:?}");
    assert!(
        asked.iter().any(|&a| a != asked[0]),
        "the search never moved the rate: {asked:?}"
    );
    let sent = t["messages_sent"].as_u64().unwrap();
    assert!(sent > 0);
    assert_eq!(t["messages_received"].as_u64().unwrap(), sent);
    assert_eq!(t["spawned"], false);
    assert!(t["broker"]["cpu_seconds"].as_f64().unwrap() > 0.0, "{t}");
    assert!(t["broker"]["peak_rss_mb"].as_f64().unwrap() > 0.0, "{t}");
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `compression --spawn` produces and consumes through the broker once per
/// codec, losing nothing.
#[test]
fn compression_through_a_spawned_broker() {
    let dir = temp_dir("codecs");
    let broker = broker_bin();
    bench_ok(&[
        "compression",
        "--spawn",
        "--broker-bin",
        broker.to_str().unwrap(),
        "--broker-secs",
        "1",
        "--broker-warmup",
        "0",
        "--broker-rate",
        "2000",
        "--messages",
        "100",
        "--min-secs",
        "0",
        "--no-plots",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let json = read_json(&dir.join("compression.json"));
    let rows = json["broker_runs"].as_array().unwrap();
    let codecs: Vec<&str> = rows.iter().map(|r| r["codec"].as_str().unwrap()).collect();
    assert_eq!(codecs, ["none", "gzip", "snappy", "lz4", "zstd"]);
    for r in rows {
        let sent = r["messages_sent"].as_u64().unwrap();
        assert!(sent > 0, "{r}");
        assert_eq!(r["messages_received"].as_u64().unwrap(), sent, "{r}");
        assert!(r["e2e_latency_us"]["count"].as_u64().unwrap() > 0, "{r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `extra` (a producer mode's workload keys) for 3 seconds against a
/// spawned broker and returns result.json.
fn run_mode(tag: &str, extra: &str) -> serde_json::Value {
    let dir = temp_dir(tag);
    let workload = write_workload(&dir, extra);
    let out = dir.join("out");
    let broker = broker_bin();
    bench_ok(&[
        "run",
        workload.to_str().unwrap(),
        "--spawn",
        "--broker-bin",
        broker.to_str().unwrap(),
        "--no-baseline",
        "--no-plots",
        "--out",
        out.to_str().unwrap(),
    ]);
    let json = read_json(&out.join("result.json"));
    let _ = std::fs::remove_dir_all(&dir);
    json
}

/// Every acknowledged (or committed) message was consumed, none failed, and
/// the report names the producer mode.
fn assert_complete(json: &serde_json::Value, mode: &str) {
    assert_target_complete(json, mode, "sluice");
}

fn assert_target_complete(json: &serde_json::Value, mode: &str, target: &str) {
    assert_eq!(json["producer_mode"], mode, "{}", json["producer_mode"]);
    let t = &json["targets"][target];
    let sent = t["messages_sent"].as_u64().unwrap();
    assert!(sent > 0, "nothing published: {}", t["first_error"]);
    assert_eq!(t["messages_failed"], 0, "{}", t["first_error"]);
    assert_eq!(
        t["messages_received"].as_u64().unwrap(),
        sent,
        "lost messages"
    );
    assert!(t["publish_rate_msgs"].as_f64().unwrap() > 0.0);
    for h in ["publish_latency_us", "e2e_latency_us"] {
        assert!(t[h]["count"].as_u64().unwrap() > 0, "{h} recorded nothing");
    }
    assert_eq!(t["first_error"], serde_json::Value::Null);
}

/// An idempotent producer loses nothing and is named in result.json.
#[test]
fn idempotent_run_against_spawned_broker() {
    let json = run_mode("idempotent", "idempotence = true\n");
    assert_complete(&json, "idempotent");
    assert_eq!(json["workload"]["idempotence"], true);
}

/// A transactional producer (20 messages per transaction, 100 transactions
/// a second) commits everything it sends, read_committed consumers receive
/// all of it, and result.json names the mode. Needs the broker's
/// transaction coordinator.
#[test]
fn transactional_run_against_spawned_broker() {
    // librdkafka spends ~100 ms in each commit_transaction (between the
    // produce answers and EndTxn; see examples/txn_probe.rs), so a producer
    // makes under 10 transactions a second: 500 messages each keeps up with
    // the smoke workload's 2000 msg/s.
    let json = run_mode("txn", "messages_per_transaction = 500\n");
    assert_complete(&json, "transactional 500");
    assert_eq!(json["workload"]["messages_per_transaction"], 500);
}

/// The floor broker, in memory and with a disk, serves a whole run
/// (idempotent producers, `assign()` consumers) and loses nothing; `--floor`
/// refuses what it cannot serve.
#[test]
fn floor_serves_a_run() {
    let dir = temp_dir("floor");
    let workload = write_workload(&dir, "idempotence = true\n");
    let out = dir.join("out");
    bench_ok(&[
        "run",
        workload.to_str().unwrap(),
        "--floor",
        "--floor-disk",
        "--nice",
        "5",
        "--no-baseline",
        "--no-plots",
        "--out",
        out.to_str().unwrap(),
    ]);
    let json = read_json(&out.join("result.json"));
    assert_target_complete(&json, "idempotent", "floor");
    // A disk write that failed would have been refused (and retried until
    // the run gave up), so a complete run wrote everything it acknowledged.
    assert_target_complete(&json, "idempotent", "floor-disk");
    let disk_log = std::fs::read_to_string(out.join("broker-floor-disk.log")).unwrap();
    assert!(
        disk_log.contains("floor: appending produced bytes"),
        "{disk_log}"
    );
    assert!(!disk_log.contains("floor: writing"), "{disk_log}");
    // Measured at all: CPU is counted in 10 ms ticks a short run may not
    // reach, but its resident memory is never zero.
    assert!(
        json["targets"]["floor"]["broker"]["peak_rss_mb"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // The harness checked the floor's nice level before the run, and says so.
    assert_eq!(json["broker_nice"], 5);

    let txn = write_workload(&dir, "messages_per_transaction = 10\n");
    let o = bench(&["run", txn.to_str().unwrap(), "--floor", "--no-baseline"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("--floor and --floor-disk serve neither transactions"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The children of `pid`, from every one of its threads' lists.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether `pid` still runs (a zombie has exited).
fn runs(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// A harness killed in the middle of a run takes its spawned broker with
/// it, so nothing is left serving.
#[test]
fn a_killed_harness_leaves_no_broker() {
    let dir = temp_dir("killed");
    let workload = write_workload(&dir, "");
    let out = dir.join("out");
    let broker_path = broker_bin();
    let mut harness = Command::new(BENCH)
        .args([
            "run",
            workload.to_str().unwrap(),
            "--spawn",
            "--broker-bin",
            broker_path.to_str().unwrap(),
            "--duration",
            "120",
            "--no-baseline",
            "--no-plots",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("running sluice-bench");
    // The broker is the harness's child whose command line runs `serve`.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (broker, cmdline) = loop {
        let found = children_of(harness.id()).into_iter().find_map(|c| {
            let cmdline = std::fs::read(format!("/proc/{c}/cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.iter().any(|a| a == "serve").then_some((c, args))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no broker started within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    harness.kill().unwrap();
    harness.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while runs(broker) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let left_running = runs(broker);
    if left_running {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(broker as i32, libc::SIGKILL) };
    }
    if let Some(i) = cmdline.iter().position(|a| a == "--data-dir") {
        let _ = std::fs::remove_dir_all(&cmdline[i + 1]);
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!left_running, "broker {broker} outlived its harness");
}

/// Two members of a share group (KIP-932, the harness's own protocol
/// client) share the run's partitions: every acknowledged message is
/// acquired and accepted once, with its end-to-end latency recorded.
#[test]
fn share_group_run_against_spawned_broker() {
    let json = run_mode("share", "consumer_mode = \"share\"\n");
    assert_complete(&json, "plain");
    assert_eq!(json["workload"]["consumer_mode"], "share");
}

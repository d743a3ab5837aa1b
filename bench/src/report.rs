//! result.json types, the terminal table and the Markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::baseline::Baseline;
use crate::spawn::Usage;
use crate::stages::StageLatency;
use crate::stats::{Percentiles, Sample};
use crate::workload::Workload;

/// One target's measurements; field names are relied on by scripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetResult {
    pub name: String,
    pub bootstrap: String,
    /// Whether the harness started this broker (and so measured it).
    pub spawned: bool,
    /// The asked-for rate, msg/s; 0 for the max-rate search.
    pub target_rate_msgs: u64,
    /// At a fixed rate, whether the publish rate reached 95 % of the target.
    pub rate_sustained: Option<bool>,
    /// Rates over the measurement window (after warm-up).
    pub publish_rate_msgs: f64,
    pub publish_rate_mb: f64,
    pub consume_rate_msgs: f64,
    pub consume_rate_mb: f64,
    /// Counts over the whole run, warm-up and drain included.
    pub messages_sent: u64,
    pub messages_received: u64,
    pub messages_failed: u64,
    pub publish_latency_us: Percentiles,
    pub e2e_latency_us: Percentiles,
    /// How late a thread sleeping 1 ms at a time woke during the window: the
    /// machine's scheduling floor under both latencies above. Absent (zero)
    /// in results older than the probe.
    #[serde(default)]
    pub wakeup_delay_us: Percentiles,
    /// Broker CPU over the measurement window and peak RSS; local brokers only
    /// (spawned, or a loopback target whose process is visible in /proc).
    pub broker: Option<Usage>,
    pub first_error: Option<String>,
    /// A Sluice broker's own stage times over the window (its `/metrics`
    /// histograms); empty for other brokers and older results.
    #[serde(default)]
    pub broker_stages: Vec<StageLatency>,
    pub throughput: Vec<Sample>,
    /// HDR curves: (percentile %, µs).
    pub publish_latency_curve: Vec<(f64, u64)>,
    pub e2e_latency_curve: Vec<(f64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub workload: Workload,
    /// `plain`, `idempotent` or `transactional N`, from the workload, for
    /// scripts and readers; absent from results older than the key.
    #[serde(default)]
    pub producer_mode: String,
    pub harness_version: String,
    pub librdkafka_version: String,
    pub started_unix_secs: u64,
    /// The nice level the brokers the harness started ran at (`--nice`);
    /// absent: the harness's own.
    #[serde(default)]
    pub broker_nice: Option<i32>,
    /// The `--shards` a spawned broker was given; absent: its default.
    #[serde(default)]
    pub broker_shards: Option<usize>,
    /// The filesystem the brokers the harness started kept their data on
    /// (`data_fs`); absent: none started, or older results.
    #[serde(default)]
    pub broker_data_fs: Option<String>,
    /// Whether the guest gives freed memory back to its host
    /// (`host_memory`); absent: no balloon offers it, or older results.
    #[serde(default)]
    pub free_page_reporting: Option<String>,
    pub baseline: Option<Baseline>,
    /// Target names in command-line order (`targets` is keyed by name).
    pub order: Vec<String>,
    pub targets: BTreeMap<String, TargetResult>,
}

impl RunResult {
    pub fn ordered(&self) -> Vec<&TargetResult> {
        self.order
            .iter()
            .filter_map(|n| self.targets.get(n))
            .collect()
    }
}

/// A plain table rendered for a terminal or as Markdown.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn terminal(&self) -> String {
        let cols = self.header.len();
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |r: &[String]| {
            let cells: Vec<String> = (0..cols)
                .map(|c| {
                    let s = r.get(c).map_or("", String::as_str);
                    if c == 0 {
                        format!("{s:<w$}", w = width[c])
                    } else {
                        format!("{s:>w$}", w = width[c])
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        };
        let mut out = line(&self.header) + "\n";
        out += &(width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
            + "\n");
        for r in &self.rows {
            out += &(line(r) + "\n");
        }
        out
    }

    pub fn markdown(&self) -> String {
        let row = |r: &[String]| format!("| {} |\n", r.join(" | "));
        let mut out = row(&self.header);
        let align: Vec<String> = (0..self.header.len())
            .map(|c| if c == 0 { "---".into() } else { "---:".into() })
            .collect();
        out += &row(&align);
        for r in &self.rows {
            out += &row(r);
        }
        out
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        // Thousands separators keep rates readable.
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        out
    } else {
        format!("{v:.2}")
    }
}

/// One row: label, a cell per target, then each target's ratio to the first.
fn metric_row(
    label: &str,
    targets: &[&TargetResult],
    f: impl Fn(&TargetResult) -> Option<f64>,
    fmt: impl Fn(f64) -> String,
) -> Vec<String> {
    let values: Vec<Option<f64>> = targets.iter().map(|t| f(t)).collect();
    let mut row = vec![label.to_string()];
    row.extend(values.iter().map(|v| v.map_or("-".into(), &fmt)));
    for v in values.iter().skip(1) {
        row.push(match (values[0], v) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}x", b / a),
            _ => "-".into(),
        });
    }
    row
}

/// The comparison table: a column per target and, with several targets, the
/// ratio of each to the first.
pub fn results_table(run: &RunResult) -> Table {
    let targets = run.ordered();
    let mut header = vec!["metric".to_string()];
    header.extend(targets.iter().map(|t| t.name.clone()));
    header.extend(
        targets
            .iter()
            .skip(1)
            .map(|t| format!("{}/{}", t.name, targets[0].name)),
    );
    let mut rows = Vec::new();
    let f64v = |v: f64| Some(v);
    rows.push(metric_row(
        "publish msg/s",
        &targets,
        |t| f64v(t.publish_rate_msgs),
        num,
    ));
    rows.push(metric_row(
        "publish MB/s",
        &targets,
        |t| f64v(t.publish_rate_mb),
        num,
    ));
    rows.push(metric_row(
        "consume msg/s",
        &targets,
        |t| f64v(t.consume_rate_msgs),
        num,
    ));
    rows.push(metric_row(
        "consume MB/s",
        &targets,
        |t| f64v(t.consume_rate_mb),
        num,
    ));
    rows.push(metric_row(
        "messages sent",
        &targets,
        |t| Some(t.messages_sent as f64),
        num,
    ));
    rows.push(metric_row(
        "messages received",
        &targets,
        |t| Some(t.messages_received as f64),
        num,
    ));
    type Pick = fn(&Percentiles) -> u64;
    let picks: [(&str, Pick); 7] = [
        ("p50", |p| p.p50),
        ("p75", |p| p.p75),
        ("p95", |p| p.p95),
        ("p99", |p| p.p99),
        ("p99.9", |p| p.p999),
        ("p99.99", |p| p.p9999),
        ("max", |p| p.max),
    ];
    type Which = fn(&TargetResult) -> &Percentiles;
    let latencies: [(&str, Which); 3] = [
        ("publish latency", |t| &t.publish_latency_us),
        ("e2e latency", |t| &t.e2e_latency_us),
        ("machine wake-up delay", |t| &t.wakeup_delay_us),
    ];
    for (which, get) in latencies {
        for (label, pick) in picks {
            let lat = move |t: &TargetResult| {
                let p = get(t);
                // Results older than the wake-up probe have no samples.
                (p.count > 0).then_some(pick(p) as f64)
            };
            rows.push(metric_row(
                &format!("{which} {label} ms"),
                &targets,
                lat,
                |v| ms(v as u64),
            ));
        }
    }
    rows.push(metric_row(
        "broker CPU s",
        &targets,
        |t| t.broker.map(|b| b.cpu_seconds),
        |v| format!("{v:.1}"),
    ));
    rows.push(metric_row(
        "broker peak RSS MiB",
        &targets,
        |t| t.broker.map(|b| b.peak_rss_mb),
        |v| format!("{v:.0}"),
    ));
    if let Some(b) = &run.baseline {
        if b.loopback_tcp_mb > 0.0 {
            let pct = |t: &TargetResult| Some(100.0 * t.publish_rate_mb / b.loopback_tcp_mb);
            rows.push(metric_row(
                "publish % of loopback TCP",
                &targets,
                pct,
                |v| format!("{v:.1}%"),
            ));
        }
    }
    Table { header, rows }
}

fn workload_table(w: &Workload) -> Table {
    let rate = if w.producer_rate == 0 {
        "max (searched)".to_string()
    } else {
        format!("{} msg/s", w.producer_rate)
    };
    let rows = [
        (
            "topics x partitions",
            format!("{} x {}", w.topics, w.partitions_per_topic),
        ),
        ("message size", format!("{} B", w.message_size)),
        (
            "producers / consumers per topic",
            format!("{} / {}", w.producers_per_topic, w.consumers_per_topic),
        ),
        ("producer rate", rate),
        ("producer mode", w.producer_mode().label()),
        (
            "keys / compression / acks",
            format!(
                "{:?} / {} / {}",
                w.key_distribution,
                w.compression.as_str(),
                w.acks.as_str()
            ),
        ),
        (
            "replication factor / min.insync.replicas",
            format!(
                "{} / {}",
                w.replication_factor,
                w.min_insync_replicas
                    .map_or("broker default".into(), |m| m.to_string())
            ),
        ),
        (
            "batch size / linger",
            format!("{} B / {} ms", w.batch_size, w.linger_ms),
        ),
        (
            "warm-up / measured",
            format!("{} s / {} s", w.warmup_secs, w.duration_secs),
        ),
    ];
    Table {
        header: vec!["setting".into(), "value".into()],
        rows: rows.into_iter().map(|(a, b)| vec![a.into(), b]).collect(),
    }
}

/// Notes worth a reader's attention: unsustained rates, losses, errors.
pub fn warnings(run: &RunResult) -> Vec<String> {
    run.ordered()
        .into_iter()
        .flat_map(|t| target_warnings(&t.name, t))
        .collect()
}

/// One target's notes, each starting with `what`.
pub fn target_warnings(what: &str, t: &TargetResult) -> Vec<String> {
    let mut out = Vec::new();
    if t.rate_sustained == Some(false) {
        out.push(format!(
            "{what}: the target rate of {} msg/s was not sustained ({:.0} msg/s published)",
            t.target_rate_msgs, t.publish_rate_msgs
        ));
    }
    if t.messages_received < t.messages_sent {
        out.push(format!(
            "{what}: consumers received {} of {} acknowledged messages",
            t.messages_received, t.messages_sent
        ));
    }
    if t.messages_failed > 0 {
        out.push(format!("{what}: {} messages failed", t.messages_failed));
    }
    if let Some(e) = &t.first_error {
        out.push(format!("{what}: first error: {e}"));
    }
    out
}

/// One row per broker stage: count and percentiles in ms.
fn stages_table(stages: &[StageLatency]) -> Table {
    let ms = |us: f64| format!("{:.3}", us / 1000.0);
    Table {
        header: [
            "stage",
            "count",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "slowest ms",
        ]
        .map(String::from)
        .to_vec(),
        rows: stages
            .iter()
            .map(|s| {
                vec![
                    s.stage.clone(),
                    s.count.to_string(),
                    ms(s.p50_us),
                    ms(s.p99_us),
                    ms(s.p999_us),
                    match s.slowest_at_most_us {
                        Some(top) => format!("{}-{}", ms(s.slowest_above_us), ms(top)),
                        // Results older than the column.
                        None if s.slowest_above_us == 0.0 => "-".into(),
                        None => format!("> {}", ms(s.slowest_above_us)),
                    },
                ]
            })
            .collect(),
    }
}

/// The Markdown report; `plots` are file names relative to the report.
pub fn markdown(run: &RunResult, plots: &[String]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# sluice-bench: {}\n", run.workload.name);
    let _ = writeln!(
        md,
        "Harness {} with librdkafka {}. Rates are over the measured window; MB = 2^20 bytes. \
         Latencies are measured from each message's {}.\n",
        run.harness_version,
        run.librdkafka_version,
        if run.workload.producer_rate > 0 {
            "intended send time (fixed rate: no coordinated omission)"
        } else {
            "intended send time on the max-rate search's schedule (the rate rises while \
             the broker acknowledges what is asked and consumers keep up, and backs off \
             when either falls behind; the publish rate over the window is the maximum \
             sustainable rate)"
        }
    );
    if let Some(n) = run.broker_nice {
        let _ = writeln!(
            md,
            "Every broker the harness started (spawned or floor) ran at nice {n}.\n"
        );
    }
    if let Some(n) = run.broker_shards {
        let _ = writeln!(md, "The spawned broker ran with `--shards {n}`.\n");
    }
    if let Some(fs) = &run.broker_data_fs {
        let _ = writeln!(
            md,
            "The brokers the harness started kept their data on {fs}.\n"
        );
    }
    if let Some(reporting) = &run.free_page_reporting {
        let _ = writeln!(
            md,
            "{reporting} (tuning/README.md, \"Free page reporting\").\n"
        );
    }
    if let Some(n) = run.workload.producer_mode().messages_per_transaction() {
        let _ = writeln!(
            md,
            "Transactional producers: every {n} messages of a producer's schedule form one \
             transaction, committed synchronously. A message counts as published when its \
             transaction commits, and its publish latency runs to that commit; consumers \
             read committed messages only.\n"
        );
    }
    let _ = writeln!(
        md,
        "## Workload\n\n{}",
        workload_table(&run.workload).markdown()
    );
    if let Some(b) = &run.baseline {
        let _ = writeln!(md, "## Machine baselines\n\n{}", b.table().markdown());
    }
    let _ = writeln!(md, "## Results\n\n{}", results_table(run).markdown());
    for t in run.ordered() {
        if !t.broker_stages.is_empty() {
            let _ = writeln!(
                md,
                "## Broker stages: {}\n\nFrom the broker's `/metrics` histograms over the \
                 measured window; a percentile is known to within its bucket \
                 (interpolated); \"slowest\" is the bucket of the slowest one.\n\n{}",
                t.name,
                stages_table(&t.broker_stages).markdown()
            );
        }
    }
    let warns = warnings(run);
    if !warns.is_empty() {
        let _ = writeln!(md, "## Warnings\n");
        for w in warns {
            let _ = writeln!(md, "- {w}");
        }
        md.push('\n');
    }
    if !plots.is_empty() {
        let _ = writeln!(md, "## Plots\n");
        for p in plots {
            let _ = writeln!(md, "![{p}]({p})\n");
        }
    }
    md
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn sample_target(name: &str, scale: f64) -> TargetResult {
        let p = Percentiles {
            count: 10,
            mean: 900.0,
            p50: 800,
            p75: 900,
            p95: 1000,
            p99: 2000,
            p999: 3000,
            p9999: 4000,
            max: 5000,
        };
        TargetResult {
            name: name.into(),
            bootstrap: "127.0.0.1:9092".into(),
            spawned: false,
            target_rate_msgs: 1000,
            rate_sustained: Some(true),
            publish_rate_msgs: 1000.0 * scale,
            publish_rate_mb: 1.0 * scale,
            consume_rate_msgs: 1000.0 * scale,
            consume_rate_mb: 1.0 * scale,
            messages_sent: 5000,
            messages_received: 5000,
            messages_failed: 0,
            publish_latency_us: p,
            e2e_latency_us: p,
            wakeup_delay_us: p,
            broker: None,
            first_error: None,
            broker_stages: vec![],
            throughput: vec![],
            publish_latency_curve: vec![],
            e2e_latency_curve: vec![],
        }
    }

    pub fn sample_run(names: &[(&str, f64)]) -> RunResult {
        let workload = crate::workload::Workload::parse(
            "name = \"w\"\ntopics = 1\npartitions_per_topic = 1\nmessage_size = 100\n\
             producer_rate = 1000\nwarmup_secs = 0\nduration_secs = 1\n",
        )
        .unwrap();
        RunResult {
            workload,
            harness_version: "0".into(),
            librdkafka_version: "x".into(),
            broker_nice: None,
            broker_shards: None,
            broker_data_fs: None,
            free_page_reporting: None,
            started_unix_secs: 0,
            producer_mode: "plain".into(),
            baseline: None,
            order: names.iter().map(|(n, _)| n.to_string()).collect(),
            targets: names
                .iter()
                .map(|(n, s)| (n.to_string(), sample_target(n, *s)))
                .collect(),
        }
    }

    #[test]
    fn json_has_the_field_names_scripts_rely_on() {
        let run = sample_run(&[("sluice", 1.0)]);
        let v: serde_json::Value = serde_json::to_value(&run).unwrap();
        let t = &v["targets"]["sluice"];
        for f in [
            "publish_rate_msgs",
            "publish_rate_mb",
            "consume_rate_msgs",
            "consume_rate_mb",
            "messages_sent",
            "messages_received",
        ] {
            assert!(t[f].is_number(), "{f}");
        }
        for h in ["publish_latency_us", "e2e_latency_us"] {
            for f in ["p50", "p99", "p999", "p9999", "max"] {
                assert!(t[h][f].is_number(), "{h}.{f}");
            }
        }
        let back: RunResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, run);
    }

    #[test]
    fn a_transactional_run_names_its_mode_and_what_publish_means() {
        let mut run = sample_run(&[("sluice", 1.0)]);
        run.workload.messages_per_transaction = 100;
        let md = markdown(&run, &[]);
        assert!(md.contains("| producer mode | transactional 100 |"), "{md}");
        assert!(md.contains("every 100 messages"), "{md}");
    }

    #[test]
    fn results_without_a_producer_mode_still_load() {
        let run = sample_run(&[("sluice", 1.0)]);
        let mut v = serde_json::to_value(&run).unwrap();
        v.as_object_mut().unwrap().remove("producer_mode");
        for key in ["idempotence", "messages_per_transaction"] {
            v["workload"].as_object_mut().unwrap().remove(key);
        }
        let old: RunResult = serde_json::from_value(v).unwrap();
        assert_eq!(old.producer_mode, "");
        assert_eq!(old.workload.producer_mode().label(), "plain");
    }

    #[test]
    fn two_targets_get_a_ratio_column_in_order() {
        let run = sample_run(&[("sluice", 2.0), ("kafka", 1.0)]);
        let t = results_table(&run);
        assert_eq!(t.header, vec!["metric", "sluice", "kafka", "kafka/sluice"]);
        let publish = &t.rows[0];
        assert_eq!(publish, &vec!["publish msg/s", "2,000", "1,000", "0.50x"]);
        let text = t.terminal();
        assert!(text.lines().all(|l| !l.ends_with(' ')));
        assert!(text.contains("e2e latency p99.99 ms"));
        assert!(text.contains("machine wake-up delay p99 ms"));
    }

    #[test]
    fn markdown_report_has_sections_and_a_valid_table() {
        let mut run = sample_run(&[("sluice", 1.0)]);
        run.targets.get_mut("sluice").unwrap().messages_received = 10;
        let md = markdown(&run, &["latency.svg".into()]);
        assert!(md.starts_with("# sluice-bench: w"));
        assert!(md.contains("## Results"));
        assert!(md.contains("| publish msg/s | 1,000 |"));
        assert!(md.contains("received 10 of 5000"), "{md}");
        assert!(md.contains("![latency.svg](latency.svg)"));
        assert!(md.contains("| producer mode | plain |"), "{md}");
        assert!(!md.contains("Transactional producers"), "{md}");
        // Every table row has as many cells as its header.
        for block in md.split("\n\n").filter(|b| b.starts_with('|')) {
            let cells: Vec<usize> = block.lines().map(|l| l.matches('|').count()).collect();
            assert!(cells.windows(2).all(|w| w[0] == w[1]), "{block}");
        }
    }
}

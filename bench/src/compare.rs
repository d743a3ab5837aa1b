//! `sluice-bench compare DIR...`: earlier runs side by side, one row each
//! (named by its directory), read from their result.json files, with each
//! run's publish rate and the broker's CPU per message, each also as a
//! ratio to the first run's. Made for runs of one workload that differ in
//! a single setting, such as the producer mode (`make bench-eos`) or the
//! spawned broker's shards (`make bench`); any other workload difference
//! is named in a warning, since it would bias the ratio.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use crate::report::{self, RunResult, Table, TargetResult};

/// One compared run: where it came from and the target it is read for.
pub struct Compared {
    pub path: PathBuf,
    pub run: RunResult,
    /// The target compared: `--target`, or the run's first.
    pub target: String,
}

impl Compared {
    fn result(&self) -> &TargetResult {
        &self.run.targets[&self.target]
    }
}

/// Reads `path` (a run's output directory or its result.json) and picks
/// the target to compare.
pub fn load(path: &Path, target: Option<&str>) -> Result<Compared> {
    let json = if path.is_dir() {
        path.join("result.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&json)
        .with_context(|| format!("reading {} (run `sluice-bench run` first)", json.display()))?;
    let run: RunResult =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))?;
    let target = match target {
        Some(t) if run.targets.contains_key(t) => t.to_string(),
        Some(t) => bail!(
            "{} has no target {t:?} (it has {:?})",
            json.display(),
            run.order
        ),
        None => match run.ordered().first() {
            Some(t) => t.name.clone(),
            None => bail!("{} holds no target", json.display()),
        },
    };
    Ok(Compared {
        path: json,
        run,
        target,
    })
}

/// Mode as the workload defines it; results older than `producer_mode`
/// leave it empty, and their workload still says.
fn mode(c: &Compared) -> String {
    c.run.workload.producer_mode().label()
}

/// The run's output directory, which names it; else its workload.
fn label(c: &Compared) -> String {
    let dir = match c.path.file_name() {
        Some(f) if f == "result.json" => c.path.parent(),
        _ => Some(c.path.as_path()),
    };
    dir.and_then(Path::file_name).map_or_else(
        || c.run.workload.name.clone(),
        |d| d.to_string_lossy().into_owned(),
    )
}

/// A row per run; the ratio columns are each run's publish rate, and
/// broker CPU per message, over the first run's.
pub fn table(runs: &[Compared]) -> Table {
    let first = runs.first().map(|c| c.result().publish_rate_msgs);
    let first_cpu = runs
        .first()
        .and_then(|c| cpu_per_message(&c.run, c.result()));
    let vs = runs.first().map_or("first".into(), mode);
    let header = [
        "run",
        "mode",
        "shards",
        "publish msg/s",
        "publish MB/s",
        &format!("vs {vs}"),
        "e2e p50 ms",
        "e2e p99 ms",
        "broker CPU µs/msg",
        "CPU vs first",
        "lost",
        "failed",
    ];
    let rows = runs
        .iter()
        .map(|c| {
            let t = c.result();
            let ratio = match first {
                Some(f) if f > 0.0 => format!("{:.3}x", t.publish_rate_msgs / f),
                _ => "-".into(),
            };
            let cpu = cpu_per_message(&c.run, t);
            let cpu_ratio = match (cpu, first_cpu) {
                (Some(us), Some(f)) if f > 0.0 => format!("{:.2}x", us / f),
                _ => "-".into(),
            };
            vec![
                label(c),
                mode(c),
                c.run
                    .broker_shards
                    .map_or("default".into(), |n| n.to_string()),
                format!("{:.0}", t.publish_rate_msgs),
                format!("{:.1}", t.publish_rate_mb),
                ratio,
                format!("{:.3}", t.e2e_latency_us.p50 as f64 / 1000.0),
                format!("{:.3}", t.e2e_latency_us.p99 as f64 / 1000.0),
                cpu.map_or("-".into(), |us| format!("{us:.2}")),
                cpu_ratio,
                t.messages_sent
                    .saturating_sub(t.messages_received)
                    .to_string(),
                t.messages_failed.to_string(),
            ]
        })
        .collect();
    Table {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

/// Broker CPU per published message over the measured window, µs: less
/// sensitive than the rate to what else the machine runs, so a small cost
/// shows even when rates scatter. Local brokers only.
fn cpu_per_message(run: &RunResult, t: &TargetResult) -> Option<f64> {
    let messages = t.publish_rate_msgs * run.workload.duration_secs as f64;
    let cpu = t.broker?.cpu_seconds;
    (messages > 0.0).then(|| cpu * 1e6 / messages)
}

/// Workload settings, other than the name and the producer mode, in which
/// a run differs from the first.
fn differences(first: &RunResult, other: &RunResult) -> Vec<String> {
    let comparable = |r: &RunResult| {
        let mut w = r.workload.clone();
        w.name.clear();
        w.idempotence = false;
        w.messages_per_transaction = 0;
        serde_json::to_value(w).expect("a workload serializes")
    };
    let (a, b) = (comparable(first), comparable(other));
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Vec::new();
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k} = {v} vs {}",
                b.get(k).unwrap_or(&serde_json::Value::Null)
            )
        })
        .collect()
}

/// Differences that bias the ratios, then each run's own warnings.
pub fn warnings(runs: &[Compared]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(first) = runs.first() else {
        return out;
    };
    for c in &runs[1..] {
        let diff = differences(&first.run, &c.run);
        if !diff.is_empty() {
            out.push(format!(
                "{} differs from {} in more than the producer mode: {}",
                c.path.display(),
                first.path.display(),
                diff.join(", ")
            ));
        }
        if c.target != first.target {
            out.push(format!(
                "{} is read for target {:?}, {} for {:?}",
                c.path.display(),
                c.target,
                first.path.display(),
                first.target
            ));
        }
    }
    for c in runs {
        let what = format!("{} ({})", c.run.workload.name, c.target);
        out.extend(report::target_warnings(&what, c.result()));
    }
    out
}

/// The comparison as Markdown, for notes.
pub fn markdown(runs: &[Compared]) -> String {
    let mut md = String::from(
        "# sluice-bench compare\n\nPublish rates over each run's measured window \
         (MB = 2^20 bytes); the ratio is to the first run. `lost` = acknowledged \
         (committed) minus received.\n\n",
    );
    md += &table(runs).markdown();
    for w in warnings(runs) {
        md += &format!("\n- warning: {w}");
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_run;

    fn compared(name: &str, scale: f64, per_txn: u32, idempotence: bool) -> Compared {
        let mut run = sample_run(&[("sluice", scale)]);
        run.workload.name = name.into();
        run.workload.messages_per_transaction = per_txn;
        run.workload.idempotence = idempotence;
        Compared {
            path: PathBuf::from(format!("{name}/result.json")),
            run,
            target: "sluice".into(),
        }
    }

    #[test]
    fn rows_carry_the_mode_and_the_ratio_to_the_first_run() {
        let runs = [
            compared("plain", 2.0, 0, false),
            compared("idem", 1.9, 0, true),
            compared("txn", 1.0, 100, false),
        ];
        let t = table(&runs);
        assert_eq!(t.header[5], "vs plain");
        let col = |i: usize| t.rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>();
        assert_eq!(col(0), ["plain", "idem", "txn"], "named by directory");
        assert_eq!(col(1), ["plain", "idempotent", "transactional 100"]);
        assert_eq!(col(2), ["default", "default", "default"]);
        assert_eq!(col(3), ["2000", "1900", "1000"]);
        assert_eq!(col(5), ["1.000x", "0.950x", "0.500x"]);
        assert_eq!(col(8), ["-", "-", "-"], "no broker usage in the samples");
        assert!(warnings(&runs).is_empty(), "{:?}", warnings(&runs));
    }

    #[test]
    fn runs_that_differ_in_more_than_the_mode_are_named() {
        let plain = compared("plain", 1.0, 0, false);
        let mut other = compared("idem", 1.0, 0, true);
        other.run.workload.message_size = 4096;
        other
            .run
            .targets
            .get_mut("sluice")
            .unwrap()
            .messages_received = 4000;
        let w = warnings(&[plain, other]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("message_size = 100 vs 4096"), "{w:?}");
        assert!(w[1].contains("received 4000 of 5000"), "{w:?}");
    }

    #[test]
    fn a_directory_or_its_result_json_loads_and_a_missing_target_is_named() {
        let dir = std::env::temp_dir().join(format!("sluice-bench-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = sample_run(&[("sluice", 1.0), ("kafka", 2.0)]);
        std::fs::write(
            dir.join("result.json"),
            serde_json::to_string(&run).unwrap(),
        )
        .unwrap();
        assert_eq!(load(&dir, None).unwrap().target, "sluice");
        assert_eq!(
            load(&dir.join("result.json"), Some("kafka"))
                .unwrap()
                .target,
            "kafka"
        );
        let e = load(&dir, Some("redpanda")).err().unwrap().to_string();
        assert!(e.contains("no target \"redpanda\""), "{e}");
        let e = load(&dir.join("nope"), None).err().unwrap().to_string();
        assert!(e.contains("reading"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_markdown_table_is_well_formed() {
        let md = markdown(&[compared("plain", 1.0, 0, false)]);
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.matches('|').count() == 13), "{md}");
    }

    #[test]
    fn broker_cpu_is_per_message_over_the_window() {
        let mut c = compared("plain", 2.0, 0, false);
        c.run.workload.duration_secs = 10;
        c.run.targets.get_mut("sluice").unwrap().broker = Some(crate::spawn::Usage {
            cpu_seconds: 0.5,
            peak_rss_mb: 30.0,
        });
        // 2,000 msg/s for 10 s on 0.5 CPU seconds: 25 µs a message.
        assert_eq!(table(&[c]).rows[0][8], "25.00");
    }

    #[test]
    fn shard_counts_and_cpu_against_the_first_run_are_shown() {
        let usage = |cpu_seconds| {
            Some(crate::spawn::Usage {
                cpu_seconds,
                peak_rss_mb: 30.0,
            })
        };
        let mut one = compared("one-shard", 2.0, 0, false);
        one.run.broker_shards = Some(1);
        one.run.targets.get_mut("sluice").unwrap().broker = usage(0.5);
        let mut two = compared("two-shards", 2.0, 0, false);
        two.run.broker_shards = Some(2);
        two.run.targets.get_mut("sluice").unwrap().broker = usage(0.6);
        let t = table(&[one, two]);
        let col = |i: usize| t.rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>();
        assert_eq!(col(0), ["one-shard", "two-shards"]);
        assert_eq!(col(2), ["1", "2"]);
        assert_eq!(col(9), ["1.00x", "1.20x"]);
    }
}

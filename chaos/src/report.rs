//! The results table (terminal and Markdown), `result.json` and `report.md`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::run::Outcome;

const HEADER: [&str; 15] = [
    "scenario",
    "result",
    "faults",
    "acked",
    "read",
    "lost",
    "dup",
    "reord",
    "misplaced",
    "lost (allowed)",
    "commits",
    "commits back",
    "txns",
    "heal median ms",
    "heal max ms",
];

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn row(o: &Outcome) -> Vec<String> {
    let c = &o.counts;
    vec![
        o.scenario.name.clone(),
        if o.passed { "pass" } else { "FAIL" }.into(),
        o.faults.len().to_string(),
        c.acknowledged.to_string(),
        c.read_back.to_string(),
        c.lost.to_string(),
        c.duplicated.to_string(),
        c.reordered.to_string(),
        c.misplaced.to_string(),
        c.lost_allowed.to_string(),
        o.commits.acknowledged.to_string(),
        o.commits.regressed.to_string(),
        if o.scenario.transactions {
            let t = &o.transactions;
            format!("{}/{}/{}", t.committed, t.aborted, t.unknown)
        } else {
            "-".into()
        },
        ms(o.heal_median_ms),
        ms(o.heal_max_ms),
    ]
}

/// A Markdown table of `outcomes` (also readable on a terminal).
pub fn table(outcomes: &[&Outcome]) -> String {
    let rows: Vec<Vec<String>> = outcomes.iter().map(|o| row(o)).collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([HEADER[i].len()])
                .max()
                .unwrap()
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut s = line(HEADER.iter().map(|h| h.to_string()).collect());
    s += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        s += &line(r);
    }
    s
}

/// Writes `dir/result.json` and `dir/report.md` for one scenario.
pub fn write(o: &Outcome, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("result.json"), serde_json::to_string_pretty(o)?)?;
    let mut md = String::new();
    let s = &o.scenario;
    writeln!(
        md,
        "# Chaos scenario `{}`: {}\n",
        s.name,
        if o.passed { "pass" } else { "FAIL" }
    )?;
    if !s.description.is_empty() {
        writeln!(md, "{}\n", s.description)?;
    }
    writeln!(md, "- command: `{}`", o.command)?;
    writeln!(md, "- seed: {}", o.seed)?;
    writeln!(
        md,
        "- {} node(s), {} partition(s), RF {}, min.insync.replicas {}, unclean election {}, idempotence {}, loss allowed {}",
        s.nodes, s.partitions, s.replication_factor, s.min_insync_replicas,
        s.unclean_leader_election, s.idempotence, s.allow_loss
    )?;
    writeln!(
        md,
        "- network: {:?}; consumer group: {} ({:?} protocol)",
        s.network, s.consumer_group, s.group_protocol
    )?;
    writeln!(md, "- broker args: `{}`", s.broker_args.join(" "))?;
    writeln!(
        md,
        "- duration: {:.1} s; converged (ISR full, replicas byte-identical): {}",
        o.duration_s, o.converged
    )?;
    if let Some(d) = &o.data_dir {
        writeln!(md, "- data dirs and node logs kept in `{d}`")?;
    }
    writeln!(md, "\n{}", table(&[o]))?;
    let c = &o.counts;
    writeln!(
        md,
        "Sends that failed: {}; values present without an acknowledgement: {}; foreign values: {}; acknowledged without an offset: {}.\n",
        c.failed_sends, c.unacked_present, c.foreign, c.acked_offset_unknown
    )?;
    writeln!(
        md,
        "Group commits acknowledged: {}; committed offsets seen moving backwards (`commits back`): {}; messages the member consumed: {}; its commits or offset fetches that failed: {}.\n",
        o.commits.acknowledged, o.commits.regressed, o.commits.consumed, o.commits.failed_calls
    )?;
    if s.transactions {
        let t = &o.transactions;
        writeln!(
            md,
            "Transactions (`txns`: committed/aborted/unknown): {} committed, {} aborted, {} whose end the producer never learned ({} of those read whole); values read with read_committed: {}.\n",
            t.committed, t.aborted, t.unknown, t.unknown_read, t.values_read
        )?;
    }
    writeln!(
        md,
        "## Faults\n\n| # | kind | node | at ms | heal ms | detail |\n| - | - | - | - | - | - |"
    )?;
    for (i, f) in o.faults.iter().enumerate() {
        writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} |",
            i + 1,
            f.kind,
            f.node,
            f.at_ms,
            ms(f.heal_ms),
            f.detail
        )?;
    }
    writeln!(md, "\nHeal time: from the fault to the moment every partition had acknowledged a message sent after it.")?;
    if !o.errors.is_empty() {
        writeln!(md, "\n## Errors\n")?;
        for e in &o.errors {
            writeln!(md, "```\n{e}\n```")?;
        }
    }
    if !o.violations.is_empty() {
        writeln!(md, "\n## Violations (first {})\n", o.violations.len())?;
        for v in &o.violations {
            writeln!(
                md,
                "- partition {}: {}\n```\n{}```",
                v.partition, v.what, v.window
            )?;
        }
    }
    if !o.producer_events.is_empty() {
        writeln!(md, "\n## Producer events\n")?;
        for (at, e) in o.producer_events.iter().take(50) {
            writeln!(md, "- {:.0} ms: {e}", *at as f64 / 1000.0)?;
        }
    }
    std::fs::write(dir.join("report.md"), md)?;
    Ok(())
}

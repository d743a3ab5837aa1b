//! `sluice-chaos run SCENARIO.toml...`: see the crate docs and chaos/README.md.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use sluice_chaos::run::{self, Options};
use sluice_chaos::scenario::{Network, Scenario};
use sluice_chaos::{default_binary, disk, net, procs, report};

#[derive(Parser)]
#[command(
    name = "sluice-chaos",
    about = "Fault injection against real Sluice clusters"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs each scenario in turn; exits 1 if any failed.
    Run {
        scenarios: Vec<PathBuf>,
        /// The `sluice` binary (default: target/release/sluice, else target/debug/sluice).
        #[arg(long)]
        sluice: Option<PathBuf>,
        /// Reports go to OUT/<scenario>/ and the summary to OUT/summary.md.
        #[arg(long, default_value = "chaos/results")]
        out: PathBuf,
        /// Overrides every scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Keep data dirs and node logs of passing scenarios too.
        #[arg(long)]
        keep: bool,
    },
    /// Deletes the network namespaces runs that were killed left behind
    /// (those whose sluice-chaos process is gone).
    Cleanup {
        /// Every namespace named sluice-chaos-*, even a live run's.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    procs::install_signal_handler()?;
    let result = match cli.cmd {
        Cmd::Run {
            scenarios,
            sluice,
            out,
            seed,
            keep,
        } => run_all(
            scenarios,
            sluice.unwrap_or_else(default_binary),
            out,
            seed,
            keep,
        ),
        Cmd::Cleanup { all } => net::cleanup(all).map(|removed| {
            println!("removed {} network namespace(s)", removed.len());
            for n in removed {
                println!("  {n}");
            }
        }),
    };
    procs::kill_all();
    net::remove_all();
    disk::unmount_all();
    result
}

fn run_all(
    paths: Vec<PathBuf>,
    binary: PathBuf,
    out: PathBuf,
    seed: Option<u64>,
    keep: bool,
) -> Result<()> {
    if paths.is_empty() {
        bail!("no scenario given");
    }
    if !binary.exists() {
        bail!(
            "no sluice binary at {} (build it, or pass --sluice)",
            binary.display()
        );
    }
    let mut scenarios: Vec<(PathBuf, Scenario)> = paths
        .into_iter()
        .map(|p| Scenario::load(&p).map(|s| (p, s)))
        .collect::<Result<_>>()?;
    let mut skipped = Vec::new();
    let mut on_loopback = Vec::new();
    if scenarios.iter().any(|(_, s)| s.network == Network::Netns) {
        if let Err(e) = net::available() {
            // Said, not hidden: the summary lists what ran where, and what
            // did not run.
            eprintln!("sluice-chaos: network namespaces are not allowed here ({e:#}); scenarios that cut links are skipped, the others run on loopback");
            scenarios.retain_mut(|(_, s)| {
                if s.network != Network::Netns {
                    return true;
                }
                if s.cuts_links() {
                    skipped.push(s.name.clone());
                    return false;
                }
                s.network = Network::Loopback;
                on_loopback.push(s.name.clone());
                true
            });
        }
    }
    let opts = Options {
        binary: binary.clone(),
        out_dir: out.clone(),
        seed,
        keep,
    };
    let mut outcomes = Vec::new();
    for (path, s) in &scenarios {
        let command = format!(
            "sluice-chaos run {} --sluice {}{}",
            path.display(),
            binary.display(),
            seed.map_or(String::new(), |s| format!(" --seed {s}"))
        );
        eprintln!("=== scenario {} ===", s.name);
        let o = run::run(s, &opts, &command)?;
        report::write(&o, &out.join(&s.name))?;
        println!("{}", report::table(&[&o]));
        for v in &o.violations {
            println!(
                "VIOLATION partition {}: {}\n{}",
                v.partition, v.what, v.window
            );
        }
        for e in &o.errors {
            println!("ERROR: {e}");
        }
        outcomes.push(o);
    }
    let all: Vec<&run::Outcome> = outcomes.iter().collect();
    let table = report::table(&all);
    std::fs::create_dir_all(&out)?;
    let mut skipped_note = String::new();
    if !on_loopback.is_empty() {
        skipped_note += &format!(
            "\nRun on loopback (network namespaces not allowed here): {}\n",
            on_loopback.join(", ")
        );
    }
    if !skipped.is_empty() {
        skipped_note += &format!(
            "\nNot run (they cut links, and network namespaces are not allowed here): {}\n",
            skipped.join(", ")
        );
    }
    std::fs::write(
        out.join("summary.md"),
        format!("# sluice-chaos summary\n\n{table}{skipped_note}"),
    )?;
    println!("\n{table}{skipped_note}");
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.scenario.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}

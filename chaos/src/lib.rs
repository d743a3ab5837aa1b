//! Fault injection against real Sluice processes (issue 12).
//!
//! A scenario (TOML, `chaos/scenarios/`) names a cluster, a workload and a
//! list of faults. [`run::run`] starts the nodes, creates the topic, drives
//! idempotent acks=all producers, a consumer group and (if asked) a
//! transactional producer, injects the faults, waits for the cluster
//! to heal, reads every partition back and checks it against every
//! acknowledgement; [`report`] writes `result.json` and `report.md`.
//!
//! # Layout
//! - `scenario`: the file format and the seeded RNG.
//! - `procs`: `sluice` child processes; none outlives the run.
//! - `cluster`: the nodes of one run and their Metadata (ISR, controller).
//! - `disk`: tmpfs data dirs that a fault fills.
//! - `net`: network namespaces, one per node, and the cuts between them.
//! - `workload`: the producer and its recorded history.
//! - `group`: the consumer group member and the check of its commits.
//! - `txn`: the transactional producer and the check of its transactions.
//! - `worker`: the threads of the group member and the transactional producer.
//! - `check`: read back and the checks.
//! - `run`: the scenario driver and the fault injectors.
//! - `report`: tables, JSON and Markdown.

pub mod check;
pub mod cluster;
pub mod disk;
pub mod group;
pub mod net;
pub mod procs;
pub mod report;
pub mod run;
pub mod scenario;
pub mod txn;
pub mod worker;
pub mod workload;

use std::path::{Path, PathBuf};

/// The broker binary next to this executable's target dir: the release
/// build if there is one, else the debug build.
pub fn default_binary() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let release = target.join("release/sluice");
    if release.exists() {
        release
    } else {
        target.join("debug/sluice")
    }
}

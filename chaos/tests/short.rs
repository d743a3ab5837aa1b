//! The short chaos run inside `make test`: one kill -9 of a partition
//! leader in a 3-node cluster (RF 3, min.insync.replicas=2, acks=all,
//! idempotent), one network partition of a leader in the same setup with
//! each node in its own network namespace, one move of a partition off its
//! leader to a fourth node (AlterPartitionReassignments), one replacement of
//! the active controller as a voter by that fourth node followed by a kill -9
//! of the new controller, one kill -9 of the coordinator of a consumer
//! group protocol (KIP-848) group, one kill -9 of a transaction coordinator
//! while transactions commit and abort, and one kill -9 of a single
//! `--fsync-on-ack` node, each against the real debug `sluice` binary; none
//! may lose, duplicate or reorder an acknowledged write, or move a
//! committed group offset backwards. No timing is asserted; every wait is
//! bounded generously.

use std::path::{Path, PathBuf};

use sluice_chaos::report;
use sluice_chaos::run::{run, Options};
use sluice_chaos::scenario::Scenario;

/// `target/debug/sluice` next to this test executable (target/debug/deps/):
/// `make test` builds the whole workspace before it runs tests.
fn sluice_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let debug = exe.parent().and_then(Path::parent).expect("target/debug");
    let bin = debug.join("sluice");
    assert!(
        bin.exists(),
        "no broker binary at {} (run `cargo build --workspace` first)",
        bin.display()
    );
    bin
}

fn run_short(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.toml"));
    let scenario = Scenario::load(&path).expect("load scenario");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/test");
    let opts = Options {
        binary: sluice_binary(),
        out_dir: out.clone(),
        seed: None,
        keep: false,
    };
    let outcome = run(
        &scenario,
        &opts,
        &format!("cargo test -p sluice-chaos ({name})"),
    )
    .expect("run scenario");
    report::write(&outcome, &out.join(name)).expect("write report");
    println!("{}", report::table(&[&outcome]));
    let detail: Vec<String> = outcome
        .violations
        .iter()
        .map(|v| format!("partition {}: {}\n{}", v.partition, v.what, v.window))
        .chain(outcome.errors.iter().cloned())
        .collect();
    assert!(
        outcome.passed,
        "{name} failed (seed {}, data kept in {:?}):\n{}",
        outcome.seed,
        outcome.data_dir,
        detail.join("\n")
    );
    assert!(outcome.counts.acknowledged > 0, "nothing was acknowledged");
    if scenario.transactions {
        // Else the transactions' check saw nothing and proves nothing.
        assert!(
            outcome.transactions.committed > 0,
            "{name}: no transaction was committed: {:?}",
            outcome.transactions
        );
    }
    if scenario.consumer_group {
        // Else the committed-offsets check saw nothing and proves nothing.
        assert!(
            outcome.commits.acknowledged > 0,
            "{name}: no group commit was acknowledged ({} consumed, {} calls failed)",
            outcome.commits.consumed,
            outcome.commits.failed_calls
        );
    }
}

/// kill -9 of a partition leader under acks=all loses no acknowledged write.
#[test]
fn kill_leader_loses_nothing() {
    run_short("short-kill-leader");
}

/// A leader cut off from its followers and the controller (links cut in
/// network namespaces; needs root, as `make test` has) loses no
/// acknowledged write.
#[test]
fn isolated_leader_loses_nothing() {
    run_short("short-isolate-leader");
}

/// A partition moved off its leader to another node under acks=all load
/// (the new replica copies the log, the leader hands over and leaves)
/// loses no acknowledged write, and the replicas end byte-identical.
#[test]
fn reassigning_off_the_leader_loses_nothing() {
    run_short("short-reassign");
}

/// The active controller replaced as a voter by the broker-only node, then
/// the new active controller killed, loses no acknowledged write.
#[test]
fn replacing_the_controller_loses_nothing() {
    run_short("short-replace-voter");
}

/// kill -9 of the coordinator of a consumer group protocol (KIP-848) group
/// loses no acknowledged write, and its committed offsets never move back.
#[test]
fn killing_a_consumer_protocol_coordinator_loses_nothing() {
    run_short("short-consumer-protocol");
}

/// kill -9 of a transaction coordinator while transactions run: every
/// committed transaction is read whole and once, no aborted one is read,
/// and no transaction is left open (the last stable offsets reach the
/// ends).
#[test]
fn killing_a_transaction_coordinator_loses_no_transaction() {
    run_short("short-kill-txn-coordinator");
}

/// kill -9 of a single node with --fsync-on-ack loses no acknowledged write.
#[test]
fn fsync_kill9_loses_nothing() {
    run_short("short-fsync-kill9");
}

/// kill -9 of a partition leader whose disk is then replaced (its data dir
/// emptied) and which comes back under its id before its session ends:
/// it leaves its ISRs instead of leading with an empty log, its metadata
/// log refuses votes until it caught up, and no acknowledged write is lost.
#[test]
fn replacing_a_leaders_disk_loses_nothing() {
    run_short("short-replace-disk");
}

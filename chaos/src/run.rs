//! Runs one scenario: cluster up, topic, load, faults, heal, check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use crate::check::{self, Counts, Violation};
use crate::cluster::{
    change_voter_call, coordinator_call, quorum_call, reassign_call, set_configs_call,
    txn_coordinator_call, wait_for, Cluster,
};
use crate::group::{self, CommitCounts, CommitHistory, GroupMember};
use crate::net::Net;
use crate::scenario::{Fault, Network, Rng, Scenario, Target, TornMode};
use crate::txn::{self, TxnCounts, TxnWriter};
use crate::workload::{Clock, History, Workload};

/// Kafka's REQUEST_TIMED_OUT, NOT_CONTROLLER and COORDINATOR_NOT_AVAILABLE:
/// a proposal the quorum could not take yet (a controller is being
/// elected, another membership change commits); asked again.
const REQUEST_TIMED_OUT: i16 = 7;
const NOT_CONTROLLER: i16 = 41;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const DUPLICATE_VOTER: i16 = 126;
const VOTER_NOT_FOUND: i16 = 127;
/// How long an added voter may take to catch up: inside the requests'
/// 3 s read timeout, so a slow one is asked again rather than lost.
const VOTER_CATCH_UP_MS: i32 = 2_000;

/// The bound of every wait for the cluster to settle (ISR full, logs equal).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Violations written out in full (the counts cover all).
const MAX_VIOLATIONS: usize = 20;

pub struct Options {
    pub binary: PathBuf,
    pub out_dir: PathBuf,
    pub seed: Option<u64>,
    /// Keep the data dirs and logs even when the scenario passed.
    pub keep: bool,
}

/// One fault as it happened.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    pub kind: String,
    pub node: i32,
    /// ms on the run clock.
    pub at_ms: f64,
    pub detail: String,
    /// From the fault to the moment every partition had acknowledged a
    /// message sent after it; None if some partition never did.
    pub heal_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    pub seed: u64,
    pub passed: bool,
    /// Why it failed, besides violations (a node that would not start, no
    /// convergence).
    pub errors: Vec<String>,
    pub counts: Counts,
    /// The consumer group's commits (zero when the scenario has none).
    pub commits: CommitCounts,
    /// The transactions' ends and what was read (zero without them).
    pub transactions: TxnCounts,
    pub faults: Vec<FaultRecord>,
    pub heal_median_ms: Option<f64>,
    pub heal_max_ms: Option<f64>,
    pub converged: bool,
    pub violations: Vec<Violation>,
    pub producer_events: Vec<(u64, String)>,
    pub duration_s: f64,
    pub data_dir: Option<String>,
    pub command: String,
}

/// Runs `s`; every process it started is gone when it returns (or unwinds).
pub fn run(s: &Scenario, opts: &Options, command: &str) -> Result<Outcome> {
    let seed = opts.seed.or(s.seed).unwrap_or_else(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() % 1_000_000
    });
    let root = tempfile::Builder::new()
        .prefix(&format!("sluice-chaos-{}-", s.name))
        .tempdir()?;
    let started = Instant::now();
    let mut r = Runner {
        s,
        rng: Rng::new(seed),
        clock: Clock(started),
        faults: Vec::new(),
        allowed: BTreeMap::new(),
        errors: Vec::new(),
        cluster: None,
        net: None,
        commits: None,
        txns: None,
        txn_events: Vec::new(),
    };
    let result = r.go(&opts.binary, root.path());
    let mut converged = false;
    let (history, logs) = match result {
        Ok((history, logs, conv)) => {
            converged = conv;
            (Some(history), logs)
        }
        Err(e) => {
            let tails = r.cluster.as_ref().map(|c| c.tails(30)).unwrap_or_default();
            r.errors.push(format!("{e:#}\n{tails}"));
            (None, None)
        }
    };
    // Stop every node before the report (and before the temp dir goes),
    // then take down their network.
    drop(r.cluster.take());
    drop(r.net.take());
    let (counts, mut violations) = match (&history, &logs) {
        (Some(h), Some(l)) => check::check_all(h, l, &r.allowed, MAX_VIOLATIONS),
        _ => (Counts::default(), Vec::new()),
    };
    let (commits, commit_violations) = r
        .commits
        .as_ref()
        .map(group::check_commits)
        .unwrap_or_default();
    violations.extend(commit_violations);
    let (transactions, txn_violations) = r.txns.take().unwrap_or_default();
    violations.extend(txn_violations);
    violations.truncate(MAX_VIOLATIONS);
    let mut faults = r.faults;
    if let Some(h) = &history {
        for f in &mut faults {
            f.heal_ms = heal_ms(h, (f.at_ms * 1000.0) as u64);
        }
    }
    let mut heals: Vec<f64> = faults.iter().filter_map(|f| f.heal_ms).collect();
    heals.sort_by(f64::total_cmp);
    let violation_free = violations.is_empty()
        && counts.lost == 0
        && counts.duplicated == 0
        && counts.reordered == 0
        && counts.misplaced == 0
        && commits.regressed == 0;
    let passed = r.errors.is_empty() && converged && (s.allow_loss || violation_free);
    let failed_or_kept = !passed || opts.keep;
    let data_dir = failed_or_kept.then(|| {
        let kept = root.keep();
        kept.display().to_string()
    });
    Ok(Outcome {
        scenario: s.clone(),
        seed,
        passed,
        errors: r.errors,
        counts,
        commits,
        transactions,
        heal_median_ms: heals.get(heals.len() / 2).copied(),
        heal_max_ms: heals.last().copied(),
        faults,
        converged,
        violations,
        producer_events: history
            .map(|h| h.events)
            .unwrap_or_default()
            .into_iter()
            .chain(
                r.txn_events
                    .into_iter()
                    .map(|(at, e)| (at, format!("transactional: {e}"))),
            )
            .collect(),
        duration_s: started.elapsed().as_secs_f64(),
        data_dir,
        command: command.to_string(),
    })
}

/// See [`FaultRecord::heal_ms`].
fn heal_ms(h: &History, fault_us: u64) -> Option<f64> {
    let mut worst = 0u64;
    for p in &h.partitions {
        let first_seq = p.sent_us.partition_point(|&t| t < fault_us) as u64;
        let at = p
            .acks
            .iter()
            .filter(|a| a.seq >= first_seq)
            .map(|a| a.at_us)
            .min()?;
        worst = worst.max(at.saturating_sub(fault_us));
    }
    Some(worst as f64 / 1000.0)
}

struct Runner<'a> {
    s: &'a Scenario,
    rng: Rng,
    clock: Clock,
    faults: Vec<FaultRecord>,
    /// Per partition, offsets whose acknowledged records a torn tail cut.
    allowed: BTreeMap<i32, Vec<std::ops::Range<i64>>>,
    errors: Vec<String>,
    cluster: Option<Cluster>,
    /// The namespaces of a `netns` scenario; dropped after the cluster.
    net: Option<Net>,
    /// The consumer group's history, once it stopped.
    commits: Option<CommitHistory>,
    /// The transactions' check, once the cluster healed.
    txns: Option<(TxnCounts, Vec<Violation>)>,
    /// The transactional producer's events.
    txn_events: Vec<(u64, String)>,
}

type Checked = (History, Option<Vec<check::ReadLog>>, bool);

impl Runner<'_> {
    fn c(&mut self) -> &mut Cluster {
        self.cluster.as_mut().expect("cluster started")
    }

    fn go(&mut self, binary: &Path, root: &Path) -> Result<Checked> {
        let s = self.s;
        if s.network == Network::Netns {
            let ids: Vec<i32> = (1..=s.nodes as i32).collect();
            let mut net = Net::create(&ids)?;
            // This thread and every client thread it starts from here on
            // (librdkafka's) live in the clients' namespace.
            net.enter_client()?;
            self.net = Some(net);
        }
        self.cluster = Some(Cluster::start(s, binary, root, self.net.as_ref())?);
        let topic = self.c().topic.clone();
        self.create_topic(&topic)?;
        if s.transactions {
            self.create_topic(&txn::txn_topic(&topic))?;
        }
        if s.nodes > 1 {
            self.c().wait_isr_full(CONVERGE_TIMEOUT)?;
        }
        let (bootstrap, topic) = (self.c().bootstrap(), self.c().topic.clone());
        let workload = Workload::start(s, bootstrap.clone(), topic.clone(), self.clock);
        let member = s.consumer_group.then(|| {
            let protocol = s.group_protocol;
            GroupMember::start(
                bootstrap.clone(),
                topic.clone(),
                s.partitions,
                protocol,
                self.clock,
            )
        });
        let txn_writer = s.transactions.then(|| {
            TxnWriter::start(
                bootstrap.clone(),
                txn::txn_topic(&topic),
                s.partitions,
                self.clock,
            )
        });
        thread::sleep(Duration::from_millis(s.warmup_ms));
        if let Some(member) = &member {
            member.wait_consuming(CONVERGE_TIMEOUT)?;
        }
        if let Some(writer) = &txn_writer {
            writer.wait_committing(CONVERGE_TIMEOUT)?;
        }
        for (i, f) in s.faults.iter().enumerate() {
            eprintln!(
                "[{}] fault {}/{}: {f:?} ({} sent so far)",
                s.name,
                i + 1,
                s.faults.len(),
                workload.sent()
            );
            if s.nodes > 1 && self.c().all_up() && !matches!(f, Fault::Wait { .. }) {
                // Each fault hits a healed cluster; a cluster that does not
                // heal fails the run here.
                self.c().wait_isr_full(CONVERGE_TIMEOUT)?;
            }
            self.inject(f)?;
            thread::sleep(Duration::from_millis(s.gap_ms));
        }
        thread::sleep(Duration::from_millis(s.settle_ms));
        let history = workload.finish()?;
        let commits = member.map(GroupMember::finish).transpose()?;
        let txn_history = txn_writer.map(TxnWriter::finish).transpose()?;
        let history = std::mem::replace(
            &mut *history.lock().unwrap(),
            History {
                partitions: Vec::new(),
                events: Vec::new(),
            },
        );
        // Heal: every node up, every ISR full, every replica identical.
        let down: Vec<i32> = self
            .c()
            .nodes
            .values()
            .filter(|n| !n.is_running())
            .map(|n| n.id)
            .collect();
        for id in down {
            self.c().node(id)?.start()?;
        }
        let mut converged = true;
        let conv = if s.nodes > 1 {
            self.c()
                .wait_isr_full(CONVERGE_TIMEOUT)
                .and_then(|_| self.c().wait_logs_identical(CONVERGE_TIMEOUT))
        } else {
            self.c().wait_leaders(CONVERGE_TIMEOUT)
        };
        if let Err(e) = conv {
            converged = false;
            let tails = self.c().tails(30);
            self.errors
                .push(format!("the cluster did not converge: {e:#}\n{tails}"));
        }
        let logs = check::read_back(&bootstrap, &topic, s.partitions)
            .map_err(|e| self.errors.push(format!("read back: {e:#}")))
            .ok();
        if let Some(h) = txn_history {
            match txn::check(&bootstrap, &txn::txn_topic(&topic), s.partitions, &h) {
                Ok(checked) => self.txns = Some(checked),
                Err(e) => self.errors.push(format!("check the transactions: {e:#}")),
            }
            self.txn_events = h.events;
        }
        if let Some(mut c) = commits {
            if let Err(e) = group::read_final(&bootstrap, &topic, &mut c, self.clock) {
                self.errors
                    .push(format!("read the group's committed offsets: {e:#}"));
            }
            self.commits = Some(c);
        }
        Ok((history, logs, converged))
    }

    fn create_topic(&mut self, name: &str) -> Result<()> {
        let s = self.s;
        let c = self.c();
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", c.bootstrap())
            .set("broker.address.family", "v4")
            .set("log_level", "3")
            .create()?;
        let unclean = s.unclean_leader_election.to_string();
        let min_isr = s.min_insync_replicas.to_string();
        let topic = NewTopic::new(
            name,
            s.partitions,
            TopicReplication::Fixed(s.replication_factor),
        )
        .set("min.insync.replicas", &min_isr)
        .set("unclean.leader.election.enable", &unclean);
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        wait_for("CreateTopics", CONVERGE_TIMEOUT, || {
            let res = block_on(admin.create_topics([&topic], &opts))?;
            match &res[0] {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(()),
                Err((n, code)) => bail!("{n}: {code:?}"),
            }
        })?;
        c.wait_leaders(CONVERGE_TIMEOUT)
    }

    /// Resolves a target to a node id.
    fn resolve(&mut self, t: &Target) -> Result<i32> {
        self.resolve_avoiding(t, None)
    }

    /// Resolves a target to a node id; a follower is picked among those
    /// that are not `avoid` (a link's other end: partition 0's follower may
    /// be the controller too).
    fn resolve_avoiding(&mut self, t: &Target, avoid: Option<i32>) -> Result<i32> {
        let c = self.cluster.as_ref().expect("cluster");
        if c.nodes.len() == 1 {
            return Ok(1);
        }
        Ok(match t {
            Target::Node(id) => *id,
            Target::Down => c
                .nodes
                .values()
                .filter(|n| !n.is_running())
                .min_by_key(|n| n.down_since)
                .map(|n| n.id)
                .ok_or_else(|| anyhow!("no node is down"))?,
            Target::Controller => wait_for("a controller", CONVERGE_TIMEOUT, || {
                let id = c.any_metadata()?.controller_id.0;
                if c.live().contains(&id) {
                    Ok(id)
                } else {
                    bail!("controller {id} is not a live node")
                }
            })?,
            Target::Coordinator => {
                let group = crate::group::group_of(&c.topic);
                wait_for("the group's coordinator", CONVERGE_TIMEOUT, || {
                    let id = coordinator_call(&c.nodes[&c.live()[0]].addr(), &group)?;
                    if c.live().contains(&id) {
                        Ok(id)
                    } else {
                        bail!("coordinator {id} is not a live node")
                    }
                })?
            }
            Target::TxnCoordinator => wait_for(
                "the transactional id's coordinator",
                CONVERGE_TIMEOUT,
                || {
                    let addr = c.nodes[&c.live()[0]].addr();
                    let id = txn_coordinator_call(&addr, txn::TRANSACTIONAL_ID)?;
                    if c.live().contains(&id) {
                        Ok(id)
                    } else {
                        bail!("coordinator {id} is not a live node")
                    }
                },
            )?,
            Target::Leader | Target::Follower => {
                let view = wait_for("partition 0's leader", CONVERGE_TIMEOUT, || {
                    let m = c.any_metadata()?;
                    let v = c.view(&m, 0).ok_or_else(|| anyhow!("no partition 0"))?;
                    if c.live().contains(&v.leader) {
                        Ok(v)
                    } else {
                        bail!("leader {} is not live", v.leader)
                    }
                })?;
                if *t == Target::Leader {
                    view.leader
                } else {
                    let live = c.live();
                    let followers: Vec<i32> = view
                        .replicas
                        .iter()
                        .copied()
                        .filter(|r| *r != view.leader && live.contains(r))
                        .filter(|r| Some(*r) != avoid)
                        .collect();
                    if followers.is_empty() {
                        bail!("partition 0 has no live follower (avoiding {avoid:?}): {view:?}");
                    }
                    followers[self.rng.range(0, followers.len() as u64 - 1) as usize]
                }
            }
        })
    }

    fn record(&mut self, kind: &str, node: i32, at_us: u64, detail: String) {
        eprintln!("[{}] {kind} node {node}: {detail}", self.s.name);
        self.faults.push(FaultRecord {
            kind: kind.into(),
            node,
            at_ms: at_us as f64 / 1000.0,
            detail,
            heal_ms: None,
        });
    }

    fn inject(&mut self, f: &Fault) -> Result<()> {
        match f {
            Fault::Kill9 {
                target,
                down_ms,
                wipe,
            } => {
                let id = self.resolve(target)?;
                let at = self.clock.us();
                self.c().node(id)?.kill9()?;
                if *wipe {
                    self.c().node(id)?.wipe()?;
                }
                let wiped = if *wipe { ", data dir emptied" } else { "" };
                match down_ms {
                    Some([lo, hi]) => {
                        let down = self.rng.range(*lo, *hi);
                        self.record(
                            "kill9",
                            id,
                            at,
                            format!("{target:?}{wiped}; restarted after {down} ms"),
                        );
                        thread::sleep(Duration::from_millis(down));
                        self.c().node(id)?.start()?;
                    }
                    None => self.record("kill9", id, at, format!("{target:?}{wiped}; left down")),
                }
            }
            Fault::Pause { target, pause_ms } => {
                let id = self.resolve(target)?;
                let at = self.clock.us();
                self.c().node(id)?.sigstop()?;
                self.record(
                    "sigstop",
                    id,
                    at,
                    format!("{target:?}; SIGCONT after {pause_ms} ms"),
                );
                thread::sleep(Duration::from_millis(*pause_ms));
                self.c().node(id)?.sigcont()?;
            }
            Fault::RollingRestart => {
                let ids: Vec<i32> = self.c().nodes.keys().copied().collect();
                for id in ids {
                    if self.s.nodes > 1 {
                        self.c().wait_isr_full(CONVERGE_TIMEOUT)?;
                    }
                    let at = self.clock.us();
                    let t = Instant::now();
                    self.c().node(id)?.stop()?;
                    let stopped = t.elapsed();
                    self.c().node(id)?.start()?;
                    let detail = format!(
                        "SIGTERM: exited in {} ms, listening again after {} ms",
                        stopped.as_millis(),
                        t.elapsed().as_millis()
                    );
                    self.record("sigterm", id, at, detail);
                }
            }
            Fault::TornTail { bytes, mode } => {
                let at = self.clock.us();
                self.c().node(1)?.kill9()?;
                let detail = self.tear(*bytes, *mode)?;
                self.record("torn_tail", 1, at, detail);
                thread::sleep(Duration::from_millis(500));
                self.c().node(1)?.start()?;
            }
            Fault::Isolate {
                targets,
                heal_ms,
                clients,
            } => {
                let mut ids = Vec::new();
                for t in targets {
                    let id = self.resolve(t)?;
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                let others: Vec<i32> = self
                    .c()
                    .nodes
                    .keys()
                    .copied()
                    .filter(|id| !ids.contains(id))
                    .collect();
                let net = self.net.as_mut().expect("validated: netns");
                for &a in &ids {
                    for &b in &others {
                        net.cut(a, b)?;
                        net.cut(b, a)?;
                    }
                    if *clients {
                        net.cut_clients(a)?;
                    }
                }
                let at = self.clock.us();
                let detail = format!(
                    "{targets:?}: nodes {ids:?} cut from nodes {others:?}{}; healed after {heal_ms} ms",
                    if *clients { " and the clients" } else { "" }
                );
                self.record("isolate", ids[0], at, detail);
                thread::sleep(Duration::from_millis(*heal_ms));
                self.net.as_mut().expect("netns").heal()?;
            }
            Fault::CutLink { from, to, heal_ms } => {
                // The follower end is picked last, among the nodes the other
                // end is not.
                let (a, b) = if *from == Target::Follower {
                    let b = self.resolve(to)?;
                    (self.resolve_avoiding(from, Some(b))?, b)
                } else {
                    let a = self.resolve(from)?;
                    (a, self.resolve_avoiding(to, Some(a))?)
                };
                if a == b {
                    bail!("cut_link: {from:?} and {to:?} are the same node {a}");
                }
                self.net.as_mut().expect("validated: netns").cut(a, b)?;
                let at = self.clock.us();
                let detail =
                    format!("{from:?} -> {to:?}: what node {a} sends to node {b} is dropped; healed after {heal_ms} ms");
                self.record("cut_link", a, at, detail);
                thread::sleep(Duration::from_millis(*heal_ms));
                self.net.as_mut().expect("netns").heal()?;
            }
            Fault::DiskFull { target, full_ms } => {
                let id = self.resolve(target)?;
                let node = self.c().node(id)?;
                let disk = node.disk.as_ref().expect("validated: tmpfs_mib");
                let filled = disk.fill()?;
                let full_at = self.clock.us();
                thread::sleep(Duration::from_millis(*full_ms));
                self.c().node(id)?.disk.as_ref().expect("tmpfs").free()?;
                // Timed from the space coming back: while full, the last
                // partly written page of each segment still takes a few
                // writes, so "no write possible" has no sharp start.
                let at = self.clock.us();
                let detail = format!(
                    "{target:?}: a {filled}-byte file filled its data dir's filesystem at {} ms, freed after {full_ms} ms (heal counted from the free)",
                    full_at / 1000
                );
                self.record("disk_full", id, at, detail);
            }
            Fault::Reassign { replace, throttle } => self.reassign(replace, *throttle)?,
            Fault::ReplaceVoter { remove } => self.replace_voter(remove)?,
            Fault::Start { target } => {
                let id = self.resolve(target)?;
                let at = self.clock.us();
                self.c().node(id)?.start()?;
                eprintln!("[{}] started node {id} at {} ms", self.s.name, at / 1000);
            }
            Fault::Wait { ms } => thread::sleep(Duration::from_millis(*ms)),
        }
        Ok(())
    }

    /// Moves partition 0's replica on the `replace` node to a live node
    /// that holds none of it; the quorum takes the move once it is asked
    /// (a proposal may time out while a controller is elected: asked again).
    fn reassign(&mut self, replace: &Target, throttle: Option<u64>) -> Result<()> {
        if let Some(rate) = throttle {
            self.throttle_replication(rate)?;
        }
        let from = self.resolve(replace)?;
        let c = self.c();
        let view = c
            .view(&c.any_metadata()?, 0)
            .ok_or_else(|| anyhow!("no partition 0"))?;
        if !view.replicas.contains(&from) {
            bail!("reassign: node {from} holds no replica of partition 0: {view:?}");
        }
        let spare: Vec<i32> = c
            .live()
            .into_iter()
            .filter(|id| !view.replicas.contains(id))
            .collect();
        if spare.is_empty() {
            bail!("reassign: every live node holds a replica of partition 0: {view:?}");
        }
        let to = spare[self.rng.range(0, spare.len() as u64 - 1) as usize];
        let target: Vec<i32> = view
            .replicas
            .iter()
            .map(|&r| if r == from { to } else { r })
            .collect();
        let at = self.clock.us();
        let c = self.c();
        let topic = c.topic.clone();
        let code = wait_for("the reassignment to be taken", CONVERGE_TIMEOUT, || {
            let addr = c.nodes[&c.live()[0]].addr();
            match reassign_call(&addr, &topic, 0, &target)? {
                code @ (REQUEST_TIMED_OUT | NOT_CONTROLLER) => {
                    bail!("error {code}: no controller to take it yet")
                }
                code => Ok(code),
            }
        })?;
        if code != 0 {
            bail!("reassign: partition 0 to {target:?} refused with error {code}");
        }
        let detail = format!(
            "{replace:?}: partition 0 from {:?} to {target:?} (node {from} gives way to node {to})",
            view.replicas
        );
        self.record("reassign", from, at, detail);
        Ok(())
    }

    /// Kafka's replication throttles at `rate` bytes per second: every
    /// replica of the topic named (the ISR is never throttled, so this
    /// holds back only a copy under way), cluster-wide rates.
    fn throttle_replication(&mut self, rate: u64) -> Result<()> {
        const TOPIC: i8 = 2;
        const BROKER: i8 = 4;
        let c = self.c();
        let topic = c.topic.clone();
        let rate = rate.to_string();
        wait_for("the replication throttles set", CONVERGE_TIMEOUT, || {
            let addr = c.nodes[&c.live()[0]].addr();
            set_configs_call(
                &addr,
                TOPIC,
                &topic,
                &[
                    ("leader.replication.throttled.replicas", "*"),
                    ("follower.replication.throttled.replicas", "*"),
                ],
            )?;
            set_configs_call(
                &addr,
                BROKER,
                "",
                &[
                    ("leader.replication.throttled.rate", &rate),
                    ("follower.replication.throttled.rate", &rate),
                ],
            )
        })
    }

    /// Makes a live observer of the metadata quorum a voter, then takes
    /// voter `remove` out of the voters, and waits until another node is
    /// named the controller if it was. A retry after an answer lost in a
    /// controller change may find its work done (DUPLICATE_VOTER,
    /// VOTER_NOT_FOUND), which counts as done.
    fn replace_voter(&mut self, remove: &Target) -> Result<()> {
        let gone = self.resolve(remove)?;
        let c = self.c();
        let (voters, observers) = wait_for("the quorum described", CONVERGE_TIMEOUT, || {
            quorum_call(&c.nodes[&c.live()[0]].addr())
        })?;
        if !voters.contains(&gone) {
            bail!("replace_voter: node {gone} is not a voter: {voters:?}");
        }
        let live = c.live();
        let spare: Vec<i32> = observers
            .into_iter()
            .filter(|id| live.contains(id))
            .collect();
        if spare.is_empty() {
            bail!("replace_voter: no live observer to make a voter");
        }
        let new = spare[self.rng.range(0, spare.len() as u64 - 1) as usize];
        let at = self.clock.us();
        let c = self.c();
        for (id, add, done) in [(new, true, DUPLICATE_VOTER), (gone, false, VOTER_NOT_FOUND)] {
            let what = if add { "added" } else { "removed" };
            let code = wait_for(&format!("voter {id} {what}"), CONVERGE_TIMEOUT, || {
                let addr = c.nodes[&c.live()[0]].addr();
                match change_voter_call(&addr, id, add, VOTER_CATCH_UP_MS)? {
                    code @ (REQUEST_TIMED_OUT | NOT_CONTROLLER | COORDINATOR_NOT_AVAILABLE) => {
                        bail!("error {code}: not taken yet")
                    }
                    code => Ok(code),
                }
            })?;
            if code != 0 && code != done {
                bail!("replace_voter: voter {id} not {what}: error {code}");
            }
        }
        // A removed controller leads until its successor is elected: the
        // next fault must see the successor.
        wait_for(
            "a controller among the new voters",
            CONVERGE_TIMEOUT,
            || {
                let controller = c.any_metadata()?.controller_id.0;
                if controller == gone {
                    bail!("node {gone} still named the controller");
                }
                Ok(())
            },
        )?;
        let detail = format!("{remove:?}: voters {voters:?}, node {new} in, node {gone} out");
        self.record("replace_voter", gone, at, detail);
        Ok(())
    }

    /// Cuts or overwrites the last `bytes` of partition 0's active segment
    /// on the (killed) single node. Acknowledged records in batches that
    /// overlap the damaged bytes may be lost; everything before must stay.
    fn tear(&mut self, bytes: u64, mode: TornMode) -> Result<String> {
        let topic = self.c().topic.clone();
        let segs = self.c().node(1)?.segments(&topic, 0);
        let seg = segs
            .iter()
            .rev()
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .ok_or_else(|| anyhow!("partition 0 has no non-empty segment"))?
            .clone();
        let data = std::fs::read(&seg)?;
        let len = data.len() as u64;
        let cut = len.saturating_sub(bytes);
        // v2 batches: baseOffset i64, batchLength i32, then batchLength bytes.
        let (mut pos, mut first_damaged, mut end_offset) = (0usize, None, 0i64);
        while pos + 12 <= data.len() {
            let base = i64::from_be_bytes(data[pos..pos + 8].try_into().unwrap());
            let blen = i32::from_be_bytes(data[pos + 8..pos + 12].try_into().unwrap());
            if blen <= 0 {
                break;
            }
            // lastOffsetDelta sits at byte 23 of the batch after the length.
            let delta_at = pos + 12 + 4 + 1 + 4 + 2;
            let delta = data
                .get(delta_at..delta_at + 4)
                .map_or(0, |b| i32::from_be_bytes(b.try_into().unwrap()));
            let end = pos as u64 + 12 + blen as u64;
            if end > cut && first_damaged.is_none() {
                first_damaged = Some(base);
            }
            end_offset = base + delta as i64 + 1;
            pos = end as usize;
        }
        let from =
            first_damaged.ok_or_else(|| anyhow!("no batch overlaps the last {bytes} bytes"))?;
        match mode {
            TornMode::Truncate => std::fs::OpenOptions::new()
                .write(true)
                .open(&seg)?
                .set_len(cut)
                .with_context(|| format!("truncate {}", seg.display()))?,
            TornMode::Corrupt => {
                let mut d = data.clone();
                for (i, b) in d[cut as usize..].iter_mut().enumerate() {
                    *b = 0xa5 ^ (i as u8);
                }
                std::fs::write(&seg, d)?;
            }
        }
        self.allowed.entry(0).or_default().push(from..end_offset);
        Ok(format!(
            "{mode:?} the last {bytes} of {len} bytes of {}: acknowledged records at offsets {from}..{end_offset} may be lost, all before {from} must survive",
            seg.file_name().unwrap().to_string_lossy()
        ))
    }
}

/// Drives an rdkafka admin future on this thread (it completes on
/// librdkafka's own threads).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct ThreadWaker(thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park_timeout(Duration::from_millis(100));
    }
}

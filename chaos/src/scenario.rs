//! A scenario file: the cluster, the workload and the faults, in TOML.
//!
//! ```toml
//! name = "kill-leader"
//! nodes = 3
//! partitions = 3
//! replication_factor = 3
//! min_insync_replicas = 2
//! messages_per_second = 300
//! [[fault]]
//! kind = "kill9"
//! target = "leader"
//! down_ms = [1000, 4000]
//! ```

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// 1: a single node without a quorum; more: nodes `1..=voters` are
    /// controller voters and brokers, the others broker-only.
    pub nodes: u32,
    /// How many nodes are quorum voters (odd, at most `nodes`); all of
    /// them when absent.
    #[serde(default)]
    pub voters: Option<u32>,
    /// Where the nodes run: `loopback` (processes on 127.0.0.1) or `netns`
    /// (a network namespace each, so links can be cut).
    #[serde(default)]
    pub network: Network,
    #[serde(default = "defaults::partitions")]
    pub partitions: i32,
    #[serde(default = "defaults::one")]
    pub replication_factor: i32,
    #[serde(default = "defaults::one")]
    pub min_insync_replicas: i32,
    #[serde(default)]
    pub unclean_leader_election: bool,
    /// Loss is allowed and reported, not a failure (unclean election, a
    /// torn tail past the fsync point).
    #[serde(default)]
    pub allow_loss: bool,
    /// Every node's data dir on a tmpfs of its own of this many MiB (for
    /// `disk_full`).
    #[serde(default)]
    pub tmpfs_mib: Option<u64>,
    /// Extra `sluice serve` flags for every node.
    #[serde(default)]
    pub broker_args: Vec<String>,
    /// Produce rate over all partitions.
    #[serde(default = "defaults::rate")]
    pub messages_per_second: u64,
    /// Stop producing after this many messages were sent (0: no bound; the
    /// faults decide how long the run is).
    #[serde(default)]
    pub max_messages: u64,
    #[serde(default = "defaults::value_bytes")]
    pub value_bytes: usize,
    /// Outstanding messages per partition before that partition is skipped.
    #[serde(default = "defaults::in_flight")]
    pub in_flight_per_partition: usize,
    #[serde(default = "defaults::idempotence")]
    pub idempotence: bool,
    /// A consumer in a group reads along and commits; the checker holds
    /// its commits (committed offsets never move backwards).
    #[serde(default = "defaults::consumer_group")]
    pub consumer_group: bool,
    /// The consumer group's protocol: `classic` (JoinGroup, SyncGroup) or
    /// `consumer` (KIP-848, the coordinator assigns).
    #[serde(default)]
    pub group_protocol: GroupProtocol,
    /// A transactional producer writes transactions to a topic of its own
    /// (`<topic>-txn`, shaped like the run's), committing most, aborting
    /// some; the checker holds them (`txn`).
    #[serde(default)]
    pub transactions: bool,
    /// Load before the first fault.
    #[serde(default = "defaults::warmup_ms")]
    pub warmup_ms: u64,
    /// Load between one fault's end and the next fault.
    #[serde(default = "defaults::gap_ms")]
    pub gap_ms: u64,
    /// Load after the last fault before producing stops.
    #[serde(default = "defaults::settle_ms")]
    pub settle_ms: u64,
    /// The RNG seed (random delays, follower choice); the command line may
    /// override it; a fresh one is drawn when neither sets it.
    pub seed: Option<u64>,
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
}

mod defaults {
    pub fn partitions() -> i32 {
        3
    }
    pub fn one() -> i32 {
        1
    }
    pub fn rate() -> u64 {
        300
    }
    pub fn value_bytes() -> usize {
        100
    }
    pub fn in_flight() -> usize {
        200
    }
    pub fn idempotence() -> bool {
        true
    }
    pub fn consumer_group() -> bool {
        true
    }
    pub fn warmup_ms() -> u64 {
        3000
    }
    pub fn gap_ms() -> u64 {
        3000
    }
    pub fn settle_ms() -> u64 {
        3000
    }
}

/// One step of the fault schedule, run in order.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// kill -9; restarted after a random delay in `down_ms`, or left down
    /// (until a `start` step or the end of the run) when it is absent.
    Kill9 {
        target: Target,
        #[serde(default)]
        down_ms: Option<[u64; 2]>,
        /// Empty the node's data dir once it is dead: a replaced disk. It
        /// comes back under its id with nothing (its metadata log with a
        /// new directory id, no partition data).
        #[serde(default)]
        wipe: bool,
    },
    /// SIGSTOP, then SIGCONT after `pause_ms`.
    Pause { target: Target, pause_ms: u64 },
    /// SIGTERM every node in turn; each is started again and the ISRs fill
    /// before the next one stops.
    RollingRestart,
    /// Single node: kill -9, cut or overwrite the last `bytes` bytes of
    /// partition 0's active segment, start again.
    TornTail {
        bytes: u64,
        #[serde(default)]
        mode: TornMode,
    },
    /// Cuts every link between the `targets` and the other nodes (both
    /// directions); with `clients`, between them and the clients too.
    /// Healed after `heal_ms`.
    Isolate {
        targets: Vec<Target>,
        heal_ms: u64,
        #[serde(default)]
        clients: bool,
    },
    /// Drops what `from` sends to `to`, one direction only, for `heal_ms`.
    CutLink {
        from: Target,
        to: Target,
        heal_ms: u64,
    },
    /// Fills the target's data-dir filesystem (`tmpfs_mib`) to the last
    /// byte, keeps it full for `full_ms`, then frees the space.
    DiskFull { target: Target, full_ms: u64 },
    /// Moves partition 0 off the `replace` node (a replica of it) to a live
    /// node that holds none of it, at random (AlterPartitionReassignments):
    /// the new replica copies the log under the load, then the old one, the
    /// leader too if it is that, leaves. The next fault waits for the move.
    /// With `throttle` (bytes per second), the copy runs under Kafka's
    /// replication throttles, as `kafka-reassign-partitions.sh --throttle`
    /// sets them: every replica of the topic named, every broker's rates.
    Reassign {
        replace: Target,
        #[serde(default)]
        throttle: Option<u64>,
    },
    /// Replaces voter `remove` of the metadata quorum (KIP-853): a live
    /// broker-only node (an observer), at random, is made a voter, then
    /// `remove` leaves the voters (it stays a broker). The quorum's
    /// majority shifts under the load; the next fault may kill the node.
    ReplaceVoter { remove: Target },
    /// Starts a node that is down.
    Start { target: Target },
    /// Load only.
    Wait { ms: u64 },
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupProtocol {
    #[default]
    Classic,
    Consumer,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TornMode {
    /// The file is shortened (a write that never reached the disk).
    #[default]
    Truncate,
    /// The bytes are overwritten with garbage (a torn sector).
    Corrupt,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    #[default]
    Loopback,
    Netns,
}

/// Which node a fault hits, resolved when it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    /// The leader of partition 0.
    Leader,
    /// A live replica of partition 0 that does not lead it (random).
    Follower,
    /// The active controller (Metadata controller_id).
    Controller,
    /// The coordinator of the run's consumer group.
    Coordinator,
    /// The coordinator of the run's transactional id.
    TxnCoordinator,
    /// The node that has been down longest.
    Down,
    Node(i32),
}

impl TryFrom<String> for Target {
    type Error = String;
    fn try_from(s: String) -> Result<Target, String> {
        Ok(match s.as_str() {
            "leader" => Target::Leader,
            "follower" => Target::Follower,
            "controller" => Target::Controller,
            "coordinator" => Target::Coordinator,
            "txn-coordinator" => Target::TxnCoordinator,
            "down" => Target::Down,
            other => match other.strip_prefix("node-").and_then(|n| n.parse().ok()) {
                Some(id) => Target::Node(id),
                None => {
                    return Err(format!(
                        "target {s:?}: expected leader, follower, controller, coordinator, txn-coordinator, down or node-N"
                    ))
                }
            },
        })
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        match t {
            Target::Leader => "leader".into(),
            Target::Follower => "follower".into(),
            Target::Controller => "controller".into(),
            Target::Coordinator => "coordinator".into(),
            Target::TxnCoordinator => "txn-coordinator".into(),
            Target::Down => "down".into(),
            Target::Node(id) => format!("node-{id}"),
        }
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        let s: Scenario =
            toml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        s.validate()
            .with_context(|| format!("check {}", path.display()))?;
        Ok(s)
    }

    /// Whether a fault cuts a link (only namespaces can).
    pub fn cuts_links(&self) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::Isolate { .. } | Fault::CutLink { .. }))
    }

    fn validate(&self) -> Result<()> {
        if self.nodes == 0 || self.partitions < 1 {
            bail!("nodes and partitions must be at least 1");
        }
        if self.replication_factor > self.nodes as i32 {
            bail!("replication_factor is larger than nodes");
        }
        if self.voters.is_some_and(|v| v == 0 || v > self.nodes) {
            bail!("voters must be from 1 to nodes");
        }
        for f in &self.faults {
            if matches!(f, Fault::TornTail { .. }) && self.nodes != 1 {
                bail!("torn_tail runs on a single node");
            }
            if matches!(f, Fault::Kill9 { wipe: true, .. }) && self.replication_factor < 2 {
                bail!("a replaced disk loses its data unless another replica holds it: replication_factor 2 or more");
            }
            if matches!(f, Fault::DiskFull { .. }) && self.tmpfs_mib.is_none() {
                bail!("disk_full needs tmpfs_mib");
            }
            if matches!(f, Fault::ReplaceVoter { .. })
                && self.voters.is_none_or(|v| v >= self.nodes)
            {
                bail!("replace_voter needs a broker-only node: voters below nodes");
            }
            if matches!(f, Fault::Reassign { .. }) && self.replication_factor >= self.nodes as i32 {
                bail!("reassign needs a node that holds no replica: more nodes than replication_factor");
            }
        }
        if self.cuts_links() && (self.network != Network::Netns || self.nodes < 2) {
            bail!("isolate and cut_link need network = \"netns\" and at least 2 nodes");
        }
        Ok(())
    }
}

/// splitmix64: a tiny, dependency-free generator whose sequence for a seed
/// never changes between library versions, so a seed in a report replays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

//! What shards send each other. Every message is `Send`: plain data, `Bytes`,
//! `Arc` snapshots, and a oneshot for the answer (glommio wakes the waiting
//! shard's task from another thread).

use std::sync::Arc;

use futures::channel::oneshot;

use crate::config::ConfigChange;
use crate::metadata::Topics;
use crate::storage::FileSlice;

/// A partition named the way requests name it.
///
/// Compared by name, but two that share their topic's `Arc` (the shard's
/// partitions, and the fetchers' and sessions' copies of them) skip the
/// string compare: at 1,000 partitions of one topic, maps of these were
/// mostly `memcmp` of the same name.
#[derive(Clone, Debug)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

// By name and number, as equality is (a shared `Arc` is a shortcut to the
// same answer).
impl std::hash::Hash for TopicPartition {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.topic.hash(state);
        self.partition.hash(state);
    }
}

impl PartialEq for TopicPartition {
    fn eq(&self, other: &Self) -> bool {
        self.partition == other.partition
            && (Arc::ptr_eq(&self.topic, &other.topic) || self.topic == other.topic)
    }
}

impl Eq for TopicPartition {}

impl Ord for TopicPartition {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.topic, &other.topic) {
            return self.partition.cmp(&other.partition);
        }
        (&self.topic, self.partition).cmp(&(&other.topic, other.partition))
    }
}

impl PartialOrd for TopicPartition {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

pub struct ProduceItem {
    pub tp: TopicPartition,
    /// Checked where the request arrived; the owner appends without a
    /// second pass.
    pub records: crate::record::Validated,
    /// -1 waits for the ISR (the high watermark) and the flush policy's
    /// fsync; 0 and 1 only for the leader's append.
    pub acks: i16,
    pub origin: crate::storage::AppendOrigin,
    /// How long an acks=-1 produce may wait for the ISR (the request's
    /// timeout) before it is answered REQUEST_TIMED_OUT.
    pub timeout_ms: u64,
    /// KIP-890: for a transactional batch (a client's, or a transactional
    /// offset commit), the verification point
    /// (`ProducerStates::txn_verification_point`) at which the coordinator
    /// confirmed the partition is in the producer's transaction. Without
    /// it, a batch that would open a transaction here is refused.
    pub txn_verified: Option<i64>,
}

/// Kafka error codes travel as `i16` so handlers need no translation.
#[derive(Debug, Clone)]
pub struct ProduceOutcome {
    pub error: i16,
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// One partition's read, as its owner makes it; see [`ReadItem`] and
/// [`ReadArgs`].
#[derive(Clone, Copy)]
pub struct ReadOf<P> {
    /// The partition: owned in a [`ReadItem`], borrowed in [`ReadArgs`].
    pub tp: P,
    pub offset: i64,
    pub max_bytes: u32,
    /// Kafka returns the first batch whole even past the limits, but only
    /// for the first partition that has data in a response.
    pub min_one_batch: bool,
    /// read_committed: stop at the last stable offset and name the aborted
    /// transactions in range.
    pub committed: bool,
    /// The leader epoch the asker believes in (-1: unchecked), Kafka's
    /// current_leader_epoch: an older one is FENCED_LEADER_EPOCH, a newer
    /// one UNKNOWN_LEADER_EPOCH.
    pub current_leader_epoch: i32,
    /// A follower's fetch: it reads up to the log end, not the high
    /// watermark, and its offset is its log end.
    pub replica: Option<ReplicaFetch>,
    /// A coordinator loading its own partition: up to the log end, which
    /// on a new leader holds everything acknowledged even while its high
    /// watermark has yet to catch up.
    pub to_log_end: bool,
    /// A read again after a long poll's wake: if the partition is still as
    /// `Seen` here, the owner answers `unchanged` at once instead of reading
    /// (the asker keeps its earlier outcome).
    pub unless_unchanged: Option<Seen>,
    /// A consumer's fetch of v11+ (Kafka's clientMetadata, KIP-392): a
    /// follower may answer it too, up to its own high watermark.
    pub any_replica: bool,
    /// The rack such a consumer named ([`rack_hash`] of Fetch's rack_id),
    /// for the leader to point it at a replica in that rack.
    pub client_rack: Option<u64>,
}

/// A rack name as reads carry it: hashed (FNV-1a), so a read stays `Copy`
/// and crosses shards without an allocation. Two racks whose hashes meet
/// would only send a consumer to read from the other rack.
pub fn rack_hash(rack: &str) -> u64 {
    rack.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A read to send to the partition's owner, owning its name.
pub type ReadItem = ReadOf<TopicPartition>;

/// A read made where the asker is (its own shard owns the partition, or a
/// woken long poll's owner reads what moved): it borrows the partition's
/// name, so a wide fetch makes no [`ReadItem`] per partition (a clone of
/// the topic name's `Arc`, an atomic count each way, and a vector of them
/// written and read back).
pub type ReadArgs<'a> = ReadOf<&'a TopicPartition>;

impl<P> ReadOf<P> {
    /// The same read, naming the partition by `tp`.
    pub fn with_tp<Q>(&self, tp: Q) -> ReadOf<Q> {
        ReadOf {
            tp,
            offset: self.offset,
            max_bytes: self.max_bytes,
            min_one_batch: self.min_one_batch,
            committed: self.committed,
            current_leader_epoch: self.current_leader_epoch,
            replica: self.replica,
            to_log_end: self.to_log_end,
            unless_unchanged: self.unless_unchanged,
            any_replica: self.any_replica,
            client_rack: self.client_rack,
        }
    }
}

impl ReadItem {
    pub fn args(&self) -> ReadArgs<'_> {
        self.with_tp(&self.tp)
    }
}

impl ReadArgs<'_> {
    /// It, owning its name, to send to another shard.
    pub fn to_item(&self) -> ReadItem {
        self.with_tp(self.tp.clone())
    }
}

/// The state of one partition a read saw: which instance of it (a topic
/// deleted and created again, or a partition moved away and back, is
/// another) and its `appended` version, which moves with every append,
/// high watermark move and role change. Reading the same offset under the
/// same `Seen` reads the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub instance: u64,
    pub version: u64,
}

/// What a follower's fetch adds to a read (Kafka's replica_id and
/// last_fetched_epoch).
#[derive(Clone, Copy, Debug)]
pub struct ReplicaFetch {
    pub node_id: i32,
    /// The follower's log start (-1: not told), which the leader's
    /// DeleteRecords waits on.
    pub log_start_offset: i64,
    /// The epoch of the last batch the follower holds (-1: none), for the
    /// divergence check (KIP-320).
    pub last_fetched_epoch: i32,
}

#[derive(Clone)]
pub struct ReadOutcome {
    pub error: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// (producer id, first offset) of aborted transactions in range, for
    /// read_committed reads; `None` otherwise.
    pub aborted: Option<Vec<(i64, i64)>>,
    pub log_start_offset: i64,
    pub slices: Vec<FileSlice>,
    pub bytes: u64,
    /// For a follower: where its log diverges from the leader's (epoch,
    /// end offset); it truncates there before fetching again.
    pub diverging: Option<(i32, i64)>,
    /// The partition's state this was read under (`None`: no partition).
    pub seen: Option<Seen>,
    /// The partition is still as the item's `unless_unchanged`: nothing
    /// was read, the asker's earlier outcome stands.
    pub unchanged: bool,
    /// The replica the consumer should read this partition from instead
    /// (KIP-392; -1: this one). Set, nothing was read.
    pub preferred_read_replica: i32,
    /// The leader throttle held a follower's records back (KIP-73): the
    /// empty answer says nothing of the partition's state, so it is read
    /// again rather than kept or left resting until the partition moves
    /// (which, with no new appends, would be never).
    pub held_back: bool,
}

impl ReadOutcome {
    /// An answer without a read: the error, and no offsets.
    pub fn unread(error: i16) -> ReadOutcome {
        ReadOutcome {
            error,
            high_watermark: -1,
            last_stable_offset: -1,
            aborted: None,
            log_start_offset: -1,
            slices: Vec::new(),
            bytes: 0,
            diverging: None,
            seen: None,
            unchanged: false,
            preferred_read_replica: -1,
            held_back: false,
        }
    }

    /// The partition state under which this outcome stands as the answer:
    /// a later read of an unchanged partition may keep it instead.
    pub fn stands(&self) -> Option<Seen> {
        self.seen.filter(|_| !self.held_back)
    }
}

pub struct OffsetQuery {
    pub tp: TopicPartition,
    /// -2 earliest, -1 latest, else a timestamp in ms.
    pub timestamp: i64,
    /// read_committed: latest is the last stable offset.
    pub committed: bool,
    /// Kafka's current_leader_epoch (-1: unchecked).
    pub current_leader_epoch: i32,
    /// Kafka's debugging replica (replica id -2): any replica answers from
    /// its own log, up to its log end.
    pub any_replica: bool,
    /// ListOffsets v0: answer with Kafka 3.x's offset array of at most this
    /// many offsets ([`OffsetOutcome::old_style_offsets`]) instead.
    pub max_num_offsets: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct OffsetOutcome {
    pub error: i16,
    pub offset: i64,
    pub timestamp: i64,
    /// The leader epoch of the answer (-1 when not known).
    pub leader_epoch: i32,
    /// ListOffsets v0's array, largest first (see
    /// `PartitionLog::offsets_before`); empty for newer versions.
    pub old_style_offsets: Vec<i64>,
}

/// OffsetForLeaderEpoch for one partition.
pub struct EpochQuery {
    pub tp: TopicPartition,
    pub current_leader_epoch: i32,
    pub leader_epoch: i32,
}

#[derive(Clone, Debug)]
pub struct EpochOutcome {
    pub error: i16,
    pub leader_epoch: i32,
    pub end_offset: i64,
}

/// A long poll's interest in one partition: wake once it is no longer as
/// the read that came before the wait saw it (the read's
/// `unless_unchanged`), and read it again then, on its owner, so that the
/// wake carries what it woke for (not a second round trip to ask).
pub struct AppendWait {
    /// The asker's name for it, handed back with its outcome in [`Woken`].
    pub place: usize,
    pub read: ReadItem,
}

impl AppendWait {
    pub fn new(place: usize, read: ReadItem) -> AppendWait {
        assert!(
            read.unless_unchanged.is_some(),
            "a wait reads again only what moved"
        );
        AppendWait { place, read }
    }
}

/// One partition a long poll waits on, as its owner needs it, with the
/// read it asks for once the partition moves.
pub trait WaitItem {
    /// The asker's name for it, handed back with its outcome in [`Woken`].
    fn place(&self) -> usize;
    fn tp(&self) -> &TopicPartition;
    /// The state the asker last read it under.
    fn seen(&self) -> Seen;
    /// The read to make once it moved (`unless_unchanged`:
    /// [`WaitItem::seen`]).
    fn read(&self) -> ReadArgs<'_>;
    /// It, owned, to wait on another shard.
    fn into_wait(self) -> AppendWait;
}

impl WaitItem for AppendWait {
    fn place(&self) -> usize {
        self.place
    }

    fn tp(&self) -> &TopicPartition {
        &self.read.tp
    }

    fn seen(&self) -> Seen {
        self.read.unless_unchanged.expect("checked at new")
    }

    fn read(&self) -> ReadArgs<'_> {
        self.read.args()
    }

    fn into_wait(self) -> AppendWait {
        self
    }
}

/// How a long poll's wait ended: the partitions of the owner that saw one
/// move that are no longer as their wait saw them, read again then, each
/// with its [`AppendWait::place`]. Those still as they were are left out:
/// the asker's earlier reads of them stand.
pub struct Woken {
    pub outcomes: Vec<(usize, ReadOutcome)>,
}

/// A transaction marker for one partition (Kafka's WriteTxnMarkers entry):
/// ends producer `producer_id`'s transaction there.
#[derive(Clone, Debug)]
pub struct TxnMarkerItem {
    pub tp: TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// DeleteRecords of one partition: its log start up to `offset` (-1: the
/// high watermark), answered once every live replica's start is there or
/// at `deadline`.
pub struct DeleteRecordsItem {
    pub tp: TopicPartition,
    pub offset: i64,
    pub deadline: std::time::Instant,
}

/// A partition's DeleteRecords answer: the low watermark (the lowest log
/// start among its live replicas), or -1 with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeleteRecordsOutcome {
    pub error: i16,
    pub low_watermark: i64,
}

/// The idempotent producers of one partition (DescribeProducers).
#[derive(Clone, Debug)]
pub struct ProducersOutcome {
    pub error: i16,
    pub producers: Vec<ProducerSummary>,
}

#[derive(Clone, Debug)]
pub struct ProducerSummary {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction here; -1 without one.
    pub current_txn_start_offset: i64,
}

/// Topic changes that only the controller shard (0) performs.
pub enum AdminOp {
    CreateTopic {
        name: String,
        partitions: i32,
        /// -1: `default_replication_factor`. A one-node broker takes 1 only.
        replication_factor: i32,
        /// Explicit replicas per partition (CreateTopics' assignments), in
        /// a cluster; `None`: placed by the controller's rules.
        assignments: Option<Vec<Vec<i32>>>,
        configs: crate::config::TopicConfigs,
        validate_only: bool,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i32,
        /// The added partitions' replicas, in order, when the request
        /// names them.
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    },
    AlterConfigs {
        name: String,
        /// Applied in order on the controller, so a read-modify-write
        /// (APPEND, SUBTRACT, a whole-set replace) sees every change before it.
        changes: Vec<(String, ConfigChange)>,
        /// AlterConfigs' whole-set form: keys not set go back to defaults.
        replace: bool,
        validate_only: bool,
    },
    /// Dynamic broker configs (Kafka's broker resource), as `AlterConfigs`.
    AlterBrokerConfigs {
        target: crate::broker_configs::BrokerTarget,
        changes: Vec<(String, ConfigChange)>,
        replace: bool,
        validate_only: bool,
    },
    /// A group's configs (KIP-848's GROUP resource), as `AlterConfigs`.
    AlterGroupConfigs {
        group: String,
        changes: Vec<(String, ConfigChange)>,
        replace: bool,
        validate_only: bool,
    },
    /// A client metrics subscription (KIP-714's CLIENT_METRICS resource),
    /// as `AlterConfigs`.
    AlterClientMetricsConfigs {
        name: String,
        changes: Vec<(String, ConfigChange)>,
        replace: bool,
        validate_only: bool,
    },
    /// SCRAM credentials (issue 15): set (`Some`) or delete (`None`) each,
    /// all checked by the handler first.
    AlterScramCredentials {
        changes: Vec<(
            String,
            crate::security::scram::Mechanism,
            Option<crate::security::scram::Credential>,
        )>,
    },
    /// Client quotas (issue 15): each key of each entity set (`Some`) or
    /// removed (`None`), all checked by the handler first.
    AlterClientQuotas {
        changes: Vec<(
            crate::quota::QuotaEntity,
            crate::quota::QuotaKey,
            Option<f64>,
        )>,
        /// connection_creation_rate by ip (KIP-612).
        ip_changes: Vec<(crate::quota::EntityName, Option<f64>)>,
    },
    /// ACLs (issue 15): add `create`, then remove `delete`, each checked
    /// by the handler first.
    AlterAcls {
        create: Vec<crate::security::acl::AclBinding>,
        delete: Vec<crate::security::acl::AclBinding>,
    },
    /// A delegation token made (`new`), changed or removed (`None`), all
    /// checked by the handler first; tokens expired by `now_ms` are
    /// removed with it. A token changed or removed must still be there
    /// (DELEGATION_TOKEN_NOT_FOUND).
    PutDelegationToken {
        id: String,
        token: Option<crate::security::delegation_tokens::DelegationToken>,
        new: bool,
        now_ms: i64,
    },
}

#[derive(Clone, Debug)]
pub struct AdminOutcome {
    pub error: i16,
    pub message: Option<String>,
}

pub enum ShardMsg {
    Produce {
        items: Vec<ProduceItem>,
        reply: oneshot::Sender<Vec<ProduceOutcome>>,
        /// Told once every batch is appended, before the acks are waited
        /// for (see `Shard::produce_ordered`).
        appended: Option<oneshot::Sender<()>>,
    },
    Read {
        items: Vec<ReadItem>,
        reply: oneshot::Sender<Vec<ReadOutcome>>,
    },
    /// Answers, with the partitions that moved read again (see [`Woken`]),
    /// when any of them moves or the shard stops; cancelled by the asker
    /// dropping its receiver.
    WaitForAppend {
        items: Vec<AppendWait>,
        reply: oneshot::Sender<Vec<(usize, ReadOutcome)>>,
    },
    ListOffsets {
        items: Vec<OffsetQuery>,
        reply: oneshot::Sender<Vec<OffsetOutcome>>,
    },
    /// A new topics snapshot from the controller; answered once applied.
    Topics {
        topics: Arc<Topics>,
        reply: oneshot::Sender<()>,
    },
    Admin {
        op: AdminOp,
        reply: oneshot::Sender<AdminOutcome>,
    },
    /// For shard 0: a block of producer ids, persisted as taken.
    ProducerIdBlock {
        reply: oneshot::Sender<Result<(i64, i64), super::producer_ids::ProducerIdError>>,
    },
    DescribeProducers {
        items: Vec<TopicPartition>,
        reply: oneshot::Sender<Vec<ProducersOutcome>>,
    },
    OffsetForLeaderEpoch {
        items: Vec<EpochQuery>,
        reply: oneshot::Sender<Vec<EpochOutcome>>,
    },
    DeleteRecords {
        items: Vec<DeleteRecordsItem>,
        reply: oneshot::Sender<Vec<DeleteRecordsOutcome>>,
    },
    /// Every replica the shard hosts, with its size (DescribeLogDirs).
    ReplicaSizes {
        reply: oneshot::Sender<Vec<super::ReplicaSize>>,
    },
    /// KIP-890: per (partition, (producer id, epoch)), the point a verification of
    /// the producer's transaction there holds from (`None`: one is open
    /// there already), or an error code (not led here).
    TxnVerificationPoints {
        items: Vec<(TopicPartition, (i64, i16))>,
        reply: oneshot::Sender<Vec<Result<Option<i64>, i16>>>,
    },
    /// Transaction markers to append; answered with an error code each.
    WriteTxnMarkers {
        items: Vec<TxnMarkerItem>,
        reply: oneshot::Sender<Vec<i16>>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &Arc<str>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.clone(),
            partition,
        }
    }

    #[test]
    fn partitions_compare_by_name_whether_or_not_they_share_it() {
        let (a, a_again, b): (Arc<str>, Arc<str>, Arc<str>) =
            (Arc::from("a"), Arc::from("a"), Arc::from("b"));
        assert_eq!(tp(&a, 1), tp(&a, 1));
        assert_eq!(tp(&a, 1), tp(&a_again, 1), "another Arc of the same name");
        assert_ne!(tp(&a, 1), tp(&a, 2));
        assert_ne!(tp(&a, 1), tp(&b, 1));
        let mut sorted = [tp(&b, 0), tp(&a_again, 2), tp(&a, 3), tp(&a, 1), tp(&b, -1)];
        sorted.sort();
        let names: Vec<(&str, i32)> = sorted.iter().map(|t| (&*t.topic, t.partition)).collect();
        assert_eq!(names, [("a", 1), ("a", 2), ("a", 3), ("b", -1), ("b", 0)]);
        let map: std::collections::HashMap<TopicPartition, i32> =
            [(tp(&a, 1), 7)].into_iter().collect();
        assert_eq!(map.get(&tp(&a_again, 1)), Some(&7), "hashed by name");
    }
}

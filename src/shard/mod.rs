//! What one core owns, and how the cores reach each other.
//!
//! A [`Shard`] lives on exactly one glommio executor. It owns the logs of the
//! partitions [`owner_shard`] assigns to it (only this shard touches them)
//! and a read-only copy of the topics snapshot. Work on partitions owned
//! elsewhere goes as a [`ShardMsg`] over the mesh; the answer comes back on a
//! oneshot. Nothing here is shared across threads except `Arc` snapshots and
//! file handles.

mod admin;
mod admin_cluster;
mod append_writer;
mod durability;
pub mod event;
mod gauges;
mod graveyard;
mod hw_checkpoint;
mod log_dirs;
mod log_start;
pub mod messages;
mod observer;
mod ops;
mod partition_table;
mod prefault;
mod produce;
mod producer_ids;
mod replay;
mod replica;
mod write_failures;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use futures::channel::oneshot;

use crate::config::BrokerConfig;
use crate::controller::Controller;
use crate::metadata::{owner_shard, partition_dir, Topics};
use crate::runtime::{Mesh, MeshReceiver};
use crate::storage::{PartitionLog, StorageError, StoredHighWatermarks};
pub use partition_table::PartitionTable;

pub use event::Event;
pub use graveyard::{bury_stray_partitions, remove_leftover_graveyards};
pub use log_dirs::ReplicaSize;
pub use log_start::DELETE_RECORDS_WAIT_MAX;
pub use messages::*;
pub use observer::ShardObserver;
pub use ops::{ABORTED_TXNS_PER_FETCH_MAX, EARLIEST_LOCAL, LATEST_TIERED, MAX_TIMESTAMP};
pub use producer_ids::{ProducerIdError, PRODUCER_ID_BLOCK_FILE, PRODUCER_ID_BLOCK_SIZE};
pub use replica::{Fetched, Followed, FollowerPosition};

/// A partition's log, its replication role and its append notification,
/// owned by one shard.
pub struct Partition {
    pub log: RefCell<PartitionLog>,
    /// Leader (with its followers' progress), follower, or alone.
    pub role: RefCell<crate::replication::Role>,
    /// Bumped after every append, high watermark move, role change and
    /// log start moved by retention (and a refused ISR proposal), always
    /// through [`Partition::notify_moved`]; long-poll fetches and acks=all
    /// produces wait on it, and fetch sessions skip a partition whose
    /// version has not moved (`Seen`).
    appended: Event,
    /// Notified with `appended` of every partition of its topic on this
    /// shard (they share it): a long poll that holds all of them waits on
    /// this one event instead of on each (see `ops::wait_events`).
    topic_moved: Rc<Event>,
    /// Bumped when an append written off the shard thread is finished:
    /// what other appends to the partition wait for.
    written: Event,
    /// acks=all produces waiting for the ISR (`replica_acks_waiting_max`).
    acks_waiting: Cell<usize>,
    /// The topic id this log belongs to, so a recreated topic gets a fresh log.
    topic_id: Arc<str>,
    /// Unique among the partitions this shard ever opened (see `Seen`).
    instance: u64,
    /// What a consumer's read tells besides records, as of one `appended`
    /// version (see [`Partition::read_state`]).
    read_state: Cell<Option<ReadState>>,
    /// Its topic's client traffic on this broker (`/metrics`).
    pub traffic: Arc<crate::stats::TopicTraffic>,
}

/// What a consumer's read of a partition answers besides its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The `appended` version it holds for.
    version: u64,
    pub high_watermark: i64,
    /// At most the high watermark.
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

thread_local! {
    /// The next partition instance on this shard's thread.
    static NEXT_INSTANCE: Cell<u64> = const { Cell::new(0) };
}

fn next_instance() -> u64 {
    NEXT_INSTANCE.with(|next| {
        let instance = next.get();
        next.set(instance + 1);
        instance
    })
}

impl Partition {
    /// Tells whoever waits on this partition, or on its whole topic, that
    /// it moved (see `appended`).
    pub fn notify_moved(&self) {
        self.appended.notify();
        self.topic_moved.notify();
    }

    /// The state a read now would see.
    pub fn seen(&self) -> Seen {
        Seen {
            instance: self.instance,
            version: self.appended.version(),
        }
    }

    /// The high watermark, last stable offset and log start now, for
    /// consumer reads (a leader's, or a follower's under KIP-392). Every
    /// change to them moves `appended` (as fetch sessions rely on too), so
    /// they are kept per version: a consumer's fetch names every partition
    /// it reads, each time, and at 10,000 partitions walking each log for
    /// them (its segment map, its producers' open transactions) was a fifth
    /// of the shard's CPU.
    pub fn read_state(&self) -> ReadState {
        let version = self.appended.version();
        match self.read_state.get() {
            Some(kept) if kept.version == version => {
                debug_assert_eq!(
                    kept,
                    self.read_state_of_log(version),
                    "a change that did not move `appended`"
                );
                kept
            }
            _ => {
                let state = self.read_state_of_log(version);
                self.read_state.set(Some(state));
                state
            }
        }
    }

    fn read_state_of_log(&self, version: u64) -> ReadState {
        let log = self.log.borrow();
        let high_watermark = log.high_watermark();
        ReadState {
            version,
            high_watermark,
            last_stable_offset: log.last_stable_offset().min(high_watermark),
            log_start_offset: log.log_start_offset(),
        }
    }

    /// Resolves once no append is being written to this log off the shard
    /// thread (at once if none is).
    pub async fn write_idle(&self) {
        loop {
            let seen = self.written.version();
            if !self.log.borrow().write_in_flight() {
                return;
            }
            self.written.changed_since(seen).await;
        }
    }
}

pub struct Shard {
    pub id: usize,
    pub count: usize,
    pub config: Arc<BrokerConfig>,
    /// Host and port clients are told to connect to.
    pub advertised: (String, i32),
    topics: RefCell<Arc<Topics>>,
    partitions: RefCell<PartitionTable<Rc<Partition>>>,
    /// One `Arc` per topic name for all its partitions' keys, so the keys
    /// (and their copies in fetchers and sessions) compare by pointer.
    topic_names: RefCell<TopicNames>,
    mesh: Mesh<ShardMsg>,
    /// What the data dir held at start, for the logs this shard opens.
    start: DataDirAtStart,
    pub stopping: Event,
    /// Requests being served on this shard, and background writes that
    /// must finish before the logs close; shutdown waits for zero.
    pub in_flight: Cell<usize>,
    /// Serializes topic changes on the controller.
    admin_lock: futures::lock::Mutex<()>,
    /// Applies one topics snapshot at a time: an apply yields between the
    /// logs it opens.
    applying: futures::lock::Mutex<()>,
    /// This shard's block of producer ids (and on shard 0, the next block).
    producer_ids: producer_ids::ProducerIds,
    /// In a cluster: the handle to this node's controller, for metadata
    /// proposals (topic changes, ISR changes, producer id blocks).
    pub controller: Option<Arc<Controller>>,
    /// Who hears what the layers above must act on (see [`ShardObserver`]).
    /// Weak: the observer owns this shard.
    observer: RefCell<Option<Weak<dyn ShardObserver>>>,
    /// The open segment files of this shard's logs, bounded by its share
    /// of `log_open_files_max`.
    pub file_handles: crate::storage::FileHandles,
    /// Whether produced batches are written on this thread right now.
    append_writer: append_writer::AppendWriterState,
    /// This shard's share of the broker's replication throttle rates.
    pub replication_quotas: RefCell<crate::replication::throttle::Quotas>,
}

/// What the data dir held when the broker started, read once before the
/// shards and shared by them.
#[derive(Clone)]
pub struct DataDirAtStart {
    /// The clean-shutdown marker was there: logs open without recovery.
    pub clean: bool,
    /// The high watermark checkpoints' values (see `storage::hw_checkpoint`).
    pub high_watermarks: Arc<StoredHighWatermarks>,
}

/// Partitions a topics snapshot's apply looks at between turns for the
/// shard's other tasks (each a few lookups, well under a millisecond in all).
const APPLY_PARTITIONS_PER_TURN: usize = 1024;

/// The topic names of the last snapshot applied, one `Arc` each.
#[derive(Default)]
struct TopicNames {
    current: HashSet<Arc<str>>,
    previous: HashSet<Arc<str>>,
}

impl TopicNames {
    /// Names interned from here on are the next snapshot's.
    fn start_round(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }

    /// The one `Arc` of `name`: the last snapshot's if it had the topic.
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.current.get(name) {
            return known.clone();
        }
        let arc = self
            .previous
            .get(name)
            .cloned()
            .unwrap_or_else(|| Arc::from(name));
        self.current.insert(arc.clone());
        arc
    }

    /// Forgets the names of topics the snapshot no longer has.
    fn end_round(&mut self) {
        self.previous.clear();
    }
}

pub type LocalFuture<O> = Pin<Box<dyn Future<Output = Vec<O>>>>;

/// Counts one piece of work in [`Shard::in_flight`] while it lives; right
/// even when the work's future is dropped.
pub struct InFlight<'a>(&'a Shard);

impl<'a> InFlight<'a> {
    pub fn enter(shard: &'a Shard) -> Self {
        shard.in_flight.set(shard.in_flight.get() + 1);
        InFlight(shard)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get() - 1);
    }
}

impl Shard {
    pub fn new(
        id: usize,
        count: usize,
        config: Arc<BrokerConfig>,
        advertised: (String, i32),
        mesh: Mesh<ShardMsg>,
        start: DataDirAtStart,
        controller: Option<Arc<Controller>>,
    ) -> Shard {
        let file_handles = crate::storage::FileHandles::new(config.log_open_files_per_shard(count));
        let append_writer = append_writer::AppendWriterState::new(config.append_writer);
        Shard {
            id,
            count,
            config,
            advertised,
            topics: RefCell::new(Arc::new(Topics::default())),
            partitions: RefCell::new(PartitionTable::default()),
            topic_names: RefCell::new(TopicNames::default()),
            mesh,
            start,
            stopping: Event::default(),
            in_flight: Cell::new(0),
            admin_lock: futures::lock::Mutex::new(()),
            applying: futures::lock::Mutex::new(()),
            producer_ids: producer_ids::ProducerIds::default(),
            controller,
            observer: RefCell::new(None),
            file_handles,
            append_writer,
            replication_quotas: RefCell::default(),
        }
    }

    /// Registers the one observer of this shard, before the first snapshot
    /// is applied.
    pub fn set_observer(&self, observer: Weak<dyn ShardObserver>) {
        *self.observer.borrow_mut() = Some(observer);
    }

    pub(super) fn observer(&self) -> Option<Rc<dyn ShardObserver>> {
        self.observer.borrow().as_ref().and_then(Weak::upgrade)
    }

    /// This shard's copy of the topics snapshot.
    pub fn topics(&self) -> Arc<Topics> {
        self.topics.borrow().clone()
    }

    pub fn owner_of(&self, tp: &TopicPartition) -> usize {
        owner_shard(&tp.topic, tp.partition, self.count)
    }

    /// Sends `msg` to shard `to`; fails only when that shard has stopped.
    pub async fn send_to_shard(&self, to: usize, msg: ShardMsg) -> Result<(), ()> {
        self.mesh.send_to(to, msg).await
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.version() > 0
    }

    /// The partitions this shard owns now, to walk while the map may change
    /// (a walk that awaits, or that deletes).
    fn owned_partitions(&self) -> Vec<(TopicPartition, Rc<Partition>)> {
        self.partitions
            .borrow()
            .iter()
            .map(|(tp, p)| (tp, p.clone()))
            .collect()
    }

    pub(crate) fn partition(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.partitions.borrow().get(tp).cloned()
    }

    fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        partition_dir(&self.config.data_dir, &tp.topic, tp.partition)
    }

    /// Runs `items` on their owner shards (locally or over the mesh) and
    /// returns the outcomes in the order of `items`.
    pub async fn scatter<I: 'static, O: Clone + 'static>(
        self: &Rc<Self>,
        items: Vec<I>,
        tp_of: fn(&I) -> &TopicPartition,
        local: fn(Rc<Shard>, Vec<I>) -> LocalFuture<O>,
        remote: fn(Vec<I>, oneshot::Sender<Vec<O>>) -> ShardMsg,
        unreachable: O,
    ) -> Vec<O> {
        self.scatter_now(items, tp_of, local, remote, unreachable)
            .await
    }

    /// [`Shard::scatter`], with each owner's call made (its local future
    /// created, its message built) before this returns, so what the calls
    /// capture is in place at once; only the sending and the answers wait.
    pub fn scatter_now<I: 'static, O: Clone + 'static>(
        self: &Rc<Self>,
        items: Vec<I>,
        tp_of: fn(&I) -> &TopicPartition,
        mut local: impl FnMut(Rc<Shard>, Vec<I>) -> LocalFuture<O>,
        mut remote: impl FnMut(Vec<I>, oneshot::Sender<Vec<O>>) -> ShardMsg,
        unreachable: O,
    ) -> impl Future<Output = Vec<O>> {
        // Usually one owner holds them all (one shard, or a request that
        // names one partition): its answer is the answer, in order, and
        // no item or outcome is moved between vectors (a wide fetch has a
        // thousand).
        let first = items.first().map(|i| self.owner_of(tp_of(i)));
        let single = first.filter(|&o| items.iter().all(|i| self.owner_of(tp_of(i)) == o));
        let shards = self.count;
        let mut buckets: Vec<Vec<I>> = (0..shards).map(|_| Vec::new()).collect();
        let mut owners = Vec::new();
        match single {
            Some(owner) => buckets[owner] = items,
            None => {
                owners = items.iter().map(|i| self.owner_of(tp_of(i))).collect();
                for (item, &owner) in items.into_iter().zip(&owners) {
                    buckets[owner].push(item);
                }
            }
        }
        let mut calls = Vec::new();
        for (owner, items) in buckets.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let count = items.len();
            let fallback = unreachable.clone();
            let call: LocalFuture<O> = if owner == self.id {
                local(self.clone(), items)
            } else {
                let (tx, rx) = oneshot::channel();
                let message = remote(items, tx);
                let shard = self.clone();
                Box::pin(async move {
                    if shard.mesh.send_to(owner, message).await.is_err() {
                        return vec![fallback; count];
                    }
                    rx.await.unwrap_or_else(|_| vec![fallback; count])
                })
            };
            calls.push(async move { (owner, count, call.await) });
        }
        async move {
            let answers = futures::future::join_all(calls).await;
            for (_, count, outcomes) in &answers {
                assert_eq!(*count, outcomes.len(), "one outcome per item");
            }
            if single.is_some() {
                return answers.into_iter().next().map(|a| a.2).unwrap_or_default();
            }
            // Each owner answers its items in their order: the answer
            // takes the next of each item's owner.
            let mut by_owner: Vec<Option<std::vec::IntoIter<O>>> =
                (0..shards).map(|_| None).collect();
            for (owner, _, outcomes) in answers {
                by_owner[owner] = Some(outcomes.into_iter());
            }
            owners
                .iter()
                .map(|&owner| {
                    by_owner[owner]
                        .as_mut()
                        .and_then(Iterator::next)
                        .expect("every item answered")
                })
                .collect()
        }
    }

    /// Serves messages from one peer shard until it goes away. Topic
    /// snapshots apply in order; partition work runs as its own task so a
    /// long fsync or wait does not hold up the queue.
    pub async fn serve_peer(self: Rc<Self>, receiver: MeshReceiver<ShardMsg>) {
        while let Some(msg) = receiver.recv().await {
            match msg {
                ShardMsg::Topics { topics, reply } => {
                    self.apply_topics(topics).await;
                    let _ = reply.send(());
                }
                msg => {
                    let shard = self.clone();
                    let quota =
                        std::time::Duration::from_micros(shard.config.task_quota_us.max(100));
                    crate::runtime::spawn_serving(quota, async move { shard.handle(msg).await })
                        .detach();
                }
            }
        }
    }

    async fn handle(self: Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Produce {
                items,
                reply,
                appended,
            } => {
                let _ = reply.send(produce::produce(self, items, appended).await);
            }
            ShardMsg::Read { items, reply } => {
                let _ = reply.send(ops::read(self, items).await);
            }
            ShardMsg::WaitForAppend { items, reply } => {
                ops::wait_for_append(self, items, reply).await
            }
            ShardMsg::ListOffsets { items, reply } => {
                let _ = reply.send(ops::list_offsets(self, items).await);
            }
            ShardMsg::Topics { topics, reply } => {
                self.apply_topics(topics).await;
                let _ = reply.send(());
            }
            ShardMsg::Admin { op, reply } => {
                let _ = reply.send(self.admin_local(op).await);
            }
            ShardMsg::ProducerIdBlock { reply } => {
                let _ = reply.send(self.allocate_producer_id_block().await);
            }
            ShardMsg::DescribeProducers { items, reply } => {
                let _ = reply.send(ops::describe_producers(self, items).await);
            }
            ShardMsg::OffsetForLeaderEpoch { items, reply } => {
                let _ = reply.send(ops::offsets_for_leader_epoch(self, items).await);
            }
            ShardMsg::DeleteRecords { items, reply } => {
                let _ = reply.send(log_start::delete_records(self, items).await);
            }
            ShardMsg::ReplicaSizes { reply } => {
                let _ = reply.send(self.own_replica_sizes());
            }
            ShardMsg::WriteTxnMarkers { items, reply } => {
                let _ = reply.send(ops::write_txn_markers(self, items).await);
            }
            ShardMsg::TxnVerificationPoints { items, reply } => {
                let _ = reply.send(ops::txn_verification_points(self, items).await);
            }
        }
    }

    /// Makes `topics` this shard's snapshot: opens logs for partitions it
    /// now owns, drops and removes logs of deleted or recreated topics,
    /// hands changed configs to the logs, settles each partition's role
    /// (leader, follower), and tells the observer (fetchers follow).
    ///
    /// Opening a log creates a directory and a segment file. That is some 10 µs
    /// on an idle ext4, but each create can wait on the journal, and a topic
    /// may have thousands of partitions: done in one go, every socket on the
    /// shard would wait for all of them. So the new logs open one at a time
    /// with a turn for the shard's other tasks after each; the snapshot
    /// becomes this shard's (and its topics visible) once all are open.
    pub async fn apply_topics(self: &Rc<Self>, topics: Arc<Topics>) {
        let _applying = self.applying.lock().await;
        if topics.version < self.topics.borrow().version {
            return;
        }
        self.drop_stale_partitions(&topics).await;
        let mut now_led = Vec::new();
        let mut opening = Vec::new();
        let mut examined = 0usize;
        self.topic_names.borrow_mut().start_round();
        for topic in topics.topics.values() {
            let log_config = topic
                .parsed(&self.config, &topics.broker_configs)
                .log
                .clone();
            let name = self.topic_names.borrow_mut().intern(&topic.name);
            for partition in 0..topic.partitions {
                // Every partition of every topic is looked at again for each
                // snapshot: with this pass and the stale check, creating a
                // topic next to 100,000 partitions held the shard up to
                // 55 ms. A turn for other tasks every so many.
                examined += 1;
                if examined.is_multiple_of(APPLY_PARTITIONS_PER_TURN) {
                    crate::runtime::yield_now().await;
                }
                let tp = TopicPartition {
                    topic: name.clone(),
                    partition,
                };
                if self.owner_of(&tp) != self.id || !topics.hosts(&tp.topic, partition) {
                    continue;
                }
                match self.partition(&tp) {
                    Some(existing) => {
                        existing.log.borrow_mut().set_config(log_config.clone());
                        if self.settle_role(&tp, &existing, &topics) {
                            now_led.push(tp);
                        }
                    }
                    None => opening.push((tp, topic, log_config.clone())),
                }
            }
        }
        self.topic_names.borrow_mut().end_round();
        for (tp, topic, log_config) in opening {
            if let Some(partition) = self.open_partition(&tp, topic, log_config) {
                if self.settle_role(&tp, &partition, &topics) {
                    now_led.push(tp.clone());
                }
                self.partitions.borrow_mut().insert(tp, partition);
            }
            crate::runtime::yield_now().await;
        }
        self.replication_quotas.borrow_mut().set_rates(
            &topics.broker_configs,
            self.config.node_id,
            self.count,
        );
        *self.topics.borrow_mut() = topics;
        if let Some(observer) = self.observer() {
            observer.topics_applied(&now_led);
        }
    }

    /// Opens (or creates) the log of a partition this shard now owns;
    /// `None` when it cannot (logged).
    fn open_partition(
        &self,
        tp: &TopicPartition,
        topic: &crate::metadata::TopicMeta,
        log_config: crate::storage::LogConfig,
    ) -> Option<Rc<Partition>> {
        let dir = self.partition_dir(tp);
        let open = |config| {
            PartitionLog::open_owned(
                dir.clone(),
                config,
                self.start.clean,
                &self.file_handles,
                &topic.id,
            )
        };
        let opened = match open(log_config.clone()) {
            Err(StorageError::OtherOwner { found, .. }) => {
                // A topic deleted and created again under the name while
                // this node was down: the old one's files go, and the new
                // one starts from an empty log, as a new replica does.
                tracing::warn!(topic = %tp.topic, partition = tp.partition, old_topic_id = %found, topic_id = %topic.id, "the directory holds a deleted topic's log; removing it");
                graveyard::bury(&dir, &found);
                open(log_config)
            }
            opened => opened,
        };
        let mut log = match opened {
            Ok(log) => log,
            Err(e) => {
                tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "cannot open partition log");
                return None;
            }
        };
        let stored = self
            .start
            .high_watermarks
            .get(&tp.topic, tp.partition, &topic.id);
        if let Some(hw) = stored {
            log.restore_high_watermark(hw);
        }
        Some(Rc::new(Partition {
            log: RefCell::new(log),
            role: RefCell::new(crate::replication::Role::Offline { leader_epoch: -1 }),
            appended: Event::default(),
            topic_moved: self.topic_event(&tp.topic),
            written: Event::default(),
            acks_waiting: Cell::new(0),
            topic_id: Arc::from(topic.id.as_str()),
            instance: next_instance(),
            read_state: Cell::new(None),
            traffic: crate::stats::topic_traffic(&tp.topic),
        }))
    }

    /// The event the partitions of `topic` on this shard share (see
    /// `Partition::topic_moved`): any held one's, else a new one.
    fn topic_event(&self, topic: &str) -> Rc<Event> {
        match self.partitions.borrow().any_of(topic) {
            Some(sibling) => sibling.topic_moved.clone(),
            None => Rc::default(),
        }
    }

    /// The partitions this shard holds that `topics` no longer gives it
    /// (deleted, recreated under a new id, or hosted elsewhere now), looked
    /// at with a turn for other tasks every so many.
    async fn stale_partitions(&self, topics: &Topics) -> Vec<TopicPartition> {
        let held: Vec<(TopicPartition, Arc<str>)> = self
            .partitions
            .borrow()
            .iter()
            .map(|(tp, p)| (tp.clone(), p.topic_id.clone()))
            .collect();
        let mut stale = Vec::new();
        for chunk in held.chunks(APPLY_PARTITIONS_PER_TURN) {
            for (tp, topic_id) in chunk {
                let gone = topics
                    .get(&tp.topic)
                    .is_none_or(|t| *t.id != **topic_id || tp.partition >= t.partitions)
                    || !topics.hosts(&tp.topic, tp.partition);
                if gone {
                    stale.push(tp.clone());
                }
            }
            crate::runtime::yield_now().await;
        }
        stale
    }

    async fn drop_stale_partitions(&self, topics: &Topics) {
        let stale = self.stale_partitions(topics).await;
        let mut graveyards = Vec::new();
        for tp in stale {
            let Some(partition) = self.partitions.borrow_mut().remove(&tp) else {
                continue;
            };
            // Its files go with it: nothing to sync or write.
            partition.log.borrow_mut().discard();
            partition.notify_moved();
            // Renamed away at once so a recreated topic starts from an empty
            // directory; removed in the background. Fetches still sending
            // from its files keep their open handles.
            let dir = self.partition_dir(&tp);
            graveyards.extend(graveyard::into_graveyard(&dir, &partition.topic_id));
            // Each rename is a journal update: thousands in a row held the
            // shard ~85 ms on ext4. A turn for other tasks after each.
            crate::runtime::yield_now().await;
        }
        if !graveyards.is_empty() {
            crate::runtime::spawn_local(graveyard::remove_all(graveyards)).detach();
        }
    }

    /// Closes every log this shard owns: flushed, indexes written, high
    /// watermarks checkpointed. False if one did not close whole (a full
    /// disk): the next start must not take the logs as cleanly shut down.
    /// A checkpoint that fails leaves the last one, lower, so safe.
    ///
    /// The logs close as a group, with two filesystem syncs in all rather
    /// than several per log ([`crate::storage::GroupClose`]).
    pub fn close_all(&self) -> bool {
        let mut all_closed = true;
        let mut group = crate::storage::GroupClose::default();
        let mut written = Vec::new();
        let started = std::time::Instant::now();
        for (tp, partition) in self.partitions.borrow().iter() {
            match group.write(&mut partition.log.borrow_mut()) {
                Ok(()) => written.push((tp, partition.clone())),
                Err(e) => {
                    tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "closing partition log");
                    all_closed = false;
                }
            }
        }
        let wrote = started.elapsed();
        match group.sync() {
            Ok(synced) => {
                let synced_at = started.elapsed();
                for (tp, partition) in &written {
                    if let Err(e) = synced.seal(&mut partition.log.borrow_mut()) {
                        tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "marking a closed partition log clean");
                        all_closed = false;
                    }
                }
                let sealed = started.elapsed();
                if let Err(e) = synced.finish() {
                    tracing::error!(error = %e, "syncing the closed logs' recovery points");
                    all_closed = false;
                }
                // Where a long stop went (it writes files for every log
                // written since the start): the operator's first question.
                tracing::info!(
                    shard = self.id,
                    logs = written.len(),
                    write_ms = wrote.as_millis() as u64,
                    sync_ms = (synced_at - wrote).as_millis() as u64,
                    seal_ms = (sealed - synced_at).as_millis() as u64,
                    finish_ms = (started.elapsed() - sealed).as_millis() as u64,
                    "closed the logs"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "syncing the closed partition logs");
                all_closed = false;
            }
        }
        self.checkpoint_high_watermarks_inline();
        self.partitions.borrow_mut().clear();
        all_closed
    }

    /// Applies retention to every log this shard owns.
    pub fn apply_retention(&self) {
        let now = crate::runtime::now_ms();
        for (tp, partition) in self.owned_partitions() {
            let mut log = partition.log.borrow_mut();
            match log.apply_retention(now) {
                Ok(deleted) if deleted.is_empty() => {}
                Ok(deleted) => {
                    tracing::info!(topic = %tp.topic, partition = tp.partition, segments = deleted.len(), "retention deleted segments");
                    // The log start moved: fetch sessions that skip an
                    // unchanged partition tell it at their next fetch.
                    let delay_ms = log.config().file_delete_delay_ms;
                    drop(log);
                    partition.notify_moved();
                    unlink_deleted(deleted, delay_ms);
                }
                Err(e) => {
                    if !write_failures::failed_storage("retention", &tp, &e) {
                        tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "retention failed")
                    }
                }
            }
        }
    }

    /// Forgets idempotent producers idle past `producer_id_expiration_ms`
    /// in every log this shard owns.
    pub fn expire_producers(&self) {
        let now = crate::runtime::now_ms();
        let expiration_ms = self.config.producer_id_expiration_ms;
        for (tp, partition) in self.owned_partitions() {
            let expired = partition
                .log
                .borrow_mut()
                .expire_producers(now, expiration_ms);
            if expired > 0 {
                crate::stats::PRODUCERS_EXPIRED.add(expired as u64);
                tracing::debug!(topic = %tp.topic, partition = tp.partition, expired, "expired idle producers");
            }
        }
    }

    /// One bounded compaction step (COMPACTION_PASS_BYTES_MAX) for every
    /// compacted log this shard owns; true if any wants another step soon.
    pub async fn compact_step(&self) -> bool {
        let now = crate::runtime::now_ms();
        let mut more = false;
        let compacted = self
            .owned_partitions()
            .into_iter()
            .filter(|(_, p)| p.log.borrow().config().cleanup_compact);
        for (tp, partition) in compacted {
            let stepped = partition.log.borrow_mut().compact(now);
            let worked = match stepped {
                Ok(stats) => {
                    more |= stats.more_work;
                    compaction_work(&partition).await
                }
                Err(e) => Err(e),
            };
            match worked {
                Ok(more_work) => more |= more_work,
                Err(e) => {
                    if !write_failures::failed_storage("compaction", &tp, &e) {
                        tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "compaction failed")
                    }
                }
            }
        }
        more
    }
}

/// Runs the piece of work `partition`'s compaction round waits for, if
/// any (a key scan, a rewrite step, a sync), on a blocking thread, and hands the answer
/// back to the log.
async fn compaction_work(partition: &Rc<Partition>) -> Result<bool, StorageError> {
    let budget = crate::storage::COMPACTION_PASS_BYTES_MAX;
    let Some(work) = partition.log.borrow_mut().take_compaction_work(budget)? else {
        return Ok(false);
    };
    let done = crate::runtime::blocking(move || work.run()).await;
    let stats = partition.log.borrow_mut().finish_compaction_work(done)?;
    Ok(stats.more_work)
}

/// Deletions waiting out their `file.delete.delay.ms` on one shard, at
/// most: past it a deletion unlinks at once (a log shedding segments that
/// fast has no use for the delay's grace).
const DELAYED_UNLINKS_MAX: usize = 10_000;

thread_local! {
    /// Deletions of this shard waiting out their delay.
    static DELAYED_UNLINKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Unlinks segments already out of their log `delay_ms` later (Kafka's
/// `file.delete.delay.ms`; their files wait renamed to `.deleted`, and a
/// start removes what a stop left), on the blocking thread: unlinking
/// (and closing) a large cached file is slow. Their cached handles close
/// at once; reads in flight hold their own.
fn unlink_deleted(mut deleted: Vec<crate::storage::DeletedSegment>, delay_ms: i64) {
    let waiting = DELAYED_UNLINKS.with(|n| n.get());
    let delay = if delay_ms > 0 && waiting < DELAYED_UNLINKS_MAX {
        DELAYED_UNLINKS.with(|n| n.set(waiting + 1));
        Some(std::time::Duration::from_millis(delay_ms as u64))
    } else {
        None
    };
    crate::runtime::spawn_local(async move {
        if let Some(delay) = delay {
            let handles: Vec<_> = deleted.iter_mut().filter_map(|d| d.take_file()).collect();
            crate::runtime::blocking(move || drop(handles)).await;
            crate::runtime::sleep(delay).await;
            DELAYED_UNLINKS.with(|n| n.set(n.get() - 1));
        }
        crate::runtime::blocking(move || {
            for segment in deleted {
                match segment.remove() {
                    Ok(()) => {}
                    // The partition itself was deleted meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "removing a deleted segment; open removes it later")
                    }
                }
            }
        })
        .await;
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::build::build_simple_batch;

    fn partition_in(dir: &std::path::Path) -> Partition {
        let log = PartitionLog::open_in(
            dir.join("t-0"),
            crate::storage::LogConfig::default(),
            true,
            &crate::storage::FileHandles::new(4),
        )
        .unwrap();
        Partition {
            log: RefCell::new(log),
            role: RefCell::new(crate::replication::Role::Solo),
            appended: Event::default(),
            topic_moved: Rc::default(),
            written: Event::default(),
            acks_waiting: Cell::new(0),
            topic_id: Arc::from("id"),
            instance: next_instance(),
            read_state: Cell::new(None),
            traffic: Arc::default(),
        }
    }

    /// What a consumer read is told moves with every notified change, not
    /// only with the first read's.
    #[test]
    fn read_state_follows_each_notified_change() {
        let tmp = tempfile::tempdir().unwrap();
        let partition = partition_in(tmp.path());
        let told = |p: &Partition| {
            let s = p.read_state();
            (s.high_watermark, s.last_stable_offset, s.log_start_offset)
        };
        assert_eq!(told(&partition), (0, 0, 0));
        for (round, end) in [(0i64, 3i64), (3, 5)] {
            let mut log = partition.log.borrow_mut();
            log.append(
                &build_simple_batch(round, (end - round) as usize, 1000),
                1000,
            )
            .unwrap();
            log.set_high_watermark(end);
            drop(log);
            partition.notify_moved();
            assert_eq!(told(&partition), (end, end, 0), "after the append to {end}");
        }
        // A high watermark moved back (a new leader's may lag) is told too.
        partition.log.borrow_mut().set_high_watermark(4);
        partition.notify_moved();
        assert_eq!(told(&partition), (4, 4, 0));
    }

    #[test]
    fn a_topic_keeps_one_name_across_snapshots_while_it_exists() {
        let mut names = TopicNames::default();
        names.start_round();
        let a = names.intern("a");
        assert!(Arc::ptr_eq(&a, &names.intern("a")), "one per snapshot");
        names.intern("b");
        names.end_round();
        names.start_round();
        assert!(
            Arc::ptr_eq(&a, &names.intern("a")),
            "kept from the last one"
        );
        names.end_round();
        assert_eq!(names.current.len(), 1, "b is gone");
        names.start_round();
        names.end_round();
        assert!(names.current.is_empty() && names.previous.is_empty());
    }
}

//! Transaction coordinators: each shard coordinates the transactional ids
//! whose `__transaction_state` partition it owns, as Kafka's
//! TransactionCoordinator does for the partitions it leads.
//!
//! An id's partition is Kafka's `abs(hashCode(id)) % partitions`; its
//! *coordinator shard* is that partition's owner, so every state change is
//! appended (acks=all) to a log the coordinator owns, before it is applied
//! and answered. Only the coordinator shard touches an id's state: requests
//! reaching another shard travel over the coordinators' own mesh and are
//! answered through the oneshot inside the [`TxnMsg`].
//!
//! The topic is created on the first transactional request (and replayed
//! when a shard starts and finds it), so transactional state survives
//! restarts. A transaction that ends goes Ongoing -> Prepare* (persisted,
//! answered) -> markers on every partition (`markers.rs`) -> Complete*
//! (persisted). A per-shard loop (`timeouts.rs`) aborts transactions open past their
//! timeout, finishes Prepare* ones whose markers were not all written, and
//! forgets ids idle past `transactional_id_expiration_ms` (tombstones).

mod load;
pub use load::load_led;
mod markers;
pub mod records;
pub mod state;
mod timeouts;
mod verify;
pub use verify::verify;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;

use crate::metadata::owner_shard;
use crate::record::build::RecordSpec;
use crate::runtime::{Mesh, MeshReceiver};
use crate::shard::{ProduceItem, Shard, TopicPartition};

pub use load::load_at_start;
pub use state::{TxnError, TxnMetadata, TxnState};

/// Kafka's internal topic for transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";

/// A transactional request on its way to the id's coordinator shard.
pub enum TxnMsg {
    InitProducerId {
        transactional_id: String,
        timeout_ms: i32,
        /// v3+: the (producer id, epoch) the client has, if any (KIP-360).
        expected: Option<(i64, i16)>,
        reply: oneshot::Sender<Result<(i64, i16), TxnError>>,
    },
    /// AddPartitionsToTxn (also AddOffsetsToTxn's offsets partition);
    /// `verify_only` asks whether each is in the open transaction.
    AddPartitions {
        transactional_id: String,
        producer: (i64, i16),
        partitions: Vec<TopicPartition>,
        verify_only: bool,
        reply: oneshot::Sender<Result<Vec<bool>, TxnError>>,
    },
    /// Answered with the producer id and epoch the producer goes on with
    /// (transaction version 2 moves them; else the request's).
    End {
        transactional_id: String,
        producer: (i64, i16),
        commit: bool,
        /// EndTxn v5+: transaction version 2's rules (an epoch bump).
        bump_epoch: bool,
        reply: oneshot::Sender<Result<(i64, i16), TxnError>>,
    },
    Describe {
        transactional_id: String,
        reply: oneshot::Sender<Result<TxnMetadata, TxnError>>,
    },
    /// Sent to every shard: the ids it coordinates that pass the filter.
    List {
        filter: ListFilter,
        reply: oneshot::Sender<Result<Vec<Listed>, TxnError>>,
    },
}

impl TxnMsg {
    /// The transactional id a request is about; `None` for List.
    fn transactional_id(&self) -> Option<&str> {
        match self {
            TxnMsg::InitProducerId {
                transactional_id, ..
            }
            | TxnMsg::AddPartitions {
                transactional_id, ..
            }
            | TxnMsg::End {
                transactional_id, ..
            }
            | TxnMsg::Describe {
                transactional_id, ..
            } => Some(transactional_id),
            TxnMsg::List { .. } => None,
        }
    }

    /// Answers the request with `e` without serving it.
    fn refuse(self, e: TxnError) {
        match self {
            TxnMsg::InitProducerId { reply, .. } => drop(reply.send(Err(e))),
            TxnMsg::AddPartitions { reply, .. } => drop(reply.send(Err(e))),
            TxnMsg::End { reply, .. } => drop(reply.send(Err(e))),
            TxnMsg::Describe { reply, .. } => drop(reply.send(Err(e))),
            TxnMsg::List { reply, .. } => drop(reply.send(Err(e))),
        }
    }
}

/// ListTransactions' filters; empty lists and a negative duration filter
/// nothing.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Names as sent; a name that is no state matches nothing.
    pub states: Vec<String>,
    pub producer_ids: Vec<i64>,
    /// v1: only transactions running longer than this (ms).
    pub duration_ms: i64,
}

impl ListFilter {
    /// Kafka's shouldInclude.
    pub fn includes(&self, m: &TxnMetadata, now: i64) -> bool {
        if m.state == TxnState::Dead {
            return false;
        }
        if !self.producer_ids.is_empty() && !self.producer_ids.contains(&m.producer_id) {
            return false;
        }
        if !self.states.is_empty() && !self.states.iter().any(|s| s == m.state.name()) {
            return false;
        }
        !(self.duration_ms >= 0 && now.saturating_sub(m.txn_start_ms) <= self.duration_ms)
    }
}

/// One row of ListTransactions.
#[derive(Clone, Debug)]
pub struct Listed {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

/// One transactional id as its coordinator holds it.
struct Entry {
    meta: TxnMetadata,
    /// The state a write in flight moves to; while set, other requests get
    /// CONCURRENT_TRANSACTIONS (Kafka's pendingState).
    pending: Option<TxnState>,
}

/// The transactional ids one shard coordinates: this core's transaction
/// service, above its shard (whose `__transaction_state` partitions it
/// writes through `Shard::produce`, and whose markers it writes through
/// `Shard::write_txn_markers`). Owned by that core alone; the other cores
/// reach it over its own mesh of [`TxnMsg`]s.
pub struct Coordinator {
    shard: Rc<Shard>,
    mesh: Mesh<TxnMsg>,
    txns: RefCell<HashMap<String, Entry>>,
    /// The partitions of `__transaction_state` loaded here, with the leader
    /// epoch they were loaded at: one this broker leads again after a
    /// leadership move is loaded afresh from its log.
    loaded: RefCell<std::collections::BTreeMap<i32, i32>>,
    /// The tick loop runs (from the first load on).
    ticking: Cell<bool>,
    /// A load (topic creation and replay) is running.
    loading: Cell<bool>,
    /// How markers reach other brokers: the inter-broker TLS and SASL.
    dialer: Arc<crate::net::client::Security>,
    /// Connections to other brokers' coordinators, for verifications.
    verifiers: crate::net::client::KeptConnections,
}

impl Coordinator {
    pub fn new(
        shard: Rc<Shard>,
        mesh: Mesh<TxnMsg>,
        dialer: Arc<crate::net::client::Security>,
    ) -> Coordinator {
        Coordinator {
            verifiers: verify::connections(shard.config.node_id),
            shard,
            mesh,
            dialer,
            txns: RefCell::default(),
            loaded: RefCell::default(),
            ticking: Cell::default(),
            loading: Cell::default(),
        }
    }

    /// The shard this coordinator writes through.
    pub fn shard(&self) -> &Rc<Shard> {
        &self.shard
    }

    /// Serves transactional requests from one peer core until it goes
    /// away, each as its own task so a slow write does not hold up the
    /// queue.
    pub async fn serve_peer(self: Rc<Self>, receiver: MeshReceiver<TxnMsg>) {
        while let Some(msg) = receiver.recv().await {
            let coord = self.clone();
            let quota = std::time::Duration::from_micros(self.shard.config.task_quota_us.max(100));
            crate::runtime::spawn_serving(quota, serve(coord, msg)).detach();
        }
    }
}

/// Partitions of `__transaction_state`: the topic's, or the configured
/// count it will be created with.
fn partition_count(shard: &Shard) -> i32 {
    shard
        .topics()
        .get(TXN_TOPIC)
        .map_or(shard.config.transaction_state_num_partitions, |t| {
            t.partitions
        })
}

/// The partition of `__transaction_state` that holds `transactional_id`.
pub fn txn_partition(shard: &Shard, transactional_id: &str) -> i32 {
    crate::metadata::java_hash_partition(transactional_id, partition_count(shard))
}

/// The shard that coordinates `transactional_id`.
pub fn coordinator_shard(shard: &Shard, transactional_id: &str) -> usize {
    owner_shard(
        TXN_TOPIC,
        txn_partition(shard, transactional_id),
        shard.count,
    )
}

/// Kafka refuses empty transactional ids; ours must also fit the
/// i16-length string of the topic's key.
pub fn valid_transactional_id(id: &str) -> bool {
    !id.is_empty() && crate::group::fits_record(id)
}

/// How long a transaction state write may wait for the ISR of its
/// `__transaction_state` partition (Kafka's request.timeout.ms there).
const TXN_LOG_WRITE_TIMEOUT_MS: u64 = 30_000;

/// Hands `msg` to the coordinator shard of `transactional_id`. If that
/// shard is gone, `msg` (and its reply sender) is dropped and the asker
/// answers COORDINATOR_NOT_AVAILABLE.
pub async fn route(coord: &Rc<Coordinator>, transactional_id: &str, msg: TxnMsg) {
    let shard = &coord.shard;
    if coordinated_elsewhere(shard, transactional_id) {
        // Another broker coordinates it; the dropped `msg` answers a
        // retriable coordinator error and the client looks it up again.
        return;
    }
    let target = coordinator_shard(shard, transactional_id);
    send(coord, target, msg).await;
}

/// Whether another broker leads `transactional_id`'s partition of
/// `__transaction_state`, and so coordinates it.
fn coordinated_elsewhere(shard: &Shard, transactional_id: &str) -> bool {
    let partition = txn_partition(shard, transactional_id);
    shard.topics().led_elsewhere(TXN_TOPIC, partition)
}

/// Hands `msg` to shard `target`'s coordinator.
pub async fn send(coord: &Rc<Coordinator>, target: usize, msg: TxnMsg) {
    if target == coord.shard.id {
        serve(coord.clone(), msg).await;
    } else {
        let _ = coord.mesh.send_to(target, msg).await;
    }
}

/// Runs one transactional request on this (the coordinator) shard.
pub async fn serve(coord: Rc<Coordinator>, msg: TxnMsg) {
    let shard = &coord.shard;
    // Reads do not create the topic: with no topic there is nothing to read.
    let create = !matches!(msg, TxnMsg::Describe { .. } | TxnMsg::List { .. });
    if let Err(e) = load::ensure_loaded(&coord, create).await {
        return msg.refuse(e);
    }
    // The topic's partition count changed under the asker's feet, or it
    // was sent here before `__transaction_state` existed (every broker
    // then answers for itself) and another broker leads its partition now.
    let elsewhere = msg.transactional_id().is_some_and(|id| {
        coordinator_shard(shard, id) != shard.id || coordinated_elsewhere(shard, id)
    });
    if elsewhere {
        return msg.refuse(TxnError::NotCoordinator);
    }
    let now = crate::runtime::now_ms();
    match msg {
        TxnMsg::InitProducerId {
            transactional_id,
            timeout_ms,
            expected,
            reply,
        } => {
            let r = init_producer_id(&coord, &transactional_id, timeout_ms, expected).await;
            let _ = reply.send(r);
        }
        TxnMsg::AddPartitions {
            transactional_id,
            producer,
            partitions,
            verify_only,
            reply,
        } => {
            let r = add_partitions(
                &coord,
                &transactional_id,
                producer,
                &partitions,
                verify_only,
            )
            .await;
            let _ = reply.send(r);
        }
        TxnMsg::End {
            transactional_id,
            producer,
            commit,
            bump_epoch,
            reply,
        } => {
            let r = end_txn(&coord, &transactional_id, producer, commit, bump_epoch).await;
            let _ = reply.send(r);
        }
        TxnMsg::Describe {
            transactional_id,
            reply,
        } => {
            let _ = reply.send(describe(&coord, &transactional_id));
        }
        TxnMsg::List { filter, reply } => {
            let _ = reply.send(Ok(list(&coord, &filter, now)));
        }
    }
}

fn describe(coord: &Coordinator, id: &str) -> Result<TxnMetadata, TxnError> {
    match coord.txns.borrow().get(id) {
        Some(e) if e.meta.state != TxnState::Dead => Ok(e.meta.clone()),
        _ => Err(TxnError::UnknownId),
    }
}

fn list(coord: &Coordinator, filter: &ListFilter, now: i64) -> Vec<Listed> {
    coord
        .txns
        .borrow()
        .iter()
        .filter(|(_, e)| filter.includes(&e.meta, now))
        .map(|(id, e)| Listed {
            transactional_id: id.clone(),
            producer_id: e.meta.producer_id,
            state: e.meta.state,
        })
        .collect()
}

async fn init_producer_id(
    coord: &Rc<Coordinator>,
    id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> Result<(i64, i16), TxnError> {
    let shard = &coord.shard;
    if timeout_ms <= 0 || timeout_ms > shard.config.transaction_max_timeout_ms {
        return Err(TxnError::InvalidTimeout);
    }
    let mut fresh = None;
    // At most two rounds: the second has the fresh producer id the first
    // found it needs.
    for _ in 0..2 {
        let now = crate::runtime::now_ms();
        let decision = {
            let mut txns = coord.txns.borrow_mut();
            if !txns.contains_key(id) {
                if txns.len() >= shard.config.transactional_ids_per_shard_max {
                    return Err(TxnError::Full);
                }
                if let Some(pid) = fresh.take() {
                    let entry = Entry {
                        meta: TxnMetadata::new(pid, timeout_ms, now),
                        pending: None,
                    };
                    txns.insert(id.to_string(), entry);
                }
            }
            match txns.get(id) {
                None => Err(TxnError::NeedProducerId),
                Some(e) => state::init(
                    &e.meta,
                    e.pending.is_some(),
                    timeout_ms,
                    expected,
                    fresh,
                    now,
                ),
            }
        };
        match decision {
            Err(TxnError::NeedProducerId) => {
                let pid = shard.new_producer_id().await.map_err(|e| {
                    tracing::warn!(error = %e, "no producer id for a transactional id");
                    TxnError::NotAvailable
                })?;
                fresh = Some(pid);
            }
            Err(e) => return Err(e),
            Ok(state::InitDecision::Bump(next)) => {
                let answer = (next.producer_id, next.producer_epoch);
                write(coord, id, next, TxnState::Empty).await?;
                return Ok(answer);
            }
            Ok(state::InitDecision::FenceAndAbort(next)) => {
                let next = fencing_abort(shard, next);
                write(coord, id, next, TxnState::PrepareEpochFence).await?;
                crate::runtime::spawn_local(finish(coord.clone(), id.to_string())).detach();
                // The client retries, and its retry bumps the epoch again.
                return Err(TxnError::Concurrent);
            }
        }
    }
    Err(TxnError::NotAvailable)
}

/// The PrepareAbort that fences an open transaction's producer (on an
/// InitProducerId, or past its timeout): one epoch bump, and one more
/// under transaction version 2, as Kafka's coordinator does at the
/// cluster's level.
fn fencing_abort(shard: &Shard, fenced: TxnMetadata) -> TxnMetadata {
    if shard.config.transaction_version.level() >= 2 {
        fenced.bumped_at_end()
    } else {
        fenced
    }
}

/// AddPartitionsToTxn: whether each partition is (now) in the transaction.
async fn add_partitions(
    coord: &Rc<Coordinator>,
    id: &str,
    producer: (i64, i16),
    partitions: &[TopicPartition],
    verify_only: bool,
) -> Result<Vec<bool>, TxnError> {
    let shard = &coord.shard;
    let next = {
        let txns = coord.txns.borrow();
        let e = txns.get(id).ok_or(TxnError::IdMapping)?;
        let pending = e.pending.is_some();
        if verify_only {
            return state::verify_partitions(&e.meta, pending, producer, partitions);
        }
        let max = shard.config.transaction_partitions_max;
        let now = crate::runtime::now_ms();
        state::add_partitions(&e.meta, pending, producer, partitions, max, now)?
    };
    if let Some(next) = next {
        write(coord, id, next, TxnState::Ongoing).await?;
    }
    Ok(vec![true; partitions.len()])
}

async fn end_txn(
    coord: &Rc<Coordinator>,
    id: &str,
    producer: (i64, i16),
    commit: bool,
    bump_epoch: bool,
) -> Result<(i64, i16), TxnError> {
    let mut fresh = None;
    let next = loop {
        let now = crate::runtime::now_ms();
        let (decision, current) = {
            let txns = coord.txns.borrow();
            let e = txns.get(id).ok_or(TxnError::IdMapping)?;
            let pending = e.pending.is_some();
            let decision = if bump_epoch {
                state::end_v2(&e.meta, pending, producer, commit, fresh, now)
            } else {
                state::end(&e.meta, pending, producer, commit, now)
            };
            (decision, (e.meta.producer_id, e.meta.producer_epoch))
        };
        match decision {
            // Rotating the exhausted epoch's producer id: one more round
            // with a fresh id (the first found it needed one).
            Err(TxnError::NeedProducerId) if fresh.is_none() => {
                fresh = Some(coord.shard.new_producer_id().await.map_err(|e| {
                    tracing::warn!(error = %e, "no producer id for a transactional id");
                    TxnError::NotAvailable
                })?);
            }
            Err(e) => return Err(e),
            // A retry of an end already done: the producer as it is now.
            Ok(None) => return Ok(if bump_epoch { current } else { producer }),
            Ok(Some(next)) => break next,
        }
    };
    let answer = if bump_epoch {
        next.next_producer()
    } else {
        producer
    };
    let prepare = next.state;
    write(coord, id, next, prepare).await?;
    // Kafka answers once the Prepare* is persisted and sends the markers
    // to other brokers after. Here they are local appends, so the answer
    // waits for them (bounded): a producer's next transaction would
    // otherwise meet CONCURRENT_TRANSACTIONS and back off for
    // retry.backoff.ms, which caps a producer at ~10 transactions a second.
    let finishing = crate::runtime::spawn_local(finish(coord.clone(), id.to_string())).detach();
    let _ = crate::runtime::timeout(END_TXN_COMPLETE_WAIT, finishing).await;
    Ok(answer)
}

/// How long EndTxn waits for its markers and Complete* before answering
/// anyway (the completion goes on in the background).
const END_TXN_COMPLETE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Persists `next` for `id` and then makes it the id's state. `pending`
/// names the change for DescribeTransactions' sake and keeps other
/// requests out meanwhile.
async fn write(
    coord: &Rc<Coordinator>,
    id: &str,
    next: TxnMetadata,
    pending: TxnState,
) -> Result<(), TxnError> {
    {
        let mut txns = coord.txns.borrow_mut();
        let e = txns.get_mut(id).ok_or(TxnError::NotAvailable)?;
        if e.pending.is_some() {
            return Err(TxnError::Concurrent);
        }
        e.pending = Some(pending);
    }
    let written = append(coord, id, Some(records::value(&next))).await;
    let mut txns = coord.txns.borrow_mut();
    let e = txns
        .get_mut(id)
        .expect("an id with a write in flight is never removed");
    e.pending = None;
    written?;
    e.meta = next;
    Ok(())
}

/// Writes the markers of `id`'s prepared transaction, then its Complete*.
/// If that cannot finish now (shard stopping, a failed write) the id stays
/// Prepare* and the tick loop or the next load tries again.
async fn finish(coord: Rc<Coordinator>, id: String) {
    let shard = &coord.shard;
    let meta = {
        let mut txns = coord.txns.borrow_mut();
        let Some(e) = txns.get_mut(&id) else { return };
        if !e.meta.state.is_prepare() || e.pending.is_some() {
            return; // finished already, or another task is at it
        }
        let done = e.meta.complete(crate::runtime::now_ms());
        e.pending = Some(done.state);
        e.meta.clone()
    };
    let written = markers::write_all(shard, &coord.dialer, &id, &meta).await;
    if let Some(e) = coord.txns.borrow_mut().get_mut(&id) {
        e.pending = None;
    }
    if !written {
        return;
    }
    let done = meta.complete(crate::runtime::now_ms());
    let state = done.state;
    match write(&coord, &id, done, state).await {
        Ok(()) if state == TxnState::CompleteCommit => crate::stats::TXN_COMMITTED.add(1),
        Ok(()) => crate::stats::TXN_ABORTED.add(1),
        Err(e) => {
            tracing::warn!(transactional_id = %id, error = %e, "completing a transaction; retried later")
        }
    }
}

/// Appends one record for `id` (a value, or a tombstone) to its partition
/// of the topic, which this shard owns, with acks=all.
async fn append(coord: &Rc<Coordinator>, id: &str, value: Option<Vec<u8>>) -> Result<(), TxnError> {
    let shard = &coord.shard;
    let tp = TopicPartition {
        topic: Arc::from(TXN_TOPIC),
        partition: txn_partition(shard, id),
    };
    let key = records::key(id);
    let now = crate::runtime::now_ms();
    let spec: RecordSpec<'_> = (Some(&key[..]), value.as_deref(), now, &[][..]);
    let item = ProduceItem {
        tp,
        records: crate::record::Validated::check(
            crate::record::build::build_batch(0, &[spec]),
            u32::MAX,
        )
        .expect("a batch this coordinator built is valid"),
        acks: -1,
        origin: crate::storage::AppendOrigin::Coordinator,
        timeout_ms: TXN_LOG_WRITE_TIMEOUT_MS,
        txn_verified: None,
    };
    let outcome = shard.produce(vec![item]).await.remove(0);
    if outcome.error != 0 {
        tracing::warn!(
            transactional_id = id,
            error = outcome.error,
            "writing to {TXN_TOPIC}"
        );
        return Err(TxnError::WriteFailed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filter_is_kafkas_should_include() {
        let mut m = TxnMetadata::new(5, 1000, 0);
        m.state = TxnState::Ongoing;
        m.txn_start_ms = 100;
        let all = ListFilter {
            duration_ms: -1,
            ..Default::default()
        };
        assert!(all.includes(&m, 200));
        let by_state = |s: &str| ListFilter {
            states: vec![s.to_string()],
            duration_ms: -1,
            ..Default::default()
        };
        assert!(by_state("Ongoing").includes(&m, 200));
        assert!(!by_state("Empty").includes(&m, 200));
        assert!(!by_state("NoSuchState").includes(&m, 200));
        let by_pid = ListFilter {
            producer_ids: vec![6],
            duration_ms: -1,
            ..Default::default()
        };
        assert!(!by_pid.includes(&m, 200));
        let older_than = |d| ListFilter {
            duration_ms: d,
            ..Default::default()
        };
        assert!(older_than(50).includes(&m, 200));
        assert!(!older_than(100).includes(&m, 200));
        m.state = TxnState::Dead;
        assert!(!all.includes(&m, 200));
    }
}

//! Partition work as the owner shard runs it, and the entry points that
//! route it there.

use std::collections::HashMap;
use std::rc::Rc;

use futures::channel::oneshot;
use kafka_protocol::ResponseError;

use super::*;
use crate::storage::{ProducerError, StorageError};

const NONE: i16 = 0;

fn unknown_partition() -> i16 {
    ResponseError::UnknownTopicOrPartition.code()
}

/// This broker's leading replica of `tp`, checked against the asker's
/// `current_leader_epoch` (-1: unchecked); else the Kafka error code. A
/// partition another broker leads (or this one follows) is answered
/// NOT_LEADER_OR_FOLLOWER, which sends clients back to Metadata.
pub(super) fn led_partition(
    shard: &Shard,
    tp: &TopicPartition,
    current_leader_epoch: i32,
) -> Result<Rc<Partition>, i16> {
    check_led(shard, tp, shard.partition(tp), current_leader_epoch, false)
}

/// [`led_partition`] of the replica already looked up (`found`); with
/// `followers_too` (a consumer's Fetch v11+, KIP-392) a follower replica
/// serves as well, checked against the same epoch.
fn check_led(
    shard: &Shard,
    tp: &TopicPartition,
    found: Option<Rc<Partition>>,
    current_leader_epoch: i32,
    followers_too: bool,
) -> Result<Rc<Partition>, i16> {
    let Some(partition) = found else {
        // Borrowed, not cloned: this runs for every partition of every request.
        let topics = shard.topics.borrow();
        let elsewhere =
            topics.has_partition(&tp.topic, tp.partition) && !topics.leads(&tp.topic, tp.partition);
        return Err(if elsewhere {
            not_leader()
        } else {
            unknown_partition()
        });
    };
    {
        let role = partition.role.borrow();
        let follower = followers_too && matches!(&*role, crate::replication::Role::Follower { .. });
        if !role.is_leader() && !follower {
            return Err(not_leader());
        }
        if let Some(error) = super::replica::check_leader_epoch(&role, current_leader_epoch) {
            return Err(error);
        }
        if follower {
            crate::stats::FETCH_FOLLOWER_READS.add(1);
        }
    }
    Ok(partition)
}

pub(super) fn not_leader() -> i16 {
    ResponseError::NotLeaderOrFollower.code()
}

/// The Kafka error code for a storage failure.
pub fn storage_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::Corrupt(_) => ResponseError::CorruptMessage.code(),
        StorageError::MessageTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        StorageError::Producer(e) => producer_error_code(e),
        StorageError::Io(_) | StorageError::OtherOwner { .. } => {
            ResponseError::KafkaStorageError.code()
        }
        // The replica stopped leading while the append was written.
        StorageError::Superseded => not_leader(),
    }
}

/// The Kafka error code for a refused idempotent or transactional batch.
fn producer_error_code(e: &ProducerError) -> i16 {
    match e {
        // Since Kafka 2.7 a produce with an old epoch gets
        // INVALID_PRODUCER_EPOCH (the client aborts and retries), not the
        // fatal PRODUCER_FENCED.
        ProducerError::InvalidEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
        ProducerError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
        ProducerError::InvalidBatch { .. } | ProducerError::ControlBatch => {
            ResponseError::InvalidRecord.code()
        }
        ProducerError::CoordinatorFenced { .. } => {
            ResponseError::TransactionCoordinatorFenced.code()
        }
    }
}

impl Shard {
    pub async fn produce(self: &Rc<Self>, items: Vec<ProduceItem>) -> Vec<ProduceOutcome> {
        self.produce_ordered(items, None::<fn()>).await
    }

    /// [`Shard::produce`], calling `on_appended` (if any) once every owner
    /// has appended its batches (or failed to), before the acks are waited
    /// for: from then on a later produce's appends come after these.
    /// Without it, no owner is asked to tell.
    pub async fn produce_ordered(
        self: &Rc<Self>,
        items: Vec<ProduceItem>,
        on_appended: Option<impl FnOnce()>,
    ) -> Vec<ProduceOutcome> {
        let signals = std::cell::RefCell::new(Vec::new());
        let wanted = on_appended.is_some();
        let signal = || {
            wanted.then(|| {
                let (tx, rx) = oneshot::channel();
                signals.borrow_mut().push(rx);
                tx
            })
        };
        let produced = self.scatter_now(
            items,
            |i| &i.tp,
            |s, items| Box::pin(super::produce::produce(s, items, signal())),
            |items, reply| ShardMsg::Produce {
                items,
                reply,
                appended: signal(),
            },
            ProduceOutcome {
                error: ResponseError::KafkaStorageError.code(),
                base_offset: -1,
                log_append_time_ms: -1,
                log_start_offset: -1,
            },
        );
        let Some(on_appended) = on_appended else {
            return produced.await;
        };
        // An owner that is gone drops its signal: nothing of it is pending.
        let appended =
            futures::FutureExt::map(futures::future::join_all(signals.take()), |_| on_appended());
        futures::future::join(produced, appended).await.0
    }

    /// Reads each item on its partition's owner, in order: here and now
    /// when this shard owns them all (every read, with one shard), by the
    /// borrowed terms (no [`ReadItem`], so no clone of a topic name, per
    /// partition); otherwise each owner gets its items in a message.
    pub async fn read<'a>(
        self: &Rc<Self>,
        items: impl Iterator<Item = ReadArgs<'a>> + Clone,
    ) -> Vec<ReadOutcome> {
        if self.count == 1 || items.clone().all(|i| self.owner_of(i.tp) == self.id) {
            return self.read_here(items);
        }
        self.scatter(
            items.map(|i| i.to_item()).collect(),
            |i| &i.tp,
            |s, items| Box::pin(read(s, items)),
            |items, reply| ShardMsg::Read { items, reply },
            ReadOutcome::unread(ResponseError::KafkaStorageError.code()),
        )
        .await
    }

    pub async fn list_offsets(self: &Rc<Self>, items: Vec<OffsetQuery>) -> Vec<OffsetOutcome> {
        self.scatter(
            items,
            |i| &i.tp,
            |s, items| Box::pin(list_offsets(s, items)),
            |items, reply| ShardMsg::ListOffsets { items, reply },
            OffsetOutcome {
                error: ResponseError::KafkaStorageError.code(),
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
                old_style_offsets: Vec::new(),
            },
        )
        .await
    }

    /// OffsetForLeaderEpoch on each partition's leader.
    pub async fn offsets_for_leader_epoch(
        self: &Rc<Self>,
        items: Vec<EpochQuery>,
    ) -> Vec<EpochOutcome> {
        self.scatter(
            items,
            |i| &i.tp,
            |s, items| Box::pin(offsets_for_leader_epoch(s, items)),
            |items, reply| ShardMsg::OffsetForLeaderEpoch { items, reply },
            EpochOutcome {
                error: ResponseError::KafkaStorageError.code(),
                leader_epoch: -1,
                end_offset: -1,
            },
        )
        .await
    }

    /// Appends each transaction marker on its partition's owner (Kafka's
    /// WriteTxnMarkers); an error code per item, in order.
    pub async fn write_txn_markers(self: &Rc<Self>, items: Vec<TxnMarkerItem>) -> Vec<i16> {
        self.scatter(
            items,
            |i| &i.tp,
            |s, items| Box::pin(write_txn_markers(s, items)),
            |items, reply| ShardMsg::WriteTxnMarkers { items, reply },
            ResponseError::KafkaStorageError.code(),
        )
        .await
    }

    /// KIP-890's first question for a transactional produce, asked of each
    /// partition's owner: see [`ShardMsg::TxnVerificationPoints`].
    pub async fn txn_verification_points(
        self: &Rc<Self>,
        items: Vec<(TopicPartition, (i64, i16))>,
    ) -> Vec<Result<Option<i64>, i16>> {
        self.scatter(
            items,
            |(tp, _)| tp,
            |s, items| Box::pin(txn_verification_points(s, items)),
            |items, reply| ShardMsg::TxnVerificationPoints { items, reply },
            Err(ResponseError::KafkaStorageError.code()),
        )
        .await
    }

    pub async fn describe_producers(
        self: &Rc<Self>,
        items: Vec<TopicPartition>,
    ) -> Vec<ProducersOutcome> {
        self.scatter(
            items,
            |tp| tp,
            |s, items| Box::pin(describe_producers(s, items)),
            |items, reply| ShardMsg::DescribeProducers { items, reply },
            ProducersOutcome {
                error: ResponseError::KafkaStorageError.code(),
                producers: Vec::new(),
            },
        )
        .await
    }

    /// Resolves when any of `items` moves, on whichever shard owns it, or
    /// any of `held` (partitions of this shard the caller already holds,
    /// with the state it saw) does, with that owner's items that moved
    /// read again at the moment (see [`Woken`]). `None`: an owner went
    /// away mid-wait. The caller bounds the wait. This shard's items are
    /// waited on as they are, borrowed; only another shard's are made
    /// into messages.
    pub async fn wait_for_append<T: WaitItem>(
        self: &Rc<Self>,
        items: Vec<T>,
        held: Vec<(Rc<Partition>, Seen)>,
    ) -> Option<Woken> {
        let mut local = Vec::new();
        let mut by_owner: Vec<Vec<AppendWait>> = (0..self.count).map(|_| Vec::new()).collect();
        for item in items {
            match self.owner_of(item.tp()) {
                owner if owner == self.id => local.push(item),
                owner => by_owner[owner].push(item.into_wait()),
            }
        }
        let mut waits = Vec::new();
        for (owner, items) in by_owner.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            let sent = self
                .mesh
                .send_to(owner, ShardMsg::WaitForAppend { items, reply: tx })
                .await;
            if sent.is_ok() {
                waits.push(futures::FutureExt::map(rx, |answer| {
                    Some(Woken {
                        outcomes: answer.ok()?,
                    })
                }));
            }
        }
        let here = !local.is_empty() || !held.is_empty();
        if waits.is_empty() && !here {
            return None;
        }
        let local_wait = std::pin::pin!(async {
            if !here {
                return futures::future::pending().await;
            }
            let outcomes = wait_and_read(self, &local, held, futures::future::pending()).await;
            Some(Woken {
                outcomes: outcomes.expect("a wait of its own is never given up"),
            })
        });
        // Dropping the other receivers cancels those waits on their owners.
        let remote_waits = std::pin::pin!(async {
            if waits.is_empty() {
                return futures::future::pending().await;
            }
            futures::future::select_all(waits).await.0
        });
        match futures::future::select(local_wait, remote_waits).await {
            futures::future::Either::Left((woken, _))
            | futures::future::Either::Right((woken, _)) => woken,
        }
    }
}

impl Shard {
    /// A partition this shard owns and leads, or the error a client's
    /// request of it gets (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION).
    pub fn led_partition(&self, tp: &TopicPartition) -> Result<Rc<Partition>, i16> {
        check_led(self, tp, self.partition(tp), -1, false)
    }

    /// One read of a partition this shard owns, here and now.
    pub fn read_owned(self: &Rc<Self>, item: ReadArgs<'_>) -> ReadOutcome {
        let mut outcomes = self.read_here(std::iter::once(item));
        assert_eq!(outcomes.len(), 1, "one outcome per item");
        outcomes.pop().expect("one outcome")
    }
}

pub async fn read(shard: Rc<Shard>, items: Vec<ReadItem>) -> Vec<ReadOutcome> {
    shard.read_here(items.iter().map(ReadItem::args))
}

impl Shard {
    /// Reads partitions this shard owns, at once, in order.
    fn read_here<'a>(
        self: &Rc<Self>,
        items: impl Iterator<Item = ReadArgs<'a>>,
    ) -> Vec<ReadOutcome> {
        // One clock read for the request: a follower's fetch names every
        // partition it follows, and each records when it fetched.
        let now_ms = crate::runtime::now_ms();
        // Each outcome is written where it stays: a wide fetch reads a
        // thousand partitions, and moving each outcome through the calls
        // (136 bytes, a `memcpy` each way) cost about as much as the read.
        let (least, most) = items.size_hint();
        let mut outcomes = Vec::with_capacity(most.unwrap_or(least));
        // A fetch names a topic's partitions one after another: its name is
        // hashed and compared once for the run, not for each partition.
        // Reads neither add nor remove partitions, so the table stays
        // borrowed throughout.
        let table = self.partitions.borrow();
        let mut run_topic: Option<&Arc<str>> = None;
        let mut slots = None;
        for item in items {
            debug_assert_eq!(self.owner_of(item.tp), self.id, "read on its owner");
            if !run_topic.is_some_and(|topic| Arc::ptr_eq(topic, &item.tp.topic)) {
                run_topic = Some(&item.tp.topic);
                slots = table.topic(&item.tp.topic);
            }
            let found = usize::try_from(item.tp.partition)
                .ok()
                .and_then(|p| slots?.get(p)?.clone());
            outcomes.push(ReadOutcome::unread(NONE));
            let outcome = outcomes.last_mut().expect("just pushed");
            read_found(self, &item, found, now_ms, outcome);
        }
        outcomes
    }
}

fn read_one(shard: &Rc<Shard>, item: &ReadArgs<'_>, now_ms: i64, outcome: &mut ReadOutcome) {
    read_found(shard, item, shard.partition(item.tp), now_ms, outcome);
}

/// [`read_one`] of the partition `found` as `item.tp` (looked up once for
/// both checks below).
fn read_found(
    shard: &Rc<Shard>,
    item: &ReadArgs<'_>,
    found: Option<Rc<Partition>>,
    now_ms: i64,
    outcome: &mut ReadOutcome,
) {
    // Before the leadership check: an unchanged partition's role is
    // unchanged too, and a woken long poll asks again for all it waited on.
    if let Some(seen) = item.unless_unchanged {
        if found.as_ref().is_some_and(|p| p.seen() == seen) {
            outcome.seen = Some(seen);
            outcome.unchanged = true;
            return;
        }
    }
    // A consumer's fetch of v11+ may read a follower too (KIP-392), up to
    // its own high watermark (what it has learned the ISR holds).
    let partition = match check_led(
        shard,
        item.tp,
        found,
        item.current_leader_epoch,
        item.any_replica,
    ) {
        Ok(p) => p,
        Err(code) => {
            outcome.error = code;
            return;
        }
    };
    match item.replica {
        Some(replica) => shard.follower_read(item, replica, &partition, outcome, now_ms),
        None => match item
            .client_rack
            .and_then(|rack| shard.preferred_read_replica(item.offset, &partition, rack))
        {
            Some(replica) => redirect(&partition, replica, outcome),
            None => consumer_read(item, &partition, outcome),
        },
    }
    // Taken after the read, which for a follower may have moved the high
    // watermark: what the outcome says is this state.
    outcome.seen = Some(partition.seen());
}

/// A leader's answer pointing a consumer at `replica` (KIP-392): the
/// partition's offsets and no records, as Kafka answers it.
fn redirect(partition: &Partition, replica: i32, outcome: &mut ReadOutcome) {
    let state = partition.read_state();
    outcome.high_watermark = state.high_watermark;
    outcome.last_stable_offset = state.last_stable_offset;
    outcome.log_start_offset = state.log_start_offset;
    outcome.preferred_read_replica = replica;
    crate::stats::FETCH_READ_REPLICA_REDIRECTS.add(1);
}

/// A consumer's read: up to the high watermark (or the last stable offset
/// for read_committed, or the log end for a coordinator's own load).
fn consumer_read(item: &ReadArgs<'_>, partition: &Partition, outcome: &mut ReadOutcome) {
    // Consumers see only what the ISR has (below the high watermark).
    let state = partition.read_state();
    outcome.high_watermark = state.high_watermark;
    outcome.last_stable_offset = state.last_stable_offset;
    outcome.log_start_offset = state.log_start_offset;
    let visible = if item.committed {
        state.last_stable_offset
    } else {
        state.high_watermark
    };
    if !item.to_log_end && item.offset == visible && visible >= state.log_start_offset {
        // Caught up, as most partitions of a wide fetch are: nothing to
        // read, and no aborted transaction to name (Kafka's
        // emptyFetchDataInfo).
        outcome.aborted = item.committed.then(Vec::new);
        return;
    }
    let log = partition.log.borrow();
    let upper = if item.to_log_end {
        log.log_end_offset()
    } else {
        visible
    };
    match log.read_below(item.offset, item.max_bytes, item.min_one_batch, upper) {
        Ok(plan) => {
            if !item.to_log_end {
                // A coordinator loading its own state is no consumer.
                partition.traffic.consumed(plan.bytes);
            }
            outcome.slices = plan.slices;
            outcome.bytes = plan.bytes;
        }
        Err(e) => outcome.error = storage_error_code(&e),
    }
    if item.committed && outcome.error == NONE {
        let aborted = log.aborted_transactions(item.offset, upper, ABORTED_TXNS_PER_FETCH_MAX);
        outcome.aborted = Some(
            aborted
                .iter()
                .map(|t| (t.producer_id, t.first_offset))
                .collect(),
        );
    }
}

/// Aborted transactions one partition's read_committed fetch names at most;
/// a client meeting more in one response would still skip correctly on
/// its next fetch, which starts past the ones it saw.
pub const ABORTED_TXNS_PER_FETCH_MAX: usize = 10_000;

pub async fn list_offsets(shard: Rc<Shard>, items: Vec<OffsetQuery>) -> Vec<OffsetOutcome> {
    items.into_iter().map(|q| list_offset(&shard, q)).collect()
}

/// Kafka's special ListOffsets timestamps.
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
/// The record with the largest timestamp (ListOffsets v7+, KIP-734).
pub const MAX_TIMESTAMP: i64 = -3;
/// The first offset still on local disk (v8+, KIP-405): without tiered
/// storage every offset is local, so it is the log start, as Kafka answers
/// a topic that does not tier.
pub const EARLIEST_LOCAL: i64 = -4;
/// The last offset copied to tiered storage (v9+, KIP-1005): nothing is,
/// and Kafka answers a topic without remote storage with offset -1.
pub const LATEST_TIERED: i64 = -5;

fn list_offset(shard: &Shard, query: OffsetQuery) -> OffsetOutcome {
    let answer = |error, offset, timestamp| OffsetOutcome {
        error,
        offset,
        timestamp,
        leader_epoch: -1,
        old_style_offsets: Vec::new(),
    };
    let found = if query.any_replica {
        // A follower's own replica will do; one it does not have is
        // answered as led elsewhere or unknown, as for the leader.
        match shard.partition(&query.tp) {
            Some(p) => Ok(p),
            None => check_led(shard, &query.tp, None, -1, false),
        }
    } else {
        led_partition(shard, &query.tp, query.current_leader_epoch)
    };
    let partition = match found {
        Ok(p) => p,
        Err(code) => return answer(code, -1, -1),
    };
    let leader_epoch = partition.role.borrow().leader_epoch();
    let log = partition.log.borrow();
    // A debugging replica reads up to the log end (Kafka asks no isolation
    // level of it); clients only what the ISR has.
    let visible_end = if query.any_replica {
        log.log_end_offset()
    } else {
        log.high_watermark()
    };
    let answer = |error, offset, timestamp| OffsetOutcome {
        error,
        offset,
        timestamp,
        leader_epoch: if error == NONE && offset >= 0 {
            leader_epoch
        } else {
            -1
        },
        old_style_offsets: Vec::new(),
    };
    if let Some(max) = query.max_num_offsets {
        return match log.offsets_before(query.timestamp, max, crate::runtime::now_ms()) {
            Ok(offsets) => OffsetOutcome {
                old_style_offsets: below_high_watermark(offsets, visible_end),
                ..answer(NONE, -1, -1)
            },
            Err(e) => answer(storage_error_code(&e), -1, -1),
        };
    }
    match query.timestamp {
        EARLIEST | EARLIEST_LOCAL => answer(NONE, log.log_start_offset(), -1),
        LATEST_TIERED => answer(NONE, -1, -1),
        LATEST if query.committed => answer(NONE, log.last_stable_offset().min(visible_end), -1),
        LATEST => answer(NONE, visible_end, -1),
        ts if ts >= 0 || ts == MAX_TIMESTAMP => {
            let found = if ts == MAX_TIMESTAMP {
                log.offset_of_max_timestamp()
            } else {
                log.offset_for_timestamp(ts)
            };
            match found {
                // Nothing the asker may not see (a client: what the ISR
                // does not have yet).
                Ok(Some((offset, timestamp))) if offset < visible_end => {
                    answer(NONE, offset, timestamp)
                }
                Ok(_) => answer(NONE, -1, -1),
                Err(e) => answer(storage_error_code(&e), -1, -1),
            }
        }
        _ => answer(ResponseError::InvalidRequest.code(), -1, -1),
    }
}

/// A consumer's ListOffsets v0 array, as Kafka 3.x cut it: offsets past the
/// high watermark give way to the high watermark itself.
fn below_high_watermark(offsets: Vec<i64>, high_watermark: i64) -> Vec<i64> {
    if offsets.iter().all(|&o| o <= high_watermark) {
        return offsets;
    }
    let kept = offsets.into_iter().skip_while(|&o| o > high_watermark);
    std::iter::once(high_watermark).chain(kept).collect()
}

/// Answers `reply` once any listed partition moves from the state its
/// wait names, the partition goes away, or the shard stops, with the
/// listed partitions that moved read again then (see [`Woken`]); an asker
/// that gives up is answered nothing.
pub async fn wait_for_append(
    shard: Rc<Shard>,
    items: Vec<AppendWait>,
    mut reply: oneshot::Sender<Vec<(usize, ReadOutcome)>>,
) {
    let read = wait_and_read(&shard, &items, Vec::new(), reply.cancellation()).await;
    if let Some(outcomes) = read {
        let _ = reply.send(outcomes);
    }
}

/// Parks until one of `items` or of `held` moves from the state its wait
/// names, the partition goes away, or the shard stops, then reads again
/// the items that moved (see [`Woken`]); `None` once `given_up` resolves
/// first.
async fn wait_and_read<T: WaitItem>(
    shard: &Rc<Shard>,
    items: &[T],
    held: Vec<(Rc<Partition>, Seen)>,
    given_up: impl std::future::Future<Output = ()>,
) -> Option<Vec<(usize, ReadOutcome)>> {
    let mut partitions = Vec::with_capacity(items.len() + held.len());
    for item in items {
        let Some(p) = shard.partition(item.tp()) else {
            return Some(read_moved(shard, items, &[]));
        };
        partitions.push((p, item.seen()));
    }
    partitions.extend(held);
    assert!(
        !partitions.is_empty(),
        "a long poll waits on some partition"
    );
    if !park_until_moved(shard, &partitions, given_up).await {
        // An asker that gave up reads nothing.
        return None;
    }
    Some(read_moved(shard, items, &partitions))
}

/// Returns once one of `partitions` is no longer as seen (an append, a
/// high watermark or role move, the partition gone, which notifies it) or
/// the shard stops; `false` if `given_up` resolves first.
async fn park_until_moved(
    shard: &Shard,
    partitions: &[(Rc<Partition>, Seen)],
    given_up: impl std::future::Future<Output = ()>,
) -> bool {
    let mut given_up = std::pin::pin!(given_up);
    let mut parked = None;
    loop {
        // Checked at each turn right before the events' versions are
        // taken: a topic's event says only that one of its partitions
        // moved, maybe none of the waited ones (a partition added since).
        if partitions.iter().any(|(p, seen)| p.seen() != *seen) {
            return true;
        }
        parked.get_or_insert_with(|| crate::stats::FETCHES_PARKED.enter());
        let events = wait_events(partitions);
        // One `Changed` per event, unboxed (it is `Unpin`), under one
        // select: a long poll allocates only these vectors.
        let moved = futures::future::select_all(
            events
                .iter()
                .map(|(event, version)| event.changed_since(*version)),
        );
        let stopping = std::pin::pin!(shard.stopping.changed_since(0));
        let ended = futures::future::select(stopping, given_up.as_mut());
        match futures::future::select(moved, ended).await {
            futures::future::Either::Left(((_, which, _), _)) => {
                if let Some(waited) = events[which].0.since_notify() {
                    crate::stats::FETCH_WAKEUP.observe(waited);
                }
            }
            futures::future::Either::Right((futures::future::Either::Left(_), _)) => return true,
            futures::future::Either::Right((futures::future::Either::Right(_), _)) => return false,
        }
    }
}

/// What a wait on `partitions` waits on, each event with the version it
/// last saw: the shared event of each topic whose partitions on this
/// shard the wait holds all of (one registration for a consumer's
/// thousand partitions of a topic, woken by exactly those), and the
/// partition's own event for every other.
///
/// A topic counts as whole when the wait names as many of its partitions
/// as hold its event (`Rc::strong_count`: only partitions hold it),
/// counted by runs of consecutive partitions (a fetch lists a topic's
/// together; a session's resting ones follow the rest). One with a
/// partition kept alive past its removal is waited on partition by
/// partition. Either way every waited partition's move wakes the wait; a
/// fetch that names a partition twice and leaves another out is woken by
/// that one too, and only parks again.
fn wait_events(partitions: &[(Rc<Partition>, Seen)]) -> Vec<(&Event, u64)> {
    let runs: Vec<&[(Rc<Partition>, Seen)]> = partitions
        .chunk_by(|(a, _), (b, _)| Rc::ptr_eq(&a.topic_moved, &b.topic_moved))
        .collect();
    // Per topic event: partitions named, and whether it is waited on yet.
    let mut topics: HashMap<*const Event, (usize, bool), foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(runs.len(), Default::default());
    for run in &runs {
        topics
            .entry(Rc::as_ptr(&run[0].0.topic_moved))
            .or_default()
            .0 += run.len();
    }
    let mut events = Vec::new();
    for run in runs {
        let topic = &run[0].0.topic_moved;
        let (named, waited) = topics
            .get_mut(&Rc::as_ptr(topic))
            .expect("every run counted");
        if *named != Rc::strong_count(topic) {
            events.extend(run.iter().map(|(p, seen)| (&p.appended, seen.version)));
        } else if !*waited {
            *waited = true;
            events.push((&**topic, topic.version()));
        }
    }
    events
}

/// The waited-on `items` no longer as their waits saw them, read again,
/// each with its place. `handles` are their partitions, in order, as the
/// wait found them (empty: look each one up): a wide long poll is woken
/// by one partition of hundreds, and checking the others through these
/// handles takes no lookup and makes no outcome for them. One that moved
/// is looked up again, as any read is: a partition deleted since (which
/// notifies it) answers as gone.
fn read_moved<T: WaitItem>(
    shard: &Rc<Shard>,
    items: &[T],
    handles: &[(Rc<Partition>, Seen)],
) -> Vec<(usize, ReadOutcome)> {
    assert!(handles.is_empty() || handles.len() >= items.len());
    let now_ms = crate::runtime::now_ms();
    let mut outcomes = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if handles.get(i).is_some_and(|(p, seen)| p.seen() == *seen) {
            continue;
        }
        let mut outcome = ReadOutcome::unread(NONE);
        read_one(shard, &item.read(), now_ms, &mut outcome);
        if !outcome.unchanged {
            outcomes.push((item.place(), outcome));
        }
    }
    outcomes
}

pub async fn describe_producers(
    shard: Rc<Shard>,
    items: Vec<TopicPartition>,
) -> Vec<ProducersOutcome> {
    items
        .iter()
        .map(|tp| match shard.partition(tp) {
            None => ProducersOutcome {
                error: unknown_partition(),
                producers: Vec::new(),
            },
            Some(partition) => ProducersOutcome {
                error: NONE,
                producers: summarize_producers(partition.log.borrow().producers()),
            },
        })
        .collect()
}

pub async fn txn_verification_points(
    shard: Rc<Shard>,
    items: Vec<(TopicPartition, (i64, i16))>,
) -> Vec<Result<Option<i64>, i16>> {
    items
        .iter()
        .map(|(tp, (producer_id, epoch))| {
            let partition = led_partition(&shard, tp, -1)?;
            let log = partition.log.borrow();
            Ok(log.producers().txn_verification_point(*producer_id, *epoch))
        })
        .collect()
}

fn summarize_producers(states: &crate::storage::ProducerStates) -> Vec<ProducerSummary> {
    states
        .entries()
        .into_iter()
        .map(|(producer_id, entry)| ProducerSummary {
            producer_id,
            epoch: entry.epoch,
            last_sequence: entry.last_seq(),
            last_timestamp: entry.last_timestamp,
            coordinator_epoch: entry.coordinator_epoch,
            current_txn_start_offset: entry.current_txn_first_offset.unwrap_or(-1),
        })
        .collect()
}

pub async fn write_txn_markers(shard: Rc<Shard>, items: Vec<TxnMarkerItem>) -> Vec<i16> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(write_txn_marker(&shard, item).await);
    }
    out
}

async fn write_txn_marker(shard: &Shard, item: TxnMarkerItem) -> i16 {
    // After a produce's batches being written off the shard thread: one
    // append at a time, and a marker after the batches it ends.
    if let Some(partition) = shard.partition(&item.tp) {
        partition.write_idle().await;
    }
    let partition = match led_partition(shard, &item.tp, -1) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let leader_epoch = partition.role.borrow().leader_epoch();
    let now = crate::runtime::now_ms();
    let marker = crate::record::Marker {
        commit: item.commit,
        coordinator_epoch: item.coordinator_epoch,
    };
    let batch = crate::record::build_marker(item.producer_id, item.producer_epoch, marker, now);
    let appended = partition.log.borrow_mut().append_marker(&batch, now);
    let result = match appended {
        Ok(r) => r,
        Err(e) => {
            if !super::write_failures::failed_storage("transaction marker", &item.tp, &e) {
                tracing::warn!(topic = %item.tp.topic, partition = item.tp.partition, error = %e, "transaction marker refused");
            }
            return storage_error_code(&e);
        }
    };
    partition.notify_moved();
    super::durability::start_roll_sync(&item.tp, &partition);
    super::replica::advance_high_watermark(&partition);
    if let Some(observer) = shard.observer() {
        observer.txn_marker_written(&item.tp, item.producer_id, item.commit);
    }
    // Markers decide what read_committed consumers see: make them as
    // durable as an acks=all produce.
    let must_sync = result.flush_needed || shard.config.fsync_on_ack;
    if must_sync && !super::durability::flush(&item.tp, &partition).await {
        return ResponseError::KafkaStorageError.code();
    }
    // Kafka writes markers with acks=all: a marker only the old leader had
    // would leave the transaction open on the new one. On a timeout the
    // coordinator retries, and a second marker of an ended transaction is
    // harmless.
    super::replica::wait_replicated(
        shard,
        &partition,
        result.last_offset + 1,
        leader_epoch,
        1,
        MARKER_REPLICATION_TIMEOUT,
    )
    .await
}

/// How long a transaction marker waits for the ISR (Kafka's inter-broker
/// request.timeout.ms, which bounds WriteTxnMarkers).
const MARKER_REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn offsets_for_leader_epoch(
    shard: Rc<Shard>,
    items: Vec<EpochQuery>,
) -> Vec<EpochOutcome> {
    items
        .into_iter()
        .map(|q| offset_for_leader_epoch(&shard, q))
        .collect()
}

/// Kafka's OffsetForLeaderEpoch on the leader: the largest epoch at or
/// below the asked one and the offset where it ended (the log end for the
/// current epoch), so the asker can find where its log diverges.
fn offset_for_leader_epoch(shard: &Shard, query: EpochQuery) -> EpochOutcome {
    let answer = |error, leader_epoch, end_offset| EpochOutcome {
        error,
        leader_epoch,
        end_offset,
    };
    let partition = match led_partition(shard, &query.tp, query.current_leader_epoch) {
        Ok(p) => p,
        Err(code) => return answer(code, -1, -1),
    };
    let log = partition.log.borrow();
    if matches!(*partition.role.borrow(), crate::replication::Role::Solo) {
        // A one-node broker never changes leader: all of it is epoch 0.
        return match query.leader_epoch {
            e if e < 0 => answer(NONE, -1, -1),
            _ => answer(NONE, 0, log.log_end_offset()),
        };
    }
    let (epoch, end_offset) = log.end_offset_for_epoch(query.leader_epoch);
    answer(NONE, epoch, end_offset)
}

#[cfg(test)]
mod tests {
    use super::below_high_watermark;

    /// Kafka 3.x's consumer cut: what the ISR lacks becomes the high
    /// watermark itself, once, at the head of the array.
    #[test]
    fn old_style_offsets_stop_at_the_high_watermark() {
        assert_eq!(below_high_watermark(vec![9, 5, 0], 9), [9, 5, 0]);
        assert_eq!(below_high_watermark(vec![9, 5, 0], 7), [7, 5, 0]);
        assert_eq!(below_high_watermark(vec![9, 8, 5], 5), [5, 5]);
        assert_eq!(below_high_watermark(vec![], 5), [0; 0]);
    }
}

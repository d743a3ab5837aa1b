//! Share groups' delivery (KIP-932): each core's share partitions, for
//! the partitions its shard owns, and the share sessions of the
//! connections it serves.
//!
//! A share partition ([`partition::SharePartition`]) lives on the owner
//! shard of its partition, beside the log it hands out, and only that
//! core touches it: a ShareFetch or ShareAcknowledge reaching another core
//! travels to it as a [`ShareMsg`] over this service's own mesh, like a
//! read. The owner applies the acknowledgements, plans a read from the
//! first record it can acquire, reads the plan's batch headers (headers
//! only), acquires their records and answers with the slices that hold
//! them: record bytes go from the page cache to the socket, as a fetch's.
//!
//! What is durable of a share partition (its start, the ranges past it
//! done with, and those delivered with their delivery counts) is kept by
//! the group's coordinator (`state`): loaded when the leader first serves
//! the group (again after every leadership change), written whenever
//! acknowledgements moved it, before they are answered (a request's
//! partitions in one write). Records in flight at a leadership change are
//! delivered again, their counts going on.
//!
//! A `read_committed` group (its `share.isolation.level`) reads up to the
//! last stable offset, and the records of aborted transactions are
//! archived as they are met ([`aborted`]), never acquired.

mod aborted;
mod held;
pub mod partition;
pub mod remote;
pub mod sessions;
mod state;

use std::cell::RefCell;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use futures::channel::oneshot;
use kafka_protocol::ResponseError;

use crate::group::SHARE_START_UNSET;
use crate::group_configs::ShareStart;
use crate::record::{BatchHeader, BATCH_HEADER_LEN};
use crate::runtime::{Mesh, MeshReceiver};
use crate::shard::{Partition, ReadArgs, Seen, Shard, TopicPartition};
use crate::storage::FileSlice;
use aborted::AbortedWalk;
use held::{Held, Shares};
use partition::{Acquired, BatchSpan, Holds, Limits, SharePartition};

/// One acknowledgement batch of a request.
#[derive(Clone, Debug)]
pub struct AckBatch {
    pub first: i64,
    pub last: i64,
    pub types: Vec<i8>,
}

/// One partition of a ShareFetch or ShareAcknowledge.
#[derive(Clone, Debug)]
pub struct ShareItem {
    pub tp: TopicPartition,
    pub acks: Vec<AckBatch>,
    /// Acquire records too (a ShareFetch that is not the session's last).
    pub fetch: bool,
}

/// A member's request as the owners take it.
#[derive(Clone, Debug)]
pub struct ShareAsk {
    pub group: String,
    pub member: String,
    /// The member opens its share session with this request.
    pub opening: bool,
    pub items: Vec<ShareItem>,
    /// The most records one partition's answer acquires.
    pub max_records: usize,
    /// The most bytes read of one partition (at least a batch is read).
    pub partition_max_bytes: u32,
}

impl ShareAsk {
    /// The same ask of only the items at `places`.
    pub fn only(&self, places: &[usize]) -> ShareAsk {
        ShareAsk {
            group: self.group.clone(),
            member: self.member.clone(),
            opening: self.opening,
            items: places.iter().map(|&i| self.items[i].clone()).collect(),
            max_records: self.max_records,
            partition_max_bytes: self.partition_max_bytes,
        }
    }
}

/// One partition's answer.
#[derive(Debug)]
pub struct ShareOutcome {
    pub error: i16,
    /// The first error of its acknowledgements (0: all applied).
    pub ack_error: i16,
    /// Whole batches holding the acquired records, in offset order.
    pub slices: Vec<FileSlice>,
    pub acquired: Vec<Acquired>,
    /// The partition's state when answered, for a long poll to wait on.
    pub seen: Option<Seen>,
    /// Some acknowledgement applied: the state is written before the answer.
    acked: bool,
}

impl ShareOutcome {
    fn error(code: i16) -> ShareOutcome {
        ShareOutcome {
            error: code,
            ack_error: 0,
            slices: Vec::new(),
            acquired: Vec::new(),
            seen: None,
            acked: false,
        }
    }
}

/// A share request on its way to a partition's owner core.
pub enum ShareMsg {
    Serve {
        ask: ShareAsk,
        reply: oneshot::Sender<Vec<ShareOutcome>>,
    },
    /// The member's share session closed: what it holds there is released.
    Release {
        group: String,
        member: String,
        tps: Vec<TopicPartition>,
    },
}

/// How a group's share partitions deliver: the group's limits, and its
/// isolation.
#[derive(Clone, Copy)]
struct Terms {
    limits: Limits,
    read_committed: bool,
}

/// One core's share partitions and share sessions.
pub struct Service {
    shard: Rc<Shard>,
    mesh: Mesh<ShareMsg>,
    groups: Rc<crate::group::Coordinator>,
    /// How this broker reaches other brokers (their coordinators).
    dialer: std::sync::Arc<crate::net::client::Security>,
    /// Connections to other brokers' group coordinators, for the state.
    state_connections: crate::net::client::KeptConnections,
    partitions: RefCell<Shares>,
    /// The share sessions of the connections this core serves.
    pub sessions: RefCell<sessions::Sessions>,
}

impl Service {
    pub fn new(
        shard: Rc<Shard>,
        mesh: Mesh<ShareMsg>,
        groups: Rc<crate::group::Coordinator>,
        dialer: std::sync::Arc<crate::net::client::Security>,
    ) -> Service {
        let sessions = sessions::Sessions::new(shard.config.group_share_max_share_sessions);
        let partitions = Shares::new(shard.config.share_partitions_per_shard_max);
        Service {
            state_connections: remote::connections(shard.config.node_id),
            shard,
            mesh,
            groups,
            dialer,
            partitions: RefCell::new(partitions),
            sessions: RefCell::new(sessions),
        }
    }

    pub fn shard(&self) -> &Rc<Shard> {
        &self.shard
    }

    /// Serves share requests from one peer core until it goes away.
    pub async fn serve_peer(self: Rc<Self>, receiver: MeshReceiver<ShareMsg>) {
        while let Some(msg) = receiver.recv().await {
            match msg {
                ShareMsg::Serve { ask, reply } => {
                    // Each as its own task in the serving queue, as the
                    // coordinators' messages: a load or a state write of
                    // one must not hold up the others.
                    let service = self.clone();
                    let quota =
                        std::time::Duration::from_micros(self.shard.config.task_quota_us.max(100));
                    crate::runtime::spawn_serving(quota, async move {
                        let _ = reply.send(service.serve_here(&ask).await);
                    })
                    .detach();
                }
                ShareMsg::Release { group, member, tps } => {
                    self.release_here(&group, &member, &tps);
                }
            }
        }
    }

    /// Serves `ask` on each partition's owner; the outcomes in its order.
    /// Here and now when this shard owns them all (every request, with
    /// one shard); otherwise each owner gets its items in a message.
    pub async fn serve(self: &Rc<Self>, ask: &ShareAsk) -> Vec<ShareOutcome> {
        let here = self.shard.id;
        if ask.items.iter().all(|i| self.shard.owner_of(&i.tp) == here) {
            return self.serve_here(ask).await;
        }
        let mut by_owner: Vec<Vec<usize>> = vec![Vec::new(); self.shard.count];
        for (i, item) in ask.items.iter().enumerate() {
            by_owner[self.shard.owner_of(&item.tp)].push(i);
        }
        let mut outcomes: Vec<Option<ShareOutcome>> = ask.items.iter().map(|_| None).collect();
        let asks = by_owner
            .iter()
            .enumerate()
            .filter(|(_, places)| !places.is_empty());
        let answers = futures::future::join_all(asks.map(|(owner, places)| {
            let part = ask.only(places);
            async move {
                if owner == here {
                    return (places, Some(self.serve_here(&part).await));
                }
                let (reply, answer) = oneshot::channel();
                let msg = ShareMsg::Serve { ask: part, reply };
                if self.mesh.send_to(owner, msg).await.is_err() {
                    return (places, None);
                }
                (places, answer.await.ok())
            }
        }))
        .await;
        for (places, answer) in answers {
            let storage = ResponseError::KafkaStorageError.code();
            let mut answer = answer.map(Vec::into_iter);
            for &i in places {
                let outcome = answer.as_mut().and_then(Iterator::next);
                outcomes[i] = Some(outcome.unwrap_or_else(|| ShareOutcome::error(storage)));
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.expect("every item answered"))
            .collect()
    }

    /// Releases what `member` holds in `tps`, on their owners.
    pub async fn release(&self, group: &str, member: &str, tps: Vec<TopicPartition>) {
        let mut by_owner: Vec<Vec<TopicPartition>> = vec![Vec::new(); self.shard.count];
        for tp in tps {
            by_owner[self.shard.owner_of(&tp)].push(tp);
        }
        for (owner, tps) in by_owner.into_iter().enumerate() {
            if tps.is_empty() {
                continue;
            }
            if owner == self.shard.id {
                self.release_here(group, member, &tps);
            } else {
                let msg = ShareMsg::Release {
                    group: group.to_string(),
                    member: member.to_string(),
                    tps,
                };
                let _ = self.mesh.send_to(owner, msg).await;
            }
        }
    }

    fn release_here(&self, group: &str, member: &str, tps: &[TopicPartition]) {
        let limits = self.terms(group).limits;
        let mut partitions = self.partitions.borrow_mut();
        for tp in tps {
            if let Some(held) = partitions.get_mut(group, tp) {
                held.sp.release_member(member, &limits);
            }
        }
    }

    /// `group`'s: its own group configs over the broker's.
    fn terms(&self, group: &str) -> Terms {
        let c = &self.shard.config;
        let settings = self.shard.topics().group_configs.settings(c, group);
        Terms {
            limits: Limits {
                lock_duration_ms: i64::from(settings.share_record_lock_duration_ms),
                delivery_count_limit: settings.share_delivery_count_limit,
                in_flight_max: i64::from(c.group_share_partition_max_record_locks),
            },
            read_committed: settings.share_read_committed,
        }
    }

    /// Serves the items of `ask`, all of partitions this shard owns: the
    /// share partitions not held yet are loaded first, and those whose
    /// acknowledgements applied are written before the answer.
    async fn serve_here(&self, ask: &ShareAsk) -> Vec<ShareOutcome> {
        let led = self.loaded(ask).await;
        let mut outcomes = self.serve_loaded(ask, led);
        // Every state acknowledgements moved, in one write.
        let acked: Vec<usize> = (0..outcomes.len()).filter(|&i| outcomes[i].acked).collect();
        if !acked.is_empty() {
            let tps: Vec<&TopicPartition> = acked.iter().map(|&i| &ask.items[i].tp).collect();
            let codes = self.persist(&ask.group, &tps).await;
            for (i, code) in acked.into_iter().zip(codes) {
                let outcome = &mut outcomes[i];
                if code != 0 && outcome.ack_error == 0 {
                    outcome.ack_error = code;
                }
            }
        }
        outcomes
    }

    /// Serves each item of `ask` whose partition is led here and held
    /// (`led`, from [`Service::loaded`]). Borrows the share partitions for
    /// the whole pass, which never awaits: each is served under one lookup
    /// of its slot.
    fn serve_loaded(
        &self,
        ask: &ShareAsk,
        led: Vec<Result<Rc<Partition>, i16>>,
    ) -> Vec<ShareOutcome> {
        let now_ms = crate::runtime::now_ms();
        let member: Rc<str> = Rc::from(ask.member.as_str());
        let terms = self.terms(&ask.group);
        let mut shares = self.partitions.borrow_mut();
        let mut group = shares.group_mut(&ask.group);
        let serve = |(item, led): (&ShareItem, Result<Rc<Partition>, i16>)| {
            let partition = match led {
                Ok(partition) => partition,
                Err(code) => return ShareOutcome::error(code),
            };
            let Some(held) = group.as_mut().and_then(|g| g.get_mut(&item.tp)) else {
                return ShareOutcome::error(ResponseError::NotLeaderOrFollower.code());
            };
            self.serve_item(ask, (&member, &terms), item, (&partition, held), now_ms)
        };
        ask.items.iter().zip(led).map(serve).collect()
    }

    /// Where `group`'s share partition of `partition` starts when it has
    /// no state: by its `share.auto.offset.reset`, never past what the ISR
    /// holds. A duration finds the first record at least that recent, or
    /// the end when none is (Kafka's `by_duration`).
    fn start_offset(&self, group: &str, partition: &Partition) -> i64 {
        let c = &self.shard.config;
        let state = partition.read_state();
        let end = state.high_watermark.max(0);
        match self
            .shard
            .topics()
            .group_configs
            .settings(c, group)
            .share_start
        {
            ShareStart::Earliest => state.log_start_offset.max(0),
            ShareStart::Latest => end,
            ShareStart::ByDurationMs(ms) => {
                let since = crate::runtime::now_ms().saturating_sub(ms);
                match partition.log.borrow().offset_for_timestamp(since) {
                    Ok(Some((offset, _))) => offset.clamp(state.log_start_offset.max(0), end),
                    Ok(None) => end,
                    Err(e) => {
                        tracing::warn!(group, error = %e, "share start by duration unreadable: the end");
                        end
                    }
                }
            }
        }
    }

    /// The partition of each item of `ask`, led here, with the group's
    /// share partition of it held (the code why not, else). Only the ones
    /// not held yet, or all of them when a member opens its session, wait
    /// on their coordinator; leadership may move meanwhile, so after any
    /// load each is checked again.
    async fn loaded(&self, ask: &ShareAsk) -> Vec<Result<Rc<Partition>, i16>> {
        let led = |tp: &TopicPartition| self.shard.led_partition(tp);
        let mut partitions: Vec<_> = ask.items.iter().map(|i| led(&i.tp)).collect();
        let unloaded: Vec<usize> = {
            let shares = self.partitions.borrow();
            let group = shares.group(&ask.group);
            let needs_load = |&i: &usize| {
                let Ok(p) = &partitions[i] else {
                    return false;
                };
                let leader_epoch = p.role.borrow().leader_epoch();
                let held = group.and_then(|g| g.get(&ask.items[i].tp));
                ask.opening || held.is_none_or(|h| h.leader_epoch != leader_epoch)
            };
            (0..ask.items.len()).filter(needs_load).collect()
        };
        for &i in &unloaded {
            let Ok(p) = &partitions[i] else {
                unreachable!("only partitions led here need a load");
            };
            if let Err(code) = self
                .load(&ask.group, &ask.items[i].tp, p, ask.opening)
                .await
            {
                partitions[i] = Err(code);
            }
        }
        if !unloaded.is_empty() {
            // Leadership may have moved while a load awaited its coordinator.
            for (item, partition) in ask.items.iter().zip(partitions.iter_mut()) {
                if partition.is_ok() {
                    *partition = led(&item.tp);
                }
            }
        }
        for (item, partition) in ask.items.iter().zip(&partitions) {
            if partition.is_err() {
                // Led elsewhere now (or never loaded): a copy here is stale.
                self.partitions.borrow_mut().remove(&ask.group, &item.tp);
            }
        }
        partitions
    }

    /// Makes sure the group's share partition of `partition` (`tp`, led
    /// here) is held here, loaded from its coordinator at the partition's
    /// current leader epoch. With `revalidate` (a member opens a share
    /// session: the first request after an operator's reset, which needs
    /// an empty group, is one) the state epoch of a held copy is checked
    /// against the coordinator's, and a stale copy is loaded again.
    async fn load(
        &self,
        group: &str,
        tp: &TopicPartition,
        partition: &Partition,
        revalidate: bool,
    ) -> Result<(), i16> {
        let leader_epoch = partition.role.borrow().leader_epoch();
        let current = |held: &Held| held.leader_epoch == leader_epoch;
        let snapshot = match state::read(self, group, tp).await {
            Ok(snapshot) => snapshot,
            // The coordinator out of reach (moving, say): a copy held goes
            // on, its writes checked when they reach it.
            Err(_)
                if revalidate && self.partitions.borrow().get(group, tp).is_some_and(current) =>
            {
                return Ok(())
            }
            Err(code) => return Err(code),
        };
        let state_epoch = snapshot.as_ref().map_or(0, |s| s.state_epoch);
        let mut partitions = self.partitions.borrow_mut();
        let unchanged = |held: &Held| current(held) && held.state_epoch >= state_epoch;
        if partitions.get(group, tp).is_some_and(unchanged) {
            return Ok(()); // still the coordinator's, or loaded meanwhile
        }
        let sp = match snapshot {
            Some(snapshot) if snapshot.start != SHARE_START_UNSET => {
                SharePartition::restore(snapshot)
            }
            // Never read, or its state deleted by an operator.
            _ => SharePartition::new(self.start_offset(group, partition)),
        };
        let held = Held {
            leader_epoch,
            state_epoch,
            sp,
            writing: Rc::default(),
            last_used_ms: crate::runtime::now_ms(),
        };
        if !partitions.insert(group, tp, held) {
            tracing::warn!(
                group,
                "share partitions at their most on this shard, all in use"
            );
            return Err(ResponseError::UnknownServerError.code());
        }
        Ok(())
    }

    /// Writes the share partitions' states to their coordinator in one
    /// write, each after its partition's write in flight (whose state may
    /// be older); the code of each.
    async fn persist(&self, group: &str, tps: &[&TopicPartition]) -> Vec<i16> {
        // Each partition's turn is taken in one order, so that two requests
        // never wait on each other, and once for a partition named twice.
        let mut unique: Vec<&TopicPartition> = tps.to_vec();
        unique.sort();
        unique.dedup();
        let codes = self.persist_unique(group, &unique).await;
        tps.iter()
            .map(|tp| codes[unique.binary_search(tp).expect("listed above")])
            .collect()
    }

    /// [`Service::persist`] of distinct partitions, in order.
    async fn persist_unique(&self, group: &str, tps: &[&TopicPartition]) -> Vec<i16> {
        let mut codes = vec![ResponseError::NotLeaderOrFollower.code(); tps.len()];
        let writing: Vec<(usize, Rc<futures::lock::Mutex<()>>)> = {
            let partitions = self.partitions.borrow();
            tps.iter()
                .enumerate()
                .filter_map(|(i, tp)| partitions.get(group, tp).map(|h| (i, h.writing.clone())))
                .collect()
        };
        let mut turns = Vec::with_capacity(writing.len());
        for (_, w) in &writing {
            turns.push(w.lock().await);
        }
        let (written, states): (Vec<usize>, Vec<_>) = {
            let partitions = self.partitions.borrow();
            writing
                .iter()
                .filter_map(|&(i, _)| {
                    let held = partitions.get(group, tps[i])?;
                    let snapshot = held.sp.snapshot(held.leader_epoch, held.state_epoch);
                    Some((i, (tps[i].clone(), snapshot)))
                })
                .unzip()
        };
        let answered = state::write(self, group, states).await;
        drop(turns);
        for (i, code) in written.into_iter().zip(answered) {
            if code == ResponseError::FencedStateEpoch.code() {
                // Reset by an operator since it was loaded: the next
                // request loads the coordinator's state.
                self.partitions.borrow_mut().remove(group, tps[i]);
            }
            codes[i] = code;
        }
        codes
    }

    fn serve_item(
        &self,
        ask: &ShareAsk,
        (member, terms): (&Rc<str>, &Terms),
        item: &ShareItem,
        (partition, held): (&Partition, &mut Held),
        now_ms: i64,
    ) -> ShareOutcome {
        let limits = &terms.limits;
        debug_assert_eq!(self.shard.owner_of(&item.tp), self.shard.id);
        let state = partition.read_state();
        held.last_used_ms = now_ms;
        let sp = &mut held.sp;
        sp.log_start_moved(state.log_start_offset);
        let mut outcome = ShareOutcome::error(0);
        outcome.seen = Some(partition.seen());
        for ack in &item.acks {
            match sp.acknowledge(member, ack.first, ack.last, &ack.types, limits, now_ms) {
                Ok(()) => {
                    outcome.acked = true;
                    count_acknowledged(ack);
                }
                Err(code) if outcome.ack_error == 0 => outcome.ack_error = code,
                Err(_) => {}
            }
        }
        if !item.fetch {
            crate::stats::SHARE_LOCKS_EXPIRED.add(sp.take_expired());
            return outcome;
        }
        let offset = sp.fetch_offset(limits, now_ms);
        crate::stats::SHARE_LOCKS_EXPIRED.add(sp.take_expired());
        let Some(offset) = offset else {
            return outcome;
        };
        let visible = if terms.read_committed {
            state.last_stable_offset
        } else {
            state.high_watermark
        };
        if offset >= visible {
            return outcome;
        }
        let read = ReadArgs {
            tp: &item.tp,
            offset,
            max_bytes: ask.partition_max_bytes,
            min_one_batch: true,
            committed: terms.read_committed,
            current_leader_epoch: -1,
            replica: None,
            to_log_end: false,
            unless_unchanged: None,
            any_replica: false,
            client_rack: None,
        };
        let read = self.shard.read_owned(read);
        if read.error != 0 {
            outcome.error = read.error;
            return outcome;
        }
        let mut walk = read.aborted.map(AbortedWalk::new);
        if walk.as_ref().is_some_and(AbortedWalk::cut_short) {
            // Which batches are aborted is then unknown past those named:
            // nothing is acquired rather than an aborted record delivered.
            tracing::warn!(topic = %item.tp.topic, partition = item.tp.partition, offset, "aborted transactions in one share read past their bound");
            return outcome;
        }
        let batches = match batches_of(&read.slices, walk.as_mut()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(topic = %item.tp.topic, partition = item.tp.partition, error = %e, "reading batch headers");
                outcome.error = ResponseError::KafkaStorageError.code();
                return outcome;
            }
        };
        let spans: Vec<BatchSpan> = batches.iter().map(|b| b.span).collect();
        outcome.acquired = held
            .sp
            .acquire(member, &spans, ask.max_records, limits, now_ms);
        crate::stats::SHARE_LOCKS_EXPIRED.add(held.sp.take_expired());
        let acquired: i64 = outcome.acquired.iter().map(|a| a.last - a.first + 1).sum();
        crate::stats::SHARE_RECORDS_ACQUIRED.add(acquired as u64);
        outcome.slices = holding(&batches, &outcome.acquired);
        outcome
    }
}

/// Counts an acknowledgement batch applied, by type (gaps, records not in
/// the log, are not counted).
fn count_acknowledged(ack: &AckBatch) {
    let span = (ack.last - ack.first + 1) as u64;
    let counter = |kind: i8| match kind {
        partition::ACK_ACCEPT => Some(&crate::stats::SHARE_RECORDS_ACCEPTED),
        partition::ACK_RELEASE => Some(&crate::stats::SHARE_RECORDS_RELEASED),
        partition::ACK_REJECT => Some(&crate::stats::SHARE_RECORDS_REJECTED),
        _ => None,
    };
    match ack.types.as_slice() {
        [kind] => {
            if let Some(c) = counter(*kind) {
                c.add(span);
            }
        }
        kinds => {
            for c in kinds.iter().filter_map(|k| counter(*k)) {
                c.add(1);
            }
        }
    }
}

/// One batch of a read plan: where it lies and what offsets it spans.
struct PlannedBatch {
    slice: FileSlice,
    span: BatchSpan,
}

/// The batches of `slices` (whole, valid batches), from their headers;
/// with `walk` (a `read_committed` read), those of aborted transactions
/// are marked so.
fn batches_of(
    slices: &[FileSlice],
    mut walk: Option<&mut AbortedWalk>,
) -> std::io::Result<Vec<PlannedBatch>> {
    let mut out = Vec::new();
    let mut header = [0u8; BATCH_HEADER_LEN];
    for slice in slices {
        let mut at = 0u64;
        while at < u64::from(slice.len) {
            slice.file.read_exact_at(&mut header, slice.position + at)?;
            let parsed = BatchHeader::parse(&header)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            let len = parsed.total_len() as u64;
            let holds = match walk.as_deref_mut() {
                Some(walk) => walk.holds(&parsed),
                None if parsed.is_control() => Holds::Markers,
                None => Holds::Records,
            };
            assert!(
                len > 0 && at + len <= u64::from(slice.len),
                "a planned slice holds whole batches"
            );
            out.push(PlannedBatch {
                slice: FileSlice {
                    file: slice.file.clone(),
                    position: slice.position + at,
                    len: len as u32,
                },
                span: BatchSpan {
                    base: parsed.base_offset,
                    last: parsed.last_offset(),
                    holds,
                },
            });
            at += len;
        }
    }
    Ok(out)
}

/// The batches from the first holding an acquired record to the last one
/// (the client reads only the acquired records among them), as few slices
/// as they make: adjacent batches of one segment go as one slice, so one
/// sendfile each, as a fetch's read sends them.
fn holding(batches: &[PlannedBatch], acquired: &[Acquired]) -> Vec<FileSlice> {
    let (Some(first), Some(last)) = (acquired.first(), acquired.last()) else {
        return Vec::new();
    };
    let holds = |b: &PlannedBatch| {
        acquired
            .iter()
            .any(|a| a.first <= b.span.last && b.span.base <= a.last)
    };
    let from = batches
        .iter()
        .position(|b| b.span.last >= first.first && holds(b));
    let to = batches
        .iter()
        .rposition(|b| b.span.base <= last.last && holds(b));
    let (Some(from), Some(to)) = (from, to) else {
        return Vec::new();
    };
    let mut slices: Vec<FileSlice> = Vec::new();
    for b in &batches[from..=to] {
        match slices.last_mut() {
            Some(s)
                if std::sync::Arc::ptr_eq(&s.file, &b.slice.file)
                    && s.position + u64::from(s.len) == b.slice.position =>
            {
                // Within one read of one segment: the sum fits as the read did.
                s.len = s.len.checked_add(b.slice.len).expect("one segment's read");
            }
            _ => slices.push(b.slice.clone()),
        }
    }
    slices
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn planned(
        file: &Arc<std::fs::File>,
        position: u64,
        len: u32,
        base: i64,
        last: i64,
    ) -> PlannedBatch {
        PlannedBatch {
            slice: FileSlice {
                file: file.clone(),
                position,
                len,
            },
            span: BatchSpan {
                base,
                last,
                holds: Holds::Records,
            },
        }
    }

    #[test]
    fn adjacent_batches_of_a_segment_go_as_one_slice() {
        let a = Arc::new(tempfile::tempfile().unwrap());
        let b = Arc::new(tempfile::tempfile().unwrap());
        // Three batches of one segment, then one of the next segment.
        let batches = [
            planned(&a, 0, 100, 0, 4),
            planned(&a, 100, 50, 5, 9),
            planned(&a, 150, 70, 10, 14),
            planned(&b, 0, 30, 15, 19),
        ];
        let acquired = |first, last| Acquired {
            first,
            last,
            deliveries: 1,
        };
        let slices = holding(&batches, &[acquired(6, 16)]);
        let shape: Vec<(u64, u32)> = slices.iter().map(|s| (s.position, s.len)).collect();
        assert_eq!(shape, [(100, 120), (0, 30)]);
        assert!(Arc::ptr_eq(&slices[1].file, &b));
        assert!(holding(&batches, &[]).is_empty());
    }
}

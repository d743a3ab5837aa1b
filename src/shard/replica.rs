//! The replication side of a shard: each hosted partition's role as the
//! metadata says, the leader's high watermark and ISR proposals, acks=all
//! waits, and which partitions this shard's fetchers pull from which leader.

use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::{Partition, Shard, TopicPartition};
use crate::controller::records::MetadataRecord;
use crate::metadata::Topics;
use crate::replication::{role_for, Role};

impl Shard {
    /// Brings `partition`'s role in line with `topics`: a one-node broker
    /// leads alone; in a cluster the partition becomes the leader (its log
    /// stamps the new epoch), a follower of the image's leader, or offline.
    /// True when this broker has just become the partition's leader.
    pub(super) fn settle_role(
        &self,
        tp: &TopicPartition,
        partition: &Partition,
        topics: &Topics,
    ) -> bool {
        let now = crate::runtime::now_ms();
        let Some(view) = topics.cluster.as_ref() else {
            *partition.role.borrow_mut() = Role::Solo;
            advance_high_watermark(partition);
            return false;
        };
        let Some(state) = view.partition(&tp.topic, tp.partition) else {
            return false;
        };
        let node_id = view.node_id;
        let mut became_leader = false;
        {
            let mut role = partition.role.borrow_mut();
            if role.same_leadership(node_id, state) {
                if let Role::Leader(l) = &mut *role {
                    l.update(state, now);
                }
            } else {
                let previous_leader = match &*role {
                    Role::Follower { leader, .. } => Some(*leader),
                    _ => None,
                };
                let mut next = role_for(node_id, state, now);
                let mut log = partition.log.borrow_mut();
                match &mut next {
                    Role::Leader(l) => {
                        if let Err(e) = log.become_leader(state.leader_epoch) {
                            tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "cannot record the new leader epoch");
                        }
                        l.epoch_start = log.log_end_offset();
                        l.previous_leader = previous_leader;
                        became_leader = true;
                        tracing::info!(
                            topic = %tp.topic, partition = tp.partition,
                            leader_epoch = state.leader_epoch, isr = ?state.isr,
                            log_end = log.log_end_offset(), high_watermark = log.high_watermark(),
                            "leading partition"
                        );
                    }
                    Role::Follower { leader, .. } => {
                        log.become_follower();
                        tracing::info!(topic = %tp.topic, partition = tp.partition, leader = *leader, leader_epoch = state.leader_epoch, "following partition");
                    }
                    Role::Offline { .. } | Role::Solo => log.become_follower(),
                }
                *role = next;
            }
            if let Role::Leader(l) = &mut *role {
                // Kafka's effective min ISR: never more than the replicas
                // (a topic of one replica under a broker-wide 2 stays
                // readable).
                let configured = topics.get(&tp.topic).map_or(1, |t| {
                    t.parsed(&self.config, &topics.broker_configs)
                        .min_insync_replicas
                });
                l.min_insync = configured.min(state.replicas.len());
            }
        }
        // acks=all waiters and long polls look again: the role or the ISR
        // (and so the high watermark) may have changed.
        advance_high_watermark(partition);
        partition.notify_moved();
        became_leader
    }

    /// Leader partitions whose ISR holds a follower behind for longer than
    /// `replica_lag_time_max_ms`: propose them out (Kafka's maybeShrinkIsr).
    pub fn shrink_isrs(self: &Rc<Self>) {
        let now = crate::runtime::now_ms();
        let lag = i64::try_from(self.config.replica_lag_time_max_ms).unwrap_or(i64::MAX);
        for (tp, partition) in self.owned_partitions() {
            let end = partition.log.borrow().log_end_offset();
            let mut role = partition.role.borrow_mut();
            let Role::Leader(l) = &mut *role else {
                continue;
            };
            if let Some(isr) = l.shrink(now, lag, end) {
                tracing::info!(topic = %tp.topic, partition = tp.partition, from = ?l.isr, to = ?isr, "shrinking the ISR: followers lag");
                crate::stats::ISR_SHRINKS.add(1);
                l.proposed = Some(isr.clone());
                self.propose_isr(tp, isr, l.leader_epoch, l.partition_epoch);
            }
        }
    }

    /// The leader epoch of `topic`/`partition` if this shard owns it and this
    /// broker leads it (0 for a one-node broker): what a coordinator loaded
    /// from an internal partition is good for.
    pub fn led_epoch(&self, topic: &str, partition: i32) -> Option<i32> {
        if crate::metadata::owner_shard(topic, partition, self.count) != self.id {
            return None;
        }
        let topics = self.topics.borrow();
        if !topics.leads(topic, partition) {
            return None;
        }
        Some(
            topics
                .cluster
                .as_ref()
                .and_then(|c| c.partition(topic, partition))
                .map_or(0, |p| p.leader_epoch),
        )
    }

    /// Every partition of `topic` this shard owns and this broker leads,
    /// with its leader epoch.
    pub fn led_partitions(&self, topic: &str) -> std::collections::BTreeMap<i32, i32> {
        let count = self.topics.borrow().get(topic).map_or(0, |t| t.partitions);
        (0..count)
            .filter_map(|p| self.led_epoch(topic, p).map(|e| (p, e)))
            .collect()
    }

    /// Sends an ISR change to the controller (AlterPartition); the image
    /// that commits it settles the role. A refusal clears the proposal so
    /// the next fetch or shrink pass tries again from the current image.
    pub(super) fn propose_isr(
        self: &Rc<Self>,
        tp: TopicPartition,
        isr: Vec<i32>,
        leader_epoch: i32,
        partition_epoch: i32,
    ) {
        let Some(controller) = self.controller.clone() else {
            return;
        };
        let record = MetadataRecord::ChangePartition {
            topic: tp.topic.to_string(),
            partition: tp.partition,
            leader: self.config.node_id,
            isr,
            leader_epoch,
            partition_epoch,
        };
        let shard = self.clone();
        crate::runtime::spawn_local(async move {
            if let Err(e) = controller.propose(record).await {
                tracing::info!(topic = %tp.topic, partition = tp.partition, error = %e, "ISR change not committed");
                if let Some(partition) = shard.partition(&tp) {
                    if let Role::Leader(l) = &mut *partition.role.borrow_mut() {
                        if l.partition_epoch == partition_epoch {
                            l.proposed = None;
                        }
                    }
                    // A follower's fetch that finds nothing new is not read
                    // again while the partition is unchanged; this wakes it,
                    // so its next fetch proposes it again.
                    partition.notify_moved();
                }
            }
        })
        .detach();
    }

    /// The follower partitions of this shard, by the broker they follow,
    /// with the leader epoch each follows at.
    pub fn followed(&self) -> std::collections::BTreeMap<i32, Vec<(TopicPartition, Followed)>> {
        let mut by_leader: std::collections::BTreeMap<i32, Vec<(TopicPartition, Followed)>> =
            Default::default();
        let throttling = self.replication_quotas.borrow().follower.is_set();
        let topics = self.topics.borrow();
        for (tp, partition) in self.partitions.borrow().iter() {
            if let Role::Follower {
                leader,
                leader_epoch,
            } = &*partition.role.borrow()
            {
                let throttled = throttling && self.follower_throttled(&topics, &tp);
                let topic_id = topics
                    .get(&tp.topic)
                    .map_or(uuid::Uuid::nil(), |t| t.uuid());
                by_leader.entry(*leader).or_default().push((
                    tp,
                    Followed {
                        topic_id,
                        leader_epoch: *leader_epoch,
                        partition: partition.clone(),
                        throttled,
                    },
                ));
            }
        }
        by_leader
    }

    /// Whether this follower of `tp` fetches under the follower throttle:
    /// the topic names this replica in
    /// `follower.replication.throttled.replicas` and it is out of the ISR.
    fn follower_throttled(&self, topics: &crate::metadata::Topics, tp: &TopicPartition) -> bool {
        let node = self.config.node_id;
        let named = topics.topics.get(&*tp.topic).is_some_and(|topic| {
            topic
                .parsed(&self.config, &topics.broker_configs)
                .follower_throttled
                .contains(tp.partition, node)
        });
        let in_sync = || {
            let cluster = topics.cluster.as_ref();
            let state = cluster.and_then(|c| c.partition(&tp.topic, tp.partition));
            state.is_some_and(|p| p.isr.contains(&node))
        };
        named && !in_sync()
    }
}

/// Moves a leader's high watermark to what its ISR allows; true (and the
/// partition's waiters woken) if it moved.
pub(super) fn advance_high_watermark(partition: &Partition) -> bool {
    let moved = {
        let role = partition.role.borrow();
        let mut log = partition.log.borrow_mut();
        let end = log.log_end_offset();
        let target = match &*role {
            Role::Solo => Some(end),
            Role::Leader(l) => l.high_watermark(end),
            Role::Follower { .. } | Role::Offline { .. } => None,
        };
        match target {
            Some(hw) if hw > log.high_watermark() => {
                log.set_high_watermark(hw);
                true
            }
            _ => false,
        }
    };
    if moved {
        partition.notify_moved();
    }
    moved
}

/// Kafka's check of a request's current_leader_epoch against this
/// replica's: an older one is fenced, a newer one not known here yet.
pub(super) fn check_leader_epoch(role: &Role, current_leader_epoch: i32) -> Option<i16> {
    let ours = role.leader_epoch();
    if current_leader_epoch < 0 || current_leader_epoch == ours {
        None
    } else if current_leader_epoch < ours {
        Some(ResponseError::FencedLeaderEpoch.code())
    } else {
        Some(ResponseError::UnknownLeaderEpoch.code())
    }
}

/// Waits until the high watermark reaches `required` (an acks=all produce
/// is then replicated to the ISR), at most `timeout`; the Kafka error code
/// of the answer.
pub(super) async fn wait_replicated(
    shard: &Shard,
    partition: &Partition,
    required: i64,
    leader_epoch: i32,
    min_insync: usize,
    timeout: Duration,
) -> i16 {
    let replicated = |role: &Role| {
        // Kafka's checkEnoughReplicasReachOffset: replicated, but by fewer
        // replicas than the topic asks for.
        (partition.log.borrow().high_watermark() >= required).then(|| {
            if role.isr_len() < min_insync {
                ResponseError::NotEnoughReplicasAfterAppend.code()
            } else {
                0
            }
        })
    };
    let deadline = Instant::now() + timeout;
    match wait_leading(shard, partition, leader_epoch, deadline, replicated).await {
        Waited::Done(code) => code,
        Waited::NotLeader => ResponseError::NotLeaderOrFollower.code(),
        Waited::TimedOut => ResponseError::RequestTimedOut.code(),
    }
}

/// How a [`wait_leading`] ended.
pub(super) enum Waited<T> {
    Done(T),
    /// This replica stopped leading at the epoch waited at.
    NotLeader,
    /// The deadline passed, or the shard is stopping.
    TimedOut,
}

/// Waits, while this replica leads `partition` at `leader_epoch`, until
/// `done` answers, asking it again at every move of the partition
/// (`Partition::notify_moved`: appends, high watermarks, followers' log
/// starts, role changes), at most until `deadline`.
pub(super) async fn wait_leading<T>(
    shard: &Shard,
    partition: &Partition,
    leader_epoch: i32,
    deadline: Instant,
    mut done: impl FnMut(&Role) -> Option<T>,
) -> Waited<T> {
    loop {
        let seen = partition.appended.version();
        {
            let role = partition.role.borrow();
            if !role.is_leader() || role.leader_epoch() != leader_epoch {
                return Waited::NotLeader;
            }
            if let Some(answer) = done(&role) {
                return Waited::Done(answer);
            }
        }
        let now = Instant::now();
        if now >= deadline || shard.is_stopping() {
            return Waited::TimedOut;
        }
        let changed = partition.appended.changed_since(seen);
        let stop = shard.stopping.changed_since(0);
        let (changed, stop) = (std::pin::pin!(changed), std::pin::pin!(stop));
        let either = futures::future::select(changed, stop);
        let _ = crate::runtime::timeout(deadline - now, either).await;
    }
}

/// A partition this shard follows, as its fetcher holds it: the epoch it
/// follows at, and the partition itself, so that a fetch round reads every
/// position without looking partitions up.
#[derive(Clone)]
pub struct Followed {
    /// The topic's id (KIP-516), which a fetch names it by from v13.
    pub topic_id: uuid::Uuid,
    pub leader_epoch: i32,
    pub partition: Rc<Partition>,
    /// Fetched under the follower replication throttle.
    pub throttled: bool,
}

impl Followed {
    /// The same partition (not one recreated since) at the same epoch,
    /// throttled alike.
    pub fn same(&self, other: &Followed) -> bool {
        self.leader_epoch == other.leader_epoch
            && self.topic_id == other.topic_id
            && self.throttled == other.throttled
            && Rc::ptr_eq(&self.partition, &other.partition)
    }

    /// Where the follower log stands, while this shard still follows it.
    pub fn position(&self) -> Option<FollowerPosition> {
        let partition = &self.partition;
        if !matches!(*partition.role.borrow(), Role::Follower { .. }) {
            return None;
        }
        let log = partition.log.borrow();
        Some(FollowerPosition {
            log_end: log.log_end_offset(),
            log_start: log.log_start_offset(),
            last_epoch: log.latest_epoch().unwrap_or(-1),
            high_watermark: log.high_watermark(),
        })
    }
}

/// Where a follower log stands, for its next fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerPosition {
    pub log_end: i64,
    pub log_start: i64,
    /// The epoch of its last batch (-1: none), Kafka's last_fetched_epoch.
    pub last_epoch: i32,
    /// What it knows of the leader's high watermark (KIP-1166).
    pub high_watermark: i64,
}

/// What one partition's fetch answer did.
pub enum Fetched {
    /// Appended or truncated.
    Progress,
    /// Nothing new.
    Idle,
    /// An error; the fetcher backs off unless another partition moved.
    Failed,
}

impl Shard {
    /// `host:port` of broker `id`'s inter-broker listener as the metadata
    /// has it (a broker registers that one first).
    pub fn broker_address(&self, id: i32) -> Option<String> {
        let topics = self.topics();
        let view = topics.cluster.as_ref()?;
        let endpoints = &view.image.brokers.get(&id)?.endpoints;
        let named = self.config.inter_broker_listener_name.as_ref();
        let endpoint = endpoints
            .iter()
            .find(|e| Some(&e.name) == named)
            .or_else(|| endpoints.first())?;
        Some(format!("{}:{}", endpoint.host, endpoint.port))
    }

    /// Applies one partition's answer to a follower fetch: truncate where
    /// the leader says the logs diverge, or append the leader's batches as
    /// they are, then take the leader's high watermark.
    pub fn follower_fetched(
        self: &Rc<Self>,
        tp: &TopicPartition,
        leader: i32,
        leader_epoch: i32,
        data: kafka_protocol::messages::fetch_response::PartitionData,
    ) -> Fetched {
        let Some(partition) = self.partition(tp) else {
            return Fetched::Idle;
        };
        let following = matches!(
            *partition.role.borrow(),
            Role::Follower { leader: l, leader_epoch: e } if l == leader && e == leader_epoch
        );
        if !following {
            return Fetched::Idle;
        }
        // A truncation moves the log's end, start and high watermark, which
        // consumers reading this follower (KIP-392) must see: it wakes them
        // as an append does.
        let fetched = match data.error_code {
            0 if data.diverging_epoch.end_offset >= 0 => {
                let diverging = &data.diverging_epoch;
                let fetched =
                    truncate_diverged(tp, &partition, diverging.epoch, diverging.end_offset);
                partition.notify_moved();
                fetched
            }
            0 => self.append_fetched(tp, &partition, data.records),
            code if code == ResponseError::OffsetOutOfRange.code() => {
                let fetched =
                    out_of_range(tp, &partition, data.log_start_offset, data.high_watermark);
                partition.notify_moved();
                fetched
            }
            code => {
                tracing::debug!(topic = %tp.topic, partition = tp.partition, leader, error = code, "follower fetch error");
                return Fetched::Failed;
            }
        };
        if data.error_code == 0 && data.high_watermark >= 0 {
            let moved = {
                let mut log = partition.log.borrow_mut();
                let hw = data.high_watermark.min(log.log_end_offset());
                let moved = hw > log.high_watermark();
                if moved {
                    log.set_high_watermark(hw);
                }
                moved
            };
            if moved {
                // Consumers may read from this follower (KIP-392): what
                // they see moved, and their long polls wake.
                partition.notify_moved();
            }
        }
        if data.error_code == 0 {
            super::log_start::follow_leader_start(tp, &partition, data.log_start_offset);
        }
        fetched
    }

    fn append_fetched(
        self: &Rc<Self>,
        tp: &TopicPartition,
        partition: &Rc<Partition>,
        records: Option<bytes::Bytes>,
    ) -> Fetched {
        let Some(records) = records.filter(|r| !r.is_empty()) else {
            return Fetched::Idle;
        };
        if partition.log.borrow().write_in_flight() {
            // A produce from when this replica led is still being written
            // (and is void: the role change truncated the log); the next
            // fetch brings these batches again.
            return Fetched::Idle;
        }
        let now = crate::runtime::now_ms();
        let appended = partition.log.borrow_mut().append_replicated(&records, now);
        match appended {
            Ok(result) => {
                crate::stats::REPLICA_BYTES_FETCHED.add(records.len() as u64);
                partition.notify_moved();
                super::durability::start_roll_sync(tp, partition);
                super::prefault::start(tp, partition);
                if result.flush_needed {
                    let (tp, partition) = (tp.clone(), partition.clone());
                    crate::runtime::spawn_local(async move {
                        super::durability::flush(&tp, &partition).await;
                    })
                    .detach();
                }
                Fetched::Progress
            }
            Err(e) => {
                if !super::write_failures::failed_storage("replica append", tp, &e) {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "cannot append the leader's batches");
                }
                Fetched::Failed
            }
        }
    }
}

/// Truncates a follower whose log diverges from the leader's (KIP-320,
/// Kafka's getOffsetTruncationState): to the leader's end of the epoch the
/// two share, or to the end of the follower's own epoch below it, from
/// where the next fetch checks again.
fn truncate_diverged(
    tp: &TopicPartition,
    partition: &Partition,
    leader_epoch: i32,
    leader_end: i64,
) -> Fetched {
    let mut log = partition.log.borrow_mut();
    let end = log.log_end_offset();
    let to = if leader_epoch < 0 {
        leader_end.min(end)
    } else {
        match log.end_offset_for_epoch(leader_epoch) {
            (e, _) if e < 0 => leader_end.min(end),
            (e, follower_end) if e != leader_epoch => follower_end.min(end),
            (_, follower_end) => leader_end.min(follower_end),
        }
    };
    truncate(tp, &mut log, to, "the log diverges from the leader's")
}

/// The leader cannot serve our log end: below its log start (we start
/// over there) or past its end (we cut back to its high watermark).
fn out_of_range(
    tp: &TopicPartition,
    partition: &Partition,
    leader_start: i64,
    leader_hw: i64,
) -> Fetched {
    let mut log = partition.log.borrow_mut();
    let end = log.log_end_offset();
    if leader_start >= 0 && end < leader_start {
        tracing::info!(topic = %tp.topic, partition = tp.partition, log_end = end, leader_start, "behind the leader's log start; starting over there");
        return match log.truncate_fully_and_start_at(leader_start) {
            Ok(()) => Fetched::Progress,
            Err(e) => {
                tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "cannot start the log over");
                Fetched::Failed
            }
        };
    }
    if leader_hw >= 0 && leader_hw < end {
        return truncate(tp, &mut log, leader_hw, "past the leader's log end");
    }
    Fetched::Failed
}

fn truncate(
    tp: &TopicPartition,
    log: &mut crate::storage::PartitionLog,
    to: i64,
    why: &str,
) -> Fetched {
    let before = log.log_end_offset();
    if to >= before {
        // No batch goes, but an epoch this replica led without appending
        // to it may: the next fetch names the epoch before it.
        let epoch = log.latest_epoch();
        if let Err(e) = log.truncate_to(to) {
            tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "truncation failed");
            return Fetched::Failed;
        }
        if log.latest_epoch() != epoch {
            tracing::info!(topic = %tp.topic, partition = tp.partition, log_end = before, dropped_epoch = ?epoch, "dropped a leader epoch with no batch: {why}");
            return Fetched::Progress;
        }
        return Fetched::Failed;
    }
    if let Err(e) = log.truncate_to(to) {
        tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "truncation failed");
        return Fetched::Failed;
    }
    let after = log.log_end_offset();
    crate::stats::REPLICA_TRUNCATED_OFFSETS.add((before - after).max(0) as u64);
    tracing::warn!(
        topic = %tp.topic, partition = tp.partition, from = before, to = after,
        offsets_lost = before - after,
        "truncated the follower log: {why}"
    );
    Fetched::Progress
}

impl Shard {
    /// A follower's fetch on its leader: checked for divergence first
    /// (KIP-320), then its offset counts as its log end (which may move the
    /// high watermark and bring it into the ISR), then it reads up to the
    /// log end through the same plan as consumers.
    pub(super) fn follower_read(
        self: &Rc<Self>,
        item: &super::ReadArgs<'_>,
        replica: super::ReplicaFetch,
        partition: &Partition,
        outcome: &mut super::ReadOutcome,
        now_ms: i64,
    ) {
        {
            let log = partition.log.borrow();
            outcome.log_start_offset = log.log_start_offset();
            outcome.high_watermark = log.high_watermark();
            outcome.last_stable_offset = log.last_stable_offset().min(outcome.high_watermark);
            if replica.last_fetched_epoch >= 0 {
                let (epoch, end) = log.end_offset_for_epoch(replica.last_fetched_epoch);
                // An epoch this log does not know says nothing either way.
                let known = epoch >= 0 && end >= 0;
                if known && (epoch != replica.last_fetched_epoch || end < item.offset) {
                    outcome.diverging = Some((epoch, end));
                    return;
                }
            }
        }
        let (known, start_moved) = match &mut *partition.role.borrow_mut() {
            Role::Leader(l) if l.is_replica(replica.node_id) => {
                let end = partition.log.borrow().log_end_offset();
                let start = replica.log_start_offset;
                let moved = item.offset <= end
                    && l.on_fetch(replica.node_id, item.offset, start, end, now_ms);
                (true, moved)
            }
            _ => (false, false),
        };
        if !known {
            outcome.error = ResponseError::NotLeaderOrFollower.code();
            return;
        }
        if start_moved {
            // A DeleteRecords waits on the followers' starts.
            partition.notify_moved();
        }
        advance_high_watermark(partition);
        self.maybe_expand_isr(item.tp, partition, replica.node_id);
        let log = partition.log.borrow();
        outcome.high_watermark = log.high_watermark();
        outcome.last_stable_offset = log.last_stable_offset().min(outcome.high_watermark);
        // The clock is read only for a throttled read: the rest pay one
        // check that no leader rate is set.
        let throttled = self
            .leader_throttles(item.tp, partition, replica.node_id)
            .then(std::time::Instant::now);
        if let Some(now) = throttled {
            if self.replication_quotas.borrow_mut().leader.exceeded(now) {
                crate::stats::REPLICATION_LEADER_THROTTLED.add(1);
                outcome.held_back = true;
                return;
            }
        }
        let end = log.log_end_offset();
        match log.read_below(item.offset, item.max_bytes, item.min_one_batch, end) {
            Ok(plan) => {
                outcome.slices = plan.slices;
                outcome.bytes = plan.bytes;
            }
            Err(e) => outcome.error = super::ops::storage_error_code(&e),
        }
        if let Some(now) = throttled {
            let mut quotas = self.replication_quotas.borrow_mut();
            quotas.leader.record(outcome.bytes, now);
        }
    }

    /// The follower a consumer in rack `rack` (hashed, see `rack_hash`)
    /// should read `partition` from at `offset`, when this broker leads it
    /// (KIP-392; the fetch handler asks only under the rack-aware
    /// selector). Racks are the brokers' registered `broker.rack`.
    pub(super) fn preferred_read_replica(
        &self,
        offset: i64,
        partition: &Partition,
        rack: u64,
    ) -> Option<i32> {
        let role = partition.role.borrow();
        let Role::Leader(leader) = &*role else {
            return None;
        };
        let topics = self.topics.borrow();
        let image = &topics.cluster.as_deref()?.image;
        let in_rack = |r: Option<&str>| r.is_some_and(|r| super::rack_hash(r) == rack);
        let leader_in_rack = in_rack(self.config.broker_rack.as_deref());
        leader.preferred_read_replica(offset, leader_in_rack, |id| {
            image.broker_live(id) && in_rack(image.brokers.get(&id).and_then(|b| b.rack.as_deref()))
        })
    }

    /// Whether this leader's answers to follower `node` of `tp` count
    /// against the leader throttle: a rate is set, the topic names this
    /// replica in `leader.replication.throttled.replicas`, and the follower
    /// is out of the ISR.
    fn leader_throttles(&self, tp: &TopicPartition, partition: &Partition, node: i32) -> bool {
        if !self.replication_quotas.borrow().leader.is_set() {
            return false;
        }
        let in_sync = matches!(&*partition.role.borrow(), Role::Leader(l) if l.isr.contains(&node));
        if in_sync {
            return false;
        }
        let topics = self.topics.borrow();
        topics.topics.get(&*tp.topic).is_some_and(|topic| {
            topic
                .parsed(&self.config, &topics.broker_configs)
                .leader_throttled
                .contains(tp.partition, self.config.node_id)
        })
    }

    /// Proposes follower `node`, which just fetched, into the ISR once it
    /// has caught up (Kafka's maybeExpandIsr). A fenced broker is not
    /// proposed (KIP-841): the controller would take it out again.
    fn maybe_expand_isr(self: &Rc<Self>, tp: &TopicPartition, partition: &Partition, node: i32) {
        let live = self
            .topics
            .borrow()
            .cluster
            .as_ref()
            .is_some_and(|c| c.image.broker_live(node));
        if !live {
            return;
        }
        let hw = partition.log.borrow().high_watermark();
        let mut role = partition.role.borrow_mut();
        let Role::Leader(l) = &mut *role else {
            return;
        };
        if let Some(isr) = l.expansion(node, hw) {
            tracing::info!(topic = %tp.topic, partition = tp.partition, from = ?l.isr, to = ?isr, "expanding the ISR: followers caught up");
            crate::stats::ISR_EXPANDS.add(1);
            l.proposed = Some(isr.clone());
            self.propose_isr(tp.clone(), isr, l.leader_epoch, l.partition_epoch);
        }
    }
}

//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and expiry,
//! on the group's coordinator shard. A commit is acknowledged only after
//! its records are in `__consumer_offsets`.

use std::rc::Rc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::ResponseError;

use super::records::{self, OffsetValue};
use super::state::{Committed, Group, GroupState};
use super::{append, membership_failed, membership_records, valid_group_id, Coordinator, KeyValue};
use crate::shard::Shard;

/// One partition's committed offset as OffsetFetch reports it.
#[derive(Clone, Debug)]
pub struct PartitionOffset {
    pub partition: i32,
    /// UNSTABLE_OFFSET_COMMIT when asked for stable offsets while a
    /// transaction holds one for this partition.
    pub error: i16,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// A group's answer to OffsetFetch: a group-level error and per topic,
/// per partition offsets (-1 when nothing is committed).
#[derive(Clone, Debug, Default)]
pub struct FetchedOffsets {
    pub error: i16,
    pub topics: Vec<(String, Vec<PartitionOffset>)>,
}

/// Applies a replayed or freshly written offset record, unless a later
/// one (by log offset) is already applied.
pub fn apply(
    group: &mut Group,
    topic: String,
    partition: i32,
    value: Option<OffsetValue>,
    log_offset: i64,
) {
    let key = (topic, partition);
    if group
        .offsets
        .get(&key)
        .is_some_and(|c| c.log_offset > log_offset)
    {
        return;
    }
    match value {
        Some(v) => {
            group.offsets.insert(
                key,
                Committed {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata,
                    commit_timestamp: v.commit_timestamp,
                    log_offset,
                },
            );
        }
        None => {
            group.offsets.remove(&key);
        }
    }
}

/// Which request commits: Kafka checks a transactional commit's member
/// less strictly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CommitKind {
    /// OffsetCommit.
    Offset,
    /// TxnOffsetCommit.
    Transactional,
}

/// Why a commit is refused as a whole, as Kafka decides it.
pub(super) fn check_commit(
    group: Option<&mut Group>,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
    kind: CommitKind,
    now: i64,
) -> i16 {
    let Some(group) = group else {
        // Only a consumer outside group management may create a group by
        // committing; anything else is from a generation that is gone.
        return if generation < 0 {
            0
        } else {
            ResponseError::IllegalGeneration.code()
        };
    };
    let anonymous = generation < 0 && member_id.is_empty() && instance_id.is_none();
    if anonymous && kind == CommitKind::Transactional {
        // TxnOffsetCommit v0-v2 name no member (and a producer given only
        // a group id sends none at v3+ either): Kafka takes them whatever
        // the group's state, as the transaction fences its producer.
        return 0;
    }
    if let Some(consumer) = &mut group.consumer {
        // A consumer protocol group checks member epochs, not generations.
        if !consumer.is_empty() || generation >= 0 {
            return consumer.check_commit(member_id, generation, now);
        }
    }
    if generation < 0 && member_id.is_empty() && group.state == GroupState::Empty {
        return 0;
    }
    if instance_id
        .and_then(|i| group.static_members.get(i))
        .is_some_and(|holder| holder != member_id)
    {
        return ResponseError::FencedInstanceId.code();
    }
    let Some(member) = group.members.get_mut(member_id) else {
        return ResponseError::UnknownMemberId.code();
    };
    if generation != group.generation {
        return ResponseError::IllegalGeneration.code();
    }
    // A transactional commit is not held to the group's state.
    if group.state == GroupState::CompletingRebalance && kind == CommitKind::Offset {
        return ResponseError::RebalanceInProgress.code();
    }
    member.last_seen_ms = now;
    0
}

/// The group-level answer to a commit (0 when it may go ahead), or `None`
/// when the shard holds as many groups as it may and this one is new.
pub(super) fn commit_group_error(
    coord: &Coordinator,
    group_id: &str,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
    kind: CommitKind,
    now: i64,
) -> Option<i16> {
    if !valid_group_id(group_id) {
        return Some(ResponseError::InvalidGroupId.code());
    }
    let mut groups = coord.groups.borrow_mut();
    let full = groups.len() >= coord.shard.config.groups_per_shard_max;
    if full && !groups.contains_key(group_id) {
        return None;
    }
    Some(check_commit(
        groups.get_mut(group_id),
        generation,
        member_id,
        instance_id,
        kind,
        now,
    ))
}

/// Checks one partition of a commit and builds its record.
pub(super) struct OffsetChecker<'a> {
    topics: std::sync::Arc<crate::metadata::Topics>,
    group_id: &'a str,
    max_metadata: usize,
    now: i64,
}

impl<'a> OffsetChecker<'a> {
    pub(super) fn new(shard: &Shard, group_id: &'a str, now: i64) -> OffsetChecker<'a> {
        OffsetChecker {
            topics: shard.topics(),
            group_id,
            max_metadata: shard
                .config
                .offset_metadata_max_bytes
                .min(i16::MAX as usize),
            now,
        }
    }

    /// The record and value to write, or the partition's error code.
    pub(super) fn check(
        &self,
        group_error: i16,
        topic: &str,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: Option<&str>,
    ) -> Result<(KeyValue, OffsetValue), i16> {
        let at = self.now;
        self.check_at(
            group_error,
            topic,
            partition,
            (offset, leader_epoch),
            metadata,
            at,
        )
    }

    /// [`Self::check`] for a commit stamped `commit_timestamp`, which
    /// offset expiry counts from.
    pub(super) fn check_at(
        &self,
        group_error: i16,
        topic: &str,
        partition: i32,
        (offset, leader_epoch): (i64, i32),
        metadata: Option<&str>,
        commit_timestamp: i64,
    ) -> Result<(KeyValue, OffsetValue), i16> {
        let metadata = metadata.unwrap_or_default();
        if group_error != 0 {
            return Err(group_error);
        }
        if !self.topics.has_partition(topic, partition) {
            return Err(ResponseError::UnknownTopicOrPartition.code());
        }
        if metadata.len() > self.max_metadata {
            return Err(ResponseError::OffsetMetadataTooLarge.code());
        }
        let value = OffsetValue {
            offset,
            leader_epoch,
            metadata: metadata.to_string(),
            commit_timestamp,
        };
        let key = records::offset_key(self.group_id, topic, partition);
        Ok(((key, Some(records::offset_value(&value))), value))
    }
}

/// When a commit happens, and the times OffsetCommit v1 gave per partition.
pub struct CommitTimes {
    pub now: i64,
    /// In request order; -1 or missing means `now`. Kafka 3.x kept a given
    /// time as the commit time, so expiry counts from it.
    pub given: Vec<i64>,
}

pub async fn commit(
    coord: &Rc<Coordinator>,
    _version: i16,
    request: OffsetCommitRequest,
    times: CommitTimes,
) -> OffsetCommitResponse {
    let now = times.now;
    let mut given = times.given.into_iter();
    let group_id = request.group_id.to_string();
    let group_error = match commit_group_error(
        coord,
        &group_id,
        request.generation_id_or_member_epoch,
        &request.member_id,
        request.group_instance_id.as_deref(),
        CommitKind::Offset,
        now,
    ) {
        Some(code) => code,
        None => return refuse_all(&request, ResponseError::CoordinatorNotAvailable.code()),
    };
    let checker = OffsetChecker::new(&coord.shard, &group_id, now);
    // (topic index, partition index, record) of what will be written.
    let mut writes: Vec<(usize, usize, KeyValue, OffsetValue)> = Vec::new();
    let mut response = OffsetCommitResponse::default();
    for (ti, t) in request.topics.iter().enumerate() {
        let mut rt = OffsetCommitResponseTopic::default();
        rt.name = t.name.clone();
        for (pi, p) in t.partitions.iter().enumerate() {
            let at = given.next().filter(|&ts| ts != -1).unwrap_or(now);
            let checked = checker.check_at(
                group_error,
                &t.name,
                p.partition_index,
                (p.committed_offset, p.committed_leader_epoch),
                p.committed_metadata.as_deref(),
                at,
            );
            let error = match checked {
                Ok((record, value)) => {
                    writes.push((ti, pi, record, value));
                    0
                }
                Err(code) => code,
            };
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            rp.error_code = error;
            rt.partitions.push(rp);
        }
        response.topics.push(rt);
    }
    if writes.is_empty() {
        return response;
    }
    let kvs: Vec<KeyValue> = writes.iter().map(|w| w.2.clone()).collect();
    match append(coord, &group_id, &kvs).await {
        Ok(first) => {
            let mut groups = coord.groups.borrow_mut();
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id.clone(), now));
            for (i, (ti, pi, _, value)) in writes.into_iter().enumerate() {
                let t = &request.topics[ti];
                let p = &t.partitions[pi];
                apply(
                    group,
                    t.name.to_string(),
                    p.partition_index,
                    Some(value),
                    first + i as i64,
                );
            }
        }
        Err(e) => {
            let code = storage_to_coordinator_error(e);
            for (ti, pi, _, _) in writes {
                response.topics[ti].partitions[pi].error_code = code;
            }
        }
    }
    response
}

fn refuse_all(request: &OffsetCommitRequest, error: i16) -> OffsetCommitResponse {
    let mut response = OffsetCommitResponse::default();
    for t in &request.topics {
        let mut rt = OffsetCommitResponseTopic::default();
        rt.name = t.name.clone();
        for p in &t.partitions {
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            rp.error_code = error;
            rt.partitions.push(rp);
        }
        response.topics.push(rt);
    }
    response
}

/// Kafka answers a failed write to its offsets log with a retriable error.
fn storage_to_coordinator_error(_code: i16) -> i16 {
    ResponseError::CoordinatorNotAvailable.code()
}

pub fn fetch(
    coord: &Coordinator,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> FetchedOffsets {
    if !valid_group_id(group_id) {
        return FetchedOffsets {
            error: ResponseError::InvalidGroupId.code(),
            topics: Vec::new(),
        };
    }
    let groups = coord.groups.borrow();
    let group = groups.get(group_id);
    let lookup = |topic: &str, partition: i32| {
        let c = group.and_then(|g| g.offsets.get(&(topic.to_string(), partition)));
        let unstable = require_stable
            && group.is_some_and(|g| super::txn_offsets::unstable(g, topic, partition));
        PartitionOffset {
            partition,
            error: if unstable {
                ResponseError::UnstableOffsetCommit.code()
            } else {
                0
            },
            offset: c.map_or(-1, |c| c.offset),
            leader_epoch: c.map_or(-1, |c| c.leader_epoch),
            metadata: c.map_or_else(String::new, |c| c.metadata.clone()),
        }
    };
    let topics = match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(t, parts)| {
                let offsets = parts.iter().map(|&p| lookup(&t, p)).collect();
                (t, offsets)
            })
            .collect(),
        None => {
            let mut out: Vec<(String, Vec<PartitionOffset>)> = Vec::new();
            for (topic, partition) in group.map(|g| g.offsets.keys()).into_iter().flatten() {
                let o = lookup(topic, *partition);
                match out.last_mut() {
                    Some((t, v)) if t == topic => v.push(o),
                    _ => out.push((topic.clone(), vec![o])),
                }
            }
            out
        }
    };
    FetchedOffsets { error: 0, topics }
}

/// Topics the members of a non-empty consumer group subscribe to.
fn subscribed_topics(group: &Group) -> Vec<String> {
    if group.protocol_type.as_deref() != Some("consumer") {
        return Vec::new();
    }
    let protocol = group.protocol.clone().unwrap_or_default();
    let mut out = Vec::new();
    for m in group.members.values() {
        if let Some(sub) = super::migration::decode_subscription(&m.metadata_for(&protocol)) {
            out.extend(sub.topics.iter().map(|t| t.to_string()));
        }
    }
    out
}

pub async fn delete(coord: &Rc<Coordinator>, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = request.group_id.to_string();
    let mut response = OffsetDeleteResponse::default();
    let subscribed = {
        let groups = coord.groups.borrow();
        match groups.get(&group_id) {
            _ if !valid_group_id(&group_id) => {
                response.error_code = ResponseError::InvalidGroupId.code();
                return response;
            }
            None => {
                response.error_code = ResponseError::GroupIdNotFound.code();
                return response;
            }
            Some(g) if g.state == GroupState::Empty => Vec::new(),
            Some(g) => subscribed_topics(g),
        }
    };
    let mut tombstones = Vec::new();
    let mut deleted = Vec::new();
    for t in &request.topics {
        let mut rt = OffsetDeleteResponseTopic::default();
        rt.name = t.name.clone();
        for p in &t.partitions {
            let mut rp = OffsetDeleteResponsePartition::default();
            rp.partition_index = p.partition_index;
            if subscribed.iter().any(|s| s.as_str() == t.name.as_str()) {
                rp.error_code = ResponseError::GroupSubscribedToTopic.code();
            } else {
                let key = records::offset_key(&group_id, &t.name, p.partition_index);
                tombstones.push((key, None));
                deleted.push((t.name.to_string(), p.partition_index));
            }
            rt.partitions.push(rp);
        }
        response.topics.push(rt);
    }
    if tombstones.is_empty() {
        return response;
    }
    match append(coord, &group_id, &tombstones).await {
        Ok(first) => {
            if let Some(g) = coord.groups.borrow_mut().get_mut(&group_id) {
                for (i, (topic, partition)) in deleted.into_iter().enumerate() {
                    apply(g, topic, partition, None, first + i as i64);
                }
            }
        }
        Err(e) => response.error_code = storage_to_coordinator_error(e),
    }
    response
}

/// An empty group whose offsets outlived `offsets.retention.minutes`.
pub fn expired(group: &Group, retention_ms: i64, now: i64) -> bool {
    group.state == GroupState::Empty
        && !group.has_consumer_members()
        && retention_ms > 0
        && now.saturating_sub(group.empty_since_ms) > retention_ms
        && group
            .offsets
            .values()
            .any(|c| now.saturating_sub(c.commit_timestamp) > retention_ms)
}

/// Writes tombstones for the expired offsets of an empty group, and for
/// the group itself once it holds none.
pub async fn expire(coord: &Rc<Coordinator>, group_id: &str, retention_ms: i64) {
    let now = crate::runtime::now_ms();
    let (keys, drop_group, (membership, parts)) = {
        let mut groups = coord.groups.borrow_mut();
        let Some(g) = groups.get_mut(group_id) else {
            return;
        };
        let keys: Vec<(String, i32)> = g
            .offsets
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.commit_timestamp) > retention_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let drop_group = keys.len() == g.offsets.len();
        let membership = if drop_group {
            g.membership_tombstones()
        } else {
            Vec::new()
        };
        (keys, drop_group, membership_records(group_id, membership))
    };
    let mut records: Vec<KeyValue> = keys
        .iter()
        .map(|(t, p)| (records::offset_key(group_id, t, *p), None))
        .collect();
    if drop_group {
        records.push((records::group_key(group_id), None));
        records.extend(membership);
    }
    if append(coord, group_id, &records).await.is_err() {
        membership_failed(coord, group_id, &parts);
        return;
    }
    tracing::info!(
        group = group_id,
        offsets = keys.len(),
        "expired committed offsets"
    );
    let mut groups = coord.groups.borrow_mut();
    if drop_group {
        if groups
            .get(group_id)
            .is_some_and(|g| g.state == GroupState::Empty)
        {
            groups.remove(group_id);
        }
    } else if let Some(g) = groups.get_mut(group_id) {
        for k in keys {
            g.offsets.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::state::Committed;

    fn committed_at(ts: i64) -> Committed {
        Committed {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: ts,
            log_offset: 0,
        }
    }

    /// Offsets expire only for an empty group, after the retention passed
    /// both since it emptied and since the commit, and never with retention
    /// off.
    #[test]
    fn expiry_needs_an_empty_group_and_old_enough_commits() {
        let retention = 60_000;
        let mut g = Group::new("g".into(), 1_000);
        g.offsets.insert(("t".into(), 0), committed_at(1_000));
        assert!(!expired(&g, retention, 61_000), "exactly at the retention");
        assert!(expired(&g, retention, 61_001));
        assert!(!expired(&g, 0, 1_000_000), "retention off");

        g.empty_since_ms = 50_000;
        assert!(!expired(&g, retention, 61_001), "emptied too recently");
        assert!(expired(&g, retention, 110_001));

        g.offsets.insert(("t".into(), 0), committed_at(100_000));
        assert!(!expired(&g, retention, 110_001), "committed too recently");

        g.state = GroupState::Stable;
        assert!(
            !expired(&g, retention, 1_000_000),
            "a live group keeps its offsets"
        );
    }

    fn member(id: &str) -> crate::group::state::Member {
        crate::group::state::Member {
            id: id.into(),
            instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocols: Vec::new(),
            assignment: bytes::Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            last_seen_ms: 0,
        }
    }

    /// As Kafka's coordinator decides: a TxnOffsetCommit that names no
    /// member (v0-v2 cannot) is taken while the group is active, and no
    /// transactional commit waits for a rebalance; a member it names is
    /// still checked. An OffsetCommit gets neither leniency.
    #[test]
    fn a_transactional_commit_is_checked_as_kafka_checks_it() {
        let mut g = Group::new("g".into(), 0);
        g.generation = 3;
        g.state = GroupState::CompletingRebalance;
        g.members.insert("m".into(), member("m"));
        let mut check = |generation, member_id, kind| {
            check_commit(Some(&mut g), generation, member_id, None, kind, 1)
        };
        let (offset, txn) = (CommitKind::Offset, CommitKind::Transactional);
        assert_eq!(check(-1, "", offset), ResponseError::UnknownMemberId.code());
        assert_eq!(check(-1, "", txn), 0);
        assert_eq!(
            check(3, "m", offset),
            ResponseError::RebalanceInProgress.code()
        );
        assert_eq!(check(3, "m", txn), 0);
        assert_eq!(check(3, "x", txn), ResponseError::UnknownMemberId.code());
        assert_eq!(check(2, "m", txn), ResponseError::IllegalGeneration.code());
        assert_eq!(check(-1, "m", txn), ResponseError::IllegalGeneration.code());
    }
}

//! Share groups' partition state on the coordinator (Kafka's share
//! coordinator, here the group's own): each share partition's leader
//! loads its state from here when it first serves the group, and writes
//! it back whenever acknowledgements moved it, before answering them. The
//! state is a record of the group's `__consumer_offsets` partition
//! (`records::share_state_key`), so it outlives the leader, this
//! coordinator and restarts.

use std::rc::Rc;

use kafka_protocol::messages::describe_share_group_offsets_response::{
    self, DescribeShareGroupOffsetsResponseGroup as DescribedOffsets,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::share_heartbeat::shareable;
use super::state::Group;
use super::{append, records, valid_group_id, Coordinator};

/// What of a share partition is kept durable: its start, the ranges past
/// it already done with (acknowledged or archived), and those delivered
/// and not done with, with how often they were delivered. Records in
/// flight are delivered again after a load, their counts going on from
/// the ones kept. `leader_epoch` is the partition leader's that wrote it: a
/// deposed leader's late write cannot overwrite its successor's.
/// `state_epoch` is bumped by every reset an operator makes (Kafka's
/// AlterShareGroupOffsets and DeleteShareGroupOffsets): a leader's copy
/// loaded before it cannot be written back over it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShareSnapshot {
    pub leader_epoch: i32,
    pub state_epoch: i32,
    /// [`START_UNSET`] after DeleteShareGroupOffsets: the leader starts it
    /// by the group's `share.auto.offset.reset`, as a partition never read.
    pub start: i64,
    pub done: Vec<(i64, i64)>,
    /// (first, last, delivery count) of ranges delivered and not done with
    /// (Kafka's AVAILABLE state batches).
    pub delivered: Vec<(i64, i64, i16)>,
}

/// The start of a share partition whose state was deleted (Kafka's
/// uninitialized start offset).
pub const START_UNSET: i64 = -1;

/// What an operator does to a share group's partitions.
#[derive(Clone, Debug)]
pub enum ShareReset {
    /// AlterShareGroupOffsets: each (topic, partition) starts at the offset.
    Alter(Vec<(String, i32, i64)>),
    /// DeleteShareGroupOffsets: every partition of each topic forgets its
    /// state.
    Delete(Vec<String>),
}

/// The state of `group_id`'s share partition `(topic, partition)`; `None`
/// when none was written.
pub fn read(
    coord: &Coordinator,
    group_id: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<ShareSnapshot>, i16> {
    if !valid_group_id(group_id) {
        return Err(ResponseError::InvalidGroupId.code());
    }
    let groups = coord.groups.borrow();
    Ok(groups
        .get(group_id)
        .and_then(|g| g.share_states.get(&(topic.to_string(), partition)))
        .cloned())
}

/// One share partition's state to write: (topic, partition, state).
pub type ShareWrite = (String, i32, ShareSnapshot);

/// Writes the states, each unless a later leader of its partition wrote
/// one (FENCED_LEADER_EPOCH: the writer was deposed) or an operator reset
/// it since (FENCED_STATE_EPOCH); those written go in one append. The
/// code of each, in order. A leader writes a partition's states one at a
/// time, so they arrive in order.
pub async fn write(coord: &Rc<Coordinator>, group_id: &str, states: Vec<ShareWrite>) -> Vec<i16> {
    if !valid_group_id(group_id) {
        return vec![ResponseError::InvalidGroupId.code(); states.len()];
    }
    let mut codes = vec![0i16; states.len()];
    {
        let groups = coord.groups.borrow();
        if let Some(g) = groups.get(group_id) {
            if !shareable(g) {
                return vec![ResponseError::GroupIdNotFound.code(); states.len()];
            }
            for ((topic, partition, snapshot), code) in states.iter().zip(codes.iter_mut()) {
                let stored = g.share_states.get(&(topic.clone(), *partition));
                if stored.is_some_and(|s| s.state_epoch > snapshot.state_epoch) {
                    *code = ResponseError::FencedStateEpoch.code();
                } else if stored.is_some_and(|s| s.leader_epoch > snapshot.leader_epoch) {
                    *code = ResponseError::FencedLeaderEpoch.code();
                }
            }
        }
    }
    let written: Vec<ShareWrite> = states
        .into_iter()
        .zip(&codes)
        .filter(|(_, code)| **code == 0)
        .map(|(state, _)| state)
        .collect();
    let records: Vec<_> = written
        .iter()
        .map(|(topic, partition, snapshot)| {
            (
                records::share_state_key(group_id, topic, *partition),
                Some(records::share_state_value(snapshot)),
            )
        })
        .collect();
    if let Err(code) = append(coord, group_id, &records).await {
        for c in codes.iter_mut().filter(|c| **c == 0) {
            *c = code;
        }
        return codes;
    }
    let now = crate::runtime::now_ms();
    let mut groups = coord.groups.borrow_mut();
    let g = groups
        .entry(group_id.to_string())
        .or_insert_with(|| Group::new(group_id.to_string(), now));
    for (topic, partition, snapshot) in written {
        apply(g, (topic, partition), Some(snapshot));
    }
    codes
}

/// Resets a share group's partitions, each with its state epoch bumped so
/// that no leader writes back a copy loaded before. The group must have no
/// members (NON_EMPTY_GROUP), as Kafka requires; AlterShareGroupOffsets
/// makes the group when there is none, DeleteShareGroupOffsets needs one
/// (GROUP_ID_NOT_FOUND). Every record is written in one append.
pub async fn reset(coord: &Rc<Coordinator>, group_id: &str, reset: ShareReset) -> Result<(), i16> {
    if !valid_group_id(group_id) {
        return Err(ResponseError::InvalidGroupId.code());
    }
    let written: Vec<((String, i32), ShareSnapshot)> = {
        let groups = coord.groups.borrow();
        let g = groups.get(group_id);
        match g {
            Some(g) if !shareable(g) => return Err(ResponseError::GroupIdNotFound.code()),
            Some(g) if g.has_share_members() => return Err(ResponseError::NonEmptyGroup.code()),
            None if matches!(reset, ShareReset::Delete(_)) => {
                return Err(ResponseError::GroupIdNotFound.code())
            }
            _ => {}
        }
        let next = |key: (String, i32), start: i64| {
            let stored = g.and_then(|g| g.share_states.get(&key));
            let snapshot = ShareSnapshot {
                leader_epoch: stored.map_or(0, |s| s.leader_epoch),
                state_epoch: stored.map_or(0, |s| s.state_epoch).saturating_add(1),
                start,
                done: Vec::new(),
                delivered: Vec::new(),
            };
            (key, snapshot)
        };
        match reset {
            ShareReset::Alter(starts) => starts
                .into_iter()
                .map(|(topic, partition, start)| next((topic, partition), start))
                .collect(),
            ShareReset::Delete(topics) => g
                .map(|g| {
                    g.share_states
                        .keys()
                        .filter(|(topic, _)| topics.contains(topic))
                        .map(|key| next(key.clone(), START_UNSET))
                        .collect()
                })
                .unwrap_or_default(),
        }
    };
    let records: Vec<_> = written
        .iter()
        .map(|((topic, partition), snapshot)| {
            (
                records::share_state_key(group_id, topic, *partition),
                Some(records::share_state_value(snapshot)),
            )
        })
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    append(coord, group_id, &records).await?;
    let now = crate::runtime::now_ms();
    let mut groups = coord.groups.borrow_mut();
    let g = groups
        .entry(group_id.to_string())
        .or_insert_with(|| Group::new(group_id.to_string(), now));
    for (key, snapshot) in written {
        apply(g, key, Some(snapshot));
    }
    Ok(())
}

/// A state record applied (written or replayed, in log order): the group
/// is a share group from then on, and keeps the last state of each
/// partition.
pub fn apply(g: &mut Group, key: (String, i32), value: Option<ShareSnapshot>) {
    match value {
        Some(snapshot) => {
            g.share.get_or_insert_with(Default::default);
            g.share_states.insert(key, snapshot);
        }
        None => {
            g.share_states.remove(&key);
        }
    }
}

/// DescribeShareGroupOffsets of one group: each share partition's start
/// offset (of `topics`, or of every partition with state), -1 where none
/// was written.
pub fn describe_offsets(
    coord: &Coordinator,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> DescribedOffsets {
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let mut d = DescribedOffsets::default();
    d.group_id = s(group_id).into();
    let groups = coord.groups.borrow();
    let Some(g) = groups.get(group_id).filter(|g| g.share.is_some()) else {
        d.error_code = ResponseError::GroupIdNotFound.code();
        d.error_message = Some(s(&format!("group {group_id} is not a share group")));
        return d;
    };
    let wanted: Vec<(String, Vec<i32>)> = topics.unwrap_or_else(|| {
        let mut all: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
        for ((topic, partition), state) in &g.share_states {
            if state.start != START_UNSET {
                all.entry(topic.clone()).or_default().push(*partition);
            }
        }
        all.into_iter().collect()
    });
    let known = coord.shard.topics();
    d.topics = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let mut t = describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseTopic::default();
            t.topic_id = known.get(&topic).map(|m| m.uuid()).unwrap_or_default();
            t.partitions = partitions
                .into_iter()
                .map(|partition| {
                    let mut p = describe_share_group_offsets_response::DescribeShareGroupOffsetsResponsePartition::default();
                    p.partition_index = partition;
                    let set = |s: &&ShareSnapshot| s.start != START_UNSET;
                    match g.share_states.get(&(topic.clone(), partition)).filter(set) {
                        Some(state) => {
                            p.start_offset = state.start;
                            p.leader_epoch = state.leader_epoch;
                        }
                        None => {
                            p.start_offset = -1;
                            p.leader_epoch = -1;
                        }
                    }
                    p
                })
                .collect();
            t.topic_name = s(&topic).into();
            t
        })
        .collect();
    d
}

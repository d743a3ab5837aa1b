//! Share groups' partition state on the coordinator (Kafka's share
//! coordinator, here the group's own): each share partition's leader
//! loads its state from here when it first serves the group, and writes
//! it back whenever acknowledgements moved it, before answering them. The
//! state is a record of the group's `__consumer_offsets` partition
//! (`records::share_state_key`), so it outlives the leader, this
//! coordinator and restarts.

use std::rc::Rc;

use kafka_protocol::ResponseError;

use super::share_heartbeat::shareable;
use super::state::Group;
use super::{append, records, valid_group_id, Coordinator};

/// What of a share partition is kept durable: its start, and the ranges
/// past it already done with (acknowledged or archived). Records in flight
/// otherwise are delivered again after a load; delivery counts are not
/// kept. `leader_epoch` is the partition leader's that wrote it: a
/// deposed leader's late write cannot overwrite its successor's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShareSnapshot {
    pub leader_epoch: i32,
    pub start: i64,
    pub done: Vec<(i64, i64)>,
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

/// Writes the state, unless a later leader of the partition wrote one
/// (FENCED_LEADER_EPOCH: the writer was deposed). A leader writes its
/// partition's states one at a time, so they arrive in order.
pub async fn write(
    coord: &Rc<Coordinator>,
    group_id: &str,
    topic: &str,
    partition: i32,
    snapshot: ShareSnapshot,
) -> i16 {
    if !valid_group_id(group_id) {
        return ResponseError::InvalidGroupId.code();
    }
    let key = (topic.to_string(), partition);
    {
        let groups = coord.groups.borrow();
        if let Some(g) = groups.get(group_id) {
            if !shareable(g) {
                return ResponseError::GroupIdNotFound.code();
            }
            let later = |s: &ShareSnapshot| s.leader_epoch > snapshot.leader_epoch;
            if g.share_states.get(&key).is_some_and(later) {
                return ResponseError::FencedLeaderEpoch.code();
            }
        }
    }
    let record = (
        records::share_state_key(group_id, topic, partition),
        Some(records::share_state_value(&snapshot)),
    );
    if let Err(code) = append(coord, group_id, &[record]).await {
        return code;
    }
    let now = crate::runtime::now_ms();
    let mut groups = coord.groups.borrow_mut();
    let g = groups
        .entry(group_id.to_string())
        .or_insert_with(|| Group::new(group_id.to_string(), now));
    apply(g, key, Some(snapshot));
    0
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

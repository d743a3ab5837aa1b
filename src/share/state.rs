//! A share partition's durable state, read from and written to the
//! group's coordinator: this broker's (a `GroupMsg` to its shard) or
//! another's (ReadShareGroupState / WriteShareGroupState, the share
//! coordinator's RPCs in Kafka, which the coordinator broker serves).

use kafka_protocol::ResponseError;

use super::partition::Snapshot;
use super::Service;
use crate::group::GroupMsg;
use crate::shard::TopicPartition;

/// The state last written, `None` if none was.
pub async fn read(
    service: &Service,
    group: &str,
    tp: &TopicPartition,
) -> Result<Option<Snapshot>, i16> {
    if crate::group::coordinated_elsewhere(&service.shard, group) {
        return super::remote::read(service, group, tp).await;
    }
    let msg = |reply| GroupMsg::ShareStateRead {
        group_id: group.to_string(),
        topic: tp.topic.to_string(),
        partition: tp.partition,
        reply,
    };
    crate::group::ask(&service.groups, group, msg)
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable.code()))
}

/// Writes the states in one go (one append at the coordinator); the code
/// of each, in order (0: written).
pub async fn write(
    service: &Service,
    group: &str,
    states: Vec<(TopicPartition, Snapshot)>,
) -> Vec<i16> {
    if crate::group::coordinated_elsewhere(&service.shard, group) {
        return super::remote::write(service, group, &states).await;
    }
    let count = states.len();
    let states = states
        .into_iter()
        .map(|(tp, snapshot)| (tp.topic.to_string(), tp.partition, snapshot))
        .collect();
    let msg = |reply| GroupMsg::ShareStateWrite {
        group_id: group.to_string(),
        states,
        reply,
    };
    crate::group::ask(&service.groups, group, msg)
        .await
        .unwrap_or_else(|| vec![ResponseError::CoordinatorNotAvailable.code(); count])
}

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

/// Writes `snapshot`; the code (0: written, or a later one was).
pub async fn write(service: &Service, group: &str, tp: &TopicPartition, snapshot: Snapshot) -> i16 {
    if crate::group::coordinated_elsewhere(&service.shard, group) {
        return super::remote::write(service, group, tp, snapshot).await;
    }
    let msg = |reply| GroupMsg::ShareStateWrite {
        group_id: group.to_string(),
        topic: tp.topic.to_string(),
        partition: tp.partition,
        snapshot,
        reply,
    };
    crate::group::ask(&service.groups, group, msg)
        .await
        .unwrap_or(ResponseError::CoordinatorNotAvailable.code())
}

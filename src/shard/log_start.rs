//! Moving a partition's log start past its first segment's base: a client's
//! DeleteRecords on the leader (Kafka's deleteRecordsOnLeader and
//! DelayedDeleteRecords), and a follower taking its leader's start.
//!
//! The leader moves its own start and answers once every replica on a live
//! broker has told (in its fetches) that its start is there too: the low
//! watermark. A follower learns the leader's start from each fetch answer
//! and moves its own as far as its high watermark.

use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::ops::{led_partition, storage_error_code};
use super::replica::{wait_leading, Waited};
use super::*;
use crate::replication::Role;
use crate::storage::LogStartSync;

/// The longest a DeleteRecords waits for the followers, whatever timeout
/// it asks for.
pub const DELETE_RECORDS_WAIT_MAX: Duration = Duration::from_secs(300);

/// DeleteRecords' offset for "everything below the high watermark".
const HIGH_WATERMARK: i64 = -1;

impl Shard {
    /// DeleteRecords on each partition's owner, the partitions waited on
    /// together; an outcome per item, in order.
    pub async fn delete_records(
        self: &Rc<Self>,
        items: Vec<DeleteRecordsItem>,
    ) -> Vec<DeleteRecordsOutcome> {
        self.scatter(
            items,
            |i| &i.tp,
            |s, items| Box::pin(delete_records(s, items)),
            |items, reply| ShardMsg::DeleteRecords { items, reply },
            refused(ResponseError::KafkaStorageError.code()),
        )
        .await
    }
}

fn refused(error: i16) -> DeleteRecordsOutcome {
    DeleteRecordsOutcome {
        error,
        low_watermark: -1,
    }
}

pub async fn delete_records(
    shard: Rc<Shard>,
    items: Vec<DeleteRecordsItem>,
) -> Vec<DeleteRecordsOutcome> {
    let deletes = items.into_iter().map(|item| delete_one(&shard, item));
    futures::future::join_all(deletes).await
}

async fn delete_one(shard: &Shard, item: DeleteRecordsItem) -> DeleteRecordsOutcome {
    let partition = match led_partition(shard, &item.tp, -1) {
        Ok(p) => p,
        Err(code) => return refused(code),
    };
    let leader_epoch = partition.role.borrow().leader_epoch();
    let (target, sync) = match advance_on_leader(&item, &partition) {
        Ok(advanced) => advanced,
        Err(code) => return refused(code),
    };
    if let Some(sync) = sync {
        if let Err(e) = crate::runtime::blocking(move || sync.run()).await {
            write_failures::failed_io("log start sync", &item.tp, &e);
            return refused(ResponseError::KafkaStorageError.code());
        }
    }
    wait_low_watermark(shard, &partition, target, leader_epoch, item.deadline).await
}

/// Moves the leader's log start to the item's offset: that offset, and
/// the sync that makes the move durable if the start moved; or the Kafka
/// error that refuses it.
fn advance_on_leader(
    item: &DeleteRecordsItem,
    partition: &Partition,
) -> Result<(i64, Option<LogStartSync>), i16> {
    let mut log = partition.log.borrow_mut();
    // Kafka refuses it on a compact-only topic: its cleaner keeps every
    // key's latest record, which a log start would cut. A topic without
    // any cleanup (an empty policy) keeps everything until told otherwise.
    let config = log.config();
    if config.cleanup_compact && !config.cleanup_delete {
        return Err(ResponseError::PolicyViolation.code());
    }
    let hw = log.high_watermark();
    let target = if item.offset == HIGH_WATERMARK {
        hw
    } else {
        item.offset
    };
    if !(0..=hw).contains(&target) {
        return Err(ResponseError::OffsetOutOfRange.code());
    }
    let moved = log.advance_log_start(target).map_err(|e| {
        if !write_failures::failed_storage("delete records", &item.tp, &e) {
            tracing::warn!(topic = %item.tp.topic, partition = item.tp.partition, error = %e, "cannot move the log start");
        }
        storage_error_code(&e)
    })?;
    let delay_ms = log.config().file_delete_delay_ms;
    drop(log);
    // At or below the start nothing moves (Kafka answers the start as it is).
    let Some(moved) = moved else {
        return Ok((target, None));
    };
    // Fetch sessions tell the new start; waiting followers fetch it.
    partition.notify_moved();
    unlink_deleted(moved.deleted, delay_ms);
    Ok((target, Some(moved.sync)))
}

/// Waits until the low watermark reaches `target` or `deadline` passes
/// (REQUEST_TIMED_OUT), while this replica leads at `leader_epoch`.
async fn wait_low_watermark(
    shard: &Shard,
    partition: &Partition,
    target: i64,
    leader_epoch: i32,
    deadline: Instant,
) -> DeleteRecordsOutcome {
    let reached = |role: &Role| {
        let low_watermark = low_watermark(shard, role, partition);
        (low_watermark >= target).then_some(low_watermark)
    };
    match wait_leading(shard, partition, leader_epoch, deadline, reached).await {
        Waited::Done(low_watermark) => DeleteRecordsOutcome {
            error: 0,
            low_watermark,
        },
        Waited::NotLeader => refused(ResponseError::NotLeaderOrFollower.code()),
        Waited::TimedOut => refused(ResponseError::RequestTimedOut.code()),
    }
}

/// The lowest log start among the partition's replicas on live brokers.
fn low_watermark(shard: &Shard, role: &Role, partition: &Partition) -> i64 {
    let own = partition.log.borrow().log_start_offset();
    let Role::Leader(leader) = role else {
        return own;
    };
    let topics = shard.topics.borrow();
    let live = |node| {
        topics
            .cluster
            .as_ref()
            .is_some_and(|c| c.image.broker_live(node))
    };
    leader.low_watermark(own, live)
}

/// A follower takes the leader's log start `leader_start` from a fetch
/// answer, as far as its own high watermark (Kafka's follower
/// maybeIncrementLogStartOffset), so that the leader's DeleteRecords sees
/// it in the next fetch and a later leader serves nothing below it.
pub(super) fn follow_leader_start(tp: &TopicPartition, partition: &Partition, leader_start: i64) {
    let mut log = partition.log.borrow_mut();
    let target = leader_start.min(log.high_watermark());
    match log.advance_log_start(target) {
        Ok(None) => {}
        Ok(Some(moved)) => {
            let delay_ms = log.config().file_delete_delay_ms;
            drop(log);
            partition.notify_moved();
            unlink_deleted(moved.deleted, delay_ms);
            // Not waited for: a follower that loses it takes the start
            // from the leader again.
            let sync = moved.sync;
            crate::runtime::spawn_local(crate::runtime::blocking(move || {
                if let Err(e) = sync.run() {
                    tracing::warn!(error = %e, "cannot sync a follower's log start");
                }
            }))
            .detach();
        }
        Err(e) => {
            if !write_failures::failed_storage("follower log start", tp, &e) {
                tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "cannot take the leader's log start");
            }
        }
    }
}

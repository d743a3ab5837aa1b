//! Transactional offset commits (TxnOffsetCommit), as Kafka's group
//! coordinator keeps them: the offsets are written to the group's
//! `__consumer_offsets` partition as the producer's transactional batch and
//! held pending for that producer; the transaction's marker in the same
//! partition settles them: COMMIT makes them the group's committed offsets,
//! ABORT drops them. Replay applies the same rules to the log.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError;

use super::offsets::{apply, commit_group_error, CommitKind, OffsetChecker};
use super::records::OffsetValue;
use super::state::{Committed, Group};
use super::{append_as, offsets_partition, Coordinator, KeyValue};

/// Pending offsets one producer may hold in one group; a transaction
/// naming more partitions is refused rather than grow without bound.
pub const PENDING_OFFSETS_PER_PRODUCER_MAX: usize = 100_000;

pub async fn commit(
    coord: &Rc<Coordinator>,
    request: TxnOffsetCommitRequest,
    verified: Option<i64>,
    now: i64,
) -> TxnOffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let producer_id = request.producer_id.0;
    let group_error = commit_group_error(
        coord,
        &group_id,
        request.generation_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
        CommitKind::Transactional,
        now,
    )
    .unwrap_or(ResponseError::CoordinatorNotAvailable.code());
    let checker = OffsetChecker::new(&coord.shard, &group_id, now);
    let mut writes: Vec<(usize, usize, KeyValue, OffsetValue)> = Vec::new();
    let mut response = TxnOffsetCommitResponse::default();
    for (ti, t) in request.topics.iter().enumerate() {
        let mut rt = TxnOffsetCommitResponseTopic::default();
        rt.name = t.name.clone();
        for (pi, p) in t.partitions.iter().enumerate() {
            let checked = checker.check(
                group_error,
                &t.name,
                p.partition_index,
                p.committed_offset,
                p.committed_leader_epoch,
                p.committed_metadata.as_deref(),
            );
            let error = match checked {
                Ok((record, value)) => {
                    writes.push((ti, pi, record, value));
                    0
                }
                Err(code) => code,
            };
            let mut rp = TxnOffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            rp.error_code = error;
            rt.partitions.push(rp);
        }
        response.topics.push(rt);
    }
    if writes.is_empty() {
        return response;
    }
    let pending_now = coord
        .groups
        .borrow()
        .get(&group_id)
        .and_then(|g| g.pending_txn_offsets.get(&producer_id))
        .map_or(0, |p| p.len());
    if pending_now + writes.len() > PENDING_OFFSETS_PER_PRODUCER_MAX {
        return refuse(response, &writes, ResponseError::InvalidRequest.code());
    }
    let kvs: Vec<KeyValue> = writes.iter().map(|w| w.2.clone()).collect();
    let producer = (producer_id, request.producer_epoch);
    match append_as(coord, &group_id, &kvs, Some(producer), verified).await {
        Ok(first) => {
            let mut groups = coord.groups.borrow_mut();
            let group = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id.clone(), now));
            for (i, (ti, pi, _, value)) in writes.into_iter().enumerate() {
                let t = &request.topics[ti];
                let partition = t.partitions[pi].partition_index;
                hold(
                    group,
                    producer_id,
                    t.name.to_string(),
                    partition,
                    value,
                    first + i as i64,
                );
            }
        }
        Err(code) => {
            // An old epoch is the producer's to hear; anything else is a
            // write the client retries.
            let code = if code == ResponseError::InvalidProducerEpoch.code() {
                code
            } else {
                ResponseError::CoordinatorNotAvailable.code()
            };
            return refuse(response, &writes, code);
        }
    }
    response
}

fn refuse(
    mut response: TxnOffsetCommitResponse,
    writes: &[(usize, usize, KeyValue, OffsetValue)],
    code: i16,
) -> TxnOffsetCommitResponse {
    for (ti, pi, _, _) in writes {
        response.topics[*ti].partitions[*pi].error_code = code;
    }
    response
}

/// Holds an offset for `producer_id` until its transaction settles.
pub fn hold(
    group: &mut Group,
    producer_id: i64,
    topic: String,
    partition: i32,
    value: OffsetValue,
    log_offset: i64,
) {
    group
        .pending_txn_offsets
        .entry(producer_id)
        .or_default()
        .insert(
            (topic, partition),
            Committed {
                offset: value.offset,
                leader_epoch: value.leader_epoch,
                metadata: value.metadata,
                commit_timestamp: value.commit_timestamp,
                log_offset,
            },
        );
}

/// A marker for `producer_id` landed in `partition` of the offsets topic:
/// settles that producer's pending offsets in the groups stored there.
pub fn settle(
    coord: &Coordinator,
    partition: i32,
    partitions: i32,
    producer_id: i64,
    commit: bool,
) {
    let mut groups = coord.groups.borrow_mut();
    for group in groups.values_mut() {
        if offsets_partition(&group.id, partitions) != partition {
            continue;
        }
        let Some(pending) = group.pending_txn_offsets.remove(&producer_id) else {
            continue;
        };
        if commit {
            settle_into(group, pending);
        }
    }
}

fn settle_into(group: &mut Group, pending: BTreeMap<(String, i32), Committed>) {
    for ((topic, partition), c) in pending {
        let value = OffsetValue {
            offset: c.offset,
            leader_epoch: c.leader_epoch,
            metadata: c.metadata,
            commit_timestamp: c.commit_timestamp,
        };
        apply(group, topic, partition, Some(value), c.log_offset);
    }
}

/// Whether a transaction holds an offset of `(topic, partition)` in the
/// group not yet settled (OffsetFetch's require_stable).
pub fn unstable(group: &Group, topic: &str, partition: i32) -> bool {
    let key = (topic.to_string(), partition);
    group
        .pending_txn_offsets
        .values()
        .any(|pending| pending.contains_key(&key))
}

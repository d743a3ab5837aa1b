//! Partition reassignment (KIP-455), as the metadata records carry it out.
//!
//! A reassignment to a target makes the partition's replicas the target's
//! followed by the replicas leaving, so the new ones are followers that
//! catch up from the leader and join the ISR the usual way. Once every
//! target replica is in the ISR the reassignment completes within the
//! record that brought the last one in: the replicas become the target,
//! the ISR keeps only target members, and a leader that is leaving hands
//! over to the first target replica in sync on a live broker. A cancel
//! goes back to the replicas it started from. All of it is deterministic,
//! so every node's image agrees.

use super::image::{ClusterImage, PartitionState, Reassignment, NO_LEADER};
use super::records::{RecordError, RecordOutcome, REPLICAS_MAX};

/// Starts moving `topic`'s `partition` to `target`, replacing any
/// reassignment under way; it may complete at once (the target is in sync
/// already).
pub(super) fn reassign(
    image: &mut ClusterImage,
    topic: &str,
    partition: i32,
    target: &[i32],
) -> Result<RecordOutcome, RecordError> {
    check_target(image, target)?;
    let state = partition_state(image, topic, partition)?;
    let ongoing = image.reassignment(topic, partition).cloned();
    // The replicas it started from: those a reassignment under way is
    // adding are not among them.
    let original: Vec<i32> = match &ongoing {
        Some(r) => without(&state.replicas, &r.adding),
        None => state.replicas.clone(),
    };
    if ongoing.is_none() && state.replicas == target {
        return Ok(RecordOutcome::Unchanged);
    }
    let merged: Vec<i32> = target
        .iter()
        .copied()
        .chain(without(&state.replicas, target))
        .collect();
    let reassignment = Reassignment {
        adding: without(target, &original),
        removing: without(&merged, target),
    };
    let state = partition_state_mut(image, topic, partition)?;
    state.replicas = merged;
    state.partition_epoch += 1;
    image
        .reassignments
        .entry(topic.to_string())
        .or_default()
        .insert(partition, reassignment);
    try_complete(image, topic, partition);
    Ok(RecordOutcome::Applied)
}

/// Cancels the reassignment of `topic`'s `partition`: back to the replicas
/// it started from, the ISR without the ones it was adding.
pub(super) fn cancel(
    image: &mut ClusterImage,
    topic: &str,
    partition: i32,
) -> Result<RecordOutcome, RecordError> {
    partition_state(image, topic, partition)?;
    let reassignment = image
        .reassignment(topic, partition)
        .cloned()
        .ok_or_else(|| RecordError::NoReassignmentInProgress {
            topic: topic.to_string(),
            partition,
        })?;
    let live: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
    let state = partition_state_mut(image, topic, partition)?;
    let isr = without(&state.isr, &reassignment.adding);
    if isr.is_empty() {
        return Err(RecordError::InvalidPartitionChange(
            "only replicas being added are in sync: cancelling would leave none".into(),
        ));
    }
    let replicas = without(&state.replicas, &reassignment.adding);
    settle(state, replicas, isr, &live);
    forget(image, topic, partition);
    Ok(RecordOutcome::Applied)
}

/// Completes the reassignment of `topic`'s `partition` if every target
/// replica is in the ISR now; after any change of the partition's ISR.
pub(super) fn try_complete(image: &mut ClusterImage, topic: &str, partition: i32) {
    let Some(reassignment) = image.reassignment(topic, partition).cloned() else {
        return;
    };
    let live: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
    let state = partition_state_mut(image, topic, partition).expect("a reassigned partition");
    let target = without(&state.replicas, &reassignment.removing);
    if !target.iter().all(|r| state.isr.contains(r)) {
        return;
    }
    let isr: Vec<i32> = state
        .isr
        .iter()
        .copied()
        .filter(|r| target.contains(r))
        .collect();
    settle(state, target, isr, &live);
    forget(image, topic, partition);
}

/// Gives the partition its final replicas and ISR; a leader no longer among
/// them hands over to the first replica in sync on a live broker (none:
/// offline), with a new leader epoch.
fn settle(state: &mut PartitionState, replicas: Vec<i32>, isr: Vec<i32>, live: &[i32]) {
    assert!(!isr.is_empty() && isr.iter().all(|r| replicas.contains(r)));
    if !isr.contains(&state.leader) {
        state.leader = replicas
            .iter()
            .copied()
            .find(|r| isr.contains(r) && live.contains(r))
            .unwrap_or(NO_LEADER);
        state.leader_epoch += 1;
    }
    state.replicas = replicas;
    state.isr = isr;
    state.partition_epoch += 1;
}

fn forget(image: &mut ClusterImage, topic: &str, partition: i32) {
    if let Some(partitions) = image.reassignments.get_mut(topic) {
        partitions.remove(&partition);
        if partitions.is_empty() {
            image.reassignments.remove(topic);
        }
    }
}

/// A target Kafka accepts: non-empty, no broker twice, every broker
/// registered.
fn check_target(image: &ClusterImage, target: &[i32]) -> Result<(), RecordError> {
    let bad = |why: String| Err(RecordError::InvalidAssignment(why));
    if target.is_empty() || target.len() > REPLICAS_MAX {
        return bad(format!("{} replicas (1 to {REPLICAS_MAX})", target.len()));
    }
    if target
        .iter()
        .enumerate()
        .any(|(i, b)| target[..i].contains(b))
    {
        return bad(format!("a broker appears twice in {target:?}"));
    }
    if let Some(b) = target.iter().find(|b| !image.brokers.contains_key(b)) {
        return bad(format!("broker {b} is not registered"));
    }
    Ok(())
}

/// `ids` without those in `gone`, in order.
fn without(ids: &[i32], gone: &[i32]) -> Vec<i32> {
    ids.iter().copied().filter(|r| !gone.contains(r)).collect()
}

fn unknown(topic: &str, partition: i32) -> RecordError {
    RecordError::UnknownPartition {
        topic: topic.to_string(),
        partition,
    }
}

fn partition_state<'a>(
    image: &'a ClusterImage,
    topic: &str,
    partition: i32,
) -> Result<&'a PartitionState, RecordError> {
    image
        .partition(topic, partition)
        .ok_or_else(|| unknown(topic, partition))
}

fn partition_state_mut<'a>(
    image: &'a mut ClusterImage,
    topic: &str,
    partition: i32,
) -> Result<&'a mut PartitionState, RecordError> {
    let index = usize::try_from(partition).map_err(|_| unknown(topic, partition))?;
    image
        .topics
        .get_mut(topic)
        .and_then(|t| t.partitions.get_mut(index))
        .ok_or_else(|| unknown(topic, partition))
}

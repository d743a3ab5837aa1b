//! A share partition's state at another broker's coordinator: Kafka's
//! ReadShareGroupState and WriteShareGroupState (what its share partition
//! leaders send the share coordinator), over kept connections. The state's
//! ranges travel as state batches: those done with acknowledged, those
//! delivered and not done with available, with their delivery counts.

use std::time::Duration;

use kafka_protocol::messages::{
    read_share_group_state_request, write_share_group_state_request, ApiKey,
    ReadShareGroupStateRequest, ReadShareGroupStateResponse, WriteShareGroupStateRequest,
    WriteShareGroupStateResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::partition::Snapshot;
use super::Service;
use crate::group::{offsets_partition, offsets_partition_count, OFFSETS_TOPIC};
use crate::net::client::KeptConnections;
use crate::shard::TopicPartition;

/// Kafka's RecordState values a state batch is sent in: a range delivered
/// and not done with, one done with, and one done with by rejection (sent
/// by Kafka's leaders; read as done).
pub const AVAILABLE: i8 = 0;
pub const ACKNOWLEDGED: i8 = 2;
pub const ARCHIVED: i8 = 4;

/// One state batch: (first offset, last offset, delivery state, delivery
/// count).
pub type StateRange = (i64, i64, i8, i16);

/// A snapshot's ranges as state batches.
pub fn state_ranges(snapshot: &Snapshot) -> Vec<StateRange> {
    let done = snapshot
        .done
        .iter()
        .map(|&(first, last)| (first, last, ACKNOWLEDGED, 0));
    let delivered = snapshot
        .delivered
        .iter()
        .map(|&(first, last, deliveries)| (first, last, AVAILABLE, deliveries));
    done.chain(delivered).collect()
}

/// Puts state batches' ranges in `snapshot`; `None` if one is in a state
/// no snapshot keeps (acquired, or unknown).
pub fn with_state_ranges(
    mut snapshot: Snapshot,
    ranges: impl Iterator<Item = StateRange>,
) -> Option<Snapshot> {
    for (first, last, state, deliveries) in ranges {
        match state {
            ACKNOWLEDGED | ARCHIVED => snapshot.done.push((first, last)),
            AVAILABLE => snapshot.delivered.push((first, last, deliveries)),
            _ => return None,
        }
    }
    Some(snapshot)
}
/// The start offset answered for a partition without state.
pub const NO_STATE: i64 = -1;
/// Bound on a connect and a call.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on an answer: a state holds at most a window of ranges.
const RESPONSE_MAX: u32 = 4 << 20;
const IDLE_CONNECTIONS_MAX: usize = 4;

pub fn connections(node_id: i32) -> KeptConnections {
    KeptConnections::new(
        format!("sluice-share-state-{node_id}"),
        RESPONSE_MAX,
        TIMEOUT,
        IDLE_CONNECTIONS_MAX,
    )
}

/// The coordinator broker of `group`, its address, and the topic's id.
fn target(service: &Service, group: &str, tp: &TopicPartition) -> Result<(i32, String, Uuid), i16> {
    let shard = &service.shard;
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    let partition = offsets_partition(group, offsets_partition_count(shard));
    let topics = shard.topics();
    let leader = topics
        .cluster
        .as_ref()
        .and_then(|c| c.partition(OFFSETS_TOPIC, partition))
        .map(|p| p.leader)
        .filter(|&l| l >= 0)
        .ok_or(unavailable)?;
    let addr = shard.broker_address(leader).ok_or(unavailable)?;
    let id = topics
        .get(&tp.topic)
        .map(|t| t.uuid())
        .ok_or(ResponseError::UnknownTopicOrPartition.code())?;
    Ok((leader, addr, id))
}

pub async fn read(
    service: &Service,
    group: &str,
    tp: &TopicPartition,
) -> Result<Option<Snapshot>, i16> {
    let (node, addr, topic_id) = target(service, group, tp)?;
    let mut partition = read_share_group_state_request::PartitionData::default();
    partition.partition = tp.partition;
    let mut topic = read_share_group_state_request::ReadStateData::default();
    topic.topic_id = topic_id;
    topic.partitions = vec![partition];
    let mut request = ReadShareGroupStateRequest::default();
    request.group_id = StrBytes::from_string(group.to_string());
    request.topics = vec![topic];
    let key = (ApiKey::ReadShareGroupState, 0);
    let response: ReadShareGroupStateResponse = service
        .state_connections
        .call(&service.dialer, node, &addr, key, &request)
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
    let answer = response
        .results
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or(ResponseError::CoordinatorNotAvailable.code())?;
    if answer.error_code != 0 {
        return Err(answer.error_code);
    }
    // A reset state (a state epoch) may have no start either.
    if answer.start_offset == NO_STATE && answer.state_epoch == 0 {
        return Ok(None);
    }
    let snapshot = Snapshot {
        // The loading leader writes at its own epoch from now on.
        leader_epoch: 0,
        state_epoch: answer.state_epoch,
        start: answer.start_offset,
        ..Snapshot::default()
    };
    let ranges = answer.state_batches.iter().map(|b| {
        (
            b.first_offset,
            b.last_offset,
            b.delivery_state,
            b.delivery_count,
        )
    });
    with_state_ranges(snapshot, ranges)
        .map(Some)
        .ok_or(ResponseError::UnknownServerError.code())
}

/// Writes the states at the group's coordinator in one
/// WriteShareGroupState; the code of each, in order.
pub async fn write(
    service: &Service,
    group: &str,
    states: &[(TopicPartition, Snapshot)],
) -> Vec<i16> {
    let unavailable = ResponseError::CoordinatorNotAvailable.code();
    let mut codes = vec![0i16; states.len()];
    let mut node_addr: Option<(i32, String)> = None;
    let mut topics: Vec<write_share_group_state_request::WriteStateData> = Vec::new();
    // (index in `states`, topic id, partition) of each state sent, to find
    // its answer.
    let mut sent: Vec<(usize, Uuid, i32)> = Vec::new();
    for (i, (tp, snapshot)) in states.iter().enumerate() {
        let (node, addr, topic_id) = match target(service, group, tp) {
            Ok(t) => t,
            Err(code) => {
                codes[i] = code;
                continue;
            }
        };
        node_addr.get_or_insert((node, addr));
        let mut partition = write_share_group_state_request::PartitionData::default();
        partition.partition = tp.partition;
        partition.leader_epoch = snapshot.leader_epoch;
        partition.state_epoch = snapshot.state_epoch;
        partition.start_offset = snapshot.start;
        partition.state_batches = state_ranges(snapshot)
            .into_iter()
            .map(|(first, last, state, deliveries)| {
                let mut b = write_share_group_state_request::StateBatch::default();
                b.first_offset = first;
                b.last_offset = last;
                b.delivery_state = state;
                b.delivery_count = deliveries;
                b
            })
            .collect();
        match topics.iter_mut().find(|t| t.topic_id == topic_id) {
            Some(t) => t.partitions.push(partition),
            None => {
                let mut topic = write_share_group_state_request::WriteStateData::default();
                topic.topic_id = topic_id;
                topic.partitions = vec![partition];
                topics.push(topic);
            }
        }
        sent.push((i, topic_id, tp.partition));
    }
    let Some((node, addr)) = node_addr else {
        return codes;
    };
    let mut request = WriteShareGroupStateRequest::default();
    request.group_id = StrBytes::from_string(group.to_string());
    request.topics = topics;
    let key = (ApiKey::WriteShareGroupState, 0);
    let response: Result<WriteShareGroupStateResponse, _> = service
        .state_connections
        .call(&service.dialer, node, &addr, key, &request)
        .await;
    for (i, topic_id, partition) in sent {
        codes[i] = response
            .as_ref()
            .ok()
            .and_then(|r| r.results.iter().find(|t| t.topic_id == topic_id))
            .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
            .map_or(unavailable, |p| p.error_code);
    }
    codes
}

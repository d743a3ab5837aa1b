//! ReadShareGroupState and WriteShareGroupState (KIP-932): another
//! broker's share partition leader loading or writing its state at this
//! broker's group coordinator (`share::remote` sends them). Inter-broker:
//! ClusterAction on the cluster, as Kafka requires of them.

use std::rc::Rc;

use kafka_protocol::messages::read_share_group_state_response::{
    PartitionResult as ReadResult, ReadStateResult, StateBatch,
};
use kafka_protocol::messages::write_share_group_state_response::{
    PartitionResult as WriteResult, WriteStateResult,
};
use kafka_protocol::messages::{
    ApiKey, ReadShareGroupStateRequest, ReadShareGroupStateResponse, WriteShareGroupStateRequest,
    WriteShareGroupStateResponse,
};
use kafka_protocol::ResponseError;

use crate::group::{ask, Coordinator, GroupMsg, ShareWrite};
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use crate::share::partition::Snapshot;
use crate::share::remote::{state_ranges, with_state_ranges, NO_STATE};

pub const READ_SHARE_GROUP_STATE: ApiSpec = ApiSpec {
    key: ApiKey::ReadShareGroupState,
    min: 0,
    max: 0,
};
pub const WRITE_SHARE_GROUP_STATE: ApiSpec = ApiSpec {
    key: ApiKey::WriteShareGroupState,
    min: 0,
    max: 0,
};

pub async fn read(
    groups: &Rc<Coordinator>,
    access: &Access,
    request: ReadShareGroupStateRequest,
) -> ReadShareGroupStateResponse {
    let allowed = access.cluster(Operation::ClusterAction);
    let group = request.group_id.to_string();
    let topics = groups.shard().topics();
    let mut response = ReadShareGroupStateResponse::default();
    for t in request.topics {
        let name = topics.name_of(t.topic_id).map(str::to_string);
        let mut result = ReadStateResult::default();
        result.topic_id = t.topic_id;
        for p in t.partitions {
            let mut r = ReadResult::default();
            r.partition = p.partition;
            r.start_offset = NO_STATE;
            let answer = match (&name, allowed) {
                (_, false) => Err(ResponseError::ClusterAuthorizationFailed.code()),
                (None, _) => Err(ResponseError::UnknownTopicOrPartition.code()),
                (Some(name), true) => ask(groups, &group, |reply| GroupMsg::ShareStateRead {
                    group_id: group.clone(),
                    topic: name.clone(),
                    partition: p.partition,
                    reply,
                })
                .await
                .unwrap_or(Err(crate::group::not_available())),
            };
            match answer {
                Ok(Some(snapshot)) => {
                    r.start_offset = snapshot.start;
                    r.state_epoch = snapshot.state_epoch;
                    r.state_batches = state_ranges(&snapshot)
                        .into_iter()
                        .map(|(first, last, state, deliveries)| {
                            let mut b = StateBatch::default();
                            b.first_offset = first;
                            b.last_offset = last;
                            b.delivery_state = state;
                            b.delivery_count = deliveries;
                            b
                        })
                        .collect();
                }
                Ok(None) => {}
                Err(code) => r.error_code = code,
            }
            result.partitions.push(r);
        }
        response.results.push(result);
    }
    response
}

pub async fn write(
    groups: &Rc<Coordinator>,
    access: &Access,
    request: WriteShareGroupStateRequest,
) -> WriteShareGroupStateResponse {
    let allowed = access.cluster(Operation::ClusterAction);
    let group = request.group_id.to_string();
    let topics = groups.shard().topics();
    let mut response = WriteShareGroupStateResponse::default();
    // Every acceptable state goes to the coordinator in one message (one
    // append); `pending` says which answers wait for its codes.
    let mut states: Vec<ShareWrite> = Vec::new();
    let mut pending: Vec<(usize, usize)> = Vec::new();
    for t in request.topics {
        let name = topics.name_of(t.topic_id).map(str::to_string);
        let mut result = WriteStateResult::default();
        result.topic_id = t.topic_id;
        for p in t.partitions {
            let mut r = WriteResult::default();
            r.partition = p.partition;
            let snapshot = Snapshot {
                leader_epoch: p.leader_epoch,
                state_epoch: p.state_epoch,
                start: p.start_offset,
                ..Snapshot::default()
            };
            let ranges = p.state_batches.iter().map(|b| {
                (
                    b.first_offset,
                    b.last_offset,
                    b.delivery_state,
                    b.delivery_count,
                )
            });
            let snapshot = with_state_ranges(snapshot, ranges);
            r.error_code = match (&name, allowed, snapshot) {
                (_, false, _) => ResponseError::ClusterAuthorizationFailed.code(),
                (None, _, _) => ResponseError::UnknownTopicOrPartition.code(),
                // A leader sends no acquired range (it would be delivered
                // again anyway) and always a start.
                (_, _, None) => ResponseError::InvalidRequest.code(),
                _ if p.start_offset < 0 => ResponseError::InvalidRequest.code(),
                (Some(name), true, Some(snapshot)) => {
                    pending.push((response.results.len(), result.partitions.len()));
                    states.push((name.clone(), p.partition, snapshot));
                    0
                }
            };
            result.partitions.push(r);
        }
        response.results.push(result);
    }
    if !states.is_empty() {
        let count = states.len();
        let codes = ask(groups, &group, |reply| GroupMsg::ShareStateWrite {
            group_id: group.clone(),
            states,
            reply,
        })
        .await
        .unwrap_or_else(|| vec![crate::group::not_available(); count]);
        for ((t, p), code) in pending.into_iter().zip(codes) {
            response.results[t].partitions[p].error_code = code;
        }
    }
    response
}

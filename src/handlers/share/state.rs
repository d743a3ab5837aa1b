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

use crate::group::{ask, Coordinator, GroupMsg};
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use crate::share::partition::Snapshot;
use crate::share::remote::{ACKNOWLEDGED, NO_STATE};

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
                    r.state_batches = snapshot
                        .done
                        .iter()
                        .map(|&(first, last)| {
                            let mut b = StateBatch::default();
                            b.first_offset = first;
                            b.last_offset = last;
                            b.delivery_state = ACKNOWLEDGED;
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
    for t in request.topics {
        let name = topics.name_of(t.topic_id).map(str::to_string);
        let mut result = WriteStateResult::default();
        result.topic_id = t.topic_id;
        for p in t.partitions {
            let mut r = WriteResult::default();
            r.partition = p.partition;
            let acknowledged = p
                .state_batches
                .iter()
                .all(|b| b.delivery_state == ACKNOWLEDGED);
            r.error_code = match (&name, allowed) {
                (_, false) => ResponseError::ClusterAuthorizationFailed.code(),
                (None, _) => ResponseError::UnknownTopicOrPartition.code(),
                // Sluice's leaders send only the ranges done with.
                _ if !acknowledged || p.start_offset < 0 => ResponseError::InvalidRequest.code(),
                (Some(name), true) => {
                    let snapshot = Snapshot {
                        leader_epoch: p.leader_epoch,
                        state_epoch: p.state_epoch,
                        start: p.start_offset,
                        done: p
                            .state_batches
                            .iter()
                            .map(|b| (b.first_offset, b.last_offset))
                            .collect(),
                    };
                    ask(groups, &group, |reply| GroupMsg::ShareStateWrite {
                        group_id: group.clone(),
                        topic: name.clone(),
                        partition: p.partition,
                        snapshot,
                        reply,
                    })
                    .await
                    .unwrap_or_else(crate::group::not_available)
                }
            };
            result.partitions.push(r);
        }
        response.results.push(result);
    }
    response
}

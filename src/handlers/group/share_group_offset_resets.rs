//! AlterShareGroupOffsets and DeleteShareGroupOffsets (KIP-932): an
//! operator's reset of an empty share group's partitions
//! (`kafka-share-groups.sh --reset-offsets`, `--delete-offsets`; Admin's
//! `alterShareGroupOffsets`, `deleteShareGroupOffsets`). The group's
//! coordinator writes each partition's new state with its state epoch
//! bumped (`group::ShareReset`), so a leader's copy loaded before is
//! refused when written and loaded again.

use std::rc::Rc;

use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition as AlteredPartition,
    AlterShareGroupOffsetsResponseTopic as AlteredTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as DeletedTopic;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, ApiKey,
    DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::call;
use crate::group::{Coordinator, GroupMsg, ShareReset};
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::metadata::Topics;
use crate::security::acl::Operation;

pub const ALTER_SPEC: ApiSpec = ApiSpec {
    key: ApiKey::AlterShareGroupOffsets,
    min: 0,
    max: 0,
};
pub const DELETE_SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DeleteShareGroupOffsets,
    min: 0,
    max: 0,
};

/// The group's coordinator resets it; its error code (0: done).
async fn reset(groups: &Rc<Coordinator>, group_id: &str, reset: ShareReset) -> i16 {
    let answer = call(groups, group_id, |reply| GroupMsg::ShareReset {
        group_id: group_id.to_string(),
        reset,
        reply,
    });
    match answer.await {
        Some(Ok(())) => 0,
        Some(Err(code)) => code,
        None => crate::group::not_available(),
    }
}

/// Why a topic cannot be reset here, if it cannot: the principal may not
/// Read it, or it does not exist.
fn topic_refusal(access: &Access, topics: &Topics, name: &str) -> Option<i16> {
    if !access.topic(Operation::Read, name) {
        return Some(ResponseError::TopicAuthorizationFailed.code());
    }
    topics
        .get(name)
        .is_none()
        .then_some(ResponseError::UnknownTopicOrPartition.code())
}

/// Needs Read on the group (GROUP_AUTHORIZATION_FAILED) and on each topic;
/// a partition of an unknown topic, out of range or with a negative start
/// answers its own error, and the others are reset.
pub async fn handle_alter(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    request: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let group_id = request.group_id.to_string();
    let topics = groups.shard().topics();
    let mut response = AlterShareGroupOffsetsResponse::default();
    let group_refusal = (!access.group(Operation::Read, &group_id))
        .then_some(ResponseError::GroupAuthorizationFailed.code());
    let mut starts = Vec::new();
    for t in &request.topics {
        let name = t.topic_name.as_str();
        let mut topic = AlteredTopic::default();
        topic.topic_name = t.topic_name.clone();
        let meta = topics.get(name);
        topic.topic_id = meta.map(|m| m.uuid()).unwrap_or_default();
        let partitions = meta.map_or(0, |m| m.partitions);
        let refusal = group_refusal.or_else(|| topic_refusal(access, &topics, name));
        for p in &t.partitions {
            let mut answer = AlteredPartition::default();
            answer.partition_index = p.partition_index;
            answer.error_code = match refusal {
                Some(code) => code,
                None if !(0..partitions).contains(&p.partition_index) => {
                    ResponseError::UnknownTopicOrPartition.code()
                }
                None if p.start_offset < 0 => ResponseError::InvalidRequest.code(),
                None => {
                    starts.push((name.to_string(), p.partition_index, p.start_offset));
                    0
                }
            };
            topic.partitions.push(answer);
        }
        response.responses.push(topic);
    }
    let code = match group_refusal {
        Some(code) => code,
        None if starts.is_empty() => 0,
        None => reset(groups, &group_id, ShareReset::Alter(starts)).await,
    };
    if code != 0 {
        response.error_code = code;
        response.error_message = Some(StrBytes::from_string(error_message(code, &group_id)));
        for p in response
            .responses
            .iter_mut()
            .flat_map(|t| &mut t.partitions)
        {
            if p.error_code == 0 {
                p.error_code = code;
            }
        }
    }
    response
}

/// Needs Delete on the group (GROUP_AUTHORIZATION_FAILED) and Read on each
/// topic; an unknown topic answers its own error, and the others' states
/// are deleted: the group's next read of them starts by its
/// `share.auto.offset.reset`.
pub async fn handle_delete(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    _version: i16,
    request: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    let group_id = request.group_id.to_string();
    let topics = groups.shard().topics();
    let mut response = DeleteShareGroupOffsetsResponse::default();
    if !access.group(Operation::Delete, &group_id) {
        response.error_code = ResponseError::GroupAuthorizationFailed.code();
        return response;
    }
    let mut deleted = Vec::new();
    for t in &request.topics {
        let name = t.topic_name.as_str();
        let mut topic = DeletedTopic::default();
        topic.topic_name = t.topic_name.clone();
        topic.topic_id = topics.get(name).map(|m| m.uuid()).unwrap_or_default();
        match topic_refusal(access, &topics, name) {
            Some(code) => topic.error_code = code,
            None => deleted.push(name.to_string()),
        }
        response.responses.push(topic);
    }
    let code = reset(groups, &group_id, ShareReset::Delete(deleted)).await;
    if code != 0 {
        response.error_code = code;
        response.error_message = Some(StrBytes::from_string(error_message(code, &group_id)));
        for t in response.responses.iter_mut().filter(|t| t.error_code == 0) {
            t.error_code = code;
        }
    }
    response
}

fn error_message(code: i16, group_id: &str) -> String {
    if code == ResponseError::NonEmptyGroup.code() {
        format!("share group {group_id} has members: only an empty group is reset")
    } else if code == ResponseError::GroupIdNotFound.code() {
        format!("group {group_id} is not a share group")
    } else {
        format!("share group {group_id} was not reset")
    }
}

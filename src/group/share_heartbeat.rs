//! ShareGroupHeartbeat and ShareGroupDescribe on the coordinator shard:
//! the request turned into a `share_protocol::ShareBeat`, the group's
//! topics into shapes, the answer into the response, and whether the
//! group must be written.

use kafka_protocol::messages::share_group_describe_response::{
    self, DescribedGroup as ShareDescribed,
};
use kafka_protocol::messages::share_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::consumer_heartbeat::{shapes_of, wire_assignment};
use super::consumer_protocol::{Assignment, JOINING_EPOCH};
use super::share_protocol::{ShareBeat, ShareGroup, ShareLimits};
use super::state::Group;
use super::{fits_record, valid_group_id, Coordinator, Sender};
use crate::group_configs::GroupSettings;

/// The assignor Kafka names for share groups.
const ASSIGNOR: &str = "simple";

/// A group's, of its settings (`Coordinator::settings`).
pub fn limits(coord: &Coordinator, settings: &GroupSettings) -> ShareLimits {
    ShareLimits {
        max_size: coord.shard.config.group_share_max_size,
        session_timeout_ms: i64::from(settings.share_session_timeout_ms.max(1)),
    }
}

/// Whether `group` may be used as a share group: it is one already, or
/// nothing of another kind (members, committed offsets) is in it.
pub(super) fn shareable(group: &Group) -> bool {
    group.share.is_some()
        || (group.members.is_empty() && group.consumer.is_none() && group.offsets.is_empty())
}

/// The answer, and whether what is written of the group changed (the
/// caller writes it before answering).
pub fn heartbeat(
    coord: &Coordinator,
    sender: Sender,
    request: ShareGroupHeartbeatRequest,
    now_ms: i64,
) -> (ShareGroupHeartbeatResponse, bool) {
    let group_id = request.group_id.to_string();
    let mut response = ShareGroupHeartbeatResponse::default();
    let settings = coord.settings(&group_id);
    response.heartbeat_interval_ms = settings.share_heartbeat_interval_ms.max(1);
    let refuse = |mut response: ShareGroupHeartbeatResponse, code: i16, why: String| {
        tracing::debug!(group = %group_id, error = %why, "share heartbeat refused");
        response.error_code = code;
        response.error_message = Some(StrBytes::from_string(why));
        (response, false)
    };
    if !valid_group_id(&group_id) {
        let code = ResponseError::InvalidGroupId.code();
        return refuse(response, code, "invalid group id".into());
    }
    let names_fit = request
        .subscribed_topic_names
        .iter()
        .flatten()
        .all(|n| fits_record(n));
    if !fits_record(&request.member_id) || !names_fit {
        let code = ResponseError::InvalidRequest.code();
        return refuse(
            response,
            code,
            "a member id or topic name over 32 KiB".into(),
        );
    }
    let mut groups = coord.groups.borrow_mut();
    let full = groups.len() >= coord.shard.config.groups_per_shard_max;
    if full && !groups.contains_key(&group_id) {
        let code = ResponseError::CoordinatorNotAvailable.code();
        return refuse(
            response,
            code,
            "this coordinator holds its most groups".into(),
        );
    }
    if !groups.contains_key(&group_id) && request.member_epoch != JOINING_EPOCH {
        // Only a joining member makes a group: a member of one this
        // coordinator does not hold (it moved here) joins again.
        let code = ResponseError::UnknownMemberId.code();
        return refuse(response, code, format!("no group {group_id} here"));
    }
    let group = groups
        .entry(group_id.clone())
        .or_insert_with(|| Group::new(group_id.clone(), now_ms));
    if !shareable(group) {
        let code = ResponseError::GroupIdNotFound.code();
        return refuse(
            response,
            code,
            format!("group {group_id} is not a share group"),
        );
    }
    let share = group.share.get_or_insert_with(ShareGroup::default);
    let beat = ShareBeat {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        rack_id: request.rack_id.map(|r| r.to_string()),
        subscribed: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        client_id: sender.client_id,
        client_host: sender.client_host,
    };
    let mut subscribed = share.subscribed();
    subscribed.extend(beat.subscribed.iter().flatten().cloned());
    let topics = shapes_of(&coord.shard.topics(), subscribed.iter());
    let before = share.changes;
    let answered = share.heartbeat(beat, &topics, &limits(coord, &settings), now_ms);
    let changed = share.changes != before;
    match answered {
        Ok(answer) => {
            response.member_id = Some(StrBytes::from_string(answer.member_id));
            response.member_epoch = answer.member_epoch;
            response.assignment = answer.assignment.map(|a| wire(&a));
            (response, changed)
        }
        Err(e) => (refuse(response, e.code(), e.to_string()).0, changed),
    }
}

fn wire(assignment: &Assignment) -> WireAssignment {
    wire_assignment!(assignment, WireAssignment, TopicPartitions)
}

/// ShareGroupDescribe of one group: its epoch, and each member's
/// subscription and partitions.
pub fn describe(coord: &Coordinator, group_id: &str) -> ShareDescribed {
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let mut d = ShareDescribed::default();
    d.group_id = s(group_id).into();
    d.authorized_operations = i32::MIN;
    let groups = coord.groups.borrow();
    let Some(share) = groups.get(group_id).and_then(|g| g.share.as_ref()) else {
        d.error_code = ResponseError::GroupIdNotFound.code();
        d.error_message = Some(s(&format!("group {group_id} is not a share group")));
        return d;
    };
    d.group_state = s(share.state());
    d.group_epoch = share.epoch;
    d.assignment_epoch = share.epoch;
    d.assignor_name = s(ASSIGNOR);
    let topics = coord.shard.topics();
    d.members = share
        .members
        .values()
        .map(|m| {
            let mut member = share_group_describe_response::Member::default();
            member.member_id = s(&m.id);
            member.rack_id = m.rack_id.as_deref().map(s);
            member.member_epoch = m.epoch;
            member.client_id = s(&m.client_id);
            member.client_host = s(&m.client_host);
            member.subscribed_topic_names = m.subscribed.iter().map(|n| s(n).into()).collect();
            member.assignment.topic_partitions = m
                .assignment
                .iter()
                .map(|(id, partitions)| {
                    let mut tp = share_group_describe_response::TopicPartitions::default();
                    tp.topic_id = *id;
                    tp.topic_name = s(topics.name_of(*id).unwrap_or_default()).into();
                    tp.partitions = partitions.iter().copied().collect();
                    tp
                })
                .collect();
            member
        })
        .collect();
    d
}

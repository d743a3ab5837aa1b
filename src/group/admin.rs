//! ListGroups, DescribeGroups and DeleteGroups on a coordinator shard.

use std::rc::Rc;

use kafka_protocol::messages::consumer_group_describe_response::{
    self, DescribedGroup as ConsumerDescribed,
};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::state::{Group, GroupState};
use super::{append, membership_failed, membership_records, valid_group_id, Coordinator, KeyValue};
use super::{consumer_protocol, records};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The groups this shard coordinates, filtered by state names (KIP-518;
/// empty means all, case-insensitive as Kafka compares them).
pub fn list(coord: &Coordinator, states: &[String]) -> Vec<ListedGroup> {
    let groups = coord.groups.borrow();
    let mut out: Vec<ListedGroup> = groups
        .values()
        .filter(|g| {
            states.is_empty()
                || states
                    .iter()
                    .any(|st| st.eq_ignore_ascii_case(state_name(g)))
        })
        .map(|g| {
            let mut l = ListedGroup::default();
            l.group_id = s(&g.id).into();
            l.group_state = s(state_name(g));
            // An empty consumer protocol group stays one until a classic
            // member joins it.
            if g.share.is_some() {
                l.protocol_type = s(SHARE);
                l.group_type = s(SHARE);
            } else if g.consumer.is_some() && g.members.is_empty() {
                l.protocol_type = s(CONSUMER);
                l.group_type = s(CONSUMER);
            } else {
                l.protocol_type = s(g.protocol_type.as_deref().unwrap_or_default());
                l.group_type = s("classic");
            }
            l
        })
        .collect();
    out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    out
}

/// The protocol type and group type of consumer protocol groups.
const CONSUMER: &str = "consumer";
/// The protocol type and group type of share groups.
const SHARE: &str = "share";

/// A group's state as ListGroups names it: the consumer protocol's while
/// members joined that way, else the classic one.
fn state_name(g: &Group) -> &'static str {
    if let Some(share) = &g.share {
        return share.state();
    }
    match &g.consumer {
        Some(c) if !c.is_empty() => c.state(),
        _ => g.state.name(),
    }
}

pub fn describe(coord: &Coordinator, group_id: &str) -> DescribedGroup {
    let mut d = DescribedGroup::default();
    d.group_id = s(group_id).into();
    d.authorized_operations = i32::MIN;
    if !valid_group_id(group_id) {
        d.error_code = ResponseError::InvalidGroupId.code();
        d.group_state = s("Dead");
        return d;
    }
    let groups = coord.groups.borrow();
    let Some(g) = groups.get(group_id) else {
        // Kafka describes an unknown group as Dead, without an error.
        d.group_state = s("Dead");
        return d;
    };
    if let Some(share) = &g.share {
        // Kafka's DescribeGroups names a share group's type and members;
        // ShareGroupDescribe tells the rest.
        d.group_state = s(share.state());
        d.protocol_type = s(SHARE);
        d.members = share
            .members
            .values()
            .map(|m| {
                let mut member = DescribedGroupMember::default();
                member.member_id = s(&m.id);
                member.client_id = s(&m.client_id);
                member.client_host = s(&m.client_host);
                member
            })
            .collect();
        return d;
    }
    if let Some(consumer) = g.consumer.as_ref().filter(|c| !c.is_empty()) {
        // Classic tools see the members and their hosts; what each owns is
        // ConsumerGroupDescribe's (not served), so no assignment bytes.
        d.group_state = s(consumer.state());
        d.protocol_type = s(CONSUMER);
        d.members = consumer
            .members
            .values()
            .map(|m| {
                let mut member = DescribedGroupMember::default();
                member.member_id = s(&m.id);
                member.group_instance_id = m.instance_id.as_deref().map(s);
                member.client_id = s(&m.client_id);
                member.client_host = s(&m.client_host);
                member
            })
            .collect();
        return d;
    }
    d.group_state = s(g.state.name());
    d.protocol_type = s(g.protocol_type.as_deref().unwrap_or_default());
    let stable = g.state == GroupState::Stable;
    d.protocol_data = s(if stable {
        g.protocol.as_deref().unwrap_or_default()
    } else {
        ""
    });
    let protocol = g.protocol.clone().unwrap_or_default();
    d.members = g
        .members
        .values()
        .map(|m| {
            let mut dm = DescribedGroupMember::default();
            dm.member_id = s(&m.id);
            dm.group_instance_id = m.instance_id.as_deref().map(s);
            dm.client_id = s(&m.client_id);
            dm.client_host = s(&m.client_host);
            // Kafka shows subscriptions and assignments only when stable.
            if stable {
                dm.member_metadata = m.metadata_for(&protocol);
                dm.member_assignment = m.assignment.clone();
            }
            dm
        })
        .collect();
    d
}

/// Deletes an empty group: tombstones for its offsets and its metadata.
/// ConsumerGroupDescribe of one group (KIP-848): its epochs, and each
/// member's subscription, assignment and target.
pub fn consumer_describe(coord: &Coordinator, group_id: &str) -> ConsumerDescribed {
    let mut d = ConsumerDescribed::default();
    d.group_id = s(group_id).into();
    d.authorized_operations = i32::MIN;
    let groups = coord.groups.borrow();
    let consumer = groups.get(group_id).and_then(|g| {
        let classic_members = !g.members.is_empty();
        g.consumer.as_ref().filter(|_| !classic_members)
    });
    let Some(consumer) = consumer else {
        d.error_code = ResponseError::GroupIdNotFound.code();
        d.error_message = Some(s(&format!("group {group_id} is not a consumer group")));
        return d;
    };
    d.group_state = s(consumer.state());
    d.group_epoch = consumer.epoch;
    d.assignment_epoch = consumer.target_epoch;
    d.assignor_name = s(consumer.assignor);
    let topics = coord.shard.topics();
    let wire = |a: &consumer_protocol::Assignment| {
        let mut out = consumer_group_describe_response::Assignment::default();
        out.topic_partitions = a
            .iter()
            .map(|(id, partitions)| {
                let mut tp = consumer_group_describe_response::TopicPartitions::default();
                tp.topic_id = *id;
                tp.topic_name = s(topics.name_of(*id).unwrap_or_default()).into();
                tp.partitions = partitions.iter().copied().collect();
                tp
            })
            .collect();
        out
    };
    d.members = consumer
        .members
        .values()
        .map(|m| {
            let mut member = consumer_group_describe_response::Member::default();
            member.member_id = s(&m.id);
            member.instance_id = m.instance_id.as_deref().map(s);
            member.member_epoch = m.epoch;
            member.client_id = s(&m.client_id);
            member.client_host = s(&m.client_host);
            member.subscribed_topic_names = m.names.iter().map(|n| s(n).into()).collect();
            member.subscribed_topic_regex = m.regex.as_deref().map(s);
            member.assignment = wire(&m.assigned);
            let target = consumer.target.get(&m.id).cloned().unwrap_or_default();
            member.target_assignment = wire(&target);
            // Kafka's member types: 0 classic, 1 consumer protocol.
            member.member_type = if m.classic.is_some() { 0 } else { 1 };
            member
        })
        .collect();
    d
}

pub async fn delete(coord: &Rc<Coordinator>, group_id: &str) -> i16 {
    if !valid_group_id(group_id) {
        return ResponseError::InvalidGroupId.code();
    }
    let (tombstones, parts) = {
        let mut groups = coord.groups.borrow_mut();
        let Some(g) = groups.get_mut(group_id) else {
            return ResponseError::GroupIdNotFound.code();
        };
        if g.state != GroupState::Empty || g.has_consumer_members() || g.has_share_members() {
            return ResponseError::NonEmptyGroup.code();
        }
        let (membership, parts) = membership_records(group_id, g.membership_tombstones());
        let tombstones: Vec<KeyValue> = g
            .offsets
            .keys()
            .map(|(t, p)| (records::offset_key(group_id, t, *p), None))
            .chain(std::iter::once((records::group_key(group_id), None)))
            .chain(membership)
            .chain(
                g.share_states
                    .keys()
                    .map(|(t, p)| (records::share_state_key(group_id, t, *p), None)),
            )
            .collect();
        (tombstones, parts)
    };
    if let Err(code) = append(coord, group_id, &tombstones).await {
        tracing::warn!(group = group_id, code, "deleting group");
        membership_failed(coord, group_id, &parts);
        return ResponseError::CoordinatorNotAvailable.code();
    }
    let mut groups = coord.groups.borrow_mut();
    if groups
        .get(group_id)
        .is_some_and(|g| g.state == GroupState::Empty)
    {
        groups.remove(group_id);
    }
    0
}

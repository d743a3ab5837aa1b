//! ConsumerGroupHeartbeat on the coordinator shard: the request turned
//! into a `consumer_protocol::Heartbeat`, the group's topics into shapes,
//! the answer into the response, and whether the group must be written.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::consumer_protocol::{
    Assignment, ConsumerGroup, Heartbeat, Limits, TopicShape, JOINING_EPOCH,
};
use super::migration::{self, Changed};
use super::state::Group;
use super::{fits_record, valid_group_id, Coordinator, Sender};
use crate::group_configs::GroupSettings;
use crate::metadata::Topics;

/// A group's, of its settings (`Coordinator::settings`).
pub fn limits(coord: &Coordinator, settings: &GroupSettings) -> Limits {
    Limits {
        max_size: coord.shard.config.group_max_size,
        session_timeout_ms: i64::from(settings.consumer_session_timeout_ms.max(1)),
    }
}

/// The answer, and what of the group changed in what is written of it
/// (the caller writes it before answering).
pub fn heartbeat(
    coord: &Coordinator,
    sender: Sender,
    request: ConsumerGroupHeartbeatRequest,
    now_ms: i64,
) -> (ConsumerGroupHeartbeatResponse, Changed) {
    let group_id = request.group_id.to_string();
    let mut response = ConsumerGroupHeartbeatResponse::default();
    let settings = coord.settings(&group_id);
    response.heartbeat_interval_ms = settings.consumer_heartbeat_interval_ms.max(1);
    let refuse = |mut response: ConsumerGroupHeartbeatResponse, code: i16, why: String| {
        response.error_code = code;
        response.error_message = Some(StrBytes::from_string(why));
        response
    };
    if !valid_group_id(&group_id) {
        let code = ResponseError::InvalidGroupId.code();
        return (
            refuse(response, code, "invalid group id".into()),
            Changed::Nothing,
        );
    }
    if !strings_fit(&request) {
        let code = ResponseError::InvalidRequest.code();
        let why = "a member id, instance id or topic name over 32 KiB".into();
        return (refuse(response, code, why), Changed::Nothing);
    }
    let mut groups = coord.groups.borrow_mut();
    let full = groups.len() >= coord.shard.config.groups_per_shard_max;
    if full && !groups.contains_key(&group_id) {
        let code = ResponseError::CoordinatorNotAvailable.code();
        let why = "this coordinator holds its most groups".into();
        return (refuse(response, code, why), Changed::Nothing);
    }
    if !groups.contains_key(&group_id) && request.member_epoch != JOINING_EPOCH {
        // Only a joining member makes a group: a member of one this
        // coordinator does not hold (it moved here) joins again.
        let code = ResponseError::UnknownMemberId.code();
        return (
            refuse(response, code, format!("no group {group_id} here")),
            Changed::Nothing,
        );
    }
    let group = groups
        .entry(group_id.clone())
        .or_insert_with(|| Group::new(group_id.clone(), now_ms));
    if !group.forget_empty_share() {
        let code = ResponseError::GroupIdNotFound.code();
        let why = format!("group {group_id} is a share group");
        return (refuse(response, code, why), Changed::Nothing);
    }
    // A classic group with members becomes a consumer protocol group here
    // (the online upgrade), or the heartbeat gets Kafka's answer.
    let mut converted = false;
    if !group.members.is_empty() {
        if request.member_epoch != JOINING_EPOCH {
            // Not a member of a classic group: it joins afresh.
            let code = ResponseError::UnknownMemberId.code();
            let why = format!("group {group_id} is a classic group");
            return (refuse(response, code, why), Changed::Nothing);
        }
        if let Err(why) = migration::upgrade(coord, group, now_ms) {
            let code = ResponseError::GroupIdNotFound.code();
            let why = format!("group {group_id} is a classic group with members: {why}");
            return (refuse(response, code, why), Changed::Nothing);
        }
        converted = true;
    }
    let consumer = group.consumer.get_or_insert_with(ConsumerGroup::default);
    let before = consumer.changes;
    let answered = beat_of(coord, &sender, request, consumer)
        .map_err(|why| (ResponseError::InvalidRegularExpression.code(), why))
        .and_then(|beat| {
            let topics = shapes(coord, consumer, &beat);
            let answered = consumer.heartbeat(beat, &topics, &limits(coord, &settings), now_ms);
            answered.map_err(|e| (e.code(), e.to_string()))
        });
    let mut changed = Changed::from_membership(consumer.changes != before);
    // The last consumer protocol member may have left a group of classic
    // members: it is a classic group again (the online downgrade).
    // Only a change of membership can have made it one.
    let downgraded = changed != Changed::Nothing
        && migration::maybe_downgrade(coord, group, &super::limits(&coord.shard), now_ms);
    if converted || downgraded {
        changed = Changed::Protocol;
    }
    let response = match answered {
        Ok(answer) => {
            response.member_id = Some(StrBytes::from_string(answer.member_id));
            response.member_epoch = answer.member_epoch;
            response.assignment = answer.assignment.map(|a| wire(&a));
            response
        }
        Err((code, why)) => {
            tracing::debug!(group = %group_id, error = %why, "consumer heartbeat refused");
            refuse(response, code, why)
        }
    };
    (response, changed)
}

/// Whether the strings the group's record keeps fit it (flexible
/// versions carry longer ones; the regex has a bound of its own).
fn strings_fit(request: &ConsumerGroupHeartbeatRequest) -> bool {
    fits_record(&request.member_id)
        && request.instance_id.as_deref().is_none_or(fits_record)
        && request
            .subscribed_topic_names
            .iter()
            .flatten()
            .all(|n| fits_record(n))
}

/// The heartbeat as the group sees it. v0 members get their id from the
/// coordinator at their first heartbeat; from v1 they bring their own.
/// The subscription is found again at every heartbeat of a member with a
/// regex, so topics created or deleted since are in it or out of it.
fn beat_of(
    coord: &Coordinator,
    sender: &Sender,
    request: ConsumerGroupHeartbeatRequest,
    group: &ConsumerGroup,
) -> Result<Heartbeat, String> {
    let mut member_id = request.member_id.to_string();
    if member_id.is_empty() && request.member_epoch == JOINING_EPOCH && sender.version == 0 {
        member_id = uuid::Uuid::new_v4().to_string();
    }
    let known = group.members.get(&member_id);
    let asked_names = request
        .subscribed_topic_names
        .map(|names| names.into_iter().map(|n| n.0.to_string()).collect());
    let asked_regex = request.subscribed_topic_regex.map(|r| r.to_string());
    let asked = asked_names.is_some() || asked_regex.is_some();
    let names: BTreeSet<String> = asked_names
        .or_else(|| known.map(|m| m.names.clone()))
        .unwrap_or_default();
    let regex = match asked_regex {
        // An empty regex takes the regex away.
        Some(r) if r.is_empty() => None,
        Some(r) => Some(r),
        None => known.and_then(|m| m.regex.clone()),
    };
    let subscribed = if asked || regex.is_some() {
        let mut all = names.clone();
        if let Some(pattern) = &regex {
            all.extend(matching(coord, pattern)?);
        }
        Some(all)
    } else {
        None
    };
    let owned = request.topic_partitions.map(|tps| {
        let mut owned = Assignment::new();
        for tp in tps {
            let partitions: BTreeSet<i32> = tp.partitions.into_iter().collect();
            if !partitions.is_empty() {
                owned.entry(tp.topic_id).or_default().extend(partitions);
            }
        }
        owned
    });
    Ok(Heartbeat {
        member_id,
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|i| i.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed,
        names,
        regex,
        assignor: request.server_assignor.map(|a| a.to_string()),
        owned,
        client_id: sender.client_id.clone(),
        client_host: sender.client_host.clone(),
    })
}

/// The topics whose whole name `pattern` matches (RE2 syntax, as Kafka's
/// RE2J), internal ones aside, as Kafka leaves them out.
fn matching(coord: &Coordinator, pattern: &str) -> Result<BTreeSet<String>, String> {
    let regex = crate::pattern::whole_match(pattern).map_err(|e| format!("subscription {e}"))?;
    let topics = coord.shard.topics();
    Ok(topics
        .topics
        .keys()
        .filter(|name| !name.starts_with("__") && regex.is_match(name))
        .cloned()
        .collect())
}

/// The shapes of the topics the group's members subscribe to (and this
/// heartbeat's), as they exist now; only those, so a heartbeat costs the
/// group's subscriptions, not the broker's topic count.
fn shapes(
    coord: &Coordinator,
    group: &ConsumerGroup,
    beat: &Heartbeat,
) -> BTreeMap<String, TopicShape> {
    let subscribed = group
        .members
        .values()
        .flat_map(|m| m.subscribed.iter())
        .chain(beat.subscribed.iter().flatten());
    shapes_of(&coord.shard.topics(), subscribed)
}

/// The shapes of the named topics that exist.
pub fn shapes_of<'a>(
    topics: &Topics,
    names: impl Iterator<Item = &'a String>,
) -> BTreeMap<String, TopicShape> {
    names
        .filter_map(|name| {
            let topic = topics.get(name)?;
            let shape = TopicShape {
                id: topic.uuid(),
                partitions: topic.partitions,
            };
            Some((name.clone(), shape))
        })
        .collect()
}

/// An assignment as a heartbeat response's `Assignment` (the consumer
/// and share group protocols' have the same fields, in types of their own).
macro_rules! wire_assignment {
    ($assignment:expr, $wire:ty, $topic:ty) => {{
        let mut out = <$wire>::default();
        out.topic_partitions = $assignment
            .iter()
            .map(|(topic, partitions)| {
                let mut tp = <$topic>::default();
                tp.topic_id = *topic;
                tp.partitions = partitions.iter().copied().collect();
                tp
            })
            .collect();
        out
    }};
}
pub(super) use wire_assignment;

fn wire(assignment: &Assignment) -> WireAssignment {
    wire_assignment!(assignment, WireAssignment, TopicPartitions)
}

//! JoinGroup: member ids, the protocol vote, static members (KIP-345).

use super::*;

/// Bytes of the client id a member id starts with.
const MEMBER_ID_PREFIX_MAX: usize = 128;

/// A new member id: the client id (as Kafka does, but cut short so the id
/// fits the topic's records) and a unique suffix.
pub fn new_member_id(client_id: &str) -> String {
    let prefix = &client_id[..client_id.floor_char_boundary(MEMBER_ID_PREFIX_MAX)];
    format!("{prefix}-{}", crate::metadata::new_topic_id())
}

/// The JoinGroup answer for `member_id` in the current generation: the
/// leader gets every member's subscription for the chosen protocol.
pub(super) fn join_response(group: &Group, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.generation_id = group.generation;
    r.protocol_type = group.protocol_type.as_deref().map(s);
    r.protocol_name = group.protocol.as_deref().map(s);
    r.leader = s(group.leader.as_deref().unwrap_or_default());
    r.member_id = s(member_id);
    if group.leader.as_deref() == Some(member_id) {
        let protocol = group.protocol.clone().unwrap_or_default();
        r.members = group
            .members
            .values()
            .map(|m| {
                let mut jm = JoinGroupResponseMember::default();
                jm.member_id = s(&m.id);
                jm.group_instance_id = m.instance_id.as_deref().map(s);
                jm.metadata = m.metadata_for(&protocol);
                jm
            })
            .collect();
    }
    r
}

/// Protocols every member supports, in no particular order.
fn candidates(group: &Group) -> Vec<String> {
    let mut members = group.members.values();
    let Some(first) = members.next() else {
        return Vec::new();
    };
    let mut out: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
    for m in members {
        out.retain(|p| m.protocols.iter().any(|(n, _)| n == p));
    }
    out
}

/// Kafka's vote: each member votes for its most preferred candidate.
pub fn select_protocol(group: &Group) -> Option<String> {
    let candidates = candidates(group);
    let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0, c)).collect();
    for m in group.members.values() {
        if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
            if let Some(v) = votes.iter_mut().find(|(_, c)| *c == name) {
                v.0 += 1;
            }
        }
    }
    // The first candidate wins ties, so the choice is deterministic.
    let mut best: Option<(usize, &String)> = None;
    for (n, c) in votes {
        if best.is_none_or(|(b, _)| n > b) {
            best = Some((n, c));
        }
    }
    best.map(|(_, c)| c.clone())
}

fn protocols_of(request: &JoinGroupRequest) -> Vec<(String, Bytes)> {
    request
        .protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect()
}

fn supports(group: &Group, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
    if protocol_type.is_empty() || protocols.is_empty() {
        return false;
    }
    if group.members.is_empty() {
        return true;
    }
    group.protocol_type.as_deref() == Some(protocol_type)
        && candidates(group)
            .iter()
            .any(|c| protocols.iter().any(|(n, _)| n == c))
}

/// Static member `instance_id` is held by another member id.
pub(super) fn fenced(group: &Group, instance_id: Option<&str>, member_id: &str) -> bool {
    instance_id
        .and_then(|i| group.static_members.get(i))
        .is_some_and(|holder| holder != member_id)
}

pub struct Join {
    pub version: i16,
    pub client_id: String,
    pub client_host: String,
    pub request: JoinGroupRequest,
}

pub fn join(
    group: &mut Group,
    limits: &Limits,
    join: Join,
    reply: oneshot::Sender<JoinGroupResponse>,
    now: i64,
) -> bool {
    let member_id = join.request.member_id.to_string();
    let protocols = protocols_of(&join.request);
    if !supports(group, &join.request.protocol_type, &protocols) {
        let _ = reply.send(join_error(
            code(ResponseError::InconsistentGroupProtocol),
            &member_id,
        ));
        return false;
    }
    if member_id.is_empty() {
        join_unknown(group, limits, join, protocols, reply, now)
    } else {
        join_known(group, limits, join, protocols, reply, now)
    }
}

fn new_member(id: &str, join: &Join, protocols: Vec<(String, Bytes)>, now: i64) -> Member {
    Member {
        id: id.to_string(),
        instance_id: join
            .request
            .group_instance_id
            .as_ref()
            .map(|i| i.to_string()),
        client_id: join.client_id.clone(),
        client_host: join.client_host.clone(),
        session_timeout_ms: join.request.session_timeout_ms,
        rebalance_timeout_ms: rebalance_timeout(&join.request),
        protocols,
        assignment: Bytes::new(),
        join_waiter: None,
        sync_waiter: None,
        last_seen_ms: now,
    }
}

/// v0 has no rebalance timeout: Kafka uses the session timeout.
fn rebalance_timeout(request: &JoinGroupRequest) -> i32 {
    if request.rebalance_timeout_ms > 0 {
        request.rebalance_timeout_ms
    } else {
        request.session_timeout_ms
    }
}

fn join_unknown(
    group: &mut Group,
    limits: &Limits,
    join: Join,
    protocols: Vec<(String, Bytes)>,
    reply: oneshot::Sender<JoinGroupResponse>,
    now: i64,
) -> bool {
    let instance_id = join
        .request
        .group_instance_id
        .as_ref()
        .map(|i| i.to_string());
    let new_id = new_member_id(&join.client_id);
    if let Some(old_id) = instance_id
        .as_ref()
        .and_then(|i| group.static_members.get(i))
        .cloned()
    {
        return replace_static_member(group, limits, &old_id, &new_id, join, protocols, reply, now);
    }
    if group.members.len() + group.pending.len() >= limits.max_size {
        let _ = reply.send(join_error(code(ResponseError::GroupMaxSizeReached), ""));
        return false;
    }
    if instance_id.is_none() && join.version >= 4 {
        // KIP-394: the client must come back with this id, so a retried
        // join cannot leave a ghost member behind.
        let deadline = now + i64::from(join.request.session_timeout_ms);
        group.pending.insert(new_id.clone(), deadline);
        let _ = reply.send(join_error(code(ResponseError::MemberIdRequired), &new_id));
        return false;
    }
    let member = new_member(&new_id, &join, protocols, now);
    add_member_and_rebalance(
        group,
        limits,
        member,
        &join.request.protocol_type,
        reply,
        now,
    );
    false
}

fn join_known(
    group: &mut Group,
    limits: &Limits,
    join: Join,
    protocols: Vec<(String, Bytes)>,
    reply: oneshot::Sender<JoinGroupResponse>,
    now: i64,
) -> bool {
    let member_id = join.request.member_id.to_string();
    let instance_id = join
        .request
        .group_instance_id
        .as_ref()
        .map(|i| i.to_string());
    if fenced(group, instance_id.as_deref(), &member_id) {
        let _ = reply.send(join_error(
            code(ResponseError::FencedInstanceId),
            &member_id,
        ));
        return false;
    }
    if group.pending.remove(&member_id).is_some() {
        let member = new_member(&member_id, &join, protocols, now);
        add_member_and_rebalance(
            group,
            limits,
            member,
            &join.request.protocol_type,
            reply,
            now,
        );
        return false;
    }
    let known = group.members.contains_key(&member_id);
    if !known || group.state == GroupState::Empty {
        let _ = reply.send(join_error(code(ResponseError::UnknownMemberId), &member_id));
        return false;
    }
    let is_leader = group.leader.as_deref() == Some(member_id.as_str());
    let member = group.members.get_mut(&member_id).expect("known member");
    let same = member.protocols == protocols;
    member.last_seen_ms = now;
    match group.state {
        GroupState::CompletingRebalance | GroupState::Stable
            if same && (group.state == GroupState::CompletingRebalance || !is_leader) =>
        {
            // A repeated join: answer with the current generation.
            let _ = reply.send(join_response(group, &member_id));
        }
        GroupState::Stable | GroupState::CompletingRebalance => {
            update_member(member, &join, protocols, reply);
            prepare_rebalance(group, limits, now);
        }
        GroupState::PreparingRebalance => {
            update_member(member, &join, protocols, reply);
            maybe_complete_join(group, now);
        }
        GroupState::Empty => unreachable!("checked above"),
    }
    false
}

fn update_member(
    member: &mut Member,
    join: &Join,
    protocols: Vec<(String, Bytes)>,
    reply: oneshot::Sender<JoinGroupResponse>,
) {
    member.protocols = protocols;
    member.session_timeout_ms = join.request.session_timeout_ms;
    member.rebalance_timeout_ms = rebalance_timeout(&join.request);
    // A second join of the same member replaces the first; the first's
    // connection hears COORDINATOR_NOT_AVAILABLE from the dropped oneshot.
    member.join_waiter = Some(JoinWaiter { reply });
}

/// KIP-345: a static member rejoined with a new member id. The old id is
/// fenced; in a stable group with unchanged subscription it keeps its
/// assignment and no rebalance happens.
#[allow(clippy::too_many_arguments)]
fn replace_static_member(
    group: &mut Group,
    limits: &Limits,
    old_id: &str,
    new_id: &str,
    join: Join,
    protocols: Vec<(String, Bytes)>,
    reply: oneshot::Sender<JoinGroupResponse>,
    now: i64,
) -> bool {
    let mut member = group
        .members
        .remove(old_id)
        .expect("static member is a member");
    if let Some(w) = member.join_waiter.take() {
        let _ = w
            .reply
            .send(join_error(code(ResponseError::FencedInstanceId), old_id));
    }
    if let Some(w) = member.sync_waiter.take() {
        let _ = w.send(sync_error(code(ResponseError::FencedInstanceId)));
    }
    let protocol = group.protocol.clone().unwrap_or_default();
    let unchanged = member.metadata_for(&protocol) == metadata_in(&protocols, &protocol);
    // Kafka's answer to a static leader that rejoins a stable group names
    // the leader's old id (before v9), so the client does not take itself
    // for the leader and compute an assignment a stable group would never
    // hand out.
    let leader_before = group.leader.clone();
    let version = join.version;
    member.id = new_id.to_string();
    member.last_seen_ms = now;
    member.client_id = join.client_id.clone();
    member.session_timeout_ms = join.request.session_timeout_ms;
    member.rebalance_timeout_ms = rebalance_timeout(&join.request);
    member.protocols = protocols;
    if let Some(instance) = &member.instance_id {
        group
            .static_members
            .insert(instance.clone(), new_id.to_string());
    }
    if group.leader.as_deref() == Some(old_id) {
        group.leader = Some(new_id.to_string());
    }
    let state = group.state;
    match state {
        GroupState::Stable | GroupState::CompletingRebalance if unchanged => {
            group.members.insert(new_id.to_string(), member);
            // While the group waits for its leader's assignment, the leader
            // must still compute it: only a stable group answers as Kafka's
            // does to an unchanged static rejoin.
            let response = if state == GroupState::Stable {
                static_rejoin_response(group, new_id, leader_before, version)
            } else {
                join_response(group, new_id)
            };
            let _ = reply.send(response);
            true
        }
        GroupState::PreparingRebalance => {
            member.join_waiter = Some(JoinWaiter { reply });
            group.members.insert(new_id.to_string(), member);
            maybe_complete_join(group, now);
            false
        }
        _ => {
            member.join_waiter = Some(JoinWaiter { reply });
            group.members.insert(new_id.to_string(), member);
            prepare_rebalance(group, limits, now);
            false
        }
    }
}

/// First JoinGroup version with `skip_assignment` (KIP-814).
const SKIP_ASSIGNMENT_SINCE: i16 = 9;

/// The answer to a static member that rejoined without changing anything,
/// as Kafka's GroupCoordinator gives it: from v9 the leader is told it
/// leads, with every member, and to skip the assignment (KIP-814); before
/// v9 the leader id is the one before the rejoin and no members are
/// listed, so the client acts as a follower.
fn static_rejoin_response(
    group: &Group,
    member_id: &str,
    leader_before: Option<String>,
    version: i16,
) -> JoinGroupResponse {
    let mut r = join_response(group, member_id);
    let is_leader = group.leader.as_deref() == Some(member_id);
    if version >= SKIP_ASSIGNMENT_SINCE {
        r.skip_assignment = is_leader;
    } else if is_leader {
        r.leader = s(leader_before.as_deref().unwrap_or_default());
        r.members.clear();
    }
    r
}

fn metadata_in(protocols: &[(String, Bytes)], protocol: &str) -> Bytes {
    protocols
        .iter()
        .find(|(n, _)| n == protocol)
        .map(|(_, m)| m.clone())
        .unwrap_or_default()
}

fn add_member_and_rebalance(
    group: &mut Group,
    limits: &Limits,
    mut member: Member,
    protocol_type: &str,
    reply: oneshot::Sender<JoinGroupResponse>,
    now: i64,
) {
    if group.members.is_empty() {
        group.protocol_type = Some(protocol_type.to_string());
    }
    member.join_waiter = Some(JoinWaiter { reply });
    if let Some(instance) = &member.instance_id {
        group
            .static_members
            .insert(instance.clone(), member.id.clone());
    }
    let rebalance_timeout = i64::from(member.rebalance_timeout_ms);
    group.members.insert(member.id.clone(), member);
    match group.state {
        GroupState::PreparingRebalance => {
            if let Some(until) = group.initial_delay_until_ms.as_mut() {
                // Each new member during the initial delay extends it, up
                // to the rebalance timeout.
                let cap = group.rebalance_started_ms + rebalance_timeout;
                *until = (now + limits.initial_delay_ms).min(cap).max(*until);
            }
            group.join_deadline_ms = group.join_deadline_ms.max(now + rebalance_timeout);
            maybe_complete_join(group, now);
        }
        _ => prepare_rebalance(group, limits, now),
    }
}

//! The classic group protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup and the timers) as Kafka's GroupCoordinator runs it.
//!
//! Each function changes one [`Group`] and answers through oneshots; it
//! returns `true` when the group's metadata record must be written (a new
//! assignment, a group gone empty, a static member replaced).

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::state::{Group, GroupState, JoinWaiter, Member};

/// The limits a coordinator applies, from the broker config.
#[derive(Clone, Debug)]
pub struct Limits {
    pub initial_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
}

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn join_error(error: i16, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = error;
    r.generation_id = -1;
    r.member_id = s(member_id);
    r
}

pub fn sync_error(error: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = error;
    r
}

/// Bytes of the client id a member id starts with.
const MEMBER_ID_PREFIX_MAX: usize = 128;

/// A new member id: the client id (as Kafka does, but cut short so the id
/// fits the topic's records) and a unique suffix.
fn new_member_id(client_id: &str) -> String {
    let mut end = client_id.len().min(MEMBER_ID_PREFIX_MAX);
    while !client_id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{}", &client_id[..end], crate::metadata::new_topic_id())
}

/// The JoinGroup answer for `member_id` in the current generation: the
/// leader gets every member's subscription for the chosen protocol.
fn join_response(group: &Group, member_id: &str) -> JoinGroupResponse {
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
fn select_protocol(group: &Group) -> Option<String> {
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
fn fenced(group: &Group, instance_id: Option<&str>, member_id: &str) -> bool {
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
            let _ = reply.send(join_response(group, new_id));
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

/// Starts a join phase: every member must rejoin. A group that was empty
/// waits `group.initial.rebalance.delay.ms` for more members first.
pub fn prepare_rebalance(group: &mut Group, limits: &Limits, now: i64) {
    if group.state == GroupState::CompletingRebalance {
        for m in group.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(sync_error(code(ResponseError::RebalanceInProgress)));
            }
        }
    }
    let initial = group.state == GroupState::Empty;
    let timeout = group
        .members
        .values()
        .map(|m| i64::from(m.rebalance_timeout_ms))
        .max()
        .unwrap_or(0);
    group.state = GroupState::PreparingRebalance;
    group.rebalance_started_ms = now;
    group.join_deadline_ms = now + timeout;
    group.initial_delay_until_ms = (initial && limits.initial_delay_ms > 0)
        .then(|| now + limits.initial_delay_ms.min(timeout));
    maybe_complete_join(group, now);
}

/// Completes the join phase once every member has rejoined (and the
/// initial delay is over), or its deadline passed. Returns whether it did.
pub fn maybe_complete_join(group: &mut Group, now: i64) -> bool {
    if group.state != GroupState::PreparingRebalance {
        return false;
    }
    if group
        .initial_delay_until_ms
        .is_some_and(|until| now < until)
    {
        return false;
    }
    let all_joined =
        group.pending.is_empty() && group.members.values().all(|m| m.join_waiter.is_some());
    if !all_joined && now < group.join_deadline_ms {
        return false;
    }
    complete_join(group, now);
    true
}

/// Ends the join phase: members that did not rejoin (dynamic ones) are
/// dropped, the generation moves on, the protocol and the leader are
/// chosen and every waiting join is answered.
fn complete_join(group: &mut Group, now: i64) {
    let gone: Vec<String> = group
        .members
        .values()
        .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in gone {
        remove_member(group, &id);
    }
    group.pending.clear();
    group.initial_delay_until_ms = None;
    group.generation += 1;
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.protocol = None;
        group.leader = None;
        group.empty_since_ms = now;
        tracing::info!(group = %group.id, generation = group.generation, "group is empty");
        return;
    }
    group.protocol = select_protocol(group);
    let leader_ok = group.leader.as_ref().is_some_and(|l| {
        group
            .members
            .get(l)
            .is_some_and(|m| m.join_waiter.is_some())
    });
    if !leader_ok {
        group.leader = group
            .members
            .values()
            .find(|m| m.join_waiter.is_some())
            .or_else(|| group.members.values().next())
            .map(|m| m.id.clone());
    }
    group.state = GroupState::CompletingRebalance;
    let sync_timeout = group
        .members
        .values()
        .map(|m| i64::from(m.rebalance_timeout_ms))
        .max()
        .unwrap_or(0);
    group.sync_deadline_ms = now + sync_timeout;
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let response = join_response(group, &id);
        let m = group.members.get_mut(&id).expect("member");
        m.last_seen_ms = now;
        m.assignment = Bytes::new();
        if let Some(w) = m.join_waiter.take() {
            let _ = w.reply.send(response);
        }
    }
    tracing::info!(
        group = %group.id,
        generation = group.generation,
        members = group.members.len(),
        protocol = group.protocol.as_deref().unwrap_or_default(),
        join_phase_ms = now - group.rebalance_started_ms,
        "join phase complete"
    );
}

/// Takes a member out, answering whatever of its requests is parked here.
fn remove_member(group: &mut Group, id: &str) -> bool {
    let Some(mut m) = group.members.remove(id) else {
        return false;
    };
    if let Some(w) = m.join_waiter.take() {
        let _ = w
            .reply
            .send(join_error(code(ResponseError::UnknownMemberId), id));
    }
    if let Some(w) = m.sync_waiter.take() {
        let _ = w.send(sync_error(code(ResponseError::UnknownMemberId)));
    }
    if let Some(instance) = &m.instance_id {
        if group.static_members.get(instance).map(String::as_str) == Some(id) {
            group.static_members.remove(instance);
        }
    }
    if group.leader.as_deref() == Some(id) {
        group.leader = None;
    }
    true
}

/// A member left or timed out: the others must rebalance.
fn after_member_removed(group: &mut Group, limits: &Limits, now: i64) {
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(group, limits, now)
        }
        GroupState::PreparingRebalance => {
            maybe_complete_join(group, now);
        }
        GroupState::Empty => {}
    }
}

pub struct Sync {
    pub version: i16,
    pub request: SyncGroupRequest,
}

pub fn sync(
    group: &mut Group,
    sync: Sync,
    reply: oneshot::Sender<SyncGroupResponse>,
    now: i64,
) -> bool {
    let r = &sync.request;
    let member_id = r.member_id.to_string();
    let instance_id = r.group_instance_id.as_ref().map(|i| i.to_string());
    let fail = |reply: oneshot::Sender<SyncGroupResponse>, e: ResponseError| {
        let _ = reply.send(sync_error(code(e)));
        false
    };
    if fenced(group, instance_id.as_deref(), &member_id) {
        return fail(reply, ResponseError::FencedInstanceId);
    }
    if !group.members.contains_key(&member_id) || group.state == GroupState::Empty {
        return fail(reply, ResponseError::UnknownMemberId);
    }
    if r.generation_id != group.generation {
        return fail(reply, ResponseError::IllegalGeneration);
    }
    let type_mismatch = r
        .protocol_type
        .as_ref()
        .is_some_and(|t| Some(t.as_str()) != group.protocol_type.as_deref());
    let name_mismatch = r
        .protocol_name
        .as_ref()
        .is_some_and(|n| Some(n.as_str()) != group.protocol.as_deref());
    if sync.version >= 5 && (type_mismatch || name_mismatch) {
        return fail(reply, ResponseError::InconsistentGroupProtocol);
    }
    match group.state {
        GroupState::PreparingRebalance => fail(reply, ResponseError::RebalanceInProgress),
        GroupState::Stable => {
            let m = group.members.get_mut(&member_id).expect("member");
            m.last_seen_ms = now;
            let response = sync_response(group, &member_id);
            let _ = reply.send(response);
            false
        }
        GroupState::CompletingRebalance => {
            let m = group.members.get_mut(&member_id).expect("member");
            m.last_seen_ms = now;
            m.sync_waiter = Some(reply);
            if group.leader.as_deref() != Some(member_id.as_str()) {
                return false;
            }
            for m in group.members.values_mut() {
                m.assignment = Bytes::new();
            }
            for a in &sync.request.assignments {
                if let Some(m) = group.members.get_mut(a.member_id.as_str()) {
                    m.assignment = a.assignment.clone();
                }
            }
            group.state = GroupState::Stable;
            let ids: Vec<String> = group.members.keys().cloned().collect();
            for id in ids {
                let response = sync_response(group, &id);
                let m = group.members.get_mut(&id).expect("member");
                m.last_seen_ms = now;
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(response);
                }
            }
            tracing::info!(
                group = %group.id,
                generation = group.generation,
                members = group.members.len(),
                rebalance_ms = now - group.rebalance_started_ms,
                "group is stable"
            );
            true
        }
        GroupState::Empty => unreachable!("checked above"),
    }
}

fn sync_response(group: &Group, member_id: &str) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.protocol_type = group.protocol_type.as_deref().map(s);
    r.protocol_name = group.protocol.as_deref().map(s);
    r.assignment = group
        .members
        .get(member_id)
        .map(|m| m.assignment.clone())
        .unwrap_or_default();
    r
}

pub fn heartbeat(group: &mut Group, request: &HeartbeatRequest, now: i64) -> HeartbeatResponse {
    let mut r = HeartbeatResponse::default();
    let member_id = request.member_id.as_str();
    let instance_id = request.group_instance_id.as_deref();
    r.error_code = if fenced(group, instance_id, member_id) {
        code(ResponseError::FencedInstanceId)
    } else if !group.members.contains_key(member_id) || group.state == GroupState::Empty {
        code(ResponseError::UnknownMemberId)
    } else if request.generation_id != group.generation {
        code(ResponseError::IllegalGeneration)
    } else {
        let m = group.members.get_mut(member_id).expect("member");
        m.last_seen_ms = now;
        match group.state {
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            _ => 0,
        }
    };
    r
}

/// Who is leaving: v0-2 name one member, v3+ a batch (by instance id too).
pub fn leave_identities(
    version: i16,
    request: &LeaveGroupRequest,
) -> Vec<(String, Option<String>)> {
    if version <= 2 {
        return vec![(request.member_id.to_string(), None)];
    }
    request
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|i| i.to_string()),
            )
        })
        .collect()
}

pub fn leave(
    group: &mut Group,
    limits: &Limits,
    version: i16,
    request: &LeaveGroupRequest,
    now: i64,
) -> LeaveGroupResponse {
    let mut results = Vec::new();
    let mut removed = false;
    for (member_id, instance_id) in leave_identities(version, request) {
        let error = match &instance_id {
            Some(instance) => match group.static_members.get(instance).cloned() {
                None => code(ResponseError::UnknownMemberId),
                Some(holder) if !member_id.is_empty() && holder != member_id => {
                    code(ResponseError::FencedInstanceId)
                }
                Some(holder) => {
                    removed |= remove_member(group, &holder);
                    0
                }
            },
            None if group.pending.remove(&member_id).is_some() => 0,
            None if remove_member(group, &member_id) => {
                removed = true;
                0
            }
            None => code(ResponseError::UnknownMemberId),
        };
        let mut m = MemberResponse::default();
        m.member_id = s(&member_id);
        m.group_instance_id = instance_id.as_deref().map(s);
        m.error_code = error;
        results.push(m);
    }
    if removed {
        tracing::info!(group = %group.id, "member left; rebalancing");
        after_member_removed(group, limits, now);
    }
    leave_response(version, results)
}

pub fn leave_response(version: i16, members: Vec<MemberResponse>) -> LeaveGroupResponse {
    let mut r = LeaveGroupResponse::default();
    if version <= 2 {
        r.error_code = members.first().map_or(0, |m| m.error_code);
    } else {
        r.members = members;
    }
    r
}

/// The timers: expired pending ids and sessions, join and sync deadlines.
/// Returns whether the group metadata must be written.
pub fn tick(group: &mut Group, limits: &Limits, now: i64) -> bool {
    group.pending.retain(|_, deadline| *deadline > now);
    let expired: Vec<String> = group
        .members
        .values()
        .filter(|m| m.expired(now))
        .map(|m| m.id.clone())
        .collect();
    let mut persist = false;
    if !expired.is_empty() {
        for id in &expired {
            tracing::info!(group = %group.id, member = %id, "session timed out");
            remove_member(group, id);
        }
        after_member_removed(group, limits, now);
        persist = group.state == GroupState::Empty;
    }
    match group.state {
        GroupState::PreparingRebalance => {
            persist |= maybe_complete_join(group, now) && group.state == GroupState::Empty;
        }
        GroupState::CompletingRebalance if now >= group.sync_deadline_ms => {
            // The leader never sent the assignment: drop the members that
            // did not sync and start over.
            let lagging: Vec<String> = group
                .members
                .values()
                .filter(|m| m.sync_waiter.is_none())
                .map(|m| m.id.clone())
                .collect();
            for id in &lagging {
                remove_member(group, id);
            }
            prepare_rebalance(group, limits, now);
        }
        _ => {}
    }
    persist
}

//! SyncGroup (the leader hands out assignments) and Heartbeat.

use super::*;

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

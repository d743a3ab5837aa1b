//! LeaveGroup, one member (v0-2) or a batch (v3+).

use super::*;

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

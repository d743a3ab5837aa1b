//! The join phase: starting it, completing it, members leaving it, and
//! the timers that end sessions and phases.

use super::*;

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
pub(super) fn remove_member(group: &mut Group, id: &str) -> bool {
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
pub(super) fn after_member_removed(group: &mut Group, limits: &Limits, now: i64) {
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

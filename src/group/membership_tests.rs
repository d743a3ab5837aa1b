//! The classic group protocol's rules, run without a runtime or a log.
use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::membership::*;
use super::state::{Group, GroupState};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;

const LIMITS: Limits = Limits {
    initial_delay_ms: 100,
    min_session_timeout_ms: 1,
    max_session_timeout_ms: 100_000,
    max_size: 3,
};

fn join_req(member: &str, instance: Option<&str>) -> Join {
    let mut p = JoinGroupRequestProtocol::default();
    p.name = s("range");
    p.metadata = Bytes::from_static(b"sub");
    let mut request = JoinGroupRequest::default();
    request.group_id = s("g").into();
    request.member_id = s(member);
    request.group_instance_id = instance.map(s);
    request.session_timeout_ms = 1000;
    request.rebalance_timeout_ms = 5000;
    request.protocol_type = s("consumer");
    request.protocols = vec![p];
    Join {
        version: 7,
        client_id: "c".into(),
        client_host: String::new(),
        request,
    }
}

fn do_join(
    g: &mut Group,
    member: &str,
    instance: Option<&str>,
    now: i64,
) -> oneshot::Receiver<JoinGroupResponse> {
    let (tx, rx) = oneshot::channel();
    join(g, &LIMITS, join_req(member, instance), tx, now);
    rx
}

fn do_sync(g: &mut Group, member: &str, generation: i32, now: i64) -> SyncGroupResponse {
    let mut request = SyncGroupRequest::default();
    request.member_id = s(member);
    request.generation_id = generation;
    request.assignments = g
        .members
        .keys()
        .map(|id| {
            let mut a = SyncGroupRequestAssignment::default();
            a.member_id = s(id);
            a.assignment = Bytes::from(format!("for-{id}"));
            a
        })
        .collect();
    let (tx, mut rx) = oneshot::channel();
    sync(
        g,
        Sync {
            version: 5,
            request,
        },
        tx,
        now,
    );
    rx.try_recv().unwrap().expect("sync answered at once")
}

/// Joins a dynamic member through MEMBER_ID_REQUIRED; returns its id
/// and its parked join.
fn join_new(g: &mut Group, now: i64) -> (String, oneshot::Receiver<JoinGroupResponse>) {
    let mut first = do_join(g, "", None, now);
    let r = first.try_recv().unwrap().unwrap();
    assert_eq!(r.error_code, ResponseError::MemberIdRequired.code());
    let id = r.member_id.to_string();
    (id.clone(), do_join(g, &id, None, now))
}

#[test]
fn two_members_join_after_the_initial_delay_and_sync() {
    let mut g = Group::new("g".into(), 0);
    let (a, mut ja) = join_new(&mut g, 0);
    let (b, mut jb) = join_new(&mut g, 10);
    assert!(
        ja.try_recv().unwrap().is_none(),
        "waits for the initial delay"
    );
    tick(&mut g, &LIMITS, 50);
    assert!(jb.try_recv().unwrap().is_none());
    tick(&mut g, &LIMITS, 200);
    let (ra, rb) = (
        ja.try_recv().unwrap().unwrap(),
        jb.try_recv().unwrap().unwrap(),
    );
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!(ra.generation_id, 1);
    let (leader, follower) = if ra.leader.as_str() == a {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let lr = if leader == &a { &ra } else { &rb };
    assert_eq!(lr.members.len(), 2, "the leader gets every subscription");
    assert_eq!(g.state, GroupState::CompletingRebalance);
    assert!(do_sync(&mut g, leader, 1, 210)
        .assignment
        .starts_with(b"for-"));
    assert_eq!(g.state, GroupState::Stable);
    let fr = do_sync(&mut g, follower, 1, 220);
    assert_eq!(&fr.assignment[..], format!("for-{follower}").as_bytes());
    assert_eq!(
        do_sync(&mut g, follower, 0, 230).error_code,
        ResponseError::IllegalGeneration.code()
    );
}

#[test]
fn a_silent_member_is_evicted_and_the_rest_rebalance() {
    let mut g = Group::new("g".into(), 0);
    let (a, _ja) = join_new(&mut g, 0);
    let (b, _jb) = join_new(&mut g, 0);
    tick(&mut g, &LIMITS, 200);
    let leader = g.leader.clone().unwrap();
    do_sync(&mut g, &leader, 1, 200);
    // Only `a` heartbeats; `b`'s 1 s session runs out.
    let mut hb = HeartbeatRequest::default();
    hb.member_id = s(&a);
    hb.generation_id = 1;
    assert_eq!(heartbeat(&mut g, &hb, 900).error_code, 0);
    tick(&mut g, &LIMITS, 1300);
    assert!(!g.members.contains_key(&b));
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(
        heartbeat(&mut g, &hb, 1300).error_code,
        ResponseError::RebalanceInProgress.code()
    );
    let mut rejoin = do_join(&mut g, &a, None, 1310);
    let r = rejoin.try_recv().unwrap().unwrap();
    assert_eq!((r.error_code, r.generation_id), (0, 2));
    assert_eq!(r.leader.as_str(), a);
}

#[test]
fn a_static_member_rejoining_keeps_its_assignment_without_rebalance() {
    let mut g = Group::new("g".into(), 0);
    let _j = do_join(&mut g, "", Some("i1"), 0);
    tick(&mut g, &LIMITS, 200);
    let old = g.static_members["i1"].clone();
    do_sync(&mut g, &old, 1, 200);
    let mut again = do_join(&mut g, "", Some("i1"), 300);
    let r = again.try_recv().unwrap().unwrap();
    assert_eq!((r.error_code, r.generation_id), (0, 1), "same generation");
    assert_ne!(r.member_id.as_str(), old);
    assert_eq!(g.state, GroupState::Stable);
    let fenced = do_join(&mut g, &old, Some("i1"), 310)
        .try_recv()
        .unwrap()
        .unwrap();
    assert_eq!(fenced.error_code, ResponseError::FencedInstanceId.code());
    let new_id = r.member_id.to_string();
    assert_eq!(
        &do_sync(&mut g, &new_id, 1, 320).assignment[..],
        format!("for-{old}").as_bytes()
    );
}

#[test]
fn group_size_is_bounded() {
    let mut g = Group::new("g".into(), 0);
    for _ in 0..3 {
        let _ = join_new(&mut g, 0);
    }
    let r = do_join(&mut g, "", None, 0).try_recv().unwrap().unwrap();
    assert_eq!(r.error_code, ResponseError::GroupMaxSizeReached.code());
}

use super::*;

const T: Uuid = Uuid::from_u128(7);

fn topics(partitions: i32) -> BTreeMap<String, TopicShape> {
    BTreeMap::from([("t".to_string(), TopicShape { id: T, partitions })])
}

fn limits() -> Limits {
    Limits {
        max_size: 3,
        session_timeout_ms: 1_000,
    }
}

fn join(id: &str) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: JOINING_EPOCH,
        rebalance_timeout_ms: 500,
        subscribed: Some(BTreeSet::from(["t".to_string()])),
        ..Heartbeat::default()
    }
}

fn beat(id: &str, epoch: i32, owned: &[i32]) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: epoch,
        owned: Some(partitions(owned)),
        ..Heartbeat::default()
    }
}

fn partitions(ps: &[i32]) -> Assignment {
    if ps.is_empty() {
        return Assignment::new();
    }
    BTreeMap::from([(T, ps.iter().copied().collect())])
}

fn owned(a: &Option<Assignment>) -> Vec<i32> {
    a.as_ref()
        .and_then(|a| a.get(&T))
        .map(|ps| ps.iter().copied().collect())
        .unwrap_or_default()
}

/// A heartbeat that moves only its own member names only it to the write
/// (debug builds check the narrow look against a whole one); a new epoch
/// names every member.
#[test]
fn reconciling_heartbeats_name_only_their_own_member() {
    use crate::group::records::Protocol;
    use crate::group::written::Written;
    let (t, l) = (topics(4), limits());
    let mut g = ConsumerGroup::default();
    let mut written = Written::new(Protocol::Consumer);
    let mut write = |g: &mut ConsumerGroup| {
        let touched = g.take_touched();
        let changes = written.changes_within(Some(&*g), &touched);
        (touched, changes.len())
    };
    let only = |id: &str| Touched::Only([id.to_string()].into());
    g.heartbeat(join("a"), &t, &l, 0).unwrap();
    assert_eq!(write(&mut g).0, Touched::All, "a new epoch");
    g.heartbeat(join("b"), &t, &l, 10).unwrap();
    assert_eq!(write(&mut g).0, Touched::All);
    // a gives up two partitions, then reaches the new epoch; then b takes
    // them: one member's record each time.
    let a = g
        .heartbeat(beat("a", 1, &[0, 1, 2, 3]), &t, &l, 20)
        .unwrap();
    assert_eq!(write(&mut g), (only("a"), 1));
    let kept = owned(&a.assignment);
    g.heartbeat(beat("a", 1, &kept), &t, &l, 30).unwrap();
    assert_eq!(write(&mut g), (only("a"), 1));
    let b = g.heartbeat(beat("b", 2, &[]), &t, &l, 40).unwrap();
    assert_eq!(write(&mut g), (only("b"), 1));
    // Nothing changed: nothing named, nothing written.
    g.heartbeat(beat("b", 2, &owned(&b.assignment)), &t, &l, 50)
        .unwrap();
    assert_eq!(write(&mut g), (Touched::Only(BTreeSet::new()), 0));
    // A member leaving: a new epoch again.
    g.heartbeat(beat("a", LEAVING_EPOCH, &[]), &t, &l, 60)
        .unwrap();
    assert_eq!(write(&mut g).0, Touched::All);
}

#[test]
fn a_partition_moves_only_once_its_owner_gave_it_up() {
    let (t, l) = (topics(4), limits());
    let mut g = ConsumerGroup::default();
    let a = g.heartbeat(join("a"), &t, &l, 0).unwrap();
    assert_eq!(owned(&a.assignment), [0, 1, 2, 3]);
    assert_eq!(a.member_epoch, 1);

    // b joins: the target splits 2/2, but b gets nothing a still owns.
    let b = g.heartbeat(join("b"), &t, &l, 10).unwrap();
    assert_eq!(b.member_epoch, 2);
    assert_eq!(owned(&b.assignment), Vec::<i32>::new());
    // a is told to keep two: it stays at its epoch until it gave two up.
    let a = g
        .heartbeat(beat("a", 1, &[0, 1, 2, 3]), &t, &l, 20)
        .unwrap();
    assert_eq!(a.member_epoch, 1);
    let kept = owned(&a.assignment);
    assert_eq!(kept.len(), 2);
    // Still owning them, b is given nothing yet.
    let b = g.heartbeat(beat("b", 2, &[]), &t, &l, 30).unwrap();
    assert_eq!(b.assignment, None, "unchanged: nothing told");
    // a has revoked: it reaches epoch 2, and b takes the rest.
    let a = g.heartbeat(beat("a", 1, &kept), &t, &l, 40).unwrap();
    assert_eq!(a.member_epoch, 2);
    let b = g.heartbeat(beat("b", 2, &[]), &t, &l, 50).unwrap();
    let mut all = owned(&b.assignment);
    all.extend(&kept);
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3]);
    assert_eq!(g.state(), "Stable");
}

#[test]
fn a_member_that_leaves_or_goes_silent_frees_its_partitions() {
    let (t, l) = (topics(2), limits());
    let mut g = ConsumerGroup::default();
    g.heartbeat(join("a"), &t, &l, 0).unwrap();
    g.heartbeat(join("b"), &t, &l, 0).unwrap();
    let a = g.heartbeat(beat("a", 1, &[0, 1]), &t, &l, 1).unwrap();
    let kept = owned(&a.assignment);
    g.heartbeat(beat("a", 1, &kept), &t, &l, 2).unwrap();
    let b = g.heartbeat(beat("b", 2, &[]), &t, &l, 3).unwrap();
    assert_eq!(owned(&b.assignment).len(), 1);

    let gone = g
        .heartbeat(beat("a", LEAVING_EPOCH, &kept), &t, &l, 4)
        .unwrap();
    assert_eq!(gone.member_epoch, LEAVING_EPOCH);
    let b = g
        .heartbeat(beat("b", 2, &owned(&b.assignment)), &t, &l, 5)
        .unwrap();
    assert_eq!(owned(&b.assignment), [0, 1]);

    g.heartbeat(join("c"), &t, &l, 600).unwrap();
    assert!(!g.expire(&l, 900));
    assert!(g.expire(&l, 1_100), "b silent since 5");
    assert_eq!(g.members.keys().collect::<Vec<_>>(), ["c"]);
}

#[test]
fn a_member_late_giving_up_partitions_is_removed() {
    let (t, l) = (topics(2), limits());
    let mut g = ConsumerGroup::default();
    g.heartbeat(join("a"), &t, &l, 0).unwrap();
    g.heartbeat(join("b"), &t, &l, 0).unwrap();
    g.heartbeat(beat("a", 1, &[0, 1]), &t, &l, 100).unwrap();
    // a's rebalance timeout is 500 ms from 100; b keeps heartbeating.
    g.heartbeat(beat("b", 2, &[]), &t, &l, 550).unwrap();
    assert!(!g.expire(&l, 590));
    g.heartbeat(beat("a", 1, &[0, 1]), &t, &l, 590).unwrap();
    assert!(g.expire(&l, 601));
    let b = g.heartbeat(beat("b", 2, &[]), &t, &l, 602).unwrap();
    assert_eq!(owned(&b.assignment), [0, 1]);
}

#[test]
fn refusals_carry_kafkas_codes() {
    let (t, l) = (topics(1), limits());
    let mut g = ConsumerGroup::default();
    g.heartbeat(join("a"), &t, &l, 0).unwrap();
    let stale = g.heartbeat(beat("a", 7, &[0]), &t, &l, 1).unwrap_err();
    assert_eq!(stale.code(), ResponseError::FencedMemberEpoch.code());
    let unknown = g.heartbeat(beat("z", 1, &[]), &t, &l, 1).unwrap_err();
    assert_eq!(unknown.code(), ResponseError::UnknownMemberId.code());
    let mut no_subscription = join("b");
    no_subscription.subscribed = None;
    assert_eq!(
        g.heartbeat(no_subscription, &t, &l, 1).unwrap_err().code(),
        ResponseError::InvalidRequest.code()
    );
    let mut odd = join("b");
    odd.assignor = Some("sticky".into());
    assert_eq!(
        g.heartbeat(odd, &t, &l, 1).unwrap_err().code(),
        ResponseError::UnsupportedAssignor.code()
    );
    g.heartbeat(join("b"), &t, &l, 1).unwrap();
    g.heartbeat(join("c"), &t, &l, 1).unwrap();
    assert_eq!(
        g.heartbeat(join("d"), &t, &l, 1).unwrap_err().code(),
        ResponseError::GroupMaxSizeReached.code()
    );
    // Commits: the member's epoch only.
    let epoch = g.members["a"].epoch;
    assert_eq!(g.check_commit("a", epoch, 2), 0);
    assert_eq!(
        g.check_commit("a", epoch - 1, 2),
        ResponseError::StaleMemberEpoch.code()
    );
    assert_eq!(
        g.check_commit("a", epoch + 1, 2),
        ResponseError::FencedMemberEpoch.code()
    );
    assert_eq!(
        g.check_commit("", -1, 2),
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn a_topic_that_grows_makes_a_new_epoch_and_is_assigned() {
    let l = limits();
    let mut g = ConsumerGroup::default();
    let a = g.heartbeat(join("a"), &topics(2), &l, 0).unwrap();
    assert_eq!(owned(&a.assignment), [0, 1]);
    let same = g.heartbeat(beat("a", a.member_epoch, &[0, 1]), &topics(2), &l, 1);
    assert_eq!(
        same.unwrap().member_epoch,
        a.member_epoch,
        "nothing changed"
    );
    let grown = g.heartbeat(beat("a", a.member_epoch, &[0, 1]), &topics(3), &l, 2);
    let grown = grown.unwrap();
    assert!(grown.member_epoch > a.member_epoch);
    assert_eq!(owned(&grown.assignment), [0, 1, 2]);
}

#[test]
fn a_static_member_back_under_its_instance_id_keeps_its_partitions() {
    let (t, l) = (topics(2), limits());
    let mut g = ConsumerGroup::default();
    let static_join = |id: &str| Heartbeat {
        instance_id: Some("i-1".into()),
        ..join(id)
    };
    g.heartbeat(static_join("a"), &t, &l, 0).unwrap();
    g.heartbeat(join("b"), &t, &l, 0).unwrap();
    let a = g.heartbeat(beat("a", 1, &[0, 1]), &t, &l, 1).unwrap();
    let kept = owned(&a.assignment);
    let a = g.heartbeat(beat("a", 1, &kept), &t, &l, 2).unwrap();
    let epoch = g.epoch;

    // While a runs, its instance id is its own.
    let taken = g.heartbeat(static_join("a2"), &t, &l, 3).unwrap_err();
    assert_eq!(taken.code(), ResponseError::UnreleasedInstanceId.code());
    // a leaves for a restart: its partitions wait for it, nothing moves.
    g.heartbeat(beat("a", LEAVING_STATIC_EPOCH, &kept), &t, &l, 4)
        .unwrap();
    assert_eq!(g.epoch, epoch);
    let b = g.heartbeat(beat("b", 2, &[]), &t, &l, 5).unwrap();
    assert_eq!(
        owned(&b.assignment).len(),
        1,
        "b does not get a's partition"
    );
    let back = g.heartbeat(static_join("a2"), &t, &l, 6).unwrap();
    assert_eq!(back.member_epoch, a.member_epoch);
    assert_eq!(owned(&back.assignment), kept);
    assert_eq!(g.epoch, epoch, "no new group epoch");
    let old = g.heartbeat(beat("a", a.member_epoch, &kept), &t, &l, 7);
    assert_eq!(
        old.unwrap_err().code(),
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn a_member_that_lost_its_answer_is_told_again() {
    let (t, l) = (topics(2), limits());
    let mut g = ConsumerGroup::default();
    let a = g.heartbeat(join("a"), &t, &l, 0).unwrap();
    assert_eq!(owned(&a.assignment), [0, 1]);
    // The answer was lost: a still owns nothing and says so.
    let again = g
        .heartbeat(beat("a", a.member_epoch, &[]), &t, &l, 1)
        .unwrap();
    assert_eq!(owned(&again.assignment), [0, 1]);
    // Once it owns them, nothing more is told.
    let quiet = g
        .heartbeat(beat("a", a.member_epoch, &[0, 1]), &t, &l, 2)
        .unwrap();
    assert_eq!(quiet.assignment, None);
}

fn classic_join(id: &str, owned: &[i32]) -> classic::ClassicJoin {
    classic::ClassicJoin {
        member_id: id.into(),
        session_timeout_ms: 2_000,
        rebalance_timeout_ms: 500,
        protocols: vec![("range".into(), bytes::Bytes::new())],
        subscribed: BTreeSet::from(["t".to_string()]),
        owned: partitions(owned),
        ..classic::ClassicJoin::default()
    }
}

/// Two classic members as an upgraded classic group holds them.
fn upgraded(generation: i32) -> ConsumerGroup {
    let seed = |id: &str, ps: &[i32]| classic::Seed {
        id: id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/h".into(),
        rebalance_timeout_ms: 500,
        classic: classic::ClassicMember {
            session_timeout_ms: 2_000,
            protocols: vec![("range".into(), bytes::Bytes::new())],
            deadline_ms: None,
        },
        subscribed: BTreeSet::from(["t".to_string()]),
        assigned: partitions(ps),
    };
    let seeds = vec![seed("a", &[0, 1]), seed("b", &[2, 3])];
    ConsumerGroup::from_classic(generation, seeds, &topics(4), 0)
}

#[test]
fn classic_members_keep_their_partitions_through_an_upgrade() {
    let mut g = upgraded(7);
    assert_eq!((g.epoch, g.target_epoch), (7, 7));
    assert_eq!(g.state(), "Stable");
    // Nothing changed: their heartbeats at the generation are answered.
    assert_eq!(g.classic_heartbeat("a", 7, 10), Ok(()));
    assert_eq!(
        g.classic_heartbeat("a", 6, 10),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        g.classic_heartbeat("x", 7, 10),
        Err(ResponseError::UnknownMemberId)
    );
    let (assigned, classic) = g.classic_sync("b", 7, 10).unwrap();
    assert_eq!(assigned, partitions(&[2, 3]));
    assert_eq!(classic.protocol_name(), "range");
    // Classic members commit under their generation.
    assert_eq!(g.check_commit("a", 7, 10), 0);
    assert_eq!(
        g.check_commit("a", 8, 10),
        ResponseError::IllegalGeneration.code()
    );
    assert!(g.only_classic_members());
}

#[test]
fn a_consumer_member_joins_classic_members_without_sharing_a_partition() {
    let (t, l) = (topics(4), limits());
    let mut g = upgraded(7);
    let c = g.heartbeat(join("c"), &t, &l, 10).unwrap();
    assert_eq!(c.member_epoch, 8);
    assert_eq!(owned(&c.assignment), Vec::<i32>::new(), "all still owned");
    assert!(!g.only_classic_members());
    // The classic members are behind: they are asked to join again.
    assert_eq!(
        g.classic_heartbeat("a", 7, 20),
        Err(ResponseError::RebalanceInProgress)
    );
    // An eager member gave everything up before joining: it is at the new
    // epoch at once, with what the target leaves it.
    let a = g.classic_join(classic_join("a", &[]), &t, &l, 30).unwrap();
    assert_eq!(a.member_epoch, 8);
    let (a_owns, _) = g.classic_sync("a", 8, 40).unwrap();
    // A cooperative member still owning what it must give up keeps its
    // generation until it joins without them.
    let b = g
        .classic_join(classic_join("b", &[2, 3]), &t, &l, 50)
        .unwrap();
    let (b_owns, _) = g.classic_sync("b", b.member_epoch, 60).unwrap();
    if b.member_epoch == 7 {
        assert_eq!(
            g.classic_heartbeat("b", 7, 70),
            Err(ResponseError::RebalanceInProgress)
        );
        let owns: Vec<i32> = b_owns.get(&T).into_iter().flatten().copied().collect();
        let b = g
            .classic_join(classic_join("b", &owns), &t, &l, 80)
            .unwrap();
        assert_eq!(b.member_epoch, 8);
    }
    assert_eq!(g.classic_heartbeat("b", 8, 90), Ok(()));
    let c = g.heartbeat(beat("c", 8, &[]), &t, &l, 100).unwrap();
    let mut all: Vec<i32> = owned(&c.assignment);
    let (a_owns_now, _) = g.classic_sync("a", 8, 110).unwrap();
    let (b_owns_now, _) = g.classic_sync("b", 8, 110).unwrap();
    assert!(within(&a_owns_now, &a_owns) || a_owns.is_empty());
    for a in [&a_owns_now, &b_owns_now] {
        all.extend(a.get(&T).into_iter().flatten());
    }
    all.sort_unstable();
    assert_eq!(all, [0, 1, 2, 3], "every partition owned once");
    assert_eq!(g.state(), "Stable");
}

#[test]
fn the_group_is_classic_again_once_its_consumer_members_left() {
    let (t, l) = (topics(4), limits());
    let mut g = upgraded(3);
    g.heartbeat(join("c"), &t, &l, 10).unwrap();
    assert!(!g.only_classic_members());
    g.heartbeat(beat("c", LEAVING_EPOCH, &[]), &t, &l, 20)
        .unwrap();
    assert!(g.only_classic_members());
    let seeds = g.classic_seeds();
    assert_eq!(seeds.len(), 2);
    assert!(seeds.iter().all(|s| s.classic.protocol_name() == "range"));
}

#[test]
fn classic_members_time_out_by_their_own_session_and_deadlines() {
    let (t, l) = (topics(4), limits());
    let mut g = upgraded(3);
    // Their 2 s session, not the group's 1 s.
    assert!(!g.expire(&l, 1_500));
    assert_eq!(g.classic_heartbeat("a", 3, 1_500), Ok(()));
    assert!(g.expire(&l, 2_100), "b was silent for its session");
    assert!(!g.members.contains_key("b"));
    // Asked to join again, a stays only until its rebalance timeout.
    g.heartbeat(join("c"), &t, &l, 2_200).unwrap();
    assert_eq!(
        g.classic_heartbeat("a", 3, 2_300),
        Err(ResponseError::RebalanceInProgress)
    );
    assert!(!g.expire(&l, 2_700));
    g.heartbeat(beat("c", g.epoch, &[]), &t, &l, 2_750).unwrap();
    assert!(g.expire(&l, 2_900), "a never joined again");
    assert!(!g.members.contains_key("a"));
    // A classic LeaveGroup by instance id names the member that holds it.
    assert_eq!(
        g.classic_leave("nobody", None),
        Err(ResponseError::UnknownMemberId)
    );
}

//! The newest request versions Kafka served (3.9's, and 4.x's where
//! Sluice has them), sent as kafka-protocol encodes them over raw sockets:
//! what each version means, not only that it decodes. (KIP-951's leader hints need a follower: tests/cluster.rs.)

mod common;

use bytes::Bytes;
use common::raw::{self, err, str_bytes, RawClient};
use common::*;
use kafka_protocol::messages::*;
use uuid::Uuid;

const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;
const INVALID_REQUEST: i16 = 42;

fn batch(value: &[u8]) -> Bytes {
    sluice::record::build::build_batch(0, &[(None, Some(value), now_ms(), &[])])
}

/// ListOffsets v8's EARLIEST_LOCAL (-4) is the log start (nothing is tiered)
/// and v9's LATEST_TIERED (-5) is -1 (nothing was tiered), as Kafka answers
/// a topic without remote storage; an older version cannot have meant them.
#[test]
fn list_offsets_earliest_local_and_latest_tiered() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "tiers", 1, &[]);
    let mut c = RawClient::connect(&bs);
    for v in [b"a", b"b", b"c"] {
        assert_eq!(c.produce_batch("tiers", 0, batch(v)).0, err::NONE);
    }
    let ask = |c: &mut RawClient, version: i16, timestamp: i64| {
        let r: ListOffsetsResponse =
            c.call(version, &raw::list_offsets_request("tiers", 0, timestamp));
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    assert_eq!(ask(&mut c, 8, -4), (err::NONE, 0, -1));
    assert_eq!(ask(&mut c, 9, -4), (err::NONE, 0, -1));
    assert_eq!(ask(&mut c, 9, -5), (err::NONE, -1, -1));
    assert_eq!(ask(&mut c, 9, -1), (err::NONE, 3, -1));
    assert_eq!(ask(&mut c, 9, -2), (err::NONE, 0, -1));
    // v10 adds only a timeout for tiered reads.
    assert_eq!(ask(&mut c, 10, -1), (err::NONE, 3, -1));
    assert_eq!(ask(&mut c, 10, -5), (err::NONE, -1, -1));
    assert_eq!(ask(&mut c, 7, -4), (err::UNSUPPORTED_VERSION, -1, -1));
    assert_eq!(ask(&mut c, 8, -5), (err::UNSUPPORTED_VERSION, -1, -1));
}

/// Metadata v12+ names topics by id (what Java's admin client's
/// describeTopics by id sends, with "" for each name): the topic comes back
/// with its name and id;
/// an id the broker does not know is UNKNOWN_TOPIC_ID with that id and no
/// name, as Kafka answers (Java's client takes an answer without the id
/// for an error of its own).
#[test]
fn metadata_names_topics_by_id() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "md-by-id", 2, &[]);
    let mut c = RawClient::connect(&bs);
    let id = raw::topic_id(&mut c, "md-by-id");
    assert!(!id.is_nil());
    let unknown = Uuid::from_u128(0x5eed);
    let by_ids = |ids: &[Uuid]| {
        MetadataRequest::default().with_topics(Some(
            ids.iter()
                .map(|&id| {
                    metadata_request::MetadataRequestTopic::default()
                        .with_topic_id(id)
                        .with_name(Some(raw::topic_name("")))
                })
                .collect(),
        ))
    };
    for version in 12..=13 {
        let r: MetadataResponse = c.call(version, &by_ids(&[id, unknown]));
        let found: Vec<_> = r
            .topics
            .iter()
            .map(|t| {
                (
                    t.topic_id,
                    t.name.as_ref().map(|n| n.0.to_string()),
                    t.error_code,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (id, Some("md-by-id".to_string()), err::NONE),
                (unknown, None, err::UNKNOWN_TOPIC_ID)
            ],
            "v{version}"
        );
        assert_eq!(r.topics[0].partitions.len(), 2, "v{version}");
    }
}

/// Fetch v13-v17 name topics by id (KIP-516) and answer by id; an id the
/// broker does not know is UNKNOWN_TOPIC_ID; a session made by ids refuses
/// a request by names (FETCH_SESSION_TOPIC_ID_ERROR), as Kafka's does.
#[test]
fn fetch_names_topics_by_id() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "by-id", 1, &[]);
    let mut c = RawClient::connect(&bs);
    assert_eq!(c.produce_batch("by-id", 0, batch(b"one")).0, err::NONE);
    let id = raw::topic_id(&mut c, "by-id");
    assert!(!id.is_nil());
    for version in 13..=17 {
        let mut request = raw::fetch_by_id(id, &[(0, 0)]);
        // v15+ carries the consumer's replica id in replica_state.
        request.replica_state.replica_id = BrokerId(-1);
        let r: FetchResponse = c.call(version, &request);
        assert_eq!(r.error_code, err::NONE, "v{version}");
        assert_eq!(r.responses.len(), 1, "v{version}");
        assert_eq!(r.responses[0].topic_id, id, "v{version}");
        let p = &r.responses[0].partitions[0];
        assert_eq!(
            (p.error_code, p.high_watermark),
            (err::NONE, 1),
            "v{version}"
        );
        assert_eq!(raw::decode_records(&p.records).len(), 1, "v{version}");
        assert!(r.node_endpoints.is_empty(), "v{version}: no leader moved");
    }

    // An unknown id, beside a known one: the known one is served.
    let unknown = Uuid::from_u128(0x5eed);
    let mut request = raw::fetch_by_id(id, &[(0, 0)]);
    let mut other = request.topics[0].clone();
    other.topic_id = unknown;
    request.topics.push(other);
    let r: FetchResponse = c.call(13, &request);
    let answered: Vec<(Uuid, i16, usize)> = r
        .responses
        .iter()
        .map(|t| {
            let p = &t.partitions[0];
            (
                t.topic_id,
                p.error_code,
                raw::decode_records(&p.records).len(),
            )
        })
        .collect();
    assert_eq!(
        answered,
        vec![(id, err::NONE, 1), (unknown, err::UNKNOWN_TOPIC_ID, 0)]
    );

    // A session made by ids takes only requests by ids.
    let full = raw::fetch_by_id(id, &[(0, 1)])
        .with_session_id(0)
        .with_session_epoch(0);
    let r: FetchResponse = c.call(13, &full);
    assert_eq!(r.error_code, err::NONE);
    let session = r.session_id;
    assert_ne!(session, 0, "a session was made");
    let by_name = raw::fetch_request("by-id", &[(0, 1)], 0)
        .with_session_id(session)
        .with_session_epoch(1);
    let r: FetchResponse = c.call(12, &by_name);
    assert_eq!(r.error_code, FETCH_SESSION_TOPIC_ID_ERROR);
    let next = raw::fetch_by_id(id, &[(0, 1)])
        .with_session_id(session)
        .with_session_epoch(1);
    let r: FetchResponse = c.call(16, &next);
    assert_eq!(r.error_code, err::NONE, "the session goes on by ids");
}

/// Produce v10 and v11 append like v9 (a leader answers; KIP-951's hints
/// only come with NOT_LEADER_OR_FOLLOWER).
#[test]
fn produce_v10_and_v11_append() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "p11", 1, &[]);
    let mut c = RawClient::connect(&bs);
    for (version, expected) in [(10, 0), (11, 1)] {
        let r: ProduceResponse = c.call(
            version,
            &raw::produce_request("p11", 1, vec![(0, batch(b"x"))]),
        );
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (err::NONE, expected));
        assert_eq!(p.current_leader, Default::default(), "v{version}");
        assert!(r.node_endpoints.is_empty(), "v{version}");
    }
    assert_eq!(c.log_end_offset("p11", 0), 2);
}

/// Produce v13 names topics by id (KIP-516) and answers by id. An id that
/// is no topic's answers UNKNOWN_TOPIC_ID, also the id of a topic deleted
/// and made again under its name: nothing reaches the new topic.
#[test]
fn produce_v13_names_topics_by_id() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    create_topic(&bs, "p13", 2, &[]);
    let mut c = RawClient::connect(&bs);
    let id = raw::topic_id(&mut c, "p13");
    let by_id = |id: Uuid| {
        let mut request = raw::produce_request("p13", 1, vec![(0, batch(b"a")), (1, batch(b"b"))]);
        request.topic_data[0].name = Default::default();
        request.topic_data[0].topic_id = id;
        request
    };
    let r: ProduceResponse = c.call(13, &by_id(id));
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].topic_id, id);
    let answered: Vec<(i32, i16, i64)> = r.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect();
    assert_eq!(answered, vec![(0, err::NONE, 0), (1, err::NONE, 0)]);

    let unknown = Uuid::from_u128(0x5eed);
    let r: ProduceResponse = c.call(13, &by_id(unknown));
    assert_eq!(r.responses[0].topic_id, unknown);
    assert!(r.responses[0]
        .partition_responses
        .iter()
        .all(|p| p.error_code == err::UNKNOWN_TOPIC_ID && p.base_offset == -1));
    assert_eq!(
        c.log_end_offset("p13", 0),
        1,
        "nothing of the refusal appended"
    );

    // The topic deleted and made again: the old id names nothing now.
    let admin = admin(&bs);
    let deleted = futures::executor::block_on(admin.delete_topics(&["p13"], &admin_opts()))
        .expect("delete topics");
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    create_topic(&bs, "p13", 2, &[]);
    let again = raw::topic_id(&mut c, "p13");
    assert_ne!(again, id);
    let r: ProduceResponse = c.call(13, &by_id(id));
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, err::UNKNOWN_TOPIC_ID);
    assert_eq!(c.log_end_offset("p13", 0), 0, "the new topic got nothing");
    let r: ProduceResponse = c.call(13, &by_id(again));
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (err::NONE, 0));
}

fn static_join(group: &str, member: &str) -> JoinGroupRequest {
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = str_bytes("range");
    p.metadata = Bytes::from_static(b"\x00\x01\x00\x00\x00\x00\x00\x00");
    JoinGroupRequest::default()
        .with_group_id(str_bytes(group).into())
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(str_bytes(member))
        .with_group_instance_id(Some(str_bytes("instance-1")))
        .with_protocol_type(str_bytes("consumer"))
        .with_protocols(vec![p])
        .with_reason(Some(str_bytes("testing KIP-800")))
}

/// The static member `instance-1` joins `group` (v9) and syncs: the group is
/// stable with it as leader.
fn join_and_sync(c: &mut RawClient, group: &str) -> JoinGroupResponse {
    let joined = c.call(9, &static_join(group, ""));
    assert_eq!(joined.error_code, err::NONE);
    assert_eq!(joined.leader, joined.member_id);
    assert!(
        !joined.skip_assignment,
        "a first join computes the assignment"
    );
    let mut a = sync_group_request::SyncGroupRequestAssignment::default();
    a.member_id = joined.member_id.clone();
    a.assignment = Bytes::from_static(b"assigned");
    let sync = SyncGroupRequest::default()
        .with_group_id(str_bytes(group).into())
        .with_member_id(joined.member_id.clone())
        .with_generation_id(joined.generation_id)
        .with_group_instance_id(Some(str_bytes("instance-1")))
        .with_assignments(vec![a]);
    assert_eq!(c.call(3, &sync).error_code, err::NONE);
    joined
}

/// JoinGroup v9 (KIP-814): a static leader that rejoins a stable group
/// unchanged is told that it leads, with every member, and to skip the
/// assignment; before v9 Kafka names the leader's previous id and lists no
/// members, so the client acts as a follower. Neither starts a rebalance.
#[test]
fn static_leader_rejoin_skips_the_assignment_from_v9() {
    let broker = Broker::start(1);
    let mut c = RawClient::connect(&broker.bootstrap());
    let first = join_and_sync(&mut c, "g-skip");

    let again = c.call(9, &static_join("g-skip", ""));
    assert_eq!(again.error_code, err::NONE);
    assert_ne!(again.member_id, first.member_id, "a new member id");
    assert_eq!(again.generation_id, first.generation_id, "no rebalance");
    assert_eq!(again.leader, again.member_id);
    assert!(again.skip_assignment);
    assert_eq!(again.members.len(), 1);

    let old = c.call(7, &static_join("g-skip", ""));
    assert_eq!(old.error_code, err::NONE);
    assert_eq!(old.generation_id, first.generation_id, "no rebalance");
    assert_eq!(old.leader, again.member_id, "the leader's previous id");
    assert!(old.members.is_empty());
}

/// ListGroups v5 filters by group type (KIP-848): a classic group is
/// listed as one, and not under "consumer". OffsetCommit and OffsetFetch v9 treat a classic group as v8
/// did; LeaveGroup v5 logs the member's reason. FindCoordinator v6 knows
/// share coordinators (KIP-932), not enabled here, and v5 does not.
#[test]
fn group_apis_at_kafka_3_9_maxima() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "g-new", 1, &[]);
    let mut c = RawClient::connect(&bs);
    let joined = join_and_sync(&mut c, "g-new");
    let member = joined.member_id.clone();

    let listed = |c: &mut RawClient, types: &[&str]| -> Vec<(String, String)> {
        let request = ListGroupsRequest::default()
            .with_types_filter(types.iter().map(|t| str_bytes(t)).collect());
        let r: ListGroupsResponse = c.call(5, &request);
        assert_eq!(r.error_code, err::NONE);
        r.groups
            .iter()
            .map(|g| (g.group_id.to_string(), g.group_type.to_string()))
            .collect()
    };
    let classic = vec![("g-new".to_string(), "classic".to_string())];
    assert_eq!(listed(&mut c, &[]), classic);
    assert_eq!(listed(&mut c, &["Classic"]), classic);
    assert!(listed(&mut c, &["consumer"]).is_empty());

    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = 7;
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = raw::topic_name("g-new");
    t.partitions = vec![p];
    let commit = OffsetCommitRequest::default()
        .with_group_id(str_bytes("g-new").into())
        .with_member_id(member.clone())
        .with_generation_id_or_member_epoch(joined.generation_id)
        .with_group_instance_id(Some(str_bytes("instance-1")))
        .with_topics(vec![t]);
    let r = c.call(9, &commit);
    assert_eq!(r.topics[0].partitions[0].error_code, err::NONE);
    let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
    g.group_id = str_bytes("g-new").into();
    g.member_id = Some(member.clone());
    g.member_epoch = joined.generation_id;
    g.topics = None; // every partition the group committed
    let fetched = c.call(9, &OffsetFetchRequest::default().with_groups(vec![g]));
    let group = &fetched.groups[0];
    assert_eq!(group.error_code, err::NONE);
    let offsets: Vec<(String, i64)> = group
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.committed_offset))
        })
        .collect();
    assert_eq!(offsets, vec![("g-new".to_string(), 7)]);

    let share = FindCoordinatorRequest::default()
        .with_key_type(2)
        .with_coordinator_keys(vec![str_bytes("g-new:AAAAAAAAAAAAAAAAAAAAAA:0")]);
    let code = |r: FindCoordinatorResponse| r.coordinators[0].error_code;
    assert_eq!(code(c.call(6, &share)), err::COORDINATOR_NOT_AVAILABLE);
    assert_eq!(code(c.call(5, &share)), INVALID_REQUEST);
    let group = FindCoordinatorRequest::default().with_coordinator_keys(vec![str_bytes("g-new")]);
    for version in [5, 6] {
        assert_eq!(code(c.call(version, &group)), err::NONE, "v{version}");
    }

    let leave = LeaveGroupRequest::default()
        .with_group_id(str_bytes("g-new").into())
        .with_members(vec![leave_group_request::MemberIdentity::default()
            .with_member_id(member)
            .with_group_instance_id(Some(str_bytes("instance-1")))
            .with_reason(Some(str_bytes("shutting down for KIP-800")))]);
    let r = c.call(5, &leave);
    assert_eq!(r.error_code, err::NONE);
    assert_eq!(r.members[0].error_code, err::NONE);
    let deadline = std::time::Instant::now() + OP_TIMEOUT;
    while !broker.stderr_tail(50).contains("shutting down for KIP-800") {
        assert!(std::time::Instant::now() < deadline, "no log line");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// DescribeTopicPartitions (KIP-966, Kafka 3.8's admin client): topics in
/// name order, a page of at most `response_partition_limit` partitions, and
/// the cursor to go on from; a named topic that does not exist answers
/// UNKNOWN_TOPIC_OR_PARTITION, and a cursor outside the named topics makes
/// the request invalid, as Kafka answers them.
#[test]
fn describe_topic_partitions_pages_in_name_order() {
    use describe_topic_partitions_response::DescribeTopicPartitionsResponse as Response;
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "dtp-b", 2, &[]);
    create_topic(&bs, "dtp-a", 3, &[]);
    let mut c = RawClient::connect(&bs);
    let pages = |r: &Response| -> Vec<(String, Vec<i32>)> {
        r.topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                (
                    name,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect()
    };
    let cursor = |r: &Response| {
        r.next_cursor
            .as_ref()
            .map(|c| (c.topic_name.to_string(), c.partition_index))
    };
    let owned = |pairs: &[(&str, &[i32])]| -> Vec<(String, Vec<i32>)> {
        pairs
            .iter()
            .map(|(n, p)| (n.to_string(), p.to_vec()))
            .collect()
    };

    let first = c.call(
        0,
        &raw::describe_topic_partitions_request(&["dtp-b", "dtp-a"], 4, None),
    );
    assert_eq!(
        pages(&first),
        owned(&[("dtp-a", &[0, 1, 2]), ("dtp-b", &[0])])
    );
    assert_eq!(cursor(&first), Some(("dtp-b".to_string(), 1)));
    let a = &first.topics[0];
    assert_eq!(a.error_code, err::NONE);
    assert_eq!(a.topic_id, raw::topic_id(&mut c, "dtp-a"));
    assert!(!a.is_internal);
    // A single node (id 0 unless configured) leads every partition.
    for p in &a.partitions {
        assert_eq!(p.error_code, err::NONE);
        assert_eq!(p.leader_id.0, 0);
        assert_eq!(p.leader_epoch, 0, "as Metadata says");
        assert_eq!(p.replica_nodes, [BrokerId(0)]);
        assert_eq!(p.isr_nodes, [BrokerId(0)]);
        assert_eq!(p.eligible_leader_replicas.as_deref(), Some(&[][..]));
    }
    let second = c.call(
        0,
        &raw::describe_topic_partitions_request(&["dtp-b", "dtp-a"], 4, Some(("dtp-b", 1))),
    );
    assert_eq!(pages(&second), owned(&[("dtp-b", &[1])]));
    assert_eq!(cursor(&second), None);

    // A page that ends with a topic goes on at the next one's start.
    let exact = c.call(
        0,
        &raw::describe_topic_partitions_request(&[], 3, Some(("dtp-a", 0))),
    );
    assert_eq!(pages(&exact), owned(&[("dtp-a", &[0, 1, 2])]));
    assert_eq!(cursor(&exact), Some(("dtp-b".to_string(), 0)));

    // Every topic, without a limit the broker takes (0 is one partition).
    let all = c.call(0, &raw::describe_topic_partitions_request(&[], 100, None));
    assert_eq!(
        pages(&all),
        owned(&[("dtp-a", &[0, 1, 2]), ("dtp-b", &[0, 1])])
    );
    let one = c.call(0, &raw::describe_topic_partitions_request(&[], 0, None));
    assert_eq!(pages(&one), owned(&[("dtp-a", &[0])]));
    assert_eq!(cursor(&one), Some(("dtp-a".to_string(), 1)));

    let missing = c.call(
        0,
        &raw::describe_topic_partitions_request(&["dtp-none"], 10, None),
    );
    assert_eq!(missing.topics.len(), 1);
    assert_eq!(
        missing.topics[0].error_code,
        err::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert!(missing.topics[0].topic_id.is_nil());

    for bad in [("dtp-c", 0), ("dtp-a", -1)] {
        let refused = c.call(
            0,
            &raw::describe_topic_partitions_request(&["dtp-a", "dtp-b"], 10, Some(bad)),
        );
        assert_eq!(refused.topics.len(), 2, "{bad:?}: {refused:?}");
        assert!(
            refused
                .topics
                .iter()
                .all(|t| t.error_code == INVALID_REQUEST && t.partitions.is_empty()),
            "{bad:?}: {refused:?}"
        );
    }
}

/// Metadata v13 (KIP-1102) is v12 with a top-level error, which this
/// broker never sets (it never asks clients to bootstrap again).
#[test]
fn metadata_v13_answers_as_v12_with_no_error() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "md-13", 2, &[]);
    let mut c = RawClient::connect(&bs);
    let id = raw::topic_id(&mut c, "md-13");
    let named =
        MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(raw::topic_name("md-13")))]));
    let v12 = c.call(12, &named);
    let v13 = c.call(13, &named);
    assert_eq!(v13.error_code, err::NONE);
    assert_eq!(v13.topics, v12.topics);
    assert_eq!(v13.topics[0].topic_id, id);
    assert_eq!(v13.topics[0].partitions.len(), 2);
    assert_eq!(v13.brokers, v12.brokers);
}

//! Share groups (KIP-932) at the protocol level, where a Java share
//! consumer (tests/java_clients.rs) cannot show it: what is acknowledged
//! stays done across a restart and across a leader's death (the state is
//! kept by the group's coordinator, on whichever broker), records in
//! flight come back with their delivery counts, and the errors are Kafka's (session epochs, records
//! not held, a group id of another kind). A fetch quota throttles a share
//! consumer without taking back what it acquired.

mod common;
mod quotas_common;

use common::cluster::Cluster;
use common::raw::{self, str_bytes, RawClient};
use common::*;
use kafka_protocol::messages::{
    share_acknowledge_request, share_fetch_request, ConsumerGroupHeartbeatRequest,
    ListGroupsRequest, ListGroupsResponse, ShareAcknowledgeRequest, ShareAcknowledgeResponse,
    ShareFetchRequest, ShareFetchResponse, ShareGroupDescribeRequest, ShareGroupDescribeResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::time::Duration;
use uuid::Uuid;

const UNKNOWN_MEMBER_ID: i16 = 25;
const GROUP_ID_NOT_FOUND: i16 = 69;
const INVALID_RECORD_STATE: i16 = 121;
const SHARE_SESSION_NOT_FOUND: i16 = 122;
const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
const ACCEPT: i8 = 1;
const REJECT: i8 = 3;

/// Ten records at offsets 0..=9, in one batch.
fn ten_records(c: &mut RawClient, topic: &str) {
    c.produce_values_at(topic, 0, 10, now_ms());
}

/// A member's heartbeat; (error, epoch).
fn heartbeat(c: &mut RawClient, group: &str, member: &str, epoch: i32, topic: &str) -> (i16, i32) {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(str_bytes(group).into())
        .with_member_id(str_bytes(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names((epoch == 0).then(|| vec![raw::topic_name(topic)]));
    let r: ShareGroupHeartbeatResponse = c.call(1, &request);
    (r.error_code, r.member_epoch)
}

/// A ShareFetch of partition 0 of `topic_id` with `acks` (first, last, type).
fn share_fetch(
    c: &mut RawClient,
    (group, member): (&str, &str),
    epoch: i32,
    topic_id: Uuid,
    max_records: i32,
    acks: &[(i64, i64, i8)],
) -> ShareFetchResponse {
    let batches = acks
        .iter()
        .map(|&(first, last, kind)| {
            share_fetch_request::AcknowledgementBatch::default()
                .with_first_offset(first)
                .with_last_offset(last)
                .with_acknowledge_types(vec![kind])
        })
        .collect();
    let partition = share_fetch_request::FetchPartition::default()
        .with_partition_index(0)
        .with_acknowledgement_batches(batches);
    let topic = share_fetch_request::FetchTopic::default()
        .with_topic_id(topic_id)
        .with_partitions(vec![partition]);
    let request = ShareFetchRequest::default()
        .with_group_id(Some(str_bytes(group).into()))
        .with_member_id(Some(str_bytes(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(200)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(max_records)
        .with_batch_size(max_records)
        .with_topics(vec![topic]);
    c.call(1, &request)
}

/// The (first, last, delivery count) runs a ShareFetch acquired.
fn acquired(r: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

fn acknowledge(
    c: &mut RawClient,
    (group, member): (&str, &str),
    epoch: i32,
    topic_id: Uuid,
    acks: &[(i64, i64, i8)],
) -> ShareAcknowledgeResponse {
    let batches = acks
        .iter()
        .map(|&(first, last, kind)| {
            share_acknowledge_request::AcknowledgementBatch::default()
                .with_first_offset(first)
                .with_last_offset(last)
                .with_acknowledge_types(vec![kind])
        })
        .collect();
    let partition = share_acknowledge_request::AcknowledgePartition::default()
        .with_partition_index(0)
        .with_acknowledgement_batches(batches);
    let topic = share_acknowledge_request::AcknowledgeTopic::default()
        .with_topic_id(topic_id)
        .with_partitions(vec![partition]);
    let request = ShareAcknowledgeRequest::default()
        .with_group_id(Some(str_bytes(group).into()))
        .with_member_id(Some(str_bytes(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![topic]);
    c.call(1, &request)
}

fn partition_error(r: &ShareAcknowledgeResponse) -> i16 {
    r.responses[0].partitions[0].error_code
}

/// Joins `member` (again) and opens its share session: what the first
/// fetch acquired.
fn join_and_fetch(
    c: &mut RawClient,
    who: (&str, &str),
    topic: &str,
    topic_id: Uuid,
    max_records: i32,
) -> Vec<(i64, i64, i16)> {
    let (error, epoch) = heartbeat(c, who.0, who.1, 0, topic);
    assert_eq!((error, epoch > 0), (0, true));
    let r = share_fetch(c, who, 0, topic_id, max_records, &[]);
    assert_eq!(r.error_code, 0, "{r:?}");
    acquired(&r)
}

#[test]
fn acknowledged_records_stay_done_across_a_restart() {
    let mut broker = Broker::start_with(2, &["--share-auto-offset-reset", "earliest"]);
    broker.keep_port();
    let bs = broker.bootstrap();
    create_topic(&bs, "sq", 1, &[]);
    let mut c = RawClient::connect(&bs);
    ten_records(&mut c, "sq");
    let topic_id = raw::topic_id(&mut c, "sq");
    let who = ("sg", "m1");

    // Four records of the batch of ten, delivered once.
    assert_eq!(join_and_fetch(&mut c, who, "sq", topic_id, 4), [(0, 3, 1)]);
    // 0-1 accepted, 2 rejected; 3 stays in flight. A record the member
    // does not hold is refused, and changes nothing.
    let r = acknowledge(&mut c, who, 1, topic_id, &[(0, 1, ACCEPT), (2, 2, REJECT)]);
    assert_eq!((r.error_code, partition_error(&r)), (0, 0), "{r:?}");
    let r = acknowledge(&mut c, who, 2, topic_id, &[(5, 5, ACCEPT)]);
    assert_eq!(partition_error(&r), INVALID_RECORD_STATE, "{r:?}");
    // A stale session epoch, and a session never opened.
    let r = share_fetch(&mut c, who, 2, topic_id, 4, &[]);
    assert_eq!(r.error_code, INVALID_SHARE_SESSION_EPOCH, "{r:?}");
    let r = share_fetch(&mut c, ("sg", "stranger"), 1, topic_id, 4, &[]);
    assert_eq!(r.error_code, SHARE_SESSION_NOT_FOUND, "{r:?}");
    // The group id is a share group's: not a consumer group's.
    let consumer = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(str_bytes("sg").into())
        .with_member_id(str_bytes("c1"))
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![raw::topic_name("sq")]));
    assert_eq!(c.call(1, &consumer).error_code, GROUP_ID_NOT_FOUND);

    broker.restart();
    let mut c = RawClient::connect(&bs);
    // The member is kept, at its epoch; its share session is not (the
    // partition's leader holds sessions in memory): it opens one again.
    assert_eq!(heartbeat(&mut c, "sg", "m1", 1, "sq"), (0, 1));
    // What was done stays done; 3, in flight at the restart, comes back
    // as its second delivery (the count was kept with the acknowledgements).
    assert_eq!(
        join_and_fetch(&mut c, who, "sq", topic_id, 100),
        [(3, 3, 2), (4, 9, 1)]
    );
    let listed: ListGroupsResponse = c.call(5, &ListGroupsRequest::default());
    let sg: Vec<_> = listed
        .groups
        .iter()
        .filter(|g| g.group_id.as_str() == "sg")
        .map(|g| (g.group_type.to_string(), g.group_state.to_string()))
        .collect();
    assert_eq!(sg, [("share".to_string(), "Stable".to_string())]);
}

/// ShareGroupDescribe of one group: its error, its epoch, and each
/// member's (id, epoch, partitions), by id.
type Described = (i16, i32, Vec<(String, i32, Vec<i32>)>);

fn described(c: &mut RawClient, group: &str) -> Described {
    let request =
        ShareGroupDescribeRequest::default().with_group_ids(vec![str_bytes(group).into()]);
    let r: ShareGroupDescribeResponse = c.call(1, &request);
    let g = &r.groups[0];
    let mut members: Vec<(String, i32, Vec<i32>)> = g
        .members
        .iter()
        .map(|m| {
            let mut partitions: Vec<i32> = m
                .assignment
                .topic_partitions
                .iter()
                .flat_map(|tp| tp.partitions.iter().copied())
                .collect();
            partitions.sort();
            (m.member_id.to_string(), m.member_epoch, partitions)
        })
        .collect();
    members.sort();
    (g.error_code, g.group_epoch, members)
}

/// A share group's members come back from their coordinator's kill -9 as
/// they were, at their epochs with their partitions (they go on
/// heartbeating, not joining again), and a member that left before does
/// not come back.
#[test]
fn share_group_members_come_back_after_a_crash() {
    let mut broker = Broker::start(2);
    broker.keep_port();
    let bs = broker.bootstrap();
    create_topic(&bs, "sm", 4, &[]);
    let mut c = RawClient::connect(&bs);
    for (member, epoch) in [("m1", 1), ("m2", 2), ("m3", 3)] {
        assert_eq!(heartbeat(&mut c, "smg", member, 0, "sm"), (0, epoch));
    }
    assert_eq!(heartbeat(&mut c, "smg", "m3", -1, "sm"), (0, -1));
    assert_eq!(heartbeat(&mut c, "smg", "m1", 1, "sm"), (0, 4));
    assert_eq!(heartbeat(&mut c, "smg", "m2", 2, "sm"), (0, 4));
    let before = described(&mut c, "smg");
    let ids: Vec<(&str, i32, usize)> = before
        .2
        .iter()
        .map(|(id, epoch, partitions)| (id.as_str(), *epoch, partitions.len()))
        .collect();
    assert_eq!((before.0, before.1), (0, 4), "{before:?}");
    assert_eq!(ids, [("m1", 4, 2), ("m2", 4, 2)]);

    broker.kill9();
    broker.start_again();
    let mut c = RawClient::connect(&bs);
    // The coordinator may still be loading the group (an error) at first.
    let mut after = described(&mut c, "smg");
    for _ in 0..100 {
        if after.0 == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = described(&mut c, "smg");
    }
    assert_eq!(after, before);
    assert_eq!(heartbeat(&mut c, "smg", "m1", 4, "sm"), (0, 4));
    assert_eq!(heartbeat(&mut c, "smg", "m3", 4, "sm").0, UNKNOWN_MEMBER_ID);
    assert_eq!(described(&mut c, "smg"), before);
}

/// Joins `who` at its group's coordinator, once one answers (the offsets
/// topic is made at the first group request).
fn join_at_coordinator(cluster: &Cluster, c: &mut RawClient, who: (&str, &str)) {
    cluster.wait_for("the group's coordinator", Duration::from_secs(30), || {
        let (error, coordinator) = c.find_group_coordinator(who.0);
        if error != 0 {
            return Err(format!("FindCoordinator: {error}"));
        }
        let mut coord = RawClient::connect(&cluster.client_addr(coordinator));
        match heartbeat(&mut coord, who.0, who.1, 0, "sq3") {
            (0, _) => Ok(()),
            (error, _) => Err(format!("ShareGroupHeartbeat: {error}")),
        }
    });
}

/// Kafka's ConfigResource type of a group's configs.
const GROUP_RESOURCE: i8 = 32;

/// The value of one of `group`'s configs, as this broker describes it.
fn group_config(c: &mut RawClient, group: &str, name: &str) -> String {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::DescribeConfigsRequest;
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(GROUP_RESOURCE)
            .with_resource_name(str_bytes(group))
            .with_configuration_keys(Some(vec![str_bytes(name)]))]);
    let r = c.call(4, &request);
    let value = r.results[0].configs.first().and_then(|e| e.value.clone());
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Three nodes, the partition's leader killed after acknowledgements
/// written to the group's coordinator on another broker: the new leader
/// loads the state from the coordinator and delivers only what was not
/// done with. The group starts at the earliest record by a group config
/// set at another broker than the leader.
#[test]
fn a_new_leader_goes_on_from_the_acknowledged_state() {
    let mut cluster = Cluster::start(3);
    cluster.create_topic(&rdkafka::admin::NewTopic::new(
        "sq3",
        1,
        rdkafka::admin::TopicReplication::Fixed(3),
    ));
    let leader = cluster.leader_of("sq3", 0);
    let mut c = RawClient::connect(&cluster.client_addr(leader));
    ten_records(&mut c, "sq3");
    let topic_id = raw::topic_id(&mut c, "sq3");
    cluster.wait_isr("sq3", 1, &[1, 2, 3]);
    // A group coordinated by another broker than the leader: the state
    // goes over the network (ReadShareGroupState, WriteShareGroupState).
    let coordinator_of = |c: &mut RawClient, group: &str| {
        cluster.wait_for("a coordinator", Duration::from_secs(30), || {
            match c.find_group_coordinator(group) {
                (0, node) => Ok(node),
                (error, _) => Err(format!("FindCoordinator: {error}")),
            }
        })
    };
    // The first group request makes the offsets topic; until then every
    // broker answers for itself.
    join_at_coordinator(&cluster, &mut c, ("sg3-first", "m0"));
    let group = (0..100)
        .map(|i| format!("sg3-{i}"))
        .find(|g| coordinator_of(&mut c, g) != leader)
        .expect("a group coordinated elsewhere");
    let who = (group.as_str(), "m1");
    // The group starts at the earliest record by its own config, set at
    // its coordinator and carried to the leader by the metadata quorum.
    let coordinator = coordinator_of(&mut c, &group);
    let mut at_coordinator = RawClient::connect(&cluster.client_addr(coordinator));
    let earliest = [("share.auto.offset.reset", 0, Some("earliest"))];
    assert_eq!(
        at_coordinator.incremental_alter(1, GROUP_RESOURCE, &group, &earliest),
        (0, None)
    );
    cluster.wait_for(
        "the group config at the leader",
        Duration::from_secs(30),
        || match group_config(&mut c, &group, "share.auto.offset.reset") {
            v if v == "earliest" => Ok(()),
            v => Err(v),
        },
    );
    join_at_coordinator(&cluster, &mut c, who);
    let r = share_fetch(&mut c, who, 0, topic_id, 6, &[]);
    assert_eq!(acquired(&r), [(0, 5, 1)], "{r:?}");
    let r = acknowledge(&mut c, who, 1, topic_id, &[(0, 3, ACCEPT)]);
    assert_eq!(partition_error(&r), 0, "{r:?}");

    cluster.kill9(leader);
    let next = cluster.wait_for("a new leader", Duration::from_secs(30), || {
        let view = cluster.agreed_view("sq3", 0)?;
        match view.leader {
            l if l >= 0 && l != leader => Ok(l),
            l => Err(format!("leader {l}")),
        }
    });
    let mut c = RawClient::connect(&cluster.client_addr(next));
    join_at_coordinator(&cluster, &mut c, (who.0, "m2"));
    // 4 and 5 were in flight at the death: delivered again, their second
    // time (the count went to the coordinator with the acknowledgement),
    // with the rest.
    let got = cluster.wait_for("the new leader's delivery", Duration::from_secs(30), || {
        let r = share_fetch(&mut c, (who.0, "m2"), 0, topic_id, 100, &[]);
        match acquired(&r) {
            got if got.is_empty() => Err(format!("{r:?}")),
            got => Ok(got),
        }
    });
    assert_eq!(got, [(4, 5, 2), (6, 9, 1)]);
}

/// A share fetch over its client's fetch quota still carries the records it
/// acquired for the member (sent empty, they would stay locked until their
/// locks ran out), with the throttle the member then backs off for.
#[test]
fn a_throttled_share_fetch_still_delivers_what_it_acquired() {
    use quotas_common::{alter, entry, Entity, RAW_CLIENT_ID};
    let broker = Broker::start_with(
        1,
        &[
            "--share-auto-offset-reset",
            "earliest",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let bs = broker.bootstrap();
    create_topic(&bs, "sq-quota", 1, &[]);
    let mut c = RawClient::connect(&bs);
    ten_records(&mut c, "sq-quota");
    let slow: Entity = vec![("client-id", Some(RAW_CLIENT_ID))];
    let quota = entry(&slow, &[("consumer_byte_rate", 10.0, false)]);
    assert_eq!(alter(&mut c, vec![quota], false), [0]);
    let topic_id = raw::topic_id(&mut c, "sq-quota");
    let who = ("sg-quota", "m1");
    assert_eq!(heartbeat(&mut c, who.0, who.1, 0, "sq-quota").0, 0);
    let r = share_fetch(&mut c, who, 0, topic_id, 100, &[]);
    assert_eq!(acquired(&r), [(0, 9, 1)], "{r:?}");
    let records = &r.responses[0].partitions[0].records;
    assert_eq!(raw::decode_records(records).len(), 10);
    assert!(r.throttle_time_ms > 0, "{r:?}");
    assert!(broker.metric("sluice_quota_fetch_throttled_requests_total") >= 1);
}

/// Past `share_partitions_per_shard_max` a leader drops the least recently
/// used share partition with nothing in flight, and loads it again from
/// the coordinator when asked: what was done stays done. One holding
/// records is never dropped: the newcomer is refused instead.
#[test]
fn an_idle_share_partition_makes_room_and_comes_back_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "share_partitions_per_shard_max = 1\n").expect("config");
    let broker = Broker::start_with(
        1,
        &[
            "--config",
            config.to_str().unwrap(),
            "--share-auto-offset-reset",
            "earliest",
        ],
    );
    let bs = broker.bootstrap();
    create_topic(&bs, "sq-room", 1, &[]);
    let mut c = RawClient::connect(&bs);
    ten_records(&mut c, "sq-room");
    let topic_id = raw::topic_id(&mut c, "sq-room");
    let (a, b) = (("sg-a", "m1"), ("sg-b", "m1"));
    // a takes 0-4 and accepts them: nothing of it is in flight.
    assert_eq!(
        join_and_fetch(&mut c, a, "sq-room", topic_id, 5),
        [(0, 4, 1)]
    );
    let r = acknowledge(&mut c, a, 1, topic_id, &[(0, 4, ACCEPT)]);
    assert_eq!(partition_error(&r), 0, "{r:?}");
    // b takes a's place, and holds 0-9.
    assert_eq!(
        join_and_fetch(&mut c, b, "sq-room", topic_id, 100),
        [(0, 9, 1)]
    );
    // a comes back while b holds records: no room.
    let r = share_fetch(&mut c, a, 2, topic_id, 100, &[]);
    let unknown_server_error = -1;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        unknown_server_error
    );
    // b done with, a comes back as it was: 5-9 only.
    let r = acknowledge(&mut c, b, 1, topic_id, &[(0, 9, ACCEPT)]);
    assert_eq!(partition_error(&r), 0, "{r:?}");
    let r = share_fetch(&mut c, a, 3, topic_id, 100, &[]);
    assert_eq!(acquired(&r), [(5, 9, 1)], "{r:?}");
}

/// AlterShareGroupOffsets at the protocol level: refused while the group
/// has a member, per partition for what cannot be reset; once the group
/// is empty it resets, and a member's acknowledgement through a session
/// opened before the reset is refused (FENCED_STATE_EPOCH: the leader's
/// copy was loaded before it) instead of writing the old state back.
/// DeleteShareGroupOffsets needs a share group.
#[test]
fn an_operators_reset_fences_what_was_loaded_before_it() {
    use kafka_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition as Start,
        AlterShareGroupOffsetsRequestTopic as StartTopic,
    };
    use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic as DeleteTopic;
    use kafka_protocol::messages::{
        AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse,
        DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse,
    };
    const NON_EMPTY_GROUP: i16 = 68;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const INVALID_REQUEST: i16 = 42;
    const FENCED_STATE_EPOCH: i16 = 124;
    let broker = Broker::start_with(1, &["--share-auto-offset-reset", "earliest"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "sr", 1, &[]);
    let mut c = RawClient::connect(&bs);
    ten_records(&mut c, "sr");
    let topic_id = raw::topic_id(&mut c, "sr");
    let who = ("sr-group", "m1");
    assert_eq!(join_and_fetch(&mut c, who, "sr", topic_id, 4), [(0, 3, 1)]);

    let alter = |c: &mut RawClient, starts: &[(&str, i32, i64)]| {
        let topics = starts
            .iter()
            .map(|&(topic, partition, start)| {
                StartTopic::default()
                    .with_topic_name(raw::topic_name(topic))
                    .with_partitions(vec![Start::default()
                        .with_partition_index(partition)
                        .with_start_offset(start)])
            })
            .collect();
        let request = AlterShareGroupOffsetsRequest::default()
            .with_group_id(str_bytes(who.0).into())
            .with_topics(topics);
        let r: AlterShareGroupOffsetsResponse = c.call(0, &request);
        let partitions: Vec<i16> = r
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect();
        (r.error_code, partitions)
    };
    assert_eq!(
        alter(&mut c, &[("sr", 0, 8)]),
        (NON_EMPTY_GROUP, vec![NON_EMPTY_GROUP])
    );
    // The member leaves; its share session, with 0-3 acquired, stays open.
    assert_eq!(heartbeat(&mut c, who.0, who.1, -1, "sr").0, 0);
    assert_eq!(
        alter(
            &mut c,
            &[("sr", 0, 8), ("sr", 5, 0), ("nope", 0, 0), ("sr", 0, -2)]
        ),
        (
            0,
            vec![
                0,
                UNKNOWN_TOPIC_OR_PARTITION,
                UNKNOWN_TOPIC_OR_PARTITION,
                INVALID_REQUEST
            ]
        )
    );
    let r = acknowledge(&mut c, who, 1, topic_id, &[(0, 3, ACCEPT)]);
    assert_eq!(partition_error(&r), FENCED_STATE_EPOCH, "{r:?}");
    // A member joining now starts where the operator said.
    assert_eq!(
        join_and_fetch(&mut c, (who.0, "m2"), "sr", topic_id, 100),
        [(8, 9, 1)]
    );

    let delete = |c: &mut RawClient, group: &str| {
        let request = DeleteShareGroupOffsetsRequest::default()
            .with_group_id(str_bytes(group).into())
            .with_topics(vec![
                DeleteTopic::default().with_topic_name(raw::topic_name("sr"))
            ]);
        let r: DeleteShareGroupOffsetsResponse = c.call(0, &request);
        r.error_code
    };
    assert_eq!(delete(&mut c, "no-such-group"), GROUP_ID_NOT_FOUND);
    assert_eq!(delete(&mut c, who.0), NON_EMPTY_GROUP);
}

/// A `read_committed` share group (its `share.isolation.level`) gets the
/// records of committed transactions and plain ones, never an aborted
/// transaction's nor a marker, and nothing at or past an open transaction
/// until it ends. A `read_uncommitted` group of the same topic gets every
/// record, so the aborted ones are in the log. Transactions by librdkafka.
#[test]
fn a_read_committed_share_group_never_gets_an_aborted_transaction() {
    const RESOURCE_GROUP: i8 = 32;
    const OP_SET: i8 = 0;
    let broker = Broker::start_with(2, &["--share-auto-offset-reset", "earliest"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "sq-txn", 1, &[]);
    let mut c = RawClient::connect(&bs);
    let topic_id = raw::topic_id(&mut c, "sq-txn");
    let isolation = [("share.isolation.level", OP_SET, Some("read_committed"))];
    assert_eq!(
        c.incremental_alter(1, RESOURCE_GROUP, "sg-committed", &isolation),
        (0, None)
    );

    let mut config = producer_config(&bs);
    config
        .set("transactional.id", "sq-txn-producer")
        .set("enable.idempotence", "true")
        .set("transaction.timeout.ms", "60000");
    let producer: ThreadedProducer<DefaultProducerContext> =
        config.create().expect("transactional producer");
    let wait = Duration::from_secs(30);
    producer.init_transactions(wait).expect("init_transactions");
    // Three records in each transaction, flushed before it ends (an abort
    // purges what was not sent): committed at 0-2 (marker 3), aborted at
    // 4-6 (marker 7).
    let write_three = |tag: &str| {
        producer.begin_transaction().expect("begin");
        for i in 0..3 {
            let value = format!("{tag}-{i}");
            let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to("sq-txn")
                .payload(value.as_bytes())
                .partition(0);
            producer.send(record).map_err(|(e, _)| e).expect("send");
        }
        producer.flush(wait).expect("flush");
    };
    write_three("committed");
    producer.commit_transaction(wait).expect("commit");
    write_three("aborted");
    producer.abort_transaction(wait).expect("abort");
    // A plain record at 8, then a transaction left open at 9-11.
    c.produce_values_at("sq-txn", 8, 1, now_ms());
    write_three("open");

    let committed = ("sg-committed", "m1");
    assert_eq!(
        join_and_fetch(&mut c, committed, "sq-txn", topic_id, 100),
        [(0, 2, 1), (8, 8, 1)],
        "the committed transaction and the plain record, below the open one"
    );
    assert_eq!(
        join_and_fetch(&mut c, ("sg-uncommitted", "m1"), "sq-txn", topic_id, 100),
        [(0, 2, 1), (4, 6, 1), (8, 11, 1)],
        "every record; no marker"
    );

    producer.commit_transaction(wait).expect("commit");
    let acquired = wait_for_acquired(&mut c, committed, topic_id);
    assert_eq!(
        acquired,
        [(9, 11, 1)],
        "the open transaction, once committed"
    );
}

/// What the member's next ShareFetches acquire, once one acquires any.
fn wait_for_acquired(c: &mut RawClient, who: (&str, &str), topic_id: Uuid) -> Vec<(i64, i64, i16)> {
    for epoch in 1..=50 {
        let r = share_fetch(c, who, epoch, topic_id, 100, &[]);
        assert_eq!(r.error_code, 0, "{r:?}");
        let acquired = acquired(&r);
        if !acquired.is_empty() {
            return acquired;
        }
    }
    panic!("nothing acquired in 50 fetches");
}

//! Partition reassignment (KIP-455) on real `sluice` nodes, driven with
//! AlterPartitionReassignments and ListPartitionReassignments on the wire
//! (the rdkafka crate has no calls for them): a partition moves to another
//! broker, which copies its log from the leader before the old replica,
//! leader included, goes; a cancel goes back; refusals are Kafka's. And
//! what a node that was down finds when it is back: a replica moved away
//! is deleted, a topic deleted and created again under its name starts
//! afresh there instead of taking the old one's records.

mod common;

use common::cluster::{Cluster, WAIT};
use common::raw::{err, str_bytes, RawClient};
use common::*;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use rdkafka::admin::{NewTopic, TopicReplication};

const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

/// A live node's client address: any node answers these.
fn any_node(cluster: &Cluster) -> String {
    cluster.client_addr(cluster.live()[0])
}

/// AlterPartitionReassignments of `version` for one partition: its error.
fn alter(
    cluster: &Cluster,
    version: i16,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
    allow_rf_change: bool,
) -> i16 {
    let mut p = ReassignablePartition::default();
    p.partition_index = partition;
    p.replicas = target.map(|t| t.iter().map(|&b| BrokerId(b)).collect());
    let mut t = ReassignableTopic::default();
    t.name = TopicName(str_bytes(topic));
    t.partitions = vec![p];
    let mut request = AlterPartitionReassignmentsRequest::default();
    request.timeout_ms = 10_000;
    request.allow_replication_factor_change = allow_rf_change;
    request.topics = vec![t];
    let response = RawClient::connect(&any_node(cluster)).call(version, &request);
    assert_eq!(response.error_code, err::NONE);
    response.responses[0].partitions[0].error_code
}

/// [`alter`] until the quorum takes it: a paused node may have been the
/// active controller, and proposals time out until another one is elected.
/// A cancel that timed out may still have been committed: the next one
/// finds nothing to cancel, which is as good.
fn alter_until_taken(cluster: &Cluster, version: i16, topic: &str, target: Option<&[i32]>) {
    let mut timed_out = false;
    cluster.wait_for("the reassignment to be taken", WAIT, || {
        match alter(cluster, version, topic, 0, target, version == 0) {
            err::NONE => Ok(()),
            NO_REASSIGNMENT_IN_PROGRESS if target.is_none() && timed_out => Ok(()),
            err::REQUEST_TIMED_OUT => {
                timed_out = true;
                Err("REQUEST_TIMED_OUT".to_string())
            }
            refused => cluster.fail(&format!("refused with {refused}")),
        }
    });
}

/// A reassignment under way: (topic, partition, replicas, adding, removing).
type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// The reassignments under way.
fn ongoing(cluster: &Cluster) -> Vec<Ongoing> {
    let mut request = ListPartitionReassignmentsRequest::default();
    request.topics = None;
    let response = RawClient::connect(&any_node(cluster)).call(0, &request);
    assert_eq!(response.error_code, err::NONE);
    let ids = |ids: &[BrokerId]| ids.iter().map(|b| b.0).collect::<Vec<_>>();
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect()
}

/// A topic of one partition on brokers 1 and 2, 1 the preferred leader.
fn on_one_and_two(cluster: &Cluster, topic: &str) {
    let assignment: &[&[i32]] = &[&[1, 2]];
    cluster.create_topic(&NewTopic::new(
        topic,
        1,
        TopicReplication::Variable(assignment),
    ));
    cluster.wait_view(topic, 0, "replicas 1 and 2 in sync, 1 leading", |v| {
        v.replicas == [1, 2] && v.isr == [1, 2] && v.leader == 1
    });
}

#[test]
fn a_partition_moves_off_its_leader_to_another_broker() {
    const TOPIC: &str = "moving";
    let cluster = Cluster::start(3);
    on_one_and_two(&cluster, TOPIC);
    let values: Vec<String> = (0..200).map(|i| format!("value-{i:04}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &values);

    assert_eq!(alter(&cluster, 0, TOPIC, 0, Some(&[2, 3]), true), err::NONE);
    // 3 copies the log and joins the ISR; then 1, the leader, leaves and
    // hands over to 2.
    let view = cluster.wait_view(TOPIC, 0, "replicas 2 and 3 in sync", |v| {
        v.replicas == [2, 3] && v.isr == [2, 3] && v.leader == 2
    });
    assert!(view.leader_epoch > 0, "a new leader epoch: {view:?}");
    assert_eq!(ongoing(&cluster), []);
    cluster.wait_logs_identical(TOPIC, 0, &[2, 3]);
    let old_replica = cluster.node(1).partition_dir(TOPIC, 0);
    cluster.wait_until("node 1 to drop its replica", WAIT, || !old_replica.exists());

    let read: Vec<String> = consume_all(&cluster.bootstrap(), TOPIC, 1, values.len(), WAIT)
        .iter()
        .map(payload_str)
        .collect();
    assert_eq!(
        read, values,
        "every record, in order, from the new replicas"
    );
}

#[test]
fn a_cancelled_move_goes_back_and_bad_targets_are_refused() {
    const TOPIC: &str = "staying";
    let mut cluster = Cluster::start(3);
    on_one_and_two(&cluster, TOPIC);
    produce_values(
        &cluster.bootstrap(),
        TOPIC,
        Some(0),
        &["a".into(), "b".into()],
    );

    for (target, refusal) in [
        (&[1, 9][..], INVALID_REPLICA_ASSIGNMENT),
        (&[1, 1], INVALID_REPLICA_ASSIGNMENT),
        (&[], INVALID_REPLICA_ASSIGNMENT),
    ] {
        assert_eq!(
            alter(&cluster, 0, TOPIC, 0, Some(target), true),
            refusal,
            "{target:?}"
        );
    }
    assert_eq!(
        alter(&cluster, 1, TOPIC, 0, Some(&[1, 2, 3]), false),
        INVALID_REPLICATION_FACTOR,
        "v1 without allow_replication_factor_change"
    );
    assert_eq!(
        alter(&cluster, 0, "nope", 0, Some(&[1]), true),
        err::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        alter(&cluster, 0, TOPIC, 0, None, true),
        NO_REASSIGNMENT_IN_PROGRESS
    );

    // With 3 paused, the move to it cannot finish: it is listed as under
    // way until it is cancelled.
    cluster.sigstop(3);
    alter_until_taken(&cluster, 1, TOPIC, Some(&[1, 3]));
    let listed = (TOPIC.to_string(), 0, vec![1, 3, 2], vec![3], vec![2]);
    assert_eq!(ongoing(&cluster), [listed]);
    alter_until_taken(&cluster, 0, TOPIC, None);
    assert_eq!(ongoing(&cluster), []);
    cluster.wait_view(TOPIC, 0, "replicas 1 and 2 again", |v| {
        v.replicas == [1, 2] && v.isr == [1, 2] && v.leader == 1
    });
    cluster.sigcont(3);
    let never_kept = cluster.node(3).partition_dir(TOPIC, 0);
    cluster.wait_until("node 3 to hold no replica", WAIT, || !never_kept.exists());
    assert_eq!(
        consume_all(&cluster.bootstrap(), TOPIC, 1, 2, WAIT).len(),
        2
    );
}

/// Replacing a dead broker: its partition moves to a live one while it is
/// down, and when it comes back it deletes the copy it no longer holds.
#[test]
fn a_dead_brokers_replica_moves_to_a_live_one() {
    const TOPIC: &str = "replaced";
    let mut cluster = Cluster::start(3);
    on_one_and_two(&cluster, TOPIC);
    let values: Vec<String> = (0..50).map(|i| format!("value-{i:02}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &values);
    cluster.wait_logs_identical(TOPIC, 0, &[1, 2]);

    cluster.kill9(2);
    cluster.wait_view(TOPIC, 0, "node 2 out of the ISR", |v| v.isr == [1]);
    alter_until_taken(&cluster, 0, TOPIC, Some(&[1, 3]));
    cluster.wait_view(TOPIC, 0, "replicas 1 and 3 in sync", |v| {
        v.replicas == [1, 3] && v.isr == [1, 3] && v.leader == 1
    });
    cluster.wait_logs_identical(TOPIC, 0, &[1, 3]);

    cluster.start_again(2);
    let stale = cluster.node(2).partition_dir(TOPIC, 0);
    cluster.wait_until("node 2 to delete its old copy", WAIT, || !stale.exists());
    let read: Vec<String> = consume_all(&cluster.bootstrap(), TOPIC, 1, values.len(), WAIT)
        .iter()
        .map(payload_str)
        .collect();
    assert_eq!(read, values);
}

/// A topic deleted and created again under its name while a replica's
/// node was down: back, the node finds the old topic's files where the new
/// partition's log goes, and starts it afresh from the leader instead of
/// keeping the old records (they would differ from the leader's).
#[test]
fn a_topic_recreated_while_a_node_was_down_starts_afresh_there() {
    const TOPIC: &str = "reborn";
    let mut cluster = Cluster::start(3);
    let everywhere: &[&[i32]] = &[&[1, 2, 3]];
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Variable(everywhere));
    cluster.create_topic(&topic);
    cluster.wait_isr(TOPIC, 1, &[1, 2, 3]);
    // Batches of 5: a cut at the new log's end (5) would keep the first.
    let old: Vec<String> = (0..30).map(|i| format!("old-{i:02}")).collect();
    for batch in old.chunks(5) {
        produce_values(&cluster.bootstrap(), TOPIC, Some(0), batch);
    }
    cluster.wait_logs_identical(TOPIC, 0, &[1, 2, 3]);

    cluster.kill9(3);
    let admin = admin(&cluster.bootstrap());
    let deleted = futures::executor::block_on(admin.delete_topics(&[TOPIC], &admin_opts()))
        .expect("DeleteTopics request");
    assert_eq!(deleted, [Ok(TOPIC.to_string())]);
    cluster.wait_for("the deletion on every live node", WAIT, || {
        for id in cluster.live() {
            let m = cluster.try_metadata(id)?;
            let listed = m
                .topics
                .iter()
                .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == TOPIC) && t.error_code == 0);
            if listed {
                return Err(format!("node {id} still lists {TOPIC}"));
            }
        }
        Ok(())
    });
    cluster.create_topic(&topic);
    let new: Vec<String> = (0..5).map(|i| format!("new-{i}")).collect();
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &new);

    cluster.start_again(3);
    cluster.wait_isr(TOPIC, 1, &[1, 2, 3]);
    cluster.wait_logs_identical(TOPIC, 0, &[1, 2, 3]);
    let read: Vec<String> = consume_all(&cluster.bootstrap(), TOPIC, 1, new.len(), WAIT)
        .iter()
        .map(payload_str)
        .collect();
    assert_eq!(read, new);
}

/// IncrementalAlterConfigs SET (`value`) or DELETE (`None`) of `key` on
/// resource `resource_type` `name`, through any node: the error code.
fn set_config(
    cluster: &Cluster,
    resource_type: i8,
    name: &str,
    key: &str,
    value: Option<&str>,
) -> i16 {
    const OP_SET: i8 = 0;
    const OP_DELETE: i8 = 1;
    let op = if value.is_some() { OP_SET } else { OP_DELETE };
    let mut client = RawClient::connect(&any_node(cluster));
    client
        .incremental_alter(1, resource_type, name, &[(key, op, value)])
        .0
}

/// Moves under `kafka-reassign-partitions.sh --throttle`'s configs: of a
/// topic's two partitions, both on node 1 and both moving to node 3 as well,
/// partition 0 names node 1's leader replica throttled, partition 1 node
/// 3's follower replica; both brokers get a rate well under what each new
/// replica must copy, so each throttle engages on its own (its counter
/// moves); the moves still complete, byte for byte. Refused: a rate that
/// is no number, a replica list that is none. The configs then go as
/// `--verify` deletes them.
#[test]
fn throttled_moves_copy_under_their_rates() {
    const TOPIC: &str = "throttled";
    const TOPIC_RESOURCE: i8 = 2;
    const BROKER_RESOURCE: i8 = 4;
    const RATE: &str = "200000";
    let cluster = Cluster::start_with(
        3,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            // Small fetches, so a copy takes many rounds under the rate.
            "--replica-fetch-max-bytes",
            "65536",
        ],
    );
    let assignment: &[&[i32]] = &[&[1], &[1]];
    cluster.create_topic(&NewTopic::new(
        TOPIC,
        2,
        TopicReplication::Variable(assignment),
    ));
    let filler = "x".repeat(1000);
    for partition in 0..2 {
        let values: Vec<String> = (0..1000).map(|i| format!("{i:05}-{filler}")).collect();
        produce_values(&cluster.bootstrap(), TOPIC, Some(partition), &values);
    }

    for (name, key) in [
        ("1", "leader.replication.throttled.rate"),
        ("3", "follower.replication.throttled.rate"),
    ] {
        let set = set_config(&cluster, BROKER_RESOURCE, name, key, Some(RATE));
        assert_eq!(set, err::NONE);
        let refused = set_config(&cluster, BROKER_RESOURCE, name, key, Some("fast"));
        assert_eq!(refused, err::INVALID_CONFIG);
    }
    for (key, replicas) in [
        ("leader.replication.throttled.replicas", "0:1"),
        ("follower.replication.throttled.replicas", "1:3"),
    ] {
        let set = set_config(&cluster, TOPIC_RESOURCE, TOPIC, key, Some(replicas));
        assert_eq!(set, err::NONE);
        let refused = set_config(&cluster, TOPIC_RESOURCE, TOPIC, key, Some("all"));
        assert_eq!(refused, err::INVALID_CONFIG);
    }

    for partition in 0..2 {
        let moved = alter(&cluster, 0, TOPIC, partition, Some(&[1, 3]), true);
        assert_eq!(moved, err::NONE);
    }
    for partition in 0..2 {
        cluster.wait_view(TOPIC, partition, "replicas 1 and 3 in sync", |v| {
            v.replicas == [1, 3] && v.isr == [1, 3]
        });
        cluster.wait_logs_identical(TOPIC, partition, &[1, 3]);
    }
    let leader_waits = cluster
        .node(1)
        .metric("sluice_replication_leader_throttled_total");
    let follower_waits = cluster
        .node(3)
        .metric("sluice_replication_follower_throttled_total");
    assert!(leader_waits > 0, "node 1 never held back a throttled read");
    assert!(
        follower_waits > 0,
        "node 3 never left its throttled partition out"
    );

    for (name, key) in [
        ("1", "leader.replication.throttled.rate"),
        ("3", "follower.replication.throttled.rate"),
    ] {
        let deleted = set_config(&cluster, BROKER_RESOURCE, name, key, None);
        assert_eq!(deleted, err::NONE);
    }
    for key in [
        "leader.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
    ] {
        let deleted = set_config(&cluster, TOPIC_RESOURCE, TOPIC, key, None);
        assert_eq!(deleted, err::NONE);
    }
}

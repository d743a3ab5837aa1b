//! Broker-only nodes: real `sluice` processes outside
//! `controller_quorum_voters`, whose controller is a Raft learner. They
//! register with the quorum, host and lead replicas, serve clients
//! bootstrapped at them alone, survive restarts, and their loss never stops
//! the quorum.

mod common;

use std::collections::BTreeSet;

use common::cluster::{Cluster, LearnerListen, WAIT};
use common::raw::{self, RawClient};
use common::*;
use kafka_protocol::messages::{
    describe_quorum_request, describe_quorum_response, AddRaftVoterRequest, BrokerId,
    DescribeQuorumRequest, DescribeQuorumResponse, MetadataResponse, RemoveRaftVoterRequest,
    TopicName, UnregisterBrokerRequest,
};
use rdkafka::admin::{NewTopic, TopicReplication};

fn brokers(metadata: &MetadataResponse) -> BTreeSet<i32> {
    metadata.brokers.iter().map(|b| b.node_id.0).collect()
}

/// Waits until every live node lists exactly `expected` as brokers and
/// names a voter as the controller (never a broker-only node).
fn wait_brokers(cluster: &Cluster, expected: &[i32]) {
    let expected: BTreeSet<i32> = expected.iter().copied().collect();
    let voters = cluster.voters();
    for id in cluster.live() {
        cluster.wait_metadata(
            id,
            &format!("node {id} to list brokers {expected:?} and a voter as controller"),
            |m| brokers(m) == expected && voters.contains(&m.controller_id.0),
        );
    }
}

/// DescribeQuorum of `version` through node `via`.
fn describe_quorum(cluster: &Cluster, via: i32, version: i16) -> DescribeQuorumResponse {
    let mut partition = describe_quorum_request::PartitionData::default();
    partition.partition_index = 0;
    let mut topic = describe_quorum_request::TopicData::default();
    topic.topic_name = TopicName(raw::str_bytes("__cluster_metadata"));
    topic.partitions = vec![partition];
    let mut request = DescribeQuorumRequest::default();
    request.topics = vec![topic];
    RawClient::connect(&cluster.client_addr(via)).call(version, &request)
}

/// (voters, observers) of a DescribeQuorum answer, each as (id, caught
/// up), and its leader, checked for what every answer must hold.
type Members = Vec<(i32, bool)>;
fn quorum_members(response: &DescribeQuorumResponse) -> (i32, Members, Members) {
    assert_eq!(response.error_code, 0);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    assert!(p.leader_epoch > 0 && p.high_watermark > 0, "{p:?}");
    let leader_end = p
        .current_voters
        .iter()
        .find(|v| v.replica_id == p.leader_id)
        .unwrap_or_else(|| panic!("the leader is not a voter: {p:?}"))
        .log_end_offset;
    let members = |states: &[describe_quorum_response::ReplicaState]| {
        states
            .iter()
            .map(|r| {
                assert!(r.log_end_offset <= leader_end, "{r:?}");
                (r.replica_id.0, r.log_end_offset == leader_end)
            })
            .collect::<Vec<_>>()
    };
    (
        p.leader_id.0,
        members(&p.current_voters),
        members(&p.observers),
    )
}

/// CreateTopics through `bootstrap` alone, retried (bounded) while the
/// cluster settles; then every live node shows every partition with all
/// `isr` in sync. Returns the partitions' leaders.
fn create_in_sync(
    cluster: &Cluster,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isr: &[i32],
) -> Vec<i32> {
    let factor = i32::try_from(isr.len()).unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(factor));
    let admin = admin(bootstrap);
    cluster.wait_for(
        &format!("CreateTopics {topic} via {bootstrap}"),
        WAIT,
        || {
            let results = futures::executor::block_on(admin.create_topics([&new], &admin_opts()))
                .map_err(|e| e.to_string())?;
            match &results[0] {
                Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => Ok(()),
                Err((_, code)) => Err(format!("{code:?}")),
            }
        },
    );
    let views = cluster.wait_isr(topic, partitions, isr);
    for (p, view) in views.iter().enumerate() {
        let mut replicas = view.replicas.clone();
        replicas.sort_unstable();
        assert_eq!(replicas, isr, "{topic}/{p} is placed on every broker");
    }
    views.iter().map(|v| v.leader).collect()
}

/// `count` values `prefix-i`, spread over `partitions`, produced with
/// acks=all through `bootstrap` alone; returns them.
fn produce_through(
    bootstrap: &str,
    topic: &str,
    prefix: &str,
    count: usize,
    partitions: i32,
) -> Vec<String> {
    let values: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let msgs: Vec<Msg> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Msg::value(v.as_str()).to(i as i32 % partitions))
        .collect();
    produce(&producer_config(bootstrap), topic, &msgs);
    values
}

/// Reads `topic` from the beginning through `bootstrap` alone: exactly
/// `expected`, no more, no fewer.
fn read_exactly(bootstrap: &str, topic: &str, partitions: i32, expected: &[String]) {
    let read = consume_all(bootstrap, topic, partitions, expected.len(), WAIT);
    let read: BTreeSet<String> = read.iter().map(payload_str).collect();
    let expected: BTreeSet<String> = expected.iter().cloned().collect();
    assert_eq!(read, expected);
}

/// Three voters and broker-only node 4: node 4 is listed as a broker (never
/// as the controller), hosts a replica of every partition of an RF 4 topic
/// and leads one, byte for byte like the others; a client bootstrapped at
/// node 4 alone produces with acks=all and reads everything back. After a
/// clean restart it serves again; after kill -9 the quorum still creates
/// topics, fences it and keeps acks=all writes going; back again, it
/// rejoins every ISR and serves all that was written.
#[test]
fn a_broker_only_node_serves_beside_three_voters() {
    let mut cluster = Cluster::start_mixed(3, 1, LearnerListen::Fixed, &[]);
    wait_brokers(&cluster, &[1, 2, 3, 4]);
    // DescribeQuorum, asked of any node, is the active controller's view:
    // three voters and node 4 observing, all caught up once settled.
    let controller = cluster.metadata(1).controller_id.0;
    for (via, version) in [(4, 2), (1, 0), (2, 1)] {
        cluster.wait_for(
            &format!("DescribeQuorum v{version} via node {via}"),
            WAIT,
            || {
                let answer = describe_quorum(&cluster, via, version);
                let settled = (
                    controller,
                    vec![(1, true), (2, true), (3, true)],
                    vec![(4, true)],
                );
                match quorum_members(&answer) {
                    members if members == settled => Ok(answer),
                    members => Err(format!("{members:?}")),
                }
            },
        );
    }
    // v2 gives each voter's metadata log directory id once the active
    // controller wrote it (KIP-853): distinct, and none for observers.
    cluster.wait_for("every voter's directory id", WAIT, || {
        let answer = describe_quorum(&cluster, 1, 2);
        let p = &answer.topics[0].partitions[0];
        let ids: BTreeSet<uuid::Uuid> = p
            .current_voters
            .iter()
            .map(|v| v.replica_directory_id)
            .filter(|id| !id.is_nil())
            .collect();
        let observers_unnamed = p.observers.iter().all(|o| o.replica_directory_id.is_nil());
        match ids.len() {
            3 if observers_unnamed => Ok(()),
            n => Err(format!("{n} voter directory ids: {p:?}")),
        }
    });
    let nodes = describe_quorum(&cluster, 3, 2).nodes;
    let listed: Vec<(i32, usize)> = nodes
        .iter()
        .map(|n| (n.node_id.0, n.listeners.len()))
        .collect();
    assert_eq!(
        listed,
        [(1, 1), (2, 1), (3, 1), (4, 1)],
        "v2 names each member's listener"
    );
    let only4 = cluster.node(4).bootstrap();
    let all = [1, 2, 3, 4];
    let leaders: BTreeSet<i32> = create_in_sync(&cluster, &only4, "rf4", 4, &all)
        .into_iter()
        .collect();
    assert_eq!(
        leaders,
        BTreeSet::from(all),
        "leaders stripe over every broker"
    );

    let mut written = produce_through(&only4, "rf4", "first", 200, 4);
    read_exactly(&only4, "rf4", 4, &written);
    for p in 0..4 {
        cluster.wait_logs_identical("rf4", p, &all);
    }

    cluster.stop(4);
    cluster.start_again(4);
    wait_brokers(&cluster, &all);
    cluster.wait_isr("rf4", 4, &all);
    written.extend(produce_through(&only4, "rf4", "second", 100, 4));
    read_exactly(&only4, "rf4", 4, &written);

    cluster.kill9(4);
    cluster.create_topic(&NewTopic::new("after-kill", 3, TopicReplication::Fixed(3)));
    wait_brokers(&cluster, &[1, 2, 3]);
    let (_, _, observers) = quorum_members(&describe_quorum(&cluster, 1, 2));
    assert_eq!(observers, [(4, false)], "a dead observer falls behind");
    cluster.wait_isr("rf4", 4, &[1, 2, 3]);
    written.extend(produce_through(
        &cluster.bootstrap(),
        "rf4",
        "third",
        100,
        4,
    ));

    cluster.start_again(4);
    wait_brokers(&cluster, &all);
    cluster.wait_isr("rf4", 4, &all);
    read_exactly(&only4, "rf4", 4, &written);
    for p in 0..4 {
        cluster.wait_logs_identical("rf4", p, &all);
    }
}

/// One voter and broker-only node 2 on its default controller listener
/// (a new port at every start): node 2 registers, a client bootstrapped at
/// it alone writes with acks=all to an RF 2 topic and reads back; after a
/// restart on a new controller port it is replicated to again; killed,
/// the single voter still creates topics; its data dir refuses another
/// cluster.
#[test]
fn a_broker_only_node_beside_a_single_voter() {
    let mut cluster = Cluster::start_mixed(1, 1, LearnerListen::Default, &[]);
    wait_brokers(&cluster, &[1, 2]);
    let only2 = cluster.node(2).bootstrap();
    let leaders: BTreeSet<i32> = create_in_sync(&cluster, &only2, "rf2", 2, &[1, 2])
        .into_iter()
        .collect();
    assert_eq!(leaders, BTreeSet::from([1, 2]));
    let mut written = produce_through(&only2, "rf2", "first", 100, 2);
    read_exactly(&only2, "rf2", 2, &written);

    cluster.stop(2);
    cluster.start_again(2);
    wait_brokers(&cluster, &[1, 2]);
    // A topic created after the restart reaches node 2 through the log.
    create_in_sync(&cluster, &only2, "after-restart", 1, &[1, 2]);
    cluster.wait_isr("rf2", 2, &[1, 2]);
    written.extend(produce_through(&only2, "rf2", "second", 50, 2));
    read_exactly(&only2, "rf2", 2, &written);

    cluster.kill9(2);
    cluster.create_topic(&NewTopic::new("after-kill", 1, TopicReplication::Fixed(1)));
    wait_brokers(&cluster, &[1]);

    // Its data dir belongs to this cluster: under another voter list (so
    // another cluster id) it refuses to start, as a voter's does.
    let refused = refused_start(
        cluster.node(2).data_dir(),
        &[
            "--node-id",
            "2",
            "--controller-quorum-voters",
            "7@127.0.0.1:1",
        ],
    );
    assert!(refused.contains("belongs to cluster"), "{refused}");
}

/// UnregisterBroker of node `id` through node `via`: the error code.
fn unregister(cluster: &Cluster, via: i32, id: i32) -> i16 {
    let mut request = UnregisterBrokerRequest::default();
    request.broker_id = BrokerId(id);
    RawClient::connect(&cluster.client_addr(via))
        .call(0, &request)
        .error_code
}

/// Decommissioning a broker-only node: refused while it runs; stopped, it
/// is unregistered and its controller leaves the quorum's membership (no
/// longer an observer); asked again, it is not registered. Started again
/// under its id, it registers anew and observes again.
#[test]
fn a_decommissioned_broker_only_node_leaves_the_cluster() {
    const INVALID_REQUEST: i16 = 42;
    const BROKER_ID_NOT_REGISTERED: i16 = 102;
    let mut cluster = Cluster::start_mixed(3, 1, LearnerListen::Fixed, &[]);
    wait_brokers(&cluster, &[1, 2, 3, 4]);
    assert_eq!(unregister(&cluster, 1, 4), INVALID_REQUEST, "it still runs");
    assert_eq!(unregister(&cluster, 1, 9), BROKER_ID_NOT_REGISTERED);

    cluster.stop(4);
    wait_brokers(&cluster, &[1, 2, 3]);
    assert_eq!(unregister(&cluster, 2, 4), 0);
    let (_, voters, observers) = quorum_members(&describe_quorum(&cluster, 3, 2));
    assert_eq!(voters.len(), 3);
    assert_eq!(observers, [], "no longer in the membership");
    assert_eq!(unregister(&cluster, 1, 4), BROKER_ID_NOT_REGISTERED);

    cluster.start_again(4);
    wait_brokers(&cluster, &[1, 2, 3, 4]);
    cluster.wait_for("node 4 observing again", WAIT, || {
        match quorum_members(&describe_quorum(&cluster, 1, 2)) {
            (_, _, observers) if observers == [(4, true)] => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

/// AddRaftVoter (`add`) or RemoveRaftVoter of node `id` through node
/// `via`, for cluster `cluster_id` (`None`: the request names none): the
/// error code.
fn change_voter(cluster: &Cluster, via: i32, id: i32, add: bool, cluster_id: Option<&str>) -> i16 {
    let mut client = RawClient::connect(&cluster.client_addr(via));
    let cluster_id = cluster_id.map(raw::str_bytes);
    if add {
        let mut request = AddRaftVoterRequest::default();
        request.cluster_id = cluster_id;
        request.voter_id = id;
        request.timeout_ms = 30_000;
        client.call(0, &request).error_code
    } else {
        let mut request = RemoveRaftVoterRequest::default();
        request.cluster_id = cluster_id;
        request.voter_id = id;
        client.call(0, &request).error_code
    }
}

/// RemoveRaftVoter of node `id`'s metadata log directory `directory`
/// through node `via`: the error code.
fn remove_voter_as(cluster: &Cluster, via: i32, id: i32, directory: uuid::Uuid) -> i16 {
    let mut request = RemoveRaftVoterRequest::default();
    request.cluster_id = None;
    request.voter_id = id;
    request.voter_directory_id = directory;
    RawClient::connect(&cluster.client_addr(via))
        .call(0, &request)
        .error_code
}

/// Voter `id`'s directory id as DescribeQuorum v2 through `via` gives it,
/// once the active controller has written it.
fn voter_directory(cluster: &Cluster, via: i32, id: i32) -> uuid::Uuid {
    cluster.wait_for(&format!("voter {id}'s directory id"), WAIT, || {
        let answer = describe_quorum(cluster, via, 2);
        let p = &answer.topics[0].partitions[0];
        p.current_voters
            .iter()
            .find(|v| v.replica_id.0 == id && !v.replica_directory_id.is_nil())
            .map(|v| v.replica_directory_id)
            .ok_or_else(|| format!("{p:?}"))
    })
}

/// Waits until every live node lists exactly `expected` as brokers (any
/// controller: a voter may be a broker-only node made one).
fn wait_listed(cluster: &Cluster, expected: &[i32]) {
    let expected: BTreeSet<i32> = expected.iter().copied().collect();
    for id in cluster.live() {
        cluster.wait_metadata(
            id,
            &format!("node {id} to list brokers {expected:?}"),
            |m| brokers(m) == expected,
        );
    }
}

/// Waits until node `via` describes the quorum with exactly `voters` and
/// `observers` (an answer may fail while a removed leader steps down).
fn wait_quorum(cluster: &Cluster, via: i32, voters: &[i32], observers: &[i32]) {
    let want = |ids: &[i32]| ids.iter().copied().collect::<BTreeSet<i32>>();
    let want = (want(voters), want(observers));
    cluster.wait_for(
        &format!("voters {voters:?}, observers {observers:?}"),
        WAIT,
        || {
            let response = describe_quorum(cluster, via, 2);
            let p = &response.topics[0].partitions[0];
            if p.error_code != 0 {
                return Err(format!("{:?}", p.error_message));
            }
            if !p.current_voters.iter().any(|v| v.replica_id == p.leader_id) {
                // A removed controller answers until it steps down.
                return Err(format!("leader {} is not a voter", p.leader_id.0));
            }
            let (_, v, o) = quorum_members(&response);
            let ids = |m: Members| m.into_iter().map(|(id, _)| id).collect::<BTreeSet<i32>>();
            let got = (ids(v), ids(o));
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    );
}

/// Replacing the active controller (KIP-853): broker-only node 4 is made a
/// voter and the active controller, voter `gone`, leaves the voters, through
/// the Kafka API; it steps down, another voter leads, and it stays as an
/// observer. The quorum is then the two other voters and node 4 for real:
/// with `gone` and another voter stopped it still commits (the voter list
/// it started from, {1, 2, 3}, would have no majority); node 4 restarted at
/// another quorum port is needed for a commit and gives it; the stopped
/// nodes come back, `gone` still an observer. Refusals: a voter added
/// twice, a node that does not follow the log, a voter that is not one,
/// another cluster's id.
#[test]
fn the_voters_change_while_the_quorum_runs() {
    const REQUEST_TIMED_OUT: i16 = 7;
    const INCONSISTENT_CLUSTER_ID: i16 = 104;
    const DUPLICATE_VOTER: i16 = 126;
    const VOTER_NOT_FOUND: i16 = 127;
    let mut cluster = Cluster::start_mixed(3, 1, LearnerListen::Default, &[]);
    wait_brokers(&cluster, &[1, 2, 3, 4]);
    cluster.wait_for("node 4 observing", WAIT, || {
        match quorum_members(&describe_quorum(&cluster, 1, 2)) {
            (_, _, observers) if observers == [(4, true)] => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    assert_eq!(change_voter(&cluster, 1, 4, true, None), 0);
    wait_quorum(&cluster, 2, &[1, 2, 3, 4], &[]);
    assert_eq!(change_voter(&cluster, 3, 4, true, None), DUPLICATE_VOTER);
    assert_eq!(change_voter(&cluster, 3, 9, true, None), REQUEST_TIMED_OUT);
    assert_eq!(change_voter(&cluster, 3, 9, false, None), VOTER_NOT_FOUND);
    assert_eq!(
        change_voter(&cluster, 3, 2, false, Some("another-cluster")),
        INCONSISTENT_CLUSTER_ID
    );

    let (gone, _, _) = quorum_members(&describe_quorum(&cluster, 4, 2));
    assert!((1..=3).contains(&gone), "a voter of the list leads");
    let (other, kept) = match gone {
        1 => (2, 3),
        2 => (1, 3),
        _ => (1, 2),
    };
    // Named by its directory, as `kafka-metadata-quorum.sh
    // remove-controller` names it: another directory of it is no voter.
    let directory = voter_directory(&cluster, 4, gone);
    let other_directory = uuid::Uuid::from_u128(directory.as_u128() ^ 1);
    assert_eq!(
        remove_voter_as(&cluster, 4, gone, other_directory),
        VOTER_NOT_FOUND
    );
    assert_eq!(remove_voter_as(&cluster, 4, gone, directory), 0);
    wait_quorum(&cluster, 4, &[other, kept, 4], &[gone]);
    cluster.wait_for("the removed controller to step down", WAIT, || {
        let response = describe_quorum(&cluster, gone, 2);
        match response.topics[0].partitions[0].leader_id.0 {
            leader if leader != gone && leader > 0 => Ok(()),
            leader => Err(format!("leader {leader}")),
        }
    });

    cluster.stop(gone);
    cluster.stop(other);
    wait_listed(&cluster, &[kept, 4]);
    let only_kept = cluster.node(kept).bootstrap();
    let mut pair = [kept, 4];
    pair.sort_unstable();
    create_in_sync(&cluster, &only_kept, "two-of-three", 2, &pair);

    // Node 4 is one of the two voters left: without it nothing commits,
    // and it comes back at a new quorum port.
    cluster.stop(4);
    cluster.start_again(4);
    create_in_sync(&cluster, &only_kept, "after-voter-restart", 1, &pair);
    let written = produce_through(&only_kept, "two-of-three", "kept", 40, 2);
    read_exactly(&cluster.node(4).bootstrap(), "two-of-three", 2, &written);

    cluster.start_again(gone);
    cluster.start_again(other);
    wait_listed(&cluster, &[1, 2, 3, 4]);
    wait_quorum(&cluster, gone, &[other, kept, 4], &[gone]);
}

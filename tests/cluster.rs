//! Three real `sluice` processes under one Raft metadata quorum (combined
//! mode): topic placement through the quorum, controller and broker
//! failover, controlled shutdown, and metadata that survives restarts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::{partition_view, Cluster, WAIT};
use common::raw::{self, RawClient};
use common::*;
use kafka_protocol::messages::MetadataResponse;

/// (partition -> (leader, replicas)) of `topic` in a Metadata answer.
fn placement(metadata: &MetadataResponse, topic: &str) -> BTreeMap<i32, (i32, Vec<i32>)> {
    let t = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .unwrap_or_else(|| panic!("{topic} not in metadata"));
    t.partitions
        .iter()
        .map(|p| {
            let replicas = p.replica_nodes.iter().map(|b| b.0).collect();
            (p.partition_index, (p.leader_id.0, replicas))
        })
        .collect()
}

fn brokers(metadata: &MetadataResponse) -> BTreeSet<i32> {
    metadata.brokers.iter().map(|b| b.node_id.0).collect()
}

fn create_rf3(cluster: &Cluster, via: i32, topic: &str, partitions: i32) {
    create_replicated(cluster, via, topic, partitions, 3);
}

/// CreateTopics through node `via`, retried (bounded) while the cluster
/// settles; an existing topic counts as created.
fn create_replicated(cluster: &Cluster, via: i32, topic: &str, partitions: i32, factor: i32) {
    let admin = admin(&cluster.node(via).bootstrap());
    let new = rdkafka::admin::NewTopic::new(
        topic,
        partitions,
        rdkafka::admin::TopicReplication::Fixed(factor),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let results =
            futures::executor::block_on(admin.create_topics([&new], &admin_opts())).unwrap();
        match &results[0] {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => return,
            Err((_, code)) => {
                assert!(
                    Instant::now() < deadline,
                    "CreateTopics kept failing: {code:?}"
                );
                thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// A topic with replication factor 3 and 6 partitions created through node
/// 1 shows on all three nodes with replicas spread and leaders balanced, and
/// librdkafka produces to and consumes from its leaders.
#[test]
fn three_nodes_place_topics_and_serve_clients() {
    let cluster = Cluster::start(3);
    create_rf3(&cluster, 1, "spread", 6);
    let first = cluster.wait_metadata(1, "the topic", |m| {
        m.topics
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "spread"))
    });
    let expected = placement(&first, "spread");
    for id in [2, 3] {
        let seen = cluster.wait_metadata(id, "the same placement", |m| {
            m.topics
                .iter()
                .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "spread"))
        });
        assert_eq!(placement(&seen, "spread"), expected, "node {id} disagrees");
        assert_eq!(brokers(&seen), BTreeSet::from([1, 2, 3]));
    }
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    for (leader, replicas) in expected.values() {
        let distinct: BTreeSet<_> = replicas.iter().collect();
        assert_eq!(distinct.len(), 3, "three distinct replicas: {replicas:?}");
        *led.entry(*leader).or_default() += 1;
    }
    assert_eq!(
        led,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "leaders balanced"
    );

    // Explicit assignments are kept as given; unknown brokers are refused.
    let admin = admin(&cluster.node(2).bootstrap());
    let manual = rdkafka::admin::NewTopic::new(
        "manual",
        2,
        rdkafka::admin::TopicReplication::Variable(&[&[2, 3], &[3, 1]]),
    );
    let bad = rdkafka::admin::NewTopic::new(
        "manual-bad",
        1,
        rdkafka::admin::TopicReplication::Variable(&[&[1, 9]]),
    );
    let results =
        futures::executor::block_on(admin.create_topics([&manual, &bad], &admin_opts())).unwrap();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(
            results[1],
            Err((
                _,
                rdkafka::types::RDKafkaErrorCode::InvalidReplicaAssignment
            ))
        ),
        "{:?}",
        results[1]
    );
    let seen = cluster.wait_metadata(3, "the manual topic", |m| {
        m.topics
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "manual"))
    });
    let manual_placement: Vec<Vec<i32>> = placement(&seen, "manual")
        .into_values()
        .map(|(_, replicas)| replicas)
        .collect();
    assert_eq!(manual_placement, [vec![2, 3], vec![3, 1]]);

    // Added partitions go where the request says, with as many replicas as
    // the topic's others (else INVALID_REPLICA_ASSIGNMENT, as KRaft checks).
    let grow = |assignment: &[&[i32]]| {
        let more = rdkafka::admin::NewPartitions::new("manual", 3).assign(assignment);
        let res =
            futures::executor::block_on(admin.create_partitions([&more], &admin_opts())).unwrap();
        res[0].clone().map_err(|(_, code)| code)
    };
    assert_eq!(
        grow(&[&[1]]),
        Err(rdkafka::types::RDKafkaErrorCode::InvalidReplicaAssignment)
    );
    assert_eq!(grow(&[&[1, 2]]), Ok("manual".to_string()));
    let seen = cluster.wait_metadata(3, "the added partition", |m| {
        placement(m, "manual").len() == 3
    });
    let grown: Vec<Vec<i32>> = placement(&seen, "manual")
        .into_values()
        .map(|(_, replicas)| replicas)
        .collect();
    assert_eq!(grown, [vec![2, 3], vec![3, 1], vec![1, 2]]);

    let values: Vec<String> = (0..300).map(|i| format!("m-{i:03}")).collect();
    let delivered = produce_values(&cluster.bootstrap(), "spread", None, &values);
    assert_eq!(delivered.len(), 300);
    let consumed = consume_all(
        &cluster.bootstrap(),
        "spread",
        6,
        300,
        Duration::from_secs(60),
    );
    let mut got: Vec<String> = consumed.iter().map(payload_str).collect();
    got.sort();
    assert_eq!(got, values);

    // Partitions added without an assignment get the topic's replication
    // factor; the named topic (not the first one in name order) gets the
    // assignments, whether it is new or growing.
    let more = rdkafka::admin::NewPartitions::new("spread", 7);
    let res = futures::executor::block_on(admin.create_partitions([&more], &admin_opts())).unwrap();
    assert_eq!(res[0], Ok("spread".to_string()));
    let later = rdkafka::admin::NewTopic::new(
        "zz-assigned",
        1,
        rdkafka::admin::TopicReplication::Variable(&[&[3, 1]]),
    );
    let res = futures::executor::block_on(admin.create_topics([&later], &admin_opts())).unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let more = rdkafka::admin::NewPartitions::new("spread", 8).assign(&[&[2, 1, 3]]);
    let res = futures::executor::block_on(admin.create_partitions([&more], &admin_opts())).unwrap();
    assert_eq!(res[0], Ok("spread".to_string()));
    let seen = cluster.wait_metadata(1, "the added partitions and topic", |m| {
        let listed = m
            .topics
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "zz-assigned"));
        listed && placement(m, "spread").len() == 8
    });
    let spread = placement(&seen, "spread");
    let added_unassigned: BTreeSet<i32> = spread[&6].1.iter().copied().collect();
    assert_eq!(added_unassigned, BTreeSet::from([1, 2, 3]), "{spread:?}");
    assert_eq!(spread[&7].1, [2, 1, 3]);
    assert_eq!(placement(&seen, "zz-assigned")[&0].1, [3, 1]);

    // A cluster's feature levels besides the group protocol's: the dynamic
    // quorum and eligible leader replicas, finalized at the metadata log's
    // position (ApiVersions v4; a single node lists only group.version,
    // share.version and transaction.version).
    let mut raw = common::raw::RawClient::connect(&cluster.client_addr(2));
    let versions: kafka_protocol::messages::ApiVersionsResponse =
        raw.call(4, &common::raw::api_versions_request());
    let finalized: BTreeMap<String, (i16, i16)> = versions
        .finalized_features
        .iter()
        .map(|f| {
            (
                f.name.to_string(),
                (f.min_version_level, f.max_version_level),
            )
        })
        .collect();
    let expected = [
        ("eligible.leader.replicas.version", 1),
        ("group.version", 1),
        ("kraft.version", 1),
        ("share.version", 1),
        ("transaction.version", 2),
    ]
    .map(|(name, level)| (name.to_string(), (level, level)));
    assert_eq!(finalized, BTreeMap::from(expected), "{versions:?}");
    assert!(versions.finalized_features_epoch > 0, "{versions:?}");
}

/// kill -9 of the active controller: another voter takes over and
/// CreateTopics through a surviving node succeeds.
#[test]
fn controller_kill9_elects_another_controller() {
    let mut cluster = Cluster::start(3);
    let metadata = cluster.wait_metadata(1, "a controller", |m| m.controller_id.0 > 0);
    let controller = metadata.controller_id.0;
    cluster.node_mut(controller).kill9();
    let survivor = *cluster.ids().iter().find(|&&id| id != controller).unwrap();
    let after = cluster.wait_metadata(survivor, "a new controller", |m| {
        m.controller_id.0 > 0 && m.controller_id.0 != controller
    });
    assert_ne!(after.controller_id.0, controller);
    // With a node down, replication factor 2 fits the live brokers.
    create_replicated(&cluster, survivor, "after-failover", 2, 2);
    let seen = cluster.wait_metadata(survivor, "the new topic", |m| {
        m.topics.iter().any(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| n.as_str() == "after-failover")
        })
    });
    assert_eq!(placement(&seen, "after-failover").len(), 2);
}

/// A paused (SIGSTOPped) active controller holds heartbeats unanswered
/// rather than refusing them. The brokers still running must reach its
/// successor within the session it gives them: only the paused node is
/// fenced, and only the partitions it led change leader (and epoch).
#[test]
fn a_paused_controller_is_the_only_broker_fenced() {
    let mut cluster = Cluster::start(3);
    let topic = "paused-controller";
    create_rf3(&cluster, 1, topic, 6);
    let before = cluster.wait_metadata(1, "the topic led by all three, a controller", |m| {
        let leaders: BTreeSet<i32> = placement(m, topic).values().map(|(l, _)| *l).collect();
        m.controller_id.0 > 0 && leaders == BTreeSet::from([1, 2, 3])
    });
    let paused = before.controller_id.0;
    let survivor = *cluster.ids().iter().find(|&&id| id != paused).unwrap();
    cluster.sigstop(paused);
    let after = cluster.wait_metadata(
        survivor,
        "the paused node fenced, its partitions led",
        |m| {
            !brokers(m).contains(&paused)
                && placement(m, topic)
                    .values()
                    .all(|(leader, _)| *leader > 0 && *leader != paused)
        },
    );
    // A live broker fenced and unfenced again shows as an epoch moved
    // twice on the partitions it leads; give the new controller's first
    // sessions time to run out (the session timeout is 3 s).
    thread::sleep(Duration::from_secs(4));
    let settled = cluster.metadata(survivor);
    assert_eq!(brokers(&settled).len(), 2, "both running brokers are live");
    for partition in 0..6 {
        let was = partition_view(&before, topic, partition).unwrap();
        let now = partition_view(&settled, topic, partition).unwrap();
        if was.leader == paused {
            assert_eq!(
                now.leader_epoch,
                was.leader_epoch + 1,
                "partition {partition} moved once"
            );
        } else {
            assert_eq!(
                (now.leader, now.leader_epoch),
                (was.leader, was.leader_epoch),
                "partition {partition}: its running leader was fenced meanwhile ({after:?})"
            );
        }
    }
    cluster.sigcont(paused);
}

/// kill -9 of a broker: it is fenced (left out of Metadata), every partition
/// it led gets another leader from the ISR, clients keep producing; after a
/// restart it is back in Metadata.
#[test]
fn broker_kill9_is_fenced_and_its_leaderships_move() {
    let mut cluster = Cluster::start(3);
    create_rf3(&cluster, 1, "failover", 6);
    cluster.wait_metadata(1, "the topic", |m| {
        m.topics
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "failover"))
    });
    cluster.node_mut(2).kill9();
    let fenced = cluster.wait_metadata(1, "broker 2 fenced and its leaderships moved", |m| {
        !brokers(m).contains(&2)
            && placement(m, "failover")
                .values()
                .all(|(leader, _)| *leader == 1 || *leader == 3)
    });
    assert_eq!(brokers(&fenced), BTreeSet::from([1, 3]));
    // DescribeCluster v2 names it fenced when asked (KIP-1073), and leaves
    // it out otherwise.
    let described = |include_fenced_brokers: bool| -> Vec<(i32, bool)> {
        let mut raw = common::raw::RawClient::connect(&cluster.client_addr(1));
        let request = kafka_protocol::messages::DescribeClusterRequest::default()
            .with_include_fenced_brokers(include_fenced_brokers);
        let response = raw.call(2, &request);
        let mut listed: Vec<(i32, bool)> = response
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.is_fenced))
            .collect();
        listed.sort();
        listed
    };
    assert_eq!(described(true), [(1, false), (2, true), (3, false)]);
    assert_eq!(described(false), [(1, false), (3, false)]);
    let bootstrap = format!(
        "{},{}",
        cluster.node(1).bootstrap(),
        cluster.node(3).bootstrap()
    );
    for partition in 0..6 {
        let delivered = produce_values(
            &bootstrap,
            "failover",
            Some(partition),
            &[format!("after-{partition}")],
        );
        assert_eq!(delivered.len(), 1, "partition {partition} takes writes");
    }
    cluster.node_mut(2).start_again();
    cluster.wait_metadata(1, "broker 2 back", |m| brokers(m).contains(&2));
}

/// SIGTERM: the broker hands its leaderships over before it exits, so no
/// partition goes offline.
#[test]
fn sigterm_moves_leaderships_before_exit() {
    let mut cluster = Cluster::start(3);
    create_rf3(&cluster, 1, "controlled", 6);
    cluster.wait_metadata(1, "the topic", |m| {
        m.topics
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "controlled"))
    });
    cluster.node_mut(3).stop();
    // Node 1 applies the moves a moment after the controller committed them;
    // an offline partition (leader -1) would never satisfy this.
    let metadata = cluster.wait_metadata(1, "partitions led by 1 or 2, none by 3", |m| {
        placement(m, "controlled")
            .values()
            .all(|(leader, _)| *leader == 1 || *leader == 2)
    });
    let placed = placement(&metadata, "controlled");
    cluster.wait_metadata(1, "broker 3 out of every ISR", |m| {
        m.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|p| p.isr_nodes.iter().all(|b| b.0 != 3))
    });
    // Back, but out of the ISR (nothing replicates to it yet): a preferred
    // election cannot give broker 3 its partitions back; the others need none.
    cluster.node_mut(3).start_again();
    cluster.wait_metadata(1, "broker 3 back", |m| brokers(m).contains(&3));
    let request = kafka_protocol::messages::ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![
            kafka_protocol::messages::elect_leaders_request::TopicPartitions::default()
                .with_topic(kafka_protocol::messages::TopicName(
                    kafka_protocol::protocol::StrBytes::from_static_str("controlled"),
                ))
                .with_partitions((0..6).collect()),
        ]));
    let response = RawClient::connect(&cluster.node(1).bootstrap()).call(2, &request);
    for result in &response.replica_election_results[0].partition_result {
        let preferred = placed[&result.partition_id].1[0];
        let expected = if preferred == 3 { 80 } else { 84 };
        assert_eq!(
            result.error_code, expected,
            "partition {} (preferred {preferred})",
            result.partition_id
        );
    }
}

/// All three restarted: topics, configs and assignments are intact.
#[test]
fn metadata_survives_a_full_restart() {
    let mut cluster = Cluster::start(3);
    create_rf3(&cluster, 2, "kept", 3);
    let admin = admin(&cluster.node(1).bootstrap());
    let resource =
        rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic("kept"))
            .set("retention.ms", "12345");
    futures::executor::block_on(admin.alter_configs([&resource], &admin_opts())).unwrap();
    let before = cluster.wait_metadata(1, "the topic", |m| {
        m.topics
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "kept"))
    });
    let replicas_before: Vec<Vec<i32>> = placement(&before, "kept")
        .into_values()
        .map(|(_, replicas)| replicas)
        .collect();
    cluster.stop_all();
    cluster.start_all_again();
    let after = cluster.wait_metadata(3, "the topic after restart", |m| {
        m.topics
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "kept"))
    });
    let replicas_after: Vec<Vec<i32>> = placement(&after, "kept")
        .into_values()
        .map(|(_, replicas)| replicas)
        .collect();
    assert_eq!(replicas_after, replicas_before);
    let configs = describe_topic_config(&cluster.node(3).bootstrap(), "kept");
    assert_eq!(
        configs.get("retention.ms"),
        Some(&Some("12345".to_string()))
    );
}

/// KIP-951: a follower answers Produce v10 NOT_LEADER_OR_FOLLOWER naming
/// the partition's leader and epoch, with the leader's endpoint, so a
/// client moves without asking Metadata; so does a broker without a
/// replica answer Fetch v16 (topics by id, KIP-516). (A follower serves a
/// consumer's Fetch v11+ itself, KIP-392.)
#[test]
fn a_follower_names_the_new_leader_to_clients() {
    use kafka_protocol::messages::{FetchResponse, ProduceResponse};
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    let cluster = Cluster::start(3);
    create_replicated(&cluster, 1, "hints", 1, 2);
    let view = cluster.wait_view("hints", 0, "a leader and a full ISR", |v| {
        v.leader > 0 && v.isr.len() == 2
    });
    let follower = *view
        .isr
        .iter()
        .find(|&&id| id != view.leader)
        .expect("a follower");
    let outsider = *cluster
        .ids()
        .iter()
        .find(|id| !view.isr.contains(id))
        .expect("a broker without a replica");
    let leader_port: i32 = cluster
        .node(view.leader)
        .bootstrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let topic_id = cluster
        .metadata(follower)
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "hints"))
        .expect("hints in metadata")
        .topic_id;
    let mut c = RawClient::connect(&cluster.node(follower).bootstrap());

    let batch = sluice::record::build::build_batch(0, &[(None, Some(b"v"), now_ms(), &[])]);
    let produce = raw::produce_request("hints", 1, vec![(0, batch)]);
    let r: ProduceResponse = c.call(10, &produce);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        (p.current_leader.leader_id.0, p.current_leader.leader_epoch),
        (view.leader, view.leader_epoch)
    );
    let endpoints: Vec<(i32, i32)> = r
        .node_endpoints
        .iter()
        .map(|n| (n.node_id.0, n.port))
        .collect();
    assert_eq!(endpoints, vec![(view.leader, leader_port)]);
    // Before v10 the answer has no hints (the fields are not encoded).
    let r: ProduceResponse = c.call(9, &produce);
    assert!(r.node_endpoints.is_empty());

    let mut fetch = raw::fetch_request("hints", &[(0, 0)], 0);
    fetch.topics[0].topic = Default::default();
    fetch.topics[0].topic_id = topic_id;
    let r: FetchResponse = c.call(16, &fetch);
    assert_eq!(
        r.responses[0].partitions[0].error_code, 0,
        "served by the follower"
    );
    let mut c = RawClient::connect(&cluster.node(outsider).bootstrap());
    let r: FetchResponse = c.call(16, &fetch);
    assert_eq!(r.responses[0].topic_id, topic_id);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        (p.current_leader.leader_id.0, p.current_leader.leader_epoch),
        (view.leader, view.leader_epoch)
    );
    assert_eq!(r.node_endpoints.len(), 1);
    assert_eq!(r.node_endpoints[0].node_id.0, view.leader);
    assert_eq!(r.node_endpoints[0].port, leader_port);
}

/// Every shard checkpoint's lines in `data_dir`: (topic, partition) ->
/// (shard, high watermark).
fn hw_checkpoints(data_dir: &std::path::Path) -> BTreeMap<(String, i32), (usize, i64)> {
    let mut out = BTreeMap::new();
    for dirent in std::fs::read_dir(data_dir).unwrap() {
        let path = dirent.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(shard) = name.strip_prefix("replication-offset-checkpoint-") else {
            continue;
        };
        let Ok(shard) = shard.parse::<usize>() else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut lines = text.lines().skip(2);
        for line in lines.by_ref() {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 4, "{name}: {line:?}");
            let key = (fields[0].to_string(), fields[1].parse().unwrap());
            let hw = fields[3].parse().unwrap();
            assert!(out.insert(key, (shard, hw)).is_none(), "{line:?} twice");
        }
    }
    out
}

/// Per-partition `high-watermark` files (the layout before the shard
/// checkpoint) under `data_dir`.
fn per_partition_hw_files(data_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data_dir)
        .unwrap()
        .map(|e| e.unwrap().path().join("high-watermark"))
        .filter(|p| p.exists())
        .collect()
}

/// Replaces every shard checkpoint line's high watermark with
/// `hw(partition)`, as if the broker had stopped with those.
fn rewrite_hw_checkpoints(data_dir: &std::path::Path, hw: impl Fn(i32) -> i64) {
    for dirent in std::fs::read_dir(data_dir).unwrap() {
        let path = dirent.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        if !name.starts_with("replication-offset-checkpoint-") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let mut out = format!("{}\n{}\n", lines.next().unwrap(), lines.next().unwrap());
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            let value = hw(f[1].parse().unwrap());
            out.push_str(&format!("{} {} {} {value}\n", f[0], f[1], f[2]));
        }
        std::fs::write(&path, out).unwrap();
    }
}

/// partition -> (log end, high watermark) as the broker's last start
/// logged them when it first took the lead of each of `topic`'s partitions.
fn led_at_start(stderr: &std::path::Path, topic: &str) -> BTreeMap<i32, (i64, i64)> {
    let text = std::fs::read_to_string(stderr).unwrap();
    let last_start = text.rfind("===== test harness: broker start").unwrap();
    let mut plain = String::new();
    let mut in_escape = false;
    for c in text[last_start..].chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    let field = |line: &str, name: &str| -> i64 {
        let start = line.find(&format!(" {name}=")).unwrap() + name.len() + 2;
        let value: String = line[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        value.parse().unwrap()
    };
    // The first time only: a later leader epoch starts from what the
    // first leadership advanced it to.
    let mut led = BTreeMap::new();
    let leading = plain
        .lines()
        .filter(|l| l.contains("leading partition") && l.contains(&format!(" topic={topic} ")));
    for line in leading {
        led.entry(field(line, "partition") as i32)
            .or_insert((field(line, "log_end"), field(line, "high_watermark")));
    }
    led
}

/// A replica's high watermarks go to one checkpoint file per shard in the
/// data dir (not one per partition), which a restart reads back, lays out
/// again when the shard count changed, and which takes over the
/// per-partition files of before.
#[test]
fn high_watermarks_are_checkpointed_per_shard_across_restarts() {
    const TOPIC: &str = "hw-checkpointed";
    const PARTITIONS: i32 = 8;
    let mut cluster = Cluster::start_with(
        1,
        &["--replica-high-watermark-checkpoint-interval-ms", "100"],
    );
    create_replicated(&cluster, 1, TOPIC, PARTITIONS, 1);
    cluster.wait_isr(TOPIC, PARTITIONS, &[1]);
    let data_dir = cluster.node(1).data_dir().to_path_buf();
    let stderr = cluster.node(1).stderr_path().to_path_buf();
    // Partition p gets p + 1 records a round.
    let produce_round = |cluster: &Cluster, round: usize| {
        for p in 0..PARTITIONS {
            let values: Vec<String> = (0..=p).map(|i| format!("r{round}-{p}-{i}")).collect();
            produce_values(&cluster.bootstrap(), TOPIC, Some(p), &values);
        }
    };
    let records = |rounds: i64, p: i32| rounds * (p as i64 + 1);
    let expected = |shards: usize, hw: &dyn Fn(i32) -> i64| {
        (0..PARTITIONS)
            .map(|p| {
                let shard = sluice::metadata::owner_shard(TOPIC, p, shards);
                ((TOPIC.to_string(), p), (shard, hw(p)))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let wait_checkpoints = |cluster: &Cluster, want: &BTreeMap<(String, i32), (usize, i64)>| {
        cluster.wait_until("the checkpoints hold every high watermark", WAIT, || {
            hw_checkpoints(&data_dir) == *want
        });
    };

    // Once the restarted node leads every partition again: each log opened
    // at (log end, high watermark) `at(partition)`.
    let opened_at = |cluster: &Cluster, at: &dyn Fn(i32) -> (i64, i64)| {
        let led: BTreeMap<i32, (i64, i64)> = (0..PARTITIONS).map(|p| (p, at(p))).collect();
        cluster.wait_isr(TOPIC, PARTITIONS, &[1]);
        cluster.wait_until("every partition led", WAIT, || {
            led_at_start(&stderr, TOPIC).len() == led.len()
        });
        assert_eq!(led_at_start(&stderr, TOPIC), led);
    };

    produce_round(&cluster, 1);
    wait_checkpoints(&cluster, &expected(1, &|p| records(1, p)));
    assert!(per_partition_hw_files(&data_dir).is_empty());

    // Stopped behind its log end (as a replica whose ISR lagged), started
    // with two shards: the one file is laid out as two, and each log opens
    // at its checkpointed value, not at its end.
    cluster.stop(1);
    rewrite_hw_checkpoints(&data_dir, |p| p as i64);
    cluster.node_mut(1).set_shards(2);
    cluster.start_again(1);
    assert_eq!(hw_checkpoints(&data_dir), expected(2, &|p| p as i64));
    opened_at(&cluster, &|p| (records(1, p), p as i64));
    produce_round(&cluster, 2);
    wait_checkpoints(&cluster, &expected(2, &|p| records(2, p)));
    for p in 0..PARTITIONS {
        assert_eq!(
            watermarks(&cluster.bootstrap(), TOPIC, p),
            (0, records(2, p))
        );
    }

    // The layout before: per-partition files and no checkpoint. They are
    // read at open and retired once the checkpoint holds their partitions.
    cluster.stop(1);
    assert_eq!(hw_checkpoints(&data_dir), expected(2, &|p| records(2, p)));
    for dirent in std::fs::read_dir(&data_dir).unwrap() {
        let path = dirent.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        if name.starts_with("replication-offset-checkpoint-") {
            std::fs::remove_file(&path).unwrap();
        }
    }
    for p in 0..PARTITIONS {
        let dir = data_dir.join(format!("{TOPIC}-{p}"));
        std::fs::write(
            dir.join("high-watermark"),
            format!("0\n{}\n", records(1, p)),
        )
        .unwrap();
    }
    cluster.node_mut(1).set_shards(1);
    cluster.start_again(1);
    opened_at(&cluster, &|p| (records(2, p), records(1, p)));
    produce_round(&cluster, 3);
    wait_checkpoints(&cluster, &expected(1, &|p| records(3, p)));
    cluster.wait_until("the per-partition files retired", WAIT, || {
        per_partition_hw_files(&data_dir).is_empty()
    });
}

/// Before `__consumer_offsets` and `__transaction_state` exist, every
/// broker answers FindCoordinator with itself, so a client's first group
/// and transactional requests may all reach one node. That node creates
/// the topic and, for each group or transactional id whose partition
/// another broker leads, keeps nothing: its ListGroups and
/// ListTransactions name only what it coordinates, and the coordinators
/// FindCoordinator names afterwards serve them. (Each node kept the
/// groups and ids of its first requests, listed beside the real ones.)
#[test]
fn first_coordinator_requests_leave_nothing_on_the_wrong_broker() {
    use kafka_protocol::messages::{
        join_group_request::JoinGroupRequestProtocol, FindCoordinatorRequest,
        InitProducerIdRequest, JoinGroupRequest, ListGroupsRequest, ListTransactionsRequest,
    };
    use kafka_protocol::protocol::StrBytes;

    let cluster = Cluster::start(3);
    let node1 = cluster.client_addr(1);
    let mut raw = common::raw::RawClient::connect(&node1);
    let groups: Vec<String> = (0..6).map(|i| format!("first-group-{i}")).collect();
    let ids: Vec<String> = (0..6).map(|i| format!("first-txn-{i}")).collect();
    for group in &groups {
        let protocol = JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(bytes::Bytes::from_static(
                b"\x00\x01\x00\x00\x00\x00\x00\x00",
            ));
        let join = JoinGroupRequest::default()
            .with_group_id(common::raw::str_bytes(group).into())
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![protocol]);
        raw.call(9, &join);
    }
    for id in &ids {
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(common::raw::str_bytes(id).into()))
            .with_transaction_timeout_ms(60_000);
        raw.call(4, &init);
    }
    // Where each now is, by FindCoordinator (the topics exist by now).
    let coordinator = |raw: &mut common::raw::RawClient, key: &str, key_type: i8| {
        let request = FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![common::raw::str_bytes(key)]);
        let response = raw.call(4, &request);
        let c = &response.coordinators[0];
        assert_eq!(c.error_code, 0, "{key}: {response:?}");
        c.node_id.0
    };
    let elsewhere = |raw: &mut common::raw::RawClient, keys: &[String], key_type: i8| {
        keys.iter()
            .filter(|k| coordinator(raw, k, key_type) != 1)
            .cloned()
            .collect::<BTreeSet<String>>()
    };
    let groups_elsewhere = elsewhere(&mut raw, &groups, 0);
    let ids_elsewhere = elsewhere(&mut raw, &ids, 1);
    assert!(!groups_elsewhere.is_empty() && !ids_elsewhere.is_empty());
    let listed_groups: BTreeSet<String> = raw
        .call(4, &ListGroupsRequest::default())
        .groups
        .iter()
        .map(|g| g.group_id.to_string())
        .collect();
    let listed_ids: BTreeSet<String> = raw
        .call(0, &ListTransactionsRequest::default())
        .transaction_states
        .iter()
        .map(|t| t.transactional_id.to_string())
        .collect();
    assert!(
        listed_groups.is_disjoint(&groups_elsewhere),
        "node 1 lists {listed_groups:?}; coordinated elsewhere: {groups_elsewhere:?}"
    );
    assert!(
        listed_ids.is_disjoint(&ids_elsewhere),
        "node 1 lists {listed_ids:?}; coordinated elsewhere: {ids_elsewhere:?}"
    );
}

/// ListOffsets from Kafka's debugging replica id (-2) is answered by any
/// replica from its own log, followers too (up to their log end); a
/// client's (-1) only by the leader, as Kafka answers them.
#[test]
fn a_follower_answers_the_debugging_replicas_list_offsets() {
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    let cluster = Cluster::start(3);
    create_rf3(&cluster, 1, "debug-offsets", 1);
    cluster.wait_isr("debug-offsets", 1, &[1, 2, 3]);
    let values: Vec<String> = (0..5).map(|i| format!("v-{i}")).collect();
    produce_values(&cluster.bootstrap(), "debug-offsets", Some(0), &values);
    cluster.wait_logs_identical("debug-offsets", 0, &[1, 2, 3]);
    let leader = cluster.agreed_view("debug-offsets", 0).unwrap().leader;
    for id in [1, 2, 3] {
        let mut raw = common::raw::RawClient::connect(&cluster.client_addr(id));
        let ask = |raw: &mut common::raw::RawClient, replica_id: i32, timestamp: i64| {
            let request = common::raw::list_offsets_request("debug-offsets", 0, timestamp)
                .with_replica_id(replica_id.into());
            let response = raw.call(7, &request);
            let p = &response.topics[0].partitions[0];
            (p.error_code, p.offset)
        };
        assert_eq!(ask(&mut raw, -2, -1), (0, 5), "node {id}, latest");
        assert_eq!(ask(&mut raw, -2, -2), (0, 0), "node {id}, earliest");
        let as_client = ask(&mut raw, -1, -1);
        if id == leader {
            assert_eq!(as_client, (0, 5));
        } else {
            assert_eq!(as_client, (NOT_LEADER_OR_FOLLOWER, -1), "node {id}");
        }
    }
}

/// The high watermark waits for `min.insync.replicas` in sync, but never
/// for more replicas than the partition has (Kafka's effective min ISR):
/// a topic of one replica under `min.insync.replicas=2` stays readable.
#[test]
fn one_replica_under_min_insync_two_is_readable() {
    let cluster = Cluster::start(3);
    let admin = admin(&cluster.node(1).bootstrap());
    let topic = rdkafka::admin::NewTopic::new(
        "single-replica",
        1,
        rdkafka::admin::TopicReplication::Fixed(1),
    )
    .set("min.insync.replicas", "2");
    let res = futures::executor::block_on(admin.create_topics([&topic], &admin_opts())).unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let view = cluster.wait_view("single-replica", 0, "a leader", |v| v.leader > 0);
    let mut raw = common::raw::RawClient::connect(&cluster.client_addr(view.leader));
    let batch = sluice::record::build::build_batch(0, &[(None, Some(b"one"), now_ms(), &[])]);
    let (code, offset) = raw.produce_batch_with("single-replica", 0, 1, 10_000, batch);
    assert_eq!((code, offset), (0, 0));
    assert_eq!(raw.log_end_offset("single-replica", 0), 1, "readable");
}

/// Admin changes sent to different brokers one right after the other
/// build on each other, as Kafka's, whose controller computes each against
/// all that is committed: an APPEND to a topic's list config on one broker
/// and a SUBTRACT on another leave both applied, and partitions added to a
/// count through one broker and then another end at the second count.
/// (Each broker computes a change here, so it first catches up with the
/// active controller; without that, the second broker could build on a
/// view without the first change.)
#[test]
fn admin_changes_on_different_brokers_build_on_each_other() {
    const TOPIC_RESOURCE: i8 = 2;
    const OP_SET: i8 = 0;
    const OP_APPEND: i8 = 2;
    const OP_SUBTRACT: i8 = 3;
    let cluster = Cluster::start(3);
    create_rf3(&cluster, 1, "chained", 1);
    let mut one = RawClient::connect(&cluster.node(1).bootstrap());
    let mut two = RawClient::connect(&cluster.node(2).bootstrap());
    // What the broker that took the last change describes.
    let policy = |c: &mut RawClient| -> Option<String> {
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(raw::str_bytes("chained"))
                .with_configuration_keys(Some(vec![raw::str_bytes("cleanup.policy")])),
        ]);
        let r: DescribeConfigsResponse = c.call(4, &request);
        r.results[0]
            .configs
            .first()?
            .value
            .as_ref()
            .map(|v| v.to_string())
    };
    for round in 0..10 {
        let set = [("cleanup.policy", OP_SET, Some("delete"))];
        assert_eq!(
            one.incremental_alter(1, TOPIC_RESOURCE, "chained", &set).0,
            0
        );
        let append = [("cleanup.policy", OP_APPEND, Some("compact"))];
        assert_eq!(
            one.incremental_alter(1, TOPIC_RESOURCE, "chained", &append)
                .0,
            0
        );
        let subtract = [("cleanup.policy", OP_SUBTRACT, Some("delete"))];
        assert_eq!(
            two.incremental_alter(1, TOPIC_RESOURCE, "chained", &subtract)
                .0,
            0
        );
        assert_eq!(
            policy(&mut two).as_deref(),
            Some("compact"),
            "round {round}"
        );
    }
    let admin1 = admin(&cluster.node(1).bootstrap());
    let admin2 = admin(&cluster.node(2).bootstrap());
    for count in 2..=6 {
        let via = if count % 2 == 0 { &admin1 } else { &admin2 };
        let added = rdkafka::admin::NewPartitions::new("chained", count);
        let results = futures::executor::block_on(via.create_partitions([&added], &admin_opts()))
            .expect("create partitions");
        assert!(results[0].is_ok(), "to {count}: {results:?}");
    }
    let counts = topic_partition_counts(&cluster.node(3).bootstrap());
    let deadline = Instant::now() + WAIT;
    let mut seen = counts.get("chained").copied();
    while seen != Some(6) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        seen = topic_partition_counts(&cluster.node(3).bootstrap())
            .get("chained")
            .copied();
    }
    assert_eq!(seen, Some(6));
}

/// The gauges operators alert on (Kafka's UnderReplicatedPartitions,
/// UnderMinIsrPartitionCount, AtMinIsrPartitionCount,
/// ActiveControllerCount, OfflinePartitionsCount, ...) at each node's
/// `/metrics`, summed over the live nodes as an alert sums them: healthy,
/// then with one broker dead (the topic at its minimum ISR), two dead
/// (under it), and healthy again once they are back. One voter and two
/// broker-only nodes, so the controller outlives both brokers.
#[test]
fn partition_health_gauges_follow_broker_failures() {
    let mut cluster = Cluster::start_mixed(
        1,
        2,
        common::cluster::LearnerListen::Fixed,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-refresh-ms",
            "100",
        ],
    );
    let admin = admin(&cluster.node(1).bootstrap());
    let new =
        rdkafka::admin::NewTopic::new("health", 4, rdkafka::admin::TopicReplication::Fixed(3))
            .set("min.insync.replicas", "2");
    let created = futures::executor::block_on(admin.create_topics([&new], &admin_opts()));
    assert!(created.unwrap()[0].is_ok());
    const NAMES: [&str; 7] = [
        "sluice_partition_leaders",
        "sluice_under_replicated_partitions",
        "sluice_at_min_isr_partitions",
        "sluice_under_min_isr_partitions",
        "sluice_offline_partitions",
        "sluice_active_controller",
        "sluice_partition_replicas",
    ];
    let gauges = |cluster: &Cluster| -> [u64; 7] {
        NAMES.map(|name| {
            cluster
                .live()
                .into_iter()
                .map(|id| cluster.node(id).metric(name))
                .sum()
        })
    };
    // Waits (bounded) for the summed gauges to satisfy `ok`; returns them.
    let wait_for = |cluster: &Cluster, desc: &str, ok: &dyn Fn(&[u64; 7]) -> bool| {
        let mut last = [0; 7];
        cluster.wait_until(desc, Duration::from_secs(60), || {
            last = gauges(cluster);
            ok(&last)
        });
        last
    };
    // Healthy: every partition led (the internal topics' too), none short
    // of replicas, three replicas each, one active controller.
    cluster.wait_isr("health", 4, &[1, 2, 3]);
    let healthy = wait_for(&cluster, "healthy", &|g| {
        g[0] >= 4 && g[1..6] == [0, 0, 0, 0, 1] && g[6] == 3 * g[0]
    });
    let led = healthy[0];
    // Kafka's Log gauges on each of the 12 replicas, the high watermark
    // of each partition on its leader alone.
    let gauged = |cluster: &Cluster| {
        let series = |body: &str, name: &str| {
            let prefix = format!("{name}{{topic=\"health\",");
            body.lines().filter(|l| l.starts_with(&prefix)).count()
        };
        cluster.live().into_iter().fold((0, 0), |(logs, hws), id| {
            let body = cluster.node(id).metrics_text();
            (
                logs + series(&body, "sluice_log_end_offset"),
                hws + series(&body, "sluice_partition_high_watermark"),
            )
        })
    };
    cluster.wait_until("each replica gauged", Duration::from_secs(60), || {
        gauged(&cluster) == (12, 4)
    });
    // The metadata quorum: one leader, which every node names, and the
    // members' lag on it alone.
    cluster.wait_until("the quorum at /metrics", Duration::from_secs(60), || {
        let bodies: Vec<String> = cluster
            .live()
            .into_iter()
            .map(|id| cluster.node(id).metrics_text())
            .collect();
        // Read as text: no leader is -1.
        let named: BTreeSet<Option<&str>> = bodies
            .iter()
            .map(|b| {
                b.lines()
                    .find_map(|l| l.strip_prefix("sluice_metadata_quorum_leader "))
                    .filter(|id| !id.starts_with('-'))
            })
            .collect();
        let leading = bodies.iter().filter(|b| {
            series_value(b, "sluice_metadata_quorum_state{state=\"leader\"}") == Some(1)
        });
        let lagging = bodies
            .iter()
            .filter(|b| b.contains("sluice_metadata_quorum_member_lag{node="));
        named.len() == 1 && !named.contains(&None) && leading.count() == 1 && lagging.count() == 1
    });
    // Every series the shipped alerting rules name is served.
    let served: String = cluster
        .live()
        .into_iter()
        .map(|id| cluster.node(id).metrics_text())
        .collect();
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/monitoring/alerts.yml"
    ))
    .expect("monitoring/alerts.yml");
    let named: BTreeSet<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .flat_map(|expr| expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|word| word.starts_with("sluice_") || word.starts_with("process_"))
        .collect();
    assert!(named.len() >= 10, "{named:?}");
    for name in named {
        assert!(
            served.contains(&format!("# TYPE {name} ")),
            "{name} is in an alert but not at /metrics"
        );
    }

    cluster.kill9(3);
    cluster.wait_isr("health", 4, &[1, 2]);
    wait_for(
        &cluster,
        "one broker down: the topic at its minimum ISR",
        &|g| g[0] == led && g[1] >= 4 && g[2] == 4 && g[3..6] == [0, 0, 1],
    );

    cluster.kill9(2);
    cluster.wait_isr("health", 4, &[1]);
    wait_for(
        &cluster,
        "two brokers down: the topic under its minimum ISR",
        &|g| g[0] == led && g[1] >= 4 && g[3..6] == [4, 0, 1],
    );

    cluster.start_again(2);
    cluster.start_again(3);
    cluster.wait_isr("health", 4, &[1, 2, 3]);
    wait_for(&cluster, "healthy again", &|g| *g == healthy);
}

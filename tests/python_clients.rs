//! Python clients against the real broker: kafka-python 3.x (which turns
//! idempotence on by default), aiokafka and confluent-kafka (librdkafka).
//! `make test` installs them in a virtualenv (`make py-deps`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::clients::{
    assert_tour_ok, check_exactly_once_copy, client_follows_a_new_leader, json_result,
    json_result_or, script, strings,
};
use common::*;

/// The virtualenv's python: `SLUICE_TEST_PYTHON`, else `target/py`.
fn python() -> PathBuf {
    let path = std::env::var_os("SLUICE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run `make py-deps` (make test does) to install kafka-python",
        path.display()
    );
    path
}

/// kafka-python 3.x with its defaults (idempotent, acks=all) produces,
/// consumes in a group and commits; every message arrives once.
#[test]
fn kafka_python_idempotent_defaults_produce_consume_and_commit() {
    let broker = Broker::start(2);
    let topic = "kp-idem";
    let count = 300;
    create_topic(&broker.bootstrap(), topic, 3, &[]);
    let output = Command::new(python())
        .arg(script("kafka_python_idempotent.py"))
        .args([&broker.bootstrap(), topic, "kp-group", &count.to_string()])
        .output()
        .expect("run kafka-python");
    let result = json_result(&output, &broker);
    assert!(result["producer_id"].as_i64().unwrap() >= 0);
    assert_eq!(result["sent"].as_array().unwrap().len(), count);
    let mut consumed = strings(&result, "consumed");
    consumed.sort();
    let expected: Vec<String> = (0..count).map(|i| format!("v-{i:05}")).collect();
    assert_eq!(consumed, expected, "each message consumed exactly once");
    let stored: i64 = (0..3)
        .map(|p| watermarks(&broker.bootstrap(), topic, p).1)
        .sum();
    assert_eq!(stored, count as i64);
    let committed = result["committed"].as_object().unwrap();
    let committed_total: i64 = committed.values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(committed_total, count as i64, "commits cover every message");
}

/// kafka-python re-routes to a new leader: with the partition leader of a
/// replicated topic killed between two halves of its sends, every message
/// it saw acknowledged is read back once (idempotence and acks=all).
#[test]
fn kafka_python_follows_a_new_leader() {
    let mut python = Command::new(python());
    python.arg(script("kafka_python_failover.py"));
    client_follows_a_new_leader(python, "kp-failover");
}

/// kafka-python pinned to api_version=(0, 10, 1) (Produce v2 with magic 1
/// message sets, plain and gzip; Fetch v3, down-converted; the group APIs
/// of that era) produces, consumes in a group and commits.
#[test]
fn kafka_python_0_10_1_produces_consumes_and_commits() {
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let topic = "kp-0-10-1";
    let count = 200;
    create_topic(&broker.bootstrap(), topic, 3, &[]);
    let output = Command::new(python())
        .arg(script("kafka_python_0_10_1.py"))
        .args([
            &broker.bootstrap(),
            topic,
            "kp-old-group",
            &count.to_string(),
        ])
        .output()
        .expect("run kafka-python");
    let result = json_result(&output, &broker);
    assert_eq!(result["sent"].as_array().unwrap().len(), count);
    let mut consumed: Vec<(String, i64)> = result["consumed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v[0].as_str().unwrap().to_string(), v[1].as_i64().unwrap()))
        .collect();
    consumed.sort();
    let expected: Vec<(String, i64)> = (0..count)
        .map(|i| (format!("v-{i:05}"), 1_700_000_000_000 + i as i64))
        .collect();
    assert_eq!(consumed, expected, "each message once, with its timestamp");
    let committed = result["committed"].as_object().unwrap();
    let committed_total: i64 = committed.values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(committed_total, count as i64, "commits cover every message");
    // It spoke the old formats: through the bridge both ways.
    assert!(broker.metric("sluice_produce_up_conversions_total") >= 2);
    assert!(broker.metric("sluice_fetch_down_conversions_total") >= 1);
}

/// kafka-python's admin client deletes records (DeleteRecords), reads the
/// log dirs (DescribeLogDirs) and reassigns a partition to where it is
/// (AlterPartitionReassignments, ListPartitionReassignments): the low
/// watermark is the offset asked, consumers start there, the log dir lists
/// the topic's replicas with the bytes they hold, and nothing is left
/// moving.
#[test]
fn kafka_python_deletes_records_describes_log_dirs_and_reassigns() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let topic = "kp-admin";
    create_topic(&bs, topic, 2, &[]);
    let output = Command::new(python())
        .arg(script("kafka_python_admin.py"))
        .args([bs.as_str(), topic, "20", "12"])
        .output()
        .expect("run kafka-python");
    let result = json_result(&output, &broker);
    assert_eq!(result["deleted"]["error_code"], 0, "{result}");
    assert_eq!(result["deleted"]["low_watermark"], 12, "{result}");
    assert_eq!(watermarks(&bs, topic, 0), (12, 20));

    let brokers = result["log_dirs"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{result}");
    let dirs = brokers[0]["log_dirs"].as_array().unwrap();
    assert_eq!(dirs.len(), 1, "{result}");
    let data_dir = std::path::absolute(broker.data_dir()).unwrap();
    assert_eq!(dirs[0]["log_dir"], data_dir.to_str().unwrap(), "{result}");
    let ours = dirs[0]["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == topic)
        .unwrap_or_else(|| panic!("{topic} not in the log dir: {result}"));
    let sizes: Vec<(i64, bool)> = ours["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let size = p["partition_size"].as_i64().unwrap();
            (p["partition_index"].as_i64().unwrap(), size > 0)
        })
        .collect();
    assert_eq!(sizes, [(0, true), (1, false)], "{result}");
    assert_eq!(result["reassigned"], serde_json::Value::Null, "{result}");
    assert_eq!(result["reassigning"], serde_json::json!([]), "{result}");
}

/// aiokafka (its own protocol code) copies a topic exactly once: a
/// transaction it aborts is invisible to read_committed, then each batch
/// its group consumer reads is written out and its offsets committed in
/// one transaction (TxnOffsetCommit without a member, as aiokafka sends it,
/// while the group is active). Every value is read back once, the
/// aborted ones only by read_uncommitted, and the group's offsets are the
/// source's ends.
#[test]
fn aiokafka_copies_a_topic_exactly_once() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let (src, out, group, count) = ("ak-in", "ak-out", "ak-group", 300);
    create_topic(&bs, src, 3, &[]);
    create_topic(&bs, out, 2, &[]);
    let output = Command::new(python())
        .arg(script("aiokafka_exactly_once.py"))
        .args([bs.as_str(), src, out, group, &count.to_string()])
        .output()
        .expect("run aiokafka");
    let result = json_result(&output, &broker);
    assert!(result["transactions"].as_i64().unwrap() >= 1, "{result}");
    check_exactly_once_copy(&result, &bs, (src, group), count);
}

/// kafka-python's admin client reads the feature levels (ApiVersions v3+)
/// and asks to change one (UpdateFeatures): the level a feature runs at is
/// accepted as Kafka accepts a no-op, any other refused with
/// INVALID_UPDATE_VERSION and why; it pages through a topic's partitions
/// (DescribeTopicPartitions) with the cursor, a missing topic answered
/// UNKNOWN_TOPIC_OR_PARTITION.
#[test]
fn kafka_python_reads_features_and_pages_through_partitions() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "kp-features";
    create_topic(&bs, topic, 3, &[]);
    let output = Command::new(python())
        .arg(script("kafka_python_features.py"))
        .args([bs.as_str(), topic])
        .output()
        .expect("run kafka-python");
    let result = json_result(&output, &broker);
    let group = &result["features"]["group.version"];
    assert_eq!(group["supported"], serde_json::json!([0, 1]), "{result}");
    assert_eq!(group["finalized"], serde_json::json!([1, 1]), "{result}");
    let txn = &result["features"]["transaction.version"];
    assert_eq!(txn["supported"], serde_json::json!([0, 2]), "{result}");
    assert_eq!(txn["finalized"], serde_json::json!([2, 2]), "{result}");
    // A single node has no quorum: nothing of a cluster's features.
    let names: Vec<&String> = result["features"].as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        ["group.version", "share.version", "transaction.version"],
        "{result}"
    );
    let answer = |case: &str| {
        result["updates"][case]["group.version"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(answer("same"), "OK");
    assert_eq!(answer("validate-only"), "OK");
    for refused in ["up", "down-as-upgrade", "down-safe"] {
        assert!(
            answer(refused).contains("InvalidUpdateVersion"),
            "{refused}: {result}"
        );
    }
    assert!(
        answer("down-as-upgrade").contains("downgrade type"),
        "{result}"
    );

    let missing = format!("{topic}-missing");
    assert_eq!(
        result["pages"],
        serde_json::json!([[[topic, 0, [0, 1]]], [[topic, 0, [2]], [missing, 3, []]]]),
        "{result}"
    );
    assert_eq!(
        result["cursors"],
        serde_json::json!([{"topic_name": topic, "partition_index": 2}, null]),
        "{result}"
    );
}

/// Runs the admin tour `script_name` against one broker; its outcomes,
/// every call answered as Kafka answers it ([`assert_tour_ok`]).
fn admin_tour(script_name: &str) -> serde_json::Value {
    let broker = Broker::start(1);
    let output = Command::new(python())
        .arg(script(script_name))
        .arg(broker.bootstrap())
        .output()
        .expect("run the script");
    let r = json_result(&output, &broker);
    assert_tour_ok(&r);
    r
}

/// Every public method of kafka-python's admin client, as an operator
/// would use it, against one broker (tests/clients/kafka_python_admin_tour.py
/// sets the stage: topics, a consumed and committed group, a static member
/// left behind, a committed and an open transaction). Each answers without
/// an error (ACLs: SECURITY_DISABLED, as Kafka answers without an
/// authorizer) and each change is seen afterwards.
#[test]
fn kafka_python_admin_client_tour() {
    let r = admin_tour("kafka_python_admin_tour.py");
    let result = |method: &str| &r[method]["result"];

    // Topics and partitions.
    assert_eq!(
        result("alter_replica_log_dirs")["answer"]["tour-a:0@0"],
        "NoError"
    );
    let dtp = &result("describe_topic_partitions")["topics"];
    assert_eq!(dtp.as_array().unwrap().len(), 2, "{r}");
    for partition in dtp[0]["partitions"].as_array().unwrap() {
        assert_eq!(partition["leader_epoch"], 0, "{r}");
    }
    let offsets = result("list_partition_offsets");
    assert_eq!(offsets["latest"]["tour-a:1"], 10, "{r}");
    assert_eq!(offsets["max_timestamp"]["tour-a:1"]["offset"], 9, "{r}");
    assert_eq!(offsets["at_base_plus_5s"]["tour-a:2"], 5, "{r}");
    assert_eq!(result("delete_records")["earliest_after"]["tour-a:0"], 3);
    assert_eq!(
        result("create_partitions")["partitions_after"],
        serde_json::json!([4])
    );
    assert_eq!(result("delete_topics")["still_listed"], false);

    // Configs.
    let listed = result("list_config_resources");
    assert_eq!(listed["broker"], serde_json::json!(["0"]), "{r}");
    assert!(
        listed["topic"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("tour-a")),
        "{r}"
    );
    assert_eq!(
        result("alter_configs")["after"],
        serde_json::json!({"cleanup.policy": "compact", "retention.ms": "3600000"})
    );
    assert_eq!(
        result("reset_configs")["after"],
        serde_json::json!({"retention.ms": "3600000"})
    );

    // Groups.
    assert_eq!(
        result("reset_group_offsets")["after"],
        serde_json::json!({"tour-a:0": 3, "tour-a:1": 10, "tour-a:2": 5})
    );
    assert_eq!(
        result("delete_group_offsets")["after"],
        serde_json::json!({"tour-a:0": 3, "tour-a:1": 10})
    );
    assert_eq!(
        result("remove_group_members")["after"],
        serde_json::json!({"state": "Empty", "members": 0})
    );
    assert_eq!(
        result("delete_groups")["groups_after"],
        serde_json::json!([])
    );

    // Transactions: the open one starts after the committed one's five
    // records and marker; aborting it ends it with a marker after its three.
    let producers = &result("describe_producers")["tour-tx:0"]["active_producers"];
    let starts: Vec<i64> = producers
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["current_transaction_start_offset"].as_i64().unwrap())
        .collect();
    assert_eq!(starts, [-1, 6], "{r}");
    let hanging = &result("find_hanging_transactions")["threshold_zero"];
    assert_eq!(hanging[0]["transactional_id"], "tour-txn-open", "{r}");
    let abort = result("abort_transaction");
    assert_eq!(abort["last_stable_offset_before"]["tour-tx:0"], 6, "{r}");
    assert_eq!(abort["last_stable_offset_after"]["tour-tx:0"], 10, "{r}");
}

/// Every public method of confluent-kafka's AdminClient (librdkafka's own
/// admin code), as an operator would use it, against one broker
/// (tests/clients/confluent_kafka_admin_tour.py): each way of calling it
/// answers as Kafka 4.x does, errors included (the script accepts only the
/// error Kafka gives), and each change is seen afterwards.
#[test]
fn confluent_kafka_admin_client_tour() {
    let r = admin_tour("confluent_kafka_admin_tour.py");
    let result = |method: &str| &r[method]["result"];
    let offsets = result("list_offsets");
    let offset = |variant: &str, tp: &str| offsets[variant][tp]["offset"].as_i64().unwrap();
    assert_eq!(offset("max_timestamp", "ck-a:1"), 9, "{r}");
    assert_eq!(offset("at_base_plus_5s", "ck-a:2"), 5, "{r}");
    assert_eq!(offset("after_last_timestamp", "ck-a:0"), -1, "{r}");
    // 5 committed records and their marker, then an open transaction of 3.
    assert_eq!(offset("tx_latest_read_uncommitted", "ck-tx:0"), 9, "{r}");
    assert_eq!(offset("tx_latest_read_committed", "ck-tx:0"), 6, "{r}");
    let records = result("delete_records");
    assert_eq!(
        records["to_offset_3"]["answer"]["ck-a:0"]["low_watermark"],
        3
    );
    assert_eq!(records["to_end"]["answer"]["ck-a:2"]["low_watermark"], 10);
    assert_eq!(
        result("incremental_alter_configs")["append"]["after"]["cleanup.policy"],
        "delete,compact",
        "{r}"
    );
    assert_eq!(
        result("alter_consumer_group_offsets")["empty_group"]["after"],
        serde_json::json!({"ck-a:0": 4, "ck-a:1": 7, "ck-a:2": 10})
    );
}

/// kafka-python's admin client against a three-node cluster
/// (tests/clients/kafka_python_cluster_admin_tour.py): per-broker configs
/// and log dirs, the metadata quorum, replication factor 3 and explicit
/// replica assignments (new topics and added partitions), a partition
/// moved to other brokers with its data, leader elections, groups and
/// transactions on coordinators other than the bootstrap broker, records
/// deleted on every replica, topics deleted everywhere. Every case answers
/// as a Kafka cluster does and every change reaches every broker it should
/// (each wait in the script reached its state). The groups and
/// transactional ids a broker took before the internal topics existed are
/// listed only by their coordinators.
#[test]
fn kafka_python_cluster_admin_tour() {
    let cluster = common::cluster::Cluster::start(3);
    let output = Command::new(python())
        .arg(script("kafka_python_cluster_admin_tour.py"))
        .arg(cluster.bootstrap())
        .output()
        .expect("run kafka-python");
    let r = json_result_or(&output, || cluster.stderr_tails(30));
    assert_tour_ok(&r);
    // INVALID_REPLICATION_FACTOR, then INVALID_REPLICA_ASSIGNMENT for an
    // unknown broker, a repeated one and uneven replica counts.
    let refused: Vec<i64> = r["create_topics/refused"]["result"]["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["error_code"].as_i64().unwrap())
        .collect();
    assert_eq!(refused, [38, 39, 39, 39], "{r}");
    assert_eq!(
        r["create_topics/refused_not_created"]["result"],
        serde_json::json!([])
    );
    let mut unreached = Vec::new();
    unreached_waits(&r, "", &mut unreached);
    assert!(
        unreached.is_empty(),
        "waits that never reached their state: {unreached:?}"
    );
    for (kind, key) in [
        ("groups", "internal_topics/early_groups_after"),
        ("txns", "internal_topics/early_txns_after"),
    ] {
        for (name, seen) in r[key]["result"][kind].as_object().unwrap() {
            let coordinator = seen["coordinator_on_each_broker"]["1"].clone();
            for (node, listed) in seen["listed_by"].as_object().unwrap() {
                let listed = !listed.as_array().unwrap().is_empty();
                assert!(
                    !listed || coordinator == node.parse::<i64>().unwrap(),
                    "{name} listed by node {node}, coordinated by {coordinator}: {seen}"
                );
            }
        }
    }
}

/// The paths of the script's waits (objects with `reached`) that did not
/// reach their state.
fn unreached_waits(value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("reached").is_some_and(|r| r != true) {
                out.push(path.to_string());
            }
            for (key, inner) in map {
                unreached_waits(inner, &format!("{path}/{key}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                unreached_waits(inner, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

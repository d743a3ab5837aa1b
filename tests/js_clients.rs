//! kafkajs (2.x) and @platformatic/kafka (1.x) against real brokers.
//! `make test` installs them under `target/js` (`make js-deps`).

mod common;

use std::process::Command;

use common::clients::{
    assert_tour_ok, check_exactly_once_copy, client_follows_a_new_leader, json_result,
    node_modules, script, strings,
};
use common::*;

/// kafkajs re-routes to a new leader: with the partition leader of a
/// replicated topic killed between two halves of its sends, every message
/// it saw acknowledged is read back once, in order, through a group.
#[test]
fn kafkajs_follows_a_new_leader() {
    let mut node = Command::new("node");
    node.arg(script("kafkajs_failover.js"))
        .env("NODE_PATH", node_modules());
    client_follows_a_new_leader(node, "kjs-failover");
}

/// @platformatic/kafka, a client of Kafka 3.5-4.1's versions with its own
/// protocol code: its admin client creates the topics; its idempotent
/// producer fills one; two members of a consumer protocol group (KIP-848)
/// read it, committing each message; its transactional producer aborts one
/// transaction, then copies the topic through a classic group, 50
/// messages and their offsets per transaction. Every message is read once
/// by the group with its key and header, the copy holds each value once
/// for read_committed and the aborted ones only for read_uncommitted, and
/// both groups' offsets are the source's ends.
#[test]
fn platformatic_kafka_groups_and_transactions() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let (src, out, count) = ("pk-src", "pk-out", 300);
    let output = std::process::Command::new("node")
        .arg(script("platformatic_kafka.mjs"))
        .args([bs.as_str(), src, out, &count.to_string()])
        .env("NODE_PATH", node_modules())
        .output()
        .expect("run node");
    let result = json_result(&output, &broker);
    let mut members = strings(&result, "members");
    members.dedup();
    assert!(
        members.len() == 2 && members.iter().all(|m| !m.is_empty()),
        "two members, each with its id: {result}"
    );
    let mut group_read = strings(&result, "group_read");
    group_read.sort();
    let mut expected: Vec<String> = (0..count)
        .map(|n| format!("k-{}=v-{n:05};n={n}", n % 11))
        .collect();
    expected.sort();
    assert_eq!(group_read, expected, "each message once, key and header");

    let mut committed = strings(&result, "committed");
    committed.sort();
    let copied: Vec<String> = (0..count).map(|n| format!("out-v-{n:05}")).collect();
    assert_eq!(committed, copied, "each value once, nothing aborted");
    let uncommitted = strings(&result, "uncommitted");
    let aborted = uncommitted
        .iter()
        .filter(|v| v.starts_with("aborted-"))
        .count();
    assert_eq!(aborted, 20, "the aborted writes are in the log");
    assert_eq!(uncommitted.len(), count + aborted);

    for group in ["pk-consumer-group", "pk-copier-group"] {
        let consumer: rdkafka::consumer::BaseConsumer = consumer_config(&bs)
            .set("group.id", group)
            .create()
            .expect("consumer");
        let offsets = committed_offsets(&consumer, src, 3);
        for p in 0..3 {
            let end = watermarks(&bs, src, p).1;
            assert_eq!(offsets.get(&p), Some(&end), "{group} {p}: {offsets:?}");
        }
    }
}

/// kafkajs copies a topic exactly once: each batch its group consumer
/// reads is written out and its offsets committed in one transaction
/// (TxnOffsetCommit v0, which names no member, while the group is active),
/// after one aborted transaction. Each value is read back once by
/// read_committed, the aborted ones only by read_uncommitted, and the
/// group's offsets are the source's ends.
#[test]
fn kafkajs_copies_a_topic_exactly_once() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let (src, out, group, count) = ("kjs-src", "kjs-out", "kjs-copier", 300);
    create_topic(&bs, src, 3, &[]);
    create_topic(&bs, out, 2, &[]);
    let output = std::process::Command::new("node")
        .arg(script("kafkajs_exactly_once.js"))
        .args([bs.as_str(), src, out, group, &count.to_string()])
        .env("NODE_PATH", node_modules())
        .output()
        .expect("run node");
    let result = json_result(&output, &broker);
    assert!(result["transactions"].as_i64().unwrap() >= 3, "{result}");
    check_exactly_once_copy(&result, &bs, (src, group), count);
}

/// Runs the admin tour `script` (a node script printing one JSON line of
/// per-method outcomes) against one broker: every method answered as Kafka
/// 4.x does (a call Kafka refuses counts only with Kafka's error), none
/// missing. Returns the outcomes.
fn admin_tour(script_name: &str) -> serde_json::Value {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let output = Command::new("node")
        .arg(script(script_name))
        .arg(bs.as_str())
        .env("NODE_PATH", node_modules())
        .output()
        .expect("run node");
    let r = json_result(&output, &broker);
    assert_tour_ok(&r);
    r
}

/// kafkajs's whole admin client against one broker: topics, offsets by
/// timestamp, records deleted, group offsets set and reset, configs,
/// groups, ACLs (SECURITY_DISABLED without an authorizer, as Kafka),
/// reassignments; each change read back.
#[test]
fn kafkajs_admin_client_tour() {
    let r = admin_tour("kafkajs_admin_tour.js");
    let result = |method: &str| &r[method]["result"];
    let by_time: Vec<&str> = result("fetchTopicOffsetsByTimestamp")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_str().unwrap())
        .collect();
    assert_eq!(by_time, ["5", "5", "5"], "{r}");
    let after = &result("deleteTopicRecords")["offsets_after"]["0"];
    assert_eq!(after["low"], "3", "{r}");
    assert_eq!(
        result("setOffsets")["after"],
        serde_json::json!({"0": "4", "1": "10", "2": "10"})
    );
}

/// @platformatic/kafka's whole admin client against one broker: created
/// topics come back with their configs (CreateTopics v7), offsets by
/// timestamp, records deleted, log dirs, client quotas, group offsets
/// altered and deleted, a member removed, configs, ACLs; each change read
/// back.
#[test]
fn platformatic_kafka_admin_client_tour() {
    let r = admin_tour("platformatic_admin_tour.mjs");
    let result = |method: &str| &r[method]["result"];
    let created = &result("createTopics")["tour-scratch"][0]["configuration"];
    assert_eq!(created["retention.ms"], "86400000", "{r}");
    assert_eq!(created["cleanup.policy"], "delete", "{r}");
    assert_eq!(
        result("listOffsets")["at_base_plus_5s"],
        serde_json::json!({"0": "5", "1": "5", "2": "5"})
    );
    assert_eq!(result("deleteRecords")["earliest_after"]["0"], "3", "{r}");
    assert_eq!(
        result("deleteConsumerGroupOffsets")["after"],
        serde_json::json!({"tour-a:0": "4", "tour-a:1": "5"})
    );
    let removed = &result("removeMembersFromConsumerGroup")["after"];
    assert_eq!(removed["state"], "EMPTY", "{r}");
    assert_eq!(
        result("alterClientQuotas")["answer"][0]["errorMessage"],
        serde_json::Value::Null
    );
}

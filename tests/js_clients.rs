//! kafkajs (2.x) against real brokers. `make test` installs it under
//! `target/js` (`make js-deps`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::cluster::Cluster;
use rdkafka::admin::{NewTopic, TopicReplication};

/// Where `make js-deps` installs kafkajs: `SLUICE_TEST_NODE_MODULES`, else
/// `target/js/node_modules`.
fn node_modules() -> PathBuf {
    let path = std::env::var_os("SLUICE_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/js/node_modules")
        });
    assert!(
        path.join("kafkajs").exists(),
        "{} has no kafkajs: run `make js-deps` (make test does)",
        path.display()
    );
    path
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// kafkajs re-routes to a new leader: with the partition leader of a
/// replicated topic killed between two halves of its sends, every message
/// it saw acknowledged is read back once, in order, through a group.
#[test]
fn kafkajs_follows_a_new_leader() {
    let mut cluster = Cluster::start(3);
    let topic = "kjs-failover";
    let count = 400;
    cluster.create_topic(
        &NewTopic::new(topic, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2"),
    );
    cluster.wait_view(topic, 0, "the ISR full", |v| v.isr == [1, 2, 3]);
    let mut child = Command::new("node")
        .arg(script("kafkajs_failover.js"))
        .args([&cluster.bootstrap(), topic, &count.to_string()])
        .env("NODE_PATH", node_modules())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Not piped: an unread pipe could fill and stall the script.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node (Node.js is needed for the kafkajs tests)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().expect("a READY line").expect("read stdout");
    assert_eq!(ready, "READY");
    let leader = cluster.leader_of(topic, 0);
    cluster.kill9(leader);
    cluster.wait_view(topic, 0, "a new leader", |v| {
        v.leader != leader && v.leader > 0
    });
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    let result_line = lines.next().expect("a result line").expect("read stdout");
    let status = child.wait().expect("node exits");
    assert!(status.success(), "the kafkajs script failed");
    cluster.start_again(leader);
    let result: serde_json::Value = serde_json::from_str(&result_line).expect("JSON result");
    let strings = |key: &str| -> Vec<String> {
        result[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let (acked, consumed) = (strings("acked"), strings("consumed"));
    assert_eq!(
        result["failed"].as_i64(),
        Some(0),
        "every send acknowledged"
    );
    assert_eq!(acked.len(), count);
    assert_eq!(consumed, acked, "read back once each, in the order sent");
}

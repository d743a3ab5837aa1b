//! kafka-python 3.x, which turns idempotence on by default, against the
//! real broker. `make test` installs it in a virtualenv (`make py-deps`).

mod common;

use std::path::PathBuf;
use std::process::Command;

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

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
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
    assert!(
        output.status.success(),
        "kafka-python failed: {}\n----- broker stderr -----\n{}",
        String::from_utf8_lossy(&output.stderr),
        broker.stderr_tail(50)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().expect("a result line");
    let result: serde_json::Value = serde_json::from_str(line).expect("JSON result");
    assert!(result["producer_id"].as_i64().unwrap() >= 0);
    assert_eq!(result["sent"].as_array().unwrap().len(), count);
    let mut consumed: Vec<String> = result["consumed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
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
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;

    use common::cluster::Cluster;
    use rdkafka::admin::{NewTopic, TopicReplication};

    let mut cluster = Cluster::start(3);
    let topic = "kp-failover";
    let count = 400;
    cluster.create_topic(
        &NewTopic::new(topic, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2"),
    );
    cluster.wait_view(topic, 0, "the ISR full", |v| v.isr == [1, 2, 3]);
    let mut child = Command::new(python())
        .arg(script("kafka_python_failover.py"))
        .args([&cluster.bootstrap(), topic, &count.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Not piped: an unread pipe could fill and stall the script.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run kafka-python");
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
    let status = child.wait().expect("kafka-python exits");
    assert!(status.success(), "kafka-python failed");
    cluster.start_again(leader);
    let result: serde_json::Value = serde_json::from_str(&result_line).expect("JSON result");
    let acked: Vec<String> = result["acked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let consumed: Vec<String> = result["consumed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        result["failed"].as_i64(),
        Some(0),
        "every send acknowledged"
    );
    assert_eq!(acked.len(), count);
    assert_eq!(consumed, acked, "read back once each, in the order sent");
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
    assert!(
        output.status.success(),
        "kafka-python failed: {}\n----- broker stderr -----\n{}",
        String::from_utf8_lossy(&output.stderr),
        broker.stderr_tail(50)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().expect("a result line");
    let result: serde_json::Value = serde_json::from_str(line).expect("JSON result");
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

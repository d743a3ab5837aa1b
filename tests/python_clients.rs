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

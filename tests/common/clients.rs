//! Other clients' scripts (kafka-python, aiokafka, kafkajs,
//! @platformatic/kafka, the Java client) driven as child processes:
//! what the failover tests and the produce-consume-commit tests share.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rdkafka::admin::{NewTopic, TopicReplication};

use super::cluster::Cluster;
use super::Broker;

/// `tests/clients/NAME`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// Where `make js-deps` installs kafkajs and @platformatic/kafka:
/// `SLUICE_TEST_NODE_MODULES`, else `target/js/node_modules`.
pub fn node_modules() -> PathBuf {
    let path = std::env::var_os("SLUICE_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/js/node_modules")
        });
    for client in ["kafkajs", "@platformatic/kafka"] {
        assert!(
            path.join(client).exists(),
            "{} has no {client}: run `make js-deps` (make test does)",
            path.display()
        );
    }
    path
}

/// `SluiceJava COMMAND` (tests/clients/java/, Kafka's Java client) on the
/// classpath `make java-deps` builds: under `SLUICE_TEST_JAVA_DIR`, else
/// `target/java`.
#[allow(dead_code)] // not every test binary runs the Java client
pub fn java(command: &str) -> Command {
    java_on(command, &["libs"], &[])
}

/// A Java program on kafka-clients 3.9 (target/java/libs-3.9), the Kafka 3
/// line's client, instead of 4.3.
#[allow(dead_code)] // not every test binary runs the Java client
pub fn java_3_9(command: &str) -> Command {
    java_on(command, &["libs-3.9"], &[])
}

/// A Java program on Kafka Connect's runtime (target/java/connect-libs)
/// besides the client, logging Connect's warnings to stderr.
#[allow(dead_code)] // not every test binary runs Kafka Connect
pub fn java_connect(command: &str) -> Command {
    let logging =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/java/log4j2-connect.properties");
    let option = format!("-Dlog4j2.configurationFile={}", logging.display());
    java_on(command, &["libs", "connect-libs"], &[&option])
}

#[allow(dead_code)]
fn java_on(command: &str, libs: &[&str], options: &[&str]) -> Command {
    let dir = std::env::var_os("SLUICE_TEST_JAVA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/java"));
    assert!(
        dir.join("classes/.built").exists(),
        "{} has no compiled client: run `make java-deps` (make test does)",
        dir.display()
    );
    let mut classpath = dir.join("classes").display().to_string();
    for lib in libs {
        classpath.push_str(&format!(":{}", dir.join(lib).join("*").display()));
    }
    let mut java = Command::new("java");
    // A small heap: several tests run side by side on a small machine.
    java.arg("-Xmx256m")
        .args(options)
        .args(["-cp", &classpath, "SluiceJava", command]);
    java
}

/// The last stdout line of a script that succeeded, as JSON; a failure
/// shows the script's stderr and the broker's.
pub fn json_result(output: &Output, broker: &Broker) -> serde_json::Value {
    json_result_or(output, || {
        format!("----- broker stderr -----\n{}", broker.stderr_tail(50))
    })
}

/// [`json_result`], a failure showing `logs()` (the brokers' stderr).
pub fn json_result_or(output: &Output, logs: impl FnOnce() -> String) -> serde_json::Value {
    assert!(
        output.status.success(),
        "the client script failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        logs()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().expect("a result line");
    serde_json::from_str(line).expect("JSON result")
}

/// An admin tour's outcomes (one JSON object, `{"<call>": {"ok": ..}}`,
/// entries starting with `_` being the script's own): every call answered
/// as Kafka answers it (a script counts an error as ok only when it is
/// Kafka's answer), none missing, the stage set.
pub fn assert_tour_ok(outcomes: &serde_json::Value) {
    assert!(outcomes.get("_missing").is_none(), "{outcomes}");
    assert!(outcomes["_setup"].get("error").is_none(), "{outcomes}");
    for (call, outcome) in outcomes.as_object().expect("an object") {
        if !call.starts_with('_') {
            assert_eq!(outcome["ok"], true, "{call}: {outcome}");
        }
    }
}

/// `result[key]` as strings.
pub fn strings(result: &serde_json::Value, key: &str) -> Vec<String> {
    result[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array: {result}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// A client follows a new leader: on a 3-node cluster, a topic of one
/// partition with RF 3 and min.insync.replicas=2; `command` (a script
/// taking BOOTSTRAP TOPIC COUNT) produces half, prints READY and waits for
/// a line; the leader is killed and replaced meanwhile; the script produces
/// the rest and reads everything back, printing
/// `{"acked": [...], "failed": n, "consumed": [...]}`. Every acknowledged
/// value must be read back once, in the order sent.
pub fn client_follows_a_new_leader(mut command: Command, topic: &str) {
    let mut cluster = Cluster::start(3);
    let count = 400;
    cluster.create_topic(
        &NewTopic::new(topic, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2"),
    );
    cluster.wait_view(topic, 0, "the ISR full", |v| v.isr == [1, 2, 3]);
    let mut child = command
        .args([&cluster.bootstrap(), topic, &count.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Not piped: an unread pipe could fill and stall the script.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run the client script");
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
    let status = child.wait().expect("the script exits");
    assert!(status.success(), "the client script failed");
    cluster.start_again(leader);
    let result: serde_json::Value = serde_json::from_str(&result_line).expect("JSON result");
    let (acked, consumed) = (strings(&result, "acked"), strings(&result, "consumed"));
    assert_eq!(
        result["failed"].as_i64(),
        Some(0),
        "every send acknowledged"
    );
    assert_eq!(acked.len(), count);
    assert_eq!(consumed, acked, "read back once each, in the order sent");
}

/// What a client's exactly-once copy (`*_exactly_once.*`) printed, checked:
/// `count` values copied as `out-VALUE`, each once for read_committed; the
/// 20 values of the aborted transaction only for read_uncommitted; and the
/// copying `group`'s offsets on the 3 partitions of `src` at their ends.
pub fn check_exactly_once_copy(
    result: &serde_json::Value,
    bootstrap: &str,
    (src, group): (&str, &str),
    count: usize,
) {
    let mut committed = strings(result, "committed");
    committed.sort();
    let copied: Vec<String> = (0..count).map(|n| format!("out-v-{n:05}")).collect();
    assert_eq!(committed, copied, "each value once, nothing aborted");
    let uncommitted = strings(result, "uncommitted");
    let aborted = uncommitted
        .iter()
        .filter(|v| v.starts_with("aborted-"))
        .count();
    assert_eq!(
        aborted, 20,
        "the aborted transaction's writes are in the log"
    );
    assert_eq!(uncommitted.len(), count + aborted);
    let consumer: rdkafka::consumer::BaseConsumer = super::consumer_config(bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let offsets = super::committed_offsets(&consumer, src, 3);
    for p in 0..3 {
        let end = super::watermarks(bootstrap, src, p).1;
        // A partition the producer left empty has nothing to commit.
        let offset = offsets.get(&p).copied().unwrap_or(0);
        assert_eq!(offset, end, "partition {p}: {offsets:?}");
    }
}

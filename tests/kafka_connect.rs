//! Kafka Connect (Kafka's own connect-runtime 4.3) in distributed mode
//! against the real broker, as operators run it in front of Kafka: the
//! workers keep their connector configs, source offsets and statuses in
//! compacted topics they create, find each other in a group of protocol
//! type "connect" whose leader spreads the work, and hand work over when a
//! worker leaves. A file source feeds a topic that a file sink drains; the
//! lines must come out as they went in, also across a broker's death in a
//! three-node cluster. The program is
//! tests/clients/java/Connect.java; `make test` builds it (`make
//! java-deps`).

mod acls_common;
mod common;

use common::clients::{java_connect, json_result, strings};
use common::raw::{str_bytes, RawClient};
use common::*;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeTransactionsRequest, TransactionalId,
};

const LINES: usize = 200;

/// Runs the two-worker pipeline (tests/clients/java/Connect.java) and
/// checks what both modes must show; returns the broker for more checks.
fn pipeline(exactly_once: bool) -> Broker {
    let broker = Broker::start(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let output = java_connect("connect")
        .args([
            broker.bootstrap().as_str(),
            dir.path().to_str().expect("a UTF-8 path"),
            &LINES.to_string(),
            &exactly_once.to_string(),
        ])
        .output()
        .expect("run java");
    let r = json_result(&output, &broker);

    let want: Vec<String> = (0..LINES).map(|i| format!("line-{i:05}")).collect();
    assert_eq!(strings(&r, "out"), want, "each line once, in order: {r}");
    assert_eq!(r["workers_sharing"], 2, "the leader spread the work: {r}");
    assert_eq!(r["last_worker_is_b"], true, "B took over A's work: {r}");
    for (unit, state) in r["states"].as_object().expect("states") {
        assert_eq!(state, "RUNNING", "{unit} runs on B: {r}");
    }

    // The workers' own topics, created through the Admin API as Connect
    // requires them: compacted, one partition for the configs (their
    // order matters), Connect's defaults for the others.
    let bs = broker.bootstrap();
    let partitions = topic_partition_counts(&bs);
    for (topic, count) in [
        ("connect-configs", 1),
        ("connect-offsets", 25),
        ("connect-status", 5),
    ] {
        assert_eq!(
            partitions.get(topic),
            Some(&count),
            "{topic}: {partitions:?}"
        );
        let configs = describe_topic_config(&bs, topic);
        assert_eq!(
            configs["cleanup.policy"].as_deref(),
            Some("compact"),
            "{topic}"
        );
    }
    // The lines topic, created on the source's first send (auto-create).
    assert_topic_holds(&bs, &want);

    let mut raw = RawClient::connect(&bs);
    let described = raw.call(
        5,
        &DescribeGroupsRequest::default().with_groups(vec![str_bytes("connect-cluster").into()]),
    );
    let group = &described.groups[0];
    assert_eq!(group.error_code, 0);
    assert_eq!(group.protocol_type.as_str(), "connect", "{group:?}");
    broker
}

#[test]
fn kafka_connect_workers_share_a_pipeline_and_hand_it_over() {
    pipeline(false);
}

/// With exactly-once source support (KIP-618) the source task writes its
/// lines and offsets in transactions under a transactional id of its own,
/// and the group's leader writes the config topic through a transactional
/// producer too; the task's start on worker B fenced its predecessor on A
/// (a newer epoch of the same id).
#[test]
fn kafka_connect_workers_hand_over_an_exactly_once_source() {
    let broker = pipeline(true);
    let mut raw = RawClient::connect(&broker.bootstrap());
    let ids = [
        "connect-cluster-lines-source-0",
        "connect-cluster-connect-cluster",
    ];
    let described = raw.call(
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(
            ids.iter()
                .map(|id| TransactionalId(str_bytes(id)))
                .collect(),
        ),
    );
    for (id, state) in ids.iter().zip(&described.transaction_states) {
        assert_eq!(state.error_code, 0, "{id}");
    }
    let task = &described.transaction_states[0];
    assert!(task.producer_epoch >= 1, "B's task fenced A's: {task:?}");
}

/// A worker with exactly-once sources on a three-node cluster, its topics
/// of three replicas, across the death (kill -9) of the broker that
/// coordinates its group: the worker finds the new coordinator and the new
/// leaders, and every line reaches the topic once (the source's
/// transactions) and the sink's file (at least once, as Connect's sinks
/// deliver: a line may come twice, none goes missing or out of order).
#[test]
fn kafka_connect_keeps_its_pipeline_across_a_brokers_death() {
    use std::io::{BufRead, BufReader, Write};
    let mut cluster = common::cluster::Cluster::start(3);
    cluster.create_topic(
        &rdkafka::admin::NewTopic::new(
            "connect-lines",
            1,
            rdkafka::admin::TopicReplication::Fixed(3),
        )
        .set("min.insync.replicas", "2"),
    );
    cluster.wait_view("connect-lines", 0, "the ISR full", |v| v.isr == [1, 2, 3]);
    let dir = tempfile::tempdir().expect("temp dir");
    let child = java_connect("connect-failover")
        .args([
            cluster.bootstrap().as_str(),
            dir.path().to_str().expect("a UTF-8 path"),
            &LINES.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        // Not piped: an unread pipe could fill and stall the worker.
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("run java");
    // A failed assertion must not leave the worker waiting on stdin.
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let ready = lines.next().expect("a READY line").expect("read stdout");
    assert_eq!(ready, "READY", "{}", cluster.stderr_tails(30));

    let mut raw = RawClient::connect(&cluster.bootstrap_of(&[1]));
    let (code, coordinator) = raw.find_coordinator("connect-cluster", 0);
    assert_eq!(code, 0, "FindCoordinator");
    cluster.kill9(coordinator);
    writeln!(child.0.stdin.as_mut().unwrap(), "go").unwrap();
    let result = lines.next().expect("a result line").expect("read stdout");
    assert!(
        child.0.wait().expect("java exits").success(),
        "{}",
        cluster.stderr_tails(30)
    );
    let r: serde_json::Value = serde_json::from_str(&result).expect("JSON result");

    let want: Vec<String> = (0..LINES).map(|i| format!("line-{i:05}")).collect();
    // A sink replays from its last committed offset: first sightings.
    let mut seen = std::collections::BTreeSet::new();
    let firsts: Vec<String> = strings(&r, "out")
        .into_iter()
        .filter(|line| seen.insert(line.clone()))
        .collect();
    assert_eq!(firsts, want, "every line, in order, replays aside: {r}");
    for (unit, state) in r["states"].as_object().expect("states") {
        assert_eq!(state, "RUNNING", "{unit}: {r}");
    }
    let live = cluster.live();
    let bs = cluster.bootstrap_of(&live);
    assert_topic_holds(&bs, &want);
    cluster.start_again(coordinator);
}

/// The lines topic (read committed) holds each of `want` once, in order.
fn assert_topic_holds(bootstrap: &str, want: &[String]) {
    let timeout = std::time::Duration::from_secs(30);
    let lines = consume_all(bootstrap, "connect-lines", 1, LINES, timeout);
    let values: Vec<String> = lines.iter().map(payload_str).collect();
    assert_eq!(values, want, "the topic holds each line once");
}

/// A worker with exactly-once sources logs in (SCRAM) as a principal that
/// holds only the ACLs Kafka's docs give a Connect worker: its topics
/// (prefix `connect-`: create, describe, describe configs, read, write),
/// its groups (the workers' and the sink's, prefix `connect-`: read) and
/// its transactional ids (prefix `connect-cluster`: write, describe). The
/// ACL authorizer lets each request of the worker, its connectors and its
/// leader's producer fencing through, and the pipeline runs.
#[test]
fn kafka_connect_runs_with_the_acls_kafka_documents_for_it() {
    use acls_common::*;
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = acl_broker(&dir);
    add_user(&broker.listener("PLAINTEXT"), "connect");
    let me = "User:connect";
    let mut acls = Vec::new();
    for op in [CREATE, DESCRIBE, DESCRIBE_CONFIGS, READ, WRITE] {
        acls.push(acl(TOPIC, "connect-", PREFIXED, me, op, ALLOW));
    }
    acls.push(acl(GROUP, "connect-", PREFIXED, me, READ, ALLOW));
    for op in [WRITE, DESCRIBE] {
        acls.push(acl(
            TRANSACTIONAL_ID,
            "connect-cluster",
            PREFIXED,
            me,
            op,
            ALLOW,
        ));
    }
    grant(&broker, acls);

    let out = tempfile::tempdir().expect("temp dir");
    let output = java_connect("connect-secure")
        .args([
            broker.listener("SASL").as_str(),
            out.path().to_str().expect("a UTF-8 path"),
            &LINES.to_string(),
            "security.protocol=SASL_PLAINTEXT",
            "sasl.mechanism=SCRAM-SHA-256",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \
             required username=\"connect\" password=\"connect-secret\";",
        ])
        .output()
        .expect("run java");
    let r = json_result(&output, &broker);
    let want: Vec<String> = (0..LINES).map(|i| format!("line-{i:05}")).collect();
    assert_eq!(strings(&r, "out"), want, "each line once, in order: {r}");
    for (unit, state) in r["states"].as_object().expect("states") {
        assert_eq!(state, "RUNNING", "{unit}: {r}");
    }
    assert_topic_holds(&broker.listener("PLAINTEXT"), &want);
}

/// A child process killed when dropped (a passed test finds it exited).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

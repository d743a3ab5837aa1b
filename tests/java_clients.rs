//! Kafka's own Java client (kafka-clients 4.3, and 3.9 where said) against
//! the real broker:
//! the producer's defaults (idempotent, acks=all) with every codec, classic
//! and KIP-848 consumer groups, exactly-once copying (under transaction
//! version 2, KIP-890), a leader's death,
//! reads from the replica in the consumer's rack, and the whole Admin API,
//! which Kafka's command-line tools are built on. (Over TLS and SASL:
//! tests/security.rs.) The
//! programs are tests/clients/java/; `make test` compiles them (`make
//! java-deps`).

mod common;

use common::clients::{
    assert_tour_ok, check_exactly_once_copy, client_follows_a_new_leader, java, java_3_9,
    json_result, json_result_or, strings,
};
use common::*;
use serde_json::json;
use std::process::Command;

/// The Java producer with its defaults, once per codec, and a group of
/// `protocol` reading it all: each value read once, each key's values in
/// the order sent, headers intact, one producer id per producer (each was
/// idempotent), and the group's commits at the partitions' ends (a second
/// member reads nothing).
fn produce_and_consume(protocol: &str) {
    produce_and_consume_with(java, protocol);
}

/// [`produce_and_consume`] with the Java client `java` runs.
fn produce_and_consume_with(java: fn(&str) -> Command, protocol: &str) {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let (topic, group) = (format!("java-{protocol}"), format!("java-{protocol}-group"));
    create_topic(&bs, &topic, 3, &[]);
    let output = java("produce-consume")
        .args([bs.as_str(), &topic, &group, protocol])
        .output()
        .expect("run java");
    let r = json_result(&output, &broker);
    let (mut sent, mut consumed) = (strings(&r, "sent"), strings(&r, "consumed"));
    assert_eq!(sent.len(), 500);
    sent.sort();
    consumed.sort();
    assert_eq!(consumed, sent, "each value read once");
    assert_eq!(r["keys_in_order"], true, "{r}");
    assert_eq!(r["headers_seen"], 500, "{r}");
    assert_eq!(r["after_commit"], 0, "{r}");
    assert_eq!(r["producer_ids"], 5, "{r}");
    let consumer: rdkafka::consumer::BaseConsumer = consumer_config(&bs)
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let committed = committed_offsets(&consumer, &topic, 3);
    for p in 0..3 {
        assert_eq!(
            committed.get(&p).copied(),
            Some(watermarks(&bs, &topic, p).1)
        );
    }
}

#[test]
fn java_client_produces_and_consumes_in_a_classic_group() {
    produce_and_consume("classic");
}

/// The same through KIP-848's ConsumerGroupHeartbeat (`group.protocol =
/// consumer`), the Java client's new group protocol.
#[test]
fn java_client_produces_and_consumes_in_a_kip848_group() {
    produce_and_consume("consumer");
}

/// The Kafka 3 line's Java client (3.9), which most applications still
/// run, the same way: its older protocol versions (Produce v11, Fetch v17,
/// JoinGroup v9) end to end.
#[test]
fn java_3_9_client_produces_and_consumes_in_a_classic_group() {
    produce_and_consume_with(java_3_9, "classic");
}

/// The Java client copies a topic exactly once: each poll's writes and its
/// offsets, with the consumer's group metadata (KIP-447), committed in one
/// transaction, after one aborted transaction. Each value is read back once
/// by read_committed, the aborted ones only by read_uncommitted, and the
/// group's offsets are the source's ends. The client runs transaction
/// version 2, which the broker finalizes: every end bumped the epoch.
#[test]
fn java_client_copies_a_topic_exactly_once() {
    let (transactions, epoch) = copy_exactly_once(java, &[]);
    assert!(
        i64::from(epoch) >= transactions,
        "epoch {epoch} after {transactions} transactions"
    );
}

/// With `--transaction-version 0` the broker finalizes no transaction
/// version 2, and the same client keeps to the older protocol (its
/// AddPartitionsToTxn, no epoch bump at the ends): the operator's switch
/// for a cluster being upgraded or a client to rule out.
#[test]
fn java_client_keeps_to_transaction_version_0_when_the_broker_says_so() {
    let (_, epoch) = copy_exactly_once(java, &["--transaction-version", "0"]);
    assert_eq!(epoch, 0, "no end bumped the epoch");
}

/// The Kafka 3 line's Java client (3.9) copies exactly once too. It knows
/// no transaction version 2 whatever the broker finalizes: it adds its
/// partitions itself (AddPartitionsToTxn v4) and no end bumps its epoch.
#[test]
fn java_3_9_client_copies_a_topic_exactly_once() {
    let (_, epoch) = copy_exactly_once(java_3_9, &[]);
    assert_eq!(epoch, 0, "no end bumped the epoch");
}

/// Runs the Java exactly-once copy (on the client `java` runs) against a
/// broker started with `args`, checks it, and returns the transactions
/// committed and the transactional id's epoch after them.
fn copy_exactly_once(java: fn(&str) -> Command, args: &[&str]) -> (i64, i16) {
    let mut all_args = vec!["--metrics-listen", "127.0.0.1:0"];
    all_args.extend_from_slice(args);
    let broker = Broker::start_with(2, &all_args);
    let bs = broker.bootstrap();
    let (src, out, group, count) = ("java-src", "java-out", "java-copier", 300);
    create_topic(&bs, src, 3, &[]);
    create_topic(&bs, out, 2, &[]);
    let output = java("exactly-once")
        .args([bs.as_str(), src, out, group, &count.to_string()])
        .output()
        .expect("run java");
    let result = json_result(&output, &broker);
    let transactions = result["transactions"].as_i64().unwrap();
    assert!(transactions >= 3, "{result}");
    check_exactly_once_copy(&result, &bs, (src, group), count);
    assert!(broker.metric("sluice_transaction_verifications_total") > 0);
    let mut raw = common::raw::RawClient::connect(&bs);
    let described = raw.call(
        0,
        &kafka_protocol::messages::DescribeTransactionsRequest::default().with_transactional_ids(
            vec![kafka_protocol::messages::TransactionalId(
                common::raw::str_bytes("java-eos"),
            )],
        ),
    );
    let state = &described.transaction_states[0];
    assert_eq!(state.error_code, 0);
    (transactions, state.producer_epoch)
}

/// The same copy on a three-node cluster, with the transaction
/// coordinator killed (kill -9) halfway: the broker that comes to lead the
/// transactional id's `__transaction_state` partition loads it from the
/// log, and the producer goes on under transaction version 2 (each end
/// bumping the epoch on the new coordinator). Each value is still
/// committed exactly once, and the group's offsets end at the source's
/// ends.
#[test]
fn java_client_copies_exactly_once_across_its_transaction_coordinators_death() {
    use common::cluster::Cluster;
    use rdkafka::admin::{NewTopic, TopicReplication};
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let mut cluster = Cluster::start(3);
    let bs = cluster.bootstrap();
    let (src, out, group, count) = ("java-ha-src", "java-ha-out", "java-ha-copier", 400);
    for (topic, partitions) in [(src, 3), (out, 2)] {
        cluster.create_topic(
            &NewTopic::new(topic, partitions, TopicReplication::Fixed(3))
                .set("min.insync.replicas", "2"),
        );
        cluster.wait_isr(topic, partitions, &[1, 2, 3]);
    }
    let mut child = java("exactly-once")
        .args([bs.as_str(), src, out, group, &count.to_string(), "pause"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run java");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().expect("a READY line").expect("read stdout");
    assert_eq!(ready, "READY");
    let mut raw = common::raw::RawClient::connect(&cluster.bootstrap_of(&[1]));
    let (code, coordinator) = raw.find_coordinator("java-eos", 1);
    assert_eq!(code, 0);
    let epoch_before = describe_epoch(&cluster, coordinator);
    cluster.kill9(coordinator);
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    let result_line = lines.next().expect("a result line").expect("read stdout");
    assert!(
        child.wait().expect("java exits").success(),
        "the copy failed"
    );
    let result: serde_json::Value = serde_json::from_str(&result_line).expect("JSON result");
    let mut committed = strings(&result, "committed");
    committed.sort();
    let copied: Vec<String> = (0..count).map(|n| format!("out-v-{n:05}")).collect();
    assert_eq!(committed, copied, "each value once, nothing aborted");
    let epoch_after = describe_epoch(&cluster, cluster.live()[0]);
    assert!(
        epoch_after > epoch_before,
        "the new coordinator bumped at each end: {epoch_before} -> {epoch_after}"
    );
    cluster.start_again(coordinator);
    let consumer: rdkafka::consumer::BaseConsumer = consumer_config(&cluster.bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let offsets = committed_offsets(&consumer, src, 3);
    for p in 0..3 {
        let end = watermarks(&cluster.bootstrap(), src, p).1;
        assert_eq!(offsets.get(&p).copied().unwrap_or(0), end, "partition {p}");
    }
}

/// The epoch of transactional id `java-eos`, from its coordinator, found
/// through node `via`.
fn describe_epoch(cluster: &common::cluster::Cluster, via: i32) -> i16 {
    let mut raw = common::raw::RawClient::connect(&cluster.bootstrap_of(&[via]));
    let (code, coordinator) = raw.find_coordinator("java-eos", 1);
    assert_eq!(code, 0, "FindCoordinator");
    let mut raw = common::raw::RawClient::connect(&cluster.bootstrap_of(&[coordinator]));
    let described = raw.call(
        0,
        &kafka_protocol::messages::DescribeTransactionsRequest::default().with_transactional_ids(
            vec![kafka_protocol::messages::TransactionalId(
                common::raw::str_bytes("java-eos"),
            )],
        ),
    );
    let state = &described.transaction_states[0];
    assert_eq!(state.error_code, 0, "DescribeTransactions");
    state.producer_epoch
}

/// The Java producer (idempotent, acks=all by default) across its leader's
/// death on a three-node cluster: every acknowledged value read back once,
/// in order.
#[test]
fn java_client_follows_a_new_leader() {
    client_follows_a_new_leader(java("failover"), "java-failover");
}

/// The same with the Kafka 3 line's Java client (3.9).
#[test]
fn java_3_9_client_follows_a_new_leader() {
    client_follows_a_new_leader(java_3_9("failover"), "java-3-9-failover");
}

/// A share group (KIP-932) of Kafka's KafkaShareConsumer on two shards,
/// starting at the earliest record by its own group config: a
/// member takes records and stalls, and its locks (3 s here) run out; two
/// more members then share the topic's one partition with it (a share
/// group hands a partition to many members), accepting every value once, rejecting one and releasing another at its first delivery. The
/// released value comes back once more, the rejected one never, the
/// stalled member's come back as second deliveries, and a last member
/// finds nothing left, and the Admin client sees the partition's start
/// past the last record. The Admin client then resets the empty group
/// (AlterShareGroupOffsets, refused while a member is in) and deletes its
/// state (DeleteShareGroupOffsets): members get the records again. `/metrics` counts each kind of acknowledgement
/// and the locks that ran out.
#[test]
fn java_share_consumers_share_a_topic() {
    let broker = Broker::start_with(
        2,
        &[
            "--group-share-record-lock-duration-ms",
            "3000",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let bs = broker.bootstrap();
    create_topic(&bs, "java-share", 1, &[]);
    let count = 300;
    let output = java("share-consume")
        .args([
            bs.as_str(),
            "java-share",
            "java-share-group",
            &count.to_string(),
        ])
        .output()
        .expect("run java");
    let r = json_result(&output, &broker);
    assert_eq!(r["errors"], json!([]), "{r}");
    // The group's own config, not the broker's `latest`, made it start at
    // the records written before it.
    assert_eq!(
        r["group_config"], "earliest from DYNAMIC_GROUP_CONFIG",
        "{r}"
    );
    let mut accepted = strings(&r, "accepted");
    accepted.sort();
    let expected: Vec<String> = (0..count)
        .filter(|i| *i != 13)
        .map(|i| format!("v-{i:03}"))
        .collect();
    assert_eq!(
        accepted, expected,
        "each value but the rejected one accepted once"
    );
    let held = r["held_deliveries"].as_object().expect("an object");
    assert!(!held.is_empty(), "{r}");
    // The stalled member's delivery came first for the values it held.
    let before = |value: &str| i64::from(held.contains_key(value));
    assert_eq!(r["rejected_deliveries"], before("v-013") + 1, "{r}");
    assert_eq!(r["released_deliveries"], before("v-042") + 2, "{r}");
    for (value, deliveries) in held {
        if value != "v-013" && value != "v-042" {
            assert_eq!(
                deliveries, 2,
                "{value} delivered again after the stall: {r}"
            );
        }
    }
    let per_member: Vec<i64> = r["per_member"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|n| n.as_i64().expect("a count"))
        .collect();
    assert_eq!(per_member.len(), 2, "{r}");
    assert!(
        per_member.iter().all(|n| *n > 0),
        "both members got records: {r}"
    );
    assert_eq!(r["left_over"], 0, "{r}");
    // Every record done with: the partition's start is past the last.
    assert_eq!(r["start_offsets"], json!({"java-share-0": count}), "{r}");
    assert_eq!(r["group_state"], "Empty", "{r}");
    assert_eq!(r["group_members"], 0, "{r}");
    // The operator's resets: refused with a member in, then the last ten
    // again, then the state deleted and every record again from the start.
    assert_eq!(r["reset_with_a_member"], "GroupNotEmptyException", "{r}");
    let tail: Vec<String> = (count - 10..count).map(|i| format!("v-{i:03}")).collect();
    assert_eq!(strings(&r, "after_reset"), tail, "{r}");
    assert_eq!(r["offsets_after_delete"], 0, "{r}");
    assert_eq!(r["after_delete"], count, "{r}");
    // 299 in the shared run, 10 after the reset and 300 after the delete.
    assert_eq!(broker.metric("sluice_share_records_accepted_total"), 609);
    assert_eq!(broker.metric("sluice_share_records_rejected_total"), 1);
    assert_eq!(broker.metric("sluice_share_records_released_total"), 1);
    let delivered_again = held.len() as u64 + 1;
    assert!(broker.metric("sluice_share_records_acquired_total") >= 300 + delivered_again);
    assert!(broker.metric("sluice_share_acquisition_locks_expired_total") >= held.len() as u64);
}

/// A share group set to `read_committed` (through the Java Admin client)
/// with Kafka's KafkaShareConsumer: of a committed, an aborted and a
/// committed transaction by Kafka's transactional producer, it gets the
/// committed ones' values only, each once, in order.
#[test]
fn java_read_committed_share_consumer_skips_an_aborted_transaction() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    create_topic(&bs, "java-share-txn", 1, &[]);
    let output = java("share-committed")
        .args([bs.as_str(), "java-share-txn", "java-share-txn-group"])
        .output()
        .expect("run java");
    let r = json_result(&output, &broker);
    let expected: Vec<String> = ["c", "d"]
        .iter()
        .flat_map(|tag| (0..5).map(move |i| format!("{tag}-{i}")))
        .collect();
    assert_eq!(strings(&r, "values"), expected, "{r}");
}

/// Every method of the Java Admin client against one broker
/// (tests/clients/java/AdminTour.java sets the stage): each answered as
/// Kafka answers it (SECURITY_DISABLED for ACLs without an authorizer,
/// DELEGATION_TOKEN_REQUEST_NOT_ALLOWED on PLAINTEXT, ELECTION_NOT_NEEDED
/// where the leader is the preferred one; an unknown share group not
/// found; streams groups unsupported), none missing, and each change read back. A lone broker
/// describes itself as the metadata quorum.
#[test]
fn java_admin_client_tour() {
    let broker = Broker::start(1);
    let output = java("admin-tour")
        .arg(broker.bootstrap())
        .output()
        .expect("run java");
    let r = json_result(&output, &broker);
    check_tour(&r);
    let quorum = r["describeMetadataQuorum"]["result"].as_str().unwrap();
    assert!(quorum.contains("leaderId=0"), "{quorum}");
    assert!(
        quorum.contains("voters=[ReplicaState(replicaId=0"),
        "{quorum}"
    );
}

/// The same tour against a three-node cluster: topics of three replicas,
/// groups and transactions on whichever broker coordinates them, per-broker
/// configs, loggers and log dirs asked of node 1 through the bootstrap
/// list, the metadata quorum of three voters.
#[test]
fn java_admin_client_tour_on_a_cluster() {
    let cluster = common::cluster::Cluster::start(3);
    let output = java("admin-tour")
        .arg(cluster.bootstrap())
        .output()
        .expect("run java");
    let r = json_result_or(&output, || cluster.stderr_tails(30));
    check_tour(&r);
    assert_eq!(r["describeCluster_nodes"]["result"], json!([1, 2, 3]));
    let quorum = r["describeMetadataQuorum"]["result"].as_str().unwrap();
    for voter in 1..=3 {
        assert!(
            quorum.contains(&format!("ReplicaState(replicaId={voter}")),
            "{quorum}"
        );
    }
    let finalized = &r["describeFeatures"]["result"]["finalized"];
    assert_eq!(finalized["kraft.version"], 1, "{r}");
}

/// What both tours must show, beyond every call answered as Kafka does.
fn check_tour(r: &serde_json::Value) {
    assert_tour_ok(r);
    let result = |method: &str| &r[method]["result"];

    // Topics.
    assert_eq!(result("createTopics")["assigned_partitions"], 2, "{r}");
    assert_eq!(result("describeTopics")["by_id_name"], "ja-a", "{r}");
    let offsets = result("listOffsets");
    assert_eq!(offsets["max_timestamp"]["ja-a-1"], 9, "{r}");
    assert_eq!(offsets["at_base_plus_5s"]["ja-a-2"], 5, "{r}");
    assert_eq!(offsets["after_last"]["ja-a-0"], -1, "{r}");
    assert_eq!(offsets["latest_tiered"]["ja-a-0"], -1, "{r}");
    // 5 committed records and their marker, then an open transaction of 3.
    assert_eq!(offsets["tx_read_uncommitted"]["ja-tx-0"], 9, "{r}");
    assert_eq!(offsets["tx_read_committed"], 6, "{r}");
    assert_eq!(result("deleteRecords")["earliest_after"]["ja-a-0"], 3);
    assert_eq!(result("createPartitions")["partitions_after"], 4);
    assert_eq!(
        result("deleteTopics")["listed_after"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "ja-scratch by name and ja-assigned by id: {r}"
    );

    // The cluster and configs.
    assert_eq!(
        result("describeFeatures")["finalized"]["group.version"],
        1,
        "{r}"
    );
    // UpdateFeatures v2: one refused level refuses the other update too.
    for feature in ["group.version", "share.version"] {
        let refused = result("updateFeatures")["mixed"][feature]
            .as_str()
            .unwrap_or_default();
        assert!(
            refused.starts_with("InvalidUpdateVersionException")
                && refused.contains("failed for all features")
                && refused.contains("share.version"),
            "{feature}: {r}"
        );
    }
    assert_eq!(
        result("incrementalAlterConfigs")["after_set"]["cleanup.policy"]["value"],
        "delete,compact",
        "{r}"
    );
    assert_eq!(
        result("incrementalAlterConfigs")["after_subtract_delete"]["cleanup.policy"]["value"],
        "compact",
        "{r}"
    );
    let broker_config = result("incrementalAlterConfigs_broker");
    assert_eq!(broker_config["set"], "7200000", "{r}");
    assert_eq!(
        broker_config["after_delete"]["source"], "DEFAULT_CONFIG",
        "{r}"
    );

    let loggers = result("brokerLoggers");
    assert_eq!(loggers["root"], "INFO", "{r}");
    assert_eq!(loggers["set"]["value"], "DEBUG", "{r}");
    assert_eq!(
        loggers["set"]["source"], "DYNAMIC_BROKER_LOGGER_CONFIG",
        "{r}"
    );
    assert_eq!(loggers["after_delete"], true, "{r}");

    // Groups.
    assert_eq!(
        result("listGroups")["consumer_type"],
        json!(["ja-848:Consumer:Empty"]),
        "{r}"
    );
    assert_eq!(
        result("alterConsumerGroupOffsets")["after"],
        json!({"ja-a-0": 4, "ja-a-1": 10, "ja-a-2": 10})
    );
    assert_eq!(
        result("deleteConsumerGroupOffsets")["after"],
        json!({"ja-a-0": 4, "ja-a-1": 10})
    );
    assert_eq!(
        result("removeMembersFromConsumerGroup"),
        &json!({"members": 0, "state": "Empty"})
    );
    assert_eq!(result("deleteConsumerGroups")["groups_after"], json!([]));

    // Transactions.
    assert_eq!(
        result("listTransactions")["ongoing"],
        json!(["ja-txn-open:Ongoing"])
    );
    let abort = result("abortTransaction");
    assert_eq!(
        (&abort["lso_before"], &abort["lso_after"]),
        (&json!(6), &json!(10)),
        "{r}"
    );
    assert_eq!(result("fenceProducers")["state_after"], "Empty", "{r}");
}

/// The Java consumer with `client.rack` on a cluster whose nodes are each
/// in their own rack, under the rack-aware selector (KIP-392): it reads
/// every record, through the follower in its rack.
#[test]
fn java_consumer_reads_from_the_replica_in_its_rack() {
    use rdkafka::admin::{NewTopic, TopicReplication};
    let cluster = common::cluster::Cluster::start_in_racks(3);
    cluster.create_topic(&NewTopic::new("java-racks", 1, TopicReplication::Fixed(3)));
    cluster.wait_view("java-racks", 0, "the ISR full", |v| v.isr == [1, 2, 3]);
    let bs = cluster.bootstrap();
    let values: Vec<String> = (0..40).map(|i| format!("rack-{i}")).collect();
    produce_values(&bs, "java-racks", Some(0), &values);
    let leader = cluster.leader_of("java-racks", 0);
    let follower = if leader == 1 { 2 } else { 1 };
    let output = java("rack-consume")
        .args([bs.as_str(), "java-racks", "40", &format!("rack-{follower}")])
        .output()
        .expect("run java");
    let r = json_result_or(&output, || cluster.stderr_tails(30));
    assert_eq!(strings(&r, "consumed"), values);
    assert!(
        cluster
            .node(leader)
            .metric("sluice_fetch_read_replica_redirects_total")
            >= 1
    );
    assert!(
        cluster
            .node(follower)
            .metric("sluice_fetch_follower_reads_total")
            >= 1
    );
}

/// The Java client with its defaults (`enable.metrics.push=true`) under a
/// client metrics subscription (KIP-714) its Admin client set and read
/// back (as `kafka-client-metrics.sh` does): it gets its client instance id
/// from the broker (`clientInstanceId`), and the producer metrics it pushes
/// appear at `/metrics` under that id and its client id.
#[test]
fn java_client_pushes_its_metrics_when_subscribed() {
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    create_topic(&bs, "java-telemetry", 1, &[]);
    let output = java("telemetry-produce")
        .args([bs.as_str(), "java-telemetry", &broker.metrics_addr()])
        .output()
        .expect("run java");
    let r = json_result(&output, &broker);
    assert_eq!(
        r["described"],
        json!({
            "interval.ms": "500",
            "match": "client_software_name=apache-kafka-java",
            "metrics": "org.apache.kafka.producer.",
        }),
        "{r}"
    );
    assert_eq!(strings(&r, "listed"), ["java"], "{r}");
    let series = strings(&r, "series");
    assert!(!series.is_empty(), "no pushed metrics seen: {r}");
    // Kafka's Uuid prints as URL-safe base64.
    let instance = r["client_instance_id"].as_str().expect("instance id");
    let instance = {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(instance)
            .expect("a Kafka Uuid");
        uuid::Uuid::from_slice(&bytes).expect("16 bytes")
    };
    assert!(
        series
            .iter()
            .all(|l| l.contains(&format!("client_instance_id=\"{instance}\""))),
        "{series:?}"
    );
}

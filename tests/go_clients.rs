//! Go clients with their own protocol code against the real broker.
//! Sarama (1.22) at the Kafka versions it is told to speak: 0.8.2 (its
//! default: message format 0, Produce and Fetch v0), 0.10.2 (format 1,
//! timestamps) and 2.1 (format 2, headers, idempotence; Produce v3 and
//! Fetch v4, the newest this sarama sends). segmentio's kafka-go (0.2.1),
//! which asks no ApiVersions and speaks fixed old versions. `make test`
//! builds both (`make go-deps`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::clients::json_result;
use common::*;

/// A client `make go-deps` builds: under `SLUICE_TEST_GO_CLIENTS`, else
/// `target/go`.
fn go_client(name: &str) -> Command {
    let dir = std::env::var_os("SLUICE_TEST_GO_CLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/go"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make go-deps` (make test does)",
        path.display()
    );
    Command::new(path)
}

fn sarama() -> Command {
    go_client("sarama-client")
}

fn run(broker: &Broker, args: &[&str]) -> serde_json::Value {
    let output = sarama().args(args).output().expect("run sarama-client");
    json_result(&output, broker)
}

/// `(partition, offset, key, value, header)` of each record in `result[key]`.
fn records(result: &serde_json::Value, key: &str) -> Vec<(i64, i64, String, String, String)> {
    result[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not an array: {result}"))
        .iter()
        .map(|r| {
            (
                r["partition"].as_i64().unwrap(),
                r["offset"].as_i64().unwrap(),
                r["key"].as_str().unwrap().to_string(),
                r["value"].as_str().unwrap().to_string(),
                r["header"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Sarama at `version` sends `count` keyed messages compressed with each of
/// `codecs` (one topic each) and reads them back: every acknowledged
/// message is read once at the offset it was acknowledged at, with its key
/// (so its partition), and its header where the format has headers; each
/// partition's offsets run from 0 without a gap.
fn produces_and_consumes(version: &str, codecs: &[&str], extra: &[&str]) {
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bootstrap = broker.bootstrap();
    let count = 240;
    let count_arg = count.to_string();
    for codec in codecs {
        let topic = format!("sarama-{}-{codec}", version.replace('.', "-"));
        create_topic(&broker.bootstrap(), &topic, 3, &[]);
        let mut args = vec![
            "produce-consume",
            &bootstrap,
            &topic,
            version,
            codec,
            &count_arg,
        ];
        args.extend_from_slice(extra);
        let result = run(&broker, &args);
        let acked = records(&result, "acked");
        let consumed = records(&result, "consumed");
        assert_eq!(acked.len(), count, "{codec}: {result}");
        let mut values: Vec<&str> = acked.iter().map(|r| r.3.as_str()).collect();
        values.sort();
        let expected: Vec<String> = (0..count).map(|i| format!("v-{i:05}")).collect();
        assert_eq!(values, expected, "{codec}: each message acknowledged once");
        let with_headers = version.starts_with('2');
        for (i, (_, _, key, value, header)) in consumed.iter().enumerate() {
            let n: usize = value[2..].parse().unwrap();
            assert_eq!(key, &format!("k-{}", n % 17), "{codec}: record {i}");
            let want_header = if with_headers {
                format!("n={n}")
            } else {
                String::new()
            };
            assert_eq!(header, &want_header, "{codec}: {value}'s header");
        }
        assert_eq!(
            consumed
                .iter()
                .map(|r| (r.0, r.1, &r.2, &r.3))
                .collect::<Vec<_>>(),
            acked
                .iter()
                .map(|r| (r.0, r.1, &r.2, &r.3))
                .collect::<Vec<_>>(),
            "{codec}: read back as acknowledged"
        );
        let mut keys_at: std::collections::BTreeMap<&str, i64> = Default::default();
        for (partition, _, key, _, _) in &consumed {
            let at = *keys_at.entry(key).or_insert(*partition);
            assert_eq!(at, *partition, "{codec}: key {key} in one partition");
        }
        for p in 0..3 {
            let offsets: Vec<i64> = consumed.iter().filter(|r| r.0 == p).map(|r| r.1).collect();
            let dense: Vec<i64> = (0..offsets.len() as i64).collect();
            assert_eq!(offsets, dense, "{codec}: partition {p} without gaps");
            assert_eq!(
                watermarks(&broker.bootstrap(), &topic, p as i32).1,
                offsets.len() as i64
            );
        }
    }
    // Formats 0 and 1 went through the bridge both ways; record batches
    // did not.
    let (up, down) = (
        broker.metric("sluice_produce_up_conversions_total"),
        broker.metric("sluice_fetch_down_conversions_total"),
    );
    if version.starts_with("0.") {
        assert!(up >= codecs.len() as u64, "{up} up-conversions");
        assert!(down >= codecs.len() as u64, "{down} down-conversions");
    } else {
        assert_eq!((up, down), (0, 0));
    }
}

/// Sarama's default, Kafka 0.8.2: message format 0 (no timestamps), plain
/// and wrapped in gzip and snappy message sets (lz4 came with 0.10),
/// Produce and Fetch v0.
#[test]
fn sarama_0_8_2_produces_and_consumes_message_format_0() {
    produces_and_consumes("0.8.2.0", &["none", "gzip", "snappy"], &[]);
}

/// Kafka 0.10.2: message format 1, Produce v2 and Fetch v3.
#[test]
fn sarama_0_10_2_produces_and_consumes_message_format_1() {
    produces_and_consumes("0.10.2.0", &["none", "gzip", "snappy", "lz4"], &[]);
}

/// Kafka 2.1: record batches with headers, in each codec a Produce v3 may
/// carry.
#[test]
fn sarama_2_1_produces_and_consumes_record_batches() {
    produces_and_consumes("2.1.0", &["none", "gzip", "snappy", "lz4"], &[]);
}

/// This sarama sends zstd in a Produce v3, which Kafka refuses (zstd needs
/// v7, KIP-110): it gets UNSUPPORTED_COMPRESSION_TYPE and nothing reaches
/// the log.
#[test]
fn sarama_zstd_below_produce_v7_is_refused() {
    let broker = Broker::start(1);
    let bootstrap = broker.bootstrap();
    let topic = "sarama-zstd";
    create_topic(&bootstrap, topic, 1, &[]);
    let output = sarama()
        .args(["produce-consume", &bootstrap, topic, "2.1.0", "zstd", "10"])
        .output()
        .expect("run sarama-client");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not support the compression type"),
        "{stderr}"
    );
    assert_eq!(watermarks(&bootstrap, topic, 0), (0, 0));
}

/// Sarama's idempotent producer (InitProducerId, sequence numbers per
/// partition, one request in flight).
#[test]
fn sarama_idempotent_producer() {
    produces_and_consumes("2.1.0", &["lz4"], &["idempotent"]);
}

/// Two sarama members of one group at `version` consume a topic someone
/// else filled, marking every message: each message arrives (once, as
/// nothing failed), both members joined, and the offsets they committed
/// at close are every partition's end.
fn group_consumes_and_commits(version: &str) {
    let broker = Broker::start(2);
    let bootstrap = broker.bootstrap();
    let topic = format!("sarama-group-{}", version.replace('.', "-"));
    let count = 300;
    create_topic(&bootstrap, &topic, 4, &[]);
    let msgs: Vec<Msg> = (0..count)
        .map(|i| Msg::value(format!("g-{i:05}")).to(i % 4))
        .collect();
    produce(&producer_config(&bootstrap), &topic, &msgs);
    let result = run(
        &broker,
        &[
            "group",
            &bootstrap,
            &topic,
            "sarama-group",
            version,
            &count.to_string(),
        ],
    );
    let mut consumed = common::clients::strings(&result, "consumed");
    consumed.sort();
    let expected: Vec<String> = (0..count).map(|i| format!("g-{i:05}")).collect();
    assert_eq!(consumed, expected, "each message once: {result}");
    assert_eq!(result["members"], 2, "{result}");
    let committed = result["committed"].as_object().unwrap();
    for p in 0..4 {
        let end = watermarks(&bootstrap, &topic, p).1;
        assert_eq!(end, i64::from(count / 4));
        assert_eq!(
            committed[&p.to_string()].as_i64(),
            Some(end),
            "partition {p}'s commit: {result}"
        );
    }
}

/// The group APIs of Kafka 0.10.2 (JoinGroup v1, OffsetCommit v2).
#[test]
fn sarama_0_10_2_group_consumes_and_commits() {
    group_consumes_and_commits("0.10.2.0");
}

/// The group APIs of Kafka 2.1 (JoinGroup v3, OffsetCommit v4).
#[test]
fn sarama_2_1_group_consumes_and_commits() {
    group_consumes_and_commits("2.1.0");
}

/// Sarama's cluster admin: a topic created with a config (and refused the
/// second time), its config read back, replaced (AlterConfigs v0) and read
/// again, grown to 4 partitions, the cluster and the groups listed, the
/// topic deleted.
#[test]
fn sarama_admin_creates_describes_grows_and_deletes_a_topic() {
    let broker = Broker::start(2);
    let bootstrap = broker.bootstrap();
    let result = run(&broker, &["admin", &bootstrap, "sarama-admin", "2.1.0"]);
    let again = result["create_again_error"].as_str().unwrap();
    assert!(
        again.starts_with("kafka server: Topic with this name already exists."),
        "{result}"
    );
    assert_eq!(result["configs"]["retention.ms"], "3600000", "{result}");
    // AlterConfigs v0 replaced the topic's configs with the two it named.
    let altered = result["altered_configs"].as_object().unwrap();
    assert_eq!(altered.len(), 2, "{result}");
    assert_eq!(altered["retention.ms"], "7200000", "{result}");
    assert_eq!(altered["cleanup.policy"], "compact", "{result}");
    assert_eq!(result["partitions"], 4, "{result}");
    assert_eq!(
        result["after_delete_error"],
        "kafka server: Request was for a topic or partition that does not exist on this broker.",
        "{result}"
    );
    assert!(!topic_partition_counts(&bootstrap).contains_key("sarama-admin"));
}

/// Sarama's idempotent producer re-routes to a new leader: with the
/// partition leader of a replicated topic killed between two halves of its
/// sends, every message it saw acknowledged is read back once, in order.
#[test]
fn sarama_follows_a_new_leader() {
    let mut command = sarama();
    command.arg("failover");
    common::clients::client_follows_a_new_leader(command, "sarama-failover");
}

/// kafka-go 0.2.1's Writer (Produce v2, message format 1, its hash
/// balancer) fills a topic of 4 partitions and two of its Readers in one
/// group (JoinGroup v1, SyncGroup v0, Fetch v2, OffsetCommit v2) read it,
/// committing each message: every message arrives, each key in one
/// partition, each partition's offsets dense, and the group's commits are
/// every partition's end.
#[test]
fn kafka_go_writes_and_reads_in_a_group() {
    let broker = Broker::start(2);
    let bootstrap = broker.bootstrap();
    let (topic, group, count) = ("kafka-go", "kafka-go-group", 400);
    create_topic(&bootstrap, topic, 4, &[]);
    let output = go_client("kafka-go-client")
        .args([&bootstrap, topic, group, &count.to_string()])
        .output()
        .expect("run kafka-go-client");
    let result = json_result(&output, &broker);
    let mut by_value = std::collections::BTreeMap::new();
    for entry in common::clients::strings(&result, "consumed") {
        let (key, rest) = entry.split_once('=').unwrap();
        let (value, at) = rest.split_once('@').unwrap();
        let (p, o) = at.split_once('/').unwrap();
        let at: (i32, i64) = (p.parse().unwrap(), o.parse().unwrap());
        let n: usize = value[2..].parse().unwrap();
        assert_eq!(key, format!("k-{}", n % 13), "{entry}");
        let first = *by_value.entry(value.to_string()).or_insert(at);
        assert_eq!(first, at, "{value} read at one place");
    }
    let values: Vec<&String> = by_value.keys().collect();
    let expected: Vec<String> = (0..count).map(|i| format!("v-{i:05}")).collect();
    assert_eq!(values, expected.iter().collect::<Vec<_>>(), "every message");
    let mut key_partition = std::collections::BTreeMap::new();
    for (value, (p, _)) in &by_value {
        let n: usize = value[2..].parse().unwrap();
        let first = *key_partition.entry(n % 13).or_insert(*p);
        assert_eq!(first, *p, "key k-{} in one partition", n % 13);
    }
    let consumer: rdkafka::consumer::BaseConsumer = consumer_config(&bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let committed = committed_offsets(&consumer, topic, 4);
    for p in 0..4 {
        let mut offsets: Vec<i64> = by_value
            .values()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        offsets.sort();
        let dense: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, dense, "partition {p}");
        let end = watermarks(&bootstrap, topic, p).1;
        assert_eq!(end, offsets.len() as i64);
        assert_eq!(committed.get(&p), Some(&end), "partition {p}'s commit");
    }
}

/// Every ClusterAdmin method of sarama 1.22 against one broker
/// (tests/clients/sarama_admin_tour): each case (topics with and without
/// replica assignments, partitions added, records deleted, configs, ACLs,
/// groups and their offsets) answered as Kafka answers it, at Kafka 2.1's
/// request versions and the older ones sarama speaks.
#[test]
fn sarama_cluster_admin_tour() {
    let broker = Broker::start(1);
    let output = go_client("sarama-admin-tour")
        .arg(broker.bootstrap())
        .output()
        .expect("run sarama-admin-tour");
    let r = json_result(&output, &broker);
    for (method, outcome) in r.as_object().unwrap() {
        assert_eq!(outcome["ok"], true, "{method}: {outcome}");
    }
    for method in [
        "CreateTopic",
        "CreatePartitions",
        "DeleteRecords",
        "DeleteConsumerGroup",
    ] {
        let cases = r[method]["result"].as_array().unwrap();
        assert!(!cases.is_empty(), "{method}: {r}");
        // A case marked `note` records a difference Kafka's answer would
        // not show either way (a client quirk, a config Sluice lacks).
        let failed: Vec<&serde_json::Value> = cases
            .iter()
            .filter(|c| c.get("note").is_none() && c["ok"] != true)
            .collect();
        assert!(failed.is_empty(), "{method}: {failed:?}");
    }
}

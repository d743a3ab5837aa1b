//! Kafka compatibility of config changes and produce refusals: the legacy
//! whole-set AlterConfigs, IncrementalAlterConfigs APPEND/SUBTRACT on list
//! configs, every topic config Kafka names, and Produce v8+ record_errors
//! for keyless records on compacted topics and for timestamps out of range.

mod common;

use std::collections::BTreeMap;

use common::raw::{err, produce_request, str_bytes, RawClient};
use common::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    alter_configs_request, AlterConfigsRequest, DescribeConfigsRequest, ProduceResponse,
};
use rdkafka::admin::{AlterConfig, OwnedResourceSpecifier, ResourceSpecifier};
use sluice::compression::{recompress_batch, Codec};

/// Kafka's ConfigResource.Type values.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Kafka's ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's AlterConfigOp.OpType values.
const OP_SET: i8 = 0;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;
/// Kafka error codes not in `raw::err`.
const INVALID_REQUEST: i16 = 42;
const INVALID_RECORD: i16 = 87;

/// A topic's configs as DescribeConfigs v4 answers them: name -> (value, source).
fn describe(c: &mut RawClient, topic: &str) -> BTreeMap<String, (Option<String>, i8)> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(str_bytes(topic))
            .with_configuration_keys(None)]);
    let resp = c.call(4, &req);
    assert_eq!(resp.results.len(), 1);
    let result = &resp.results[0];
    assert_eq!(result.error_code, err::NONE, "describing {topic}");
    result
        .configs
        .iter()
        .map(|e| {
            let value = e.value.as_ref().map(|v| v.to_string());
            (e.name.to_string(), (value, e.config_source))
        })
        .collect()
}

/// The topic's explicitly set configs (source TOPIC).
fn topic_set(c: &mut RawClient, topic: &str) -> BTreeMap<String, String> {
    describe(c, topic)
        .into_iter()
        .filter(|(_, (_, source))| *source == SOURCE_TOPIC)
        .map(|(k, (v, _))| (k, v.expect("a set config has a value")))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A legacy AlterConfigs resource: (type, name, (key, value) entries).
type LegacyResource<'a> = (i8, &'a str, &'a [(&'a str, Option<&'a str>)]);

/// Sends AlterConfigs at `version`; returns each resource's (error, message).
fn legacy_alter(
    c: &mut RawClient,
    version: i16,
    validate_only: bool,
    resources: &[LegacyResource<'_>],
) -> Vec<(i16, Option<String>)> {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let req = AlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(
            resources
                .iter()
                .map(|(kind, name, configs)| {
                    AlterConfigsResource::default()
                        .with_resource_type(*kind)
                        .with_resource_name(str_bytes(name))
                        .with_configs(
                            configs
                                .iter()
                                .map(|(k, v)| {
                                    AlterableConfig::default()
                                        .with_name(str_bytes(k))
                                        .with_value(v.map(str_bytes))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let resp = c.call(version, &req);
    assert_eq!(resp.responses.len(), resources.len());
    resp.responses
        .iter()
        .zip(resources)
        .map(|(r, (kind, name, _))| {
            assert_eq!((r.resource_type, r.resource_name.as_str()), (*kind, *name));
            (
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

/// Sends IncrementalAlterConfigs v1 for one topic with (key, op, value)
/// operations; returns its (error, message).
fn incremental(
    c: &mut RawClient,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    c.incremental_alter(1, TOPIC, topic, ops)
}

/// `topic`'s cleanup.policy as DescribeConfigs reports it.
fn cleanup_policy(c: &mut RawClient, topic: &str) -> String {
    describe(c, topic)["cleanup.policy"]
        .0
        .clone()
        .expect("cleanup.policy has a value")
}

/// AlterConfigs (every version) makes the given configs the topic's whole
/// set: keys it does not name go back to their defaults.
#[test]
fn alter_configs_replaces_the_whole_topic_config_set() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(&bs);
    for version in 0..=2 {
        let topic = format!("replace-v{version}");
        let before = [("retention.ms", "1000"), ("cleanup.policy", "compact")];
        create_topic(&bs, &topic, 1, &before);
        assert_eq!(topic_set(&mut c, &topic), owned(&before));
        let entries = [("segment.ms", Some("5000")), ("retention.ms", Some("2000"))];
        let answers = legacy_alter(&mut c, version, false, &[(TOPIC, &topic, &entries)]);
        assert_eq!(answers, [(err::NONE, None)], "v{version}");
        let after = describe(&mut c, &topic);
        assert_eq!(
            topic_set(&mut c, &topic),
            owned(&[("segment.ms", "5000"), ("retention.ms", "2000")]),
            "v{version}"
        );
        assert_eq!(
            after["cleanup.policy"],
            (Some("delete".into()), SOURCE_DEFAULT),
            "v{version}: a key not named goes back to its default"
        );
        // The empty set clears every topic config.
        let answers = legacy_alter(&mut c, version, false, &[(TOPIC, &topic, &[])]);
        assert_eq!(answers, [(err::NONE, None)], "v{version}");
        assert!(topic_set(&mut c, &topic).is_empty(), "v{version}");
    }
}

/// validate_only checks a whole-set replace and changes nothing.
#[test]
fn alter_configs_validate_only_changes_nothing() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let before = [("retention.ms", "1000")];
    create_topic(&bs, "validate-only", 1, &before);
    let mut c = RawClient::connect(&bs);
    let good = [("segment.ms", Some("5000"))];
    let bad = [("segment.ms", Some("soon"))];
    let answers = legacy_alter(&mut c, 1, true, &[(TOPIC, "validate-only", &good)]);
    assert_eq!(answers, [(err::NONE, None)]);
    let answers = legacy_alter(&mut c, 1, true, &[(TOPIC, "validate-only", &bad)]);
    assert_eq!(answers[0].0, err::INVALID_CONFIG);
    assert_eq!(topic_set(&mut c, "validate-only"), owned(&before));
}

/// AlterConfigs refuses per resource as Kafka does, and a refused resource
/// keeps its configs while the others in the request still change.
#[test]
fn alter_configs_refusals_are_kafka_codes_per_resource() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    let before = [("retention.ms", "1000")];
    create_topic(&bs, "refusals", 1, &before);
    create_topic(&bs, "accepted", 1, &[]);
    let mut c = RawClient::connect(&bs);
    let ok = [("segment.ms", Some("5000"))];
    let bad_value = [("retention.ms", Some("-7"))];
    let unknown_key = [("no.such.config", Some("1"))];
    let duplicate = [("segment.ms", Some("1")), ("segment.ms", Some("2"))];
    let null_value = [("segment.ms", None)];
    let answers = legacy_alter(
        &mut c,
        2,
        false,
        &[
            (TOPIC, "no-such-topic", &ok),
            (TOPIC, "refusals", &bad_value),
            (TOPIC, "refusals", &unknown_key),
            (TOPIC, "refusals", &duplicate),
            (TOPIC, "refusals", &null_value),
            (BROKER, "0", &[("num.io.threads", Some("1"))]),
            (TOPIC, "accepted", &ok),
        ],
    );
    let codes: Vec<i16> = answers.iter().map(|(code, _)| *code).collect();
    assert_eq!(
        codes,
        [
            err::UNKNOWN_TOPIC_OR_PARTITION,
            err::INVALID_CONFIG,
            err::INVALID_CONFIG,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            err::NONE,
        ],
        "{answers:?}"
    );
    assert!(answers[..6].iter().all(|(_, message)| message.is_some()));
    assert_eq!(topic_set(&mut c, "refusals"), owned(&before));
    assert_eq!(
        topic_set(&mut c, "accepted"),
        owned(&[("segment.ms", "5000")])
    );
}

/// librdkafka's alter_configs (the legacy API) resets what it does not set.
#[test]
fn librdkafka_alter_configs_replaces_the_set() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "rdkafka-alter", 1, &[("retention.ms", "1000")]);
    let admin = admin(&bs);
    let alter =
        AlterConfig::new(ResourceSpecifier::Topic("rdkafka-alter")).set("segment.ms", "7000");
    let results = futures::executor::block_on(admin.alter_configs([&alter], &admin_opts()))
        .expect("AlterConfigs request failed");
    assert_eq!(
        results,
        [Ok(OwnedResourceSpecifier::Topic("rdkafka-alter".into()))]
    );
    let configs = describe_topic_config(&bs, "rdkafka-alter");
    assert_eq!(configs["segment.ms"].as_deref(), Some("7000"));
    let default = sluice::config::BrokerConfig::default().log.retention_ms;
    assert_eq!(
        configs["retention.ms"].as_deref(),
        Some(default.to_string().as_str())
    );
}

/// APPEND and SUBTRACT edit cleanup.policy as a list, starting from the
/// default; the last policy out leaves the empty list, which compacts
/// nothing (keyless records are taken again).
#[test]
fn incremental_append_and_subtract_edit_cleanup_policy() {
    let broker = Broker::start(2);
    let bs = broker.bootstrap();
    create_topic(&bs, "policy", 1, &[]);
    let mut c = RawClient::connect(&bs);
    let key = "cleanup.policy";
    let steps = [
        (OP_APPEND, "compact", "delete,compact"),
        (OP_APPEND, "compact", "delete,compact"),
        (OP_SUBTRACT, "delete", "compact"),
        (OP_SUBTRACT, "delete", "compact"),
        (OP_APPEND, "delete,compact", "compact,delete"),
        (OP_SUBTRACT, "compact,delete", ""),
    ];
    for (op, value, expected) in steps {
        let (code, message) = incremental(&mut c, "policy", &[(key, op, Some(value))]);
        assert_eq!(code, err::NONE, "op {op} {value}: {message:?}");
        assert_eq!(
            cleanup_policy(&mut c, "policy"),
            expected,
            "op {op} {value}"
        );
    }
    let ts = now_ms();
    let keyless = sluice::record::build::build_batch(0, &[(None, Some(b"v".as_slice()), ts, &[])]);
    assert_eq!(c.produce_batch("policy", 0, keyless), (err::NONE, 0));
}

/// APPEND and SUBTRACT are refused on non-list and unknown configs, with
/// values a list cannot hold, and without a value; nothing changes.
#[test]
fn incremental_append_and_subtract_refusals() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "list-refusals", 1, &[("retention.ms", "1000")]);
    let mut c = RawClient::connect(&bs);
    let refused = [
        (("retention.ms", OP_APPEND, Some("5")), err::INVALID_CONFIG),
        (
            ("retention.ms", OP_SUBTRACT, Some("1000")),
            err::INVALID_CONFIG,
        ),
        (
            ("no.such.config", OP_APPEND, Some("x")),
            err::INVALID_CONFIG,
        ),
        (
            ("cleanup.policy", OP_APPEND, Some("archive")),
            err::INVALID_CONFIG,
        ),
        (("cleanup.policy", OP_APPEND, None), INVALID_REQUEST),
        (("cleanup.policy", 9, Some("compact")), INVALID_REQUEST),
    ];
    for (op, expected) in refused {
        let (code, message) = incremental(&mut c, "list-refusals", &[op]);
        assert_eq!(code, expected, "{op:?}: {message:?}");
        assert!(message.is_some(), "{op:?} says why");
    }
    let twice = [
        ("cleanup.policy", OP_APPEND, Some("compact")),
        ("cleanup.policy", OP_SET, Some("delete")),
    ];
    assert_eq!(
        incremental(&mut c, "list-refusals", &twice).0,
        INVALID_REQUEST
    );
    assert_eq!(
        topic_set(&mut c, "list-refusals"),
        owned(&[("retention.ms", "1000")])
    );
}

/// Produces one batch with Produce `version` and returns the partition's answer.
fn produce_at(
    c: &mut RawClient,
    version: i16,
    topic: &str,
    batch: bytes::Bytes,
) -> PartitionProduceResponse {
    let resp: ProduceResponse = c.call(version, &produce_request(topic, -1, vec![(0, batch)]));
    resp.responses[0].partition_responses[0].clone()
}

/// Produce v8+ names every keyless record refused by a compacted topic in
/// record_errors (index within the partition's records) with Kafka's
/// message; older versions get the bare INVALID_RECORD.
#[test]
fn keyless_records_on_compacted_topics_get_record_errors() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "compacted-errors";
    create_topic(&bs, topic, 1, &[("cleanup.policy", "compact")]);
    let mut c = RawClient::connect(&bs);
    let (k, v, ts) = (Some(b"k".as_slice()), Some(b"v".as_slice()), now_ms());
    let batch = sluice::record::build::build_batch(
        0,
        &[
            (k, v, ts, &[]),
            (None, v, ts, &[]),
            (k, v, ts, &[]),
            (None, v, ts, &[]),
        ],
    );
    let reason = "Compacted topic cannot accept message without key in topic partition \
                  compacted-errors-0.";
    for version in [8, 9] {
        let p = produce_at(&mut c, version, topic, batch.clone());
        assert_eq!(p.error_code, INVALID_RECORD, "v{version}");
        let errors: Vec<(i32, Option<String>)> = p
            .record_errors
            .iter()
            .map(|e| {
                let message = e.batch_index_error_message.as_ref().map(|m| m.to_string());
                (e.batch_index, message)
            })
            .collect();
        assert_eq!(
            errors,
            [(1, Some(reason.to_string())), (3, Some(reason.to_string()))],
            "v{version}"
        );
        let message = p.error_message.map(|m| m.to_string()).unwrap_or_default();
        assert!(
            message.contains("2 record errors") && message.contains(reason),
            "v{version}: {message}"
        );
    }
    let p = produce_at(&mut c, 7, topic, batch);
    assert_eq!(p.error_code, INVALID_RECORD);
    assert!(p.record_errors.is_empty() && p.error_message.is_none());
    assert_eq!(
        c.log_end_offset(topic, 0),
        0,
        "nothing of a refused batch is in the log"
    );
}

/// `kafka-reassign-partitions.sh --verify` deletes the replication
/// throttles of every topic and broker of a move, set or not: deleting them
/// succeeds and changes nothing else. Set, they are validated as Kafka
/// validates them, stored, and described; the throttle on moves between a
/// broker's log dirs is refused (one data dir).
#[test]
fn replication_throttles_are_configs_kafka_validates() {
    const OP_DELETE: i8 = 1;
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "moved", 1, &[("retention.ms", "1000")]);
    let mut c = RawClient::connect(&bs);
    let topic_deletes = [
        ("leader.replication.throttled.replicas", OP_DELETE, None),
        ("follower.replication.throttled.replicas", OP_DELETE, None),
    ];
    assert_eq!(
        incremental(&mut c, "moved", &topic_deletes),
        (err::NONE, None)
    );
    let broker_deletes = [
        ("leader.replication.throttled.rate", OP_DELETE, None),
        ("follower.replication.throttled.rate", OP_DELETE, None),
        (
            "replica.alter.log.dirs.io.max.bytes.per.second",
            OP_DELETE,
            None,
        ),
    ];
    assert_eq!(
        c.incremental_alter(1, BROKER, "0", &broker_deletes).0,
        err::NONE
    );
    assert_eq!(
        topic_set(&mut c, "moved"),
        owned(&[("retention.ms", "1000")])
    );

    let set = [(
        "leader.replication.throttled.replicas",
        OP_SET,
        Some("0:0,0:1"),
    )];
    assert_eq!(incremental(&mut c, "moved", &set).0, err::NONE);
    let bad = [("follower.replication.throttled.replicas", OP_SET, Some("0"))];
    assert_eq!(incremental(&mut c, "moved", &bad).0, err::INVALID_CONFIG);
    assert_eq!(
        topic_set(&mut c, "moved"),
        owned(&[
            ("leader.replication.throttled.replicas", "0:0,0:1"),
            ("retention.ms", "1000")
        ])
    );
    let rate = [("leader.replication.throttled.rate", OP_SET, Some("1000"))];
    assert_eq!(c.incremental_alter(1, BROKER, "0", &rate).0, err::NONE);
    let negative = [("follower.replication.throttled.rate", OP_SET, Some("-1"))];
    assert_eq!(
        c.incremental_alter(1, BROKER, "0", &negative).0,
        err::INVALID_CONFIG
    );
    let dirs = [(
        "replica.alter.log.dirs.io.max.bytes.per.second",
        OP_SET,
        Some("1000"),
    )];
    assert_eq!(
        c.incremental_alter(1, BROKER, "0", &dirs).0,
        err::INVALID_CONFIG
    );
}

/// ListConfigResources (KIP-1142): v1 lists the brokers, their loggers
/// and the topics (every type when none is named, one type when named), no
/// group or client metrics resources (none exist here); a type Kafka does
/// not list (UNKNOWN) is refused with UNSUPPORTED_VERSION; v0
/// (ListClientMetricsResources) lists client metrics resources alone.
#[test]
fn list_config_resources_lists_brokers_and_topics() {
    use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

    const UNSUPPORTED_VERSION: i16 = 35;
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "lcr-b", 1, &[]);
    create_topic(&bs, "lcr-a", 1, &[]);
    let mut c = RawClient::connect(&bs);
    let listed = |r: &ListConfigResourcesResponse| -> Vec<(i8, String)> {
        assert_eq!(r.error_code, err::NONE, "{r:?}");
        r.config_resources
            .iter()
            .map(|c| (c.resource_type, c.resource_name.to_string()))
            .collect()
    };
    let of = |types: Vec<i8>| ListConfigResourcesRequest::default().with_resource_types(types);
    let everything = vec![
        (4, "0".to_string()),
        (8, "0".to_string()),
        (2, "lcr-a".to_string()),
        (2, "lcr-b".to_string()),
    ];
    assert_eq!(listed(&c.call(1, &of(vec![]))), everything);
    assert_eq!(listed(&c.call(1, &of(vec![2, 4, 8, 16, 32]))), everything);
    assert_eq!(listed(&c.call(1, &of(vec![2]))), everything[2..]);
    assert_eq!(listed(&c.call(1, &of(vec![8]))), everything[1..2]);
    assert_eq!(listed(&c.call(1, &of(vec![32]))), []);
    let unknown = c.call(1, &of(vec![2, 0]));
    assert_eq!(unknown.error_code, UNSUPPORTED_VERSION);
    assert!(unknown.config_resources.is_empty());
    assert_eq!(listed(&c.call(0, &of(vec![]))), []);
}

/// CreateTopics v5+ answers each created topic with its configs (KIP-525):
/// the ones the request set from the topic, the rest from the broker's
/// defaults; a topic only validated answers the same.
#[test]
fn create_topics_answers_the_created_topics_configs() {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::CreateTopicsRequest;

    const SOURCE_TOPIC: i8 = 1;
    const SOURCE_DEFAULT: i8 = 5;
    let broker = Broker::start(1);
    let mut c = RawClient::connect(&broker.bootstrap());
    let create = |name: &str, validate_only: bool| {
        CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only)
            .with_topics(vec![CreatableTopic::default()
                .with_name(raw::topic_name(name))
                .with_num_partitions(2)
                .with_replication_factor(-1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(raw::str_bytes("retention.ms"))
                    .with_value(Some(raw::str_bytes("3600000")))])])
    };
    for (name, validate_only) in [("ct-configs", false), ("ct-validated", true)] {
        let response = c.call(7, &create(name, validate_only));
        let result = &response.topics[0];
        assert_eq!(result.error_code, err::NONE, "{response:?}");
        assert_eq!(result.topic_config_error_code, err::NONE);
        let configs: BTreeMap<String, (Option<String>, i8)> = result
            .configs
            .as_ref()
            .expect("configs from v5")
            .iter()
            .map(|c| {
                let value = c.value.as_ref().map(|v| v.to_string());
                (c.name.to_string(), (value, c.config_source))
            })
            .collect();
        assert_eq!(
            configs["retention.ms"],
            (Some("3600000".into()), SOURCE_TOPIC),
            "{name}"
        );
        assert_eq!(
            configs["cleanup.policy"],
            (Some("delete".into()), SOURCE_DEFAULT)
        );
        assert_eq!(configs.len(), sluice::topic_configs::TOPIC_CONFIGS.len());
    }
    // v4, whose result has no configs, creates as before.
    let v4 = c.call(4, &create("ct-v4", false));
    assert_eq!(v4.topics[0].error_code, err::NONE);
}

/// Every topic config of Kafka 4.3's `TopicConfig` (and the two replication
/// throttles), as `javap -constants` lists them from kafka-clients.
const KAFKA_TOPIC_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.downconversion.enable",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// Kafka's ConfigEntry.ConfigType values.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;

/// A topic created with any of Kafka's topic configs keeps and describes
/// them (typed as Kafka types them); a bad value or tiered storage (which
/// this broker does not have) is refused with INVALID_CONFIG, as a Kafka
/// broker without it refuses it.
#[test]
fn every_kafka_topic_config_is_known_checked_and_described() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let set = [
        ("file.delete.delay.ms", "1000"),
        ("local.retention.bytes", "-2"),
        ("local.retention.ms", "3600000"),
        ("max.compaction.lag.ms", "600000"),
        ("message.downconversion.enable", "false"),
        ("message.timestamp.after.max.ms", "60000"),
        ("message.timestamp.before.max.ms", "86400000"),
        ("min.cleanable.dirty.ratio", "0.2"),
        ("min.compaction.lag.ms", "1000"),
        ("preallocate", "true"),
        ("remote.log.copy.disable", "false"),
        ("remote.log.delete.on.disable", "false"),
        ("remote.storage.enable", "false"),
        ("segment.index.bytes", "4096"),
        ("segment.jitter.ms", "100"),
    ];
    create_topic(&bs, "every-config", 1, &set);
    let mut c = RawClient::connect(&bs);
    let described = describe(&mut c, "every-config");
    let names: Vec<&str> = described.keys().map(String::as_str).collect();
    assert_eq!(names, KAFKA_TOPIC_CONFIGS);
    assert_eq!(topic_set(&mut c, "every-config"), owned(&set));
    assert_eq!(
        described["message.timestamp.after.max.ms"],
        (Some("60000".into()), SOURCE_TOPIC)
    );

    // Typed as Kafka types them; documented when asked (v3+), not otherwise.
    let mut typed = |include_documentation: bool| {
        let req = DescribeConfigsRequest::default()
            .with_include_documentation(include_documentation)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(str_bytes("every-config"))
                .with_configuration_keys(Some(vec![
                    str_bytes("min.cleanable.dirty.ratio"),
                    str_bytes("preallocate"),
                    str_bytes("segment.jitter.ms"),
                ]))]);
        let resp: kafka_protocol::messages::DescribeConfigsResponse = c.call(4, &req);
        resp.results[0].configs.clone()
    };
    let documented = typed(true);
    assert!(
        documented
            .iter()
            .all(|e| e.documentation.as_ref().is_some_and(|d| !d.is_empty())),
        "{documented:?}"
    );
    assert!(typed(false).iter().all(|e| e.documentation.is_none()));
    let types: Vec<(String, i8)> = documented
        .iter()
        .map(|e| (e.name.to_string(), e.config_type))
        .collect();
    assert_eq!(
        types,
        [
            ("min.cleanable.dirty.ratio".to_string(), TYPE_DOUBLE),
            ("preallocate".to_string(), TYPE_BOOLEAN),
            ("segment.jitter.ms".to_string(), TYPE_LONG),
        ]
    );

    for (key, value, why) in [
        (
            "remote.storage.enable",
            "true",
            "Tiered Storage functionality is disabled",
        ),
        ("min.cleanable.dirty.ratio", "1.5", "out of range"),
        ("max.compaction.lag.ms", "0", "out of range"),
        ("preallocate", "maybe", "expected true or false"),
        ("message.timestamp.before.max.ms", "-1", "out of range"),
    ] {
        let (code, message) = incremental(&mut c, "every-config", &[(key, OP_SET, Some(value))]);
        assert_eq!(code, err::INVALID_CONFIG, "{key}={value}");
        let message = message.unwrap_or_default();
        assert!(message.contains(why), "{key}={value}: {message}");
    }
    assert_eq!(
        topic_set(&mut c, "every-config"),
        owned(&set),
        "nothing refused stored"
    );
}

/// Kafka's INVALID_TIMESTAMP.
const INVALID_TIMESTAMP: i16 = 32;

/// `message.timestamp.before.max.ms` and `.after.max.ms` (Kafka 4's default:
/// an hour ahead): a batch holding a record further from the broker's
/// clock is refused whole with INVALID_TIMESTAMP and a record error for
/// each such record, compressed or not, through a real producer too; a
/// `LogAppendTime` topic takes any timestamp, since the broker's replaces it.
#[test]
fn records_out_of_the_timestamp_range_are_refused() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let day = 86_400_000;
    create_topic(
        &bs,
        "stamped",
        1,
        &[("message.timestamp.before.max.ms", "3600000")],
    );
    create_topic(
        &bs,
        "appended",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let mut c = RawClient::connect(&bs);
    let (k, v) = (Some(b"k".as_slice()), Some(b"v".as_slice()));
    let now = now_ms();
    let batch = |timestamps: &[i64]| {
        let specs: Vec<_> = timestamps.iter().map(|&ts| (k, v, ts, &[][..])).collect();
        sluice::record::build::build_batch(0, &specs)
    };
    let stale = batch(&[now, now - day, now]);
    let ahead = batch(&[now + day]);
    for (records, index) in [(stale.clone(), 1), (ahead.clone(), 0)] {
        for codec in [Codec::None, Codec::Zstd] {
            let records = recompress_batch(&records, codec, None, 1 << 20).unwrap();
            let p = produce_at(&mut c, 9, "stamped", records);
            assert_eq!(p.error_code, INVALID_TIMESTAMP, "{codec:?}");
            let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
            assert_eq!(indexes, [index], "{codec:?}");
            let message = p.error_message.map(|m| m.to_string()).unwrap_or_default();
            assert!(message.contains("out of range"), "{message}");
        }
    }
    assert_eq!(
        c.log_end_offset("stamped", 0),
        0,
        "nothing refused is in the log"
    );
    let p = produce_at(&mut c, 9, "stamped", batch(&[now - 60_000, now]));
    assert_eq!(p.error_code, err::NONE);
    for records in [stale, ahead] {
        let p = produce_at(&mut c, 9, "appended", records);
        assert_eq!(p.error_code, err::NONE, "LogAppendTime takes any");
    }

    // librdkafka sees the refusal as Kafka's error.
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    // The send's error code, if any.
    let send = |ts: i64| {
        let record = rdkafka::producer::FutureRecord::<str, str>::to("stamped")
            .payload("p")
            .timestamp(ts);
        let sent =
            futures::executor::block_on(producer.send(record, std::time::Duration::from_secs(10)));
        sent.err().map(|(e, _)| e.rdkafka_error_code())
    };
    assert_eq!(
        send(now_ms() - day),
        Some(Some(rdkafka::types::RDKafkaErrorCode::InvalidTimestamp)),
        "a day old"
    );
    assert_eq!(send(now_ms()), None, "now");
    assert_eq!(c.log_end_offset("stamped", 0), 3);
}

/// A Kafka node's own `server.properties` (Kafka 4's shipped file, with a
/// day's retention and three partitions per new topic; its advertised
/// addresses left out, as the test binds its own port) starts Sluice:
/// clients produce and consume on its listener, the topic defaults are
/// the file's, and the settings Sluice has no use for are named in the log.
#[test]
fn a_kafka_server_properties_file_starts_the_broker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("server.properties");
    std::fs::write(
        &path,
        "# Kafka 4's config/server.properties, as a Kafka node runs with it\n\
         process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.bootstrap.servers=localhost:9093\n\
         listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n\
         inter.broker.listener.name=PLAINTEXT\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n\
         num.network.threads=3\n\
         num.io.threads=8\n\
         socket.request.max.bytes=104857600\n\
         log.dirs=/tmp/kraft-combined-logs\n\
         num.partitions=3\n\
         offsets.topic.replication.factor=1\n\
         transaction.state.log.replication.factor=1\n\
         log.retention.hours=24\n\
         log.segment.bytes=1073741824\n\
         log.retention.check.interval.ms=300000\n",
    )
    .expect("write server.properties");
    // The test's own port and data dir (flags override the file), so no
    // advertised.listeners: the listener advertises where it is bound.
    let broker = Broker::start_with(
        1,
        &[
            "--config",
            path.to_str().expect("utf-8 path"),
            "--listener",
            "PLAINTEXT=PLAINTEXT://127.0.0.1:0",
        ],
    );
    let bs = broker.bootstrap();
    let d = produce_values(&bs, "from-properties", None, &["v".to_string()]);
    assert_eq!(d.len(), 1);
    assert_eq!(
        topic_partition_counts(&bs).get("from-properties"),
        Some(&3),
        "num.partitions=3"
    );
    let configs = describe_topic_config(&bs, "from-properties");
    assert_eq!(
        configs.get("retention.ms").cloned().flatten().as_deref(),
        Some("86400000"),
        "log.retention.hours=24"
    );
    let log = broker.stderr_tail(200);
    assert!(
        log.contains(
            "Kafka settings Sluice has no use for, ignored: num.io.threads, num.network.threads"
        ),
        "{log}"
    );
}

/// Three nodes started from Kafka-style `server.properties` files alone
/// (roles, voter list, listeners, replication defaults) form one cluster:
/// a topic auto-created through one node has the file's partitions and
/// replication factor, every replica in sync, and reads back.
#[test]
fn three_kafka_server_properties_files_start_a_cluster() {
    use common::cluster::free_port;
    let dir = tempfile::tempdir().expect("temp dir");
    let voters: Vec<(i32, u16)> = (1..=3).map(|id| (id, free_port())).collect();
    let voter_list = voters
        .iter()
        .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let starting: Vec<_> = voters
        .iter()
        .map(|&(id, port)| {
            let path = dir.path().join(format!("server-{id}.properties"));
            std::fs::write(
                &path,
                format!(
                    "process.roles=broker,controller\n\
                     node.id={id}\n\
                     controller.quorum.voters={voter_list}\n\
                     listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}\n\
                     controller.listener.names=CONTROLLER\n\
                     listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
                     inter.broker.listener.name=PLAINTEXT\n\
                     num.partitions=2\n\
                     default.replication.factor=3\n\
                     min.insync.replicas=2\n\
                     offsets.topic.replication.factor=3\n"
                ),
            )
            .expect("write server.properties");
            // Each node waits for a quorum before it is ready: start all at once.
            std::thread::spawn(move || {
                Broker::start_with(1, &["--config", path.to_str().expect("utf-8 path")])
            })
        })
        .collect();
    let nodes: Vec<Broker> = starting
        .into_iter()
        .map(|t| t.join().expect("a node started"))
        .collect();
    let bs = nodes[0].bootstrap();
    let d = produce_values(&bs, "cluster-from-properties", None, &["v".to_string()]);
    assert_eq!(d.len(), 1);
    use rdkafka::consumer::Consumer;
    let consumer = query_consumer(&bs);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metadata = consumer
            .fetch_metadata(
                Some("cluster-from-properties"),
                std::time::Duration::from_secs(10),
            )
            .expect("metadata");
        let topic = &metadata.topics()[0];
        let in_sync = topic.partitions().len() == 2
            && topic
                .partitions()
                .iter()
                .all(|p| p.replicas().len() == 3 && p.isr().len() == 3);
        if in_sync {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "partitions {:?}",
            topic
                .partitions()
                .iter()
                .map(|p| (p.id(), p.replicas().to_vec(), p.isr().to_vec()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let got = consume_all(
        &bs,
        "cluster-from-properties",
        2,
        1,
        std::time::Duration::from_secs(30),
    );
    assert_eq!(payload_str(&got[0]), "v");
}

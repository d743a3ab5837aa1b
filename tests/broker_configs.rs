//! Dynamic broker configs: the topic defaults an operator changes at run
//! time through IncrementalAlterConfigs and AlterConfigs on the broker
//! resource ("" for the whole cluster, an id for one broker), described
//! with their sources, in effect on the produce path, kept across
//! restarts, and in a cluster carried through the metadata quorum to every
//! node.

mod common;

use std::collections::BTreeMap;

use common::cluster::{Cluster, WAIT};
use common::raw::{err, produce_request, str_bytes, RawClient};
use common::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{DescribeConfigsRequest, ProduceResponse};
use rdkafka::admin::{AlterConfig, ConfigSource, OwnedResourceSpecifier, ResourceSpecifier};

/// Kafka's ConfigResource.Type values.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Kafka's ConfigSource values.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const INVALID_REQUEST: i16 = 42;

/// Sends IncrementalAlterConfigs v1 for one broker resource; its (error, message).
fn alter_broker(
    c: &mut RawClient,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    c.incremental_alter(1, BROKER, name, ops)
}

/// A resource's configs as DescribeConfigs v4 answers them: name -> (value,
/// source, the synonym chain's sources), or the resource's error code.
type Described = BTreeMap<String, (Option<String>, i8, Vec<i8>)>;

fn describe(c: &mut RawClient, kind: i8, name: &str) -> Result<Described, i16> {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(str_bytes(name))
            .with_configuration_keys(None)]);
    let resp = c.call(4, &req);
    let result = &resp.results[0];
    if result.error_code != err::NONE {
        return Err(result.error_code);
    }
    Ok(result
        .configs
        .iter()
        .map(|e| {
            let value = e.value.as_ref().map(|v| v.to_string());
            let chain = e.synonyms.iter().map(|s| s.source).collect();
            (e.name.to_string(), (value, e.config_source, chain))
        })
        .collect())
}

/// Produces one record of `value_bytes` to partition 0; the error code.
fn produce_sized(c: &mut RawClient, topic: &str, value_bytes: usize) -> i16 {
    let batch = build_owned_batch(&[OwnedRecord {
        key: None,
        value: Some(vec![b'v'; value_bytes]),
        timestamp: now_ms(),
        headers: Vec::new(),
    }]);
    let resp: ProduceResponse = c.call(9, &produce_request(topic, -1, vec![(0, batch)]));
    resp.responses[0].partition_responses[0].error_code
}

/// The cluster-wide default applies to every topic without its own value,
/// a broker's own value wins over it, a topic's own config wins over both;
/// refusals change nothing; everything survives a restart.
#[test]
fn broker_configs_are_topic_defaults_set_at_run_time() {
    let mut broker = Broker::start(2);
    let bs = broker.bootstrap();
    create_topic(&bs, "plain", 1, &[]);
    create_topic(&bs, "own-limit", 1, &[("max.message.bytes", "100000")]);
    let mut c = RawClient::connect(&bs);
    assert_eq!(produce_sized(&mut c, "plain", 5_000), err::NONE);

    let set_default = alter_broker(&mut c, "", &[("message.max.bytes", OP_SET, Some("2000"))]);
    assert_eq!(set_default, (err::NONE, None));
    assert_eq!(
        produce_sized(&mut c, "plain", 5_000),
        err::MESSAGE_TOO_LARGE,
        "the cluster-wide default is in effect"
    );
    assert_eq!(produce_sized(&mut c, "own-limit", 5_000), err::NONE);
    let plain = describe(&mut c, TOPIC, "plain").unwrap();
    assert_eq!(
        plain["max.message.bytes"],
        (
            Some("2000".into()),
            SOURCE_DYNAMIC_DEFAULT_BROKER,
            vec![SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_DEFAULT]
        )
    );
    let own = describe(&mut c, TOPIC, "own-limit").unwrap();
    assert_eq!(own["max.message.bytes"].0.as_deref(), Some("100000"));
    assert_eq!(own["max.message.bytes"].1, SOURCE_TOPIC);

    // This broker's own value wins over the cluster default.
    let set_own = alter_broker(&mut c, "0", &[("message.max.bytes", OP_SET, Some("9000"))]);
    assert_eq!(set_own, (err::NONE, None));
    assert_eq!(produce_sized(&mut c, "plain", 5_000), err::NONE);
    let node = describe(&mut c, BROKER, "0").unwrap();
    assert_eq!(
        node["message.max.bytes"],
        (
            Some("9000".into()),
            SOURCE_DYNAMIC_BROKER,
            vec![
                SOURCE_DYNAMIC_BROKER,
                SOURCE_DYNAMIC_DEFAULT_BROKER,
                SOURCE_DEFAULT
            ]
        )
    );
    assert_eq!(node["log.retention.ms"].1, SOURCE_DEFAULT);
    let cluster = describe(&mut c, BROKER, "").unwrap();
    assert_eq!(
        cluster.len(),
        1,
        "only what is set cluster-wide: {cluster:?}"
    );
    assert_eq!(
        cluster["message.max.bytes"].0.as_deref(),
        Some("2000"),
        "{cluster:?}"
    );

    // Refusals: a static config, a bad value, a bad resource name, another
    // broker's configs. None of them changes anything.
    let refusals = [
        alter_broker(&mut c, "", &[("num.io.threads", OP_SET, Some("8"))]).0,
        alter_broker(&mut c, "0", &[("log.segment.bytes", OP_SET, Some("1"))]).0,
        alter_broker(&mut c, "x", &[("log.retention.ms", OP_SET, Some("1"))]).0,
    ];
    assert_eq!(
        refusals,
        [INVALID_REQUEST, err::INVALID_CONFIG, INVALID_REQUEST]
    );
    assert_eq!(describe(&mut c, BROKER, "7"), Err(INVALID_REQUEST));
    assert_eq!(describe(&mut c, BROKER, "0").unwrap(), node);

    // librdkafka's AlterConfigs (the whole-set form) on this broker.
    let admin = admin(&bs);
    let alter = AlterConfig::new(ResourceSpecifier::Broker(0)).set("log.retention.ms", "3600000");
    let results = futures::executor::block_on(admin.alter_configs([&alter], &admin_opts()))
        .expect("AlterConfigs request failed");
    assert_eq!(results, [Ok(OwnedResourceSpecifier::Broker(0))]);
    let described = futures::executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Broker(0)], &admin_opts()),
    )
    .expect("DescribeConfigs request failed");
    let entries = described.into_iter().next().unwrap().expect("described");
    let retention = entries.get("log.retention.ms").expect("listed");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicBroker);
    let limit = entries.get("message.max.bytes").expect("listed");
    assert_eq!(
        limit.source,
        ConfigSource::DynamicDefaultBroker,
        "the whole-set form dropped this broker's own message.max.bytes"
    );
    assert_eq!(
        describe_topic_config(&bs, "plain")["retention.ms"].as_deref(),
        Some("3600000")
    );
    drop(c);

    broker.restart();
    let mut c = RawClient::connect(&broker.bootstrap());
    assert_eq!(
        produce_sized(&mut c, "plain", 5_000),
        err::MESSAGE_TOO_LARGE,
        "the cluster default survives a restart"
    );
    let plain = describe(&mut c, TOPIC, "plain").unwrap();
    assert_eq!(plain["retention.ms"].0.as_deref(), Some("3600000"));
    assert_eq!(plain["retention.ms"].1, SOURCE_DYNAMIC_BROKER);

    // Deleting goes back to the config file.
    let deleted = alter_broker(&mut c, "", &[("message.max.bytes", OP_DELETE, None)]);
    assert_eq!(deleted.0, err::NONE);
    assert_eq!(produce_sized(&mut c, "plain", 5_000), err::NONE);
}

/// In a cluster, a change sent to one node goes through the quorum: every
/// node describes and enforces it, and it survives a restart of all.
#[test]
fn cluster_broker_configs_go_through_the_quorum() {
    let mut cluster = Cluster::start(3);
    cluster.create_topic(&rdkafka::admin::NewTopic::new(
        "spread",
        1,
        rdkafka::admin::TopicReplication::Fixed(3),
    ));
    let mut via_2 = RawClient::connect(&cluster.node(2).bootstrap());
    let set = alter_broker(
        &mut via_2,
        "",
        &[("log.retention.ms", OP_SET, Some("123456"))],
    );
    assert_eq!(set, (err::NONE, None));
    let set_3 = alter_broker(
        &mut via_2,
        "3",
        &[("log.retention.ms", OP_SET, Some("654321"))],
    );
    assert_eq!(set_3, (err::NONE, None));
    let retention_on = |cluster: &Cluster, id: i32| {
        let mut c = RawClient::connect(&cluster.node(id).bootstrap());
        let d = describe(&mut c, TOPIC, "spread").map_err(|e| format!("error {e}"))?;
        Ok::<_, String>(d["retention.ms"].clone())
    };
    let expected = |id: i32| {
        if id == 3 {
            (Some("654321".to_string()), SOURCE_DYNAMIC_BROKER)
        } else {
            (Some("123456".to_string()), SOURCE_DYNAMIC_DEFAULT_BROKER)
        }
    };
    let seen_everywhere = |cluster: &Cluster| {
        for id in cluster.ids() {
            let (value, source, _) = retention_on(cluster, id)?;
            if (value.clone(), source) != expected(id) {
                return Err(format!("node {id}: {value:?} from source {source}"));
            }
        }
        Ok(())
    };
    cluster.wait_for("the broker configs on every node", WAIT, || {
        seen_everywhere(&cluster)
    });
    for id in cluster.ids() {
        cluster.stop(id);
    }
    cluster.start_all_again();
    cluster.wait_for("the broker configs after a full restart", WAIT, || {
        seen_everywhere(&cluster)
    });
}

/// The replication throttle rates are dynamic broker configs of their own:
/// a cluster-wide value and a broker's own are described with their
/// sources, an unset one as Kafka's default (unthrottled).
/// Kafka's coarser spellings of the retention and roll times
/// (`log.retention.hours`, `log.retention.minutes`, `log.roll.hours`) are
/// dynamic broker configs too: the millisecond key counts first, then
/// minutes, then hours. A topic's `retention.ms` is described in
/// milliseconds, with the spelling it came from in its synonyms.
#[test]
fn retention_hours_and_minutes_are_synonyms_of_the_millisecond_key() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "by-the-hour", 1, &[]);
    let mut c = RawClient::connect(&bs);
    let set = alter_broker(&mut c, "", &[("log.retention.hours", OP_SET, Some("2"))]);
    assert_eq!(set, (err::NONE, None));
    let topic = describe(&mut c, TOPIC, "by-the-hour").unwrap();
    assert_eq!(
        topic["retention.ms"],
        (
            Some("7200000".into()),
            SOURCE_DYNAMIC_DEFAULT_BROKER,
            vec![SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_DEFAULT]
        )
    );
    let set = alter_broker(&mut c, "0", &[("log.retention.minutes", OP_SET, Some("3"))]);
    assert_eq!(set, (err::NONE, None));
    let node = describe(&mut c, BROKER, "0").unwrap();
    assert_eq!(
        node["log.retention.ms"],
        (
            Some("180000".into()),
            SOURCE_DYNAMIC_BROKER,
            vec![
                SOURCE_DYNAMIC_BROKER,
                SOURCE_DYNAMIC_DEFAULT_BROKER,
                SOURCE_DEFAULT
            ]
        )
    );
    assert_eq!(node["log.retention.hours"].0.as_deref(), Some("2"));
    assert_eq!(node["log.retention.minutes"].0.as_deref(), Some("3"));
    assert_eq!(
        node["log.roll.hours"],
        (None, SOURCE_DEFAULT, vec![SOURCE_DEFAULT])
    );
    // The millisecond key wins over both.
    alter_broker(&mut c, "", &[("log.retention.ms", OP_SET, Some("5000"))]);
    let topic = describe(&mut c, TOPIC, "by-the-hour").unwrap();
    assert_eq!(topic["retention.ms"].0.as_deref(), Some("5000"));
    // A value that is no whole number of hours is refused, nothing kept.
    let refused = alter_broker(&mut c, "", &[("log.roll.hours", OP_SET, Some("1.5"))]);
    assert_eq!(refused.0, err::INVALID_CONFIG);
    let node = describe(&mut c, BROKER, "0").unwrap();
    assert_eq!(node["log.roll.hours"].0, None);
}

#[test]
fn replication_throttle_rates_are_described_with_their_sources() {
    let broker = Broker::start(1);
    let mut c = RawClient::connect(&broker.bootstrap());
    let unthrottled = (
        Some(i64::MAX.to_string()),
        SOURCE_DEFAULT,
        vec![SOURCE_DEFAULT],
    );
    let node = describe(&mut c, BROKER, "0").unwrap();
    assert_eq!(node["leader.replication.throttled.rate"], unthrottled);
    assert_eq!(node["follower.replication.throttled.rate"], unthrottled);

    let cluster_wide = [("leader.replication.throttled.rate", OP_SET, Some("5000"))];
    assert_eq!(alter_broker(&mut c, "", &cluster_wide), (err::NONE, None));
    let own = [("follower.replication.throttled.rate", OP_SET, Some("7000"))];
    assert_eq!(alter_broker(&mut c, "0", &own), (err::NONE, None));
    let node = describe(&mut c, BROKER, "0").unwrap();
    assert_eq!(
        node["leader.replication.throttled.rate"],
        (
            Some("5000".into()),
            SOURCE_DYNAMIC_DEFAULT_BROKER,
            vec![SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_DEFAULT]
        )
    );
    assert_eq!(
        node["follower.replication.throttled.rate"],
        (
            Some("7000".into()),
            SOURCE_DYNAMIC_BROKER,
            vec![SOURCE_DYNAMIC_BROKER, SOURCE_DEFAULT]
        )
    );

    let unset = [("follower.replication.throttled.rate", OP_DELETE, None)];
    assert_eq!(alter_broker(&mut c, "0", &unset), (err::NONE, None));
    let node = describe(&mut c, BROKER, "0").unwrap();
    assert_eq!(node["follower.replication.throttled.rate"], unthrottled);
}

/// The static configs Kafka's tools show for a broker, under Kafka's
/// names: read-only, STATIC_BROKER_CONFIG where the command line set them,
/// DEFAULT_CONFIG where it did not, each its own synonym, no
/// documentation (null, as Kafka answers when it is not asked for).
#[test]
fn static_broker_configs_are_described_read_only() {
    let key_dir = tempfile::tempdir().unwrap();
    let key = key_dir.path().join("token.key");
    std::fs::write(&key, "never-shown\n").unwrap();
    let broker = Broker::start_with(
        1,
        &[
            "--num-partitions",
            "3",
            "--delegation-token-secret-key-file",
            key.to_str().unwrap(),
        ],
    );
    let mut c = RawClient::connect(&broker.bootstrap());
    let node = describe(&mut c, BROKER, "0").unwrap();
    // A password: set, but its value never shown.
    assert_eq!(
        node["delegation.token.secret.key"],
        (None, SOURCE_STATIC_BROKER, vec![SOURCE_STATIC_BROKER])
    );
    assert_eq!(
        node["delegation.token.max.lifetime.ms"].0.as_deref(),
        Some("604800000")
    );
    assert_eq!(
        node["num.partitions"],
        (
            Some("3".into()),
            SOURCE_STATIC_BROKER,
            vec![SOURCE_STATIC_BROKER]
        )
    );
    assert_eq!(
        node["auto.create.topics.enable"],
        (Some("true".into()), SOURCE_DEFAULT, vec![SOURCE_DEFAULT])
    );
    let data_dir = std::path::absolute(broker.data_dir()).unwrap();
    assert_eq!(node["log.dirs"].0.as_deref(), data_dir.to_str());
    // The listeners as set on the command line; what is unset, null.
    let listeners = node["listeners"].0.clone().unwrap();
    assert!(
        listeners.starts_with("PLAINTEXT://127.0.0.1:"),
        "{listeners}"
    );
    assert_eq!(node["listeners"].1, SOURCE_STATIC_BROKER);
    assert_eq!(
        node["listener.security.protocol.map"],
        (
            Some("PLAINTEXT:PLAINTEXT".into()),
            SOURCE_DEFAULT,
            vec![SOURCE_DEFAULT]
        )
    );
    assert_eq!(
        node["broker.rack"],
        (None, SOURCE_DEFAULT, vec![SOURCE_DEFAULT])
    );
    for name in [
        "transaction.state.log.num.partitions",
        "transaction.max.timeout.ms",
        "producer.id.expiration.ms",
        "replica.fetch.max.bytes",
        "log.retention.check.interval.ms",
        "connections.max.reauth.ms",
        "group.consumer.migration.policy",
        "telemetry.max.bytes",
    ] {
        let (value, source, _) = &node[name];
        assert!(
            value.is_some() && *source == SOURCE_DEFAULT,
            "{name}: {value:?} {source}"
        );
    }

    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(str_bytes("0"))
            .with_configuration_keys(Some(vec![str_bytes("num.partitions")]))]);
    let resp = c.call(4, &req);
    let result = &resp.results[0];
    assert_eq!(result.error_message, None, "{resp:?}");
    assert_eq!(result.configs.len(), 1, "{resp:?}");
    let entry = &result.configs[0];
    assert!(entry.read_only, "{resp:?}");
    assert!(entry.synonyms.is_empty(), "not asked for: {resp:?}");
    assert_eq!(entry.documentation, None, "{resp:?}");
}

/// Broker loggers (KIP-412, `kafka-configs.sh --entity-type
/// broker-loggers`): DescribeConfigs lists this broker's log levels (the
/// tests' brokers start with `RUST_LOG=info`); IncrementalAlterConfigs changes one while the broker runs (a
/// refused consumer heartbeat's DEBUG line appears only once `sluice::group`
/// is at DEBUG), and removes it again; Kafka's refusals for an unknown
/// level, a logger name that is no module path, removing root's level,
/// APPEND, the legacy AlterConfigs and another broker's id.
#[test]
fn broker_loggers_change_log_levels_at_run_time() {
    use kafka_protocol::messages::consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest;
    use kafka_protocol::messages::ConsumerGroupHeartbeatResponse;

    const LOGGER: i8 = 8;
    const SOURCE_DYNAMIC_BROKER_LOGGER: i8 = 6;
    const INVALID_CONFIG: i16 = 40;
    const OP_APPEND: i8 = 2;
    const REFUSED: &str = "consumer heartbeat refused";
    let broker = Broker::start(1);
    let mut c = RawClient::connect(&broker.bootstrap());
    let levels = |c: &mut RawClient| {
        let described = describe(c, LOGGER, "0").expect("loggers described");
        assert!(described
            .values()
            .all(|(_, source, _)| *source == SOURCE_DYNAMIC_BROKER_LOGGER));
        described
            .into_iter()
            .map(|(name, (value, _, _))| (name, value.unwrap()))
            .collect::<BTreeMap<_, _>>()
    };
    let start = levels(&mut c);
    assert_eq!(start.get("root").map(String::as_str), Some("INFO"));
    assert_eq!(describe(&mut c, LOGGER, "1"), Err(INVALID_REQUEST));

    // A member joins the group (once the coordinator is up); then one the
    // group does not know, at a later epoch, is refused UNKNOWN_MEMBER_ID.
    let heartbeat = |c: &mut RawClient, member: &str, epoch: i32| {
        let beat = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(str_bytes("loggers-group").into())
            .with_member_id(str_bytes(member))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(Vec::new()))
            .with_topic_partitions(Some(Vec::new()));
        let r: ConsumerGroupHeartbeatResponse = c.call(1, &beat);
        r.error_code
    };
    let deadline = std::time::Instant::now() + WAIT;
    while heartbeat(&mut c, "loggers-member", 0) != err::NONE {
        assert!(
            std::time::Instant::now() < deadline,
            "the member never joined"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let refused_heartbeat = |c: &mut RawClient| {
        assert_eq!(heartbeat(c, "nobody", 5), 25, "UNKNOWN_MEMBER_ID");
    };
    let debug_lines = |broker: &Broker| broker.stderr_tail(100_000).matches(REFUSED).count();
    refused_heartbeat(&mut c);
    assert_eq!(debug_lines(&broker), 0, "not at DEBUG yet");

    let group = "sluice::group";
    assert_eq!(
        c.incremental_alter(1, LOGGER, "0", &[(group, OP_SET, Some("DEBUG"))]),
        (err::NONE, None)
    );
    assert_eq!(levels(&mut c).get(group).map(String::as_str), Some("DEBUG"));
    refused_heartbeat(&mut c);
    assert_eq!(debug_lines(&broker), 1, "{}", broker.stderr_tail(20));

    let refused = |c: &mut RawClient, ops: &[(&str, i8, Option<&str>)]| {
        c.incremental_alter(1, LOGGER, "0", ops).0
    };
    assert_eq!(
        refused(&mut c, &[(group, OP_SET, Some("VERBOSE"))]),
        INVALID_CONFIG
    );
    assert_eq!(
        refused(&mut c, &[(group, OP_SET, Some("debug"))]),
        INVALID_CONFIG
    );
    assert_eq!(
        refused(&mut c, &[("kafka.server.Foo", OP_SET, Some("INFO"))]),
        INVALID_CONFIG
    );
    assert_eq!(
        refused(&mut c, &[("root", OP_DELETE, None)]),
        INVALID_REQUEST
    );
    assert_eq!(
        refused(&mut c, &[(group, OP_APPEND, Some("INFO"))]),
        INVALID_REQUEST
    );
    assert_eq!(
        c.incremental_alter(1, LOGGER, "1", &[(group, OP_DELETE, None)])
            .0,
        INVALID_REQUEST
    );
    let legacy = kafka_protocol::messages::AlterConfigsRequest::default().with_resources(vec![
        kafka_protocol::messages::alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(LOGGER)
            .with_resource_name(str_bytes("0"))
            .with_configs(vec![
                kafka_protocol::messages::alter_configs_request::AlterableConfig::default()
                    .with_name(str_bytes(group))
                    .with_value(Some(str_bytes("INFO"))),
            ]),
    ]);
    let answer: kafka_protocol::messages::AlterConfigsResponse = c.call(1, &legacy);
    assert_eq!(answer.responses[0].error_code, INVALID_REQUEST);
    // All or nothing: a bad change leaves the good one beside it undone.
    assert_eq!(
        refused(
            &mut c,
            &[
                ("sluice::net", OP_SET, Some("TRACE")),
                (group, OP_SET, Some("LOUD"))
            ]
        ),
        INVALID_CONFIG
    );
    assert!(!levels(&mut c).contains_key("sluice::net"));

    assert_eq!(
        c.incremental_alter(1, LOGGER, "0", &[(group, OP_DELETE, None)]),
        (err::NONE, None)
    );
    assert_eq!(levels(&mut c), start);
    refused_heartbeat(&mut c);
    assert_eq!(debug_lines(&broker), 1, "back at root's INFO");
}

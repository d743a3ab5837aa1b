//! Group configs (KIP-848's GROUP config resource, `kafka-configs
//! --entity-type groups`), at the protocol level: set, refused, described,
//! listed and kept across a restart, and what each changes in the group's
//! answers (heartbeat intervals, a share group's start and lock duration).
//! The Java client sets one in tests/java_clients.rs; a cluster carries one
//! to a partition's leader in tests/share_groups.rs.

mod common;

use common::raw::{self, str_bytes, RawClient};
use common::*;
use kafka_protocol::messages::{
    share_fetch_request, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    ListConfigResourcesRequest, ListConfigResourcesResponse, ShareFetchRequest, ShareFetchResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};

const GROUP: i8 = 32;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_GROUP: i8 = 8;

/// Five records written two hours ago (offsets 0-4) and five written now
/// (5-9), in two batches.
fn old_and_new_records(c: &mut RawClient, topic: &str) {
    let now = now_ms();
    c.produce_values_at(topic, 0, 5, now - 2 * 3_600_000);
    c.produce_values_at(topic, 5, 5, now);
}

/// (name, value, source) of each config of `group`, synonyms included.
fn describe(c: &mut RawClient, group: &str) -> Vec<(String, String, i8, usize)> {
    c.describe_configs(GROUP, group, true)
        .iter()
        .map(|e| {
            (
                e.name.to_string(),
                e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                e.config_source,
                e.synonyms.len(),
            )
        })
        .collect()
}

fn value_of(described: &[(String, String, i8, usize)], name: &str) -> (String, i8) {
    let (_, value, source, _) = described
        .iter()
        .find(|(n, ..)| n == name)
        .unwrap_or_else(|| panic!("{name} not described: {described:?}"));
    (value.clone(), *source)
}

fn share_heartbeat(c: &mut RawClient, group: &str, topic: &str) -> ShareGroupHeartbeatResponse {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(str_bytes(group).into())
        .with_member_id(str_bytes("m1"))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![raw::topic_name(topic)]));
    c.call(1, &request)
}

#[test]
fn a_groups_own_configs_shape_its_answers() {
    let mut broker = Broker::start(2);
    broker.keep_port();
    let bs = broker.bootstrap();
    create_topic(&bs, "gc", 1, &[]);
    let mut c = RawClient::connect(&bs);
    old_and_new_records(&mut c, "gc");
    let topic_id = raw::topic_id(&mut c, "gc");

    // Refused: an unknown name, one Kafka has and this broker does not
    // honour, a value out of its range; none of the set is stored.
    for (name, value) in [
        ("no.such.config", "1"),
        ("streams.num.standby.replicas", "1"),
        ("share.record.lock.duration.ms", "999"),
        ("share.isolation.level", "serializable"),
    ] {
        let ops = [
            ("share.auto.offset.reset", OP_SET, Some("earliest")),
            (name, OP_SET, Some(value)),
        ];
        let (error, message) = c.incremental_alter(1, GROUP, "gd", &ops);
        assert_eq!(error, INVALID_CONFIG, "{name}: {message:?}");
        assert!(message.is_some_and(|m| m.contains(name)), "{name}");
    }
    let (error, _) = c.incremental_alter(
        1,
        GROUP,
        "",
        &[("share.auto.offset.reset", OP_SET, Some("latest"))],
    );
    assert_eq!(error, INVALID_REQUEST);
    assert_eq!(
        value_of(&describe(&mut c, "gd"), "share.auto.offset.reset"),
        ("latest".to_string(), SOURCE_DEFAULT)
    );

    let set = [
        ("share.auto.offset.reset", OP_SET, Some("by_duration:PT1H")),
        ("share.record.lock.duration.ms", OP_SET, Some("20000")),
        ("share.heartbeat.interval.ms", OP_SET, Some("6000")),
    ];
    assert_eq!(c.incremental_alter(1, GROUP, "gd", &set), (0, None));
    let consumer_set = [("consumer.heartbeat.interval.ms", OP_SET, Some("7000"))];
    assert_eq!(
        c.incremental_alter(1, GROUP, "gc-consumer", &consumer_set),
        (0, None)
    );

    let described = describe(&mut c, "gd");
    assert_eq!(
        value_of(&described, "share.auto.offset.reset"),
        ("by_duration:PT1H".to_string(), SOURCE_GROUP)
    );
    assert_eq!(
        value_of(&described, "share.record.lock.duration.ms"),
        ("20000".to_string(), SOURCE_GROUP)
    );
    assert_eq!(
        value_of(&described, "share.delivery.count.limit"),
        ("5".to_string(), SOURCE_DEFAULT)
    );
    // A value set on the group lists the broker's under it.
    let synonyms = |name: &str| described.iter().find(|d| d.0 == name).unwrap().3;
    assert_eq!(
        (
            synonyms("share.heartbeat.interval.ms"),
            synonyms("consumer.heartbeat.interval.ms")
        ),
        (2, 1)
    );

    let listed: ListConfigResourcesResponse = c.call(
        1,
        &ListConfigResourcesRequest::default().with_resource_types(vec![GROUP]),
    );
    let names: Vec<String> = listed
        .config_resources
        .iter()
        .map(|r| r.resource_name.to_string())
        .collect();
    assert_eq!(names, ["gc-consumer", "gd"]);

    // The group's heartbeat interval, and the broker's for another group.
    let r = share_heartbeat(&mut c, "gd", "gc");
    assert_eq!((r.error_code, r.heartbeat_interval_ms), (0, 6000), "{r:?}");
    let r = share_heartbeat(&mut c, "plain", "gc");
    assert_eq!((r.error_code, r.heartbeat_interval_ms), (0, 5000), "{r:?}");
    let consumer = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(str_bytes("gc-consumer").into())
        .with_member_id(str_bytes("c1"))
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![raw::topic_name("gc")]));
    let r: ConsumerGroupHeartbeatResponse = c.call(1, &consumer);
    assert_eq!((r.error_code, r.heartbeat_interval_ms), (0, 7000), "{r:?}");

    // by_duration:PT1H starts at the first record of the last hour; the
    // broker's `latest` would have started past all ten.
    let partition = share_fetch_request::FetchPartition::default().with_partition_index(0);
    let fetch = ShareFetchRequest::default()
        .with_group_id(Some(str_bytes("gd").into()))
        .with_member_id(Some(str_bytes("m1")))
        .with_share_session_epoch(0)
        .with_max_wait_ms(200)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(100)
        .with_batch_size(100)
        .with_topics(vec![share_fetch_request::FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![partition])]);
    let r: ShareFetchResponse = c.call(1, &fetch);
    assert_eq!(r.error_code, 0, "{r:?}");
    let acquired: Vec<(i64, i64)> = r.responses[0].partitions[0]
        .acquired_records
        .iter()
        .map(|a| (a.first_offset, a.last_offset))
        .collect();
    assert_eq!(acquired, [(5, 9)], "{r:?}");
    assert_eq!(r.acquisition_lock_timeout_ms, 20_000);

    // Kept across a restart; a deleted one is the broker's again.
    broker.restart();
    let mut c = RawClient::connect(&bs);
    assert_eq!(
        value_of(&describe(&mut c, "gd"), "share.auto.offset.reset"),
        ("by_duration:PT1H".to_string(), SOURCE_GROUP)
    );
    let delete = [("share.auto.offset.reset", OP_DELETE, None)];
    assert_eq!(c.incremental_alter(1, GROUP, "gd", &delete), (0, None));
    let described = describe(&mut c, "gd");
    assert_eq!(
        value_of(&described, "share.auto.offset.reset"),
        ("latest".to_string(), SOURCE_DEFAULT)
    );
    assert_eq!(
        value_of(&described, "share.record.lock.duration.ms"),
        ("20000".to_string(), SOURCE_GROUP)
    );
}

/// The broker's `group_consumer_max_session_timeout_ms` bounds a group's
/// own session timeout: past Kafka's default 60 s only when it is raised.
#[test]
fn the_brokers_bounds_are_a_groups_range() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.toml");
    std::fs::write(&path, "group_consumer_max_session_timeout_ms = 180000\n").unwrap();
    let raised = Broker::start_with(1, &["--config", path.to_str().unwrap()]);
    let default = Broker::start(1);
    let two_minutes = [("consumer.session.timeout.ms", OP_SET, Some("120000"))];
    let mut c = RawClient::connect(&default.bootstrap());
    let (error, message) = c.incremental_alter(1, GROUP, "slow", &two_minutes);
    assert_eq!(error, INVALID_CONFIG, "{message:?}");
    assert!(message.is_some_and(|m| m.contains("between 45000 and 60000")));
    let mut c = RawClient::connect(&raised.bootstrap());
    assert_eq!(
        c.incremental_alter(1, GROUP, "slow", &two_minutes),
        (0, None)
    );
    assert_eq!(
        value_of(&describe(&mut c, "slow"), "consumer.session.timeout.ms"),
        ("120000".to_string(), SOURCE_GROUP)
    );
}

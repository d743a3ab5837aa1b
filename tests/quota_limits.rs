//! Client quotas that limit operations rather than bytes (issue 15):
//! controller_mutation_rate on CreateTopics, CreatePartitions and
//! DeleteTopics (KIP-599, strict and permissive), and ip entities'
//! connection_creation_rate at accept (KIP-612).

mod common;
mod quotas_common;

use std::time::Duration;

use common::raw::RawClient;
use common::*;
use quotas_common::*;
use rdkafka::config::ClientConfig;

/// A CreateTopics, DeleteTopics or CreatePartitions request on a raw
/// connection of its own (a throttled one is muted), answered.
fn topic_errors<R: kafka_protocol::protocol::Request>(
    bootstrap: &str,
    version: i16,
    req: &R,
    errors: impl Fn(&R::Response) -> (Vec<i16>, i32),
) -> (Vec<i16>, i32) {
    let mut c = RawClient::connect(bootstrap);
    errors(&c.call(version, req))
}

fn create_topics_request(
    topics: &[(&str, i32)],
    validate_only: bool,
) -> kafka_protocol::messages::CreateTopicsRequest {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    kafka_protocol::messages::CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only)
        .with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    CreatableTopic::default()
                        .with_name(common::raw::topic_name(name))
                        .with_num_partitions(*partitions)
                        .with_replication_factor(1)
                })
                .collect(),
        )
}

/// controller_mutation_rate (KIP-599): partitions created and deleted draw
/// on a bucket of 10 s x the rate. A request from before strict mode
/// (librdkafka's CreateTopics v4, DeleteTopics v4) goes ahead and is
/// throttled; from CreateTopics v6, DeleteTopics v5 and CreatePartitions
/// v3 a topic met by an empty bucket is refused THROTTLING_QUOTA_EXCEEDED.
/// Validate-only requests draw nothing.
#[test]
fn controller_mutation_rate_refuses_strict_and_throttles_permissive() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::{
        CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsResponse,
        DeleteTopicsRequest, DeleteTopicsResponse,
    };
    const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bootstrap = broker.bootstrap();
    let mut c = RawClient::connect(&bootstrap);
    let raw: Entity = vec![("client-id", Some(RAW_CLIENT_ID))];
    let mutator: Entity = vec![("client-id", Some("mutator"))];
    assert_eq!(
        alter(
            &mut c,
            vec![
                entry(&raw, &[("controller_mutation_rate", 1.0, false)]),
                entry(&mutator, &[("controller_mutation_rate", 1.0, false)]),
            ],
            false
        ),
        [0, 0]
    );

    // librdkafka (permissive versions): both creations go ahead, the
    // second takes the bucket below zero and is throttled.
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("client.id", "mutator");
    let admin: rdkafka::admin::AdminClient<_> = config.create().expect("admin");
    for name in ["mutated-1", "mutated-2"] {
        let topic =
            rdkafka::admin::NewTopic::new(name, 8, rdkafka::admin::TopicReplication::Fixed(1));
        let res = futures::executor::block_on(admin.create_topics([&topic], &admin_opts()))
            .expect("CreateTopics");
        assert_eq!(res, [Ok(name.to_string())]);
    }
    assert!(broker.metric("sluice_quota_controller_mutation_throttled_requests_total") >= 1);

    // Strict: 8 + 8 partitions take the bucket of 10 below zero, the
    // third topic is refused.
    let created = |r: &CreateTopicsResponse| {
        (
            r.topics.iter().map(|t| t.error_code).collect(),
            r.throttle_time_ms,
        )
    };
    let req = create_topics_request(&[("strict-a", 8), ("strict-b", 8), ("strict-c", 1)], false);
    let (errors, throttle) = topic_errors(&bootstrap, 6, &req, created);
    assert_eq!(errors, [0, 0, THROTTLING_QUOTA_EXCEEDED]);
    assert!(throttle > 0, "no throttle_time_ms with the refusal");
    // Validate-only is neither counted nor refused.
    let req = create_topics_request(&[("strict-c", 1)], true);
    assert_eq!(topic_errors(&bootstrap, 6, &req, created).0, [0]);

    // The bucket is still below zero: strict deletions and partition
    // creations are refused, a permissive deletion goes ahead, throttled.
    let deleted = |r: &DeleteTopicsResponse| {
        (
            r.responses.iter().map(|t| t.error_code).collect(),
            r.throttle_time_ms,
        )
    };
    let delete =
        DeleteTopicsRequest::default().with_topic_names(vec![common::raw::topic_name("strict-a")]);
    assert_eq!(
        topic_errors(&bootstrap, 5, &delete, deleted).0,
        [THROTTLING_QUOTA_EXCEEDED]
    );
    let grow = CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(common::raw::topic_name("strict-b"))
            .with_count(9)
            .with_assignments(None)]);
    let grown = |r: &CreatePartitionsResponse| {
        (
            r.results.iter().map(|t| t.error_code).collect(),
            r.throttle_time_ms,
        )
    };
    assert_eq!(
        topic_errors(&bootstrap, 3, &grow, grown).0,
        [THROTTLING_QUOTA_EXCEEDED]
    );
    let (errors, throttle) = topic_errors(&bootstrap, 4, &delete, deleted);
    assert_eq!(errors, [0], "a permissive deletion goes ahead");
    assert!(throttle > 0, "and is throttled");
    assert!(broker.metric("sluice_quota_controller_mutation_throttled_requests_total") >= 5);
}

/// connection_creation_rate (KIP-612): ip entities are altered, described
/// and kept across a restart; connections from an ip over its rate are
/// closed at once and counted.
#[test]
fn ip_connection_rates_are_stored_and_enforced() {
    use std::io::Read;
    let mut broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bootstrap = broker.bootstrap();
    let mut c = RawClient::connect(&bootstrap);
    let local: Entity = vec![("ip", Some("127.0.0.1"))];
    let default_ip: Entity = vec![("ip", None)];
    let rate = "connection_creation_rate";
    assert_eq!(
        alter(
            &mut c,
            vec![
                entry(&local, &[(rate, 5.0, false)]),
                entry(&default_ip, &[(rate, 100.0, false)]),
                entry(&vec![("ip", Some("not-an-ip"))], &[(rate, 5.0, false)]),
                entry(
                    &vec![("ip", Some("10.0.0.1")), ("user", Some("a"))],
                    &[(rate, 5.0, false)]
                ),
                entry(
                    &vec![("ip", Some("10.0.0.2"))],
                    &[("producer_byte_rate", 5.0, false)]
                ),
                entry(&vec![("ip", Some("10.0.0.3"))], &[(rate, 1.5, false)]),
                entry(&vec![("user", Some("a"))], &[(rate, 5.0, false)]),
            ],
            false
        ),
        [
            0,
            0,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST
        ]
    );
    let expected: Described = vec![
        (owned(&default_ip), vec![(rate.to_string(), 100.0)]),
        (owned(&local), vec![(rate.to_string(), 5.0)]),
    ];
    assert_eq!(
        describe(&mut c, &[("ip", MATCH_ANY, None)], false),
        expected
    );
    assert_eq!(describe(&mut c, &[], false), expected);
    assert_eq!(
        describe(&mut c, &[("ip", MATCH_EXACT, Some("127.0.0.1"))], true),
        expected[1..]
    );
    assert_eq!(
        describe(&mut c, &[("ip", MATCH_DEFAULT, None)], true),
        expected[..1]
    );
    assert!(describe(&mut c, &[("user", MATCH_ANY, None)], false).is_empty());

    // 5 a second over the 10 s a young sensor counts: about 50 of 120
    // quick connections get in, the rest are closed at once.
    let conns: Vec<std::net::TcpStream> = (0..120)
        .map(|_| std::net::TcpStream::connect(&bootstrap).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let closed = conns
        .into_iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            match (&*s).read(&mut [0u8; 1]) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            }
        })
        .count();
    eprintln!("{closed} of 120 connections closed at a rate of 5 a second");
    assert!(closed > 0, "no connection was refused");
    assert!(closed < 120, "every connection was refused");
    assert!(broker.metric("sluice_quota_connections_refused_total") >= closed as u64);

    // Removed, the rate no longer holds (the connection of before was
    // never closed); kept across a restart.
    assert_eq!(
        alter(&mut c, vec![entry(&local, &[(rate, 0.0, true)])], false),
        [0]
    );
    let mut fresh = RawClient::connect(&bootstrap);
    assert_eq!(describe(&mut fresh, &[], false), expected[..1]);
    broker.restart();
    let mut c = RawClient::connect(&broker.bootstrap());
    assert_eq!(describe(&mut c, &[], false), expected[..1]);
}

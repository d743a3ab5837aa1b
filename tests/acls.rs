//! Issue 15's authorization with real clients: `authorizer = "acl"`, a
//! super user on a local PLAINTEXT listener, SCRAM users on a
//! SASL_PLAINTEXT listener. ACLs are managed with CreateAcls, DescribeAcls
//! and DeleteAcls on the wire (the rdkafka crate has no ACL admin calls).

mod common;

use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use sluice::security::scram::Mechanism;

use common::raw::{str_bytes, RawClient};
use common::*;

// Kafka's ACL codes.
const ANY: i8 = 1;
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

// Kafka's error codes.
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;

/// A broker with the ACL authorizer: PLAINTEXT is the local admin
/// listener (a super user), SASL takes SCRAM and PLAIN logins.
fn acl_broker(dir: &tempfile::TempDir) -> Broker {
    let path = dir.path().join("broker.toml");
    std::fs::write(
        &path,
        r#"
super_users = ["User:admin"]
authorizer = "acl"
[listeners.PLAINTEXT]
protocol = "PLAINTEXT"
listen = "127.0.0.1:0"
principal = "User:admin"
[listeners.SASL]
protocol = "SASL_PLAINTEXT"
listen = "127.0.0.1:0"
sasl_mechanisms = ["SCRAM-SHA-256", "PLAIN"]
"#,
    )
    .unwrap();
    Broker::start_with(2, &["--config", path.to_str().unwrap()])
}

/// Sets `user`'s SCRAM credentials (password = user name + "-secret").
fn add_user(admin_addr: &str, user: &str) {
    let mut raw = RawClient::connect(admin_addr);
    let mut req = AlterUserScramCredentialsRequest::default();
    for m in Mechanism::ALL {
        let salt = format!("salt-{user}-{}", m.name()).into_bytes();
        let mut u = ScramCredentialUpsertion::default();
        u.name = str_bytes(user);
        u.mechanism = m.kafka_type();
        u.iterations = 4096;
        let password = format!("{user}-secret");
        u.salted_password = m.salted_password(password.as_bytes(), &salt, 4096).into();
        u.salt = salt.into();
        req.upsertions.push(u);
    }
    let resp = raw.call(0, &req);
    assert_eq!(resp.results[0].error_code, 0, "{resp:?}");
}

/// An ACL as CreateAcls carries it, for any host.
fn acl(
    resource_type: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    op: i8,
    perm: i8,
) -> AclCreation {
    let mut c = AclCreation::default();
    c.resource_type = resource_type;
    c.resource_name = str_bytes(name);
    c.resource_pattern_type = pattern;
    c.principal = str_bytes(principal);
    c.host = str_bytes("*");
    c.operation = op;
    c.permission_type = perm;
    c
}

/// Creates ACLs through `raw` at `version`; the error code of each.
fn create_acls(raw: &mut RawClient, version: i16, acls: Vec<AclCreation>) -> Vec<i16> {
    let mut req = CreateAclsRequest::default();
    req.creations = acls;
    let resp = raw.call(version, &req);
    resp.results.iter().map(|r| r.error_code).collect()
}

/// Creates ACLs as the admin and asserts each was taken.
fn grant(broker: &Broker, acls: Vec<AclCreation>) {
    let mut raw = RawClient::connect(&broker.listener("PLAINTEXT"));
    let n = acls.len();
    assert_eq!(create_acls(&mut raw, 3, acls), vec![0; n]);
}

/// An ACL as DescribeAcls lists it: (resource type, name, pattern,
/// principal, operation, permission).
type Listed = (i8, String, i8, String, i8, i8);

/// Every ACL DescribeAcls lists for a filter matching everything.
fn describe_all(raw: &mut RawClient, version: i16) -> (i16, Vec<Listed>) {
    let mut req = DescribeAclsRequest::default();
    req.resource_type_filter = ANY;
    (
        req.resource_name_filter,
        req.principal_filter,
        req.host_filter,
    ) = (None, None, None);
    req.pattern_type_filter = ANY;
    req.operation = ANY;
    req.permission_type = ANY;
    let resp = raw.call(version, &req);
    let mut acls = Vec::new();
    for r in &resp.resources {
        for a in &r.acls {
            acls.push((
                r.resource_type,
                r.resource_name.to_string(),
                r.pattern_type,
                a.principal.to_string(),
                a.operation,
                a.permission_type,
            ));
        }
    }
    acls.sort();
    (resp.error_code, acls)
}

/// A librdkafka client logged in as `user` over SASL PLAIN.
fn as_user(broker: &Broker, user: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.listener("SASL"))
        .set("broker.address.family", "v4")
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-secret"))
        .set("socket.timeout.ms", "5000")
        .set("message.timeout.ms", "8000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("log_level", "3");
    c
}

fn produce_one(config: &ClientConfig, topic: &str, value: &str) -> Result<(), String> {
    let producer: FutureProducer = config.create().unwrap();
    let record = FutureRecord::<(), str>::to(topic).payload(value);
    futures::executor::block_on(producer.send(record, Duration::from_secs(8)))
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}

/// Consumes partition 0 of `topic` from the start until a message or an
/// error of `wanted` arrives (bounded): Ok(messages seen) or the error.
fn consume_first(config: &ClientConfig, topic: &str) -> Result<usize, RDKafkaErrorCode> {
    let mut config = config.clone();
    config
        .set("group.id", "acl-assign-only")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = config.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => return Ok(1),
            Some(Err(KafkaError::MessageConsumption(code)))
                if code != RDKafkaErrorCode::GroupAuthorizationFailed =>
            {
                return Err(code)
            }
            _ => {}
        }
    }
    Ok(0)
}

/// A principal with Write but not Read on a topic produces and cannot
/// consume (TOPIC_AUTHORIZATION_FAILED); one with neither cannot produce,
/// and nothing of its refused write reaches the log.
#[test]
fn write_without_read_produces_but_cannot_consume() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(&dir);
    let admin_addr = broker.listener("PLAINTEXT");
    add_user(&admin_addr, "writer");
    add_user(&admin_addr, "nobody");
    create_topic(&admin_addr, "orders", 1, &[]);
    grant(
        &broker,
        vec![acl(TOPIC, "orders", LITERAL, "User:writer", WRITE, ALLOW)],
    );

    produce_one(&as_user(&broker, "writer"), "orders", "one").unwrap();
    assert_eq!(watermarks(&admin_addr, "orders", 0), (0, 1));
    assert_eq!(
        consume_first(&as_user(&broker, "writer"), "orders"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );

    let refused = produce_one(&as_user(&broker, "nobody"), "orders", "never").unwrap_err();
    assert!(refused.contains("uthorization"), "{refused}");
    assert_eq!(watermarks(&admin_addr, "orders", 0), (0, 1));

    // The super user reads what the writer wrote.
    let msgs = consume_all(&admin_addr, "orders", 1, 1, Duration::from_secs(15));
    assert_eq!(payload_str(&msgs[0]), "one");
}

/// Metadata for all topics leaves out what the principal may not
/// Describe; a named one answers TOPIC_AUTHORIZATION_FAILED; a topic it
/// may not create is not auto-created.
#[test]
fn topics_without_describe_are_hidden_from_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(&dir);
    let admin_addr = broker.listener("PLAINTEXT");
    add_user(&admin_addr, "alice");
    create_topic(&admin_addr, "visible", 1, &[]);
    create_topic(&admin_addr, "hidden", 1, &[]);
    grant(
        &broker,
        vec![acl(TOPIC, "visible", LITERAL, "User:alice", READ, ALLOW)],
    );
    let consumer: BaseConsumer = as_user(&broker, "alice").create().unwrap();
    let all = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let names: Vec<&str> = all.topics().iter().map(|t| t.name()).collect();
    assert!(names.contains(&"visible"), "{names:?}");
    assert!(!names.contains(&"hidden"), "{names:?}");
    let named = consumer
        .fetch_metadata(Some("hidden"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        named.topics()[0].error(),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    );

    // Authorized operations, as Kafka's admin clients ask for them: Read
    // (and the Describe it implies) on the topic; nothing on the cluster.
    let (mut raw, code) = sasl_plain(&broker, "alice");
    assert_eq!(code, 0);
    let mut req = MetadataRequest::default();
    req.topics = None;
    req.include_topic_authorized_operations = true;
    let md = raw.call(10, &req.with_include_cluster_authorized_operations(true));
    assert_eq!(md.topics.len(), 1, "{md:?}");
    assert_eq!(
        md.topics[0].topic_authorized_operations,
        1 << READ | 1 << DESCRIBE
    );
    assert_eq!(md.cluster_authorized_operations, 0);
    let mut dc = DescribeClusterRequest::default();
    dc.include_cluster_authorized_operations = true;
    let mut admin_raw = RawClient::connect(&admin_addr);
    let all_cluster_ops = [5, 9, 10, 11, 12, 7, 8].iter().fold(0, |b, op| b | 1 << op);
    assert_eq!(
        admin_raw.call(0, &dc).cluster_authorized_operations,
        all_cluster_ops
    );
    assert_eq!(raw.call(0, &dc).cluster_authorized_operations, 0);

    // A produce to a missing topic would auto-create it: not without Create.
    assert!(produce_one(&as_user(&broker, "alice"), "fresh", "x").is_err());
    assert!(!topic_partition_counts(&admin_addr).contains_key("fresh"));
}

/// A prefixed ALLOW covers every topic under its prefix; a DENY on one of
/// them wins over it; topics outside the prefix stay closed.
#[test]
fn prefixed_acls_match_and_deny_beats_allow() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(&dir);
    let admin_addr = broker.listener("PLAINTEXT");
    add_user(&admin_addr, "logger");
    for t in ["logs-app", "logs-secret", "other"] {
        create_topic(&admin_addr, t, 1, &[]);
    }
    grant(
        &broker,
        vec![
            acl(TOPIC, "logs-", PREFIXED, "User:logger", WRITE, ALLOW),
            acl(TOPIC, "logs-secret", LITERAL, "User:*", ALL, DENY),
        ],
    );
    let logger = as_user(&broker, "logger");
    produce_one(&logger, "logs-app", "ok").unwrap();
    assert!(produce_one(&logger, "logs-secret", "no").is_err());
    assert!(produce_one(&logger, "other", "no").is_err());
    // An idempotent producer's InitProducerId needs Write on some topic
    // (or IdempotentWrite on the cluster): the prefixed ALLOW gives it.
    let mut idempotent = logger.clone();
    idempotent.set("enable.idempotence", "true");
    produce_one(&idempotent, "logs-app", "once").unwrap();
    assert_eq!(watermarks(&admin_addr, "logs-app", 0), (0, 2));
    assert_eq!(watermarks(&admin_addr, "logs-secret", 0), (0, 0));
    assert_eq!(watermarks(&admin_addr, "other", 0), (0, 0));
}

/// A consumer group member needs Read on the group as well as the topic.
#[test]
fn a_group_needs_read_on_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(&dir);
    let admin_addr = broker.listener("PLAINTEXT");
    add_user(&admin_addr, "reader");
    create_topic(&admin_addr, "events", 1, &[]);
    produce_values(&admin_addr, "events", Some(0), &["e0".to_string()]);
    grant(
        &broker,
        vec![acl(TOPIC, "events", LITERAL, "User:reader", READ, ALLOW)],
    );
    let subscribe = |group: &str| {
        let mut config = as_user(&broker, "reader");
        config
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000");
        let consumer: BaseConsumer = config.create().unwrap();
        consumer.subscribe(&["events"]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(_)) => return Ok(()),
                Some(Err(e)) if e.to_string().contains("uthorization") => return Err(e.to_string()),
                _ => {}
            }
        }
        Err("nothing within the wait".into())
    };
    let refused = subscribe("readers").unwrap_err();
    assert!(refused.contains("Group authorization"), "{refused}");
    grant(
        &broker,
        vec![acl(GROUP, "readers", LITERAL, "User:reader", READ, ALLOW)],
    );
    subscribe("readers").unwrap();
}

/// CreateAcls, DescribeAcls, DeleteAcls on the wire: Kafka's errors for
/// invalid ACLs, Alter/Describe on the cluster required, v0 through the
/// version bridge, and ACLs that survive a restart.
#[test]
fn acl_apis_byte_level_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = acl_broker(&dir);
    let admin_addr = broker.listener("PLAINTEXT");
    add_user(&admin_addr, "alice");
    let mut raw = RawClient::connect(&admin_addr);
    let codes = create_acls(
        &mut raw,
        1,
        vec![
            acl(TOPIC, "t", LITERAL, "User:alice", READ, ALLOW),
            acl(TOPIC, "p-", PREFIXED, "User:*", WRITE, DENY),
            acl(
                CLUSTER,
                "kafka-cluster",
                LITERAL,
                "User:alice",
                DESCRIBE,
                ALLOW,
            ),
            acl(ANY, "t", LITERAL, "User:alice", READ, ALLOW),
            acl(TOPIC, "t", ANY, "User:alice", READ, ALLOW),
            acl(TOPIC, "t", LITERAL, "User:alice", ANY, ALLOW),
            acl(TOPIC, "t", LITERAL, "alice", READ, ALLOW),
            acl(CLUSTER, "other", LITERAL, "User:alice", ALL, ALLOW),
        ],
    );
    assert_eq!(
        codes,
        [
            0,
            0,
            0,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST
        ]
    );
    let want = vec![
        (
            TOPIC,
            "p-".to_string(),
            PREFIXED,
            "User:*".to_string(),
            WRITE,
            DENY,
        ),
        (
            TOPIC,
            "t".to_string(),
            LITERAL,
            "User:alice".to_string(),
            READ,
            ALLOW,
        ),
        (
            CLUSTER,
            "kafka-cluster".to_string(),
            LITERAL,
            "User:alice".to_string(),
            DESCRIBE,
            ALLOW,
        ),
    ];
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(describe_all(&mut raw, 3), (0, sorted.clone()));
    // v0 (Kafka 3.x's schema, through the version bridge) sees literal
    // patterns only.
    let literal: Vec<_> = sorted.iter().filter(|a| a.2 == LITERAL).cloned().collect();
    let mut v0 = kafka_protocol_v3::messages::DescribeAclsRequest::default();
    v0.resource_type_filter = ANY;
    (v0.resource_name_filter, v0.principal_filter, v0.host_filter) = (None, None, None);
    (v0.operation, v0.permission_type) = (ANY, ANY);
    let resp = common::raw_v3::call(&mut raw, 0, &v0);
    let mut listed: Vec<_> = resp
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(|a| {
                let name = r.resource_name.to_string();
                (
                    r.resource_type,
                    name,
                    LITERAL,
                    a.principal.to_string(),
                    a.operation,
                    a.permission_type,
                )
            })
        })
        .collect();
    listed.sort();
    assert_eq!((resp.error_code, listed), (0, literal));

    // alice may Describe the cluster (list ACLs) but not Alter it.
    let (mut alice, hs) = sasl_plain(&broker, "alice");
    assert_eq!(hs, 0);
    assert_eq!(describe_all(&mut alice, 2).0, 0);
    assert_eq!(
        create_acls(
            &mut alice,
            2,
            vec![acl(TOPIC, "x", LITERAL, "User:alice", ALL, ALLOW)]
        ),
        [CLUSTER_AUTHORIZATION_FAILED]
    );

    broker.restart();
    let mut raw = RawClient::connect(&broker.listener("PLAINTEXT"));
    assert_eq!(describe_all(&mut raw, 3), (0, sorted));

    let mut filter = DeleteAclsFilter::default();
    filter.resource_type_filter = TOPIC;
    (filter.resource_name_filter, filter.host_filter) = (None, None);
    filter.pattern_type_filter = ANY;
    filter.operation = ANY;
    filter.permission_type = ANY;
    filter.principal_filter = Some(str_bytes("User:alice"));
    let mut bad = filter.clone();
    bad.operation = 0;
    let mut req = DeleteAclsRequest::default();
    req.filters = vec![filter, bad];
    let resp = raw.call(3, &req);
    assert_eq!(resp.filter_results[0].error_code, 0, "{resp:?}");
    assert_eq!(resp.filter_results[0].matching_acls.len(), 1, "{resp:?}");
    assert_eq!(
        resp.filter_results[0].matching_acls[0]
            .resource_name
            .as_str(),
        "t"
    );
    assert_eq!(resp.filter_results[1].error_code, INVALID_REQUEST);
    let (_, left) = describe_all(&mut raw, 3);
    assert_eq!(left.len(), 2, "{left:?}");
    broker.restart();
    let mut raw = RawClient::connect(&broker.listener("PLAINTEXT"));
    assert_eq!(describe_all(&mut raw, 3).1, left);
}

/// Without an authorizer the ACL APIs answer SECURITY_DISABLED, as Kafka's.
#[test]
fn acl_apis_without_an_authorizer_are_disabled() {
    let broker = Broker::start(1);
    let mut raw = RawClient::connect(&broker.bootstrap());
    assert_eq!(describe_all(&mut raw, 1).0, SECURITY_DISABLED);
    assert_eq!(
        create_acls(
            &mut raw,
            1,
            vec![acl(TOPIC, "t", LITERAL, "User:a", READ, ALLOW)]
        ),
        [SECURITY_DISABLED]
    );
}

/// A raw connection to the SASL listener logged in with PLAIN as `user`;
/// the handshake's and authentication's first error code.
fn sasl_plain(broker: &Broker, user: &str) -> (RawClient, i16) {
    let mut raw = RawClient::connect(&broker.listener("SASL"));
    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = str_bytes("PLAIN");
    let code = raw.call(1, &hs).error_code;
    let mut auth = SaslAuthenticateRequest::default();
    auth.auth_bytes = format!("\0{user}\0{user}-secret").into_bytes().into();
    let code = code.max(raw.call(2, &auth).error_code);
    (raw, code)
}

/// In a cluster, ACLs go through the metadata quorum (created on one node,
/// enforced on the other), and replication keeps working under the ACL
/// authorizer because the brokers' own principal (the inter-broker
/// PLAINTEXT listener's) is a super user: an acks=all produce needs the
/// follower's fetches, which need ClusterAction.
#[test]
fn cluster_acls_replicate_and_brokers_keep_replicating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    std::fs::write(
        &path,
        r#"
super_users = ["User:broker"]
authorizer = "acl"
[listeners.PLAINTEXT]
protocol = "PLAINTEXT"
listen = "127.0.0.1:0"
principal = "User:broker"
[listeners.SASL]
protocol = "SASL_PLAINTEXT"
listen = "127.0.0.1:0"
sasl_mechanisms = ["PLAIN"]
"#,
    )
    .unwrap();
    // One voter and one broker-only node: the ACLs cross the quorum.
    let cluster = common::cluster::Cluster::start_mixed(
        1,
        1,
        common::cluster::LearnerListen::Fixed,
        &["--config", path.to_str().unwrap()],
    );
    let admin1 = cluster.node(1).listener("PLAINTEXT");
    add_user(&admin1, "alice");
    let topic = NewTopicSpec {
        name: "replicated",
        factor: 2,
    };
    topic.create(&admin1);
    cluster.wait_metadata(2, "the topic on node 2 with both replicas in sync", |md| {
        md.topics.iter().any(|t| {
            t.name.as_ref().is_some_and(|n| n.as_str() == "replicated")
                && t.partitions.first().is_some_and(|p| p.isr_nodes.len() == 2)
        })
    });
    grant(
        cluster.node(1),
        vec![acl(
            TOPIC,
            "replicated",
            LITERAL,
            "User:alice",
            WRITE,
            ALLOW,
        )],
    );
    let mut on_node2 = RawClient::connect(&cluster.node(2).listener("PLAINTEXT"));
    cluster.wait_until("the ACL on node 2", Duration::from_secs(30), || {
        describe_all(&mut on_node2, 3).1.len() == 1
    });
    let sasl = format!(
        "{},{}",
        cluster.node(1).listener("SASL"),
        cluster.node(2).listener("SASL")
    );
    let mut alice = ClientConfig::new();
    alice
        .set("bootstrap.servers", &sasl)
        .set("broker.address.family", "v4")
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-secret")
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .set("log_level", "3");
    let producer: FutureProducer = alice.create().unwrap();
    let record = FutureRecord::<(), str>::to("replicated").payload("both");
    futures::executor::block_on(producer.send(record, Duration::from_secs(20)))
        .map_err(|(e, _)| e.to_string())
        .unwrap();
    // Read is not granted: alice's fetch is refused on either node.
    assert_eq!(
        consume_first(&alice, "replicated"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
}

/// A topic created by the admin with a replication factor, retried
/// (bounded) while the cluster settles.
struct NewTopicSpec<'a> {
    name: &'a str,
    factor: i32,
}

impl NewTopicSpec<'_> {
    fn create(&self, admin_addr: &str) {
        let admin = admin(admin_addr);
        let new = rdkafka::admin::NewTopic::new(
            self.name,
            1,
            rdkafka::admin::TopicReplication::Fixed(self.factor),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let res =
                futures::executor::block_on(admin.create_topics([&new], &admin_opts())).unwrap();
            match &res[0] {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => return,
                Err((_, code)) => {
                    assert!(
                        Instant::now() < deadline,
                        "CreateTopics kept failing: {code:?}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

const TRANSACTIONAL_ID: i8 = 5;

/// A transactional producer needs Write on its transactional id as well
/// as on the topic; with both it commits a transaction.
#[test]
fn transactions_need_write_on_the_transactional_id() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(&dir);
    let admin_addr = broker.listener("PLAINTEXT");
    add_user(&admin_addr, "txn");
    create_topic(&admin_addr, "ledger", 1, &[]);
    grant(
        &broker,
        vec![acl(TOPIC, "ledger", LITERAL, "User:txn", WRITE, ALLOW)],
    );
    let producer = || {
        let mut config = as_user(&broker, "txn");
        config.set("transactional.id", "tx-ledger");
        let p: ThreadedProducer<DefaultProducerContext> = config.create().unwrap();
        p
    };
    let refused = producer()
        .init_transactions(Duration::from_secs(15))
        .unwrap_err();
    assert_eq!(
        refused.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed),
        "{refused}"
    );
    grant(
        &broker,
        vec![acl(
            TRANSACTIONAL_ID,
            "tx-",
            PREFIXED,
            "User:txn",
            WRITE,
            ALLOW,
        )],
    );
    let p = producer();
    p.init_transactions(Duration::from_secs(15)).unwrap();
    p.begin_transaction().unwrap();
    p.send(BaseRecord::<(), str>::to("ledger").payload("entry"))
        .map_err(|(e, _)| e)
        .unwrap();
    p.commit_transaction(Duration::from_secs(15)).unwrap();
    // The record and its commit marker.
    assert_eq!(watermarks(&admin_addr, "ledger", 0), (0, 2));
}

/// Writes a CA, a server certificate (127.0.0.1) and a client certificate
/// with subject `CN=<client_cn>` into `dir`; returns the paths by name.
fn issue_certificates(dir: &std::path::Path, client_cn: &str) -> impl Fn(&str) -> String {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "sluice acl test ca");
    let ca = params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, cn, usage) in [
        ("server", "server", ExtendedKeyUsagePurpose::ServerAuth),
        ("client", client_cn, ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    let dir = dir.to_path_buf();
    move |name| dir.join(name).display().to_string()
}

/// On an SSL listener a client certificate names the principal as Kafka's
/// default builder does: `User:` + the subject DN (`User:CN=alice`).
#[test]
fn ssl_client_certificates_name_the_principal() {
    let dir = tempfile::tempdir().unwrap();
    let path = issue_certificates(dir.path(), "alice");
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        r#"
super_users = ["User:admin"]
authorizer = "acl"
[listeners.PLAINTEXT]
protocol = "PLAINTEXT"
listen = "127.0.0.1:0"
principal = "User:admin"
[listeners.MTLS]
protocol = "SSL"
listen = "127.0.0.1:0"
ssl_cert = "server.pem"
ssl_key = "server.key"
ssl_ca = "ca.pem"
ssl_client_auth = "required"
"#,
    )
    .unwrap();
    let broker = Broker::start_with(1, &["--config", config.to_str().unwrap()]);
    let admin_addr = broker.listener("PLAINTEXT");
    create_topic(&admin_addr, "certified", 1, &[]);
    let mut alice = ClientConfig::new();
    alice
        .set("bootstrap.servers", broker.listener("MTLS"))
        .set("broker.address.family", "v4")
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", path("ca.pem"))
        .set("ssl.certificate.location", path("client.pem"))
        .set("ssl.key.location", path("client.key"))
        .set("message.timeout.ms", "8000")
        .set("log_level", "3");
    assert!(produce_one(&alice, "certified", "no").is_err());
    grant(
        &broker,
        vec![acl(
            TOPIC,
            "certified",
            LITERAL,
            "User:CN=alice",
            WRITE,
            ALLOW,
        )],
    );
    produce_one(&alice, "certified", "yes").unwrap();
    assert_eq!(watermarks(&admin_addr, "certified", 0), (0, 1));
}

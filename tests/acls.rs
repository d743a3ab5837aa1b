//! Issue 15's authorization with real clients: `authorizer = "acl"`, a
//! super user on a local PLAINTEXT listener, SCRAM users on a
//! SASL_PLAINTEXT listener. ACLs are managed with CreateAcls, DescribeAcls
//! and DeleteAcls on the wire (the rdkafka crate has no ACL admin calls).

mod acls_common;
mod common;

use std::time::{Duration, Instant};

use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;

use common::raw::{str_bytes, RawClient};
use common::*;

use acls_common::*;

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

/// DeleteRecords needs Delete on the topic: Write is not enough, and a
/// refused one moves nothing.
#[test]
fn deleting_records_needs_delete_on_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(&dir);
    let admin_addr = broker.listener("PLAINTEXT");
    add_user(&admin_addr, "cleaner");
    create_topic(&admin_addr, "purged", 1, &[]);
    produce_values(&admin_addr, "purged", Some(0), &["a".into(), "b".into()]);
    let delete_first = || {
        let admin: rdkafka::admin::AdminClient<_> = as_user(&broker, "cleaner").create().unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("purged", 0, rdkafka::Offset::Offset(1))
            .unwrap();
        let done = futures::executor::block_on(admin.delete_records(&tpl, &admin_opts()))
            .expect("DeleteRecords request");
        done.elements()[0]
            .error()
            .map_err(|e| e.rdkafka_error_code())
    };
    grant(
        &broker,
        vec![acl(TOPIC, "purged", LITERAL, "User:cleaner", WRITE, ALLOW)],
    );
    assert_eq!(
        delete_first(),
        Err(Some(RDKafkaErrorCode::TopicAuthorizationFailed))
    );
    assert_eq!(watermarks(&admin_addr, "purged", 0), (0, 2));
    grant(
        &broker,
        vec![acl(TOPIC, "purged", LITERAL, "User:cleaner", DELETE, ALLOW)],
    );
    assert_eq!(delete_first(), Ok(()));
    assert_eq!(watermarks(&admin_addr, "purged", 0), (1, 2));
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

    // DescribeTopicPartitions the same: the hidden topic is left out of
    // every topic and refused by name, without its id.
    let describe = |raw: &mut RawClient, names: &[&str]| {
        let req = common::raw::describe_topic_partitions_request(names, 100, None);
        raw.call(0, &req).topics
    };
    let name_of = |t: &describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic| {
        t.name.as_ref().map(|n| n.to_string())
    };
    let all = describe(&mut raw, &[]);
    let names: Vec<String> = all.iter().filter_map(name_of).collect();
    assert_eq!(names, ["visible"], "{all:?}");
    assert_eq!(
        all[0].topic_authorized_operations,
        1 << READ | 1 << DESCRIBE
    );
    let named = describe(&mut raw, &["hidden", "visible"]);
    let hidden = named
        .iter()
        .find(|t| name_of(t).as_deref() == Some("hidden"))
        .unwrap();
    assert_eq!(hidden.error_code, 29, "{named:?}");
    assert!(hidden.topic_id.is_nil() && hidden.partitions.is_empty());
    let visible = named
        .iter()
        .find(|t| name_of(t).as_deref() == Some("visible"))
        .unwrap();
    assert_eq!((visible.error_code, visible.partitions.len()), (0, 1));

    // ListOffsets v0, which the version bridge answers itself, checks
    // Describe too.
    let offsets_v0 = |raw: &mut RawClient, topic: &str| {
        use kafka_protocol_v3::messages as old;
        let mut p = old::list_offsets_request::ListOffsetsPartition::default();
        (p.timestamp, p.max_num_offsets) = (-1, 10);
        let mut t = old::list_offsets_request::ListOffsetsTopic::default();
        t.name = common::raw_v3::s(topic).into();
        t.partitions = vec![p];
        let mut r = old::ListOffsetsRequest::default();
        r.replica_id = (-1).into();
        r.topics = vec![t];
        let resp = common::raw_v3::call(raw, 0, &r);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.old_style_offsets.clone())
    };
    assert_eq!(offsets_v0(&mut raw, "visible"), (0, vec![0]));
    assert_eq!(offsets_v0(&mut raw, "hidden"), (29, vec![]));

    // Feature updates need Alter on the cluster.
    let update = UpdateFeaturesRequest::default().with_feature_updates(vec![
        update_features_request::FeatureUpdateKey::default()
            .with_feature(str_bytes("group.version"))
            .with_max_version_level(1)
            .with_upgrade_type(1),
    ]);
    let refused = raw.call(1, &update);
    assert_eq!(refused.error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert!(refused.results.is_empty());
    let accepted = admin_raw.call(1, &update);
    assert_eq!(accepted.error_code, 0);
    assert_eq!(accepted.results[0].error_code, 0, "{accepted:?}");

    // Client quotas need DescribeConfigs / AlterConfigs on the cluster.
    let describe_quotas = DescribeClientQuotasRequest::default();
    assert_eq!(
        raw.call(1, &describe_quotas).error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    assert_eq!(admin_raw.call(1, &describe_quotas).error_code, 0);
    let mut entry = alter_client_quotas_request::EntryData::default();
    let mut entity = alter_client_quotas_request::EntityData::default();
    entity.entity_type = str_bytes("client-id");
    entity.entity_name = Some(str_bytes("app"));
    entry.entity = vec![entity];
    let mut op = alter_client_quotas_request::OpData::default();
    (op.key, op.value) = (str_bytes("producer_byte_rate"), 1024.0);
    entry.ops = vec![op];
    let mut alter_quotas = AlterClientQuotasRequest::default();
    alter_quotas.entries = vec![entry];
    let refused = raw.call(1, &alter_quotas);
    assert_eq!(refused.entries[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(admin_raw.call(1, &describe_quotas).entries, Some(vec![]));

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

/// One voter and one broker-only node under the ACL authorizer, their
/// brokers' principal a super user, with a SASL (PLAIN) listener; `extra`
/// goes at the top of the config file, written in `dir`.
fn acl_cluster(dir: &std::path::Path, extra: &str) -> common::cluster::Cluster {
    let path = dir.join("cluster.toml");
    let config = format!(
        r#"
super_users = ["User:broker"]
authorizer = "acl"
{extra}
[listeners.PLAINTEXT]
protocol = "PLAINTEXT"
listen = "127.0.0.1:0"
principal = "User:broker"
[listeners.SASL]
protocol = "SASL_PLAINTEXT"
listen = "127.0.0.1:0"
sasl_mechanisms = ["PLAIN"]
"#
    );
    std::fs::write(&path, config).unwrap();
    common::cluster::Cluster::start_mixed(
        1,
        1,
        common::cluster::LearnerListen::Fixed,
        &["--config", path.to_str().unwrap()],
    )
}

/// In a cluster, ACLs go through the metadata quorum (created on one node,
/// enforced on the other), and replication keeps working under the ACL
/// authorizer because the brokers' own principal (the inter-broker
/// PLAINTEXT listener's) is a super user: an acks=all produce needs the
/// follower's fetches, which need ClusterAction.
#[test]
fn cluster_acls_replicate_and_brokers_keep_replicating() {
    let dir = tempfile::tempdir().unwrap();
    // One voter and one broker-only node: the ACLs cross the quorum.
    let cluster = acl_cluster(dir.path(), "");
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

/// Delegation tokens in a cluster go through the metadata quorum: one
/// made on node 1 is described and renewed on node 2 (which finds it by
/// the HMAC its own copy of the secret key gives), and an expiry on node 1
/// removes it on node 2. Under the ACL authorizer a principal that neither
/// owns nor renews a token sees it only with DESCRIBE on it.
#[test]
fn cluster_delegation_tokens_cross_the_quorum() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token.key"), "cluster-secret\n").unwrap();
    let cluster = acl_cluster(
        dir.path(),
        r#"delegation_token_secret_key_file = "token.key""#,
    );
    let admin1 = cluster.node(1).listener("PLAINTEXT");
    add_user(&admin1, "alice");
    add_user(&admin1, "mallory");
    let (mut alice1, code) = sasl_plain(cluster.node(1), "alice");
    assert_eq!(code, 0);
    let mut create = CreateDelegationTokenRequest::default();
    create.max_lifetime_ms = -1;
    let made: CreateDelegationTokenResponse = alice1.call(3, &create);
    assert_eq!(made.error_code, 0, "{made:?}");
    assert_eq!(made.principal_name.as_str(), "alice");
    let id = made.token_id.to_string();

    let describe = |client: &mut RawClient| -> Vec<String> {
        // No owners named (null): every owner's.
        let every_owner = DescribeDelegationTokenRequest::default().with_owners(None);
        let r: DescribeDelegationTokenResponse = client.call(3, &every_owner);
        assert_eq!(r.error_code, 0, "{r:?}");
        r.tokens.iter().map(|t| t.token_id.to_string()).collect()
    };
    let (mut alice2, code) = sasl_plain(cluster.node(2), "alice");
    assert_eq!(code, 0);
    cluster.wait_until("the token on node 2", Duration::from_secs(30), || {
        describe(&mut alice2) == [id.clone()]
    });
    let (mut mallory2, code) = sasl_plain(cluster.node(2), "mallory");
    assert_eq!(code, 0);
    assert!(describe(&mut mallory2).is_empty(), "not hers");
    grant(
        cluster.node(1),
        vec![acl(
            DELEGATION_TOKEN,
            &id,
            LITERAL,
            "User:mallory",
            DESCRIBE,
            ALLOW,
        )],
    );
    cluster.wait_until(
        "mallory's DESCRIBE on node 2",
        Duration::from_secs(30),
        || describe(&mut mallory2) == [id.clone()],
    );

    let mut renew = RenewDelegationTokenRequest::default();
    renew.hmac = made.hmac.clone();
    renew.renew_period_ms = 3_600_000;
    let renewed: RenewDelegationTokenResponse = alice2.call(2, &renew);
    assert_eq!(renewed.error_code, 0, "{renewed:?}");
    assert!(renewed.expiry_timestamp_ms < made.expiry_timestamp_ms);
    let refused: RenewDelegationTokenResponse = mallory2.call(2, &renew);
    assert_eq!(refused.error_code, 63, "DELEGATION_TOKEN_OWNER_MISMATCH");

    let mut expire = ExpireDelegationTokenRequest::default();
    expire.hmac = made.hmac;
    expire.expiry_time_period_ms = -1;
    let expired: ExpireDelegationTokenResponse = alice1.call(2, &expire);
    assert_eq!(expired.error_code, 0, "{expired:?}");
    cluster.wait_until("the token gone on node 2", Duration::from_secs(30), || {
        describe(&mut alice2).is_empty()
    });
}

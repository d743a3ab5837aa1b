//! What the ACL tests share: a broker with the ACL authorizer, users,
//! ACLs on the wire (CreateAcls, DescribeAcls), clients logged in as a
//! user, certificates. Not a test target of its own (no main.rs).

#![allow(dead_code)]

use std::time::{Duration, Instant};

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::raw::{str_bytes, RawClient};
use crate::common::*;
// Kafka's ACL codes.
pub const ANY: i8 = 1;
pub const TOPIC: i8 = 2;
pub const GROUP: i8 = 3;
pub const CLUSTER: i8 = 4;
pub const LITERAL: i8 = 3;
pub const PREFIXED: i8 = 4;
pub const ALL: i8 = 2;
pub const READ: i8 = 3;
pub const WRITE: i8 = 4;
pub const DELETE: i8 = 6;
pub const DESCRIBE: i8 = 8;
pub const CREATE: i8 = 5;
pub const DESCRIBE_CONFIGS: i8 = 10;
pub const DENY: i8 = 2;
pub const ALLOW: i8 = 3;

// Kafka's error codes.
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const INVALID_REQUEST: i16 = 42;
pub const SECURITY_DISABLED: i16 = 54;

/// A broker with the ACL authorizer: PLAINTEXT is the local admin
/// listener (a super user), SASL takes SCRAM and PLAIN logins.
pub fn acl_broker(dir: &tempfile::TempDir) -> Broker {
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
pub fn add_user(admin_addr: &str, user: &str) {
    set_scram_user(admin_addr, user, &format!("{user}-secret"));
}

/// An ACL as CreateAcls carries it, for any host.
pub fn acl(
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
pub fn create_acls(raw: &mut RawClient, version: i16, acls: Vec<AclCreation>) -> Vec<i16> {
    let mut req = CreateAclsRequest::default();
    req.creations = acls;
    let resp = raw.call(version, &req);
    resp.results.iter().map(|r| r.error_code).collect()
}

/// Creates ACLs as the admin and asserts each was taken.
pub fn grant(broker: &Broker, acls: Vec<AclCreation>) {
    let mut raw = RawClient::connect(&broker.listener("PLAINTEXT"));
    let n = acls.len();
    assert_eq!(create_acls(&mut raw, 3, acls), vec![0; n]);
}

/// An ACL as DescribeAcls lists it: (resource type, name, pattern,
/// principal, operation, permission).
pub type Listed = (i8, String, i8, String, i8, i8);

/// Every ACL DescribeAcls lists for a filter matching everything.
pub fn describe_all(raw: &mut RawClient, version: i16) -> (i16, Vec<Listed>) {
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
pub fn as_user(broker: &Broker, user: &str) -> ClientConfig {
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

pub fn produce_one(config: &ClientConfig, topic: &str, value: &str) -> Result<(), String> {
    let producer: FutureProducer = config.create().unwrap();
    let record = FutureRecord::<(), str>::to(topic).payload(value);
    futures::executor::block_on(producer.send(record, Duration::from_secs(8)))
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}

/// Consumes partition 0 of `topic` from the start until a message or an
/// error of `wanted` arrives (bounded): Ok(messages seen) or the error.
pub fn consume_first(config: &ClientConfig, topic: &str) -> Result<usize, RDKafkaErrorCode> {
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

pub const TRANSACTIONAL_ID: i8 = 5;
#[allow(dead_code)] // Not every test binary names tokens.
pub const DELEGATION_TOKEN: i8 = 6;

/// A raw connection to the SASL listener logged in with PLAIN as `user`;
/// the handshake's and authentication's first error code.
pub fn sasl_plain(broker: &Broker, user: &str) -> (RawClient, i16) {
    let mut raw = RawClient::connect(&broker.listener("SASL"));
    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = str_bytes("PLAIN");
    let code = raw.call(1, &hs).error_code;
    let mut auth = SaslAuthenticateRequest::default();
    auth.auth_bytes = format!("\0{user}\0{user}-secret").into_bytes().into();
    let code = code.max(raw.call(2, &auth).error_code);
    (raw, code)
}

/// A topic created by the admin with a replication factor, retried
/// (bounded) while the cluster settles.
pub struct NewTopicSpec<'a> {
    pub name: &'a str,
    pub factor: i32,
}

impl NewTopicSpec<'_> {
    pub fn create(&self, admin_addr: &str) {
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

/// Writes a CA, a server certificate (127.0.0.1) and a client certificate
/// with subject `CN=<client_cn>` into `dir`; returns the paths by name.
pub fn issue_certificates(dir: &std::path::Path, client_cn: &str) -> impl Fn(&str) -> String {
    write_certificates(dir, "ca", "server", "client", client_cn);
    let dir = dir.to_path_buf();
    move |name| dir.join(name).display().to_string()
}

//! Inter-broker TLS and SASL (issue 15): 3-node clusters whose brokers
//! replicate to each other over a SASL_SSL (SCRAM-SHA-512) or an mTLS
//! inter-broker listener, and a wrong inter-broker password that keeps the
//! followers out of the ISR until the broker user's password matches.
//! Clients use a PLAINTEXT listener; the inter-broker listener is the only
//! endpoint a fetcher dials, so replicated data crossed the secured one.
//! Certificates are made here with rcgen, in the test's temp dir.

mod common;

use std::path::Path;

use rdkafka::admin::{NewTopic, TopicReplication};

use common::cluster::{Cluster, WAIT};
use common::raw::RawClient;
use common::*;

const ALL3: [i32; 3] = [1, 2, 3];
/// Followers that do not fetch leave the ISR after this (Kafka: 30 s).
const LAG_MS: &str = "3000";

/// Writes `cluster.toml` (every node's config) into `dir` with a PLAINTEXT
/// client listener and the inter-broker listener `BROKER` as `broker`
/// describes it (its `[listeners.BROKER]` table and top-level keys).
fn write_config(dir: &Path, top: &str, broker: &str) -> String {
    let path = dir.join("cluster.toml");
    let text = format!(
        r#"
inter_broker_listener_name = "BROKER"
sasl_failure_delay_ms_max = 200
{top}
[listeners.PLAINTEXT]
protocol = "PLAINTEXT"
listen = "127.0.0.1:0"
principal = "User:admin"
[listeners.BROKER]
listen = "127.0.0.1:0"
ssl_cert = "server.pem"
ssl_key = "server.key"
ssl_ca = "ca.pem"
{broker}
"#
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn start(config: &str, extra: &[&str]) -> Cluster {
    let mut args = vec!["--config", config, "--replica-lag-time-max-ms", LAG_MS];
    args.extend_from_slice(extra);
    let mut cluster = Cluster::start_with(3, &args);
    cluster.use_client_listener("PLAINTEXT");
    cluster
}

/// Writes a quorum CA and a controller certificate into `dir`; the
/// `--controller-ssl-*` flags that name them (the CA's path second).
fn quorum_tls_args(dir: &Path) -> Vec<String> {
    let (ca, cert, key) = write_quorum_certificates(dir, "controller");
    [
        ("--controller-ssl-ca", ca),
        ("--controller-ssl-cert", cert),
        ("--controller-ssl-key", key),
    ]
    .into_iter()
    .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
    .collect()
}

fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

fn consumed_values(bootstrap: &str, topic: &str, n: usize) -> Vec<String> {
    consume_all(bootstrap, topic, 1, n, WAIT)
        .iter()
        .map(payload_str)
        .collect()
}

/// SASL_SSL with SCRAM-SHA-512 between brokers: the broker user is made
/// through the PLAINTEXT listener (the bootstrap an operator follows), the
/// followers join the ISR, an acks=all produce is acknowledged, and once
/// the leader stops the new leader serves every acknowledged record.
#[test]
fn sasl_ssl_scram_replicates_and_survives_the_leader() {
    const TOPIC: &str = "ib-sasl-ssl";
    let dir = tempfile::tempdir().unwrap();
    write_certificates(dir.path(), "ca", "server", "client", "client");
    std::fs::write(dir.path().join("broker.secret"), "broker-secret\n").unwrap();
    let config = write_config(
        dir.path(),
        r#"inter_broker_sasl_mechanism = "SCRAM-SHA-512"
inter_broker_sasl_username = "broker"
inter_broker_sasl_password_file = "broker.secret""#,
        r#"protocol = "SASL_SSL"
sasl_mechanisms = ["SCRAM-SHA-512"]"#,
    );
    // KIP-368: sessions end after 3 s; the fetchers must renew theirs.
    let mut cluster = start(&config, &["--connections-max-reauth-ms", "3000"]);
    set_scram_user(&cluster.client_addr(1), "broker", "broker-secret");
    cluster.create_topic(
        &NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "3"),
    );
    cluster.wait_isr(TOPIC, 1, &ALL3);

    let mut sent = values("scram", 20);
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &sent);
    assert_eq!(
        consumed_values(&cluster.bootstrap(), TOPIC, sent.len()),
        sent
    );

    // Past two session lifetimes: the fetchers renewed their logins on
    // their connections, which the leader would otherwise have closed.
    std::thread::sleep(std::time::Duration::from_secs(7));
    let more = values("renewed", 10);
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &more);
    sent.extend(more);
    for id in ALL3 {
        let log = std::fs::read_to_string(cluster.node(id).stderr_path()).unwrap();
        assert!(
            !log.contains("SASL session expired") && !log.contains("replica fetch failed"),
            "node {id}: an inter-broker session expired instead of being renewed:\n{}",
            cluster.node(id).stderr_tail(20)
        );
    }

    let leader = cluster.leader_of(TOPIC, 0);
    cluster.stop(leader);
    cluster.wait_view(TOPIC, 0, "a new leader", |v| {
        v.leader >= 0 && v.leader != leader
    });
    assert_eq!(
        consumed_values(&cluster.bootstrap(), TOPIC, sent.len()),
        sent,
        "the new leader holds what the old one acknowledged"
    );
}

/// An SSL inter-broker listener that requires client certificates: each
/// broker shows its own certificate (CN=broker) when it dials, and under
/// the ACL authorizer that certificate's principal, a super user, is what
/// lets the followers fetch (ClusterAction).
#[test]
fn mtls_certificate_principal_replicates_under_acls() {
    const TOPIC: &str = "ib-mtls";
    let dir = tempfile::tempdir().unwrap();
    write_certificates(dir.path(), "ca", "server", "broker", "broker");
    let config = write_config(
        dir.path(),
        r#"authorizer = "acl"
super_users = ["User:admin", "User:CN=broker"]
inter_broker_ssl_cert = "broker.pem"
inter_broker_ssl_key = "broker.key""#,
        r#"protocol = "SSL"
ssl_client_auth = "required""#,
    );
    let cluster = start(&config, &[]);
    for id in ALL3 {
        let log = std::fs::read_to_string(cluster.node(id).stderr_path()).unwrap();
        assert!(
            !log.contains("is not a super user"),
            "node {id} takes its certificate's principal for the super-user check:\n{}",
            cluster.node(id).stderr_tail(20)
        );
    }
    cluster.create_topic(
        &NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "3"),
    );
    cluster.wait_isr(TOPIC, 1, &ALL3);
    let sent = values("mtls", 10);
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &sent);
    let leader = cluster.leader_of(TOPIC, 0);
    for id in ALL3.into_iter().filter(|&id| id != leader) {
        cluster.wait_logs_identical(TOPIC, 0, &[leader, id]);
    }
    assert_eq!(
        consumed_values(&cluster.bootstrap(), TOPIC, sent.len()),
        sent
    );
}

/// Every broker logs in with a password the broker user does not have:
/// the followers never fetch, leave the ISR, an acks=all produce gets
/// NOT_ENOUGH_REPLICAS, and each follower says why once (not at every
/// retry) without the password. Once the user's password is the one the
/// brokers have, their retries succeed and the ISR is whole again.
#[test]
fn a_wrong_inter_broker_password_keeps_followers_out_of_the_isr() {
    const TOPIC: &str = "ib-wrong-password";
    const SECRET: &str = "the-brokers-password";
    let dir = tempfile::tempdir().unwrap();
    write_certificates(dir.path(), "ca", "server", "client", "client");
    std::fs::write(dir.path().join("broker.secret"), SECRET).unwrap();
    let config = write_config(
        dir.path(),
        r#"inter_broker_sasl_mechanism = "SCRAM-SHA-256"
inter_broker_sasl_username = "broker"
inter_broker_sasl_password_file = "broker.secret""#,
        r#"protocol = "SASL_SSL""#,
    );
    let cluster = start(&config, &[]);
    set_scram_user(&cluster.client_addr(1), "broker", "another-password");
    cluster.create_topic(
        &NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2"),
    );
    let view = cluster.wait_view(TOPIC, 0, "the ISR shrunk to the leader", |v| {
        v.leader >= 0 && v.isr == [v.leader]
    });
    let leader = view.leader;

    let mut raw = RawClient::connect(&cluster.client_addr(leader));
    let batch = build_owned_batch(&[OwnedRecord {
        key: None,
        value: Some(b"refused".to_vec()),
        timestamp: now_ms(),
        headers: Vec::new(),
    }]);
    let (code, _) = raw.produce_batch_with(TOPIC, 0, -1, 5_000, batch);
    assert_eq!(
        code, 19,
        "acks=all below min.insync.replicas: NOT_ENOUGH_REPLICAS"
    );

    for id in ALL3.into_iter().filter(|&id| id != leader) {
        let log = std::fs::read_to_string(cluster.node(id).stderr_path()).unwrap();
        let said = log
            .lines()
            .filter(|l| l.contains("cannot log in to the leader's inter-broker listener"))
            .collect::<Vec<_>>();
        assert!(
            !said.is_empty() && said.iter().all(|l| l.contains("SASL authentication")),
            "node {id} logs the refused login:\n{}",
            cluster.node(id).stderr_tail(20)
        );
        assert!(
            said.len() <= 2,
            "node {id} logs the same failure once, not at every retry: {said:#?}"
        );
        assert!(!log.contains(SECRET), "node {id} logged the password");
    }

    // Field names may be styled (ANSI); the user's value is what counts.
    let leader_log = std::fs::read_to_string(cluster.node(leader).stderr_path()).unwrap();
    assert!(
        leader_log
            .lines()
            .any(|l| l.contains("SASL authentication failed") && l.contains("broker")),
        "the leader logs the refused broker login with its user:\n{}",
        cluster.node(leader).stderr_tail(20)
    );

    // The operator fixes the user: the fetchers' retries now log in.
    set_scram_user(&cluster.client_addr(leader), "broker", SECRET);
    cluster.wait_isr(TOPIC, 1, &ALL3);
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &values("fixed", 5));
}

/// What a secured inter-broker listener needs is checked at start, with a
/// message naming the missing key or the unreadable file.
#[test]
fn a_secured_inter_broker_listener_without_its_login_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    write_certificates(dir.path(), "ca", "server", "client", "client");
    let data = dir.path().join("data");
    let config = write_config(dir.path(), "", r#"protocol = "SASL_SSL""#);
    let refused = refused_start(&data, &["--config", &config]);
    assert!(
        refused.contains("inter_broker_sasl_mechanism"),
        "names the missing key: {refused}"
    );
    let refused = refused_start(
        &data,
        &[
            "--config",
            &config,
            "--inter-broker-sasl-mechanism",
            "SCRAM-SHA-512",
            "--inter-broker-sasl-username",
            "broker",
            "--inter-broker-sasl-password-file",
            "/nonexistent/broker.secret",
        ],
    );
    assert!(
        refused.contains("/nonexistent/broker.secret"),
        "names the unreadable password file: {refused}"
    );
    // A SASL login on a listener without SASL would be silently unused.
    let config = write_config(
        dir.path(),
        r#"inter_broker_sasl_username = "broker""#,
        r#"protocol = "SSL""#,
    );
    let refused = refused_start(&data, &["--config", &config]);
    assert!(refused.contains("without SASL"), "{refused}");
}

/// SASL_PLAINTEXT with PLAIN between brokers: PLAIN checks the broker
/// user's stored SCRAM credential, and replication flows.
#[test]
fn sasl_plaintext_plain_replicates() {
    const TOPIC: &str = "ib-plain";
    let dir = tempfile::tempdir().unwrap();
    write_certificates(dir.path(), "ca", "server", "client", "client");
    std::fs::write(dir.path().join("broker.secret"), "plain-secret").unwrap();
    let config = write_config(
        dir.path(),
        r#"inter_broker_sasl_mechanism = "PLAIN"
inter_broker_sasl_username = "broker"
inter_broker_sasl_password_file = "broker.secret""#,
        r#"protocol = "SASL_PLAINTEXT"
sasl_mechanisms = ["PLAIN"]"#,
    );
    let cluster = start(&config, &[]);
    set_scram_user(&cluster.client_addr(1), "broker", "plain-secret");
    cluster.create_topic(
        &NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "3"),
    );
    let sent = values("plain", 10);
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &sent);
    cluster.wait_isr(TOPIC, 1, &ALL3);
    assert_eq!(
        consumed_values(&cluster.bootstrap(), TOPIC, sent.len()),
        sent
    );
}

/// Mutual TLS between the controllers too (`--controller-ssl-*`): a
/// 3-node cluster whose metadata quorum speaks only TLS registers every
/// broker, creates a topic, replicates and serves it; a node given only
/// some of the three files refuses to start and says which go together.
#[test]
fn a_cluster_whose_quorum_speaks_tls_serves() {
    const TOPIC: &str = "quorum-tls";
    let dir = tempfile::tempdir().unwrap();
    let quorum_tls = quorum_tls_args(dir.path());
    let ca = quorum_tls[1].clone();
    let cluster = Cluster::start_with(
        3,
        &quorum_tls.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for id in ALL3 {
        let log = std::fs::read_to_string(cluster.node(id).stderr_path()).unwrap();
        assert!(
            log.lines()
                .any(|l| l.contains("controller started") && l.contains("mutual TLS")),
            "node {id}:\n{}",
            cluster.node(id).stderr_tail(20)
        );
    }
    cluster.create_topic(
        &NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "3"),
    );
    cluster.wait_isr(TOPIC, 1, &ALL3);
    let sent = values("quorum-tls", 10);
    produce_values(&cluster.bootstrap(), TOPIC, Some(0), &sent);
    assert_eq!(
        consumed_values(&cluster.bootstrap(), TOPIC, sent.len()),
        sent
    );

    let lone = tempfile::tempdir().unwrap();
    let refused = refused_start(
        lone.path(),
        &[
            "--controller-quorum-voters",
            "1@127.0.0.1:1",
            "--node-id",
            "1",
            "--controller-ssl-ca",
            &ca,
        ],
    );
    assert!(
        refused
            .contains("controller_ssl_ca, controller_ssl_cert and controller_ssl_key go together"),
        "{refused}"
    );
}

/// SIGHUP reloads every certificate a node holds: its listeners', the
/// client side its fetchers dial with, and the metadata quorum's. All
/// files are replaced by a new CA's and every node reloads; then a
/// restarted node (which reads only the new files) registers through the
/// quorum and catches up, and a partition it leads is fetched by the
/// others over new connections. Each step needs the peers to present, and
/// accept, only the new certificates: without the reloads they would
/// refuse it.
#[test]
fn sighup_reloads_the_inter_broker_and_quorum_certificates() {
    const TOPIC: &str = "ib-reload";
    let dir = tempfile::tempdir().unwrap();
    write_certificates(dir.path(), "ca", "server", "broker", "broker");
    let quorum_tls = quorum_tls_args(dir.path());
    let config = write_config(
        dir.path(),
        r#"inter_broker_ssl_cert = "broker.pem"
inter_broker_ssl_key = "broker.key""#,
        r#"protocol = "SSL"
ssl_client_auth = "required""#,
    );
    let quorum_tls: Vec<&str> = quorum_tls.iter().map(String::as_str).collect();
    let mut cluster = start(&config, &quorum_tls);
    cluster.create_topic(
        &NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "3"),
    );
    cluster.wait_isr(TOPIC, 1, &ALL3);

    write_certificates(dir.path(), "ca", "server", "broker", "broker");
    write_quorum_certificates(dir.path(), "controller");
    for id in ALL3 {
        cluster.node(id).sighup();
    }
    for id in ALL3 {
        cluster.wait_until("every certificate reloaded", WAIT, || {
            let log = std::fs::read_to_string(cluster.node(id).stderr_path()).unwrap();
            ["quorum TLS", "inter-broker TLS", "BROKER"]
                .iter()
                .all(|what| {
                    log.lines()
                        .any(|l| l.contains("certificates reloaded") && l.contains(what))
                })
        });
    }
    cluster.stop(3);
    cluster.start_again(3);
    cluster.wait_isr(TOPIC, 1, &ALL3);
    const LED_BY_3: &str = "ib-reload-3";
    cluster.create_topic(&NewTopic::new(
        LED_BY_3,
        1,
        TopicReplication::Variable(&[&[3, 1, 2]]),
    ));
    cluster.wait_view(LED_BY_3, 0, "led by node 3", |v| v.leader == 3);
    cluster.wait_isr(LED_BY_3, 1, &ALL3);
    let sent = values("reloaded", 10);
    produce_values(&cluster.bootstrap(), LED_BY_3, Some(0), &sent);
    cluster.wait_logs_identical(LED_BY_3, 0, &ALL3);
}

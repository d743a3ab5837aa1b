//! Issue 15's first half with real clients: listeners, TLS (rustls on the
//! broker), SASL SCRAM-SHA-512/256 and PLAIN, SCRAM credential APIs, KIP-368
//! re-authentication and certificate reload on SIGHUP. Certificates are made
//! here with rcgen, in the test's temp dir.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

use common::raw::{str_bytes, RawClient};
use common::*;

/// A CA and the files the broker and clients use, in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.issue("ca", "server", "client");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<ca>.pem`, `<server>.pem`/`.key` (localhost, 127.0.0.1) and
    /// `<client>.pem`/`.key`, all signed by a new CA.
    fn issue(&self, ca: &str, server: &str, client: &str) {
        write_certificates(self.dir.path(), ca, server, client, client);
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// A broker with a PLAINTEXT (admin), a SASL_SSL, a SASL_PLAINTEXT and an
/// SSL listener that requires client certificates.
fn secure_broker(pki: &Pki, extra: &str) -> Broker {
    let config = format!(
        r#"
super_users = ["User:admin"]
authorizer = "none"
sasl_failure_delay_ms_max = 200
{extra}
[listeners.PLAINTEXT]
protocol = "PLAINTEXT"
listen = "127.0.0.1:0"
principal = "User:admin"
[listeners.SECURE]
protocol = "SASL_SSL"
listen = "127.0.0.1:0"
ssl_cert = "server.pem"
ssl_key = "server.key"
sasl_mechanisms = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
[listeners.SASLPLAIN]
protocol = "SASL_PLAINTEXT"
listen = "127.0.0.1:0"
[listeners.MTLS]
protocol = "SSL"
listen = "127.0.0.1:0"
ssl_cert = "server.pem"
ssl_key = "server.key"
ssl_ca = "ca.pem"
ssl_client_auth = "required"
"#
    );
    let path = pki.path("broker.toml");
    std::fs::write(&path, config).unwrap();
    Broker::start_with(1, &["--config", path.to_str().unwrap()])
}

/// Sets `user`'s credentials for both SCRAM mechanisms over the PLAINTEXT listener.
fn add_user(broker: &Broker, user: &str, password: &str) {
    set_scram_user(&broker.listener("PLAINTEXT"), user, password);
}

fn client(bootstrap: &str, settings: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "5000")
        .set("message.timeout.ms", "8000")
        .set("log_level", "3");
    for (k, v) in settings {
        c.set(*k, *v);
    }
    c
}

fn scram512(pki: &Pki, bootstrap: &str, password: &str) -> ClientConfig {
    client(
        bootstrap,
        &[
            ("security.protocol", "SASL_SSL"),
            ("ssl.ca.location", &pki.p("ca.pem")),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", password),
        ],
    )
}

fn produce_one(config: &ClientConfig, topic: &str, value: &str) -> Result<(), String> {
    let producer: FutureProducer = config.create().unwrap();
    let record = FutureRecord::<(), str>::to(topic).payload(value);
    futures::executor::block_on(producer.send(record, Duration::from_secs(8)))
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}

fn broker_port(config: &ClientConfig) -> Result<i32, String> {
    let consumer: BaseConsumer = config.create().unwrap();
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(8))
        .map_err(|e| e.to_string())?;
    Ok(md.brokers()[0].port())
}

fn port_of(addr: &str) -> i32 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// librdkafka produces and consumes over SASL_SSL with SCRAM-SHA-512; a
/// wrong password is refused and writes nothing.
#[test]
fn scram_sha512_over_sasl_ssl_produces_and_consumes() {
    let pki = Pki::new();
    let broker = secure_broker(&pki, "");
    add_user(&broker, "alice", "alice-secret");
    create_topic(&broker.listener("PLAINTEXT"), "secure", 1, &[]);
    let secure = broker.listener("SECURE");

    let bad = scram512(&pki, &secure, "wrong");
    let refused = produce_one(&bad, "secure", "never").unwrap_err();
    assert!(!refused.is_empty());
    assert_eq!(
        watermarks(&broker.listener("PLAINTEXT"), "secure", 0),
        (0, 0)
    );
    let log = std::fs::read_to_string(broker.stderr_path()).unwrap();
    assert!(log.contains("SASL authentication failed"), "{log}");
    assert!(!log.contains("wrong"), "the secret must not be logged");

    let good = scram512(&pki, &secure, "alice-secret");
    for i in 0..10 {
        produce_one(&good, "secure", &format!("m{i}")).unwrap();
    }
    let mut consumer_config = good.clone();
    consumer_config
        .set("group.id", "secure-readers")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = consumer_config.create().unwrap();
    consumer.subscribe(&["secure"]).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 10 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(got, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    // SCRAM-SHA-256 works with the same user.
    let mut sha256 = good.clone();
    sha256.set("sasl.mechanisms", "SCRAM-SHA-256");
    produce_one(&sha256, "secure", "sha256").unwrap();
}

/// PLAIN over SASL_PLAINTEXT checks the stored SCRAM credential.
#[test]
fn plain_over_sasl_plaintext() {
    let pki = Pki::new();
    let broker = secure_broker(&pki, r#"metrics_listen = "127.0.0.1:0""#);
    add_user(&broker, "alice", "alice-secret");
    let plain = |password: &str| {
        client(
            &broker.listener("SASLPLAIN"),
            &[
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanisms", "PLAIN"),
                ("sasl.username", "alice"),
                ("sasl.password", password),
            ],
        )
    };
    produce_one(&plain("alice-secret"), "plain-topic", "hello").unwrap();
    assert!(produce_one(&plain("nope"), "plain-topic", "never").is_err());
    assert_eq!(
        watermarks(&broker.listener("PLAINTEXT"), "plain-topic", 0),
        (0, 1)
    );
    // Counted per listener: the logins each way, and the connections
    // all closed once the clients are gone.
    let of = |name: &str, listener: &str| format!("{name}{{listener=\"{listener}\"}}");
    let body = broker.metrics_text();
    for name in [
        "sluice_authentications_total",
        "sluice_authentications_failed_total",
    ] {
        let counted = series_value(&body, &of(name, "SASLPLAIN"));
        assert!(counted >= Some(1), "{name}: {counted:?}");
        assert_eq!(
            series_value(&body, &of(name, "PLAINTEXT")),
            Some(0),
            "{name}"
        );
    }
    let accepted = series_value(&body, &of("sluice_connections_accepted_total", "SASLPLAIN"));
    assert!(accepted >= Some(2), "{accepted:?}");
    assert_eq!(
        broker.wait_series(&of("sluice_connections", "SASLPLAIN"), |v| v == Some(0)),
        Some(0)
    );
}

/// An SSL listener requiring client certificates refuses a client without one.
#[test]
fn ssl_client_auth_required() {
    let pki = Pki::new();
    let broker = secure_broker(&pki, r#"metrics_listen = "127.0.0.1:0""#);
    let mtls = broker.listener("MTLS");
    let with_cert = client(
        &mtls,
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &pki.p("ca.pem")),
            ("ssl.certificate.location", &pki.p("client.pem")),
            ("ssl.key.location", &pki.p("client.key")),
        ],
    );
    assert_eq!(broker_port(&with_cert), Ok(port_of(&mtls)));
    let without = client(
        &mtls,
        &[
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &pki.p("ca.pem")),
        ],
    );
    assert!(broker_port(&without).is_err());
    let body = broker.metrics_text();
    for name in [
        "sluice_authentications_total",
        "sluice_authentications_failed_total",
    ] {
        let counted = series_value(&body, &format!("{name}{{listener=\"MTLS\"}}"));
        assert!(counted >= Some(1), "{name}: {counted:?}");
    }
}

/// Metadata over each listener advertises that listener's endpoint.
#[test]
fn metadata_advertises_each_listeners_endpoint() {
    let pki = Pki::new();
    let broker = secure_broker(&pki, "");
    add_user(&broker, "alice", "alice-secret");
    let plaintext = broker.listener("PLAINTEXT");
    assert_eq!(
        broker_port(&client(&plaintext, &[])),
        Ok(port_of(&plaintext))
    );
    let secure = broker.listener("SECURE");
    assert_eq!(
        broker_port(&scram512(&pki, &secure, "alice-secret")),
        Ok(port_of(&secure))
    );
    let saslplain = broker.listener("SASLPLAIN");
    let c = client(
        &saslplain,
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanisms", "SCRAM-SHA-256"),
            ("sasl.username", "alice"),
            ("sasl.password", "alice-secret"),
        ],
    );
    assert_eq!(broker_port(&c), Ok(port_of(&saslplain)));
    // DescribeCluster and FindCoordinator say the same (raw, PLAINTEXT).
    let mut raw = RawClient::connect(&plaintext);
    let dc = raw.call(0, &DescribeClusterRequest::default());
    assert_eq!(dc.brokers[0].port, port_of(&plaintext));
    let mut fc = FindCoordinatorRequest::default();
    fc.key = str_bytes("g");
    let fc = raw.call(1, &fc);
    assert_eq!((fc.error_code, fc.port), (0, port_of(&plaintext)));
}

fn sasl_raw(addr: &str, mechanism: &str, version: i16) -> (RawClient, SaslHandshakeResponse) {
    let mut raw = RawClient::connect(addr);
    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = str_bytes(mechanism);
    let resp = raw.call(version, &hs);
    (raw, resp)
}

fn authenticate(raw: &mut RawClient, version: i16, token: &[u8]) -> SaslAuthenticateResponse {
    let mut req = SaslAuthenticateRequest::default();
    req.auth_bytes = bytes::Bytes::copy_from_slice(token);
    raw.call(version, &req)
}

/// SaslHandshake v0-1 and SaslAuthenticate v0-2 on the wire: mechanisms
/// offered, PLAIN at each version, a v0 handshake's bare token, requests
/// before authentication closing the connection, a failure closing it.
#[test]
fn sasl_apis_byte_level() {
    let pki = Pki::new();
    let broker = secure_broker(&pki, "connections_max_reauth_ms = 1500");
    add_user(&broker, "alice", "alice-secret");
    let addr = broker.listener("SASLPLAIN");
    for v in 0..=1 {
        let (_, resp) = sasl_raw(&addr, "GSSAPI", v);
        assert_eq!(resp.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
        let offered: Vec<_> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
        assert_eq!(offered, ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]);
    }
    for v in 0..=2 {
        let (mut raw, resp) = sasl_raw(&addr, "PLAIN", 1);
        assert_eq!(resp.error_code, 0);
        let resp = authenticate(&mut raw, v, b"\0alice\0alice-secret");
        assert_eq!(resp.error_code, 0, "v{v}: {resp:?}");
        if v >= 1 {
            assert_eq!(resp.session_lifetime_ms, 1500);
        }
        let md = raw.call(1, &MetadataRequest::default());
        assert_eq!(md.brokers[0].port, port_of(&addr));
        if v == 2 {
            // KIP-368: past the session, a request closes the connection.
            std::thread::sleep(Duration::from_millis(1700));
            raw.send(1, &MetadataRequest::default());
            assert!(raw.wait_closed(Duration::from_secs(10)));
        }
    }
    // v0 handshake: the token goes bare; an empty bare frame answers success.
    let (mut raw, resp) = sasl_raw(&addr, "PLAIN", 0);
    assert_eq!(resp.error_code, 0);
    let token = b"\0alice\0alice-secret";
    let mut frame = (token.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(token);
    raw.send_bytes(&frame).unwrap();
    assert!(raw.read_frame().unwrap().is_empty());
    raw.call(1, &MetadataRequest::default());
    // Before authentication: ApiVersions is served, Metadata closes.
    let mut raw = RawClient::connect(&addr);
    raw.call(3, &common::raw::api_versions_request());
    raw.send(1, &MetadataRequest::default());
    assert!(raw.wait_closed(Duration::from_secs(10)));
    // A wrong password: SASL_AUTHENTICATION_FAILED, then closed.
    let (mut raw, _) = sasl_raw(&addr, "PLAIN", 1);
    let resp = authenticate(&mut raw, 2, b"\0alice\0wrong");
    assert_eq!(resp.error_code, 58);
    assert!(raw.wait_closed(Duration::from_secs(10)));
    // SaslAuthenticate before a handshake: ILLEGAL_SASL_STATE.
    let mut raw = RawClient::connect(&addr);
    assert_eq!(authenticate(&mut raw, 1, b"x").error_code, 34);
}

/// The delegation token APIs answer as a Kafka broker without
/// `delegation.token.secret.key`: DELEGATION_TOKEN_REQUEST_NOT_ALLOWED on a
/// PLAINTEXT connection (a token needs an authenticated one),
/// DELEGATION_TOKEN_AUTH_DISABLED on a SASL one; Create names the
/// requester as the owner.
#[test]
fn delegation_tokens_are_refused_as_kafka_refuses_them() {
    const AUTH_DISABLED: i16 = 61;
    const REQUEST_NOT_ALLOWED: i16 = 64;
    let pki = Pki::new();
    let broker = secure_broker(&pki, "");
    add_user(&broker, "alice", "alice-secret");
    let mut plaintext = RawClient::connect(&broker.listener("PLAINTEXT"));
    let (mut sasl, _) = sasl_raw(&broker.listener("SASLPLAIN"), "PLAIN", 1);
    assert_eq!(
        authenticate(&mut sasl, 2, b"\0alice\0alice-secret").error_code,
        0
    );
    for (raw, expected) in [
        (&mut plaintext, REQUEST_NOT_ALLOWED),
        (&mut sasl, AUTH_DISABLED),
    ] {
        for v in 1..=3 {
            let created = raw.call(v, &CreateDelegationTokenRequest::default());
            assert_eq!(created.error_code, expected, "create v{v}");
            assert!(created.hmac.is_empty());
            let described = raw.call(v, &DescribeDelegationTokenRequest::default());
            assert_eq!(described.error_code, expected, "describe v{v}");
            assert!(described.tokens.is_empty());
        }
        for v in 1..=2 {
            let renew =
                RenewDelegationTokenRequest::default().with_hmac(bytes::Bytes::from_static(b"h"));
            assert_eq!(raw.call(v, &renew).error_code, expected, "renew v{v}");
            let expire =
                ExpireDelegationTokenRequest::default().with_hmac(bytes::Bytes::from_static(b"h"));
            assert_eq!(raw.call(v, &expire).error_code, expected, "expire v{v}");
        }
    }
    let created = sasl.call(3, &CreateDelegationTokenRequest::default());
    assert_eq!(
        (
            created.principal_type.as_str(),
            created.principal_name.as_str()
        ),
        ("User", "alice")
    );
    assert_eq!(created.token_requester_principal_name.as_str(), "alice");
}

/// DescribeUserScramCredentials and AlterUserScramCredentials v0: results
/// and Kafka's error codes, and the credentials persist across a restart.
#[test]
fn scram_credential_apis_byte_level() {
    let pki = Pki::new();
    let mut broker = secure_broker(&pki, "");
    add_user(&broker, "alice", "alice-secret");
    let mut raw = RawClient::connect(&broker.listener("PLAINTEXT"));
    let describe = |raw: &mut RawClient, users: Option<&[&str]>| {
        let mut req = DescribeUserScramCredentialsRequest::default();
        req.users = users.map(|us| {
            us.iter()
                .map(|u| {
                    let mut n = UserName::default();
                    n.name = str_bytes(u);
                    n
                })
                .collect()
        });
        raw.call(0, &req)
    };
    let all = describe(&mut raw, None);
    assert_eq!(all.results.len(), 1);
    let infos: Vec<_> = all.results[0]
        .credential_infos
        .iter()
        .map(|i| (i.mechanism, i.iterations))
        .collect();
    assert_eq!(infos, [(1, 4096), (2, 4096)]);
    let some = describe(&mut raw, Some(&["alice", "bob", "bob", "zed"]));
    let codes: Vec<_> = some
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    // DUPLICATE_RESOURCE, RESOURCE_NOT_FOUND.
    let want = [("alice", 0), ("bob", 92), ("zed", 91)].map(|(u, c)| (u.to_string(), c));
    assert_eq!(codes, want, "{some:?}");

    let mut req = AlterUserScramCredentialsRequest::default();
    let mut few = ScramCredentialUpsertion::default();
    few.name = str_bytes("carol");
    few.mechanism = 2;
    few.iterations = 100;
    few.salt = bytes::Bytes::from_static(b"s");
    few.salted_password = bytes::Bytes::from_static(b"p");
    req.upsertions.push(few);
    let mut unknown = ScramCredentialDeletion::default();
    unknown.name = str_bytes("dave");
    unknown.mechanism = 1;
    req.deletions.push(unknown);
    let mut bad_mech = ScramCredentialDeletion::default();
    bad_mech.name = str_bytes("erin");
    bad_mech.mechanism = 9;
    req.deletions.push(bad_mech);
    let mut delete = ScramCredentialDeletion::default();
    delete.name = str_bytes("alice");
    delete.mechanism = 1;
    req.deletions.push(delete);
    let resp = raw.call(0, &req);
    let by_user: std::collections::BTreeMap<String, i16> = resp
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    // UNACCEPTABLE_CREDENTIAL, RESOURCE_NOT_FOUND, UNSUPPORTED_SASL_MECHANISM, ok.
    assert_eq!(by_user["carol"], 93, "{resp:?}");
    assert_eq!(by_user["dave"], 91, "{resp:?}");
    assert_eq!(by_user["erin"], 33, "{resp:?}");
    assert_eq!(by_user["alice"], 0, "{resp:?}");

    broker.restart();
    let mut raw = RawClient::connect(&broker.listener("PLAINTEXT"));
    let after = describe(&mut raw, Some(&["alice"]));
    let infos: Vec<_> = after.results[0]
        .credential_infos
        .iter()
        .map(|i| i.mechanism)
        .collect();
    assert_eq!(infos, [2], "only SCRAM-SHA-512 is left, persisted");
    let topics = std::fs::read_to_string(broker.data_dir().join("topics.toml")).unwrap();
    assert!(!topics.contains("alice-secret"));
}

/// A blocking rustls client trusting `ca`.
fn tls_connect(
    addr: &str,
    ca: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// ApiVersions over a TLS stream; Err when the handshake or exchange fails.
fn api_versions_over(
    s: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let frame = common::raw::request_frame(3, 7, &common::raw::api_versions_request());
    s.write_all(&frame)?;
    s.flush()?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let mut body = vec![0; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body)?;
    Ok(s.conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default())
}

/// SIGHUP reloads the certificate: new connections get the new one, an open
/// connection keeps working.
#[test]
fn sighup_reloads_certificates() {
    let pki = Pki::new();
    let broker = secure_broker(&pki, "");
    let addr = broker.listener("SECURE");
    let mut old = tls_connect(&addr, &pki.path("ca.pem"));
    let first_cert = api_versions_over(&mut old).unwrap();
    // A new CA and server certificate, written over the broker's files.
    pki.issue("ca2", "server", "client2");
    broker.sighup();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let new_cert = loop {
        let mut fresh = tls_connect(&addr, &pki.path("ca2.pem"));
        if let Ok(cert) = api_versions_over(&mut fresh) {
            break cert;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never served the new certificate"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_ne!(first_cert, new_cert);
    // The old CA no longer verifies new connections.
    assert!(api_versions_over(&mut tls_connect(&addr, &pki.path("ca.pem"))).is_err());
    // The connection made before the reload still works.
    assert_eq!(api_versions_over(&mut old).unwrap(), first_cert);
    let log = std::fs::read_to_string(broker.stderr_path()).unwrap();
    assert!(log.contains("TLS certificates reloaded"), "{log}");
}

/// In a cluster, credentials go through the metadata quorum: set on one
/// broker, they authenticate on the other, and each broker's Metadata over
/// the SASL listener gives every broker's SASL endpoint.
#[test]
fn cluster_credentials_and_listener_endpoints() {
    // One voter and one broker-only node: the credentials cross the quorum.
    let cluster = common::cluster::Cluster::start_mixed(
        1,
        1,
        common::cluster::LearnerListen::Fixed,
        &[
            "--listener",
            "PLAINTEXT=PLAINTEXT://127.0.0.1:0",
            "--listener",
            "SASL=SASL_PLAINTEXT://127.0.0.1:0",
        ],
    );
    add_user(cluster.node(1), "alice", "alice-secret");
    let sasl2 = cluster.node(2).listener("SASL");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut raw = loop {
        // PLAIN checks the same stored SCRAM credential.
        let (mut plain, _) = sasl_raw(&sasl2, "PLAIN", 1);
        if authenticate(&mut plain, 2, b"\0alice\0alice-secret").error_code == 0 {
            break plain;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "credentials never reached broker 2"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let md = raw.call(9, &MetadataRequest::default());
    let mut ports: Vec<i32> = md.brokers.iter().map(|b| b.port).collect();
    ports.sort();
    let mut want: Vec<i32> = [1, 2]
        .iter()
        .map(|id| port_of(&cluster.node(*id).listener("SASL")))
        .collect();
    want.sort();
    assert_eq!(ports, want);
}

/// kafkajs over SASL_SSL with PLAIN: it checks the broker's certificate
/// against the test CA, authenticates against the stored credential,
/// produces and reads back through a group; a wrong password is refused.
#[test]
fn kafkajs_over_sasl_ssl_with_plain() {
    use common::clients::{json_result, node_modules, script, strings};
    let pki = Pki::new();
    let broker = secure_broker(&pki, "");
    add_user(&broker, "alice", "alice-secret");
    create_topic(&broker.listener("PLAINTEXT"), "kjs-tls", 1, &[]);
    let run = |password: &str, count: usize| {
        let output = std::process::Command::new("node")
            .arg(script("kafkajs_sasl_ssl.js"))
            .args([
                &broker.listener("SECURE"),
                "kjs-tls",
                &pki.p("ca.pem"),
                "alice",
                password,
                &count.to_string(),
            ])
            .env("NODE_PATH", node_modules())
            .output()
            .expect("run node");
        json_result(&output, &broker)
    };
    let refused = run("wrong", 1);
    assert_eq!(
        refused["error"], "KafkaJSSASLAuthenticationError",
        "{refused}"
    );
    assert_eq!(
        watermarks(&broker.listener("PLAINTEXT"), "kjs-tls", 0),
        (0, 0)
    );
    let ok = run("alice-secret", 20);
    assert_eq!(ok["acked"], 20, "{ok}");
    let want: Vec<String> = (0..20).map(|i| format!("tls-{i}")).collect();
    assert_eq!(strings(&ok, "consumed"), want);
}

/// The test's identity provider: a P-256 key whose public half is in the
/// broker's JWKS file (kid `idp-1`), and the tokens it signs.
struct IdentityProvider {
    key: rcgen::KeyPair,
    /// The key's id, in the JWKS and in each token's header.
    kid: String,
}

impl IdentityProvider {
    fn new() -> IdentityProvider {
        IdentityProvider::with_kid("idp-1")
    }

    fn with_kid(kid: &str) -> IdentityProvider {
        IdentityProvider {
            key: rcgen::KeyPair::generate().unwrap(),
            kid: kid.into(),
        }
    }

    fn jwks(&self) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let point = self.key.public_key_raw();
        serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
            "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..65]),
        }]})
        .to_string()
    }

    /// A token for `sub` to `aud`, expiring in ten minutes: (token, its
    /// expiry in ms since the epoch).
    fn token(&self, sub: &str, aud: &str) -> (String, i64) {
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        let exp = now_ms() / 1000 + 600;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let iat = now_ms() / 1000;
        let claims = serde_json::json!(
            {"sub": sub, "aud": aud, "iss": "https://idp.test", "exp": exp, "iat": iat}
        );
        let key = EncodingKey::from_ec_der(&self.key.serialize_der());
        (encode(&header, &claims, &key).unwrap(), exp * 1000)
    }
}

/// librdkafka's OAUTHBEARER login with a token the test hands it.
struct OAuthContext {
    token: (String, i64),
}

impl rdkafka::ClientContext for OAuthContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        Ok(rdkafka::client::OAuthToken {
            token: self.token.0.clone(),
            principal_name: "alice".into(),
            lifetime_ms: self.token.1,
        })
    }
}

impl rdkafka::consumer::ConsumerContext for OAuthContext {}

/// A broker whose OAUTH listener takes OAUTHBEARER tokens `idp` signs for
/// the audience `kafka` from the issuer `https://idp.test`.
fn oauth_broker(pki: &Pki, idp: &IdentityProvider) -> Broker {
    std::fs::write(pki.path("jwks.json"), idp.jwks()).unwrap();
    oauth_broker_with(pki, r#"sasl_oauthbearer_jwks_file = "jwks.json""#)
}

/// A broker whose OAUTH listener takes OAUTHBEARER tokens for the audience
/// `kafka` from the issuer `https://idp.test`, checked against the keys
/// `keys` (the config's lines naming a JWKS) names.
fn oauth_broker_with(pki: &Pki, keys: &str) -> Broker {
    secure_broker(
        pki,
        &format!(
            r#"{keys}
sasl_oauthbearer_expected_audience = ["kafka"]
sasl_oauthbearer_expected_issuer = "https://idp.test"
[listeners.OAUTH]
protocol = "SASL_PLAINTEXT"
listen = "127.0.0.1:0"
sasl_mechanisms = ["OAUTHBEARER"]"#
        ),
    )
}

fn oauth_config(bootstrap: &str) -> ClientConfig {
    client(
        bootstrap,
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanisms", "OAUTHBEARER"),
        ],
    )
}

/// SASL OAUTHBEARER (KIP-768) with librdkafka: a token the test's identity
/// provider signed, for the audience the broker expects, produces and
/// consumes as its subject; a token for another audience and one signed
/// by another key are refused and write nothing. Once the JWKS file names
/// the other key and SIGHUP reloads it, that key's tokens log in and the
/// first key's no longer do.
#[test]
fn oauthbearer_tokens_log_in_as_their_subject() {
    let pki = Pki::new();
    let idp = IdentityProvider::new();
    let broker = oauth_broker(&pki, &idp);
    create_topic(&broker.listener("PLAINTEXT"), "oauth", 1, &[]);
    let bootstrap = broker.listener("OAUTH");
    // A refused login fails the send within its message timeout.
    let send = |token: (String, i64), value: &str, timeout_ms: u64| -> Result<(), String> {
        let producer: FutureProducer<OAuthContext> = oauth_config(&bootstrap)
            .set("message.timeout.ms", timeout_ms.to_string())
            .create_with_context(OAuthContext { token })
            .unwrap();
        let record = FutureRecord::<(), str>::to("oauth").payload(value);
        let timeout = Duration::from_millis(timeout_ms);
        futures::executor::block_on(producer.send(record, timeout))
            .map(|_| ())
            .map_err(|(e, _)| e.to_string())
    };
    for i in 0..5 {
        send(idp.token("alice", "kafka"), &format!("o-{i}"), 8_000).unwrap();
    }
    let consumer: BaseConsumer<OAuthContext> = oauth_config(&bootstrap)
        .set("group.id", "oauth-readers")
        .set("auto.offset.reset", "earliest")
        .create_with_context(OAuthContext {
            token: idp.token("alice", "kafka"),
        })
        .unwrap();
    consumer.subscribe(&["oauth"]).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 5 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    let want: Vec<String> = (0..5).map(|i| format!("o-{i}")).collect();
    assert_eq!(got, want);

    let another_audience = idp.token("alice", "another-service");
    assert!(send(another_audience, "never", 3_000).is_err());
    let rotated = IdentityProvider::new();
    assert!(send(rotated.token("alice", "kafka"), "never", 3_000).is_err());
    assert_eq!(
        watermarks(&broker.listener("PLAINTEXT"), "oauth", 0),
        (0, 5),
        "nothing written by a refused token"
    );

    // The provider rotates its key: SIGHUP reads the JWKS file again, and
    // the new key's tokens log in.
    std::fs::write(pki.path("jwks.json"), rotated.jwks()).unwrap();
    broker.sighup();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while send(rotated.token("alice", "kafka"), "rotated", 3_000).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated key never logged in"
        );
    }
    assert!(send(idp.token("alice", "kafka"), "never", 3_000).is_err());
    let log = std::fs::read_to_string(broker.stderr_path()).unwrap();
    assert!(log.contains("OAUTHBEARER keys reloaded"), "{log}");
}

/// An identity provider's web server on loopback, over HTTPS with the
/// PKI's server certificate (127.0.0.1) or plain HTTP: each path's body as
/// set (its JWKS at `/keys`, a token endpoint's answer), each path's
/// requests counted.
struct IdpServer {
    /// `https://127.0.0.1:port` or `http://...`, no trailing slash.
    base: String,
    bodies: Arc<std::sync::Mutex<BTreeMap<String, String>>>,
    requests: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
}

/// A request's head and body, read whole (bounded) so that closing the
/// connection after the answer does not reset it.
fn read_request(stream: &mut (impl std::io::Read + ?Sized)) -> Option<String> {
    const HEAD_MAX: usize = 16_384;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if request.len() > HEAD_MAX {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_string();
    let body_len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
        .min(HEAD_MAX);
    while request.len() < head_end + body_len {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}

impl IdpServer {
    fn start(tls: Option<&Pki>) -> IdpServer {
        use sluice::security::pem;
        use std::io::Write;
        let config = tls.map(|pki| {
            let certs = pem::certs(&pki.path("server.pem")).unwrap();
            let key = pem::private_key(&pki.path("server.key")).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(certs, key)
                    .unwrap(),
            )
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let bodies = Arc::new(std::sync::Mutex::new(BTreeMap::<String, String>::new()));
        let requests = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let (served, counted) = (bodies.clone(), requests.clone());
        let answer = move |stream: &mut dyn ReadWrite| {
            let Some(head) = read_request(stream) else {
                return;
            };
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            let body = served.lock().unwrap().get(&path).cloned();
            *counted.lock().unwrap().entry(path).or_insert(0) += 1;
            let (status, body) = match body {
                Some(body) => ("200 OK", body),
                None => ("404 Not Found", String::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.flush();
        };
        // Lives until the test process ends, blocked in accept meanwhile.
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                match &config {
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                        let mut tls = rustls::StreamOwned::new(conn, stream);
                        answer(&mut tls);
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                    None => answer(&mut stream),
                }
            }
        });
        IdpServer {
            base,
            bodies,
            requests,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn serve(&self, path: &str, body: String) {
        self.bodies.lock().unwrap().insert(path.into(), body);
    }

    fn requests(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// A stream the IdP server answers on: TLS or plain TCP.
trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// OAUTHBEARER with the keys at the provider's JWKS endpoint (Kafka's
/// `sasl.oauthbearer.jwks.endpoint.url`), over HTTPS checked against the
/// configured CA: fetched before the broker serves, so the first token
/// logs in; when the provider rotates to a new key, the first token naming
/// it has the keys fetched again (no SIGHUP, no restart), and from then on
/// its tokens log in and the retired key's no longer do. A fetch that
/// brings no JWKS is counted at `/metrics` and keeps the keys in use.
#[test]
fn oauthbearer_keys_come_from_the_providers_jwks_endpoint() {
    let pki = Pki::new();
    let first = IdentityProvider::with_kid("key-1");
    let endpoint = IdpServer::start(Some(&pki));
    endpoint.serve("/keys", first.jwks());
    let broker = oauth_broker_with(
        &pki,
        &format!(
            "sasl_oauthbearer_jwks_endpoint_url = \"{}\"
sasl_oauthbearer_jwks_endpoint_ca_file = \"ca.pem\"
metrics_listen = \"127.0.0.1:0\"",
            endpoint.url("/keys")
        ),
    );
    assert_eq!(
        endpoint.requests("/keys"),
        1,
        "fetched once, before serving"
    );
    create_topic(&broker.listener("PLAINTEXT"), "oauth-endpoint", 1, &[]);
    let bootstrap = broker.listener("OAUTH");
    let send = |token: (String, i64), value: &str| -> Result<(), String> {
        let producer: FutureProducer<OAuthContext> = oauth_config(&bootstrap)
            .set("message.timeout.ms", "3000")
            .create_with_context(OAuthContext { token })
            .unwrap();
        let record = FutureRecord::<(), str>::to("oauth-endpoint").payload(value);
        futures::executor::block_on(producer.send(record, Duration::from_secs(3)))
            .map(|_| ())
            .map_err(|(e, _)| e.to_string())
    };
    send(first.token("alice", "kafka"), "first").unwrap();

    let second = IdentityProvider::with_kid("key-2");
    endpoint.serve("/keys", second.jwks());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut attempts = 0;
    while send(second.token("alice", "kafka"), "second").is_err() {
        attempts += 1;
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated key never logged in ({attempts} attempts, {} fetches)",
            endpoint.requests("/keys")
        );
    }
    assert!(
        endpoint.requests("/keys") >= 2,
        "the unknown key id had the keys fetched again"
    );
    assert!(broker.metric("sluice_oauthbearer_jwks_fetches_total") >= 2);
    assert_eq!(
        broker.metric("sluice_oauthbearer_jwks_fetch_failures_total"),
        0
    );
    assert!(send(first.token("alice", "kafka"), "never").is_err());
    assert_eq!(
        watermarks(&broker.listener("PLAINTEXT"), "oauth-endpoint", 0),
        (0, 2),
        "one write per key that was current"
    );
    let log = std::fs::read_to_string(broker.stderr_path()).unwrap();
    assert!(log.contains("OAUTHBEARER keys fetched"), "{log}");

    // The provider answers nonsense: SIGHUP's fetch fails, is counted, and
    // the keys in use stay.
    endpoint.serve("/keys", "<html>maintenance</html>".into());
    broker.sighup();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while broker.metric("sluice_oauthbearer_jwks_fetch_failures_total") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the failed fetch was never counted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    send(second.token("alice", "kafka"), "kept").unwrap();
}

/// A JWKS endpoint that does not answer, or whose certificate the
/// configured CA did not sign, stops the start (as it stops Kafka's): a
/// broker that served would refuse every OAUTHBEARER login.
#[test]
fn an_unreachable_jwks_endpoint_stops_the_start() {
    let pki = Pki::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("https://{}/keys", closed.local_addr().unwrap());
    drop(closed);
    let other = Pki::new();
    let untrusted = IdpServer::start(Some(&other));
    untrusted.serve("/keys", IdentityProvider::new().jwks());
    for url in [dead, untrusted.url("/keys")] {
        let dir = tempfile::tempdir().unwrap();
        let config = pki.path("broker.toml");
        std::fs::write(
            &config,
            format!(
                r#"sasl_oauthbearer_jwks_endpoint_url = "{url}"
sasl_oauthbearer_jwks_endpoint_ca_file = "ca.pem"
[listeners.OAUTH]
protocol = "SASL_PLAINTEXT"
listen = "127.0.0.1:0"
sasl_mechanisms = ["OAUTHBEARER"]"#
            ),
        )
        .unwrap();
        let stderr = refused_start(dir.path(), &["--config", config.to_str().unwrap()]);
        assert!(stderr.contains(&format!("fetching {url}")), "{stderr}");
    }
    assert_eq!(
        untrusted.requests("/keys"),
        0,
        "no request reached the untrusted endpoint"
    );
}

/// Kafka's own OAUTHBEARER login in the Java client
/// (`OAuthBearerLoginCallbackHandler`, as Kafka's docs configure it): the
/// client takes its token from the identity provider's token endpoint
/// with its client credentials (OAuth's client_credentials grant), and the
/// broker checks it against the provider's JWKS endpoint; the client
/// produces and reads back through a group. A token the provider issued
/// for another audience is refused as an authentication failure and
/// writes nothing.
#[test]
fn java_client_logs_in_with_a_token_from_the_providers_endpoint() {
    use common::clients::{java, json_result, strings};
    let pki = Pki::new();
    let idp = IdentityProvider::with_kid("java-key");
    let server = IdpServer::start(None);
    server.serve("/keys", idp.jwks());
    let answer = |aud: &str| {
        let (token, _) = idp.token("sluice-app", aud);
        serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 600})
            .to_string()
    };
    server.serve("/token", answer("kafka"));
    server.serve("/token-elsewhere", answer("elsewhere"));
    let broker = oauth_broker_with(
        &pki,
        &format!(
            "sasl_oauthbearer_jwks_endpoint_url = \"{}\"",
            server.url("/keys")
        ),
    );
    let run = |topic: &str, token_path: &str| {
        create_topic(&broker.listener("PLAINTEXT"), topic, 1, &[]);
        let url = server.url(token_path);
        let output = java("secure")
            // Kafka 4 fetches tokens only from the URLs the JVM allows.
            .env(
                "JAVA_TOOL_OPTIONS",
                format!("-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={url}"),
            )
            .args([&broker.listener("OAUTH"), topic, "20"])
            .args([
                "security.protocol=SASL_PLAINTEXT".to_string(),
                "sasl.mechanism=OAUTHBEARER".to_string(),
                "sasl.login.callback.handler.class=org.apache.kafka.common.security.\
                 oauthbearer.OAuthBearerLoginCallbackHandler"
                    .to_string(),
                format!("sasl.oauthbearer.token.endpoint.url={url}"),
                "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.\
                 OAuthBearerLoginModule required clientId=\"sluice-app\" \
                 clientSecret=\"app-secret\";"
                    .to_string(),
            ])
            .output()
            .expect("run java");
        json_result(&output, &broker)
    };

    let refused = run("java-oauth-refused", "/token-elsewhere");
    assert_eq!(refused["error"], "SaslAuthenticationException", "{refused}");
    assert_eq!(
        watermarks(&broker.listener("PLAINTEXT"), "java-oauth-refused", 0),
        (0, 0)
    );
    let logged_in = run("java-oauth", "/token");
    let want: Vec<String> = (0..20).map(|i| format!("secure-{i}")).collect();
    assert_eq!(strings(&logged_in, "consumed"), want, "{logged_in}");
    assert!(
        server.requests("/token") >= 1,
        "the client asked the endpoint"
    );
}

/// OAUTHBEARER with kafkajs: a signed token for the expected audience
/// produces and reads back through a group; one for another audience is
/// refused as an authentication failure and writes nothing.
#[test]
fn kafkajs_oauthbearer_login() {
    use common::clients::{json_result, node_modules, script, strings};
    let pki = Pki::new();
    let idp = IdentityProvider::new();
    let broker = oauth_broker(&pki, &idp);
    let run = |topic: &str, audience: &str, count: usize| {
        create_topic(&broker.listener("PLAINTEXT"), topic, 1, &[]);
        let file = pki.path(&format!("{topic}.jwt"));
        std::fs::write(&file, idp.token("alice", audience).0).unwrap();
        let output = std::process::Command::new("node")
            .arg(script("kafkajs_oauthbearer.js"))
            .args([
                &broker.listener("OAUTH"),
                topic,
                file.to_str().unwrap(),
                &count.to_string(),
            ])
            .env("NODE_PATH", node_modules())
            .output()
            .expect("run node");
        json_result(&output, &broker)
    };
    let refused = run("kjs-oauth-refused", "another-service", 1);
    assert_eq!(
        refused["error"], "KafkaJSSASLAuthenticationError",
        "{refused}"
    );
    assert_eq!(
        watermarks(&broker.listener("PLAINTEXT"), "kjs-oauth-refused", 0),
        (0, 0)
    );
    let ok = run("kjs-oauth", "kafka", 10);
    let want: Vec<String> = (0..10).map(|i| format!("oauth-{i}")).collect();
    assert_eq!(strings(&ok, "consumed"), want, "{ok}");
}

/// Delegation tokens (KIP-48) with Kafka's Java client, on a broker with a
/// secret key: alice makes a token (renewable by carol) and sees it
/// described with its HMAC; the token logs in
/// with SCRAM and produces and consumes as alice, but may not make a
/// token itself; mallory may not renew it, alice renews it to an hour and
/// expires it, after which it is neither described nor renewable and its
/// login is refused.
#[test]
fn java_delegation_tokens_log_in_as_their_owner_until_expired() {
    use common::clients::{java, json_result, strings};
    let pki = Pki::new();
    std::fs::write(pki.path("token.key"), "a-secret-key\n").unwrap();
    let broker = secure_broker(&pki, r#"delegation_token_secret_key_file = "token.key""#);
    add_user(&broker, "alice", "alice-secret");
    add_user(&broker, "mallory", "mallory-secret");
    create_topic(&broker.listener("PLAINTEXT"), "tokens", 1, &[]);
    create_topic(&broker.listener("PLAINTEXT"), "tokens-after", 1, &[]);
    let output = java("delegation-tokens")
        .args([&broker.listener("SASLPLAIN"), "tokens"])
        .output()
        .expect("run java");
    let r = json_result(&output, &broker);
    assert_eq!(r["owner"], "User:alice", "{r}");
    assert_eq!(r["requester"], "User:alice", "{r}");
    assert_eq!(r["renewers"], "[User:carol]", "{r}");
    let at = |key: &str| r[key].as_i64().unwrap_or_else(|| panic!("{key}: {r}"));
    // The broker's defaults: a day's expiry, a week's maximum.
    assert_eq!(at("expiry") - at("issued"), 24 * 3_600_000, "{r}");
    assert_eq!(at("max") - at("issued"), 7 * 24 * 3_600_000, "{r}");
    assert_eq!(r["described"], serde_json::json!([true]), "its HMAC: {r}");
    // No authorizer: as Kafka's, anyone may describe any token.
    assert_eq!(r["described_to_mallory"], 1, "{r}");
    let want: Vec<String> = (0..5).map(|i| format!("secure-{i}")).collect();
    assert_eq!(strings(&r["with_token"], "consumed"), want, "{r}");
    assert_eq!(
        r["token_creates"], "UnsupportedByAuthenticationException",
        "{r}"
    );
    assert_eq!(
        r["mallory_renews"], "DelegationTokenOwnerMismatchException",
        "{r}"
    );
    // Renewed to an hour: before the day it had, never past its maximum.
    assert!(at("renewed_expiry") < at("expiry"), "{r}");
    assert_eq!(r["described_after_expiry"], 0, "{r}");
    assert_eq!(
        r["renew_after_expiry"], "DelegationTokenNotFoundException",
        "{r}"
    );
    assert_eq!(
        r["after_expiry"]["error"], "SaslAuthenticationException",
        "{r}"
    );
    assert_eq!(
        watermarks(&broker.listener("PLAINTEXT"), "tokens-after", 0),
        (0, 0),
        "nothing written after its expiry"
    );
}

/// Kafka's Java client over SASL_SSL with SCRAM-SHA-512 (the broker's
/// certificate checked against the test CA as a PEM truststore, its host
/// name verified), and over the SSL listener that requires a client
/// certificate (a PEM keystore): each produces with the producer's defaults
/// (idempotent) and reads back through a group; a wrong password is
/// refused as an authentication failure and writes nothing.
#[test]
fn java_client_over_sasl_ssl_and_mutual_tls() {
    use common::clients::{java, json_result, strings};
    let pki = Pki::new();
    let broker = secure_broker(&pki, "");
    add_user(&broker, "alice", "alice-secret");
    let truststore = [
        "ssl.truststore.type=PEM".to_string(),
        format!("ssl.truststore.location={}", pki.p("ca.pem")),
    ];
    let scram = |password: &str| {
        let mut settings = truststore.to_vec();
        settings.extend([
            "security.protocol=SASL_SSL".to_string(),
            "sasl.mechanism=SCRAM-SHA-512".to_string(),
            format!(
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \
                 required username=\"alice\" password=\"{password}\";"
            ),
        ]);
        settings
    };
    let run = |listener: &str, topic: &str, count: usize, settings: Vec<String>| {
        create_topic(&broker.listener("PLAINTEXT"), topic, 1, &[]);
        let output = java("secure")
            .args([&broker.listener(listener), topic, &count.to_string()])
            .args(settings)
            .output()
            .expect("run java");
        json_result(&output, &broker)
    };

    let refused = run("SECURE", "java-refused", 1, scram("wrong"));
    assert_eq!(refused["error"], "SaslAuthenticationException", "{refused}");
    assert_eq!(
        watermarks(&broker.listener("PLAINTEXT"), "java-refused", 0),
        (0, 0)
    );
    let want =
        |count: usize| -> Vec<String> { (0..count).map(|i| format!("secure-{i}")).collect() };
    let sasl = run("SECURE", "java-sasl-ssl", 20, scram("alice-secret"));
    assert_eq!(strings(&sasl, "consumed"), want(20), "{sasl}");

    // The client's certificate and key in one PEM file: Java's PEM keystore.
    let keystore = pki.path("client-keystore.pem");
    let key = std::fs::read_to_string(pki.path("client.key")).unwrap();
    let cert = std::fs::read_to_string(pki.path("client.pem")).unwrap();
    std::fs::write(&keystore, format!("{key}{cert}")).unwrap();
    let mut mtls = truststore.to_vec();
    mtls.extend([
        "security.protocol=SSL".to_string(),
        "ssl.keystore.type=PEM".to_string(),
        format!("ssl.keystore.location={}", keystore.display()),
    ]);
    let tls = run("MTLS", "java-mtls", 20, mtls);
    assert_eq!(strings(&tls, "consumed"), want(20), "{tls}");
}

//! Listener configuration (issue 15): the `[listeners.NAME]` tables and the
//! `--listener NAME=PROTOCOL://HOST:PORT` flag, checked once at start.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Listeners one broker may have; each costs a socket per shard.
pub const LISTENERS_MAX: usize = 16;
/// SASL mechanisms this broker serves.
pub const SASL_MECHANISMS: &[&str] = &["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"];
/// The listener today's `--listen` / `advertise` make when no listener is configured.
pub const DEFAULT_LISTENER: &str = "PLAINTEXT";
/// Who an unauthenticated connection is, unless its listener says otherwise.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Kafka's security protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityProtocol {
    #[serde(rename = "PLAINTEXT")]
    Plaintext,
    #[serde(rename = "SSL")]
    Ssl,
    #[serde(rename = "SASL_PLAINTEXT")]
    SaslPlaintext,
    #[serde(rename = "SASL_SSL")]
    SaslSsl,
}

impl SecurityProtocol {
    const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    pub fn parse(s: &str) -> Option<SecurityProtocol> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Kafka's name of it.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `ssl_client_auth`: whether a TLS client must show a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    None,
    Requested,
    Required,
}

/// One `[listeners.NAME]` table.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub protocol: SecurityProtocol,
    /// HOST:PORT every shard binds (port 0 picks one).
    pub listen: String,
    /// HOST:PORT clients on this listener are told; defaults to the bound address.
    #[serde(default)]
    pub advertise: Option<String>,
    /// The principal of connections not authenticated here (default User:ANONYMOUS).
    #[serde(default)]
    pub principal: Option<String>,
    /// PEM certificate chain (SSL, SASL_SSL).
    #[serde(default)]
    pub ssl_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub ssl_key: Option<PathBuf>,
    /// PEM CA bundle client certificates are checked against.
    #[serde(default)]
    pub ssl_ca: Option<PathBuf>,
    #[serde(default)]
    pub ssl_client_auth: ClientAuth,
    /// Mechanisms offered in SaslHandshake (default: all served).
    #[serde(default)]
    pub sasl_mechanisms: Option<Vec<String>>,
}

/// Why the listener configuration was refused at start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenerError {
    #[error("--listener {0:?}: expected NAME=PROTOCOL://HOST:PORT")]
    Flag(String),
    #[error("listener {0}: unknown protocol {1:?} (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")]
    Protocol(String, String),
    #[error("at most {LISTENERS_MAX} listeners")]
    TooMany,
    #[error("listener name {0:?}: letters, digits, '_' and '-' only")]
    Name(String),
    #[error("listener {0}: {1}")]
    Invalid(String, String),
    #[error("inter_broker_listener_name {0:?} names no listener")]
    InterBroker(String),
}

/// Parses one `--listener NAME=PROTOCOL://HOST:PORT`.
pub fn parse_flag(flag: &str) -> Result<(String, ListenerConfig), ListenerError> {
    let bad = || ListenerError::Flag(flag.to_string());
    let (name, rest) = flag.split_once('=').ok_or_else(bad)?;
    let (protocol, listen) = rest.split_once("://").ok_or_else(bad)?;
    if listen.is_empty() {
        return Err(bad());
    }
    let protocol = SecurityProtocol::parse(protocol)
        .ok_or_else(|| ListenerError::Protocol(name.into(), protocol.into()))?;
    Ok((
        name.to_string(),
        ListenerConfig::bare(protocol, listen, None),
    ))
}

impl ListenerConfig {
    /// A listener with nothing but its protocol and addresses: no TLS
    /// files, no SASL mechanisms named, the default principal.
    pub fn bare(protocol: SecurityProtocol, listen: &str, advertise: Option<String>) -> Self {
        ListenerConfig {
            protocol,
            listen: listen.to_string(),
            advertise,
            principal: None,
            ssl_cert: None,
            ssl_key: None,
            ssl_ca: None,
            ssl_client_auth: ClientAuth::None,
            sasl_mechanisms: None,
        }
    }
}

/// Checks the listeners as a whole: bounded count, names, what each
/// protocol needs, a known inter-broker listener.
pub fn validate(
    listeners: &BTreeMap<String, ListenerConfig>,
    inter_broker: Option<&str>,
) -> Result<(), ListenerError> {
    if listeners.len() > LISTENERS_MAX {
        return Err(ListenerError::TooMany);
    }
    for (name, l) in listeners {
        let invalid = |m: &str| ListenerError::Invalid(name.clone(), m.to_string());
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ListenerError::Name(name.clone()));
        }
        if l.protocol.tls() && (l.ssl_cert.is_none() || l.ssl_key.is_none()) {
            return Err(invalid("SSL and SASL_SSL need ssl_cert and ssl_key"));
        }
        if l.ssl_client_auth != ClientAuth::None && l.ssl_ca.is_none() {
            return Err(invalid("ssl_client_auth needs ssl_ca"));
        }
        if let Some(ms) = &l.sasl_mechanisms {
            let known = |m: &String| {
                SASL_MECHANISMS.contains(&m.as_str()) || m == super::oauthbearer::MECHANISM
            };
            if let Some(m) = ms.iter().find(|m| !known(m)) {
                return Err(invalid(&format!("unknown SASL mechanism {m:?}")));
            }
            if l.protocol.sasl() && ms.is_empty() {
                return Err(invalid("sasl_mechanisms is empty"));
            }
        }
        if let Some(p) = &l.principal {
            if !p.starts_with("User:") || p.len() > 5 + crate::security::scram::USER_BYTES_MAX {
                return Err(invalid("principal must be User:NAME"));
            }
        }
    }
    if let Some(ib) = inter_broker {
        if !listeners.is_empty() && !listeners.contains_key(ib) {
            return Err(ListenerError::InterBroker(ib.to_string()));
        }
    }
    Ok(())
}

/// How this broker logs in to the others' inter-broker listener: the
/// broker's own client side of it (Kafka's
/// `sasl.mechanism.inter.broker.protocol` and the broker's JAAS login; the
/// `ssl.*` settings of the inter-broker listener). Each file defaults to the
/// inter-broker listener's own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterBrokerLogin {
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    /// The password, in a file of its own: never in the config in clear.
    pub sasl_password_file: Option<PathBuf>,
    pub ssl_ca: Option<PathBuf>,
    pub ssl_cert: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
}

/// TLS as the dialing side speaks it: peers are checked against `ca`; the
/// certificate is shown when a peer asks (mTLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTlsFiles {
    pub ca: PathBuf,
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
}

/// The SASL login of the dialing side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslLogin {
    pub mechanism: String,
    pub username: String,
    pub password_file: PathBuf,
}

/// [`InterBrokerLogin`] resolved against the inter-broker listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterBrokerClient {
    pub tls: Option<ClientTlsFiles>,
    pub sasl: Option<SaslLogin>,
}

/// Checks what dialing the inter-broker listener `name` needs: a CA for
/// TLS, a mechanism, user and password file for SASL, and no SASL login
/// set where the listener has no SASL (it would be silently unused).
pub fn inter_broker_client(
    name: &str,
    l: &ListenerConfig,
    login: &InterBrokerLogin,
) -> Result<InterBrokerClient, ListenerError> {
    let invalid = |m: String| ListenerError::Invalid(name.to_string(), m);
    let tls = if l.protocol.tls() {
        let ca = login.ssl_ca.clone().or_else(|| l.ssl_ca.clone()).ok_or_else(|| {
            invalid("the inter-broker listener uses TLS: set its ssl_ca (or inter_broker_ssl_ca) so brokers can verify each other".into())
        })?;
        let cert = login.ssl_cert.clone().or_else(|| l.ssl_cert.clone());
        let key = login.ssl_key.clone().or_else(|| l.ssl_key.clone());
        let cert_and_key = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "inter_broker_ssl_cert and inter_broker_ssl_key go together".into(),
                ))
            }
        };
        Some(ClientTlsFiles { ca, cert_and_key })
    } else {
        None
    };
    let sasl = if l.protocol.sasl() {
        let need = |what: &str| {
            invalid(format!(
                "the inter-broker listener uses SASL: set {what} (Kafka's sasl.mechanism.inter.broker.protocol and the broker's login)"
            ))
        };
        let mechanism = login
            .sasl_mechanism
            .clone()
            .ok_or_else(|| need("inter_broker_sasl_mechanism"))?;
        if !SASL_MECHANISMS.contains(&mechanism.as_str()) {
            return Err(invalid(format!(
                "unknown inter_broker_sasl_mechanism {mechanism:?}"
            )));
        }
        if l.sasl_mechanisms
            .as_ref()
            .is_some_and(|ms| !ms.contains(&mechanism))
        {
            return Err(invalid(format!(
                "inter_broker_sasl_mechanism {mechanism} is not in the listener's sasl_mechanisms"
            )));
        }
        let username = login
            .sasl_username
            .clone()
            .ok_or_else(|| need("inter_broker_sasl_username"))?;
        if username.is_empty() || username.len() > crate::security::scram::USER_BYTES_MAX {
            return Err(invalid("inter_broker_sasl_username: bad length".into()));
        }
        let password_file = login
            .sasl_password_file
            .clone()
            .ok_or_else(|| need("inter_broker_sasl_password_file"))?;
        Some(SaslLogin {
            mechanism,
            username,
            password_file,
        })
    } else {
        if login.sasl_mechanism.is_some()
            || login.sasl_username.is_some()
            || login.sasl_password_file.is_some()
        {
            return Err(invalid(format!(
                "inter_broker_sasl_* is set but the inter-broker listener is {:?}, without SASL",
                l.protocol
            )));
        }
        None
    };
    Ok(InterBrokerClient { tls, sasl })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        let (name, l) = parse_flag("SECURE=SASL_SSL://127.0.0.1:9093").unwrap();
        assert_eq!(name, "SECURE");
        assert_eq!(l.protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l.listen, "127.0.0.1:9093");
        assert!(parse_flag("X=TLS://h:1").is_err());
        assert!(parse_flag("X=PLAINTEXT:h:1").is_err());
        assert!(parse_flag("PLAINTEXT://h:1").is_err());
    }

    #[test]
    fn validation_wants_what_each_protocol_needs() {
        let mut ls = BTreeMap::new();
        ls.insert("S".to_string(), parse_flag("S=SSL://h:1").unwrap().1);
        assert!(validate(&ls, None).is_err());
        let s = ls.get_mut("S").unwrap();
        s.ssl_cert = Some("c".into());
        s.ssl_key = Some("k".into());
        assert_eq!(validate(&ls, None), Ok(()));
        assert_eq!(validate(&ls, Some("S")), Ok(()));
        assert!(validate(&ls, Some("NONE")).is_err());
        ls.insert("P".to_string(), parse_flag("P=PLAINTEXT://h:2").unwrap().1);
        assert_eq!(validate(&ls, Some("P")), Ok(()));
    }
}

#[cfg(test)]
mod inter_broker_tests {
    use super::*;

    fn listener(flag: &str) -> ListenerConfig {
        let mut l = parse_flag(flag).unwrap().1;
        l.ssl_cert = Some("c.pem".into());
        l.ssl_key = Some("k.pem".into());
        l
    }

    #[test]
    fn sasl_ssl_needs_a_ca_and_a_whole_login() {
        let mut l = listener("B=SASL_SSL://h:1");
        let mut login = InterBrokerLogin::default();
        let err = inter_broker_client("B", &l, &login).unwrap_err();
        assert!(err.to_string().contains("ssl_ca"), "{err}");
        l.ssl_ca = Some("ca.pem".into());
        let err = inter_broker_client("B", &l, &login).unwrap_err();
        assert!(
            err.to_string().contains("inter_broker_sasl_mechanism"),
            "{err}"
        );
        login.sasl_mechanism = Some("SCRAM-SHA-512".into());
        login.sasl_username = Some("broker".into());
        let err = inter_broker_client("B", &l, &login).unwrap_err();
        assert!(err.to_string().contains("password_file"), "{err}");
        login.sasl_password_file = Some("broker.secret".into());
        let client = inter_broker_client("B", &l, &login).unwrap();
        assert_eq!(
            client.tls,
            Some(ClientTlsFiles {
                ca: "ca.pem".into(),
                cert_and_key: Some(("c.pem".into(), "k.pem".into())),
            })
        );
        assert_eq!(client.sasl.unwrap().username, "broker");
        l.sasl_mechanisms = Some(vec!["PLAIN".into()]);
        assert!(inter_broker_client("B", &l, &login).is_err());
        login.sasl_mechanism = Some("SCRAM-SHA-1".into());
        l.sasl_mechanisms = None;
        assert!(inter_broker_client("B", &l, &login).is_err());
    }

    #[test]
    fn a_login_without_sasl_is_refused_and_plaintext_needs_nothing() {
        let l = parse_flag("P=PLAINTEXT://h:1").unwrap().1;
        let none = InterBrokerLogin::default();
        let client = inter_broker_client("P", &l, &none).unwrap();
        assert_eq!((client.tls, client.sasl), (None, None));
        let login = InterBrokerLogin {
            sasl_username: Some("broker".into()),
            ..InterBrokerLogin::default()
        };
        assert!(inter_broker_client("P", &l, &login).is_err());
        // SSL: the CA may come from the login alone.
        let ssl = listener("S=SSL://h:1");
        let login = InterBrokerLogin {
            ssl_ca: Some("peers.pem".into()),
            ..InterBrokerLogin::default()
        };
        let client = inter_broker_client("S", &ssl, &login).unwrap();
        assert_eq!(client.tls.unwrap().ca, PathBuf::from("peers.pem"));
    }
}

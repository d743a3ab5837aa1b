//! A connection's security state (issue 15): the listener it came in on,
//! its SASL exchange, its principal, and its KIP-368 session end. The
//! exchange itself is `security::scram`; this is its glue to a connection.
//!
//! On a SASL listener, a request other than ApiVersions, SaslHandshake and
//! SaslAuthenticate before a successful authentication closes the
//! connection, as Kafka's SaslServerAuthenticator does; so does any request
//! but a re-authentication once the session has expired.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;

use crate::security::listeners::{SecurityProtocol, ANONYMOUS, DEFAULT_LISTENER, SASL_MECHANISMS};
use crate::security::oauthbearer;
use crate::security::scram::{self, Credentials, Mechanism, ScramError, ScramServer, Step};

/// Kafka's `sasl.server.max.receive.size` default.
pub const SASL_RECEIVE_BYTES_MAX: u32 = 512 * 1024;

/// What every connection of one listener shares.
#[derive(Debug)]
pub struct ListenerInfo {
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Given to clients of this listener in Metadata, FindCoordinator,
    /// DescribeCluster (for this broker; other brokers' by the same name).
    pub advertised: (String, i32),
    /// The principal of connections not authenticated here.
    pub principal: String,
    /// Offered in SaslHandshake, in the configured order.
    pub mechanisms: Vec<String>,
    pub tls: Option<Arc<super::tls::TlsListener>>,
    /// Its connections and authentications (`/metrics`).
    pub stats: Arc<crate::stats::ListenerStats>,
}

impl ListenerInfo {
    /// A PLAINTEXT listener, anonymous, counted nowhere: for a session no
    /// bound listener made (`Session::default`).
    pub fn plaintext(advertised: (String, i32)) -> ListenerInfo {
        ListenerInfo {
            name: DEFAULT_LISTENER.into(),
            protocol: SecurityProtocol::Plaintext,
            advertised,
            principal: ANONYMOUS.into(),
            mechanisms: Vec::new(),
            tls: None,
            stats: Arc::default(),
        }
    }
}

/// Where a connection is in its SASL exchange.
enum Exchange {
    /// No handshake yet (or the last authentication finished).
    Idle,
    /// SaslHandshake chose a mechanism. `raw`: v0, so the tokens come as
    /// bare size-prefixed frames, not SaslAuthenticate requests.
    Chosen { mechanism: String, raw: bool },
    /// Boxed: the exchange state is large, and only a connection in the
    /// middle of a SCRAM exchange holds one.
    Scram { server: Box<ScramServer>, raw: bool },
}

/// What a login is checked against: users' SCRAM credentials and the
/// delegation tokens, as the topics snapshot holds them, at `now_ms`.
pub struct Logins<'a> {
    pub users: &'a Credentials,
    pub tokens: &'a crate::security::delegation_tokens::DelegationTokens,
    /// OAUTHBEARER's checks, when configured.
    pub oauth: Option<&'a oauthbearer::Verifier>,
    pub now_ms: i64,
}

/// Who a finished exchange authenticated.
struct Login {
    principal: String,
    /// How long its credential lasts (a token's); `None`: a password's,
    /// for good.
    left_ms: Option<i64>,
    /// A delegation token's login.
    by_token: bool,
}

/// One connection's security state; lives in `handlers::Client`.
pub struct Session {
    pub listener: Arc<ListenerInfo>,
    exchange: RefCell<Exchange>,
    /// `User:NAME` once authenticated; the listener's principal before.
    principal: RefCell<String>,
    authenticated: Cell<bool>,
    /// Authenticated with a delegation token: such a session may not ask
    /// for, renew or expire tokens (Kafka's `tokenAuthenticated`).
    by_token: Cell<bool>,
    /// KIP-368: when the session ends unless the client re-authenticates.
    expires: Cell<Option<Instant>>,
    /// The user the exchange under way claims (from its first token), for
    /// the log line of a failure: SCRAM's last token names no user.
    attempted: RefCell<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("listener", &self.listener.name)
            .field("principal", &self.principal.borrow())
            .field("authenticated", &self.authenticated.get())
            .finish()
    }
}

impl Default for Session {
    fn default() -> Self {
        Session::new(Arc::new(ListenerInfo::plaintext((String::new(), 0))))
    }
}

/// What the gate says about a request on this connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    Serve,
    /// Close the connection; the reason goes to the log.
    Close(&'static str),
}

/// The outcome of one SASL token.
pub struct TokenReply {
    /// SASL_AUTHENTICATION_FAILED, ILLEGAL_SASL_STATE, or 0.
    pub error: i16,
    pub message: Option<String>,
    pub bytes: Vec<u8>,
    /// KIP-368's session_lifetime_ms once authenticated (0: unlimited).
    pub session_lifetime_ms: i64,
}

impl Session {
    pub fn new(listener: Arc<ListenerInfo>) -> Session {
        let principal = listener.principal.clone();
        Session {
            listener,
            exchange: RefCell::new(Exchange::Idle),
            principal: RefCell::new(principal),
            authenticated: Cell::new(false),
            by_token: Cell::new(false),
            expires: Cell::new(None),
            attempted: RefCell::default(),
        }
    }

    /// Whether the connection logged in with a delegation token.
    pub fn by_token(&self) -> bool {
        self.by_token.get()
    }

    /// The principal requests on this connection act as.
    pub fn principal(&self) -> String {
        self.principal.borrow().clone()
    }

    /// The principal, borrowed: the quota check reads it on every request
    /// and must not allocate.
    pub fn principal_ref(&self) -> std::cell::Ref<'_, String> {
        self.principal.borrow()
    }

    /// An SSL connection's client certificate names its principal (Kafka's
    /// default principal builder; on SASL_SSL the SASL login decides).
    pub fn set_certificate_principal(&self, principal: String) {
        *self.principal.borrow_mut() = principal;
    }

    /// The largest frame this connection may send now: before a SASL
    /// listener's authentication, Kafka's `sasl.server.max.receive.size`
    /// (512 KiB), so an unauthenticated peer cannot make the broker hold
    /// `socket_request_max_bytes`.
    pub fn frame_max(&self, configured: u32) -> u32 {
        if self.listener.protocol.sasl() && !self.authenticated.get() {
            configured.min(SASL_RECEIVE_BYTES_MAX)
        } else {
            configured
        }
    }

    /// Whether the next frame is a v0 handshake's bare SASL token.
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            &*self.exchange.borrow(),
            Exchange::Chosen { raw: true, .. } | Exchange::Scram { raw: true, .. }
        )
    }

    /// Decides whether a request of `key` may be served now.
    pub fn gate(&self, key: i16, now: Instant) -> Gate {
        if !self.listener.protocol.sasl() {
            return Gate::Serve;
        }
        let sasl = key == ApiKey::SaslHandshake as i16 || key == ApiKey::SaslAuthenticate as i16;
        if !self.authenticated.get() {
            if sasl || key == ApiKey::ApiVersions as i16 {
                return Gate::Serve;
            }
            return Gate::Close("request before SASL authentication");
        }
        match self.expires.get() {
            Some(end) if now >= end && !sasl => {
                Gate::Close("SASL session expired (connections_max_reauth_ms)")
            }
            _ => Gate::Serve,
        }
    }

    /// SaslHandshake: the mechanism, if this listener offers it. `raw`
    /// for v0. Returns the error code (0, UNSUPPORTED_SASL_MECHANISM or
    /// ILLEGAL_SASL_STATE) and the mechanisms offered.
    pub fn handshake(&self, mechanism: &str, raw: bool) -> (i16, Vec<String>) {
        use kafka_protocol::ResponseError;
        let offered = self.listener.mechanisms.clone();
        if !self.listener.protocol.sasl() {
            return (ResponseError::IllegalSaslState.code(), offered);
        }
        if !offered.iter().any(|m| m == mechanism) {
            return (ResponseError::UnsupportedSaslMechanism.code(), offered);
        }
        *self.exchange.borrow_mut() = Exchange::Chosen {
            mechanism: mechanism.to_string(),
            raw,
        };
        (0, offered)
    }

    /// One SASL token (SaslAuthenticate's auth_bytes, or a v0 bare
    /// frame), checked against `logins`; a refused login is counted on
    /// the listener.
    pub fn token(
        &self,
        token: &[u8],
        logins: &Logins<'_>,
        reauth_ms: u64,
        now: Instant,
    ) -> TokenReply {
        let reply = self.answer_token(token, logins, reauth_ms, now);
        if reply.error == kafka_protocol::ResponseError::SaslAuthenticationFailed.code() {
            self.listener.stats.authentication_failed();
        }
        reply
    }

    fn answer_token(
        &self,
        token: &[u8],
        logins: &Logins<'_>,
        reauth_ms: u64,
        now: Instant,
    ) -> TokenReply {
        use kafka_protocol::ResponseError;
        let exchange = std::mem::replace(&mut *self.exchange.borrow_mut(), Exchange::Idle);
        if let Exchange::Chosen { .. } = exchange {
            *self.attempted.borrow_mut() = Session::attempted_user(token);
        }
        let step = match exchange {
            Exchange::Idle => {
                return TokenReply {
                    error: ResponseError::IllegalSaslState.code(),
                    message: Some("SaslAuthenticate before SaslHandshake".into()),
                    bytes: Vec::new(),
                    session_lifetime_ms: 0,
                }
            }
            Exchange::Chosen { mechanism, .. } if mechanism == oauthbearer::MECHANISM => {
                return self.oauthbearer(token, logins, reauth_ms, now);
            }
            Exchange::Chosen { mechanism, raw } if mechanism == "PLAIN" => {
                let _ = raw;
                plain(token, logins.users).map(|user| Step::Done {
                    user,
                    token: false,
                    server_final: Vec::new(),
                })
            }
            Exchange::Chosen { mechanism, raw } => {
                let m = Mechanism::from_name(&mechanism).expect("handshake offers known ones");
                let server = Box::new(ScramServer::new(m, ScramServer::random_nonce()));
                self.scram_step(server, m, raw, token, logins)
            }
            Exchange::Scram { server, raw } => {
                // The mechanism is inside the server; the lookup is done.
                self.scram_step(server, Mechanism::Sha256, raw, token, logins)
            }
        };
        match step {
            Ok(Step::Continue(bytes)) => TokenReply {
                error: 0,
                message: None,
                bytes,
                session_lifetime_ms: 0,
            },
            Ok(Step::Done {
                user,
                token: false,
                server_final,
            }) => {
                let login = Login {
                    principal: format!("User:{user}"),
                    left_ms: None,
                    by_token: false,
                };
                self.logged_in(login, server_final, reauth_ms, now)
            }
            Ok(Step::Done {
                user,
                token: true,
                server_final,
            }) => {
                // A token acts as its owner, until it expires.
                let Some(t) = logins.tokens.get(&user) else {
                    return failed("the delegation token expired".into());
                };
                let login = Login {
                    principal: t.owner.clone(),
                    left_ms: Some(t.expiry_ms.min(t.max_ms) - logins.now_ms),
                    by_token: true,
                };
                self.logged_in(login, server_final, reauth_ms, now)
            }
            Err(e) => failed(e.to_string()),
        }
    }

    /// OAUTHBEARER's one message: the token checked, the session as its
    /// subject until it expires.
    fn oauthbearer(
        &self,
        message: &[u8],
        logins: &Logins<'_>,
        reauth_ms: u64,
        now: Instant,
    ) -> TokenReply {
        let Some(verifier) = logins.oauth else {
            return failed("OAUTHBEARER is not configured".into());
        };
        match verifier.authenticate(message) {
            Ok(who) => {
                let login = Login {
                    principal: format!("User:{}", who.name),
                    left_ms: Some(who.expires_ms - logins.now_ms),
                    by_token: false,
                };
                self.logged_in(login, Vec::new(), reauth_ms, now)
            }
            Err(e) => failed(e.to_string()),
        }
    }

    /// The session once `login` authenticated. With re-authentication on
    /// (KIP-368), the session ends at the earlier of `reauth_ms` and the
    /// credential's end, as Kafka's does.
    fn logged_in(
        &self,
        login: Login,
        server_final: Vec<u8>,
        reauth_ms: u64,
        now: Instant,
    ) -> TokenReply {
        if self.authenticated.get() && *self.principal.borrow() != login.principal {
            // KIP-368: a re-authentication may not change who it is.
            return failed("re-authentication as a different principal".into());
        }
        *self.principal.borrow_mut() = login.principal;
        self.authenticated.set(true);
        self.listener.stats.authenticated();
        self.by_token.set(login.by_token);
        let lifetime = match (reauth_ms, login.left_ms) {
            (0, _) => 0,
            (ms, None) => ms,
            (ms, Some(left)) => ms.min(u64::try_from(left).unwrap_or(0).max(1)),
        };
        if lifetime == 0 {
            self.expires.set(None);
        } else {
            self.expires
                .set(Some(now + Duration::from_millis(lifetime)));
        }
        TokenReply {
            error: 0,
            message: None,
            bytes: server_final,
            session_lifetime_ms: lifetime as i64,
        }
    }

    fn scram_step(
        &self,
        mut server: Box<ScramServer>,
        mechanism: Mechanism,
        raw: bool,
        token: &[u8],
        logins: &Logins<'_>,
    ) -> Result<Step, ScramError> {
        let step = server.step(token, |user, by_token| {
            if by_token {
                let t = logins.tokens.get(user)?;
                (!t.expired(logins.now_ms))
                    .then(|| t.credentials.get(&mechanism).cloned())
                    .flatten()
            } else {
                logins.users.get(user)?.get(&mechanism).cloned()
            }
        })?;
        if let Step::Continue(_) = step {
            *self.exchange.borrow_mut() = Exchange::Scram { server, raw };
        }
        Ok(step)
    }

    /// The user the last exchange claimed to be, for log lines.
    pub fn attempted(&self) -> String {
        self.attempted.borrow().clone()
    }

    /// The user name in a first token, for log lines (never the secret).
    pub fn attempted_user(token: &[u8]) -> String {
        let text = String::from_utf8_lossy(&token[..token.len().min(300)]);
        let user = text
            .split(',')
            .find_map(|a| a.strip_prefix("n="))
            .map(str::to_string)
            .or_else(|| {
                token
                    .split(|b| *b == 0)
                    .nth(1)
                    .map(|u| String::from_utf8_lossy(u).into_owned())
            });
        user.unwrap_or_default().chars().take(64).collect()
    }
}

fn failed(message: String) -> TokenReply {
    TokenReply {
        error: kafka_protocol::ResponseError::SaslAuthenticationFailed.code(),
        message: Some(message),
        bytes: Vec::new(),
        session_lifetime_ms: 0,
    }
}

/// PLAIN against the stored SCRAM credential of the user (the strongest
/// mechanism it has). PBKDF2 costs a few ms at most (iterations are bounded
/// by `scram::ITERATIONS_MAX`), and only on a SASL listener.
fn plain(token: &[u8], credentials: &Credentials) -> Result<String, ScramError> {
    let (user, password) = scram::parse_plain(token)?;
    let (mechanism, credential) = credentials
        .get(&user)
        .and_then(|c| c.iter().next_back())
        .ok_or(ScramError::BadCredentials)?;
    if credential.matches_password(*mechanism, &password) {
        Ok(user)
    } else {
        Err(ScramError::BadCredentials)
    }
}

/// Offered mechanisms: the listener's list, else all served.
pub fn mechanisms(configured: Option<&Vec<String>>) -> Vec<String> {
    configured
        .cloned()
        .unwrap_or_else(|| SASL_MECHANISMS.iter().map(|m| m.to_string()).collect())
}

/// Addresses remembered for failure delays; the oldest are forgotten past it.
const FAILURE_TABLE_MAX: usize = 10_000;
/// A failure older than this no longer counts.
const FAILURE_MEMORY: Duration = Duration::from_secs(600);
/// The first delay; each further failure doubles it up to the configured max.
const FAILURE_DELAY_FIRST: Duration = Duration::from_millis(100);

/// Failed authentications by address, for the whole process (a guesser's
/// connections spread over every shard). Touched only on a failure, never
/// on the produce or fetch path.
fn failures() -> &'static Mutex<HashMap<IpAddr, (u32, Instant)>> {
    static TABLE: OnceLock<Mutex<HashMap<IpAddr, (u32, Instant)>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// Records a failure from `ip` and returns how long to wait before
/// answering it: 0 for the first, then doubling, at most `max`.
pub fn failure_delay(ip: IpAddr, now: Instant, max: Duration) -> Duration {
    let mut table = failures().lock().unwrap_or_else(|e| e.into_inner());
    if table.len() >= FAILURE_TABLE_MAX && !table.contains_key(&ip) {
        table.retain(|_, (_, at)| now.duration_since(*at) < FAILURE_MEMORY);
        if table.len() >= FAILURE_TABLE_MAX {
            if let Some(oldest) = table.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k) {
                table.remove(&oldest);
            }
        }
    }
    let entry = table.entry(ip).or_insert((0, now));
    if now.duration_since(entry.1) >= FAILURE_MEMORY {
        entry.0 = 0;
    }
    entry.0 = entry.0.saturating_add(1);
    entry.1 = now;
    match entry.0 {
        1 => Duration::ZERO,
        n => FAILURE_DELAY_FIRST
            .saturating_mul(1u32 << (n - 2).min(16))
            .min(max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl_listener() -> Arc<ListenerInfo> {
        Arc::new(ListenerInfo {
            name: "S".into(),
            protocol: SecurityProtocol::SaslPlaintext,
            advertised: ("h".into(), 1),
            principal: ANONYMOUS.into(),
            mechanisms: mechanisms(None),
            tls: None,
            stats: Arc::default(),
        })
    }

    fn creds() -> Credentials {
        let salt = b"salt".to_vec();
        let mut c = Credentials::new();
        for m in Mechanism::ALL {
            let salted = m.salted_password(b"secret", &salt, 4096);
            c.entry("alice".into()).or_default().insert(
                m,
                scram::Credential::from_salted(m, &salted, salt.clone(), 4096),
            );
        }
        c
    }

    /// Before authentication only the SASL APIs and ApiVersions pass; after
    /// it, everything until the session expires.
    #[test]
    fn gate_and_plain_and_reauth() {
        let s = Session::new(sasl_listener());
        let now = Instant::now();
        assert_eq!(
            s.gate(ApiKey::Metadata as i16, now),
            Gate::Close("request before SASL authentication")
        );
        assert_eq!(s.gate(ApiKey::ApiVersions as i16, now), Gate::Serve);
        assert_eq!(s.handshake("PLAIN", false).0, 0);
        let users = creds();
        let tokens = Default::default();
        let logins = Logins {
            users: &users,
            tokens: &tokens,
            oauth: None,
            now_ms: 0,
        };
        let r = s.token(b"\0alice\0wrong", &logins, 0, now);
        assert_eq!(r.error, 58);
        assert_eq!(
            s.attempted(),
            "alice",
            "the failure's log line names the user"
        );
        assert_eq!(s.handshake("PLAIN", false).0, 0);
        let r = s.token(b"\0alice\0secret", &logins, 1000, now);
        assert_eq!((r.error, r.session_lifetime_ms), (0, 1000));
        assert_eq!(s.principal(), "User:alice");
        assert_eq!(s.gate(ApiKey::Metadata as i16, now), Gate::Serve);
        let later = now + Duration::from_millis(1001);
        assert!(matches!(
            s.gate(ApiKey::Metadata as i16, later),
            Gate::Close(_)
        ));
        assert_eq!(s.gate(ApiKey::SaslHandshake as i16, later), Gate::Serve);
    }

    #[test]
    fn failure_delays_grow_and_are_bounded() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Instant::now();
        let max = Duration::from_secs(2);
        assert_eq!(failure_delay(ip, now, max), Duration::ZERO);
        assert_eq!(failure_delay(ip, now, max), Duration::from_millis(100));
        assert_eq!(failure_delay(ip, now, max), Duration::from_millis(200));
        for _ in 0..40 {
            assert!(failure_delay(ip, now, max) <= max);
        }
    }
}

//! SCRAM (RFC 5802, RFC 7677) as Kafka runs it: the stored credential
//! (salt, iterations, StoredKey, ServerKey: never the password), the
//! server side of the exchange, and PLAIN's check against the same
//! credential. Pure: no I/O, no runtime; the nonce is given.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's bounds on SCRAM iterations (ScramMechanism's min and max).
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;
/// Longest SCRAM message a client may send; real ones are ~200 bytes.
pub const MESSAGE_BYTES_MAX: usize = 4096;
/// Longest user name accepted (Kafka stores them in records; a bound keeps
/// the credential table and log lines small).
pub const USER_BYTES_MAX: usize = 256;
/// Users with credentials, whatever the mechanisms: bounds the snapshot.
pub const USERS_MAX: usize = 10_000;

/// The SCRAM mechanisms, with Kafka's ScramMechanism type codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's ScramMechanism type (UNKNOWN is 0).
    pub fn kafka_type(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    pub(super) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    pub(super) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    /// RFC 5802's Hi(): PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Mechanism::Sha512 => {
                let mut out = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// What the broker keeps of a user's password for one mechanism (Kafka's
/// ScramCredential): enough to verify a proof, not to make one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl Credential {
    /// From the salted password AlterUserScramCredentials carries (the
    /// client derived it; the password never reaches the broker).
    pub fn from_salted(
        mechanism: Mechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Credential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Credential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// Whether `password` is the one this credential was made from (PLAIN).
    pub fn matches_password(&self, mechanism: Mechanism, password: &[u8]) -> bool {
        let salted = mechanism.salted_password(password, &self.salt, self.iterations);
        let made = Credential::from_salted(mechanism, &salted, self.salt.clone(), self.iterations);
        bool::from(made.stored_key.ct_eq(&self.stored_key))
    }
}

/// Every user's credentials, by user then mechanism.
pub type Credentials = BTreeMap<String, BTreeMap<Mechanism, Credential>>;

/// Why an exchange failed. The text goes to the client (Kafka sends its
/// error message) and to the log: it never holds a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("invalid SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("Authentication failed: Invalid user credentials")]
    BadCredentials,
    #[error("SCRAM channel binding is not supported")]
    ChannelBinding,
    #[error("the SCRAM exchange is already complete")]
    Complete,
}

/// The server side of one SCRAM exchange.
pub struct ScramServer {
    mechanism: Mechanism,
    /// This side's nonce suffix (random in use, given in tests).
    server_nonce: String,
    state: State,
}

// The whole server is boxed where a connection holds it (`net::sasl`), so
// the state's variants need not be.
#[allow(clippy::large_enum_variant)]
enum State {
    First,
    Final {
        user: String,
        token: bool,
        credential: Credential,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Done,
}

/// A successful step: what to send back, and who authenticated once done
/// (`token`: the user is a delegation token's id).
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Continue(Vec<u8>),
    Done {
        user: String,
        token: bool,
        server_final: Vec<u8>,
    },
}

impl ScramServer {
    pub fn new(mechanism: Mechanism, server_nonce: String) -> ScramServer {
        ScramServer {
            mechanism,
            server_nonce,
            state: State::First,
        }
    }

    /// A fresh random nonce suffix: 24 printable characters.
    pub fn random_nonce() -> String {
        use rand::Rng;
        let bytes: [u8; 18] = rand::thread_rng().gen();
        B64.encode(bytes)
    }

    /// Takes the client's next message. `lookup` finds a user's credential
    /// for this mechanism, or with `true` a delegation token's by its id
    /// (Kafka's `tokenauth=true` extension).
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str, bool) -> Option<Credential>,
    ) -> Result<Step, ScramError> {
        if message.len() > MESSAGE_BYTES_MAX {
            return Err(ScramError::Malformed("message too long"));
        }
        let message =
            std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        match std::mem::replace(&mut self.state, State::Done) {
            State::First => self.client_first(message, lookup),
            State::Final {
                user,
                token,
                credential,
                gs2_header,
                client_first_bare,
                server_first,
                nonce,
            } => {
                let final_bare = client_final(message, &gs2_header, &nonce)?;
                let auth_message = format!("{client_first_bare},{server_first},{}", final_bare.0);
                let m = self.mechanism;
                let signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
                if final_bare.1.len() != signature.len() {
                    return Err(ScramError::BadCredentials);
                }
                let client_key: Vec<u8> = final_bare
                    .1
                    .iter()
                    .zip(&signature)
                    .map(|(a, b)| a ^ b)
                    .collect();
                if !bool::from(m.hash(&client_key).ct_eq(&credential.stored_key)) {
                    return Err(ScramError::BadCredentials);
                }
                let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
                Ok(Step::Done {
                    user,
                    token,
                    server_final: format!("v={}", B64.encode(server_signature)).into_bytes(),
                })
            }
            State::Done => Err(ScramError::Complete),
        }
    }

    fn client_first(
        &mut self,
        message: &str,
        lookup: impl FnOnce(&str, bool) -> Option<Credential>,
    ) -> Result<Step, ScramError> {
        // gs2-header: cbind-flag "," [authzid] ","
        let mut parts = message.splitn(3, ',');
        let flag = parts.next().unwrap_or_default();
        let authzid = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
        let bare = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed("bad GS2 flag")),
        }
        let mut attrs = bare.split(',');
        let user = attrs
            .next()
            .and_then(|a| a.strip_prefix("n="))
            .ok_or(ScramError::Malformed("no user name"))
            .and_then(unescape_name)?;
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b','))
            .ok_or(ScramError::Malformed("no client nonce"))?;
        // Extensions follow: Kafka's tokenauth=true names a delegation
        // token by its id.
        let token = attrs.any(|a| a == "tokenauth=true");
        if let Some(id) = authzid.strip_prefix("a=") {
            // Kafka refuses an authorization id other than the user's own.
            if unescape_name(id)? != user {
                return Err(ScramError::BadCredentials);
            }
        } else if !authzid.is_empty() {
            return Err(ScramError::Malformed("bad authorization id"));
        }
        let credential = lookup(&user, token).ok_or(ScramError::BadCredentials)?;
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        self.state = State::Final {
            user,
            token,
            credential,
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        };
        Ok(Step::Continue(reply))
    }
}

/// Checks client-final's channel binding and nonce; returns the message
/// without its proof (for AuthMessage) and the proof.
fn client_final<'a>(
    message: &'a str,
    gs2_header: &str,
    nonce: &str,
) -> Result<(&'a str, Vec<u8>), ScramError> {
    let (bare, proof) = message
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("no proof"))?;
    let mut attrs = bare.split(',');
    let binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(ScramError::Malformed("no channel binding"))?;
    if binding != B64.encode(gs2_header) {
        return Err(ScramError::Malformed(
            "channel binding differs from the GS2 header",
        ));
    }
    let got_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no nonce"))?;
    if got_nonce != nonce {
        return Err(ScramError::Malformed("nonce differs"));
    }
    let proof = B64
        .decode(proof)
        .map_err(|_| ScramError::Malformed("proof is not base64"))?;
    Ok((bare, proof))
}

/// A saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an error.
fn unescape_name(name: &str) -> Result<String, ScramError> {
    if name.is_empty() || name.len() > USER_BYTES_MAX {
        return Err(ScramError::Malformed("bad user name length"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// PLAIN (RFC 4616): `[authzid] NUL user NUL password`. Returns the user
/// and password; the password is the caller's to check and drop.
pub fn parse_plain(message: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(ScramError::Malformed("message too long"));
    }
    let mut parts = message.splitn(3, |b| *b == 0);
    let (Some(authzid), Some(user), Some(password)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ScramError::Malformed(
            "PLAIN needs authzid NUL user NUL password",
        ));
    };
    let user = std::str::from_utf8(user).map_err(|_| ScramError::Malformed("user not UTF-8"))?;
    if user.is_empty() || user.len() > USER_BYTES_MAX || password.is_empty() {
        return Err(ScramError::Malformed("empty user or password"));
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(ScramError::BadCredentials);
    }
    Ok((user.to_string(), password.to_vec()))
}

/// Base64 strings in the persisted snapshot.
mod b64 {
    use super::*;

    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc7677_credential() -> Credential {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = Mechanism::Sha256.salted_password(b"pencil", &salt, 4096);
        Credential::from_salted(Mechanism::Sha256, &salted, salt, 4096)
    }

    /// RFC 7677 section 3's exchange, byte for byte.
    #[test]
    fn rfc7677_test_vector() {
        let mut server =
            ScramServer::new(Mechanism::Sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into());
        let lookup = |u: &str, token: bool| (u == "user" && !token).then(rfc7677_credential);
        let first = server
            .step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", lookup)
            .unwrap();
        assert_eq!(
            first,
            Step::Continue(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .to_vec()
            )
        );
        let done = server
            .step(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                |_, _| None,
            )
            .unwrap();
        assert_eq!(
            done,
            Step::Done {
                user: "user".into(),
                token: false,
                server_final: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            }
        );
        assert_eq!(server.step(b"x", |_, _| None), Err(ScramError::Complete));
    }

    /// A wrong proof, an unknown user and channel binding all fail.
    #[test]
    fn bad_exchanges_fail() {
        let lookup = |u: &str, token: bool| (u == "user" && !token).then(rfc7677_credential);
        let mut s = ScramServer::new(Mechanism::Sha256, "x".into());
        s.step(b"n,,n=user,r=abc", lookup).unwrap();
        let r = s.step(
            b"c=biws,r=abcx,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            |_, _| None,
        );
        assert_eq!(r, Err(ScramError::BadCredentials));
        let mut s = ScramServer::new(Mechanism::Sha256, "x".into());
        assert_eq!(
            s.step(b"n,,n=bob,r=abc", lookup),
            Err(ScramError::BadCredentials)
        );
        let mut s = ScramServer::new(Mechanism::Sha256, "x".into());
        assert_eq!(
            s.step(b"p=tls-unique,,n=user,r=abc", lookup),
            Err(ScramError::ChannelBinding)
        );
        let mut s = ScramServer::new(Mechanism::Sha256, "x".into());
        assert!(s.step(b"n,,n=us=er,r=abc", lookup).is_err());
        // The token extension looks the name up as a token's id.
        let mut s = ScramServer::new(Mechanism::Sha256, "x".into());
        assert_eq!(
            s.step(b"n,,n=user,r=abc,tokenauth=true", lookup),
            Err(ScramError::BadCredentials)
        );
    }

    /// PLAIN checks the stored SCRAM credential.
    #[test]
    fn plain_checks_the_scram_credential() {
        let (user, password) = parse_plain(b"\0user\0pencil").unwrap();
        assert_eq!(user, "user");
        assert!(rfc7677_credential().matches_password(Mechanism::Sha256, &password));
        assert!(!rfc7677_credential().matches_password(Mechanism::Sha256, b"pencil2"));
        assert!(parse_plain(b"user\0pencil").is_err());
        assert_eq!(
            parse_plain(b"other\0user\0pw"),
            Err(ScramError::BadCredentials)
        );
    }

    #[test]
    fn names_unescape() {
        assert_eq!(unescape_name("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert!(unescape_name("a=").is_err());
    }
}

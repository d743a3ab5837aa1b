//! The client side of SCRAM (RFC 5802, RFC 7677), for the broker's own
//! inter-broker login (Kafka's `sasl.mechanism.inter.broker.protocol`):
//! client-first, client-final with the proof, and the check of the server's
//! signature in server-final, so a peer that does not know the credential
//! cannot pass for a broker. Pure: no I/O; the nonce and the salted
//! password are given (PBKDF2 is the caller's, off the reactor).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::scram::{Mechanism, ITERATIONS_MAX, ITERATIONS_MIN, MESSAGE_BYTES_MAX};

/// base64("n,,"): no channel binding, no authorization id.
const CHANNEL_BINDING: &str = "biws";

/// Why the client side of an exchange failed. Never holds a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramClientError {
    #[error("invalid SCRAM message from the server: {0}")]
    Malformed(&'static str),
    /// Kafka's ScramSaslClient refuses fewer than the mechanism's minimum;
    /// more than Kafka's maximum would let a peer make this broker burn CPU.
    #[error(
        "the server asks for {0} SCRAM iterations (accepted: {ITERATIONS_MIN}..={ITERATIONS_MAX})"
    )]
    Iterations(u32),
    #[error("the server's SCRAM nonce does not extend ours")]
    Nonce,
    #[error("the server refused the SCRAM exchange: {0}")]
    Refused(String),
    #[error("the server's SCRAM signature is wrong: it does not know the credential")]
    ServerSignature,
    #[error("SCRAM step out of order")]
    Order,
}

/// What server-first asks the client to derive its key from.
#[derive(Debug, PartialEq, Eq)]
pub struct SaltParams {
    pub salt: Vec<u8>,
    pub iterations: u32,
}

/// One client exchange: `first`, then `parse_server_first` and `finish`
/// (which makes client-final), then `verify_server_final`.
pub struct ScramClient {
    mechanism: Mechanism,
    client_first_bare: String,
    client_nonce: String,
    state: State,
}

enum State {
    First,
    ServerFirst { server_first: String, nonce: String },
    Final { server_signature: Vec<u8> },
    Done,
}

impl ScramClient {
    /// `client_nonce`: printable, no ',' (random in use, given in tests).
    pub fn new(mechanism: Mechanism, user: &str, client_nonce: String) -> ScramClient {
        ScramClient {
            mechanism,
            client_first_bare: format!("n={},r={client_nonce}", escape_name(user)),
            client_nonce,
            state: State::First,
        }
    }

    /// client-first-message: no channel binding, no authorization id.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Reads server-first and returns the salt and iterations the salted
    /// password is to be derived with.
    pub fn parse_server_first(&mut self, message: &[u8]) -> Result<SaltParams, ScramClientError> {
        if !matches!(self.state, State::First) {
            return Err(ScramClientError::Order);
        }
        let text = bounded_utf8(message)?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramClientError::Refused(e.chars().take(200).collect()));
        }
        let mut attrs = text.split(',');
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramClientError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramClientError::Nonce);
        }
        let salt = attrs
            .next()
            .and_then(|a| a.strip_prefix("s="))
            .and_then(|s| B64.decode(s).ok())
            .filter(|s| !s.is_empty())
            .ok_or(ScramClientError::Malformed("no salt"))?;
        let iterations: u32 = attrs
            .next()
            .and_then(|a| a.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .ok_or(ScramClientError::Malformed("no iteration count"))?;
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
            return Err(ScramClientError::Iterations(iterations));
        }
        self.state = State::ServerFirst {
            server_first: text.to_string(),
            nonce: nonce.to_string(),
        };
        Ok(SaltParams { salt, iterations })
    }

    /// client-final-message, with the proof made from `salted_password`
    /// (Hi(password, salt, iterations) for the params server-first gave).
    pub fn finish(&mut self, salted_password: &[u8]) -> Result<Vec<u8>, ScramClientError> {
        let State::ServerFirst {
            server_first,
            nonce,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(ScramClientError::Order);
        };
        let m = self.mechanism;
        let without_proof = format!("c={CHANNEL_BINDING},r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = m.hmac(salted_password, b"Client Key");
        let stored_key = m.hash(&client_key);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(salted_password, b"Server Key");
        self.state = State::Final {
            server_signature: m.hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final: the server proves it knows the credential too.
    pub fn verify_server_final(&mut self, message: &[u8]) -> Result<(), ScramClientError> {
        let State::Final { server_signature } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(ScramClientError::Order);
        };
        let text = bounded_utf8(message)?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramClientError::Refused(e.chars().take(200).collect()));
        }
        let got = text
            .split(',')
            .next()
            .and_then(|a| a.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or(ScramClientError::Malformed("no server signature"))?;
        if bool::from(got.ct_eq(&server_signature)) {
            Ok(())
        } else {
            Err(ScramClientError::ServerSignature)
        }
    }
}

fn bounded_utf8(message: &[u8]) -> Result<&str, ScramClientError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(ScramClientError::Malformed("message too long"));
    }
    std::str::from_utf8(message).map_err(|_| ScramClientError::Malformed("not UTF-8"))
}

/// A saslname: ',' as "=2C" and '=' as "=3D" (RFC 5802 section 5.1).
fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// PLAIN's one message (RFC 4616) without an authorization id.
pub fn plain_message(user: &str, password: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(user.len() + password.len() + 2);
    m.push(0);
    m.extend_from_slice(user.as_bytes());
    m.push(0);
    m.extend_from_slice(password);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::{Credential, ScramServer, Step};

    const RFC_SERVER_FIRST: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    /// RFC 7677 section 3, from the client's side, byte for byte.
    #[test]
    fn rfc7677_test_vector() {
        let mut c = ScramClient::new(Mechanism::Sha256, "user", "rOprNGfwEbeRWgbNEkqO".into());
        assert_eq!(c.first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let params = c.parse_server_first(RFC_SERVER_FIRST).unwrap();
        assert_eq!(params.iterations, 4096);
        let salted = Mechanism::Sha256.salted_password(b"pencil", &params.salt, 4096);
        assert_eq!(
            c.finish(&salted).unwrap(),
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Ok(())
        );
    }

    /// The client against this broker's own server side, both mechanisms,
    /// and a user name that needs escaping.
    #[test]
    fn against_the_server_side() {
        for m in Mechanism::ALL {
            let user = "bro,ker=1";
            let salt = b"some salt".to_vec();
            let stored = m.salted_password(b"secret", &salt, 4096);
            let credential = Credential::from_salted(m, &stored, salt, 4096);
            let lookup = |u: &str, _| (u == user).then(|| credential.clone());
            let mut server = ScramServer::new(m, ScramServer::random_nonce());
            let mut client = ScramClient::new(m, user, "clientnonce".into());
            let Step::Continue(server_first) = server.step(&client.first(), lookup).unwrap() else {
                panic!("server-first expected");
            };
            let params = client.parse_server_first(&server_first).unwrap();
            let salted = m.salted_password(b"secret", &params.salt, params.iterations);
            let client_final = client.finish(&salted).unwrap();
            let Step::Done {
                user: who,
                server_final,
                ..
            } = server.step(&client_final, |_, _| None).unwrap()
            else {
                panic!("done expected");
            };
            assert_eq!(who, user);
            assert_eq!(client.verify_server_final(&server_final), Ok(()));
        }
    }

    /// A server that does not know the credential cannot fake server-final;
    /// a wrong password fails on the server; bad server-first is refused.
    #[test]
    fn impostors_and_bad_messages_fail() {
        let m = Mechanism::Sha512;
        let salt = b"s".to_vec();
        let stored = m.salted_password(b"right", &salt, 4096);
        let credential = Credential::from_salted(m, &stored, salt, 4096);
        let mut server = ScramServer::new(m, "srv".into());
        let mut client = ScramClient::new(m, "broker", "cn".into());
        let Ok(Step::Continue(first)) =
            server.step(&client.first(), |_, _| Some(credential.clone()))
        else {
            panic!("server-first expected");
        };
        let params = client.parse_server_first(&first).unwrap();
        let wrong = m.salted_password(b"wrong", &params.salt, params.iterations);
        let last = client.finish(&wrong).unwrap();
        assert!(server.step(&last, |_, _| None).is_err());
        assert_eq!(
            client.verify_server_final(b"v=AAAA"),
            Err(ScramClientError::ServerSignature)
        );

        let fresh = || ScramClient::new(m, "broker", "cn".into());
        assert_eq!(
            fresh().parse_server_first(b"r=other,s=c2FsdA==,i=4096"),
            Err(ScramClientError::Nonce)
        );
        assert_eq!(
            fresh().parse_server_first(b"r=cn,s=c2FsdA==,i=4096"),
            Err(ScramClientError::Nonce)
        );
        assert_eq!(
            fresh().parse_server_first(b"r=cnX,s=c2FsdA==,i=100"),
            Err(ScramClientError::Iterations(100))
        );
        assert_eq!(
            fresh().parse_server_first(b"r=cnX,s=c2FsdA==,i=99999999"),
            Err(ScramClientError::Iterations(99_999_999))
        );
        assert!(fresh().parse_server_first(b"r=cnX,i=4096").is_err());
        assert!(matches!(
            fresh().parse_server_first(b"e=unknown-user"),
            Err(ScramClientError::Refused(_))
        ));
        assert_eq!(fresh().finish(b"x"), Err(ScramClientError::Order));
    }

    #[test]
    fn plain_message_is_rfc4616() {
        assert_eq!(plain_message("u", b"p"), b"\0u\0p");
        let (u, p) = crate::security::scram::parse_plain(&plain_message("broker", b"pw")).unwrap();
        assert_eq!((u.as_str(), p.as_slice()), ("broker", &b"pw"[..]));
    }
}

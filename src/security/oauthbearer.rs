//! SASL OAUTHBEARER (RFC 7628; Kafka's KIP-255 and KIP-768): a client
//! logs in with a JSON Web Token its identity provider signed, and acts as
//! the principal the token's subject names. The broker checks the token
//! against the provider's public keys (a JWKS, from a file or from the
//! provider's endpoint: Kafka's `sasl.oauthbearer.jwks.endpoint.url`), its expiry,
//! and the audience and issuer configured, as Kafka's default validator
//! does. Only asymmetric signatures are taken: a shared secret in a JWKS
//! would let anyone who can read the file mint tokens.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::jwks_endpoint::{self, Endpoint, Refresh, Trigger};

/// The mechanism's name, as SaslHandshake carries it.
pub const MECHANISM: &str = "OAUTHBEARER";
/// Keys one JWKS may hold; more is refused.
pub const KEYS_MAX: usize = 64;
/// The largest JWKS read.
pub(super) const JWKS_BYTES_MAX: u64 = 1 << 20;
/// The key-value separator of RFC 7628's messages.
const KVSEP: char = '\u{1}';

/// Signatures a token may carry: public-key ones only.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a login or the JWKS was refused. The text goes to the client and
/// the log: it never holds the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OAuthError {
    #[error("invalid OAUTHBEARER message: {0}")]
    Malformed(&'static str),
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("the authorization id differs from the token's subject")]
    AuthorizationId,
}

/// Why the JWKS could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: not a JWKS: {1}")]
    Parse(String, serde_json::Error),
    #[error("{0}: no key (or more than {KEYS_MAX})")]
    Keys(String),
    #[error("{0}: not an https:, http: or file: URL")]
    Url(String),
    #[error("fetching {0}: {1}")]
    Fetch(String, String),
    #[error("starting the JWKS refresher: {0}")]
    Thread(std::io::Error),
    #[error("the JWKS endpoint's certificate authorities: {0}")]
    Ca(#[from] super::pem::PemError),
}

/// The JWKS `text` read from `shown` (a path or URL, for errors).
pub(super) fn parse_jwks(shown: &str, text: &str) -> Result<JwkSet, JwksError> {
    let jwks: JwkSet =
        serde_json::from_str(text).map_err(|e| JwksError::Parse(shown.to_string(), e))?;
    if jwks.keys.is_empty() || jwks.keys.len() > KEYS_MAX {
        return Err(JwksError::Keys(shown.to_string()));
    }
    Ok(jwks)
}

/// What a token's claims must hold, besides a signature by a key.
#[derive(Clone, Debug)]
pub struct Checks {
    /// The token's `aud` must name one of these (none: not checked).
    pub audience: Vec<String>,
    /// The token's `iss` must be this (none: not checked).
    pub issuer: Option<String>,
    /// The claim naming the principal (Kafka's `sub` by default).
    pub sub_claim: String,
    /// Leeway on `exp` and `nbf`.
    pub clock_skew_s: u64,
}

impl Default for Checks {
    fn default() -> Checks {
        Checks {
            audience: Vec::new(),
            issuer: None,
            sub_claim: "sub".into(),
            clock_skew_s: 30,
        }
    }
}

/// What a token is checked against.
#[derive(Clone, Debug)]
pub struct Verifier {
    jwks: JwkSet,
    pub checks: Checks,
    /// The endpoint's refresher, when the keys come from one: told of a
    /// key id the set lacks (the provider may have rotated its keys since
    /// the last fetch), and of SIGHUP.
    refresh: Option<Arc<Trigger>>,
}

/// The verifier in use. A file's keys are read again on SIGHUP (an
/// identity provider rotates its keys): logins after it take the new keys;
/// a file that no longer reads keeps the old ones. An endpoint's are
/// fetched again by its refresher (and at once on SIGHUP).
#[derive(Debug)]
pub struct Keys {
    /// The JWKS file; none when the keys come from an endpoint.
    file: Option<PathBuf>,
    /// Read once per OAUTHBEARER login; written only by a reload.
    current: RwLock<Arc<Verifier>>,
}

impl Keys {
    /// The keys of the file at `path`, tokens checked by `checks`.
    pub fn load(path: &Path, checks: Checks) -> Result<Keys, JwksError> {
        let verifier = Verifier {
            checks,
            ..Verifier::load(path)?
        };
        Ok(Keys {
            file: Some(path.to_path_buf()),
            current: RwLock::new(Arc::new(verifier)),
        })
    }

    /// The keys of the JWKS endpoint at `url` (HTTPS verified against the
    /// authorities in `ca`, else the system's), fetched now (a provider
    /// that does not answer stops the start, as it stops Kafka's) and kept
    /// fresh by a thread of their own.
    pub fn fetched(
        url: &str,
        ca: Option<&Path>,
        checks: Checks,
        refresh: Refresh,
    ) -> Result<Arc<Keys>, JwksError> {
        let endpoint = Endpoint::new(url, ca)?;
        let jwks = endpoint.fetch()?;
        crate::stats::JWKS_FETCHES.add(1);
        let (trigger, woken) = Trigger::new();
        let verifier = Verifier {
            jwks,
            checks,
            refresh: Some(Arc::new(trigger)),
        };
        let keys = Arc::new(Keys {
            file: None,
            current: RwLock::new(Arc::new(verifier)),
        });
        jwks_endpoint::spawn_refresher(keys.clone(), endpoint, refresh, woken)
            .map_err(JwksError::Thread)?;
        Ok(keys)
    }

    /// Takes `jwks` for the logins from now on.
    pub(super) fn install(&self, jwks: JwkSet) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let verifier = Verifier {
            jwks,
            checks: current.checks.clone(),
            refresh: current.refresh.clone(),
        };
        *current = Arc::new(verifier);
    }

    pub fn current(&self) -> Arc<Verifier> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the file again (on any error the old keys stay), or has the
    /// endpoint's keys fetched now.
    pub fn reload(&self) {
        let Some(path) = &self.file else {
            if let Some(trigger) = &self.current().refresh {
                trigger.now();
            }
            return;
        };
        match Verifier::load(path) {
            Ok(fresh) => {
                self.install(fresh.jwks);
                tracing::info!(path = %path.display(), "OAUTHBEARER keys reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "OAUTHBEARER keys reload failed; keeping the old keys")
            }
        }
    }
}

/// A login the token allowed: who, and until when.
#[derive(Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The subject: the principal is `User:<name>`.
    pub name: String,
    /// The token's `exp`, in milliseconds.
    pub expires_ms: i64,
}

impl Verifier {
    /// A verifier of the keys in the JWKS file at `path`.
    pub fn load(path: &Path) -> Result<Verifier, JwksError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(JWKS_BYTES_MAX).read_to_string(&mut text))
            .map_err(|e| JwksError::Read(shown.clone(), e))?;
        Ok(Verifier::new(parse_jwks(&shown, &text)?))
    }

    pub fn new(jwks: JwkSet) -> Verifier {
        Verifier {
            jwks,
            checks: Checks::default(),
            refresh: None,
        }
    }

    /// The client's message (its only one): the token checked, and the
    /// subject it names.
    pub fn authenticate(&self, message: &[u8]) -> Result<Authenticated, OAuthError> {
        let (authzid, token) = parse_client_message(message)?;
        let who = self.validate(token)?;
        // As Kafka: an authorization id, if any, is the subject's own.
        if authzid.is_some_and(|id| id != who.name) {
            return Err(OAuthError::AuthorizationId);
        }
        Ok(who)
    }

    fn validate(&self, token: &str) -> Result<Authenticated, OAuthError> {
        let invalid = |e: jsonwebtoken::errors::Error| OAuthError::InvalidToken(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(OAuthError::InvalidToken(format!(
                "algorithm {:?} not accepted",
                header.alg
            )));
        }
        // The key the header names, or the only one.
        let jwk = match &header.kid {
            Some(kid) => self.jwks.find(kid).or_else(|| {
                if let Some(trigger) = &self.refresh {
                    trigger.missing_kid(kid, Instant::now());
                }
                None
            }),
            None if self.jwks.keys.len() == 1 => self.jwks.keys.first(),
            None => None,
        }
        .ok_or_else(|| OAuthError::InvalidToken("no key for the token's kid".into()))?;
        let key = DecodingKey::from_jwk(jwk).map_err(invalid)?;
        let mut validation = Validation::new(header.alg);
        let checks = &self.checks;
        validation.leeway = checks.clock_skew_s;
        validation.validate_nbf = true;
        validation.required_spec_claims = HashSet::from(["exp".to_string()]);
        if checks.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&checks.audience);
        }
        if let Some(issuer) = &checks.issuer {
            validation.set_issuer(&[issuer]);
        }
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map_err(invalid)?;
        let name = data
            .claims
            .get(&checks.sub_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty() && s.len() <= super::scram::USER_BYTES_MAX)
            .ok_or_else(|| OAuthError::InvalidToken(format!("no {} claim", checks.sub_claim)))?;
        // Kafka's validator requires `iat` too (jose4j's
        // `setRequireIssuedAt`), and a non-negative one.
        match data.claims.get("iat").and_then(serde_json::Value::as_f64) {
            Some(iat) if iat >= 0.0 => {}
            Some(_) => return Err(OAuthError::InvalidToken("negative iat claim".into())),
            None => return Err(OAuthError::InvalidToken("no iat claim".into())),
        }
        let exp_s = data.claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
        Ok(Authenticated {
            name: name.to_string(),
            expires_ms: exp_s.saturating_mul(1000),
        })
    }
}

/// RFC 7628's client message: `gs2-header %x01 *(key=value %x01) %x01`,
/// one of the pairs `auth=Bearer <token>`. The authorization id and the
/// token; other pairs (SASL extensions) are passed over.
fn parse_client_message(message: &[u8]) -> Result<(Option<&str>, &str), OAuthError> {
    let text = std::str::from_utf8(message).map_err(|_| OAuthError::Malformed("not UTF-8"))?;
    let (gs2, rest) = text
        .split_once(KVSEP)
        .ok_or(OAuthError::Malformed("no GS2 header"))?;
    let mut gs2 = gs2.splitn(3, ',');
    match gs2.next() {
        Some("n" | "y") => {}
        _ => return Err(OAuthError::Malformed("bad GS2 flag")),
    }
    let authzid = match gs2.next() {
        Some("") => None,
        Some(a) => Some(
            a.strip_prefix("a=")
                .ok_or(OAuthError::Malformed("bad authorization id"))?,
        ),
        None => return Err(OAuthError::Malformed("no GS2 header")),
    };
    // Each pair ends with a separator, and one more ends the message.
    let pairs = rest
        .strip_suffix("\u{1}\u{1}")
        .ok_or(OAuthError::Malformed("no final separator"))?;
    let token = pairs
        .split(KVSEP)
        .filter_map(|pair| pair.strip_prefix("auth="))
        .next()
        .ok_or(OAuthError::Malformed("no auth"))?;
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .ok_or(OAuthError::Malformed("auth is not a bearer token"))?
        .trim();
    Ok((authzid, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{encode, EncodingKey, Header};

    /// A P-256 key: the JWKS of its public half, and the signing half.
    fn keys(kid: &str) -> (JwkSet, EncodingKey) {
        let pair = rcgen::KeyPair::generate().unwrap();
        let point = pair.public_key_raw();
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]});
        (
            serde_json::from_value(jwks).unwrap(),
            EncodingKey::from_ec_der(&pair.serialize_der()),
        )
    }

    fn token(key: &EncodingKey, kid: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        encode(&header, &claims, key).unwrap()
    }

    fn message(authzid: &str, token: &str) -> Vec<u8> {
        format!("n,{authzid},\u{1}host=h\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
    }

    fn now_s() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn a_signed_token_names_its_subject_until_it_expires() {
        let (jwks, key) = keys("k1");
        let mut v = Verifier::new(jwks);
        v.checks.audience = vec!["kafka".into()];
        v.checks.issuer = Some("https://idp".into());
        let exp = now_s() + 600;
        let good = serde_json::json!(
            {"sub": "alice", "aud": "kafka", "iss": "https://idp", "exp": exp, "iat": now_s()}
        );
        let t = token(&key, "k1", good.clone());
        assert_eq!(
            v.authenticate(&message("", &t)),
            Ok(Authenticated {
                name: "alice".into(),
                expires_ms: exp * 1000
            })
        );
        assert!(v.authenticate(&message("a=alice", &t)).is_ok());
        assert_eq!(
            v.authenticate(&message("a=bob", &t)),
            Err(OAuthError::AuthorizationId)
        );
        // Expired past the clock skew, another audience or issuer, another
        // key, no subject, no time of issue: refused.
        let refused = |claims: serde_json::Value, kid: &str, key: &EncodingKey| {
            matches!(
                v.authenticate(&message("", &token(key, kid, claims))),
                Err(OAuthError::InvalidToken(_))
            )
        };
        let with = |k: &str, value: serde_json::Value| {
            let mut c = good.clone();
            c[k] = value;
            c
        };
        assert!(refused(with("exp", (now_s() - 60).into()), "k1", &key));
        assert!(refused(with("aud", "other".into()), "k1", &key));
        assert!(refused(with("iss", "https://other".into()), "k1", &key));
        assert!(refused(with("sub", serde_json::Value::Null), "k1", &key));
        assert!(refused(with("iat", serde_json::Value::Null), "k1", &key));
        assert!(refused(with("iat", (-1).into()), "k1", &key));
        let (_, stranger) = keys("k1");
        assert!(
            refused(good.clone(), "k1", &stranger),
            "signed by another key"
        );
        assert!(refused(good, "k2", &key), "a kid the JWKS lacks");
    }

    #[test]
    fn an_unsigned_or_shared_secret_token_is_refused() {
        let (jwks, _) = keys("k1");
        let v = Verifier::new(jwks);
        let claims = serde_json::json!({"sub": "alice", "exp": now_s() + 600});
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"s"),
        )
        .unwrap();
        assert!(v.authenticate(&message("", &hs)).is_err());
        // alg "none" (Kafka's unsecured tokens): not a JWT this accepts.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert!(v.authenticate(&message("", &none)).is_err());
    }

    #[test]
    fn malformed_messages_are_refused() {
        let (jwks, _) = keys("k1");
        let v = Verifier::new(jwks);
        for bad in [
            &b"n,,"[..],
            b"x,,\x01auth=Bearer t\x01\x01",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01host=h\x01\x01",
            b"n,,\x01auth=Bearer t\x01",
            b"n,u,\x01auth=Bearer t\x01\x01",
        ] {
            assert!(
                matches!(v.authenticate(bad), Err(OAuthError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}

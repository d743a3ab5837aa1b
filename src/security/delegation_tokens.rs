//! Delegation tokens (KIP-48): a secret a principal authenticated by
//! SASL or a client certificate obtains for a job it hands its access to.
//! The job logs in with SCRAM as the token id, the token's HMAC as the
//! password and the `tokenauth=true` extension, and acts as the token's
//! owner until the token expires.
//!
//! A token's HMAC is HMAC-SHA512 of its id under the cluster's
//! `delegation_token_secret_key` (Kafka's), so every broker with the key
//! finds a token by its HMAC; what is stored is what Kafka's brokers keep
//! in memory: the token's information and the SCRAM credentials the HMAC
//! makes, never the HMAC itself.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha512;

use super::scram::{Credential, Mechanism, ITERATIONS_MIN};

/// Tokens the cluster holds at most; past it a new one is refused (the
/// set travels whole in every topics snapshot).
pub const TOKENS_MAX: usize = 10_000;
/// Renewers one token names at most.
pub const RENEWERS_MAX: usize = 100;

/// One token (Kafka's TokenInformation), by its id in [`DelegationTokens`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationToken {
    /// The principal the token acts as, `User:NAME`.
    pub owner: String,
    /// Who asked for it (KIP-373: may differ from the owner).
    pub requester: String,
    /// Principals besides the owner that may renew or expire it.
    pub renewers: Vec<String>,
    pub issue_ms: i64,
    /// When it stops working unless renewed.
    pub expiry_ms: i64,
    /// Past this no renewal reaches.
    pub max_ms: i64,
    /// What a SCRAM login with the token's HMAC as the password is checked
    /// against, per mechanism.
    pub credentials: BTreeMap<Mechanism, Credential>,
}

impl DelegationToken {
    /// Whether it stopped working by `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expiry_ms < now_ms || self.max_ms < now_ms
    }

    /// Whether `principal` may renew or expire it: its owner, its
    /// requester or a renewer (Kafka's `allowedToRenew`).
    pub fn renewable_by(&self, principal: &str) -> bool {
        self.owner == principal
            || self.requester == principal
            || self.renewers.iter().any(|r| r == principal)
    }
}

/// Every token, by id.
pub type DelegationTokens = BTreeMap<String, DelegationToken>;

/// A fresh token id: a random UUID, URL-safe base64 (Kafka's
/// `generateUuidAsBase64`).
pub fn new_token_id() -> String {
    URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// The token's HMAC under the cluster's secret key.
pub fn hmac(secret: &str, token_id: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(token_id.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The SCRAM credentials a token's HMAC makes: the client's password is
/// the HMAC in base64, salted afresh per mechanism at Kafka's iterations.
pub fn credentials(hmac: &[u8]) -> BTreeMap<Mechanism, Credential> {
    use rand::Rng;
    let password = B64.encode(hmac);
    Mechanism::ALL
        .into_iter()
        .map(|m| {
            let salt: [u8; 32] = rand::thread_rng().gen();
            let salted = m.salted_password(password.as_bytes(), &salt, ITERATIONS_MIN);
            let credential = Credential::from_salted(m, &salted, salt.to_vec(), ITERATIONS_MIN);
            (m, credential)
        })
        .collect()
}

/// The token whose HMAC is `hmac_bytes`, expired or not (one HMAC per
/// token: at most [`TOKENS_MAX`]).
pub fn find_by_hmac<'a>(
    tokens: &'a DelegationTokens,
    secret: &str,
    hmac_bytes: &[u8],
) -> Option<(&'a String, &'a DelegationToken)> {
    use subtle::ConstantTimeEq;
    tokens
        .iter()
        .find(|(id, _)| bool::from(hmac(secret, id).ct_eq(hmac_bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expiry_ms: i64, max_ms: i64) -> DelegationToken {
        DelegationToken {
            owner: "User:alice".into(),
            requester: "User:bob".into(),
            renewers: vec!["User:carol".into()],
            issue_ms: 0,
            expiry_ms,
            max_ms,
            credentials: BTreeMap::new(),
        }
    }

    #[test]
    fn a_token_is_found_by_its_hmac_under_the_same_key() {
        let id = new_token_id();
        assert_eq!(id.len(), 22, "a UUID in unpadded base64");
        let tokens: DelegationTokens = [(id.clone(), token(100, 200))].into();
        let mac = hmac("secret", &id);
        assert_eq!(mac.len(), 64);
        assert!(find_by_hmac(&tokens, "secret", &mac).is_some());
        assert!(find_by_hmac(&tokens, "other key", &mac).is_none());
        assert!(find_by_hmac(&tokens, "secret", &hmac("secret", "other")).is_none());
    }

    #[test]
    fn the_owner_requester_and_renewers_renew() {
        let t = token(100, 200);
        for who in ["User:alice", "User:bob", "User:carol"] {
            assert!(t.renewable_by(who), "{who}");
        }
        assert!(!t.renewable_by("User:mallory"));
        assert!(t.expired(201) && !t.expired(100));
    }

    #[test]
    fn the_credentials_take_the_hmac_in_base64_as_the_password() {
        let mac = hmac("secret", "id");
        let made = credentials(&mac);
        for (m, c) in &made {
            assert!(c.matches_password(*m, B64.encode(&mac).as_bytes()));
            assert!(!c.matches_password(*m, b"id"));
        }
        assert_eq!(made.len(), 2);
    }
}

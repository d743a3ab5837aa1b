//! The broker's own SASL login on a connection to another broker:
//! SaslHandshake v1, then SaslAuthenticate v2 carrying PLAIN's one message
//! or SCRAM's two (RFC 5802: client-first, client-final, and the server's
//! signature checked in server-final). Every message is a bounded frame and
//! every wait the caller's bounded call; PBKDF2 runs off the reactor.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::security::{Login, LoginMechanism};
use super::{ClientError, KafkaConnection};
use crate::security::scram_client::{plain_message, ScramClient};

const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 2;
/// Largest SASL answer accepted: a SCRAM message is ~200 bytes.
pub(super) const SASL_RESPONSE_MAX: u32 = 64 * 1024;

/// Authenticates `conn` as `login`; returns when the session must be
/// renewed (KIP-368), if the peer limits it.
pub(super) async fn authenticate(
    conn: &mut KafkaConnection,
    login: &Login,
    timeout: Duration,
) -> Result<Option<Instant>, ClientError> {
    let mechanism = login.mechanism.name();
    let request =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let answer: SaslHandshakeResponse = conn
        .call_bounded(
            ApiKey::SaslHandshake,
            HANDSHAKE_VERSION,
            &request,
            timeout,
            SASL_RESPONSE_MAX,
        )
        .await?;
    if answer.error_code != 0 {
        return Err(ClientError::SaslMechanism {
            mechanism,
            offered: answer.mechanisms.iter().map(|m| m.to_string()).collect(),
        });
    }
    let last = match login.mechanism {
        LoginMechanism::Plain => {
            let message = plain_message(&login.username, &login.password);
            step(conn, login, message, timeout).await?
        }
        LoginMechanism::Scram(m) => {
            let mut scram = ScramClient::new(
                m,
                &login.username,
                crate::security::scram::ScramServer::random_nonce(),
            );
            let server_first = step(conn, login, scram.first(), timeout).await?;
            let params = scram.parse_server_first(&server_first.auth_bytes)?;
            let salted = salted_password(login, m, params.salt, params.iterations).await;
            let client_final = scram.finish(&salted)?;
            let server_final = step(conn, login, client_final, timeout).await?;
            scram.verify_server_final(&server_final.auth_bytes)?;
            server_final
        }
    };
    Ok(renew_at(last.session_lifetime_ms))
}

/// One SaslAuthenticate round trip; a refusal is an error naming the user
/// (never the password) and the server's message.
async fn step(
    conn: &mut KafkaConnection,
    login: &Login,
    token: Vec<u8>,
    timeout: Duration,
) -> Result<SaslAuthenticateResponse, ClientError> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    let answer: SaslAuthenticateResponse = conn
        .call_bounded(
            ApiKey::SaslAuthenticate,
            AUTHENTICATE_VERSION,
            &request,
            timeout,
            SASL_RESPONSE_MAX,
        )
        .await?;
    if answer.error_code != 0 {
        return Err(ClientError::SaslAuthentication {
            user: login.username.clone(),
            code: answer.error_code,
            message: answer
                .error_message
                .as_ref()
                .map(|m| m.chars().take(200).collect())
                .unwrap_or_default(),
        });
    }
    Ok(answer)
}

/// Hi(password, salt, iterations), cached, computed on a blocking thread:
/// up to 16384 HMAC rounds must not stall the shard's reactor.
async fn salted_password(
    login: &Login,
    mechanism: crate::security::scram::Mechanism,
    salt: Vec<u8>,
    iterations: u32,
) -> Vec<u8> {
    if let Some(salted) = login.cached_salted(&salt, iterations) {
        return salted;
    }
    let password = login.password.clone();
    let for_thread = salt.clone();
    let salted = crate::runtime::blocking(move || {
        mechanism.salted_password(&password, &for_thread, iterations)
    })
    .await;
    login.cache_salted(salt, iterations, salted.clone());
    salted
}

/// KIP-368 as Kafka's client does it: renew well before the peer's
/// session ends (at 85% of its lifetime).
fn renew_at(session_lifetime_ms: i64) -> Option<Instant> {
    let ms = u64::try_from(session_lifetime_ms)
        .ok()
        .filter(|ms| *ms > 0)?;
    Some(Instant::now() + Duration::from_millis(ms.saturating_mul(85) / 100))
}

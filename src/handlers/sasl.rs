//! SaslHandshake (API 17) and SaslAuthenticate (API 36), and the bare
//! tokens a v0 handshake is followed by. The exchange state lives on the
//! connection (`net::sasl::Session`); credentials come from the topics
//! snapshot. A failed authentication is answered, logged without the
//! secret, delayed when its address keeps failing, and then the connection
//! closes ([`SaslOutcome::close`]).

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{ApiSpec, Client, Piece};
use crate::shard::Shard;
use kafka_protocol::messages::ApiKey;

pub const SASL_HANDSHAKE: ApiSpec = ApiSpec {
    key: ApiKey::SaslHandshake,
    min: 0,
    max: 1,
};

pub const SASL_AUTHENTICATE: ApiSpec = ApiSpec {
    key: ApiKey::SaslAuthenticate,
    min: 0,
    max: 2,
};

pub fn handshake(
    _shard: &Shard,
    header: &RequestHeader,
    client: &Client,
    request: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let (error, offered) = client
        .session
        .handshake(request.mechanism.as_str(), header.request_api_version == 0);
    let mut response = SaslHandshakeResponse::default();
    response.error_code = error;
    response.mechanisms = offered.into_iter().map(StrBytes::from_string).collect();
    response
}

/// SaslAuthenticate's answer, and whether the connection closes after it.
pub async fn authenticate(
    shard: &Rc<Shard>,
    client: &Client,
    request: SaslAuthenticateRequest,
) -> (SaslAuthenticateResponse, bool) {
    let reply = token(shard, client, &request.auth_bytes).await;
    let mut response = SaslAuthenticateResponse::default();
    response.error_code = reply.error;
    response.error_message = reply.message.map(StrBytes::from_string);
    response.auth_bytes = Bytes::from(reply.bytes);
    response.session_lifetime_ms = reply.session_lifetime_ms;
    (response, reply.error != 0)
}

/// A v0 handshake's bare token: the answer is a bare size-prefixed frame,
/// and a failure closes the connection (`Err`) without one, as Kafka does.
pub async fn raw_token(
    shard: &Rc<Shard>,
    client: &Client,
    frame: Bytes,
) -> Result<Vec<Piece>, super::RequestError> {
    let reply = token(shard, client, &frame).await;
    if reply.error != 0 {
        return Err(super::RequestError::Authentication(
            reply.message.unwrap_or_default(),
        ));
    }
    let mut out = BytesMut::with_capacity(4 + reply.bytes.len());
    out.put_i32(reply.bytes.len() as i32);
    out.extend_from_slice(&reply.bytes);
    Ok(vec![Piece::Bytes(out.freeze())])
}

async fn token(shard: &Rc<Shard>, client: &Client, token: &[u8]) -> crate::net::sasl::TokenReply {
    let now = Instant::now();
    let topics = shard.topics();
    let oauth = shard.config.oauthbearer.as_ref().map(|keys| keys.current());
    let logins = crate::net::sasl::Logins {
        users: &topics.scram_credentials,
        tokens: &topics.delegation_tokens,
        oauth: oauth.as_deref(),
        now_ms: crate::runtime::now_ms(),
    };
    let reply = client
        .session
        .token(token, &logins, shard.config.connections_max_reauth_ms, now);
    if reply.error == ResponseError::SaslAuthenticationFailed.code() {
        let user = client.session.attempted();
        tracing::warn!(
            peer = %client.host,
            listener = %client.session.listener.name,
            user = %user,
            reason = reply.message.as_deref().unwrap_or(""),
            "SASL authentication failed"
        );
        if let Some(ip) = client.ip {
            let max = Duration::from_millis(shard.config.sasl_failure_delay_ms_max);
            let delay = crate::net::sasl::failure_delay(ip, now, max);
            if !delay.is_zero() {
                crate::runtime::sleep(delay).await;
            }
        }
    } else if reply.error == 0 && reply.bytes.is_empty() || reply.session_lifetime_ms > 0 {
        tracing::debug!(peer = %client.host, principal = %client.session.principal(), "SASL step");
    }
    reply
}

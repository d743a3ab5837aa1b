//! Delegation tokens (KIP-48): Create, Renew, Expire and Describe, which
//! `kafka-delegation-tokens.sh` and the admin clients send. Sluice issues no
//! tokens, as a Kafka broker without `delegation.token.secret.key` issues
//! none, and answers as that broker does: a connection that could not use
//! a token gets DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, any other
//! DELEGATION_TOKEN_AUTH_DISABLED. Serving the APIs, rather than leaving
//! them out of ApiVersions, is what gives clients Kafka's reason.

use kafka_protocol::messages::{
    ApiKey, CreateDelegationTokenRequest, CreateDelegationTokenResponse,
    DescribeDelegationTokenResponse, ExpireDelegationTokenResponse, RenewDelegationTokenResponse,
    RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{ApiSpec, Client};
use crate::security::listeners::SecurityProtocol;

/// Kafka 4's ranges (KIP-896 retired each v0).
pub const CREATE: ApiSpec = ApiSpec {
    key: ApiKey::CreateDelegationToken,
    min: 1,
    max: 3,
};
pub const RENEW: ApiSpec = ApiSpec {
    key: ApiKey::RenewDelegationToken,
    min: 1,
    max: 2,
};
pub const EXPIRE: ApiSpec = ApiSpec {
    key: ApiKey::ExpireDelegationToken,
    min: 1,
    max: 2,
};
pub const DESCRIBE: ApiSpec = ApiSpec {
    key: ApiKey::DescribeDelegationToken,
    min: 1,
    max: 3,
};

/// CreateDelegationToken v3 names the token's owner apart from the
/// requester (KIP-373).
const OWNER_SINCE: i16 = 3;

/// Why this connection gets no token: Kafka's `allowTokenRequests` first
/// (tokens are for SASL, or for TLS with a client certificate), then
/// tokens being off.
fn refusal(client: &Client) -> ResponseError {
    let principal = client.session.principal();
    let allowed = match client.session.listener.protocol {
        SecurityProtocol::Plaintext => false,
        // One-way TLS: the client is anonymous.
        SecurityProtocol::Ssl => principal != crate::security::listeners::ANONYMOUS,
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => true,
    };
    if allowed {
        ResponseError::DelegationTokenAuthDisabled
    } else {
        ResponseError::DelegationTokenRequestNotAllowed
    }
}

pub fn create(
    client: &Client,
    header: &RequestHeader,
    request: CreateDelegationTokenRequest,
) -> CreateDelegationTokenResponse {
    let mut response = CreateDelegationTokenResponse::default();
    response.error_code = refusal(client).code();
    // Kafka's answer names the owner: the one asked for (null or empty:
    // none), else the requester.
    let principal = client.session.principal();
    let (kind, name) = principal.split_once(':').unwrap_or(("User", &principal));
    let requester = (
        StrBytes::from_string(kind.to_string()),
        StrBytes::from_string(name.to_string()),
    );
    match request.owner_principal_name {
        Some(owner) if header.request_api_version >= OWNER_SINCE && !owner.is_empty() => {
            response.principal_type = request.owner_principal_type.unwrap_or_default();
            response.principal_name = owner;
        }
        _ => (response.principal_type, response.principal_name) = requester.clone(),
    }
    if header.request_api_version >= OWNER_SINCE {
        (
            response.token_requester_principal_type,
            response.token_requester_principal_name,
        ) = requester;
    }
    response
}

pub fn renew(client: &Client) -> RenewDelegationTokenResponse {
    let mut response = RenewDelegationTokenResponse::default();
    response.error_code = refusal(client).code();
    response
}

pub fn expire(client: &Client) -> ExpireDelegationTokenResponse {
    let mut response = ExpireDelegationTokenResponse::default();
    response.error_code = refusal(client).code();
    response
}

pub fn describe(client: &Client) -> DescribeDelegationTokenResponse {
    let mut response = DescribeDelegationTokenResponse::default();
    response.error_code = refusal(client).code();
    response
}

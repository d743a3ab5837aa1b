//! Delegation tokens (KIP-48): Create, Renew, Expire and Describe, which
//! `kafka-delegation-tokens.sh` and the admin clients send. Tokens are
//! issued with a `delegation_token_secret_key_file`, as Kafka's with
//! `delegation.token.secret.key`; the checks and their order are Kafka's
//! (`allowTokenRequests`, then the owner's authorization, then tokens being
//! on). A token logs in with SCRAM (`net::sasl`); the tokens live in the
//! topics snapshot (`security::delegation_tokens`), in a cluster through
//! the metadata quorum.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::describe_delegation_token_response::{
    DescribedDelegationToken, DescribedDelegationTokenRenewer,
};
use kafka_protocol::messages::{
    ApiKey, CreateDelegationTokenRequest, CreateDelegationTokenResponse,
    DescribeDelegationTokenRequest, DescribeDelegationTokenResponse, ExpireDelegationTokenRequest,
    ExpireDelegationTokenResponse, RenewDelegationTokenRequest, RenewDelegationTokenResponse,
    RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::{ApiSpec, Client};
use crate::security::acl::{Operation, ResourceType};
use crate::security::delegation_tokens::{self as tokens, DelegationToken, RENEWERS_MAX};
use crate::security::listeners::SecurityProtocol;
use crate::shard::{AdminOp, Shard};

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

/// Kafka's principal type for users, the only one a token names.
const USER_TYPE: &str = "User";

/// Whether this connection may ask about tokens (Kafka's
/// `allowTokenRequests`): one authenticated by SASL, or by a client
/// certificate, and not itself logged in with a token.
fn allowed(client: &Client) -> bool {
    let allowed = match client.session.listener.protocol {
        SecurityProtocol::Plaintext => false,
        // One-way TLS: the client is anonymous.
        SecurityProtocol::Ssl => {
            client.session.principal() != crate::security::listeners::ANONYMOUS
        }
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => true,
    };
    allowed && !client.session.by_token()
}

/// Tokens are off: the broker has no secret key.
fn disabled(shard: &Shard) -> bool {
    shard.config.delegation_token_secret_key.is_none()
}

/// Why this connection gets no answer about tokens, if it does not: one
/// not [`allowed`], then tokens being off.
fn refusal(shard: &Shard, client: &Client) -> Option<ResponseError> {
    if !allowed(client) {
        Some(ResponseError::DelegationTokenRequestNotAllowed)
    } else if disabled(shard) {
        Some(ResponseError::DelegationTokenAuthDisabled)
    } else {
        None
    }
}

/// `Type:name` as the (type, name) pair answers carry.
fn split(principal: &str) -> (StrBytes, StrBytes) {
    let (kind, name) = principal.split_once(':').unwrap_or((USER_TYPE, principal));
    (
        StrBytes::from_string(kind.to_string()),
        StrBytes::from_string(name.to_string()),
    )
}

pub async fn create(
    shard: &Rc<Shard>,
    client: &Client,
    access: &Access,
    header: &RequestHeader,
    request: CreateDelegationTokenRequest,
) -> CreateDelegationTokenResponse {
    let mut response = CreateDelegationTokenResponse::default();
    let requester = client.session.principal();
    // Kafka's answer names the owner even when it refuses: the one asked
    // for (null or empty: none), else the requester.
    let owner = match request.owner_principal_name.as_deref() {
        Some(name) if header.request_api_version >= OWNER_SINCE && !name.is_empty() => {
            let kind = request.owner_principal_type.as_deref().unwrap_or(USER_TYPE);
            format!("{kind}:{name}")
        }
        _ => requester.clone(),
    };
    (response.principal_type, response.principal_name) = split(&owner);
    if header.request_api_version >= OWNER_SINCE {
        (
            response.token_requester_principal_type,
            response.token_requester_principal_name,
        ) = split(&requester);
    }
    let renewers: Vec<String> = request
        .renewers
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r.principal_type.as_str(),
                r.principal_name.as_str()
            )
        })
        .collect();
    let not_user = |p: &String| !p.starts_with("User:");
    // Kafka's order: the connection, the owner's authorization, the
    // principals' types, then tokens being on.
    let refused = if !allowed(client) {
        Some(ResponseError::DelegationTokenRequestNotAllowed)
    } else if owner != requester
        && !access.allows(Operation::CreateTokens, ResourceType::User, &owner)
    {
        Some(ResponseError::DelegationTokenAuthorizationFailed)
    } else if not_user(&owner) || renewers.iter().any(not_user) {
        Some(ResponseError::InvalidPrincipalType)
    } else if renewers.len() > RENEWERS_MAX {
        Some(ResponseError::InvalidRequest)
    } else if disabled(shard) {
        Some(ResponseError::DelegationTokenAuthDisabled)
    } else {
        None
    };
    if let Some(e) = refused {
        response.error_code = e.code();
        return response;
    }
    let c = &shard.config;
    let secret = c.delegation_token_secret_key.as_deref().expect("checked");
    let now = crate::runtime::now_ms();
    let lifetime = match request.max_lifetime_ms {
        ms if ms > 0 => ms.min(c.delegation_token_max_lifetime_ms),
        _ => c.delegation_token_max_lifetime_ms,
    };
    let max_ms = now.saturating_add(lifetime);
    let id = tokens::new_token_id();
    let hmac = tokens::hmac(secret, &id);
    let token = DelegationToken {
        owner,
        requester,
        renewers,
        issue_ms: now,
        expiry_ms: max_ms.min(now.saturating_add(c.delegation_token_expiry_time_ms)),
        max_ms,
        credentials: tokens::credentials(&hmac),
    };
    let (issue, expiry) = (token.issue_ms, token.expiry_ms);
    let put = AdminOp::PutDelegationToken {
        id: id.clone(),
        token: Some(token),
        new: true,
        now_ms: now,
    };
    let done = shard.admin(put).await;
    if done.error != 0 {
        response.error_code = done.error;
        return response;
    }
    response.issue_timestamp_ms = issue;
    response.expiry_timestamp_ms = expiry;
    response.max_timestamp_ms = max_ms;
    response.token_id = StrBytes::from_string(id);
    response.hmac = Bytes::from(hmac);
    response
}

/// A renewal or expiry of the token `hmac` names, to `period_ms` from now
/// (never past its maximum): Kafka's checks, then the change; with
/// `remove` the token goes at once. The new expiry, or the error.
async fn change_expiry(
    shard: &Rc<Shard>,
    client: &Client,
    hmac: &[u8],
    period_ms: i64,
    remove: bool,
) -> Result<i64, ResponseError> {
    if let Some(e) = refusal(shard, client) {
        return Err(e);
    }
    let secret = shard.config.delegation_token_secret_key.as_deref();
    let topics = shard.topics();
    let (id, token) =
        tokens::find_by_hmac(&topics.delegation_tokens, secret.expect("checked"), hmac)
            .ok_or(ResponseError::DelegationTokenNotFound)?;
    if !token.renewable_by(&client.session.principal()) {
        return Err(ResponseError::DelegationTokenOwnerMismatch);
    }
    let now = crate::runtime::now_ms();
    if token.expired(now) {
        return Err(ResponseError::DelegationTokenExpired);
    }
    let expiry = if remove {
        now
    } else {
        token.max_ms.min(now.saturating_add(period_ms))
    };
    let changed = DelegationToken {
        expiry_ms: expiry,
        ..token.clone()
    };
    let put = AdminOp::PutDelegationToken {
        id: id.clone(),
        token: (!remove).then_some(changed),
        new: false,
        now_ms: now,
    };
    let done = shard.admin(put).await;
    match done.error {
        0 => Ok(expiry),
        code => {
            Err(ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError))
        }
    }
}

pub async fn renew(
    shard: &Rc<Shard>,
    client: &Client,
    request: RenewDelegationTokenRequest,
) -> RenewDelegationTokenResponse {
    let mut response = RenewDelegationTokenResponse::default();
    // A negative period: the broker's expiry time.
    let period = match request.renew_period_ms {
        ms if ms < 0 => shard.config.delegation_token_expiry_time_ms,
        ms => ms,
    };
    match change_expiry(shard, client, &request.hmac, period, false).await {
        Ok(expiry) => response.expiry_timestamp_ms = expiry,
        Err(e) => response.error_code = e.code(),
    }
    response
}

pub async fn expire(
    shard: &Rc<Shard>,
    client: &Client,
    request: ExpireDelegationTokenRequest,
) -> ExpireDelegationTokenResponse {
    let mut response = ExpireDelegationTokenResponse::default();
    // A negative period expires the token now.
    let period = request.expiry_time_period_ms;
    match change_expiry(shard, client, &request.hmac, period, period < 0).await {
        Ok(expiry) => response.expiry_timestamp_ms = expiry,
        Err(e) => response.error_code = e.code(),
    }
    response
}

/// The tokens of the owners asked for (none named: every owner) that the
/// requester owns, asked for or renews, or may describe by ACL (Describe on
/// the token, or DescribeTokens on its owner: KIP-373); expired ones are
/// gone.
pub fn describe(
    shard: &Rc<Shard>,
    client: &Client,
    access: &Access,
    header: &RequestHeader,
    request: DescribeDelegationTokenRequest,
) -> DescribeDelegationTokenResponse {
    let mut response = DescribeDelegationTokenResponse::default();
    if let Some(e) = refusal(shard, client) {
        response.error_code = e.code();
        return response;
    }
    let secret = shard.config.delegation_token_secret_key.as_deref();
    let owners: Option<Vec<String>> = request.owners.map(|owners| {
        owners
            .iter()
            .map(|o| {
                format!(
                    "{}:{}",
                    o.principal_type.as_str(),
                    o.principal_name.as_str()
                )
            })
            .collect()
    });
    let principal = client.session.principal();
    let now = crate::runtime::now_ms();
    let topics = shard.topics();
    response.tokens = topics
        .delegation_tokens
        .iter()
        .filter(|(_, t)| !t.expired(now))
        .filter(|(_, t)| owners.as_ref().is_none_or(|o| o.contains(&t.owner)))
        .filter(|(id, t)| {
            t.renewable_by(&principal)
                || access.allows(Operation::Describe, ResourceType::DelegationToken, id)
                || access.allows(Operation::DescribeTokens, ResourceType::User, &t.owner)
        })
        .map(|(id, t)| {
            let mut d = DescribedDelegationToken::default();
            (d.principal_type, d.principal_name) = split(&t.owner);
            if header.request_api_version >= OWNER_SINCE {
                (
                    d.token_requester_principal_type,
                    d.token_requester_principal_name,
                ) = split(&t.requester);
            }
            d.issue_timestamp = t.issue_ms;
            d.expiry_timestamp = t.expiry_ms;
            d.max_timestamp = t.max_ms;
            d.token_id = StrBytes::from_string(id.clone());
            d.hmac = Bytes::from(tokens::hmac(secret.expect("checked"), id));
            d.renewers = t
                .renewers
                .iter()
                .map(|r| {
                    let mut renewer = DescribedDelegationTokenRenewer::default();
                    (renewer.principal_type, renewer.principal_name) = split(r);
                    renewer
                })
                .collect();
            d
        })
        .collect();
    response
}

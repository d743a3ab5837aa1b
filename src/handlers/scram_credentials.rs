//! DescribeUserScramCredentials (API 50) and AlterUserScramCredentials
//! (API 51), as Kafka's ControllerApis/ScramControlManager check them. The
//! client sends the salted password (the password never reaches the
//! broker); the broker keeps only StoredKey and ServerKey.

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::ApiSpec;
use crate::security::scram::{self, Credential, Mechanism};
use crate::shard::{AdminOp, Shard};

pub const DESCRIBE: ApiSpec = ApiSpec {
    key: ApiKey::DescribeUserScramCredentials,
    min: 0,
    max: 0,
};

pub const ALTER: ApiSpec = ApiSpec {
    key: ApiKey::AlterUserScramCredentials,
    min: 0,
    max: 0,
};

/// Needs Describe on the cluster (CLUSTER_AUTHORIZATION_FAILED), as Kafka
/// checks it.
pub fn describe(
    shard: &Shard,
    access: &super::access::Access,
    _header: &RequestHeader,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !access.cluster(crate::security::acl::Operation::Describe) {
        let mut response = DescribeUserScramCredentialsResponse::default();
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        response.error_message = Some(StrBytes::from_static_str("Authorization failed."));
        return response;
    }
    let topics = shard.topics();
    let stored = &topics.scram_credentials;
    let info = |user: &str| -> Vec<CredentialInfo> {
        stored
            .get(user)
            .map(|set| {
                set.iter()
                    .map(|(m, c)| {
                        let mut i = CredentialInfo::default();
                        i.mechanism = m.kafka_type();
                        i.iterations = c.iterations as i32;
                        i
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut response = DescribeUserScramCredentialsResponse::default();
    response.results = match request.users {
        // Null or empty: every user with credentials.
        None => stored.keys().map(|u| result(u, 0, None, info(u))).collect(),
        Some(users) if users.is_empty() => {
            stored.keys().map(|u| result(u, 0, None, info(u))).collect()
        }
        Some(users) => {
            let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
            // One result per distinct user, as Kafka answers.
            let mut distinct: Vec<&str> = Vec::new();
            for n in &names {
                if !distinct.contains(n) {
                    distinct.push(n);
                }
            }
            distinct
                .iter()
                .map(|u| {
                    if names.iter().filter(|n| *n == u).count() > 1 {
                        result(
                            u,
                            ResponseError::DuplicateResource.code(),
                            Some("Cannot describe SCRAM credentials for the same user twice in a single request"),
                            Vec::new(),
                        )
                    } else if !stored.contains_key(*u) {
                        result(
                            u,
                            ResponseError::ResourceNotFound.code(),
                            Some("Attempt to describe a user credential that does not exist"),
                            Vec::new(),
                        )
                    } else {
                        result(u, 0, None, info(u))
                    }
                })
                .collect()
        }
    };
    response
}

fn result(
    user: &str,
    error: i16,
    message: Option<&str>,
    infos: Vec<CredentialInfo>,
) -> DescribeUserScramCredentialsResult {
    let mut r = DescribeUserScramCredentialsResult::default();
    r.user = StrBytes::from_string(user.to_string());
    r.error_code = error;
    r.error_message = message.map(|m| StrBytes::from_string(m.to_string()));
    r.credential_infos = infos;
    r
}

/// One requested change, checked; `Err` is the user's error and message.
type Checked = Result<(Mechanism, Option<Credential>), (ResponseError, String)>;

/// Needs Alter on the cluster: refused, every user answers
/// CLUSTER_AUTHORIZATION_FAILED, as Kafka does.
pub async fn alter(
    shard: &Rc<Shard>,
    access: &super::access::Access,
    _header: &RequestHeader,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    if !access.cluster(crate::security::acl::Operation::Alter) {
        let users: BTreeSet<String> = request
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(request.upsertions.iter().map(|u| u.name.to_string()))
            .collect();
        let mut response = AlterUserScramCredentialsResponse::default();
        response.results = users
            .into_iter()
            .map(|user| {
                let mut r = AlterUserScramCredentialsResult::default();
                r.user = StrBytes::from_string(user);
                r.error_code = ResponseError::ClusterAuthorizationFailed.code();
                r
            })
            .collect();
        return response;
    }
    let topics = shard.topics();
    // (user, mechanism) pairs named more than once make the user a duplicate.
    let mut seen = BTreeSet::new();
    let mut duplicate = BTreeSet::new();
    let mut changes: Vec<(String, Checked)> = Vec::new();
    for d in &request.deletions {
        let user = d.name.to_string();
        if !seen.insert((user.clone(), d.mechanism)) {
            duplicate.insert(user.clone());
        }
        let checked = match Mechanism::from_kafka_type(d.mechanism) {
            None => Err((
                ResponseError::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism".to_string(),
            )),
            Some(m)
                if !topics
                    .scram_credentials
                    .get(&user)
                    .is_some_and(|s| s.contains_key(&m)) =>
            {
                Err((
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist".to_string(),
                ))
            }
            Some(m) => Ok((m, None)),
        };
        changes.push((user, checked));
    }
    for u in &request.upsertions {
        let user = u.name.to_string();
        if !seen.insert((user.clone(), u.mechanism)) {
            duplicate.insert(user.clone());
        }
        let checked = upsertion(
            &user,
            u.mechanism,
            u.iterations,
            &u.salt,
            &u.salted_password,
        );
        changes.push((user, checked));
    }
    // Per user: the first error wins; a user without one has its changes applied.
    let mut errors: std::collections::BTreeMap<String, (ResponseError, String)> =
        Default::default();
    for user in &duplicate {
        errors.insert(
            user.clone(),
            (
                ResponseError::DuplicateResource,
                "A user credential cannot be altered twice in the same request".into(),
            ),
        );
    }
    let mut users_in_order: Vec<String> = Vec::new();
    for (user, checked) in &changes {
        if !users_in_order.contains(user) {
            users_in_order.push(user.clone());
        }
        if let Err(e) = checked {
            errors.entry(user.clone()).or_insert_with(|| e.clone());
        }
    }
    let accepted: Vec<_> = changes
        .into_iter()
        .filter(|(user, _)| !errors.contains_key(user))
        .filter_map(|(user, checked)| checked.ok().map(|(m, c)| (user, m, c)))
        .collect();
    let mut outcome = None;
    if !accepted.is_empty() {
        let done = shard
            .admin(AdminOp::AlterScramCredentials { changes: accepted })
            .await;
        if done.error != 0 {
            outcome = Some(done);
        }
    }
    let mut response = AlterUserScramCredentialsResponse::default();
    response.results = users_in_order
        .into_iter()
        .map(|user| {
            let mut r = AlterUserScramCredentialsResult::default();
            if let Some((code, message)) = errors.get(&user) {
                r.error_code = code.code();
                r.error_message = Some(StrBytes::from_string(message.clone()));
            } else if let Some(o) = &outcome {
                r.error_code = o.error;
                r.error_message = o.message.clone().map(StrBytes::from_string);
            }
            r.user = StrBytes::from_string(user);
            r
        })
        .collect();
    response
}

fn upsertion(user: &str, mechanism: i8, iterations: i32, salt: &[u8], salted: &[u8]) -> Checked {
    let unacceptable = |m: &str| Err((ResponseError::UnacceptableCredential, m.to_string()));
    let Some(m) = Mechanism::from_kafka_type(mechanism) else {
        return Err((
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism".into(),
        ));
    };
    if user.is_empty() || user.len() > scram::USER_BYTES_MAX {
        return unacceptable("Username must not be empty or too long");
    }
    if iterations < scram::ITERATIONS_MIN as i32 {
        return unacceptable("Too few iterations");
    }
    if iterations > scram::ITERATIONS_MAX as i32 {
        return unacceptable("Too many iterations");
    }
    if salt.is_empty() || salt.len() > 1024 || salted.is_empty() || salted.len() > 1024 {
        return unacceptable("Salt and salted password must be present and short");
    }
    Ok((
        m,
        Some(Credential::from_salted(
            m,
            salted,
            salt.to_vec(),
            iterations as u32,
        )),
    ))
}

//! DescribeClientQuotas (API 48) and AlterClientQuotas (API 49), as Kafka
//! 3.9's broker (ClientQuotaCache) and controller
//! (ClientQuotaControlManager) check and answer them (KIP-546). Entities
//! are users and client ids, named or default (a null name), and ips
//! (KIP-612's connection_creation_rate), which stand alone.

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntityData, EntryData as AlterEntryData,
};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::ApiSpec;
use crate::quota::entity::CONNECTION_CREATION_RATE;
use crate::quota::entity::{CLIENT_ID, IP, USER};
use crate::quota::{
    check_ip_value, check_value, EntityName, QuotaEntity, QuotaError, QuotaKey, QuotaValues, Target,
};
use crate::shard::{AdminOp, Shard};

pub const DESCRIBE: ApiSpec = ApiSpec {
    key: ApiKey::DescribeClientQuotas,
    min: 0,
    max: 1,
};

pub const ALTER: ApiSpec = ApiSpec {
    key: ApiKey::AlterClientQuotas,
    min: 0,
    max: 1,
};

/// DescribeClientQuotas' match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// How one filter component matches an entity's part of its type.
#[derive(Debug, PartialEq)]
enum Match {
    Exact(String),
    Default,
    Any,
}

impl Match {
    fn accepts(&self, part: &EntityName) -> bool {
        match (self, part) {
            (Match::Any, _) => true,
            (Match::Default, EntityName::Default) => true,
            (Match::Exact(want), EntityName::Name(have)) => want == have,
            _ => false,
        }
    }
}

/// A filter Kafka refuses, with the code and words it answers.
struct Refused(ResponseError, String);

/// The filter's user, client-id and ip components, checked as Kafka's
/// ClientQuotaCache checks them.
fn filter(request: &DescribeClientQuotasRequest) -> Result<[Option<Match>; 3], Refused> {
    let mut parts: [Option<Match>; 3] = [None, None, None];
    for c in &request.components {
        let kind = c.entity_type.as_str();
        let index = match kind {
            USER => 0,
            CLIENT_ID => 1,
            IP => 2,
            "" => {
                return Err(Refused(
                    ResponseError::InvalidRequest,
                    "Unexpected empty filter component entity type".into(),
                ))
            }
            other => {
                return Err(Refused(
                    ResponseError::UnsupportedVersion,
                    format!("Custom entity type {other} not supported"),
                ))
            }
        };
        if parts[index].is_some() {
            return Err(Refused(
                ResponseError::InvalidRequest,
                format!("Duplicate {kind} filter component entity type"),
            ));
        }
        parts[index] = Some(match (c.match_type, &c._match) {
            // An exact match on a null name is the default, as Kafka's
            // ClientQuotaFilterComponent.ofEntity makes it.
            (MATCH_EXACT, Some(name)) => Match::Exact(name.to_string()),
            (MATCH_EXACT, None) | (MATCH_DEFAULT, _) => Match::Default,
            (MATCH_ANY, _) => Match::Any,
            (other, _) => {
                return Err(Refused(
                    ResponseError::InvalidRequest,
                    format!("Unexpected match type: {other}"),
                ))
            }
        });
    }
    if parts[2].is_some() && (parts[0].is_some() || parts[1].is_some()) {
        return Err(Refused(
            ResponseError::InvalidRequest,
            "Invalid entity filter component combination, IP filter component should not be used with User or ClientId filter component.".into(),
        ));
    }
    Ok(parts)
}

/// Whether `entity` passes the filter: every component names a part the
/// entity has and accepts it; strict: the entity has no other part.
fn matches(entity: &QuotaEntity, parts: &[Option<Match>; 3], strict: bool) -> bool {
    let pairs = [(&parts[0], &entity.user), (&parts[1], &entity.client_id)];
    let every_component = pairs.iter().all(|(m, part)| match (m, part) {
        (None, _) => true,
        (Some(m), Some(p)) => m.accepts(p),
        (Some(_), None) => false,
    });
    let nothing_else = pairs.iter().all(|(m, part)| m.is_some() || part.is_none());
    every_component && (!strict || nothing_else)
}

pub fn describe(
    shard: &Shard,
    access: &super::access::Access,
    _header: &RequestHeader,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let mut response = DescribeClientQuotasResponse::default();
    // Kafka: DescribeConfigs on the cluster.
    if !access.cluster(crate::security::acl::Operation::DescribeConfigs) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        response.error_message = Some(StrBytes::from_static_str("Authorization failed."));
        response.entries = None;
        return response;
    }
    let parts = match filter(&request) {
        Ok(parts) => parts,
        Err(Refused(code, message)) => {
            response.error_code = code.code();
            response.error_message = Some(StrBytes::from_string(message));
            response.entries = None;
            return response;
        }
    };
    let topics = shard.topics();
    let wanted = |entity: &QuotaEntity| {
        if request.components.is_empty() {
            // Kafka: an empty non-strict filter matches everything, an
            // empty strict one nothing.
            return !request.strict;
        }
        // An ip filter matches ip entities only.
        parts[2].is_none() && matches(entity, &parts, request.strict)
    };
    // An ip entity has no other part: it passes a filter of an ip
    // component alone, or the empty non-strict one.
    let wanted_ip = |ip: &EntityName| match &parts[2] {
        _ if request.components.is_empty() => !request.strict,
        Some(m) => m.accepts(ip),
        None => false,
    };
    let ips = topics
        .ip_quotas
        .iter()
        .filter(|(ip, _)| wanted_ip(ip))
        .map(|(ip, rate)| ip_entry(ip, rate));
    let entries = topics
        .client_quotas
        .iter()
        .filter(|(entity, _)| wanted(entity))
        .map(|(entity, values)| entry(entity, values))
        .chain(ips)
        .collect();
    response.entries = Some(entries);
    response
}

fn entry(entity: &QuotaEntity, values: &QuotaValues) -> EntryData {
    let mut e = EntryData::default();
    e.entity = entity
        .wire_parts()
        .into_iter()
        .map(|(kind, name)| {
            let mut d = EntityData::default();
            d.entity_type = StrBytes::from_static_str(kind);
            d.entity_name = name.map(|n| StrBytes::from_string(n.to_string()));
            d
        })
        .collect();
    e.values = values
        .iter()
        .map(|(key, value)| {
            let mut v = ValueData::default();
            v.key = StrBytes::from_static_str(key.name());
            v.value = value;
            v
        })
        .collect();
    e
}

fn ip_entry(ip: &EntityName, rate: f64) -> EntryData {
    let mut e = EntryData::default();
    let mut d = EntityData::default();
    d.entity_type = StrBytes::from_static_str(IP);
    d.entity_name = ip.wire().map(|n| StrBytes::from_string(n.to_string()));
    e.entity = vec![d];
    let mut v = ValueData::default();
    v.key = StrBytes::from_static_str(CONNECTION_CREATION_RATE);
    v.value = rate;
    e.values = vec![v];
    e
}

/// An entry's checked changes: a client entity's keys, or an ip's rate.
#[derive(Debug)]
enum Changes {
    Client(QuotaEntity, Vec<(QuotaKey, Option<f64>)>),
    /// connection_creation_rate set or removed; no op: nothing.
    Ip(EntityName, Option<Option<f64>>),
}

impl Changes {
    fn target(&self) -> Target {
        match self {
            Changes::Client(e, _) => Target::Client(e.clone()),
            Changes::Ip(ip, _) => Target::Ip(ip.clone()),
        }
    }
}

/// One entry's changes, or why the entry is refused.
type Checked = Result<Changes, QuotaError>;

fn check_entry(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Checked {
    let target = Target::from_wire(entry.entity.iter().map(|e| {
        (
            e.entity_type.as_str(),
            e.entity_name.as_ref().map(|n| n.as_str()),
        )
    }))?;
    let entity = match target {
        Target::Client(entity) => entity,
        Target::Ip(ip) => return check_ip_entry(entry, ip),
    };
    let mut seen = BTreeSet::new();
    let mut changes = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let name = op.key.as_str();
        if !seen.insert(name) {
            return Err(QuotaError::DuplicateKey(name.to_string()));
        }
        if op.remove {
            // Removing a key Kafka does not know removes nothing.
            if let Some(key) = QuotaKey::from_name(name) {
                changes.push((key, None));
            }
        } else {
            changes.push((check_value(name, op.value)?, Some(op.value)));
        }
    }
    Ok(Changes::Client(entity, changes))
}

/// An ip entry's one op on connection_creation_rate.
fn check_ip_entry(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
    ip: EntityName,
) -> Checked {
    let mut value = None;
    let mut seen = BTreeSet::new();
    for op in &entry.ops {
        let name = op.key.as_str();
        if !seen.insert(name) {
            return Err(QuotaError::DuplicateKey(name.to_string()));
        }
        value = Some(if op.remove {
            if name != CONNECTION_CREATION_RATE {
                return Err(QuotaError::UnknownKey(name.to_string()));
            }
            None
        } else {
            Some(check_ip_value(name, op.value)?)
        });
    }
    Ok(Changes::Ip(ip, value))
}

pub async fn alter(
    shard: &Rc<Shard>,
    access: &super::access::Access,
    _header: &RequestHeader,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    // Kafka: AlterConfigs on the cluster, else every entry is refused.
    if !access.cluster(crate::security::acl::Operation::AlterConfigs) {
        let mut response = AlterClientQuotasResponse::default();
        response.entries = request
            .entries
            .iter()
            .map(|asked| {
                let mut r = answer_for(asked);
                r.error_code = ResponseError::ClusterAuthorizationFailed.code();
                r.error_message = Some(StrBytes::from_static_str("Authorization failed."));
                r
            })
            .collect();
        return response;
    }
    let mut checked: Vec<Checked> = request.entries.iter().map(check_entry).collect();
    // An entity named twice is refused both times (Kafka: "Ignoring
    // duplicate entity"), so neither of two conflicting changes applies.
    let mut counts = std::collections::BTreeMap::new();
    for changes in checked.iter().flatten() {
        *counts.entry(changes.target()).or_insert(0) += 1;
    }
    for c in checked.iter_mut() {
        if matches!(c, Ok(changes) if counts[&changes.target()] > 1) {
            *c = Err(QuotaError::DuplicateEntity);
        }
    }
    let mut accepted = Vec::new();
    let mut ip_changes = Vec::new();
    for changes in checked.iter().flatten() {
        match changes {
            Changes::Client(entity, keys) => {
                accepted.extend(keys.iter().map(|(k, v)| (entity.clone(), *k, *v)))
            }
            Changes::Ip(ip, op) => ip_changes.extend(op.map(|value| (ip.clone(), value))),
        }
    }
    // All accepted changes are one admin change (Kafka's atomic controller
    // result); validate_only checks without changing.
    let mut outcome = None;
    if (!accepted.is_empty() || !ip_changes.is_empty()) && !request.validate_only {
        let done = shard
            .admin(AdminOp::AlterClientQuotas {
                changes: accepted,
                ip_changes,
            })
            .await;
        if done.error != 0 {
            outcome = Some(done);
        }
    }
    let mut response = AlterClientQuotasResponse::default();
    response.entries = request
        .entries
        .iter()
        .zip(checked)
        .map(|(asked, checked)| {
            let mut r = answer_for(asked);
            match (checked, &outcome) {
                (Err(e), _) => {
                    r.error_code = ResponseError::InvalidRequest.code();
                    r.error_message = Some(StrBytes::from_string(e.to_string()));
                }
                (Ok(_), Some(o)) => {
                    r.error_code = o.error;
                    r.error_message = o.message.clone().map(StrBytes::from_string);
                }
                (Ok(_), None) => {}
            }
            r
        })
        .collect();
    response
}

/// An entry's answer naming the entity as asked, without an error yet.
fn answer_for(
    asked: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> AlterEntryData {
    let mut r = AlterEntryData::default();
    // Null unless refused, as Kafka answers (the default is "").
    r.error_message = None;
    r.entity = asked
        .entity
        .iter()
        .map(|e| {
            let mut d = AlterEntityData::default();
            d.entity_type = e.entity_type.clone();
            d.entity_name = e.entity_name.clone();
            d
        })
        .collect();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;

    fn component(kind: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        let mut c = ComponentData::default();
        c.entity_type = StrBytes::from_string(kind.into());
        c.match_type = match_type;
        c._match = name.map(|n| StrBytes::from_string(n.into()));
        c
    }

    fn request(components: Vec<ComponentData>, strict: bool) -> DescribeClientQuotasRequest {
        let mut r = DescribeClientQuotasRequest::default();
        r.components = components;
        r.strict = strict;
        r
    }

    /// Kafka's filter semantics: exact, default and any, strict or not.
    #[test]
    fn filters_match_as_kafka_does() {
        let user = |n: &str| Some(EntityName::Name(n.into()));
        let alice = QuotaEntity {
            user: user("alice"),
            client_id: None,
        };
        let alice_app = QuotaEntity {
            user: user("alice"),
            client_id: user("app"),
        };
        let default_user = QuotaEntity {
            user: Some(EntityName::Default),
            client_id: None,
        };
        let app = QuotaEntity {
            user: None,
            client_id: user("app"),
        };
        let f = |components, strict| {
            let r = request(components, strict);
            let parts = filter(&r).ok().unwrap();
            [&alice, &alice_app, &default_user, &app].map(|e| matches(e, &parts, strict))
        };
        assert_eq!(
            f(vec![component(USER, MATCH_EXACT, Some("alice"))], false),
            [true, true, false, false]
        );
        assert_eq!(
            f(vec![component(USER, MATCH_EXACT, Some("alice"))], true),
            [true, false, false, false]
        );
        assert_eq!(
            f(vec![component(USER, MATCH_DEFAULT, None)], false),
            [false, false, true, false]
        );
        assert_eq!(
            f(vec![component(USER, MATCH_ANY, None)], true),
            [true, false, true, false]
        );
        assert_eq!(
            f(
                vec![
                    component(USER, MATCH_ANY, None),
                    component(CLIENT_ID, MATCH_EXACT, Some("app"))
                ],
                true
            ),
            [false, true, false, false]
        );
        let refused = |components| filter(&request(components, false)).err().unwrap().0;
        assert_eq!(
            refused(vec![
                component(USER, 0, Some("a")),
                component(USER, 0, Some("b"))
            ]),
            ResponseError::InvalidRequest
        );
        assert_eq!(
            refused(vec![component("group", 0, Some("a"))]),
            ResponseError::UnsupportedVersion
        );
        assert_eq!(
            refused(vec![component(IP, 2, None), component(USER, 2, None)]),
            ResponseError::InvalidRequest
        );
        assert_eq!(
            refused(vec![component(USER, 7, None)]),
            ResponseError::InvalidRequest
        );
    }
}

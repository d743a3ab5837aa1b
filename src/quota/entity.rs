//! The quota configuration as Kafka models it (KIP-55, KIP-546): entities
//! named by user and/or client id, each part a name or the default, with
//! values per key; and the precedence by which one connection's quota is
//! found. Pure data: persisted in `topics.toml` on one node, carried by
//! `MetadataRecord::ClientQuota` in a cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most entities with quotas stored, so one admin client cannot grow the
/// snapshot (and every shard's copy of it) without bound.
pub const QUOTA_CONFIG_ENTITIES_MAX: usize = 10_000;
/// Longest user or client id name an entity may carry.
pub const ENTITY_NAME_BYTES_MAX: usize = 1024;

/// One part of an entity: a name, or the default for that part (Kafka's
/// `<default>`, a null name on the wire).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityName {
    Default,
    Name(String),
}

impl EntityName {
    /// From the wire: a null name is the default.
    pub fn from_wire(name: Option<&str>) -> EntityName {
        match name {
            None => EntityName::Default,
            Some(n) => EntityName::Name(n.to_string()),
        }
    }

    /// To the wire: the default is a null name.
    pub fn wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Name(n) => Some(n),
        }
    }
}

/// What a quota is set on: a user, a client id, or both (Kafka's
/// ClientQuotaEntity restricted to the types this broker enforces).
/// At least one part is present.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

/// Kafka's entity type names on the wire.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// The quota keys of users and client ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaKey {
    ProducerByteRate,
    ConsumerByteRate,
    RequestPercentage,
    /// Stored and described (KIP-599), not enforced: CreateTopics,
    /// CreatePartitions and DeleteTopics are not throttled by this broker.
    ControllerMutationRate,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 4] = [
        QuotaKey::ProducerByteRate,
        QuotaKey::ConsumerByteRate,
        QuotaKey::RequestPercentage,
        QuotaKey::ControllerMutationRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
        }
    }

    pub fn from_name(name: &str) -> Option<QuotaKey> {
        QuotaKey::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Kafka's LONG keys (the byte rates) take whole numbers only; the
    /// others are DOUBLE.
    fn integral(self) -> bool {
        matches!(
            self,
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate
        )
    }
}

/// An entity's quota values, one per key (absent: not set here).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaValues {
    pub producer_byte_rate: Option<f64>,
    pub consumer_byte_rate: Option<f64>,
    pub request_percentage: Option<f64>,
    pub controller_mutation_rate: Option<f64>,
}

impl QuotaValues {
    pub fn get(&self, key: QuotaKey) -> Option<f64> {
        match key {
            QuotaKey::ProducerByteRate => self.producer_byte_rate,
            QuotaKey::ConsumerByteRate => self.consumer_byte_rate,
            QuotaKey::RequestPercentage => self.request_percentage,
            QuotaKey::ControllerMutationRate => self.controller_mutation_rate,
        }
    }

    pub fn set(&mut self, key: QuotaKey, value: Option<f64>) {
        let slot = match key {
            QuotaKey::ProducerByteRate => &mut self.producer_byte_rate,
            QuotaKey::ConsumerByteRate => &mut self.consumer_byte_rate,
            QuotaKey::RequestPercentage => &mut self.request_percentage,
            QuotaKey::ControllerMutationRate => &mut self.controller_mutation_rate,
        };
        *slot = value;
    }

    pub fn is_empty(&self) -> bool {
        QuotaKey::ALL.iter().all(|k| self.get(*k).is_none())
    }

    /// (key, value) of every key set, in Kafka's key order.
    pub fn iter(&self) -> impl Iterator<Item = (QuotaKey, f64)> + '_ {
        QuotaKey::ALL
            .into_iter()
            .filter_map(|k| self.get(k).map(|v| (k, v)))
    }
}

/// Why a quota change is refused (INVALID_REQUEST on the wire, with this
/// message, as Kafka's controller words it where it has words).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum QuotaError {
    #[error("Invalid empty client quota entity")]
    EmptyEntity,
    #[error("Invalid empty client quota entity, duplicate entity entry {0}")]
    DuplicateEntityType(String),
    #[error("Unhandled client quota entity type: {0}")]
    UnknownEntityType(String),
    #[error("Empty {0} not supported")]
    EmptyName(String),
    #[error("{0} name longer than {ENTITY_NAME_BYTES_MAX} bytes")]
    NameTooLong(String),
    #[error(
        "Invalid quota entity combination, IP entity should not be combined with User or ClientId"
    )]
    IpCombined,
    /// Kafka also takes a resolvable host name; this broker resolves
    /// nothing on the admin path, so only an address is taken.
    #[error("{0} is not a valid IP")]
    NotAnIp(String),
    #[error("Configuration {0} must be an Integer value")]
    NotInteger(String),
    #[error("Quota {0} must not be negative")]
    Negative(String),
    #[error("Invalid configuration key {0}")]
    UnknownKey(String),
    #[error("Duplicate quota key {0} not updating quota for this entity")]
    DuplicateKey(String),
    #[error("Configuration {0} must be a Long value")]
    NotLong(String),
    /// Kafka stores any double; a quota of zero or below (or not a number)
    /// would throttle every request to the bound, so it is refused here.
    #[error("Quota {0} must be a positive number")]
    NotPositive(String),
    #[error("Ignoring duplicate entity")]
    DuplicateEntity,
    #[error("at most {QUOTA_CONFIG_ENTITIES_MAX} entities with client quotas")]
    TooManyEntities,
}

impl QuotaEntity {
    /// The entity named by `(entity type, name)` pairs from the wire.
    pub fn from_wire<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<QuotaEntity, QuotaError> {
        let mut entity = QuotaEntity::default();
        let mut ip = false;
        let mut seen = Vec::new();
        for (kind, name) in parts {
            if seen.contains(&kind) {
                return Err(QuotaError::DuplicateEntityType(kind.to_string()));
            }
            seen.push(kind);
            if name.is_some_and(str::is_empty) {
                return Err(QuotaError::EmptyName(kind.to_string()));
            }
            if name.is_some_and(|n| n.len() > ENTITY_NAME_BYTES_MAX) {
                return Err(QuotaError::NameTooLong(kind.to_string()));
            }
            let part = Some(EntityName::from_wire(name));
            match kind {
                USER => entity.user = part,
                CLIENT_ID => entity.client_id = part,
                IP => ip = true,
                other => return Err(QuotaError::UnknownEntityType(other.to_string())),
            }
        }
        if ip {
            return Err(QuotaError::IpCombined);
        }
        if entity.user.is_none() && entity.client_id.is_none() {
            return Err(QuotaError::EmptyEntity);
        }
        Ok(entity)
    }

    /// `(entity type, name)` pairs for the wire, user first.
    pub fn wire_parts(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut parts = Vec::with_capacity(2);
        if let Some(u) = &self.user {
            parts.push((USER, u.wire()));
        }
        if let Some(c) = &self.client_id {
            parts.push((CLIENT_ID, c.wire()));
        }
        parts
    }
}

/// What an AlterClientQuotas entry names: client entities (users and
/// client ids) or an ip (KIP-612), which Kafka keeps apart: an ip entity
/// has no other part and takes connection_creation_rate only.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Client(QuotaEntity),
    Ip(EntityName),
}

/// The ip entity's only key.
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

impl Target {
    /// The entity named by `(entity type, name)` pairs from the wire,
    /// checked as Kafka's ClientQuotaControlManager checks it.
    pub fn from_wire<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Target, QuotaError> {
        let parts: Vec<_> = parts.into_iter().collect();
        let Some(&(_, name)) = parts.iter().find(|(kind, _)| *kind == IP) else {
            return QuotaEntity::from_wire(parts).map(Target::Client);
        };
        if parts.len() != 1 {
            // A duplicate ip part or ip with user/client-id.
            return QuotaEntity::from_wire(parts).map(Target::Client);
        }
        match name {
            None => Ok(Target::Ip(EntityName::Default)),
            Some("") => Err(QuotaError::EmptyName(IP.to_string())),
            Some(n) => n
                .parse::<std::net::IpAddr>()
                .map(|a| Target::Ip(EntityName::Name(a.to_string())))
                .map_err(|_| QuotaError::NotAnIp(n.to_string())),
        }
    }
}

/// Checks an ip entity's key and value: connection_creation_rate, a whole
/// number of connections a second, zero (refuse every connection) or more.
pub fn check_ip_value(key: &str, value: f64) -> Result<f64, QuotaError> {
    if key != CONNECTION_CREATION_RATE {
        return Err(QuotaError::UnknownKey(key.to_string()));
    }
    if value.is_nan() || value.fract() != 0.0 || value > f64::from(i32::MAX) {
        return Err(QuotaError::NotInteger(key.to_string()));
    }
    if value < 0.0 {
        return Err(QuotaError::Negative(key.to_string()));
    }
    Ok(value)
}

/// connection_creation_rate by ip (KIP-612): a named address, or the
/// default for every address without one. Kept apart from the client
/// entities (its own field in the snapshot and the image), so snapshots
/// written before it still decode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<IpEntry>", into = "Vec<IpEntry>")]
pub struct IpQuotas {
    entries: BTreeMap<EntityName, f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct IpEntry {
    ip: EntityName,
    connection_creation_rate: f64,
}

impl From<Vec<IpEntry>> for IpQuotas {
    fn from(entries: Vec<IpEntry>) -> IpQuotas {
        IpQuotas {
            entries: entries
                .into_iter()
                .map(|e| (e.ip, e.connection_creation_rate))
                .collect(),
        }
    }
}

impl From<IpQuotas> for Vec<IpEntry> {
    fn from(q: IpQuotas) -> Vec<IpEntry> {
        q.entries
            .into_iter()
            .map(|(ip, connection_creation_rate)| IpEntry {
                ip,
                connection_creation_rate,
            })
            .collect()
    }
}

impl IpQuotas {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, ip: &EntityName) -> Option<f64> {
        self.entries.get(ip).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&EntityName, f64)> {
        self.entries.iter().map(|(ip, v)| (ip, *v))
    }

    /// Sets (`Some`) or removes (`None`) an ip's connection rate; refused
    /// only when a new ip would pass the bound.
    pub fn set(&mut self, ip: &EntityName, value: Option<f64>) -> Result<(), QuotaError> {
        match value {
            Some(v) => {
                if !self.entries.contains_key(ip) && self.entries.len() >= QUOTA_CONFIG_ENTITIES_MAX
                {
                    return Err(QuotaError::TooManyEntities);
                }
                self.entries.insert(ip.clone(), v);
            }
            None => {
                self.entries.remove(ip);
            }
        }
        Ok(())
    }

    /// The connection rate that holds for `ip` (its own, else the
    /// default's), as Kafka's ConnectionQuotas finds it.
    pub fn resolve(&self, ip: &str) -> Option<f64> {
        self.entries
            .get(&EntityName::Name(ip.to_string()))
            .or_else(|| self.entries.get(&EntityName::Default))
            .copied()
    }
}

/// Checks one set operation's key and value as Kafka's controller does.
pub fn check_value(key: &str, value: f64) -> Result<QuotaKey, QuotaError> {
    let k = QuotaKey::from_name(key).ok_or_else(|| QuotaError::UnknownKey(key.to_string()))?;
    if k.integral() {
        // Kafka's check: within 1e-6 of a long.
        let epsilon = 1e-6;
        if ((value + epsilon).trunc() - value).abs() > epsilon {
            return Err(QuotaError::NotLong(key.to_string()));
        }
    }
    if value.is_nan() || value <= 0.0 {
        return Err(QuotaError::NotPositive(key.to_string()));
    }
    Ok(k)
}

/// Every entity's quotas; replaced whole with the snapshot that holds it.
/// Serialized as a list of entries, since TOML keys are strings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<QuotaEntry>", into = "Vec<QuotaEntry>")]
pub struct ClientQuotas {
    entries: BTreeMap<QuotaEntity, QuotaValues>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct QuotaEntry {
    entity: QuotaEntity,
    values: QuotaValues,
}

impl From<Vec<QuotaEntry>> for ClientQuotas {
    fn from(entries: Vec<QuotaEntry>) -> ClientQuotas {
        ClientQuotas {
            entries: entries
                .into_iter()
                .filter(|e| !e.values.is_empty())
                .map(|e| (e.entity, e.values))
                .collect(),
        }
    }
}

impl From<ClientQuotas> for Vec<QuotaEntry> {
    fn from(q: ClientQuotas) -> Vec<QuotaEntry> {
        q.entries
            .into_iter()
            .map(|(entity, values)| QuotaEntry { entity, values })
            .collect()
    }
}

/// The quota that applies to one connection for one key, and the entity
/// its usage is counted under (Kafka's quota metric tags): all the
/// connections that share a sensor key share one budget on this broker.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub quota: f64,
    /// (user tag, client-id tag); an empty tag is "not part of the key".
    pub sensor: (String, String),
}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, entity: &QuotaEntity) -> Option<&QuotaValues> {
        self.entries.get(entity)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, &QuotaValues)> {
        self.entries.iter()
    }

    /// Sets (`Some`) or removes (`None`) one key of one entity; an entity
    /// left with no keys is dropped, so equal quotas mean equal snapshots.
    /// Refused only when a new entity would pass the bound.
    pub fn set(
        &mut self,
        entity: &QuotaEntity,
        key: QuotaKey,
        value: Option<f64>,
    ) -> Result<(), QuotaError> {
        if value.is_some()
            && !self.entries.contains_key(entity)
            && self.entries.len() >= QUOTA_CONFIG_ENTITIES_MAX
        {
            return Err(QuotaError::TooManyEntities);
        }
        let values = self.entries.entry(entity.clone()).or_default();
        values.set(key, value);
        if values.is_empty() {
            self.entries.remove(entity);
        }
        Ok(())
    }

    /// Kafka's precedence (KIP-55), most specific first:
    /// /users/<user>/clients/<client-id>, /users/<user>/clients/<default>,
    /// /users/<user>, /users/<default>/clients/<client-id>,
    /// /users/<default>/clients/<default>, /users/<default>,
    /// /clients/<client-id>, /clients/<default>. The first level that sets
    /// `key` applies; its sensor key is Kafka's DefaultQuotaCallback tags.
    pub fn resolve(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<Applied> {
        use EntityName::{Default as D, Name as N};
        let (u, c) = (|| N(user.to_string()), || N(client_id.to_string()));
        let levels: [(Option<EntityName>, Option<EntityName>, bool, bool); 8] = [
            (Some(u()), Some(c()), true, true),
            (Some(u()), Some(D), true, true),
            (Some(u()), None, true, false),
            (Some(D), Some(c()), true, true),
            (Some(D), Some(D), true, true),
            (Some(D), None, true, false),
            (None, Some(c()), false, true),
            (None, Some(D), false, true),
        ];
        levels
            .into_iter()
            .find_map(|(user_part, client_part, by_user, by_client)| {
                let entity = QuotaEntity {
                    user: user_part,
                    client_id: client_part,
                };
                let quota = self.entries.get(&entity)?.get(key)?;
                Some(Applied {
                    quota,
                    sensor: (
                        if by_user {
                            user.to_string()
                        } else {
                            String::new()
                        },
                        if by_client {
                            client_id.to_string()
                        } else {
                            String::new()
                        },
                    ),
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> QuotaEntity {
        QuotaEntity { user, client_id }
    }

    fn name(n: &str) -> Option<EntityName> {
        Some(EntityName::Name(n.into()))
    }

    /// Every level of KIP-55's order wins over the ones below it, and the
    /// sensor key is shared the way Kafka's tags share it.
    #[test]
    fn precedence_follows_kip_55() {
        let d = Some(EntityName::Default);
        let levels = [
            entity(name("alice"), name("app")),
            entity(name("alice"), d.clone()),
            entity(name("alice"), None),
            entity(d.clone(), name("app")),
            entity(d.clone(), d.clone()),
            entity(d.clone(), None),
            entity(None, name("app")),
            entity(None, d.clone()),
        ];
        let sensors = [
            ("alice", "app"),
            ("alice", "app"),
            ("alice", ""),
            ("alice", "app"),
            ("alice", "app"),
            ("alice", ""),
            ("", "app"),
            ("", "app"),
        ];
        let mut quotas = ClientQuotas::default();
        // Added from the least specific up: each addition takes over.
        for (i, e) in levels.iter().enumerate().rev() {
            quotas
                .set(e, QuotaKey::ProducerByteRate, Some(i as f64 + 1.0))
                .unwrap();
            let applied = quotas
                .resolve(QuotaKey::ProducerByteRate, "alice", "app")
                .unwrap();
            assert_eq!(applied.quota, i as f64 + 1.0, "level {i}");
            let (u, c) = sensors[i];
            assert_eq!(applied.sensor, (u.to_string(), c.to_string()), "level {i}");
        }
        // Another key is resolved on its own; another user skips alice's.
        assert!(quotas
            .resolve(QuotaKey::ConsumerByteRate, "alice", "app")
            .is_none());
        assert_eq!(
            quotas
                .resolve(QuotaKey::ProducerByteRate, "bob", "app")
                .unwrap()
                .quota,
            4.0
        );
    }

    #[test]
    fn wire_entities_are_checked_as_kafka_does() {
        let ok = QuotaEntity::from_wire([(USER, Some("a")), (CLIENT_ID, None)]).unwrap();
        assert_eq!(ok, entity(name("a"), Some(EntityName::Default)));
        assert_eq!(QuotaEntity::from_wire([]), Err(QuotaError::EmptyEntity));
        assert_eq!(
            QuotaEntity::from_wire([(USER, Some("a")), (USER, Some("b"))]),
            Err(QuotaError::DuplicateEntityType(USER.into()))
        );
        assert_eq!(
            QuotaEntity::from_wire([("group", Some("a"))]),
            Err(QuotaError::UnknownEntityType("group".into()))
        );
        assert_eq!(
            QuotaEntity::from_wire([(USER, Some(""))]),
            Err(QuotaError::EmptyName(USER.into()))
        );
        assert_eq!(
            Target::from_wire([(IP, Some("127.0.0.1"))]),
            Ok(Target::Ip(EntityName::Name("127.0.0.1".into())))
        );
        assert_eq!(
            Target::from_wire([(IP, None)]),
            Ok(Target::Ip(EntityName::Default))
        );
        assert_eq!(
            Target::from_wire([(IP, Some("not-an-ip"))]),
            Err(QuotaError::NotAnIp("not-an-ip".into()))
        );
        assert_eq!(
            Target::from_wire([(IP, Some("10.0.0.1")), (USER, Some("a"))]),
            Err(QuotaError::IpCombined)
        );
        assert_eq!(check_ip_value(CONNECTION_CREATION_RATE, 5.0), Ok(5.0));
        assert!(check_ip_value(CONNECTION_CREATION_RATE, 1.5).is_err());
        assert!(check_ip_value("producer_byte_rate", 5.0).is_err());
        assert!(check_value(CONNECTION_CREATION_RATE, 5.0).is_err());
        assert_eq!(
            check_value("producer_byte_rate", 1024.0),
            Ok(QuotaKey::ProducerByteRate)
        );
        assert!(check_value("producer_byte_rate", 1.5).is_err());
        assert!(check_value("request_percentage", 12.5).is_ok());
        assert!(check_value("request_percentage", -1.0).is_err());
        assert!(check_value("bogus", 1.0).is_err());
    }

    /// The quotas survive `topics.toml` and the image's postcard encoding.
    #[test]
    fn quotas_round_trip_through_toml_and_postcard() {
        let mut quotas = ClientQuotas::default();
        let e1 = entity(name("alice"), Some(EntityName::Default));
        let e2 = entity(None, name("app"));
        quotas
            .set(&e1, QuotaKey::ProducerByteRate, Some(1024.0))
            .unwrap();
        quotas
            .set(&e2, QuotaKey::RequestPercentage, Some(12.5))
            .unwrap();
        #[derive(Serialize, Deserialize)]
        struct Holder {
            version: u64,
            client_quotas: ClientQuotas,
        }
        let text = toml::to_string(&Holder {
            version: 1,
            client_quotas: quotas.clone(),
        })
        .unwrap();
        let back: Holder = toml::from_str(&text).unwrap();
        assert_eq!(back.client_quotas, quotas, "{text}");
        let bytes = postcard::to_allocvec(&quotas).unwrap();
        assert_eq!(
            postcard::from_bytes::<ClientQuotas>(&bytes).unwrap(),
            quotas
        );
        // Removing the last key drops the entity.
        quotas.set(&e2, QuotaKey::RequestPercentage, None).unwrap();
        assert_eq!(quotas.len(), 1);
    }
}

//! ACLs as Kafka models them (KIP-11, KIP-290): a resource pattern (type,
//! literal or prefixed name) and an entry (principal, host, operation,
//! allow or deny). Kafka's numeric codes at the edge; typed values inside,
//! so a stored ACL is always a valid one. Pure: the set lives in the topics
//! snapshot and the cluster image; the decision is `authorizer`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most ACLs a broker keeps (Kafka sets no limit; every list here is
/// bounded, and the whole set travels in every topics snapshot).
pub const ACLS_MAX: usize = 10_000;
/// The most creations or deletion filters one request may carry.
pub const ACLS_PER_REQUEST_MAX: usize = 1_000;
/// Longest resource name, principal and host an ACL may hold.
pub const NAME_BYTES_MAX: usize = 1_024;
/// The literal resource name that matches every resource of its type.
pub const WILDCARD: &str = "*";
/// The principal that matches every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host that matches every host.
pub const WILDCARD_HOST: &str = "*";
/// The one name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Kafka's ResourceType codes (0 UNKNOWN and 1 ANY are not stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

/// Kafka's PatternType codes for a stored pattern (0 UNKNOWN, 1 ANY and
/// 2 MATCH are filters only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    Literal,
    Prefixed,
}

/// Kafka's AclOperation codes (0 UNKNOWN and 1 ANY are filters only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

/// Kafka's AclPermissionType codes (0 UNKNOWN and 1 ANY are filters only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

/// Kafka's code for ANY in every ACL enum.
pub const ANY: i8 = 1;
/// PatternType MATCH: a filter that matches what would apply to a name.
pub const MATCH: i8 = 2;

impl ResourceType {
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<ResourceType> {
        Some(match code {
            2 => ResourceType::Topic,
            3 => ResourceType::Group,
            4 => ResourceType::Cluster,
            5 => ResourceType::TransactionalId,
            6 => ResourceType::DelegationToken,
            7 => ResourceType::User,
            _ => return None,
        })
    }
}

impl ResourceType {
    /// The operations an ACL on this type can mean (Kafka's
    /// `AclEntry.supportedOperations`), which authorized-operations
    /// answers are drawn from.
    pub fn supported_operations(self) -> &'static [Operation] {
        use Operation as O;
        match self {
            ResourceType::Topic => &[
                O::Read,
                O::Write,
                O::Create,
                O::Describe,
                O::Delete,
                O::Alter,
                O::DescribeConfigs,
                O::AlterConfigs,
            ],
            ResourceType::Group => &[O::Read, O::Describe, O::Delete],
            ResourceType::Cluster => &[
                O::Create,
                O::ClusterAction,
                O::DescribeConfigs,
                O::AlterConfigs,
                O::IdempotentWrite,
                O::Alter,
                O::Describe,
            ],
            ResourceType::TransactionalId => &[O::Describe, O::Write],
            ResourceType::DelegationToken => &[O::Describe],
            ResourceType::User => &[O::CreateTokens, O::DescribeTokens],
        }
    }
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<PatternType> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }
}

impl Operation {
    const BY_CODE: [Operation; 13] = [
        Operation::All,
        Operation::Read,
        Operation::Write,
        Operation::Create,
        Operation::Delete,
        Operation::Alter,
        Operation::Describe,
        Operation::ClusterAction,
        Operation::DescribeConfigs,
        Operation::AlterConfigs,
        Operation::IdempotentWrite,
        Operation::CreateTokens,
        Operation::DescribeTokens,
    ];

    pub fn code(self) -> i8 {
        let i = Self::BY_CODE
            .iter()
            .position(|o| *o == self)
            .expect("every operation has a code");
        i as i8 + 2
    }

    pub fn from_code(code: i8) -> Option<Operation> {
        code.checked_sub(2)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| Self::BY_CODE.get(i).copied())
    }

    /// Whether an ALLOW of `self` grants `asked`: ALL grants everything,
    /// Read, Write, Delete and Alter imply Describe, AlterConfigs implies
    /// DescribeConfigs (Kafka's AclAuthorizer and StandardAuthorizer).
    pub fn allow_grants(self, asked: Operation) -> bool {
        use Operation as O;
        self == O::All
            || self == asked
            || (asked == O::Describe && matches!(self, O::Read | O::Write | O::Delete | O::Alter))
            || (asked == O::DescribeConfigs && self == O::AlterConfigs)
    }

    /// Whether a DENY of `self` refuses `asked`: only ALL and the same
    /// operation (a denied Read leaves Describe to the other ACLs).
    pub fn deny_refuses(self, asked: Operation) -> bool {
        self == Operation::All || self == asked
    }
}

impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    pub fn from_code(code: i8) -> Option<Permission> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }
}

/// Which resources an ACL covers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    pub name: String,
}

/// Who may or may not do what, from where.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclEntry {
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// One ACL: a pattern and an entry, checked valid when made.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AclEntry,
}

/// Why an ACL in a CreateAcls request is refused; each maps to Kafka's
/// INVALID_REQUEST with this text as the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("Invalid resourceType {0}")]
    ResourceType(i8),
    #[error("Invalid patternType {0}")]
    PatternType(i8),
    #[error("Invalid operation {0}")]
    Operation(i8),
    #[error("Invalid permissionType {0}")]
    Permission(i8),
    #[error("Resource name should not be empty")]
    EmptyName,
    #[error("The only valid name for the CLUSTER resource is {CLUSTER_NAME}")]
    ClusterName,
    #[error("Could not parse principal from `{0}`: only User:NAME principals are known")]
    Principal(String),
    #[error("Invalid host `{0}`: `*` or an IP address")]
    Host(String),
    #[error("resource name, principal or host longer than {NAME_BYTES_MAX} bytes")]
    TooLong,
}

/// The fields of an ACL as the wire carries them.
#[derive(Clone, Copy, Debug)]
pub struct WireAcl<'a> {
    pub resource_type: i8,
    pub name: &'a str,
    pub pattern_type: i8,
    pub principal: &'a str,
    pub host: &'a str,
    pub operation: i8,
    pub permission: i8,
}

impl AclBinding {
    /// A CreateAcls creation checked as Kafka checks it (AclControlManager's
    /// `validateNewAcl`, KafkaApis' cluster name rule).
    pub fn from_wire(w: WireAcl<'_>) -> Result<AclBinding, AclError> {
        let resource_type = ResourceType::from_code(w.resource_type)
            .ok_or(AclError::ResourceType(w.resource_type))?;
        let pattern_type =
            PatternType::from_code(w.pattern_type).ok_or(AclError::PatternType(w.pattern_type))?;
        let operation =
            Operation::from_code(w.operation).ok_or(AclError::Operation(w.operation))?;
        let permission =
            Permission::from_code(w.permission).ok_or(AclError::Permission(w.permission))?;
        if w.name.is_empty() {
            return Err(AclError::EmptyName);
        }
        if [w.name, w.principal, w.host]
            .iter()
            .any(|s| s.len() > NAME_BYTES_MAX)
        {
            return Err(AclError::TooLong);
        }
        if resource_type == ResourceType::Cluster && w.name != CLUSTER_NAME {
            return Err(AclError::ClusterName);
        }
        if !valid_principal(w.principal) {
            return Err(AclError::Principal(w.principal.to_string()));
        }
        if w.host != WILDCARD_HOST && w.host.parse::<std::net::IpAddr>().is_err() {
            return Err(AclError::Host(w.host.to_string()));
        }
        Ok(AclBinding {
            pattern: ResourcePattern {
                resource_type,
                pattern_type,
                name: w.name.to_string(),
            },
            entry: AclEntry {
                principal: w.principal.to_string(),
                host: w.host.to_string(),
                operation,
                permission,
            },
        })
    }
}

/// `User:NAME` with a name (Kafka's default principal builder knows only
/// the User type; `User:*` is the wildcard).
fn valid_principal(p: &str) -> bool {
    p.strip_prefix("User:").is_some_and(|name| !name.is_empty())
}

/// Which pattern types a filter matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternFilter {
    /// Every pattern type; a name must equal the stored name.
    Any,
    /// Every pattern that applies to the name (literal equal or `*`,
    /// prefixed a prefix of it).
    Match,
    Exactly(PatternType),
}

/// A DescribeAcls or DeleteAcls filter; `None` fields match anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub pattern: PatternFilter,
    pub name: Option<String>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

/// Why a filter is refused (Kafka: INVALID_REQUEST, "contains UNKNOWN
/// elements").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("The filter contains UNKNOWN elements: {0}")]
pub struct FilterError(&'static str);

impl AclFilter {
    /// A filter from its wire fields: ANY (1) for a field means any value.
    pub fn from_wire(
        w: WireAcl<'_>,
        name: Option<&str>,
        principal: Option<&str>,
        host: Option<&str>,
    ) -> Result<AclFilter, FilterError> {
        fn field<T>(
            code: i8,
            parse: fn(i8) -> Option<T>,
            what: &'static str,
        ) -> Result<Option<T>, FilterError> {
            if code == ANY {
                return Ok(None);
            }
            parse(code).map(Some).ok_or(FilterError(what))
        }
        let pattern = match w.pattern_type {
            ANY => PatternFilter::Any,
            MATCH => PatternFilter::Match,
            code => PatternFilter::Exactly(
                PatternType::from_code(code).ok_or(FilterError("pattern type"))?,
            ),
        };
        Ok(AclFilter {
            resource_type: field(w.resource_type, ResourceType::from_code, "resource type")?,
            pattern,
            name: name.map(str::to_string),
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation: field(w.operation, Operation::from_code, "operation")?,
            permission: field(w.permission, Permission::from_code, "permission")?,
        })
    }

    /// Kafka's AclBindingFilter.matches.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let (p, e) = (&acl.pattern, &acl.entry);
        self.resource_type.is_none_or(|t| t == p.resource_type)
            && self.pattern_matches(p)
            && self.principal.as_ref().is_none_or(|x| *x == e.principal)
            && self.host.as_ref().is_none_or(|x| *x == e.host)
            && self.operation.is_none_or(|o| o == e.operation)
            && self.permission.is_none_or(|x| x == e.permission)
    }

    /// Kafka's ResourcePatternFilter.matches, past the resource type.
    fn pattern_matches(&self, p: &ResourcePattern) -> bool {
        if let PatternFilter::Exactly(t) = self.pattern {
            if t != p.pattern_type {
                return false;
            }
        }
        let Some(name) = &self.name else {
            return true;
        };
        match (self.pattern, p.pattern_type) {
            (PatternFilter::Match, PatternType::Literal) => *name == p.name || p.name == WILDCARD,
            (PatternFilter::Match, PatternType::Prefixed) => name.starts_with(&p.name),
            _ => *name == p.name,
        }
    }
}

/// Every ACL the broker holds, indexed by pattern so a decision looks up
/// only the patterns that can apply to one name. Serialized as a plain list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<AclBinding>", into = "Vec<AclBinding>")]
pub struct Acls {
    by_pattern: BTreeMap<ResourcePattern, Vec<AclEntry>>,
    len: usize,
}

impl From<Vec<AclBinding>> for Acls {
    fn from(list: Vec<AclBinding>) -> Acls {
        let mut acls = Acls::default();
        for acl in list {
            acls.insert(acl);
        }
        acls
    }
}

impl From<Acls> for Vec<AclBinding> {
    fn from(acls: Acls) -> Vec<AclBinding> {
        acls.iter().collect()
    }
}

impl Acls {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds an ACL; false when it was already there.
    pub fn insert(&mut self, acl: AclBinding) -> bool {
        let entries = self.by_pattern.entry(acl.pattern).or_default();
        if entries.contains(&acl.entry) {
            return false;
        }
        entries.push(acl.entry);
        self.len += 1;
        true
    }

    /// Removes an ACL; false when it was not there.
    pub fn remove(&mut self, acl: &AclBinding) -> bool {
        let Some(entries) = self.by_pattern.get_mut(&acl.pattern) else {
            return false;
        };
        let before = entries.len();
        entries.retain(|e| *e != acl.entry);
        let removed = entries.len() < before;
        if entries.is_empty() {
            // No empty entries, so equal sets compare equal.
            self.by_pattern.remove(&acl.pattern);
        }
        if removed {
            self.len -= 1;
        }
        removed
    }

    pub fn contains(&self, acl: &AclBinding) -> bool {
        self.by_pattern
            .get(&acl.pattern)
            .is_some_and(|e| e.contains(&acl.entry))
    }

    /// Every ACL, in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = AclBinding> + '_ {
        self.by_pattern.iter().flat_map(|(p, entries)| {
            entries.iter().map(move |e| AclBinding {
                pattern: p.clone(),
                entry: e.clone(),
            })
        })
    }

    /// The ACLs a filter matches.
    pub fn matching<'a>(&'a self, filter: &'a AclFilter) -> impl Iterator<Item = AclBinding> + 'a {
        self.iter().filter(move |acl| filter.matches(acl))
    }

    /// The entries of every pattern that applies to resource `name` of
    /// `resource_type`: the literal name, the literal wildcard, and each
    /// prefixed pattern that is a prefix of the name.
    pub fn applying<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclEntry> + 'a {
        let literal = |n: &str| ResourcePattern {
            resource_type,
            pattern_type: PatternType::Literal,
            name: n.to_string(),
        };
        let exact = self.by_pattern.get(&literal(name));
        let wildcard = (name != WILDCARD)
            .then(|| self.by_pattern.get(&literal(WILDCARD)))
            .flatten();
        // Each prefix ends on a char boundary, including the whole name;
        // looked up only when the type has prefixed patterns at all.
        let first_prefixed = ResourcePattern {
            resource_type,
            pattern_type: PatternType::Prefixed,
            name: String::new(),
        };
        let any_prefixed = self
            .by_pattern
            .range(first_prefixed..)
            .next()
            .is_some_and(|(p, _)| {
                p.resource_type == resource_type && p.pattern_type == PatternType::Prefixed
            });
        let prefixes = name
            .char_indices()
            .take_while(move |_| any_prefixed)
            .map(|(i, c)| i + c.len_utf8())
            .filter_map(move |end| {
                self.by_pattern.get(&ResourcePattern {
                    resource_type,
                    pattern_type: PatternType::Prefixed,
                    name: name[..end].to_string(),
                })
            });
        exact
            .into_iter()
            .chain(wildcard)
            .chain(prefixes)
            .flat_map(|entries| entries.iter())
    }

    /// Every entry on a resource type, with its pattern (for decisions on
    /// "any resource of this type", Kafka's authorizeByResourceType).
    pub fn of_type(
        &self,
        resource_type: ResourceType,
    ) -> impl Iterator<Item = (&ResourcePattern, &AclEntry)> + '_ {
        self.by_pattern
            .iter()
            .filter(move |(p, _)| p.resource_type == resource_type)
            .flat_map(|(p, entries)| entries.iter().map(move |e| (p, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn acl(
        resource_type: ResourceType,
        pattern_type: PatternType,
        name: &str,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type,
                pattern_type,
                name: name.into(),
            },
            entry: AclEntry {
                principal: principal.into(),
                host: "*".into(),
                operation,
                permission,
            },
        }
    }

    fn wire<'a>(
        rt: i8,
        name: &'a str,
        pt: i8,
        principal: &'a str,
        op: i8,
        perm: i8,
    ) -> WireAcl<'a> {
        WireAcl {
            resource_type: rt,
            name,
            pattern_type: pt,
            principal,
            host: "*",
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn codes_round_trip_as_kafka_numbers_them() {
        for code in 2..=14 {
            assert_eq!(Operation::from_code(code).unwrap().code(), code);
        }
        assert_eq!(Operation::from_code(3), Some(Operation::Read));
        assert_eq!(Operation::from_code(11), Some(Operation::AlterConfigs));
        assert_eq!(Operation::from_code(i8::MIN), None);
        assert_eq!(Operation::from_code(1), None);
        assert_eq!(Operation::from_code(15), None);
        assert_eq!(ResourceType::from_code(2), Some(ResourceType::Topic));
        assert_eq!(ResourceType::from_code(7).unwrap().code(), 7);
        assert_eq!(PatternType::from_code(4), Some(PatternType::Prefixed));
        assert_eq!(Permission::from_code(3), Some(Permission::Allow));
    }

    #[test]
    fn creations_are_checked_as_kafka_checks_them() {
        let ok = AclBinding::from_wire(wire(2, "t", 3, "User:alice", 3, 3)).unwrap();
        assert_eq!(ok.entry.operation, Operation::Read);
        let err = |w| AclBinding::from_wire(w).unwrap_err();
        assert_eq!(
            err(wire(1, "t", 3, "User:a", 3, 3)),
            AclError::ResourceType(1)
        );
        assert_eq!(
            err(wire(0, "t", 3, "User:a", 3, 3)),
            AclError::ResourceType(0)
        );
        assert_eq!(
            err(wire(2, "t", 2, "User:a", 3, 3)),
            AclError::PatternType(2)
        );
        assert_eq!(
            err(wire(2, "t", 1, "User:a", 3, 3)),
            AclError::PatternType(1)
        );
        assert_eq!(err(wire(2, "t", 3, "User:a", 1, 3)), AclError::Operation(1));
        assert_eq!(
            err(wire(2, "t", 3, "User:a", 3, 1)),
            AclError::Permission(1)
        );
        assert_eq!(err(wire(2, "", 3, "User:a", 3, 3)), AclError::EmptyName);
        assert_eq!(err(wire(4, "c", 3, "User:a", 3, 3)), AclError::ClusterName);
        assert!(matches!(
            err(wire(2, "t", 3, "alice", 3, 3)),
            AclError::Principal(_)
        ));
        assert!(matches!(
            err(wire(2, "t", 3, "Group:a", 3, 3)),
            AclError::Principal(_)
        ));
        let mut bad_host = wire(2, "t", 3, "User:a", 3, 3);
        bad_host.host = "example.com";
        assert!(matches!(err(bad_host), AclError::Host(_)));
        bad_host.host = "10.0.0.1";
        assert!(AclBinding::from_wire(bad_host).is_ok());
    }

    #[test]
    fn filters_match_as_kafka_filters_do() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let lit = acl(Topic, Literal, "orders", "User:a", Read, Allow);
        let star = acl(Topic, Literal, "*", "User:a", Read, Allow);
        let pre = acl(Topic, Prefixed, "ord", "User:a", Write, Deny);
        let group = acl(Group, Literal, "orders", "User:a", Read, Allow);
        let filter = |pt: i8, name: Option<&str>| {
            AclFilter::from_wire(wire(2, "", pt, "", 1, 1), name, None, None).unwrap()
        };
        let matching = |f: &AclFilter| {
            [&lit, &star, &pre, &group]
                .iter()
                .filter(|a| f.matches(a))
                .count()
        };
        assert_eq!(matching(&filter(ANY, None)), 3);
        assert_eq!(matching(&filter(ANY, Some("orders"))), 1);
        assert_eq!(matching(&filter(MATCH, Some("orders"))), 3);
        assert_eq!(matching(&filter(MATCH, Some("other"))), 1);
        assert_eq!(matching(&filter(4, None)), 1);
        assert_eq!(matching(&filter(3, Some("*"))), 1);
        let f = AclFilter::from_wire(wire(1, "", 1, "", 4, 2), None, Some("User:a"), None).unwrap();
        assert!(f.matches(&pre) && !f.matches(&lit));
        assert!(AclFilter::from_wire(wire(0, "", 1, "", 1, 1), None, None, None).is_err());
        assert!(AclFilter::from_wire(wire(2, "", 0, "", 1, 1), None, None, None).is_err());
    }

    #[test]
    fn the_set_dedups_removes_and_finds_the_patterns_that_apply() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let mut acls = Acls::default();
        let a = acl(Topic, Literal, "orders", "User:a", Read, Allow);
        assert!(acls.insert(a.clone()));
        assert!(!acls.insert(a.clone()));
        acls.insert(acl(Topic, Literal, "*", "User:b", Read, Allow));
        acls.insert(acl(Topic, Prefixed, "or", "User:c", Read, Allow));
        acls.insert(acl(Topic, Prefixed, "x", "User:d", Read, Allow));
        acls.insert(acl(Group, Literal, "orders", "User:e", Read, Allow));
        assert_eq!(acls.len(), 5);
        let who: Vec<&str> = acls
            .applying(Topic, "orders")
            .map(|e| e.principal.as_str())
            .collect();
        assert_eq!(who, ["User:a", "User:b", "User:c"]);
        let round: Acls = Vec::<AclBinding>::from(acls.clone()).into();
        assert_eq!(round, acls);
        assert!(acls.remove(&a));
        assert!(!acls.remove(&a));
        assert_eq!(acls.len(), 4);
        assert!(!acls.contains(&a));
    }
}

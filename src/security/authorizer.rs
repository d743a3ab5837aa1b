//! The ACL decision, as Kafka's StandardAuthorizer makes it: super users
//! may do anything; a matching DENY beats any ALLOW; an ALLOW of ALL, of
//! the operation, or of one that implies it (Read, Write, Delete, Alter
//! imply Describe; AlterConfigs implies DescribeConfigs) grants it; a
//! resource no ACL applies to at all is decided by
//! `allow_everyone_if_no_acl_found`. Pure, so every rule is unit-tested.

use std::net::IpAddr;

use super::acl::{
    AclEntry, Acls, Operation, PatternType, Permission, ResourcePattern, ResourceType, WILDCARD,
    WILDCARD_HOST, WILDCARD_PRINCIPAL,
};

/// Who is asking: a connection's principal and address.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: Option<IpAddr>,
}

/// The settings the decision reads besides the ACLs.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    pub super_users: &'a [String],
    pub allow_everyone_if_no_acl_found: bool,
}

impl Requester<'_> {
    fn is(&self, entry: &AclEntry) -> bool {
        (entry.principal == self.principal || entry.principal == WILDCARD_PRINCIPAL)
            && (entry.host == WILDCARD_HOST
                || self
                    .host
                    .is_some_and(|h| entry.host.parse::<IpAddr>().is_ok_and(|e| e == h)))
    }
}

/// Whether `who` may do `op` on resource `name` of `resource_type`.
pub fn authorize(
    acls: &Acls,
    policy: Policy<'_>,
    who: Requester<'_>,
    op: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    if policy.super_users.iter().any(|s| s == who.principal) {
        return true;
    }
    let mut any_acl = false;
    let mut allowed = false;
    for entry in acls.applying(resource_type, name) {
        any_acl = true;
        if !who.is(entry) {
            continue;
        }
        match entry.permission {
            Permission::Deny if entry.operation.deny_refuses(op) => return false,
            Permission::Allow if entry.operation.allow_grants(op) => allowed = true,
            _ => {}
        }
    }
    allowed || (!any_acl && policy.allow_everyone_if_no_acl_found)
}

/// Whether `who` may do `op` on some resource of `resource_type` (Kafka's
/// `authorizeByResourceType`, which InitProducerId without a transactional
/// id asks for topic Write): an ALLOW that no DENY of the same principal
/// covers.
pub fn authorize_any(
    acls: &Acls,
    policy: Policy<'_>,
    who: Requester<'_>,
    op: Operation,
    resource_type: ResourceType,
) -> bool {
    // Kafka's default method asks first about a name no ACL is likely to
    // name: that covers super users and an empty ACL set.
    if authorize(acls, policy, who, op, resource_type, "hardcode") {
        return true;
    }
    let relevant = |want: Permission| {
        acls.of_type(resource_type)
            .filter(move |(_, e)| e.permission == want && who.is(e))
            .filter(|(_, e)| e.operation == Operation::All || e.operation == op)
            .map(|(p, _)| p)
    };
    let denied: Vec<&ResourcePattern> = relevant(Permission::Deny).collect();
    if denied
        .iter()
        .any(|d| d.pattern_type == PatternType::Literal && d.name == WILDCARD)
    {
        return false;
    }
    let covered = |allow: &ResourcePattern| {
        denied.iter().any(|d| match d.pattern_type {
            PatternType::Prefixed => allow.name.starts_with(&d.name),
            PatternType::Literal => {
                allow.pattern_type == PatternType::Literal && allow.name == d.name
            }
        })
    };
    relevant(Permission::Allow).any(|allow| !covered(allow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::{AclBinding, AclEntry, ResourcePattern};
    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    fn acl(
        rt: ResourceType,
        pt: PatternType,
        name: &str,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: rt,
                pattern_type: pt,
                name: name.into(),
            },
            entry: AclEntry {
                principal: principal.into(),
                host: "*".into(),
                operation: op,
                permission: perm,
            },
        }
    }

    fn set(list: &[AclBinding]) -> Acls {
        list.to_vec().into()
    }

    const NO_SUPER: Policy<'static> = Policy {
        super_users: &[],
        allow_everyone_if_no_acl_found: false,
    };

    fn alice() -> Requester<'static> {
        Requester {
            principal: "User:alice",
            host: Some("127.0.0.1".parse().unwrap()),
        }
    }

    fn may(acls: &Acls, op: Operation, rt: ResourceType, name: &str) -> bool {
        authorize(acls, NO_SUPER, alice(), op, rt, name)
    }

    #[test]
    fn deny_beats_allow() {
        let acls = set(&[
            acl(Topic, Literal, "t", "User:alice", All, Allow),
            acl(Topic, Prefixed, "t", "User:*", Write, Deny),
        ]);
        assert!(may(&acls, Read, Topic, "t"));
        assert!(!may(&acls, Write, Topic, "t"));
        // A denied Write does not deny the Describe it would imply.
        assert!(may(&acls, Describe, Topic, "t"));
    }

    #[test]
    fn describe_is_implied_by_read_write_delete_alter() {
        for op in [Read, Write, Delete, Alter] {
            let acls = set(&[acl(Topic, Literal, "t", "User:alice", op, Allow)]);
            assert!(may(&acls, Describe, Topic, "t"), "{op:?}");
            assert!(!may(&acls, Create, Topic, "t"), "{op:?}");
        }
        for op in [Create, ClusterAction, DescribeConfigs, IdempotentWrite] {
            let acls = set(&[acl(Topic, Literal, "t", "User:alice", op, Allow)]);
            assert!(!may(&acls, Describe, Topic, "t"), "{op:?}");
        }
        let acls = set(&[acl(Topic, Literal, "t", "User:alice", AlterConfigs, Allow)]);
        assert!(may(&acls, DescribeConfigs, Topic, "t"));
        assert!(!may(&acls, Alter, Topic, "t"));
        // Write does not imply Read.
        let acls = set(&[acl(Topic, Literal, "t", "User:alice", Write, Allow)]);
        assert!(!may(&acls, Read, Topic, "t"));
    }

    #[test]
    fn all_matches_every_operation() {
        let acls = set(&[acl(Group, Literal, "g", "User:alice", All, Allow)]);
        for op in [Read, Write, Delete, Describe, AlterConfigs] {
            assert!(may(&acls, op, Group, "g"), "{op:?}");
        }
        let acls = set(&[
            acl(Group, Literal, "g", "User:alice", Read, Allow),
            acl(Group, Literal, "g", "User:alice", All, Deny),
        ]);
        assert!(!may(&acls, Read, Group, "g"));
    }

    #[test]
    fn literal_wildcard_and_prefixed_patterns_match() {
        let acls = set(&[
            acl(Topic, Literal, "exact", "User:alice", Read, Allow),
            acl(Topic, Prefixed, "logs-", "User:alice", Read, Allow),
        ]);
        assert!(may(&acls, Read, Topic, "exact"));
        assert!(!may(&acls, Read, Topic, "exact2"));
        assert!(may(&acls, Read, Topic, "logs-a"));
        assert!(may(&acls, Read, Topic, "logs-"));
        assert!(!may(&acls, Read, Topic, "logs"));
        let acls = set(&[acl(Topic, Literal, "*", "User:alice", Read, Allow)]);
        assert!(may(&acls, Read, Topic, "anything"));
        assert!(!may(&acls, Read, Group, "anything"));
    }

    #[test]
    fn principal_and_host_must_match() {
        let mut other_host = acl(Topic, Literal, "t", "User:alice", Read, Allow);
        other_host.entry.host = "10.0.0.1".into();
        assert!(!may(&set(&[other_host.clone()]), Read, Topic, "t"));
        other_host.entry.host = "127.0.0.1".into();
        assert!(may(&set(&[other_host]), Read, Topic, "t"));
        let bob = set(&[acl(Topic, Literal, "t", "User:bob", Read, Allow)]);
        assert!(!may(&bob, Read, Topic, "t"));
        let anyone = set(&[acl(Topic, Literal, "t", "User:*", Read, Allow)]);
        assert!(may(&anyone, Read, Topic, "t"));
    }

    #[test]
    fn super_users_bypass_and_no_acl_found_follows_the_setting() {
        let deny = set(&[acl(Topic, Literal, "t", "User:*", All, Deny)]);
        let supers = ["User:alice".to_string()];
        let policy = Policy {
            super_users: &supers,
            allow_everyone_if_no_acl_found: false,
        };
        assert!(authorize(&deny, policy, alice(), Write, Topic, "t"));
        let empty = Acls::default();
        assert!(!may(&empty, Read, Topic, "t"));
        let open = Policy {
            super_users: &[],
            allow_everyone_if_no_acl_found: true,
        };
        assert!(authorize(&empty, open, alice(), Read, Topic, "t"));
        // An ACL for someone else on the resource: no longer "no ACL found".
        let bob = set(&[acl(Topic, Literal, "t", "User:bob", Read, Allow)]);
        assert!(!authorize(&bob, open, alice(), Read, Topic, "t"));
        assert!(authorize(&bob, open, alice(), Read, Topic, "u"));
    }

    #[test]
    fn any_resource_of_a_type() {
        let write_one = set(&[acl(Topic, Literal, "t", "User:alice", Write, Allow)]);
        assert!(authorize_any(&write_one, NO_SUPER, alice(), Write, Topic));
        assert!(!authorize_any(&write_one, NO_SUPER, alice(), Read, Topic));
        let denied_all = set(&[
            acl(Topic, Literal, "t", "User:alice", Write, Allow),
            acl(Topic, Literal, "*", "User:alice", Write, Deny),
        ]);
        assert!(!authorize_any(&denied_all, NO_SUPER, alice(), Write, Topic));
        let denied_prefix = set(&[
            acl(Topic, Literal, "logs-a", "User:alice", Write, Allow),
            acl(Topic, Prefixed, "logs-", "User:alice", Write, Deny),
        ]);
        assert!(!authorize_any(
            &denied_prefix,
            NO_SUPER,
            alice(),
            Write,
            Topic
        ));
    }
}

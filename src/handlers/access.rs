//! What one request may do: the connection's principal and address held
//! against the ACLs of the snapshot the request started with. With
//! `authorizer = "none"`, and for super users, every check is one branch on
//! [`Access::All`], so the produce and fetch paths pay nothing else.

use std::net::IpAddr;
use std::sync::Arc;

use crate::metadata::Topics;
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::security::authorizer::{self, Policy, Requester};
use crate::security::Authorizer;
use crate::shard::Shard;

use super::Client;

pub(crate) enum Access {
    /// No authorizer, or a super user: everything allowed.
    All,
    Checked(Box<Checked>),
}

pub(crate) struct Checked {
    principal: String,
    host: Option<IpAddr>,
    /// The ACLs as they were when the request arrived.
    topics: Arc<Topics>,
    allow_everyone_if_no_acl_found: bool,
}

impl Access {
    pub(crate) fn of(shard: &Shard, client: &Client) -> Access {
        if shard.config.authorizer == Authorizer::None {
            return Access::All;
        }
        let principal = client.session.principal();
        if shard.config.super_users.contains(&principal) {
            return Access::All;
        }
        Access::Checked(Box::new(Checked {
            principal,
            host: client.ip,
            topics: shard.topics(),
            allow_everyone_if_no_acl_found: shard.config.allow_everyone_if_no_acl_found,
        }))
    }

    /// Whether everything is allowed (no checks to make).
    pub(crate) fn is_all(&self) -> bool {
        matches!(self, Access::All)
    }

    /// Whether `op` on resource `name` of `resource_type` is allowed.
    pub(crate) fn allows(&self, op: Operation, resource_type: ResourceType, name: &str) -> bool {
        match self {
            Access::All => true,
            Access::Checked(c) => {
                let allowed = authorizer::authorize(
                    &c.topics.acls,
                    c.policy(),
                    c.requester(),
                    op,
                    resource_type,
                    name,
                );
                if !allowed {
                    // Kafka's authorizer logger says the same at INFO.
                    tracing::debug!(
                        principal = %c.principal, host = ?c.host, ?op, ?resource_type, name,
                        "denied"
                    );
                }
                allowed
            }
        }
    }

    /// Whether `op` on some resource of `resource_type` is allowed.
    pub(crate) fn allows_any(&self, op: Operation, resource_type: ResourceType) -> bool {
        match self {
            Access::All => true,
            Access::Checked(c) => authorizer::authorize_any(
                &c.topics.acls,
                c.policy(),
                c.requester(),
                op,
                resource_type,
            ),
        }
    }

    /// Kafka's authorized-operations bit field (bit = operation code) of
    /// the supported operations allowed on a resource.
    pub(crate) fn operations(&self, resource_type: ResourceType, name: &str) -> i32 {
        resource_type
            .supported_operations()
            .iter()
            .filter(|op| self.allows(**op, resource_type, name))
            .fold(0, |bits, op| bits | 1 << op.code())
    }

    /// The cluster's bit field, as Kafka answers it: 0 without Describe.
    pub(crate) fn cluster_operations(&self) -> i32 {
        if self.cluster(Operation::Describe) {
            self.operations(ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        }
    }

    pub(crate) fn topic(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::Topic, name)
    }

    pub(crate) fn group(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::Group, name)
    }

    pub(crate) fn transactional_id(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::TransactionalId, name)
    }

    pub(crate) fn cluster(&self, op: Operation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }
}

impl Checked {
    fn policy(&self) -> Policy<'_> {
        Policy {
            // Super users never get here (`Access::of`).
            super_users: &[],
            allow_everyone_if_no_acl_found: self.allow_everyone_if_no_acl_found,
        }
    }

    fn requester(&self) -> Requester<'_> {
        Requester {
            principal: &self.principal,
            host: self.host,
        }
    }
}

//! Security (issue 15): listener configuration, SASL SCRAM/PLAIN and the
//! credentials they check, ACLs and the decision over them. Pure: sockets
//! and TLS live in `net` (`net::tls`, `net::sasl`); credentials and ACLs
//! travel in the topics snapshot.

pub mod acl;
pub mod authorizer;
pub mod listeners;
pub mod principal;
pub mod scram;

use serde::{Deserialize, Serialize};

/// `authorizer`: who decides what a principal may do. `none` allows
/// everything (and the ACL APIs answer SECURITY_DISABLED, as Kafka's do
/// without an authorizer); `acl` checks every request against the ACLs
/// (`authorizer::authorize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authorizer {
    #[default]
    None,
    Acl,
}

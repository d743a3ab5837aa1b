//! Security (issue 15): listener configuration, SASL SCRAM/PLAIN and the
//! credentials they check, ACLs and the decision over them. Pure: sockets
//! and TLS live in `net` (`net::tls`, `net::sasl`); credentials and ACLs
//! travel in the topics snapshot.

pub mod acl;
pub mod authorizer;
pub mod delegation_tokens;
pub mod jwks_endpoint;
pub mod listeners;
pub mod oauthbearer;
pub mod pem;
pub mod principal;
pub mod scram;
pub mod scram_client;

use serde::{Deserialize, Serialize};

/// What an operator should hear at start about the ACL settings: super
/// users that can match no principal, and (in a cluster) brokers whose own
/// principal the ACLs would refuse replication to. Kafka starts anyway; so
/// does Sluice, but says so.
pub fn authorizer_warnings(
    authorizer: Authorizer,
    super_users: &[String],
    inter_broker_principal: &str,
    clustered: bool,
) -> Vec<String> {
    if authorizer == Authorizer::None {
        return Vec::new();
    }
    let mut warnings: Vec<String> = super_users
        .iter()
        .filter(|u| u.strip_prefix("User:").is_none_or(str::is_empty))
        .map(|u| format!("super user {u:?} is not User:NAME and matches no principal"))
        .collect();
    if clustered && !super_users.iter().any(|u| u == inter_broker_principal) {
        warnings.push(format!(
            "this broker's inter-broker principal {inter_broker_principal} (its SASL user, \
             certificate or the listener's principal) is not a super user: replication and \
             transaction markers need ClusterAction on the cluster"
        ));
    }
    warnings
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_name_what_acls_would_break() {
        let supers = ["User:admin".to_string(), "admin".to_string()];
        assert!(authorizer_warnings(Authorizer::None, &supers, "User:x", true).is_empty());
        let w = authorizer_warnings(Authorizer::Acl, &supers, "User:ANONYMOUS", true);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("\"admin\""));
        assert!(w[1].contains("User:ANONYMOUS"));
        let w = authorizer_warnings(Authorizer::Acl, &supers[..1], "User:admin", true);
        assert!(w.is_empty(), "{w:?}");
        assert!(authorizer_warnings(Authorizer::Acl, &supers[..1], "User:b", false).is_empty());
    }
}

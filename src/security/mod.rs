//! Security (issue 15): listener configuration, SASL SCRAM/PLAIN and the
//! credentials they check. Pure: sockets and TLS live in `net` (`net::tls`,
//! `net::sasl`); credentials travel in the topics snapshot.

pub mod listeners;
pub mod scram;

use serde::{Deserialize, Serialize};

/// `authorizer`: who decides what a principal may do. Only `none`
/// (everything allowed) acts today; `acl` is parsed and stored for the
/// ACL step of issue 15, and until then allows everything too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authorizer {
    #[default]
    None,
    Acl,
}

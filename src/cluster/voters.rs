//! `controller_quorum_voters`: the nodes that run a controller voter, as
//! `ID@HOST:PORT,...` (Kafka's `controller.quorum.voters`).

use std::collections::BTreeSet;

/// Voters a quorum may have: Raft needs a majority, so odd counts.
pub const VOTERS_MAX: usize = 7;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    /// HOST:PORT of its controller listener.
    pub addr: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VotersError {
    #[error("voter {0:?} is not ID@HOST:PORT")]
    Syntax(String),
    #[error("node {0} is named twice in the voter list")]
    DuplicateId(i32),
    #[error("address {0} is named twice in the voter list")]
    DuplicateAddr(String),
    #[error("{0} voters: a quorum needs an odd count from 1 to {VOTERS_MAX}")]
    Count(usize),
    #[error(
        "the voter list names this node's controller address {addr} as node {listed}, \
         but this is node {node}"
    )]
    WrongNode {
        addr: String,
        listed: i32,
        node: i32,
    },
}

pub fn parse(list: &str) -> Result<Vec<Voter>, VotersError> {
    let mut voters = Vec::new();
    let mut ids = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let syntax = || VotersError::Syntax(item.to_string());
        let (id, addr) = item.split_once('@').ok_or_else(syntax)?;
        let id: i32 = id.trim().parse().map_err(|_| syntax())?;
        let addr = addr.trim();
        let (host, port) = addr.rsplit_once(':').ok_or_else(syntax)?;
        if id < 0 || host.is_empty() || port.parse::<u16>().is_err() {
            return Err(syntax());
        }
        if !ids.insert(id) {
            return Err(VotersError::DuplicateId(id));
        }
        if !addrs.insert(addr.to_string()) {
            return Err(VotersError::DuplicateAddr(addr.to_string()));
        }
        voters.push(Voter {
            id,
            addr: addr.to_string(),
        });
    }
    if voters.is_empty() || voters.len() % 2 == 0 || voters.len() > VOTERS_MAX {
        return Err(VotersError::Count(voters.len()));
    }
    Ok(voters)
}

/// Checks this node against the list: a node whose controller address is
/// listed must be listed under its own id, and a listed node needs a
/// controller listener (taken from the list when not given). Returns the
/// address this node's controller listens on, if it is a voter.
pub fn this_node(
    voters: &[Voter],
    node_id: i32,
    controller_listen: Option<&str>,
) -> Result<Option<String>, VotersError> {
    if let Some(listen) = controller_listen {
        if let Some(v) = voters.iter().find(|v| v.addr == listen && v.id != node_id) {
            return Err(VotersError::WrongNode {
                addr: listen.to_string(),
                listed: v.id,
                node: node_id,
            });
        }
    }
    match voters.iter().find(|v| v.id == node_id) {
        Some(v) => Ok(Some(controller_listen.unwrap_or(&v.addr).to_string())),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_like_kafka() {
        let v = parse("1@127.0.0.1:9093, 2@127.0.0.1:9095,3@localhost:9097").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[2].addr, "localhost:9097");
        assert_eq!(parse("1@a:1,1@b:2,3@c:3"), Err(VotersError::DuplicateId(1)));
        assert!(matches!(
            parse("1@a:1,2@a:1,3@c:3"),
            Err(VotersError::DuplicateAddr(_))
        ));
        assert_eq!(parse("1@a:1,2@b:2"), Err(VotersError::Count(2)));
        assert!(matches!(parse("x@a:1"), Err(VotersError::Syntax(_))));
        assert!(matches!(parse("1@a"), Err(VotersError::Syntax(_))));
    }

    #[test]
    fn this_node_is_checked_against_the_list() {
        let v = parse("1@h:1,2@h:2,3@h:3").unwrap();
        assert_eq!(this_node(&v, 2, None), Ok(Some("h:2".into())));
        assert_eq!(this_node(&v, 4, None), Ok(None), "a broker-only node");
        assert!(matches!(
            this_node(&v, 4, Some("h:2")),
            Err(VotersError::WrongNode { listed: 2, .. })
        ));
    }
}

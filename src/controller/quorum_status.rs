//! What DescribeQuorum answers (Kafka's `kafka-metadata-quorum.sh
//! describe`): the active controller's view of the metadata quorum, its
//! leader, term and committed position, and how far each voter and each
//! observer (a learner: a broker-only node's controller) has replicated
//! the log. Only the leader knows the others' progress, so the question
//! goes to it.

use std::collections::BTreeMap;

use openraft::{BasicNode, RaftMetrics};
use serde::{Deserialize, Serialize};

/// The quorum as the active controller sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    pub leader_id: i32,
    /// The Raft term it leads in (Kafka's leader epoch of the quorum).
    pub leader_epoch: i32,
    /// The next log index after the last one applied on the leader.
    pub high_watermark: i64,
    pub voters: Vec<ReplicaProgress>,
    pub observers: Vec<ReplicaProgress>,
    /// Each member's quorum listener, `host:port`.
    pub endpoints: BTreeMap<i32, String>,
}

/// How far one member has replicated the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaProgress {
    pub id: i32,
    /// The next log index after the last one it holds (-1: unknown).
    pub log_end_offset: i64,
    /// It holds every entry the leader has.
    pub caught_up: bool,
}

/// The status from the leader's Raft metrics; `None` unless they are a
/// leader's. `voter_addrs` are the quorum listeners of the voter list the
/// node started with, which win over the membership's (a voter's address
/// is set in its config, a learner's in the membership).
pub fn status_of(
    metrics: &RaftMetrics<u64, BasicNode>,
    voter_addrs: &BTreeMap<i32, String>,
) -> Option<QuorumStatus> {
    let leader = metrics.id;
    if super::driver::leader_of(metrics) != Some(leader as i32) {
        return None;
    }
    let replication = metrics.replication.as_ref()?;
    let next = |index: Option<u64>| index.map_or(0, |i| i as i64 + 1);
    let leader_end = next(metrics.last_log_index);
    let progress = |id: u64| {
        let log_end_offset = if id == leader {
            leader_end
        } else {
            match replication.get(&id) {
                Some(matched) => next(matched.map(|l| l.index)),
                None => -1,
            }
        };
        ReplicaProgress {
            id: id as i32,
            log_end_offset,
            caught_up: log_end_offset == leader_end,
        }
    };
    let membership = metrics.membership_config.membership();
    let mut endpoints: BTreeMap<i32, String> = membership
        .nodes()
        .map(|(&id, node)| (id as i32, node.addr.clone()))
        .collect();
    endpoints.extend(voter_addrs.clone());
    Some(QuorumStatus {
        leader_id: leader as i32,
        leader_epoch: i32::try_from(metrics.current_term).unwrap_or(i32::MAX),
        high_watermark: next(metrics.last_applied.map(|l| l.index)),
        voters: membership.voter_ids().map(progress).collect(),
        observers: membership.learner_ids().map(progress).collect(),
        endpoints,
    })
}

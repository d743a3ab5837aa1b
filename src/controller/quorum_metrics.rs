//! The metadata quorum at `/metrics` (Kafka's raft-metrics): this node's
//! state in it, the leader and epoch it knows, how far its log reaches and
//! what it applied; on the leader, how far behind each member is and how
//! long since a quorum acknowledged it (a leader cut off from the others
//! still thinks it leads until its lease runs out).

use std::fmt::Write;

use openraft::{BasicNode, RaftMetrics, ServerState};

use super::Controller;

/// A snapshot of this node's Raft metrics, to render off its thread.
pub struct QuorumMetrics(RaftMetrics<u64, BasicNode>);

impl Controller {
    pub fn quorum_metrics(&self) -> QuorumMetrics {
        QuorumMetrics(self.metrics.borrow().clone())
    }
}

const STATES: [(ServerState, &str); 5] = [
    (ServerState::Leader, "leader"),
    (ServerState::Follower, "follower"),
    (ServerState::Candidate, "candidate"),
    (ServerState::Learner, "learner"),
    (ServerState::Shutdown, "shutdown"),
];

fn header(out: &mut String, name: &str, help: &str) {
    crate::stats::header(out, name, help, "gauge");
}

impl QuorumMetrics {
    pub fn render(&self, out: &mut String) {
        let m = &self.0;
        let name = "sluice_metadata_quorum_state";
        header(
            out,
            name,
            "This node's state in the metadata quorum (1 for the one it is in).",
        );
        for (state, label) in STATES {
            let _ = writeln!(
                out,
                "{name}{{state=\"{label}\"}} {}",
                u8::from(m.state == state)
            );
        }
        let next = |index: Option<u64>| index.map_or(0, |i| i + 1);
        let leader = super::driver::leader_of(m).unwrap_or(-1);
        let end = next(m.last_log_index);
        let applied = next(m.last_applied.map(|l| l.index));
        for (name, help, value) in [
            (
                "sluice_metadata_quorum_leader",
                "The active controller this node knows (-1: none).",
                i64::from(leader),
            ),
            (
                "sluice_metadata_quorum_epoch",
                "The quorum's epoch (Raft term) this node is in.",
                m.current_term as i64,
            ),
            (
                "sluice_metadata_log_end_offset",
                "The next metadata log index after the last this node holds.",
                end as i64,
            ),
            (
                "sluice_metadata_applied_offset",
                "The next metadata log index after the last this node applied.",
                applied as i64,
            ),
        ] {
            crate::stats::scalar(out, name, help, "gauge", value);
        }
        let (Some(replication), Some(ack)) = (&m.replication, m.millis_since_quorum_ack) else {
            return;
        };
        crate::stats::scalar(
            out,
            "sluice_metadata_quorum_ack_age_seconds",
            "On the active controller: time since a quorum last acknowledged it.",
            "gauge",
            ack as f64 / 1000.0,
        );
        let name = "sluice_metadata_quorum_member_lag";
        header(
            out,
            name,
            "On the active controller: metadata log entries a member (voter or observer) lacks.",
        );
        for (id, matched) in replication {
            let lag = end.saturating_sub(next(matched.map(|l| l.index)));
            let _ = writeln!(out, "{name}{{node=\"{id}\"}} {lag}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId};

    fn rendered(m: RaftMetrics<u64, BasicNode>) -> String {
        let mut out = String::new();
        QuorumMetrics(m).render(&mut out);
        out
    }

    #[test]
    fn a_leader_shows_each_members_lag() {
        let mut m = RaftMetrics::new_initial(1);
        m.state = ServerState::Leader;
        m.current_leader = Some(1);
        m.current_term = 4;
        m.last_log_index = Some(9);
        let at = |index| Some(LogId::new(CommittedLeaderId::new(4, 1), index));
        m.last_applied = at(8);
        m.replication = Some([(2, at(4)), (3, None)].into_iter().collect());
        m.millis_since_quorum_ack = Some(1500);
        let out = rendered(m);
        for line in [
            "sluice_metadata_quorum_state{state=\"leader\"} 1",
            "sluice_metadata_quorum_state{state=\"follower\"} 0",
            "sluice_metadata_quorum_leader 1",
            "sluice_metadata_quorum_epoch 4",
            "sluice_metadata_log_end_offset 10",
            "sluice_metadata_applied_offset 9",
            "sluice_metadata_quorum_ack_age_seconds 1.5",
            "sluice_metadata_quorum_member_lag{node=\"2\"} 5",
            "sluice_metadata_quorum_member_lag{node=\"3\"} 10",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
    }

    #[test]
    fn a_node_without_a_leader_says_so_and_shows_no_lag() {
        let out = rendered(RaftMetrics::new_initial(2));
        assert!(out.contains("sluice_metadata_quorum_leader -1"), "{out}");
        assert!(!out.contains("member_lag"), "{out}");
    }
}

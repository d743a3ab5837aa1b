//! KIP-951 (Produce v10+, Fetch v16+): a partition answered
//! NOT_LEADER_OR_FOLLOWER (or, for Fetch, FENCED_LEADER_EPOCH) names its
//! current leader and epoch, and the response carries those leaders'
//! endpoints, so a client moves to the new leader without a Metadata
//! round trip. As Kafka's `KafkaApis.getCurrentLeader`: the leader and
//! epoch the metadata has (-1, -1 when it has none), the endpoint only of a
//! live broker.

use std::collections::BTreeMap;

use crate::metadata::Topics;

/// A leader's client endpoint, as a response's `node_endpoints` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHint {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Whether a partition error asks for a leader hint in a Produce answer.
pub fn produce_wants_hint(error: i16) -> bool {
    error == kafka_protocol::ResponseError::NotLeaderOrFollower.code()
}

/// Whether a partition error asks for a leader hint in a Fetch answer.
pub fn fetch_wants_hint(error: i16) -> bool {
    produce_wants_hint(error) || error == kafka_protocol::ResponseError::FencedLeaderEpoch.code()
}

/// Leader hints for one response: each partition's current leader, and the
/// endpoints of the leaders named, once each.
pub struct LeaderHints<'a> {
    topics: &'a Topics,
    nodes: BTreeMap<i32, NodeHint>,
}

impl<'a> LeaderHints<'a> {
    pub fn new(topics: &'a Topics) -> LeaderHints<'a> {
        LeaderHints {
            topics,
            nodes: BTreeMap::new(),
        }
    }

    /// (leader id, leader epoch) of the partition as the metadata has it,
    /// remembering the leader's endpoint when it is a live broker. A
    /// one-node broker leads every partition it has and never answers with
    /// these errors; it has nothing better to say than Kafka's "unknown".
    pub fn leader(&mut self, topic: &str, partition: i32) -> (i32, i32) {
        let Some(view) = self.topics.cluster.as_deref() else {
            return (-1, -1);
        };
        let Some(state) = view.partition(topic, partition) else {
            return (-1, -1);
        };
        if let Some(b) = view.image.brokers.get(&state.leader) {
            if let (false, Some(endpoint)) = (b.fenced, b.endpoints.first()) {
                self.nodes.entry(b.id).or_insert_with(|| NodeHint {
                    id: b.id,
                    host: endpoint.host.clone(),
                    port: i32::from(endpoint.port),
                    rack: b.rack.clone(),
                });
            }
        }
        (state.leader, state.leader_epoch)
    }

    /// The endpoints of every leader named so far, by node id.
    pub fn nodes(self) -> Vec<NodeHint> {
        self.nodes.into_values().collect()
    }
}

//! What DescribeLogDirs and `/metrics` report of the replicas this node
//! hosts: each one's size on disk and client traffic, gathered from every
//! shard.

use std::rc::Rc;

use futures::channel::oneshot;

use super::*;

/// One hosted replica's log: its partition, the bytes its segments hold,
/// and its client traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStats {
    pub tp: TopicPartition,
    pub size_bytes: u64,
    pub traffic: Traffic,
}

impl Shard {
    /// Every replica this node hosts, leader or follower, from every
    /// shard; a shard that is gone adds none.
    pub async fn replica_stats(self: &Rc<Self>) -> Vec<ReplicaStats> {
        let mut answers = Vec::with_capacity(self.count);
        for peer in (0..self.count).filter(|&p| p != self.id) {
            let (reply, answer) = oneshot::channel();
            if self
                .mesh
                .send_to(peer, ShardMsg::ReplicaStats { reply })
                .await
                .is_ok()
            {
                answers.push(answer);
            }
        }
        let mut stats = self.own_replica_stats();
        for answer in answers {
            stats.extend(answer.await.unwrap_or_default());
        }
        stats
    }

    pub(super) fn own_replica_stats(&self) -> Vec<ReplicaStats> {
        self.owned_partitions()
            .into_iter()
            .map(|(tp, partition)| ReplicaStats {
                tp,
                size_bytes: partition.log.borrow().size_bytes(),
                traffic: partition.traffic.get(),
            })
            .collect()
    }
}

//! What DescribeLogDirs reports of the replicas this node hosts: each
//! one's size on disk, gathered from every shard.

use std::rc::Rc;

use futures::channel::oneshot;

use super::*;

/// One hosted replica's log: its partition and the bytes its segments hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSize {
    pub tp: TopicPartition,
    pub size_bytes: u64,
}

impl Shard {
    /// Every replica this node hosts, leader or follower, from every
    /// shard; a shard that is gone adds none.
    pub async fn replica_sizes(self: &Rc<Self>) -> Vec<ReplicaSize> {
        let mut answers = Vec::with_capacity(self.count);
        for peer in (0..self.count).filter(|&p| p != self.id) {
            let (reply, answer) = oneshot::channel();
            if self
                .mesh
                .send_to(peer, ShardMsg::ReplicaSizes { reply })
                .await
                .is_ok()
            {
                answers.push(answer);
            }
        }
        let mut sizes = self.own_replica_sizes();
        for answer in answers {
            sizes.extend(answer.await.unwrap_or_default());
        }
        sizes
    }

    pub(super) fn own_replica_sizes(&self) -> Vec<ReplicaSize> {
        self.owned_partitions()
            .into_iter()
            .map(|(tp, partition)| ReplicaSize {
                tp,
                size_bytes: partition.log.borrow().size_bytes(),
            })
            .collect()
    }
}

//! Broker sessions and leadership repair on the active controller.
//!
//! The active controller remembers when each broker last heartbeated (in
//! memory only, like Kafka's BrokerHeartbeatManager: a new active
//! controller gives every broker a full session first). A broker silent
//! for `broker_session_timeout_ms` is fenced. Then every partition whose
//! leader or ISR names a broker that is not live gets a ChangePartition
//! from `elect_leader`, and offline partitions get a leader back once an
//! ISR member is live again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::Core;
use super::election::elect_leader;
use super::image::ClusterImage;
use super::records::MetadataRecord;

/// How often the active controller looks for expired sessions and
/// partitions to repair.
pub const FENCE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Partition changes proposed per pass; the rest wait for the next one.
pub const REPAIRS_PER_PASS_MAX: usize = 256;

/// Last heartbeat per broker; kept only while this node leads.
#[derive(Default)]
pub struct Sessions {
    last: HashMap<i32, Instant>,
}

impl Sessions {
    pub fn heard(&mut self, broker: i32, now: Instant) {
        self.last.insert(broker, now);
    }

    /// Unfenced brokers silent for `timeout`. A broker seen for the first
    /// time starts its session now.
    pub fn expired(&mut self, image: &ClusterImage, now: Instant, timeout: Duration) -> Vec<i32> {
        self.last.retain(|id, _| image.brokers.contains_key(id));
        image
            .live_brokers()
            .filter(|b| now.duration_since(*self.last.entry(b.id).or_insert(now)) >= timeout)
            .map(|b| b.id)
            .collect()
    }
}

/// The ChangePartition records that bring every partition's leader and
/// ISR in line with which brokers are live (at most `max`).
pub fn partition_repairs(image: &ClusterImage, max: usize) -> Vec<MetadataRecord> {
    let mut repairs = Vec::new();
    for (name, topic) in &image.topics {
        let unclean = image.unclean_election_allowed(name);
        for (partition, state) in topic.partitions.iter().enumerate() {
            if repairs.len() >= max {
                return repairs;
            }
            let election = elect_leader(state, |b| image.broker_live(b), unclean);
            if !election.changes(state) {
                continue;
            }
            if election.unclean {
                tracing::warn!(
                    topic = %name, partition, leader = election.leader,
                    "unclean leader election: an out-of-sync replica leads"
                );
            }
            repairs.push(MetadataRecord::ChangePartition {
                topic: name.clone(),
                partition: partition as i32,
                leader: election.leader,
                isr: election.isr,
                leader_epoch: election.leader_epoch,
                partition_epoch: state.partition_epoch,
            });
        }
    }
    repairs
}

pub async fn fence_loop(core: Arc<Core>) {
    let mut tick = tokio::time::interval(FENCE_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if core.is_leader() {
            fence_pass(&core).await;
        } else {
            // The next active controller starts sessions afresh.
            core.sessions
                .lock()
                .expect("the sessions lock is never poisoned")
                .last
                .clear();
        }
    }
}

async fn fence_pass(core: &Core) {
    let (_, image) = core.image();
    let expired = core
        .sessions
        .lock()
        .expect("the sessions lock is never poisoned")
        .expired(&image, Instant::now(), core.session_timeout);
    for id in expired {
        tracing::info!(
            broker = id,
            timeout_ms = core.session_timeout.as_millis() as u64,
            "fencing broker: no heartbeat within the session timeout"
        );
        if let Err(e) = core
            .propose_as_leader(MetadataRecord::FenceBroker { id })
            .await
        {
            tracing::warn!(broker = id, error = %e, "fencing failed; retrying next pass");
        }
    }
    let (_, image) = core.image();
    let repairs = partition_repairs(&image, REPAIRS_PER_PASS_MAX);
    // Concurrent: openraft batches them into few appends.
    let results =
        futures::future::join_all(repairs.into_iter().map(|r| core.propose_as_leader(r))).await;
    for result in results {
        match result {
            Ok((_, Ok(_))) => {}
            Ok((_, Err(e))) => tracing::debug!(error = %e, "partition repair refused"),
            Err(e) => tracing::debug!(error = %e, "partition repair not committed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::image::{BrokerRegistration, PartitionState, TopicImage, NO_LEADER};

    fn image(fenced: &[i32]) -> ClusterImage {
        let mut image = ClusterImage::default();
        for id in 1..=3 {
            image.brokers.insert(
                id,
                BrokerRegistration {
                    id,
                    incarnation: uuid::Uuid::from_u128(id as u128),
                    endpoints: vec![],
                    rack: None,
                    fenced: fenced.contains(&id),
                },
            );
        }
        let partition = |leader: i32| PartitionState {
            replicas: vec![1, 2, 3],
            leader,
            leader_epoch: 0,
            partition_epoch: 3,
            isr: vec![1, 2, 3],
        };
        image.topics.insert(
            "t".into(),
            TopicImage {
                id: uuid::Uuid::from_u128(9),
                name: "t".into(),
                configs: Default::default(),
                partitions: vec![partition(1), partition(2)],
            },
        );
        image
    }

    #[test]
    fn a_fenced_leader_is_replaced_and_leaves_every_isr() {
        let repairs = partition_repairs(&image(&[1]), 10);
        assert_eq!(
            repairs,
            vec![
                MetadataRecord::ChangePartition {
                    topic: "t".into(),
                    partition: 0,
                    leader: 2,
                    isr: vec![2, 3],
                    leader_epoch: 1,
                    partition_epoch: 3,
                },
                MetadataRecord::ChangePartition {
                    topic: "t".into(),
                    partition: 1,
                    leader: 2,
                    isr: vec![2, 3],
                    leader_epoch: 0,
                    partition_epoch: 3,
                },
            ]
        );
        assert_eq!(partition_repairs(&image(&[1]), 1).len(), 1);
        assert!(partition_repairs(&image(&[]), 10).is_empty());
    }

    #[test]
    fn all_fenced_means_offline() {
        let repairs = partition_repairs(&image(&[1, 2, 3]), 10);
        assert!(repairs.iter().all(|r| matches!(
            r,
            MetadataRecord::ChangePartition {
                leader: NO_LEADER,
                ..
            }
        )));
    }

    #[test]
    fn silent_brokers_expire_and_new_ones_get_a_session() {
        let mut sessions = Sessions::default();
        let image = image(&[3]);
        let t0 = Instant::now();
        let timeout = Duration::from_secs(9);
        assert!(sessions.expired(&image, t0, timeout).is_empty());
        sessions.heard(2, t0 + Duration::from_secs(5));
        let later = t0 + Duration::from_secs(10);
        assert_eq!(sessions.expired(&image, later, timeout), vec![1]);
    }
}

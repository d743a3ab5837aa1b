//! Broker sessions and leadership repair on the active controller.
//!
//! The active controller remembers when each broker last heartbeated (in
//! memory only, like Kafka's BrokerHeartbeatManager: a new active
//! controller gives every broker a full session first). A broker silent
//! for `broker_session_timeout_ms` is fenced. Then every partition whose
//! leader or ISR names a broker that is not live gets a ChangePartition
//! from `elect_leader`, and offline partitions get a leader back once an
//! ISR member is live again. A broker in controlled shutdown counts as
//! gone for leadership and ISRs wherever another in-sync replica can take
//! over, and keeps what none can (going offline early helps nobody).

use std::collections::HashMap;

use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::driver::Core;
use super::election::{elect_leader, Election, Past};
use super::image::{ClusterImage, PartitionState, NO_LEADER};
use super::records::MetadataRecord;

/// How often the active controller looks for expired sessions and
/// partitions to repair.
pub const FENCE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Partition changes proposed per pass (in flight at once); the rest go
/// in the next pass, which then starts at once, not a tick later.
pub const REPAIRS_PER_PASS_MAX: usize = 256;

/// Last heartbeat per broker; kept only while this node leads.
#[derive(Default)]
pub struct Sessions {
    last: HashMap<i32, Instant>,
    /// Brokers in controlled shutdown, by the incarnation that asked (a
    /// restarted broker is no longer leaving).
    leaving: HashMap<i32, Uuid>,
    /// The Raft term they were heard in. A node that led, lost the lead
    /// (cut off, say) and leads again must not judge brokers by what it
    /// heard in its old term: they heartbeated to another controller
    /// meanwhile, and it would fence every one of them, itself included.
    term: u64,
}

impl Sessions {
    /// Starts every session afresh if `term` is not the one they are from.
    pub fn in_term(&mut self, term: u64) {
        if self.term != term {
            self.clear();
            self.term = term;
        }
    }

    pub fn heard(&mut self, broker: i32, now: Instant) {
        self.last.insert(broker, now);
    }

    pub fn leaving(&mut self, broker: i32, incarnation: Uuid) {
        self.leaving.insert(broker, incarnation);
    }

    /// Brokers of `image` in controlled shutdown.
    pub fn leaving_in(&mut self, image: &ClusterImage) -> Vec<i32> {
        self.leaving
            .retain(|id, inc| image.brokers.get(id).is_some_and(|b| b.incarnation == *inc));
        self.leaving.keys().copied().collect()
    }

    fn clear(&mut self) {
        self.last.clear();
        self.leaving.clear();
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

/// Where a partition's leadership should be: `elect_leader` over live
/// brokers, treating `leaving` ones as gone when another in-sync replica
/// can lead instead.
fn target(
    state: &PartitionState,
    image: &ClusterImage,
    leaving: &[i32],
    unclean: bool,
    past: Past<'_>,
) -> Election {
    if !leaving.is_empty() {
        // Only to an in-sync replica: one out of the ISR lacks what the
        // leaving one took since (acks=1 writes), and it is not lost yet.
        let in_sync_only = Past {
            departures: &[],
            ..past
        };
        let staying = elect_leader(
            state,
            |b| image.broker_live(b) && !leaving.contains(&b),
            false,
            in_sync_only,
        );
        if staying.leader != NO_LEADER {
            return staying;
        }
    }
    elect_leader(state, |b| image.broker_live(b), unclean, past)
}

/// The ChangePartition records that bring every partition's leader and
/// ISR in line with which brokers are live and staying (at most `max`);
/// `min_insync_default`: this node's `min.insync.replicas`.
pub fn partition_repairs(
    image: &ClusterImage,
    leaving: &[i32],
    max: usize,
    min_insync_default: i32,
) -> Vec<MetadataRecord> {
    let mut repairs = Vec::new();
    for (name, topic) in &image.topics {
        // Per topic, not per partition: configs are strings.
        let unclean = image.unclean_election_allowed(name);
        let min_insync = image.min_insync(name, min_insync_default);
        for (partition, state) in topic.partitions.iter().enumerate() {
            if repairs.len() >= max {
                return repairs;
            }
            let past = image.past(name, partition as i32, min_insync);
            let election = target(state, image, leaving, unclean, past);
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

/// Partitions `broker` leads that another in-sync replica could lead: a
/// broker in controlled shutdown may stop once this is 0.
pub fn movable_leaderships(image: &ClusterImage, broker: i32, leaving: &[i32]) -> usize {
    let mut gone = leaving.to_vec();
    if !gone.contains(&broker) {
        gone.push(broker);
    }
    let partitions = image.topics.values().flat_map(|t| &t.partitions);
    partitions
        .filter(|p| p.leader == broker)
        // A partition it leads has a sound ISR: only a leaderless one's is lost.
        .filter(|p| target(p, image, &gone, false, Past::default()).leader != broker)
        .count()
}

pub async fn fence_loop(core: Arc<Core>) {
    let mut tick = tokio::time::interval(FENCE_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_rebalance = Instant::now();
    let mut more = false;
    loop {
        // A fenced broker of 1,000 partitions leaves 1,000 to repair: the
        // ones past a full pass wait for no tick (four ticks were most of
        // a failover's second).
        if !more {
            tick.tick().await;
        }
        more = false;
        if core.is_leader() {
            more = fence_pass(&core).await;
            super::directories::pass(&core).await;
            if let Some((every, percent)) = core.leader_rebalance {
                if last_rebalance.elapsed() >= every {
                    last_rebalance = Instant::now();
                    rebalance_pass(&core, percent).await;
                }
            }
        } else {
            // The next active controller starts sessions afresh.
            core.sessions
                .lock()
                .expect("the sessions lock is never poisoned")
                .clear();
        }
    }
}

/// Kafka's auto leader rebalance: preferred replicas take their partitions
/// back where their broker's share led elsewhere is too large.
async fn rebalance_pass(core: &Core, imbalance_percent: u32) {
    let (_, image) = core.image();
    let elections = super::election::rebalance_elections(&image, imbalance_percent);
    if elections.is_empty() {
        return;
    }
    tracing::info!(
        partitions = elections.len(),
        "auto leader rebalance: preferred replicas take their partitions back"
    );
    let proposals = elections.into_iter().take(REPAIRS_PER_PASS_MAX).map(
        |(topic, partition, partition_epoch, e)| {
            core.propose_as_leader(MetadataRecord::ChangePartition {
                topic,
                partition,
                leader: e.leader,
                isr: e.isr,
                leader_epoch: e.leader_epoch,
                partition_epoch,
            })
        },
    );
    for result in futures::future::join_all(proposals).await {
        if let Err(e) = result {
            tracing::debug!(error = %e, "preferred election not committed");
        }
    }
}

/// Fences expired brokers and proposes partition repairs; true when the
/// repairs filled the pass, so more may wait.
async fn fence_pass(core: &Core) -> bool {
    let Some(term) = core.leading_term() else {
        return false;
    };
    let (_, image) = core.image();
    let (expired, leaving) = {
        let mut sessions = core
            .sessions
            .lock()
            .expect("the sessions lock is never poisoned");
        sessions.in_term(term);
        let expired = sessions.expired(&image, Instant::now(), core.session_timeout);
        (expired, sessions.leaving_in(&image))
    };
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
    let repairs = partition_repairs(
        &image,
        &leaving,
        REPAIRS_PER_PASS_MAX,
        core.min_insync_replicas,
    );
    let full = repairs.len() == REPAIRS_PER_PASS_MAX;
    // Concurrent: openraft batches them into few appends.
    let results =
        futures::future::join_all(repairs.into_iter().map(|r| core.propose_as_leader(r))).await;
    let mut committed = 0;
    for result in results {
        match result {
            Ok((_, Ok(_))) => committed += 1,
            Ok((_, Err(e))) => tracing::debug!(error = %e, "partition repair refused"),
            Err(e) => tracing::debug!(error = %e, "partition repair not committed"),
        }
    }
    // A pass whose repairs all failed (a lost leadership, a stuck quorum)
    // waits for the tick rather than spinning.
    full && committed > 0
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
        let repairs = partition_repairs(&image(&[1]), &[], 10, 1);
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
        assert_eq!(partition_repairs(&image(&[1]), &[], 1, 1).len(), 1);
        assert!(partition_repairs(&image(&[]), &[], 10, 1).is_empty());
    }

    #[test]
    fn all_fenced_means_offline() {
        let repairs = partition_repairs(&image(&[1, 2, 3]), &[], 10, 1);
        assert!(repairs.iter().all(|r| matches!(
            r,
            MetadataRecord::ChangePartition {
                leader: NO_LEADER,
                ..
            }
        )));
    }

    #[test]
    fn a_leaving_broker_hands_over_what_it_can() {
        let mut image = image(&[]);
        image.topics.get_mut("t").unwrap().partitions[1].isr = vec![1];
        image.topics.get_mut("t").unwrap().partitions[1].leader = 1;
        assert_eq!(movable_leaderships(&image, 1, &[]), 1);
        let repairs = partition_repairs(&image, &[1], 10, 1);
        // Partition 0 moves to 2; partition 1 has no other in-sync replica
        // and stays with 1 rather than going offline.
        assert_eq!(repairs.len(), 1);
        assert!(matches!(
            &repairs[0],
            MetadataRecord::ChangePartition { partition: 0, leader: 2, isr, .. } if isr == &vec![2, 3]
        ));
        for r in &repairs {
            crate::controller::records::apply(&mut image, r).unwrap();
        }
        assert_eq!(movable_leaderships(&image, 1, &[]), 0);
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

    #[test]
    fn a_new_term_starts_every_session_afresh() {
        let mut sessions = Sessions::default();
        let image = image(&[]);
        let t0 = Instant::now();
        let timeout = Duration::from_secs(9);
        sessions.in_term(4);
        assert!(sessions.expired(&image, t0, timeout).is_empty());
        // Leading again in term 6, 10 s on: the brokers heartbeated to the
        // term-5 controller meanwhile; none has expired here yet.
        let later = t0 + Duration::from_secs(10);
        sessions.in_term(6);
        assert!(sessions.expired(&image, later, timeout).is_empty());
        sessions.in_term(6);
        sessions.heard(1, later + Duration::from_secs(5));
        let after = later + Duration::from_secs(9);
        assert_eq!(sessions.expired(&image, after, timeout), vec![2, 3]);
    }
}

//! Leader election for one partition, as Kafka's controller does it: keep
//! a live leader; else the first replica (in preference order) that is in
//! the ISR and live; else a live eligible replica out of the ISR (one that
//! holds every acks=all record, KIP-966), the last to leave first; else,
//! only if unclean election is allowed, any live replica, the one that
//! left the ISR last first (its missing data is lost); else offline. An
//! ISR whose last member lost its log (`ClusterImage::lost_isrs`) elects
//! no one cleanly, and an unclean election passes over that member. Pure.

use std::collections::BTreeMap;

use super::image::{ClusterImage, Departure, PartitionState, NO_LEADER};

/// The leadership a partition should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Election {
    pub leader: i32,
    pub isr: Vec<i32>,
    pub leader_epoch: i32,
    /// An out-of-sync replica was chosen: the log line should say so.
    pub unclean: bool,
}

impl Election {
    /// Whether this differs from the partition as it stands.
    pub fn changes(&self, state: &PartitionState) -> bool {
        self.leader != state.leader || self.isr != state.isr
    }
}

/// What an election goes by besides the partition's state
/// (`ClusterImage::past`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Past<'a> {
    /// The ISR's last member lost its log.
    pub isr_lost: bool,
    /// Replicas out of the ISR, in the order they left it.
    pub departures: &'a [Departure],
    /// The topic's `min.insync.replicas`.
    pub min_insync: u32,
}

impl Past<'_> {
    /// Replicas out of the ISR that hold every acks=all record (Kafka's
    /// eligible leader replicas): since each left, the ISR stayed below
    /// `min.insync.replicas`, so no such write was acknowledged without
    /// it. The last to leave first.
    pub fn eligible(&self) -> impl Iterator<Item = i32> + '_ {
        let min_insync = self.min_insync;
        self.departures
            .iter()
            .rev()
            .filter(move |d| d.isr_max_since < min_insync)
            .map(|d| d.broker)
    }
}

/// `live(b)`: broker b is registered and unfenced.
pub fn elect_leader(
    state: &PartitionState,
    live: impl Fn(i32) -> bool,
    unclean_allowed: bool,
    past: Past<'_>,
) -> Election {
    let isr_lost = past.isr_lost;
    let in_sync = |b: i32| !isr_lost && state.isr.contains(&b);
    let live_isr: Vec<i32> = state
        .isr
        .iter()
        .copied()
        .filter(|&b| live(b) && in_sync(b))
        .collect();
    let epoch_for = |leader: i32| {
        if leader == state.leader {
            state.leader_epoch
        } else {
            state.leader_epoch + 1
        }
    };
    let clean = if live_isr.contains(&state.leader) {
        Some(state.leader)
    } else {
        state
            .replicas
            .iter()
            .copied()
            .find(|b| live_isr.contains(b))
    };
    if let Some(leader) = clean {
        return Election {
            leader,
            isr: live_isr,
            leader_epoch: epoch_for(leader),
            unclean: false,
        };
    }
    let eligible = past
        .eligible()
        .find(|&b| live(b) && state.replicas.contains(&b));
    if let Some(leader) = eligible {
        return Election {
            leader,
            isr: vec![leader],
            leader_epoch: epoch_for(leader),
            unclean: false,
        };
    }
    if unclean_allowed {
        // Not a replica whose log is known lost while another may hold more.
        let candidate = |b: i32| live(b) && !(isr_lost && state.isr.contains(&b));
        // The last to leave the ISR holds what every earlier one held and
        // more; then the replica order.
        let departed = past.departures.iter().rev().map(|d| d.broker);
        let chosen = departed
            .filter(|b| state.replicas.contains(b))
            .chain(state.replicas.iter().copied())
            .find(|&b| candidate(b));
        if let Some(leader) = chosen {
            return Election {
                leader,
                isr: vec![leader],
                leader_epoch: epoch_for(leader),
                unclean: true,
            };
        }
    }
    // Offline. The ISR stays as it was: its members are the ones that may
    // lead again cleanly when they come back.
    Election {
        leader: NO_LEADER,
        isr: state.isr.clone(),
        leader_epoch: epoch_for(NO_LEADER),
        unclean: false,
    }
}

/// Preferred leader election (ElectLeaders, auto leader rebalance): the
/// first replica takes the lead back when it is live and in sync; `None`
/// when it already leads or cannot (the ISR lost: `isr_lost`).
pub fn preferred_election(
    state: &PartitionState,
    live: impl Fn(i32) -> bool,
    past: Past<'_>,
) -> Option<Election> {
    let preferred = *state.replicas.first()?;
    if past.isr_lost
        || preferred == state.leader
        || !live(preferred)
        || !state.isr.contains(&preferred)
    {
        return None;
    }
    Some(Election {
        leader: preferred,
        isr: state.isr.clone(),
        leader_epoch: state.leader_epoch + 1,
        unclean: false,
    })
}

/// Kafka's auto leader rebalance: for every broker whose share of
/// partitions led by someone else, among those it is the preferred
/// replica of, exceeds `imbalance_percent`, the preferred elections that
/// give them back (only where it is live and in sync). Pure.
pub fn rebalance_elections(
    image: &ClusterImage,
    imbalance_percent: u32,
) -> Vec<(String, i32, i32, Election)> {
    let live = |b: i32| image.broker_live(b);
    let mut preferred_of: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for state in image.topics.values().flat_map(|t| &t.partitions) {
        if let Some(&preferred) = state.replicas.first() {
            let entry = preferred_of.entry(preferred).or_default();
            entry.0 += 1;
            if state.leader != preferred {
                entry.1 += 1;
            }
        }
    }
    let imbalanced = |broker: i32| {
        preferred_of
            .get(&broker)
            .is_some_and(|&(total, elsewhere)| elsewhere * 100 > total * imbalance_percent as usize)
    };
    let mut elections = Vec::new();
    for (name, topic) in &image.topics {
        for (partition, state) in topic.partitions.iter().enumerate() {
            let Some(&preferred) = state.replicas.first() else {
                continue;
            };
            if !imbalanced(preferred) {
                continue;
            }
            let partition = i32::try_from(partition).expect("partition counts fit i32");
            // A preferred election goes only by whether the ISR was lost.
            let past = image.past(name, partition, 1);
            if let Some(e) = preferred_election(state, live, past) {
                elections.push((name.clone(), partition, state.partition_epoch, e));
            }
        }
    }
    elections
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(replicas: &[i32], leader: i32, isr: &[i32]) -> PartitionState {
        PartitionState {
            replicas: replicas.to_vec(),
            leader,
            leader_epoch: 4,
            partition_epoch: 9,
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn a_live_leader_stays_and_dead_members_leave_the_isr() {
        let p = partition(&[1, 2, 3], 2, &[1, 2, 3]);
        let e = elect_leader(&p, |b| b != 3, false, Past::default());
        assert_eq!((e.leader, e.leader_epoch), (2, 4));
        assert_eq!(e.isr, vec![1, 2]);
    }

    #[test]
    fn the_first_live_isr_replica_takes_over_with_a_new_epoch() {
        let p = partition(&[1, 2, 3], 1, &[1, 3, 2]);
        let e = elect_leader(&p, |b| b != 1, false, Past::default());
        assert_eq!(e.leader, 2, "replica order, not ISR order");
        assert_eq!(e.leader_epoch, 5);
        assert_eq!(e.isr, vec![3, 2]);
        assert!(!e.unclean && e.changes(&p));
    }

    #[test]
    fn no_live_isr_member_means_offline_unless_unclean() {
        let p = partition(&[1, 2, 3], 1, &[1]);
        let offline = elect_leader(&p, |b| b != 1, false, Past::default());
        assert_eq!(offline.leader, NO_LEADER);
        assert_eq!(offline.isr, vec![1]);
        assert_eq!(offline.leader_epoch, 5);
        let unclean = elect_leader(&p, |b| b != 1, true, Past::default());
        assert_eq!((unclean.leader, unclean.isr.clone()), (2, vec![2]));
        assert!(unclean.unclean);
    }

    /// The replica that left the ISR last holds every record acknowledged
    /// before it left: an unclean election takes it before the replica
    /// order, and passes over a lost ISR's member.
    #[test]
    fn an_unclean_election_prefers_the_last_to_leave_the_isr() {
        let p = partition(&[1, 2, 3], NO_LEADER, &[1]);
        // Both left while the ISR was at min.insync.replicas: not eligible.
        let departures = [departure(2, 2), departure(3, 1)];
        let past = Past {
            isr_lost: false,
            departures: &departures,
            min_insync: 1,
        };
        assert_eq!(elect_leader(&p, |b| b != 1, false, past).leader, NO_LEADER);
        let e = elect_leader(&p, |b| b != 1, true, past);
        assert_eq!((e.leader, &e.isr[..]), (3, &[3][..]));
        let e = elect_leader(&p, |b| b == 2, true, past);
        assert_eq!(e.leader, 2, "the next one back in the list");
        let e = elect_leader(&p, |b| b != 1, true, Past::default());
        assert_eq!(e.leader, 2, "nothing known: the replica order");
        let lost = Past {
            isr_lost: true,
            ..Past::default()
        };
        assert_eq!(elect_leader(&p, |_| true, true, lost).leader, 2);
        assert_eq!(elect_leader(&p, |b| b == 1, true, lost).leader, NO_LEADER);
    }

    fn departure(broker: i32, isr_max_since: u32) -> Departure {
        Departure {
            broker,
            isr_max_since,
        }
    }

    /// A replica after whose leaving the ISR stayed below
    /// min.insync.replicas holds every acks=all record: with no live ISR
    /// member it leads cleanly (Kafka's eligible leader replicas), the
    /// last to leave first; one that left while the ISR was large enough
    /// does not. A lost ISR's member never does.
    #[test]
    fn an_eligible_replica_out_of_the_isr_leads_cleanly() {
        let p = partition(&[1, 2, 3], NO_LEADER, &[1]);
        // 3 left the ISR {1,2,3} (ISR 2 since), then 2 (ISR 1 since).
        let departures = [departure(3, 2), departure(2, 1)];
        let past = Past {
            isr_lost: false,
            departures: &departures,
            min_insync: 2,
        };
        let e = elect_leader(&p, |b| b != 1, false, past);
        assert_eq!((e.leader, &e.isr[..], e.unclean), (2, &[2][..], false));
        assert_eq!(e.leader_epoch, 5);
        let e = elect_leader(&p, |b| b == 3, false, past);
        assert_eq!(e.leader, NO_LEADER, "3 may lack acknowledged writes");
        let live_leader = elect_leader(&p, |_| true, false, past);
        assert_eq!(live_leader.leader, 1, "an in-sync replica first");
        let lost = Past {
            isr_lost: true,
            ..past
        };
        assert_eq!(elect_leader(&p, |b| b != 3, false, lost).leader, 2);
    }

    #[test]
    fn the_preferred_replica_takes_the_lead_back_only_when_in_sync() {
        let p = partition(&[1, 2, 3], 2, &[2, 3, 1]);
        let e = preferred_election(&p, |_| true, Past::default()).unwrap();
        assert_eq!(
            (e.leader, e.leader_epoch, e.isr.clone()),
            (1, 5, vec![2, 3, 1])
        );
        assert!(preferred_election(&p, |b| b != 1, Past::default()).is_none());
        assert!(
            preferred_election(&partition(&[1, 2], 2, &[2]), |_| true, Past::default()).is_none()
        );
        assert!(
            preferred_election(&partition(&[1, 2], 1, &[1, 2]), |_| true, Past::default())
                .is_none()
        );
    }

    #[test]
    fn rebalance_gives_leadership_back_to_imbalanced_preferred_replicas() {
        use crate::controller::image::{BrokerRegistration, TopicImage};
        let broker = |id| BrokerRegistration {
            id,
            incarnation: uuid::Uuid::nil(),
            endpoints: Vec::new(),
            rack: None,
            fenced: false,
        };
        let mut image = ClusterImage::default();
        for id in [1, 2, 3] {
            image.brokers.insert(id, broker(id));
        }
        let partitions = vec![
            // Broker 1 prefers two and leads neither: 100% imbalanced.
            partition(&[1, 2, 3], 2, &[1, 2, 3]),
            partition(&[1, 3, 2], 3, &[3, 2]),
            // Broker 2 leads what it prefers.
            partition(&[2, 3, 1], 2, &[1, 2, 3]),
        ];
        image.topics.insert(
            "t".into(),
            TopicImage {
                id: uuid::Uuid::nil(),
                name: "t".into(),
                configs: Default::default(),
                partitions,
            },
        );
        let elections = rebalance_elections(&image, 10);
        assert_eq!(elections.len(), 1, "only the in-sync preferred replica");
        let (topic, partition, partition_epoch, e) = &elections[0];
        assert_eq!((topic.as_str(), *partition, *partition_epoch), ("t", 0, 9));
        assert_eq!((e.leader, e.leader_epoch), (1, 5));
        assert!(
            rebalance_elections(&image, 100).is_empty(),
            "within the allowed share"
        );
    }

    #[test]
    fn an_offline_partition_comes_back_when_an_isr_member_does() {
        let mut p = partition(&[1, 2], NO_LEADER, &[2]);
        p.leader_epoch = 7;
        let e = elect_leader(&p, |_| true, false, Past::default());
        assert_eq!((e.leader, e.leader_epoch), (2, 8));
        let unchanged = elect_leader(&p, |_| false, false, Past::default());
        assert!(!unchanged.changes(&p));
    }
}

//! Replica placement for new partitions: Kafka's rack-aware striping
//! (AdminUtils / StripedReplicaPlacer). Brokers are listed alternating
//! racks; partition p's first replica (its leader) is the broker at
//! `start + p` in that list, so leaders stripe evenly over brokers, and
//! the other replicas follow at a shift that grows every round, preferring
//! racks and then brokers that hold no replica of the partition yet.
//! Pure: the caller passes the brokers and the starting point.

use std::collections::{BTreeMap, BTreeSet};

use super::image::ClusterImage;
use crate::metadata::PARTITIONS_PER_TOPIC_MAX;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Kafka's INVALID_REPLICATION_FACTOR.
    #[error("replication factor {factor} is invalid with {brokers} unfenced brokers")]
    InvalidReplicationFactor { factor: i32, brokers: usize },
    /// Kafka's INVALID_PARTITIONS.
    #[error("{0} partitions is out of range (1 to {PARTITIONS_PER_TOPIC_MAX})")]
    InvalidPartitions(i32),
}

impl PlacementError {
    pub fn error_code(&self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            PlacementError::InvalidReplicationFactor { .. } => E::InvalidReplicationFactor,
            PlacementError::InvalidPartitions(_) => E::InvalidPartitions,
        }
        .code()
    }
}

/// A broker that may hold replicas, with its rack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: i32,
    pub rack: Option<String>,
}

/// The unfenced brokers of `image`, the only ones new replicas go to.
pub fn live_candidates(image: &ClusterImage) -> Vec<Candidate> {
    image
        .live_brokers()
        .map(|b| Candidate {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect()
}

/// Replica lists for `partitions` partitions with `factor` replicas each.
/// `start` picks the first leader (Kafka picks it at random, so topics do
/// not all start on the same broker).
pub fn place_replicas(
    brokers: &[Candidate],
    partitions: i32,
    factor: i32,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if partitions <= 0 || partitions > PARTITIONS_PER_TOPIC_MAX {
        return Err(PlacementError::InvalidPartitions(partitions));
    }
    let n = brokers.len();
    if factor <= 0 || factor as usize > n {
        return Err(PlacementError::InvalidReplicationFactor { factor, brokers: n });
    }
    let arranged = rack_alternated(brokers);
    let rack_of: BTreeMap<i32, Option<&str>> =
        brokers.iter().map(|b| (b.id, b.rack.as_deref())).collect();
    let racks = rack_of.values().collect::<BTreeSet<_>>().len();
    let start_index = start % n;
    let mut shift = start % n;
    let mut placed = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start_index) % n;
        let mut replicas = vec![arranged[first]];
        let mut racks_used = BTreeSet::from([rack_of[&arranged[first]]]);
        let mut k = 0;
        while replicas.len() < factor as usize {
            let broker = arranged[replica_index(first, shift * racks, k, n)];
            let rack = rack_of[&broker];
            let rack_ok = !racks_used.contains(&rack) || racks_used.len() == racks;
            if rack_ok && !replicas.contains(&broker) {
                replicas.push(broker);
                racks_used.insert(rack);
            }
            k += 1;
        }
        placed.push(replicas);
    }
    Ok(placed)
}

/// Kafka's `replicaIndex`: the k-th candidate after the first replica.
fn replica_index(first: usize, shift: usize, k: usize, n: usize) -> usize {
    debug_assert!(n > 1);
    (first + 1 + (shift + k) % (n - 1)) % n
}

/// Brokers ordered rack by rack, round robin: r1b1, r2b1, r1b2, r2b2, ...
/// (racks and brokers by name and id, so the order is deterministic).
fn rack_alternated(brokers: &[Candidate]) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref()).or_default().push(b.id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let rounds = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..rounds)
        .flat_map(|i| by_rack.values().filter_map(move |ids| ids.get(i).copied()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<Candidate> {
        racks
            .iter()
            .enumerate()
            .map(|(i, r)| Candidate {
                id: i as i32 + 1,
                rack: r.map(str::to_string),
            })
            .collect()
    }

    fn leader_counts(placed: &[Vec<i32>]) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for replicas in placed {
            *counts.entry(replicas[0]).or_default() += 1;
        }
        counts
    }

    #[test]
    fn replicas_are_distinct_and_leaders_balanced() {
        let b = brokers(&[None, None, None]);
        for start in 0..3 {
            let placed = place_replicas(&b, 6, 3, start).unwrap();
            assert_eq!(placed.len(), 6);
            for replicas in &placed {
                let set: BTreeSet<_> = replicas.iter().collect();
                assert_eq!(set.len(), 3, "{replicas:?}");
            }
            assert!(leader_counts(&placed).values().all(|&c| c == 2));
        }
    }

    #[test]
    fn followers_spread_too() {
        let b = brokers(&[None, None, None, None]);
        let placed = place_replicas(&b, 8, 2, 0).unwrap();
        let mut replica_counts: BTreeMap<i32, usize> = BTreeMap::new();
        for r in &placed {
            for id in r {
                *replica_counts.entry(*id).or_default() += 1;
            }
        }
        assert!(
            replica_counts.values().all(|&c| c == 4),
            "{replica_counts:?}"
        );
    }

    #[test]
    fn racks_come_first() {
        let b = brokers(&[Some("a"), Some("a"), Some("b"), Some("b")]);
        let placed = place_replicas(&b, 8, 2, 1).unwrap();
        for replicas in &placed {
            let racks: BTreeSet<_> = replicas
                .iter()
                .map(|id| b[*id as usize - 1].rack.clone())
                .collect();
            assert_eq!(racks.len(), 2, "{replicas:?} on one rack");
        }
        assert!(leader_counts(&placed).values().all(|&c| c == 2));
    }

    #[test]
    fn more_replicas_than_brokers_is_refused() {
        let b = brokers(&[None, None]);
        assert_eq!(
            place_replicas(&b, 1, 3, 0),
            Err(PlacementError::InvalidReplicationFactor {
                factor: 3,
                brokers: 2
            })
        );
        assert!(place_replicas(&[], 1, 1, 0).is_err());
        assert!(place_replicas(&b, 0, 1, 0).is_err());
        assert_eq!(place_replicas(&b[..1], 3, 1, 7).unwrap(), vec![vec![1]; 3]);
    }
}

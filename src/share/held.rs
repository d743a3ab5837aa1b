//! The share partitions one core holds, by group and then by partition:
//! a request names one group and every partition of its session, so the
//! group's name is hashed once per request and each partition is a slot
//! of its topic (a (group, partition) key cost a `String` and a hash of
//! both names per partition per request, 5% of the broker's CPU serving
//! one share group at 50k msg/s).

use std::collections::HashMap;
use std::rc::Rc;

use super::partition::SharePartition;
use crate::shard::{PartitionTable, TopicPartition};

/// One group's share partitions (boxed: a topic's slots run to its
/// highest partition held, most of them empty).
pub(super) type GroupShares = PartitionTable<Box<Held>>;

/// A share partition held here, with the leader epoch it was loaded at:
/// a partition led again after another leader served it is loaded anew.
pub(super) struct Held {
    pub leader_epoch: i32,
    /// The state epoch of the state it was loaded from: an operator's reset
    /// at the coordinator bumps it, and this copy is then stale.
    pub state_epoch: i32,
    pub sp: SharePartition,
    /// Held by the write of its state in flight: one at a time, each of
    /// the state when it starts, so they reach the coordinator in order.
    pub writing: Rc<futures::lock::Mutex<()>>,
    /// When a request last served it, for the eviction of idle ones.
    pub last_used_ms: i64,
}

impl Held {
    /// Whether it may be dropped and loaded again later without losing
    /// anything held: no record acquired, no write in flight.
    fn evictable(&self) -> bool {
        self.sp.acquired_count() == 0 && Rc::strong_count(&self.writing) == 1
    }
}

/// Every share partition of this core, at most `max` of them.
pub(super) struct Shares {
    /// SipHash (the default) for the group names, which members pick.
    groups: HashMap<Rc<str>, GroupShares>,
    /// Share partitions held, over all groups.
    count: usize,
    max: usize,
}

impl Shares {
    pub fn new(max: usize) -> Shares {
        assert!(max >= 1, "a core holds some share partitions");
        Shares {
            groups: HashMap::new(),
            count: 0,
            max,
        }
    }

    pub fn group(&self, group: &str) -> Option<&GroupShares> {
        self.groups.get(group)
    }

    pub fn group_mut(&mut self, group: &str) -> Option<&mut GroupShares> {
        self.groups.get_mut(group)
    }

    pub fn get(&self, group: &str, tp: &TopicPartition) -> Option<&Held> {
        self.group(group)?.get(tp).map(|held| &**held)
    }

    pub fn get_mut(&mut self, group: &str, tp: &TopicPartition) -> Option<&mut Held> {
        self.group_mut(group)?.get_mut(tp).map(|held| &mut **held)
    }

    /// Holds `held` as `group`'s share partition `tp`, in place of one
    /// held already; a new one first makes room by dropping the least
    /// recently used idle one. Returns false (nothing held) when at `max`
    /// and every one holds something.
    pub fn insert(&mut self, group: &str, tp: &TopicPartition, held: Held) -> bool {
        if let Some(slot) = self.get_mut(group, tp) {
            *slot = held;
            return true;
        }
        if self.count >= self.max && !self.evict_least_recent() {
            return false;
        }
        let partitions = match self.groups.get_mut(group) {
            Some(partitions) => partitions,
            None => self.groups.entry(Rc::from(group)).or_default(),
        };
        let before = partitions.insert(tp.clone(), Box::new(held));
        assert!(before.is_none(), "a new share partition");
        self.count += 1;
        assert!(self.count <= self.max, "share partitions are bounded");
        true
    }

    pub fn remove(&mut self, group: &str, tp: &TopicPartition) {
        let Some(partitions) = self.groups.get_mut(group) else {
            return;
        };
        if partitions.remove(tp).is_some() {
            self.count -= 1;
        }
        if partitions.is_empty() {
            self.groups.remove(group);
        }
    }

    /// Drops the least recently used share partition that holds nothing in
    /// flight (its state is the coordinator's; a later request loads it
    /// again); false if every one holds something.
    fn evict_least_recent(&mut self) -> bool {
        let oldest = self
            .groups
            .iter()
            .flat_map(|(group, partitions)| partitions.iter().map(move |(tp, h)| (group, tp, h)))
            .filter(|(_, _, held)| held.evictable())
            .min_by_key(|(_, _, held)| held.last_used_ms)
            .map(|(group, tp, _)| (group.clone(), tp));
        let Some((group, tp)) = oldest else {
            return false;
        };
        self.remove(&group, &tp);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(last_used_ms: i64) -> Held {
        Held {
            leader_epoch: 0,
            state_epoch: 0,
            sp: SharePartition::new(0),
            writing: Rc::default(),
            last_used_ms,
        }
    }

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition,
        }
    }

    #[test]
    fn a_full_core_drops_the_least_recently_used_idle_partition() {
        let mut shares = Shares::new(2);
        assert!(shares.insert("a", &tp(0), held(5)));
        assert!(shares.insert("b", &tp(0), held(3)));
        assert!(
            shares.insert("a", &tp(0), held(6)),
            "in place: no room made"
        );
        assert!(shares.get("b", &tp(0)).is_some());
        assert!(shares.insert("a", &tp(1), held(7)));
        assert!(
            shares.get("b", &tp(0)).is_none(),
            "b's was used last longest ago"
        );
        assert_eq!(shares.groups.len(), 1, "an empty group goes");
        // A write in flight: not evictable.
        let writing_a = shares.get("a", &tp(1)).unwrap().writing.clone();
        assert!(shares.insert("c", &tp(0), held(8)));
        assert!(shares.get("a", &tp(1)).is_some());
        assert!(shares.get("a", &tp(0)).is_none());
        let writing_c = shares.get("c", &tp(0)).unwrap().writing.clone();
        assert!(!shares.insert("d", &tp(0), held(9)), "nothing to drop");
        drop(writing_a);
        assert!(shares.insert("d", &tp(0), held(9)));
        assert!(shares.get("a", &tp(1)).is_none());
        drop(writing_c);
        assert_eq!(shares.count, 2);
        shares.remove("d", &tp(0));
        shares.remove("d", &tp(0));
        assert_eq!(shares.count, 1);
    }
}

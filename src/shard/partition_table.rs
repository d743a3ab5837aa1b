//! The partitions a shard holds, by topic and then by partition number.
//!
//! A consumer's fetch names every partition it reads, each time: at 10,000
//! partitions a hash map of (topic, partition) keys made each lookup two
//! cache misses (the control bytes and the bucket): 9.5% of the shard's
//! CPU, its largest function. Here a topic is looked up in a map
//! of a few entries that stays cached, and its partitions are a dense
//! vector that a fetch walks in order.

use std::collections::HashMap;
use std::sync::Arc;

use super::TopicPartition;

pub struct PartitionTable<V> {
    /// Slot `p` of a topic holds partition `p`, if this shard holds it.
    /// Hashed with foldhash (SipHash of the names was the largest share of
    /// a replica's CPU at 1,000 partitions): its keys are topics the
    /// controller created, not names a client picks at will.
    topics: HashMap<Arc<str>, Vec<Option<V>>, foldhash::fast::RandomState>,
    len: usize,
}

impl<V> Default for PartitionTable<V> {
    fn default() -> Self {
        PartitionTable {
            topics: HashMap::default(),
            len: 0,
        }
    }
}

impl<V> PartitionTable<V> {
    pub fn get(&self, tp: &TopicPartition) -> Option<&V> {
        let slot = usize::try_from(tp.partition).ok()?;
        self.topic(&tp.topic)?.get(slot)?.as_ref()
    }

    pub fn get_mut(&mut self, tp: &TopicPartition) -> Option<&mut V> {
        let slot = usize::try_from(tp.partition).ok()?;
        self.topics.get_mut(&*tp.topic)?.get_mut(slot)?.as_mut()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slots of `topic` (slot `p` holds partition `p`, if held here),
    /// to look up many of its partitions with one hash of its name.
    pub fn topic(&self, topic: &str) -> Option<&[Option<V>]> {
        self.topics.get(topic).map(Vec::as_slice)
    }

    /// Some partition of `topic` held here, if any.
    pub fn any_of(&self, topic: &str) -> Option<&V> {
        self.topics.get(topic)?.iter().flatten().next()
    }

    /// Holds `value` as `tp`; returns what it held before.
    pub fn insert(&mut self, tp: TopicPartition, value: V) -> Option<V> {
        let slot = usize::try_from(tp.partition).expect("partition numbers are not negative");
        let slots = self.topics.entry(tp.topic).or_default();
        if slots.len() <= slot {
            slots.resize_with(slot + 1, || None);
        }
        let before = slots[slot].replace(value);
        if before.is_none() {
            self.len += 1;
        }
        before
    }

    pub fn remove(&mut self, tp: &TopicPartition) -> Option<V> {
        let slot = usize::try_from(tp.partition).ok()?;
        let slots = self.topics.get_mut(&*tp.topic)?;
        let removed = slots.get_mut(slot)?.take()?;
        self.len -= 1;
        // A deleted topic leaves no slots behind.
        while slots.last().is_some_and(Option::is_none) {
            slots.pop();
        }
        if slots.is_empty() {
            self.topics.remove(&*tp.topic);
        }
        Some(removed)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn clear(&mut self) {
        self.topics.clear();
        self.len = 0;
    }

    /// Every partition held, with its key (sharing the topic's `Arc`).
    pub fn iter(&self) -> impl Iterator<Item = (TopicPartition, &V)> {
        self.topics.iter().flat_map(|(topic, slots)| {
            slots.iter().enumerate().filter_map(|(slot, value)| {
                let value = value.as_ref()?;
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: i32::try_from(slot).expect("slots come from i32 partitions"),
                };
                Some((tp, value))
            })
        })
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.topics.values().flatten().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from(topic),
            partition,
        }
    }

    #[test]
    fn holds_what_was_inserted_until_removed() {
        let mut table = PartitionTable::default();
        assert_eq!(table.insert(tp("a", 3), 30), None);
        assert_eq!(table.insert(tp("a", 0), 0), None);
        assert_eq!(table.insert(tp("b", 1), 11), None);
        assert_eq!(table.insert(tp("a", 3), 31), Some(30), "replaced");
        assert_eq!(table.len(), 3);
        assert_eq!(table.get(&tp("a", 3)), Some(&31));
        assert_eq!(table.get(&tp("a", 1)), None, "a hole below a held slot");
        assert_eq!(table.get(&tp("a", 4)), None, "past the slots");
        assert_eq!(table.get(&tp("a", -1)), None, "a negative partition");
        assert_eq!(table.get(&tp("c", 0)), None, "an unknown topic");
        let mut all: Vec<(String, i32, i32)> = table
            .iter()
            .map(|(k, v)| (k.topic.to_string(), k.partition, *v))
            .collect();
        all.sort();
        assert_eq!(
            all,
            [("a".into(), 0, 0), ("a".into(), 3, 31), ("b".into(), 1, 11)]
        );
        assert_eq!(table.values().sum::<i32>(), 42);

        assert_eq!(table.remove(&tp("a", 3)), Some(31));
        assert_eq!(table.remove(&tp("a", 3)), None);
        assert_eq!(table.remove(&tp("a", -2)), None);
        assert_eq!(table.len(), 2);
        assert_eq!(table.topics["a"].len(), 1, "trailing empty slots go");
        assert_eq!(table.remove(&tp("a", 0)), Some(0));
        assert!(!table.topics.contains_key("a"), "an emptied topic goes");
        table.clear();
        assert_eq!(table.len(), 0);
        assert_eq!(table.get(&tp("b", 1)), None);
    }
}

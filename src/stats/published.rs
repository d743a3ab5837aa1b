//! What each shard last published for `/metrics`: one slot per shard,
//! replaced whole, so a scrape copies a few `Arc`s under the lock and
//! never asks a shard (a mesh message per scrape would be a hop on the
//! data path's queues).

use std::sync::{Arc, Mutex};

pub(super) struct Published<T> {
    slots: Mutex<Vec<Arc<Vec<T>>>>,
}

impl<T> Published<T> {
    pub(super) const fn new() -> Published<T> {
        Published {
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Replaces what `shard` published last.
    pub(super) fn publish(&self, shard: usize, items: Vec<T>) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() <= shard {
            slots.resize_with(shard + 1, || Arc::new(Vec::new()));
        }
        slots[shard] = Arc::new(items);
    }

    /// Every shard's last publication, as one list. The lock is held for
    /// the `Arc`s' clones alone, not the items'.
    pub(super) fn snapshot(&self) -> Vec<T>
    where
        T: Clone,
    {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner()).clone();
        slots
            .iter()
            .flat_map(|shard| shard.iter().cloned())
            .collect()
    }
}

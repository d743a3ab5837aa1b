//! Kafka's `TokenBucket` for the controller mutation quota (KIP-599): each
//! entity's bucket holds up to `(samples - 1) x window x quota` partition
//! mutations, refills at `quota` a second, and is drawn by the partitions
//! a CreateTopics, CreatePartitions or DeleteTopics creates or deletes. A
//! bucket below zero is over the quota: strict requests are refused, and
//! the throttle is the time to refill it to zero.
//!
//! Why a lock here and atomics in `rate`: mutations are admin requests, a
//! few a second at most, and a bucket is two values updated together; one
//! short `Mutex` over a fixed array costs nothing on the data path, which
//! never takes it.

use std::sync::Mutex;

/// Entities tracked at once. A bucket refilled to its burst is the same as
/// a new one, so it is given to the next entity that needs a slot; when
/// none is free, entities share the overflow bucket (never unthrottled).
pub const BUCKETS_MAX: usize = 256;

#[derive(Clone, Copy)]
struct Bucket {
    /// The entity's sensor key (never 0); 0 while free.
    key: u64,
    tokens: f64,
    last_ms: u64,
}

const FREE: Bucket = Bucket {
    key: 0,
    tokens: 0.0,
    last_ms: 0,
};

/// The broker's controller mutation buckets.
pub struct BucketTable {
    /// `BUCKETS_MAX` buckets and the overflow one, last.
    buckets: Mutex<[Bucket; BUCKETS_MAX + 1]>,
}

impl Default for BucketTable {
    fn default() -> Self {
        BucketTable::new()
    }
}

/// One draw on a bucket: how much quota it is given and how far it fills.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    pub key: u64,
    /// Permits a second.
    pub quota: f64,
    /// Most permits the bucket holds.
    pub burst: f64,
}

impl BucketTable {
    pub const fn new() -> BucketTable {
        BucketTable {
            buckets: Mutex::new([FREE; BUCKETS_MAX + 1]),
        }
    }

    /// Takes `permits` from the entity's bucket (after refilling it for the
    /// time since its last draw) and returns the tokens left, below zero
    /// when over the quota. `permits` 0 only looks.
    pub fn take(&self, draw: Draw, permits: f64, now_ms: u64) -> f64 {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let i = find(&buckets[..BUCKETS_MAX], draw, now_ms).unwrap_or(BUCKETS_MAX);
        let bucket = &mut buckets[i];
        if bucket.key != draw.key && i < BUCKETS_MAX {
            // A new entity's bucket starts full, as Kafka's first refill.
            *bucket = Bucket {
                key: draw.key,
                tokens: draw.burst,
                last_ms: now_ms,
            };
        }
        let refill = draw.quota * now_ms.saturating_sub(bucket.last_ms) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + refill).min(draw.burst) - permits;
        bucket.last_ms = now_ms;
        bucket.tokens
    }
}

/// The entity's bucket, else a free one or one refilled to its burst.
fn find(buckets: &[Bucket], draw: Draw, now_ms: u64) -> Option<usize> {
    let full = |b: &Bucket| {
        let refill = draw.quota * now_ms.saturating_sub(b.last_ms) as f64 / 1000.0;
        b.key == 0 || b.tokens + refill >= draw.burst
    };
    buckets
        .iter()
        .position(|b| b.key == draw.key)
        .or_else(|| buckets.iter().position(full))
}

/// Kafka's throttle for a bucket below zero: the time to refill it to zero
/// (`-tokens / quota` seconds), at most `bound_ms`.
pub fn throttle_ms(tokens: f64, quota: f64, bound_ms: u64) -> u64 {
    if tokens >= 0.0 {
        return 0;
    }
    if quota <= 0.0 {
        return bound_ms;
    }
    ((-tokens / quota * 1000.0).round() as u64).min(bound_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bucket lends its burst, goes below zero on a large draw (which is
    /// allowed: the next one is refused), and refills at the quota.
    #[test]
    fn a_bucket_bursts_then_refills_at_the_quota() {
        let table = BucketTable::new();
        let draw = Draw {
            key: 7,
            quota: 2.0,
            burst: 20.0,
        };
        assert_eq!(table.take(draw, 0.0, 1_000), 20.0);
        assert_eq!(table.take(draw, 15.0, 1_000), 5.0);
        assert_eq!(table.take(draw, 10.0, 1_000), -5.0);
        assert_eq!(throttle_ms(-5.0, 2.0, 60_000), 2_500);
        // 2.5 s later it is back at zero; 10 s later at its burst.
        assert_eq!(table.take(draw, 0.0, 3_500), 0.0);
        assert_eq!(table.take(draw, 0.0, 100_000), 20.0);
        assert_eq!(throttle_ms(-1e9, 2.0, 60_000), 60_000);
    }

    /// Entities past the table's size share the overflow bucket until a
    /// bucket refills to its burst and is handed over.
    #[test]
    fn buckets_are_bounded_and_reused_when_full() {
        let table = BucketTable::new();
        let draw = |key| Draw {
            key,
            quota: 1.0,
            burst: 10.0,
        };
        for key in 1..=BUCKETS_MAX as u64 {
            table.take(draw(key), 5.0, 0);
        }
        // The overflow bucket starts empty, never full: shared, not free.
        assert!(table.take(draw(9_999), 1.0, 0) < 0.0);
        // Five seconds later every bucket is full again: one is reused.
        assert_eq!(table.take(draw(9_999), 1.0, 5_000), 9.0);
    }
}

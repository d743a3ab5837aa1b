//! Kafka's quota sensor (a `Rate` over `quota_window_num` samples of
//! `quota_window_size_seconds`) for every entity on this broker, shared by
//! all shards without a lock.
//!
//! Why atomics and not per-shard accounting: Kafka's quota is per broker,
//! and one client's connections land on any shard (SO_REUSEPORT). Per-shard
//! counts merged by periodic mesh messages would let a client that opens a
//! connection per core use up to cores x quota until the merge catches up,
//! and would cost a message per shard pair per period even when idle. Here
//! each entity is one slot of a fixed table: its samples are `AtomicU64`s
//! updated with one compare-and-swap per request, so every shard sees the
//! same rate at once; contention is only between connections of the same
//! entity, and the produce and fetch paths take no lock. The table is fixed
//! (`ENTITIES_MAX` slots, found by a bounded probe), so nothing grows.
//!
//! A slot's samples are aligned to the time its entity first recorded (its
//! origin: sample `w` covers `[origin + w * size, origin + (w + 1) * size)`),
//! as Kafka's first sample starts at the sensor's first record; a slot
//! needs no "current sample" pointer that shards would race on. The rate's
//! time span is Kafka's `Rate.windowSize`: `samples - 1` whole windows
//! plus the elapsed part of the current one (Kafka pads a young sensor to
//! that, and a busy one never spans more).
//!
//! What this gives a greedy client, as on Kafka: it gets a whole rate
//! window's quota (`samples x size x quota`) at the start of each rate
//! window and is muted for the rest of it, so its average over every whole
//! rate window is its quota.

use std::sync::atomic::{AtomicU64, Ordering};

/// Most samples a sensor keeps (bounds `quota_window_num`).
pub const SAMPLES_MAX: usize = 32;
/// Entities tracked at once per quota type. An entity idle for a whole
/// rate window (`samples x size`) gives its slot to the next one; when the
/// probe finds no free or idle slot, the entity is counted in the shared
/// overflow slot, so a flood of entities shares one budget rather than
/// escaping its quota.
pub const ENTITIES_MAX: usize = 1024;
/// Slots a lookup probes from an entity's hash before it overflows.
const PROBE_MAX: usize = 64;
/// The overflow slot, past the probed ones.
const OVERFLOW: usize = ENTITIES_MAX;

/// A sample packs its window number (low bits of it) and its value.
const WINDOW_BITS: u32 = 24;
const VALUE_BITS: u32 = 64 - WINDOW_BITS;
const VALUE_MAX: u64 = (1 << VALUE_BITS) - 1;
const WINDOW_MASK: u64 = (1 << WINDOW_BITS) - 1;

/// The sampling of a rate: Kafka's `quota.window.num` and
/// `quota.window.size.seconds` (here in milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub samples: u64,
    pub size_ms: u64,
}

impl Window {
    /// The longest a bandwidth throttle lasts: the whole rate window, after
    /// which every sample behind the throttle has expired anyway.
    pub fn bound_ms(&self) -> u64 {
        self.samples * self.size_ms
    }
}

struct Slot {
    /// The entity's sensor key (a hash, never 0); 0 while free.
    key: AtomicU64,
    /// When the entity first recorded here (clock ms): sample 0 starts then.
    origin_ms: AtomicU64,
    /// The last time this slot counted, to tell idle slots.
    last_ms: AtomicU64,
    samples: [AtomicU64; SAMPLES_MAX],
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            key: AtomicU64::new(0),
            origin_ms: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            samples: [const { AtomicU64::new(0) }; SAMPLES_MAX],
        }
    }
}

/// One quota type's sensors for the whole broker.
pub struct RateTable {
    slots: [Slot; ENTITIES_MAX + 1],
}

impl Default for RateTable {
    fn default() -> Self {
        RateTable::new()
    }
}

fn pack(window: u64, value: u64) -> u64 {
    ((window & WINDOW_MASK) << VALUE_BITS) | value.min(VALUE_MAX)
}

fn unpack(sample: u64) -> (u64, u64) {
    (sample >> VALUE_BITS, sample & VALUE_MAX)
}

/// The sensor key of a (user, client id) tag pair: FNV-1a, never 0. Two
/// entities whose hashes collide share a budget; at 64 bits that is left to
/// chance.
pub fn sensor_key(user: &str, client_id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.bytes().chain([0xff]).chain(client_id.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

impl RateTable {
    pub const fn new() -> RateTable {
        RateTable {
            slots: [const { Slot::new() }; ENTITIES_MAX + 1],
        }
    }

    /// Whether `slot` still counts for `key` (a cached slot may have been
    /// given to another entity after going idle). Never the overflow slot,
    /// so an overflowed entity looks for a slot of its own again.
    pub fn holds(&self, slot: usize, key: u64) -> bool {
        slot < OVERFLOW
            && self
                .slots
                .get(slot)
                .is_some_and(|s| s.key.load(Ordering::Relaxed) == key)
    }

    /// The slot that counts for `key`: its own, a free one, an idle one
    /// (reset first), or the shared overflow slot.
    pub fn slot(&self, key: u64, now_ms: u64, window: Window) -> usize {
        let span = window.samples * window.size_ms.max(1);
        let start = (key as usize) % ENTITIES_MAX;
        let probed = (0..PROBE_MAX).map(|i| (start + i) % ENTITIES_MAX);
        let mut claimable = None;
        for i in probed {
            let slot = &self.slots[i];
            let held = slot.key.load(Ordering::Relaxed);
            if held == key {
                return i;
            }
            let idle = now_ms.saturating_sub(slot.last_ms.load(Ordering::Relaxed)) >= span;
            if claimable.is_none() && (held == 0 || idle) {
                claimable = Some((i, held));
            }
        }
        let Some((i, held)) = claimable else {
            crate::stats::QUOTA_SENSOR_OVERFLOW.add(1);
            return OVERFLOW;
        };
        let slot = &self.slots[i];
        match slot
            .key
            .compare_exchange(held, key, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => {
                // An idle slot's samples are all older than the window. A
                // recorder racing this reset (the idle entity waking, or
                // the new one on another shard before the origin is set)
                // miscounts one request, which nobody can notice.
                for s in &slot.samples {
                    s.store(0, Ordering::Relaxed);
                }
                slot.origin_ms.store(now_ms, Ordering::Release);
                slot.last_ms.store(now_ms, Ordering::Relaxed);
                i
            }
            // Another shard claimed it first: look again (bounded, since
            // every retry finds the key or a slot claimed by someone).
            Err(now_held) if now_held == key => i,
            Err(_) => self.slot_once_more(key),
        }
    }

    /// A second look after a lost claim; overflow rather than loop.
    fn slot_once_more(&self, key: u64) -> usize {
        let start = (key as usize) % ENTITIES_MAX;
        (0..PROBE_MAX)
            .map(|i| (start + i) % ENTITIES_MAX)
            .find(|&i| self.slots[i].key.load(Ordering::Relaxed) == key)
            .unwrap_or(OVERFLOW)
    }

    /// Adds `amount` to the slot's current sample and returns the rate
    /// (amount per second) over the window, this amount included.
    pub fn record(&self, slot: usize, amount: u64, now_ms: u64, window: Window) -> Measured {
        let samples = window.samples.clamp(1, SAMPLES_MAX as u64);
        let size = window.size_ms.max(1);
        let slot = &self.slots[slot];
        let since_origin = now_ms.saturating_sub(slot.origin_ms.load(Ordering::Acquire));
        let now_window = since_origin / size;
        let tag = now_window & WINDOW_MASK;
        let current = &slot.samples[(now_window % samples) as usize];
        let _ = current.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |old| {
            let (w, v) = unpack(old);
            Some(if w == tag {
                pack(tag, v.saturating_add(amount))
            } else {
                pack(tag, amount)
            })
        });
        slot.last_ms.fetch_max(now_ms, Ordering::Relaxed);
        let total: u64 = slot.samples[..samples as usize]
            .iter()
            .map(|s| unpack(s.load(Ordering::Acquire)))
            .filter(|(w, _)| (tag.wrapping_sub(*w) & WINDOW_MASK) < samples)
            .map(|(_, v)| v)
            .sum();
        let elapsed_ms = span_ms(samples, size, since_origin);
        Measured {
            rate: total as f64 * 1000.0 / elapsed_ms as f64,
            span_ms: elapsed_ms,
        }
    }
}

impl RateTable {
    /// Takes `amount` back off what the slot recorded lately (Kafka's
    /// `unrecordQuotaSensor`): off the current sample, or the one before
    /// if the sample window turned since the record. Never below zero, so a
    /// stale uncharge can only leave a little too much counted.
    pub fn unrecord(&self, slot: usize, amount: u64, now_ms: u64, window: Window) {
        let samples = window.samples.clamp(1, SAMPLES_MAX as u64);
        let size = window.size_ms.max(1);
        let slot = &self.slots[slot];
        let since_origin = now_ms.saturating_sub(slot.origin_ms.load(Ordering::Acquire));
        let now_window = since_origin / size;
        for w in [now_window, now_window.saturating_sub(1)] {
            let tag = w & WINDOW_MASK;
            let sample = &slot.samples[(w % samples) as usize];
            let taken = sample.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |old| {
                let (have, v) = unpack(old);
                (have == tag && v > 0).then(|| pack(tag, v.saturating_sub(amount)))
            });
            if taken.is_ok() {
                return;
            }
        }
    }
}

/// A sensor's rate right after a record, and the span it was taken over.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// Amount per second.
    pub rate: f64,
    pub span_ms: u64,
}

/// Kafka's `Rate.windowSize` for samples aligned at the origin.
fn span_ms(samples: u64, size: u64, since_origin: u64) -> u64 {
    ((samples - 1) * size + since_origin % size).max(1)
}

/// Kafka's `QuotaUtils.throttleTime`: how long the client must stay quiet
/// for its rate to come back to the quota, `(rate - quota) / quota x span`,
/// at most `bound_ms`. Zero while the rate is within the quota.
pub fn throttle_ms(measured: Measured, quota: f64, bound_ms: u64) -> u64 {
    if measured.rate <= quota {
        return 0;
    }
    if quota <= 0.0 {
        return bound_ms;
    }
    let ms = ((measured.rate - quota) / quota * measured.span_ms as f64).round();
    (ms as u64).min(bound_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAFKA: Window = Window {
        samples: 11,
        size_ms: 1000,
    };

    /// A greedy client that sends whenever it is not throttled gets its
    /// quota on average over whole rate windows from its first request.
    #[test]
    fn a_greedy_client_averages_its_quota() {
        let quota = 100_000.0;
        // A request is 1% of a second's quota: each muted window still
        // lets one in (as on Kafka), so larger ones overshoot by as much.
        let chunk = 1_000;
        let start = 123_456_789u64;
        for windows in [1, 2, 4] {
            let table = Box::new(RateTable::new());
            let slot = table.slot(sensor_key("u", "c"), start, KAFKA);
            let (mut now, mut sent) = (start, 0u64);
            let span = windows * KAFKA.bound_ms();
            while now < start + span {
                let measured = table.record(slot, chunk, now, KAFKA);
                sent += chunk;
                now += throttle_ms(measured, quota, KAFKA.bound_ms()).max(1);
            }
            let observed = sent as f64 * 1000.0 / span as f64;
            assert!(
                (observed - quota).abs() / quota < 0.02,
                "{windows} windows: observed {observed} per second against {quota}"
            );
        }
    }

    #[test]
    fn within_the_quota_nothing_is_throttled() {
        let table = Box::new(RateTable::new());
        let slot = table.slot(7, 5_000, KAFKA);
        let measured = table.record(slot, 1000, 5_000, KAFKA);
        // A young sensor's span is padded to 10 whole windows, as Kafka's.
        assert_eq!(measured.span_ms, 10_000);
        assert!((measured.rate - 100.0).abs() < 1.0, "{measured:?}");
        assert_eq!(throttle_ms(measured, 1000.0, 11_000), 0);
        // 11 windows' worth in the first one: 1 s over; 20 times the quota:
        // 190 s of silence, bounded.
        let over = table.record(slot, 10_000, 5_000, KAFKA);
        assert_eq!(throttle_ms(over, 1000.0, 11_000), 1_000);
        let far = Measured {
            rate: 20_000.0,
            span_ms: 10_000,
        };
        assert_eq!(throttle_ms(far, 1000.0, 11_000), 11_000);
    }

    /// An unrecorded amount no longer counts in the rate.
    #[test]
    fn unrecord_takes_an_amount_back() {
        let table = Box::new(RateTable::new());
        let slot = table.slot(9, 1_000, KAFKA);
        table.record(slot, 500, 1_000, KAFKA);
        table.record(slot, 10_000, 1_200, KAFKA);
        table.unrecord(slot, 10_000, 1_300, KAFKA);
        let measured = table.record(slot, 0, 1_300, KAFKA);
        let left = 500.0 * 1000.0 / measured.span_ms as f64;
        assert!((measured.rate - left).abs() < 0.01, "{measured:?}");
    }

    /// Entities beyond the probe's reach share the overflow slot; an idle
    /// entity's slot goes to the next one, reset.
    #[test]
    fn slots_are_bounded_and_reused_when_idle() {
        let table = Box::new(RateTable::new());
        // Keys that all start their probe at slot 0.
        let keys: Vec<u64> = (1..=PROBE_MAX as u64 + 1)
            .map(|i| i * ENTITIES_MAX as u64)
            .collect();
        for (i, k) in keys.iter().take(PROBE_MAX).enumerate() {
            assert_eq!(table.slot(*k, 0, KAFKA), i);
            table.record(i, 10, 0, KAFKA);
        }
        assert_eq!(table.slot(keys[PROBE_MAX], 0, KAFKA), OVERFLOW);
        // A whole rate window later every slot is idle: the newcomer gets one.
        let later = KAFKA.bound_ms();
        let slot = table.slot(keys[PROBE_MAX], later, KAFKA);
        assert!(slot < ENTITIES_MAX);
        assert!(!table.holds(slot, keys[0]), "the idle entity lost its slot");
        let measured = table.record(slot, 0, later, KAFKA);
        assert_eq!(measured.rate, 0.0, "a reused slot starts empty");
    }
}

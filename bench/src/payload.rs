//! Message bytes: a fixed header carrying the intended send time, then filler
//! from a small pool of distinct bodies.
//!
//! Producer and consumers run in one process, so times are nanoseconds on one
//! monotonic clock ([`Clock`]), not wall time: end-to-end latency is immune to
//! clock steps.

use std::time::Instant;

use crate::datasets::{self, SplitMix64};
use crate::workload::PayloadKind;

/// `magic (4) | run tag (4) | intended send time, ns since the run epoch (8)`.
pub const HEADER_BYTES: usize = 16;
const MAGIC: [u8; 4] = *b"SLB1";

/// The run's monotonic epoch; every timestamp in a run is relative to it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Sleeps until `ns` on this clock (returns at once if it has passed).
    pub fn sleep_until(&self, ns: u64) {
        let now = self.now_ns();
        if ns > now {
            std::thread::sleep(std::time::Duration::from_nanos(ns - now));
        }
    }
}

/// Bound on one producer's pool of messages, so memory stays small; a
/// message larger than this gets a pool of one.
pub const POOL_BYTES_MAX: usize = 4 * 1024 * 1024;
/// At most this many distinct bodies; a batch longer than this repeats them,
/// which only helps compressors whose window spans the repeat.
pub const POOL_BODIES_MAX: usize = 256;
/// Shortest line `datasets::log_lines` makes, with room to spare: enough
/// lines are generated to fill the pool without repeating.
const LOG_LINE_BYTES_MIN: usize = 64;

/// A pool of distinct messages, headers filled in, stamped in turn.
///
/// Distinct bodies keep a batch of messages from compressing far better than
/// real traffic would: with one template, only the header would differ.
pub struct Payload {
    /// `count` messages of `size` bytes, back to back.
    bytes: Vec<u8>,
    size: usize,
    count: usize,
    next: usize,
}

impl Payload {
    pub fn new(size: usize, kind: PayloadKind, run_tag: u32, seed: u64) -> Payload {
        assert!(size >= HEADER_BYTES);
        let count = pool_count(size);
        let body_len = size - HEADER_BYTES;
        let filler = bodies(kind, count * body_len, seed);
        let mut bytes = vec![0u8; count * size];
        for (i, msg) in bytes.chunks_mut(size).enumerate() {
            msg[..4].copy_from_slice(&MAGIC);
            msg[4..8].copy_from_slice(&run_tag.to_le_bytes());
            msg[HEADER_BYTES..].copy_from_slice(&filler[i * body_len..(i + 1) * body_len]);
        }
        Payload {
            bytes,
            size,
            count,
            next: 0,
        }
    }

    /// The next message of the pool stamped with `intended_ns`.
    pub fn stamp(&mut self, intended_ns: u64) -> &[u8] {
        let start = self.next * self.size;
        self.next = (self.next + 1) % self.count;
        let msg = &mut self.bytes[start..start + self.size];
        msg[8..16].copy_from_slice(&intended_ns.to_le_bytes());
        msg
    }
}

/// Bodies in the pool: as many as fit in [`POOL_BYTES_MAX`], 1..=[`POOL_BODIES_MAX`].
fn pool_count(size: usize) -> usize {
    (POOL_BYTES_MAX / size).clamp(1, POOL_BODIES_MAX)
}

/// `len` bytes of filler, cut into bodies by the caller. Text is one
/// continuous log stream, so consecutive messages read like consecutive
/// pieces of a log, as a log shipper would send them.
fn bodies(kind: PayloadKind, len: usize, seed: u64) -> Vec<u8> {
    match kind {
        PayloadKind::Random => {
            let mut out = vec![0u8; len];
            SplitMix64::new(seed).fill(&mut out);
            out
        }
        PayloadKind::Text => {
            let text = datasets::log_lines(len / LOG_LINE_BYTES_MIN + 1, seed).concat();
            // Cycling only guards the impossible short case; never panics.
            text.iter().copied().cycle().take(len).collect()
        }
    }
}

/// The intended send time of a message of this run, or `None` for foreign or
/// truncated messages.
pub fn decode(bytes: &[u8], run_tag: u32) -> Option<u64> {
    if bytes.len() < HEADER_BYTES || bytes[..4] != MAGIC {
        return None;
    }
    if u32::from_le_bytes(bytes[4..8].try_into().ok()?) != run_tag {
        return None;
    }
    Some(u64::from_le_bytes(bytes[8..16].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_then_decode_round_trips() {
        for kind in [PayloadKind::Random, PayloadKind::Text] {
            let mut p = Payload::new(100, kind, 7, 1);
            let bytes = p.stamp(123_456_789).to_vec();
            assert_eq!(bytes.len(), 100);
            assert_eq!(decode(&bytes, 7), Some(123_456_789));
            assert_eq!(decode(&bytes, 8), None, "other run");
            assert_eq!(decode(&bytes[..10], 7), None, "truncated");
        }
    }

    #[test]
    fn consecutive_messages_differ_beyond_the_header() {
        for kind in [PayloadKind::Text, PayloadKind::Random] {
            let mut p = Payload::new(1024, kind, 7, 1);
            let first = p.stamp(1).to_vec();
            let second = p.stamp(2).to_vec();
            assert_ne!(first[HEADER_BYTES..], second[HEADER_BYTES..], "{kind:?}");
            assert_eq!(decode(&second, 7), Some(2));
        }
        let mut text = Payload::new(1024, PayloadKind::Text, 7, 1);
        assert!(text.stamp(0)[HEADER_BYTES..].is_ascii());
    }

    #[test]
    fn pool_is_bounded_and_cycles() {
        assert_eq!(pool_count(1024), POOL_BODIES_MAX);
        assert_eq!(pool_count(1024 * 1024), POOL_BYTES_MAX / (1024 * 1024));
        assert_eq!(pool_count(16 * 1024 * 1024), 1);
        let mut p = Payload::new(HEADER_BYTES, PayloadKind::Text, 3, 1);
        assert_eq!(decode(p.stamp(5), 3), Some(5));
        let mut p = Payload::new(POOL_BYTES_MAX, PayloadKind::Random, 3, 1);
        let first = p.stamp(1).to_vec();
        assert_eq!(p.stamp(1), &first[..], "a pool of one repeats");
    }
}

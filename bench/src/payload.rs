//! Message bytes: a fixed header carrying the intended send time, then filler.
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

/// A message template: filler fixed once, header rewritten per message.
pub struct Payload {
    bytes: Vec<u8>,
}

impl Payload {
    pub fn new(size: usize, kind: PayloadKind, run_tag: u32, seed: u64) -> Payload {
        assert!(size >= HEADER_BYTES);
        let mut bytes = vec![0u8; size];
        bytes[..4].copy_from_slice(&MAGIC);
        bytes[4..8].copy_from_slice(&run_tag.to_le_bytes());
        let body = &mut bytes[HEADER_BYTES..];
        match kind {
            PayloadKind::Random => SplitMix64::new(seed).fill(body),
            PayloadKind::Text => {
                let text = datasets::log_lines(body.len() / 64 + 1, seed).concat();
                body.copy_from_slice(&text[..body.len()]);
            }
        }
        Payload { bytes }
    }

    /// The message bytes stamped with `intended_ns`.
    pub fn stamp(&mut self, intended_ns: u64) -> &[u8] {
        self.bytes[8..16].copy_from_slice(&intended_ns.to_le_bytes());
        &self.bytes
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
}

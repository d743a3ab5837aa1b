//! Replication throttles (Kafka's KIP-73), what `kafka-reassign-partitions.sh
//! --throttle` sets so that a move copies its log without starving
//! producers and consumers of the network.
//!
//! The configs (`throttle_configs`) name the throttled replicas of each
//! topic, leaders and followers, and give each broker a rate for what its
//! throttled leaders send and one for what its throttled followers take
//! in. A replica in the ISR is never throttled
//! (it keeps up already, and acks=all waits on it). Over its rate, a
//! leader answers a throttled follower with no records, and a follower
//! leaves its throttled partitions out of its fetches, until the rate is
//! back under; the bytes of throttled partitions count against it.
//!
//! Each shard serves and fetches its own partitions, so each holds an
//! equal share of its broker's rates: no lock, no cross-shard traffic.

use std::time::{Duration, Instant};

use crate::broker_configs::BrokerConfigs;
use crate::throttle_configs::{FOLLOWER_RATE, LEADER_RATE};

/// How much a quiet quota may send at once: a second at its rate.
pub const BURST: Duration = Duration::from_secs(1);

/// One shard's share of one broker rate: a token bucket that holds at most
/// [`BURST`] worth of bytes and may go into debt by the bytes of one
/// answer, which the rate then pays back.
#[derive(Debug)]
pub struct Quota {
    /// Bytes per second; `None`: unthrottled.
    rate: Option<u64>,
    /// Bytes that may go now; negative while paying back.
    balance: f64,
    refilled: Instant,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota {
            rate: None,
            balance: 0.0,
            refilled: Instant::now(),
        }
    }
}

impl Quota {
    /// The broker's `rate` (`None`: unset), shared by `shards`.
    pub fn set_rate(&mut self, rate: Option<u64>, shards: usize) {
        assert!(shards >= 1, "a broker has shards");
        let share = rate.map(|r| r / shards as u64);
        if share != self.rate {
            self.rate = share;
            self.balance = self.balance.min(self.cap());
        }
    }

    /// Whether a rate is set at all (else nothing is throttled).
    pub fn is_set(&self) -> bool {
        self.rate.is_some()
    }

    fn cap(&self) -> f64 {
        self.rate.map_or(0.0, |r| r as f64 * BURST.as_secs_f64())
    }

    fn refill(&mut self, now: Instant) {
        let Some(rate) = self.rate else {
            return;
        };
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.balance = (self.balance + rate as f64 * elapsed).min(self.cap());
    }

    /// Whether throttled replicas must wait now.
    pub fn exceeded(&mut self, now: Instant) -> bool {
        if self.rate.is_none() {
            return false;
        }
        self.refill(now);
        self.balance < 0.0
    }

    /// `bytes` of throttled replicas went through.
    pub fn record(&mut self, bytes: u64, now: Instant) {
        if self.rate.is_none() {
            return;
        }
        self.refill(now);
        self.balance -= bytes as f64;
    }
}

/// A shard's two quotas: what its throttled leaders send, what its
/// throttled followers take in.
#[derive(Debug, Default)]
pub struct Quotas {
    pub leader: Quota,
    pub follower: Quota,
}

impl Quotas {
    /// Takes broker `node`'s rates from the dynamic broker configs.
    pub fn set_rates(&mut self, configs: &BrokerConfigs, node: i32, shards: usize) {
        self.leader
            .set_rate(configs.replication_rate(node, LEADER_RATE), shards);
        self.follower
            .set_rate(configs.replication_rate(node, FOLLOWER_RATE), shards);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_pays_back_its_debt_at_its_rate() {
        let start = Instant::now();
        let mut q = Quota::default();
        assert!(!q.exceeded(start), "unset: never");
        q.set_rate(Some(2_000), 2);
        assert!(!q.exceeded(start));
        q.record(1_500, start);
        assert!(q.exceeded(start), "1,500 bytes over a 1,000 B/s share");
        assert!(q.exceeded(start + Duration::from_millis(1_400)));
        assert!(!q.exceeded(start + Duration::from_millis(1_600)));
        // A long quiet spell saves at most a second's worth.
        let later = start + Duration::from_secs(60);
        q.record(1_000, later);
        assert!(!q.exceeded(later));
        q.record(1, later);
        assert!(q.exceeded(later));
        q.set_rate(None, 2);
        assert!(!q.exceeded(later), "unset again: never");
    }
}

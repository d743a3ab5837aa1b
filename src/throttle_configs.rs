//! The replication throttle configs (Kafka's KIP-73): their names and how
//! their values parse. What they do is `replication::throttle`.
//!
//! Two topic configs name the throttled replicas, as `partition:broker`
//! lists or `*`: `leader.replication.throttled.replicas` the leaders that
//! send slowly, `follower.replication.throttled.replicas` the followers
//! that fetch slowly. Two broker configs give each broker's rate in bytes
//! per second: `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate`.

use std::collections::BTreeSet;

/// Kafka's topic config names.
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";
/// Kafka's broker config names.
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";

/// The replicas one throttled-replicas config names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ThrottledReplicas {
    #[default]
    None,
    /// `*`: every replica of the topic.
    All,
    /// (partition, broker) pairs.
    Listed(BTreeSet<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Parses Kafka's value: `*`, or `partition:broker` items separated by
    /// commas (blank: none).
    pub fn parse(value: &str) -> Result<ThrottledReplicas, &'static str> {
        const EXPECTED: &str = "expected * or a list of partition:broker";
        let value = value.trim();
        if value == "*" {
            return Ok(ThrottledReplicas::All);
        }
        let mut listed = BTreeSet::new();
        for item in crate::config::list_items(value) {
            let (partition, broker) = item.split_once(':').ok_or(EXPECTED)?;
            let number = |s: &str| {
                s.trim()
                    .parse::<u32>()
                    .ok()
                    .and_then(|n| i32::try_from(n).ok())
            };
            match (number(partition), number(broker)) {
                (Some(p), Some(b)) => listed.insert((p, b)),
                _ => return Err(EXPECTED),
            };
        }
        Ok(if listed.is_empty() {
            ThrottledReplicas::None
        } else {
            ThrottledReplicas::Listed(listed)
        })
    }

    /// Whether the replica of `partition` on `broker` is named.
    pub fn contains(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::None => false,
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(l) => l.contains(&(partition, broker)),
        }
    }
}

/// Parses a rate config: bytes per second, at least 0.
pub fn parse_rate(value: &str) -> Result<u64, &'static str> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|&r| r <= i64::MAX as u64)
        .ok_or("expected a number of bytes per second, at least 0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_star_or_partition_broker_pairs() {
        assert_eq!(ThrottledReplicas::parse("*"), Ok(ThrottledReplicas::All));
        assert_eq!(ThrottledReplicas::parse(""), Ok(ThrottledReplicas::None));
        let listed = ThrottledReplicas::parse("0:1, 0:2,3:1").unwrap();
        assert!(listed.contains(0, 2) && listed.contains(3, 1));
        assert!(!listed.contains(1, 1) && !listed.contains(0, 3));
        for bad in ["0", "a:1", "0:-1", "*,0:1", "0:1,,1:1", "0:1:2"] {
            assert!(ThrottledReplicas::parse(bad).is_err(), "{bad}");
        }
        assert!(ThrottledReplicas::All.contains(7, 9));
        assert!(!ThrottledReplicas::None.contains(0, 0));
    }

    #[test]
    fn rates_are_whole_non_negative_numbers() {
        assert_eq!(parse_rate("1048576"), Ok(1_048_576));
        assert_eq!(parse_rate("0"), Ok(0));
        for bad in ["-1", "1.5", "", "x", "9223372036854775808"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}

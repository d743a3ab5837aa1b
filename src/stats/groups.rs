//! The consumer groups coordinated here: their members, committed
//! offsets and lag (what kafka_exporter and Redpanda export, which
//! Kafka's broker does not). Published by each shard's coordinator every
//! `metrics_refresh_ms`.
//!
//! Lag is counted where both ends are known: a partition led by this
//! broker, against its high watermark. A one-node broker leads them all;
//! in a cluster the whole lag is the join, in PromQL, of the coordinator's
//! `sluice_consumer_group_committed_offset` with the leaders'
//! `sluice_partition_high_watermark`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use super::escape_label;
use super::published::Published;

/// One group this broker coordinates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupGauge {
    pub group: String,
    /// Classic, consumer protocol and share members together.
    pub members: usize,
    /// Committed offsets by topic and partition.
    pub offsets: Vec<(Arc<str>, i32, i64)>,
}

static GROUPS: Published<GroupGauge> = Published::new();

/// Replaces the groups `shard` coordinates, as published last.
pub fn publish_groups(shard: usize, groups: Vec<GroupGauge>) {
    GROUPS.publish(shard, groups);
}

/// Every shard's groups, by id.
pub(super) fn snapshot() -> Vec<GroupGauge> {
    let mut groups = GROUPS.snapshot();
    groups.sort_unstable_by(|a, b| a.group.cmp(&b.group));
    groups
}

/// The committed offsets behind the high watermark of a partition led here.
fn lags<'a>(
    group: &'a GroupGauge,
    led: &'a BTreeMap<(&str, i32), i64>,
) -> impl Iterator<Item = (&'a str, i32, u64)> + 'a {
    group
        .offsets
        .iter()
        .filter_map(|(topic, partition, offset)| {
            let high_watermark = led.get(&(&**topic, *partition))?;
            Some((
                &**topic,
                *partition,
                high_watermark.saturating_sub(*offset).max(0) as u64,
            ))
        })
}

/// Members, and lag summed and at most per group, always; the committed
/// offsets and lag per partition when `per_partition`.
pub(super) fn render(
    out: &mut String,
    groups: &[GroupGauge],
    led: &BTreeMap<(&str, i32), i64>,
    per_partition: bool,
) {
    let header = |out: &mut String, name: &str, help: &str| super::header(out, name, help, "gauge");
    header(
        out,
        "sluice_consumer_group_members",
        "Members of a group this broker coordinates.",
    );
    for g in groups {
        let _ = writeln!(
            out,
            "sluice_consumer_group_members{{group=\"{}\"}} {}",
            escape_label(&g.group),
            g.members
        );
    }
    type Aggregate = (&'static str, &'static str, fn(u64, u64) -> u64);
    const AGGREGATES: [Aggregate; 2] = [
        (
            "sluice_consumer_group_lag_sum",
            "Records behind the high watermark, summed over the group's committed partitions this broker leads.",
            |a, b| a + b,
        ),
        (
            "sluice_consumer_group_lag_max",
            "Records behind the high watermark, the most of the group's committed partitions this broker leads.",
            u64::max,
        ),
    ];
    for (name, help, fold) in AGGREGATES {
        header(out, name, help);
        for g in groups {
            let lag = lags(g, led).map(|(_, _, lag)| lag).reduce(fold);
            if let Some(lag) = lag {
                let _ = writeln!(out, "{name}{{group=\"{}\"}} {lag}", escape_label(&g.group));
            }
        }
    }
    if !per_partition {
        return;
    }
    let name = "sluice_consumer_group_committed_offset";
    header(out, name, "The group's committed offset for the partition.");
    for g in groups {
        let group = escape_label(&g.group);
        for (topic, partition, offset) in &g.offsets {
            let _ = writeln!(
                out,
                "{name}{{group=\"{group}\",topic=\"{topic}\",partition=\"{partition}\"}} {offset}"
            );
        }
    }
    let name = "sluice_consumer_group_lag";
    header(
        out,
        name,
        "Records behind the high watermark of a partition this broker leads.",
    );
    for g in groups {
        let group = escape_label(&g.group);
        for (topic, partition, lag) in lags(g, led) {
            let _ = writeln!(
                out,
                "{name}{{group=\"{group}\",topic=\"{topic}\",partition=\"{partition}\"}} {lag}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, offsets: &[(&str, i32, i64)]) -> GroupGauge {
        GroupGauge {
            group: id.to_string(),
            members: 2,
            offsets: offsets
                .iter()
                .map(|&(t, p, o)| (Arc::from(t), p, o))
                .collect(),
        }
    }

    #[test]
    fn lag_is_counted_only_against_partitions_led_here() {
        let led = BTreeMap::from([(("t", 0), 100), (("t", 1), 40)]);
        // Partition 2 is led elsewhere; a commit past a truncated high
        // watermark is no lag, not a negative one.
        let g = group("g", &[("t", 0, 70), ("t", 1, 45), ("t", 2, 0)]);
        let lags: Vec<_> = lags(&g, &led).collect();
        assert_eq!(lags, [("t", 0, 30), ("t", 1, 0)]);

        let mut out = String::new();
        render(&mut out, &[g], &led, true);
        for line in [
            "sluice_consumer_group_members{group=\"g\"} 2",
            "sluice_consumer_group_lag_sum{group=\"g\"} 30",
            "sluice_consumer_group_lag_max{group=\"g\"} 30",
            "sluice_consumer_group_committed_offset{group=\"g\",topic=\"t\",partition=\"2\"} 0",
            "sluice_consumer_group_lag{group=\"g\",topic=\"t\",partition=\"0\"} 30",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
        assert!(
            !out.contains("sluice_consumer_group_lag{group=\"g\",topic=\"t\",partition=\"2\"}"),
            "{out}"
        );
    }

    #[test]
    fn a_group_with_nothing_led_here_has_no_lag_and_sums_stay_when_capped() {
        let led = BTreeMap::new();
        let mut out = String::new();
        render(&mut out, &[group("a\"b", &[("t", 0, 5)])], &led, false);
        assert!(!out.contains("sluice_consumer_group_lag_sum{"), "{out}");
        assert!(!out.contains("committed_offset{"), "{out}");
        assert!(
            out.contains("sluice_consumer_group_members{group=\"a\\\"b\"} 2"),
            "{out}"
        );
    }
}

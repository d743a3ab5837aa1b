//! What `/metrics` shows of the groups this shard coordinates: members
//! and committed offsets, published every `metrics_refresh_ms` for a
//! scrape to read without asking the shard.

use std::sync::Arc;

use crate::stats::GroupGauge;

use super::Coordinator;

impl Coordinator {
    /// Publishes every group with members or committed offsets.
    pub fn publish_group_gauges(&self) {
        let groups: Vec<GroupGauge> = self
            .groups
            .borrow()
            .values()
            .map(|g| GroupGauge {
                group: g.id.clone(),
                members: g.members.len()
                    + g.consumer.as_ref().map_or(0, |c| c.members.len())
                    + g.share.as_ref().map_or(0, |s| s.members.len()),
                offsets: g
                    .offsets
                    .iter()
                    .map(|((topic, partition), c)| {
                        (Arc::from(topic.as_str()), *partition, c.offset)
                    })
                    .collect(),
            })
            .filter(|g| g.members > 0 || !g.offsets.is_empty())
            .collect();
        crate::stats::publish_groups(self.shard().id, groups);
    }
}

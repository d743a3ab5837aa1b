//! Partition health as operators alert on it, from a topics snapshot:
//! Kafka's ReplicaManager gauges for the partitions this broker leads
//! (UnderReplicatedPartitions, UnderMinIsrPartitionCount,
//! AtMinIsrPartitionCount, LeaderCount, PartitionCount) and, on the active
//! controller alone, its cluster gauges (ActiveControllerCount,
//! OfflinePartitionsCount, PreferredReplicaImbalanceCount,
//! ActiveBrokerCount, FencedBrokerCount), so an alert summed over brokers
//! counts each partition once.

use super::Topics;
use crate::config::BrokerConfig;
use crate::controller::image::NO_LEADER;

/// The gauges of one broker at one snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Replicas this broker holds.
    pub replicas: usize,
    /// Partitions it leads.
    pub leaders: usize,
    /// Led here, with fewer in-sync replicas than replicas (a replica being
    /// added by a reassignment not counted, as Kafka counts it).
    pub under_replicated: usize,
    /// Led here, with fewer in-sync replicas than `min.insync.replicas`:
    /// acks=all produces are refused.
    pub under_min_isr: usize,
    /// Led here, with exactly `min.insync.replicas` in sync: one more loss
    /// refuses acks=all produces.
    pub at_min_isr: usize,
    /// The controller's view, on the active controller (and a one-node
    /// broker) only.
    pub controller: Option<ControllerHealth>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControllerHealth {
    /// Partitions with no leader.
    pub offline: usize,
    /// Partitions led by another replica than their first (preferred) one.
    pub preferred_imbalance: usize,
    pub active_brokers: usize,
    pub fenced_brokers: usize,
    /// Topics and partitions in the cluster (Kafka's GlobalTopicCount,
    /// GlobalPartitionCount).
    pub topics: usize,
    pub partitions: usize,
}

impl Health {
    /// The gauges of node `node`; `active_controller`: whether it is the
    /// quorum's leader (a one-node broker is its own controller).
    pub fn of(
        topics: &Topics,
        broker: &BrokerConfig,
        node: i32,
        active_controller: bool,
    ) -> Health {
        let min_isr = |topic: &str| {
            topics.get(topic).map_or(1, |t| {
                t.parsed(broker, &topics.broker_configs).min_insync_replicas
            })
        };
        let Some(view) = topics.cluster.as_deref() else {
            // One node: it holds and leads every partition, alone in sync.
            let mut h = Health {
                controller: Some(ControllerHealth {
                    active_brokers: 1,
                    topics: topics.topics.len(),
                    partitions: topics.topics.values().map(|t| t.partitions as usize).sum(),
                    ..ControllerHealth::default()
                }),
                ..Health::default()
            };
            for t in topics.topics.values() {
                let min = min_isr(&t.name);
                for _ in 0..t.partitions {
                    h.replicas += 1;
                    h.led(1, 1, min);
                }
            }
            return h;
        };
        let image = &view.image;
        let mut h = Health::default();
        let mut controller = ControllerHealth {
            active_brokers: image.live_brokers().count(),
            fenced_brokers: image.brokers.values().filter(|b| b.fenced).count(),
            topics: image.topics.len(),
            partitions: image.topics.values().map(|t| t.partitions.len()).sum(),
            ..ControllerHealth::default()
        };
        for (name, topic) in &image.topics {
            let min = min_isr(name);
            for (p, state) in topic.partitions.iter().enumerate() {
                if state.leader == NO_LEADER {
                    controller.offline += 1;
                } else if state.replicas.first() != Some(&state.leader) {
                    controller.preferred_imbalance += 1;
                }
                if state.replicas.contains(&node) {
                    h.replicas += 1;
                }
                if state.leader != node {
                    continue;
                }
                let adding = image
                    .reassignments
                    .get(name)
                    .and_then(|r| r.get(&(p as i32)))
                    .map_or(0, |r| r.adding.len());
                h.led(
                    state.isr.len(),
                    state.replicas.len().saturating_sub(adding),
                    min,
                );
            }
        }
        h.controller = active_controller.then_some(controller);
        h
    }

    /// Counts a partition led here with `in_sync` of its `replicas` in sync.
    fn led(&mut self, in_sync: usize, replicas: usize, min_isr: usize) {
        self.leaders += 1;
        if in_sync < replicas {
            self.under_replicated += 1;
        }
        if in_sync < min_isr {
            self.under_min_isr += 1;
        } else if in_sync == min_isr {
            self.at_min_isr += 1;
        }
    }

    /// As Prometheus gauges.
    pub fn render(&self, out: &mut String) {
        let controller = self.controller.unwrap_or_default();
        let active = u64::from(self.controller.is_some());
        let gauges: [(&str, &str, u64); 12] = [
            ("sluice_partition_replicas", "Partition replicas this broker holds.", self.replicas as u64),
            ("sluice_partition_leaders", "Partitions this broker leads.", self.leaders as u64),
            ("sluice_under_replicated_partitions", "Partitions led here with fewer in-sync replicas than replicas.", self.under_replicated as u64),
            ("sluice_under_min_isr_partitions", "Partitions led here with fewer in-sync replicas than min.insync.replicas: acks=all produces are refused.", self.under_min_isr as u64),
            ("sluice_at_min_isr_partitions", "Partitions led here with exactly min.insync.replicas in sync.", self.at_min_isr as u64),
            ("sluice_active_controller", "1 on the active controller (and a one-node broker), else 0.", active),
            ("sluice_offline_partitions", "Partitions with no leader (counted by the active controller alone).", controller.offline as u64),
            ("sluice_preferred_replica_imbalance", "Partitions not led by their preferred replica (counted by the active controller alone).", controller.preferred_imbalance as u64),
            ("sluice_active_brokers", "Registered, unfenced brokers (counted by the active controller alone).", controller.active_brokers as u64),
            ("sluice_fenced_brokers", "Registered, fenced brokers (counted by the active controller alone).", controller.fenced_brokers as u64),
            ("sluice_global_topics", "Topics in the cluster, internal ones included (counted by the active controller alone).", controller.topics as u64),
            ("sluice_global_partitions", "Partitions in the cluster, internal ones included (counted by the active controller alone).", controller.partitions as u64),
        ];
        for (name, help, value) in gauges {
            crate::stats::scalar(out, name, help, "gauge", value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::TopicMeta;
    use std::sync::Arc;

    #[test]
    fn a_one_node_broker_leads_everything_alone() {
        let mut topics = Topics::default();
        for (name, partitions, min_isr) in [("a", 3, None), ("b", 2, Some("2"))] {
            let meta = TopicMeta {
                name: name.into(),
                id: "1".into(),
                partitions,
                configs: min_isr
                    .map(|m| ("min.insync.replicas".to_string(), m.to_string()))
                    .into_iter()
                    .collect(),
                parsed: Default::default(),
            };
            topics.topics.insert(name.into(), Arc::new(meta));
        }
        let h = Health::of(&topics, &BrokerConfig::default(), 0, false);
        assert_eq!((h.replicas, h.leaders, h.under_replicated), (5, 5, 0));
        assert_eq!((h.at_min_isr, h.under_min_isr), (3, 2));
        assert_eq!(
            h.controller,
            Some(ControllerHealth {
                active_brokers: 1,
                topics: 2,
                partitions: 5,
                ..Default::default()
            })
        );
        let mut out = String::new();
        h.render(&mut out);
        assert!(
            out.contains("\nsluice_under_min_isr_partitions 2\n"),
            "{out}"
        );
        assert!(out.contains("\nsluice_active_controller 1\n"), "{out}");
        assert!(out.contains("\nsluice_global_partitions 5\n"), "{out}");
    }
}

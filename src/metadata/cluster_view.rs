//! The cluster image as the shards read it: a `Topics` snapshot built from
//! the applied metadata log, carrying the image itself for leadership and
//! brokers. In a one-node cluster (no voter list) there is no image and
//! this node leads everything.

use std::sync::Arc;

use super::{TopicMeta, Topics};
use crate::broker_configs::BrokerConfigs;
use crate::controller::image::{ClusterImage, PartitionState};

/// The applied image a `Topics` snapshot was built from.
#[derive(Debug)]
pub struct ClusterView {
    /// Index of the last metadata record applied into `image`.
    pub index: u64,
    pub image: Arc<ClusterImage>,
    /// This node, which serves only what the image gives it.
    pub node_id: i32,
}

impl ClusterView {
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.image.partition(topic, partition)
    }

    /// Whether this node leads the partition.
    pub fn leads(&self, topic: &str, partition: i32) -> bool {
        self.partition(topic, partition)
            .is_some_and(|p| p.leader == self.node_id)
    }

    /// Whether this node holds a replica of the partition (a log to open).
    pub fn hosts(&self, topic: &str, partition: i32) -> bool {
        self.partition(topic, partition)
            .is_some_and(|p| p.replicas.contains(&self.node_id))
    }
}

/// The `Topics` snapshot for `image` at `index`: every topic with its
/// partition count and configs, versioned by the log index.
pub fn topics_from_image(index: u64, image: Arc<ClusterImage>, node_id: i32) -> Topics {
    let topics = image
        .topics
        .values()
        .map(|t| {
            let meta = TopicMeta {
                name: t.name.clone(),
                id: format!("{:x}", t.id.as_u128()),
                partitions: i32::try_from(t.partitions.len()).expect("partitions bounded"),
                configs: t.configs.clone().into_iter().collect(),
                parsed: Default::default(),
            };
            (t.name.clone(), Arc::new(meta))
        })
        .collect();
    Topics {
        version: index,
        topics,
        broker_configs: broker_configs_of(&image),
        group_configs: image.group_configs.clone(),
        client_metrics: image.client_metrics.clone(),
        scram_credentials: image.scram_credentials.clone(),
        client_quotas: image.client_quotas.clone(),
        ip_quotas: image.ip_quotas.clone(),
        acls: image.acls.clone(),
        delegation_tokens: image.delegation_tokens.clone(),
        by_id: Default::default(),
        cluster: Some(Arc::new(ClusterView {
            index,
            image,
            node_id,
        })),
    }
}

/// The image's dynamic broker configs as a snapshot carries them.
fn broker_configs_of(image: &ClusterImage) -> BrokerConfigs {
    let mut configs = BrokerConfigs::default();
    for (broker, set) in &image.broker_configs {
        match broker {
            None => configs.cluster_default = set.clone(),
            Some(id) => {
                configs.per_broker.insert(id.to_string(), set.clone());
            }
        }
    }
    configs
}

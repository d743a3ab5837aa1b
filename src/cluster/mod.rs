//! What a node knows of the cluster it belongs to before the metadata
//! quorum says more: its stored identity and the voter list it was given.

pub mod identity;
pub mod log_state;
pub mod node;
pub mod voters;

pub use identity::{MetaProperties, META_PROPERTIES};

/// Replicas of an internal topic (`__consumer_offsets`,
/// `__transaction_state`): `offsets_topic_replication_factor` capped at the
/// brokers alive, as Kafka caps it when the topic is created; 1 alone.
pub fn internal_replication_factor(
    topics: &crate::metadata::Topics,
    config: &crate::config::BrokerConfig,
) -> i32 {
    match topics.cluster.as_deref() {
        Some(view) => {
            let live = view.image.live_brokers().count();
            let live = i32::try_from(live).unwrap_or(i32::MAX).max(1);
            config.offsets_topic_replication_factor.clamp(1, live)
        }
        None => 1,
    }
}

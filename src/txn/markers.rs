//! The markers of a prepared transaction (Kafka's
//! TransactionMarkerChannelManager, one node): a COMMIT or ABORT control
//! batch on every partition of the transaction, appended by each
//! partition's owner shard (`Shard::write_txn_markers`). Failed partitions
//! are retried with a bounded backoff until they take the marker or are
//! gone.

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::ResponseError;

use super::{TxnMetadata, TxnState};
use crate::shard::{Shard, TopicPartition, TxnMarkerItem};

/// Kafka's coordinator epoch is the `__transaction_state` partition's
/// leader epoch; a single node never changes leaders.
pub const COORDINATOR_EPOCH: i32 = 0;
/// First wait before retrying failed partitions; doubled up to the max.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What one partition's answer means for the transaction.
#[derive(Debug, PartialEq)]
enum Outcome {
    Written,
    /// The marker can never go there; the partition is dropped.
    Dropped,
    Retry,
}

fn outcome(code: i16, partition_exists: bool) -> Outcome {
    if code == 0 {
        Outcome::Written
    } else if code == ResponseError::UnknownTopicOrPartition.code() && !partition_exists {
        Outcome::Dropped
    } else if code == ResponseError::InvalidProducerEpoch.code() {
        // The partition has seen a newer epoch of this producer, so this
        // transaction ended there already (a later transaction wrote).
        Outcome::Dropped
    } else {
        Outcome::Retry
    }
}

/// Writes `meta`'s markers (it is Prepare*) to every partition. True once
/// every partition took its marker or is gone; false if the shard stops
/// first (the next load writes them again).
pub async fn write_all(shard: &Rc<Shard>, id: &str, meta: &TxnMetadata) -> bool {
    assert!(meta.state.is_prepare(), "markers follow a Prepare* state");
    let commit = meta.state == TxnState::PrepareCommit;
    let mut left: Vec<TopicPartition> = meta.partitions.iter().cloned().collect();
    let mut backoff = RETRY_BACKOFF_MIN;
    loop {
        let items = left
            .iter()
            .map(|tp| TxnMarkerItem {
                tp: tp.clone(),
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                commit,
                coordinator_epoch: COORDINATOR_EPOCH,
            })
            .collect();
        let codes = shard.write_txn_markers(items).await;
        let topics = shard.topics();
        left = left
            .into_iter()
            .zip(codes)
            .filter_map(|(tp, code)| {
                let exists = topics
                    .get(&tp.topic)
                    .is_some_and(|t| tp.partition < t.partitions);
                match outcome(code, exists) {
                    Outcome::Written => None,
                    Outcome::Dropped => {
                        tracing::warn!(transactional_id = id, topic = %tp.topic, partition = tp.partition, code, "transaction marker dropped");
                        None
                    }
                    Outcome::Retry => Some(tp),
                }
            })
            .collect();
        if left.is_empty() {
            return true;
        }
        tracing::debug!(
            transactional_id = id,
            partitions = left.len(),
            ?backoff,
            "retrying transaction markers"
        );
        let stopped = crate::runtime::timeout(backoff, shard.stopping.changed_since(0)).await;
        if stopped.is_some() || shard.is_stopping() {
            return false;
        }
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_partitions_are_dropped_and_others_retried() {
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(outcome(0, true), Outcome::Written);
        assert_eq!(outcome(unknown, false), Outcome::Dropped);
        // Known to the topics snapshot but not open yet: try again.
        assert_eq!(outcome(unknown, true), Outcome::Retry);
        let storage = ResponseError::KafkaStorageError.code();
        assert_eq!(outcome(storage, true), Outcome::Retry);
        let epoch = ResponseError::InvalidProducerEpoch.code();
        assert_eq!(outcome(epoch, true), Outcome::Dropped);
    }
}

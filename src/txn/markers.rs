//! The markers of a prepared transaction (Kafka's
//! TransactionMarkerChannelManager): a COMMIT or ABORT control batch on
//! every partition of the transaction, appended by each partition's leader:
//! this broker's owner shard (`Shard::write_txn_markers`), or another
//! broker asked with WriteTxnMarkers. Failed partitions are retried with a
//! bounded backoff until they take the marker or are gone.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{TxnMetadata, TxnState};
use crate::net::client::{KafkaConnection, Security};
use crate::shard::{Shard, TopicPartition, TxnMarkerItem};

/// Kafka's coordinator epoch: the leader epoch of the transactional id's
/// `__transaction_state` partition (0 on a one-node broker), so a
/// partition refuses markers from a coordinator that has since moved.
pub fn coordinator_epoch(shard: &Shard, id: &str) -> i32 {
    let partition = super::txn_partition(shard, id);
    shard
        .topics()
        .cluster
        .as_ref()
        .and_then(|c| c.partition(super::TXN_TOPIC, partition))
        .map_or(0, |p| p.leader_epoch)
}
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
    } else if code == ResponseError::TransactionCoordinatorFenced.code() {
        // A newer coordinator of this id finishes the transaction.
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
pub async fn write_all(
    shard: &Rc<Shard>,
    dialer: &Arc<Security>,
    id: &str,
    meta: &TxnMetadata,
) -> bool {
    assert!(meta.state.is_prepare(), "markers follow a Prepare* state");
    let commit = meta.state == TxnState::PrepareCommit;
    let mut left: Vec<TopicPartition> = meta.partitions.iter().cloned().collect();
    let mut backoff = RETRY_BACKOFF_MIN;
    let coordinator_epoch = coordinator_epoch(shard, id);
    loop {
        let items = left
            .iter()
            .map(|tp| TxnMarkerItem {
                tp: tp.clone(),
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                commit,
                coordinator_epoch,
            })
            .collect();
        let codes = send(shard, dialer, items).await;
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

/// Hands each marker to its partition's leader: this broker's shards for
/// what it leads (and everything on a one-node broker), a WriteTxnMarkers
/// request for each other leader. An error code per item, in order.
async fn send(shard: &Rc<Shard>, dialer: &Arc<Security>, items: Vec<TxnMarkerItem>) -> Vec<i16> {
    let topics = shard.topics();
    let leader_of = |tp: &TopicPartition| match topics.cluster.as_ref() {
        None => None,
        Some(view) => view
            .partition(&tp.topic, tp.partition)
            .map(|p| p.leader)
            .filter(|&leader| leader != view.node_id),
    };
    let mut local = (Vec::new(), Vec::new());
    let mut remote: BTreeMap<i32, (Vec<usize>, Vec<TxnMarkerItem>)> = BTreeMap::new();
    for (i, item) in items.into_iter().enumerate() {
        match leader_of(&item.tp) {
            None => {
                local.0.push(i);
                local.1.push(item);
            }
            Some(leader) => {
                let entry = remote.entry(leader).or_default();
                entry.0.push(i);
                entry.1.push(item);
            }
        }
    }
    let total = local.0.len() + remote.values().map(|r| r.0.len()).sum::<usize>();
    let mut codes = vec![ResponseError::NotLeaderOrFollower.code(); total];
    let local_codes = if local.1.is_empty() {
        Vec::new()
    } else {
        shard.write_txn_markers(local.1).await
    };
    for (i, code) in local.0.into_iter().zip(local_codes) {
        codes[i] = code;
    }
    let calls = remote
        .into_iter()
        .map(|(leader, (indices, items))| async move {
            (indices, remote_markers(shard, dialer, leader, items).await)
        });
    for (indices, answer) in futures::future::join_all(calls).await {
        for (i, code) in indices.into_iter().zip(answer) {
            codes[i] = code;
        }
    }
    codes
}

/// How long one WriteTxnMarkers to another broker may take (connect,
/// markers waiting for that partition's ISR, answer).
const REMOTE_MARKERS_TIMEOUT: Duration = Duration::from_secs(35);
/// Bound on a WriteTxnMarkers answer.
const REMOTE_MARKERS_RESPONSE_MAX: u32 = 1 << 20;

/// WriteTxnMarkers v1 to broker `leader`; a retriable code for every item
/// when it cannot be reached.
async fn remote_markers(
    shard: &Shard,
    dialer: &Arc<Security>,
    leader: i32,
    items: Vec<TxnMarkerItem>,
) -> Vec<i16> {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::{
        ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
    };
    let unreachable = vec![ResponseError::NotLeaderOrFollower.code(); items.len()];
    let Some(first) = items.first() else {
        return Vec::new();
    };
    let Some(addr) = shard.broker_address(leader) else {
        return unreachable;
    };
    // One marker: every item is the same producer's same transaction.
    let mut by_topic: BTreeMap<Arc<str>, Vec<i32>> = BTreeMap::new();
    for item in &items {
        by_topic
            .entry(item.tp.topic.clone())
            .or_default()
            .push(item.tp.partition);
    }
    let topics = by_topic
        .iter()
        .map(|(name, partitions)| {
            WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partition_indexes(partitions.clone())
        })
        .collect();
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(first.producer_id))
        .with_producer_epoch(first.producer_epoch)
        .with_transaction_result(first.commit)
        .with_coordinator_epoch(first.coordinator_epoch)
        .with_topics(topics);
    let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let client_id = format!("sluice-txn-markers-{}", shard.config.node_id);
    let answer = async {
        let mut conn = KafkaConnection::connect(
            &addr,
            &client_id,
            REMOTE_MARKERS_RESPONSE_MAX,
            REMOTE_MARKERS_TIMEOUT,
            dialer,
        )
        .await?;
        conn.call::<_, WriteTxnMarkersResponse>(
            ApiKey::WriteTxnMarkers,
            1,
            &request,
            REMOTE_MARKERS_TIMEOUT,
        )
        .await
    };
    let response = match answer.await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(leader, error = %e, "WriteTxnMarkers to a partition leader failed; retrying");
            return unreachable;
        }
    };
    let mut codes: BTreeMap<(String, i32), i16> = BTreeMap::new();
    for result in response.markers {
        for topic in result.topics {
            for p in topic.partitions {
                codes.insert((topic.name.0.to_string(), p.partition_index), p.error_code);
            }
        }
    }
    items
        .iter()
        .map(|item| {
            codes
                .get(&(item.tp.topic.to_string(), item.tp.partition))
                .copied()
                .unwrap_or(ResponseError::UnknownServerError.code())
        })
        .collect()
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

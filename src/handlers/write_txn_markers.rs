//! WriteTxnMarkers (API 27): a transaction coordinator on another broker
//! asks this one, the leader of some of the transaction's partitions, to
//! append the COMMIT or ABORT markers there (Kafka's inter-broker API).

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};

use super::ApiSpec;
use crate::shard::{Shard, TopicPartition, TxnMarkerItem};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::WriteTxnMarkers,
    // v0 (removed in Kafka 4.0 and by the codec) through the version
    // bridge (`handlers::legacy`).
    min: 0,
    max: 1,
};

/// Inter-broker: needs ClusterAction on the cluster; refused, every
/// partition answers CLUSTER_AUTHORIZATION_FAILED and no marker is written.
pub async fn handle(
    shard: &Rc<Shard>,
    access: &super::access::Access,
    _header: &RequestHeader,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let refused = !access.cluster(crate::security::acl::Operation::ClusterAction);
    let mut markers = Vec::with_capacity(request.markers.len());
    for marker in request.markers {
        let items: Vec<TxnMarkerItem> = marker
            .topics
            .iter()
            .flat_map(|t| {
                let topic: Arc<str> = Arc::from(t.name.0.as_str());
                t.partition_indexes
                    .iter()
                    .map(move |&partition| TxnMarkerItem {
                        tp: TopicPartition {
                            topic: topic.clone(),
                            partition,
                        },
                        producer_id: marker.producer_id.0,
                        producer_epoch: marker.producer_epoch,
                        commit: marker.transaction_result,
                        coordinator_epoch: marker.coordinator_epoch,
                    })
            })
            .collect();
        let mut codes = if refused {
            let code = kafka_protocol::ResponseError::ClusterAuthorizationFailed.code();
            vec![code; items.len()]
        } else {
            shard.write_txn_markers(items).await
        }
        .into_iter();
        let topics = marker
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|&p| {
                        WritableTxnMarkerPartitionResult::default()
                            .with_partition_index(p)
                            .with_error_code(codes.next().expect("one code per partition"))
                    })
                    .collect();
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}

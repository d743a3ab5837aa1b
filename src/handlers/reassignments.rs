//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455):
//! moving a partition's replicas to other brokers (`kafka-reassign-
//! partitions.sh`, AdminClient alterPartitionReassignments), what replacing
//! a dead broker or balancing a cluster takes. A reassignment is a
//! metadata record; this answers once the quorum has applied it, and the
//! move itself goes on as the new replicas catch up
//! (`controller::reassignment`). Altering needs Alter on the cluster,
//! listing Describe; refused, the answer is CLUSTER_AUTHORIZATION_FAILED.

use std::rc::Rc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::controller::image::ClusterImage;
use crate::controller::records::MetadataRecord;
use crate::security::acl::Operation;
use crate::shard::Shard;

pub const ALTER: ApiSpec = ApiSpec {
    key: ApiKey::AlterPartitionReassignments,
    min: 0,
    max: 1,
};
pub const LIST: ApiSpec = ApiSpec {
    key: ApiKey::ListPartitionReassignments,
    min: 0,
    max: 0,
};

pub async fn alter(
    shard: &Rc<Shard>,
    access: &Access,
    header: &RequestHeader,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let refused = !access.cluster(Operation::Alter);
    // v0 cannot say it: any replication factor goes.
    let allow_rf_change =
        header.request_api_version == 0 || request.allow_replication_factor_change;
    let mut response = AlterPartitionReassignmentsResponse::default();
    response.allow_replication_factor_change = allow_rf_change;
    if refused {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
    }
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut answer = ReassignableTopicResponse::default();
        for p in topic.partitions {
            let target: Option<Vec<i32>> = p.replicas.map(|r| r.iter().map(|b| b.0).collect());
            let (code, message) = if refused {
                (ResponseError::ClusterAuthorizationFailed.code(), None)
            } else {
                reassign(shard, &name, p.partition_index, target, allow_rf_change).await
            };
            let mut out = ReassignablePartitionResponse::default();
            out.partition_index = p.partition_index;
            out.error_code = code;
            out.error_message = message.map(StrBytes::from_string);
            answer.partitions.push(out);
        }
        answer.name = topic.name;
        response.responses.push(answer);
    }
    response
}

/// One partition's reassignment to `target` (`None`: cancel): the error
/// code and message to answer.
async fn reassign(
    shard: &Rc<Shard>,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
    allow_rf_change: bool,
) -> (i16, Option<String>) {
    if !shard.topics().has_partition(topic, partition) {
        return (ResponseError::UnknownTopicOrPartition.code(), None);
    }
    let Some(controller) = &shard.controller else {
        return alone(shard.config.node_id, target);
    };
    if let (Some(target), false) = (&target, allow_rf_change) {
        let (_, image) = controller.image();
        if let Some(refusal) = changes_factor(&image, topic, partition, target) {
            return refusal;
        }
    }
    let record = MetadataRecord::ReassignPartition {
        topic: topic.to_string(),
        partition,
        target,
    };
    match controller.propose(record).await {
        Ok(_) => (0, None),
        Err(e) => (e.error_code(), Some(e.to_string())),
    }
}

/// A node without a quorum holds every partition's one replica: it can
/// only be reassigned to itself.
fn alone(node_id: i32, target: Option<Vec<i32>>) -> (i16, Option<String>) {
    match target {
        None => (ResponseError::NoReassignmentInProgress.code(), None),
        Some(t) if t == [node_id] => (0, None),
        Some(t) => (
            ResponseError::InvalidReplicaAssignment.code(),
            Some(format!(
                "{t:?}: this broker ({node_id}) is the only one, and not in a cluster"
            )),
        ),
    }
}

/// KIP-860: a v1 request that does not allow it may not change the
/// number of replicas (counted without those a reassignment is adding).
fn changes_factor(
    image: &ClusterImage,
    topic: &str,
    partition: i32,
    target: &[i32],
) -> Option<(i16, Option<String>)> {
    let state = image.partition(topic, partition)?;
    let adding = image
        .reassignment(topic, partition)
        .map_or(&[][..], |r| &r.adding);
    let factor = state
        .replicas
        .iter()
        .filter(|r| !adding.contains(r))
        .count();
    (target.len() != factor).then(|| {
        (
            ResponseError::InvalidReplicationFactor.code(),
            Some(format!(
                "{} replicas where there are {factor}, and the request does not allow a change",
                target.len()
            )),
        )
    })
}

pub fn list(
    shard: &Rc<Shard>,
    access: &Access,
    _header: &RequestHeader,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut response = ListPartitionReassignmentsResponse::default();
    if !access.cluster(Operation::Describe) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    let Some(controller) = &shard.controller else {
        return response;
    };
    let (_, image) = controller.image();
    // Named topics that do not exist, or are not moving, are left out, as
    // Kafka's controller leaves them.
    let wanted: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), Some(t.partition_indexes)))
            .collect(),
        None => image
            .reassignments
            .keys()
            .map(|name| (name.clone(), None))
            .collect(),
    };
    for (name, partitions) in wanted {
        let Some(moving) = image.reassignments.get(&name) else {
            continue;
        };
        let mut topic = OngoingTopicReassignment::default();
        for (&partition, reassignment) in moving {
            if partitions.as_ref().is_some_and(|p| !p.contains(&partition)) {
                continue;
            }
            let Some(state) = image.partition(&name, partition) else {
                continue;
            };
            let ids = |ids: &[i32]| ids.iter().map(|&b| BrokerId(b)).collect();
            let mut p = OngoingPartitionReassignment::default();
            p.partition_index = partition;
            p.replicas = ids(&state.replicas);
            p.adding_replicas = ids(&reassignment.adding);
            p.removing_replicas = ids(&reassignment.removing);
            topic.partitions.push(p);
        }
        if !topic.partitions.is_empty() {
            topic.name = TopicName(StrBytes::from_string(name));
            response.topics.push(topic);
        }
    }
    response
}

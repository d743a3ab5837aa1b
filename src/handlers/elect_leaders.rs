//! ElectLeaders (KIP-460): preferred (type 0) or unclean (type 1) leader
//! election for the named partitions (all of them when null), carried out
//! through the metadata quorum and answered once applied on this broker.

use std::rc::Rc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    ApiKey, ElectLeadersRequest, ElectLeadersResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::ApiSpec;
use crate::controller::election::{elect_leader, preferred_election, Election};
use crate::controller::image::{ClusterImage, PartitionState};
use crate::controller::records::MetadataRecord;
use crate::shard::Shard;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ElectLeaders,
    min: 0,
    max: 2,
};

/// Kafka's ElectionType values.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// Needs Alter on the cluster; refused, every partition and the request
/// answer CLUSTER_AUTHORIZATION_FAILED, as Kafka does.
pub async fn handle(
    shard: &Rc<Shard>,
    access: &super::access::Access,
    header: &RequestHeader,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let refused = !access.cluster(crate::security::acl::Operation::Alter);
    let election_type = if header.request_api_version == 0 {
        PREFERRED
    } else {
        request.election_type
    };
    let topics = shard.topics();
    let wanted: Vec<(String, Vec<i32>)> = match request.topic_partitions {
        Some(list) => list
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect(),
        None => topics
            .topics
            .values()
            .map(|t| (t.name.clone(), (0..t.partitions).collect()))
            .collect(),
    };
    let mut response = ElectLeadersResponse::default();
    if refused {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
    }
    for (topic, partitions) in wanted {
        let mut result = ReplicaElectionResult::default();
        result.topic = TopicName(StrBytes::from_string(topic.clone()));
        for partition in partitions {
            let (code, message) = if refused {
                (ResponseError::ClusterAuthorizationFailed.code(), None)
            } else {
                elect(shard, election_type, &topic, partition).await
            };
            let mut p = PartitionResult::default();
            p.partition_id = partition;
            p.error_code = code;
            p.error_message = message.map(StrBytes::from_string);
            result.partition_result.push(p);
        }
        response.replica_election_results.push(result);
    }
    response
}

/// One partition's election: the error code and message to answer.
async fn elect(
    shard: &Rc<Shard>,
    election_type: i8,
    topic: &str,
    partition: i32,
) -> (i16, Option<String>) {
    if !matches!(election_type, PREFERRED | UNCLEAN) {
        return (
            ResponseError::InvalidRequest.code(),
            Some("unknown election type".into()),
        );
    }
    if !shard.topics().has_partition(topic, partition) {
        return (ResponseError::UnknownTopicOrPartition.code(), None);
    }
    let Some(controller) = &shard.controller else {
        // One broker: its only replica already leads.
        return (ResponseError::ElectionNotNeeded.code(), None);
    };
    let (_, image) = controller.image();
    let Some(state) = image.partition(topic, partition) else {
        return (ResponseError::UnknownTopicOrPartition.code(), None);
    };
    let min_insync = image.min_insync(topic, shard.config.min_insync_replicas);
    let past = image.past(topic, partition, min_insync);
    let election = match choose(&image, state, election_type, past) {
        Ok(e) => e,
        Err(refusal) => return refusal,
    };
    let record = MetadataRecord::ChangePartition {
        topic: topic.to_string(),
        partition,
        leader: election.leader,
        isr: election.isr,
        leader_epoch: election.leader_epoch,
        partition_epoch: state.partition_epoch,
    };
    match controller.propose(record).await {
        Ok(_) => (0, None),
        Err(e) => (e.error_code(), Some(e.to_string())),
    }
}

/// The election Kafka's controller would make, or why none is made.
fn choose(
    image: &ClusterImage,
    state: &PartitionState,
    election_type: i8,
    past: crate::controller::election::Past<'_>,
) -> Result<Election, (i16, Option<String>)> {
    let live = |b: i32| image.broker_live(b);
    if election_type == PREFERRED {
        let preferred = state.replicas.first().copied().unwrap_or(-1);
        if state.leader == preferred {
            return Err((ResponseError::ElectionNotNeeded.code(), None));
        }
        return preferred_election(state, live, past).ok_or((
            ResponseError::PreferredLeaderNotAvailable.code(),
            Some(format!("replica {preferred} is not live and in sync")),
        ));
    }
    if live(state.leader) {
        return Err((ResponseError::ElectionNotNeeded.code(), None));
    }
    let election = elect_leader(state, live, true, past);
    if election.leader < 0 {
        return Err((
            ResponseError::EligibleLeadersNotAvailable.code(),
            Some("no live replica".into()),
        ));
    }
    if election.unclean {
        tracing::warn!(
            leader = election.leader,
            "unclean leader election asked by ElectLeaders"
        );
    }
    Ok(election)
}

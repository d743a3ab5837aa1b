//! DescribeQuorum (KIP-595, KIP-836): the metadata quorum as its active
//! controller sees it, what `kafka-metadata-quorum.sh describe --status`
//! and `--replication` print: leader, term, committed position, and each
//! voter's and observer's (learner's) progress. Any node answers: the
//! question goes to the active controller. Needs Describe on the cluster.
//! A node without a quorum is its own controller, and describes itself as
//! a one-node Kafka does: the only voter, leading. Answering with an error
//! instead leaves the Java admin client retrying it until it times out.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::controller::quorum_status::{QuorumStatus, ReplicaProgress};
use crate::security::acl::Operation;
use crate::shard::Shard;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DescribeQuorum,
    min: 0,
    max: 2,
};

/// The quorum's log, as Kafka names it.
const METADATA_TOPIC: &str = "__cluster_metadata";
/// The listener name the quorum's endpoints go by.
const CONTROLLER_LISTENER: &str = "CONTROLLER";

/// v1 added the members' fetch and caught-up times, v2 error messages and
/// the members' listeners.
const TIMES_SINCE: i16 = 1;
const LISTENERS_SINCE: i16 = 2;

pub async fn handle(
    shard: &Rc<Shard>,
    access: &Access,
    header: &RequestHeader,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let version = header.request_api_version;
    let mut response = DescribeQuorumResponse::default();
    if !access.cluster(Operation::Describe) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    // Kafka takes exactly one partition, and answers INVALID_REQUEST else.
    let [topic] = &request.topics[..] else {
        response.error_code = ResponseError::InvalidRequest.code();
        return response;
    };
    let [partition] = &topic.partitions[..] else {
        response.error_code = ResponseError::InvalidRequest.code();
        return response;
    };
    let mut answer = PartitionData::default();
    answer.partition_index = partition.partition_index;
    answer.leader_id = BrokerId(-1);
    answer.leader_epoch = -1;
    answer.high_watermark = -1;
    let named = topic.topic_name.0.as_str() == METADATA_TOPIC && partition.partition_index == 0;
    match (&shard.controller, named) {
        (_, false) => answer.error_code = ResponseError::UnknownTopicOrPartition.code(),
        (None, true) => {
            let alone = lone_quorum(shard.config.node_id);
            describe(&alone, &BTreeMap::new(), version, &mut answer);
        }
        (Some(controller), true) => match controller.describe_quorum().await {
            Ok(status) => {
                let (_, image) = controller.image();
                describe(&status, &image.voter_directories, version, &mut answer);
                if version >= LISTENERS_SINCE {
                    response.nodes = nodes(&status);
                }
            }
            Err(e) => {
                answer.error_code = e.error_code();
                if version >= LISTENERS_SINCE {
                    answer.error_message = Some(StrBytes::from_string(e.to_string()));
                }
            }
        },
    }
    let mut data = TopicData::default();
    data.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
    data.partitions.push(answer);
    response.topics.push(data);
    response
}

/// A lone node's quorum: itself, leading from the start (epoch 0), with
/// no metadata log (its topics live in a snapshot), so nothing to
/// replicate and no quorum listener.
fn lone_quorum(node_id: i32) -> QuorumStatus {
    let me = ReplicaProgress {
        id: node_id,
        log_end_offset: 0,
        caught_up: true,
    };
    QuorumStatus {
        leader_id: node_id,
        leader_epoch: 0,
        high_watermark: 0,
        voters: vec![me],
        observers: Vec::new(),
        endpoints: BTreeMap::new(),
    }
}

fn describe(
    status: &QuorumStatus,
    directories: &BTreeMap<i32, uuid::Uuid>,
    version: i16,
    answer: &mut PartitionData,
) {
    let now = crate::runtime::now_ms();
    let state = |r: &ReplicaProgress| {
        let mut s = ReplicaState::default();
        s.replica_id = BrokerId(r.id);
        // A voter's metadata log directory (KIP-853), once the log holds
        // it; zero (unknown) else, as for observers.
        if version >= LISTENERS_SINCE {
            s.replica_directory_id = directories.get(&r.id).copied().unwrap_or_default();
        }
        s.log_end_offset = r.log_end_offset;
        // The leader's replication progress is current: a member that holds
        // every entry is caught up now. When it last fetched otherwise is
        // not kept (-1, unknown).
        if version >= TIMES_SINCE {
            let seen = if r.caught_up { now } else { -1 };
            s.last_fetch_timestamp = seen;
            s.last_caught_up_timestamp = seen;
        }
        s
    };
    answer.leader_id = BrokerId(status.leader_id);
    answer.leader_epoch = status.leader_epoch;
    answer.high_watermark = status.high_watermark;
    answer.current_voters = status.voters.iter().map(state).collect();
    answer.observers = status.observers.iter().map(state).collect();
}

/// Each member's quorum listener (v2).
fn nodes(status: &QuorumStatus) -> Vec<Node> {
    status
        .endpoints
        .iter()
        .filter_map(|(&id, addr)| {
            let (host, port) = addr.rsplit_once(':')?;
            let mut listener = Listener::default();
            listener.name = StrBytes::from_static_str(CONTROLLER_LISTENER);
            listener.host = StrBytes::from_string(host.trim_matches(['[', ']']).to_string());
            listener.port = port.parse().ok()?;
            let mut node = Node::default();
            node.node_id = BrokerId(id);
            node.listeners = vec![listener];
            Some(node)
        })
        .collect()
}

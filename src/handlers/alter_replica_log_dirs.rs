//! AlterReplicaLogDirs (KIP-113): move replicas between a broker's log
//! dirs (`kafka-reassign-partitions.sh` with `log_dirs`,
//! AdminClient.alterReplicaLogDirs). A Sluice broker has one data dir, so
//! the only move there is is to where a replica already is; any other path
//! is not a log dir of this broker, as Kafka answers a path it does not
//! have.

use std::path::Path;

use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, ApiKey};
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::security::acl::Operation;
use crate::shard::Shard;

/// v0 is v1's schema (Kafka 4 dropped it; so does the protocol crate).
pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::AlterReplicaLogDirs,
    min: 1,
    max: 2,
};

/// Alter on the cluster, as in Kafka. Each partition answers NONE when it
/// has a replica here and the path is the data dir, LOG_DIR_NOT_FOUND for
/// another path, REPLICA_NOT_AVAILABLE when this broker holds no replica
/// of it (Kafka's answers in `ReplicaManager.alterReplicaLogDirs`).
pub fn handle(
    shard: &Shard,
    access: &Access,
    request: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let allowed = access.cluster(Operation::Alter);
    let data_dir = super::describe_log_dirs::log_dir(shard);
    let mut response = AlterReplicaLogDirsResponse::default();
    for dir in request.dirs {
        let ours =
            std::path::absolute(Path::new(dir.path.as_str())).is_ok_and(|asked| asked == data_dir);
        for topic in dir.topics {
            let mut result = AlterReplicaLogDirTopicResult::default();
            result.partitions = topic
                .partitions
                .iter()
                .map(|&partition| {
                    let error = if !allowed {
                        ResponseError::ClusterAuthorizationFailed.code()
                    } else if !ours {
                        ResponseError::LogDirNotFound.code()
                    } else if !hosts(shard, &topic.name, partition) {
                        ResponseError::ReplicaNotAvailable.code()
                    } else {
                        0
                    };
                    let mut out = AlterReplicaLogDirPartitionResult::default();
                    out.partition_index = partition;
                    out.error_code = error;
                    out
                })
                .collect();
            result.topic_name = topic.name;
            response.results.push(result);
        }
    }
    response
}

/// Whether this broker holds a replica of `topic`'s `partition`.
fn hosts(shard: &Shard, topic: &str, partition: i32) -> bool {
    let topics = shard.topics();
    topics.has_partition(topic, partition) && topics.hosts(topic, partition)
}

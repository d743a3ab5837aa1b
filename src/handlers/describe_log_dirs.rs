//! DescribeLogDirs: this node's one log dir (the data dir), the replicas
//! it holds (all, or those the request names) with their sizes, and the
//! filesystem's total and usable bytes (v4). Admin tools and UIs ask it
//! for topic sizes (`kafka-log-dirs.sh`, AdminClient.describeLogDirs).
//! Needs Describe on the cluster: without it the answer lists nothing, and
//! says CLUSTER_AUTHORIZATION_FAILED from v3 on, as Kafka's does.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::ApiSpec;
use crate::security::acl::Operation;
use crate::shard::{ReplicaSize, Shard};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DescribeLogDirs,
    // v0 through the version bridge (`handlers::legacy`).
    min: 0,
    max: 4,
};

/// Kafka's UNKNOWN_VOLUME_BYTES: the filesystem could not be asked.
const UNKNOWN_VOLUME_BYTES: i64 = -1;

pub async fn handle(
    shard: &Rc<Shard>,
    access: &Access,
    _header: &RequestHeader,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let mut response = DescribeLogDirsResponse::default();
    if !access.cluster(Operation::Describe) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    // None: every replica; otherwise the named partitions this node hosts.
    let wanted: Option<HashSet<(String, i32)>> = request.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
            .collect()
    });
    let sizes = shard.replica_sizes().await;
    let dir = log_dir(shard);
    let volume = {
        let dir = dir.clone();
        crate::runtime::blocking(move || volume_bytes(&dir)).await
    };
    let mut result = DescribeLogDirsResult::default();
    result.log_dir = StrBytes::from_string(dir.display().to_string());
    result.topics = by_topic(sizes, wanted.as_ref());
    (result.total_bytes, result.usable_bytes) = volume.unwrap_or_else(|e| {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot read the data dir's filesystem size");
        (UNKNOWN_VOLUME_BYTES, UNKNOWN_VOLUME_BYTES)
    });
    response.results.push(result);
    response
}

/// The replicas `wanted` names (all when `None`), grouped by topic, each
/// topic's partitions in order.
fn by_topic(
    sizes: Vec<ReplicaSize>,
    wanted: Option<&HashSet<(String, i32)>>,
) -> Vec<DescribeLogDirsTopic> {
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for replica in sizes {
        let (topic, partition) = (replica.tp.topic.to_string(), replica.tp.partition);
        if wanted.is_some_and(|w| !w.contains(&(topic.clone(), partition))) {
            continue;
        }
        let mut p = DescribeLogDirsPartition::default();
        p.partition_index = partition;
        p.partition_size = i64::try_from(replica.size_bytes).unwrap_or(i64::MAX);
        // Kafka's lag of a current (not future) replica: its high
        // watermark past its log end, which it never is.
        p.offset_lag = 0;
        topics.entry(topic).or_default().push(p);
    }
    topics
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(StrBytes::from_string(name));
            t.partitions = partitions;
            t
        })
        .collect()
}

/// This broker's one log dir, its data dir, as Kafka reports a log dir:
/// absolute.
pub(super) fn log_dir(shard: &Shard) -> PathBuf {
    let dir = &shard.config.data_dir;
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// (total, usable) bytes of the filesystem holding `dir`, as Kafka's
/// `FileStore` totalSpace and usableSpace (what an unprivileged writer has).
fn volume_bytes(dir: &Path) -> std::io::Result<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a valid,
    // writable statvfs for the call's duration.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fragment = stat.f_frsize as u128;
    let clamp = |blocks: u64| i64::try_from(u128::from(blocks) * fragment).unwrap_or(i64::MAX);
    Ok((clamp(stat.f_blocks), clamp(stat.f_bavail)))
}

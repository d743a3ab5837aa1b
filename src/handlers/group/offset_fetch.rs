//! OffsetFetch: committed offsets of one group (v1-7) or several (v8+);
//! a null topic list means every partition the group committed. v9's
//! member id and epoch (KIP-848) are checked for "consumer" groups only;
//! Kafka 3.9 ignores them for the classic groups served here.

use std::rc::Rc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, OffsetFetchRequest, OffsetFetchResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::call;
use crate::group::Coordinator;
use crate::group::{FetchedOffsets, GroupMsg};
use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use kafka_protocol::ResponseError;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::OffsetFetch,
    // Older versions through the version bridge (`handlers::legacy`).
    min: 0,
    max: 9,
};

type Wanted = Option<Vec<(String, Vec<i32>)>>;

pub async fn handle(
    groups: &Rc<Coordinator>,
    access: &Access,
    _header: &RequestHeader,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    let require_stable = request.require_stable;
    if version >= 8 {
        let asks = request.groups.into_iter().map(|g| {
            let wanted: Wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            (g.group_id.to_string(), wanted)
        });
        let fetches = asks.map(|(group_id, wanted)| async move {
            let fetched = authorized(groups, access, &group_id, wanted, require_stable).await;
            group_v8(group_id, fetched)
        });
        response.groups = futures::future::join_all(fetches).await;
        return response;
    }
    let wanted: Wanted = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let fetched = authorized(groups, access, &request.group_id, wanted, require_stable).await;
    response.error_code = fetched.error;
    response.topics = fetched
        .topics
        .into_iter()
        .map(|(name, offsets)| {
            let mut t = OffsetFetchResponseTopic::default();
            t.name = TopicName(StrBytes::from_string(name));
            t.partitions = offsets
                .into_iter()
                .map(|o| {
                    let mut p = OffsetFetchResponsePartition::default();
                    p.partition_index = o.partition;
                    p.committed_offset = o.offset;
                    p.committed_leader_epoch = o.leader_epoch;
                    p.metadata = Some(StrBytes::from_string(o.metadata));
                    p.error_code = o.error;
                    // v1 has no group-level error; it goes on each partition.
                    if version < 2 {
                        p.error_code = fetched.error;
                    }
                    p
                })
                .collect();
            t
        })
        .collect();
    response
}

async fn fetch(
    groups: &Rc<Coordinator>,
    group_id: &str,
    topics: Wanted,
    require_stable: bool,
) -> FetchedOffsets {
    let group = group_id.to_string();
    let asked = topics.clone();
    call(groups, group_id, |reply| GroupMsg::FetchOffsets {
        group_id: group,
        topics,
        require_stable,
        reply,
    })
    .await
    .unwrap_or_else(|| FetchedOffsets {
        error: crate::group::not_available(),
        topics: asked
            .unwrap_or_default()
            .into_iter()
            .map(|(t, parts)| {
                let none = parts
                    .into_iter()
                    .map(|partition| crate::group::PartitionOffset {
                        partition,
                        error: 0,
                        offset: -1,
                        leader_epoch: -1,
                        metadata: String::new(),
                    })
                    .collect();
                (t, none)
            })
            .collect(),
    })
}

/// [`fetch`] as Kafka authorizes it: Describe on the group (else
/// GROUP_AUTHORIZATION_FAILED and nothing), Describe on each topic named
/// (else TOPIC_AUTHORIZATION_FAILED on its partitions); asked for every
/// topic, only those the principal may Describe.
async fn authorized(
    groups: &Rc<Coordinator>,
    access: &Access,
    group_id: &str,
    wanted: Wanted,
    require_stable: bool,
) -> FetchedOffsets {
    if !access.group(Operation::Describe, group_id) {
        return FetchedOffsets {
            error: ResponseError::GroupAuthorizationFailed.code(),
            topics: Vec::new(),
        };
    }
    let may = |topic: &str| access.topic(Operation::Describe, topic);
    let (wanted, denied) = match wanted {
        None => (None, Vec::new()),
        Some(topics) => {
            let (allowed, denied): (Vec<_>, Vec<_>) = topics.into_iter().partition(|(t, _)| may(t));
            (Some(allowed), denied)
        }
    };
    let mut fetched = fetch(groups, group_id, wanted, require_stable).await;
    fetched.topics.retain(|(t, _)| may(t));
    fetched.topics.extend(denied.into_iter().map(|(t, parts)| {
        let refused = parts
            .into_iter()
            .map(|partition| crate::group::PartitionOffset {
                partition,
                error: ResponseError::TopicAuthorizationFailed.code(),
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
            })
            .collect();
        (t, refused)
    }));
    fetched
}

fn group_v8(group_id: String, fetched: FetchedOffsets) -> OffsetFetchResponseGroup {
    let mut g = OffsetFetchResponseGroup::default();
    g.group_id = StrBytes::from_string(group_id).into();
    g.error_code = fetched.error;
    g.topics = fetched
        .topics
        .into_iter()
        .map(|(name, offsets)| {
            let mut t = OffsetFetchResponseTopics::default();
            t.name = TopicName(StrBytes::from_string(name));
            t.partitions = offsets
                .into_iter()
                .map(|o| {
                    let mut p = OffsetFetchResponsePartitions::default();
                    p.partition_index = o.partition;
                    p.committed_offset = o.offset;
                    p.committed_leader_epoch = o.leader_epoch;
                    p.metadata = Some(StrBytes::from_string(o.metadata));
                    p.error_code = o.error;
                    p
                })
                .collect();
            t
        })
        .collect();
    g
}

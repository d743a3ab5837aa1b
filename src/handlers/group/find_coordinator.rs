//! FindCoordinator: this broker coordinates every group and every
//! transactional id (one node); which shard does is internal. v5 only
//! admits TRANSACTION_ABORTABLE in answers; v6 adds the share coordinator
//! key type (KIP-932), which Kafka 3.9 answered COORDINATOR_NOT_AVAILABLE
//! without share groups enabled, as here (none are served).

use crate::net::sasl::ListenerInfo;
use std::rc::Rc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::handlers::access::Access;
use crate::handlers::ApiSpec;
use crate::security::acl::Operation;
use crate::shard::Shard;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::FindCoordinator,
    min: 0,
    max: 6,
};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// KIP-932's share coordinator, known from v6.
const KEY_TYPE_SHARE: i8 = 2;
const SHARE_SINCE: i16 = 6;

/// A group key needs Describe on the group, a transactional one Describe
/// on the id (GROUP_/TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as Kafka checks.
pub async fn handle(
    shard: &Rc<Shard>,
    access: &Access,
    _header: &RequestHeader,
    listener: &ListenerInfo,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|k| coordinator(shard, access, listener, version, k, request.key_type))
            .collect();
        return response;
    }
    let c = coordinator(
        shard,
        access,
        listener,
        version,
        &request.key,
        request.key_type,
    );
    response.error_code = c.error_code;
    response.error_message = c.error_message;
    response.node_id = c.node_id;
    response.host = c.host;
    response.port = c.port;
    response
}

fn coordinator(
    shard: &Shard,
    access: &Access,
    listener: &ListenerInfo,
    version: i16,
    key: &StrBytes,
    key_type: i8,
) -> Coordinator {
    let mut c = Coordinator::default();
    c.key = key.clone();
    c.node_id = BrokerId(-1);
    c.port = -1;
    let refuse = |mut c: Coordinator, e: ResponseError, why: &str| {
        c.error_code = e.code();
        c.error_message = Some(StrBytes::from_string(why.to_string()));
        c
    };
    match key_type {
        KEY_TYPE_GROUP if !crate::group::valid_group_id(key) => {
            return refuse(c, ResponseError::InvalidRequest, "empty group id");
        }
        KEY_TYPE_TRANSACTION if !crate::txn::valid_transactional_id(key) => {
            return refuse(c, ResponseError::InvalidRequest, "empty transactional id");
        }
        KEY_TYPE_GROUP if !access.group(Operation::Describe, key) => {
            return refuse(
                c,
                ResponseError::GroupAuthorizationFailed,
                "Authorization failed.",
            );
        }
        KEY_TYPE_TRANSACTION if !access.transactional_id(Operation::Describe, key) => {
            return refuse(
                c,
                ResponseError::TransactionalIdAuthorizationFailed,
                "Authorization failed.",
            );
        }
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => {}
        KEY_TYPE_SHARE if version >= SHARE_SINCE => {
            return refuse(
                c,
                ResponseError::CoordinatorNotAvailable,
                "share groups are not enabled",
            );
        }
        _ => return refuse(c, ResponseError::InvalidRequest, "unknown key type"),
    }
    let (topic, partition) = if key_type == KEY_TYPE_GROUP {
        let p = crate::group::offsets_partition(key, crate::group::offsets_partition_count(shard));
        (crate::group::OFFSETS_TOPIC, p)
    } else {
        (crate::txn::TXN_TOPIC, crate::txn::txn_partition(shard, key))
    };
    match leader_endpoint(shard, &listener.name, topic, partition) {
        Some(Some((id, host, port))) => {
            c.node_id = BrokerId(id);
            c.host = StrBytes::from_string(host);
            c.port = port;
            c
        }
        Some(None) => refuse(
            c,
            ResponseError::CoordinatorNotAvailable,
            "the coordinator's partition has no leader",
        ),
        None => {
            c.node_id = BrokerId(shard.config.node_id);
            c.host = StrBytes::from_string(listener.advertised.0.clone());
            c.port = listener.advertised.1;
            c
        }
    }
}

/// In a cluster, the broker leading the internal topic's partition (whose
/// log holds the coordinator's state): `Some(None)` while it has no live
/// leader; `None` when this broker answers (alone, or the topic is not
/// created yet: the first request creates it here).
fn leader_endpoint(
    shard: &Shard,
    listener: &str,
    topic: &str,
    partition: i32,
) -> Option<Option<(i32, String, i32)>> {
    let topics = shard.topics();
    let view = topics.cluster.as_deref()?;
    let state = view.partition(topic, partition)?;
    Some(view.image.brokers.get(&state.leader).and_then(|b| {
        let endpoint = b.endpoint(listener)?;
        (!b.fenced).then(|| (b.id, endpoint.host.clone(), i32::from(endpoint.port)))
    }))
}

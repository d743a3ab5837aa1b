//! ListConfigResources (KIP-1142; v0 was ListClientMetricsResources,
//! KIP-714): the resources that have configs, by type, as Kafka 4.1 lists
//! them for `kafka-configs.sh` and admin clients.

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ApiKey, ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::access::Access;
use super::configs::{
    RESOURCE_BROKER as BROKER, RESOURCE_BROKER_LOGGER as BROKER_LOGGER,
    RESOURCE_CLIENT_METRICS as CLIENT_METRICS, RESOURCE_GROUP as GROUP, RESOURCE_TOPIC as TOPIC,
};
use super::ApiSpec;
use crate::security::acl::Operation;
use crate::shard::Shard;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ListConfigResources,
    min: 0,
    max: 1,
};

/// Types listed from v1 (v0 lists client metrics resources alone): each
/// broker's configs and loggers (by broker id), the topics', the client
/// metrics subscriptions, and the groups that have configs of their own.
const TYPES: &[i8] = &[TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP];

/// DescribeConfigs on the cluster, as in Kafka; a type not in [`TYPES`]
/// answers UNSUPPORTED_VERSION and nothing else.
pub fn handle(
    shard: &Shard,
    access: &Access,
    version: i16,
    request: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    let mut response = ListConfigResourcesResponse::default();
    if !access.cluster(Operation::DescribeConfigs) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    let wanted: Vec<i8> = match (version, request.resource_types.is_empty()) {
        (0, _) => vec![CLIENT_METRICS],
        (_, true) => TYPES.to_vec(),
        (_, false) => request.resource_types,
    };
    if wanted.iter().any(|t| !TYPES.contains(t)) {
        response.error_code = ResponseError::UnsupportedVersion.code();
        return response;
    }
    let resource = |name: String, resource_type: i8| {
        let mut r = ConfigResource::default();
        r.resource_name = StrBytes::from_string(name);
        r.resource_type = resource_type;
        r
    };
    for kind in [BROKER, BROKER_LOGGER] {
        if wanted.contains(&kind) {
            response.config_resources.extend(
                broker_ids(shard)
                    .into_iter()
                    .map(|id| resource(id.to_string(), kind)),
            );
        }
    }
    if wanted.contains(&TOPIC) {
        let topics = shard.topics();
        response.config_resources.extend(
            topics
                .topics
                .keys()
                .map(|name| resource(name.clone(), TOPIC)),
        );
    }
    if wanted.contains(&CLIENT_METRICS) {
        let topics = shard.topics();
        response.config_resources.extend(
            topics
                .client_metrics
                .iter()
                .map(|(name, _)| resource(name.clone(), CLIENT_METRICS)),
        );
    }
    if wanted.contains(&GROUP) {
        let topics = shard.topics();
        response.config_resources.extend(
            topics
                .group_configs
                .iter()
                .map(|(group, _)| resource(group.clone(), GROUP)),
        );
    }
    response
}

/// The brokers clients are told of: the live ones of a cluster, else this
/// node.
fn broker_ids(shard: &Shard) -> Vec<i32> {
    match shard.topics().cluster.as_deref() {
        Some(view) => view.image.live_brokers().map(|b| b.id).collect(),
        None => vec![shard.config.node_id],
    }
}

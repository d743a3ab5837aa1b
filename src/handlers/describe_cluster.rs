//! DescribeCluster (KIP-700): the brokers, the cluster id and the active
//! controller, as the admin clients ask for them.

use std::rc::Rc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::ApiSpec;
use crate::shard::Shard;

/// v2 lists fenced brokers when asked (KIP-1073, `kafka-cluster.sh
/// list-endpoints --include-fenced-brokers`).
pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::DescribeCluster,
    min: 0,
    max: 2,
};

/// Kafka's EndpointType: brokers (1) or controllers (2).
const ENDPOINT_BROKERS: i8 = 1;
/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Open to every principal, as in Kafka; the cluster's authorized
/// operations (when asked) are 0 without Describe on the cluster.
pub fn handle(
    shard: &Rc<Shard>,
    access: &super::access::Access,
    header: &RequestHeader,
    client: &super::Client,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    response.endpoint_type = ENDPOINT_BROKERS;
    if header.request_api_version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        // This node's controller endpoints are not served to clients.
        response.error_code = ResponseError::UnsupportedEndpointType.code();
        response.error_message = Some(StrBytes::from_static_str(
            "only broker endpoints are described",
        ));
        return response;
    }
    let node = shard.config.node_id;
    response.cluster_id = StrBytes::from_string(super::metadata::cluster_id(shard));
    response.controller_id = BrokerId(super::metadata::controller_id(shard));
    response.cluster_authorized_operations = if request.include_cluster_authorized_operations {
        access.cluster_operations()
    } else {
        OPERATIONS_OMITTED
    };
    let with_fenced = header.request_api_version >= 2 && request.include_fenced_brokers;
    response.brokers = match shard.topics().cluster.as_deref() {
        Some(view) => view
            .image
            .brokers
            .values()
            .filter(|b| with_fenced || !b.fenced)
            .filter_map(|b| {
                let endpoint = b.endpoint(&client.session.listener.name)?;
                let mut broker = DescribeClusterBroker::default();
                broker.broker_id = BrokerId(b.id);
                broker.host = StrBytes::from_string(endpoint.host.clone());
                broker.port = i32::from(endpoint.port);
                broker.rack = b.rack.clone().map(StrBytes::from_string);
                broker.is_fenced = b.fenced;
                Some(broker)
            })
            .collect(),
        None => {
            let mut broker = DescribeClusterBroker::default();
            broker.broker_id = BrokerId(node);
            let advertised = &client.session.listener.advertised;
            broker.host = StrBytes::from_string(advertised.0.clone());
            broker.port = advertised.1;
            vec![broker]
        }
    };
    response
}

//! ApiVersions: what this broker serves, straight from [`super::APIS`]
//! (those its config enables, [`super::enabled`]), and from v3 its
//! feature levels ([`super::features`]).

use std::rc::Rc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::{enabled, ApiSpec, APIS};
use crate::config::BrokerConfig;
use crate::shard::Shard;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ApiVersions,
    min: 0,
    max: 4,
};

pub fn handle(
    shard: &Rc<Shard>,
    header: &RequestHeader,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = supported(&shard.config);
    super::features::list(shard, header.request_api_version, &mut response);
    response
}

/// The answer to a version newer than ours (encoded as v0): the error and,
/// as Kafka's `ApiVersionsRequest.getErrorResponse` does since KIP-511,
/// only ApiVersions' own range, so the client retries with a version both
/// sides know and learns the rest from that answer.
pub fn unsupported_version() -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = ResponseError::UnsupportedVersion.code();
    response.api_keys = vec![api_version(&SPEC)];
    response
}

/// Every API `config` enables, with its versions.
fn supported(config: &BrokerConfig) -> Vec<ApiVersion> {
    APIS.iter()
        .filter(|api| enabled(config, api.key))
        .map(api_version)
        .collect()
}

fn api_version(api: &ApiSpec) -> ApiVersion {
    let mut v = ApiVersion::default();
    v.api_key = api.key as i16;
    v.min_version = api.min;
    v.max_version = api.max;
    v
}

//! ApiVersions: what this broker serves, straight from [`super::APIS`],
//! and from v3 its feature levels ([`super::features`]).

use std::rc::Rc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::{ApiSpec, APIS};
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
    response.api_keys = supported();
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
    response.api_keys = supported()
        .into_iter()
        .filter(|v| v.api_key == ApiKey::ApiVersions as i16)
        .collect();
    response
}

fn supported() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|api| {
            let mut v = ApiVersion::default();
            v.api_key = api.key as i16;
            v.min_version = api.min;
            v.max_version = api.max;
            v
        })
        .collect()
}

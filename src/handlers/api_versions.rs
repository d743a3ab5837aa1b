//! ApiVersions: what this broker serves, straight from [`super::APIS`].

use std::rc::Rc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::ResponseError;

use super::{ApiSpec, APIS};
use crate::shard::Shard;

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::ApiVersions,
    min: 0,
    max: 3,
};

pub fn handle(
    _shard: &Rc<Shard>,
    _header: &RequestHeader,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = supported();
    response
}

/// The answer to a version newer than ours: the error and our list, in v0.
pub fn unsupported_version() -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = ResponseError::UnsupportedVersion.code();
    response.api_keys = supported();
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

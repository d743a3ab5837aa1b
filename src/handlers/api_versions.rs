//! ApiVersions: what this broker serves, straight from [`super::APIS`],
//! and from v3 its feature levels ([`super::features`]).
//!
//! The client telemetry pair (KIP-714) is advertised only with a
//! `/metrics` endpoint to show pushed metrics on, as Kafka advertises it
//! only with a metrics reporter that takes them: without one, clients
//! do not collect and push metrics no one can read.

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
    let telemetry = shard.config.metrics_listen.is_some();
    response.api_keys = supported()
        .into_iter()
        .filter(|v| telemetry || !is_telemetry(v.api_key))
        .collect();
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

fn is_telemetry(key: i16) -> bool {
    key == ApiKey::GetTelemetrySubscriptions as i16 || key == ApiKey::PushTelemetry as i16
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

//! GetTelemetrySubscriptions and PushTelemetry (KIP-714): a client asks
//! what metrics to push and how often, then pushes them; the broker's
//! `client_metrics::ClientTelemetry` checks each request as Kafka's
//! ClientMetricsManager does and keeps the metrics for `/metrics`.
//!
//! Kafka serves these only with a metrics reporter plugin that takes
//! client metrics; Sluice's `/metrics` is that reporter, so they are
//! served when it is (`handlers::enabled`). With no subscription a
//! client is asked for nothing and only asks again once per push
//! interval. Neither needs an ACL, as in Kafka.

use kafka_protocol::messages::{
    ApiKey, GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse,
    PushTelemetryRequest, PushTelemetryResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::{ApiSpec, Client};
use crate::client_metrics::registry::ACCEPTED_COMPRESSION;
use crate::client_metrics::{ClientIdentity, Push, Subscribed};
use crate::metadata::Topics;
use crate::services::Services;

pub const GET_TELEMETRY_SUBSCRIPTIONS: ApiSpec = ApiSpec {
    key: ApiKey::GetTelemetrySubscriptions,
    min: 0,
    max: 0,
};
pub const PUSH_TELEMETRY: ApiSpec = ApiSpec {
    key: ApiKey::PushTelemetry,
    min: 0,
    max: 0,
};

pub fn subscriptions(
    services: &Services,
    client: &Client,
    header: &RequestHeader,
    request: GetTelemetrySubscriptionsRequest,
) -> GetTelemetrySubscriptionsResponse {
    let topics = services.shard.topics();
    let mut response = GetTelemetrySubscriptionsResponse::default();
    let asked = services.telemetry.subscribe(
        subscribed(&topics),
        request.client_instance_id,
        identity(client, header),
        crate::runtime::now_ms(),
    );
    match asked {
        Ok((id, subscription)) => {
            response.client_instance_id = id;
            response.subscription_id = subscription.id;
            response.accepted_compression_types =
                ACCEPTED_COMPRESSION.iter().map(|c| c.id() as i8).collect();
            response.push_interval_ms = subscription.interval_ms;
            response.telemetry_max_bytes =
                i32::try_from(services.telemetry.max_bytes()).unwrap_or(i32::MAX);
            // Cumulative sums: what Prometheus takes as counters.
            response.delta_temporality = false;
            response.requested_metrics = subscription
                .metrics
                .into_iter()
                .map(StrBytes::from_string)
                .collect();
        }
        Err(e) => response.error_code = e.code(),
    }
    response
}

pub fn push(
    services: &Services,
    client: &Client,
    header: &RequestHeader,
    request: PushTelemetryRequest,
) -> PushTelemetryResponse {
    let topics = services.shard.topics();
    let mut response = PushTelemetryResponse::default();
    let pushed = services.telemetry.push(
        subscribed(&topics),
        Push {
            instance: request.client_instance_id,
            subscription_id: request.subscription_id,
            terminating: request.terminating,
            compression: request.compression_type,
            metrics: &request.metrics,
        },
        identity(client, header),
        crate::runtime::now_ms(),
    );
    if let Err(e) = pushed {
        tracing::debug!(client = %client.software(), error = %e, "telemetry push refused");
        response.error_code = e.code();
    }
    response
}

/// The subscriptions of this shard's snapshot.
fn subscribed(topics: &Topics) -> Subscribed<'_> {
    Subscribed {
        configs: &topics.client_metrics,
        version: topics.version,
    }
}

/// The connection's client as subscriptions match it.
fn identity(client: &Client, header: &RequestHeader) -> ClientIdentity {
    let (software_name, software_version) = client.software_parts();
    ClientIdentity {
        client_id: header
            .client_id
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        software_name,
        software_version,
        source_address: client.ip.map(|ip| ip.to_string()).unwrap_or_default(),
        source_port: client.port.map(|p| p.to_string()).unwrap_or_default(),
    }
}

//! Client metrics (KIP-714): subscriptions as CLIENT_METRICS config
//! resources (`kafka-client-metrics.sh`, `kafka-configs --entity-type
//! client-metrics`) set, refused, described, listed, kept across a restart
//! and carried to every broker of a cluster; GetTelemetrySubscriptions and
//! PushTelemetry checked as Kafka checks them; and librdkafka's own pushes
//! landing at `/metrics`. The Java client's pushes: tests/java_clients.rs.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::raw::{self, RawClient};
use common::*;
use kafka_protocol::messages::{
    GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse,
    ListConfigResourcesRequest, ListConfigResourcesResponse, PushTelemetryRequest,
    PushTelemetryResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, MetricsData, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use prost::Message;
use rdkafka::producer::Producer;

const CLIENT_METRICS: i8 = 16;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const SOURCE_CLIENT_METRICS: i8 = 7;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
const INVALID_RECORD: i16 = 87;
const UNKNOWN_SUBSCRIPTION_ID: i16 = 117;
const TELEMETRY_TOO_LARGE: i16 = 118;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const ZSTD: i8 = 4;

/// (name, value, source) of each config subscription `name` has.
fn describe(c: &mut RawClient, name: &str) -> Vec<(String, String, i8)> {
    c.describe_configs(CLIENT_METRICS, name, false)
        .iter()
        .map(|e| {
            (
                e.name.to_string(),
                e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                e.config_source,
            )
        })
        .collect()
}

/// The subscriptions ListConfigResources names at `version`.
fn listed(c: &mut RawClient, version: i16) -> Vec<String> {
    let request = ListConfigResourcesRequest::default().with_resource_types(if version == 0 {
        Vec::new()
    } else {
        vec![CLIENT_METRICS]
    });
    let r: ListConfigResourcesResponse = c.call(version, &request);
    assert_eq!(r.error_code, 0, "{r:?}");
    r.config_resources
        .iter()
        .map(|r| r.resource_name.to_string())
        .collect()
}

fn subscribe(c: &mut RawClient, name: &str, configs: &[(&str, &str)]) -> (i16, Option<String>) {
    let ops: Vec<(&str, i8, Option<&str>)> = configs
        .iter()
        .map(|(k, v)| (*k, OP_SET, Some(*v)))
        .collect();
    c.incremental_alter(1, CLIENT_METRICS, name, &ops)
}

fn get_subscriptions(c: &mut RawClient, id: uuid::Uuid) -> GetTelemetrySubscriptionsResponse {
    c.call(
        0,
        &GetTelemetrySubscriptionsRequest::default().with_client_instance_id(id),
    )
}

fn push(
    c: &mut RawClient,
    id: uuid::Uuid,
    subscription_id: i32,
    compression: i8,
    metrics: Vec<u8>,
) -> i16 {
    let r: PushTelemetryResponse = c.call(
        0,
        &PushTelemetryRequest::default()
            .with_client_instance_id(id)
            .with_subscription_id(subscription_id)
            .with_compression_type(compression)
            .with_metrics(metrics.into()),
    );
    r.error_code
}

/// An OTLP payload of one monotonic cumulative sum with a `topic`
/// attribute, as a Kafka client encodes its counters.
fn counter(name: &str, value: i64) -> Vec<u8> {
    let point = NumberDataPoint {
        attributes: vec![KeyValue {
            key: "topic".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("orders".into())),
            }),
            ..Default::default()
        }],
        value: Some(number_data_point::Value::AsInt(value)),
        ..Default::default()
    };
    MetricsData {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: vec![point],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Lines of `/metrics` that start with `prefix` and contain `text`, once
/// there are some, or none after about 30 s.
fn wait_series(broker: &Broker, prefix: &str, text: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines: Vec<String> = broker
            .metrics_text()
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(text))
            .map(str::to_string)
            .collect();
        if !lines.is_empty() || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn subscriptions_are_config_resources_set_refused_described_listed_and_kept() {
    let mut broker = Broker::start(2);
    let mut c = RawClient::connect(&broker.bootstrap());
    assert_eq!(
        subscribe(
            &mut c,
            "producers",
            &[
                ("metrics", "org.apache.kafka.producer."),
                ("interval.ms", "1000"),
                ("match", "client_software_name=librdkafka,client_id=app-.*"),
            ],
        ),
        (0, None)
    );
    assert_eq!(
        c.incremental_alter(
            1,
            CLIENT_METRICS,
            "producers",
            &[("metrics", OP_APPEND, Some("org.apache.kafka.consumer."))],
        ),
        (0, None)
    );
    // Refused as Kafka refuses them, and nothing of them kept.
    for (name, configs, code) in [
        ("bad", &[("interval.ms", "50")][..], INVALID_CONFIG),
        ("bad", &[("interval.ms", "3600001")][..], INVALID_CONFIG),
        ("bad", &[("match", "client_colour=red")][..], INVALID_CONFIG),
        (
            "bad",
            &[("match", "client_id=(unclosed")][..],
            INVALID_CONFIG,
        ),
        ("bad", &[("no.such.config", "1")][..], INVALID_REQUEST),
        ("", &[("metrics", "*")][..], INVALID_REQUEST),
    ] {
        let (error, message) = subscribe(&mut c, name, configs);
        assert_eq!(error, code, "{configs:?}: {message:?}");
    }
    let expected = vec![
        (
            "interval.ms".to_string(),
            "1000".to_string(),
            SOURCE_CLIENT_METRICS,
        ),
        (
            "match".into(),
            "client_software_name=librdkafka,client_id=app-.*".into(),
            SOURCE_CLIENT_METRICS,
        ),
        (
            "metrics".into(),
            "org.apache.kafka.producer.,org.apache.kafka.consumer.".into(),
            SOURCE_CLIENT_METRICS,
        ),
    ];
    assert_eq!(describe(&mut c, "producers"), expected);
    assert!(
        describe(&mut c, "bad").is_empty(),
        "a refused one is not kept"
    );
    assert_eq!(listed(&mut c, 0), ["producers"]);
    assert_eq!(listed(&mut c, 1), ["producers"]);

    broker.restart();
    let mut c = RawClient::connect(&broker.bootstrap());
    assert_eq!(
        describe(&mut c, "producers"),
        expected,
        "kept across a restart"
    );
    // Deleting every config deletes the subscription.
    let ops = [
        ("metrics", OP_DELETE, None),
        ("interval.ms", OP_DELETE, None),
        ("match", OP_DELETE, None),
    ];
    assert_eq!(
        c.incremental_alter(1, CLIENT_METRICS, "producers", &ops),
        (0, None)
    );
    assert!(listed(&mut c, 1).is_empty());
}

/// The telemetry APIs are served only with a `/metrics` endpoint to show
/// pushed metrics on (Kafka: only with a metrics reporter taking them):
/// without one they are not advertised, and a request for one closes its
/// connection as for any API a broker does not serve.
#[test]
fn the_telemetry_apis_are_served_with_a_metrics_endpoint() {
    use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
    let advertised = |broker: &Broker| {
        let mut c = RawClient::connect(&broker.bootstrap());
        let r: ApiVersionsResponse = c.call(3, &raw::api_versions_request());
        [ApiKey::GetTelemetrySubscriptions, ApiKey::PushTelemetry]
            .map(|key| r.api_keys.iter().any(|v| v.api_key == key as i16))
    };
    let without = Broker::start(1);
    assert_eq!(advertised(&without), [false, false]);
    let mut c = RawClient::connect(&without.bootstrap());
    c.send(0, &GetTelemetrySubscriptionsRequest::default());
    assert!(c.wait_closed(Duration::from_secs(10)), "answered unserved");
    let with_metrics = Broker::start_with(1, &["--metrics-listen", "127.0.0.1:0"]);
    assert_eq!(advertised(&with_metrics), [true, true]);
}

/// In a cluster a subscription is metadata: set through one broker, every
/// broker describes it and asks its clients for it.
#[test]
fn a_subscription_set_on_one_broker_reaches_every_broker() {
    let cluster = Cluster::start_with(3, &["--metrics-listen", "127.0.0.1:0"]);
    let mut first = RawClient::connect(&cluster.client_addr(1));
    assert_eq!(
        subscribe(
            &mut first,
            "everything",
            &[("metrics", "*"), ("interval.ms", "2000")]
        ),
        (0, None)
    );
    for id in [2, 3] {
        let mut c = RawClient::connect(&cluster.client_addr(id));
        cluster.wait_until(
            &format!("broker {id} describes the subscription"),
            Duration::from_secs(30),
            || !describe(&mut c, "everything").is_empty(),
        );
        let r = get_subscriptions(&mut c, uuid::Uuid::nil());
        assert_eq!(r.error_code, 0, "{r:?}");
        assert_eq!(r.push_interval_ms, 2000, "broker {id}: {r:?}");
        let metrics: Vec<&str> = r.requested_metrics.iter().map(|m| m.as_str()).collect();
        assert_eq!(metrics, ["*"], "broker {id}");
    }
}

/// A new client instance and the subscription it was answered.
fn new_instance(c: &mut RawClient) -> (uuid::Uuid, i32) {
    let r = get_subscriptions(c, uuid::Uuid::nil());
    assert_eq!(r.error_code, 0, "{r:?}");
    assert!(
        !r.client_instance_id.is_nil(),
        "a new client gets an instance id"
    );
    (r.client_instance_id, r.subscription_id)
}

#[test]
fn telemetry_requests_are_checked_as_kafka_checks_them() {
    let broker = Broker::start_with(
        2,
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--telemetry-max-bytes",
            "4096",
        ],
    );
    let mut c = RawClient::connect(&broker.bootstrap());
    // No subscription: a client is asked for nothing, at Kafka's default.
    let none = get_subscriptions(&mut c, uuid::Uuid::nil());
    assert_eq!(none.error_code, 0, "{none:?}");
    assert!(none.requested_metrics.is_empty(), "{none:?}");
    assert_eq!(none.push_interval_ms, 300_000);

    assert_eq!(
        subscribe(
            &mut c,
            "tests",
            &[
                ("metrics", "org.apache.kafka.producer."),
                ("interval.ms", "60000"),
                ("match", "client_software_name=sluice-tests"),
            ],
        ),
        (0, None)
    );
    let mut c = RawClient::connect(&broker.bootstrap());
    c.call(3, &raw::api_versions_request());
    let r = get_subscriptions(&mut c, uuid::Uuid::nil());
    assert_eq!(r.error_code, 0, "{r:?}");
    let id = r.client_instance_id;
    let metrics: Vec<&str> = r.requested_metrics.iter().map(|m| m.as_str()).collect();
    assert_eq!(metrics, ["org.apache.kafka.producer."]);
    assert_eq!((r.push_interval_ms, r.telemetry_max_bytes), (60_000, 4096));
    assert_eq!(
        r.accepted_compression_types,
        [4, 3, 1, 2],
        "zstd, lz4, gzip, snappy"
    );
    assert!(!r.delta_temporality, "cumulative, as Prometheus counts");
    // Asking again within the interval is throttled.
    assert_eq!(
        get_subscriptions(&mut c, id).error_code,
        THROTTLING_QUOTA_EXCEEDED
    );
    // A client whose software the subscription does not match is asked
    // for nothing.
    let mut other = RawClient::connect(&broker.bootstrap());
    let unmatched = get_subscriptions(&mut other, uuid::Uuid::nil());
    assert!(unmatched.requested_metrics.is_empty(), "{unmatched:?}");

    // The first push after the answer, compressed as clients send it; the
    // next one within the interval is throttled.
    let name = "org.apache.kafka.producer.record.send.total";
    let zstd = zstd::encode_all(&counter(name, 42)[..], 3).expect("zstd");
    assert_eq!(push(&mut c, id, r.subscription_id, ZSTD, zstd), 0);
    assert_eq!(
        push(&mut c, id, r.subscription_id, 0, counter(name, 43)),
        THROTTLING_QUOTA_EXCEEDED
    );
    let series = wait_series(
        &broker,
        "org_apache_kafka_producer_record_send_total{",
        &format!("client_instance_id=\"{id}\""),
    );
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(
        series[0].contains("client_software_name=\"sluice-tests\"")
            && series[0].contains("topic=\"orders\"")
            && series[0].ends_with(" 42"),
        "{series:?}"
    );

    // Each refusal on an instance of its own, so no interval is in the way:
    // an unknown subscription (after which the client may ask at once), a
    // payload over telemetry.max.bytes, an unknown codec, unreadable bytes.
    let (unknown, subscription) = new_instance(&mut c);
    assert_eq!(
        push(&mut c, unknown, subscription + 1, 0, counter(name, 44)),
        UNKNOWN_SUBSCRIPTION_ID
    );
    let again = get_subscriptions(&mut c, unknown);
    assert_eq!((again.error_code, again.client_instance_id), (0, unknown));
    let (large, subscription) = new_instance(&mut c);
    assert_eq!(
        push(&mut c, large, subscription, 0, vec![0; 4097]),
        TELEMETRY_TOO_LARGE
    );
    let (codec, subscription) = new_instance(&mut c);
    assert_eq!(
        push(&mut c, codec, subscription, 9, counter(name, 45)),
        UNSUPPORTED_COMPRESSION_TYPE
    );
    let (garbage, subscription) = new_instance(&mut c);
    assert_eq!(
        push(&mut c, garbage, subscription, 0, b"\xff\xff\xff".to_vec()),
        INVALID_RECORD
    );
    assert_eq!(
        push(&mut c, uuid::Uuid::nil(), subscription, 0, Vec::new()),
        INVALID_REQUEST
    );
    // None of the refused pushes made or changed a series.
    let series = wait_series(&broker, "org_apache_kafka_producer_record_send_total{", "");
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(series[0].ends_with(" 42"), "{series:?}");

    // A subscription changed under a client: its next push is told so, and
    // it asks again for the new one.
    let (changed, old) = new_instance(&mut c);
    assert_eq!(
        subscribe(&mut other, "tests", &[("interval.ms", "30000")]),
        (0, None)
    );
    assert_eq!(
        push(&mut c, changed, old, 0, counter(name, 46)),
        UNKNOWN_SUBSCRIPTION_ID
    );
    let renewed = get_subscriptions(&mut c, changed);
    assert_eq!((renewed.error_code, renewed.push_interval_ms), (0, 30_000));
    assert_eq!(
        push(
            &mut c,
            changed,
            renewed.subscription_id,
            0,
            counter(name, 47)
        ),
        0
    );
    assert!(broker.metric("sluice_client_telemetry_pushes_total") >= 2);
    assert!(broker.metric("sluice_client_telemetry_refused_total") >= 6);
}

/// librdkafka (the `rdkafka` crate's) with its defaults
/// (`enable.metrics.push=true`) asks for its subscription and pushes its
/// producer metrics, which `/metrics` serves under its client id.
#[test]
fn librdkafka_pushes_its_metrics_when_subscribed() {
    let broker = Broker::start_with(2, &["--metrics-listen", "127.0.0.1:0"]);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(&bs);
    assert_eq!(
        subscribe(
            &mut c,
            "librdkafka",
            &[
                ("metrics", "org.apache.kafka.producer."),
                ("interval.ms", "500"),
                ("match", "client_software_name=librdkafka"),
            ],
        ),
        (0, None)
    );
    create_topic(&bs, "telemetry", 1, &[]);
    let producer: rdkafka::producer::BaseProducer = producer_config(&bs)
        .set("client.id", "pushing-producer")
        .create()
        .expect("producer");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut series = Vec::new();
    while series.is_empty() && Instant::now() < deadline {
        let record = rdkafka::producer::BaseRecord::<[u8], [u8]>::to("telemetry").payload(b"v");
        producer.send(record).map_err(|(e, _)| e).expect("send");
        producer.poll(Duration::from_millis(200));
        series = broker
            .metrics_text()
            .lines()
            .filter(|l| {
                l.starts_with("org_apache_kafka_producer_")
                    && l.contains("client_id=\"pushing-producer\"")
                    && l.contains("client_software_name=\"librdkafka\"")
            })
            .map(str::to_string)
            .collect();
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    assert!(
        !series.is_empty(),
        "no librdkafka metrics at /metrics:\n{}",
        broker.metrics_text()
    );
    assert!(broker.metric("sluice_client_telemetry_pushes_total") >= 1);
}

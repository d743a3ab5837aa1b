//! The metrics a client pushed (OTLP `MetricsData`, KIP-714's payload),
//! kept as series for `/metrics`: gauges and sums, by metric name and
//! data point attributes. Histograms and summaries are skipped: Kafka's
//! clients send none of the standard metrics as one.

use std::collections::BTreeMap;
use std::fmt::Write;

use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, MetricsData, NumberDataPoint,
};
use prost::Message;

/// Attributes kept per data point; the rest are dropped.
pub const ATTRIBUTES_MAX: usize = 16;
/// Longest metric name, attribute name or value kept (a longer one is cut).
pub const TEXT_MAX: usize = 256;

/// The labels naming the client on each of its series (`registry`); an
/// attribute of the same name is kept as `attr_<name>`.
pub const IDENTITY_LABELS: [&str; 5] = [
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
];

/// How Prometheus should read a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// A series' name (Prometheus-safe) and its attributes as labels.
pub type SeriesKey = (String, Vec<(String, String)>);

/// One data point read from a push.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub key: SeriesKey,
    pub kind: Kind,
    pub value: f64,
    /// A delta sum: added to what the series held.
    pub delta: bool,
}

/// A push's data points, and how many were skipped (not a number).
#[derive(Debug, Default)]
pub struct Decoded {
    pub points: Vec<Point>,
    pub skipped: usize,
}

/// Reads an (uncompressed) OTLP `MetricsData` payload.
pub fn decode(payload: &[u8]) -> Result<Decoded, prost::DecodeError> {
    let data = MetricsData::decode(payload)?;
    let mut decoded = Decoded::default();
    let metrics = data
        .resource_metrics
        .into_iter()
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics);
    for m in metrics {
        let name = prometheus_name(&m.name);
        let (kind, delta, points) = match m.data {
            Some(metric::Data::Gauge(g)) => (Kind::Gauge, false, g.data_points),
            Some(metric::Data::Sum(s)) => (
                if s.is_monotonic {
                    Kind::Counter
                } else {
                    Kind::Gauge
                },
                s.aggregation_temporality == AggregationTemporality::Delta as i32,
                s.data_points,
            ),
            _ => {
                decoded.skipped += 1;
                continue;
            }
        };
        for p in points {
            let Some(value) = number(&p) else {
                decoded.skipped += 1;
                continue;
            };
            decoded.points.push(Point {
                key: (name.clone(), labels(&p.attributes)),
                kind,
                value,
                delta,
            });
        }
    }
    Ok(decoded)
}

fn number(p: &NumberDataPoint) -> Option<f64> {
    match p.value? {
        number_data_point::Value::AsDouble(v) => Some(v),
        number_data_point::Value::AsInt(v) => Some(v as f64),
    }
}

/// Attributes as labels, sorted by name, at most [`ATTRIBUTES_MAX`].
fn labels(attributes: &[KeyValue]) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = attributes
        .iter()
        .take(ATTRIBUTES_MAX)
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => cut(s).to_string(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                _ => String::new(),
            };
            let name = label_name(&kv.key);
            let name = if IDENTITY_LABELS.contains(&name.as_str()) {
                format!("attr_{name}")
            } else {
                name
            };
            (name, value)
        })
        .collect();
    labels.sort();
    labels.dedup_by(|a, b| a.0 == b.0);
    labels
}

fn cut(text: &str) -> &str {
    &text[..text.floor_char_boundary(TEXT_MAX)]
}

/// `org.apache.kafka.producer.record.queue.time.avg` as Prometheus may
/// name it: `org_apache_kafka_producer_record_queue_time_avg`.
pub fn prometheus_name(name: &str) -> String {
    safe(cut(name), |c| {
        c.is_ascii_alphanumeric() || c == '_' || c == ':'
    })
}

/// A label name Prometheus takes (`node.id` -> `node_id`).
fn label_name(name: &str) -> String {
    safe(cut(name), |c| c.is_ascii_alphanumeric() || c == '_')
}

fn safe(text: &str, allowed: impl Fn(char) -> bool) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// One client's series.
#[derive(Clone, Debug, Default)]
pub struct Series(BTreeMap<SeriesKey, (Kind, f64)>);

impl Series {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes a push's points: a value replaces the series' (a delta sum
    /// adds to it); a new series only while `room` allows. Returns how
    /// many new series were made and how many were dropped for room.
    pub fn apply(&mut self, points: Vec<Point>, mut room: usize) -> (usize, usize) {
        let (mut made, mut dropped) = (0, 0);
        for p in points {
            match self.0.get_mut(&p.key) {
                Some((kind, value)) => {
                    *kind = p.kind;
                    *value = if p.delta { *value + p.value } else { p.value };
                }
                None if room > 0 => {
                    room -= 1;
                    made += 1;
                    self.0.insert(p.key, (p.kind, p.value));
                }
                None => dropped += 1,
            }
        }
        (made, dropped)
    }
}

/// Prometheus text for every client's series, each metric name once with
/// its type; `clients` are (identity labels, series).
pub fn render<'a>(out: &mut String, clients: impl Iterator<Item = (&'a str, &'a Series)>) {
    let mut by_name: BTreeMap<&str, (Kind, Vec<String>)> = BTreeMap::new();
    for (identity, series) in clients {
        for ((name, labels), (kind, value)) in &series.0 {
            let mut line = format!("{name}{{{identity}");
            for (k, v) in labels {
                let _ = write!(line, ",{k}=\"{}\"", crate::stats::escape_label(v));
            }
            let _ = write!(line, "}} {}", prometheus_value(*value));
            by_name
                .entry(name.as_str())
                .or_insert_with(|| (*kind, Vec::new()))
                .1
                .push(line);
        }
    }
    for (name, (kind, lines)) in by_name {
        let _ = writeln!(out, "# TYPE {name} {}", kind.name());
        for line in lines {
            out.push_str(&line);
            out.push('\n');
        }
    }
}

/// A sample value in Prometheus text (its infinities are `+Inf`, `-Inf`).
fn prometheus_value(value: f64) -> String {
    match value {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum,
    };

    fn attribute(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn point(value: number_data_point::Value, attributes: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            value: Some(value),
            ..Default::default()
        }
    }

    fn payload(metrics: Vec<Metric>) -> Vec<u8> {
        MetricsData {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn gauges_and_sums_become_series_with_their_attributes() {
        let bytes = payload(vec![
            Metric {
                name: "org.apache.kafka.producer.record.queue.time.avg".into(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![point(
                        number_data_point::Value::AsDouble(1.5),
                        vec![
                            attribute("topic", any_value::Value::StringValue("t\"1".into())),
                            attribute("partition", any_value::Value::IntValue(3)),
                        ],
                    )],
                })),
                ..Default::default()
            },
            Metric {
                name: "org.apache.kafka.producer.node.request.total".into(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: vec![point(
                        number_data_point::Value::AsInt(7),
                        vec![attribute(
                            "node.id",
                            any_value::Value::StringValue("1".into()),
                        )],
                    )],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    is_monotonic: true,
                })),
                ..Default::default()
            },
            Metric {
                name: "latency".into(),
                data: Some(metric::Data::Histogram(Histogram::default())),
                ..Default::default()
            },
        ]);
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.skipped, 1);
        let mut series = Series::default();
        assert_eq!(series.apply(decoded.points, 10), (2, 0));
        // A delta sum adds up; a gauge is replaced.
        let again = decode(&bytes).expect("decodes");
        assert_eq!(series.apply(again.points, 0), (0, 0));
        let mut out = String::new();
        render(&mut out, std::iter::once(("client_id=\"c\"", &series)));
        assert_eq!(
            out,
            "# TYPE org_apache_kafka_producer_node_request_total counter\n\
             org_apache_kafka_producer_node_request_total{client_id=\"c\",node_id=\"1\"} 14\n\
             # TYPE org_apache_kafka_producer_record_queue_time_avg gauge\n\
             org_apache_kafka_producer_record_queue_time_avg{client_id=\"c\",partition=\"3\",topic=\"t\\\"1\"} 1.5\n"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// Whatever a client sends, reading it and keeping its points ends
        /// in series or an error, never a panic, and the series stay within
        /// the room given.
        #[test]
        fn mutated_payloads_never_panic(
            flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..16),
            cut in 0usize..4096,
        ) {
            let mut bytes = payload(vec![Metric {
                name: "org.apache.kafka.producer.record.send.total".into(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: vec![point(
                        number_data_point::Value::AsInt(7),
                        vec![attribute("node.id", any_value::Value::StringValue("1".into()))],
                    )],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                })),
                ..Default::default()
            }]);
            for (at, byte) in flips {
                let at = at % bytes.len();
                bytes[at] ^= byte;
            }
            bytes.truncate(cut.max(1));
            if let Ok(decoded) = decode(&bytes) {
                let mut series = Series::default();
                let (made, _) = series.apply(decoded.points, 4);
                proptest::prop_assert!(made <= 4 && series.len() <= 4);
            }
        }
    }

    #[test]
    fn new_series_stop_at_the_room_given_and_garbage_is_refused() {
        let metrics = (0..5)
            .map(|i| Metric {
                name: format!("m{i}"),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![point(number_data_point::Value::AsInt(i), vec![])],
                })),
                ..Default::default()
            })
            .collect();
        let decoded = decode(&payload(metrics)).expect("decodes");
        let mut series = Series::default();
        assert_eq!(series.apply(decoded.points, 3), (3, 2));
        assert_eq!(series.len(), 3);
        assert!(decode(b"\xff\xff\xff\xff").is_err());
        assert_eq!(prometheus_name("9.lives"), "_9_lives");
        assert_eq!(
            [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.5].map(prometheus_value),
            ["+Inf", "-Inf", "NaN", "0.5"]
        );
    }
}

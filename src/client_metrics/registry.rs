//! The client instances this broker hears from (Kafka's
//! ClientMetricsManager): what each was told to push, when it last asked
//! and pushed, and the series its pushes left for `/metrics`.
//!
//! One per broker, shared by its shards behind a lock: telemetry is a
//! request per client every push interval (minutes by default), far from
//! the produce and fetch path, and a client's instance must be found
//! whichever shard its connection lands on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::configs::ClientMetricsConfigs;
use super::series::{self, Series};
use super::subscription::{ClientIdentity, Subscription, Subscriptions};
use crate::compression::Codec;

/// Client instances remembered (Kafka's cache size); past it the one
/// heard from longest ago is forgotten.
pub const INSTANCES_MAX: usize = 16_384;
/// An instance not heard from for this long, or for three of its push
/// intervals if that is longer, is forgotten with its series.
pub const EXPIRY_MS_MIN: i64 = 60_000;
/// A compressed push may grow this many times its size, and no more.
pub const DECOMPRESSED_FACTOR: usize = 16;
/// How often forgotten instances are looked for.
const SWEEP_INTERVAL_MS: i64 = 1_000;

/// Why a telemetry request was refused, with the Kafka error it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid client instance id")]
    InvalidInstanceId,
    #[error("the client instance said it was terminating and may push no more")]
    Terminated,
    #[error("the request came before the client's push interval passed")]
    Throttled,
    #[error("unknown client subscription id")]
    UnknownSubscription,
    #[error("the compression type is not one this broker accepts")]
    UnsupportedCompression,
    #[error("the metrics are larger than telemetry_max_bytes")]
    TooLarge,
    #[error("the metrics cannot be read")]
    Undecodable,
}

impl TelemetryError {
    pub fn code(self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            TelemetryError::InvalidInstanceId | TelemetryError::Terminated => {
                E::InvalidRequest.code()
            }
            TelemetryError::Throttled => E::ThrottlingQuotaExceeded.code(),
            TelemetryError::UnknownSubscription => E::UnknownSubscriptionId.code(),
            TelemetryError::UnsupportedCompression => E::UnsupportedCompressionType.code(),
            TelemetryError::TooLarge => E::TelemetryTooLarge.code(),
            TelemetryError::Undecodable => E::InvalidRecord.code(),
        }
    }
}

/// The subscriptions a request is answered from: the shard's snapshot's,
/// and that snapshot's version.
#[derive(Clone, Copy)]
pub struct Subscribed<'a> {
    pub configs: &'a ClientMetricsConfigs,
    pub version: u64,
}

/// A PushTelemetry request's fields.
pub struct Push<'a> {
    pub instance: Uuid,
    pub subscription_id: i32,
    pub terminating: bool,
    pub compression: i8,
    pub metrics: &'a [u8],
}

/// Compression types pushes may use, as Kafka lists them (best first).
pub const ACCEPTED_COMPRESSION: [Codec; 4] = [Codec::Zstd, Codec::Lz4, Codec::Gzip, Codec::Snappy];

pub struct ClientTelemetry {
    max_bytes: usize,
    series_max: usize,
    state: Mutex<State>,
}

struct State {
    subscriptions: Subscriptions,
    /// The snapshot version `subscriptions` were last checked against:
    /// an older snapshot (another shard's, not yet replaced) is answered
    /// from the newer set rather than compiled again.
    checked_version: u64,
    instances: HashMap<Uuid, Instance>,
    /// Series held by all instances, at most `series_max`.
    series: usize,
    swept_ms: i64,
}

struct Instance {
    identity: ClientIdentity,
    /// `identity` as the labels of each of its series.
    labels: Arc<str>,
    subscription: Subscription,
    last_get_ms: Option<i64>,
    last_push_ms: Option<i64>,
    last_seen_ms: i64,
    last_error: Option<TelemetryError>,
    terminating: bool,
    /// Shared with a `/metrics` render under way, which reads it outside
    /// the lock; a push then changes a copy.
    series: Arc<Series>,
}

impl Instance {
    fn expired(&self, now_ms: i64) -> bool {
        let ttl = EXPIRY_MS_MIN.max(3 * i64::from(self.subscription.interval_ms));
        now_ms - self.last_seen_ms > ttl
    }

    /// Kafka's maybeUpdateGetRequestTimestamp: a client asks again only
    /// once its interval has passed since it last asked or pushed, unless
    /// its last push was refused for a subscription or a codec it must
    /// ask about again.
    fn may_ask(&self, now_ms: i64) -> bool {
        let last = self.last_get_ms.max(self.last_push_ms);
        let retry = matches!(
            self.last_error,
            Some(TelemetryError::UnknownSubscription | TelemetryError::UnsupportedCompression)
        );
        retry || last.is_none_or(|t| now_ms - t >= i64::from(self.subscription.interval_ms))
    }

    /// Kafka's maybeUpdatePushRequestTimestamp: the first push after an
    /// answer is taken whenever it comes (clients jitter it), later ones
    /// once the interval has passed.
    fn may_push(&self, now_ms: i64) -> bool {
        let after_answer = match (self.last_get_ms, self.last_push_ms) {
            (Some(get), Some(push)) => get > push,
            (Some(_), None) => true,
            (None, _) => false,
        };
        after_answer
            || self
                .last_push_ms
                .is_none_or(|t| now_ms - t >= i64::from(self.subscription.interval_ms))
    }
}

impl ClientTelemetry {
    /// `max_bytes`: Kafka's telemetry.max.bytes; `series_max`: series kept
    /// for all clients together.
    pub fn new(max_bytes: usize, series_max: usize) -> ClientTelemetry {
        ClientTelemetry {
            max_bytes: max_bytes.max(1),
            series_max,
            state: Mutex::new(State {
                subscriptions: Subscriptions::new(&ClientMetricsConfigs::default()),
                checked_version: 0,
                instances: HashMap::new(),
                series: 0,
                swept_ms: 0,
            }),
        }
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic under the lock leaves plain data: carry on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// GetTelemetrySubscriptions: the instance id (a new one for a client
    /// that has none) and what it is to push.
    pub fn subscribe(
        &self,
        subscribed: Subscribed<'_>,
        asked: Uuid,
        identity: ClientIdentity,
        now_ms: i64,
    ) -> Result<(Uuid, Subscription), TelemetryError> {
        let mut state = self.state();
        let id = if reserved(asked) {
            loop {
                let id = Uuid::new_v4();
                if !state.instances.contains_key(&id) {
                    break id;
                }
            }
        } else {
            asked
        };
        let instance = state.instance(subscribed, id, identity, now_ms);
        if !instance.may_ask(now_ms) {
            instance.last_error = Some(TelemetryError::Throttled);
            return Err(TelemetryError::Throttled);
        }
        instance.last_get_ms = Some(now_ms);
        instance.last_error = None;
        Ok((id, instance.subscription.clone()))
    }

    /// PushTelemetry: checked as Kafka checks it, then its metrics kept.
    pub fn push(
        &self,
        subscribed: Subscribed<'_>,
        push: Push<'_>,
        identity: ClientIdentity,
        now_ms: i64,
    ) -> Result<(), TelemetryError> {
        let taken = self.take(subscribed, push, identity, now_ms);
        match taken {
            Ok(()) => crate::stats::CLIENT_TELEMETRY_PUSHES.add(1),
            Err(_) => crate::stats::CLIENT_TELEMETRY_REFUSED.add(1),
        }
        taken
    }

    fn take(
        &self,
        subscribed: Subscribed<'_>,
        push: Push<'_>,
        identity: ClientIdentity,
        now_ms: i64,
    ) -> Result<(), TelemetryError> {
        if reserved(push.instance) {
            return Err(TelemetryError::InvalidInstanceId);
        }
        let codec = self.admit(subscribed, &push, identity, now_ms)?;
        if push.metrics.is_empty() {
            return Ok(());
        }
        // Read without the lock: other shards' clients need not wait on it.
        let decoded = match codec {
            Codec::None => series::decode(push.metrics).map_err(|_| TelemetryError::Undecodable),
            codec => crate::compression::decompress(
                codec,
                push.metrics,
                self.max_bytes.saturating_mul(DECOMPRESSED_FACTOR),
            )
            .map_err(|_| TelemetryError::Undecodable)
            .and_then(|bytes| series::decode(&bytes).map_err(|_| TelemetryError::Undecodable)),
        };
        let mut state = self.state();
        let room = self.series_max.saturating_sub(state.series);
        let Some(instance) = state.instances.get_mut(&push.instance) else {
            return Ok(()); // forgotten meanwhile: nothing to keep them for
        };
        let decoded = decoded.inspect_err(|e| instance.last_error = Some(*e))?;
        let (made, dropped) = Arc::make_mut(&mut instance.series).apply(decoded.points, room);
        state.series += made;
        crate::stats::CLIENT_TELEMETRY_SERIES_DROPPED.add(dropped as u64);
        Ok(())
    }

    /// The push's checks, in Kafka's order; the codec its metrics use.
    fn admit(
        &self,
        subscribed: Subscribed<'_>,
        push: &Push<'_>,
        identity: ClientIdentity,
        now_ms: i64,
    ) -> Result<Codec, TelemetryError> {
        let mut state = self.state();
        let instance = state.instance(subscribed, push.instance, identity, now_ms);
        let checked = (|| {
            if instance.terminating {
                return Err(TelemetryError::Terminated);
            }
            if instance.may_push(now_ms) {
                instance.last_push_ms = Some(now_ms);
            } else if !push.terminating {
                return Err(TelemetryError::Throttled);
            }
            if push.subscription_id != instance.subscription.id {
                return Err(TelemetryError::UnknownSubscription);
            }
            let codec = u8::try_from(push.compression)
                .ok()
                .and_then(|id| Codec::from_id(id).ok())
                .filter(|c| *c == Codec::None || ACCEPTED_COMPRESSION.contains(c))
                .ok_or(TelemetryError::UnsupportedCompression)?;
            if push.metrics.len() > self.max_bytes {
                return Err(TelemetryError::TooLarge);
            }
            Ok(codec)
        })();
        match checked {
            Ok(_) => {
                instance.terminating |= push.terminating;
                instance.last_error = None;
            }
            Err(e) => instance.last_error = Some(e),
        }
        checked
    }

    /// What `/metrics` shows of the clients, taken under the lock in time
    /// proportional to the instances (their series are shared, not copied),
    /// to be written out without it.
    pub fn snapshot(&self, now_ms: i64) -> TelemetrySnapshot {
        let mut state = self.state();
        state.sweep(now_ms);
        TelemetrySnapshot {
            instances: state.instances.len(),
            series: state.series,
            clients: state
                .instances
                .values()
                .filter(|i| !i.series.is_empty())
                .map(|i| (i.labels.clone(), i.series.clone()))
                .collect(),
        }
    }
}

/// The clients' series at one moment (`ClientTelemetry::snapshot`).
pub struct TelemetrySnapshot {
    instances: usize,
    series: usize,
    clients: Vec<(Arc<str>, Arc<Series>)>,
}

impl TelemetrySnapshot {
    /// As Prometheus text: the counts, then every client's series.
    pub fn render(&self, out: &mut String) {
        use crate::stats::scalar;
        scalar(
            out,
            "sluice_client_telemetry_instances",
            "Client instances heard from (KIP-714) and not yet forgotten.",
            "gauge",
            self.instances,
        );
        scalar(
            out,
            "sluice_client_telemetry_series",
            "Client metric series kept for clients' pushes.",
            "gauge",
            self.series,
        );
        series::render(
            out,
            self.clients
                .iter()
                .map(|(labels, series)| (labels.as_ref(), series.as_ref())),
        );
    }
}

impl State {
    /// The instance `id`, made if new (forgetting the one heard from
    /// longest ago when full), told what to push now, and seen now.
    fn instance(
        &mut self,
        subscribed: Subscribed<'_>,
        id: Uuid,
        identity: ClientIdentity,
        now_ms: i64,
    ) -> &mut Instance {
        self.sweep(now_ms);
        if subscribed.version > self.checked_version {
            self.checked_version = subscribed.version;
            if !self.subscriptions.is_of(subscribed.configs) {
                self.subscriptions = Subscriptions::new(subscribed.configs);
            }
        }
        if !self.instances.contains_key(&id) && self.instances.len() >= INSTANCES_MAX {
            let oldest = self
                .instances
                .iter()
                .min_by_key(|(_, i)| i.last_seen_ms)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.forget(oldest);
            }
        }
        let subscriptions = &self.subscriptions;
        let instance = self.instances.entry(id).or_insert_with(|| Instance {
            subscription: subscriptions.for_client(id, &identity),
            labels: identity_labels(id, &identity).into(),
            identity,
            last_get_ms: None,
            last_push_ms: None,
            last_seen_ms: now_ms,
            last_error: None,
            terminating: false,
            series: Arc::default(),
        });
        let now = subscriptions.for_client(id, &instance.identity);
        if now.id != instance.subscription.id {
            // What it is asked changed: as Kafka makes a new instance then,
            // it may ask again at once, and what it pushed for the old
            // subscription (maybe no longer asked for) is dropped.
            instance.subscription = now;
            instance.last_get_ms = None;
            instance.last_push_ms = None;
            self.series -= instance.series.len();
            instance.series = Arc::default();
        }
        instance.last_seen_ms = now_ms;
        instance
    }

    fn forget(&mut self, id: Uuid) {
        if let Some(gone) = self.instances.remove(&id) {
            self.series -= gone.series.len();
        }
    }

    fn sweep(&mut self, now_ms: i64) {
        if now_ms - self.swept_ms < SWEEP_INTERVAL_MS {
            return;
        }
        self.swept_ms = now_ms;
        let expired: Vec<Uuid> = self
            .instances
            .iter()
            .filter(|(_, i)| i.expired(now_ms))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.forget(id);
        }
    }
}

/// Kafka's reserved ids (Uuid.RESERVED): the zero id, which asks for a new
/// one, and the metadata topic's.
fn reserved(id: Uuid) -> bool {
    id.is_nil() || id.as_u128() == 1
}

/// The labels every series of a client carries.
fn identity_labels(id: Uuid, identity: &ClientIdentity) -> String {
    let id = id.to_string();
    let values = [
        id.as_str(),
        &identity.client_id,
        &identity.software_name,
        &identity.software_version,
        &identity.source_address,
    ];
    series::IDENTITY_LABELS
        .iter()
        .zip(values)
        .map(|(name, value)| format!("{name}=\"{}\"", crate::stats::escape_label(value)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_metrics::configs::{INTERVAL_MS, METRICS};
    use crate::config::ConfigChange;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Gauge, Metric, MetricsData, NumberDataPoint, ResourceMetrics,
        ScopeMetrics,
    };
    use prost::Message;

    fn every_metric(interval_ms: &str) -> ClientMetricsConfigs {
        ClientMetricsConfigs::default()
            .altered(
                "all",
                vec![
                    (METRICS.into(), ConfigChange::Set("*".into())),
                    (INTERVAL_MS.into(), ConfigChange::Set(interval_ms.into())),
                ],
                false,
            )
            .expect("valid")
    }

    fn gauge(name: &str, value: f64) -> Vec<u8> {
        MetricsData {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: name.into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                value: Some(number_data_point::Value::AsDouble(value)),
                                ..Default::default()
                            }],
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

    fn push(instance: Uuid, subscription_id: i32, metrics: &[u8]) -> Push<'_> {
        Push {
            instance,
            subscription_id,
            terminating: false,
            compression: 0,
            metrics,
        }
    }

    fn rendered(t: &ClientTelemetry, now_ms: i64) -> String {
        let mut out = String::new();
        t.snapshot(now_ms).render(&mut out);
        out
    }

    /// `configs` as a snapshot of `version` holds them.
    fn at(configs: &ClientMetricsConfigs, version: u64) -> Subscribed<'_> {
        Subscribed { configs, version }
    }

    /// A client of `t` under a subscription to every metric each second
    /// (snapshot version 1), asking and pushing at the times given.
    struct Client<'a> {
        t: &'a ClientTelemetry,
        configs: ClientMetricsConfigs,
        identity: ClientIdentity,
    }

    impl<'a> Client<'a> {
        fn of(t: &'a ClientTelemetry, client_id: &str) -> Client<'a> {
            Client {
                t,
                configs: every_metric("1000"),
                identity: ClientIdentity {
                    client_id: client_id.into(),
                    ..Default::default()
                },
            }
        }

        fn ask(&self, id: Uuid, now_ms: i64) -> Result<(Uuid, Subscription), TelemetryError> {
            let identity = self.identity.clone();
            self.t.subscribe(at(&self.configs, 1), id, identity, now_ms)
        }

        fn send(&self, push: Push<'_>, now_ms: i64) -> Result<(), TelemetryError> {
            let identity = self.identity.clone();
            self.t.push(at(&self.configs, 1), push, identity, now_ms)
        }
    }

    #[test]
    fn a_client_asks_pushes_and_its_series_are_served() {
        let t = ClientTelemetry::new(1 << 20, 100);
        let c = Client::of(&t, "app");
        let (id, sub) = c.ask(Uuid::nil(), 10_000).expect("first ask");
        assert!(!id.is_nil());
        assert_eq!(
            (sub.metrics.as_slice(), sub.interval_ms),
            (&["*".to_string()][..], 1000)
        );
        // Asking again before the interval is throttled; after it, not.
        assert_eq!(c.ask(id, 10_500), Err(TelemetryError::Throttled));
        // The first push after an answer is taken at once (clients jitter it).
        let bytes = gauge("org.apache.kafka.producer.record.queue.time.avg", 2.5);
        c.send(push(id, sub.id, &bytes), 10_600)
            .expect("first push");
        assert!(rendered(&t, 10_600).contains(&format!(
            "org_apache_kafka_producer_record_queue_time_avg{{client_instance_id=\"{id}\",client_id=\"app\""
        )));
        assert_eq!(
            c.send(push(id, sub.id, &bytes), 11_000),
            Err(TelemetryError::Throttled)
        );
        c.send(push(id, sub.id, &bytes), 11_600)
            .expect("a push an interval later");
        // A stale subscription id is refused; the client may ask at once.
        assert_eq!(
            c.send(push(id, sub.id + 1, &bytes), 12_600),
            Err(TelemetryError::UnknownSubscription)
        );
        assert!(c.ask(id, 12_601).is_ok());
        // Unreadable metrics are refused and keep nothing new.
        assert_eq!(
            c.send(push(id, sub.id, b"\xff\xff\xff"), 12_700),
            Err(TelemetryError::Undecodable)
        );
        // Forgotten, with its series, once quiet for the expiry.
        assert!(rendered(&t, 12_700).contains("sluice_client_telemetry_series 1"));
        let later = rendered(&t, 12_700 + EXPIRY_MS_MIN + 1);
        assert!(
            later.contains("sluice_client_telemetry_instances 0"),
            "{later}"
        );
        assert!(!later.contains("queue_time"), "{later}");
    }

    #[test]
    fn pushes_are_checked_as_kafka_checks_them() {
        let t = ClientTelemetry::new(64, 100);
        let c = Client::of(&t, "");
        let (id, sub) = c.ask(Uuid::nil(), 0).expect("ask");
        let big = vec![0u8; 65];
        assert_eq!(
            c.send(push(id, sub.id, &big), 0),
            Err(TelemetryError::TooLarge)
        );
        let unknown_codec = 7;
        let odd = Push {
            compression: unknown_codec,
            ..push(id, sub.id, b"")
        };
        assert_eq!(
            c.send(odd, 5_000),
            Err(TelemetryError::UnsupportedCompression)
        );
        assert_eq!(
            c.send(push(Uuid::nil(), sub.id, b""), 5_000),
            Err(TelemetryError::InvalidInstanceId)
        );
        // A compressed push is read; a terminating one is taken even early,
        // and nothing after it.
        let mut zstd = Vec::new();
        crate::compression::compress(Codec::Zstd, &gauge("m", 1.0), None, &mut zstd);
        let compressed = Push {
            compression: Codec::Zstd.id() as i8,
            ..push(id, sub.id, &zstd)
        };
        c.send(compressed, 10_000).expect("zstd push");
        let last = Push {
            terminating: true,
            ..push(id, sub.id, b"")
        };
        c.send(last, 10_001)
            .expect("a terminating push comes whenever");
        assert_eq!(
            c.send(push(id, sub.id, b""), 20_000),
            Err(TelemetryError::Terminated)
        );
        assert!(rendered(&t, 20_000).contains("\nm{"));
    }

    #[test]
    fn a_changed_subscription_is_told_to_the_client() {
        let t = ClientTelemetry::new(1 << 20, 100);
        let client = ClientIdentity::default();
        let before = every_metric("60000");
        let (id, old) = t
            .subscribe(at(&before, 1), Uuid::nil(), client.clone(), 0)
            .expect("ask");
        let after = every_metric("1000");
        assert_eq!(
            t.push(at(&after, 2), push(id, old.id, b""), client.clone(), 100),
            Err(TelemetryError::UnknownSubscription)
        );
        let (same, new) = t
            .subscribe(at(&after, 2), id, client.clone(), 101)
            .expect("ask");
        assert_eq!((same, new.interval_ms), (id, 1000));
        assert_ne!(new.id, old.id);
        // A shard's older snapshot does not bring the old set back.
        assert_eq!(
            t.push(
                at(&before, 1),
                push(id, new.id, &gauge("m", 1.0)),
                client.clone(),
                102
            ),
            Ok(())
        );
        assert!(rendered(&t, 102).contains("sluice_client_telemetry_series 1"));
        // What it pushed for a subscription gone is dropped with it.
        let (_, none) = t
            .subscribe(
                at(&ClientMetricsConfigs::default(), 3),
                id,
                client.clone(),
                103,
            )
            .expect("asks again at once");
        assert!(none.metrics.is_empty());
        let out = rendered(&t, 103);
        assert!(out.contains("sluice_client_telemetry_series 0"), "{out}");
        assert!(!out.contains("\nm{"), "{out}");
        // No subscription at all: nothing asked, at Kafka's default interval.
        let (_, none) = t
            .subscribe(
                at(&ClientMetricsConfigs::default(), 3),
                Uuid::nil(),
                client,
                0,
            )
            .expect("ask");
        assert!(none.metrics.is_empty());
    }

    #[test]
    fn series_and_instances_are_bounded() {
        let t = ClientTelemetry::new(1 << 20, 1);
        let configs = every_metric("1000");
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let client = ClientIdentity::default();
            let (id, sub) = t
                .subscribe(at(&configs, 1), Uuid::nil(), client.clone(), i as i64)
                .expect("ask");
            t.push(
                at(&configs, 1),
                push(id, sub.id, &gauge(name, 1.0)),
                client,
                i as i64,
            )
            .expect("push");
        }
        let out = rendered(&t, 2);
        assert!(out.contains("sluice_client_telemetry_instances 2"), "{out}");
        assert!(out.contains("sluice_client_telemetry_series 1"), "{out}");
        assert!(out.contains("\na{") && !out.contains("\nb{"), "{out}");
    }
}

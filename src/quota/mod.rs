//! Client quotas (KIP-13, KIP-55, KIP-124, KIP-219, KIP-546): what is
//! configured (`entity`), how usage is measured broker-wide (`rate`), and
//! one connection's view of both (`ConnQuotas`), which the handlers charge
//! and the connection loop obeys by not reading (muting) for the throttle
//! time. Pure data and atomics: no I/O, no runtime.

pub mod bucket;
pub mod entity;
pub mod rate;

pub use entity::{
    check_ip_value, check_value, Applied, ClientQuotas, EntityName, IpQuotas, QuotaEntity,
    QuotaError, QuotaKey, QuotaValues, Target,
};
pub use rate::Window;

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use rate::RateTable;

/// The broker's sensors, one table per quota type, shared by every shard.
static PRODUCE: RateTable = RateTable::new();
static FETCH: RateTable = RateTable::new();
static REQUEST: RateTable = RateTable::new();
/// New connections by ip (KIP-612).
static CONNECTIONS: RateTable = RateTable::new();
/// Controller mutations (KIP-599), as token buckets.
static MUTATIONS: bucket::BucketTable = bucket::BucketTable::new();

/// What a charge counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaType {
    /// Bytes of produce requests (producer_byte_rate).
    Produce,
    /// Bytes of fetch responses (consumer_byte_rate).
    Fetch,
    /// Nanoseconds a request kept its shard busy (request_percentage).
    Request,
}

/// Nanoseconds per second of one core at 1%: a request_percentage quota
/// `q` allows `q * NANOS_PER_PERCENT` nanoseconds of handling per second.
const NANOS_PER_PERCENT: f64 = 1e7;

impl QuotaType {
    const ALL: [QuotaType; 3] = [QuotaType::Produce, QuotaType::Fetch, QuotaType::Request];

    fn index(self) -> usize {
        self as usize
    }

    fn key(self) -> QuotaKey {
        match self {
            QuotaType::Produce => QuotaKey::ProducerByteRate,
            QuotaType::Fetch => QuotaKey::ConsumerByteRate,
            QuotaType::Request => QuotaKey::RequestPercentage,
        }
    }

    fn table(self) -> &'static RateTable {
        match self {
            QuotaType::Produce => &PRODUCE,
            QuotaType::Fetch => &FETCH,
            QuotaType::Request => &REQUEST,
        }
    }

    /// A quota in the units charged, per second.
    fn per_second(self, quota: f64) -> f64 {
        match self {
            QuotaType::Request => quota * NANOS_PER_PERCENT,
            _ => quota,
        }
    }

    /// The longest throttle: the whole rate window for the byte rates;
    /// one sample window for request time, as Kafka's
    /// ClientRequestQuotaManager bounds it.
    fn bound_ms(self, window: Window) -> u64 {
        match self {
            QuotaType::Request => window.size_ms,
            _ => window.bound_ms(),
        }
    }

    fn counters(
        self,
    ) -> (
        &'static crate::stats::Counter,
        &'static crate::stats::Counter,
    ) {
        use crate::stats as s;
        match self {
            QuotaType::Produce => (&s::QUOTA_PRODUCE_THROTTLED, &s::QUOTA_PRODUCE_THROTTLE_MS),
            QuotaType::Fetch => (&s::QUOTA_FETCH_THROTTLED, &s::QUOTA_FETCH_THROTTLE_MS),
            QuotaType::Request => (&s::QUOTA_REQUEST_THROTTLED, &s::QUOTA_REQUEST_THROTTLE_MS),
        }
    }
}

impl Window {
    /// From Kafka's `quota.window.num` and `quota.window.size.seconds`,
    /// clamped to what a sensor holds.
    pub fn from_config(samples: u64, size_seconds: u64) -> Window {
        Window {
            samples: samples.clamp(1, rate::SAMPLES_MAX as u64),
            size_ms: size_seconds.max(1) * 1000,
        }
    }
}

/// Milliseconds on a monotonic clock shared by all shards (samples are
/// aligned to it, so every shard must read the same one).
pub fn clock_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Counts a new connection from `ip` against its connection_creation_rate
/// (KIP-612, Kafka's ConnectionQuotas): `false` when that takes the ip over
/// its rate, and the connection is then not counted (Kafka unrecords it)
/// and is to be closed. With no ip quota configured, one emptiness check.
pub fn admit_connection(quotas: &IpQuotas, ip: std::net::IpAddr, window: Window) -> bool {
    if quotas.is_empty() {
        return true;
    }
    // An IPv4 client of a dual-stack listener is its IPv4 address.
    let ip = ip.to_canonical().to_string();
    let Some(quota) = quotas.resolve(&ip) else {
        return true;
    };
    let key = rate::sensor_key("ip", &ip);
    let now = clock_ms();
    let slot = CONNECTIONS.slot(key, now, window);
    let measured = CONNECTIONS.record(slot, 1, now, window);
    if measured.rate <= quota {
        return true;
    }
    CONNECTIONS.unrecord(slot, 1, now, window);
    false
}

/// Kafka's user of a principal: its name without the type (`User:alice`
/// is `alice`; `User:ANONYMOUS` is `ANONYMOUS`).
pub fn user_of(principal: &str) -> &str {
    principal
        .split_once(':')
        .map_or(principal, |(_, name)| name)
}

/// Who a request is charged to: its connection's principal and the client
/// id of its header.
#[derive(Clone, Copy, Debug)]
pub struct Who<'a> {
    pub principal: &'a str,
    pub client_id: &'a str,
}

/// A connection's quota state: which quota applies to it (cached per
/// snapshot, principal and client id, so a request with quotas configured
/// resolves nothing and allocates nothing), how long its handler has kept
/// the shard busy, and the throttle its current request earned.
/// Owned by the connection's task; never crosses shards.
#[derive(Debug, Default)]
pub struct ConnQuotas {
    cached: RefCell<Option<Cached>>,
    /// The throttle of the current request (the largest of its charges),
    /// for the connection loop to mute the connection by.
    throttle_ms: Cell<u64>,
    /// Time the current request's handler spent being polled so far.
    busy: Cell<Duration>,
    /// When the poll under way started.
    polling_since: Cell<Option<Instant>>,
    /// Whether the current request's handler time is charged already.
    request_charged: Cell<bool>,
    /// Whether any quota was configured when the current request began; if
    /// not, its charges return at once and its polls are not timed.
    active: Cell<bool>,
}

#[derive(Debug)]
struct Cached {
    snapshot: u64,
    principal: String,
    client_id: String,
    sensors: [Option<Sensor>; 3],
    /// controller_mutation_rate: (quota, sensor key).
    mutation: Option<(f64, u64)>,
}

#[derive(Debug)]
struct Sensor {
    quota: f64,
    key: u64,
    /// The slot last found for `key`; checked on every use.
    slot: Cell<usize>,
}

impl ConnQuotas {
    /// Charges `amount` to this connection's `kind` quota, if one applies,
    /// and returns the throttle in milliseconds (0 within the quota). With
    /// no quota configured this is one emptiness check.
    pub fn charge(
        &self,
        quotas: &ClientQuotas,
        snapshot: u64,
        who: Who<'_>,
        kind: QuotaType,
        amount: u64,
        window: Window,
    ) -> u64 {
        if !self.active.get() || quotas.is_empty() {
            return 0;
        }
        if kind == QuotaType::Request {
            self.request_charged.set(true);
        }
        self.refresh(quotas, snapshot, who);
        let cached = self.cached.borrow();
        let Some(sensor) = cached
            .as_ref()
            .and_then(|c| c.sensors[kind.index()].as_ref())
        else {
            return 0;
        };
        let now = clock_ms();
        let table = kind.table();
        if !table.holds(sensor.slot.get(), sensor.key) {
            sensor.slot.set(table.slot(sensor.key, now, window));
        }
        let measured = table.record(sensor.slot.get(), amount, now, window);
        let ms = rate::throttle_ms(
            measured,
            kind.per_second(sensor.quota),
            kind.bound_ms(window),
        );
        if ms > 0 {
            let (throttled, total_ms) = kind.counters();
            throttled.add(1);
            total_ms.add(ms);
            self.throttle_ms.set(self.throttle_ms.get().max(ms));
        }
        ms
    }

    /// Draws `partitions` mutations from this connection's
    /// controller_mutation_rate bucket (0 only looks) and returns the
    /// throttle it is left with: nonzero when the bucket is below zero,
    /// that is over the quota (KIP-599). With no such quota, 0.
    pub fn mutate(
        &self,
        quotas: &ClientQuotas,
        snapshot: u64,
        who: Who<'_>,
        partitions: u64,
        window: Window,
    ) -> u64 {
        if !self.active.get() || quotas.is_empty() {
            return 0;
        }
        self.refresh(quotas, snapshot, who);
        let Some((quota, key)) = self.cached.borrow().as_ref().and_then(|c| c.mutation) else {
            return 0;
        };
        let draw = bucket::Draw {
            key,
            quota,
            burst: quota * (window.samples.max(2) - 1) as f64 * window.size_ms as f64 / 1000.0,
        };
        let tokens = MUTATIONS.take(draw, partitions as f64, clock_ms());
        bucket::throttle_ms(tokens, quota, window.bound_ms())
    }

    /// Adds a controller mutation throttle to the current request's (the
    /// connection is muted for the largest), and counts it.
    pub fn throttle_mutation(&self, ms: u64) {
        if ms > 0 {
            crate::stats::QUOTA_MUTATION_THROTTLED.add(1);
            crate::stats::QUOTA_MUTATION_THROTTLE_MS.add(ms);
            self.throttle_ms.set(self.throttle_ms.get().max(ms));
        }
    }

    /// The throttle the current request earned so far.
    pub fn throttle_so_far(&self) -> u64 {
        self.throttle_ms.get()
    }

    /// Takes `amount` back off this connection's `kind` quota (charged by
    /// the current request, whose answer went out without it).
    pub fn uncharge(&self, kind: QuotaType, amount: u64, window: Window) {
        if !self.active.get() {
            return;
        }
        let cached = self.cached.borrow();
        let Some(sensor) = cached
            .as_ref()
            .and_then(|c| c.sensors[kind.index()].as_ref())
        else {
            return;
        };
        let table = kind.table();
        if table.holds(sensor.slot.get(), sensor.key) {
            table.unrecord(sensor.slot.get(), amount, clock_ms(), window);
        }
    }

    /// Resolves the quotas again when the snapshot, principal or client id
    /// changed since the last request.
    fn refresh(&self, quotas: &ClientQuotas, snapshot: u64, who: Who<'_>) {
        let Who {
            principal,
            client_id,
        } = who;
        let fresh = self.cached.borrow().as_ref().is_some_and(|c| {
            c.snapshot == snapshot && c.principal == principal && c.client_id == client_id
        });
        if fresh {
            return;
        }
        let user = user_of(principal);
        let sensors = QuotaType::ALL.map(|kind| {
            quotas.resolve(kind.key(), user, client_id).map(|a| Sensor {
                quota: a.quota,
                key: rate::sensor_key(&a.sensor.0, &a.sensor.1),
                slot: Cell::new(usize::MAX),
            })
        });
        let mutation = quotas
            .resolve(QuotaKey::ControllerMutationRate, user, client_id)
            .map(|a| (a.quota, rate::sensor_key(&a.sensor.0, &a.sensor.1)));
        *self.cached.borrow_mut() = Some(Cached {
            snapshot,
            principal: principal.to_string(),
            client_id: client_id.to_string(),
            sensors,
            mutation,
        });
    }

    /// Runs one request. With quotas configured (`active`), its polls are
    /// timed: the shard time this request costs, what request_percentage
    /// limits (time spent waiting, on a long poll, a peer shard's work or
    /// the quorum, is not counted). Without, it runs as it is.
    pub async fn serve<F: std::future::Future>(&self, active: bool, request: F) -> F::Output {
        self.active.set(active);
        self.busy.set(Duration::ZERO);
        self.request_charged.set(false);
        if !active {
            return request.await;
        }
        let mut request = std::pin::pin!(request);
        std::future::poll_fn(|cx| {
            let started = Instant::now();
            self.polling_since.set(Some(started));
            let polled = request.as_mut().poll(cx);
            self.polling_since.set(None);
            self.busy.set(self.busy.get() + started.elapsed());
            polled
        })
        .await
    }

    /// The current request's handler time so far, in nanoseconds.
    pub fn busy_ns(&self) -> u64 {
        let running = self
            .polling_since
            .get()
            .map_or(Duration::ZERO, |s| s.elapsed());
        u64::try_from((self.busy.get() + running).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether quotas were configured when the current request began.
    pub fn active(&self) -> bool {
        self.active.get()
    }

    /// Whether the current request's handler time was charged already (by
    /// a handler that reports the request throttle in its response).
    pub fn request_charged(&self) -> bool {
        self.request_charged.get()
    }

    /// Marks the current request as exempt from the request quota (a
    /// follower's fetch, inter-broker requests).
    pub fn exempt(&self) {
        self.request_charged.set(true);
    }

    /// The throttle the current request earned, reset for the next one.
    pub fn take_throttle_ms(&self) -> u64 {
        self.throttle_ms.replace(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ip over its connection rate is refused, and a refused connection
    /// does not count; another ip (no quota) is not.
    #[test]
    fn connections_over_an_ip_rate_are_refused() {
        let mut quotas = IpQuotas::default();
        let ip: std::net::IpAddr = "10.9.8.7".parse().unwrap();
        quotas
            .set(&EntityName::Name(ip.to_string()), Some(2.0))
            .unwrap();
        let window = Window::from_config(2, 1);
        // A young sensor's span is one window: 2 connections fit at once.
        let admitted = (0..10)
            .filter(|_| admit_connection(&quotas, ip, window))
            .count();
        assert_eq!(admitted, 2);
        let other: std::net::IpAddr = "10.9.8.6".parse().unwrap();
        assert!((0..10).all(|_| admit_connection(&quotas, other, window)));
        // The default applies to every ip without its own; 0 refuses all.
        quotas.set(&EntityName::Default, Some(0.0)).unwrap();
        assert!(!admit_connection(&quotas, other, window));
    }

    #[test]
    fn users_are_principal_names() {
        assert_eq!(user_of("User:alice"), "alice");
        assert_eq!(user_of("User:ANONYMOUS"), "ANONYMOUS");
        assert_eq!(user_of("bob"), "bob");
    }

    /// With no quota configured nothing is resolved or counted; with one,
    /// a charge over it throttles and the connection keeps the largest.
    #[test]
    fn a_charge_over_the_quota_throttles_the_connection() {
        let who = |client_id| Who {
            principal: "User:q",
            client_id,
        };
        let conn = ConnQuotas::default();
        conn.active.set(true);
        let window = Window::from_config(11, 1);
        let none = ClientQuotas::default();
        assert_eq!(
            conn.charge(&none, 1, who("c"), QuotaType::Produce, 1 << 30, window),
            0
        );
        assert!(conn.cached.borrow().is_none());
        let mut quotas = ClientQuotas::default();
        let entity = QuotaEntity {
            user: None,
            client_id: Some(EntityName::Name("quota-unit-test".into())),
        };
        quotas
            .set(&entity, QuotaKey::ProducerByteRate, Some(1000.0))
            .unwrap();
        // 11 s worth of quota in one request: about 1 s over, bounded.
        let ms = conn.charge(
            &quotas,
            2,
            who("quota-unit-test"),
            QuotaType::Produce,
            12_000,
            window,
        );
        assert!(ms > 0 && ms <= window.bound_ms(), "{ms}");
        assert_eq!(conn.take_throttle_ms(), ms);
        assert_eq!(conn.take_throttle_ms(), 0);
        // Another client id has no quota.
        assert_eq!(
            conn.charge(
                &quotas,
                2,
                who("other"),
                QuotaType::Produce,
                1 << 30,
                window
            ),
            0
        );
    }
}

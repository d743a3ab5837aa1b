//! A shard's replica fetchers (Kafka's ReplicaFetcherManager and
//! ReplicaFetcherThread): one per source broker, each with one connection
//! to the leader and one Fetch at a time carrying every partition this
//! shard follows from it, answers appended to the follower logs by the
//! shard. Stopped when the shard follows nothing from that broker any more.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::net::client::{ClientError, KafkaConnection, Security};
use crate::shard::{Event, Followed, Shard, TopicPartition};

/// Fetch v18: topics by id (KIP-516, so a topic deleted and made again
/// under its name is never fetched for the old one), the follower's id in
/// `replica_state` (KIP-903) and the high watermark it knows (KIP-1166, so
/// the leader answers soon once it moved past it).
const FETCH_VERSION: i16 = 18;

/// Fetch v12, for a leader that does not serve v18 (an older Sluice, during
/// a rolling upgrade): topics by name, `replica_id` in the body,
/// last_fetched_epoch and diverging epochs (KIP-320).
const FETCH_VERSION_BY_NAME: i16 = 12;

/// The first Fetch version that names topics by id.
const TOPIC_IDS_SINCE: i16 = 13;

/// Slack over the largest response asked for (framing around the records).
const RESPONSE_FRAMING_BYTES: u32 = 1 << 20;

/// This shard's fetchers by source broker, reconciled with the shard's
/// follower partitions whenever a topics snapshot is applied.
pub struct Fetchers {
    by_leader: RefCell<BTreeMap<i32, Rc<FetcherHandle>>>,
    /// How fetchers dial: the inter-broker listener's TLS and SASL.
    dialer: Arc<Security>,
}

impl Fetchers {
    pub fn new(dialer: Arc<Security>) -> Fetchers {
        Fetchers {
            by_leader: RefCell::default(),
            dialer,
        }
    }

    /// Starts, feeds and stops fetchers so that each leader `shard` follows
    /// a partition from has one, carrying those partitions.
    pub fn reconcile(&self, shard: &Rc<Shard>) {
        let wanted = shard.followed();
        let mut fetchers = self.by_leader.borrow_mut();
        fetchers.retain(|leader, handle| {
            let keep = wanted.contains_key(leader);
            if !keep {
                handle.stop();
            }
            keep
        });
        for (leader, partitions) in wanted {
            let handle = fetchers.entry(leader).or_insert_with(|| {
                let handle = Rc::new(FetcherHandle::new(leader));
                let run = run(shard.clone(), handle.clone(), self.dialer.clone());
                crate::runtime::spawn_local(run).detach();
                handle
            });
            handle.set_partitions(partitions);
        }
    }
}

/// One fetcher's partitions and lifetime, shared by [`Fetchers`] (which
/// sets them as the metadata moves) and the fetch loop.
struct FetcherHandle {
    pub leader: i32,
    /// Partition -> the epoch it follows at, and the partition.
    partitions: RefCell<BTreeMap<TopicPartition, Followed>>,
    stopped: Cell<bool>,
    /// Bumped on any change, so a backing-off loop looks again at once.
    changed: Event,
}

impl FetcherHandle {
    pub fn new(leader: i32) -> FetcherHandle {
        FetcherHandle {
            leader,
            partitions: RefCell::new(BTreeMap::new()),
            stopped: Cell::new(false),
            changed: Event::default(),
        }
    }

    pub fn set_partitions(&self, partitions: Vec<(TopicPartition, Followed)>) {
        let next: BTreeMap<TopicPartition, Followed> = partitions.into_iter().collect();
        let same = {
            let now = self.partitions.borrow();
            now.len() == next.len()
                && now
                    .iter()
                    .zip(&next)
                    .all(|((a, fa), (b, fb))| a == b && fa.same(fb))
        };
        if !same {
            *self.partitions.borrow_mut() = next;
            self.changed.notify();
        }
    }

    pub fn stop(&self) {
        self.stopped.set(true);
        self.changed.notify();
    }

    /// The epoch `tp` is followed at by this fetcher, if it still is, and
    /// whether it is fetched under the follower throttle.
    pub fn epoch_of(&self, tp: &TopicPartition) -> Option<(i32, bool)> {
        let partitions = self.partitions.borrow();
        partitions.get(tp).map(|f| (f.leader_epoch, f.throttled))
    }
}

/// What the leader's fetch session holds for one partition: the position
/// last sent. A partition goes into the next request only when it differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sent {
    topic_id: Uuid,
    fetch_offset: i64,
    leader_epoch: i32,
    last_fetched_epoch: i32,
    log_start: i64,
    /// The high watermark the follower knows, sent with the partition
    /// (KIP-1166) but no reason to send it: see [`Sent::same_to_leader`].
    high_watermark: i64,
}

impl Sent {
    /// Whether the leader's session holds `other` already: all but the high
    /// watermark agree. The leader raises the high watermark it holds for
    /// the follower with every answer it sends, so naming a partition again
    /// for a new one would only add a read and a round trip per append.
    fn same_to_leader(&self, other: &Sent) -> bool {
        Sent {
            high_watermark: other.high_watermark,
            ..*self
        } == *other
    }
}

/// Each followed partition's position, in partition order.
type Positions = Vec<(TopicPartition, Sent)>;

/// Some of [`Positions`], in partition order.
type Changed<'a> = Vec<&'a (TopicPartition, Sent)>;

/// A connection to the leader, and the Fetch version to send on it.
struct LeaderLink {
    connection: KafkaConnection,
    fetch_version: i16,
}

/// This fetcher's incremental fetch session with the leader (KIP-227).
#[derive(Default)]
struct Session {
    /// 0: none; the next request is full and asks for one.
    id: i32,
    next_epoch: i32,
    sent: Positions,
}

impl Session {
    fn reset(&mut self) {
        *self = Session::default();
    }
}

/// The fetch loop; returns once the handle is stopped or the shard stops.
async fn run(shard: Rc<Shard>, handle: Rc<FetcherHandle>, dialer: Arc<Security>) {
    let backoff = Duration::from_millis(shard.config.replica_fetch_backoff_ms.max(1));
    let mut link: Option<LeaderLink> = None;
    let mut session = Session::default();
    let mut failing: Option<&'static str> = None;
    tracing::info!(
        leader = handle.leader,
        shard = shard.id,
        "replica fetcher started"
    );
    while !handle.stopped.get() && !shard.is_stopping() {
        let seen = handle.changed.version();
        let positions = positions(&shard, &handle);
        if positions.is_empty() {
            session.reset();
            pause(&shard, &handle, seen, backoff).await;
            continue;
        }
        if link.is_none() {
            match connect(&shard, handle.leader, &dialer).await {
                Ok(l) => {
                    if failing.take().is_some() {
                        tracing::info!(leader = handle.leader, "reached the leader again");
                    }
                    link = Some(l);
                }
                Err(e) => {
                    note_failure(&mut failing, handle.leader, &e);
                    pause(&shard, &handle, seen, backoff).await;
                    continue;
                }
            }
        }
        let timeout = Duration::from_millis(
            shard.config.replica_fetch_wait_max_ms + shard.config.replica_socket_timeout_ms,
        );
        let LeaderLink {
            connection,
            fetch_version,
        } = link.as_mut().expect("connected above");
        let version = *fetch_version;
        let request = build_request(&shard, &session, &positions, version);
        let answer = connection
            .call::<_, FetchResponse>(ApiKey::Fetch, version, &request, timeout)
            .await;
        match answer {
            Ok(response) if is_session_error(response.error_code) => {
                tracing::debug!(
                    leader = handle.leader,
                    error = response.error_code,
                    "fetch session lost; starting a new one"
                );
                session.reset();
            }
            Ok(response) => {
                if session.id == 0 {
                    session.id = response.session_id;
                    session.next_epoch = 1;
                } else {
                    session.next_epoch = session.next_epoch.checked_add(1).unwrap_or(1);
                }
                if session.id != 0 {
                    session.sent = positions;
                }
                if !apply(&shard, &handle, response, version) {
                    pause(&shard, &handle, seen, backoff).await;
                }
            }
            Err(e) => {
                tracing::info!(leader = handle.leader, error = %e, "replica fetch failed; reconnecting");
                link = None;
                session.reset();
                pause(&shard, &handle, seen, backoff).await;
            }
        }
    }
    tracing::info!(
        leader = handle.leader,
        shard = shard.id,
        "replica fetcher stopped"
    );
}

/// Waits `backoff`, or less if the partitions change or the shard stops.
async fn pause(shard: &Shard, handle: &FetcherHandle, seen: u64, backoff: Duration) {
    let changed = handle.changed.changed_since(seen);
    let stop = shard.stopping.changed_since(0);
    let (changed, stop) = (std::pin::pin!(changed), std::pin::pin!(stop));
    let either = futures::future::select(changed, stop);
    let _ = crate::runtime::timeout(backoff, either).await;
}

/// Logs a failure to reach the leader once per kind of failure (a wrong
/// password would otherwise log every backoff), and at debug after that.
fn note_failure(failing: &mut Option<&'static str>, leader: i32, e: &ConnectError) {
    let kind = e.kind();
    if *failing == Some(kind) {
        tracing::debug!(leader, error = %e, "cannot reach the leader");
        return;
    }
    *failing = Some(kind);
    if matches!(e, ConnectError::Client(c) if c.is_login()) {
        tracing::warn!(leader, error = %e, "cannot log in to the leader's inter-broker listener; retrying");
    } else {
        tracing::info!(leader, error = %e, "cannot reach the leader; retrying");
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("broker {0} has no endpoint in the metadata")]
    NoEndpoint(i32),
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl ConnectError {
    fn kind(&self) -> &'static str {
        match self {
            ConnectError::NoEndpoint(_) => "no-endpoint",
            ConnectError::Client(e) => e.kind(),
        }
    }
}

/// Connects to the leader and asks which Fetch versions it serves, as
/// Kafka's clients do first on every connection: a leader that is an
/// older Sluice closes the connection on a version it does not serve.
async fn connect(
    shard: &Shard,
    leader: i32,
    dialer: &Arc<Security>,
) -> Result<LeaderLink, ConnectError> {
    let addr = shard
        .broker_address(leader)
        .ok_or(ConnectError::NoEndpoint(leader))?;
    let response_max = u32::try_from(shard.config.replica_fetch_response_max_bytes.max(1))
        .expect("positive")
        .saturating_add(RESPONSE_FRAMING_BYTES);
    let client_id = format!("sluice-replica-{}", shard.config.node_id);
    let timeout = Duration::from_millis(shard.config.replica_socket_timeout_ms);
    let mut connection =
        KafkaConnection::connect(&addr, &client_id, response_max, timeout, dialer).await?;
    let versions: ApiVersionsResponse = connection
        .call(
            ApiKey::ApiVersions,
            0,
            &ApiVersionsRequest::default(),
            timeout,
        )
        .await?;
    let fetch_max = versions
        .api_keys
        .iter()
        .find(|v| v.api_key == ApiKey::Fetch as i16)
        .map_or(0, |v| v.max_version);
    let fetch_version = if fetch_max >= FETCH_VERSION {
        FETCH_VERSION
    } else {
        FETCH_VERSION_BY_NAME
    };
    Ok(LeaderLink {
        connection,
        fetch_version,
    })
}

fn is_session_error(code: i16) -> bool {
    use kafka_protocol::ResponseError as E;
    code == E::FetchSessionIdNotFound.code() || code == E::InvalidFetchSessionEpoch.code()
}

/// Where every partition still followed from this leader stands, read
/// through the handles the fetcher holds (no lookups: a follower of
/// hundreds of partitions does this every round). Over the follower
/// throttle, the throttled partitions are left out: the session forgets
/// them until the rate is back under (Kafka's follower throttle).
fn positions(shard: &Shard, handle: &FetcherHandle) -> Positions {
    let over = {
        let mut quotas = shard.replication_quotas.borrow_mut();
        quotas.follower.is_set() && quotas.follower.exceeded(std::time::Instant::now())
    };
    let mut left_out = 0;
    let positions = handle
        .partitions
        .borrow()
        .iter()
        .filter_map(|(tp, followed)| {
            if over && followed.throttled {
                left_out += 1;
                return None;
            }
            let position = followed.position()?;
            let sent = Sent {
                topic_id: followed.topic_id,
                fetch_offset: position.log_end,
                leader_epoch: followed.leader_epoch,
                last_fetched_epoch: position.last_epoch,
                log_start: position.log_start,
                high_watermark: position.high_watermark,
            };
            Some((tp.clone(), sent))
        })
        .collect();
    crate::stats::REPLICATION_FOLLOWER_THROTTLED.add(left_out);
    positions
}

/// What changed between the positions last sent and now, both in
/// partition order: the partitions whose position is new or moved, and the
/// ones no longer followed (as last sent).
fn changes<'a>(sent: &'a Positions, now: &'a Positions) -> (Changed<'a>, Changed<'a>) {
    let (mut moved, mut gone) = (Vec::new(), Vec::new());
    let (mut sent, mut now) = (sent.iter().peekable(), now.iter().peekable());
    loop {
        match (sent.peek(), now.peek()) {
            (None, None) => break,
            (Some(old), None) => {
                gone.push(*old);
                sent.next();
            }
            (None, Some(new)) => {
                moved.push(*new);
                now.next();
            }
            (Some(old), Some(new)) => match old.0.cmp(&new.0) {
                std::cmp::Ordering::Less => {
                    gone.push(*old);
                    sent.next();
                }
                std::cmp::Ordering::Greater => {
                    moved.push(*new);
                    now.next();
                }
                std::cmp::Ordering::Equal => {
                    // A topic made again under its name is another topic
                    // to a leader that knows them by id: the old one is
                    // forgotten.
                    if old.1.topic_id != new.1.topic_id {
                        gone.push(*old);
                    }
                    if !old.1.same_to_leader(&new.1) {
                        moved.push(*new);
                    }
                    sent.next();
                    now.next();
                }
            },
        }
    }
    (moved, gone)
}

/// A topic as a fetch of `version` names it: by id from v13, else by name.
struct Naming(i16);

impl Naming {
    fn by_id(&self) -> bool {
        self.0 >= TOPIC_IDS_SINCE
    }

    fn topic(&self, (name, id): (Rc<str>, Uuid)) -> FetchTopic {
        if self.by_id() {
            FetchTopic::default().with_topic_id(id)
        } else {
            FetchTopic::default().with_topic(TopicName(StrBytes::from_string(name.to_string())))
        }
    }

    fn forgotten(&self, (name, id): (Rc<str>, Uuid)) -> ForgottenTopic {
        if self.by_id() {
            ForgottenTopic::default().with_topic_id(id)
        } else {
            ForgottenTopic::default().with_topic(TopicName(StrBytes::from_string(name.to_string())))
        }
    }
}

/// The next fetch: without a session, every partition (asking for a
/// session); within one, only the partitions whose position moved, and the
/// ones no longer followed as forgotten.
fn build_request(
    shard: &Shard,
    session: &Session,
    positions: &Positions,
    version: i16,
) -> FetchRequest {
    let config = &shard.config;
    let naming = Naming(version);
    // Without a session nothing counts as sent: every partition goes.
    debug_assert!(session.id != 0 || session.sent.is_empty());
    let (moved, gone) = changes(&session.sent, positions);
    let key = |tp: &TopicPartition, sent: &Sent| (Rc::from(&*tp.topic), sent.topic_id);
    let mut topics: BTreeMap<(Rc<str>, Uuid), Vec<FetchPartition>> = BTreeMap::new();
    for (tp, position) in moved {
        let mut partition = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(position.leader_epoch)
            .with_fetch_offset(position.fetch_offset)
            .with_last_fetched_epoch(position.last_fetched_epoch)
            .with_log_start_offset(position.log_start)
            .with_partition_max_bytes(config.replica_fetch_max_bytes);
        if version >= FETCH_VERSION {
            partition.high_watermark = position.high_watermark;
        }
        topics.entry(key(tp, position)).or_default().push(partition);
    }
    let mut forgotten: BTreeMap<(Rc<str>, Uuid), Vec<i32>> = BTreeMap::new();
    for (tp, sent) in gone {
        forgotten
            .entry(key(tp, sent))
            .or_default()
            .push(tp.partition);
    }
    let topics = topics
        .into_iter()
        .map(|(topic, partitions)| naming.topic(topic).with_partitions(partitions))
        .collect();
    let forgotten = forgotten
        .into_iter()
        .map(|(topic, partitions)| naming.forgotten(topic).with_partitions(partitions))
        .collect();
    let request = FetchRequest::default()
        .with_max_wait_ms(i32::try_from(config.replica_fetch_wait_max_ms).unwrap_or(i32::MAX))
        .with_min_bytes(1)
        .with_max_bytes(config.replica_fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(session.id)
        .with_session_epoch(if session.id == 0 {
            0
        } else {
            session.next_epoch
        })
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten);
    if version >= FETCH_VERSION {
        // The broker epoch is not checked between Sluice brokers: -1.
        request.with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(config.node_id))
                .with_replica_epoch(-1),
        )
    } else {
        request.with_replica_id(BrokerId(config.node_id))
    }
}

/// Hands each partition's answer to the shard; false when none made
/// progress and some failed (the loop then backs off instead of spinning).
fn apply(shard: &Rc<Shard>, handle: &FetcherHandle, response: FetchResponse, version: i16) -> bool {
    if response.error_code != 0 {
        tracing::info!(
            leader = handle.leader,
            error = response.error_code,
            "replica fetch refused"
        );
        return false;
    }
    let mut progress = false;
    let mut failed = false;
    let naming = Naming(version);
    let snapshot = naming.by_id().then(|| shard.topics());
    for topic in response.responses {
        let name: Arc<str> = match &snapshot {
            // A topic this node no longer has is followed no more.
            Some(topics) => match topics.name_of(topic.topic_id) {
                Some(name) => Arc::from(name),
                None => continue,
            },
            None => Arc::from(topic.topic.0.as_str()),
        };
        for p in topic.partitions {
            let tp = TopicPartition {
                topic: name.clone(),
                partition: p.partition_index,
            };
            let Some((epoch, throttled)) = handle.epoch_of(&tp) else {
                continue;
            };
            if throttled {
                let bytes = p.records.as_ref().map_or(0, |r| r.len() as u64);
                let mut quotas = shard.replication_quotas.borrow_mut();
                quotas.follower.record(bytes, std::time::Instant::now());
            }
            match shard.follower_fetched(&tp, handle.leader, epoch, p) {
                crate::shard::Fetched::Progress => progress = true,
                crate::shard::Fetched::Idle => {}
                crate::shard::Fetched::Failed => failed = true,
            }
        }
    }
    progress || !failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, fetch_offset: i64) -> (TopicPartition, Sent) {
        let tp = TopicPartition {
            topic: Arc::from("t"),
            partition,
        };
        let sent = Sent {
            topic_id: Uuid::nil(),
            fetch_offset,
            leader_epoch: 1,
            last_fetched_epoch: 1,
            log_start: 0,
            high_watermark: 0,
        };
        (tp, sent)
    }

    #[test]
    fn changes_are_the_moved_and_new_partitions_and_the_ones_gone() {
        let sent = vec![at(0, 5), at(1, 5), at(3, 5), at(4, 5)];
        let now = vec![at(1, 5), at(2, 0), at(3, 6), at(5, 0)];
        let (moved, gone) = changes(&sent, &now);
        let moved: Vec<(i32, i64)> = moved
            .iter()
            .map(|(tp, s)| (tp.partition, s.fetch_offset))
            .collect();
        let gone: Vec<i32> = gone.iter().map(|(tp, _)| tp.partition).collect();
        assert_eq!(moved, vec![(2, 0), (3, 6), (5, 0)]);
        assert_eq!(gone, vec![0, 4]);
        // A topic made again under its name: forgotten by its old id,
        // fetched by its new one.
        let mut recreated = at(1, 0);
        recreated.1.topic_id = Uuid::from_u128(2);
        let again = vec![recreated.clone()];
        let (moved, gone) = changes(&sent, &again);
        assert_eq!(moved, vec![&recreated]);
        let gone: Vec<(i32, Uuid)> = gone
            .iter()
            .map(|(tp, s)| (tp.partition, s.topic_id))
            .collect();
        assert_eq!(
            gone,
            vec![
                (0, Uuid::nil()),
                (1, Uuid::nil()),
                (3, Uuid::nil()),
                (4, Uuid::nil())
            ]
        );
        let none = Positions::new();
        let (moved, gone) = changes(&none, &now);
        assert_eq!(moved.len(), 4, "without a session, every partition");
        assert!(gone.is_empty());
    }
}

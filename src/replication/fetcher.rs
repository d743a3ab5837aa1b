//! A shard's replica fetcher for one source broker (Kafka's
//! ReplicaFetcherThread): one connection to the leader, one Fetch at a time
//! carrying every partition this shard follows from it, answers appended
//! to the follower logs by the shard. Stopped when the shard follows
//! nothing from that broker any more.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::net::client::KafkaConnection;
use crate::shard::{Event, Shard, TopicPartition};

/// Fetch v12: replica_id in the body, last_fetched_epoch and diverging
/// epochs (KIP-320), the newest version the broker serves itself.
const FETCH_VERSION: i16 = 12;

/// Slack over the largest response asked for (framing around the records).
const RESPONSE_FRAMING_BYTES: u32 = 1 << 20;

/// One fetcher's partitions and lifetime, shared by the shard (which sets
/// them as the metadata moves) and the fetch loop.
pub struct FetcherHandle {
    pub leader: i32,
    /// Partition -> the leader epoch it follows at.
    partitions: RefCell<BTreeMap<TopicPartition, i32>>,
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

    pub fn set_partitions(&self, partitions: Vec<(TopicPartition, i32)>) {
        let next: BTreeMap<TopicPartition, i32> = partitions.into_iter().collect();
        if *self.partitions.borrow() != next {
            *self.partitions.borrow_mut() = next;
            self.changed.notify();
        }
    }

    pub fn stop(&self) {
        self.stopped.set(true);
        self.changed.notify();
    }

    /// The epoch `tp` is followed at by this fetcher, if it still is.
    pub fn epoch_of(&self, tp: &TopicPartition) -> Option<i32> {
        self.partitions.borrow().get(tp).copied()
    }
}

/// The fetch loop; returns once the handle is stopped or the shard stops.
pub async fn run(shard: Rc<Shard>, handle: Rc<FetcherHandle>) {
    let backoff = Duration::from_millis(shard.config.replica_fetch_backoff_ms.max(1));
    let mut connection: Option<KafkaConnection> = None;
    tracing::info!(
        leader = handle.leader,
        shard = shard.id,
        "replica fetcher started"
    );
    while !handle.stopped.get() && !shard.is_stopping() {
        let seen = handle.changed.version();
        let request = build_request(&shard, &handle);
        let Some(request) = request else {
            pause(&shard, &handle, seen, backoff).await;
            continue;
        };
        if connection.is_none() {
            match connect(&shard, handle.leader).await {
                Ok(c) => connection = Some(c),
                Err(e) => {
                    tracing::debug!(leader = handle.leader, error = %e, "cannot reach the leader");
                    pause(&shard, &handle, seen, backoff).await;
                    continue;
                }
            }
        }
        let timeout = Duration::from_millis(
            shard.config.replica_fetch_wait_max_ms + shard.config.replica_socket_timeout_ms,
        );
        let conn = connection.as_mut().expect("connected above");
        let answer = conn
            .call::<_, FetchResponse>(ApiKey::Fetch, FETCH_VERSION, &request, timeout)
            .await;
        match answer {
            Ok(response) => {
                if !apply(&shard, &handle, response) {
                    pause(&shard, &handle, seen, backoff).await;
                }
            }
            Err(e) => {
                tracing::info!(leader = handle.leader, error = %e, "replica fetch failed; reconnecting");
                connection = None;
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

async fn connect(shard: &Shard, leader: i32) -> Result<KafkaConnection, String> {
    let addr = shard
        .broker_address(leader)
        .ok_or_else(|| format!("broker {leader} has no endpoint in the metadata"))?;
    let response_max = u32::try_from(shard.config.replica_fetch_response_max_bytes.max(1))
        .expect("positive")
        .saturating_add(RESPONSE_FRAMING_BYTES);
    let client_id = format!("sluice-replica-{}", shard.config.node_id);
    let timeout = Duration::from_millis(shard.config.replica_socket_timeout_ms);
    KafkaConnection::connect(&addr, &client_id, response_max, timeout)
        .await
        .map_err(|e| e.to_string())
}

/// A full (sessionless) fetch of every partition still followed from this
/// leader, each from its log end; `None` when there are none.
fn build_request(shard: &Shard, handle: &FetcherHandle) -> Option<FetchRequest> {
    let config = &shard.config;
    let mut topics: BTreeMap<Rc<str>, Vec<FetchPartition>> = BTreeMap::new();
    for (tp, &epoch) in handle.partitions.borrow().iter() {
        let Some(position) = shard.follower_position(tp) else {
            continue;
        };
        let partition = FetchPartition::default()
            .with_partition(tp.partition)
            .with_current_leader_epoch(epoch)
            .with_fetch_offset(position.log_end)
            .with_last_fetched_epoch(position.last_epoch)
            .with_log_start_offset(position.log_start)
            .with_partition_max_bytes(config.replica_fetch_max_bytes);
        topics
            .entry(Rc::from(&*tp.topic))
            .or_default()
            .push(partition);
    }
    if topics.is_empty() {
        return None;
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    Some(
        FetchRequest::default()
            .with_replica_id(BrokerId(config.node_id))
            .with_max_wait_ms(i32::try_from(config.replica_fetch_wait_max_ms).unwrap_or(i32::MAX))
            .with_min_bytes(1)
            .with_max_bytes(config.replica_fetch_response_max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics),
    )
}

/// Hands each partition's answer to the shard; false when none made
/// progress and some failed (the loop then backs off instead of spinning).
fn apply(shard: &Rc<Shard>, handle: &FetcherHandle, response: FetchResponse) -> bool {
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
    for topic in response.responses {
        let name: std::sync::Arc<str> = std::sync::Arc::from(topic.topic.0.as_str());
        for p in topic.partitions {
            let tp = TopicPartition {
                topic: name.clone(),
                partition: p.partition_index,
            };
            let Some(epoch) = handle.epoch_of(&tp) else {
                continue;
            };
            match shard.follower_fetched(&tp, handle.leader, epoch, p) {
                crate::shard::Fetched::Progress => progress = true,
                crate::shard::Fetched::Idle => {}
                crate::shard::Fetched::Failed => failed = true,
            }
        }
    }
    progress || !failed
}

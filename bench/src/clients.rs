//! The load: producer and consumer threads, each owning one librdkafka client
//! and one latency histogram, all reporting into [`Shared`] counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::datasets::SplitMix64;
use crate::payload::{self, Clock, Payload};
use crate::rate::Schedule;
use crate::stats::Latency;
use crate::txn::{self, Flow, Transactions};
use crate::workload::{ConsumerMode, KeyDistribution, Workload};

/// How long a producer waits for librdkafka's queue to drain a little when
/// it is full; bounded so a stop request is seen promptly.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);
/// The longest a producer sleeps before rechecking its schedule and stop flag.
const IDLE_SLEEP_MAX: Duration = Duration::from_millis(1);
pub const CONSUMER_POLL: Duration = Duration::from_millis(100);

/// State every client thread of one target's run reports into.
pub struct Shared {
    pub clock: Clock,
    /// Tags this run's messages so stale data on a reused topic is ignored.
    pub run_tag: u32,
    /// Latency is recorded only for messages intended inside
    /// `[window_start_ns, window_end_ns)`: after warm-up, before the end.
    pub window_start_ns: u64,
    pub window_end_ns: u64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub received: AtomicU64,
    /// How far behind its schedule the last producer to send was, ns.
    pub producer_lag_ns: AtomicU64,
    pub stop_producing: AtomicBool,
    pub stop_consuming: AtomicBool,
    /// The first delivery or consume error, for the report.
    pub first_error: Mutex<Option<String>>,
}

impl Shared {
    pub fn in_window(&self, intended_ns: u64) -> bool {
        (self.window_start_ns..self.window_end_ns).contains(&intended_ns)
    }

    pub fn note_error(&self, e: String) {
        let mut first = self.first_error.lock().unwrap();
        first.get_or_insert(e);
    }
}

struct ProducerCtx {
    shared: Arc<Shared>,
    publish: Mutex<Latency>,
    /// A transactional producer's messages count when their transaction
    /// commits, not when acknowledged (see `txn`).
    transactional: bool,
}

impl ClientContext for ProducerCtx {}

impl ProducerContext for ProducerCtx {
    /// The message's intended send time, ns on the run clock.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, intended_ns: usize) {
        let s = &self.shared;
        match result {
            // Counted, and timed, by `txn` when the transaction commits.
            Ok(_) if self.transactional => {}
            // Counted as failed when the transaction fails to commit.
            Err((e, _)) if self.transactional => s.note_error(format!("delivery failed: {e}")),
            Ok(_) => {
                s.acked.fetch_add(1, Relaxed);
                let intended_ns = intended_ns as u64;
                if s.in_window(intended_ns) {
                    let us = s.clock.now_ns().saturating_sub(intended_ns) / 1000;
                    self.publish.lock().unwrap().record(us);
                }
            }
            Err((e, _)) => {
                s.failed.fetch_add(1, Relaxed);
                s.note_error(format!("delivery failed: {e}"));
            }
        }
    }
}

/// How a producer paces its sends.
#[derive(Debug, Clone)]
pub enum Pace {
    /// A fixed rate, msg/s.
    Fixed(f64),
    /// The rate search's current per-producer rate (f64 bits), which the
    /// sampler changes once a second.
    Searched(Arc<AtomicU64>),
}

impl Pace {
    fn current(&self) -> f64 {
        match self {
            Pace::Fixed(r) => *r,
            Pace::Searched(bits) => f64::from_bits(bits.load(Relaxed)),
        }
    }
}

/// One producer thread's job.
pub struct ProducerJob {
    pub topic: String,
    pub partitions: u32,
    pub pace: Pace,
    pub start_ns: u64,
    pub seed: u64,
    /// How long the final flush may take.
    pub flush_timeout: Duration,
    /// Set exactly when the workload uses transactions.
    pub transactional_id: Option<String>,
}

/// Sends until the window ends or a stop is requested, flushes or commits
/// (bounded) and returns the publish latency histogram.
pub fn produce(
    job: ProducerJob,
    w: &Workload,
    config: ClientConfig,
    s: &Arc<Shared>,
) -> Result<Latency> {
    let per_txn = w.producer_mode().messages_per_transaction();
    let ctx = ProducerCtx {
        shared: s.clone(),
        publish: Mutex::new(Latency::new()),
        transactional: per_txn.is_some(),
    };
    // ThreadedProducer serves delivery callbacks on its own thread, so acks
    // are timed when they arrive, not when this thread gets round to polling.
    let producer: ThreadedProducer<ProducerCtx> = config
        .create_with_context(ctx)
        .context("creating producer")?;
    let mut txn = match per_txn {
        Some(n) => {
            // Before the schedule starts, so the handshake is not timed.
            txn::init(&producer)?;
            Some(Transactions::new(n))
        }
        None => None,
    };
    send_scheduled(&producer, &job, w, s, txn.as_mut());
    let mut h = match &mut txn {
        Some(t) => {
            t.finish(&producer, s);
            t.publish.clone()
        }
        None => {
            // Deliveries that miss the flush deadline are purged when the
            // producer is dropped and counted as neither acked nor received.
            let _ = producer.flush(job.flush_timeout);
            Latency::new()
        }
    };
    h.merge(&producer.context().publish.lock().unwrap());
    Ok(h)
}

/// The send loop: each message at its intended time, until the window ends,
/// a stop is requested or the producer can no longer make transactions.
fn send_scheduled(
    producer: &ThreadedProducer<ProducerCtx>,
    job: &ProducerJob,
    w: &Workload,
    s: &Shared,
    mut txn: Option<&mut Transactions>,
) {
    let mut payload = Payload::new(w.message_size, w.payload, s.run_tag, job.seed);
    let mut keys = SplitMix64::new(job.seed ^ 0x5eed);
    let mut rate = job.pace.current();
    let mut schedule = Schedule::new(job.start_ns, rate);
    s.clock.sleep_until(job.start_ns);
    let mut sent: u64 = 0;
    while !s.stop_producing.load(Relaxed) {
        let now = s.clock.now_ns();
        if now >= s.window_end_ns {
            break;
        }
        let asked = job.pace.current();
        if asked != rate {
            rate = asked;
            schedule.set_rate(rate);
        }
        let Some(intended) = next_due(&mut schedule, now, s) else {
            continue;
        };
        if let Some(t) = txn.as_deref_mut() {
            if t.ensure_open(producer, s) == Flow::Stop {
                break;
            }
        }
        let key = match w.key_distribution {
            KeyDistribution::None => None,
            KeyDistribution::Random => Some(keys.next_u64()),
            KeyDistribution::RoundRobin => Some(sent % job.partitions as u64),
        };
        let bytes = payload.stamp(intended);
        if !send(producer, &job.topic, bytes, key, intended, s) {
            continue;
        }
        sent += 1;
        if let Some(t) = txn.as_deref_mut() {
            if t.sent(producer, intended, s) == Flow::Stop {
                break;
            }
        }
    }
}

/// The next message's intended time if it is due, noting how far behind
/// schedule the producer is; otherwise sleeps a little (bounded, so a stop is
/// seen promptly) and returns `None`.
fn next_due(schedule: &mut Schedule, now: u64, s: &Shared) -> Option<u64> {
    match schedule.next_due(now) {
        Some(t) => {
            s.producer_lag_ns.store(now.saturating_sub(t), Relaxed);
            Some(t)
        }
        None => {
            let wait = Duration::from_nanos(schedule.next_ns() - now).min(IDLE_SLEEP_MAX);
            std::thread::sleep(wait);
            None
        }
    }
}

/// Enqueues one message, waiting out a full queue (bounded by the stop
/// flag); false when the message was not enqueued.
fn send(
    producer: &ThreadedProducer<ProducerCtx>,
    topic: &str,
    bytes: &[u8],
    key: Option<u64>,
    intended_ns: u64,
    s: &Shared,
) -> bool {
    let key_bytes = key.map(u64::to_le_bytes);
    loop {
        let mut record =
            BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, intended_ns as usize)
                .payload(bytes);
        if let Some(k) = &key_bytes {
            record = record.key(&k[..]);
        }
        match producer.send(record) {
            Ok(()) => return true,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(QUEUE_FULL_BACKOFF);
                if s.stop_producing.load(Relaxed) {
                    return false;
                }
            }
            Err((e, _)) => {
                s.failed.fetch_add(1, Relaxed);
                s.note_error(format!("send failed: {e}"));
                return false;
            }
        }
    }
}

/// One consumer thread's job.
pub struct ConsumerJob {
    pub topic: String,
    /// Partitions to `assign()`; ignored in group mode.
    pub partitions: Vec<i32>,
    pub group: String,
    pub mode: ConsumerMode,
}

/// Partition `p` goes to consumer `p % consumers`, as a range-free stand-in
/// for a group's assignment.
pub fn share_partitions(partitions: u32, consumers: u32, index: u32) -> Vec<i32> {
    (0..partitions)
        .filter(|p| p % consumers == index)
        .map(|p| p as i32)
        .collect()
}

/// Consumes until told to stop and returns the end-to-end latency histogram.
pub fn consume(job: ConsumerJob, config: ClientConfig, s: &Shared) -> Result<Latency> {
    if job.mode == ConsumerMode::Share {
        let bootstrap = config
            .get("bootstrap.servers")
            .context("no bootstrap.servers")?;
        let index = job.partitions.first().copied().unwrap_or(0) as u32;
        return crate::share::consume(bootstrap, &job.topic, &job.group, index, s);
    }
    let consumer: BaseConsumer = config.create().context("creating consumer")?;
    match job.mode {
        ConsumerMode::Assign => {
            let mut tpl = TopicPartitionList::new();
            for p in &job.partitions {
                tpl.add_partition_offset(&job.topic, *p, Offset::Beginning)?;
            }
            consumer.assign(&tpl).context("assign")?;
        }
        ConsumerMode::Group => consumer.subscribe(&[&job.topic]).context("subscribe")?,
        ConsumerMode::Share => unreachable!("share members are not librdkafka's"),
    }
    let mut e2e = Latency::new();
    while !s.stop_consuming.load(Relaxed) {
        match consumer.poll(CONSUMER_POLL) {
            Some(Ok(m)) => {
                let now = s.clock.now_ns();
                let Some(intended) = m.payload().and_then(|b| payload::decode(b, s.run_tag)) else {
                    continue;
                };
                s.received.fetch_add(1, Relaxed);
                if s.in_window(intended) {
                    e2e.record(now.saturating_sub(intended) / 1000);
                }
            }
            Some(Err(e)) => s.note_error(format!("consume: {e}")),
            None => {}
        }
    }
    Ok(e2e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_shared_disjointly_and_completely() {
        let shares: Vec<Vec<i32>> = (0..3).map(|i| share_partitions(10, 3, i)).collect();
        let mut all: Vec<i32> = shares.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(shares[0], vec![0, 3, 6, 9]);
    }
}

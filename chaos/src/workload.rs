//! The producer side: unique numbered values per partition, every send and
//! every acknowledgement recorded with its time (and offset).
//!
//! A value is `P:SEQ:` padded with `x` to the scenario's size; SEQ counts
//! from 0 per partition in send order, so a read-back value names exactly
//! one send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use serde::Serialize;

use crate::scenario::Scenario;

/// How long librdkafka keeps retrying one message: longer than any fault
/// a scenario injects, so a healed cluster still takes it.
const MESSAGE_TIMEOUT_MS: &str = "120000";
/// The bound of the final flush of outstanding messages.
/// librdkafka debug contexts for the producer (`msg,protocol,eos`, say),
/// its lines on stderr.
pub const RDKAFKA_DEBUG_ENV: &str = "CHAOS_RDKAFKA_DEBUG";
const FLUSH_TIMEOUT: Duration = Duration::from_secs(150);

#[derive(Clone, Debug, Serialize)]
pub struct Ack {
    pub seq: u64,
    pub offset: i64,
    /// Microseconds since the run clock started.
    pub at_us: u64,
}

/// One partition's history.
#[derive(Default, Debug, Serialize)]
pub struct PartitionHistory {
    /// Send time (µs on the run clock) of each seq; index = seq.
    pub sent_us: Vec<u64>,
    /// Acknowledgements in the order the client reported them.
    pub acks: Vec<Ack>,
    /// Seqs whose delivery failed, with the error.
    pub failed: Vec<(u64, String)>,
    #[serde(skip)]
    pub outstanding: usize,
}

#[derive(Debug, Serialize)]
pub struct History {
    pub partitions: Vec<PartitionHistory>,
    /// Producer-level events (fatal errors and the new producer after them).
    pub events: Vec<(u64, String)>,
}

/// The run clock: every time in a report is µs since it started.
#[derive(Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

pub fn value(partition: i32, seq: u64, size: usize) -> Vec<u8> {
    let mut v = format!("{partition}:{seq}:").into_bytes();
    if v.len() < size {
        v.resize(size, b'x');
    }
    v
}

/// `(partition, seq)` of a value written by [`value`].
pub fn parse_value(v: &[u8]) -> Option<(i32, u64)> {
    let s = std::str::from_utf8(v).ok()?;
    let mut it = s.splitn(3, ':');
    let p = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    it.next()?;
    Some((p, seq))
}

struct Ctx {
    history: Arc<Mutex<History>>,
    clock: Clock,
    /// Set with `RDKAFKA_DEBUG_ENV`: librdkafka's lines go to stderr.
    log_lines: bool,
}

impl ClientContext for Ctx {
    /// librdkafka's own lines, on the run's clock: what the producer saw
    /// is half of explaining a violation.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, line: &str) {
        if !self.log_lines {
            return;
        }
        eprintln!("rdkafka {} us {level:?} {facility} {line}", self.clock.us());
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let at_us = self.clock.us();
        let (msg, err) = match result {
            Ok(m) => (m, None),
            Err((e, m)) => (m, Some(e.to_string())),
        };
        let Some((p, seq)) = msg.payload().and_then(parse_value) else {
            return;
        };
        let mut h = self.history.lock().unwrap();
        let ph = &mut h.partitions[p as usize];
        ph.outstanding = ph.outstanding.saturating_sub(1);
        match err {
            None => ph.acks.push(Ack {
                seq,
                offset: msg.offset(),
                at_us,
            }),
            Some(e) => ph.failed.push((seq, e)),
        }
    }
}

pub struct Workload {
    pub history: Arc<Mutex<History>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<Result<()>>>,
}

impl Workload {
    /// Starts producing to every partition of `topic` at the scenario's rate.
    pub fn start(s: &Scenario, bootstrap: String, topic: String, clock: Clock) -> Workload {
        let history = Arc::new(Mutex::new(History {
            partitions: (0..s.partitions)
                .map(|_| PartitionHistory::default())
                .collect(),
            events: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, st, s) = (history.clone(), stop.clone(), s.clone());
        let thread = thread::Builder::new()
            .name("chaos-producer".into())
            .spawn(move || produce(&s, &bootstrap, &topic, clock, &h, &st))
            .expect("spawn producer thread");
        Workload {
            history,
            stop,
            thread: Some(thread),
        }
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        let h = self.history.lock().unwrap();
        h.partitions.iter().map(|p| p.sent_us.len() as u64).sum()
    }

    /// Stops sending, flushes what is outstanding (bounded), joins.
    pub fn finish(mut self) -> Result<Arc<Mutex<History>>> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
        }
        Ok(self.history.clone())
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn producer(
    s: &Scenario,
    bootstrap: &str,
    history: &Arc<Mutex<History>>,
    clock: Clock,
) -> Result<ThreadedProducer<Ctx>> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("acks", "all")
        .set("enable.idempotence", s.idempotence.to_string())
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
        .set("request.timeout.ms", "10000")
        .set("retry.backoff.ms", "100")
        .set("linger.ms", "5")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("log_level", "3");
    let debug = std::env::var(RDKAFKA_DEBUG_ENV).ok();
    if let Some(contexts) = &debug {
        c.set("debug", contexts)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    Ok(c.create_with_context(Ctx {
        history: history.clone(),
        clock,
        log_lines: debug.is_some(),
    })?)
}

fn produce(
    s: &Scenario,
    bootstrap: &str,
    topic: &str,
    clock: Clock,
    history: &Arc<Mutex<History>>,
    stop: &AtomicBool,
) -> Result<()> {
    let mut p = producer(s, bootstrap, history, clock)?;
    let interval = Duration::from_secs_f64(1.0 / s.messages_per_second.max(1) as f64);
    let mut next = Instant::now();
    let mut partition = 0i32;
    let mut sent = 0u64;
    while !stop.load(Ordering::SeqCst) && (s.max_messages == 0 || sent < s.max_messages) {
        if let Some((code, reason)) = p.client().fatal_error() {
            // An idempotent producer that hit a fatal error takes no more
            // sends; what it had outstanding fails. Record and start anew.
            history.lock().unwrap().events.push((
                clock.us(),
                format!("producer fatal error {code:?}: {reason}; new producer"),
            ));
            drop(p);
            p = producer(s, bootstrap, history, clock)?;
        }
        let now = Instant::now();
        if now < next {
            thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += interval;
        // Round robin, skipping partitions with too much outstanding.
        let mut chosen = None;
        for i in 0..s.partitions {
            let cand = (partition + i) % s.partitions;
            let h = history.lock().unwrap();
            if h.partitions[cand as usize].outstanding < s.in_flight_per_partition {
                chosen = Some(cand);
                break;
            }
        }
        partition = (partition + 1) % s.partitions;
        let Some(part) = chosen else {
            next = Instant::now() + Duration::from_millis(10);
            continue;
        };
        // The seq is reserved under the lock, so sends and seqs match order.
        let mut h = history.lock().unwrap();
        let ph = &mut h.partitions[part as usize];
        let seq = ph.sent_us.len() as u64;
        let v = value(part, seq, s.value_bytes);
        match p.send::<(), _>(BaseRecord::to(topic).partition(part).payload(&v)) {
            Ok(()) => {
                ph.sent_us.push(clock.us());
                ph.outstanding += 1;
                sent += 1;
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                drop(h);
                thread::sleep(Duration::from_millis(10));
            }
            Err((e, _)) => {
                let at = clock.us();
                h.events
                    .push((at, format!("send to partition {part}: {e}")));
                drop(h);
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let _ = p.flush(FLUSH_TIMEOUT);
    Ok(())
}

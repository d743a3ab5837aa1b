//! The transactional side: a transactional producer (librdkafka) writes
//! numbered transactions to a topic of its own, committing most and
//! aborting every fourth, while the faults hit; [`check`] reads that topic
//! back with read_committed once the cluster healed.
//!
//! The promises checked:
//! - a transaction whose commit was acknowledged is read, each of its
//!   values exactly once;
//! - a transaction whose abort was acknowledged is never read;
//! - a transaction whose end the client never learned (it gave up, or had
//!   to start over as a new producer) is read whole or not at all;
//! - every partition's last stable offset reaches its end: no transaction
//!   is left open (hanging) to hold read_committed readers back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::check::Violation;
use crate::worker::Worker;
use crate::workload::Clock;

/// The run's transactional topic, named after its topic.
pub fn txn_topic(topic: &str) -> String {
    format!("{topic}-txn")
}

/// The producer's transactional id.
pub const TRANSACTIONAL_ID: &str = "sluice-chaos-txn";
/// Values per transaction, spread over the partitions.
const VALUES_PER_TXN: u64 = 6;
/// Every this many transactions, one is aborted on purpose.
const ABORT_EVERY: u64 = 4;
/// The bound of one transactional call (init, commit, abort): longer than
/// any fault a scenario injects, so a healed cluster still answers it.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times a commit that failed with a retriable error is retried.
const COMMIT_RETRIES: u32 = 3;
/// Between transactions.
const PAUSE: Duration = Duration::from_millis(50);
/// The bound of waiting for the last stable offsets and reading back.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// How a transaction ended, as far as its producer knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum End {
    Committed,
    Aborted,
    /// The producer gave up on it (or was replaced): committed or not,
    /// it must be all or nothing.
    Unknown,
}

#[derive(Debug, Default, Serialize)]
pub struct TxnHistory {
    /// Index: the transaction's number.
    pub ends: Vec<End>,
    /// Errors the producer met and what it did (µs on the run clock).
    pub events: Vec<(u64, String)>,
}

/// What the check found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TxnCounts {
    pub committed: u64,
    pub aborted: u64,
    pub unknown: u64,
    /// Unknown transactions found committed (whole).
    pub unknown_read: u64,
    /// Values read with read_committed.
    pub values_read: u64,
}

/// The transactional producer's thread; its progress is the transactions
/// it ended.
pub struct TxnWriter(Worker<TxnHistory>);

impl TxnWriter {
    pub fn start(bootstrap: String, topic: String, partitions: i32, clock: Clock) -> TxnWriter {
        TxnWriter(Worker::start("chaos-txn", move |stop, ended| {
            write(&bootstrap, &topic, partitions, clock, stop, ended)
        }))
    }

    /// Waits (at most `timeout`) until a transaction has ended, so the
    /// faults find the coordinator loaded and transactions under way.
    pub fn wait_committing(&self, timeout: Duration) -> Result<()> {
        self.0.wait_progress(timeout, "no transaction ended")
    }

    /// Stops after the transaction under way and returns the history.
    pub fn finish(self) -> Result<TxnHistory> {
        self.0.finish()
    }
}

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

/// A transactional producer, initialized: its InitProducerId fences any
/// earlier one of the id and ends the transaction that one left open.
fn new_producer(bootstrap: &str, stop: &AtomicBool) -> Result<TxnProducer> {
    let producer: TxnProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("transactional.id", TRANSACTIONAL_ID)
        .set("transaction.timeout.ms", "60000")
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("log_level", "3")
        .create()?;
    let deadline = Instant::now() + CALL_TIMEOUT * 2;
    loop {
        match producer.init_transactions(CALL_TIMEOUT) {
            Ok(()) => return Ok(producer),
            Err(e) if Instant::now() < deadline && !stop.load(Ordering::SeqCst) => {
                eprintln!("[txn] init_transactions: {e}; retrying");
                thread::sleep(Duration::from_millis(500));
            }
            Err(e) => bail!("init_transactions: {e}"),
        }
    }
}

fn write(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    clock: Clock,
    stop: &AtomicBool,
    ended: &AtomicU64,
) -> Result<TxnHistory> {
    let mut history = TxnHistory::default();
    let mut producer = new_producer(bootstrap, stop)?;
    let mut number: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let abort = number % ABORT_EVERY == ABORT_EVERY - 1;
        let (end, restart) = match one(&producer, topic, partitions, number, abort) {
            Ok(end) => (end, false),
            Err(e) => {
                history
                    .events
                    .push((clock.us(), format!("transaction {number}: {e}")));
                (End::Unknown, true)
            }
        };
        history.ends.push(end);
        ended.fetch_add(1, Ordering::SeqCst);
        number += 1;
        if restart {
            // A fatal error, or an end the producer could not reach: a new
            // producer of the same id fences this one and settles its
            // transaction.
            drop(producer);
            producer = new_producer(bootstrap, stop)?;
            history
                .events
                .push((clock.us(), "a new transactional producer".into()));
        }
        thread::sleep(PAUSE);
    }
    Ok(history)
}

/// The error of a transactional call, if it is one.
fn txn_error(e: &KafkaError) -> Option<&RDKafkaError> {
    match e {
        KafkaError::Transaction(e) => Some(e),
        _ => None,
    }
}

/// Runs transaction `number`: its values, then its commit (or abort).
/// `Err`: its end is unknown and the producer must start over.
fn one(
    producer: &TxnProducer,
    topic: &str,
    partitions: i32,
    number: u64,
    abort: bool,
) -> Result<End, String> {
    producer
        .begin_transaction()
        .map_err(|e| format!("begin: {e}"))?;
    for i in 0..VALUES_PER_TXN {
        let value = format!("txn:{number}:{i}");
        let partition = (i % partitions as u64) as i32;
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
            .payload(value.as_bytes())
            .partition(partition);
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if Instant::now() < deadline =>
                {
                    record = r;
                    thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return abort_or_restart(producer, format!("send: {e}")),
            }
        }
    }
    if abort {
        return producer
            .abort_transaction(CALL_TIMEOUT)
            .map(|()| End::Aborted)
            .map_err(|e| format!("abort: {e}"));
    }
    let mut tries = 0;
    loop {
        let e = match producer.commit_transaction(CALL_TIMEOUT) {
            Ok(()) => return Ok(End::Committed),
            Err(e) => e,
        };
        match txn_error(&e) {
            Some(t) if t.txn_requires_abort() => {
                return abort_or_restart(producer, format!("commit: {e}"));
            }
            Some(t) if t.is_retriable() && tries < COMMIT_RETRIES => tries += 1,
            _ => return Err(format!("commit: {e}")),
        }
    }
}

/// After an error that leaves the transaction to abort: `Aborted` once the
/// abort is acknowledged, else the producer starts over.
fn abort_or_restart(producer: &TxnProducer, why: String) -> Result<End, String> {
    match producer.abort_transaction(CALL_TIMEOUT) {
        Ok(()) => Ok(End::Aborted),
        Err(e) => Err(format!("{why}; then abort: {e}")),
    }
}

/// A value of this workload: (transaction, index).
fn parse(value: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(value).ok()?;
    let mut parts = s.strip_prefix("txn:")?.split(':');
    let number = parts.next()?.parse().ok()?;
    let index = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((number, index))
}

fn consumer(bootstrap: &str, isolation: &str) -> Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", "sluice-chaos-txn-checker")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "100")
        .set("log_level", "3")
        .create()?)
}

/// Checks the topic against `history` (after the cluster healed).
pub fn check(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    history: &TxnHistory,
) -> Result<(TxnCounts, Vec<Violation>)> {
    let mut violations = Vec::new();
    let stuck = wait_stable(bootstrap, topic, partitions)?;
    for (p, stable, end) in stuck {
        violations.push(Violation {
            partition: p,
            what: format!(
                "transactional topic: the last stable offset stays at {stable}, below the log end {end}: a transaction was left open (hanging)"
            ),
            window: String::new(),
        });
    }
    let read = read_committed(bootstrap, topic, partitions)?;
    let mut counts = TxnCounts::default();
    for end in &history.ends {
        match end {
            End::Committed => counts.committed += 1,
            End::Aborted => counts.aborted += 1,
            End::Unknown => counts.unknown += 1,
        }
    }
    // Per transaction: how many times each value was read, and where.
    let mut seen: BTreeMap<u64, BTreeMap<u64, (u32, i32)>> = BTreeMap::new();
    for (p, value) in &read {
        counts.values_read += 1;
        match parse(value) {
            Some((number, index)) if (number as usize) < history.ends.len() => {
                let entry = seen
                    .entry(number)
                    .or_default()
                    .entry(index)
                    .or_insert((0, *p));
                entry.0 += 1;
            }
            _ => violations.push(Violation {
                partition: *p,
                what: format!(
                    "transactional topic: a value this run did not write: {:?}",
                    String::from_utf8_lossy(value)
                ),
                window: String::new(),
            }),
        }
    }
    let mut fault = |number: u64, what: String| {
        violations.push(Violation {
            partition: -1,
            what: format!("transaction {number}: {what}"),
            window: String::new(),
        })
    };
    for (number, end) in history.ends.iter().enumerate() {
        let number = number as u64;
        let values = seen.get(&number);
        let present = values.map_or(0, |v| v.len() as u64);
        if let Some(twice) = values.and_then(|v| v.iter().find(|(_, (n, _))| *n > 1)) {
            fault(
                number,
                format!("value {} read {} times", twice.0, twice.1 .0),
            );
        }
        match end {
            End::Committed if present < VALUES_PER_TXN => fault(
                number,
                format!("committed, but only {present} of its {VALUES_PER_TXN} values read"),
            ),
            End::Aborted if present > 0 => {
                fault(number, format!("aborted, but {present} of its values read"))
            }
            End::Unknown if present > 0 && present < VALUES_PER_TXN => fault(
                number,
                format!("ended unknown and read in part: {present} of {VALUES_PER_TXN} values"),
            ),
            End::Unknown if present == VALUES_PER_TXN => counts.unknown_read += 1,
            _ => {}
        }
    }
    Ok((counts, violations))
}

/// Waits (bounded) until every partition's last stable offset is its log
/// end; the partitions where it did not: (partition, stable, end).
fn wait_stable(bootstrap: &str, topic: &str, partitions: i32) -> Result<Vec<(i32, i64, i64)>> {
    let committed = consumer(bootstrap, "read_committed")?;
    let uncommitted = consumer(bootstrap, "read_uncommitted")?;
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let mut stuck = Vec::new();
        for p in 0..partitions {
            let (_, stable) = committed.fetch_watermarks(topic, p, Duration::from_secs(30))?;
            let (_, end) = uncommitted.fetch_watermarks(topic, p, Duration::from_secs(30))?;
            if stable < end {
                stuck.push((p, stable, end));
            }
        }
        if stuck.is_empty() || Instant::now() >= deadline {
            return Ok(stuck);
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// Every value read_committed reads, with its partition, up to each
/// partition's end.
fn read_committed(bootstrap: &str, topic: &str, partitions: i32) -> Result<Vec<(i32, Vec<u8>)>> {
    let consumer = consumer(bootstrap, "read_committed")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut at_end = vec![false; partitions as usize];
    let mut read = Vec::new();
    let deadline = Instant::now() + READ_TIMEOUT;
    while at_end.iter().any(|e| !e) {
        if Instant::now() >= deadline {
            bail!("read_committed did not reach every partition's end within {READ_TIMEOUT:?}");
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => read.push((m.partition(), m.payload().unwrap_or_default().to_vec())),
            Some(Err(KafkaError::PartitionEOF(p))) => at_end[p as usize] = true,
            Some(Err(e)) => eprintln!("[txn] read back: {e}"),
            None => {}
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_back_to_their_transaction() {
        assert_eq!(parse(b"txn:12:3"), Some((12, 3)));
        assert_eq!(parse(b"txn:12"), None);
        assert_eq!(parse(b"txn:12:3:4"), None);
        assert_eq!(parse(b"0:5:xxx"), None);
    }
}

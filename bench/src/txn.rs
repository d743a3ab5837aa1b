//! Transactional producers (`messages_per_transaction = N > 0`).
//!
//! Transactions are cut by count, not by time: every N messages of a
//! producer's schedule form one transaction, which the producer thread
//! commits itself, synchronously. While it commits, the schedule keeps
//! running; the messages that fell due meanwhile are sent late, back to back,
//! and their latency still counts from their intended send times, so the
//! commit's cost shows in latency as well as in throughput.
//!
//! A message counts as published only when its transaction commits: the
//! `acked` counter, and so the publish rate, the max-rate search and the
//! drain, all see committed messages, which are the ones `read_committed`
//! consumers can receive. Its publish latency runs from its intended send
//! time to the commit's return. A transaction whose commit fails counts its
//! messages as failed; it is aborted and the producer goes on, unless the
//! abort fails too (a fatal or fenced producer), which stops that producer.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{anyhow, Result};
use rdkafka::error::KafkaResult;
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};

use crate::clients::Shared;
use crate::stats::Latency;

/// How long `init_transactions` may take. A broker without a transaction
/// coordinator never answers FindCoordinator for a transactional id, and
/// librdkafka would retry for ever.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one commit or abort. rdkafka's `commit_transaction` first
/// flushes with the same bound, so a commit takes at most twice this.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The librdkafka calls a transaction makes; a trait so the commit and
/// abort accounting can be tested without a broker.
pub trait TxnProducer {
    fn begin(&self) -> KafkaResult<()>;
    fn commit(&self, timeout: Duration) -> KafkaResult<()>;
    fn abort(&self, timeout: Duration) -> KafkaResult<()>;
}

impl<C: ProducerContext + 'static> TxnProducer for ThreadedProducer<C> {
    fn begin(&self) -> KafkaResult<()> {
        self.begin_transaction()
    }
    fn commit(&self, timeout: Duration) -> KafkaResult<()> {
        self.commit_transaction(timeout)
    }
    fn abort(&self, timeout: Duration) -> KafkaResult<()> {
        self.abort_transaction(timeout)
    }
}

/// Registers the producer's transactional id with the coordinator (and
/// fences any earlier producer with the same id), bounded.
pub fn init<C: ProducerContext + 'static>(producer: &ThreadedProducer<C>) -> Result<()> {
    producer.init_transactions(INIT_TIMEOUT).map_err(|e| {
        anyhow!(
            "init_transactions within {}s: {e} (the broker needs a transaction \
             coordinator: FindCoordinator key type 1, InitProducerId with a transactional id)",
            INIT_TIMEOUT.as_secs()
        )
    })
}

/// What the producer loop does after a transactional step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The producer can no longer make transactions; the error is noted.
    Stop,
}

/// One producer's transaction state.
pub struct Transactions {
    per_txn: usize,
    /// Whether a transaction was begun and not yet ended; one is begun
    /// lazily, before its first message, so none is left empty.
    open: bool,
    /// Intended send times of the open transaction's messages, kept until it
    /// ends: they count as published, and get a publish latency, only if it
    /// commits.
    intended: Vec<u64>,
    /// Publish latency of committed messages intended inside the window.
    pub publish: Latency,
}

impl Transactions {
    pub fn new(messages_per_transaction: u32) -> Transactions {
        assert!(messages_per_transaction > 0, "a transaction holds messages");
        Transactions {
            per_txn: messages_per_transaction as usize,
            open: false,
            intended: Vec::with_capacity(messages_per_transaction as usize),
            publish: Latency::new(),
        }
    }

    /// Begins a transaction unless one is open.
    pub fn ensure_open(&mut self, p: &impl TxnProducer, s: &Shared) -> Flow {
        if self.open {
            return Flow::Continue;
        }
        match p.begin() {
            Ok(()) => {
                self.open = true;
                Flow::Continue
            }
            Err(e) => {
                s.note_error(format!("begin_transaction: {e}"));
                Flow::Stop
            }
        }
    }

    /// Notes one enqueued message; commits when the transaction is full.
    pub fn sent(&mut self, p: &impl TxnProducer, intended_ns: u64, s: &Shared) -> Flow {
        debug_assert!(self.open, "a message sent outside a transaction");
        self.intended.push(intended_ns);
        if self.intended.len() < self.per_txn {
            return Flow::Continue;
        }
        self.end(p, s)
    }

    /// Commits what is open when producing stops, so the last, partial
    /// transaction is not lost.
    pub fn finish(&mut self, p: &impl TxnProducer, s: &Shared) {
        if self.open {
            let _ = self.end(p, s);
        }
    }

    /// Commits the open transaction; on failure counts its messages as
    /// failed and aborts it.
    fn end(&mut self, p: &impl TxnProducer, s: &Shared) -> Flow {
        self.open = false;
        let result = p.commit(CALL_TIMEOUT);
        let now = s.clock.now_ns();
        let flow = match result {
            Ok(()) => {
                self.settle_committed(now, s);
                Flow::Continue
            }
            Err(e) => {
                s.note_error(format!(
                    "commit_transaction ({} messages): {e}",
                    self.intended.len()
                ));
                s.failed.fetch_add(self.intended.len() as u64, Relaxed);
                abort(p, s)
            }
        };
        self.intended.clear();
        flow
    }

    fn settle_committed(&mut self, now_ns: u64, s: &Shared) {
        for &t in &self.intended {
            if s.in_window(t) {
                self.publish.record(now_ns.saturating_sub(t) / 1000);
            }
        }
        s.acked.fetch_add(self.intended.len() as u64, Relaxed);
    }
}

/// Aborts after a failed commit; a producer that cannot abort (fatal
/// error, fenced, or a commit still in progress) stops.
fn abort(p: &impl TxnProducer, s: &Shared) -> Flow {
    match p.abort(CALL_TIMEOUT) {
        Ok(()) => Flow::Continue,
        Err(e) => {
            s.note_error(format!("abort_transaction: {e}"));
            Flow::Stop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::sync::Mutex;

    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    use crate::payload::Clock;

    /// Records the calls and fails the ones it is told to.
    #[derive(Default)]
    struct Fake {
        calls: RefCell<Vec<&'static str>>,
        fail_commit: bool,
        fail_abort: bool,
    }

    fn timed_out() -> KafkaError {
        KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)
    }

    impl TxnProducer for Fake {
        fn begin(&self) -> KafkaResult<()> {
            self.calls.borrow_mut().push("begin");
            Ok(())
        }
        fn commit(&self, _: Duration) -> KafkaResult<()> {
            self.calls.borrow_mut().push("commit");
            if self.fail_commit {
                Err(timed_out())
            } else {
                Ok(())
            }
        }
        fn abort(&self, _: Duration) -> KafkaResult<()> {
            self.calls.borrow_mut().push("abort");
            if self.fail_abort {
                Err(timed_out())
            } else {
                Ok(())
            }
        }
    }

    /// A run whose window covers everything from 0 on.
    fn shared() -> Shared {
        Shared {
            clock: Clock::new(),
            run_tag: 1,
            window_start_ns: 0,
            window_end_ns: u64::MAX,
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            producer_lag_ns: AtomicU64::new(0),
            stop_producing: AtomicBool::new(false),
            stop_consuming: AtomicBool::new(false),
            first_error: Mutex::new(None),
        }
    }

    /// Sends `n` messages through `t` the way the producer loop does.
    fn send(t: &mut Transactions, p: &Fake, s: &Shared, n: u64) -> Flow {
        for i in 0..n {
            if t.ensure_open(p, s) == Flow::Stop || t.sent(p, i, s) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    #[test]
    fn every_n_messages_commit_and_only_then_count_as_published() {
        let (p, s) = (Fake::default(), shared());
        let mut t = Transactions::new(3);
        assert_eq!(send(&mut t, &p, &s, 2), Flow::Continue);
        assert_eq!(s.acked.load(Relaxed), 0, "nothing counts before the commit");
        assert_eq!(send(&mut t, &p, &s, 5), Flow::Continue);
        assert_eq!(s.acked.load(Relaxed), 6);
        assert_eq!(t.publish.count(), 6);
        t.finish(&p, &s);
        assert_eq!(s.acked.load(Relaxed), 7, "the partial transaction commits");
        assert_eq!(
            *p.calls.borrow(),
            ["begin", "commit", "begin", "commit", "begin", "commit"]
        );
        t.finish(&p, &s);
        assert_eq!(p.calls.borrow().len(), 6, "no empty transaction");
    }

    #[test]
    fn a_failed_commit_counts_its_messages_failed_aborts_and_goes_on() {
        let p = Fake {
            fail_commit: true,
            ..Fake::default()
        };
        let s = shared();
        let mut t = Transactions::new(4);
        assert_eq!(send(&mut t, &p, &s, 4), Flow::Continue);
        assert_eq!(*p.calls.borrow(), ["begin", "commit", "abort"]);
        assert_eq!(s.acked.load(Relaxed), 0);
        assert_eq!(s.failed.load(Relaxed), 4);
        assert_eq!(t.publish.count(), 0);
        let e = s.first_error.lock().unwrap().clone().unwrap();
        assert!(e.starts_with("commit_transaction (4 messages)"), "{e}");
    }

    #[test]
    fn a_producer_that_cannot_abort_stops() {
        let p = Fake {
            fail_commit: true,
            fail_abort: true,
            ..Fake::default()
        };
        let s = shared();
        let mut t = Transactions::new(2);
        assert_eq!(send(&mut t, &p, &s, 10), Flow::Stop);
        assert_eq!(*p.calls.borrow(), ["begin", "commit", "abort"]);
        assert_eq!(s.failed.load(Relaxed), 2);
    }

    #[test]
    fn only_messages_intended_in_the_window_get_a_latency() {
        let (p, mut s) = (Fake::default(), shared());
        s.window_start_ns = 2;
        let mut t = Transactions::new(5);
        send(&mut t, &p, &s, 5);
        assert_eq!(s.acked.load(Relaxed), 5);
        assert_eq!(t.publish.count(), 3, "intended at 2, 3 and 4");
    }
}

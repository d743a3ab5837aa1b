//! The consumer side: one member of a consumer group reads along and
//! commits its position, and every commit the coordinator acknowledged is
//! recorded with what OffsetFetch showed right after it.
//!
//! The promise checked ([`check_commits`]): a committed group offset never
//! moves backwards. An acknowledged commit must still be there (or a later
//! one) whenever anyone reads it back, including after the coordinator's
//! broker died and another took the group over.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::check::Violation;
use crate::scenario::GroupProtocol;
use crate::worker::Worker;
use crate::workload::Clock;

/// The run's consumer group, named after its topic.
pub fn group_of(topic: &str) -> String {
    format!("sluice-chaos-{topic}")
}

/// How often the member commits its position.
const COMMIT_INTERVAL: Duration = Duration::from_millis(500);
/// The bound of one commit or one OffsetFetch.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One committed offset as seen at one moment (µs on the run clock).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Seen {
    pub at_us: u64,
    pub offset: i64,
}

#[derive(Debug, Default, Serialize)]
pub struct CommitHistory {
    pub group: String,
    /// Per partition: commits the coordinator acknowledged, in order.
    pub acked: Vec<Vec<Seen>>,
    /// Per partition: the committed offset OffsetFetch returned after each
    /// acknowledged commit, and once more after the cluster healed.
    pub observed: Vec<Vec<Seen>>,
    pub consumed: u64,
    /// Commits or fetches that failed (a moving coordinator; not violations).
    pub failed_calls: u64,
}

/// The group member's thread; its progress is the messages it consumed.
pub struct GroupMember(Worker<CommitHistory>);

fn config(bootstrap: &str, group: &str, protocol: GroupProtocol) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    match protocol {
        GroupProtocol::Classic => c.set("session.timeout.ms", "6000"),
        // The coordinator sets the session and the heartbeats.
        GroupProtocol::Consumer => c.set("group.protocol", "consumer"),
    };
    c.set("fetch.wait.max.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("log_level", "3");
    c
}

impl GroupMember {
    pub fn start(
        bootstrap: String,
        topic: String,
        partitions: i32,
        protocol: GroupProtocol,
        clock: Clock,
    ) -> GroupMember {
        GroupMember(Worker::start("chaos-consumer", move |stop, consumed| {
            consume(
                &bootstrap, &topic, partitions, protocol, clock, stop, consumed,
            )
        }))
    }

    /// Waits (at most `timeout`) until the member has joined and consumed a
    /// message: faults before that would find no committed offsets to
    /// check.
    pub fn wait_consuming(&self, timeout: Duration) -> Result<()> {
        self.0
            .wait_progress(timeout, "the group member consumed nothing")
    }

    /// Stops consuming (the member leaves the group) and returns its history.
    pub fn finish(self) -> Result<CommitHistory> {
        self.0.finish()
    }
}

/// A commit still out after `CALL_TIMEOUT`: its answer, when it comes.
type Outstanding = Option<mpsc::Receiver<bool>>;

/// Commits `tpl` synchronously on a thread of its own and waits at most
/// `CALL_TIMEOUT` for it: `Some(acknowledged)`, or `None` when it did not
/// answer in time or an earlier one is still out (no new one starts then,
/// so stuck commits cannot pile up). Not an asynchronous commit:
/// librdkafka answers a manual one only through an `offset_commit_cb`,
/// which the rdkafka crate does not set (its commit events cover
/// auto-commits), so such an answer never came and no commit was ever
/// counted. And not a plain synchronous one, which waits without a bound
/// (it once waited for ever after a heal).
fn commit_bounded(
    consumer: &Arc<BaseConsumer>,
    tpl: &TopicPartitionList,
    outstanding: &mut Outstanding,
) -> Option<bool> {
    if let Some(rx) = outstanding {
        match rx.try_recv() {
            Err(mpsc::TryRecvError::Empty) => return None,
            _ => *outstanding = None,
        }
    }
    let (tx, rx) = mpsc::channel();
    let (c, t) = (consumer.clone(), tpl.clone());
    thread::Builder::new()
        .name("chaos-commit".into())
        .spawn(move || {
            let _ = tx.send(c.commit(&t, CommitMode::Sync).is_ok());
        })
        .ok()?;
    match rx.recv_timeout(CALL_TIMEOUT) {
        Ok(acknowledged) => Some(acknowledged),
        Err(_) => {
            *outstanding = Some(rx);
            None
        }
    }
}

fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    protocol: GroupProtocol,
    clock: Clock,
    stop: &AtomicBool,
    consumed: &AtomicU64,
) -> Result<CommitHistory> {
    let group = group_of(topic);
    let consumer: Arc<BaseConsumer> = Arc::new(config(bootstrap, &group, protocol).create()?);
    let mut outstanding: Outstanding = None;
    consumer.subscribe(&[topic])?;
    let mut h = CommitHistory {
        group,
        acked: vec![Vec::new(); partitions as usize],
        observed: vec![Vec::new(); partitions as usize],
        ..Default::default()
    };
    let mut next_commit = Instant::now() + COMMIT_INTERVAL;
    while !stop.load(Ordering::SeqCst) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            h.consumed += 1;
            consumed.fetch_add(1, Ordering::SeqCst);
        }
        if Instant::now() < next_commit {
            continue;
        }
        next_commit = Instant::now() + COMMIT_INTERVAL;
        let Ok(position) = consumer.position() else {
            h.failed_calls += 1;
            continue;
        };
        let mut tpl = TopicPartitionList::new();
        for e in position.elements() {
            if let Offset::Offset(o) = e.offset() {
                tpl.add_partition_offset(topic, e.partition(), Offset::Offset(o))?;
            }
        }
        if tpl.count() == 0 {
            continue;
        }
        if commit_bounded(&consumer, &tpl, &mut outstanding) != Some(true) {
            h.failed_calls += 1;
            continue;
        }
        let at_us = clock.us();
        for e in tpl.elements() {
            if let Offset::Offset(o) = e.offset() {
                h.acked[e.partition() as usize].push(Seen { at_us, offset: o });
            }
        }
        match consumer.committed(CALL_TIMEOUT) {
            Ok(c) => record(&mut h, &c, clock),
            Err(_) => h.failed_calls += 1,
        }
    }
    Ok(h)
}

fn record(h: &mut CommitHistory, committed: &TopicPartitionList, clock: Clock) {
    let at_us = clock.us();
    for e in committed.elements() {
        if let (Offset::Offset(o), Some(seen)) =
            (e.offset(), h.observed.get_mut(e.partition() as usize))
        {
            seen.push(Seen { at_us, offset: o });
        }
    }
}

/// After healing, reads the group's committed offsets once more through a
/// client that does not join it.
pub fn read_final(bootstrap: &str, topic: &str, h: &mut CommitHistory, clock: Clock) -> Result<()> {
    // Only reads the committed offsets: it joins no group.
    let consumer: BaseConsumer = config(bootstrap, &h.group, GroupProtocol::Classic).create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..h.observed.len() as i32 {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, CALL_TIMEOUT)?;
    record(h, &committed, clock);
    Ok(())
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CommitCounts {
    pub acknowledged: u64,
    /// Observations below an earlier acknowledged commit or observation.
    pub regressed: u64,
    /// Messages the member consumed, and its commits or fetches that
    /// failed: a run that acknowledged no commit says why.
    pub consumed: u64,
    pub failed_calls: u64,
}

/// Per partition: every observation is at least every commit acknowledged
/// before it and every earlier observation; acknowledged commits rise.
pub fn check_commits(h: &CommitHistory) -> (CommitCounts, Vec<Violation>) {
    let mut counts = CommitCounts {
        consumed: h.consumed,
        failed_calls: h.failed_calls,
        ..CommitCounts::default()
    };
    let mut violations = Vec::new();
    for (p, (acked, observed)) in h.acked.iter().zip(&h.observed).enumerate() {
        counts.acknowledged += acked.len() as u64;
        // Both in time order: merge them, acks first at equal times.
        let mut events: Vec<(u64, bool, i64)> = acked
            .iter()
            .map(|s| (s.at_us, false, s.offset))
            .chain(observed.iter().map(|s| (s.at_us, true, s.offset)))
            .collect();
        events.sort_by_key(|&(at, is_observation, _)| (at, is_observation));
        let mut floor: Option<(u64, bool, i64)> = None;
        for (i, &(at, is_observation, offset)) in events.iter().enumerate() {
            if let Some((f_at, f_obs, f_off)) = floor {
                if offset < f_off {
                    counts.regressed += 1;
                    let (now, then) = (kind(is_observation), kind(f_obs));
                    let lo = i.saturating_sub(4);
                    let window = events[lo..(i + 3).min(events.len())]
                        .iter()
                        .map(|&(t, o, off)| {
                            format!("    {:.1} ms {}: {off}\n", t as f64 / 1e3, kind(o))
                        })
                        .collect();
                    violations.push(Violation {
                        partition: p as i32,
                        what: format!(
                            "group {}: committed offset moved backwards: {then} {f_off} at {:.1} ms, then {now} {offset} at {:.1} ms",
                            h.group,
                            f_at as f64 / 1e3,
                            at as f64 / 1e3
                        ),
                        window,
                    });
                    continue;
                }
            }
            floor = Some((at, is_observation, offset));
        }
    }
    (counts, violations)
}

fn kind(observation: bool) -> &'static str {
    if observation {
        "read back"
    } else {
        "acknowledged"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(v: &[(u64, i64)]) -> Vec<Seen> {
        v.iter()
            .map(|&(at_us, offset)| Seen { at_us, offset })
            .collect()
    }

    /// Rising commits pass; an observation below an acknowledged commit,
    /// or a later commit below an earlier one, is a regression.
    #[test]
    fn regressions() {
        let mut h = CommitHistory {
            acked: vec![seen(&[(1, 5), (3, 9)])],
            observed: vec![seen(&[(2, 5), (4, 9), (9, 9)])],
            ..Default::default()
        };
        let (c, v) = check_commits(&h);
        assert_eq!((c.acknowledged, c.regressed, v.len()), (2, 0, 0));
        h.observed[0].push(Seen {
            at_us: 10,
            offset: 5,
        });
        h.acked[0].push(Seen {
            at_us: 11,
            offset: 7,
        });
        let (c, v) = check_commits(&h);
        assert_eq!(c.regressed, 2, "{v:?}");
    }
}

//! One share partition (KIP-932): the delivery state of one partition's
//! records for one share group, as the partition's leader holds it.
//!
//! Records from the share-partition start offset (SPSO, `start`) to `end`
//! are *in flight*: each is acquired by one member for a while, available
//! to be acquired again, acknowledged, or archived (rejected, or delivered
//! too often). Records from `end` on were never acquired. The window
//! `end - start` is bounded (`group.share.partition.max.record.locks`), so
//! a member that never acknowledges stalls only its share of it. The
//! start moves past the in-flight records as soon as every record before
//! them is done with.
//!
//! Everything here is synchronous and knows nothing of logs: the caller
//! reads batch headers and hands in their offset ranges.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::ResponseError;

pub use crate::group::ShareSnapshot as Snapshot;

/// Kafka's AcknowledgeType values (ShareFetch/ShareAcknowledge v1).
pub const ACK_GAP: i8 = 0;
pub const ACK_ACCEPT: i8 = 1;
pub const ACK_RELEASE: i8 = 2;
pub const ACK_REJECT: i8 = 3;

/// The share group's limits on its partitions' delivery.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `group.share.record.lock.duration.ms`: how long an acquisition lasts.
    pub lock_duration_ms: i64,
    /// `group.share.delivery.count.limit`: a record delivered this often
    /// and released again is archived.
    pub delivery_count_limit: i16,
    /// `group.share.partition.max.record.locks`: the most records in
    /// flight (from the start offset to the end).
    pub in_flight_max: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Acquired { member: Rc<str>, until_ms: i64 },
    Available,
    Acknowledged,
    Archived,
}

impl State {
    fn done(&self) -> bool {
        matches!(self, State::Acknowledged | State::Archived)
    }
}

#[derive(Clone, Debug)]
struct Record {
    state: State,
    deliveries: i16,
}

/// What a batch of the log holds for the share group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    /// Records to deliver.
    Records,
    /// Control records (transaction markers): never delivered.
    Markers,
    /// Records of an aborted transaction, to a `read_committed` group:
    /// never delivered (the answer cannot name aborted transactions for
    /// the member to drop them, as a fetch's does).
    Aborted,
}

/// One batch of the log as the acquisition sees it: its offsets and what
/// it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSpan {
    pub base: i64,
    pub last: i64,
    pub holds: Holds,
}

/// A run of acquired offsets delivered the same number of times, as
/// ShareFetch's AcquiredRecords names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquired {
    pub first: i64,
    pub last: i64,
    pub deliveries: i16,
}

pub struct SharePartition {
    /// The share-partition start offset: every record before it is done.
    start: i64,
    /// The first offset never acquired.
    end: i64,
    /// The in-flight records, `start <= offset < end`. An offset of that
    /// range without an entry does not exist in the log (a gap between
    /// batches) and counts as done.
    records: BTreeMap<i64, Record>,
    /// Ranges at or past `end` that a snapshot loaded says are done: they
    /// are passed over, not acquired, when the acquisition reaches them.
    done_ahead: Vec<(i64, i64)>,
    /// Ranges at or past `end` that a snapshot loaded says were delivered
    /// and not done with, and how often: delivered again, their counts go
    /// on from there.
    delivered_ahead: Vec<(i64, i64, i16)>,
    /// Locks that ran out since [`SharePartition::take_expired`] last
    /// looked, for the caller to count.
    expired: u64,
}

impl SharePartition {
    /// A share partition starting at `start` (the group's
    /// `share.auto.offset.reset` applied to the log when first asked).
    pub fn new(start: i64) -> SharePartition {
        assert!(start >= 0, "a share partition starts at a log offset");
        SharePartition {
            start,
            end: start,
            records: BTreeMap::new(),
            done_ahead: Vec::new(),
            delivered_ahead: Vec::new(),
            expired: 0,
        }
    }

    /// The share partition a snapshot describes: nothing in flight, its
    /// done ranges passed over when reached, its delivered ones delivered
    /// again with their counts.
    pub fn restore(snapshot: Snapshot) -> SharePartition {
        let mut sp = SharePartition::new(snapshot.start.max(0));
        let start = sp.start;
        sp.done_ahead = snapshot
            .done
            .into_iter()
            .filter(|(first, last)| first <= last && *last >= start)
            .collect();
        sp.done_ahead.sort_unstable();
        sp.delivered_ahead = snapshot
            .delivered
            .into_iter()
            .filter(|(first, last, deliveries)| first <= last && *last >= start && *deliveries > 0)
            .collect();
        sp.delivered_ahead.sort_unstable();
        sp
    }

    /// What is kept durable of it now, as leader `leader_epoch` writes it
    /// over the state of `state_epoch` it was loaded from.
    pub fn snapshot(&self, leader_epoch: i32, state_epoch: i32) -> Snapshot {
        let done_in_flight: Vec<i64> = self
            .records
            .iter()
            .filter(|(_, r)| r.state.done())
            .map(|(o, _)| *o)
            .collect();
        let mut done: Vec<(i64, i64)> = Vec::new();
        for offset in done_in_flight {
            match done.last_mut() {
                Some(run) if run.1 + 1 == offset => run.1 = offset,
                _ => done.push((offset, offset)),
            }
        }
        // The ranges loaded and not reached yet; those reached are in
        // `records` now.
        let end = self.end;
        let ahead = |first: i64, last: i64| (last >= end).then_some((first.max(end), last));
        done.extend(self.done_ahead.iter().filter_map(|&(f, l)| ahead(f, l)));
        let mut delivered: Vec<(i64, i64, i16)> = Vec::new();
        let in_flight = self.records.iter().filter(|(_, r)| !r.state.done());
        for (&offset, record) in in_flight {
            match delivered.last_mut() {
                Some(run) if run.1 + 1 == offset && run.2 == record.deliveries => run.1 = offset,
                _ => delivered.push((offset, offset, record.deliveries)),
            }
        }
        delivered.extend(
            self.delivered_ahead
                .iter()
                .filter_map(|&(f, l, d)| ahead(f, l).map(|(f, l)| (f, l, d))),
        );
        Snapshot {
            leader_epoch,
            state_epoch,
            start: self.start,
            done,
            delivered,
        }
    }

    /// Whether a loaded snapshot says `offset` (not yet reached) is done.
    fn done_ahead(&mut self, offset: i64) -> bool {
        loaded_at(&mut self.done_ahead, offset, |&(first, last)| (first, last)).is_some()
    }

    /// How often a loaded snapshot says `offset` (not yet reached) was
    /// delivered (0: never).
    fn delivered_ahead(&mut self, offset: i64) -> i16 {
        loaded_at(&mut self.delivered_ahead, offset, |&(f, l, _)| (f, l)).map_or(0, |r| r.2)
    }

    pub fn start(&self) -> i64 {
        self.start
    }

    /// Records acquired and not yet acknowledged, released or expired.
    pub fn acquired_count(&self) -> usize {
        self.records
            .values()
            .filter(|r| matches!(r.state, State::Acquired { .. }))
            .count()
    }

    /// Where a read for an acquisition starts: the first record available
    /// again, else the end; `None` while nothing can be acquired (every
    /// in-flight record taken and the window full).
    pub fn fetch_offset(&mut self, limits: &Limits, now_ms: i64) -> Option<i64> {
        self.expire(limits, now_ms);
        let available = self
            .records
            .iter()
            .find(|(_, r)| r.state == State::Available)
            .map(|(offset, _)| *offset);
        match available {
            Some(offset) => Some(offset),
            None if self.end - self.start < limits.in_flight_max => Some(self.end),
            None => None,
        }
    }

    /// Acquires for `member` up to `max_records` records of `batches`
    /// (consecutive batches of the log, read below the high watermark, or
    /// the last stable offset for a `read_committed` group): records
    /// available again, then records never acquired, while the window has
    /// room. Batches holding nothing to deliver are archived as they are
    /// met.
    pub fn acquire(
        &mut self,
        member: &Rc<str>,
        batches: &[BatchSpan],
        max_records: usize,
        limits: &Limits,
        now_ms: i64,
    ) -> Vec<Acquired> {
        self.expire(limits, now_ms);
        let until_ms = now_ms.saturating_add(limits.lock_duration_ms);
        let mut taken: Vec<(i64, i16)> = Vec::new();
        'batches: for batch in batches {
            assert!(batch.base <= batch.last, "a batch spans its offsets");
            for offset in batch.base.max(self.start)..=batch.last {
                if offset >= self.end {
                    // Done before the snapshot loaded was taken, nothing to
                    // deliver, or delivered its last time before it: done,
                    // not delivered (again).
                    let before = self.delivered_ahead(offset);
                    let done = if self.done_ahead(offset) {
                        Some(State::Acknowledged)
                    } else if batch.holds != Holds::Records || before >= limits.delivery_count_limit
                    {
                        Some(State::Archived)
                    } else {
                        None
                    };
                    if let Some(state) = done {
                        self.end = offset + 1;
                        let record = Record {
                            state,
                            deliveries: before,
                        };
                        self.records.insert(offset, record);
                        continue;
                    }
                    if taken.len() >= max_records || offset - self.start >= limits.in_flight_max {
                        break 'batches;
                    }
                    // Offsets skipped between `end` and here are not in the
                    // log: no entry, done.
                    self.end = offset + 1;
                    let state = State::Acquired {
                        member: member.clone(),
                        until_ms,
                    };
                    let deliveries = before + 1;
                    self.records.insert(offset, Record { state, deliveries });
                    taken.push((offset, deliveries));
                    continue;
                }
                let Some(record) = self.records.get_mut(&offset) else {
                    continue;
                };
                if record.state != State::Available {
                    continue;
                }
                if taken.len() >= max_records {
                    break 'batches;
                }
                record.deliveries = record.deliveries.saturating_add(1);
                record.state = State::Acquired {
                    member: member.clone(),
                    until_ms,
                };
                taken.push((offset, record.deliveries));
            }
        }
        self.advance();
        runs(&taken)
    }

    /// Applies one acknowledgement batch of `member`: one type for every
    /// offset of `first..=last`, or one per offset. Either every offset is
    /// acquired by `member` (and its lock has not run out) and all are
    /// applied, or none is (INVALID_RECORD_STATE), as Kafka does.
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: i64,
        last: i64,
        types: &[i8],
        limits: &Limits,
        now_ms: i64,
    ) -> Result<(), i16> {
        let invalid_request = ResponseError::InvalidRequest.code();
        if first > last || first < 0 {
            return Err(invalid_request);
        }
        let span = (last - first + 1) as usize;
        if types.len() != 1 && types.len() != span {
            return Err(invalid_request);
        }
        if types
            .iter()
            .any(|t| !matches!(*t, ACK_GAP | ACK_ACCEPT | ACK_RELEASE | ACK_REJECT))
        {
            return Err(invalid_request);
        }
        self.expire(limits, now_ms);
        let held = |offset: i64| {
            self.records.get(&offset).is_some_and(
                |r| matches!(&r.state, State::Acquired { member: m, .. } if &**m == member),
            )
        };
        // An offset inside a batch with no record (compacted away) is in
        // flight too; one outside the window never was acquired.
        if first < self.start || last >= self.end || !(first..=last).all(held) {
            return Err(ResponseError::InvalidRecordState.code());
        }
        for (i, offset) in (first..=last).enumerate() {
            let kind = if types.len() == 1 { types[0] } else { types[i] };
            let record = self.records.get_mut(&offset).expect("checked above");
            record.state = match kind {
                ACK_ACCEPT => State::Acknowledged,
                ACK_RELEASE => released(record.deliveries, limits),
                _ => State::Archived,
            };
        }
        self.advance();
        Ok(())
    }

    /// Releases every record `member` holds (its share session closed, or
    /// it left the group): available again, or archived past the
    /// delivery limit. Returns how many it held.
    pub fn release_member(&mut self, member: &str, limits: &Limits) -> usize {
        let mut released_count = 0;
        for record in self.records.values_mut() {
            if matches!(&record.state, State::Acquired { member: m, .. } if &**m == member) {
                record.state = released(record.deliveries, limits);
                released_count += 1;
            }
        }
        self.advance();
        released_count
    }

    /// The log's start moved past records in flight (retention, DeleteRecords):
    /// they are gone, whatever their state.
    pub fn log_start_moved(&mut self, log_start: i64) {
        if log_start <= self.start {
            return;
        }
        self.records = self.records.split_off(&log_start);
        self.done_ahead.retain(|(_, last)| *last >= log_start);
        self.delivered_ahead
            .retain(|(_, last, _)| *last >= log_start);
        self.start = log_start;
        self.end = self.end.max(log_start);
        self.advance();
    }

    /// Locks that ran out: those records are released as if by their member.
    fn expire(&mut self, limits: &Limits, now_ms: i64) {
        for record in self.records.values_mut() {
            if matches!(record.state, State::Acquired { until_ms, .. } if until_ms <= now_ms) {
                record.state = released(record.deliveries, limits);
                self.expired += 1;
            }
        }
    }

    /// How many locks ran out since the last call.
    pub fn take_expired(&mut self) -> u64 {
        std::mem::take(&mut self.expired)
    }

    /// Moves the start past the records done with.
    fn advance(&mut self) {
        while let Some(entry) = self.records.first_entry() {
            if !entry.get().state.done() {
                self.start = *entry.key();
                break;
            }
            entry.remove();
        }
        if self.records.is_empty() {
            self.start = self.end;
        }
        debug_assert!(self.start <= self.end);
        debug_assert!(self
            .records
            .keys()
            .all(|o| (self.start..self.end).contains(o)));
    }
}

/// The loaded range (sorted, disjoint) holding `offset`, not yet reached;
/// the ranges wholly before it are dropped, as the acquisition only moves
/// forward.
fn loaded_at<T: Copy>(
    ranges: &mut Vec<T>,
    offset: i64,
    span: impl Fn(&T) -> (i64, i64),
) -> Option<T> {
    let passed = ranges.iter().take_while(|r| span(r).1 < offset).count();
    ranges.drain(..passed);
    ranges.first().copied().filter(|r| span(r).0 <= offset)
}

/// A released record's state: available, unless delivered its last time.
fn released(deliveries: i16, limits: &Limits) -> State {
    if deliveries >= limits.delivery_count_limit {
        State::Archived
    } else {
        State::Available
    }
}

/// Acquired offsets (in order) as runs of consecutive offsets with one
/// delivery count.
fn runs(taken: &[(i64, i16)]) -> Vec<Acquired> {
    let mut out: Vec<Acquired> = Vec::new();
    for &(offset, deliveries) in taken {
        match out.last_mut() {
            Some(run) if run.last + 1 == offset && run.deliveries == deliveries => {
                run.last = offset;
            }
            _ => out.push(Acquired {
                first: offset,
                last: offset,
                deliveries,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        lock_duration_ms: 1_000,
        delivery_count_limit: 3,
        in_flight_max: 100,
    };

    fn batch(base: i64, last: i64) -> BatchSpan {
        BatchSpan {
            base,
            last,
            holds: Holds::Records,
        }
    }

    fn member(id: &str) -> Rc<str> {
        Rc::from(id)
    }

    fn run(first: i64, last: i64, deliveries: i16) -> Acquired {
        Acquired {
            first,
            last,
            deliveries,
        }
    }

    #[test]
    fn members_share_the_records_and_acceptance_moves_the_start() {
        let mut sp = SharePartition::new(0);
        let (a, b) = (member("a"), member("b"));
        let batches = [batch(0, 4), batch(5, 9)];
        assert_eq!(sp.fetch_offset(&LIMITS, 0), Some(0));
        assert_eq!(sp.acquire(&a, &batches, 5, &LIMITS, 0), [run(0, 4, 1)]);
        // The second member reads from the first record not taken.
        assert_eq!(sp.fetch_offset(&LIMITS, 0), Some(5));
        assert_eq!(sp.acquire(&b, &batches, 10, &LIMITS, 0), [run(5, 9, 1)]);
        assert_eq!(sp.acknowledge("b", 5, 9, &[ACK_ACCEPT], &LIMITS, 1), Ok(()));
        assert_eq!(sp.start(), 0, "a's records hold the start");
        assert_eq!(sp.acknowledge("a", 0, 4, &[ACK_ACCEPT], &LIMITS, 1), Ok(()));
        assert_eq!(sp.start(), 10);
        assert_eq!(sp.acquired_count(), 0);
    }

    #[test]
    fn only_the_holder_acknowledges_and_a_refused_batch_changes_nothing() {
        let mut sp = SharePartition::new(0);
        let a = member("a");
        sp.acquire(&a, &[batch(0, 3)], 10, &LIMITS, 0);
        let invalid = ResponseError::InvalidRecordState.code();
        assert_eq!(
            sp.acknowledge("b", 0, 3, &[ACK_ACCEPT], &LIMITS, 1),
            Err(invalid)
        );
        // 4 was never acquired: the whole batch is refused.
        assert_eq!(
            sp.acknowledge("a", 2, 4, &[ACK_ACCEPT], &LIMITS, 1),
            Err(invalid)
        );
        assert_eq!(sp.acquired_count(), 4);
        let per_offset = [ACK_ACCEPT, ACK_REJECT, ACK_GAP, ACK_ACCEPT];
        assert_eq!(sp.acknowledge("a", 0, 3, &per_offset, &LIMITS, 1), Ok(()));
        assert_eq!(sp.start(), 4);
        // Acknowledged already: not again.
        assert_eq!(
            sp.acknowledge("a", 0, 0, &[ACK_ACCEPT], &LIMITS, 1),
            Err(invalid)
        );
        let bad = ResponseError::InvalidRequest.code();
        assert_eq!(
            sp.acknowledge("a", 3, 2, &[ACK_ACCEPT], &LIMITS, 1),
            Err(bad)
        );
        assert_eq!(sp.acknowledge("a", 0, 3, &[1, 1], &LIMITS, 1), Err(bad));
        assert_eq!(sp.acknowledge("a", 0, 0, &[4], &LIMITS, 1), Err(bad));
    }

    #[test]
    fn released_records_come_back_until_their_delivery_limit() {
        let mut sp = SharePartition::new(0);
        let (a, b) = (member("a"), member("b"));
        let batches = [batch(0, 1)];
        for delivery in 1..=LIMITS.delivery_count_limit {
            assert_eq!(sp.fetch_offset(&LIMITS, 0), Some(0));
            let who = if delivery % 2 == 1 { &a } else { &b };
            assert_eq!(
                sp.acquire(who, &batches, 10, &LIMITS, 0),
                [run(0, 1, delivery)]
            );
            assert_eq!(
                sp.acknowledge(who, 0, 1, &[ACK_RELEASE], &LIMITS, 0),
                Ok(())
            );
        }
        // Released at the limit: archived, and the start moves past them.
        assert_eq!(sp.start(), 2);
        assert_eq!(sp.acquire(&a, &batches, 10, &LIMITS, 0), []);
    }

    #[test]
    fn a_lock_runs_out_and_the_record_goes_to_another_member() {
        let mut sp = SharePartition::new(0);
        let (a, b) = (member("a"), member("b"));
        sp.acquire(&a, &[batch(0, 2)], 10, &LIMITS, 0);
        assert_eq!(sp.fetch_offset(&LIMITS, 999), Some(3));
        assert_eq!(sp.take_expired(), 0);
        assert_eq!(sp.fetch_offset(&LIMITS, 1_000), Some(0));
        assert_eq!(sp.take_expired(), 3);
        assert_eq!(
            sp.acquire(&b, &[batch(0, 2)], 10, &LIMITS, 1_000),
            [run(0, 2, 2)]
        );
        let invalid = ResponseError::InvalidRecordState.code();
        assert_eq!(
            sp.acknowledge("a", 0, 2, &[ACK_ACCEPT], &LIMITS, 1_001),
            Err(invalid)
        );
        assert_eq!(
            sp.acknowledge("b", 0, 2, &[ACK_ACCEPT], &LIMITS, 1_001),
            Ok(())
        );
    }

    #[test]
    fn max_records_and_the_window_bound_an_acquisition() {
        let limits = Limits {
            in_flight_max: 6,
            ..LIMITS
        };
        let mut sp = SharePartition::new(10);
        let a = member("a");
        let batches = [batch(8, 14), batch(15, 19)];
        assert_eq!(sp.acquire(&a, &batches, 3, &limits, 0), [run(10, 12, 1)]);
        assert_eq!(sp.acquire(&a, &batches, 100, &limits, 0), [run(13, 15, 1)]);
        assert_eq!(sp.fetch_offset(&limits, 0), None, "the window is full");
        sp.acknowledge("a", 10, 11, &[ACK_ACCEPT], &limits, 0)
            .expect("held");
        assert_eq!(sp.fetch_offset(&limits, 0), Some(16));
        assert_eq!(sp.acquire(&a, &batches, 100, &limits, 0), [run(16, 17, 1)]);
    }

    #[test]
    fn control_records_and_gaps_are_never_delivered() {
        let mut sp = SharePartition::new(0);
        let a = member("a");
        let marker = BatchSpan {
            base: 3,
            last: 3,
            holds: Holds::Markers,
        };
        // 4 and 5 are not in the log (compacted away between batches).
        let batches = [batch(0, 2), marker, batch(6, 7)];
        assert_eq!(
            sp.acquire(&a, &batches, 10, &LIMITS, 0),
            [run(0, 2, 1), run(6, 7, 1)]
        );
        sp.acknowledge("a", 0, 2, &[ACK_ACCEPT], &LIMITS, 0)
            .expect("held");
        assert_eq!(sp.start(), 6, "past the marker and the gap");
    }

    #[test]
    fn an_aborted_transaction_is_passed_over_and_never_counted_delivered() {
        let mut sp = SharePartition::new(0);
        let a = member("a");
        let span = |base, last, holds| BatchSpan { base, last, holds };
        // 0-2 aborted, its marker at 3, then records.
        let batches = [
            span(0, 2, Holds::Aborted),
            span(3, 3, Holds::Markers),
            batch(4, 5),
        ];
        assert_eq!(sp.acquire(&a, &batches, 1, &LIMITS, 0), [run(4, 4, 1)]);
        assert_eq!(sp.start(), 4, "nothing before the first record to deliver");
        let invalid = ResponseError::InvalidRecordState.code();
        assert_eq!(
            sp.acknowledge("a", 0, 2, &[ACK_ACCEPT], &LIMITS, 0),
            Err(invalid),
            "never acquired"
        );
        assert_eq!(sp.fetch_offset(&LIMITS, 0), Some(5));
    }

    #[test]
    fn a_snapshot_restores_the_start_and_passes_over_what_was_done() {
        let mut sp = SharePartition::new(0);
        let a = member("a");
        sp.acquire(&a, &[batch(0, 9)], 10, &LIMITS, 0);
        sp.acknowledge("a", 0, 1, &[ACK_ACCEPT], &LIMITS, 0)
            .expect("held");
        sp.acknowledge("a", 4, 5, &[ACK_REJECT], &LIMITS, 0)
            .expect("held");
        sp.acknowledge("a", 7, 7, &[ACK_ACCEPT], &LIMITS, 0)
            .expect("held");
        sp.acknowledge("a", 9, 9, &[ACK_RELEASE], &LIMITS, 0)
            .expect("held");
        let first = sp.snapshot(3, 0);
        assert_eq!((first.start, first.done.clone()), (2, vec![(4, 5), (7, 7)]));
        assert_eq!(first.delivered, [(2, 3, 1), (6, 6, 1), (8, 9, 1)]);
        let mut again = SharePartition::restore(first.clone());
        assert_eq!(again.snapshot(3, 0), first, "nothing moved since");
        // 2, 3, 6, 8 and 9 were in flight or released: delivered again,
        // their second time.
        let b = member("b");
        assert_eq!(
            again.acquire(&b, &[batch(0, 9)], 10, &LIMITS, 0),
            [run(2, 3, 2), run(6, 6, 2), run(8, 9, 2)]
        );
        again
            .acknowledge("b", 2, 3, &[ACK_ACCEPT], &LIMITS, 0)
            .expect("held");
        assert_eq!(again.start(), 6);
        assert_eq!(again.snapshot(3, 0).delivered, [(6, 6, 2), (8, 9, 2)]);
    }

    #[test]
    fn a_record_delivered_its_last_time_before_a_load_is_not_delivered_again() {
        let mut sp = SharePartition::new(0);
        let a = member("a");
        let batches = [batch(0, 2)];
        for _ in 0..LIMITS.delivery_count_limit {
            sp.acquire(&a, &batches, 1, &LIMITS, 0);
            let mut again = SharePartition::restore(sp.snapshot(0, 0));
            // The leader changed with record 0 acquired.
            std::mem::swap(&mut sp, &mut again);
        }
        // Delivered three times (the limit): archived when reached.
        assert_eq!(sp.acquire(&a, &batches, 10, &LIMITS, 0), [run(1, 2, 1)]);
        assert_eq!(sp.start(), 1);
    }

    #[test]
    fn a_released_member_and_a_moved_log_start() {
        let mut sp = SharePartition::new(0);
        let (a, b) = (member("a"), member("b"));
        sp.acquire(&a, &[batch(0, 4)], 10, &LIMITS, 0);
        assert_eq!(sp.release_member("a", &LIMITS), 5);
        assert_eq!(
            sp.acquire(&b, &[batch(0, 4)], 2, &LIMITS, 0),
            [run(0, 1, 2)]
        );
        sp.log_start_moved(3);
        assert_eq!(sp.start(), 3);
        assert_eq!(sp.fetch_offset(&LIMITS, 0), Some(3));
        assert_eq!(
            sp.acquire(&b, &[batch(0, 6)], 10, &LIMITS, 0),
            [run(3, 4, 2), run(5, 6, 1)]
        );
    }
}

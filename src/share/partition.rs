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

/// A run of consecutive in-flight offsets in one state, delivered as
/// often (Kafka's in-flight batch): an acquisition makes one per batch,
/// an acknowledgement splits runs at its ends, and neighbours that agree
/// merge again, so the runs follow what happened to the records, not
/// their number.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Run {
    last: i64,
    state: State,
    deliveries: i16,
}

impl Run {
    fn len(&self, first: i64) -> usize {
        (self.last - first + 1) as usize
    }

    fn held_by(&self, member: &str) -> bool {
        matches!(&self.state, State::Acquired { member: m, .. } if &**m == member)
    }
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
    /// The in-flight records as runs by first offset: disjoint, within
    /// `start..end`. An offset of that range in no run does not exist in
    /// the log (a gap between batches) and counts as done.
    runs: BTreeMap<i64, Run>,
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
            runs: BTreeMap::new(),
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
        let mut done: Vec<(i64, i64)> = Vec::new();
        for (&first, run) in self.runs.iter().filter(|(_, r)| r.state.done()) {
            match done.last_mut() {
                Some(range) if range.1 + 1 == first => range.1 = run.last,
                _ => done.push((first, run.last)),
            }
        }
        // The ranges loaded and not reached yet; those reached are in
        // `runs` now.
        let end = self.end;
        let ahead = |first: i64, last: i64| (last >= end).then_some((first.max(end), last));
        done.extend(self.done_ahead.iter().filter_map(|&(f, l)| ahead(f, l)));
        let mut delivered: Vec<(i64, i64, i16)> = Vec::new();
        for (&first, run) in self.runs.iter().filter(|(_, r)| !r.state.done()) {
            match delivered.last_mut() {
                Some(range) if range.1 + 1 == first && range.2 == run.deliveries => {
                    range.1 = run.last;
                }
                _ => delivered.push((first, run.last, run.deliveries)),
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
        self.runs
            .iter()
            .filter(|(_, r)| matches!(r.state, State::Acquired { .. }))
            .map(|(&first, r)| r.len(first))
            .sum()
    }

    /// Where a read for an acquisition starts: the first record available
    /// again, else the end; `None` while nothing can be acquired (every
    /// in-flight record taken and the window full).
    pub fn fetch_offset(&mut self, limits: &Limits, now_ms: i64) -> Option<i64> {
        self.expire(limits, now_ms);
        let available = self
            .runs
            .iter()
            .find(|(_, r)| r.state == State::Available)
            .map(|(first, _)| *first);
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
        let mut taking = Taking {
            state: State::Acquired {
                member: member.clone(),
                until_ms: now_ms.saturating_add(limits.lock_duration_ms),
            },
            max_records,
            count: 0,
            taken: Vec::new(),
        };
        let touched_from = self.end.min(batches.first().map_or(i64::MAX, |b| b.base));
        for batch in batches {
            assert!(batch.base <= batch.last, "a batch spans its offsets");
            let lo = batch.base.max(self.start);
            if lo < self.end {
                let hi = batch.last.min(self.end - 1);
                if lo <= hi && !self.take_available(lo, hi, &mut taking) {
                    break;
                }
            }
            let from = lo.max(self.end);
            if from <= batch.last && !self.take_new(batch, from, limits, &mut taking) {
                break;
            }
        }
        self.coalesce(touched_from, self.end);
        self.advance();
        taking.taken
    }

    /// Acquires the runs available again within `lo..=hi` (in flight);
    /// false once `taking` is full and one more was there to take.
    fn take_available(&mut self, lo: i64, hi: i64, taking: &mut Taking) -> bool {
        for first in self.overlapping(lo, hi) {
            let run = &self.runs[&first];
            if run.state != State::Available {
                continue;
            }
            let room = taking.room();
            if room == 0 {
                return false;
            }
            let from = first.max(lo);
            let available_to = run.last.min(hi);
            let to = available_to.min(from + room as i64 - 1);
            self.split_at(from);
            self.split_at(to + 1);
            let run = self.runs.get_mut(&from).expect("split at from");
            run.deliveries = run.deliveries.saturating_add(1);
            run.state = taking.state.clone();
            let deliveries = run.deliveries;
            taking.push(from, to, deliveries);
            if to < available_to {
                return false;
            }
        }
        true
    }

    /// Acquires records of `batch` from `from` on, all never acquired
    /// (`from >= end`); false once `taking` or the window is full and a
    /// record was there to take.
    fn take_new(
        &mut self,
        batch: &BatchSpan,
        from: i64,
        limits: &Limits,
        taking: &mut Taking,
    ) -> bool {
        debug_assert!(from >= self.end);
        if !self.done_ahead.is_empty() || !self.delivered_ahead.is_empty() {
            return self.take_new_loaded(batch, from, limits, taking);
        }
        // Offsets skipped between `end` and `from` are not in the log: no
        // run, done.
        if batch.holds != Holds::Records {
            self.push_new(from, batch.last, State::Archived, 0);
            return true;
        }
        let window = limits.in_flight_max - (from - self.start);
        let room = (taking.room() as i64)
            .min(window)
            .min(batch.last - from + 1);
        if room <= 0 {
            return false;
        }
        let to = from + room - 1;
        self.push_new(from, to, taking.state.clone(), 1);
        taking.push(from, to, 1);
        to == batch.last
    }

    /// [`Self::take_new`] while a loaded snapshot still says something of
    /// the offsets ahead: record by record, as it says.
    fn take_new_loaded(
        &mut self,
        batch: &BatchSpan,
        from: i64,
        limits: &Limits,
        taking: &mut Taking,
    ) -> bool {
        for offset in from..=batch.last {
            // Done before the snapshot loaded was taken, nothing to
            // deliver, or delivered its last time before it: done, not
            // delivered (again).
            let before = self.delivered_ahead(offset);
            let done = if self.done_ahead(offset) {
                Some(State::Acknowledged)
            } else if batch.holds != Holds::Records || before >= limits.delivery_count_limit {
                Some(State::Archived)
            } else {
                None
            };
            if let Some(state) = done {
                self.push_new(offset, offset, state, before);
                continue;
            }
            if taking.room() == 0 || offset - self.start >= limits.in_flight_max {
                return false;
            }
            let deliveries = before + 1;
            self.push_new(offset, offset, taking.state.clone(), deliveries);
            taking.push(offset, offset, deliveries);
        }
        true
    }

    /// Puts `first..=last`, never acquired before, in flight, and moves the
    /// end past it.
    fn push_new(&mut self, first: i64, last: i64, state: State, deliveries: i16) {
        debug_assert!(first >= self.end && first <= last);
        self.end = last + 1;
        self.runs.insert(
            first,
            Run {
                last,
                state,
                deliveries,
            },
        );
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
        // An offset inside a batch with no record (compacted away) is in
        // flight too; one outside the window, or between batches, never
        // was acquired.
        if first < self.start || last >= self.end || !self.all_held(member, first, last) {
            return Err(ResponseError::InvalidRecordState.code());
        }
        self.split_at(first);
        self.split_at(last + 1);
        let acknowledged = |kind: i8, deliveries: i16| match kind {
            ACK_ACCEPT => State::Acknowledged,
            ACK_RELEASE => released(deliveries, limits),
            _ => State::Archived,
        };
        if let [kind] = types {
            for run in self.runs.range_mut(first..=last).map(|(_, r)| r) {
                run.state = acknowledged(*kind, run.deliveries);
            }
        } else {
            // One type per offset: the runs split where the types change.
            let held: Vec<(i64, Run)> = self
                .runs
                .range(first..=last)
                .map(|(&f, r)| (f, r.clone()))
                .collect();
            for (run_first, run) in held {
                self.runs.remove(&run_first);
                for offset in run_first..=run.last {
                    let kind = types[(offset - first) as usize];
                    let state = acknowledged(kind, run.deliveries);
                    self.put_offset(offset, state, run.deliveries);
                }
            }
        }
        self.coalesce(first, last + 1);
        self.advance();
        Ok(())
    }

    /// Whether every offset of `first..=last` is in a run `member` holds.
    fn all_held(&self, member: &str, first: i64, last: i64) -> bool {
        let mut next = first;
        for run_first in self.overlapping(first, last) {
            let run = &self.runs[&run_first];
            if run_first.max(first) != next || !run.held_by(member) {
                return false;
            }
            next = run.last + 1;
        }
        next > last
    }

    /// Puts `offset` (in no run) in a run of its own, or at the end of the
    /// run just before it when that one agrees.
    fn put_offset(&mut self, offset: i64, state: State, deliveries: i16) {
        if let Some((_, before)) = self.runs.range_mut(..offset).next_back() {
            if before.last + 1 == offset && before.state == state && before.deliveries == deliveries
            {
                before.last = offset;
                return;
            }
        }
        let run = Run {
            last: offset,
            state,
            deliveries,
        };
        self.runs.insert(offset, run);
    }

    /// Releases every record `member` holds (its share session closed, or
    /// it left the group): available again, or archived past the
    /// delivery limit. Returns how many it held.
    pub fn release_member(&mut self, member: &str, limits: &Limits) -> usize {
        let mut released_count = 0;
        for (&first, run) in self.runs.iter_mut() {
            if run.held_by(member) {
                run.state = released(run.deliveries, limits);
                released_count += run.len(first);
            }
        }
        if released_count > 0 {
            self.coalesce(self.start, self.end);
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
        self.split_at(log_start);
        self.runs = self.runs.split_off(&log_start);
        self.done_ahead.retain(|(_, last)| *last >= log_start);
        self.delivered_ahead
            .retain(|(_, last, _)| *last >= log_start);
        self.start = log_start;
        self.end = self.end.max(log_start);
        self.advance();
    }

    /// Locks that ran out: those records are released as if by their member.
    fn expire(&mut self, limits: &Limits, now_ms: i64) {
        let mut expired = 0;
        for (&first, run) in self.runs.iter_mut() {
            if matches!(run.state, State::Acquired { until_ms, .. } if until_ms <= now_ms) {
                run.state = released(run.deliveries, limits);
                expired += run.len(first) as u64;
            }
        }
        if expired > 0 {
            self.expired += expired;
            self.coalesce(self.start, self.end);
        }
    }

    /// How many locks ran out since the last call.
    pub fn take_expired(&mut self) -> u64 {
        std::mem::take(&mut self.expired)
    }

    /// The first offsets of the runs holding an offset of `lo..=hi`, in order.
    fn overlapping(&self, lo: i64, hi: i64) -> Vec<i64> {
        let before = self
            .runs
            .range(..lo)
            .next_back()
            .filter(|(_, run)| run.last >= lo)
            .map(|(first, _)| *first);
        before
            .into_iter()
            .chain(self.runs.range(lo..=hi).map(|(first, _)| *first))
            .collect()
    }

    /// Makes `offset` the first of a run, if a run holds it.
    fn split_at(&mut self, offset: i64) {
        let Some((_, run)) = self.runs.range_mut(..offset).next_back() else {
            return;
        };
        if run.last < offset {
            return;
        }
        let tail = Run {
            last: run.last,
            state: run.state.clone(),
            deliveries: run.deliveries,
        };
        run.last = offset - 1;
        self.runs.insert(offset, tail);
    }

    /// Merges each run starting in `from..=to` into the run just before it
    /// when they touch and agree.
    fn coalesce(&mut self, from: i64, to: i64) {
        if from > to {
            return;
        }
        let firsts: Vec<i64> = self.runs.range(from..=to).map(|(f, _)| *f).collect();
        for first in firsts {
            let Some((&before_first, before)) = self.runs.range(..first).next_back() else {
                continue;
            };
            let run = &self.runs[&first];
            if before.last + 1 == first
                && before.state == run.state
                && before.deliveries == run.deliveries
            {
                let last = run.last;
                self.runs.remove(&first);
                self.runs.get_mut(&before_first).expect("just seen").last = last;
            }
        }
    }

    /// Moves the start past the records done with.
    fn advance(&mut self) {
        while let Some(entry) = self.runs.first_entry() {
            if !entry.get().state.done() {
                self.start = *entry.key();
                break;
            }
            entry.remove();
        }
        if self.runs.is_empty() {
            self.start = self.end;
        }
        debug_assert!(self.start <= self.end);
        debug_assert!(self.runs_are_ordered());
    }

    /// The runs' invariant: each non-empty, in `start..end`, after the one
    /// before it.
    fn runs_are_ordered(&self) -> bool {
        let mut next = self.start;
        self.runs.iter().all(|(&first, run)| {
            let ordered = first >= next && first <= run.last && run.last < self.end;
            next = run.last + 1;
            ordered
        })
    }
}

/// An acquisition under way: what it takes the records as, how many it
/// may take, and the runs it took.
struct Taking {
    state: State,
    max_records: usize,
    count: usize,
    taken: Vec<Acquired>,
}

impl Taking {
    fn room(&self) -> usize {
        self.max_records.saturating_sub(self.count)
    }

    /// Notes `first..=last` taken, their `deliveries`th time: one more
    /// [`Acquired`] run, or the last one longer.
    fn push(&mut self, first: i64, last: i64, deliveries: i16) {
        self.count += (last - first + 1) as usize;
        match self.taken.last_mut() {
            Some(run) if run.last + 1 == first && run.deliveries == deliveries => run.last = last,
            _ => self.taken.push(Acquired {
                first,
                last,
                deliveries,
            }),
        }
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

#[cfg(test)]
mod model;

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

    /// A small deterministic generator (xorshift) for the random runs.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }
    }

    /// A log of batches over offsets from 0: sizes 1-8, some gaps between
    /// them (compacted away), some holding markers or aborted records.
    fn random_log(rng: &mut Rng) -> Vec<BatchSpan> {
        let mut log = Vec::new();
        let mut next = 0;
        while next < 400 {
            next += if rng.below(5) == 0 {
                1 + rng.below(2) as i64
            } else {
                0
            };
            let last = next + rng.below(8) as i64;
            let holds = match rng.below(10) {
                0 => Holds::Markers,
                1 => Holds::Aborted,
                _ => Holds::Records,
            };
            log.push(BatchSpan {
                base: next,
                last,
                holds,
            });
            next = last + 1;
        }
        log
    }

    /// The runs answer every operation as the per-offset model does and
    /// keep the same durable state, over random sequences of acquisitions
    /// (of random batches, limits and members), acknowledgements (whole or
    /// per offset, valid or not), expiries, releases, log start moves and
    /// restores from a snapshot.
    #[test]
    fn runs_behave_as_the_per_offset_model() {
        let limits = Limits {
            lock_duration_ms: 1_000,
            delivery_count_limit: 3,
            in_flight_max: 40,
        };
        let members = [member("a"), member("b"), member("c")];
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let log = random_log(&mut rng);
            let mut sp = SharePartition::new(0);
            let mut m = model::Model::new(0);
            let mut now = 0i64;
            for step in 0..200 {
                let at = format!("seed {seed} step {step}");
                now += rng.below(300) as i64;
                match rng.below(10) {
                    0..=3 => {
                        let Some(from) = m.fetch_offset(&limits, now) else {
                            assert_eq!(sp.fetch_offset(&limits, now), None, "{at}");
                            continue;
                        };
                        assert_eq!(sp.fetch_offset(&limits, now), Some(from), "{at}");
                        let first = log.iter().position(|b| b.last >= from);
                        let Some(first) = first else { continue };
                        let count = 1 + rng.below(6) as usize;
                        let batches = &log[first..(first + count).min(log.len())];
                        let who = &members[rng.below(3) as usize];
                        let max_records = 1 + rng.below(20) as usize;
                        assert_eq!(
                            sp.acquire(who, batches, max_records, &limits, now),
                            m.acquire(who, batches, max_records, &limits, now),
                            "{at}"
                        );
                    }
                    4..=6 => {
                        let who = &members[rng.below(3) as usize];
                        let first = m.start() - 2 + rng.below(30) as i64;
                        let last = first + rng.below(12) as i64 - 1;
                        let span = (last - first + 1).max(1) as u64;
                        let types: Vec<i8> = if rng.below(2) == 0 {
                            vec![rng.below(4) as i8]
                        } else {
                            (0..span).map(|_| rng.below(4) as i8).collect()
                        };
                        assert_eq!(
                            sp.acknowledge(who, first, last, &types, &limits, now),
                            m.acknowledge(who, first, last, &types, &limits, now),
                            "{at}: {first}..={last} {types:?}"
                        );
                    }
                    7 => {
                        let who = &members[rng.below(3) as usize];
                        assert_eq!(
                            sp.release_member(who, &limits),
                            m.release_member(who, &limits),
                            "{at}"
                        );
                    }
                    8 => {
                        let to = m.start() + rng.below(10) as i64;
                        sp.log_start_moved(to);
                        m.log_start_moved(to);
                    }
                    _ => {
                        let snapshot = m.snapshot(1, 0);
                        assert_eq!(sp.snapshot(1, 0), snapshot, "{at}");
                        sp = SharePartition::restore(snapshot.clone());
                        m = model::Model::restore(snapshot);
                    }
                }
                assert_eq!(sp.start(), m.start(), "{at}");
                assert_eq!(sp.acquired_count(), m.acquired_count(), "{at}");
                assert_eq!(sp.take_expired(), m.take_expired(), "{at}");
                assert_eq!(sp.snapshot(1, 0), m.snapshot(1, 0), "{at}");
            }
        }
    }
}

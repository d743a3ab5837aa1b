//! The per-offset share partition this module's runs replaced, kept as
//! the model the runs are checked against: every operation on both must
//! answer alike and leave the same durable state.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::ResponseError;

use super::*;

#[derive(Clone, Debug)]
struct Record {
    state: State,
    deliveries: i16,
}

pub(super) struct Model {
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
    /// Locks that ran out since [`Model::take_expired`] last
    /// looked, for the caller to count.
    expired: u64,
}

impl Model {
    /// A share partition starting at `start` (the group's
    /// `share.auto.offset.reset` applied to the log when first asked).
    pub(super) fn new(start: i64) -> Model {
        assert!(start >= 0, "a share partition starts at a log offset");
        Model {
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
    pub(super) fn restore(snapshot: Snapshot) -> Model {
        let mut sp = Model::new(snapshot.start.max(0));
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
    pub(super) fn snapshot(&self, leader_epoch: i32, state_epoch: i32) -> Snapshot {
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

    pub(super) fn start(&self) -> i64 {
        self.start
    }

    /// Records acquired and not yet acknowledged, released or expired.
    pub(super) fn acquired_count(&self) -> usize {
        self.records
            .values()
            .filter(|r| matches!(r.state, State::Acquired { .. }))
            .count()
    }

    /// Where a read for an acquisition starts: the first record available
    /// again, else the end; `None` while nothing can be acquired (every
    /// in-flight record taken and the window full).
    pub(super) fn fetch_offset(&mut self, limits: &Limits, now_ms: i64) -> Option<i64> {
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
    pub(super) fn acquire(
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
    pub(super) fn acknowledge(
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
    pub(super) fn release_member(&mut self, member: &str, limits: &Limits) -> usize {
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
    pub(super) fn log_start_moved(&mut self, log_start: i64) {
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
    pub(super) fn take_expired(&mut self) -> u64 {
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

//! The floor broker's partitions: the newest batches of each, in memory,
//! behind one lock, with one condition variable that wakes waiting fetches
//! on every append.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

/// All partitions together keep at most this many batch bytes; each keeps
/// its share of it, and at least its newest batch. Seconds of a fixed-rate
/// run, enough for consumers that keep up; small, so the allocator reuses
/// freed batches instead of faulting in fresh memory, a cost the floor is
/// not there to measure.
const STORE_BYTES_MAX: usize = 256 << 20;
/// Topics times partitions, so a share never rounds to nothing.
pub const PARTITIONS_MAX: usize = 100_000;
/// Record batch v2 header: base offset (8), batch length (4), then the
/// fields up to and including the record count; 61 bytes in all.
const BATCH_HEADER_BYTES: usize = 61;
const LAST_OFFSET_DELTA_AT: usize = 23;
const MAGIC_AT: usize = 16;

/// Kafka's error codes the floor answers with.
pub mod code {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
}

struct Batch {
    base: i64,
    bytes: Bytes,
}

#[derive(Default)]
struct PartitionLog {
    /// Oldest first; offsets contiguous from `start` to `end`.
    batches: VecDeque<Batch>,
    start: i64,
    end: i64,
    bytes: usize,
}

#[derive(Default)]
struct Topics {
    by_name: HashMap<String, Vec<PartitionLog>>,
    partitions: usize,
    /// Bumped by every append, so a waiting fetch knows whether to look again.
    appends: u64,
}

/// What a read found in one partition.
pub struct Read {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start: i64,
}

#[derive(Default)]
pub struct Store {
    topics: Mutex<Topics>,
    appended: Condvar,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, Topics> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The partition counts of `names` (all topics when `None`), sorted by
    /// name; unknown names map to `None`.
    pub fn describe(&self, names: Option<&[String]>) -> Vec<(String, Option<usize>)> {
        let t = self.lock();
        let mut out: Vec<_> = match names {
            Some(names) => names
                .iter()
                .map(|n| (n.clone(), t.by_name.get(n).map(Vec::len)))
                .collect(),
            None => t
                .by_name
                .iter()
                .map(|(n, p)| (n.clone(), Some(p.len())))
                .collect(),
        };
        out.sort();
        out
    }

    pub fn create(&self, name: &str, partitions: i32) -> i16 {
        let mut t = self.lock();
        if t.by_name.contains_key(name) {
            return code::TOPIC_ALREADY_EXISTS;
        }
        let Ok(n) = usize::try_from(partitions) else {
            return code::INVALID_PARTITIONS;
        };
        if n == 0 || t.partitions + n > PARTITIONS_MAX {
            return code::INVALID_PARTITIONS;
        }
        t.partitions += n;
        t.by_name.insert(
            name.to_string(),
            (0..n).map(|_| PartitionLog::default()).collect(),
        );
        0
    }

    /// Appends every batch of `records`; returns the first one's offset and
    /// the log start after the append (a produce answer names both).
    pub fn append(&self, topic: &str, partition: i32, records: &[u8]) -> Result<(i64, i64), i16> {
        let batches = split_batches(records)?;
        let mut t = self.lock();
        let share = STORE_BYTES_MAX / t.partitions.max(1);
        let log = partition_mut(&mut t, topic, partition)?;
        let first = log.end;
        for b in batches {
            let mut stamped = BytesMut::from(b);
            let count = last_offset_delta(&stamped) + 1;
            stamped[..8].copy_from_slice(&log.end.to_be_bytes());
            log.bytes += stamped.len();
            log.batches.push_back(Batch {
                base: log.end,
                bytes: stamped.freeze(),
            });
            log.end += count;
        }
        while log.bytes > share && log.batches.len() > 1 {
            let old = log.batches.pop_front().expect("more than one batch");
            log.bytes -= old.bytes.len();
            log.start = log.batches.front().expect("one batch is left").base;
        }
        let start = log.start;
        t.appends += 1;
        drop(t);
        self.appended.notify_all();
        Ok((first, start))
    }

    /// The batches from the one holding `offset`, up to `max_bytes` but at
    /// least one, as Kafka answers a fetch. A single batch (a consumer that
    /// keeps up) is shared, not copied.
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Read, i16> {
        let t = self.lock();
        let log = partition_ref(&t, topic, partition)?;
        if offset < log.start || offset > log.end {
            return Err(code::OFFSET_OUT_OF_RANGE);
        }
        let from = log
            .batches
            .partition_point(|b| b.base <= offset)
            .saturating_sub(1);
        // Only the batch at `from` can end before `offset`.
        let first = match log.batches.get(from) {
            Some(b) if b.base + last_offset_delta(&b.bytes) < offset => from + 1,
            _ => from,
        };
        let (mut end, mut size) = (first, 0);
        for b in log.batches.range(first..) {
            if end > first && size + b.bytes.len() > max_bytes {
                break;
            }
            size += b.bytes.len();
            end += 1;
        }
        let records = match end - first {
            0 => Bytes::new(),
            1 => log.batches[first].bytes.clone(),
            _ => {
                let mut out = BytesMut::with_capacity(size);
                for b in log.batches.range(first..end) {
                    out.extend_from_slice(&b.bytes);
                }
                out.freeze()
            }
        };
        Ok(Read {
            records,
            high_watermark: log.end,
            log_start: log.start,
        })
    }

    /// What [`Store::append`] would refuse `records` for, without
    /// appending: an unknown partition or a malformed batch.
    pub fn check(&self, topic: &str, partition: i32, records: &[u8]) -> Result<(), i16> {
        split_batches(records)?;
        self.offsets(topic, partition).map(|_| ())
    }

    /// `(log start, log end)` of one partition.
    pub fn offsets(&self, topic: &str, partition: i32) -> Result<(i64, i64), i16> {
        let t = self.lock();
        let log = partition_ref(&t, topic, partition)?;
        Ok((log.start, log.end))
    }

    /// How many appends there have been; pass it to [`Store::wait_past`].
    pub fn appends(&self) -> u64 {
        self.lock().appends
    }

    /// Waits until an append after `seen` (true), or `deadline` (false).
    pub fn wait_past(&self, seen: u64, deadline: Instant) -> bool {
        let mut t = self.lock();
        while t.appends == seen {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            t = self
                .appended
                .wait_timeout(t, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

fn partition_ref<'a>(t: &'a Topics, topic: &str, partition: i32) -> Result<&'a PartitionLog, i16> {
    let logs = t
        .by_name
        .get(topic)
        .ok_or(code::UNKNOWN_TOPIC_OR_PARTITION)?;
    Ok(&logs[slot(logs.len(), partition)?])
}

fn partition_mut<'a>(
    t: &'a mut Topics,
    topic: &str,
    partition: i32,
) -> Result<&'a mut PartitionLog, i16> {
    let logs = t
        .by_name
        .get_mut(topic)
        .ok_or(code::UNKNOWN_TOPIC_OR_PARTITION)?;
    let at = slot(logs.len(), partition)?;
    Ok(&mut logs[at])
}

/// `partition` as an index into a topic of `partitions` partitions.
fn slot(partitions: usize, partition: i32) -> Result<usize, i16> {
    usize::try_from(partition)
        .ok()
        .filter(|&p| p < partitions)
        .ok_or(code::UNKNOWN_TOPIC_OR_PARTITION)
}

fn last_offset_delta(batch: &[u8]) -> i64 {
    i64::from(i32::from_be_bytes(
        batch[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .try_into()
            .expect("four bytes"),
    ))
}

/// The v2 record batches of a produce request's records, whole and framed
/// by their own lengths; their contents are trusted (the floor checks
/// no CRC: it measures what answering costs, not what checking does).
fn split_batches(mut records: &[u8]) -> Result<Vec<&[u8]>, i16> {
    let mut out = Vec::new();
    while !records.is_empty() {
        if records.len() < BATCH_HEADER_BYTES || records[MAGIC_AT] != 2 {
            return Err(code::CORRUPT_MESSAGE);
        }
        let length = i32::from_be_bytes(records[8..12].try_into().expect("four bytes"));
        let total = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(12))
            .filter(|t| (BATCH_HEADER_BYTES..=records.len()).contains(t))
            .ok_or(code::CORRUPT_MESSAGE)?;
        if last_offset_delta(records) < 0 {
            return Err(code::CORRUPT_MESSAGE);
        }
        out.push(&records[..total]);
        records = &records[total..];
    }
    if out.is_empty() {
        return Err(code::CORRUPT_MESSAGE);
    }
    Ok(out)
}

/// A v2 batch header of `records` records and no record bodies, which
/// is all the store reads.
#[cfg(test)]
pub fn test_batch(records: i32) -> Vec<u8> {
    let mut b = vec![0u8; BATCH_HEADER_BYTES];
    b[8..12].copy_from_slice(&((BATCH_HEADER_BYTES - 12) as i32).to_be_bytes());
    b[MAGIC_AT] = 2;
    b[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&(records - 1).to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::test_batch as batch;
    use super::*;

    #[test]
    fn appends_take_consecutive_offsets_and_reads_start_at_the_holding_batch() {
        let s = Store::default();
        assert_eq!(s.create("t", 2), 0);
        assert_eq!(s.create("t", 2), code::TOPIC_ALREADY_EXISTS);
        assert_eq!(s.append("t", 0, &batch(3)), Ok((0, 0)));
        let two = [batch(2), batch(1)].concat();
        assert_eq!(s.append("t", 0, &two), Ok((3, 0)));
        assert_eq!(s.offsets("t", 0), Ok((0, 6)));
        assert_eq!(s.offsets("t", 1), Ok((0, 0)));

        let r = s.read("t", 0, 4, usize::MAX).unwrap();
        assert_eq!(r.high_watermark, 6);
        // The batch holding offset 4 starts at 3, and is stamped so.
        assert_eq!(r.records.len(), 2 * BATCH_HEADER_BYTES);
        assert_eq!(i64::from_be_bytes(r.records[..8].try_into().unwrap()), 3);
        // One batch at least, whatever the limit.
        assert_eq!(
            s.read("t", 0, 0, 1).unwrap().records.len(),
            BATCH_HEADER_BYTES
        );
        assert_eq!(s.read("t", 0, 6, 1).unwrap().records.len(), 0);
        assert_eq!(s.read("t", 0, 7, 1).err(), Some(code::OFFSET_OUT_OF_RANGE));
        assert_eq!(
            s.read("t", 2, 0, 1).err(),
            Some(code::UNKNOWN_TOPIC_OR_PARTITION)
        );
    }

    #[test]
    fn malformed_batches_are_refused_whole() {
        let s = Store::default();
        s.create("t", 1);
        let mut short = batch(1);
        short[8..12].copy_from_slice(&1000i32.to_be_bytes());
        let mut v1 = batch(1);
        v1[MAGIC_AT] = 1;
        for bad in [short, v1, batch(1)[..20].to_vec()] {
            assert_eq!(
                s.append("t", 0, &[batch(1), bad].concat()).err(),
                Some(code::CORRUPT_MESSAGE)
            );
        }
        assert_eq!(s.append("t", 0, &[]).err(), Some(code::CORRUPT_MESSAGE));
        assert_eq!(s.offsets("t", 0), Ok((0, 0)));
    }

    /// A fetch's wait ends with an append (true) or at its deadline (false).
    #[test]
    fn a_waiting_fetch_ends_at_an_append_or_at_its_deadline() {
        let s = std::sync::Arc::new(Store::default());
        s.create("t", 1);
        let seen = s.appends();
        assert!(!s.wait_past(seen, Instant::now()), "nothing was appended");
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || s.append("t", 0, &batch(1)))
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        assert!(s.wait_past(seen, deadline), "the append ends the wait");
        assert_eq!(s.offsets("t", 0), Ok((0, 1)));
        writer.join().unwrap().unwrap();
    }
}

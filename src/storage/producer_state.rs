//! Idempotent producer state of one partition, as Kafka's
//! ProducerStateManager keeps it: per producer id its epoch and the sequence
//! ranges and offsets of its last [`PRODUCER_BATCHES_KEPT`] batches, so a
//! retried batch gets its original offset back instead of a second append.
//!
//! The state is a function of the log: every batch with a producer id
//! updates it through [`ProducerStates::apply`], whether a client appended it
//! (after [`ProducerStates::check`]), recovery replays it, or (later) a
//! follower copies it. Snapshots (`<20-digit offset>.snapshot`) taken at
//! each roll and at close bound the replay after a crash to the log tail.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::record::{BatchHeader, Marker};

use super::io::{overwrite_in_place, write_atomic};
use super::segment::{parse_offset_name, segment_path};

/// Batches remembered per producer: a client has at most this many requests
/// in flight per partition with idempotence (librdkafka, Java), so any retry
/// it can send is one of them.
pub const PRODUCER_BATCHES_KEPT: usize = 5;
/// Snapshot files kept in a partition dir; older ones are removed when a new
/// one is written. Two, so a torn newest one still leaves a good one.
const SNAPSHOTS_KEPT: usize = 2;
pub const SNAPSHOT_SUFFIX: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"SLPS";
const SNAPSHOT_VERSION: u16 = 1;
/// magic, version, crc, offset, count.
const SNAPSHOT_HEADER_LEN: usize = 4 + 2 + 4 + 8 + 4;
/// id, epoch, coordinator epoch, last timestamp, open transaction's first
/// offset, batch count.
const ENTRY_HEADER_LEN: usize = 8 + 2 + 4 + 8 + 8 + 1;
/// first and last sequence, first and last offset, timestamp.
const BATCH_META_LEN: usize = 4 + 4 + 8 + 8 + 8;
/// Kafka's RecordBatch.NO_PRODUCER_EPOCH.
const NO_EPOCH: i16 = -1;

/// Why a producer's batch is refused; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProducerError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error(
        "producer {producer_id} sent sequence {sequence}, expected {expected} (epoch {epoch})"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        sequence: i32,
        expected: i64,
    },
    #[error("producer {producer_id}: {reason}")]
    InvalidBatch {
        producer_id: i64,
        reason: &'static str,
    },
    #[error("clients cannot write control batches")]
    ControlBatch,
    #[error("producer {producer_id}: marker of coordinator epoch {epoch}, older than {current}")]
    CoordinatorFenced {
        producer_id: i64,
        epoch: i32,
        current: i32,
    },
}

/// One batch as its producer's state remembers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The batch's maxTimestamp as stored (the append time for LogAppendTime).
    pub timestamp: i64,
}

/// What the partition knows of one producer id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// The transaction coordinator's epoch of the last marker; -1 until
    /// transactions write markers.
    pub coordinator_epoch: i32,
    /// When the producer last wrote, for `producer_id_expiration_ms`: the
    /// broker's clock for appends, the batch timestamp for replays.
    pub last_timestamp: i64,
    /// Oldest first, at most [`PRODUCER_BATCHES_KEPT`].
    pub batches: VecDeque<BatchMeta>,
    /// First offset of the producer's open transaction in this partition:
    /// nothing from it on is stable until a marker ends the transaction.
    pub current_txn_first_offset: Option<i64>,
    /// Offset of the producer's last transaction marker here; -1 if none
    /// was applied since this state was loaded. Not in snapshots: it only
    /// ties a verification (KIP-890) to the append that follows it in the
    /// same process (see [`ProducerStates::txn_verification_point`]).
    pub last_marker_offset: i64,
}

impl ProducerEntry {
    fn new() -> ProducerEntry {
        ProducerEntry {
            epoch: NO_EPOCH,
            coordinator_epoch: -1,
            last_timestamp: -1,
            batches: VecDeque::with_capacity(PRODUCER_BATCHES_KEPT),
            current_txn_first_offset: None,
            last_marker_offset: -1,
        }
    }

    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(-1, |b| b.last_seq)
    }

    fn find_duplicate(&self, header: &BatchHeader) -> Option<BatchMeta> {
        let last_seq = last_sequence(header);
        self.batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
            .copied()
    }
}

/// What a produce's batches mean for the producers' state.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Append them.
    Append,
    /// A retry of a batch already in the log: answer with its offsets and
    /// append nothing.
    Duplicate(BatchMeta),
}

/// A transaction a marker ended in this partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// The transaction's first offset here (the marker's own offset when
    /// it wrote nothing here).
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// The producers of one partition, bounded by `producers_max`.
#[derive(Debug)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    producers_max: usize,
    /// Open transactions by first offset (-> producer id): the smallest is
    /// the first unstable offset, which bounds the last stable offset.
    ongoing: BTreeMap<i64, i64>,
}

/// The sequence of a batch's last record; sequences wrap at i32::MAX.
pub fn last_sequence(header: &BatchHeader) -> i32 {
    let last = i64::from(header.base_sequence) + i64::from(header.last_offset_delta);
    (last % (i64::from(i32::MAX) + 1)) as i32
}

/// The sequence after `last` (Kafka's inSequence: they wrap to 0 after
/// i32::MAX; -1, no batch yet, is followed by 0).
fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

impl ProducerStates {
    pub fn new(producers_max: usize) -> ProducerStates {
        assert!(producers_max > 0, "room for at least one producer");
        ProducerStates {
            producers: HashMap::new(),
            producers_max,
            ongoing: BTreeMap::new(),
        }
    }

    /// The first offset of the oldest open transaction, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Open transactions: (producer id, first offset), oldest first.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.ongoing
            .iter()
            .map(|(first, pid)| (*pid, *first))
            .collect()
    }

    fn rebuild_ongoing(&mut self) {
        self.ongoing = self
            .producers
            .iter()
            .filter_map(|(id, e)| e.current_txn_first_offset.map(|first| (first, *id)))
            .collect();
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer, in id order.
    pub fn entries(&self) -> Vec<(i64, &ProducerEntry)> {
        let mut all: Vec<_> = self.producers.iter().map(|(id, e)| (*id, e)).collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    pub fn set_producers_max(&mut self, producers_max: usize) {
        assert!(producers_max > 0, "room for at least one producer");
        self.producers_max = producers_max;
    }

    /// Checks a client's batches (in order, as one append) against the
    /// state, as Kafka's ProducerAppendInfo does. Pure: nothing changes
    /// until [`Self::apply`] runs for each batch written.
    pub fn check(&self, headers: &[BatchHeader]) -> Result<Verdict, ProducerError> {
        self.check_from(headers, true)
    }

    /// [`Self::check`] for batches a coordinator writes on a producer's
    /// behalf (transactional offset commits): the epoch is checked, the
    /// sequence is not (they carry none), as Kafka's AppendOrigin.COORDINATOR.
    pub fn check_coordinator(&self, headers: &[BatchHeader]) -> Result<(), ProducerError> {
        self.check_from(headers, false).map(|_| ())
    }

    fn check_from(&self, headers: &[BatchHeader], client: bool) -> Result<Verdict, ProducerError> {
        // Batches of one producer in the same append see each other.
        let mut updated: HashMap<i64, ProducerEntry> = HashMap::new();
        for header in headers {
            if header.is_control() {
                return Err(ProducerError::ControlBatch);
            }
            if header.producer_id < 0 {
                if header.is_transactional() {
                    return Err(ProducerError::InvalidBatch {
                        producer_id: header.producer_id,
                        reason: "transactional batch without a producer id",
                    });
                }
                continue;
            }
            if !client {
                if let Some(current) = self.producers.get(&header.producer_id) {
                    check_epoch(current, header)?;
                }
                continue;
            }
            if header.producer_epoch < 0 || header.base_sequence < 0 {
                return Err(ProducerError::InvalidBatch {
                    producer_id: header.producer_id,
                    reason: "idempotent batch without an epoch or sequence",
                });
            }
            let current = self.producers.get(&header.producer_id);
            if let Some(dup) = current
                .filter(|c| c.epoch == header.producer_epoch)
                .and_then(|c| c.find_duplicate(header))
            {
                return Ok(Verdict::Duplicate(dup));
            }
            if headers.len() == 1 {
                // The usual produce (one batch per partition since Produce
                // v3): check against the state as it is, no copy.
                if let Some(current) = current {
                    check_one(current, header)?;
                }
                // An unknown producer may start anywhere (see check_one).
                continue;
            }
            let view = updated
                .entry(header.producer_id)
                .or_insert_with(|| current.cloned().unwrap_or_else(ProducerEntry::new));
            check_one(view, header)?;
            push_batch(view, header, 0, 0);
        }
        Ok(Verdict::Append)
    }

    /// KIP-890: `None` when `producer_id` has a transaction open here at
    /// `epoch` (its next transactional batch joins it); else the point a
    /// verification with the coordinator holds from, its last marker's
    /// offset (-1 for none). A batch that would open a transaction is
    /// appended only if it was verified at the point the producer still
    /// has, so a transaction ended here while it was being verified cannot
    /// be reopened by it.
    pub fn txn_verification_point(&self, producer_id: i64, epoch: i16) -> Option<i64> {
        match self.producers.get(&producer_id) {
            Some(e) if e.current_txn_first_offset.is_some() && e.epoch == epoch => None,
            Some(e) => Some(e.last_marker_offset),
            None => Some(-1),
        }
    }

    /// Checks a transaction marker against its producer's epoch: a marker
    /// of an older epoch than the partition has seen is refused.
    /// A marker from a coordinator older than the last one that wrote for
    /// this producer (a zombie coordinator after a move) is refused too.
    pub fn check_marker(
        &self,
        header: &BatchHeader,
        coordinator_epoch: i32,
    ) -> Result<(), ProducerError> {
        match self.producers.get(&header.producer_id) {
            Some(entry) if header.producer_epoch < entry.epoch => {
                Err(ProducerError::InvalidEpoch {
                    producer_id: header.producer_id,
                    epoch: header.producer_epoch,
                    current: entry.epoch,
                })
            }
            Some(entry) if coordinator_epoch < entry.coordinator_epoch => {
                Err(ProducerError::CoordinatorFenced {
                    producer_id: header.producer_id,
                    epoch: coordinator_epoch,
                    current: entry.coordinator_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// Records a batch the log now holds at `header.base_offset` (with its
    /// marker, for a control batch). Trusts the log: replays and followers
    /// apply without [`Self::check`]. Returns the transaction a marker ended.
    pub fn apply(
        &mut self,
        header: &BatchHeader,
        marker: Option<Marker>,
        timestamp_ms: i64,
    ) -> Option<CompletedTxn> {
        if header.producer_id < 0 {
            return None;
        }
        if !self.producers.contains_key(&header.producer_id)
            && self.producers.len() >= self.producers_max
        {
            self.evict_oldest();
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(ProducerEntry::new);
        entry.last_timestamp = entry.last_timestamp.max(timestamp_ms);
        if header.is_control() {
            // A transaction marker: the epoch moves, sequences do not.
            if header.producer_epoch > entry.epoch {
                entry.epoch = header.producer_epoch;
                entry.batches.clear();
            }
            entry.last_marker_offset = header.base_offset;
            let marker = marker?;
            entry.coordinator_epoch = marker.coordinator_epoch;
            let first = entry.current_txn_first_offset.take();
            if let Some(first) = first {
                self.ongoing.remove(&first);
            }
            return Some(CompletedTxn {
                producer_id: header.producer_id,
                first_offset: first.unwrap_or(header.base_offset),
                last_offset: header.base_offset,
                aborted: !marker.commit,
            });
        }
        push_batch(entry, header, header.base_offset, header.max_timestamp);
        if header.is_transactional() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(header.base_offset);
            self.ongoing.insert(header.base_offset, header.producer_id);
        }
        assert!(entry.batches.len() <= PRODUCER_BATCHES_KEPT);
        assert!(self.producers.len() <= self.producers_max);
        None
    }

    /// Forgets producers that last wrote `expiration_ms` or more before
    /// `now_ms`; returns how many went.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        // A producer with an open transaction stays until its coordinator
        // ends it (by marker or timeout), as in Kafka.
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Forgets producers whose every remembered batch lies below
    /// `log_start`: retention took their records (Kafka's truncateHead).
    pub fn truncate_head(&mut self, log_start: i64) {
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || e.batches.back().is_none_or(|b| b.last_offset >= log_start)
        });
    }

    /// Forgets everything at or past `offset` (a truncated tail): producers
    /// keep only batches below it.
    pub fn truncate_tail(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
            if entry.current_txn_first_offset.is_some_and(|f| f >= offset) {
                entry.current_txn_first_offset = None;
            }
        }
        self.producers
            .retain(|_, e| !e.batches.is_empty() || e.current_txn_first_offset.is_some());
        self.rebuild_ongoing();
    }

    /// Makes room by forgetting the tenth of producers that wrote least
    /// recently (at least one), so a flood of new ids costs one scan per
    /// tenth rather than per id. They are then treated like expired ones.
    fn evict_oldest(&mut self) {
        let count = (self.producers_max / 10).max(1);
        // Producers with an open transaction go last: forgetting one would
        // move the last stable offset past data no marker has settled.
        let mut by_age: Vec<(bool, i64, i64)> = self
            .producers
            .iter()
            .map(|(id, e)| (e.current_txn_first_offset.is_some(), e.last_timestamp, *id))
            .collect();
        by_age.sort_unstable();
        for (_, _, id) in by_age.into_iter().take(count) {
            self.producers.remove(&id);
        }
        self.rebuild_ongoing();
        tracing::warn!(
            evicted = count,
            producers_max = self.producers_max,
            "partition producer state full; forgot the least recent producers"
        );
    }

    /// The snapshot file's bytes for the state as of log offset `offset`.
    pub fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.producers.len() * 200);
        body.extend_from_slice(&offset.to_be_bytes());
        let count = u32::try_from(self.producers.len()).expect("producers bounded");
        body.extend_from_slice(&count.to_be_bytes());
        for (id, entry) in self.entries() {
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&entry.epoch.to_be_bytes());
            body.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            let txn_first = entry.current_txn_first_offset.unwrap_or(-1);
            body.extend_from_slice(&txn_first.to_be_bytes());
            body.push(entry.batches.len() as u8);
            for b in &entry.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + body.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses a snapshot; `None` for a torn, corrupt or foreign file.
    /// Returns the offset it was taken at and the state.
    pub fn decode_snapshot(bytes: &[u8], producers_max: usize) -> Option<(i64, ProducerStates)> {
        let mut r = Reader(bytes);
        if r.take(4)? != SNAPSHOT_MAGIC || r.u16()? != SNAPSHOT_VERSION {
            return None;
        }
        let crc = r.u32()?;
        if crc32c::crc32c(r.0) != crc {
            return None;
        }
        let offset = r.i64()?;
        let count = r.u32()? as usize;
        let mut states = ProducerStates::new(producers_max);
        for _ in 0..count {
            let id = r.i64()?;
            let mut entry = ProducerEntry::new();
            entry.epoch = r.u16()? as i16;
            entry.coordinator_epoch = r.u32()? as i32;
            entry.last_timestamp = r.i64()?;
            let txn_first = r.i64()?;
            entry.current_txn_first_offset = (txn_first >= 0).then_some(txn_first);
            let batches = r.take(1)?[0] as usize;
            if batches > PRODUCER_BATCHES_KEPT {
                return None;
            }
            for _ in 0..batches {
                entry.batches.push_back(BatchMeta {
                    first_seq: r.u32()? as i32,
                    last_seq: r.u32()? as i32,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            states.producers.insert(id, entry);
        }
        if !r.0.is_empty() {
            return None;
        }
        states.rebuild_ongoing();
        // A smaller bound than when it was written: keep the most recent.
        while states.producers.len() > producers_max {
            states.evict_oldest();
        }
        Some((offset, states))
    }
}

/// Kafka's epoch and sequence rules for one batch against its producer's
/// state so far (`entry`, NO_EPOCH when the producer is unknown).
fn check_one(entry: &ProducerEntry, header: &BatchHeader) -> Result<(), ProducerError> {
    if entry.epoch == NO_EPOCH {
        // Unknown producer: new, expired, or its records left by retention.
        // Since KIP-360 (Kafka 2.5) Kafka accepts any sequence here rather
        // than answering UNKNOWN_PRODUCER_ID, and so do we: the client's
        // next batches are then checked against this one.
        return Ok(());
    }
    check_epoch(entry, header)?;
    // A new epoch starts its sequences over at 0.
    let expected = if header.producer_epoch > entry.epoch {
        0
    } else {
        next_sequence(entry.last_seq())
    };
    if header.base_sequence != expected {
        return Err(ProducerError::OutOfOrderSequence {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            sequence: header.base_sequence,
            expected: i64::from(expected),
        });
    }
    Ok(())
}

fn check_epoch(entry: &ProducerEntry, header: &BatchHeader) -> Result<(), ProducerError> {
    if header.producer_epoch < entry.epoch {
        return Err(ProducerError::InvalidEpoch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            current: entry.epoch,
        });
    }
    Ok(())
}

/// Adds a batch to `entry`, starting over on a new epoch. A batch without
/// a sequence (a coordinator's) moves the epoch only.
fn push_batch(entry: &mut ProducerEntry, header: &BatchHeader, base_offset: i64, timestamp: i64) {
    if header.producer_epoch != entry.epoch {
        entry.epoch = header.producer_epoch;
        entry.batches.clear();
    }
    if header.base_sequence < 0 {
        return;
    }
    if entry.batches.len() == PRODUCER_BATCHES_KEPT {
        entry.batches.pop_front();
    }
    entry.batches.push_back(BatchMeta {
        first_seq: header.base_sequence,
        last_seq: last_sequence(header),
        first_offset: base_offset,
        last_offset: base_offset + i64::from(header.last_offset_delta),
        timestamp,
    });
}

/// A bounds-checked big-endian reader over a snapshot.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
}

const _: () = assert!(ENTRY_HEADER_LEN == 31 && BATCH_META_LEN == 32);

pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    segment_path(dir, offset, SNAPSHOT_SUFFIX)
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn list_snapshots(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some((offset, SNAPSHOT_SUFFIX)) = parse_offset_name(&name.to_string_lossy()) {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Writes the snapshot for `offset` and removes all but the newest
/// [`SNAPSHOTS_KEPT`]. `durable` fsyncs it (close); a roll's snapshot is
/// left to the page cache, since a lost or torn one only lengthens replay.
pub fn write_snapshot(
    dir: &Path,
    states: &ProducerStates,
    offset: i64,
    durable: bool,
) -> io::Result<()> {
    write_snapshot_bytes(dir, &states.encode_snapshot(offset), offset, durable)
}

/// [`write_snapshot`] of bytes already encoded (`encode_snapshot(offset)`).
pub fn write_snapshot_bytes(
    dir: &Path,
    bytes: &[u8],
    offset: i64,
    durable: bool,
) -> io::Result<()> {
    let path = snapshot_path(dir, offset);
    if durable {
        write_atomic(&path, bytes)?;
    } else if let Err(e) = overwrite_in_place(&path, bytes) {
        // Straight under its name, with no temporary file to rename (a
        // stop writes one for every partition written): one a crash tore
        // fails its CRC at open, which reads the older one kept instead.
        // One this write left partial goes, so that two whole ones stay.
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    let offsets = list_snapshots(dir)?;
    let keep_from = offsets.len().saturating_sub(SNAPSHOTS_KEPT);
    for old in &offsets[..keep_from] {
        remove_snapshot(dir, *old)?;
    }
    Ok(())
}

pub fn remove_snapshot(dir: &Path, offset: i64) -> io::Result<()> {
    match fs::remove_file(snapshot_path(dir, offset)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

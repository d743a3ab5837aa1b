//! The Raft log on disk, with the vote and the last purged log id.
//!
//! Layout under `__cluster_metadata/`: segment files `log-<base>.seg`
//! (base = index of the segment's first entry), each a run of entries
//! framed as `len: u32 LE | crc32c: u32 LE | postcard(Entry)`; `vote` and
//! `purged` and `committed`, each a checked file replaced by
//! write-fsync-rename. Only the active (last) segment is appended to; an
//! append is fsynced before openraft is told it is durable. On open, a torn
//! tail of the last segment (short frame or CRC mismatch) is truncated:
//! it can only be an append that never completed, so never acknowledged.
//!
//! Entries are also held in memory: snapshots bound the log
//! (`SnapshotPolicy::LogsSinceLast`), so it stays small.
//!
//! Invariants, asserted on append and on open: indexes are contiguous,
//! and the term (leader id) never decreases along the log.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError};

use super::types::{
    read_checked_file, write_checked_file, Entry, LogId, StorageError, TypeConfig, Vote, CRC_BYTES,
};

/// A segment past this size is closed and a new one started, so purging
/// can delete whole files.
pub const SEGMENT_BYTES_MAX: u64 = 4 << 20;
/// The largest encoded entry; bigger is a bug upstream (records are
/// bounded long before this).
pub const ENTRY_BYTES_MAX: usize = 8 << 20;
const FRAME_HEADER_BYTES: usize = 4 + CRC_BYTES;
const VOTE_FILE: &str = "vote";
const PURGED_FILE: &str = "purged";
const COMMITTED_FILE: &str = "committed";

#[derive(Debug, thiserror::Error)]
pub enum LogOpenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt entry at byte {position} of a closed segment")]
    Corrupt { path: PathBuf, position: u64 },
}

/// The log store handed to openraft; clones share one log.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Log>>,
}

struct Log {
    dir: PathBuf,
    /// index -> (entry, segment base, byte position in that segment).
    entries: BTreeMap<u64, (Entry, u64, u64)>,
    /// base -> length in bytes; the last one is the active segment.
    segments: BTreeMap<u64, u64>,
    active: Option<File>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("log-{base:020}.seg"))
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, truncating a torn tail.
    pub fn open(dir: &Path) -> Result<LogStore, LogOpenError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LogOpenError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut log = Log {
            dir: dir.to_path_buf(),
            entries: BTreeMap::new(),
            segments: BTreeMap::new(),
            active: None,
            last_purged: read_checked_file(&dir.join(PURGED_FILE)).map_err(io(dir))?,
            vote: read_checked_file(&dir.join(VOTE_FILE)).map_err(io(dir))?,
            committed: read_checked_file(&dir.join(COMMITTED_FILE)).map_err(io(dir))?,
        };
        let bases = list_segments(dir).map_err(io(dir))?;
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            log.load_segment(base, last)?;
        }
        log.check_order();
        Ok(LogStore {
            inner: Arc::new(Mutex::new(log)),
        })
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        // A panic while holding the lock was a broken invariant; carrying
        // on would serve whatever it left behind.
        self.inner.lock().expect("the log lock is never poisoned")
    }

    /// Entries with index in `range`, in order (missing ones left out).
    pub fn entries(&self, range: impl RangeBounds<u64>) -> Vec<Entry> {
        self.log()
            .entries
            .range(range)
            .map(|(_, (e, _, _))| e.clone())
            .collect()
    }

    pub fn state(&self) -> (Option<LogId>, Option<LogId>) {
        let log = self.log();
        (log.last_purged, log.last_log_id())
    }

    pub fn vote(&self) -> Option<Vote> {
        self.log().vote
    }
}

fn list_segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut bases = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let name = item?.file_name();
        let name = name.to_string_lossy();
        if let Some(base) = name
            .strip_prefix("log-")
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse().ok())
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

impl Log {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .last_key_value()
            .map(|(_, (e, _, _))| e.log_id)
            .or(self.last_purged)
    }

    /// The index the next append must carry.
    fn next_index(&self) -> u64 {
        self.last_log_id().map_or(0, |l| l.index + 1)
    }

    /// Reads one segment; a bad frame truncates the last segment there and
    /// is corruption anywhere else.
    fn load_segment(&mut self, base: u64, last: bool) -> Result<(), LogOpenError> {
        let path = segment_path(&self.dir, base);
        let io = |source| LogOpenError::Io {
            path: path.clone(),
            source,
        };
        let bytes = std::fs::read(&path).map_err(io)?;
        let mut pos = 0usize;
        while pos < bytes.len() {
            let Some((entry, len)) = decode_frame(&bytes[pos..]) else {
                if !last {
                    return Err(LogOpenError::Corrupt {
                        path,
                        position: pos as u64,
                    });
                }
                tracing::warn!(
                    segment = %path.display(),
                    position = pos,
                    dropped = bytes.len() - pos,
                    "truncating a torn tail of the metadata log"
                );
                let file = OpenOptions::new().write(true).open(&path).map_err(io)?;
                file.set_len(pos as u64).map_err(io)?;
                file.sync_all().map_err(io)?;
                break;
            };
            let index = entry.log_id.index;
            if self.last_purged.is_none_or(|p| index > p.index) {
                self.entries.insert(index, (entry, base, pos as u64));
            }
            pos += len;
        }
        self.segments.insert(base, pos as u64);
        if last {
            let file = OpenOptions::new().append(true).open(&path).map_err(io)?;
            self.active = Some(file);
        }
        Ok(())
    }

    /// The read-path half of the append checks.
    fn check_order(&self) {
        let mut previous: Option<LogId> = self.last_purged;
        for (index, (entry, _, _)) in &self.entries {
            assert_eq!(*index, entry.log_id.index);
            check_follows(previous, &entry.log_id);
            previous = Some(entry.log_id);
        }
    }

    fn append(&mut self, entries: Vec<Entry>) -> std::io::Result<()> {
        let mut previous = self.last_log_id();
        let mut batch = Vec::new();
        let mut placed = Vec::with_capacity(entries.len());
        for entry in entries {
            check_follows(previous, &entry.log_id);
            assert!(
                previous.is_some() || entry.log_id.index == self.next_index(),
                "first entry {} after an empty log",
                entry.log_id
            );
            previous = Some(entry.log_id);
            let frame = encode_frame(&entry);
            let full = self
                .segments
                .last_key_value()
                .is_none_or(|(_, len)| len + batch.len() as u64 >= SEGMENT_BYTES_MAX);
            if full {
                self.write_active(&batch)?;
                batch.clear();
                self.roll(entry.log_id.index)?;
            }
            let (&base, &len) = self.segments.last_key_value().expect("rolled above");
            placed.push((entry, base, len + batch.len() as u64));
            batch.extend_from_slice(&frame);
        }
        self.write_active(&batch)?;
        if let Some(file) = &self.active {
            file.sync_data()?;
        }
        for (entry, base, pos) in placed {
            self.entries.insert(entry.log_id.index, (entry, base, pos));
        }
        Ok(())
    }

    /// Starts segment `base` (the next entry's index) as the active one,
    /// after making the old one durable.
    fn roll(&mut self, base: u64) -> std::io::Result<()> {
        let path = segment_path(&self.dir, base);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        File::open(&self.dir)?.sync_all()?;
        if let Some(old) = self.active.replace(file) {
            old.sync_data()?;
        }
        self.segments.insert(base, 0);
        Ok(())
    }

    fn write_active(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let (base, len) = self
            .segments
            .last_key_value()
            .map(|(b, l)| (*b, *l))
            .expect("an active segment exists once something is written");
        let file = self.active.as_mut().expect("the last segment is open");
        file.write_all(bytes)?;
        self.segments.insert(base, len + bytes.len() as u64);
        Ok(())
    }

    /// Drops entries from `index` on: later segments are deleted first,
    /// then the one holding `index` is cut, so a crash in between leaves
    /// a longer log, never a gap.
    fn truncate(&mut self, index: u64) -> std::io::Result<()> {
        let Some(&(_, base, pos)) = self.entries.get(&index) else {
            return Ok(());
        };
        let later: Vec<u64> = self.segments.range(base + 1..).map(|(b, _)| *b).collect();
        for b in later.into_iter().rev() {
            std::fs::remove_file(segment_path(&self.dir, b))?;
            self.segments.remove(&b);
        }
        let path = segment_path(&self.dir, base);
        let mut file = OpenOptions::new().append(true).open(&path)?;
        file.set_len(pos)?;
        file.sync_all()?;
        file.seek(SeekFrom::End(0))?;
        self.active = Some(file);
        self.segments.insert(base, pos);
        self.entries.split_off(&index);
        Ok(())
    }

    /// Forgets entries up to `upto` (a snapshot covers them): the purge
    /// point is persisted first, then whole segments below it deleted.
    fn purge(&mut self, upto: LogId) -> std::io::Result<()> {
        if let Some(p) = self.last_purged {
            assert!(upto >= p, "purge went back from {p} to {upto}");
        }
        write_checked_file(&self.dir.join(PURGED_FILE), &upto)?;
        self.last_purged = Some(upto);
        self.entries = self.entries.split_off(&(upto.index + 1));
        // A segment may go when the next one starts at or before the first
        // kept index; the active segment always stays.
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        for pair in bases.windows(2) {
            if pair[1] <= upto.index + 1 {
                std::fs::remove_file(segment_path(&self.dir, pair[0]))?;
                self.segments.remove(&pair[0]);
            }
        }
        Ok(())
    }
}

/// Asserts `next` may follow `previous`: the next index, a term no lower.
fn check_follows(previous: Option<LogId>, next: &LogId) {
    let Some(previous) = previous else { return };
    assert_eq!(
        next.index,
        previous.index + 1,
        "log indexes must be contiguous: {previous} then {next}"
    );
    assert!(
        next.leader_id >= previous.leader_id,
        "log terms must not decrease: {previous} then {next}"
    );
}

fn encode_frame(entry: &Entry) -> Vec<u8> {
    let body = postcard::to_allocvec(entry).expect("log entries always encode");
    assert!(
        body.len() <= ENTRY_BYTES_MAX,
        "a {} byte log entry",
        body.len()
    );
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// One frame from the front of `bytes` and its length; `None` if short,
/// oversized, failing its CRC or not an entry.
fn decode_frame(bytes: &[u8]) -> Option<(Entry, usize)> {
    let header = bytes.get(..FRAME_HEADER_BYTES)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > ENTRY_BYTES_MAX {
        return None;
    }
    let body = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let entry = postcard::from_bytes(body).ok()?;
    Some((entry, FRAME_HEADER_BYTES + len))
}

fn bounds_to_range(range: &impl RangeBounds<u64>) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self.entries(bounds_to_range(&range)))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let (last_purged_log_id, last_log_id) = self.state();
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut log = self.log();
        if let Some(old) = &log.vote {
            assert!(
                vote.leader_id().term >= old.leader_id().term,
                "vote term went back from {old} to {vote}"
            );
        }
        write_checked_file(&log.dir.join(VOTE_FILE), vote)
            .map_err(|e| StorageIOError::write_vote(&e))?;
        log.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.vote())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut log = self.log();
        if let Some(c) = committed {
            write_checked_file(&log.dir.join(COMMITTED_FILE), &c)
                .map_err(|e| StorageIOError::write_logs(&e))?;
        }
        log.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.log().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Synchronous I/O on the controller thread: metadata appends are
        // rare and small, and nothing else shares this thread's runtime
        // but the quorum itself.
        let result = self.log().append(entries.into_iter().collect());
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let error = StorageIOError::write_logs(&e);
                callback.log_io_completed(Err(e));
                Err(error.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut log = self.log();
        log.truncate(log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut log = self.log();
        log.purge(log_id)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

#[cfg(test)]
mod tests;

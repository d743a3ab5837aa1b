//! The leader-epoch cache of one partition (Kafka's LeaderEpochFileCache):
//! for each leader epoch the offset of its first batch, so a follower (or a
//! consumer, KIP-320) can ask where an epoch ended and truncate a tail the
//! new leader does not have.
//!
//! Pure bookkeeping: the methods change the entries and say whether they
//! did; the log writes [`LEADER_EPOCH_CHECKPOINT_FILE`] when they did (an
//! epoch changes rarely, so the file is written per change, not per append).
//! The file is Kafka's text format: `0` (version), the entry count, then one
//! `epoch startOffset` line per entry, replaced by tmp + rename (fsynced
//! off the append path, see [`LeaderEpochCache::write_checkpoint_unsynced`]).
//! A missing or corrupt file is rebuilt from the batch headers of the log.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::Path;

use super::checkpoint_file;
use super::io::{sync_dir, write_atomic, write_replacing};

/// File in the partition dir holding the cache, as Kafka names it.
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Entries kept; past it the oldest go. A partition changes leader far less
/// often than this over its retention, so only a flapping partition loses
/// history, and then only its oldest epochs.
pub const LEADER_EPOCH_ENTRIES_MAX: usize = 10_000;
/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// Epoch `epoch` starts at `start_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Entries strictly increasing in epoch and non-decreasing in start offset,
/// at most [`LEADER_EPOCH_ENTRIES_MAX`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: VecDeque<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn entries(&self) -> impl Iterator<Item = EpochEntry> + '_ {
        self.entries.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.back().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Ignored (false) for a
    /// negative epoch (a batch no leader stamped), an epoch not above the
    /// latest, or a start below the latest entry's, as Kafka ignores them.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(last) = self.entries.back() {
            if epoch <= last.epoch || start_offset < last.start_offset {
                return false;
            }
        }
        self.entries.push_back(EpochEntry {
            epoch,
            start_offset,
        });
        if self.entries.len() > LEADER_EPOCH_ENTRIES_MAX {
            self.entries.pop_front();
        }
        self.check();
        true
    }

    /// Kafka's endOffsetFor: (the largest epoch <= `requested`, the start
    /// offset of the first epoch above it), or `log_end` for the latest
    /// epoch. A `requested` below every epoch answers (`requested`, start of
    /// the first epoch): that history was deleted, and the asker should go
    /// on from where the log now begins. A `requested` above every epoch,
    /// or an empty cache, is UNDEFINED (-1, -1).
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1).map(|i| self.entries[i]) {
            Some(floor) => (floor.epoch, next.start_offset),
            None => (requested, next.start_offset),
        }
    }

    /// Removes the entries starting at or past `offset` (a truncated tail).
    pub fn truncate_from_end(&mut self, offset: i64) -> bool {
        let keep = self.entries.partition_point(|e| e.start_offset < offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Retention moved the log start to `offset`: entries starting at or
    /// below it go, except the last of them, which now starts at `offset`
    /// (its epoch still covers the first batches left).
    pub fn truncate_from_start(&mut self, offset: i64) -> bool {
        let at_or_below = self.entries.partition_point(|e| e.start_offset <= offset);
        let Some(last) = at_or_below.checked_sub(1) else {
            return false;
        };
        if last == 0 && self.entries[0].start_offset == offset {
            return false;
        }
        self.entries.drain(..last);
        self.entries[0].start_offset = offset;
        self.check();
        true
    }

    /// Forgets every entry (the log was emptied).
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    fn check(&self) {
        assert!(self.entries.len() <= LEADER_EPOCH_ENTRIES_MAX);
        for (a, b) in self.entries.iter().zip(self.entries.iter().skip(1)) {
            assert!(a.epoch < b.epoch, "epochs increase");
            assert!(
                a.start_offset <= b.start_offset,
                "start offsets never decrease"
            );
        }
    }

    /// The checkpoint file's text.
    pub fn encode(&self) -> String {
        let lines = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset));
        checkpoint_file::encode(lines)
    }

    /// Parses checkpoint text; `None` unless it is exactly a valid cache.
    pub fn decode(text: &str) -> Option<Self> {
        let lines = checkpoint_file::entry_lines(text)?;
        if lines.len() > LEADER_EPOCH_ENTRIES_MAX {
            return None;
        }
        let mut cache = LeaderEpochCache::new();
        for line in lines {
            let mut fields = line.split_whitespace();
            let epoch: i32 = fields.next()?.parse().ok()?;
            let start_offset: i64 = fields.next()?.parse().ok()?;
            if fields.next().is_some() || !cache.assign(epoch, start_offset) {
                return None;
            }
        }
        Some(cache)
    }

    /// The cache in `dir`'s checkpoint; `None` if the file is missing, or
    /// unreadable or corrupt (logged), for the caller to rebuild it.
    pub fn read_checkpoint(dir: &Path) -> Option<Self> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable leader epoch checkpoint; rebuilding it");
                return None;
            }
        };
        let cache = Self::decode(&text);
        if cache.is_none() {
            tracing::warn!(path = %path.display(), "corrupt leader epoch checkpoint; rebuilding it");
        }
        cache
    }

    /// Replaces `dir`'s checkpoint with this cache, durably. When that
    /// fails (a full disk) the old file is removed instead: it would be
    /// stale, and open rebuilds a missing cache from the batch headers, so
    /// the caller goes on with the cache in memory. An error means not even
    /// the removal worked.
    pub fn write_checkpoint(&self, dir: &Path) -> io::Result<()> {
        self.write_checkpoint_file(dir, true)
    }

    /// [`Self::write_checkpoint`] to the page cache only, for the append
    /// path (a leadership begins, a follower's first batch of an epoch):
    /// the log syncs the file before its recovery point passes the
    /// entries, and an unclean open takes the entries past the recovery
    /// point from the batch headers again, as Kafka's segment recovery
    /// does. A crash may leave the old file, or a short one (rebuilt).
    pub fn write_checkpoint_unsynced(&self, dir: &Path) -> io::Result<()> {
        self.write_checkpoint_file(dir, false)
    }

    fn write_checkpoint_file(&self, dir: &Path, durable: bool) -> io::Result<()> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let bytes = self.encode();
        let written = if durable {
            write_atomic(&path, bytes.as_bytes())
        } else {
            write_replacing(&path, bytes.as_bytes())
        };
        let Err(e) = written else {
            return if durable { sync_dir(dir) } else { Ok(()) };
        };
        tracing::warn!(path = %path.display(), error = %e, "cannot write the leader epoch checkpoint; removing it, open rebuilds it from the log");
        match fs::remove_file(&path) {
            Err(removal) if removal.kind() != io::ErrorKind::NotFound => Err(removal),
            _ => sync_dir(dir),
        }
    }
}

/// Makes the last [`LeaderEpochCache::write_checkpoint_unsynced`] in `dir`
/// durable, for the blocking thread. No file is durable already: the
/// failed write that removed it synced the directory.
pub fn sync_checkpoint(dir: &Path) -> io::Result<()> {
    match fs::File::open(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)) {
        Ok(file) => file.sync_data()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::new();
        for &(epoch, start) in entries {
            assert!(cache.assign(epoch, start));
        }
        cache
    }

    fn pairs(cache: &LeaderEpochCache) -> Vec<(i32, i64)> {
        cache.entries().map(|e| (e.epoch, e.start_offset)).collect()
    }

    #[test]
    fn assign_ignores_old_epochs_and_earlier_starts() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(!c.assign(3, 20), "same epoch");
        assert!(!c.assign(2, 20), "older epoch");
        assert!(!c.assign(4, 9), "start below the latest");
        assert!(!c.assign(-1, 30), "unstamped batch");
        assert!(c.assign(4, 10), "equal start is allowed");
        assert_eq!(pairs(&c), vec![(1, 0), (3, 10), (4, 10)]);
        assert_eq!(c.latest_epoch(), Some(4));
        assert_eq!(LeaderEpochCache::new().latest_epoch(), None);
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(5, 30), (5, 30), "latest: the log end");
        assert_eq!(c.end_offset_for(1, 30), (1, 10));
        assert_eq!(c.end_offset_for(2, 30), (1, 10), "unknown epoch: the floor");
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(c.end_offset_for(4, 30), (3, 20));
        assert_eq!(c.end_offset_for(0, 30), (0, 0), "below the first epoch");
        assert_eq!(c.end_offset_for(6, 30), (-1, -1), "above the latest");
        assert_eq!(c.end_offset_for(-1, 30), (-1, -1));
        assert_eq!(LeaderEpochCache::new().end_offset_for(0, 30), (-1, -1));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 10)]);
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(c.truncate_from_start(15));
        assert_eq!(pairs(&c), vec![(3, 15), (5, 20)]);
        assert!(!c.truncate_from_start(15), "nothing below the start");
        assert!(c.truncate_from_start(20), "an entry at the start wins");
        assert_eq!(pairs(&c), vec![(5, 20)]);
        assert!(c.truncate_from_start(25));
        assert_eq!(pairs(&c), vec![(5, 25)]);
        assert!(c.clear());
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_by_dropping_the_oldest() {
        let mut c = LeaderEpochCache::new();
        for epoch in 0..LEADER_EPOCH_ENTRIES_MAX as i32 + 5 {
            assert!(c.assign(epoch, i64::from(epoch)));
        }
        assert_eq!(c.entries().count(), LEADER_EPOCH_ENTRIES_MAX);
        assert_eq!(c.entries().next().map(|e| e.epoch), Some(5));
    }

    #[test]
    fn checkpoint_round_trip_and_corrupt_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(LeaderEpochCache::read_checkpoint(dir), None, "missing");
        let c = cache(&[(0, 0), (2, 7)]);
        c.write_checkpoint(dir).unwrap();
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n2\n0 0\n2 7\n");
        assert_eq!(LeaderEpochCache::read_checkpoint(dir), Some(c));
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 x\n",
            "0\n2\n2 0\n1 5\n",
            "0\n1\n0 0 0\n",
            "0\n1\n0 0\n9 9\n",
        ] {
            fs::write(&path, bad).unwrap();
            assert_eq!(LeaderEpochCache::read_checkpoint(dir), None, "{bad:?}");
        }
        fs::write(&path, "0\n0\n").unwrap();
        assert_eq!(
            LeaderEpochCache::read_checkpoint(dir),
            Some(LeaderEpochCache::new())
        );
    }

    #[test]
    fn a_checkpoint_that_cannot_be_written_is_removed_not_left_stale() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        cache(&[(0, 0)]).write_checkpoint(dir).unwrap();
        // The disk fills: the temporary file is /dev/full (ENOSPC).
        let tmp_file = dir.join(format!(
            "{LEADER_EPOCH_CHECKPOINT_FILE}{}",
            super::super::io::TMP_SUFFIX
        ));
        std::os::unix::fs::symlink("/dev/full", &tmp_file).unwrap();
        cache(&[(0, 0), (3, 9)]).write_checkpoint(dir).unwrap();
        assert_eq!(
            LeaderEpochCache::read_checkpoint(dir),
            None,
            "rebuilt at open"
        );
        assert!(fs::symlink_metadata(&tmp_file).is_err());
    }
}

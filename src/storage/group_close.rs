//! Closing many logs at once, as a shutdown does.
//!
//! A lone [`PartitionLog::close`] makes each file durable on its own: the
//! segment's data, both indexes and the producer snapshot (each a temporary
//! file, fdatasync, rename), the recovery point and the directory. That is
//! about six journal commits a partition, one after another on the shard
//! thread; at 10,000 written partitions it was most of a 20-40 s stop.
//!
//! A group close writes every log's files to the page cache, syncs each
//! filesystem once, then moves the recovery points and syncs once more.
//! The order a lone close keeps holds for the group: nothing names a log
//! clean (its recovery point at the end) before all its bytes are durable.
//!
//! Nothing a group close writes is a temporary file renamed over the old
//! one (a rename over a file made ext4 start its write-back there and then,
//! one file at a time: 6 of a 13.6 s stop at 100,000 partitions). Each file
//! is written where it stands, and each reader takes what a crash could
//! leave of it: the active segment's indexes only under the clean-shutdown
//! marker, written after the syncs (an unclean open rebuilds the last
//! segment's); the recovery point zero-padded, so a torn one reads lower
//! ([`super::recovery::write_recovery_point_unsynced`]); the producer
//! snapshot with its CRC, an older one kept. An active segment under one
//! index interval gets no index file at all.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::{PartitionLog, StorageError};

/// The first half: logs written, nothing synced yet.
#[derive(Default)]
pub struct GroupClose {
    /// One open directory per filesystem the group's logs live on, each
    /// opened before the first write there: `syncfs` reports the
    /// write-back errors seen since its descriptor opened, so none of the
    /// group's can slip past.
    filesystems: Vec<(u64, File)>,
}

/// The second half: everything written is durable; recovery points move.
pub struct GroupSynced {
    filesystems: Vec<(u64, File)>,
}

impl GroupClose {
    /// Writes what `log`'s close writes, to the page cache only. A log
    /// whose write fails is left out of the rest: its recovery point stays
    /// where it was, so the next open recovers it.
    pub fn write(&mut self, log: &mut PartitionLog) -> Result<(), StorageError> {
        self.watch(log.dir_dev, &log.dir)?;
        log.close_unsynced()
    }

    /// Syncs every filesystem written to.
    pub fn sync(self) -> Result<GroupSynced, StorageError> {
        sync_all(&self.filesystems)?;
        Ok(GroupSynced {
            filesystems: self.filesystems,
        })
    }

    /// Opens `dir` for the sync of its filesystem `dev` (known since the
    /// log opened: no stat a log), unless one on `dev` is open already.
    fn watch(&mut self, dev: u64, dir: &Path) -> io::Result<()> {
        if !self.filesystems.iter().any(|(known, _)| *known == dev) {
            self.filesystems.push((dev, File::open(dir)?));
        }
        Ok(())
    }
}

impl GroupSynced {
    /// Moves `log`'s recovery point to its end; durable at [`Self::finish`].
    /// Only for a log the group wrote.
    pub fn seal(&self, log: &mut PartitionLog) -> Result<(), StorageError> {
        log.seal_after_sync()
    }

    /// Syncs the recovery points. Should it fail, the logs' bytes are
    /// durable all the same: the next open finds each point old or new,
    /// both true of the disk.
    pub fn finish(self) -> Result<(), StorageError> {
        sync_all(&self.filesystems)
    }
}

fn sync_all(filesystems: &[(u64, File)]) -> Result<(), StorageError> {
    for (_, dir) in filesystems {
        // SAFETY: a plain syscall on a descriptor `dir` owns for the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::record::build::build_simple_batch;
    use crate::storage::recovery::{
        stored_recovery_point, write_recovery_point, write_recovery_point_unsynced,
    };
    use crate::storage::tests::{file_names, names_and_inodes};
    use crate::storage::{FileHandles, LogConfig, RECOVERY_POINT_FILE};

    fn open(dir: PathBuf, clean: bool) -> PartitionLog {
        let config = LogConfig {
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        PartitionLog::open_in(dir, config, clean, &FileHandles::new(4)).unwrap()
    }

    fn filled(dir: PathBuf) -> PartitionLog {
        let mut log = open(dir, true);
        for i in 0..3 {
            log.append(&build_simple_batch(0, 2, 1000 + i), 1000 + i)
                .unwrap();
        }
        log
    }

    /// A group close leaves each log as a lone close does (the same files,
    /// the recovery point at the end, a clean open that needs no rebuild),
    /// and names no log clean before the group's sync.
    #[test]
    fn a_group_close_leaves_what_a_lone_close_does() {
        let tmp = tempfile::tempdir().unwrap();
        let mut lone = filled(tmp.path().join("lone-0"));
        lone.close().unwrap();
        let dirs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("t-{i}"))).collect();
        let mut logs: Vec<PartitionLog> = dirs.iter().cloned().map(filled).collect();

        let mut group = GroupClose::default();
        for log in &mut logs {
            group.write(log).unwrap();
        }
        for dir in &dirs {
            assert_eq!(
                stored_recovery_point(dir),
                None,
                "named clean before the sync"
            );
        }
        let synced = group.sync().unwrap();
        for log in &mut logs {
            synced.seal(log).unwrap();
        }
        synced.finish().unwrap();

        for dir in &dirs {
            assert_eq!(stored_recovery_point(dir), Some(6));
            assert_eq!(file_names(dir), file_names(&tmp.path().join("lone-0")));
        }
        drop(logs);
        for dir in &dirs {
            let before = names_and_inodes(dir);
            let log = open(dir.clone(), true);
            assert_eq!(names_and_inodes(dir), before, "a clean open rewrote a file");
            assert_eq!(log.log_end_offset(), 6);
            assert_eq!(log.read(0, u32::MAX, false).unwrap().slices.len(), 1);
            assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((2, 1001)));
        }
    }

    fn close_as_group(log: &mut PartitionLog) {
        let mut group = GroupClose::default();
        group.write(log).unwrap();
        let synced = group.sync().unwrap();
        synced.seal(log).unwrap();
        synced.finish().unwrap();
    }

    /// What a stop writes in place: the active segment's index files and
    /// the recovery point, with their inodes and lengths.
    fn written_in_place(dir: &Path) -> Vec<(String, u64, u64)> {
        names_and_inodes(dir)
            .into_iter()
            .filter(|(name, _)| name.ends_with("index") || name == RECOVERY_POINT_FILE)
            .map(|(name, ino)| {
                let len = std::fs::metadata(dir.join(&name)).unwrap().len();
                (name, ino, len)
            })
            .collect()
    }

    /// A stop after a stop writes the active segment's indexes and the
    /// recovery point over the files the first left: the same inodes (no
    /// file created, renamed or freed), holding the grown indexes and the
    /// new point, which a clean open then trusts. Should a crash leave an
    /// index part old (stale entries past its end), the unclean open that
    /// follows rebuilds it from the log.
    #[test]
    fn a_second_stop_writes_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let mut log = filled(dir.clone());
        close_as_group(&mut log);
        drop(log);
        let first = written_in_place(&dir);
        assert_eq!(first.len(), 3, "{first:?}");

        let mut log = open(dir.clone(), true);
        log.append(&build_simple_batch(6, 2, 1003), 1003).unwrap();
        close_as_group(&mut log);
        drop(log);
        let second = written_in_place(&dir);
        assert_eq!(second.len(), first.len(), "{second:?}");
        for ((name, ino, len), (name2, ino2, len2)) in first.iter().zip(&second) {
            assert_eq!((name, ino), (name2, ino2), "written in place");
            if name.ends_with("index") {
                assert!(len2 > len, "{name} grew: {len} -> {len2}");
            }
        }
        assert_eq!(stored_recovery_point(&dir), Some(8));
        let before = names_and_inodes(&dir);
        let log = open(dir.clone(), true);
        assert_eq!(names_and_inodes(&dir), before, "a clean open rebuilt");
        assert_eq!(log.log_end_offset(), 8);
        assert_eq!(log.offset_for_timestamp(1003).unwrap(), Some((6, 1003)));
        let last_batch = log.read(6, u32::MAX, false).unwrap().slices[0].position;
        drop(log);

        // A crash between the write and the length change: a stale entry
        // past the end that sends offset 7 into the middle of its batch.
        let index = dir.join(&second[0].0);
        let mut stale = std::fs::read(&index).unwrap();
        stale.extend_from_slice(&7u32.to_be_bytes());
        stale.extend_from_slice(&(last_batch as u32 + 10).to_be_bytes());
        std::fs::write(&index, stale).unwrap();
        let log = open(dir, false);
        assert_eq!(log.log_end_offset(), 8);
        let plan = log.read(7, u32::MAX, false).unwrap();
        assert_eq!(
            plan.slices[0].position, last_batch,
            "read from the stale entry"
        );
    }

    /// A stop's recovery point, written over the file in place, reads no
    /// higher than the point written however a crash tore it: the new text
    /// cut at any length reads lower; the old text out to the new length
    /// (the rest NUL bytes) as none; and the new text over an old one that
    /// was longer, before any length change, as the new point, since the
    /// new text is never shorter (unpadded, "98765" over "123456789" would
    /// read 987656789).
    #[test]
    fn a_torn_recovery_point_reads_no_higher() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join(RECOVERY_POINT_FILE);
        let point = 98_765;
        for old_point in [1234, 123_456_789, i64::MAX] {
            write_recovery_point(dir, old_point).unwrap();
            let old = std::fs::read(&path).unwrap();
            write_recovery_point_unsynced(dir, point).unwrap();
            assert_eq!(stored_recovery_point(dir), Some(point));
            let new = std::fs::read(&path).unwrap();
            for cut in 0..=new.len() {
                std::fs::write(&path, &new[..cut]).unwrap();
                let read = stored_recovery_point(dir).unwrap_or(0);
                assert!(read <= point, "{read} from {cut} bytes");
            }
            let mut stale = old.clone();
            stale.resize(new.len().max(old.len()), 0);
            std::fs::write(&path, &stale).unwrap();
            assert_eq!(stored_recovery_point(dir), None, "{stale:?}");
            let mut overlaid = old;
            overlaid.resize(overlaid.len().max(new.len()), 0);
            overlaid[..new.len()].copy_from_slice(&new);
            std::fs::write(&path, overlaid).unwrap();
            assert_eq!(stored_recovery_point(dir), Some(point));
        }
    }

    /// A log written but never sealed (a crash between the halves) keeps
    /// its old recovery point, and an unclean open recovers every batch.
    #[test]
    fn a_log_not_sealed_recovers_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("t-0");
        let mut log = filled(dir.clone());
        let mut group = GroupClose::default();
        group.write(&mut log).unwrap();
        drop(group.sync().unwrap());
        drop(log);
        assert_eq!(stored_recovery_point(&dir), None);
        let log = open(dir, false);
        assert_eq!(log.log_end_offset(), 6);
    }
}

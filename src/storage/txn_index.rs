//! The aborted-transaction index of one segment (`<base>.txnindex`, Kafka's
//! format): one entry per transaction whose ABORT marker lies in the
//! segment, so a read_committed fetch can tell consumers which producers'
//! records to drop in the range it returns.
//!
//! Entries are appended to the file as markers are written (page cache);
//! the entries a crash may lose are those of the log tail that recovery
//! replays, and replay writes them again. An entry whose write fails (a
//! full disk) is kept in memory, since its marker is already in the log:
//! the file is brought up to date by the next append or [`TxnIndex::persist`],
//! which a roll and a close call before the replay point moves past it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::handles::{FileHandles, HandleId};

pub const TXN_INDEX_SUFFIX: &str = "txnindex";
/// version i16, producer id i64, first offset i64, last offset i64, last
/// stable offset i64.
pub const TXN_INDEX_ENTRY_BYTES: usize = 2 + 8 + 8 + 8 + 8;
const TXN_INDEX_VERSION: i16 = 0;

/// A transaction that ended with ABORT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset once the marker was written.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; TXN_INDEX_ENTRY_BYTES] {
        let mut out = [0u8; TXN_INDEX_ENTRY_BYTES];
        out[0..2].copy_from_slice(&TXN_INDEX_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if b.len() < TXN_INDEX_ENTRY_BYTES || i16::from_be_bytes([b[0], b[1]]) != TXN_INDEX_VERSION
        {
            return None;
        }
        let entry = AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        (entry.first_offset <= entry.last_offset).then_some(entry)
    }
}

/// One segment's aborted transactions, in marker order.
#[derive(Debug)]
pub struct TxnIndex {
    path: PathBuf,
    entries: Vec<AbortedTxn>,
    /// The shard's open-file cache: the file is open only while recently
    /// written, like a segment's `.log`.
    handles: FileHandles,
    handle: HandleId,
    /// This process wrote the file (most segments never have one), so a
    /// flush must cover it.
    written: bool,
    /// A write failed: the file lacks entries the index holds.
    file_behind: bool,
}

impl TxnIndex {
    /// An empty index at `path`, removing any stale file there.
    pub fn create(path: PathBuf, handles: &FileHandles) -> io::Result<TxnIndex> {
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(TxnIndex::with_entries(path, Vec::new(), handles))
    }

    fn with_entries(path: PathBuf, entries: Vec<AbortedTxn>, handles: &FileHandles) -> TxnIndex {
        TxnIndex {
            path,
            entries,
            handles: handles.clone(),
            handle: handles.register(),
            written: false,
            file_behind: false,
        }
    }

    /// The index of a segment whose file does not exist (none aborted).
    pub fn empty(path: PathBuf, handles: &FileHandles) -> TxnIndex {
        TxnIndex::with_entries(path, Vec::new(), handles)
    }

    /// The index in `path`, if any; a torn last entry is dropped.
    pub fn open(path: PathBuf, handles: &FileHandles) -> io::Result<TxnIndex> {
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let entries: Vec<AbortedTxn> = bytes
            .chunks_exact(TXN_INDEX_ENTRY_BYTES)
            .map_while(AbortedTxn::decode)
            .collect();
        let mut index = TxnIndex::with_entries(path, entries, handles);
        if index.entries.len() * TXN_INDEX_ENTRY_BYTES != bytes.len() {
            index.rewrite()?;
        }
        Ok(index)
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// The file, for an fdatasync that must cover it; `None` if this
    /// process never wrote it.
    pub fn file(&self) -> io::Result<Option<Arc<File>>> {
        if !self.written {
            return Ok(None);
        }
        self.cached_file().map(Some)
    }

    /// Adds `entry`, in memory always, then to the file; an error means
    /// the file is behind (see [`Self::persist`]).
    pub fn append(&mut self, entry: AbortedTxn) -> io::Result<()> {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.last_offset > last.last_offset,
                "aborted transactions are indexed in marker order"
            );
        }
        self.entries.push(entry);
        if self.file_behind {
            return self.rewrite();
        }
        let at = ((self.entries.len() - 1) * TXN_INDEX_ENTRY_BYTES) as u64;
        let written = self
            .open_file()
            .and_then(|file| file.write_all_at(&entry.encode(), at));
        if written.is_err() {
            self.file_behind = true;
        }
        written
    }

    /// Writes the file anew if a write failed since it was last whole.
    pub fn persist(&mut self) -> io::Result<()> {
        if self.file_behind {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Drops entries whose marker is at or past `offset` (a replay will
    /// write them again).
    pub fn truncate_from(&mut self, offset: i64) -> io::Result<()> {
        let keep = self
            .entries
            .iter()
            .take_while(|e| e.last_offset < offset)
            .count();
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.rewrite()?;
        }
        Ok(())
    }

    /// The file through the cache, created if missing; from here on a
    /// flush covers it.
    fn open_file(&mut self) -> io::Result<Arc<File>> {
        self.written = true;
        self.cached_file()
    }

    fn cached_file(&self) -> io::Result<Arc<File>> {
        self.handles.get(self.handle, || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)
        })
    }

    /// Writes the file anew from the entries (after a trim or a failed
    /// write); on failure the file stays behind.
    fn rewrite(&mut self) -> io::Result<()> {
        self.file_behind = true;
        let file = self.open_file()?;
        file.set_len(0)?;
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| e.encode()).collect();
        file.write_all_at(&bytes, 0)?;
        self.file_behind = false;
        Ok(())
    }
}

impl Drop for TxnIndex {
    fn drop(&mut self) {
        self.handles.take(self.handle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_whose_write_fails_is_kept_and_written_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let handles = FileHandles::new(4);
        let mut index = TxnIndex::create(path.clone(), &handles).unwrap();
        index.append(entry(1, 0, 5)).unwrap();
        // The disk fills: /dev/full answers every write with ENOSPC.
        let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
        handles.replace(index.handle, full);
        let err = index.append(entry(2, 3, 9)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(index.entries(), &[entry(1, 0, 5), entry(2, 3, 9)]);
        assert!(index.persist().is_err());
        // Space returns.
        handles.take(index.handle);
        index.persist().unwrap();
        assert_eq!(
            TxnIndex::open(path, &handles).unwrap().entries(),
            index.entries()
        );
    }

    fn entry(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_survive_reopen_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let handles = FileHandles::new(1);
        let mut index = TxnIndex::create(path.clone(), &handles).unwrap();
        index.append(entry(1, 0, 5)).unwrap();
        index.append(entry(2, 3, 9)).unwrap();
        assert_eq!(
            TxnIndex::open(path.clone(), &handles).unwrap().entries(),
            index.entries()
        );
        index.truncate_from(9).unwrap();
        assert_eq!(
            TxnIndex::open(path.clone(), &handles).unwrap().entries(),
            &[entry(1, 0, 5)]
        );
        // A torn tail is dropped at open.
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 1]);
        fs::write(&path, &bytes).unwrap();
        let reopened = TxnIndex::open(path.clone(), &handles).unwrap();
        assert_eq!(reopened.entries(), &[entry(1, 0, 5)]);
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            TXN_INDEX_ENTRY_BYTES as u64
        );
    }
}

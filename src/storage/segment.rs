//! One segment: a `.log` file of whole batches plus its indexes, in
//! memory while it takes appends and in their files once it rolled
//! (`index_file.rs` says why).
//!
//! Appends go to the end only; `size` is the length of the valid prefix of
//! the file and every index position is below it. Outside an append the
//! file is exactly `size` long: a write that fails (a full disk) is cut back
//! before the error returns, so nothing of it stays and the next append
//! lands where it should.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::record::{
    first_offset_at_or_after_timestamp, BatchHeader, BATCH_HEADER_LEN, BATCH_LENGTH_OFFSET,
    MAGIC_OFFSET, PARTITION_LEADER_EPOCH_OFFSET,
};

use super::handles::{FileHandles, HandleId};
use super::index::OffsetIndex;
use super::index_file::IndexSummary;
use super::io::{overwrite_in_place, pwrite_all, write_atomic, write_replacing};
use super::prefault::{self, Prefault};
use super::time_index::TimeIndex;
use super::txn_index::{TxnIndex, TXN_INDEX_SUFFIX};
use super::StorageError;

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Appended to a segment file's name while compaction writes its
/// replacement; leftovers are removed at open.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Files of a segment retention removed, renamed until the blocking thread
/// unlinks them (Kafka's suffix); open removes any a crash left.
pub const DELETED_SUFFIX: &str = ".deleted";

/// `<20-digit base offset>.log.cleaned`: a compacted segment being written.
pub fn cleaned_path(dir: &Path, base_offset: i64) -> PathBuf {
    let mut path = segment_path(dir, base_offset, LOG_SUFFIX).into_os_string();
    path.push(CLEANED_SUFFIX);
    PathBuf::from(path)
}

/// `<20-digit base offset>.<suffix>`, as Kafka names segment files.
pub fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Digits of the offset that names a segment's (or a snapshot's) files.
const OFFSET_NAME_DIGITS: usize = 20;

/// The offset and suffix of a file named as [`segment_path`] names them
/// (producer snapshots too); `None` for any other name.
pub fn parse_offset_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    let digits_only = stem.len() == OFFSET_NAME_DIGITS && stem.bytes().all(|b| b.is_ascii_digit());
    digits_only.then(|| stem.parse().ok().map(|base| (base, suffix)))?
}

/// A log's segments by base offset. Boxed: a B-tree node has room for 11
/// entries, and most logs (idle partitions) have one segment, so inline
/// segments would cost ~3 KiB per partition, boxed ones ~0.5 KiB.
pub type Segments = std::collections::BTreeMap<i64, Box<Segment>>;

/// A batch ready to be written: its bytes as received (or stamped) and its
/// header with the assigned base offset.
pub struct PendingBatch {
    pub header: BatchHeader,
    /// The whole batch as received (a slice of the request's buffer).
    pub bytes: Bytes,
}

/// A segment append placed but not yet written: each batch's first 16
/// bytes rewritten (base offset, length, leader epoch) and the rest as
/// received, for one
/// `pwritev` at `start`. Owns everything it writes, so it can run off the
/// shard thread.
pub struct SegmentWrite {
    file: Arc<File>,
    segment_base: i64,
    start: u64,
    heads: Vec<([u8; MAGIC_OFFSET], BatchHeader)>,
    bodies: Vec<Bytes>,
}

/// A failed [`SegmentWrite::run`]: the write's error, and whether what it
/// may have left past the old end could not be cut.
#[derive(Debug)]
pub struct WriteFailed {
    pub error: io::Error,
    pub uncut: bool,
}

impl SegmentWrite {
    /// Writes the batches with `pwritev`; on error cuts the file back to
    /// where they started (part of them may be in it: a disk that filled
    /// up mid-write).
    pub fn run(&self) -> Result<(), WriteFailed> {
        let mut iovecs: Vec<&[u8]> = Vec::with_capacity(self.heads.len() * 2);
        for ((head, _), body) in self.heads.iter().zip(&self.bodies) {
            iovecs.push(head);
            iovecs.push(body);
        }
        pwrite_all(&self.file, self.start, &iovecs).map_err(|error| self.failed(error))
    }

    /// The batches as one buffer, for a writer that takes a single one
    /// (io_uring through the runtime): one copy of the request's bytes.
    pub fn contiguous(&self) -> Vec<u8> {
        let len = self.heads.iter().map(|(_, h)| h.total_len()).sum();
        let mut bytes = Vec::with_capacity(len);
        for ((head, _), body) in self.heads.iter().zip(&self.bodies) {
            bytes.extend_from_slice(head);
            bytes.extend_from_slice(body);
        }
        debug_assert_eq!(bytes.len(), len);
        bytes
    }

    /// The file the batches go to, for a writer other than [`Self::run`].
    pub fn file(&self) -> &File {
        &self.file
    }

    /// A write of these batches failed with `error`: the file is cut back
    /// to where they started (part of them may be in it: a disk that filled
    /// up mid-write).
    pub fn failed(&self, error: io::Error) -> WriteFailed {
        // The error that matters is the write's; an uncut tail is retried
        // by the next append.
        let uncut = match self.file.set_len(self.start) {
            Ok(()) => false,
            Err(cut) => {
                tracing::warn!(segment = self.segment_base, error = %cut, "cannot cut back a failed append; the next append retries");
                true
            }
        };
        WriteFailed { error, uncut }
    }

    pub fn segment_base(&self) -> i64 {
        self.segment_base
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn headers(&self) -> impl Iterator<Item = &BatchHeader> {
        self.heads.iter().map(|(_, h)| h)
    }
}

/// Which of a segment's side files exist, as its directory's listing at
/// open found them: open reads only those, instead of trying each (three
/// failed opens a partition never written, at every start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SideFiles {
    pub index: bool,
    pub time_index: bool,
    pub txn_index: bool,
}

impl SideFiles {
    /// Not listed: every file is tried, and a missing one read as absent.
    pub const UNLISTED: SideFiles = SideFiles {
        index: true,
        time_index: true,
        txn_index: true,
    };
}

pub struct Segment {
    pub base_offset: i64,
    /// The shard's open-file cache, which alone keeps the `.log` open
    /// (see [`Segment::file`]).
    handles: FileHandles,
    handle: HandleId,
    /// The `.log` is still at [`cleaned_path`]: a compaction's output not
    /// yet renamed over the segment it replaces.
    at_cleaned_path: bool,
    dir: PathBuf,
    /// Bytes of whole batches in the file; the next append goes here.
    pub size: u64,
    /// Offset the next batch appended here gets (= base when empty).
    pub next_offset: i64,
    /// Largest batch maxTimestamp in the segment (-1 when empty); retention
    /// and timestamp lookups use it.
    pub max_timestamp: i64,
    /// Time `segment_ms` counts from: the first append's clock, or the first
    /// batch's timestamp after a reopen.
    pub rolling_base_ms: Option<i64>,
    /// Both sparse indexes while they are in memory; empty once released
    /// (`summary`).
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    /// The index files hold exactly the entries in memory (just written,
    /// or loaded and checked), so memory may let them go.
    files_match: std::cell::Cell<bool>,
    /// Set once a rolled segment's indexes left memory: every 512th entry
    /// of each, which lookups search before they read one chunk of a file
    /// (`index_file.rs`).
    summary: Option<IndexSummary>,
    /// A lookup in the index files failed (removed under the broker): said
    /// once, and lookups walk from the segment start meanwhile.
    index_file_failed: std::cell::Cell<bool>,
    /// Transactions whose ABORT marker is in this segment.
    pub txn_index: TxnIndex,
    /// Log bytes appended since the last offset index entry.
    bytes_since_index: u64,
    /// Base offset of the last batch, for the final time index entry.
    last_batch_base: i64,
    /// A failed append could not be cut back either: the file may hold
    /// bytes past `size`, and the next append cuts them first.
    tail_uncut: bool,
    /// The file's length as [`Self::preallocate`] or [`Self::prefault_due`]
    /// set it (at most `size`: not extended, appends went past it): the
    /// bytes from `size` to here read as zeros (allocated blocks, or a
    /// hole), which a roll or close trims ([`Self::trim_extension`]). For
    /// a prefault's hole it is also where the last fill asked for ends.
    extended_len: u64,
    /// Bytes the last append wrote, which sizes the prefault window.
    last_write_len: u64,
    /// This process created or changed the file (append, cut, truncation):
    /// close must fdatasync it. An untouched one is as durable as when it
    /// was opened (a clean close or recovery synced it), and closing it
    /// need not reopen a file the cache closed.
    written: bool,
    /// What the index files on disk hold, when they are known durable
    /// (written with fsync, or loaded after a clean shutdown, which wrote
    /// them so): the digest of both encodings. Close skips rewriting
    /// identical indexes; `None` after an unsynced write.
    durable_indexes: std::cell::Cell<Option<IndexDigest>>,
}

/// CRC-32C and length of both encoded indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IndexDigest([(u32, usize); 2]);

impl IndexDigest {
    fn of(index: &[u8], time_index: &[u8]) -> IndexDigest {
        IndexDigest([
            (crc32c::crc32c(index), index.len()),
            (crc32c::crc32c(time_index), time_index.len()),
        ])
    }
}

impl Segment {
    /// Creates an empty segment, replacing any file of the same name.
    pub fn create(dir: &Path, base_offset: i64, handles: &FileHandles) -> io::Result<Self> {
        // The `.log` last: a roll that fails leaves no empty segment behind,
        // which open would take for one overlapping the active segment.
        let txn_path = segment_path(dir, base_offset, TXN_INDEX_SUFFIX);
        let txn_index = TxnIndex::create(txn_path, handles)?;
        let path = segment_path(dir, base_offset, LOG_SUFFIX);
        let file = without_atime(OpenOptions::new().create(true).truncate(true), &path)?;
        let mut segment = Self::with_file(dir, base_offset, file, 0, txn_index, handles);
        segment.written = true;
        Ok(segment)
    }

    /// Opens an existing segment. `size` is the file length and nothing is
    /// tracked yet: the caller loads or rebuilds the indexes.
    pub fn open(dir: &Path, base_offset: i64, handles: &FileHandles) -> io::Result<Self> {
        Self::open_listed(dir, base_offset, handles, SideFiles::UNLISTED)
    }

    /// [`Self::open`], reading only the side files `files` names.
    pub fn open_listed(
        dir: &Path,
        base_offset: i64,
        handles: &FileHandles,
        files: SideFiles,
    ) -> io::Result<Self> {
        let path = segment_path(dir, base_offset, LOG_SUFFIX);
        let size = fs::metadata(&path)?.len();
        let txn_path = segment_path(dir, base_offset, TXN_INDEX_SUFFIX);
        let txn_index = if files.txn_index {
            TxnIndex::open(txn_path, handles)?
        } else {
            TxnIndex::empty(txn_path, handles)
        };
        let segment = Self::unopened(dir, base_offset, size, txn_index, handles);
        // An empty segment (a partition never written) is left closed: its
        // first read or append opens it through the cache. Opened here, at
        // 100,000 idle partitions the cache closed all but its share again.
        // A segment with batches is read at once (its tail is checked).
        if size > 0 {
            handles.insert(segment.handle, open_log(&path)?);
        }
        Ok(segment)
    }

    /// Creates the empty replacement of segment `base_offset` at
    /// [`cleaned_path`]; its index files get the segment's usual names.
    pub fn create_cleaned(dir: &Path, base_offset: i64, handles: &FileHandles) -> io::Result<Self> {
        let file = without_atime(
            OpenOptions::new().create(true).truncate(true),
            &cleaned_path(dir, base_offset),
        )?;
        // Compaction keeps every marker, so the segment's aborted
        // transactions stay as they are, in the same file.
        let txn_path = segment_path(dir, base_offset, TXN_INDEX_SUFFIX);
        let txn_index = TxnIndex::open(txn_path, handles)?;
        let mut segment = Self::with_file(dir, base_offset, file, 0, txn_index, handles);
        segment.at_cleaned_path = true;
        segment.written = true;
        Ok(segment)
    }

    fn with_file(
        dir: &Path,
        base_offset: i64,
        file: File,
        size: u64,
        txn_index: TxnIndex,
        handles: &FileHandles,
    ) -> Self {
        let segment = Self::unopened(dir, base_offset, size, txn_index, handles);
        handles.insert(segment.handle, file);
        segment
    }

    /// A segment whose `.log` the cache does not hold yet: [`Self::file`]
    /// opens it when first used.
    fn unopened(
        dir: &Path,
        base_offset: i64,
        size: u64,
        txn_index: TxnIndex,
        handles: &FileHandles,
    ) -> Self {
        assert!(base_offset >= 0, "segment base offsets are non-negative");
        let handle = handles.register();
        Segment {
            base_offset,
            handles: handles.clone(),
            handle,
            at_cleaned_path: false,
            dir: dir.to_path_buf(),
            size,
            next_offset: base_offset,
            max_timestamp: -1,
            rolling_base_ms: None,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            files_match: std::cell::Cell::new(false),
            summary: None,
            index_file_failed: std::cell::Cell::new(false),
            txn_index,
            bytes_since_index: 0,
            last_batch_base: base_offset,
            tail_uncut: false,
            extended_len: 0,
            last_write_len: 0,
            written: false,
            durable_indexes: std::cell::Cell::new(None),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Where the `.log` is now.
    pub fn log_path(&self) -> PathBuf {
        if self.at_cleaned_path {
            cleaned_path(&self.dir, self.base_offset)
        } else {
            segment_path(&self.dir, self.base_offset, LOG_SUFFIX)
        }
    }

    /// The open `.log`, reopened if the shard's cache closed it. Holding
    /// the `Arc` keeps it open past an eviction (a send in flight), but
    /// only the cache keeps it open across calls: callers let go of it.
    pub fn file(&self) -> io::Result<Arc<File>> {
        self.handles.get(self.handle, || open_log(&self.log_path()))
    }

    /// Compaction renamed the `.log` from [`cleaned_path`] to its own name;
    /// an open handle follows the inode, a reopen must use the new name.
    pub fn renamed_from_cleaned(&mut self) {
        assert!(self.at_cleaned_path, "only a compaction output is renamed");
        self.at_cleaned_path = false;
    }

    /// Stands `file` in for the `.log` (a test's `/dev/full`).
    #[cfg(test)]
    pub fn replace_file_for_test(&self, file: File) {
        self.handles.replace(self.handle, file);
    }

    /// `offset` relative to the base; the log rolls before this can overflow.
    pub fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset - self.base_offset).expect("relative offset fits in u32")
    }

    /// Forgets everything known about the contents, before a rescan.
    pub fn reset_tracking(&mut self) {
        self.size = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.index.clear();
        self.time_index.clear();
        self.files_match.set(false);
        self.summary = None;
        self.bytes_since_index = 0;
        self.last_batch_base = self.base_offset;
    }

    /// Accounts for the batch `header` written at `pos` (= the current end).
    /// Offsets increase; compaction may leave gaps between batches.
    pub fn track_batch(&mut self, pos: u64, header: &BatchHeader, index_interval_bytes: u32) {
        assert_eq!(pos, self.size, "batches are tracked in file order");
        assert!(
            !self.indexes_released(),
            "a rolled segment takes no batches"
        );
        assert!(
            header.base_offset >= self.next_offset,
            "offsets increase from batch to batch"
        );
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        if self.bytes_since_index >= u64::from(index_interval_bytes) && pos > 0 {
            let relative = self.relative(header.base_offset);
            let position = u32::try_from(pos).expect("segment positions fit in u32");
            self.index.push(relative, position);
            self.time_index.push_if_grown(self.max_timestamp, relative);
            self.files_match.set(false);
            self.bytes_since_index = 0;
        }
        let len = header.total_len() as u64;
        self.size += len;
        self.bytes_since_index += len;
        self.next_offset = header.last_offset() + 1;
        self.last_batch_base = header.base_offset;
    }

    /// Writes `batches` at the end, each with its new base offset, without
    /// copying record bytes. On error the file is cut back to its old size
    /// and nothing (size, offsets, indexes) has changed.
    pub fn append(
        &mut self,
        batches: Vec<PendingBatch>,
        index_interval_bytes: u32,
    ) -> io::Result<()> {
        let write = self.prepare_write(batches)?;
        let written = write.run();
        self.finish_write(&write, written, index_interval_bytes)
    }

    /// Places `batches` (each with its new header, the bytes as received)
    /// at the end of the file, to be written by [`SegmentWrite::run`] —
    /// here or on another thread — and then accounted for by
    /// [`Self::finish_write`]. Nothing about the segment changes until then.
    pub fn prepare_write(&mut self, batches: Vec<PendingBatch>) -> io::Result<SegmentWrite> {
        self.cut_tail()?;
        let file = self.file()?;
        self.written = true;
        let mut heads = Vec::with_capacity(batches.len());
        let mut bodies = Vec::with_capacity(batches.len());
        for PendingBatch { header, bytes } in batches {
            assert_eq!(bytes.len(), header.total_len());
            // baseOffset and partitionLeaderEpoch come from the header (the
            // log's offsets, the leader's epoch); both lie outside the CRC.
            let mut head = [0u8; MAGIC_OFFSET];
            head[..BATCH_LENGTH_OFFSET].copy_from_slice(&header.base_offset.to_be_bytes());
            head[BATCH_LENGTH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET]
                .copy_from_slice(&bytes[BATCH_LENGTH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET]);
            head[PARTITION_LEADER_EPOCH_OFFSET..]
                .copy_from_slice(&header.partition_leader_epoch.to_be_bytes());
            heads.push((head, header));
            bodies.push(bytes.slice(MAGIC_OFFSET..));
        }
        Ok(SegmentWrite {
            file,
            segment_base: self.base_offset,
            start: self.size,
            heads,
            bodies,
        })
    }

    /// Accounts for a [`SegmentWrite`] prepared on this segment, once run:
    /// its batches tracked if it succeeded; else the file cut back (or left
    /// for the next append to cut) and nothing else changed.
    pub fn finish_write(
        &mut self,
        write: &SegmentWrite,
        written: Result<(), WriteFailed>,
        index_interval_bytes: u32,
    ) -> io::Result<()> {
        assert_eq!(write.segment_base, self.base_offset);
        assert_eq!(
            write.start, self.size,
            "nothing moved the end during the write"
        );
        if let Err(failed) = written {
            // The write's cut (`set_len` to where it started) took any
            // preallocated blocks or hole with it.
            self.forget_extension();
            if failed.uncut {
                self.tail_uncut = true;
            } else {
                self.assert_file_len()?;
            }
            return Err(failed.error);
        }
        let mut pos = write.start;
        for (_, header) in &write.heads {
            self.track_batch(pos, header, index_interval_bytes);
            pos += header.total_len() as u64;
        }
        self.last_write_len = pos - write.start;
        if cfg!(debug_assertions) {
            // One fstat per append: checked in tests, not paid in release.
            self.assert_file_len()?;
        }
        Ok(())
    }

    /// Marks the file's bytes past `size` as a failed append's leftovers to
    /// cut before the next append or close (a write that landed after the
    /// log moved on).
    pub fn mark_tail_uncut(&mut self) {
        self.tail_uncut = true;
    }

    /// Allocates the file's blocks up to `len` and makes that its length
    /// (`fallocate` mode 0), so appends below it neither allocate nor move
    /// the inode's size: on ext4 both take the inode's `i_data_sem`, which
    /// write-back holds while it allocates, and an append waited out the
    /// kernel's write-back bursts (tuning/README.md). Kafka's
    /// `preallocate`, with the blocks really allocated. A filesystem that
    /// cannot (or a full disk) leaves the segment as it was.
    pub fn preallocate(&mut self, len: u64) {
        if len <= self.size.max(self.extended_len) {
            return;
        }
        let allocated = self.file().and_then(|file| {
            let offset = libc::off_t::try_from(self.size).map_err(io::Error::other)?;
            let more = libc::off_t::try_from(len - self.size).map_err(io::Error::other)?;
            // SAFETY: a plain syscall on an fd the Arc keeps open.
            let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, more) };
            if rc == 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            // A failure may have left some of it allocated: give it back.
            file.set_len(self.size.max(self.extended_len))?;
            Err(error)
        });
        match allocated {
            Ok(()) => {
                self.written = true;
                self.extended_len = len;
            }
            Err(e) => {
                tracing::debug!(segment = self.base_offset, dir = %self.dir.display(), error = %e, "segment not preallocated");
            }
        }
    }

    /// Cuts what [`Self::preallocate`] allocated or [`Self::prefault_due`]
    /// extended past the batches: before a roll or close, so a segment that is not active holds
    /// exactly its batches and recovery never reads the zeros.
    pub fn trim_extension(&mut self) -> io::Result<()> {
        if self.extended_len > self.size {
            self.file()?.set_len(self.size)?;
        }
        self.forget_extension();
        Ok(())
    }

    /// The file is `size` long again (a trim, a cut, a truncation): no
    /// zeros past the batches, and no cached pages there.
    fn forget_extension(&mut self) {
        self.extended_len = 0;
    }

    /// The page cache to fill ahead of the appends (see
    /// [`super::prefault`]), once at most half of the window that the last
    /// append asks for (at most `max_window`) is left. The file is first
    /// extended with a hole to the window's end, never past `segment_end`
    /// (`segment.bytes`, where the segment rolls).
    ///
    /// Only to the window's end: the kernel's readahead stops at a file's
    /// end, and a hole to `segment.bytes` let a fetch's sendfile (or a
    /// header's pread) read ahead far into it, up to the device's
    /// `read_ahead_kb` (8 MiB on the VM these figures come from) in folios
    /// up to 2 MiB whose allocation compacted memory, on the shard thread:
    /// 20-75 ms sendfiles every few seconds at 50k msg/s. `POSIX_FADV_RANDOM`
    /// did not stop it once memory filled: readahead from a folio marked
    /// for it ignores the advice, and reclaim marks folios too
    /// (`PG_reclaim` is the same bit as `PG_readahead`). Within the window
    /// the fill has made the pages, so readahead finds little to do. One
    /// `ftruncate` per window move is the cost.
    pub fn prefault_due(&mut self, max_window: u64, segment_end: u64) -> Option<Prefault> {
        let window = prefault::window(self.last_write_len, max_window)?;
        // The hole so far is what earlier fills were asked for.
        let start = self.size.max(self.extended_len);
        // Nothing past `segment_end`: the segment rolls there.
        let end = (self.size + window).min(segment_end);
        if start > self.size + window / 2 || start >= end {
            return None;
        }
        let file = self.file().ok()?;
        self.extend_sparse(&file, end).ok()?;
        Some(Prefault::new(file, start, end - start))
    }

    /// Makes `file` (this segment's) `len` long with a hole past the
    /// batches: nothing is allocated, and reads there give zeros. Trimmed
    /// as preallocated blocks are ([`Self::trim_extension`]).
    fn extend_sparse(&mut self, file: &File, len: u64) -> io::Result<()> {
        assert!(len > self.size.max(self.extended_len));
        let extended = file.set_len(len);
        match &extended {
            Ok(()) => {
                self.written = true;
                self.extended_len = len;
            }
            Err(e) => {
                tracing::debug!(segment = self.base_offset, dir = %self.dir.display(), error = %e, "segment not extended for prefault");
            }
        }
        extended
    }

    /// Cuts what a failed append left past `size`, if its own cut failed:
    /// before the next append, and before the segment is closed (a closed
    /// segment with bytes past its batches would read as corrupt at open).
    pub fn cut_tail(&mut self) -> io::Result<()> {
        if self.tail_uncut {
            self.written = true;
            self.file()?.set_len(self.size)?;
            self.tail_uncut = false;
            self.forget_extension();
            self.assert_file_len()?;
        }
        Ok(())
    }

    /// The file holds bytes not known durable though this process wrote
    /// none (an unclean open left a rescanned tail unsynced): close syncs it.
    pub fn mark_written(&mut self) {
        self.written = true;
    }

    /// fdatasync, unless this process never changed the file.
    pub fn sync_if_written(&self) -> io::Result<()> {
        if self.written {
            self.file()?.sync_data()?;
        }
        Ok(())
    }

    /// Asserts the file holds exactly the tracked batches, no more (the
    /// remains of a failed write) and no less.
    pub fn assert_file_len(&self) -> io::Result<()> {
        // By path when the cache closed the file: a stat needs no open.
        let len = match self.handles.peek(self.handle) {
            Some(file) => file.metadata()?.len(),
            None => fs::metadata(self.log_path())?.len(),
        };
        assert_eq!(
            len,
            self.size.max(self.extended_len),
            "segment {} in {}: file length differs from the tracked size",
            self.base_offset,
            self.dir.display()
        );
        Ok(())
    }

    fn corrupt(&self, pos: u64, what: impl std::fmt::Display) -> StorageError {
        StorageError::Corrupt(format!(
            "{what} at position {pos} of segment {}",
            self.base_offset
        ))
    }

    /// The header of the batch at `pos`, which must lie wholly within `size`.
    pub fn read_header(&self, pos: u64) -> Result<BatchHeader, StorageError> {
        if pos + BATCH_HEADER_LEN as u64 > self.size {
            return Err(self.corrupt(pos, "batch header past the end"));
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.file()?.read_exact_at(&mut buf, pos)?;
        let header = BatchHeader::parse(&buf).map_err(|e| self.corrupt(pos, e))?;
        if pos + header.total_len() as u64 > self.size {
            return Err(self.corrupt(pos, "batch past the end"));
        }
        Ok(header)
    }

    /// Position of the first batch whose last offset is >= `offset`, if any.
    pub fn find_batch(&self, offset: i64) -> Result<Option<u64>, StorageError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let mut pos = u64::from(self.index_lookup(self.relative(offset.max(self.base_offset))));
        while pos < self.size {
            let header = self.read_header(pos)?;
            if header.last_offset() >= offset {
                return Ok(Some(pos));
            }
            pos += header.total_len() as u64;
        }
        Ok(None)
    }

    /// Length of the whole batches from `from` (up to position `end`) that
    /// fit in `budget` bytes (the first one always when `force_first`), and
    /// whether the budget stopped the scan before `end`. Both ends are batch
    /// boundaries, so a range within the budget needs no header read; a cut
    /// one reads headers only from the index entry nearest the cut.
    pub fn read_range(
        &self,
        from: u64,
        end: u64,
        budget: u64,
        force_first: bool,
    ) -> Result<(u64, bool), StorageError> {
        assert!(
            from <= end && end <= self.size,
            "reads stay within the segment"
        );
        if end - from <= budget {
            debug_assert_eq!(self.walk_to(from, end)?, end, "a range of whole batches");
            return Ok((end - from, false));
        }
        let limit = from + budget;
        let near = u64::from(self.index_floor_position(u32::try_from(limit).unwrap_or(u32::MAX)));
        let cut = self.walk_to(near.max(from), limit)?;
        if cut == from && force_first {
            let first = self.read_header(from)?.total_len() as u64;
            return Ok((first, from + first < end));
        }
        Ok((cut - from, true))
    }

    /// The last batch boundary at or before `limit`, walking headers from
    /// the boundary `pos`; `limit` lies within the segment's batches.
    fn walk_to(&self, mut pos: u64, limit: u64) -> Result<u64, StorageError> {
        while pos < limit {
            let len = self.read_header(pos)?.total_len() as u64;
            if pos + len > limit {
                break;
            }
            pos += len;
        }
        Ok(pos)
    }

    /// (offset, timestamp) of the first record here at or past offset
    /// `from` with timestamp >= `ts`.
    pub fn find_timestamp(&self, ts: i64, from: i64) -> Result<Option<(i64, i64)>, StorageError> {
        if self.is_empty() || self.max_timestamp < ts {
            return Ok(None);
        }
        let mut pos = self
            .time_lookup_before(ts)
            .map_or(0, |relative| u64::from(self.index_lookup(relative)));
        while pos < self.size {
            let header = self.read_header(pos)?;
            if header.max_timestamp >= ts && header.last_offset() >= from {
                let mut batch = vec![0u8; header.total_len()];
                self.file()?.read_exact_at(&mut batch, pos)?;
                // Within the batch, so it fits an offset delta.
                let min_delta = (from - header.base_offset).max(0) as i32;
                if let Some((delta, found)) =
                    first_offset_at_or_after_timestamp(&batch, ts, min_delta)
                {
                    return Ok(Some((header.base_offset + i64::from(delta), found)));
                }
            }
            pos += header.total_len() as u64;
        }
        Ok(None)
    }

    /// Records the segment's final largest timestamp, before a roll or close.
    pub fn finish_time_index(&mut self) {
        if !self.is_empty() {
            assert!(!self.indexes_released(), "only before a roll");
            let relative = self.relative(self.last_batch_base);
            let before = self.time_index.len();
            self.time_index.push_if_grown(self.max_timestamp, relative);
            if self.time_index.len() != before {
                self.files_match.set(false);
            }
        }
    }

    /// Writes both index files (tmp + rename) without fsync, for a roll on
    /// the shard's thread: recovery rebuilds indexes a crash left short.
    pub fn write_indexes_unsynced(&self) -> io::Result<()> {
        self.write_indexes_with(write_replacing).map(drop)
    }

    /// Writes both index files (tmp + fsync + rename).
    pub fn write_indexes(&self) -> io::Result<()> {
        let digest = self.write_indexes_with(write_atomic)?;
        self.durable_indexes.set(Some(digest));
        Ok(())
    }

    /// What a close writes of the indexes: nothing when the files on disk
    /// are a durable copy of these very indexes (a partition untouched
    /// since a clean open); for a segment under one index interval (an
    /// empty one too), no files at all (any older ones are removed: its
    /// open takes none as empty indexes, [`Self::needs_no_index_files`]);
    /// else both files, each replaced and fsynced when
    /// `durable`, or written in place to the page cache for a group close,
    /// which syncs the filesystem after ([`overwrite_in_place`]).
    pub fn write_indexes_for_close(
        &self,
        durable: bool,
        index_interval_bytes: u32,
    ) -> io::Result<()> {
        if self.needs_no_index_files(index_interval_bytes) {
            self.durable_indexes.set(None);
            return self.remove_indexes();
        }
        let now = IndexDigest::of(&self.index.encode(), &self.time_index.encode());
        if self.durable_indexes.get() == Some(now) {
            return Ok(());
        }
        if durable {
            self.write_indexes()
        } else {
            // For a group close, whose marker follows a filesystem sync:
            // an unclean open rescans the last segment and rebuilds these.
            self.write_indexes_with(overwrite_in_place).map(drop)
        }
    }

    /// Whether this segment is under one index interval, so that its
    /// indexes are worth no file: at this interval its offset index has no
    /// entry (one is added only past an interval of batches) and its time
    /// index at most the largest timestamp, and what a lookup would find in
    /// them a scan of its few batches from the start finds too (an empty
    /// index is never wrong, only slower). A close writes none for it (thousands of
    /// partitions holding a few records stop and start without two files
    /// each), and an open takes none as empty indexes, its tail scan
    /// reading those few batch headers anyway.
    pub fn needs_no_index_files(&self, index_interval_bytes: u32) -> bool {
        self.is_empty() || self.size < u64::from(index_interval_bytes)
    }

    /// Removes both index files; a missing one is no error.
    fn remove_indexes(&self) -> io::Result<()> {
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            match fs::remove_file(segment_path(&self.dir, self.base_offset, suffix)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The index files just loaded were written durably (the previous
    /// close did, before its clean-shutdown marker).
    pub fn mark_indexes_durable(&self) {
        let digest = IndexDigest::of(&self.index.encode(), &self.time_index.encode());
        self.durable_indexes.set(Some(digest));
    }

    /// Both index files through `write`. When one fails (a full disk), both
    /// are removed: an older file could describe bytes this segment no
    /// longer holds (a truncated tail), and open rebuilds missing indexes.
    fn write_indexes_with(
        &self,
        write: fn(&Path, &[u8]) -> io::Result<()>,
    ) -> io::Result<IndexDigest> {
        // Writing the emptied memory of a rolled segment would lose its
        // indexes.
        assert!(!self.indexes_released(), "indexes in memory");
        // Whatever was durable is being replaced; a durable write says so
        // again once done.
        self.durable_indexes.set(None);
        let index_path = segment_path(&self.dir, self.base_offset, INDEX_SUFFIX);
        let time_path = segment_path(&self.dir, self.base_offset, TIME_INDEX_SUFFIX);
        let (index, time_index) = (self.index.encode(), self.time_index.encode());
        let written = write(&index_path, &index)
            .and_then(|()| write(&time_path, &time_index))
            .map(|()| IndexDigest::of(&index, &time_index));
        self.files_match.set(written.is_ok());
        if written.is_err() {
            if let Err(e) = self.remove_indexes() {
                tracing::warn!(segment = self.base_offset, error = %e, "cannot remove an index that may be stale")
            }
        }
        written
    }

    /// Loads both index files (a file `files` does not name reads as
    /// missing); false if either is missing or inconsistent
    /// with the log (the caller then rebuilds by scanning). A segment
    /// under one index interval may have none: its indexes are then empty
    /// ([`Self::needs_no_index_files`]); 0 for `index_interval_bytes` takes
    /// no missing file as empty but an empty segment's.
    pub fn load_indexes(&mut self, files: SideFiles, index_interval_bytes: u32) -> bool {
        let read = |listed: bool, suffix| {
            listed
                .then(|| fs::read(segment_path(&self.dir, self.base_offset, suffix)).ok())
                .flatten()
        };
        let (index, time) = (
            read(files.index, INDEX_SUFFIX),
            read(files.time_index, TIME_INDEX_SUFFIX),
        );
        self.files_match.set(false);
        if self.needs_no_index_files(index_interval_bytes) && index.is_none() && time.is_none() {
            self.index = OffsetIndex::default();
            self.time_index = TimeIndex::default();
            return true;
        }
        let (Some(index), Some(time)) = (index, time) else {
            return false;
        };
        match (
            OffsetIndex::decode(&index, self.size),
            super::time_index::TimeIndex::decode(&time),
        ) {
            (Some(index), Some(time_index)) => {
                self.index = index;
                self.time_index = time_index;
                self.files_match.set(true);
                true
            }
            _ => false,
        }
    }

    /// Lets a rolled segment's indexes go from memory once their files
    /// hold them, but for a summary: lookups read one chunk of the files
    /// from then on (`index_file.rs`).
    /// They stay when the files could not be written (a full disk), and
    /// when there is no offset entry (a segment under one index interval),
    /// with nothing worth a file read.
    pub fn release_indexes(&mut self) {
        if self.indexes_released() || !self.files_match.get() || self.index.is_empty() {
            return;
        }
        self.summary = Some(IndexSummary::of(&self.index, &self.time_index));
        self.index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
    }

    /// Whether the indexes are in their files only ([`Self::release_indexes`]).
    pub fn indexes_released(&self) -> bool {
        self.summary.is_some()
    }

    /// Whether a lookup in the index files failed ([`Self::in_file`]).
    #[cfg(test)]
    pub fn index_file_failed(&self) -> bool {
        self.index_file_failed.get()
    }

    /// Brings released indexes back into memory, for a truncation that
    /// makes this segment the active one; false if the files no longer
    /// decode, and the caller rebuilds them by scanning.
    fn reload_released_indexes(&mut self) -> bool {
        if !self.indexes_released() {
            return true;
        }
        self.summary = None;
        // Released indexes had files (an offset entry each): missing ones
        // are a loss, never a small segment's.
        self.load_indexes(SideFiles::UNLISTED, 0)
    }

    /// [`OffsetIndex::lookup`], in memory or in the file.
    fn index_lookup(&self, relative_offset: u32) -> u32 {
        if !self.indexes_released() {
            return self.index.lookup(relative_offset);
        }
        self.in_file(INDEX_SUFFIX, |summary, path| {
            summary.offset_lookup(path, relative_offset)
        })
        .unwrap_or(0)
    }

    /// [`OffsetIndex::floor_position`], in memory or in the file.
    fn index_floor_position(&self, position: u32) -> u32 {
        if !self.indexes_released() {
            return self.index.floor_position(position);
        }
        self.in_file(INDEX_SUFFIX, |summary, path| {
            summary.offset_floor_position(path, position)
        })
        .unwrap_or(0)
    }

    /// [`TimeIndex::lookup_before`], in memory or in the file.
    fn time_lookup_before(&self, timestamp: i64) -> Option<u32> {
        if !self.indexes_released() {
            return self.time_index.lookup_before(timestamp);
        }
        self.in_file(TIME_INDEX_SUFFIX, |summary, path| {
            summary.time_lookup_before(path, timestamp)
        })
        .flatten()
    }

    /// A lookup in one of the index files; `None` when it fails (a file
    /// removed under the broker), said once: the callers then search from
    /// the segment start, which is slower and as right.
    fn in_file<T>(
        &self,
        suffix: &str,
        lookup: impl FnOnce(&IndexSummary, &Path) -> io::Result<T>,
    ) -> Option<T> {
        let summary = self.summary.as_ref().expect("released indexes");
        match lookup(summary, &segment_path(&self.dir, self.base_offset, suffix)) {
            Ok(found) => Some(found),
            Err(e) => {
                if !self.index_file_failed.replace(true) {
                    tracing::warn!(dir = %self.dir.display(), segment = self.base_offset, error = %e, "cannot read an index file; searching from the segment start");
                }
                None
            }
        }
    }

    /// After [`Self::load_indexes`]: scans the batch headers after the last
    /// index entry to learn the end offset and largest timestamp. False if
    /// they do not line up with the index or do not end exactly at `size`.
    pub fn load_tail(&mut self) -> Result<bool, StorageError> {
        assert!(!self.indexes_released(), "indexes in memory");
        let (mut pos, mut expected) = self.index.last().map_or((0, self.base_offset), |e| {
            (
                u64::from(e.position),
                self.base_offset + i64::from(e.relative_offset),
            )
        });
        let start = pos;
        self.max_timestamp = self.time_index.last().map_or(-1, |e| e.timestamp);
        while pos < self.size {
            let header = match self.read_header(pos) {
                Ok(header) => header,
                Err(StorageError::Corrupt(_)) => return Ok(false),
                Err(err) => return Err(err),
            };
            if header.base_offset < expected
                || super::recovery::check_stored_header(&header).is_err()
                || !super::recovery::fits_segment(&header, self.base_offset)
            {
                return Ok(false);
            }
            self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
            self.last_batch_base = header.base_offset;
            expected = header.last_offset() + 1;
            pos += header.total_len() as u64;
        }
        self.next_offset = expected;
        self.bytes_since_index = self.size - start;
        let time_ok = self
            .time_index
            .last()
            .is_none_or(|e| self.base_offset + i64::from(e.relative_offset) < self.next_offset);
        Ok(time_ok)
    }

    /// Position of the last batch, for a header read; `None` when empty.
    pub fn last_batch_position(&self) -> Result<Option<u64>, StorageError> {
        if self.is_empty() {
            return Ok(None);
        }
        self.find_batch(self.last_batch_base)
    }

    /// Drops the batches from the first one whose last offset is >= `offset`
    /// on (Kafka's LogSegment.truncateTo), so `next_offset` may end below
    /// `offset`; indexes and tracking follow. Returns the bytes dropped.
    pub fn truncate_to(
        &mut self,
        offset: i64,
        index_interval_bytes: u32,
    ) -> Result<u64, StorageError> {
        // The segment is the active one from here on, even when nothing
        // of it goes: its indexes take appends again.
        if !self.reload_released_indexes() {
            tracing::warn!(
                segment = self.base_offset,
                "index files unreadable before a truncation; rescanning"
            );
            super::recovery::recover_segment(self, index_interval_bytes)?;
        }
        let Some(pos) = self.find_batch(offset)? else {
            return Ok(0);
        };
        let cut_base = self.read_header(pos)?.base_offset;
        let dropped = self.size - pos;
        self.written = true;
        self.file()?.set_len(pos)?;
        self.forget_extension();
        self.size = pos;
        self.index
            .truncate_at_position(u32::try_from(pos).expect("segment positions fit in u32"));
        self.time_index.truncate_from(self.relative(cut_base));
        self.txn_index.truncate_from(cut_base)?;
        self.last_batch_base = self.base_offset;
        // The kept batches are the same bytes as before: re-reading their
        // headers after the last index entry gives the end and timestamps.
        if !self.load_tail()? {
            tracing::warn!(
                segment = self.base_offset,
                "indexes disagree after truncation; rescanning"
            );
            super::recovery::recover_segment(self, index_interval_bytes)?;
        }
        if self.is_empty() {
            self.rolling_base_ms = None;
        }
        assert!(self.next_offset <= offset.max(self.base_offset));
        assert_eq!(self.size, pos);
        Ok(dropped)
    }

    /// Cuts the file (and `size`) back to `pos`, a batch boundary.
    pub fn truncate_file(&mut self, pos: u64) -> io::Result<()> {
        self.written = true;
        self.file()?.set_len(pos)?;
        self.forget_extension();
        assert!(self.size <= pos, "truncate only past the tracked batches");
        Ok(())
    }

    /// Removes the segment's files.
    /// Renames the segment's files out of the log (cheap, on the shard) and
    /// returns what the blocking thread must unlink: unlinking a large
    /// cached file, and closing its last handle, can take tens of ms.
    pub fn into_deleted(self) -> io::Result<DeletedSegment> {
        let mut paths = Vec::with_capacity(4);
        for suffix in [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ] {
            let path = segment_path(&self.dir, self.base_offset, suffix);
            let renamed = PathBuf::from(format!("{}{DELETED_SUFFIX}", path.display()));
            match fs::rename(&path, &renamed) {
                Ok(()) => paths.push(renamed),
                Err(err) if err.kind() == io::ErrorKind::NotFound && suffix != LOG_SUFFIX => {}
                Err(err) => return Err(err),
            }
        }
        Ok(DeletedSegment {
            paths,
            file: self.handles.take(self.handle),
        })
    }

    pub fn delete_files(&self) -> io::Result<()> {
        fs::remove_file(segment_path(&self.dir, self.base_offset, LOG_SUFFIX))?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX] {
            match fs::remove_file(segment_path(&self.dir, self.base_offset, suffix)) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        Ok(())
    }
}

/// A segment out of the log whose files still wait to be unlinked.
pub struct DeletedSegment {
    paths: Vec<PathBuf>,
    /// The `.log`'s open handle, if the cache held one: closed with the
    /// files, on the thread that unlinks them (the last close of a large
    /// cached file is slow).
    file: Option<Arc<File>>,
}

impl Drop for Segment {
    /// Its files leave the cache with it: a segment replaced at the same
    /// path gets a new id, so nothing could use them again.
    fn drop(&mut self) {
        self.handles.take(self.handle);
    }
}

/// Opens an existing `.log` for appends and reads.
fn open_log(path: &Path) -> io::Result<File> {
    without_atime(&mut OpenOptions::new(), path)
}

/// Opens a `.log` for appends and reads (with `options` for the rest)
/// without access-time updates. Under `relatime` every read after an append
/// wrote the inode's atime (the mtime is always newer): at 10,000
/// partitions, `touch_atime` under sendfile and pread was 3.5% of the
/// shard's CPU. The kernel allows O_NOATIME to the file's owner only, so a
/// data dir whose files belong to someone else opens without it.
fn without_atime(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    options.read(true).write(true);
    match options.clone().custom_flags(libc::O_NOATIME).open(path) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => options.open(path),
        opened => opened,
    }
}

impl DeletedSegment {
    /// The `.log`'s open handle, to close before the files are unlinked.
    pub fn take_file(&mut self) -> Option<Arc<File>> {
        self.file.take()
    }

    /// Unlinks the renamed files; run on the blocking thread.
    pub fn remove(self) -> io::Result<()> {
        for path in &self.paths {
            fs::remove_file(path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// The open flags of `file`, as /proc/self/fdinfo shows them (octal).
    fn open_flags(file: &File) -> i32 {
        let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", file.as_raw_fd())).unwrap();
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap();
        i32::from_str_radix(flags.trim(), 8).unwrap()
    }

    #[test]
    fn logs_are_read_without_access_time_updates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let created = without_atime(OpenOptions::new().create(true).truncate(true), &path).unwrap();
        assert_ne!(open_flags(&created) & libc::O_NOATIME, 0);
        let opened = open_log(&path).unwrap();
        assert_ne!(open_flags(&opened) & libc::O_NOATIME, 0);
        assert_eq!(open_flags(&opened) & libc::O_ACCMODE, libc::O_RDWR);
    }
}

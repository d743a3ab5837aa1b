//! Write-back pacing: starting the kernel's write-back of appended bytes
//! soon after they land, a little at a time, instead of leaving them dirty
//! until the flusher's 30 s expiry (`vm.dirty_expire_centisecs`).
//!
//! Left alone, a partition's dirty pages pile up and are written in bursts;
//! once dirty memory nears `vm.dirty_ratio` the kernel throttles whoever
//! writes next (`balance_dirty_pages`), and on the shard that is every
//! socket of the core. `sync_file_range(SYNC_FILE_RANGE_WRITE)` on each
//! full stretch behind the append point keeps the dirty set small and the
//! disk busy evenly, as RocksDB's `bytes_per_sync` does. It waits for no
//! completion and makes nothing durable (fsync still does that), but it
//! can block on a congested device queue, so it runs on the blocking
//! thread.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use super::PartitionLog;

/// Write-back starts at page boundaries only: the page the next append
/// lands in must not be under write-back, or that append could wait for it
/// (stable pages).
const PAGE_BYTES: u64 = 4096;

/// Where a log's write-back has been started: the active segment's base
/// and the position in its `.log` below which it was asked for. Open puts
/// it at the end: what an earlier run wrote is the kernel's to write back.
#[derive(Debug)]
pub(super) struct WritebackMark {
    started: (i64, u64),
    /// A [`Writeback`] is out; one at a time per log bounds the blocking
    /// thread's queue by the number of partitions.
    out: bool,
}

impl WritebackMark {
    /// Marked at the page holding `end`.
    pub(super) fn at(segment_base: i64, end: u64) -> Self {
        WritebackMark {
            started: (segment_base, end / PAGE_BYTES * PAGE_BYTES),
            out: false,
        }
    }
}

/// Work for the blocking thread: start write-back of one stretch of a
/// segment file.
pub struct Writeback {
    file: Arc<File>,
    from: u64,
    to: u64,
}

impl Writeback {
    pub fn bytes(&self) -> u64 {
        self.to - self.from
    }

    /// The stretch of the `.log` it writes back, `from..to`.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.from..self.to
    }

    pub fn run(&self) -> io::Result<()> {
        let (from, len) = (self.from as libc::off64_t, self.bytes() as libc::off64_t);
        // SAFETY: the descriptor is open while `self.file` lives; the call
        // reads no memory of ours.
        let rc = unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                from,
                len,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl PartitionLog {
    /// The write-back to start when at least `min_bytes` of whole pages of
    /// the active segment were appended since the last one; `None` when
    /// fewer were, when `min_bytes` is 0 (pacing off), or while one is out.
    /// Answer with [`Self::writeback_done`].
    pub fn take_writeback(&mut self, min_bytes: u64) -> Option<Writeback> {
        if min_bytes == 0 || self.writeback.out {
            return None;
        }
        let active = self.active();
        let (base, to) = (active.base_offset, active.size / PAGE_BYTES * PAGE_BYTES);
        let (marked_base, marked_to) = self.writeback.started;
        let from = if marked_base != base {
            // A segment rolled (or replaced) since: all of it is appends
            // of this run; the one before is the roll sync's to write.
            0
        } else if marked_to <= to {
            marked_to
        } else {
            // A truncation cut below the mark: start over from here.
            self.writeback.started = (base, to);
            return None;
        };
        if to - from < min_bytes {
            return None;
        }
        // Advice: a file the cache cannot reopen now is left to the
        // kernel's flusher.
        let file = self.active().file().ok()?;
        self.writeback = WritebackMark {
            started: (base, to),
            out: true,
        };
        Some(Writeback { file, from, to })
    }

    /// A [`Writeback`] came back (whatever its result: it is advice).
    pub fn writeback_done(&mut self) {
        assert!(self.writeback.out, "a write-back was out");
        self.writeback.out = false;
    }
}

//! Filling the page cache ahead of an active segment's appends
//! (`log_prefault_bytes`), so an append copies into pages that exist.
//!
//! A buffered append that reaches past the cached end of a file allocates
//! and zeroes new page-cache folios inside the write, on the shard thread.
//! On a VM whose balloon reports free memory to the host, a page's first
//! touch after that is also a hypervisor fault: 14.7 µs a page against
//! 1.4 µs for memory the guest reused (tuning/README.md), which made half
//! the appends of a 50 KB batch take 0.25-0.5 ms. A [`Prefault`] moves
//! that work to the shard's fill thread (`shard::prefault`): the segment's
//! file is made longer than its batches (a hole, trimmed at roll and close
//! as a preallocated tail is), and `readahead(2)` of the hole puts zeroed,
//! clean pages in the cache. The append then finds them. Reading never
//! changes the file, so a job that runs late (after more appends, a trim
//! or a truncation) does no harm; at worst it caches zeros past the end,
//! which the kernel drops.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// A window smaller than this is not filled: appends that small cross a
/// page boundary once every few appends, and a job for each few pages
/// would cost the fill thread more than the faults cost the shard.
const PREFAULT_WINDOW_MIN: u64 = 64 * 1024;

/// How many recent appends' worth of bytes a window holds, so an active
/// partition keeps room ahead and a trickle keeps none.
const WINDOW_APPENDS: u64 = 4;

/// How far ahead of its end a segment whose last append wrote
/// `last_write` bytes keeps the cache filled, at most `max`; `None` below
/// [`PREFAULT_WINDOW_MIN`].
pub fn window(last_write: u64, max: u64) -> Option<u64> {
    let window = last_write.saturating_mul(WINDOW_APPENDS).min(max);
    (window >= PREFAULT_WINDOW_MIN).then_some(window)
}

/// The part of a segment's file to bring into the page cache, for the
/// fill thread.
pub struct Prefault {
    file: Arc<File>,
    start: u64,
    len: u64,
}

impl Prefault {
    pub(super) fn new(file: Arc<File>, start: u64, len: u64) -> Prefault {
        assert!(len > 0, "a prefault covers something");
        Prefault { file, start, len }
    }

    /// Bytes it fills.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// The file positions it fills.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.start..self.start + self.len
    }

    /// `readahead(2)` of the range, a few pages per call: a hole's pages
    /// are zeroed into the cache right in the call; pages already cached
    /// are left alone.
    pub fn run(&self) -> io::Result<()> {
        let end = self.start + self.len;
        let mut pos = self.start;
        while pos < end {
            let len = (end - pos).min(PREFAULT_CALL_BYTES);
            readahead(&self.file, pos, len)?;
            pos += len;
        }
        Ok(())
    }
}

/// Bytes one `readahead` call fills. A kernel without preemption (a
/// common VM build) runs a call to its end, and on a VM each new page may
/// be a hypervisor fault of ~15 µs: small calls keep that short for
/// whoever waits for the CPU.
const PREFAULT_CALL_BYTES: u64 = 16 * 1024;

fn readahead(file: &File, pos: u64, len: u64) -> io::Result<()> {
    let offset = libc::off64_t::try_from(pos).map_err(io::Error::other)?;
    let len = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: a plain syscall on an fd the caller keeps open.
    let rc = unsafe { libc::readahead(file.as_raw_fd(), offset, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `statfs(2)`'s `f_type` of XFS.
const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

/// The filesystem holding `dir`, if it is one whose extending `ftruncate`
/// writes back, and waits for, the file's dirty pages past its on-disk
/// size: XFS does (`xfs_setattr_size`, so that a crash cannot expose
/// unwritten blocks inside the new size), holding the inode's I/O lock.
/// For an active segment that is every append since the last write-back,
/// so each window move held the shard for as long as the disk took:
/// 250-1,000 ms on a 2-vCPU VM at 50k msg/s (tuning/README.md). ext4 only
/// sets the size.
pub fn extension_writes_back(dir: &Path) -> io::Result<Option<&'static str>> {
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: statfs fills a plain-old-data struct, zeroed here, through a
    // valid exclusive pointer; the path is NUL-terminated.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut fs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // `f_type` is an `i64` on x86-64 and narrower on other targets.
    #[allow(clippy::useless_conversion)]
    Ok(writes_back(i64::from(fs.f_type)))
}

fn writes_back(f_type: i64) -> Option<&'static str> {
    (f_type == XFS_SUPER_MAGIC).then_some("xfs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_follows_the_appends_within_its_bounds() {
        let max = 1 << 20;
        assert_eq!(window(1024, max), None, "a trickle keeps no window");
        assert_eq!(window(16 * 1024, max), Some(64 * 1024));
        assert_eq!(window(50_000, max), Some(200_000));
        assert_eq!(window(1 << 20, max), Some(max), "capped");
        assert_eq!(window(1 << 20, 0), None, "off");
    }

    #[test]
    fn only_xfs_writes_back_at_an_extension() {
        const EXT4_SUPER_MAGIC: i64 = 0xEF53;
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        assert_eq!(writes_back(XFS_SUPER_MAGIC), Some("xfs"));
        assert_eq!(writes_back(EXT4_SUPER_MAGIC), None);
        assert_eq!(writes_back(TMPFS_MAGIC), None);
        assert!(extension_writes_back(Path::new(".")).is_ok());
        assert!(extension_writes_back(Path::new("/no such dir")).is_err());
    }
}

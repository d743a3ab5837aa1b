//! Positioned writes to a regular file through the shard's io_uring, so a
//! write the kernel throttles waits in the kernel, not on the shard thread.
//!
//! A filesystem that cannot take a buffered write without blocking (ext4
//! here) makes io_uring hand it to one of its kernel workers, which run
//! writes to one file in order and to different files side by side.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

use glommio::io::BufferedFile;

/// Writes `bytes` to `file` at `pos`. The caller keeps `file` open; the
/// ring gets a duplicate descriptor of its own, closed through the ring
/// once the write is done.
///
/// A short write is an error: the ring took the buffer, so the rest cannot
/// be tried again from here, and a regular file writes short only when it
/// cannot take more (a full disk, a size limit), which a retry would meet
/// too. The caller cuts back what landed.
pub async fn write_at(file: &File, bytes: Vec<u8>, pos: u64) -> io::Result<()> {
    // SAFETY: dup on a descriptor `file` keeps open; the result is checked.
    let fd = unsafe { libc::dup(file.as_raw_fd()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is ours alone; the BufferedFile owns and closes it.
    let ring_file = unsafe { BufferedFile::from_raw_fd(fd) };
    let len = bytes.len();
    let written = match ring_file.write_at(bytes, pos).await {
        Ok(n) if n == len => Ok(()),
        Ok(n) => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of {len} bytes"),
        )),
        Err(e) => Err(io::Error::from(e)),
    };
    // The close only drops our duplicate; the write's outcome is what counts.
    let _ = ring_file.close().await;
    written
}

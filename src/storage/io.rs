//! Positioned and atomic file I/O helpers (synchronous, page cache).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// iovecs per pwritev call, well below Linux's IOV_MAX of 1024.
const IOVECS_PER_CALL_MAX: usize = 512;
/// Suffix of files being written atomically; leftovers are removed at open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Writes all of `bufs`, in order, at `pos` with pwritev, retrying partial
/// writes and interrupts. Nothing is copied.
pub(crate) fn pwrite_all(file: &File, mut pos: u64, bufs: &[&[u8]]) -> io::Result<()> {
    let mut index = 0;
    let mut skip = 0;
    loop {
        while index < bufs.len() && bufs[index].len() == skip {
            index += 1;
            skip = 0;
        }
        if index == bufs.len() {
            return Ok(());
        }
        let end = (index + IOVECS_PER_CALL_MAX).min(bufs.len());
        let iovecs: Vec<libc::iovec> = bufs[index..end]
            .iter()
            .enumerate()
            .map(|(i, buf)| {
                let buf = if i == 0 { &buf[skip..] } else { buf };
                libc::iovec {
                    iov_base: buf.as_ptr() as *mut libc::c_void,
                    iov_len: buf.len(),
                }
            })
            .collect();
        let offset = libc::off_t::try_from(pos).map_err(|_| io::Error::other("offset overflow"))?;
        // SAFETY: every iovec points into a slice borrowed from `bufs`, alive
        // and unmodified for the duration of the call; the count matches the
        // vector's length (at most IOVECS_PER_CALL_MAX, fits in c_int).
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iovecs.as_ptr(),
                iovecs.len() as libc::c_int,
                offset,
            )
        };
        if written < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        pos += written as u64;
        let mut left = written as usize;
        while left > 0 {
            let avail = bufs[index].len() - skip;
            if left >= avail {
                left -= avail;
                index += 1;
                skip = 0;
            } else {
                skip += left;
                left = 0;
            }
        }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("a file path").to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

/// Replaces `path` with `bytes` atomically: write a temporary file, fsync it,
/// rename it over `path`. On failure (a full disk) `path` keeps its old
/// contents and the temporary file is gone, giving its space back.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_via_tmp(path, bytes, true)
}

/// Replaces `path` with `bytes` by rename, without fsync: for files that
/// recovery checks and rebuilds when a crash leaves them short (indexes).
/// Fails as [`write_atomic`] does.
pub(crate) fn write_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_via_tmp(path, bytes, false)
}

fn write_via_tmp(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let tmp = tmp_path(path);
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        if sync {
            file.sync_data()?;
        }
        Ok(())
    });
    let result = written.and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        // Best effort: the error that matters is the write's, and open
        // removes any leftover temporary file.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` over `path` where it stands (created if missing), without
/// fsync: no temporary inode, rename or freed inode, which a stop of many
/// partitions paid per file (a rename over a file also starts ext4's
/// write-back of the new one there and then; on ext4 without a journal,
/// an inode freed makes every later creation slower for minutes).
/// A crash can leave the file part old, part new, so only for a file whose
/// reader takes that: one no open trusts unless a clean-shutdown marker
/// written after a filesystem sync says it is whole (the active segment's
/// indexes), one written so that a torn copy reads as a safe value (a
/// stop's recovery point), or one its reader checks and can do without (a
/// producer snapshot, with its CRC and an older one kept).
pub(crate) fn overwrite_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    file.write_all_at(bytes, 0)?;
    let len = bytes.len() as u64;
    if file.metadata()?.len() > len {
        file.set_len(len)?;
    }
    Ok(())
}

/// Whether `err` says the filesystem has no room left (ENOSPC, or the
/// quota's EDQUOT): an operating condition that passes when space returns,
/// unlike an I/O error.
pub(crate) fn is_out_of_space(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Whether `dir` is still the directory a log opened as inode `ino`. A
/// partition deleted meanwhile (renamed away) fails this, and so does one
/// recreated at the same path, whose files work prepared for the old one
/// must not touch.
pub(crate) fn same_dir(dir: &Path, ino: u64) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    match fs::metadata(dir) {
        Ok(m) => Ok(m.ino() == ino),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// fsyncs a directory so renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A file's modification time in ms since the epoch, by path (a stat needs
/// no open file). Times before the epoch read as 0.
pub(crate) fn modified_ms(path: &Path) -> io::Result<i64> {
    let modified = fs::metadata(path)?.modified()?;
    let since = modified
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_write_many_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let pieces: Vec<Vec<u8>> = (0..1500u32)
            .map(|i| vec![i as u8; (i % 3) as usize])
            .collect();
        let refs: Vec<&[u8]> = pieces.iter().map(|p| p.as_slice()).collect();
        pwrite_all(&file, 5, &refs).unwrap();
        let got = fs::read(dir.path().join("f")).unwrap();
        assert_eq!(&got[5..], pieces.concat().as_slice());
    }

    /// The file holds exactly the new bytes, shorter or longer than the
    /// old, in the same inode.
    #[test]
    fn an_overwrite_in_place_leaves_only_the_new_bytes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        overwrite_in_place(&path, b"first version").unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        for bytes in [&b"longer second version"[..], b"short", b""] {
            overwrite_in_place(&path, bytes).unwrap();
            assert_eq!(fs::read(&path).unwrap(), bytes);
            assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
        }
    }

    #[test]
    fn a_write_on_a_full_disk_keeps_the_old_file_and_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        write_atomic(&path, b"old").unwrap();
        for write in [write_atomic, write_replacing] {
            // /dev/full answers every write with ENOSPC.
            std::os::unix::fs::symlink("/dev/full", tmp_path(&path)).unwrap();
            let err = write(&path, b"new").unwrap_err();
            assert!(is_out_of_space(&err), "{err}");
            assert!(
                fs::symlink_metadata(tmp_path(&path)).is_err(),
                "the temporary file is removed"
            );
            assert_eq!(fs::read(&path).unwrap(), b"old");
        }
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!tmp_path(&path).exists());
    }
}

//! Which filesystem the brokers the harness starts keep their data on
//! (the temporary directory's): a broker's tail latency and its stop time
//! depend on it as much as on the broker (tuning/README.md, "Disks"), so
//! results name it, and how much room it had: a filesystem near full
//! makes writers wait.

use std::path::{Path, PathBuf};

use crate::stats::gib;

/// `<type> on <mount point> (<options>), <N> GiB free` of the mount
/// holding `dir`, from `/proc/self/mounts` and `statvfs`; `None` if the
/// mounts cannot be read.
pub fn describe(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let m = mount_of(&mounts, &dir)?;
    let free = free_bytes(&dir)
        .map(|b| format!(", {:.1} GiB free", gib(b)))
        .unwrap_or_default();
    Some(format!(
        "{} on {} ({}){free}",
        m.fs_type,
        m.point.display(),
        m.options
    ))
}

/// Bytes an unprivileged writer may still put on `dir`'s filesystem.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: statvfs fills the zeroed struct; the path is NUL-terminated.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        st
    };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// A warning when a run plans to write more than half of what its
/// brokers' filesystem has free. XFS reserves blocks past the end of a
/// growing file (speculative preallocation: 52 GB in use for 30 GB of
/// segments in one ten-minute run), and a filesystem near full makes an
/// append wait while it flushes every file to reclaim them
/// (tuning/README.md, "Disks"), so such a run measures the disk's room,
/// not the broker.
pub fn crowding(planned: u64, free: u64) -> Option<String> {
    (planned > free / 2).then(|| {
        format!(
            "this run writes about {:.1} GiB where the brokers keep their data, \
             which has {:.1} GiB free: past half of it, a filesystem near full \
             (XFS's preallocation counts) makes appends wait, and the tail \
             measures that",
            gib(planned),
            gib(free)
        )
    })
}

/// Where the spawned brokers' data dirs go, described.
pub fn of_spawned() -> Option<String> {
    describe(&std::env::temp_dir())
}

#[derive(Debug, PartialEq)]
struct Mount<'a> {
    point: PathBuf,
    fs_type: &'a str,
    options: &'a str,
}

/// The mount holding `dir` (absolute, without symlinks): the longest
/// mount point above it, the later of two at the same point (the one on
/// top).
fn mount_of<'a>(mounts: &'a str, dir: &Path) -> Option<Mount<'a>> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (_device, point, fs_type, options) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            let point = PathBuf::from(unescape(point));
            dir.starts_with(&point).then_some(Mount {
                point,
                fs_type,
                options,
            })
        })
        .max_by_key(|m| m.point.as_os_str().len())
}

/// The kernel writes a space, tab, newline or backslash in a mount point
/// as a three-digit octal escape (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "/dev/vda / ext4 rw,relatime,discard 0 0\n\
        proc /proc proc rw,nosuid 0 0\n\
        /dev/loop0 /mnt/xfs xfs rw,relatime,inode64 0 0\n\
        tmpfs /mnt/xfs tmpfs rw 0 0\n\
        /dev/loop1 /mnt/with\\040space ext4 rw 0 0\n";

    #[test]
    fn the_deepest_mount_above_a_dir_holds_it() {
        let root = mount_of(MOUNTS, Path::new("/tmp/sluice-bench-1")).unwrap();
        assert_eq!(
            (root.fs_type, root.options),
            ("ext4", "rw,relatime,discard")
        );
        let xfs = mount_of(MOUNTS, Path::new("/mnt/xfsother")).unwrap();
        assert_eq!(xfs.fs_type, "ext4", "a prefix of a name is not a parent");
        let spaced = mount_of(MOUNTS, Path::new("/mnt/with space/d")).unwrap();
        assert_eq!(spaced.point, Path::new("/mnt/with space"));
    }

    #[test]
    fn the_mount_on_top_wins() {
        let top = mount_of(MOUNTS, Path::new("/mnt/xfs/d")).unwrap();
        assert_eq!(top.fs_type, "tmpfs");
    }

    #[test]
    fn a_run_that_would_fill_half_the_room_is_named() {
        assert_eq!(crowding(10, 20), None);
        let warning = crowding(11, 20).expect("more than half");
        assert!(warning.contains("0.0 GiB free"), "{warning}");
        assert!(free_bytes(Path::new("/")).is_ok());
        assert!(free_bytes(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn escapes_are_undone_and_stray_backslashes_kept() {
        assert_eq!(unescape("a\\040b\\011c"), "a b\tc");
        assert_eq!(unescape("a\\b"), "a\\b");
        assert_eq!(unescape("end\\04"), "end\\04");
    }
}

//! Keeping the broker's code in memory (`lock_code`).
//!
//! Why: the kernel may evict any clean file page, and a program's code is
//! clean file pages: under memory pressure, or on a host that pages out
//! memory nobody touched for a while (DAMON's `pageout` scheme, on some
//! VMs), the broker's rarely run paths (an error reply, a segment roll, a
//! rebalance) leave memory, and the next time one runs the shard thread
//! waits for it to be read back, from a disk that is busy with the log's
//! write-back. Locking the executable's and its libraries' mappings keeps
//! every page of them resident for the life of the process. (Insurance:
//! in ten-minute runs at 50k msg/s on a VM with DAMON's pageout on, no
//! broker thread took a major fault without it.)
//!
//! Only the mappings of files that hold code are locked (the program and
//! its shared libraries: their code, read-only data and unwind tables),
//! not the heap: there is nothing to page anonymous memory out to without
//! swap, and locking it all (`mlockall`) would count the lazy allocator's
//! address space ([`crate::alloc`]) against `RLIMIT_MEMLOCK`. Libraries
//! loaded later (`dlopen`) are not locked.

use std::collections::BTreeSet;
use std::ops::Range;

/// What [`lock_code`] locked.
#[derive(Debug)]
pub struct Locked {
    pub mappings: usize,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CodeLockError {
    #[error("reading /proc/self/maps: {0}")]
    Maps(std::io::Error),
    #[error(
        "locking {bytes} bytes of {path} in memory: {source} (RLIMIT_MEMLOCK, \
         systemd's LimitMEMLOCK=, must allow the program's and its libraries' \
         size, or the process needs CAP_IPC_LOCK)"
    )]
    Lock {
        path: String,
        bytes: u64,
        source: std::io::Error,
    },
}

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone)]
struct Mapping {
    range: Range<usize>,
    writable: bool,
    executable: bool,
    /// The mapped file; none for anonymous and kernel mappings.
    path: Option<String>,
}

fn parse_mapping(line: &str) -> Option<Mapping> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?.as_bytes();
    // A file's path is the rest of the line from its first '/' (it may hold
    // spaces); the fields before it (offset, device, inode) hold none.
    let path = line.find('/').map(|at| line[at..].to_string());
    Some(Mapping {
        range: usize::from_str_radix(start, 16).ok()?..usize::from_str_radix(end, 16).ok()?,
        writable: perms.get(1) == Some(&b'w'),
        executable: perms.get(2) == Some(&b'x'),
        path,
    })
}

/// The read-only mappings of every file that has code mapped: writable
/// ones are the file's data, copied on write into anonymous memory.
fn code_mappings(maps: &str) -> Vec<Mapping> {
    let mappings: Vec<Mapping> = maps.lines().filter_map(parse_mapping).collect();
    let code_files: BTreeSet<&str> = mappings
        .iter()
        .filter(|m| m.executable)
        .filter_map(|m| m.path.as_deref())
        .collect();
    mappings
        .iter()
        .filter(|m| !m.writable)
        .filter(|m| m.path.as_deref().is_some_and(|p| code_files.contains(p)))
        .cloned()
        .collect()
}

/// Locks the pages of the program's and its libraries' files in memory,
/// reading in any not yet resident.
pub fn lock_code() -> Result<Locked, CodeLockError> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(CodeLockError::Maps)?;
    let mut locked = Locked {
        mappings: 0,
        bytes: 0,
    };
    for m in code_mappings(&maps) {
        let len = m.range.end - m.range.start;
        // SAFETY: mlock changes no memory; the range is a mapping of this
        // process, which keeps its libraries mapped for its life.
        if unsafe { libc::mlock(m.range.start as *const libc::c_void, len) } != 0 {
            return Err(CodeLockError::Lock {
                path: m.path.unwrap_or_default(),
                bytes: len as u64,
                source: std::io::Error::last_os_error(),
            });
        }
        locked.mappings += 1;
        locked.bytes += len as u64;
    }
    Ok(locked)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
5601eaa34000-5601eac64000 r--p 00000000 fe:00 5309074                    /opt/sluice/bin/sluice
5601eac64000-5601eb6d9000 r-xp 0022f000 fe:00 5309074                    /opt/sluice/bin/sluice
5601eb713000-5601eb71a000 rw-p 00cdc000 fe:00 5309074                    /opt/sluice/bin/sluice
5601ecf00000-5601ecf21000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000100000 r--p 00000000 fe:00 1111                       /usr/lib/locale/locale-archive
7f0000200000-7f0000228000 r--p 00000000 fe:00 2222                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000228000-7f00003bd000 r-xp 00028000 fe:00 2222                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000400000-7f0000500000 rw-s 00000000 fe:00 3333                       /data/dir with space/x
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
";

    #[test]
    fn code_files_are_locked_read_only_and_whole() {
        let mappings = code_mappings(MAPS);
        let got: Vec<(usize, &str)> = mappings
            .iter()
            .map(|m| (m.range.start, m.path.as_deref().unwrap()))
            .map(|(start, path)| (start, path.rsplit('/').next().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (0x5601eaa34000, "sluice"),
                (0x5601eac64000, "sluice"),
                (0x7f0000200000, "libc.so.6"),
                (0x7f0000228000, "libc.so.6"),
            ]
        );
    }

    #[test]
    fn a_path_with_spaces_is_kept_whole() {
        let m = parse_mapping(
            "7f0000400000-7f0000500000 rw-s 00000000 fe:00 3333   /data/dir with space/x",
        )
        .unwrap();
        assert_eq!(m.path.as_deref(), Some("/data/dir with space/x"));
        assert!(m.writable && !m.executable);
        assert_eq!(m.range, 0x7f0000400000..0x7f0000500000);
    }
}

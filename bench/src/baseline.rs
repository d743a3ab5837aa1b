//! The machine's physical limits, measured the same way every time, so broker
//! results can be read against them: one TCP stream over loopback, and
//! sequential appends to a directory (page cache, then fdatasync per block).
//!
//! Page-cache appends are reported twice: over the whole run, and over its
//! second half. On a VM whose freed memory goes back to the host, or once
//! write-back starts, the rate can fall by half after the first few GiB; a
//! broker's sustained ingest is bounded by the second figure, not the first.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::datasets::SplitMix64;
use crate::report::Table;
use crate::stats::mib;

const TCP_CHUNK_BYTES: usize = 256 * 1024;
pub const DISK_BLOCK_BYTES: usize = 1024 * 1024;
/// Page-cache appends stop here by default even if time remains, to bound
/// disk use ...
pub const DISK_BYTES_DEFAULT: u64 = 4 * 1024 * 1024 * 1024;
/// The cap when the sustained rate is the point (`ingest`): enough for
/// write-back to set the pace in a 10 s run.
pub const DISK_BYTES_MAX_SUSTAINED: u64 = 16 * 1024 * 1024 * 1024;
/// ... and never take more than this share of the filesystem's free space.
const DISK_FREE_SHARE_MAX: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// One stream, 127.0.0.1 to 127.0.0.1, MiB/s.
    pub loopback_tcp_mb: f64,
    /// Directory whose filesystem was measured.
    pub disk_dir: String,
    /// Appends of `disk_block_bytes` without syncing, MiB/s.
    pub disk_append_page_cache_mb: f64,
    /// The same over the second half of the run's time: what is sustained.
    #[serde(default)]
    pub disk_append_page_cache_tail_mb: f64,
    /// Bytes the page-cache run wrote (it stops at its cap or its time).
    #[serde(default)]
    pub disk_append_page_cache_bytes: u64,
    /// The same with fdatasync after every block, MiB/s.
    pub disk_append_fdatasync_mb: f64,
    pub disk_block_bytes: usize,
    /// How long each measurement ran.
    pub secs_each: f64,
}

impl Baseline {
    pub fn table(&self) -> Table {
        let rows = [
            ("loopback TCP, one stream", self.loopback_tcp_mb),
            (
                "sequential append, page cache",
                self.disk_append_page_cache_mb,
            ),
            (
                "  the same, second half of the run",
                self.disk_append_page_cache_tail_mb,
            ),
            (
                "sequential append + fdatasync per block",
                self.disk_append_fdatasync_mb,
            ),
        ];
        Table {
            header: vec!["baseline".into(), "MB/s".into()],
            rows: rows
                .iter()
                .map(|(k, v)| vec![k.to_string(), format!("{v:.0}")])
                .collect(),
        }
    }
}

/// Measures all baselines, `secs` each; disk tests write under `dir`, at
/// most `disk_bytes` (and half the free space).
pub fn measure(dir: &Path, secs: f64, disk_bytes: u64) -> Result<Baseline> {
    let d = Duration::from_secs_f64(secs);
    let tcp = loopback_tcp(d).context("loopback TCP baseline")?;
    let cap = disk_bytes
        .min(free_share(dir)?)
        .max(DISK_BLOCK_BYTES as u64);
    let cached = disk_append(dir, d, false, cap).context("disk baseline")?;
    let synced = disk_append(dir, d, true, cap).context("disk baseline")?;
    Ok(Baseline {
        loopback_tcp_mb: mib(tcp),
        disk_dir: dir.display().to_string(),
        disk_append_page_cache_mb: mib(cached.rate()),
        disk_append_page_cache_tail_mb: mib(cached.tail_rate()),
        disk_append_page_cache_bytes: cached.bytes,
        disk_append_fdatasync_mb: mib(synced.rate()),
        disk_block_bytes: DISK_BLOCK_BYTES,
        secs_each: secs,
    })
}

/// `DISK_FREE_SHARE_MAX` of the free space of `dir`'s filesystem, bytes.
fn free_share(dir: &Path) -> Result<u64> {
    let free =
        crate::data_fs::free_bytes(dir).with_context(|| format!("statvfs {}", dir.display()))?;
    Ok((free as f64 * DISK_FREE_SHARE_MAX) as u64)
}

/// What one append run did.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub bytes: u64,
    pub secs: f64,
    /// Bytes written and seconds spent in the second half of the time.
    tail_bytes: u64,
    tail_secs: f64,
}

impl Appended {
    pub fn rate(&self) -> f64 {
        self.bytes as f64 / self.secs.max(1e-9)
    }

    pub fn tail_rate(&self) -> f64 {
        self.tail_bytes as f64 / self.tail_secs.max(1e-9)
    }
}

/// Bytes per second through one loopback TCP connection, as seen by the
/// receiver (first byte to EOF).
pub fn loopback_tcp(duration: Duration) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = std::thread::spawn(move || -> std::io::Result<(u64, Duration)> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; TCP_CHUNK_BYTES];
        let mut total = 0u64;
        let mut first: Option<Instant> = None;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            first.get_or_insert_with(Instant::now);
            total += n as u64;
        }
        Ok((total, first.map_or(Duration::ZERO, |f| f.elapsed())))
    });
    let mut s = TcpStream::connect(addr)?;
    let mut buf = vec![0u8; TCP_CHUNK_BYTES];
    SplitMix64::new(1).fill(&mut buf);
    let start = Instant::now();
    while start.elapsed() < duration {
        s.write_all(&buf)?;
    }
    s.shutdown(Shutdown::Write)?;
    let (bytes, took) = receiver.join().expect("receiver thread panicked")?;
    Ok(bytes as f64 / took.as_secs_f64().max(1e-9))
}

/// Appends sequentially to a fresh file in `dir` for `duration` or `cap`
/// bytes, whichever comes first.
pub fn disk_append(dir: &Path, duration: Duration, fdatasync: bool, cap: u64) -> Result<Appended> {
    let path = dir.join(format!(".sluice-bench-baseline-{}", std::process::id()));
    let result = append_to(&path, duration, fdatasync, cap);
    let _ = std::fs::remove_file(&path);
    result
}

fn append_to(path: &Path, duration: Duration, fdatasync: bool, cap: u64) -> Result<Appended> {
    let mut f: File = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut block = vec![0u8; DISK_BLOCK_BYTES];
    SplitMix64::new(2).fill(&mut block);
    let start = Instant::now();
    let mut written = 0u64;
    // Where the second half of the time began: (seconds, bytes by then).
    let mut half: Option<(f64, u64)> = None;
    while start.elapsed() < duration && written < cap {
        // Marked before the write, so the second half holds at least the
        // write that follows: marked after it, one write slower than the
        // run (a loaded machine, a short run) left the second half empty
        // and its rate 0.
        if half.is_none() && start.elapsed() >= duration / 2 {
            half = Some((start.elapsed().as_secs_f64(), written));
        }
        f.write_all(&block)?;
        if fdatasync {
            f.sync_data()?;
        }
        written += block.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    // A run that hit its cap early has no second half of time: use the
    // second half of its bytes' time instead, which is all it measured.
    let (half_secs, half_bytes) = half.unwrap_or((secs / 2.0, written / 2));
    Ok(Appended {
        bytes: written,
        secs,
        tail_bytes: written - half_bytes,
        tail_secs: secs - half_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_measure_something_and_clean_up() {
        let dir = std::env::temp_dir();
        let b = measure(&dir, 0.05, DISK_BYTES_DEFAULT).unwrap();
        assert!(b.loopback_tcp_mb > 0.0);
        assert!(b.disk_append_page_cache_mb > 0.0);
        assert!(b.disk_append_page_cache_tail_mb > 0.0);
        assert!(b.disk_append_fdatasync_mb > 0.0);
        let leftover = dir.join(format!(".sluice-bench-baseline-{}", std::process::id()));
        assert!(!leftover.exists());
        assert_eq!(b.table().rows.len(), 4);
    }

    #[test]
    fn the_byte_cap_stops_an_append_run() {
        let dir = std::env::temp_dir();
        let cap = 4 * DISK_BLOCK_BYTES as u64;
        let a = disk_append(&dir, Duration::from_secs(60), false, cap).unwrap();
        assert_eq!(a.bytes, cap);
        assert!(a.tail_rate() > 0.0);
    }
}

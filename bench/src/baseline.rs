//! The machine's physical limits, measured the same way every time, so broker
//! results can be read against them: one TCP stream over loopback, and
//! sequential appends to a directory (page cache, then fdatasync per block).

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
/// Page-cache appends stop here even if time remains, to bound disk use.
const DISK_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// One stream, 127.0.0.1 to 127.0.0.1, MiB/s.
    pub loopback_tcp_mb: f64,
    /// Directory whose filesystem was measured.
    pub disk_dir: String,
    /// Appends of `disk_block_bytes` without syncing, MiB/s.
    pub disk_append_page_cache_mb: f64,
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

/// Measures all baselines, `secs` each; disk tests write under `dir`.
pub fn measure(dir: &Path, secs: f64) -> Result<Baseline> {
    let d = Duration::from_secs_f64(secs);
    Ok(Baseline {
        loopback_tcp_mb: mib(loopback_tcp(d).context("loopback TCP baseline")?),
        disk_dir: dir.display().to_string(),
        disk_append_page_cache_mb: mib(disk_append(dir, d, false).context("disk baseline")?),
        disk_append_fdatasync_mb: mib(disk_append(dir, d, true).context("disk baseline")?),
        disk_block_bytes: DISK_BLOCK_BYTES,
        secs_each: secs,
    })
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

/// Bytes per second appended sequentially to a fresh file in `dir`.
pub fn disk_append(dir: &Path, duration: Duration, fdatasync: bool) -> Result<f64> {
    let path = dir.join(format!(".sluice-bench-baseline-{}", std::process::id()));
    let result = append_to(&path, duration, fdatasync);
    let _ = std::fs::remove_file(&path);
    result
}

fn append_to(path: &Path, duration: Duration, fdatasync: bool) -> Result<f64> {
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
    while start.elapsed() < duration && written < DISK_BYTES_MAX {
        f.write_all(&block)?;
        if fdatasync {
            f.sync_data()?;
        }
        written += block.len() as u64;
    }
    Ok(written as f64 / start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_measure_something_and_clean_up() {
        let dir = std::env::temp_dir();
        let b = measure(&dir, 0.05).unwrap();
        assert!(b.loopback_tcp_mb > 0.0);
        assert!(b.disk_append_page_cache_mb > 0.0);
        assert!(b.disk_append_fdatasync_mb > 0.0);
        let leftover = dir.join(format!(".sluice-bench-baseline-{}", std::process::id()));
        assert!(!leftover.exists());
        assert_eq!(b.table().rows.len(), 3);
    }
}

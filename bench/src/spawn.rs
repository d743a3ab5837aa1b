//! `--spawn`: a local `sluice` with a throw-away data dir, and its resource
//! use read from /proc.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

/// How long the broker may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long SIGTERM may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// What a broker prints once it serves; the floor prints it too.
pub const READY_PREFIX: &str = "sluice listening on ";
/// Printed before the ready line when `--metrics-listen` is given.
const METRICS_PREFIX: &str = "sluice metrics on ";

/// The spawned broker's pid, so the watchdog can kill it before exiting.
pub static SPAWNED_PID: AtomicI32 = AtomicI32::new(0);

/// Broker-side resource use, read from /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// User plus system CPU seconds.
    pub cpu_seconds: f64,
    /// Peak resident set (VmHWM), MiB.
    pub peak_rss_mb: f64,
}

pub struct SpawnedBroker {
    child: Child,
    pub addr: String,
    /// Its `/metrics` endpoint, for the per-stage histograms.
    pub metrics: Option<String>,
    /// Removed when the broker stops; the floor has none.
    data_dir: Option<PathBuf>,
}

/// The `sluice` binary: `explicit`, else next to this executable (or one
/// directory up, for test binaries in `target/*/deps`), else from `PATH`.
pub fn find_broker_bin(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("sluice");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("sluice")
}

/// Runs `cmd` at nice level `nice`. Set before exec, so that every thread
/// the broker starts inherits it (Linux keeps a nice level per thread, and
/// `setpriority` on a running process reaches only its main thread).
fn at_nice(cmd: &mut Command, nice: i32) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setpriority is async-signal-safe and touches no memory of
    // the parent, as a pre_exec hook must.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpriority(libc::PRIO_PROCESS, 0, nice) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

impl SpawnedBroker {
    /// Starts `bin serve` on a free loopback port; its stderr goes to `log`.
    pub fn start(
        bin: &Path,
        shards: Option<usize>,
        nice: Option<i32>,
        log: &Path,
    ) -> Result<SpawnedBroker> {
        let data_dir = std::env::temp_dir().join(format!(
            "sluice-bench-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&data_dir)?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(&data_dir);
        if let Some(n) = shards {
            cmd.args(["--shards", &n.to_string()]);
        }
        if let Some(n) = nice {
            at_nice(&mut cmd, n);
        }
        SpawnedBroker::launch(cmd, Some(data_dir), log)
            .with_context(|| format!("starting broker {} (use --broker-bin)", bin.display()))
    }

    /// Starts this executable's in-memory floor broker (see `floor`) on a
    /// free loopback port.
    pub fn start_floor(nice: Option<i32>, log: &Path) -> Result<SpawnedBroker> {
        let exe = std::env::current_exe().context("finding sluice-bench itself")?;
        let mut cmd = Command::new(exe);
        cmd.args(["floor-broker", "--listen", "127.0.0.1:0"]);
        if let Some(n) = nice {
            at_nice(&mut cmd, n);
        }
        SpawnedBroker::launch(cmd, None, log).context("starting the floor broker")
    }

    /// Runs `cmd` (stderr to `log`) and waits for its ready line.
    fn launch(mut cmd: Command, data_dir: Option<PathBuf>, log: &Path) -> Result<SpawnedBroker> {
        let remove_data = |d: &Option<PathBuf>| {
            if let Some(d) = d {
                let _ = std::fs::remove_dir_all(d);
            }
        };
        let stderr = match File::create(log) {
            Ok(f) => f,
            Err(e) => {
                remove_data(&data_dir);
                return Err(e).with_context(|| format!("creating {}", log.display()));
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                remove_data(&data_dir);
                bail!("cannot run {:?}: {e}", cmd.get_program());
            }
        };
        SPAWNED_PID.store(child.id() as i32, Relaxed);
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining stdout after the ready line so the broker never
            // blocks on a full pipe.
            let mut metrics = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix(METRICS_PREFIX) {
                    metrics = Some(addr.trim().to_string());
                }
                if let Some(addr) = line.strip_prefix(READY_PREFIX) {
                    let _ = tx.send((addr.trim().to_string(), metrics.take()));
                }
            }
        });
        let mut broker = SpawnedBroker {
            child,
            addr: String::new(),
            metrics: None,
            data_dir,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok((addr, metrics)) => (broker.addr, broker.metrics) = (addr, metrics),
            Err(_) => {
                let status = broker.child.try_wait()?;
                let tail = log_tail(log);
                bail!(
                    "{:?} did not print {READY_PREFIX:?} within {}s (exit status {status:?}); log tail:\n{tail}",
                    cmd.get_program(),
                    START_TIMEOUT.as_secs()
                );
            }
        }
        Ok(broker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; removes the data dir.
    pub fn stop(mut self) -> Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_none() {
            // SAFETY: kill(2) on the pid of a child we have not yet reaped,
            // so the pid cannot have been reused.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_TIMEOUT;
            while self.child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    self.child.kill()?;
                    self.child.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        SPAWNED_PID.store(0, Relaxed);
        if let Some(d) = &self.data_dir {
            let _ = std::fs::remove_dir_all(d);
        }
        Ok(())
    }
}

impl Drop for SpawnedBroker {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// CPU seconds (utime + stime) and VmHWM of a live process.
pub fn read_usage(pid: u32) -> Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(Usage {
        cpu_seconds: parse_cpu_ticks(&stat).context("parsing /proc/PID/stat")? as f64 / ticks,
        peak_rss_mb: parse_vm_hwm_kb(&status).context("parsing /proc/PID/status")? as f64 / 1024.0,
    })
}

/// [`read_usage`] summed over `pids` (a cluster's brokers); `None` when
/// there are none or one cannot be read, rather than a partial sum.
pub fn read_usage_sum(pids: &[u32]) -> Option<Usage> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(Usage::default(), |sum, &pid| {
        let u = read_usage(pid).ok()?;
        Some(Usage {
            cpu_seconds: sum.cpu_seconds + u.cpu_seconds,
            peak_rss_mb: sum.peak_rss_mb + u.peak_rss_mb,
        })
    })
}

/// The fields of /proc/PID/stat from field 3 (state) on: counted after the
/// `)` that ends the command name, which may itself contain spaces.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

/// utime + stime (fields 14 and 15) from /proc/PID/stat.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let fields = stat_fields(stat)?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The nice level of a live process's main thread.
pub fn read_nice(pid: u32) -> Result<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_nice(&stat).context("parsing /proc/PID/stat")
}

/// The nice level (field 19) from /proc/PID/stat.
fn parse_nice(stat: &str) -> Option<i32> {
    stat_fields(stat)?.get(16)?.parse().ok()
}

fn parse_vm_hwm_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "1234 (a) b c) S 1 1 1 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 4 0 1 1 1";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_nice(stat), Some(0));
        let reniced = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 -5 1";
        assert_eq!(parse_nice(reniced), Some(-5));
        assert_eq!(parse_vm_hwm_kb("Name:\tx\nVmHWM:\t  2048 kB\n"), Some(2048));
    }

    #[test]
    fn own_usage_is_readable() {
        let u = read_usage(std::process::id()).unwrap();
        assert!(u.peak_rss_mb > 0.0);
    }
}

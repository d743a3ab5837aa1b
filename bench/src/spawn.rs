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
    /// Removed when the broker stops; the in-memory floor has none.
    data_dir: Option<PathBuf>,
    /// How it was started, so [`SpawnedBroker::restart`] can start it
    /// again; the floor has none.
    serve: Option<Serve>,
}

/// A `sluice serve` to start.
#[derive(Debug, Clone)]
pub struct Serve {
    pub bin: PathBuf,
    pub shards: Option<usize>,
    pub nice: Option<i32>,
    /// The broker's open-file limit (soft and hard), to hold it to what an
    /// operator's `ulimit -n` would be; `None` inherits this process's.
    pub open_files_limit: Option<u64>,
}

/// What [`SpawnedBroker::restart`] took.
#[derive(Debug, Clone, Copy)]
pub struct Restarted {
    /// SIGTERM to exit.
    pub stop: Duration,
    /// Exec to the ready line.
    pub start: Duration,
    /// When the ready line was read.
    pub ready: Instant,
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

/// Runs `cmd` with `limit` as its soft and hard open-file limits, or with
/// this process's hard limit if that is lower (raising it takes
/// CAP_SYS_RESOURCE).
fn with_open_files_limit(cmd: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    let mut own = libc::rlimit {
        rlim_cur: 0,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: getrlimit writes one rlimit through a valid, exclusive
    // pointer; on failure `own` keeps an infinite hard limit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut own) };
    let limit = limit.min(own.rlim_max);
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit is async-signal-safe and reads only `rlimit`, a
    // copy owned by the hook.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Has the kernel send `cmd` SIGTERM when the harness dies first (killed,
/// or a test runner's timeout), so no run leaves a broker serving behind
/// it. The signal follows the thread that spawned the child; every broker
/// is started from the harness's main thread, which lives as long as the
/// harness.
fn dies_with_harness(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let harness = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory
    // of the parent, as a pre_exec hook must.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The harness may have died before the prctl took effect.
            if libc::getppid() != harness {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
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

/// A new, empty directory for a spawned broker's data; the broker's drop
/// removes it.
fn new_data_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "sluice-bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

impl SpawnedBroker {
    /// Starts `bin serve` on a free loopback port; its stderr goes to `log`.
    pub fn start(
        bin: &Path,
        shards: Option<usize>,
        nice: Option<i32>,
        log: &Path,
    ) -> Result<SpawnedBroker> {
        SpawnedBroker::serve(
            Serve {
                bin: bin.to_path_buf(),
                shards,
                nice,
                open_files_limit: None,
            },
            log,
        )
    }

    /// Starts `serve` on a free loopback port and a new data dir; its
    /// stderr goes to `log`.
    pub fn serve(serve: Serve, log: &Path) -> Result<SpawnedBroker> {
        let data_dir = new_data_dir()?;
        let cmd = serve_command(&serve, &data_dir);
        let mut broker = SpawnedBroker::launch(cmd, Some(data_dir), log).with_context(|| {
            format!("starting broker {} (use --broker-bin)", serve.bin.display())
        })?;
        broker.serve = Some(serve);
        Ok(broker)
    }

    /// Stops the broker with SIGTERM and starts it again on the same data
    /// dir and flags (on a new port), its stderr now to `log`. A broker
    /// that does not exit within `stop_timeout` fails the restart (and is
    /// killed when dropped): what it measures is a clean shutdown's.
    pub fn restart(&mut self, stop_timeout: Duration, log: &Path) -> Result<Restarted> {
        let serve = self
            .serve
            .clone()
            .context("only a spawned sluice restarts")?;
        let data_dir = self
            .data_dir
            .clone()
            .context("a spawned sluice has a data dir")?;
        let stopping = Instant::now();
        if !self.stop_within(stop_timeout)? {
            bail!("the broker did not exit within {stop_timeout:?} of SIGTERM");
        }
        let stop = stopping.elapsed();
        let starting = Instant::now();
        let mut started = SpawnedBroker::launch(serve_command(&serve, &data_dir), None, log)
            .context("starting the broker again")?;
        let ready = Instant::now();
        let start = ready - starting;
        // The started broker takes this one's place, data dir and flags.
        // Dropping this one, exited and without a data dir, stops nothing
        // and removes nothing, but clears the watchdog's pid.
        started.data_dir = self.data_dir.take();
        started.serve = self.serve.take();
        *self = started;
        SPAWNED_PID.store(self.child.id() as i32, Relaxed);
        Ok(Restarted { stop, start, ready })
    }

    /// Starts this executable's floor broker (see `floor`) on a free
    /// loopback port; with `disk`, writing to a new data dir.
    pub fn start_floor(nice: Option<i32>, disk: bool, log: &Path) -> Result<SpawnedBroker> {
        let exe = std::env::current_exe().context("finding sluice-bench itself")?;
        let mut cmd = Command::new(exe);
        cmd.args(["floor-broker", "--listen", "127.0.0.1:0"]);
        let data_dir = if disk {
            let dir = new_data_dir()?;
            cmd.arg("--log-dir").arg(&dir);
            Some(dir)
        } else {
            None
        };
        if let Some(n) = nice {
            at_nice(&mut cmd, n);
        }
        SpawnedBroker::launch(cmd, data_dir, log).context("starting the floor broker")
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
        dies_with_harness(&mut cmd);
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
            serve: None,
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

    /// [`Self::stop`], failing unless the broker exits within `timeout`
    /// of SIGTERM; how long it took.
    pub fn stop_timed(mut self, timeout: Duration) -> Result<Duration> {
        let stopping = Instant::now();
        let exited = self.stop_within(timeout)?;
        let took = stopping.elapsed();
        self.terminate()?;
        if !exited {
            bail!("the broker did not exit within {timeout:?} of SIGTERM");
        }
        Ok(took)
    }

    fn terminate(&mut self) -> Result<()> {
        if !self.stop_within(STOP_TIMEOUT)? {
            self.child.kill()?;
            self.child.wait()?;
        }
        SPAWNED_PID.store(0, Relaxed);
        if let Some(d) = &self.data_dir {
            let _ = std::fs::remove_dir_all(d);
        }
        Ok(())
    }

    /// SIGTERM, then waits up to `timeout`; whether the broker exited.
    fn stop_within(&mut self, timeout: Duration) -> Result<bool> {
        if self.child.try_wait()?.is_some() {
            return Ok(true);
        }
        // SAFETY: kill(2) on the pid of a child we have not yet reaped, so
        // the pid cannot have been reused.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(true)
    }
}

/// The `sluice serve` command line of `serve` on `data_dir`.
fn serve_command(serve: &Serve, data_dir: &Path) -> Command {
    let mut cmd = Command::new(&serve.bin);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(data_dir);
    if let Some(n) = serve.shards {
        cmd.args(["--shards", &n.to_string()]);
    }
    if let Some(n) = serve.nice {
        at_nice(&mut cmd, n);
    }
    if let Some(limit) = serve.open_files_limit {
        with_open_files_limit(&mut cmd, limit);
    }
    cmd
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
        peak_rss_mb: status_kib(&status, "VmHWM:").context("parsing /proc/PID/status")? as f64
            / 1024.0,
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

/// A `Field:   N kB` line of /proc/PID/status, in KiB.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
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
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
    }

    #[test]
    fn own_usage_is_readable() {
        let u = read_usage(std::process::id()).unwrap();
        assert!(u.peak_rss_mb > 0.0);
    }
}

//! The `sluice` processes a run starts: spawning, signals, and the
//! guarantee that none outlives the run.
//!
//! Every child's pid is in [`LIVE`] from spawn to reap. [`kill_all`] (run
//! by `Cluster`'s Drop on any exit, by the SIGINT/SIGTERM handler, and at
//! the end of `main`) resumes and SIGKILLs each. Children also get
//! `PR_SET_PDEATHSIG`, so even a SIGKILLed `sluice-chaos` leaves none.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Pids of children not reaped yet.
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// How long a node may take to print its listening line (it waits for a
/// quorum and to be unfenced first; a loaded 2-core machine is slow).
pub const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a SIGTERMed node may take to exit (controlled shutdown).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);

const LISTENING_PREFIX: &str = "sluice listening on ";

/// Ports for clients and the quorum: below the kernel's ephemeral range
/// (32768 and up), so no outgoing connection takes one between our pick
/// and the node's bind.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// SIGKILLs (after SIGCONT) every child still alive. Safe to call twice.
pub fn kill_all() {
    let pids: Vec<i32> = match LIVE.lock() {
        Ok(mut l) => std::mem::take(&mut *l).into_iter().collect(),
        Err(p) => std::mem::take(&mut *p.into_inner()).into_iter().collect(),
    };
    for pid in pids {
        // SAFETY: kill(2) on a pid we spawned and have not reaped (it is in
        // LIVE until `wait` returns); no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGCONT);
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// SIGINT / SIGTERM: kill every child, delete every namespace, exit 130.
pub fn install_signal_handler() -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    thread::Builder::new()
        .name("chaos-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                eprintln!("sluice-chaos: signal {sig}: stopping every sluice process it started and removing its network namespaces");
                kill_all();
                crate::net::remove_all();
                crate::disk::unmount_all();
                std::process::exit(130);
            }
        })?;
    Ok(())
}

/// A loopback port in [`PORTS`] nothing listens on now, picked at random.
pub fn free_port(taken: &BTreeSet<u16>) -> Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let port = PORTS.start + (h.finish() % (PORTS.end - PORTS.start) as u64) as u16;
        if !taken.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in {PORTS:?}")
}

/// One `sluice serve` process slot: its data dir and port survive restarts.
pub struct Node {
    pub id: i32,
    /// The address it listens on: loopback, or its own namespace's.
    pub host: String,
    pub port: u16,
    /// The network namespace it runs in (`/run/netns/...`), if any.
    netns: Option<PathBuf>,
    /// The small filesystem its data dir is on, if any (after `child` in
    /// drop order: the process dies before its disk goes).
    pub disk: Option<crate::disk::Disk>,
    pub data_dir: PathBuf,
    pub stderr_path: PathBuf,
    binary: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    /// Stdout lines of the current process until it is ready.
    lines: Option<mpsc::Receiver<String>>,
    pub paused: bool,
    /// When it went down (kill / stop), for `Target::Down`.
    pub down_since: Option<Instant>,
    pub starts: u32,
}

impl Node {
    pub fn new(
        id: i32,
        (host, port): (String, u16),
        netns: Option<PathBuf>,
        disk: Option<crate::disk::Disk>,
        root: &Path,
        binary: &Path,
        args: Vec<String>,
    ) -> Result<Node> {
        let data_dir = match &disk {
            Some(d) => d.data_dir(),
            None => root.join(format!("node-{id}")),
        };
        std::fs::create_dir_all(&data_dir)?;
        Ok(Node {
            id,
            host,
            port,
            netns,
            disk,
            stderr_path: root.join(format!("node-{id}.stderr.log")),
            data_dir,
            binary: binary.to_path_buf(),
            args,
            child: None,
            lines: None,
            paused: false,
            down_since: Some(Instant::now()),
            starts: 0,
        })
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_live(&self) -> bool {
        self.child.is_some() && !self.paused
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Spawns the process; [`Node::wait_ready`] waits for its listening line.
    pub fn spawn(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("node {} is already running", self.id);
        }
        self.starts += 1;
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)?;
        {
            use std::io::Write;
            let mut s = &stderr;
            writeln!(s, "===== sluice-chaos: start #{} =====", self.starts)?;
        }
        let mut cmd = Command::new(&self.binary);
        cmd.arg("serve")
            .arg("--listen")
            .arg(self.addr())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        // Opened here, joined in the child: only the child moves.
        let netns = match &self.netns {
            Some(p) => {
                Some(std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?)
            }
            None => None,
        };
        let netns_fd = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        // SAFETY: prctl(2) and setns(2) are async-signal-safe and touch no
        // memory of the parent; they run in the child between fork and
        // exec, and the fd stays open in the parent until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(fd) = netns_fd {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", self.binary.display()))?;
        drop(netns);
        LIVE.lock().unwrap().insert(child.id() as i32);
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Drains stdout for the process's life so it never blocks on a pipe.
        thread::Builder::new()
            .name(format!("node-{}-stdout", self.id))
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                    let _ = tx.send(line);
                }
            })?;
        self.child = Some(child);
        self.lines = Some(rx);
        self.paused = false;
        Ok(())
    }

    /// Waits (bounded) for the listening line of the process just spawned.
    pub fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        // Dropped once ready: the reader thread keeps draining stdout.
        let rx = self.lines.take().ok_or_else(|| anyhow!("not spawned"))?;
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.starts_with(LISTENING_PREFIX) => return self.mark_up(),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.reap(Duration::from_secs(5));
                    bail!(
                        "node {} exited before listening ({status:?})\n{}",
                        self.id,
                        self.stderr_tail(30)
                    );
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "node {} did not listen within {START_TIMEOUT:?}\n{}",
                    self.id,
                    self.stderr_tail(30)
                );
            }
        }
    }

    fn mark_up(&mut self) -> Result<()> {
        self.down_since = None;
        Ok(())
    }

    pub fn start(&mut self) -> Result<()> {
        self.spawn()?;
        self.wait_ready()
    }

    fn signal(&self, sig: libc::c_int) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("node {} is down", self.id))?;
        // SAFETY: kill(2) on a child we spawned and have not reaped; no memory.
        if unsafe { libc::kill(pid, sig) } != 0 {
            bail!("kill({pid}, {sig}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn sigstop(&mut self) -> Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    pub fn sigcont(&mut self) -> Result<()> {
        self.signal(libc::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    pub fn kill9(&mut self) -> Result<()> {
        if self.paused {
            self.sigcont()?;
        }
        self.signal(libc::SIGKILL)?;
        self.reap(STOP_TIMEOUT)
            .ok_or_else(|| anyhow!("node {} did not die after SIGKILL", self.id))?;
        Ok(())
    }

    /// Empties the data dir of this node, which must be down: a disk
    /// replaced while it was.
    pub fn wipe(&mut self) -> Result<()> {
        if self.is_running() {
            bail!("node {} runs: only a dead node's disk is replaced", self.id);
        }
        std::fs::remove_dir_all(&self.data_dir)?;
        std::fs::create_dir_all(&self.data_dir)?;
        Ok(())
    }

    /// SIGTERM and a bounded wait; Err (after a SIGKILL) if it did not exit
    /// cleanly in time.
    pub fn stop(&mut self) -> Result<()> {
        if self.paused {
            self.sigcont()?;
        }
        self.signal(libc::SIGTERM)?;
        match self.reap(STOP_TIMEOUT) {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!(
                "node {} exited with {status} after SIGTERM\n{}",
                self.id,
                self.stderr_tail(30)
            ),
            None => {
                self.kill9().ok();
                bail!(
                    "node {} did not exit within {STOP_TIMEOUT:?} after SIGTERM (killed)\n{}",
                    self.id,
                    self.stderr_tail(30)
                )
            }
        }
    }

    /// Waits up to `timeout` for the process to exit; reaps it.
    fn reap(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                LIVE.lock().unwrap().remove(&(child.id() as i32));
                self.child = None;
                self.lines = None;
                self.paused = false;
                self.down_since = Some(Instant::now());
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last `n` lines of the node's stderr, quorum-library lines left out.
    pub fn stderr_tail(&self, n: usize) -> String {
        let mut buf = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.stderr_path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(512 * 1024)));
            let _ = f.read_to_end(&mut buf);
        }
        let text = String::from_utf8_lossy(&buf);
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("openraft")).collect();
        format!(
            "----- node {} stderr ({}) -----\n{}",
            self.id,
            self.stderr_path.display(),
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }

    /// `DIR/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Sorted `.log` segment files of a partition.
    pub fn segments(&self, topic: &str, partition: i32) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.partition_dir(topic, partition)) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        // Names are zero-padded base offsets: name order is offset order.
        v.sort();
        v
    }

    /// The concatenated batches of a partition's segments: each file's
    /// whole batches, walked by their length fields, so the zeros a
    /// preallocated active segment holds past them (`--log-preallocate`)
    /// are not counted.
    pub fn log_bytes(&self, topic: &str, partition: i32) -> Vec<u8> {
        let mut out = Vec::new();
        for f in self.segments(topic, partition) {
            if let Ok(b) = std::fs::read(&f) {
                out.extend_from_slice(&b[..batches_len(&b)]);
            }
        }
        out
    }
}

/// How many bytes at the start of a segment file are whole batches: each
/// is a base offset (8 bytes), a length (4) and that many bytes; a length
/// of 0 or less, or one running past the file, ends them.
fn batches_len(file: &[u8]) -> usize {
    const LENGTH_AT: usize = 8;
    const LENGTH_END: usize = 12;
    let mut pos = 0;
    while let Some(length) = file.get(pos + LENGTH_AT..pos + LENGTH_END) {
        let length = i32::from_be_bytes(length.try_into().expect("4 bytes"));
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        let end = pos + LENGTH_END + length;
        if length == 0 || end > file.len() {
            break;
        }
        pos = end;
    }
    pos
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our unreaped child; no memory involved.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
            let _ = c.kill();
            let _ = c.wait();
            LIVE.lock().unwrap().remove(&(c.id() as i32));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::batches_len;

    /// A base offset, a length and that many bytes.
    fn batch(length: i32) -> Vec<u8> {
        let mut b = 7i64.to_be_bytes().to_vec();
        b.extend_from_slice(&length.to_be_bytes());
        b.extend(std::iter::repeat_n(0xAB, length as usize));
        b
    }

    /// Whole batches count; zeros past them (a preallocated tail) and a
    /// batch the file cuts short do not.
    #[test]
    fn only_whole_batches_count() {
        let mut file = batch(61);
        file.extend(batch(100));
        let whole = file.len();
        assert_eq!(batches_len(&file), whole);
        file.extend(std::iter::repeat_n(0, 4096));
        assert_eq!(batches_len(&file), whole, "zeros past the batches");
        let mut torn = batch(61);
        torn.extend(&batch(100)[..50]);
        assert_eq!(batches_len(&torn), 73, "a torn batch");
        assert_eq!(batches_len(&[]), 0);
    }
}

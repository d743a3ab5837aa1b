//! The process as Prometheus clients export it (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, open and most file descriptors, start
//! time, threads) and each shard thread's CPU time: whether a core is
//! saturated is the first question about a thread-per-core broker. Read
//! from `/proc` at a scrape (proc(5)), so nothing is counted while serving.

use std::fmt::Write;
use std::sync::Mutex;

use super::{header, scalar};

/// Each shard's thread id, by shard, once it started.
static SHARD_THREADS: Mutex<Vec<Option<i32>>> = Mutex::new(Vec::new());

/// Called on shard `id`'s own thread as it starts.
pub fn shard_thread_started(id: usize) {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let mut threads = SHARD_THREADS.lock().unwrap_or_else(|e| e.into_inner());
    if threads.len() <= id {
        threads.resize(id + 1, None);
    }
    threads[id] = Some(tid);
}

/// The fields of a `/proc/.../stat` line after the command (whose name
/// may hold spaces and parentheses): `fields[0]` is field 3, `state`.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// Field `n` (1-based, as proc(5) numbers them) of a stat line's fields.
fn field(fields: &[&str], n: usize) -> Option<u64> {
    fields.get(n.checked_sub(3)?)?.parse().ok()
}

/// utime + stime (fields 14 and 15), in seconds.
fn cpu_seconds(fields: &[&str], ticks_per_second: f64) -> Option<f64> {
    Some((field(fields, 14)? + field(fields, 15)?) as f64 / ticks_per_second)
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|&v| v > 0)
}

/// The boot time, seconds since the epoch (`btime` in /proc/stat).
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to write to.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (got == 0).then_some(limit.rlim_cur)
}

pub(super) fn render(out: &mut String) {
    let (Some(ticks), Some(page)) = (sysconf(libc::_SC_CLK_TCK), sysconf(libc::_SC_PAGESIZE))
    else {
        return;
    };
    let ticks = ticks as f64;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    if let Some(fields) = stat_fields(&stat) {
        if let Some(cpu) = cpu_seconds(&fields, ticks) {
            scalar(
                out,
                "process_cpu_seconds_total",
                "User and system CPU time the process used.",
                "counter",
                cpu,
            );
        }
        if let Some(rss) = field(&fields, 24) {
            scalar(
                out,
                "process_resident_memory_bytes",
                "Resident memory.",
                "gauge",
                rss * page,
            );
        }
        if let Some(vsize) = field(&fields, 23) {
            scalar(
                out,
                "process_virtual_memory_bytes",
                "Virtual memory.",
                "gauge",
                vsize,
            );
        }
        if let Some(threads) = field(&fields, 20) {
            scalar(
                out,
                "process_threads",
                "Threads of the process.",
                "gauge",
                threads,
            );
        }
        if let (Some(start), Some(boot)) = (field(&fields, 22), boot_time()) {
            let started = boot as f64 + start as f64 / ticks;
            scalar(
                out,
                "process_start_time_seconds",
                "When the process started, seconds since the epoch.",
                "gauge",
                started,
            );
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        scalar(
            out,
            "process_open_fds",
            "Open file descriptors.",
            "gauge",
            fds.count(),
        );
    }
    if let Some(limit) = open_file_limit() {
        scalar(
            out,
            "process_max_fds",
            "The open file descriptor limit (soft).",
            "gauge",
            limit,
        );
    }
    let threads = SHARD_THREADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let name = "sluice_shard_cpu_seconds_total";
    header(
        out,
        name,
        "User and system CPU time of each shard's reactor thread (its blocking threads not included): near 1 a second, the core is saturated.",
        "counter",
    );
    for (shard, tid) in threads.iter().enumerate() {
        let Some(tid) = tid else { continue };
        let stat =
            std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
        if let Some(cpu) = stat_fields(&stat).and_then(|f| cpu_seconds(&f, ticks)) {
            let _ = writeln!(out, "{name}{{shard=\"{shard}\"}} {cpu}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_past_a_command_with_spaces_and_parentheses() {
        let stat =
            "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1234 5000000 300";
        let fields = stat_fields(stat).unwrap();
        assert_eq!(fields[0], "S");
        assert_eq!(field(&fields, 14), Some(250));
        assert_eq!(field(&fields, 15), Some(50));
        assert_eq!(cpu_seconds(&fields, 100.0), Some(3.0));
        assert_eq!(field(&fields, 20), Some(7));
        assert_eq!(field(&fields, 22), Some(1234));
        assert_eq!(field(&fields, 23), Some(5_000_000));
        assert_eq!(field(&fields, 24), Some(300));
    }

    #[test]
    fn this_process_is_rendered() {
        shard_thread_started(0);
        let mut out = String::new();
        render(&mut out);
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
            "sluice_shard_cpu_seconds_total{shard=\"0\"} ",
        ] {
            assert!(out.lines().any(|l| l.starts_with(name)), "{name} in\n{out}");
        }
    }
}

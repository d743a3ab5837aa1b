//! Cross-core wake benchmark: what one hop over the shard mesh costs on
//! this machine, the cost issue 14's "two shards against one" target turns
//! on.
//!
//! ```text
//! cargo run --release --example wake_bench -- [--round-trips 100000] [--batch 64] [--spin-us 0]
//! ```
//!
//! Two shards (glommio executors pinned to the first two allowed CPUs, the
//! broker's `runtime::start_shards`) joined by one `runtime::mesh`, as the
//! broker's shards are. Three runs:
//!
//! - ping-pong: shard 0 sends one message and waits for the answer, so
//!   every hop finds its peer parked and has to wake it (the broker's case
//!   at moderate load: a produce or fetch hop to a partition's owner);
//! - batched: shard 0 sends `--batch` messages, then waits for as many
//!   answers, so one wake carries many messages;
//! - local: the same ping-pong between two tasks of one shard over a
//!   local channel, what the hop costs without crossing cores.
//!
//! `--spin-us N` lets an idle shard poll for N µs before it parks (the
//! broker's `--shard-spin-before-park-us`).
//!
//! Reports the round-trip latency (p50, p99, p99.9, from hdrhistogram) and
//! the process's CPU time (getrusage: both shards, user + system) per round
//! trip.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sluice::runtime::{self, Mesh, MeshReceiver};

/// Messages in flight between the two shards before a sender waits.
const CHANNEL_CAPACITY: usize = 4096;
/// glommio's io_uring buffer memory per shard: nothing here does I/O.
const IO_MEMORY_BYTES: usize = 1 << 20;

struct Args {
    round_trips: u64,
    batch: u64,
    spin: Duration,
}

fn args() -> Args {
    let mut out = Args {
        round_trips: 100_000,
        batch: 64,
        spin: Duration::ZERO,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        let n: u64 = value
            .parse()
            .unwrap_or_else(|_| panic!("{flag} wants a number"));
        match flag.as_str() {
            "--round-trips" => out.round_trips = n.max(1),
            "--batch" => out.batch = n.clamp(1, CHANNEL_CAPACITY as u64 / 2),
            "--spin-us" => out.spin = Duration::from_micros(n.min(1_000_000)),
            _ => panic!("unknown flag {flag}"),
        }
    }
    out
}

/// Process CPU time (user + system) so far.
fn cpu_time() -> Duration {
    // SAFETY: rusage is plain data that getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid out pointer.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

struct Report {
    name: &'static str,
    round_trips: u64,
    latency: Histogram<u64>,
    wall: Duration,
    cpu: Duration,
}

impl Report {
    fn print(&self) {
        let us = |q: f64| self.latency.value_at_quantile(q) as f64 / 1_000.0;
        println!(
            "{:<10} {:>9} round trips  p50 {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>7.2} µs  \
             CPU {:>6.2} µs/round trip  wall {:>6.2} µs/round trip",
            self.name,
            self.round_trips,
            us(0.5),
            us(0.99),
            us(0.999),
            self.cpu.as_secs_f64() * 1e6 / self.round_trips as f64,
            self.wall.as_secs_f64() * 1e6 / self.round_trips as f64,
        );
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

/// Shard 0's side: `round_trips` messages in groups of `batch`, each group
/// sent whole before its answers are awaited. Latency is per group.
async fn drive(
    mesh: &Mesh<u64>,
    answers: &MeshReceiver<u64>,
    round_trips: u64,
    batch: u64,
) -> Histogram<u64> {
    let mut latency = histogram();
    let mut sent = 0;
    while sent < round_trips {
        let group = batch.min(round_trips - sent);
        let started = Instant::now();
        for i in 0..group {
            mesh.send_to(1, sent + i).await.expect("shard 1 runs");
        }
        for _ in 0..group {
            answers.recv().await.expect("shard 1 answers");
        }
        latency
            .record(started.elapsed().as_nanos() as u64)
            .expect("in bounds");
        sent += group;
    }
    latency
}

/// Two shards over the mesh, shard 1 echoing everything; one run per batch
/// size in `batches`.
fn cross_core(round_trips: u64, spin: Duration, batches: Vec<(&'static str, u64)>) -> Vec<Report> {
    let (tx, rx) = std::sync::mpsc::channel();
    let seats = runtime::mesh::<u64>(2, CHANNEL_CAPACITY);
    let settings = runtime::ExecutorSettings {
        io_memory_bytes: IO_MEMORY_BYTES,
        spin_before_park: spin,
        stall_warning: Duration::ZERO,
    };
    let shards = runtime::start_shards(seats, &settings, move |seat| {
        let tx = tx.clone();
        let batches = batches.clone();
        async move {
            let id = seat.id;
            let (mesh, mut receivers) = seat.join().await;
            let (_, from_peer) = receivers.pop().expect("one peer");
            if id == 1 {
                while let Some(n) = from_peer.recv().await {
                    if mesh.send_to(0, n).await.is_err() {
                        break;
                    }
                }
                return;
            }
            for (name, batch) in batches {
                let cpu = cpu_time();
                let started = Instant::now();
                let latency = drive(&mesh, &from_peer, round_trips, batch).await;
                tx.send(Report {
                    name,
                    round_trips,
                    latency,
                    wall: started.elapsed(),
                    cpu: cpu_time() - cpu,
                })
                .expect("main thread waits");
            }
            // Dropping the mesh ends shard 1's loop.
        }
    })
    .expect("start shards");
    let reports = rx.iter().collect();
    shards.join().expect("shards finish");
    reports
}

/// The ping-pong between two tasks of one executor.
fn local(round_trips: u64) -> Report {
    runtime::block_on(async move {
        let (to_echo, from_driver) = futures::channel::mpsc::channel::<u64>(CHANNEL_CAPACITY);
        let (to_driver, mut answers) = futures::channel::mpsc::channel::<u64>(CHANNEL_CAPACITY);
        let echo = runtime::spawn_local(async move {
            use futures::{SinkExt, StreamExt};
            let mut from_driver = from_driver;
            let mut to_driver = to_driver;
            while let Some(n) = from_driver.next().await {
                if to_driver.send(n).await.is_err() {
                    break;
                }
            }
        });
        use futures::{SinkExt, StreamExt};
        let mut to_echo = to_echo;
        let mut latency = histogram();
        let cpu = cpu_time();
        let started = Instant::now();
        for n in 0..round_trips {
            let sent_at = Instant::now();
            to_echo.send(n).await.expect("echo runs");
            answers.next().await.expect("echo answers");
            latency
                .record(sent_at.elapsed().as_nanos() as u64)
                .expect("in bounds");
        }
        let report = Report {
            name: "local",
            round_trips,
            latency,
            wall: started.elapsed(),
            cpu: cpu_time() - cpu,
        };
        to_echo.close_channel();
        echo.await;
        report
    })
}

fn main() {
    let args = args();
    println!(
        "CPUs allowed: {:?}; {} round trips per run; spin before park {:?}",
        runtime::allowed_cpus(),
        args.round_trips,
        args.spin
    );
    let runs = vec![("ping-pong", 1), ("batched", args.batch)];
    for report in cross_core(args.round_trips, args.spin, runs) {
        report.print();
    }
    local(args.round_trips).print();
    println!(
        "(batched: latency is per group of {} messages; CPU and wall per message)",
        args.batch
    );
}

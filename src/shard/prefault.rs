//! Page-cache fills ahead of appends (`log_prefault_bytes`), on a thread
//! of the shard's own that runs only when a CPU would otherwise idle; see
//! `storage::prefault` for why.
//!
//! A fill pays only where a new page costs much (a VM whose host backs
//! memory again at first touch): where it costs what zeroing a page
//! costs, the append's own fault is as cheap as the fill, and the fill's
//! calls are CPU for nothing (10-20% more broker CPU at 50k msg/s over
//! 100 partitions, tuning/README.md). So the fill thread measures what its
//! fills cost a page, and while that is low the shard asks for one fill
//! in [`SAMPLE_ONE_IN`] appends, enough to notice when it rises again.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use crate::storage::Prefault;

use super::{Partition, TopicPartition};

/// Fills a shard may have queued at once; past it, appends pay their own
/// page faults until the thread catches up.
const PREFAULTS_QUEUED_MAX: usize = 16;

/// What a fill must cost a page for fills to go on: zeroing a page on
/// bare metal, or reusing one the guest freed, costs 1-2 µs; a page the
/// host must back again, ~15 µs.
const FILL_PAYS_PER_PAGE: Duration = Duration::from_micros(4);

/// While fills do not pay, the appends that may ask for one.
const SAMPLE_ONE_IN: u32 = 16;

const PAGE_BYTES: u64 = 4096;

thread_local! {
    /// What this shard's fills cost (a shard is one thread).
    static SAMPLER: Sampler = Sampler::new();
    /// This shard's fill thread, started at its first fill (none where
    /// fills are off); `None` if it could not be.
    static FILLER: Option<SyncSender<Prefault>> = start_filler(SAMPLER.with(|s| s.cost.clone()));
}

/// Starts the fill `partition`'s last append asks for, if any, if fills
/// pay (or this append is a sample) and if the shard's queue has room.
pub fn start(tp: &TopicPartition, partition: &Partition) {
    if !SAMPLER.with(Sampler::wanted) {
        return;
    }
    let Some(job) = partition.log.borrow_mut().take_prefault() else {
        return;
    };
    FILLER.with(|filler| {
        let Some(filler) = filler else { return };
        match filler.try_send(job) {
            Ok(()) => {}
            // The window is asked for again once the appends reach it.
            Err(TrySendError::Full(_)) => crate::stats::PREFAULTS_DROPPED.add(1),
            Err(TrySendError::Disconnected(_)) => {
                tracing::debug!(topic = %tp.topic, partition = tp.partition, "prefault thread gone")
            }
        }
    });
}

/// Whether an append may ask for a fill, by what fills cost of late.
struct Sampler {
    cost: Arc<FillCost>,
    /// Appends since the last sample, while fills do not pay.
    unsampled: Cell<u32>,
}

impl Sampler {
    fn new() -> Sampler {
        Sampler {
            cost: Arc::new(FillCost::new()),
            unsampled: Cell::new(0),
        }
    }

    /// Every append while fills pay; else one in [`SAMPLE_ONE_IN`] (of
    /// any partition, and only those with a window fill).
    fn wanted(&self) -> bool {
        if self.cost.pays() {
            return true;
        }
        let unsampled = self.unsampled.get() + 1;
        let sample = unsampled >= SAMPLE_ONE_IN;
        self.unsampled.set(if sample { 0 } else { unsampled });
        sample
    }
}

/// Starts the shard's fill thread, which records what each fill cost in
/// `cost`.
fn start_filler(cost: Arc<FillCost>) -> Option<SyncSender<Prefault>> {
    let (jobs, queue) = sync_channel::<Prefault>(PREFAULTS_QUEUED_MAX);
    // `shard-<id>-<n>` becomes `prefault-<id>-<n>`, within the kernel's
    // 15 bytes of a thread name.
    let shard = std::thread::current().name().unwrap_or("shard").to_owned();
    let name = format!("prefault-{}", shard.trim_start_matches("shard-"));
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        idle_priority();
        for job in queue {
            let started = thread_cpu_time();
            match job.run() {
                Ok(()) => {
                    cost.record(thread_cpu_time().saturating_sub(started), job.bytes());
                    crate::stats::PREFAULT_BYTES.add(job.bytes());
                }
                // Only a cost: the appends fault their own pages.
                Err(e) => tracing::debug!(error = %e, "page cache not filled ahead"),
            }
        }
    });
    match spawned {
        Ok(_) => Some(jobs),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the prefault thread; appends fault their own pages");
            None
        }
    }
}

/// What recent fills cost a page, a moving average the fill thread
/// updates and the shard reads.
struct FillCost {
    /// Nanoseconds a page; `u64::MAX` before the first fill, which is
    /// always made.
    ns_per_page: AtomicU64,
}

impl FillCost {
    fn new() -> FillCost {
        FillCost {
            ns_per_page: AtomicU64::new(u64::MAX),
        }
    }

    fn pays(&self) -> bool {
        self.ns_per_page.load(Ordering::Relaxed) >= FILL_PAYS_PER_PAGE.as_nanos() as u64
    }

    /// A fill of `bytes` took `took`: a quarter of the average.
    fn record(&self, took: Duration, bytes: u64) {
        let pages = bytes.div_ceil(PAGE_BYTES).max(1);
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX) / pages;
        let old = self.ns_per_page.load(Ordering::Relaxed);
        let new = if old == u64::MAX {
            sample
        } else {
            (old.saturating_mul(3).saturating_add(sample)) / 4
        };
        self.ns_per_page.store(new, Ordering::Relaxed);
    }
}

/// CPU time of the calling thread: a fill's cost without the time others
/// ran while it waited (at `SCHED_IDLE` it waits for everyone).
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the calling thread's clock into `now`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// `SCHED_IDLE`: the fills take no CPU from the shard or anyone else (the
/// clients, on a small machine), only what would idle. Unpinned, so any
/// idle CPU serves.
fn idle_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscalls on the calling thread.
    unsafe {
        let mut all: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut all);
        }
        // Inherited from the shard: its one CPU.
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &all);
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "prefault thread keeps its priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn fills_go_on_while_pages_are_dear_and_are_sampled_while_cheap() {
        let cost = FillCost::new();
        assert!(cost.pays(), "the first fill is always made");
        // 256 pages in 4 ms: ~15.6 µs a page, a page the host backs again.
        cost.record(Duration::from_millis(4), MIB);
        assert!(cost.pays());
        // 256 pages in 0.3 ms: ~1.2 µs a page; the average follows.
        for _ in 0..8 {
            cost.record(Duration::from_micros(300), MIB);
        }
        assert!(!cost.pays(), "cheap pages: fills do not pay");
        for _ in 0..4 {
            cost.record(Duration::from_millis(4), MIB);
        }
        assert!(cost.pays(), "dear again");
    }

    #[test]
    fn while_fills_do_not_pay_one_append_in_sample_one_in_asks() {
        let sampler = Sampler::new();
        assert!((0..100).all(|_| sampler.wanted()), "pays: every append");
        sampler.cost.record(Duration::from_micros(100), MIB);
        let asked: Vec<bool> = (0..2 * SAMPLE_ONE_IN).map(|_| sampler.wanted()).collect();
        assert_eq!(asked.iter().filter(|&&a| a).count(), 2);
        assert!(asked[SAMPLE_ONE_IN as usize - 1] && asked[2 * SAMPLE_ONE_IN as usize - 1]);
    }
}

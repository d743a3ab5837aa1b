//! Page-cache fills ahead of appends (`log_prefault_bytes`), on a thread
//! of the shard's own that runs only when a CPU would otherwise idle; see
//! `storage::prefault` for why.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

use crate::storage::Prefault;

use super::{Partition, TopicPartition};

/// Fills a shard may have queued at once; past it, appends pay their own
/// page faults until the thread catches up.
const PREFAULTS_QUEUED_MAX: usize = 16;

thread_local! {
    /// This shard's fill thread (a shard is one thread), started at its
    /// first fill; `None` if it could not be.
    static FILLER: Option<SyncSender<Prefault>> = start_filler();
}

/// Starts the fill `partition`'s last append asks for, if any and if the
/// shard's queue has room.
pub fn start(tp: &TopicPartition, partition: &Partition) {
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

fn start_filler() -> Option<SyncSender<Prefault>> {
    let (sender, jobs) = sync_channel::<Prefault>(PREFAULTS_QUEUED_MAX);
    // `shard-<id>-<n>` becomes `prefault-<id>-<n>`, within the kernel's
    // 15 bytes of a thread name.
    let shard = std::thread::current().name().unwrap_or("shard").to_owned();
    let name = format!("prefault-{}", shard.trim_start_matches("shard-"));
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        idle_priority();
        for job in jobs {
            let len = job.len();
            match job.run() {
                Ok(()) => crate::stats::PREFAULT_BYTES.add(len),
                // Only a cost: the appends fault their own pages.
                Err(e) => tracing::debug!(error = %e, "page cache not filled ahead"),
            }
        }
    });
    match spawned {
        Ok(_) => Some(sender),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the prefault thread; appends fault their own pages");
            None
        }
    }
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

//! A client thread of a run besides the producer (the group member, the
//! transactional producer): it works until told to stop, counts its
//! progress, and hands back its history when joined.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

pub struct Worker<T> {
    stop: Arc<AtomicBool>,
    /// Units of work done so far, for [`Worker::wait_progress`].
    progress: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<Result<T>>>,
}

impl<T: Send + 'static> Worker<T> {
    /// Runs `work(stop, progress)` on a thread named `name`.
    pub fn start(
        name: &str,
        work: impl FnOnce(&AtomicBool, &AtomicU64) -> Result<T> + Send + 'static,
    ) -> Worker<T> {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicU64::new(0));
        let (st, done) = (stop.clone(), progress.clone());
        let thread = thread::Builder::new()
            .name(name.into())
            .spawn(move || work(&st, &done))
            .expect("spawn a client thread");
        Worker {
            stop,
            progress,
            thread: Some(thread),
        }
    }

    /// Waits (at most `timeout`) until the worker has done some work: the
    /// faults wait for it, or their check would find nothing to check (on
    /// a loaded machine a client's first steps can outlast a short run's
    /// warm-up). `nothing` says what did not happen, for the error.
    pub fn wait_progress(&self, timeout: Duration, nothing: &str) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.progress.load(Ordering::SeqCst) == 0 {
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                bail!("{nothing}: its thread stopped");
            }
            if Instant::now() >= deadline {
                bail!("{nothing} within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops the worker after its step under way and returns its history.
    pub fn finish(mut self) -> Result<T> {
        self.stop.store(true, Ordering::SeqCst);
        let t = self.thread.take().expect("joined once");
        t.join().map_err(|_| anyhow!("a client thread panicked"))?
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

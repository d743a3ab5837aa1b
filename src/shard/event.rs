//! A shard-local event: a counter bumped by `notify`, and futures that
//! resolve once it moves past the value they saw. Used for "this partition
//! got an append" (long-poll fetches) and "this shard is stopping".
//! Shard-local: `Rc`/`RefCell`, never shared across threads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use slab::Slab;

#[derive(Default)]
pub struct Event {
    version: Cell<u64>,
    /// One slot per waiting future, freed when that future resolves or is
    /// dropped, so it is bounded by the tasks waiting right now.
    waiters: RefCell<Slab<Waker>>,
    /// When the last `notify` that woke a waiter ran, so a waiter can tell
    /// how long its wake-up took (read the clock only when someone waits).
    woke_at: Cell<Option<Instant>>,
}

impl Event {
    pub fn notify(&self) {
        self.version.set(self.version.get() + 1);
        let mut waiters = self.waiters.borrow_mut();
        if waiters.is_empty() {
            return;
        }
        self.woke_at.set(Some(Instant::now()));
        for waker in waiters.drain() {
            waker.wake();
        }
    }

    /// Time since the last `notify` that woke waiters.
    pub fn since_notify(&self) -> Option<std::time::Duration> {
        self.woke_at.get().map(|at| at.elapsed())
    }

    /// How many times `notify` has been called.
    pub fn version(&self) -> u64 {
        self.version.get()
    }

    /// Resolves once `notify` is called after `seen` was read from `version`.
    pub fn changed_since(&self, seen: u64) -> Changed<'_> {
        Changed {
            event: self,
            seen,
            slot: None,
        }
    }
}

pub struct Changed<'a> {
    event: &'a Event,
    seen: u64,
    slot: Option<usize>,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.version.get() != self.seen {
            self.slot = None; // `notify` drained our slot already
            return Poll::Ready(());
        }
        let mut waiters = self.event.waiters.borrow_mut();
        match self.slot {
            Some(slot) => waiters[slot].clone_from(cx.waker()),
            None => {
                let slot = waiters.insert(cx.waker().clone());
                drop(waiters);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        // A slot is ours only while the version has not moved: `notify`
        // drains every slot when it bumps the version.
        if let Some(slot) = self.slot {
            if self.event.version.get() == self.seen {
                self.event.waiters.borrow_mut().remove(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_wake_on_notify_and_free_their_slots() {
        crate::runtime::block_on(async {
            let event = std::rc::Rc::new(Event::default());
            let seen = event.version();
            let e = event.clone();
            let waiter = crate::runtime::spawn_local(async move { e.changed_since(seen).await });
            crate::runtime::yield_if_needed().await;
            crate::runtime::sleep(std::time::Duration::from_millis(1)).await;
            assert_eq!(event.waiters.borrow().len(), 1);
            event.notify();
            waiter.await;
            assert!(event.waiters.borrow().is_empty());
            // A dropped waiter gives its slot back.
            let seen = event.version();
            {
                let mut w = std::pin::pin!(event.changed_since(seen));
                let waker = futures::task::noop_waker();
                let mut cx = Context::from_waker(&waker);
                assert!(w.as_mut().poll(&mut cx).is_pending());
                assert_eq!(event.waiters.borrow().len(), 1);
            }
            assert!(event.waiters.borrow().is_empty());
        });
    }
}

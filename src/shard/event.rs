//! A shard-local event: a counter bumped by `notify`, and futures that
//! resolve once it moves past the value they saw (one event, or the first
//! of many). Used for "this partition got an append" (long-poll fetches)
//! and "this shard is stopping". Shard-local: `Rc`/`RefCell`, never shared
//! across threads.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::ops::Deref;
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

/// Resolves once any of its events moves past the version it was seen at:
/// one future for a long poll over many partitions, where a future per
/// partition under `select_all` cost an allocation each and a poll of
/// every one at each wake-up. It registers the task's waker with every
/// event, and gives the slots back when dropped.
pub struct ChangedAny<E: Deref<Target = Event>> {
    /// Each event, the version seen, and its waiter slot once registered.
    waits: Vec<(E, u64, Option<usize>)>,
}

impl<E: Deref<Target = Event>> ChangedAny<E> {
    pub fn new(events: impl IntoIterator<Item = (E, u64)>) -> Self {
        ChangedAny {
            waits: events
                .into_iter()
                .map(|(event, seen)| (event, seen, None))
                .collect(),
        }
    }

    /// The first event that moved, once this has resolved.
    pub fn moved(&self) -> Option<&Event> {
        self.waits
            .iter()
            .find(|(event, seen, _)| event.version.get() != *seen)
            .map(|(event, _, _)| &**event)
    }
}

// Nothing in it is ever pinned in place: the events are behind `E`.
impl<E: Deref<Target = Event>> Unpin for ChangedAny<E> {}

impl<E: Deref<Target = Event>> Future for ChangedAny<E> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.moved().is_some() {
            return Poll::Ready(());
        }
        for (event, _, slot) in this.waits.iter_mut() {
            let mut waiters = event.waiters.borrow_mut();
            match *slot {
                Some(at) => waiters[at].clone_from(cx.waker()),
                None => *slot = Some(waiters.insert(cx.waker().clone())),
            }
        }
        Poll::Pending
    }
}

impl<E: Deref<Target = Event>> Drop for ChangedAny<E> {
    fn drop(&mut self) {
        // As in `Changed`: a slot is ours only while its event has not moved.
        for (event, seen, slot) in &self.waits {
            if let Some(at) = *slot {
                if event.version.get() == *seen {
                    event.waiters.borrow_mut().remove(at);
                }
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

    #[test]
    fn a_wait_on_many_resolves_on_any_and_frees_every_slot() {
        crate::runtime::block_on(async {
            let events: Vec<std::rc::Rc<Event>> =
                (0..3).map(|_| std::rc::Rc::new(Event::default())).collect();
            let waker = futures::task::noop_waker();
            let mut cx = Context::from_waker(&waker);
            {
                let mut any = std::pin::pin!(ChangedAny::new(
                    events.iter().map(|e| (e.clone(), e.version()))
                ));
                assert!(any.as_mut().poll(&mut cx).is_pending());
                assert!(events.iter().all(|e| e.waiters.borrow().len() == 1));
                // Polled again (a spurious wake-up): still one slot each.
                assert!(any.as_mut().poll(&mut cx).is_pending());
                assert!(events.iter().all(|e| e.waiters.borrow().len() == 1));
                events[1].notify();
                assert!(any.as_mut().poll(&mut cx).is_ready());
                assert!(std::ptr::eq(any.moved().unwrap(), &*events[1]));
            }
            // Dropped: the events that did not move got their slots back;
            // the one that moved drained its own.
            assert!(events.iter().all(|e| e.waiters.borrow().is_empty()));
            // Seen already moved: ready at once, nothing registered.
            let seen = events[0].version();
            events[0].notify();
            let mut any = std::pin::pin!(ChangedAny::new([(events[0].clone(), seen)]));
            assert!(any.as_mut().poll(&mut cx).is_ready());
            assert!(events[0].waiters.borrow().is_empty());
        });
    }
}

//! Waiting for a socket to become writable, for the sends glommio does not
//! do itself (sendfile). glommio keeps its readiness polling private, so one
//! process-wide thread waits in epoll and wakes the waiting shard task
//! (glommio accepts wakes from other threads).
//!
//! Registrations name a slot index, never a pointer, so an event that races
//! with a connection closing can at worst wake the slot's next owner once,
//! which then finds its socket not writable and waits again. Each shard owns
//! its own range of slots, so taking and freeing one needs no lock.

use std::cell::RefCell;
use std::future::poll_fn;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use futures::task::AtomicWaker;

/// Events one epoll_wait call takes at most.
const EVENTS_PER_WAIT: usize = 256;

/// The epoll instance and its slots, shared by every shard.
pub struct WritablePoller {
    epfd: RawFd,
    slots: Arc<[AtomicWaker]>,
    slots_per_shard: usize,
}

impl WritablePoller {
    /// Starts the poller thread. `slots_per_shard` bounds the connections
    /// per shard that can wait at once (the connection limit).
    pub fn start(shards: usize, slots_per_shard: usize) -> std::io::Result<Arc<WritablePoller>> {
        // SAFETY: plain syscall; the fd is owned by the poller for the process lifetime.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let slots: Arc<[AtomicWaker]> = (0..shards * slots_per_shard)
            .map(|_| AtomicWaker::new())
            .collect();
        let poller = Arc::new(WritablePoller {
            epfd,
            slots: slots.clone(),
            slots_per_shard,
        });
        std::thread::Builder::new()
            .name("sluice-writable".into())
            .spawn(move || wait_loop(epfd, &slots))?;
        Ok(poller)
    }

    /// This shard's end: hands out slots from the shard's own range.
    pub fn for_shard(self: &Arc<Self>, shard: usize) -> ShardWritable {
        let start = shard * self.slots_per_shard;
        ShardWritable {
            poller: self.clone(),
            free: RefCell::new((start..start + self.slots_per_shard).rev().collect()),
        }
    }
}

fn wait_loop(epfd: RawFd, slots: &[AtomicWaker]) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
    loop {
        // SAFETY: `events` has room for EVENTS_PER_WAIT entries.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), EVENTS_PER_WAIT as i32, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(error = %e, "epoll_wait failed; sendfile waits will stall");
            return;
        }
        for event in &events[..n as usize] {
            if let Some(slot) = slots.get(event.u64 as usize) {
                slot.wake();
            }
        }
    }
}

/// A shard's access to the poller.
pub struct ShardWritable {
    poller: Arc<WritablePoller>,
    free: RefCell<Vec<usize>>,
}

impl ShardWritable {
    /// A registration for one socket; `None` when every slot is taken.
    pub fn register(self: &Rc<Self>, fd: RawFd) -> Option<Registration> {
        let slot = self.free.borrow_mut().pop()?;
        let mut event = libc::epoll_event {
            events: (libc::EPOLLOUT | libc::EPOLLET) as u32,
            u64: slot as u64,
        };
        // SAFETY: fd is an open socket owned by the caller for the registration's life.
        if unsafe { libc::epoll_ctl(self.poller.epfd, libc::EPOLL_CTL_ADD, fd, &mut event) } != 0 {
            self.free.borrow_mut().push(slot);
            return None;
        }
        Some(Registration {
            owner: self.clone(),
            fd,
            slot,
        })
    }
}

/// A socket registered for writability; deregistered on drop, which must
/// happen before the socket is closed.
pub struct Registration {
    owner: Rc<ShardWritable>,
    fd: RawFd,
    slot: usize,
}

impl Registration {
    /// Resolves once the socket can take more bytes (or has an error, which
    /// the next send reports).
    pub async fn writable(&self) {
        let waker_slot = &self.owner.poller.slots[self.slot];
        poll_fn(|cx| {
            // Register first, then look: an edge between the two still wakes us.
            waker_slot.register(cx.waker());
            if socket_writable(self.fd) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: the socket is still open (see the type's contract).
        unsafe {
            libc::epoll_ctl(
                self.owner.poller.epfd,
                libc::EPOLL_CTL_DEL,
                self.fd,
                std::ptr::null_mut(),
            );
        }
        self.owner.free.borrow_mut().push(self.slot);
    }
}

fn socket_writable(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout: never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n != 0 && pfd.revents != 0
}

//! `FileHandles`: one shard's bounded cache of open segment files.
//!
//! A partition's files are opened on demand and stay open only while they
//! are among the shard's recently used ones: 100,000 idle partitions must
//! not hold 100,000 descriptors. Every `.log` and `.txnindex` of the shard's
//! logs goes through one cache of at most `limit` open files; opening one
//! more closes the least recently used (CLOCK, second chance). Offset and
//! time indexes are in memory (read at open, written at roll and close), so
//! they hold no descriptor at all.
//!
//! The cache holds each file as an `Arc<File>`. Whoever is using a file
//! (a fetch's sendfile, a background fdatasync, a compaction pass) holds a
//! clone, so eviction only drops the cache's reference: the descriptor
//! closes when the last user lets go, and an eviction never breaks a send.
//! Such evicted-but-busy files are the only open segment files beyond
//! `limit`, and they live only as long as the request or sync holding them.
//!
//! Owned by one shard (`Rc`, not `Send`): no lock, and no other thread ever
//! opens or closes through it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use crate::stats;

/// A cache for a log opened on its own (tests, tools), not by a shard.
pub const LOG_OPEN_FILES_ALONE: usize = 64;

/// Names one file of one segment in the cache; never reused, so a segment
/// replaced at the same path (compaction, truncation) cannot be served the
/// old inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct HandleId(u64);

/// The shard's open segment files, at most `limit` of them. Cheap to clone
/// (one `Rc`); every log of the shard holds a clone.
#[derive(Clone)]
pub struct FileHandles(Rc<RefCell<Cache>>);

struct Slot {
    id: HandleId,
    file: Arc<File>,
    /// Used since the clock hand last passed: spared once.
    referenced: bool,
    /// Opened or used since the last idle sweep ([`FileHandles::close_idle`]).
    used_since_sweep: bool,
}

struct Cache {
    limit: usize,
    next_id: u64,
    /// At most `limit`; unordered, the clock hand walks it.
    slots: Vec<Slot>,
    /// Where each cached id sits in `slots`.
    by_id: HashMap<HandleId, usize>,
    hand: usize,
    opens: u64,
    evictions: u64,
}

impl FileHandles {
    /// A cache that keeps at most `limit` (>= 1) files open.
    pub fn new(limit: usize) -> FileHandles {
        assert!(limit >= 1, "the file handle cache holds at least one file");
        FileHandles(Rc::new(RefCell::new(Cache {
            limit,
            next_id: 0,
            slots: Vec::new(),
            by_id: HashMap::new(),
            hand: 0,
            opens: 0,
            evictions: 0,
        })))
    }

    pub fn limit(&self) -> usize {
        self.0.borrow().limit
    }

    /// Files the cache holds open now (never more than [`Self::limit`]).
    pub fn open_count(&self) -> usize {
        self.0.borrow().slots.len()
    }

    /// Files opened (or created) through the cache so far.
    pub fn opens(&self) -> u64 {
        self.0.borrow().opens
    }

    /// Files closed to make room so far.
    pub fn evictions(&self) -> u64 {
        self.0.borrow().evictions
    }

    /// Closes the files nobody used since the previous sweep and nobody
    /// holds now, and starts the next idle period for the rest; returns how
    /// many closed. Run every idle interval, it closes a file after one to
    /// two intervals without use, so partitions that went quiet give their
    /// descriptors back even when the cache never fills.
    pub fn close_idle(&self) -> usize {
        self.0.borrow_mut().close_idle()
    }

    /// A new id, for a file that has none open yet.
    pub(super) fn register(&self) -> HandleId {
        let mut cache = self.0.borrow_mut();
        cache.next_id += 1;
        HandleId(cache.next_id)
    }

    /// The open file of `id`, opened with `open` if the cache holds none.
    pub(super) fn get(
        &self,
        id: HandleId,
        open: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<Arc<File>> {
        if let Some(file) = self.0.borrow_mut().touch(id) {
            return Ok(file);
        }
        // Not under the borrow: `open` is a syscall and may fail.
        let file = open()?;
        Ok(self.insert(id, file))
    }

    /// `id`'s file if the cache holds it open, without counting a use.
    pub(super) fn peek(&self, id: HandleId) -> Option<Arc<File>> {
        let cache = self.0.borrow();
        let &at = cache.by_id.get(&id)?;
        Some(Arc::clone(&cache.slots[at].file))
    }

    /// Caches `file`, just opened or created, as `id`'s.
    pub(super) fn insert(&self, id: HandleId, file: File) -> Arc<File> {
        self.0.borrow_mut().insert(id, Arc::new(file))
    }

    /// Takes `id`'s file out of the cache (its segment is going away);
    /// `None` if it was not open.
    pub(super) fn take(&self, id: HandleId) -> Option<Arc<File>> {
        self.0.borrow_mut().remove(id)
    }

    /// Puts `file` in as `id`'s, whatever was cached: tests stand in a
    /// failing file (`/dev/full`) for a segment's.
    #[cfg(test)]
    pub(super) fn replace(&self, id: HandleId, file: File) {
        let mut cache = self.0.borrow_mut();
        cache.remove(id);
        cache.insert(id, Arc::new(file));
    }
}

impl std::fmt::Debug for FileHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.0.borrow();
        f.debug_struct("FileHandles")
            .field("limit", &cache.limit)
            .field("open", &cache.slots.len())
            .finish()
    }
}

impl Cache {
    fn touch(&mut self, id: HandleId) -> Option<Arc<File>> {
        let &at = self.by_id.get(&id)?;
        let slot = &mut self.slots[at];
        debug_assert_eq!(slot.id, id);
        slot.referenced = true;
        slot.used_since_sweep = true;
        Some(Arc::clone(&slot.file))
    }

    fn insert(&mut self, id: HandleId, file: Arc<File>) -> Arc<File> {
        assert!(!self.by_id.contains_key(&id), "a file is cached once");
        self.opens += 1;
        stats::LOG_FILES_OPENED.add(1);
        let slot = Slot {
            id,
            file: Arc::clone(&file),
            referenced: false,
            used_since_sweep: true,
        };
        if self.slots.len() < self.limit {
            self.by_id.insert(id, self.slots.len());
            self.slots.push(slot);
            stats::LOG_FILES_OPEN.add(1);
        } else {
            let at = self.victim();
            let evicted = std::mem::replace(&mut self.slots[at], slot);
            self.by_id.remove(&evicted.id);
            self.by_id.insert(id, at);
            self.evictions += 1;
            stats::LOG_FILES_EVICTED.add(1);
            // Closes the descriptor unless a fetch or sync still holds it.
            drop(evicted);
        }
        self.check();
        file
    }

    /// The slot to evict: the first one the hand finds not used since its
    /// last pass and, on the first round, not held outside the cache (its
    /// eviction closes a descriptor rather than just dropping a reference).
    fn victim(&mut self) -> usize {
        let len = self.slots.len();
        assert!(len > 0, "a full cache has slots");
        // The first round clears every reference bit, so the second finds
        // a victim: at most 2 * len steps.
        for step in 0..2 * len {
            let at = self.hand;
            self.hand = (self.hand + 1) % len;
            let slot = &mut self.slots[at];
            if slot.referenced {
                slot.referenced = false;
                continue;
            }
            if step < len && Arc::strong_count(&slot.file) > 1 {
                continue;
            }
            return at;
        }
        unreachable!("the second round of the clock finds an unreferenced slot")
    }

    fn close_idle(&mut self) -> usize {
        let mut closed = 0;
        let mut at = 0;
        while at < self.slots.len() {
            let slot = &mut self.slots[at];
            let idle = !std::mem::take(&mut slot.used_since_sweep);
            if idle && Arc::strong_count(&slot.file) == 1 {
                let id = slot.id;
                self.remove(id);
                closed += 1;
                // `remove` moved the last slot here: look at it next.
            } else {
                at += 1;
            }
        }
        stats::LOG_FILES_IDLE_CLOSED.add(closed as u64);
        closed
    }

    fn remove(&mut self, id: HandleId) -> Option<Arc<File>> {
        let at = self.by_id.remove(&id)?;
        let slot = self.slots.swap_remove(at);
        stats::LOG_FILES_OPEN.add(-1);
        if let Some(moved) = self.slots.get(at) {
            self.by_id.insert(moved.id, at);
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
        self.check();
        Some(slot.file)
    }

    fn check(&self) {
        assert!(
            self.slots.len() <= self.limit,
            "the file handle cache holds at most its limit"
        );
        debug_assert_eq!(self.slots.len(), self.by_id.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn holds_at_most_its_limit_and_reopens_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let handles = FileHandles::new(2);
        let ids: Vec<(HandleId, std::path::PathBuf)> = (0..5)
            .map(|i| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, [i as u8]).unwrap();
                (handles.register(), path)
            })
            .collect();
        for round in 0..3 {
            for (id, path) in &ids {
                let file = handles.get(*id, || File::open(path)).unwrap();
                let mut byte = [0u8];
                file.read_exact_at(&mut byte, 0).unwrap();
                assert!(path.ends_with(format!("f{}", byte[0])));
                assert!(handles.open_count() <= 2, "round {round}");
            }
        }
        assert_eq!(handles.open_count(), 2);
        assert_eq!(handles.opens(), 15, "five files, each reopened every round");
        assert_eq!(handles.evictions(), 13);
    }

    /// A sweep closes what nobody used since the previous one and nobody
    /// holds; a file opened or used in between, or still held, stays.
    #[test]
    fn idle_files_close_after_a_sweep_without_use() {
        let dir = tempfile::tempdir().unwrap();
        let handles = FileHandles::new(8);
        let ids: Vec<(HandleId, std::path::PathBuf)> = (0..4)
            .map(|i| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, [i as u8]).unwrap();
                (handles.register(), path)
            })
            .collect();
        let open = |i: usize| handles.get(ids[i].0, || File::open(&ids[i].1)).unwrap();
        for i in 0..4 {
            open(i);
        }
        assert_eq!(handles.close_idle(), 0, "all just opened");
        open(0);
        let held = open(1);
        // 1 is held outside the cache (a send in flight), 2 and 3 idle.
        assert_eq!(handles.close_idle(), 2);
        assert_eq!(handles.open_count(), 2);
        assert!(handles.peek(ids[2].0).is_none() && handles.peek(ids[3].0).is_none());
        drop(held);
        open(0);
        assert_eq!(handles.close_idle(), 1, "1 let go, unused since; 0 used");
        assert!(handles.peek(ids[0].0).is_some());
        assert_eq!(handles.close_idle(), 1, "0 unused for a whole interval");
        assert_eq!(handles.open_count(), 0);
        assert_eq!(handles.opens(), 4, "nothing reopened");
        let mut byte = [0u8];
        open(3).read_exact_at(&mut byte, 0).unwrap();
        assert_eq!(byte, [3], "a closed file reopens on demand");
    }

    #[test]
    fn an_evicted_file_in_use_stays_open_until_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let handles = FileHandles::new(1);
        let (a, b) = (handles.register(), handles.register());
        std::fs::write(dir.path().join("a"), b"aaaa").unwrap();
        std::fs::write(dir.path().join("b"), b"bbbb").unwrap();
        let held = handles.get(a, || File::open(dir.path().join("a"))).unwrap();
        handles.get(b, || File::open(dir.path().join("b"))).unwrap();
        assert_eq!(handles.open_count(), 1);
        assert!(handles.take(a).is_none(), "a was evicted");
        let mut buf = [0u8; 4];
        held.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"aaaa");
        // The cache let go of it: the descriptor closes with `held`.
        assert_eq!(Arc::strong_count(&held), 1);
    }

    #[test]
    fn the_clock_spares_recently_used_and_busy_files() {
        let dir = tempfile::tempdir().unwrap();
        let handles = FileHandles::new(3);
        let open = |name: &str| {
            let path = dir.path().join(name);
            move || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
            }
        };
        let ids: Vec<HandleId> = (0..4).map(|_| handles.register()).collect();
        handles.get(ids[0], open("0")).unwrap();
        let busy = handles.get(ids[1], open("1")).unwrap();
        handles.get(ids[2], open("2")).unwrap();
        // 0 used again: spared once; 1 held by a reader: spared on the
        // first round; 2 goes.
        handles.get(ids[0], open("0")).unwrap();
        handles.get(ids[3], open("3")).unwrap();
        assert!(handles.take(ids[2]).is_none());
        for id in [ids[0], ids[1], ids[3]] {
            assert!(handles.take(id).is_some());
        }
        assert_eq!(handles.open_count(), 0);
        drop(busy);
    }
}

//! The process allocator: the system allocator, except that very large
//! allocations get lazily committed anonymous memory; and how the system
//! allocator keeps freed memory ([`keep_freed_memory`]).
//!
//! Why: kafka-protocol 0.18 sizes a decoded array with
//! `Vec::with_capacity(count)` straight from the wire, so a 17-byte frame
//! claiming 2^31 topics asks for ~150 GB. The system allocator refuses, and a
//! refused allocation aborts the process: one bad client would kill the
//! broker. (Upstream fixes are proposed, not released; drop this when one
//! is.) Mapped with MAP_NORESERVE, such a capacity costs address space only:
//! pages are committed when touched, and the decoder touches no more than
//! the frame's bytes can fill before it fails on the short buffer.

use std::alloc::{GlobalAlloc, Layout, System};

/// Freed memory at the top of a glibc heap stays mapped up to this much.
const TRIM_THRESHOLD_BYTES: i32 = 16 << 20;
/// Allocations below this come from glibc's heaps, larger ones from their
/// own mappings.
const MMAP_THRESHOLD_BYTES: i32 = 4 << 20;

/// Has glibc keep freed memory for reuse instead of returning it to the
/// kernel after every request.
///
/// Why: a fetch naming 1,000 partitions allocates and frees a few hundred
/// KiB on the shard thread. glibc gave that back to the kernel each time a
/// free left more than 128 KiB at the top of the thread's heap
/// (`madvise(MADV_DONTNEED)`), and the next fetch faulted every page in
/// again: a quarter of the shard's CPU at 1,000 partitions per consumer.
/// Setting the trim threshold freezes glibc's adaptive mmap threshold, so
/// that is set too: a few MiB, which keeps request-sized buffers in the
/// heaps. The memory kept is bounded by the trim threshold per heap.
///
/// False when glibc refuses either setting.
pub fn keep_freed_memory() -> bool {
    // SAFETY: mallopt only changes glibc's tunables, process-wide.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
            && libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    }
}

/// Allocations at least this large are mapped lazily.
const LAZY_BYTES_MIN: usize = 1 << 30;
/// mmap returns page-aligned memory; larger alignments go to the system.
const PAGE_BYTES: usize = 4096;

pub struct Allocator;

fn is_lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_BYTES_MIN && layout.align() <= PAGE_BYTES
}

fn map(size: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every block is freed by the allocator that made it: `is_lazy` on
// the same layout size picks the same path in alloc, dealloc and realloc.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            map(layout.size())
        } else {
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_lazy(&layout) {
            map(layout.size()) // anonymous mappings are zero-filled
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_lazy(&layout) {
            libc::munmap(ptr.cast(), layout.size());
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (is_lazy(&layout), is_lazy(&new_layout)) {
            (false, false) => System.realloc(ptr, layout, new_size),
            (true, true) => {
                let p = libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE);
                if p == libc::MAP_FAILED {
                    std::ptr::null_mut()
                } else {
                    p.cast()
                }
            }
            _ => {
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_takes_the_heap_thresholds() {
        // glibc refuses an mmap threshold above half its heap size (32 MiB).
        assert!(keep_freed_memory());
    }

    #[test]
    fn huge_capacity_costs_no_memory_and_round_trips() {
        let a = Allocator;
        let layout = Layout::from_size_align(200 << 30, 8).unwrap();
        // SAFETY: layouts match between each alloc and its dealloc/realloc.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null(), "200 GiB of address space");
            *p = 7;
            let q = a.realloc(p, layout, 1024);
            assert_eq!(*q, 7);
            let small = Layout::from_size_align(1024, 8).unwrap();
            let r = a.realloc(q, small, 2 << 30);
            assert_eq!(*r, 7);
            a.dealloc(r, Layout::from_size_align(2 << 30, 8).unwrap());
        }
    }
}

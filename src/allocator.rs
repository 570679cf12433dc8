//! The process allocator: mimalloc for small blocks, the system allocator for large ones. It is
//! the binary's one unsafe code (the library forbids it).
//!
//! Decoded OTLP, X-Ray documents and EMF events are millions of small short-lived blocks a
//! second, which mimalloc serves far more cheaply than glibc's malloc. Large blocks (request
//! bodies, whole batches, rendered events, PutLogEvents bodies) are few and go to glibc, which
//! keeps them in its heap for the next batch. mimalloc is built with `no_thp` so that its arenas
//! are not backed by 2 MB pages (idle RSS).
//!
//! Both allocators are told to keep freed memory for reuse rather than hand it back to the OS
//! between batches: every page handed back is a page fault and a zeroed page when it is next
//! touched, thousands a second at saturation. An operator's own `MIMALLOC_PURGE_DELAY` or
//! `GLIBC_TUNABLES` wins over these settings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::raw::{c_int, c_long};

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (`include/mimalloc.h`); the Rust
/// bindings still number options as v2 did, so the index is ours (checked by a test).
const MI_OPTION_PURGE_DELAY: c_int = 15;
/// `mi_option_os_tag`, whose distinctive default (100) the test reads to check the numbering.
#[cfg(test)]
const MI_OPTION_OS_TAG: c_int = 18;

/// How long mimalloc keeps freed pages before giving them back to the OS. When the delay runs
/// out, mimalloc gives back every page free at that moment, however recently freed: a batch's
/// pages, freed between two batches, are given back and faulted in again once per delay. One
/// second (mimalloc v3's default) makes that rare; in the musl build, where every block is
/// mimalloc's, 100 ms keeps a batch's large blocks from being held a second.
const PURGE_DELAY_MS: c_long = if cfg!(target_env = "musl") { 100 } else { 1000 };

/// glibc keeps freed blocks below this size in its heap instead of mapping each one afresh (its
/// dynamic threshold starts at 128 KiB and grows only after a block above it is freed): the
/// largest blocks a batch takes (8,192 rendered events, about 8 MB) stay well under it.
#[cfg(not(target_env = "musl"))]
const GLIBC_MMAP_THRESHOLD: c_int = 32 * 1024 * 1024;
/// glibc gives back the free top of its heap only beyond this, so that one batch's freed
/// buffers are there for the next.
#[cfg(not(target_env = "musl"))]
const GLIBC_TRIM_THRESHOLD: c_int = 32 * 1024 * 1024;

unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
    #[cfg(not(target_env = "musl"))]
    fn mallopt(param: c_int, value: c_int) -> c_int;
}

/// `M_TRIM_THRESHOLD` and `M_MMAP_THRESHOLD` in glibc's `malloc.h`.
#[cfg(not(target_env = "musl"))]
const M_TRIM_THRESHOLD: c_int = -1;
#[cfg(not(target_env = "musl"))]
const M_MMAP_THRESHOLD: c_int = -3;

/// Sets the allocators' options; called first thing in `main`, before any thread starts.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc's options are plain integers it reads at each use; any value is valid.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
    #[cfg(not(target_env = "musl"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: mallopt only sets glibc's parameters; both values are within its limits
        // (the mmap threshold's maximum on 64-bit is 32 MiB).
        unsafe {
            mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD);
            mallopt(M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD);
        }
    }
}

/// Blocks of this size or more go to the system allocator.
pub const LARGE_BLOCK_BYTES: usize = 64 * 1024;

/// mimalloc below [`LARGE_BLOCK_BYTES`], the system allocator from there on. A block is always
/// freed by the allocator that made it, because Rust passes the block's layout to `dealloc`
/// and `realloc`.
pub struct SplitAllocator;

/// In the static (musl) build everything goes to mimalloc: musl's allocator unmaps a large
/// block as soon as it is freed, a pair of system calls per batch.
fn is_large(size: usize) -> bool {
    !cfg!(target_env = "musl") && size >= LARGE_BLOCK_BYTES
}

// SAFETY: every method forwards the caller's guarantees (a non-zero-size layout; a block this
// allocator returned, with the layout it was made with) to the allocator that owns the block.
// Which allocator owns a block is decided by its size alone, so `dealloc` and `realloc` reach
// the same one `alloc` did.
unsafe impl GlobalAlloc for SplitAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, passed on unchanged.
        unsafe {
            if is_large(layout.size()) {
                System.alloc(layout)
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout, passed on unchanged.
        unsafe {
            if is_large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from the allocator `is_large(layout.size())` picks, as in `alloc`.
        unsafe {
            if is_large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: on one side of the line the owning allocator reallocates; across it, the new
        // block (same alignment, which the caller guarantees valid with `new_size`) is made by
        // the other, `min` of the two sizes is copied between blocks that cannot overlap, and
        // the old block goes back to its owner.
        unsafe {
            match (is_large(layout.size()), is_large(new_size)) {
                (false, false) => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
                (true, true) => System.realloc(ptr, layout, new_size),
                // Crossing the line: the block moves to the other allocator.
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new_ptr = self.alloc(new_layout);
                    if !new_ptr.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    new_ptr
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_mimalloc_v3s() {
        // The v3 defaults at these indexes: purge delay 1000 ms, os tag 100.
        unsafe {
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            assert_eq!(mi_option_get(MI_OPTION_OS_TAG), 100);
        }
        configure();
        assert_eq!(
            unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) },
            PURGE_DELAY_MS
        );
    }

    /// Minor page faults of the calling thread so far (`/proc/thread-self/stat`, field 10).
    fn thread_minor_faults() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = stat.rsplit_once(')').unwrap().1;
        after_name
            .split_whitespace()
            .nth(7)
            .unwrap()
            .parse()
            .unwrap()
    }

    /// A batch's buffers, grown by pushing up to 8 MB and freed, again and again on one of the
    /// runtime's threads: after the first round the pages are the heap's, not faulted in afresh.
    /// (With glibc's own thresholds every round faults most of its pages in again.)
    #[test]
    #[cfg(not(target_env = "musl"))]
    fn batch_sized_buffers_are_reused_without_faulting_their_pages_again() {
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return; // the operator's settings, not ours
        }
        configure();
        const PAGE: usize = 4096;
        const TOP: usize = 8 << 20;
        let faults_per_round = std::thread::spawn(|| {
            let round = || {
                let mut buffers: Vec<Vec<u8>> = Vec::new();
                for _ in 0..3 {
                    let mut buffer = Vec::new();
                    while buffer.len() < TOP {
                        buffer.extend_from_slice(&[1u8; PAGE]);
                    }
                    buffers.push(std::hint::black_box(buffer));
                }
            };
            round();
            let before = thread_minor_faults();
            for _ in 0..4 {
                round();
            }
            (thread_minor_faults() - before) / 4
        })
        .join()
        .unwrap();
        let pages_per_round = (3 * TOP / PAGE) as u64;
        assert!(
            faults_per_round < pages_per_round / 10,
            "{faults_per_round} faults per round of {pages_per_round} pages"
        );
    }

    /// Growing a block across the line and shrinking it back keeps its bytes, whichever
    /// allocator holds it at each step.
    #[test]
    fn blocks_keep_their_bytes_when_they_cross_the_line() {
        let allocator = SplitAllocator;
        let sizes = [
            16,
            LARGE_BLOCK_BYTES - 1,
            LARGE_BLOCK_BYTES,
            4 * LARGE_BLOCK_BYTES,
            100,
        ];
        unsafe {
            let mut layout = Layout::from_size_align(sizes[0], 8).unwrap();
            let mut ptr = allocator.alloc(layout);
            assert!(!ptr.is_null());
            for i in 0..sizes[0] {
                *ptr.add(i) = i as u8;
            }
            for &size in &sizes[1..] {
                ptr = allocator.realloc(ptr, layout, size);
                assert!(!ptr.is_null());
                for i in 0..layout.size().min(size).min(sizes[0]) {
                    assert_eq!(*ptr.add(i), i as u8, "byte {i} after resizing to {size}");
                }
                layout = Layout::from_size_align(size, 8).unwrap();
            }
            allocator.dealloc(ptr, layout);
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides() {
        let allocator = SplitAllocator;
        for size in [64, 2 * LARGE_BLOCK_BYTES] {
            let layout = Layout::from_size_align(size, 16).unwrap();
            unsafe {
                let ptr = allocator.alloc_zeroed(layout);
                assert!(!ptr.is_null());
                assert!((0..size).all(|i| *ptr.add(i) == 0));
                assert_eq!(ptr as usize % 16, 0);
                allocator.dealloc(ptr, layout);
            }
        }
    }
}

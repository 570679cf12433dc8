//! The process allocator: mimalloc for small blocks, the system allocator for large ones. It is
//! the binary's one unsafe code (the library forbids it).
//!
//! Decoded OTLP, X-Ray documents and EMF events are millions of small short-lived blocks a
//! second, which mimalloc serves far more cheaply than glibc's malloc. Large blocks (request
//! bodies, whole batches) are few; glibc gives them back to the OS as soon as they are freed,
//! which keeps peak RSS low under load. mimalloc is built with `no_thp` so that its arenas are
//! not backed by 2 MB pages (idle RSS).

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::raw::{c_int, c_long};

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (`include/mimalloc.h`); the Rust
/// bindings still number options as v2 did, so the index is ours (checked by a test).
const MI_OPTION_PURGE_DELAY: c_int = 15;
/// `mi_option_os_tag`, whose distinctive default (100) the test reads to check the numbering.
#[cfg(test)]
const MI_OPTION_OS_TAG: c_int = 18;

/// How long mimalloc keeps freed pages before giving them back to the OS: long enough to reuse
/// them across the next requests (purging at once costs an madvise per page run), short enough
/// not to hold a whole extra batch's pages (mimalloc's default is 1 s).
const PURGE_DELAY_MS: c_long = 100;

unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// Sets mimalloc's options; called first thing in `main`.
pub fn configure() {
    // SAFETY: mimalloc's options are plain integers it reads at each use; any value is valid.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
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

unsafe impl GlobalAlloc for SplitAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if is_large(layout.size()) {
                System.alloc(layout)
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if is_large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe {
            if is_large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
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

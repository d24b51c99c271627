//! The gateway's global allocator: mimalloc, entered the way its own `malloc` is.
//!
//! The `mimalloc` crate passes every Rust allocation to `mi_malloc_aligned`, alignment 1 or 8
//! included. mimalloc 3 serves that from its fast path only for blocks of at most 1 KiB;
//! above, it takes an aligned block of a power-of-two size or over-allocates by the
//! alignment and marks the page as holding interior pointers, which makes every later free
//! on that page slower too. A call through the gateway allocates about nine such blocks
//! (request and response buffers, boxed futures): about 2,500 instructions of ~69,000
//! (docs/benchmarks.md, "Issue 16, eighth round").
//!
//! Every mimalloc block is aligned to at least the machine word: blocks are whole words in
//! size, and each page's first block is aligned to 16 bytes. So an alignment up to a word goes
//! to `mi_malloc`/`mi_zalloc`/`mi_realloc`, as the system allocator does with `malloc`; larger
//! ones keep the aligned entry points.

#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

use libmimalloc_sys as mi;

/// Alignments every plain mimalloc block has.
const WORD: usize = core::mem::size_of::<usize>();

/// mimalloc as the global allocator (`#[global_allocator] static A: Allocator = Allocator;`).
pub struct Allocator;

// SAFETY: each method forwards to the mimalloc function with the same contract, and only
// asks its plain (unaligned) entry points for alignments their blocks always have (see above).
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: any size is valid for mi_malloc; the block is word-aligned.
            unsafe { mi::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: the alignment is a power of two (Layout guarantees it).
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: as in `alloc`.
            unsafe { mi::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: as in `alloc`.
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract), so from mimalloc,
        // whose free takes blocks of either entry point.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            // SAFETY: `ptr` is a live mimalloc block (the caller's contract); the new block is
            // word-aligned like the old one had to be.
            unsafe { mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast() }
        } else {
            // SAFETY: as above, keeping the layout's alignment.
            unsafe { mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast() }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    /// Sizes around mimalloc's size-class and page-kind edges (1 KiB fast path, 10 KiB small
    /// pages, ~84 KiB medium pages) and beyond.
    const SIZES: [usize; 14] = [1, 7, 8, 24, 100, 1000, 1024, 1025, 1280, 4096, 10_000, 12_345, 90_000, 300_000];

    #[test]
    fn every_block_has_its_alignment_and_keeps_its_bytes() {
        for size in SIZES {
            for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
                let layout = Layout::from_size_align(size, align).expect("valid layout");
                // SAFETY: a non-zero size; the block is freed with its own layout below.
                let p = unsafe { Allocator.alloc(layout) };
                assert!(!p.is_null(), "{size} bytes at {align}");
                assert_eq!(p as usize % align, 0, "{size} bytes at {align}");
                // SAFETY: `p` holds `size` bytes.
                unsafe { p.write_bytes(0xa5, size) };
                // SAFETY: `p` is live with `layout`; the new size is non-zero.
                let q = unsafe { Allocator.realloc(p, layout, size * 3 + 5) };
                assert!(!q.is_null(), "grow {size} bytes at {align}");
                assert_eq!(q as usize % align, 0, "grown {size} bytes at {align}");
                // SAFETY: the first `size` bytes were copied over.
                assert!(unsafe { core::slice::from_raw_parts(q, size) }.iter().all(|&b| b == 0xa5), "grow {size} at {align} kept the bytes");
                let grown = Layout::from_size_align(size * 3 + 5, align).expect("valid layout");
                // SAFETY: `q` is live with `grown`.
                unsafe { Allocator.dealloc(q, grown) };
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_after_reuse() {
        for size in SIZES {
            let layout = Layout::from_size_align(size, 8).expect("valid layout");
            // Dirty a block of this size first, so that a reused one would show it.
            // SAFETY: a non-zero size, freed right after with its layout.
            unsafe {
                let p = Allocator.alloc(layout);
                p.write_bytes(0xff, size);
                Allocator.dealloc(p, layout);
            }
            for align in [8, 64] {
                let layout = Layout::from_size_align(size, align).expect("valid layout");
                // SAFETY: a non-zero size; freed below with the same layout.
                let p = unsafe { Allocator.alloc_zeroed(layout) };
                assert_eq!(p as usize % align, 0);
                // SAFETY: `p` holds `size` bytes.
                assert!(unsafe { core::slice::from_raw_parts(p, size) }.iter().all(|&b| b == 0), "{size} bytes at {align} zeroed");
                // SAFETY: `p` is live with `layout`.
                unsafe { Allocator.dealloc(p, layout) };
            }
        }
    }

    #[test]
    fn shrinking_keeps_the_prefix() {
        let layout = Layout::from_size_align(50_000, 1).expect("valid layout");
        // SAFETY: as above.
        unsafe {
            let p = Allocator.alloc(layout);
            for i in 0..50_000 {
                p.add(i).write((i % 251) as u8);
            }
            let q = Allocator.realloc(p, layout, 700);
            let kept: Vec<u8> = core::slice::from_raw_parts(q, 700).to_vec();
            assert!(kept.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
            Allocator.dealloc(q, Layout::from_size_align(700, 1).expect("valid layout"));
        }
    }
}

//! Shared pieces of tolk's fuzz targets: an allocator that turns runaway allocations into
//! crashes, and small helpers the targets use to shape their input.
//!
//! The targets are built without a sanitizer (`cargo fuzz run -s none`, see README.md), so
//! libFuzzer's `-malloc_limit_mb` has no hooks to watch single allocations; this allocator does
//! that job, and also caps the live total, so an input that makes a reader reserve memory in
//! proportion to a size field (rather than to the bytes present) fails loudly and gets saved.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest single allocation allowed (256 MiB). Fuzz inputs are a few KiB, so anything near
/// this comes from trusting a length in the input.
pub const MAX_ONE_ALLOCATION: usize = 256 << 20;

/// Largest live total allowed (1 GiB), below libFuzzer's `-rss_limit_mb=2048`.
pub const MAX_LIVE: usize = 1 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator with the two caps above; over a cap it prints one line and aborts,
/// which libFuzzer reports as a crash and saves the input.
pub struct CappedAlloc;

impl CappedAlloc {
    /// Checks one allocation of `single` bytes that grows the live total by `grow` bytes.
    fn admit(single: usize, grow: usize) {
        let live = LIVE.load(Ordering::Relaxed);
        if single > MAX_ONE_ALLOCATION || live.saturating_add(grow) > MAX_LIVE {
            // No formatting: that could allocate inside the allocator.
            let _ = std::io::stderr()
                .write_all(b"\n==tolk-fuzz== allocation over the cap (runaway allocation)\n");
            std::process::abort();
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are kept around it.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::admit(layout.size(), layout.size());
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::admit(layout.size(), layout.size());
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::admit(new_size, new_size.saturating_sub(layout.size()));
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CappedAlloc = CappedAlloc;

/// Bytes currently allocated (for targets that check that a failed parse freed its memory).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The segmenter's notion of white space (`segment::chars::is_space`, which is crate-private):
/// Unicode white space, control characters, the byte-order mark and the zero-width spaces.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '\u{FEFF}' | '\u{200B}' | '\u{2060}')
}

/// Splits off the first byte as a small parameter for the target (0 when the input is empty).
pub fn split_param(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&p, rest)) => (p, rest),
        None => (0, data),
    }
}

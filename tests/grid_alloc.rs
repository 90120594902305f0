//! The Grid's bookkeeping allocation refused: this test binary's global allocator refuses
//! any single allocation above 1 GiB (returning null, which `GlobalAlloc` allows), so a
//! Grid of 2^28 cells, whose free list needs 4 GiB, meets `AllocFailed` on any machine,
//! whatever its memory and overcommit policy.

#![cfg(not(miri))]

use std::alloc::{GlobalAlloc, Layout, System};

use unimem::{Grid, MemError, Pin, Tape};

/// The system allocator, refusing allocations above 1 GiB.
struct Capped;

const CAP: usize = 1 << 30;

// SAFETY: every method forwards to `System` with the same arguments, or returns null for
// an allocation it refuses, which `GlobalAlloc::alloc` permits (allocation failure).
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (through `alloc`) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

#[test]
fn grid_bookkeeping_that_cannot_be_allocated_is_alloc_failed() {
    let tape = Tape::over(
        unimem::Block::builder(1 << 20)
            .pin(Pin::BestEffort)
            .open()
            .unwrap(),
    );
    let cells = 1 << 28;
    let err = Grid::builder(64, cells).over(tape).unwrap_err();
    assert_eq!(
        err,
        MemError::AllocFailed {
            requested: cells * 16
        }
    );
    assert!(err.to_string().contains("4.0 GiB"), "{err}");
}

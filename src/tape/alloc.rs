//! `impl allocator_api2::alloc::Allocator for &Tape` (feature `allocator-api2`), so that
//! `allocator_api2::vec::Vec::new_in(&tape)` and `Box::new_in(x, &tape)` work.
//!
//! A bump allocator frees nothing one allocation at a time, with one exception that makes
//! a growing `Vec` cheap: the **last** allocation (the one ending at the head).
//!
//! - `deallocate` gives the last allocation back (the head moves back to its start, a
//!   `Release` compare-exchange); any other is a no-op, reclaimed by `clear`.
//! - `grow` extends the last allocation in place (the head moves forward, `Acquire`) when
//!   its pointer suits the new alignment and the Tape has room; otherwise it takes a new
//!   allocation and copies.
//! - `shrink` gives the tail of the last allocation back; any other shrinks in place
//!   (nothing moves, the bytes stay taken).
//! - Zero-sized allocations take nothing: a dangling pointer aligned to the layout.
//!
//! An allocation that keeps its address after `shrink` but is not the last can never be
//! mistaken for the last one at a smaller size: the head stays at or past its original
//! end until it is deallocated (only the owner of the last allocation moves the head back).

use std::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use super::Tape;

// SAFETY:
// - a returned block stays valid until it is deallocated or the Tape is cleared or dropped;
//   `clear` needs `&mut Tape` and dropping needs ownership, neither possible while the
//   `&Tape` allocator (and so anything allocated with it) is alive;
// - every block is a take of the Tape, disjoint from every other live one; `deallocate`
//   and `shrink` move the head back only over the caller's own last allocation;
// - copies of `&Tape` are the same allocator: a block from one can be freed by another.
unsafe impl Allocator for &Tape {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        let (_, start) = self.bump(layout.size(), layout.align()).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(self.at(start), layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            let start = ptr.as_ptr().addr() - self.base_addr();
            self.give_back(start, start + layout.size());
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() != 0 && ptr.as_ptr().addr() & (new.align() - 1) == 0 {
            let start = ptr.as_ptr().addr() - self.base_addr();
            // `start + new.size()` cannot overflow: `start <= total <= isize::MAX` and a
            // Layout's size is at most `isize::MAX`.
            if self.extend(start + old.size(), start + new.size()) {
                return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
            }
        }
        let moved = self.allocate(new)?;
        // SAFETY: `ptr` is valid for `old.size()` bytes (caller's contract), `moved` for
        // `new.size() >= old.size()`, and they are distinct live allocations.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), moved.cast::<u8>().as_ptr(), old.size());
            self.deallocate(ptr, old);
        }
        Ok(moved)
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the caller's contract is `grow`'s.
        let grown = unsafe { self.grow(ptr, old, new)? };
        // SAFETY: `grown` is valid for `new.size()` bytes; the tail past `old.size()` is
        // the part `grow` leaves unspecified.
        unsafe {
            grown
                .cast::<u8>()
                .as_ptr()
                .add(old.size())
                .write_bytes(0, new.size() - old.size());
        }
        Ok(grown)
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if new.size() == 0 {
            // SAFETY: the caller's contract.
            unsafe { self.deallocate(ptr, old) };
            return Ok(dangling(new));
        }
        if ptr.as_ptr().addr() & (new.align() - 1) == 0 {
            let start = ptr.as_ptr().addr() - self.base_addr();
            self.give_back(start + new.size(), start + old.size());
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        let moved = self.allocate(new)?;
        // SAFETY: `ptr` is valid for `old.size() >= new.size()` bytes, `moved` for
        // `new.size()`, distinct live allocations.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), moved.cast::<u8>().as_ptr(), new.size());
            self.deallocate(ptr, old);
        }
        Ok(moved)
    }
}

/// An empty block at an address aligned to `layout`, for zero-sized allocations.
fn dangling(layout: Layout) -> NonNull<[u8]> {
    let ptr = ptr::without_provenance_mut::<u8>(layout.align());
    // SAFETY: an alignment is never 0.
    NonNull::slice_from_raw_parts(unsafe { NonNull::new_unchecked(ptr) }, 0)
}

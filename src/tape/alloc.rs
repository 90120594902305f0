//! `impl Allocator for &Tape` for both lines of allocator-api2: **0.2** (feature
//! `allocator-api2`), the line hashbrown, bumpalo and most collections accept, and **0.4**
//! (feature `allocator-api2-04`). So `hashbrown::HashMap::new_in(&tape)`,
//! `allocator_api2::vec::Vec::new_in(&tape)` and `Box::new_in(x, &tape)` work.
//!
//! The two traits have the same methods with the same contracts, and both take
//! `core::alloc::Layout`; one body ([`Bump`]) serves both, and a macro writes each impl as
//! a forwarding shell, so the second line costs an optional dependency and no logic.
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

use std::alloc::Layout;
use std::ptr::{self, NonNull};

use super::Tape;

/// The allocator's body, shared by the impls of both allocator-api2 lines. `None` is the
/// trait's `AllocError`.
pub(crate) struct Bump<'t>(pub(crate) &'t Tape);

impl Bump<'_> {
    #[inline]
    pub(crate) fn allocate(&self, layout: Layout) -> Option<NonNull<[u8]>> {
        if layout.size() == 0 {
            return Some(dangling(layout));
        }
        let (_, start) = self.0.bump(layout.size(), layout.align())?;
        Some(NonNull::slice_from_raw_parts(
            self.0.at(start),
            layout.size(),
        ))
    }

    /// # Safety
    ///
    /// The `Allocator::deallocate` contract: `ptr` was allocated by this Tape with `layout`.
    #[inline]
    pub(crate) unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            let start = ptr.as_ptr().addr() - self.0.base_addr();
            self.0.give_back(start, start + layout.size());
        }
    }

    /// # Safety
    ///
    /// The `Allocator::grow` contract.
    pub(crate) unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Option<NonNull<[u8]>> {
        if old.size() != 0 && ptr.as_ptr().addr() & (new.align() - 1) == 0 {
            let start = ptr.as_ptr().addr() - self.0.base_addr();
            // `start + new.size()` cannot overflow: `start <= total <= isize::MAX` and a
            // Layout's size is at most `isize::MAX`.
            if self.0.extend(start + old.size(), start + new.size()) {
                return Some(NonNull::slice_from_raw_parts(ptr, new.size()));
            }
        }
        let moved = self.allocate(new)?;
        // SAFETY: `ptr` is valid for `old.size()` bytes (caller's contract), `moved` for
        // `new.size() >= old.size()`, and they are distinct live allocations.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), moved.cast::<u8>().as_ptr(), old.size());
            self.deallocate(ptr, old);
        }
        Some(moved)
    }

    /// # Safety
    ///
    /// The `Allocator::grow_zeroed` contract.
    pub(crate) unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Option<NonNull<[u8]>> {
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
        Some(grown)
    }

    /// # Safety
    ///
    /// The `Allocator::shrink` contract.
    pub(crate) unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Option<NonNull<[u8]>> {
        if new.size() == 0 {
            // SAFETY: the caller's contract.
            unsafe { self.deallocate(ptr, old) };
            return Some(dangling(new));
        }
        if ptr.as_ptr().addr() & (new.align() - 1) == 0 {
            let start = ptr.as_ptr().addr() - self.0.base_addr();
            self.0.give_back(start + new.size(), start + old.size());
            return Some(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        let moved = self.allocate(new)?;
        // SAFETY: `ptr` is valid for `old.size() >= new.size()` bytes, `moved` for
        // `new.size()`, distinct live allocations.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), moved.cast::<u8>().as_ptr(), new.size());
            self.deallocate(ptr, old);
        }
        Some(moved)
    }
}

/// An empty block at an address aligned to `layout`, for zero-sized allocations.
fn dangling(layout: Layout) -> NonNull<[u8]> {
    let ptr = ptr::without_provenance_mut::<u8>(layout.align());
    // SAFETY: an alignment is never 0.
    NonNull::slice_from_raw_parts(unsafe { NonNull::new_unchecked(ptr) }, 0)
}

/// `unsafe impl $krate::alloc::Allocator for &Tape`, forwarding to [`Bump`].
macro_rules! allocator_impl {
    ($krate:ident) => {
        // SAFETY:
        // - a returned block stays valid until it is deallocated or the Tape is cleared or
        //   dropped; `clear` needs `&mut Tape` and dropping needs ownership, neither
        //   possible while the `&Tape` allocator (and so anything allocated with it) is
        //   alive;
        // - every block is a take of the Tape, disjoint from every other live one;
        //   `deallocate` and `shrink` move the head back only over the caller's own last
        //   allocation;
        // - copies of `&Tape` are the same allocator: a block from one can be freed by
        //   another.
        unsafe impl $krate::alloc::Allocator for &Tape {
            #[inline]
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, $krate::alloc::AllocError> {
                Bump(self).allocate(layout).ok_or($krate::alloc::AllocError)
            }

            #[inline]
            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                // SAFETY: the trait's contract is `Bump::deallocate`'s.
                unsafe { Bump(self).deallocate(ptr, layout) }
            }

            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $krate::alloc::AllocError> {
                // SAFETY: the trait's contract is `Bump::grow`'s.
                unsafe { Bump(self).grow(ptr, old, new) }.ok_or($krate::alloc::AllocError)
            }

            unsafe fn grow_zeroed(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $krate::alloc::AllocError> {
                // SAFETY: the trait's contract is `Bump::grow_zeroed`'s.
                unsafe { Bump(self).grow_zeroed(ptr, old, new) }.ok_or($krate::alloc::AllocError)
            }

            unsafe fn shrink(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, $krate::alloc::AllocError> {
                // SAFETY: the trait's contract is `Bump::shrink`'s.
                unsafe { Bump(self).shrink(ptr, old, new) }.ok_or($krate::alloc::AllocError)
            }
        }
    };
}

#[cfg(feature = "allocator-api2")]
allocator_impl!(allocator_api2);
#[cfg(feature = "allocator-api2-04")]
allocator_impl!(allocator_api2_04);

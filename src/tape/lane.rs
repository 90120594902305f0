//! [`Lane`]: a per-thread cursor that takes chunks from a [`Tape`] with one atomic step and
//! serves takes inside them with plain arithmetic.
//!
//! # Design
//!
//! A Lane holds a chunk `cursor..end` (addresses) that it reserved from the Tape with one
//! [`Tape::bump`]. A take rounds the cursor up to the alignment and moves it past the
//! bytes: two or three integer instructions, no atomic, no fence. When a take does not fit,
//! the cold path refills:
//!
//! - a take larger than the chunk goes straight to the Tape: no chunk is spent on it and
//!   the current chunk is kept;
//! - otherwise the Lane reserves a new chunk, aligned to the take. If nobody took from the
//!   Tape since the Lane's last reservation, the new chunk starts where the old one ends,
//!   and the Lane simply grows: nothing is lost. Otherwise the rest of the old chunk, and
//!   the padding before the new one, are abandoned: that is the Lane's **waste**, counted
//!   by [`Lane::wasted`];
//! - if the Tape cannot hold a new chunk, the take goes straight to the Tape, so a Lane
//!   fails only when the Tape itself cannot fit the take.
//!
//! Dropping a Lane gives the rest of its chunk back if it is still the last thing taken
//! from the Tape; otherwise those bytes stay taken until the Tape is cleared.
//!
//! # Why it is correct
//!
//! The chunk is a take like any other (disjoint from every other take, see the Tape's
//! module docs) and the Lane is not `Sync`: only the thread holding `&mut Lane` moves its
//! cursor, and every take it serves lies inside `cursor..end` before the cursor moves past
//! it. Overflow: `align - 1 + size <= isize::MAX` is checked first, so the distance
//! `next - cursor`, computed modulo 2^64, is exact, and the take fits if and only if that
//! distance is at most `end - cursor`.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use bytemuck::Pod;

use super::{Tape, slice_size, valid};
use crate::error::MemError;

/// A per-thread cursor into a [`Tape`]: takes without atomics from chunks it reserves with
/// one atomic step each.
///
/// Made by [`Tape::lane`]. What it hands out lives as long as the Tape borrow (`'a`), not
/// the Lane: dropping the Lane gives back only the part of its chunk it never handed out.
///
/// # Sizing `chunk`
///
/// A refill costs one compare-exchange on the Tape's shared head (the contended cache
/// line); a Lane of chunk `c` serving takes of `s` bytes refills once every `c / s` takes.
/// It wastes nothing while it is the only one taking (its own takes larger than `chunk`
/// count as another taker); with other takers, each refill may
/// abandon the rest of the old chunk, less than the take that did not fit (`size + align -
/// 1`). So:
///
/// - `chunk` of 64 to 1024 times the typical take: refills are rare (the atomic cost is
///   spread over as many takes) and waste is at most 1/64 to 1/1024 of the chunk per
///   refill;
/// - takes larger than `chunk` bypass the Lane and go straight to the Tape (no waste, one
///   atomic step each): size `chunk` above the takes that should be fast;
/// - with `t` threads, up to `t` chunks are reserved and partly unused at any time, so
///   leave `t * chunk` of slack in the Tape;
/// - a `chunk` of 0 makes every take go to the Tape.
///
/// 64 KiB suits takes of up to a few hundred bytes.
///
/// `Lane` is `Send` (move it to the thread that uses it) but not `Sync`:
///
/// ```compile_fail,E0277
/// fn shared<T: Sync>(_: &T) {}
/// let tape = unimem::Tape::start(4096).unwrap();
/// shared(&tape.lane(1024));
/// ```
///
/// # Examples
///
/// ```
/// use unimem::Tape;
///
/// let tape = Tape::start(1 << 20)?;
/// std::thread::scope(|s| {
///     for t in 0..4u32 {
///         let mut lane = tape.lane(16 << 10);
///         s.spawn(move || {
///             for _ in 0..100 {
///                 let p = lane.take(64, 64).unwrap();
///                 assert_eq!(p as usize % 64, 0);
///             }
///             let xs = lane.take_slice::<u32>(16).unwrap();
///             xs.fill(t);
///         });
///     }
/// });
/// assert!(tape.used() >= 4 * (100 * 64 + 64));
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct Lane<'a> {
    tape: &'a Tape,
    /// Address of the next free byte of the chunk.
    cursor: usize,
    /// Address one past the chunk (`cursor == end == 0` before the first chunk).
    end: usize,
    /// Address below which bytes may hold leftovers of earlier takes: typed takes zero
    /// them. The Tape's peak, read after the Lane's latest reservation.
    dirty: usize,
    chunk: usize,
    wasted: usize,
    /// Send, not Sync.
    _not_sync: PhantomData<Cell<()>>,
}

impl<'a> Lane<'a> {
    pub(super) fn new(tape: &'a Tape, chunk: usize) -> Lane<'a> {
        Lane {
            tape,
            cursor: 0,
            end: 0,
            dirty: 0,
            chunk,
            wasted: 0,
            _not_sync: PhantomData,
        }
    }

    /// Takes `size` bytes aligned to `align`, or `None` if the request is invalid or the
    /// Tape cannot fit it: the same contract as [`Tape::take`], without an atomic unless
    /// the chunk runs out.
    ///
    /// ```
    /// let tape = unimem::Tape::start(1 << 16)?;
    /// let mut lane = tape.lane(4096);
    /// let a = lane.take(64, 64).unwrap();
    /// let b = lane.take(64, 64).unwrap();
    /// assert_eq!(b as usize - a as usize, 64);
    /// assert_eq!(tape.used(), 4096); // one chunk reserved
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline(always)]
    pub fn take(&mut self, size: usize, align: usize) -> Option<*mut u8> {
        let at = self.bump(size, align)?;
        Some(self.tape.at_addr(at).as_ptr())
    }

    /// [`take`](Lane::take), saying why not.
    ///
    /// # Errors
    ///
    /// As [`Tape::try_take`]; [`TapeFull`](MemError::TapeFull) reports the Tape's free
    /// bytes.
    #[inline]
    pub fn try_take(&mut self, size: usize, align: usize) -> Result<NonNull<u8>, MemError> {
        match self.bump(size, align) {
            Some(at) => Ok(self.tape.at_addr(at)),
            None => Err(self.tape.refusal(1, size, align)),
        }
    }

    /// Takes room for `len` values of `T`, as [`Tape::take_slice`] does (initialized, zero
    /// where the Tape handed the bytes out before), living as long as the Tape borrow.
    ///
    /// ```
    /// let tape = unimem::Tape::start(1 << 16)?;
    /// let mut lane = tape.lane(4096);
    /// let a = lane.take_slice::<f32>(3).unwrap();
    /// let b = lane.take_slice::<f32>(3).unwrap();
    /// a.fill(1.0);
    /// b.copy_from_slice(a);
    /// assert_eq!(b, [1.0; 3]);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline]
    pub fn take_slice<T: Pod>(&mut self, len: usize) -> Option<&'a mut [T]> {
        let size = slice_size::<T>(len)?;
        let at = self.bump(size, align_of::<T>())?;
        // SAFETY: `at..at + size` was just taken by this Lane.
        Some(unsafe { self.typed(at, len) })
    }

    /// [`take_slice`](Lane::take_slice), saying why not.
    ///
    /// # Errors
    ///
    /// As [`Tape::try_take_slice`].
    #[inline]
    pub fn try_take_slice<T: Pod>(&mut self, len: usize) -> Result<&'a mut [T], MemError> {
        match slice_size::<T>(len).and_then(|size| self.bump(size, align_of::<T>())) {
            // SAFETY: as in `take_slice`.
            Some(at) => Ok(unsafe { self.typed(at, len) }),
            None => Err(self.tape.refusal(len, size_of::<T>(), align_of::<T>())),
        }
    }

    /// Takes room for one `T`, as [`Tape::take_one`] does.
    #[inline]
    pub fn take_one<T: Pod>(&mut self) -> Option<&'a mut T> {
        self.take_slice::<T>(1).map(|one| &mut one[0])
    }

    /// The Tape this Lane takes from.
    #[inline]
    pub fn tape(&self) -> &'a Tape {
        self.tape
    }

    /// The chunk size given to [`Tape::lane`].
    #[inline]
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// Bytes left in the current chunk.
    #[inline]
    pub fn free(&self) -> usize {
        self.end - self.cursor
    }

    /// Bytes this Lane abandoned at refills: the ends of old chunks and the padding before
    /// new ones, lost until the Tape is cleared.
    #[inline]
    pub fn wasted(&self) -> usize {
        self.wasted
    }

    /// The fast path: the address of `size` bytes aligned to `align` in the chunk, or the
    /// refill.
    #[inline(always)]
    fn bump(&mut self, size: usize, align: usize) -> Option<usize> {
        if !valid(size, align) {
            return None;
        }
        let mask = align - 1;
        // For sizes that are multiples of the alignment the round-up comes after the add:
        // one add and one and between one cursor and the next.
        let (at, next) = if size & mask == 0 {
            let next = self.cursor.wrapping_add(mask + size) & !mask;
            (next.wrapping_sub(size), next)
        } else {
            let at = self.cursor.wrapping_add(mask) & !mask;
            (at, at.wrapping_add(size))
        };
        // `next - cursor` is `pad + size <= isize::MAX`, exact modulo 2^64 (module docs).
        if next.wrapping_sub(self.cursor) <= self.end - self.cursor {
            self.cursor = next;
            Some(at)
        } else {
            self.refill(size, align)
        }
    }

    /// The slow path: a new chunk, or a take straight from the Tape.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, size: usize, align: usize) -> Option<usize> {
        let tape = self.tape;
        let base = tape.base_addr();
        if size <= self.chunk {
            if let Some((before, start)) = tape.bump(self.chunk, align) {
                let (before, start) = (base + before, base + start);
                if before != self.end {
                    // Someone took in between: the old chunk's rest and the padding are lost.
                    self.wasted += (self.end - self.cursor) + (start - before);
                    self.cursor = start;
                }
                // Else the new chunk continues the old one: the cursor stays.
                self.end = start + self.chunk;
                self.dirty = base + tape.dirty();
                // Fits: the cursor rounded up to `align` is at most `start` (exact modulo
                // 2^64, so the wrapping add is too).
                let at = self.cursor.wrapping_add(align - 1) & !(align - 1);
                self.cursor = at + size;
                debug_assert!(self.cursor <= self.end);
                return Some(at);
            }
        }
        let (_, start) = tape.bump(size, align)?;
        self.dirty = base + tape.dirty();
        Some(base + start)
    }

    /// `len` values of `T` at address `at`, scrubbed.
    ///
    /// # Safety
    ///
    /// `at..at + len * size_of::<T>()` must be a fresh take of this Lane, aligned for `T`.
    #[inline(always)]
    unsafe fn typed<T: Pod>(&self, at: usize, len: usize) -> &'a mut [T] {
        let tape: &'a Tape = self.tape;
        let base = tape.base_addr();
        // SAFETY: a take of this Lane's (contract). `dirty` was read after the reservation
        // that covers `at` (module docs of the Tape: typed takes are initialized).
        unsafe {
            tape.scrub(
                at - base,
                len * size_of::<T>(),
                self.dirty.saturating_sub(base),
            )
        };
        // SAFETY:
        // - the range is inside the Block, aligned for `T`, and handed out by this call
        //   alone; it stays valid and unaliased for `'a`: the Tape is borrowed for `'a`,
        //   and `clear` needs `&mut Tape`;
        // - every byte is initialized and any bit pattern is a valid `T: Pod`.
        unsafe { std::slice::from_raw_parts_mut(tape.at_addr(at).as_ptr().cast::<T>(), len) }
    }
}

impl Drop for Lane<'_> {
    /// Gives the rest of the chunk back to the Tape if nothing was taken after it.
    fn drop(&mut self) {
        if self.cursor < self.end {
            let base = self.tape.base_addr();
            self.tape.give_back(self.cursor - base, self.end - base);
        }
    }
}

impl fmt::Debug for Lane<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lane")
            .field("chunk", &self.chunk)
            .field("free", &self.free())
            .field("wasted", &self.wasted)
            .field("tape", &self.tape.block().id())
            .finish()
    }
}

//! [`Tape`]: a lock-free bump allocator over a [`Block`], and [`Lane`], a per-thread cursor
//! into it.
//!
//! # Design
//!
//! A Tape owns a Block (kept as its [`Extent`]: identity and addresses, no byte views) and
//! one atomic number, the **head**: the offset of the first byte not yet taken. A take
//! moves the head forward past the alignment padding and the bytes taken, with a
//! compare-exchange loop, so a take that does not fit moves nothing and loses no space
//! (`fetch_add` would overshoot and need undoing). [`clear`](Tape::clear) stores 0 in the
//! head: every byte is free again.
//!
//! # Why it is correct
//!
//! - **Disjoint.** A successful take is a compare-exchange from `h` to `h + pad + size`
//!   and hands out `h + pad .. h + pad + size`. Read-modify-writes of one atomic are
//!   totally ordered, so the intervals `h .. h'` of successful takes tile `0 .. head`
//!   without overlap, under any interleaving. The head moves back only in
//!   [`clear`](Tape::clear), which takes `&mut self` (so no reference handed out from
//!   `&self` is alive), and in [`give_back`](Tape::give_back), which moves it from the end
//!   of the last take to its start, and only for the owner of that take.
//! - **Inside the Block.** `head <= total` always: a take succeeds only if
//!   `pad + size <= total - head`, computed without overflow because
//!   `size <= isize::MAX - (align - 1)` is checked first and `pad < align`.
//! - **Aligned.** The padding is measured on the absolute address (`base + head`), so
//!   alignments above the Block's own (the page) are honoured too.
//! - **Memory orderings.** The head only splits up address space; the bytes in a take are
//!   not published through it, so a take needs no ordering to be disjoint. One case needs
//!   more: bytes that return to the head by a give-back (a deallocation of the last
//!   allocation, a Lane giving back the rest of its chunk) are taken again by another
//!   thread, whose writes must happen after the first owner's. A give-back is therefore a
//!   `Release` compare-exchange and a take's successful compare-exchange is `Acquire`: the
//!   taker reads the given-back head (or a later value in its release sequence, which
//!   read-modify-writes continue) and so synchronizes with the give-back. On x86-64 every
//!   locked instruction is already a full barrier; on AArch64 it is `casa` for `cas`. The
//!   first load, a failed compare-exchange, `used()` and `peak()` are `Relaxed`.
//!   `clear` has `&mut self`: whatever gave this thread exclusive access (a join, the end
//!   of a scope) already ordered every earlier use.
//! - **Typed takes are initialized.** `take_slice` and `take_one` hand out `&mut [T]` for
//!   `T: Pod`, which must not expose uninitialized bytes. Bytes never taken since
//!   [`Tape::over`] hold what the Block held (a Block is zero-filled at open and its views
//!   write only initialized bytes). Bytes taken before may have been left uninitialized by
//!   their earlier owner (raw `take` writers, padding written through the `Allocator`
//!   impl), so a typed take zeroes the part of its range below the **peak**, the highest
//!   head ever folded in: `clear` folds the head into it, and a give-back raises it to the
//!   end of what it gives back *before* its `Release`, so the next taker sees it. The take
//!   path itself never touches the peak.
//!
//! - **Read-only Tapes hand out nothing.** A frozen Tape, or one over a read-only import
//!   (`read_only.rs`, Linux), keeps its head at `total`: every take fails on the fast path
//!   as if full, and the cold path reports why. Only a frozen Tape gives `&[T]` views by
//!   offset, because only then can no process change the bytes.
//!
//! The loom models (`loom.rs`, `RUSTFLAGS="--cfg loom"`) check disjointness, bounds and the
//! give-back ordering under every interleaving of two and three threads; Miri runs the unit
//! tests (`tests.rs`) with strict provenance.

mod lane;
#[cfg(all(target_os = "linux", not(miri)))]
mod read_only;

#[cfg(any(feature = "allocator-api2", feature = "allocator-api2-04"))]
mod alloc;
#[cfg(all(test, loom))]
mod loom;
#[cfg(all(test, not(loom)))]
mod tests;

pub use lane::Lane;

use std::fmt;
use std::ptr::NonNull;

use bytemuck::Pod;

use crate::block::{Block, Extent};
use crate::error::MemError;
use crate::padded::Padded;
use crate::sync::{AtomicUsize, Ordering};

/// A lock-free bump allocator over one [`Block`]: takes are a compare-exchange on one
/// atomic head, `clear` is one store.
///
/// Every take is aligned, inside the Block, and disjoint from every other live take, from
/// any number of threads at once. Nothing is given back one take at a time (except the last
/// one, through the `Allocator` impl): [`clear`](Tape::clear) frees everything at once, and
/// needs `&mut self`, so the borrow checker proves that nothing taken is still borrowed.
///
/// - [`take`](Tape::take) / [`try_take`](Tape::try_take): raw bytes, `*mut u8`;
/// - [`take_slice`](Tape::take_slice) / [`take_one`](Tape::take_one): `&mut [T]` / `&mut T`
///   for [`Pod`] types, safe, initialized, living as long as the `&Tape` borrow;
/// - [`lane`](Tape::lane): a [`Lane`] per thread, which takes chunks from the Tape and
///   bumps inside them without atomics.
///
/// Addresses are for this process; [`offset_of`](Tape::offset_of) gives the offset from
/// the Block's base, which is what other processes and devices use. [`block`](Tape::block)
/// lends the Block's [`Extent`] (address, size, id, file descriptor) but no view of its
/// bytes, which the Tape has handed out.
///
/// `Tape` is `Send` and `Sync`.
///
/// # Examples
///
/// ```
/// use unimem::Tape;
///
/// let mut tape = Tape::start(1 << 20)?;
/// let xs = tape.take_slice::<f32>(256).unwrap();
/// let ys = tape.take_slice::<f32>(256).unwrap();
/// xs.fill(1.0);
/// ys.copy_from_slice(xs);
/// assert_eq!(ys[255], 1.0);
///
/// let raw = tape.take(4096, 64).unwrap();
/// assert_eq!(raw as usize % 64, 0);
/// assert_eq!(tape.used(), 2 * 1024 + 4096);
/// assert_eq!(tape.offset_of(raw), Some(2048));
///
/// tape.clear();
/// assert_eq!(tape.used(), 0);
/// assert_eq!(tape.peak(), 2 * 1024 + 4096);
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct Tape {
    /// Offset of the first byte not taken, `0..=total`. Alone on its cache lines: it is
    /// the one thing every taking thread writes.
    head: Padded<AtomicUsize>,
    /// The Block's first byte, with the provenance of the whole Block.
    base: NonNull<u8>,
    /// The Block's size.
    total: usize,
    /// The highest head folded in by `clear` and by give-backs: `peak()` and, for typed
    /// takes, the bound below which bytes may hold leftovers from an earlier take.
    peak: AtomicUsize,
    /// Writable, read-only or frozen. Changes only with `&mut self` (`freeze`), so `&self`
    /// methods read a plain field; the take path never reads it.
    mode: Mode,
    extent: Extent,
}

/// What a Tape may do with its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(all(target_os = "linux", not(miri))), allow(dead_code))]
enum Mode {
    /// Takes hand out the bytes; `clear` frees them.
    Writable,
    /// Nothing is handed out: the head stays at `total` (so every take fails on the fast
    /// path as if full, and `refusal` says why), even across `clear`. The bytes may still
    /// change in another process, so they are not readable by offset either.
    ReadOnly,
    /// Read-only, and the Block is frozen: no process can change the bytes, so `read` hands
    /// out `&[T]` views of them.
    Frozen,
}

// SAFETY: `base` points into the memory `extent` owns, which is process-wide and not tied
// to a thread (`Extent: Send + Sync`); the other fields are atomics and plain numbers.
unsafe impl Send for Tape {}
// SAFETY: every `&self` method either reads immutable fields or uses the atomics; the bytes
// are handed out only as disjoint ranges (see the module docs), so no two threads ever get
// references to the same byte through `&Tape`.
unsafe impl Sync for Tape {}

impl Tape {
    /// Opens a pinned [`Block`] of at least `size` bytes and starts a Tape over it. Same as
    /// `Tape::over(Block::open(size)?)`.
    ///
    /// # Errors
    ///
    /// Those of [`Block::open`]: [`ZeroSize`](MemError::ZeroSize),
    /// [`SizeOverflow`](MemError::SizeOverflow), [`LockRefused`](MemError::LockRefused)
    /// (open the Block with [`Pin::BestEffort`](crate::Pin::BestEffort) and use
    /// [`Tape::over`] to run unpinned), ...
    #[inline]
    pub fn start(size: usize) -> Result<Tape, MemError> {
        Ok(Tape::over(Block::open(size)?))
    }

    /// Starts an empty Tape over `block`, which it keeps until it is dropped.
    ///
    /// The Tape does not clear the Block: bytes not yet taken hold what the Block held
    /// (zeros for a Block fresh from [`Block::open`]).
    ///
    /// ```
    /// use unimem::{Block, Pin, Tape};
    ///
    /// let block = Block::builder(64 << 10).pin(Pin::BestEffort).name("scratch").open()?;
    /// let tape = Tape::over(block);
    /// assert_eq!(tape.total(), 64 << 10);
    /// assert_eq!(tape.block().name(), "scratch");
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline]
    pub fn over(block: Block) -> Tape {
        let extent = block.into_extent();
        Tape {
            head: Padded(AtomicUsize::new(0)),
            base: extent.base(),
            total: extent.size(),
            peak: AtomicUsize::new(0),
            mode: Mode::Writable,
            extent,
        }
    }

    /// Takes `size` bytes aligned to `align` (a power of two, any size, page sizes and
    /// above included), or `None` if they do not fit or the request is invalid (see
    /// [`try_take`](Tape::try_take) for why).
    ///
    /// The bytes are initialized but their values are unspecified: leftovers from an
    /// earlier take before a [`clear`](Tape::clear), or what the Block held. The pointer is
    /// valid for reads and writes of `size` bytes until the Tape is cleared, frozen or
    /// dropped, and no other take overlaps it. Writing through it is `unsafe`; the typed takes are the
    /// safe way in.
    ///
    /// Lock-free: one compare-exchange when uncontended, retried only when another thread
    /// moved the head in between.
    ///
    /// ```
    /// # let tape = unimem::Tape::start(1 << 16)?;
    /// let p = tape.take(100, 64).unwrap();
    /// assert!(tape.owns(p) && p as usize % 64 == 0);
    /// assert_eq!(tape.take(0, 8), None);
    /// assert_eq!(tape.take(8, 3), None);
    /// assert_eq!(tape.take(1 << 20, 8), None);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline]
    pub fn take(&self, size: usize, align: usize) -> Option<*mut u8> {
        let (_, start) = self.bump(size, align)?;
        Some(self.at(start).as_ptr())
    }

    /// Takes `size` bytes aligned to `align`, or says why not. See [`take`](Tape::take).
    ///
    /// # Errors
    ///
    /// - [`ZeroSize`](MemError::ZeroSize): `size == 0`;
    /// - [`BadAlignment`](MemError::BadAlignment): `align` is not a power of two;
    /// - [`TakeOverflow`](MemError::TakeOverflow): `size` rounded up to `align` exceeds
    ///   `isize::MAX` (no memory can hold it);
    /// - [`TapeFull`](MemError::TapeFull): the padding and `size` exceed the free bytes;
    ///   it carries the size and the free bytes at the time.
    /// - [`TapeReadOnly`](MemError::TapeReadOnly): the Tape is frozen or over a read-only
    ///   import, and hands out nothing (reported before any of the above).
    ///
    /// ```
    /// use unimem::{MemError, Tape};
    ///
    /// let tape = Tape::start(4096)?;
    /// assert!(tape.try_take(4000, 8).is_ok());
    /// assert_eq!(
    ///     tape.try_take(200, 8),
    ///     Err(MemError::TapeFull { requested: 200, align: 8, free: 96 })
    /// );
    /// assert_eq!(tape.try_take(8, 48), Err(MemError::BadAlignment { align: 48 }));
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline]
    pub fn try_take(&self, size: usize, align: usize) -> Result<NonNull<u8>, MemError> {
        match self.bump(size, align) {
            Some((_, start)) => Ok(self.at(start)),
            None => Err(self.refusal(1, size, align)),
        }
    }

    /// Takes room for `len` values of `T`, aligned to `align_of::<T>()`, as a mutable
    /// slice that lives as long as the `&self` borrow; `None` if it does not fit, or if
    /// `len` is 0 or `len * size_of::<T>()` overflows.
    ///
    /// Every byte is initialized: zero where the Tape handed it out before (so a reused
    /// Tape gives zeros), otherwise what the Block held (zeros for a fresh Block). A
    /// zero-sized `T` is a compile-time error.
    ///
    /// ```
    /// let mut tape = unimem::Tape::start(1 << 16)?;
    /// let a = tape.take_slice::<u32>(4).unwrap();
    /// let b = tape.take_slice::<u32>(4).unwrap();
    /// a.copy_from_slice(&[1, 2, 3, 4]);
    /// b.fill(9);
    /// assert_eq!(a, [1, 2, 3, 4]);
    ///
    /// tape.clear();
    /// assert_eq!(tape.take_slice::<u32>(8).unwrap(), [0; 8]);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline]
    #[allow(clippy::mut_from_ref)] // Each take is a range no one else gets: see the module docs.
    pub fn take_slice<T: Pod>(&self, len: usize) -> Option<&mut [T]> {
        let size = slice_size::<T>(len)?;
        let (_, start) = self.bump(size, align_of::<T>())?;
        // SAFETY: `start..start + size` was just taken: inside the Block, aligned for `T`,
        // and disjoint from every other live take.
        Some(unsafe { self.typed(start, len) })
    }

    /// [`take_slice`](Tape::take_slice), saying why not.
    ///
    /// # Errors
    ///
    /// As [`try_take`](Tape::try_take); [`TakeOverflow`](MemError::TakeOverflow) also when
    /// `len * size_of::<T>()` overflows.
    #[inline]
    #[allow(clippy::mut_from_ref)] // Each take is a range no one else gets: see the module docs.
    pub fn try_take_slice<T: Pod>(&self, len: usize) -> Result<&mut [T], MemError> {
        match slice_size::<T>(len).and_then(|size| self.bump(size, align_of::<T>())) {
            // SAFETY: as in `take_slice`.
            Some((_, start)) => Ok(unsafe { self.typed(start, len) }),
            None => Err(self.refusal(len, size_of::<T>(), align_of::<T>())),
        }
    }

    /// Takes room for one `T`, aligned to `align_of::<T>()`, initialized as in
    /// [`take_slice`](Tape::take_slice); `None` if it does not fit.
    ///
    /// ```
    /// let tape = unimem::Tape::start(4096)?;
    /// let n = tape.take_one::<u64>().unwrap();
    /// *n += 5;
    /// assert_eq!(*n, 5);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline]
    pub fn take_one<T: Pod>(&self) -> Option<&mut T> {
        self.take_slice::<T>(1).map(|one| &mut one[0])
    }

    /// [`take_one`](Tape::take_one), saying why not.
    ///
    /// # Errors
    ///
    /// [`TapeFull`](MemError::TapeFull) when it does not fit.
    #[inline]
    pub fn try_take_one<T: Pod>(&self) -> Result<&mut T, MemError> {
        self.try_take_slice::<T>(1).map(|one| &mut one[0])
    }

    /// A [`Lane`] for this thread: takes `chunk` bytes at a time from the Tape, with one
    /// atomic step, and serves takes from the chunk with plain arithmetic. See [`Lane`] for
    /// how to size `chunk`. Creating a Lane takes nothing yet.
    #[inline]
    pub fn lane(&self, chunk: usize) -> Lane<'_> {
        Lane::new(self, chunk)
    }

    /// Frees everything at once: O(1), a few stores, whatever the Tape's size.
    ///
    /// `&mut self` proves that nothing taken is still borrowed. Pointers from
    /// [`take`](Tape::take) must not be used after it (they may be handed out again).
    #[inline]
    pub fn clear(&mut self) {
        let head = self.head.load(Ordering::Relaxed);
        if head > self.peak.load(Ordering::Relaxed) {
            self.peak.store(head, Ordering::Relaxed);
        }
        // A read-only Tape stays full: it hands out nothing.
        let empty = match self.mode {
            Mode::Writable => 0,
            Mode::ReadOnly | Mode::Frozen => self.total,
        };
        self.head.store(empty, Ordering::Relaxed);
    }

    /// Bytes taken, alignment padding included. `used() + free() == total()`.
    #[inline]
    pub fn used(&self) -> usize {
        self.head.load(Ordering::Relaxed)
    }

    /// Bytes not taken. A take of `size` bytes aligned to `align` fits if
    /// `size + padding <= free()`, where the padding is less than `align`.
    #[inline]
    pub fn free(&self) -> usize {
        self.total - self.used()
    }

    /// The Block's size: every byte the Tape can hand out.
    #[inline]
    pub fn total(&self) -> usize {
        self.total
    }

    /// The most bytes ever in use at once since the Tape started: the highest
    /// [`used()`](Tape::used), across clears. Costs nothing on the take path: `clear`
    /// folds the head into it.
    #[inline]
    pub fn peak(&self) -> usize {
        self.peak
            .load(Ordering::Relaxed)
            .max(self.head.load(Ordering::Relaxed))
    }

    /// Whether `ptr` points into this Tape's Block (taken or not).
    #[inline]
    pub fn owns<T: ?Sized>(&self, ptr: *const T) -> bool {
        self.extent.contains(ptr.cast::<u8>())
    }

    /// The offset of `ptr` from the Block's first byte, if it points into the Block: the
    /// address to give another process or a device, which map the Block elsewhere.
    #[inline]
    pub fn offset_of<T: ?Sized>(&self, ptr: *const T) -> Option<usize> {
        let ptr = ptr.cast::<u8>();
        self.owns(ptr)
            .then(|| ptr.addr() - self.base.as_ptr().addr())
    }

    /// The Block's identity and addresses: [`address`](Extent::address),
    /// [`size`](Extent::size), [`id`](Extent::id), the file descriptor. No view of its
    /// bytes: those are handed out by the Tape.
    #[inline]
    pub fn block(&self) -> &Extent {
        &self.extent
    }

    /// Whether the Tape hands out nothing: frozen by [`freeze`](Tape::freeze) (or a freeze
    /// that did not finish), or over a read-only import
    /// ([`over_read_only`](Tape::over_read_only)). Always `false` off Linux.
    #[inline]
    pub fn is_read_only(&self) -> bool {
        self.mode != Mode::Writable
    }

    /// Whether the Tape is frozen: no process can change its bytes, and
    /// [`read`](Tape::read) hands out views of them. Always `false` off Linux.
    #[inline]
    pub fn is_frozen(&self) -> bool {
        self.mode == Mode::Frozen
    }

    /// Moves the head forward over `size` bytes aligned to `align`: the head before and
    /// the offset of the first byte taken, or `None` if the request is invalid or does
    /// not fit. The one place the head moves forward.
    #[inline(always)]
    pub(crate) fn bump(&self, size: usize, align: usize) -> Option<(usize, usize)> {
        if !valid(size, align) {
            return None;
        }
        let mask = align - 1;
        if self.base_addr() & mask != 0 {
            return self.bump_beyond(size, align);
        }
        // The base is aligned to `align`, so offsets align as addresses do. No overflow:
        // `head <= total <= isize::MAX` and `mask + size <= isize::MAX` (`valid`).
        let step = mask + size;
        // Sizes that are multiples of the alignment (most are) round up after adding the
        // size: `(head + mask + size) & !mask`, so the compare-exchange waits on the load,
        // one add and one and; the bounds check is off that path.
        let whole = size & mask == 0;
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let (start, next) = if whole {
                let next = (head + step) & !mask;
                (next - size, next)
            } else {
                let start = (head + mask) & !mask;
                (start, start + size)
            };
            if next > self.total {
                return None;
            }
            match self
                .head
                .compare_exchange_weak(head, next, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Some((head, start)),
                Err(now) => head = now,
            }
        }
    }

    /// [`bump`](Tape::bump) for an alignment above the base's own (above the page size,
    /// usually): the padding is measured on the absolute address.
    #[cold]
    #[inline(never)]
    fn bump_beyond(&self, size: usize, align: usize) -> Option<(usize, usize)> {
        let mask = align - 1;
        let base = self.base_addr();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // Bytes from the head to the next multiple of `align`, on the absolute address.
            let pad = base.wrapping_add(head).wrapping_neg() & mask;
            // No overflow: `pad <= mask` and `size <= isize::MAX - mask` (`valid`). No
            // underflow: `head <= total` always.
            let need = pad + size;
            if need > self.total - head {
                return None;
            }
            match self.head.compare_exchange_weak(
                head,
                head + need,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some((head, head + pad)),
                Err(now) => head = now,
            }
        }
    }

    /// Gives back `start..end` if it is the last thing taken (`end` is the head): moves
    /// the head back to `start` and says whether it did. Only the owner of the take ending
    /// at `end` may call it, once it no longer uses the bytes.
    #[inline]
    pub(crate) fn give_back(&self, start: usize, end: usize) -> bool {
        debug_assert!(start <= end && end <= self.total, "give_back out of range");
        if self.head.load(Ordering::Relaxed) != end {
            return false;
        }
        // The bytes given back may be taken again, typed: raise the peak first, so that the
        // taker, which synchronizes with the `Release` below, zeroes them.
        self.peak.fetch_max(end, Ordering::Relaxed);
        self.head
            .compare_exchange(end, start, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Extends the last take, `..end`, to `..new_end` if it is still the last one: says
    /// whether it did.
    #[cfg(any(feature = "allocator-api2", feature = "allocator-api2-04"))]
    pub(crate) fn extend(&self, end: usize, new_end: usize) -> bool {
        new_end <= self.total
            && self
                .head
                .compare_exchange(end, new_end, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// The current peak (see the field): bytes below it may hold leftovers.
    #[inline(always)]
    pub(crate) fn dirty(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The pointer to the byte at `offset`.
    #[inline(always)]
    pub(crate) fn at(&self, offset: usize) -> NonNull<u8> {
        debug_assert!(offset <= self.total, "offset {offset} past the Block");
        // SAFETY: `offset <= total`: inside the Block or one past its end.
        unsafe { self.base.add(offset) }
    }

    /// The pointer to the byte at address `addr`, with the Block's provenance.
    #[inline(always)]
    pub(crate) fn at_addr(&self, addr: usize) -> NonNull<u8> {
        let ptr = self.base.as_ptr().with_addr(addr);
        debug_assert!(self.extent.contains(ptr) || addr == self.base_addr() + self.total);
        // SAFETY: callers pass addresses inside the Block, never 0.
        unsafe { NonNull::new_unchecked(ptr) }
    }

    /// The Block's first byte, as an address.
    #[inline(always)]
    pub(crate) fn base_addr(&self) -> usize {
        self.base.as_ptr().addr()
    }

    /// Zeroes the bytes of `start..start + size` below `dirty` (an offset): the ones that
    /// may hold leftovers of an earlier take.
    ///
    /// # Safety
    ///
    /// `start..start + size` must be a live take of the caller's.
    #[inline(always)]
    pub(crate) unsafe fn scrub(&self, start: usize, size: usize, dirty: usize) {
        if start < dirty {
            let n = size.min(dirty - start);
            // SAFETY: `start..start + n` is inside the caller's take (contract), writable
            // and not referenced by anyone else.
            unsafe { self.at(start).as_ptr().write_bytes(0, n) };
        }
    }

    /// `len` values of `T` at `start`, scrubbed.
    ///
    /// # Safety
    ///
    /// `start..start + len * size_of::<T>()` must be a fresh take, aligned for `T`.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)] // Each take is a range no one else gets: see the module docs.
    unsafe fn typed<T: Pod>(&self, start: usize, len: usize) -> &mut [T] {
        let size = len * size_of::<T>();
        // SAFETY: a take of the caller's (contract).
        unsafe { self.scrub(start, size, self.dirty()) };
        // SAFETY:
        // - `start..start + size` is inside the Block, aligned for `T` and taken by this
        //   call alone: no other reference to it exists, and none will until `clear`,
        //   which needs `&mut self` and so waits for this borrow of `&self` to end;
        // - every byte is initialized (scrubbed, or never taken since `over`, see the
        //   module docs) and any bit pattern is a valid `T: Pod`.
        unsafe { std::slice::from_raw_parts_mut(self.at(start).as_ptr().cast::<T>(), len) }
    }

    /// Why a take of `count` values of `size` bytes aligned to `align` failed.
    #[cold]
    #[inline(never)]
    pub(crate) fn refusal(&self, count: usize, size: usize, align: usize) -> MemError {
        if self.mode != Mode::Writable {
            return MemError::TapeReadOnly {
                id: self.extent.id(),
                frozen: self.mode == Mode::Frozen,
            };
        }
        let bytes = count.checked_mul(size);
        match bytes {
            Some(0) => MemError::ZeroSize,
            _ if !align.is_power_of_two() => MemError::BadAlignment { align },
            Some(bytes) if valid(bytes, align) => MemError::TapeFull {
                requested: bytes,
                align,
                free: self.free(),
            },
            _ => MemError::TakeOverflow { count, size, align },
        }
    }
}

/// Whether a take of `size` bytes aligned to `align` is well formed: a nonzero size, a
/// power-of-two alignment, and `size` rounded up to `align` within `isize::MAX` (the rule
/// of `std::alloc::Layout`; it keeps `pad + size` from overflowing).
#[inline(always)]
pub(crate) const fn valid(size: usize, align: usize) -> bool {
    size != 0 && align.is_power_of_two() && size <= isize::MAX as usize - (align - 1)
}

/// Bytes in `len` values of `T`, `None` for 0 or on overflow. A zero-sized `T` is a
/// compile-time error.
#[inline(always)]
pub(crate) const fn slice_size<T>(len: usize) -> Option<usize> {
    const {
        assert!(
            size_of::<T>() != 0,
            "typed takes of zero-sized types are meaningless"
        );
    }
    match len.checked_mul(size_of::<T>()) {
        Some(0) | None => None,
        some => some,
    }
}

impl From<Block> for Tape {
    fn from(block: Block) -> Tape {
        Tape::over(block)
    }
}

impl fmt::Debug for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tape")
            .field("used", &self.used())
            .field("total", &self.total)
            .field("peak", &self.peak())
            .field("mode", &self.mode)
            .field("block", &self.extent)
            .finish()
    }
}

//! [`ReadOnlyBlock`]: a Block imported read-only, mapped `PROT_READ`.
//!
//! Its type has no mutable views, so safe code cannot write through the read-only mapping
//! (which would kill the process with `SIGSEGV`). Offsets are how processes tell each other
//! where data is (base addresses differ from process to process), so reads take offsets.
//!
//! # Views only of frozen bytes
//!
//! A `&[T]` promises that the bytes behind it do not change while it lives; the compiler
//! relies on it (it may read such bytes twice, or once for two uses). A read-only import
//! that is not frozen does not keep that promise: the process that shared it still maps it
//! writable, and so may any read-write peer. So the shared views ([`as_slice`],
//! [`as_bytes`], [`read`]) are lent only once the file is **frozen** (`F_SEAL_WRITE`: no
//! process can write it by any route, for good), as [`Tape::read`](crate::Tape::read) does;
//! otherwise they return [`NotFrozen`](MemError::NotFrozen). An unfrozen import has two
//! explicit routes:
//!
//! - [`read_into`](ReadOnlyBlock::read_into) copies bytes out, and is sound while another
//!   process writes them. It loads them with relaxed atomic loads of `usize` words (bytes at
//!   the unaligned edges): an atomic load never takes part in a data race, and the compiler
//!   assumes nothing about the value it returns, so a concurrent writer can only make the
//!   copy a mix of old and new words (torn across words, never within one), which is
//!   harmless for `T: Pod`. Not `copy_nonoverlapping`, whose plain loads from racing memory
//!   are a data race; not volatile loads, which the standard library documents as having
//!   "no bearing whatsoever on questions involving concurrent access" (`ptr::read_volatile`).
//!   Relaxed loads of at most a pointer's size are also documented to work on read-only
//!   memory (`core::sync::atomic`, "Atomic accesses to read-only memory"), which this
//!   mapping is.
//! - [`read_unfrozen`](ReadOnlyBlock::read_unfrozen) lends the view anyway; it is `unsafe`,
//!   and its caller promises the writer's protocol (write, then tell; do not write a range
//!   again until the reader has dropped its views of it).
//!
//! The frozen state is cached once seen (the seal is permanent), so a view of a frozen
//! Block costs one relaxed load, and one `fcntl(F_GET_SEALS)` while it is not frozen.
//!
//! [`as_slice`]: ReadOnlyBlock::as_slice
//! [`as_bytes`]: ReadOnlyBlock::as_bytes
//! [`read`]: ReadOnlyBlock::read

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;

use bytemuck::Pod;

use crate::block::{Extent, view_len};
use crate::error::MemError;

/// A Block mapped read-only in this process: another process's share, or this process's
/// own Block after [`freeze`](crate::Block::freeze). Linux only.
///
/// Made by [`Block::import_read_only`](crate::Block::import_read_only),
/// [`Block::freeze`](crate::Block::freeze) or [`Block::into_read_only`](crate::Block::into_read_only).
/// The pages are the sharer's own (no copy); the mapping is `PROT_READ`, and for a
/// read-only share the memfd is sealed (`F_SEAL_FUTURE_WRITE`) so that no process can map
/// it writable again. Nothing takes `&mut self` but [`freeze`](ReadOnlyBlock::freeze).
///
/// If the Block is **frozen** ([`is_frozen`](Extent::is_frozen)), no process can change its
/// bytes, and it lends `&[T]` views with no protocol between the processes. If not, the
/// process that shared it may still write them: [`read_into`](ReadOnlyBlock::read_into)
/// copies them out (sound while they change), [`read_unfrozen`](ReadOnlyBlock::read_unfrozen)
/// (`unsafe`) lends a view under the writer's protocol, and every safe view is refused with
/// [`NotFrozen`](MemError::NotFrozen). [`freeze`](ReadOnlyBlock::freeze) makes it frozen once
/// no process maps it writable.
///
/// It dereferences to its [`Extent`] like a [`Block`](crate::Block) does, for `address()`,
/// `size()`, `id()`, `is_pinned()`, `access()` (always [`Access::ReadOnly`]) and the file
/// descriptor, so devices can register it read-only.
///
/// `ReadOnlyBlock` is `Send` and `Sync`. Dropping it unlocks and unmaps this process's
/// mapping and closes its descriptor; the sharer's Block is unaffected.
///
/// [`Access::ReadOnly`]: crate::Access::ReadOnly
#[repr(transparent)]
pub struct ReadOnlyBlock {
    pub(super) extent: Extent,
}

impl ReadOnlyBlock {
    /// All the bytes, once frozen.
    ///
    /// # Errors
    ///
    /// [`NotFrozen`](MemError::NotFrozen) if another process may still write them.
    pub fn as_bytes(&self) -> Result<&[u8], MemError> {
        self.as_slice()
    }

    /// The bytes as a slice of `T`, as many whole `T`s as fit (as [`Block::as_slice`]),
    /// once frozen.
    ///
    /// # Errors
    ///
    /// [`NotFrozen`](MemError::NotFrozen) if another process may still write them: copy
    /// them out with [`read_into`](ReadOnlyBlock::read_into) instead.
    ///
    /// [`Block::as_slice`]: crate::Block::as_slice
    pub fn as_slice<T: Pod>(&self) -> Result<&[T], MemError> {
        self.frozen()?;
        let len = view_len::<T>(self.size());
        // SAFETY:
        // - base..base+size is mapped readable (PROT_READ) for as long as `self` lives, and
        //   `len * size_of::<T>() <= size`; the file cannot shrink (sealed, checked at
        //   import), so no page of it can fault;
        // - every byte is initialized: the mapping was made by `mmap` after every write
        //   to the file it shows, so its bytes are what the kernel supplies (a shmem file's
        //   bytes are always defined: written, or zero);
        // - base is page aligned, so aligned for T (`view_len` checks align <= 4 KiB);
        // - every bit pattern is a valid `T: Pod`;
        // - the bytes do not change while the slice lives: the file is frozen
        //   (`F_SEAL_WRITE`), so no process can write them, and this process holds no
        //   `&mut` to them (the type has no mutable views).
        Ok(unsafe { std::slice::from_raw_parts(self.base().as_ptr().cast::<T>(), len) })
    }

    /// Gives up the views, keeping the memory: for a read-only Tape.
    pub(crate) fn into_extent(self) -> Extent {
        self.extent
    }

    /// The bytes as `f32`s, once frozen.
    ///
    /// # Errors
    ///
    /// [`NotFrozen`](MemError::NotFrozen), as [`as_slice`](ReadOnlyBlock::as_slice).
    pub fn as_f32(&self) -> Result<&[f32], MemError> {
        self.as_slice()
    }

    /// The bytes as `u16`s (e.g. fp16 bit patterns), once frozen.
    ///
    /// # Errors
    ///
    /// [`NotFrozen`](MemError::NotFrozen), as [`as_slice`](ReadOnlyBlock::as_slice).
    pub fn as_u16(&self) -> Result<&[u16], MemError> {
        self.as_slice()
    }

    /// `len` values of `T` starting `offset` bytes into a **frozen** Block: the way to read
    /// what another process located by offset.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unimem::{Block, MemError, Pin, Share};
    ///
    /// let mut owner = Block::builder(4096).pin(Pin::BestEffort).open()?;
    /// owner.as_slice_mut::<u64>()[2] = 99;
    /// let owner = owner.freeze()?; // no process can change the bytes from here on
    /// let (here, there) = UnixStream::pair().unwrap();
    /// owner.share()?.send(&here)?;
    /// let peer = Block::import_read_only(Share::recv(&there)?, Pin::BestEffort)?;
    ///
    /// assert_eq!(peer.read::<u64>(16, 1)?, &[99]);
    /// assert!(matches!(peer.read::<u64>(4090, 1), Err(MemError::ReadOutOfBounds { .. })));
    /// assert!(matches!(peer.read::<u64>(3, 1), Err(MemError::ReadMisaligned { align: 8, .. })));
    /// # Ok::<(), MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`NotFrozen`](MemError::NotFrozen) if another process may still write the bytes
    /// (copy them out with [`read_into`](ReadOnlyBlock::read_into));
    /// [`ReadOutOfBounds`](MemError::ReadOutOfBounds) if `offset + len * size_of::<T>()`
    /// exceeds the size (or overflows); [`ReadMisaligned`](MemError::ReadMisaligned) if
    /// `offset` is not a multiple of `align_of::<T>()`.
    pub fn read<T: Pod>(&self, offset: usize, len: usize) -> Result<&[T], MemError> {
        self.frozen()?;
        // SAFETY: the file is frozen: no process can write the bytes while the slice lives.
        unsafe { self.read_unfrozen(offset, len) }
    }

    /// `len` values of `T` starting `offset` bytes into the Block, whether or not it is
    /// frozen: the view [`read`](ReadOnlyBlock::read) lends, without asking the file.
    ///
    /// # Safety
    ///
    /// No process may write the bytes the slice covers while it lives. A Block that is not
    /// frozen can still be written by the process that shared it (and by read-write
    /// peers), so the caller relies on their protocol: the writer finishes writing a range
    /// before telling this process about it (over the socket, whose message orders the
    /// writes before the reads here), and does not write it again until this process says
    /// it has dropped its views of it (`specs/share.md`, "Soundness across processes").
    /// Where no such protocol holds, copy the bytes out with
    /// [`read_into`](ReadOnlyBlock::read_into).
    ///
    /// # Errors
    ///
    /// [`ReadOutOfBounds`](MemError::ReadOutOfBounds), [`ReadMisaligned`](MemError::ReadMisaligned)
    /// as [`read`](ReadOnlyBlock::read).
    pub unsafe fn read_unfrozen<T: Pod>(
        &self,
        offset: usize,
        len: usize,
    ) -> Result<&[T], MemError> {
        check_read::<T>(self.size(), offset, len)?;
        // SAFETY:
        // - offset + len * size_of::<T>() <= size (`check_read`), inside the mapping, which
        //   is readable for as long as `self` lives and cannot shrink (sealed);
        // - the bytes are initialized (see `as_slice`);
        // - base is page aligned and offset a multiple of align_of::<T>() (`check_read`),
        //   so the pointer is aligned for T;
        // - every bit pattern is a valid `T: Pod`, and no `&mut` to the bytes exists here;
        // - no process writes them while the slice lives: frozen, or the caller's promise.
        unsafe {
            let ptr = self.base().as_ptr().add(offset).cast::<T>();
            Ok(std::slice::from_raw_parts(ptr, len))
        }
    }

    /// Copies `out.len()` values of `T` starting `offset` bytes into the Block into `out`:
    /// sound whether or not the Block is frozen, while other processes write the bytes.
    ///
    /// What a concurrent write makes of the copy: each aligned machine word is copied whole
    /// (an old or a new value), but words may come from before and after a write, so a
    /// value that spans words may be torn. Agree with the writer when a range is complete
    /// (or check it, e.g. with a checksum) before trusting it. The copy is a loop of
    /// relaxed atomic word loads (module docs): about as fast as `memcpy` on x86-64 and
    /// AArch64, where they compile to plain loads.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unimem::{Block, MemError, Pin, Share};
    ///
    /// let mut owner = Block::builder(4096).pin(Pin::BestEffort).open()?;
    /// owner.as_slice_mut::<u32>()[..3].copy_from_slice(&[7, 8, 9]);
    /// let (here, there) = UnixStream::pair().unwrap();
    /// owner.share()?.send(&here)?;
    ///
    /// // In the peer process (the owner may still write: not frozen).
    /// # drop(owner); // one process does not map a file writable next to a read-only import
    /// let peer = Block::import_read_only(Share::recv(&there)?, Pin::BestEffort)?;
    /// assert!(matches!(peer.read::<u32>(0, 3), Err(MemError::NotFrozen { .. })));
    /// let mut out = [0u32; 2];
    /// peer.read_into(4, &mut out)?;
    /// assert_eq!(out, [8, 9]);
    /// # Ok::<(), MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ReadOutOfBounds`](MemError::ReadOutOfBounds), [`ReadMisaligned`](MemError::ReadMisaligned)
    /// as [`read`](ReadOnlyBlock::read).
    pub fn read_into<T: Pod>(&self, offset: usize, out: &mut [T]) -> Result<(), MemError> {
        check_read::<T>(self.size(), offset, out.len())?;
        let out: &mut [u8] = bytemuck::cast_slice_mut(out);
        // SAFETY: offset + out.len() <= size (`check_read`, in bytes now): the range is
        // inside the mapping, readable and unshrinkable for as long as `self` lives, and
        // this process never writes it (the type has no mutable view).
        unsafe { copy_racing(self.base().add(offset), out) };
        Ok(())
    }

    /// `Ok` if the file is frozen, `NotFrozen` if another process may still write it.
    fn frozen(&self) -> Result<(), MemError> {
        if self.is_frozen() {
            return Ok(());
        }
        Err(not_frozen(self.id(), self.size()))
    }
}

#[cold]
#[inline(never)]
fn not_frozen(id: u32, size: usize) -> MemError {
    MemError::NotFrozen { id, size }
}

/// Copies `out.len()` bytes from `src` with relaxed atomic loads: `usize` words where `src`
/// is word aligned, single bytes at the edges (module docs: why atomics, and why they are
/// fine on read-only memory).
///
/// # Safety
///
/// `src..src + out.len()` is mapped readable for the whole call, and nothing in this
/// process writes it non-atomically meanwhile (other processes may write it).
unsafe fn copy_racing(src: NonNull<u8>, out: &mut [u8]) {
    use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
    const WORD: usize = size_of::<usize>();
    let src = src.as_ptr().cast_const();
    let byte = |at: usize| {
        // SAFETY: `at < out.len()`, inside the range (contract); `AtomicU8` has the size and
        // alignment of `u8`; a shared reference to an atomic asserts nothing about
        // writability, and relaxed one-byte loads work on read-only memory.
        unsafe { &*src.add(at).cast::<AtomicU8>() }.load(Ordering::Relaxed)
    };
    let len = out.len();
    let head = src.align_offset(WORD).min(len);
    for (at, b) in out[..head].iter_mut().enumerate() {
        *b = byte(at);
    }
    let words = (len - head) / WORD;
    for (i, chunk) in out[head..head + words * WORD]
        .chunks_exact_mut(WORD)
        .enumerate()
    {
        // SAFETY: `head + i * WORD` is word aligned (`align_offset`) and the word lies
        // inside the range; `AtomicUsize` has the size and alignment of `usize`; relaxed
        // loads of a pointer's size work on read-only memory.
        let word =
            unsafe { &*src.add(head + i * WORD).cast::<AtomicUsize>() }.load(Ordering::Relaxed);
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    let tail = head + words * WORD;
    for (at, b) in out[tail..].iter_mut().enumerate() {
        *b = byte(tail + at);
    }
}

/// Checks a read of `len` values of `T` at `offset` in `size` bytes starting page aligned:
/// in bounds (without overflow) and aligned for `T`. Zero-sized and over-aligned `T` are
/// rejected at compile time (`view_len`).
pub(crate) fn check_read<T>(size: usize, offset: usize, len: usize) -> Result<(), MemError> {
    let elem = size_of::<T>();
    let end = len
        .checked_mul(elem)
        .and_then(|bytes| bytes.checked_add(offset));
    if end.is_none_or(|end| end > size) {
        return Err(out_of_bounds(offset, len, elem, size));
    }
    let _ = view_len::<T>(size);
    let align = align_of::<T>();
    if offset % align != 0 {
        return Err(MemError::ReadMisaligned { offset, align });
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn out_of_bounds(offset: usize, len: usize, elem: usize, size: usize) -> MemError {
    MemError::ReadOutOfBounds {
        offset,
        len,
        elem,
        size,
    }
}

impl Deref for ReadOnlyBlock {
    type Target = Extent;

    fn deref(&self) -> &Extent {
        &self.extent
    }
}

impl fmt::Debug for ReadOnlyBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadOnlyBlock").field(&self.extent).finish()
    }
}

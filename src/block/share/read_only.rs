//! [`ReadOnlyBlock`]: a Block imported read-only, mapped `PROT_READ`.
//!
//! Its type has no mutable views, so safe code cannot write through the read-only mapping
//! (which would kill the process with `SIGSEGV`). It reads the same bytes as a [`Block`]
//! does, plus offset-checked reads: base addresses differ from process to process, so
//! offsets are how processes tell each other where data is.

use std::fmt;
use std::ops::Deref;

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
/// it writable again. Views take `&self`; there are none that take `&mut self`.
///
/// If the Block is **frozen** ([`is_frozen`](Extent::is_frozen)), no process can change its
/// bytes, and the views are sound with no protocol between the processes. If not, the
/// process that shared it may still write them, and the views rely on the processes'
/// protocol (write, then tell; `specs/share.md`, "Soundness across processes");
/// [`freeze`](ReadOnlyBlock::freeze) makes it frozen once no process maps it writable.
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
    /// All the bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.as_slice()
    }

    /// The bytes as a slice of `T`, as many whole `T`s as fit (as [`Block::as_slice`]).
    ///
    /// [`Block::as_slice`]: crate::Block::as_slice
    pub fn as_slice<T: Pod>(&self) -> &[T] {
        let len = view_len::<T>(self.size());
        // SAFETY:
        // - base..base+size is mapped readable (PROT_READ) for as long as `self` lives, and
        //   `len * size_of::<T>() <= size`; the file cannot shrink (sealed, checked at
        //   import), so no page of it can fault;
        // - base is page aligned, so aligned for T (`view_len` checks align <= 4 KiB);
        // - every bit pattern is a valid `T: Pod`;
        // - this process holds no `&mut` to these bytes: the type has no mutable views.
        unsafe { std::slice::from_raw_parts(self.base().as_ptr().cast::<T>(), len) }
    }

    /// Gives up the views, keeping the memory: for a read-only Tape.
    pub(crate) fn into_extent(self) -> Extent {
        self.extent
    }

    /// The bytes as `f32`s.
    pub fn as_f32(&self) -> &[f32] {
        self.as_slice()
    }

    /// The bytes as `u16`s, e.g. fp16 bit patterns.
    pub fn as_u16(&self) -> &[u16] {
        self.as_slice()
    }

    /// `len` values of `T` starting `offset` bytes into the Block: the way to read what
    /// another process located by offset.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unimem::{Access, Block, MemError, Pin, Share};
    ///
    /// let mut owner = Block::builder(4096).pin(Pin::BestEffort).open()?;
    /// owner.as_slice_mut::<u64>()[2] = 99;
    /// let owner = owner.freeze()?; // so this process, too, may import it read-only
    /// let (here, there) = UnixStream::pair().unwrap();
    /// owner.share(Access::ReadOnly)?.send(&here)?;
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
    /// [`ReadOutOfBounds`](MemError::ReadOutOfBounds) if `offset + len * size_of::<T>()`
    /// exceeds the size (or overflows); [`ReadMisaligned`](MemError::ReadMisaligned) if
    /// `offset` is not a multiple of `align_of::<T>()`.
    pub fn read<T: Pod>(&self, offset: usize, len: usize) -> Result<&[T], MemError> {
        check_read::<T>(self.size(), offset, len)?;
        // SAFETY:
        // - offset + len * size_of::<T>() <= size (`check_read`), inside the mapping, which
        //   is readable for as long as `self` lives and cannot shrink (sealed);
        // - base is page aligned and offset a multiple of align_of::<T>() (`check_read`),
        //   so the pointer is aligned for T;
        // - every bit pattern is a valid `T: Pod`, and no `&mut` to the bytes exists here.
        unsafe {
            let ptr = self.base().as_ptr().add(offset).cast::<T>();
            Ok(std::slice::from_raw_parts(ptr, len))
        }
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

//! Freezing a Block: its bytes made immutable for every process, by the kernel.
//!
//! # Why
//!
//! A `&[T]` promises that the bytes behind it do not change while it lives. Within one
//! process the borrow checker keeps that promise; across processes nothing in the type
//! system can. A read-only share (`F_SEAL_FUTURE_WRITE`) stops *new* writers, but the
//! owner's mapping (and any read-write peer's) stays writable, so a peer's `&[T]` view is
//! only as good as the processes' protocol. A frozen Block has no writer left anywhere, and
//! none can appear: views of it are sound in every process without any protocol.
//!
//! # How (Linux)
//!
//! 1. `F_SEAL_FUTURE_WRITE`, unless a write seal is there already: no new writable shared
//!    mapping, `write`, `pwrite` or hole punch, through any descriptor of the file.
//! 2. If this process's mapping counts as writable to the kernel (a shared mapping with
//!    `VM_MAYWRITE`, which every mapping made from an `O_RDWR` descriptor before the seal
//!    has, even a `PROT_READ` one), replace it **in place**: `mmap(MAP_SHARED | MAP_FIXED,
//!    PROT_READ)` of the same file at the same address. With the seal set, the kernel makes
//!    the new mapping without `VM_MAYWRITE`, so `mprotect(PROT_WRITE)` on it is refused
//!    (`EACCES`) and it no longer counts as writable. Same address: pointers and offsets
//!    handed to a device or kept by a Tape stay valid; same pages: nothing is copied.
//!    `&mut self` (or ownership) proves that no view of the bytes is alive while the range
//!    is swapped.
//! 3. Lock the new mapping if the old one was pinned (its locks went with it), through the
//!    same code as [`Block::open`].
//! 4. `F_SEAL_WRITE`. fcntl(2): setting it "fails with EBUSY if any writable, shared mapping
//!    exists", in any process; and the kernel (`mm/memfd.c`, `memfd_wait_for_pins`) also
//!    refuses it while pages are pinned beyond their mappings (a CUDA registration, an I/O
//!    in flight, a `vmsplice` into a pipe), after waiting about 150 ms for such pins to go.
//!    Once set, no process can write the bytes by any route, and seals are never removed.
//!
//! Steps 1 to 3 are [`Block::into_read_only`], step 4 [`ReadOnlyBlock::freeze`], and
//! [`Block::freeze`] does both. Every step is skipped once done, so a failed freeze can be
//! repeated.
//!
//! # State after a failure
//!
//! | fails at | file | this process's mapping | what to do |
//! |---|---|---|---|
//! | 1 (`EPERM`: `F_SEAL_SEAL`; `EINVAL`: Linux < 5.1) | unchanged | unchanged | nothing can freeze it |
//! | 2 (`mmap`) | sealed against new writers | possibly a hole: never touched again (size 0, no views, never unmapped) | drop it |
//! | 3 (`mlock`) | sealed against new writers | `PROT_READ`, not pinned | freeze again in place: it locks, then seals |
//! | 4 (`EBUSY`) | sealed against new writers | `PROT_READ`, pinned as before | let the writers unmap (or unregister), freeze again |
//!
//! "Freeze again" means again on the same value, in place: [`ReadOnlyBlock::freeze`] and
//! [`Tape::freeze`](crate::Tape::freeze) take `&mut self` and keep their Block on every
//! error. [`Block::freeze`] and [`Block::into_read_only`] consume the Block, so an error in
//! steps 1 to 3 drops it here (the file and every peer's mapping stay as the table says);
//! only a refusal at step 4 leaves a value to freeze again: the [`ReadOnlyBlock`] that
//! [`Block::into_read_only`] returned. To keep the bytes mapped across every refusal,
//! including a refused relock (step 3), freeze a Tape over the Block, in place.
//!
//! # References
//!
//! fcntl(2) ("File seals": `F_SEAL_WRITE`, `F_SEAL_FUTURE_WRITE`), memfd_create(2), mmap(2)
//! (`MAP_FIXED`), mprotect(2), mlock(2); Linux 6.7, whose memfd changes let a read-only
//! shared mapping of a write-sealed memfd not count as writable (before it, every shared
//! mapping counted, and freezing is refused with `EBUSY` while any exists).

use super::ReadOnlyBlock;
use crate::block::{Access, Block, Extent};
use crate::error::MemError;

impl Block {
    /// Makes the bytes immutable for every process, for good, and returns this process's
    /// view of them: read-only, at the same address, still pinned if it was. Linux only.
    ///
    /// The memfd is sealed against new writers (`F_SEAL_FUTURE_WRITE`), this process's
    /// mapping is replaced in place by a `PROT_READ` one that can never be made writable,
    /// and the file gets `F_SEAL_WRITE`, which the kernel grants only while no process maps
    /// it writable. Afterwards no process can write the bytes by any route (`mmap`,
    /// `mprotect`, `write`, `/proc/PID/mem`, hole punching), so `&[T]` views of them are
    /// sound in every process, and every share of the file carries the fact
    /// ([`is_frozen`](Extent::is_frozen) in the importer).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unimem::{Access, Block, Pin, Share};
    ///
    /// let mut block = Block::builder(1 << 16).pin(Pin::BestEffort).open()?;
    /// block.as_f32_mut()[..2].copy_from_slice(&[0.5, 1.5]);
    /// let weights = block.freeze()?;
    /// assert!(weights.is_frozen());
    /// assert_eq!(weights.access(), Access::ReadOnly);
    ///
    /// let (here, there) = UnixStream::pair().unwrap();
    /// weights.share()?.send(&here)?;
    /// // In the worker process:
    /// let peer = Block::import_read_only(Share::recv(&there)?, Pin::BestEffort)?;
    /// assert!(peer.is_frozen());
    /// assert_eq!(peer.read::<f32>(4, 1)?, &[1.5]);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`FreezeBusy`](MemError::FreezeBusy): another process still maps the Block
    ///   writable (a read-write import, or a read-only import of a read-write share made
    ///   before the Block was first shared read-only), or a device pins its pages;
    /// - [`LockRefused`](MemError::LockRefused): the Block was pinned and its read-only
    ///   mapping could not be locked again;
    /// - [`FreezeRegistered`](MemError::FreezeRegistered): the Block keeps a CUDA
    ///   registration (`CudaBlock::keep`), whose pins the kernel would never let it freeze
    ///   past; nothing was changed (freeze first, then register);
    /// - [`Os`](MemError::Os) for `fcntl` (`EPERM` if a holder set `F_SEAL_SEAL`, `EINVAL`
    ///   before Linux 5.1) and for the `mmap` that replaces the mapping.
    ///
    /// On an error the Block is dropped; the file is left as the module documentation's
    /// table says. To keep the bytes mapped across a `FreezeBusy`, call
    /// [`into_read_only`](Block::into_read_only), then [`ReadOnlyBlock::freeze`], which can
    /// be repeated; to keep them across every refusal (a refused relock included), freeze a
    /// [`Tape`](crate::Tape) over the Block in place.
    pub fn freeze(self) -> Result<ReadOnlyBlock, MemError> {
        let mut block = self.into_read_only()?;
        block.freeze()?;
        Ok(block)
    }

    /// Gives up write access for good, in this process and for every future holder: seals
    /// the memfd against new writers (`F_SEAL_FUTURE_WRITE`) and replaces this process's
    /// mapping in place by a `PROT_READ` one that can never be made writable (relocked if it
    /// was pinned). Linux only.
    ///
    /// The first half of [`freeze`](Block::freeze): the bytes can still change while
    /// another process maps them writable; [`ReadOnlyBlock::freeze`] finishes, and can be
    /// repeated until those writers are gone.
    ///
    /// ```
    /// use unimem::{Access, Block, MemError, Pin};
    ///
    /// let block = Block::builder(4096).pin(Pin::BestEffort).open()?;
    /// let mut block = block.into_read_only()?;
    /// assert_eq!(block.access(), Access::ReadOnly);
    /// // Not frozen yet: a peer process that maps it writable may still write, and
    /// // `freeze` is `FreezeBusy` until it lets go (then call it again). Views wait too.
    /// assert!(!block.is_frozen());
    /// assert!(matches!(block.as_bytes(), Err(MemError::NotFrozen { .. })));
    /// block.freeze()?;
    /// assert!(block.is_frozen());
    /// assert_eq!(block.as_bytes()?.len(), 4096);
    /// # Ok::<(), MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`freeze`](Block::freeze), but never `FreezeBusy`. On an error the Block is
    /// dropped (it was consumed), the file left as the module documentation's table says:
    /// after a refused relock (`LockRefused`, step 3) the file is sealed against new
    /// writers and nothing of this process maps it. To be able to retry a refused relock,
    /// freeze a [`Tape`](crate::Tape) over the Block instead, which works in place.
    pub fn into_read_only(self) -> Result<ReadOnlyBlock, MemError> {
        self.refuse_kept_registration()?;
        let mut extent = self.into_extent();
        extent.map.seal_read_only()?;
        Ok(ReadOnlyBlock { extent })
    }
}

impl ReadOnlyBlock {
    /// Makes the bytes immutable for every process, for good (`F_SEAL_WRITE`), as
    /// [`Block::freeze`] does. Linux only.
    ///
    /// Works on a Block made read-only by [`Block::into_read_only`] and on a read-only
    /// import: any holder may freeze the file once no process maps it writable. Does
    /// nothing if it is frozen already. An import of a read-write share mapped before the
    /// file was sealed counts as writable to the kernel; its mapping is replaced in place
    /// first, as [`Block::freeze`] replaces the owner's.
    ///
    /// # Errors
    ///
    /// [`FreezeBusy`](MemError::FreezeBusy) while a process maps the file writable or a
    /// device pins its pages: the Block stays as it was (mapped read-only, the file sealed
    /// against new writers), and `freeze` can be called again. Otherwise those of
    /// [`Block::freeze`].
    pub fn freeze(&mut self) -> Result<(), MemError> {
        self.extent.freeze()
    }
}

impl Extent {
    /// Whether the bytes can never change again, in any process: the memfd carries
    /// `F_SEAL_WRITE` (set by [`Block::freeze`] in whichever process froze it). Linux only.
    ///
    /// A share carries the fact: an importer asks its [`ReadOnlyBlock`]. Always `false` for
    /// a [`Block`], whose mapping is writable (the kernel refuses the seal while it exists).
    /// One `fcntl(F_GET_SEALS)` until the answer is yes, which is then remembered (the seal
    /// is permanent); `false` if the call fails.
    pub fn is_frozen(&self) -> bool {
        self.map.is_frozen()
    }

    /// Freezes in place: all four steps. `&mut self` proves that no view of the bytes is
    /// alive (an owner such as a Tape calls it with `&mut` to itself).
    pub(crate) fn freeze(&mut self) -> Result<(), MemError> {
        self.refuse_kept_registration()?;
        self.map.seal_read_only()?;
        debug_assert_eq!(self.access(), Access::ReadOnly);
        self.map.seal_write(self.id())
    }

    /// Refuses, before anything changes, to freeze a Block that keeps a CUDA registration
    /// (`CudaBlock::keep`) when freezing would replace the registered mapping or add
    /// `F_SEAL_WRITE`: the registration pins the pages for the Extent's whole life, so the
    /// seal could never be granted, and a registered range is not remapped. A Block frozen
    /// first and registered after (the supported order) freezes again as a no-op.
    fn refuse_kept_registration(&self) -> Result<(), MemError> {
        #[cfg(feature = "cuda")]
        if self.cuda.get().is_some() && (self.map.may_write() || !self.is_frozen()) {
            return Err(MemError::FreezeRegistered {
                id: self.id(),
                size: self.size(),
            });
        }
        Ok(())
    }
}

//! Importing a [`Share`]: the same pages, mapped and pinned in this process.
//!
//! Two entry points, so that what a process can do with the bytes is decided by type:
//! [`Block::import`] takes read-write shares and returns a `Block` (with mutable views);
//! [`Block::import_read_only`] takes either kind, maps it `PROT_READ`, and returns a
//! [`ReadOnlyBlock`], which has shared views only. Giving a read-only share to
//! `Block::import` is an error that names the read-only entry point.
//!
//! Both check the file first (`Share::check`: seals, then a regular file of the header's
//! size, open for the access, where a holder could still punch holes in it (no write seal)
//! the headroom as [`Block::open`] checks it, and every page held), then build the backend
//! mapping from the received descriptor (`Mapping::import`: `mmap`, then pin per [`Pin`],
//! through the same code and the same `Drop` as [`Block::open`]). The imported Block gets a
//! new id from this process's registry; its name is the memfd's name, read from
//! `/proc/self/fd` (empty where `/proc` is not mounted). The mapping is registered by file
//! (`mapped.rs`) before it is made: an import that would alias a mapping this process
//! already has (a read-write one next to anything, a read-only one next to a writable
//! one) is refused with [`MemError::AlreadyMapped`].
//!
//! # Why the headroom check depends on the write seal
//!
//! The page check proves the file held every page when it ran. A file with a write seal
//! keeps them: hole punching (`fallocate(PUNCH_HOLE)`, `MADV_REMOVE`) is refused to every
//! holder, and the resize seals forbid truncation, so populating the import builds page
//! tables and allocates nothing, however large it is (shared weights on a full machine).
//! Without a write seal a read-write holder may punch holes between the check and the
//! populate, and populating a hole of a `MAP_SHARED` shmem mapping allocates a zeroed page
//! into the file, charged to this process: in the worst case the whole size. So such an
//! import is refused when the size exceeds `MemAvailable` or the cgroup's room, as an open
//! of the same size would be ([`OutOfMemory`](MemError::OutOfMemory)).

use std::os::fd::AsRawFd;

use super::{ReadOnlyBlock, Share};
use crate::block::{Access, Block, Extent, Pin, os};
use crate::error::MemError;

impl Block {
    /// Maps and pins, in this process, a Block another process shared read-write
    /// ([`Extent::share_read_write`]): both see and may write the very same pages. Linux
    /// only.
    ///
    /// The file is checked before anything is mapped: sealed against shrinking and growing
    /// (so no holder can ever make this mapping fault) and not against writing, a regular
    /// file (a memfd) of exactly the share's size, open read-write, holding every page (so
    /// the import allocates nothing; [`ShareSparse`](MemError::ShareSparse) otherwise). The
    /// new Block has an id of its own ([`Share::source_id`] is the owner's) and the memfd's
    /// name.
    ///
    /// One process maps a file read-write only once: if this process already maps it (the
    /// owner's Block, a Tape over it, another import), the import is refused
    /// ([`AlreadyMapped`](MemError::AlreadyMapped)), since the two Blocks would be two
    /// views of the same bytes that the borrow checker cannot see.
    ///
    /// Pinning follows `pin` as for [`Block::open`]; the lock counts against this process's
    /// `RLIMIT_MEMLOCK` although the pages are shared (the kernel counts locks per mapping).
    ///
    /// # Safety
    ///
    /// The new Block hands out `&[T]` and `&mut [T]` views (and, through a Tape or a Grid,
    /// takes and cells) of bytes that every other holder of the file may write at any time.
    /// The caller promises that those processes keep to a protocol under which these views
    /// are sound: while this process holds a view of a range, no other process writes it,
    /// and while it holds a mutable view, no other process reads it. The usual protocol
    /// hands ranges over by offset (a process writes only what it owns, then sends the
    /// offset and stops using it); see `specs/share.md`, "Soundness across processes". A
    /// peer that breaks it is a data race here, so import read-write only from trusted
    /// peers. To read what an untrusted peer shares, use [`Block::import_read_only`] (safe:
    /// copies out while others write, views once frozen).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unimem::{Block, MemError, Pin, Share};
    ///
    /// let mut owner = Block::builder(1 << 16).pin(Pin::BestEffort).open()?;
    /// owner.as_bytes_mut()[100] = 7;
    /// let (here, there) = UnixStream::pair().unwrap();
    /// // SAFETY: the owner's Block is dropped before the import writes, and the import is
    /// // the only holder that writes afterwards.
    /// unsafe { owner.share_read_write()? }.send(&here)?;
    ///
    /// // In the peer process. (Here it is this process, so the owner lets go of its Block
    /// // first: a process maps a file read-write only once. The share keeps the memory.)
    /// drop(owner);
    /// // SAFETY: no other process maps the file.
    /// let mut peer = unsafe { Block::import(Share::recv(&there)?, Pin::BestEffort)? };
    /// assert_eq!(peer.as_bytes()[100], 7);
    /// peer.as_bytes_mut()[100] = 8;
    ///
    /// // A second mapping of the file in this process would alias `peer`'s views: refused.
    /// // SAFETY: refused before anything is mapped.
    /// let again = unsafe { peer.share_read_write()? };
    /// assert!(matches!(
    ///     unsafe { Block::import(again, Pin::BestEffort) },
    ///     Err(MemError::AlreadyMapped { writable: true, .. })
    /// ));
    /// # Ok::<(), MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`ShareReadOnly`](MemError::ShareReadOnly): the share is read-only; use
    ///   [`Block::import_read_only`];
    /// - [`NotWritable`](MemError::NotWritable): the file has been sealed against writing
    ///   (shared read-only since this share was made);
    /// - [`ShareNotMemfd`](MemError::ShareNotMemfd), [`ShareUnsealed`](MemError::ShareUnsealed),
    ///   [`ShareSize`](MemError::ShareSize), [`ShareOpenMode`](MemError::ShareOpenMode),
    ///   [`ShareSparse`](MemError::ShareSparse): the descriptor is not what the header
    ///   says, or does not hold its pages;
    /// - [`OutOfMemory`](MemError::OutOfMemory): the size exceeds `MemAvailable` or the
    ///   cgroup's room (a read-write holder could punch every page out and make this
    ///   process allocate them again);
    /// - [`AlreadyMapped`](MemError::AlreadyMapped): this process maps the file already (a
    ///   live Block, Tape or import of it: a second mapping would alias its views). Use
    ///   that Block, drop it first, or import in another process;
    /// - [`LockRefused`](MemError::LockRefused) under [`Pin::Required`];
    /// - [`Os`](MemError::Os) for `fstat`, `fcntl`, `lseek`, `mmap`, populating.
    ///
    /// On every error the descriptor is closed and nothing stays mapped or locked.
    ///
    /// [`Extent::share_read_write`]: crate::Extent::share_read_write
    pub unsafe fn import(share: Share, pin: Pin) -> Result<Block, MemError> {
        if share.access() == Access::ReadOnly {
            return Err(MemError::ShareReadOnly {
                source: share.source_id(),
                size: share.size(),
            });
        }
        Ok(Block {
            extent: import(share, Access::ReadWrite, pin)?,
        })
    }

    /// Maps a shared Block `PROT_READ` and pins it, in this process. Takes a read-only share
    /// (the memfd must then carry `F_SEAL_FUTURE_WRITE`) or a read-write one (this process
    /// then chooses not to write). Linux only. Safe whatever the peer does: the file is
    /// checked as for [`Block::import`] before anything is mapped, and the result has no
    /// view of bytes another process may still write.
    ///
    /// The [`ReadOnlyBlock`] copies bytes out at any time ([`ReadOnlyBlock::read_into`]) and
    /// lends `&[T]` views ([`ReadOnlyBlock::read`], [`as_slice`](ReadOnlyBlock::as_slice))
    /// only once the Block is frozen ([`is_frozen`](Extent::is_frozen)). Locking a
    /// `PROT_READ` mapping works like any other (`is_pinned()` reports it) and counts
    /// against this process's `RLIMIT_MEMLOCK`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unimem::{Access, Block, Pin, Share};
    ///
    /// let mut owner = Block::builder(1 << 16).pin(Pin::BestEffort).open()?;
    /// owner.as_f32_mut()[..3].copy_from_slice(&[1.0, 2.0, 3.0]);
    /// // Frozen: no process can change the bytes any more, so views are sound everywhere
    /// // (and this process, too, may import it read-only).
    /// let owner = owner.freeze()?;
    /// let (here, there) = UnixStream::pair().unwrap();
    /// owner.share()?.send(&here)?;
    ///
    /// // In the peer process:
    /// let weights = Block::import_read_only(Share::recv(&there)?, Pin::BestEffort)?;
    /// assert_eq!(weights.access(), Access::ReadOnly);
    /// assert!(weights.is_frozen());
    /// assert_eq!(weights.read::<f32>(4, 2)?, &[2.0, 3.0]);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Block::import`], except `ShareReadOnly` and `NotWritable`; a read-only share
    /// whose memfd lacks the write seal is [`ShareUnsealed`](MemError::ShareUnsealed);
    /// `OutOfMemory` only for a file without a write seal (a read-write share);
    /// [`AlreadyMapped`](MemError::AlreadyMapped) is returned only while this process maps
    /// the file **writable** (freeze that Block first, or [`into_read_only`]): read-only
    /// mappings of one file coexist.
    ///
    /// [`into_read_only`]: Block::into_read_only
    /// [`ReadOnlyBlock::read_into`]: ReadOnlyBlock::read_into
    /// [`ReadOnlyBlock::read`]: ReadOnlyBlock::read
    pub fn import_read_only(share: Share, pin: Pin) -> Result<ReadOnlyBlock, MemError> {
        Ok(ReadOnlyBlock {
            extent: import(share, Access::ReadOnly, pin)?,
        })
    }
}

/// Checks, maps and pins `share` with `access`.
fn import(share: Share, access: Access, pin: Pin) -> Result<Extent, MemError> {
    let (inode, hugetlb_page) = share.check(access)?;
    let name = memfd_name(&share);
    let (fd, len) = share.into_parts();
    let map = os::Mapping::import(fd, len, inode, access, pin, hugetlb_page)?;
    Ok(Extent::new(map, name.into_boxed_str()))
}

/// The memfd's name: `/proc/self/fd/N` links to `/memfd:NAME (deleted)`.
fn memfd_name(share: &Share) -> String {
    let link = format!("/proc/self/fd/{}", share.as_raw_fd());
    let Ok(target) = std::fs::read_link(link) else {
        return String::new();
    };
    let target = target.to_string_lossy();
    let name = target.strip_prefix("/memfd:").unwrap_or_default();
    name.strip_suffix(" (deleted)").unwrap_or(name).to_owned()
}

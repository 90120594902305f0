//! Importing a [`Share`]: the same pages, mapped and pinned in this process.
//!
//! Two entry points, so that what a process can do with the bytes is decided by type:
//! [`Block::import`] takes read-write shares and returns a `Block` (with mutable views);
//! [`Block::import_read_only`] takes either kind, maps it `PROT_READ`, and returns a
//! [`ReadOnlyBlock`], which has shared views only. Giving a read-only share to
//! `Block::import` is an error that names the read-only entry point.
//!
//! Both check the file first (`Share::check`: regular file, seals, size), then build the
//! backend mapping from the received descriptor (`Mapping::import`: `mmap`, then pin per
//! [`Pin`], through the same code and the same `Drop` as [`Block::open`]). The imported Block
//! gets a new id from this process's registry; its name is the memfd's name, read from
//! `/proc/self/fd` (empty where `/proc` is not mounted). The mapping is registered by file
//! (`mapped.rs`) before it is made: an import that would alias a mapping this process
//! already has (a read-write one next to anything, a read-only one next to a writable
//! one) is refused with [`MemError::AlreadyMapped`].

use std::os::fd::AsRawFd;

use super::{ReadOnlyBlock, Share};
use crate::block::{Access, Block, Extent, Pin, os};
use crate::error::MemError;

impl Block {
    /// Maps and pins, in this process, a Block another process shared read-write: both see
    /// and may write the very same pages. Linux only.
    ///
    /// The file is checked before anything is mapped: a regular file (a memfd) of exactly
    /// the share's size, sealed against shrinking and growing (so no holder can ever make
    /// this mapping fault) and not against writing. The new Block has an id of its own
    /// ([`Share::source_id`] is the owner's) and the memfd's name.
    ///
    /// One process maps a file read-write only once: if this process already maps it (the
    /// owner's Block, a Tape over it, another import), the import is refused
    /// ([`AlreadyMapped`](MemError::AlreadyMapped)), since the two Blocks would be two
    /// views of the same bytes that the borrow checker cannot see.
    ///
    /// Pinning follows `pin` as for [`Block::open`]; the lock counts against this process's
    /// `RLIMIT_MEMLOCK` although the pages are shared (the kernel counts locks per mapping).
    /// No memory is allocated: the owner populated every page, so populating here only
    /// builds page tables.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unimem::{Access, Block, MemError, Pin, Share};
    ///
    /// let mut owner = Block::builder(1 << 16).pin(Pin::BestEffort).open()?;
    /// owner.as_bytes_mut()[100] = 7;
    /// let (here, there) = UnixStream::pair().unwrap();
    /// owner.share(Access::ReadWrite)?.send(&here)?;
    ///
    /// // In the peer process. (Here it is this process, so the owner lets go of its Block
    /// // first: a process maps a file read-write only once. The share keeps the memory.)
    /// drop(owner);
    /// let mut peer = Block::import(Share::recv(&there)?, Pin::BestEffort)?;
    /// assert_eq!(peer.as_bytes()[100], 7);
    /// peer.as_bytes_mut()[100] = 8;
    ///
    /// // A second mapping of the file in this process would alias `peer`'s views: refused.
    /// let again = peer.share(Access::ReadWrite)?;
    /// assert!(matches!(
    ///     Block::import(again, Pin::BestEffort),
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
    ///   [`ShareSize`](MemError::ShareSize): the descriptor is not what the header says;
    /// - [`AlreadyMapped`](MemError::AlreadyMapped): this process maps the file already (a
    ///   live Block, Tape or import of it: a second mapping would alias its views). Use
    ///   that Block, drop it first, or import in another process;
    /// - [`LockRefused`](MemError::LockRefused) under [`Pin::Required`];
    /// - [`Os`](MemError::Os) for `fstat`, `fcntl(F_GET_SEALS)`, `mmap`, populating.
    ///
    /// On every error the descriptor is closed and nothing stays mapped or locked.
    pub fn import(share: Share, pin: Pin) -> Result<Block, MemError> {
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
    /// then chooses not to write). Linux only.
    ///
    /// The result has shared views and offset-checked reads only: writing through the
    /// mapping is ruled out by type. Locking a `PROT_READ` mapping works like any other
    /// (`is_pinned()` reports it) and counts against this process's `RLIMIT_MEMLOCK`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use unimem::{Access, Block, Pin, Share};
    ///
    /// let mut owner = Block::builder(1 << 16).pin(Pin::BestEffort).open()?;
    /// owner.as_f32_mut()[..3].copy_from_slice(&[1.0, 2.0, 3.0]);
    /// // Frozen, so that even this process may import it read-only (its mapping of a
    /// // Block it can still write would be aliased); a peer process may import either way.
    /// let owner = owner.freeze()?;
    /// let (here, there) = UnixStream::pair().unwrap();
    /// owner.share(Access::ReadOnly)?.send(&here)?;
    ///
    /// // In the peer process:
    /// let weights = Block::import_read_only(Share::recv(&there)?, Pin::BestEffort)?;
    /// assert_eq!(weights.access(), Access::ReadOnly);
    /// assert_eq!(weights.read::<f32>(4, 2)?, &[2.0, 3.0]);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Block::import`], except `ShareReadOnly` and `NotWritable`; a read-only share
    /// whose memfd lacks the write seal is [`ShareUnsealed`](MemError::ShareUnsealed), and
    /// [`AlreadyMapped`](MemError::AlreadyMapped) is returned only while this process maps
    /// the file **writable** (freeze that Block first, or [`into_read_only`]): read-only
    /// mappings of one file coexist.
    ///
    /// [`into_read_only`]: Block::into_read_only
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

//! The files this process maps, and how: what keeps two mappings of one memfd in one
//! process from aliasing each other.
//!
//! # Why
//!
//! A Block's views follow the borrow rules because the Block is the only way to its bytes.
//! A second mapping of the same file in the same process breaks that: it is another Block
//! over the very same pages, at another address, and the borrow checker cannot see that
//! the two alias. A `&mut [u8]` from one and a `&[u8]` (or a second `&mut`) from the other
//! would be undefined behaviour in safe code, and the compiler does miscompile it (it may
//! keep a value read through the `&[u8]` in a register across a write through the `&mut`).
//! On Linux the only ways to a second mapping through the public API are the imports
//! ([`Block::import`], [`Block::import_read_only`]) of a [`Share`] of a file this process
//! already maps, however the share got here: made by [`Extent::share`] in this process, or
//! received from a socket (sent by this process, or by another that was sent it).
//!
//! # How
//!
//! Every Linux mapping registers here for its whole life ([`Mapped`], a guard removed on
//! drop), keyed by the file's identity `(st_dev, st_ino)` from `fstat`, with whether it is
//! writable: `Block::open` and read-write imports register writable, read-only imports
//! read-only, and freezing (`Block::into_read_only`, which replaces the mapping by a
//! `PROT_READ` one) turns a writable registration read-only. The rules, checked and
//! recorded under one lock before anything is mapped:
//!
//! - a **read-write** import is refused if this process maps the file at all: its `&mut`
//!   views would alias any other mapping's views;
//! - a **read-only** import is refused if this process maps the file writable: the
//!   writable Block (or its Tape) may have handed out `&mut` views of the bytes. Next to
//!   read-only mappings (a frozen Block, another read-only import) it is fine: `&[T]`
//!   views of the same bytes may coexist.
//!
//! The refusal is [`MemError::AlreadyMapped`], naming a Block that holds the file.
//!
//! An entry lives no longer than its mapping (a large Block's mapping may outlive it for a
//! moment on the release thread, unreachable: nothing can alias it), and the mapping holds
//! the file open, so a file's identity cannot be reused while it is registered: a new memfd never meets a
//! stale entry, and a file whose every mapping here has gone (its Blocks dropped; a
//! [`Share`] still keeps it alive) can be imported again.
//!
//! What this does not cover is outside the API: a descriptor from `AsRawFd` used with
//! `unsafe` code, and writes through procfs (`/proc/self/fd/N` reopened, `/proc/self/mem`),
//! which Rust's safety guarantees do not cover (`specs/share.md`, "Soundness").
//!
//! [`Block::import`]: crate::Block::import
//! [`Block::import_read_only`]: crate::Block::import_read_only
//! [`Share`]: crate::Share
//! [`Extent::share`]: crate::Extent::share

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::block::Access;
use crate::error::MemError;

/// A file's identity in this system: `(st_dev, st_ino)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Inode {
    /// `st_dev`: the filesystem (for memfds, the kernel's internal shmem mount).
    pub(crate) dev: u64,
    /// `st_ino`: the file within it.
    pub(crate) ino: u64,
}

/// One mapping of a file: the Block that holds it and whether it is writable.
#[derive(Debug, Clone, Copy)]
struct Holder {
    id: u32,
    writable: bool,
}

/// The live mappings of this process, per file. Registering is a slow path (it goes with an
/// `mmap` and a pin), so one mutex is plenty; a file is mapped a handful of times at most.
static MAPPED: Mutex<BTreeMap<Inode, Vec<Holder>>> = Mutex::new(BTreeMap::new());

/// A live mapping's registration, removed when dropped.
#[derive(Debug)]
pub(crate) struct Mapped {
    inode: Inode,
    id: u32,
    writable: bool,
}

impl Mapped {
    /// Registers a mapping of `inode` with `access` for the Block `id` (unique among live
    /// Blocks), or refuses it by the rules above. Check and record happen under one lock,
    /// so two threads importing the same file cannot both pass.
    pub(crate) fn register(inode: Inode, id: u32, access: Access) -> Result<Mapped, MemError> {
        let mut mapped = MAPPED.lock().unwrap_or_else(|poison| poison.into_inner());
        let holders = mapped.entry(inode).or_default();
        // A writable mapping is always alone (the first rule), so it is the first holder.
        let conflict = match access {
            Access::ReadWrite => holders.first(),
            Access::ReadOnly => holders.iter().find(|h| h.writable),
        };
        if let Some(holder) = conflict {
            return Err(already_mapped(*holder, access));
        }
        let writable = access == Access::ReadWrite;
        holders.push(Holder { id, writable });
        Ok(Mapped {
            inode,
            id,
            writable,
        })
    }

    /// The mapping is no longer writable (freeze replaced it by a `PROT_READ` one, or lost
    /// it): read-only imports of the file are allowed alongside it from now on.
    pub(crate) fn make_read_only(&mut self) {
        if !self.writable {
            return;
        }
        self.writable = false;
        let mut mapped = MAPPED.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(holder) = mapped
            .get_mut(&self.inode)
            .and_then(|holders| holders.iter_mut().find(|h| h.id == self.id))
        {
            holder.writable = false;
        }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let mut mapped = MAPPED.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(holders) = mapped.get_mut(&self.inode) {
            holders.retain(|h| h.id != self.id);
            if holders.is_empty() {
                mapped.remove(&self.inode);
            }
        }
    }
}

/// How many mappings are registered, over all files: the fault-injection tests' check that
/// an error path removed its registration (`fault::mapped`).
#[cfg(all(feature = "fault-injection", target_os = "linux", not(miri)))]
pub(crate) fn registered() -> usize {
    MAPPED
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .values()
        .map(Vec::len)
        .sum()
}

#[cold]
fn already_mapped(holder: Holder, requested: Access) -> MemError {
    MemError::AlreadyMapped {
        id: holder.id,
        writable: holder.writable,
        requested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inodes far from any real file's (tests of other modules register real memfds).
    fn inode(n: u64) -> Inode {
        Inode {
            dev: u64::MAX,
            ino: u64::MAX - n,
        }
    }

    fn refused(inode: Inode, id: u32, access: Access) -> MemError {
        Mapped::register(inode, id, access).unwrap_err()
    }

    #[test]
    fn read_write_is_alone() {
        let file = inode(1);
        let owner = Mapped::register(file, 10, Access::ReadWrite).unwrap();
        for access in [Access::ReadWrite, Access::ReadOnly] {
            assert_eq!(
                refused(file, 11, access),
                MemError::AlreadyMapped {
                    id: 10,
                    writable: true,
                    requested: access
                }
            );
        }
        // Other files are not affected.
        let other = Mapped::register(inode(2), 12, Access::ReadWrite).unwrap();
        drop(owner);
        let again = Mapped::register(file, 13, Access::ReadWrite).unwrap();
        drop((again, other));
    }

    #[test]
    fn read_only_mappings_coexist() {
        let file = inode(3);
        let a = Mapped::register(file, 20, Access::ReadOnly).unwrap();
        let b = Mapped::register(file, 21, Access::ReadOnly).unwrap();
        assert_eq!(
            refused(file, 22, Access::ReadWrite),
            MemError::AlreadyMapped {
                id: 20,
                writable: false,
                requested: Access::ReadWrite
            }
        );
        drop(a);
        assert!(matches!(
            refused(file, 22, Access::ReadWrite),
            MemError::AlreadyMapped { id: 21, .. }
        ));
        drop(b);
        drop(Mapped::register(file, 22, Access::ReadWrite).unwrap());
    }

    #[test]
    fn freezing_turns_a_writer_into_a_reader() {
        let file = inode(4);
        let mut owner = Mapped::register(file, 30, Access::ReadWrite).unwrap();
        assert!(matches!(
            refused(file, 31, Access::ReadOnly),
            MemError::AlreadyMapped {
                id: 30,
                writable: true,
                ..
            }
        ));
        owner.make_read_only();
        owner.make_read_only();
        let reader = Mapped::register(file, 31, Access::ReadOnly).unwrap();
        assert_eq!(
            refused(file, 32, Access::ReadWrite),
            MemError::AlreadyMapped {
                id: 30,
                writable: false,
                requested: Access::ReadWrite
            }
        );
        drop((owner, reader));
        assert!(
            !MAPPED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&file),
            "the entry goes with its last mapping"
        );
    }
}

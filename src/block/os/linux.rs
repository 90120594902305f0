//! Linux backend: a sealed memfd, mapped shared, populated in parallel and locked in RAM.
//!
//! Open, in order (each step's failure releases what the earlier ones acquired, through
//! `Drop`):
//!
//! 1. refuse sizes that `MemAvailable` or the cgroup limit cannot hold (an oversized memfd
//!    is not an error to the kernel: populating it summons the OOM killer);
//! 2. `memfd_create(CLOEXEC | ALLOW_SEALING | NOEXEC_SEAL)`, retried without `NOEXEC_SEAL`
//!    before Linux 6.3;
//! 3. `ftruncate`, then seal `SHRINK | GROW`: no holder of the fd can ever resize the file
//!    and make a mapping of it fault with `SIGBUS`;
//! 4. register the mapping, writable, in this process's registry of mapped files
//!    (`share/mapped.rs`, keyed by `fstat`'s `(st_dev, st_ino)`), then `mmap(MAP_SHARED)`, so
//!    the same pages can be mapped by other processes;
//! 5. `mlock2(MLOCK_ONFAULT)`: charge RLIMIT_MEMLOCK for the whole range and fail fast,
//!    before any page is allocated, if the limit refuses;
//! 6. populate with `MADV_POPULATE_WRITE`, split over threads for large Blocks (the cost of
//!    shmem is per-page fault overhead, which parallelises), each page locked as it faults;
//! 7. `mlock`, which turns the on-fault lock into a full one by walking present pages.
//!
//! Import (`Mapping::import`, a memfd received from another process and already checked by
//! `share/message.rs`): steps 4 to 7 only, through the same `pin` and the same `Drop`, with the
//! mapping registered with its access (refused with `AlreadyMapped` where it would alias a
//! mapping this process already has), `PROT_READ` for a read-only import, and populated
//! with `MADV_POPULATE_READ` (read or write import alike). The owner populated every page,
//! so populating an import only builds this process's page tables (the share's checks proved
//! that the file holds every page, `share/message.rs`); it still splits over threads for
//! large Blocks, because that work is per page too. The headroom check of step 1 is made by
//! `share/import.rs`, and only for files a holder can still punch holes in.
//!
//! Freeze (`seal_read_only`, `seal_write`, called by `share/freeze.rs`): `F_SEAL_FUTURE_WRITE`;
//! the mapping replaced in place by a `PROT_READ` one of the same file at the same address
//! (`MAP_FIXED`), which the kernel makes without `VM_MAYWRITE` now that the seal is set;
//! locked again if it was pinned (through the same `pin`); then `F_SEAL_WRITE`. Should the
//! replacement fail, the range may be a hole: the mapping is marked `lost` and never
//! touched again, not even by `Drop`. From the replacement on, the registration is
//! read-only.
//!
//! Drop: `munlock`, `munmap`, then `close`, then the registration and the id (the fields
//! drop in that order).

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::block::id::Ticket;
use crate::block::share::mapped::{Inode, Mapped};
use crate::block::{Access, Pin};
use crate::error::MemError;
use crate::ffi::linux as ffi;
use crate::limits::{Limits, check_headroom};

/// `MFD_NOEXEC_SEAL` (linux/memfd.h, Linux 6.3): the memfd can never be made executable.
const MFD_NOEXEC_SEAL: libc::c_uint = 0x8;

/// Blocks at least this large are populated by several threads.
const PARALLEL_MIN: usize = 64 << 20;
/// Each populating thread gets at least this much.
const PARALLEL_CHUNK: usize = 32 << 20;
/// No more populating threads than this, however many cores.
const PARALLEL_MAX: usize = 32;

pub(crate) struct Mapping {
    base: NonNull<u8>,
    len: usize,
    /// `mlock2`/`mlock` succeeded on the range: `munlock` it at drop.
    locked: bool,
    /// Every page is present and locked.
    pinned: bool,
    /// How this process mapped the file: `ReadOnly` maps are `PROT_READ`.
    access: Access,
    /// The kernel counts this mapping as writable (a shared mapping with `VM_MAYWRITE`:
    /// made from an `O_RDWR` descriptor while the file had no write seal), so
    /// `F_SEAL_WRITE` is refused while it exists, even if it is `PROT_READ`. `freeze`
    /// replaces it by one made after `F_SEAL_FUTURE_WRITE`, which the kernel makes without.
    may_write: bool,
    /// `freeze` replaced a pinned mapping and has not locked the new one yet (the lock
    /// failed): the next `freeze` tries again.
    repin: bool,
    /// `freeze`'s `MAP_FIXED` replacement failed with this errno: the range may be a hole
    /// that another mapping can take, so it is never touched again (`len` is 0).
    lost: Option<i32>,
    /// The file was seen carrying `F_SEAL_WRITE`. Seals are never removed, so once set this
    /// stays true and `is_frozen` asks the kernel no more.
    frozen: AtomicBool,
    fd: OwnedFd,
    /// This mapping's entry in the registry of files this process maps (`mapped.rs`):
    /// removed after the mapping is gone (fields drop after `Drop::drop`), before the id.
    mapped: Mapped,
    ticket: Ticket,
}

impl Mapping {
    pub(crate) const BACKEND: &'static str = "linux memfd";

    pub(crate) fn open(len: usize, name: &str, pin: Pin) -> Result<Mapping, MemError> {
        check_headroom(len)?;
        let name = CString::new(name).map_err(|_| MemError::BadName {
            len: name.len(),
            reason: "contains a NUL byte",
        })?;
        let fd = memfd(&name)?;
        ffi::ftruncate(fd.as_fd(), len).map_err(os("ftruncate"))?;
        ffi::add_seals(fd.as_fd(), libc::F_SEAL_SHRINK | libc::F_SEAL_GROW)
            .map_err(os("fcntl(F_ADD_SEALS)"))?;
        let stat = ffi::fstat(fd.as_fd()).map_err(os("fstat"))?;
        let inode = Inode {
            dev: stat.dev,
            ino: stat.ino,
        };
        Mapping::map(fd, len, inode, Access::ReadWrite, pin, Populate::Write)
    }

    /// Maps and pins a memfd received from another process. The caller (`share/message.rs`) has
    /// checked that it is sealed against shrinking and growing (and against new writable
    /// mappings when `access` is `ReadOnly` and the share was read-only), so no holder of it
    /// can make this mapping fault, that it is a regular file of exactly `len` bytes, open
    /// for `access`, holding every page; `inode` is its identity from the same `fstat`. Refused with `AlreadyMapped` if this process maps
    /// the file already in a way the new mapping would alias (`mapped.rs`).
    pub(crate) fn import(
        fd: OwnedFd,
        len: usize,
        inode: Inode,
        access: Access,
        pin: Pin,
    ) -> Result<Mapping, MemError> {
        Mapping::map(fd, len, inode, access, pin, Populate::Read)
    }

    /// Steps 4 to 7, shared by `open` and `import`: register the mapping (`mapped.rs`),
    /// `mmap`, then pin. On error `fd` is closed, and a mapping already made is unlocked,
    /// unmapped and unregistered, by `Drop`.
    fn map(
        fd: OwnedFd,
        len: usize,
        inode: Inode,
        access: Access,
        pin: Pin,
        populate: Populate,
    ) -> Result<Mapping, MemError> {
        // Id first (the registry names holders by id), then the registration, which refuses
        // before anything is mapped; both are given back by their drops on any error.
        let ticket = Ticket::take();
        let mapped = Mapped::register(inode, ticket.id(), access)?;
        let prot = match access {
            Access::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
            Access::ReadOnly => libc::PROT_READ,
        };
        // A shared mapping of an `O_RDWR` descriptor counts as writable, even `PROT_READ`,
        // unless the file had a write seal when it was made. Seals are only ever added, so
        // reading them before `mmap` can only err towards "writable", as does a failed read.
        let write_seals = libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE;
        let may_write = match access {
            Access::ReadWrite => true,
            Access::ReadOnly => {
                ffi::get_seals(fd.as_fd()).map_or(true, |seals| seals & write_seals == 0)
            }
        };
        let base = ffi::mmap_shared(fd.as_fd(), len, prot).map_err(os("mmap"))?;
        let mut map = Mapping {
            base,
            len,
            locked: false,
            pinned: false,
            access,
            may_write,
            repin: false,
            lost: None,
            frozen: AtomicBool::new(false),
            fd,
            mapped,
            ticket,
        };
        map.pin(pin, populate)?;
        Ok(map)
    }

    /// Populates every page and locks it per `pin`.
    fn pin(&mut self, pin: Pin, populate_with: Populate) -> Result<(), MemError> {
        let errno = match ffi::mlock_on_fault(self.base, self.len) {
            Ok(()) => {
                self.locked = true;
                populate(self.base, self.len, populate_with)?;
                match ffi::mlock(self.base, self.len) {
                    Ok(()) => {
                        self.pinned = true;
                        return Ok(());
                    }
                    Err(errno) => errno,
                }
            }
            // No mlock2 (before Linux 4.4, or filtered): mlock populates and locks at once.
            Err(libc::ENOSYS | libc::EINVAL) => match ffi::mlock(self.base, self.len) {
                Ok(()) => {
                    self.locked = true;
                    self.pinned = true;
                    return Ok(());
                }
                Err(errno) => errno,
            },
            Err(errno) => errno,
        };
        match pin {
            Pin::Required => Err(lock_refused(self.len, errno)),
            Pin::BestEffort => {
                if self.locked {
                    let _ = ffi::munlock(self.base, self.len);
                    self.locked = false;
                }
                populate(self.base, self.len, populate_with)
            }
        }
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn id(&self) -> u32 {
        self.ticket.id()
    }

    pub(crate) fn is_pinned(&self) -> bool {
        self.pinned
    }

    pub(crate) fn access(&self) -> Access {
        self.access
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether the kernel counts this mapping as writable (see the field).
    #[cfg(feature = "cuda")]
    pub(crate) fn may_write(&self) -> bool {
        self.may_write
    }

    /// Freeze, steps 1 to 3 (`src/block/share/freeze.rs` has the design): seal the file against
    /// new writers, replace this process's mapping by a `PROT_READ` one at the same address
    /// if the kernel counts it as writable, and lock the new one as the old one was. From
    /// the replacement on, `access` is `ReadOnly`, whatever fails after. Idempotent: each
    /// step is skipped once done, so a failed call can be repeated.
    ///
    /// The caller holds `&mut` to the Block or owner (no view of the bytes is alive).
    pub(crate) fn seal_read_only(&mut self) -> Result<(), MemError> {
        if let Some(errno) = self.lost {
            return Err(lost(errno));
        }
        let seals = ffi::get_seals(self.fd.as_fd()).map_err(os("fcntl(F_GET_SEALS)"))?;
        if seals & (libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE) == 0 {
            ffi::add_seals(self.fd.as_fd(), libc::F_SEAL_FUTURE_WRITE)
                .map_err(os("fcntl(F_ADD_SEALS, F_SEAL_FUTURE_WRITE)"))?;
        }
        if self.may_write {
            let relock = self.pinned;
            // SAFETY: the caller holds `&mut` to the only owner of this mapping, so no
            // reference into it is alive; the new mapping is of the same file at the same
            // address and length, so once it is in place every byte reads as before.
            let replaced = unsafe {
                ffi::mmap_fixed_shared(self.fd.as_fd(), self.base, self.len, libc::PROT_READ)
            };
            // The old mapping's locks went with it, whatever happened.
            self.locked = false;
            self.pinned = false;
            self.access = Access::ReadOnly;
            // No view of this mapping can be mutable any more (replaced `PROT_READ`, or
            // lost): read-only imports of the file may sit next to it in this process.
            self.mapped.make_read_only();
            if let Err(errno) = replaced {
                self.lost = Some(errno);
                self.len = 0;
                self.may_write = false;
                return Err(lost(errno));
            }
            // With F_SEAL_FUTURE_WRITE set, the kernel made the new shared mapping without
            // VM_MAYWRITE: it no longer counts as writable and can never become so.
            self.may_write = false;
            self.repin = relock;
        }
        if self.repin {
            self.pin(Pin::Required, Populate::Read)?;
            self.repin = false;
        }
        Ok(())
    }

    /// Freeze, step 4: `F_SEAL_WRITE`. The kernel refuses it with `EBUSY` while any
    /// process maps the file writable or pages of it are pinned by a device or an I/O.
    pub(crate) fn seal_write(&self, id: u32) -> Result<(), MemError> {
        if let Some(errno) = self.lost {
            return Err(lost(errno));
        }
        match ffi::add_seals(self.fd.as_fd(), libc::F_SEAL_WRITE) {
            Ok(()) => {
                self.frozen.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(libc::EBUSY) => Err(MemError::FreezeBusy { id, size: self.len }),
            Err(errno) => Err(os("fcntl(F_ADD_SEALS, F_SEAL_WRITE)")(errno)),
        }
    }

    /// Whether the file carries `F_SEAL_WRITE`: no process can change its bytes, ever. Asks
    /// the kernel (one `fcntl`) until the answer is yes, then remembers it.
    pub(crate) fn is_frozen(&self) -> bool {
        if self.lost.is_some() {
            return false;
        }
        if self.frozen.load(Ordering::Relaxed) {
            return true;
        }
        let sealed =
            ffi::get_seals(self.fd.as_fd()).is_ok_and(|seals| seals & libc::F_SEAL_WRITE != 0);
        if sealed {
            self.frozen.store(true, Ordering::Relaxed);
        }
        sealed
    }
}

/// The error of a freeze whose `MAP_FIXED` replacement failed (`Mapping::lost`).
#[cold]
fn lost(errno: i32) -> MemError {
    MemError::Os {
        call: "mmap(MAP_FIXED, PROT_READ)",
        errno,
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.lost.is_some() {
            // The range may be a hole another mapping has taken since: leave it alone.
            return;
        }
        if self.locked {
            let _ = ffi::munlock(self.base, self.len);
        }
        // SAFETY: the mapping was created by `map` and is owned by `self`; the Block that
        // lent out views of it is being dropped, so no reference into it is alive.
        let _ = unsafe { ffi::munmap(self.base, self.len) };
        // `fd` is closed after this body, when the field drops: the file itself is freed
        // once the last holder (another process, a CUDA registration) lets go.
    }
}

fn memfd(name: &std::ffi::CStr) -> Result<OwnedFd, MemError> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    match ffi::memfd_create(name, flags | MFD_NOEXEC_SEAL) {
        // Before Linux 6.3 the flag is unknown.
        Err(libc::EINVAL) => ffi::memfd_create(name, flags),
        result => result,
    }
    .map_err(os("memfd_create"))
}

/// How to fault pages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Populate {
    /// `MADV_POPULATE_WRITE`: a new Block, whose pages do not exist yet; write faults
    /// allocate them ready to be written.
    Write,
    /// `MADV_POPULATE_READ`: an import, whose pages the owner already allocated. Read faults
    /// only build page tables, map up to 16 pages per fault (fault-around), and need no
    /// write access, so they work on `PROT_READ` mappings too; on a writable shared memfd
    /// mapping they map the pages writable (shmem needs no write notification). Measured
    /// on the build machine: 1 GiB in ~0.06 s, against ~0.2 s for `MADV_POPULATE_WRITE`.
    Read,
}

/// Faults every page of `base..base + len` in, with up to `PARALLEL_MAX` threads each
/// faulting its own range.
fn populate(base: NonNull<u8>, len: usize, with: Populate) -> Result<(), MemError> {
    let page = crate::page_size();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if len >= PARALLEL_MIN {
        cores.min(len / PARALLEL_CHUNK).clamp(1, PARALLEL_MAX)
    } else {
        1
    };
    let chunk = len.div_ceil(threads).next_multiple_of(page);
    let mut ranges = (0..len)
        .step_by(chunk)
        .map(|start| (start, chunk.min(len - start)));
    if threads == 1 {
        return ranges.try_for_each(|(start, n)| populate_range(base, start, n, with));
    }
    let at = Address(base);
    std::thread::scope(|scope| {
        let workers: Vec<_> = ranges
            .map(|(start, n)| {
                let spawned = std::thread::Builder::new()
                    .name("unimem-populate".into())
                    .spawn_scoped(scope, move || populate_range(at.get(), start, n, with));
                // A process that may not start threads populates on this one.
                spawned.map_err(|_| populate_range(at.get(), start, n, with))
            })
            .collect();
        workers.into_iter().try_for_each(|worker| match worker {
            Ok(handle) => handle.join().unwrap_or(Err(MemError::Os {
                call: populate_call(with),
                errno: libc::EIO,
            })),
            Err(inline) => inline,
        })
    })
}

/// Populates `n` bytes at `base + start`.
fn populate_range(
    base: NonNull<u8>,
    start: usize,
    n: usize,
    with: Populate,
) -> Result<(), MemError> {
    // SAFETY: `start + n <= len`, inside the mapping.
    let ptr = unsafe { base.add(start) };
    loop {
        let populated = match with {
            Populate::Write => ffi::populate_write(ptr, n),
            Populate::Read => ffi::populate_read(ptr, n),
        };
        match populated {
            Ok(()) => return Ok(()),
            Err(libc::EINTR | libc::EAGAIN) => continue,
            // Before Linux 5.14: read one byte per page. A read fault on a shared memfd
            // mapping allocates the page (shmem maps no shared zero page), and reading
            // leaves an imported Block's contents alone.
            Err(libc::EINVAL) => {
                let page = crate::page_size();
                for offset in (0..n).step_by(page) {
                    // SAFETY: inside the mapping, which is readable; no `&mut` to it exists
                    // yet (the Block is not built until populating is done).
                    unsafe { ptr.add(offset).read_volatile() };
                }
                return Ok(());
            }
            Err(errno) => {
                return Err(MemError::Os {
                    call: populate_call(with),
                    errno,
                });
            }
        }
    }
}

fn populate_call(with: Populate) -> &'static str {
    match with {
        Populate::Write => "madvise(MADV_POPULATE_WRITE)",
        Populate::Read => "madvise(MADV_POPULATE_READ)",
    }
}

/// The base pointer, carried to populating threads.
#[derive(Clone, Copy)]
struct Address(NonNull<u8>);

// SAFETY: each thread writes only its own disjoint range of a mapping that outlives the
// scope in which the threads run.
unsafe impl Send for Address {}

impl Address {
    fn get(self) -> NonNull<u8> {
        self.0
    }
}

fn lock_refused(requested: usize, errno: i32) -> MemError {
    let limits = Limits::read();
    MemError::LockRefused {
        requested,
        errno,
        limit: limits.memlock.flatten(),
        locked: limits.locked.unwrap_or(0),
    }
}

fn os(call: &'static str) -> impl Fn(i32) -> MemError {
    move |errno| MemError::Os { call, errno }
}

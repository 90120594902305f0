//! Linux backend: a sealed memfd, mapped shared, populated in parallel and locked in RAM.
//!
//! Open, in order (each step's failure releases what the earlier ones acquired, through
//! `Drop`):
//!
//! 1. refuse a NUMA node that does not exist (`linux/numa.rs`), and choose the pages: base
//!    pages, or where the Builder asks and the system grants them, hugetlb or transparent
//!    huge pages, the size rounded up to the page in use (`linux/huge.rs`); should a
//!    hugetlb attempt fail below, the next candidate is tried from step 2 on;
//! 2. refuse sizes that `MemAvailable` or the cgroup limit cannot hold (an oversized memfd
//!    is not an error to the kernel: populating it summons the OOM killer), after waiting
//!    for Blocks still being released if that makes the difference; for hugetlb pages the
//!    pool was checked in step 1 instead;
//! 3. `memfd_create(CLOEXEC | ALLOW_SEALING | NOEXEC_SEAL [| HUGETLB | size])`, retried
//!    without `NOEXEC_SEAL` before Linux 6.3;
//! 4. `ftruncate`, then seal `SHRINK | GROW`: no holder of the fd can ever resize the file
//!    and make a mapping of it fault with `SIGBUS`;
//! 5. register the mapping, writable, in this process's registry of mapped files
//!    (`share/mapped.rs`, keyed by `fstat`'s `(st_dev, st_ino)`), then `mmap(MAP_SHARED)`, so
//!    the same pages can be mapped by other processes (for transparent huge pages at an
//!    address aligned to the huge page, then `MADV_HUGEPAGE`); `mbind` to the NUMA node;
//! 6. `mlock2(MLOCK_ONFAULT)`: charge RLIMIT_MEMLOCK for the whole range and fail fast,
//!    before any page is allocated, if the limit refuses; each page is locked as it faults;
//! 7. populate with `MADV_POPULATE_WRITE`, split over threads (`linux/populate.rs`): once
//!    every page is present, every page is locked. No second `mlock` walks them again.
//!
//! Import (`Mapping::import`, a memfd received from another process and already checked by
//! `share/message.rs`): steps 5 to 7 only, through the same `pin` and the same `Drop`, with the
//! mapping registered with its access (refused with `AlreadyMapped` where it would alias a
//! mapping this process already has), `PROT_READ` for a read-only import, and populated
//! with `MADV_POPULATE_READ` (read or write import alike). The owner populated every page,
//! so populating an import only builds this process's page tables (the share's checks proved
//! that the file holds every page, `share/message.rs`); it still splits over threads for
//! large Blocks, because that work is per page too. A hugetlb file is imported with its page
//! size (`fstatfs`); a shmem file of whole huge pages is mapped aligned where THP for shmem
//! is allowed, so the owner's huge pages can be mapped huge here. The headroom check of
//! step 1 is made by `share/import.rs`, and only for files a holder can still punch holes in.
//!
//! Freeze (`seal_read_only`, `seal_write`, called by `share/freeze.rs`): `F_SEAL_FUTURE_WRITE`;
//! the mapping replaced in place by a `PROT_READ` one of the same file at the same address
//! (`MAP_FIXED`), which the kernel makes without `VM_MAYWRITE` now that the seal is set;
//! locked again if it was pinned (through the same `pin`); then `F_SEAL_WRITE`. Should the
//! replacement fail, the range may be a hole: the mapping is marked `lost` and never
//! touched again, not even by `Drop`. From the replacement on, the registration is
//! read-only.
//!
//! Drop: `munmap`, then `close` (`munmap` unlocks a locked range itself), on the release
//! thread for Blocks of 256 MiB or more (`linux/release.rs`); then the registration and the
//! id (the fields drop in that order).

use std::ffi::CString;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::block::id::Ticket;
use crate::block::linux::huge::{self, Choice};
use crate::block::linux::populate::{Plan, Populate, populate};
use crate::block::linux::{numa, release};
use crate::block::progress::{Progress, Tracker, Work};
use crate::block::share::mapped::{Inode, Mapped};
use crate::block::{Access, Builder, Pages, Pin};
use crate::error::MemError;
use crate::ffi::linux as ffi;
use crate::limits::{Limits, check_headroom};

/// Blocks until every Block handed to the release thread is released.
pub(crate) fn wait_for_releases() {
    release::wait();
}

/// Bytes handed to the release thread and not yet released.
pub(crate) fn releasing() -> u64 {
    release::pending()
}

/// `MFD_NOEXEC_SEAL` (linux/memfd.h, Linux 6.3): the memfd can never be made executable.
const MFD_NOEXEC_SEAL: libc::c_uint = 0x8;
/// `MFD_HUGE_SHIFT` (linux/memfd.h): `MFD_HUGETLB`'s page size is `log2(size) << 26`.
const MFD_HUGE_SHIFT: u32 = 26;

pub(crate) struct Mapping {
    base: NonNull<u8>,
    len: usize,
    /// `mlock2`/`mlock` succeeded on the range (`munmap` unlocks it at drop).
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
    /// The pages behind the mapping, and their size.
    pages: Pages,
    page_size: usize,
    /// The NUMA node the pages are bound to (`Builder::numa_node`).
    node: Option<u32>,
    /// Taken by `Drop` (to close it after the `munmap`, possibly on the release thread),
    /// never before.
    fd: ManuallyDrop<OwnedFd>,
    /// This mapping's entry in the registry of files this process maps (`mapped.rs`):
    /// removed after the mapping is handed to be released (fields drop after
    /// `Drop::drop`), before the id.
    mapped: Mapped,
    ticket: Ticket,
}

/// What a mapping is made of and how it is populated: the choice of pages, and the
/// Builder's placement, threads and progress.
#[derive(Clone, Copy)]
struct Shape<'a> {
    pages: Pages,
    page_size: usize,
    node: Option<u32>,
    threads: usize,
    progress: Option<&'a Progress>,
}

impl Mapping {
    pub(crate) const BACKEND: &'static str = "linux memfd";

    /// Opens a Block of `len` bytes (whole base pages) as `builder` says.
    pub(crate) fn open(len: usize, builder: &Builder) -> Result<Mapping, MemError> {
        let name = CString::new(builder.name.as_str()).map_err(|_| MemError::BadName {
            len: builder.name.len(),
            reason: "contains a NUL byte",
        })?;
        if let Some(node) = builder.node {
            numa::check(node)?;
        }
        let choices = huge::candidates(len, builder.huge, builder.huge_size, builder.node)?;
        let mut refused = None;
        for choice in choices {
            let shape = Shape {
                pages: choice.pages,
                page_size: choice.page_size,
                node: builder.node,
                threads: builder.threads,
                progress: builder.progress.as_deref(),
            };
            match Mapping::open_as(choice, &name, builder.pin, shape) {
                // hugetlb pages could not be had after all: the next candidate, if any.
                Err(err @ MemError::HugePagesUnavailable { .. }) => refused = Some(err),
                done => return done,
            }
        }
        Err(refused.unwrap_or_else(|| huge::unavailable(len, 0, builder.node)))
    }

    /// Opens one candidate: steps 2 to 7.
    fn open_as(
        choice: Choice,
        name: &std::ffi::CStr,
        pin: Pin,
        shape: Shape<'_>,
    ) -> Result<Mapping, MemError> {
        let len = choice.len;
        let hugetlb = choice.pages == Pages::HugeTlb;
        if !hugetlb {
            headroom(len)?;
        }
        let fd = memfd(name, hugetlb.then_some(choice.page_size))
            .map_err(|err| refuse_huge(err, hugetlb, len, shape))?;
        ffi::ftruncate(fd.as_fd(), len).map_err(os("ftruncate"))?;
        ffi::add_seals(fd.as_fd(), libc::F_SEAL_SHRINK | libc::F_SEAL_GROW)
            .map_err(os("fcntl(F_ADD_SEALS)"))?;
        let stat = ffi::fstat(fd.as_fd()).map_err(os("fstat"))?;
        let inode = Inode {
            dev: stat.dev,
            ino: stat.ino,
        };
        Mapping::map(
            fd,
            len,
            inode,
            Access::ReadWrite,
            pin,
            Populate::Write,
            shape,
        )
        .map_err(|err| refuse_huge(err, hugetlb, len, shape))
    }

    /// Maps and pins a memfd received from another process. The caller (`share/message.rs`) has
    /// checked that it is sealed against shrinking and growing (and against new writable
    /// mappings when `access` is `ReadOnly` and the share was read-only), so no holder of it
    /// can make this mapping fault, that it is a regular file of exactly `len` bytes, open
    /// for `access`, holding every page, and a whole number of its huge pages where it is a
    /// hugetlb file (`hugetlb_page`); `inode` is its identity from the same `fstat`. Refused
    /// with `AlreadyMapped` if this process maps
    /// the file already in a way the new mapping would alias (`mapped.rs`).
    pub(crate) fn import(
        fd: OwnedFd,
        len: usize,
        inode: Inode,
        access: Access,
        pin: Pin,
        hugetlb_page: Option<usize>,
    ) -> Result<Mapping, MemError> {
        let (pages, page_size) = match hugetlb_page {
            Some(page) => (Pages::HugeTlb, page),
            None => (Pages::Base, crate::page_size()),
        };
        let shape = Shape {
            pages,
            page_size,
            node: None,
            threads: 0,
            progress: None,
        };
        Mapping::map(fd, len, inode, access, pin, Populate::Read, shape)
    }

    /// Steps 5 to 7, shared by `open` and `import`: register the mapping (`mapped.rs`),
    /// `mmap`, then pin. On error `fd` is closed, and a mapping already made is unlocked,
    /// unmapped and unregistered, by `Drop`.
    fn map(
        fd: OwnedFd,
        len: usize,
        inode: Inode,
        access: Access,
        pin: Pin,
        populate: Populate,
        shape: Shape<'_>,
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
        let base = match align_for(shape.pages, len, populate) {
            Some(align) => mmap_aligned(fd.as_fd(), len, prot, align),
            None => ffi::mmap_shared(fd.as_fd(), len, prot),
        }
        .map_err(os("mmap"))?;
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
            pages: shape.pages,
            page_size: shape.page_size,
            node: shape.node,
            fd: ManuallyDrop::new(fd),
            mapped,
            ticket,
        };
        if shape.pages == Pages::Transparent {
            ffi::advise_huge_pages(base, len).map_err(os("madvise(MADV_HUGEPAGE)"))?;
        }
        if let Some(node) = shape.node {
            numa::bind(base, len, node)?;
        }
        let tracker = Tracker::start(shape.progress, Work::Populate, len as u64);
        let plan = Plan {
            threads: shape.threads,
            page_size: shape.page_size,
            // Huge pages scale with cores; so do an import's read faults.
            scales: shape.pages != Pages::Base || populate == Populate::Read,
            node: shape.node,
            tracker: Some(&tracker),
        };
        map.pin(pin, populate, &plan)?;
        tracker.finish();
        Ok(map)
    }

    /// Populates every page and locks it per `pin`.
    fn pin(&mut self, pin: Pin, populate_with: Populate, plan: &Plan<'_>) -> Result<(), MemError> {
        let mut on_fault = ffi::mlock_on_fault(self.base, self.len);
        if on_fault.is_err() && release::pending() > 0 {
            // Blocks dropped a moment ago still count against RLIMIT_MEMLOCK until the
            // release thread has unmapped them.
            release::wait();
            on_fault = ffi::mlock_on_fault(self.base, self.len);
        }
        let errno = match on_fault {
            Ok(()) => {
                // Each page is locked as it faults: once all are present, all are locked.
                self.locked = true;
                populate(self.base, self.len, populate_with, plan)?;
                self.pinned = true;
                return Ok(());
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
            Pin::BestEffort => populate(self.base, self.len, populate_with, plan),
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

    pub(crate) fn pages(&self) -> Pages {
        self.pages
    }

    pub(crate) fn page_size(&self) -> usize {
        self.page_size
    }

    pub(crate) fn numa_node(&self) -> Option<u32> {
        self.node
    }

    /// Bytes of the mapping on each NUMA node (`/proc/self/numa_maps`).
    pub(crate) fn numa_bytes(&self) -> Result<Vec<(u32, u64)>, MemError> {
        numa::bytes(self.base)
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
            let plan = Plan::import(self.page_size);
            self.pin(Pin::Required, Populate::Read, &plan)?;
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
        // SAFETY: `fd` is taken here, once, and never used again: `self` is being dropped.
        let fd = unsafe { ManuallyDrop::take(&mut self.fd) };
        if self.lost.is_some() {
            // The range may be a hole another mapping has taken since: leave it alone.
            return;
        }
        // SAFETY: the mapping was created by `map` and is owned by `self`; the Block that
        // lent out views of it is being dropped, so no reference into it is alive, and a
        // CUDA registration of it was undone by the Extent's `Drop` before this one. No
        // `munlock`: `munmap` unlocks a locked range itself.
        unsafe { release::release(self.base, self.len, fd) };
        // The file itself is freed once the last holder (another process, a CUDA
        // registration elsewhere) lets go.
    }
}

/// Checks the headroom for `len` more bytes, waiting first for Blocks still being released
/// if they are what stands in the way.
fn headroom(len: usize) -> Result<(), MemError> {
    match check_headroom(len) {
        Err(MemError::OutOfMemory { .. }) if release::pending() > 0 => {
            release::wait();
            check_headroom(len)
        }
        checked => checked,
    }
}

/// `memfd_create` with the Block's flags: hugetlb pages of `hugetlb` bytes if given.
fn memfd(name: &std::ffi::CStr, hugetlb: Option<usize>) -> Result<OwnedFd, MemError> {
    let mut flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    if let Some(page) = hugetlb {
        flags |= libc::MFD_HUGETLB | (page.trailing_zeros() << MFD_HUGE_SHIFT);
    }
    match ffi::memfd_create(name, flags | MFD_NOEXEC_SEAL) {
        // Before Linux 6.3 the flag is unknown.
        Err(libc::EINVAL) => ffi::memfd_create(name, flags),
        result => result,
    }
    .map_err(os("memfd_create"))
}

/// A failure of a hugetlb attempt that means "the pages could not be had": the memfd
/// refused (`EINVAL`: no such pool; `ENOMEM`), the `mmap` reservation refused (`ENOMEM`),
/// or populating could not get a page (`EFAULT`: a `SIGBUS` avoided; `ENOMEM`). Becomes
/// `HugePagesUnavailable` with the numbers of now, so that `open` tries the next
/// candidate or reports it; any other error is passed on.
fn refuse_huge(err: MemError, hugetlb: bool, len: usize, shape: Shape<'_>) -> MemError {
    let unavailable = matches!(
        err,
        MemError::Os {
            call: "memfd_create" | "mmap" | "madvise(MADV_POPULATE_WRITE)",
            errno: libc::EINVAL | libc::ENOMEM | libc::EFAULT,
        }
    );
    if hugetlb && unavailable {
        huge::unavailable(len, shape.page_size, shape.node)
    } else {
        err
    }
}

/// The alignment a mapping needs for its pages to be mapped huge: the PMD size for a
/// transparent-huge-page Block, and for an import of a shmem file of whole huge pages
/// where THP for shmem is allowed. hugetlb mappings are aligned by the kernel.
fn align_for(pages: Pages, len: usize, populate: Populate) -> Option<usize> {
    match (pages, populate) {
        (Pages::Transparent, _) => huge::thp_size(),
        (Pages::Base, Populate::Read) => {
            let pmd = huge::thp_size()?;
            let allowed = huge::shmem_thp().is_some_and(huge::thp_allowed);
            (allowed && len >= pmd && len % pmd == 0).then_some(pmd)
        }
        _ => None,
    }
}

/// `mmap` of the whole file at an address aligned to `align`. The kernel usually aligns
/// shmem mappings for huge pages itself; when it did not, a free aligned range is found
/// with a `PROT_NONE` reservation of `len + align` (unmapped again) and asked for as a
/// hint, which the kernel takes unless another thread took the range meanwhile (then the
/// mapping is merely unaligned: slower, never wrong).
fn mmap_aligned(
    fd: BorrowedFd<'_>,
    len: usize,
    prot: libc::c_int,
    align: usize,
) -> Result<NonNull<u8>, i32> {
    let first = ffi::mmap_shared(fd, len, prot)?;
    if first.as_ptr() as usize % align == 0 {
        return Ok(first);
    }
    // SAFETY: just mapped here, and nothing refers to it yet.
    let _ = unsafe { ffi::munmap(first, len) };
    let Some(span) = len.checked_add(align) else {
        return ffi::mmap_shared(fd, len, prot);
    };
    let Ok(hole) = ffi::mmap_reserve(span) else {
        return ffi::mmap_shared(fd, len, prot);
    };
    let aligned = (hole.as_ptr() as usize).next_multiple_of(align);
    // SAFETY: the reservation was just made here, is inaccessible, and nothing refers to it.
    let _ = unsafe { ffi::munmap(hole, span) };
    ffi::mmap_shared_near(fd, len, prot, aligned)
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

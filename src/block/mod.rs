//! [`Block`]: one pinned, page-aligned buffer owned by this process, and [`Extent`], its
//! identity and addresses without access to its bytes.
//!
//! # Design
//!
//! A Block is the only owner of operating-system memory in unimem. The backend is chosen
//! once, at compile time, by the module below (`os`): every backend defines the same
//! `Mapping` struct with the same methods, and nothing above this module knows which one
//! it got.
//!
//! | backend | where | memory |
//! |---|---|---|
//! | `os/linux.rs` | Linux | sealed memfd, `mmap(MAP_SHARED)`, locked with `mlock` |
//! | `os/apple.rs` | macOS | IOSurface, CPU-locked for its life, wired with `mlock` |
//! | `os/heap.rs` | Miri, and targets with no native backend | aligned heap allocation, never pinned |
//!
//! The bytes are reachable only through a `Block`: shared views take `&self`, mutable views
//! `&mut self`, so the borrow checker rules out aliasing. What a Tape lends out is the
//! [`Extent`] (address, size, id, file descriptor): enough to share the memory or hand it to
//! a device, but no view of bytes that the Tape may have handed out as `&mut`.
//!
//! On Linux a Block can also be shared with another process (`share/`: [`Extent::share`],
//! the import, [`ReadOnlyBlock`], freezing); on macOS it is an IOSurface with shapes and mach
//! ports of its own (`apple/`).
//!
//! At server scale (`specs/scale.md`) the Builder also chooses huge pages ([`HugePages`]),
//! a NUMA node, the populating threads and a [`Progress`] to follow the work, and large
//! Blocks are released on a background thread ([`wait_for_releases`]).
//!
//! ```text
//! block/
//!   mod.rs, id.rs        Block, Extent, Builder, Pin, Access; the registry of live ids
//!   pages.rs             HugePages, Pages: which pages, asked for and given
//!   progress.rs          Progress: counters that long work adds to
//!   os/                  the backend, chosen once: linux.rs | apple.rs | heap.rs
//!   linux/  (Linux)      huge.rs, numa.rs, populate.rs, release.rs, sysfs.rs: the parts of
//!                        the Linux backend for Blocks at server scale
//!   share/  (Linux)      message.rs (Share), import.rs, read_only.rs (ReadOnlyBlock),
//!                        freeze.rs, mapped.rs (files this process maps)
//!   apple/  (macOS)      surface.rs (SurfaceShape, 2-D surfaces), mach_port.rs (MachPort)
//! ```

#[cfg_attr(all(target_os = "linux", not(miri)), path = "os/linux.rs")]
#[cfg_attr(all(target_os = "macos", not(miri)), path = "os/apple.rs")]
#[cfg_attr(
    not(any(
        all(target_os = "linux", not(miri)),
        all(target_os = "macos", not(miri))
    )),
    path = "os/heap.rs"
)]
mod os;

// The portable backend compiled on Linux as well, for its unit tests: its refusals
// (`PinUnsupported`, `AllocFailed`) happen only on targets without a native backend, outside
// Miri, where no CI job runs.
#[cfg(all(test, target_os = "linux", not(miri)))]
#[path = "os/heap.rs"]
#[allow(dead_code)]
mod heap_backend;

#[cfg(all(target_os = "macos", not(miri)))]
mod apple;
mod id;
#[cfg(all(target_os = "linux", not(miri)))]
mod linux;
mod pages;
pub(crate) mod progress;
// The registry of mapped files is plain Rust, compiled for unit tests everywhere (Miri too).
#[cfg(any(all(target_os = "linux", not(miri)), test))]
mod share;

#[cfg(feature = "fault-injection")]
pub(crate) use id::live as live_ids;
#[cfg(all(feature = "fault-injection", target_os = "linux", not(miri)))]
pub(crate) use share::mapped::registered as mapped_files;

#[cfg(all(target_os = "macos", not(miri)))]
pub use crate::ffi::apple::IOSurfaceRef;
#[cfg(all(target_os = "macos", not(miri)))]
pub use apple::{MachPort, SurfaceShape};
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) use linux::{huge, numa};
pub use pages::{HugePages, Pages};
pub use progress::Progress;
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) use share::check_read;
#[cfg(all(target_os = "linux", not(miri)))]
pub use share::{ReadOnlyBlock, Share};

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

use bytemuck::Pod;

use crate::error::MemError;
use crate::page::{page_size, round_to_pages};

/// Whether a Block must be locked in RAM.
///
/// Pinned pages are never swapped out or migrated, so a device can read them by physical
/// address and a latency-critical loop never waits on a page fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pin {
    /// Lock the pages or fail with [`MemError::LockRefused`]. The default.
    #[default]
    Required,
    /// Try to lock; if the OS refuses, populate the pages anyway and report
    /// [`is_pinned()`](Extent::is_pinned) `== false`.
    BestEffort,
}

/// What a process may do with a Block's bytes: read and write them, or only read them.
///
/// The owner of a Block always has [`ReadWrite`](Access::ReadWrite). On Linux a Block is
/// shared with another process with one of the two ([`Extent::share`]), and
/// [`Extent::access`] tells how this process mapped it: a Block imported read-only is mapped
/// `PROT_READ` and must be registered with devices as read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read and write: the owner's access, and a read-write import's.
    ReadWrite,
    /// Read only: the mapping is `PROT_READ`, and the memfd is sealed so that no process can
    /// map it writable again (`F_SEAL_FUTURE_WRITE`).
    ReadOnly,
}

/// Options for opening a [`Block`]: pin policy and debug name; at server scale, huge pages,
/// a NUMA node, the populating threads and a [`Progress`] (`specs/scale.md`).
///
/// ```
/// use unimem::{Block, Pin};
///
/// let block = Block::builder(1 << 20).pin(Pin::BestEffort).name("scratch").open()?;
/// assert_eq!(block.name(), "scratch");
/// assert_eq!(block.size(), 1 << 20);
/// # Ok::<(), unimem::MemError>(())
/// ```
///
/// A large Block for a server: huge pages where the system grants them, on the GPU's NUMA
/// node, with a progress bar fed from another thread:
///
/// ```no_run
/// use std::sync::Arc;
/// use unimem::{Block, HugePages, Progress};
///
/// let progress = Arc::new(Progress::new());
/// let watcher = {
///     let progress = Arc::clone(&progress);
///     std::thread::spawn(move || {
///         while progress.fraction() < 1.0 {
///             eprint!("\r{:3.0}%", 100.0 * progress.fraction());
///             std::thread::sleep(std::time::Duration::from_millis(200));
///         }
///     })
/// };
/// let cache = Block::builder(256 << 30)
///     .huge_pages(HugePages::Try)
///     .numa_node(0)
///     .progress(&progress)
///     .open()?;
/// watcher.join().unwrap();
/// println!("{} on {} pages of {} bytes", cache.size(), cache.pages(), cache.page_size());
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Builder does nothing until `open` is called"]
pub struct Builder {
    size: usize,
    pin: Pin,
    name: String,
    huge: HugePages,
    huge_size: usize,
    node: Option<u32>,
    threads: usize,
    progress: Option<Arc<Progress>>,
}

/// The longest debug name: the kernel's NAME_MAX (255) less the `memfd:` prefix.
const NAME_MAX: usize = 249;

impl Builder {
    /// Sets the pin policy (default [`Pin::Required`]).
    pub fn pin(mut self, pin: Pin) -> Builder {
        self.pin = pin;
        self
    }

    /// Sets the debug name (default `"unimem"`). On Linux it names the memfd, so it shows in
    /// `/proc/PID/maps` as `/memfd:NAME`. At most 249 bytes, without NUL.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = name.into();
        self
    }

    /// Sets whether the Block is made of huge pages (default [`HugePages::Never`]).
    /// [`Extent::pages`] and [`Extent::page_size`] say what it got; its size is rounded up
    /// to that page size, never more.
    pub fn huge_pages(mut self, policy: HugePages) -> Builder {
        self.huge = policy;
        self
    }

    /// Sets the huge page size, in bytes (default 0: the system's default hugetlb size, or
    /// a transparent huge page). 1 GiB asks for hugetlb pages of 1 GiB, which only a
    /// reserved pool has; 2 MiB for hugetlb or transparent huge pages of 2 MiB. A size the
    /// system does not offer gives base pages under [`HugePages::Try`] and
    /// [`MemError::HugePagesUnavailable`] under [`HugePages::Required`].
    pub fn huge_page_size(mut self, bytes: usize) -> Builder {
        self.huge_size = bytes;
        self
    }

    /// Places the Block on NUMA node `node`: every page is allocated there (`MPOL_BIND`),
    /// and the populating threads run on the node's CPUs. A node that does not exist (or
    /// has no memory) is [`MemError::BadNumaNode`]. Linux only.
    pub fn numa_node(mut self, node: u32) -> Builder {
        self.node = Some(node);
        self
    }

    /// Sets how many threads populate the Block (default 0: automatic, see
    /// `specs/scale.md`). One thread is never given less than 32 MiB.
    pub fn threads(mut self, threads: usize) -> Builder {
        self.threads = threads;
        self
    }

    /// Follows the population with `progress`: its `to_populate` grows by the Block's size
    /// when population starts, and `populated` as pages are made (in steps of 64 MiB or
    /// more), so another thread can poll it.
    pub fn progress(mut self, progress: &Arc<Progress>) -> Builder {
        self.progress = Some(Arc::clone(progress));
        self
    }

    /// Opens the Block: a zero-filled buffer of at least `size` bytes, rounded up to the
    /// page size in use, populated and (per the pin policy) locked in RAM.
    ///
    /// # Errors
    ///
    /// [`ZeroSize`](MemError::ZeroSize), [`SizeOverflow`](MemError::SizeOverflow),
    /// [`BadName`](MemError::BadName), [`OutOfMemory`](MemError::OutOfMemory) (checked
    /// before any memory is touched), [`LockRefused`](MemError::LockRefused) under
    /// [`Pin::Required`], [`PinUnsupported`](MemError::PinUnsupported) where the backend
    /// cannot pin, [`HugePagesUnavailable`](MemError::HugePagesUnavailable) under
    /// [`HugePages::Required`], [`BadNumaNode`](MemError::BadNumaNode), and
    /// [`Os`](MemError::Os) for any other refusal. Nothing is leaked on any error path.
    pub fn open(self) -> Result<Block, MemError> {
        if self.size == 0 {
            return Err(MemError::ZeroSize);
        }
        let len = round_to_pages(self.size).ok_or(MemError::SizeOverflow {
            requested: self.size,
            granule: page_size(),
        })?;
        if self.name.len() > NAME_MAX {
            return Err(MemError::BadName {
                len: self.name.len(),
                reason: "longer than 249 bytes",
            });
        }
        if self.name.contains('\0') {
            return Err(MemError::BadName {
                len: self.name.len(),
                reason: "contains a NUL byte",
            });
        }
        let map = os::Mapping::open(len, &self)?;
        Ok(Block {
            extent: Extent::new(map, self.name.into_boxed_str()),
        })
    }
}

/// Blocks until every Block dropped so far has been released: unmapped and closed by this
/// process, its memory back with the system unless another process or a device holds it.
///
/// Dropping a Block of 256 MiB or more on Linux returns at once and leaves the release to
/// a background thread (`specs/scale.md`, "Release"); meanwhile the memory still counts as
/// in use ([`Limits::releasing`](crate::Limits::releasing)). `Block::open` waits by itself
/// when a new Block would not fit otherwise; call this where the memory must be back now
/// (before measuring, before handing it to another program). Elsewhere it returns at once.
///
/// ```
/// use unimem::{Block, Pin};
///
/// drop(Block::builder(1 << 20).pin(Pin::BestEffort).open()?);
/// unimem::wait_for_releases();
/// assert_eq!(unimem::Limits::read().releasing, 0);
/// # Ok::<(), unimem::MemError>(())
/// ```
pub fn wait_for_releases() {
    os::wait_for_releases();
}

/// Bytes of dropped Blocks not yet released (`Limits::releasing`).
pub(crate) fn releasing() -> u64 {
    os::releasing()
}

/// A Block's identity and addresses, without access to its bytes.
///
/// Every [`Block`] dereferences to its `Extent`, and an owner that hands out parts of a
/// Block (an allocator) lends out `&Extent` where lending `&Block` would let safe code read
/// bytes that were handed out as `&mut`. The `Extent` owns the operating-system resources:
/// dropping it releases them.
///
/// `Extent` is `Send` and `Sync`: the memory is process-wide and nothing in it is tied to a
/// thread.
pub struct Extent {
    map: os::Mapping,
    name: Box<str>,
    /// A CUDA registration kept for the Extent's whole life (`CudaBlock::keep`), dropped
    /// (unregistered) first in `Drop`, before the mapping is released.
    #[cfg(feature = "cuda")]
    pub(crate) cuda: std::sync::OnceLock<crate::cuda::Registration>,
}

impl Extent {
    /// The Extent of a fresh mapping: every backend's Blocks, and imports, are made here.
    fn new(map: os::Mapping, name: Box<str>) -> Extent {
        Extent {
            map,
            name,
            #[cfg(feature = "cuda")]
            cuda: std::sync::OnceLock::new(),
        }
    }
}

/// The release order (specs/README.md, principle 1): first what devices hold, a kept CUDA
/// registration (synchronize, unregister, release the primary context), then the mapping
/// itself, which the backend's `Mapping` releases in its own order (on Linux `munmap`, then
/// `close`, on the release thread for large Blocks).
impl Drop for Extent {
    fn drop(&mut self) {
        #[cfg(feature = "cuda")]
        drop(self.cuda.take());
        // `map` drops after this body: the pages are released only once no device has them
        // registered.
    }
}

// SAFETY: `Mapping` holds a pointer to process-wide memory it owns exclusively and an fd
// (Linux) or one IOSurface reference (Apple, a CoreFoundation object, whose retain and
// release are thread-safe); none is tied to the creating thread, and `&Extent` exposes no
// access to the bytes.
unsafe impl Send for Extent {}
// SAFETY: as above; every `&self` method only reads immutable fields, except the Apple
// `mach_port`, which asks IOSurface for a new send right (an IPC call on the surface,
// made by any thread of the task), and `CudaBlock::keep`, which sets the kept CUDA
// registration through a `OnceLock` (thread-safe; the registration is `Send + Sync`).
unsafe impl Sync for Extent {}

impl Extent {
    /// The first byte: page aligned, stable for the Block's whole life.
    pub fn address(&self) -> *mut u8 {
        self.map.base().as_ptr()
    }

    /// Size in bytes: the requested size rounded up to whole pages of
    /// [`page_size`](Extent::page_size) (on Apple, the IOSurface's allocation size, which
    /// may be larger still; always whole pages).
    pub fn size(&self) -> usize {
        self.map.len()
    }

    /// The size of the pages behind the Block: [`page_size()`](crate::page_size) for base
    /// pages, the huge page size otherwise. The Block's address and size are multiples of
    /// it.
    ///
    /// ```
    /// use unimem::{Block, Pages, Pin};
    ///
    /// let block = Block::builder(10_000).pin(Pin::BestEffort).open()?;
    /// assert_eq!((block.pages(), block.page_size()), (Pages::Base, unimem::page_size()));
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn page_size(&self) -> usize {
        self.map.page_size()
    }

    /// Which pages back the Block: base pages, transparent huge pages or hugetlb pages
    /// ([`Builder::huge_pages`]). An import of a hugetlb memfd says `HugeTlb`; an import of
    /// a shmem memfd says `Base`, whatever the owner's pages (the file does not tell).
    pub fn pages(&self) -> Pages {
        self.map.pages()
    }

    /// The NUMA node the Block was placed on with [`Builder::numa_node`], if any.
    pub fn numa_node(&self) -> Option<u32> {
        self.map.numa_node()
    }

    /// A nonzero id, unique among the live Blocks of this process (on Apple, the
    /// `IOSurfaceID`, the same in every process that holds the surface).
    pub fn id(&self) -> u32 {
        self.map.id()
    }

    /// Whether the pages are locked in RAM.
    pub fn is_pinned(&self) -> bool {
        self.map.is_pinned()
    }

    /// How this process mapped the bytes: [`Access::ReadWrite`] for a Block it opened or
    /// imported read-write, [`Access::ReadOnly`] for a read-only import (mapped `PROT_READ`).
    ///
    /// ```
    /// use unimem::{Access, Block, Pin};
    ///
    /// let block = Block::builder(4096).pin(Pin::BestEffort).open()?;
    /// assert_eq!(block.access(), Access::ReadWrite);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn access(&self) -> Access {
        self.map.access()
    }

    /// The debug name given to [`Builder::name`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend behind the Block: `"linux memfd"`, `"apple iosurface"` or
    /// `"portable heap"`.
    pub fn backend(&self) -> &'static str {
        os::Mapping::BACKEND
    }

    /// Whether `ptr` points into this Block.
    pub fn contains(&self, ptr: *const u8) -> bool {
        (ptr as usize).wrapping_sub(self.address() as usize) < self.size()
    }

    /// The base pointer, with the provenance of the whole mapping.
    pub(crate) fn base(&self) -> NonNull<u8> {
        self.map.base()
    }
}

/// The memfd behind the Block, sealed against shrinking and growing, as a raw descriptor.
///
/// Deliberately `AsRawFd`, not `AsFd`: a `BorrowedFd` would let safe code `write()` into
/// bytes this process may be viewing as `&[u8]`. Everything done with a raw descriptor is
/// `unsafe`, and that is where the promise not to change viewed bytes belongs. unimem's
/// own sharing and CUDA registration use the descriptor internally.
///
/// This closes the API's route, not procfs: reopening `/proc/self/fd/N`, or writing
/// `/proc/self/mem`, reaches any memory of the process, which std's `std::os::unix::io`
/// documentation places outside what Rust's safety guarantees cover (`specs/share.md`,
/// "Soundness across processes"). A frozen Block refuses even those writes.
#[cfg(all(target_os = "linux", not(miri)))]
impl std::os::fd::AsRawFd for Extent {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.map.fd().as_raw_fd()
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
impl Extent {
    /// The memfd, for unimem's own use (sharing, registration).
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.map.fd()
    }

    /// Bytes of the Block on each NUMA node, `(node, bytes)` by node, from
    /// `/proc/self/numa_maps`: where its pages landed. Linux only.
    ///
    /// ```
    /// use unimem::{Block, Pin};
    ///
    /// let block = Block::builder(1 << 20).pin(Pin::BestEffort).open()?;
    /// if let Ok(nodes) = block.numa_bytes() {
    ///     assert_eq!(nodes.iter().map(|&(_, b)| b).sum::<u64>(), 1 << 20);
    /// }
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Os`](MemError::Os) `{ call: "read /proc/self/numa_maps", .. }` where the kernel has
    /// no NUMA (`ENOENT`) or the file has no line for the Block (`ESRCH`).
    pub fn numa_bytes(&self) -> Result<Vec<(u32, u64)>, MemError> {
        self.map.numa_bytes()
    }
}

impl fmt::Debug for Extent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extent")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("address", &self.address())
            .field("size", &self.size())
            .field("pages", &self.pages())
            .field("page_size", &self.page_size())
            .field("pinned", &self.is_pinned())
            .field("access", &self.access())
            .field("backend", &self.backend())
            .finish()
    }
}

/// A zero-filled, page-aligned buffer, locked in RAM, that this process owns.
///
/// On Linux a Block is a sealed memfd mapped shared and locked with `mlock`: other processes
/// and CUDA devices can later be given the very same pages. Views of its bytes follow the
/// borrow rules: [`as_bytes`](Block::as_bytes) takes `&self`,
/// [`as_bytes_mut`](Block::as_bytes_mut) takes `&mut self`.
///
/// A Block dereferences to its [`Extent`] for `address()`, `size()`, `id()`,
/// `is_pinned()` and the file descriptor.
///
/// `Block` is `Send` and `Sync`. Dropping it releases everything in order: unlock, unmap,
/// close.
///
/// # Examples
///
/// ```
/// use unimem::Block;
///
/// let mut block = Block::open(10_000)?;
/// assert_eq!(block.size() % unimem::page_size(), 0);
/// assert!(block.as_bytes().iter().all(|&b| b == 0));
///
/// block.as_slice_mut::<u32>()[0] = 0xdead_beef;
/// assert_eq!(block.as_slice::<u32>()[0], 0xdead_beef);
/// # Ok::<(), unimem::MemError>(())
/// ```
#[repr(transparent)]
pub struct Block {
    extent: Extent,
}

impl Block {
    /// Opens a zero-filled, pinned Block of at least `size` bytes (rounded up to the page
    /// size). Same as `Block::builder(size).open()`.
    ///
    /// # Errors
    ///
    /// See [`Builder::open`].
    pub fn open(size: usize) -> Result<Block, MemError> {
        Block::builder(size).open()
    }

    /// A [`Builder`] for a Block of at least `size` bytes.
    pub fn builder(size: usize) -> Builder {
        Builder {
            size,
            pin: Pin::Required,
            name: String::from("unimem"),
            huge: HugePages::Never,
            huge_size: 0,
            node: None,
            threads: 0,
            progress: None,
        }
    }

    /// All the bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.as_slice()
    }

    /// All the bytes, mutably.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.as_slice_mut()
    }

    /// The bytes as a slice of `T`, as many whole `T`s as fit.
    ///
    /// Any bit pattern is a valid `T` (`Pod`), so the view is safe whatever was written.
    /// Zero-sized types and alignments above 4 KiB (the smallest page) are rejected at
    /// compile time.
    pub fn as_slice<T: Pod>(&self) -> &[T] {
        let len = view_len::<T>(self.size());
        // SAFETY:
        // - base..base+size is mapped readable and initialised (zero-filled at open) for as
        //   long as `self` lives, and `len * size_of::<T>() <= size`;
        // - base is page aligned, so aligned for T (`view_len` checks align <= 4 KiB);
        // - every bit pattern is a valid `T: Pod`;
        // - no `&mut` to these bytes exists: mutable views need `&mut Block`, and owners
        //   that hand out parts of the Block (Tape) own it and lend only the `Extent`.
        unsafe { std::slice::from_raw_parts(self.base().as_ptr().cast::<T>(), len) }
    }

    /// The bytes as a mutable slice of `T`, as many whole `T`s as fit.
    pub fn as_slice_mut<T: Pod>(&mut self) -> &mut [T] {
        let len = view_len::<T>(self.size());
        // SAFETY: as in `as_slice`, and `&mut self` proves no other view of the bytes is
        // alive.
        unsafe { std::slice::from_raw_parts_mut(self.base().as_ptr().cast::<T>(), len) }
    }

    /// The bytes as `f32`s (compatibility view for `acpu`).
    pub fn as_f32(&self) -> &[f32] {
        self.as_slice()
    }

    /// The bytes as mutable `f32`s.
    pub fn as_f32_mut(&mut self) -> &mut [f32] {
        self.as_slice_mut()
    }

    /// The bytes as `u16`s, e.g. fp16 bit patterns (compatibility view for `rane`).
    pub fn as_u16(&self) -> &[u16] {
        self.as_slice()
    }

    /// The bytes as mutable `u16`s.
    pub fn as_u16_mut(&mut self) -> &mut [u16] {
        self.as_slice_mut()
    }

    /// Gives up the views, keeping the memory: for owners (Tape) that hand out parts of it.
    pub(crate) fn into_extent(self) -> Extent {
        self.extent
    }
}

/// How many whole `T`s fit in `size` bytes, with `T`'s shape checked at compile time.
const fn view_len<T>(size: usize) -> usize {
    const {
        assert!(
            size_of::<T>() != 0,
            "typed views of zero-sized types are meaningless"
        );
        assert!(
            align_of::<T>() <= 4096,
            "a Block is only guaranteed to be aligned to 4 KiB"
        );
    }
    size / size_of::<T>()
}

impl Deref for Block {
    type Target = Extent;

    fn deref(&self) -> &Extent {
        &self.extent
    }
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Block").field(&self.extent).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut block = Block::builder(3 * page_size() / 2)
            .pin(Pin::BestEffort)
            .open()
            .unwrap();
        // Exactly two pages on Linux and the heap (tests/block.rs checks that); on Apple the
        // IOSurface's allocation size, which may be larger, always whole pages.
        assert!(block.size() >= 2 * page_size());
        assert_eq!(block.size() % page_size(), 0);
        assert!(block.as_bytes().iter().all(|&b| b == 0));
        for (i, x) in block.as_slice_mut::<u32>().iter_mut().enumerate() {
            *x = i as u32;
        }
        assert!(
            block
                .as_slice::<u32>()
                .iter()
                .enumerate()
                .all(|(i, &x)| x == i as u32)
        );
        assert_eq!(block.as_f32().len(), block.size() / 4);
        assert_eq!(block.as_u16_mut().len(), block.size() / 2);
        assert_eq!(block.address() as usize % page_size(), 0);
        assert!(block.contains(block.address()));
        assert!(!block.contains(block.address().wrapping_add(block.size())));
    }

    #[test]
    fn odd_sized_views_floor() {
        let block = Block::builder(1).pin(Pin::BestEffort).open().unwrap();
        assert_eq!(block.as_slice::<[u8; 3]>().len(), block.size() / 3);
    }

    #[test]
    fn bad_sizes_and_names() {
        assert_eq!(Block::open(0).unwrap_err(), MemError::ZeroSize);
        assert!(matches!(
            Block::open(usize::MAX),
            Err(MemError::SizeOverflow { .. })
        ));
        let long = "x".repeat(NAME_MAX + 1);
        assert!(matches!(
            Block::builder(1).name(long).open(),
            Err(MemError::BadName { len: 250, .. })
        ));
        assert!(matches!(
            Block::builder(1).name("a\0b").open(),
            Err(MemError::BadName { .. })
        ));
    }

    #[test]
    fn block_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Block>();
        check::<Extent>();
    }
}

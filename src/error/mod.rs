//! [`MemError`]: every way unimem can fail, with the numbers that explain it, and
//! [`ErrorKind`], the few classes a caller branches on.
//!
//! | file | concept |
//! |---|---|
//! | `mod.rs` | `MemError`, one variant per failure, carrying its numbers |
//! | `kind.rs` | `ErrorKind` and `MemError::kind`; the conversion into `std::io::Error` |
//! | `message.rs` | the `Display` text of every variant: what happened and what to do |

use std::fmt;

use crate::Access;

mod kind;
mod message;

pub use kind::ErrorKind;

/// Everything that can go wrong in unimem.
///
/// Every variant carries the numbers a user needs to understand the failure, and its
/// `Display` text says what to do about it. unimem never panics on bad input: sizes,
/// alignments, names and OS refusals all come back as a `MemError`.
///
/// The enum is `#[non_exhaustive]`: later versions add variants as new capabilities land.
///
/// ```
/// use unimem::{Block, MemError};
///
/// assert_eq!(Block::open(0).unwrap_err(), MemError::ZeroSize);
/// let err = Block::open(usize::MAX).unwrap_err();
/// assert!(matches!(err, MemError::SizeOverflow { requested: usize::MAX, .. }));
/// assert!(err.to_string().contains("overflows"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemError {
    /// A size of zero bytes was asked for.
    ZeroSize,
    /// The size overflows when rounded up to a multiple of `granule`, or exceeds
    /// `isize::MAX`, the most any slice can span.
    SizeOverflow {
        /// The size asked for, in bytes.
        requested: usize,
        /// The granule it is rounded to (the page size).
        granule: usize,
    },
    /// The machine (or this process's cgroup) cannot hold the Block: populating it would
    /// summon the OOM killer, so it is refused before any memory is touched.
    OutOfMemory {
        /// Bytes asked for, after rounding.
        requested: usize,
        /// Bytes the tighter of the limits below still allows.
        available: u64,
        /// Which limit refused.
        limit: MemoryLimit,
    },
    /// The OS refused to lock (pin) the pages in RAM.
    LockRefused {
        /// Bytes asked for, after rounding.
        requested: usize,
        /// The `errno` of `mlock` (`ENOMEM` over the limit, `EPERM` with a limit of 0).
        errno: i32,
        /// The soft `RLIMIT_MEMLOCK` in bytes at the time, or `None` when unlimited.
        limit: Option<u64>,
        /// Bytes this process already had locked (`VmLck`).
        locked: u64,
    },
    /// Pinning was required but this platform's backend cannot pin memory.
    PinUnsupported {
        /// The backend that cannot pin.
        backend: &'static str,
    },
    /// A debug name the OS cannot take.
    BadName {
        /// Length of the name in bytes.
        len: usize,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The heap allocator refused an allocation (portable backend only).
    AllocFailed {
        /// Bytes asked for.
        requested: usize,
    },
    /// An alignment that is not a power of two.
    BadAlignment {
        /// The alignment asked for, in bytes.
        align: usize,
    },
    /// A take too large for any memory: its size overflows `usize`, or rounded up to its
    /// alignment exceeds `isize::MAX`, the most an allocation can span.
    TakeOverflow {
        /// Values asked for: 1 for a raw take, the length for a slice.
        count: usize,
        /// Bytes in each value.
        size: usize,
        /// The alignment asked for.
        align: usize,
    },
    /// The Tape has too few free bytes for the take.
    TapeFull {
        /// Bytes asked for.
        requested: usize,
        /// Their alignment: up to `align - 1` bytes of padding come on top.
        align: usize,
        /// Bytes the Tape had free at the time.
        free: usize,
    },
    /// A Grid of no cells, or of cells of no bytes.
    EmptyGrid {
        /// The cell size asked for, in bytes.
        cell_size: usize,
        /// The number of cells asked for.
        cells: usize,
    },
    /// A Grid too large for any memory: its cell size rounded up to the alignment, or that
    /// times the cells, overflows or exceeds `isize::MAX` bytes.
    GridOverflow {
        /// The cell size asked for, in bytes.
        cell_size: usize,
        /// The number of cells asked for.
        cells: usize,
        /// The cell alignment (at least 64).
        align: usize,
    },
    /// More cells than a Grid can index (`u32` indices).
    TooManyCells {
        /// The number of cells asked for.
        cells: usize,
        /// The most a Grid can have.
        max: usize,
    },
    /// Every cell of the Grid is in use (or cached in GridLanes).
    GridFull {
        /// The Grid's number of cells.
        cells: usize,
    },
    /// A `CellId` whose use of the cell has ended: released, claimed, or the Grid cleared
    /// since it was made.
    StaleCell {
        /// The cell's index.
        index: u32,
        /// The id's generation.
        generation: u64,
        /// The cell's generation now.
        current: u64,
    },
    /// A Cell or `CellId` given to a Grid it does not belong to.
    ForeignCell {
        /// The identity of the Grid it was given to.
        grid: u64,
        /// The identity of the Grid it belongs to.
        owner: u64,
    },
    /// An operating-system call failed.
    Os {
        /// The call that failed, e.g. `"memfd_create"`.
        call: &'static str,
        /// Its `errno`.
        errno: i32,
    },
    /// Huge pages were required ([`HugePages::Required`](crate::HugePages::Required)) and
    /// this machine cannot give them now: no hugetlb pool of the size has enough free
    /// pages, and transparent huge pages for shmem are not allowed or not of that size.
    /// Nothing was made.
    HugePagesUnavailable {
        /// Bytes asked for, rounded up to the huge page size.
        requested: usize,
        /// The huge page size needed (0 where none was named, off Linux).
        page_size: usize,
        /// hugetlb pages of that size free and not promised to a mapping (on the node,
        /// when one was asked); 0 where the kernel has no pool of that size.
        free: u64,
        /// hugetlb pages the Block needs.
        needed: u64,
        /// The setting of THP for shmem (`shmem_enabled`: `"never"`, `"deny"`, `"advise"`,
        /// ...), `"not that size"` where transparent huge pages cannot have `page_size`,
        /// `"unsupported"` where the kernel has no THP, `"not linux"` off Linux.
        shmem_enabled: &'static str,
        /// The NUMA node asked for, if any.
        node: Option<u32>,
    },
    /// A NUMA node that this machine does not have, or that has no memory
    /// ([`Builder::numa_node`](crate::Builder::numa_node)). Nothing was made.
    BadNumaNode {
        /// The node asked for.
        node: u32,
        /// The online nodes, as the kernel lists them (`/sys/devices/system/node/online`,
        /// e.g. `"0-1"`); empty off Linux.
        online: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The CUDA driver library could not be loaded: no NVIDIA driver on this machine, or a
    /// platform where unimem does not load CUDA (feature `cuda`).
    CudaDriverMissing {
        /// The library asked for (`libcuda.so.1`).
        library: &'static str,
        /// Why: `dlerror()`'s text, or the platform that has no CUDA support.
        reason: String,
    },
    /// The CUDA driver library lacks a function unimem needs: the driver is too old.
    CudaSymbolMissing {
        /// The library that was loaded.
        library: &'static str,
        /// The missing function, e.g. `"cuMemHostRegister_v2"`.
        symbol: &'static str,
        /// `dlerror()`'s text.
        reason: String,
    },
    /// `cuInit` failed: the driver library is there but cannot drive a GPU here.
    CudaInitFailed {
        /// The `CUresult` code.
        code: i32,
        /// Its name from `cuGetErrorName`, e.g. `"CUDA_ERROR_NO_DEVICE"`.
        name: &'static str,
    },
    /// A CUDA device ordinal that does not exist on this machine.
    CudaBadDevice {
        /// The ordinal asked for.
        ordinal: u32,
        /// How many devices the driver reports.
        count: u32,
    },
    /// A CUDA device lacks a capability that registering a Block needs.
    CudaUnsupported {
        /// The device ordinal.
        device: u32,
        /// The device attribute that refused, e.g. `"HOST_REGISTER_SUPPORTED"`.
        attribute: &'static str,
        /// Its value (0 where the capability is missing).
        value: i32,
    },
    /// Part of the range is already registered with CUDA in this process
    /// (`CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED`, 712).
    CudaAlreadyRegistered {
        /// The device whose context was asked to register.
        device: u32,
        /// The first byte of the range.
        address: usize,
        /// The size of the range in bytes.
        size: usize,
    },
    /// Any other CUDA driver call failed.
    Cuda {
        /// The call, e.g. `"cuMemAlloc_v2"`.
        call: &'static str,
        /// The `CUresult` code.
        code: i32,
        /// Its name from `cuGetErrorName` (`"unknown"` where the driver has none).
        name: &'static str,
        /// The device ordinal, where the call concerned one.
        device: Option<u32>,
        /// The number of bytes involved, where the call concerned a range.
        bytes: Option<usize>,
    },
    /// A registration in chunks got device addresses that are not contiguous: the device
    /// does not use unified addressing, so one device pointer cannot cover the Block. Every
    /// chunk was unregistered.
    CudaNotContiguous {
        /// The device ordinal.
        device: u32,
        /// The offset of the chunk in the Block, in bytes.
        offset: usize,
        /// The device address that chunk needed (the first chunk's plus `offset`).
        expected: u64,
        /// The device address it got.
        found: u64,
    },
    /// `Share::recv` reached the end of the stream: the peer closed
    /// its end of the socket (or died) before sending a share.
    ShareClosed,
    /// A message on the socket did not carry exactly one file descriptor. Every descriptor
    /// that did arrive has been closed.
    ShareFds {
        /// Descriptors that arrived (and were closed).
        received: usize,
        /// The kernel flagged the control data as truncated (`MSG_CTRUNC`): more
        /// descriptors were sent than the receiver makes room for, and it dropped the rest.
        truncated: bool,
    },
    /// The bytes that came with the descriptor are not a share header: wrong length, wrong
    /// magic, or a field out of range. The descriptor has been closed.
    ShareHeader {
        /// Bytes received.
        len: usize,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// The share header was written by a different version of the share format.
    ShareVersion {
        /// The version in the header.
        found: u16,
        /// The version this unimem reads.
        expected: u16,
    },
    /// The shared descriptor is not a memfd: not a regular file, or a file that does not
    /// support seals, so nothing stops its holders from truncating it under a mapping.
    ShareNotMemfd {
        /// Its `st_mode` (file type and permission bits).
        mode: u32,
    },
    /// The shared memfd lacks seals the import requires: SHRINK and GROW always, and a write
    /// seal (`F_SEAL_FUTURE_WRITE`) for a read-only share.
    ShareUnsealed {
        /// The seals it has (`F_GET_SEALS`).
        seals: u32,
        /// The seals it lacks.
        missing: u32,
    },
    /// The shared file's size differs from the size in the share header.
    ShareSize {
        /// Bytes the header claims.
        expected: usize,
        /// Bytes the file has (`fstat`).
        found: u64,
    },
    /// A read-only share was given to `Block::import`, whose
    /// `Block` would hand out mutable views.
    ShareReadOnly {
        /// The id of the Block in the process that shared it.
        source: u32,
        /// Its size in bytes.
        size: usize,
    },
    /// Write access was asked of memory that cannot be written by any process any more
    /// (`sealed`: `F_SEAL_FUTURE_WRITE` or `F_SEAL_WRITE` is set on its memfd), or that this
    /// process imported read-only.
    NotWritable {
        /// The Block's id (in the process that shared it, for a received share).
        id: u32,
        /// The memfd carries a write seal.
        sealed: bool,
    },
    /// An import of a file this process already maps (a live Block, Tape or import of the
    /// same memfd): a second mapping here would be a second view of the same bytes that the
    /// borrow checker cannot see, so a `&mut` from one would alias views from the other. A
    /// read-write import is refused next to any mapping of the file, a read-only one next to
    /// a writable mapping (read-only imports of a frozen or read-only Block are fine).
    AlreadyMapped {
        /// The id of a live Block of this process that maps the file.
        id: u32,
        /// That mapping is writable: a Block opened or imported read-write, not frozen.
        writable: bool,
        /// The access of the refused import.
        requested: Access,
    },
    /// A read of `len` elements of `elem` bytes at `offset` runs past the end of a Block of
    /// `size` bytes (or its byte count overflows).
    ReadOutOfBounds {
        /// Byte offset asked for.
        offset: usize,
        /// Number of elements asked for.
        len: usize,
        /// Size of one element in bytes.
        elem: usize,
        /// The Block's size in bytes.
        size: usize,
    },
    /// A typed read at `offset` is not aligned for its element type.
    ReadMisaligned {
        /// Byte offset asked for.
        offset: usize,
        /// Alignment the element type needs.
        align: usize,
    },
    /// `F_SEAL_WRITE` was refused (`EBUSY`): a process still maps the Block writable, or a
    /// device pins its pages. The Block is mapped read-only in this process and sealed
    /// against new writers (`F_SEAL_FUTURE_WRITE`), but not frozen.
    FreezeBusy {
        /// The Block's id in this process.
        id: u32,
        /// Its size in bytes.
        size: usize,
    },
    /// Freezing a Block that keeps a CUDA registration for its whole life
    /// (`CudaBlock::keep`): the registration pins the pages, which `F_SEAL_WRITE` refuses.
    /// Nothing was changed.
    FreezeRegistered {
        /// The Block's id in this process.
        id: u32,
        /// Its size in bytes.
        size: usize,
    },
    /// A take from a read-only Tape (frozen, or over a read-only import): it hands out
    /// nothing.
    TapeReadOnly {
        /// The id of the Tape's Block.
        id: u32,
        /// The Block is frozen (no process can change its bytes).
        frozen: bool,
    },
    /// A read by offset from a Tape that is not frozen: its bytes may still change.
    TapeNotFrozen {
        /// The id of the Tape's Block.
        id: u32,
        /// The Tape is read-only here (another process may still write the bytes);
        /// `false`: it is writable here, and a read would alias its own takes.
        read_only: bool,
    },
    /// macOS refused to wire (pin) an IOSurface's pages with `mlock` under
    /// [`Pin::Required`](crate::Pin::Required).
    WireRefused {
        /// Bytes asked to wire (the surface's allocation size).
        requested: usize,
        /// The `errno` of `mlock` (`EAGAIN` over a wired-memory limit, `ENOMEM` for a range
        /// that is not mapped, per mlock(2) on macOS).
        errno: i32,
        /// The soft `RLIMIT_MEMLOCK` in bytes at the time, or `None` when unlimited.
        limit: Option<u64>,
    },
    /// `IOSurfaceCreate` returned NULL: IOSurface refused the properties.
    SurfaceRefused {
        /// The allocation size asked for (`kIOSurfaceAllocSize`), in bytes.
        requested: usize,
        /// `kIOSurfaceWidth` asked for (bytes for a flat Block, elements for a 2-D one).
        width: usize,
        /// `kIOSurfaceHeight` asked for.
        height: usize,
        /// `kIOSurfaceBytesPerRow` asked for.
        bytes_per_row: usize,
        /// `IOSurfaceGetPropertyMaximum(kIOSurfaceWidth)`; 0 means no predefined limit.
        max_width: usize,
        /// `IOSurfaceGetPropertyMaximum(kIOSurfaceAllocSize)`; 0 means no predefined limit.
        max_alloc: usize,
    },
    /// The surface IOSurface made is smaller than the size asked for.
    SurfaceTooSmall {
        /// Bytes asked for (1 for a surface looked up from a mach port).
        requested: usize,
        /// `IOSurfaceGetAllocSize`.
        actual: usize,
    },
    /// The surface's allocation size is not a whole number of pages (or exceeds
    /// `isize::MAX`), so it cannot be handed out as one page-granular Block.
    SurfaceSizeUnaligned {
        /// `IOSurfaceGetAllocSize`, in bytes.
        size: usize,
        /// The run-time page size.
        page: usize,
    },
    /// The surface's base address is NULL or not aligned to the run-time page size.
    SurfaceAddress {
        /// `IOSurfaceGetBaseAddress`, as a number.
        address: usize,
        /// The run-time page size.
        page: usize,
    },
    /// A 2-D surface came back with rows shorter than asked or not aligned as asked.
    SurfaceRowPitch {
        /// `IOSurfaceGetBytesPerRow`.
        bytes_per_row: usize,
        /// The fewest bytes a row must hold.
        min: usize,
        /// The alignment every row must have (64 bytes for the Neural Engine).
        align: usize,
    },
    /// A 2-D surface shape that cannot be made.
    BadSurfaceShape {
        /// Elements per row asked for.
        width: usize,
        /// Rows asked for.
        height: usize,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A Mach or IOKit call failed with a `kern_return_t` / `IOReturn` code.
    Kern {
        /// The call that failed, e.g. `"IOSurfaceLock"`.
        call: &'static str,
        /// Its `kern_return_t` (e.g. `0xE00002CC`, `kIOReturnCannotLock`).
        code: i32,
    },
    /// `IOSurfaceLookupFromMachPort` found no surface behind the port.
    SurfaceLookupFailed {
        /// The port name given.
        port: u32,
    },
    /// A live Block of this process already holds this IOSurface: a second Block over it
    /// would alias its bytes.
    SurfaceInUse {
        /// The `IOSurfaceID`.
        id: u32,
    },
    /// `IOSurfaceCreateMachPort` returned no port.
    MachPortFailed {
        /// The `IOSurfaceID` of the surface.
        id: u32,
    },
    /// A model description given to size a [`Layout`](crate::Layout) has a zero where a
    /// count is needed.
    ModelZero {
        /// The [`ModelShape`](crate::ModelShape) field that is zero, e.g. `"layers"`.
        field: &'static str,
    },
    /// A model description whose tape sizes exceed `isize::MAX` bytes, the most any memory
    /// can hold.
    ModelOverflow {
        /// The size that overflows: `"weights"`, `"scratch"`, `"history"` or
        /// `"history cell"`.
        part: &'static str,
        /// The size needed, as a power of two: about `2^log2` bytes.
        log2: u32,
    },
}

/// The limit that refused an [`OutOfMemory`](MemError::OutOfMemory) request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryLimit {
    /// `MemAvailable` in `/proc/meminfo`: what the kernel can give without swapping.
    MemAvailable,
    /// The cgroup's `memory.max` (v2) or `memory.limit_in_bytes` (v1) less its current usage,
    /// the tightest over the process's cgroup and its ancestors.
    Cgroup,
}

impl fmt::Display for MemoryLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemoryLimit::MemAvailable => "MemAvailable (/proc/meminfo)",
            MemoryLimit::Cgroup => "the cgroup memory limit",
        })
    }
}

/// Length of a share header in bytes (`specs/share.md`).
pub(crate) const SHARE_HEADER_LEN: usize = 24;

impl std::error::Error for MemError {}

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
    /// A `CellId` whose cell is lent to a device copy in flight (a batched copy,
    /// `unimem::cuda`): its use resumes, with the same id, when the copy completes.
    CellInFlight {
        /// The identity of the Grid.
        grid: u64,
        /// The cell's index.
        index: u32,
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
    /// A batched copy of a Block that keeps no CUDA registration
    /// (`CudaBlock::keep`): the copy must know the registration outlives it.
    CudaNotRegistered {
        /// The Block's id in this process.
        id: u32,
        /// Its size in bytes.
        size: usize,
    },
    /// A batched copy on a stream of one device's context, for a Block registered in
    /// another device's context.
    CudaStreamContext {
        /// The device whose context the stream belongs to.
        stream_device: u32,
        /// The device whose context keeps the Block's registration.
        block_device: u32,
    },
    /// Entry `entry` of a copy list names a range that does not fit: `start + len` past
    /// `limit`, the end of the host Block, or past the 64-bit device address space.
    CopyOutOfRange {
        /// The entry's position in the list.
        entry: usize,
        /// The range's start: an offset in the Block, or a device address.
        start: u64,
        /// Its length in bytes.
        len: u64,
        /// The Block's size, or `u64::MAX` for a device range.
        limit: u64,
        /// The range is on the device side.
        device: bool,
    },
    /// Entries `first` and `second` of a copy list write overlapping bytes (the same cell
    /// twice, or overlapping ranges): the copies of a batch run in no particular order.
    CopyOverlap {
        /// The earlier entry.
        first: usize,
        /// The later entry.
        second: usize,
        /// The overlap is on the device side.
        device: bool,
    },
    /// A driver call of a batched copy failed after the first `copied` of `entries` list
    /// entries were queued. Those completed before this error returned (the streams were
    /// synchronized); the rest did not copy, or only in part.
    CudaCopyFailed {
        /// The call that failed, e.g. `"cuMemcpyBatchAsync_v2"`.
        call: &'static str,
        /// The `CUresult` code.
        code: i32,
        /// Its name from `cuGetErrorName`.
        name: &'static str,
        /// Entries, from the first, that were copied.
        copied: usize,
        /// Entries in the list.
        entries: usize,
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
    /// The shared file does not hold all its pages: it was never populated, or only in
    /// part, or pages were punched out of it. Mapping and populating it would make this
    /// process allocate what its owner did not (a sealed file of 1 TiB that holds nothing
    /// costs its sender nothing and the importer the machine). Nothing was mapped; the
    /// descriptor has been closed.
    ShareSparse {
        /// The file's size in bytes (the header's).
        size: usize,
        /// Bytes the file holds (`st_blocks * 512`), pages past its end included.
        allocated: u64,
        /// The first hole `lseek(SEEK_HOLE)` found below `size`, if it found one.
        hole: Option<u64>,
    },
    /// The shared descriptor was opened without the access the import needs: a read-write
    /// import needs `O_RDWR`, any import needs read access. The header promised more than
    /// the descriptor gives. The descriptor has been closed.
    ShareOpenMode {
        /// The descriptor allows reading.
        readable: bool,
        /// The descriptor allows writing.
        writable: bool,
        /// The access the import asked for.
        requested: Access,
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
    /// A shared view (`&[T]`, a DLPack tensor, a Python buffer) of a read-only Block that is
    /// not frozen: another process may still write its bytes, so the view could change
    /// while it lives, a data race by Rust's rules.
    NotFrozen {
        /// The Block's id in this process.
        id: u32,
        /// Its size in bytes.
        size: usize,
    },
    /// A read by offset from a Tape that is not frozen: its bytes may still change.
    TapeNotFrozen {
        /// The id of the Tape's Block.
        id: u32,
        /// The Tape is read-only here (another process may still write the bytes);
        /// `false`: it is writable here, and a read would alias its own takes.
        read_only: bool,
    },
    /// A DLPack tensor description (data type, shape) the exported bytes cannot hold.
    BadTensorView {
        /// What is wrong with it.
        reason: &'static str,
        /// Bytes the tensor covers.
        bytes: usize,
        /// Bytes the description needs, or `None` when not computable (an overflow, a bad
        /// data type).
        needed: Option<u64>,
    },
    /// macOS refused to wire (pin) an IOSurface's pages with `mlock` under
    /// [`Pin::Required`](crate::Pin::Required).
    WireRefused {
        /// Bytes asked to wire (the surface's allocation size).
        requested: usize,
        /// The `errno` of `mlock`: `EAGAIN` over a wired-memory limit
        /// (`KERN_RESOURCE_SHORTAGE`), `EACCES` for a protection failure
        /// (`KERN_PROTECTION_FAILURE`), `ENOMEM` otherwise, e.g. a range that is not mapped
        /// (XNU `bsd/kern/kern_mman.c`, `mlock`).
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
    /// The UCX library could not be loaded (feature `ucx`): not installed, or a platform
    /// where unimem does not load it.
    UcxMissing {
        /// The library asked for (`libucp.so.0`).
        library: &'static str,
        /// Why: `dlerror()`'s text.
        reason: String,
    },
    /// The UCX library lacks a function unimem needs.
    UcxSymbolMissing {
        /// The library that was loaded.
        library: &'static str,
        /// The missing function, e.g. `"ucp_put_nbx"`.
        symbol: &'static str,
        /// `dlerror()`'s text.
        reason: String,
    },
    /// The UCX library is older than unimem supports (`ucp_get_version`).
    UcxVersion {
        /// Its major version.
        major: u32,
        /// Its minor version.
        minor: u32,
        /// The oldest major version supported.
        min_major: u32,
        /// The oldest minor version supported (with `min_major`).
        min_minor: u32,
    },
    /// A UCX call failed.
    Ucx {
        /// The call, e.g. `"ucp_mem_map"`.
        call: &'static str,
        /// Its `ucs_status_t`.
        status: i32,
        /// Its name from `ucs_status_string`, e.g. `"No such device"`.
        name: &'static str,
    },
    /// A peer's exported description was refused: wrong authentication tag, bad framing or
    /// geometry, another UCX version, or a remote key this UCX would not pack for host
    /// memory. Nothing of it reached UCX, or nothing was kept.
    RemoteRefused {
        /// Bytes received.
        len: usize,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// A remote cell index at or past the number of cells the peer exported.
    RemoteCellOutOfRange {
        /// The index asked for.
        index: u32,
        /// The cells the peer exported.
        cells: usize,
    },
    /// A transfer between Grids whose cells differ in size.
    CellSizeMismatch {
        /// The local Grid's cell size.
        local: usize,
        /// The remote Grid's cell size.
        remote: usize,
    },
    /// A transfer given a different number of cells and remote indices.
    TransferMismatch {
        /// Local cells given.
        cells: usize,
        /// Remote indices given.
        indices: usize,
    },
    /// The peer of a transfer is gone: its process died, the connection was reset, UCX's
    /// keepalive timed out, or the endpoint was closed after an earlier failure.
    PeerLost {
        /// The `ucs_status_t` UCX reported.
        status: i32,
        /// Its name from `ucs_status_string`.
        name: &'static str,
    },
    /// A transfer did not complete in the time allowed; it was aborted (the endpoint
    /// force-closed).
    TransferTimedOut {
        /// Operations still in flight at the deadline.
        pending: usize,
        /// Cells in the batch.
        cells: usize,
        /// Milliseconds waited.
        waited_ms: u64,
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

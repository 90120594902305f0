//! [`MemError`]: every way unimem can fail, with the numbers that explain it.

use std::fmt;

use crate::Access;

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

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemError::ZeroSize => f.write_str("size is zero: ask for at least one byte"),
            MemError::SizeOverflow { requested, granule } => write!(
                f,
                "size {requested} overflows when rounded up to a multiple of {granule} bytes \
                 (or exceeds isize::MAX)"
            ),
            MemError::OutOfMemory {
                requested,
                available,
                limit,
            } => write!(
                f,
                "cannot hold {} ({requested} bytes): only {} is available under {limit}; \
                 refused before touching memory so the OOM killer is not summoned. \
                 Ask for less or free memory",
                Bytes(requested as u64),
                Bytes(available),
            ),
            MemError::LockRefused {
                requested,
                errno,
                limit,
                locked,
            } => {
                write!(
                    f,
                    "cannot pin {} ({requested} bytes): mlock refused with {}; RLIMIT_MEMLOCK is ",
                    Bytes(requested as u64),
                    Errno(errno),
                )?;
                match limit {
                    Some(limit) => write!(f, "{}", Bytes(limit))?,
                    None => f.write_str("unlimited")?,
                }
                write!(
                    f,
                    " with {} already locked. Raise the limit (`ulimit -l`, systemd \
                     `LimitMEMLOCK=`, /etc/security/limits.conf `memlock`), grant CAP_IPC_LOCK, \
                     or open with Pin::BestEffort to run unpinned",
                    Bytes(locked),
                )
            }
            MemError::PinUnsupported { backend } => write!(
                f,
                "the {backend} backend cannot pin memory; open with Pin::BestEffort to accept \
                 unpinned memory"
            ),
            MemError::BadName { len, reason } => {
                write!(f, "debug name of {len} bytes refused: {reason}")
            }
            MemError::AllocFailed { requested } => write!(
                f,
                "the heap allocator refused {} ({requested} bytes)",
                Bytes(requested as u64)
            ),
            MemError::BadAlignment { align } => write!(
                f,
                "alignment {align} is not a power of two: ask for 1, 2, 4, 8, ... \
                 (`align_of::<T>()` always is one)"
            ),
            MemError::TakeOverflow { count, size, align } => {
                f.write_str("a take of ")?;
                if count != 1 {
                    write!(f, "{count} values of ")?;
                }
                write!(
                    f,
                    "{size} bytes aligned to {align} overflows: it exceeds isize::MAX bytes, \
                     the most any allocation can span; ask for less"
                )
            }
            MemError::TapeFull {
                requested,
                align,
                free,
            } => write!(
                f,
                "the Tape has no room for {} ({requested} bytes) aligned to {align}: \
                 {} ({free} bytes) free, alignment padding included; clear the Tape, or \
                 start a larger one",
                Bytes(requested as u64),
                Bytes(free as u64),
            ),
            MemError::EmptyGrid { cell_size, cells } => write!(
                f,
                "a Grid of {cells} cells of {cell_size} bytes holds nothing: ask for a nonzero \
                 cell size and at least one cell"
            ),
            MemError::GridOverflow {
                cell_size,
                cells,
                align,
            } => write!(
                f,
                "a Grid of {cells} cells of {cell_size} bytes aligned to {align} overflows: \
                 the cell size rounded up to {align}, times the cells, exceeds isize::MAX \
                 bytes, the most any allocation can span; ask for fewer or smaller cells"
            ),
            MemError::TooManyCells { cells, max } => write!(
                f,
                "{cells} cells exceed the {max} a Grid can index (cell indices are u32): use \
                 larger cells, or several Grids"
            ),
            MemError::GridFull { cells } => write!(
                f,
                "all {cells} cells of the Grid are in use or cached in GridLanes: give or \
                 release cells, drop idle GridLanes (or use a smaller batch), or make a \
                 larger Grid"
            ),
            MemError::StaleCell {
                index,
                generation,
                current,
            } => write!(
                f,
                "CellId of cell {index} at generation {generation} is stale (the cell is at \
                 generation {current}): it was already released or claimed, or the Grid \
                 was cleared; an id is valid from into_id until its first release, so look \
                 for a double release or a use after release"
            ),
            MemError::ForeignCell { grid, owner } => write!(
                f,
                "the cell belongs to Grid #{owner}, not to Grid #{grid}: give or release it \
                 to the Grid it came from (a Grid that was dropped takes nothing back)"
            ),
            MemError::Os { call, errno } => write!(f, "{call} failed: {}", Errno(errno)),
            MemError::CudaDriverMissing {
                library,
                ref reason,
            } => write!(
                f,
                "cannot load the CUDA driver {library}: {reason}. Install the NVIDIA driver \
                 (`nvidia-smi` lists the GPUs when it works) or run where one is; unimem \
                 needs no CUDA toolkit"
            ),
            MemError::CudaSymbolMissing {
                library,
                symbol,
                ref reason,
            } => write!(
                f,
                "the CUDA driver {library} lacks {symbol} ({reason}): it is too old for \
                 unimem; install a newer NVIDIA driver"
            ),
            MemError::CudaInitFailed { code, name } => write!(
                f,
                "cuInit failed with {name} ({code}): the CUDA driver is installed but cannot \
                 drive a GPU here; {}",
                cuda_init_hint(code)
            ),
            MemError::CudaBadDevice { ordinal, count } => match count {
                0 => write!(
                    f,
                    "CUDA device {ordinal} does not exist: the driver sees no CUDA device \
                     (check `nvidia-smi` and CUDA_VISIBLE_DEVICES)"
                ),
                _ => write!(
                    f,
                    "CUDA device {ordinal} does not exist: the driver sees {count} device(s), \
                     ordinals 0 to {}; check CUDA_VISIBLE_DEVICES",
                    count - 1
                ),
            },
            MemError::CudaUnsupported {
                device,
                attribute,
                value,
            } => write!(
                f,
                "CUDA device {device} reports {attribute} = {value}: it cannot map registered \
                 host memory, so it cannot use a Block without a copy; use another device"
            ),
            MemError::CudaAlreadyRegistered {
                device,
                address,
                size,
            } => write!(
                f,
                "cannot register {} ({size} bytes) at {address:#x} with CUDA device {device}: \
                 part of the range is already registered in this process \
                 (CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, 712). A Block is registered once \
                 per process and the registration serves every device: keep using the live \
                 registration (a kept one's device pointer is `Extent::cuda_device_ptr`), \
                 or drop it before registering again",
                Bytes(size as u64)
            ),
            MemError::Cuda {
                call,
                code,
                name,
                device,
                bytes,
            } => {
                write!(f, "{call} failed with {name} ({code})")?;
                if let Some(device) = device {
                    write!(f, " on CUDA device {device}")?;
                }
                if let Some(bytes) = bytes {
                    write!(f, " for {} ({bytes} bytes)", Bytes(bytes as u64))?;
                }
                match cuda_hint(code) {
                    Some(hint) => write!(f, ": {hint}"),
                    None => write!(f, ": see the CUDA driver API reference for {name}"),
                }
            }
            MemError::ShareClosed => f.write_str(
                "the peer closed the socket before sending a share (it exited or died); \
                 check the peer process",
            ),
            MemError::ShareFds {
                received,
                truncated,
            } => {
                write!(
                    f,
                    "a share carries exactly one file descriptor, but the message carried \
                     {received}"
                )?;
                if truncated {
                    f.write_str(" and more that the kernel dropped (MSG_CTRUNC)")?;
                }
                f.write_str(
                    "; all were closed. The peer did not send a unimem Share: send it with \
                     Share::send, and close the socket after an error (its framing is lost)",
                )
            }
            MemError::ShareHeader { len, reason } => write!(
                f,
                "the {len} bytes sent with the file descriptor are not a unimem share header \
                 ({reason}; a header is {SHARE_HEADER_LEN} bytes); the descriptor was closed. \
                 Send shares with Share::send and close the socket after an error"
            ),
            MemError::ShareVersion { found, expected } => write!(
                f,
                "the share header is version {found}, this unimem reads version {expected}; \
                 the descriptor was closed. Use the same unimem version in both processes"
            ),
            MemError::ShareNotMemfd { mode } => write!(
                f,
                "the shared file descriptor is {} (st_mode {mode:#o}), not a sealed memfd: \
                 mapping it would let its other holders truncate it under this process; it \
                 was closed. Share Blocks with Extent::share",
                FileType(mode)
            ),
            MemError::ShareUnsealed { seals, missing } => write!(
                f,
                "the shared memfd lacks the seals {} (it has {}): without them another holder \
                 could resize it (SIGBUS here) or write to a read-only share; it was closed. \
                 Share Blocks with Extent::share, which seals them",
                Seals(missing),
                Seals(seals)
            ),
            MemError::ShareSize { expected, found } => write!(
                f,
                "the share header says {} ({expected} bytes) but the shared file holds \
                 {found} bytes; it was closed. The peer sent a descriptor that does not belong \
                 to its header",
                Bytes(expected as u64)
            ),
            MemError::ShareReadOnly { source, size } => write!(
                f,
                "the share of Block {source} ({}) is read-only, and Block::import hands out \
                 mutable views: import it with Block::import_read_only, or ask the owner for \
                 an Access::ReadWrite share",
                Bytes(size as u64)
            ),
            MemError::NotWritable { id, sealed: true } => write!(
                f,
                "Block {id} was shared read-only or frozen: a write seal (F_SEAL_FUTURE_WRITE, \
                 or F_SEAL_WRITE once frozen) is set on its memfd, for every process and for \
                 good (the seal belongs to the file), so no process can map it writable \
                 again. Share or import it with Access::ReadOnly \
                 (Block::import_read_only), or copy it into a new Block"
            ),
            MemError::NotWritable { id, sealed: false } => write!(
                f,
                "Block {id} was imported read-only by this process, so it cannot hand out \
                 write access: share it with Access::ReadOnly"
            ),
            MemError::AlreadyMapped {
                id,
                writable: true,
                requested: Access::ReadWrite,
            } => write!(
                f,
                "Block {id} of this process already maps this memfd writable: a read-write \
                 import here would be a second mutable view of the same bytes, which Rust \
                 forbids within one process. Use Block {id} (or its Tape or Extent) itself, \
                 drop it before importing (the Share keeps the memory alive), or import in \
                 another process"
            ),
            MemError::AlreadyMapped {
                id,
                writable: true,
                requested: Access::ReadOnly,
            } => write!(
                f,
                "Block {id} of this process maps this memfd writable: a read-only import here \
                 would alias bytes that Block (or its Tape) can hand out as &mut. Freeze it \
                 first (Block::freeze, Block::into_read_only, Tape::freeze: read-only imports \
                 next to a read-only Block are fine), use Block {id} itself, drop it before \
                 importing (the Share keeps the memory alive), or import in another process"
            ),
            MemError::AlreadyMapped {
                id,
                writable: false,
                requested: Access::ReadWrite,
            } => write!(
                f,
                "Block {id} of this process maps this memfd read-only: a read-write import \
                 here would hand out &mut to bytes it views as &[T]. Import read-only \
                 (Block::import_read_only), use Block {id} itself, drop it before importing \
                 (the Share keeps the memory alive), or import in another process"
            ),
            // Not refused by unimem (read-only mappings coexist); said plainly all the same.
            MemError::AlreadyMapped {
                id,
                writable: false,
                requested: Access::ReadOnly,
            } => write!(
                f,
                "Block {id} of this process already maps this memfd read-only: use Block \
                 {id} itself, or import in another process"
            ),
            MemError::ReadOutOfBounds {
                offset,
                len,
                elem,
                size,
            } => write!(
                f,
                "reading {len} elements of {elem} bytes at offset {offset} runs past the end \
                 of the {size}-byte Block: check the offset and length the peer sent"
            ),
            MemError::ReadMisaligned { offset, align } => write!(
                f,
                "offset {offset} is not a multiple of {align}, the alignment of the element \
                 type: read bytes there, or align the offset"
            ),
            MemError::FreezeBusy { id, size } => write!(
                f,
                "cannot freeze Block {id} ({}): the kernel refused F_SEAL_WRITE (EBUSY) \
                 because a process still maps it writable (a read-write import, or a \
                 read-only import of a read-write share made before it was first shared \
                 read-only; before Linux 6.7 any shared mapping) or a device still pins its \
                 pages (a CUDA registration: drop the CudaBlock, or the Block that keeps \
                 one). It is now mapped read-only here and sealed against new writers, but \
                 not frozen: have those processes drop their mappings (or unregister), then \
                 call freeze again",
                Bytes(size as u64)
            ),
            MemError::FreezeRegistered { id, size } => write!(
                f,
                "cannot freeze Block {id} ({}): it keeps a CUDA registration for its whole \
                 life (CudaBlock::keep), which pins its pages, and the kernel refuses \
                 F_SEAL_WRITE while pages are pinned. Nothing was changed. Freeze first, \
                 then register (read-only) and keep",
                Bytes(size as u64)
            ),
            MemError::TapeReadOnly { id, frozen } => write!(
                f,
                "the Tape over Block {id} is read-only ({}): it hands out nothing. Read its \
                 bytes by offset (Tape::read, once frozen), and take from a writable Tape",
                if frozen {
                    "frozen: no process can change its bytes"
                } else {
                    "over a read-only import, or its freeze did not finish"
                }
            ),
            MemError::TapeNotFrozen {
                id,
                read_only: false,
            } => write!(
                f,
                "the Tape over Block {id} is writable: a read by offset could alias bytes it \
                 handed out as &mut. Freeze it first (Tape::freeze), or read through its takes"
            ),
            MemError::TapeNotFrozen {
                id,
                read_only: true,
            } => write!(
                f,
                "the Tape over Block {id} is read-only but not frozen: another process may \
                 still write its bytes. Freeze it (Tape::freeze) once no process maps it \
                 writable, or read the ReadOnlyBlock before wrapping it, under the writer's \
                 protocol"
            ),
            MemError::WireRefused {
                requested,
                errno,
                limit,
            } => {
                write!(
                    f,
                    "cannot pin {} ({requested} bytes): mlock of the IOSurface's pages refused \
                     with {}; macOS caps wired memory per process (RLIMIT_MEMLOCK, now ",
                    Bytes(requested as u64),
                    Errno(errno),
                )?;
                match limit {
                    Some(limit) => write!(f, "{}", Bytes(limit))?,
                    None => f.write_str("unlimited")?,
                }
                f.write_str(
                    ") and system-wide (sysctl vm.user_wire_limit). Ask for less, raise \
                     `ulimit -l`, or open with Pin::BestEffort to run unpinned",
                )
            }
            MemError::SurfaceRefused {
                requested,
                width,
                height,
                bytes_per_row,
                max_width,
                max_alloc,
            } => write!(
                f,
                "IOSurfaceCreate refused a surface of {} ({requested} bytes; width {width}, \
                 height {height}, {bytes_per_row} bytes per row); IOSurface's limits here: \
                 width {}, alloc size {}. Ask for less, or split the buffer over several Blocks",
                Bytes(requested as u64),
                Limit(max_width),
                Limit(max_alloc),
            ),
            MemError::SurfaceTooSmall { requested, actual } => write!(
                f,
                "IOSurface allocated {actual} bytes where {requested} were asked: the surface \
                 is too small to be the Block; report this with the Mac model and macOS version"
            ),
            MemError::SurfaceSizeUnaligned { size, page } => write!(
                f,
                "IOSurface allocated {size} bytes, not a whole number of {page}-byte pages (or \
                 above isize::MAX): it cannot be a page-granular Block; report this with the \
                 Mac model and macOS version"
            ),
            MemError::SurfaceAddress { address, page } => write!(
                f,
                "IOSurface base address {address:#x} is null or not aligned to the {page}-byte \
                 page: it cannot be a Block (Metal needs page-aligned memory); report this with \
                 the Mac model and macOS version"
            ),
            MemError::SurfaceRowPitch {
                bytes_per_row,
                min,
                align,
            } => write!(
                f,
                "IOSurface made rows of {bytes_per_row} bytes where at least {min} bytes, a \
                 multiple of {align}, were asked (the Neural Engine needs {align}-byte rows); \
                 report this with the Mac model and macOS version"
            ),
            MemError::BadSurfaceShape {
                width,
                height,
                reason,
            } => write!(
                f,
                "cannot make a {width} x {height} fp16 surface: {reason}; give a nonzero width \
                 and height whose rows and total fit in isize::MAX bytes"
            ),
            MemError::Kern { call, code } => {
                write!(f, "{call} failed with {:#010x}", code as u32)?;
                match kern_name(code) {
                    Some(name) => write!(f, " ({name})"),
                    None => f.write_str(" (an unlisted kern_return_t / IOReturn)"),
                }
            }
            MemError::SurfaceLookupFailed { port } => write!(
                f,
                "mach port {port:#x} names no IOSurface: pass a send right made by \
                 Extent::mach_port (IOSurfaceCreateMachPort) and received intact; the surface \
                 lives as long as such a right does"
            ),
            MemError::SurfaceInUse { id } => write!(
                f,
                "IOSurface {id} is already held by a live Block of this process; a second Block \
                 over it would alias its bytes. Use the existing Block (or its Extent)"
            ),
            MemError::MachPortFailed { id } => write!(
                f,
                "IOSurfaceCreateMachPort returned no port for IOSurface {id}; this task may be \
                 out of port names: look for leaked MachPort values (each one is a send right)"
            ),
            MemError::ModelZero { field } => write!(
                f,
                "the model description has {field} = 0: every count must be at least 1 \
                 (a batch of 1, a context of 1 token, ...)"
            ),
            MemError::ModelOverflow { part, log2 } => write!(
                f,
                "the {part} of this model needs about 2^{log2} bytes, more than any memory can \
                 hold (isize::MAX, about 2^63): check the model description for a wrong unit \
                 or an extra factor"
            ),
        }
    }
}

/// Length of a share header in bytes (`specs/share.md`).
pub(crate) const SHARE_HEADER_LEN: usize = 24;

/// A set of memfd seals printed by name: `SHRINK|GROW`. Bit values are those of
/// `linux/fcntl.h`, spelled out so that messages print the same on every target.
struct Seals(u32);

impl fmt::Display for Seals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u32, &str); 6] = [
            (0x1, "SEAL"),
            (0x2, "SHRINK"),
            (0x4, "GROW"),
            (0x8, "WRITE"),
            (0x10, "FUTURE_WRITE"),
            (0x20, "EXEC"),
        ];
        if self.0 == 0 {
            return f.write_str("none");
        }
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let unknown = self.0 & !0x3f;
        if unknown != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{unknown:#x}")?;
        }
        Ok(())
    }
}

/// The file type in an `st_mode`, in words. The `S_IF*` values are the same on every Unix.
struct FileType(u32);

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 & 0o170_000 {
            0o100_000 => "a regular file that cannot be sealed",
            0o040_000 => "a directory",
            0o010_000 => "a pipe (FIFO)",
            0o140_000 => "a socket",
            0o020_000 => "a character device",
            0o060_000 => "a block device",
            0o120_000 => "a symbolic link",
            _ => "a file of unknown type",
        })
    }
}

impl std::error::Error for MemError {}

/// What to do when `cuInit` fails with `code`.
fn cuda_init_hint(code: i32) -> &'static str {
    match code {
        100 => "no CUDA-capable device is visible: check `nvidia-smi` and CUDA_VISIBLE_DEVICES",
        34 => {
            "the CUDA toolkit's stub library was loaded instead of the driver's: put the \
             NVIDIA driver's libcuda.so.1 first in the library search path"
        }
        35 => "the driver is older than the library expects: update the NVIDIA driver",
        999 | 304 => {
            "check that /dev/nvidia* exist and are accessible to this user, and that the \
             kernel module matches libcuda.so.1 (`nvidia-smi` says)"
        }
        _ => "check `nvidia-smi`, /dev/nvidia* permissions and CUDA_VISIBLE_DEVICES",
    }
}

/// What to do about a failed CUDA call, for the codes unimem's calls are known to return.
fn cuda_hint(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "the driver refused an argument: check the address, size and alignment",
        2 => "the device or the host is out of memory: free some or ask for less",
        201 => "no valid CUDA context: the primary context was reset or destroyed meanwhile",
        713 => "the range is not registered: it was unregistered already",
        800 => "the operation is not permitted here (container or driver policy)",
        801 => "the device or the driver does not support this operation",
        _ => return None,
    })
}

/// A byte count printed in binary units: `64.0 MiB`.
pub(crate) struct Bytes(pub(crate) u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}

/// A limit where 0 means "no predefined limit" (IOSurfaceGetPropertyMaximum).
struct Limit(usize);

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("none"),
            n => write!(f, "{n}"),
        }
    }
}

/// The name of a `kern_return_t` (mach/kern_return.h) or `IOReturn` (IOKit/IOReturn.h)
/// that unimem may report. Plain numbers, so the table is the same on every platform.
fn kern_name(code: i32) -> Option<&'static str> {
    Some(match code as u32 {
        1 => "KERN_INVALID_ADDRESS",
        2 => "KERN_PROTECTION_FAILURE",
        3 => "KERN_NO_SPACE",
        4 => "KERN_INVALID_ARGUMENT",
        5 => "KERN_FAILURE",
        6 => "KERN_RESOURCE_SHORTAGE",
        15 => "KERN_INVALID_NAME",
        17 => "KERN_INVALID_RIGHT",
        0xE000_02BC => "kIOReturnError",
        0xE000_02BD => "kIOReturnNoMemory",
        0xE000_02BE => "kIOReturnNoResources",
        0xE000_02C1 => "kIOReturnNotPrivileged",
        0xE000_02C2 => "kIOReturnBadArgument",
        0xE000_02C7 => "kIOReturnUnsupported",
        0xE000_02C8 => "kIOReturnVMError",
        0xE000_02CC => "kIOReturnCannotLock: another client holds the surface's lock",
        0xE000_02D5 => "kIOReturnBusy",
        0xE000_02E2 => "kIOReturnNotPermitted",
        _ => return None,
    })
}

/// An `errno` printed as its symbolic name and the OS's description:
/// `ENOMEM (Cannot allocate memory, os error 12)`.
pub(crate) struct Errno(pub(crate) i32);

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = std::io::Error::from_raw_os_error(self.0).to_string();
        match crate::ffi::errno_name(self.0) {
            Some(name) => write!(f, "{name} ({text})"),
            None => f.write_str(&text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_binary() {
        assert_eq!(Bytes(0).to_string(), "0 B");
        assert_eq!(Bytes(1023).to_string(), "1023 B");
        assert_eq!(Bytes(1024).to_string(), "1.0 KiB");
        assert_eq!(Bytes(64 << 20).to_string(), "64.0 MiB");
        assert_eq!(Bytes(3 << 29).to_string(), "1.5 GiB");
    }

    #[test]
    fn seals_and_file_types_by_name() {
        assert_eq!(Seals(0).to_string(), "none");
        assert_eq!(Seals(0x6).to_string(), "SHRINK|GROW");
        assert_eq!(Seals(0x17).to_string(), "SEAL|SHRINK|GROW|FUTURE_WRITE");
        assert_eq!(Seals(0x102).to_string(), "SHRINK|0x100");
        assert_eq!(
            FileType(0o100_644).to_string(),
            "a regular file that cannot be sealed"
        );
        assert_eq!(FileType(0o010_600).to_string(), "a pipe (FIFO)");
        assert_eq!(FileType(0o140_777).to_string(), "a socket");
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<E: std::error::Error + Send + Sync + 'static>() {}
        check::<MemError>();
    }
}

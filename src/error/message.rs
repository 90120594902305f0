//! What every [`MemError`] says: what happened, with its numbers, and what to do about it.

use std::fmt;

use super::{MemError, SHARE_HEADER_LEN};
use crate::Access;

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
            MemError::CellInFlight { grid, index } => write!(
                f,
                "cell {index} of Grid #{grid} is lent to a device copy in flight: wait for the \
                 copy (`InFlight::wait`, or `poll` until it says done); the same id works \
                 again once the copy completes"
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
            MemError::HugePagesUnavailable {
                requested,
                page_size,
                free,
                needed,
                shmem_enabled,
                node,
            } => huge_pages_unavailable(f, requested, page_size, free, needed, shmem_enabled, node),
            MemError::BadNumaNode {
                node,
                ref online,
                reason,
            } => {
                write!(f, "NUMA node {node} {reason}; ")?;
                if online.is_empty() {
                    f.write_str("this machine lists no NUMA nodes")?;
                } else {
                    write!(f, "the online nodes are {online}")?;
                }
                f.write_str(
                    " (/sys/devices/system/node/online, `numactl --hardware`). Place the Block \
                     on one of them, or leave `numa_node` unset",
                )
            }
            MemError::CudaNotContiguous {
                device,
                offset,
                expected,
                found,
            } => write!(
                f,
                "CUDA device {device} mapped the registration chunk at offset {offset} \
                 ({}) to device address {found:#x} instead of {expected:#x}: the chunks are \
                 not one contiguous device range, so one device pointer cannot cover the \
                 Block (the device lacks unified addressing). Every chunk was unregistered; \
                 register with one chunk as large as the Block (`RegisterOptions::chunk`), \
                 if the driver takes it, or register smaller Blocks",
                Bytes(offset as u64)
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
            MemError::CudaNotRegistered { id, size } => write!(
                f,
                "Block {id} ({}, {size} bytes) keeps no CUDA registration, so it cannot be \
                 copied to or from a device: register it and keep the registration \
                 (`block.register_cuda(&driver, device)?.keep()`, for a Grid \
                 `grid.tape().block()`)",
                Bytes(size as u64)
            ),
            MemError::CudaStreamContext {
                stream_device,
                block_device,
            } => write!(
                f,
                "the stream belongs to CUDA device {stream_device}'s context, but the Block is \
                 registered in device {block_device}'s: copy on a stream of the context that \
                 keeps the registration (`block.cuda_context()`), so that dropping the Block \
                 waits for the copy"
            ),
            MemError::CopyOutOfRange {
                entry,
                start,
                len,
                limit,
                device,
            } => {
                if device {
                    write!(
                        f,
                        "entry {entry} of the copy list names {len} bytes at device address \
                         {start:#x}, past the end of the 64-bit address space: check the \
                         device address"
                    )
                } else {
                    write!(
                        f,
                        "entry {entry} of the copy list names {len} bytes at offset {start}, \
                         past the end of the Block ({limit} bytes): check the offset and length"
                    )
                }
            }
            MemError::CopyOverlap {
                first,
                second,
                device,
            } => write!(
                f,
                "entries {first} and {second} of the copy list write overlapping {} bytes{}: \
                 the copies of a batch run in no particular order, so the result would be \
                 undefined; name each destination once",
                if device { "device" } else { "host" },
                if device {
                    ""
                } else {
                    " (the same cell twice, or overlapping ranges)"
                },
            ),
            MemError::CudaCopyFailed {
                call,
                code,
                name,
                copied,
                entries,
            } => {
                write!(
                    f,
                    "{call} failed with {name} ({code}) after the first {copied} of {entries} \
                     entries of a batched copy were queued: those completed and hold the \
                     copied bytes; the destinations of the other {} are undefined (the failed \
                     call may have moved part of them)",
                    entries.saturating_sub(copied)
                )?;
                match cuda_hint(code) {
                    Some(hint) => write!(f, ": {hint}"),
                    None => write!(f, ": see the CUDA driver API reference for {name}"),
                }
            }
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
            MemError::ShareSparse {
                size,
                allocated,
                hole,
            } => {
                write!(
                    f,
                    "the shared file of {} ({size} bytes) does not hold all its pages: it \
                     holds {} ({allocated} bytes, pages past its end included)",
                    Bytes(size as u64),
                    Bytes(allocated),
                )?;
                if let Some(hole) = hole {
                    write!(f, " and has a hole at offset {hole}")?;
                }
                f.write_str(
                    "; mapping it would make this process allocate what its owner did not \
                     (the OOM killer's business for a large file), so it was refused and \
                     closed. Share Blocks made by Block::open, which populates every page, \
                     and do not punch holes in a Block before sharing it",
                )
            }
            MemError::ShareOpenMode {
                readable,
                writable,
                requested,
            } => write!(
                f,
                "the shared descriptor was opened {} but the import maps it {}: the header \
                 promised access the descriptor does not give; it was closed. Send the \
                 descriptor Extent::share made (an O_RDWR duplicate of the memfd)",
                match (readable, writable) {
                    (true, true) => "read-write",
                    (true, false) => "read-only",
                    (false, true) => "write-only",
                    (false, false) => "without read or write access (O_PATH)",
                },
                match requested {
                    Access::ReadWrite => "read-write (Block::import)",
                    Access::ReadOnly => "read-only",
                },
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
            MemError::NotFrozen { id, size } => write!(
                f,
                "Block {id} ({}) is read-only here but not frozen: another process may still \
                 write its bytes, so a &[T] view of them (a DLPack tensor, a buffer) could change \
                 while it lives (a data race). Copy them out with ReadOnlyBlock::read_into (sound while others \
                 write), freeze the Block (Block::freeze by its owner, or \
                 ReadOnlyBlock::freeze once no process maps it writable), or use \
                 ReadOnlyBlock::read_unfrozen (unsafe) under the writer's protocol",
                Bytes(size as u64)
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
                 writable, or copy the bytes out of the ReadOnlyBlock (read_into) before \
                 wrapping it"
            ),
            MemError::BadTensorView {
                reason,
                bytes,
                needed,
            } => {
                write!(
                    f,
                    "a tensor view of {} cannot be made: {reason}",
                    Bytes(bytes as u64)
                )?;
                if let Some(needed) = needed {
                    write!(f, " (it needs {})", Bytes(needed))?;
                }
                f.write_str(
                    ". Give a data type of whole bytes and a shape whose elements fit the \
                     exported bytes, at an offset aligned to the element size",
                )
            }
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
            MemError::UcxMissing {
                library,
                ref reason,
            } => write!(
                f,
                "UCX is not available: {library} could not be loaded ({reason}). Install UCX \
                 1.13 or later (Debian and Ubuntu: `apt-get install libucx0`), or point \
                 LD_LIBRARY_PATH at its libraries; no UCX is needed to build"
            ),
            MemError::UcxSymbolMissing {
                library,
                symbol,
                ref reason,
            } => write!(
                f,
                "{library} lacks {symbol} ({reason}): install UCX 1.13 or later"
            ),
            MemError::UcxVersion {
                major,
                minor,
                min_major,
                min_minor,
            } => write!(
                f,
                "UCX {major}.{minor} is installed; unimem needs UCX {min_major}.{min_minor} or \
                 a later {min_major}.x"
            ),
            MemError::Ucx { call, status, name } => write!(
                f,
                "{call} failed with UCX status {status} ({name}); UCX_LOG_LEVEL=info shows \
                 UCX's own reasons and the transports it chose, UCX_TLS chooses them"
            ),
            MemError::RemoteRefused { len, reason } => write!(
                f,
                "refused a peer's Grid description of {len} bytes: {reason}. Nothing of it \
                 was used; check that both sides use the same Secret, unimem and UCX"
            ),
            MemError::RemoteCellOutOfRange { index, cells } => write!(
                f,
                "remote cell {index} does not exist: the peer exported {cells} cells \
                 (0..{cells}); nothing was moved"
            ),
            MemError::CellSizeMismatch { local, remote } => write!(
                f,
                "cells of {local} bytes here and {remote} bytes at the peer: a transfer moves \
                 one cell into one cell of the same size; nothing was moved"
            ),
            MemError::TransferMismatch { cells, indices } => write!(
                f,
                "a transfer of {cells} local cells was given {indices} remote indices: give \
                 one index per cell; nothing was moved"
            ),
            MemError::PeerLost { status, name } => write!(
                f,
                "the peer is gone (UCX status {status}: {name}): its process ended, the \
                 connection was reset, or an earlier failure closed the endpoint. Import its \
                 description again once it is back"
            ),
            MemError::TransferTimedOut {
                pending,
                cells,
                waited_ms,
            } => write!(
                f,
                "a transfer of {cells} cells had {pending} operations still in flight after \
                 {waited_ms} ms: it was aborted and the endpoint closed. The peer may be slow, \
                 not serving (over TCP it must call Engine::progress), or gone; import again"
            ),
        }
    }
}

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
            0o100_000 => "a regular file that cannot be sealed (or an O_PATH descriptor)",
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
/// The message of `HugePagesUnavailable`: what was missing, which knob grants it, and what
/// it gained where it was measured (issue 12's probe on the 16-core H200 host, 16 GiB
/// populated by 16 threads).
fn huge_pages_unavailable(
    f: &mut fmt::Formatter<'_>,
    requested: usize,
    page_size: usize,
    free: u64,
    needed: u64,
    shmem_enabled: &str,
    node: Option<u32>,
) -> fmt::Result {
    write!(
        f,
        "cannot open {} ({requested} bytes) on huge pages",
        Bytes(requested as u64)
    )?;
    if page_size != 0 {
        write!(f, " of {}", Bytes(page_size as u64))?;
    }
    if let Some(node) = node {
        write!(f, " on NUMA node {node}")?;
    }
    if shmem_enabled == "not linux" {
        return f.write_str(
            ": huge pages are Linux only in this version; open with HugePages::Try to \
             accept base pages",
        );
    }
    let kib = page_size / 1024;
    let pool = match node {
        Some(node) => {
            format!("/sys/devices/system/node/node{node}/hugepages/hugepages-{kib}kB/nr_hugepages")
        }
        None => format!("/sys/kernel/mm/hugepages/hugepages-{kib}kB/nr_hugepages"),
    };
    write!(
        f,
        ": {free} hugetlb pages of that size are free where {needed} are needed (as root, \
         reserve them: `echo {needed} > {pool}`, or `sysctl vm.nr_hugepages={needed}` for \
         the default size; see HugePages_Free in /proc/meminfo)"
    )?;
    match shmem_enabled {
        "not that size" => f.write_str(
            ", and transparent huge pages do not come in that size (they are the PMD size, \
             2 MiB on x86-64)",
        )?,
        "unsupported" => f.write_str(", and this kernel has no transparent huge pages")?,
        setting => write!(
            f,
            ", and transparent huge pages for shmem are `{setting}` \
             (/sys/kernel/mm/transparent_hugepage/shmem_enabled; as root, \
             `echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled` lets unimem \
             use them for the Blocks that ask)"
        )?,
    }
    f.write_str(
        ". Measured on a 16-core H200 host, 16 GiB on 16 threads: 4 KiB pages populate at \
         4.8 GB/s and release in 1.8 s; transparent huge pages at 41.5 GB/s, released in \
         0.05 s; hugetlb 2 MiB pages at 8.1 GB/s, released in 0.01 s. Or open with \
         HugePages::Try to fall back to base pages",
    )
}

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
        0xE000_02CC => {
            "kIOReturnCannotLock: the lock was not taken; IOSurfaceTypes.h documents this \
             code only for kIOSurfaceLockAvoidSync (locking would need a readback, such as \
             from the GPU), which unimem never passes"
        }
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
            "a regular file that cannot be sealed (or an O_PATH descriptor)"
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

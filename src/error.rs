//! [`MemError`]: every way unimem can fail, with the numbers that explain it.

use std::fmt;

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
    /// An operating-system call failed.
    Os {
        /// The call that failed, e.g. `"memfd_create"`.
        call: &'static str,
        /// Its `errno`.
        errno: i32,
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
            MemError::Os { call, errno } => write!(f, "{call} failed: {}", Errno(errno)),
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
        }
    }
}

impl std::error::Error for MemError {}

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
    fn error_is_send_sync_static() {
        fn check<E: std::error::Error + Send + Sync + 'static>() {}
        check::<MemError>();
    }
}

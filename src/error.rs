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

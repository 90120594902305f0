//! [`ErrorKind`]: the few classes of [`MemError`] a caller branches on.
//!
//! `MemError` has one variant per failure, each carrying the numbers that explain it; that
//! is for people reading the message. Code reacts to classes: "pinning refused, retry
//! unpinned", "full, evict", "the peer sent garbage, drop the connection". `kind()` gives
//! the class, as `std::io::Error::kind` does for I/O errors, and `From<MemError> for
//! io::Error` lets `?` carry a `MemError` through I/O code with the matching
//! `io::ErrorKind` (the `MemError` stays inside, reachable by `get_ref` and downcasting).
//!
//! Every variant has exactly one kind; `specs/errors.md` lists them.

use std::fmt;
use std::io;

use super::MemError;

/// The class of a [`MemError`]: what a caller can do about it.
///
/// ```
/// use unimem::{Block, ErrorKind, Pin};
///
/// // Pinning refused: fall back to unpinned memory. Any other error is passed on.
/// let block = match Block::open(1 << 20) {
///     Err(e) if e.kind() == ErrorKind::PinRefused => {
///         Block::builder(1 << 20).pin(Pin::BestEffort).open()?
///     }
///     other => other?,
/// };
/// assert_eq!(block.size(), 1 << 20);
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The arguments can never work: a zero or overflowing size, a bad name or alignment,
    /// an out-of-bounds read or copy range, a cell of another Grid, a device that does not
    /// exist. A bug in the caller; retrying the same call fails the same way.
    InvalidInput,
    /// A handle whose use has ended: a `CellId` released, claimed or cleared since. A
    /// normal race in a cache: treat it as a miss.
    Stale,
    /// A Tape or Grid has no room left. Clear, give back or evict, then retry.
    Full,
    /// The machine or this process's cgroup cannot hold the memory (refused before any
    /// page was touched), or the allocator refused it. Ask for less.
    OutOfMemory,
    /// The OS refused to lock the pages in RAM (`RLIMIT_MEMLOCK`, missing privilege).
    /// Retry with `Pin::BestEffort`, or raise the limit.
    PinRefused,
    /// The memory's access does not allow the operation: writing what is read-only or
    /// sealed, reading by offset what is not frozen.
    AccessDenied,
    /// The memory is in use in a way that forbids the operation now: mapped here already,
    /// still mapped writable or pinned by a device, registered already, a cell lent to a
    /// device copy. May succeed once the other user lets go.
    Busy,
    /// Another process sent something unimem will not map: not a share, a file that is
    /// not a sealed memfd, sizes or seals that lie. Nothing was mapped; drop the peer.
    RefusedPeer,
    /// The peer closed its end (or died) before the exchange completed.
    Disconnected,
    /// This machine or platform lacks the capability: no CUDA driver or device support,
    /// no pinning on this backend, no UCX (or one too old).
    Unsupported,
    /// The operation did not complete in the time allowed: the other side may be slow or
    /// gone. Retry later, or drop the peer.
    TimedOut,
    /// The operating system or a driver failed a call for a reason of its own (the
    /// variant carries the call and its code).
    Os,
}

impl ErrorKind {
    /// A short lowercase name: `"pin refused"`, `"full"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Stale => "stale",
            ErrorKind::Full => "full",
            ErrorKind::OutOfMemory => "out of memory",
            ErrorKind::PinRefused => "pin refused",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::Busy => "busy",
            ErrorKind::RefusedPeer => "refused peer",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Os => "os error",
        }
    }

    /// The `std::io::ErrorKind` a `MemError` of this kind converts to.
    fn io(self) -> io::ErrorKind {
        match self {
            ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
            ErrorKind::Stale => io::ErrorKind::NotFound,
            ErrorKind::Full => io::ErrorKind::StorageFull,
            ErrorKind::OutOfMemory => io::ErrorKind::OutOfMemory,
            ErrorKind::PinRefused | ErrorKind::AccessDenied => io::ErrorKind::PermissionDenied,
            ErrorKind::Busy => io::ErrorKind::ResourceBusy,
            ErrorKind::RefusedPeer => io::ErrorKind::InvalidData,
            ErrorKind::Disconnected => io::ErrorKind::UnexpectedEof,
            ErrorKind::Unsupported => io::ErrorKind::Unsupported,
            ErrorKind::TimedOut => io::ErrorKind::TimedOut,
            ErrorKind::Os => io::ErrorKind::Other,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MemError {
    /// The class of this error, for code that reacts to it (see [`ErrorKind`]).
    ///
    /// ```
    /// use unimem::{ErrorKind, MemError, Tape};
    ///
    /// let tape = Tape::start(4096)?;
    /// let err = tape.try_take(1 << 20, 64).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Full);
    /// assert_eq!(MemError::ZeroSize.kind(), ErrorKind::InvalidInput);
    /// # Ok::<(), MemError>(())
    /// ```
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            MemError::ZeroSize
            | MemError::SizeOverflow { .. }
            | MemError::BadName { .. }
            | MemError::BadAlignment { .. }
            | MemError::TakeOverflow { .. }
            | MemError::EmptyGrid { .. }
            | MemError::GridOverflow { .. }
            | MemError::TooManyCells { .. }
            | MemError::ForeignCell { .. }
            | MemError::CudaBadDevice { .. }
            | MemError::ReadOutOfBounds { .. }
            | MemError::ReadMisaligned { .. }
            | MemError::BadSurfaceShape { .. }
            | MemError::ModelZero { .. }
            | MemError::ModelOverflow { .. }
            | MemError::RemoteCellOutOfRange { .. }
            | MemError::CellSizeMismatch { .. }
            | MemError::TransferMismatch { .. }
            | MemError::CudaNotRegistered { .. }
            | MemError::CudaStreamContext { .. }
            | MemError::CopyOutOfRange { .. }
            | MemError::CopyOverlap { .. }
            | MemError::BadTensorView { .. }
            | MemError::BadNumaNode { .. } => K::InvalidInput,
            MemError::StaleCell { .. } => K::Stale,
            MemError::TapeFull { .. } | MemError::GridFull { .. } => K::Full,
            MemError::OutOfMemory { .. } | MemError::AllocFailed { .. } => K::OutOfMemory,
            MemError::LockRefused { .. } | MemError::WireRefused { .. } => K::PinRefused,
            MemError::ShareReadOnly { .. }
            | MemError::NotWritable { .. }
            | MemError::TapeReadOnly { .. }
            | MemError::TapeNotFrozen { .. }
            | MemError::NotFrozen { .. } => K::AccessDenied,
            MemError::AlreadyMapped { .. }
            | MemError::FreezeBusy { .. }
            | MemError::FreezeRegistered { .. }
            | MemError::CudaAlreadyRegistered { .. }
            | MemError::SurfaceInUse { .. }
            | MemError::CellInFlight { .. } => K::Busy,
            MemError::ShareFds { .. }
            | MemError::ShareHeader { .. }
            | MemError::ShareVersion { .. }
            | MemError::ShareNotMemfd { .. }
            | MemError::ShareUnsealed { .. }
            | MemError::ShareSize { .. }
            | MemError::ShareSparse { .. }
            | MemError::ShareOpenMode { .. }
            | MemError::SurfaceLookupFailed { .. }
            | MemError::RemoteRefused { .. } => K::RefusedPeer,
            MemError::ShareClosed | MemError::PeerLost { .. } => K::Disconnected,
            MemError::TransferTimedOut { .. } => K::TimedOut,
            MemError::PinUnsupported { .. }
            | MemError::CudaDriverMissing { .. }
            | MemError::CudaSymbolMissing { .. }
            | MemError::CudaInitFailed { .. }
            | MemError::CudaUnsupported { .. }
            | MemError::UcxMissing { .. }
            | MemError::UcxSymbolMissing { .. }
            | MemError::UcxVersion { .. }
            | MemError::CudaNotContiguous { .. }
            | MemError::HugePagesUnavailable { .. } => K::Unsupported,
            MemError::Os { .. }
            | MemError::Cuda { .. }
            | MemError::CudaCopyFailed { .. }
            | MemError::Kern { .. }
            | MemError::SurfaceRefused { .. }
            | MemError::SurfaceTooSmall { .. }
            | MemError::SurfaceSizeUnaligned { .. }
            | MemError::SurfaceAddress { .. }
            | MemError::SurfaceRowPitch { .. }
            | MemError::MachPortFailed { .. }
            | MemError::Ucx { .. } => K::Os,
        }
    }
}

/// `?` in I/O code: the `io::Error` has the kind's `io::ErrorKind` (for
/// [`MemError::Os`], the errno's own), its message is the `MemError`'s, and the `MemError`
/// itself is inside (`get_ref()?.downcast_ref::<MemError>()`).
///
/// ```
/// use std::io;
/// use unimem::{MemError, Tape};
///
/// fn scratch() -> io::Result<Tape> {
///     Ok(Tape::start(0)?)
/// }
/// let err = scratch().unwrap_err();
/// assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
/// assert_eq!(err.get_ref().unwrap().downcast_ref::<MemError>(), Some(&MemError::ZeroSize));
/// ```
impl From<MemError> for io::Error {
    fn from(err: MemError) -> io::Error {
        let kind = match err {
            MemError::Os { errno, .. } => io::Error::from_raw_os_error(errno).kind(),
            ref other => other.kind().io(),
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_conversion_keeps_the_error_and_the_errno_kind() {
        let err = io::Error::from(MemError::Os {
            call: "mmap",
            errno: libc_enomem(),
        });
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert!(err.to_string().contains("mmap"));
        let err = io::Error::from(MemError::ShareClosed);
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            err.get_ref().and_then(|e| e.downcast_ref::<MemError>()),
            Some(&MemError::ShareClosed)
        );
    }

    /// ENOMEM, 12 on every Unix and in Miri's emulation.
    fn libc_enomem() -> i32 {
        12
    }

    #[test]
    fn names_are_distinct() {
        let all = [
            ErrorKind::InvalidInput,
            ErrorKind::Stale,
            ErrorKind::Full,
            ErrorKind::OutOfMemory,
            ErrorKind::PinRefused,
            ErrorKind::AccessDenied,
            ErrorKind::Busy,
            ErrorKind::RefusedPeer,
            ErrorKind::Disconnected,
            ErrorKind::Unsupported,
            ErrorKind::TimedOut,
            ErrorKind::Os,
        ];
        let mut names: Vec<_> = all.iter().map(|k| k.to_string()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }
}

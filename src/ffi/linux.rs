//! Linux system calls behind the memfd Block: one wrapper per call, `errno` as the error.
//!
//! # References
//!
//! memfd_create(2), ftruncate(2), fcntl(2) (file seals), mmap(2), munmap(2), mlock(2),
//! madvise(2) (`MADV_POPULATE_WRITE`, Linux 5.14), getrlimit(2), and the kernel uapi header
//! `linux/memfd.h` (`MFD_NOEXEC_SEAL`, Linux 6.3).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// An `errno` value.
pub(crate) type Errno = i32;

fn last_errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `memfd_create(name, flags)`: a new anonymous file, closed on exec.
pub(crate) fn memfd_create(name: &CStr, flags: libc::c_uint) -> Result<OwnedFd, Errno> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: the kernel just returned this descriptor to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ftruncate(fd, len)`.
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: usize) -> Result<(), Errno> {
    let len = libc::off_t::try_from(len).map_err(|_| libc::EFBIG)?;
    // SAFETY: ftruncate only reads its integer arguments; `fd` is open for the borrow.
    match unsafe { libc::ftruncate(fd.as_raw_fd(), len) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `fcntl(fd, F_ADD_SEALS, seals)`.
pub(crate) fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> Result<(), Errno> {
    // SAFETY: F_ADD_SEALS takes an integer argument; `fd` is open for the borrow.
    match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `mmap(NULL, len, prot, MAP_SHARED, fd, 0)`: a shared mapping of the whole file.
pub(crate) fn mmap_shared(
    fd: BorrowedFd<'_>,
    len: usize,
    prot: libc::c_int,
) -> Result<NonNull<u8>, Errno> {
    // SAFETY: with a null hint the kernel picks an unused range, so no existing mapping is
    // replaced; `fd` is open for the borrow.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(last_errno());
    }
    NonNull::new(ptr.cast()).ok_or(libc::EINVAL)
}

/// `munmap(ptr, len)`.
///
/// # Safety
///
/// `ptr..ptr + len` is a mapping this process owns, and nothing refers to it afterwards.
pub(crate) unsafe fn munmap(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller guarantees the range is ours and unused after this call.
    match unsafe { libc::munmap(ptr.as_ptr().cast(), len) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `mlock(ptr, len)`: populate and lock every page of the range.
pub(crate) fn mlock(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    // SAFETY: mlock changes only residency, never contents, and fails with ENOMEM on a range
    // that is not mapped.
    match unsafe { libc::mlock(ptr.as_ptr().cast(), len) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `mlock2(ptr, len, MLOCK_ONFAULT)`: charge the range to RLIMIT_MEMLOCK and lock each page
/// as it is faulted in, without populating it now (Linux 4.4).
pub(crate) fn mlock_on_fault(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    // SAFETY: as for mlock: residency only; an unmapped range is an error, not UB.
    match unsafe { libc::mlock2(ptr.as_ptr().cast(), len, libc::MLOCK_ONFAULT as _) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `munlock(ptr, len)`.
pub(crate) fn munlock(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    // SAFETY: residency only; contents are untouched.
    match unsafe { libc::munlock(ptr.as_ptr().cast(), len) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `madvise(ptr, len, MADV_POPULATE_WRITE)`: fault every page in, writable, and report
/// failure (unlike `MAP_POPULATE`). `EINVAL` before Linux 5.14.
pub(crate) fn populate_write(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    // SAFETY: MADV_POPULATE_WRITE allocates pages as a write fault would, but leaves their
    // contents (zero for a fresh memfd) unchanged; an unmapped range is an error.
    match unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_POPULATE_WRITE) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// The soft `RLIMIT_MEMLOCK`, in bytes, or `None` when unlimited.
pub(crate) fn memlock_limit() -> Result<Option<u64>, Errno> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a pointer to a live local.
    match unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } {
        0 => Ok((limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)),
        _ => Err(last_errno()),
    }
}

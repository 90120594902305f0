//! Calls every Unix offers (Linux, macOS; also what Miri emulates).

/// `sysconf(_SC_PAGESIZE)`, falling back to 4 KiB if the call fails (it does not on any
/// supported OS).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as usize } else { 4096 }
}

/// The symbolic name of the `errno` values unimem reports, for messages a user can search.
pub(crate) fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOSPC => "ENOSPC",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETXTBSY => "ETXTBSY",
        _ => return None,
    })
}

// Memory locking, the same call on every Unix. Not under Miri: no backend there locks.

/// An `errno` value.
#[cfg(not(miri))]
pub(crate) type Errno = i32;

/// `errno` after a failed call.
#[cfg(not(miri))]
pub(crate) fn last_errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `mlock(ptr, len)`: populate and lock (wire) every page of the range.
#[cfg(not(miri))]
pub(crate) fn mlock(ptr: std::ptr::NonNull<u8>, len: usize) -> Result<(), Errno> {
    fault!("mlock");
    // SAFETY: mlock changes only residency, never contents, and fails with ENOMEM on a range
    // that is not mapped.
    match unsafe { libc::mlock(ptr.as_ptr().cast(), len) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `munlock(ptr, len)`. macOS only: on Linux `munmap` unlocks a locked range itself.
#[cfg(all(target_os = "macos", not(miri)))]
pub(crate) fn munlock(ptr: std::ptr::NonNull<u8>, len: usize) -> Result<(), Errno> {
    fault!("munlock");
    // SAFETY: residency only; contents are untouched.
    match unsafe { libc::munlock(ptr.as_ptr().cast(), len) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// The soft `RLIMIT_MEMLOCK`, in bytes, or `None` when unlimited.
#[cfg(not(miri))]
pub(crate) fn memlock_limit() -> Result<Option<u64>, Errno> {
    fault!("getrlimit");
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a pointer to a live local.
    match unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } {
        #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux and macOS, not everywhere.
        0 => Ok((limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)),
        _ => Err(last_errno()),
    }
}

//! Linux system calls behind the memfd Block: one wrapper per call, `errno` as the error.
//!
//! # References
//!
//! memfd_create(2), ftruncate(2), fcntl(2) (file seals, `F_GETFL`, `F_DUPFD_CLOEXEC`),
//! mmap(2), munmap(2), mlock(2), madvise(2) (`MADV_POPULATE_WRITE`, `MADV_POPULATE_READ`,
//! Linux 5.14; `MADV_HUGEPAGE`), getrlimit(2), fstat(2) (`st_blocks`), fstatfs(2), lseek(2)
//! (`SEEK_HOLE`, Linux 3.1), mbind(2), sched_setaffinity(2), sendmsg(2), recvmsg(2), cmsg(3),
//! unix(7) (`SCM_RIGHTS`, `SCM_CREDENTIALS`), and the kernel uapi headers `linux/memfd.h`
//! (`MFD_NOEXEC_SEAL`, Linux 6.3; `MFD_HUGE_SHIFT`), `linux/mempolicy.h` (`MPOL_BIND`),
//! `linux/magic.h` (`HUGETLBFS_MAGIC`), `asm-generic/socket.h` (`SO_PASSPIDFD`, Linux 6.5)
//! and `linux/socket.h` (`SCM_PIDFD`).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use super::os::last_errno;
pub(crate) use super::os::{Errno, mlock};

/// `memfd_create(name, flags)`: a new anonymous file, closed on exec.
pub(crate) fn memfd_create(name: &CStr, flags: libc::c_uint) -> Result<OwnedFd, Errno> {
    fault!("memfd_create");
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
    fault!("ftruncate");
    let len = libc::off_t::try_from(len).map_err(|_| libc::EFBIG)?;
    // SAFETY: ftruncate only reads its integer arguments; `fd` is open for the borrow.
    match unsafe { libc::ftruncate(fd.as_raw_fd(), len) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `fcntl(fd, F_ADD_SEALS, seals)`.
pub(crate) fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> Result<(), Errno> {
    fault!("fcntl(F_ADD_SEALS)");
    // SAFETY: F_ADD_SEALS takes an integer argument; `fd` is open for the borrow.
    match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `fcntl(fd, F_GET_SEALS)`: the seals set on the file. `EINVAL` when the file does not
/// support sealing (anything but a memfd or other shmem/hugetlbfs file).
pub(crate) fn get_seals(fd: BorrowedFd<'_>) -> Result<libc::c_int, Errno> {
    fault!("fcntl(F_GET_SEALS)");
    // SAFETY: F_GET_SEALS takes no argument; `fd` is open for the borrow.
    match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) } {
        seals if seals >= 0 => Ok(seals),
        _ => Err(last_errno()),
    }
}

/// `fcntl(fd, F_GETFL)`: the descriptor's status flags (`O_ACCMODE` gives its access).
pub(crate) fn get_fl(fd: BorrowedFd<'_>) -> Result<libc::c_int, Errno> {
    fault!("fcntl(F_GETFL)");
    // SAFETY: F_GETFL takes no argument; `fd` is open for the borrow.
    match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) } {
        flags if flags >= 0 => Ok(flags),
        _ => Err(last_errno()),
    }
}

/// `lseek(fd, 0, SEEK_HOLE)`: the offset of the first hole, the file's size if it has none
/// (filesystems without hole tracking, hugetlbfs among them, always say so). Moves the
/// offset of the open file description, which every duplicate of the descriptor shares;
/// unimem never reads or writes through it.
pub(crate) fn first_hole(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    fault!("lseek(SEEK_HOLE)");
    // SAFETY: lseek only reads its integer arguments; `fd` is open for the borrow.
    let at = unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_HOLE) };
    u64::try_from(at).map_err(|_| last_errno())
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, 0)`: a new descriptor for the same open file, closed on
/// exec (what `try_clone_to_owned` does, here so that it can be failed by a test).
pub(crate) fn dup_cloexec(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    fault!("fcntl(F_DUPFD_CLOEXEC)");
    // SAFETY: F_DUPFD_CLOEXEC takes an integer argument (the lowest number to use); `fd`
    // is open for the borrow.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(last_errno());
    }
    // SAFETY: the kernel just returned this descriptor to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// What `fstat` says about a file: the fields the import checks, and its identity.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileStat {
    /// `st_mode`: file type and permission bits.
    pub(crate) mode: u32,
    /// `st_size`, in bytes.
    pub(crate) size: i64,
    /// `st_blocks`: 512-byte units the file holds (shmem and hugetlbfs count every page
    /// they hold, swapped out or not, including pages past the end of the file).
    pub(crate) blocks: i64,
    /// `st_dev`: the filesystem the file is on.
    pub(crate) dev: u64,
    /// `st_ino`: the file's number on it.
    pub(crate) ino: u64,
}

impl FileStat {
    /// Whether the file is a regular file (`S_ISREG`).
    pub(crate) fn is_regular(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// `fstat(fd)`.
// `dev_t` and `ino_t` are `u64` on 64-bit Linux, narrower on some 32-bit targets.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> Result<FileStat, Errno> {
    fault!("fstat");
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes one `stat` through a pointer to a live local; `fd` is open for
    // the borrow.
    match unsafe { libc::fstat(fd.as_raw_fd(), stat.as_mut_ptr()) } {
        0 => {
            // SAFETY: fstat returned 0, so it filled in the whole struct.
            let stat = unsafe { stat.assume_init() };
            Ok(FileStat {
                mode: stat.st_mode,
                size: stat.st_size,
                blocks: stat.st_blocks,
                dev: stat.st_dev as u64,
                ino: stat.st_ino as u64,
            })
        }
        _ => Err(last_errno()),
    }
}

/// `SCM_PIDFD` (`linux/socket.h`, Linux 6.5): a control message carrying a pidfd of the
/// sender, which the kernel adds to every message on a socket with `SO_PASSPIDFD` set. The
/// `libc` crate does not name it.
pub(crate) const SCM_PIDFD: libc::c_int = 0x04;

/// Control-buffer space for one received message, in `u64`s (so it is aligned for
/// `cmsghdr`): 256 bytes. A share needs `CMSG_SPACE(sizeof(int))` (24 bytes on 64-bit
/// Linux) for its descriptor; a socket with `SO_PASSCRED` adds `SCM_CREDENTIALS`
/// (`CMSG_SPACE(sizeof(struct ucred))`, 32), one with `SO_PASSPIDFD` an `SCM_PIDFD` (24),
/// and one with `SO_PASSSEC` a security label. The rest holds extra descriptors a peer
/// attached, which are received so that they can be closed. Too little room would make the
/// kernel truncate the control data (`MSG_CTRUNC`) and drop the share's descriptor.
const CONTROL_WORDS: usize = 32;

/// Control-buffer space for sending one descriptor: `CMSG_SPACE(sizeof(int))`.
const SEND_CONTROL_WORDS: usize = 4;

/// `sendmsg(socket, data, SCM_RIGHTS [fd], MSG_NOSIGNAL)`: sends `data` with one
/// descriptor attached. Returns how many bytes of `data` went out (the descriptor travels
/// with the first of them).
pub(crate) fn send_with_fd(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fd: BorrowedFd<'_>,
) -> Result<usize, Errno> {
    fault!("sendmsg");
    let mut control = [0u64; SEND_CONTROL_WORDS];
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) } as usize;
    debug_assert!(space <= size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty header; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY:
    // - `msg` points at `control`, which is zeroed, aligned for `cmsghdr` (u64 words) and at
    //   least `space` bytes long, so CMSG_FIRSTHDR returns a header inside it;
    // - CMSG_DATA of that header has room for one `c_int` (CMSG_SPACE accounted for it);
    // - sendmsg only reads `data` (through `iov`) and `control`, both alive for the call,
    //   and `socket` and `fd` are open for their borrows.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
        libc::CMSG_DATA(cmsg)
            .cast::<libc::c_int>()
            .write_unaligned(fd.as_raw_fd());
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    usize::try_from(sent).map_err(|_| last_errno())
}

/// `send(socket, data, MSG_NOSIGNAL)`: plain bytes, no descriptor.
pub(crate) fn send(socket: BorrowedFd<'_>, data: &[u8]) -> Result<usize, Errno> {
    fault!("send");
    // SAFETY: send only reads `data`, alive for the call; `socket` is open for the borrow.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(sent).map_err(|_| last_errno())
}

/// One message received by [`recv_with_fds`].
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes of data written to the buffer.
    pub(crate) bytes: usize,
    /// Every descriptor of the message's `SCM_RIGHTS` control messages, owned: dropping
    /// them closes them.
    pub(crate) fds: Vec<OwnedFd>,
    /// `MSG_CTRUNC`: more control data arrived than fit; the kernel discarded the rest
    /// (and closed the descriptors in it).
    pub(crate) control_truncated: bool,
}

/// `recvmsg(socket, buf, MSG_CMSG_CLOEXEC)` with the control room of [`CONTROL_WORDS`].
/// Every descriptor the kernel installed, in any control message, is owned here: those of
/// `SCM_RIGHTS` are returned, the others (`SCM_PIDFD`) closed before this returns, so nothing
/// that arrived can leak whatever else the message held. Credentials (`SCM_CREDENTIALS`)
/// and security labels carry no descriptor and are ignored.
pub(crate) fn recv_with_fds(socket: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, Errno> {
    fault!("recvmsg");
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty header; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: recvmsg writes at most `buf.len()` bytes into `buf` and at most
    // `msg_controllen` bytes into `control`, both alive and exclusively borrowed for the
    // call; `socket` is open for the borrow.
    let received = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    let bytes = usize::try_from(received).map_err(|_| last_errno())?;
    let mut fds = Vec::new();
    // Descriptors of other control messages (the `SCM_PIDFD` a socket with `SO_PASSPIDFD`
    // adds): owned here, so that they are closed when this returns.
    let mut others = Vec::new();
    // SAFETY:
    // - on success the kernel set `msg_controllen` to the bytes of control data it wrote
    //   into `control`, and CMSG_FIRSTHDR / CMSG_NXTHDR walk only headers that lie wholly
    //   within that length (they return null past it);
    // - each SCM_RIGHTS or SCM_PIDFD payload is `cmsg_len - CMSG_LEN(0)` bytes of `c_int`s,
    //   inside the header's extent; they are read unaligned;
    // - every descriptor in them was just installed in this process by the kernel and is
    //   owned by nobody else, so wrapping each in `OwnedFd` once is sound.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let kind = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            let into = match kind {
                (libc::SOL_SOCKET, libc::SCM_RIGHTS) => Some(&mut fds),
                (libc::SOL_SOCKET, SCM_PIDFD) => Some(&mut others),
                _ => None,
            };
            if let Some(into) = into {
                let payload =
                    ((*cmsg).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                for i in 0..payload / size_of::<libc::c_int>() {
                    let fd = data.add(i).read_unaligned();
                    if fd >= 0 {
                        into.push(OwnedFd::from_raw_fd(fd));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Received {
        bytes,
        fds,
        control_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

/// `mmap(NULL, len, prot, MAP_SHARED, fd, 0)`: a shared mapping of the whole file.
pub(crate) fn mmap_shared(
    fd: BorrowedFd<'_>,
    len: usize,
    prot: libc::c_int,
) -> Result<NonNull<u8>, Errno> {
    mmap_shared_near(fd, len, prot, 0)
}

/// `mmap(hint, len, prot, MAP_SHARED, fd, 0)`: as [`mmap_shared`], placed at `hint` if that
/// range is free (without `MAP_FIXED` the kernel never replaces a mapping: it takes the
/// hint or picks another range). `hint` 0 lets the kernel choose.
pub(crate) fn mmap_shared_near(
    fd: BorrowedFd<'_>,
    len: usize,
    prot: libc::c_int,
    hint: usize,
) -> Result<NonNull<u8>, Errno> {
    fault!("mmap");
    // SAFETY: without MAP_FIXED the kernel picks an unused range (the hint, or another),
    // so no existing mapping is replaced; `fd` is open for the borrow.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::without_provenance_mut(hint),
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

/// `mmap(ptr, len, prot, MAP_SHARED | MAP_FIXED, fd, 0)`: replaces the mapping at
/// `ptr..ptr + len` by a shared mapping of the whole file, at the same address, in one call.
///
/// On failure the old mapping may be gone and the range left a hole (Linux puts the old
/// mapping back only when the failure comes before it was torn down, `mm/vma.c`
/// `vms_abort_munmap_vmas`): the caller must then treat the range as neither its own nor
/// free, and never unmap it.
///
/// # Safety
///
/// `ptr..ptr + len` is a mapping this process owns and no reference into it is alive: for
/// the length of the call the range is not readable.
pub(crate) unsafe fn mmap_fixed_shared(
    fd: BorrowedFd<'_>,
    ptr: NonNull<u8>,
    len: usize,
    prot: libc::c_int,
) -> Result<(), Errno> {
    fault!("mmap(MAP_FIXED)");
    // SAFETY: the caller owns the range and nothing refers into it (contract); MAP_FIXED
    // replaces exactly that range and nothing else; `fd` is open for the borrow.
    let got = unsafe {
        libc::mmap(
            ptr.as_ptr().cast(),
            len,
            prot,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd.as_raw_fd(),
            0,
        )
    };
    if got == libc::MAP_FAILED {
        return Err(last_errno());
    }
    // MAP_FIXED places the mapping at `ptr` or fails.
    debug_assert_eq!(got, ptr.as_ptr().cast());
    Ok(())
}

/// `munmap(ptr, len)`.
///
/// # Safety
///
/// `ptr..ptr + len` is a mapping this process owns, and nothing refers to it afterwards.
pub(crate) unsafe fn munmap(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    fault!("munmap");
    // SAFETY: the caller guarantees the range is ours and unused after this call.
    match unsafe { libc::munmap(ptr.as_ptr().cast(), len) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `mlock2(ptr, len, MLOCK_ONFAULT)`: charge the range to RLIMIT_MEMLOCK and lock each page
/// as it is faulted in, without populating it now (Linux 4.4).
pub(crate) fn mlock_on_fault(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    fault!("mlock2");
    // SAFETY: as for mlock: residency only; an unmapped range is an error, not UB.
    match unsafe { libc::mlock2(ptr.as_ptr().cast(), len, libc::MLOCK_ONFAULT as _) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `madvise(ptr, len, MADV_POPULATE_WRITE)`: fault every page in, writable, and report
/// failure (unlike `MAP_POPULATE`). `EINVAL` before Linux 5.14.
pub(crate) fn populate_write(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    fault!("madvise(MADV_POPULATE_WRITE)");
    // SAFETY: MADV_POPULATE_WRITE allocates pages as a write fault would, but leaves their
    // contents (zero for a fresh memfd) unchanged; an unmapped range is an error.
    match unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_POPULATE_WRITE) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `madvise(ptr, len, MADV_POPULATE_READ)`: fault every page in, readable, without
/// requiring write access (for `PROT_READ` mappings). `EINVAL` before Linux 5.14.
pub(crate) fn populate_read(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    fault!("madvise(MADV_POPULATE_READ)");
    // SAFETY: MADV_POPULATE_READ only maps pages in, as read faults would; contents are
    // unchanged and an unmapped range is an error.
    match unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_POPULATE_READ) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)`: an
/// inaccessible range that holds a place in the address space and costs no memory.
pub(crate) fn mmap_reserve(len: usize) -> Result<NonNull<u8>, Errno> {
    fault!("mmap(PROT_NONE)");
    // SAFETY: with a null hint the kernel picks an unused range; an anonymous PROT_NONE
    // mapping cannot be read or written, so it hands out nothing.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(last_errno());
    }
    NonNull::new(ptr.cast()).ok_or(libc::EINVAL)
}

/// `madvise(ptr, len, MADV_HUGEPAGE)`: ask for transparent huge pages in the range (for a
/// shmem mapping, effective where `shmem_enabled` is `advise`, `within_size` or `always`).
pub(crate) fn advise_huge_pages(ptr: NonNull<u8>, len: usize) -> Result<(), Errno> {
    fault!("madvise(MADV_HUGEPAGE)");
    // SAFETY: MADV_HUGEPAGE only sets a flag on the mappings in the range; no byte changes.
    match unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_HUGEPAGE) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `MPOL_BIND` (linux/mempolicy.h): allocate only on the nodes of the mask.
const MPOL_BIND: libc::c_int = 2;

/// `syscall(SYS_mbind, ptr, len, MPOL_BIND, {node}, maxnode, 0)`: every page of the range
/// not yet allocated will be allocated on `node` (for a shared mapping of a file, the
/// policy is the file's). glibc has no wrapper (libnuma has), hence the raw system call.
pub(crate) fn mbind(ptr: NonNull<u8>, len: usize, node: u32) -> Result<(), Errno> {
    fault!("mbind");
    let bits = libc::c_ulong::BITS as usize;
    let node = node as usize;
    let mut mask = vec![0 as libc::c_ulong; node / bits + 1];
    mask[node / bits] |= 1 << (node % bits);
    // The kernel reads `maxnode - 1` bits (mbind(2), `get_nodes`): exactly the mask's.
    let maxnode = (mask.len() * bits + 1) as libc::c_ulong;
    // SAFETY: mbind reads `mask.len()` words from a live local vector and changes only the
    // memory policy of the range, never its contents or mapping; a bad range is an error.
    let got = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            ptr.as_ptr(),
            len,
            MPOL_BIND,
            mask.as_ptr(),
            maxnode,
            0 as libc::c_uint,
        )
    };
    match got {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `sched_getaffinity(0)`: the CPUs the calling thread may run on.
pub(crate) fn cpu_affinity() -> Result<Vec<usize>, Errno> {
    fault!("sched_getaffinity");
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into the local set.
    let got = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if got != 0 {
        return Err(last_errno());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads one bit of the local set; `cpu` is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// `sched_setaffinity(0, cpus)`: the calling thread runs only on `cpus` from now on (those
/// at or above `CPU_SETSIZE` are left out).
pub(crate) fn set_cpu_affinity(cpus: &[usize]) -> Result<(), Errno> {
    fault!("sched_setaffinity");
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&cpu| cpu < libc::CPU_SETSIZE as usize) {
        // SAFETY: CPU_SET writes one bit of the local set; `cpu` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: the kernel reads the local set; it changes only this thread's scheduling.
    match unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } {
        0 => Ok(()),
        _ => Err(last_errno()),
    }
}

/// `HUGETLBFS_MAGIC` (linux/magic.h): `f_type` of a file on hugetlbfs.
pub(crate) const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;

/// What `fstatfs` says about the filesystem of a file: its type and block size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FsStat {
    /// `f_type`: the filesystem's magic number.
    pub(crate) kind: u64,
    /// `f_bsize`: on hugetlbfs, the huge page size.
    pub(crate) block_size: u64,
}

/// `fstatfs(fd)`.
// `f_type` and `f_bsize` are signed words on some targets.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn fstatfs(fd: BorrowedFd<'_>) -> Result<FsStat, Errno> {
    fault!("fstatfs");
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fstatfs writes one `statfs` through a pointer to a live local; `fd` is open
    // for the borrow.
    match unsafe { libc::fstatfs(fd.as_raw_fd(), stat.as_mut_ptr()) } {
        0 => {
            // SAFETY: fstatfs returned 0, so it filled in the whole struct.
            let stat = unsafe { stat.assume_init() };
            Ok(FsStat {
                kind: stat.f_type as u64,
                block_size: stat.f_bsize as u64,
            })
        }
        _ => Err(last_errno()),
    }
}

//! [`Share`]: a Block handed to another process as a sealed memfd over a Unix socket.
//!
//! # Design
//!
//! A Linux Block is a memfd sealed against shrinking and growing, mapped `MAP_SHARED`. To let
//! another process map the very same pages, this process sends it a duplicate of the memfd in
//! one `SCM_RIGHTS` message, with a 24-byte header that says what it is:
//!
//! | offset | bytes | field | value |
//! |---|---|---|---|
//! | 0 | 8 | magic | `b"UNIMEMSH"` |
//! | 8 | 2 | version | 1, little-endian |
//! | 10 | 1 | access | 0 read-write, 1 read-only |
//! | 11 | 1 | reserved | 0 |
//! | 12 | 4 | source | the Block's id in the sending process, little-endian |
//! | 16 | 8 | size | bytes, little-endian: nonzero, whole pages, at most `isize::MAX` |
//!
//! # Why it is safe to map what arrives
//!
//! A mapping of a file faults with `SIGBUS` if any holder of the file shrinks it, a
//! read-only peer must never write, and an importer must never allocate what the owner did
//! not. All three are properties of the file, not of the header, so the importer checks the
//! file itself (`Share::check`) before it maps anything, in this order:
//!
//! 1. `F_GET_SEALS` **first**: the file supports seals (only memfds and other shmem or
//!    hugetlbfs files do; anything else is `ShareNotMemfd`), and `F_SEAL_SHRINK |
//!    F_SEAL_GROW` are set, so no holder can ever resize it; a read-only share also needs
//!    `F_SEAL_FUTURE_WRITE` (or `F_SEAL_WRITE`). Seals can only be added, never removed:
//!    from here on the size is final.
//! 2. `fstat`: a regular file whose size is exactly the header's. Read after the seals, so
//!    the size it reads cannot change any more. (Read before them, as an earlier version
//!    did, a sender could shrink an unsealed file between the `fstat` and the seal check,
//!    then seal it: the checks passed and the import mapped more than the file held.)
//! 3. `F_GETFL`: the descriptor allows the access the mapping needs.
//! 4. Without a write seal (a holder may punch holes, and populating a hole allocates), the
//!    size must fit in `MemAvailable` and the cgroup's room, as for `Block::open`.
//! 5. The pages: `st_blocks` (from the same `fstat`) covers the size, and
//!    `lseek(SEEK_HOLE)` finds no hole below it (`ShareSparse`). A sparse file costs its
//!    sender nothing, and populating it here would allocate every page, charged to this
//!    process: a sealed 1 TiB memfd that was only `ftruncate`d is an OOM kill. Each test
//!    alone can be fooled where the other cannot: pages allocated past the end of the file
//!    (`fallocate(FALLOC_FL_KEEP_SIZE)` before `F_SEAL_GROW`) count in `st_blocks`, and
//!    hugetlbfs reports no holes to `SEEK_HOLE`; shmem's `SEEK_HOLE` is exact (it also
//!    counts a page that was `fallocate`d but never touched as a hole, which refuses such a
//!    file, conservatively).
//!
//! A holder that reopens `/proc/self/fd/N` read-write gets the same inode and the same
//! seals. What the check cannot see is the future: a read-write holder may punch holes
//! after it (`specs/share.md`, "What the page check guarantees").
//!
//! # Read-only sharing is per inode
//!
//! `share()` (read-only) adds `F_SEAL_FUTURE_WRITE` to the memfd. The seal refuses new
//! writable mappings and `write()` from then on, for every process, while mappings that were
//! already writable (the owner's) stay writable. Because it belongs to the file, it is
//! permanent: once a Block has been shared read-only, no process can ever be given it
//! writable, and a later `share_read_write()` fails with `NotWritable`.
//!
//! # References
//!
//! unix(7) (`SCM_RIGHTS`, `SO_PASSCRED`), sendmsg(2), recvmsg(2) (`MSG_CMSG_CLOEXEC`,
//! `MSG_CTRUNC`), cmsg(3), fcntl(2) ("File seals": `F_SEAL_FUTURE_WRITE`, Linux 5.1;
//! `F_GETFL`), fstat(2) (`st_blocks`), lseek(2) (`SEEK_HOLE`), memfd_create(2); kernel
//! `mm/shmem.c` (`shmem_fallocate` refuses to allocate past the end under `F_SEAL_GROW`),
//! `include/uapi/asm-generic/socket.h` (`SO_PASSPIDFD`, Linux 6.5).

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use super::mapped::Inode;
use crate::block::{Access, Extent};
use crate::error::{MemError, SHARE_HEADER_LEN};
use crate::ffi::linux as ffi;
use crate::limits::check_headroom;
use crate::page::page_size;

/// First bytes of every share header.
const MAGIC: [u8; 8] = *b"UNIMEMSH";
/// The share format this unimem writes and reads.
const VERSION: u16 = 1;

/// A Block made ready for another process: a duplicate of its sealed memfd and a header
/// (size, [`Access`], the Block's id here). Linux only.
///
/// Made by [`Extent::share`] (read-only) or [`Extent::share_read_write`], sent with
/// [`send`](Share::send), received with [`recv`](Share::recv), and turned into memory by
/// [`Block::import_read_only`](crate::Block::import_read_only) or, for a read-write share,
/// [`Block::import`](crate::Block::import). A `Share`
/// owns its descriptor: dropping it closes it, and the Block's pages live on as long as any
/// process holds the file (a descriptor or a mapping), whichever of them lets go last.
///
/// `Share` is `Send` and `Sync`.
///
/// # Examples
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use unimem::{Access, Block, Pin, Share};
///
/// let mut owner = Block::builder(1 << 16).pin(Pin::BestEffort).open()?;
/// owner.as_slice_mut::<u32>()[0] = 42;
/// // Frozen: the bytes never change again, and this process may import it read-only too.
/// let owner = owner.freeze()?;
///
/// // In real use the other end of the socket is another process.
/// let (here, there) = UnixStream::pair().unwrap();
/// owner.share()?.send(&here)?;
///
/// let peer = Block::import_read_only(Share::recv(&there)?, Pin::BestEffort)?;
/// assert_eq!(peer.access(), Access::ReadOnly);
/// assert_eq!(peer.as_slice::<u32>()?[0], 42);
/// assert_eq!(peer.read::<u32>(0, 1)?, &[42]);
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct Share {
    fd: OwnedFd,
    header: Header,
}

/// What a share header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    size: usize,
    access: Access,
    source: u32,
}

impl Header {
    fn encode(&self) -> [u8; SHARE_HEADER_LEN] {
        let mut bytes = [0u8; SHARE_HEADER_LEN];
        bytes[0..8].copy_from_slice(&MAGIC);
        bytes[8..10].copy_from_slice(&VERSION.to_le_bytes());
        bytes[10] = match self.access {
            Access::ReadWrite => 0,
            Access::ReadOnly => 1,
        };
        bytes[12..16].copy_from_slice(&self.source.to_le_bytes());
        bytes[16..24].copy_from_slice(&(self.size as u64).to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Header, MemError> {
        let bad = |reason| MemError::ShareHeader {
            len: bytes.len(),
            reason,
        };
        let Ok(bytes) = <&[u8; SHARE_HEADER_LEN]>::try_from(bytes) else {
            return Err(bad("wrong length"));
        };
        if bytes[0..8] != MAGIC {
            return Err(bad("wrong magic"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(MemError::ShareVersion {
                found: version,
                expected: VERSION,
            });
        }
        let access = match bytes[10] {
            0 => Access::ReadWrite,
            1 => Access::ReadOnly,
            _ => return Err(bad("access byte is neither 0 nor 1")),
        };
        if bytes[11] != 0 {
            return Err(bad("reserved byte is not 0"));
        }
        let source = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        let mut size = [0u8; 8];
        size.copy_from_slice(&bytes[16..24]);
        let size = u64::from_le_bytes(size);
        let size = match usize::try_from(size) {
            Ok(size) if size <= isize::MAX as usize => size,
            _ => return Err(bad("size exceeds isize::MAX")),
        };
        if size == 0 {
            return Err(bad("size is zero"));
        }
        if size % page_size() != 0 {
            return Err(bad("size is not a whole number of pages"));
        }
        Ok(Header {
            size,
            access,
            source,
        })
    }
}

impl Extent {
    /// Makes this Block ready to be sent to another process, read-only. Linux only.
    ///
    /// First seals the memfd with `F_SEAL_FUTURE_WRITE` (unless a write seal is there):
    /// from then on no process can map it writable, `write()` to it or punch holes in it,
    /// while this process's own mapping stays writable. The seal belongs to the file, for
    /// good: after one read-only share, [`share_read_write`](Extent::share_read_write)
    /// fails, in this process and in any other. Sharing read-only again is fine.
    ///
    /// The receiver maps the pages `PROT_READ` ([`Block::import_read_only`]) and can view
    /// them as `&[T]` only once the Block is frozen ([`Block::freeze`]); before that it
    /// copies them out ([`ReadOnlyBlock::read_into`]), because this process may still write.
    ///
    /// The share holds a duplicate descriptor; the Block may be dropped before the share is
    /// sent or imported, and the pages live on until the last holder lets go. The share is
    /// meant for another process: imported in this one while this Block lives, it would be
    /// a second Block over the same bytes, and is refused
    /// ([`AlreadyMapped`](MemError::AlreadyMapped)), except once this Block is read-only
    /// ([`Block::freeze`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use unimem::{Access, Block, MemError, Pin};
    ///
    /// let block = Block::builder(4096).pin(Pin::BestEffort).open()?;
    /// let share = block.share()?;
    /// assert_eq!((share.size(), share.access()), (4096, Access::ReadOnly));
    /// assert_eq!(share.source_id(), block.id());
    /// // The write seal is per file and permanent:
    /// // SAFETY: the error path is taken; nothing is shared read-write.
    /// assert!(matches!(
    ///     unsafe { block.share_read_write() },
    ///     Err(MemError::NotWritable { sealed: true, .. })
    /// ));
    /// # Ok::<(), MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Os`](MemError::Os) if sealing (`fcntl(F_ADD_SEALS)`: `EINVAL` before Linux 5.1,
    /// `EPERM` if a holder added `F_SEAL_SEAL`), reading the seals, or duplicating the
    /// descriptor (`EMFILE`) fails.
    ///
    /// [`Block::import_read_only`]: crate::Block::import_read_only
    /// [`Block::freeze`]: crate::Block::freeze
    /// [`ReadOnlyBlock::read_into`]: crate::ReadOnlyBlock::read_into
    pub fn share(&self) -> Result<Share, MemError> {
        self.share_with(Access::ReadOnly)
    }

    /// Makes this Block ready to be sent to another process **read-write**: the receiver
    /// ([`Block::import`]) maps the same pages writable. Linux only.
    ///
    /// # Safety
    ///
    /// Every process that gets write access through this share (its importer, and whoever
    /// it passes the file on to) must keep to a protocol under which this process's views
    /// stay sound: while this process holds a view of a range (a [`Block`] view, a Tape
    /// take, a Grid cell), no other process writes that range, and while it holds a
    /// mutable view, no other process reads it either. The usual protocol hands ranges
    /// over by offset: a process writes only what it owns, then sends the offset and stops
    /// using it (`specs/share.md`, "Soundness across processes"). Rust cannot check what
    /// another process does, and a process that breaks the protocol is a data race in this
    /// one: give read-write shares only to processes trusted to keep it. The safe way to
    /// share is read-only ([`share`](Extent::share)), frozen.
    ///
    /// A read-write peer can also punch holes in the file (the resize seals do not forbid
    /// it); see `specs/share.md`, "Trust".
    ///
    /// # Errors
    ///
    /// [`NotWritable`](MemError::NotWritable) if the Block was shared read-only or frozen
    /// before (`sealed: true`) or this process imported it read-only (`sealed: false`);
    /// [`Os`](MemError::Os) as for [`share`](Extent::share).
    ///
    /// [`Block::import`]: crate::Block::import
    /// [`Block`]: crate::Block
    pub unsafe fn share_read_write(&self) -> Result<Share, MemError> {
        self.share_with(Access::ReadWrite)
    }

    /// Seals as `access` needs, then duplicates the descriptor into a `Share`.
    fn share_with(&self, access: Access) -> Result<Share, MemError> {
        let fd = self.fd();
        let seals = ffi::get_seals(fd).map_err(os("fcntl(F_GET_SEALS)"))?;
        let write_sealed = seals & (libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE) != 0;
        match access {
            Access::ReadWrite if write_sealed || self.access() == Access::ReadOnly => {
                return Err(MemError::NotWritable {
                    id: self.id(),
                    sealed: write_sealed,
                });
            }
            Access::ReadWrite => {}
            Access::ReadOnly if write_sealed => {}
            Access::ReadOnly => ffi::add_seals(fd, libc::F_SEAL_FUTURE_WRITE)
                .map_err(os("fcntl(F_ADD_SEALS, F_SEAL_FUTURE_WRITE)"))?,
        }
        let fd = ffi::dup_cloexec(fd).map_err(os("fcntl(F_DUPFD_CLOEXEC)"))?;
        Ok(Share {
            fd,
            header: Header {
                size: self.size(),
                access,
                source: self.id(),
            },
        })
    }
}

impl Share {
    /// The access the share grants.
    pub fn access(&self) -> Access {
        self.header.access
    }

    /// Size of the shared Block in bytes (whole pages).
    pub fn size(&self) -> usize {
        self.header.size
    }

    /// The id of the shared Block in the process that shared it. Ids are per process: the
    /// importer's Block gets an id of its own.
    pub fn source_id(&self) -> u32 {
        self.header.source
    }

    /// Sends the share over `socket` as one message: the 24-byte header with the descriptor
    /// attached (`SCM_RIGHTS`). The share stays valid and can be sent again, to the same peer
    /// or another.
    ///
    /// The socket should be blocking: on a non-blocking one a full buffer is
    /// `Os { call: "sendmsg", errno: EAGAIN }`, and nothing was sent.
    ///
    /// # Errors
    ///
    /// [`Os`](MemError::Os) for `sendmsg`: `EPIPE` once the peer has closed its end (no
    /// `SIGPIPE` is raised), `EAGAIN`, `ETOOMANYREFS` (descriptors in flight exceed
    /// `RLIMIT_NOFILE`). `EINTR` is retried.
    pub fn send(&self, socket: &UnixStream) -> Result<(), MemError> {
        let bytes = self.header.encode();
        let sent = loop {
            match ffi::send_with_fd(socket.as_fd(), &bytes, self.fd.as_fd()) {
                Err(libc::EINTR) => continue,
                sent => break sent.map_err(os("sendmsg"))?,
            }
        };
        // A blocking Unix stream socket queues a message this small whole or not at all.
        if sent != bytes.len() {
            return Err(send_cut_short(sent, socket, &bytes));
        }
        Ok(())
    }

    /// Receives one share from `socket`: waits for one message, takes its descriptor
    /// (closed on exec, `MSG_CMSG_CLOEXEC`) and checks the header. The file itself is checked
    /// by the import ([`Block::import_read_only`](crate::Block::import_read_only)).
    ///
    /// Works on a socket with `SO_PASSCRED` or `SO_PASSPIDFD` set (a server authenticating
    /// its peer): the control room holds the credentials, the pidfd and the descriptor, and
    /// the pidfd, like every descriptor that is not the share's, is closed.
    ///
    /// On every error each descriptor that arrived is closed. After an error other than
    /// `Os`, the stream's framing is unknown: close the socket.
    ///
    /// # Errors
    ///
    /// - [`ShareClosed`](MemError::ShareClosed): end of stream, the peer closed or died;
    /// - [`ShareFds`](MemError::ShareFds): no descriptor, or more than one, or more than fit
    ///   (`MSG_CTRUNC`);
    /// - [`ShareHeader`](MemError::ShareHeader): not 24 bytes, wrong magic, bad access or
    ///   reserved byte, size zero, not whole pages or above `isize::MAX`;
    /// - [`ShareVersion`](MemError::ShareVersion): another version of the format;
    /// - [`Os`](MemError::Os) for `recvmsg` (`EAGAIN` on a non-blocking socket with nothing
    ///   to read, `EMFILE`). `EINTR` is retried.
    pub fn recv(socket: &UnixStream) -> Result<Share, MemError> {
        let mut bytes = [0u8; SHARE_HEADER_LEN];
        let received = loop {
            match ffi::recv_with_fds(socket.as_fd(), &mut bytes) {
                Err(libc::EINTR) => continue,
                received => break received.map_err(os("recvmsg"))?,
            }
        };
        // Descriptors of other control messages (a pidfd) are closed already.
        let ffi::Received {
            bytes: len,
            fds,
            control_truncated,
        } = received;
        if len == 0 && fds.is_empty() && !control_truncated {
            return Err(MemError::ShareClosed);
        }
        let fd = match <[OwnedFd; 1]>::try_from(fds) {
            Ok([fd]) if !control_truncated => fd,
            Ok(fds) => return Err(fd_count(fds.len(), true)),
            // `fds` is dropped here: every descriptor that arrived is closed.
            Err(fds) => return Err(fd_count(fds.len(), control_truncated)),
        };
        // On error `fd` is dropped, and closed, on return.
        let header = Header::decode(&bytes[..len])?;
        Ok(Share { fd, header })
    }

    /// Checks the file against the header before it is mapped with `map` access, in the
    /// order of the module docs: seals first (after them the size is final), then a regular
    /// file of exactly the header's size, a descriptor open for the access, a whole number
    /// of its huge pages if it is a hugetlb file, room for it where a holder could still
    /// punch holes, and every page held. Returns the file's identity (for the registry of
    /// files this process maps, `mapped.rs`) and its hugetlb page size, if any (`fstatfs`:
    /// `HUGETLBFS_MAGIC` and `f_bsize`).
    pub(super) fn check(&self, map: Access) -> Result<(Inode, Option<usize>), MemError> {
        let fd = self.fd.as_fd();
        let seals = match ffi::get_seals(fd) {
            Ok(seals) => seals,
            // EINVAL: not a file that supports seals (pipe, socket, device, directory,
            // a file on a disk); EBADF: an O_PATH descriptor, which allows neither.
            Err(libc::EINVAL | libc::EBADF) => return Err(not_memfd(fd)),
            Err(errno) => return Err(os("fcntl(F_GET_SEALS)")(errno)),
        };
        let write_seals = libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE;
        let mut missing = (libc::F_SEAL_SHRINK | libc::F_SEAL_GROW) & !seals;
        if self.header.access == Access::ReadOnly && seals & write_seals == 0 {
            missing |= libc::F_SEAL_FUTURE_WRITE;
        }
        if missing != 0 {
            return Err(MemError::ShareUnsealed {
                seals: seals as u32,
                missing: missing as u32,
            });
        }
        let write_sealed = seals & write_seals != 0;
        if map == Access::ReadWrite && write_sealed {
            return Err(MemError::NotWritable {
                id: self.header.source,
                sealed: true,
            });
        }
        // SHRINK and GROW are set: the size read now is the file's size for good.
        let stat = ffi::fstat(fd).map_err(os("fstat"))?;
        if !stat.is_regular() {
            return Err(MemError::ShareNotMemfd { mode: stat.mode });
        }
        let size = self.header.size as u64;
        let found = u64::try_from(stat.size).unwrap_or(0);
        if found != size {
            return Err(MemError::ShareSize {
                expected: self.header.size,
                found,
            });
        }
        let flags = ffi::get_fl(fd).map_err(os("fcntl(F_GETFL)"))?;
        let (readable, writable) = match flags & libc::O_ACCMODE {
            libc::O_RDWR => (true, true),
            libc::O_RDONLY => (true, false),
            libc::O_WRONLY => (false, true),
            _ => (false, false),
        };
        if !readable || (map == Access::ReadWrite && !writable) {
            return Err(MemError::ShareOpenMode {
                readable,
                writable,
                requested: map,
            });
        }
        let fs = ffi::fstatfs(fd).map_err(os("fstatfs"))?;
        let hugetlb_page = match fs.kind {
            ffi::HUGETLBFS_MAGIC => {
                let page = usize::try_from(fs.block_size).unwrap_or(0);
                if page == 0 || !page.is_power_of_two() || self.header.size % page != 0 {
                    return Err(MemError::ShareHeader {
                        len: SHARE_HEADER_LEN,
                        reason: "size is not a whole number of the file's huge pages",
                    });
                }
                Some(page)
            }
            _ => None,
        };
        if !write_sealed {
            // A holder may still punch holes: the worst this import can be made to allocate
            // is its whole size (`import.rs`, "Why the headroom check depends on the write
            // seal"). Checked before the pages, as `open` checks before anything.
            check_headroom(self.header.size)?;
        }
        let allocated = u64::try_from(stat.blocks).unwrap_or(0).saturating_mul(512);
        let hole = ffi::first_hole(fd).map_err(os("lseek(SEEK_HOLE)"))?;
        if allocated < size || hole < size {
            return Err(MemError::ShareSparse {
                size: self.header.size,
                allocated,
                hole: (hole < size).then_some(hole),
            });
        }
        let inode = Inode {
            dev: stat.dev,
            ino: stat.ino,
        };
        Ok((inode, hugetlb_page))
    }

    /// The descriptor and the size, for the import.
    pub(super) fn into_parts(self) -> (OwnedFd, usize) {
        (self.fd, self.header.size)
    }
}

/// The shared memfd (a duplicate of the owner's), as a raw descriptor: `AsRawFd`, not
/// `AsFd`, for the reason given on `Extent`'s impl (a borrowed descriptor would let safe
/// code write into bytes viewed elsewhere; procfs is outside that, as said there).
impl AsRawFd for Share {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("source", &self.header.source)
            .field("size", &self.header.size)
            .field("access", &self.header.access)
            .field("fd", &self.fd)
            .finish()
    }
}

/// `ShareNotMemfd` for a descriptor that does not take seals, with its file type
/// (`fstat` works on every descriptor, `O_PATH` ones included; 0 if even that fails).
#[cold]
fn not_memfd(fd: std::os::fd::BorrowedFd<'_>) -> MemError {
    let mode = ffi::fstat(fd).map_or(0, |stat| stat.mode);
    MemError::ShareNotMemfd { mode }
}

/// A message with `received` descriptors instead of one (all closed by the caller's drop).
#[cold]
fn fd_count(received: usize, truncated: bool) -> MemError {
    MemError::ShareFds {
        received,
        truncated,
    }
}

/// `sendmsg` queued only part of the header: finish the bytes so the stream stays framed,
/// and report it; the receiver sees a short header and closes the descriptor.
#[cold]
fn send_cut_short(sent: usize, socket: &UnixStream, bytes: &[u8]) -> MemError {
    let mut at = sent;
    while at < bytes.len() {
        match ffi::send(socket.as_fd(), &bytes[at..]) {
            Ok(n) if n > 0 => at += n,
            Err(libc::EINTR) => {}
            _ => break,
        }
    }
    MemError::Os {
        call: "sendmsg (header cut short)",
        errno: libc::EMSGSIZE,
    }
}

fn os(call: &'static str) -> impl Fn(i32) -> MemError {
    move |errno| MemError::Os { call, errno }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(access: Access) -> Header {
        Header {
            size: 3 * page_size(),
            access,
            source: 7,
        }
    }

    #[test]
    fn header_round_trips() {
        for access in [Access::ReadWrite, Access::ReadOnly] {
            let bytes = header(access).encode();
            assert_eq!(&bytes[..8], b"UNIMEMSH");
            assert_eq!(Header::decode(&bytes), Ok(header(access)));
        }
    }

    #[test]
    fn header_layout_is_fixed() {
        let bytes = header(Access::ReadOnly).encode();
        assert_eq!(bytes[8..10], [1, 0]);
        assert_eq!(bytes[10], 1);
        assert_eq!(bytes[11], 0);
        assert_eq!(bytes[12..16], [7, 0, 0, 0]);
        assert_eq!(
            u64::from_le_bytes(bytes[16..24].try_into().unwrap()),
            3 * page_size() as u64
        );
    }

    #[test]
    fn bad_headers_say_why() {
        let good = header(Access::ReadWrite).encode();
        let reason = |bytes: &[u8]| match Header::decode(bytes) {
            Err(MemError::ShareHeader { reason, len }) => {
                assert_eq!(len, bytes.len());
                reason
            }
            other => panic!("expected ShareHeader, got {other:?}"),
        };
        assert_eq!(reason(&good[..10]), "wrong length");
        assert_eq!(reason(&[]), "wrong length");
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(reason(&long), "wrong length");

        let with = |at: usize, value: u8| {
            let mut bytes = good;
            bytes[at] = value;
            bytes
        };
        assert_eq!(reason(&with(0, b'X')), "wrong magic");
        assert_eq!(reason(&with(10, 2)), "access byte is neither 0 nor 1");
        assert_eq!(reason(&with(11, 1)), "reserved byte is not 0");
        assert_eq!(
            Header::decode(&with(8, 2)),
            Err(MemError::ShareVersion {
                found: 2,
                expected: 1
            })
        );

        let sized = |size: u64| {
            let mut bytes = good;
            bytes[16..24].copy_from_slice(&size.to_le_bytes());
            bytes
        };
        assert_eq!(reason(&sized(0)), "size is zero");
        assert_eq!(
            reason(&sized(page_size() as u64 + 1)),
            "size is not a whole number of pages"
        );
        assert_eq!(reason(&sized(u64::MAX)), "size exceeds isize::MAX");
        assert!(Header::decode(&sized(page_size() as u64)).is_ok());
    }
}

//! `share_import`: a hostile sender, as real as one process can make it.
//!
//! Each input is a [`Case`]: a descriptor of some kind (a memfd of fuzzed size, with
//! fuzzed seals and written, allocated or missing pages; a memfd that cannot be sealed, a
//! hugetlb memfd, a tmpfs or disk file, a read-only or `O_PATH` reopening, a pipe, a
//! socket, `/dev/zero`, a directory, none, several), a header (built from fuzzed fields or
//! raw bytes), options on the receiving socket (`SO_PASSCRED`, `SO_PASSPIDFD`), changes
//! the sender makes to the file between `recv` and the import and after it, a second
//! import of the same file, a freeze, and one injected system-call failure
//! (`unimem::fault`). The target makes the descriptors with libc, sends them with the
//! header in one raw `sendmsg` (`SCM_RIGHTS`), closes its end (so `recv` never waits), then
//! runs [`Share::recv`] and [`Block::import`] or [`Block::import_read_only`] with
//! [`Pin::BestEffort`].
//!
//! What must hold, checked by [`run`]:
//!
//! - nothing panics, nothing faults (`SIGBUS`, `SIGSEGV`), nothing waits;
//! - an error's message is not empty;
//! - an import succeeds only for what the format and the spec allow: one descriptor, a
//!   well-formed header, a regular file sealed against shrinking and growing whose size is
//!   the header's, write-sealed for a read-only share, and not write-sealed for a
//!   read-write import; a second import of the same file never aliases a writable one;
//! - the bytes an import shows are the file's (page by page, first and last byte);
//! - an imported file cannot be resized, and a frozen one cannot be written;
//! - afterwards this process holds exactly the descriptors, locked memory and mappings
//!   it held before, and no more shared memory.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use unimem::{Block, MemError, Pin, ReadOnlyBlock, Share, fault};

use crate::input::Reader;
use crate::proc::{Held, page};

/// The name of every memfd the target makes: its mappings show as `/memfd:unimem-fuzz`.
pub const NAME: &str = "unimem-fuzz";
/// The largest file: 64 MiB.
pub const MAX_BYTES: usize = 64 << 20;
/// Disk files stay small (1 MiB): writing them is slow.
const MAX_DISK_BYTES: usize = 1 << 20;

/// `SO_PASSPIDFD` (asm-generic/socket.h, Linux 6.5): a pidfd of the sender with every
/// message. Not in the libc crate yet.
const SO_PASSPIDFD: libc::c_int = 76;

/// The descriptor (or descriptors) sent with the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A memfd that allows sealing: the real thing, if the rest is right.
    Memfd,
    /// A memfd made without `MFD_ALLOW_SEALING` (its seals are `F_SEAL_SEAL`).
    MemfdNoSealing,
    /// A hugetlb memfd (no huge pages are reserved on most machines).
    MemfdHuge,
    /// A regular file on tmpfs (`/dev/shm`, `O_TMPFILE`): shmem, but not sealable.
    Tmpfs,
    /// A regular file on the disk (`O_TMPFILE` in the temporary directory).
    Disk,
    /// The memfd reopened `O_RDONLY` through `/proc/self/fd`.
    ReopenReadOnly,
    /// The memfd reopened `O_PATH`: `fstat` works, `fcntl(F_GET_SEALS)` does not.
    OPath,
    /// The read end of a pipe.
    Pipe,
    /// One end of a Unix socket pair.
    Socket,
    /// `/dev/zero`, read-write.
    DevZero,
    /// `/`, a directory.
    Directory,
    /// The header alone.
    NoFd,
    /// The memfd twice in one message.
    Twice,
    /// The memfd 3 to 8 times in one message.
    Many(u8),
    /// The memfd and a pipe in one message.
    MemfdAndPipe,
}

impl Kind {
    fn decode(r: &mut Reader) -> Kind {
        match r.choose(16) {
            0..=1 => Kind::Memfd,
            2 => Kind::MemfdNoSealing,
            3 => Kind::MemfdHuge,
            4 => Kind::Tmpfs,
            5 => Kind::Disk,
            6 => Kind::ReopenReadOnly,
            7 => Kind::OPath,
            8 => Kind::Pipe,
            9 => Kind::Socket,
            10 => Kind::DevZero,
            11 => Kind::Directory,
            12 => Kind::NoFd,
            13 => Kind::Twice,
            14 => Kind::Many(3 + r.choose(6)),
            _ => Kind::MemfdAndPipe,
        }
    }

    /// Whether the target makes a file of the case's size, fill and seals.
    fn has_file(self) -> bool {
        !matches!(
            self,
            Kind::Pipe | Kind::Socket | Kind::DevZero | Kind::Directory | Kind::NoFd
        )
    }
}

/// A run of pages, and how to put data there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First page.
    pub first: u32,
    /// Pages.
    pub pages: u32,
    /// `pwrite` a pattern (true) or `fallocate` zeros (false).
    pub write: bool,
}

impl Span {
    fn decode(r: &mut Reader, max_pages: u32) -> Span {
        let shape = r.u8();
        let first = r.u16() as u32 % max_pages.max(1);
        let pages = match shape % 4 {
            0 => max_pages - first,
            1 => 1,
            _ => (r.u16() as u32 % 64).min(max_pages - first),
        }
        .max(1);
        Span {
            first,
            pages,
            write: shape & 0x80 == 0,
        }
    }
}

/// What the sender does to the file through its own descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Writes (or allocates) pages.
    Fill(Span),
    /// Punches a hole (`FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`).
    Punch(Span),
    /// `ftruncate` to this many bytes.
    Truncate(u64),
    /// Adds seals (bits as [`Case::seals`]).
    Seal(u8),
}

impl Change {
    fn decode(r: &mut Reader, size: u64, max_pages: u32) -> Change {
        match r.choose(4) {
            0 => Change::Fill(Span::decode(r, max_pages)),
            1 => Change::Punch(Span::decode(r, max_pages)),
            2 => Change::Truncate(match r.choose(4) {
                0 => 0,
                1 => size.saturating_sub(page() as u64),
                2 => size + page() as u64,
                _ => r.u32() as u64 % (MAX_BYTES as u64 + 1),
            }),
            _ => Change::Seal(r.u8()),
        }
    }
}

/// How the header is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// Raw bytes, up to 48.
    Raw(Vec<u8>),
    /// The format's fields, each possibly wrong, cut or padded to `len` bytes.
    Built {
        /// The magic is right.
        magic: bool,
        /// The version (1 is right).
        version: u16,
        /// The access byte (0 read-write, 1 read-only, anything else is wrong).
        access: u8,
        /// The reserved byte (0 is right).
        reserved: u8,
        /// The source id (anything goes).
        source: u32,
        /// The size claimed.
        size: Claim,
        /// Bytes sent: 24 is right; shorter cuts the header, longer pads it with zeros.
        len: u8,
    },
}

/// The size a header claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The file's size.
    Exact,
    /// The file's size plus this many pages.
    More(u16),
    /// The file's size less this many pages (at least 0).
    Fewer(u16),
    /// Any number.
    Bytes(u64),
}

impl Header {
    fn decode(r: &mut Reader) -> Header {
        if r.choose(8) == 7 {
            let len = r.choose(49) as usize;
            return Header::Raw(r.bytes(len).to_vec());
        }
        let magic = r.choose(16) != 15;
        let version = if r.choose(8) == 7 { r.u16() } else { 1 };
        let access = match r.choose(8) {
            0..=2 => 0,
            3..=6 => 1,
            _ => r.u8(),
        };
        let reserved = if r.choose(16) == 15 { r.u8() } else { 0 };
        let source = r.u32();
        let size = match r.choose(8) {
            0..=4 => Claim::Exact,
            5 => Claim::More(r.u16() % 4 + 1),
            6 => Claim::Fewer(r.u16() % 4 + 1),
            _ => Claim::Bytes(r.u64()),
        };
        let len = if r.choose(8) == 7 { r.choose(49) } else { 24 };
        Header::Built {
            magic,
            version,
            access,
            reserved,
            source,
            size,
            len,
        }
    }

    /// The bytes sent for a file of `file_size` bytes.
    fn bytes(&self, file_size: u64) -> Vec<u8> {
        match self {
            Header::Raw(bytes) => bytes.clone(),
            Header::Built {
                magic,
                version,
                access,
                reserved,
                source,
                size,
                len,
            } => {
                let page = page() as u64;
                let size = match *size {
                    Claim::Exact => file_size,
                    Claim::More(n) => file_size + n as u64 * page,
                    Claim::Fewer(n) => file_size.saturating_sub(n as u64 * page),
                    Claim::Bytes(n) => n,
                };
                let mut h = Vec::with_capacity(48);
                h.extend_from_slice(if *magic { b"UNIMEMSH" } else { b"UNIMEMSX" });
                h.extend_from_slice(&version.to_le_bytes());
                h.push(*access);
                h.push(*reserved);
                h.extend_from_slice(&source.to_le_bytes());
                h.extend_from_slice(&size.to_le_bytes());
                h.resize(*len as usize, 0);
                h
            }
        }
    }
}

/// Which import, and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// [`Block::import`].
    ReadWrite,
    /// [`Block::import_read_only`].
    ReadOnly,
}

impl Mode {
    fn decode(r: &mut Reader) -> Mode {
        if r.choose(2) == 0 {
            Mode::ReadWrite
        } else {
            Mode::ReadOnly
        }
    }
}

/// One system call made to fail once, by name (`unimem::fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The call, as `fault!` names it.
    pub call: &'static str,
    /// Which call from the start of the run (1 is the first).
    pub nth: u64,
    /// The errno it returns.
    pub errno: i32,
}

/// Calls the receive and import paths make, whose failure must release everything. Not
/// `munmap`/`munlock` (drops ignore their failure, which the kernel never reports for a
/// range it mapped) nor `mmap(MAP_FIXED)` (a failed replacement leaves a range that is
/// never touched again, on purpose: `freeze.rs`).
const FAULT_CALLS: [&str; 8] = [
    "recvmsg",
    "fstat",
    "fcntl(F_GET_SEALS)",
    "fcntl(F_ADD_SEALS)",
    "mmap",
    "mlock2",
    "madvise(MADV_POPULATE_READ)",
    "mlock",
];

const FAULT_ERRNOS: [i32; 8] = [
    libc::ENOMEM,
    libc::EAGAIN,
    libc::EPERM,
    libc::EINVAL,
    libc::EIO,
    libc::ENOSYS,
    libc::EBADF,
    libc::EINTR,
];

/// One fuzz input, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// What is sent.
    pub kind: Kind,
    /// The file's size: whole pages ...
    pub pages: u32,
    /// ... and this many bytes more (a size that is not whole pages), below a page.
    pub tail: u16,
    /// Pages written or allocated before sealing; the rest are holes.
    pub fill: Vec<Span>,
    /// Seals added after the fill: bit 0 `SHRINK`, 1 `GROW`, 2 `WRITE`, 3 `FUTURE_WRITE`,
    /// 4 `SEAL`, 5 `EXEC`.
    pub seals: u8,
    /// The header.
    pub header: Header,
    /// Options of the receiving socket: bit 0 `SO_PASSCRED`, bit 1 `SO_PASSPIDFD`.
    pub socket: u8,
    /// Changes between `recv` and the import.
    pub before: Vec<Change>,
    /// The import.
    pub mode: Mode,
    /// Changes while the import is mapped.
    pub after: Vec<Change>,
    /// Freeze the import (`Block::freeze`, `ReadOnlyBlock::freeze`).
    pub freeze: bool,
    /// A second message with the same header and descriptors, imported next to the first.
    pub second: Option<Mode>,
    /// A system call made to fail.
    pub fault: Option<Fault>,
}

impl Case {
    /// Decodes any bytes. Zeros (and the end of the input) choose the plain case at every
    /// step: a sealed read-write memfd, a right header, no socket option, no second import,
    /// no freeze, no injected failure.
    pub fn decode(data: &[u8]) -> Case {
        let r = &mut Reader::new(data);
        let kind = Kind::decode(r);
        let max_bytes = if kind == Kind::Disk {
            MAX_DISK_BYTES
        } else {
            MAX_BYTES
        };
        let max_pages = (max_bytes / page()) as u32;
        let pages = match r.choose(16) {
            0..=11 => r.choose(17) as u32,
            12..=14 => r.u16() as u32 % 1025,
            _ => r.u16() as u32 % (max_pages + 1),
        }
        .min(max_pages);
        let tail = if r.choose(16) == 15 {
            r.u16() % page() as u16
        } else {
            0
        };
        let size = pages as u64 * page() as u64 + tail as u64;
        let fill = (0..r.choose(4)).map(|_| Span::decode(r, pages)).collect();
        let seals = match r.choose(4) {
            1 => 0b1011, // SHRINK | GROW | FUTURE_WRITE: a read-only share
            3 => r.u8(),
            _ => 0b11, // SHRINK | GROW: a read-write share
        };
        let header = Header::decode(r);
        let socket = if r.choose(4) == 3 { r.choose(4) } else { 0 };
        let before = (0..r.choose(8).saturating_sub(5))
            .map(|_| Change::decode(r, size, max_pages))
            .collect();
        let mode = Mode::decode(r);
        let after = (0..r.choose(4))
            .map(|_| Change::decode(r, size, max_pages))
            .collect();
        let freeze = r.choose(4) == 3;
        let second = match r.choose(6) {
            4 => Some(Mode::ReadWrite),
            5 => Some(Mode::ReadOnly),
            _ => None,
        };
        let fault = (r.choose(4) == 3).then(|| Fault {
            call: FAULT_CALLS[r.choose(8) as usize],
            nth: 1 + r.choose(3) as u64,
            errno: FAULT_ERRNOS[r.choose(8) as usize],
        });
        Case {
            kind,
            pages,
            tail,
            fill,
            seals,
            header,
            socket,
            before,
            mode,
            after,
            freeze,
            second,
            fault,
        }
    }
}

/// What one run did: for the seeds' tests and for reading a crash.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `Share::recv` of the first message succeeded.
    pub received: bool,
    /// The first import succeeded.
    pub imported: bool,
    /// The first import ended frozen.
    pub frozen: bool,
    /// The second import succeeded.
    pub second: bool,
    /// Errors, as displayed.
    pub errors: Vec<String>,
}

/// Runs one input and checks that the process holds afterwards what it held before.
pub fn run(data: &[u8]) -> Outcome {
    let case = Case::decode(data);
    let before = Held::now(NAME);
    let outcome = run_case(&case);
    fault::reset();
    let after = Held::now(NAME);
    assert_eq!(
        after.fds, before.fds,
        "descriptors leaked: {case:#?}\n{outcome:#?}"
    );
    assert_eq!(
        after.locked_kb, before.locked_kb,
        "locked memory left behind: {case:#?}\n{outcome:#?}"
    );
    assert_eq!(
        after.mappings, before.mappings,
        "mappings left behind: {case:#?}\n{outcome:#?}"
    );
    // Resident shared memory may be summed from per-CPU counters: allow their slack, far
    // below any file the target makes. Against the first run's figure, so that small
    // leaks add up to a failure.
    static BASELINE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let baseline = *BASELINE.get_or_init(|| before.shmem_kb);
    assert!(
        after.shmem_kb <= baseline + SHMEM_SLACK_KB,
        "shared memory left mapped: {baseline} kB at first, {} kB now: {case:#?}\n{outcome:#?}",
        after.shmem_kb
    );
    outcome
}

/// See [`run`].
const SHMEM_SLACK_KB: u64 = 256;

/// The file the sender keeps, and what it knows of its bytes.
struct File {
    fd: OwnedFd,
    /// Bytes, as far as the sender knows.
    size: u64,
    /// The first and the last byte of each page (0 for a hole).
    first: Vec<u8>,
    last: Vec<u8>,
    /// False once a change may have done part of what it asked: contents unknown.
    exact: bool,
    /// Salt of the next fill, so each fill writes other bytes.
    salt: u8,
}

fn run_case(case: &Case) -> Outcome {
    let mut out = Outcome::default();
    let page = page();
    let size = case.pages as u64 * page as u64 + case.tail as u64;
    let mut file = case
        .kind
        .has_file()
        .then(|| make_file(case, size))
        .flatten();
    let file_size = file.as_ref().map_or(size, |f| f.size);
    let header = case.header.bytes(file_size);

    // What goes in the message, kept open until it is sent.
    let mut extra: Vec<OwnedFd> = Vec::new();
    let mut fds: Vec<RawFd> = Vec::new();
    let main = file.as_ref().map(|f| f.fd.as_raw_fd());
    match case.kind {
        Kind::ReopenReadOnly | Kind::OPath => {
            let flags = if case.kind == Kind::OPath {
                libc::O_PATH
            } else {
                libc::O_RDONLY
            };
            if let Some(fd) = main.and_then(|fd| reopen(fd, flags)) {
                fds.push(fd.as_raw_fd());
                extra.push(fd);
            }
        }
        Kind::Pipe | Kind::MemfdAndPipe => {
            fds.extend(main);
            if let Some((read, write)) = pipe() {
                fds.push(read.as_raw_fd());
                extra.extend([read, write]);
            }
        }
        Kind::Socket => {
            if let Ok((a, b)) = UnixStream::pair() {
                fds.push(a.as_raw_fd());
                extra.extend([OwnedFd::from(a), OwnedFd::from(b)]);
            }
        }
        Kind::DevZero => fds.extend(open_path(c"/dev/zero", libc::O_RDWR, &mut extra)),
        Kind::Directory => fds.extend(open_path(c"/", libc::O_DIRECTORY, &mut extra)),
        Kind::NoFd => {}
        Kind::Twice => fds.extend(main.into_iter().chain(main)),
        Kind::Many(n) => fds.extend(main.into_iter().cycle().take(n as usize)),
        Kind::Memfd | Kind::MemfdNoSealing | Kind::MemfdHuge | Kind::Tmpfs | Kind::Disk => {
            fds.extend(main)
        }
    }

    let Ok((sender, receiver)) = UnixStream::pair() else {
        return out;
    };
    for (bit, option) in [(1, libc::SO_PASSCRED), (2, SO_PASSPIDFD)] {
        if case.socket & bit != 0 && !(option == SO_PASSPIDFD && known("pidfd")) {
            set_option(&receiver, option);
        }
    }
    send_raw(&sender, &header, &fds);
    if case.second.is_some() {
        send_raw(&sender, &header, &fds);
    }
    // The receiver reads the end of the stream after the messages: it never waits.
    drop(sender);
    drop(extra);

    if let Some(f) = case.fault {
        fault::fail(f.call, f.nth, f.errno);
    }
    let share = match Share::recv(&receiver) {
        Ok(share) => share,
        Err(err) => {
            out.errors.push(said(&err));
            return out;
        }
    };
    out.received = true;
    assert_eq!(
        fds.len(),
        1,
        "a share was received from {} descriptors",
        fds.len()
    );
    // A stream has no message boundaries but the descriptor's: the share is the first 24
    // bytes; what follows stays in the stream.
    let header = &header[..header.len().min(24)];
    assert!(
        valid_header(header),
        "a share was received with header {header:02x?}"
    );
    let claimed = share.size() as u64;

    if let Some(file) = file.as_mut() {
        for change in &case.before {
            apply(file, *change, false);
        }
    }

    let held_blocks = file.as_ref().map(|f| blocks(f.fd.as_raw_fd()));
    let first = import(share, case.mode);
    let first = match first {
        Ok(first) => first,
        Err(err) => {
            out.errors.push(said(&err));
            return out;
        }
    };
    out.imported = true;
    let file = file
        .as_mut()
        .unwrap_or_else(|| panic!("{:?} was imported", case.kind));
    imported_rightly(case, file, header, claimed, first.size());
    // An importer never allocates what the owner did not: the file holds the same blocks.
    let now = blocks(file.fd.as_raw_fd());
    assert!(
        held_blocks == Some(now) || known("sparse"),
        "the import allocated the file's holes: {held_blocks:?} blocks before, {now} after"
    );
    check_bytes(file, &first);

    for change in &case.after {
        apply(file, *change, true);
        check_bytes(file, &first);
    }

    let first = if case.freeze {
        match first.freeze() {
            Ok(frozen) => {
                assert!(
                    frozen.is_frozen(),
                    "a freeze returned a Block that is not frozen"
                );
                out.frozen = true;
                check_bytes(file, &frozen);
                apply(file, Change::Fill(whole(file)), true);
                apply(file, Change::Punch(whole(file)), true);
                check_bytes(file, &frozen);
                frozen
            }
            Err(err) => {
                // The import is dropped on an error.
                out.errors.push(said(&err));
                return out;
            }
        }
    } else {
        first
    };

    if let Some(mode) = case.second {
        match Share::recv(&receiver).and_then(|share| import(share, mode)) {
            Ok(second) => {
                out.second = true;
                let writable = |i: &Imported| matches!(i, Imported::ReadWrite(_));
                assert!(
                    !writable(&first) && !writable(&second),
                    "one file imported twice, one of them writable: {:?} next to {:?}",
                    second.describe(),
                    first.describe()
                );
                check_bytes(file, &second);
            }
            Err(err) => out.errors.push(said(&err)),
        }
    }
    drop(first);
    out
}

/// An import of either kind.
enum Imported {
    ReadWrite(Block),
    ReadOnly(ReadOnlyBlock),
}

impl Imported {
    fn size(&self) -> usize {
        match self {
            Imported::ReadWrite(b) => b.size(),
            Imported::ReadOnly(b) => b.size(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Imported::ReadWrite(b) => format!("{b:?}"),
            Imported::ReadOnly(b) => format!("{b:?}"),
        }
    }

    fn is_frozen(&self) -> bool {
        match self {
            Imported::ReadWrite(b) => b.is_frozen(),
            Imported::ReadOnly(b) => b.is_frozen(),
        }
    }

    /// The bytes. The one place the target reads an import, so that a change of the views'
    /// API touches one line. Nothing writes the file while the slice lives: this thread is
    /// the only writer. A read-only import that is not frozen has no view (`NotFrozen`): its
    /// bytes are copied out with `read_into`, the route that is sound while others write.
    fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Imported::ReadWrite(b) => std::borrow::Cow::Borrowed(b.as_bytes()),
            Imported::ReadOnly(b) => match b.as_bytes() {
                Ok(bytes) => std::borrow::Cow::Borrowed(bytes),
                Err(MemError::NotFrozen { .. }) => {
                    let mut copy = vec![0u8; b.size()];
                    b.read_into(0, &mut copy)
                        .expect("read_into of the whole Block");
                    std::borrow::Cow::Owned(copy)
                }
                Err(err) => panic!("a view of a read-only import refused: {err}"),
            },
        }
    }

    fn freeze(self) -> Result<Imported, MemError> {
        match self {
            Imported::ReadWrite(b) => b.freeze().map(Imported::ReadOnly),
            Imported::ReadOnly(mut b) => b.freeze().map(|()| Imported::ReadOnly(b)),
        }
    }
}

fn import(share: Share, mode: Mode) -> Result<Imported, MemError> {
    match mode {
        // SAFETY: this process is the only one that holds the file, and this thread its
        // only writer, which writes through the descriptor only while no view is alive.
        Mode::ReadWrite => {
            unsafe { Block::import(share, Pin::BestEffort) }.map(Imported::ReadWrite)
        }
        Mode::ReadOnly => Block::import_read_only(share, Pin::BestEffort).map(Imported::ReadOnly),
    }
}

/// An error's message, which must say something.
fn said(err: &MemError) -> String {
    let _ = err.kind();
    let text = err.to_string();
    assert!(!text.is_empty(), "{err:?} displays as nothing");
    text
}

/// Whether `h` is a header the format accepts (`specs/share.md`).
fn valid_header(h: &[u8]) -> bool {
    if h.len() != 24 || &h[..8] != b"UNIMEMSH" || h[8..10] != [1, 0] || h[10] > 1 || h[11] != 0 {
        return false;
    }
    let size = u64::from_le_bytes(h[16..24].try_into().unwrap());
    size != 0 && size % page() as u64 == 0 && size <= isize::MAX as u64
}

/// A successful import: check it against the file as the sender sees it now.
fn imported_rightly(case: &Case, file: &File, header: &[u8], claimed: u64, mapped: usize) {
    assert!(
        matches!(
            case.kind,
            Kind::Memfd | Kind::MemfdHuge | Kind::ReopenReadOnly
        ),
        "{:?} was imported",
        case.kind
    );
    let seals = seals(file.fd.as_raw_fd());
    let resize = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
    assert_eq!(
        seals & resize,
        resize,
        "imported a file not sealed against resizing: {seals:#x}"
    );
    assert_eq!(
        mapped as u64, claimed,
        "the import maps another size than the header's"
    );
    let size = file_size(file.fd.as_raw_fd());
    assert_eq!(
        size, claimed,
        "the import maps {claimed} bytes of a {size}-byte file"
    );
    let write_sealed = seals & (libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE) != 0;
    match case.mode {
        Mode::ReadWrite => {
            assert_eq!(header[10], 0, "a read-only share was imported read-write");
            assert!(!write_sealed, "a write-sealed file was imported read-write");
        }
        Mode::ReadOnly if header[10] == 1 => {
            assert!(
                write_sealed,
                "a read-only share without a write seal was imported"
            );
        }
        Mode::ReadOnly => {}
    }
}

/// Compares the import's bytes with what the sender wrote: first and last byte of each
/// page.
fn check_bytes(file: &File, import: &Imported) {
    if !file.exact {
        return;
    }
    let bytes = import.bytes();
    let page = page();
    for p in 0..bytes.len() / page {
        let (first, last) = (bytes[p * page], bytes[p * page + page - 1]);
        let (want_first, want_last) = (file.first[p], file.last[p]);
        assert!(
            (first, last) == (want_first, want_last),
            "page {p} of the import reads {first:#x}..{last:#x}, the file holds \
             {want_first:#x}..{want_last:#x} (frozen: {})",
            import.is_frozen()
        );
    }
}

/// The whole file as a span.
fn whole(file: &File) -> Span {
    Span {
        first: 0,
        pages: (file.size / page() as u64) as u32,
        write: true,
    }
}

/// Makes the file of a case: created, sized, filled, sealed. `None` if it cannot be made
/// here (no `/dev/shm`, say).
fn make_file(case: &Case, size: u64) -> Option<File> {
    let fd = match case.kind {
        Kind::Tmpfs => open_tmpfile(c"/dev/shm")?,
        Kind::Disk => {
            let dir = std::env::temp_dir();
            let dir = std::ffi::CString::new(dir.into_os_string().into_encoded_bytes()).ok()?;
            open_tmpfile(&dir)?
        }
        Kind::MemfdNoSealing => memfd(libc::MFD_CLOEXEC)?,
        Kind::MemfdHuge => memfd(libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_HUGETLB)?,
        _ => memfd(libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)?,
    };
    let pages = MAX_BYTES / page() + 1;
    let mut file = File {
        fd,
        size: 0,
        first: vec![0; pages],
        last: vec![0; pages],
        exact: true,
        salt: 0,
    };
    apply(&mut file, Change::Truncate(size), false);
    for span in &case.fill {
        apply(&mut file, Change::Fill(*span), false);
    }
    apply(&mut file, Change::Seal(case.seals), false);
    Some(file)
}

/// Applies a change through the sender's descriptor and keeps the model of the bytes.
/// With `mapped`, an import of the file is alive: resizing must be refused, and so must
/// writing once a write seal is set.
fn apply(file: &mut File, change: Change, mapped: bool) {
    let fd = file.fd.as_raw_fd();
    let page = page();
    let write_sealed = seals(fd) & (libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE) != 0;
    match change {
        Change::Fill(span) if span.write => {
            // Each page is filled with its tag, which repeats every 256 pages: one buffer
            // of 256 tagged pages serves any span, a `pwrite` per 256 pages.
            file.salt = file.salt.wrapping_add(1);
            let salt = file.salt;
            let buf = tagged_pages(salt);
            let (start, end) = (span.first as usize, (span.first + span.pages) as usize);
            let mut p = start;
            while p < end {
                let run = (end - p).min(256 - p % 256);
                let from = &buf[(p % 256) * page..][..run * page];
                // SAFETY: `from` is a live buffer of `run` pages; pwrite only reads it.
                let n = unsafe {
                    libc::pwrite(
                        fd,
                        from.as_ptr().cast(),
                        from.len(),
                        (p * page) as libc::off_t,
                    )
                };
                if n > 0 && mapped && write_sealed {
                    panic!("wrote to an imported file that is sealed against writing");
                }
                if n == from.len() as isize {
                    for q in p..p + run {
                        file.first[q] = tag(q, salt);
                        file.last[q] = tag(q, salt);
                    }
                    file.size = file.size.max(((p + run) * page) as u64);
                } else {
                    if n >= 0 {
                        file.exact = false;
                    } else if mapped && write_sealed {
                        assert_eq!(errno(), libc::EPERM, "pwrite to a write-sealed file");
                    }
                    break;
                }
                p += run;
            }
        }
        Change::Fill(span) => {
            let (off, len) = span_bytes(span);
            // SAFETY: fallocate on a descriptor this function borrows.
            let r = unsafe { libc::fallocate(fd, 0, off, len) };
            if r == 0 {
                // Allocating keeps written bytes and makes holes zeros: the model stands;
                // past the end it grows the file.
                file.size = file.size.max((off + len) as u64);
            }
        }
        Change::Punch(span) => {
            let (off, len) = span_bytes(span);
            let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
            // SAFETY: fallocate on a descriptor this function borrows.
            let r = unsafe { libc::fallocate(fd, mode, off, len) };
            if r == 0 {
                assert!(
                    !(mapped && write_sealed),
                    "punched a hole in a write-sealed import"
                );
                for p in span.first as usize..(span.first + span.pages) as usize {
                    file.first[p] = 0;
                    file.last[p] = 0;
                }
            }
        }
        Change::Truncate(bytes) => {
            let bytes = bytes.min(MAX_BYTES as u64);
            let old = file_size(fd);
            // SAFETY: ftruncate on a descriptor this function borrows.
            let r = unsafe { libc::ftruncate(fd, bytes as libc::off_t) };
            if r == 0 {
                assert!(
                    !mapped || bytes == old,
                    "resized an imported file from {old} to {bytes} bytes"
                );
                // Bytes past the new end are gone (zeros if the file grows again).
                let keep = bytes as usize;
                file.first[keep.div_ceil(page)..].fill(0);
                file.last[keep / page..].fill(0);
                file.size = bytes;
            }
        }
        Change::Seal(bits) => {
            let all = [
                libc::F_SEAL_SHRINK,
                libc::F_SEAL_GROW,
                libc::F_SEAL_WRITE,
                libc::F_SEAL_FUTURE_WRITE,
                libc::F_SEAL_SEAL,
                0x20, // F_SEAL_EXEC (Linux 6.3)
            ];
            let seals = all
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .fold(0, |acc, (_, s)| acc | s);
            if seals != 0 {
                // SAFETY: fcntl on a descriptor this function borrows. F_SEAL_SEAL last, so
                // that it does not stop the others.
                unsafe {
                    libc::fcntl(fd, libc::F_ADD_SEALS, seals & !libc::F_SEAL_SEAL);
                    libc::fcntl(fd, libc::F_ADD_SEALS, seals & libc::F_SEAL_SEAL);
                }
            }
        }
    }
}

/// 256 pages, page `j` filled with `tag(j, salt)`: made once per salt (there are 256) and
/// kept, so that fills cost the kernel's copy and nothing more.
fn tagged_pages(salt: u8) -> std::rc::Rc<Vec<u8>> {
    thread_local! {
        static MADE: std::cell::RefCell<Vec<Option<std::rc::Rc<Vec<u8>>>>> =
            std::cell::RefCell::new(vec![None; 256]);
    }
    MADE.with_borrow_mut(|made| {
        made[salt as usize]
            .get_or_insert_with(|| {
                let page = page();
                let mut buf = vec![0u8; 256 * page];
                for (j, tagged) in buf.chunks_exact_mut(page).enumerate() {
                    tagged.fill(tag(j, salt));
                }
                std::rc::Rc::new(buf)
            })
            .clone()
    })
}

fn span_bytes(span: Span) -> (libc::off_t, libc::off_t) {
    let page = page() as libc::off_t;
    (
        span.first as libc::off_t * page,
        span.pages as libc::off_t * page,
    )
}

/// The byte a fill writes in page `p`: never 0, so a hole reads differently.
fn tag(p: usize, salt: u8) -> u8 {
    ((p % 256) as u8)
        .wrapping_mul(131)
        .wrapping_add(salt.wrapping_mul(17))
        | 1
}

fn seals(fd: RawFd) -> libc::c_int {
    // SAFETY: fcntl on an open descriptor.
    unsafe { libc::fcntl(fd, libc::F_GET_SEALS) }.max(0)
}

/// `st_blocks`: 512-byte units the file holds (its pages, not its holes).
fn blocks(fd: RawFd) -> u64 {
    // SAFETY: an all-zero stat is a valid buffer; fstat fills it.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return u64::MAX;
        }
        st.st_blocks as u64
    }
}

fn file_size(fd: RawFd) -> u64 {
    // SAFETY: an all-zero stat is a valid buffer; fstat fills it.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return u64::MAX;
        }
        st.st_size as u64
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn owned(fd: libc::c_int) -> Option<OwnedFd> {
    // SAFETY: `fd` was just returned by a call that creates a descriptor, owned by nobody.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn memfd(flags: libc::c_uint) -> Option<OwnedFd> {
    let name = std::ffi::CString::new(NAME).unwrap();
    // SAFETY: memfd_create with a NUL-terminated name.
    owned(unsafe { libc::memfd_create(name.as_ptr(), flags) })
}

fn open_tmpfile(dir: &std::ffi::CStr) -> Option<OwnedFd> {
    // SAFETY: open with a NUL-terminated path and a mode.
    owned(unsafe {
        libc::open(
            dir.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    })
}

fn open_path(path: &std::ffi::CStr, flags: libc::c_int, keep: &mut Vec<OwnedFd>) -> Option<RawFd> {
    // SAFETY: open with a NUL-terminated path.
    let fd = owned(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })?;
    let raw = fd.as_raw_fd();
    keep.push(fd);
    Some(raw)
}

fn reopen(fd: RawFd, flags: libc::c_int) -> Option<OwnedFd> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).unwrap();
    // SAFETY: open with a NUL-terminated path.
    owned(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })
}

fn pipe() -> Option<(OwnedFd, OwnedFd)> {
    let mut ends = [0; 2];
    // SAFETY: pipe2 writes two descriptors into a live array.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    Some((owned(ends[0])?, owned(ends[1])?))
}

fn set_option(socket: &UnixStream, option: libc::c_int) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads an int from a live local.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Whether `UNIMEM_FUZZ_KNOWN` (a comma-separated list) names `bug`: a known, open bug whose
/// check is left out, to look for other failures meanwhile. Off by default, never set by CI.
///
/// - `pidfd`: `SO_PASSPIDFD` is not set (issue 11: `Share::recv` leaves the `SCM_PIDFD`
///   descriptor open);
/// - `sparse`: an import may allocate pages the file did not hold (issue 11: a sparse file
///   is populated by the importer).
fn known(bug: &str) -> bool {
    static KNOWN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KNOWN
        .get_or_init(|| std::env::var("UNIMEM_FUZZ_KNOWN").unwrap_or_default())
        .split(',')
        .any(|b| b == bug)
}

/// Sends `bytes` with `fds` attached in one `sendmsg`, as a hostile peer would: no checks.
fn send_raw(socket: &UnixStream, bytes: &[u8], fds: &[RawFd]) {
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the control buffer is aligned, holds up to 8
    // descriptors (the most a case sends) and lives through the call, which only reads it.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            let payload = size_of_val(fds) as u32;
            let space = libc::CMSG_SPACE(payload) as usize;
            assert!(space <= size_of_val(&control));
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<libc::c_int>(),
                fds.len(),
            );
        }
        libc::sendmsg(
            socket.as_raw_fd(),
            &msg,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        );
    }
}

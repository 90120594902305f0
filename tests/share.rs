//! Sharing a Block between processes: imports in one process (of a file it maps no other
//! way, or only read-only), the aliasing imports refused there, then round trips and every
//! fault with a real child process (this test binary re-executed, holding a socket to the
//! parent as its standard input): resizing peers, read-only peers that try to write, a peer
//! that dies, an owner that leaves, garbage on the socket, and a peer running as another
//! user.

#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;

use common::{
    Peer, ack, errno, holds, is_child, parent_socket, pattern, refused_to_write, wait_ack,
};
use unimem::{Access, Block, MemError, Pin, ReadOnlyBlock, Share, Tape, page_size};

const MIB: usize = 1 << 20;

fn fill(block: &mut Block, salt: u64) {
    common::fill(block.as_slice_mut(), salt);
}

fn owner(size: usize, salt: u64) -> Block {
    owner_named("unimem-share-test", size, salt)
}

fn owner_named(name: &str, size: usize, salt: u64) -> Block {
    let mut block = Block::builder(size).name(name).open().unwrap();
    fill(&mut block, salt);
    block
}

/// Every word of a read-only import, copied out (sound whether or not it is frozen).
fn words(block: &ReadOnlyBlock) -> Vec<u64> {
    let mut words = vec![0u64; block.size() / 8];
    block.read_into(0, &mut words).unwrap();
    words
}

/// Sends `share` over a fresh socket pair and receives it again.
fn through_socket(share: &Share) -> Share {
    let (here, there) = UnixStream::pair().unwrap();
    share.send(&here).unwrap();
    Share::recv(&there).unwrap()
}

fn file_size(fd: RawFd) -> i64 {
    // SAFETY: fstat writes one stat into a live local; `fd` is open for the borrow.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        assert_eq!(libc::fstat(fd, &mut stat), 0);
        stat.st_size
    }
}

// ---------------------------------------------------------------------------------------
// In one process. An import here is of a file this process maps in no other way (its
// owner dropped; a share keeps the memory alive), or only read-only (its owner frozen):
// round trips with a live writable owner run with a peer process, below.

#[test]
fn read_only_round_trip() {
    let block = owner(2 * page_size(), 3);
    assert_eq!(block.access(), Access::ReadWrite);
    let share = block.share().unwrap();
    drop(block);
    let peer = Block::import_read_only(through_socket(&share), Pin::Required).unwrap();
    assert_eq!(peer.access(), Access::ReadOnly);
    assert_eq!(peer.name(), "unimem-share-test");
    assert!(
        peer.is_pinned(),
        "mlock of a PROT_READ shared mapping works"
    );
    // Not frozen: another process could still write the bytes, so no view of them; they
    // are copied out instead.
    assert!(!peer.is_frozen());
    let not_frozen = MemError::NotFrozen {
        id: peer.id(),
        size: 2 * page_size(),
    };
    assert_eq!(peer.as_bytes().unwrap_err(), not_frozen);
    assert_eq!(peer.as_slice::<u64>().unwrap_err(), not_frozen);
    assert_eq!(peer.as_f32().unwrap_err(), not_frozen);
    assert_eq!(peer.as_u16().unwrap_err(), not_frozen);
    assert_eq!(peer.read::<u64>(8, 2).unwrap_err(), not_frozen);
    assert!(holds(&words(&peer), 3));
    let mut two = [0u64; 2];
    peer.read_into(8, &mut two).unwrap();
    assert_eq!(two, [pattern(1, 3), pattern(2, 3)]);
    // Copies at unaligned edges: bytes 3..20 are the pattern's bytes.
    let mut bytes = [0u8; 17];
    peer.read_into(3, &mut bytes).unwrap();
    let expected: Vec<u8> = (0..3).flat_map(|i| pattern(i, 3).to_ne_bytes()).collect();
    assert_eq!(bytes[..], expected[3..20]);
    // The unsafe view shows the same bytes (nobody writes them: the owner is gone).
    // SAFETY: no process maps the file writable any more; nothing writes it.
    let view = unsafe { peer.read_unfrozen::<u64>(8, 2) }.unwrap();
    assert_eq!(view, &two);
    // Frozen by the importer (no process maps it writable): views from now on.
    let mut peer = peer;
    peer.freeze().unwrap();
    assert!(holds(peer.as_slice().unwrap(), 3));
    assert_eq!(peer.as_bytes().unwrap().len(), 2 * page_size());
    assert_eq!(peer.as_f32().unwrap().len(), peer.size() / 4);
    assert_eq!(peer.as_u16().unwrap().len(), peer.size() / 2);
    assert_eq!(
        peer.read::<u64>(8, 2).unwrap(),
        &[pattern(1, 3), pattern(2, 3)]
    );
    assert!(format!("{peer:?}").contains("ReadOnly"));
}

#[test]
fn read_only_is_per_inode_and_permanent() {
    let block = owner(page_size(), 5);
    let id = block.id();
    let writable = common::share_read_write(&block).unwrap();
    let _read_only = block.share().unwrap();
    // Sharing read-only again is fine; read-write is refused from now on.
    let read_only = block.share().unwrap();
    assert_eq!(
        common::share_read_write(&block).unwrap_err(),
        MemError::NotWritable { id, sealed: true }
    );
    // A read-write share made before the seal cannot be mapped writable any more...
    assert_eq!(
        common::import(writable, Pin::BestEffort).unwrap_err(),
        MemError::NotWritable { id, sealed: true }
    );
    // ...and a read-only share is refused by the read-write entry point, by name.
    let err = common::import(read_only, Pin::BestEffort).unwrap_err();
    assert_eq!(
        err,
        MemError::ShareReadOnly {
            source: id,
            size: page_size()
        }
    );
    assert!(err.to_string().contains("Block::import_read_only"));
}

#[test]
fn read_only_import_cannot_share_writable() {
    let block = owner(page_size(), 6);
    let id = block.id();
    let writable = common::share_read_write(&block).unwrap();
    let later = common::share_read_write(&block).unwrap();
    drop(block);
    // A read-only import of a read-write share: not sealed, but this process chose to read.
    let peer = Block::import_read_only(writable, Pin::BestEffort).unwrap();
    assert_eq!(peer.access(), Access::ReadOnly);
    assert_eq!(
        common::share_read_write(&peer).unwrap_err(),
        MemError::NotWritable {
            id: peer.id(),
            sealed: false
        }
    );
    // Sharing it read-only seals the file for every holder: a read-write share made
    // earlier (by the owner) can no longer be imported writable, here or anywhere.
    peer.share().unwrap();
    drop(peer);
    assert_eq!(
        common::import(later, Pin::BestEffort).unwrap_err(),
        MemError::NotWritable { id, sealed: true }
    );
}

#[test]
fn share_outlives_its_block() {
    let block = owner(3 * page_size(), 7);
    let share = block.share().unwrap();
    drop(block);
    let peer = Block::import_read_only(through_socket(&share), Pin::BestEffort).unwrap();
    assert!(holds(&words(&peer), 7));
    // Read-write too: the owner gone, the import is the only mapping here, and may write.
    let block = owner(3 * page_size(), 8);
    let share = common::share_read_write(&block).unwrap();
    drop(block);
    let mut peer = common::import(through_socket(&share), Pin::BestEffort).unwrap();
    assert!(holds(peer.as_slice(), 8));
    fill(&mut peer, 9);
    drop(peer);
    let peer = common::import(share, Pin::BestEffort).unwrap();
    assert!(
        holds(peer.as_slice(), 9),
        "the file kept the import's writes"
    );
}

#[test]
fn a_share_can_be_sent_twice() {
    let frozen = owner(page_size(), 8).freeze().unwrap();
    let share = frozen.share().unwrap();
    let (here, there) = UnixStream::pair().unwrap();
    share.send(&here).unwrap();
    share.send(&here).unwrap();
    // Read-only mappings of a frozen Block coexist in one process: no view of it is `&mut`.
    let a = Block::import_read_only(Share::recv(&there).unwrap(), Pin::BestEffort).unwrap();
    let b = Block::import_read_only(Share::recv(&there).unwrap(), Pin::BestEffort).unwrap();
    assert!(holds(a.as_slice().unwrap(), 8) && holds(b.as_slice().unwrap(), 8));
    assert!(a.is_frozen() && b.is_frozen());
    assert_ne!(a.id(), b.id());
    assert_ne!(a.address(), b.address());
    assert_eq!(a.as_bytes().unwrap(), frozen.as_bytes().unwrap());
}

#[test]
fn received_descriptors_close_on_exec() {
    let block = owner(page_size(), 9);
    let share = through_socket(&common::share_read_write(&block).unwrap());
    // SAFETY: F_GETFD on a descriptor the share keeps open.
    let flags = unsafe { libc::fcntl(share.as_raw_fd(), libc::F_GETFD) };
    assert!(flags >= 0 && flags & libc::FD_CLOEXEC != 0);
}

#[test]
fn reads_check_bounds_and_alignment() {
    let frozen = owner(page_size(), 10).freeze().unwrap();
    let peer: ReadOnlyBlock =
        Block::import_read_only(frozen.share().unwrap(), Pin::BestEffort).unwrap();
    let size = page_size();
    assert_eq!(peer.read::<u8>(size, 0).unwrap(), &[] as &[u8]);
    assert_eq!(peer.read::<u8>(size - 1, 1).unwrap().len(), 1);
    assert_eq!(peer.read::<u64>(0, size / 8).unwrap().len(), size / 8);
    for (offset, len) in [(size, 1), (size - 4, 1), (usize::MAX, 1), (8, usize::MAX)] {
        assert_eq!(
            peer.read::<u64>(offset, len).unwrap_err(),
            MemError::ReadOutOfBounds {
                offset,
                len,
                elem: 8,
                size
            },
            "offset {offset}, len {len}"
        );
    }
    assert_eq!(
        peer.read::<u32>(2, 1).unwrap_err(),
        MemError::ReadMisaligned {
            offset: 2,
            align: 4
        }
    );
    assert_eq!(peer.read::<[u8; 3]>(1, 2).unwrap().len(), 2);
}

#[test]
fn closed_socket_is_share_closed() {
    let (here, there) = UnixStream::pair().unwrap();
    drop(here);
    assert_eq!(Share::recv(&there).unwrap_err(), MemError::ShareClosed);
}

/// Puts SIGPIPE back to its default action, killing the process: Rust ignores it before
/// `main`, which would hide a send without `MSG_NOSIGNAL`. Only ever called in a child.
fn default_sigpipe() {
    // SAFETY: resetting a signal's disposition to SIG_DFL installs no handler.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(previous, libc::SIG_ERR);
}

#[test]
fn sending_to_a_closed_peer_is_epipe() {
    // In a child where SIGPIPE kills: a send that raised it would end the child, not
    // return EPIPE.
    common::in_child("sending_to_a_closed_peer_is_epipe", || {
        default_sigpipe();
        let block = owner(page_size(), 11);
        let share = common::share_read_write(&block).unwrap();
        let (here, there) = UnixStream::pair().unwrap();
        drop(there);
        assert_eq!(
            share.send(&here).unwrap_err(),
            MemError::Os {
                call: "sendmsg",
                errno: libc::EPIPE
            }
        );
    });
}

#[test]
fn a_send_without_msg_nosignal_dies_of_sigpipe() {
    // The control of `sending_to_a_closed_peer_is_epipe`: in the same setting, a plain
    // send(2) to a closed peer kills the child with SIGPIPE.
    let test = "a_send_without_msg_nosignal_dies_of_sigpipe";
    if is_child(test) {
        default_sigpipe();
        let (here, there) = UnixStream::pair().unwrap();
        drop(there);
        // SAFETY: send reads one byte of a live local.
        unsafe { libc::send(here.as_raw_fd(), [1u8].as_ptr().cast(), 1, 0) };
        return;
    }
    let out = common::run_child(test);
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

#[test]
fn non_blocking_sockets_say_eagain() {
    let block = owner(page_size(), 12);
    let share = common::share_read_write(&block).unwrap();
    let (here, there) = UnixStream::pair().unwrap();
    here.set_nonblocking(true).unwrap();
    there.set_nonblocking(true).unwrap();
    // Nothing to read.
    assert_eq!(
        Share::recv(&there).unwrap_err(),
        MemError::Os {
            call: "recvmsg",
            errno: libc::EAGAIN
        }
    );
    // A full buffer: filled with plain bytes first.
    let chunk = [0u8; 4096];
    loop {
        match std::io::Write::write(&mut &here, &chunk) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!(
        share.send(&here).unwrap_err(),
        MemError::Os {
            call: "sendmsg",
            errno: libc::EAGAIN
        }
    );
}

#[test]
fn read_only_import_is_locked_and_leaks_nothing() {
    if is_child("read_only_import_is_locked_and_leaks_nothing") {
        // 96 MiB: populated by several threads, read-only (MADV_POPULATE_READ). Frozen
        // first, so that a read-only import may sit next to it in this process.
        let size = 96 * MIB;
        let block = owner(size, 12).freeze().unwrap();
        let share = block.share().unwrap();
        let locked = common::status_bytes("VmLck:");
        let fds = common::open_fds();
        let peer = Block::import_read_only(through_socket(&share), Pin::Required).unwrap();
        assert!(peer.is_pinned());
        // Locks count per mapping: the import locks the same pages once more.
        assert_eq!(common::status_bytes("VmLck:") - locked, size as u64);
        assert!(holds(peer.as_slice().unwrap(), 12));
        drop(peer);
        assert_eq!(common::status_bytes("VmLck:"), locked);
        assert_eq!(common::open_fds(), fds);
        return;
    }
    common::assert_child_passes("read_only_import_is_locked_and_leaks_nothing");
}

#[test]
fn import_pin_follows_policy() {
    if is_child("import_pin_follows_policy") {
        // Frozen (and relocked) before the limit drops, so that read-only imports may sit
        // next to it.
        let block = owner(4 * MIB, 13).freeze().unwrap();
        common::drop_privileges(64 << 10);
        let share = block.share().unwrap();
        let fds = common::open_fds();
        let err = Block::import_read_only(through_socket(&share), Pin::Required).unwrap_err();
        assert!(
            matches!(err, MemError::LockRefused { requested, errno: libc::ENOMEM, .. } if requested == 4 * MIB),
            "{err:?}"
        );
        assert_eq!(common::open_fds(), fds, "descriptor leaked");
        let peer = Block::import_read_only(through_socket(&share), Pin::BestEffort).unwrap();
        assert!(!peer.is_pinned());
        assert!(holds(peer.as_slice().unwrap(), 13));
        // The read-write path refuses the same way (its owner dropped first: a read-write
        // import is the only mapping of its file in a process).
        let writable = Block::builder(MIB).pin(Pin::BestEffort).open().unwrap();
        let share = through_socket(&common::share_read_write(&writable).unwrap());
        drop(writable);
        let fds = common::open_fds() - 1;
        let err = common::import(share, Pin::Required).unwrap_err();
        assert!(matches!(err, MemError::LockRefused { .. }), "{err:?}");
        assert_eq!(common::open_fds(), fds, "descriptor leaked");
        return;
    }
    common::assert_child_passes("import_pin_follows_policy");
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn mem_available() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    kib * 1024
}

/// A read-write share of a file larger than the machine can hold: a read-write holder could
/// punch every page out and make the importer allocate them, so the import is refused as an
/// open of that size would be, before the pages are looked at (the file is sparse: it costs
/// its sender nothing). A read-only share of the same file is refused as sparse instead (a
/// write-sealed file skips the headroom check: it can lose no page).
#[test]
fn an_import_without_room_is_refused() {
    let page = page_size() as u64;
    let size = (2 * mem_available()).next_multiple_of(page);
    // SAFETY: memfd_create with a literal name, ftruncate and F_ADD_SEALS on it; the
    // descriptor is owned below. The file is sparse: no memory is used.
    let fd = unsafe {
        let fd = libc::memfd_create(
            c"too-large".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        );
        assert!(fd >= 0);
        let fd = OwnedFd::from_raw_fd(fd);
        assert_eq!(libc::ftruncate(fd.as_raw_fd(), size as libc::off_t), 0);
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;
        assert_eq!(libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals), 0);
        fd
    };
    let mut header = [0u8; 24];
    header[..8].copy_from_slice(b"UNIMEMSH");
    header[8] = 1;
    header[16..].copy_from_slice(&size.to_le_bytes());
    let (here, there) = UnixStream::pair().unwrap();
    common::send_raw(&here, &header, &[fd.as_raw_fd()]);
    let err = common::import(Share::recv(&there).unwrap(), Pin::BestEffort).unwrap_err();
    assert!(
        matches!(err, MemError::OutOfMemory { requested, .. } if requested as u64 == size),
        "{err:?}"
    );
    assert_eq!(err.kind(), unimem::ErrorKind::OutOfMemory);
    // Read-only: write-sealed first, then no headroom check, and the pages say no.
    // SAFETY: F_ADD_SEALS on the descriptor owned above.
    let sealed =
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_FUTURE_WRITE) };
    assert_eq!(sealed, 0);
    header[10] = 1;
    common::send_raw(&here, &header, &[fd.as_raw_fd()]);
    let err = Block::import_read_only(Share::recv(&there).unwrap(), Pin::BestEffort).unwrap_err();
    assert!(
        matches!(
            err,
            MemError::ShareSparse {
                allocated: 0,
                hole: Some(0),
                ..
            }
        ),
        "{err:?}"
    );
}

/// Every system call of the import's checks, refused: an `Os` error naming the call, the
/// descriptor closed (in a child: fault rules are process-wide, and it counts descriptors).
/// Needs the feature `fault-injection` (on with `--all-features`).
#[cfg(feature = "fault-injection")]
#[test]
fn import_checks_report_refused_calls() {
    const NAME: &str = "import_checks_report_refused_calls";
    if !is_child(NAME) {
        return common::assert_child_passes(NAME);
    }
    let block = owner(4 * page_size(), 50);
    let share = block.share().unwrap();
    drop(block);
    for call in [
        "fcntl(F_GET_SEALS)",
        "fstat",
        "fcntl(F_GETFL)",
        "lseek(SEEK_HOLE)",
    ] {
        let received = through_socket(&share);
        let fds = common::open_fds();
        unimem::fault::fail(call, 1, libc::EIO);
        let err = Block::import_read_only(received, Pin::BestEffort).unwrap_err();
        unimem::fault::reset();
        assert_eq!(
            err,
            MemError::Os {
                call,
                errno: libc::EIO
            },
            "{call}"
        );
        assert_eq!(
            common::open_fds(),
            fds - 1,
            "{call}: the descriptor was not closed"
        );
    }
    // The same share imports once nothing is refused.
    let peer = Block::import_read_only(through_socket(&share), Pin::BestEffort).unwrap();
    assert!(holds(&words(&peer), 50));
}

// ---------------------------------------------------------------------------------------
// Aliases in one process: refused. A second mapping of a file this process maps would be
// a second Block over the same bytes, which the borrow checker cannot see.

/// A reviewer's program: a Tape's `&mut` take and an import of the same memfd in the same
/// process would be two live views of the same bytes, one of them `&mut`.
#[test]
fn an_import_is_refused_while_the_owner_maps_the_file_writable() {
    // In a child: it counts this process's descriptors.
    const NAME: &str = "an_import_is_refused_while_the_owner_maps_the_file_writable";
    if !is_child(NAME) {
        return common::assert_child_passes(NAME);
    }
    let tape = Tape::over(Block::builder(4096).pin(Pin::BestEffort).open().unwrap());
    let id = tape.block().id();
    let xs: &mut [u8] = tape.take_slice::<u8>(4096).unwrap();
    xs.fill(1);
    let fds = common::open_fds();
    let refused = |requested| MemError::AlreadyMapped {
        id,
        writable: true,
        requested,
    };
    // A share made here and imported at once, and one that went through a socket.
    let share = common::share_read_write(tape.block()).unwrap();
    assert_eq!(
        common::import(share, Pin::BestEffort).unwrap_err(),
        refused(Access::ReadWrite)
    );
    let share = through_socket(&common::share_read_write(tape.block()).unwrap());
    assert_eq!(
        common::import(share, Pin::BestEffort).unwrap_err(),
        refused(Access::ReadWrite)
    );
    // Read-only too: the take is a live `&mut`.
    let share = through_socket(&common::share_read_write(tape.block()).unwrap());
    assert_eq!(
        Block::import_read_only(share, Pin::BestEffort).unwrap_err(),
        refused(Access::ReadOnly)
    );
    let share = tape.block().share().unwrap();
    let err = Block::import_read_only(share, Pin::BestEffort).unwrap_err();
    assert_eq!(err, refused(Access::ReadOnly));
    assert!(err.to_string().contains("Freeze it first"), "{err}");
    assert_eq!(
        common::open_fds(),
        fds,
        "a refused share's descriptor leaked"
    );
    assert!(xs.iter().all(|&b| b == 1));
}

#[test]
fn a_read_only_import_sits_next_to_a_read_only_owner() {
    let block = owner(2 * page_size(), 42);
    let id = block.id();
    let share = block.share().unwrap();
    assert!(matches!(
        Block::import_read_only(through_socket(&share), Pin::BestEffort),
        Err(MemError::AlreadyMapped { writable: true, .. })
    ));
    // Made read-only in place (not frozen yet): no `&mut` view of it can exist here.
    let mut block = block.into_read_only().unwrap();
    let peer = Block::import_read_only(through_socket(&share), Pin::BestEffort).unwrap();
    assert!(holds(&words(&peer), 42));
    assert!(matches!(block.as_bytes(), Err(MemError::NotFrozen { .. })));
    block.freeze().unwrap();
    assert!(peer.is_frozen());
    assert_eq!(peer.as_bytes().unwrap(), block.as_bytes().unwrap());
    // A read-write import never sits next to anything (here the write seal says so first).
    assert!(matches!(
        common::import(block.share().unwrap(), Pin::BestEffort),
        Err(MemError::ShareReadOnly { source, .. }) if source == id
    ));
}

/// The reviewer's Tape, frozen first: then an in-process read-only import is legal.
#[test]
fn a_frozen_tape_is_imported_read_only_in_its_own_process() {
    let mut tape = Tape::over(Block::builder(4096).pin(Pin::BestEffort).open().unwrap());
    let xs = tape.take_slice::<u32>(4).unwrap();
    xs.copy_from_slice(&[1, 2, 3, 4]);
    let at = tape.offset_of(xs.as_ptr()).unwrap();
    let early = common::share_read_write(tape.block()).unwrap();
    tape.freeze().unwrap();
    let import = Block::import_read_only(tape.block().share().unwrap(), Pin::BestEffort).unwrap();
    assert!(import.is_frozen());
    assert_eq!(import.read::<u32>(at, 4).unwrap(), &[1, 2, 3, 4]);
    assert_eq!(tape.read::<u32>(at, 4).unwrap(), &[1, 2, 3, 4]);
    // A read-only Tape over the import, next to the frozen one: both read by offset.
    let shared = Tape::over_read_only(import);
    assert_eq!(shared.read::<u32>(at + 8, 2).unwrap(), &[3, 4]);
    // Write access stays out of reach (the seal refuses it before the registry is asked).
    assert!(matches!(
        common::import(early, Pin::BestEffort),
        Err(MemError::NotWritable { sealed: true, .. })
    ));
}

#[test]
fn a_file_is_imported_read_write_once_per_process() {
    // In a child: it counts this process's descriptors.
    const NAME: &str = "a_file_is_imported_read_write_once_per_process";
    if !is_child(NAME) {
        return common::assert_child_passes(NAME);
    }
    let block = owner(page_size(), 44);
    let share = common::share_read_write(&block).unwrap();
    drop(block);
    let (here, there) = UnixStream::pair().unwrap();
    for _ in 0..4 {
        share.send(&here).unwrap();
    }
    let recv = || Share::recv(&there).unwrap();
    // In flight, the four descriptors are the socket's, not this process's; `share` itself
    // is consumed below.
    let fds = common::open_fds() - 1;
    let mut first = common::import(recv(), Pin::BestEffort).unwrap();
    let writer = |requested| MemError::AlreadyMapped {
        id: first.id(),
        writable: true,
        requested,
    };
    assert_eq!(
        common::import(recv(), Pin::BestEffort).unwrap_err(),
        writer(Access::ReadWrite)
    );
    assert_eq!(
        Block::import_read_only(recv(), Pin::BestEffort).unwrap_err(),
        writer(Access::ReadOnly)
    );
    fill(&mut first, 45);
    drop(first);
    // Mapped nowhere here any more: it imports again. Read-only this time, and a read-write
    // import next to that is refused.
    let reader = Block::import_read_only(recv(), Pin::BestEffort).unwrap();
    assert!(holds(&words(&reader), 45));
    let err = common::import(share, Pin::BestEffort).unwrap_err();
    assert_eq!(
        err,
        MemError::AlreadyMapped {
            id: reader.id(),
            writable: false,
            requested: Access::ReadWrite
        }
    );
    assert!(err.to_string().contains("Block::import_read_only"), "{err}");
    drop(reader);
    assert_eq!(common::open_fds(), fds, "a descriptor leaked");
}

#[test]
fn racing_read_write_imports_map_the_file_once() {
    let block = owner(page_size(), 46);
    let shares: Vec<Share> = (0..4)
        .map(|_| common::share_read_write(&block).unwrap())
        .collect();
    drop(block);
    let start = std::sync::Barrier::new(shares.len());
    let results: Vec<Result<Block, MemError>> = std::thread::scope(|s| {
        let threads: Vec<_> = shares
            .into_iter()
            .map(|share| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    common::import(share, Pin::BestEffort)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mapped: Vec<&Block> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(mapped.len(), 1, "{results:?}");
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(
            *err,
            MemError::AlreadyMapped {
                id: mapped[0].id(),
                writable: true,
                requested: Access::ReadWrite
            }
        );
    }
}

// ---------------------------------------------------------------------------------------
// Round trips with a live writable owner, each with a real peer process

#[test]
fn read_write_round_trip() {
    if is_child("read_write_round_trip") {
        let socket = parent_socket();
        let share = Share::recv(&socket).unwrap();
        assert_eq!(share.access(), Access::ReadWrite);
        let mut peer = common::import(share, Pin::Required).unwrap();
        assert_eq!(peer.access(), Access::ReadWrite);
        assert_eq!(peer.name(), "unimem-share-test");
        assert!(peer.is_pinned());
        assert!(holds(peer.as_slice(), 1));
        fill(&mut peer, 2);
        ack(&socket);
        // The owner writes a byte, then says so.
        wait_ack(&socket);
        assert_eq!(peer.as_bytes()[5], 0xAB);
        // A read-write import can share on, read-write: to another process (here back to
        // the owner, who maps the file already and refuses it), not to itself.
        let again = common::share_read_write(&peer).unwrap();
        assert_eq!(again.source_id(), peer.id());
        again.send(&socket).unwrap();
        assert_eq!(
            common::import(again, Pin::BestEffort).unwrap_err(),
            MemError::AlreadyMapped {
                id: peer.id(),
                writable: true,
                requested: Access::ReadWrite
            }
        );
        ack(&socket);
        return;
    }
    let mut block = owner(4 * page_size(), 1);
    let share = common::share_read_write(&block).unwrap();
    assert_eq!(share.size(), block.size());
    assert_eq!(share.access(), Access::ReadWrite);
    assert_eq!(share.source_id(), block.id());
    let mut peer = Peer::spawn("read_write_round_trip", &[]);
    share.send(peer.socket()).unwrap();
    peer.wait_ack();
    assert!(
        holds(block.as_slice(), 2),
        "peer's writes not seen by the owner"
    );
    block.as_bytes_mut()[5] = 0xAB;
    ack(peer.socket());
    // The peer's share of its import comes back: the same file, mapped here already.
    let back = Share::recv(peer.socket()).unwrap();
    assert_eq!(back.size(), block.size());
    assert_eq!(
        common::import(back, Pin::BestEffort).unwrap_err(),
        MemError::AlreadyMapped {
            id: block.id(),
            writable: true,
            requested: Access::ReadWrite
        }
    );
    peer.wait_ack();
    peer.assert_passes();
}

#[test]
fn owner_mapping_stays_writable_after_sharing_read_only() {
    const NAME: &str = "owner_mapping_stays_writable_after_sharing_read_only";
    if is_child(NAME) {
        let socket = parent_socket();
        let peer = Block::import_read_only(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        assert!(!peer.is_frozen());
        assert!(matches!(
            peer.read::<u64>(0, 1),
            Err(MemError::NotFrozen { .. })
        ));
        assert!(holds(&words(&peer), 4));
        ack(&socket);
        // The owner writes on, then says so (write, then tell: specs/share.md, case 2).
        wait_ack(&socket);
        let mut first = [0u64];
        peer.read_into(0, &mut first).unwrap();
        assert_eq!(first, [77]);
        // SAFETY: the writer's protocol: the owner wrote, then said so, and writes no more
        // until this process acknowledges (after the view is gone).
        let view = unsafe { peer.read_unfrozen::<u64>(0, 1) }.unwrap();
        assert_eq!(view, &[77]);
        ack(&socket);
        return;
    }
    let mut block = owner(page_size(), 4);
    let mut peer = Peer::spawn(NAME, &[]);
    peer.send_share(&block, Access::ReadOnly);
    peer.wait_ack();
    block.as_slice_mut::<u64>()[0] = 77;
    ack(peer.socket());
    peer.wait_ack();
    peer.assert_passes();
}

#[test]
fn read_write_peers_are_trusted_with_the_contents() {
    // A read-write share trusts the peer with the bytes: besides writing them, it may punch
    // holes (fallocate, MADV_REMOVE), which the resize seals do not forbid. The owner then
    // reads zeros there, never SIGBUS, and keeps working.
    const NAME: &str = "read_write_peers_are_trusted_with_the_contents";
    if is_child(NAME) {
        let socket = parent_socket();
        let peer = common::import(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: fallocate on the import's descriptor, while no view of the import is
        // alive; the pages it frees are re-faulted as zeros by both processes' mappings,
        // which stay valid (the size is unchanged).
        let r = unsafe {
            libc::fallocate(
                peer.as_raw_fd(),
                punch,
                page_size() as libc::off_t,
                page_size() as libc::off_t,
            )
        };
        assert_eq!(r, 0, "errno {}", errno());
        ack(&socket);
        wait_ack(&socket);
        assert!(holds(peer.as_slice(), 15));
        ack(&socket);
        return;
    }
    let mut block = owner(4 * page_size(), 14);
    let mut peer = Peer::spawn(NAME, &[]);
    peer.send_share(&block, Access::ReadWrite);
    peer.wait_ack();
    let page = page_size();
    assert!(block.as_bytes()[page..2 * page].iter().all(|&b| b == 0));
    assert!(holds(&block.as_slice::<u64>()[..page / 8], 14));
    fill(&mut block, 15);
    ack(peer.socket());
    peer.wait_ack();
    peer.assert_passes();
}

// ---------------------------------------------------------------------------------------
// Faults, each with a real peer process

#[test]
fn peer_cannot_resize() {
    if is_child("peer_cannot_resize") {
        let socket = parent_socket();
        let share = Share::recv(&socket).unwrap();
        let fd = share.as_raw_fd();
        let size = share.size() as libc::off_t;
        for len in [0, size / 2, size * 2] {
            // SAFETY: ftruncate on a descriptor the share keeps open.
            assert_eq!(unsafe { libc::ftruncate(fd, len) }, -1, "ftruncate({len})");
            assert_eq!(errno(), libc::EPERM);
        }
        let block = common::import(share, Pin::BestEffort).unwrap();
        // SAFETY: as above, through the import's own descriptor.
        assert_eq!(unsafe { libc::ftruncate(block.as_raw_fd(), 0) }, -1);
        assert_eq!(errno(), libc::EPERM);
        assert!(holds(block.as_slice(), 20));
        ack(&socket);
        return;
    }
    let block = owner(8 * page_size(), 20);
    let mut peer = Peer::spawn("peer_cannot_resize", &[]);
    peer.send_share(&block, Access::ReadWrite);
    peer.wait_ack();
    peer.assert_passes();
    assert_eq!(file_size(block.as_raw_fd()), block.size() as i64);
    assert!(holds(block.as_slice(), 20), "owner data changed");
}

#[test]
fn read_only_peer_cannot_write() {
    if is_child("read_only_peer_cannot_write") {
        let socket = parent_socket();
        let share = Share::recv(&socket).unwrap();
        assert_eq!(share.access(), Access::ReadOnly);
        let fd = share.as_raw_fd();
        let size = share.size();
        refused_to_write(fd, size, "the received descriptor");

        // Reopening the descriptor read-write through /proc succeeds (the memfd inode is
        // mode 0777) but gets the same, sealed, inode.
        let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).unwrap();
        // SAFETY: open with a valid path; the result is owned below.
        let reopened = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        assert!(reopened >= 0, "reopen: errno {}", errno());
        // SAFETY: a descriptor just returned by open, owned by nobody else.
        let reopened = unsafe { OwnedFd::from_raw_fd(reopened) };
        refused_to_write(reopened.as_raw_fd(), size, "the reopened descriptor");

        // A private writable mapping is allowed: its writes stay private to this process.
        // SAFETY: a new private mapping of the file, unmapped below.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                fd,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            p.cast::<u64>().write_volatile(0xDEAD);
            assert_eq!(libc::munmap(p, size), 0);
        }

        let block = Block::import_read_only(share, Pin::BestEffort).unwrap();
        assert!(holds(&words(&block), 21));
        // The import's own mapping cannot be made writable either.
        // SAFETY: mprotect on the import's mapping; it is refused, so nothing changes.
        let r = unsafe {
            libc::mprotect(
                block.address().cast(),
                block.size(),
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        assert_eq!((r, errno()), (-1, libc::EACCES), "mprotect(PROT_WRITE)");
        // The second share: the read-write entry point refuses it by name.
        let err = common::import(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap_err();
        assert!(matches!(err, MemError::ShareReadOnly { .. }), "{err:?}");
        ack(&socket);
        return;
    }
    let mut block = owner(4 * page_size(), 21);
    let mut peer = Peer::spawn("read_only_peer_cannot_write", &[]);
    let share = block.share().unwrap();
    share.send(peer.socket()).unwrap();
    share.send(peer.socket()).unwrap();
    peer.wait_ack();
    peer.assert_passes();
    assert!(holds(block.as_slice(), 21), "owner data changed");
    fill(&mut block, 22);
    assert!(holds(block.as_slice(), 22), "owner can no longer write");
}

#[test]
fn read_only_peer_writing_dies_alone() {
    if is_child("read_only_peer_writing_dies_alone") {
        let socket = parent_socket();
        let block =
            Block::import_read_only(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        assert!(holds(&words(&block), 23));
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit on this child's own core size, so its death leaves no core file.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) }, 0);
        ack(&socket);
        // SAFETY: deliberately not: the mapping is PROT_READ, and this write is the fault
        // under test. The process dies of SIGSEGV before anything observes a write.
        unsafe { block.address().write_volatile(0xFF) };
        unreachable!("a write through a read-only mapping went through");
    }
    let mut block = owner(4 * page_size(), 23);
    let mut peer = Peer::spawn("read_only_peer_writing_dies_alone", &[]);
    peer.send_share(&block, Access::ReadOnly);
    peer.wait_ack();
    let out = peer.finish();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "expected death by SIGSEGV, got {} with stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(holds(block.as_slice(), 23), "owner data changed");
    fill(&mut block, 24);
    assert!(holds(block.as_slice(), 24));
}

#[test]
fn killed_peer_loses_nothing() {
    if is_child("killed_peer_loses_nothing") {
        let socket = parent_socket();
        let mut block = common::import(Share::recv(&socket).unwrap(), Pin::Required).unwrap();
        let words = block.as_slice_mut::<u64>();
        let half = words.len() / 2;
        for (i, w) in words[half..].iter_mut().enumerate() {
            *w = pattern(half + i, 26);
        }
        ack(&socket);
        // Keep writing the same values until killed.
        loop {
            for (i, w) in block.as_slice_mut::<u64>()[half..].iter_mut().enumerate() {
                // SAFETY: a volatile store through a valid `&mut u64`, so the loop is not
                // optimised away.
                unsafe { std::ptr::write_volatile(w, pattern(half + i, 26)) };
            }
        }
    }
    let block = owner(16 * page_size(), 25);
    let mut peer = Peer::spawn("killed_peer_loses_nothing", &[]);
    peer.send_share(&block, Access::ReadWrite);
    peer.wait_ack();
    peer.kill();
    let out = peer.finish();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{}", out.status);

    let words = block.as_slice::<u64>();
    let half = words.len() / 2;
    assert!(holds(&words[..half], 25), "owner's half changed");
    assert!(
        words[half..]
            .iter()
            .enumerate()
            .all(|(i, &w)| w == pattern(half + i, 26)),
        "the peer's completed writes were lost"
    );
    let mut block = block;
    fill(&mut block, 27);
    assert!(holds(block.as_slice(), 27));
    assert!(block.is_pinned());
}

#[test]
fn owner_leaving_keeps_peer_mapping_valid() {
    if is_child("owner_leaving_keeps_peer_mapping_valid") {
        let socket = parent_socket();
        let mut block = common::import(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        ack(&socket);
        // The owner drops its Block and its share, then says so.
        wait_ack(&socket);
        assert!(holds(block.as_slice(), 28), "data lost when the owner left");
        fill(&mut block, 29);
        assert!(holds(block.as_slice(), 29));
        assert!(common::memfd_mapped("unimem-owner-leaves"));
        ack(&socket);
        return;
    }
    let block = owner_named("unimem-owner-leaves", 32 * page_size(), 28);
    let mut peer = Peer::spawn("owner_leaving_keeps_peer_mapping_valid", &[]);
    let share = common::share_read_write(&block).unwrap();
    share.send(peer.socket()).unwrap();
    peer.wait_ack();
    drop(share);
    drop(block);
    assert!(!common::memfd_mapped("unimem-owner-leaves"));
    ack(peer.socket());
    peer.wait_ack();
    peer.assert_passes();
}

// ---------------------------------------------------------------------------------------
// Garbage on the socket

/// A header as the spec lays it out (`specs/share.md`).
fn header(version: u16, access: u8, size: u64) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[..8].copy_from_slice(b"UNIMEMSH");
    h[8..10].copy_from_slice(&version.to_le_bytes());
    h[10] = access;
    h[12..16].copy_from_slice(&99u32.to_le_bytes());
    h[16..24].copy_from_slice(&size.to_le_bytes());
    h
}

/// A memfd of `len` bytes with the given seals (`None`: created without sealing allowed).
fn memfd(len: usize, seals: Option<libc::c_int>) -> OwnedFd {
    let flags = if seals.is_some() {
        libc::MFD_ALLOW_SEALING
    } else {
        0
    };
    // SAFETY: memfd_create with a literal name; ftruncate and fcntl on the new descriptor,
    // owned below.
    unsafe {
        let fd = libc::memfd_create(c"garbage".as_ptr(), libc::MFD_CLOEXEC | flags);
        assert!(fd >= 0);
        let fd = OwnedFd::from_raw_fd(fd);
        assert_eq!(libc::ftruncate(fd.as_raw_fd(), len as libc::off_t), 0);
        if let Some(seals) = seals.filter(|&s| s != 0) {
            assert_eq!(libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals), 0);
        }
        fd
    }
}

/// Both ends of a new pipe.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut ends = [0; 2];
    // SAFETY: pipe2 writes two descriptors into a live local array; each is owned below once.
    unsafe {
        assert_eq!(libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1]))
    }
}

const RESIZE: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;

/// A check of the error one garbage message must produce.
type Check = Box<dyn Fn(MemError) -> bool>;

/// What the child expects from each message, in order.
fn expected() -> Vec<(&'static str, Check)> {
    vec![
        (
            "no descriptor",
            Box::new(|e| {
                e == MemError::ShareFds {
                    received: 0,
                    truncated: false,
                }
            }),
        ),
        (
            "two descriptors",
            Box::new(|e| {
                e == MemError::ShareFds {
                    received: 2,
                    truncated: false,
                }
            }),
        ),
        (
            "six descriptors",
            Box::new(|e| {
                e == MemError::ShareFds {
                    received: 6,
                    truncated: false,
                }
            }),
        ),
        (
            "a hundred descriptors",
            // More than the receiver's 256 bytes of control room hold (60 descriptors):
            // the kernel closes the rest and says so.
            Box::new(|e| {
                e == MemError::ShareFds {
                    received: 60,
                    truncated: true,
                }
            }),
        ),
        (
            "short header",
            Box::new(|e| {
                e == MemError::ShareHeader {
                    len: 10,
                    reason: "wrong length",
                }
            }),
        ),
        (
            "wrong magic",
            Box::new(|e| {
                e == MemError::ShareHeader {
                    len: 24,
                    reason: "wrong magic",
                }
            }),
        ),
        (
            "wrong version",
            Box::new(|e| {
                e == MemError::ShareVersion {
                    found: 9,
                    expected: 1,
                }
            }),
        ),
        (
            "bad access byte",
            Box::new(|e| {
                matches!(
                    e,
                    MemError::ShareHeader {
                        reason: "access byte is neither 0 nor 1",
                        ..
                    }
                )
            }),
        ),
        (
            "a pipe",
            Box::new(
                |e| matches!(e, MemError::ShareNotMemfd { mode } if mode & libc::S_IFMT == libc::S_IFIFO),
            ),
        ),
        (
            "a regular file that cannot be sealed",
            Box::new(
                |e| matches!(e, MemError::ShareNotMemfd { mode } if mode & libc::S_IFMT == libc::S_IFREG),
            ),
        ),
        (
            "an unsealed memfd",
            Box::new(|e| {
                e == MemError::ShareUnsealed {
                    seals: 0,
                    missing: RESIZE as u32,
                }
            }),
        ),
        (
            "a memfd that cannot be sealed",
            Box::new(|e| {
                e == MemError::ShareUnsealed {
                    seals: libc::F_SEAL_SEAL as u32,
                    missing: RESIZE as u32,
                }
            }),
        ),
        (
            "a read-only header on a memfd without the write seal",
            Box::new(|e| {
                e == MemError::ShareUnsealed {
                    seals: RESIZE as u32,
                    missing: libc::F_SEAL_FUTURE_WRITE as u32,
                }
            }),
        ),
        (
            "wrong size",
            Box::new(
                |e| matches!(e, MemError::ShareSize { expected, found } if expected == 2 * page_size() && found == page_size() as u64),
            ),
        ),
    ]
}

#[test]
fn garbage_is_refused_and_closed() {
    if is_child("garbage_is_refused_and_closed") {
        let socket = parent_socket();
        for (what, check) in expected() {
            let fds = common::open_fds();
            let err = match Share::recv(&socket) {
                Ok(share) => Block::import_read_only(share, Pin::BestEffort).unwrap_err(),
                Err(err) => err,
            };
            assert!(check(err.clone()), "{what}: got {err:?}");
            assert!(!err.to_string().is_empty());
            assert_eq!(
                common::open_fds(),
                fds,
                "{what}: a received descriptor leaked"
            );
            ack(&socket);
        }
        // After all that garbage, in lockstep, a real share still goes through.
        let block = common::import(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        assert!(holds(block.as_slice(), 30));
        drop(block);
        ack(&socket);
        assert_eq!(Share::recv(&socket).unwrap_err(), MemError::ShareClosed);
        return;
    }
    let page = page_size();
    let rw = header(1, 0, page as u64);
    let ro = header(1, 1, page as u64);
    let sealed = memfd(page, Some(RESIZE));
    let (pipe_read, pipe_write) = pipe();
    let status = std::fs::File::open("/proc/self/status").unwrap();
    let unsealed = memfd(page, Some(0));
    let unsealable = memfd(page, None);
    let six: Vec<OwnedFd> = (0..6).map(|_| memfd(page, Some(RESIZE))).collect();
    let six: Vec<RawFd> = six.iter().map(|fd| fd.as_raw_fd()).collect();
    let hundred: Vec<RawFd> = vec![sealed.as_raw_fd(); 100];
    let mut wrong_magic = rw;
    wrong_magic[0] = b'X';
    let messages: Vec<(Vec<u8>, Vec<RawFd>)> = vec![
        (rw.to_vec(), vec![]),
        (rw.to_vec(), vec![sealed.as_raw_fd(), sealed.as_raw_fd()]),
        (rw.to_vec(), six),
        (rw.to_vec(), hundred),
        (rw[..10].to_vec(), vec![sealed.as_raw_fd()]),
        (wrong_magic.to_vec(), vec![sealed.as_raw_fd()]),
        (header(9, 0, page as u64).to_vec(), vec![sealed.as_raw_fd()]),
        (header(1, 5, page as u64).to_vec(), vec![sealed.as_raw_fd()]),
        (rw.to_vec(), vec![pipe_read.as_raw_fd()]),
        (rw.to_vec(), vec![status.as_raw_fd()]),
        (rw.to_vec(), vec![unsealed.as_raw_fd()]),
        (rw.to_vec(), vec![unsealable.as_raw_fd()]),
        (ro.to_vec(), vec![sealed.as_raw_fd()]),
        (
            header(1, 0, 2 * page as u64).to_vec(),
            vec![sealed.as_raw_fd()],
        ),
    ];
    assert_eq!(messages.len(), expected().len());
    let mut peer = Peer::spawn("garbage_is_refused_and_closed", &[]);
    for (bytes, fds) in &messages {
        assert_eq!(common::send_raw(peer.socket(), bytes, fds), bytes.len());
        peer.wait_ack();
    }
    drop(pipe_write);
    let block = owner(page, 30);
    peer.send_share(&block, Access::ReadWrite);
    peer.wait_ack();
    peer.close_socket();
    peer.assert_passes();
}

// ---------------------------------------------------------------------------------------
// Another user

#[test]
fn another_user_imports_what_it_is_sent_and_nothing_else() {
    let test = "another_user_imports_what_it_is_sent_and_nothing_else";
    if is_child(test) {
        let socket = parent_socket();
        // 1 MiB of lockable memory as uid 65534: enough to pin the 256 KiB import.
        common::drop_privileges(MIB as u64);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 65534);
        let block = Block::import_read_only(Share::recv(&socket).unwrap(), Pin::Required).unwrap();
        assert!(block.is_pinned());
        assert!(holds(&words(&block), 31));
        // Nothing else: the owner's descriptors are out of reach.
        let owner = std::env::var("UNIMEM_OWNER_FD").unwrap();
        let err = std::fs::File::open(&owner)
            .expect_err("another user opened the owner's memfd through /proc");
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{owner}: {err}");
        ack(&socket);
        return;
    }
    if !common::root_or_skip(test, "the peer cannot become another user") {
        return;
    }
    let block = owner(256 << 10, 31);
    let env = [(
        "UNIMEM_OWNER_FD",
        format!("/proc/{}/fd/{}", std::process::id(), block.as_raw_fd()),
    )];
    let mut peer = Peer::spawn(test, &env);
    peer.send_share(&block, Access::ReadOnly);
    peer.wait_ack();
    peer.assert_passes();
}

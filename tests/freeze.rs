//! Freezing a Block: the bytes immutable for every process. In one process: what freeze
//! does to the Block (same address, pinned, read-only, frozen) and every write route it
//! closes to the owner, refused while pages are pinned, and a relock refused by the memlock
//! limit, then finished; with a real peer process: a peer of a frozen Block cannot write by
//! any route, and freeze is refused (`FreezeBusy`), leaving a consistent state, while a
//! read-write peer maps the Block, or a read-only import of a read-write share made before
//! the seal (until that import freezes too).

#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use common::{Peer, ack, errno, fill, holds, is_child, parent_socket, refused_to_write, wait_ack};
use unimem::{Access, Block, MemError, Pin, ReadOnlyBlock, Share, Tape, page_size};

const MIB: usize = 1 << 20;

fn owner(size: usize, salt: u64) -> Block {
    let mut block = Block::builder(size)
        .name("unimem-freeze-test")
        .open()
        .unwrap();
    fill(block.as_slice_mut(), salt);
    block
}

fn seals(fd: RawFd) -> i32 {
    // SAFETY: F_GET_SEALS on a descriptor the caller keeps open.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    assert!(seals >= 0, "F_GET_SEALS: errno {}", errno());
    seals
}

/// `mprotect(PROT_READ | PROT_WRITE)` of a mapping: the errno it is refused with.
fn mprotect_writable(address: *mut u8, size: usize) -> i32 {
    // SAFETY: mprotect of a mapping the caller owns; it is expected to be refused, and if it
    // were not, nothing writes through it before the caller's assertion fails.
    let r = unsafe { libc::mprotect(address.cast(), size, libc::PROT_READ | libc::PROT_WRITE) };
    if r == 0 { 0 } else { errno() }
}

/// Every way to write the bytes of a frozen memfd, through its descriptor `fd` and through
/// this process's mapping `address..address + size`, is refused.
fn no_write_route(fd: RawFd, address: *mut u8, size: usize, what: &str) {
    // Through the descriptor: writable mmap, pwrite, write, punch, ftruncate.
    refused_to_write(fd, size, what);
    let byte = [1u8];
    // SAFETY: system calls on a descriptor the caller keeps open and on this process's own
    // mapping; each is refused, so nothing is mapped writable or written.
    unsafe {
        // A read-only mapping made now cannot be made writable.
        let ro = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(ro, libc::MAP_FAILED, "{what}: read-only mmap");
        assert_eq!(
            mprotect_writable(ro.cast(), size),
            libc::EACCES,
            "{what}: mprotect new"
        );
        assert_eq!(libc::munmap(ro, size), 0);

        // This process's own mapping.
        assert_eq!(
            mprotect_writable(address, size),
            libc::EACCES,
            "{what}: mprotect"
        );
        assert_eq!(
            libc::madvise(address.cast(), size, libc::MADV_REMOVE),
            -1,
            "{what}: MADV_REMOVE"
        );
        // madvise(2): EINVAL for a range that "includes locked ... pages" (the frozen
        // mappings here are pinned), checked before the EACCES of a range that "is not a
        // shared writable mapping".
        assert_eq!(errno(), libc::EINVAL, "{what}: MADV_REMOVE");
        // /proc/self/mem (what ptrace POKEDATA uses: forced writes) and process_vm_writev.
        let mem = libc::open(c"/proc/self/mem".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        assert!(mem >= 0, "open /proc/self/mem: errno {}", errno());
        let mem = OwnedFd::from_raw_fd(mem);
        assert_eq!(
            libc::pwrite(
                mem.as_raw_fd(),
                byte.as_ptr().cast(),
                1,
                address as libc::off_t
            ),
            -1,
            "{what}: /proc/self/mem"
        );
        // A forced write (FOLL_FORCE) that the kernel refuses moves no byte: EIO (mem_rw).
        assert_eq!(errno(), libc::EIO, "{what}: /proc/self/mem");
        let local = libc::iovec {
            iov_base: byte.as_ptr().cast_mut().cast(),
            iov_len: 1,
        };
        let remote = libc::iovec {
            iov_base: address.cast(),
            iov_len: 1,
        };
        assert_eq!(
            libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0),
            -1,
            "{what}: process_vm_writev"
        );
        assert_eq!(errno(), libc::EFAULT, "{what}: process_vm_writev");
    }
    // Reopening the descriptor read-write gets the same, frozen, inode.
    let path = format!("/proc/self/fd/{fd}");
    let reopened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // SAFETY: as above, on the reopened descriptor; every call is refused.
    unsafe {
        let byte = [1u8];
        assert_eq!(
            libc::pwrite(reopened.as_raw_fd(), byte.as_ptr().cast(), 1, 0),
            -1
        );
        assert_eq!(
            errno(),
            libc::EPERM,
            "{what}: pwrite through a reopened descriptor"
        );
    }
}

// ---------------------------------------------------------------------------------------
// In one process

#[test]
fn freeze_keeps_address_pages_and_pin() {
    if is_child("freeze_keeps_address_pages_and_pin") {
        let block = owner(4 * MIB, 1);
        let (address, size, id) = (block.address(), block.size(), block.id());
        assert!(block.is_pinned() && !block.is_frozen());
        let locked = common::status_bytes("VmLck:");
        let frozen: ReadOnlyBlock = block.freeze().unwrap();
        assert!(frozen.is_frozen());
        assert_eq!(frozen.access(), Access::ReadOnly);
        assert_eq!(
            (frozen.address(), frozen.size(), frozen.id()),
            (address, size, id)
        );
        assert!(frozen.is_pinned(), "the new mapping is locked again");
        assert_eq!(
            common::status_bytes("VmLck:"),
            locked,
            "locked once, as before"
        );
        assert!(holds(frozen.as_slice().unwrap(), 1));
        let s = seals(frozen.as_raw_fd());
        assert_eq!(
            s & (libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SHRINK),
            libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SHRINK
        );
        // Freezing again does nothing.
        let mut frozen = frozen;
        frozen.freeze().unwrap();
        drop(frozen);
        assert_eq!(common::status_bytes("VmLck:"), locked - size as u64);
        return;
    }
    common::assert_child_passes("freeze_keeps_address_pages_and_pin");
}

#[test]
fn owner_cannot_write_a_frozen_block() {
    let block = owner(4 * page_size(), 2);
    let id = block.id();
    let frozen = block.freeze().unwrap();
    no_write_route(frozen.as_raw_fd(), frozen.address(), frozen.size(), "owner");
    assert!(holds(frozen.as_slice().unwrap(), 2), "the bytes changed");
    assert_eq!(
        common::share_read_write(&frozen).unwrap_err(),
        MemError::NotWritable { id, sealed: true }
    );
    // A read-write share made before the freeze cannot be imported writable any more.
    let block = owner(page_size(), 3);
    let early = common::share_read_write(&block).unwrap();
    let frozen = block.freeze().unwrap();
    assert!(matches!(
        common::import(early, Pin::BestEffort),
        Err(MemError::NotWritable { sealed: true, .. })
    ));
    drop(frozen);
}

#[test]
fn freeze_is_busy_while_pages_are_pinned() {
    // Pages referenced beyond their mappings (here by a pipe, through vmsplice; a CUDA
    // registration does the same) keep F_SEAL_WRITE away: the kernel waits for them a
    // little, then refuses.
    let block = owner(4 * page_size(), 5);
    let (id, size) = (block.id(), block.size());
    let mut ends = [0; 2];
    // SAFETY: pipe2 writes two descriptors into a live array, each owned below once.
    let (read_end, write_end) = unsafe {
        assert_eq!(libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1]))
    };
    let iov = libc::iovec {
        iov_base: block.address().cast(),
        iov_len: page_size(),
    };
    // SAFETY: vmsplice reads one page of the Block's mapping, alive for the call; the pipe
    // keeps references to the pages, which is the point.
    let spliced = unsafe { libc::vmsplice(write_end.as_raw_fd(), &iov, 1, 0) };
    assert_eq!(spliced, page_size() as isize, "vmsplice: errno {}", errno());
    let mut frozen = block.into_read_only().unwrap();
    assert_eq!(
        frozen.freeze().unwrap_err(),
        MemError::FreezeBusy { id, size }
    );
    assert_eq!(frozen.access(), Access::ReadOnly);
    assert!(frozen.is_pinned() && !frozen.is_frozen());
    // Drain the pipe: the references go, and the freeze goes through.
    let mut page = vec![0u8; page_size()];
    // SAFETY: read into a live buffer of the length given.
    let n = unsafe { libc::read(read_end.as_raw_fd(), page.as_mut_ptr().cast(), page.len()) };
    assert_eq!(n, page_size() as isize);
    drop((read_end, write_end));
    frozen.freeze().unwrap();
    assert!(frozen.is_frozen());
    assert!(holds(frozen.as_slice().unwrap(), 5));
}

#[test]
fn a_refused_relock_leaves_a_read_only_tape_that_finishes_later() {
    if is_child("a_refused_relock_leaves_a_read_only_tape_that_finishes_later") {
        let size = 2 * MIB;
        let mut tape = Tape::over(owner(size, 6));
        let at = tape.take_slice::<u64>(4).unwrap().as_ptr();
        let at = tape.offset_of(at).unwrap();
        assert!(tape.block().is_pinned());
        // Room to lock 256 KiB from now on (the pinned 2 MiB stays locked until replaced);
        // the hard limit stays higher so the soft one can be raised again.
        set_memlock(Some(256 << 10));
        let err = tape.freeze().unwrap_err();
        assert!(
            matches!(err, MemError::LockRefused { requested, .. } if requested == size),
            "{err:?}"
        );
        // Consistent: read-only here and sealed against new writers, not pinned, not
        // frozen; takes and reads refused.
        assert!(tape.is_read_only() && !tape.is_frozen());
        assert_eq!(tape.block().access(), Access::ReadOnly);
        assert!(!tape.block().is_pinned() && !tape.block().is_frozen());
        assert_ne!(
            seals(tape.block().as_raw_fd()) & libc::F_SEAL_FUTURE_WRITE,
            0
        );
        let id = tape.block().id();
        assert_eq!(
            tape.try_take(8, 8).unwrap_err(),
            MemError::TapeReadOnly { id, frozen: false }
        );
        assert_eq!(
            tape.read::<u64>(at, 4).unwrap_err(),
            MemError::TapeNotFrozen {
                id,
                read_only: true
            }
        );
        assert_eq!(
            mprotect_writable(tape.block().address(), size),
            libc::EACCES
        );
        // Room again: the next freeze locks, then seals.
        set_memlock(None);
        tape.freeze().unwrap();
        assert!(tape.is_frozen() && tape.block().is_pinned() && tape.block().is_frozen());
        assert!(holds(tape.read::<u64>(0, size / 8).unwrap(), 6));
        return;
    }
    common::assert_child_passes("a_refused_relock_leaves_a_read_only_tape_that_finishes_later");
}

/// Sets the soft RLIMIT_MEMLOCK to `soft` (`None`: up to the hard limit). As root, first
/// drops to uid 65534 (and so CAP_IPC_LOCK). The hard limit stays as it is (at least the
/// 2 MiB the test locks: 8 MiB by default since Linux 5.16). Only ever called in a child
/// process.
fn set_memlock(soft: Option<u64>) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on this (child) process's own credentials and limits.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl), 0);
        rl.rlim_cur = soft.map_or(rl.rlim_max, |soft| soft as libc::rlim_t);
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl),
            0,
            "setrlimit: errno {}",
            errno()
        );
        if libc::geteuid() == 0 {
            assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
            assert_eq!(libc::setgid(65534), 0, "setgid");
            assert_eq!(libc::setuid(65534), 0, "setuid");
        }
    }
}

#[test]
fn a_writable_tape_refuses_reads_by_offset() {
    let tape = Tape::over(Block::builder(4096).pin(Pin::BestEffort).open().unwrap());
    let id = tape.block().id();
    tape.take_slice::<u32>(4).unwrap().fill(7);
    assert!(!tape.is_read_only() && !tape.is_frozen());
    assert_eq!(
        tape.read::<u32>(0, 4).unwrap_err(),
        MemError::TapeNotFrozen {
            id,
            read_only: false
        }
    );
}

#[test]
fn a_frozen_tape_reads_and_refuses_every_take() {
    let mut tape = Tape::over(
        Block::builder(64 << 10)
            .pin(Pin::BestEffort)
            .open()
            .unwrap(),
    );
    let xs = tape.take_slice::<u64>(8).unwrap();
    fill(xs, 7);
    let at = tape.offset_of(xs.as_ptr()).unwrap();
    let used = tape.used();
    tape.freeze().unwrap();
    let id = tape.block().id();
    assert!(tape.is_read_only() && tape.is_frozen() && tape.block().is_frozen());
    assert!(holds(tape.read::<u64>(at, 8).unwrap(), 7));
    assert_eq!(
        (tape.used(), tape.free(), tape.peak()),
        (tape.total(), 0, tape.total())
    );
    assert!(used < tape.total());
    let refused = MemError::TapeReadOnly { id, frozen: true };
    assert_eq!(tape.take(8, 8), None);
    assert_eq!(tape.try_take(8, 8).unwrap_err(), refused);
    assert_eq!(
        tape.try_take(0, 3).unwrap_err(),
        refused,
        "read-only is said first"
    );
    assert!(tape.take_slice::<u8>(1).is_none() && tape.take_one::<u8>().is_none());
    assert_eq!(tape.try_take_slice::<u32>(1).unwrap_err(), refused);
    assert_eq!(tape.try_take_one::<u32>().unwrap_err(), refused);
    let mut lane = tape.lane(4096);
    assert_eq!(lane.take(8, 8), None);
    assert_eq!(lane.try_take(8, 8).unwrap_err(), refused);
    drop(lane);
    tape.clear();
    assert_eq!(tape.used(), tape.total(), "clear keeps a frozen Tape full");
    assert_eq!(tape.take(8, 8), None);
    assert!(matches!(
        tape.read::<u64>(tape.total(), 1),
        Err(MemError::ReadOutOfBounds { .. })
    ));
    assert!(matches!(
        tape.read::<u64>(at + 4, 1),
        Err(MemError::ReadMisaligned { align: 8, .. })
    ));
    tape.freeze().unwrap();
    assert!(format!("{tape:?}").contains("Frozen"));
}

// ---------------------------------------------------------------------------------------
// With a peer process

#[test]
fn a_peer_of_a_frozen_block_cannot_write_by_any_route() {
    if is_child("a_peer_of_a_frozen_block_cannot_write_by_any_route") {
        let socket = parent_socket();
        let share = Share::recv(&socket).unwrap();
        assert_eq!(share.access(), Access::ReadOnly);
        let fd = share.as_raw_fd();
        assert_ne!(
            seals(fd) & libc::F_SEAL_WRITE,
            0,
            "the share carries the freeze"
        );
        let mut block = Block::import_read_only(share, Pin::Required).unwrap();
        assert!(block.is_frozen() && block.is_pinned());
        assert!(holds(block.as_slice().unwrap(), 10));
        no_write_route(block.as_raw_fd(), block.address(), block.size(), "peer");
        // Not even a read-write share of its own, nor a writable import of the file.
        assert!(matches!(
            common::share_read_write(&block),
            Err(MemError::NotWritable { .. })
        ));
        let again = Share::recv(&socket).unwrap();
        assert!(matches!(
            common::import(again, Pin::BestEffort),
            Err(MemError::ShareReadOnly { .. })
        ));
        // Freezing a frozen import does nothing.
        block.freeze().unwrap();
        assert!(holds(block.as_slice().unwrap(), 10));
        ack(&socket);
        return;
    }
    let frozen = owner(8 * page_size(), 10).freeze().unwrap();
    let mut peer = Peer::spawn("a_peer_of_a_frozen_block_cannot_write_by_any_route", &[]);
    let share = frozen.share().unwrap();
    share.send(peer.socket()).unwrap();
    share.send(peer.socket()).unwrap();
    peer.wait_ack();
    peer.assert_passes();
    assert!(holds(frozen.as_slice().unwrap(), 10), "the bytes changed");
}

#[test]
fn freeze_is_busy_while_a_read_write_peer_maps_the_block() {
    if is_child("freeze_is_busy_while_a_read_write_peer_maps_the_block") {
        let socket = parent_socket();
        let mut block = common::import(Share::recv(&socket).unwrap(), Pin::Required).unwrap();
        assert!(holds(block.as_slice(), 11));
        ack(&socket);
        // The owner's freeze was refused: this mapping is still writable, the file is
        // sealed against new writers.
        wait_ack(&socket);
        fill(block.as_slice_mut(), 12);
        assert!(matches!(
            common::share_read_write(&block),
            Err(MemError::NotWritable { sealed: true, .. })
        ));
        ack(&socket);
        // Let go: the owner's next freeze goes through.
        wait_ack(&socket);
        drop(block);
        ack(&socket);
        return;
    }
    let mut tape = Tape::over(owner(16 * page_size(), 11));
    let (id, size, address) = (
        tape.block().id(),
        tape.block().size(),
        tape.block().address(),
    );
    let mut peer = Peer::spawn("freeze_is_busy_while_a_read_write_peer_maps_the_block", &[]);
    peer.send_share(tape.block(), Access::ReadWrite);
    peer.wait_ack();

    assert_eq!(
        tape.freeze().unwrap_err(),
        MemError::FreezeBusy { id, size }
    );
    // Consistent and said: read-only here, pinned as before, sealed against new writers,
    // not frozen; the Tape hands out nothing and reads nothing.
    assert!(tape.is_read_only() && !tape.is_frozen());
    assert_eq!(tape.block().address(), address);
    assert_eq!(tape.block().access(), Access::ReadOnly);
    assert!(tape.block().is_pinned() && !tape.block().is_frozen());
    let s = seals(tape.block().as_raw_fd());
    assert_eq!(
        s & (libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_WRITE),
        libc::F_SEAL_FUTURE_WRITE
    );
    assert_eq!(mprotect_writable(address, size), libc::EACCES);
    assert_eq!(
        tape.try_take(64, 8).unwrap_err(),
        MemError::TapeReadOnly { id, frozen: false }
    );
    assert_eq!(
        tape.read::<u64>(0, 1).unwrap_err(),
        MemError::TapeNotFrozen {
            id,
            read_only: true
        }
    );
    // ...which is why: the read-write peer still writes.
    ack(peer.socket());
    peer.wait_ack();
    ack(peer.socket());
    peer.wait_ack();
    tape.freeze().unwrap();
    assert!(tape.is_frozen() && tape.block().is_frozen() && tape.block().is_pinned());
    assert!(holds(tape.read::<u64>(0, size / 8).unwrap(), 12));
    peer.assert_passes();
}

#[test]
fn a_read_only_import_of_a_writable_share_blocks_freeze_until_it_freezes_too() {
    // A PROT_READ shared mapping made from an O_RDWR descriptor before the file had a write
    // seal counts as writable to the kernel: the owner's freeze is refused while it exists.
    // The reader is a peer process (in the owner's own process a read-only import is
    // refused while the owner maps the Block writable).
    const NAME: &str = "a_read_only_import_of_a_writable_share_blocks_freeze_until_it_freezes_too";
    if is_child(NAME) {
        let socket = parent_socket();
        let mut reader =
            Block::import_read_only(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        let address = reader.address();
        ack(&socket);
        // The owner's freeze was refused; this process's own freeze replaces its mapping
        // in place, then seals.
        wait_ack(&socket);
        assert!(!reader.is_frozen());
        reader.freeze().unwrap();
        assert_eq!(reader.address(), address);
        assert!(reader.is_frozen());
        assert!(holds(reader.as_slice().unwrap(), 4));
        ack(&socket);
        return;
    }
    let block = owner(2 * page_size(), 4);
    let id = block.id();
    let mut peer = Peer::spawn(NAME, &[]);
    peer.send_share(&block, Access::ReadWrite);
    peer.wait_ack();
    let mut frozen = block.into_read_only().unwrap();
    assert_eq!(
        frozen.freeze().unwrap_err(),
        MemError::FreezeBusy {
            id,
            size: 2 * page_size()
        }
    );
    assert!(!frozen.is_frozen());
    ack(peer.socket());
    peer.wait_ack();
    // The reader froze the file: it is frozen for every holder.
    assert!(frozen.is_frozen());
    frozen.freeze().unwrap();
    assert!(holds(frozen.as_slice().unwrap(), 4));
    peer.assert_passes();
}

//! Every system-call failure of the Linux Block, run through fault injection (feature
//! `fault-injection`, `unimem::fault`): open, import, share, send, receive and freeze, each
//! refusal at each step, and the fallbacks (plain `mlock` without `mlock2`, `memfd_create`
//! without `MFD_NOEXEC_SEAL`, populating without `MADV_POPULATE_*`, populating on one
//! thread when no thread can start).
//!
//! Each test runs in a child process of its own (the rules are process-wide) and checks
//! afterwards, with [`Census`], that the error path gave everything back: descriptors,
//! memfd mappings, locked bytes (`VmLck`), Block ids and registrations in the registry of
//! mapped files. Each also checks with `fault::calls` that the injected call was reached
//! (and, for fallbacks, that the fallback ran).

#![cfg(all(target_os = "linux", not(miri), feature = "fault-injection"))]

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use common::{Census, in_child};
use unimem::{Access, Block, MemError, Pin, Share, Tape, fault};

const MIB: usize = 1 << 20;

fn os(call: &'static str, errno: i32) -> MemError {
    MemError::Os { call, errno }
}

/// Opens a Block of `size` bytes with `pin`, expecting `err`, and checks that nothing
/// leaked and that `call` was reached.
fn open_fails(size: usize, pin: Pin, call: &str, err: MemError) {
    let before = Census::take();
    let got = Block::builder(size).pin(pin).name("faulty").open();
    assert_eq!(got.as_ref().err(), Some(&err), "{call}");
    assert!(fault::calls(call) >= 1, "{call} was never called");
    // The message names the call and the errno.
    let text = err.to_string();
    assert!(!text.is_empty());
    before.unchanged(call);
    fault::reset();
    // And the next open works: nothing is left in a bad state.
    let block = Block::open(size).unwrap();
    assert!(block.is_pinned());
}

// ---------------------------------------------------------------------------------------
// Open: each step refused

#[test]
fn open_memfd_create_fails() {
    in_child("open_memfd_create_fails", || {
        fault::fail_always("memfd_create", libc::EMFILE);
        open_fails(
            MIB,
            Pin::Required,
            "memfd_create",
            os("memfd_create", libc::EMFILE),
        );
        // EMFILE is not retried (only EINVAL is, without MFD_NOEXEC_SEAL).
    });
}

#[test]
fn open_ftruncate_fails() {
    in_child("open_ftruncate_fails", || {
        fault::fail("ftruncate", 1, libc::ENOSPC);
        open_fails(
            MIB,
            Pin::Required,
            "ftruncate",
            os("ftruncate", libc::ENOSPC),
        );
    });
}

#[test]
fn open_sealing_fails() {
    in_child("open_sealing_fails", || {
        fault::fail("fcntl(F_ADD_SEALS)", 1, libc::EPERM);
        open_fails(
            MIB,
            Pin::Required,
            "fcntl(F_ADD_SEALS)",
            os("fcntl(F_ADD_SEALS)", libc::EPERM),
        );
    });
}

#[test]
fn open_fstat_fails() {
    in_child("open_fstat_fails", || {
        fault::fail("fstat", 1, libc::EIO);
        open_fails(MIB, Pin::Required, "fstat", os("fstat", libc::EIO));
    });
}

#[test]
fn open_mmap_fails() {
    in_child("open_mmap_fails", || {
        // After the id and the registration were taken: both must be given back.
        fault::fail("mmap", 1, libc::ENOMEM);
        open_fails(MIB, Pin::Required, "mmap", os("mmap", libc::ENOMEM));
    });
}

#[test]
fn open_populate_fails() {
    in_child("open_populate_fails", || {
        // After mlock2 charged the range: the lock must go with the mapping.
        fault::fail("madvise(MADV_POPULATE_WRITE)", 1, libc::EFAULT);
        open_fails(
            MIB,
            Pin::Required,
            "madvise(MADV_POPULATE_WRITE)",
            os("madvise(MADV_POPULATE_WRITE)", libc::EFAULT),
        );
    });
}

#[test]
fn open_populate_fails_on_one_of_several_threads() {
    in_child("open_populate_fails_on_one_of_several_threads", || {
        // 96 MiB is populated by up to 3 threads (32 MiB each at least); the second range
        // fails, the others succeed, and every thread is joined before the error returns.
        let test = "open_populate_fails_on_one_of_several_threads";
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores < 2 {
            common::skip(
                test,
                "CORES",
                "one core: a Block is populated on one thread",
            );
            return;
        }
        fault::fail("madvise(MADV_POPULATE_WRITE)", 2, libc::ENOMEM);
        let before = Census::take();
        let err = Block::open(96 * MIB).unwrap_err();
        assert_eq!(err, os("madvise(MADV_POPULATE_WRITE)", libc::ENOMEM));
        assert_eq!(
            fault::calls("madvise(MADV_POPULATE_WRITE)"),
            cores.min(3) as u64
        );
        before.unchanged("a failed parallel populate");
    });
}

#[test]
fn open_mlock2_refused_with_eagain() {
    in_child("open_mlock2_refused_with_eagain", || {
        fault::fail("mlock2", 1, libc::EAGAIN);
        let before = Census::take();
        let err = Block::open(MIB).unwrap_err();
        assert!(
            matches!(err, MemError::LockRefused { requested, errno: libc::EAGAIN, .. } if requested == MIB),
            "{err:?}"
        );
        assert!(err.to_string().contains("EAGAIN"), "{err}");
        before.unchanged("mlock2 refused");
    });
}

#[test]
fn without_mlock2_plain_mlock_pins() {
    in_child("without_mlock2_plain_mlock_pins", || {
        for errno in [libc::ENOSYS, libc::EINVAL] {
            fault::reset();
            fault::fail_always("mlock2", errno);
            let locked = common::status_bytes("VmLck:");
            let block = Block::open(4 * MIB).unwrap();
            assert!(block.is_pinned());
            assert_eq!(common::status_bytes("VmLck:") - locked, 4 * MIB as u64);
            // The fallback: one mlock, which populates and locks; no madvise.
            assert_eq!(fault::calls("mlock2"), 1);
            assert_eq!(fault::calls("mlock"), 1);
            assert_eq!(fault::calls("madvise(MADV_POPULATE_WRITE)"), 0);
            assert!(block.as_bytes().iter().all(|&b| b == 0));
            drop(block);
            assert_eq!(common::status_bytes("VmLck:"), locked);
        }
    });
}

#[test]
fn without_noexec_seal_memfd_create_is_retried() {
    in_child("without_noexec_seal_memfd_create_is_retried", || {
        // Before Linux 6.3 MFD_NOEXEC_SEAL is EINVAL: the retry goes without it.
        fault::fail("memfd_create", 1, libc::EINVAL);
        let block = Block::open(MIB).unwrap();
        assert_eq!(fault::calls("memfd_create"), 2);
        assert!(block.is_pinned());
        drop(block);
        // Refused both times: the second errno is reported.
        fault::reset();
        fault::fail_always("memfd_create", libc::EINVAL);
        open_fails(
            MIB,
            Pin::Required,
            "memfd_create",
            os("memfd_create", libc::EINVAL),
        );
    });
}

#[test]
fn without_madvise_populate_every_page_is_read() {
    in_child("without_madvise_populate_every_page_is_read", || {
        // Before Linux 5.14 MADV_POPULATE_* is EINVAL: one byte per page is read instead.
        fault::fail_always("madvise(MADV_POPULATE_WRITE)", libc::EINVAL);
        let rss = common::status_bytes("VmRSS:");
        let locked = common::status_bytes("VmLck:");
        let block = Block::open(8 * MIB).unwrap();
        assert!(block.is_pinned());
        assert_eq!(fault::calls("madvise(MADV_POPULATE_WRITE)"), 1);
        assert_eq!(common::status_bytes("VmLck:") - locked, 8 * MIB as u64);
        assert!(common::status_bytes("VmRSS:") >= rss + 8 * MIB as u64);
        assert!(block.as_bytes().iter().all(|&b| b == 0));
        // The same for an import (MADV_POPULATE_READ).
        let share = block.share().unwrap();
        drop(block);
        fault::fail_always("madvise(MADV_POPULATE_READ)", libc::EINVAL);
        let import = Block::import_read_only(share, Pin::Required).unwrap();
        assert!(import.is_pinned());
        assert_eq!(fault::calls("madvise(MADV_POPULATE_READ)"), 1);
        // EINTR and EAGAIN are retried.
        drop(import);
        fault::reset();
        fault::fail("madvise(MADV_POPULATE_WRITE)", 1, libc::EINTR);
        fault::fail("madvise(MADV_POPULATE_WRITE)", 1, libc::EAGAIN);
        let block = Block::open(MIB).unwrap();
        assert_eq!(fault::calls("madvise(MADV_POPULATE_WRITE)"), 3);
        assert!(block.is_pinned());
    });
}

/// Sets RLIMIT_NPROC to `limit` (soft and hard). Only ever called in a child process.
fn limit_threads(limit: u64) {
    let rl = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: a plain system call on this (child) process's own limits.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &rl) }, 0);
}

#[test]
fn populating_runs_on_this_thread_when_no_thread_can_start() {
    // How a thread is refused: RLIMIT_NPROC (threads count as processes of the user) set to
    // 1, which this process alone reaches. Root is exempt from it, so the child drops to
    // uid 65534 first (`drop_privileges`, which also sets the lock limit it needs); a user
    // other than root is held to it already.
    in_child(
        "populating_runs_on_this_thread_when_no_thread_can_start",
        || {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            if cores < 2 {
                common::skip(
                    "populating_runs_on_this_thread_when_no_thread_can_start",
                    "CORES",
                    "one core: a Block is populated on one thread anyway",
                );
                return;
            }
            limit_threads(1);
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                // SAFETY: plain system calls on this (child) process's own credentials.
                unsafe {
                    assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
                    assert_eq!(libc::setgid(65534), 0, "setgid");
                    assert_eq!(libc::setuid(65534), 0, "setuid");
                }
            }
            // No thread can start here now.
            assert!(
                std::thread::Builder::new().spawn(|| ()).is_err(),
                "a thread started despite RLIMIT_NPROC 1"
            );
            // Pinned or not, as the lock limit allows: populating is what is checked here.
            let block = Block::builder(96 * MIB)
                .pin(Pin::BestEffort)
                .open()
                .unwrap();
            // Every range was populated, each on this thread (one call per range).
            assert_eq!(
                fault::calls("madvise(MADV_POPULATE_WRITE)"),
                cores.min(3) as u64
            );
            assert!(block.as_bytes().iter().all(|&b| b == 0));
        },
    );
}

// ---------------------------------------------------------------------------------------
// Import

/// A read-write and a read-only share of a Block of `size` bytes filled with 7, the
/// Block itself dropped (the shares keep the file): imports in this process are not
/// aliases of a live mapping.
fn shares(size: usize) -> (Share, Share) {
    let mut block = Block::open(size).unwrap();
    block.as_bytes_mut().fill(7);
    let writable = common::share_read_write(&block).unwrap();
    let read_only = block.share().unwrap();
    (writable, read_only)
}

fn import_fails(share: Share, call: &str, err: MemError) {
    let before = Census::take();
    let got = Block::import_read_only(share, Pin::Required);
    assert_eq!(got.err(), Some(err), "{call}");
    assert!(fault::calls(call) >= 1);
    assert!(!fault::pending());
    // The share's descriptor was consumed and closed, with everything else.
    assert_eq!(
        Census::take().fds + 1,
        before.fds,
        "{call}: descriptor not closed"
    );
}

#[test]
fn import_refused_at_each_step() {
    in_child("import_refused_at_each_step", || {
        let size = 2 * MIB;
        for (call, errno, err) in [
            ("fstat", libc::EIO, os("fstat", libc::EIO)),
            (
                "fcntl(F_GET_SEALS)",
                libc::EIO,
                os("fcntl(F_GET_SEALS)", libc::EIO),
            ),
            ("mmap", libc::ENOMEM, os("mmap", libc::ENOMEM)),
            (
                "madvise(MADV_POPULATE_READ)",
                libc::EFAULT,
                os("madvise(MADV_POPULATE_READ)", libc::EFAULT),
            ),
        ] {
            let (_, share) = shares(size);
            let before = Census::take();
            fault::reset();
            fault::fail(call, 1, errno);
            import_fails(share, call, err);
            let after = Census::take();
            assert_eq!(
                (after.memfd_maps, after.locked),
                (before.memfd_maps, before.locked)
            );
            assert_eq!(
                (after.ids, after.mapped),
                (before.ids, before.mapped),
                "{call}"
            );
        }
        // mlock2 refused under Pin::Required: LockRefused; under BestEffort a Block.
        let (_, share) = shares(size);
        fault::reset();
        fault::fail("mlock2", 1, libc::ENOMEM);
        let before = Census::take();
        let err = Block::import_read_only(share, Pin::Required).unwrap_err();
        assert!(
            matches!(err, MemError::LockRefused { errno: libc::ENOMEM, requested, .. } if requested == size),
            "{err:?}"
        );
        assert_eq!(Census::take().fds + 1, before.fds);
        let mut block = Block::open(size).unwrap();
        block.as_bytes_mut().fill(7);
        let writable = common::share_read_write(&block).unwrap();
        drop(block);
        fault::fail("mlock2", 1, libc::ENOMEM);
        let import = common::import(writable, Pin::BestEffort).unwrap();
        assert!(!import.is_pinned());
        assert!(import.as_bytes().iter().all(|&b| b == 7));
    });
}

// ---------------------------------------------------------------------------------------
// Share, send, receive

#[test]
fn share_refused_at_each_step() {
    in_child("share_refused_at_each_step", || {
        let block = Block::open(MIB).unwrap();
        let before = Census::take();
        for (access, call, errno, err) in [
            (
                Access::ReadWrite,
                "fcntl(F_GET_SEALS)",
                libc::EIO,
                os("fcntl(F_GET_SEALS)", libc::EIO),
            ),
            // Linux < 5.1 does not know F_SEAL_FUTURE_WRITE.
            (
                Access::ReadOnly,
                "fcntl(F_ADD_SEALS)",
                libc::EINVAL,
                os("fcntl(F_ADD_SEALS, F_SEAL_FUTURE_WRITE)", libc::EINVAL),
            ),
            (
                Access::ReadWrite,
                "fcntl(F_DUPFD_CLOEXEC)",
                libc::EMFILE,
                os("fcntl(F_DUPFD_CLOEXEC)", libc::EMFILE),
            ),
        ] {
            fault::reset();
            fault::fail(call, 1, errno);
            let refused = match access {
                Access::ReadOnly => block.share(),
                Access::ReadWrite => common::share_read_write(&block),
            };
            assert_eq!(refused.unwrap_err(), err);
            assert_eq!(fault::calls(call), 1);
            before.unchanged(call);
        }
        // The refused read-only share left the file writable: a read-write share works.
        fault::reset();
        assert!(common::share_read_write(&block).is_ok());
    });
}

#[test]
fn send_and_recv_retry_eintr_and_report_other_errors() {
    in_child("send_and_recv_retry_eintr_and_report_other_errors", || {
        let block = Block::open(MIB).unwrap();
        let share = common::share_read_write(&block).unwrap();
        let (here, there) = UnixStream::pair().unwrap();
        fault::fail("sendmsg", 1, libc::EINTR);
        share.send(&here).unwrap();
        assert_eq!(fault::calls("sendmsg"), 2);
        fault::fail("recvmsg", 1, libc::EINTR);
        let got = Share::recv(&there).unwrap();
        assert_eq!(fault::calls("recvmsg"), 2);
        assert_eq!(got.size(), MIB);
        drop(got);
        let before = Census::take();
        fault::fail("sendmsg", 1, libc::ENOBUFS);
        assert_eq!(share.send(&here).unwrap_err(), os("sendmsg", libc::ENOBUFS));
        fault::fail("recvmsg", 1, libc::ENOMEM);
        assert_eq!(
            Share::recv(&there).unwrap_err(),
            os("recvmsg", libc::ENOMEM)
        );
        before.unchanged("failed send and receive");
    });
}

#[test]
fn a_full_descriptor_table_refuses_share_and_receive() {
    // Not injected: RLIMIT_NOFILE lowered to the descriptors open now, so the next one is
    // refused by the kernel itself.
    in_child("a_full_descriptor_table_refuses_share_and_receive", || {
        let block = Block::open(MIB).unwrap();
        let (here, there) = UnixStream::pair().unwrap();
        let queued = common::share_read_write(&block).unwrap();
        queued.send(&here).unwrap();
        drop(queued);
        let before = Census::take();
        // Descriptors take the lowest free number, and RLIMIT_NOFILE bounds the numbers:
        // with the soft limit at the lowest free one, no descriptor can be made.
        // SAFETY: dup and close of a descriptor this process owns (the socket) and of the
        // copy just made.
        let lowest_free = unsafe {
            let probe = libc::dup(here.as_raw_fd());
            assert!(probe >= 0);
            libc::close(probe);
            probe
        };
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls on this (child) process's own limits.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
            let full = libc::rlimit {
                rlim_cur: lowest_free as libc::rlim_t,
                rlim_max: rl.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &full), 0);
        }
        assert_eq!(
            common::share_read_write(&block).unwrap_err(),
            os("fcntl(F_DUPFD_CLOEXEC)", libc::EMFILE)
        );
        // The kernel cannot install the descriptor that arrives: it drops it and says so
        // with MSG_CTRUNC (unix(7), scm_detach_fds), so the message is a share without its
        // descriptor.
        assert_eq!(
            Share::recv(&there).unwrap_err(),
            MemError::ShareFds {
                received: 0,
                truncated: true
            }
        );
        // SAFETY: as above; the hard limit was kept, so the soft one goes back up.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0);
        before.unchanged("a full descriptor table");
    });
}

// ---------------------------------------------------------------------------------------
// Freeze

/// A Tape of `size` bytes with one take of 8 words written `7`.
fn tape(size: usize) -> Tape {
    let tape = Tape::over(Block::open(size).unwrap());
    tape.take_slice::<u64>(8).unwrap().fill(7);
    tape
}

#[test]
fn freeze_refused_before_anything_changed() {
    in_child("freeze_refused_before_anything_changed", || {
        for (call, nth, errno, err) in [
            (
                "fcntl(F_GET_SEALS)",
                1,
                libc::EIO,
                os("fcntl(F_GET_SEALS)", libc::EIO),
            ),
            // Linux < 5.1: F_SEAL_FUTURE_WRITE unknown.
            (
                "fcntl(F_ADD_SEALS)",
                1,
                libc::EINVAL,
                os("fcntl(F_ADD_SEALS, F_SEAL_FUTURE_WRITE)", libc::EINVAL),
            ),
        ] {
            let mut tape = tape(MIB);
            fault::reset();
            fault::fail(call, nth, errno);
            assert_eq!(tape.freeze().unwrap_err(), err);
            assert!(!fault::pending());
            // Nothing changed: writable, takes work, not frozen.
            assert!(!tape.is_read_only() && !tape.is_frozen());
            assert_eq!(tape.block().access(), Access::ReadWrite);
            assert!(tape.take(8, 8).is_some());
            // And it freezes once the fault is gone.
            tape.freeze().unwrap();
            assert!(tape.is_frozen());
        }
    });
}

#[test]
fn freeze_f_seal_seal_refuses_the_first_seal() {
    // Not injected: a holder that added F_SEAL_SEAL makes every later seal EPERM, at share
    // and at freeze alike.
    in_child("freeze_f_seal_seal_refuses_the_first_seal", || {
        let mut tape = tape(MIB);
        let fd = tape.block().as_raw_fd();
        // SAFETY: fcntl on a descriptor the Tape keeps open; adding a seal changes no bytes.
        let sealed = unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, libc::F_SEAL_SEAL) };
        assert_eq!(sealed, 0);
        let err = os("fcntl(F_ADD_SEALS, F_SEAL_FUTURE_WRITE)", libc::EPERM);
        assert_eq!(tape.block().share().unwrap_err(), err);
        assert_eq!(tape.freeze().unwrap_err(), err);
        assert!(!tape.is_read_only());
        assert!(tape.take(8, 8).is_some());
    });
}

#[test]
fn freeze_replacement_mapping_fails() {
    in_child("freeze_replacement_mapping_fails", || {
        let before = Census::take();
        let mut tape = tape(MIB);
        fault::fail("mmap(MAP_FIXED)", 1, libc::ENOMEM);
        let err = os("mmap(MAP_FIXED, PROT_READ)", libc::ENOMEM);
        assert_eq!(tape.freeze().unwrap_err(), err);
        // The range is given up (size 0), read-only, never frozen; every later freeze
        // says the same.
        assert_eq!(tape.block().size(), 0);
        assert!(tape.is_read_only() && !tape.is_frozen());
        assert_eq!(tape.freeze().unwrap_err(), err);
        let id = tape.block().id();
        assert_eq!(
            tape.try_take(8, 8).unwrap_err(),
            MemError::TapeReadOnly { id, frozen: false }
        );
        drop(tape);
        // Everything but the mapping itself is given back: the descriptor, the id, the
        // registration. The range is left mapped on purpose (after a real failure it may
        // be a hole that another mapping took: specs/share.md), and with it its lock.
        let after = Census::take();
        assert_eq!(
            (after.fds, after.ids, after.mapped),
            (before.fds, before.ids, before.mapped)
        );
        assert_eq!(after.memfd_maps, before.memfd_maps + 1);
    });
}

#[test]
fn freeze_relock_and_write_seal_refused() {
    in_child("freeze_relock_and_write_seal_refused", || {
        // The new read-only mapping cannot be locked: read-only, not frozen; the next
        // freeze locks, then seals.
        let mut tape = tape(MIB);
        fault::fail("mlock2", 1, libc::ENOMEM);
        let err = tape.freeze().unwrap_err();
        assert!(
            matches!(
                err,
                MemError::LockRefused {
                    errno: libc::ENOMEM,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(tape.is_read_only() && !tape.is_frozen() && !tape.block().is_pinned());
        tape.freeze().unwrap();
        assert!(tape.is_frozen() && tape.block().is_pinned());
        assert_eq!(tape.read::<u64>(0, 8).unwrap(), &[7; 8]);
        // F_SEAL_WRITE refused with something other than EBUSY (the first add_seals is
        // F_SEAL_FUTURE_WRITE, the second F_SEAL_WRITE).
        let mut tape = self::tape(MIB);
        fault::reset();
        fault::fail("fcntl(F_ADD_SEALS)", 2, libc::EIO);
        assert_eq!(
            tape.freeze().unwrap_err(),
            os("fcntl(F_ADD_SEALS, F_SEAL_WRITE)", libc::EIO)
        );
        assert!(tape.is_read_only() && !tape.is_frozen());
        tape.freeze().unwrap();
        assert!(tape.is_frozen());
    });
}

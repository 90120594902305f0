//! Blocks at server scale (`specs/scale.md`): huge pages where the machine offers them and
//! a clear refusal where it does not, NUMA placement and its contract, the populating
//! threads, `Progress`, and the background release of large Blocks.
//!
//! The machine decides which branch of a huge-page test runs: without hugetlb pages
//! reserved and with THP for shmem `never` (the defaults), the refusals are checked; with
//! pages reserved or `shmem_enabled` at `advise`, the Blocks themselves (sharing and freezing
//! included). Tests never change those settings; BENCHMARKS.md says how both branches were
//! run. Tests that measure process state or inject faults run in a child process.

#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Census, Peer, ack, assert_child_passes, fill, holds, is_child, parent_socket};
use unimem::{
    Access, Block, ErrorKind, HugePages, Limits, MemError, Pages, Pin, Progress, Share, page_size,
};

const MIB: usize = 1 << 20;

/// Usable pages of the default hugetlb size, and that size, if the machine has a pool.
fn hugetlb_offer() -> Option<(usize, u64)> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: usize = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Hugepagesize:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let size = kib * 1024;
    let pool = Limits::read()
        .hugetlb
        .into_iter()
        .find(|pool| pool.page_size == size)?;
    Some((size, pool.usable()))
}

/// The default hugetlb page size, where at least `pages` of it are usable; otherwise `None`,
/// after [`common::skip`]ping `test` (requirement `HUGETLB`: `.ci/run` reserves 64 pages
/// of 2 MiB for its test step and requires them).
fn hugetlb_or_skip(test: &str, pages: u64) -> Option<usize> {
    match hugetlb_offer() {
        Some((size, usable)) if usable >= pages => Some(size),
        offer => {
            let why = format!(
                "fewer than {pages} hugetlb pages usable here (default size and usable: \
                 {offer:?}); as root: echo 64 > /proc/sys/vm/nr_hugepages"
            );
            common::skip(test, "HUGETLB", &why);
            None
        }
    }
}

/// Whether THP for shmem is allowed here, and its size.
fn thp_offer() -> Option<usize> {
    let limits = Limits::read();
    limits
        .transparent_huge_pages()
        .then_some(limits.thp_size)
        .flatten()
}

/// `ShmemPmdMapped` of the mapping at `address` in `/proc/self/smaps`, in bytes.
fn pmd_mapped(address: *mut u8) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let start = format!("{:x}-", address as usize);
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start)).skip(1);
    lines
        .find(|l| l.starts_with("ShmemPmdMapped:") || l.starts_with("FilePmdMapped:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

#[test]
fn never_is_base_pages() {
    let block = Block::builder(3 * page_size() + 1)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    assert_eq!(block.pages(), Pages::Base);
    assert_eq!(block.page_size(), page_size());
    // Exactly the size rounded to the base page: never more.
    assert_eq!(block.size(), 4 * page_size());
    assert_eq!(block.numa_node(), None);
}

#[test]
fn try_gives_what_the_machine_offers() {
    let asked = 4 * MIB + 1;
    let mut block = Block::builder(asked)
        .huge_pages(HugePages::Try)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    let (pages, page) = (block.pages(), block.page_size());
    let expected = match (hugetlb_offer(), thp_offer()) {
        (Some((size, usable)), _) if usable as usize * size >= asked.next_multiple_of(size) => {
            Pages::HugeTlb
        }
        (_, Some(_)) => Pages::Transparent,
        _ => Pages::Base,
    };
    assert_eq!(pages, expected, "{block:?}");
    assert_eq!(
        block.size(),
        asked.next_multiple_of(page),
        "rounded only to the page in use"
    );
    assert_eq!(
        block.address() as usize % page,
        0,
        "aligned to the page in use"
    );
    match pages {
        Pages::Base => assert_eq!(page, page_size()),
        Pages::Transparent => {
            assert_eq!(Some(page), thp_offer());
            eprintln!(
                "transparent huge pages: {:?} bytes mapped huge of {}",
                pmd_mapped(block.address()),
                block.size()
            );
        }
        Pages::HugeTlb => assert_eq!(Some(page), hugetlb_offer().map(|(size, _)| size)),
        other => panic!("unexpected pages {other:?}"),
    }
    fill(block.as_slice_mut(), 7);
    assert!(holds(block.as_slice(), 7));
    eprintln!("Try gave {pages} pages of {page} bytes");
}

#[test]
fn required_without_huge_pages_says_what_to_enable() {
    let offered = hugetlb_offer().is_some_and(|(_, usable)| usable > 0) || thp_offer().is_some();
    let opened = Block::builder(MIB)
        .huge_pages(HugePages::Required)
        .pin(Pin::BestEffort)
        .open();
    if offered {
        // A Block smaller than one huge page is rounded up to one under Required.
        let block = opened.unwrap();
        assert_ne!(block.pages(), Pages::Base);
        assert_eq!(block.size(), block.page_size());
        eprintln!(
            "Required gave {} pages of {}",
            block.pages(),
            block.page_size()
        );
    } else {
        let err = opened.unwrap_err();
        let MemError::HugePagesUnavailable {
            requested,
            page_size: page,
            needed,
            shmem_enabled,
            node: None,
            ..
        } = err
        else {
            panic!("expected HugePagesUnavailable, got {err:?}");
        };
        assert!(
            page > page_size() && requested == page && needed == 1,
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        let text = err.to_string();
        for part in ["nr_hugepages", "shmem_enabled", "GB/s", "HugePages::Try"] {
            assert!(text.contains(part), "{part} not in: {text}");
        }
        assert!(
            text.contains(shmem_enabled) || shmem_enabled == "not that size",
            "{text}"
        );
    }
    // Rounding to a huge page past isize::MAX overflows, however the machine is set.
    let huge = isize::MAX as usize & !(page_size() - 1);
    let err = Block::builder(huge)
        .huge_pages(HugePages::Required)
        .huge_page_size(2 * MIB)
        .open()
        .unwrap_err();
    assert!(
        matches!(err, MemError::SizeOverflow { granule, .. } if granule == 2 * MIB),
        "{err:?}"
    );
}

#[test]
fn unknown_huge_page_size_is_refused() {
    let err = Block::builder(MIB)
        .huge_pages(HugePages::Required)
        .huge_page_size(3 * MIB)
        .open()
        .unwrap_err();
    assert!(
        matches!(err, MemError::HugePagesUnavailable { page_size, free: 0, shmem_enabled: "not that size", .. } if page_size == 3 * MIB),
        "{err:?}"
    );
    assert!(err.to_string().contains("hugepages-3072kB"), "{err}");
    // Under Try the same size gives base pages.
    let block = Block::builder(4 * MIB)
        .huge_pages(HugePages::Try)
        .huge_page_size(3 * MIB)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    assert_eq!(block.pages(), Pages::Base);
    // 1 GiB pages: only a pool of them gives them (never THP).
    let gib = Block::builder(MIB)
        .huge_pages(HugePages::Required)
        .huge_page_size(1 << 30)
        .pin(Pin::BestEffort)
        .open();
    match gib {
        Ok(block) => assert_eq!(
            (block.pages(), block.page_size()),
            (Pages::HugeTlb, 1 << 30)
        ),
        Err(err) => assert!(
            matches!(err, MemError::HugePagesUnavailable { page_size, .. } if page_size == 1 << 30)
                && err.to_string().contains("hugepages-1048576kB"),
            "{err:?}"
        ),
    }
}

#[test]
fn hugetlb_blocks_share_freeze_and_import() {
    const TEST: &str = "hugetlb_blocks_share_freeze_and_import";
    if is_child(TEST) {
        let socket = parent_socket();
        let share = Share::recv(&socket).unwrap();
        let mut peer = common::import(share, Pin::BestEffort).unwrap();
        assert_eq!(peer.pages(), Pages::HugeTlb);
        assert!(peer.page_size() > page_size());
        assert!(holds(peer.as_slice(), 21));
        peer.as_slice_mut::<u64>()[1] = 0xFEED;
        drop(peer);
        ack(&socket);
        let frozen =
            Block::import_read_only(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        assert!(frozen.is_frozen());
        assert_eq!(frozen.pages(), Pages::HugeTlb);
        assert_eq!(frozen.as_slice::<u64>().unwrap()[1], 0xFEED);
        ack(&socket);
        return;
    }
    let Some(page) = hugetlb_or_skip(TEST, 2) else {
        return;
    };
    let mut owner = Block::builder(2 * page)
        .huge_pages(HugePages::Required)
        .name("unimem-hugetlb-test")
        .open()
        .unwrap();
    assert_eq!((owner.pages(), owner.page_size()), (Pages::HugeTlb, page));
    fill(owner.as_slice_mut(), 21);
    let mut peer = Peer::spawn(TEST, &[]);
    peer.send_share(&owner, Access::ReadWrite);
    peer.wait_ack();
    assert_eq!(owner.as_slice::<u64>()[1], 0xFEED, "the peer's write");
    let frozen = owner.freeze().unwrap();
    assert!(frozen.is_frozen());
    assert_eq!(frozen.pages(), Pages::HugeTlb);
    peer.send_share(&frozen, Access::ReadOnly);
    peer.wait_ack();
    peer.assert_passes();
}

/// The hugetlb candidate fails after the choice: its pages taken between the check and the
/// `mmap` (`ENOMEM`), or a page that cannot be had when populating (`EFAULT`, a `SIGBUS`
/// avoided; `ENOMEM`), each injected once. `Required` reports `HugePagesUnavailable` with
/// the numbers of now, `Try` takes the next candidate; nothing is left behind either way.
#[cfg(feature = "fault-injection")]
#[test]
fn hugetlb_pages_that_cannot_be_had_fall_back_or_are_refused() {
    const TEST: &str = "hugetlb_pages_that_cannot_be_had_fall_back_or_are_refused";
    if !is_child(TEST) {
        if hugetlb_or_skip(TEST, 2).is_some() {
            assert_child_passes(TEST);
        }
        return;
    }
    let (page, _) = hugetlb_offer().unwrap();
    let size = 2 * page;
    // The candidate after hugetlb, as the machine decides: THP for shmem where it is allowed
    // and of this size, else (under `Try`) base pages.
    let next = match thp_offer() {
        Some(pmd) if pmd == page => Pages::Transparent,
        _ => Pages::Base,
    };
    let open = |policy| {
        Block::builder(size)
            .huge_pages(policy)
            .huge_page_size(page)
            .pin(Pin::BestEffort)
            .name("unimem-hugetlb-fault")
            .open()
    };
    for (call, errno) in [
        ("mmap", libc::ENOMEM),
        ("madvise(MADV_POPULATE_WRITE)", libc::EFAULT),
        ("madvise(MADV_POPULATE_WRITE)", libc::ENOMEM),
    ] {
        let what = format!("{call} failing with {errno}");
        let before = Census::take();
        unimem::fault::reset();
        unimem::fault::fail(call, 1, errno);
        match (open(HugePages::Required), next) {
            (Ok(block), Pages::Transparent) => assert_eq!(block.pages(), next, "{what}"),
            (Err(err), Pages::Base) => {
                let MemError::HugePagesUnavailable {
                    requested,
                    page_size: got_page,
                    needed: 2,
                    node: None,
                    ..
                } = err
                else {
                    panic!("{what}: expected HugePagesUnavailable, got {err:?}");
                };
                assert_eq!((requested, got_page), (size, page), "{what}");
                assert!(err.to_string().contains("HugePages::Try"), "{what}: {err}");
            }
            (got, _) => panic!("{what}: Required gave {got:?}, expected {next}"),
        }
        assert!(!unimem::fault::pending(), "{what}: never reached");
        before.unchanged(&format!("Required, {what}"));
        unimem::fault::fail(call, 1, errno);
        let mut block = open(HugePages::Try).unwrap();
        assert!(!unimem::fault::pending(), "{what}: never reached");
        assert_eq!(block.pages(), next, "{what}");
        fill(block.as_slice_mut(), 9);
        assert!(holds(block.as_slice(), 9));
        drop(block);
        before.unchanged(&format!("Try, {what}"));
    }
    // Without a fault the same Builder gets hugetlb pages: the failures above were the
    // injected ones.
    unimem::fault::reset();
    let block = open(HugePages::Required).unwrap();
    assert_eq!((block.pages(), block.page_size()), (Pages::HugeTlb, page));
}

/// A hostile owner's hugetlb memfd whose size ends inside a huge page: `ftruncate` refuses
/// such a size, but `fallocate` before `F_SEAL_GROW` sets it (the kernel allocates whole
/// pages and sets the size to the byte). Mapped, its last page could not be unmapped
/// (`munmap` of a length that is not whole huge pages is `EINVAL`), so the import refuses it
/// before mapping anything, and closes the descriptor.
#[test]
fn a_hugetlb_share_ending_inside_a_huge_page_is_refused() {
    const TEST: &str = "a_hugetlb_share_ending_inside_a_huge_page_is_refused";
    if !is_child(TEST) {
        if hugetlb_or_skip(TEST, 2).is_some() {
            assert_child_passes(TEST);
        }
        return;
    }
    let (page, _) = hugetlb_offer().unwrap();
    let size = page + page_size();
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_HUGETLB;
    // SAFETY: memfd_create with a literal name; the descriptor is owned at once.
    let file = unsafe {
        let fd = libc::memfd_create(c"unimem-hostile-hugetlb".as_ptr(), flags);
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        OwnedFd::from_raw_fd(fd)
    };
    let fd = file.as_raw_fd();
    // SAFETY: ftruncate, fallocate and fcntl on an open descriptor change only the file.
    unsafe {
        assert_eq!(libc::ftruncate(fd, size as libc::off_t), -1);
        assert_eq!(
            common::errno(),
            libc::EINVAL,
            "ftruncate to part of a huge page"
        );
        let r = libc::fallocate(fd, 0, 0, size as libc::off_t);
        assert_eq!(r, 0, "fallocate: {}", std::io::Error::last_os_error());
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_FUTURE_WRITE;
        assert_eq!(libc::fcntl(fd, libc::F_ADD_SEALS, seals), 0);
    }
    let meta = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap();
    assert_eq!(meta.len(), size as u64, "the size set to the byte");
    assert!(
        meta.blocks() * 512 >= 2 * page as u64,
        "whole pages allocated"
    );
    let (sender, receiver) = UnixStream::pair().unwrap();
    let before = Census::take();
    common::send_raw(&sender, &share_header(size as u64), &[fd]);
    drop(file);
    let share = Share::recv(&receiver).unwrap();
    let err = Block::import_read_only(share, Pin::BestEffort).unwrap_err();
    assert_eq!(
        err,
        MemError::ShareHeader {
            len: 24,
            reason: "size is not a whole number of the file's huge pages"
        }
    );
    assert_eq!(err.kind(), ErrorKind::RefusedPeer);
    // The received descriptor is closed; the sender's copy was closed above.
    let mut after = before;
    after.fds -= 1;
    after.unchanged("a refused hugetlb share");
}

/// A read-only share header as `specs/share.md` lays it out, from a sender whose Block id
/// is 77.
fn share_header(size: u64) -> [u8; 24] {
    let mut header = [0u8; 24];
    header[..8].copy_from_slice(b"UNIMEMSH");
    header[8..10].copy_from_slice(&1u16.to_le_bytes());
    header[10] = 1;
    header[12..16].copy_from_slice(&77u32.to_le_bytes());
    header[16..24].copy_from_slice(&size.to_le_bytes());
    header
}

#[test]
fn numa_node_zero_lands_on_node_zero() {
    let block = Block::builder(8 * MIB)
        .numa_node(0)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    assert_eq!(block.numa_node(), Some(0));
    let nodes = block.numa_bytes().unwrap();
    assert_eq!(nodes, vec![(0, block.size() as u64)], "{nodes:?}");
    // Placed with several threads too (they run on node 0's CPUs).
    let block = Block::builder(128 * MIB)
        .numa_node(0)
        .threads(2)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    assert_eq!(block.numa_bytes().unwrap(), vec![(0, 128 * MIB as u64)]);
    assert!(Limits::read().numa_nodes.iter().any(|node| node.id == 0));
}

#[test]
fn missing_numa_node_is_a_clear_error() {
    let err = Block::builder(MIB).numa_node(4095).open().unwrap_err();
    let MemError::BadNumaNode {
        node: 4095,
        ref online,
        ..
    } = err
    else {
        panic!("expected BadNumaNode, got {err:?}");
    };
    assert!(!online.is_empty());
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("4095"), "{err}");
}

#[cfg(feature = "fault-injection")]
#[test]
fn mbind_failure_leaks_nothing() {
    const TEST: &str = "mbind_failure_leaks_nothing";
    if !is_child(TEST) {
        return assert_child_passes(TEST);
    }
    let fds = common::open_fds();
    let locked = common::status_bytes("VmLck:");
    unimem::fault::fail("mbind", 1, libc::EIO);
    let err = Block::builder(4 * MIB)
        .numa_node(0)
        .name("unimem-mbind-fault")
        .open()
        .unwrap_err();
    assert_eq!(
        err,
        MemError::Os {
            call: "mbind",
            errno: libc::EIO
        }
    );
    assert_eq!(common::open_fds(), fds);
    assert!(!common::memfd_mapped("unimem-mbind-fault"));
    assert_eq!(common::status_bytes("VmLck:"), locked);
    unimem::fault::reset();
}

#[test]
fn threads_option_changes_nothing_but_speed() {
    for threads in [1, 2, 3, 8] {
        let mut block = Block::builder(96 * MIB + 4096)
            .threads(threads)
            .pin(Pin::BestEffort)
            .open()
            .unwrap();
        assert!(block.as_bytes().iter().all(|&b| b == 0));
        fill(block.as_slice_mut(), threads as u64);
        assert!(holds(block.as_slice(), threads as u64));
    }
}

#[test]
fn progress_counts_every_byte() {
    let progress = Arc::new(Progress::new());
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (progress, done) = (Arc::clone(&progress), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut last = 0;
            let mut seen = 0;
            while !done.load(Ordering::Acquire) {
                let now = progress.populated();
                assert!(now >= last, "progress went back: {last} then {now}");
                assert!(now <= progress.to_populate().max(now));
                last = now;
                seen += 1;
                std::thread::yield_now();
            }
            seen
        })
    };
    let block = Block::builder(256 * MIB)
        .progress(&progress)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    done.store(true, Ordering::Release);
    assert!(watcher.join().unwrap() > 0);
    assert_eq!(progress.populated(), block.size() as u64);
    assert_eq!(progress.to_populate(), block.size() as u64);
    assert_eq!((progress.registered(), progress.to_register()), (0, 0));
    assert_eq!(progress.fraction(), 1.0);
    // The same Progress follows a second Block: the counters add up.
    let second = Block::builder(MIB)
        .progress(&progress)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    assert_eq!(progress.done(), (block.size() + second.size()) as u64);
    assert_eq!(progress.total(), progress.done());
}

#[cfg(feature = "fault-injection")]
#[test]
fn failed_open_withdraws_its_progress() {
    const TEST: &str = "failed_open_withdraws_its_progress";
    if !is_child(TEST) {
        return assert_child_passes(TEST);
    }
    let progress = Arc::new(Progress::new());
    // The second step of one thread fails: one 64 MiB step was counted first.
    unimem::fault::fail("madvise(MADV_POPULATE_WRITE)", 2, libc::ENOMEM);
    let err = Block::builder(128 * MIB)
        .threads(1)
        .progress(&progress)
        .open()
        .unwrap_err();
    assert_eq!(
        err,
        MemError::Os {
            call: "madvise(MADV_POPULATE_WRITE)",
            errno: libc::ENOMEM
        }
    );
    assert_eq!((progress.done(), progress.total()), (0, 0));
    unimem::fault::reset();
}

#[test]
fn large_blocks_are_released_in_the_background() {
    const TEST: &str = "large_blocks_are_released_in_the_background";
    if !is_child(TEST) {
        return assert_child_passes(TEST);
    }
    let fds = common::open_fds();
    let block = Block::builder(512 * MIB)
        .name("unimem-release-test")
        .open()
        .unwrap();
    assert!(common::memfd_mapped("unimem-release-test"));
    let id = block.id();
    drop(block);
    // The id is free at once; the memory may still be on its way back.
    let again = Block::builder(MIB).pin(Pin::BestEffort).open().unwrap();
    eprintln!(
        "{TEST}: releasing right after drop: {} bytes (id {id} reused: {})",
        Limits::read().releasing,
        again.id() == id
    );
    unimem::wait_for_releases();
    assert_eq!(Limits::read().releasing, 0);
    assert!(!common::memfd_mapped("unimem-release-test"));
    drop(again);
    assert_eq!(common::open_fds(), fds);
    // Small Blocks are released inline: gone when drop returns.
    let small = Block::builder(4 * MIB)
        .name("unimem-inline")
        .open()
        .unwrap();
    drop(small);
    assert!(!common::memfd_mapped("unimem-inline"));
}

#[test]
fn limits_report_pages_and_nodes() {
    let limits = Limits::read();
    assert!(limits.thp_size.is_none_or(|size| size > page_size()));
    for pool in &limits.hugetlb {
        assert!(pool.page_size > page_size() && pool.page_size.is_power_of_two());
        assert!(pool.free <= pool.total.max(pool.free));
    }
    assert!(!limits.numa_nodes.is_empty(), "one node at least on Linux");
    assert!(limits.numa_nodes.iter().any(|node| !node.cpus.is_empty()));
    eprintln!(
        "hugetlb {:?}, THP for shmem {:?} ({:?} bytes), nodes {:?}",
        limits.hugetlb, limits.shmem_thp, limits.thp_size, limits.numa_nodes
    );
}

#[test]
fn progress_with_blocks_and_threads_from_several_builders() {
    // Two Blocks opened at once on two threads, one Progress: it ends at the sum.
    let progress = Arc::new(Progress::new());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let progress = Arc::clone(&progress);
            std::thread::spawn(move || {
                Block::builder(64 * MIB)
                    .progress(&progress)
                    .pin(Pin::BestEffort)
                    .open()
                    .unwrap()
                    .size()
            })
        })
        .collect();
    let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(
        (progress.done(), progress.total()),
        (sum as u64, sum as u64)
    );
}

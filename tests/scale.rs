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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Peer, ack, assert_child_passes, fill, holds, is_child, parent_socket};
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
    let Some((page, usable)) = hugetlb_offer().filter(|&(_, usable)| usable >= 2) else {
        eprintln!("test {TEST}: skipped: fewer than 2 hugetlb pages free here");
        return;
    };
    eprintln!("{TEST}: {usable} hugetlb pages of {page} bytes free");
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

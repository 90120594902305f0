//! Block on the native backend: contents, sizes, ids, seals, locking, and every refusal,
//! the process-wide ones (VmLck, fds, rlimits) each in a child process of its own.

#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::os::fd::AsRawFd;

use common::{assert_child_passes, is_child};
use unimem::{Block, Limits, MemError, MemoryLimit, Pin, page_size};

const MIB: usize = 1 << 20;

#[test]
fn round_trip_is_zero_filled_and_keeps_data() {
    let mut block = Block::open(MIB).unwrap();
    assert!(block.as_bytes().iter().all(|&b| b == 0));
    for (i, x) in block.as_slice_mut::<u64>().iter_mut().enumerate() {
        *x = i as u64 * 3;
    }
    let words = block.as_slice::<u64>();
    assert_eq!(words.len(), MIB / 8);
    assert!(words.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
    block.as_f32_mut()[0] = 1.5;
    assert_eq!(block.as_f32()[0], 1.5);
    block.as_u16_mut()[7] = 0x3c00;
    assert_eq!(block.as_u16()[7], 0x3c00);
    assert_eq!(block.as_bytes_mut().len(), MIB);
    assert!(block.is_pinned());
    assert_eq!(block.backend(), "linux memfd");
}

#[test]
fn sizes_round_up_to_pages() {
    let page = page_size();
    for (asked, expect) in [
        (1, page),
        (page, page),
        (page + 1, 2 * page),
        (5 * page - 3, 5 * page),
    ] {
        assert_eq!(Block::open(asked).unwrap().size(), expect, "asked {asked}");
    }
    assert_eq!(Block::open(0).unwrap_err(), MemError::ZeroSize);
    for huge in [usize::MAX, usize::MAX - page + 2, isize::MAX as usize] {
        assert_eq!(
            Block::open(huge).unwrap_err(),
            MemError::SizeOverflow {
                requested: huge,
                granule: page
            }
        );
    }
}

#[test]
fn address_is_page_aligned_and_stable() {
    let block = Block::open(3 * page_size()).unwrap();
    let address = block.address();
    assert_eq!(address as usize % page_size(), 0);
    let moved = block;
    assert_eq!(moved.address(), address);
}

#[test]
fn ids_are_unique_among_live_blocks() {
    let blocks: Vec<Block> = (0..32).map(|_| Block::open(1).unwrap()).collect();
    let mut ids: Vec<u32> = blocks.iter().map(|b| b.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), blocks.len());
    assert!(!ids.contains(&0));
}

#[test]
fn seals_forbid_resizing() {
    let block = Block::open(2 * page_size()).unwrap();
    let fd = block.as_raw_fd();
    // SAFETY: fcntl/ftruncate on a descriptor the Block keeps open for this scope.
    let (seals, shrink, shrink_errno, grow, grow_errno) = unsafe {
        let seals = libc::fcntl(fd, libc::F_GET_SEALS);
        let shrink = libc::ftruncate(fd, 0);
        let shrink_errno = common::errno();
        let grow = libc::ftruncate(fd, 1 << 30);
        (seals, shrink, shrink_errno, grow, common::errno())
    };
    assert!(seals >= 0);
    assert_ne!(seals & libc::F_SEAL_SHRINK, 0, "SHRINK seal missing");
    assert_ne!(seals & libc::F_SEAL_GROW, 0, "GROW seal missing");
    assert_eq!((shrink, grow), (-1, -1));
    assert_eq!((shrink_errno, grow_errno), (libc::EPERM, libc::EPERM));
    assert_eq!(block.size(), 2 * page_size());
}

#[test]
fn names_show_in_maps() {
    let block = Block::builder(1).name("unimem-name-test").open().unwrap();
    assert_eq!(block.name(), "unimem-name-test");
    assert!(common::memfd_mapped("unimem-name-test"));
    drop(block);
    assert!(!common::memfd_mapped("unimem-name-test"));
}

#[test]
fn vmlck_follows_block_lifetime() {
    if is_child("vmlck_follows_block_lifetime") {
        // 96 MiB: large enough to be populated by several threads.
        let size = 96 * MIB as u64;
        let before = common::status_bytes("VmLck:");
        let fds = common::open_fds();
        let block = Block::open(size as usize).unwrap();
        assert!(block.is_pinned());
        assert_eq!(common::status_bytes("VmLck:") - before, size);
        assert!(common::status_bytes("VmRSS:") >= size);
        assert!(block.as_bytes().iter().all(|&b| b == 0));
        drop(block);
        assert_eq!(common::status_bytes("VmLck:"), before);
        assert_eq!(common::open_fds(), fds);
        return;
    }
    assert_child_passes("vmlck_follows_block_lifetime");
}

#[test]
fn mlock_refused_is_an_error_and_leaks_nothing() {
    if is_child("mlock_refused_is_an_error_and_leaks_nothing") {
        common::drop_privileges(64 << 10);
        let fds = common::open_fds();
        let err = Block::builder(4 * MIB).name("refused").open().unwrap_err();
        match err {
            MemError::LockRefused {
                requested,
                errno,
                limit,
                locked,
            } => {
                assert_eq!(requested, 4 * MIB);
                assert_eq!(errno, libc::ENOMEM);
                assert_eq!(limit, Some(64 << 10));
                assert_eq!(locked, 0);
            }
            other => panic!("expected LockRefused, got {other:?}"),
        }
        let text = err.to_string();
        for remedy in [
            "ulimit -l",
            "LimitMEMLOCK=",
            "CAP_IPC_LOCK",
            "Pin::BestEffort",
            "64.0 KiB",
        ] {
            assert!(text.contains(remedy), "{text:?} lacks {remedy:?}");
        }
        assert_eq!(common::open_fds(), fds, "fd leaked");
        assert!(!common::memfd_mapped("refused"), "mapping leaked");
        assert_eq!(common::status_bytes("VmLck:"), 0);
        return;
    }
    assert_child_passes("mlock_refused_is_an_error_and_leaks_nothing");
}

#[test]
fn mlock_refused_with_zero_limit_says_eperm() {
    if is_child("mlock_refused_with_zero_limit_says_eperm") {
        common::drop_privileges(0);
        let err = Block::open(MIB).unwrap_err();
        assert!(
            matches!(
                err,
                MemError::LockRefused {
                    errno: libc::EPERM,
                    limit: Some(0),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("EPERM"));
        return;
    }
    assert_child_passes("mlock_refused_with_zero_limit_says_eperm");
}

#[test]
fn best_effort_runs_unpinned_when_refused() {
    if is_child("best_effort_runs_unpinned_when_refused") {
        common::drop_privileges(64 << 10);
        let mut block = Block::builder(4 * MIB).pin(Pin::BestEffort).open().unwrap();
        assert!(!block.is_pinned());
        assert_eq!(common::status_bytes("VmLck:"), 0);
        // Populated even though not locked.
        assert!(common::status_bytes("VmRSS:") >= 4 * MIB as u64);
        block.as_bytes_mut().fill(7);
        assert!(block.as_bytes().iter().all(|&b| b == 7));
        return;
    }
    assert_child_passes("best_effort_runs_unpinned_when_refused");
}

#[test]
fn oversize_is_refused_before_touching_memory() {
    if is_child("oversize_is_refused_before_touching_memory") {
        // Above MemAvailable, which is checked first: always that limit (the cgroup's is
        // `cgroup_limit_is_refused_before_touching_memory`).
        let available = Limits::read().mem_available.expect("MemAvailable readable");
        let asked = (available as usize).saturating_add(1 << 30);
        let rss = common::status_bytes("VmRSS:");
        let fds = common::open_fds();
        let err = Block::open(asked).unwrap_err();
        match err {
            MemError::OutOfMemory {
                requested,
                available,
                limit,
            } => {
                assert!(requested >= asked);
                assert!(available < requested as u64);
                assert_eq!(limit, MemoryLimit::MemAvailable);
            }
            other => panic!("expected OutOfMemory, got {other:?}"),
        }
        assert!(err.to_string().contains("OOM killer"));
        assert!(
            common::status_bytes("VmRSS:") < rss + 8 * MIB as u64,
            "memory was touched"
        );
        assert_eq!(common::open_fds(), fds, "fd leaked");
        return;
    }
    assert_child_passes("oversize_is_refused_before_touching_memory");
}

#[test]
fn blocks_work_across_threads() {
    let block = Block::open(MIB).unwrap();
    let shared = &block;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(move || assert!(shared.as_bytes().iter().all(|&b| b == 0)));
        }
    });
    let moved = std::thread::spawn(move || block.size()).join().unwrap();
    assert_eq!(moved, MIB);
}

/// This process's memory cgroup directory and its files' names (limit, member list), v1
/// (the `memory` controller) or v2, or why there is none to use.
fn memory_cgroup() -> Result<(std::path::PathBuf, &'static str), String> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            return Ok((
                std::path::Path::new("/sys/fs/cgroup/memory").join(path),
                "memory.limit_in_bytes",
            ));
        }
        if id == "0" && controllers.is_empty() {
            let dir = std::path::Path::new("/sys/fs/cgroup").join(path);
            let enabled =
                std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            if enabled.split_whitespace().any(|c| c == "memory") {
                return Ok((dir, "memory.max"));
            }
        }
    }
    Err("no memory cgroup this process can make a child of (v1 memory controller, or v2 with memory in cgroup.subtree_control)".into())
}

#[test]
fn cgroup_limit_is_refused_before_touching_memory() {
    // A real cgroup: a child of this process's memory cgroup with a 64 MiB limit, which the
    // child test process moves itself into (and out of again); the parent removes it.
    let test = "cgroup_limit_is_refused_before_touching_memory";
    if is_child(test) {
        let name = std::env::var("UNIMEM_CGROUP").unwrap();
        let (parent, limit_file) = memory_cgroup().unwrap();
        let dir = parent.join(&name);
        std::fs::write(dir.join(limit_file), (64 * MIB).to_string()).unwrap();
        let me = std::process::id().to_string();
        std::fs::write(dir.join("cgroup.procs"), &me).unwrap();
        let free = Limits::read()
            .cgroup_free
            .expect("the cgroup limit is read");
        assert!(free <= 64 * MIB as u64, "{free}");
        let before = common::Census::take();
        let err = Block::open(128 * MIB).unwrap_err();
        std::fs::write(parent.join("cgroup.procs"), &me).unwrap();
        match err {
            MemError::OutOfMemory {
                requested,
                available,
                limit,
            } => {
                assert_eq!((requested, limit), (128 * MIB, MemoryLimit::Cgroup));
                assert!(available <= 64 * MIB as u64);
            }
            other => panic!("expected OutOfMemory, got {other:?}"),
        }
        assert!(err.to_string().contains("cgroup"), "{err}");
        before.unchanged("a refused open");
        return;
    }
    if !common::root_or_skip(test, "only root can make a cgroup") {
        return;
    }
    let name = format!("unimem-test-{}", std::process::id());
    let dir = match memory_cgroup() {
        Ok((parent, _)) => parent.join(&name),
        Err(why) => return common::skip(test, "CGROUP", &why),
    };
    if let Err(err) = std::fs::create_dir(&dir) {
        return common::skip(test, "CGROUP", &format!("mkdir {}: {err}", dir.display()));
    }
    let out = common::run_child_with(test, &[("UNIMEM_CGROUP", name)]);
    // The child has exited (and left the cgroup): it can go.
    let removed = std::fs::remove_dir(&dir);
    common::assert_passed(test, &out);
    removed.unwrap();
}

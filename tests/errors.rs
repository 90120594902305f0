//! Every MemError variant's message: what happened, the numbers, and what to do.

use unimem::{MemError, MemoryLimit};

fn text(err: MemError) -> String {
    let text = err.to_string();
    assert!(!text.is_empty());
    text
}

#[test]
fn zero_size() {
    assert!(text(MemError::ZeroSize).contains("at least one byte"));
}

#[test]
fn size_overflow() {
    let t = text(MemError::SizeOverflow {
        requested: usize::MAX,
        granule: 4096,
    });
    assert!(t.contains(&usize::MAX.to_string()) && t.contains("4096") && t.contains("overflows"));
}

#[test]
fn out_of_memory() {
    let t = text(MemError::OutOfMemory {
        requested: 3 << 30,
        available: 1 << 30,
        limit: MemoryLimit::Cgroup,
    });
    assert!(
        t.contains("3.0 GiB") && t.contains("1.0 GiB") && t.contains("cgroup"),
        "{t}"
    );
    assert!(t.contains("OOM killer"));
    let t = text(MemError::OutOfMemory {
        requested: 1 << 20,
        available: 0,
        limit: MemoryLimit::MemAvailable,
    });
    assert!(t.contains("MemAvailable"), "{t}");
}

#[test]
fn lock_refused() {
    let t = text(MemError::LockRefused {
        requested: 64 << 20,
        errno: libc::ENOMEM,
        limit: Some(8 << 20),
        locked: 1 << 20,
    });
    for part in [
        "64.0 MiB",
        "67108864",
        "ENOMEM",
        "8.0 MiB",
        "1.0 MiB already locked",
        "ulimit -l",
        "LimitMEMLOCK=",
        "CAP_IPC_LOCK",
        "Pin::BestEffort",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
    let t = text(MemError::LockRefused {
        requested: 4096,
        errno: libc::EPERM,
        limit: None,
        locked: 0,
    });
    assert!(t.contains("unlimited") && t.contains("EPERM"), "{t}");
}

#[test]
fn pin_unsupported() {
    let t = text(MemError::PinUnsupported {
        backend: "portable heap",
    });
    assert!(t.contains("portable heap") && t.contains("Pin::BestEffort"));
}

#[test]
fn bad_name() {
    let t = text(MemError::BadName {
        len: 300,
        reason: "longer than 249 bytes",
    });
    assert!(t.contains("300") && t.contains("249"));
}

#[test]
fn alloc_failed() {
    assert!(text(MemError::AllocFailed { requested: 1 << 30 }).contains("1.0 GiB"));
}

#[test]
fn os() {
    let t = text(MemError::Os {
        call: "memfd_create",
        errno: libc::EMFILE,
    });
    assert!(t.contains("memfd_create") && t.contains("EMFILE"), "{t}");
}

#[test]
fn bad_alignment() {
    let t = text(MemError::BadAlignment { align: 48 });
    assert!(t.contains("48") && t.contains("power of two"), "{t}");
}

#[test]
fn take_overflow() {
    let t = text(MemError::TakeOverflow {
        count: 1,
        size: usize::MAX,
        align: 8,
    });
    assert!(
        t.contains(&usize::MAX.to_string())
            && t.contains("aligned to 8")
            && t.contains("isize::MAX"),
        "{t}"
    );
    assert!(!t.contains("values of"), "{t}");
    let t = text(MemError::TakeOverflow {
        count: 1 << 62,
        size: 8,
        align: 8,
    });
    assert!(
        t.contains(&(1usize << 62).to_string()) && t.contains("values of 8 bytes"),
        "{t}"
    );
}

#[test]
fn tape_full() {
    let t = text(MemError::TapeFull {
        requested: 3 << 20,
        align: 64,
        free: 1 << 20,
    });
    for part in [
        "3.0 MiB",
        "3145728",
        "aligned to 64",
        "1.0 MiB",
        "1048576",
        "clear",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn model_zero() {
    let t = text(MemError::ModelZero { field: "layers" });
    assert!(t.contains("layers = 0") && t.contains("at least 1"), "{t}");
}

#[test]
fn model_overflow() {
    let t = text(MemError::ModelOverflow {
        part: "history",
        log2: 70,
    });
    assert!(
        t.contains("history") && t.contains("2^70") && t.contains("isize::MAX"),
        "{t}"
    );
}

#[test]
fn empty_grid() {
    let t = text(MemError::EmptyGrid {
        cell_size: 0,
        cells: 16,
    });
    for part in [
        "16 cells",
        "0 bytes",
        "nonzero cell size",
        "at least one cell",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn grid_overflow() {
    let t = text(MemError::GridOverflow {
        cell_size: 1 << 40,
        cells: 1 << 30,
        align: 4096,
    });
    for part in [
        &(1usize << 40).to_string(),
        &(1usize << 30).to_string(),
        "aligned to 4096",
        "isize::MAX",
        "fewer or smaller cells",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn too_many_cells() {
    let t = text(MemError::TooManyCells {
        cells: 1 << 33,
        max: u32::MAX as usize,
    });
    for part in [
        &(1usize << 33).to_string(),
        &u32::MAX.to_string(),
        "u32",
        "larger cells",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn grid_full() {
    let t = text(MemError::GridFull { cells: 4096 });
    for part in ["all 4096 cells", "GridLanes", "release", "larger Grid"] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn stale_cell() {
    let t = text(MemError::StaleCell {
        index: 17,
        generation: 3,
        current: 4,
    });
    for part in [
        "cell 17",
        "generation 3",
        "generation 4",
        "stale",
        "double release",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn foreign_cell() {
    let t = text(MemError::ForeignCell { grid: 2, owner: 9 });
    for part in ["Grid #9", "not to Grid #2", "the Grid it came from"] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

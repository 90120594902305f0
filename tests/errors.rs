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
fn wire_refused() {
    let t = text(MemError::WireRefused {
        requested: 64 << 20,
        errno: libc::EAGAIN,
        limit: None,
    });
    for part in [
        "64.0 MiB",
        "67108864",
        "EAGAIN",
        "unlimited",
        "vm.user_wire_limit",
        "Pin::BestEffort",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
    let t = text(MemError::WireRefused {
        requested: 1 << 20,
        errno: libc::ENOMEM,
        limit: Some(64 << 10),
    });
    assert!(t.contains("64.0 KiB") && t.contains("ENOMEM"), "{t}");
}

#[test]
fn surface_refused() {
    let t = text(MemError::SurfaceRefused {
        requested: 1 << 30,
        width: 1 << 30,
        height: 1,
        bytes_per_row: 1 << 30,
        max_width: 16384,
        max_alloc: 0,
    });
    for part in [
        "IOSurfaceCreate",
        "1.0 GiB",
        "1073741824",
        "width 16384",
        "alloc size none",
        "split",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn surface_checks() {
    let t = text(MemError::SurfaceTooSmall {
        requested: 32768,
        actual: 16384,
    });
    assert!(t.contains("16384") && t.contains("32768") && t.contains("report"));
    let t = text(MemError::SurfaceSizeUnaligned {
        size: 20000,
        page: 16384,
    });
    assert!(t.contains("20000") && t.contains("16384-byte pages"), "{t}");
    let t = text(MemError::SurfaceAddress {
        address: 0x1234,
        page: 16384,
    });
    assert!(t.contains("0x1234") && t.contains("16384"), "{t}");
    let t = text(MemError::SurfaceRowPitch {
        bytes_per_row: 200,
        min: 200,
        align: 64,
    });
    assert!(
        t.contains("200 bytes") && t.contains("multiple of 64"),
        "{t}"
    );
}

#[test]
fn bad_surface_shape() {
    let t = text(MemError::BadSurfaceShape {
        width: 0,
        height: 3,
        reason: "width is zero",
    });
    assert!(t.contains("0 x 3") && t.contains("width is zero"), "{t}");
}

#[test]
fn kern() {
    let t = text(MemError::Kern {
        call: "IOSurfaceLock",
        code: 0xE000_02CC_u32 as i32,
    });
    assert!(
        t.contains("IOSurfaceLock") && t.contains("0xe00002cc") && t.contains("CannotLock"),
        "{t}"
    );
    let t = text(MemError::Kern {
        call: "mach_port_deallocate",
        code: 15,
    });
    assert!(t.contains("KERN_INVALID_NAME"), "{t}");
    assert!(
        text(MemError::Kern {
            call: "x",
            code: 12345
        })
        .contains("unlisted")
    );
}

#[test]
fn mach_port_errors() {
    let t = text(MemError::SurfaceLookupFailed { port: 0x1503 });
    assert!(t.contains("0x1503") && t.contains("mach_port"), "{t}");
    let t = text(MemError::SurfaceInUse { id: 42 });
    assert!(t.contains("42") && t.contains("alias"), "{t}");
    let t = text(MemError::MachPortFailed { id: 42 });
    assert!(
        t.contains("42") && t.contains("IOSurfaceCreateMachPort"),
        "{t}"
    );
}

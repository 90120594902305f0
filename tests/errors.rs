//! Every MemError variant's message: what happened, the numbers, and what to do.

use unimem::{Access, MemError, MemoryLimit};

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

/// Fails with the message unless it contains every part.
fn contains_all(t: &str, parts: &[&str]) {
    for part in parts {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn cuda_driver_missing() {
    let t = text(MemError::CudaDriverMissing {
        library: "libcuda.so.1",
        reason: "libcuda.so.1: cannot open shared object file: No such file or directory".into(),
    });
    contains_all(
        &t,
        &[
            "libcuda.so.1",
            "cannot open shared object file",
            "NVIDIA driver",
            "nvidia-smi",
            "no CUDA toolkit",
        ],
    );
}

#[test]
fn cuda_symbol_missing() {
    let t = text(MemError::CudaSymbolMissing {
        library: "libcuda.so.1",
        symbol: "cuMemHostRegister_v2",
        reason: "undefined symbol: cuMemHostRegister_v2".into(),
    });
    contains_all(
        &t,
        &[
            "libcuda.so.1",
            "cuMemHostRegister_v2",
            "undefined symbol",
            "newer NVIDIA driver",
        ],
    );
}

#[test]
fn cuda_init_failed() {
    let t = text(MemError::CudaInitFailed {
        code: 100,
        name: "CUDA_ERROR_NO_DEVICE",
    });
    contains_all(
        &t,
        &[
            "cuInit",
            "CUDA_ERROR_NO_DEVICE",
            "(100)",
            "CUDA_VISIBLE_DEVICES",
        ],
    );
    let t = text(MemError::CudaInitFailed {
        code: 34,
        name: "CUDA_ERROR_STUB_LIBRARY",
    });
    contains_all(&t, &["CUDA_ERROR_STUB_LIBRARY", "(34)", "stub"]);
    let t = text(MemError::CudaInitFailed {
        code: 999,
        name: "CUDA_ERROR_UNKNOWN",
    });
    contains_all(&t, &["CUDA_ERROR_UNKNOWN", "/dev/nvidia"]);
}

#[test]
fn cuda_bad_device() {
    let t = text(MemError::CudaBadDevice {
        ordinal: 3,
        count: 2,
    });
    contains_all(
        &t,
        &["device 3", "2 device(s)", "0 to 1", "CUDA_VISIBLE_DEVICES"],
    );
    let t = text(MemError::CudaBadDevice {
        ordinal: 0,
        count: 0,
    });
    contains_all(&t, &["device 0", "no CUDA device"]);
}

#[test]
fn cuda_unsupported() {
    let t = text(MemError::CudaUnsupported {
        device: 1,
        attribute: "HOST_REGISTER_SUPPORTED",
        value: 0,
    });
    contains_all(
        &t,
        &["device 1", "HOST_REGISTER_SUPPORTED = 0", "another device"],
    );
}

#[test]
fn cuda_already_registered() {
    let t = text(MemError::CudaAlreadyRegistered {
        device: 0,
        address: 0x7f00_0000_0000,
        size: 64 << 20,
    });
    contains_all(
        &t,
        &[
            "64.0 MiB",
            "67108864",
            "0x7f0000000000",
            "device 0",
            "already registered",
            "712",
            "drop it",
            "cuda_device_ptr",
        ],
    );
}

#[test]
fn cuda_call_failed() {
    let t = text(MemError::Cuda {
        call: "cuMemAlloc_v2",
        code: 2,
        name: "CUDA_ERROR_OUT_OF_MEMORY",
        device: Some(0),
        bytes: Some(1 << 30),
    });
    contains_all(
        &t,
        &[
            "cuMemAlloc_v2",
            "CUDA_ERROR_OUT_OF_MEMORY",
            "(2)",
            "device 0",
            "1.0 GiB",
            "ask for less",
        ],
    );
    let t = text(MemError::Cuda {
        call: "cuDriverGetVersion",
        code: 9999,
        name: "unknown",
        device: None,
        bytes: None,
    });
    contains_all(&t, &["cuDriverGetVersion", "(9999)", "reference"]);
    assert!(!t.contains("device") && !t.contains("bytes"), "{t}");
}

#[test]
fn batched_copy_refusals() {
    use unimem::ErrorKind;
    let t = text(MemError::CellInFlight { grid: 7, index: 42 });
    contains_all(
        &t,
        &[
            "cell 42",
            "Grid #7",
            "in flight",
            "InFlight::wait",
            "same id",
        ],
    );
    let t = text(MemError::CudaNotRegistered {
        id: 3,
        size: 64 << 20,
    });
    contains_all(
        &t,
        &[
            "Block 3",
            "64.0 MiB",
            "67108864",
            "keep()",
            "grid.tape().block()",
        ],
    );
    let t = text(MemError::CudaStreamContext {
        stream_device: 1,
        block_device: 0,
    });
    contains_all(&t, &["device 1", "device 0", "cuda_context()"]);
    let t = text(MemError::CopyOutOfRange {
        entry: 5,
        start: 4000,
        len: 200,
        limit: 4096,
        device: false,
    });
    contains_all(&t, &["entry 5", "200 bytes", "offset 4000", "4096 bytes"]);
    let t = text(MemError::CopyOutOfRange {
        entry: 0,
        start: u64::MAX - 8,
        len: 16,
        limit: u64::MAX,
        device: true,
    });
    contains_all(&t, &["entry 0", "16 bytes", "0xfffffffffffffff7", "64-bit"]);
    let t = text(MemError::CopyOverlap {
        first: 2,
        second: 9,
        device: false,
    });
    contains_all(&t, &["entries 2 and 9", "host", "same cell twice", "once"]);
    let t = text(MemError::CopyOverlap {
        first: 0,
        second: 1,
        device: true,
    });
    assert!(t.contains("device") && !t.contains("same cell"), "{t}");
    let t = text(MemError::CudaCopyFailed {
        call: "cuMemcpyBatchAsync_v2",
        code: 1,
        name: "CUDA_ERROR_INVALID_VALUE",
        copied: 4,
        entries: 10,
    });
    contains_all(
        &t,
        &[
            "cuMemcpyBatchAsync_v2",
            "CUDA_ERROR_INVALID_VALUE",
            "(1)",
            "first 4 of 10",
            "other 6",
            "undefined",
            "refused an argument",
        ],
    );
    let kinds = [
        (
            MemError::CellInFlight { grid: 1, index: 0 },
            ErrorKind::Busy,
        ),
        (
            MemError::CudaNotRegistered { id: 1, size: 1 },
            ErrorKind::InvalidInput,
        ),
        (
            MemError::CopyOverlap {
                first: 0,
                second: 1,
                device: true,
            },
            ErrorKind::InvalidInput,
        ),
        (
            MemError::CudaCopyFailed {
                call: "x",
                code: 1,
                name: "y",
                copied: 0,
                entries: 1,
            },
            ErrorKind::Os,
        ),
    ];
    for (err, kind) in kinds {
        assert_eq!(err.kind(), kind, "{err:?}");
    }
}

#[test]
fn share_closed() {
    assert!(text(MemError::ShareClosed).contains("closed the socket"));
}

#[test]
fn share_fds() {
    let t = text(MemError::ShareFds {
        received: 2,
        truncated: false,
    });
    assert!(t.contains("exactly one") && t.contains("carried 2") && t.contains("closed"));
    assert!(!t.contains("MSG_CTRUNC"));
    let t = text(MemError::ShareFds {
        received: 4,
        truncated: true,
    });
    assert!(t.contains("carried 4") && t.contains("MSG_CTRUNC"), "{t}");
}

#[test]
fn share_header() {
    let t = text(MemError::ShareHeader {
        len: 10,
        reason: "wrong length",
    });
    assert!(t.contains("10 bytes") && t.contains("wrong length") && t.contains("24 bytes"));
    assert!(t.contains("Share::send"));
}

#[test]
fn share_version() {
    let t = text(MemError::ShareVersion {
        found: 9,
        expected: 1,
    });
    assert!(t.contains("version 9") && t.contains("version 1") && t.contains("same unimem"));
}

#[test]
fn share_not_memfd() {
    let t = text(MemError::ShareNotMemfd { mode: 0o010_600 });
    assert!(
        t.contains("a pipe") && t.contains("0o10600") && t.contains("Extent::share"),
        "{t}"
    );
    let t = text(MemError::ShareNotMemfd { mode: 0o100_644 });
    assert!(t.contains("regular file that cannot be sealed"), "{t}");
}

#[test]
fn share_unsealed() {
    let t = text(MemError::ShareUnsealed {
        seals: 0x1,
        missing: 0x6,
    });
    assert!(t.contains("SHRINK|GROW") && t.contains("has SEAL"), "{t}");
    let t = text(MemError::ShareUnsealed {
        seals: 0,
        missing: 0x10,
    });
    assert!(t.contains("FUTURE_WRITE") && t.contains("has none"), "{t}");
}

#[test]
fn share_size() {
    let t = text(MemError::ShareSize {
        expected: 8192,
        found: 4096,
    });
    assert!(
        t.contains("8192") && t.contains("4096") && t.contains("8.0 KiB"),
        "{t}"
    );
}

#[test]
fn share_sparse() {
    let t = text(MemError::ShareSparse {
        size: 256 << 20,
        allocated: 0,
        hole: Some(0),
    });
    for part in [
        "256.0 MiB",
        "268435456",
        "holds 0 B",
        "hole at offset 0",
        "allocate",
        "Block::open",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
    let t = text(MemError::ShareSparse {
        size: 8192,
        allocated: 4096,
        hole: None,
    });
    assert!(
        t.contains("4.0 KiB (4096 bytes") && !t.contains("hole at"),
        "{t}"
    );
}

#[test]
fn share_open_mode() {
    let t = text(MemError::ShareOpenMode {
        readable: true,
        writable: false,
        requested: Access::ReadWrite,
    });
    assert!(
        t.contains("opened read-only") && t.contains("maps it read-write (Block::import)"),
        "{t}"
    );
    let t = text(MemError::ShareOpenMode {
        readable: false,
        writable: true,
        requested: Access::ReadOnly,
    });
    assert!(
        t.contains("write-only") && t.contains("maps it read-only"),
        "{t}"
    );
}

#[test]
fn not_frozen() {
    let t = text(MemError::NotFrozen {
        id: 4,
        size: 1 << 20,
    });
    for part in [
        "Block 4",
        "1.0 MiB",
        "not frozen",
        "data race",
        "read_into",
        "ReadOnlyBlock::freeze",
        "read_unfrozen",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn share_read_only() {
    let t = text(MemError::ShareReadOnly {
        source: 3,
        size: 1 << 20,
    });
    assert!(
        t.contains("Block 3") && t.contains("1.0 MiB") && t.contains("Block::import_read_only")
    );
}

#[test]
fn not_writable() {
    let t = text(MemError::NotWritable {
        id: 5,
        sealed: true,
    });
    assert!(
        t.contains("Block 5")
            && t.contains("F_SEAL_FUTURE_WRITE")
            && t.contains("Access::ReadOnly")
    );
    let t = text(MemError::NotWritable {
        id: 6,
        sealed: false,
    });
    assert!(
        t.contains("Block 6") && t.contains("imported read-only") && t.contains("Access::ReadOnly")
    );
}

#[test]
fn already_mapped() {
    let t = text(MemError::AlreadyMapped {
        id: 7,
        writable: true,
        requested: Access::ReadWrite,
    });
    for part in [
        "Block 7",
        "already maps this memfd writable",
        "read-write import",
        "drop it before importing",
        "another process",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
    let t = text(MemError::AlreadyMapped {
        id: 8,
        writable: true,
        requested: Access::ReadOnly,
    });
    for part in [
        "Block 8",
        "writable",
        "read-only import",
        "&mut",
        "Freeze it first",
        "Block::freeze",
        "another process",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
    let t = text(MemError::AlreadyMapped {
        id: 9,
        writable: false,
        requested: Access::ReadWrite,
    });
    for part in [
        "Block 9",
        "read-only",
        "Block::import_read_only",
        "another process",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
    let t = text(MemError::AlreadyMapped {
        id: 10,
        writable: false,
        requested: Access::ReadOnly,
    });
    assert!(
        t.contains("Block 10") && t.contains("another process"),
        "{t}"
    );
}

#[test]
fn read_out_of_bounds() {
    let t = text(MemError::ReadOutOfBounds {
        offset: 4090,
        len: 2,
        elem: 8,
        size: 4096,
    });
    assert!(t.contains("4090") && t.contains("2 elements of 8 bytes") && t.contains("4096-byte"));
}

#[test]
fn read_misaligned() {
    let t = text(MemError::ReadMisaligned {
        offset: 3,
        align: 8,
    });
    assert!(t.contains("offset 3") && t.contains("multiple of 8"));
}

#[test]
fn freeze_busy() {
    let t = text(MemError::FreezeBusy {
        id: 9,
        size: 64 << 20,
    });
    for part in [
        "Block 9",
        "64.0 MiB",
        "F_SEAL_WRITE",
        "EBUSY",
        "maps it writable",
        "pins its pages",
        "read-only here",
        "not frozen",
        "freeze again",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn freeze_registered() {
    let t = text(MemError::FreezeRegistered {
        id: 3,
        size: 1 << 20,
    });
    for part in [
        "Block 3",
        "1.0 MiB",
        "CudaBlock::keep",
        "pins its pages",
        "F_SEAL_WRITE",
        "Nothing was changed",
        "Freeze first",
    ] {
        assert!(t.contains(part), "{t:?} lacks {part:?}");
    }
}

#[test]
fn tape_read_only() {
    let t = text(MemError::TapeReadOnly {
        id: 4,
        frozen: true,
    });
    assert!(
        t.contains("Block 4") && t.contains("frozen") && t.contains("Tape::read"),
        "{t}"
    );
    let t = text(MemError::TapeReadOnly {
        id: 5,
        frozen: false,
    });
    assert!(
        t.contains("Block 5") && t.contains("read-only import"),
        "{t}"
    );
    assert!(t.contains("writable Tape"), "{t}");
}

#[test]
fn tape_not_frozen() {
    let t = text(MemError::TapeNotFrozen {
        id: 6,
        read_only: false,
    });
    assert!(
        t.contains("Block 6") && t.contains("writable") && t.contains("Tape::freeze"),
        "{t}"
    );
    let t = text(MemError::TapeNotFrozen {
        id: 7,
        read_only: true,
    });
    assert!(
        t.contains("Block 7") && t.contains("not frozen") && t.contains("another process"),
        "{t}"
    );
    assert!(
        t.contains("ReadOnlyBlock") && t.contains("read_into"),
        "{t}"
    );
}

#[test]
fn not_frozen_names_the_views_it_refuses() {
    let t = text(MemError::NotFrozen { id: 12, size: 4096 });
    contains_all(
        &t,
        &[
            "Block 12",
            "not frozen",
            "may still write",
            "DLPack",
            "freeze",
        ],
    );
    assert_eq!(
        MemError::NotFrozen { id: 1, size: 1 }.kind(),
        unimem::ErrorKind::AccessDenied
    );
}

#[test]
fn bad_tensor_view() {
    let t = text(MemError::BadTensorView {
        reason: "the shape needs more bytes than the tensor covers",
        bytes: 4096,
        needed: Some(8192),
    });
    contains_all(
        &t,
        &["4.0 KiB", "8.0 KiB", "shape needs more bytes", "data type"],
    );
    let t = text(MemError::BadTensorView {
        reason: "the element count overflows",
        bytes: 64,
        needed: None,
    });
    assert!(!t.contains("needs 0"), "{t}");
    assert_eq!(
        MemError::BadTensorView {
            reason: "",
            bytes: 0,
            needed: None
        }
        .kind(),
        unimem::ErrorKind::InvalidInput
    );
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
    // XNU maps KERN_PROTECTION_FAILURE to EACCES.
    let t = text(MemError::WireRefused {
        requested: 1 << 20,
        errno: libc::EACCES,
        limit: None,
    });
    assert!(t.contains("EACCES"), "{t}");
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
    // The header documents the code for kIOSurfaceLockAvoidSync only: the message says so
    // and claims no other client.
    assert!(
        t.contains("kIOSurfaceLockAvoidSync") && !t.contains("another client"),
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

#[test]
fn ucx_missing() {
    let t = text(MemError::UcxMissing {
        library: "libucp.so.0",
        reason: "libucp.so.0: cannot open shared object file: No such file or directory".into(),
    });
    contains_all(
        &t,
        &[
            "UCX is not available",
            "libucp.so.0",
            "cannot open shared object file",
            "UCX 1.13 or later",
            "apt-get install libucx0",
            "LD_LIBRARY_PATH",
            "no UCX is needed to build",
        ],
    );
}

#[test]
fn ucx_symbol_missing() {
    let t = text(MemError::UcxSymbolMissing {
        library: "libucp.so.0",
        symbol: "ucp_put_nbx",
        reason: "libucp.so.0: undefined symbol: ucp_put_nbx".into(),
    });
    contains_all(
        &t,
        &[
            "libucp.so.0 lacks ucp_put_nbx",
            "undefined symbol",
            "UCX 1.13 or later",
        ],
    );
}

#[test]
fn ucx_version() {
    let t = text(MemError::UcxVersion {
        major: 1,
        minor: 12,
        min_major: 1,
        min_minor: 13,
    });
    contains_all(&t, &["UCX 1.12 is installed", "UCX 1.13 or", "later 1.x"]);
}

#[test]
fn ucx_call_failed() {
    let t = text(MemError::Ucx {
        call: "ucp_mem_map",
        status: -3,
        name: "No memory",
    });
    contains_all(
        &t,
        &[
            "ucp_mem_map failed",
            "UCX status -3",
            "No memory",
            "UCX_LOG_LEVEL=info",
            "UCX_TLS",
        ],
    );
}

#[test]
fn remote_refused() {
    let t = text(MemError::RemoteRefused {
        len: 311,
        reason: "the authentication tag does not match: another secret, or altered bytes",
    });
    contains_all(
        &t,
        &[
            "311 bytes",
            "authentication tag does not match",
            "Nothing of it was used",
            "same Secret, unimem and UCX",
        ],
    );
}

#[test]
fn remote_cell_out_of_range() {
    let t = text(MemError::RemoteCellOutOfRange {
        index: 32,
        cells: 32,
    });
    contains_all(
        &t,
        &[
            "remote cell 32 does not exist",
            "exported 32 cells",
            "(0..32)",
            "nothing was moved",
        ],
    );
}

#[test]
fn cell_size_mismatch() {
    let t = text(MemError::CellSizeMismatch {
        local: 8192,
        remote: 16384,
    });
    contains_all(
        &t,
        &[
            "8192 bytes here",
            "16384 bytes at the peer",
            "same size",
            "nothing was moved",
        ],
    );
}

#[test]
fn transfer_mismatch() {
    let t = text(MemError::TransferMismatch {
        cells: 2,
        indices: 1,
    });
    contains_all(
        &t,
        &[
            "2 local cells",
            "1 remote indices",
            "one index per cell",
            "nothing was moved",
        ],
    );
}

#[test]
fn peer_lost() {
    let t = text(MemError::PeerLost {
        status: -25,
        name: "Connection reset by remote peer",
    });
    contains_all(
        &t,
        &[
            "the peer is gone",
            "UCX status -25",
            "Connection reset by remote peer",
            "Import its description again",
        ],
    );
}

#[test]
fn transfer_timed_out() {
    let t = text(MemError::TransferTimedOut {
        pending: 5,
        cells: 4,
        waited_ms: 1500,
    });
    contains_all(
        &t,
        &[
            "4 cells",
            "5 operations still in flight",
            "1500 ms",
            "aborted and the endpoint closed",
            "Engine::progress",
            "import again",
        ],
    );
}

#[test]
fn huge_pages_unavailable() {
    let err = MemError::HugePagesUnavailable {
        requested: 4 << 30,
        page_size: 2 << 20,
        free: 3,
        needed: 2048,
        shmem_enabled: "never",
        node: None,
    };
    assert_eq!(err.kind(), unimem::ErrorKind::Unsupported);
    let t = text(err);
    contains_all(
        &t,
        &[
            "4.0 GiB",
            "4294967296",
            "2.0 MiB",
            "3 hugetlb pages",
            "2048 are needed",
            "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
            "vm.nr_hugepages=2048",
            "`never`",
            "echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled",
            "41.5 GB/s",
            "4.8 GB/s",
            "HugePages::Try",
        ],
    );
    // On a node, and a size THP cannot have: the node's pool, and why not THP.
    let t = text(MemError::HugePagesUnavailable {
        requested: 1 << 30,
        page_size: 1 << 30,
        free: 0,
        needed: 1,
        shmem_enabled: "not that size",
        node: Some(1),
    });
    contains_all(
        &t,
        &[
            "NUMA node 1",
            "/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages",
            "do not come in that size",
        ],
    );
    let t = text(MemError::HugePagesUnavailable {
        requested: 4096,
        page_size: 0,
        free: 0,
        needed: 0,
        shmem_enabled: "not linux",
        node: None,
    });
    contains_all(&t, &["Linux only", "HugePages::Try"]);
}

#[test]
fn bad_numa_node() {
    let err = MemError::BadNumaNode {
        node: 7,
        online: "0-1".into(),
        reason: "does not exist or is offline",
    };
    assert_eq!(err.kind(), unimem::ErrorKind::InvalidInput);
    let t = text(err);
    contains_all(&t, &["NUMA node 7", "does not exist", "0-1", "numa_node"]);
    let t = text(MemError::BadNumaNode {
        node: 0,
        online: String::new(),
        reason: "NUMA placement is Linux only",
    });
    contains_all(&t, &["Linux only", "lists no NUMA nodes"]);
}

#[test]
fn cuda_not_contiguous() {
    let err = MemError::CudaNotContiguous {
        device: 0,
        offset: 64 << 30,
        expected: 0x7f00_0000_0000 + (64 << 30),
        found: 0x1_0000_0000,
    };
    assert_eq!(err.kind(), unimem::ErrorKind::Unsupported);
    let t = text(err);
    contains_all(
        &t,
        &[
            "device 0",
            "64.0 GiB",
            "0x100000000",
            "0x7f1000000000",
            "unified addressing",
            "unregistered",
            "RegisterOptions::chunk",
        ],
    );
}

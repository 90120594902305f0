//! CUDA zero-copy (feature `cuda`): a registered Block is written by the GPU and read by the
//! CPU, written by the CPU and read by the GPU, whole, at page offsets, and for a Tape's takes
//! and a Grid's cells at nonzero offsets; double registration, bad devices, the drop order
//! and kept registrations (`CudaBlock::keep`, surviving `Tape::clear`) are checked; a Block
//! registered in small chunks is one device range the GPU reads and writes across every
//! chunk boundary, and a chunk that fails undoes the others. On Linux
//! a read-only import in an `exec`'d child registers read-only and sees the owner's writes,
//! and a Block shared to an `exec`'d child is registered and written by the GPU there.
//! Batched copies of scattered Grid cells and Block ranges are in `cuda/copy.rs`.
//!
//! Without a CUDA driver every test that needs a GPU says so on stderr
//! (`test NAME: skipped (UNIMEM_REQUIRE_CUDA unset): ...`, through `common::skip`, so it
//! shows in a plain `cargo test`) and asserts that `Driver::load` failed with the variant a
//! machine without a GPU gives. With `UNIMEM_REQUIRE_CUDA=1` (the GPU check, `.ci/gpu-check`)
//! a missing driver fails instead.

#![cfg(feature = "cuda")]

mod common;

/// Batched copies of Grid cells and Block ranges (issue 16).
#[path = "cuda/copy.rs"]
mod copy;

use std::io::Write as _;

use common::{assert_child_passes, is_child};
use unimem::cuda::{
    Attribute, Context, CudaBlock, DeviceMemory, Driver, HostMemory, RegisterOptions,
};
use unimem::{Block, Grid, HugePages, MemError, Pages, Pin, Progress, Tape, page_size};

const MIB: usize = 1 << 20;

/// The driver, when it loaded and sees a device; otherwise `None`, after checking the
/// error and printing the skip line for `test`.
fn gpu(test: &str) -> Option<Driver> {
    let err = match Driver::load() {
        Ok(driver) => match driver.device_count() {
            Ok(n) if n > 0 => return Some(driver),
            Ok(_) => MemError::CudaBadDevice {
                ordinal: 0,
                count: 0,
            },
            Err(err) => err,
        },
        Err(err) => err,
    };
    assert_no_driver(&err);
    common::skip(test, "CUDA", &format!("no usable CUDA device: {err}"));
    None
}

/// The errors a machine without a usable GPU gives, and nothing else. Three are accepted on
/// purpose: which one depends on what the machine lacks (the driver library, the device
/// files behind it, or any device), which a test cannot choose; each is triggered on its
/// own in `tests/cuda_faults.rs`.
fn assert_no_driver(err: &MemError) {
    match err {
        MemError::CudaDriverMissing { library, reason } => {
            assert_eq!(*library, "libcuda.so.1");
            assert!(!reason.is_empty(), "no reason given: {err:?}");
            if !cfg!(target_os = "linux") {
                assert!(reason.contains("Linux only"), "{reason}");
            }
        }
        // A driver library without a usable device (a container without /dev/nvidia*).
        MemError::CudaInitFailed { name, .. } => assert!(name.starts_with("CUDA_ERROR")),
        MemError::CudaBadDevice { count: 0, .. } => {}
        other => panic!("Driver::load failed with an unexpected error: {other:?}"),
    }
}

/// A Block registered with device 0.
fn register<'b>(block: &'b Block, driver: &Driver) -> CudaBlock<'b> {
    block
        .register_cuda(driver, 0)
        .unwrap_or_else(|err| panic!("register_cuda: {err}"))
}

/// Reads `len` bytes at `offset` of a registered Block on the GPU: a device-to-device copy
/// from the Block's device pointer into device memory, then back into a separate host
/// buffer.
fn gpu_read(registered: &CudaBlock<'_>, offset: usize, len: usize) -> Vec<u8> {
    let src = registered.device_ptr_at(offset).unwrap();
    assert!(registered.device_ptr_at(offset + len - 1).is_some());
    // SAFETY: `src..src + len` lies inside the registered Block (checked above), which no
    // one writes meanwhile (the registration borrows it shared).
    unsafe { gpu_read_at(registered.context(), src, len) }
}

/// Reads `len` bytes at device address `src` on the GPU, as [`gpu_read`] does.
///
/// # Safety
///
/// `src..src + len` is device-accessible memory of this process that nothing writes during
/// the call.
unsafe fn gpu_read_at(context: &Context, src: u64, len: usize) -> Vec<u8> {
    let scratch: DeviceMemory<'_> = context.alloc(len).unwrap();
    let mut out = vec![0u8; len];
    // SAFETY: the caller vouches for the source; the scratch memory and `out` are this
    // function's own.
    unsafe {
        context.copy(scratch.device_ptr(), src, len).unwrap();
        context
            .copy_to_host(out.as_mut_ptr(), scratch.device_ptr(), len)
            .unwrap();
    }
    out
}

/// A byte pattern that differs page to page, so a misplaced page is caught.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 12)) as u8
}

#[test]
fn load_is_cached_and_typed() {
    let first = Driver::load();
    let second = Driver::load();
    match (&first, &second) {
        (Ok(driver), Ok(_)) => {
            let (major, minor) = driver.version().unwrap();
            assert!(major >= 1, "driver version {major}.{minor}");
            eprintln!("CUDA driver API {major}.{minor}");
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "the failure is cached, not retried");
            gpu("load_is_cached_and_typed");
        }
        _ => panic!("Driver::load changed its answer: {first:?} then {second:?}"),
    }
}

#[test]
fn devices_and_attributes() {
    let Some(driver) = gpu("devices_and_attributes") else {
        return;
    };
    let count = driver.device_count().unwrap();
    let devices = driver.devices().unwrap();
    assert_eq!(devices.len(), count as usize);
    for device in &devices {
        let name = device.name().unwrap();
        assert!(!name.is_empty());
        assert!(device.total_memory().unwrap() > 0);
        let (major, _) = device.compute_capability().unwrap();
        assert!(major >= 1);
        for attribute in Attribute::ALL {
            let value = device.attribute(attribute).unwrap();
            eprintln!("device {} {name}: {attribute} = {value}", device.ordinal());
        }
    }
    assert_eq!(
        driver.device(count).unwrap_err(),
        MemError::CudaBadDevice {
            ordinal: count,
            count
        }
    );
}

#[test]
fn bad_device_is_refused() {
    let Some(driver) = gpu("bad_device_is_refused") else {
        return;
    };
    let count = driver.device_count().unwrap();
    let block = Block::open(MIB).unwrap();
    for ordinal in [count, u32::MAX] {
        let err = block.register_cuda(&driver, ordinal).unwrap_err();
        assert_eq!(err, MemError::CudaBadDevice { ordinal, count });
        assert!(err.to_string().contains(&ordinal.to_string()));
    }
    // The refusals left nothing registered.
    drop(register(&block, &driver));
}

#[test]
fn gpu_fill_of_the_whole_block_is_seen_by_the_cpu() {
    let Some(driver) = gpu("gpu_fill_of_the_whole_block_is_seen_by_the_cpu") else {
        return;
    };
    let block = Block::open(4 * MIB).unwrap();
    let registered = register(&block, &driver);
    let words = block.size() / 4;
    // From another thread: the context is made current wherever it is used.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // SAFETY: the whole Block, through its device pointer; no view of its bytes is
            // alive until the call returns (it waits for the fill to complete).
            unsafe {
                registered
                    .context()
                    .memset_d32(registered.device_ptr(), 0xC0DE_CAFE, words)
                    .unwrap();
            }
        });
    });
    assert!(block.as_slice::<u32>().iter().all(|&w| w == 0xC0DE_CAFE));
    drop(registered);
    assert!(block.as_slice::<u32>().iter().all(|&w| w == 0xC0DE_CAFE));
}

#[test]
fn gpu_fills_at_page_offsets_touch_only_their_range() {
    let Some(driver) = gpu("gpu_fills_at_page_offsets_touch_only_their_range") else {
        return;
    };
    let page = page_size();
    let block = Block::open(16 * page).unwrap();
    let registered = register(&block, &driver);
    // (offset, length, value): a whole page, a run across a page boundary, a lone byte.
    let fills = [
        (page, page, 0x11u8),
        (3 * page + 100, 2 * page, 0x22),
        (9 * page + 7, 1, 0x33),
    ];
    for (offset, len, value) in fills {
        let dst = registered
            .device_ptr_of(block.address().wrapping_add(offset))
            .unwrap();
        assert_eq!(dst, registered.device_ptr() + offset as u64);
        // SAFETY: inside the Block (checked by `device_ptr_of`); no view of its bytes is
        // alive during the call.
        unsafe { registered.context().memset_d8(dst, value, len).unwrap() };
    }
    let bytes = block.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let expect = fills
            .iter()
            .find(|&&(offset, len, _)| (offset..offset + len).contains(&i))
            .map_or(0, |&(_, _, value)| value);
        assert_eq!(b, expect, "byte {i}");
    }
}

#[test]
fn cpu_writes_are_seen_by_the_gpu() {
    let Some(driver) = gpu("cpu_writes_are_seen_by_the_gpu") else {
        return;
    };
    let page = page_size();
    let mut block = Block::open(2 * MIB).unwrap();
    for (i, b) in block.as_bytes_mut().iter_mut().enumerate() {
        *b = pattern(i);
    }
    let registered = register(&block, &driver);
    let size = block.size();
    for (offset, len) in [
        (0, size),
        (page, page),
        (5 * page + 3, 3 * page),
        (size - 1, 1),
    ] {
        let read = gpu_read(&registered, offset, len);
        assert!(
            read == block.as_bytes()[offset..offset + len],
            "GPU read {len} bytes at {offset} wrong"
        );
    }
}

#[test]
fn registering_again_after_drop_sees_new_cpu_writes() {
    let Some(driver) = gpu("registering_again_after_drop_sees_new_cpu_writes") else {
        return;
    };
    let mut block = Block::open(MIB).unwrap();
    for round in 1..=3u8 {
        // Writing needs `&mut Block`: possible only while no registration borrows it.
        block.as_bytes_mut().fill(round);
        let registered = register(&block, &driver);
        let read = gpu_read(&registered, 0, block.size());
        assert!(read.iter().all(|&b| b == round), "round {round}");
    }
}

#[test]
fn double_registration_is_a_precise_error() {
    let Some(driver) = gpu("double_registration_is_a_precise_error") else {
        return;
    };
    let block = Block::open(MIB).unwrap();
    let registered = register(&block, &driver);
    let err = block.register_cuda(&driver, 0).unwrap_err();
    assert_eq!(
        err,
        MemError::CudaAlreadyRegistered {
            device: 0,
            address: block.address() as usize,
            size: block.size(),
        }
    );
    assert!(err.to_string().contains("712"), "{err}");
    // The refused attempt left the first registration intact.
    // SAFETY: the whole Block; no view of its bytes is alive during the call.
    unsafe {
        registered
            .context()
            .memset_d8(registered.device_ptr(), 0x5A, block.size())
            .unwrap();
    }
    assert!(block.as_bytes().iter().all(|&b| b == 0x5A));
    drop(registered);
    drop(register(&block, &driver));
}

#[test]
fn device_pointers_and_offsets() {
    let Some(driver) = gpu("device_pointers_and_offsets") else {
        return;
    };
    let block = Block::open(3 * page_size()).unwrap();
    let registered = register(&block, &driver);
    let base = block.address();
    let size = block.size();
    assert_eq!(registered.size(), size);
    assert_eq!(registered.device().ordinal(), 0);
    assert!(!registered.is_read_only());
    assert_eq!(registered.extent().id(), block.id());
    assert_eq!(
        registered.device_ptr_of(base),
        Some(registered.device_ptr())
    );
    assert_eq!(registered.device_ptr_at(0), Some(registered.device_ptr()));
    assert_eq!(
        registered.device_ptr_of(base.wrapping_add(size - 1)),
        Some(registered.device_ptr() + size as u64 - 1)
    );
    assert_eq!(registered.device_ptr_at(size), None);
    assert_eq!(registered.device_ptr_of(base.wrapping_add(size)), None);
    assert_eq!(registered.device_ptr_of(base.wrapping_sub(1)), None);
    let device = registered.device();
    if device.attribute(Attribute::UnifiedAddressing).unwrap() == 1 {
        assert_eq!(
            registered.device_ptr(),
            base as u64,
            "UVA: alias equals address"
        );
    }
}

#[test]
fn unpinned_block_registers() {
    let Some(driver) = gpu("unpinned_block_registers") else {
        return;
    };
    let block = Block::builder(MIB)
        .pin(unimem::Pin::BestEffort)
        .open()
        .unwrap();
    let registered = register(&block, &driver);
    // SAFETY: the whole Block; no view of its bytes is alive during the call.
    unsafe {
        registered
            .context()
            .memset_d8(registered.device_ptr(), 9, block.size())
            .unwrap();
    }
    assert!(block.as_bytes().iter().all(|&b| b == 9));
}

#[test]
fn device_and_host_memory() {
    let Some(driver) = gpu("device_and_host_memory") else {
        return;
    };
    let context: Context = driver.device(0).unwrap().context().unwrap();
    assert_eq!(context.alloc(0).unwrap_err(), MemError::ZeroSize);
    assert_eq!(context.alloc_host(0).unwrap_err(), MemError::ZeroSize);
    let device = context.alloc(MIB).unwrap();
    let host: HostMemory<'_> = context.alloc_host(MIB).unwrap();
    assert_eq!((device.size(), host.size()), (MIB, MIB));
    let mut out = vec![0u8; MIB];
    // SAFETY: all ranges are 1 MiB of memory this test owns; `out` is borrowed mutably for
    // the last call only.
    unsafe {
        context.memset_d8(host.device_ptr(), 0xA5, MIB).unwrap();
        context
            .copy(device.device_ptr(), host.device_ptr(), MIB)
            .unwrap();
        context
            .copy_to_host(out.as_mut_ptr(), device.device_ptr(), MIB)
            .unwrap();
    }
    assert!(out.iter().all(|&b| b == 0xA5));
    let data: Vec<u8> = (0..MIB).map(pattern).collect();
    // SAFETY: as above; `data` is only read.
    unsafe {
        context
            .copy_to_device(device.device_ptr(), data.as_ptr(), MIB)
            .unwrap();
        context
            .copy_to_host(out.as_mut_ptr(), device.device_ptr(), MIB)
            .unwrap();
    }
    assert!(out == data);
}

/// Drop order, in a process of its own (the primary context's state is process-wide):
/// unregistering releases the primary context the registration retained, and the range can
/// be registered again.
#[test]
fn drop_releases_registration_then_context() {
    if !is_child("drop_releases_registration_then_context") {
        if gpu("drop_releases_registration_then_context").is_some() {
            assert_child_passes("drop_releases_registration_then_context");
        }
        return;
    }
    let driver = Driver::load().unwrap();
    let device = driver.device(0).unwrap();
    let block = Block::open(MIB).unwrap();
    assert!(
        !device.is_primary_context_active().unwrap(),
        "fresh process"
    );
    let registered = register(&block, &driver);
    assert!(device.is_primary_context_active().unwrap());
    drop(registered);
    assert!(
        !device.is_primary_context_active().unwrap(),
        "the registration's retain was released"
    );
    // Unregistered: the same pages register again, and the Block drops last.
    let again = register(&block, &driver);
    drop(again);
    drop(block);
    assert!(!device.is_primary_context_active().unwrap());
}

#[test]
fn registration_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Driver>();
    check::<Context>();
    check::<CudaBlock<'static>>();
}

#[test]
fn tape_takes_at_nonzero_offsets() {
    let Some(driver) = gpu("tape_takes_at_nonzero_offsets") else {
        return;
    };
    let page = page_size();
    let tape = Tape::start(MIB).unwrap();
    // The Tape lends its Block as `&Extent`; takes go on while it is registered.
    let registered = tape.block().register_cuda(&driver, 0).unwrap();
    let before = tape.take(100, 8).unwrap();
    let len = 2 * page + 10; // crosses two page boundaries
    let take = tape.take(len, 16).unwrap();
    let after = tape.take(page, page).unwrap();
    let offset = tape.offset_of(take).unwrap();
    assert!(offset > 0 && offset % page != 0, "offset {offset}");
    // SAFETY: `before` and `after` are takes of 100 and `page` bytes, unaliased.
    unsafe {
        before.write_bytes(0xAA, 100);
        after.write_bytes(0xBB, page);
    }

    // The GPU writes the take through `device_ptr_of`; the CPU sees it, and only it.
    let dst = registered.device_ptr_of(take).unwrap();
    assert_eq!(dst, registered.device_ptr() + offset as u64);
    // SAFETY: the take's `len` bytes, inside the Block; no reference to them is alive.
    unsafe { registered.context().memset_d8(dst, 0x3C, len).unwrap() };
    // SAFETY: the takes are valid for their sizes, and the GPU is done (memset waited).
    let (seen, before, after) = unsafe {
        (
            std::slice::from_raw_parts(take, len),
            std::slice::from_raw_parts(before, 100),
            std::slice::from_raw_parts(after, page),
        )
    };
    assert!(seen.iter().all(|&b| b == 0x3C), "GPU fill of the take");
    assert!(before.iter().all(|&b| b == 0xAA), "take before it touched");
    assert!(after.iter().all(|&b| b == 0xBB), "take after it touched");

    // The CPU writes the take; the GPU reads it at the take's offset.
    let expect: Vec<u8> = (0..len).map(|i| pattern(i + 7)).collect();
    // SAFETY: the take, unaliased: the shared view `seen` is not used after this.
    unsafe { std::ptr::copy_nonoverlapping(expect.as_ptr(), take, len) };
    assert!(
        gpu_read(&registered, offset, len) == expect,
        "GPU read of the take"
    );

    // A typed take, written by the CPU through the safe view, read by the GPU.
    let words = tape.take_slice::<u32>(1000).unwrap();
    for (i, w) in words.iter_mut().enumerate() {
        *w = 0x0100_0000 + i as u32;
    }
    let offset = tape.offset_of(words.as_ptr()).unwrap();
    assert!(offset > 0);
    let read = gpu_read(&registered, offset, 4000);
    assert!(
        read.chunks_exact(4)
            .enumerate()
            .all(|(i, w)| u32::from_ne_bytes(w.try_into().unwrap()) == 0x0100_0000 + i as u32),
        "GPU read of a typed take"
    );
}

#[test]
fn grid_cells_at_nonzero_offsets() {
    let Some(driver) = gpu("grid_cells_at_nonzero_offsets") else {
        return;
    };
    let tape = Tape::start(MIB).unwrap();
    let _header = tape.take(1000, 8).unwrap(); // the cells start past it
    let grid = Grid::over(tape, 3000, 16).unwrap(); // cells cross page boundaries
    let registered = grid.tape().block().register_cuda(&driver, 0).unwrap();
    let mut first = grid.take().unwrap();
    let mut cell = grid.take().unwrap();
    let mut last = grid.take().unwrap();
    first.bytes().fill(0x11);
    last.bytes().fill(0x22);
    let offset = cell.offset();
    assert!(offset > 0, "offset {offset}");
    assert_eq!(grid.cell_offset(cell.index()), Some(offset));
    assert_eq!(
        registered.device_ptr_of(cell.address()),
        Some(registered.device_ptr() + offset as u64)
    );

    // The GPU fills the cell through `device_ptr() + cell.offset()`; the CPU sees it.
    // SAFETY: the cell's bytes, inside the Block; no view of them is alive during the call.
    unsafe {
        registered
            .context()
            .memset_d8(registered.device_ptr() + offset as u64, 0x7E, cell.size())
            .unwrap();
    }
    assert!(
        cell.as_slice::<u8>().iter().all(|&b| b == 0x7E),
        "GPU fill of the cell"
    );
    assert!(
        first.as_slice::<u8>().iter().all(|&b| b == 0x11),
        "cell before touched"
    );
    assert!(
        last.as_slice::<u8>().iter().all(|&b| b == 0x22),
        "cell after touched"
    );

    // The CPU writes the cell; the GPU reads it at the cell's offset.
    for (i, b) in cell.bytes().iter_mut().enumerate() {
        *b = pattern(i + 3);
    }
    let read = gpu_read(&registered, offset, cell.size());
    assert!(read == cell.as_slice::<u8>(), "GPU read of the cell");
}

/// `CudaBlock::keep`, in a process of its own (the primary context's state is
/// process-wide): the registration outlives the borrow, survives `Tape::clear`, and is
/// unregistered when the Tape drops, releasing its context retain; the same addresses then
/// register again.
#[test]
fn kept_registration_survives_clear_and_ends_with_the_block() {
    const NAME: &str = "kept_registration_survives_clear_and_ends_with_the_block";
    if !is_child(NAME) {
        if gpu(NAME).is_some() {
            let out = common::run_child(NAME);
            common::assert_passed(NAME, &out);
            // The child's notes (where the new Block landed), past the harness's capture.
            let _ = std::io::stderr().write_all(&out.stderr);
        }
        return;
    }
    let driver = Driver::load().unwrap();
    let device = driver.device(0).unwrap();
    let page = page_size();
    assert!(
        !device.is_primary_context_active().unwrap(),
        "fresh process"
    );

    // 1. Nothing else holds the context: dropping the Tape gives the kept retain back.
    let tape = Tape::start(MIB).unwrap();
    let base = tape.block().register_cuda(&driver, 0).unwrap().keep();
    assert!(device.is_primary_context_active().unwrap());
    assert_eq!(tape.block().cuda_device_ptr(), Some(base));
    assert_eq!(tape.block().cuda_context().unwrap().device().ordinal(), 0);
    drop(tape);
    assert!(
        !device.is_primary_context_active().unwrap(),
        "the kept registration's retain was released when the Tape dropped"
    );

    // 2. With the context held (so it outlives the registrations): register once, keep,
    // and take, fill, read and clear, round after round.
    let context = device.context().unwrap();
    let mut tape = Tape::over(Block::builder(MIB).name("unimem-cuda-keep").open().unwrap());
    let base = tape.block().register_cuda(&driver, 0).unwrap().keep();
    let address = tape.block().address();
    let size = tape.block().size();
    for round in 1..=3u8 {
        let _skip = tape.take(64 * usize::from(round), 64).unwrap();
        let len = 3 * page + 5;
        let take = tape.take(len, 64).unwrap();
        let offset = tape.offset_of(take).unwrap();
        assert!(offset > 0);
        // SAFETY: the take's bytes, inside the Block; no reference to them is alive.
        unsafe {
            context
                .memset_d8(base + offset as u64, 0x40 + round, len)
                .unwrap()
        };
        // SAFETY: the take is valid for `len` bytes; the GPU is done.
        let seen = unsafe { std::slice::from_raw_parts(take, len) };
        assert!(
            seen.iter().all(|&b| b == 0x40 + round),
            "round {round}: GPU fill"
        );
        let expect: Vec<u8> = (0..len).map(|i| pattern(i) ^ round).collect();
        // SAFETY: the take, unaliased: `seen` is not used after this.
        unsafe { std::ptr::copy_nonoverlapping(expect.as_ptr(), take, len) };
        // SAFETY: inside the kept registration; nothing writes it during the call.
        let read = unsafe { gpu_read_at(&context, base + offset as u64, len) };
        assert!(read == expect, "round {round}: GPU read");
        tape.clear(); // `&mut Tape`: no borrow is left, the registration stays
        assert_eq!(tape.block().cuda_device_ptr(), Some(base));
    }

    // A second registration while one is kept: the precise error, the kept one intact.
    assert_eq!(
        tape.block().register_cuda(&driver, 0).unwrap_err(),
        MemError::CudaAlreadyRegistered {
            device: 0,
            address: address as usize,
            size,
        }
    );
    // SAFETY: the whole Block, through the kept registration; no view of it is alive.
    unsafe { context.memset_d8(base, 0x99, size).unwrap() };

    // 3. Dropping the Tape unregisters, then unmaps and closes: no mapping is left, and a
    // new Block at the same address registers (a leaked registration would give 712).
    drop(tape);
    assert!(!common::memfd_mapped("unimem-cuda-keep"), "mapping left");
    let block = Block::open(MIB).unwrap();
    eprintln!(
        "{NAME}: new Block at {:p}, the dropped one was at {address:p} ({})",
        block.address(),
        if block.address() == address {
            "same address"
        } else {
            "another address"
        }
    );
    let again = block.register_cuda(&driver, 0).unwrap().keep();
    // SAFETY: the whole new Block, through its kept registration; no view of it is alive.
    unsafe { context.memset_d8(again, 0x24, block.size()).unwrap() };
    assert!(block.as_bytes().iter().all(|&b| b == 0x24));
    drop(block);
    drop(context);
    assert!(
        !device.is_primary_context_active().unwrap(),
        "every retain released"
    );
}

/// Sharing, with `exec`'d children: a read-only import registers read-only and sees the
/// owner's writes, and a read-write import is registered and written by the GPU there.
#[cfg(target_os = "linux")]
mod shared {
    use super::{MIB, common, gpu, gpu_read, pattern, register};
    use common::{Peer, ack, is_child, parent_socket, wait_ack};
    use unimem::cuda::{Attribute, Driver};
    use unimem::{Access, Block, Pin, Share, page_size};

    const READ_ONLY: &str = "shared::read_only_import_registers_read_only_and_sees_the_owners_data";

    /// The reader is a peer process: in the owner's own process a read-only import is
    /// refused while the owner maps the Block writable (`AlreadyMapped`).
    #[test]
    fn read_only_import_registers_read_only_and_sees_the_owners_data() {
        if is_child(READ_ONLY) {
            // A fresh process (started with exec): it loads the driver itself.
            let socket = parent_socket();
            let driver = Driver::load().unwrap();
            let import =
                Block::import_read_only(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
            assert_eq!(import.access(), Access::ReadOnly);
            let registered = import.register_cuda(&driver, 0).unwrap();
            assert!(registered.is_read_only());
            assert_ne!(
                registered
                    .device()
                    .attribute(Attribute::ReadOnlyHostRegisterSupported)
                    .unwrap(),
                0
            );
            let page = page_size();
            let size = import.size();
            for (offset, len) in [(0, size), (page + 3, 2 * page), (size - 1, 1)] {
                let owners: Vec<u8> = (offset..offset + len).map(pattern).collect();
                assert!(
                    gpu_read(&registered, offset, len) == owners,
                    "GPU read {len} bytes at {offset} through the read-only import"
                );
            }
            ack(&socket);
            // The owner writes on (its own mapping is writable), then says so; the GPU
            // reads the new bytes through this process's read-only registration.
            wait_ack(&socket);
            assert!(gpu_read(&registered, 0, size).iter().all(|&b| b == 0x6B));
            drop(registered);
            drop(import);
            ack(&socket);
            return;
        }
        if gpu(READ_ONLY).is_none() {
            return;
        }
        let mut owner = Block::builder(2 * MIB)
            .name("unimem-cuda-ro")
            .open()
            .unwrap();
        for (i, b) in owner.as_bytes_mut().iter_mut().enumerate() {
            *b = pattern(i);
        }
        let mut peer = Peer::spawn(READ_ONLY, &[]);
        peer.send_share(&owner, Access::ReadOnly);
        peer.wait_ack();
        owner.as_bytes_mut().fill(0x6B);
        ack(peer.socket());
        peer.wait_ack();
        peer.assert_passes();
        // The import dropped like any Block: the owner is unaffected.
        assert!(owner.as_bytes().iter().all(|&b| b == 0x6B));
    }

    const CHILD: &str = "shared::shared_block_is_written_by_the_gpu_in_an_execd_child";

    /// What the child's GPU writes: the whole Block with one word, then a run across a page
    /// boundary with one byte.
    fn child_wrote(i: usize) -> u8 {
        let page = page_size();
        if (page + 7..3 * page + 7).contains(&i) {
            0x5C
        } else {
            0xD00D_F00Du32.to_ne_bytes()[i % 4]
        }
    }

    #[test]
    fn shared_block_is_written_by_the_gpu_in_an_execd_child() {
        if is_child(CHILD) {
            // A fresh process (started with exec): it loads the driver itself.
            let socket = parent_socket();
            let block = common::import(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
            let driver = Driver::load().unwrap();
            let registered = register(&block, &driver);
            let page = page_size();
            // SAFETY: inside the imported Block; no view of its bytes is alive meanwhile.
            unsafe {
                let context = registered.context();
                context
                    .memset_d32(registered.device_ptr(), 0xD00D_F00D, block.size() / 4)
                    .unwrap();
                context
                    .memset_d8(registered.device_ptr_at(page + 7).unwrap(), 0x5C, 2 * page)
                    .unwrap();
            }
            drop(registered);
            assert!(
                block
                    .as_bytes()
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == child_wrote(i))
            );
            ack(&socket);
            return;
        }
        let Some(driver) = gpu(CHILD) else {
            return;
        };
        let block = Block::builder(MIB)
            .name("unimem-cuda-child")
            .open()
            .unwrap();
        // The parent holds a registration of its own mapping meanwhile: registrations are
        // per process.
        let registered = register(&block, &driver);
        let mut peer = Peer::spawn(CHILD, &[]);
        peer.send_share(&block, Access::ReadWrite);
        peer.wait_ack();
        peer.assert_passes();
        let bytes = block.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            assert_eq!(b, child_wrote(i), "byte {i} the child's GPU wrote");
        }
        // The parent's GPU sees them too, through the parent's registration.
        let read = gpu_read(&registered, 0, block.size());
        assert!(read == bytes, "parent's GPU read");
    }
}

/// A 6 MiB + 4 KiB Block registered in chunks of 1 MiB: 7 chunks, one device range.
#[test]
fn chunked_registration_is_one_contiguous_range() {
    let Some(driver) = gpu("chunked_registration_is_one_contiguous_range") else {
        return;
    };
    let page = page_size();
    let mut block = Block::open(6 * MIB + page).unwrap();
    for (i, b) in block.as_bytes_mut().iter_mut().enumerate() {
        *b = pattern(i);
    }
    let progress = std::sync::Arc::new(Progress::new());
    let options = RegisterOptions::new().chunk(MIB).progress(&progress);
    let registered = block.register_cuda_with(&driver, 0, &options).unwrap();
    assert_eq!(registered.chunks(), 7);
    assert_eq!(
        (progress.registered(), progress.to_register()),
        (block.size() as u64, block.size() as u64)
    );
    // CPU bytes across every chunk boundary, read by the GPU through the one device range.
    for k in 1..=6 {
        let at = k * MIB - page;
        let read = gpu_read(&registered, at, 2 * page);
        assert!(read == block.as_bytes()[at..at + 2 * page], "boundary {k}");
    }
    // GPU writes across every boundary, seen by the CPU, nothing else touched.
    for k in 1..=6 {
        let dst = registered.device_ptr_at(k * MIB - page).unwrap();
        // SAFETY: inside the registered Block; no view of its bytes is alive meanwhile.
        unsafe {
            registered
                .context()
                .memset_d8(dst, k as u8, 2 * page)
                .unwrap()
        };
    }
    drop(registered);
    for (i, &b) in block.as_bytes().iter().enumerate() {
        let boundary = (1..=6).find(|k| (k * MIB - page..k * MIB + page).contains(&i));
        let expect = boundary.map_or(pattern(i), |k| k as u8);
        assert_eq!(b, expect, "byte {i}");
    }
    // Every chunk was unregistered: the whole Block registers again, in one chunk.
    let again = register(&block, &driver);
    assert_eq!(again.chunks(), 1);
}

/// The third chunk's registration fails: the two before it are unregistered, the error
/// says which call and how much, and the Block registers again.
#[cfg(feature = "fault-injection")]
#[test]
fn failed_chunk_unregisters_the_others() {
    const NAME: &str = "failed_chunk_unregisters_the_others";
    if !is_child(NAME) {
        if gpu(NAME).is_some() {
            assert_child_passes(NAME);
        }
        return;
    }
    let driver = Driver::load().unwrap();
    let block = Block::open(4 * MIB).unwrap();
    let progress = std::sync::Arc::new(Progress::new());
    let options = RegisterOptions::new().chunk(MIB).progress(&progress);
    unimem::fault::reset();
    unimem::fault::fail("cuMemHostRegister_v2", 3, 2);
    let err = block.register_cuda_with(&driver, 0, &options).unwrap_err();
    assert!(
        matches!(
            err,
            MemError::Cuda { call: "cuMemHostRegister_v2", code: 2, bytes: Some(b), .. } if b == MIB
        ),
        "{err:?}"
    );
    assert_eq!(unimem::fault::calls("cuMemHostRegister_v2"), 3);
    assert_eq!(unimem::fault::calls("cuMemHostUnregister"), 2);
    assert_eq!((progress.done(), progress.total()), (0, 0));
    unimem::fault::reset();
    let again = register(&block, &driver);
    // SAFETY: the whole Block; no view of its bytes is alive during the call.
    unsafe {
        again
            .context()
            .memset_d8(again.device_ptr(), 0x77, block.size())
            .unwrap();
    }
    drop(again);
    assert!(block.as_bytes().iter().all(|&b| b == 0x77));
}

/// A Block on huge pages (where the machine offers them) registers in chunks of its page
/// size; the GPU writes and reads it.
#[test]
fn huge_page_blocks_register() {
    let Some(driver) = gpu("huge_page_blocks_register") else {
        return;
    };
    let mut block = Block::builder(8 * MIB)
        .huge_pages(HugePages::Try)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    eprintln!(
        "huge_page_blocks_register: {} pages of {} bytes",
        block.pages(),
        block.page_size()
    );
    for (i, b) in block.as_bytes_mut().iter_mut().enumerate() {
        *b = pattern(i);
    }
    // 3 MiB rounds down to the page in use: 2 MiB chunks on huge pages.
    let options = RegisterOptions::new().chunk(3 * MIB);
    let registered = block.register_cuda_with(&driver, 0, &options).unwrap();
    let chunk = 3 * MIB / block.page_size() * block.page_size();
    assert_eq!(registered.chunks(), block.size().div_ceil(chunk));
    if block.pages() != Pages::Base {
        assert_eq!(registered.chunks(), 4);
    }
    let read = gpu_read(&registered, 0, block.size());
    assert!(read == block.as_bytes(), "GPU read of the huge-page Block");
    // SAFETY: the whole Block; no view of its bytes is alive during the call.
    unsafe {
        registered
            .context()
            .memset_d32(registered.device_ptr(), 0xABCD_0123, block.size() / 4)
            .unwrap();
    }
    drop(registered);
    assert!(block.as_slice::<u32>().iter().all(|&w| w == 0xABCD_0123));
}

//! CUDA zero-copy (feature `cuda`): a registered Block is written by the GPU and read by the
//! CPU, written by the CPU and read by the GPU, whole and at page offsets; double
//! registration, bad devices and the drop order are checked.
//!
//! Without a CUDA driver every test that needs a GPU says so on stderr
//! (`skipped: no CUDA driver: ...`, written past the test harness's capture, so it shows in
//! a plain `cargo test`) and asserts that `Driver::load` failed with the variant a machine
//! without a GPU gives. With `UNIMEM_REQUIRE_CUDA=1` (the GPU run) a missing driver fails
//! instead.

#![cfg(feature = "cuda")]

mod common;

use std::io::Write as _;

use common::{assert_child_passes, is_child};
use unimem::cuda::{Attribute, Context, CudaBlock, DeviceMemory, Driver, HostMemory};
use unimem::{Block, MemError, page_size};

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
    assert!(
        std::env::var_os("UNIMEM_REQUIRE_CUDA").is_none(),
        "UNIMEM_REQUIRE_CUDA is set, but there is no usable CUDA device: {err}"
    );
    assert_no_driver(&err);
    // Straight to stderr, past the harness's capture of `eprintln!`: visible in `cargo test`.
    let line = format!("test {test}: skipped: no CUDA driver: {err}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// The errors a machine without a usable GPU gives, and nothing else.
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
    let context = registered.context();
    let scratch: DeviceMemory<'_> = context.alloc(len).unwrap();
    let mut out = vec![0u8; len];
    let src = registered.device_ptr_at(offset).unwrap();
    assert!(registered.device_ptr_at(offset + len - 1).is_some());
    // SAFETY: `src..src + len` lies inside the registered Block (checked above), which no
    // one writes meanwhile (the registration borrows it shared); the scratch memory and
    // `out` are this function's own.
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

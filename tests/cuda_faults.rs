//! Every CUDA refusal, on any Linux machine: the driver library is the stand-in of
//! `tests/fake_cuda/libcuda.rs` (every driver function, over host memory), found through
//! `LD_LIBRARY_PATH` in a child process, and the failures are made by fault injection
//! (`unimem::fault`). Each test checks afterwards that no registration, allocation or
//! context retain is left in the driver, and no descriptor, mapping, lock or id here.
//!
//! The stand-in is compiled here with `rustc` into `CARGO_TARGET_TMPDIR` (or taken from
//! `UNIMEM_FAKE_CUDA_DIR`, where the GPU check puts it). Without `rustc` the tests say so
//! and pass; `UNIMEM_REQUIRE_FAKE_CUDA=1` (set by `.ci/run`) makes that a failure.
//!
//! What only a GPU shows (the device really reading and writing a Block) is
//! `tests/cuda.rs`, run by the GPU check (`.ci/gpu-check`).

#![cfg(all(
    target_os = "linux",
    not(miri),
    feature = "cuda",
    feature = "fault-injection"
))]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::{Census, is_child};
use unimem::cuda::{Attribute, CudaBlock, Driver};
use unimem::{Block, MemError, Pin, fault};

const MIB: usize = 1 << 20;

/// The directory holding the stand-in `libcuda.so.1`, built once per test process; `Err`
/// says why there is none.
fn fake_driver_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("UNIMEM_FAKE_CUDA_DIR") {
        return Ok(dir.into());
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fake-cuda");
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fake_cuda/libcuda.rs");
            let out = dir.join("libcuda.so.1");
            let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
            let status = std::process::Command::new(&rustc)
                .args([
                    "--edition",
                    "2021",
                    "--crate-type",
                    "cdylib",
                    "-O",
                    source,
                    "-o",
                ])
                .arg(&out)
                .status()
                .map_err(|e| format!("cannot run {rustc} to build the fake CUDA driver: {e}"))?;
            if !status.success() {
                return Err(format!("{rustc} failed to build {source} ({status})"));
            }
            Ok(dir)
        })
        .clone()
}

/// Runs `body` in a child whose `libcuda.so.1` is the stand-in (with `env` added to the
/// child's environment), or says why it cannot.
fn with_fake_driver(test: &str, env: &[(&str, String)], body: impl FnOnce(Driver)) {
    if is_child(test) {
        let driver = Driver::load().expect("the fake driver loads");
        body(driver);
        return;
    }
    let dir = match fake_driver_dir() {
        Ok(dir) => dir,
        Err(why) => return common::skip(test, "FAKE_CUDA", &why),
    };
    let mut env = env.to_vec();
    env.push(("LD_LIBRARY_PATH", dir.display().to_string()));
    common::assert_passed(test, &common::run_child_with(test, &env));
}

/// In a child: runs `body` with the fake driver, without loading it first (the test loads
/// it itself, under the faults it arms).
fn with_fake_library(test: &str, body: impl FnOnce()) {
    if is_child(test) {
        body();
        return;
    }
    let dir = match fake_driver_dir() {
        Ok(dir) => dir,
        Err(why) => return common::skip(test, "FAKE_CUDA", &why),
    };
    let env = [("LD_LIBRARY_PATH", dir.display().to_string())];
    common::assert_passed(test, &common::run_child_with(test, &env));
}

/// What the stand-in driver holds now: (registrations, allocations, context retains).
fn driver_holds() -> (usize, usize, usize) {
    let name = c"libcuda.so.1";
    // SAFETY: the library is loaded already (by `Driver::load`), so dlopen only returns
    // another handle to it; `unimem_fake_cuda_live` writes three `usize`s to its argument,
    // an array of three that lives for the call.
    unsafe {
        let library = libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        assert!(!library.is_null(), "the fake driver is not loaded");
        let live = libc::dlsym(library, c"unimem_fake_cuda_live".as_ptr());
        assert!(!live.is_null(), "libcuda.so.1 is not the fake driver");
        let live: unsafe extern "C" fn(*mut usize) = std::mem::transmute(live);
        let mut out = [0usize; 3];
        live(out.as_mut_ptr());
        libc::dlclose(library);
        (out[0], out[1], out[2])
    }
}

/// Unregisters `address` in the driver behind unimem's back, as code outside it could.
fn unregister_behind_unimems_back(address: *mut u8) {
    // SAFETY: as in `driver_holds`; cuMemHostUnregister takes the registered base.
    unsafe {
        let library = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        let f = libc::dlsym(library, c"cuMemHostUnregister".as_ptr());
        assert!(!f.is_null());
        let f: unsafe extern "C" fn(*mut u8) -> i32 = std::mem::transmute(f);
        assert_eq!(f(address), 0);
        libc::dlclose(library);
    }
}

fn block(size: usize) -> Block {
    Block::builder(size).pin(Pin::BestEffort).open().unwrap()
}

fn cuda(
    call: &'static str,
    code: i32,
    name: &'static str,
    device: Option<u32>,
    bytes: Option<usize>,
) -> MemError {
    MemError::Cuda {
        call,
        code,
        name,
        device,
        bytes,
    }
}

// ---------------------------------------------------------------------------------------
// Loading

#[test]
fn no_driver_library_is_driver_missing() {
    // Runs on every machine: the load's own hook fails it, GPU or not.
    common::in_child("no_driver_library_is_driver_missing", || {
        fault::fail("dlopen", 1, libc::ENOENT);
        let err = Driver::load().unwrap_err();
        match &err {
            MemError::CudaDriverMissing { library, reason } => {
                assert_eq!(*library, "libcuda.so.1");
                assert!(reason.contains("cannot open"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("NVIDIA driver"), "{err}");
        // The outcome is kept: a second load returns it without trying again.
        assert_eq!(Driver::load().unwrap_err(), err);
        assert_eq!(fault::calls("dlopen"), 1);
    });
}

#[test]
fn a_missing_function_is_symbol_missing() {
    with_fake_library("a_missing_function_is_symbol_missing", || {
        // The fifth function of the table is cuDeviceGetName.
        fault::fail("dlsym", 5, libc::ENOENT);
        let err = Driver::load().unwrap_err();
        assert!(
            matches!(
                &err,
                MemError::CudaSymbolMissing {
                    library: "libcuda.so.1",
                    symbol: "cuDeviceGetName",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("cuDeviceGetName"), "{err}");
        assert_eq!(fault::calls("dlsym"), 5);
        assert_eq!(fault::calls("cuInit"), 0);
    });
}

#[test]
fn cu_init_failure_is_init_failed() {
    with_fake_library("cu_init_failure_is_init_failed", || {
        fault::fail("cuInit", 1, 100);
        let err = Driver::load().unwrap_err();
        assert_eq!(
            err,
            MemError::CudaInitFailed {
                code: 100,
                name: "CUDA_ERROR_NO_DEVICE"
            }
        );
        assert!(err.to_string().contains("nvidia-smi"), "{err}");
    });
}

// ---------------------------------------------------------------------------------------
// Devices and registration

#[test]
fn a_device_past_the_count_is_bad_device() {
    let env = [("UNIMEM_FAKE_CUDA_DEVICES", "2".to_owned())];
    with_fake_driver("a_device_past_the_count_is_bad_device", &env, |driver| {
        assert_eq!(driver.device_count().unwrap(), 2);
        assert_eq!(
            driver.device(2).unwrap_err(),
            MemError::CudaBadDevice {
                ordinal: 2,
                count: 2
            }
        );
        let block = block(MIB);
        let before = Census::take();
        assert_eq!(
            block.register_cuda(&driver, 7).unwrap_err(),
            MemError::CudaBadDevice {
                ordinal: 7,
                count: 2
            }
        );
        before.unchanged("a bad device");
        assert_eq!(driver_holds(), (0, 0, 0));
        // Device 1 exists: its properties read.
        let one = driver.device(1).unwrap();
        assert_eq!(one.name().unwrap(), "unimem fake CUDA device");
        assert_eq!(one.total_memory().unwrap(), 1 << 30);
        assert_eq!(one.compute_capability().unwrap(), (9, 0));
        assert!(!one.is_primary_context_active().unwrap());
        assert_eq!(driver.version().unwrap(), (13, 0));
        assert_eq!(driver.devices().unwrap().len(), 2);
    });
}

#[test]
fn a_device_that_cannot_map_host_memory_is_unsupported() {
    for (attribute, read_only) in [
        (Attribute::CanMapHostMemory, false),
        (Attribute::HostRegisterSupported, false),
        (Attribute::ReadOnlyHostRegisterSupported, true),
    ] {
        let test = "a_device_that_cannot_map_host_memory_is_unsupported";
        if is_child(test) {
            // One child per attribute: the variable names it.
            let zero: i32 = std::env::var("UNIMEM_FAKE_CUDA_ZERO_ATTRIBUTE")
                .unwrap()
                .parse()
                .unwrap();
            if zero != attribute.code() {
                continue;
            }
        }
        let env = [(
            "UNIMEM_FAKE_CUDA_ZERO_ATTRIBUTE",
            attribute.code().to_string(),
        )];
        with_fake_driver(test, &env, |driver| {
            let owner = block(MIB);
            let err = if read_only {
                let share = owner.share().unwrap();
                drop(owner);
                let import = Block::import_read_only(share, Pin::BestEffort).unwrap();
                let before = Census::take();
                let err = import.register_cuda(&driver, 0).unwrap_err();
                before.unchanged("an unsupported device");
                err
            } else {
                owner.register_cuda(&driver, 0).unwrap_err()
            };
            assert_eq!(
                err,
                MemError::CudaUnsupported {
                    device: 0,
                    attribute: attribute.name(),
                    value: 0
                }
            );
            assert_eq!(driver_holds(), (0, 0, 0));
        });
        if is_child(test) {
            return;
        }
    }
}

#[test]
fn a_page_registered_twice_is_already_registered() {
    with_fake_driver(
        "a_page_registered_twice_is_already_registered",
        &[],
        |driver| {
            let block = block(2 * MIB);
            let first = block.register_cuda(&driver, 0).unwrap();
            assert_eq!(first.device_ptr(), block.address() as u64);
            assert_eq!(driver_holds(), (1, 0, 1));
            let err = block.register_cuda(&driver, 0).unwrap_err();
            assert_eq!(
                err,
                MemError::CudaAlreadyRegistered {
                    device: 0,
                    address: block.address() as usize,
                    size: 2 * MIB
                }
            );
            // The refused attempt released its context retain.
            assert_eq!(driver_holds(), (1, 0, 1));
            drop(first);
            assert_eq!(driver_holds(), (0, 0, 0));
            // Dropped: it registers again.
            let again = block.register_cuda(&driver, 0).unwrap();
            drop(again);
            assert_eq!(driver_holds(), (0, 0, 0));
        },
    );
}

#[test]
fn every_other_driver_failure_is_cuda() {
    with_fake_driver("every_other_driver_failure_is_cuda", &[], |driver| {
        let block = block(MIB);
        let size = Some(MIB);
        let before = Census::take();
        // Registration, step by step: each failure leaves nothing behind.
        for (call, code, name, device, bytes) in [
            (
                "cuDeviceGetCount",
                3,
                "CUDA_ERROR_NOT_INITIALIZED",
                None,
                None,
            ),
            (
                "cuDeviceGet",
                101,
                "CUDA_ERROR_INVALID_DEVICE",
                Some(0),
                None,
            ),
            (
                "cuDeviceGetAttribute",
                1,
                "CUDA_ERROR_INVALID_VALUE",
                Some(0),
                None,
            ),
            (
                "cuDevicePrimaryCtxRetain",
                2,
                "CUDA_ERROR_OUT_OF_MEMORY",
                Some(0),
                None,
            ),
            (
                "cuCtxSetCurrent",
                201,
                "CUDA_ERROR_INVALID_CONTEXT",
                Some(0),
                None,
            ),
            (
                "cuMemHostRegister_v2",
                2,
                "CUDA_ERROR_OUT_OF_MEMORY",
                Some(0),
                size,
            ),
            (
                "cuMemHostGetDevicePointer_v2",
                1,
                "CUDA_ERROR_INVALID_VALUE",
                Some(0),
                size,
            ),
        ] {
            fault::reset();
            fault::fail(call, 1, code);
            let err = block.register_cuda(&driver, 0).unwrap_err();
            assert_eq!(err, cuda(call, code, name, device, bytes), "{call}");
            assert!(err.to_string().contains(name), "{err}");
            assert_eq!(
                driver_holds(),
                (0, 0, 0),
                "{call} left something in the driver"
            );
            before.unchanged(call);
        }
        fault::reset();
        // The device's own questions.
        let device = driver.device(0).unwrap();
        for (call, code, name) in [
            ("cuDriverGetVersion", 3, "CUDA_ERROR_NOT_INITIALIZED"),
            ("cuDeviceGetName", 101, "CUDA_ERROR_INVALID_DEVICE"),
            ("cuDeviceTotalMem_v2", 101, "CUDA_ERROR_INVALID_DEVICE"),
            (
                "cuDevicePrimaryCtxGetState",
                101,
                "CUDA_ERROR_INVALID_DEVICE",
            ),
        ] {
            fault::fail(call, 1, code);
            let err = match call {
                "cuDriverGetVersion" => driver.version().map(|_| ()),
                "cuDeviceGetName" => device.name().map(|_| ()),
                "cuDeviceTotalMem_v2" => device.total_memory().map(|_| ()),
                _ => device.is_primary_context_active().map(|_| ()),
            }
            .unwrap_err();
            let device = (call != "cuDriverGetVersion").then_some(0);
            assert_eq!(err, cuda(call, code, name, device, None), "{call}");
        }
        // Allocations, copies and fills.
        let context = device.context().unwrap();
        for (call, code) in [("cuMemAlloc_v2", 2), ("cuMemAllocHost_v2", 2)] {
            fault::fail(call, 1, code);
            let err = if call == "cuMemAlloc_v2" {
                context.alloc(4096).map(|_| ()).unwrap_err()
            } else {
                context.alloc_host(4096).map(|_| ()).unwrap_err()
            };
            assert_eq!(
                err,
                cuda(call, code, "CUDA_ERROR_OUT_OF_MEMORY", Some(0), Some(4096))
            );
        }
        assert_eq!(driver_holds(), (0, 0, 1));
        let memory = context.alloc(4096).unwrap();
        let host = [5u8; 64];
        let mut back = [0u8; 64];
        fault::fail("cuMemcpyHtoD_v2", 1, 700);
        // SAFETY: `memory` is 4096 bytes of device memory of this context; `host` and
        // `back` are 64 bytes each, alive for the calls.
        unsafe {
            let err = context
                .copy_to_device(memory.device_ptr(), host.as_ptr(), 64)
                .unwrap_err();
            assert_eq!(
                err,
                cuda(
                    "cuMemcpyHtoD_v2",
                    700,
                    "CUDA_ERROR_ILLEGAL_ADDRESS",
                    Some(0),
                    Some(64)
                )
            );
            fault::fail("cuCtxSynchronize", 1, 700);
            let err = context.memset_d8(memory.device_ptr(), 1, 64).unwrap_err();
            assert_eq!(
                err,
                cuda(
                    "cuCtxSynchronize",
                    700,
                    "CUDA_ERROR_ILLEGAL_ADDRESS",
                    Some(0),
                    None
                )
            );
            // Without faults the stand-in moves the bytes.
            context
                .copy_to_device(memory.device_ptr(), host.as_ptr(), 64)
                .unwrap();
            context
                .copy_to_host(back.as_mut_ptr(), memory.device_ptr(), 64)
                .unwrap();
        }
        assert_eq!(back, host);
        drop(memory);
        drop(context);
        assert_eq!(driver_holds(), (0, 0, 0));
    });
}

#[test]
fn zero_byte_allocations_are_zero_size() {
    with_fake_driver("zero_byte_allocations_are_zero_size", &[], |driver| {
        let context = driver.device(0).unwrap().context().unwrap();
        assert_eq!(context.alloc(0).unwrap_err(), MemError::ZeroSize);
        assert_eq!(context.alloc_host(0).unwrap_err(), MemError::ZeroSize);
        assert_eq!(
            fault::calls("cuMemAlloc_v2") + fault::calls("cuMemAllocHost_v2"),
            0
        );
        drop(context);
        assert_eq!(driver_holds(), (0, 0, 0));
    });
}

#[test]
fn a_failed_unregister_in_drop_leaks_the_registration_safely() {
    with_fake_driver(
        "a_failed_unregister_in_drop_leaks_the_registration_safely",
        &[],
        |driver| {
            let block = block(MIB);
            let registered = block.register_cuda(&driver, 0).unwrap();
            fault::fail("cuMemHostUnregister", 1, 999);
            drop(registered);
            assert_eq!(fault::calls("cuMemHostUnregister"), 1);
            // Left registered in the driver (nobody to report to in drop); the context retain
            // is still released, and the Block stays usable.
            assert_eq!(driver_holds(), (1, 0, 0));
            assert!(matches!(
                block.register_cuda(&driver, 0),
                Err(MemError::CudaAlreadyRegistered { .. })
            ));
            // A context that cannot be made current cannot unregister either.
            unregister_behind_unimems_back(block.address());
            let registered = block.register_cuda(&driver, 0).unwrap();
            fault::fail("cuCtxSetCurrent", 1, 201);
            drop(registered);
            assert_eq!(driver_holds(), (1, 0, 0));
        },
    );
}

#[test]
fn keeping_a_second_registration_returns_the_kept_one() {
    with_fake_driver(
        "keeping_a_second_registration_returns_the_kept_one",
        &[],
        |driver| {
            let block = block(MIB);
            let kept = block.register_cuda(&driver, 0).unwrap().keep();
            assert_eq!(block.cuda_device_ptr(), Some(kept));
            assert!(block.cuda_context().is_some());
            // Only code outside unimem can make room for a second registration.
            unregister_behind_unimems_back(block.address());
            let second: CudaBlock<'_> = block.register_cuda(&driver, 0).unwrap();
            assert_eq!(driver_holds(), (1, 0, 2));
            assert_eq!(second.keep(), kept);
            // The second one was dropped: unregistered and released.
            assert_eq!(driver_holds(), (0, 0, 1));
            drop(block);
            assert_eq!(driver_holds(), (0, 0, 0));
        },
    );
}

#[test]
fn freezing_a_block_that_keeps_a_registration_is_refused() {
    with_fake_driver(
        "freezing_a_block_that_keeps_a_registration_is_refused",
        &[],
        |driver| {
            let mut tape = unimem::Tape::over(block(MIB));
            tape.take_slice::<u8>(16).unwrap().fill(3);
            let id = tape.block().id();
            tape.block().register_cuda(&driver, 0).unwrap().keep();
            assert_eq!(
                tape.freeze().unwrap_err(),
                MemError::FreezeRegistered { id, size: MIB }
            );
            // Nothing changed: writable, takes work.
            assert!(!tape.is_read_only());
            assert!(tape.take(8, 8).is_some());
            assert_eq!(driver_holds(), (1, 0, 1));
            drop(tape);
            assert_eq!(driver_holds(), (0, 0, 0));
        },
    );
}

#[test]
fn the_fake_driver_moves_bytes_through_a_registered_block() {
    // The zero-copy path end to end over the stand-in: a fill through the device pointer
    // is seen by the CPU (on a GPU, `tests/cuda.rs` checks the same on the device).
    with_fake_driver(
        "the_fake_driver_moves_bytes_through_a_registered_block",
        &[],
        |driver| {
            let block = block(MIB);
            let registered = block.register_cuda(&driver, 0).unwrap();
            assert_eq!(registered.size(), MIB);
            assert_eq!(registered.device().ordinal(), 0);
            assert!(!registered.is_read_only());
            assert_eq!(registered.extent().id(), block.id());
            assert_eq!(
                registered.device_ptr_of(block.address().wrapping_add(8)),
                Some(registered.device_ptr() + 8)
            );
            assert_eq!(registered.device_ptr_at(MIB), None);
            assert!(format!("{registered:?}").contains("CudaBlock"));
            let at = registered.device_ptr_at(4096).unwrap();
            let context = registered.context();
            // SAFETY: 64 KiB of the registered Block and 4 KiB of device memory, which no
            // reference views during the calls.
            unsafe {
                context.memset_d32(at, 0x0101_0101, 16 << 10).unwrap();
                let scratch = context.alloc(4096).unwrap();
                assert_eq!(scratch.size(), 4096);
                context.memset_d8(scratch.device_ptr(), 2, 4096).unwrap();
                context.copy(at, scratch.device_ptr(), 16).unwrap();
            }
            context.synchronize().unwrap();
            // CUDA's own pinned host memory, the baseline a Block is measured against.
            let host = context.alloc_host(4096).unwrap();
            assert_eq!(
                (host.size(), host.device_ptr()),
                (4096, host.as_ptr() as u64)
            );
            drop(host);
            drop(registered);
            assert_eq!(driver_holds(), (0, 0, 0));
            let bytes = block.as_bytes();
            assert!(bytes[4096..4096 + 16].iter().all(|&b| b == 2));
            assert!(bytes[4096 + 16..4096 + (64 << 10)].iter().all(|&b| b == 1));
            assert!(bytes[..4096].iter().all(|&b| b == 0));
        },
    );
}

//! Every CUDA refusal, on any Linux machine: the driver library is the stand-in of
//! `tests/fake_cuda/libcuda.rs` (every driver function, over host memory), found through
//! `LD_LIBRARY_PATH` in a child process, and the failures are made by fault injection
//! (`unimem::fault`). Each test checks afterwards that no registration, allocation or
//! context retain is left in the driver, and no descriptor, mapping, lock or id here.
//!
//! The stand-in is compiled here with `rustc` into `CARGO_TARGET_TMPDIR`, once per
//! batched-copy mode a test asks for (`UNIMEM_FAKE_CUDA_BATCH` in the child's environment:
//! `v2`, the default, `v1`, `none`), or taken from `UNIMEM_FAKE_CUDA_DIR/MODE`, where the GPU
//! check puts them (`tests/fake_cuda/build`). Without `rustc` the tests say so and pass;
//! `UNIMEM_REQUIRE_FAKE_CUDA=1` (set by `.ci/run`) makes that a failure.
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
use unimem::cuda::{Attribute, CopyPath, CopyRange, CudaBlock, Driver, Fallback, RegisterOptions};
use unimem::{Block, CellId, ErrorKind, Grid, MemError, Pin, Tape, fault};

const MIB: usize = 1 << 20;

/// The batched-copy modes of the stand-in, one build each (`tests/fake_cuda/libcuda.rs`).
const MODES: [&str; 3] = ["v2", "v1", "none"];

/// The directory holding the stand-in `libcuda.so.1` built for `mode`, built once per test
/// process; `Err` says why there is none.
fn fake_driver_dir(mode: &str) -> Result<PathBuf, String> {
    let index = MODES
        .iter()
        .position(|&m| m == mode)
        .unwrap_or_else(|| panic!("no stand-in mode {mode}"));
    if let Some(dir) = std::env::var_os("UNIMEM_FAKE_CUDA_DIR") {
        return Ok(PathBuf::from(dir).join(mode));
    }
    static BUILT: [OnceLock<Result<PathBuf, String>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    BUILT[index]
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join("fake-cuda")
                .join(mode);
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
                    "--cfg",
                    &format!("unimem_fake_cuda_batch=\"{mode}\""),
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

/// The child's environment for the stand-in: `env`, `LD_LIBRARY_PATH` at the build of the
/// mode `env` names in `UNIMEM_FAKE_CUDA_BATCH` (default `v2`, then added), or why there is
/// none.
fn fake_env<'a>(env: &[(&'a str, String)]) -> Result<Vec<(&'a str, String)>, String> {
    let mode = env
        .iter()
        .find(|(k, _)| *k == "UNIMEM_FAKE_CUDA_BATCH")
        .map_or("v2", |(_, v)| v.as_str());
    let mode = *MODES
        .iter()
        .find(|&&m| m == mode)
        .unwrap_or_else(|| panic!("no stand-in mode {mode}"));
    let dir = fake_driver_dir(mode)?;
    let mut out: Vec<(&'a str, String)> = env
        .iter()
        .filter(|(k, _)| *k != "UNIMEM_FAKE_CUDA_BATCH")
        .cloned()
        .collect();
    out.push(("UNIMEM_FAKE_CUDA_BATCH", mode.to_owned()));
    out.push(("LD_LIBRARY_PATH", dir.display().to_string()));
    Ok(out)
}

/// Runs `body` in a child whose `libcuda.so.1` is the stand-in (with `env` added to the
/// child's environment; `UNIMEM_FAKE_CUDA_BATCH` picks the build), or says why it cannot.
fn with_fake_driver(test: &str, env: &[(&str, String)], body: impl FnOnce(Driver)) {
    if is_child(test) {
        let driver = Driver::load().expect("the fake driver loads");
        body(driver);
        return;
    }
    match fake_env(env) {
        Ok(env) => common::assert_passed(test, &common::run_child_with(test, &env)),
        Err(why) => common::skip(test, "FAKE_CUDA", &why),
    }
}

/// In a child: runs `body` with the fake driver (`v2`), without loading it first (the test
/// loads it itself, under the faults it arms).
fn with_fake_library(test: &str, body: impl FnOnce()) {
    if is_child(test) {
        body();
        return;
    }
    match fake_env(&[]) {
        Ok(env) => common::assert_passed(test, &common::run_child_with(test, &env)),
        Err(why) => common::skip(test, "FAKE_CUDA", &why),
    }
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

/// The live streams and events in the stand-in driver.
fn driver_handles() -> (usize, usize) {
    let mut out = [0usize; 2];
    // SAFETY: as in `driver_holds`; `unimem_fake_cuda_handles` writes two `usize`s.
    unsafe {
        let live: unsafe extern "C" fn(*mut usize) = std::mem::transmute(
            fake_symbol("unimem_fake_cuda_handles").expect("libcuda.so.1 is not the fake driver"),
        );
        live(out.as_mut_ptr());
    }
    (out[0], out[1])
}

/// The address of `name` in the loaded stand-in, or `None` where it does not export it.
fn fake_symbol(name: &str) -> Option<*mut std::ffi::c_void> {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: the library is loaded already (by `Driver::load`), so dlopen only returns
    // another handle to it, closed again at once (the library stays loaded).
    unsafe {
        let library = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        assert!(!library.is_null(), "the fake driver is not loaded");
        let address = libc::dlsym(library, name.as_ptr());
        libc::dlclose(library);
        (!address.is_null()).then_some(address)
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

/// A chunk whose device address does not follow the first chunk's (the stand-in adds a gap
/// per live registration, as a device without unified addressing could) is refused with
/// the numbers, and every chunk registered, the refused one included, is unregistered.
#[test]
fn a_chunk_not_contiguous_with_the_first_is_refused() {
    const GAP: u64 = 1 << 40;
    let env = [("UNIMEM_FAKE_CUDA_REGISTER_GAP", GAP.to_string())];
    with_fake_driver(
        "a_chunk_not_contiguous_with_the_first_is_refused",
        &env,
        |driver| {
            let block = block(4 * MIB);
            let progress = std::sync::Arc::new(unimem::Progress::new());
            let options = RegisterOptions::new().chunk(MIB).progress(&progress);
            let before = Census::take();
            fault::reset();
            let err = block.register_cuda_with(&driver, 0, &options).unwrap_err();
            let base = block.address() as u64;
            assert_eq!(
                err,
                MemError::CudaNotContiguous {
                    device: 0,
                    offset: MIB,
                    expected: base + MIB as u64,
                    found: base + MIB as u64 + GAP,
                }
            );
            assert_eq!(err.kind(), ErrorKind::Unsupported);
            // The second chunk was registered, then refused: both are undone.
            assert_eq!(fault::calls("cuMemHostRegister_v2"), 2);
            assert_eq!(fault::calls("cuMemHostUnregister"), 2);
            assert_eq!(driver_holds(), (0, 0, 0));
            assert_eq!((progress.done(), progress.total()), (0, 0));
            before.unchanged("a refused chunked registration");
            // In one chunk there is nothing to be contiguous with: it registers.
            let whole = block.register_cuda(&driver, 0).unwrap();
            assert_eq!((whole.chunks(), whole.device_ptr()), (1, base));
            drop(whole);
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

// ---------------------------------------------------------------------------------------
// Batched copies (the GPU side of them: `tests/cuda/copy.rs`, run over the stand-in in
// `.ci/run` too)

#[test]
fn a_stream_of_another_devices_context_is_refused() {
    let env = [("UNIMEM_FAKE_CUDA_DEVICES", "2".to_owned())];
    with_fake_driver(
        "a_stream_of_another_devices_context_is_refused",
        &env,
        |driver| {
            let cell = 4096;
            let grid = Grid::builder(cell, 8).pin(Pin::BestEffort).open().unwrap();
            let ids: Vec<CellId> = (0..4).map(|_| grid.take().unwrap().into_id()).collect();
            grid.tape()
                .block()
                .register_cuda(&driver, 0)
                .unwrap()
                .keep();
            let tape = Tape::over(block(MIB));
            tape.block().register_cuda(&driver, 0).unwrap().keep();
            let here = driver.device(0).unwrap().context().unwrap();
            let there = driver.device(1).unwrap().context().unwrap();
            let memory = here.alloc(4 * cell).unwrap();
            let d = memory.device_ptr();
            let list: Vec<(CellId, u64)> = ids
                .iter()
                .enumerate()
                .map(|(k, &id)| (id, d + (k * cell) as u64))
                .collect();
            let ranges = [CopyRange::new(0, cell, d)];
            let wrong = MemError::CudaStreamContext {
                stream_device: 1,
                block_device: 0,
            };
            let before = (Census::take(), driver_holds(), driver_handles());
            for stream in [there.stream().unwrap(), there.per_thread_stream()] {
                // SAFETY: refused before any device access, as every call here.
                unsafe {
                    assert_eq!(stream.cells_to_device(&grid, &list).unwrap_err(), wrong);
                    assert_eq!(stream.cells_to_host(&grid, &list).unwrap_err(), wrong);
                    assert_eq!(stream.to_device(tape.block(), &ranges).unwrap_err(), wrong);
                    assert_eq!(stream.to_host(tape.block(), &ranges).unwrap_err(), wrong);
                }
            }
            assert_eq!(wrong.kind(), ErrorKind::InvalidInput);
            // Nothing lent, made or queued.
            for &id in &ids {
                grid.cell(id).unwrap();
            }
            for call in [
                "cuEventCreate",
                "cuMemcpyBatchAsync_v2",
                "cuMemcpyHtoDAsync_v2",
            ] {
                assert_eq!(fault::calls(call), 0, "{call}");
            }
            let (census, holds, handles) = before;
            census.unchanged("a stream of another device");
            assert_eq!((driver_holds(), driver_handles()), (holds, handles));
            // A stream of the context the Block keeps: the same list copies.
            let stream = here.stream().unwrap();
            // SAFETY: our device memory, disjoint slots, nothing else uses it.
            let report = unsafe { stream.cells_to_device(&grid, &list) }
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(
                report.path,
                CopyPath::Batch {
                    symbol: "cuMemcpyBatchAsync_v2"
                }
            );
            drop((stream, memory));
            drop((here, there, tape, grid));
            assert_eq!((driver_holds(), driver_handles()), ((0, 0, 0), (0, 0)));
        },
    );
}

/// `CUmemcpyAttributes_v1`, as the test passes it to the stand-in directly.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Attributes {
    src_access_order: u32,
    src_loc_hint: [u32; 2],
    dst_loc_hint: [u32; 2],
    flags: u32,
}

impl Attributes {
    fn order(src_access_order: u32) -> Attributes {
        Attributes {
            src_access_order,
            src_loc_hint: [0; 2],
            dst_loc_hint: [0; 2],
            flags: 0,
        }
    }
}

/// The arguments of one `cuMemcpyBatchAsync` call, as raw as the ABI.
#[derive(Debug, Clone)]
struct BatchCall {
    dsts: Vec<u64>,
    srcs: Vec<u64>,
    sizes: Vec<usize>,
    count: usize,
    attrs: Vec<Attributes>,
    idxs: Vec<usize>,
    num_attrs: usize,
    stream: usize,
}

type BatchV2 = unsafe extern "C" fn(
    *mut u64,
    *mut u64,
    *mut usize,
    usize,
    *mut Attributes,
    *mut usize,
    usize,
    *mut std::ffi::c_void,
) -> i32;
type BatchV1 = unsafe extern "C" fn(
    *mut u64,
    *mut u64,
    *mut usize,
    usize,
    *mut Attributes,
    *mut usize,
    usize,
    *mut usize,
    *mut std::ffi::c_void,
) -> i32;

impl BatchCall {
    /// Calls the stand-in's `export` (the 13.0 or the 12.8 ABI): the code, and for the 12.8
    /// one its `failIdx`.
    fn call(&self, export: &str) -> (i32, Option<usize>) {
        let mut c = self.clone();
        assert!(c.count <= c.dsts.len() && c.count <= c.srcs.len() && c.count <= c.sizes.len());
        // The stand-in reads the attributes only once `numAttrs <= count` is checked.
        assert!(
            c.num_attrs > c.count || (c.attrs.len() >= c.num_attrs && c.idxs.len() >= c.num_attrs)
        );
        let address = fake_symbol(export).unwrap();
        let stream = std::ptr::without_provenance_mut(c.stream);
        // SAFETY: the signature is the export's (cuda.h, the stand-in's definition); every
        // array holds at least the counts the stand-in reads (asserted above); the ranges
        // are memory of this test, as each case says (the refused ones are not touched).
        unsafe {
            if export == "cuMemcpyBatchAsync_v2" {
                let f: BatchV2 = std::mem::transmute(address);
                let code = f(
                    c.dsts.as_mut_ptr(),
                    c.srcs.as_mut_ptr(),
                    c.sizes.as_mut_ptr(),
                    c.count,
                    c.attrs.as_mut_ptr(),
                    c.idxs.as_mut_ptr(),
                    c.num_attrs,
                    stream,
                );
                (code, None)
            } else {
                let f: BatchV1 = std::mem::transmute(address);
                let mut fail = 0usize;
                let code = f(
                    c.dsts.as_mut_ptr(),
                    c.srcs.as_mut_ptr(),
                    c.sizes.as_mut_ptr(),
                    c.count,
                    c.attrs.as_mut_ptr(),
                    c.idxs.as_mut_ptr(),
                    c.num_attrs,
                    &mut fail,
                    stream,
                );
                (code, Some(fail))
            }
        }
    }
}

/// The control for `.ci/run`'s runs of `tests/cuda.rs` over each build of the stand-in:
/// each build exports the batched copy of its mode (so the run takes the path it names),
/// and the calls refuse what the reference refuses (so a copy unimem gets wrong fails
/// there rather than moving bytes).
#[test]
fn each_stand_in_build_has_its_batched_copy_and_checks_it() {
    const TEST: &str = "each_stand_in_build_has_its_batched_copy_and_checks_it";
    for mode in MODES {
        if is_child(TEST) && std::env::var("UNIMEM_FAKE_CUDA_BATCH").as_deref() != Ok(mode) {
            continue;
        }
        let env = [("UNIMEM_FAKE_CUDA_BATCH", mode.to_owned())];
        with_fake_driver(TEST, &env, |driver| batched_copy_of(mode, &driver));
        if is_child(TEST) {
            return;
        }
    }
}

fn batched_copy_of(mode: &str, driver: &Driver) {
    let (symbol, version, exports): (_, _, &[&str]) = match mode {
        "v2" => (
            Some("cuMemcpyBatchAsync_v2"),
            (13, 0),
            &["cuMemcpyBatchAsync_v2", "cuMemcpyBatchAsync"],
        ),
        "v1" => (Some("cuMemcpyBatchAsync"), (12, 8), &["cuMemcpyBatchAsync"]),
        _ => (None, (12, 6), &[]),
    };
    assert_eq!(driver.batch_copy(), symbol);
    assert_eq!(driver.version().unwrap(), version);
    for export in ["cuMemcpyBatchAsync_v2", "cuMemcpyBatchAsync"] {
        assert_eq!(
            fake_symbol(export).is_some(),
            exports.contains(&export),
            "{export}"
        );
    }

    // Through unimem: the mode's path.
    let mut owner = block(MIB);
    owner
        .as_bytes_mut()
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    owner.register_cuda(driver, 0).unwrap().keep();
    let context = driver.device(0).unwrap().context().unwrap();
    let stream = context.stream().unwrap();
    let memory = context.alloc(64 << 10).unwrap();
    let d = memory.device_ptr();
    let ranges = [
        CopyRange::new(8, 100, d),
        CopyRange::new(5000, 300, d + 4096),
    ];
    // SAFETY: our device memory, disjoint; nothing writes the Block.
    let report = unsafe { stream.to_device(&owner, &ranges) }
        .unwrap()
        .wait()
        .unwrap();
    let path = match symbol {
        Some(symbol) => CopyPath::Batch { symbol },
        None => CopyPath::PerCopy {
            why: Fallback::NoBatchCall,
        },
    };
    assert_eq!(report.path, path);

    // The exports themselves. Three copies: 4096 bytes of the registered Block, 100 bytes
    // of it, 50 bytes of pageable memory; two sets of attributes.
    let read_only = block(MIB).into_read_only().unwrap();
    read_only.register_cuda(driver, 0).unwrap().keep();
    let pageable = [0xEEu8; 64];
    let base = owner.address() as u64;
    let good = BatchCall {
        dsts: vec![d, d + 8192, d + 16384],
        srcs: vec![base, base + 4096, pageable.as_ptr() as u64],
        sizes: vec![4096, 100, 50],
        count: 3,
        attrs: vec![Attributes::order(1), Attributes::order(3)],
        idxs: vec![0, 2],
        num_attrs: 2,
        stream: stream.raw() as usize,
    };
    let device = |context: &unimem::cuda::Context| {
        let mut out = vec![0u8; 64 << 10];
        // SAFETY: `out` is ours, as long as the device memory, which nothing else uses.
        unsafe { context.copy_to_host(out.as_mut_ptr(), d, out.len()) }.unwrap();
        out
    };
    type Case = (&'static str, fn(&mut BatchCall, u64), i32, Option<usize>);
    let cases: [Case; 16] = [
        ("count 0", |c, _| c.count = 0, 1, None),
        ("numAttrs 0", |c, _| c.num_attrs = 0, 1, None),
        ("numAttrs > count", |c, _| c.num_attrs = 4, 1, None),
        ("attrsIdxs[0] != 0", |c, _| c.idxs = vec![1, 2], 1, None),
        (
            "attrsIdxs not increasing",
            |c, _| c.idxs = vec![0, 0],
            1,
            None,
        ),
        ("attrsIdxs past count", |c, _| c.idxs = vec![0, 3], 1, None),
        (
            "srcAccessOrder INVALID",
            |c, _| c.attrs[1].src_access_order = 0,
            1,
            Some(2),
        ),
        (
            "srcAccessOrder unknown",
            |c, _| c.attrs[0].src_access_order = 4,
            1,
            Some(0),
        ),
        ("flags unknown", |c, _| c.attrs[0].flags = 2, 1, Some(0)),
        ("legacy NULL stream", |c, _| c.stream = 0, 1, None),
        ("CU_STREAM_LEGACY", |c, _| c.stream = 1, 1, None),
        ("a destroyed stream", |c, _| c.stream = 0x10, 400, None),
        (
            "a source across a registration's end",
            |c, _| c.srcs[1] += (MIB - 4096 - 50) as u64,
            1,
            Some(1),
        ),
        (
            "overlapping destinations",
            |c, _| c.dsts[1] = c.dsts[0] + 100,
            1,
            Some(1),
        ),
        (
            "a destination over another copy's source",
            |c, _| c.dsts[2] = c.srcs[1] + 10,
            1,
            Some(2),
        ),
        (
            "a read-only registration written",
            |c, ro| c.dsts[2] = ro,
            700,
            Some(2),
        ),
    ];
    for &export in exports {
        // SAFETY: 0 everywhere first, by a synchronous fill of our memory.
        unsafe { context.memset_d8(d, 0, memory.size()) }.unwrap();
        for (what, change, code, at) in cases {
            let mut call = good.clone();
            change(&mut call, read_only.address() as u64);
            let (got, fail) = call.call(export);
            assert_eq!(got, code, "{export}: {what}");
            if let Some(fail) = fail {
                assert_eq!(fail, at.unwrap_or(usize::MAX), "{export}: {what}: failIdx");
            }
        }
        assert!(
            device(&context).iter().all(|&b| b == 0),
            "{export}: a refused call copied"
        );
        let (got, fail) = good.call(export);
        assert_eq!(
            (got, fail.unwrap_or(usize::MAX)),
            (0, usize::MAX),
            "{export}"
        );
        let out = device(&context);
        assert!(out[..4096] == owner.as_bytes()[..4096], "{export}");
        assert!(out[8192..8292] == owner.as_bytes()[4096..4196], "{export}");
        assert!(out[16384..16434].iter().all(|&b| b == 0xEE), "{export}");
    }
    drop((stream, memory));
    drop((context, read_only, owner));
    assert_eq!((driver_holds(), driver_handles()), ((0, 0, 0), (0, 0)));
}

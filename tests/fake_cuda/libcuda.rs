//! A stand-in for the NVIDIA driver library (`libcuda.so.1`), for tests on machines without
//! a GPU: every CUDA driver function unimem resolves, with the contract of the CUDA Driver
//! API reference, over host memory. A "device pointer" is the host address itself (as
//! with unified addressing), so fills and copies really move bytes, and registrations are
//! tracked as the driver tracks them (a second registration of a registered page is
//! `CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED`, unregistering an unknown base
//! `CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED`).
//!
//! Built by `tests/cuda_faults.rs` (and `.ci/gpu-check`) with
//! `rustc --edition 2021 --crate-type cdylib -O tests/fake_cuda/libcuda.rs -o DIR/libcuda.so.1`
//! and found through `LD_LIBRARY_PATH=DIR` by unimem's `dlopen("libcuda.so.1")`. Failures
//! are made by unimem's own fault injection; the fake only answers. Environment:
//!
//! - `UNIMEM_FAKE_CUDA_DEVICES`: how many devices (default 1);
//! - `UNIMEM_FAKE_CUDA_ZERO_ATTRIBUTE`: an attribute code whose value is 0 (default none).
//!
//! `unimem_fake_cuda_live(out)` writes three counts for the tests' leak checks: live
//! registrations, live allocations (device and host), primary-context retains.

#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::Mutex;

type CUresult = c_int;

const SUCCESS: CUresult = 0;
const INVALID_VALUE: CUresult = 1;
const INVALID_DEVICE: CUresult = 101;
const INVALID_CONTEXT: CUresult = 201;
const ALREADY_REGISTERED: CUresult = 712;
const NOT_REGISTERED: CUresult = 713;

struct State {
    /// Registered host ranges: (base, length).
    registered: Vec<(usize, usize)>,
    /// Live allocations (device and host): (address, length).
    allocations: Vec<(usize, usize)>,
    retains: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    registered: Vec::new(),
    allocations: Vec::new(),
    retains: 0,
});

/// The one primary context: its address is the handle.
static CONTEXT: u8 = 0;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn env_int(name: &str) -> Option<i64> {
    std::env::var(name).ok()?.parse().ok()
}

fn devices() -> c_int {
    env_int("UNIMEM_FAKE_CUDA_DEVICES").unwrap_or(1) as c_int
}

fn device_ok(device: c_int) -> bool {
    (0..devices()).contains(&device)
}

#[no_mangle]
pub extern "C" fn cuInit(flags: c_uint) -> CUresult {
    if flags == 0 {
        SUCCESS
    } else {
        INVALID_VALUE
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> CUresult {
    *version = 13000;
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CUresult {
    *count = devices();
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(device: *mut c_int, ordinal: c_int) -> CUresult {
    if !device_ok(ordinal) {
        return INVALID_DEVICE;
    }
    *device = ordinal;
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, device: c_int) -> CUresult {
    if !device_ok(device) {
        return INVALID_DEVICE;
    }
    let text = b"unimem fake CUDA device\0";
    let n = text.len().min(len.max(0) as usize);
    std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), name, n);
    if n > 0 {
        *name.add(n - 1) = 0;
    }
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, device: c_int) -> CUresult {
    if !device_ok(device) {
        return INVALID_DEVICE;
    }
    *bytes = 1 << 30;
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    value: *mut c_int,
    attribute: c_int,
    device: c_int,
) -> CUresult {
    if !device_ok(device) {
        return INVALID_DEVICE;
    }
    *value = if env_int("UNIMEM_FAKE_CUDA_ZERO_ATTRIBUTE") == Some(i64::from(attribute)) {
        0
    } else {
        match attribute {
            75 => 9, // COMPUTE_CAPABILITY_MAJOR
            76 => 0, // COMPUTE_CAPABILITY_MINOR
            16 => 4, // MULTIPROCESSOR_COUNT
            18 => 0, // INTEGRATED
            _ => 1,
        }
    };
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(
    context: *mut *mut c_void,
    device: c_int,
) -> CUresult {
    if !device_ok(device) {
        return INVALID_DEVICE;
    }
    state().retains += 1;
    *context = (&raw const CONTEXT).cast_mut().cast();
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(device: c_int) -> CUresult {
    if !device_ok(device) {
        return INVALID_DEVICE;
    }
    let mut state = state();
    if state.retains == 0 {
        return INVALID_CONTEXT;
    }
    state.retains -= 1;
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxGetState(
    device: c_int,
    flags: *mut c_uint,
    active: *mut c_int,
) -> CUresult {
    if !device_ok(device) {
        return INVALID_DEVICE;
    }
    *flags = 0;
    *active = c_int::from(state().retains > 0);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(context: *mut *mut c_void) -> CUresult {
    *context = CURRENT.with(Cell::get) as *mut c_void;
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuCtxSetCurrent(context: *mut c_void) -> CUresult {
    CURRENT.with(|current| current.set(context as usize));
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuCtxSynchronize() -> CUresult {
    if CURRENT.with(Cell::get) == 0 {
        INVALID_CONTEXT
    } else {
        SUCCESS
    }
}

/// Allocates `len` zeroed bytes, 4 KiB aligned, and records them.
fn allocate(len: usize) -> Option<usize> {
    let layout = std::alloc::Layout::from_size_align(len, 4096).ok()?;
    // SAFETY: `len` is nonzero (checked by the callers).
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as usize;
    if ptr == 0 {
        return None;
    }
    state().allocations.push((ptr, len));
    Some(ptr)
}

fn free(ptr: usize) -> CUresult {
    let mut state = state();
    let Some(at) = state.allocations.iter().position(|&(p, _)| p == ptr) else {
        return INVALID_VALUE;
    };
    let (_, len) = state.allocations.swap_remove(at);
    // SAFETY: allocated by `allocate` with this very layout.
    unsafe {
        std::alloc::dealloc(
            ptr as *mut u8,
            std::alloc::Layout::from_size_align_unchecked(len, 4096),
        )
    };
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemAlloc_v2(ptr: *mut u64, len: usize) -> CUresult {
    if len == 0 || CURRENT.with(Cell::get) == 0 {
        return INVALID_VALUE;
    }
    match allocate(len) {
        Some(p) => {
            *ptr = p as u64;
            SUCCESS
        }
        None => 2, // CUDA_ERROR_OUT_OF_MEMORY
    }
}

#[no_mangle]
pub extern "C" fn cuMemFree_v2(ptr: u64) -> CUresult {
    free(ptr as usize)
}

#[no_mangle]
pub unsafe extern "C" fn cuMemAllocHost_v2(ptr: *mut *mut c_void, len: usize) -> CUresult {
    if len == 0 || CURRENT.with(Cell::get) == 0 {
        return INVALID_VALUE;
    }
    match allocate(len) {
        Some(p) => {
            *ptr = p as *mut c_void;
            SUCCESS
        }
        None => 2,
    }
}

#[no_mangle]
pub extern "C" fn cuMemFreeHost(ptr: *mut c_void) -> CUresult {
    free(ptr as usize)
}

#[no_mangle]
pub extern "C" fn cuMemHostRegister_v2(ptr: *mut c_void, len: usize, _flags: c_uint) -> CUresult {
    if ptr.is_null() || len == 0 || CURRENT.with(Cell::get) == 0 {
        return INVALID_VALUE;
    }
    let (base, end) = (ptr as usize, ptr as usize + len);
    let mut state = state();
    if state
        .registered
        .iter()
        .any(|&(b, l)| b < end && base < b + l)
    {
        return ALREADY_REGISTERED;
    }
    state.registered.push((base, len));
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuMemHostUnregister(ptr: *mut c_void) -> CUresult {
    let mut state = state();
    match state
        .registered
        .iter()
        .position(|&(b, _)| b == ptr as usize)
    {
        Some(at) => {
            state.registered.swap_remove(at);
            SUCCESS
        }
        None => NOT_REGISTERED,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuMemHostGetDevicePointer_v2(
    device_ptr: *mut u64,
    ptr: *mut c_void,
    flags: c_uint,
) -> CUresult {
    let p = ptr as usize;
    let state = state();
    let known = state
        .registered
        .iter()
        .chain(&state.allocations)
        .any(|&(b, l)| (b..b + l).contains(&p));
    if flags != 0 || !known {
        return INVALID_VALUE;
    }
    *device_ptr = p as u64;
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemsetD8_v2(dst: u64, value: u8, count: usize) -> CUresult {
    std::ptr::write_bytes(dst as *mut u8, value, count);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemsetD32_v2(dst: u64, value: c_uint, count: usize) -> CUresult {
    for i in 0..count {
        (dst as *mut u32).add(i).write_unaligned(value);
    }
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoD_v2(dst: u64, src: u64, len: usize) -> CUresult {
    std::ptr::copy(src as *const u8, dst as *mut u8, len);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(dst: u64, src: *const c_void, len: usize) -> CUresult {
    std::ptr::copy(src.cast::<u8>(), dst as *mut u8, len);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: u64, len: usize) -> CUresult {
    std::ptr::copy(src as *const u8, dst.cast::<u8>(), len);
    SUCCESS
}

// Streams and events: every copy is done when its call returns, so a stream is always
// idle and an event always complete. Handles are distinct nonzero addresses.

static HANDLES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0x1000);

fn new_handle() -> *mut c_void {
    HANDLES.fetch_add(16, std::sync::atomic::Ordering::Relaxed) as *mut c_void
}

#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(stream: *mut *mut c_void, _flags: c_uint) -> CUresult {
    *stream = new_handle();
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuStreamDestroy_v2(_stream: *mut c_void) -> CUresult {
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuStreamSynchronize(_stream: *mut c_void) -> CUresult {
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuStreamQuery(_stream: *mut c_void) -> CUresult {
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuStreamWaitEvent(_stream: *mut c_void, _event: *mut c_void, _flags: c_uint) -> CUresult {
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuEventCreate(event: *mut *mut c_void, _flags: c_uint) -> CUresult {
    *event = new_handle();
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuEventDestroy_v2(_event: *mut c_void) -> CUresult {
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuEventRecord(_event: *mut c_void, _stream: *mut c_void) -> CUresult {
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuEventQuery(_event: *mut c_void) -> CUresult {
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuEventSynchronize(_event: *mut c_void) -> CUresult {
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: u64,
    src: *const c_void,
    len: usize,
    _stream: *mut c_void,
) -> CUresult {
    std::ptr::copy(src.cast::<u8>(), dst as *mut u8, len);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: u64,
    len: usize,
    _stream: *mut c_void,
) -> CUresult {
    std::ptr::copy(src as *const u8, dst.cast::<u8>(), len);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(code: CUresult, name: *mut *const c_char) -> CUresult {
    let text: &'static [u8] = match code {
        0 => b"CUDA_SUCCESS\0",
        1 => b"CUDA_ERROR_INVALID_VALUE\0",
        2 => b"CUDA_ERROR_OUT_OF_MEMORY\0",
        3 => b"CUDA_ERROR_NOT_INITIALIZED\0",
        34 => b"CUDA_ERROR_STUB_LIBRARY\0",
        100 => b"CUDA_ERROR_NO_DEVICE\0",
        101 => b"CUDA_ERROR_INVALID_DEVICE\0",
        201 => b"CUDA_ERROR_INVALID_CONTEXT\0",
        700 => b"CUDA_ERROR_ILLEGAL_ADDRESS\0",
        712 => b"CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED\0",
        713 => b"CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED\0",
        999 => b"CUDA_ERROR_UNKNOWN\0",
        _ => return INVALID_VALUE,
    };
    *name = text.as_ptr().cast();
    SUCCESS
}

/// For the tests' leak checks: live registrations, allocations and context retains.
#[no_mangle]
pub unsafe extern "C" fn unimem_fake_cuda_live(out: *mut usize) {
    let state = state();
    *out = state.registered.len();
    *out.add(1) = state.allocations.len();
    *out.add(2) = state.retains;
}

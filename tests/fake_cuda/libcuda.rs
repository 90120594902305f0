//! A stand-in for the NVIDIA driver library (`libcuda.so.1`), for tests on machines without
//! a GPU: every CUDA driver function unimem resolves, with the contract of the CUDA Driver
//! API reference, over host memory.
//!
//! # What it mimics
//!
//! - **Devices and contexts.** `UNIMEM_FAKE_CUDA_DEVICES` devices (1 to 8, default 1), each
//!   with a primary context of its own: a distinct handle, retained and released per device
//!   (`cuDevicePrimaryCtxGetState` says whether it is active). A context is usable while it
//!   is retained: a call that needs the current context, with none current or a released one,
//!   is `CUDA_ERROR_INVALID_CONTEXT`.
//! - **Registrations** are tracked as the driver tracks them: a second registration of a
//!   registered page is `CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED`, unregistering an unknown
//!   base `CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED`, unknown flag bits
//!   `CUDA_ERROR_INVALID_VALUE`. A device write (a fill, a copy) into a range registered
//!   `READ_ONLY` is `CUDA_ERROR_ILLEGAL_ADDRESS` and writes nothing: a GPU would fault there
//!   (and the stand-in, writing with the CPU, would crash on the `PROT_READ` page).
//! - **Streams and events** are handles made by `cuStreamCreate` / `cuEventCreate` in the
//!   current context, checked on every use: an unknown or destroyed one is
//!   `CUDA_ERROR_INVALID_HANDLE`, and so is recording an event on a stream of another
//!   context ("event and stream must be on the same context"). `0` and `CU_STREAM_LEGACY`
//!   (1) name the legacy default stream, `CU_STREAM_PER_THREAD` (2) the per-thread one, both
//!   of the current context.
//! - **Batched copies**, as the build selects (below): `cuMemcpyBatchAsync_v2` (CUDA 13.0,
//!   eight parameters) and the 12.8 `cuMemcpyBatchAsync` (nine: `size_t *failIdx` before
//!   the stream) check their arguments as the reference states, before moving any byte:
//!   `count` > 0; `numAttrs` between 1 and `count`; `attrsIdxs[0]` 0, each entry greater
//!   than the last, all below `count`; every `srcAccessOrder` one of `STREAM`,
//!   `DURING_API_CALL`, `ANY`, every `flags` a `CUmemcpyFlags` value and every location hint
//!   a `CUmemLocationType` value; the stream not the legacy one ("must not be legacy NULL
//!   stream"); each copy's memory "either entirely registered with CUDA" (inside one
//!   registration or allocation) or not registered at all; and no "dependent copies" (a
//!   destination overlapping another copy's source or destination, which the reference
//!   leaves undefined). Each refusal is `CUDA_ERROR_INVALID_VALUE` (a read-only destination
//!   `CUDA_ERROR_ILLEGAL_ADDRESS`), and the 12.8 call sets `failIdx` to the copy at fault or
//!   `SIZE_MAX`. Then every copy is made.
//!
//! # What it does not
//!
//! - **No asynchrony.** Every copy and fill is complete when its call returns; a stream is
//!   always idle, an event always complete, and `cuStreamWaitEvent` orders nothing. A test
//!   that needs work still pending (a `poll` that says "not yet") cannot have it here.
//! - **A device pointer is the host address.** Device memory (`cuMemAlloc_v2`) is a
//!   4 KiB-aligned heap allocation the CPU can read, a registration's device pointer is its
//!   host address (unified addressing; `UNIMEM_FAKE_CUDA_REGISTER_GAP`, below, breaks that on
//!   purpose), and every device has the same address space. An address the driver does not
//!   know is not an error: the CPU writes it (a wild one crashes the test process), where a
//!   GPU would fault later.
//! - No sticky errors, no errors "from previous asynchronous launches", no limits (the
//!   1 GiB `cuDeviceTotalMem` reports is not enforced), no peer access, no memory types.
//!
//! # Builds
//!
//! `tests/fake_cuda/build OUT` builds one library per batched-copy mode into
//! `OUT/{v2,v1,none}/libcuda.so.1`; `tests/cuda_faults.rs` builds the one it needs the same
//! way:
//! `rustc --edition 2021 --crate-type cdylib -O --cfg 'unimem_fake_cuda_batch="MODE"'
//! tests/fake_cuda/libcuda.rs -o DIR/libcuda.so.1`. unimem finds it through
//! `LD_LIBRARY_PATH=DIR` (its `dlopen("libcuda.so.1")`). The mode decides what is exported,
//! since an export cannot be hidden at run time (`dlsym` finds whatever the library's
//! dynamic symbol table holds):
//!
//! | mode | exports | `cuDriverGetVersion` |
//! |---|---|---|
//! | `v2` (the default, no `--cfg`) | `cuMemcpyBatchAsync_v2` and `cuMemcpyBatchAsync`, as a CUDA 13 driver | 13000 |
//! | `v1` | `cuMemcpyBatchAsync` only, as a 12.8 or 12.9 driver | 12080 |
//! | `none` | neither, as a driver older than 12.8 | 12060 |
//!
//! Failures of calls made right are injected by unimem's own fault injection; the stand-in
//! itself refuses only what the reference says a driver refuses. At run time:
//!
//! - `UNIMEM_FAKE_CUDA_BATCH`: the mode the run expects (`v2`, `v1`, `none`); if set and not
//!   this build's, `cuInit` fails with `CUDA_ERROR_UNKNOWN` and says why on stderr, so a run
//!   never tests another mode than it names;
//! - `UNIMEM_FAKE_CUDA_DEVICES`: how many devices (1 to 8, default 1);
//! - `UNIMEM_FAKE_CUDA_ZERO_ATTRIBUTE`: an attribute code whose value is 0 (default none);
//! - `UNIMEM_FAKE_CUDA_REGISTER_GAP`: bytes added to a registration's device pointer for each
//!   registration live when it was made (default 0): the chunks of one Block then get device
//!   addresses that do not follow one another, as without unified addressing. Such device
//!   pointers name no host bytes; only registering means anything with it.
//!
//! For the tests' leak checks: `unimem_fake_cuda_live(out)` writes three counts (live
//! registrations, live allocations, primary-context retains of all devices), and
//! `unimem_fake_cuda_handles(out)` two (live streams, live events).

#![allow(non_snake_case, clippy::missing_safety_doc, clippy::too_many_arguments)]

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::Mutex;

type CUresult = c_int;

const SUCCESS: CUresult = 0;
const INVALID_VALUE: CUresult = 1;
const INVALID_DEVICE: CUresult = 101;
const INVALID_CONTEXT: CUresult = 201;
const INVALID_HANDLE: CUresult = 400;
const ILLEGAL_ADDRESS: CUresult = 700;
const ALREADY_REGISTERED: CUresult = 712;
const NOT_REGISTERED: CUresult = 713;

/// The most devices the stand-in has.
const MAX_DEVICES: usize = 8;

/// `CU_MEMHOSTREGISTER_PORTABLE | DEVICEMAP | IOMEMORY | READ_ONLY`.
const REGISTER_FLAGS: c_uint = 0x1 | 0x2 | 0x4 | 0x8;
const REGISTER_READ_ONLY: c_uint = 0x8;

/// A registered host range.
#[derive(Clone, Copy)]
struct Registration {
    base: usize,
    len: usize,
    read_only: bool,
    /// Added to the host address to give the device pointer: 0 unless
    /// `UNIMEM_FAKE_CUDA_REGISTER_GAP` is set (see `register_gap`).
    shift: u64,
}

struct State {
    registered: Vec<Registration>,
    /// Live allocations (device and host): (address, length).
    allocations: Vec<(usize, usize)>,
    /// Primary-context retains, per device.
    retains: [usize; MAX_DEVICES],
    /// Live streams: (handle, context).
    streams: Vec<(usize, usize)>,
    /// Live events: (handle, context).
    events: Vec<(usize, usize)>,
}

static STATE: Mutex<State> = Mutex::new(State {
    registered: Vec::new(),
    allocations: Vec::new(),
    retains: [0; MAX_DEVICES],
    streams: Vec::new(),
    events: Vec::new(),
});

/// The primary contexts, one per device: their addresses are the handles.
static CONTEXTS: [u8; MAX_DEVICES] = [0; MAX_DEVICES];

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn env_int(name: &str) -> Option<i64> {
    std::env::var(name).ok()?.parse().ok()
}

/// `UNIMEM_FAKE_CUDA_REGISTER_GAP`: bytes added to the device pointer of a registration for
/// each registration live when it was made (default 0: the device pointer is the host
/// address). With a gap, a Block registered in chunks gets device addresses that do not
/// follow one another, as on a device without unified addressing; such device pointers
/// name no host bytes, so only registration is meaningful with it.
fn register_gap() -> u64 {
    env_int("UNIMEM_FAKE_CUDA_REGISTER_GAP").map_or(0, |gap| gap as u64)
}

fn devices() -> c_int {
    env_int("UNIMEM_FAKE_CUDA_DEVICES")
        .unwrap_or(1)
        .clamp(1, MAX_DEVICES as i64) as c_int
}

fn device_ok(device: c_int) -> bool {
    (0..devices()).contains(&device)
}

/// The handle of `device`'s primary context.
fn context_of(device: c_int) -> usize {
    (&raw const CONTEXTS[device as usize]) as usize
}

/// The device whose primary context `context` is, if it is one.
fn device_of(context: usize) -> Option<usize> {
    let first = (&raw const CONTEXTS[0]) as usize;
    let index = context.checked_sub(first)?;
    (index < MAX_DEVICES).then_some(index)
}

/// The calling thread's current context, if it is one that is retained (alive).
fn current() -> Result<usize, CUresult> {
    let context = CURRENT.with(Cell::get);
    match device_of(context) {
        Some(device) if state().retains[device] > 0 => Ok(context),
        _ => Err(INVALID_CONTEXT),
    }
}

/// The context of `stream`: a live stream's own, or the current one for the legacy (0, 1)
/// and per-thread (2) default streams.
fn stream_context(state: &State, stream: *mut c_void) -> Result<usize, CUresult> {
    let handle = stream as usize;
    if handle <= 2 {
        let context = CURRENT.with(Cell::get);
        return match device_of(context) {
            Some(device) if state.retains[device] > 0 => Ok(context),
            _ => Err(INVALID_CONTEXT),
        };
    }
    state
        .streams
        .iter()
        .find(|&&(h, _)| h == handle)
        .map(|&(_, context)| context)
        .ok_or(INVALID_HANDLE)
}

/// The context of a live event.
fn event_context(state: &State, event: *mut c_void) -> Result<usize, CUresult> {
    state
        .events
        .iter()
        .find(|&&(h, _)| h == event as usize)
        .map(|&(_, context)| context)
        .ok_or(INVALID_HANDLE)
}

/// Whether the device may write `len` bytes at `dst`: not into a read-only registration.
fn writable(state: &State, dst: usize, len: usize) -> Result<(), CUresult> {
    let end = dst.checked_add(len).ok_or(INVALID_VALUE)?;
    if len > 0
        && state
            .registered
            .iter()
            .any(|r| r.read_only && r.base < end && dst < r.base + r.len)
    {
        return Err(ILLEGAL_ADDRESS);
    }
    Ok(())
}

/// The batched-copy mode this library was built for.
const MODE: &str = if cfg!(unimem_fake_cuda_batch = "none") {
    "none"
} else if cfg!(unimem_fake_cuda_batch = "v1") {
    "v1"
} else {
    "v2"
};

#[no_mangle]
pub extern "C" fn cuInit(flags: c_uint) -> CUresult {
    // A run that names its mode gets that build or fails here, rather than testing another.
    if let Ok(asked) = std::env::var("UNIMEM_FAKE_CUDA_BATCH") {
        if asked != MODE {
            eprintln!(
                "libcuda.so.1 (unimem's stand-in) is the {MODE} build, but \
                 UNIMEM_FAKE_CUDA_BATCH={asked}: cuInit fails (CUDA_ERROR_UNKNOWN)"
            );
            return 999;
        }
    }
    if flags == 0 {
        SUCCESS
    } else {
        INVALID_VALUE
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> CUresult {
    if version.is_null() {
        return INVALID_VALUE;
    }
    *version = match MODE {
        "none" => 12060,
        "v1" => 12080,
        _ => 13000,
    };
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
    state().retains[device as usize] += 1;
    *context = context_of(device) as *mut c_void;
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(device: c_int) -> CUresult {
    if !device_ok(device) {
        return INVALID_DEVICE;
    }
    let mut state = state();
    let retains = &mut state.retains[device as usize];
    if *retains == 0 {
        return INVALID_CONTEXT;
    }
    *retains -= 1;
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
    *active = c_int::from(state().retains[device as usize] > 0);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(context: *mut *mut c_void) -> CUresult {
    *context = CURRENT.with(Cell::get) as *mut c_void;
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuCtxSetCurrent(context: *mut c_void) -> CUresult {
    let handle = context as usize;
    if handle != 0 {
        match device_of(handle) {
            Some(device) if state().retains[device] > 0 => {}
            _ => return INVALID_CONTEXT,
        }
    }
    CURRENT.with(|current| current.set(handle));
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuCtxSynchronize() -> CUresult {
    match current() {
        Ok(_) => SUCCESS,
        Err(code) => code,
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
    if let Err(code) = current() {
        return code;
    }
    if len == 0 {
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
    if let Err(code) = current() {
        return code;
    }
    if len == 0 {
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
pub extern "C" fn cuMemHostRegister_v2(ptr: *mut c_void, len: usize, flags: c_uint) -> CUresult {
    if let Err(code) = current() {
        return code;
    }
    if ptr.is_null() || len == 0 || flags & !REGISTER_FLAGS != 0 {
        return INVALID_VALUE;
    }
    let Some(end) = (ptr as usize).checked_add(len) else {
        return INVALID_VALUE;
    };
    let base = ptr as usize;
    let mut state = state();
    if state
        .registered
        .iter()
        .any(|r| r.base < end && base < r.base + r.len)
    {
        return ALREADY_REGISTERED;
    }
    let shift = register_gap().wrapping_mul(state.registered.len() as u64);
    state.registered.push(Registration {
        base,
        len,
        read_only: flags & REGISTER_READ_ONLY != 0,
        shift,
    });
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuMemHostUnregister(ptr: *mut c_void) -> CUresult {
    let mut state = state();
    match state.registered.iter().position(|r| r.base == ptr as usize) {
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
    let shift = state
        .registered
        .iter()
        .map(|r| (r.base, r.len, r.shift))
        .chain(state.allocations.iter().map(|&(b, l)| (b, l, 0)))
        .find(|&(b, l, _)| (b..b + l).contains(&p))
        .map(|(_, _, shift)| shift);
    let Some(shift) = shift.filter(|_| flags == 0) else {
        return INVALID_VALUE;
    };
    *device_ptr = (p as u64).wrapping_add(shift);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemsetD8_v2(dst: u64, value: u8, count: usize) -> CUresult {
    if let Err(code) = current().and_then(|_| writable(&state(), dst as usize, count)) {
        return code;
    }
    std::ptr::write_bytes(dst as *mut u8, value, count);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemsetD32_v2(dst: u64, value: c_uint, count: usize) -> CUresult {
    let Some(bytes) = count.checked_mul(4) else {
        return INVALID_VALUE;
    };
    if let Err(code) = current().and_then(|_| writable(&state(), dst as usize, bytes)) {
        return code;
    }
    for i in 0..count {
        (dst as *mut u32).add(i).write_unaligned(value);
    }
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoD_v2(dst: u64, src: u64, len: usize) -> CUresult {
    if let Err(code) = current().and_then(|_| writable(&state(), dst as usize, len)) {
        return code;
    }
    std::ptr::copy(src as *const u8, dst as *mut u8, len);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(dst: u64, src: *const c_void, len: usize) -> CUresult {
    if let Err(code) = current().and_then(|_| writable(&state(), dst as usize, len)) {
        return code;
    }
    std::ptr::copy(src.cast::<u8>(), dst as *mut u8, len);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: u64, len: usize) -> CUresult {
    if let Err(code) = current().and_then(|_| writable(&state(), dst as usize, len)) {
        return code;
    }
    std::ptr::copy(src as *const u8, dst.cast::<u8>(), len);
    SUCCESS
}

// Streams and events: every copy is done when its call returns, so a stream is always
// idle and an event always complete. Handles are distinct addresses above the special
// stream handles (0, 1, 2), never reused.

static HANDLES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0x1000);

fn new_handle() -> usize {
    HANDLES.fetch_add(16, std::sync::atomic::Ordering::Relaxed)
}

/// `CU_STREAM_DEFAULT | CU_STREAM_NON_BLOCKING`.
const STREAM_FLAGS: c_uint = 0x1;
/// `CU_EVENT_BLOCKING_SYNC | DISABLE_TIMING | INTERPROCESS`.
const EVENT_FLAGS: c_uint = 0x1 | 0x2 | 0x4;

#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(stream: *mut *mut c_void, flags: c_uint) -> CUresult {
    let context = match current() {
        Ok(context) => context,
        Err(code) => return code,
    };
    if stream.is_null() || flags & !STREAM_FLAGS != 0 {
        return INVALID_VALUE;
    }
    let handle = new_handle();
    state().streams.push((handle, context));
    *stream = handle as *mut c_void;
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuStreamDestroy_v2(stream: *mut c_void) -> CUresult {
    let mut state = state();
    match state
        .streams
        .iter()
        .position(|&(h, _)| h == stream as usize)
    {
        Some(at) => {
            state.streams.swap_remove(at);
            SUCCESS
        }
        None => INVALID_HANDLE,
    }
}

#[no_mangle]
pub extern "C" fn cuStreamSynchronize(stream: *mut c_void) -> CUresult {
    match stream_context(&state(), stream) {
        Ok(_) => SUCCESS,
        Err(code) => code,
    }
}

#[no_mangle]
pub extern "C" fn cuStreamQuery(stream: *mut c_void) -> CUresult {
    match stream_context(&state(), stream) {
        Ok(_) => SUCCESS,
        Err(code) => code,
    }
}

#[no_mangle]
pub extern "C" fn cuStreamWaitEvent(
    stream: *mut c_void,
    event: *mut c_void,
    flags: c_uint,
) -> CUresult {
    // CU_EVENT_WAIT_DEFAULT (0) or CU_EVENT_WAIT_EXTERNAL (1); the event may be of another
    // context than the stream.
    if flags > 1 {
        return INVALID_VALUE;
    }
    let state = state();
    match stream_context(&state, stream).and_then(|_| event_context(&state, event)) {
        Ok(_) => SUCCESS,
        Err(code) => code,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuEventCreate(event: *mut *mut c_void, flags: c_uint) -> CUresult {
    let context = match current() {
        Ok(context) => context,
        Err(code) => return code,
    };
    // An interprocess event must have timing disabled.
    if event.is_null() || flags & !EVENT_FLAGS != 0 || (flags & 0x4 != 0 && flags & 0x2 == 0) {
        return INVALID_VALUE;
    }
    let handle = new_handle();
    state().events.push((handle, context));
    *event = handle as *mut c_void;
    SUCCESS
}

#[no_mangle]
pub extern "C" fn cuEventDestroy_v2(event: *mut c_void) -> CUresult {
    let mut state = state();
    match state.events.iter().position(|&(h, _)| h == event as usize) {
        Some(at) => {
            state.events.swap_remove(at);
            SUCCESS
        }
        None => INVALID_HANDLE,
    }
}

#[no_mangle]
pub extern "C" fn cuEventRecord(event: *mut c_void, stream: *mut c_void) -> CUresult {
    let state = state();
    let event_context = match event_context(&state, event) {
        Ok(context) => context,
        Err(code) => return code,
    };
    match stream_context(&state, stream) {
        // "event and stream must be on the same context".
        Ok(context) if context == event_context => SUCCESS,
        Ok(_) => INVALID_HANDLE,
        Err(code) => code,
    }
}

#[no_mangle]
pub extern "C" fn cuEventQuery(event: *mut c_void) -> CUresult {
    match event_context(&state(), event) {
        Ok(_) => SUCCESS,
        Err(code) => code,
    }
}

#[no_mangle]
pub extern "C" fn cuEventSynchronize(event: *mut c_void) -> CUresult {
    match event_context(&state(), event) {
        Ok(_) => SUCCESS,
        Err(code) => code,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: u64,
    src: *const c_void,
    len: usize,
    stream: *mut c_void,
) -> CUresult {
    {
        let state = state();
        if let Err(code) =
            stream_context(&state, stream).and_then(|_| writable(&state, dst as usize, len))
        {
            return code;
        }
    }
    std::ptr::copy(src.cast::<u8>(), dst as *mut u8, len);
    SUCCESS
}

#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: u64,
    len: usize,
    stream: *mut c_void,
) -> CUresult {
    {
        let state = state();
        if let Err(code) =
            stream_context(&state, stream).and_then(|_| writable(&state, dst as usize, len))
        {
            return code;
        }
    }
    std::ptr::copy(src as *const u8, dst.cast::<u8>(), len);
    SUCCESS
}

// ---------------------------------------------------------------------------------------
// Batched copies

/// `CUmemLocation`: `{ CUmemLocationType type; int id; }`.
#[cfg(not(unimem_fake_cuda_batch = "none"))]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MemLocation {
    kind: c_uint,
    id: c_int,
}

/// `CUmemcpyAttributes_v1`.
#[cfg(not(unimem_fake_cuda_batch = "none"))]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MemcpyAttributes {
    src_access_order: c_uint,
    src_loc_hint: MemLocation,
    dst_loc_hint: MemLocation,
    flags: c_uint,
}

/// Why a batch is refused: the code, and the copy at fault (for `failIdx`) if one is.
#[cfg(not(unimem_fake_cuda_batch = "none"))]
type Refusal = (CUresult, Option<usize>);

/// Whether `len` bytes at `at` are entirely inside one registration or allocation, or
/// touch none (pageable host memory); refused when they straddle one's edge.
#[cfg(not(unimem_fake_cuda_batch = "none"))]
fn entirely_registered_or_not(state: &State, at: usize, len: usize) -> bool {
    let Some(end) = at.checked_add(len) else {
        return false;
    };
    let regions = state
        .registered
        .iter()
        .map(|r| (r.base, r.len))
        .chain(state.allocations.iter().copied());
    let mut touched = false;
    for (base, size) in regions {
        if base < end && at < base + size {
            if base <= at && end <= base + size {
                return true;
            }
            touched = true;
        }
    }
    !touched
}

/// The checks of `cuMemcpyBatchAsync` (both ABIs), in the reference's terms.
#[cfg(not(unimem_fake_cuda_batch = "none"))]
unsafe fn check_batch(
    state: &State,
    dsts: *const u64,
    srcs: *const u64,
    sizes: *const usize,
    count: usize,
    attrs: *const MemcpyAttributes,
    attrs_idxs: *const usize,
    num_attrs: usize,
    stream: *mut c_void,
) -> Result<(), Refusal> {
    // "hStream: must not be legacy NULL stream" (0, or CU_STREAM_LEGACY).
    if (stream as usize) < 2 {
        return Err((INVALID_VALUE, None));
    }
    stream_context(state, stream).map_err(|code| (code, None))?;
    if count == 0 || dsts.is_null() || srcs.is_null() || sizes.is_null() {
        return Err((INVALID_VALUE, None));
    }
    if num_attrs == 0 || num_attrs > count || attrs.is_null() || attrs_idxs.is_null() {
        return Err((INVALID_VALUE, None));
    }
    let attrs = std::slice::from_raw_parts(attrs, num_attrs);
    let idxs = std::slice::from_raw_parts(attrs_idxs, num_attrs);
    if idxs[0] != 0 || idxs.windows(2).any(|w| w[1] <= w[0]) || idxs[num_attrs - 1] >= count {
        return Err((INVALID_VALUE, None));
    }
    for (k, attr) in attrs.iter().enumerate() {
        // srcAccessOrder: STREAM 1, DURING_API_CALL 2, ANY 3 (0 is INVALID); flags: DEFAULT 0,
        // PREFER_OVERLAP_WITH_COMPUTE 1; location types: INVALID 0 to HOST_NUMA_CURRENT 4.
        let valid = (1..=3).contains(&attr.src_access_order)
            && attr.flags <= 1
            && attr.src_loc_hint.kind <= 4
            && attr.dst_loc_hint.kind <= 4;
        if !valid {
            return Err((INVALID_VALUE, Some(idxs[k])));
        }
    }
    let dsts = std::slice::from_raw_parts(dsts, count);
    let srcs = std::slice::from_raw_parts(srcs, count);
    let sizes = std::slice::from_raw_parts(sizes, count);
    for i in 0..count {
        let (dst, src, len) = (dsts[i] as usize, srcs[i] as usize, sizes[i]);
        if !entirely_registered_or_not(state, src, len)
            || !entirely_registered_or_not(state, dst, len)
        {
            return Err((INVALID_VALUE, Some(i)));
        }
        writable(state, dst, len).map_err(|code| (code, Some(i)))?;
    }
    // No dependent copies: sorted by start, a range overlaps an earlier one exactly when it
    // starts before that one's end. A destination may overlap nothing; sources may overlap
    // each other (read twice).
    let mut ranges: Vec<(usize, usize, bool, usize)> = Vec::with_capacity(2 * count);
    for i in 0..count {
        if sizes[i] > 0 {
            ranges.push((srcs[i] as usize, srcs[i] as usize + sizes[i], false, i));
            ranges.push((dsts[i] as usize, dsts[i] as usize + sizes[i], true, i));
        }
    }
    ranges.sort_unstable();
    let (mut end_all, mut end_dst) = (0usize, 0usize);
    for &(start, end, is_dst, i) in &ranges {
        if start < end_dst || (is_dst && start < end_all) {
            return Err((INVALID_VALUE, Some(i)));
        }
        end_all = end_all.max(end);
        if is_dst {
            end_dst = end_dst.max(end);
        }
    }
    Ok(())
}

/// Checks, then copies every range at once (there is no asynchrony here).
#[cfg(not(unimem_fake_cuda_batch = "none"))]
unsafe fn batch(
    dsts: *const u64,
    srcs: *const u64,
    sizes: *const usize,
    count: usize,
    attrs: *const MemcpyAttributes,
    attrs_idxs: *const usize,
    num_attrs: usize,
    stream: *mut c_void,
) -> Result<(), Refusal> {
    {
        let state = state();
        check_batch(
            &state, dsts, srcs, sizes, count, attrs, attrs_idxs, num_attrs, stream,
        )?;
    }
    for i in 0..count {
        std::ptr::copy(
            *srcs.add(i) as *const u8,
            *dsts.add(i) as *mut u8,
            *sizes.add(i),
        );
    }
    Ok(())
}

/// `cuMemcpyBatchAsync_v2` (CUDA 13.0): `(dsts, srcs, sizes, count, attrs, attrsIdxs,
/// numAttrs, hStream)`. Modes `v2` (the default).
#[cfg(not(any(unimem_fake_cuda_batch = "v1", unimem_fake_cuda_batch = "none")))]
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyBatchAsync_v2(
    dsts: *mut u64,
    srcs: *mut u64,
    sizes: *mut usize,
    count: usize,
    attrs: *mut MemcpyAttributes,
    attrs_idxs: *mut usize,
    num_attrs: usize,
    stream: *mut c_void,
) -> CUresult {
    match batch(
        dsts, srcs, sizes, count, attrs, attrs_idxs, num_attrs, stream,
    ) {
        Ok(()) => SUCCESS,
        Err((code, _)) => code,
    }
}

/// `cuMemcpyBatchAsync` (CUDA 12.8): as `cuMemcpyBatchAsync_v2` with `size_t *failIdx`
/// before the stream: the copy at fault, or `SIZE_MAX` when the failure concerns none.
/// Modes `v2` and `v1` (a 13.x driver keeps the 12.8 export).
#[cfg(not(unimem_fake_cuda_batch = "none"))]
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyBatchAsync(
    dsts: *mut u64,
    srcs: *mut u64,
    sizes: *mut usize,
    count: usize,
    attrs: *mut MemcpyAttributes,
    attrs_idxs: *mut usize,
    num_attrs: usize,
    fail_idx: *mut usize,
    stream: *mut c_void,
) -> CUresult {
    if fail_idx.is_null() {
        return INVALID_VALUE;
    }
    *fail_idx = usize::MAX;
    match batch(
        dsts, srcs, sizes, count, attrs, attrs_idxs, num_attrs, stream,
    ) {
        Ok(()) => SUCCESS,
        Err((code, at)) => {
            *fail_idx = at.unwrap_or(usize::MAX);
            code
        }
    }
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
        400 => b"CUDA_ERROR_INVALID_HANDLE\0",
        600 => b"CUDA_ERROR_NOT_READY\0",
        700 => b"CUDA_ERROR_ILLEGAL_ADDRESS\0",
        712 => b"CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED\0",
        713 => b"CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED\0",
        801 => b"CUDA_ERROR_NOT_SUPPORTED\0",
        999 => b"CUDA_ERROR_UNKNOWN\0",
        _ => return INVALID_VALUE,
    };
    *name = text.as_ptr().cast();
    SUCCESS
}

/// For the tests' leak checks: live registrations, allocations and context retains (of all
/// devices).
#[no_mangle]
pub unsafe extern "C" fn unimem_fake_cuda_live(out: *mut usize) {
    let state = state();
    *out = state.registered.len();
    *out.add(1) = state.allocations.len();
    *out.add(2) = state.retains.iter().sum();
}

/// For the tests' leak checks: live streams and events.
#[no_mangle]
pub unsafe extern "C" fn unimem_fake_cuda_handles(out: *mut usize) {
    let state = state();
    *out = state.streams.len();
    *out.add(1) = state.events.len();
}

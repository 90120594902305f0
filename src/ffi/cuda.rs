//! The CUDA driver API, loaded at run time: `dlopen("libcuda.so.1")` and one `dlsym` per
//! function, so that unimem builds without any CUDA toolkit and runs without a GPU.
//!
//! [`Api`] is the table of function pointers. Each method is a thin wrapper over one driver
//! call: it turns the `CUresult` convention into a `Result` carrying the code and does
//! nothing else. Policy (which context is current, what to release on failure, which error
//! to report) lives in `crate::cuda`.
//!
//! The versioned symbols are resolved by their exported names (`cuMemHostRegister_v2`,
//! `cuMemAlloc_v2`, ...): `cuda.h` maps the plain names to them with `#define`, and the
//! unversioned exports keep their old ABI (32-bit sizes and pointers) for old binaries.
//!
//! The library is never closed: the table lives in a process-wide `OnceLock` (see
//! `crate::cuda::Driver`), and the strings the driver returns (`cuGetErrorName`) stay valid
//! for the life of the process.
//!
//! A few functions are **optional**: newer than the oldest driver unimem runs on, so a missing
//! one is not a load failure but a `None` in the table, and the caller takes another path.
//! Today that is the batched copy: `cuMemcpyBatchAsync_v2` (the CUDA 13.0 ABI, what
//! `cuda.h` 13 binds `cuMemcpyBatchAsync` to) is preferred, then the unversioned
//! `cuMemcpyBatchAsync` (the CUDA 12.8 ABI, with a `failIdx` out-parameter); a driver older
//! than 12.8 has neither, and copies go one call per range (`specs/cuda.md`, "Batched
//! copies").
//!
//! # References
//!
//! CUDA Driver API reference (cuda.h, the `_v2` `#define`s), dlopen(3), dlsym(3).

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::ptr::NonNull;

/// `CUresult`: 0 is success, every other value an error code.
pub(crate) type CuResult = c_int;
/// `CUdevice`: a device handle (an ordinal on every driver so far).
pub(crate) type CuDevice = c_int;
/// `CUdeviceptr`: a device address, 64 bits on LP64.
pub(crate) type CuDevicePtr = u64;
/// `CUcontext`: an opaque context handle.
pub(crate) type CuContext = *mut c_void;
/// `CUstream`: an opaque stream handle; 0 (`NULL`) and 1 (`CU_STREAM_LEGACY`) name the legacy
/// default stream, 2 (`CU_STREAM_PER_THREAD`) the per-thread default stream.
pub(crate) type CuStream = *mut c_void;
/// `CUevent`: an opaque event handle.
pub(crate) type CuEvent = *mut c_void;

/// `CUmemLocation` (cuda.h): `{ CUmemLocationType type; int id; }`. In CUDA 13 `id` shares a
/// 4-byte union with a two-byte `localized` form; the size stays 8 and the alignment 4.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MemLocation {
    /// `CUmemLocationType`, a C enum (4 bytes); 0 is `CU_MEM_LOCATION_TYPE_INVALID`.
    kind: c_uint,
    /// The device ordinal or NUMA node the type names; 0 otherwise.
    id: c_int,
}

/// `CUmemcpyAttributes` (`CUmemcpyAttributes_v1`, cuda.h, CUDA 12.8 and later): the
/// attributes of the copies of a batch (`cuMemcpyBatchAsync`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MemcpyAttributes {
    /// `CUmemcpySrcAccessOrder`: 1 is `CU_MEMCPY_SRC_ACCESS_ORDER_STREAM` (0 is invalid).
    src_access_order: c_uint,
    /// Where the source lives; only read for managed or pageable memory, ignored here.
    src_loc_hint: MemLocation,
    /// Where the destination lives; as `src_loc_hint`.
    dst_loc_hint: MemLocation,
    /// `CUmemcpyFlags`: 0 is `CU_MEMCPY_FLAG_DEFAULT`.
    flags: c_uint,
}

// The layouts the driver reads, pinned down at compile time: C `int` and enums are 4 bytes on
// every target with libcuda (LP64 Linux), so `CUmemLocation` is 8 bytes aligned to 4 and
// `CUmemcpyAttributes` 24 bytes with its members at 0, 4, 12 and 20.
const _: () = {
    assert!(size_of::<MemLocation>() == 8);
    assert!(align_of::<MemLocation>() == 4);
    assert!(std::mem::offset_of!(MemLocation, kind) == 0);
    assert!(std::mem::offset_of!(MemLocation, id) == 4);
    assert!(size_of::<MemcpyAttributes>() == 24);
    assert!(align_of::<MemcpyAttributes>() == 4);
    assert!(std::mem::offset_of!(MemcpyAttributes, src_access_order) == 0);
    assert!(std::mem::offset_of!(MemcpyAttributes, src_loc_hint) == 4);
    assert!(std::mem::offset_of!(MemcpyAttributes, dst_loc_hint) == 12);
    assert!(std::mem::offset_of!(MemcpyAttributes, flags) == 20);
    assert!(size_of::<CuDevicePtr>() == 8);
    assert!(size_of::<CuStream>() == 8);
};

/// `CU_MEMCPY_SRC_ACCESS_ORDER_STREAM`: the source is read in stream order.
const SRC_ACCESS_ORDER_STREAM: c_uint = 1;
/// `CUDA_ERROR_NOT_READY`: a query found work still pending.
pub(crate) const NOT_READY: CuResult = 600;
/// `CU_STREAM_NON_BLOCKING`: the stream does not synchronize with the legacy default stream.
pub(crate) const STREAM_NON_BLOCKING: c_uint = 0x1;
/// `CU_EVENT_DISABLE_TIMING`: an event for synchronization only, cheaper to record.
pub(crate) const EVENT_DISABLE_TIMING: c_uint = 0x2;

/// `cuMemcpyBatchAsync_v2` (CUDA 13.0 ABI): `(dsts, srcs, sizes, count, attrs, attrsIdxs,
/// numAttrs, hStream)`.
type BatchV2 = unsafe extern "C" fn(
    *mut CuDevicePtr,
    *mut CuDevicePtr,
    *mut usize,
    usize,
    *mut MemcpyAttributes,
    *mut usize,
    usize,
    CuStream,
) -> CuResult;

/// `cuMemcpyBatchAsync` (CUDA 12.8 ABI): as [`BatchV2`] with `size_t *failIdx` before
/// `hStream`.
type BatchV1 = unsafe extern "C" fn(
    *mut CuDevicePtr,
    *mut CuDevicePtr,
    *mut usize,
    usize,
    *mut MemcpyAttributes,
    *mut usize,
    usize,
    *mut usize,
    CuStream,
) -> CuResult;

/// The batched copy the driver has, if any.
#[derive(Clone, Copy)]
enum Batch {
    /// `cuMemcpyBatchAsync_v2`.
    V2(BatchV2),
    /// `cuMemcpyBatchAsync` with `failIdx`.
    V1(BatchV1),
}

/// The library every NVIDIA driver installs (the unversioned `libcuda.so` comes only with
/// development packages).
pub(crate) const LIBRARY: &str = "libcuda.so.1";

const SUCCESS: CuResult = 0;
/// `CUDA_ERROR_INVALID_VALUE`.
const INVALID_VALUE: CuResult = 1;
/// `CUDA_ERROR_NOT_SUPPORTED`.
const NOT_SUPPORTED: CuResult = 801;

/// Why the table could not be built.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// `dlopen` failed; the text is `dlerror()`'s.
    Library { reason: String },
    /// `dlsym` found no such function; the text is `dlerror()`'s.
    Symbol {
        symbol: &'static str,
        reason: String,
    },
}

/// Declares the table: one field per driver function, resolved by its exported name.
macro_rules! api {
    ($( $field:ident = $symbol:literal : fn($($arg:ty),*); )*) => {
        /// The driver functions unimem calls, resolved from `libcuda.so.1`.
        pub(crate) struct Api {
            $( $field: unsafe extern "C" fn($($arg),*) -> CuResult, )*
            /// The batched copy, where the driver has one (optional: see the module docs).
            batch: Option<Batch>,
        }

        impl Api {
            fn resolve(library: NonNull<c_void>) -> Result<Api, LoadError> {
                Ok(Api {
                    $( $field: {
                        let address = symbol(library, $symbol)?;
                        // SAFETY: the driver exports `$symbol` with exactly this C
                        // signature (cuda.h); a function pointer and a data pointer have
                        // the same size and representation on every target with dlsym.
                        unsafe {
                            std::mem::transmute::<
                                *mut c_void,
                                unsafe extern "C" fn($($arg),*) -> CuResult,
                            >(address.as_ptr())
                        }
                    }, )*
                    batch: resolve_batch(library),
                })
            }
        }
    };
}

api! {
    init = "cuInit": fn(c_uint);
    driver_get_version = "cuDriverGetVersion": fn(*mut c_int);
    device_get_count = "cuDeviceGetCount": fn(*mut c_int);
    device_get = "cuDeviceGet": fn(*mut CuDevice, c_int);
    device_get_name = "cuDeviceGetName": fn(*mut c_char, c_int, CuDevice);
    device_total_mem = "cuDeviceTotalMem_v2": fn(*mut usize, CuDevice);
    device_get_attribute = "cuDeviceGetAttribute": fn(*mut c_int, c_int, CuDevice);
    primary_ctx_retain = "cuDevicePrimaryCtxRetain": fn(*mut CuContext, CuDevice);
    primary_ctx_release = "cuDevicePrimaryCtxRelease_v2": fn(CuDevice);
    primary_ctx_get_state = "cuDevicePrimaryCtxGetState": fn(CuDevice, *mut c_uint, *mut c_int);
    ctx_get_current = "cuCtxGetCurrent": fn(*mut CuContext);
    ctx_set_current = "cuCtxSetCurrent": fn(CuContext);
    ctx_synchronize = "cuCtxSynchronize": fn();
    mem_alloc = "cuMemAlloc_v2": fn(*mut CuDevicePtr, usize);
    mem_free = "cuMemFree_v2": fn(CuDevicePtr);
    mem_alloc_host = "cuMemAllocHost_v2": fn(*mut *mut c_void, usize);
    mem_free_host = "cuMemFreeHost": fn(*mut c_void);
    mem_host_register = "cuMemHostRegister_v2": fn(*mut c_void, usize, c_uint);
    mem_host_unregister = "cuMemHostUnregister": fn(*mut c_void);
    mem_host_get_device_pointer = "cuMemHostGetDevicePointer_v2": fn(*mut CuDevicePtr, *mut c_void, c_uint);
    memset_d8 = "cuMemsetD8_v2": fn(CuDevicePtr, u8, usize);
    memset_d32 = "cuMemsetD32_v2": fn(CuDevicePtr, c_uint, usize);
    memcpy_dtod = "cuMemcpyDtoD_v2": fn(CuDevicePtr, CuDevicePtr, usize);
    memcpy_htod = "cuMemcpyHtoD_v2": fn(CuDevicePtr, *const c_void, usize);
    memcpy_dtoh = "cuMemcpyDtoH_v2": fn(*mut c_void, CuDevicePtr, usize);
    memcpy_htod_async = "cuMemcpyHtoDAsync_v2": fn(CuDevicePtr, *const c_void, usize, CuStream);
    memcpy_dtoh_async = "cuMemcpyDtoHAsync_v2": fn(*mut c_void, CuDevicePtr, usize, CuStream);
    stream_create = "cuStreamCreate": fn(*mut CuStream, c_uint);
    stream_destroy = "cuStreamDestroy_v2": fn(CuStream);
    stream_synchronize = "cuStreamSynchronize": fn(CuStream);
    stream_query = "cuStreamQuery": fn(CuStream);
    stream_wait_event = "cuStreamWaitEvent": fn(CuStream, CuEvent, c_uint);
    event_create = "cuEventCreate": fn(*mut CuEvent, c_uint);
    event_record = "cuEventRecord": fn(CuEvent, CuStream);
    event_query = "cuEventQuery": fn(CuEvent);
    event_synchronize = "cuEventSynchronize": fn(CuEvent);
    event_destroy = "cuEventDestroy_v2": fn(CuEvent);
    get_error_name = "cuGetErrorName": fn(CuResult, *mut *const c_char);
}

/// The batched copy: `cuMemcpyBatchAsync_v2` if the driver exports it, else the 12.8
/// `cuMemcpyBatchAsync`, else `None` (a driver older than 12.8). Never a load failure.
fn resolve_batch(library: NonNull<c_void>) -> Option<Batch> {
    if let Some(address) = optional_symbol(library, "cuMemcpyBatchAsync_v2") {
        // SAFETY: a driver that exports `cuMemcpyBatchAsync_v2` gives it the CUDA 13.0
        // signature (cuda.h 13.0: `#define cuMemcpyBatchAsync cuMemcpyBatchAsync_v2`, eight
        // parameters); function and data pointers have the same representation (dlsym).
        return Some(Batch::V2(unsafe {
            std::mem::transmute::<*mut c_void, BatchV2>(address.as_ptr())
        }));
    }
    let address = optional_symbol(library, "cuMemcpyBatchAsync")?;
    // SAFETY: the unversioned export keeps the signature it was introduced with in CUDA
    // 12.8 (nine parameters, `failIdx` before `hStream`), as every unversioned export keeps
    // its first ABI.
    Some(Batch::V1(unsafe {
        std::mem::transmute::<*mut c_void, BatchV1>(address.as_ptr())
    }))
}

/// `dlsym(library, name)` for a function the driver may lack: `None` where it does.
///
/// With the feature `fault-injection`, a rule on `"dlsym NAME"` makes the lookup miss, as on
/// an older driver.
fn optional_symbol(library: NonNull<c_void>, name: &'static str) -> Option<NonNull<c_void>> {
    #[cfg(feature = "fault-injection")]
    {
        let rule = match name {
            "cuMemcpyBatchAsync_v2" => "dlsym cuMemcpyBatchAsync_v2",
            _ => "dlsym cuMemcpyBatchAsync",
        };
        if crate::ffi::fault::hit(rule).is_some() {
            return None;
        }
    }
    symbol(library, name).ok()
}

/// `dlerror()`'s text, or `fallback` when it has none.
fn dl_error(fallback: &str) -> String {
    // SAFETY: dlerror has no preconditions; its state is per thread in glibc and musl.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        return fallback.to_owned();
    }
    // SAFETY: a non-null dlerror result is a NUL-terminated string valid until the next
    // dl* call on this thread; it is copied out at once.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// `dlsym(library, name)`, refusing a null address.
fn symbol(library: NonNull<c_void>, name: &'static str) -> Result<NonNull<c_void>, LoadError> {
    // The fault hook of this lookup (`fault.rs`): `dlsym` reports no errno, so an injected
    // failure reads as the symbol missing, as from a driver too old to export it.
    #[cfg(feature = "fault-injection")]
    if let Some(code) = super::fault::hit("dlsym") {
        return Err(LoadError::Symbol {
            symbol: name,
            reason: format!("{LIBRARY}: undefined symbol: {name} (injected fault {code})"),
        });
    }
    let cname = std::ffi::CString::new(name).map_err(|_| LoadError::Symbol {
        symbol: name,
        reason: "name contains NUL".into(),
    })?;
    // SAFETY: clears any stale error so the one read below belongs to this lookup.
    unsafe { libc::dlerror() };
    // SAFETY: `library` is a live handle from dlopen (never closed while the table is in
    // use) and `cname` is NUL terminated.
    let address = unsafe { libc::dlsym(library.as_ptr(), cname.as_ptr()) };
    NonNull::new(address).ok_or_else(|| LoadError::Symbol {
        symbol: name,
        reason: dl_error("dlsym returned NULL"),
    })
}

/// Turns a `CUresult` into a `Result`.
fn check(code: CuResult) -> Result<(), CuResult> {
    if code == SUCCESS { Ok(()) } else { Err(code) }
}

impl Api {
    /// `dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)` and resolve every function. The
    /// handle is closed again if a function is missing, and never closed otherwise.
    pub(crate) fn load() -> Result<Api, LoadError> {
        let name = std::ffi::CString::new(LIBRARY).map_err(|_| LoadError::Library {
            reason: "library name contains NUL".into(),
        })?;
        // The fault hook of the load (`fault.rs`): as a `dlopen` that found no library.
        #[cfg(feature = "fault-injection")]
        if let Some(code) = super::fault::hit("dlopen") {
            return Err(LoadError::Library {
                reason: format!(
                    "{LIBRARY}: cannot open shared object file (injected fault {code})"
                ),
            });
        }
        // SAFETY: `name` is NUL terminated; loading the NVIDIA driver library runs only its
        // own initialisers.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        let Some(library) = NonNull::new(handle) else {
            return Err(LoadError::Library {
                reason: dl_error("dlopen returned NULL"),
            });
        };
        Api::resolve(library).inspect_err(|_| {
            // SAFETY: no pointer resolved from the handle survives this error path.
            unsafe { libc::dlclose(library.as_ptr()) };
        })
    }

    /// `cuInit(0)`.
    pub(crate) fn init(&self) -> Result<(), CuResult> {
        fault!("cuInit");
        // SAFETY: cuInit takes a flags word that must be 0.
        check(unsafe { (self.init)(0) })
    }

    /// `cuDriverGetVersion`: e.g. 13000 for CUDA 13.0.
    pub(crate) fn driver_version(&self) -> Result<c_int, CuResult> {
        fault!("cuDriverGetVersion");
        let mut version = 0;
        // SAFETY: the out pointer is valid for one write.
        check(unsafe { (self.driver_get_version)(&mut version) })?;
        Ok(version)
    }

    /// `cuDeviceGetCount`.
    pub(crate) fn device_count(&self) -> Result<c_int, CuResult> {
        fault!("cuDeviceGetCount");
        let mut count = 0;
        // SAFETY: the out pointer is valid for one write.
        check(unsafe { (self.device_get_count)(&mut count) })?;
        Ok(count)
    }

    /// `cuDeviceGet`.
    pub(crate) fn device(&self, ordinal: c_int) -> Result<CuDevice, CuResult> {
        fault!("cuDeviceGet");
        let mut device = 0;
        // SAFETY: the out pointer is valid for one write.
        check(unsafe { (self.device_get)(&mut device, ordinal) })?;
        Ok(device)
    }

    /// `cuDeviceGetName`, lossily decoded.
    pub(crate) fn device_name(&self, device: CuDevice) -> Result<String, CuResult> {
        fault!("cuDeviceGetName");
        let mut buf = [0 as c_char; 256];
        // SAFETY: the buffer is valid for `len` bytes; the driver writes a NUL-terminated
        // name of at most `len` bytes into it.
        check(unsafe { (self.device_get_name)(buf.as_mut_ptr(), buf.len() as c_int, device) })?;
        let bytes: Vec<u8> = buf
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `cuDeviceTotalMem_v2`.
    pub(crate) fn device_total_mem(&self, device: CuDevice) -> Result<usize, CuResult> {
        fault!("cuDeviceTotalMem_v2");
        let mut bytes = 0;
        // SAFETY: the out pointer is valid for one write.
        check(unsafe { (self.device_total_mem)(&mut bytes, device) })?;
        Ok(bytes)
    }

    /// `cuDeviceGetAttribute`.
    pub(crate) fn device_attribute(
        &self,
        attribute: c_int,
        device: CuDevice,
    ) -> Result<c_int, CuResult> {
        fault!("cuDeviceGetAttribute");
        let mut value = 0;
        // SAFETY: the out pointer is valid for one write; unknown attributes are refused
        // with an error code.
        check(unsafe { (self.device_get_attribute)(&mut value, attribute, device) })?;
        Ok(value)
    }

    /// `cuDevicePrimaryCtxRetain`: the device's primary context, its count raised by one.
    pub(crate) fn primary_ctx_retain(&self, device: CuDevice) -> Result<CuContext, CuResult> {
        fault!("cuDevicePrimaryCtxRetain");
        let mut context = std::ptr::null_mut();
        // SAFETY: the out pointer is valid for one write.
        check(unsafe { (self.primary_ctx_retain)(&mut context, device) })?;
        Ok(context)
    }

    /// `cuDevicePrimaryCtxRelease_v2`.
    ///
    /// # Safety
    ///
    /// The caller holds a retain of this device's primary context, gives it up with this
    /// call, and uses nothing that belonged to it afterwards.
    pub(crate) unsafe fn primary_ctx_release(&self, device: CuDevice) -> Result<(), CuResult> {
        fault!("cuDevicePrimaryCtxRelease_v2");
        // SAFETY: the caller gives up one retain it holds.
        check(unsafe { (self.primary_ctx_release)(device) })
    }

    /// `cuDevicePrimaryCtxGetState`: whether the primary context is active (retained).
    pub(crate) fn primary_ctx_active(&self, device: CuDevice) -> Result<bool, CuResult> {
        fault!("cuDevicePrimaryCtxGetState");
        let (mut flags, mut active) = (0, 0);
        // SAFETY: both out pointers are valid for one write.
        check(unsafe { (self.primary_ctx_get_state)(device, &mut flags, &mut active) })?;
        Ok(active != 0)
    }

    /// `cuCtxGetCurrent`: the calling thread's current context, or null.
    pub(crate) fn ctx_current(&self) -> Result<CuContext, CuResult> {
        fault!("cuCtxGetCurrent");
        let mut context = std::ptr::null_mut();
        // SAFETY: the out pointer is valid for one write.
        check(unsafe { (self.ctx_get_current)(&mut context) })?;
        Ok(context)
    }

    /// `cuCtxSetCurrent`.
    ///
    /// # Safety
    ///
    /// `context` is null or a context that is alive for as long as it stays current.
    pub(crate) unsafe fn ctx_set_current(&self, context: CuContext) -> Result<(), CuResult> {
        fault!("cuCtxSetCurrent");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.ctx_set_current)(context) })
    }

    /// `cuCtxSynchronize`: waits for all work of the current context.
    pub(crate) fn ctx_synchronize(&self) -> Result<(), CuResult> {
        fault!("cuCtxSynchronize");
        // SAFETY: no arguments; without a current context the driver returns an error.
        check(unsafe { (self.ctx_synchronize)() })
    }

    /// `cuMemAlloc_v2`.
    pub(crate) fn mem_alloc(&self, len: usize) -> Result<CuDevicePtr, CuResult> {
        fault!("cuMemAlloc_v2");
        let mut ptr = 0;
        // SAFETY: the out pointer is valid for one write.
        check(unsafe { (self.mem_alloc)(&mut ptr, len) })?;
        Ok(ptr)
    }

    /// `cuMemFree_v2`.
    ///
    /// # Safety
    ///
    /// `ptr` came from [`mem_alloc`](Api::mem_alloc) in the current context and nothing
    /// uses it afterwards.
    pub(crate) unsafe fn mem_free(&self, ptr: CuDevicePtr) -> Result<(), CuResult> {
        fault!("cuMemFree_v2");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.mem_free)(ptr) })
    }

    /// `cuMemAllocHost_v2`: page-locked host memory, mapped for the device.
    pub(crate) fn mem_alloc_host(&self, len: usize) -> Result<*mut c_void, CuResult> {
        fault!("cuMemAllocHost_v2");
        let mut ptr = std::ptr::null_mut();
        // SAFETY: the out pointer is valid for one write.
        check(unsafe { (self.mem_alloc_host)(&mut ptr, len) })?;
        Ok(ptr)
    }

    /// `cuMemFreeHost`.
    ///
    /// # Safety
    ///
    /// `ptr` came from [`mem_alloc_host`](Api::mem_alloc_host) and nothing uses it
    /// afterwards.
    pub(crate) unsafe fn mem_free_host(&self, ptr: *mut c_void) -> Result<(), CuResult> {
        fault!("cuMemFreeHost");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.mem_free_host)(ptr) })
    }

    /// `cuMemHostRegister_v2`.
    ///
    /// # Safety
    ///
    /// `ptr..ptr + len` is mapped and stays mapped until
    /// [`mem_host_unregister`](Api::mem_host_unregister) is called with the same `ptr`.
    pub(crate) unsafe fn mem_host_register(
        &self,
        ptr: *mut c_void,
        len: usize,
        flags: c_uint,
    ) -> Result<(), CuResult> {
        fault!("cuMemHostRegister_v2");
        // SAFETY: per the caller's contract; registering does not change the bytes.
        check(unsafe { (self.mem_host_register)(ptr, len, flags) })
    }

    /// `cuMemHostUnregister`.
    ///
    /// # Safety
    ///
    /// `ptr` is the base of a live registration, and no device work still uses it.
    pub(crate) unsafe fn mem_host_unregister(&self, ptr: *mut c_void) -> Result<(), CuResult> {
        fault!("cuMemHostUnregister");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.mem_host_unregister)(ptr) })
    }

    /// `cuMemHostGetDevicePointer_v2(&dptr, ptr, 0)`: the device address of registered or
    /// CUDA-allocated host memory, valid in the current context.
    pub(crate) fn mem_host_device_pointer(
        &self,
        ptr: *mut c_void,
    ) -> Result<CuDevicePtr, CuResult> {
        fault!("cuMemHostGetDevicePointer_v2");
        let mut device_ptr = 0;
        // SAFETY: the out pointer is valid for one write; the driver only looks `ptr` up in
        // its tables (an unknown pointer is refused with an error code).
        check(unsafe { (self.mem_host_get_device_pointer)(&mut device_ptr, ptr, 0) })?;
        Ok(device_ptr)
    }

    /// `cuMemsetD8_v2`.
    ///
    /// # Safety
    ///
    /// `dst..dst + count` is device-accessible memory that nothing else reads or writes
    /// until the operation has completed.
    pub(crate) unsafe fn memset_d8(
        &self,
        dst: CuDevicePtr,
        value: u8,
        count: usize,
    ) -> Result<(), CuResult> {
        fault!("cuMemsetD8_v2");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.memset_d8)(dst, value, count) })
    }

    /// `cuMemsetD32_v2`.
    ///
    /// # Safety
    ///
    /// As [`memset_d8`](Api::memset_d8) for `4 * count` bytes; `dst` is 4-byte aligned.
    pub(crate) unsafe fn memset_d32(
        &self,
        dst: CuDevicePtr,
        value: u32,
        count: usize,
    ) -> Result<(), CuResult> {
        fault!("cuMemsetD32_v2");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.memset_d32)(dst, value, count) })
    }

    /// `cuMemcpyDtoD_v2`.
    ///
    /// # Safety
    ///
    /// Both ranges are device-accessible for `len` bytes; nothing else writes the source or
    /// touches the destination until the copy has completed.
    pub(crate) unsafe fn memcpy_dtod(
        &self,
        dst: CuDevicePtr,
        src: CuDevicePtr,
        len: usize,
    ) -> Result<(), CuResult> {
        fault!("cuMemcpyDtoD_v2");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.memcpy_dtod)(dst, src, len) })
    }

    /// `cuMemcpyHtoD_v2`.
    ///
    /// # Safety
    ///
    /// `src` is readable for `len` bytes; `dst` is device memory as in
    /// [`memcpy_dtod`](Api::memcpy_dtod).
    pub(crate) unsafe fn memcpy_htod(
        &self,
        dst: CuDevicePtr,
        src: *const c_void,
        len: usize,
    ) -> Result<(), CuResult> {
        fault!("cuMemcpyHtoD_v2");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.memcpy_htod)(dst, src, len) })
    }

    /// `cuMemcpyDtoH_v2`.
    ///
    /// # Safety
    ///
    /// `dst` is writable for `len` bytes; `src` is device memory as in
    /// [`memcpy_dtod`](Api::memcpy_dtod).
    pub(crate) unsafe fn memcpy_dtoh(
        &self,
        dst: *mut c_void,
        src: CuDevicePtr,
        len: usize,
    ) -> Result<(), CuResult> {
        fault!("cuMemcpyDtoH_v2");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.memcpy_dtoh)(dst, src, len) })
    }

    /// `cuMemcpyHtoDAsync_v2`: queues a copy of `len` bytes from host memory to `dst`.
    ///
    /// # Safety
    ///
    /// `src` is readable for `len` bytes and `dst` device memory writable for `len` bytes
    /// until the copy has completed on `stream`; nothing else writes the source or touches
    /// the destination meanwhile; `stream` is a stream of the current context (or a
    /// special handle) that outlives the call.
    pub(crate) unsafe fn memcpy_htod_async(
        &self,
        dst: CuDevicePtr,
        src: *const c_void,
        len: usize,
        stream: CuStream,
    ) -> Result<(), CuResult> {
        fault!("cuMemcpyHtoDAsync_v2");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.memcpy_htod_async)(dst, src, len, stream) })
    }

    /// `cuMemcpyDtoHAsync_v2`: queues a copy of `len` bytes from `src` to host memory.
    ///
    /// # Safety
    ///
    /// As [`memcpy_htod_async`](Api::memcpy_htod_async), with the host side written.
    pub(crate) unsafe fn memcpy_dtoh_async(
        &self,
        dst: *mut c_void,
        src: CuDevicePtr,
        len: usize,
        stream: CuStream,
    ) -> Result<(), CuResult> {
        fault!("cuMemcpyDtoHAsync_v2");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.memcpy_dtoh_async)(dst, src, len, stream) })
    }

    /// The exported name of the batched copy this driver has, or `None` (older than 12.8).
    pub(crate) fn batch_symbol(&self) -> Option<&'static str> {
        match self.batch? {
            Batch::V2(_) => Some("cuMemcpyBatchAsync_v2"),
            Batch::V1(_) => Some("cuMemcpyBatchAsync"),
        }
    }

    /// `cuMemcpyBatchAsync_v2`, or `cuMemcpyBatchAsync` (12.8) where only that exists: queues
    /// `dsts.len()` copies, `sizes[i]` bytes from `srcs[i]` to `dsts[i]`, all with one set of
    /// attributes: sources read in stream order (`CU_MEMCPY_SRC_ACCESS_ORDER_STREAM`), no
    /// location hints, no flags (`attrs = [that]`, `attrsIdxs = [0]`, `numAttrs = 1`).
    ///
    /// On failure with the 12.8 call, `fail_index` receives the driver's `failIdx` (the copy
    /// that failed, or `usize::MAX` when the failure concerns no single copy); the 13.0 call
    /// has no such output and leaves it `usize::MAX`. `Err(801)` (`NOT_SUPPORTED`) if the
    /// driver has neither.
    ///
    /// # Safety
    ///
    /// - `dsts`, `srcs` and `sizes` have the same nonzero length;
    /// - every `srcs[i]..+sizes[i]` is device-accessible (device memory, or registered host
    ///   memory through its device address) and readable, every `dsts[i]..+sizes[i]`
    ///   device-accessible and writable, until the copies complete on `stream`; no two
    ///   destinations overlap and no destination overlaps a source (copies of a batch run in
    ///   no particular order); nothing else touches them meanwhile;
    /// - `stream` is a stream of the current context, not the legacy default stream.
    pub(crate) unsafe fn memcpy_batch_async(
        &self,
        dsts: &mut [CuDevicePtr],
        srcs: &mut [CuDevicePtr],
        sizes: &mut [usize],
        fail_index: &mut usize,
        stream: CuStream,
    ) -> Result<(), CuResult> {
        *fail_index = usize::MAX;
        let count = dsts.len();
        if srcs.len() != count || sizes.len() != count || count == 0 {
            return Err(INVALID_VALUE);
        }
        let mut attrs = [MemcpyAttributes {
            src_access_order: SRC_ACCESS_ORDER_STREAM,
            ..MemcpyAttributes::default()
        }];
        let mut attr_indices = [0usize];
        match self.batch {
            Some(Batch::V2(batch)) => {
                fault!("cuMemcpyBatchAsync_v2");
                // SAFETY: the five arrays are live and as long as the counts say (`count`
                // for the first three, 1 for the attributes); the ranges and the stream are
                // the caller's contract.
                check(unsafe {
                    batch(
                        dsts.as_mut_ptr(),
                        srcs.as_mut_ptr(),
                        sizes.as_mut_ptr(),
                        count,
                        attrs.as_mut_ptr(),
                        attr_indices.as_mut_ptr(),
                        attrs.len(),
                        stream,
                    )
                })
            }
            Some(Batch::V1(batch)) => {
                fault!("cuMemcpyBatchAsync");
                // SAFETY: as above; `fail_index` is valid for one write.
                check(unsafe {
                    batch(
                        dsts.as_mut_ptr(),
                        srcs.as_mut_ptr(),
                        sizes.as_mut_ptr(),
                        count,
                        attrs.as_mut_ptr(),
                        attr_indices.as_mut_ptr(),
                        attrs.len(),
                        fail_index,
                        stream,
                    )
                })
            }
            None => Err(NOT_SUPPORTED),
        }
    }

    /// `cuStreamCreate`: a new stream in the current context.
    pub(crate) fn stream_create(&self, flags: c_uint) -> Result<CuStream, CuResult> {
        fault!("cuStreamCreate");
        let mut stream = std::ptr::null_mut();
        // SAFETY: the out pointer is valid for one write.
        check(unsafe { (self.stream_create)(&mut stream, flags) })?;
        Ok(stream)
    }

    /// `cuStreamDestroy_v2`: returns at once; work still queued completes first (the driver
    /// frees the stream then).
    ///
    /// # Safety
    ///
    /// `stream` came from [`stream_create`](Api::stream_create), is destroyed only here, and
    /// is not used afterwards.
    pub(crate) unsafe fn stream_destroy(&self, stream: CuStream) -> Result<(), CuResult> {
        fault!("cuStreamDestroy_v2");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.stream_destroy)(stream) })
    }

    /// `cuStreamSynchronize`: waits for all work queued in `stream`.
    ///
    /// # Safety
    ///
    /// `stream` is a live stream of the current context, or a special handle.
    pub(crate) unsafe fn stream_synchronize(&self, stream: CuStream) -> Result<(), CuResult> {
        fault!("cuStreamSynchronize");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.stream_synchronize)(stream) })
    }

    /// `cuStreamQuery`: `Ok` when all work in `stream` is done, `Err(NOT_READY)` while some is
    /// pending.
    ///
    /// # Safety
    ///
    /// As [`stream_synchronize`](Api::stream_synchronize).
    pub(crate) unsafe fn stream_query(&self, stream: CuStream) -> Result<(), CuResult> {
        fault!("cuStreamQuery");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.stream_query)(stream) })
    }

    /// `cuStreamWaitEvent(stream, event, 0)`: work queued in `stream` later waits for the
    /// work `event` captured.
    ///
    /// # Safety
    ///
    /// `stream` as in [`stream_synchronize`](Api::stream_synchronize); `event` is live.
    pub(crate) unsafe fn stream_wait_event(
        &self,
        stream: CuStream,
        event: CuEvent,
    ) -> Result<(), CuResult> {
        fault!("cuStreamWaitEvent");
        // SAFETY: per the caller's contract; the flags word must be 0.
        check(unsafe { (self.stream_wait_event)(stream, event, 0) })
    }

    /// `cuEventCreate`: a new event in the current context.
    pub(crate) fn event_create(&self, flags: c_uint) -> Result<CuEvent, CuResult> {
        fault!("cuEventCreate");
        let mut event = std::ptr::null_mut();
        // SAFETY: the out pointer is valid for one write.
        check(unsafe { (self.event_create)(&mut event, flags) })?;
        Ok(event)
    }

    /// `cuEventRecord`: the event completes when the work queued in `stream` so far has.
    ///
    /// # Safety
    ///
    /// `event` is live and of the current context; `stream` as in
    /// [`stream_synchronize`](Api::stream_synchronize).
    pub(crate) unsafe fn event_record(
        &self,
        event: CuEvent,
        stream: CuStream,
    ) -> Result<(), CuResult> {
        fault!("cuEventRecord");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.event_record)(event, stream) })
    }

    /// `cuEventQuery`: `Ok` once the captured work is done, `Err(NOT_READY)` before.
    ///
    /// # Safety
    ///
    /// `event` is live.
    pub(crate) unsafe fn event_query(&self, event: CuEvent) -> Result<(), CuResult> {
        fault!("cuEventQuery");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.event_query)(event) })
    }

    /// `cuEventSynchronize`: waits for the captured work.
    ///
    /// # Safety
    ///
    /// `event` is live.
    pub(crate) unsafe fn event_synchronize(&self, event: CuEvent) -> Result<(), CuResult> {
        fault!("cuEventSynchronize");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.event_synchronize)(event) })
    }

    /// `cuEventDestroy_v2`.
    ///
    /// # Safety
    ///
    /// `event` came from [`event_create`](Api::event_create), is destroyed only here, and is
    /// not used afterwards (work that records or waits on it may still be queued: the driver
    /// defers the release).
    pub(crate) unsafe fn event_destroy(&self, event: CuEvent) -> Result<(), CuResult> {
        fault!("cuEventDestroy_v2");
        // SAFETY: per the caller's contract.
        check(unsafe { (self.event_destroy)(event) })
    }

    /// `cuGetErrorName`: `"CUDA_ERROR_OUT_OF_MEMORY"` for 2, `None` for an unknown code.
    pub(crate) fn error_name(&self, code: CuResult) -> Option<&'static str> {
        let mut name: *const c_char = std::ptr::null();
        // SAFETY: the out pointer is valid for one write.
        let status = unsafe { (self.get_error_name)(code, &mut name) };
        if status != SUCCESS || name.is_null() {
            return None;
        }
        // SAFETY: the driver returns a NUL-terminated static string of its own; the library
        // is never unloaded (module docs), so it lives as long as the process.
        unsafe { CStr::from_ptr(name) }.to_str().ok()
    }
}

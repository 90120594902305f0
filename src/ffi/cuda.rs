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

/// The library every NVIDIA driver installs (the unversioned `libcuda.so` comes only with
/// development packages).
pub(crate) const LIBRARY: &str = "libcuda.so.1";

const SUCCESS: CuResult = 0;

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
    get_error_name = "cuGetErrorName": fn(CuResult, *mut *const c_char);
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

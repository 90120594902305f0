//! The CUDA driver API where unimem does not load it (targets other than Linux, and Miri):
//! [`Api::load`] always fails, and the table type has no values, so nothing can ever claim
//! that a call succeeded.

use std::ffi::{c_int, c_uint, c_void};

/// `CUresult`.
pub(crate) type CuResult = c_int;
/// `CUdevice`.
pub(crate) type CuDevice = c_int;
/// `CUdeviceptr`.
pub(crate) type CuDevicePtr = u64;
/// `CUcontext`.
pub(crate) type CuContext = *mut c_void;
/// `CUstream`.
pub(crate) type CuStream = *mut c_void;
/// `CUevent`.
pub(crate) type CuEvent = *mut c_void;

/// `CUDA_ERROR_NOT_READY`.
pub(crate) const NOT_READY: CuResult = 600;
/// `CU_STREAM_NON_BLOCKING`.
pub(crate) const STREAM_NON_BLOCKING: c_uint = 0x1;
/// `CU_EVENT_DISABLE_TIMING`.
pub(crate) const EVENT_DISABLE_TIMING: c_uint = 0x2;

/// The library name reported in errors.
pub(crate) const LIBRARY: &str = "libcuda.so.1";

/// Why the table could not be built.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// Always this one here.
    Library { reason: String },
    /// Never built here; kept so the callers match on the same type everywhere.
    #[allow(dead_code)]
    Symbol {
        symbol: &'static str,
        reason: String,
    },
}

/// No value of this type exists: every method is unreachable.
pub(crate) enum Api {}

impl Api {
    pub(crate) fn load() -> Result<Api, LoadError> {
        let reason = if cfg!(miri) {
            "CUDA is not loaded under Miri".to_owned()
        } else {
            format!(
                "unimem's CUDA support is Linux only; this is {}",
                std::env::consts::OS
            )
        };
        Err(LoadError::Library { reason })
    }

    pub(crate) fn init(&self) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) fn driver_version(&self) -> Result<c_int, CuResult> {
        match *self {}
    }

    pub(crate) fn device_count(&self) -> Result<c_int, CuResult> {
        match *self {}
    }

    pub(crate) fn device(&self, _ordinal: c_int) -> Result<CuDevice, CuResult> {
        match *self {}
    }

    pub(crate) fn device_name(&self, _device: CuDevice) -> Result<String, CuResult> {
        match *self {}
    }

    pub(crate) fn device_total_mem(&self, _device: CuDevice) -> Result<usize, CuResult> {
        match *self {}
    }

    pub(crate) fn device_attribute(
        &self,
        _attribute: c_int,
        _device: CuDevice,
    ) -> Result<c_int, CuResult> {
        match *self {}
    }

    pub(crate) fn primary_ctx_retain(&self, _device: CuDevice) -> Result<CuContext, CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn primary_ctx_release(&self, _device: CuDevice) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) fn primary_ctx_active(&self, _device: CuDevice) -> Result<bool, CuResult> {
        match *self {}
    }

    pub(crate) fn ctx_current(&self) -> Result<CuContext, CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn ctx_set_current(&self, _context: CuContext) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) fn ctx_synchronize(&self) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) fn mem_alloc(&self, _len: usize) -> Result<CuDevicePtr, CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn mem_free(&self, _ptr: CuDevicePtr) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) fn mem_alloc_host(&self, _len: usize) -> Result<*mut c_void, CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn mem_free_host(&self, _ptr: *mut c_void) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn mem_host_register(
        &self,
        _ptr: *mut c_void,
        _len: usize,
        _flags: c_uint,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn mem_host_unregister(&self, _ptr: *mut c_void) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) fn mem_host_device_pointer(
        &self,
        _ptr: *mut c_void,
    ) -> Result<CuDevicePtr, CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn memset_d8(
        &self,
        _dst: CuDevicePtr,
        _value: u8,
        _count: usize,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn memset_d32(
        &self,
        _dst: CuDevicePtr,
        _value: u32,
        _count: usize,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn memcpy_dtod(
        &self,
        _dst: CuDevicePtr,
        _src: CuDevicePtr,
        _len: usize,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn memcpy_htod(
        &self,
        _dst: CuDevicePtr,
        _src: *const c_void,
        _len: usize,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn memcpy_dtoh(
        &self,
        _dst: *mut c_void,
        _src: CuDevicePtr,
        _len: usize,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn memcpy_htod_async(
        &self,
        _dst: CuDevicePtr,
        _src: *const c_void,
        _len: usize,
        _stream: CuStream,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn memcpy_dtoh_async(
        &self,
        _dst: *mut c_void,
        _src: CuDevicePtr,
        _len: usize,
        _stream: CuStream,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) fn batch_symbol(&self) -> Option<&'static str> {
        match *self {}
    }

    pub(crate) unsafe fn memcpy_batch_async(
        &self,
        _dsts: &mut [CuDevicePtr],
        _srcs: &mut [CuDevicePtr],
        _sizes: &mut [usize],
        _fail_index: &mut usize,
        _stream: CuStream,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) fn stream_create(&self, _flags: c_uint) -> Result<CuStream, CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn stream_destroy(&self, _stream: CuStream) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn stream_synchronize(&self, _stream: CuStream) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn stream_query(&self, _stream: CuStream) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn stream_wait_event(
        &self,
        _stream: CuStream,
        _event: CuEvent,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) fn event_create(&self, _flags: c_uint) -> Result<CuEvent, CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn event_record(
        &self,
        _event: CuEvent,
        _stream: CuStream,
    ) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn event_query(&self, _event: CuEvent) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn event_synchronize(&self, _event: CuEvent) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) unsafe fn event_destroy(&self, _event: CuEvent) -> Result<(), CuResult> {
        match *self {}
    }

    pub(crate) fn error_name(&self, _code: CuResult) -> Option<&'static str> {
        match *self {}
    }
}

//! [`Context`]: a retained primary context, made current around each driver call, and the
//! driver's own copy and fill operations on device addresses.
//!
//! # Context rules
//!
//! unimem uses only primary contexts: one per device per process, shared with the CUDA
//! runtime and everything built on it, so a Block registered by unimem is registered for
//! PyTorch too. A `Context` holds one retain (`cuDevicePrimaryCtxRetain`) and gives it back
//! when it drops (`cuDevicePrimaryCtxRelease_v2`); the driver destroys the context when the
//! last retain anywhere in the process goes.
//!
//! Each call that needs a current context makes this one current on the calling thread
//! for the duration of the call and then restores whatever was current before (often
//! nothing), through the private `Current` guard. A thread's current context is therefore
//! never changed behind its owner's back, and a `Context` can be used from any thread.

use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;

use super::{Device, DeviceMemory, HostMemory};
use crate::error::MemError;
use crate::ffi::cuda::{CuContext, CuResult};

/// A device's primary context, retained for as long as this value lives.
///
/// Obtained from [`Device::context`]; a [`CudaBlock`](super::CudaBlock) holds one of its
/// own. `Context` is `Send` and `Sync`: the driver API is thread safe, and every call makes
/// the context current on the calling thread first.
///
/// Besides owning device memory ([`alloc`](Context::alloc)) and CUDA's pinned host memory
/// ([`alloc_host`](Context::alloc_host)), a `Context` runs the driver's copy engines on
/// device addresses: fills ([`memset_d8`](Context::memset_d8),
/// [`memset_d32`](Context::memset_d32)) and copies ([`copy`](Context::copy),
/// [`copy_to_device`](Context::copy_to_device), [`copy_to_host`](Context::copy_to_host)).
/// That is enough to prove and measure zero-copy without writing a kernel; unimem runs no
/// kernels. These take raw device addresses and are `unsafe`: a device address may alias a
/// registered Block, whose bytes Rust code may be borrowing. Each returns once the
/// operation has completed (the context is synchronized before returning).
///
/// # Examples
///
/// ```no_run
/// use unimem::cuda::Driver;
///
/// let context = Driver::load()?.device(0)?.context()?;
/// let device_memory = context.alloc(1 << 20)?;
/// let mut host = vec![0u8; 1 << 20];
/// // SAFETY: both ranges are 1 MiB, the device memory is ours, `host` is borrowed
/// // mutably for the call.
/// unsafe {
///     context.memset_d8(device_memory.device_ptr(), 7, 1 << 20)?;
///     context.copy_to_host(host.as_mut_ptr(), device_memory.device_ptr(), 1 << 20)?;
/// }
/// assert!(host.iter().all(|&b| b == 7));
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct Context {
    device: Device,
    raw: CuContext,
}

// SAFETY: a context handle is not tied to a thread: the driver API is thread safe and each
// call makes the context current on the calling thread (`Current`). The retain is given
// back exactly once, by `Drop`, on whatever thread drops the value.
unsafe impl Send for Context {}
// SAFETY: as above; `&Context` methods only read the two immutable fields.
unsafe impl Sync for Context {}

impl Context {
    /// Retains `device`'s primary context.
    pub(crate) fn retain(device: Device) -> Result<Context, MemError> {
        let raw = device
            .driver()
            .api()
            .primary_ctx_retain(device.raw())
            .map_err(|code| device.error("cuDevicePrimaryCtxRetain", code))?;
        Ok(Context { device, raw })
    }

    /// The device this is the primary context of.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Waits for all work queued in this context (`cuCtxSynchronize`).
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if the context cannot be made current or some queued work
    /// failed.
    pub fn synchronize(&self) -> Result<(), MemError> {
        let _current = self.enter()?;
        self.sync()
    }

    /// Allocates `size` bytes of device memory (`cuMemAlloc_v2`), freed when the
    /// [`DeviceMemory`] drops. Its contents are unspecified until written.
    ///
    /// # Errors
    ///
    /// [`ZeroSize`](MemError::ZeroSize) for 0 bytes; [`Cuda`](MemError::Cuda) with
    /// `CUDA_ERROR_OUT_OF_MEMORY` when the device is full.
    pub fn alloc(&self, size: usize) -> Result<DeviceMemory<'_>, MemError> {
        if size == 0 {
            return Err(MemError::ZeroSize);
        }
        let _current = self.enter()?;
        let ptr = self
            .api()
            .mem_alloc(size)
            .map_err(|code| self.error("cuMemAlloc_v2", code, Some(size)))?;
        Ok(DeviceMemory::new(self, ptr, size))
    }

    /// Allocates `size` bytes of CUDA's own page-locked host memory (`cuMemAllocHost_v2`),
    /// freed when the [`HostMemory`] drops: the baseline a registered Block is measured
    /// against.
    ///
    /// # Errors
    ///
    /// [`ZeroSize`](MemError::ZeroSize) for 0 bytes; [`Cuda`](MemError::Cuda) when the
    /// driver cannot pin that much.
    pub fn alloc_host(&self, size: usize) -> Result<HostMemory<'_>, MemError> {
        if size == 0 {
            return Err(MemError::ZeroSize);
        }
        let _current = self.enter()?;
        let ptr = self
            .api()
            .mem_alloc_host(size)
            .map_err(|code| self.error("cuMemAllocHost_v2", code, Some(size)))?;
        let Some(ptr) = std::ptr::NonNull::new(ptr.cast::<u8>()) else {
            return Err(self.error("cuMemAllocHost_v2", 1, Some(size)));
        };
        let memory = HostMemory::new(self, ptr, size);
        let device_ptr = self
            .api()
            .mem_host_device_pointer(ptr.as_ptr().cast())
            .map_err(|code| self.error("cuMemHostGetDevicePointer_v2", code, Some(size)))?;
        Ok(memory.with_device_ptr(device_ptr))
    }

    /// Sets `count` bytes at device address `dst` to `value` (`cuMemsetD8_v2`), and waits
    /// for it to complete.
    ///
    /// # Safety
    ///
    /// `dst..dst + count` is device-accessible memory of this process (device memory, or a
    /// registered Block or `cuMemAllocHost` memory through its device pointer) that the
    /// device may write, and no Rust reference to any of those bytes is alive during the
    /// call.
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda): an address the driver does not know, or failed work.
    pub unsafe fn memset_d8(&self, dst: u64, value: u8, count: usize) -> Result<(), MemError> {
        if count == 0 {
            return Ok(());
        }
        let _current = self.enter()?;
        // SAFETY: the caller vouches for the range (this function's contract).
        unsafe { self.api().memset_d8(dst, value, count) }
            .map_err(|code| self.error("cuMemsetD8_v2", code, Some(count)))?;
        self.sync()
    }

    /// Sets `count` 32-bit words at device address `dst` to `value` (`cuMemsetD32_v2`),
    /// and waits for it to complete.
    ///
    /// # Safety
    ///
    /// As [`memset_d8`](Context::memset_d8) for `4 * count` bytes; `dst` is a multiple of 4.
    ///
    /// # Errors
    ///
    /// As [`memset_d8`](Context::memset_d8).
    pub unsafe fn memset_d32(&self, dst: u64, value: u32, count: usize) -> Result<(), MemError> {
        if count == 0 {
            return Ok(());
        }
        let _current = self.enter()?;
        // SAFETY: the caller vouches for the range (this function's contract).
        unsafe { self.api().memset_d32(dst, value, count) }
            .map_err(|code| self.error("cuMemsetD32_v2", code, Some(count.saturating_mul(4))))?;
        self.sync()
    }

    /// Copies `len` bytes from device address `src` to device address `dst`
    /// (`cuMemcpyDtoD_v2`) and waits for it to complete. Either side may be the device
    /// pointer of registered host memory: that is how a GPU reads or writes a Block without
    /// a kernel.
    ///
    /// # Safety
    ///
    /// Both ranges are device-accessible memory of this process; no Rust reference to the
    /// destination's bytes is alive during the call, and nothing writes the source's.
    ///
    /// # Errors
    ///
    /// As [`memset_d8`](Context::memset_d8).
    pub unsafe fn copy(&self, dst: u64, src: u64, len: usize) -> Result<(), MemError> {
        if len == 0 {
            return Ok(());
        }
        let _current = self.enter()?;
        // SAFETY: the caller vouches for both ranges (this function's contract).
        unsafe { self.api().memcpy_dtod(dst, src, len) }
            .map_err(|code| self.error("cuMemcpyDtoD_v2", code, Some(len)))?;
        self.sync()
    }

    /// Copies `len` bytes from host memory at `src` to device address `dst`
    /// (`cuMemcpyHtoD_v2`) and waits for it to complete.
    ///
    /// # Safety
    ///
    /// `src` is readable for `len` bytes and nothing writes them during the call; `dst`
    /// as the destination of [`copy`](Context::copy).
    ///
    /// # Errors
    ///
    /// As [`memset_d8`](Context::memset_d8).
    pub unsafe fn copy_to_device(
        &self,
        dst: u64,
        src: *const u8,
        len: usize,
    ) -> Result<(), MemError> {
        if len == 0 {
            return Ok(());
        }
        let _current = self.enter()?;
        // SAFETY: the caller vouches for both ranges (this function's contract).
        unsafe { self.api().memcpy_htod(dst, src.cast::<c_void>(), len) }
            .map_err(|code| self.error("cuMemcpyHtoD_v2", code, Some(len)))?;
        self.sync()
    }

    /// Copies `len` bytes from device address `src` to host memory at `dst`
    /// (`cuMemcpyDtoH_v2`) and waits for it to complete.
    ///
    /// # Safety
    ///
    /// `dst` is writable for `len` bytes and no other reference to them is alive during the
    /// call; `src` as the source of [`copy`](Context::copy).
    ///
    /// # Errors
    ///
    /// As [`memset_d8`](Context::memset_d8).
    pub unsafe fn copy_to_host(&self, dst: *mut u8, src: u64, len: usize) -> Result<(), MemError> {
        if len == 0 {
            return Ok(());
        }
        let _current = self.enter()?;
        // SAFETY: the caller vouches for both ranges (this function's contract).
        unsafe { self.api().memcpy_dtoh(dst.cast::<c_void>(), src, len) }
            .map_err(|code| self.error("cuMemcpyDtoH_v2", code, Some(len)))?;
        self.sync()
    }

    /// Makes this context current on the calling thread until the guard drops.
    pub(crate) fn enter(&self) -> Result<Current<'_>, MemError> {
        let previous = self
            .api()
            .ctx_current()
            .map_err(|code| self.error("cuCtxGetCurrent", code, None))?;
        if previous == self.raw {
            return Ok(Current {
                context: self,
                previous: None,
                _thread: PhantomData,
            });
        }
        // SAFETY: `self` holds a retain of this primary context, and the guard borrows
        // `self`, so the context outlives the time it is current through this guard.
        unsafe { self.api().ctx_set_current(self.raw) }
            .map_err(|code| self.error("cuCtxSetCurrent", code, None))?;
        Ok(Current {
            context: self,
            previous: Some(previous),
            _thread: PhantomData,
        })
    }

    /// `cuCtxSynchronize` on the (already current) context.
    fn sync(&self) -> Result<(), MemError> {
        self.api()
            .ctx_synchronize()
            .map_err(|code| self.error("cuCtxSynchronize", code, None))
    }

    /// The `CUcontext` handle: the same for every retain of one device's primary context.
    pub(crate) fn raw(&self) -> CuContext {
        self.raw
    }

    pub(crate) fn api(&self) -> &'static crate::ffi::cuda::Api {
        self.device.driver().api()
    }

    #[cold]
    pub(crate) fn error(
        &self,
        call: &'static str,
        code: CuResult,
        bytes: Option<usize>,
    ) -> MemError {
        self.device
            .driver()
            .error(call, code, Some(self.device.ordinal()), bytes)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: `self` holds exactly one retain, taken in `retain`, and everything that
        // used the context through `self` (registrations, allocations, guards) borrowed
        // `self` and is gone.
        let _ = unsafe { self.api().primary_ctx_release(self.device.raw()) };
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("device", &self.device.ordinal())
            .field("raw", &self.raw)
            .finish()
    }
}

/// The context made current on this thread; restores the previous one when it drops.
pub(crate) struct Current<'c> {
    context: &'c Context,
    /// What was current before, when it had to be changed.
    previous: Option<CuContext>,
    /// Restoring must happen on the thread that entered.
    _thread: PhantomData<*const ()>,
}

impl Drop for Current<'_> {
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            // SAFETY: `previous` was current on this thread when the guard was made; its
            // owner keeps it alive (a context destroyed meanwhile is refused with an error
            // code, which there is nobody to report to here).
            let _ = unsafe { self.context.api().ctx_set_current(previous) };
        }
    }
}

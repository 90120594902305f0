//! [`HostMemory`]: CUDA's own page-locked host memory (`cuMemAllocHost_v2`), the baseline a
//! registered Block is compared against.

use std::fmt;
use std::ptr::NonNull;

use super::Context;

/// Page-locked host memory allocated by the CUDA driver with [`Context::alloc_host`];
/// freed (`cuMemFreeHost`) when it drops.
///
/// This is what a CUDA program uses when it does not bring its own memory: pinned,
/// mapped for every device, but private to this process and to CUDA. unimem offers it as
/// the yardstick for a registered Block (same copy speed is the target) and for programs
/// that compare the two.
///
/// The driver does not promise to zero it, so it offers no byte views, only its addresses:
/// [`as_ptr`](HostMemory::as_ptr) on the host and [`device_ptr`](HostMemory::device_ptr)
/// on the device.
pub struct HostMemory<'c> {
    context: &'c Context,
    ptr: NonNull<u8>,
    size: usize,
    device_ptr: u64,
}

impl<'c> HostMemory<'c> {
    pub(crate) fn new(context: &'c Context, ptr: NonNull<u8>, size: usize) -> HostMemory<'c> {
        HostMemory {
            context,
            ptr,
            size,
            device_ptr: 0,
        }
    }

    pub(crate) fn with_device_ptr(mut self, device_ptr: u64) -> HostMemory<'c> {
        self.device_ptr = device_ptr;
        self
    }

    /// The host address of the first byte (page aligned). The bytes are unspecified until
    /// written.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The device address of the first byte (equal to the host address on devices with
    /// unified addressing).
    pub fn device_ptr(&self) -> u64 {
        self.device_ptr
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The context the memory belongs to.
    pub fn context(&self) -> &'c Context {
        self.context
    }
}

impl Drop for HostMemory<'_> {
    fn drop(&mut self) {
        if let Ok(_current) = self.context.enter() {
            // SAFETY: `ptr` came from `cuMemAllocHost_v2`, is freed only here, and every
            // device operation on it returned after completing (they synchronize).
            let _ = unsafe { self.context.api().mem_free_host(self.ptr.as_ptr().cast()) };
        }
    }
}

impl fmt::Debug for HostMemory<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostMemory")
            .field("device", &self.context.device().ordinal())
            .field("address", &self.ptr)
            .field("device_ptr", &format_args!("{:#x}", self.device_ptr))
            .field("size", &self.size)
            .finish()
    }
}

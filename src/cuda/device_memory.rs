//! [`DeviceMemory`]: memory on the device itself (`cuMemAlloc_v2`), freed on drop.

use std::fmt;

use super::Context;

/// Device memory allocated in a [`Context`] with [`Context::alloc`]; freed
/// (`cuMemFree_v2`) when it drops, which the borrow of the context orders before the
/// context's release.
///
/// It is the far side of every copy: the destination a GPU reads a Block into, the source
/// it writes a Block from. Its contents are unspecified until written. It has no host view;
/// move bytes with the copy operations of [`Context`].
pub struct DeviceMemory<'c> {
    context: &'c Context,
    ptr: u64,
    size: usize,
}

impl<'c> DeviceMemory<'c> {
    pub(crate) fn new(context: &'c Context, ptr: u64, size: usize) -> DeviceMemory<'c> {
        DeviceMemory { context, ptr, size }
    }

    /// The device address of the first byte.
    pub fn device_ptr(&self) -> u64 {
        self.ptr
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

impl Drop for DeviceMemory<'_> {
    fn drop(&mut self) {
        // A context that cannot be made current cannot free: the memory then goes with the
        // context (there is no one to report the error to in drop).
        if let Ok(_current) = self.context.enter() {
            // SAFETY: `ptr` came from `cuMemAlloc_v2` in this context, is freed only here,
            // and every operation on it returned after completing (they synchronize).
            let _ = unsafe { self.context.api().mem_free(self.ptr) };
        }
    }
}

impl fmt::Debug for DeviceMemory<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceMemory")
            .field("device", &self.context.device().ordinal())
            .field("device_ptr", &format_args!("{:#x}", self.ptr))
            .field("size", &self.size)
            .finish()
    }
}

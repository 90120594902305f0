//! [`Device`]: one CUDA device, its name and the attributes that decide whether it can use
//! a Block without a copy.

use std::fmt;

use super::{Context, Driver};
use crate::error::MemError;
use crate::ffi::cuda::CuDevice;

/// A CUDA device, as the driver numbers it (after `CUDA_VISIBLE_DEVICES`).
///
/// A `Device` is a `Copy` handle for queries; it holds no driver resources. Work on the
/// device goes through its primary [`Context`] ([`Device::context`]).
///
/// # Examples
///
/// ```no_run
/// use unimem::cuda::{Attribute, Driver};
///
/// let device = Driver::load()?.device(0)?;
/// println!("{}: {} bytes", device.name()?, device.total_memory()?);
/// assert_eq!(device.attribute(Attribute::HostRegisterSupported)?, 1);
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Device {
    driver: Driver,
    ordinal: u32,
    raw: CuDevice,
}

impl Device {
    pub(crate) fn new(driver: Driver, ordinal: u32, raw: CuDevice) -> Device {
        Device {
            driver,
            ordinal,
            raw,
        }
    }

    /// The ordinal: 0 for the first device.
    pub fn ordinal(&self) -> u32 {
        self.ordinal
    }

    /// The driver this device belongs to.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The product name, e.g. `"NVIDIA H100 80GB HBM3"`.
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if `cuDeviceGetName` fails.
    pub fn name(&self) -> Result<String, MemError> {
        self.driver
            .api()
            .device_name(self.raw)
            .map_err(|code| self.error("cuDeviceGetName", code))
    }

    /// The device's memory in bytes.
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if `cuDeviceTotalMem_v2` fails.
    pub fn total_memory(&self) -> Result<u64, MemError> {
        self.driver
            .api()
            .device_total_mem(self.raw)
            .map(|bytes| bytes as u64)
            .map_err(|code| self.error("cuDeviceTotalMem_v2", code))
    }

    /// The value of a device attribute (`cuDeviceGetAttribute`); flags are 0 or 1.
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if the driver does not know the attribute or fails.
    pub fn attribute(&self, attribute: Attribute) -> Result<i32, MemError> {
        self.driver
            .api()
            .device_attribute(attribute.code(), self.raw)
            .map_err(|code| self.error("cuDeviceGetAttribute", code))
    }

    /// The compute capability, `(major, minor)`: `(9, 0)` for an H100.
    ///
    /// # Errors
    ///
    /// As [`attribute`](Device::attribute).
    pub fn compute_capability(&self) -> Result<(u32, u32), MemError> {
        let major = self.attribute(Attribute::ComputeCapabilityMajor)?;
        let minor = self.attribute(Attribute::ComputeCapabilityMinor)?;
        Ok((major.max(0) as u32, minor.max(0) as u32))
    }

    /// Whether the device's primary context is active: retained by someone in this process
    /// (unimem, the CUDA runtime, PyTorch).
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if `cuDevicePrimaryCtxGetState` fails.
    pub fn is_primary_context_active(&self) -> Result<bool, MemError> {
        self.driver
            .api()
            .primary_ctx_active(self.raw)
            .map_err(|code| self.error("cuDevicePrimaryCtxGetState", code))
    }

    /// Retains the device's primary context: the one the CUDA runtime and the frameworks
    /// built on it (PyTorch) use, so that what unimem registers or allocates is theirs too.
    /// Released when the [`Context`] drops.
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if `cuDevicePrimaryCtxRetain` fails (out of device memory,
    /// device in exclusive use by another process, ...).
    pub fn context(&self) -> Result<Context, MemError> {
        Context::retain(*self)
    }

    pub(crate) fn raw(&self) -> CuDevice {
        self.raw
    }

    #[cold]
    pub(crate) fn error(&self, call: &'static str, code: i32) -> MemError {
        self.driver.error(call, code, Some(self.ordinal), None)
    }

    /// Fails with [`CudaUnsupported`](MemError::CudaUnsupported) unless `attribute` is
    /// nonzero.
    pub(crate) fn require(&self, attribute: Attribute) -> Result<(), MemError> {
        match self.attribute(attribute)? {
            0 => Err(MemError::CudaUnsupported {
                device: self.ordinal,
                attribute: attribute.name(),
                value: 0,
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("ordinal", &self.ordinal)
            .finish_non_exhaustive()
    }
}

/// The device attributes that decide how a device can use a Block (a subset of
/// `CUdevice_attribute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Attribute {
    /// `CAN_MAP_HOST_MEMORY` (19): registered host memory can be mapped into the device's
    /// address space. Required for registration.
    CanMapHostMemory,
    /// `UNIFIED_ADDRESSING` (41): one address space for host and device, so the device
    /// pointer of registered memory equals its host address.
    UnifiedAddressing,
    /// `PAGEABLE_MEMORY_ACCESS` (88): the device can read ordinary pageable memory without
    /// registration (coherent platforms such as Grace Hopper); 0 on PCIe GPUs.
    PageableMemoryAccess,
    /// `HOST_REGISTER_SUPPORTED` (99): `cuMemHostRegister` works on this device. Required
    /// for registration.
    HostRegisterSupported,
    /// `READ_ONLY_HOST_REGISTER_SUPPORTED` (113): read-only mappings can be registered with
    /// `CU_MEMHOSTREGISTER_READ_ONLY`. Required to register a read-only import.
    ReadOnlyHostRegisterSupported,
    /// `COMPUTE_CAPABILITY_MAJOR` (75).
    ComputeCapabilityMajor,
    /// `COMPUTE_CAPABILITY_MINOR` (76).
    ComputeCapabilityMinor,
    /// `MULTIPROCESSOR_COUNT` (16).
    MultiprocessorCount,
    /// `INTEGRATED` (18): the GPU shares the host's memory (Jetson-class devices).
    Integrated,
}

impl Attribute {
    /// Every attribute, in the order the tool prints them.
    pub const ALL: [Attribute; 9] = [
        Attribute::CanMapHostMemory,
        Attribute::UnifiedAddressing,
        Attribute::PageableMemoryAccess,
        Attribute::HostRegisterSupported,
        Attribute::ReadOnlyHostRegisterSupported,
        Attribute::ComputeCapabilityMajor,
        Attribute::ComputeCapabilityMinor,
        Attribute::MultiprocessorCount,
        Attribute::Integrated,
    ];

    /// The `CUdevice_attribute` value (cuda.h).
    pub fn code(self) -> i32 {
        match self {
            Attribute::CanMapHostMemory => 19,
            Attribute::UnifiedAddressing => 41,
            Attribute::PageableMemoryAccess => 88,
            Attribute::HostRegisterSupported => 99,
            Attribute::ReadOnlyHostRegisterSupported => 113,
            Attribute::ComputeCapabilityMajor => 75,
            Attribute::ComputeCapabilityMinor => 76,
            Attribute::MultiprocessorCount => 16,
            Attribute::Integrated => 18,
        }
    }

    /// The name without the `CU_DEVICE_ATTRIBUTE_` prefix, e.g. `"HOST_REGISTER_SUPPORTED"`.
    pub fn name(self) -> &'static str {
        match self {
            Attribute::CanMapHostMemory => "CAN_MAP_HOST_MEMORY",
            Attribute::UnifiedAddressing => "UNIFIED_ADDRESSING",
            Attribute::PageableMemoryAccess => "PAGEABLE_MEMORY_ACCESS",
            Attribute::HostRegisterSupported => "HOST_REGISTER_SUPPORTED",
            Attribute::ReadOnlyHostRegisterSupported => "READ_ONLY_HOST_REGISTER_SUPPORTED",
            Attribute::ComputeCapabilityMajor => "COMPUTE_CAPABILITY_MAJOR",
            Attribute::ComputeCapabilityMinor => "COMPUTE_CAPABILITY_MINOR",
            Attribute::MultiprocessorCount => "MULTIPROCESSOR_COUNT",
            Attribute::Integrated => "INTEGRATED",
        }
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_have_distinct_codes_and_names() {
        let mut codes: Vec<i32> = Attribute::ALL.iter().map(|a| a.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Attribute::ALL.len());
        assert_eq!(Attribute::HostRegisterSupported.code(), 99);
        assert_eq!(Attribute::ReadOnlyHostRegisterSupported.code(), 113);
        assert_eq!(
            Attribute::CanMapHostMemory.to_string(),
            "CAN_MAP_HOST_MEMORY"
        );
    }
}

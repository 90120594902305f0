//! The DLPack 1.x C ABI: `DLPackVersion`, `DLDevice`, `DLDataType`, `DLTensor`,
//! `DLManagedTensorVersioned` and their constants, laid out as `dlpack.h` declares them.
//!
//! Written from the facts of `include/dlpack/dlpack.h` of DLPack v1.1 (github.com/dmlc/dlpack,
//! `DLPACK_MAJOR_VERSION 1`, `DLPACK_MINOR_VERSION 1`): field order and C types. The
//! layout of `DLManagedTensorVersioned` is fixed for major version 1 (the header: "A change
//! in major version indicates that we have changed the data layout of the ABI"); minor
//! versions only add enumeration values. The size and offset assertions at the bottom
//! check, at compile time, the layout a C compiler gives these structs on every 64-bit
//! target (LP64 and LLP64 alike: no `long` appears).

use std::ffi::c_void;

/// `DLPACK_MAJOR_VERSION` of the header these layouts follow.
pub const DLPACK_MAJOR_VERSION: u32 = 1;
/// `DLPACK_MINOR_VERSION` of the header these layouts follow.
pub const DLPACK_MINOR_VERSION: u32 = 1;

/// `DLPACK_FLAG_BITMASK_READ_ONLY`: the consumer must not write the tensor.
pub const DLPACK_FLAG_BITMASK_READ_ONLY: u64 = 1 << 0;
/// `DLPACK_FLAG_BITMASK_IS_COPIED`: the producer made a copy for this consumer (never set by
/// unimem, which exports without copying).
pub const DLPACK_FLAG_BITMASK_IS_COPIED: u64 = 1 << 1;

/// `DLDeviceType`, a C enum (`int32_t` in C++): the values unimem uses.
pub type DLDeviceType = i32;
/// `kDLCPU`: memory the CPU reads and writes.
pub const K_DL_CPU: DLDeviceType = 1;
/// `kDLCUDA`: CUDA device memory.
pub const K_DL_CUDA: DLDeviceType = 2;
/// `kDLCUDAHost`: host memory pinned for CUDA ("by cudaMallocHost" in the header; memory
/// registered with `cuMemHostRegister` is used by the driver the same way).
pub const K_DL_CUDA_HOST: DLDeviceType = 3;

/// `DLDataTypeCode` values (stored in `DLDataType::code`, a `uint8_t`).
pub const K_DL_INT: u8 = 0;
/// `kDLUInt`.
pub const K_DL_UINT: u8 = 1;
/// `kDLFloat`.
pub const K_DL_FLOAT: u8 = 2;
/// `kDLBfloat`.
pub const K_DL_BFLOAT: u8 = 4;
/// `kDLBool`.
pub const K_DL_BOOL: u8 = 6;

/// `DLPackVersion { uint32_t major; uint32_t minor; }`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DLPackVersion {
    /// `major`: a consumer that does not know it must only call the deleter.
    pub major: u32,
    /// `minor`.
    pub minor: u32,
}

/// `DLDevice { DLDeviceType device_type; int32_t device_id; }`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DLDevice {
    /// `device_type`.
    pub device_type: DLDeviceType,
    /// `device_id`: 0 for CPU memory; the device ordinal otherwise.
    pub device_id: i32,
}

/// `DLDataType { uint8_t code; uint8_t bits; uint16_t lanes; }`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DLDataType {
    /// `code`: one of the `DLDataTypeCode` values.
    pub code: u8,
    /// `bits` per lane.
    pub bits: u8,
    /// `lanes`: 1 for scalars.
    pub lanes: u16,
}

/// `DLTensor`: a plain view that manages no memory.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DLTensor {
    /// `void* data`: the allocation's start; the tensor begins `byte_offset` bytes later.
    pub data: *mut c_void,
    /// `device`.
    pub device: DLDevice,
    /// `int32_t ndim`.
    pub ndim: i32,
    /// `dtype`.
    pub dtype: DLDataType,
    /// `int64_t* shape`: `ndim` extents.
    pub shape: *mut i64,
    /// `int64_t* strides`: `ndim` strides in elements (not NULL when `ndim != 0`, as v1.1
    /// requires).
    pub strides: *mut i64,
    /// `uint64_t byte_offset`.
    pub byte_offset: u64,
}

/// `DLManagedTensorVersioned`: a `DLTensor` with its owner and the owner's destructor.
///
/// The consumer calls `deleter(self)` exactly once when it no longer needs the tensor; the
/// deleter frees `self` too.
#[repr(C)]
#[derive(Debug)]
pub struct DLManagedTensorVersioned {
    /// `version`.
    pub version: DLPackVersion,
    /// `void* manager_ctx`: the producer's context.
    pub manager_ctx: *mut c_void,
    /// `void (*deleter)(struct DLManagedTensorVersioned* self)`, may be NULL.
    pub deleter: Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>,
    /// `uint64_t flags`: `DLPACK_FLAG_BITMASK_*`.
    pub flags: u64,
    /// `dl_tensor`.
    pub dl_tensor: DLTensor,
}

// The layout a C compiler gives the header's structs on 64-bit targets.
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<DLPackVersion>() == 8);
    assert!(size_of::<DLDevice>() == 8 && align_of::<DLDevice>() == 4);
    assert!(size_of::<DLDataType>() == 4 && align_of::<DLDataType>() == 2);
    assert!(offset_of!(DLDataType, bits) == 1 && offset_of!(DLDataType, lanes) == 2);
    assert!(size_of::<DLTensor>() == 48 && align_of::<DLTensor>() == 8);
    assert!(offset_of!(DLTensor, data) == 0);
    assert!(offset_of!(DLTensor, device) == 8);
    assert!(offset_of!(DLTensor, ndim) == 16);
    assert!(offset_of!(DLTensor, dtype) == 20);
    assert!(offset_of!(DLTensor, shape) == 24);
    assert!(offset_of!(DLTensor, strides) == 32);
    assert!(offset_of!(DLTensor, byte_offset) == 40);
    assert!(size_of::<DLManagedTensorVersioned>() == 80);
    assert!(offset_of!(DLManagedTensorVersioned, version) == 0);
    assert!(offset_of!(DLManagedTensorVersioned, manager_ctx) == 8);
    assert!(offset_of!(DLManagedTensorVersioned, deleter) == 16);
    assert!(offset_of!(DLManagedTensorVersioned, flags) == 24);
    assert!(offset_of!(DLManagedTensorVersioned, dl_tensor) == 32);
    // A nullable function pointer is one pointer wide.
    assert!(size_of::<Option<unsafe extern "C" fn(*mut DLManagedTensorVersioned)>>() == 8);
};

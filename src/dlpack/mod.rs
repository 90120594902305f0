//! DLPack (feature `dlpack`): a byte range of a Block (a whole Block, a Tape take, a Grid
//! cell, a frozen import) handed to PyTorch, JAX, NumPy, CuPy, candle or any C library as a
//! DLPack 1.x tensor, without a copy.
//!
//! | item | what it is |
//! |---|---|
//! | [`Tensor`] | one `DLManagedTensorVersioned`, keeping its memory alive until its deleter runs |
//! | [`DataType`], [`Device`] | the element type and where the bytes are (`kDLCPU`, `kDLCUDAHost`) |
//! | [`sys`] | the C layouts of `dlpack.h` v1.1, checked at compile time |
//!
//! # Why it is sound
//!
//! - **No use-after-free, whatever the order of drops.** A tensor owns what keeps its
//!   memory mapped: the Block itself, or an `Arc` of a Block, Tape or Grid ([`Owner`]),
//!   or a registration that owns one. Its deleter drops that owner; until then the
//!   mapping cannot go, however the other holders drop.
//! - **No aliasing with Rust.** A consumer may write a tensor unless it is flagged
//!   `READ_ONLY`. A writable tensor is made only over bytes nothing else reaches (a Block
//!   it owns, a fresh take, a fresh cell: [`Tensor::from_block`], [`Tensor::take`],
//!   [`Tensor::take_cell`]) or under the caller's promise ([`Tensor::writable`], `unsafe`).
//!   A `READ_ONLY` tensor is made only over bytes nothing writes ([`Tensor::read_only`]: a
//!   Block shared in an `Arc`, whose `&Block` has no mutable views, or a frozen
//!   `ReadOnlyBlock` or Tape, which no process can write).
//! - **A Tape or Grid is not cleared under a tensor.** `clear` needs `&mut`, and
//!   `Arc::get_mut` gives it only once every tensor sharing the `Arc` is deleted. A cell
//!   goes back to its Grid when its tensor is deleted.
//! - **`kDLCUDAHost` is never stale.** A tensor says `kDLCUDAHost` only while it keeps the
//!   registration: one kept in the Block for its life, or a [`cuda::Registered`] it owns.
//!
//! The contract and the consumers' behaviour are in `specs/dlpack.md`.
//!
//! [`Owner`]: crate::Owner
//! [`cuda::Registered`]: crate::cuda::Registered

pub mod sys;
mod tensor;

pub use tensor::Tensor;

/// An element type: `DLDataType { code, bits, lanes }`, with constants for the common
/// ones.
pub type DataType = sys::DLDataType;

impl sys::DLDataType {
    /// `uint8`, the type of a fresh export.
    pub const U8: DataType = scalar(sys::K_DL_UINT, 8);
    /// `int8`.
    pub const I8: DataType = scalar(sys::K_DL_INT, 8);
    /// `uint16`.
    pub const U16: DataType = scalar(sys::K_DL_UINT, 16);
    /// `int16`.
    pub const I16: DataType = scalar(sys::K_DL_INT, 16);
    /// `uint32`.
    pub const U32: DataType = scalar(sys::K_DL_UINT, 32);
    /// `int32`.
    pub const I32: DataType = scalar(sys::K_DL_INT, 32);
    /// `uint64`.
    pub const U64: DataType = scalar(sys::K_DL_UINT, 64);
    /// `int64`.
    pub const I64: DataType = scalar(sys::K_DL_INT, 64);
    /// IEEE `float16`.
    pub const F16: DataType = scalar(sys::K_DL_FLOAT, 16);
    /// `bfloat16`.
    pub const BF16: DataType = scalar(sys::K_DL_BFLOAT, 16);
    /// IEEE `float32`.
    pub const F32: DataType = scalar(sys::K_DL_FLOAT, 32);
    /// IEEE `float64`.
    pub const F64: DataType = scalar(sys::K_DL_FLOAT, 64);
    /// `bool`, one byte each.
    pub const BOOL: DataType = scalar(sys::K_DL_BOOL, 8);
}

const fn scalar(code: u8, bits: u8) -> DataType {
    sys::DLDataType {
        code,
        bits,
        lanes: 1,
    }
}

/// Where a tensor's bytes are, as DLPack names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Device {
    /// `kDLCPU`: host memory.
    Cpu,
    /// `kDLCUDAHost`: host memory registered with (pinned for) CUDA device `ordinal`.
    CudaHost {
        /// The device the registration was made with.
        ordinal: u32,
    },
    /// Another DLPack device, in a tensor taken back with [`Tensor::from_raw`].
    Other {
        /// `DLDevice::device_type`.
        device_type: i32,
        /// `DLDevice::device_id`.
        device_id: i32,
    },
}

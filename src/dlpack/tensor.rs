//! [`Tensor`]: one exported `DLManagedTensorVersioned`, owned by Rust until it is handed
//! over with [`Tensor::into_raw`].
//!
//! The managed tensor is the first field of a heap-allocated `Managed` (`repr(C)`), which
//! also holds the shape, the strides and what keeps the memory alive (an [`Owner`], or a
//! Grid cell's lease). `manager_ctx` points at it and the `deleter` frees it, dropping the
//! owner: the memory lives exactly as long as the last of the tensor and the owner's other
//! holders, whatever order they go in.

use std::any::Any;
use std::ffi::c_void;
use std::fmt;
use std::ops::Range;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use super::sys::{
    DLDataType, DLDevice, DLManagedTensorVersioned, DLPACK_FLAG_BITMASK_READ_ONLY,
    DLPACK_MAJOR_VERSION, DLPACK_MINOR_VERSION, DLPackVersion, DLTensor, K_DL_CPU, K_DL_CUDA_HOST,
};
use super::{DataType, Device};
use crate::block::{Access, Block, Extent};
use crate::error::MemError;
use crate::grid::{CellId, Grid};
use crate::owner::Owner;
use crate::owner::sealed::Sealed;
use crate::tape::Tape;

/// What Rust code may do with the bytes of a tensor it still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Views {
    /// The tensor is the only way to its bytes: shared and mutable views.
    Exclusive,
    /// Read-only and nothing writes the bytes: shared views.
    Shared,
    /// Writable, and the bytes are reachable elsewhere (`Tensor::writable`), or a tensor
    /// taken back with `from_raw`: no views.
    None,
}

/// The heap block behind an exported tensor. `raw` comes first, so a pointer to it is a
/// pointer to the whole `Managed` (`repr(C)`), which the deleter frees.
#[repr(C)]
struct Managed {
    raw: DLManagedTensorVersioned,
    shape: Box<[i64]>,
    strides: Box<[i64]>,
    /// Bytes the export covers (the view may use fewer).
    len: usize,
    /// Dropped by the deleter, last: the memory's owner.
    keep: Box<dyn Any + Send + Sync>,
}

/// The deleter every tensor made here carries: frees the `Managed` and with it the owner.
///
/// # Safety
///
/// `raw` is null or a pointer from [`Tensor::into_raw`] (or the `Tensor`'s own drop) of a
/// tensor made here, not deleted before.
unsafe extern "C" fn delete(raw: *mut DLManagedTensorVersioned) {
    if !raw.is_null() {
        // SAFETY: `raw` is the first field of a `Managed` made by `Box::into_raw` in
        // `Tensor::export`, with the provenance of the whole box (contract), deleted once.
        drop(unsafe { Box::from_raw(raw.cast::<Managed>()) });
    }
}

/// A Grid cell taken for a tensor, given back to its Grid when the tensor is deleted.
struct CellLease {
    grid: Arc<Grid>,
    id: CellId,
}

impl Drop for CellLease {
    fn drop(&mut self) {
        // Cannot fail: the id is live (nothing else knows it) and the Grid cannot be
        // cleared while this lease shares it.
        let _ = self.grid.release(self.id);
    }
}

/// A DLPack 1.x tensor (`DLManagedTensorVersioned`) over a byte range of a Block, made
/// without a copy, that keeps the memory alive until its deleter runs.
///
/// Rust owns it until [`into_raw`](Tensor::into_raw) hands it to a consumer (a C library,
/// a Python capsule), which calls its deleter once when done; dropping a `Tensor` that was
/// not handed over calls the deleter. It starts as a 1-D tensor of `u8` over the whole
/// range; [`view`](Tensor::view) gives it a data type and shape.
///
/// How the bytes may be used follows from where they came from (`specs/dlpack.md`,
/// "Aliasing"):
///
/// | made by | flags | why no Rust reference aliases the consumer's writes |
/// |---|---|---|
/// | [`from_block`](Tensor::from_block), [`take`](Tensor::take), [`take_cell`](Tensor::take_cell) | writable | the bytes are reachable only through the tensor |
/// | [`read_only`](Tensor::read_only) | `READ_ONLY` | nothing writes them: a shared Block, a frozen Block or Tape |
/// | [`writable`](Tensor::writable) (`unsafe`) | writable | the caller promises it |
///
/// `Tensor` is `Send` and `Sync`.
///
/// ```
/// use std::sync::Arc;
/// use unimem::dlpack::{DataType, Device, Tensor};
/// use unimem::{Block, Pin, Tape};
///
/// let tape = Arc::new(Tape::over(Block::builder(1 << 16).pin(Pin::BestEffort).open()?));
/// let mut t = Tensor::take(&tape, 4 * 64, 64)?.view(DataType::F32, &[8, 8])?;
/// t.as_bytes_mut().unwrap()[..4].copy_from_slice(&1.5f32.to_ne_bytes());
/// assert_eq!(t.shape(), &[8, 8]);
/// assert_eq!(t.strides(), &[8, 1]);
/// assert_eq!(t.device(), Device::Cpu);
///
/// let raw = t.into_raw(); // to a consumer, which calls the deleter when done
/// drop(tape);             // the tensor keeps the Tape alive
/// // SAFETY: `raw` came from `into_raw` and nobody else has it.
/// let back = unsafe { Tensor::from_raw(raw) }?;
/// // SAFETY: the data pointer is valid for the tensor's 256 bytes while `back` lives.
/// let first = unsafe { back.data_ptr().cast::<f32>().read() };
/// assert_eq!(first, 1.5);
/// drop(back); // the deleter: the Tape (and its Block) go now
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct Tensor {
    raw: NonNull<DLManagedTensorVersioned>,
    views: Views,
}

// SAFETY: a tensor made here owns a `Managed`, whose owner is `Send + Sync` and whose other
// fields are plain data; one taken with `from_raw` is `Send` by that function's contract.
// `&Tensor` only reads.
unsafe impl Send for Tensor {}
// SAFETY: as above.
unsafe impl Sync for Tensor {}

impl Tensor {
    /// A writable tensor over the whole of `block`, which it owns from now on: the bytes are
    /// reachable only through it. On a Block that keeps a CUDA registration
    /// (`CudaBlock::keep`) the device is `kDLCUDAHost`.
    pub fn from_block(block: Block) -> Tensor {
        let device = block.registered_device();
        let len = block.size();
        let data = block.base();
        Tensor::export(Box::new(block), data, len, false, device, Views::Exclusive)
    }

    /// A writable tensor over a fresh take of `size` bytes aligned to `align` from `tape`,
    /// which it shares until deleted (so the Tape cannot be cleared meanwhile: `clear`
    /// needs `&mut`, which `Arc::get_mut` gives only once every tensor is gone).
    ///
    /// The bytes are initialized as a typed take's: zero where the Tape handed them out
    /// before, what the Block held otherwise (zeros for a fresh Block).
    ///
    /// # Errors
    ///
    /// Those of [`Tape::try_take`]: `ZeroSize`, `BadAlignment`, `TakeOverflow`,
    /// `TapeFull`, `TapeReadOnly`.
    pub fn take(tape: &Arc<Tape>, size: usize, align: usize) -> Result<Tensor, MemError> {
        let Some((_, start)) = tape.bump(size, align) else {
            return Err(tape.refusal(1, size, align));
        };
        // SAFETY: `start..start + size` was just taken: no one else has it.
        unsafe { tape.scrub(start, size, tape.dirty()) };
        let device = tape.registered_device();
        let keep = Box::new(Arc::clone(tape));
        Ok(Tensor::export(
            keep,
            tape.at(start),
            size,
            false,
            device,
            Views::Exclusive,
        ))
    }

    /// A writable tensor over a cell taken from `grid`, given back to the Grid when the
    /// tensor is deleted.
    ///
    /// # Errors
    ///
    /// [`GridFull`](MemError::GridFull) when every cell is in use.
    pub fn take_cell(grid: &Arc<Grid>) -> Result<Tensor, MemError> {
        let cell = grid.try_take()?;
        let len = cell.size();
        let offset = cell.offset();
        let id = cell.into_id();
        let device = grid.registered_device();
        // The cell's pointer, with the provenance of the whole Block.
        // SAFETY: `offset + len` is inside the Block (the cell lies in it).
        let data = unsafe { grid.owned().base().add(offset) };
        let keep = Box::new(CellLease {
            grid: Arc::clone(grid),
            id,
        });
        Ok(Tensor::export(
            keep,
            data,
            len,
            false,
            device,
            Views::Exclusive,
        ))
    }

    /// A read-only tensor (`DLPACK_FLAG_BITMASK_READ_ONLY`) over `range` of the owner's
    /// Block, which it keeps until deleted. The consumer must not write it; no one else can:
    /// the owner is a Block shared in an `Arc` (no mutable views), or a frozen
    /// `ReadOnlyBlock` or Tape (no process can write).
    ///
    /// # Errors
    ///
    /// - [`ReadOutOfBounds`](MemError::ReadOutOfBounds) if `range` is not inside the Block,
    ///   [`ZeroSize`](MemError::ZeroSize) if it is empty;
    /// - [`NotFrozen`](MemError::NotFrozen): a `ReadOnlyBlock` that is not frozen;
    /// - [`TapeNotFrozen`](MemError::TapeNotFrozen): a Tape that is not frozen, or a Grid.
    pub fn read_only<O: Owner>(owner: O, range: Range<usize>) -> Result<Tensor, MemError> {
        let data = range_of(owner.extent(), &range)?;
        owner.check_shared()?;
        let device = owner.registered_device();
        Ok(Tensor::export(
            Box::new(owner),
            data,
            range.len(),
            true,
            device,
            Views::Shared,
        ))
    }

    /// A writable tensor over `range` of the owner's Block, which it keeps until deleted,
    /// while the bytes stay reachable elsewhere: for bindings (Python) whose other views
    /// are raw pointers too. The tensor gives no Rust views.
    ///
    /// # Safety
    ///
    /// Until the tensor is deleted, no Rust reference to any byte of `range` may be alive
    /// while the consumer (or anyone given the data pointer) writes it: the caller makes
    /// no `&[u8]` or `&mut [u8]` of those bytes through the owner, its Tape's takes or
    /// anything else, or orders them with the consumer's writes itself.
    ///
    /// # Errors
    ///
    /// [`ReadOutOfBounds`](MemError::ReadOutOfBounds), [`ZeroSize`](MemError::ZeroSize) as
    /// [`read_only`](Tensor::read_only); [`NotWritable`](MemError::NotWritable) if this
    /// process maps the Block read-only (a write would fault).
    pub unsafe fn writable<O: Owner>(owner: O, range: Range<usize>) -> Result<Tensor, MemError> {
        let extent = owner.extent();
        let data = range_of(extent, &range)?;
        if extent.access() == Access::ReadOnly {
            return Err(MemError::NotWritable {
                id: extent.id(),
                sealed: false,
            });
        }
        let device = owner.registered_device();
        Ok(Tensor::export(
            Box::new(owner),
            data,
            range.len(),
            false,
            device,
            Views::None,
        ))
    }

    fn export(
        keep: Box<dyn Any + Send + Sync>,
        data: NonNull<u8>,
        len: usize,
        read_only: bool,
        registered: Option<u32>,
        views: Views,
    ) -> Tensor {
        let device = match registered {
            Some(ordinal) => DLDevice {
                device_type: K_DL_CUDA_HOST,
                device_id: ordinal as i32,
            },
            None => DLDevice {
                device_type: K_DL_CPU,
                device_id: 0,
            },
        };
        let mut managed = Box::new(Managed {
            raw: DLManagedTensorVersioned {
                version: DLPackVersion {
                    major: DLPACK_MAJOR_VERSION,
                    minor: DLPACK_MINOR_VERSION,
                },
                manager_ctx: ptr::null_mut(),
                deleter: Some(delete),
                flags: if read_only {
                    DLPACK_FLAG_BITMASK_READ_ONLY
                } else {
                    0
                },
                dl_tensor: DLTensor {
                    data: data.as_ptr().cast::<c_void>(),
                    device,
                    ndim: 0,
                    dtype: DataType::U8,
                    shape: ptr::null_mut(),
                    strides: ptr::null_mut(),
                    byte_offset: 0,
                },
            },
            shape: Box::new([]),
            strides: Box::new([]),
            len,
            keep,
        });
        set_shape(&mut managed, DataType::U8, vec![len as i64]);
        let raw = Box::into_raw(managed);
        // SAFETY: just allocated. The context is the `Managed` itself.
        unsafe { (*raw).raw.manager_ctx = raw.cast::<c_void>() };
        Tensor {
            // SAFETY: `Box::into_raw` is never null; `raw` is the first field.
            raw: unsafe { NonNull::new_unchecked(raw.cast::<DLManagedTensorVersioned>()) },
            views,
        }
    }

    /// Describes the bytes as a C-contiguous (row-major) tensor of `dtype` with `shape`,
    /// starting at the first byte; the elements may cover fewer bytes than the export.
    ///
    /// # Errors
    ///
    /// [`BadTensorView`](MemError::BadTensorView): a data type that is not whole bytes (or
    /// has no lanes), a negative extent, more bytes than the export covers (or an element
    /// count that overflows), or data not aligned to the element size (up to 16). The
    /// tensor is dropped (deleted) on error. Only a tensor made here (not one taken back
    /// with `from_raw`) can be described again.
    pub fn view(mut self, dtype: DataType, shape: &[i64]) -> Result<Tensor, MemError> {
        let Some(managed) = self.managed_mut() else {
            return Err(MemError::BadTensorView {
                reason: "a tensor taken back with from_raw keeps its producer's description",
                bytes: self.nbytes(),
                needed: None,
            });
        };
        let len = managed.len;
        let bad = |reason, needed| MemError::BadTensorView {
            reason,
            bytes: len,
            needed,
        };
        if dtype.lanes == 0 || dtype.bits == 0 || dtype.bits % 8 != 0 {
            return Err(bad("the data type is not a whole number of bytes", None));
        }
        if shape.iter().any(|&d| d < 0) {
            return Err(bad("the shape has a negative extent", None));
        }
        let elem = u64::from(dtype.bits / 8) * u64::from(dtype.lanes);
        let needed = shape
            .iter()
            .try_fold(elem, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| bad("the element count overflows", None))?;
        if needed > len as u64 {
            return Err(bad(
                "the shape needs more bytes than the tensor covers",
                Some(needed),
            ));
        }
        let align = usize::from(dtype.bits / 8).min(16);
        let addr = managed.raw.dl_tensor.data.addr();
        if align.is_power_of_two() && addr % align != 0 {
            return Err(bad("the data is not aligned to the element size", None));
        }
        set_shape(managed, dtype, shape.to_vec());
        Ok(self)
    }

    /// Reports the tensor as `kDLCPU` memory even if its Block is registered with CUDA, for
    /// consumers that accept only `kDLCPU` (PyTorch's `from_dlpack`, `specs/dlpack.md`).
    /// The pages stay registered as long as the tensor keeps the registration.
    pub fn on_cpu(mut self) -> Tensor {
        // SAFETY: Rust owns the tensor until `into_raw`; `&mut self` is the only access.
        unsafe {
            self.raw.as_mut().dl_tensor.device = DLDevice {
                device_type: K_DL_CPU,
                device_id: 0,
            };
        }
        self
    }

    /// The managed tensor, to read its fields.
    pub fn as_raw(&self) -> &DLManagedTensorVersioned {
        // SAFETY: valid until the deleter runs, which only `Drop` does while Rust owns it.
        unsafe { self.raw.as_ref() }
    }

    /// Hands the tensor over: whoever receives the pointer must call its `deleter` exactly
    /// once (a DLPack consumer does), or give it back with [`from_raw`](Tensor::from_raw).
    /// Forgetting it leaks the owner (and so the Block), which is safe.
    pub fn into_raw(self) -> NonNull<DLManagedTensorVersioned> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    /// Takes a managed tensor (from [`into_raw`](Tensor::into_raw) or any DLPack 1.x
    /// producer) into Rust: its deleter runs when the `Tensor` drops. It gives no byte
    /// views (use [`data_ptr`](Tensor::data_ptr)).
    ///
    /// # Safety
    ///
    /// `raw` points to a valid `DLManagedTensorVersioned` whose ownership passes to the
    /// `Tensor` (its deleter not called, and called by no one else later), with `shape` and
    /// `strides` valid for `ndim` elements, whose deleter may be called from any thread.
    ///
    /// # Errors
    ///
    /// [`BadTensorView`](MemError::BadTensorView) if its major version is not 1: the
    /// layout past `deleter` is unknown, so only the deleter is called (as the header says).
    pub unsafe fn from_raw(raw: NonNull<DLManagedTensorVersioned>) -> Result<Tensor, MemError> {
        let tensor = Tensor {
            raw,
            views: Views::None,
        };
        if tensor.as_raw().version.major != DLPACK_MAJOR_VERSION {
            return Err(MemError::BadTensorView {
                reason: "the tensor's DLPack major version is not 1; its deleter was called",
                bytes: 0,
                needed: None,
            });
        }
        Ok(tensor)
    }

    /// The first byte: `data + byte_offset`.
    pub fn data_ptr(&self) -> *mut u8 {
        let t = &self.as_raw().dl_tensor;
        t.data.cast::<u8>().wrapping_add(t.byte_offset as usize)
    }

    /// The element type.
    pub fn dtype(&self) -> DataType {
        self.as_raw().dl_tensor.dtype
    }

    /// The extents, `ndim` of them.
    pub fn shape(&self) -> &[i64] {
        let t = &self.as_raw().dl_tensor;
        // SAFETY: `ndim` extents at `shape` (made here, or `from_raw`'s contract).
        unsafe { slice_of(t.shape, t.ndim) }
    }

    /// The strides, in elements.
    pub fn strides(&self) -> &[i64] {
        let t = &self.as_raw().dl_tensor;
        // SAFETY: as `shape`.
        unsafe { slice_of(t.strides, t.ndim) }
    }

    /// Bytes the elements cover: the product of the shape times the element size (0 if it
    /// overflows, which a tensor made here never does).
    pub fn nbytes(&self) -> usize {
        let dtype = self.dtype();
        let elem = (usize::from(dtype.bits) * usize::from(dtype.lanes)).div_ceil(8);
        self.shape()
            .iter()
            .try_fold(elem, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
            .unwrap_or(0)
    }

    /// Where the bytes are, as DLPack names it.
    pub fn device(&self) -> Device {
        let device = self.as_raw().dl_tensor.device;
        match device.device_type {
            K_DL_CPU => Device::Cpu,
            K_DL_CUDA_HOST => Device::CudaHost {
                ordinal: device.device_id as u32,
            },
            other => Device::Other {
                device_type: other,
                device_id: device.device_id,
            },
        }
    }

    /// Whether the consumer must not write (`DLPACK_FLAG_BITMASK_READ_ONLY`).
    pub fn is_read_only(&self) -> bool {
        self.as_raw().flags & DLPACK_FLAG_BITMASK_READ_ONLY != 0
    }

    /// The exported bytes, while Rust holds the tensor: for tensors from
    /// [`read_only`](Tensor::read_only), [`from_block`](Tensor::from_block),
    /// [`take`](Tensor::take) and [`take_cell`](Tensor::take_cell); `None` for
    /// [`writable`](Tensor::writable) and [`from_raw`](Tensor::from_raw) ones.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        if self.views == Views::None {
            return None;
        }
        let managed = self.managed()?;
        // SAFETY: `len` bytes from the data pointer lie in the owner's Block, mapped while
        // the owner (kept by the tensor) lives, initialized; nothing writes them while this
        // borrow lives (exclusive: only through `&mut self`; shared: no writer exists).
        Some(unsafe {
            std::slice::from_raw_parts(managed.raw.dl_tensor.data.cast::<u8>(), managed.len)
        })
    }

    /// The exported bytes, mutably, while Rust holds a tensor that is their only way in
    /// ([`from_block`](Tensor::from_block), [`take`](Tensor::take),
    /// [`take_cell`](Tensor::take_cell)); `None` otherwise.
    pub fn as_bytes_mut(&mut self) -> Option<&mut [u8]> {
        if self.views != Views::Exclusive {
            return None;
        }
        let managed = self.managed_mut()?;
        let (data, len) = (managed.raw.dl_tensor.data.cast::<u8>(), managed.len);
        // SAFETY: as `as_bytes`, and the tensor is the only way to the bytes, borrowed
        // mutably here.
        Some(unsafe { std::slice::from_raw_parts_mut(data, len) })
    }

    /// The `Managed` behind a tensor made here.
    fn managed(&self) -> Option<&Managed> {
        // SAFETY: tensors with views are made by `export`: `raw` is a `Managed`'s first
        // field, valid while the tensor lives.
        (self.views != Views::None || self.made_here())
            .then(|| unsafe { self.raw.cast::<Managed>().as_ref() })
    }

    fn managed_mut(&mut self) -> Option<&mut Managed> {
        // SAFETY: as `managed`; `&mut self` is the only access while Rust owns it.
        (self.views != Views::None || self.made_here())
            .then(|| unsafe { self.raw.cast::<Managed>().as_mut() })
    }

    /// Whether `raw` is a `Managed` made by `export`: its context points at itself.
    fn made_here(&self) -> bool {
        let raw = self.as_raw();
        raw.manager_ctx == self.raw.as_ptr().cast::<c_void>() && raw.deleter.is_some() && {
            let ours: unsafe extern "C" fn(*mut DLManagedTensorVersioned) = delete;
            raw.deleter.map(|d| d as usize) == Some(ours as usize)
        }
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        let raw = self.raw.as_ptr();
        // SAFETY: Rust owns the tensor (not handed over): its deleter is called once, here.
        if let Some(deleter) = unsafe { (*raw).deleter } {
            // SAFETY: the DLPack contract: the owner's deleter, with the tensor itself.
            unsafe { deleter(raw) };
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("data", &self.data_ptr())
            .field("dtype", &self.dtype())
            .field("shape", &self.shape())
            .field("device", &self.device())
            .field("read_only", &self.is_read_only())
            .finish()
    }
}

/// Sets the description: C-contiguous strides for `shape`.
fn set_shape(managed: &mut Managed, dtype: DLDataType, shape: Vec<i64>) {
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1].max(1);
    }
    managed.shape = shape.into_boxed_slice();
    managed.strides = strides.into_boxed_slice();
    let t = &mut managed.raw.dl_tensor;
    t.dtype = dtype;
    t.ndim = managed.shape.len() as i32;
    let (shape, strides) = if managed.shape.is_empty() {
        (ptr::null_mut(), ptr::null_mut())
    } else {
        (managed.shape.as_mut_ptr(), managed.strides.as_mut_ptr())
    };
    t.shape = shape;
    t.strides = strides;
}

/// The pointer to `range`'s first byte in `extent`, with the Block's provenance.
fn range_of(extent: &Extent, range: &Range<usize>) -> Result<NonNull<u8>, MemError> {
    if range.start > range.end || range.end > extent.size() {
        return Err(MemError::ReadOutOfBounds {
            offset: range.start,
            len: range.end.saturating_sub(range.start),
            elem: 1,
            size: extent.size(),
        });
    }
    if range.is_empty() {
        return Err(MemError::ZeroSize);
    }
    // SAFETY: `range.start < size`: inside the mapping.
    Ok(unsafe { extent.base().add(range.start) })
}

/// `ndim` values at `ptr`; empty for a null pointer or `ndim <= 0`.
///
/// # Safety
///
/// A non-null `ptr` is valid for `ndim` reads for the returned lifetime.
unsafe fn slice_of<'a>(ptr: *const i64, ndim: i32) -> &'a [i64] {
    match usize::try_from(ndim) {
        // SAFETY: the caller's contract.
        Ok(n) if n > 0 && !ptr.is_null() => unsafe { std::slice::from_raw_parts(ptr, n) },
        _ => &[],
    }
}

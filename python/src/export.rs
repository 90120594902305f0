//! The raw parts: a Python buffer over a Block's bytes, and a DLPack tensor in a PyCapsule.
//! The only `unsafe` of the package.
//!
//! # Why it is sound
//!
//! The package never makes a Rust reference (`&[u8]`, `&mut [u8]`) to a Block's bytes:
//! every view it hands out is a raw pointer given to Python (a buffer, a capsule), where
//! NumPy arrays, memoryviews and tensors of one Block alias freely, as Python memory does.
//! So foreign writes alias nothing in Rust, which is what `Tensor::writable` asks of its
//! caller. Each buffer and tensor keeps an `Arc` of the Block (or registration) it views,
//! so the mapping outlives it, and `freeze` (which remaps the pages read-only) needs the
//! only `Arc`: it is refused while any view is alive.

use std::ffi::{CStr, c_int, c_void};
use std::ptr::NonNull;

use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use unimem::dlpack::Tensor;
use unimem::dlpack::sys::DLManagedTensorVersioned;

/// The capsule name of an unconsumed DLPack 1.x tensor (the Python array API standard).
const VERSIONED: &CStr = c"dltensor_versioned";

/// Something a buffer view keeps alive until it is released.
pub(crate) type Keep = Box<dyn Send + Sync>;

/// Fills `view` over `len` bytes at `address`, keeping `keep` alive until
/// [`release_buffer`].
///
/// # Safety
///
/// `view` is the `Py_buffer` of a `__getbuffer__` call on `obj`; `address..address + len`
/// stays mapped (readable, and writable unless `read_only`) while `keep` lives, and no Rust
/// reference to it is alive while Python writes it (module docs).
pub(crate) unsafe fn fill_buffer(
    view: *mut ffi::Py_buffer,
    obj: &Bound<'_, PyAny>,
    address: *mut u8,
    len: usize,
    read_only: bool,
    flags: c_int,
    keep: Keep,
) -> PyResult<()> {
    let Ok(len) = isize::try_from(len) else {
        return Err(PyBufferError::new_err(
            "the Block is larger than isize::MAX",
        ));
    };
    // SAFETY: `view` is valid (contract); `PyBuffer_FillInfo` takes a new reference to
    // `obj`, checks `flags` (a writable request of read-only memory is a BufferError) and
    // fills a 1-D unsigned-byte buffer.
    let filled = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            obj.as_ptr(),
            address.cast::<c_void>(),
            len,
            c_int::from(read_only),
            flags,
        )
    };
    if filled != 0 {
        return Err(PyErr::fetch(obj.py()));
    }
    // SAFETY: filled above; `internal` is the exporter's, given back to `release_buffer`.
    unsafe { (*view).internal = Box::into_raw(Box::new(keep)).cast::<c_void>() };
    Ok(())
}

/// Releases what [`fill_buffer`] kept.
///
/// # Safety
///
/// `view` is a `Py_buffer` filled by `fill_buffer`, released once.
pub(crate) unsafe fn release_buffer(view: *mut ffi::Py_buffer) {
    // SAFETY: `internal` was set by `fill_buffer` to a boxed `Keep`, taken once here.
    unsafe {
        let internal = (*view).internal;
        if !internal.is_null() {
            (*view).internal = std::ptr::null_mut();
            drop(Box::from_raw(internal.cast::<Keep>()));
        }
    }
}

/// A PyCapsule named `dltensor_versioned` holding `tensor`: deleted by the capsule if no
/// consumer takes it (a consumer renames it `used_dltensor_versioned` and calls the deleter
/// itself).
pub(crate) fn capsule(py: Python<'_>, tensor: Tensor) -> PyResult<Py<PyAny>> {
    let raw = tensor.into_raw();
    // SAFETY: `raw` is a live managed tensor; the capsule's destructor deletes it unless a
    // consumer took it. On failure it is taken back and deleted below.
    let capsule = unsafe {
        ffi::PyCapsule_New(
            raw.as_ptr().cast::<c_void>(),
            VERSIONED.as_ptr(),
            Some(delete_unconsumed),
        )
    };
    if capsule.is_null() {
        // SAFETY: from `into_raw` just above, owned by nobody else.
        drop(unsafe { Tensor::from_raw(raw) });
        return Err(PyErr::fetch(py));
    }
    // SAFETY: a new reference, owned from here on.
    Ok(unsafe { Bound::from_owned_ptr(py, capsule) }.unbind())
}

/// The capsule's destructor: deletes the tensor if no consumer renamed the capsule.
unsafe extern "C" fn delete_unconsumed(capsule: *mut ffi::PyObject) {
    // SAFETY: called by Python with the capsule being destroyed; the name check does not
    // raise. A consumed capsule has another name and is left alone.
    unsafe {
        if ffi::PyCapsule_IsValid(capsule, VERSIONED.as_ptr()) == 1 {
            let raw = ffi::PyCapsule_GetPointer(capsule, VERSIONED.as_ptr());
            if let Some(raw) = NonNull::new(raw.cast::<DLManagedTensorVersioned>()) {
                // Ours, unconsumed: delete it through a Tensor (major version 1).
                drop(Tensor::from_raw(raw));
            }
        }
    }
}

//! `unimem.Block`: a Block this process opened or imported, writable or read-only.

use std::ffi::c_int;
use std::sync::Arc;

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use unimem::dlpack::Tensor;
use unimem::dlpack::sys::{K_DL_CPU, K_DL_CUDA_HOST};
use unimem::{Access, Block, MemError, Pin, ReadOnlyBlock};

use crate::cuda::PyRegistration;
use crate::errors::{OrRaise, busy, to_py};
use crate::export;
use crate::share::PyShare;

/// The Rust Block behind a Python one.
pub(crate) enum Inner {
    /// Opened here, or imported read-write: writable views.
    Writable(Arc<Block>),
    /// Frozen here, or imported read-only: read-only views, and only once frozen.
    ReadOnly(Arc<ReadOnlyBlock>),
    /// Released by a freeze that failed before it had a read-only Block to keep.
    Gone,
}

/// A pinned, page-aligned buffer: opened here, or imported from another process.
///
/// `Block(nbytes, pin="required", name=None)` opens a zero-filled Block of at least
/// `nbytes` bytes (rounded up to whole pages), locked in RAM (`pin="best_effort"`: locked
/// if the OS allows). Its bytes are reachable without a copy through the buffer protocol
/// (`memoryview(block)`, `numpy.frombuffer(block, ...)`) and DLPack
/// (`torch.from_dlpack(block)`, `numpy.from_dlpack(block)`), read-only for a frozen or
/// read-only Block.
#[pyclass(name = "Block", module = "unimem")]
pub(crate) struct PyBlock {
    pub(crate) inner: Inner,
}

pub(crate) fn parse_pin(pin: &str) -> PyResult<Pin> {
    match pin {
        "required" => Ok(Pin::Required),
        "best_effort" => Ok(Pin::BestEffort),
        other => Err(PyValueError::new_err(format!(
            "pin must be \"required\" or \"best_effort\", not {other:?}"
        ))),
    }
}

impl PyBlock {
    fn extent(&self) -> PyResult<&unimem::Extent> {
        match &self.inner {
            Inner::Writable(b) => Ok(b),
            Inner::ReadOnly(b) => Ok(b),
            Inner::Gone => Err(PyValueError::new_err(
                "this Block was released by a freeze that failed (see that error)",
            )),
        }
    }

    /// `Ok` when a read-only view promises bytes that stay put: frozen.
    fn frozen_or_refuse(block: &ReadOnlyBlock) -> PyResult<()> {
        if block.is_frozen() {
            Ok(())
        } else {
            Err(PyBufferError::new_err(
                MemError::NotFrozen {
                    id: block.id(),
                    size: block.size(),
                }
                .to_string(),
            ))
        }
    }

    fn exports_alive(&self, id: u32, what: &str) -> PyErr {
        busy(format!(
            "Block {id} has views alive (memoryviews, NumPy arrays, tensors or CUDA \
             registrations of it): {what} needs it alone. Release them (del, or leave the \
             registration's `with`) and try again"
        ))
    }
}

#[pymethods]
impl PyBlock {
    #[new]
    #[pyo3(signature = (nbytes, pin = "required", name = None))]
    fn new(py: Python<'_>, nbytes: usize, pin: &str, name: Option<String>) -> PyResult<Self> {
        let pin = parse_pin(pin)?;
        let mut builder = Block::builder(nbytes).pin(pin);
        if let Some(name) = name {
            builder = builder.name(name);
        }
        let block = py.detach(move || builder.open()).or_raise()?;
        Ok(PyBlock {
            inner: Inner::Writable(Arc::new(block)),
        })
    }

    /// Size in bytes: whole pages.
    #[getter]
    fn nbytes(&self) -> PyResult<usize> {
        Ok(self.extent()?.size())
    }

    fn __len__(&self) -> PyResult<usize> {
        self.nbytes()
    }

    /// Whether the pages are locked in RAM.
    #[getter]
    fn is_pinned(&self) -> PyResult<bool> {
        Ok(self.extent()?.is_pinned())
    }

    /// Whether no process can ever change the bytes again.
    #[getter]
    fn is_frozen(&self) -> PyResult<bool> {
        Ok(match &self.inner {
            Inner::ReadOnly(b) => b.is_frozen(),
            _ => false,
        })
    }

    /// Whether this process maps the bytes read-only.
    #[getter]
    fn is_read_only(&self) -> PyResult<bool> {
        Ok(self.extent()?.access() == Access::ReadOnly)
    }

    /// The Block's id in this process.
    #[getter]
    fn id(&self) -> PyResult<u32> {
        Ok(self.extent()?.id())
    }

    /// The debug name (the memfd's).
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(self.extent()?.name().to_owned())
    }

    /// The address of the first byte in this process.
    #[getter]
    fn address(&self) -> PyResult<usize> {
        Ok(self.extent()?.address() as usize)
    }

    fn __repr__(&self) -> String {
        match self.extent() {
            Ok(e) => format!(
                "unimem.Block(id={}, nbytes={}, pinned={}, {}, name={:?})",
                e.id(),
                e.size(),
                if e.is_pinned() { "True" } else { "False" },
                match &self.inner {
                    Inner::ReadOnly(b) if b.is_frozen() => "frozen",
                    Inner::ReadOnly(_) => "read-only",
                    _ => "writable",
                },
                e.name()
            ),
            Err(_) => "unimem.Block(released)".to_owned(),
        }
    }

    /// The buffer protocol: 1-D unsigned bytes, writable for a writable Block, read-only
    /// for a frozen one; a read-only Block that is not frozen gives none.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let (address, len, read_only, keep): (_, _, _, export::Keep) = match &slf.borrow().inner {
            Inner::Writable(b) => (b.address(), b.size(), false, Box::new(Arc::clone(b))),
            Inner::ReadOnly(b) => {
                PyBlock::frozen_or_refuse(b)?;
                (b.address(), b.size(), true, Box::new(Arc::clone(b)))
            }
            Inner::Gone => return Err(PyBufferError::new_err("the Block was released")),
        };
        // SAFETY: the range is the Block's mapping, kept alive by `keep` (an Arc of it)
        // until the view is released; frozen memory is shared read-only; the package makes
        // no Rust reference to the bytes (export.rs).
        unsafe { export::fill_buffer(view, slf.as_any(), address, len, read_only, flags, keep) }
    }

    unsafe fn __releasebuffer__(&self, view: *mut ffi::Py_buffer) {
        // SAFETY: filled by `__getbuffer__`, released once by Python.
        unsafe { export::release_buffer(view) }
    }

    /// `(device_type, device_id)`: `(1, 0)`, `kDLCPU`, for every Block (PyTorch accepts no
    /// `kDLCUDAHost`); a registration's `__dlpack__` gives `kDLCUDAHost`.
    fn __dlpack_device__(&self) -> (i32, i32) {
        (K_DL_CPU, 0)
    }

    /// A DLPack 1.x capsule (`dltensor_versioned`) over the whole Block, as `uint8`,
    /// without a copy; read-only (flagged) for a frozen Block.
    #[pyo3(signature = (*, stream = None, max_version = None, dl_device = None, copy = None))]
    fn __dlpack__(
        &self,
        py: Python<'_>,
        stream: Option<Bound<'_, PyAny>>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(i32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        let _ = stream; // host memory: nothing to order against a stream
        check_request(max_version, copy)?;
        if let Some(device) = dl_device.filter(|&d| d != (K_DL_CPU, 0)) {
            return Err(PyBufferError::new_err(format!(
                "a Block exports kDLCPU (1, 0), not {device:?}; for kDLCUDAHost ask \
                 block.register_cuda() for the tensor"
            )));
        }
        let tensor = match &self.inner {
            Inner::Writable(b) => {
                // SAFETY: the package never makes a Rust reference to a Block's bytes
                // (export.rs): the consumer's writes alias nothing in Rust.
                unsafe { Tensor::writable(Arc::clone(b), 0..b.size()) }.or_raise()?
            }
            Inner::ReadOnly(b) => {
                PyBlock::frozen_or_refuse(b)?;
                Tensor::read_only(Arc::clone(b), 0..b.size()).or_raise()?
            }
            Inner::Gone => return Err(PyBufferError::new_err("the Block was released")),
        };
        export::capsule(py, tensor.on_cpu())
    }

    /// Makes the bytes immutable for every process, for good, in place, and returns the
    /// Block: read-only from now on, at the same address, still pinned.
    ///
    /// Needs the Block alone: refused (`BusyError`) while a memoryview, array, tensor or
    /// registration of it is alive, since its pages are remapped read-only. If another
    /// process still maps it writable, the `BusyError` says so and the Block stays
    /// read-only but not frozen; freeze again later.
    fn freeze(mut slf: PyRefMut<'_, Self>) -> PyResult<PyRefMut<'_, Self>> {
        let py = slf.py();
        let inner = std::mem::replace(&mut slf.inner, Inner::Gone);
        let (result, inner) = match inner {
            Inner::Writable(arc) => match Arc::try_unwrap(arc) {
                Err(arc) => {
                    let err = slf.exports_alive(arc.id(), "freezing");
                    (Err(err), Inner::Writable(arc))
                }
                Ok(block) => match py.detach(move || block.into_read_only()) {
                    Err(e) => (Err(to_py(e)), Inner::Gone),
                    Ok(mut ro) => {
                        let frozen = py.detach(|| ro.freeze());
                        (frozen.map_err(to_py), Inner::ReadOnly(Arc::new(ro)))
                    }
                },
            },
            Inner::ReadOnly(mut arc) => {
                if arc.is_frozen() {
                    (Ok(()), Inner::ReadOnly(arc))
                } else {
                    match Arc::get_mut(&mut arc) {
                        None => {
                            let err = slf.exports_alive(arc.id(), "freezing");
                            (Err(err), Inner::ReadOnly(arc))
                        }
                        Some(ro) => {
                            let frozen = py.detach(|| ro.freeze());
                            (frozen.map_err(to_py), Inner::ReadOnly(arc))
                        }
                    }
                }
            }
            Inner::Gone => (Ok(()), Inner::Gone),
        };
        slf.inner = inner;
        result?;
        slf.extent()?;
        Ok(slf)
    }

    /// A share of this Block for another process: `read_only=True` seals it against new
    /// writers (for good); `send` it over a Unix socket.
    #[pyo3(signature = (read_only = true))]
    fn share(&self, read_only: bool) -> PyResult<PyShare> {
        let extent = self.extent()?;
        let share = if read_only {
            extent.share()
        } else {
            // SAFETY: the package never makes a Rust reference to a Block's bytes (export.rs):
            // Python reaches them through raw pointers in buffers and DLPack capsules, so a
            // peer writing them races no `&`/`&mut` of this process. Coordinating the two
            // processes' writes is the Python user's protocol, as with any shared memory.
            unsafe { extent.share_read_write() }
        }
        .or_raise()?;
        Ok(PyShare::new(share))
    }

    /// Maps a share read-only: the sharer's very pages, no copy. Frozen if the sharer froze
    /// it (then its views are available).
    #[staticmethod]
    #[pyo3(signature = (share, pin = "required"))]
    fn import_read_only(py: Python<'_>, share: &PyShare, pin: &str) -> PyResult<PyBlock> {
        let pin = parse_pin(pin)?;
        let share = share.take()?;
        let block = py
            .detach(move || Block::import_read_only(share, pin))
            .or_raise()?;
        Ok(PyBlock {
            inner: Inner::ReadOnly(Arc::new(block)),
        })
    }

    /// Maps a read-write share: both processes see and may write the same pages.
    #[staticmethod]
    #[pyo3(signature = (share, pin = "required"))]
    fn import_(py: Python<'_>, share: &PyShare, pin: &str) -> PyResult<PyBlock> {
        let pin = parse_pin(pin)?;
        let share = share.take()?;
        // SAFETY: as for `share(read_only=False)`: no Rust reference to the bytes is ever
        // made by this package, so the peer's writes race none.
        let block = py
            .detach(move || unsafe { Block::import(share, pin) })
            .or_raise()?;
        Ok(PyBlock {
            inner: Inner::Writable(Arc::new(block)),
        })
    }

    /// Registers the Block with CUDA device `device`: copies between it and the GPU run at
    /// pinned speed, and kernels can read it at `.device_ptr`. A context manager: leaving
    /// the `with` releases it (the pages stay registered until every tensor taken from the
    /// registration is gone too).
    #[pyo3(signature = (device = 0))]
    fn register_cuda(&self, py: Python<'_>, device: u32) -> PyResult<PyRegistration> {
        match &self.inner {
            Inner::Writable(b) => PyRegistration::writable(py, Arc::clone(b), device),
            Inner::ReadOnly(b) => PyRegistration::read_only(py, Arc::clone(b), device),
            Inner::Gone => Err(PyValueError::new_err("the Block was released")),
        }
    }
}

/// Checks a `__dlpack__` request: DLPack 1.x, no copy.
pub(crate) fn check_request(max_version: Option<(u32, u32)>, copy: Option<bool>) -> PyResult<()> {
    match max_version {
        Some((major, _)) if major >= 1 => {}
        _ => {
            return Err(PyBufferError::new_err(
                "unimem exports DLPack 1.x tensors (DLManagedTensorVersioned) only, which \
                 carry the read-only flag; this consumer asked for the legacy format \
                 (max_version below (1, 0)): use NumPy >= 2.1 or PyTorch >= 2.4",
            ));
        }
    }
    if copy == Some(true) {
        return Err(PyBufferError::new_err(
            "unimem exports without a copy (copy=True asked for one): copy the tensor after \
             importing it",
        ));
    }
    Ok(())
}

/// `kDLCUDAHost`, for the registration.
pub(crate) const CUDA_HOST: i32 = K_DL_CUDA_HOST;

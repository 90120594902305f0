//! `unimem.Registration`: a Block registered with a CUDA device, as a context manager.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use unimem::cuda::{Driver, Registered};
use unimem::dlpack::Tensor;
use unimem::dlpack::sys::K_DL_CPU;
use unimem::{Block, ReadOnlyBlock};

use crate::block::{CUDA_HOST, check_request};
use crate::errors::OrRaise;
use crate::export;

/// The registration, owning an Arc of its Block (`unimem::cuda::Registered`).
enum Held {
    Writable(Arc<Registered<Arc<Block>>>),
    ReadOnly(Arc<Registered<Arc<ReadOnlyBlock>>>),
}

/// A Block registered with a CUDA device (`block.register_cuda(device)`): the GPU reads
/// and writes its pages at `device_ptr`, and copies between them and the GPU (PyTorch's
/// `.to("cuda")` of a tensor from the Block) run at pinned speed.
///
/// A context manager: `with block.register_cuda(0) as reg: ...` releases it on exit
/// (`release()` does the same). The pages are unregistered once the registration and every
/// tensor taken from it (`__dlpack__`, device `kDLCUDAHost`) are gone; unregistering waits
/// for the device's queued work.
#[pyclass(name = "Registration", module = "unimem")]
pub(crate) struct PyRegistration {
    held: Mutex<Option<Held>>,
    device_ptr: u64,
    device: u32,
    nbytes: usize,
    read_only: bool,
}

impl PyRegistration {
    pub(crate) fn writable(py: Python<'_>, block: Arc<Block>, device: u32) -> PyResult<Self> {
        let nbytes = block.size();
        let reg = py
            .detach(move || Registered::new(block, &Driver::load()?, device))
            .or_raise()?;
        Ok(Self::hold(Held::Writable(Arc::new(reg)), nbytes))
    }

    pub(crate) fn read_only(
        py: Python<'_>,
        block: Arc<ReadOnlyBlock>,
        device: u32,
    ) -> PyResult<Self> {
        let nbytes = block.size();
        let reg = py
            .detach(move || Registered::new(block, &Driver::load()?, device))
            .or_raise()?;
        Ok(Self::hold(Held::ReadOnly(Arc::new(reg)), nbytes))
    }

    fn hold(held: Held, nbytes: usize) -> Self {
        let (device_ptr, device, read_only) = match &held {
            Held::Writable(r) => (r.device_ptr(), r.device().ordinal(), r.is_read_only()),
            Held::ReadOnly(r) => (r.device_ptr(), r.device().ordinal(), r.is_read_only()),
        };
        PyRegistration {
            held: Mutex::new(Some(held)),
            device_ptr,
            device,
            nbytes,
            read_only,
        }
    }
}

#[pymethods]
impl PyRegistration {
    /// The device address of the Block's first byte.
    #[getter]
    fn device_ptr(&self) -> u64 {
        self.device_ptr
    }

    /// The CUDA device ordinal.
    #[getter]
    fn device(&self) -> u32 {
        self.device
    }

    /// The registered size in bytes: the whole Block.
    #[getter]
    fn nbytes(&self) -> usize {
        self.nbytes
    }

    /// Whether the device may only read the Block (a read-only mapping).
    #[getter]
    fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether this handle still holds the registration.
    #[getter]
    fn is_active(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Lets go of the registration (waits for the device's queued work when it is the
    /// last holder). Idempotent.
    fn release(&self, py: Python<'_>) {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
        py.detach(move || drop(held));
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.release(py);
        false
    }

    /// `(3, device)`: `kDLCUDAHost`, host memory registered with that device.
    fn __dlpack_device__(&self) -> (i32, i32) {
        (CUDA_HOST, self.device as i32)
    }

    /// A DLPack 1.x capsule over the whole Block, device `kDLCUDAHost` (or `kDLCPU` if the
    /// consumer asks with `dl_device=(1, 0)`), keeping the registration alive.
    #[pyo3(signature = (*, stream = None, max_version = None, dl_device = None, copy = None))]
    fn __dlpack__(
        &self,
        py: Python<'_>,
        stream: Option<Bound<'_, PyAny>>,
        max_version: Option<(u32, u32)>,
        dl_device: Option<(i32, i32)>,
        copy: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        let _ = stream; // registered host memory is ready: nothing to order
        check_request(max_version, copy)?;
        let on_cpu = match dl_device {
            None => false,
            Some(d) if d == (CUDA_HOST, self.device as i32) => false,
            Some(d) if d == (K_DL_CPU, 0) => true,
            Some(d) => {
                return Err(PyBufferError::new_err(format!(
                    "a registration exports kDLCUDAHost {:?} or kDLCPU (1, 0), not {d:?}",
                    (CUDA_HOST, self.device)
                )));
            }
        };
        let guard = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let tensor = match guard.as_ref() {
            None => return Err(PyValueError::new_err("this registration was released")),
            Some(Held::Writable(r)) => {
                // SAFETY: the package never makes a Rust reference to a Block's bytes
                // (export.rs).
                unsafe { Tensor::writable(Arc::clone(r), 0..self.nbytes) }.or_raise()?
            }
            Some(Held::ReadOnly(r)) => {
                if !r.owner().is_frozen() {
                    return Err(PyBufferError::new_err(
                        unimem::MemError::NotFrozen {
                            id: r.owner().id(),
                            size: r.owner().size(),
                        }
                        .to_string(),
                    ));
                }
                Tensor::read_only(Arc::clone(r), 0..self.nbytes).or_raise()?
            }
        };
        drop(guard);
        export::capsule(py, if on_cpu { tensor.on_cpu() } else { tensor })
    }

    fn __repr__(&self) -> String {
        format!(
            "unimem.Registration(device={}, device_ptr={:#x}, nbytes={}, read_only={}, active={})",
            self.device,
            self.device_ptr,
            self.nbytes,
            if self.read_only { "True" } else { "False" },
            if self.is_active() { "True" } else { "False" }
        )
    }
}

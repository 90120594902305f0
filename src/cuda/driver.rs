//! [`Driver`]: the CUDA driver library, loaded and initialised once per process.

use std::fmt;
use std::sync::OnceLock;

use super::Device;
use crate::error::MemError;
use crate::ffi::cuda::{Api, CuResult, LIBRARY, LoadError};

/// The outcome of the one load of this process: the table, or why there is none.
static DRIVER: OnceLock<Result<Api, MemError>> = OnceLock::new();

/// The CUDA driver: `libcuda.so.1`, loaded at run time and initialised (`cuInit`).
///
/// unimem links against no CUDA library and needs no toolkit to build: the driver is
/// opened with `dlopen` the first time [`Driver::load`] runs, and the outcome (the table
/// of functions, or the error) is kept for the life of the process. Every later `load` is
/// a read of that outcome. The library is never closed.
///
/// `Driver` is a `Copy` handle to that process-wide table; it is `Send` and `Sync` (the
/// driver API is thread safe).
///
/// # Examples
///
/// ```
/// use unimem::cuda::Driver;
///
/// match Driver::load() {
///     Ok(driver) => {
///         for device in driver.devices()? {
///             println!("CUDA device {}: {}", device.ordinal(), device.name()?);
///         }
///     }
///     // No NVIDIA driver here (or not Linux): an error value, never a panic.
///     Err(err) => println!("{err}"),
/// }
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Driver {
    api: &'static Api,
}

impl Driver {
    /// Loads and initialises the CUDA driver, once per process; later calls return the same
    /// outcome at the cost of an atomic load.
    ///
    /// # Errors
    ///
    /// - [`CudaDriverMissing`](MemError::CudaDriverMissing): `libcuda.so.1` could not be
    ///   loaded (the `dlopen` message says why), or this platform has no CUDA support in
    ///   unimem (anything but Linux);
    /// - [`CudaSymbolMissing`](MemError::CudaSymbolMissing): the driver lacks a function
    ///   (too old);
    /// - [`CudaInitFailed`](MemError::CudaInitFailed): `cuInit` failed (no device visible,
    ///   device files not accessible, stub library, ...).
    pub fn load() -> Result<Driver, MemError> {
        match DRIVER.get_or_init(open) {
            Ok(api) => Ok(Driver { api }),
            Err(err) => Err(err.clone()),
        }
    }

    /// The CUDA version the driver supports, as `(major, minor)`: `(13, 0)` for a 580
    /// driver.
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if `cuDriverGetVersion` fails.
    pub fn version(&self) -> Result<(u32, u32), MemError> {
        let raw = self
            .api
            .driver_version()
            .map_err(|code| self.error("cuDriverGetVersion", code, None, None))?;
        let raw = raw.max(0) as u32;
        Ok((raw / 1000, raw % 1000 / 10))
    }

    /// How many CUDA devices this process can see (after `CUDA_VISIBLE_DEVICES`).
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if `cuDeviceGetCount` fails.
    pub fn device_count(&self) -> Result<u32, MemError> {
        let count = self
            .api
            .device_count()
            .map_err(|code| self.error("cuDeviceGetCount", code, None, None))?;
        Ok(count.max(0) as u32)
    }

    /// The device with this ordinal (0 is the first).
    ///
    /// # Errors
    ///
    /// [`CudaBadDevice`](MemError::CudaBadDevice) if there is no such device,
    /// [`Cuda`](MemError::Cuda) if the driver fails to answer.
    pub fn device(&self, ordinal: u32) -> Result<Device, MemError> {
        let count = self.device_count()?;
        if ordinal >= count {
            return Err(MemError::CudaBadDevice { ordinal, count });
        }
        let raw = self
            .api
            .device(ordinal as i32)
            .map_err(|code| self.error("cuDeviceGet", code, Some(ordinal), None))?;
        Ok(Device::new(*self, ordinal, raw))
    }

    /// Every device this process can see, in ordinal order.
    ///
    /// # Errors
    ///
    /// As [`device_count`](Driver::device_count) and [`device`](Driver::device).
    pub fn devices(&self) -> Result<Vec<Device>, MemError> {
        (0..self.device_count()?).map(|i| self.device(i)).collect()
    }

    /// The batched copy this driver exports, which [`Stream`](super::Stream)'s copies use:
    /// `Some("cuMemcpyBatchAsync_v2")` (CUDA 13.0 and later), `Some("cuMemcpyBatchAsync")`
    /// (12.8 and 12.9), or `None` for an older driver, whose copies go one call per range.
    /// Looked up when the driver loaded; a missing one is not an error.
    pub fn batch_copy(&self) -> Option<&'static str> {
        self.api.batch_symbol()
    }

    /// The function table.
    pub(crate) fn api(&self) -> &'static Api {
        self.api
    }

    /// The error for a failed `call`, with the code's name from the driver.
    #[cold]
    pub(crate) fn error(
        &self,
        call: &'static str,
        code: CuResult,
        device: Option<u32>,
        bytes: Option<usize>,
    ) -> MemError {
        MemError::Cuda {
            call,
            code,
            name: self.api.error_name(code).unwrap_or("unknown"),
            device,
            bytes,
        }
    }
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("library", &LIBRARY)
            .finish_non_exhaustive()
    }
}

/// Loads the library, resolves the table and runs `cuInit`.
#[cold]
fn open() -> Result<Api, MemError> {
    let api = Api::load().map_err(|err| match err {
        LoadError::Library { reason } => MemError::CudaDriverMissing {
            library: LIBRARY,
            reason,
        },
        LoadError::Symbol { symbol, reason } => MemError::CudaSymbolMissing {
            library: LIBRARY,
            symbol,
            reason,
        },
    })?;
    api.init().map_err(|code| MemError::CudaInitFailed {
        code,
        name: api.error_name(code).unwrap_or("unknown"),
    })?;
    Ok(api)
}

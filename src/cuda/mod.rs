//! CUDA zero-copy (cargo feature `cuda`): register a Block with a GPU so that the GPU reads
//! and writes its pages directly through a device pointer.
//!
//! unimem does the memory side only: it loads the driver, registers memory, and hands out
//! device addresses. It runs no kernels; a GPU program (or another crate) is given
//! [`CudaBlock::device_ptr`] `+ offset`.
//!
//! | type | what it is |
//! |---|---|
//! | [`Driver`] | `libcuda.so.1`, loaded with `dlopen` and initialised once per process |
//! | [`Device`], [`Attribute`] | a device, its name and capabilities |
//! | [`Context`] | a retained primary context; fills and copies on device addresses |
//! | [`CudaBlock`] | a Block registered with a device ([`Extent::register_cuda`](crate::Extent::register_cuda)) |
//! | [`Registered`] | a registration that owns its memory (an [`Owner`](crate::Owner)): no borrow, for C and Python |
//! | [`RegisterOptions`] | chunk size and progress of a registration ([`Extent::register_cuda_with`](crate::Extent::register_cuda_with)) |
//! | [`DeviceMemory`] | memory on the device (`cuMemAlloc`) |
//! | [`HostMemory`] | CUDA's own pinned host memory (`cuMemAllocHost`), the baseline |
//! | [`Stream`] | a stream of a context: the queue batched copies go into |
//! | [`InFlight`] | a batched copy of Grid cells or Block ranges, queued; wait for it or poll it |
//! | [`CopyOptions`], [`CopyRange`], [`CopyReport`], [`CopyPath`], [`Fallback`] | how a batched copy runs, what it moves, and what it did |
//!
//! No CUDA toolkit is needed to build, and no GPU to run: where there is no driver,
//! [`Driver::load`] returns [`MemError::CudaDriverMissing`](crate::MemError::CudaDriverMissing)
//! with the reason. Only Linux loads the driver; elsewhere `Driver::load` fails with the same
//! variant, naming the platform.
//!
//! CUDA is not fork-safe: after `Driver::load` has run, a child process made with `fork` must
//! not use CUDA (nor, in a multithreaded parent, anything but async-signal-safe calls).
//! Start helper processes with `exec` (`std::process::Command`), or fork before loading.
//!
//! # Examples
//!
//! ```no_run
//! use unimem::Block;
//! use unimem::cuda::Driver;
//!
//! let mut block = Block::open(1 << 20)?;
//! block.as_slice_mut::<u32>().fill(7); // write while unregistered: `&mut` is free
//! let driver = Driver::load()?;
//! let registered = block.register_cuda(&driver, 0)?;
//! let context = registered.context();
//! let on_gpu = context.alloc(1 << 20)?;
//! // The GPU reads the Block in place into its own memory.
//! // SAFETY: both ranges are 1 MiB inside memory this process owns; nothing writes the
//! // Block meanwhile (it is borrowed shared by the registration).
//! unsafe { context.copy(on_gpu.device_ptr(), registered.device_ptr(), 1 << 20)? };
//! # Ok::<(), unimem::MemError>(())
//! ```
//!
//! Scattered Grid cells (a KV cache's blocks) move to and from device memory in one batched
//! driver call on a [`Stream`] ([`Stream::cells_to_device`], [`Stream::cells_to_host`]); the
//! cells are lent to the copy until it completes. `specs/cuda.md`, "Batched copies".
//!
//! The contract, context rules, drop order and measured speed are in `specs/cuda.md`.

mod driver;

mod device;

#[allow(unsafe_code)]
mod context;

#[allow(unsafe_code)]
mod device_memory;

#[allow(unsafe_code)]
mod host_memory;

#[allow(unsafe_code)]
mod registration;

#[allow(unsafe_code)]
mod event;

#[allow(unsafe_code)]
mod stream;

mod plan;

#[allow(unsafe_code)]
mod copy;

pub use context::Context;
pub use copy::{CopyOptions, CopyPath, CopyRange, CopyReport, Fallback, InFlight};
pub use device::{Attribute, Device};
pub use device_memory::DeviceMemory;
pub use driver::Driver;
pub use host_memory::HostMemory;
pub(crate) use registration::Registration;
pub use registration::{CudaBlock, RegisterOptions, Registered};
pub use stream::Stream;

#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

// `unsafe` is denied at the root and allowed only in the modules that talk to the
// operating system or hand out raw memory: `ffi`, `block`, `tape`, `grid` and `dlpack` (and
// the driver-owning modules of the `cuda` and `remote` features).

#[allow(unsafe_code)]
mod block;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "dlpack")]
#[allow(unsafe_code)]
pub mod dlpack;
mod error;
#[allow(unsafe_code)]
mod ffi;
#[allow(unsafe_code)]
mod grid;
mod layout;
mod limits;
mod owner;
mod padded;
mod page;
#[cfg(all(feature = "ucx", unix, not(miri)))]
#[allow(unsafe_code)]
pub mod remote;
mod sync;
#[allow(unsafe_code)]
mod tape;

pub use block::{
    Access, Block, Builder, Extent, HugePages, Pages, Pin, Progress, wait_for_releases,
};
#[cfg(all(target_os = "macos", not(miri)))]
pub use block::{IOSurfaceRef, MachPort, SurfaceShape};
#[cfg(all(target_os = "linux", not(miri)))]
pub use block::{ReadOnlyBlock, Share};
pub use error::{ErrorKind, MemError, MemoryLimit};
#[cfg(feature = "fault-injection")]
pub use ffi::fault;
pub use grid::{Cell, CellId, Grid, GridBuilder, GridLane, Run, RunCells};
pub use layout::{Layout, LayoutBuilder, ModelShape, Stat};
pub use limits::{HugeTlbPool, Limits, NumaNode};
pub use owner::Owner;
pub use page::page_size;
pub use tape::{Lane, Tape};

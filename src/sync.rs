//! The atomics the allocators use: std's in a normal build, loom's under `cfg(loom)`.
//!
//! Every atomic in the Tape and the Grid comes from here, so the code that ships is the code
//! loom model-checks (`RUSTFLAGS="--cfg loom"`, see `.ci/run`): loom's types have the same
//! methods and replace std's only in that build.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

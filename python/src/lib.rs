//! The Python package `unimem`: pinned, shareable Blocks for NumPy and PyTorch users.
//!
//! A client of unimem's public Rust API only (features `dlpack` and `cuda`), built by
//! maturin as an abi3 extension module (CPython 3.11+). The contract is `specs/python.md`.
//!
//! | file | Python |
//! |---|---|
//! | `block.rs` | `Block`: open, import, freeze, share, `register_cuda`, `__dlpack__`, the buffer protocol |
//! | `share.rs` | `Share`: `send(sock)`, `Share.recv(sock)` |
//! | `cuda.rs` | `Registration`: a CUDA registration, a context manager |
//! | `export.rs` | the raw parts: buffer views and DLPack capsules (the only `unsafe`) |
//! | `errors.rs` | `MemError` and one subclass per `ErrorKind`, with the Rust message |
//!
//! Linux only for now: sharing and freezing are Linux features of unimem, and the Apple
//! backend has never run (the crate is empty elsewhere).
#![cfg(target_os = "linux")]
#![deny(unsafe_op_in_unsafe_fn)]

mod block;
mod cuda;
mod errors;
mod export;
mod share;

use pyo3::prelude::*;

/// unimem: one pinned buffer every processor can use without a copy.
#[pymodule]
fn unimem(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<block::PyBlock>()?;
    m.add_class::<share::PyShare>()?;
    m.add_class::<cuda::PyRegistration>()?;
    errors::add(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

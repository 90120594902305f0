//! Grid cells moved between processes and hosts through UCX (feature `ucx`): register a
//! Grid's Block once, export what a peer needs to address its cells, and move cells with
//! one-sided reads and writes, many per call.
//!
//! | type | what it is |
//! |---|---|
//! | [`Engine`] | UCX (`libucp.so.0`, loaded with `dlopen`), one context and one worker |
//! | [`Secret`] | the 16-byte key two processes share to authenticate descriptions |
//! | [`LocalGrid`] | a Grid whose Block is registered (`ucp_mem_map`); [`LocalGrid::export`] |
//! | [`RemoteGrid`] | a peer's exported Grid, imported: an endpoint and a remote key |
//! | [`Transfer`] | a batch of cells in flight; `poll`, `wait` |
//!
//! unimem writes no transport: UCX picks one per peer (RDMA where there is a NIC, TCP
//! otherwise; UCX 1.13 moves no registered memory over its shared-memory transports in the
//! error handling mode unimem needs), configured with the `UCX_*` environment variables
//! (`UCX_TLS`, `UCX_NET_DEVICES`). Every process that can reach a worker's TCP ports can
//! write into its process: see `specs/remote.md`, "The trust boundary of a worker". unimem registers memory, authenticates and checks what peers send before
//! UCX sees it, bounds every access to the cells named, and owns the local cells while
//! they are in flight.
//!
//! # Examples
//!
//! Both sides in one process (two processes, as in `examples/kv_transfer.rs`, work the same
//! way with the description and the indices sent over a socket):
//!
//! ```no_run
//! use std::time::Duration;
//! use unimem::Grid;
//! use unimem::remote::{Engine, Secret};
//!
//! let secret = Secret::random()?;
//! let (prefill, decode) = (Grid::new(16 << 10, 64)?, Grid::new(16 << 10, 64)?);
//! let engine = Engine::load()?;
//!
//! // Prefill: fill a cell, export.
//! let there = engine.register(&prefill)?;
//! let mut kv = prefill.take().unwrap();
//! kv.bytes().fill(7);
//! let table = [kv.index()];
//! let _kept = kv.into_id();
//! let description = there.export(&secret)?;
//!
//! // Decode: import, pull the table's cells into cells of its own.
//! let here = engine.register(&decode)?;
//! let remote = engine.import(&description, &secret)?;
//! let cells = vec![decode.take().unwrap()];
//! let cells = remote.get(&here, &table, cells)?.wait(Duration::from_secs(5))?;
//! assert!(cells[0].as_slice::<u8>().iter().all(|&b| b == 7));
//! # Ok::<(), unimem::MemError>(())
//! ```
//!
//! The contract, the wire format, the trust model and the measurements are in
//! `specs/remote.md`.

mod description;
mod engine;
mod local;
mod remote_grid;
mod rkey;
mod secret;
mod transfer;

pub use engine::Engine;
pub use local::LocalGrid;
pub use remote_grid::RemoteGrid;
pub use secret::Secret;
pub use transfer::Transfer;

//! [`RemoteGrid`]: a peer's exported Grid, connected: an endpoint, its unpacked remote key
//! and the cells' geometry.

use std::fmt;
use std::rc::Rc;

use super::description::Description;
use super::engine::{Endpoint, Inner, error};
use super::local::LocalGrid;
use super::transfer::{Direction, Transfer};
use crate::error::MemError;
use crate::ffi::ucx::{self, Handle};
use crate::grid::Cell;

/// A Grid another process exported and this one imported
/// ([`Engine::import`](super::Engine::import)): its cells can be read into local cells
/// ([`get`](RemoteGrid::get)) and written from them ([`put`](RemoteGrid::put)), many per
/// call.
///
/// Remote cells are named by index, `0..cells()`: what the exporter's block table holds.
/// Every access is `cell_size()` bytes at `cell_offset(index)` in the exporter's Block,
/// inside the cells the description declared.
///
/// Dropping it destroys the remote key and closes the endpoint (flushing for up to 10 s,
/// then forcibly).
pub struct RemoteGrid {
    pub(crate) inner: Rc<Inner>,
    pub(crate) endpoint: Rc<Endpoint>,
    pub(crate) rkey: Handle,
    base: u64,
    offset: u64,
    cell_size: usize,
    cells: u32,
    grid: u64,
}

impl RemoteGrid {
    /// Connects to the exporter's worker and unpacks its key; `description` has been
    /// authenticated and checked (`Engine::import`).
    pub(crate) fn connect(
        inner: Rc<Inner>,
        description: &Description<'_>,
    ) -> Result<RemoteGrid, MemError> {
        let api = inner.api;
        let endpoint = Endpoint::new();
        // SAFETY: the address was authenticated (the peer holds the secret) and framed; the
        // handler's argument is the `Endpoint`, kept alive by the `Rc` until after the
        // endpoint is closed (in `Drop`, or by the Engine's quiesce).
        let ep = unsafe {
            api.ep_create(
                inner.worker,
                description.address,
                Endpoint::on_error,
                Rc::as_ptr(&endpoint).cast_mut().cast(),
            )
        }
        .map_err(|status| match status {
            // Error handling mode PEER needs a transport that can report a vanished peer
            // for UCX's control messages; UCX 1.13's shared-memory ones cannot.
            ucx::UNREACHABLE => error(
                api,
                "ucp_ep_create (error handling mode PEER: UCX_TLS must include a transport \
                 that detects a vanished peer, e.g. tcp next to sm)",
                status,
            ),
            _ => error(api, "ucp_ep_create", status),
        })?;
        endpoint.set(ep);
        inner.track(&endpoint);
        // SAFETY: `ep` is open; the key was authenticated and has the exact shape of a
        // host-memory key of this UCX (`rkey.rs`), so UCX reads only its bytes.
        let rkey = match unsafe { api.rkey_unpack(ep, description.rkey) } {
            Ok(rkey) => rkey,
            Err(status) => {
                endpoint.close(&inner);
                return Err(error(api, "ucp_ep_rkey_unpack", status));
            }
        };
        Ok(RemoteGrid {
            inner,
            endpoint,
            rkey,
            base: description.base,
            offset: description.offset,
            cell_size: description.cell_size as usize,
            cells: description.cells,
            grid: description.grid,
        })
    }

    /// The number of cells the peer exported.
    pub fn cells(&self) -> usize {
        self.cells as usize
    }

    /// Bytes in each of its cells.
    pub fn cell_size(&self) -> usize {
        self.cell_size
    }

    /// The exporting Grid's identity ([`Grid::id`](crate::Grid::id) in the exporter).
    pub fn grid_id(&self) -> u64 {
        self.grid
    }

    /// The offset of cell `index` in the exporter's Block, or `None` past the last cell.
    pub fn cell_offset(&self, index: u32) -> Option<usize> {
        (index < self.cells).then(|| self.offset as usize + index as usize * self.cell_size)
    }

    /// The exporter's address of cell `index < cells`.
    pub(crate) fn remote_address(&self, index: u32) -> u64 {
        self.base + self.offset + u64::from(index) * self.cell_size as u64
    }

    /// Reads remote cell `from[i]` into local cell `into[i]`, for every `i`, as one batch:
    /// every read is issued before this returns; the [`Transfer`] completes them.
    ///
    /// The local cells are moved into the Transfer, so nothing can view their bytes while
    /// UCX writes them; [`Transfer::wait`] hands them back. (A `CellId` from a block table
    /// becomes a Cell with [`Grid::claim`](crate::Grid::claim).)
    ///
    /// # Errors
    ///
    /// Checked before anything is issued (the cells go back to their Grid):
    /// [`TransferMismatch`](MemError::TransferMismatch) (as many indices as cells),
    /// [`ForeignCell`](MemError::ForeignCell) (a cell of another Grid than `local`'s),
    /// [`CellSizeMismatch`](MemError::CellSizeMismatch),
    /// [`RemoteCellOutOfRange`](MemError::RemoteCellOutOfRange),
    /// [`PeerLost`](MemError::PeerLost) (the endpoint failed or was closed). An operation
    /// UCX refuses at once aborts the batch: [`PeerLost`](MemError::PeerLost) or
    /// [`Ucx`](MemError::Ucx), after UCX has let go of the cells.
    ///
    /// # Examples
    ///
    /// See `examples/kv_transfer.rs` (two processes).
    pub fn get<'a>(
        &'a self,
        local: &'a LocalGrid<'a>,
        from: &[u32],
        into: Vec<Cell<'a>>,
    ) -> Result<Transfer<'a>, MemError> {
        Transfer::start(self, local, Direction::Get, from, into)
    }

    /// Writes local cell `from[i]` into remote cell `into[i]`, for every `i`, as one batch.
    /// The Transfer completes once the bytes are in the peer's memory (an endpoint flush
    /// follows the writes); [`Transfer::wait`] then hands the cells back.
    ///
    /// Two indices that are the same write one remote cell twice, in no set order.
    ///
    /// # Errors
    ///
    /// As [`get`](RemoteGrid::get).
    pub fn put<'a>(
        &'a self,
        local: &'a LocalGrid<'a>,
        from: Vec<Cell<'a>>,
        into: &[u32],
    ) -> Result<Transfer<'a>, MemError> {
        Transfer::start(self, local, Direction::Put, into, from)
    }
}

impl Drop for RemoteGrid {
    fn drop(&mut self) {
        // Operations first (closing completes or ends them), then the key they used.
        self.endpoint.close(&self.inner);
        // SAFETY: the key is this worker's and no operation uses it any more.
        unsafe { self.inner.api.rkey_destroy(self.rkey) };
    }
}

impl fmt::Debug for RemoteGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteGrid")
            .field("grid", &self.grid)
            .field("cells", &self.cells)
            .field("cell_size", &self.cell_size)
            .field("base", &format_args!("{:#x}", self.base))
            .field("offset", &self.offset)
            .field("open", &self.endpoint.handle().is_some())
            .finish_non_exhaustive()
    }
}

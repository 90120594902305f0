//! [`LocalGrid`]: a Grid whose Block is registered with UCX, and its export.

use std::fmt;
use std::rc::Rc;

use super::description::Description;
use super::engine::{Inner, error};
use super::secret::{Secret, random_u64};
use crate::error::MemError;
use crate::ffi::ucx::Handle;
use crate::grid::Grid;

/// A [`Grid`] whose Block is registered with an [`Engine`](super::Engine): its cells can be
/// moved to and from peers, and [`export`](LocalGrid::export)ed for a peer to address.
///
/// Made by [`Engine::register`](super::Engine::register), which calls `ucp_mem_map` once
/// with the address and size of the Grid's Block: the pinned pages that are already there.
/// It borrows the Grid, so the Grid (and its Block) outlives the registration. Dropping it
/// first waits until no UCX operation of its Engine is in flight (a worker flush; after
/// 10 s, every endpoint of the Engine is force-closed), then unregisters (`ucp_mem_unmap`).
pub struct LocalGrid<'g> {
    pub(crate) inner: Rc<Inner>,
    grid: &'g Grid,
    pub(crate) memh: Handle,
    nonce: u64,
}

impl<'g> LocalGrid<'g> {
    pub(crate) fn register(inner: Rc<Inner>, grid: &'g Grid) -> Result<LocalGrid<'g>, MemError> {
        let nonce = random_u64()?;
        let block = grid.tape().block();
        // SAFETY: the Block's mapping covers `address..address + size` and stays mapped
        // while the LocalGrid borrows the Grid that owns it; `Drop` unmaps the registration
        // first. Registering does not change the bytes.
        let memh = unsafe {
            inner
                .api
                .mem_map(inner.context(), block.address().cast(), block.size())
        }
        .map_err(|status| error(inner.api, "ucp_mem_map", status))?;
        Ok(LocalGrid {
            inner,
            grid,
            memh,
            nonce,
        })
    }

    /// The registered Grid.
    pub fn grid(&self) -> &'g Grid {
        self.grid
    }

    /// What a peer needs to address this Grid's cells, authenticated with `secret`: the
    /// worker's address, the packed remote key, the Block's base and size, the offset of
    /// cell 0, the cell size and count, and the Grid's identity (`specs/remote.md`, "The
    /// exported description"). The peer imports it with
    /// [`Engine::import`](super::Engine::import) and the same secret.
    ///
    /// The bytes are not secret themselves, but whoever can import them can read and write
    /// these cells (and, through UCX, more: `specs/remote.md`, "Trust").
    ///
    /// # Errors
    ///
    /// [`Ucx`](MemError::Ucx) if `ucp_rkey_pack` fails.
    pub fn export(&self, secret: &Secret) -> Result<Vec<u8>, MemError> {
        let api = self.inner.api;
        let rkey = api
            .rkey_pack(self.inner.context(), self.memh)
            .map_err(|status| error(api, "ucp_rkey_pack", status))?;
        let block = self.grid.tape().block();
        let (major, minor, _) = self.inner.version;
        let offset = self.grid.cell_offset(0).unwrap_or(0);
        Ok(Description {
            engine: (major as u16, minor as u16),
            grid: self.grid.id(),
            nonce: self.nonce,
            base: block.address() as u64,
            size: block.size() as u64,
            offset: offset as u64,
            cell_size: self.grid.cell_size() as u64,
            cells: self.grid.total() as u32,
            address: &self.inner.address,
            rkey: &rkey,
        }
        .encode(secret))
    }
}

impl Drop for LocalGrid<'_> {
    fn drop(&mut self) {
        // A leaked Transfer may still have operations on these pages in flight: wait for
        // them (or end them) before the registration, and then the Grid, can go.
        self.inner.quiesce();
        // SAFETY: `memh` is this context's, and no operation is in flight any more.
        let _ = unsafe { self.inner.api.mem_unmap(self.inner.context(), self.memh) };
    }
}

impl fmt::Debug for LocalGrid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalGrid")
            .field("grid", &self.grid.id())
            .field("block", &self.grid.tape().block().id())
            .field("cells", &self.grid.total())
            .field("cell_size", &self.grid.cell_size())
            .finish_non_exhaustive()
    }
}

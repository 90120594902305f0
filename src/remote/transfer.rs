//! [`Transfer`]: one batch of cells in flight, with completion to poll or wait for.
//!
//! # Why it is sound
//!
//! The local cells are owned `Cell`s moved into the Transfer: while UCX reads or writes
//! them nobody else can view them. They leave only through [`Transfer::wait`], once every
//! request has completed (or, after an abort, has been completed by the forced close of
//! the endpoint and freed). `Drop` does the same abort before the cells go back to their
//! Grid. A leaked Transfer keeps its cells for ever; its operations are ended by the
//! `LocalGrid`'s `Drop` (a quiesce), which must run before the Grid can drop.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::engine::error;
use super::local::LocalGrid;
use super::remote_grid::RemoteGrid;
use crate::error::MemError;
use crate::ffi::ucx::{self, Started, Status};
use crate::grid::Cell;

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Remote cells into local ones (`ucp_get_nbx`).
    Get,
    /// Local cells into remote ones (`ucp_put_nbx`).
    Put,
}

/// A batch of cells moving between this process and a peer: made by
/// [`RemoteGrid::get`] and [`RemoteGrid::put`], completed by [`poll`](Transfer::poll) or
/// [`wait`](Transfer::wait), which hands the local cells back.
///
/// Dropping an unfinished Transfer aborts it: UCX cannot cancel one operation, so the
/// RemoteGrid's endpoint is force-closed (every later transfer through it fails with
/// [`PeerLost`](MemError::PeerLost)); the cells go back to their Grid once UCX has let go
/// of them.
pub struct Transfer<'a> {
    remote: &'a RemoteGrid,
    /// Held so that the registration outlives the batch (its `Drop` would quiesce anyway).
    _local: &'a LocalGrid<'a>,
    cells: Vec<Cell<'a>>,
    /// Requests not yet seen complete.
    requests: Vec<NonNull<c_void>>,
    /// The failure to report, once every request has completed.
    failure: Option<MemError>,
}

impl<'a> Transfer<'a> {
    pub(crate) fn start(
        remote: &'a RemoteGrid,
        local: &'a LocalGrid<'a>,
        direction: Direction,
        indices: &[u32],
        cells: Vec<Cell<'a>>,
    ) -> Result<Transfer<'a>, MemError> {
        check(remote, local, indices, &cells)?;
        let mut transfer = Transfer {
            remote,
            _local: local,
            cells,
            requests: Vec::with_capacity(indices.len() + 1),
            failure: None,
        };
        let api = remote.inner.api;
        let Some(ep) = remote.endpoint.handle() else {
            return Err(transfer.lost(ucx::CANCELED));
        };
        let len = remote.cell_size();
        for (cell, &index) in transfer.cells.iter().zip(indices) {
            let at = remote.remote_address(index);
            let started = match direction {
                // SAFETY: the cell is owned by this Transfer (nobody else views or writes
                // it) and lies in the Block `local.memh` registers; `at..at + len` is cell
                // `index < cells` of the exporter's Block, which the key names.
                Direction::Get => unsafe {
                    api.get(ep, cell.address(), len, at, remote.rkey, local.memh)
                },
                // SAFETY: as above; UCX only reads the cell.
                Direction::Put => unsafe {
                    api.put(ep, cell.address(), len, at, remote.rkey, local.memh)
                },
            };
            match started {
                Ok(Started::Done) => {}
                Ok(Started::Request(request)) => transfer.requests.push(request),
                Err(status) => {
                    let call = match direction {
                        Direction::Get => "ucp_get_nbx",
                        Direction::Put => "ucp_put_nbx",
                    };
                    transfer.fail(call, status);
                    break;
                }
            }
        }
        if transfer.failure.is_none() {
            match api.ep_flush(ep) {
                Ok(Started::Done) => {}
                Ok(Started::Request(request)) => transfer.requests.push(request),
                Err(status) => transfer.fail("ucp_ep_flush_nbx", status),
            }
        }
        if let Some(err) = transfer.failure.take() {
            // Drop aborts and waits for UCX to let go of the cells.
            drop(transfer);
            return Err(err);
        }
        Ok(transfer)
    }

    /// The number of cells in the batch.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the batch has no cells.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Makes progress once; `Ok(true)` once every cell has moved (for a put: is in the
    /// peer's memory).
    ///
    /// # Errors
    ///
    /// [`PeerLost`](MemError::PeerLost) or [`Ucx`](MemError::Ucx) once an operation has
    /// failed and UCX has let go of every cell; the Transfer is then finished (`wait`
    /// returns the same error).
    pub fn poll(&mut self) -> Result<bool, MemError> {
        self.remote.inner.api.progress(self.remote.inner.worker);
        self.sweep(false);
        if self.requests.len() == 1 || self.failure.is_some() {
            // The flush (the last request) completes after every operation: look at all.
            self.sweep(true);
        }
        if self.failure.is_some() && !self.requests.is_empty() {
            // An operation failed: end the others (they would wait on a dead peer).
            self.abort();
        }
        match &self.failure {
            Some(err) if self.requests.is_empty() => Err(err.clone()),
            _ => Ok(self.requests.is_empty()),
        }
    }

    /// Makes progress until every cell has moved, and hands the cells back, in the order
    /// they were given.
    ///
    /// # Errors
    ///
    /// - [`TransferTimedOut`](MemError::TransferTimedOut): not complete after `timeout`;
    ///   the endpoint is force-closed;
    /// - [`PeerLost`](MemError::PeerLost): the peer vanished (or the endpoint was closed);
    /// - [`Ucx`](MemError::Ucx): an operation failed for another reason.
    ///
    /// On every error the cells go back to their Grid, once UCX has let go of them: their
    /// bytes are whatever arrived.
    pub fn wait(mut self, timeout: Duration) -> Result<Vec<Cell<'a>>, MemError> {
        let started = Instant::now();
        loop {
            match self.poll() {
                Ok(true) => return Ok(std::mem::take(&mut self.cells)),
                Ok(false) => {}
                Err(err) => return Err(err),
            }
            if started.elapsed() >= timeout {
                let pending = self.requests.len();
                self.abort();
                return Err(MemError::TransferTimedOut {
                    pending,
                    cells: self.cells.len(),
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
        }
    }

    /// Frees completed requests, noting the first failure. Operations on one endpoint
    /// complete mostly in order, so it checks from the oldest and stops at the first still
    /// in progress: O(completed) per call, not O(batch), unless `all`.
    fn sweep(&mut self, all: bool) {
        let api = self.remote.inner.api;
        let mut failed = None;
        let mut kept = 0;
        let mut index = 0;
        while index < self.requests.len() {
            let request = self.requests[index];
            // SAFETY: every request in the list is live (freed only here, once completed).
            let status = unsafe { api.request_status(request) };
            if status == ucx::INPROGRESS {
                if !all {
                    break;
                }
                self.requests[kept] = request;
                kept += 1;
            } else {
                // SAFETY: completed and never used again.
                unsafe { api.request_free(request) };
                if status != ucx::OK && failed.is_none() {
                    failed = Some(status);
                }
            }
            index += 1;
        }
        // Keep what was not looked at, after what was kept.
        self.requests.copy_within(index.., kept);
        let len = kept + (self.requests.len() - index);
        self.requests.truncate(len);
        if let Some(status) = failed {
            self.fail("ucp_request_check_status", status);
        }
    }

    /// Force-closes the endpoint and makes progress until every request has completed.
    fn abort(&mut self) {
        self.remote.endpoint.force_close(&self.remote.inner);
        while !self.requests.is_empty() {
            self.remote.inner.api.progress(self.remote.inner.worker);
            let failure = self.failure.take();
            self.sweep(true);
            // Keep the first failure, not the cancellations the close caused.
            if failure.is_some() {
                self.failure = failure;
            }
        }
    }

    /// Notes a failure (the first one counts).
    fn fail(&mut self, call: &'static str, status: Status) {
        if self.failure.is_none() {
            self.failure = Some(match self.remote.endpoint.failure() {
                Some(reported) => self.lost(reported),
                None if peer_failure(status) => self.lost(status),
                None => error(self.remote.inner.api, call, status),
            });
        }
    }

    fn lost(&self, status: Status) -> MemError {
        MemError::PeerLost {
            status: i32::from(status),
            name: self.remote.inner.api.status_name(status),
        }
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        if !self.requests.is_empty() {
            self.abort();
        }
        // The cells drop after this body: back to their Grid, UCX done with them.
    }
}

impl fmt::Debug for Transfer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transfer")
            .field("cells", &self.cells.len())
            .field("pending", &self.requests.len())
            .field("failed", &self.failure.is_some())
            .finish_non_exhaustive()
    }
}

/// Whether `status` says the peer or the link is gone (`ucs/type/status.h`: the link and
/// endpoint failure ranges, `UCS_ERR_CONNECTION_RESET`, `UCS_ERR_UNREACHABLE`,
/// `UCS_ERR_CANCELED` after a forced close).
fn peer_failure(status: Status) -> bool {
    matches!(status, -59..=-40 | -89..=-80 | -25 | -6 | -16)
}

/// Everything that can be checked before anything is issued.
fn check(
    remote: &RemoteGrid,
    local: &LocalGrid<'_>,
    indices: &[u32],
    cells: &[Cell<'_>],
) -> Result<(), MemError> {
    if indices.len() != cells.len() {
        return Err(MemError::TransferMismatch {
            cells: cells.len(),
            indices: indices.len(),
        });
    }
    let grid = local.grid();
    if let Some(cell) = cells.iter().find(|cell| !std::ptr::eq(cell.grid(), grid)) {
        return Err(MemError::ForeignCell {
            grid: grid.id(),
            owner: cell.grid().id(),
        });
    }
    if grid.cell_size() != remote.cell_size() {
        return Err(MemError::CellSizeMismatch {
            local: grid.cell_size(),
            remote: remote.cell_size(),
        });
    }
    if let Some(&index) = indices
        .iter()
        .find(|&&index| index as usize >= remote.cells())
    {
        return Err(MemError::RemoteCellOutOfRange {
            index,
            cells: remote.cells(),
        });
    }
    if let Some(status) = remote.endpoint.failure() {
        return Err(MemError::PeerLost {
            status: i32::from(status),
            name: remote.inner.api.status_name(status),
        });
    }
    Ok(())
}

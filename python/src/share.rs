//! `unimem.Share`: a Block's memfd on its way to another process, over a Unix socket.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use unimem::{Access, Share};

use crate::errors::OrRaise;

/// A share of a Block: send it to another process with `send(sock)`, receive it there with
/// `Share.recv(sock)`, map it with `Block.import_read_only(share)` (or `Block.import_`).
/// An import uses the share up.
#[pyclass(name = "Share", module = "unimem")]
pub(crate) struct PyShare {
    share: Mutex<Option<Share>>,
    /// Read at creation: what `read_only`, `nbytes` and `source_id` report after use.
    read_only: bool,
    nbytes: usize,
    source_id: u32,
}

impl PyShare {
    pub(crate) fn new(share: Share) -> PyShare {
        PyShare {
            read_only: share.access() == Access::ReadOnly,
            nbytes: share.size(),
            source_id: share.source_id(),
            share: Mutex::new(Some(share)),
        }
    }

    /// The share, for an import (which uses it up).
    pub(crate) fn take(&self) -> PyResult<Share> {
        self.share
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(used)
    }
}

fn used() -> PyErr {
    PyValueError::new_err("this Share was used by an import already: receive another")
}

/// A duplicate of the socket's descriptor as a `UnixStream` (closed when dropped; the
/// Python socket keeps its own).
fn stream_of(sock: &Bound<'_, PyAny>) -> PyResult<UnixStream> {
    let fd: RawFd = sock.call_method0("fileno")?.extract()?;
    if fd < 0 {
        return Err(PyValueError::new_err("the socket is closed"));
    }
    // SAFETY: `fd` is the descriptor of `sock`, open while `sock` (borrowed for this call)
    // lives; it is duplicated at once and the borrow ends here.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed
        .try_clone_to_owned()
        .map_err(|e| PyValueError::new_err(format!("cannot duplicate the socket: {e}")))?;
    debug_assert_ne!(owned.as_raw_fd(), fd);
    Ok(UnixStream::from(owned))
}

#[pymethods]
impl PyShare {
    /// Sends the share over a connected Unix stream socket (`socket.AF_UNIX`,
    /// `SOCK_STREAM`, blocking): one message with the descriptor. The share stays usable.
    fn send(&self, py: Python<'_>, sock: &Bound<'_, PyAny>) -> PyResult<()> {
        let stream = stream_of(sock)?;
        let guard = self.share.lock().unwrap_or_else(|p| p.into_inner());
        let share = guard.as_ref().ok_or_else(used)?;
        py.detach(|| share.send(&stream)).or_raise()
    }

    /// Receives a share sent with `send` (blocks until one arrives). A peer that sends
    /// garbage gets a `RefusedPeerError`, one that closes a `DisconnectedError`; every
    /// descriptor received with garbage is closed.
    #[staticmethod]
    fn recv(py: Python<'_>, sock: &Bound<'_, PyAny>) -> PyResult<PyShare> {
        let stream = stream_of(sock)?;
        let share = py.detach(move || Share::recv(&stream)).or_raise()?;
        Ok(PyShare::new(share))
    }

    /// Whether the share is read-only.
    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    /// The Block's size in bytes.
    #[getter]
    fn nbytes(&self) -> usize {
        self.nbytes
    }

    /// The Block's id in the sharing process.
    #[getter]
    fn source_id(&self) -> u32 {
        self.source_id
    }

    fn __repr__(&self) -> String {
        format!(
            "unimem.Share(source_id={}, nbytes={}, read_only={})",
            self.source_id,
            self.nbytes,
            if self.read_only { "True" } else { "False" }
        )
    }
}

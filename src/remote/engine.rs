//! [`Engine`]: UCX, loaded once per process, and one context with one worker.

use std::cell::{Cell as Flag, RefCell};
use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::rc::{Rc, Weak};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::description::Description;
use super::local::LocalGrid;
use super::remote_grid::RemoteGrid;
use super::rkey::KeyShape;
use super::secret::Secret;
use crate::error::MemError;
use crate::ffi::ucx::{self, Api, Handle, LIBRARY, LoadError, Started, Status};
use crate::grid::Grid;

/// The outcome of the one load of this process: the table, or why there is none.
static UCX: OnceLock<Result<Api, MemError>> = OnceLock::new();

/// How long a `Drop` waits for UCX to flush before it force-closes endpoints.
pub(crate) const QUIESCE: Duration = Duration::from_secs(10);

/// UCX: a context with one worker, through which Grids are registered, exported, imported
/// and their cells moved.
///
/// `libucp.so.0` is opened with `dlopen` the first time [`Engine::load`] runs in the
/// process (unimem links against no UCX library and needs none to build); each `load`
/// makes a new context and worker (`ucp_init_version`, `ucp_worker_create`), configured by
/// the `UCX_*` environment variables (`UCX_TLS`, `UCX_NET_DEVICES`, ...).
///
/// A worker listens on a TCP port of every network interface UCX may use, and UCX 1.13
/// writes wherever a message from a connected peer says: **every process that can reach
/// those ports can read and write this process's memory**, with or without the
/// [`Secret`]. Restrict the interfaces (`UCX_NET_DEVICES=lo`, a private network), the
/// network (a namespace, a firewall on `UCX_TCP_PORT_RANGE`): `specs/remote.md`, "The trust
/// boundary of a worker".
///
/// The worker runs in UCX's single-thread mode, so an Engine stays on the thread that made
/// it: it is neither `Send` nor `Sync`. Make one per thread that moves cells.
///
/// # Examples
///
/// ```
/// use unimem::remote::Engine;
///
/// match Engine::load() {
///     Ok(engine) => println!("UCX {:?}", engine.version()),
///     // No UCX here: an error value of kind Unsupported, never a panic.
///     Err(err) => println!("{err}"),
/// }
/// ```
pub struct Engine {
    inner: Rc<Inner>,
}

/// The context and worker, shared by the Engine and every LocalGrid and RemoteGrid made
/// from it; destroyed when the last of them drops.
pub(crate) struct Inner {
    pub(crate) api: &'static Api,
    context: Handle,
    pub(crate) worker: Handle,
    pub(crate) version: (u32, u32, u32),
    /// What this UCX packs for host memory (`rkey.rs`).
    pub(crate) shape: KeyShape,
    /// The worker's address, as peers need it.
    pub(crate) address: Vec<u8>,
    /// Every endpoint made from this worker, to force-close them if a flush hangs.
    endpoints: RefCell<Vec<Weak<Endpoint>>>,
}

impl Engine {
    /// The oldest UCX unimem runs with (its structs were checked against 1.13.1's headers).
    pub const MIN_VERSION: (u32, u32) = (1, 13);

    /// Loads UCX (once per process) and makes a context and a worker.
    ///
    /// # Errors
    ///
    /// - [`UcxMissing`](MemError::UcxMissing): `libucp.so.0` could not be loaded (the
    ///   `dlopen` message says why);
    /// - [`UcxSymbolMissing`](MemError::UcxSymbolMissing): the library lacks a function;
    /// - [`UcxVersion`](MemError::UcxVersion): UCX older than [`MIN_VERSION`](Self::MIN_VERSION);
    /// - [`Ucx`](MemError::Ucx): `ucp_init_version`, `ucp_worker_create`, or the probe
    ///   registration of one page failed.
    pub fn load() -> Result<Engine, MemError> {
        let api = match UCX.get_or_init(open) {
            Ok(api) => api,
            Err(err) => return Err(err.clone()),
        };
        let params = ucx::Params {
            field_mask: ucx::PARAM_FIELD_FEATURES,
            features: ucx::FEATURE_RMA,
            request_size: 0,
            request_init: None,
            request_cleanup: None,
            tag_sender_mask: 0,
            mt_workers_shared: 0,
            estimated_num_eps: 0,
            estimated_num_ppn: 0,
            name: std::ptr::null(),
        };
        let (major, minor) = Engine::MIN_VERSION;
        let context = api
            .init(major, minor, &params)
            .map_err(|status| error(api, "ucp_init_version", status))?;
        let mut inner = Inner {
            api,
            context,
            worker: std::ptr::null_mut(),
            version: api.version(),
            shape: KeyShape::empty(),
            address: Vec::new(),
            endpoints: RefCell::new(Vec::new()),
        };
        // From here on `inner`'s Drop releases what was made, on every error path.
        let worker = ucx::WorkerParams {
            field_mask: ucx::WORKER_PARAM_FIELD_THREAD_MODE,
            thread_mode: ucx::THREAD_MODE_SINGLE,
            cpu_mask: [0; 16],
            events: 0,
            user_data: std::ptr::null_mut(),
            event_fd: 0,
            flags: 0,
            name: std::ptr::null(),
            am_alignment: 0,
            client_id: 0,
        };
        inner.worker = api
            .worker_create(context, &worker)
            .map_err(|status| error(api, "ucp_worker_create", status))?;
        inner.address = api
            .worker_address(inner.worker)
            .map_err(|status| error(api, "ucp_worker_get_address", status))?;
        inner.shape = inner.probe_shape()?;
        Ok(Engine {
            inner: Rc::new(inner),
        })
    }

    /// UCX's version, `(major, minor, release)`: `(1, 13, 1)` on Debian 12.
    pub fn version(&self) -> (u32, u32, u32) {
        self.inner.version
    }

    /// Registers `grid`'s Block with UCX (`ucp_mem_map` of its address and size: the pinned
    /// pages already there, no copy and no second allocation), for as long as the
    /// [`LocalGrid`] lives.
    ///
    /// # Errors
    ///
    /// [`Ucx`](MemError::Ucx) if `ucp_mem_map` fails; [`Os`](MemError::Os) if no nonce
    /// could be drawn.
    pub fn register<'g>(&self, grid: &'g Grid) -> Result<LocalGrid<'g>, MemError> {
        LocalGrid::register(self.inner.clone(), grid)
    }

    /// Connects to the Grid a peer exported ([`LocalGrid::export`]) with the same `secret`.
    ///
    /// The description is authenticated first (its SipHash-2-4 tag under `secret`), then
    /// checked field by field; only then do its worker address and remote key reach UCX
    /// (`ucp_ep_create`, `ucp_ep_rkey_unpack`), which does not defend itself against
    /// malformed ones (`specs/remote.md`, "Trust").
    ///
    /// # Errors
    ///
    /// - [`RemoteRefused`](MemError::RemoteRefused): a wrong tag (another secret, altered
    ///   bytes), bad framing or geometry, another UCX version, or a remote key this UCX
    ///   would not pack for host memory;
    /// - [`Ucx`](MemError::Ucx): `ucp_ep_create` or `ucp_ep_rkey_unpack` failed.
    pub fn import(&self, description: &[u8], secret: &Secret) -> Result<RemoteGrid, MemError> {
        let decoded = Description::decode(description, secret)?;
        let (major, minor, _) = self.inner.version;
        if (u32::from(decoded.engine.0), u32::from(decoded.engine.1)) != (major, minor) {
            return Err(MemError::RemoteRefused {
                len: description.len(),
                reason: "the exporter runs another UCX version (packed keys and addresses are \
                         version specific)",
            });
        }
        self.inner.shape.check(decoded.rkey, description.len())?;
        RemoteGrid::connect(self.inner.clone(), &decoded)
    }

    /// Makes progress on the worker once: serves peers' operations that UCX emulates in
    /// software (over TCP an exporter must call this while peers move its cells) and
    /// completes this process's own. Returns the number of events processed.
    pub fn progress(&self) -> usize {
        self.inner.api.progress(self.inner.worker) as usize
    }

    /// Calls [`progress`](Engine::progress) for `duration`.
    pub fn progress_for(&self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            if self.progress() == 0 {
                std::thread::yield_now();
            }
        }
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("library", &LIBRARY)
            .field("version", &self.inner.version)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Packs a key for a page of this process's own memory and reads its shape.
    fn probe_shape(&self) -> Result<KeyShape, MemError> {
        let page = vec![0u8; 4096];
        // SAFETY: `page` stays allocated (and mapped) until after the unmap below.
        let memh = unsafe {
            self.api
                .mem_map(self.context, page.as_ptr().cast_mut().cast(), page.len())
        }
        .map_err(|status| error(self.api, "ucp_mem_map", status))?;
        let packed = self.api.rkey_pack(self.context, memh);
        // SAFETY: `memh` is this context's and no operation uses the page.
        let _ = unsafe { self.api.mem_unmap(self.context, memh) };
        drop(page);
        let packed = packed.map_err(|status| error(self.api, "ucp_rkey_pack", status))?;
        KeyShape::of(&packed).ok_or(MemError::Ucx {
            call: "ucp_rkey_pack",
            status: 0,
            name: "packed a key of an unknown format",
        })
    }

    /// The context, for registrations.
    pub(crate) fn context(&self) -> Handle {
        self.context
    }

    /// Remembers an endpoint, for [`quiesce`](Inner::quiesce).
    pub(crate) fn track(&self, endpoint: &Rc<Endpoint>) {
        let mut endpoints = self.endpoints.borrow_mut();
        endpoints.retain(|weak| weak.strong_count() > 0);
        endpoints.push(Rc::downgrade(endpoint));
    }

    /// Makes progress until `request` has completed or `deadline` passes; frees it once
    /// completed. `Ok(status)` with its final status, `Err(())` if still in progress.
    pub(crate) fn wait_request(
        &self,
        request: NonNull<c_void>,
        deadline: Option<Instant>,
    ) -> Result<Status, ()> {
        loop {
            self.api.progress(self.worker);
            // SAFETY: `request` is live: it is freed only below, once completed.
            let status = unsafe { self.api.request_status(request) };
            if status != ucx::INPROGRESS {
                // SAFETY: completed and never used again.
                unsafe { self.api.request_free(request) };
                return Ok(status);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(());
            }
        }
    }

    /// Waits until no operation of this worker is in flight: a worker flush for up to
    /// [`QUIESCE`]; if it has not completed by then, every endpoint is force-closed (which
    /// completes their operations with an error) and the flush is waited for to the end.
    pub(crate) fn quiesce(&self) {
        let flush = self.api.worker_flush(self.worker);
        let pending = match flush {
            Ok(Started::Done) => return,
            Ok(Started::Request(request)) => {
                match self.wait_request(request, Some(Instant::now() + QUIESCE)) {
                    Ok(_) => return,
                    Err(()) => Some(request),
                }
            }
            Err(_) => None,
        };
        let endpoints: Vec<Rc<Endpoint>> = self
            .endpoints
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for endpoint in endpoints {
            endpoint.force_close(self);
        }
        if let Some(request) = pending {
            // Local now: every endpoint is closed.
            let _ = self.wait_request(request, None);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.worker.is_null() {
            // SAFETY: the last holder is gone: every LocalGrid (unmapped) and RemoteGrid
            // (endpoint closed) made from this worker has dropped.
            unsafe { self.api.worker_destroy(self.worker) };
        }
        // SAFETY: the worker (its only one) is destroyed and every memory handle unmapped.
        unsafe { self.api.cleanup(self.context) };
    }
}

/// A UCX endpoint and what its error handler has reported.
///
/// Shared (`Rc`) by its RemoteGrid and, weakly, the Engine; its address is the argument of
/// the error handler, so it does not move while the endpoint is open.
pub(crate) struct Endpoint {
    ep: Flag<Handle>,
    /// The status UCX reported through the error handler; 0 while none.
    failed: Flag<Status>,
}

impl Endpoint {
    pub(crate) fn new() -> Rc<Endpoint> {
        Rc::new(Endpoint {
            ep: Flag::new(std::ptr::null_mut()),
            failed: Flag::new(0),
        })
    }

    /// The UCX error handler: records the failure. Called by `ucp_worker_progress`, on the
    /// Engine's thread.
    pub(crate) unsafe extern "C" fn on_error(arg: *mut c_void, _ep: Handle, status: Status) {
        // SAFETY: `arg` is the address of an `Endpoint` that outlives its UCX endpoint
        // (the endpoint is closed before the `Rc` can drop); only this thread touches it.
        let endpoint = unsafe { &*arg.cast::<Endpoint>() };
        endpoint.failed.set(if status == 0 { -1 } else { status });
    }

    pub(crate) fn set(&self, ep: Handle) {
        self.ep.set(ep);
    }

    /// The open endpoint, or `None` once closed.
    pub(crate) fn handle(&self) -> Option<Handle> {
        let ep = self.ep.get();
        (!ep.is_null()).then_some(ep)
    }

    /// The failure UCX reported, if any.
    pub(crate) fn failure(&self) -> Option<Status> {
        let status = self.failed.get();
        (status != 0).then_some(status)
    }

    /// Closes the endpoint: flushes it first (every operation completes at the peer), for
    /// up to [`QUIESCE`], then closes it forcibly, which is local and cannot hang.
    pub(crate) fn close(&self, inner: &Inner) {
        let Some(ep) = self.handle() else { return };
        if self.failure().is_none() {
            if let Ok(Started::Request(request)) = inner.api.ep_flush(ep) {
                if inner
                    .wait_request(request, Some(Instant::now() + QUIESCE))
                    .is_err()
                {
                    // Still in flight: the forced close below completes it.
                    self.force_close(inner);
                    let _ = inner.wait_request(request, None);
                    return;
                }
            }
        }
        self.force_close(inner);
    }

    /// Closes the endpoint forcibly: every outstanding operation completes with an error,
    /// without waiting for the peer.
    pub(crate) fn force_close(&self, inner: &Inner) {
        let Some(ep) = self.handle() else { return };
        self.ep.set(std::ptr::null_mut());
        if self.failure().is_none() {
            self.failed.set(ucx::CANCELED);
        }
        // SAFETY: `ep` is open and never used again (the handle was cleared).
        if let Ok(Started::Request(request)) = unsafe { inner.api.ep_close(ep, true) } {
            // A forced close is local; it completes without the peer.
            let _ = inner.wait_request(request, None);
        }
    }
}

/// The error for a failed UCX call.
#[cold]
pub(crate) fn error(api: &Api, call: &'static str, status: Status) -> MemError {
    MemError::Ucx {
        call,
        status: i32::from(status),
        name: api.status_name(status),
    }
}

/// Loads the library, resolves the table and checks the version.
#[cold]
fn open() -> Result<Api, MemError> {
    let api = Api::load().map_err(|err| match err {
        LoadError::Library { reason } => MemError::UcxMissing {
            library: LIBRARY,
            reason,
        },
        LoadError::Symbol { symbol, reason } => MemError::UcxSymbolMissing {
            library: LIBRARY,
            symbol,
            reason,
        },
    })?;
    let (major, minor, _) = api.version();
    let (min_major, min_minor) = Engine::MIN_VERSION;
    if (major, minor) < (min_major, min_minor) || major != min_major {
        return Err(MemError::UcxVersion {
            major,
            minor,
            min_major,
            min_minor,
        });
    }
    Ok(api)
}

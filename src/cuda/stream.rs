//! [`Stream`]: a CUDA stream of a context, the queue that batched copies go into.
//!
//! unimem runs no kernels, but it moves bytes between memories, and moving them without
//! stopping the CPU needs a stream: copies are queued on it in order, and the caller waits
//! for or polls their completion ([`InFlight`](super::InFlight)), or orders other work on
//! the GPU after them ([`Stream::wait_for`]).
//!
//! A `Stream` is one of:
//!
//! - made by unimem ([`Context::stream`]): `cuStreamCreate` with `CU_STREAM_NON_BLOCKING`,
//!   destroyed when it drops (the driver lets queued work finish first);
//! - the legacy default stream ([`Context::legacy_stream`], handle 0), which synchronizes
//!   with every blocking stream of the context. `cuMemcpyBatchAsync` refuses it, so copies
//!   on it go one call per range;
//! - the per-thread default stream ([`Context::per_thread_stream`], `CU_STREAM_PER_THREAD`);
//! - a stream someone else made ([`Context::wrap_stream`], e.g. PyTorch's
//!   `torch.cuda.current_stream().cuda_stream`), never destroyed by unimem.
//!
//! Spreading a copy over several copy engines ([`CopyOptions::engines`]) uses helper streams
//! that the `Stream` makes on first use and destroys with itself; the copy forks onto them
//! and joins back with events, so it is still one step of the caller's stream.

use std::fmt;
use std::sync::Mutex;

use super::{Context, CopyOptions};
use crate::error::MemError;
use crate::ffi::cuda::{CuStream, NOT_READY, STREAM_NON_BLOCKING};

/// `CU_STREAM_LEGACY`: the legacy default stream, as an explicit handle (0 means it too).
const LEGACY: usize = 0x1;
/// `CU_STREAM_PER_THREAD`: the calling thread's default stream.
const PER_THREAD: usize = 0x2;

/// A CUDA stream of one [`Context`]: the queue batched copies go into.
///
/// Made by [`Context::stream`] (owned, destroyed on drop), [`Context::legacy_stream`],
/// [`Context::per_thread_stream`] or [`Context::wrap_stream`] (someone else's). It carries
/// the [`CopyOptions`] its copies use ([`with_options`](Stream::with_options)).
///
/// `Stream` is `Send` and `Sync`: the driver API is thread safe, and every call makes the
/// context current on the calling thread first.
///
/// # Examples
///
/// ```no_run
/// use unimem::cuda::{CopyOptions, Driver};
///
/// let context = Driver::load()?.device(0)?.context()?;
/// let stream = context.stream()?.with_options(CopyOptions::new().engines(2));
/// assert!(!stream.is_legacy());
/// stream.synchronize()?; // nothing queued yet: returns at once
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct Stream<'c> {
    context: &'c Context,
    raw: CuStream,
    /// Made by unimem: destroyed on drop.
    owned: bool,
    options: CopyOptions,
    /// Helper streams for [`CopyOptions::engines`], made on first use.
    helpers: Mutex<Vec<CuStream>>,
}

// SAFETY: a stream handle is not tied to a thread: the driver API is thread safe and every
// call makes the context current first. The owned handles are destroyed once, by `Drop`.
unsafe impl Send for Stream<'_> {}
// SAFETY: as above; the helper list is behind a mutex, the rest is immutable.
unsafe impl Sync for Stream<'_> {}

impl Context {
    /// A new stream of this context (`cuStreamCreate`, `CU_STREAM_NON_BLOCKING`: it does not
    /// wait for the legacy default stream), destroyed when it drops.
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if the driver cannot make one.
    pub fn stream(&self) -> Result<Stream<'_>, MemError> {
        let raw = self.create_stream()?;
        Ok(Stream::new(self, raw, true))
    }

    /// The legacy default stream (handle 0) of this context: it waits for, and is waited
    /// for by, every blocking stream. Batched copies cannot use it (the driver refuses it),
    /// so copies on it go one call per range.
    pub fn legacy_stream(&self) -> Stream<'_> {
        Stream::new(self, std::ptr::null_mut(), false)
    }

    /// The per-thread default stream (`CU_STREAM_PER_THREAD`): the calling thread's own
    /// default stream, which does not synchronize with other streams. Batched copies can
    /// use it.
    pub fn per_thread_stream(&self) -> Stream<'_> {
        Stream::new(self, std::ptr::without_provenance_mut(PER_THREAD), false)
    }

    /// A stream someone else made, e.g. PyTorch's (`torch.cuda.current_stream().cuda_stream`),
    /// as a `Stream` that unimem never destroys.
    ///
    /// # Safety
    ///
    /// `raw` is 0, `CU_STREAM_LEGACY` (1), `CU_STREAM_PER_THREAD` (2), or a stream of this
    /// context's device's primary context that stays alive for as long as the returned
    /// `Stream` and every copy queued on it.
    pub unsafe fn wrap_stream(&self, raw: u64) -> Stream<'_> {
        Stream::new(self, std::ptr::without_provenance_mut(raw as usize), false)
    }

    /// `cuStreamCreate(NON_BLOCKING)` in this context.
    fn create_stream(&self) -> Result<CuStream, MemError> {
        let _current = self.enter()?;
        self.api()
            .stream_create(STREAM_NON_BLOCKING)
            .map_err(|code| self.error("cuStreamCreate", code, None))
    }
}

impl<'c> Stream<'c> {
    fn new(context: &'c Context, raw: CuStream, owned: bool) -> Stream<'c> {
        Stream {
            context,
            raw,
            owned,
            options: CopyOptions::new(),
            helpers: Mutex::new(Vec::new()),
        }
    }

    /// The same stream, whose copies use `options`.
    pub fn with_options(mut self, options: CopyOptions) -> Stream<'c> {
        self.options = options;
        self
    }

    /// The options its copies use.
    pub fn options(&self) -> CopyOptions {
        self.options
    }

    /// The context the stream belongs to.
    pub fn context(&self) -> &'c Context {
        self.context
    }

    /// The `CUstream` handle, for other CUDA code (0 for the legacy default stream).
    pub fn raw(&self) -> u64 {
        self.raw as usize as u64
    }

    /// Whether this is the legacy default stream (handle 0 or `CU_STREAM_LEGACY`), which
    /// batched copies cannot use.
    pub fn is_legacy(&self) -> bool {
        matches!(self.raw as usize, 0 | LEGACY)
    }

    /// Waits for everything queued on the stream (`cuStreamSynchronize`).
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if queued work failed or the context cannot be made current.
    pub fn synchronize(&self) -> Result<(), MemError> {
        let _current = self.context.enter()?;
        // SAFETY: the stream is live (owned until `Drop`, or the wrapper's contract).
        unsafe { self.context.api().stream_synchronize(self.raw) }
            .map_err(|code| self.context.error("cuStreamSynchronize", code, None))
    }

    /// Whether everything queued on the stream is done (`cuStreamQuery`), without waiting.
    ///
    /// # Errors
    ///
    /// As [`synchronize`](Stream::synchronize).
    pub fn is_idle(&self) -> Result<bool, MemError> {
        let _current = self.context.enter()?;
        // SAFETY: as in `synchronize`.
        match unsafe { self.context.api().stream_query(self.raw) } {
            Ok(()) => Ok(true),
            Err(NOT_READY) => Ok(false),
            Err(code) => Err(self.context.error("cuStreamQuery", code, None)),
        }
    }

    /// The raw handle.
    pub(crate) fn handle(&self) -> CuStream {
        self.raw
    }

    /// The first `n` helper streams, made now if missing.
    pub(crate) fn helpers(&self, n: usize) -> Result<Vec<CuStream>, MemError> {
        let mut helpers = self
            .helpers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while helpers.len() < n {
            let raw = self.context.create_stream()?;
            helpers.push(raw);
        }
        Ok(helpers[..n].to_vec())
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        let helpers = std::mem::take(
            self.helpers
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if helpers.is_empty() && !self.owned {
            return;
        }
        // A context that cannot be made current cannot destroy: the streams then go with
        // the context (nobody to report to in drop).
        if let Ok(_current) = self.context.enter() {
            let api = self.context.api();
            for raw in helpers {
                // SAFETY: made by `helpers`, destroyed only here; queued work finishes first
                // (the driver defers the release).
                let _ = unsafe { api.stream_destroy(raw) };
            }
            if self.owned {
                // SAFETY: made by `Context::stream`, destroyed only here; as above.
                let _ = unsafe { api.stream_destroy(self.raw) };
            }
        }
    }
}

impl fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("device", &self.context.device().ordinal())
            .field("raw", &format_args!("{:#x}", self.raw()))
            .field("owned", &self.owned)
            .field("options", &self.options)
            .finish()
    }
}

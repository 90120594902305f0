//! `Event`: a CUDA event of a context, destroyed on drop; what a copy in flight is waited on
//! and polled with, and how streams are joined.

use std::fmt;

use super::Context;
use crate::error::MemError;
use crate::ffi::cuda::{CuEvent, CuStream, EVENT_DISABLE_TIMING, NOT_READY};

/// An event created in `context` (`cuEventCreate`, timing disabled: it only marks
/// completion), destroyed (`cuEventDestroy_v2`) when it drops. The driver defers the release
/// of an event still pending, so dropping one early is safe.
pub(crate) struct Event<'c> {
    context: &'c Context,
    raw: CuEvent,
}

// SAFETY: an event handle is not tied to a thread; every call makes the context current on
// the calling thread first, and the handle is destroyed once, by `Drop`.
unsafe impl Send for Event<'_> {}
// SAFETY: as above; `&Event` methods only pass the handle to thread-safe driver calls.
unsafe impl Sync for Event<'_> {}

impl<'c> Event<'c> {
    /// A new event in `context`.
    pub(crate) fn new(context: &'c Context) -> Result<Event<'c>, MemError> {
        let _current = context.enter()?;
        let raw = context
            .api()
            .event_create(EVENT_DISABLE_TIMING)
            .map_err(|code| context.error("cuEventCreate", code, None))?;
        Ok(Event { context, raw })
    }

    /// The handle, for `cuStreamWaitEvent` elsewhere.
    pub(crate) fn raw(&self) -> CuEvent {
        self.raw
    }

    /// `cuEventRecord`: completes when the work queued in `stream` so far has. Returns the
    /// driver's code on failure (the caller decides what it means).
    ///
    /// # Safety
    ///
    /// `stream` is a live stream of this event's context (or a special handle), and this
    /// event's context is current on the calling thread.
    pub(crate) unsafe fn record(&self, stream: CuStream) -> Result<(), i32> {
        // SAFETY: the event is live; the stream is the caller's contract.
        unsafe { self.context.api().event_record(self.raw, stream) }
    }

    /// `cuEventQuery`: whether the captured work is done.
    pub(crate) fn is_done(&self) -> Result<bool, MemError> {
        let _current = self.context.enter()?;
        // SAFETY: the event is live until `Drop`.
        match unsafe { self.context.api().event_query(self.raw) } {
            Ok(()) => Ok(true),
            Err(NOT_READY) => Ok(false),
            Err(code) => Err(self.context.error("cuEventQuery", code, None)),
        }
    }

    /// `cuEventSynchronize`: waits for the captured work.
    pub(crate) fn synchronize(&self) -> Result<(), MemError> {
        let _current = self.context.enter()?;
        // SAFETY: the event is live until `Drop`.
        unsafe { self.context.api().event_synchronize(self.raw) }
            .map_err(|code| self.context.error("cuEventSynchronize", code, None))
    }
}

impl Drop for Event<'_> {
    fn drop(&mut self) {
        if let Ok(_current) = self.context.enter() {
            // SAFETY: made in `new`, destroyed only here; the driver releases it once the
            // work it captured (if any is still queued) is done.
            let _ = unsafe { self.context.api().event_destroy(self.raw) };
        }
    }
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("device", &self.context.device().ordinal())
            .field("raw", &self.raw)
            .finish()
    }
}

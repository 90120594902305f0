//! The release thread: large Blocks unmapped and closed off the caller's path.
//!
//! # Design
//!
//! Freeing a Block's pages costs per page: `munmap` tears down a page-table entry per page
//! and the last `close` frees every page of the file (0.1 s and 0.2 s per GiB of 4 KiB
//! pages on the build machine). For a Block of hundreds of GiB that is seconds to minutes
//! inside a `drop`. So `Mapping::drop` hands a Block of [`BACKGROUND_MIN`] or more over to
//! one thread per process, `unimem-release`, started on first use, and returns at once;
//! the thread unmaps and closes each Block in the order they were dropped. Smaller Blocks,
//! and every Block while the thread cannot be started, are released inline.
//!
//! [`pending`] is the bytes handed over and not yet released (what
//! `Limits::releasing` reports); [`wait`] blocks until it is zero. `Block::open` waits
//! when a new Block does not fit while releases are pending (`specs/scale.md`, "Release").
//!
//! # Why it is correct
//!
//! - The mapping is not reachable any more: the Block that lent out views of it is gone, a
//!   CUDA registration of it was undone synchronously before (the Extent's `Drop`), and
//!   the registry of mapped files and the id were given back; the job owns the range and
//!   the descriptor exclusively, and is the only code that ever touches them again.
//! - Process exit ends the thread wherever it is, and the kernel unmaps and closes what
//!   the process held: nothing outside the process waits for the release.
//! - After `fork`, a child has no release thread although it inherited the queue's state:
//!   the queue remembers the pid whose thread serves it, and a child starts its own
//!   thread (the parent's jobs, inherited as copies, are left to the child's exit).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::ffi::linux as ffi;

/// Blocks at least this large are released on the release thread.
pub(crate) const BACKGROUND_MIN: usize = 256 << 20;

/// One Block to release: the mapping, then the descriptor.
struct Job {
    base: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the job owns the mapping exclusively (module docs); nothing else refers to it,
// so releasing it from another thread is as sound as from the dropping one.
unsafe impl Send for Job {}

impl Job {
    fn run(self) {
        // SAFETY: the job owns the range, which no reference points into (module docs).
        let _ = unsafe { ffi::munmap(self.base, self.len) };
        // `fd` closes here: the file is freed once its last holder lets go.
        drop(self.fd);
    }
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Bytes handed over and not yet released.
    pending: u64,
    /// The process whose release thread serves this queue (0: none started).
    server: u32,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    jobs: VecDeque::new(),
    pending: 0,
    server: 0,
});
/// Signalled when a job is queued.
static QUEUED: Condvar = Condvar::new();
/// Signalled when a job is done.
static DONE: Condvar = Condvar::new();

fn queue() -> MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Releases the mapping `base..base + len` and then `fd`: on the release thread for large
/// Blocks, here otherwise.
///
/// # Safety
///
/// `base..base + len` is a mapping the caller owns and gives up: nothing refers to it,
/// now or later.
pub(crate) unsafe fn release(base: NonNull<u8>, len: usize, fd: OwnedFd) {
    let job = Job { base, len, fd };
    if len < BACKGROUND_MIN {
        return job.run();
    }
    let mut queue = queue();
    let me = std::process::id();
    if queue.server != me {
        // No thread serves this process yet (first use, or a child after `fork`, which
        // inherited the parent's queue but not its thread).
        for inherited in queue.jobs.drain(..) {
            // The parent's jobs: their copies here go with this process's exit.
            std::mem::forget(inherited);
        }
        queue.pending = 0;
        let started = std::thread::Builder::new()
            .name("unimem-release".into())
            .spawn(serve);
        if started.is_err() {
            drop(queue);
            return job.run();
        }
        queue.server = me;
    }
    queue.pending += len as u64;
    queue.jobs.push_back(job);
    drop(queue);
    QUEUED.notify_one();
}

/// The release thread: runs jobs in order, forever (it ends with the process).
fn serve() {
    loop {
        let job = {
            let mut queue = queue();
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                queue = QUEUED.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let len = job.len as u64;
        job.run();
        let mut queue = queue();
        queue.pending = queue.pending.saturating_sub(len);
        drop(queue);
        DONE.notify_all();
    }
}

/// Bytes of dropped Blocks handed to the release thread and not yet released.
pub(crate) fn pending() -> u64 {
    let queue = queue();
    if queue.server == std::process::id() {
        queue.pending
    } else {
        0
    }
}

/// Blocks until every Block dropped so far has been released.
pub(crate) fn wait() {
    let mut queue = queue();
    while queue.pending > 0 && queue.server == std::process::id() {
        queue = DONE.wait(queue).unwrap_or_else(PoisonError::into_inner);
    }
}

//! [`Progress`]: counters that long work adds to while another thread watches.
//!
//! Opening hundreds of GiB takes seconds to minutes, and registering them with CUDA more.
//! A server reports its start-up; a tool draws a bar. Both poll a `Progress` given to
//! [`Builder::progress`](crate::Builder::progress) (and to the CUDA registration options):
//! the work adds its size to a total when it starts and its bytes as they are done. The
//! counters are relaxed atomics: each is exact on its own, and the pair is a snapshot
//! good enough for a bar (`done` is read before `total`, so `done <= total` holds in a
//! snapshot while work is under way).
//!
//! One `Progress` can follow several pieces of work in a row or at once: the counters add
//! up. Work that fails takes back what it added, so a bar never sticks below 100%.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes populated and registered so far, and how many are to be: poll it from another
/// thread while a Block opens or registers.
///
/// ```
/// use std::sync::Arc;
/// use unimem::{Block, Pin, Progress};
///
/// let progress = Arc::new(Progress::new());
/// let block = Block::builder(8 << 20)
///     .pin(Pin::BestEffort)
///     .progress(&progress)
///     .open()?;
/// assert_eq!(progress.populated(), block.size() as u64);
/// assert_eq!(progress.fraction(), 1.0);
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Debug, Default)]
pub struct Progress {
    to_populate: AtomicU64,
    populated: AtomicU64,
    to_register: AtomicU64,
    registered: AtomicU64,
}

impl Progress {
    /// Counters at zero.
    pub fn new() -> Progress {
        Progress::default()
    }

    /// Bytes of Blocks populated (faulted in) so far.
    pub fn populated(&self) -> u64 {
        self.populated.load(Ordering::Relaxed)
    }

    /// Bytes of Blocks being or having been populated.
    pub fn to_populate(&self) -> u64 {
        self.to_populate.load(Ordering::Relaxed)
    }

    /// Bytes registered with a device so far.
    pub fn registered(&self) -> u64 {
        self.registered.load(Ordering::Relaxed)
    }

    /// Bytes being or having been registered.
    pub fn to_register(&self) -> u64 {
        self.to_register.load(Ordering::Relaxed)
    }

    /// All bytes done: populated and registered.
    pub fn done(&self) -> u64 {
        self.populated() + self.registered()
    }

    /// All bytes to do: to populate and to register.
    pub fn total(&self) -> u64 {
        self.to_populate() + self.to_register()
    }

    /// `done / total`, between 0 and 1; 1 when there is nothing to do.
    pub fn fraction(&self) -> f64 {
        let done = self.done();
        match self.total() {
            0 => 1.0,
            total => (done as f64 / total as f64).min(1.0),
        }
    }

    /// Starts a piece of work of `bytes` of the given kind.
    pub(crate) fn start(&self, kind: Work, bytes: u64) {
        self.counters(kind).0.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` of work of the given kind as done.
    pub(crate) fn advance(&self, kind: Work, bytes: u64) {
        self.counters(kind).1.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Takes back a failed piece of work: `bytes` from the total, `done` from what was done.
    pub(crate) fn withdraw(&self, kind: Work, bytes: u64, done: u64) {
        let (total, counted) = self.counters(kind);
        counted.fetch_sub(done, Ordering::Relaxed);
        total.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn counters(&self, kind: Work) -> (&AtomicU64, &AtomicU64) {
        match kind {
            Work::Populate => (&self.to_populate, &self.populated),
            Work::Register => (&self.to_register, &self.registered),
        }
    }
}

/// The two kinds of work a [`Progress`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    Populate,
    #[cfg_attr(
        not(all(feature = "cuda", target_os = "linux", not(miri))),
        allow(dead_code)
    )]
    Register,
}

/// One piece of work followed by an optional `Progress`: counts as it goes, and takes
/// itself back on drop unless it was finished.
#[derive(Debug)]
pub(crate) struct Tracker<'a> {
    progress: Option<&'a Progress>,
    kind: Work,
    bytes: u64,
    done: AtomicU64,
    finished: bool,
}

impl<'a> Tracker<'a> {
    pub(crate) fn start(progress: Option<&'a Progress>, kind: Work, bytes: u64) -> Tracker<'a> {
        if let Some(progress) = progress {
            progress.start(kind, bytes);
        }
        Tracker {
            progress,
            kind,
            bytes,
            done: AtomicU64::new(0),
            finished: false,
        }
    }

    /// Counts `bytes` as done (from any thread).
    pub(crate) fn advance(&self, bytes: u64) {
        if let Some(progress) = self.progress {
            self.done.fetch_add(bytes, Ordering::Relaxed);
            progress.advance(self.kind, bytes);
        }
    }

    /// The work succeeded: counts whatever is left as done and keeps it counted.
    pub(crate) fn finish(mut self) {
        let left = self.bytes.saturating_sub(*self.done.get_mut());
        self.advance(left);
        self.finished = true;
    }
}

impl Drop for Tracker<'_> {
    fn drop(&mut self) {
        if let (Some(progress), false) = (self.progress, self.finished) {
            progress.withdraw(self.kind, self.bytes, *self.done.get_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_work_counts_and_failed_work_withdraws() {
        let progress = Progress::new();
        assert_eq!(progress.fraction(), 1.0);
        let work = Tracker::start(Some(&progress), Work::Populate, 100);
        work.advance(40);
        assert_eq!((progress.populated(), progress.to_populate()), (40, 100));
        assert!((progress.fraction() - 0.4).abs() < 1e-9);
        work.finish();
        assert_eq!((progress.done(), progress.total()), (100, 100));
        let failed = Tracker::start(Some(&progress), Work::Register, 50);
        failed.advance(10);
        assert_eq!((progress.registered(), progress.to_register()), (10, 50));
        drop(failed);
        assert_eq!((progress.done(), progress.total()), (100, 100));
        // No Progress: nothing to count, nothing to panic about.
        Tracker::start(None, Work::Populate, 7).finish();
    }
}

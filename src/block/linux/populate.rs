//! Populating a Block: every page faulted in before `open` returns, by several threads.
//!
//! # Design
//!
//! The cost of creating shmem pages is per page (allocation, zeroing, insertion into the
//! file's page cache, accounting), so the range is split into one page-aligned part per
//! thread, each faulted with `MADV_POPULATE_WRITE` (imports: `MADV_POPULATE_READ`, which
//! only builds page tables) in steps of at least 64 MiB, after each of which a
//! [`Progress`](crate::Progress) is advanced.
//!
//! How many threads (`specs/scale.md`, "Population"): `Builder::threads` if set, else the
//! CPUs this process may use (the node's CPUs when the Block is placed on a node), at most
//! [`BASE_THREADS_MAX`] for base pages, whose creation stops scaling at a few threads (the
//! one file's page cache is updated under per-file locks for every 4 KiB page), and at most
//! [`SCALING_THREADS_MAX`] for huge pages, which have 512 times fewer insertions and scale
//! with cores, and for imports, whose read faults find pages that exist (no allocation, no
//! insertion, a lock-free page-cache lookup); never more than one thread per 32 MiB, and
//! one thread below 64 MiB.
//!
//! # Why it is correct
//!
//! Each thread touches only its own disjoint range of a mapping that outlives the scope
//! in which the threads run (`std::thread::scope`), and no Rust reference to the bytes
//! exists yet: the Block is built only after population. A thread that cannot be started
//! has its range populated by the calling thread; a thread that panics (it cannot: it only
//! makes system calls) would be reported as `EIO`.

use std::ptr::NonNull;

use crate::block::progress::Tracker;
use crate::error::MemError;
use crate::ffi::linux as ffi;

use super::numa;

/// Blocks at least this large are populated by several threads (unless `threads` says).
const PARALLEL_MIN: usize = 64 << 20;
/// Each populating thread gets at least this much.
const PARALLEL_CHUNK: usize = 32 << 20;
/// Automatic thread count for base pages: on the 16-core H200 host, 4 KiB shmem pages
/// populated at 5.3 GB/s on 4 threads and 4.8 GB/s on 16 (issue 12's probe).
pub(crate) const BASE_THREADS_MAX: usize = 4;
/// Automatic thread count for work that scales with cores (huge pages, imports): THP
/// scaled to 41.5 GB/s on 16 threads there.
pub(crate) const SCALING_THREADS_MAX: usize = 64;
/// A `Progress` advances at least this often.
const STEP: usize = 64 << 20;

/// How to fault pages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Populate {
    /// `MADV_POPULATE_WRITE`: a new Block, whose pages do not exist yet; write faults
    /// allocate them ready to be written.
    Write,
    /// `MADV_POPULATE_READ`: an import, whose pages the owner already allocated. Read faults
    /// only build page tables, map up to 16 pages per fault (fault-around), and need no
    /// write access, so they work on `PROT_READ` mappings too; on a writable shared memfd
    /// mapping they map the pages writable (shmem needs no write notification). Measured
    /// on the build machine: 1 GiB in ~0.06 s, against ~0.2 s for `MADV_POPULATE_WRITE`.
    Read,
}

/// Who populates, and where.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan<'a> {
    /// `Builder::threads`: 0 for automatic.
    pub(crate) threads: usize,
    /// The page size in use: ranges and steps are whole pages of it.
    pub(crate) page_size: usize,
    /// The work scales with cores (huge pages, or an import's read faults): a higher
    /// automatic thread count.
    pub(crate) scales: bool,
    /// The node the Block is bound to: threads run on its CPUs.
    pub(crate) node: Option<u32>,
    /// The `Progress` to advance, if any.
    pub(crate) tracker: Option<&'a Tracker<'a>>,
}

impl Plan<'_> {
    /// A plan for an import (or a freeze's relock): automatic threads that scale with
    /// cores, no node, no progress.
    pub(crate) fn import(page_size: usize) -> Plan<'static> {
        Plan {
            threads: 0,
            page_size,
            scales: true,
            node: None,
            tracker: None,
        }
    }
}

/// How many threads populate `len` bytes under `plan`, given `cpus` usable CPUs.
pub(crate) fn thread_count(len: usize, plan: &Plan<'_>, cpus: usize) -> usize {
    let by_size = (len / PARALLEL_CHUNK).max(1);
    let wanted = match plan.threads {
        0 if len < PARALLEL_MIN => 1,
        0 if plan.scales => cpus.min(SCALING_THREADS_MAX),
        0 => cpus.min(BASE_THREADS_MAX),
        n => n,
    };
    wanted.min(by_size).max(1)
}

/// Faults every page of `base..base + len` in, as `plan` says.
pub(crate) fn populate(
    base: NonNull<u8>,
    len: usize,
    with: Populate,
    plan: &Plan<'_>,
) -> Result<(), MemError> {
    let cpus = plan.node.map(numa::cpus_for).unwrap_or_default();
    let usable = match cpus.len() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let threads = thread_count(len, plan, usable);
    let page = plan.page_size.max(crate::page_size());
    let chunk = len.div_ceil(threads).next_multiple_of(page);
    let step = STEP.next_multiple_of(page);
    let mut ranges = (0..len)
        .step_by(chunk)
        .map(|start| (start, chunk.min(len - start)));
    // On the calling thread when one thread will do and no node asks for its CPUs.
    if threads == 1 && cpus.is_empty() {
        return ranges.try_for_each(|(start, n)| populate_range(base, start, n, with, step, plan));
    }
    let at = Address(base);
    let cpus = &cpus;
    std::thread::scope(|scope| {
        let workers: Vec<_> = ranges
            .map(|(start, n)| {
                let spawned = std::thread::Builder::new()
                    .name("unimem-populate".into())
                    .spawn_scoped(scope, move || {
                        if !cpus.is_empty() {
                            // Best effort: the memory is bound to the node either way.
                            let _ = ffi::set_cpu_affinity(cpus);
                        }
                        populate_range(at.get(), start, n, with, step, plan)
                    });
                // A process that may not start threads populates on this one.
                spawned.map_err(|_| populate_range(at.get(), start, n, with, step, plan))
            })
            .collect();
        workers.into_iter().try_for_each(|worker| match worker {
            Ok(handle) => handle.join().unwrap_or(Err(MemError::Os {
                call: populate_call(with),
                errno: libc::EIO,
            })),
            Err(inline) => inline,
        })
    })
}

/// Populates `n` bytes at `base + start`, in steps of `step`, advancing the progress.
fn populate_range(
    base: NonNull<u8>,
    start: usize,
    n: usize,
    with: Populate,
    step: usize,
    plan: &Plan<'_>,
) -> Result<(), MemError> {
    let mut offset = 0;
    while offset < n {
        let len = step.min(n - offset);
        // SAFETY: `start + offset + len <= start + n <= len` of the mapping.
        populate_step(unsafe { base.add(start + offset) }, len, with)?;
        if let Some(tracker) = plan.tracker {
            tracker.advance(len as u64);
        }
        offset += len;
    }
    Ok(())
}

/// Faults `n` bytes at `ptr` in with one `madvise`, retried on `EINTR`/`EAGAIN`.
fn populate_step(ptr: NonNull<u8>, n: usize, with: Populate) -> Result<(), MemError> {
    loop {
        let populated = match with {
            Populate::Write => ffi::populate_write(ptr, n),
            Populate::Read => ffi::populate_read(ptr, n),
        };
        match populated {
            Ok(()) => return Ok(()),
            Err(libc::EINTR | libc::EAGAIN) => continue,
            // Before Linux 5.14: read one byte per page. A read fault on a shared memfd
            // mapping allocates the page (shmem maps no shared zero page), and reading
            // leaves an imported Block's contents alone.
            Err(libc::EINVAL) => {
                let page = crate::page_size();
                for offset in (0..n).step_by(page) {
                    // SAFETY: inside the mapping, which is readable; no `&mut` to it exists
                    // yet (the Block is not built until populating is done).
                    unsafe { ptr.add(offset).read_volatile() };
                }
                return Ok(());
            }
            Err(errno) => {
                return Err(MemError::Os {
                    call: populate_call(with),
                    errno,
                });
            }
        }
    }
}

fn populate_call(with: Populate) -> &'static str {
    match with {
        Populate::Write => "madvise(MADV_POPULATE_WRITE)",
        Populate::Read => "madvise(MADV_POPULATE_READ)",
    }
}

/// The base pointer, carried to populating threads.
#[derive(Clone, Copy)]
struct Address(NonNull<u8>);

// SAFETY: each thread writes only its own disjoint range of a mapping that outlives the
// scope in which the threads run.
unsafe impl Send for Address {}

impl Address {
    fn get(self) -> NonNull<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(threads: usize, scales: bool) -> Plan<'static> {
        Plan {
            threads,
            page_size: 4096,
            scales,
            node: None,
            tracker: None,
        }
    }

    #[test]
    fn thread_counts() {
        const MIB: usize = 1 << 20;
        // Small Blocks: one thread unless asked.
        assert_eq!(thread_count(32 * MIB, &plan(0, false), 16), 1);
        assert_eq!(thread_count(32 * MIB, &plan(4, false), 16), 1);
        // Base pages stop at 4, huge pages go on with the cores.
        assert_eq!(
            thread_count(16 << 30, &plan(0, false), 16),
            BASE_THREADS_MAX
        );
        assert_eq!(thread_count(16 << 30, &plan(0, true), 16), 16);
        assert_eq!(
            thread_count(16 << 30, &plan(0, true), 256),
            SCALING_THREADS_MAX
        );
        // Asked: as many as asked, at most one per 32 MiB.
        assert_eq!(thread_count(16 << 30, &plan(8, false), 2), 8);
        assert_eq!(thread_count(128 * MIB, &plan(16, false), 16), 4);
    }
}

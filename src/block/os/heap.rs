//! Portable backend: an aligned, zeroed heap allocation, never pinned.
//!
//! Used under Miri (which cannot run system calls such as `memfd_create`), so that the code
//! above Block is checked there, and on targets without a native backend. It cannot pin:
//! [`Pin::Required`] fails with [`MemError::PinUnsupported`] except under Miri, where the
//! policy is accepted so that the same tests run, and `is_pinned()` says `false` either way.
//! Base pages only, no NUMA placement, released inline (`specs/scale.md`, platform notes).

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::block::id::Ticket;
use crate::block::progress::{Tracker, Work};
use crate::block::{Access, Builder, HugePages, Pages, Pin};
use crate::error::MemError;

/// Nothing is released in the background here.
pub(crate) fn wait_for_releases() {}

/// Nothing is released in the background here.
pub(crate) fn releasing() -> u64 {
    0
}

pub(crate) struct Mapping {
    base: NonNull<u8>,
    layout: Layout,
    ticket: Ticket,
}

impl Mapping {
    pub(crate) const BACKEND: &'static str = "portable heap";

    pub(crate) fn open(len: usize, builder: &Builder) -> Result<Mapping, MemError> {
        if builder.huge == HugePages::Required {
            return Err(MemError::HugePagesUnavailable {
                requested: len,
                page_size: builder.huge_size,
                free: 0,
                needed: 0,
                shmem_enabled: "not linux",
                node: builder.node,
            });
        }
        if let Some(node) = builder.node {
            return Err(MemError::BadNumaNode {
                node,
                online: String::new(),
                reason: "NUMA placement is Linux only",
            });
        }
        if builder.pin == Pin::Required && !cfg!(miri) {
            return Err(MemError::PinUnsupported {
                backend: Self::BACKEND,
            });
        }
        let page = crate::page_size();
        let layout = Layout::from_size_align(len, page).map_err(|_| MemError::SizeOverflow {
            requested: len,
            granule: page,
        })?;
        let tracker = Tracker::start(builder.progress.as_deref(), Work::Populate, len as u64);
        // SAFETY: `len` is nonzero (checked by the Builder) and the layout is valid.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let base = NonNull::new(ptr).ok_or(MemError::AllocFailed { requested: len })?;
        tracker.finish();
        Ok(Mapping {
            base,
            layout,
            ticket: Ticket::take(),
        })
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    pub(crate) fn id(&self) -> u32 {
        self.ticket.id()
    }

    pub(crate) fn is_pinned(&self) -> bool {
        false
    }

    pub(crate) fn pages(&self) -> Pages {
        Pages::Base
    }

    pub(crate) fn page_size(&self) -> usize {
        crate::page_size()
    }

    pub(crate) fn numa_node(&self) -> Option<u32> {
        None
    }

    /// Heap Blocks are only ever opened by their owner, never imported.
    pub(crate) fn access(&self) -> Access {
        Access::ReadWrite
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: allocated in `open` with this very layout; the Block that lent out views
        // is being dropped, so no reference into it is alive.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_required_is_unsupported_outside_miri() {
        let required = Mapping::open(
            crate::page_size(),
            &crate::Block::builder(1).pin(Pin::Required),
        );
        if cfg!(miri) {
            // Under Miri the policy is accepted so that the same tests run (module docs).
            assert!(required.is_ok_and(|map| !map.is_pinned()));
        } else {
            assert!(matches!(
                required,
                Err(MemError::PinUnsupported {
                    backend: "portable heap"
                })
            ));
        }
        let best = Mapping::open(
            crate::page_size(),
            &crate::Block::builder(1).pin(Pin::BestEffort),
        )
        .unwrap();
        assert!(!best.is_pinned());
        assert_eq!(best.len(), crate::page_size());
    }

    #[test]
    fn huge_pages_and_numa_nodes_are_refused_off_linux() {
        let page = crate::page_size();
        let builder = crate::Block::builder(1).pin(Pin::BestEffort);
        // Required cannot be met here: refused before anything is allocated.
        let required = Mapping::open(page, &builder.clone().huge_pages(HugePages::Required));
        assert!(
            matches!(
                required,
                Err(MemError::HugePagesUnavailable {
                    requested,
                    free: 0,
                    shmem_enabled: "not linux",
                    node: None,
                    ..
                }) if requested == page
            ),
            "{:?}",
            required.err()
        );
        // Try gives base pages.
        let tried = Mapping::open(page, &builder.clone().huge_pages(HugePages::Try)).unwrap();
        assert_eq!((tried.pages(), tried.page_size()), (Pages::Base, page));
        // A NUMA node, even 0, is Linux only.
        assert!(matches!(
            Mapping::open(page, &builder.numa_node(0)),
            Err(MemError::BadNumaNode { node: 0, .. })
        ));
    }

    // Miri reports an allocation this large as resource exhaustion instead of returning
    // null, so this one runs natively only (on Linux through `block::heap_backend`).
    #[cfg(not(miri))]
    #[test]
    fn an_allocation_the_heap_refuses_is_alloc_failed() {
        // 4 EiB: a valid layout (below isize::MAX) that no address space can hold.
        let huge = 1 << 62;
        assert!(matches!(
            Mapping::open(huge, &crate::Block::builder(1).pin(Pin::BestEffort)),
            Err(MemError::AllocFailed { requested }) if requested == huge
        ));
    }
}

//! Block ids: small numbers, unique among the live Blocks of this process.
//!
//! The Linux and heap backends take the next free number ([`Ticket::take`]). The Apple
//! backend claims the surface's own `IOSurfaceID` ([`Ticket::claim`]): the same registry
//! then refuses a second Block over a surface that a live Block of this process already
//! holds, which would alias its bytes.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// The ids in use and the next one to try. Opening a Block is a slow path (system calls),
/// so a mutex costs nothing measurable; it buys ids that stay unique even after the
/// counter wraps, which a bare atomic counter cannot promise.
static IDS: Mutex<Ids> = Mutex::new(Ids {
    next: 1,
    live: BTreeSet::new(),
});

struct Ids {
    next: u32,
    live: BTreeSet<u32>,
}

/// A claimed id, given back when dropped.
#[derive(Debug)]
pub(crate) struct Ticket(u32);

impl Ticket {
    /// Claims the next free nonzero id.
    #[cfg_attr(all(target_os = "macos", not(miri)), allow(dead_code))]
    pub(crate) fn take() -> Ticket {
        let mut ids = IDS.lock().unwrap_or_else(|poison| poison.into_inner());
        loop {
            let id = ids.next;
            ids.next = ids.next.checked_add(1).unwrap_or(1);
            // At most 2^32 - 1 Blocks can be live: a process cannot map that many.
            if ids.live.insert(id) {
                return Ticket(id);
            }
        }
    }

    /// Claims `id` itself, or `None` if a live Block holds it (or `id` is 0).
    #[cfg_attr(not(all(target_os = "macos", not(miri))), allow(dead_code))]
    pub(crate) fn claim(id: u32) -> Option<Ticket> {
        let mut ids = IDS.lock().unwrap_or_else(|poison| poison.into_inner());
        // A Ticket is made only when the id was inserted: dropping one here would give back
        // an id that another Block holds (and lock `IDS` again).
        if id != 0 && ids.live.insert(id) {
            Some(Ticket(id))
        } else {
            None
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.0
    }
}

/// How many ids are live: the fault-injection tests' check that an error path gave its id
/// back (`fault::live_ids`).
#[cfg(feature = "fault-injection")]
pub(crate) fn live() -> usize {
    IDS.lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .live
        .len()
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut ids = IDS.lock().unwrap_or_else(|poison| poison.into_inner());
        ids.live.remove(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_ids_are_unique_and_nonzero() {
        let tickets: Vec<Ticket> = (0..100).map(|_| Ticket::take()).collect();
        let ids: BTreeSet<u32> = tickets.iter().map(Ticket::id).collect();
        assert_eq!(ids.len(), tickets.len());
        assert!(!ids.contains(&0));
    }

    #[test]
    fn wrapping_skips_live_ids() {
        let held = Ticket::take();
        {
            let mut ids = IDS.lock().unwrap();
            ids.next = held.id();
        }
        let next = Ticket::take();
        assert_ne!(next.id(), held.id());
        assert_ne!(next.id(), 0);
    }

    #[test]
    fn claims_are_exclusive() {
        // Far above the ids other tests take from the counter.
        let id = u32::MAX - 7;
        let claimed = Ticket::claim(id).unwrap();
        assert_eq!(claimed.id(), id);
        assert!(Ticket::claim(id).is_none());
        assert!(Ticket::claim(0).is_none());
        drop(claimed);
        assert!(Ticket::claim(id).is_some());
    }
}

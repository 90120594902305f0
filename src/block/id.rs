//! Block ids: small numbers, unique among the live Blocks of this process.

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

    pub(crate) fn id(&self) -> u32 {
        self.0
    }
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
}

//! Cells lent to a device copy: while a copy engine reads or writes detached cells, the ids
//! that name them are suspended, so that no safe view of those bytes can be made.
//!
//! # Design
//!
//! A batched copy (`crate::cuda`, feature `cuda`) names cells by [`CellId`]. Before it queues
//! anything, [`Grid::lend`] moves each cell's generation `g` to `g | IN_FLIGHT` with a
//! compare-exchange from the id's value (`list.rs`); when the copy has completed,
//! [`Grid::give_back`] moves it back to `g`. In between:
//!
//! - every copy of the id is refused by every operation that ends its use or makes a view
//!   (`release`, `claim`, `cell`, `cell_mut`, `GridLane::release`) with
//!   [`MemError::CellInFlight`]: the generation differs from the id's;
//! - the cell is on no free list and owned by no `Cell`, so nothing else can reach it;
//! - a [`Grid::clear`] (which needs `&mut Grid`, so it can only happen if the copy's guard
//!   was leaked) leaves the cell out of the free list, lent for ever.
//!
//! After `give_back` the same ids are current again: the block table that named the cells
//! goes on naming them.
//!
//! # Why it is correct
//!
//! - **Only the id's holders lend.** The compare-exchange succeeds only from the id's
//!   current generation, so only a current id can lend its cell, and of two copies racing
//!   for the same cell exactly one wins (the other sees `g | IN_FLIGHT`: `CellInFlight`).
//! - **Suspending instead of ending.** Generations otherwise never repeat, so that a stale
//!   id can never become current again. Here the old value does come back, on purpose: while
//!   lent, nobody can own the cell (not on a free list, no `Cell`, no current id), so handing
//!   it back to the holders of `g` gives it to the owners it had before, and to nobody else.
//! - **Repeats.** A copy that only reads its cells may name one twice (the same host cell
//!   to two device places): the second compare-exchange finds `g | IN_FLIGHT`, and a lookup
//!   of the entries lent so far tells that this copy did it; the cell is lent once. A copy
//!   that writes its cells refuses a repeat (`CopyOverlap`): two device sources would race
//!   for one cell.
//! - **Orderings.** Lending is `Acquire`. Giving back is a `Release` store, made after the
//!   copy's completion was observed on this thread (the driver makes the device's writes
//!   visible to it); a plain store, because nothing else writes a lent generation (every
//!   other writer compare-exchanges from a value without the flag, and fails, and a clear
//!   skips it). Every later use of the id (`check` and `end`, `Acquire`) then sees the bytes
//!   the device wrote.
//! - **Failure.** If anything fails part way, what was lent so far is given back before the
//!   error returns: nothing stays lent by a failed call.

use std::collections::HashMap;

use super::list::IN_FLIGHT;
use super::{CellId, Grid};
use crate::error::MemError;
use crate::sync::Ordering;

/// The cells one device copy borrowed from a Grid, each once, with the generation its ids
/// hold. Given back with [`Grid::give_back`]; dropping it without does nothing (the cells
/// stay lent: the safe outcome when the copy's completion is unknown).
#[derive(Debug, Default)]
pub(crate) struct Lent {
    /// (index, generation, entry of the list that lent it).
    cells: Vec<(u32, u64, usize)>,
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
impl Lent {
    /// How many distinct cells are lent.
    pub(crate) fn len(&self) -> usize {
        self.cells.len()
    }
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
impl Grid {
    /// Lends the cells `ids` name to a device copy, in list order: O(n), one
    /// compare-exchange per id (plus a hash lookup per repeat). `repeats`: whether an id may
    /// appear more than once (the copy only reads the cells).
    ///
    /// # Errors
    ///
    /// Nothing stays lent on an error.
    ///
    /// - [`ForeignCell`](MemError::ForeignCell), [`StaleCell`](MemError::StaleCell): as
    ///   [`release`](Grid::release);
    /// - [`CellInFlight`](MemError::CellInFlight): another copy has the cell;
    /// - [`CopyOverlap`](MemError::CopyOverlap) (`device: false`): a repeat where `repeats`
    ///   is false; `first` and `second` are the entries.
    pub(crate) fn lend(
        &self,
        ids: impl Iterator<Item = CellId>,
        repeats: bool,
    ) -> Result<Lent, MemError> {
        let mut lent = Lent {
            cells: Vec::with_capacity(ids.size_hint().0),
        };
        // Built on the first conflict only: index -> the entry that lent it.
        let mut seen: Option<HashMap<u32, usize>> = None;
        for (entry, id) in ids.enumerate() {
            let generation = match self.generation(id) {
                Ok(generation) => generation,
                Err(err) => return Err(self.refuse(lent, err)),
            };
            match generation.compare_exchange(
                id.generation(),
                id.generation() | IN_FLIGHT,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    lent.cells.push((id.index(), id.generation(), entry));
                    if let Some(seen) = &mut seen {
                        seen.entry(id.index()).or_insert(entry);
                    }
                }
                Err(now) if now == id.generation() | IN_FLIGHT => {
                    let seen = seen.get_or_insert_with(|| {
                        let mut seen = HashMap::with_capacity(lent.cells.len());
                        for &(index, _, entry) in &lent.cells {
                            seen.entry(index).or_insert(entry);
                        }
                        seen
                    });
                    match seen.get(&id.index()) {
                        Some(_) if repeats => {}
                        Some(&first) => {
                            let err = MemError::CopyOverlap {
                                first,
                                second: entry,
                                device: false,
                            };
                            return Err(self.refuse(lent, err));
                        }
                        None => {
                            let err = self.stale(id, now);
                            return Err(self.refuse(lent, err));
                        }
                    }
                }
                Err(now) => {
                    let err = self.stale(id, now);
                    return Err(self.refuse(lent, err));
                }
            }
        }
        Ok(lent)
    }

    /// Gives the lent cells back: their ids are current again. Call only once the device no
    /// longer touches them (the copy completed and this thread observed it).
    pub(crate) fn give_back(&self, lent: Lent) {
        for (index, generation, _) in lent.cells {
            if let Some(atomic) = self.list.generation(index) {
                // A plain store: nothing but this `Lent` writes a lent generation (every
                // other writer compare-exchanges from a value without the flag, and fails).
                atomic.store(generation, Ordering::Release);
            }
        }
    }

    /// Gives back what was lent so far and returns `err`.
    #[cold]
    fn refuse(&self, lent: Lent, err: MemError) -> MemError {
        self.give_back(lent);
        err
    }
}

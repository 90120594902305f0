//! [`GridLane`]: a per-thread cache of free cells that takes and gives without atomic
//! read-modify-writes, refilling from and spilling to the Grid's shared stack `batch` cells
//! at a time.
//!
//! # Design
//!
//! The lane owns an array of `2 * batch` cell indices, allocated when it is made, used as a
//! stack (`len` of them cached). A take pops the array's top; when the array is empty, the
//! cold path pops up to `batch` cells from the shared stack with one compare-exchange
//! ([`FreeList::pop_chain`](super::list::FreeList::pop_chain)). A give pushes onto the
//! array; when it is full, the cold path pushes the `batch` oldest cached cells to the
//! shared stack with one compare-exchange (linked first) and keeps the `batch` most recent
//! ones, which are likelier to be in cache. Dropping the lane pushes everything it caches
//! with one compare-exchange.
//!
//! # Why it is correct
//!
//! Cached cells are owned by the lane: they left the shared stack through a successful pop
//! (so nobody else got them), a give (a consumed Cell) or a release (a won
//! compare-exchange of the generation), and the array is reached only through `&mut
//! GridLane`. A take from the cache makes an ordinary Cell (it may be given to the Grid or
//! to any lane of the same Grid); takes and gives touch neither the generation nor the
//! shared stack. The lane is `Send` (its cells move with it) but not `Sync`.

use std::fmt;
use std::marker::PhantomData;

use super::{Cell, CellId, Grid};
use crate::error::MemError;

/// A per-thread cache of a [`Grid`]'s free cells: takes and gives touch only a local
/// array, and the shared free list is visited once per `batch` cells.
///
/// Made by [`Grid::lane`]. The Cells it hands out are ordinary Cells borrowing the Grid
/// (`'g`), not the lane: they may outlive it, and be given to the Grid or to another lane.
///
/// # Sizing `batch`
///
/// A refill or a spill is one compare-exchange on the shared head (the contended cache
/// line) for `batch` cells, so the larger `batch`, the rarer the contention. But a lane
/// caches up to `2 * batch` cells that other threads cannot take, and which
/// [`Grid::free`] counts as in use: with `t` lanes, up to `2 * t * batch` cells sit in
/// caches. 32 to 64 suits a Grid of thousands of cells; `batch` is capped at the Grid's
/// cell count and at [`GridLane::MAX_BATCH`], and 0 makes the lane a pass-through to the
/// shared stack.
///
/// `GridLane` is `Send` (move it to the thread that uses it) but not `Sync`:
///
/// ```compile_fail,E0277
/// fn shared<T: Sync>(_: &T) {}
/// let grid = unimem::Grid::new(64, 16).unwrap();
/// shared(&grid.lane(4));
/// ```
///
/// # Examples
///
/// ```
/// use unimem::Grid;
///
/// let grid = Grid::new(4096, 256)?;
/// std::thread::scope(|s| {
///     for t in 0..4u32 {
///         let mut lane = grid.lane(16);
///         s.spawn(move || {
///             for _ in 0..1000 {
///                 let mut cell = lane.take().unwrap();
///                 cell.as_slice_mut::<u32>()[0] = t;
///                 lane.give(cell).unwrap();
///             }
///         });
///     }
/// });
/// assert_eq!(grid.free(), 256); // the lanes gave their caches back
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct GridLane<'g> {
    grid: &'g Grid,
    /// Cached free cells; `cache[..len]` are valid, the most recently freed last.
    cache: Box<[u32]>,
    len: usize,
    batch: usize,
    /// Send, not Sync.
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl<'g> GridLane<'g> {
    /// The largest `batch`: a refill walks `batch` links before its one compare-exchange,
    /// and the cache is `8 * batch` bytes, allocated when the lane is made.
    pub const MAX_BATCH: usize = 1 << 16;

    pub(super) fn new(grid: &'g Grid, batch: usize) -> GridLane<'g> {
        GridLane {
            grid,
            cache: vec![0; 2 * batch].into_boxed_slice(),
            len: 0,
            batch,
            _not_sync: PhantomData,
        }
    }

    /// Takes a free cell: the most recently cached one, or, with the cache empty, one of
    /// `batch` popped from the shared stack at once. `None` if the shared stack is empty
    /// too (other lanes may still cache free cells).
    ///
    /// ```
    /// let grid = unimem::Grid::new(64, 64)?;
    /// let mut lane = grid.lane(8);
    /// let cell = lane.take().unwrap();
    /// assert_eq!(lane.cached(), 7);
    /// assert_eq!(grid.free(), 56);
    /// lane.give(cell)?;
    /// assert_eq!(lane.cached(), 8);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline]
    pub fn take(&mut self) -> Option<Cell<'g>> {
        if self.len == 0 && !self.refill() {
            return self.pass_through();
        }
        self.len -= 1;
        Some(Cell::new(self.grid, self.cache[self.len]))
    }

    /// [`take`](GridLane::take), saying why not.
    ///
    /// # Errors
    ///
    /// [`GridFull`](MemError::GridFull): the cache and the shared stack are empty.
    #[inline]
    pub fn try_take(&mut self) -> Result<Cell<'g>, MemError> {
        self.take().ok_or_else(|| self.grid.full())
    }

    /// Gives `cell` back into the cache (spilling `batch` cells to the shared stack if the
    /// cache is full).
    ///
    /// # Errors
    ///
    /// [`ForeignCell`](MemError::ForeignCell): the cell belongs to another Grid; it goes back
    /// to its own Grid.
    #[inline]
    pub fn give(&mut self, cell: Cell<'_>) -> Result<(), MemError> {
        if !std::ptr::eq(cell.grid(), self.grid) {
            return Err(self.grid.foreign(cell.grid().id));
        }
        let index = cell.index();
        std::mem::forget(cell);
        self.cache_one(index);
        Ok(())
    }

    /// Releases the cell `id` names into the cache: [`Grid::release`], without touching
    /// the shared stack unless the cache is full.
    ///
    /// # Errors
    ///
    /// As [`Grid::release`].
    pub fn release(&mut self, id: CellId) -> Result<(), MemError> {
        self.grid.end(id)?;
        self.cache_one(id.index());
        Ok(())
    }

    /// Cells in the cache now.
    pub fn cached(&self) -> usize {
        self.len
    }

    /// Cells moved per refill or spill (the cache holds up to twice as many).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The Grid this lane takes from.
    pub fn grid(&self) -> &'g Grid {
        self.grid
    }

    /// Puts the free cell `index` (owned by the caller) into the cache.
    #[inline(always)]
    fn cache_one(&mut self, index: u32) {
        if self.len == self.cache.len() {
            return self.spill_and_cache(index);
        }
        self.cache[self.len] = index;
        self.len += 1;
    }

    /// The cold half of a take: pops up to `batch` cells from the shared stack with one
    /// compare-exchange. Whether it got any.
    #[cold]
    #[inline(never)]
    fn refill(&mut self) -> bool {
        let got = self.grid.list.pop_chain(&mut self.cache[..self.batch]);
        // Popped top first; the top must be taken first, so it goes last.
        self.cache[..got].reverse();
        self.len = got;
        got != 0
    }

    /// A take with no cache (`batch == 0`) or nothing to refill from: the shared stack.
    #[cold]
    #[inline(never)]
    fn pass_through(&self) -> Option<Cell<'g>> {
        if self.batch != 0 {
            return None;
        }
        self.grid.take()
    }

    /// The cold half of a give: the cache is full. Pushes its `batch` oldest cells to the
    /// shared stack with one compare-exchange, keeps the newest, then caches `index`. With
    /// no cache, pushes `index` alone.
    #[cold]
    #[inline(never)]
    fn spill_and_cache(&mut self, index: u32) {
        if self.batch == 0 {
            return self.grid.list.push_one(index);
        }
        self.grid.list.push_chain(&self.cache[..self.batch]);
        self.cache.copy_within(self.batch.., 0);
        self.len -= self.batch;
        self.cache[self.len] = index;
        self.len += 1;
    }
}

impl Drop for GridLane<'_> {
    /// Gives every cached cell back to the shared stack, with one compare-exchange.
    fn drop(&mut self) {
        self.grid.list.push_chain(&self.cache[..self.len]);
    }
}

impl fmt::Debug for GridLane<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GridLane")
            .field("grid", &self.grid.id)
            .field("batch", &self.batch)
            .field("cached", &self.len)
            .finish()
    }
}

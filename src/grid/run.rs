//! [`Run`]: several neighbouring cells taken at once, so that they are one range of the
//! Block: one copy moves them to a device, one slice views them.
//!
//! # Design
//!
//! The free list is a stack; right after a Grid is made or cleared it holds the cells in
//! index order, lowest on top, and a run given back goes back the same way. So the top `n`
//! cells are often neighbours. [`Grid::take_run`] walks the top `n` links and, if they are
//! `n` consecutive indices (ascending or descending from the top), pops them with one
//! compare-exchange, like a GridLane's refill; otherwise it changes nothing and returns
//! `None`. [`Grid::sort_free_list`] (`&mut`, O(cells)) relinks the free cells in index order
//! when churn has scattered them. A dropped [`Run`] pushes its cells back with one
//! compare-exchange, lowest on top, so the next `take_run` of the same length finds them.
//!
//! # Why it is correct
//!
//! The walk and the compare-exchange are those of the batch pop (`list.rs`): the
//! compare-exchange succeeds only if no pop happened since the head was read (the tag), so
//! the walked cells were on the stack all along and are now this Run's alone. A `Run` owns
//! its cells as a `Cell` owns one: it borrows the Grid, is not `Copy`, and gives them back
//! on drop; its byte views need `&mut self` (or `&self` for a shared one).

use std::fmt;

use bytemuck::Pod;

use super::{Cell, Grid, view_len};

impl Grid {
    /// Takes `n` cells that lie next to each other in the Block, if the free list allows
    /// it: if its top `n` cells are neighbours (as after [`new`](Grid::new),
    /// [`clear`](Grid::clear), [`sort_free_list`](Grid::sort_free_list), or a dropped Run of
    /// the same length). Otherwise, or if fewer than `n` cells are free (or `n` is 0),
    /// `None`, and nothing changes.
    ///
    /// Lock-free: a walk of `n` links and one compare-exchange. A Run is the unit that
    /// moves to a device in one copy, and its ids, next to each other in a block table, are
    /// coalesced into one copy by the batched copies (`unimem::cuda`).
    ///
    /// ```
    /// let grid = unimem::Grid::new(4096, 16)?;
    /// let mut run = grid.take_run(4).unwrap();
    /// assert_eq!((run.first(), run.len()), (0, 4));
    /// assert_eq!(run.bytes().len(), 4 * 4096);
    /// assert_eq!(grid.in_use(), 4);
    /// let ids: Vec<_> = run.into_cells().map(|cell| cell.into_id()).collect();
    /// assert_eq!(ids[3].index(), 3);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn take_run(&self, n: usize) -> Option<Run<'_>> {
        let n = u32::try_from(n).ok().filter(|&n| n <= self.cells)?;
        let first = self.list.pop_run(n)?;
        Some(Run {
            grid: self,
            first,
            len: n,
        })
    }

    /// Relinks the free cells in index order, lowest on top, so that
    /// [`take_run`](Grid::take_run) and plain takes hand out neighbours again after churn
    /// scattered them. O(cells), with a bitmap of `total() / 8` bytes allocated for the
    /// call; returns `false`, changing nothing, if it cannot be allocated. Cells in use are
    /// not touched; `&mut self` proves that nothing takes or gives meanwhile.
    ///
    /// ```
    /// let mut grid = unimem::Grid::new(64, 8)?;
    /// let [a, b, c, d] = [(); 4].map(|_| grid.take().unwrap());
    /// drop(a);
    /// drop(c);
    /// drop(b);
    /// drop(d); // the free list is now 3, 1, 2, 0, 4, 5, 6, 7
    /// assert!(grid.take_run(2).is_none());
    /// assert!(grid.sort_free_list());
    /// assert_eq!(grid.take_run(2).unwrap().first(), 0);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn sort_free_list(&mut self) -> bool {
        self.list.sort()
    }
}

/// Neighbouring cells of a [`Grid`], owned together: `len()` cells from index `first()`,
/// one range of the Block ([`offset`](Run::offset), [`size`](Run::size)).
///
/// Made by [`Grid::take_run`]. Dropping it gives every cell back (one compare-exchange);
/// [`into_cells`](Run::into_cells) splits it into ordinary [`Cell`]s (to detach them as
/// ids for a block table). `Run` is `Send` and `Sync`, like `Cell`.
pub struct Run<'g> {
    grid: &'g Grid,
    first: u32,
    len: u32,
}

impl<'g> Run<'g> {
    /// The index of the first (lowest) cell.
    pub fn first(&self) -> u32 {
        self.first
    }

    /// The number of cells (at least 1).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// The offset of the first cell from the Block's first byte.
    pub fn offset(&self) -> usize {
        self.grid.offset + self.first as usize * self.grid.stride
    }

    /// Bytes in the run: `len() * grid.cell_size()`.
    pub fn size(&self) -> usize {
        self.len as usize * self.grid.stride
    }

    /// The first byte of the first cell; valid for `size()` bytes while the Run lives.
    /// Writes through it must store initialized bytes only (see [`Cell::address`]).
    pub fn address(&self) -> *mut u8 {
        self.grid.address(self.first)
    }

    /// The Grid the cells belong to.
    pub fn grid(&self) -> &'g Grid {
        self.grid
    }

    /// Every byte of the run, as one slice. Safe: the Run owns the cells and `&mut self`
    /// makes this the only view.
    pub fn bytes(&mut self) -> &mut [u8] {
        self.as_slice_mut()
    }

    /// The run as a slice of as many whole `T`s as fit. Zero-sized types and alignments
    /// above 64 are compile-time errors.
    pub fn as_slice_mut<T: Pod>(&mut self) -> &mut [T] {
        let len = view_len::<T>(self.size());
        // SAFETY: the run is `size()` bytes inside the Grid's take (its cells are
        // consecutive, `stride` apart), aligned to at least 64 bytes, initialized (Grid
        // module docs) and owned by this Run alone; `&mut self` keeps the view unique.
        unsafe { std::slice::from_raw_parts_mut(self.address().cast::<T>(), len) }
    }

    /// The run as a shared slice of as many whole `T`s as fit.
    pub fn as_slice<T: Pod>(&self) -> &[T] {
        let len = view_len::<T>(self.size());
        // SAFETY: as in `as_slice_mut`, for reads; mutable views need `&mut self`.
        unsafe { std::slice::from_raw_parts(self.address().cast::<T>(), len) }
    }

    /// Splits the run into its cells, in index order. Cells not yet taken from the iterator
    /// go back to the Grid when it drops.
    pub fn into_cells(self) -> RunCells<'g> {
        let run = std::mem::ManuallyDrop::new(self);
        RunCells {
            grid: run.grid,
            next: run.first,
            end: run.first + run.len,
        }
    }
}

impl Drop for Run<'_> {
    /// Gives every cell back, lowest on top (one compare-exchange).
    fn drop(&mut self) {
        self.grid.list.push_run(self.first, self.len);
    }
}

impl fmt::Debug for Run<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("grid", &self.grid.id)
            .field("first", &self.first)
            .field("len", &self.len)
            .field("offset", &self.offset())
            .finish()
    }
}

/// The cells of a [`Run`], in index order ([`Run::into_cells`]); those not taken go back to
/// the Grid when it drops.
pub struct RunCells<'g> {
    grid: &'g Grid,
    next: u32,
    end: u32,
}

impl<'g> Iterator for RunCells<'g> {
    type Item = Cell<'g>;

    fn next(&mut self) -> Option<Cell<'g>> {
        if self.next == self.end {
            return None;
        }
        let index = self.next;
        self.next += 1;
        Some(Cell::new(self.grid, index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end - self.next) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for RunCells<'_> {}

impl Drop for RunCells<'_> {
    fn drop(&mut self) {
        self.grid.list.push_run(self.next, self.end - self.next);
    }
}

impl fmt::Debug for RunCells<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunCells")
            .field("grid", &self.grid.id)
            .field("next", &self.next)
            .field("end", &self.end)
            .finish()
    }
}

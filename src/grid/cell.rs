//! [`Cell`]: the sole owner of one cell of a [`Grid`], and [`CellId`]: a cell detached from
//! its borrow, for block tables.

use std::fmt;
use std::mem::ManuallyDrop;

use bytemuck::Pod;

use super::Grid;
use crate::sync::Ordering;

/// One cell of a [`Grid`], owned: its bytes are this Cell's alone until it is given back.
///
/// Made by [`Grid::take`], [`GridLane::take`](crate::GridLane::take) and [`Grid::claim`].
/// Dropping it gives the cell back to the Grid's shared free list; [`Grid::give`] and
/// [`GridLane::give`](crate::GridLane::give) do the same, checking that it is theirs.
/// [`into_id`](Cell::into_id) detaches it as a [`CellId`].
///
/// A Cell borrows its Grid (`'g`), so it cannot outlive it. `Cell` is `Send` and `Sync`:
/// `&Cell` gives only shared views and addresses.
///
/// ```
/// let grid = unimem::Grid::new(256, 8)?;
/// let mut cell = grid.take().unwrap();
/// cell.bytes()[..5].copy_from_slice(b"hello");
/// assert_eq!(&cell.as_slice::<u8>()[..5], b"hello");
/// assert_eq!(cell.bytes().len(), 256);
/// assert_eq!(grid.cell_offset(cell.index()), Some(cell.offset()));
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct Cell<'g> {
    grid: &'g Grid,
    index: u32,
}

impl<'g> Cell<'g> {
    /// The Cell for `index`, which the caller has just taken (no id holds its generation).
    #[inline(always)]
    pub(super) fn new(grid: &'g Grid, index: u32) -> Cell<'g> {
        Cell { grid, index }
    }

    /// The cell's index, `0..grid.total()`: dense, so a block table can store it, and a
    /// device can compute the cell's offset as `cell_offset(0) + index * cell_size()`.
    #[inline]
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The cell's first byte, aligned to [`Grid::cell_align`]: valid for reads and writes
    /// of [`size()`](Cell::size) bytes while this Cell lives.
    ///
    /// Writing through it is `unsafe`; such writes must store initialized bytes only (no
    /// `MaybeUninit::uninit()`, no padding of a copied struct), because the cell's next owner
    /// may read them through a safe view. [`bytes`](Cell::bytes) and
    /// [`as_slice_mut`](Cell::as_slice_mut) are the safe ways in.
    #[inline]
    pub fn address(&self) -> *mut u8 {
        self.grid.address(self.index)
    }

    /// The cell's offset from the first byte of the Grid's Block: the address other
    /// processes and devices use (theirs is their base plus this offset).
    #[inline]
    pub fn offset(&self) -> usize {
        self.grid.offset + self.index as usize * self.grid.stride
    }

    /// Bytes in the cell: [`Grid::cell_size`].
    #[inline]
    pub fn size(&self) -> usize {
        self.grid.stride
    }

    /// The Grid this cell belongs to.
    #[inline]
    pub fn grid(&self) -> &'g Grid {
        self.grid
    }

    /// The whole cell's bytes. Safe: the Cell is the cell's sole owner and `&mut self` makes
    /// this the only view.
    #[inline]
    pub fn bytes(&mut self) -> &mut [u8] {
        self.as_slice_mut()
    }

    /// The cell as a slice of as many whole `T`s as fit. Zero-sized types and alignments
    /// above 64 are compile-time errors.
    #[inline]
    pub fn as_slice_mut<T: Pod>(&mut self) -> &mut [T] {
        // SAFETY: the Cell owns the cell exclusively, and `&mut self` keeps this the only
        // view for the slice's life.
        unsafe { self.grid.view_mut(self.index) }
    }

    /// The cell as a shared slice of as many whole `T`s as fit.
    #[inline]
    pub fn as_slice<T: Pod>(&self) -> &[T] {
        // SAFETY: the Cell owns the cell exclusively; mutable views need `&mut self`, so
        // none is alive while this shared one is.
        unsafe { self.grid.view(self.index) }
    }

    /// Detaches the cell from this borrow: a [`CellId`] (a small `Copy` value) that block
    /// tables can keep across steps. The cell stays in use until
    /// [`Grid::release`] (or [`Grid::claim`], or [`Grid::clear`]).
    #[inline]
    pub fn into_id(self) -> CellId {
        let this = ManuallyDrop::new(self);
        let generation = this
            .grid
            .list
            .generation(this.index)
            .map_or(0, |generation| {
                // Nobody writes it while a Cell owns the cell (module docs); the pop that
                // handed the cell out synchronized with the last write.
                generation.load(Ordering::Relaxed)
            });
        CellId {
            grid: this.grid.id,
            generation,
            index: this.index,
        }
    }
}

impl Drop for Cell<'_> {
    /// Gives the cell back to the Grid's shared free list.
    #[inline]
    fn drop(&mut self) {
        self.grid.list.push_one(self.index);
    }
}

impl fmt::Debug for Cell<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cell")
            .field("grid", &self.grid.id)
            .field("index", &self.index)
            .field("offset", &self.offset())
            .field("address", &self.address())
            .finish()
    }
}

/// A taken cell detached from its borrow: which Grid, which cell, which generation.
///
/// Made by [`Cell::into_id`]; ended by [`Grid::release`] (or turned back into a [`Cell`] by
/// [`Grid::claim`]). It is `Copy` and `'static`, so block tables can keep it across steps
/// and threads; every copy names the same use of the cell, and once it ends (a release, a
/// claim, a [`Grid::clear`]) every copy is **stale**: the Grid rejects it with
/// [`MemError::StaleCell`](crate::MemError::StaleCell), and an id of another Grid (even a
/// dropped one) with [`MemError::ForeignCell`](crate::MemError::ForeignCell).
///
/// 24 bytes: the Grid's identity (never reused in the process), the index and a 64-bit
/// generation (never repeated).
///
/// ```
/// use unimem::{Grid, MemError};
///
/// let grid = Grid::new(64, 4)?;
/// let id = grid.take().unwrap().into_id();
/// let copy = id;
/// grid.release(id)?;
/// assert!(matches!(grid.release(copy), Err(MemError::StaleCell { .. })));
///
/// let other = Grid::new(64, 4)?;
/// let theirs = other.take().unwrap().into_id();
/// assert!(matches!(grid.release(theirs), Err(MemError::ForeignCell { .. })));
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellId {
    grid: u64,
    generation: u64,
    index: u32,
}

impl CellId {
    /// The cell's index in its Grid (see [`Cell::index`]).
    #[inline]
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The identity of the Grid it belongs to ([`Grid::id`]).
    #[inline]
    pub fn grid(&self) -> u64 {
        self.grid
    }

    /// The cell's generation when it was detached: different for every detached use of the
    /// cell.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

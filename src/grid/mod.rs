//! [`Grid`]: a fixed number of equal cells carved from one [`Tape`], handed out and taken
//! back lock-free; [`Cell`], an owned cell; [`CellId`], a detached one; [`GridLane`], a
//! per-thread cache of free cells.
//!
//! # Design
//!
//! A Grid takes one range of `cell_size * cells` bytes from its Tape (consumed, and kept:
//! [`Grid::tape`] lends it for other takes) and splits it into cells. The free cells form a
//! Treiber stack of `u32` indices (`list.rs`): the head is one 64-bit word holding the top
//! index and a tag counted up by every pop, and every cell has a `next` link and a depth
//! (the stack's length from it down, so the count of free cells is the top's depth). A take
//! is one compare-exchange (pop), a give is one (push); no memory is allocated after the
//! Grid is made. The stack is last-in first-out, so the most recently freed cell, the one
//! most likely still in cache, is handed out first.
//!
//! A [`GridLane`] keeps up to `2 * batch` free cells in a local array: takes and gives
//! touch only that array (no atomic read-modify-write at all), and the lane refills
//! `batch` cells with one compare-exchange (a walk of `batch` links, then one swing of the
//! head past them) or spills `batch` with one (links written first, then one swing).
//!
//! Each cell has a 64-bit **generation**. [`Cell::into_id`] detaches a cell as a
//! [`CellId`] = (the Grid's identity, index, generation), `Copy`, so it can sit in block
//! tables. [`Grid::release`] compare-exchanges the generation from the id's value to the
//! next one, then pushes the cell: of two releases of one id, racing or not, exactly one
//! succeeds, and the id is stale for ever after (generations never repeat: 2^64 releases
//! of one cell would take centuries). [`Grid::claim`] ends the id's use the same way but
//! hands the cell back as a [`Cell`]; [`Grid::clear`] moves every generation forward.
//! Takes and gives never touch the generation: it changes only when a detached use ends.
//!
//! The Grid's identity is a `u64` drawn from a process-wide counter, never reused, so an id
//! outliving its Grid can never match a later Grid.
//!
//! # Why it is correct
//!
//! - **One owner per cell.** A cell is owned by the stack, by one GridLane's cache, by one
//!   [`Cell`], or by the holders of its current [`CellId`]. The stack hands each cell to
//!   exactly one popper (see `list.rs` for the ABA argument); a lane's cache is reached
//!   only through `&mut GridLane`; a `Cell` is not `Copy`. The only way back from a
//!   `CellId` is a compare-exchange of the generation, which one caller wins.
//! - **Only a detached cell's id is current.** An id is made only by consuming a `Cell`
//!   (reading the generation), and its use ends only by a compare-exchange that moves the
//!   generation past it (release, claim) or by a clear. So while a cell is free, cached or
//!   owned by a `Cell`, no id holds its current generation and every release or claim of
//!   it fails; and while it is detached, exactly the copies of one id are current.
//! - **No use after free, no foreign cells.** A `Cell<'g>` borrows its Grid, so it cannot
//!   outlive it; [`Grid::give`] and [`GridLane::give`] check that the Cell is theirs (one
//!   pointer comparison) and reject it otherwise, sending it home. A `CellId` carries the
//!   Grid's identity; an id of another Grid (live or dropped) is rejected.
//! - **Byte views are exclusive.** [`Cell::bytes`] needs `&mut Cell`: the only view of the
//!   cell. [`Grid::cell`] gives a validated raw pointer (an id is `Copy`, so a safe `&mut`
//!   from `&self` could alias); [`Grid::cell_mut`] gives a slice but needs `&mut Grid`, so
//!   no Cell, GridLane or other view of this Grid is alive.
//! - **Initialized bytes.** A Block is zero-filled; the Grid zeroes the part of its range
//!   that earlier takes of a reused Tape may have left (as the Tape's typed takes do). From
//!   then on every write is through a safe view or through a raw pointer whose writer must
//!   write initialized bytes (documented on [`Cell::address`] and [`Grid::cell`]).
//! - **Handover.** The giver's writes to a cell happen before the push's `Release`; the next
//!   taker's pop `Acquire`s the head, so it sees them (`list.rs`).
//! - **Clear.** [`Grid::clear`] takes `&mut self`: no Cell or GridLane is alive. It rebuilds
//!   the stack and moves every generation forward, so every outstanding id is stale:
//!   O(cells).
//!
//! # Counting
//!
//! [`Grid::free`] is the number of cells on the shared stack, the depth of its top: it
//! costs the take and give paths nothing. Cells cached in a live GridLane are off the
//! stack, so they count as in use until the lane gives them back (when it spills, or when
//! it is dropped). [`Grid::peak_in_use`] is `total - low`, where `low`, the fewest cells
//! ever left on the stack right after a pop, shares the head's cache line and is written
//! only when it drops. All three are exact whenever no take or give is in flight, and
//! `free() + in_use() == total()` always.
//!
//! The loom models (`loom.rs`) check single ownership, the counts, the handover of the
//! bytes, and the ABA scenario (and that the same code without the tag fails it); Miri
//! runs the unit tests (`tests.rs`).

mod cell;
mod flight;
mod lane;
mod list;
mod run;

#[cfg(all(test, loom))]
mod loom;
#[cfg(all(test, not(loom)))]
mod tests;

pub use cell::{Cell, CellId};
#[cfg(feature = "cuda")]
pub(crate) use flight::Lent;
pub use lane::GridLane;
pub use run::{Run, RunCells};

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64 as IdCounter;

use bytemuck::Pod;

use crate::block::{Block, Pin};
use crate::error::MemError;
use crate::page::page_size;
use crate::sync::Ordering;
use crate::tape::Tape;
use list::{FreeList, IN_FLIGHT, next_generation};

const CELL_ALIGN: usize = Grid::CELL_ALIGN;
const MAX_CELLS: usize = Grid::MAX_CELLS;

/// The next Grid identity. Never reused: at one Grid per nanosecond, 2^64 would last
/// five centuries.
static NEXT_ID: IdCounter = IdCounter::new(1);

/// A lock-free pool of equal, fixed-size cells carved from one [`Tape`]: take a cell, use
/// it, give it back, from any number of threads.
///
/// What a paged-attention KV cache, a staging ring or a pool of fixed tensors needs: sizes
/// are decided at run time, every cell is aligned to 64 bytes (or more, see
/// [`GridBuilder::align`]) and lies in one pinned, shareable Block, at an offset
/// ([`Cell::offset`]) that a device or another process can use.
///
/// - [`take`](Grid::take) / [`try_take`](Grid::try_take) hand out a [`Cell`], which borrows
///   the Grid and gives itself back when dropped (or through [`give`](Grid::give));
/// - [`Cell::into_id`] detaches it as a [`CellId`] for block tables, given back with
///   [`release`](Grid::release); stale and foreign ids are errors;
/// - [`lane`](Grid::lane) makes a [`GridLane`], a per-thread cache that takes and gives
///   without atomics;
/// - [`clear`](Grid::clear) frees every cell at once.
///
/// Cells are handed out most recently freed first. The shared path is one compare-exchange
/// per take and one per give; nothing is allocated after the Grid is made. The design and
/// why it is correct: `specs/grid.md`.
///
/// `Grid` is `Send` and `Sync`.
///
/// # Examples
///
/// ```
/// use unimem::Grid;
///
/// let grid = Grid::new(1000, 16)?;
/// assert_eq!(grid.cell_size(), 1024); // rounded up to 64 bytes
/// assert_eq!(grid.total(), 16);
///
/// let mut cell = grid.take().unwrap();
/// cell.as_slice_mut::<f32>().fill(0.5);
/// assert_eq!(grid.in_use(), 1);
/// let offset = cell.offset(); // what a GPU-side block table stores
/// assert_eq!(offset % 64, 0);
///
/// let id = cell.into_id(); // detached: Copy, 'static
/// assert_eq!(grid.in_use(), 1);
/// grid.release(id)?;
/// assert!(grid.release(id).is_err()); // a double release is caught
/// assert_eq!(grid.free(), 16);
/// # Ok::<(), unimem::MemError>(())
/// ```
///
/// A Cell cannot outlive its Grid:
///
/// ```compile_fail,E0597
/// let cell = {
///     let grid = unimem::Grid::new(64, 4).unwrap();
///     grid.take().unwrap()
/// };
/// ```
pub struct Grid {
    list: FreeList,
    /// The first cell, with the provenance of the whole Block.
    base: NonNull<u8>,
    /// Bytes from one cell to the next: the cell size rounded up to the alignment.
    stride: usize,
    /// Offset of the first cell from the Block's first byte.
    offset: usize,
    cells: u32,
    align: usize,
    id: u64,
    tape: Tape,
}

// SAFETY: `base` points into the Block the Tape owns, which is process-wide and not tied to
// a thread (`Tape: Send`); the rest is atomics and plain numbers.
unsafe impl Send for Grid {}
// SAFETY: every `&self` method reads immutable fields or goes through the atomics of the
// free list; bytes are handed out only to the single owner of a cell (module docs).
unsafe impl Sync for Grid {}

/// Options for a [`Grid`]: the cell alignment, and for a Grid with its own Block, the pin
/// policy and the debug name.
///
/// ```
/// use unimem::{Grid, Pin};
///
/// let page = unimem::page_size();
/// let grid = Grid::builder(100, 8).align(page).pin(Pin::BestEffort).name("kv").open()?;
/// assert_eq!(grid.cell_size(), page);
/// assert_eq!(grid.take().unwrap().address() as usize % page, 0);
/// assert_eq!(grid.tape().block().name(), "kv");
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a GridBuilder does nothing until `open` or `over` is called"]
pub struct GridBuilder {
    cell_size: usize,
    cells: usize,
    align: usize,
    pin: Pin,
    name: Option<String>,
}

/// A checked geometry: everything derived from the cell size, the count and the alignment.
#[derive(Debug, Clone, Copy)]
struct Shape {
    stride: usize,
    cells: u32,
    align: usize,
    bytes: usize,
}

impl GridBuilder {
    /// Aligns every cell to `align` bytes (a power of two; values below 64 mean 64). The
    /// cell size is rounded up to a multiple of it, so that every cell is aligned: e.g. the
    /// page size, for cells that are mapped, advised or registered one at a time.
    pub fn align(mut self, align: usize) -> GridBuilder {
        self.align = align;
        self
    }

    /// The pin policy of the Block [`open`](GridBuilder::open) makes (default
    /// [`Pin::Required`]).
    pub fn pin(mut self, pin: Pin) -> GridBuilder {
        self.pin = pin;
        self
    }

    /// The debug name of the Block [`open`](GridBuilder::open) makes.
    pub fn name(mut self, name: impl Into<String>) -> GridBuilder {
        self.name = Some(name.into());
        self
    }

    /// The bytes the cells take: the rounded cell size times the cells. A Tape given to
    /// [`over`](GridBuilder::over) needs that many free bytes, plus up to `align - 1`
    /// of padding to reach the alignment (none when its head is aligned, as a fresh Tape's
    /// is for alignments up to the page size).
    ///
    /// # Errors
    ///
    /// As [`over`](GridBuilder::over), except the Tape's.
    pub fn room(&self) -> Result<usize, MemError> {
        Ok(self.shape()?.bytes)
    }

    /// Opens a Block just large enough (rounded up to whole pages), starts a Tape over it
    /// and carves the Grid from it.
    ///
    /// # Errors
    ///
    /// Those of [`over`](GridBuilder::over) and of [`Block::open`]
    /// ([`LockRefused`](MemError::LockRefused) under [`Pin::Required`], ...).
    pub fn open(self) -> Result<Grid, MemError> {
        let shape = self.shape()?;
        // A Block is page aligned: larger alignments need room for the padding.
        let slack = shape.align.saturating_sub(page_size());
        let size = shape
            .bytes
            .checked_add(slack)
            .ok_or_else(|| self.overflow())?;
        let mut block = Block::builder(size).pin(self.pin);
        if let Some(name) = &self.name {
            block = block.name(name.clone());
        }
        Grid::carve(shape, Tape::over(block.open()?))
    }

    /// Carves the Grid from `tape`, which it keeps: the cells are one take of
    /// [`room`](GridBuilder::room) bytes aligned to the cell alignment, and the rest of the
    /// Tape stays usable through [`Grid::tape`].
    ///
    /// # Errors
    ///
    /// The Tape is dropped on every error.
    ///
    /// - [`EmptyGrid`](MemError::EmptyGrid): a cell size or a cell count of 0;
    /// - [`BadAlignment`](MemError::BadAlignment): the alignment is not a power of two;
    /// - [`TooManyCells`](MemError::TooManyCells): more than [`Grid::MAX_CELLS`];
    /// - [`GridOverflow`](MemError::GridOverflow): the rounded cell size, or the cells'
    ///   bytes, overflow (above `isize::MAX`);
    /// - [`TapeFull`](MemError::TapeFull): the Tape has too few free bytes;
    /// - [`AllocFailed`](MemError::AllocFailed): the 16 bytes of bookkeeping per cell could
    ///   not be allocated.
    pub fn over(self, tape: Tape) -> Result<Grid, MemError> {
        Grid::carve(self.shape()?, tape)
    }

    fn shape(&self) -> Result<Shape, MemError> {
        let (cell_size, cells) = (self.cell_size, self.cells);
        if cell_size == 0 || cells == 0 {
            return Err(MemError::EmptyGrid { cell_size, cells });
        }
        if !self.align.is_power_of_two() {
            return Err(MemError::BadAlignment { align: self.align });
        }
        if cells > MAX_CELLS {
            return Err(MemError::TooManyCells {
                cells,
                max: MAX_CELLS,
            });
        }
        let align = self.align.max(CELL_ALIGN);
        let stride = cell_size
            .checked_next_multiple_of(align)
            .ok_or_else(|| self.overflow())?;
        let bytes = stride
            .checked_mul(cells)
            .filter(|&bytes| bytes <= isize::MAX as usize - (align - 1))
            .ok_or_else(|| self.overflow())?;
        Ok(Shape {
            stride,
            cells: cells as u32,
            align,
            bytes,
        })
    }

    #[cold]
    fn overflow(&self) -> MemError {
        MemError::GridOverflow {
            cell_size: self.cell_size,
            cells: self.cells,
            align: self.align.max(CELL_ALIGN),
        }
    }
}

impl Grid {
    /// The least alignment, and the granule of the size, of every cell: a cache line, and
    /// what AMX loads and stores need.
    pub const CELL_ALIGN: usize = 64;

    /// The most cells a Grid can have: indices are `u32`, and `u32::MAX` marks the end of
    /// the free list.
    pub const MAX_CELLS: usize = u32::MAX as usize;

    /// A Grid of `cells` cells of at least `cell_size` bytes each, in a pinned Block of its
    /// own. Same as `Grid::builder(cell_size, cells).open()`.
    ///
    /// # Errors
    ///
    /// See [`GridBuilder::open`].
    pub fn new(cell_size: usize, cells: usize) -> Result<Grid, MemError> {
        Grid::builder(cell_size, cells).open()
    }

    /// A Grid of `cells` cells of at least `cell_size` bytes each, carved from `tape`,
    /// which the Grid keeps (the rest of it stays usable through [`Grid::tape`]). Same as
    /// `Grid::builder(cell_size, cells).over(tape)`.
    ///
    /// ```
    /// use unimem::{Block, Grid, Pin, Tape};
    ///
    /// let tape = Tape::over(Block::builder(1 << 20).pin(Pin::BestEffort).open()?);
    /// let grid = Grid::over(tape, 16 << 10, 32)?;
    /// assert_eq!(grid.tape().used(), 512 << 10);
    /// // The rest of the Tape, e.g. for block tables:
    /// let table = grid.tape().take_slice::<u32>(1024).unwrap();
    /// table[0] = grid.take().unwrap().index();
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// See [`GridBuilder::over`]; the Tape is dropped on every error.
    pub fn over(tape: Tape, cell_size: usize, cells: usize) -> Result<Grid, MemError> {
        Grid::builder(cell_size, cells).over(tape)
    }

    /// A [`GridBuilder`], to choose the alignment (and the pin policy and name of the
    /// Block, for [`GridBuilder::open`]).
    pub fn builder(cell_size: usize, cells: usize) -> GridBuilder {
        GridBuilder {
            cell_size,
            cells,
            align: CELL_ALIGN,
            pin: Pin::Required,
            name: None,
        }
    }

    fn carve(shape: Shape, tape: Tape) -> Result<Grid, MemError> {
        let Some(list) = FreeList::new(shape.cells) else {
            return Err(MemError::AllocFailed {
                requested: shape.cells as usize * FreeList::SLOT_BYTES,
            });
        };
        let base = tape.try_take(shape.bytes, shape.align)?;
        let offset = base.as_ptr().addr() - tape.base_addr();
        // SAFETY: `offset..offset + bytes` is the take just made, and nobody else's.
        unsafe { tape.scrub(offset, shape.bytes, tape.dirty()) };
        Ok(Grid {
            list,
            base,
            stride: shape.stride,
            offset,
            cells: shape.cells,
            align: shape.align,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            tape,
        })
    }

    /// Takes a free cell, or `None` if every cell is in use (or cached in GridLanes).
    ///
    /// Lock-free: one compare-exchange when uncontended. The cell's bytes are what its last
    /// owner left (zeros at first).
    ///
    /// ```
    /// let grid = unimem::Grid::new(64, 2)?;
    /// let a = grid.take().unwrap();
    /// let b = grid.take().unwrap();
    /// assert!(grid.take().is_none());
    /// drop(a);
    /// assert!(grid.take().is_some());
    /// # drop(b);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline]
    pub fn take(&self) -> Option<Cell<'_>> {
        let index = self.list.pop_one()?;
        Some(Cell::new(self, index))
    }

    /// Takes a free cell, or says why not.
    ///
    /// # Errors
    ///
    /// [`GridFull`](MemError::GridFull): every cell is in use or cached in GridLanes.
    #[inline]
    pub fn try_take(&self) -> Result<Cell<'_>, MemError> {
        self.take().ok_or_else(|| self.full())
    }

    /// Gives `cell` back (as dropping it does), checking that it is this Grid's.
    ///
    /// # Errors
    ///
    /// [`ForeignCell`](MemError::ForeignCell): the cell belongs to another Grid. It goes
    /// back to its own Grid; nothing here changes.
    ///
    /// ```
    /// let (a, b) = (unimem::Grid::new(64, 4)?, unimem::Grid::new(64, 4)?);
    /// let cell = a.take().unwrap();
    /// assert!(b.give(cell).is_err());
    /// assert_eq!(a.free(), 4); // it went home
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline]
    pub fn give(&self, cell: Cell<'_>) -> Result<(), MemError> {
        if !std::ptr::eq(cell.grid(), self) {
            return Err(self.foreign(cell.grid().id));
        }
        drop(cell);
        Ok(())
    }

    /// Gives back the cell `id` names: the end of a detached cell's life.
    ///
    /// Of several releases of one id (copies of it, racing or not), exactly one succeeds.
    ///
    /// # Errors
    ///
    /// - [`StaleCell`](MemError::StaleCell): the id was already released or claimed, or
    ///   the Grid cleared since it was made: nothing changes;
    /// - [`ForeignCell`](MemError::ForeignCell): the id belongs to another Grid.
    pub fn release(&self, id: CellId) -> Result<(), MemError> {
        self.end(id)?;
        self.list.push_one(id.index());
        Ok(())
    }

    /// Turns the cell `id` names back into a [`Cell`], the sole owner of it: every copy of
    /// the id becomes stale (as after a release), and the Cell can be detached again.
    ///
    /// # Errors
    ///
    /// As [`release`](Grid::release).
    ///
    /// ```
    /// let grid = unimem::Grid::new(64, 4)?;
    /// let id = grid.take().unwrap().into_id();
    /// let mut cell = grid.claim(id)?;
    /// cell.bytes()[0] = 7;
    /// assert!(grid.release(id).is_err()); // the claim made it stale
    /// let id = cell.into_id();
    /// grid.release(id)?;
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn claim(&self, id: CellId) -> Result<Cell<'_>, MemError> {
        self.end(id)?;
        Ok(Cell::new(self, id.index()))
    }

    /// The first byte of the cell `id` names, if the id is current: valid for reads and
    /// writes of [`cell_size()`](Grid::cell_size) bytes until the id is released or
    /// claimed, or the Grid is cleared or dropped.
    ///
    /// It is a raw pointer because `CellId` is `Copy`: its holders must agree among
    /// themselves who uses the bytes when (as with any shared raw pointer), and write only
    /// initialized bytes (the next owner of the cell may read them through a safe view).
    /// Nobody may use it while the cell is lent to a device copy (feature `cuda`: from the
    /// copy's start until it is seen done, the id answers `CellInFlight`).
    /// [`cell_mut`](Grid::cell_mut) and [`claim`](Grid::claim) are the safe ways to the
    /// bytes.
    ///
    /// # Errors
    ///
    /// As [`release`](Grid::release).
    pub fn cell(&self, id: CellId) -> Result<*mut u8, MemError> {
        self.check(id)?;
        Ok(self.address(id.index()))
    }

    /// The bytes of the cell `id` names, if the id is current. `&mut self` proves that no
    /// Cell, GridLane or other view of this Grid is alive.
    ///
    /// # Errors
    ///
    /// As [`release`](Grid::release).
    ///
    /// ```
    /// let mut grid = unimem::Grid::new(64, 4)?;
    /// let id = grid.take().unwrap().into_id();
    /// grid.cell_mut(id)?.fill(9);
    /// assert_eq!(grid.cell_slice_mut::<u32>(id)?[15], 0x0909_0909);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn cell_mut(&mut self, id: CellId) -> Result<&mut [u8], MemError> {
        self.cell_slice_mut(id)
    }

    /// The cell `id` names as a slice of `T`, as many whole `T`s as fit; see
    /// [`cell_mut`](Grid::cell_mut). Alignments above 64 are a compile-time error.
    ///
    /// # Errors
    ///
    /// As [`release`](Grid::release).
    pub fn cell_slice_mut<T: Pod>(&mut self, id: CellId) -> Result<&mut [T], MemError> {
        self.check(id)?;
        // SAFETY: the id is current, so the cell is taken and owned by the id's holders,
        // who hold no safe view of it; `&mut self` rules out every other view made through
        // this Grid for as long as the slice lives.
        Ok(unsafe { self.view_mut(id.index()) })
    }

    /// A [`GridLane`] for this thread: a cache of up to `2 * batch` free cells that takes
    /// and gives without atomics, refilling and spilling `batch` cells with one
    /// compare-exchange each. `batch` is capped at the number of cells and at
    /// [`GridLane::MAX_BATCH`]; 0 makes every take and give go to the shared stack. Making
    /// a lane takes no cells yet.
    pub fn lane(&self, batch: usize) -> GridLane<'_> {
        let batch = batch.min(self.cells as usize).min(GridLane::MAX_BATCH);
        GridLane::new(self, batch)
    }

    /// Frees every cell: all cells are free again, 0 on top, and every outstanding
    /// [`CellId`] is stale. O(cells): it rewrites each cell's link and generation (a few
    /// nanoseconds per cell). The bytes are left as they are.
    ///
    /// `&mut self` proves that no Cell or GridLane is alive; raw pointers from
    /// [`cell`](Grid::cell) must not be used after it. It also proves that no device copy of
    /// this Grid's cells is in flight (feature `cuda`: its guard borrows the Grid), except one
    /// whose guard was leaked: such cells stay lent to the device, out of the free list, for
    /// the Grid's life.
    ///
    /// ```compile_fail,E0502
    /// let mut grid = unimem::Grid::new(64, 4).unwrap();
    /// let cell = grid.take().unwrap();
    /// grid.clear(); // a Cell is still alive
    /// drop(cell);
    /// ```
    ///
    /// ```
    /// let mut grid = unimem::Grid::new(64, 4)?;
    /// let id = grid.take().unwrap().into_id();
    /// grid.clear();
    /// assert_eq!(grid.free(), 4);
    /// assert!(grid.release(id).is_err());
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn clear(&mut self) {
        self.list.reset();
    }

    /// Cells on the shared free list: what [`take`](Grid::take) can hand out now. Cells
    /// cached in live GridLanes are not counted (they are in use until the lane gives them
    /// back). Exact when no take or give runs at the same time.
    pub fn free(&self) -> usize {
        self.list.len() as usize
    }

    /// Cells not on the shared free list: held by Cells, by detached ids, or cached in
    /// live GridLanes. `free() + in_use() == total()` for one reading of `free()`, which
    /// is at most `total()` even mid-churn (so this never underflows).
    pub fn in_use(&self) -> usize {
        self.total().saturating_sub(self.free())
    }

    /// The most cells ever in use at once (as [`in_use`](Grid::in_use) counts them) since
    /// the Grid was made, across clears.
    pub fn peak_in_use(&self) -> usize {
        self.total().saturating_sub(self.list.low() as usize)
    }

    /// The number of cells.
    pub fn total(&self) -> usize {
        self.cells as usize
    }

    /// Bytes in each cell: the size asked for, rounded up to the alignment. Also the
    /// distance between neighbouring cells.
    pub fn cell_size(&self) -> usize {
        self.stride
    }

    /// The alignment of every cell: 64 or what [`GridBuilder::align`] asked for.
    pub fn cell_align(&self) -> usize {
        self.align
    }

    /// The offset of cell `index` from the first byte of the Block: `cell_offset(0) +
    /// index * cell_size()`, or `None` past the last cell. What a block table for a device
    /// or another process stores (their base addresses differ from this process's).
    pub fn cell_offset(&self, index: u32) -> Option<usize> {
        (index < self.cells).then(|| self.offset + index as usize * self.stride)
    }

    /// This Grid's identity: unique in this process, never reused.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The Tape the cells were carved from: its [`block`](Tape::block) (address, id, file
    /// descriptor), and takes from the rest of it.
    pub fn tape(&self) -> &Tape {
        &self.tape
    }

    /// Gives the Tape back. The cells' bytes stay taken until the Tape is cleared.
    pub fn into_tape(self) -> Tape {
        self.tape
    }

    /// The address of cell `index < cells`.
    #[inline(always)]
    fn address(&self, index: u32) -> *mut u8 {
        debug_assert!(index < self.cells);
        self.base
            .as_ptr()
            .wrapping_add(index as usize * self.stride)
    }

    /// Cell `index` as a shared slice of as many whole `T`s as fit.
    ///
    /// # Safety
    ///
    /// `index < cells`, and nobody writes the cell for the returned lifetime.
    #[inline(always)]
    unsafe fn view<'a, T: Pod>(&self, index: u32) -> &'a [T] {
        let len = view_len::<T>(self.stride);
        // SAFETY: as in `view_mut`, for reads only; nobody writes (contract).
        unsafe { std::slice::from_raw_parts(self.address(index).cast::<T>(), len) }
    }

    /// Cell `index` as a slice of as many whole `T`s as fit.
    ///
    /// # Safety
    ///
    /// `index < cells`, and the caller has exclusive access to the cell for the returned
    /// lifetime.
    #[inline(always)]
    unsafe fn view_mut<'a, T: Pod>(&self, index: u32) -> &'a mut [T] {
        let len = view_len::<T>(self.stride);
        // SAFETY:
        // - the cell is `stride` bytes inside the Grid's take from the Tape, which lives
        //   as long as the Grid; `len * size_of::<T>() <= stride`;
        // - it is aligned to at least 64 bytes, so for `T` (checked above);
        // - every byte is initialized (module docs) and any bit pattern is a valid `T`;
        // - the caller has exclusive access (contract).
        unsafe { std::slice::from_raw_parts_mut(self.address(index).cast::<T>(), len) }
    }

    /// Checks that `id` is this Grid's and current.
    fn check(&self, id: CellId) -> Result<(), MemError> {
        let generation = self.generation(id)?;
        // Acquire: if a device copy gave the cell back (`flight.rs`, a `Release`), what the
        // device wrote happens before the caller's use of the bytes.
        let now = generation.load(Ordering::Acquire);
        if now == id.generation() {
            Ok(())
        } else {
            Err(self.stale(id, now))
        }
    }

    /// Ends the use of the cell that `id` names: moves its generation from the id's value
    /// to the next, if it is still the id's value. One caller wins.
    fn end(&self, id: CellId) -> Result<(), MemError> {
        let generation = self.generation(id)?;
        match generation.compare_exchange(
            id.generation(),
            next_generation(id.generation()),
            // Acquire, as in `check`: the bytes a device copy wrote before it gave the cell
            // back are visible to whoever ends the id's use next.
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => Ok(()),
            Err(now) => Err(self.stale(id, now)),
        }
    }

    /// The generation of the cell `id` names, if `id` is this Grid's.
    #[inline]
    fn generation(&self, id: CellId) -> Result<&crate::sync::AtomicU64, MemError> {
        if id.grid() != self.id {
            return Err(self.foreign(id.grid()));
        }
        // Ids of this Grid always name a cell of it; the check costs nothing.
        self.list
            .generation(id.index())
            .ok_or_else(|| self.foreign(id.grid()))
    }

    #[cold]
    #[inline(never)]
    fn stale(&self, id: CellId, current: u64) -> MemError {
        if current == id.generation() | IN_FLIGHT {
            return MemError::CellInFlight {
                grid: self.id,
                index: id.index(),
            };
        }
        MemError::StaleCell {
            index: id.index(),
            generation: id.generation(),
            current: current & !IN_FLIGHT,
        }
    }

    #[cold]
    #[inline(never)]
    fn foreign(&self, owner: u64) -> MemError {
        MemError::ForeignCell {
            grid: self.id,
            owner,
        }
    }

    #[cold]
    #[inline(never)]
    fn full(&self) -> MemError {
        MemError::GridFull {
            cells: self.total(),
        }
    }
}

/// How many whole `T`s fit in a cell of `stride` bytes, with `T`'s shape checked at compile
/// time.
#[inline(always)]
const fn view_len<T>(stride: usize) -> usize {
    const {
        assert!(
            size_of::<T>() != 0,
            "typed views of zero-sized types are meaningless"
        );
        assert!(
            align_of::<T>() <= CELL_ALIGN,
            "cells are only guaranteed to be aligned to 64 bytes"
        );
    }
    stride / size_of::<T>()
}

impl fmt::Debug for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grid")
            .field("id", &self.id)
            .field("cells", &self.cells)
            .field("cell_size", &self.stride)
            .field("free", &self.free())
            .field("peak_in_use", &self.peak_in_use())
            .field("offset", &self.offset)
            .field("tape", &self.tape)
            .finish()
    }
}

//! [`Layout`]: the three tapes of an inference runtime, and [`Stat`], what they hold.
//!
//! # Design
//!
//! A runtime holds one Layout per model. Its memory has three lifetimes, and each gets a
//! tape of its own, on a [`Block`](crate::Block) of its own:
//!
//! | tape | holds | filled | cleared |
//! |---|---|---|---|
//! | **weights** | the model's parameters | once, at load | never (dropped with the Layout) |
//! | **scratch** | activations of one forward pass | every token | [`clear_pass`](Layout::clear_pass), every token |
//! | **history** | the KV cache | as tokens arrive | [`clear_talk`](Layout::clear_talk), every conversation |
//!
//! Separate Blocks let each tape be shared or registered with a device on its own (the
//! weights read-only to worker processes, scratch private) and pinned or not on its own.
//! The history is a [`Tape`] or, for a paged KV cache, a [`Grid`] of fixed cells carved
//! from one.
//!
//! # Why it is correct
//!
//! The Layout adds no unsafe code and no shared state: takes go straight to the tapes,
//! which are lock-free and hand out disjoint ranges (see [`Tape`]). The clears take
//! `&mut self`, so the borrow checker proves that nothing taken from scratch (or from the
//! history) is still borrowed when its bytes are handed out again; raw pointers from
//! [`Tape::take`] must be dropped by the caller, as the Tape documents. The weights are
//! never cleared by the Layout: only dropping it frees them.
//!
//! Shared weights (Linux): a server fills the weights, [freezes](Layout::freeze_weights)
//! them (no process can change them from then on) and shares their Block read-only; each
//! worker builds its Layout with [`weights_shared`](LayoutBuilder::weights_shared), whose
//! weights tape is read-only (it hands out nothing) and is read by offset with
//! [`Tape::read`]. The clears never touch the weights, read-only or not.
//!
//! A paged history is a [`Grid`] carved from the history Tape: cells are taken and given
//! back (or detached as [`CellId`](crate::CellId)s in block tables) by the Grid's own
//! lock-free rules; [`clear_talk`](Layout::clear_talk) clears the Grid, which makes every
//! outstanding id stale, so a block table kept past the conversation is caught, not
//! silently reused.
//!
//! [`stat`](Layout::stat) reads counters the tapes keep for their own work (each Tape's
//! head and peak, the Grid's cells in use and its peak): taking a Stat costs a few loads,
//! and no take path pays anything for it.

mod builder;
mod model;
mod stat;

#[cfg(test)]
#[allow(unsafe_code)]
mod tests;

pub use builder::LayoutBuilder;
pub use model::ModelShape;
pub use stat::Stat;

use std::fmt;

use crate::error::MemError;
use crate::grid::Grid;
use crate::tape::Tape;

/// The memory of one model in an inference runtime: **weights**, **scratch** and
/// **history** (the KV cache), three tapes on three Blocks.
///
/// Take weights once with [`weights()`](Layout::weights), activations every token with
/// [`scratch()`](Layout::scratch) and [`clear_pass`](Layout::clear_pass), and the KV cache
/// per conversation with [`history()`](Layout::history) and
/// [`clear_talk`](Layout::clear_talk). [`stat`](Layout::stat) says how full each is.
///
/// `Layout` is `Send` and `Sync`: threads may take from all three tapes at once.
///
/// # Examples
///
/// ```
/// use unimem::{Layout, Pin};
///
/// let mut layout = Layout::builder(1 << 20, 256 << 10, 1 << 20).pin(Pin::BestEffort).build()?;
///
/// // Weights, once; offsets from the Block's base are what a device or a worker uses.
/// let w = layout.weights().take_slice::<f32>(1024).unwrap();
/// w.fill(0.5);
/// let offset = layout.weights().offset_of(w.as_ptr()).unwrap();
/// assert_eq!(offset, 0);
///
/// for _token in 0..3 {
///     let x = layout.scratch().take_slice::<f32>(4096).unwrap();
///     x[0] = 1.0;
///     let kv = layout.history().take(512, 64).unwrap();
///     assert!(layout.history().owns(kv));
///     layout.clear_pass(); // scratch is free again; the history stays
/// }
/// let stat = layout.stat();
/// assert_eq!((stat.scratch_used, stat.scratch_peak), (0, 16 << 10));
/// assert_eq!(stat.history_used, 3 * 512);
///
/// layout.clear_talk(); // scratch and history free; weights stay
/// assert_eq!(layout.stat().history_used, 0);
/// assert_eq!(layout.stat().weights_used, 4096);
/// println!("{}", layout.stat());
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct Layout {
    weights: Tape,
    scratch: Tape,
    history: History,
}

/// The history: a Tape, or a Grid of cells carved from one.
///
/// Not boxed although the Grid is larger: there is one Layout per model, and a box would
/// add a pointer chase to every cell take.
#[allow(clippy::large_enum_variant)]
enum History {
    Tape(Tape),
    Grid(Grid),
}

impl Layout {
    /// Opens a Layout of three pinned Blocks of `weights`, `scratch` and `history` bytes
    /// (each rounded up to the page size). Same as
    /// `Layout::builder(weights, scratch, history).build()`.
    ///
    /// # Errors
    ///
    /// Those of [`LayoutBuilder::build`]: [`ZeroSize`](MemError::ZeroSize),
    /// [`LockRefused`](MemError::LockRefused) when the OS will not pin that much (use
    /// [`builder`](Layout::builder) with [`Pin::BestEffort`](crate::Pin::BestEffort) to
    /// run unpinned), [`OutOfMemory`](MemError::OutOfMemory), ...
    pub fn new(weights: usize, scratch: usize, history: usize) -> Result<Layout, MemError> {
        Layout::builder(weights, scratch, history).build()
    }

    /// A [`LayoutBuilder`] for tapes of `weights`, `scratch` and `history` bytes: set the
    /// pin policy and names, give Blocks of your own, or make the history a Grid.
    pub fn builder(weights: usize, scratch: usize, history: usize) -> LayoutBuilder {
        LayoutBuilder::new(weights, scratch, history)
    }

    /// Opens a Layout sized for `model` as the `cyb` runtime sizes it (see
    /// [`ModelShape`]), pinned. Same as `model.builder()?.build()`; use
    /// [`ModelShape::builder`] to set the pin policy or names first.
    ///
    /// # Errors
    ///
    /// [`ModelZero`](MemError::ModelZero) and [`ModelOverflow`](MemError::ModelOverflow)
    /// for a description that cannot be sized, then those of [`Layout::new`].
    pub fn for_model(model: &ModelShape) -> Result<Layout, MemError> {
        model.builder()?.build()
    }

    /// The weights tape: filled once, never cleared by the Layout.
    #[inline]
    pub fn weights(&self) -> &Tape {
        &self.weights
    }

    /// The scratch tape: activations, cleared by [`clear_pass`](Layout::clear_pass).
    #[inline]
    pub fn scratch(&self) -> &Tape {
        &self.scratch
    }

    /// The history tape (the KV cache), cleared by [`clear_talk`](Layout::clear_talk).
    ///
    /// With a paged history, the Tape the Grid's cells are carved from: its
    /// [`block`](Tape::block) is the history's Block, and takes from it get what the cells
    /// left of it (the page rounding), which [`clear_talk`](Layout::clear_talk) does not
    /// free (it frees the cells).
    #[inline]
    pub fn history(&self) -> &Tape {
        match &self.history {
            History::Tape(tape) => tape,
            History::Grid(grid) => grid.tape(),
        }
    }

    /// The history's Grid of KV cells, if the Layout was built with
    /// [`history_cells`](LayoutBuilder::history_cells) (a paged history).
    ///
    /// ```
    /// use unimem::{Layout, Pin};
    ///
    /// let mut layout = Layout::builder(4096, 4096, 0)
    ///     .history_cells(1024, 8)
    ///     .pin(Pin::BestEffort)
    ///     .build()?;
    /// let grid = layout.history_grid().unwrap();
    /// let id = grid.try_take()?.into_id(); // one cell of a sequence's block table
    /// assert_eq!(layout.stat().history_used, 1024);
    ///
    /// layout.clear_talk(); // every cell free again; `id` is stale
    /// let grid = layout.history_grid().unwrap();
    /// assert_eq!(grid.in_use(), 0);
    /// assert!(grid.release(id).is_err());
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    #[inline]
    pub fn history_grid(&self) -> Option<&Grid> {
        match &self.history {
            History::Tape(_) => None,
            History::Grid(grid) => Some(grid),
        }
    }

    /// The history's Grid, mutably: for [`Grid::cell_mut`] and
    /// [`Grid::cell_slice_mut`], which write a detached cell (a [`CellId`](crate::CellId))
    /// through a safe slice. `None` for a Tape history.
    #[inline]
    pub fn history_grid_mut(&mut self) -> Option<&mut Grid> {
        match &mut self.history {
            History::Tape(_) => None,
            History::Grid(grid) => Some(grid),
        }
    }

    /// Freezes the weights, once they are loaded: no process can change them from now on,
    /// so they can be shared read-only with worker processes whose views are sound without
    /// any protocol, and read here by offset with [`Tape::read`]. See [`Tape::freeze`].
    /// Linux only.
    ///
    /// ```
    /// use unimem::{Layout, Pin};
    ///
    /// let mut layout = Layout::builder(1 << 16, 4096, 4096).pin(Pin::BestEffort).build()?;
    /// let w = layout.weights().take_slice::<u16>(8).unwrap();
    /// w.fill(0x3c00); // fp16 1.0
    /// layout.freeze_weights()?;
    /// assert_eq!(layout.weights().read::<u16>(0, 8)?, &[0x3c00; 8]);
    /// assert!(layout.weights().take(64, 64).is_none());
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Tape::freeze`]: [`FreezeBusy`](MemError::FreezeBusy) while another
    /// process maps the weights writable (the weights tape is read-only from then on; call
    /// again once it has let go), ...
    #[cfg(all(target_os = "linux", not(miri)))]
    pub fn freeze_weights(&mut self) -> Result<(), MemError> {
        self.weights.freeze()
    }

    /// Frees scratch, at the end of every forward pass (token). O(1); the weights and the
    /// history are untouched.
    #[inline]
    pub fn clear_pass(&mut self) {
        self.scratch.clear();
    }

    /// Frees scratch and the history, at the end of a conversation: the weights are
    /// untouched. O(1) for a Tape history; O(cells) for a Grid history, every cell free
    /// again and every outstanding [`CellId`](crate::CellId) stale (see [`Grid::clear`]).
    pub fn clear_talk(&mut self) {
        self.scratch.clear();
        match &mut self.history {
            History::Tape(tape) => tape.clear(),
            History::Grid(grid) => grid.clear(),
        }
    }

    /// Bytes the three tapes can hand out: [`stat().total()`](Stat::total) (for a paged
    /// history, its cells).
    pub fn total(&self) -> usize {
        self.stat().total()
    }

    /// How full each tape is now and has been at most. A few atomic loads of counters the
    /// tapes keep anyway.
    pub fn stat(&self) -> Stat {
        let (history_used, history_peak, history_total, history_cell) = match &self.history {
            History::Tape(tape) => (tape.used(), tape.peak(), tape.total(), 0),
            // Cell counts times the cell size: no product overflows, the cells fit in the
            // Block.
            History::Grid(grid) => {
                let cell = grid.cell_size();
                (
                    grid.in_use() * cell,
                    grid.peak_in_use() * cell,
                    grid.total() * cell,
                    cell,
                )
            }
        };
        Stat {
            weights_used: self.weights.used(),
            weights_peak: self.weights.peak(),
            weights_total: self.weights.total(),
            scratch_used: self.scratch.used(),
            scratch_peak: self.scratch.peak(),
            scratch_total: self.scratch.total(),
            history_used,
            history_peak,
            history_total,
            history_cell,
        }
    }
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Layout");
        s.field("weights", &self.weights)
            .field("scratch", &self.scratch);
        match &self.history {
            History::Tape(tape) => s.field("history", tape),
            History::Grid(grid) => s.field("history", grid),
        };
        s.finish()
    }
}

//! [`LayoutBuilder`]: sizes, Blocks, pin policy and names for the three tapes of a
//! [`Layout`].

#[cfg(all(target_os = "linux", not(miri)))]
use crate::block::ReadOnlyBlock;
use crate::block::{Block, Pin};
use crate::error::MemError;
use crate::grid::Grid;
use crate::layout::{History, Layout};
use crate::tape::Tape;

/// Where one tape's memory comes from.
#[derive(Debug)]
enum Source {
    /// A Block of this many bytes, opened by [`LayoutBuilder::build`].
    Size(usize),
    /// A Block the caller opened (or imported).
    Block(Block),
    /// A Block another process shared read-only: the tape is read-only.
    #[cfg(all(target_os = "linux", not(miri)))]
    Shared(ReadOnlyBlock),
}

/// Options for a [`Layout`]: the size of each tape, or a Block to use for it; a paged
/// history (a [`Grid`] of KV cells); the pin policy and the Blocks' names. Made by [`Layout::builder`] or
/// [`ModelShape::builder`](crate::ModelShape::builder).
///
/// Each tape gets a Block of its own, so each can be shared with other processes or
/// registered with a device on its own: weights handed read-only to workers, scratch kept
/// private.
///
/// # Examples
///
/// ```
/// use unimem::{Block, Layout, Pin};
///
/// // Weights in a Block opened elsewhere (a caller could share it); scratch and history
/// // opened here, named "llama.scratch" and "llama.history", pinned if the OS allows.
/// let weights = Block::builder(1 << 20).pin(Pin::BestEffort).name("llama.weights").open()?;
/// let layout = Layout::builder(0, 256 << 10, 1 << 20)
///     .weights_block(weights)
///     .name("llama")
///     .pin(Pin::BestEffort)
///     .build()?;
/// assert_eq!(layout.weights().block().name(), "llama.weights");
/// assert_eq!(layout.scratch().block().name(), "llama.scratch");
/// assert_eq!(layout.total(), (1 << 20) + (256 << 10) + (1 << 20));
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Debug)]
#[must_use = "a LayoutBuilder does nothing until `build` is called"]
pub struct LayoutBuilder {
    weights: Source,
    scratch: Source,
    history: Source,
    /// `(cell_size, cells)` when the history is a Grid.
    cells: Option<(usize, usize)>,
    pin: Pin,
    name: String,
}

impl LayoutBuilder {
    pub(crate) fn new(weights: usize, scratch: usize, history: usize) -> LayoutBuilder {
        LayoutBuilder {
            weights: Source::Size(weights),
            scratch: Source::Size(scratch),
            history: Source::Size(history),
            cells: None,
            pin: Pin::Required,
            name: String::from("unimem"),
        }
    }

    /// Sets the pin policy of the Blocks the builder opens (default
    /// [`Pin::Required`], as [`Block::open`]). Blocks given with `*_block` keep their own.
    pub fn pin(mut self, pin: Pin) -> LayoutBuilder {
        self.pin = pin;
        self
    }

    /// Names the Blocks the builder opens `"{name}.weights"`, `"{name}.scratch"` and
    /// `"{name}.history"` (default `"unimem"`). On Linux the names show in
    /// `/proc/PID/maps` as `/memfd:unimem.weights`. At most 241 bytes, so that every
    /// Block name stays within 249.
    pub fn name(mut self, name: impl Into<String>) -> LayoutBuilder {
        self.name = name.into();
        self
    }

    /// Uses `block` for the weights tape; the weights size given to the builder is
    /// ignored. The Block keeps its own pin state and name.
    pub fn weights_block(mut self, block: Block) -> LayoutBuilder {
        self.weights = Source::Block(block);
        self
    }

    /// Uses a Block another process shared read-only for the weights: a worker's view of
    /// the weights its server loaded and [froze](Layout::freeze_weights), the same pages
    /// in every worker. The weights size given to the builder is ignored. Linux only.
    ///
    /// The weights tape is then read-only: it hands out nothing
    /// ([`take`](Tape::take) is `None`, [`try_take`](Tape::try_take) is
    /// [`TapeReadOnly`](MemError::TapeReadOnly)), its `used()` is its `total()`, and if
    /// the Block is frozen its tensors are read by offset with [`Tape::read`] (or located
    /// at `weights().block().address() + offset` for a device).
    ///
    /// ```
    /// use unimem::{Block, Layout, MemError, Pin};
    ///
    /// // Server: load, freeze, share.
    /// let mut server = Layout::builder(1 << 16, 4096, 4096).pin(Pin::BestEffort).build()?;
    /// let w = server.weights().take_slice::<f32>(4).unwrap();
    /// w.copy_from_slice(&[0.25, 0.5, 0.75, 1.0]);
    /// let at = server.weights().offset_of(w.as_ptr()).unwrap();
    /// server.freeze_weights()?;
    /// let share = server.weights().block().share()?;
    ///
    /// // Worker (another process; the share and `at` sent over a socket):
    /// let weights = Block::import_read_only(share, Pin::BestEffort)?;
    /// let worker = Layout::builder(0, 1 << 16, 1 << 16)
    ///     .weights_shared(weights)
    ///     .pin(Pin::BestEffort)
    ///     .build()?;
    /// assert_eq!(worker.weights().read::<f32>(at, 4)?, &[0.25, 0.5, 0.75, 1.0]);
    /// assert!(worker.weights().try_take(64, 64).is_err());
    /// assert_eq!(worker.stat().weights_used, worker.stat().weights_total);
    /// # Ok::<(), MemError>(())
    /// ```
    #[cfg(all(target_os = "linux", not(miri)))]
    pub fn weights_shared(mut self, block: ReadOnlyBlock) -> LayoutBuilder {
        self.weights = Source::Shared(block);
        self
    }

    /// Uses `block` for scratch; the scratch size given to the builder is ignored.
    pub fn scratch_block(mut self, block: Block) -> LayoutBuilder {
        self.scratch = Source::Block(block);
        self
    }

    /// Uses `block` for the history; the history size given to the builder is ignored.
    /// With [`history_cells`](LayoutBuilder::history_cells), the Grid is carved from it.
    pub fn history_block(mut self, block: Block) -> LayoutBuilder {
        self.history = Source::Block(block);
        self
    }

    /// Makes the history a [`Grid`] of `cells` cells of `cell_size` bytes (a paged KV
    /// cache) instead of a Tape. The history size given to the builder is ignored: the
    /// history Block is sized to hold the cells ([`GridBuilder::room`], rounded up to
    /// whole pages). Cells are aligned to 64 bytes and their size rounded up to a multiple
    /// of 64, as the Grid does.
    ///
    /// [`GridBuilder::room`]: crate::GridBuilder::room
    pub fn history_cells(mut self, cell_size: usize, cells: usize) -> LayoutBuilder {
        self.cells = Some((cell_size, cells));
        self
    }

    /// Opens the Blocks (weights, then scratch, then history) and builds the Layout.
    ///
    /// # Errors
    ///
    /// Those of [`Block::open`](crate::Builder::open) for each Block it opens:
    /// [`ZeroSize`](MemError::ZeroSize) for a size of 0,
    /// [`LockRefused`](MemError::LockRefused) under [`Pin::Required`] when the OS will not
    /// pin that much, [`OutOfMemory`](MemError::OutOfMemory),
    /// [`BadName`](MemError::BadName) for a name over 241 bytes, ... With
    /// [`history_cells`](LayoutBuilder::history_cells), those of [`Grid::over`] too:
    /// [`EmptyGrid`](MemError::EmptyGrid), [`GridOverflow`](MemError::GridOverflow),
    /// [`TooManyCells`](MemError::TooManyCells), and
    /// [`TapeFull`](MemError::TapeFull) for a history Block of one's own too small for the
    /// cells. Nothing is leaked: Blocks opened before the failure are released.
    pub fn build(self) -> Result<Layout, MemError> {
        let LayoutBuilder {
            weights,
            scratch,
            history,
            cells,
            pin,
            name,
        } = self;
        // The Grid's geometry first: a bad one opens nothing.
        let grid = match cells {
            Some((cell_size, cells)) => {
                let grid = Grid::builder(cell_size, cells);
                let room = grid.room()?;
                Some((grid, room))
            }
            None => None,
        };
        let weights = open(weights, &name, "weights", pin)?;
        let scratch = open(scratch, &name, "scratch", pin)?;
        let history = match grid {
            None => History::Tape(open(history, &name, "history", pin)?),
            Some((grid, room)) => {
                let history = match history {
                    Source::Size(_) => Source::Size(room),
                    block => block,
                };
                History::Grid(grid.over(open(history, &name, "history", pin)?)?)
            }
        };
        Ok(Layout {
            weights,
            scratch,
            history,
        })
    }
}

/// A Tape over `source`: the given Block, or one of `size` bytes named `{prefix}.{tape}`.
fn open(source: Source, prefix: &str, tape: &str, pin: Pin) -> Result<Tape, MemError> {
    let block = match source {
        Source::Block(block) => block,
        #[cfg(all(target_os = "linux", not(miri)))]
        Source::Shared(block) => return Ok(Tape::over_read_only(block)),
        Source::Size(size) => Block::builder(size)
            .pin(pin)
            .name(format!("{prefix}.{tape}"))
            .open()?,
    };
    Ok(Tape::over(block))
}

//! Batched copies between registered host memory and device memory: a list of Grid cells
//! (by [`CellId`]) or of ranges of a registered Block or Tape, moved in one driver call on a
//! [`Stream`], with an [`InFlight`] to wait for or poll.
//!
//! # Design
//!
//! A copy is planned (`plan.rs`: checked, neighbours merged, cut into calls), then queued:
//!
//! - **Batch path**: `cuMemcpyBatchAsync_v2` (or the 12.8 `cuMemcpyBatchAsync`), one call per
//!   [`CopyOptions::max_batch`] pieces, every piece with the same attributes: sources read in
//!   stream order, no hints, no flags. The host side is named by its device address (the
//!   registration's alias, equal to the host address under unified addressing).
//! - **Per-copy path**: one `cuMemcpyHtoDAsync_v2` / `cuMemcpyDtoHAsync_v2` per piece, where
//!   the driver has no batched copy (older than 12.8), on the legacy default stream (which
//!   the batched copy refuses), or when asked ([`CopyOptions::per_copy`]).
//!
//! Then an event is recorded on the stream: [`InFlight`] waits for or polls it. With
//! [`CopyOptions::engines`] above 1, the pieces are split into that many groups, queued on
//! the stream and on helper streams that first wait for an event recorded on the stream (a
//! fork), and the stream then waits for an event recorded on each helper (a join): the copy
//! is still one step of the caller's stream, and the work of several copy engines.
//!
//! # What the types enforce, and what the caller promises
//!
//! The host side is the Block's, and unimem guards it:
//!
//! - **Cells** ([`Stream::cells_to_device`], [`Stream::cells_to_host`]): before anything is
//!   queued, every cell is lent to the copy (the Grid's `flight.rs`): its ids are suspended,
//!   so no `release`, `claim`, `cell`, `cell_mut` can reach the bytes
//!   ([`MemError::CellInFlight`]), and no `Cell` owns them. The [`InFlight`] borrows the
//!   Grid, so the Grid can be neither cleared nor dropped; when the copy is seen complete the
//!   same ids work again. A leaked `InFlight` (`mem::forget`) leaves the cells lent for ever,
//!   which is safe; and dropping the Grid then still waits for the copy, because the kept
//!   registration's `Drop` synchronizes its context first, and the stream must belong to that
//!   context ([`MemError::CudaStreamContext`]).
//! - **Ranges** ([`Stream::to_device`], [`Stream::to_host`]): a Block or Tape lends its bytes
//!   by raw pointer and slice, which unimem cannot track; the caller promises the host side
//!   too (below). The `InFlight` borrows the Extent, so the Block cannot drop meanwhile.
//!
//! The device side is a plain `u64`, as everywhere in unimem, so every copy is `unsafe`: the
//! caller promises that each device range is device-accessible memory of this process (device
//! memory, or host memory registered with CUDA) that stays allocated, and that nothing else
//! reads a range the copy writes or writes a range it touches, until the copy completes; and
//! that no device range aliases host bytes that Rust code views (registered memory reached
//! through its device address is host memory).
//!
//! Destinations within one list must not overlap (checked: [`MemError::CopyOverlap`]); the
//! same cell may be read twice (to two device places), but not written twice.

use std::fmt;

use super::event::Event;
use super::plan::{self, BOUNDARY, Piece, Plan};
use super::{Context, Stream};
use crate::block::{Access, Extent};
use crate::error::MemError;
use crate::ffi::cuda::{CuDevicePtr, CuResult, CuStream};
use crate::grid::{CellId, Grid, Lent};

/// How a [`Stream`]'s batched copies are carried out. The default: the batched call where
/// the driver has it, neighbours merged, one copy engine, up to
/// [`MAX_BATCH`](CopyOptions::MAX_BATCH) copies per call.
///
/// ```
/// use unimem::cuda::CopyOptions;
///
/// let options = CopyOptions::new().engines(2).max_batch(1024);
/// assert_eq!(options.engine_count(), 2);
/// assert_eq!(CopyOptions::new().engines(0).engine_count(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CopyOptions {
    per_copy: bool,
    coalesce: bool,
    engines: usize,
    max_batch: usize,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions::new()
    }
}

impl CopyOptions {
    /// The most copies one batched call carries by default. The driver reference states no
    /// limit on `count`; unimem cuts longer lists into calls of this many (the cost of a
    /// call is per copy, so the cut costs nothing measurable).
    pub const MAX_BATCH: usize = 1 << 16;

    /// The most streams one copy is spread over.
    pub const MAX_ENGINES: usize = 8;

    /// The defaults.
    pub const fn new() -> CopyOptions {
        CopyOptions {
            per_copy: false,
            coalesce: true,
            engines: 1,
            max_batch: CopyOptions::MAX_BATCH,
        }
    }

    /// Whether to make one driver call per copy even where the batched call exists (the
    /// baseline a benchmark compares against). Default `false`.
    pub const fn per_copy(mut self, yes: bool) -> CopyOptions {
        self.per_copy = yes;
        self
    }

    /// Whether entries that continue each other on both sides merge into one copy. Default
    /// `true`.
    pub const fn coalesce(mut self, yes: bool) -> CopyOptions {
        self.coalesce = yes;
        self
    }

    /// Over how many streams (copy engines) one copy is spread, 1 to
    /// [`MAX_ENGINES`](CopyOptions::MAX_ENGINES) (values outside are clamped). Default 1.
    /// The extra streams are the [`Stream`]'s own helpers, joined back into it.
    pub const fn engines(mut self, n: usize) -> CopyOptions {
        self.engines = if n == 0 {
            1
        } else if n > CopyOptions::MAX_ENGINES {
            CopyOptions::MAX_ENGINES
        } else {
            n
        };
        self
    }

    /// The most copies per batched call (at least 1). Default
    /// [`MAX_BATCH`](CopyOptions::MAX_BATCH).
    pub const fn max_batch(mut self, n: usize) -> CopyOptions {
        self.max_batch = if n == 0 { 1 } else { n };
        self
    }

    /// The number of streams set by [`engines`](CopyOptions::engines).
    pub const fn engine_count(&self) -> usize {
        self.engines
    }
}

/// One range of a registered Block (or of a Tape's Block) and where it goes on the device:
/// `len` bytes at `offset` from the Block's first byte, and device address `device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CopyRange {
    /// Offset of the first byte in the Block.
    pub offset: usize,
    /// Bytes to copy (at least 1).
    pub len: usize,
    /// The device address of the first byte on the device side.
    pub device: u64,
}

impl CopyRange {
    /// `len` bytes at `offset` of the Block, to or from `device`.
    pub const fn new(offset: usize, len: usize, device: u64) -> CopyRange {
        CopyRange {
            offset,
            len,
            device,
        }
    }
}

/// Which driver calls carried a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CopyPath {
    /// Batched calls: `symbol` is the export that ran (`"cuMemcpyBatchAsync_v2"`, or the
    /// 12.8 `"cuMemcpyBatchAsync"`).
    Batch {
        /// The driver function.
        symbol: &'static str,
    },
    /// One `cuMemcpyHtoDAsync_v2` / `cuMemcpyDtoHAsync_v2` per copy, and why.
    PerCopy {
        /// Why not batched.
        why: Fallback,
    },
}

/// Why a copy went one call per range instead of batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fallback {
    /// The driver has no batched copy (older than CUDA 12.8).
    NoBatchCall,
    /// The stream is the legacy default stream, which the batched copy refuses.
    LegacyStream,
    /// [`CopyOptions::per_copy`] asked for it.
    Asked,
}

/// What a copy queued: the path, and how the list became driver calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CopyReport {
    /// The driver calls that carried it.
    pub path: CopyPath,
    /// Entries in the caller's list.
    pub entries: usize,
    /// Copies after merging neighbours (and cutting at 64 GiB registration boundaries).
    pub copies: usize,
    /// Driver copy calls made (batched calls, or one per copy).
    pub calls: usize,
    /// Streams the copies were spread over.
    pub engines: usize,
    /// Bytes in all.
    pub bytes: u64,
}

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Host (the Block) to device.
    ToDevice,
    /// Device to host (the Block).
    ToHost,
}

/// A copy queued on a stream, not yet seen complete.
///
/// Made by the copy methods of [`Stream`]. [`wait`](InFlight::wait) blocks until it is done;
/// [`poll`](InFlight::poll) asks without blocking; [`Stream::wait_for`] orders another
/// stream's later work after it without the CPU waiting. Once it is seen done (or when it
/// drops, which waits), cells lent to it are given back: their ids work again.
///
/// It borrows the Grid (or the Block) for `'a`: the cells cannot be cleared and the Block
/// cannot drop while the copy may run. If waiting fails (the device reported an error), the
/// cells stay lent: unimem cannot tell whether the device still writes them.
///
/// ```compile_fail,E0502
/// fn swap_in(grid: &mut unimem::Grid, stream: &unimem::cuda::Stream<'_>, list: &[(unimem::CellId, u64)]) {
///     // SAFETY: (the device side would be the caller's to vouch for)
///     let copy = unsafe { stream.cells_to_device(grid, list) }.unwrap();
///     grid.clear(); // error: the Grid is borrowed by the copy in flight
///     drop(copy);
/// }
/// ```
#[must_use = "a copy in flight must be waited for (dropping it waits too)"]
pub struct InFlight<'a> {
    done: Event<'a>,
    grid: Option<&'a Grid>,
    lent: Option<Lent>,
    report: CopyReport,
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Pending,
    Done,
    Failed(MemError),
}

impl InFlight<'_> {
    /// What was queued: the path that ran, the copies and calls it made.
    pub fn report(&self) -> CopyReport {
        self.report
    }

    /// Whether the copy is done (`cuEventQuery`), without blocking. The first time it says
    /// `true`, lent cells are given back.
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if the device reported a failure; the cells stay lent, and
    /// every later `poll` or `wait` returns the same error.
    pub fn poll(&mut self) -> Result<bool, MemError> {
        match &self.state {
            State::Done => return Ok(true),
            State::Failed(err) => return Err(err.clone()),
            State::Pending => {}
        }
        match self.done.is_done() {
            Ok(true) => {
                self.finish();
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(err) => {
                self.state = State::Failed(err.clone());
                Err(err)
            }
        }
    }

    /// Blocks until the copy is done (`cuEventSynchronize`), gives lent cells back, and
    /// returns the report.
    ///
    /// # Errors
    ///
    /// As [`poll`](InFlight::poll).
    pub fn wait(mut self) -> Result<CopyReport, MemError> {
        self.settle()?;
        Ok(self.report)
    }

    /// The `CUevent` recorded after the copy, for other CUDA code (`cuStreamWaitEvent`);
    /// valid while this value lives.
    pub fn event(&self) -> u64 {
        self.done.raw() as usize as u64
    }

    fn settle(&mut self) -> Result<(), MemError> {
        match &self.state {
            State::Done => Ok(()),
            State::Failed(err) => Err(err.clone()),
            State::Pending => match self.done.synchronize() {
                Ok(()) => {
                    self.finish();
                    Ok(())
                }
                Err(err) => {
                    self.state = State::Failed(err.clone());
                    Err(err)
                }
            },
        }
    }

    /// The copy is complete and this thread observed it: give the cells back.
    fn finish(&mut self) {
        if let (Some(grid), Some(lent)) = (self.grid, self.lent.take()) {
            grid.give_back(lent);
        }
        self.state = State::Done;
    }
}

impl Drop for InFlight<'_> {
    /// Waits for the copy, then gives lent cells back (they stay lent if waiting fails).
    fn drop(&mut self) {
        let _ = self.settle();
    }
}

impl fmt::Debug for InFlight<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlight")
            .field("report", &self.report)
            .field("state", &self.state)
            .field("lent", &self.lent.as_ref().map_or(0, Lent::len))
            .finish()
    }
}

/// The registered Block a copy reads or writes.
struct Target<'a> {
    extent: &'a Extent,
    /// The kept registration's context (the stream's, checked).
    context: &'a Context,
    /// The Block's first byte on the device (the registration's alias).
    alias: u64,
}

impl Stream<'_> {
    /// Copies whole cells of `grid` to device memory: entry `(id, device)` copies the cell
    /// `id` names ([`Grid::cell_size`] bytes) to device address `device`. Queued in list
    /// order as one step of this stream; see the module docs for the paths.
    ///
    /// The Grid's Block must keep its CUDA registration ([`CudaBlock::keep`], made in this
    /// stream's context). Every cell is lent to the copy until it is seen complete: its ids
    /// answer [`CellInFlight`](MemError::CellInFlight) meanwhile. A cell may appear more than
    /// once (read twice).
    ///
    /// # Safety
    ///
    /// Each `device..device + cell_size` is device-accessible memory of this process that
    /// stays allocated until the copy completes, that nothing else reads or writes
    /// meanwhile, and that no Rust reference views (it is not registered host memory that
    /// Rust code is borrowing). The host side is guarded by unimem (module docs).
    ///
    /// # Errors
    ///
    /// Nothing is queued and no cell stays lent on an error, except as
    /// [`CudaCopyFailed`](MemError::CudaCopyFailed) says.
    ///
    /// - [`CudaNotRegistered`](MemError::CudaNotRegistered): the Grid's Block keeps no
    ///   registration; [`CudaStreamContext`](MemError::CudaStreamContext): it was made in
    ///   another device's context;
    /// - [`ForeignCell`](MemError::ForeignCell), [`StaleCell`](MemError::StaleCell),
    ///   [`CellInFlight`](MemError::CellInFlight): an id that is not this Grid's, no longer
    ///   current, or lent to another copy;
    /// - [`CopyOutOfRange`](MemError::CopyOutOfRange): a device range past 2^64;
    /// - [`CopyOverlap`](MemError::CopyOverlap): two device ranges overlap;
    /// - [`Cuda`](MemError::Cuda): an event or helper stream could not be made (nothing
    ///   queued); [`CudaCopyFailed`](MemError::CudaCopyFailed): a copy call failed part way.
    ///
    /// [`CudaBlock::keep`]: super::CudaBlock::keep
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use unimem::Grid;
    /// use unimem::cuda::Driver;
    ///
    /// let driver = Driver::load()?;
    /// let grid = Grid::new(16 << 10, 1024)?;
    /// grid.tape().block().register_cuda(&driver, 0)?.keep();
    /// let context = grid.tape().block().cuda_context().unwrap();
    /// let kv = context.alloc(4 * (16 << 10))?; // where the sequence goes on the GPU
    /// let table: Vec<_> = (0..4).map(|_| grid.take().unwrap().into_id()).collect();
    /// let list: Vec<_> = table
    ///     .iter()
    ///     .enumerate()
    ///     .map(|(i, &id)| (id, kv.device_ptr() + (i * grid.cell_size()) as u64))
    ///     .collect();
    /// let stream = context.stream()?;
    /// // SAFETY: `kv` is device memory of this process, nothing else uses it until the
    /// // copy completes, and the four ranges are disjoint.
    /// let copy = unsafe { stream.cells_to_device(&grid, &list)? };
    /// assert!(grid.release(table[0]).is_err()); // lent to the copy
    /// let report = copy.wait()?;
    /// println!("{:?}: {} copies in {} calls", report.path, report.copies, report.calls);
    /// grid.release(table[0])?; // the same id works again
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub unsafe fn cells_to_device<'g>(
        &self,
        grid: &'g Grid,
        cells: &[(CellId, u64)],
    ) -> Result<InFlight<'g>, MemError> {
        // SAFETY: the caller's contract is this function's.
        unsafe { self.copy_cells(grid, cells, Direction::ToDevice) }
    }

    /// Copies device memory into whole cells of `grid`: entry `(id, device)` copies
    /// [`Grid::cell_size`] bytes at device address `device` into the cell `id` names. As
    /// [`cells_to_device`](Stream::cells_to_device) otherwise, except that a cell may appear
    /// only once ([`CopyOverlap`](MemError::CopyOverlap), `device: false`): two device
    /// sources would race for it.
    ///
    /// # Safety
    ///
    /// Each `device..device + cell_size` is device-accessible memory of this process that
    /// stays allocated until the copy completes and that nothing writes meanwhile.
    ///
    /// # Errors
    ///
    /// As [`cells_to_device`](Stream::cells_to_device); the overlap checked is of cells.
    pub unsafe fn cells_to_host<'g>(
        &self,
        grid: &'g Grid,
        cells: &[(CellId, u64)],
    ) -> Result<InFlight<'g>, MemError> {
        // SAFETY: the caller's contract is this function's.
        unsafe { self.copy_cells(grid, cells, Direction::ToHost) }
    }

    /// Copies ranges of a registered Block (a Tape's: `tape.block()`) to device memory:
    /// each [`CopyRange`] moves `len` bytes at `offset` to `device`.
    ///
    /// # Safety
    ///
    /// The device side as for [`cells_to_device`](Stream::cells_to_device), for each range;
    /// and nothing writes the host bytes of the ranges until the copy completes (unimem
    /// cannot track a Block's or Tape's views).
    ///
    /// # Errors
    ///
    /// As [`cells_to_device`](Stream::cells_to_device), with
    /// [`CopyOutOfRange`](MemError::CopyOutOfRange) for a range past the Block's end and
    /// [`ZeroSize`](MemError::ZeroSize) for an empty one; no cell errors.
    pub unsafe fn to_device<'e>(
        &self,
        extent: &'e Extent,
        ranges: &[CopyRange],
    ) -> Result<InFlight<'e>, MemError> {
        // SAFETY: the caller's contract is this function's.
        unsafe { self.copy_ranges(extent, ranges, Direction::ToDevice) }
    }

    /// Copies device memory into ranges of a registered Block (or a Tape's): each
    /// [`CopyRange`] moves `len` bytes at `device` to `offset`.
    ///
    /// # Safety
    ///
    /// Each device range is device-accessible memory of this process that stays allocated
    /// and that nothing writes until the copy completes; and no Rust reference to the host
    /// bytes of the ranges is alive, or made, until the copy completes (the device writes
    /// them: a Tape's takes there must not be viewed meanwhile).
    ///
    /// # Errors
    ///
    /// As [`to_device`](Stream::to_device), with [`CopyOverlap`](MemError::CopyOverlap)
    /// (`device: false`) for overlapping host ranges, and
    /// [`NotWritable`](MemError::NotWritable) for a Block this process may not write (a
    /// read-only import, a Block made read-only, a frozen Block; `sealed` when its memfd
    /// carries a write seal).
    pub unsafe fn to_host<'e>(
        &self,
        extent: &'e Extent,
        ranges: &[CopyRange],
    ) -> Result<InFlight<'e>, MemError> {
        // SAFETY: the caller's contract is this function's.
        unsafe { self.copy_ranges(extent, ranges, Direction::ToHost) }
    }

    /// Orders this stream's later work after `copy` (`cuStreamWaitEvent`), without the CPU
    /// waiting: a kernel queued here next reads what the copy moved.
    ///
    /// # Errors
    ///
    /// [`Cuda`](MemError::Cuda) if the driver refuses.
    pub fn wait_for(&self, copy: &InFlight<'_>) -> Result<(), MemError> {
        let _current = self.context().enter()?;
        // SAFETY: the stream is live (owned, or the wrapper's contract), and the event lives
        // as long as `copy`.
        unsafe {
            self.context()
                .api()
                .stream_wait_event(self.handle(), copy.done.raw())
        }
        .map_err(|code| self.context().error("cuStreamWaitEvent", code, None))
    }

    /// # Safety
    ///
    /// As [`cells_to_device`](Stream::cells_to_device) or
    /// [`cells_to_host`](Stream::cells_to_host), by `direction`.
    unsafe fn copy_cells<'g>(
        &self,
        grid: &'g Grid,
        cells: &[(CellId, u64)],
        direction: Direction,
    ) -> Result<InFlight<'g>, MemError> {
        let target = self.target(grid.tape().block())?;
        let stride = grid.cell_size();
        if let Some(&(id, _)) = cells.iter().find(|(id, _)| id.grid() != grid.id()) {
            return Err(MemError::ForeignCell {
                grid: grid.id(),
                owner: id.grid(),
            });
        }
        let entries = cells.iter().map(|&(id, device)| {
            // Ids of this Grid (checked above) always name one of its cells.
            let host = grid.cell_offset(id.index()).unwrap_or(usize::MAX);
            (host, stride, device)
        });
        let plan = plan::plan(
            entries,
            target.extent.size(),
            self.options().coalesce,
            BOUNDARY,
        )?;
        if direction == Direction::ToDevice {
            let ranges = cells.iter().map(|&(_, device)| (device, stride as u64));
            plan::disjoint(ranges).map_err(|(first, second)| MemError::CopyOverlap {
                first,
                second,
                device: true,
            })?;
        }
        // Duplicates in a copy to the host are refused here (`lend`).
        let lent = grid.lend(
            cells.iter().map(|&(id, _)| id),
            direction == Direction::ToDevice,
        )?;
        // SAFETY: the device side is the caller's contract; the cells are lent.
        unsafe { self.launch(target, plan, direction, Some((grid, lent))) }
    }

    /// # Safety
    ///
    /// As [`to_device`](Stream::to_device) or [`to_host`](Stream::to_host), by
    /// `direction`.
    unsafe fn copy_ranges<'e>(
        &self,
        extent: &'e Extent,
        ranges: &[CopyRange],
        direction: Direction,
    ) -> Result<InFlight<'e>, MemError> {
        let target = self.target(extent)?;
        if direction == Direction::ToHost && !writable(extent) {
            return Err(MemError::NotWritable {
                id: extent.id(),
                sealed: write_sealed(extent),
            });
        }
        let entries = ranges.iter().map(|r| (r.offset, r.len, r.device));
        let plan = plan::plan(entries, extent.size(), self.options().coalesce, BOUNDARY)?;
        let (destinations, device): (Vec<(u64, u64)>, bool) = match direction {
            Direction::ToDevice => (
                ranges.iter().map(|r| (r.device, r.len as u64)).collect(),
                true,
            ),
            Direction::ToHost => (
                ranges
                    .iter()
                    .map(|r| (r.offset as u64, r.len as u64))
                    .collect(),
                false,
            ),
        };
        plan::disjoint(destinations.into_iter()).map_err(|(first, second)| {
            MemError::CopyOverlap {
                first,
                second,
                device,
            }
        })?;
        // SAFETY: both sides are the caller's contract.
        unsafe { self.launch(target, plan, direction, None) }
    }

    /// The registered Block behind `extent`, checked against this stream's context.
    fn target<'a>(&self, extent: &'a Extent) -> Result<Target<'a>, MemError> {
        let (Some(alias), Some(context)) = (extent.cuda_device_ptr(), extent.cuda_context()) else {
            return Err(MemError::CudaNotRegistered {
                id: extent.id(),
                size: extent.size(),
            });
        };
        if context.raw() != self.context().raw() {
            return Err(MemError::CudaStreamContext {
                stream_device: self.context().device().ordinal(),
                block_device: context.device().ordinal(),
            });
        }
        Ok(Target {
            extent,
            context,
            alias,
        })
    }

    /// Which path this stream's copies take.
    fn path(&self) -> CopyPath {
        let api = self.context().api();
        if self.options().per_copy {
            return CopyPath::PerCopy {
                why: Fallback::Asked,
            };
        }
        if self.is_legacy() {
            return CopyPath::PerCopy {
                why: Fallback::LegacyStream,
            };
        }
        match api.batch_symbol() {
            Some(symbol) => CopyPath::Batch { symbol },
            None => CopyPath::PerCopy {
                why: Fallback::NoBatchCall,
            },
        }
    }

    /// Queues the plan and records the completion event. On failure, waits for whatever was
    /// queued, gives the cells back, and says how much was copied.
    ///
    /// # Safety
    ///
    /// Every piece is a range the caller vouched for (device side) and that unimem guards or
    /// the caller vouched for (host side).
    unsafe fn launch<'a>(
        &self,
        target: Target<'a>,
        plan: Plan,
        direction: Direction,
        cells: Option<(&'a Grid, Lent)>,
    ) -> Result<InFlight<'a>, MemError> {
        let (grid, lent) = match cells {
            Some((grid, lent)) => (Some(grid), Some(lent)),
            None => (None, None),
        };
        let path = self.path();
        let groups = plan.groups(self.options().engine_count());
        let mut report = CopyReport {
            path,
            entries: plan.entries,
            copies: plan.pieces.len(),
            calls: 0,
            engines: groups.len().max(1),
            bytes: plan.bytes,
        };
        let context = target.context;
        // Everything that can fail without side effects first: the events and helpers.
        let prepared = (|| {
            let done = Event::new(context)?;
            let mut fork = Vec::new();
            let helpers = match groups.len() {
                0 | 1 => Vec::new(),
                n => {
                    let helpers = self.helpers(n - 1)?;
                    fork.push(Event::new(context)?);
                    for _ in 1..n {
                        fork.push(Event::new(context)?);
                    }
                    helpers
                }
            };
            Ok::<_, MemError>((done, fork, helpers))
        })();
        let (done, fork, helpers) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                if let (Some(grid), Some(lent)) = (grid, lent) {
                    grid.give_back(lent);
                }
                return Err(err);
            }
        };
        let _current = match self.context().enter() {
            Ok(current) => current,
            Err(err) => {
                if let (Some(grid), Some(lent)) = (grid, lent) {
                    grid.give_back(lent);
                }
                return Err(err);
            }
        };
        let mut streams: Vec<CuStream> = vec![self.handle()];
        streams.extend(helpers.iter().copied());
        let mut queue = Queue {
            stream: self,
            target: &target,
            direction,
            path,
            max_batch: self.options().max_batch,
            queued: 0,
            calls: 0,
            dsts: Vec::new(),
            srcs: Vec::new(),
            sizes: Vec::new(),
        };
        // SAFETY: the events and helper streams are live and of this context, which is
        // current; the pieces are the caller's contract.
        let queued = unsafe { queue.all(&groups, &streams, &fork, &done) };
        report.calls = queue.calls;
        match queued {
            Ok(()) => Ok(InFlight {
                done,
                grid,
                lent,
                report,
                state: State::Pending,
            }),
            Err((call, code)) => {
                let copied = plan.copied(queue.queued);
                Err(self.abandon(&streams, grid, lent, call, code, copied, plan.entries))
            }
        }
    }

    /// After a failed call: waits for every stream the copy used, so nothing still touches
    /// the cells, gives them back, and reports how much was copied. If a stream cannot be
    /// waited for, the cells stay lent and that error is returned.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn abandon(
        &self,
        streams: &[CuStream],
        grid: Option<&Grid>,
        lent: Option<Lent>,
        call: &'static str,
        code: CuResult,
        copied: usize,
        entries: usize,
    ) -> MemError {
        let api = self.context().api();
        for &stream in streams {
            // SAFETY: the stream is live (this stream, or one of its helpers).
            if let Err(sync) = unsafe { api.stream_synchronize(stream) } {
                // `lent` drops without being given back: the cells stay lent.
                return self.context().error("cuStreamSynchronize", sync, None);
            }
        }
        if let (Some(grid), Some(lent)) = (grid, lent) {
            grid.give_back(lent);
        }
        MemError::CudaCopyFailed {
            call,
            code,
            name: api.error_name(code).unwrap_or("unknown"),
            copied,
            entries,
        }
    }
}

/// The queuing of one copy's pieces: what was queued so far, for the failure report.
struct Queue<'s, 'c, 'a> {
    stream: &'s Stream<'c>,
    target: &'s Target<'a>,
    direction: Direction,
    path: CopyPath,
    max_batch: usize,
    /// Pieces queued so far, from the first.
    queued: usize,
    calls: usize,
    dsts: Vec<CuDevicePtr>,
    srcs: Vec<CuDevicePtr>,
    sizes: Vec<usize>,
}

impl Queue<'_, '_, '_> {
    /// Forks onto the helpers, queues every group on its stream, joins back, and records
    /// `done` on the caller's stream. Returns the failed call and its code.
    ///
    /// # Safety
    ///
    /// The context is current; `streams[0]` is the caller's stream and `streams[1..]` its
    /// helpers; `fork` holds one event per group if there are several (the fork, then one
    /// join per helper); the pieces are valid ranges (the copy's contract).
    unsafe fn all(
        &mut self,
        groups: &[(usize, &[Piece])],
        streams: &[CuStream],
        fork: &[Event<'_>],
        done: &Event<'_>,
    ) -> Result<(), (&'static str, CuResult)> {
        let api = self.stream.context().api();
        let main = streams[0];
        if groups.len() > 1 {
            // SAFETY: live events and streams of the current context.
            unsafe {
                fork[0]
                    .record(main)
                    .map_err(|code| ("cuEventRecord", code))?;
                for &helper in &streams[1..groups.len()] {
                    api.stream_wait_event(helper, fork[0].raw())
                        .map_err(|code| ("cuStreamWaitEvent", code))?;
                }
            }
        }
        for (g, &(first, pieces)) in groups.iter().enumerate() {
            debug_assert_eq!(first, self.queued);
            // SAFETY: as this function's contract.
            unsafe { self.group(pieces, streams[g])? };
        }
        if groups.len() > 1 {
            for (g, &helper) in streams[1..groups.len()].iter().enumerate() {
                let join = &fork[g + 1];
                // SAFETY: as above.
                unsafe {
                    join.record(helper)
                        .map_err(|code| ("cuEventRecord", code))?;
                    api.stream_wait_event(main, join.raw())
                        .map_err(|code| ("cuStreamWaitEvent", code))?;
                }
            }
        }
        // SAFETY: as above.
        unsafe { done.record(main) }.map_err(|code| ("cuEventRecord", code))
    }

    /// Queues one group's pieces on `stream`.
    ///
    /// # Safety
    ///
    /// As [`all`](Queue::all).
    unsafe fn group(
        &mut self,
        pieces: &[Piece],
        stream: CuStream,
    ) -> Result<(), (&'static str, CuResult)> {
        let api = self.stream.context().api();
        let host = self.target.extent.address();
        let alias = self.target.alias;
        match self.path {
            CopyPath::Batch { symbol } => {
                for chunk in pieces.chunks(self.max_batch) {
                    self.dsts.clear();
                    self.srcs.clear();
                    self.sizes.clear();
                    for piece in chunk {
                        let near = alias + piece.host as u64;
                        let (dst, src) = match self.direction {
                            Direction::ToDevice => (piece.device, near),
                            Direction::ToHost => (near, piece.device),
                        };
                        self.dsts.push(dst);
                        self.srcs.push(src);
                        self.sizes.push(piece.len);
                    }
                    let mut fail_index = usize::MAX;
                    // SAFETY: three arrays of `chunk.len()` entries, each a range the copy's
                    // contract covers; the stream is not the legacy one (the batch path is
                    // chosen only for other streams) and is of the current context.
                    unsafe {
                        api.memcpy_batch_async(
                            &mut self.dsts,
                            &mut self.srcs,
                            &mut self.sizes,
                            &mut fail_index,
                            stream,
                        )
                    }
                    .map_err(|code| (symbol, code))?;
                    self.calls += 1;
                    self.queued += chunk.len();
                }
            }
            CopyPath::PerCopy { .. } => {
                for piece in pieces {
                    let near = host.wrapping_add(piece.host);
                    // SAFETY: one range the copy's contract covers, on a live stream of the
                    // current context; the host side is inside the registered Block.
                    let queued = unsafe {
                        match self.direction {
                            Direction::ToDevice => api
                                .memcpy_htod_async(piece.device, near.cast(), piece.len, stream)
                                .map_err(|code| ("cuMemcpyHtoDAsync_v2", code)),
                            Direction::ToHost => api
                                .memcpy_dtoh_async(near.cast(), piece.device, piece.len, stream)
                                .map_err(|code| ("cuMemcpyDtoHAsync_v2", code)),
                        }
                    };
                    queued?;
                    self.calls += 1;
                    self.queued += 1;
                }
            }
        }
        Ok(())
    }
}

/// Whether this process may write the Block's bytes (a device copy into it needs that).
fn writable(extent: &Extent) -> bool {
    extent.access() == Access::ReadWrite && !frozen(extent)
}

/// Whether the Block's memfd carries a write seal, as [`MemError::NotWritable`]'s `sealed`
/// says: `F_SEAL_FUTURE_WRITE` (shared read-only or made read-only: no new writer, ever) or
/// `F_SEAL_WRITE` (frozen). Seals belong to the file, so an import sees its sharer's; a
/// read-only import of an unsealed file is only mapped read-only here. Linux only (nothing
/// is sealed elsewhere); `false` if the kernel cannot say.
fn write_sealed(extent: &Extent) -> bool {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        crate::ffi::linux::get_seals(extent.fd())
            .is_ok_and(|seals| seals & (libc::F_SEAL_WRITE | libc::F_SEAL_FUTURE_WRITE) != 0)
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    {
        let _ = extent;
        false
    }
}

/// Whether the Block is frozen (Linux; nothing is frozen elsewhere).
fn frozen(extent: &Extent) -> bool {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        extent.is_frozen()
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    {
        let _ = extent;
        false
    }
}

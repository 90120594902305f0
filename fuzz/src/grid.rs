//! `grid_ops`: Grid, Cell, CellId and GridLane op sequences checked against a model.
//!
//! The input builds a Grid of fuzzed cell size, count and alignment (zero, non-powers of
//! two and overflowing values included) over a [`Pin::BestEffort`] Block, possibly carved
//! from a Tape whose bytes an earlier take dirtied, then runs up to 512 ops: takes (plain
//! and fallible), gives to the right Grid and to another, drops, writes through a Cell
//! and through `Grid::cell`, detaching (`into_id`), releases and claims of current, stale
//! and foreign ids, up to four GridLanes (take, give, release, drop), and `clear`.
//!
//! The model knows which cells are held by a `Cell`, which ids are current, what each
//! lane caches, and the byte each cell was last filled with, and checks:
//!
//! - a cell handed out (take, lane take, claim) is not held by anyone else, and reads
//!   what it was last filled with (zeros at first, even over a dirty Tape);
//! - a take fails exactly when no cell is on the shared stack (and, for a lane, none is
//!   cached): `GridFull`;
//! - releases, claims and `cell` succeed exactly for current ids; stale ids are
//!   `StaleCell`, other Grids' ids and cells `ForeignCell` (the cell goes home);
//! - `free()` is the cells neither held, detached nor cached; `free() + in_use() ==
//!   total()`; `peak_in_use() >= in_use()`;
//! - `clear` frees every cell and makes every id stale; `cell_mut` shows a current id's
//!   bytes before it.

use unimem::{Block, Cell, CellId, Grid, GridLane, MemError, Pin, Tape};

use crate::input::Reader;

const MAX_OPS: usize = 512;
const MAX_LANES: usize = 4;
const MAX_IDS: usize = 256;
/// Grids larger than this are skipped (their construction is checked, not their use).
const MAX_BYTES: usize = 16 << 20;

/// Runs one input.
pub fn run(data: &[u8]) {
    let r = &mut Reader::new(data);
    let cell_size = match r.choose(4) {
        0 => r.u8() as usize,
        1 => r.u64() as usize,
        _ => 1 + r.u16() as usize % 4096,
    };
    let cells = match r.choose(8) {
        0 => r.u64() as usize,
        1 => r.u16() as usize % 4097,
        _ => 1 + r.u8() as usize % 64,
    };
    let align = match r.choose(4) {
        0 => r.u8() as usize,
        1 => 1 << (r.u8() % 64),
        _ => 64,
    };
    let dirty = r.choose(2) == 0;
    let lead = r.u8() as usize * 8;

    let builder = Grid::builder(cell_size, cells).align(align);
    let room = match builder.room() {
        Ok(room) => room,
        Err(err) => {
            assert!(
                matches!(
                    err,
                    MemError::EmptyGrid { .. }
                        | MemError::BadAlignment { .. }
                        | MemError::GridOverflow { .. }
                        | MemError::TooManyCells { .. }
                ),
                "room({cell_size}, {cells}, {align}): {err:?}"
            );
            assert!(!err.to_string().is_empty());
            return;
        }
    };
    let align = align.max(Grid::CELL_ALIGN);
    if room > MAX_BYTES || align > MAX_BYTES {
        return;
    }
    // Room for the cells, the leading take and the padding to the alignment.
    let size = room + lead + align;
    let block = Block::builder(size)
        .pin(Pin::BestEffort)
        .name("unimem-fuzz-grid")
        .open()
        .expect("open a Block for the Grid");
    let mut tape = Tape::over(block);
    if dirty {
        // Leftovers the Grid must not show: its cells read zeros at first.
        tape.take_slice::<u8>(tape.total()).unwrap().fill(0xA5);
        tape.clear();
    }
    if lead > 0 {
        tape.take(lead, 8).expect("the leading take fits");
    }
    let mut grid = builder
        .over(tape)
        .expect("a Grid of checked shape over room enough");
    assert_eq!(
        grid.cell_size() % align,
        0,
        "cell size not a multiple of the alignment"
    );
    assert_eq!(grid.cell_align(), align);
    let other = Grid::builder(64, 2)
        .pin(Pin::BestEffort)
        .open()
        .expect("open another Grid");
    let other_id = other.take().unwrap().into_id();

    let mut model = Model {
        total: grid.total(),
        ids: Vec::new(),
        fill: vec![0; grid.total()],
        next_fill: 0,
        other_id,
    };
    model.check_counts(&grid, 0, 0);
    let mut ops = 0;
    while epoch(&grid, &other, &mut model, r, &mut ops) {
        // Clear: first read every current id's cell through `cell_mut`.
        for &(id, current) in &model.ids {
            let bytes = grid.cell_mut(id);
            if current {
                let want = model.fill[id.index() as usize];
                assert!(
                    bytes.unwrap().iter().all(|&b| b == want),
                    "cell_mut of {id:?}"
                );
            } else {
                assert!(matches!(bytes, Err(MemError::StaleCell { .. })));
            }
        }
        let peak = grid.peak_in_use();
        grid.clear();
        assert_eq!(
            (grid.free(), grid.in_use()),
            (grid.total(), 0),
            "after clear"
        );
        assert!(grid.peak_in_use() >= peak);
        for (id, current) in &mut model.ids {
            *current = false;
            assert!(matches!(grid.release(*id), Err(MemError::StaleCell { .. })));
        }
    }
}

struct Model {
    total: usize,
    /// Detached ids, current or stale (at most `MAX_IDS`).
    ids: Vec<(CellId, bool)>,
    /// The byte each cell was last filled with.
    fill: Vec<u8>,
    next_fill: u8,
    /// An id of the other Grid.
    other_id: CellId,
}

impl Model {
    fn current_ids(&self) -> usize {
        self.ids.iter().filter(|(_, current)| *current).count()
    }

    /// Cells on the shared stack, as the model counts them.
    fn stack(&self, held: usize, cached: usize) -> usize {
        self.total - held - self.current_ids() - cached
    }

    fn check_counts(&self, grid: &Grid, held: usize, cached: usize) {
        let free = self.stack(held, cached);
        assert_eq!(
            grid.free(),
            free,
            "free(): {held} held, {cached} cached, ids {:?}",
            self.ids
        );
        assert_eq!(grid.in_use(), self.total - free, "in_use()");
        assert!(grid.peak_in_use() >= grid.in_use() && grid.peak_in_use() <= self.total);
    }

    /// A cell just handed out: nobody else holds it, and it reads its last fill.
    fn handed_out(&self, cell: &Cell<'_>, held: &[Cell<'_>]) {
        let index = cell.index();
        assert!(
            (index as usize) < self.total,
            "cell index {index} out of range"
        );
        assert!(
            held.iter().all(|c| c.index() != index),
            "cell {index} handed out twice"
        );
        assert!(
            self.ids
                .iter()
                .all(|(id, current)| !current || id.index() != index),
            "cell {index} handed out while an id of it is current"
        );
        let want = self.fill[index as usize];
        let bytes = cell.as_slice::<u8>();
        assert_eq!(bytes.len(), cell.size());
        if let Some(at) = bytes.iter().position(|&b| b != want) {
            panic!(
                "cell {index} holds {:#x} at {at}, was filled with {want:#x}",
                bytes[at]
            );
        }
    }

    fn next_fill(&mut self) -> u8 {
        self.next_fill = self.next_fill.wrapping_add(1) | 1;
        self.next_fill
    }
}

/// Runs ops until a clear (true) or the end of the input (false).
fn epoch<'g>(
    grid: &'g Grid,
    other: &'g Grid,
    model: &mut Model,
    r: &mut Reader,
    ops: &mut usize,
) -> bool {
    let mut held: Vec<Cell<'g>> = Vec::new();
    let mut lanes: Vec<GridLane<'g>> = Vec::new();
    while !r.is_empty() && *ops < MAX_OPS {
        *ops += 1;
        let cached: usize = lanes.iter().map(GridLane::cached).sum();
        let stack = model.stack(held.len(), cached);
        let (op, pick) = (r.choose(16), r.u8() as usize);
        match op {
            0..=2 => {
                let cell = if op == 2 {
                    grid.try_take().map_err(|err| {
                        assert_eq!(err, MemError::GridFull { cells: model.total });
                    })
                } else {
                    grid.take().ok_or(())
                };
                assert_eq!(cell.is_ok(), stack > 0, "take with {stack} on the stack");
                if let Ok(cell) = cell {
                    model.handed_out(&cell, &held);
                    held.push(cell);
                }
            }
            3..=5 if !held.is_empty() => {
                let cell = held.swap_remove(pick % held.len());
                match op {
                    3 => grid.give(cell).expect("give a cell home"),
                    4 => assert_eq!(
                        other.give(cell),
                        Err(MemError::ForeignCell {
                            grid: other.id(),
                            owner: grid.id()
                        })
                    ),
                    _ => drop(cell),
                }
            }
            6 if !held.is_empty() => {
                let fill = model.next_fill();
                let n = held.len();
                let cell = &mut held[pick % n];
                cell.bytes().fill(fill);
                model.fill[cell.index() as usize] = fill;
            }
            7 if !held.is_empty() && model.ids.len() < MAX_IDS => {
                let cell = held.swap_remove(pick % held.len());
                let index = cell.index();
                let id = cell.into_id();
                assert_eq!((id.index(), id.grid()), (index, grid.id()));
                model.ids.push((id, true));
            }
            8..=10 if !model.ids.is_empty() => {
                let at = pick % model.ids.len();
                let (id, current) = model.ids[at];
                let result = match op {
                    8 => grid.release(id).map(|()| None),
                    9 => grid.claim(id).map(Some),
                    _ => grid.cell(id).map(|ptr| {
                        let fill = model.next_fill();
                        // SAFETY: the id is current (checked by `cell`), so the cell is
                        // detached and its holders (this model) own its bytes.
                        unsafe { ptr.write_bytes(fill, grid.cell_size()) };
                        model.fill[id.index() as usize] = fill;
                        None
                    }),
                };
                match result {
                    Ok(cell) => {
                        assert!(current, "a stale id {id:?} was accepted (op {op})");
                        if op != 10 {
                            model.ids[at].1 = false;
                        }
                        if let Some(cell) = cell {
                            model.handed_out(&cell, &held);
                            held.push(cell);
                        }
                    }
                    Err(err) => {
                        assert!(!current, "a current id {id:?} was refused: {err}");
                        assert!(matches!(err, MemError::StaleCell { .. }), "{err:?}");
                    }
                }
            }
            11 => {
                let foreign = MemError::ForeignCell {
                    grid: grid.id(),
                    owner: other.id(),
                };
                assert_eq!(grid.release(model.other_id), Err(foreign.clone()));
                assert_eq!(grid.claim(model.other_id).unwrap_err(), foreign);
                if let Some(&(id, _)) = model.ids.get(pick % model.ids.len().max(1)) {
                    assert!(matches!(
                        other.release(id),
                        Err(MemError::ForeignCell { .. })
                    ));
                }
            }
            12 if lanes.len() < MAX_LANES => {
                let batch = match r.choose(4) {
                    0 => 0,
                    1 => r.u16() as usize,
                    _ => 1 + r.u8() as usize % 16,
                };
                let lane = grid.lane(batch);
                assert_eq!(
                    lane.batch(),
                    batch.min(model.total).min(GridLane::MAX_BATCH)
                );
                assert_eq!(lane.cached(), 0);
                lanes.push(lane);
            }
            13 if !lanes.is_empty() => {
                let n = lanes.len();
                let lane = &mut lanes[pick % n];
                match r.choose(4) {
                    0 | 1 => {
                        let had = lane.cached();
                        let cell = lane.take();
                        assert_eq!(
                            cell.is_some(),
                            had > 0 || stack > 0,
                            "lane take with {had} cached, {stack} on the stack"
                        );
                        if let Some(cell) = cell {
                            model.handed_out(&cell, &held);
                            held.push(cell);
                        }
                    }
                    2 if !held.is_empty() => {
                        let cell = held.swap_remove(r.u8() as usize % held.len());
                        lane.give(cell).expect("give a cell to its Grid's lane");
                    }
                    _ if !model.ids.is_empty() => {
                        let at = r.u8() as usize % model.ids.len();
                        let (id, current) = model.ids[at];
                        match lane.release(id) {
                            Ok(()) => {
                                assert!(current, "a lane accepted a stale id {id:?}");
                                model.ids[at].1 = false;
                            }
                            Err(err) => {
                                assert!(!current, "a lane refused a current id {id:?}: {err}");
                            }
                        }
                    }
                    _ => {}
                }
            }
            14 if !lanes.is_empty() => drop(lanes.swap_remove(pick % lanes.len())),
            15 => return true,
            _ => {}
        }
        let cached: usize = lanes.iter().map(GridLane::cached).sum();
        model.check_counts(grid, held.len(), cached);
    }
    false
}

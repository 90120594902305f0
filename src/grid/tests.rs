//! Grid, Cell, CellId and GridLane unit tests, run natively and under Miri (on the portable
//! heap Block, with strict provenance): geometry, every error, the stack order, the counts,
//! ids (stale, foreign, claimed, cleared), lanes, initialized bytes, threads, and a
//! model-based property test of random programs.

use proptest::prelude::*;

use super::*;
use crate::Pin;

/// Fewer iterations under Miri, which runs about a million times slower.
const fn scaled(native: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { native }
}

fn grid(cell_size: usize, cells: usize) -> Grid {
    Grid::builder(cell_size, cells)
        .pin(Pin::BestEffort)
        .open()
        .unwrap()
}

fn tape(size: usize) -> Tape {
    Tape::over(Block::builder(size).pin(Pin::BestEffort).open().unwrap())
}

#[test]
fn geometry_rounds_aligns_and_tiles() {
    let grid = grid(100, 10);
    assert_eq!(grid.cell_size(), 128);
    assert_eq!(grid.cell_align(), 64);
    assert_eq!(grid.total(), 10);
    assert_eq!(grid.tape().used(), 1280);
    let base = grid.tape().block().address() as usize;
    let mut cells: Vec<Cell<'_>> = (0..10).map(|_| grid.take().unwrap()).collect();
    for (i, cell) in cells.iter_mut().enumerate() {
        assert_eq!(cell.index(), i as u32, "fresh cells come in index order");
        assert_eq!(cell.offset(), i * 128);
        assert_eq!(cell.address() as usize, base + i * 128);
        assert_eq!(grid.cell_offset(cell.index()), Some(cell.offset()));
        assert_eq!(cell.size(), 128);
        assert_eq!(cell.bytes().len(), 128);
        assert_eq!(cell.as_slice_mut::<u64>().len(), 16);
        assert_eq!(cell.as_slice::<[u8; 3]>().len(), 42);
        assert!(std::ptr::eq(cell.grid(), &grid));
    }
    assert_eq!(grid.cell_offset(10), None);
    assert_eq!(grid.cell_offset(u32::MAX), None);
}

#[test]
fn larger_alignments_round_the_size_and_pad_the_take() {
    let page = crate::page_size();
    let grid = Grid::builder(1, 3)
        .align(2 * page)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    assert_eq!(grid.cell_size(), 2 * page);
    assert_eq!(grid.cell_align(), 2 * page);
    for _ in 0..3 {
        let cell = grid.take().unwrap();
        assert_eq!(cell.address() as usize % (2 * page), 0);
        assert_eq!(cell.offset() % page, 0);
        let _ = cell.into_id();
    }
    // Small alignments mean 64.
    let grid = Grid::builder(65, 2)
        .align(8)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    assert_eq!((grid.cell_size(), grid.cell_align()), (128, 64));
}

#[test]
fn over_keeps_the_rest_of_the_tape() {
    let t = tape(64 << 10);
    let before = t.take(100, 8).unwrap();
    let tape_id = t.block().id();
    let grid = Grid::over(t, 1024, 8).unwrap();
    assert_eq!(grid.tape().block().id(), tape_id);
    // The cells start at the next 64-byte boundary after the earlier take.
    assert_eq!(grid.cell_offset(0), Some(128));
    assert_eq!(grid.tape().used(), 128 + 8 * 1024);
    let after = grid.tape().take(64, 64).unwrap();
    assert_eq!(grid.tape().offset_of(after), Some(128 + 8 * 1024));
    assert_eq!(grid.tape().offset_of(before), Some(0));
    let t = grid.into_tape();
    assert_eq!(t.used(), 128 + 8 * 1024 + 64);
}

#[test]
fn every_refusal_says_why() {
    let open = |cell_size, cells| Grid::builder(cell_size, cells).pin(Pin::BestEffort).open();
    assert_eq!(
        open(0, 4).unwrap_err(),
        MemError::EmptyGrid {
            cell_size: 0,
            cells: 4
        }
    );
    assert_eq!(
        open(64, 0).unwrap_err(),
        MemError::EmptyGrid {
            cell_size: 64,
            cells: 0
        }
    );
    assert_eq!(
        Grid::builder(64, 4).align(48).open().unwrap_err(),
        MemError::BadAlignment { align: 48 }
    );
    assert_eq!(
        Grid::builder(64, 4).align(0).open().unwrap_err(),
        MemError::BadAlignment { align: 0 }
    );
    assert_eq!(
        open(64, Grid::MAX_CELLS + 1).unwrap_err(),
        MemError::TooManyCells {
            cells: Grid::MAX_CELLS + 1,
            max: Grid::MAX_CELLS
        }
    );
    for (cell_size, cells, align) in [
        (usize::MAX, 1, 64),
        (usize::MAX - 62, 1, 64),
        (1 << 40, 1 << 30, 64),
        (isize::MAX as usize / 2 + 1, 2, 64),
        (1, 1, 1 << 63),
    ] {
        let builder = Grid::builder(cell_size, cells).align(align);
        let want = MemError::GridOverflow {
            cell_size,
            cells,
            align,
        };
        assert_eq!(builder.room().unwrap_err(), want);
        assert_eq!(builder.open().unwrap_err(), want);
    }
    assert_eq!(Grid::builder(100, 3).room(), Ok(384));
    // Not enough room in the Tape.
    let t = tape(4096);
    t.take(100, 1).unwrap();
    assert_eq!(
        Grid::over(t, 1024, 4).unwrap_err(),
        MemError::TapeFull {
            requested: 4096,
            align: 64,
            free: 3996
        }
    );
    // A Grid's own Block is sized for it: exactly full.
    let grid = grid(4096, 3);
    assert_eq!(grid.tape().free(), 0);
    let cells: Vec<_> = (0..3).map(|_| grid.try_take().unwrap()).collect();
    assert_eq!(
        grid.try_take().unwrap_err(),
        MemError::GridFull { cells: 3 }
    );
    assert!(grid.take().is_none());
    drop(cells);
}

#[test]
fn most_recently_freed_first() {
    let grid = grid(64, 8);
    let a = grid.take().unwrap();
    let b = grid.take().unwrap();
    let c = grid.take().unwrap();
    assert_eq!((a.index(), b.index(), c.index()), (0, 1, 2));
    drop(a);
    grid.give(c).unwrap();
    // c was freed last: it comes first, then a, then the never-taken 3.
    assert_eq!(grid.take().unwrap().index(), 2);
    let x = grid.take().unwrap();
    let y = grid.take().unwrap();
    let z = grid.take().unwrap();
    assert_eq!((x.index(), y.index(), z.index()), (2, 0, 3));
    drop(b);
}

#[test]
fn counts_free_in_use_and_peak() {
    let grid = grid(64, 10);
    assert_eq!((grid.free(), grid.in_use(), grid.peak_in_use()), (10, 0, 0));
    let cells: Vec<_> = (0..4).map(|_| grid.take().unwrap()).collect();
    assert_eq!((grid.free(), grid.in_use(), grid.peak_in_use()), (6, 4, 4));
    drop(cells);
    assert_eq!((grid.free(), grid.in_use(), grid.peak_in_use()), (10, 0, 4));
    let id = grid.take().unwrap().into_id();
    assert_eq!((grid.free(), grid.in_use()), (9, 1));
    grid.release(id).unwrap();
    assert_eq!(grid.free(), 10);
    {
        let mut lane = grid.lane(3);
        let cell = lane.take().unwrap();
        // The lane's cache counts as in use.
        assert_eq!((grid.free(), lane.cached()), (7, 2));
        lane.give(cell).unwrap();
        assert_eq!((grid.free(), lane.cached()), (7, 3));
    }
    assert_eq!((grid.free(), grid.in_use(), grid.peak_in_use()), (10, 0, 4));
    let mut grid = grid;
    for _ in 0..7 {
        let _ = grid.take().unwrap().into_id();
    }
    assert_eq!(grid.peak_in_use(), 7);
    grid.clear();
    assert_eq!((grid.free(), grid.in_use(), grid.peak_in_use()), (10, 0, 7));
}

#[test]
fn ids_release_once() {
    let grid = grid(64, 4);
    let cell = grid.take().unwrap();
    let index = cell.index();
    let id = cell.into_id();
    assert_eq!(id.index(), index);
    assert_eq!(id.grid(), grid.id());
    let p = grid.cell(id).unwrap();
    assert_eq!(p, grid.tape().block().address());
    grid.release(id).unwrap();
    let stale = MemError::StaleCell {
        index,
        generation: id.generation(),
        current: id.generation() + 1,
    };
    assert_eq!(grid.release(id).unwrap_err(), stale);
    assert_eq!(grid.cell(id).unwrap_err(), stale);
    assert!(matches!(grid.claim(id), Err(MemError::StaleCell { .. })));
    // The same cell, taken again, keeps the generation the release gave it: the old id stays stale.
    let again = grid.take().unwrap().into_id();
    assert_eq!(again.index(), index);
    assert_eq!(again.generation(), id.generation() + 1);
    assert_ne!(again, id);
    assert!(grid.release(id).is_err());
    grid.release(again).unwrap();
    assert_eq!(grid.free(), 4);
}

#[test]
fn foreign_cells_and_ids_are_rejected() {
    let (a, b) = (grid(64, 4), grid(64, 4));
    assert_ne!(a.id(), b.id());
    let foreign = MemError::ForeignCell {
        grid: b.id(),
        owner: a.id(),
    };
    let cell = a.take().unwrap();
    assert_eq!(b.give(cell).unwrap_err(), foreign);
    assert_eq!((a.free(), b.free()), (4, 4), "the cell went home");
    let cell = a.take().unwrap();
    assert_eq!(b.lane(2).give(cell).unwrap_err(), foreign);
    assert_eq!(a.free(), 4);
    let id = a.take().unwrap().into_id();
    assert_eq!(b.release(id).unwrap_err(), foreign);
    assert_eq!(b.cell(id).unwrap_err(), foreign);
    assert!(b.claim(id).is_err());
    assert_eq!(b.lane(2).release(id).unwrap_err(), foreign);
    assert_eq!(b.free(), 4);
    a.release(id).unwrap();
    // An id outliving its Grid never matches a later one, even one at the same address.
    let old = grid(64, 4);
    let id = old.take().unwrap().into_id();
    let old_id = old.id();
    drop(old);
    let new = grid(64, 4);
    assert_eq!(
        new.release(id).unwrap_err(),
        MemError::ForeignCell {
            grid: new.id(),
            owner: old_id
        }
    );
}

#[test]
fn claims_make_copies_stale() {
    let grid = grid(64, 4);
    let id = grid.take().unwrap().into_id();
    let mut cell = grid.claim(id).unwrap();
    cell.bytes()[0] = 1;
    assert!(grid.claim(id).is_err());
    assert!(grid.release(id).is_err());
    assert!(grid.cell(id).is_err());
    let id2 = cell.into_id();
    assert_eq!(id2.generation(), id.generation() + 1);
    let offset = grid.cell_offset(id2.index()).unwrap();
    assert_eq!(
        grid.cell(id2).unwrap(),
        grid.tape().block().address().wrapping_add(offset)
    );
    grid.release(id2).unwrap();
    assert_eq!(grid.free(), 4);
}

#[test]
fn cell_mut_needs_a_current_id() {
    let mut grid = grid(256, 4);
    let id = grid.take().unwrap().into_id();
    grid.cell_mut(id).unwrap().fill(0xAB);
    assert!(
        grid.cell_slice_mut::<u64>(id)
            .unwrap()
            .iter()
            .all(|&w| w == 0xABAB_ABAB_ABAB_ABAB)
    );
    assert_eq!(grid.cell_slice_mut::<u32>(id).unwrap().len(), 64);
    let p = grid.cell(id).unwrap();
    // SAFETY: the id is current and no other view of the cell is alive.
    assert_eq!(unsafe { *p.add(255) }, 0xAB);
    grid.release(id).unwrap();
    assert!(matches!(grid.cell_mut(id), Err(MemError::StaleCell { .. })));
}

#[test]
fn clear_frees_everything_and_stales_every_id() {
    let mut grid = grid(64, 6);
    let ids: Vec<_> = (0..5).map(|_| grid.take().unwrap().into_id()).collect();
    grid.release(ids[1]).unwrap();
    grid.clear();
    assert_eq!(grid.free(), 6);
    for id in &ids {
        assert!(matches!(grid.release(*id), Err(MemError::StaleCell { .. })));
    }
    // Back to index order, generations past every id ever made.
    let again: Vec<_> = (0..6).map(|_| grid.take().unwrap().into_id()).collect();
    for (i, id) in again.iter().enumerate() {
        assert_eq!(id.index(), i as u32);
        assert!(!ids.contains(id));
    }
    for id in again {
        grid.release(id).unwrap();
    }
    grid.clear();
    grid.clear();
    assert_eq!(grid.free(), 6);
}

#[test]
fn bytes_are_zero_then_kept() {
    let grid = grid(128, 4);
    let mut a = grid.take().unwrap();
    assert!(a.bytes().iter().all(|&b| b == 0));
    a.as_slice_mut::<u32>().fill(7);
    drop(a);
    let b = grid.take().unwrap();
    assert!(
        b.as_slice::<u32>().iter().all(|&x| x == 7),
        "the same cell, as left"
    );
}

#[test]
fn a_reused_tape_gives_zeroed_cells() {
    let mut t = tape(8192);
    let p = t.take(8192, 64).unwrap();
    // SAFETY: the take is this test's, 8192 bytes.
    unsafe { p.write_bytes(0xEE, 8192) };
    t.clear();
    let grid = Grid::over(t, 1024, 8).unwrap();
    for _ in 0..8 {
        let cell = grid.take().unwrap();
        assert!(cell.as_slice::<u8>().iter().all(|&b| b == 0));
        let _ = cell.into_id();
    }
}

#[test]
fn lanes_refill_spill_and_return() {
    let grid = grid(64, 16);
    let mut lane = grid.lane(4);
    assert_eq!(lane.batch(), 4);
    assert!(std::ptr::eq(lane.grid(), &grid));
    // The first take refills 4: 0, 1, 2, 3, handing out 0 first.
    let a = lane.take().unwrap();
    assert_eq!(a.index(), 0);
    assert_eq!((lane.cached(), grid.free()), (3, 12));
    let mut held = vec![a];
    for want in 1..8 {
        let cell = lane.take().unwrap();
        assert_eq!(cell.index(), want, "lanes hand out in stack order too");
        held.push(cell);
    }
    assert_eq!((lane.cached(), grid.free()), (0, 8));
    // Giving 8 back fills the cache (8 = 2 * batch), the 9th spills the 4 oldest.
    for cell in held.drain(..) {
        lane.give(cell).unwrap();
    }
    assert_eq!((lane.cached(), grid.free()), (8, 8));
    let extra = grid.take().unwrap();
    assert_eq!(extra.index(), 8);
    lane.give(extra).unwrap();
    assert_eq!((lane.cached(), grid.free()), (5, 11));
    // The most recent stays cached: 8 first, then 7.
    assert_eq!(lane.take().unwrap().index(), 8);
    let seven = lane.take().unwrap();
    assert_eq!(seven.index(), 7);
    // A lane's cell is an ordinary cell: the Grid takes it back.
    grid.give(seven).unwrap();
    assert_eq!(grid.take().unwrap().index(), 7);
    drop(lane);
    assert_eq!(grid.free(), 16);
    // The lane's cache went on top, newest first, above 7, 8 and the spilled 3, 2, 1, 0.
    let order: Vec<u32> = (0..9)
        .map(|_| grid.take().unwrap().into_id().index())
        .collect();
    assert_eq!(order, [6, 5, 4, 7, 8, 3, 2, 1, 0]);
}

#[test]
fn lane_batches_are_capped_and_zero_passes_through() {
    if !cfg!(miri) {
        let big = grid(64, GridLane::MAX_BATCH + 1);
        assert_eq!(big.lane(usize::MAX).batch(), GridLane::MAX_BATCH);
    }
    let grid = grid(64, 3);
    let mut lane = grid.lane(usize::MAX);
    assert_eq!(lane.batch(), 3);
    let cells: Vec<_> = (0..3).map(|_| lane.take().unwrap()).collect();
    assert_eq!(
        lane.try_take().unwrap_err(),
        MemError::GridFull { cells: 3 }
    );
    for cell in cells {
        lane.give(cell).unwrap();
    }
    assert_eq!(lane.cached(), 3);
    drop(lane);
    let mut lane = grid.lane(0);
    let cell = lane.take().unwrap();
    assert_eq!((lane.cached(), grid.free()), (0, 2));
    lane.give(cell).unwrap();
    assert_eq!((lane.cached(), grid.free()), (0, 3));
    let id = lane.take().unwrap().into_id();
    lane.release(id).unwrap();
    assert_eq!(grid.free(), 3);
}

#[test]
fn lane_release_caches_and_rejects_stale() {
    let grid = grid(64, 8);
    let id = grid.take().unwrap().into_id();
    let mut lane = grid.lane(2);
    lane.release(id).unwrap();
    assert_eq!((lane.cached(), grid.free()), (1, 7));
    assert!(matches!(lane.release(id), Err(MemError::StaleCell { .. })));
    assert_eq!(lane.take().unwrap().index(), id.index());
}

#[test]
fn debug_shows_the_state() {
    let grid = grid(64, 2);
    let cell = grid.take().unwrap();
    let lane = grid.lane(1);
    let text = format!("{grid:?} {cell:?} {lane:?} {:?}", Grid::builder(1, 1));
    for part in [
        "Grid",
        "free: 1",
        "Cell",
        "index: 0",
        "GridLane",
        "GridBuilder",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
    let id = cell.into_id();
    assert!(format!("{id:?}").contains("CellId"));
}

#[test]
fn types_are_send_and_sync_as_documented() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Grid>();
    send_sync::<Cell<'static>>();
    send_sync::<CellId>();
    send::<GridLane<'static>>();
    assert_eq!(size_of::<CellId>(), 24);
    assert_eq!(size_of::<Option<Cell<'static>>>(), 16);
}

/// Threads churn cells through the shared path and through lanes, each writing its mark
/// into the cell and checking it on give: two owners at once would overwrite each other.
#[test]
fn threads_never_share_a_cell() {
    let grid = grid(64, 32);
    let rounds = scaled(2000, 30);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let grid = &grid;
            s.spawn(move || {
                let mut lane = (t % 2 == 1).then(|| grid.lane(4));
                let mut held = Vec::new();
                for i in 0..rounds as u64 {
                    let cell = match lane.as_mut() {
                        Some(lane) => lane.take(),
                        None => grid.take(),
                    };
                    if let Some(mut cell) = cell {
                        let mark = t << 32 | i;
                        cell.as_slice_mut::<u64>().fill(mark);
                        held.push((cell, mark));
                    }
                    if held.len() > 3 || (i % 3 == 0 && !held.is_empty()) {
                        let (cell, mark) = held.swap_remove(0);
                        assert!(cell.as_slice::<u64>().iter().all(|&w| w == mark));
                        match lane.as_mut() {
                            Some(lane) => lane.give(cell).unwrap(),
                            None if i % 2 == 0 => grid.give(cell).unwrap(),
                            None => grid.release(cell.into_id()).unwrap(),
                        }
                    }
                }
            });
        }
    });
    assert_eq!(grid.free(), 32);
    assert!(grid.peak_in_use() <= 32);
}

/// A stale depth (what `free()` can read from a cell popped mid-reading, rewritten by a push
/// in flight) is clamped: `free()` never exceeds the cell count and `in_use()` never
/// underflows.
#[test]
fn stale_depths_are_clamped() {
    let grid = grid(64, 4);
    let top = grid.take().unwrap().into_id();
    grid.release(top).unwrap();
    // The top cell's link now claims far more cells than the Grid has.
    grid.list.forge_depth(top.index(), 1000);
    assert_eq!(grid.free(), 4);
    assert_eq!(grid.in_use(), 0);
    grid.list.forge_depth(top.index(), u32::MAX);
    assert_eq!(grid.free() + grid.in_use(), grid.total());
}

/// Readers of the counts race takers and givers: every reading is within the Grid, and
/// `free() + in_use() == total()` for each reading of `free()`. Nothing may panic.
#[test]
fn counts_stay_within_the_grid_under_churn() {
    let grid = grid(64, 8);
    let rounds = scaled(5000, 40);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                assert!(grid.in_use() <= grid.total());
                assert!(grid.free() <= grid.total());
                assert!(grid.peak_in_use() <= grid.total());
            }
        });
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let grid = &grid;
                s.spawn(move || {
                    let mut lane = (t == 1).then(|| grid.lane(2));
                    for _ in 0..rounds {
                        let taken = match lane.as_mut() {
                            Some(lane) => lane.take(),
                            None => grid.take(),
                        };
                        if let Some(cell) = taken {
                            match lane.as_mut() {
                                Some(lane) => lane.give(cell).unwrap(),
                                None => grid.give(cell).unwrap(),
                            }
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap();
    });
    assert_eq!(grid.free(), 8);
}

/// Two threads race to release copies of the same ids: exactly one wins each.
#[test]
fn racing_releases_have_one_winner() {
    let grid = grid(64, 16);
    let rounds = scaled(500, 10);
    for _ in 0..rounds {
        let ids: Vec<CellId> = (0..8).map(|_| grid.take().unwrap().into_id()).collect();
        let wins: usize = std::thread::scope(|s| {
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let (grid, ids) = (&grid, &ids);
                    s.spawn(move || ids.iter().filter(|&&id| grid.release(id).is_ok()).count())
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).sum()
        });
        assert_eq!(wins, 8);
        assert_eq!(grid.free(), 16);
    }
}

// ---- the model-based property test ----

#[derive(Debug, Clone)]
enum Op {
    Take,
    LaneTake,
    /// Give the n-th held Cell (modulo), to the Grid or to the lane.
    Give(usize, bool),
    /// Give the n-th held Cell to the other Grid.
    GiveForeign(usize),
    /// Detach the n-th held Cell.
    IntoId(usize),
    /// Release the n-th id ever made (valid or stale), to the Grid or to the lane.
    Release(usize, bool),
    /// Claim the n-th id ever made.
    Claim(usize),
    /// Release an id of the other Grid.
    ReleaseForeign,
    /// Drop the lane (if any) and make a new one with this batch.
    NewLane(usize),
    /// Drop every Cell and the lane, then clear.
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Take),
        3 => Just(Op::LaneTake),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(n, lane)| Op::Give(n, lane)),
        1 => any::<usize>().prop_map(Op::GiveForeign),
        2 => any::<usize>().prop_map(Op::IntoId),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(n, lane)| Op::Release(n, lane)),
        1 => any::<usize>().prop_map(Op::Claim),
        1 => Just(Op::ReleaseForeign),
        1 => (0usize..5).prop_map(Op::NewLane),
        1 => Just(Op::Clear),
    ]
}

/// The model: the shared stack, the lane's cache, and who owns what, exactly.
#[derive(Debug, Default)]
struct Model {
    /// Free cells, top last.
    shared: Vec<u32>,
    /// The lane's cache, most recent last, and its batch.
    cache: Vec<u32>,
    batch: usize,
    /// Current generation of every cell.
    generation: Vec<u64>,
    low: usize,
}

impl Model {
    fn new(cells: u32) -> Model {
        Model {
            shared: (0..cells).rev().collect(),
            generation: vec![0; cells as usize],
            low: cells as usize,
            ..Model::default()
        }
    }

    fn pop(&mut self) -> Option<u32> {
        let cell = self.shared.pop()?;
        self.low = self.low.min(self.shared.len());
        Some(cell)
    }

    fn lane_take(&mut self) -> Option<u32> {
        if self.batch == 0 {
            return self.pop();
        }
        if self.cache.is_empty() {
            let got: Vec<u32> = (0..self.batch).map_while(|_| self.shared.pop()).collect();
            self.low = self.low.min(self.shared.len());
            self.cache.extend(got.into_iter().rev());
        }
        self.cache.pop()
    }

    fn lane_give(&mut self, cell: u32) {
        if self.batch == 0 {
            return self.shared.push(cell);
        }
        if self.cache.len() == 2 * self.batch {
            let old: Vec<u32> = self.cache.drain(..self.batch).collect();
            self.shared.extend(old);
        }
        self.cache.push(cell);
    }

    fn drop_lane(&mut self) {
        let cache = std::mem::take(&mut self.cache);
        self.shared.extend(cache);
    }
}

fn run(program: &[Op]) {
    const CELLS: u32 = 6;
    let mut grid = grid(64, CELLS as usize);
    let other = self::grid(64, 2);
    let foreign_id = other.take().unwrap().into_id();
    let mut model = Model::new(CELLS);
    let mut ids: Vec<CellId> = Vec::new();
    let mut ops = program.iter().peekable();
    while ops.peek().is_some() {
        // One epoch: Cells and the lane borrow the Grid until a Clear.
        {
            let mut held: Vec<(Cell<'_>, u64)> = Vec::new();
            let mut lane: Option<GridLane<'_>> = None;
            let mut stamp = 0u64;
            for op in ops.by_ref() {
                stamp += 1;
                let mut got = None;
                match *op {
                    Op::Take => {
                        let want = model.pop();
                        got = Some((grid.take(), want));
                    }
                    Op::LaneTake if lane.is_some() => {
                        let want = model.lane_take();
                        got = Some((lane.as_mut().and_then(GridLane::take), want));
                    }
                    Op::Give(n, to_lane) if !held.is_empty() => {
                        let (cell, mark) = held.swap_remove(n % held.len());
                        assert!(cell.as_slice::<u64>().iter().all(|&w| w == mark));
                        let index = cell.index();
                        match lane.as_mut() {
                            Some(lane) if to_lane => {
                                lane.give(cell).unwrap();
                                model.lane_give(index);
                            }
                            _ => {
                                grid.give(cell).unwrap();
                                model.shared.push(index);
                            }
                        }
                    }
                    Op::GiveForeign(n) if !held.is_empty() => {
                        let (cell, _) = held.swap_remove(n % held.len());
                        let index = cell.index();
                        assert!(matches!(
                            other.give(cell),
                            Err(MemError::ForeignCell { .. })
                        ));
                        model.shared.push(index);
                    }
                    Op::IntoId(n) if !held.is_empty() => {
                        let (cell, _) = held.swap_remove(n % held.len());
                        let id = cell.into_id();
                        assert_eq!(id.generation(), model.generation[id.index() as usize]);
                        ids.push(id);
                    }
                    Op::Release(n, to_lane) if !ids.is_empty() => {
                        let id = ids[n % ids.len()];
                        let current = model.generation[id.index() as usize];
                        let result = match lane.as_mut() {
                            Some(lane) if to_lane => lane.release(id),
                            _ => grid.release(id),
                        };
                        if current == id.generation() {
                            result.unwrap();
                            model.generation[id.index() as usize] += 1;
                            match lane {
                                Some(_) if to_lane => model.lane_give(id.index()),
                                _ => model.shared.push(id.index()),
                            }
                        } else {
                            assert_eq!(
                                result.unwrap_err(),
                                MemError::StaleCell {
                                    index: id.index(),
                                    generation: id.generation(),
                                    current
                                }
                            );
                        }
                    }
                    Op::Claim(n) if !ids.is_empty() => {
                        let id = ids[n % ids.len()];
                        let current = model.generation[id.index() as usize];
                        match grid.claim(id) {
                            Ok(mut cell) => {
                                assert_eq!(current, id.generation());
                                model.generation[id.index() as usize] += 1;
                                let mark = stamp << 8 | 1;
                                cell.as_slice_mut::<u64>().fill(mark);
                                held.push((cell, mark));
                            }
                            Err(err) => {
                                assert_ne!(current, id.generation());
                                assert!(matches!(err, MemError::StaleCell { .. }));
                            }
                        }
                    }
                    Op::ReleaseForeign => {
                        assert_eq!(
                            grid.release(foreign_id).unwrap_err(),
                            MemError::ForeignCell {
                                grid: grid.id(),
                                owner: other.id()
                            }
                        );
                    }
                    Op::NewLane(batch) => {
                        drop(lane.take());
                        model.drop_lane();
                        lane = Some(grid.lane(batch));
                        model.batch = batch;
                    }
                    Op::Clear => break,
                    _ => {}
                }
                if let Some((cell, want)) = got {
                    assert_eq!(cell.as_ref().map(Cell::index), want);
                    if let Some(mut cell) = cell {
                        let mark = stamp << 8;
                        cell.as_slice_mut::<u64>().fill(mark);
                        held.push((cell, mark));
                    }
                }
                assert_eq!(grid.free(), model.shared.len());
                assert_eq!(grid.in_use(), CELLS as usize - model.shared.len());
                assert_eq!(grid.peak_in_use(), CELLS as usize - model.low);
                if let Some(lane) = &lane {
                    assert_eq!(lane.cached(), model.cache.len());
                }
            }
            // End of the epoch: the Cells go back (in this order), then the lane's cache.
            for (cell, _) in held.drain(..) {
                model.shared.push(cell.index());
            }
            drop(lane);
            model.drop_lane();
            assert_eq!(grid.free(), model.shared.len());
        }
        // A Clear (or the end): every cell free in index order, every generation moved forward.
        grid.clear();
        model.shared = (0..CELLS).rev().collect();
        for generation in &mut model.generation {
            *generation += 1;
        }
        assert_eq!(grid.free(), CELLS as usize);
    }
    // Every detached id of this run is stale now, and the generations agree.
    for id in ids {
        let current = model.generation[id.index() as usize];
        assert_eq!(
            grid.release(id).unwrap_err(),
            MemError::StaleCell {
                index: id.index(),
                generation: id.generation(),
                current
            }
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: scaled(512, 6) as u32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random programs of takes and gives (shared and through a lane), detaches, releases
    /// (current, stale and foreign), claims, foreign gives, new lanes and clears, against
    /// a model of the exact stack order: every take returns the cell the model predicts,
    /// every error is the model's, the counts match at every step, and no cell's contents
    /// are disturbed while it is held.
    #[test]
    fn random_programs_match_the_model(program in prop::collection::vec(op(), 1..scaled(60, 16))) {
        run(&program);
    }
}

// Cells lent to a device copy (`flight.rs`).

fn ids(grid: &Grid, n: usize) -> Vec<CellId> {
    (0..n).map(|_| grid.take().unwrap().into_id()).collect()
}

#[test]
fn lent_cells_refuse_every_use_until_given_back() {
    let mut grid = grid(64, 8);
    let ids = ids(&grid, 3);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let lent = grid.lend([a, b].into_iter(), false).unwrap();
    assert_eq!(lent.len(), 2);
    let in_flight = |id: CellId| MemError::CellInFlight {
        grid: grid.id(),
        index: id.index(),
    };
    assert_eq!(grid.release(a).unwrap_err(), in_flight(a));
    assert_eq!(grid.claim(b).map(|_| ()).unwrap_err(), in_flight(b));
    assert_eq!(grid.cell(a).unwrap_err(), in_flight(a));
    assert_eq!(grid.lane(2).release(b).unwrap_err(), in_flight(b));
    assert_eq!(in_flight(a).kind(), crate::ErrorKind::Busy);
    // A second copy cannot have them either; the first keeps them.
    assert_eq!(
        grid.lend([c, b].into_iter(), true).unwrap_err(),
        in_flight(b)
    );
    grid.cell(c).unwrap(); // c was given back by the refused lend
    assert_eq!((grid.free(), grid.in_use()), (5, 3));
    grid.give_back(lent);
    // The same ids work again, and with `&mut` the bytes are reachable.
    grid.cell_mut(a).unwrap().fill(1);
    grid.claim(b).unwrap().bytes().fill(2);
    grid.release(a).unwrap();
    grid.release(c).unwrap();
    assert_eq!(grid.free(), 8);
}

#[test]
fn a_refused_lend_lends_nothing() {
    let (grid, other) = (grid(64, 8), grid(64, 8));
    let ids = ids(&grid, 3);
    let stale = grid.take().unwrap().into_id();
    grid.release(stale).unwrap();
    let err = grid
        .lend([ids[0], ids[1], stale, ids[2]].into_iter(), false)
        .unwrap_err();
    assert!(matches!(err, MemError::StaleCell { .. }), "{err:?}");
    let foreign = other.take().unwrap().into_id();
    let err = grid.lend([ids[0], foreign].into_iter(), true).unwrap_err();
    assert_eq!(
        err,
        MemError::ForeignCell {
            grid: grid.id(),
            owner: other.id()
        }
    );
    for id in ids {
        grid.cell(id).unwrap();
        grid.release(id).unwrap();
    }
    assert_eq!(grid.free(), 8);
}

#[test]
fn repeats_are_lent_once_or_refused() {
    let grid = grid(64, 8);
    let ids = ids(&grid, 3);
    let list = [ids[0], ids[1], ids[0], ids[2], ids[1], ids[1]];
    let lent = grid.lend(list.into_iter(), true).unwrap();
    assert_eq!(lent.len(), 3, "each cell once");
    grid.give_back(lent);
    assert_eq!(
        grid.lend(list.into_iter(), false).unwrap_err(),
        MemError::CopyOverlap {
            first: 0,
            second: 2,
            device: false
        }
    );
    for id in ids {
        grid.release(id).unwrap(); // nothing stayed lent
    }
}

#[test]
fn clear_leaves_cells_lent_by_a_leaked_copy_out() {
    let mut grid = grid(64, 6);
    let ids = ids(&grid, 4);
    let lent = grid.lend([ids[1], ids[3]].into_iter(), false).unwrap();
    // The copy's guard would borrow the Grid; only a leaked one lets `clear` run.
    grid.clear();
    assert_eq!((grid.free(), grid.in_use()), (4, 2));
    let taken: Vec<u32> = (0..4)
        .map(|_| grid.take().unwrap().into_id().index())
        .collect();
    assert_eq!(
        taken,
        [0, 2, 4, 5],
        "the lent cells stay out, the rest in order"
    );
    assert!(grid.take().is_none());
    assert!(matches!(
        grid.release(ids[1]),
        Err(MemError::CellInFlight { index: 1, .. })
    ));
    assert!(matches!(
        grid.release(ids[0]),
        Err(MemError::StaleCell { .. })
    ));
    grid.give_back(lent); // what the guard would do: the lent ids are current again
    grid.release(ids[1]).unwrap();
    grid.release(ids[3]).unwrap();
}

// Runs (`run.rs`).

#[test]
fn runs_come_from_the_top_of_the_free_list() {
    let grid = grid(100, 10);
    assert!(grid.take_run(0).is_none());
    assert!(grid.take_run(11).is_none());
    let mut run = grid.take_run(4).unwrap();
    assert_eq!(
        (run.first(), run.len(), run.offset(), run.size()),
        (0, 4, 0, 512)
    );
    assert_eq!(run.address(), grid.tape().block().address());
    run.bytes().fill(7);
    assert_eq!(run.as_slice::<u64>().len(), 64);
    assert_eq!(grid.in_use(), 4);
    let next = grid.take_run(3).unwrap();
    assert_eq!(next.first(), 4);
    drop(run); // back on top, lowest first
    assert_eq!(grid.free(), 7);
    let again = grid.take_run(4).unwrap();
    assert_eq!(again.first(), 0);
    assert!(again.as_slice::<u8>().iter().all(|&b| b == 7));
    // Fewer free than asked: nothing changes.
    assert!(grid.take_run(4).is_none());
    assert_eq!(grid.free(), 3);
    drop((again, next));
    assert_eq!(grid.free(), 10);
}

#[test]
fn descending_runs_and_scattered_lists() {
    let mut grid = grid(64, 8);
    let cells: Vec<Cell<'_>> = (0..4).map(|_| grid.take().unwrap()).collect();
    for cell in cells {
        drop(cell); // 0, 1, 2, 3 given back one by one: 3 on top, then 2, 1, 0
    }
    let run = grid.take_run(3).unwrap();
    assert_eq!((run.first(), run.len()), (1, 3), "3, 2, 1 is the run 1..4");
    drop(run);
    let [a, b, c] = [(); 3].map(|_| grid.take().unwrap());
    let (ia, ic) = (a.index(), c.index());
    drop(a);
    drop(c);
    // The top two are not neighbours now.
    assert_eq!(ic.abs_diff(ia), 2);
    assert!(grid.take_run(2).is_none());
    drop(b);
    assert!(grid.sort_free_list());
    let run = grid.take_run(8).unwrap();
    assert_eq!(run.first(), 0);
    drop(run);
    assert_eq!(grid.free(), 8);
}

#[test]
fn run_cells_split_and_go_home() {
    let grid = grid(64, 8);
    let run = grid.take_run(5).unwrap();
    let mut cells = run.into_cells();
    assert_eq!(cells.len(), 5);
    let first = cells.next().unwrap();
    let second = cells.next().unwrap();
    assert_eq!((first.index(), second.index()), (0, 1));
    drop(cells); // 2, 3, 4 go back, as a run
    assert_eq!(grid.free(), 6);
    let ids = [first.into_id(), second.into_id()];
    let rest = grid.take_run(3).unwrap();
    assert_eq!(rest.first(), 2);
    drop(rest);
    for id in ids {
        grid.release(id).unwrap();
    }
    assert_eq!(grid.free(), 8);
}

#[test]
fn runs_race_with_takes_without_sharing_cells() {
    let grid = grid(64, 64);
    let rounds = scaled(2000, 20);
    std::thread::scope(|s| {
        for t in 0..2u8 {
            let grid = &grid;
            s.spawn(move || {
                for _ in 0..rounds {
                    if let Some(mut run) = grid.take_run(4) {
                        run.bytes().fill(t);
                        assert!(run.as_slice::<u8>().iter().all(|&b| b == t));
                    }
                    let mut cell = grid.take().unwrap();
                    cell.bytes().fill(t + 10);
                    assert!(cell.as_slice::<u8>().iter().all(|&b| b == t + 10));
                }
            });
        }
    });
    assert_eq!(grid.free(), 64);
}

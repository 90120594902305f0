//! Grid under every core at once: threads churn cells through the shared path, through
//! GridLanes and through detached ids, writing their mark into every cell they own and
//! checking it when they give it back, so two owners at once would be caught.

#![cfg(not(miri))]

use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};

use unimem::{Cell, CellId, Grid, GridLane, MemError, Pin};

fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
}

/// A word that differs per thread and per take.
fn mark(thread: usize, round: usize) -> u64 {
    (thread as u64) << 40 | round as u64
}

/// Fills `cell` with `mark`, as its owner.
fn stamp(cell: &mut Cell<'_>, mark: u64) {
    let index = u64::from(cell.index());
    let words = cell.as_slice_mut::<u64>();
    words.fill(mark);
    words[0] = mark ^ index;
}

/// Checks that `cell` still holds what its owner wrote.
fn check(cell: &Cell<'_>, mark: u64) {
    let words = cell.as_slice::<u64>();
    assert_eq!(
        words[0],
        mark ^ u64::from(cell.index()),
        "cell {} overwritten",
        cell.index()
    );
    assert!(
        words[1..].iter().all(|&w| w == mark),
        "cell {} overwritten",
        cell.index()
    );
}

enum Path<'g> {
    Shared,
    Lane(GridLane<'g>),
    Ids,
}

#[test]
fn all_cores_churn_cells_exclusively() {
    let cells = 256;
    let grid = Grid::builder(256, cells)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    let threads = threads() * 2;
    let rounds = 200_000;
    let start = Barrier::new(threads);
    let taken = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (grid, start, taken) = (&grid, &start, &taken);
            s.spawn(move || {
                let mut path = match t % 3 {
                    0 => Path::Shared,
                    1 => Path::Lane(grid.lane(1 + t % 8)),
                    _ => Path::Ids,
                };
                let mut held: Vec<(Cell<'_>, u64)> = Vec::new();
                let mut ids: Vec<(CellId, u64)> = Vec::new();
                start.wait();
                for round in 0..rounds {
                    // Hold between 0 and 7 cells, varying with the round.
                    let want = (round * 7 + t) % 8;
                    if held.len() + ids.len() < want {
                        let got = match &mut path {
                            Path::Lane(lane) => lane.take(),
                            _ => grid.take(),
                        };
                        // None: other threads hold or cache every cell right now.
                        if let Some(mut cell) = got {
                            taken.fetch_add(1, Ordering::Relaxed);
                            let m = mark(t, round);
                            stamp(&mut cell, m);
                            if let Path::Ids = path {
                                ids.push((cell.into_id(), m));
                            } else {
                                held.push((cell, m));
                            }
                        }
                    } else if let Some((cell, m)) = held.pop() {
                        check(&cell, m);
                        match &mut path {
                            Path::Lane(lane) => lane.give(cell).unwrap(),
                            _ if round % 2 == 0 => grid.give(cell).unwrap(),
                            _ => drop(cell),
                        }
                    } else if let Some((id, m)) = ids.pop() {
                        let p = grid.cell(id).unwrap().cast::<u64>();
                        // SAFETY: this thread is the only holder of `id`, which is current.
                        let first = unsafe { p.read() };
                        assert_eq!(
                            first,
                            m ^ u64::from(id.index()),
                            "cell {} overwritten",
                            id.index()
                        );
                        grid.release(id).unwrap();
                        assert!(matches!(grid.release(id), Err(MemError::StaleCell { .. })));
                    }
                }
                for (cell, m) in held.drain(..) {
                    check(&cell, m);
                }
                for (id, _) in ids {
                    grid.release(id).unwrap();
                }
            });
        }
    });
    // Each thread takes in about 3 rounds of 8.
    assert!(taken.into_inner() > threads * rounds / 4);
    assert_eq!(grid.free(), cells);
    assert_eq!(grid.in_use(), 0);
    assert!(grid.peak_in_use() > 0 && grid.peak_in_use() <= cells);
}

#[test]
fn lanes_hand_cells_across_threads() {
    // Producers take through their lanes and send the Cells; consumers give them to their
    // own lanes: cells migrate between lanes and the shared stack all the time.
    let pairs = threads() / 2;
    let cells = 512 * pairs;
    let grid = Grid::builder(64, cells)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    let per = 20_000;
    std::thread::scope(|s| {
        for p in 0..pairs {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(Cell<'_>, u64)>(64);
            let grid = &grid;
            s.spawn(move || {
                let mut lane = grid.lane(16);
                for i in 0..per {
                    let mut cell = loop {
                        match lane.take() {
                            Some(cell) => break cell,
                            None => std::thread::yield_now(),
                        }
                    };
                    let m = mark(p, i);
                    stamp(&mut cell, m);
                    tx.send((cell, m)).unwrap();
                }
            });
            s.spawn(move || {
                let mut lane = grid.lane(16);
                for (cell, m) in rx {
                    check(&cell, m);
                    lane.give(cell).unwrap();
                }
            });
        }
    });
    assert_eq!(grid.free(), cells);
}

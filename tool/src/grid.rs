//! Grid: carve cells from a pinned Block, time take+give pairs (shared path and GridLane),
//! churn cells on every core checking that no two owners ever share one, and check that
//! stale and foreign ids are refused.

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;
use unimem::{Grid, MemError, Pin};

use crate::report::{Report, Section, Status, fmt_bytes};

const CELL_SIZE: usize = 16 << 10;
const CELLS: usize = 1024;
const BATCH: usize = 32;
const PAIRS: u32 = 1 << 20;

pub(crate) fn exercise(report: &mut Report) {
    let mut s = Section::new("Grid");
    let start = Instant::now();
    let (grid, refusal) = match Grid::builder(CELL_SIZE, CELLS).name("unimem-grid").open() {
        Ok(grid) => (grid, None),
        Err(err @ MemError::LockRefused { .. }) => {
            s.text("pinned open", format!("refused: {err}"));
            match Grid::builder(CELL_SIZE, CELLS)
                .pin(Pin::BestEffort)
                .name("unimem-grid")
                .open()
            {
                Ok(grid) => (grid, Some(err)),
                Err(again) => return refused(report, s, again),
            }
        }
        Err(err) => return refused(report, s, err),
    };
    s.time("open", start.elapsed());
    let block = grid.tape().block();
    s.text(
        "grid",
        format!(
            "{} cells of {}, aligned to {}, in Block {} ({}, {})",
            grid.total(),
            fmt_bytes(grid.cell_size() as u64),
            grid.cell_align(),
            block.id(),
            fmt_bytes(block.size() as u64),
            if block.is_pinned() {
                "pinned"
            } else {
                "not pinned"
            },
        ),
    );
    s.row(
        "cell offsets",
        format!(
            "{} + index * {}",
            grid.cell_offset(0).unwrap_or(0),
            grid.cell_size()
        ),
        json!({"first": grid.cell_offset(0), "stride": grid.cell_size()}),
    );

    let shared = best_ns(|| {
        for _ in 0..PAIRS {
            let cell = grid.take().expect("a free cell");
            black_box(cell.index());
            drop(cell);
        }
    });
    nanos(&mut s, "take+give, shared path", shared);
    let mut lane = grid.lane(BATCH);
    let laned = best_ns(|| {
        for _ in 0..PAIRS {
            let cell = lane.take().expect("a free cell");
            black_box(cell.index());
            let _ = lane.give(cell);
        }
    });
    drop(lane);
    nanos(&mut s, "take+give, GridLane", laned);

    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let start = Instant::now();
    let wrong = churn(&grid, threads);
    let churn_time = start.elapsed();
    s.row(
        format!("churn on {threads} threads"),
        format!("{wrong} cells found overwritten by another owner"),
        json!(wrong),
    );
    s.time("churn time", churn_time);
    let ids_ok = ids_are_checked(&grid);
    let counts_ok = grid.free() == grid.total() && grid.in_use() == 0;
    s.text(
        "free / in use / peak",
        format!(
            "{} / {} / {} of {}",
            grid.free(),
            grid.in_use(),
            grid.peak_in_use(),
            grid.total()
        ),
    );
    report.add(s);

    let what = format!(
        "{} cells of {}: take+give {shared:.1} ns shared, {laned:.1} ns via GridLane",
        grid.total(),
        fmt_bytes(grid.cell_size() as u64)
    );
    if wrong != 0 || !ids_ok || !counts_ok {
        report.verdict(
            "grid",
            Status::Failed,
            format!(
                "{wrong} cells shared by two owners; stale and foreign ids refused: {ids_ok}; \
                 counts back to all free: {counts_ok}"
            ),
        );
    } else if let Some(err) = refusal {
        report.verdict(
            "grid",
            Status::Refused,
            format!("pinning refused ({err}); unpinned {what}, exclusive on {threads} threads"),
        );
    } else {
        report.verdict(
            "grid",
            Status::Works,
            format!("{what}, exclusive on {threads} threads"),
        );
    }
}

/// The best of five rounds of `PAIRS` pairs, in nanoseconds per pair.
fn best_ns(mut round: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            round();
            start.elapsed().as_secs_f64() * 1e9 / f64::from(PAIRS)
        })
        .fold(f64::INFINITY, f64::min)
}

fn nanos(s: &mut Section, key: &str, ns: f64) {
    s.row(key, format!("{ns:.2} ns"), json!(ns * 1e-9));
}

/// Every thread takes cells (shared path or its GridLane), fills them with its own mark,
/// checks the mark before giving them back: the number of cells found overwritten.
fn churn(grid: &Grid, threads: usize) -> usize {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut lane = (t % 2 == 1).then(|| grid.lane(8));
                    let mut held = Vec::new();
                    let mut wrong = 0;
                    for round in 0..20_000u64 {
                        let got = match lane.as_mut() {
                            Some(lane) => lane.take(),
                            None => grid.take(),
                        };
                        if let Some(mut cell) = got {
                            let mark = (t as u64) << 32 | round;
                            cell.as_slice_mut::<u64>().fill(mark);
                            held.push((cell, mark));
                        }
                        if held.len() > (round % 4) as usize {
                            let (cell, mark) = held.swap_remove(0);
                            if cell.as_slice::<u64>().iter().any(|&w| w != mark) {
                                wrong += 1;
                            }
                            match lane.as_mut() {
                                Some(lane) => {
                                    let _ = lane.give(cell);
                                }
                                None => drop(cell),
                            }
                        }
                    }
                    wrong
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(1)).sum()
    })
}

/// A double release and an id of another Grid are refused; a current one is accepted.
fn ids_are_checked(grid: &Grid) -> bool {
    let Some(cell) = grid.take() else {
        return false;
    };
    let id = cell.into_id();
    let first = grid.release(id).is_ok();
    let again = matches!(grid.release(id), Err(MemError::StaleCell { .. }));
    let foreign = match Grid::builder(64, 1).pin(Pin::BestEffort).open() {
        Ok(other) => {
            let theirs = other.take().map(|cell| cell.into_id());
            theirs.is_some_and(|id| matches!(grid.release(id), Err(MemError::ForeignCell { .. })))
        }
        Err(_) => true,
    };
    first && again && foreign
}

fn refused(report: &mut Report, mut s: Section, err: MemError) {
    s.text("open", format!("refused: {err}"));
    report.add(s);
    report.verdict("grid", Status::Refused, err.to_string());
}

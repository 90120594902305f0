//! Layout unit tests: small tapes, run under Miri too (`cargo +nightly miri test --lib`).

use super::*;
use crate::block::{Block, Pin};

fn layout(weights: usize, scratch: usize, history: usize) -> Layout {
    Layout::builder(weights, scratch, history)
        .pin(Pin::BestEffort)
        .build()
        .unwrap()
}

#[test]
fn each_tape_has_its_own_block() {
    let page = crate::page_size();
    let layout = layout(page, 2 * page, 3 * page);
    let ids = [
        layout.weights().block().id(),
        layout.scratch().block().id(),
        layout.history().block().id(),
    ];
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    assert_eq!(layout.weights().total(), page);
    assert_eq!(layout.scratch().total(), 2 * page);
    assert_eq!(layout.history().total(), 3 * page);
    assert_eq!(layout.total(), 6 * page);
    assert_eq!(layout.weights().block().name(), "unimem.weights");
    assert_eq!(layout.scratch().block().name(), "unimem.scratch");
    assert_eq!(layout.history().block().name(), "unimem.history");
}

#[test]
fn clear_pass_frees_scratch_only() {
    let mut layout = layout(4096, 4096, 4096);
    let w = layout.weights().take(100, 64).unwrap();
    layout.scratch().take(200, 64).unwrap();
    layout.history().take(300, 64).unwrap();
    layout.clear_pass();
    let stat = layout.stat();
    assert_eq!(
        (stat.weights_used, stat.scratch_used, stat.history_used),
        (100, 0, 300)
    );
    assert_eq!(stat.scratch_peak, 200);
    // The next scratch take starts over at the base.
    let s = layout.scratch().take(64, 64).unwrap();
    assert_eq!(layout.scratch().offset_of(s), Some(0));
    assert_eq!(layout.weights().offset_of(w), Some(0));
}

#[test]
fn clear_talk_frees_scratch_and_history_not_weights() {
    let mut layout = layout(4096, 4096, 4096);
    let w = layout.weights().take_slice::<u32>(16).unwrap();
    w.iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = i as u32 * 3);
    let w = w.as_ptr();
    layout.scratch().take(1000, 8).unwrap();
    layout.history().take(2000, 8).unwrap();
    layout.clear_talk();
    let stat = layout.stat();
    assert_eq!(
        (stat.weights_used, stat.scratch_used, stat.history_used),
        (64, 0, 0)
    );
    assert_eq!((stat.scratch_peak, stat.history_peak), (1000, 2000));
    // A new weights take follows the first; the first still holds what was written.
    let next = layout.weights().take(8, 8).unwrap();
    assert_eq!(layout.weights().offset_of(next), Some(64));
    #[allow(unsafe_code)]
    // SAFETY: `w` points at 16 u32s taken from the weights tape, which no clear frees and
    // no later take overlaps; nothing else refers to them now.
    let read = unsafe { std::slice::from_raw_parts(w, 16) };
    assert!(read.iter().enumerate().all(|(i, &x)| x == i as u32 * 3));
}

#[test]
fn stat_matches_the_tapes_and_is_ordered() {
    let mut layout = layout(8192, 8192, 8192);
    for round in 1..=3 {
        for _ in 0..round {
            layout.scratch().take(1000, 64).unwrap();
        }
        layout.history().take(500, 64).unwrap();
        let stat = layout.stat();
        assert_eq!(stat.scratch_used, layout.scratch().used());
        assert_eq!(stat.scratch_peak, layout.scratch().peak());
        assert_eq!(stat.history_used, layout.history().used());
        for (used, peak, total) in [
            (stat.weights_used, stat.weights_peak, stat.weights_total),
            (stat.scratch_used, stat.scratch_peak, stat.scratch_total),
            (stat.history_used, stat.history_peak, stat.history_total),
        ] {
            assert!(used <= peak && peak <= total);
        }
        assert_eq!(stat.history_cell, 0);
        layout.clear_pass();
    }
    assert_eq!(layout.stat().scratch_peak, 1024 * 2 + 1000);
    assert_eq!(layout.stat().used(), 512 * 2 + 500);
}

#[test]
fn names_and_blocks_of_ones_own() {
    let scratch = Block::builder(4096)
        .pin(Pin::BestEffort)
        .name("mine")
        .open()
        .unwrap();
    let id = scratch.id();
    let layout = Layout::builder(4096, 0, 4096)
        .name("m7")
        .pin(Pin::BestEffort)
        .scratch_block(scratch)
        .build()
        .unwrap();
    assert_eq!(layout.weights().block().name(), "m7.weights");
    assert_eq!(layout.scratch().block().name(), "mine");
    assert_eq!(layout.scratch().block().id(), id);
    assert_eq!(layout.history().block().name(), "m7.history");
}

#[test]
fn bad_inputs_are_errors() {
    let build = |w, s, h| Layout::builder(w, s, h).pin(Pin::BestEffort).build();
    assert_eq!(build(0, 4096, 4096).unwrap_err(), MemError::ZeroSize);
    assert_eq!(build(4096, 0, 4096).unwrap_err(), MemError::ZeroSize);
    assert_eq!(build(4096, 4096, 0).unwrap_err(), MemError::ZeroSize);
    assert!(matches!(
        build(4096, usize::MAX, 4096),
        Err(MemError::SizeOverflow { .. })
    ));
    let long = "x".repeat(242);
    assert!(matches!(
        Layout::builder(4096, 4096, 4096)
            .pin(Pin::BestEffort)
            .name(long)
            .build(),
        Err(MemError::BadName { len: 250, .. })
    ));
    let fits = "x".repeat(241);
    assert!(
        Layout::builder(4096, 4096, 4096)
            .pin(Pin::BestEffort)
            .name(fits)
            .build()
            .is_ok()
    );
}

#[test]
fn layout_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Layout>();
    check::<LayoutBuilder>();
    check::<Stat>();
}

#[test]
fn threads_take_from_all_tapes_at_once() {
    let layout = layout(1 << 16, 1 << 16, 1 << 16);
    let threads = if cfg!(miri) { 2 } else { 4 };
    let takes = if cfg!(miri) { 8 } else { 100 };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..takes {
                    layout.scratch().take_slice::<u64>(8).unwrap().fill(1);
                    layout.history().take_slice::<u64>(8).unwrap().fill(2);
                }
            });
        }
    });
    let stat = layout.stat();
    assert_eq!(stat.scratch_used, threads * takes * 64);
    assert_eq!(stat.history_used, threads * takes * 64);
}

#[test]
fn debug_names_the_tapes() {
    let layout = layout(4096, 4096, 4096);
    let text = format!("{layout:?}");
    assert!(text.contains("weights") && text.contains("scratch") && text.contains("history"));
}

fn paged(cell_size: usize, cells: usize) -> Layout {
    Layout::builder(4096, 4096, 0)
        .history_cells(cell_size, cells)
        .pin(Pin::BestEffort)
        .build()
        .unwrap()
}

#[test]
fn a_paged_history_is_a_grid_on_its_own_block() {
    let layout = paged(1000, 10);
    let grid = layout.history_grid().unwrap();
    assert_eq!((grid.total(), grid.cell_size()), (10, 1024));
    assert_eq!(layout.history().block().id(), grid.tape().block().id());
    assert_eq!(layout.history().block().name(), "unimem.history");
    assert_eq!(
        layout.history().total(),
        10240usize.next_multiple_of(crate::page_size())
    );
    let stat = layout.stat();
    assert_eq!(
        (stat.history_used, stat.history_total, stat.history_cell),
        (0, 10 * 1024, 1024)
    );
    assert!(layout.history().block().id() != layout.scratch().block().id());
    let tape_layout = layout_with_tape_history();
    assert!(tape_layout.history_grid().is_none());
}

fn layout_with_tape_history() -> Layout {
    layout(4096, 4096, 4096)
}

#[test]
fn clear_pass_keeps_cells_and_clear_talk_frees_them() {
    let mut layout = paged(256, 8);
    let (a, b) = {
        let grid = layout.history_grid().unwrap();
        (
            grid.take().unwrap().into_id(),
            grid.take().unwrap().into_id(),
        )
    };
    layout
        .history_grid_mut()
        .unwrap()
        .cell_mut(a)
        .unwrap()
        .fill(7);
    layout.scratch().take(100, 64).unwrap();
    layout.clear_pass();
    let stat = layout.stat();
    assert_eq!((stat.scratch_used, stat.history_used), (0, 2 * 256));
    assert_eq!(
        layout.history_grid_mut().unwrap().cell_mut(a).unwrap()[0],
        7
    );

    layout.history_grid().unwrap().release(b).unwrap();
    assert_eq!(layout.stat().history_used, 256);
    layout.clear_talk();
    let stat = layout.stat();
    assert_eq!((stat.history_used, stat.history_peak), (0, 2 * 256));
    // Ids from before the clear are stale.
    let grid = layout.history_grid().unwrap();
    assert!(matches!(grid.release(a), Err(MemError::StaleCell { .. })));
    assert_eq!(grid.free(), 8);
}

#[test]
fn every_cell_can_be_taken_and_written() {
    let mut layout = paged(100, 6);
    let ids: Vec<_> = {
        let grid = layout.history_grid().unwrap();
        std::iter::from_fn(|| grid.take().map(|c| c.into_id())).collect()
    };
    assert_eq!(ids.len(), 6);
    let stat = layout.stat();
    assert_eq!((stat.history_used, stat.history_total), (6 * 128, 6 * 128));
    let grid = layout.history_grid_mut().unwrap();
    for (i, &id) in ids.iter().enumerate() {
        grid.cell_mut(id).unwrap().fill(i as u8);
    }
    for (i, &id) in ids.iter().enumerate() {
        assert!(grid.cell_mut(id).unwrap().iter().all(|&b| b == i as u8));
    }
    assert!(matches!(
        layout.history_grid().unwrap().try_take(),
        Err(MemError::GridFull { cells: 6 })
    ));
}

#[test]
fn bad_grids_open_nothing() {
    let build = |cell_size, cells| {
        Layout::builder(4096, 4096, 4096)
            .history_cells(cell_size, cells)
            .pin(Pin::BestEffort)
            .build()
    };
    assert!(matches!(build(0, 8), Err(MemError::EmptyGrid { .. })));
    assert!(matches!(build(64, 0), Err(MemError::EmptyGrid { .. })));
    assert!(matches!(
        build(usize::MAX / 2, 4),
        Err(MemError::GridOverflow { .. })
    ));
    // A history Block of one's own, too small for the cells.
    let small = Block::builder(4096).pin(Pin::BestEffort).open().unwrap();
    assert!(matches!(
        Layout::builder(4096, 4096, 0)
            .history_block(small)
            .history_cells(4096, 2)
            .pin(Pin::BestEffort)
            .build(),
        Err(MemError::TapeFull { .. })
    ));
    // One that fits: the Grid is carved from it, keeping its name.
    let kv = Block::builder(8192)
        .pin(Pin::BestEffort)
        .name("kv")
        .open()
        .unwrap();
    let layout = Layout::builder(4096, 4096, 0)
        .history_block(kv)
        .history_cells(4096, 2)
        .pin(Pin::BestEffort)
        .build()
        .unwrap();
    assert_eq!(layout.history().block().name(), "kv");
    assert_eq!(layout.history_grid().unwrap().total(), 2);
}

#[test]
fn threads_take_cells_and_scratch_at_once() {
    let layout = paged(64, 64);
    let threads = if cfg!(miri) { 2 } else { 4 };
    let ids = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let grid = layout.history_grid().unwrap();
                for _ in 0..8 {
                    let mut cell = grid.take().unwrap();
                    cell.bytes().fill(1);
                    layout.scratch().take_slice::<u32>(4).unwrap().fill(2);
                    ids.lock().unwrap().push(cell.into_id());
                }
            });
        }
    });
    let ids = ids.into_inner().unwrap();
    assert_eq!(layout.stat().history_used, threads * 8 * 64);
    let mut indices: Vec<u32> = ids.iter().map(|id| id.index()).collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), threads * 8);
}

//! Tape and Lane under every core at once: threads take until the Tape is full, and the
//! ranges they got must tile the Tape exactly.

#![cfg(not(miri))]

use std::sync::{Barrier, Mutex};

use unimem::{Block, MemError, Pin, Tape};

fn tape(size: usize) -> Tape {
    Tape::over(Block::builder(size).pin(Pin::BestEffort).open().unwrap())
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
}

/// Sizes that vary per thread and per take, all multiples of 64 (so no padding at align 64).
fn size(thread: usize, i: usize) -> usize {
    64 * (1 + (i * 7 + thread * 13) % 16)
}

/// Sorts `ranges` and checks that they are disjoint and cover `0..end` with no gap.
fn assert_tiles(mut ranges: Vec<(usize, usize)>, end: usize) {
    ranges.sort_unstable();
    let mut at = 0;
    for (start, len) in ranges {
        assert_eq!(start, at, "gap or overlap at {at}");
        at = start + len;
    }
    assert_eq!(at, end);
}

#[test]
fn all_cores_fill_a_tape_exactly() {
    let tape = tape(16 << 20);
    let ranges = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..threads() {
            let (tape, ranges) = (&tape, &ranges);
            s.spawn(move || {
                let mut mine = Vec::new();
                let mut i = 0;
                loop {
                    let want = size(t, i);
                    match tape.try_take(want, 64) {
                        Ok(p) => mine.push((tape.offset_of(p.as_ptr()).unwrap(), want)),
                        // Smaller takes may still fit: only 64 bytes not fitting ends it.
                        Err(MemError::TapeFull { free, .. }) if want == 64 => {
                            assert!(free < 64);
                            break;
                        }
                        Err(MemError::TapeFull { .. }) => {}
                        Err(err) => panic!("{err}"),
                    }
                    i += 1;
                }
                ranges.lock().unwrap().extend(mine);
            });
        }
    });
    assert_eq!(tape.used(), tape.total());
    assert_tiles(ranges.into_inner().unwrap(), tape.total());
}

#[test]
fn all_cores_fill_a_tape_through_lanes() {
    let tape = tape(16 << 20);
    let n = threads();
    // Threads report, then wait with their Lanes alive until the main thread has checked.
    let taken = Barrier::new(n + 1);
    let checked = Barrier::new(n + 1);
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..n {
            let (tape, taken, checked, reports) = (&tape, &taken, &checked, &reports);
            s.spawn(move || {
                // Chunks of 512 B to 8 KiB: takes of up to 1 KiB exceed the smallest and go
                // straight to the Tape.
                let mut lane = tape.lane(512 << (t % 5));
                let mut mine = Vec::new();
                let mut i = 0;
                // A Lane fails only when the Tape cannot fit the take.
                while let Some(p) = lane.take(size(t, i), 64) {
                    mine.push((tape.offset_of(p).unwrap(), size(t, i)));
                    i += 1;
                }
                reports
                    .lock()
                    .unwrap()
                    .push((mine, lane.wasted(), lane.free()));
                taken.wait();
                checked.wait();
            });
        }
        taken.wait();
        let used = tape.used();
        assert!(
            tape.free() < 1024,
            "a Lane gave up with {} free",
            tape.free()
        );
        let mut ranges = Vec::new();
        let mut accounted = 0;
        for (mine, wasted, free) in std::mem::take(&mut *reports.lock().unwrap()) {
            accounted += mine.iter().map(|r| r.1).sum::<usize>() + wasted + free;
            ranges.extend(mine);
        }
        // Every byte below the head is a take, a Lane's waste, or the rest of a live
        // Lane's chunk (sizes and chunks are multiples of 64 at alignment 64: no padding).
        assert_eq!(accounted, used);
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "{w:?} overlap");
        }
        checked.wait();
    });
}

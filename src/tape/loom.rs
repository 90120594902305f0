//! loom models of the Tape's atomics: every interleaving of two and three threads taking,
//! Lanes refilling under contention, and the give-back ordering.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib tape::loom` (`.ci/run` sets
//! `LOOM_MAX_PREEMPTIONS`). The Tapes are over real one-page Blocks; loom checks the
//! atomics (all from `crate::sync`) and, in `give_back_orders_reuse`, the data race on the
//! reused bytes through loom's `UnsafeCell`, and that a typed take zeroes the bytes another
//! thread wrote and gave back.

use ::loom::cell::UnsafeCell;
use ::loom::sync::Arc;
use ::loom::thread;

use super::*;
use crate::Pin;

fn tape() -> Arc<Tape> {
    Arc::new(Tape::over(
        Block::builder(4096).pin(Pin::BestEffort).open().unwrap(),
    ))
}

/// Offsets of the takes `sizes` (with their alignments), taken from `tape` in order.
fn take_all(tape: &Tape, takes: &[(usize, usize)]) -> Vec<(usize, usize)> {
    takes
        .iter()
        .filter_map(|&(size, align)| {
            let p = tape.take(size, align)?;
            assert_eq!(p as usize % align, 0, "misaligned");
            Some((tape.offset_of(p).expect("outside the Tape"), size))
        })
        .collect()
}

/// The ranges are pairwise disjoint and inside `0..used`.
fn check_disjoint(tape: &Tape, mut ranges: Vec<(usize, usize)>) {
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "overlap: {w:?}");
    }
    if let Some(&(start, size)) = ranges.last() {
        assert!(start + size <= tape.used() && tape.used() <= tape.total());
    }
}

#[test]
fn two_threads_never_overlap() {
    ::loom::model(|| {
        let tape = tape();
        let other = tape.clone();
        let a = thread::spawn(move || take_all(&other, &[(100, 8), (64, 64)]));
        let mut ranges = take_all(&tape, &[(200, 16), (8, 8)]);
        ranges.extend(a.join().unwrap());
        assert_eq!(ranges.len(), 4);
        check_disjoint(&tape, ranges);
    });
}

#[test]
fn three_threads_never_exceed_the_tape() {
    ::loom::model(|| {
        let tape = tape();
        let spawn = |tape: &Arc<Tape>| {
            let tape = tape.clone();
            thread::spawn(move || match tape.try_take(1500, 1) {
                Ok(p) => Some(tape.offset_of(p.as_ptr()).unwrap()),
                Err(MemError::TapeFull { free, .. }) => {
                    assert!(free < 1500, "refused with {free} bytes free");
                    None
                }
                Err(err) => panic!("{err}"),
            })
        };
        let (a, b) = (spawn(&tape), spawn(&tape));
        let c = tape.take(1500, 1).map(|p| tape.offset_of(p).unwrap());
        let got: Vec<_> = [a.join().unwrap(), b.join().unwrap(), c]
            .into_iter()
            .flatten()
            .map(|start| (start, 1500))
            .collect();
        // Two fit in 4096 bytes, three do not.
        assert_eq!(got.len(), 2);
        assert_eq!(tape.used(), 3000);
        check_disjoint(&tape, got);
    });
}

#[test]
fn lanes_refill_under_contention() {
    ::loom::model(|| {
        let tape = tape();
        let lane_thread = |tape: &Arc<Tape>| {
            let tape = tape.clone();
            thread::spawn(move || {
                let mut lane = tape.lane(128);
                let mut mine = Vec::new();
                for _ in 0..3 {
                    let p = lane.take(64, 64).unwrap();
                    mine.push((tape.offset_of(p).unwrap(), 64));
                }
                (mine, lane.wasted())
            })
        };
        let (a, b) = (lane_thread(&tape), lane_thread(&tape));
        let mut ranges = take_all(&tape, &[(64, 64)]);
        let (ra, wa) = a.join().unwrap();
        let (rb, wb) = b.join().unwrap();
        ranges.extend(ra);
        ranges.extend(rb);
        // Chunks are multiples of 64 at multiples of 64: nothing is ever padded or lost.
        assert_eq!((wa, wb), (0, 0));
        check_disjoint(&tape, ranges);
    });
}

#[test]
fn give_back_orders_reuse() {
    ::loom::model(|| {
        let tape = tape();
        // One loom cell per 64-byte slot: loom reports unsynchronized accesses to it.
        let slots: Arc<Vec<UnsafeCell<u8>>> =
            Arc::new((0..4).map(|_| UnsafeCell::new(0)).collect());
        let (t, s) = (tape.clone(), slots.clone());
        let a = thread::spawn(move || {
            let p = t.take(64, 64).unwrap();
            let start = t.offset_of(p).unwrap();
            // SAFETY: loom's cell stands for the 64 bytes this thread took; the bytes
            // themselves are this thread's take, written before they are given back.
            s[start / 64].with_mut(|slot| unsafe { *slot = 1 });
            // SAFETY: `p..p + 64` is this thread's take, not given back yet.
            unsafe { p.write_bytes(0xAB, 64) };
            t.give_back(start, start + 64);
            start
        });
        let xs = tape.take_slice::<u8>(64).unwrap();
        let seen = tape.dirty();
        let start = tape.offset_of(xs.as_ptr()).unwrap();
        // SAFETY: as above, for this thread's take.
        slots[start / 64].with_mut(|slot| unsafe { *slot = 2 });
        let first = a.join().unwrap();
        if first == start {
            // Reused: the typed take must have seen the peak raised by the give-back, and
            // zeroed what the other thread wrote there.
            assert!(seen >= start + 64, "reused bytes below a stale peak {seen}");
            assert!(xs.iter().all(|&b| b == 0), "re-taken bytes are not zeroed");
        }
    });
}

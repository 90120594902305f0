//! Grid take+give pairs against the alternatives, side by side in one run: `slab`
//! insert+remove (not thread-safe: the single-thread bar), `sharded-slab` insert+remove,
//! a `Mutex<Vec<u32>>` free list, a `crossbeam-queue` `SegQueue` of indices (the earlier
//! unimem's design), and a plain `Vec<u32>` free list (the floor); the Grid through its
//! shared path and through a GridLane. One thread, then two threads at once.
//!
//! ```sh
//! cargo bench --bench grid
//! cargo bench --bench grid -- --warm-up-time 1 --measurement-time 3   # quicker
//! ```
//!
//! Two-thread benchmarks time `iters` pairs on each thread between two barriers; the time
//! reported per iteration is per pair per thread, and criterion's throughput (2 elements
//! per iteration) is the pairs per second of both threads together.

// `criterion_group!` makes an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_queue::SegQueue;
use unimem::{Grid, Pin};

/// Cells in every pool: a Grid of 4 KiB cells, like a small paged KV cache.
const CELLS: usize = 4096;
const CELL_SIZE: usize = 4096;
/// Cells held by each thread throughout, so the pools are never trivially empty.
const HELD: usize = 8;
const BATCH: usize = 32;

fn grid() -> Grid {
    Grid::builder(CELL_SIZE, CELLS)
        .pin(Pin::BestEffort)
        .open()
        .expect("a Grid for the benchmark")
}

fn mutex_list() -> Mutex<Vec<u32>> {
    Mutex::new((0..CELLS as u32).rev().collect())
}

fn seg_queue() -> SegQueue<u32> {
    let queue = SegQueue::new();
    for i in 0..CELLS as u32 {
        queue.push(i);
    }
    queue
}

/// The floor of any shared free list: a bare tagged Treiber stack of `u32` indices (no
/// counts, no generations, no cells), as small as it can be written.
struct Treiber {
    head: AtomicU64,
    next: Vec<AtomicU32>,
}

impl Treiber {
    const NIL: u32 = u32::MAX;

    fn new(n: u32) -> Treiber {
        Treiber {
            head: AtomicU64::new(0),
            next: (0..n)
                .map(|i| AtomicU32::new(if i + 1 == n { Self::NIL } else { i + 1 }))
                .collect(),
        }
    }

    #[inline]
    fn pop(&self) -> Option<u32> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let top = head as u32;
            if top == Self::NIL {
                return None;
            }
            let next = self.next[top as usize].load(Ordering::Relaxed);
            let new = ((head >> 32) + 1) << 32 | u64::from(next);
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return Some(top),
                Err(now) => head = now,
            }
        }
    }

    #[inline]
    fn push(&self, i: u32) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            self.next[i as usize].store(head as u32, Ordering::Relaxed);
            let new = (head & !0xFFFF_FFFF) | u64::from(i);
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

fn one_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("grid pair, 1 thread");
    g.throughput(Throughput::Elements(1));

    let mut slab = slab::Slab::<u32>::with_capacity(CELLS);
    let _held: Vec<usize> = (0..HELD).map(|i| slab.insert(i as u32)).collect();
    g.bench_function("slab insert+remove", |b| {
        b.iter(|| {
            let key = slab.insert(black_box(7));
            black_box(slab.remove(key));
        })
    });

    let sharded = sharded_slab::Slab::<u32>::new();
    let _held: Vec<usize> = (0..HELD)
        .map(|i| sharded.insert(i as u32).unwrap())
        .collect();
    g.bench_function("sharded-slab insert+remove", |b| {
        b.iter(|| {
            let key = sharded.insert(black_box(7)).unwrap();
            black_box(sharded.remove(key));
        })
    });

    let list = mutex_list();
    g.bench_function("Mutex<Vec<u32>> pop+push", |b| {
        b.iter(|| {
            let i = list.lock().unwrap().pop().unwrap();
            list.lock().unwrap().push(black_box(i));
        })
    });

    let queue = seg_queue();
    g.bench_function("SegQueue<u32> pop+push", |b| {
        b.iter(|| {
            let i = queue.pop().unwrap();
            queue.push(black_box(i));
        })
    });

    let mut plain: Vec<u32> = (0..CELLS as u32).rev().collect();
    g.bench_function("Vec<u32> pop+push (not thread-safe)", |b| {
        b.iter(|| {
            let i = plain.pop().unwrap();
            plain.push(black_box(i));
        })
    });

    let treiber = Treiber::new(CELLS as u32);
    g.bench_function("bare tagged Treiber pop+push (reference)", |b| {
        b.iter(|| {
            let i = treiber.pop().unwrap();
            treiber.push(black_box(i));
        })
    });

    let grid = grid();
    {
        let _held: Vec<_> = (0..HELD).map(|_| grid.take().unwrap()).collect();
        g.bench_function("Grid take+give (shared)", |b| {
            b.iter(|| {
                let cell = grid.take().unwrap();
                black_box(cell.index());
                grid.give(cell).unwrap();
            })
        });
        let mut lane = grid.lane(BATCH);
        g.bench_function("Grid take+give (GridLane)", |b| {
            b.iter(|| {
                let cell = lane.take().unwrap();
                black_box(cell.index());
                lane.give(cell).unwrap();
            })
        });
        let mut lane = grid.lane(BATCH);
        g.bench_function("Grid take+into_id+release (GridLane)", |b| {
            b.iter(|| {
                let id = lane.take().unwrap().into_id();
                lane.release(black_box(id)).unwrap();
            })
        });
    }
    g.finish();
}

/// Runs `pair` `iters` times on each of two threads, each with its own `local` state made
/// before the clock starts, and returns the wall-clock time from the start of both to the
/// end of both.
fn two<L>(iters: u64, make: impl Fn() -> L + Sync, pair: impl Fn(&mut L) + Sync) -> Duration {
    let start = Barrier::new(3);
    let end = Barrier::new(3);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (start, end, make, pair) = (&start, &end, &make, &pair);
            s.spawn(move || {
                let mut local = make();
                start.wait();
                run(iters, &mut local, pair);
                end.wait();
                drop(local);
            });
        }
        start.wait();
        let t = Instant::now();
        end.wait();
        t.elapsed()
    })
}

/// The timed loop of one thread, one function per alternative, so that `pair` is inlined
/// into it as it is into criterion's own loop on one thread (a call per pair would charge
/// every alternative a call and keep a lane's state in memory).
#[inline(never)]
fn run<L>(iters: u64, local: &mut L, pair: &impl Fn(&mut L)) {
    for _ in 0..iters {
        pair(local);
    }
}

fn bench_two<L>(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    make: impl Fn() -> L + Sync,
    pair: impl Fn(&mut L) + Sync,
) {
    g.bench_function(name, |b| b.iter_custom(|iters| two(iters, &make, &pair)));
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("grid pair, 2 threads");
    // Two pairs per iteration: one on each thread.
    g.throughput(Throughput::Elements(2));

    let sharded = sharded_slab::Slab::<u32>::new();
    bench_two(
        &mut g,
        "sharded-slab insert+remove",
        || (),
        |_| {
            let key = sharded.insert(black_box(7)).unwrap();
            black_box(sharded.remove(key));
        },
    );

    let list = mutex_list();
    bench_two(
        &mut g,
        "Mutex<Vec<u32>> pop+push",
        || (),
        |_| {
            let i = list.lock().unwrap().pop().unwrap();
            list.lock().unwrap().push(black_box(i));
        },
    );

    let queue = seg_queue();
    bench_two(
        &mut g,
        "SegQueue<u32> pop+push",
        || (),
        |_| {
            let i = queue.pop().unwrap();
            queue.push(black_box(i));
        },
    );

    let grid = grid();
    bench_two(
        &mut g,
        "Grid take+give (shared)",
        || (0..HELD).map(|_| grid.take().unwrap()).collect::<Vec<_>>(),
        |_| {
            let cell = grid.take().unwrap();
            black_box(cell.index());
            grid.give(cell).unwrap();
        },
    );
    bench_two(
        &mut g,
        "Grid take+give (GridLane)",
        || grid.lane(BATCH),
        |lane| {
            let cell = lane.take().unwrap();
            black_box(cell.index());
            lane.give(cell).unwrap();
        },
    );
    g.finish();
}

criterion_group!(benches, one_thread, two_threads);
criterion_main!(benches);

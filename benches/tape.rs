//! Tape and Lane against the alternatives, side by side in one run: 64-byte takes aligned
//! to 64 and 4 KiB takes aligned to 64; `clear`; two threads on one Tape and with a Lane
//! each.
//!
//! ```sh
//! cargo bench --bench tape -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Every take benchmark runs in rounds that fit its arena: the takes of a round are timed,
//! then the arena is reset outside the timing, and every round asserts that all of its
//! takes succeeded. So no benchmark ever measures the full-arena failure path.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use blink_alloc::SyncBlinkAlloc;
use bumpalo::Bump;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use unimem::{Block, Pin, Tape};

/// Every arena's size.
const ARENA: usize = 64 << 20;
/// The Lanes' chunk for 64-byte takes: 1024 takes a chunk, the top of the Lane docs' advice
/// (64 to 1024 times the typical take). 4 KiB takes get the same 1024 takes a chunk (4 MiB).
const CHUNK: usize = 64 << 10;
const ALIGN: usize = 64;

fn tape(size: usize) -> Tape {
    Tape::over(Block::builder(size).pin(Pin::BestEffort).open().unwrap())
}

/// Runs `iters` takes of `size` bytes as rounds of at most half an arena each; `round(n)`
/// makes `n` takes, checks they all succeeded, resets its arena, and returns the time the
/// takes alone took.
fn rounds(iters: u64, size: usize, mut round: impl FnMut(usize) -> Duration) -> Duration {
    let cap = (ARENA / 2 / size) as u64;
    let mut left = iters;
    let mut total = Duration::ZERO;
    while left > 0 {
        let n = left.min(cap);
        total += round(n as usize);
        left -= n;
    }
    total
}

/// The floor: a non-atomic bump over a plain buffer, the minimum a correct (overflow-safe,
/// bounds-checked, aligning) bump allocator does.
struct Floor {
    base: *mut u8,
    cursor: usize,
    end: usize,
}

impl Floor {
    fn new(buffer: &mut [u8]) -> Floor {
        let base = buffer.as_mut_ptr();
        Floor {
            base,
            cursor: base.addr(),
            end: base.addr() + buffer.len(),
        }
    }

    #[inline(always)]
    fn take(&mut self, size: usize, align: usize) -> Option<*mut u8> {
        let mask = align - 1;
        let at = self.cursor.wrapping_add(mask) & !mask;
        let next = at.wrapping_add(size);
        if next.wrapping_sub(self.cursor) <= self.end - self.cursor {
            self.cursor = next;
            Some(self.base.with_addr(at))
        } else {
            None
        }
    }

    fn reset(&mut self) {
        self.cursor = self.base.addr();
    }
}

/// A bare compare-exchange loop on one atomic: what `Tape::take` costs at the least.
#[inline(always)]
fn bare_cas(head: &AtomicUsize, size: usize) -> usize {
    let mut h = head.load(Ordering::Relaxed);
    loop {
        match head.compare_exchange_weak(h, h + size, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return h,
            Err(now) => h = now,
        }
    }
}

/// A cache line, for typed takes aligned to 64.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);
// SAFETY: 64 bytes, no padding, any bit pattern valid.
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above; `Copy`, `repr(C)`, no references.
unsafe impl bytemuck::Pod for Line {}

/// Times `n` calls of `take`, and fails if any returned `None`.
#[inline(always)]
fn timed<P>(n: usize, mut take: impl FnMut() -> Option<P>) -> Duration {
    let mut failed = false;
    let start = Instant::now();
    for _ in 0..n {
        failed |= black_box(take()).is_none();
    }
    let time = start.elapsed();
    assert!(
        !failed,
        "a take failed: the benchmark would measure the failure path"
    );
    time
}

/// One group of takes of `SIZE` bytes: a constant, as at most call sites (`take(64, 64)`).
fn takes<const SIZE: usize>(c: &mut Criterion, label: &str) {
    let size = SIZE;
    let mut group = c.benchmark_group(format!("take {label} align 64"));
    let layout = Layout::from_size_align(SIZE, ALIGN).unwrap();

    let mut buffer = vec![0u8; ARENA];
    let mut floor = Floor::new(&mut buffer);
    group.bench_function("floor: non-atomic bump", |b| {
        b.iter_custom(|iters| {
            rounds(iters, size, |n| {
                let time = timed(n, || floor.take(SIZE, ALIGN));
                floor.reset();
                time
            })
        })
    });

    let mut bump = Bump::with_capacity(ARENA);
    group.bench_function("bumpalo", |b| {
        b.iter_custom(|iters| {
            rounds(iters, size, |n| {
                let time = timed(n, || bump.try_alloc_layout(layout).ok());
                bump.reset();
                time
            })
        })
    });

    let mut blink = SyncBlinkAlloc::new();
    group.bench_function("blink-alloc SyncBlinkAlloc", |b| {
        b.iter_custom(|iters| {
            rounds(iters, size, |n| {
                let time = timed(n, || blink.allocate(layout).ok());
                blink.reset();
                time
            })
        })
    });

    let head = AtomicUsize::new(0);
    group.bench_function("bare compare-exchange loop", |b| {
        b.iter_custom(|iters| {
            rounds(iters, size, |n| {
                let time = timed(n, || Some(bare_cas(&head, SIZE)));
                head.store(0, Ordering::Relaxed);
                time
            })
        })
    });

    let mut t = tape(ARENA);
    group.bench_function("Tape::take", |b| {
        b.iter_custom(|iters| {
            rounds(iters, size, |n| {
                let time = timed(n, || t.take(SIZE, ALIGN));
                t.clear();
                time
            })
        })
    });

    let chunk = CHUNK.max(1024 * SIZE);
    group.bench_function(format!("Lane::take ({} KiB chunk)", chunk >> 10), |b| {
        b.iter_custom(|iters| {
            rounds(iters, size, |n| {
                let mut lane = t.lane(chunk);
                let time = timed(n, || lane.take(SIZE, ALIGN));
                drop(lane);
                t.clear();
                time
            })
        })
    });

    // Reused memory: every typed take zeroes its bytes (the Tape was cleared before).
    t.take(ARENA, 1).unwrap();
    t.clear();
    group.bench_function("Tape::take_slice (reused, zeroed)", |b| {
        b.iter_custom(|iters| {
            rounds(iters, size, |n| {
                let time = timed(n, || t.take_slice::<Line>(SIZE / 64).map(|s| s.as_ptr()));
                t.clear();
                time
            })
        })
    });

    group.bench_function("malloc + free (std::alloc)", |b| {
        b.iter_custom(|iters| {
            timed(iters as usize, || {
                // SAFETY: a nonzero layout; freed at once with the same layout.
                unsafe {
                    let p = std::alloc::alloc(layout);
                    let p = NonNull::new(black_box(p))?;
                    std::alloc::dealloc(p.as_ptr(), layout);
                    Some(())
                }
            })
        })
    });
    group.finish();
}

fn take_64(c: &mut Criterion) {
    takes::<64>(c, "64 B");
}

fn take_4k(c: &mut Criterion) {
    takes::<4096>(c, "4 KiB");
}

fn clear(c: &mut Criterion) {
    let mut group = c.benchmark_group("clear");
    let mut small = tape(4096);
    group.bench_function("clear, empty", |b| b.iter(|| black_box(&mut small).clear()));
    group.bench_function("take all + clear, 4 KiB Tape", |b| {
        b.iter(|| {
            assert!(small.take(4096, 1).is_some());
            black_box(&mut small).clear();
        })
    });
    // 1 GiB: pinned as root, unpinned (best effort) otherwise.
    let mut big = tape(1 << 30);
    group.bench_function("take all + clear, 1 GiB Tape", |b| {
        b.iter(|| {
            assert!(big.take(1 << 30, 1).is_some());
            black_box(&mut big).clear();
        })
    });
    group.finish();
}

/// Runs `iters` takes on each of `threads` threads, in rounds that fit the Tape; each
/// thread times its own takes after a barrier, and a round counts as its slowest thread.
fn threaded(tape: &mut Tape, threads: usize, iters: u64, lanes: bool) -> Duration {
    rounds(iters, 64 * threads, |n| {
        let start = Barrier::new(threads);
        let tape = &mut *tape;
        let slowest = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (tape, start) = (&*tape, &start);
                    s.spawn(move || {
                        if lanes {
                            let mut lane = tape.lane(CHUNK);
                            start.wait();
                            timed(n, || lane.take(64, ALIGN))
                        } else {
                            start.wait();
                            timed(n, || tape.take(64, ALIGN))
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .max()
                .unwrap()
        });
        tape.clear();
        slowest
    })
}

fn contention(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads, 64 B takes, time per take per thread");
    let mut t = tape(ARENA);
    for (name, threads, lanes) in [
        ("1 thread, Tape::take", 1, false),
        ("2 threads, one Tape", 2, false),
        ("1 thread, Lane::take", 1, true),
        ("2 threads, one Lane each", 2, true),
    ] {
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| threaded(&mut t, threads, iters, lanes))
        });
    }
    group.finish();
}

criterion_group!(benches, take_64, take_4k, clear, contention);
criterion_main!(benches);

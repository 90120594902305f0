//! Tape: fill a Tape with 64-byte takes, alone and through Lanes on every core, verify every
//! take, and time takes and `clear`.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use unimem::{Block, MemError, Pin, Tape};

use crate::report::{Report, Section, Status, fmt_bytes, fmt_time};

/// Size of each take.
const TAKE: usize = 64;
/// The Lanes' chunk.
const CHUNK: usize = 64 << 10;

pub(crate) fn exercise(report: &mut Report, size: usize) {
    let mut s = Section::new("Tape");
    let (mut tape, refusal) = match open(size) {
        Ok(opened) => opened,
        Err(err) => {
            s.text("open", format!("refused: {err}"));
            report.add(s);
            report.verdict("tape", Status::Refused, err.to_string());
            return;
        }
    };
    s.text(
        "tape",
        format!(
            "{} over Block {}, {}",
            fmt_bytes(tape.total() as u64),
            tape.block().id(),
            if tape.block().is_pinned() {
                "pinned"
            } else {
                "not pinned"
            }
        ),
    );
    let mut faults = Vec::new();

    // One thread, plain takes: each must follow the last, aligned, until the Tape is full.
    let (n, time) = fill(&tape, &mut faults, |tape| tape.take(TAKE, TAKE));
    per_take(&mut s, "Tape::take 64 B", n, time);
    match tape.try_take(TAKE, TAKE) {
        Err(MemError::TapeFull { free: 0, .. }) => {}
        other => faults.push(format!("a take from a full Tape gave {other:?}")),
    }
    tape.clear();
    let cycles: u32 = 100_000;
    let start = Instant::now();
    for _ in 0..cycles {
        if tape.take(tape.total(), 1).is_none() {
            faults.push("a take of the whole cleared Tape failed".into());
            break;
        }
        tape.clear();
    }
    s.time("take all + clear", start.elapsed() / cycles);

    // One thread through a Lane: the chunks follow each other, nothing is wasted.
    tape.clear();
    let mut lane = tape.lane(CHUNK);
    let (n, time) = fill(&tape, &mut faults, |_| lane.take(TAKE, TAKE));
    if lane.wasted() != 0 {
        faults.push(format!("a lone Lane wasted {} bytes", lane.wasted()));
    }
    drop(lane);
    per_take(&mut s, "Lane::take 64 B", n, time);

    // Reused bytes come back zeroed through typed takes.
    tape.clear();
    if tape
        .take_slice::<u64>(tape.total() / 8)
        .is_some_and(|xs| xs.iter().any(|&x| x != 0))
    {
        faults.push("a typed take of reused bytes was not zeroed".into());
    }

    // Every core through its own Lane: the takes must tile the Tape.
    tape.clear();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 64);
    let (takes, time) = threaded(&tape, threads, &mut faults);
    s.text(
        "every core, a Lane each",
        format!(
            "{threads} threads: {} takes in {} ({:.1} M takes/s)",
            takes,
            fmt_time(time),
            takes as f64 / time.as_secs_f64().max(1e-9) / 1e6
        ),
    );
    report.add(s);

    if !faults.is_empty() {
        report.verdict("tape", Status::Failed, faults.join("; "));
    } else if let Some(err) = refusal {
        report.verdict(
            "tape",
            Status::Refused,
            format!("pinning refused ({err}); an unpinned Tape works"),
        );
    } else {
        report.verdict(
            "tape",
            Status::Works,
            format!(
                "{} filled with 64 B takes alone, through a Lane and from {threads} threads; \
                 every take aligned and disjoint",
                fmt_bytes(tape.total() as u64)
            ),
        );
    }
}

/// A pinned Tape of `size` bytes, or an unpinned one with the refusal.
fn open(size: usize) -> Result<(Tape, Option<MemError>), MemError> {
    match Block::builder(size).name("unimem-tape").open() {
        Ok(block) => Ok((Tape::over(block), None)),
        Err(err @ MemError::LockRefused { .. }) => {
            let block = Block::builder(size)
                .name("unimem-tape")
                .pin(Pin::BestEffort)
                .open()?;
            Ok((Tape::over(block), Some(err)))
        }
        Err(err) => Err(err),
    }
}

/// Takes with `take` until it fails; each take must follow the previous one. Returns the
/// number of takes and their time.
fn fill(
    tape: &Tape,
    faults: &mut Vec<String>,
    mut take: impl FnMut(&Tape) -> Option<*mut u8>,
) -> (usize, Duration) {
    let mut expect = tape.block().address() as usize;
    let mut n = 0;
    let mut wrong = 0;
    let start = Instant::now();
    while let Some(p) = take(tape) {
        wrong += usize::from(p as usize != expect);
        expect += TAKE;
        n += 1;
    }
    let time = start.elapsed();
    if wrong != 0 || n * TAKE != tape.total() {
        faults.push(format!(
            "{wrong} of {n} takes out of place; {} of {} bytes taken",
            n * TAKE,
            tape.total()
        ));
    }
    (n, time)
}

/// Every thread takes through its own Lane until the Tape is full; the offsets must tile
/// the Tape. Returns the number of takes and the slowest thread's time.
fn threaded(tape: &Tape, threads: usize, faults: &mut Vec<String>) -> (usize, Duration) {
    let start = Barrier::new(threads);
    let expected = tape.total() / TAKE / threads * 2;
    let mut time = Duration::ZERO;
    let mut offsets: Vec<usize> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let start = &start;
                s.spawn(move || {
                    let mut lane = tape.lane(CHUNK);
                    let mut mine = Vec::with_capacity(expected);
                    start.wait();
                    let begin = Instant::now();
                    while let Some(p) = lane.take(TAKE, TAKE) {
                        mine.push(tape.offset_of(p).unwrap_or(usize::MAX));
                    }
                    (mine, begin.elapsed())
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                let (mine, took) = w.join().unwrap_or_default();
                time = time.max(took);
                mine
            })
            .collect()
    });
    offsets.sort_unstable();
    let tiled = offsets.iter().enumerate().all(|(i, &o)| o == i * TAKE);
    if !tiled || offsets.len() * TAKE != tape.total() {
        faults.push(format!(
            "{threads} threads' Lane takes do not tile the Tape ({} takes)",
            offsets.len()
        ));
    }
    (offsets.len(), time)
}

fn per_take(s: &mut Section, key: &str, n: usize, time: Duration) {
    let ns = time.as_secs_f64() * 1e9 / n.max(1) as f64;
    s.row(
        key,
        format!("{ns:.2} ns per take ({n} takes)"),
        serde_json::json!(ns * 1e-9),
    );
}

//! `unimem-copy-bench`: scattered Grid cells to and from the GPU (issue 16), on a GPU machine
//! that has no Rust toolchain (copy the release binary there and run it).
//!
//! For each cell size (default 16, 64 and 256 KiB) it makes a pinned Grid of `2 * cells`
//! cells, registers and keeps its Block, fills every cell, and picks `cells` of them (default
//! 4096) in a fixed pseudo-random order: a block table scattered over the Block. Then, both
//! directions (host to device, device to host), it measures, each `--reps` times after one
//! warm-up, the alternatives interleaved round by round:
//!
//! - **contiguous**: one copy of the same number of bytes from one range of the Block (one
//!   `cuMemcpyHtoDAsync_v2` / `DtoH`): the link's limit;
//! - **batched**: `Stream::cells_to_device` / `cells_to_host` with the default options (one
//!   `cuMemcpyBatchAsync_v2` call), and spread over 2, 4 and 8 copy engines;
//! - **per cell**: the same call forced to one `cuMemcpy*Async` per cell, nothing merged.
//!
//! Each sample is the wall time from queuing to the copy's completion (`InFlight::wait`),
//! lending and giving back the cells included. The bytes are checked once per size and
//! direction (outside the timing). Rates are decimal GB/s; the target (issue 16) is at least
//! 0.9x the contiguous copy for the batched call at 16 KiB and above, both directions.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use unimem::cuda::{Context, CopyOptions, CopyRange, DeviceMemory, Driver, Stream};
use unimem::{CellId, Grid, MemError};

/// Measure batched copies of scattered Grid cells against one contiguous copy and against
/// one copy per cell.
#[derive(Debug, Parser)]
#[command(name = "unimem-copy-bench", version, about)]
struct Args {
    /// Cells copied per operation.
    #[arg(long, default_value_t = 4096)]
    cells: usize,
    /// Cell sizes in KiB, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "16,64,256")]
    sizes_kib: Vec<usize>,
    /// Timed repetitions of each measurement (after one warm-up).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// The CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("unimem-copy-bench: a copy moved the wrong bytes");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("unimem-copy-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// One alternative measured.
struct Method {
    name: &'static str,
    /// `None`: the contiguous copy.
    options: Option<CopyOptions>,
}

const METHODS: [Method; 6] = [
    Method {
        name: "contiguous (one copy, the link's limit)",
        options: None,
    },
    Method {
        name: "batched (default)",
        options: Some(CopyOptions::new()),
    },
    Method {
        name: "batched, 2 engines",
        options: Some(CopyOptions::new().engines(2)),
    },
    Method {
        name: "batched, 4 engines",
        options: Some(CopyOptions::new().engines(4)),
    },
    Method {
        name: "batched, 8 engines",
        options: Some(CopyOptions::new().engines(8)),
    },
    Method {
        name: "one copy per cell",
        options: Some(CopyOptions::new().per_copy(true).coalesce(false)),
    },
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToDevice,
    ToHost,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::ToDevice => "host to device",
            Direction::ToHost => "device to host",
        }
    }
}

fn gbps(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / time.as_secs_f64().max(1e-12) / 1e9
}

/// A fixed pseudo-random permutation of `0..n` (xorshift64, Fisher-Yates).
fn shuffled(n: usize) -> Vec<usize> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order
}

/// Byte `j` of cell `i`.
fn pattern(i: u32, j: usize) -> u8 {
    (i as usize * 131 + j * 7 + (j >> 12)) as u8
}

fn run(args: &Args) -> Result<bool, MemError> {
    let cells = args.cells.max(1);
    let reps = args.reps.max(1);
    let driver = Driver::load()?;
    let device = driver.device(args.device)?;
    let (major, minor) = driver.version()?;
    println!(
        "unimem-copy-bench: device {} {}, CUDA driver API {major}.{minor}, batched copy: {}; \
         {cells} scattered cells per operation, best and median of {reps} after one warm-up, \
         decimal GB/s",
        device.ordinal(),
        device.name()?,
        driver.batch_copy().unwrap_or("none (one call per copy)"),
    );
    let mut all_right = true;
    let mut verdicts = Vec::new();
    for &kib in &args.sizes_kib {
        let size = kib.max(1) << 10;
        let (right, results) = measure(&driver, args.device, size, cells, reps)?;
        all_right &= right;
        verdicts.extend(results);
    }
    println!();
    println!("Targets (issue 16): batched >= 0.9x contiguous at 16 KiB and above, both directions");
    for (kib, direction, best_default, best_any, per_cell) in verdicts {
        let met = best_default >= 0.9;
        println!(
            "  {}  {kib} KiB {}: batched (default) {best_default:.2}x contiguous; best batched \
             {best_any:.2}x; one copy per cell {per_cell:.2}x",
            if met { "PASS" } else { "MISS" },
            direction.name(),
        );
    }
    Ok(all_right)
}

/// (KiB, direction, default batched / contiguous, best batched / contiguous, per cell /
/// contiguous), best against best.
type Verdict = (usize, Direction, f64, f64, f64);

fn measure(
    driver: &Driver,
    ordinal: u32,
    size: usize,
    cells: usize,
    reps: usize,
) -> Result<(bool, Vec<Verdict>), MemError> {
    let start = Instant::now();
    let mut grid = Grid::builder(size, 2 * cells)
        .name("unimem-copy-bench")
        .open()?;
    let ids: Vec<CellId> = (0..2 * cells)
        .map(|_| grid.try_take().map(|cell| cell.into_id()))
        .collect::<Result<_, _>>()?;
    for &id in &ids {
        for (j, b) in grid.cell_mut(id)?.iter_mut().enumerate() {
            *b = pattern(id.index(), j);
        }
    }
    grid.tape().block().register_cuda(driver, ordinal)?.keep();
    let grid = grid;
    let block = grid.tape().block();
    let context: &Context = block.cuda_context().ok_or(MemError::CudaNotRegistered {
        id: block.id(),
        size: block.size(),
    })?;
    let memory = context.alloc(cells * size)?;
    let order: Vec<usize> = shuffled(2 * cells).into_iter().take(cells).collect();
    let list: Vec<(CellId, u64)> = order
        .iter()
        .enumerate()
        .map(|(k, &i)| (ids[i], memory.device_ptr() + (k * size) as u64))
        .collect();
    let contiguous = [CopyRange::new(
        grid.cell_offset(0).unwrap_or(0),
        cells * size,
        memory.device_ptr(),
    )];
    let streams: Vec<Stream<'_>> = METHODS
        .iter()
        .map(|m| {
            let options = m
                .options
                .unwrap_or(CopyOptions::new().per_copy(true).coalesce(false));
            context.stream().map(|s| s.with_options(options))
        })
        .collect::<Result<_, _>>()?;
    println!();
    println!(
        "## {} KiB cells: {cells} of {} in a {} MiB pinned Block (set up in {:.2} s)",
        size >> 10,
        2 * cells,
        block.size() >> 20,
        start.elapsed().as_secs_f64()
    );

    let mut right = true;
    let mut verdicts = Vec::new();
    for direction in [Direction::ToDevice, Direction::ToHost] {
        let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); METHODS.len()];
        let mut reports = vec![None; METHODS.len()];
        for round in 0..=reps {
            for (m, method) in METHODS.iter().enumerate() {
                let stream = &streams[m];
                let t = Instant::now();
                // SAFETY: the device memory is this process's, its slots (and the one
                // contiguous range) are disjoint and used by nothing else; the Block's
                // range in the contiguous copy is only read (to device) or written with no
                // view of it alive (to host: the cells are not viewed during the run).
                let copy = unsafe {
                    match (method.options.is_none(), direction) {
                        (true, Direction::ToDevice) => stream.to_device(block, &contiguous)?,
                        (true, Direction::ToHost) => stream.to_host(block, &contiguous)?,
                        (false, Direction::ToDevice) => stream.cells_to_device(&grid, &list)?,
                        (false, Direction::ToHost) => stream.cells_to_host(&grid, &list)?,
                    }
                };
                let report = copy.wait()?;
                let elapsed = t.elapsed();
                if round > 0 {
                    samples[m].push(elapsed);
                }
                reports[m] = Some(report);
            }
            if round == 0 {
                right &= check(context, &memory, &grid, &list, direction, size)?;
            }
        }
        println!();
        println!("### {}", direction.name());
        println!();
        println!("| method | best GB/s | median GB/s | x contiguous | copies | calls | path |");
        println!("|---|---|---|---|---|---|---|");
        let bytes = cells * size;
        let best: Vec<f64> = samples
            .iter()
            .map(|s| gbps(bytes, s.iter().copied().min().unwrap_or_default()))
            .collect();
        for (m, method) in METHODS.iter().enumerate() {
            let mut sorted = samples[m].clone();
            sorted.sort();
            let median = gbps(bytes, sorted[sorted.len() / 2]);
            let report = reports[m].expect("measured");
            println!(
                "| {} | {:.1} | {median:.1} | {:.2} | {} | {} | {:?} |",
                method.name,
                best[m],
                best[m] / best[0],
                report.copies,
                report.calls,
                report.path,
            );
        }
        let per_cell = METHODS.len() - 1;
        let batched = best[1..per_cell].iter().copied().fold(0.0, f64::max);
        verdicts.push((
            size >> 10,
            direction,
            best[1] / best[0],
            batched / best[0],
            best[per_cell] / best[0],
        ));
    }
    Ok((right, verdicts))
}

/// Checks that the last copies moved the right bytes: to the device, each slot holds its
/// cell's pattern; to the host, each listed cell holds its slot, which holds that cell's
/// pattern (put there by the copies to the device). The contiguous copy to the host
/// overwrites the first cells of the Block with slot bytes; the cells it leaves changed are
/// not in the list, and the batched copies after it rewrite those that are.
fn check(
    context: &Context,
    memory: &DeviceMemory<'_>,
    grid: &Grid,
    list: &[(CellId, u64)],
    direction: Direction,
    size: usize,
) -> Result<bool, MemError> {
    let mut device = vec![0u8; memory.size()];
    // SAFETY: `device` is ours and as long as the device memory; no copy is in flight.
    unsafe { context.copy_to_host(device.as_mut_ptr(), memory.device_ptr(), memory.size())? };
    let mut right = true;
    for (k, &(id, _)) in list.iter().enumerate() {
        let slot = &device[k * size..(k + 1) * size];
        let cell = grid.cell(id)?;
        // SAFETY: the id is current, no copy is in flight, and nothing writes the cell.
        let bytes = unsafe { std::slice::from_raw_parts(cell, size) };
        let expect = |j: usize| pattern(id.index(), j);
        right &= slot.iter().enumerate().all(|(j, &b)| b == expect(j));
        right &= bytes.iter().enumerate().all(|(j, &b)| b == expect(j));
    }
    if !right {
        println!("  WRONG BYTES after {}", direction.name());
    }
    Ok(right)
}

//! `unimem-cuda-bench`: CUDA zero-copy measured side by side, on a GPU machine that has no
//! Rust toolchain (copy the release binary there and run it).
//!
//! For `--size-mib` (default 1024) it measures, each `--reps` times after one warm-up, the
//! alternatives interleaved round by round (drift on a shared host hits all alike):
//!
//! - host-to-device and device-to-host copies (`cuMemcpyHtoD_v2`/`DtoH_v2`) from a
//!   registered unimem Block, from `cuMemAllocHost` memory, and from pageable memory;
//! - zero-copy bandwidth through the device pointer, without a kernel: the GPU reading the
//!   host memory (`cuMemcpyDtoD_v2` from the device alias into device memory) and writing it
//!   (`cuMemsetD32_v2` into the alias), for the Block and for `cuMemAllocHost` memory;
//! - the time to create that much GPU-usable pinned memory: `Block::open` +
//!   `register_cuda` against `cuMemAllocHost`, interleaved;
//!
//! then prints Markdown tables and the targets with PASS or MISS. Every operation
//! waits for completion, so wall-clock time is the operation's time.
//!
//! `--scale 1,16,64` switches to the scale mode of issue 12 (`bench/scale.rs`): creation
//! and release of GPU-usable pinned memory of those sizes on each kind of page
//! (`--pages 4k,thp,hugetlb`) beside `cuMemAllocHost`, population against threads
//! (`--threads 1,2,4,8,16`), where population stalls (`--probe`), and copies from
//! huge-page Blocks (`--copies`); one JSON record per measurement (`--json FILE`, appended).
//! `--plot DIR --from FILE...` turns such records (and the PyTorch script's) into SVG
//! charts and Markdown tables (`bench/plot.rs`); it runs anywhere, GPU or not.

#[path = "../bench/plot.rs"]
mod plot;
#[cfg(target_os = "linux")]
#[path = "../bench/probe.rs"]
mod probe;
#[path = "../progress_bar.rs"]
mod progress_bar;
#[path = "../bench/record.rs"]
mod record;
#[path = "../bench/scale.rs"]
mod scale;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use unimem::cuda::{Context, Driver};
use unimem::{Block, MemError};

/// Measure CUDA copies, zero-copy access and pinned-memory creation: unimem Block vs
/// cuMemAllocHost vs pageable memory; with --scale, pinned memory at server scale.
#[derive(Debug, Parser)]
#[command(name = "unimem-cuda-bench", version, about)]
struct Args {
    /// Bytes per operation, in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    size_mib: usize,
    /// Timed repetitions of each measurement (after one warm-up); in the scale mode, of
    /// each size below 16 GiB.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// The CUDA device ordinal.
    #[arg(long, default_value_t = 0)]
    device: u32,
    /// Scale mode: sizes in GiB (fractions allowed) to create, register and release.
    #[arg(long, value_delimiter = ',', value_name = "GIB,...")]
    scale: Vec<f64>,
    /// Scale mode: the kinds of page (4k, thp, hugetlb); the system must grant them.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "4k",
        value_name = "KIND,..."
    )]
    pages: Vec<String>,
    /// Scale mode: thread counts of the population sweep.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    threads: Vec<usize>,
    /// Scale mode: size of the sweep and the probe, in GiB.
    #[arg(long, default_value_t = 16.0, value_name = "GIB")]
    sweep_gib: f64,
    /// Scale mode: run the population probe (madvise, files, touch, fallocate, anon).
    #[arg(long)]
    probe: bool,
    /// Scale mode: size of the probe, in GiB.
    #[arg(long, default_value_t = 8.0, value_name = "GIB")]
    probe_gib: f64,
    /// Scale mode: thread counts of the probe (default: the sweep's).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    probe_threads: Vec<usize>,
    /// Scale mode: copies from a registered 1 GiB Block of each kind vs cuMemAllocHost.
    #[arg(long)]
    copies: bool,
    /// Scale mode: do not measure cuMemAllocHost / cuMemFreeHost at each size.
    #[arg(long)]
    no_anchors: bool,
    /// Scale mode: registration chunk in GiB (default: unimem's, 64 GiB).
    #[arg(long, default_value_t = 0.0, value_name = "GIB")]
    chunk_gib: f64,
    /// Scale mode: append one JSON record per measurement to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Scale mode: a label stored in every record (e.g. the run and part).
    #[arg(long, default_value = "")]
    label: String,
    /// Draw progress bars on stderr even when it is not a terminal.
    #[arg(long)]
    progress: bool,
    /// Plot mode: write SVG charts and summary.md into this directory from --from files.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Plot mode: JSON Lines files of records (the bench's and the PyTorch script's).
    #[arg(long, value_name = "FILE")]
    from: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(dir) = &args.plot {
        let records = record::read_all(&args.from);
        return match plot::write(&records, dir) {
            Ok(md) => {
                print!("{md}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!(
                    "unimem-cuda-bench: cannot write the plots into {}: {err}",
                    dir.display()
                );
                ExitCode::FAILURE
            }
        };
    }
    if !args.scale.is_empty() || !args.threads.is_empty() || args.probe {
        let plan = scale::Plan {
            sizes: args.scale.clone(),
            pages: args.pages.clone(),
            threads: args.threads.clone(),
            sweep_gib: args.sweep_gib,
            probe: args.probe,
            probe_gib: args.probe_gib,
            probe_threads: args.probe_threads.clone(),
            copies: args.copies,
            anchors: !args.no_anchors,
            reps: args.reps,
            device: args.device,
            chunk_gib: args.chunk_gib,
            progress: args.progress,
        };
        let records = record::Records::new(args.json.clone(), args.label.clone());
        return match scale::run(&plan, &records) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("unimem-cuda-bench: {err}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("unimem-cuda-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Timings of one measurement.
struct Samples(Vec<Duration>);

impl Samples {
    fn min(&self) -> Duration {
        self.0.iter().copied().min().unwrap_or_default()
    }

    fn median(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    /// Best and median rate in GB/s for `bytes` per sample.
    fn rates(&self, bytes: usize) -> (f64, f64) {
        (gbps(bytes, self.min()), gbps(bytes, self.median()))
    }
}

fn gbps(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / time.as_secs_f64().max(1e-12) / 1e9
}

/// Times one run of `op`.
fn time(op: impl FnOnce() -> Result<(), MemError>) -> Result<Duration, MemError> {
    let start = Instant::now();
    op()?;
    Ok(start.elapsed())
}

fn run(args: &Args) -> Result<(), MemError> {
    let size = args.size_mib.max(1) << 20;
    let reps = args.reps.max(1);
    let driver = Driver::load()?;
    let device = driver.device(args.device)?;
    let (major, minor) = driver.version()?;
    println!(
        "unimem-cuda-bench: device {} {}, CUDA driver API {major}.{minor}, {} MiB per \
         operation, best and median of {reps} after one warm-up, {} CPUs",
        device.ordinal(),
        device.name()?,
        size >> 20,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let context = device.context()?;
    let gpu = context.alloc(size)?;

    // Copies and zero-copy access.
    let mut block = Block::builder(size).name("unimem-cuda-bench").open()?;
    block.as_bytes_mut().fill(0x5A);
    let registered = block.register_cuda(&driver, args.device)?;
    let host = context.alloc_host(size)?;
    let mut pageable = vec![0x5Au8; size];
    let sources: [(&str, *mut u8); 3] = [
        ("unimem Block (registered)", block.address()),
        ("cuMemAllocHost", host.as_ptr()),
        ("pageable (Vec)", pageable.as_mut_ptr()),
    ];
    // Each round measures every source once, so drift on a shared host hits all alike.
    let mut up = [Vec::new(), Vec::new(), Vec::new()];
    let mut down = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..=reps {
        for (i, &(_, ptr)) in sources.iter().enumerate() {
            // SAFETY: `ptr` and the device memory are `size` bytes this process owns; no
            // Rust reference to the host bytes is alive while the copies run (the Block's
            // bytes are not viewed, the Vec is only reached through `ptr`).
            let t = time(|| unsafe { context.copy_to_device(gpu.device_ptr(), ptr, size) })?;
            // SAFETY: as above.
            let u = time(|| unsafe { context.copy_to_host(ptr, gpu.device_ptr(), size) })?;
            if round > 0 {
                up[i].push(t);
                down[i].push(u);
            }
        }
    }
    println!();
    println!("| copy | host memory | best GB/s | median GB/s |");
    println!("|---|---|---|---|");
    let mut htod = Vec::new();
    let mut dtoh = Vec::new();
    for (direction, samples, best_of) in [
        ("host to device", up, &mut htod),
        ("device to host", down, &mut dtoh),
    ] {
        for ((label, _), samples) in sources.iter().zip(samples) {
            let (best, median) = Samples(samples).rates(size);
            println!("| {direction} | {label} | {best:.1} | {median:.1} |");
            best_of.push(best);
        }
    }

    let aliases = [
        ("unimem Block (registered)", registered.device_ptr()),
        ("cuMemAllocHost", host.device_ptr()),
    ];
    let mut reads = [Vec::new(), Vec::new()];
    let mut writes = [Vec::new(), Vec::new()];
    for round in 0..=reps {
        for (i, &(_, alias)) in aliases.iter().enumerate() {
            // SAFETY: the alias and the device memory are `size` bytes this process owns;
            // no Rust reference to the host bytes is alive while the GPU reads or writes
            // them.
            let r = time(|| unsafe { context.copy(gpu.device_ptr(), alias, size) })?;
            // SAFETY: as above.
            let w = time(|| unsafe { context.memset_d32(alias, 0x1234_5678, size / 4) })?;
            if round > 0 {
                reads[i].push(r);
                writes[i].push(w);
            }
        }
    }
    println!();
    println!("| zero-copy, no kernel | host memory | best GB/s | median GB/s |");
    println!("|---|---|---|---|");
    for (what, samples) in [
        (
            "GPU reads host memory (DtoD from the device pointer)",
            reads,
        ),
        (
            "GPU writes host memory (memset D32 into the device pointer)",
            writes,
        ),
    ] {
        for ((label, _), samples) in aliases.iter().zip(samples) {
            let (best, median) = Samples(samples).rates(size);
            println!("| {what} | {label} | {best:.1} | {median:.1} |");
        }
    }
    drop(registered);
    drop(host);
    drop(pageable);
    drop(block);

    // Creation of GPU-usable pinned memory, interleaved so drift hits both alike.
    let mut open = Vec::new();
    let mut register = Vec::new();
    let mut unimem_total = Vec::new();
    let mut unimem_release = Vec::new();
    let mut alloc_host = Vec::new();
    let mut free_host = Vec::new();
    for round in 0..=reps {
        let (o, r, t, rel) = create_block(&driver, args.device, size)?;
        let (a, f) = create_host(&context, size)?;
        if round > 0 {
            open.push(o);
            register.push(r);
            unimem_total.push(t);
            unimem_release.push(rel);
            alloc_host.push(a);
            free_host.push(f);
        }
    }
    let secs = |d: Duration| d.as_secs_f64();
    println!();
    println!(
        "| create {} MiB of GPU-usable pinned memory | min s | median s |",
        size >> 20
    );
    println!("|---|---|---|");
    let rows = [
        ("Block::open + register_cuda", Samples(unimem_total)),
        ("  of which Block::open", Samples(open)),
        ("  of which register_cuda", Samples(register)),
        ("cuMemAllocHost", Samples(alloc_host)),
        ("release: unregister + drop Block", Samples(unimem_release)),
        ("release: cuMemFreeHost", Samples(free_host)),
    ];
    for (label, samples) in &rows {
        println!(
            "| {label} | {:.3} | {:.3} |",
            secs(samples.min()),
            secs(samples.median())
        );
    }

    // The targets.
    println!();
    println!("Targets (issue 8):");
    let (block_up, host_up, page_up) = (htod[0], htod[1], htod[2]);
    let (block_down, host_down, page_down) = (dtoh[0], dtoh[1], dtoh[2]);
    target(
        "HtoD from a Block >= 97% of cuMemAllocHost",
        block_up >= 0.97 * host_up,
        format!("{:.1}%", 100.0 * block_up / host_up),
    );
    target(
        "DtoH into a Block >= 97% of cuMemAllocHost",
        block_down >= 0.97 * host_down,
        format!("{:.1}%", 100.0 * block_down / host_down),
    );
    target(
        "HtoD from a Block >= 5x pageable",
        block_up >= 5.0 * page_up,
        format!("{:.1}x", block_up / page_up),
    );
    target(
        "DtoH into a Block >= 5x pageable",
        block_down >= 5.0 * page_down,
        format!("{:.1}x", block_down / page_down),
    );
    let (unimem_median, host_median) = (rows[0].1.median(), rows[3].1.median());
    target(
        "creation: Block::open + register_cuda <= cuMemAllocHost (median)",
        unimem_median <= host_median,
        format!("{:.3} s vs {:.3} s", secs(unimem_median), secs(host_median)),
    );
    Ok(())
}

fn target(what: &str, met: bool, detail: String) {
    println!("  {}  {what}: {detail}", if met { "PASS" } else { "MISS" });
}

/// Opens and registers a Block of `size` bytes, then releases it: (open, register, open +
/// register, unregister + drop).
fn create_block(
    driver: &Driver,
    device: u32,
    size: usize,
) -> Result<(Duration, Duration, Duration, Duration), MemError> {
    let start = Instant::now();
    let block = Block::builder(size).name("unimem-cuda-bench").open()?;
    let opened = start.elapsed();
    let registered = block.register_cuda(driver, device)?;
    let total = start.elapsed();
    let start = Instant::now();
    drop(registered);
    drop(block);
    Ok((opened, total - opened, total, start.elapsed()))
}

/// Allocates `size` bytes with `cuMemAllocHost`, then frees them: (allocate, free).
fn create_host(context: &Context, size: usize) -> Result<(Duration, Duration), MemError> {
    let start = Instant::now();
    let host = context.alloc_host(size)?;
    let allocated = start.elapsed();
    let start = Instant::now();
    drop(host);
    Ok((allocated, start.elapsed()))
}

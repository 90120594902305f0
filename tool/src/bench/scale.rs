//! The scale mode of `unimem-cuda-bench` (issue 12): GPU-usable pinned memory of 1 to
//! 100+ GiB created and released by unimem on each kind of page, beside CUDA's own
//! allocator; population throughput against threads; where population stalls (`probe`);
//! copies from huge-page Blocks.
//!
//! Every measurement is one record (JSON Lines, `record.rs`) with its numbers in seconds
//! and bytes; `plot.rs` turns the records into SVG plots and Markdown tables. Each size
//! is measured alone: the memory of one measurement is released (and waited for) before
//! the next begins. Without a GPU (the build machine) everything but registration,
//! `cuMemAllocHost` and copies runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use unimem::cuda::{Context, Driver, RegisterOptions};
use unimem::{Block, HugePages, Limits, MemError, Pages, Progress};

use super::record::Records;
use crate::progress_bar::Bar;

const GIB: f64 = (1u64 << 30) as f64;

/// What to measure.
pub(crate) struct Plan {
    /// Sizes of the creation runs, in GiB.
    pub(crate) sizes: Vec<f64>,
    /// Page kinds: `4k`, `thp`, `hugetlb`.
    pub(crate) pages: Vec<String>,
    /// Thread counts of the population sweep (empty: no sweep).
    pub(crate) threads: Vec<usize>,
    /// Size of the sweep, in GiB.
    pub(crate) sweep_gib: f64,
    /// Run the population probe (`probe.rs`).
    pub(crate) probe: bool,
    /// Size of the probe, in GiB.
    pub(crate) probe_gib: f64,
    /// Thread counts of the probe (empty: those of the sweep, or 1, 4, 16).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) probe_threads: Vec<usize>,
    /// Measure copies from each kind of Block at 1 GiB.
    pub(crate) copies: bool,
    /// Measure `cuMemAllocHost` / `cuMemFreeHost` at every size.
    pub(crate) anchors: bool,
    /// Repetitions of each creation run (the sizes of 16 GiB and more run once).
    pub(crate) reps: usize,
    pub(crate) device: u32,
    /// The chunk of registrations, in GiB (0: the default).
    pub(crate) chunk_gib: f64,
    pub(crate) progress: bool,
}

/// The GPU, if there is one: the driver and a context held for the whole run, so that
/// registrations do not create and destroy the primary context each time.
struct Gpu {
    driver: Driver,
    context: Context,
    device: u32,
}

pub(crate) fn run(plan: &Plan, records: &Records) -> Result<(), MemError> {
    let gpu = match Driver::load().and_then(|driver| {
        let context = driver.device(plan.device)?.context()?;
        Ok(Gpu {
            driver,
            context,
            device: plan.device,
        })
    }) {
        Ok(gpu) => Some(gpu),
        Err(err) => {
            eprintln!(
                "unimem-cuda-bench: no GPU ({err}): registration, anchors and copies are skipped"
            );
            None
        }
    };
    records.add(machine(gpu.as_ref()));
    let bytes = |gib: f64| ((gib * GIB) as usize).max(1 << 20);
    for kind in &plan.pages {
        for &gib in &plan.sizes {
            let reps = if gib >= 16.0 { 1 } else { plan.reps.max(1) };
            for rep in 0..reps {
                records.add(create(plan, gpu.as_ref(), kind, bytes(gib), rep)?);
            }
        }
        for &threads in &plan.threads {
            records.add(sweep(kind, bytes(plan.sweep_gib), threads)?);
        }
        if plan.copies {
            if let Some(gpu) = &gpu {
                records.add(copies(gpu, kind, 1 << 30)?);
            }
        }
    }
    if plan.anchors {
        if let Some(gpu) = &gpu {
            for &gib in &plan.sizes {
                let reps = if gib >= 16.0 { 1 } else { plan.reps.max(1) };
                for rep in 0..reps {
                    records.add(anchor(gpu, bytes(gib), rep)?);
                }
            }
        }
    }
    if plan.probe {
        probe(plan, records, bytes(plan.probe_gib));
    }
    Ok(())
}

/// What the run ran on.
fn machine(gpu: Option<&Gpu>) -> Value {
    let limits = Limits::read();
    let device = gpu.and_then(|gpu| gpu.driver.device(gpu.device).ok());
    json!({
        "kind": "machine",
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "mem_available": limits.mem_available,
        "shmem_thp": limits.shmem_thp,
        "thp_size": limits.thp_size,
        "hugetlb": limits.hugetlb.iter().map(|p| json!({"page_size": p.page_size, "total": p.total, "free": p.free})).collect::<Vec<_>>(),
        "numa_nodes": limits.numa_nodes.len(),
        "device": device.and_then(|d| d.name().ok()),
        "driver": gpu.and_then(|gpu| gpu.driver.version().ok()).map(|(a, b)| format!("{a}.{b}")),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    })
}

/// The Builder for a page kind, and the pages it must give.
fn builder(kind: &str, size: usize) -> (unimem::Builder, Pages) {
    let block = Block::builder(size).name("unimem-cuda-bench");
    match kind {
        "thp" => (block.huge_pages(HugePages::Required), Pages::Transparent),
        "hugetlb" => (block.huge_pages(HugePages::Required), Pages::HugeTlb),
        _ => (block, Pages::Base),
    }
}

/// A record of a kind of page the machine would not give (the reason printed in full
/// once per run, its first clause after that).
fn refused(what: &str, kind: &str, size: usize, why: String) -> Value {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let short = why.split(':').next().unwrap_or(&why).to_owned();
    if said.contains(&why) {
        eprintln!(
            "{what} {kind} {:.2} GiB: refused: {short} (as above)",
            size as f64 / GIB
        );
    } else {
        eprintln!("{what} {kind} {:.2} GiB: refused: {why}", size as f64 / GIB);
        said.push(why.clone());
    }
    json!({"kind": what, "pages": kind, "size": size, "asked": size, "refused": why})
}

/// Bytes of the mapping at `address` mapped with huge entries (`/proc/self/smaps`).
fn huge_mapped(address: *mut u8) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let start = format!("{:x}-", address as usize);
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start)).skip(1);
    let mut huge = 0;
    for line in lines.by_ref() {
        for key in [
            "ShmemPmdMapped:",
            "FilePmdMapped:",
            "Private_Hugetlb:",
            "Shared_Hugetlb:",
        ] {
            if let Some(rest) = line.strip_prefix(key) {
                huge += rest.split_whitespace().next()?.parse::<u64>().ok()? * 1024;
            }
        }
        if line.starts_with("VmFlags:") {
            break;
        }
    }
    Some(huge)
}

/// One creation: open (timed), register (timed), unregister, drop (the caller's cost), and
/// the wait until the memory is back.
fn create(
    plan: &Plan,
    gpu: Option<&Gpu>,
    kind: &str,
    size: usize,
    rep: usize,
) -> Result<Value, MemError> {
    unimem::wait_for_releases();
    let progress = Arc::new(Progress::new());
    let work = if gpu.is_some() { 2 * size } else { size } as u64;
    let bar = Bar::start(
        &progress,
        &format!("{kind} {:.0} GiB", size as f64 / GIB),
        work,
        plan.progress,
    );
    let (builder, want) = builder(kind, size);
    let start = Instant::now();
    let block = match builder.progress(&progress).open() {
        Ok(block) => block,
        Err(err @ MemError::HugePagesUnavailable { .. }) => {
            return Ok(refused("create", kind, size, err.to_string()));
        }
        Err(err) => return Err(err),
    };
    let open = start.elapsed();
    if block.pages() != want {
        return Ok(refused(
            "create",
            kind,
            size,
            format!("got {} pages", block.pages()),
        ));
    }
    let huge = huge_mapped(block.address());
    let mut record = json!({
        "kind": "create", "pages": kind, "size": block.size(), "asked": size, "rep": rep,
        "page_size": block.page_size(), "huge_mapped": huge, "open_s": secs(open),
    });
    if let Some(gpu) = gpu {
        let mut options = RegisterOptions::new().progress(&progress);
        if plan.chunk_gib > 0.0 {
            options = options.chunk((plan.chunk_gib * GIB) as usize);
        }
        let start = Instant::now();
        let registered = block.register_cuda_with(&gpu.driver, gpu.device, &options)?;
        let register = start.elapsed();
        let chunks = registered.chunks();
        let start = Instant::now();
        drop(registered);
        let unregister = start.elapsed();
        record["register_s"] = json!(secs(register));
        record["unregister_s"] = json!(secs(unregister));
        record["chunks"] = json!(chunks);
    }
    bar.finish();
    let start = Instant::now();
    drop(block);
    let dropped = start.elapsed();
    let start = Instant::now();
    unimem::wait_for_releases();
    let freed = dropped + start.elapsed();
    record["drop_s"] = json!(secs(dropped));
    record["freed_s"] = json!(secs(freed));
    eprintln!(
        "create {kind} {:.1} GiB: open {:.3} s ({:.1} GB/s), register {}, drop {:.3} s, freed after {:.3} s",
        size as f64 / GIB,
        secs(open),
        size as f64 / secs(open) / 1e9,
        record["register_s"]
            .as_f64()
            .map_or("-".into(), |s| format!("{s:.3} s")),
        secs(dropped),
        secs(freed),
    );
    Ok(record)
}

/// Population throughput with `threads` threads (open only).
fn sweep(kind: &str, size: usize, threads: usize) -> Result<Value, MemError> {
    unimem::wait_for_releases();
    let (builder, want) = builder(kind, size);
    let start = Instant::now();
    let block = match builder.threads(threads).open() {
        Ok(block) => block,
        Err(err @ MemError::HugePagesUnavailable { .. }) => {
            return Ok(refused("sweep", kind, size, err.to_string()));
        }
        Err(err) => return Err(err),
    };
    let open = start.elapsed();
    if block.pages() != want {
        return Ok(refused(
            "sweep",
            kind,
            size,
            format!("got {} pages", block.pages()),
        ));
    }
    drop(block);
    unimem::wait_for_releases();
    let gbps = size as f64 / secs(open) / 1e9;
    eprintln!(
        "sweep {kind} {:.1} GiB, {threads} threads: {gbps:.2} GB/s",
        size as f64 / GIB
    );
    Ok(
        json!({"kind": "sweep", "pages": kind, "size": size, "threads": threads, "open_s": secs(open), "gbps": gbps}),
    )
}

/// `cuMemAllocHost` and `cuMemFreeHost` of `size` bytes.
fn anchor(gpu: &Gpu, size: usize, rep: usize) -> Result<Value, MemError> {
    unimem::wait_for_releases();
    let start = Instant::now();
    let host = gpu.context.alloc_host(size)?;
    let alloc = start.elapsed();
    let start = Instant::now();
    drop(host);
    let free = start.elapsed();
    eprintln!(
        "anchor cuMemAllocHost {:.1} GiB: {:.3} s, cuMemFreeHost {:.3} s",
        size as f64 / GIB,
        secs(alloc),
        secs(free)
    );
    Ok(
        json!({"kind": "anchor", "what": "cuMemAllocHost", "size": size, "rep": rep, "alloc_s": secs(alloc), "free_s": secs(free)}),
    )
}

/// Copies to and from a registered Block of `kind` against `cuMemAllocHost` memory, best
/// of 5 after a warm-up, interleaved.
fn copies(gpu: &Gpu, kind: &str, size: usize) -> Result<Value, MemError> {
    unimem::wait_for_releases();
    let (builder, want) = builder(kind, size);
    let block = match builder.open() {
        Ok(block) => block,
        Err(err @ MemError::HugePagesUnavailable { .. }) => {
            return Ok(refused("copy", kind, size, err.to_string()));
        }
        Err(err) => return Err(err),
    };
    if block.pages() != want {
        return Ok(refused(
            "copy",
            kind,
            size,
            format!("got {} pages", block.pages()),
        ));
    }
    let registered = block.register_cuda(&gpu.driver, gpu.device)?;
    let host = gpu.context.alloc_host(size)?;
    let device = gpu.context.alloc(size)?;
    let mut best = [[f64::MAX; 2]; 2];
    for round in 0..6 {
        for (i, ptr) in [block.address(), host.as_ptr()].into_iter().enumerate() {
            let start = Instant::now();
            // SAFETY: `ptr` and the device memory are `size` bytes this process owns; no
            // Rust reference to the host bytes is alive while the copies run.
            unsafe { gpu.context.copy_to_device(device.device_ptr(), ptr, size)? };
            let up = secs(start.elapsed());
            let start = Instant::now();
            // SAFETY: as above.
            unsafe { gpu.context.copy_to_host(ptr, device.device_ptr(), size)? };
            let down = secs(start.elapsed());
            if round > 0 {
                best[i][0] = best[i][0].min(up);
                best[i][1] = best[i][1].min(down);
            }
        }
    }
    drop(registered);
    let rate = |s: f64| size as f64 / s / 1e9;
    let record = json!({
        "kind": "copy", "pages": kind, "size": size,
        "block_htod": rate(best[0][0]), "block_dtoh": rate(best[0][1]),
        "host_htod": rate(best[1][0]), "host_dtoh": rate(best[1][1]),
    });
    eprintln!(
        "copy {kind} 1 GiB: HtoD {:.1} vs {:.1} GB/s, DtoH {:.1} vs {:.1} GB/s (Block vs cuMemAllocHost)",
        rate(best[0][0]),
        rate(best[1][0]),
        rate(best[0][1]),
        rate(best[1][1])
    );
    Ok(record)
}

/// The population probe at every thread count of the sweep (or 1, 4, 16), for each page
/// kind asked among `4k` and `thp`.
#[cfg(target_os = "linux")]
fn probe(plan: &Plan, records: &Records, size: usize) {
    let threads = match (&plan.probe_threads, &plan.threads) {
        (probe, _) if !probe.is_empty() => probe.clone(),
        (_, sweep) if !sweep.is_empty() => sweep.clone(),
        _ => vec![1, 4, 16],
    };
    for kind in plan.pages.iter().filter(|k| *k == "4k" || *k == "thp") {
        for method in super::probe::METHODS {
            for &t in &threads {
                match super::probe::run(method, size, t, kind == "thp") {
                    Ok((populate, release)) => {
                        let gbps = size as f64 / secs(populate) / 1e9;
                        eprintln!("probe {kind} {method} {t} threads: {gbps:.2} GB/s, release {:.3} s", secs(release));
                        records.add(json!({"kind": "probe", "pages": kind, "method": method, "threads": t, "size": size,
                            "populate_s": secs(populate), "release_s": secs(release), "gbps": gbps}));
                    }
                    Err(why) => records.add(json!({"kind": "probe", "pages": kind, "method": method, "threads": t, "size": size, "refused": why})),
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn probe(_: &Plan, _: &Records, _: usize) {
    eprintln!("unimem-cuda-bench: the population probe is Linux only");
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

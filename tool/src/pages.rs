//! Pages and NUMA: which page sizes this machine grants a Block, what enabling the others
//! would gain (measured figures), a Block opened with `HugePages::Try` (what it got, how
//! fast, how much is mapped huge), and the NUMA nodes and where that Block landed.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use unimem::{Block, HugePages, Limits, MemError, Pages, Pin, Progress};

use crate::progress_bar::Bar;
use crate::report::{Report, Section, Status, fmt_bytes};

/// What enabling huge pages gained where it was measured: issue 12's probe on the 16-core
/// H200 host, 16 GiB populated by 16 threads, then released.
const THP_GAIN: &str =
    "population 4.8 -> 41.5 GB/s, release 1.8 s -> 0.05 s (16 GiB, 16 threads, H200 host)";
const HUGETLB_GAIN: &str =
    "population 4.8 -> 8.1 GB/s, release 1.8 s -> 0.01 s (16 GiB, 16 threads, H200 host)";

pub(crate) fn exercise(report: &mut Report, size: usize, node: Option<u32>, progress: bool) {
    let mut s = Section::new("Pages");
    let limits = Limits::read();
    s.bytes("base page", Some(limits.page_size as u64));
    let thp = match (limits.shmem_thp, limits.thp_size) {
        (Some(setting), Some(size)) => format!(
            "{setting} ({}, {})",
            fmt_bytes(size as u64),
            if limits.transparent_huge_pages() {
                "allowed"
            } else {
                "not allowed"
            }
        ),
        _ => "not in this kernel".into(),
    };
    s.row(
        "THP for shmem",
        thp,
        json!({"setting": limits.shmem_thp, "size": limits.thp_size}),
    );
    if !limits.transparent_huge_pages() && limits.thp_size.is_some() {
        s.text(
            "enabling THP for shmem",
            format!("as root: echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled; gained {THP_GAIN}"),
        );
    }
    for pool in &limits.hugetlb {
        s.row(
            format!("hugetlb {}", fmt_bytes(pool.page_size as u64)),
            format!("{} pages, {} free, {} reserved", pool.total, pool.free, pool.reserved),
            json!({"page_size": pool.page_size, "total": pool.total, "free": pool.free, "reserved": pool.reserved}),
        );
    }
    if limits.hugetlb.iter().all(|pool| pool.usable() == 0) {
        s.text(
            "reserving hugetlb pages",
            format!("as root: sysctl vm.nr_hugepages=N (2 MiB pages); gained {HUGETLB_GAIN}"),
        );
    }
    let nodes: Vec<String> = limits
        .numa_nodes
        .iter()
        .map(|n| {
            format!(
                "node {}: {} CPUs, {} ({} free)",
                n.id,
                n.cpus.len(),
                n.mem_total.map_or("?".into(), fmt_bytes),
                n.mem_free.map_or("?".into(), fmt_bytes)
            )
        })
        .collect();
    s.row(
        "NUMA nodes",
        if nodes.is_empty() {
            "none listed (no NUMA in this kernel)".into()
        } else {
            nodes.join("; ")
        },
        // Keyed by node id: a row's JSON value is never an array (specs/tool.md).
        serde_json::Value::Object(
            limits
                .numa_nodes
                .iter()
                .map(|n| {
                    let node = json!({"cpus": n.cpus.len(), "mem_total": n.mem_total, "mem_free": n.mem_free});
                    (n.id.to_string(), node)
                })
                .collect(),
        ),
    );

    let progress_counter = Arc::new(Progress::new());
    let mut builder = Block::builder(size)
        .name("unimem-report-pages")
        .huge_pages(HugePages::Try)
        .pin(Pin::BestEffort)
        .progress(&progress_counter);
    if let Some(node) = node {
        builder = builder.numa_node(node);
    }
    let bar = Bar::start(&progress_counter, "open", size as u64, progress);
    let start = Instant::now();
    let opened = builder.open();
    let open_time = start.elapsed();
    bar.finish();
    let mut block = match opened {
        Ok(block) => block,
        Err(err) => {
            s.text("open with HugePages::Try", format!("refused: {err}"));
            report.add(s);
            report.verdict("pages", Status::Refused, err.to_string());
            return;
        }
    };
    s.text(
        "HugePages::Try gave",
        format!(
            "{} pages of {}",
            block.pages(),
            fmt_bytes(block.page_size() as u64)
        ),
    );
    s.rate(
        format!("open {} (populate)", fmt_bytes(block.size() as u64)),
        block.size() as u64,
        open_time,
    );
    if block.pages() == Pages::Transparent {
        if let Some(huge) = huge_mapped(block.address()) {
            s.bytes("mapped huge (ShmemPmdMapped)", Some(huge));
        }
    }
    match numa_bytes(&block) {
        Ok(nodes) => s.row(
            "landed on",
            nodes
                .iter()
                .map(|&(n, b)| format!("node {n}: {}", fmt_bytes(b)))
                .collect::<Vec<_>>()
                .join(", "),
            serde_json::Value::Object(
                nodes
                    .iter()
                    .map(|&(n, b)| (n.to_string(), json!(b)))
                    .collect(),
            ),
        ),
        Err(err) => s.text("landed on", format!("unknown: {err}")),
    }
    let misplaced = node.is_some_and(|n| {
        numa_bytes(&block).is_ok_and(|nodes| nodes.iter().any(|&(m, b)| m != n && b > 0))
    });
    let words = block.as_slice_mut::<u64>();
    for (i, w) in words.iter_mut().enumerate() {
        *w = i as u64 ^ 0xA5A5;
    }
    let wrong = block
        .as_slice::<u64>()
        .iter()
        .enumerate()
        .filter(|&(i, &w)| w != i as u64 ^ 0xA5A5)
        .count();
    let got = block.pages();
    let start = Instant::now();
    drop(block);
    s.time("drop returns", start.elapsed());
    unimem::wait_for_releases();
    s.time("memory back after", start.elapsed());
    if got == Pages::Base {
        let refusal = Block::builder(size)
            .huge_pages(HugePages::Required)
            .pin(Pin::BestEffort)
            .open()
            .err();
        if let Some(err @ MemError::HugePagesUnavailable { .. }) = &refusal {
            s.text("HugePages::Required", format!("refused: {err}"));
        }
    }
    report.add(s);
    if wrong != 0 || misplaced {
        report.verdict(
            "pages",
            Status::Failed,
            format!("{wrong} words read back wrong; off the asked node: {misplaced}"),
        );
    } else if got == Pages::Base {
        report.verdict(
            "pages",
            Status::Refused,
            String::from("no huge pages granted here (THP for shmem not allowed, no hugetlb pages free); base pages work"),
        );
    } else {
        report.verdict(
            "pages",
            Status::Works,
            format!(
                "{} on {got} pages, written and verified",
                fmt_bytes(size as u64)
            ),
        );
    }
}

/// Where the Block's pages are, by node (Linux only).
fn numa_bytes(block: &Block) -> Result<Vec<(u32, u64)>, String> {
    #[cfg(target_os = "linux")]
    return block.numa_bytes().map_err(|err| err.to_string());
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = block;
        Err("NUMA placement is Linux only".into())
    };
}

/// Bytes of the mapping at `address` that the kernel maps with huge entries.
fn huge_mapped(address: *mut u8) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let start = format!("{:x}-", address as usize);
    smaps
        .lines()
        .skip_while(|l| !l.starts_with(&start))
        .skip(1)
        .take_while(|l| !l.starts_with("VmFlags:"))
        .find_map(|l| {
            l.strip_prefix("ShmemPmdMapped:")
                .or_else(|| l.strip_prefix("FilePmdMapped:"))
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

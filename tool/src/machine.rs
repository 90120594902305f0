//! What this machine is and what it lets a process pin.

use serde_json::json;
use unimem::Limits;

use crate::report::{Report, Section, fmt_bytes};

pub(crate) fn probe(report: &mut Report) {
    let mut s = Section::new("Machine");
    let kernel = read("/proc/sys/kernel/osrelease");
    s.text(
        "platform",
        format!(
            "{} {}{}",
            std::env::consts::OS,
            std::env::consts::ARCH,
            kernel.map(|k| format!(", kernel {k}")).unwrap_or_default()
        ),
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    s.row("cpus", cpus.to_string(), json!(cpus));
    let limits = Limits::read();
    s.bytes("page size", Some(limits.page_size as u64));
    match limits.memlock {
        Some(Some(limit)) => s.bytes("RLIMIT_MEMLOCK", Some(limit)),
        Some(None) => s.row("RLIMIT_MEMLOCK", "unlimited", json!("unlimited")),
        None => s.row("RLIMIT_MEMLOCK", "not on this platform", json!(null)),
    }
    if let Some(exempt) = limits.lock_exempt {
        let text = if exempt {
            "yes (the limit does not apply)"
        } else {
            "no"
        };
        s.row("CAP_IPC_LOCK", text, json!(exempt));
    }
    s.bytes("locked now (VmLck)", limits.locked);
    s.bytes("MemAvailable", limits.mem_available);
    match limits.cgroup_free {
        Some(free) => s.row("cgroup room", fmt_bytes(free), json!(free)),
        None => s.row("cgroup room", "no cgroup memory limit", json!(null)),
    }
    if let Some(meminfo) = read("/proc/meminfo") {
        let huge = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("HugePages_Total:"))
            .map(str::trim);
        if let Some(huge) = huge {
            s.text("HugePages_Total", huge);
        }
    }
    for (key, path) in [
        ("THP enabled", "/sys/kernel/mm/transparent_hugepage/enabled"),
        (
            "THP shmem_enabled",
            "/sys/kernel/mm/transparent_hugepage/shmem_enabled",
        ),
    ] {
        if let Some(value) = read(path) {
            s.text(key, value);
        }
    }
    report.add(s);
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

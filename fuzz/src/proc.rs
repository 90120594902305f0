//! What this process holds, read from `/proc/self`: the numbers a run must give back.

use std::fs;

/// Open descriptors, locked memory, resident shared memory, and mappings of files whose
/// name starts with a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Entries of `/proc/self/fd`.
    pub fds: usize,
    /// `VmLck` in kB: memory locked with `mlock`.
    pub locked_kb: u64,
    /// `RssShmem` in kB: resident shared memory (memfd and tmpfs pages) mapped here.
    pub shmem_kb: u64,
    /// Lines of `/proc/self/maps` that map a file named with the prefix.
    pub mappings: usize,
}

impl Held {
    /// Reads it now. `prefix` names the files whose mappings are counted (`/memfd:NAME`,
    /// or a path).
    pub fn now(prefix: &str) -> Held {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let maps = fs::read_to_string("/proc/self/maps").unwrap_or_default();
        Held {
            fds: open_fds(),
            locked_kb: kb(&status, "VmLck:"),
            shmem_kb: kb(&status, "RssShmem:"),
            mappings: maps.lines().filter(|l| l.contains(prefix)).count(),
        }
    }
}

/// Entries of `/proc/self/fd` (the directory's own descriptor is counted every time, so
/// differences are exact).
pub fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// A `/proc/self/status` field given in kB, 0 if absent.
pub fn kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The page size.
pub fn page() -> usize {
    unimem::page_size()
}

//! [`Limits`]: what this process may pin and hold, read from the OS.

/// The memory limits that decide whether a [`Block`](crate::Block) can be opened and pinned
/// on this machine, read at the moment of the call.
///
/// [`Block::open`](crate::Block::open) checks the same numbers before it touches memory; the
/// `unimem` tool prints them. Fields that a platform does not have are `None`.
///
/// ```
/// let limits = unimem::Limits::read();
/// assert_eq!(limits.page_size, unimem::page_size());
/// if let Some(headroom) = limits.headroom() {
///     println!("a Block of up to {headroom} bytes fits in memory now");
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The page size, as [`page_size`](crate::page_size).
    pub page_size: usize,
    /// The soft `RLIMIT_MEMLOCK` in bytes: `Some(None)` when unlimited, `None` when the
    /// platform has no such limit.
    pub memlock: Option<Option<u64>>,
    /// Whether the process holds `CAP_IPC_LOCK`, which exempts it from `RLIMIT_MEMLOCK`.
    pub lock_exempt: Option<bool>,
    /// Bytes this process has locked now (`VmLck` in `/proc/self/status`).
    pub locked: Option<u64>,
    /// `MemAvailable` from `/proc/meminfo`, in bytes.
    pub mem_available: Option<u64>,
    /// The cgroup's limit less its usage, in bytes, the tightest over the process's cgroup
    /// and its ancestors; `None` when no cgroup limit is set.
    pub cgroup_free: Option<u64>,
    /// The hugetlb pools the kernel offers, smallest pages first (Linux; empty elsewhere or
    /// without hugetlbfs). A Block can use one with
    /// [`Builder::huge_pages`](crate::Builder::huge_pages) where it has free pages.
    pub hugetlb: Vec<HugeTlbPool>,
    /// The setting of transparent huge pages for shmem, which memfd Blocks are
    /// (`/sys/kernel/mm/transparent_hugepage/shmem_enabled`, or its per-size override):
    /// `"always"`, `"within_size"`, `"advise"`, `"never"`, `"deny"` or `"force"`; `None`
    /// where the kernel has no THP (and off Linux).
    pub shmem_thp: Option<&'static str>,
    /// The size of a transparent huge page (the PMD size, 2 MiB on x86-64).
    pub thp_size: Option<usize>,
    /// The online NUMA nodes, with their CPUs and memory (Linux; empty elsewhere or on a
    /// kernel without NUMA).
    pub numa_nodes: Vec<NumaNode>,
    /// Bytes of dropped Blocks that the release thread has not released yet
    /// ([`wait_for_releases`](crate::wait_for_releases)); `VmLck`, `MemAvailable` and the
    /// cgroup still count them meanwhile.
    pub releasing: u64,
}

/// A hugetlb pool: pages of one size that the administrator reserved
/// (`/sys/kernel/mm/hugepages/hugepages-<size>kB/`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HugeTlbPool {
    /// The size of its pages, in bytes.
    pub page_size: usize,
    /// Pages in the pool (`nr_hugepages`).
    pub total: u64,
    /// Pages not in use (`free_hugepages`), some of which may be promised to mappings.
    pub free: u64,
    /// Pages promised to mappings but not yet faulted in (`resv_hugepages`): a new Block
    /// can have `free - reserved`.
    pub reserved: u64,
}

impl HugeTlbPool {
    /// Pages a new Block can have: free and not promised.
    pub fn usable(&self) -> u64 {
        self.free.saturating_sub(self.reserved)
    }
}

/// A NUMA node (`/sys/devices/system/node/nodeN/`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NumaNode {
    /// The node's number, for [`Builder::numa_node`](crate::Builder::numa_node).
    pub id: u32,
    /// Its CPUs.
    pub cpus: Vec<usize>,
    /// Its memory, in bytes (`MemTotal` of the node's `meminfo`).
    pub mem_total: Option<u64>,
    /// Its free memory, in bytes (`MemFree`).
    pub mem_free: Option<u64>,
}

impl Limits {
    /// Reads the limits now.
    pub fn read() -> Limits {
        os::read()
    }

    /// The most bytes a new Block can take without exceeding `MemAvailable` or the cgroup
    /// limit, or `None` where neither is known.
    pub fn headroom(&self) -> Option<u64> {
        match (self.mem_available, self.cgroup_free) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        }
    }

    /// Whether a Block can have transparent huge pages: THP for shmem is `always`,
    /// `within_size`, `advise` or `force`.
    pub fn transparent_huge_pages(&self) -> bool {
        matches!(
            self.shmem_thp,
            Some("always" | "within_size" | "advise" | "force")
        )
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) use os::check_headroom;

#[cfg(all(target_os = "linux", not(miri)))]
mod os {
    use super::Limits;
    use crate::error::{MemError, MemoryLimit};
    use std::fs;
    use std::path::Path;

    pub(super) fn read() -> Limits {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        Limits {
            page_size: crate::page_size(),
            memlock: crate::ffi::memlock_limit().ok(),
            lock_exempt: cap_effective(&status).map(|caps| caps & (1 << CAP_IPC_LOCK) != 0),
            locked: kib_field(&status, "VmLck:"),
            mem_available: mem_available(),
            cgroup_free: cgroup_free(),
            hugetlb: crate::block::huge::pools(),
            shmem_thp: crate::block::huge::shmem_thp(),
            thp_size: crate::block::huge::thp_size(),
            numa_nodes: crate::block::numa::nodes(),
            releasing: crate::block::releasing(),
        }
    }

    /// Refuses `requested` bytes when `MemAvailable` or the cgroup limit cannot hold them:
    /// an oversized memfd is not an error to the kernel, it is a visit from the OOM killer.
    pub(crate) fn check_headroom(requested: usize) -> Result<(), MemError> {
        let want = requested as u64;
        if let Some(available) = mem_available().filter(|&a| want > a) {
            return Err(MemError::OutOfMemory {
                requested,
                available,
                limit: MemoryLimit::MemAvailable,
            });
        }
        if let Some(available) = cgroup_free().filter(|&a| want > a) {
            return Err(MemError::OutOfMemory {
                requested,
                available,
                limit: MemoryLimit::Cgroup,
            });
        }
        Ok(())
    }

    /// Bit of `CAP_IPC_LOCK` in the capability sets (linux/capability.h).
    const CAP_IPC_LOCK: u32 = 14;

    fn cap_effective(status: &str) -> Option<u64> {
        let hex = field(status, "CapEff:")?;
        u64::from_str_radix(hex, 16).ok()
    }

    fn mem_available() -> Option<u64> {
        kib_field(&fs::read_to_string("/proc/meminfo").ok()?, "MemAvailable:")
    }

    /// The first whitespace-separated word after `key` at the start of a line.
    fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
    }

    /// A `/proc` field given in kB, in bytes.
    fn kib_field(text: &str, key: &str) -> Option<u64> {
        field(text, key)?.parse::<u64>().ok()?.checked_mul(1024)
    }

    /// The tightest `limit - usage` over this process's cgroup and its ancestors.
    fn cgroup_free() -> Option<u64> {
        let membership = fs::read_to_string("/proc/self/cgroup").ok()?;
        cgroup_free_in(&membership, Path::new("/sys/fs/cgroup"))
    }

    /// [`cgroup_free`] for a membership list in the format of `/proc/self/cgroup` and the
    /// cgroup filesystems mounted at `mount` (v2 at `mount`, v1's memory controller at
    /// `mount/memory`): the unit tests give it trees of their own.
    fn cgroup_free_in(membership: &str, mount: &Path) -> Option<u64> {
        let mut tightest: Option<u64> = None;
        for line in membership.lines() {
            // "hierarchy-id:controllers:path": v2 is "0::/path", v1 names "memory".
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (root, max_file, usage_file) = if id == "0" && controllers.is_empty() {
                (mount.to_path_buf(), "memory.max", "memory.current")
            } else if controllers.split(',').any(|c| c == "memory") {
                (
                    mount.join("memory"),
                    "memory.limit_in_bytes",
                    "memory.usage_in_bytes",
                )
            } else {
                continue;
            };
            let mut dir = root.join(path.trim_start_matches('/'));
            loop {
                let max = read_u64(&dir.join(max_file));
                let usage = read_u64(&dir.join(usage_file));
                if let (Some(max), Some(usage)) = (max, usage) {
                    let free = max.saturating_sub(usage);
                    tightest = Some(tightest.map_or(free, |t| t.min(free)));
                }
                if dir == root || !dir.pop() || !dir.starts_with(&root) {
                    break;
                }
            }
        }
        tightest
    }

    /// A file holding one number; "max" (no limit) and absurd v1 "unlimited" values read as
    /// `None`.
    fn read_u64(path: &std::path::Path) -> Option<u64> {
        let value = fs::read_to_string(path).ok()?.trim().parse::<u64>().ok()?;
        (value < 1 << 62).then_some(value)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_proc_fields() {
            let status = "Name:\tx\nVmLck:\t    2048 kB\nCapEff:\t000001ffffffffff\n";
            assert_eq!(kib_field(status, "VmLck:"), Some(2 << 20));
            assert_eq!(cap_effective(status), Some(0x1ff_ffff_ffff));
            assert_eq!(kib_field(status, "VmRSS:"), None);
        }

        /// A cgroup tree of files under a fresh directory: `(path, contents)` pairs.
        fn tree(name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
            let root =
                std::env::temp_dir().join(format!("unimem-cgroup-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            for (path, contents) in files {
                let file = root.join(path);
                fs::create_dir_all(file.parent().unwrap()).unwrap();
                fs::write(file, contents).unwrap();
            }
            root
        }

        const MIB: u64 = 1 << 20;

        #[test]
        fn cgroup_v2_takes_the_tightest_ancestor() {
            let mount = tree(
                "v2",
                &[
                    // The root cgroup has no memory.max: skipped.
                    ("memory.current", "999999999"),
                    ("a/memory.max", &(1024 * MIB).to_string()),
                    ("a/memory.current", &(256 * MIB).to_string()),
                    ("a/b/memory.max", "max"),
                    ("a/b/memory.current", &(100 * MIB).to_string()),
                    ("a/b/c/memory.max", &(900 * MIB).to_string()),
                    ("a/b/c/memory.current", &(100 * MIB).to_string()),
                ],
            );
            // c has 800 MiB of room, a only 768 MiB: the ancestor wins.
            assert_eq!(cgroup_free_in("0::/a/b/c\n", &mount), Some(768 * MIB));
            // Over its limit: no room, not a wrapped-around huge number.
            fs::write(mount.join("a/b/c/memory.current"), (950 * MIB).to_string()).unwrap();
            assert_eq!(cgroup_free_in("0::/a/b/c\n", &mount), Some(0));
            // No limit anywhere on the way up.
            assert_eq!(cgroup_free_in("0::/a/b\n", &mount), Some(768 * MIB));
            assert_eq!(cgroup_free_in("0::/\n", &mount), None);
            fs::remove_dir_all(&mount).unwrap();
        }

        #[test]
        fn cgroup_v1_reads_the_memory_controller_only() {
            let mount = tree(
                "v1",
                &[
                    // "Unlimited" on v1 is a huge page-rounded number: no limit.
                    ("memory/memory.limit_in_bytes", "9223372036854771712"),
                    ("memory/memory.usage_in_bytes", "5000000000"),
                    ("memory/job/memory.limit_in_bytes", &(64 * MIB).to_string()),
                    ("memory/job/memory.usage_in_bytes", &(16 * MIB).to_string()),
                    ("cpu/job/memory.limit_in_bytes", "1"),
                    ("cpu/job/memory.usage_in_bytes", "0"),
                ],
            );
            let membership = "12:cpu,cpuacct:/job\n4:memory:/job\n1:name=systemd:/\n";
            assert_eq!(cgroup_free_in(membership, &mount), Some(48 * MIB));
            // Controllers listed together are still found.
            assert_eq!(
                cgroup_free_in("4:blkio,memory:/job\n", &mount),
                Some(48 * MIB)
            );
            // Lines that are not memory cgroups, or not lines at all, are skipped.
            assert_eq!(cgroup_free_in("12:cpu:/job\ngarbage\n", &mount), None);
            fs::remove_dir_all(&mount).unwrap();
        }

        #[test]
        fn reads_this_machine() {
            let limits = Limits::read();
            assert!(limits.mem_available.is_some_and(|a| a > 0));
            assert!(limits.locked.is_some());
            assert!(limits.memlock.is_some());
        }
    }
}

#[cfg(not(all(target_os = "linux", not(miri))))]
mod os {
    use super::Limits;

    /// The soft `RLIMIT_MEMLOCK` where the platform has one (every Unix but Miri's).
    fn memlock() -> Option<Option<u64>> {
        #[cfg(all(unix, not(miri)))]
        return crate::ffi::memlock_limit().ok();
        #[cfg(not(all(unix, not(miri))))]
        return None;
    }

    pub(super) fn read() -> Limits {
        Limits {
            page_size: crate::page_size(),
            memlock: memlock(),
            lock_exempt: None,
            locked: None,
            mem_available: None,
            cgroup_free: None,
            hugetlb: Vec::new(),
            shmem_thp: None,
            thp_size: None,
            numa_nodes: Vec::new(),
            releasing: crate::block::releasing(),
        }
    }
}

//! NUMA nodes on Linux: which exist and with which CPUs and memory, binding a Block to one
//! (`mbind`), and where a Block's pages landed (`/proc/self/numa_maps`).
//!
//! # Why `mbind` on the mapping is enough
//!
//! A Block is a shared mapping of a memfd. mbind(2) on a shared mapping of a shmem file sets
//! the *file's* policy for that range ("shared policy"), so every page allocated for it
//! from then on comes from the node, whichever thread or process faults it. unimem binds
//! before a single page exists and then populates every page, so the whole Block is on the
//! node or `open` fails (`MADV_POPULATE_WRITE` reports the allocation failure).
//!
//! # Sources
//!
//! mbind(2) (`MPOL_BIND`, shared policies), sched_setaffinity(2), proc(5)
//! (`/proc/PID/numa_maps`), the kernel's `Documentation/ABI/stable/sysfs-devices-node`
//! (`online`, `has_memory`, `nodeN/cpulist`, `nodeN/meminfo`).

use std::ptr::NonNull;

use crate::error::MemError;
use crate::ffi::linux as ffi;
use crate::limits::NumaNode;

use super::sysfs;

const NODES: &str = "/sys/devices/system/node";

/// The online nodes, with their CPUs and memory. Empty where the kernel has no NUMA.
pub(crate) fn nodes() -> Vec<NumaNode> {
    let Some(online) = sysfs::read(format!("{NODES}/online")).and_then(|t| sysfs::list(&t)) else {
        return Vec::new();
    };
    online
        .into_iter()
        .filter_map(|id| u32::try_from(id).ok())
        .map(|id| {
            let meminfo =
                std::fs::read_to_string(format!("{NODES}/node{id}/meminfo")).unwrap_or_default();
            NumaNode {
                id,
                cpus: node_cpus(id),
                mem_total: node_kib(&meminfo, "MemTotal:"),
                mem_free: node_kib(&meminfo, "MemFree:"),
            }
        })
        .collect()
}

/// A field of a node's `meminfo` ("Node 0 MemTotal:  24567844 kB"), in bytes.
fn node_kib(meminfo: &str, key: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.contains(key))?;
    let rest = line.split_once(key)?.1;
    rest.split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?
        .checked_mul(1024)
}

/// The CPUs of `node`.
fn node_cpus(node: u32) -> Vec<usize> {
    sysfs::read(format!("{NODES}/node{node}/cpulist"))
        .and_then(|t| sysfs::list(&t))
        .unwrap_or_default()
}

/// Whether this kernel has NUMA at all (`/sys/devices/system/node` exists).
fn numa_kernel() -> bool {
    std::path::Path::new(NODES).exists()
}

/// Refuses a node that does not exist or has no memory, before anything is made.
pub(crate) fn check(node: u32) -> Result<(), MemError> {
    if !numa_kernel() {
        // No NUMA in the kernel: node 0 is the whole machine.
        return match node {
            0 => Ok(()),
            _ => Err(MemError::BadNumaNode {
                node,
                online: "0".into(),
                reason: "does not exist (this kernel has no NUMA: node 0 is the machine)",
            }),
        };
    }
    let online_text = sysfs::read(format!("{NODES}/online")).unwrap_or_default();
    let online = sysfs::list(&online_text).unwrap_or_default();
    if !online.contains(&(node as usize)) {
        return Err(MemError::BadNumaNode {
            node,
            online: online_text,
            reason: "does not exist or is offline",
        });
    }
    let with_memory = sysfs::read(format!("{NODES}/has_memory"))
        .and_then(|t| sysfs::list(&t))
        .unwrap_or(online);
    if !with_memory.contains(&(node as usize)) {
        return Err(MemError::BadNumaNode {
            node,
            online: online_text,
            reason: "has no memory (CPUs only)",
        });
    }
    Ok(())
}

/// Binds `len` bytes at `base` to `node` (`MPOL_BIND`), before any page of them exists.
pub(crate) fn bind(base: NonNull<u8>, len: usize, node: u32) -> Result<(), MemError> {
    match ffi::mbind(base, len, node) {
        Ok(()) => Ok(()),
        // A kernel without NUMA: node 0 (the only one `check` lets through) is everything.
        Err(libc::ENOSYS) if !numa_kernel() => Ok(()),
        Err(errno) => Err(MemError::Os {
            call: "mbind",
            errno,
        }),
    }
}

/// The CPUs the populating threads of a Block on `node` run on: the node's CPUs this
/// process may use; empty (meaning "leave the threads alone") if there are none or the
/// mask cannot be read.
pub(crate) fn cpus_for(node: u32) -> Vec<usize> {
    let Ok(allowed) = ffi::cpu_affinity() else {
        return Vec::new();
    };
    node_cpus(node)
        .into_iter()
        .filter(|cpu| allowed.contains(cpu))
        .collect()
}

/// Bytes of the mapping that starts at `base` on each node, from `/proc/self/numa_maps`.
pub(crate) fn bytes(base: NonNull<u8>) -> Result<Vec<(u32, u64)>, MemError> {
    bytes_in(
        std::fs::read_to_string("/proc/self/numa_maps"),
        base.as_ptr() as usize,
    )
}

/// [`bytes`] from what reading `numa_maps` gave: a failed read is its errno (`ENOENT`
/// where the kernel has no NUMA), a file without the mapping's line `ESRCH`. Apart from
/// the read so that both refusals are tested on any machine.
fn bytes_in(maps: std::io::Result<String>, start: usize) -> Result<Vec<(u32, u64)>, MemError> {
    let call = "read /proc/self/numa_maps";
    let maps = maps.map_err(|err| MemError::Os {
        call,
        errno: err.raw_os_error().unwrap_or(libc::EIO),
    })?;
    parse_line(&maps, start).ok_or(MemError::Os {
        call,
        errno: libc::ESRCH,
    })
}

/// The per-node bytes of the `numa_maps` line of the mapping at `start`: `N<node>=<pages>`
/// times `kernelpagesize_kB`.
fn parse_line(maps: &str, start: usize) -> Option<Vec<(u32, u64)>> {
    let key = format!("{start:x} ");
    let line = maps.lines().find(|line| line.starts_with(&key))?;
    let page_kib: u64 = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("kernelpagesize_kB="))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(4);
    let mut nodes: Vec<(u32, u64)> = line
        .split_whitespace()
        .filter_map(|word| {
            let (node, pages) = word.strip_prefix('N')?.split_once('=')?;
            Some((
                node.parse().ok()?,
                pages.parse::<u64>().ok()? * page_kib * 1024,
            ))
        })
        .collect();
    nodes.sort_unstable();
    Some(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numa_maps_lines() {
        let maps = "\
7f0000000000 bind:1 file=/memfd:x\\040(deleted) dirty=512 N1=512 kernelpagesize_kB=2048
7f1000000000 default file=/memfd:y dirty=10 N0=6 N1=4 kernelpagesize_kB=4
";
        assert_eq!(
            parse_line(maps, 0x7f00_0000_0000),
            Some(vec![(1, 512 * 2048 * 1024)])
        );
        assert_eq!(
            parse_line(maps, 0x7f10_0000_0000),
            Some(vec![(0, 6 * 4096), (1, 4 * 4096)])
        );
        assert_eq!(parse_line(maps, 0x1234), None);
        let meminfo = "Node 0 MemTotal:       24567844 kB\nNode 0 MemFree:  100 kB\n";
        assert_eq!(node_kib(meminfo, "MemTotal:"), Some(24_567_844 * 1024));
        assert_eq!(node_kib(meminfo, "MemFree:"), Some(100 * 1024));
    }

    #[test]
    fn numa_maps_unreadable_or_without_the_line_is_os() {
        let call = "read /proc/self/numa_maps";
        // A kernel without NUMA has no numa_maps.
        let missing = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            bytes_in(Err(missing), 0x7f00_0000_0000),
            Err(MemError::Os {
                call,
                errno: libc::ENOENT
            })
        );
        // Readable, but no line starts at the mapping.
        let maps = "7f0000000000 default file=/memfd:x dirty=1 N0=1 kernelpagesize_kB=4\n";
        assert_eq!(
            bytes_in(Ok(maps.to_owned()), 0x7f10_0000_0000),
            Err(MemError::Os {
                call,
                errno: libc::ESRCH
            })
        );
        assert_eq!(
            bytes_in(Ok(maps.to_owned()), 0x7f00_0000_0000),
            Ok(vec![(0, 4096)])
        );
    }

    #[test]
    fn node_zero_exists_and_others_do_not() {
        assert!(check(0).is_ok());
        assert!(matches!(
            check(4000),
            Err(MemError::BadNumaNode { node: 4000, .. })
        ));
    }
}

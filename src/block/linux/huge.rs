//! Huge pages on Linux: what the system offers (hugetlb pools, THP for shmem) and the
//! choice of pages for a Block (`specs/scale.md`, "The choice").
//!
//! Everything is read from sysfs at the moment of the call, because an administrator may
//! reserve or release pages at any time; a dozen small reads cost microseconds against a
//! Block that takes seconds to populate, and only Builders that ask for huge pages read.
//!
//! # Sources
//!
//! The kernel's `Documentation/admin-guide/mm/hugetlbpage.rst` (the pools in
//! `/sys/kernel/mm/hugepages/hugepages-<size>kB/` and per node under
//! `/sys/devices/system/node/nodeN/hugepages/`; `Hugepagesize` in `/proc/meminfo`) and
//! `Documentation/admin-guide/mm/transhuge.rst` (`shmem_enabled`, its per-size override,
//! `hpage_pmd_size`).

use crate::block::{HugePages, Pages};
use crate::error::MemError;
use crate::limits::HugeTlbPool;

use super::sysfs;

const POOLS: &str = "/sys/kernel/mm/hugepages";
const THP: &str = "/sys/kernel/mm/transparent_hugepage";

/// Every hugetlb pool the kernel offers, smallest pages first.
pub(crate) fn pools() -> Vec<HugeTlbPool> {
    let Ok(dir) = std::fs::read_dir(POOLS) else {
        return Vec::new();
    };
    let mut pools: Vec<HugeTlbPool> = dir
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            let kib: u64 = name
                .to_str()?
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            pool(usize::try_from(kib.checked_mul(1024)?).ok()?)
        })
        .collect();
    pools.sort_by_key(|pool| pool.page_size);
    pools
}

/// The pool of `page_size` pages, if the kernel has one.
fn pool(page_size: usize) -> Option<HugeTlbPool> {
    let dir = format!("{POOLS}/hugepages-{}kB", page_size / 1024);
    Some(HugeTlbPool {
        page_size,
        total: sysfs::number(format!("{dir}/nr_hugepages"))?,
        free: sysfs::number(format!("{dir}/free_hugepages"))?,
        reserved: sysfs::number(format!("{dir}/resv_hugepages")).unwrap_or(0),
    })
}

/// Pages of `page_size` a new Block can have: free and not promised to a mapping, and on
/// `node` at most that node's free pages.
fn usable(page_size: usize, node: Option<u32>) -> u64 {
    let Some(pool) = pool(page_size) else {
        return 0;
    };
    let usable = pool.free.saturating_sub(pool.reserved);
    match node {
        Some(node) => {
            let path = format!(
                "/sys/devices/system/node/node{node}/hugepages/hugepages-{}kB/free_hugepages",
                page_size / 1024
            );
            sysfs::number(path).map_or(usable, |on_node| usable.min(on_node))
        }
        None => usable,
    }
}

/// The default hugetlb page size (`Hugepagesize` in `/proc/meminfo`).
pub(crate) fn default_hugetlb_size() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    usize::try_from(sysfs::kib_field(&meminfo, "Hugepagesize:")?).ok()
}

/// The PMD size, the size of a transparent huge page (`hpage_pmd_size`).
pub(crate) fn thp_size() -> Option<usize> {
    usize::try_from(sysfs::number(format!("{THP}/hpage_pmd_size"))?).ok()
}

/// The setting that decides THP for a memfd: `shmem_enabled`, unless the PMD size's own
/// `shmem_enabled` (Linux 6.11+) says something other than `inherit`. `None` where the
/// kernel has no THP.
pub(crate) fn shmem_thp() -> Option<&'static str> {
    let global = setting(&sysfs::read(format!("{THP}/shmem_enabled"))?);
    let per_size = thp_size()
        .and_then(|pmd| sysfs::read(format!("{THP}/hugepages-{}kB/shmem_enabled", pmd / 1024)));
    match per_size.as_deref().map(setting) {
        Some("inherit") | None => Some(global),
        Some(own) => Some(own),
    }
}

/// The selected word of a `shmem_enabled` file, as one of the known settings.
fn setting(text: &str) -> &'static str {
    match sysfs::selected(text).unwrap_or(text.trim()) {
        "always" => "always",
        "within_size" => "within_size",
        "advise" => "advise",
        "never" => "never",
        "deny" => "deny",
        "force" => "force",
        "inherit" => "inherit",
        _ => "unknown",
    }
}

/// Whether a `shmem_enabled` setting lets a memfd mapping advised `MADV_HUGEPAGE` get huge
/// pages.
pub(crate) fn thp_allowed(setting: &str) -> bool {
    matches!(setting, "always" | "within_size" | "advise" | "force")
}

/// One way to back a Block: its pages and its size rounded up to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Choice {
    pub(crate) pages: Pages,
    pub(crate) page_size: usize,
    pub(crate) len: usize,
}

/// The ways to back a Block of `len` bytes (already whole base pages), best first
/// (`specs/scale.md`, "The choice"): hugetlb where its pool has the pages, THP where
/// `shmem_enabled` allows it, base pages under `Try` and `Never`. Under `Required` with
/// nothing to offer: `HugePagesUnavailable`.
pub(crate) fn candidates(
    len: usize,
    policy: HugePages,
    size: usize,
    node: Option<u32>,
) -> Result<Vec<Choice>, MemError> {
    let base = Choice {
        pages: Pages::Base,
        page_size: crate::page_size(),
        len,
    };
    if policy == HugePages::Never {
        return Ok(vec![base]);
    }
    let mut found = Vec::new();
    let take = |page_size: usize| policy == HugePages::Required || len >= page_size;
    let hugetlb_size = if size != 0 {
        Some(size)
    } else {
        default_hugetlb_size()
    };
    if let Some(page_size) = hugetlb_size.filter(|&p| p.is_power_of_two() && take(p)) {
        let rounded = round(len, page_size)?;
        if usable(page_size, node) >= (rounded / page_size) as u64 && rounded > 0 {
            found.push(Choice {
                pages: Pages::HugeTlb,
                page_size,
                len: rounded,
            });
        }
    }
    if let (Some(pmd), Some(setting)) = (thp_size(), shmem_thp()) {
        if (size == 0 || size == pmd) && thp_allowed(setting) && take(pmd) {
            found.push(Choice {
                pages: Pages::Transparent,
                page_size: pmd,
                len: round(len, pmd)?,
            });
        }
    }
    match policy {
        HugePages::Required if found.is_empty() => {
            let page_size = if size != 0 {
                size
            } else {
                hugetlb_size.or(thp_size()).unwrap_or(2 << 20)
            };
            Err(unavailable(len, page_size, node))
        }
        HugePages::Required => Ok(found),
        _ => {
            found.push(base);
            Ok(found)
        }
    }
}

/// `len` rounded up to whole pages of `page_size`, or `SizeOverflow`.
fn round(len: usize, page_size: usize) -> Result<usize, MemError> {
    len.checked_next_multiple_of(page_size)
        .filter(|&rounded| rounded <= isize::MAX as usize)
        .ok_or(MemError::SizeOverflow {
            requested: len,
            granule: page_size,
        })
}

/// `HugePagesUnavailable` for a Block of `len` bytes on pages of `page_size`, with the
/// numbers read now.
pub(crate) fn unavailable(len: usize, page_size: usize, node: Option<u32>) -> MemError {
    let page = page_size.max(1);
    MemError::HugePagesUnavailable {
        requested: len.checked_next_multiple_of(page).unwrap_or(len),
        page_size,
        free: usable(page_size, node),
        needed: len.div_ceil(page) as u64,
        shmem_enabled: if thp_size() == Some(page_size) {
            shmem_thp().unwrap_or("unsupported")
        } else {
            "not that size"
        },
        node,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_as_known_words() {
        assert_eq!(
            setting("always within_size advise [never] deny force"),
            "never"
        );
        assert_eq!(
            setting("always [inherit] within_size advise never"),
            "inherit"
        );
        assert_eq!(setting("[advise]"), "advise");
        assert_eq!(setting("bogus"), "unknown");
        assert!(thp_allowed("advise") && thp_allowed("within_size"));
        assert!(!thp_allowed("never") && !thp_allowed("deny") && !thp_allowed("unknown"));
    }

    #[test]
    fn never_is_base_pages_only() {
        let page = crate::page_size();
        let got = candidates(3 * page, HugePages::Never, 0, None).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].pages, got[0].len), (Pages::Base, 3 * page));
    }

    #[test]
    fn try_always_ends_with_base_pages() {
        let page = crate::page_size();
        let got = candidates(page, HugePages::Try, 0, None).unwrap();
        // One page is smaller than any huge page: Try never rounds it up.
        assert_eq!(
            got,
            vec![Choice {
                pages: Pages::Base,
                page_size: page,
                len: page
            }]
        );
    }

    #[test]
    fn a_size_nothing_offers_is_unavailable() {
        let err = candidates(1 << 20, HugePages::Required, 3 << 20, None).unwrap_err();
        assert!(matches!(
            err,
            MemError::HugePagesUnavailable { page_size, free: 0, needed: 1, node: None, .. }
                if page_size == 3 << 20
        ));
    }
}

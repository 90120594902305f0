//! [`HugePages`] and [`Pages`]: which pages back a Block, asked for and given.
//!
//! A Block of hundreds of GiB on 4 KiB pages costs one page fault, one page-cache insertion
//! and one free per 4 KiB; on 2 MiB pages, 512 times fewer. Huge pages are a system
//! resource that an administrator grants (hugetlb pools, THP for shmem): unimem never
//! changes a system setting, it uses what is granted when the Builder asks, and says which
//! setting to change when it cannot (`MemError::HugePagesUnavailable`). `specs/scale.md`
//! has the choice and the measured gains.

/// Whether a Block should be made of huge pages ([`Builder::huge_pages`]).
///
/// [`Builder::huge_pages`]: crate::Builder::huge_pages
///
/// ```
/// use unimem::{Block, HugePages, Pin};
///
/// // Huge pages where the system grants them, 4 KiB pages otherwise.
/// let block = Block::builder(4 << 20)
///     .huge_pages(HugePages::Try)
///     .pin(Pin::BestEffort)
///     .open()?;
/// assert_eq!(block.size() % block.page_size(), 0);
/// # Ok::<(), unimem::MemError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HugePages {
    /// Base pages only (4 KiB on x86-64). The default.
    #[default]
    Never,
    /// Huge pages where the system grants them and the Block is at least one huge page;
    /// base pages otherwise.
    Try,
    /// Huge pages, or [`MemError::HugePagesUnavailable`](crate::MemError::HugePagesUnavailable)
    /// naming the setting to change. A Block smaller than one huge page is rounded up to one.
    Required,
}

/// Which pages back a Block ([`Extent::pages`](crate::Extent::pages)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pages {
    /// The base page size, [`page_size()`](crate::page_size).
    Base,
    /// Transparent huge pages for shmem: the file is mapped at an address aligned to the
    /// PMD size (2 MiB on x86-64) and advised `MADV_HUGEPAGE`, where the system's
    /// `shmem_enabled` allows it. The kernel uses base pages for parts it cannot get huge
    /// pages for.
    Transparent,
    /// hugetlb pages from a pool the administrator reserved (2 MiB or 1 GiB on x86-64):
    /// always huge, never swapped.
    HugeTlb,
}

impl Pages {
    /// A short lowercase name: `"base"`, `"transparent"`, `"hugetlb"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pages::Base => "base",
            Pages::Transparent => "transparent",
            Pages::HugeTlb => "hugetlb",
        }
    }
}

impl std::fmt::Display for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

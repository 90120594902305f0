//! The run-time page size.

use std::sync::atomic::{AtomicUsize, Ordering};

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The size of a virtual-memory page on this machine, in bytes, read at run time.
///
/// 4 KiB on x86-64 Linux, 16 KiB on Apple Silicon, up to 64 KiB on some Arm Linux kernels:
/// never a compile-time constant. Every [`Block`](crate::Block) is a whole number of pages
/// and starts on a page boundary.
///
/// The first call asks the OS (`sysconf(_SC_PAGESIZE)`); later calls read a cached value.
///
/// ```
/// let page = unimem::page_size();
/// assert!(page.is_power_of_two() && page >= 4096);
/// ```
pub fn page_size() -> usize {
    match PAGE_SIZE.load(Ordering::Relaxed) {
        0 => {
            let size = crate::ffi::page_size();
            PAGE_SIZE.store(size, Ordering::Relaxed);
            size
        }
        size => size,
    }
}

/// Rounds `size` up to a whole number of pages, or `None` if that overflows or exceeds
/// `isize::MAX` (the most any slice may span).
pub(crate) fn round_to_pages(size: usize) -> Option<usize> {
    let rounded = size.checked_next_multiple_of(page_size())?;
    (rounded <= isize::MAX as usize).then_some(rounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_the_os_answer_cached() {
        let page = page_size();
        assert!(page.is_power_of_two() && page >= 4096);
        // What the OS says (sysconf on Unix), and kept for the next calls.
        assert_eq!(page, crate::ffi::page_size());
        assert_eq!(PAGE_SIZE.load(Ordering::Relaxed), page);
    }

    #[test]
    fn rounding() {
        let page = page_size();
        assert_eq!(round_to_pages(1), Some(page));
        assert_eq!(round_to_pages(page), Some(page));
        assert_eq!(round_to_pages(page + 1), Some(2 * page));
        assert_eq!(round_to_pages(usize::MAX), None);
        assert_eq!(round_to_pages(isize::MAX as usize), None);
    }
}

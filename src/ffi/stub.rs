//! Targets without a Unix C library: only what the portable Block needs.

/// No run-time query is available here; 4 KiB is the page size of every such target we know.
pub(crate) fn page_size() -> usize {
    4096
}

/// Symbolic names are only known for Unix `errno` values.
pub(crate) fn errno_name(_errno: i32) -> Option<&'static str> {
    None
}

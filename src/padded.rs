//! [`Padded`]: a value alone on its cache lines.
//!
//! A contended atomic (the Tape's head) that shares a cache line with other data makes
//! every write to it evict that data from the other cores' caches, and every read of the
//! data steal the line back: false sharing. 128 bytes covers every machine unimem runs on:
//! x86-64 lines are 64 bytes but the spatial prefetcher fetches them in aligned pairs, and
//! Apple Silicon's lines are 128 bytes.

use std::ops::Deref;

/// `T`, aligned to and padded out to 128 bytes, so that nothing else shares its cache
/// lines.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_fills_its_lines() {
        assert_eq!(align_of::<Padded<u64>>(), 128);
        assert_eq!(size_of::<Padded<u64>>(), 128);
        assert_eq!(size_of::<Padded<[u8; 129]>>(), 256);
        assert_eq!(*Padded(7u8), 7);
    }
}

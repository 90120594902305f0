//! The IOSurface CPU lock, given up and taken back: a hand-off of a Block to the Neural
//! Engine.
//!
//! # Why
//!
//! A Block holds its surface's CPU lock (`IOSurfaceLock`, options 0) from open to drop, as
//! the earlier unimem did and as Apple's headers ask of CPU access ("used ... to put a
//! bound on CPU access to the raw IOSurface data", `IOSurfaceRef.h`). The `rane` crate's
//! surface-lifecycle guide warns that a surface whose lock a client holds while the Neural
//! Engine runs on it deadlocks the evaluation. The default stays (every other user of a
//! Block, the CPU and Metal among them, is served by the lifetime lock); a Block handed to
//! the Neural Engine gives the lock up first, and takes it back for the CPU afterwards.
//!
//! # Why it is sound
//!
//! Both transitions take `&mut Block`, so no view of the bytes is alive across them, and
//! the lock state is a field of the Block's own hold on the surface (`os/apple.rs`), which
//! its `Drop` reads: a Block that gave the lock up does not unlock again. The lock is a
//! protocol with IOSurface, not a memory-safety device: the mapping, and so every view,
//! stays valid whether it is held or not. What the lock bounds is coherence with other
//! devices: views taken while it is not held read whatever the memory holds then.

use crate::block::{Block, Extent, Pin};
use crate::error::MemError;

impl Block {
    /// Opens a flat IOSurface Block, as [`Block::builder`]`(size).pin(pin).open()` does,
    /// and gives up its CPU lock at once ([`unlock_cpu`](Block::unlock_cpu)): for a buffer
    /// handed to the Neural Engine, which must not run on a surface whose lock a client
    /// holds (the `rane` crate's surface-lifecycle guide: it deadlocks). macOS only.
    ///
    /// Zero-filling and wiring happen under the lock, before it is given up.
    ///
    /// # Errors
    ///
    /// Those of [`Builder::open`](crate::Builder::open), and
    /// [`Kern`](MemError::Kern) for `IOSurfaceUnlock` (the Block is dropped).
    pub fn open_unlocked(size: usize, pin: Pin) -> Result<Block, MemError> {
        let mut block = Block::builder(size).pin(pin).open()?;
        block.unlock_cpu()?;
        Ok(block)
    }

    /// Gives up the surface's CPU lock (`IOSurfaceUnlock`, options 0, as it was taken), so
    /// that the Neural Engine may run on the surface: holding the lock while it runs
    /// deadlocks (the `rane` crate's surface-lifecycle guide). Does nothing if the lock is
    /// not held. macOS only.
    ///
    /// `&mut self`: no view of the bytes is alive while the lock changes. Views taken
    /// while it is not held are still valid memory, but outside the lock protocol of
    /// `IOSurfaceRef.h`: take the lock back ([`lock_cpu`](Block::lock_cpu)) before the CPU
    /// reads what the Neural Engine wrote. Unlocking after a read-write lock moves the
    /// surface's seed on (documented).
    ///
    /// # Errors
    ///
    /// [`Kern`](MemError::Kern) for `IOSurfaceUnlock`; the lock is then still held.
    pub fn unlock_cpu(&mut self) -> Result<(), MemError> {
        self.extent.map.unlock_cpu()
    }

    /// Takes the surface's CPU lock again (`IOSurfaceLock`, options 0), once the Neural
    /// Engine is done with the surface. Does nothing if the lock is held. macOS only.
    ///
    /// # Errors
    ///
    /// [`Kern`](MemError::Kern) for `IOSurfaceLock`; the lock is then not held.
    pub fn lock_cpu(&mut self) -> Result<(), MemError> {
        self.extent.map.lock_cpu()
    }
}

impl Extent {
    /// Whether this Block holds its surface's CPU lock now: from open to drop, unless it
    /// gave it up ([`Block::unlock_cpu`], [`Block::open_unlocked`]). macOS only.
    pub fn is_cpu_locked(&self) -> bool {
        self.map.is_cpu_locked()
    }
}

//! Read-only and frozen Tapes (Linux): a Tape whose bytes are only read, by offset.
//!
//! # Design
//!
//! A Tape is made read-only in two ways: [`Tape::freeze`], by its owner once it has filled
//! it (the weights of a model), and [`Tape::over_read_only`], over a Block another process
//! shared read-only. Either way the Tape hands out nothing: its head is set to `total`, so
//! every take fails on the unchanged fast path as if the Tape were full, and only then does
//! the cold path ([`refusal`](Tape::refusal)) look at the mode and report
//! [`TapeReadOnly`](MemError::TapeReadOnly). [`clear`](Tape::clear) keeps the head there.
//!
//! [`read`](Tape::read) hands out `&[T]` views by offset, and only when the Tape is
//! **frozen**: the Block carries `F_SEAL_WRITE`, so no process can change the bytes while
//! the views live (see `src/block/share/freeze.rs`). On a writable Tape such a view could alias a
//! `&mut` take, and on a read-only Tape that is not frozen another process may still write
//! the bytes; both are refused with [`TapeNotFrozen`](MemError::TapeNotFrozen). The bytes
//! such a view shows are initialized because the frozen mapping was made after the last
//! write to the file (see [`read`](Tape::read)).
//!
//! # Why it is correct
//!
//! - `freeze` takes `&mut self`: no take handed out from `&self` is still borrowed, so
//!   swapping the mapping and closing the Tape aliases nothing. Raw pointers from
//!   [`take`](Tape::take) are no longer writable afterwards (writing through one faults).
//! - The mode changes only under `&mut self`, and only from writable to read-only to frozen;
//!   `Frozen` is set only after the kernel accepted `F_SEAL_WRITE`, which is permanent.
//! - With the head at `total`, every take path (typed, raw, Lane, `Allocator`) finds no
//!   room, because each goes through `bump` or compares against the head; `give_back` and
//!   `extend` act only on takes, of which a read-only Tape has none.

use bytemuck::Pod;

use super::{Mode, Tape};
use crate::block::{Access, ReadOnlyBlock, check_read};
use crate::error::MemError;
use crate::padded::Padded;
use crate::sync::{AtomicUsize, Ordering};

impl Tape {
    /// A read-only Tape over a Block imported read-only: it hands out nothing (every take is
    /// refused with [`TapeReadOnly`](MemError::TapeReadOnly)), and if the Block is frozen
    /// ([`is_frozen`](crate::Extent::is_frozen)) its bytes are read by offset with
    /// [`read`](Tape::read). Linux only.
    ///
    /// `used()`, `peak()` and `total()` are all the Block's size: every byte is the
    /// sharer's.
    ///
    /// ```
    /// use unimem::{Block, MemError, Pin, Tape};
    ///
    /// let mut weights = Tape::over(Block::builder(4096).pin(Pin::BestEffort).open()?);
    /// weights.take_slice::<u32>(4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
    /// weights.freeze()?;
    /// let share = weights.block().share()?;
    ///
    /// // In a worker process (the share sent over a socket):
    /// let shared = Tape::over_read_only(Block::import_read_only(share, Pin::BestEffort)?);
    /// assert!(shared.is_frozen());
    /// assert_eq!(shared.read::<u32>(8, 2)?, &[3, 4]);
    /// assert_eq!(shared.used(), shared.total());
    /// assert!(matches!(shared.try_take(8, 8), Err(MemError::TapeReadOnly { frozen: true, .. })));
    /// # Ok::<(), MemError>(())
    /// ```
    pub fn over_read_only(block: ReadOnlyBlock) -> Tape {
        let mode = if block.is_frozen() {
            Mode::Frozen
        } else {
            Mode::ReadOnly
        };
        let extent = block.into_extent();
        let total = extent.size();
        Tape {
            head: Padded(AtomicUsize::new(total)),
            base: extent.base(),
            total,
            peak: AtomicUsize::new(total),
            mode,
            extent,
        }
    }

    /// Makes the Tape's bytes immutable for every process, for good, as
    /// [`Block::freeze`](crate::Block::freeze) does for a Block, in place: same Block, same
    /// address, same offsets. Afterwards the Tape hands out nothing (takes are refused with
    /// [`TapeReadOnly`](MemError::TapeReadOnly), `used() == total()`), and
    /// [`read`](Tape::read) gives views of its bytes by offset. Does nothing if the Tape is
    /// frozen already. Linux only.
    ///
    /// `&mut self` proves that nothing taken is still borrowed. Pointers from
    /// [`take`](Tape::take) must not be written through afterwards (the mapping is
    /// `PROT_READ`: a write faults).
    ///
    /// ```
    /// use unimem::{Block, MemError, Pin, Tape};
    ///
    /// let mut tape = Tape::over(Block::builder(1 << 16).pin(Pin::BestEffort).open()?);
    /// let xs = tape.take_slice::<f32>(3).unwrap();
    /// xs.copy_from_slice(&[1.0, 2.0, 3.0]);
    /// let at = tape.offset_of(xs.as_ptr()).unwrap();
    ///
    /// tape.freeze()?;
    /// assert_eq!(tape.read::<f32>(at, 3)?, &[1.0, 2.0, 3.0]);
    /// assert_eq!(tape.take(4, 4), None);
    /// tape.clear(); // still full: a frozen Tape hands out nothing
    /// assert_eq!(tape.used(), tape.total());
    /// # Ok::<(), MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`Block::freeze`](crate::Block::freeze). Once this process's mapping has
    /// been made read-only (every error but a refused first seal), the Tape is read-only
    /// whatever failed after: takes are refused, reads too until a later `freeze`
    /// succeeds. After [`FreezeBusy`](MemError::FreezeBusy) (another process still maps the
    /// Block writable), call `freeze` again once it has let go.
    pub fn freeze(&mut self) -> Result<(), MemError> {
        if self.mode == Mode::Frozen {
            return Ok(());
        }
        let frozen = self.extent.freeze();
        if self.extent.access() == Access::ReadOnly {
            self.close();
        }
        frozen?;
        self.mode = Mode::Frozen;
        Ok(())
    }

    /// `len` values of `T` starting `offset` bytes into a **frozen** Tape's Block, which no
    /// process can change while the slice lives. Linux only.
    ///
    /// Offsets come from [`offset_of`](Tape::offset_of) in the process that filled the Tape
    /// (they are the same in every process; addresses are not).
    ///
    /// Every byte is initialized, wherever the Tape has handed out takes or not: the frozen
    /// mapping was made (by the freeze, which replaces it in place, or by the import) after
    /// the last write to the file, so its bytes are the file's, which are always defined
    /// (what a process wrote, zero where none did). Padding or `MaybeUninit` bytes written
    /// through a raw take before the freeze read back as whatever the file holds there.
    ///
    /// # Errors
    ///
    /// - [`TapeNotFrozen`](MemError::TapeNotFrozen): the Tape is writable (a view could
    ///   alias its takes) or read-only but not frozen (another process may still write);
    /// - [`ReadOutOfBounds`](MemError::ReadOutOfBounds),
    ///   [`ReadMisaligned`](MemError::ReadMisaligned): as
    ///   [`ReadOnlyBlock::read`](crate::ReadOnlyBlock::read).
    pub fn read<T: Pod>(&self, offset: usize, len: usize) -> Result<&[T], MemError> {
        if self.mode != Mode::Frozen {
            return Err(self.not_frozen());
        }
        check_read::<T>(self.total, offset, len)?;
        // SAFETY:
        // - offset + len * size_of::<T>() <= total (`check_read`): inside the Block, which is
        //   mapped readable for as long as `self` lives and cannot shrink (sealed);
        // - every byte is initialized: a frozen Tape's mapping was made by `mmap` after the
        //   last write to its file (freeze replaced this process's mapping in place, or the
        //   Tape is over an import mapped after its owner froze it), so Rust sees bytes the
        //   kernel supplies, and a shmem file's bytes are always defined (written, or zero
        //   where never written); nothing has written them since (frozen);
        // - the base is page aligned and `offset` a multiple of align_of::<T>()
        //   (`check_read`), so the pointer is aligned for T;
        // - every bit pattern is a valid `T: Pod`;
        // - no `&mut` to the bytes exists or can: a frozen Tape hands out nothing (its head
        //   stays at `total`), it froze under `&mut self` (no earlier take is borrowed), and
        //   `F_SEAL_WRITE` keeps every process, this one included, from writing them.
        unsafe {
            let ptr = self.at(offset).as_ptr().cast::<T>();
            Ok(std::slice::from_raw_parts(ptr, len))
        }
    }

    /// Hands out nothing from now on: the head at `total`, the mode read-only.
    fn close(&mut self) {
        let head = self.head.load(Ordering::Relaxed);
        self.peak.fetch_max(head, Ordering::Relaxed);
        self.head.store(self.total, Ordering::Relaxed);
        if self.mode == Mode::Writable {
            self.mode = Mode::ReadOnly;
        }
    }

    #[cold]
    #[inline(never)]
    fn not_frozen(&self) -> MemError {
        MemError::TapeNotFrozen {
            id: self.extent.id(),
            read_only: self.mode != Mode::Writable,
        }
    }
}

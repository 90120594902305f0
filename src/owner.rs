//! [`Owner`]: what keeps a Block's memory mapped, for things that must outlive a borrow: a
//! DLPack tensor handed to another library (`dlpack`), a CUDA registration that owns its
//! Block (`cuda::Registered`).
//!
//! A borrow cannot follow memory into C or Python: a DLPack consumer calls its deleter
//! whenever it likes, from any thread. So what such a handle keeps is an owner: a
//! [`Block`], [`ReadOnlyBlock`](crate::ReadOnlyBlock), [`Tape`] or [`Grid`] by value or in
//! an `Arc`, or a registration that owns one. The trait is sealed: its methods make
//! promises (the Extent is the owner's own, stable for its life; shared views are sound
//! when `check_shared` says so) that only unimem's types keep.

use std::sync::Arc;

use crate::block::{Block, Extent};
use crate::error::MemError;
use crate::grid::Grid;
use crate::tape::Tape;

/// Something that owns a Block's memory and keeps it mapped, at the same address, for as
/// long as it lives: a [`Block`], [`ReadOnlyBlock`](crate::ReadOnlyBlock), [`Tape`],
/// [`Grid`], an `Arc` of one, or (feature `cuda`) a
/// [`cuda::Registered`](crate::cuda::Registered) that owns one. Sealed.
///
/// ```
/// use std::sync::Arc;
/// use unimem::{Block, Owner, Pin};
///
/// let block = Arc::new(Block::builder(4096).pin(Pin::BestEffort).open()?);
/// assert_eq!(block.extent().size(), 4096);
/// # Ok::<(), unimem::MemError>(())
/// ```
pub trait Owner: sealed::Sealed + Send + Sync + 'static {
    /// The owned memory's identity and addresses.
    fn extent(&self) -> &Extent;
}

pub(crate) mod sealed {
    use super::{Extent, MemError};

    /// The owner's promises, for unimem's own use.
    #[allow(unreachable_pub)] // Sealed: nameable only inside the crate.
    pub trait Sealed {
        /// The Extent: the owner's own, the same one for the owner's whole life.
        fn owned(&self) -> &Extent;

        /// `Ok` when shared views of every byte are sound for as long as the owner lives:
        /// nothing in this process can write them through safe code while it is shared,
        /// and (for memory shared read-only) no process can. Otherwise why not.
        fn check_shared(&self) -> Result<(), MemError>;

        /// The CUDA device (ordinal) whose registration of the memory this owner holds
        /// for its whole life, if any: a registration kept in the Extent
        /// (`CudaBlock::keep`) or one the owner is (`cuda::Registered`).
        fn registered_device(&self) -> Option<u32> {
            #[cfg(feature = "cuda")]
            return self.owned().cuda_context().map(|c| c.device().ordinal());
            #[cfg(not(feature = "cuda"))]
            None
        }
    }
}

impl<T: sealed::Sealed + Send + Sync + 'static> Owner for T {
    fn extent(&self) -> &Extent {
        self.owned()
    }
}

/// `&Block` has only shared views, and `&mut Block` cannot be had while the Block is shared
/// (an `Arc`) or owned by a handle that lends no views.
impl sealed::Sealed for Block {
    fn owned(&self) -> &Extent {
        self
    }
    fn check_shared(&self) -> Result<(), MemError> {
        Ok(())
    }
}

/// Read-only here; shared views promise the bytes stay put only when no process can write
/// them: frozen.
#[cfg(all(target_os = "linux", not(miri)))]
impl sealed::Sealed for crate::ReadOnlyBlock {
    fn owned(&self) -> &Extent {
        self
    }
    fn check_shared(&self) -> Result<(), MemError> {
        if self.is_frozen() {
            Ok(())
        } else {
            Err(MemError::NotFrozen {
                id: self.id(),
                size: self.size(),
            })
        }
    }
}

/// A writable Tape hands out `&mut` takes from `&self`, so only a frozen one can be viewed
/// whole (as `Tape::read` says).
impl sealed::Sealed for Tape {
    fn owned(&self) -> &Extent {
        self.block()
    }
    fn check_shared(&self) -> Result<(), MemError> {
        if self.is_frozen() {
            Ok(())
        } else {
            Err(MemError::TapeNotFrozen {
                id: self.block().id(),
                read_only: self.is_read_only(),
            })
        }
    }
}

/// A Grid hands out `&mut` cells from `&self`: never viewable whole.
impl sealed::Sealed for Grid {
    fn owned(&self) -> &Extent {
        self.tape().block()
    }
    fn check_shared(&self) -> Result<(), MemError> {
        Err(MemError::TapeNotFrozen {
            id: self.tape().block().id(),
            read_only: false,
        })
    }
}

impl<T: sealed::Sealed + Send + Sync + 'static> sealed::Sealed for Arc<T> {
    fn owned(&self) -> &Extent {
        (**self).owned()
    }
    fn check_shared(&self) -> Result<(), MemError> {
        (**self).check_shared()
    }
    fn registered_device(&self) -> Option<u32> {
        (**self).registered_device()
    }
}

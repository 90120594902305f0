//! [`MachPort`]: an owned Mach send right, the way an IOSurface Block crosses processes.

use std::fmt;

use crate::ffi::apple as ffi;

/// An owned send right to a Mach port, deallocated when dropped (macOS only).
///
/// [`Extent::mach_port`](crate::Extent::mach_port) makes one for a Block's IOSurface (the
/// right holds a reference to the surface, so the memory lives as long as the right does);
/// [`Block::from_mach_port`](crate::Block::from_mach_port) turns one back into a Block, in
/// this process or, once the right has been sent there, in another.
///
/// unimem does not carry the right to another process: that is the application's transport,
/// for example an XPC message (`xpc_dictionary_set_mach_send`) or a Mach message with a
/// port descriptor (`MACH_MSG_TYPE_COPY_SEND` with [`as_raw`](MachPort::as_raw), or
/// `MACH_MSG_TYPE_MOVE_SEND` with [`into_raw`](MachPort::into_raw)). The receiver wraps the
/// name it receives with [`from_raw`](MachPort::from_raw). The global-ID lookup
/// (`IOSurfaceLookup`) is never used: any process could guess an ID.
///
/// `MachPort` is `Send` and `Sync`: a port name is valid in every thread of the task.
///
/// # Examples
///
/// ```
/// use unimem::{Block, MemError, Pin};
///
/// let mut block = Block::builder(1 << 16).pin(Pin::BestEffort).open()?;
/// block.as_bytes_mut()[0] = 7;
/// let port = block.mach_port()?;
/// // While the Block lives, a second Block over the same surface would alias it.
/// let alias = Block::from_mach_port(&port, Pin::BestEffort);
/// assert!(matches!(alias, Err(MemError::SurfaceInUse { .. })));
/// drop(block);
/// // The right kept the surface alive.
/// let again = Block::from_mach_port(&port, Pin::BestEffort)?;
/// assert_eq!(again.as_bytes()[0], 7);
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct MachPort {
    name: u32,
}

impl MachPort {
    /// Takes ownership of one user reference of the send right `name`.
    ///
    /// # Safety
    ///
    /// `name` is a send right of this task whose reference the caller owns and gives up:
    /// nothing else will deallocate that reference. (A wrong name does not corrupt memory,
    /// but deallocating a right that other code owns breaks that code, as closing another
    /// owner's file descriptor would.)
    pub unsafe fn from_raw(name: u32) -> MachPort {
        MachPort { name }
    }

    /// The port name, still owned by `self`.
    pub fn as_raw(&self) -> u32 {
        self.name
    }

    /// Gives up ownership: the caller must deallocate the right (or move it in a message).
    #[must_use = "the send right leaks unless it is deallocated or sent"]
    pub fn into_raw(self) -> u32 {
        let name = self.name;
        std::mem::forget(self);
        name
    }
}

impl Drop for MachPort {
    fn drop(&mut self) {
        // MACH_PORT_NULL and MACH_PORT_DEAD name no right: nothing to give back.
        if self.name == ffi::MACH_PORT_NULL || self.name == ffi::MACH_PORT_DEAD {
            return;
        }
        // A failure (a name that is not ours) cannot be reported from drop.
        let _ = ffi::deallocate_port(self.name);
    }
}

impl fmt::Debug for MachPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MachPort({:#x})", self.name)
    }
}

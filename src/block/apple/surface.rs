//! The Apple-only face of [`Block`] and [`Extent`]: the IOSurface handle, its shape, mach
//! ports, and the constructors that only an IOSurface can offer.
//!
//! Everything above Block (Tape, Grid, Layout) sees only the base address, the size and
//! the [`Extent`]; these additions are for the code that hands the memory to Metal
//! (`aruminium`), to the Neural Engine (`rane`), or to another process.

use crate::block::{Block, Extent, Pin, os};
use crate::error::MemError;
use crate::ffi::apple::IOSurfaceRef;

use super::MachPort;

/// How an IOSurface lays out its bytes: read from the surface once, when the Block opens.
///
/// Whatever the shape, the Block's byte views cover the whole allocation
/// ([`size()`](Extent::size) bytes, `IOSurfaceGetAllocSize`): element `(row, column)` of a
/// 2-D surface starts at byte `row * bytes_per_row + column * bytes_per_element`, and the
/// bytes between the end of a row's elements and the next row are padding.
///
/// | Block | `width` | `height` | `bytes_per_element` | `bytes_per_row` | `pixel_format` |
/// |---|---|---|---|---|---|
/// | [`Block::open`] (flat) | bytes | 1 | 1 | at least `width` | 0 |
/// | [`Block::open_fp16_2d`] | halfs per row | rows | 2 | multiple of 64, at least `2 * width` | `'L00h'` |
/// | [`Block::from_mach_port`] | as the surface's creator made it | | | | |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SurfaceShape {
    /// `IOSurfaceGetWidth`: elements per row.
    pub width: usize,
    /// `IOSurfaceGetHeight`: rows.
    pub height: usize,
    /// `IOSurfaceGetBytesPerElement`.
    pub bytes_per_element: usize,
    /// `IOSurfaceGetBytesPerRow`: the row pitch, in bytes.
    pub bytes_per_row: usize,
    /// `IOSurfaceGetPixelFormat`: a four-character code, 0 for a flat Block.
    pub pixel_format: u32,
}

impl SurfaceShape {
    /// `'L00h'` (`0x4C303068`): one 16-bit half float per element, the Neural Engine's 2-D
    /// format.
    pub const FP16: u32 = os::PIXEL_FORMAT_FP16;
}

impl Extent {
    /// The IOSurface behind the Block, borrowed: valid while the Block (or its Extent) lives,
    /// and not retained for the caller. This is what Metal
    /// (`newTextureWithDescriptor:iosurface:plane:`) and `rane`'s `Program::run_direct` take.
    /// Retain it (`CFRetain`) to keep the surface beyond the Block.
    ///
    /// The Block holds the surface's CPU lock (`IOSurfaceLock`, options 0) from open to
    /// drop; code that locks it again must unlock with the same options.
    pub fn handle(&self) -> IOSurfaceRef {
        self.map.handle()
    }

    /// The surface's layout: width, height, row pitch, pixel format.
    pub fn shape(&self) -> SurfaceShape {
        self.map.shape()
    }

    /// The row pitch in bytes (`shape().bytes_per_row`): where row `r` of a 2-D surface
    /// starts, `r * bytes_per_row()` bytes past [`address()`](Extent::address).
    pub fn bytes_per_row(&self) -> usize {
        self.map.shape().bytes_per_row
    }

    /// A new send right to the Block's IOSurface (`IOSurfaceCreateMachPort`), owned by the
    /// returned [`MachPort`] and deallocated when it drops. The right holds a reference to
    /// the surface: the memory stays alive while the right does, even after this Block is
    /// dropped. Send it to another process over the application's own transport (XPC, a Mach
    /// message); the receiver opens it with [`Block::from_mach_port`].
    ///
    /// # Errors
    ///
    /// [`MachPortFailed`](MemError::MachPortFailed) if IOSurface returns no port.
    pub fn mach_port(&self) -> Result<MachPort, MemError> {
        let name = self.map.mach_port()?;
        // SAFETY: IOSurfaceCreateMachPort just gave this task a send right that nothing else
        // knows of; the MachPort becomes its only owner.
        Ok(unsafe { MachPort::from_raw(name) })
    }
}

impl Block {
    /// The IOSurface that `port` names, as a Block of this process: looked up
    /// (`IOSurfaceLookupFromMachPort`, which leaves the port as it was), locked, checked
    /// and pinned per `pin`, like a Block of its own. Its bytes are not cleared: they are
    /// whatever the surface holds. Drop `port` whenever convenient; the Block keeps its own
    /// reference to the surface.
    ///
    /// The Block's [`id()`](Extent::id) is the `IOSurfaceID`, the same in every process.
    /// Its [`size()`](Extent::size) is the surface's allocation size, and
    /// [`shape()`](Extent::shape) is whatever layout its creator chose.
    ///
    /// Every process that holds the surface can write it: unimem's borrow rules cover this
    /// process only. Agree with the other side which one writes when, as for memory shared
    /// with the GPU.
    ///
    /// # Errors
    ///
    /// [`SurfaceLookupFailed`](MemError::SurfaceLookupFailed) when the port names no
    /// surface; [`SurfaceInUse`](MemError::SurfaceInUse) when a live Block of this process
    /// already holds the surface (a second one would alias its bytes);
    /// [`Kern`](MemError::Kern) when `IOSurfaceLock` fails;
    /// [`SurfaceSizeUnaligned`](MemError::SurfaceSizeUnaligned) and
    /// [`SurfaceAddress`](MemError::SurfaceAddress) when the surface is not page-granular;
    /// [`WireRefused`](MemError::WireRefused) under [`Pin::Required`] when `mlock` is
    /// refused. Nothing is leaked on any error path.
    pub fn from_mach_port(port: &MachPort, pin: Pin) -> Result<Block, MemError> {
        let map = os::Mapping::from_mach_port(port.as_raw(), pin)?;
        Ok(Block::from_map(map))
    }

    /// A zero-filled 2-D fp16 IOSurface shaped for the Neural Engine: `height` rows of
    /// `width` half floats, pixel format `'L00h'`, each row a multiple of 64 bytes (aligned
    /// with `IOSurfaceAlignProperty`), pinned per `pin`.
    ///
    /// The Block's byte views still cover the whole allocation; use
    /// [`bytes_per_row()`](Extent::bytes_per_row) to find a row: element `(r, c)` is
    /// `as_u16()[r * bytes_per_row() / 2 + c]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unimem::{Block, Pin, SurfaceShape};
    ///
    /// let mut block = Block::open_fp16_2d(100, 3, Pin::BestEffort)?;
    /// let shape = block.shape();
    /// assert_eq!((shape.width, shape.height, shape.pixel_format), (100, 3, SurfaceShape::FP16));
    /// assert_eq!(block.bytes_per_row() % 64, 0);
    /// let pitch = block.bytes_per_row() / 2;
    /// block.as_u16_mut()[2 * pitch + 99] = 0x3c00; // 1.0 at row 2, column 99
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`BadSurfaceShape`](MemError::BadSurfaceShape) for a zero width or height or a size
    /// that overflows; [`SurfaceRefused`](MemError::SurfaceRefused) when IOSurface refuses;
    /// [`SurfaceRowPitch`](MemError::SurfaceRowPitch) when the rows come back shorter or
    /// not 64-byte aligned; then as [`Builder::open`](super::Builder::open).
    pub fn open_fp16_2d(width: usize, height: usize, pin: Pin) -> Result<Block, MemError> {
        let map = os::Mapping::open_fp16_2d(width, height, pin)?;
        Ok(Block::from_map(map))
    }

    fn from_map(map: os::Mapping) -> Block {
        Block {
            extent: Extent::new(map, Box::from("unimem")),
        }
    }
}

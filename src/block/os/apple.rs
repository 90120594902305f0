//! Apple backend: the Block is an IOSurface, the one buffer the CPU, the Metal GPU and the
//! Neural Engine share without copies.
//!
//! Open, in order (each step's failure releases what the earlier ones acquired, through
//! `Drop`):
//!
//! 1. compute the properties: the flat 1-row layout (`Width` = bytes, `Height` 1,
//!    `BytesPerElement` 1, `BytesPerRow` aligned by `IOSurfaceAlignProperty`,
//!    `PixelFormat` 0) or the 2-D fp16 layout (`'L00h'`, rows of a multiple of 64 bytes),
//!    and `AllocSize` aligned by `IOSurfaceAlignProperty` and rounded to whole pages;
//! 2. one CFNumber per property and one immutable CFDictionary keyed by the framework's
//!    `kIOSurface*` strings; `IOSurfaceCreate`; the numbers and the dictionary are released
//!    when this step ends, whatever its outcome (they are [`Cf`] values);
//! 3. claim the surface's `IOSurfaceID` in the registry of live Blocks (a second Block over
//!    the same surface would alias its bytes), then `IOSurfaceLock(options 0)`: the CPU
//!    lock is held for the Block's whole life, unless the Block gives it up
//!    (`unlock_cpu`, for a hand-off to the Neural Engine: `block/apple/cpu_lock.rs`);
//! 4. check what IOSurface made: `IOSurfaceGetAllocSize` at least the size asked for and a
//!    whole number of run-time pages, `IOSurfaceGetBaseAddress` non-NULL and page aligned;
//! 5. pin per [`Pin`]: `mlock` the mapped range (see below);
//! 6. fill the Block with zeros (fresh surfaces only): the zeros are then a fact of this
//!    code, not an assumption about IOSurface, and every page is populated.
//!
//! A surface looked up from a mach port takes steps 3 to 5; instead of 6, pages that are
//! not wired are faulted in by reading one byte of each.
//!
//! Drop: `munlock` (if wired), `IOSurfaceUnlock(options 0)` (if the lock is held),
//! `CFRelease` of the surface, then the id goes back to the registry. The memory itself lives on while anyone else
//! (another process, a mach port, Metal, the ANE) holds the surface.
//!
//! # What "pinned" means here
//!
//! `IOSurfaceLock` is a CPU-access and seed protocol; Apple's headers never say it wires
//! memory. So this backend pins with `mlock(2)` on the surface's mapping, and
//! `is_pinned()` is true exactly when that call succeeded for the whole range. What mlock
//! promises (macOS mlock(2)): the pages cause no non-resident fault until unlocked. Whether
//! that also holds the pages in place against IOSurface's own residency management (GPU,
//! ANE, purgeability) is not documented and has never been checked: see `specs/apple.md`.

use std::ptr::NonNull;

use crate::block::apple::SurfaceShape;
use crate::block::id::Ticket;
use crate::block::progress::{Tracker, Work};
use crate::block::{Access, Builder, HugePages, Pages, Pin};
use crate::error::MemError;

/// Nothing is released in the background here.
pub(crate) fn wait_for_releases() {}

/// Nothing is released in the background here.
pub(crate) fn releasing() -> u64 {
    0
}
use crate::ffi::apple::{self as ffi, Cf, Key, LOCK_READ_WRITE, Surface};
use crate::page::{page_size, round_to_pages};

/// `'L00h'`: one 16-bit IEEE half-float component per element (IOSurface/CoreVideo
/// four-character code `kCVPixelFormatType_OneComponent16Half`).
pub(crate) const PIXEL_FORMAT_FP16: u32 = u32::from_be_bytes(*b"L00h");
/// Rows of a 2-D surface are a multiple of this many bytes (what the Neural Engine reads).
pub(crate) const ROW_ALIGN: usize = 64;

pub(crate) struct Mapping {
    base: NonNull<u8>,
    len: usize,
    shape: SurfaceShape,
    /// `mlock` succeeded on the whole range: `munlock` it at drop.
    wired: bool,
    hold: Hold,
}

impl Mapping {
    pub(crate) const BACKEND: &'static str = "apple iosurface";

    /// A flat 1-row surface of at least `len` bytes (`len` is a whole number of pages).
    /// Base pages only, no NUMA placement (`specs/scale.md`, platform notes).
    pub(crate) fn open(len: usize, builder: &Builder) -> Result<Mapping, MemError> {
        if builder.huge == HugePages::Required {
            return Err(MemError::HugePagesUnavailable {
                requested: len,
                page_size: builder.huge_size,
                free: 0,
                needed: 0,
                shmem_enabled: "not linux",
                node: builder.node,
            });
        }
        if let Some(node) = builder.node {
            return Err(MemError::BadNumaNode {
                node,
                online: String::new(),
                reason: "NUMA placement is Linux only",
            });
        }
        let tracker = Tracker::start(builder.progress.as_deref(), Work::Populate, len as u64);
        let request = Request::flat(len)?;
        let surface = request.create()?;
        let map = Mapping::attach(surface, len, builder.pin, Contents::Zero)?;
        tracker.finish();
        Ok(map)
    }

    /// A 2-D fp16 surface: `height` rows of `width` half floats, each row a multiple of 64
    /// bytes.
    pub(crate) fn open_fp16_2d(width: usize, height: usize, pin: Pin) -> Result<Mapping, MemError> {
        let request = Request::fp16_2d(width, height)?;
        let surface = request.create()?;
        let map = Mapping::attach(surface, request.rows_size(), pin, Contents::Zero)?;
        let shape = map.shape;
        let min = width * 2; // cannot overflow: `Request::fp16_2d` checked it
        if shape.bytes_per_row < min || shape.bytes_per_row % ROW_ALIGN != 0 {
            return Err(MemError::SurfaceRowPitch {
                bytes_per_row: shape.bytes_per_row,
                min,
                align: ROW_ALIGN,
            });
        }
        let rows = shape.bytes_per_row.checked_mul(shape.height);
        if shape.height < height || rows.is_none_or(|rows| rows > map.len) {
            return Err(MemError::SurfaceTooSmall {
                requested: request.rows_size(),
                actual: map.len,
            });
        }
        Ok(map)
    }

    /// The surface a mach-port send right names, as this process sees it. The port is not
    /// consumed.
    pub(crate) fn from_mach_port(port: u32, pin: Pin) -> Result<Mapping, MemError> {
        let surface =
            Surface::lookup_from_mach_port(port).ok_or(MemError::SurfaceLookupFailed { port })?;
        // A looked-up surface has no size of ours to meet: any nonempty one will do.
        Mapping::attach(surface, 1, pin, Contents::Keep)
    }

    /// Steps 3 to 6 of the module docs, for a surface just created or looked up.
    fn attach(
        surface: Surface,
        requested: usize,
        pin: Pin,
        contents: Contents,
    ) -> Result<Mapping, MemError> {
        let hold = Hold::new(surface)?;
        let page = page_size();
        let len = hold.surface.alloc_size();
        if len < requested {
            return Err(MemError::SurfaceTooSmall {
                requested,
                actual: len,
            });
        }
        if len == 0 || len % page != 0 || len > isize::MAX as usize {
            return Err(MemError::SurfaceSizeUnaligned { size: len, page });
        }
        let address = hold.surface.base_address();
        let base = NonNull::new(address)
            .filter(|base| base.as_ptr() as usize % page == 0)
            .ok_or(MemError::SurfaceAddress {
                address: address as usize,
                page,
            })?;
        let shape = SurfaceShape {
            width: hold.surface.width(),
            height: hold.surface.height(),
            bytes_per_element: hold.surface.bytes_per_element(),
            bytes_per_row: hold.surface.bytes_per_row(),
            pixel_format: hold.surface.pixel_format(),
        };
        let mut map = Mapping {
            base,
            len,
            shape,
            wired: false,
            hold,
        };
        map.pin(pin)?;
        match contents {
            // SAFETY: base..base+len is the surface's mapping in this process, writable
            // under the CPU lock we hold; the surface was created by this call and no port
            // or reference to it has been handed out, so nothing else reads or writes it.
            Contents::Zero => unsafe { map.base.as_ptr().write_bytes(0, map.len) },
            Contents::Keep if !map.wired => map.fault_in(page),
            Contents::Keep => {}
        }
        Ok(map)
    }

    /// Wires the range per `pin`.
    fn pin(&mut self, pin: Pin) -> Result<(), MemError> {
        match ffi::mlock(self.base, self.len) {
            Ok(()) => {
                self.wired = true;
                Ok(())
            }
            Err(errno) => match pin {
                Pin::Required => Err(MemError::WireRefused {
                    requested: self.len,
                    errno,
                    limit: ffi::memlock_limit().unwrap_or(None),
                }),
                Pin::BestEffort => Ok(()),
            },
        }
    }

    /// Faults every page in by reading one byte of each (the contents are someone else's).
    fn fault_in(&self, page: usize) {
        for offset in (0..self.len).step_by(page) {
            // SAFETY: inside the mapping, which is readable; a volatile read of one byte
            // changes nothing and cannot be elided.
            let _ = unsafe { self.base.as_ptr().add(offset).read_volatile() };
        }
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.base
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The `IOSurfaceID`.
    pub(crate) fn id(&self) -> u32 {
        self.hold.ticket.id()
    }

    pub(crate) fn is_pinned(&self) -> bool {
        self.wired
    }

    pub(crate) fn pages(&self) -> Pages {
        Pages::Base
    }

    pub(crate) fn page_size(&self) -> usize {
        page_size()
    }

    pub(crate) fn numa_node(&self) -> Option<u32> {
        None
    }

    /// Surfaces are opened read-write, by their creator or from a mach port.
    pub(crate) fn access(&self) -> Access {
        Access::ReadWrite
    }

    /// The surface, borrowed.
    pub(crate) fn handle(&self) -> ffi::IOSurfaceRef {
        self.hold.surface.as_ptr()
    }

    pub(crate) fn shape(&self) -> SurfaceShape {
        self.shape
    }

    /// Whether this Block holds the surface's CPU lock now.
    pub(crate) fn is_cpu_locked(&self) -> bool {
        self.hold.locked
    }

    /// Takes the CPU lock (options 0) if it is not held. The caller holds `&mut` to the
    /// Block: no view of the bytes is alive across the change.
    pub(crate) fn lock_cpu(&mut self) -> Result<(), MemError> {
        self.hold.lock()
    }

    /// Gives the CPU lock back (options 0, as taken) if it is held.
    pub(crate) fn unlock_cpu(&mut self) -> Result<(), MemError> {
        if self.hold.locked {
            self.hold
                .surface
                .unlock(LOCK_READ_WRITE)
                .map_err(|code| MemError::Kern {
                    call: "IOSurfaceUnlock",
                    code,
                })?;
            self.hold.locked = false;
        }
        Ok(())
    }

    /// A new send right to the surface, owned by the caller.
    pub(crate) fn mach_port(&self) -> Result<u32, MemError> {
        self.hold
            .surface
            .create_mach_port()
            .ok_or(MemError::MachPortFailed { id: self.id() })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.wired {
            let _ = ffi::munlock(self.base, self.len);
        }
        // `hold` drops after this body: IOSurfaceUnlock, CFRelease, then the id.
    }
}

/// What a new Block holds at open.
#[derive(Clone, Copy)]
enum Contents {
    /// A fresh surface: fill it with zeros.
    Zero,
    /// A surface someone else made: leave its bytes alone.
    Keep,
}

/// This process's hold on a surface: one reference, the CPU lock once taken, and the
/// surface's id in the registry of live Blocks. Dropping it unlocks (if locked), releases
/// the reference, then gives the id back, in that order (field order).
struct Hold {
    locked: bool,
    surface: Surface,
    ticket: Ticket,
}

impl Hold {
    /// Claims the surface's id, then takes the CPU lock (read-write, options 0).
    fn new(surface: Surface) -> Result<Hold, MemError> {
        let id = surface.id();
        let ticket = Ticket::claim(id).ok_or(MemError::SurfaceInUse { id })?;
        let mut hold = Hold {
            locked: false,
            surface,
            ticket,
        };
        hold.lock()?;
        Ok(hold)
    }

    /// Takes the CPU lock, read-write (options 0), unless it is held already.
    fn lock(&mut self) -> Result<(), MemError> {
        if !self.locked {
            self.surface
                .lock(LOCK_READ_WRITE)
                .map_err(|code| MemError::Kern {
                    call: "IOSurfaceLock",
                    code,
                })?;
            self.locked = true;
        }
        Ok(())
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.locked {
            // The options match the lock's, as IOSurfaceUnlock requires.
            let _ = self.surface.unlock(LOCK_READ_WRITE);
        }
    }
}

/// The properties asked of `IOSurfaceCreate`.
#[derive(Debug, Clone, Copy)]
struct Request {
    alloc: usize,
    width: usize,
    height: usize,
    bytes_per_element: usize,
    bytes_per_row: usize,
    pixel_format: u32,
}

impl Request {
    /// The flat 1-row layout of `len` bytes (`len` a nonzero whole number of pages).
    fn flat(len: usize) -> Result<Request, MemError> {
        let overflow = MemError::SizeOverflow {
            requested: len,
            granule: page_size(),
        };
        let bytes_per_row = Key::BytesPerRow.align(len);
        if bytes_per_row < len {
            return Err(overflow);
        }
        let alloc = aligned_alloc(bytes_per_row).ok_or(overflow)?;
        Ok(Request {
            alloc,
            width: len,
            height: 1,
            bytes_per_element: 1,
            bytes_per_row,
            pixel_format: 0,
        })
    }

    /// The 2-D fp16 layout: `height` rows of `width` half floats, rows a multiple of 64
    /// bytes and aligned by `IOSurfaceAlignProperty`.
    fn fp16_2d(width: usize, height: usize) -> Result<Request, MemError> {
        let bad = |reason| MemError::BadSurfaceShape {
            width,
            height,
            reason,
        };
        if width == 0 {
            return Err(bad("the width is zero"));
        }
        if height == 0 {
            return Err(bad("the height is zero"));
        }
        let row = width
            .checked_mul(2)
            .and_then(|row| row.checked_next_multiple_of(ROW_ALIGN))
            .filter(|&row| row <= isize::MAX as usize)
            .ok_or(bad("one row of fp16 overflows"))?;
        // Settled before asking IOSurface anything: its alignment only makes rows longer.
        row.checked_mul(height)
            .filter(|&total| total <= isize::MAX as usize)
            .ok_or(bad("the rows overflow isize::MAX bytes"))?;
        let bytes_per_row = Key::BytesPerRow.align(row);
        if bytes_per_row < row || bytes_per_row % ROW_ALIGN != 0 {
            return Err(MemError::SurfaceRowPitch {
                bytes_per_row,
                min: row,
                align: ROW_ALIGN,
            });
        }
        let alloc = bytes_per_row
            .checked_mul(height)
            .and_then(aligned_alloc)
            .ok_or(bad("the rows overflow isize::MAX bytes"))?;
        Ok(Request {
            alloc,
            width,
            height,
            bytes_per_element: 2,
            bytes_per_row,
            pixel_format: PIXEL_FORMAT_FP16,
        })
    }

    /// The bytes the rows need: `bytes_per_row * height` (checked when made).
    fn rows_size(&self) -> usize {
        self.bytes_per_row * self.height
    }

    /// `IOSurfaceCreate` with these properties. The CFNumbers and the dictionary are
    /// released when this returns, on every path.
    fn create(&self) -> Result<Surface, MemError> {
        let entries = [
            (Key::AllocSize, self.alloc),
            (Key::Width, self.width),
            (Key::Height, self.height),
            (Key::BytesPerElement, self.bytes_per_element),
            (Key::BytesPerRow, self.bytes_per_row),
            (Key::PixelFormat, self.pixel_format as usize),
        ];
        // Ownership: each CFNumber is owned by `numbers` (+1 from CFNumberCreate), the
        // dictionary by `properties` (+1 from CFDictionaryCreate, which also retains every
        // key and value); both drop at the end of this function, after IOSurfaceCreate,
        // which neither keeps nor releases our references.
        let numbers = entries
            .iter()
            .map(|&(_, value)| {
                // Every value is at most isize::MAX (checked by `flat` / `fp16_2d`).
                ffi::number(value as i64).ok_or(MemError::Os {
                    call: "CFNumberCreate",
                    errno: libc::ENOMEM,
                })
            })
            .collect::<Result<Vec<Cf>, MemError>>()?;
        let pairs: Vec<(Key, &Cf)> = entries.iter().map(|&(key, _)| key).zip(&numbers).collect();
        let properties = ffi::dictionary(&pairs).ok_or(MemError::Os {
            call: "CFDictionaryCreate",
            errno: libc::ENOMEM,
        })?;
        Surface::create(&properties).ok_or_else(|| MemError::SurfaceRefused {
            requested: self.alloc,
            width: self.width,
            height: self.height,
            bytes_per_row: self.bytes_per_row,
            max_width: Key::Width.maximum(),
            max_alloc: Key::AllocSize.maximum(),
        })
    }
}

/// `bytes` aligned for `kIOSurfaceAllocSize`, then rounded up to whole pages; `None` on
/// overflow or past `isize::MAX`.
fn aligned_alloc(bytes: usize) -> Option<usize> {
    let aligned = Key::AllocSize.align(bytes);
    if aligned < bytes {
        return None;
    }
    round_to_pages(aligned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_request_is_one_row_of_bytes() {
        let page = page_size();
        let request = Request::flat(3 * page).unwrap();
        assert_eq!((request.width, request.height), (3 * page, 1));
        assert_eq!(request.bytes_per_element, 1);
        assert_eq!(request.pixel_format, 0);
        assert!(request.bytes_per_row >= 3 * page);
        assert!(request.alloc >= request.bytes_per_row);
        assert_eq!(request.alloc % page, 0);
    }

    #[test]
    fn fp16_request_rows_are_64_byte_multiples() {
        let request = Request::fp16_2d(100, 3).unwrap();
        assert_eq!(request.bytes_per_row % ROW_ALIGN, 0);
        assert!(request.bytes_per_row >= 200);
        assert_eq!(request.pixel_format, 0x4C30_3068);
        assert!(request.alloc >= request.rows_size());
        for (w, h) in [(0, 1), (1, 0), (usize::MAX, 1), (1 << 40, 1 << 40)] {
            assert!(matches!(
                Request::fp16_2d(w, h),
                Err(MemError::BadSurfaceShape { .. })
            ));
        }
    }

    #[test]
    fn pixel_format_is_l00h() {
        assert_eq!(PIXEL_FORMAT_FP16, 0x4C30_3068);
    }
}

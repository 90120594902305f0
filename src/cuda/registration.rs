//! [`CudaBlock`]: a Block's pages registered with CUDA, so a GPU reads and writes them
//! directly through a device pointer.
//!
//! # Design
//!
//! [`Extent::register_cuda`] calls `cuMemHostRegister_v2` on the Extent with
//! `PORTABLE | DEVICEMAP` (and `READ_ONLY` for a read-only mapping), in the device's
//! primary context, and looks the device pointer up with `cuMemHostGetDevicePointer_v2`.
//! A Block larger than a chunk (64 GiB by default, [`RegisterOptions::chunk`]) is
//! registered chunk by chunk, because drivers refuse one call of 512 GiB or more and one
//! huge call holds driver-wide locks for minutes; each chunk's device address must follow
//! the previous one's (unified addressing makes them equal to the host addresses), so the
//! caller still gets one device pointer for the whole Block.
//! The registration itself is a private, owned `Registration`: its `Drop` synchronizes the
//! context, unregisters every chunk registered (`cuMemHostUnregister`), and then releases
//! the context; a registration that fails part way drops its half-built `Registration`,
//! which undoes the chunks made so far. It lives in one of two places:
//!
//! - in the returned [`CudaBlock`], which borrows the Extent, so the Block can be neither
//!   dropped (unmapped) nor viewed mutably while it is registered; dropping the `CudaBlock`
//!   unregisters;
//! - in the Extent itself, after [`CudaBlock::keep`]: the Extent's `Drop` unregisters
//!   first, before its mapping is unlocked, unmapped and closed. Nothing borrows the Block
//!   any more, so an owner that lends parts of it (a Tape) can `clear` it while it stays
//!   registered.
//!
//! Either way the order is: unregister, release the context, then `munmap`, `close`.
//!
//! # Why it is sound
//!
//! - The registration never outlives the mapping: a `CudaBlock` borrows the Extent and
//!   unregisters in `Drop` before the borrow ends; a kept registration is a field of the
//!   Extent, dropped by the Extent's `Drop` before the mapping is released. Leaking a
//!   `CudaBlock` (`std::mem::forget`) leaks the registration: the driver keeps its own
//!   reference to the pages, so they stay allocated after the Block unmaps them, and a later
//!   registration of the same addresses fails with `CudaAlreadyRegistered`; no memory is
//!   reused while the device can still reach it.
//! - Registering changes no byte. Only device work writes through the device pointer, and
//!   every way to start such work takes a raw device address and is `unsafe` (the
//!   [`Context`] operations, or a kernel launch by another crate): the caller promises that
//!   no Rust reference to those bytes is alive meanwhile. That is why keeping the
//!   registration while the Block is viewed mutably or a Tape is cleared is sound: the
//!   borrow protects the mapping's life, not the bytes.
//! - The device pointer is a plain `u64`, like a raw pointer: holding one is harmless.

use std::ffi::{c_uint, c_void};
use std::fmt;
use std::sync::Arc;

use super::{Attribute, Context, Device, Driver};
use crate::block::progress::{Tracker, Work};
use crate::block::{Access, Extent, Progress};
use crate::error::MemError;
use crate::owner::Owner;

/// `CU_MEMHOSTREGISTER_PORTABLE`: the registration is seen by every context, not only the
/// one that made it.
const PORTABLE: c_uint = 0x1;
/// `CU_MEMHOSTREGISTER_DEVICEMAP`: map the range into the device's address space.
const DEVICEMAP: c_uint = 0x2;
/// `CU_MEMHOSTREGISTER_READ_ONLY`: the device only reads; needed for a `PROT_READ` mapping.
const READ_ONLY: c_uint = 0x8;
/// `CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED`.
const ALREADY_REGISTERED: i32 = 712;

/// Whether `extent` must be registered read-only: true for a read-only import, whose pages
/// are mapped `PROT_READ` (registering those without `READ_ONLY` fails).
fn registers_read_only(extent: &Extent) -> bool {
    extent.access() == Access::ReadOnly
}

/// How [`Extent::register_cuda_with`] registers: in chunks of at most
/// [`chunk`](RegisterOptions::chunk) bytes, following a [`Progress`].
///
/// ```
/// use std::sync::Arc;
/// use unimem::Progress;
/// use unimem::cuda::RegisterOptions;
///
/// let progress = Arc::new(Progress::new());
/// let options = RegisterOptions::new().chunk(16 << 30).progress(&progress);
/// assert_eq!(options.chunk_size(), 16 << 30);
/// assert_eq!(RegisterOptions::default().chunk_size(), RegisterOptions::DEFAULT_CHUNK);
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until given to `register_cuda_with`"]
pub struct RegisterOptions {
    chunk: usize,
    progress: Option<Arc<Progress>>,
}

impl Default for RegisterOptions {
    fn default() -> RegisterOptions {
        RegisterOptions {
            chunk: RegisterOptions::DEFAULT_CHUNK,
            progress: None,
        }
    }
}

impl RegisterOptions {
    /// The default chunk, 64 GiB: the most vLLM registers in one call, well below the
    /// 512 GiB that drivers of the r580 series refuse.
    pub const DEFAULT_CHUNK: usize = 64 << 30;

    /// The defaults: chunks of [`DEFAULT_CHUNK`](RegisterOptions::DEFAULT_CHUNK), no
    /// progress.
    pub fn new() -> RegisterOptions {
        RegisterOptions::default()
    }

    /// Registers in chunks of at most `bytes` (rounded down to the Block's page size, at
    /// least one page): one `cuMemHostRegister` call each.
    pub fn chunk(mut self, bytes: usize) -> RegisterOptions {
        self.chunk = bytes;
        self
    }

    /// The chunk size asked for, before rounding to the Block's page size.
    pub fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Follows the registration with `progress`: `to_register` grows by the Block's size
    /// first, `registered` by each chunk as it is registered.
    pub fn progress(mut self, progress: &Arc<Progress>) -> RegisterOptions {
        self.progress = Some(Arc::clone(progress));
        self
    }
}

impl Extent {
    /// Registers this Block's memory with CUDA device `device` (an ordinal), so that the
    /// device reads and writes it directly through [`CudaBlock::device_ptr`]. Copies
    /// between the Block and device memory then run at full PCIe speed, and kernels can use
    /// the Block in place.
    ///
    /// The registration uses the device's primary context (shared with the CUDA runtime
    /// and PyTorch) and is portable: its device pointer is valid on every device. It lasts
    /// until the [`CudaBlock`] drops, and the `CudaBlock` borrows the Extent, so the Block
    /// cannot be dropped or viewed mutably while registered; or, after
    /// [`CudaBlock::keep`], until the Block drops, with no borrow left.
    ///
    /// The whole Block is registered: parts of it (a Tape's takes, a Grid's cells) are
    /// addressed on the device by offset, [`device_ptr`](CudaBlock::device_ptr) `+ offset`,
    /// or with [`device_ptr_of`](CudaBlock::device_ptr_of).
    ///
    /// Registration pins the pages itself; an unpinned Block (opened with
    /// `Pin::BestEffort`) can be registered too.
    ///
    /// Blocks larger than 64 GiB are registered in chunks of 64 GiB and still get one
    /// device pointer; [`register_cuda_with`](Extent::register_cuda_with) sets the chunk and
    /// follows the work with a [`Progress`].
    ///
    /// # Errors
    ///
    /// - [`CudaBadDevice`](MemError::CudaBadDevice): no device with that ordinal;
    /// - [`CudaUnsupported`](MemError::CudaUnsupported): the device cannot map registered
    ///   host memory (`CAN_MAP_HOST_MEMORY` or `HOST_REGISTER_SUPPORTED` is 0, or
    ///   `READ_ONLY_HOST_REGISTER_SUPPORTED` for a read-only Block);
    /// - [`CudaAlreadyRegistered`](MemError::CudaAlreadyRegistered): the Block is already
    ///   registered in this process (by unimem or anyone else);
    /// - [`Cuda`](MemError::Cuda): any other driver failure, with the CUDA error's name.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use unimem::Block;
    /// use unimem::cuda::Driver;
    ///
    /// let block = Block::open(64 << 20)?;
    /// let driver = Driver::load()?;
    /// let registered = block.register_cuda(&driver, 0)?;
    /// let cell = registered.device_ptr() + 4096; // what a kernel is given
    /// assert_eq!(registered.device_ptr_of(block.address().wrapping_add(4096)), Some(cell));
    /// drop(registered); // unregistered here, before the Block can drop
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    ///
    /// The borrow makes the wrong order impossible:
    ///
    /// ```compile_fail,E0505
    /// use unimem::Block;
    /// use unimem::cuda::Driver;
    ///
    /// let block = Block::open(4096)?;
    /// let driver = Driver::load()?;
    /// let registered = block.register_cuda(&driver, 0)?;
    /// drop(block); // error: `block` is borrowed by `registered`
    /// drop(registered);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn register_cuda(&self, driver: &Driver, device: u32) -> Result<CudaBlock<'_>, MemError> {
        self.register_cuda_with(driver, device, &RegisterOptions::default())
    }

    /// [`register_cuda`](Extent::register_cuda) with options: the chunk size and a
    /// [`Progress`].
    ///
    /// Each chunk is one `cuMemHostRegister_v2` call (the last one shorter); each chunk's
    /// device address must be the first's plus its offset, as unified addressing makes it,
    /// so that [`CudaBlock::device_ptr`] `+ offset` is valid for every offset. If a chunk
    /// fails, every chunk registered before it is unregistered and the error returned.
    ///
    /// # Errors
    ///
    /// As [`register_cuda`](Extent::register_cuda), and
    /// [`CudaNotContiguous`](MemError::CudaNotContiguous) where the chunks' device addresses
    /// do not follow one another.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use unimem::{Block, Progress};
    /// use unimem::cuda::{Driver, RegisterOptions};
    ///
    /// let block = Block::open(8 << 30)?;
    /// let driver = Driver::load()?;
    /// let progress = Arc::new(Progress::new());
    /// let options = RegisterOptions::new().chunk(1 << 30).progress(&progress);
    /// let registered = block.register_cuda_with(&driver, 0, &options)?;
    /// assert_eq!((registered.chunks(), progress.registered()), (8, 8 << 30));
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn register_cuda_with(
        &self,
        driver: &Driver,
        device: u32,
        options: &RegisterOptions,
    ) -> Result<CudaBlock<'_>, MemError> {
        let device = driver.device(device)?;
        let read_only = registers_read_only(self);
        device.require(Attribute::CanMapHostMemory)?;
        device.require(Attribute::HostRegisterSupported)?;
        if read_only {
            device.require(Attribute::ReadOnlyHostRegisterSupported)?;
        }
        let flags = PORTABLE | DEVICEMAP | if read_only { READ_ONLY } else { 0 };
        let context = device.context()?;
        let page = self.page_size().max(crate::page_size());
        let chunk = (options.chunk / page * page).max(page);
        let tracker = Tracker::start(
            options.progress.as_deref(),
            Work::Register,
            self.size() as u64,
        );
        let mut registration = Registration {
            context,
            address: self.address() as usize,
            size: self.size(),
            chunk,
            chunks: 0,
            device_ptr: 0,
            read_only,
        };
        // On any failure below `registration` drops, and its `Drop` unregisters every chunk
        // registered so far.
        for offset in (0..self.size()).step_by(chunk) {
            let len = chunk.min(self.size() - offset);
            registration.register_chunk(offset, len, flags)?;
            tracker.advance(len as u64);
        }
        tracker.finish();
        Ok(CudaBlock {
            extent: self,
            registration,
        })
    }

    /// The device address of this Block's first byte, if a registration was kept in it
    /// with [`CudaBlock::keep`]; `None` otherwise (not registered, or registered through a
    /// [`CudaBlock`] that has not been kept).
    ///
    /// The part at offset `o` (a Tape's take, a Grid's cell) is at `cuda_device_ptr()? + o`.
    ///
    /// ```
    /// use unimem::{Block, Pin};
    ///
    /// let block = Block::builder(4096).pin(Pin::BestEffort).open()?;
    /// assert_eq!(block.cuda_device_ptr(), None);
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn cuda_device_ptr(&self) -> Option<u64> {
        self.cuda.get().map(|kept| kept.device_ptr)
    }

    /// The primary context a kept registration ([`CudaBlock::keep`]) was made in, for
    /// copies and fills through [`cuda_device_ptr`](Extent::cuda_device_ptr); `None` if
    /// no registration is kept.
    pub fn cuda_context(&self) -> Option<&Context> {
        self.cuda.get().map(|kept| &kept.context)
    }
}

/// A registration of a whole Extent: the owned part of a [`CudaBlock`], and what
/// [`CudaBlock::keep`] moves into the Extent.
///
/// Its `Drop` synchronizes the context, unregisters, and (through the `context` field,
/// dropped after the body) releases the primary context. Whoever holds it must drop it
/// while the Extent is still mapped: a `CudaBlock` borrows the Extent, and the Extent drops
/// its kept one before unmapping.
pub(crate) struct Registration {
    context: Context,
    /// The registered base (the Extent's first byte), as a number: it is only ever handed
    /// to the driver to name the registration.
    address: usize,
    size: usize,
    /// Bytes per `cuMemHostRegister` call (the last chunk may be shorter).
    chunk: usize,
    /// Chunks registered so far, from the base: the ones `Drop` unregisters.
    chunks: usize,
    device_ptr: u64,
    read_only: bool,
}

impl Registration {
    /// Registers the `len` bytes at `offset` (the next chunk), checks that its device
    /// address follows the first chunk's, and counts it.
    fn register_chunk(&mut self, offset: usize, len: usize, flags: c_uint) -> Result<(), MemError> {
        let device = self.context.device().ordinal();
        let _current = self.context.enter()?;
        let at = self.at(offset);
        // SAFETY: `at..at + len` lies inside the Extent's mapping (the caller steps through
        // `0..size`), which stays mapped while the `CudaBlock` built from this registration
        // borrows it or the Extent keeps it; `Drop` unregisters this very chunk base.
        // Registration does not change the bytes.
        unsafe { self.context.api().mem_host_register(at, len, flags) }.map_err(
            |code| match code {
                ALREADY_REGISTERED => MemError::CudaAlreadyRegistered {
                    device,
                    address: self.address,
                    size: self.size,
                },
                _ => self.context.error("cuMemHostRegister_v2", code, Some(len)),
            },
        )?;
        self.chunks += 1;
        let found = self
            .context
            .api()
            .mem_host_device_pointer(at)
            .map_err(|code| {
                self.context
                    .error("cuMemHostGetDevicePointer_v2", code, Some(len))
            })?;
        if offset == 0 {
            self.device_ptr = found;
        } else if found != self.device_ptr.wrapping_add(offset as u64) {
            return Err(MemError::CudaNotContiguous {
                device,
                offset,
                expected: self.device_ptr.wrapping_add(offset as u64),
                found,
            });
        }
        Ok(())
    }

    /// The host byte at `offset`, as the pointer the driver's calls take.
    fn at(&self, offset: usize) -> *mut c_void {
        std::ptr::without_provenance_mut(self.address + offset)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // A context that cannot be made current cannot unregister: the registration then
        // leaks, which is safe (module docs) and has nobody to be reported to in drop.
        if let Ok(_current) = self.context.enter() {
            // Work queued in the context may still use the pages: let it finish first.
            let _ = self.context.api().ctx_synchronize();
            for i in (0..self.chunks).rev() {
                // SAFETY: this is the base of a chunk registered in `register_chunk`; the
                // Extent is still mapped (whoever holds a `Registration` drops it first),
                // and the context has no work left.
                let _ = unsafe {
                    self.context
                        .api()
                        .mem_host_unregister(self.at(i * self.chunk))
                };
            }
        }
        // `context` drops after this body: its release follows the unregisters.
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("device", &self.context.device().ordinal())
            .field("address", &format_args!("{:#x}", self.address))
            .field("device_ptr", &format_args!("{:#x}", self.device_ptr))
            .field("size", &self.size)
            .field("chunk", &self.chunk)
            .field("chunks", &self.chunks)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// A Block registered with CUDA: the device reads and writes its pages through
/// [`device_ptr`](CudaBlock::device_ptr).
///
/// Made by [`Extent::register_cuda`]. It borrows the Block's [`Extent`] for `'a`, holds a
/// retain of the device's primary [`Context`], and on drop synchronizes that context (so
/// no work queued there still uses the pages), unregisters, and releases the context.
///
/// To register for as long as the Block lives instead, without a borrow (so that a Tape
/// over the Block can still be cleared), [`keep`](CudaBlock::keep) it.
///
/// `CudaBlock` is `Send` and `Sync`.
pub struct CudaBlock<'a> {
    extent: &'a Extent,
    registration: Registration,
}

impl<'a> CudaBlock<'a> {
    /// The device address of the Block's first byte. On devices with unified addressing
    /// (every 64-bit Linux system) it equals the host address.
    pub fn device_ptr(&self) -> u64 {
        self.registration.device_ptr
    }

    /// The device address of the byte at `offset` from the start of the Block, or `None`
    /// past its end.
    pub fn device_ptr_at(&self, offset: usize) -> Option<u64> {
        (offset < self.extent.size()).then(|| self.device_ptr() + offset as u64)
    }

    /// The device address of the host byte `host`, or `None` if `host` is not inside the
    /// Block. For a Tape's take or a Grid's cell: `device_ptr_of(slice.as_ptr())`.
    pub fn device_ptr_of(&self, host: *const u8) -> Option<u64> {
        self.device_ptr_at((host as usize).wrapping_sub(self.extent.address() as usize))
    }

    /// Size of the registered range in bytes: the whole Block.
    pub fn size(&self) -> usize {
        self.extent.size()
    }

    /// The registered Extent.
    pub fn extent(&self) -> &'a Extent {
        self.extent
    }

    /// The primary context the registration was made in: use it for copies and fills
    /// through the device pointer.
    pub fn context(&self) -> &Context {
        &self.registration.context
    }

    /// The device the registration was made with.
    pub fn device(&self) -> Device {
        self.registration.context.device()
    }

    /// Whether the device may only read the Block (`CU_MEMHOSTREGISTER_READ_ONLY`): true
    /// for a read-only import.
    pub fn is_read_only(&self) -> bool {
        self.registration.read_only
    }

    /// How many `cuMemHostRegister` calls (chunks) the registration took: 1 for a Block no
    /// larger than the chunk size ([`RegisterOptions::chunk`]).
    pub fn chunks(&self) -> usize {
        self.registration.chunks
    }

    /// Keeps the registration for as long as the Block lives, and returns its device
    /// pointer: the registration moves into the Block's [`Extent`], which unregisters it
    /// when it drops, before it unlocks, unmaps and closes anything.
    ///
    /// The borrow of the Extent ends here. An owner that lends parts of the Block, a
    /// [`Tape`](crate::Tape) or a [`Grid`](crate::Grid), registers once, keeps it, and
    /// goes on taking and clearing (`clear` needs `&mut`). Later the device pointer is
    /// [`Extent::cuda_device_ptr`] and the context [`Extent::cuda_context`].
    ///
    /// A kept registration cannot be given back early; drop the Block to end it. (If the
    /// Extent already keeps one, which is possible only if code outside unimem unregistered
    /// it behind unimem's back and the range was registered again, this one is dropped,
    /// unregistering, and the kept one's device pointer is returned.)
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use unimem::Tape;
    /// use unimem::cuda::Driver;
    ///
    /// let driver = Driver::load()?;
    /// let mut tape = Tape::start(64 << 20)?;
    /// let base = tape.block().register_cuda(&driver, 0)?.keep();
    /// for _step in 0..3 {
    ///     let p = tape.take(4096, 256).unwrap();
    ///     let on_gpu = base + tape.offset_of(p).unwrap() as u64; // what a kernel is given
    ///     # let _ = on_gpu;
    ///     tape.clear(); // still registered
    /// }
    /// assert_eq!(tape.block().cuda_device_ptr(), Some(base));
    /// drop(tape); // unregistered here, then unmapped
    /// # Ok::<(), unimem::MemError>(())
    /// ```
    pub fn keep(self) -> u64 {
        let CudaBlock {
            extent,
            registration,
        } = self;
        let device_ptr = registration.device_ptr;
        match extent.cuda.set(registration) {
            Ok(()) => device_ptr,
            Err(duplicate) => {
                drop(duplicate);
                extent.cuda_device_ptr().unwrap_or(device_ptr)
            }
        }
    }
}

impl fmt::Debug for CudaBlock<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaBlock")
            .field("block", &self.extent.id())
            .field("device", &self.device().ordinal())
            .field("address", &self.extent.address())
            .field("device_ptr", &format_args!("{:#x}", self.device_ptr()))
            .field("size", &self.extent.size())
            .field("read_only", &self.is_read_only())
            .finish()
    }
}

/// A registration that owns its memory: an [`Owner`] (a Block, a Tape, an `Arc` of one)
/// registered with a CUDA device for as long as this value lives, with no borrow.
///
/// [`CudaBlock`] borrows the Block, which is right in Rust code but cannot cross into C or
/// Python, where nothing enforces a borrow; [`CudaBlock::keep`] lasts as long as the Block.
/// `Registered` sits between: it holds the owner itself, so the memory cannot be unmapped
/// while registered, and dropping it unregisters (synchronize, unregister, release the
/// context), then drops the owner. It is itself an [`Owner`], which a DLPack tensor
/// (feature `dlpack`) keeps alive, so a tensor that says `kDLCUDAHost` never outlives the
/// registration that makes it true.
///
/// `Registered` is `Send` and `Sync`.
///
/// ```no_run
/// use std::sync::Arc;
/// use unimem::Block;
/// use unimem::cuda::{Driver, Registered};
///
/// let block = Arc::new(Block::open(64 << 20)?);
/// let registered = Registered::new(Arc::clone(&block), &Driver::load()?, 0)?;
/// let kernel_arg = registered.device_ptr() + 4096;
/// # let _ = kernel_arg;
/// drop(registered); // unregistered; `block` is still ours
/// # Ok::<(), unimem::MemError>(())
/// ```
pub struct Registered<O: Owner> {
    /// Declared first: dropped (unregistered) before the owner.
    registration: Registration,
    owner: O,
}

impl<O: Owner> Registered<O> {
    /// Registers the owner's whole Block with device `device`, as
    /// [`Extent::register_cuda`] does, and keeps the owner.
    ///
    /// # Errors
    ///
    /// Those of [`Extent::register_cuda`]; the owner is dropped.
    pub fn new(owner: O, driver: &Driver, device: u32) -> Result<Registered<O>, MemError> {
        let registration = owner.extent().register_cuda(driver, device)?.registration;
        // The borrow of `owner` ended with the `CudaBlock`; the registration names the
        // mapping by address, which does not move when `owner` does.
        Ok(Registered {
            registration,
            owner,
        })
    }

    /// The device address of the first byte (equal to the host address with unified
    /// addressing).
    pub fn device_ptr(&self) -> u64 {
        self.registration.device_ptr
    }

    /// The device the registration was made with.
    pub fn device(&self) -> Device {
        self.registration.context.device()
    }

    /// The primary context the registration was made in.
    pub fn context(&self) -> &Context {
        &self.registration.context
    }

    /// Whether the device may only read the memory (a read-only mapping).
    pub fn is_read_only(&self) -> bool {
        self.registration.read_only
    }

    /// The owner.
    pub fn owner(&self) -> &O {
        &self.owner
    }

    /// Unregisters and gives the owner back.
    pub fn into_owner(self) -> O {
        let Registered {
            registration,
            owner,
        } = self;
        drop(registration);
        owner
    }
}

impl<O: Owner> crate::owner::sealed::Sealed for Registered<O> {
    fn owned(&self) -> &Extent {
        self.owner.extent()
    }
    fn check_shared(&self) -> Result<(), MemError> {
        self.owner.check_shared()
    }
    fn registered_device(&self) -> Option<u32> {
        Some(self.device().ordinal())
    }
}

impl<O: Owner> fmt::Debug for Registered<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registered")
            .field("registration", &self.registration)
            .field("block", &self.owner.extent().id())
            .finish()
    }
}

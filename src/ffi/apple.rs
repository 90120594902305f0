//! IOSurface, CoreFoundation and Mach calls behind the Apple Block: raw declarations, and
//! one thin wrapper per call.
//!
//! Every declaration below is written against Apple's SDK headers (`IOSurfaceRef.h`,
//! `IOSurfaceAPI.h`, `IOSurfaceTypes.h`, `CFBase.h`, `CFNumber.h`, `CFDictionary.h`,
//! `mach/mach_port.h`, `mach/mach_init.h`); `specs/apple.md` lists each one beside its C
//! signature for review, and `specs/sources.md` says where the headers are published. The rules that keep this module honest:
//!
//! - C types get Rust types of the same width on arm64 macOS: `Boolean` is `u8` (never
//!   `bool`), `CFIndex` and `CFNumberType` are `isize`, `kern_return_t` is `i32`,
//!   `mach_port_t`, `IOSurfaceID`, `OSType` and `IOSurfaceLockOptions` are `u32`.
//! - Property keys are the framework's exported `kIOSurface*` `CFStringRef` statics, read
//!   at run time; no key is ever built from a string literal.
//! - Every CoreFoundation object this crate creates is owned by a [`Cf`] (one reference,
//!   released by its `Drop`), and every IOSurface by a [`Surface`] (likewise). An object is
//!   therefore released exactly once on every path, error paths included.
//!
//! Nothing here decides policy (what to lock, what to check): that is the backend's job
//! (`block/apple.rs`).
//!
//! # References
//!
//! `IOSurfaceRef.h`, `IOSurfaceAPI.h`, `IOSurfaceBase.h`, `IOSurfaceTypes.h`
//! (IOSurface.framework); `CFBase.h`, `CFNumber.h`, `CFDictionary.h` (CoreFoundation);
//! `mach/mach_port.h`, `mach/mach_init.h`, `mach/kern_return.h`; mlock(2) and getrlimit(2)
//! on macOS.

#![allow(non_camel_case_types, non_upper_case_globals)]

use std::ffi::c_void;
use std::ptr::{self, NonNull};

// ---------------------------------------------------------------------------------------
// Types (arm64 macOS widths; see specs/apple.md)

/// `CFIndex` (`signed long`).
pub(crate) type CFIndex = isize;
/// `CFNumberType` (`CFIndex`; core-foundation-sys's `u32` is wrong).
pub(crate) type CFNumberType = CFIndex;
/// `CFTypeRef` (`const void *`).
pub(crate) type CFTypeRef = *const c_void;
/// `CFStringRef` (`const struct __CFString *`).
pub(crate) type CFStringRef = *const c_void;
/// `CFAllocatorRef` (`const struct __CFAllocator *`); NULL is the default allocator.
pub(crate) type CFAllocatorRef = *const c_void;
/// `CFDictionaryRef` (`const struct __CFDictionary *`).
pub(crate) type CFDictionaryRef = *const c_void;
/// `CFNumberRef` (`const struct __CFNumber *`).
pub(crate) type CFNumberRef = *const c_void;
/// `IOSurfaceRef` (`struct __IOSurface *`): the public alias, re-exported by the crate.
pub type IOSurfaceRef = *mut c_void;
/// `IOSurfaceID` (`uint32_t`).
pub(crate) type IOSurfaceID = u32;
/// `IOSurfaceLockOptions` (`uint32_t` enum).
pub(crate) type IOSurfaceLockOptions = u32;
/// `kern_return_t` and `IOReturn` (`int`).
pub(crate) type kern_return_t = i32;
/// `mach_port_t`, `mach_port_name_t`, `ipc_space_t` (`natural_t`, `unsigned int`).
pub(crate) type mach_port_t = u32;
/// `OSType` (`FourCharCode`, `UInt32`).
pub(crate) type OSType = u32;

/// `CFDictionaryKeyCallBacks`: a version and five function pointers, which this crate only
/// passes by address (the framework's `kCFTypeDictionaryKeyCallBacks`), never calls.
#[repr(C)]
pub(crate) struct CFDictionaryKeyCallBacks {
    version: CFIndex,
    retain: *const c_void,
    release: *const c_void,
    copy_description: *const c_void,
    equal: *const c_void,
    hash: *const c_void,
}

/// `CFDictionaryValueCallBacks`: as the key callbacks, without `hash`.
#[repr(C)]
pub(crate) struct CFDictionaryValueCallBacks {
    version: CFIndex,
    retain: *const c_void,
    release: *const c_void,
    copy_description: *const c_void,
    equal: *const c_void,
}

// The callback structs cross the boundary only by address, but their size is checked
// against the C layout on 64-bit targets anyway (a CFIndex and five or four pointers).
const _: () = assert!(size_of::<CFDictionaryKeyCallBacks>() == 48);
const _: () = assert!(size_of::<CFDictionaryValueCallBacks>() == 40);
const _: () = assert!(size_of::<CFIndex>() == 8 && size_of::<usize>() == 8);

/// `kCFNumberSInt64Type` (CFNumber.h).
pub(crate) const kCFNumberSInt64Type: CFNumberType = 4;
/// `KERN_SUCCESS`, also `kIOReturnSuccess` and `kIOSurfaceSuccess`.
pub(crate) const KERN_SUCCESS: kern_return_t = 0;
/// `MACH_PORT_NULL`.
pub(crate) const MACH_PORT_NULL: mach_port_t = 0;
/// `MACH_PORT_DEAD` (`~0`).
pub(crate) const MACH_PORT_DEAD: mach_port_t = !0;
/// Lock options 0: a read-write CPU lock (not `kIOSurfaceLockReadOnly`, not
/// `kIOSurfaceLockAvoidSync`). The same value is passed to the matching unlock.
pub(crate) const LOCK_READ_WRITE: IOSurfaceLockOptions = 0;

// ---------------------------------------------------------------------------------------
// Raw declarations

#[link(name = "IOSurface", kind = "framework")]
unsafe extern "C" {
    static kIOSurfaceAllocSize: CFStringRef;
    static kIOSurfaceWidth: CFStringRef;
    static kIOSurfaceHeight: CFStringRef;
    static kIOSurfaceBytesPerRow: CFStringRef;
    static kIOSurfaceBytesPerElement: CFStringRef;
    static kIOSurfacePixelFormat: CFStringRef;

    fn IOSurfaceCreate(properties: CFDictionaryRef) -> IOSurfaceRef;
    fn IOSurfaceLookupFromMachPort(port: mach_port_t) -> IOSurfaceRef;
    fn IOSurfaceCreateMachPort(buffer: IOSurfaceRef) -> mach_port_t;
    fn IOSurfaceLock(
        buffer: IOSurfaceRef,
        options: IOSurfaceLockOptions,
        seed: *mut u32,
    ) -> kern_return_t;
    fn IOSurfaceUnlock(
        buffer: IOSurfaceRef,
        options: IOSurfaceLockOptions,
        seed: *mut u32,
    ) -> kern_return_t;
    fn IOSurfaceGetBaseAddress(buffer: IOSurfaceRef) -> *mut c_void;
    fn IOSurfaceGetAllocSize(buffer: IOSurfaceRef) -> usize;
    fn IOSurfaceGetID(buffer: IOSurfaceRef) -> IOSurfaceID;
    fn IOSurfaceGetWidth(buffer: IOSurfaceRef) -> usize;
    fn IOSurfaceGetHeight(buffer: IOSurfaceRef) -> usize;
    fn IOSurfaceGetBytesPerElement(buffer: IOSurfaceRef) -> usize;
    fn IOSurfaceGetBytesPerRow(buffer: IOSurfaceRef) -> usize;
    fn IOSurfaceGetPixelFormat(buffer: IOSurfaceRef) -> OSType;
    fn IOSurfaceGetPropertyMaximum(property: CFStringRef) -> usize;
    fn IOSurfaceAlignProperty(property: CFStringRef, value: usize) -> usize;
}

#[link(name = "CoreFoundation", kind = "framework")]
unsafe extern "C" {
    static kCFTypeDictionaryKeyCallBacks: CFDictionaryKeyCallBacks;
    static kCFTypeDictionaryValueCallBacks: CFDictionaryValueCallBacks;

    fn CFDictionaryCreate(
        allocator: CFAllocatorRef,
        keys: *const *const c_void,
        values: *const *const c_void,
        num_values: CFIndex,
        key_call_backs: *const CFDictionaryKeyCallBacks,
        value_call_backs: *const CFDictionaryValueCallBacks,
    ) -> CFDictionaryRef;
    fn CFNumberCreate(
        allocator: CFAllocatorRef,
        the_type: CFNumberType,
        value_ptr: *const c_void,
    ) -> CFNumberRef;
    fn CFRelease(cf: CFTypeRef);
}

// libSystem (always linked): the task's own port and the send-right release.
unsafe extern "C" {
    /// Set by libSystem at start-up (and again in a forked child); read, never written here.
    static mut mach_task_self_: mach_port_t;

    fn mach_port_deallocate(task: mach_port_t, name: mach_port_t) -> kern_return_t;
}

// ---------------------------------------------------------------------------------------
// CoreFoundation objects

/// As `fault!` (`ffi/mod.rs`), for a wrapper that reports failure as `None`: CoreFoundation
/// and IOSurface constructors return NULL, with no code.
macro_rules! fault_none {
    ($call:literal) => {
        #[cfg(feature = "fault-injection")]
        {
            if crate::ffi::fault::hit($call).is_some() {
                return None;
            }
        }
    };
}

/// As `fault!`, for a getter that cannot fail: an injected code is returned as the value
/// (`as $ty`), so a test can make IOSurface report what it never has on the test machine
/// (an allocation smaller than asked, an address off a page boundary).
macro_rules! fault_value {
    ($call:literal, $ty:ty) => {
        #[cfg(feature = "fault-injection")]
        {
            if let Some(code) = crate::ffi::fault::hit($call) {
                return code as $ty;
            }
        }
    };
}

/// One reference to a CoreFoundation object this crate created (the Create Rule: +1),
/// released exactly once when dropped.
pub(crate) struct Cf(NonNull<c_void>);

impl Cf {
    /// Takes ownership of a +1 reference, or `None` for NULL.
    fn take(object: CFTypeRef) -> Option<Cf> {
        NonNull::new(object.cast_mut()).map(Cf)
    }

    pub(crate) fn as_ptr(&self) -> CFTypeRef {
        self.0.as_ptr()
    }
}

impl Drop for Cf {
    fn drop(&mut self) {
        // SAFETY: `self` owns one reference to a live, non-NULL CF object; it is released
        // once, here, and never used again.
        unsafe { CFRelease(self.as_ptr()) };
    }
}

/// `CFNumberCreate(NULL, kCFNumberSInt64Type, &value)`: a new CFNumber (+1), or `None` if
/// CoreFoundation could not allocate one.
pub(crate) fn number(value: i64) -> Option<Cf> {
    fault_none!("CFNumberCreate");
    // SAFETY: the value pointer is a live i64, as kCFNumberSInt64Type says; CFNumberCreate
    // copies it and returns +1 or NULL.
    Cf::take(unsafe { CFNumberCreate(ptr::null(), kCFNumberSInt64Type, (&raw const value).cast()) })
}

/// An immutable dictionary of the given IOSurface property keys and CFNumber values,
/// created with the kCFType callbacks: the dictionary retains every key and value, so the
/// caller still owns (and later releases) the numbers it passed. `None` if CoreFoundation
/// could not allocate it.
pub(crate) fn dictionary(entries: &[(Key, &Cf)]) -> Option<Cf> {
    fault_none!("CFDictionaryCreate");
    let keys: Vec<*const c_void> = entries.iter().map(|(key, _)| key.get()).collect();
    let values: Vec<*const c_void> = entries.iter().map(|(_, value)| value.as_ptr()).collect();
    // SAFETY:
    // - `keys` and `values` hold `entries.len()` live CF objects each (the framework's key
    //   strings, numbers owned by the caller for the duration of the call);
    // - the callback structs are the framework's own statics, passed by address;
    // - CFDictionaryCreate copies the arrays, retains each key and value, and returns +1
    //   or NULL.
    Cf::take(unsafe {
        CFDictionaryCreate(
            ptr::null(),
            keys.as_ptr(),
            values.as_ptr(),
            entries.len() as CFIndex,
            &raw const kCFTypeDictionaryKeyCallBacks,
            &raw const kCFTypeDictionaryValueCallBacks,
        )
    })
}

/// The IOSurface property keys this crate sets, each read from the framework's exported
/// `kIOSurface*` `CFStringRef` symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    AllocSize,
    Width,
    Height,
    BytesPerRow,
    BytesPerElement,
    PixelFormat,
}

impl Key {
    /// The framework's `CFStringRef` for this key (a constant string, never released).
    pub(crate) fn get(self) -> CFStringRef {
        // SAFETY: each is an immutable `const CFStringRef` exported by IOSurface.framework,
        // initialised before any code of this process runs and never written.
        unsafe {
            match self {
                Key::AllocSize => kIOSurfaceAllocSize,
                Key::Width => kIOSurfaceWidth,
                Key::Height => kIOSurfaceHeight,
                Key::BytesPerRow => kIOSurfaceBytesPerRow,
                Key::BytesPerElement => kIOSurfaceBytesPerElement,
                Key::PixelFormat => kIOSurfacePixelFormat,
            }
        }
    }

    /// `IOSurfaceAlignProperty(key, value)`: `value` rounded up to what IOSurface requires
    /// for this property.
    pub(crate) fn align(self, value: usize) -> usize {
        // SAFETY: a pure query on a framework key string.
        unsafe { IOSurfaceAlignProperty(self.get(), value) }
    }

    /// `IOSurfaceGetPropertyMaximum(key)`: the largest value IOSurface accepts for this
    /// property, 0 when there is no predefined limit.
    pub(crate) fn maximum(self) -> usize {
        // SAFETY: a pure query on a framework key string.
        unsafe { IOSurfaceGetPropertyMaximum(self.get()) }
    }
}

// ---------------------------------------------------------------------------------------
// IOSurface

/// One reference to an IOSurface (+1, from `IOSurfaceCreate` or `IOSurfaceLookup*`),
/// released exactly once when dropped. The CPU lock is the caller's business: a `Surface`
/// never locks or unlocks on its own.
pub(crate) struct Surface(NonNull<c_void>);

impl Surface {
    /// `IOSurfaceCreate(properties)`: a new surface, or `None` if IOSurface refused.
    pub(crate) fn create(properties: &Cf) -> Option<Surface> {
        fault_none!("IOSurfaceCreate");
        // SAFETY: `properties` is a live immutable CFDictionary; IOSurfaceCreate reads it
        // (it does not keep or release our reference) and returns +1 or NULL.
        NonNull::new(unsafe { IOSurfaceCreate(properties.as_ptr()) }).map(Surface)
    }

    /// `IOSurfaceLookupFromMachPort(port)`: the surface the send right names, or `None`.
    /// The port is not consumed.
    pub(crate) fn lookup_from_mach_port(port: mach_port_t) -> Option<Surface> {
        fault_none!("IOSurfaceLookupFromMachPort");
        // SAFETY: any port name may be passed; one that names no surface gives NULL. The
        // result is +1 or NULL, and the port right is left as it was.
        NonNull::new(unsafe { IOSurfaceLookupFromMachPort(port) }).map(Surface)
    }

    /// The borrowed `IOSurfaceRef` (no reference is added).
    pub(crate) fn as_ptr(&self) -> IOSurfaceRef {
        self.0.as_ptr()
    }

    /// `IOSurfaceLock(surface, options, NULL)`.
    pub(crate) fn lock(&self, options: IOSurfaceLockOptions) -> Result<(), kern_return_t> {
        fault!("IOSurfaceLock");
        // SAFETY: `self` holds a live surface; a NULL seed pointer is allowed (_Nullable).
        match unsafe { IOSurfaceLock(self.as_ptr(), options, ptr::null_mut()) } {
            KERN_SUCCESS => Ok(()),
            code => Err(code),
        }
    }

    /// `IOSurfaceUnlock(surface, options, NULL)`; `options` must be those of the lock.
    pub(crate) fn unlock(&self, options: IOSurfaceLockOptions) -> Result<(), kern_return_t> {
        fault!("IOSurfaceUnlock");
        // SAFETY: as for `lock`.
        match unsafe { IOSurfaceUnlock(self.as_ptr(), options, ptr::null_mut()) } {
            KERN_SUCCESS => Ok(()),
            code => Err(code),
        }
    }

    /// `IOSurfaceGetBaseAddress`: the first byte of the mapping in this process. (An
    /// injected value is an address without provenance, which the backend refuses before
    /// any use: tests inject 0 or an address off a page boundary, nothing else.)
    pub(crate) fn base_address(&self) -> *mut u8 {
        #[cfg(feature = "fault-injection")]
        if let Some(code) = crate::ffi::fault::hit("IOSurfaceGetBaseAddress") {
            return ptr::without_provenance_mut(code as usize);
        }
        // SAFETY: a getter on a live surface.
        unsafe { IOSurfaceGetBaseAddress(self.as_ptr()) }.cast()
    }

    /// `IOSurfaceGetAllocSize`: bytes allocated, which may exceed what was asked for.
    pub(crate) fn alloc_size(&self) -> usize {
        fault_value!("IOSurfaceGetAllocSize", usize);
        // SAFETY: a getter on a live surface.
        unsafe { IOSurfaceGetAllocSize(self.as_ptr()) }
    }

    /// `IOSurfaceGetID`.
    pub(crate) fn id(&self) -> IOSurfaceID {
        // SAFETY: a getter on a live surface.
        unsafe { IOSurfaceGetID(self.as_ptr()) }
    }

    /// `IOSurfaceGetWidth`.
    pub(crate) fn width(&self) -> usize {
        // SAFETY: a getter on a live surface.
        unsafe { IOSurfaceGetWidth(self.as_ptr()) }
    }

    /// `IOSurfaceGetHeight`.
    pub(crate) fn height(&self) -> usize {
        // SAFETY: a getter on a live surface.
        unsafe { IOSurfaceGetHeight(self.as_ptr()) }
    }

    /// `IOSurfaceGetBytesPerElement`.
    pub(crate) fn bytes_per_element(&self) -> usize {
        // SAFETY: a getter on a live surface.
        unsafe { IOSurfaceGetBytesPerElement(self.as_ptr()) }
    }

    /// `IOSurfaceGetBytesPerRow`.
    pub(crate) fn bytes_per_row(&self) -> usize {
        fault_value!("IOSurfaceGetBytesPerRow", usize);
        // SAFETY: a getter on a live surface.
        unsafe { IOSurfaceGetBytesPerRow(self.as_ptr()) }
    }

    /// `IOSurfaceGetPixelFormat`.
    pub(crate) fn pixel_format(&self) -> OSType {
        // SAFETY: a getter on a live surface.
        unsafe { IOSurfaceGetPixelFormat(self.as_ptr()) }
    }

    /// `IOSurfaceCreateMachPort`: a new send right to the surface, owned by the caller, or
    /// `None` (`MACH_PORT_NULL` or `MACH_PORT_DEAD`). Each live right holds a reference to
    /// the surface.
    pub(crate) fn create_mach_port(&self) -> Option<mach_port_t> {
        fault_none!("IOSurfaceCreateMachPort");
        // SAFETY: a live surface; the returned right is the caller's to deallocate.
        match unsafe { IOSurfaceCreateMachPort(self.as_ptr()) } {
            MACH_PORT_NULL | MACH_PORT_DEAD => None,
            port => Some(port),
        }
    }
}

impl Drop for Surface {
    fn drop(&mut self) {
        // SAFETY: `self` owns one reference to a live IOSurface (a CF type); it is released
        // once, here, and never used again.
        unsafe { CFRelease(self.as_ptr().cast_const()) };
    }
}

// ---------------------------------------------------------------------------------------
// Mach

/// `mach_task_self()`: this task's port (the C macro reads `mach_task_self_`).
fn task_self() -> mach_port_t {
    // SAFETY: libSystem sets `mach_task_self_` before any Rust code runs and changes it only
    // in a freshly forked child before that child runs anything else; a plain read of the
    // value, through a raw pointer (no reference to the `static mut` is formed).
    unsafe { (&raw const mach_task_self_).read() }
}

/// `mach_port_deallocate(mach_task_self(), port)`: releases one user reference of a send
/// right. It never touches this process's memory; a name this task does not hold is an
/// error (`KERN_INVALID_NAME`, `KERN_INVALID_RIGHT`) or, where the task's port-guard policy
/// is strict, a guard exception, so callers pass only names they own.
pub(crate) fn deallocate_port(port: mach_port_t) -> Result<(), kern_return_t> {
    // SAFETY: a Mach call with two integer arguments and no memory access on our side.
    match unsafe { mach_port_deallocate(task_self(), port) } {
        KERN_SUCCESS => Ok(()),
        code => Err(code),
    }
}

// ---------------------------------------------------------------------------------------
// Wiring (macOS mlock(2))

pub(crate) use super::os::{memlock_limit, mlock, munlock};

#[cfg(test)]
mod tests {
    use super::*;

    #[link(name = "CoreFoundation", kind = "framework")]
    unsafe extern "C" {
        fn CFGetRetainCount(cf: CFTypeRef) -> CFIndex;
        fn CFRetain(cf: CFTypeRef) -> CFTypeRef;
        fn CFDictionaryGetValue(dict: CFDictionaryRef, key: *const c_void) -> *const c_void;
    }

    /// Tagged-pointer objects (the top bit set on arm64) carry no retain count.
    fn tagged(object: CFTypeRef) -> bool {
        cfg!(target_arch = "aarch64") && (object as usize) >> 63 == 1
    }

    #[test]
    fn dictionary_owns_the_only_extra_reference_to_each_number() {
        // Values too large for a tagged CFNumber, so each is a real heap object.
        let values = [i64::MAX, i64::MAX - 1, i64::MAX - 2];
        let keys = [Key::AllocSize, Key::Width, Key::BytesPerRow];
        let numbers: Vec<Cf> = values.iter().map(|&v| number(v).unwrap()).collect();
        let entries: Vec<(Key, &Cf)> = keys.iter().copied().zip(&numbers).collect();
        let dict = dictionary(&entries).unwrap();
        // SAFETY: CF calls on live objects owned by this test.
        unsafe {
            assert_eq!(CFGetRetainCount(dict.as_ptr()), 1, "dictionary");
            for (key, number) in keys.iter().zip(&numbers) {
                let value = CFDictionaryGetValue(dict.as_ptr(), key.get());
                assert_eq!(value, number.as_ptr());
                assert!(!tagged(value), "expected a heap CFNumber");
                // Ours and the dictionary's.
                assert_eq!(CFGetRetainCount(value), 2);
            }
            // Keep one number alive past both releases, to see that exactly ours and the
            // dictionary's references go away.
            let kept = CFRetain(numbers[0].as_ptr());
            drop(dict);
            drop(numbers);
            assert_eq!(CFGetRetainCount(kept), 1);
            CFRelease(kept);
        }
    }

    #[test]
    fn keys_are_the_framework_strings() {
        for key in [
            Key::AllocSize,
            Key::Width,
            Key::Height,
            Key::BytesPerRow,
            Key::BytesPerElement,
            Key::PixelFormat,
        ] {
            assert!(!key.get().is_null(), "{key:?}");
        }
        assert!(Key::BytesPerRow.align(1000) >= 1000);
    }

    #[test]
    fn the_task_port_is_a_port() {
        assert_ne!(task_self(), MACH_PORT_NULL);
        assert_ne!(task_self(), MACH_PORT_DEAD);
    }
}

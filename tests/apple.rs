//! The IOSurface Block on macOS: contents, sizes, alignment, ids, the handle, the CPU lock's
//! balance through drop, mach-port round trips, the 2-D fp16 surface, and CoreFoundation
//! reference counts (no leaks).
//!
//! These tests compile everywhere `cargo clippy --target aarch64-apple-darwin` runs, but
//! only run on a Mac: in this project, on the `macos-14` CI job. Facts they rely on that
//! Apple documents (and nothing else) are cited beside each check; `specs/apple.md` lists
//! what has never been observed on hardware.

#![cfg(all(target_os = "macos", not(miri)))]

mod common;

use std::ffi::c_void;

use unimem::{
    Block, HugePages, IOSurfaceRef, MachPort, MemError, Pages, Pin, SurfaceShape, page_size,
};

const MIB: usize = 1 << 20;

type CFTypeRef = *const c_void;
type CFIndex = isize;

#[link(name = "CoreFoundation", kind = "framework")]
unsafe extern "C" {
    fn CFGetRetainCount(cf: CFTypeRef) -> CFIndex;
    fn CFRetain(cf: CFTypeRef) -> CFTypeRef;
    fn CFRelease(cf: CFTypeRef);
}

#[link(name = "IOSurface", kind = "framework")]
unsafe extern "C" {
    fn IOSurfaceGetID(buffer: IOSurfaceRef) -> u32;
    fn IOSurfaceGetAllocSize(buffer: IOSurfaceRef) -> usize;
    fn IOSurfaceGetBaseAddress(buffer: IOSurfaceRef) -> *mut c_void;
    fn IOSurfaceGetSeed(buffer: IOSurfaceRef) -> u32;
    fn IOSurfaceLock(buffer: IOSurfaceRef, options: u32, seed: *mut u32) -> i32;
    fn IOSurfaceUnlock(buffer: IOSurfaceRef, options: u32, seed: *mut u32) -> i32;
}

/// Opens a Block that need not be pinned: what these tests check does not depend on
/// whether macOS lets this process wire memory (`pin_required_pins_or_says_why` does).
fn open(size: usize) -> Block {
    Block::builder(size).pin(Pin::BestEffort).open().unwrap()
}

fn retain_count(surface: IOSurfaceRef) -> CFIndex {
    // SAFETY: the caller passes a live surface.
    unsafe { CFGetRetainCount(surface.cast_const()) }
}

#[test]
fn round_trip_is_zero_filled_and_keeps_data() {
    let mut block = open(MIB);
    assert_eq!(block.backend(), "apple iosurface");
    assert!(block.as_bytes().iter().all(|&b| b == 0));
    for (i, x) in block.as_slice_mut::<u64>().iter_mut().enumerate() {
        *x = i as u64 * 3;
    }
    let words = block.as_slice::<u64>();
    assert_eq!(words.len(), block.size() / 8);
    assert!(words.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
    block.as_f32_mut()[0] = 1.5;
    assert_eq!(block.as_f32()[0], 1.5);
    block.as_u16_mut()[7] = 0x3c00;
    assert_eq!(block.as_u16()[7], 0x3c00);
}

#[test]
fn pin_required_pins_or_says_why() {
    // `Block::open` is `Pin::Required`: pinned (mlock succeeded), or a precise refusal.
    // Either outcome is accepted on purpose: whether macOS lets this process wire 1 MiB
    // depends on the runner's wired limit, which the job does not set. The refusal itself
    // is made deterministic in `wire_refused_under_pin_required`.
    match Block::open(MIB) {
        Ok(block) => {
            assert!(block.is_pinned());
            eprintln!("mlock of a 1 MiB IOSurface: wired");
        }
        Err(err @ MemError::WireRefused { .. }) => {
            assert!(err.to_string().contains("Pin::BestEffort"));
            eprintln!("mlock of a 1 MiB IOSurface: refused: {err}");
        }
        Err(other) => panic!("unexpected error: {other:?}"),
    }
}

/// Huge pages and NUMA placement are Linux only (`specs/scale.md`, platform notes):
/// `Required` and any node are refused before a surface is made; `Try` gives base pages.
#[test]
fn huge_pages_and_numa_nodes_are_linux_only() {
    let err = Block::builder(MIB)
        .huge_pages(HugePages::Required)
        .pin(Pin::BestEffort)
        .open()
        .unwrap_err();
    assert!(
        matches!(
            err,
            MemError::HugePagesUnavailable {
                free: 0,
                shmem_enabled: "not linux",
                ..
            }
        ),
        "{err:?}"
    );
    let block = Block::builder(MIB)
        .huge_pages(HugePages::Try)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    assert_eq!(
        (block.pages(), block.page_size()),
        (Pages::Base, page_size())
    );
    let err = Block::builder(MIB)
        .numa_node(0)
        .pin(Pin::BestEffort)
        .open()
        .unwrap_err();
    assert!(
        matches!(err, MemError::BadNumaNode { node: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn alloc_size_covers_the_request_in_whole_pages() {
    let page = page_size();
    for asked in [1, page - 1, page, page + 1, 5 * page - 3, 3 * MIB] {
        let block = open(asked);
        assert!(block.size() >= asked, "asked {asked}, got {}", block.size());
        assert_eq!(block.size() % page, 0, "asked {asked}");
        // size() is IOSurfaceGetAllocSize.
        // SAFETY: the handle is live while `block` is.
        let alloc = unsafe { IOSurfaceGetAllocSize(block.handle()) };
        assert_eq!(alloc, block.size());
    }
    assert_eq!(Block::open(0).unwrap_err(), MemError::ZeroSize);
    assert!(matches!(
        Block::open(usize::MAX),
        Err(MemError::SizeOverflow { .. })
    ));
}

#[test]
fn address_is_page_aligned_and_is_the_surface_base() {
    let block = open(3 * page_size());
    let address = block.address();
    assert_eq!(address as usize % page_size(), 0);
    // SAFETY: the handle is live while `block` is.
    let base = unsafe { IOSurfaceGetBaseAddress(block.handle()) };
    assert_eq!(base.cast::<u8>(), address);
    let moved = block;
    assert_eq!(moved.address(), address);
}

#[test]
fn id_is_the_iosurface_id_and_unique() {
    let blocks: Vec<Block> = (0..16).map(|_| open(1)).collect();
    let mut ids: Vec<u32> = blocks.iter().map(|b| b.id()).collect();
    for block in &blocks {
        // SAFETY: the handle is live while `block` is.
        assert_eq!(unsafe { IOSurfaceGetID(block.handle()) }, block.id());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), blocks.len());
    assert!(!ids.contains(&0));
}

#[test]
fn handle_is_non_null_and_the_shape_is_flat() {
    let block = open(2 * page_size());
    assert!(!block.handle().is_null());
    let shape = block.shape();
    assert_eq!(shape.height, 1);
    assert_eq!(shape.bytes_per_element, 1);
    assert_eq!(shape.pixel_format, 0);
    assert_eq!(shape.width, 2 * page_size());
    assert!(shape.bytes_per_row >= shape.width);
    assert_eq!(block.bytes_per_row(), shape.bytes_per_row);
}

#[test]
fn drop_unlocks_exactly_what_open_locked() {
    let block = open(MIB);
    let surface = block.handle();
    // SAFETY: CF and IOSurface calls on a surface kept alive by the extra retain below.
    unsafe {
        CFRetain(surface.cast_const());
        let seed = IOSurfaceGetSeed(surface);
        drop(block);
        // "If you locked the buffer for writing, this value will be incremented as the
        // unlock is performed" (IOSurfaceUnlock docs): the Block's drop unlocked the
        // read-write lock its open took.
        let after_drop = IOSurfaceGetSeed(surface);
        assert_ne!(after_drop, seed, "drop did not unlock");
        // Balanced: a lock and unlock of our own still pair up, and increment again.
        assert_eq!(IOSurfaceLock(surface, 0, std::ptr::null_mut()), 0);
        assert_eq!(IOSurfaceUnlock(surface, 0, std::ptr::null_mut()), 0);
        assert_ne!(IOSurfaceGetSeed(surface), after_drop);
        CFRelease(surface.cast_const());
    }
}

/// The CPU lock given up for a hand-off to the Neural Engine and taken back: each change
/// is one unlock or lock (the seed moves on each unlock of a read-write lock), repeats do
/// nothing, and the drop of a Block that holds no lock unlocks nothing.
#[test]
fn the_cpu_lock_is_given_up_and_taken_back() {
    let mut block = Block::open_unlocked(MIB, Pin::BestEffort).unwrap();
    assert!(!block.is_cpu_locked());
    let surface = block.handle();
    // SAFETY: IOSurface and CF calls on a surface the Block (then the extra retain) keeps
    // alive.
    unsafe {
        CFRetain(surface.cast_const());
        let seed = IOSurfaceGetSeed(surface);
        block.unlock_cpu().unwrap();
        assert_eq!(
            IOSurfaceGetSeed(surface),
            seed,
            "a second unlock did something"
        );
        block.lock_cpu().unwrap();
        block.lock_cpu().unwrap();
        assert!(block.is_cpu_locked());
        block.as_bytes_mut()[0] = 7;
        block.unlock_cpu().unwrap();
        let unlocked = IOSurfaceGetSeed(surface);
        assert_ne!(unlocked, seed, "unlock_cpu did not unlock");
        drop(block);
        assert_eq!(
            IOSurfaceGetSeed(surface),
            unlocked,
            "drop unlocked a lock it did not hold"
        );
        CFRelease(surface.cast_const());
    }
}

#[test]
fn retain_counts_come_back_no_cf_leak() {
    let mut block = open(MIB);
    let surface = block.handle();
    let opened = retain_count(surface);
    assert!(opened >= 1);
    // Nothing the Block does afterwards adds a reference it does not give back.
    for _ in 0..8 {
        let port = block.mach_port().unwrap();
        let alias = Block::from_mach_port(&port, Pin::BestEffort);
        assert!(matches!(alias, Err(MemError::SurfaceInUse { .. })));
        drop(port);
        let _ = block.shape();
        block.as_bytes_mut()[0] ^= 1;
    }
    assert_eq!(retain_count(surface), opened);
    // The Block holds exactly one reference: with ours added, dropping it leaves ours.
    // SAFETY: CF calls on a surface kept alive by this retain until the release.
    unsafe {
        CFRetain(surface.cast_const());
        assert_eq!(retain_count(surface), opened + 1);
        drop(block);
        assert_eq!(retain_count(surface), opened);
        CFRelease(surface.cast_const());
    }
}

#[test]
fn mach_port_round_trip_within_the_process() {
    let mut block = open(3 * page_size());
    for (i, x) in block.as_slice_mut::<u32>().iter_mut().enumerate() {
        *x = (i as u32).wrapping_mul(2_654_435_761);
    }
    let (id, size) = (block.id(), block.size());
    let port = block.mach_port().unwrap();
    assert_ne!(port.as_raw(), 0);
    // While the owner lives, a second Block over the surface would alias it.
    assert_eq!(
        Block::from_mach_port(&port, Pin::BestEffort).unwrap_err(),
        MemError::SurfaceInUse { id }
    );
    drop(block);
    // "Returns a mach_port_t that holds a reference to the IOSurface"
    // (IOSurfaceCreateMachPort docs): the right kept the surface alive.
    let imported = Block::from_mach_port(&port, Pin::BestEffort).unwrap();
    drop(port);
    assert_eq!(imported.id(), id);
    assert_eq!(imported.size(), size);
    assert_eq!(imported.address() as usize % page_size(), 0);
    assert!(
        imported
            .as_slice::<u32>()
            .iter()
            .enumerate()
            .all(|(i, &x)| x == (i as u32).wrapping_mul(2_654_435_761))
    );
    assert_eq!(imported.shape().height, 1);
}

#[test]
fn a_port_that_names_no_surface_is_refused() {
    // SAFETY: MACH_PORT_NULL names no right; a MachPort of it gives nothing back on drop.
    let port = unsafe { MachPort::from_raw(0) };
    assert_eq!(
        Block::from_mach_port(&port, Pin::BestEffort).unwrap_err(),
        MemError::SurfaceLookupFailed { port: 0 }
    );
}

#[test]
fn mach_port_into_raw_and_back() {
    let block = open(1);
    let raw = block.mach_port().unwrap().into_raw();
    // SAFETY: `raw` is the send right `into_raw` gave up, owned by nothing else.
    let port = unsafe { MachPort::from_raw(raw) };
    assert_eq!(port.as_raw(), raw);
    assert!(format!("{port:?}").starts_with("MachPort(0x"));
}

#[test]
fn fp16_2d_surface_has_64_byte_rows() {
    let mut block = Block::open_fp16_2d(100, 3, Pin::BestEffort).unwrap();
    let shape = block.shape();
    assert_eq!(
        (shape.width, shape.height, shape.bytes_per_element),
        (100, 3, 2)
    );
    assert_eq!(shape.pixel_format, SurfaceShape::FP16);
    assert_eq!(shape.pixel_format, 0x4C30_3068);
    assert_eq!(shape.bytes_per_row % 64, 0);
    assert!(shape.bytes_per_row >= 200);
    assert!(block.size() >= shape.bytes_per_row * 3);
    assert_eq!(block.size() % page_size(), 0);
    assert_eq!(block.address() as usize % page_size(), 0);
    assert!(block.as_bytes().iter().all(|&b| b == 0));
    let pitch = block.bytes_per_row() / 2;
    for row in 0..3 {
        for col in 0..100 {
            block.as_u16_mut()[row * pitch + col] = (row * 1000 + col) as u16;
        }
    }
    assert_eq!(block.as_u16()[2 * pitch + 99], 2099);
}

#[test]
fn fp16_2d_bad_shapes_are_errors() {
    for (width, height) in [(0, 3), (3, 0), (usize::MAX, 1), (1 << 40, 1 << 40)] {
        assert!(
            matches!(
                Block::open_fp16_2d(width, height, Pin::BestEffort),
                Err(MemError::BadSurfaceShape { .. })
            ),
            "{width} x {height}"
        );
    }
}

#[test]
fn blocks_work_across_threads() {
    let block = open(MIB);
    let shared = &block;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(move || {
                assert!(shared.as_bytes().iter().all(|&b| b == 0));
                drop(shared.mach_port().unwrap());
            });
        }
    });
    let size = std::thread::spawn(move || block.size()).join().unwrap();
    assert!(size >= MIB);
}

// ---------------------------------------------------------------------------------------
// Every refusal, through fault injection (feature `fault-injection`), each in a child
// process of its own (the rules are process-wide); the ids and the CPU locks are checked
// to come back.

#[cfg(feature = "fault-injection")]
mod faults {
    use super::*;
    use common::in_child;
    use unimem::fault;

    /// Opens a flat Block of `size` bytes with `pin`, expecting `err`; no id may stay
    /// taken, and a Block opens again once the rules are gone.
    fn open_fails(size: usize, pin: Pin, err: MemError) {
        let ids = fault::live_ids();
        assert_eq!(Block::builder(size).pin(pin).open().unwrap_err(), err);
        assert_eq!(fault::live_ids(), ids, "an id was not given back");
        assert!(!err.to_string().is_empty());
        fault::reset();
        drop(open(size));
    }

    #[test]
    fn wire_refused_under_pin_required() {
        in_child("wire_refused_under_pin_required", || {
            fault::fail("mlock", 1, libc::EAGAIN);
            let ids = fault::live_ids();
            let err = Block::open(MIB).unwrap_err();
            assert!(
                matches!(err, MemError::WireRefused { requested, errno: libc::EAGAIN, .. } if requested == MIB),
                "{err:?}"
            );
            assert!(err.to_string().contains("Pin::BestEffort"), "{err}");
            assert_eq!(fault::live_ids(), ids);
            // Under BestEffort: a Block, not pinned, zero-filled.
            fault::fail("mlock", 1, libc::ENOMEM);
            let block = Block::builder(MIB).pin(Pin::BestEffort).open().unwrap();
            assert!(!block.is_pinned());
            assert!(block.as_bytes().iter().all(|&b| b == 0));
            assert_eq!(fault::calls("munlock"), 0);
        });
    }

    #[test]
    fn core_foundation_out_of_memory() {
        in_child("core_foundation_out_of_memory", || {
            for call in ["CFNumberCreate", "CFDictionaryCreate"] {
                fault::reset();
                fault::fail(call, 1, 0);
                open_fails(
                    MIB,
                    Pin::BestEffort,
                    MemError::Os {
                        call,
                        errno: libc::ENOMEM,
                    },
                );
            }
        });
    }

    #[test]
    fn iosurface_refuses_the_surface() {
        in_child("iosurface_refuses_the_surface", || {
            fault::fail("IOSurfaceCreate", 1, 0);
            let ids = fault::live_ids();
            let err = Block::builder(MIB).pin(Pin::BestEffort).open().unwrap_err();
            assert!(
                matches!(err, MemError::SurfaceRefused { requested, .. } if requested == MIB),
                "{err:?}"
            );
            assert_eq!(fault::live_ids(), ids);
        });
    }

    #[test]
    fn a_surface_smaller_or_not_whole_pages_is_refused() {
        in_child("a_surface_smaller_or_not_whole_pages_is_refused", || {
            let page = page_size();
            fault::fail("IOSurfaceGetAllocSize", 1, page as i32);
            open_fails(
                4 * page,
                Pin::BestEffort,
                MemError::SurfaceTooSmall {
                    requested: 4 * page,
                    actual: page,
                },
            );
            fault::fail("IOSurfaceGetAllocSize", 1, (page + 1) as i32);
            open_fails(
                page,
                Pin::BestEffort,
                MemError::SurfaceSizeUnaligned {
                    size: page + 1,
                    page,
                },
            );
        });
    }

    #[test]
    fn a_surface_address_off_a_page_is_refused() {
        in_child("a_surface_address_off_a_page_is_refused", || {
            let page = page_size();
            for address in [0, 64] {
                fault::reset();
                fault::fail("IOSurfaceGetBaseAddress", 1, address);
                open_fails(
                    page,
                    Pin::BestEffort,
                    MemError::SurfaceAddress {
                        address: address as usize,
                        page,
                    },
                );
            }
        });
    }

    #[test]
    fn a_2d_surface_with_short_rows_is_refused() {
        in_child("a_2d_surface_with_short_rows_is_refused", || {
            // 100 half floats need 200 bytes a row; IOSurface "made" 192.
            fault::fail("IOSurfaceGetBytesPerRow", 1, 192);
            let ids = fault::live_ids();
            assert_eq!(
                Block::open_fp16_2d(100, 3, Pin::BestEffort).unwrap_err(),
                MemError::SurfaceRowPitch {
                    bytes_per_row: 192,
                    min: 200,
                    align: 64
                }
            );
            assert_eq!(fault::live_ids(), ids);
        });
    }

    #[test]
    fn a_failed_cpu_lock_is_kern() {
        in_child("a_failed_cpu_lock_is_kern", || {
            // kIOReturnCannotLock (IOKit/IOReturn.h: iokit_common_err(0x2cc)).
            let code = 0xE000_02CC_u32 as i32;
            fault::fail("IOSurfaceLock", 1, code);
            open_fails(
                MIB,
                Pin::BestEffort,
                MemError::Kern {
                    call: "IOSurfaceLock",
                    code,
                },
            );
        });
    }

    #[test]
    fn a_failed_cpu_unlock_is_kern() {
        in_child("a_failed_cpu_unlock_is_kern", || {
            let code = 0xE000_02BC_u32 as i32; // kIOReturnError (IOKit/IOReturn.h)
            let err = MemError::Kern {
                call: "IOSurfaceUnlock",
                code,
            };
            // unlock_cpu: refused, and the lock is still held, so a later unlock works.
            let mut block = open(MIB);
            fault::fail("IOSurfaceUnlock", 1, code);
            assert_eq!(block.unlock_cpu().unwrap_err(), err);
            assert!(block.is_cpu_locked());
            block.unlock_cpu().unwrap();
            assert!(!block.is_cpu_locked());
            drop(block);
            // open_unlocked: refused, the Block dropped, its id given back.
            let ids = fault::live_ids();
            fault::fail("IOSurfaceUnlock", 1, code);
            assert_eq!(Block::open_unlocked(MIB, Pin::BestEffort).unwrap_err(), err);
            assert_eq!(fault::live_ids(), ids, "an id was not given back");
        });
    }

    #[test]
    fn no_mach_port_is_mach_port_failed() {
        in_child("no_mach_port_is_mach_port_failed", || {
            let block = open(MIB);
            fault::fail("IOSurfaceCreateMachPort", 1, 0);
            assert_eq!(
                block.mach_port().unwrap_err(),
                MemError::MachPortFailed { id: block.id() }
            );
            assert!(block.mach_port().is_ok());
        });
    }
}

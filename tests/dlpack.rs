//! DLPack export (feature `dlpack`): round trips through the C struct, what keeps the
//! memory alive whatever the order of drops, and every refusal.
#![cfg(feature = "dlpack")]

mod common;

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use unimem::dlpack::sys::{
    DLDataType, DLDevice, DLManagedTensorVersioned, DLPACK_FLAG_BITMASK_READ_ONLY, DLPackVersion,
    DLTensor, K_DL_CPU,
};
use unimem::dlpack::{DataType, Device, Tensor};
use unimem::{Block, Grid, MemError, Pin, Tape};

fn block(size: usize, name: &str) -> Block {
    Block::builder(size)
        .pin(Pin::BestEffort)
        .name(name)
        .open()
        .unwrap()
}

fn tape(size: usize) -> Arc<Tape> {
    Arc::new(Tape::over(block(size, "dlpack-tape")))
}

/// Reads `n` bytes at the tensor's data pointer.
fn bytes(t: &Tensor, n: usize) -> Vec<u8> {
    // SAFETY: every tensor here covers at least `n` bytes, mapped while it lives.
    unsafe { std::slice::from_raw_parts(t.data_ptr(), n).to_vec() }
}

#[test]
fn a_whole_block_round_trips_through_the_c_struct() {
    let mut b = block(8192, "dlpack-whole");
    b.as_bytes_mut()[..4].copy_from_slice(&[1, 2, 3, 4]);
    let address = b.address();
    let t = Tensor::from_block(b);
    let raw = t.into_raw();
    {
        // What a C consumer sees.
        // SAFETY: valid until the deleter runs.
        let m: &DLManagedTensorVersioned = unsafe { raw.as_ref() };
        assert_eq!(m.version, DLPackVersion { major: 1, minor: 1 });
        assert_eq!(m.flags, 0);
        assert!(!m.manager_ctx.is_null() && m.deleter.is_some());
        let d: &DLTensor = &m.dl_tensor;
        assert_eq!(d.data.cast::<u8>(), address);
        assert_eq!(d.byte_offset, 0);
        assert_eq!(
            d.device,
            DLDevice {
                device_type: K_DL_CPU,
                device_id: 0
            }
        );
        assert_eq!(d.ndim, 1);
        assert_eq!(
            d.dtype,
            DLDataType {
                code: 1,
                bits: 8,
                lanes: 1
            }
        );
        // SAFETY: one extent and one stride.
        unsafe {
            assert_eq!(*d.shape, 8192);
            assert_eq!(*d.strides, 1);
        }
    }
    // SAFETY: from `into_raw`, handed to no one.
    let back = unsafe { Tensor::from_raw(raw) }.unwrap();
    assert_eq!(bytes(&back, 4), [1, 2, 3, 4]);
    assert_eq!(back.nbytes(), 8192);
    assert_eq!(back.device(), Device::Cpu);
    assert!(!back.is_read_only());
    assert!(back.as_bytes().is_none()); // taken back: no views
    assert!(common::memfd_mapped("dlpack-whole"));
    drop(back);
    assert!(!common::memfd_mapped("dlpack-whole"));
}

#[test]
fn the_deleter_keeps_the_block_alive_whatever_drops_first() {
    let mut b = block(4096, "dlpack-shared");
    b.as_bytes_mut()[100] = 42;
    let shared = Arc::new(b);
    let t = Tensor::read_only(Arc::clone(&shared), 64..192).unwrap();
    assert!(t.is_read_only());
    assert_eq!(t.as_raw().flags & DLPACK_FLAG_BITMASK_READ_ONLY, 1);
    assert_eq!(t.as_bytes().unwrap()[36], 42);
    assert_eq!(Arc::strong_count(&shared), 2);
    // The owner goes first: the tensor still reads the bytes, from another thread too.
    drop(shared);
    assert!(common::memfd_mapped("dlpack-shared"));
    let raw = t.into_raw();
    let raw = SendPtr(raw);
    std::thread::spawn(move || {
        let raw = raw;
        // SAFETY: handed over to this thread, which deletes it.
        let t = unsafe { Tensor::from_raw(raw.0) }.unwrap();
        assert_eq!(bytes(&t, 128)[36], 42);
    })
    .join()
    .unwrap();
    assert!(!common::memfd_mapped("dlpack-shared"));
}

struct SendPtr(NonNull<DLManagedTensorVersioned>);
// SAFETY: a test hands a tensor to one other thread, which deletes it.
unsafe impl Send for SendPtr {}

#[test]
fn tape_takes_are_disjoint_and_hold_off_clear() {
    let mut tape = tape(1 << 16);
    let mut a = Tensor::take(&tape, 1000, 64).unwrap();
    let b = Tensor::take(&tape, 1000, 256).unwrap();
    assert_eq!(a.data_ptr() as usize % 64, 0);
    assert_eq!(b.data_ptr() as usize % 256, 0);
    assert!(a.data_ptr() as usize + 1000 <= b.data_ptr() as usize);
    assert!(a.as_bytes().unwrap().iter().all(|&x| x == 0));
    a.as_bytes_mut().unwrap().fill(7);
    assert_eq!(bytes(&a, 1000), vec![7; 1000]);
    // Tensors share the Tape: no `&mut`, so no clear, until they are deleted.
    assert!(Arc::get_mut(&mut tape).is_none());
    drop((a, b));
    Arc::get_mut(&mut tape).unwrap().clear();
    // Reused bytes come back zeroed.
    let a = Tensor::take(&tape, 1000, 64).unwrap();
    assert!(a.as_bytes().unwrap().iter().all(|&x| x == 0));
    // Refusals are the Tape's.
    assert_eq!(
        Tensor::take(&tape, 1 << 20, 8).unwrap_err(),
        MemError::TapeFull {
            requested: 1 << 20,
            align: 8,
            free: tape.free()
        }
    );
    assert_eq!(Tensor::take(&tape, 0, 8).unwrap_err(), MemError::ZeroSize);
    assert_eq!(
        Tensor::take(&tape, 8, 3).unwrap_err(),
        MemError::BadAlignment { align: 3 }
    );
}

#[test]
fn grid_cells_go_back_when_their_tensor_is_deleted() {
    let grid = Arc::new(Grid::builder(4096, 2).pin(Pin::BestEffort).open().unwrap());
    let mut a = Tensor::take_cell(&grid).unwrap();
    let b = Tensor::take_cell(&grid).unwrap();
    assert_eq!(
        Tensor::take_cell(&grid).unwrap_err(),
        MemError::GridFull { cells: 2 }
    );
    assert_eq!(grid.in_use(), 2);
    a.as_bytes_mut().unwrap().fill(1);
    assert_eq!(a.as_bytes().unwrap().len(), 4096);
    assert_ne!(a.data_ptr(), b.data_ptr());
    let raw = a.into_raw();
    // SAFETY: the consumer's side: call the deleter once.
    unsafe { (raw.as_ref().deleter.unwrap())(raw.as_ptr()) };
    assert_eq!(grid.in_use(), 1);
    drop(b);
    assert_eq!(grid.in_use(), 0);
    // A Grid hands out `&mut` cells from `&self`: never exported read-only whole.
    assert!(matches!(
        Tensor::read_only(Arc::clone(&grid), 0..64),
        Err(MemError::TapeNotFrozen {
            read_only: false,
            ..
        })
    ));
}

#[test]
fn views_describe_the_bytes_or_say_why_not() {
    let tape = tape(1 << 16);
    let t = Tensor::take(&tape, 4 * 6, 16).unwrap();
    let t = t.view(DataType::F32, &[2, 3]).unwrap();
    assert_eq!((t.shape(), t.strides()), (&[2i64, 3][..], &[3i64, 1][..]));
    assert_eq!(t.nbytes(), 24);
    assert_eq!(t.dtype(), DataType::F32);
    let t = t.view(DataType::F16, &[4, 0, 2]).unwrap(); // empty is fine
    assert_eq!(t.strides(), &[2, 2, 1]);
    let t = t.view(DataType::U8, &[]).unwrap(); // a scalar
    assert!(t.shape().is_empty() && t.nbytes() == 1);
    let reason = |r: Result<Tensor, MemError>| match r {
        Err(MemError::BadTensorView { reason, .. }) => reason,
        other => panic!("expected BadTensorView, got {other:?}"),
    };
    let fresh = || Tensor::take(&tape, 24, 16).unwrap();
    assert!(reason(fresh().view(DataType::F32, &[7])).contains("more bytes"));
    assert!(reason(fresh().view(DataType::F32, &[-1])).contains("negative"));
    assert!(reason(fresh().view(DataType::F32, &[i64::MAX, 4])).contains("overflows"));
    let nibble = DLDataType {
        code: 1,
        bits: 4,
        lanes: 1,
    };
    assert!(reason(fresh().view(nibble, &[2])).contains("whole number of bytes"));
    let one = Tensor::take(&tape, 1, 1).unwrap();
    let odd = Tensor::take(&tape, 8, 1).unwrap();
    assert!(reason(odd.view(DataType::U32, &[2])).contains("aligned"));
    drop(one);
}

#[test]
fn writable_exports_refuse_read_only_mappings_and_give_no_views() {
    let shared = Arc::new(block(4096, "dlpack-writable"));
    // SAFETY: nothing in this test makes a Rust view of the Block while the tensor lives.
    let mut t = unsafe { Tensor::writable(Arc::clone(&shared), 0..4096) }.unwrap();
    assert!(!t.is_read_only());
    assert!(t.as_bytes().is_none() && t.as_bytes_mut().is_none());
    // Ranges are checked.
    assert!(matches!(
        Tensor::read_only(Arc::clone(&shared), 4000..5000),
        Err(MemError::ReadOutOfBounds {
            offset: 4000,
            len: 1000,
            size: 4096,
            ..
        })
    ));
    assert_eq!(
        Tensor::read_only(Arc::clone(&shared), 10..10).unwrap_err(),
        MemError::ZeroSize
    );
}

#[test]
fn a_foreign_tensor_of_another_major_version_is_only_deleted() {
    static DELETED: AtomicUsize = AtomicUsize::new(0);
    unsafe extern "C" fn deleter(raw: *mut DLManagedTensorVersioned) {
        DELETED.fetch_add(1, Ordering::Relaxed);
        // SAFETY: made by `Box::into_raw` below.
        drop(unsafe { Box::from_raw(raw) });
    }
    let foreign = Box::new(DLManagedTensorVersioned {
        version: DLPackVersion { major: 2, minor: 0 },
        manager_ctx: std::ptr::null_mut(),
        deleter: Some(deleter),
        flags: 0,
        dl_tensor: DLTensor {
            data: std::ptr::null_mut(),
            device: DLDevice {
                device_type: K_DL_CPU,
                device_id: 0,
            },
            ndim: 0,
            dtype: DataType::U8,
            shape: std::ptr::null_mut(),
            strides: std::ptr::null_mut(),
            byte_offset: 0,
        },
    });
    let raw = NonNull::new(Box::into_raw(foreign)).unwrap();
    // SAFETY: a valid tensor whose ownership passes here.
    let err = unsafe { Tensor::from_raw(raw) }.unwrap_err();
    assert!(matches!(err, MemError::BadTensorView { .. }));
    assert_eq!(DELETED.load(Ordering::Relaxed), 1);
}

#[cfg(target_os = "linux")]
mod frozen {
    use std::os::unix::net::UnixStream;

    use unimem::Share;

    use super::*;

    #[test]
    fn only_frozen_read_only_memory_is_exported_read_only() {
        // A writable Tape's bytes may be `&mut` takes: refused; frozen: exported.
        let t = Tape::over(block(1 << 16, "dlpack-frozen"));
        t.take_slice::<u32>(4)
            .unwrap()
            .copy_from_slice(&[1, 2, 3, 4]);
        let t = Arc::new(t);
        assert!(matches!(
            Tensor::read_only(Arc::clone(&t), 0..16),
            Err(MemError::TapeNotFrozen {
                read_only: false,
                ..
            })
        ));
        let mut t = Arc::try_unwrap(t).unwrap();
        t.freeze().unwrap();
        let t = Arc::new(t);
        let x = Tensor::read_only(Arc::clone(&t), 0..16)
            .unwrap()
            .view(DataType::U32, &[4])
            .unwrap();
        assert!(x.is_read_only());
        assert_eq!(x.as_bytes().unwrap()[8], 3);

        // A read-only import: only once frozen.
        let owner = block(4096, "dlpack-import").into_read_only().unwrap();
        let (here, there) = UnixStream::pair().unwrap();
        owner.share().unwrap().send(&here).unwrap();
        let import =
            Block::import_read_only(Share::recv(&there).unwrap(), Pin::BestEffort).unwrap();
        let import = Arc::new(import);
        let id = import.id();
        assert_eq!(
            Tensor::read_only(Arc::clone(&import), 0..4096).unwrap_err(),
            MemError::NotFrozen {
                id,
                size: import.size()
            }
        );
        // SAFETY: refused before any tensor exists.
        let refused = unsafe { Tensor::writable(Arc::clone(&import), 0..4096) };
        assert!(matches!(refused, Err(MemError::NotWritable { .. })));
        let mut owner = owner;
        owner.freeze().unwrap();
        let x = Tensor::read_only(Arc::clone(&import), 0..4096).unwrap();
        assert!(x.is_read_only() && x.nbytes() == 4096);
    }
}

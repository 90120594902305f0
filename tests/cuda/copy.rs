//! Batched copies (issue 16): scattered Grid cells and Block ranges to device memory and
//! back, checked byte by byte: cells at the Block's end and at odd offsets, neighbours
//! merged, duplicates read twice and refused as destinations, lists longer than one call,
//! every path (batched, per copy, legacy stream, spread over engines), cells lent while in
//! flight, and every bad input. In child processes, with fault injection: a driver without
//! the batched call, and a call failing part way (the error says how much was copied).
//!
//! Like the rest of `tests/cuda.rs`, each test skips visibly without a GPU and fails with
//! `UNIMEM_REQUIRE_CUDA=1`.

use unimem::cuda::{
    Context, CopyOptions, CopyPath, CopyRange, DeviceMemory, Driver, Fallback, InFlight, Stream,
};
use unimem::{CellId, Grid, MemError, Pin, Tape};

use super::{MIB, common, gpu};

/// Byte `j` of cell `i` before any copy.
fn cell_byte(i: u32, j: usize) -> u8 {
    (i as usize * 131 + j * 7 + (j >> 9)) as u8
}

/// Byte `j` of device slot `k` when the device side is the source.
fn device_byte(k: usize, j: usize) -> u8 {
    (k * 29 + j * 13 + 5) as u8
}

/// A Grid of `cells` cells of `cell` bytes in a Block of its own (so, for a page-multiple
/// total, the last cell ends at the Block's end), every cell taken (indices in order),
/// filled with `cell_byte`, and the Block registered and kept.
fn kv(driver: &Driver, cell: usize, cells: usize) -> (Grid, Vec<CellId>) {
    let mut grid = Grid::builder(cell, cells)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    let ids: Vec<CellId> = (0..cells).map(|_| grid.take().unwrap().into_id()).collect();
    for &id in &ids {
        for (j, b) in grid.cell_mut(id).unwrap().iter_mut().enumerate() {
            *b = cell_byte(id.index(), j);
        }
    }
    grid.tape().block().register_cuda(driver, 0).unwrap().keep();
    (grid, ids)
}

/// The device memory's bytes, read back synchronously.
fn read(context: &Context, memory: &DeviceMemory<'_>) -> Vec<u8> {
    let mut out = vec![0u8; memory.size()];
    // SAFETY: `out` is ours and as long as the device memory, which nothing else uses.
    unsafe {
        context
            .copy_to_host(out.as_mut_ptr(), memory.device_ptr(), memory.size())
            .unwrap();
    }
    out
}

/// Fills device memory with `device_byte`, slot by slot of `slot` bytes.
fn fill_device(context: &Context, memory: &DeviceMemory<'_>, slot: usize) {
    let data: Vec<u8> = (0..memory.size())
        .map(|b| device_byte(b / slot, b % slot))
        .collect();
    // SAFETY: `data` is only read; the device memory is ours and unused meanwhile.
    unsafe {
        context
            .copy_to_device(memory.device_ptr(), data.as_ptr(), data.len())
            .unwrap();
    }
}

/// The path a copy takes on a non-legacy stream with default options on this driver.
fn batch_or_fallback(driver: &Driver) -> CopyPath {
    match driver.batch_copy() {
        Some(symbol) => CopyPath::Batch { symbol },
        None => CopyPath::PerCopy {
            why: Fallback::NoBatchCall,
        },
    }
}

/// The cells `order` (indices into `ids`) to consecutive slots of `memory`.
fn list(
    ids: &[CellId],
    order: &[usize],
    memory: &DeviceMemory<'_>,
    slot: usize,
) -> Vec<(CellId, u64)> {
    order
        .iter()
        .enumerate()
        .map(|(k, &i)| (ids[i], memory.device_ptr() + (k * slot) as u64))
        .collect()
}

/// Checks that slot `k` of `device` holds cell `ids[order[k]]`'s initial bytes.
fn assert_slots_hold_cells(device: &[u8], ids: &[CellId], order: &[usize], slot: usize) {
    for (k, &i) in order.iter().enumerate() {
        let got = &device[k * slot..(k + 1) * slot];
        let index = ids[i].index();
        assert!(
            got.iter()
                .enumerate()
                .all(|(j, &b)| b == cell_byte(index, j)),
            "device slot {k} does not hold cell {index}"
        );
    }
}

/// Waits for a copy and returns its report.
fn done(copy: InFlight<'_>) -> unimem::cuda::CopyReport {
    copy.wait().unwrap()
}

#[test]
fn scattered_cells_reach_the_device_and_come_back() {
    let Some(driver) = gpu("copy::scattered_cells_reach_the_device_and_come_back") else {
        return;
    };
    let cell = 16 << 10;
    let (mut grid, ids) = kv(&driver, cell, 64);
    assert_eq!(
        grid.cell_offset(63).unwrap() + cell,
        grid.tape().block().size(),
        "the last cell ends at the Block's end"
    );
    let context = driver.device(0).unwrap().context().unwrap();
    let stream = context.stream().unwrap();
    // Scattered, with the last cell, the first, and one pair of neighbours (6, 7).
    let order = [63, 5, 17, 6, 7, 40, 0, 62, 33];
    let memory = context.alloc(order.len() * cell).unwrap();
    let up = list(&ids, &order, &memory, cell);
    // SAFETY: the device memory is ours, its slots are disjoint, nothing else uses it.
    let copy = unsafe { stream.cells_to_device(&grid, &up).unwrap() };
    let report = done(copy);
    assert_eq!(report.path, batch_or_fallback(&driver));
    assert_eq!((report.entries, report.copies), (9, 8), "6 and 7 merged");
    assert_eq!(report.bytes, (9 * cell) as u64);
    assert_eq!(
        report.calls,
        if driver.batch_copy().is_some() { 1 } else { 8 }
    );
    assert_slots_hold_cells(&read(&context, &memory), &ids, &order, cell);

    // Back: other device bytes into other cells, the last one among them.
    fill_device(&context, &memory, cell);
    let back = [63, 2, 9, 10, 11, 50, 31, 1, 0];
    let down = list(&ids, &back, &memory, cell);
    // SAFETY: as above; the device side is only read.
    let copy = unsafe { stream.cells_to_host(&grid, &down).unwrap() };
    let report = done(copy);
    assert_eq!((report.entries, report.copies), (9, 7), "9, 10, 11 merged");
    for (i, &id) in ids.iter().enumerate() {
        let bytes = grid.cell_mut(id).unwrap();
        match back.iter().position(|&b| b == i) {
            Some(k) => assert!(
                bytes
                    .iter()
                    .enumerate()
                    .all(|(j, &b)| b == device_byte(k, j)),
                "cell {i} does not hold device slot {k}"
            ),
            None => assert!(
                bytes
                    .iter()
                    .enumerate()
                    .all(|(j, &b)| b == cell_byte(i as u32, j)),
                "cell {i} was not in the list but changed"
            ),
        }
    }
}

#[test]
fn cells_at_odd_offsets_and_sizes() {
    let Some(driver) = gpu("copy::cells_at_odd_offsets_and_sizes") else {
        return;
    };
    // A header before the cells, and cells of 4160 bytes: neither is a page multiple.
    let tape = Tape::over(
        unimem::Block::builder(2 * MIB)
            .pin(Pin::BestEffort)
            .open()
            .unwrap(),
    );
    let _header = tape.take(1000, 8).unwrap();
    let mut grid = Grid::over(tape, 4100, 100).unwrap();
    let cell = grid.cell_size();
    assert_eq!(cell, 4160);
    let ids: Vec<CellId> = (0..100).map(|_| grid.take().unwrap().into_id()).collect();
    for &id in &ids {
        for (j, b) in grid.cell_mut(id).unwrap().iter_mut().enumerate() {
            *b = cell_byte(id.index(), j);
        }
    }
    grid.tape()
        .block()
        .register_cuda(&driver, 0)
        .unwrap()
        .keep();
    let context = driver.device(0).unwrap().context().unwrap();
    let stream = context.stream().unwrap();
    let order = [99, 3, 4, 5, 98, 0, 50];
    let memory = context.alloc(order.len() * cell).unwrap();
    let up = list(&ids, &order, &memory, cell);
    // SAFETY: our device memory, disjoint slots.
    let report = done(unsafe { stream.cells_to_device(&grid, &up).unwrap() });
    assert_eq!(report.copies, 5, "3, 4, 5 merged");
    assert_slots_hold_cells(&read(&context, &memory), &ids, &order, cell);
}

#[test]
fn duplicates_are_read_twice_and_never_written_twice() {
    let Some(driver) = gpu("copy::duplicates_are_read_twice_and_never_written_twice") else {
        return;
    };
    let cell = 4096;
    let (mut grid, ids) = kv(&driver, cell, 16);
    let context = driver.device(0).unwrap().context().unwrap();
    let stream = context.stream().unwrap();
    let order = [3, 3, 8, 3];
    let memory = context.alloc(order.len() * cell).unwrap();
    let up = list(&ids, &order, &memory, cell);
    // SAFETY: our device memory, disjoint slots.
    let report = done(unsafe { stream.cells_to_device(&grid, &up).unwrap() });
    assert_eq!(report.entries, 4);
    assert_slots_hold_cells(&read(&context, &memory), &ids, &order, cell);
    grid.cell(ids[3]).unwrap(); // given back once, current

    // Written twice: refused before anything moves; the cells stay usable.
    fill_device(&context, &memory, cell);
    // SAFETY: as above.
    let err = unsafe { stream.cells_to_host(&grid, &up) }.unwrap_err();
    assert_eq!(
        err,
        MemError::CopyOverlap {
            first: 0,
            second: 1,
            device: false
        }
    );
    assert!(
        grid.cell_mut(ids[3])
            .unwrap()
            .iter()
            .enumerate()
            .all(|(j, &b)| b == cell_byte(3, j)),
        "nothing was copied"
    );
    // Overlapping device destinations: refused too.
    let overlapping = [
        (ids[1], memory.device_ptr()),
        (ids[2], memory.device_ptr() + (cell / 2) as u64),
    ];
    // SAFETY: as above (refused anyway).
    let err = unsafe { stream.cells_to_device(&grid, &overlapping) }.unwrap_err();
    assert_eq!(
        err,
        MemError::CopyOverlap {
            first: 0,
            second: 1,
            device: true
        }
    );
    for id in ids {
        grid.release(id).unwrap();
    }
}

#[test]
fn cells_are_lent_until_the_copy_is_seen_done() {
    let Some(driver) = gpu("copy::cells_are_lent_until_the_copy_is_seen_done") else {
        return;
    };
    let cell = 64 << 10;
    let (grid, ids) = kv(&driver, cell, 32);
    let context = driver.device(0).unwrap().context().unwrap();
    let stream = context.stream().unwrap();
    let other = context.stream().unwrap();
    let order: Vec<usize> = (0..32).rev().collect();
    let memory = context.alloc(order.len() * cell).unwrap();
    let up = list(&ids, &order, &memory, cell);
    // SAFETY: our device memory, disjoint slots.
    let mut copy = unsafe { stream.cells_to_device(&grid, &up).unwrap() };
    // Until the copy is seen done, whatever the GPU's progress, the ids are refused.
    for &id in &ids {
        assert_eq!(
            grid.release(id).unwrap_err(),
            MemError::CellInFlight {
                grid: grid.id(),
                index: id.index()
            }
        );
    }
    // A second copy of the same cells is refused too.
    // SAFETY: as above (refused).
    let second = unsafe { stream.cells_to_device(&grid, &up[..1]) };
    assert!(matches!(second, Err(MemError::CellInFlight { .. })));
    other.wait_for(&copy).unwrap();
    assert_ne!(copy.event(), 0);
    while !copy.poll().unwrap() {
        std::hint::spin_loop();
    }
    assert!(copy.poll().unwrap(), "done stays done");
    grid.cell(ids[0]).unwrap(); // given back at the first `true`
    other.synchronize().unwrap();
    assert!(other.is_idle().unwrap());
    let report = copy.wait().unwrap();
    assert_eq!(report.copies, 32);
    assert_slots_hold_cells(&read(&context, &memory), &ids, &order, cell);
    for id in ids {
        grid.release(id).unwrap();
    }
    assert_eq!(grid.free(), 32);
}

#[test]
fn every_path_moves_the_same_bytes() {
    let Some(driver) = gpu("copy::every_path_moves_the_same_bytes") else {
        return;
    };
    let cell = 16 << 10;
    let (grid, ids) = kv(&driver, cell, 48);
    let context = driver.device(0).unwrap().context().unwrap();
    let order: Vec<usize> = (0..24).map(|k| (k * 7) % 48).collect();
    let memory = context.alloc(order.len() * cell).unwrap();
    let up = list(&ids, &order, &memory, cell);
    let streams: Vec<(Stream<'_>, CopyPath, usize)> = vec![
        (context.stream().unwrap(), batch_or_fallback(&driver), 1),
        (
            context
                .stream()
                .unwrap()
                .with_options(CopyOptions::new().per_copy(true)),
            CopyPath::PerCopy {
                why: Fallback::Asked,
            },
            1,
        ),
        (
            context.legacy_stream(),
            CopyPath::PerCopy {
                why: Fallback::LegacyStream,
            },
            1,
        ),
        (context.per_thread_stream(), batch_or_fallback(&driver), 1),
        (
            context
                .stream()
                .unwrap()
                .with_options(CopyOptions::new().engines(3)),
            batch_or_fallback(&driver),
            3,
        ),
        (
            context
                .stream()
                .unwrap()
                .with_options(CopyOptions::new().engines(4).per_copy(true)),
            CopyPath::PerCopy {
                why: Fallback::Asked,
            },
            4,
        ),
    ];
    for (n, (stream, path, engines)) in streams.iter().enumerate() {
        // SAFETY: 0 bytes everywhere first, by a synchronous fill of our memory.
        unsafe {
            context
                .memset_d8(memory.device_ptr(), 0, memory.size())
                .unwrap()
        };
        // SAFETY: our device memory, disjoint slots.
        let report = done(unsafe { stream.cells_to_device(&grid, &up).unwrap() });
        assert_eq!(report.path, *path, "stream {n}");
        assert_eq!(report.engines, *engines, "stream {n}");
        assert_slots_hold_cells(&read(&context, &memory), &ids, &order, cell);
    }
}

#[test]
fn long_lists_are_cut_into_calls() {
    let Some(driver) = gpu("copy::long_lists_are_cut_into_calls") else {
        return;
    };
    let context = driver.device(0).unwrap().context().unwrap();
    // A chosen limit: 64 cells, 7 to a call.
    let cell = 4096;
    let (grid, ids) = kv(&driver, cell, 64);
    let order: Vec<usize> = (0..64).collect();
    let memory = context.alloc(64 * cell).unwrap();
    let up = list(&ids, &order, &memory, cell);
    let stream = context
        .stream()
        .unwrap()
        .with_options(CopyOptions::new().coalesce(false).max_batch(7));
    // SAFETY: our device memory, disjoint slots.
    let report = done(unsafe { stream.cells_to_device(&grid, &up).unwrap() });
    if driver.batch_copy().is_some() {
        assert_eq!(report.calls, 10);
    }
    assert_eq!(report.copies, 64);
    assert_slots_hold_cells(&read(&context, &memory), &ids, &order, cell);
    drop(stream);
    drop(memory);

    // The default limit: one entry more than a call carries, 64-byte cells.
    let n = CopyOptions::MAX_BATCH + 1;
    let (grid, ids) = kv(&driver, 64, n);
    // Every other slot, so nothing merges.
    let memory_big = context.alloc(2 * n * 64).unwrap();
    let up: Vec<(CellId, u64)> = ids
        .iter()
        .enumerate()
        .map(|(k, &id)| (id, memory_big.device_ptr() + (2 * k * 64) as u64))
        .collect();
    let stream = context.stream().unwrap();
    // SAFETY: our device memory, disjoint slots.
    let report = done(unsafe { stream.cells_to_device(&grid, &up).unwrap() });
    assert_eq!(report.copies, n);
    if driver.batch_copy().is_some() {
        assert_eq!(report.calls, 2);
    }
    let device = read(&context, &memory_big);
    for (k, &id) in ids.iter().enumerate() {
        let got = &device[2 * k * 64..2 * k * 64 + 64];
        assert!(
            got.iter()
                .enumerate()
                .all(|(j, &b)| b == cell_byte(id.index(), j)),
            "slot {k}"
        );
    }
}

#[test]
fn tape_ranges_move_both_ways() {
    let Some(driver) = gpu("copy::tape_ranges_move_both_ways") else {
        return;
    };
    let tape = Tape::over(
        unimem::Block::builder(MIB)
            .pin(Pin::BestEffort)
            .open()
            .unwrap(),
    );
    let size = tape.block().size();
    let data = tape.take_slice::<u8>(size - 4096).unwrap();
    for (i, b) in data.iter_mut().enumerate() {
        *b = cell_byte(7, i);
    }
    let base = tape.offset_of(data.as_ptr()).unwrap();
    tape.block().register_cuda(&driver, 0).unwrap().keep();
    let context = driver.device(0).unwrap().context().unwrap();
    let stream = context.stream().unwrap();
    let memory = context.alloc(64 << 10).unwrap();
    let d = memory.device_ptr();
    // Odd offsets and lengths, one ending at the Block's last byte.
    let ranges = [
        CopyRange::new(base + 3, 1000, d),
        CopyRange::new(base + 5000, 12_345, d + 1000),
        CopyRange::new(size - 777, 777, d + 20_000),
    ];
    // SAFETY: our device memory, disjoint; the Tape's bytes are not written meanwhile.
    let report = done(unsafe { stream.to_device(tape.block(), &ranges).unwrap() });
    assert_eq!(report.entries, 3);
    let device = read(&context, &memory);
    // SAFETY: the whole Block is readable; nothing writes it now.
    let block = unsafe { std::slice::from_raw_parts(tape.block().address(), size) };
    for r in &ranges {
        let at = (r.device - d) as usize;
        assert!(device[at..at + r.len] == block[r.offset..r.offset + r.len]);
    }

    // Device to host, into the last 777 bytes and an odd range.
    fill_device(&context, &memory, 1 << 20);
    let back = [
        CopyRange::new(size - 777, 777, d + 100),
        CopyRange::new(base + 10, 50, d + 9000),
    ];
    // SAFETY: no reference to those host bytes is used until the copy completes.
    done(unsafe { stream.to_host(tape.block(), &back).unwrap() });
    // SAFETY: as above; the copy is done.
    let block = unsafe { std::slice::from_raw_parts(tape.block().address(), size) };
    for r in &back {
        let at = (r.device - d) as usize;
        assert!(
            (0..r.len).all(|j| block[r.offset + j] == device_byte(0, at + j)),
            "{r:?}"
        );
    }

    // Bad ranges, refused before anything moves.
    let bad = [
        (
            [CopyRange::new(size - 10, 11, d)],
            MemError::CopyOutOfRange {
                entry: 0,
                start: (size - 10) as u64,
                len: 11,
                limit: size as u64,
                device: false,
            },
        ),
        ([CopyRange::new(0, 0, d)], MemError::ZeroSize),
        (
            [CopyRange::new(0, 16, u64::MAX - 8)],
            MemError::CopyOutOfRange {
                entry: 0,
                start: u64::MAX - 8,
                len: 16,
                limit: u64::MAX,
                device: true,
            },
        ),
    ];
    for (ranges, err) in bad {
        // SAFETY: refused before any device access.
        let got = unsafe { stream.to_host(tape.block(), &ranges) }.unwrap_err();
        assert_eq!(got, err);
    }
    let overlapping = [CopyRange::new(0, 100, d), CopyRange::new(50, 100, d + 4096)];
    // SAFETY: refused before any device access.
    let err = unsafe { stream.to_host(tape.block(), &overlapping) }.unwrap_err();
    assert_eq!(
        err,
        MemError::CopyOverlap {
            first: 0,
            second: 1,
            device: false
        }
    );
}

#[test]
fn bad_lists_are_refused_before_anything_moves() {
    let Some(driver) = gpu("copy::bad_lists_are_refused_before_anything_moves") else {
        return;
    };
    let context = driver.device(0).unwrap().context().unwrap();
    let stream = context.stream().unwrap();
    let memory = context.alloc(MIB).unwrap();
    let d = memory.device_ptr();

    // A Grid whose Block keeps no registration.
    let plain = Grid::builder(4096, 4).pin(Pin::BestEffort).open().unwrap();
    let id = plain.take().unwrap().into_id();
    // SAFETY: refused before any device access.
    let err = unsafe { stream.cells_to_device(&plain, &[(id, d)]) }.unwrap_err();
    assert_eq!(
        err,
        MemError::CudaNotRegistered {
            id: plain.tape().block().id(),
            size: plain.tape().block().size(),
        }
    );

    let (grid, ids) = kv(&driver, 4096, 8);
    // Foreign, stale, overflowing.
    // SAFETY: refused before any device access, as every call below.
    let err = unsafe { stream.cells_to_device(&grid, &[(ids[0], d), (id, d + 4096)]) };
    assert_eq!(
        err.unwrap_err(),
        MemError::ForeignCell {
            grid: grid.id(),
            owner: plain.id()
        }
    );
    grid.release(ids[7]).unwrap();
    // SAFETY: as above.
    let err = unsafe { stream.cells_to_host(&grid, &[(ids[1], d), (ids[7], d + 4096)]) };
    assert!(matches!(err, Err(MemError::StaleCell { index: 7, .. })));
    // SAFETY: as above.
    let err = unsafe { stream.cells_to_device(&grid, &[(ids[1], u64::MAX - 100)]) };
    assert!(matches!(
        err,
        Err(MemError::CopyOutOfRange { device: true, .. })
    ));
    // Nothing stayed lent.
    for &id in &ids[..7] {
        grid.cell(id).unwrap();
    }

    // A stream of another device's context, where there is another device.
    if driver.device_count().unwrap() > 1 {
        let other = driver.device(1).unwrap().context().unwrap();
        let foreign_stream = other.stream().unwrap();
        // SAFETY: refused before any device access.
        let err = unsafe { foreign_stream.cells_to_device(&grid, &[(ids[0], d)]) };
        assert_eq!(
            err.unwrap_err(),
            MemError::CudaStreamContext {
                stream_device: 1,
                block_device: 0
            }
        );
    }
}

/// A copy to the host into a Block this process may not write (a read-only import, a
/// Block made read-only, a frozen one) is refused before anything moves (`NotWritable`):
/// the device would fault there. Copies from it to the device work.
#[cfg(target_os = "linux")]
#[test]
fn copies_into_a_block_this_process_may_not_write_are_refused() {
    let Some(driver) = gpu("copy::copies_into_a_block_this_process_may_not_write_are_refused")
    else {
        return;
    };
    let context = driver.device(0).unwrap().context().unwrap();
    let stream = context.stream().unwrap();
    let memory = context.alloc(64 << 10).unwrap();
    let d = memory.device_ptr();
    let owner = || {
        let mut block = unimem::Block::builder(MIB)
            .pin(Pin::BestEffort)
            .open()
            .unwrap();
        for (i, b) in block.as_bytes_mut().iter_mut().enumerate() {
            *b = cell_byte(9, i);
        }
        block
    };
    // A read-only import of a read-write share (the owner gone): no seal on the file, but
    // this process mapped it read-only.
    let share = common::share_read_write(&owner()).unwrap();
    let import = unimem::Block::import_read_only(share, Pin::BestEffort).unwrap();
    // The Block made read-only by its owner: sealed against new writers, not frozen.
    let read_only = owner().into_read_only().unwrap();
    // A frozen Block.
    let frozen = owner().freeze().unwrap();
    assert!(frozen.is_frozen() && !read_only.is_frozen() && !import.is_frozen());
    for (block, sealed) in [(&import, false), (&read_only, true), (&frozen, true)] {
        let registered = block.register_cuda(&driver, 0).unwrap();
        assert!(registered.is_read_only());
        registered.keep();
        let ranges = [
            CopyRange::new(0, 4096, d),
            CopyRange::new(MIB - 100, 100, d + 8192),
        ];
        // SAFETY: our device memory, disjoint; nothing writes the Block.
        unsafe {
            context.memset_d8(d, 0, memory.size()).unwrap();
            done(stream.to_device(block, &ranges).unwrap());
        }
        let device = read(&context, &memory);
        for r in &ranges {
            let at = (r.device - d) as usize;
            assert!(
                (0..r.len).all(|j| device[at + j] == cell_byte(9, r.offset + j)),
                "{r:?} read from a read-only Block"
            );
        }
        // SAFETY: refused before any device access.
        let err = unsafe { stream.to_host(block, &ranges) }.unwrap_err();
        assert_eq!(
            err,
            MemError::NotWritable {
                id: block.id(),
                sealed
            }
        );
        assert_eq!(err.kind(), unimem::ErrorKind::AccessDenied);
        let mut bytes = vec![0u8; MIB];
        block.read_into(0, &mut bytes).unwrap();
        assert!(
            bytes.iter().enumerate().all(|(i, &b)| b == cell_byte(9, i)),
            "nothing was written"
        );
    }
}

/// Fault injection, in processes of their own (the rules are process-wide).
#[cfg(feature = "fault-injection")]
mod faults {
    use super::*;
    use unimem::fault;

    /// Runs `test` in a child where there is a GPU.
    fn in_child(test: &str) -> bool {
        if common::is_child(test) {
            return true;
        }
        if gpu(test).is_some() {
            common::assert_child_passes(test);
        }
        false
    }

    #[test]
    fn a_driver_without_the_batched_call_copies_one_range_at_a_time() {
        if !in_child("copy::faults::a_driver_without_the_batched_call_copies_one_range_at_a_time") {
            return;
        }
        // As on a driver older than 12.8: neither export is found. Not a load failure.
        fault::fail_always("dlsym cuMemcpyBatchAsync_v2", 1);
        fault::fail_always("dlsym cuMemcpyBatchAsync", 1);
        let driver = Driver::load().unwrap();
        assert_eq!(driver.batch_copy(), None);
        let cell = 16 << 10;
        let (grid, ids) = kv(&driver, cell, 16);
        let context = driver.device(0).unwrap().context().unwrap();
        let stream = context.stream().unwrap();
        let order = [15, 2, 3, 9];
        let memory = context.alloc(order.len() * cell).unwrap();
        let up = list(&ids, &order, &memory, cell);
        // SAFETY: our device memory, disjoint slots.
        let report = done(unsafe { stream.cells_to_device(&grid, &up).unwrap() });
        assert_eq!(
            report.path,
            CopyPath::PerCopy {
                why: Fallback::NoBatchCall
            }
        );
        assert_eq!((report.copies, report.calls), (3, 3));
        assert_eq!(fault::calls("cuMemcpyHtoDAsync_v2"), 3);
        assert_slots_hold_cells(&read(&context, &memory), &ids, &order, cell);
        fault::reset();
    }

    #[test]
    fn a_call_failing_part_way_says_how_much_was_copied() {
        if !in_child("copy::faults::a_call_failing_part_way_says_how_much_was_copied") {
            return;
        }
        let driver = Driver::load().unwrap();
        let cell = 4096;
        let (grid, ids) = kv(&driver, cell, 10);
        let context = driver.device(0).unwrap().context().unwrap();
        let order: Vec<usize> = (0..10).rev().collect();
        let memory = context.alloc(order.len() * cell).unwrap();
        let up = list(&ids, &order, &memory, cell);
        let options = CopyOptions::new().coalesce(false).max_batch(4);

        // The second batched call (or the third per-copy call) fails with
        // CUDA_ERROR_INVALID_VALUE: the first call's entries are copied, and said so.
        let (call, copied) = match driver.batch_copy() {
            Some(symbol) => (symbol, 4),
            None => ("cuMemcpyHtoDAsync_v2", 2),
        };
        let nth = if driver.batch_copy().is_some() { 2 } else { 3 };
        let stream = context.stream().unwrap().with_options(options);
        // SAFETY: 0 everywhere first.
        unsafe {
            context
                .memset_d8(memory.device_ptr(), 0, memory.size())
                .unwrap()
        };
        fault::fail(call, nth, 1);
        // SAFETY: our device memory, disjoint slots.
        let err = unsafe { stream.cells_to_device(&grid, &up) }.unwrap_err();
        assert_eq!(
            err,
            MemError::CudaCopyFailed {
                call,
                code: 1,
                name: "CUDA_ERROR_INVALID_VALUE",
                copied,
                entries: 10,
            }
        );
        assert!(
            err.to_string().contains(&format!("first {copied} of 10")),
            "{err}"
        );
        let device = read(&context, &memory);
        assert_slots_hold_cells(&device, &ids, &order[..copied], cell);
        assert!(
            device[copied * cell..].iter().all(|&b| b == 0),
            "the rest not copied"
        );
        for &id in &ids {
            grid.cell(id).unwrap(); // every cell given back
        }

        // The same with the per-copy path forced: the third call fails.
        let stream = context
            .stream()
            .unwrap()
            .with_options(options.per_copy(true));
        fault::fail("cuMemcpyHtoDAsync_v2", 3, 1);
        // SAFETY: as above.
        let err = unsafe { stream.cells_to_device(&grid, &up) }.unwrap_err();
        assert!(matches!(
            err,
            MemError::CudaCopyFailed {
                copied: 2,
                entries: 10,
                ..
            }
        ));

        // The completion event cannot be recorded: everything was queued, and is complete.
        let stream = context.stream().unwrap();
        fault::fail("cuEventRecord", 1, 1);
        // SAFETY: as above.
        let err = unsafe { stream.cells_to_device(&grid, &up) }.unwrap_err();
        assert!(matches!(
            err,
            MemError::CudaCopyFailed {
                call: "cuEventRecord",
                copied: 10,
                entries: 10,
                ..
            }
        ));
        assert_slots_hold_cells(&read(&context, &memory), &ids, &order, cell);

        // No event at all: nothing queued, a plain error, every cell given back.
        fault::fail("cuEventCreate", 1, 2);
        // SAFETY: as above.
        let err = unsafe { stream.cells_to_device(&grid, &up) }.unwrap_err();
        assert!(matches!(
            err,
            MemError::Cuda {
                call: "cuEventCreate",
                code: 2,
                ..
            }
        ));
        for id in ids {
            grid.release(id).unwrap();
        }
        assert!(!fault::pending());
        fault::reset();
    }

    #[test]
    fn a_failed_wait_keeps_the_cells_lent() {
        if !in_child("copy::faults::a_failed_wait_keeps_the_cells_lent") {
            return;
        }
        let driver = Driver::load().unwrap();
        let cell = 4096;
        let (grid, ids) = kv(&driver, cell, 4);
        let context = driver.device(0).unwrap().context().unwrap();
        let stream = context.stream().unwrap();
        let memory = context.alloc(4 * cell).unwrap();
        let up = list(&ids, &[0, 1, 2, 3], &memory, cell);
        // SAFETY: our device memory, disjoint slots.
        let copy = unsafe { stream.cells_to_device(&grid, &up).unwrap() };
        fault::fail("cuEventSynchronize", 1, 999);
        let err = copy.wait().unwrap_err();
        assert!(matches!(
            err,
            MemError::Cuda {
                call: "cuEventSynchronize",
                code: 999,
                ..
            }
        ));
        // unimem cannot tell whether the device still reads them: they stay lent.
        assert!(matches!(
            grid.release(ids[0]),
            Err(MemError::CellInFlight { .. })
        ));
        // Dropping the Grid still waits for the device (the registration's context sync).
        stream.synchronize().unwrap();
        drop(grid);
        fault::reset();
    }
}

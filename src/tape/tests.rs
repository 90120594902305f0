//! Tape and Lane unit tests, run natively and under Miri (on the portable heap Block, with
//! strict provenance): contracts, every error, typed takes' initialization, the Lane's
//! refill rules, threads, and a model-based property test of random programs.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::Pin;

/// Fewer iterations under Miri, which runs about a million times slower.
const fn scaled(native: usize, miri: usize) -> usize {
    if cfg!(miri) { miri } else { native }
}

fn tape(size: usize) -> Tape {
    Tape::over(Block::builder(size).pin(Pin::BestEffort).open().unwrap())
}

fn page() -> usize {
    crate::page_size()
}

#[test]
fn takes_are_sequential_aligned_and_counted() {
    let tape = tape(page());
    let total = tape.total();
    let a = tape.take(10, 1).unwrap();
    let b = tape.take(8, 8).unwrap();
    assert_eq!(tape.offset_of(a), Some(0));
    assert_eq!(tape.offset_of(b), Some(16)); // 6 bytes of padding
    assert_eq!(tape.used(), 24);
    assert_eq!(tape.used() + tape.free(), total);
    let c = tape.take(64, 64).unwrap();
    assert_eq!(tape.offset_of(c), Some(64));
    assert_eq!(c as usize % 64, 0);
    assert!(tape.owns(a) && tape.owns(c));
    assert!(!tape.owns(tape.block().address().wrapping_add(total)));
    assert_eq!(tape.offset_of(std::ptr::null::<u8>()), None);
    // The last bytes fit exactly; one more does not.
    let rest = tape.free();
    assert!(tape.take(rest, 1).is_some());
    assert_eq!(tape.free(), 0);
    assert_eq!(tape.take(1, 1), None);
}

#[test]
fn every_refusal_says_why() {
    let tape = tape(page());
    assert_eq!(tape.try_take(0, 8), Err(MemError::ZeroSize));
    assert_eq!(tape.try_take(0, 3), Err(MemError::ZeroSize));
    for align in [0, 3, 48, usize::MAX] {
        assert_eq!(
            tape.try_take(8, align),
            Err(MemError::BadAlignment { align })
        );
    }
    for (size, align) in [
        (usize::MAX, 1),
        (isize::MAX as usize + 1, 1),
        (isize::MAX as usize, 2),
        (1, 1 << 63),
    ] {
        assert_eq!(
            tape.try_take(size, align),
            Err(MemError::TakeOverflow {
                count: 1,
                size,
                align
            }),
            "{size} aligned to {align}"
        );
        assert_eq!(tape.take(size, align), None);
    }
    assert_eq!(
        tape.try_take(isize::MAX as usize, 1),
        Err(MemError::TapeFull {
            requested: isize::MAX as usize,
            align: 1,
            free: page()
        })
    );
    assert_eq!(
        tape.try_take_slice::<u64>(usize::MAX / 4),
        Err(MemError::TakeOverflow {
            count: usize::MAX / 4,
            size: 8,
            align: 8
        })
    );
    assert_eq!(tape.try_take_slice::<u64>(0), Err(MemError::ZeroSize));
    assert!(tape.take_slice::<u64>(0).is_none());
    tape.take(page() - 4, 1).unwrap();
    assert_eq!(
        tape.try_take_one::<u64>(),
        Err(MemError::TapeFull {
            requested: 8,
            align: 8,
            free: 4
        })
    );
    assert!(tape.take_one::<u32>().is_some());
    assert_eq!(tape.used(), page());
}

#[test]
fn alignment_above_the_page_is_honoured() {
    let tape = tape(8 * page());
    tape.take(1, 1).unwrap();
    for align in [2 * page(), 4 * page()] {
        let p = tape.take(8, align).unwrap();
        assert_eq!(p as usize % align, 0);
        assert!(tape.owns(p));
    }
    // An alignment the Block cannot meet anywhere: full, not overflow.
    assert!(matches!(
        tape.try_take(1, 1 << 40),
        Err(MemError::TapeFull { requested: 1, .. })
    ));
    assert_eq!(tape.used() + tape.free(), tape.total());
}

#[test]
fn clear_frees_everything_and_peak_remembers() {
    let mut tape = tape(page());
    assert_eq!(tape.peak(), 0);
    tape.take(1000, 8).unwrap();
    assert_eq!(tape.peak(), 1000);
    tape.clear();
    assert_eq!((tape.used(), tape.free(), tape.peak()), (0, page(), 1000));
    tape.take(10, 8).unwrap();
    assert_eq!(tape.peak(), 1000);
    tape.clear();
    tape.take(2000, 8).unwrap();
    assert_eq!(tape.peak(), 2000);
    tape.clear();
    tape.clear();
    assert_eq!(tape.peak(), 2000);
}

#[test]
fn typed_takes_zero_reused_bytes_and_keep_fresh_ones() {
    let mut block = Block::builder(page()).pin(Pin::BestEffort).open().unwrap();
    block.as_bytes_mut()[..16].fill(7);
    let mut tape = Tape::over(block);
    // Never taken: what the Block held.
    assert_eq!(tape.take_slice::<u8>(16).unwrap(), [7; 16]);
    assert_eq!(*tape.take_one::<u64>().unwrap(), 0);
    let p = tape.take(64, 1).unwrap();
    // SAFETY: 64 bytes just taken.
    unsafe { p.write_bytes(0xA5, 64) };
    tape.clear();
    // Taken before: zeroed, up to the peak (88 bytes); above it, untouched zeros.
    let xs = tape.take_slice::<u32>(40).unwrap();
    assert!(xs.iter().all(|&x| x == 0));
    xs.fill(u32::MAX);
    tape.clear();
    let ys = tape.take_slice::<u8>(200).unwrap();
    assert!(ys.iter().all(|&y| y == 0));
}

#[test]
fn typed_take_slices_are_disjoint_and_live_together() {
    let tape = tape(page());
    let a = tape.take_slice::<u16>(10).unwrap();
    let b = tape.take_slice::<u64>(3).unwrap();
    let c = tape.take_one::<[u8; 3]>().unwrap();
    a.fill(1);
    b.fill(2);
    *c = [3; 3];
    assert_eq!(a, [1; 10]);
    assert_eq!(b, [2; 3]);
    assert_eq!(*c, [3; 3]);
    assert_eq!(b.as_ptr() as usize % 8, 0);
}

#[test]
fn a_lane_bumps_inside_its_chunk_and_grows_in_place() {
    let tape = tape(4 * page());
    let mut lane = tape.lane(256);
    let a = lane.take(64, 64).unwrap();
    assert_eq!(tape.used(), 256);
    let b = lane.take(64, 64).unwrap();
    assert_eq!(b as usize - a as usize, 64);
    assert_eq!(lane.free(), 128);
    // Doesn't fit the rest of the chunk: the next chunk continues this one, no waste.
    let c = lane.take(200, 1).unwrap();
    let d = lane.take(100, 1).unwrap();
    assert_eq!(c as usize - b as usize, 64);
    assert_eq!(d as usize - c as usize, 200);
    assert_eq!(tape.used(), 512);
    assert_eq!(lane.wasted(), 0);
    assert_eq!(lane.chunk(), 256);
    assert_eq!(lane.tape().total(), tape.total());
    drop(lane);
    // The rest of the chunk went back.
    assert_eq!(tape.used(), 428);
}

#[test]
fn a_lane_wastes_only_what_others_interleave() {
    let tape = tape(4 * page());
    let mut lane = tape.lane(256);
    lane.take(200, 8).unwrap();
    let other = tape.take(8, 8).unwrap();
    assert_eq!(tape.offset_of(other), Some(256));
    lane.take(100, 64).unwrap();
    // 56 bytes left in the old chunk, 56 of padding before the new one at 320.
    assert_eq!(lane.wasted(), 56 + 56);
    assert_eq!(tape.used(), 320 + 256);
    // A second Lane after this one: dropping the first gives nothing back.
    let mut second = tape.lane(128);
    second.take(1, 1).unwrap();
    drop(lane);
    assert_eq!(tape.used(), 576 + 128);
    drop(second);
    assert_eq!(tape.used(), 577);
}

#[test]
fn large_takes_bypass_the_lane() {
    let tape = tape(4 * page());
    let mut lane = tape.lane(256);
    lane.take(8, 8).unwrap();
    let big = lane.take(1000, 8).unwrap();
    assert_eq!(tape.offset_of(big), Some(256));
    assert_eq!(lane.free(), 248);
    assert_eq!(lane.wasted(), 0);
    // A chunk of 0 sends everything to the Tape.
    let mut direct = tape.lane(0);
    let p = direct.take(8, 8).unwrap();
    assert_eq!(tape.offset_of(p), Some(1256));
    assert_eq!(direct.free(), 0);
}

#[test]
fn a_lane_fails_only_when_the_tape_is_full() {
    let tape = tape(page());
    let mut lane = tape.lane(1 << 20); // larger than the Tape: every take goes direct
    let mut n = 0;
    while lane.take(64, 64).is_some() {
        n += 1;
    }
    assert_eq!(n * 64, page());
    assert_eq!(
        lane.try_take(1, 1),
        Err(MemError::TapeFull {
            requested: 1,
            align: 1,
            free: 0
        })
    );
    assert_eq!(
        lane.try_take(1, 3),
        Err(MemError::BadAlignment { align: 3 })
    );
    assert_eq!(lane.try_take(0, 1), Err(MemError::ZeroSize));
    assert!(matches!(
        lane.try_take_slice::<u32>(usize::MAX),
        Err(MemError::TakeOverflow { .. })
    ));

    // The Tape has room for a take but not for a chunk: the take goes direct.
    let tape = tape_of(page());
    tape.take(page() - 100, 1).unwrap();
    let mut lane = tape.lane(256);
    assert!(lane.take(60, 4).is_some());
    assert!(lane.take(40, 1).is_some());
    assert_eq!(lane.take(1, 1), None);
}

fn tape_of(size: usize) -> Tape {
    tape(size)
}

#[test]
fn lane_typed_takes_zero_reused_bytes() {
    let mut tape = tape(page());
    {
        let mut lane = tape.lane(512);
        let p = lane.take(300, 1).unwrap();
        // SAFETY: 300 bytes just taken.
        unsafe { p.write_bytes(0xFF, 300) };
    }
    tape.clear();
    let mut lane = tape.lane(512);
    let xs = lane.take_slice::<u64>(40).unwrap();
    assert!(xs.iter().all(|&x| x == 0));
    let one = lane.take_one::<u16>().unwrap();
    assert_eq!(*one, 0);
    xs[0] = 1;
    *one = 2;
    assert!(lane.try_take_slice::<u8>(4).is_ok());
}

#[test]
fn threads_take_disjoint_ranges() {
    let threads = 4;
    let per = scaled(2000, 20);
    let tape = tape(threads * per * 128 + 64 * page());
    let ranges = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (tape, ranges) = (&tape, &ranges);
            s.spawn(move || {
                let mut mine = Vec::new();
                let mut lane = tape.lane(if t % 2 == 0 { 0 } else { 1024 });
                for i in 0..per {
                    let size = 1 + (i * 7 + t) % 100;
                    let p = lane.take_slice::<u8>(size).unwrap();
                    p.fill(t as u8);
                    mine.push((tape.offset_of(p.as_ptr()).unwrap(), size));
                }
                ranges.lock().unwrap().extend(mine);
            });
        }
    });
    let mut ranges = ranges.into_inner().unwrap();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "{w:?} overlap");
    }
    assert!(ranges.last().map_or(0, |r| r.0 + r.1) <= tape.used());
}

#[test]
fn tape_is_send_and_sync_and_a_lane_is_send() {
    fn sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    sync::<Tape>();
    send::<Lane<'static>>();
    let tape = tape(page());
    assert!(format!("{tape:?}").contains("used"));
    assert!(format!("{:?}", tape.lane(64)).contains("chunk"));
    let tape = Tape::from(Block::builder(1).pin(Pin::BestEffort).open().unwrap());
    assert_eq!(tape.total(), page());
}

#[test]
fn start_opens_a_block() {
    match Tape::start(1) {
        Ok(tape) => assert_eq!(tape.total(), page()),
        // Outside Miri the portable backend cannot pin: the Block's error comes through.
        Err(err) => assert!(matches!(
            err,
            MemError::PinUnsupported { .. } | MemError::LockRefused { .. }
        )),
    }
    assert_eq!(Tape::start(0).unwrap_err(), MemError::ZeroSize);
}

#[cfg(feature = "allocator-api2")]
mod allocator {
    use std::mem::MaybeUninit;

    use allocator_api2::alloc::{Allocator, Layout};
    use allocator_api2::boxed::Box;
    use allocator_api2::vec::Vec;

    use super::*;

    #[test]
    fn a_vec_grows_in_place_while_it_is_last() {
        let tape = tape(4 * page());
        let mut v = Vec::new_in(&tape);
        let n = scaled(1000, 100);
        for i in 0..n as u32 {
            v.push(i);
        }
        assert!(v.iter().copied().eq(0..n as u32));
        assert_eq!(tape.offset_of(v.as_ptr()), Some(0));
        // In place all the way: the Tape holds one allocation of the Vec's capacity.
        let bytes = v.capacity() * 4;
        assert_eq!(tape.used(), bytes);
        drop(v);
        assert_eq!(tape.used(), 0);
        assert_eq!(tape.peak(), bytes);
    }

    #[test]
    fn a_vec_that_is_not_last_moves() {
        let tape = tape(4 * page());
        let mut a = Vec::new_in(&tape);
        let mut b = Vec::new_in(&tape);
        for i in 0..100u64 {
            a.push(i);
            b.push(i * 2);
        }
        assert!(a.iter().copied().eq(0..100));
        assert!(b.iter().map(|x| x / 2).eq(0..100));
        let used = tape.used();
        drop(a); // not last: a no-op
        assert_eq!(tape.used(), used);
        b.shrink_to_fit();
        drop(b);
        assert!(tape.used() < used);
    }

    #[test]
    fn deallocate_gives_back_only_the_last() {
        let tape = tape(page());
        let alloc = &tape;
        let l = Layout::from_size_align(100, 16).unwrap();
        let a = alloc.allocate(l).unwrap().cast::<u8>();
        let b = alloc.allocate(l).unwrap().cast::<u8>();
        assert_eq!(tape.used(), 212);
        // SAFETY: allocated above with `l`.
        unsafe {
            alloc.deallocate(a, l);
            assert_eq!(tape.used(), 212);
            alloc.deallocate(b, l);
            assert_eq!(tape.used(), 112);
        }
        let z = alloc
            .allocate(Layout::from_size_align(0, 64).unwrap())
            .unwrap();
        assert_eq!(z.cast::<u8>().as_ptr() as usize % 64, 0);
        assert_eq!(tape.used(), 112);
        // SAFETY: a zero-sized allocation from above.
        unsafe { alloc.deallocate(z.cast(), Layout::from_size_align(0, 64).unwrap()) };
        assert!(
            alloc
                .allocate(Layout::from_size_align(page(), 1).unwrap())
                .is_err()
        );
    }

    #[test]
    fn grow_zeroed_and_shrink() {
        let tape = tape(page());
        let alloc = &tape;
        let small = Layout::from_size_align(16, 8).unwrap();
        let big = Layout::from_size_align(64, 8).unwrap();
        alloc.allocate(Layout::new::<u8>()).unwrap();
        let p = alloc.allocate_zeroed(small).unwrap().cast::<u8>();
        // SAFETY: allocations and layouts from above, each used once.
        unsafe {
            p.as_ptr().write_bytes(1, 16);
            let g = alloc.grow_zeroed(p, small, big).unwrap().cast::<u8>();
            assert_eq!(g, p);
            let bytes = std::slice::from_raw_parts(g.as_ptr(), 64);
            assert!(bytes[..16].iter().all(|&b| b == 1) && bytes[16..].iter().all(|&b| b == 0));
            let s = alloc.shrink(g, big, small).unwrap().cast::<u8>();
            assert_eq!(s, p);
            assert_eq!(tape.used(), 24);
            // A stricter alignment moves it.
            let aligned = Layout::from_size_align(16, 1024).unwrap();
            let m = alloc.shrink(s, small, aligned).unwrap().cast::<u8>();
            assert_eq!(m.as_ptr() as usize % 1024, 0);
            assert_eq!(std::slice::from_raw_parts(m.as_ptr(), 16), [1; 16]);
            assert_eq!(tape.used(), 1040);
            let e = alloc.shrink(m, aligned, Layout::from_size_align(0, 1).unwrap());
            assert_eq!(e.unwrap().len(), 0);
            assert_eq!(tape.used(), 1024);
        }
    }

    #[test]
    fn a_hashbrown_map_lives_in_the_tape() {
        let tape = tape(16 * page());
        let mut map = hashbrown::HashMap::new_in(&tape);
        let n = scaled(500, 50);
        for i in 0..n as u64 {
            map.insert(i, i * i);
        }
        assert_eq!(map.len(), n);
        assert!((0..n as u64).all(|i| map[&i] == i * i));
        assert!(tape.used() > 0);
        // The table's memory is inside the Block.
        let (k, _) = map.iter().next().unwrap();
        assert!(tape.owns(k));
    }

    #[test]
    fn try_reserve_fails_cleanly_when_the_tape_is_full() {
        let tape = tape(page());
        let mut v: Vec<u64, _> = Vec::new_in(&tape);
        v.extend(0..64);
        let used = tape.used();
        // More than the Tape holds: an error, and the Vec and the Tape are unchanged.
        assert!(v.try_reserve(page()).is_err());
        assert!(v.try_reserve_exact(page()).is_err());
        assert!(v.iter().copied().eq(0..64));
        assert_eq!(tape.used(), used);
        // What fits still fits, in place (the Vec is the last allocation).
        let room = (page() - used) / 8;
        v.try_reserve_exact(room).unwrap();
        assert_eq!(tape.offset_of(v.as_ptr()), Some(0));
        assert_eq!(tape.free(), page() - v.capacity() * 8);
        drop(v);
        assert_eq!(tape.used(), 0);
    }

    /// Safe code can leave uninitialized bytes in the Tape through the allocator; typed
    /// takes must not hand them out as `u8`s. Miri checks this one.
    #[test]
    fn uninitialized_bytes_never_reach_a_typed_take() {
        let mut tape = tape(page());
        let boxed = Box::new_in(MaybeUninit::<[u8; 64]>::uninit(), &tape);
        drop(boxed); // the last allocation: given back
        let bytes = tape.take_slice::<u8>(64).unwrap();
        assert!(bytes.iter().all(|&b| b == 0));
        let padded = Box::new_in((1u8, 2u64), &tape);
        drop(padded);
        tape.clear();
        let bytes = tape.take_slice::<u8>(256).unwrap();
        assert!(bytes.iter().all(|&b| b == 0));
        let mut lane = tape.lane(128);
        assert!(lane.take_slice::<u8>(64).unwrap().iter().all(|&b| b == 0));
    }
}

/// The same impl through allocator-api2 0.4 (feature `allocator-api2-04`).
#[cfg(feature = "allocator-api2-04")]
mod allocator_04 {
    use allocator_api2_04::vec::Vec;

    use super::*;

    #[test]
    fn a_vec_grows_in_place_and_try_reserve_fails_cleanly() {
        let tape = tape(page());
        let mut v = Vec::new_in(&tape);
        v.extend(0..100u32);
        assert_eq!(tape.offset_of(v.as_ptr()), Some(0));
        assert!(v.try_reserve(page()).is_err());
        assert!(v.iter().copied().eq(0..100));
        drop(v);
        assert_eq!(tape.used(), 0);
    }
}

/// One step of a random program.
#[derive(Debug, Clone)]
enum Op {
    Take(usize, usize),
    TryTake(usize, usize),
    SliceU8(usize),
    SliceU64(usize),
    SliceTriples(usize),
    Clear,
    Lane(usize, Vec<(usize, usize, bool)>),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 0..=96usize,
        3 => 0..=6000usize,
        1 => Just(usize::MAX),
        1 => Just(isize::MAX as usize),
        1 => any::<usize>(),
    ]
}

fn align() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => (0..=7u32).prop_map(|k| 1usize << k),
        2 => (8..=17u32).prop_map(|k| 1usize << k),
        1 => Just(1usize << 63),
        1 => 0..=100usize,
        1 => any::<usize>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (size(), align()).prop_map(|(s, a)| Op::Take(s, a)),
        4 => (size(), align()).prop_map(|(s, a)| Op::TryTake(s, a)),
        1 => (0..=700usize).prop_map(Op::SliceU8),
        1 => prop_oneof![0..=300usize, Just(usize::MAX / 8 + 1)].prop_map(Op::SliceU64),
        1 => (0..=300usize).prop_map(Op::SliceTriples),
        1 => Just(Op::Clear),
        2 => (
            prop_oneof![Just(0usize), Just(64), Just(256), Just(4096), Just(1 << 20)],
            prop::collection::vec((size(), align(), any::<bool>()), 0..12),
        )
            .prop_map(|(chunk, takes)| Op::Lane(chunk, takes)),
    ]
}

/// What the model predicts for a take of `count` values of `size` bytes aligned to `align`
/// at `head`: the offset, or the error.
fn predict(
    tape: &Tape,
    head: usize,
    count: usize,
    size: usize,
    align: usize,
) -> Result<usize, MemError> {
    let bytes = count.checked_mul(size);
    if bytes == Some(0) {
        return Err(MemError::ZeroSize);
    }
    if !align.is_power_of_two() {
        return Err(MemError::BadAlignment { align });
    }
    let Some(bytes) = bytes.filter(|&b| b <= isize::MAX as usize - (align - 1)) else {
        return Err(MemError::TakeOverflow { count, size, align });
    };
    let pad = (tape.base_addr() + head).wrapping_neg() & (align - 1);
    if pad + bytes > tape.total() - head {
        return Err(MemError::TapeFull {
            requested: bytes,
            align,
            free: tape.total() - head,
        });
    }
    Ok(head + pad)
}

/// Live takes: start offset -> (end offset, fill byte).
type Live = BTreeMap<usize, (usize, u8)>;

/// Records a new take, checking it is aligned, inside the Tape and disjoint from the live
/// ones, then fills it with its own byte.
fn record(tape: &Tape, live: &mut Live, ptr: *mut u8, size: usize, align: usize) {
    let start = tape.offset_of(ptr).expect("take outside the Tape");
    assert_eq!(ptr as usize % align, 0, "misaligned take");
    assert!(start + size <= tape.total(), "take past the end");
    if let Some((&s, &(e, _))) = live.range(..start + size).next_back() {
        assert!(
            e <= start || s >= start + size,
            "{start}+{size} overlaps {s}..{e}"
        );
    }
    let fill = (live.len() % 250) as u8 + 1;
    // SAFETY: `size` bytes just taken.
    unsafe { ptr.write_bytes(fill, size) };
    live.insert(start, (start + size, fill));
}

/// Every live take still holds its own byte: nothing overlapped it.
fn verify(tape: &Tape, live: &Live) {
    for (&start, &(end, fill)) in live {
        let ptr = tape.at(start).as_ptr();
        // SAFETY: a live take, not referenced elsewhere now.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, end - start) };
        assert!(
            bytes.iter().all(|&b| b == fill),
            "take at {start} was overwritten"
        );
    }
}

fn typed<T: Pod>(tape: &Tape, live: &mut Live, head: &mut usize, len: usize) {
    let expect = predict(tape, *head, len, size_of::<T>(), align_of::<T>());
    match tape.try_take_slice::<T>(len) {
        Ok(xs) => {
            assert_eq!(Ok(tape.offset_of(xs.as_ptr()).unwrap()), expect);
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(xs);
            assert!(bytes.iter().all(|&b| b == 0), "a typed take is not zeroed");
            let size = bytes.len();
            record(tape, live, bytes.as_mut_ptr(), size, align_of::<T>());
            *head = tape.used();
        }
        Err(err) => assert_eq!(Err(err), expect),
    }
}

fn run(program: &[Op]) {
    let mut tape = tape(16 * 1024);
    let mut live = Live::new();
    let mut head = 0;
    let mut peak = 0;
    for op in program {
        match *op {
            Op::Take(size, align) | Op::TryTake(size, align) => {
                let expect = predict(&tape, head, 1, size, align);
                let got = if matches!(op, Op::Take(..)) {
                    tape.take(size, align).ok_or(MemError::ZeroSize)
                } else {
                    tape.try_take(size, align).map(NonNull::as_ptr)
                };
                match (got, expect) {
                    (Ok(ptr), Ok(start)) => {
                        assert_eq!(tape.offset_of(ptr), Some(start));
                        record(&tape, &mut live, ptr, size, align);
                        head = start + size;
                    }
                    (Err(_), Err(_)) if matches!(op, Op::Take(..)) => {}
                    (got, expect) => assert_eq!(got.map(|p| tape.offset_of(p).unwrap()), expect),
                }
            }
            Op::SliceU8(len) => typed::<u8>(&tape, &mut live, &mut head, len),
            Op::SliceU64(len) => typed::<u64>(&tape, &mut live, &mut head, len),
            Op::SliceTriples(len) => typed::<[u8; 3]>(&tape, &mut live, &mut head, len),
            Op::Clear => {
                tape.clear();
                live.clear();
                head = 0;
            }
            Op::Lane(chunk, ref takes) => {
                let mut lane = tape.lane(chunk);
                for &(size, align, typed) in takes {
                    let got = if typed {
                        lane.try_take_slice::<u8>(size).map(|xs| {
                            assert!(
                                xs.iter().all(|&b| b == 0),
                                "a typed lane take is not zeroed"
                            );
                            xs.as_mut_ptr()
                        })
                    } else {
                        lane.try_take(size, align).map(NonNull::as_ptr)
                    };
                    let (count, size, align) = if typed {
                        (size, 1, 1)
                    } else {
                        (1, size, align)
                    };
                    match got {
                        Ok(ptr) => record(&tape, &mut live, ptr, count * size, align),
                        // A Lane fails only where the Tape, as it is now, fails too.
                        Err(err) => {
                            assert_eq!(Err(err), predict(&tape, tape.used(), count, size, align));
                        }
                    }
                }
                drop(lane);
                head = tape.used();
            }
        }
        assert_eq!(tape.used(), head);
        assert_eq!(tape.used() + tape.free(), tape.total());
        assert!(tape.peak() >= peak && tape.peak() >= head);
        peak = tape.peak();
        verify(&tape, &live);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: scaled(512, 6) as u32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random programs of takes, typed takes, clears and Lanes, against a model: every
    /// success is where the model says (aligned, in bounds, disjoint from the live takes),
    /// every failure is the model's error, `used + free == total`, the peak never drops,
    /// typed takes are zeroed, and no take ever overwrites another.
    #[test]
    fn random_programs_match_the_model(program in prop::collection::vec(op(), 1..scaled(40, 12))) {
        run(&program);
    }
}

//! `tape_ops`: Tape and Lane op sequences checked against a model.
//!
//! The input opens a Tape of 1 to 64 pages over a [`Pin::BestEffort`] Block, then runs up
//! to 512 ops: raw, typed and fallible takes straight from the Tape, up to four Lanes of
//! fuzzed chunk sizes taking raw and typed, Lanes dropped, checks, `clear`, and a final
//! `freeze`. Sizes, alignments and lengths include zero, non-powers of two and values that
//! overflow.
//!
//! The model knows every live take (offset, length, the byte it was filled with) and
//! checks, after each op:
//!
//! - a take is inside the Block, aligned, and disjoint from every other live take, and
//!   lies below the head (`used()`);
//! - a take straight from the Tape succeeds exactly when the model says it fits, at the
//!   offset the model computes (padding measured on the absolute address), and moves the
//!   head to its end; a refusal is the error the model predicts (`ZeroSize`,
//!   `BadAlignment`, `TakeOverflow`, `TapeFull` with the free bytes);
//! - a Lane refuses a take only when the Tape itself cannot fit it;
//! - a typed take reads all zeros (the Block is fresh, and bytes taken before are
//!   scrubbed);
//! - every live take still holds its fill (at each check, before a clear and at the end);
//! - `used() + free() == total()`, `peak() >= used()`; `clear` empties the Tape;
//! - a frozen Tape refuses every take (`TapeReadOnly`) and reads back every live take.

use std::collections::BTreeMap;

use unimem::{Block, Lane, MemError, Pin, Tape};

use crate::input::Reader;
use crate::proc::page;

/// The most ops one input runs.
const MAX_OPS: usize = 512;
/// The most Lanes alive at once.
const MAX_LANES: usize = 4;

/// Runs one input.
pub fn run(data: &[u8]) {
    let r = &mut Reader::new(data);
    let pages = 1 + r.choose(64) as usize;
    let block = Block::builder(pages * page())
        .pin(Pin::BestEffort)
        .name("unimem-fuzz-tape")
        .open()
        .expect("open a Block for the Tape");
    let mut tape = Tape::over(block);
    let mut model = Model::new(&tape);
    let mut ops = 0;
    loop {
        // One epoch: the Tape is shared (Lanes borrow it) until a clear, a freeze or the end.
        let end = epoch(&tape, &mut model, r, &mut ops);
        model.check_fills(&tape);
        match end {
            End::Clear => {
                let used = tape.used();
                tape.clear();
                assert_eq!(tape.used(), 0, "clear left {} bytes used", tape.used());
                assert!(tape.peak() >= used, "peak {} below {used}", tape.peak());
                model.clear();
            }
            End::Freeze => {
                freeze(&mut tape, &model);
                return;
            }
            End::Input => return,
        }
    }
}

/// Why an epoch ended.
enum End {
    Clear,
    Freeze,
    Input,
}

/// A live take.
#[derive(Debug, Clone, Copy)]
struct Take {
    len: usize,
    fill: u8,
}

struct Model {
    base: usize,
    total: usize,
    /// Live takes by offset.
    takes: BTreeMap<usize, Take>,
    /// The fill of the next take.
    next_fill: u8,
}

impl Model {
    fn new(tape: &Tape) -> Model {
        Model {
            base: tape.block().address() as usize,
            total: tape.total(),
            takes: BTreeMap::new(),
            next_fill: 0,
        }
    }

    /// Records a take at `ptr` of `len` bytes aligned to `align`, after checking it, and
    /// fills it.
    fn took(&mut self, tape: &Tape, ptr: *mut u8, len: usize, align: usize, typed: bool) {
        let addr = ptr as usize;
        assert!(
            addr >= self.base && addr - self.base <= self.total,
            "take at {addr:#x} outside the Block {:#x}+{:#x}",
            self.base,
            self.total
        );
        let off = addr - self.base;
        assert_eq!(tape.offset_of(ptr), Some(off), "offset_of disagrees");
        assert!(
            off + len <= self.total,
            "take {off}+{len} past {}",
            self.total
        );
        assert_eq!(addr % align, 0, "take at {addr:#x} not aligned to {align}");
        assert!(
            off + len <= tape.used(),
            "take {off}+{len} above the head {}",
            tape.used()
        );
        if let Some((&prev, t)) = self.takes.range(..=off).next_back() {
            assert!(
                prev + t.len <= off,
                "take {off}+{len} overlaps {prev}+{}",
                t.len
            );
        }
        if let Some((&next, t)) = self.takes.range(off..).next() {
            assert!(
                off + len <= next,
                "take {off}+{len} overlaps {next}+{}",
                t.len
            );
        }
        // SAFETY: `off..off + len` is a live take of this model's alone (just checked to
        // be inside the Block and disjoint from every other), and no reference to it is
        // alive: typed takes are dropped before this call.
        let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        if typed && let Some(at) = bytes.iter().position(|&b| b != 0) {
            panic!("typed take {off}+{len} holds {:#x} at byte {at}", bytes[at]);
        }
        self.next_fill = self.next_fill.wrapping_add(1) | 1;
        let fill = self.next_fill;
        bytes.fill(fill);
        self.takes.insert(off, Take { len, fill });
    }

    fn check_counts(&self, tape: &Tape) {
        let used = tape.used();
        assert!(used <= tape.total(), "used {used} > total {}", tape.total());
        assert_eq!(used + tape.free(), tape.total(), "used + free != total");
        assert!(tape.peak() >= used, "peak {} < used {used}", tape.peak());
        if let Some((&off, t)) = self.takes.iter().next_back() {
            assert!(
                off + t.len <= used,
                "take {off}+{} above the head {used}",
                t.len
            );
        }
    }

    fn check_fills(&self, tape: &Tape) {
        for (&off, t) in &self.takes {
            // SAFETY: a live take, inside the Block; no mutable reference to it is alive.
            let bytes =
                unsafe { std::slice::from_raw_parts(tape.block().address().add(off), t.len) };
            if let Some(at) = bytes.iter().position(|&b| b != t.fill) {
                panic!(
                    "take {off}+{} was filled with {:#x}; byte {at} holds {:#x}",
                    t.len, t.fill, bytes[at]
                );
            }
        }
    }

    fn clear(&mut self) {
        self.takes.clear();
    }

    /// Where a take straight from the Tape lands, if it fits: the model of `Tape::bump`.
    fn predict(&self, tape: &Tape, size: usize, align: usize) -> Option<usize> {
        if !valid(size, align) {
            return None;
        }
        let head = tape.used();
        let pad = (self.base + head).wrapping_neg() & (align - 1);
        (pad + size <= self.total - head).then_some(head + pad)
    }
}

/// `Tape::take`'s rule for a well-formed request (`std::alloc::Layout`'s).
fn valid(size: usize, align: usize) -> bool {
    size != 0 && align.is_power_of_two() && size <= isize::MAX as usize - (align - 1)
}

/// The refusal the model predicts for `count` values of `size` bytes aligned to `align`.
fn refusal(tape: &Tape, count: usize, size: usize, align: usize) -> MemError {
    match count.checked_mul(size) {
        Some(0) => MemError::ZeroSize,
        _ if !align.is_power_of_two() => MemError::BadAlignment { align },
        Some(bytes) if valid(bytes, align) => MemError::TapeFull {
            requested: bytes,
            align,
            free: tape.free(),
        },
        _ => MemError::TakeOverflow { count, size, align },
    }
}

fn size(r: &mut Reader) -> usize {
    match r.choose(8) {
        0 => 0,
        1..=4 => 1 + r.u8() as usize,
        5 => 1 + r.u16() as usize,
        6 => r.u32() as usize,
        _ => usize::MAX - r.u8() as usize,
    }
}

fn align(r: &mut Reader) -> usize {
    match r.choose(8) {
        0 => r.u8() as usize,
        1 => 1 << (r.u8() % 24),
        _ => 1 << (r.u8() % 8),
    }
}

fn len(r: &mut Reader) -> usize {
    match r.choose(8) {
        0 => 0,
        1..=5 => 1 + r.u8() as usize,
        6 => r.u16() as usize,
        _ => usize::MAX / (1 + r.u8() as usize % 16),
    }
}

/// Runs `$body` with `$t` the element type chosen by `$ty` (0..5).
macro_rules! typed {
    ($ty:expr, $t:ident => $body:expr) => {
        match $ty % 5 {
            0 => {
                type $t = u8;
                $body
            }
            1 => {
                type $t = u16;
                $body
            }
            2 => {
                type $t = u32;
                $body
            }
            3 => {
                type $t = u64;
                $body
            }
            _ => {
                type $t = u128;
                $body
            }
        }
    };
}

/// Runs ops until a clear, a freeze or the end of the input.
fn epoch(tape: &Tape, model: &mut Model, r: &mut Reader, ops: &mut usize) -> End {
    let mut lanes: Vec<Lane<'_>> = Vec::new();
    while !r.is_empty() && *ops < MAX_OPS {
        *ops += 1;
        match r.choose(16) {
            0 | 1 => {
                let (size, align) = (size(r), align(r));
                let want = model.predict(tape, size, align);
                let got = tape.take(size, align);
                assert_eq!(
                    got.map(|p| p as usize - model.base),
                    want,
                    "take({size}, {align}) at head {}",
                    tape.used()
                );
                if let Some(p) = got {
                    assert_eq!(tape.used(), want.unwrap() + size, "head after take");
                    model.took(tape, p, size, align, false);
                }
            }
            2 => {
                let (size, align) = (size(r), align(r));
                let want = model.predict(tape, size, align);
                let expected = refusal(tape, 1, size, align);
                match tape.try_take(size, align) {
                    Ok(p) => {
                        assert_eq!(Some(p.as_ptr() as usize - model.base), want);
                        model.took(tape, p.as_ptr(), size, align, false);
                    }
                    Err(err) => {
                        assert_eq!(want, None, "try_take({size}, {align}) refused: {err}");
                        assert_eq!(err, expected, "try_take({size}, {align})");
                    }
                }
            }
            3 | 4 => {
                let (ty, n, fallible) = (r.u8(), len(r), r.choose(2) == 0);
                typed!(ty, T => {
                    let bytes = n.checked_mul(size_of::<T>()).unwrap_or(0);
                    let want = model.predict(tape, bytes, align_of::<T>());
                    let expected = refusal(tape, n, size_of::<T>(), align_of::<T>());
                    let got = if fallible {
                        tape.try_take_slice::<T>(n).map(|s| s.as_mut_ptr().cast::<u8>())
                    } else {
                        tape.take_slice::<T>(n).map(|s| s.as_mut_ptr().cast::<u8>()).ok_or(expected.clone())
                    };
                    match got {
                        Ok(p) => {
                            assert_eq!(Some(p as usize - model.base), want, "take_slice({n})");
                            model.took(tape, p, bytes, align_of::<T>(), true);
                        }
                        Err(err) => {
                            assert_eq!(want, None, "take_slice({n}) refused: {err}");
                            assert_eq!(err, expected, "take_slice({n})");
                        }
                    }
                })
            }
            5 => {
                let ty = r.u8();
                typed!(ty, T => {
                    let want = model.predict(tape, size_of::<T>(), align_of::<T>());
                    let got = tape.take_one::<T>().map(|v| (v as *mut T).cast::<u8>());
                    assert_eq!(got.map(|p| p as usize - model.base), want, "take_one");
                    if let Some(p) = got {
                        model.took(tape, p, size_of::<T>(), align_of::<T>(), true);
                    }
                })
            }
            6 => {
                let chunk = match r.choose(4) {
                    0 => 0,
                    1 => r.u16() as usize,
                    _ => 64 << (r.u8() % 8),
                };
                if lanes.len() < MAX_LANES {
                    lanes.push(tape.lane(chunk));
                }
            }
            7..=10 | 15 => {
                let (op, pick) = (r.u8(), r.u8() as usize);
                let Some(lane) = lanes.get_mut(pick % MAX_LANES) else {
                    continue;
                };
                lane_op(tape, model, lane, op, r);
            }
            11 => {
                let pick = r.u8() as usize;
                if !lanes.is_empty() {
                    let used = tape.used();
                    drop(lanes.remove(pick % lanes.len()));
                    assert!(tape.used() <= used, "dropping a Lane took bytes");
                }
            }
            12 => return End::Clear,
            13 => model.check_fills(tape),
            _ => return End::Freeze,
        }
        model.check_counts(tape);
    }
    End::Input
}

/// One take through a Lane: raw (fallible or not), typed, or one value.
fn lane_op(tape: &Tape, model: &mut Model, lane: &mut Lane<'_>, op: u8, r: &mut Reader) {
    let (ptr, len, align, typed) = match op % 4 {
        0 | 1 => {
            let (size, align) = (size(r), align(r));
            let got = if op % 4 == 0 {
                lane.take(size, align)
            } else {
                lane.try_take(size, align).ok().map(|p| p.as_ptr())
            };
            (got, size, align, false)
        }
        2 => {
            let (ty, n) = (r.u8(), len(r));
            typed!(ty, T => {
                let got = lane.take_slice::<T>(n).map(|s| s.as_mut_ptr().cast::<u8>());
                (got, n.saturating_mul(size_of::<T>()), align_of::<T>(), true)
            })
        }
        _ => {
            let ty = r.u8();
            typed!(ty, T => {
                let got = lane.take_one::<T>().map(|v| (v as *mut T).cast::<u8>());
                (got, size_of::<T>(), align_of::<T>(), true)
            })
        }
    };
    match ptr {
        Some(p) => model.took(tape, p, len, align, typed),
        // A Lane fails only when the Tape itself cannot fit the take.
        None => assert_eq!(
            model.predict(tape, len, align),
            None,
            "a Lane refused {len} bytes aligned to {align} that the Tape fits"
        ),
    }
}

/// Freezes the Tape: every take refused, every live take read back.
fn freeze(tape: &mut Tape, model: &Model) {
    if let Err(err) = tape.freeze() {
        assert!(!err.to_string().is_empty());
        return;
    }
    assert!(tape.is_frozen() && tape.is_read_only());
    assert_eq!(tape.used(), tape.total(), "a frozen Tape has room");
    assert_eq!(tape.take(8, 8), None);
    assert!(matches!(
        tape.try_take(8, 8),
        Err(MemError::TapeReadOnly { frozen: true, .. })
    ));
    for (&off, t) in &model.takes {
        let bytes = tape.read::<u8>(off, t.len).expect("read a live take");
        assert!(
            bytes.iter().all(|&b| b == t.fill),
            "take {off} changed by the freeze"
        );
    }
}

//! [`FreeList`]: the Grid's lock-free stack of free cell indices, with a per-cell
//! generation.
//!
//! # Layout
//!
//! - `head`: one 64-bit word, `tag << 32 | top`. `top` is the index of the first free cell
//!   or [`NIL`]; `tag` counts pops (modulo 2^32). Every change to the list is one
//!   compare-exchange of this word.
//! - `slots[i].link`: `depth << 32 | next`. `next` is the cell below `i` on the stack (or
//!   `NIL`); `depth` is the length of the stack from `i` down, `i` included. So the number
//!   of free cells is `depth` of the top cell: counting costs no extra atomic operation.
//! - `slots[i].generation`: the cell's generation, moved forward by a compare-exchange when
//!   a detached use of the cell ends, and by a clear (see the Grid's module docs). Takes
//!   and gives never touch it. Its top bit, [`IN_FLIGHT`], marks a detached cell lent to a
//!   device copy (`flight.rs`): ordinary generations stay below it ([`next_generation`]),
//!   and a clear leaves such a cell out of the stack.
//! - `low`: the fewest free cells ever seen right after a pop. It shares the head's cache
//!   lines, which a pop has just written, and is written only when it drops.
//!
//! # Why it is correct
//!
//! - **No ABA.** A pop reads `head = (t, a)` and `link[a] = (d, b)`, then compare-exchanges
//!   `head` from `(t, a)` to `(t + 1, b)`. It succeeds only if no pop happened in between:
//!   every pop adds 1 to the tag, and a push keeps the tag but changes the top (a push
//!   cannot put `a` back without `a` having been popped first). With no pop in between,
//!   `a` is still on the stack, so nobody wrote `link[a]`: `b` is still the cell below it.
//!   The same argument covers a batch pop, which walks `k` links from `a` and swings the
//!   head past them with one compare-exchange (the cells below `a` cannot leave the stack
//!   without `a` leaving first). The tag is 32 bits: a pop is fooled only if exactly a
//!   multiple of 2^32 pops ran between its load and its compare-exchange, more than 8
//!   seconds of pops at the fastest rate a core can pop, all while the same cell is on top.
//! - **Depths.** A push writes `link[c] = (depth(top) + 1, top)` and then compare-exchanges
//!   the head from `(t, top)` to `(t, c)`: if that succeeds, `top` was not popped since
//!   the push read its depth (no tag change), so the depth it wrote is right. Pops do not
//!   change the depth of the cells that stay. So at every instant `depth(top)` is the
//!   length of the stack.
//! - **Orderings.** A pusher writes the cell's link (and the cell's bytes, and for a
//!   release its new generation) before a `Release` compare-exchange of the head; every later change of
//!   the head is a read-modify-write, so it continues that push's release sequence, and a
//!   popper that loads the head with `Acquire` synchronizes with the push of every cell on
//!   the stack. It therefore reads the right links, and the next owner of a cell sees
//!   everything its last owner wrote. A pusher also loads the head with `Acquire`, since it
//!   reads the top cell's depth.

use crate::padded::Padded;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// "No cell": the end of the stack. Cell indices are `0..cells`, `cells <= NIL`.
pub(super) const NIL: u32 = u32::MAX;

/// The tag step of a pop. [`FreeList::pop_one_with`] and [`FreeList::pop_chain_with`]
/// take it as an argument only so that the loom models can run the same code without a
/// tag and watch the ABA problem break it.
pub(super) const TAG: u64 = 1;

const TOP: u64 = 0xFFFF_FFFF;

/// The generation bit of a cell lent to a device copy (`flight.rs`). Ordinary generations
/// never reach it: at one release per nanosecond, 2^63 take 292 years.
pub(super) const IN_FLIGHT: u64 = 1 << 63;

/// The generation after `generation` (below [`IN_FLIGHT`]), when a detached use ends or the
/// Grid is cleared.
#[inline(always)]
pub(super) fn next_generation(generation: u64) -> u64 {
    generation.wrapping_add(1) & !IN_FLIGHT
}

/// One cell's bookkeeping: 16 bytes, so four cells share a cache line.
#[derive(Debug)]
struct Slot {
    /// `depth << 32 | next` while the cell is free; left over while it is taken.
    link: AtomicU64,
    /// Moved forward when a detached use of the cell ends; never by takes and gives.
    generation: AtomicU64,
}

/// The words every pop and push write, alone on their cache lines.
#[derive(Debug)]
struct Head {
    head: AtomicU64,
    low: AtomicU32,
}

/// A lock-free stack of cell indices: see the module docs.
#[derive(Debug)]
pub(super) struct FreeList {
    top: Padded<Head>,
    slots: Box<[Slot]>,
}

#[inline(always)]
fn top_of(head: u64) -> u32 {
    (head & TOP) as u32
}

#[inline(always)]
fn next_of(link: u64) -> u32 {
    (link & TOP) as u32
}

#[inline(always)]
fn depth_of(link: u64) -> u32 {
    (link >> 32) as u32
}

#[inline(always)]
fn link(depth: u32, next: u32) -> u64 {
    u64::from(depth) << 32 | u64::from(next)
}

impl FreeList {
    /// A stack holding every cell of `0..cells`, 0 on top, or `None` if the bookkeeping
    /// (16 bytes per cell) cannot be allocated.
    pub(super) fn new(cells: u32) -> Option<FreeList> {
        let mut slots = Vec::new();
        slots.try_reserve_exact(cells as usize).ok()?;
        slots.extend((0..cells).map(|i| Slot {
            link: AtomicU64::new(link(cells - i, if i + 1 == cells { NIL } else { i + 1 })),
            generation: AtomicU64::new(0),
        }));
        Some(FreeList {
            top: Padded(Head {
                head: AtomicU64::new(0),
                low: AtomicU32::new(cells),
            }),
            slots: slots.into_boxed_slice(),
        })
    }

    /// Bytes of bookkeeping per cell.
    pub(super) const SLOT_BYTES: usize = size_of::<Slot>();

    /// Pops the top cell: one compare-exchange, retried only if another thread changed the
    /// head in between.
    #[inline(always)]
    pub(super) fn pop_one(&self) -> Option<u32> {
        self.pop_one_with(TAG)
    }

    /// [`pop_one`](FreeList::pop_one) with a given tag step (`TAG`; 0 only in the loom
    /// model that shows why the tag is needed).
    #[inline(always)]
    pub(super) fn pop_one_with(&self, step: u64) -> Option<u32> {
        let mut head = self.top.head.load(Ordering::Acquire);
        loop {
            let top = top_of(head);
            if top == NIL {
                return None;
            }
            let link = self.slots[top as usize].link.load(Ordering::Relaxed);
            let new = (head.wrapping_add(step << 32) & !TOP) | u64::from(next_of(link));
            match self.top.head.compare_exchange_weak(
                head,
                new,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.note(depth_of(link).wrapping_sub(1));
                    return Some(top);
                }
                Err(now) => head = now,
            }
        }
    }

    /// Pops up to `out.len()` cells with one compare-exchange (walking the links first),
    /// writes them to `out` in pop order (the top first) and returns how many: 0 if the
    /// stack is empty or `out` is.
    pub(super) fn pop_chain(&self, out: &mut [u32]) -> usize {
        self.pop_chain_with(out, TAG)
    }

    /// [`pop_chain`](FreeList::pop_chain) with a given tag step.
    pub(super) fn pop_chain_with(&self, out: &mut [u32], step: u64) -> usize {
        if out.is_empty() {
            return 0;
        }
        let mut head = self.top.head.load(Ordering::Acquire);
        loop {
            let first = top_of(head);
            if first == NIL {
                return 0;
            }
            let mut at = first;
            let mut n = 0;
            let mut depth = 0;
            // Reads links that another thread may be changing (if a pop got in first): the
            // values may then be stale, but are always indices below `cells` or NIL, the
            // walk is bounded by `out.len()`, and the compare-exchange below fails.
            while at != NIL && n < out.len() {
                out[n] = at;
                let link = self.slots[at as usize].link.load(Ordering::Relaxed);
                if n == 0 {
                    depth = depth_of(link);
                }
                n += 1;
                at = next_of(link);
            }
            let new = (head.wrapping_add(step << 32) & !TOP) | u64::from(at);
            match self.top.head.compare_exchange_weak(
                head,
                new,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.note(depth.wrapping_sub(n as u32));
                    return n;
                }
                Err(now) => head = now,
            }
        }
    }

    /// Pops the top `n` cells if they are a run, `n` neighbouring indices in order from the
    /// top (ascending or descending), with one compare-exchange; returns the lowest index.
    /// `None` if `n` is 0, the stack holds fewer, or its top `n` are not a run. Nothing
    /// changes then.
    ///
    /// The walk reads links as [`pop_chain`](FreeList::pop_chain) does (stale values are
    /// valid indices, the walk is bounded by `n`, and the compare-exchange then fails), so
    /// the same argument against ABA holds. A walk that saw no run while the head moved is
    /// retried: the answer is about one state of the stack.
    pub(super) fn pop_run(&self, n: u32) -> Option<u32> {
        if n == 0 {
            return None;
        }
        let mut head = self.top.head.load(Ordering::Acquire);
        loop {
            let first = top_of(head);
            let mut at = first;
            let mut depth = 0;
            let mut step: Option<bool> = None; // ascending?
            let mut taken = 0;
            let mut run = true;
            while taken < n {
                let Some(slot) = self.slots.get(at as usize) else {
                    run = false; // fewer than `n` free
                    break;
                };
                let link = slot.link.load(Ordering::Relaxed);
                if taken == 0 {
                    depth = depth_of(link);
                }
                taken += 1;
                let next = next_of(link);
                if taken < n {
                    let ascending = match step {
                        Some(ascending) => ascending,
                        None => next > at,
                    };
                    let expect = if ascending {
                        at.checked_add(1)
                    } else {
                        at.checked_sub(1)
                    };
                    if expect != Some(next) {
                        run = false;
                        break;
                    }
                    step = Some(ascending);
                }
                at = next;
            }
            if !run {
                let again = self.top.head.load(Ordering::Acquire);
                if again == head {
                    return None;
                }
                head = again;
                continue;
            }
            let new = (head.wrapping_add(TAG << 32) & !TOP) | u64::from(at);
            match self.top.head.compare_exchange_weak(
                head,
                new,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.note(depth.wrapping_sub(n));
                    let lowest = match step {
                        Some(false) => first - (n - 1),
                        _ => first,
                    };
                    return Some(lowest);
                }
                Err(now) => head = now,
            }
        }
    }

    /// Pushes the run `first..first + len` (owned by the caller, `len >= 1`) with one
    /// compare-exchange, so that `first` is on top and the run follows in ascending order:
    /// the next [`pop_run`](FreeList::pop_run) of `len` finds it again.
    pub(super) fn push_run(&self, first: u32, len: u32) {
        if len == 0 {
            return;
        }
        let last = first + (len - 1);
        let mut head = self.top.head.load(Ordering::Acquire);
        loop {
            let top = top_of(head);
            let below = self.depth(top);
            let mut prev = top;
            // The last cell goes just above the old top, the first on top.
            for (j, cell) in (first..=last).rev().enumerate() {
                let depth = below.wrapping_add(1).wrapping_add(j as u32);
                self.slots[cell as usize]
                    .link
                    .store(link(depth, prev), Ordering::Relaxed);
                prev = cell;
            }
            match self.top.head.compare_exchange_weak(
                head,
                (head & !TOP) | u64::from(first),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Pushes `cell` (which the caller owns and no longer uses) on top.
    #[inline(always)]
    pub(super) fn push_one(&self, cell: u32) {
        let slot = &self.slots[cell as usize];
        let mut head = self.top.head.load(Ordering::Acquire);
        loop {
            let top = top_of(head);
            let below = self.depth(top);
            slot.link
                .store(link(below.wrapping_add(1), top), Ordering::Relaxed);
            match self.top.head.compare_exchange_weak(
                head,
                (head & !TOP) | u64::from(cell),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Pushes `cells` (owned by the caller, distinct) with one compare-exchange: `cells[0]`
    /// goes just above the old top, the last one becomes the top.
    pub(super) fn push_chain(&self, cells: &[u32]) {
        let Some(&last) = cells.last() else {
            return;
        };
        let mut head = self.top.head.load(Ordering::Acquire);
        loop {
            let top = top_of(head);
            let below = self.depth(top);
            let mut prev = top;
            for (j, &cell) in cells.iter().enumerate() {
                let depth = below.wrapping_add(1).wrapping_add(j as u32);
                self.slots[cell as usize]
                    .link
                    .store(link(depth, prev), Ordering::Relaxed);
                prev = cell;
            }
            match self.top.head.compare_exchange_weak(
                head,
                (head & !TOP) | u64::from(last),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// The depth of `top` (0 for NIL): the stack's length if `top` is still on top.
    #[inline(always)]
    fn depth(&self, top: u32) -> u32 {
        match self.slots.get(top as usize) {
            Some(slot) => depth_of(slot.link.load(Ordering::Relaxed)),
            None => 0,
        }
    }

    /// Records `count`, the length of the stack right after a pop.
    #[inline(always)]
    fn note(&self, count: u32) {
        if count < self.top.low.load(Ordering::Relaxed) {
            self.lower(count);
        }
    }

    #[cold]
    #[inline(never)]
    fn lower(&self, count: u32) {
        self.top.low.fetch_min(count, Ordering::Relaxed);
    }

    /// The number of cells on the stack: the top's depth, read consistently (the head is
    /// read again after the depth, and both reads repeated if it moved). Exact when nothing
    /// runs concurrently; never more than the number of cells.
    ///
    /// Under churn that outlasts the retries, the last reading is returned, and it may be
    /// stale: the top read first may have been popped since, and its link rewritten by a
    /// push that read another stale depth (a push whose compare-exchange then fails writes
    /// `depth + 1` of whatever it read). Such a transient depth can exceed the cell count,
    /// so the reading is clamped: callers subtract it from the total (`Grid::in_use`).
    pub(super) fn len(&self) -> u32 {
        let cells = self.slots.len() as u32;
        let mut head = self.top.head.load(Ordering::Acquire);
        for _ in 0..16 {
            let count = self.depth(top_of(head));
            let again = self.top.head.load(Ordering::Acquire);
            if again == head {
                return count.min(cells);
            }
            head = again;
        }
        self.depth(top_of(head)).min(cells)
    }

    /// Test-only: writes `depth` into `cell`'s link, as a push in flight with a stale depth
    /// would, so that tests can show `len` clamps what it reads.
    #[cfg(all(test, not(loom)))]
    pub(super) fn forge_depth(&self, cell: u32, depth: u32) {
        let slot = &self.slots[cell as usize];
        let next = next_of(slot.link.load(Ordering::Relaxed));
        slot.link.store(link(depth, next), Ordering::Relaxed);
    }

    /// The fewest cells the stack ever held right after a pop (`cells` if nothing was
    /// ever popped).
    pub(super) fn low(&self) -> u32 {
        self.top.low.load(Ordering::Relaxed)
    }

    /// Cell `cell`'s generation.
    #[inline(always)]
    pub(super) fn generation(&self, cell: u32) -> Option<&AtomicU64> {
        self.slots.get(cell as usize).map(|slot| &slot.generation)
    }

    /// Relinks the free cells in index order, the lowest on top, so that takes hand out
    /// neighbouring cells (runs) while the free list allows it: O(cells), and a bitmap of
    /// `cells / 8` bytes, allocated and freed here. `&mut self`: nothing runs concurrently.
    /// Returns `false`, changing nothing, if the bitmap cannot be allocated.
    pub(super) fn sort(&mut self) -> bool {
        let mut free: Vec<u64> = Vec::new();
        let words = self.slots.len().div_ceil(64);
        if free.try_reserve_exact(words).is_err() {
            return false;
        }
        free.resize(words, 0);
        let mut at = top_of(self.top.head.load(Ordering::Relaxed));
        while let Some(slot) = self.slots.get(at as usize) {
            free[at as usize / 64] |= 1 << (at % 64);
            at = next_of(slot.link.load(Ordering::Relaxed));
        }
        let mut below = NIL;
        let mut depth = 0u32;
        for (i, slot) in self.slots.iter().enumerate().rev() {
            if free[i / 64] & (1 << (i % 64)) == 0 {
                continue;
            }
            depth += 1;
            slot.link.store(link(depth, below), Ordering::Relaxed);
            below = i as u32;
        }
        let head = self.top.head.load(Ordering::Relaxed);
        // A new top: count it as a pop, so that no stalled pop could ever match the old head
        // (none can run during `&mut self`; this keeps the tag's meaning simple).
        let tag = head.wrapping_add(TAG << 32) & !TOP;
        self.top
            .head
            .store(tag | u64::from(below), Ordering::Relaxed);
        true
    }

    /// Makes every cell free, 0 on top, and moves every generation forward (so every
    /// outstanding id is stale): O(cells). `&mut self`: nothing runs concurrently.
    ///
    /// A cell lent to a device copy ([`IN_FLIGHT`]) stays out: it is neither pushed nor given
    /// a new generation. (With `&mut self` no copy that could give it back is alive; such a
    /// cell is in flight only because its copy's guard was leaked, and then it stays lent
    /// for ever, which is safe.)
    pub(super) fn reset(&mut self) {
        // Built from the bottom, so the lowest free index ends on top.
        let mut below = NIL;
        let mut depth = 0u32;
        for (i, slot) in self.slots.iter().enumerate().rev() {
            let generation = slot.generation.load(Ordering::Relaxed);
            if generation & IN_FLIGHT != 0 {
                continue;
            }
            depth += 1;
            slot.link.store(link(depth, below), Ordering::Relaxed);
            slot.generation
                .store(next_generation(generation), Ordering::Relaxed);
            below = i as u32;
        }
        let head = self.top.head.load(Ordering::Relaxed);
        self.top
            .head
            .store((head & !TOP) | u64::from(below), Ordering::Relaxed);
    }
}

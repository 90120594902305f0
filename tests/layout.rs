//! Layout from outside the crate: the `cyb` runtime's call sites verbatim, random programs
//! of takes and clears against a model, sizing from a model description, and failures that
//! leak nothing.

#![cfg(not(miri))]

mod common;

use proptest::prelude::*;
use unimem::{Layout, Limits, MemError, ModelShape, Pin};

use common::{assert_child_passes, is_child};

/// The `cyb` runtime's calls, as it writes them (`specs/sources.md`, "The earlier unimem"): a
/// Layout of three sizes, weights copied in through `take(len, 64)` with offsets from the
/// Block's address, scratch tensors through `take(bytes, 64)`, `clear_pass()` every
/// token, `clear_talk()` every conversation, and the Stat printed.
fn cyb(weights: &[Vec<u8>], hidden: usize, tokens: usize) -> Result<String, MemError> {
    let w: usize = weights.iter().map(Vec::len).sum::<usize>() + 64 * weights.len();
    let s = hidden * 4096 * 4 * 4;
    let h = 2 * 2 * 8 * 16 * 4096 * 2;
    let mut layout = Layout::new(w, s, h)?;
    let mut offsets = Vec::new();
    for tensor in weights {
        let len = tensor.len();
        let dst = layout.weights().take(len, 64).ok_or(MemError::ZeroSize)?;
        // SAFETY: `dst` is a fresh take of `len` bytes, disjoint from `tensor`.
        unsafe { std::ptr::copy_nonoverlapping(tensor.as_ptr(), dst, len) };
        offsets.push(dst as usize - layout.weights().block().address() as usize);
    }
    for _conversation in 0..2 {
        for _token in 0..tokens {
            for _layer in 0..2 {
                let bytes = hidden * 4;
                let x = layout.scratch().take(bytes, 64).ok_or(MemError::ZeroSize)?;
                // SAFETY: a fresh take of `bytes` bytes.
                unsafe { x.write_bytes(1, bytes) };
            }
            layout.clear_pass();
        }
        layout.clear_talk();
    }
    let stat = layout.stat();
    assert_eq!(stat.weights_used, layout.weights().used());
    assert_eq!(stat.scratch_used, 0);
    assert_eq!(stat.history_used, 0);
    assert_eq!(offsets[0], 0);
    // The weights are where the offsets say, unchanged by the clears.
    let base = layout.weights().block().address();
    for (tensor, offset) in weights.iter().zip(&offsets) {
        // SAFETY: `offset..offset + len` was taken from the weights tape, which no clear
        // frees; nothing writes to it any more.
        let there = unsafe { std::slice::from_raw_parts(base.add(*offset), tensor.len()) };
        assert_eq!(there, &tensor[..]);
    }
    Ok(format!("{}", layout.stat()))
}

#[test]
fn cyb_call_sites_compile_and_run() {
    let test = "cyb_call_sites_compile_and_run";
    if is_child(test) {
        // Pinning is cyb's default: lock as much as this process may (the hard limit).
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls on this (child) process's own limits.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl), 0);
            rl.rlim_cur = rl.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl), 0);
        }
        let weights: Vec<Vec<u8>> = (1..=5u8).map(|i| vec![i; 1000 * i as usize]).collect();
        match cyb(&weights, 16, 8) {
            Ok(stat) => {
                assert!(stat.contains("MiB") && stat.contains("weights"), "{stat}");
                println!("{stat}");
            }
            // Refused only where the limit cannot hold the three tapes (about 3 MiB) and the
            // process may not exceed it: said, and a failure where pinning is required.
            Err(
                err @ MemError::LockRefused {
                    limit: Some(limit), ..
                },
            ) if limit < 4 << 20 && Limits::read().lock_exempt != Some(true) => {
                common::skip(test, "MEMLOCK", &format!("cannot pin 3 MiB: {err}"));
            }
            Err(err) => panic!("{err}"),
        }
        return;
    }
    // In a child of its own, so that other tests' locked memory does not count against
    // this process's RLIMIT_MEMLOCK.
    assert_child_passes(test);
}

#[test]
fn a_refused_tape_releases_the_ones_before_it() {
    if is_child("a_refused_tape_releases_the_ones_before_it") {
        let page = unimem::page_size();
        common::drop_privileges(4 * page as u64);
        let fds = common::open_fds();
        let err = Layout::new(page, page, 8 * page).unwrap_err();
        assert!(matches!(err, MemError::LockRefused { .. }), "{err}");
        assert_eq!(common::open_fds(), fds, "a memfd leaked");
        assert_eq!(common::status_bytes("VmLck:"), 0, "a lock leaked");
        assert!(!common::memfd_mapped("unimem.weights"));
        assert!(!common::memfd_mapped("unimem.scratch"));
        // The same Layout runs unpinned with Pin::BestEffort.
        let layout = Layout::builder(page, page, 8 * page)
            .pin(Pin::BestEffort)
            .build()
            .unwrap();
        assert!(layout.weights().block().is_pinned());
        assert!(!layout.history().block().is_pinned());
        return;
    }
    assert_child_passes("a_refused_tape_releases_the_ones_before_it");
}

#[test]
fn for_model_sizes_the_tapes() {
    let model = ModelShape {
        params: 100_000,
        weight_bits: 4,
        hidden: 64,
        layers: 2,
        kv_heads: 2,
        head_dim: 16,
        context: 128,
        kv_bytes: 2,
        batch: 2,
    };
    let page = unimem::page_size();
    let round = |n: usize| n.div_ceil(page) * page;
    let layout = model
        .builder()
        .unwrap()
        .pin(Pin::BestEffort)
        .build()
        .unwrap();
    assert_eq!(layout.weights().total(), round(50_000));
    assert_eq!(layout.scratch().total(), round(2 * 64 * 128 * 16));
    assert_eq!(
        layout.history().total(),
        round(2 * 2 * 2 * 2 * 16 * 128 * 2)
    );
    assert_eq!(
        Layout::for_model(&ModelShape { hidden: 0, ..model }).unwrap_err(),
        MemError::ModelZero { field: "hidden" }
    );
}

/// One step of a random program.
#[derive(Debug, Clone)]
enum Op {
    /// A take from tape 0 (weights), 1 (scratch) or 2 (history).
    Take {
        tape: usize,
        size: usize,
        align: usize,
    },
    ClearPass,
    ClearTalk,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize, 1..3000usize, 0..8u32).prop_map(|(tape, size, a)| Op::Take {
            tape,
            size,
            align: 1 << a
        }),
        2 => Just(Op::ClearPass),
        1 => Just(Op::ClearTalk),
    ]
}

/// What the Layout should hold: per tape, the head and the peak.
#[derive(Debug, Default)]
struct Model {
    used: [usize; 3],
    peak: [usize; 3],
    total: [usize; 3],
}

impl Model {
    /// Where a take of `size` aligned to `align` lands, if it fits (the Blocks are page
    /// aligned, so offsets align as addresses do).
    fn take(&mut self, tape: usize, size: usize, align: usize) -> Option<usize> {
        let start = self.used[tape].next_multiple_of(align);
        let end = start + size;
        if end > self.total[tape] {
            return None;
        }
        self.used[tape] = end;
        self.peak[tape] = self.peak[tape].max(end);
        Some(start)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Takes and clears in any order: the Stat follows the model, weights are never touched
    /// by a clear, peaks never go down, and used <= peak <= total throughout.
    #[test]
    fn takes_and_clears_follow_the_model(ops in prop::collection::vec(op(), 1..200)) {
        let mut layout = Layout::builder(16 << 10, 8 << 10, 12 << 10)
            .pin(Pin::BestEffort)
            .build()
            .unwrap();
        let mut model = Model {
            total: [16 << 10, 8 << 10, 12 << 10],
            ..Model::default()
        };
        // The weights taken so far and the byte each was filled with.
        let mut weights: Vec<(usize, usize, u8)> = Vec::new();
        let mut before = layout.stat();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Take { tape, size, align } => {
                    let t = [layout.weights(), layout.scratch(), layout.history()][tape];
                    let got = t.take(size, align);
                    let expected = model.take(tape, size, align);
                    prop_assert_eq!(got.and_then(|p| t.offset_of(p)), expected);
                    if let Some(p) = got {
                        prop_assert_eq!(p as usize % align, 0);
                        let fill = i as u8;
                        // SAFETY: a fresh take of `size` bytes.
                        unsafe { p.write_bytes(fill, size) };
                        if tape == 0 {
                            weights.push((expected.unwrap(), size, fill));
                        }
                    }
                }
                Op::ClearPass => {
                    layout.clear_pass();
                    model.used[1] = 0;
                }
                Op::ClearTalk => {
                    layout.clear_talk();
                    model.used[1] = 0;
                    model.used[2] = 0;
                }
            }
            let stat = layout.stat();
            let used = [stat.weights_used, stat.scratch_used, stat.history_used];
            let peak = [stat.weights_peak, stat.scratch_peak, stat.history_peak];
            let total = [stat.weights_total, stat.scratch_total, stat.history_total];
            let was = [before.weights_peak, before.scratch_peak, before.history_peak];
            prop_assert_eq!(used, model.used);
            prop_assert_eq!(peak, model.peak);
            prop_assert_eq!(total, model.total);
            for t in 0..3 {
                prop_assert!(used[t] <= peak[t] && peak[t] <= total[t]);
                prop_assert!(peak[t] >= was[t]);
            }
            prop_assert!(stat.weights_used >= before.weights_used);
            prop_assert_eq!(layout.total(), model.total.iter().sum::<usize>());
            before = stat;
        }
        let base = layout.weights().block().address();
        for (offset, size, fill) in weights {
            // SAFETY: a take from the weights tape, which no clear frees; no one writes
            // to it now.
            let bytes = unsafe { std::slice::from_raw_parts(base.add(offset), size) };
            prop_assert!(bytes.iter().all(|&b| b == fill));
        }
    }
}

/// One step of a random program over a paged Layout.
#[derive(Debug, Clone)]
enum PagedOp {
    /// A scratch take.
    Scratch(usize),
    /// A KV cell for a block table.
    TakeCell,
    /// Release the `n % len`-th live id.
    Release(usize),
    /// Release an id from before the last `clear_talk` (must be refused).
    ReleaseStale(usize),
    ClearPass,
    ClearTalk,
}

fn paged_op() -> impl Strategy<Value = PagedOp> {
    prop_oneof![
        4 => (1..2000usize).prop_map(PagedOp::Scratch),
        4 => Just(PagedOp::TakeCell),
        2 => any::<usize>().prop_map(PagedOp::Release),
        1 => any::<usize>().prop_map(PagedOp::ReleaseStale),
        2 => Just(PagedOp::ClearPass),
        1 => Just(PagedOp::ClearTalk),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A paged history against a model: cells in use and at peak follow the model, ids
    /// from before a `clear_talk` are refused, scratch clears never touch the cells, and
    /// used <= peak <= total throughout.
    #[test]
    fn a_paged_history_follows_the_model(ops in prop::collection::vec(paged_op(), 1..200)) {
        const CELLS: usize = 12;
        let mut layout = Layout::builder(4096, 8 << 10, 0)
            .history_cells(200, CELLS)
            .pin(Pin::BestEffort)
            .build()
            .unwrap();
        let cell = layout.history_grid().unwrap().cell_size();
        prop_assert_eq!(cell, 256);
        let mut live: Vec<(unimem::CellId, u8)> = Vec::new();
        let mut stale: Vec<unimem::CellId> = Vec::new();
        let (mut scratch, mut scratch_peak, mut peak) = (0usize, 0usize, 0usize);
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                PagedOp::Scratch(size) => {
                    let got = layout.scratch().take(size, 64);
                    let start = scratch.next_multiple_of(64);
                    if start + size <= 8 << 10 {
                        prop_assert!(got.is_some());
                        scratch = start + size;
                        scratch_peak = scratch_peak.max(scratch);
                    } else {
                        prop_assert!(got.is_none());
                    }
                }
                PagedOp::TakeCell => {
                    let got = layout.history_grid().unwrap().take().map(|c| c.into_id());
                    prop_assert_eq!(got.is_some(), live.len() < CELLS);
                    if let Some(id) = got {
                        let fill = i as u8;
                        layout.history_grid_mut().unwrap().cell_mut(id).unwrap().fill(fill);
                        live.push((id, fill));
                        peak = peak.max(live.len());
                    }
                }
                PagedOp::Release(n) if !live.is_empty() => {
                    let (id, _) = live.swap_remove(n % live.len());
                    prop_assert!(layout.history_grid().unwrap().release(id).is_ok());
                    // Twice is an error.
                    prop_assert!(layout.history_grid().unwrap().release(id).is_err());
                }
                PagedOp::Release(_) => {}
                PagedOp::ReleaseStale(n) if !stale.is_empty() => {
                    let id = stale[n % stale.len()];
                    let refused = layout.history_grid().unwrap().release(id);
                    let is_stale = matches!(refused, Err(MemError::StaleCell { .. }));
                    prop_assert!(is_stale, "{:?}", refused);
                }
                PagedOp::ReleaseStale(_) => {}
                PagedOp::ClearPass => {
                    layout.clear_pass();
                    scratch = 0;
                }
                PagedOp::ClearTalk => {
                    layout.clear_talk();
                    scratch = 0;
                    stale.extend(live.drain(..).map(|(id, _)| id));
                }
            }
            let stat = layout.stat();
            prop_assert_eq!(stat.scratch_used, scratch);
            prop_assert_eq!(stat.scratch_peak, scratch_peak);
            prop_assert_eq!(stat.history_used, live.len() * cell);
            prop_assert_eq!(stat.history_peak, peak * cell);
            prop_assert_eq!(stat.history_total, CELLS * cell);
            prop_assert_eq!(stat.history_cell, cell);
            prop_assert!(stat.history_used <= stat.history_peak);
            prop_assert!(stat.history_peak <= stat.history_total);
            // Live cells keep what was written, whatever the scratch clears did.
            let grid = layout.history_grid_mut().unwrap();
            for &(id, fill) in &live {
                prop_assert!(grid.cell_mut(id).unwrap().iter().all(|&b| b == fill));
            }
        }
    }
}

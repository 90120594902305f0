//! Layout: size a Layout for a model, fill its weights, run a simulated decode loop with a
//! paged history (scratch takes per layer, `clear_pass` per token, KV cells per sequence,
//! `clear_talk` per conversation), verify everything, and time it.

use std::time::{Duration, Instant};

use unimem::{CellId, Layout, MemError, ModelShape, Pin};

use crate::report::{Report, Section, Status, fmt_bytes, fmt_time};

const LAYERS: usize = 16;
const HIDDEN: usize = 2048;
const HEADS: usize = 32;
const KV_HEADS: usize = 8;
const HEAD_DIM: usize = 64;
const FFN: usize = 5632;
const CONTEXT: usize = 256;
const SEQUENCES: usize = 4;
const CELL_TOKENS: usize = 16;
/// A token's time budget, against which the allocator's share is judged.
const BUDGET: Duration = Duration::from_millis(20);

pub(crate) fn exercise(report: &mut Report, weights: usize) {
    let mut s = Section::new("Layout");
    let model = ModelShape {
        params: weights / 2,
        weight_bits: 16,
        hidden: HIDDEN,
        layers: LAYERS,
        kv_heads: KV_HEADS,
        head_dim: HEAD_DIM,
        context: CONTEXT,
        kv_bytes: 2,
        batch: SEQUENCES,
    };
    let start = Instant::now();
    let (mut layout, refusal) = match open(&model) {
        Ok(opened) => opened,
        Err(err) => {
            s.text("open", format!("refused: {err}"));
            report.add(s);
            report.verdict("layout", Status::Refused, err.to_string());
            return;
        }
    };
    s.time("open (3 Blocks)", start.elapsed());
    let grid = layout.history_grid().map(|g| (g.total(), g.cell_size()));
    s.text(
        "model",
        format!(
            "{LAYERS} layers, hidden {HIDDEN}, {KV_HEADS} KV heads of {HEAD_DIM}, context \
             {CONTEXT}, {SEQUENCES} sequences"
        ),
    );
    s.text(
        "tapes",
        format!(
            "weights {}, scratch {}, history {} cells of {} ({})",
            fmt_bytes(layout.weights().total() as u64),
            fmt_bytes(layout.scratch().total() as u64),
            grid.map_or(0, |g| g.0),
            fmt_bytes(grid.map_or(0, |g| g.1) as u64),
            if layout.weights().block().is_pinned() {
                "pinned"
            } else {
                "not pinned"
            }
        ),
    );
    let mut faults = Vec::new();

    // Weights: fill the whole tape with a pattern, in 64-byte-aligned tensors.
    let start = Instant::now();
    let tensors = fill_weights(&layout);
    s.rate(
        format!("fill weights, {tensors} tensors"),
        layout.weights().used() as u64,
        start.elapsed(),
    );

    // Decode, touching every byte; then the same takes alone, for the allocator's share.
    let touched = decode(&mut layout, true, &mut faults);
    let stat = layout.stat();
    let bare = decode(&mut layout, false, &mut faults);
    for (tape, used, peak, total) in [
        (
            "weights",
            stat.weights_used,
            stat.weights_peak,
            stat.weights_total,
        ),
        (
            "scratch",
            stat.scratch_used,
            stat.scratch_peak,
            stat.scratch_total,
        ),
        (
            "history",
            stat.history_used,
            stat.history_peak,
            stat.history_total,
        ),
    ] {
        s.row(
            format!("stat {tape}"),
            format!(
                "{} used, {} at peak, of {}",
                fmt_bytes(used as u64),
                fmt_bytes(peak as u64),
                fmt_bytes(total as u64)
            ),
            serde_json::json!({"used": used, "peak": peak, "total": total}),
        );
    }
    let per_token = |run: &Run| run.time / run.tokens.max(1) as u32;
    s.time("token, bytes written", per_token(&touched));
    s.time("token, allocator only", per_token(&bare));
    let share = per_token(&bare).as_secs_f64() / BUDGET.as_secs_f64() * 100.0;
    s.row(
        "allocator share",
        format!("{share:.3}% of a 20 ms token"),
        serde_json::json!(share),
    );

    // After the talk: scratch and history empty, weights intact.
    let after = layout.stat();
    if after.scratch_used != 0 || after.history_used != 0 {
        faults.push(format!(
            "clear_talk left {} B of scratch and {} B of history",
            after.scratch_used, after.history_used
        ));
    }
    if after.weights_used != stat.weights_used {
        faults.push("the weights tape changed during decoding".into());
    }
    let start = Instant::now();
    let wrong = verify_weights(&layout);
    s.rate(
        "verify weights",
        layout.weights().used() as u64,
        start.elapsed(),
    );
    if wrong != 0 {
        faults.push(format!("{wrong} weight words changed during decoding"));
    }
    report.add(s);

    if !faults.is_empty() {
        report.verdict("layout", Status::Failed, faults.join("; "));
    } else if let Some(err) = refusal {
        report.verdict(
            "layout",
            Status::Refused,
            format!("pinning refused ({err}); an unpinned Layout works"),
        );
    } else {
        report.verdict(
            "layout",
            Status::Works,
            format!(
                "{} tokens decoded over a paged history; allocator {} per token ({share:.3}% \
                 of 20 ms); weights intact",
                touched.tokens,
                fmt_time(per_token(&bare))
            ),
        );
    }
}

/// A pinned Layout for `model`, or an unpinned one with the refusal.
fn open(model: &ModelShape) -> Result<(Layout, Option<MemError>), MemError> {
    let build = |pin| {
        model
            .paged_builder(CELL_TOKENS)?
            .name("unimem-layout")
            .pin(pin)
            .build()
    };
    match build(Pin::Required) {
        Ok(layout) => Ok((layout, None)),
        Err(err @ (MemError::LockRefused { .. } | MemError::PinUnsupported { .. })) => {
            Ok((build(Pin::BestEffort)?, Some(err)))
        }
        Err(err) => Err(err),
    }
}

/// Tensors of 1 MiB (the last one smaller) until the weights tape is full; each word holds
/// its index. Returns the number of tensors.
fn fill_weights(layout: &Layout) -> usize {
    let mut n = 0;
    let mut word = 0u64;
    loop {
        let len = (layout.weights().free() / 8).min(1 << 17);
        let Some(tensor) = (len > 0)
            .then(|| layout.weights().take_slice::<u64>(len))
            .flatten()
        else {
            return n;
        };
        for x in tensor {
            *x = pattern(word);
            word += 1;
        }
        n += 1;
    }
}

/// Counts the words of the weights that no longer hold their pattern.
fn verify_weights(layout: &Layout) -> usize {
    let base = layout.weights().block().address().cast::<u64>();
    let words = layout.weights().used() / 8;
    // SAFETY: the first `used()` bytes of the weights tape were taken by `fill_weights`,
    // whose slices are gone; nothing else refers to them, and the Layout never clears them.
    let taken = unsafe { std::slice::from_raw_parts(base, words) };
    taken
        .iter()
        .enumerate()
        .filter(|&(i, &x)| x != pattern(i as u64))
        .count()
}

fn pattern(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5
}

struct Run {
    tokens: usize,
    time: Duration,
}

/// One conversation: every sequence decodes `CONTEXT` tokens, a cell per 16; `touch`
/// writes every byte taken.
fn decode(layout: &mut Layout, touch: bool, faults: &mut Vec<String>) -> Run {
    let token_kv = LAYERS * 2 * KV_HEADS * HEAD_DIM * 2;
    let mut tables: Vec<Vec<CellId>> = (0..SEQUENCES)
        .map(|_| Vec::with_capacity(CONTEXT / CELL_TOKENS))
        .collect();
    let start = Instant::now();
    for pos in 0..CONTEXT {
        let scratch = layout.scratch();
        for _ in 0..LAYERS {
            for len in tensors(pos) {
                // Touching: a safe typed take (reused bytes come zeroed), then written.
                // Not touching: the runtime's raw call site, the allocator's work alone.
                let taken = if touch {
                    scratch.take_slice::<f32>(len).map(|x| x.fill(1.0))
                } else {
                    scratch.take(len * 4, 64).map(|p| {
                        std::hint::black_box(p);
                    })
                };
                match taken {
                    Some(()) => {}
                    None => {
                        faults.push(format!("scratch full at position {pos}"));
                        return Run {
                            tokens: 0,
                            time: start.elapsed(),
                        };
                    }
                }
            }
        }
        let Some(grid) = layout.history_grid_mut() else {
            faults.push("the history is not a Grid".into());
            return Run {
                tokens: 0,
                time: start.elapsed(),
            };
        };
        for table in &mut tables {
            if pos % CELL_TOKENS == 0 {
                match grid.try_take() {
                    Ok(cell) => table.push(cell.into_id()),
                    Err(err) => {
                        faults.push(format!("no KV cell at position {pos}: {err}"));
                        return Run {
                            tokens: 0,
                            time: start.elapsed(),
                        };
                    }
                }
            }
            if touch {
                let id = table[table.len() - 1];
                match grid.cell_mut(id) {
                    Ok(cell) => {
                        let slot = pos % CELL_TOKENS * token_kv;
                        cell[slot..slot + token_kv].fill(pos as u8);
                    }
                    Err(err) => faults.push(format!("a live cell id was refused: {err}")),
                }
            }
        }
        layout.clear_pass();
    }
    layout.clear_talk();
    Run {
        tokens: CONTEXT * SEQUENCES,
        time: start.elapsed(),
    }
}

/// The scratch tensors of one layer at `pos` for all sequences, in `f32`s.
fn tensors(pos: usize) -> [usize; 12] {
    let h = HIDDEN * SEQUENCES;
    let kv = KV_HEADS * HEAD_DIM * SEQUENCES;
    let f = FFN * SEQUENCES;
    [
        h,
        h,
        kv,
        kv,
        HEADS * (pos + 1) * SEQUENCES,
        h,
        h,
        h,
        h,
        f,
        f,
        h,
    ]
}

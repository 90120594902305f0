//! A simulated decode loop over a [`Layout`]: what an inference runtime does with unimem.
//!
//! ```sh
//! cargo run --release --example decode_loop
//! ```
//!
//! 1. Sizes a Layout for a small model (8 layers, hidden 512, grouped-query attention with
//!    2 KV heads, a context of 1024 tokens, 4 sequences at once) with a paged history: a
//!    Grid of KV cells of 16 tokens.
//! 2. Fills the weights: every tensor taken from the weights tape and written.
//! 3. Decodes: two conversations of four concurrent sequences of different lengths. Every
//!    step decodes one token of every live sequence: per layer a dozen scratch tensors are
//!    taken and written, the token's keys and values are written into its sequence's
//!    current KV cell (a new cell every 16 tokens), and `clear_pass` frees scratch. A
//!    finished sequence gives its cells back; `clear_talk` ends the conversation.
//! 4. Prints the Stat, and the allocator's time per token: the same decode loop once more
//!    with the same takes and clears, as raw takes that touch no byte, against the time of
//!    the loop that writes them.
//!
//! Every byte taken is written (through safe typed takes, which also zero reused bytes),
//! so the token time includes the memory traffic a real runtime has (a real one also
//! computes; this one only fills).

use std::hint::black_box;
use std::time::{Duration, Instant};

use unimem::{CellId, Layout, MemError, ModelShape, Pin};

const LAYERS: usize = 8;
const HIDDEN: usize = 512;
const HEADS: usize = 8;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 64;
const FFN: usize = 1408;
const CONTEXT: usize = 1024;
const SEQUENCES: usize = 4;
/// Tokens per KV cell.
const CELL_TOKENS: usize = 16;
/// Each sequence's length in the two conversations.
const LENGTHS: [[usize; SEQUENCES]; 2] = [[1024, 700, 333, 96], [512, 1024, 64, 800]];

/// The weight tensors of one layer: `(rows, columns)`.
const LAYER_TENSORS: [(usize, usize); 9] = [
    (HIDDEN, 1),                   // attention norm
    (HIDDEN, HEADS * HEAD_DIM),    // Q
    (HIDDEN, KV_HEADS * HEAD_DIM), // K
    (HIDDEN, KV_HEADS * HEAD_DIM), // V
    (HEADS * HEAD_DIM, HIDDEN),    // output
    (HIDDEN, 1),                   // FFN norm
    (HIDDEN, FFN),                 // gate
    (HIDDEN, FFN),                 // up
    (FFN, HIDDEN),                 // down
];

fn main() -> Result<(), MemError> {
    let params = LAYERS * LAYER_TENSORS.iter().map(|(r, c)| r * c).sum::<usize>();
    let model = ModelShape {
        params,
        weight_bits: 16,
        hidden: HIDDEN,
        layers: LAYERS,
        kv_heads: KV_HEADS,
        head_dim: HEAD_DIM,
        context: CONTEXT,
        kv_bytes: 2,
        batch: SEQUENCES,
    };
    // Pinned if the OS allows it (run as root, or raise `ulimit -l`), unpinned otherwise.
    let start = Instant::now();
    let mut layout = model
        .paged_builder(CELL_TOKENS)?
        .name("decode-loop")
        .pin(Pin::BestEffort)
        .build()?;
    println!(
        "layout: {:.1} MiB in three Blocks, opened in {:.2?} ({})",
        layout.total() as f64 / (1 << 20) as f64,
        start.elapsed(),
        if layout.weights().block().is_pinned() {
            "pinned"
        } else {
            "not pinned: raise `ulimit -l` to pin"
        }
    );

    // Weights: every tensor taken aligned to 64 and filled, as a loader would.
    let start = Instant::now();
    let mut offsets = Vec::new();
    for layer in 0..LAYERS {
        for (i, (rows, columns)) in LAYER_TENSORS.iter().enumerate() {
            let tensor = layout.weights().try_take_slice::<u16>(rows * columns)?;
            tensor.fill((layer * 16 + i) as u16);
            offsets.push(layout.weights().offset_of(tensor.as_ptr()));
        }
    }
    println!(
        "weights: {} tensors, {:.1} MiB written in {:.2?}",
        offsets.len(),
        layout.weights().used() as f64 / (1 << 20) as f64,
        start.elapsed()
    );

    let touched = decode(&mut layout, true)?;
    println!("\n{}\n", layout.stat());
    let bare = decode(&mut layout, false)?;
    let per_token = |run: &Run| run.time / run.tokens as u32;
    println!(
        "decode: {} tokens in {} steps of up to {SEQUENCES} sequences, {:.2?} per token with \
         every byte written",
        touched.tokens,
        touched.steps,
        per_token(&touched)
    );
    println!(
        "allocator: {:.2?} per token ({:.2}% of the token's time, {:.4}% of a 20 ms token): \
         the same loop with raw takes (`take(bytes, 64)`) that touch nothing: {} scratch \
         takes and a clear_pass per step, a KV cell per sequence every {CELL_TOKENS} tokens",
        per_token(&bare),
        100.0 * bare.time.as_secs_f64() / touched.time.as_secs_f64(),
        100.0 * per_token(&bare).as_secs_f64() / 0.020,
        LAYERS * 12,
    );
    Ok(())
}

/// What one run of the decode loop did.
struct Run {
    tokens: usize,
    steps: usize,
    time: Duration,
}

/// Runs the two conversations; `touch` writes every byte taken.
fn decode(layout: &mut Layout, touch: bool) -> Result<Run, MemError> {
    let mut run = Run {
        tokens: 0,
        steps: 0,
        time: Duration::ZERO,
    };
    let token_kv = LAYERS * 2 * KV_HEADS * HEAD_DIM * 2;
    for lengths in LENGTHS {
        // Each sequence's block table: its KV cells, in order.
        let mut tables: Vec<Vec<CellId>> = vec![Vec::new(); SEQUENCES];
        let start = Instant::now();
        for pos in 0..CONTEXT {
            let batch = lengths.iter().filter(|&&len| pos < len).count();
            if batch == 0 {
                break;
            }
            // Scratch: a dozen tensors per layer for the live sequences.
            let scratch = layout.scratch();
            for _layer in 0..LAYERS {
                for len in tensors(pos, batch) {
                    if touch {
                        // Safe and typed: reused bytes come zeroed, then they are written.
                        scratch.try_take_slice::<f32>(len)?.fill(pos as f32);
                    } else {
                        // The runtime's raw call site: the allocator's work alone.
                        black_box(scratch.try_take(len * 4, 64)?);
                    }
                }
            }
            // History: this token's keys and values, into each sequence's current cell.
            let grid = layout.history_grid_mut().expect("a paged history");
            for (s, &len) in lengths.iter().enumerate() {
                if pos >= len {
                    continue;
                }
                if pos % CELL_TOKENS == 0 {
                    tables[s].push(grid.try_take()?.into_id());
                }
                if touch {
                    let cell = grid.cell_mut(*tables[s].last().expect("a cell"))?;
                    let slot = pos % CELL_TOKENS * token_kv;
                    cell[slot..slot + token_kv].fill(s as u8);
                }
                if pos + 1 == len {
                    // The sequence is done: its cells go back for the others.
                    for id in tables[s].drain(..) {
                        grid.release(id)?;
                    }
                }
            }
            layout.clear_pass();
            run.tokens += batch;
            run.steps += 1;
        }
        layout.clear_talk();
        run.time += start.elapsed();
    }
    Ok(run)
}

/// The scratch tensors of one layer at position `pos` for `batch` sequences, in `f32`s:
/// input norm, Q, K, V, attention scores, attention output, output projection, residual,
/// FFN norm, gate, up, down.
fn tensors(pos: usize, batch: usize) -> [usize; 12] {
    let h = HIDDEN * batch;
    let kv = KV_HEADS * HEAD_DIM * batch;
    let f = FFN * batch;
    [h, h, kv, kv, HEADS * (pos + 1) * batch, h, h, h, h, f, f, h]
}

//! One simulated decode token of a 7B-class model: the allocator's work per token through a
//! Layout, against the same takes done with `Vec` allocations and with bumpalo, side by
//! side in one run.
//!
//! ```sh
//! cargo bench --bench layout -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The model is Llama-2-7B-shaped: 32 layers, hidden 4096, 32 heads of 128, FFN 11008, KV
//! in `f16`. One token takes a dozen scratch tensors per layer (384 takes, aligned to 64,
//! 4 KiB to 256 KiB: the attention scores grow with the position), frees them all at the
//! end of the token, and every 16 tokens takes one KV cell of 16 tokens (8 MiB). A
//! conversation is 256 tokens (16 cells), then the history is freed. Iteration `i` of a
//! benchmark is token `i % 256` of a conversation, so the per-conversation work is spread
//! over its tokens as in a real decode loop.
//!
//! Only the allocator's work is timed: the bytes are not touched (see
//! `examples/decode_loop.rs` for a loop that touches every byte it takes). Each
//! alternative returns its pointers through `black_box`.
//!
//! - `Layout, Tape::take`: `layout.scratch().take(bytes, 64)` (the `cyb` call site),
//!   `clear_pass()` per token, a Grid cell per 16 tokens (`take().into_id()`),
//!   `clear_talk()` per conversation;
//! - `Layout, Lane::take`: the same, scratch through a Lane made per token;
//! - `Vec`: a `Vec<f32>` per tensor, dropped at the end of the token; a `Vec<u8>` per KV
//!   cell, dropped at the end of the conversation;
//! - `bumpalo`: one `Bump` for scratch, reset per token; one for the KV cells, reset per
//!   conversation.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::alloc::Layout as AllocLayout;
use std::hint::black_box;

use bumpalo::Bump;
use criterion::{Criterion, criterion_group, criterion_main};
use unimem::{CellId, Layout, ModelShape, Pin};

const LAYERS: usize = 32;
const HIDDEN: usize = 4096;
const HEADS: usize = 32;
const HEAD_DIM: usize = 128;
const FFN: usize = 11008;
/// Tokens per KV cell.
const CELL_TOKENS: usize = 16;
/// Tokens per conversation.
const CONVERSATION: usize = 256;
const ALIGN: usize = 64;

/// The model: Llama 2 7B in f16, a context of one conversation.
fn model() -> ModelShape {
    ModelShape {
        params: 6_738_415_616,
        weight_bits: 16,
        hidden: HIDDEN,
        layers: LAYERS,
        kv_heads: HEADS,
        head_dim: HEAD_DIM,
        context: CONVERSATION,
        kv_bytes: 2,
        batch: 1,
    }
}

/// The scratch tensors of one layer at position `pos`, in bytes (`f32`): input norm, Q,
/// K, V, attention scores, attention output, output projection, FFN norm, gate, up,
/// activation, down.
fn tensors(pos: usize) -> [usize; 12] {
    let h = HIDDEN * 4;
    let f = FFN * 4;
    [h, h, h, h, HEADS * (pos + 1) * 4, h, h, h, f, f, f, h]
}

fn token(c: &mut Criterion) {
    let model = model();
    let cell = model.cell_bytes(CELL_TOKENS).unwrap();
    let cells = model.cells(CELL_TOKENS).unwrap();
    let mut group = c.benchmark_group(format!(
        "one 7B-class token ({LAYERS} layers x 12 scratch takes, a {} MiB KV cell per \
         {CELL_TOKENS} tokens)",
        cell >> 20
    ));

    // The weights are never touched here: a small weights tape keeps the bench light.
    let mut layout = Layout::builder(1 << 20, model.scratch_bytes().unwrap(), 0)
        .history_cells(cell, cells)
        .pin(Pin::BestEffort)
        .build()
        .unwrap();
    let mut table: Vec<CellId> = Vec::with_capacity(cells);
    let mut pos = 0;
    group.bench_function("Layout, Tape::take", |b| {
        b.iter(|| {
            if pos == CONVERSATION {
                table.clear();
                layout.clear_talk();
                pos = 0;
            }
            if pos % CELL_TOKENS == 0 {
                let grid = layout.history_grid().unwrap();
                table.push(grid.take().unwrap().into_id());
            }
            for _ in 0..LAYERS {
                for bytes in tensors(pos) {
                    black_box(layout.scratch().take(bytes, ALIGN).unwrap());
                }
            }
            layout.clear_pass();
            pos += 1;
        })
    });

    table.clear();
    layout.clear_talk();
    pos = 0;
    group.bench_function("Layout, Lane::take", |b| {
        b.iter(|| {
            if pos == CONVERSATION {
                table.clear();
                layout.clear_talk();
                pos = 0;
            }
            if pos % CELL_TOKENS == 0 {
                let grid = layout.history_grid().unwrap();
                table.push(grid.take().unwrap().into_id());
            }
            let mut lane = layout.scratch().lane(4 << 20);
            for _ in 0..LAYERS {
                for bytes in tensors(pos) {
                    black_box(lane.take(bytes, ALIGN).unwrap());
                }
            }
            drop(lane);
            layout.clear_pass();
            pos += 1;
        })
    });

    let mut kv: Vec<Vec<u8>> = Vec::with_capacity(cells);
    let mut scratch: Vec<Vec<f32>> = Vec::with_capacity(LAYERS * 12);
    pos = 0;
    group.bench_function("Vec", |b| {
        b.iter(|| {
            if pos == CONVERSATION {
                kv.clear();
                pos = 0;
            }
            if pos % CELL_TOKENS == 0 {
                kv.push(black_box(Vec::with_capacity(cell)));
            }
            for _ in 0..LAYERS {
                for bytes in tensors(pos) {
                    scratch.push(black_box(Vec::with_capacity(bytes / 4)));
                }
            }
            scratch.clear();
            pos += 1;
        })
    });
    drop(kv);

    let mut bump = Bump::with_capacity(model.scratch_bytes().unwrap());
    let mut kv = Bump::with_capacity(cell * cells);
    pos = 0;
    group.bench_function("bumpalo", |b| {
        b.iter(|| {
            if pos == CONVERSATION {
                kv.reset();
                pos = 0;
            }
            if pos % CELL_TOKENS == 0 {
                let layout = AllocLayout::from_size_align(cell, ALIGN).unwrap();
                black_box(kv.alloc_layout(layout));
            }
            for _ in 0..LAYERS {
                for bytes in tensors(pos) {
                    let layout = AllocLayout::from_size_align(bytes, ALIGN).unwrap();
                    black_box(bump.alloc_layout(layout));
                }
            }
            bump.reset();
            pos += 1;
        })
    });
    group.finish();
}

criterion_group!(benches, token);
criterion_main!(benches);

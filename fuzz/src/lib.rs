//! The fuzz targets' logic, as a library: each target in `fuzz_targets/` is one call into
//! it, so the same code runs under libFuzzer, in `cargo test` (every seed once) and in a
//! debugger.
//!
//! | module | target | what it feeds and what it checks |
//! |---|---|---|
//! | [`share`] | `share_import` | real descriptors (memfd, pipe, tmpfs and disk files, ...) of fuzzed size, seals, holes and headers, sent over a socket and imported: no crash, no hang, nothing left open, locked or mapped |
//! | [`tape`] | `tape_ops` | Tape and Lane op sequences against a model: disjoint, inside, aligned, zeroed typed takes, counts |
//! | [`grid`] | `grid_ops` | Grid, Cell, CellId and GridLane op sequences against a model: one owner per cell, counts, stale and foreign ids |
//!
//! Inputs are decoded by [`input::Reader`], which reads past the end as zeros, so every byte
//! string is a valid input; [`input::Writer`] encodes the seeds (`seeds.rs`).

#![deny(unsafe_op_in_unsafe_fn)]

pub mod grid;
pub mod input;
pub mod proc;
pub mod share;
pub mod tape;

#[cfg(test)]
mod seeds;

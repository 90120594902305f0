//! `grid_ops`: see `unimem_fuzz::grid`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    unimem_fuzz::grid::run(data);
});

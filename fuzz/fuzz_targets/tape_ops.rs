//! `tape_ops`: see `unimem_fuzz::tape`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    unimem_fuzz::tape::run(data);
});

//! `share_import`: see `unimem_fuzz::share`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    unimem_fuzz::share::run(data);
});

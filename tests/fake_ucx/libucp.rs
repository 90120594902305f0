//! A stand-in for UCX's `libucp.so.0`, for the tests of `Engine::load`'s refusals on a
//! machine that has the real one: `ucp_get_version` answers what the test asks for, and
//! every other function unimem resolves exists but aborts the process if it is ever called
//! (a load that is refused must not call any of them).
//!
//! Built by `tests/ucx_faults.rs` with
//! `rustc --edition 2021 --crate-type cdylib -O tests/fake_ucx/libucp.rs -o DIR/libucp.so.0`
//! and found through `LD_LIBRARY_PATH=DIR` by unimem's `dlopen("libucp.so.0")`. With
//! `--cfg unimem_fake_ucx_partial` the library lacks `ucp_put_nbx`. Environment:
//!
//! - `UNIMEM_FAKE_UCX_VERSION`: `MAJOR.MINOR.RELEASE` that `ucp_get_version` reports
//!   (default `1.12.0`).

#![allow(clippy::missing_safety_doc)]

use std::ffi::c_uint;

/// `void ucp_get_version(unsigned *major, unsigned *minor, unsigned *release)`.
#[no_mangle]
pub unsafe extern "C" fn ucp_get_version(
    major: *mut c_uint,
    minor: *mut c_uint,
    release: *mut c_uint,
) {
    let text = std::env::var("UNIMEM_FAKE_UCX_VERSION").unwrap_or_else(|_| "1.12.0".into());
    let mut parts = text
        .split('.')
        .map(|part| part.parse::<c_uint>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    let (a, b, c) = (next(), next(), next());
    // SAFETY: the caller passes three pointers, each valid for one write.
    unsafe {
        *major = a;
        *minor = b;
        *release = c;
    }
}

/// Functions that exist only to be found; calling one is a bug in the test or in unimem.
macro_rules! never_called {
    ($($name:ident),* $(,)?) => {
        $(
            #[no_mangle]
            pub extern "C" fn $name() {
                eprintln!(concat!("stand-in libucp.so.0: ", stringify!($name), " was called"));
                std::process::abort();
            }
        )*
    };
}

never_called!(
    ucp_init_version,
    ucp_cleanup,
    ucp_worker_create,
    ucp_worker_destroy,
    ucp_worker_get_address,
    ucp_worker_release_address,
    ucp_worker_progress,
    ucp_worker_flush_nbx,
    ucp_ep_create,
    ucp_ep_close_nbx,
    ucp_ep_flush_nbx,
    ucp_mem_map,
    ucp_mem_unmap,
    ucp_rkey_pack,
    ucp_rkey_buffer_release,
    ucp_ep_rkey_unpack,
    ucp_rkey_destroy,
    ucp_get_nbx,
    ucp_request_check_status,
    ucp_request_free,
    ucs_status_string,
);

#[cfg(not(unimem_fake_ucx_partial))]
never_called!(ucp_put_nbx);

//! Raw calls into the operating system, one module per OS.
//!
//! Every function here is a thin wrapper over one system call or library function: it turns
//! the C error convention into a `Result` carrying `errno` and does nothing else. Policy
//! (what to check, what to release on failure) lives in the Block backends.
//!
//! Each wrapper that can fail starts with `fault!("call")`, the hook of the test-only fault
//! injection (`fault.rs`, feature `fault-injection`); without the feature it is nothing.

/// Fails the enclosing wrapper with an injected code when a rule of `fault.rs` says so.
/// Expands to nothing without the feature `fault-injection`.
macro_rules! fault {
    ($call:literal) => {
        #[cfg(feature = "fault-injection")]
        {
            if let Some(code) = crate::ffi::fault::hit($call) {
                return Err(crate::ffi::fault::Code::injected(code));
            }
        }
    };
}

#[cfg(feature = "fault-injection")]
pub mod fault;

#[cfg_attr(unix, path = "unix.rs")]
#[cfg_attr(not(unix), path = "stub.rs")]
mod os;

#[cfg(all(unix, not(miri)))]
pub(crate) use os::memlock_limit;
pub(crate) use os::{errno_name, page_size};

#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) mod linux;

#[cfg(all(target_os = "macos", not(miri)))]
pub(crate) mod apple;
#[cfg(feature = "cuda")]
#[cfg_attr(all(target_os = "linux", not(miri)), path = "cuda.rs")]
#[cfg_attr(not(all(target_os = "linux", not(miri))), path = "cuda_stub.rs")]
pub(crate) mod cuda;
#[cfg(all(feature = "ucx", unix, not(miri)))]
pub(crate) mod ucx;

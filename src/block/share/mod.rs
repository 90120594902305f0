//! Sharing a Block with other processes (Linux): the same pages, mapped in each.
//!
//! | file | concept |
//! |---|---|
//! | `message.rs` | [`Share`]: a sealed memfd and its header, sent in one `SCM_RIGHTS` message |
//! | `import.rs` | `Block::import` / `Block::import_read_only`: a received share mapped here |
//! | `read_only.rs` | [`ReadOnlyBlock`]: an import (or a frozen Block) with shared views only |
//! | `freeze.rs` | `Block::freeze`: the bytes made immutable for every process |
//! | `mapped.rs` | the registry of files this process maps, which refuses aliasing imports |
//!
//! The registry is plain Rust and compiled for unit tests on every target (Miri included);
//! the rest needs Linux.

#[cfg(all(target_os = "linux", not(miri)))]
mod freeze;
#[cfg(all(target_os = "linux", not(miri)))]
mod import;
pub(crate) mod mapped;
#[cfg(all(target_os = "linux", not(miri)))]
mod message;
#[cfg(all(target_os = "linux", not(miri)))]
mod read_only;

#[cfg(all(target_os = "linux", not(miri)))]
pub use message::Share;
#[cfg(all(target_os = "linux", not(miri)))]
pub use read_only::ReadOnlyBlock;
#[cfg(all(target_os = "linux", not(miri)))]
pub(crate) use read_only::check_read;

//! Fault injection (feature `fault-injection`, for tests only): make the N-th call of a
//! given system call or driver function fail with a chosen error code.
//!
//! Every wrapper in `ffi/` starts with `fault!("name")`, where `name` is the C function it
//! calls (`"mlock"`, `"mmap"`, `"recvmsg"`, `"cuMemHostRegister_v2"`, ...). Without the
//! feature the macro expands to nothing. With it, each call is counted, and a call that
//! matches an armed rule returns the rule's code (an `errno`, or a `CUresult` for CUDA
//! functions) without reaching the OS, so the error paths above it run exactly as they
//! would on a real refusal.
//!
//! [`live_ids`] and [`mapped`] count what a Block holds in this process's own registries
//! (ids, mapped files), so that a test can check that an error path gave them back; the
//! descriptors, mappings and locks it checks through `/proc/self`.
//!
//! The rules are process-wide (populating threads call `madvise` too): tests that arm
//! them run in a child process of their own, like every test that changes process state
//! (this example is a doctest binary of its own, `standalone_crate`).
//!
//! ```standalone_crate
//! # #[cfg(all(target_os = "linux", not(miri)))] {
//! use unimem::{Block, MemError, fault};
//!
//! fault::fail("memfd_create", 1, libc::EMFILE);
//! assert!(matches!(
//!     Block::open(4096),
//!     Err(MemError::Os { call: "memfd_create", errno: libc::EMFILE })
//! ));
//! assert_eq!(fault::calls("memfd_create"), 1);
//! fault::reset();
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One armed rule: fail calls `skip + 1 ..= skip + times` of `call`, counted from arming.
#[derive(Debug)]
struct Rule {
    call: &'static str,
    /// Matching calls still to let through before failing.
    skip: u64,
    /// Failures still to inject; `u64::MAX` for every call from then on.
    times: u64,
    code: i32,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    calls: BTreeMap<&'static str, u64>,
}

static STATE: Mutex<State> = Mutex::new(State {
    rules: Vec::new(),
    calls: BTreeMap::new(),
});

fn state() -> std::sync::MutexGuard<'static, State> {
    // A test that panicked while holding the lock leaves plain data behind: keep using it.
    STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Makes the `nth` call of `call` from now (1 for the next one) fail with `code`, once.
/// Rules for the same call are checked in the order they were armed.
pub fn fail(call: &'static str, nth: u64, code: i32) {
    state().rules.push(Rule {
        call,
        skip: nth.saturating_sub(1),
        times: 1,
        code,
    });
}

/// Makes every call of `call` from now fail with `code`, until [`reset`].
pub fn fail_always(call: &'static str, code: i32) {
    state().rules.push(Rule {
        call,
        skip: 0,
        times: u64::MAX,
        code,
    });
}

/// Disarms every rule and zeroes every count.
pub fn reset() {
    let mut state = state();
    state.rules.clear();
    state.calls.clear();
}

/// How many times `call` was made (failed or not) since the last [`reset`].
pub fn calls(call: &str) -> u64 {
    state().calls.get(call).copied().unwrap_or(0)
}

/// Whether an armed rule has failures left to inject (a test's check that its fault was
/// reached).
pub fn pending() -> bool {
    state().rules.iter().any(|rule| rule.times > 0)
}

/// How many Block ids are taken now: one per live Block, Tape, import or `ReadOnlyBlock`
/// of this process. A test compares it before and after an error path: an id that was
/// not given back would show here.
pub fn live_ids() -> usize {
    crate::block::live_ids()
}

/// How many mappings this process has in its registry of mapped memfds (Linux): one per
/// live Linux Block or import. A test compares it before and after an error path, as
/// [`live_ids`].
#[cfg(all(target_os = "linux", not(miri)))]
pub fn mapped() -> usize {
    crate::block::mapped_files()
}

/// An error code of a wrapper's own type, made from an injected `i32`: `errno` and
/// `CUresult` are `i32`, UCX's `ucs_status_t` is one byte.
pub(crate) trait Code {
    fn injected(code: i32) -> Self;
}

impl Code for i32 {
    fn injected(code: i32) -> i32 {
        code
    }
}

impl Code for i8 {
    fn injected(code: i32) -> i8 {
        code.clamp(i8::MIN.into(), i8::MAX.into()) as i8
    }
}

/// Counts a call of `call` and returns the code to fail it with, if a rule says so.
pub(crate) fn hit(call: &'static str) -> Option<i32> {
    let mut state = state();
    *state.calls.entry(call).or_insert(0) += 1;
    let rule = state
        .rules
        .iter_mut()
        .find(|rule| rule.call == call && rule.times > 0)?;
    if rule.skip > 0 {
        rule.skip -= 1;
        return None;
    }
    rule.times -= 1;
    Some(rule.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test touches the process-wide state, so no other test of this binary races it.
    #[test]
    fn nth_once_always_and_counts() {
        reset();
        fail("unit-test-call", 2, 7);
        assert_eq!(hit("unit-test-call"), None);
        assert!(pending());
        assert_eq!(hit("unit-test-call"), Some(7));
        assert_eq!(hit("unit-test-call"), None);
        assert!(!pending());
        fail_always("unit-test-call", 9);
        assert_eq!(hit("unit-test-call"), Some(9));
        assert_eq!(hit("unit-test-call"), Some(9));
        assert_eq!(calls("unit-test-call"), 5);
        reset();
        assert_eq!(calls("unit-test-call"), 0);
        assert_eq!(hit("unit-test-call"), None);
    }
}

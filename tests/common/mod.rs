//! Helpers for tests that need a process of their own: the test binary re-executes itself,
//! running one test, with `UNIMEM_CHILD` set. A multithreaded test process is never forked.

#![allow(dead_code, missing_docs)]

use std::process::{Command, Output};

const ROLE: &str = "UNIMEM_CHILD";

/// Whether this process is the child started by [`run_child`] for `test`.
pub(crate) fn is_child(test: &str) -> bool {
    std::env::var(ROLE).is_ok_and(|role| role == test)
}

/// Runs the test named `test` alone in a new process of this test binary and returns its
/// output once it has exited (it is reaped before this returns).
pub(crate) fn run_child(test: &str) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, test)
        .output()
        .expect("spawn child test process")
}

/// Runs `test` in a child and fails with its output unless it succeeded.
pub(crate) fn assert_child_passes(test: &str) {
    let out = run_child(test);
    assert!(
        out.status.success(),
        "child `{test}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The harness prints this line only if the filter matched and the test ran.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child `{test}` did not run exactly one test"
    );
}

/// A field of `/proc/self/status` given in kB, in bytes.
pub(crate) fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|kb| kb.parse::<u64>().unwrap() * 1024)
        .unwrap_or_else(|| panic!("{key} not in /proc/self/status"))
}

/// Number of open file descriptors of this process.
pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Whether `/proc/self/maps` shows a memfd mapping named `name`.
pub(crate) fn memfd_mapped(name: &str) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().any(|line| {
        line.split_once("/memfd:")
            .is_some_and(|(_, file)| file.trim_end_matches(" (deleted)") == name)
    })
}

/// Lowers RLIMIT_MEMLOCK to `limit` bytes and, when running as root, drops to uid/gid 65534
/// (`nobody`), which also drops CAP_IPC_LOCK. Only ever called in a child process.
pub(crate) fn drop_privileges(limit: u64) {
    let rl = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: plain system calls on this (child) process's own credentials and limits.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl), 0, "setrlimit");
        if libc::geteuid() == 0 {
            assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
            assert_eq!(libc::setgid(65534), 0, "setgid");
            assert_eq!(libc::setuid(65534), 0, "setuid");
        }
    }
}

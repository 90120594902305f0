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
    run_child_with(test, &[])
}

/// [`run_child`] with variables added to the child's environment.
pub(crate) fn run_child_with(test: &str, env: &[(&str, String)]) -> Output {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, test)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("spawn child test process")
}

/// Runs `test` in a child and fails with its output unless it succeeded.
pub(crate) fn assert_child_passes(test: &str) {
    assert_passed(test, &run_child(test));
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

/// A child process of this test binary running one test, holding the other end of a Unix
/// socket as its standard input (so the descriptor crosses `exec` without any unsafe
/// `pre_exec`). The child is killed and reaped when the `Peer` is dropped, whatever
/// happened, so no test leaves a process behind.
#[cfg(target_os = "linux")]
pub(crate) struct Peer {
    child: Option<std::process::Child>,
    socket: Option<std::os::unix::net::UnixStream>,
    test: String,
}

#[cfg(target_os = "linux")]
impl Peer {
    /// Starts `test` in a child with a socket to it; `env` adds variables.
    pub(crate) fn spawn(test: &str, env: &[(&str, String)]) -> Peer {
        use std::process::Stdio;
        let (here, there) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, test)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(there)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child test process");
        Peer {
            child: Some(child),
            socket: Some(here),
            test: test.to_owned(),
        }
    }

    /// This end of the socket.
    pub(crate) fn socket(&self) -> &std::os::unix::net::UnixStream {
        self.socket.as_ref().expect("socket still open")
    }

    /// Shares `extent` with the child, `access` as asked: one `Share` over the socket.
    pub(crate) fn send_share(&self, extent: &unimem::Extent, access: unimem::Access) {
        share(extent, access)
            .send(self.socket())
            .expect("send the share");
    }

    /// The child's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("child not reaped").id()
    }

    /// Closes this end of the socket: the child reads end of stream.
    pub(crate) fn close_socket(&mut self) {
        self.socket = None;
    }

    /// Sends SIGKILL to the child (it is reaped by `finish` or on drop).
    pub(crate) fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
    }

    /// Waits for the child's [`ack`]; if the child dies instead, fails with its output.
    pub(crate) fn wait_ack(&mut self) {
        use std::io::Read;
        let mut byte = [0u8; 1];
        if self.socket().read_exact(&mut byte).is_ok() && &byte == b"k" {
            return;
        }
        let test = self.test.clone();
        let out = self.finish_now();
        panic!(
            "child `{test}` stopped before acknowledging ({}):\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn finish_now(&mut self) -> Output {
        self.socket = None;
        let child = self.child.take().expect("child not reaped");
        child.wait_with_output().expect("wait for child")
    }

    /// Closes the socket, waits for the child to exit and returns its output.
    pub(crate) fn finish(mut self) -> Output {
        self.finish_now()
    }

    /// Waits for the child and fails with its output unless its one test passed.
    pub(crate) fn assert_passes(self) {
        let test = self.test.clone();
        let out = self.finish();
        assert_passed(&test, &out);
    }
}

#[cfg(target_os = "linux")]
impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A share of `extent` with `access`: `Extent::share`, or for `ReadWrite` the unsafe
/// `Extent::share_read_write`.
#[cfg(target_os = "linux")]
pub(crate) fn share(extent: &unimem::Extent, access: unimem::Access) -> unimem::Share {
    match access {
        unimem::Access::ReadOnly => extent.share().expect("share"),
        unimem::Access::ReadWrite => share_read_write(extent).expect("share"),
    }
}

/// `Extent::share_read_write` for the tests' processes.
#[cfg(target_os = "linux")]
pub(crate) fn share_read_write(extent: &unimem::Extent) -> Result<unimem::Share, unimem::MemError> {
    // SAFETY: the tests' processes keep the protocol of `specs/share.md`: each writes only
    // ranges it owns and hands them over by offset (acknowledged over the socket), and
    // where a test has two processes write at once on purpose, the process that checks
    // holds no Rust view of the racing bytes meanwhile (it reads after the writer stopped,
    // or with volatile loads).
    unsafe { extent.share_read_write() }
}

/// `Block::import` (read-write) for the tests' processes, which keep the protocol (see
/// [`share`]).
#[cfg(target_os = "linux")]
pub(crate) fn import(
    share: unimem::Share,
    pin: unimem::Pin,
) -> Result<unimem::Block, unimem::MemError> {
    // SAFETY: as in `share`: the tests' processes keep the protocol of `specs/share.md`.
    unsafe { unimem::Block::import(share, pin) }
}

/// Fails with the child's output unless it exited successfully having run one test.
/// Skip lines the child printed ([`skip`]) are printed again here: the child's output is
/// otherwise seen only when it fails.
pub(crate) fn assert_passed(test: &str, out: &Output) {
    forward_skips(out);
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

/// In a child started by [`Peer::spawn`]: the socket to the parent (its standard input).
#[cfg(target_os = "linux")]
pub(crate) fn parent_socket() -> std::os::unix::net::UnixStream {
    use std::os::fd::AsFd;
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .expect("dup stdin");
    std::os::unix::net::UnixStream::from(fd)
}

/// Sends one byte: "done, go on".
pub(crate) fn ack(socket: &std::os::unix::net::UnixStream) {
    use std::io::Write;
    (&*socket).write_all(b"k").expect("send ack");
}

/// Waits for one byte sent by [`ack`].
pub(crate) fn wait_ack(socket: &std::os::unix::net::UnixStream) {
    use std::io::Read;
    let mut byte = [0u8; 1];
    (&*socket).read_exact(&mut byte).expect("receive ack");
    assert_eq!(&byte, b"k");
}

/// Sends `bytes` with `fds` attached (`SCM_RIGHTS`, none if empty) in one `sendmsg`: how the
/// tests forge messages that are not shares.
#[cfg(target_os = "linux")]
pub(crate) fn send_raw(
    socket: &std::os::unix::net::UnixStream,
    bytes: &[u8],
    fds: &[std::os::fd::RawFd],
) -> usize {
    use std::os::fd::AsRawFd;
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the control buffer is aligned, large enough for up
    // to 124 descriptors (checked), and alive for the sendmsg call, which only reads it.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            let payload = std::mem::size_of_val(fds) as u32;
            let space = libc::CMSG_SPACE(payload) as usize;
            assert!(space <= std::mem::size_of_val(&control));
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<libc::c_int>(),
                fds.len(),
            );
        }
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    assert!(sent >= 0, "sendmsg: {}", std::io::Error::last_os_error());
    sent as usize
}

/// The `errno` of the last failed call.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A word that differs at every index (and per `salt`), so a misplaced page is caught.
pub(crate) fn pattern(i: usize, salt: u64) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
}

/// Writes [`pattern`] into every word.
pub(crate) fn fill(words: &mut [u64], salt: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = pattern(i, salt);
    }
}

/// Whether every word holds [`pattern`].
pub(crate) fn holds(words: &[u64], salt: u64) -> bool {
    words
        .iter()
        .enumerate()
        .all(|(i, &w)| w == pattern(i, salt))
}

#[cfg(target_os = "linux")]
/// Every way of writing to a read-only shared (or frozen) memfd through `fd` is refused with
/// EPERM: a writable shared `mmap`, `pwrite`, `write`, `ftruncate`, a punched hole.
pub(crate) fn refused_to_write(fd: std::os::fd::RawFd, size: usize, what: &str) {
    // SAFETY: system calls on a descriptor the caller keeps open; each one is refused, so
    // no mapping is created and nothing is written.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_eq!(p, libc::MAP_FAILED, "{what}: writable shared mmap");
        assert_eq!(errno(), libc::EPERM, "{what}: mmap");
        let byte = [1u8];
        assert_eq!(
            libc::pwrite(fd, byte.as_ptr().cast(), 1, 0),
            -1,
            "{what}: pwrite"
        );
        assert_eq!(errno(), libc::EPERM, "{what}: pwrite");
        assert_eq!(
            libc::write(fd, byte.as_ptr().cast(), 1),
            -1,
            "{what}: write"
        );
        assert_eq!(errno(), libc::EPERM, "{what}: write");
        assert_eq!(libc::ftruncate(fd, 0), -1, "{what}: ftruncate");
        assert_eq!(errno(), libc::EPERM, "{what}: ftruncate");
        // Punching a hole would free the owner's pages; the write seal forbids it too.
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        assert_eq!(
            libc::fallocate(fd, punch, 0, size as libc::off_t),
            -1,
            "{what}: punch"
        );
        assert_eq!(errno(), libc::EPERM, "{what}: fallocate(PUNCH_HOLE)");
    }
}

/// What an importer holds: descriptors, locked bytes, shared memory resident, shared
/// mappings. Taken before and after each hostile case, in a child process: a refused
/// import must leave all four as they were, and so must a dropped successful one.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Open descriptors (`/proc/self/fd`).
    pub(crate) fds: usize,
    /// `VmLck`, bytes.
    pub(crate) locked: u64,
    /// `RssShmem`, bytes: resident shared memory this process maps.
    pub(crate) shmem: u64,
    /// Shared mappings in `/proc/self/maps` (permissions `...s`): every import is one.
    /// Private mappings (heap, thread stacks the C library caches) are left out.
    pub(crate) shared_maps: usize,
}

#[cfg(target_os = "linux")]
impl Snapshot {
    /// This process, now.
    pub(crate) fn take() -> Snapshot {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let shared_maps = maps
            .lines()
            .filter(|line| {
                line.split_whitespace()
                    .nth(1)
                    .is_some_and(|perms| perms.ends_with('s'))
            })
            .count();
        Snapshot {
            fds: open_fds(),
            locked: status_bytes("VmLck:"),
            shmem: status_bytes("RssShmem:"),
            shared_maps,
        }
    }

    /// Fails, naming `what`, unless this process holds what it held at `self`.
    pub(crate) fn assert_unchanged(&self, what: &str) {
        let now = Snapshot::take();
        assert_eq!(&now, self, "{what}: the importer kept something");
    }
}

/// Receives one message of at most `max` bytes and every descriptor attached to it
/// (`SCM_RIGHTS`), owned: how the hostile tests hand a child the sockets and files it needs.
#[cfg(target_os = "linux")]
pub(crate) fn recv_raw(
    socket: &std::os::unix::net::UnixStream,
    max: usize,
) -> (Vec<u8>, Vec<std::os::fd::OwnedFd>) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut bytes = vec![0u8; max];
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: bytes.len(),
    };
    let mut fds = Vec::new();
    // SAFETY: a zeroed msghdr is valid; recvmsg writes into `bytes` and `control`, both
    // alive and large enough (lengths given); the headers walked lie within the control
    // length the kernel set, and each descriptor in them is new and owned once.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                for i in 0..payload / 4 {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        n as usize
    };
    bytes.truncate(n);
    (bytes, fds)
}

/// `SO_PASSPIDFD` (`asm-generic/socket.h`, Linux 6.5; the `libc` crate does not name it).
#[cfg(target_os = "linux")]
pub(crate) const SO_PASSPIDFD: libc::c_int = 76;

/// Sets a boolean socket option at `SOL_SOCKET` level.
#[cfg(target_os = "linux")]
pub(crate) fn set_socket_flag(socket: &std::os::unix::net::UnixStream, option: libc::c_int) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads one c_int from a live local; the socket is open.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of_val(&on) as libc::socklen_t,
        )
    };
    assert_eq!(
        r,
        0,
        "setsockopt({option}): {}",
        std::io::Error::last_os_error()
    );
}

// ---------------------------------------------------------------------------------------
// Skips: said, and refusable

/// The prefix of every skip line: `test NAME: skipped (UNIMEM_REQUIRE_X unset): why`.
pub(crate) const SKIPPED: &str = ": skipped (UNIMEM_REQUIRE_";

/// A test that cannot run on this machine says so: one line on this process's standard
/// error, written past the harness's capture so that a plain `cargo test` shows it (and,
/// from a child, [`assert_passed`] prints it again in the parent). With
/// `UNIMEM_REQUIRE_{requirement}=1` in the environment the test fails instead: `.ci/run`
/// and the GPU check require what their machines have.
///
/// The caller returns right after (the test passes, having checked nothing more).
pub(crate) fn skip(test: &str, requirement: &str, why: &str) {
    use std::io::Write as _;
    let var = format!("UNIMEM_REQUIRE_{requirement}");
    assert!(
        std::env::var(&var).map_or(true, |v| v != "1"),
        "{test}: {var}=1, but {why}"
    );
    let line = format!("test {test}{SKIPPED}{requirement} unset): {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Prints again every skip line of a child's output.
fn forward_skips(out: &Output) {
    use std::io::Write as _;
    for text in [&out.stdout, &out.stderr] {
        for line in String::from_utf8_lossy(text).lines() {
            if line.contains(SKIPPED) {
                let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
            }
        }
    }
}

/// Whether this process runs as root; if not, [`skip`]s `test` (requirement `ROOT`).
pub(crate) fn root_or_skip(test: &str, why: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        skip(test, "ROOT", &format!("not root: {why}"));
    }
    root
}

// ---------------------------------------------------------------------------------------
// What an error path must give back

/// Everything a Block holds in this process, counted: descriptors, memfd mappings, locked
/// bytes, and (with fault injection) ids and registrations in unimem's registries. Equal
/// before and after an error path: nothing leaked.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Census {
    pub(crate) fds: usize,
    pub(crate) memfd_maps: usize,
    pub(crate) locked: u64,
    pub(crate) ids: usize,
    pub(crate) mapped: usize,
}

#[cfg(target_os = "linux")]
impl Census {
    pub(crate) fn take() -> Census {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        #[cfg(feature = "fault-injection")]
        let (ids, mapped) = (unimem::fault::live_ids(), unimem::fault::mapped());
        #[cfg(not(feature = "fault-injection"))]
        let (ids, mapped) = (0, 0);
        Census {
            fds: open_fds(),
            memfd_maps: maps.lines().filter(|l| l.contains("/memfd:")).count(),
            locked: status_bytes("VmLck:"),
            ids,
            mapped,
        }
    }

    /// Fails, naming `what`, unless nothing changed since `self` was taken.
    pub(crate) fn unchanged(self, what: &str) {
        assert_eq!(Census::take(), self, "{what}: something leaked");
    }
}

/// Runs `body` in a child process of its own (the test binary re-executed with `test`
/// selected), for tests that change process-wide state: fault rules, limits, uid.
pub(crate) fn in_child(test: &str, body: impl FnOnce()) {
    if is_child(test) {
        body();
    } else {
        assert_child_passes(test);
    }
}

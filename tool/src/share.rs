//! Share: hand a Block to a real second process and back.
//!
//! The tool re-executes itself as the peer (`UNIMEM_TOOL_SHARE_PEER=1`, with the other end of
//! a Unix socket as the peer's standard input). The owner fills a Block and sends it
//! read-write; the peer imports it, checks every word, overwrites it, and the owner checks
//! that it sees the peer's words. Then the owner shares it read-only, three times; the peer,
//! still mapping it read-write, checks that three imports are refused: a read-only import
//! next to its writable one (`AlreadyMapped`: the two would alias in one process), the
//! read-write import of a read-only share, and a read-write re-share. It keeps the third
//! share. The owner's own mapping must stay writable throughout. Last, the owner freezes
//! the Block: the kernel must refuse while the peer still maps it read-write
//! (`FreezeBusy`); the peer drops that import, imports the kept share `PROT_READ` and
//! checks the owner's last words by offsets; the freeze then goes through, and the peer
//! imports the frozen Block read-only (a second read-only mapping next to the first is
//! fine) and confirms `is_frozen()`. The peer reports each step as a `key value` line on
//! its standard output. Both sides pin where the limits allow (`Pin::BestEffort`) and
//! report whether they did.

use crate::report::{Report, Section};

/// Set in the environment of the peer process.
const PEER_ENV: &str = "UNIMEM_TOOL_SHARE_PEER";

/// Whether this process is the peer started by [`exercise`].
pub(crate) fn is_peer() -> bool {
    std::env::var_os(PEER_ENV).is_some()
}

#[cfg(target_os = "linux")]
pub(crate) use linux::{exercise, peer};

#[cfg(not(target_os = "linux"))]
pub(crate) fn exercise(report: &mut Report, _size: usize) {
    use crate::report::Status;
    let mut s = Section::new("Share");
    s.text("cross-process sharing", "Linux only in this version");
    report.add(s);
    report.verdict(
        "share",
        Status::Refused,
        "sharing a Block with another process is Linux only in this version",
    );
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn peer() -> std::process::ExitCode {
    eprintln!("{PEER_ENV} is set, but sharing is Linux only");
    std::process::ExitCode::FAILURE
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{Read, Write};
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::process::{Command, ExitCode, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::json;
    use unimem::{Block, MemError, Pin, Share};

    use super::{PEER_ENV, Report, Section};
    use crate::report::{Status, fmt_bytes, fmt_time};

    const OWNER_SALT: u64 = 0x0A0A;
    const PEER_SALT: u64 = 0x0B0B;
    const LATER_SALT: u64 = 0x0C0C;

    /// A word that differs at every index, so a misplaced page is caught.
    fn pattern(i: usize, salt: u64) -> u64 {
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
    }

    fn fill(words: &mut [u64], salt: u64) {
        for (i, w) in words.iter_mut().enumerate() {
            *w = pattern(i, salt);
        }
    }

    fn wrong(words: &[u64], salt: u64) -> usize {
        words
            .iter()
            .enumerate()
            .filter(|&(i, &w)| w != pattern(i, salt))
            .count()
    }

    /// The owner's side: open, share, spawn the peer, verify, report.
    pub(crate) fn exercise(report: &mut Report, size: usize) {
        let mut s = Section::new("Share");
        match owner(&mut s, size) {
            Ok(outcome) => {
                report.add(s);
                report.verdict("share", outcome.status, outcome.detail);
            }
            Err((status, detail)) => {
                s.text("stopped", detail.clone());
                report.add(s);
                report.verdict("share", status, detail);
            }
        }
    }

    struct Outcome {
        status: Status,
        detail: String,
    }

    type Stop = (Status, String);

    fn stop(what: &str, err: MemError) -> Stop {
        (Status::Refused, format!("{what}: {err}"))
    }

    fn owner(s: &mut Section, size: usize) -> Result<Outcome, Stop> {
        let mut block = match Block::builder(size).name("unimem-share").open() {
            Ok(block) => block,
            Err(MemError::LockRefused { .. }) => Block::builder(size)
                .name("unimem-share")
                .pin(Pin::BestEffort)
                .open()
                .map_err(|e| stop("open", e))?,
            Err(err) => return Err(stop("open", err)),
        };
        let bytes = block.size() as u64;
        let owner_pinned = block.is_pinned();
        s.text(
            "owner block",
            format!(
                "{}, id {}, {}",
                fmt_bytes(bytes),
                block.id(),
                if block.is_pinned() {
                    "pinned"
                } else {
                    "not pinned"
                }
            ),
        );
        fill(block.as_slice_mut(), OWNER_SALT);

        let (socket, there) =
            UnixStream::pair().map_err(|e| (Status::Refused, format!("socketpair: {e}")))?;
        let exe = std::env::current_exe()
            .map_err(|e| (Status::Refused, format!("own executable: {e}")))?;
        let child = Command::new(exe)
            .env(PEER_ENV, "1")
            .stdin(Stdio::from(OwnedFd::from(there)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| (Status::Refused, format!("start the peer process: {e}")))?;
        s.row("peer process", child.id().to_string(), json!(child.id()));
        let mut child = Reaped(Some(child));

        // 1. Read-write: the peer checks the owner's words and writes its own.
        let start = Instant::now();
        // SAFETY: the peer keeps the protocol: it reads the owner's words and writes its own
        // while this process waits for its answer (holding no view of the Block meanwhile),
        // and never writes again once it has answered.
        let share = unsafe { block.share_read_write() }.map_err(|e| stop("share read-write", e))?;
        share
            .send(&socket)
            .map_err(|e| stop("send read-write", e))?;
        s.time("share + send (read-write)", start.elapsed());
        drop(share);
        let first = wait(&socket);
        let seen = wrong(block.as_slice(), PEER_SALT);

        // 2. Read-only, three times: refused next to the peer's read-write import, refused by
        // `Block::import`, and kept by the peer for later.
        let second = if first {
            let start = Instant::now();
            let share = block.share().map_err(|e| stop("share read-only", e))?;
            let sent = (0..3).try_for_each(|_| share.send(&socket));
            sent.map_err(|e| stop("send read-only", e))?;
            s.time("seal + share + send (read-only)", start.elapsed());
            wait(&socket)
        } else {
            false
        };

        // The owner's mapping stays writable after sharing read-only.
        fill(block.as_slice_mut(), LATER_SALT);
        let owner_writes = wrong(block.as_slice(), LATER_SALT) == 0;

        // 3. Freeze: refused while the peer maps the Block read-write, then done.
        let frozen = if second {
            Some(freeze(s, block, &socket)?)
        } else {
            None
        };
        drop(socket);
        let out = child.finish();

        let lines = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |key: &str| {
            lines.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .map(str::to_owned)
            })
        };
        if let Some(error) = field("error") {
            let status = if error.starts_with("refused") {
                Status::Refused
            } else {
                Status::Failed
            };
            return Err((status, format!("peer: {error}")));
        }
        let frozen = frozen.filter(|f| f.confirmed);
        if !first || !second || frozen.is_none() || !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().last().unwrap_or("no output").to_owned();
            return Err((
                Status::Failed,
                format!("the peer stopped ({}): {last}", out.status),
            ));
        }
        let secs = |key: &str| field(key).and_then(|v| v.parse::<f64>().ok());
        for (key, label) in [
            ("import_rw", "peer import (read-write)"),
            ("import_ro", "peer import (read-only)"),
        ] {
            if let Some(t) = secs(key) {
                s.time(label, Duration::from_secs_f64(t));
            }
        }
        for key in [
            "pinned_rw",
            "pinned_ro",
            "refusals",
            "frozen",
            "frozen_words",
        ] {
            if let Some(v) = field(key) {
                s.text(format!("peer {}", key.replace('_', " ")), v);
            }
        }
        s.text(
            "peer's writes seen by owner",
            if seen == 0 {
                "every word".to_owned()
            } else {
                format!("{seen} words wrong")
            },
        );
        s.text(
            "owner writable after read-only share",
            if owner_writes { "yes" } else { "NO" },
        );
        let refusals = field("refusals").unwrap_or_default();
        let busy = frozen.is_some_and(|f| f.busy);
        let peer_frozen = field("frozen").as_deref() == Some("true")
            && field("frozen_words").as_deref() == Some("every word");
        s.text(
            "freeze while the peer maps it read-write",
            if busy {
                "refused (FreezeBusy)"
            } else {
                "ALLOWED"
            },
        );
        let size = fmt_bytes(bytes);
        let read_only_words = field("read_only_words");
        s.text(
            "peer read-only import words",
            read_only_words
                .clone()
                .unwrap_or_else(|| "not made".to_owned()),
        );
        let read_only_ok = read_only_words.as_deref() == Some("every word");
        let (status, detail) = if seen != 0
            || !owner_writes
            || refusals != "all refused"
            || !read_only_ok
            || !busy
            || !peer_frozen
        {
            (
                Status::Failed,
                format!(
                    "{size}: {seen} words of the peer's wrong; owner writable: {owner_writes}; \
                     refusals: {refusals}; read-only import read right: {read_only_ok}; \
                     freeze refused while a writer mapped it: {busy}; peer saw it frozen \
                     with the owner's words: {peer_frozen}"
                ),
            )
        } else {
            let took = secs("import_ro").map_or(String::new(), |t| {
                format!(
                    ", read-only import in {}",
                    fmt_time(Duration::from_secs_f64(t))
                )
            });
            let pinned = owner_pinned
                && field("pinned_rw").as_deref() == Some("true")
                && field("pinned_ro").as_deref() == Some("true");
            let how = if pinned { "pinned" } else { "unpinned" };
            (
                Status::Works,
                format!(
                    "{size} {how} round trip with a second process: written both ways, \
                     read-only peer refused write access and an aliasing second mapping{took}; \
                     frozen once the peer let go (refused before), peer confirmed"
                ),
            )
        };
        Ok(Outcome { status, detail })
    }

    /// What the freeze step saw.
    #[derive(Clone, Copy)]
    struct Frozen {
        /// The first freeze was refused with `FreezeBusy` (the peer mapped it read-write).
        busy: bool,
        /// The peer answered after importing the frozen Block.
        confirmed: bool,
    }

    /// Freezes `block`: first while the peer still maps it read-write (must be refused),
    /// then after the peer has dropped that import (and imported the kept read-only share,
    /// which does not count as writable); shares the frozen Block read-only.
    fn freeze(s: &mut Section, block: Block, socket: &UnixStream) -> Result<Frozen, Stop> {
        let start = Instant::now();
        let mut frozen = block
            .into_read_only()
            .map_err(|e| stop("make read-only", e))?;
        s.time("read-only in place (seal + remap)", start.elapsed());
        let busy = match frozen.freeze() {
            Err(MemError::FreezeBusy { .. }) => true,
            Ok(()) => false,
            Err(err) => return Err(stop("freeze", err)),
        };
        // Ask the peer to drop its read-write import (and to read through a read-only one).
        if (&*socket).write_all(b"d").is_err() || !wait(socket) {
            return Ok(Frozen {
                busy,
                confirmed: false,
            });
        }
        let start = Instant::now();
        frozen.freeze().map_err(|e| stop("freeze", e))?;
        s.time("freeze (F_SEAL_WRITE)", start.elapsed());
        let share = frozen.share().map_err(|e| stop("share frozen", e))?;
        share.send(socket).map_err(|e| stop("send frozen", e))?;
        Ok(Frozen {
            busy,
            confirmed: wait(socket) && frozen.is_frozen(),
        })
    }

    /// Waits for the peer's one-byte answer: `true` for success.
    fn wait(socket: &UnixStream) -> bool {
        let mut byte = [0u8; 1];
        matches!((&*socket).read_exact(&mut byte), Ok(()) if &byte == b"k")
    }

    /// The peer process, killed and reaped if the owner stops early.
    struct Reaped(Option<std::process::Child>);

    impl Reaped {
        fn finish(&mut self) -> std::process::Output {
            let child = self.0.take().expect("finished once");
            child
                .wait_with_output()
                .unwrap_or_else(|e| std::process::Output {
                    status: std::process::ExitStatus::default(),
                    stdout: Vec::new(),
                    stderr: format!("wait for the peer: {e}").into_bytes(),
                })
        }
    }

    impl Drop for Reaped {
        fn drop(&mut self) {
            if let Some(mut child) = self.0.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// The peer's side, run when the tool finds `UNIMEM_TOOL_SHARE_PEER` set.
    pub(crate) fn peer() -> ExitCode {
        let socket = match std::io::stdin().as_fd().try_clone_to_owned() {
            Ok(fd) => UnixStream::from(fd),
            Err(e) => {
                println!("error refused: no socket on standard input: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut out = std::io::stdout().lock();
        match run_peer(&socket, &mut out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                let _ = writeln!(out, "error {error}");
                let _ = (&socket).write_all(b"x");
                ExitCode::FAILURE
            }
        }
    }

    fn run_peer(socket: &UnixStream, out: &mut impl Write) -> Result<(), String> {
        let mut say = |line: String| writeln!(out, "{line}").map_err(|e| e.to_string());

        // 1. Read-write. Pinned where the limits allow (`pinned_rw` says which).
        let share = Share::recv(socket).map_err(refused("receive read-write"))?;
        let start = Instant::now();
        // SAFETY: the owner keeps the protocol: it holds no view of the Block while this
        // process reads and writes it, until this process answers.
        let mut block = unsafe { Block::import(share, Pin::BestEffort) }
            .map_err(refused("import read-write"))?;
        say(format!("import_rw {}", start.elapsed().as_secs_f64()))?;
        say(format!("pinned_rw {}", block.is_pinned()))?;
        let bad = wrong(block.as_slice(), OWNER_SALT);
        if bad != 0 {
            return Err(format!("failed: {bad} words of the owner's read wrong"));
        }
        fill(block.as_slice_mut(), PEER_SALT);
        (&*socket).write_all(b"k").map_err(|e| e.to_string())?;

        // 2. Read-only, three shares of it while this process maps it read-write: a
        // read-only import would alias that mapping's `&mut` views, a read-only share is
        // not for `Block::import`, and a read-only import cannot share write access. The
        // third share is kept.
        let share = Share::recv(socket).map_err(refused("receive read-only"))?;
        let alias = Block::import_read_only(share, Pin::BestEffort);
        let second = Share::recv(socket).map_err(refused("receive read-only again"))?;
        // SAFETY: refused before anything is mapped (a read-only share).
        let import = unsafe { Block::import(second, Pin::BestEffort) };
        let kept = Share::recv(socket).map_err(refused("receive read-only a third time"))?;
        // SAFETY: refused (this mapping is read-write, the file sealed against writing by
        // the read-only share), so nothing is shared.
        let reshare = unsafe { block.share_read_write() };
        let refusals = match (alias, import, reshare) {
            (
                Err(MemError::AlreadyMapped { writable: true, .. }),
                Err(MemError::ShareReadOnly { .. }),
                Err(MemError::NotWritable { .. }),
            ) => "all refused".to_owned(),
            (alias, import, reshare) => format!(
                "read-only import next to the read-write one: {}, read-write import: {}, \
                 read-write re-share: {}",
                outcome(&alias.map(|_| ())),
                outcome(&import.map(|_| ())),
                outcome(&reshare.map(|_| ()))
            ),
        };
        say(format!("refusals {refusals}"))?;
        (&*socket).write_all(b"k").map_err(|e| e.to_string())?;

        // 3. Freeze. The owner's first freeze is refused while this process maps the Block
        // read-write; asked, it drops that import, imports the kept read-only share and
        // reads the owner's last words by offsets; then the owner freezes and shares the
        // frozen Block.
        let mut byte = [0u8; 1];
        (&*socket)
            .read_exact(&mut byte)
            .map_err(|e| format!("failed: waiting for the freeze: {e}"))?;
        drop(block);
        let start = Instant::now();
        let ro =
            Block::import_read_only(kept, Pin::BestEffort).map_err(refused("import read-only"))?;
        say(format!("import_ro {}", start.elapsed().as_secs_f64()))?;
        say(format!("pinned_ro {}", ro.is_pinned()))?;
        // Not frozen yet (the owner's mapping is read-only, but the file is not sealed):
        // no view of the bytes, they are copied out, by offset.
        let n = ro.size() / 8;
        let mut words = vec![0u64; n];
        let (low, high) = words.split_at_mut(n / 2);
        ro.read_into(n / 2 * 8, high)
            .and_then(|()| ro.read_into(0, low))
            .map_err(|e| format!("failed: read by offset: {e}"))?;
        let bad = wrong(&words, LATER_SALT);
        say(format!(
            "read_only_words {}",
            if bad == 0 {
                "every word".to_owned()
            } else {
                format!("{bad} wrong")
            }
        ))?;
        (&*socket).write_all(b"k").map_err(|e| e.to_string())?;
        let share = Share::recv(socket).map_err(refused("receive frozen"))?;
        // A second read-only mapping next to the first: fine, neither has `&mut` views.
        let frozen =
            Block::import_read_only(share, Pin::BestEffort).map_err(refused("import frozen"))?;
        say(format!("frozen {}", frozen.is_frozen() && ro.is_frozen()))?;
        let bad = frozen
            .as_slice()
            .map_or(usize::MAX, |words| wrong(words, LATER_SALT));
        say(format!(
            "frozen_words {}",
            if bad == 0 {
                "every word".to_owned()
            } else {
                format!("{bad} wrong")
            }
        ))?;
        (&*socket).write_all(b"k").map_err(|e| e.to_string())?;
        // Wait for the owner to close its end, so both sides finish in order.
        let _ = (&*socket).read(&mut [0u8; 1]);
        Ok(())
    }

    fn refused(what: &'static str) -> impl Fn(MemError) -> String {
        move |e| format!("refused: {what}: {e}")
    }

    fn outcome(r: &Result<(), MemError>) -> String {
        match r {
            Ok(()) => "ALLOWED".to_owned(),
            Err(e) => format!("refused with {e:?}"),
        }
    }
}

//! The seed corpus (`fuzz/seeds/TARGET/NAME`), written here field by field in the order
//! the targets decode them, so that each seed says what it is.
//!
//! `cargo test` (in `fuzz/`) checks that the committed files are these bytes and runs each
//! once; `UNIMEM_WRITE_SEEDS=1 cargo test` rewrites them.

use std::path::PathBuf;

use crate::input::Writer;
use crate::share;

/// One seed: target, name, bytes.
struct Seed {
    target: &'static str,
    name: &'static str,
    bytes: Vec<u8>,
}

/// The fields of a share case that the seeds vary, in decoding order (see `share::Case`).
struct ShareSeed {
    kind: u8,
    pages: u8,
    fill: bool,
    /// 1: a read-only share's seals; 2: a read-write share's; else the raw seal bits + 4.
    seals: u8,
    access: u8,
    socket: u8,
    before: &'static [(u8, u8)],
    read_only: bool,
    freeze: bool,
    second: Option<bool>,
    fault: Option<(u8, u8)>,
}

impl ShareSeed {
    const RW: ShareSeed = ShareSeed {
        kind: 0,
        pages: 4,
        fill: true,
        seals: 2,
        access: 0,
        socket: 0,
        before: &[],
        read_only: false,
        freeze: false,
        second: None,
        fault: None,
    };

    fn bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.kind);
        w.u8(0).u8(self.pages); // a few pages
        w.u8(0); // no tail
        if self.fill {
            w.u8(1).u8(0).u16(0); // one span: every page, written
        } else {
            w.u8(0); // no span: holes only
        }
        match self.seals {
            1 => w.u8(1),
            2 => w.u8(0),
            raw => w.u8(3).u8(raw - 4),
        };
        // A built header: magic, version 1, access, reserved 0, source, exact size, 24 bytes.
        w.u8(0).u8(0).u8(0);
        w.u8(if self.access == 0 { 0 } else { 3 });
        w.u8(0).u32(7).u8(0).u8(0);
        if self.socket == 0 {
            w.u8(0);
        } else {
            w.u8(3).u8(self.socket);
        }
        w.u8(if self.before.is_empty() {
            0
        } else {
            5 + self.before.len() as u8
        });
        for &(change, arg) in self.before {
            w.u8(change).u8(arg);
        }
        w.u8(self.read_only as u8);
        w.u8(0); // no change while mapped
        w.u8(if self.freeze { 3 } else { 0 });
        w.u8(match self.second {
            Some(false) => 4,
            Some(true) => 5,
            None => 0,
        });
        match self.fault {
            Some((call, errno)) => w.u8(3).u8(call).u8(0).u8(errno),
            None => w.u8(0),
        };
        w.data
    }
}

fn seeds() -> Vec<Seed> {
    let share = |name, s: ShareSeed| Seed {
        target: "share_import",
        name,
        bytes: s.bytes(),
    };
    let mut out = vec![
        share("read_write", ShareSeed::RW),
        share(
            "read_only_frozen_twice",
            ShareSeed {
                seals: 1,
                access: 1,
                read_only: true,
                freeze: true,
                second: Some(true),
                ..ShareSeed::RW
            },
        ),
        share(
            "read_write_then_again",
            ShareSeed {
                second: Some(false),
                ..ShareSeed::RW
            },
        ),
        share(
            "sparse_read_only",
            ShareSeed {
                pages: 16,
                fill: false,
                read_only: true,
                ..ShareSeed::RW
            },
        ),
        share(
            "unsealed_shrunk_then_sealed",
            ShareSeed {
                seals: 4,
                // Truncate to a page less, then seal SHRINK | GROW.
                before: &[(2, 1), (3, 3)],
                ..ShareSeed::RW
            },
        ),
        share(
            "a_pipe",
            ShareSeed {
                kind: 8,
                ..ShareSeed::RW
            },
        ),
        share(
            "a_tmpfs_file",
            ShareSeed {
                kind: 4,
                ..ShareSeed::RW
            },
        ),
        share(
            "two_descriptors",
            ShareSeed {
                kind: 13,
                ..ShareSeed::RW
            },
        ),
        share(
            "credentials_and_pidfd",
            ShareSeed {
                socket: 3,
                ..ShareSeed::RW
            },
        ),
        // SO_PASSPIDFD: the kernel adds a pidfd to the message, which must be closed. With a
        // descriptor it does not fit the receiver's control buffer (dropped by the kernel);
        // without one it does.
        share(
            "pidfd",
            ShareSeed {
                socket: 2,
                ..ShareSeed::RW
            },
        ),
        share(
            "pidfd_no_descriptor",
            ShareSeed {
                kind: 12,
                socket: 2,
                ..ShareSeed::RW
            },
        ),
        share(
            "mmap_fails",
            ShareSeed {
                fault: Some((4, 0)),
                ..ShareSeed::RW
            },
        ),
    ];
    // A raw header: 24 bytes of garbage with a memfd.
    let mut w = Writer::default();
    w.u8(0).u8(0).u8(2).u8(0).u8(0).u8(0).u8(7).u8(24);
    w.bytes(b"UNIMEMSH\x01\x00\x00\x00\x07\x00\x00\x00garbage!");
    out.push(Seed {
        target: "share_import",
        name: "raw_header",
        bytes: w.data,
    });

    // Tape: 8 pages; takes, typed takes, two Lanes, a clear, more, a freeze.
    let mut w = Writer::default();
    w.u8(7);
    w.u8(0).u8(1).u8(100).u8(2).u8(3); // take(101, 8)
    w.u8(3).u8(3).u8(1).u8(9).u8(0); // try_take_slice::<u64>(10)
    w.u8(6).u8(2).u8(4); // lane(1 KiB)
    w.u8(7).u8(2).u8(0).u8(2).u8(1).u8(31); // lane 0 take_slice::<u32>(32)
    w.u8(7).u8(0).u8(0).u8(1).u8(63).u8(2).u8(6); // lane 0 take(64, 64)
    w.u8(6).u8(0); // lane(0)
    w.u8(7).u8(0).u8(1).u8(1).u8(200).u8(2).u8(4); // lane 1 take(201, 16)
    w.u8(2).u8(0).u8(2).u8(0); // try_take(0, 1): ZeroSize
    w.u8(2).u8(1).u8(7).u8(0).u8(3); // try_take(8, 3): BadAlignment
    w.u8(11).u8(0); // drop lane 0
    w.u8(13); // check
    w.u8(12); // clear
    w.u8(3).u8(3).u8(1).u8(255).u8(0); // take_slice::<u64>(256): zeros after the clear
    w.u8(5).u8(4); // take_one::<u128>
    w.u8(14); // freeze
    out.push(Seed {
        target: "tape_ops",
        name: "takes_lanes_clear_freeze",
        bytes: w.data,
    });
    let mut w = Writer::default();
    w.u8(0); // one page
    for _ in 0..40 {
        w.u8(0).u8(5).u16(200).u8(1).u8(13); // take(201, 8 KiB) until full
    }
    out.push(Seed {
        target: "tape_ops",
        name: "overaligned_until_full",
        bytes: w.data,
    });

    // Grid: 100-byte cells (128 with the alignment), 16 of them, over a dirty Tape.
    let mut w = Writer::default();
    w.u8(2).u16(99); // cell size 100
    w.u8(2).u8(15); // 16 cells
    w.u8(2); // alignment 64
    w.u8(0).u8(4); // dirty Tape, a leading take of 32 bytes
    w.u8(0).u8(0); // take
    w.u8(6).u8(0); // fill it
    w.u8(7).u8(0); // detach it
    w.u8(12).u8(0).u8(2).u8(3); // lane(4)
    w.u8(13).u8(0).u8(0); // lane take
    w.u8(13).u8(0).u8(3).u8(0); // lane release of the id
    w.u8(8).u8(0); // release it again: stale
    w.u8(2).u8(0); // try_take
    w.u8(7).u8(0); // detach it
    w.u8(10).u8(1); // write through `cell`
    w.u8(11).u8(0); // foreign ids
    w.u8(4).u8(0); // give a cell to the other Grid
    w.u8(15).u8(0); // clear
    w.u8(9).u8(1); // claim a stale id
    out.push(Seed {
        target: "grid_ops",
        name: "cells_ids_lanes_clear",
        bytes: w.data,
    });
    let mut w = Writer::default();
    w.u8(2).u16(63).u8(2).u8(3).u8(2).u8(1).u8(0); // 4 cells of 64, clean Tape
    for _ in 0..6 {
        w.u8(2).u8(0); // try_take until GridFull
    }
    out.push(Seed {
        target: "grid_ops",
        name: "until_full",
        bytes: w.data,
    });
    out
}

fn path(seed: &Seed) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(seed.target)
        .join(seed.name)
}

/// The targets count this process's descriptors: the tests that open files take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn committed_seeds_are_these() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let write = std::env::var("UNIMEM_WRITE_SEEDS").is_ok_and(|v| v == "1");
    for seed in seeds() {
        let path = path(&seed);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &seed.bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert_eq!(
            committed,
            seed.bytes,
            "{}: rerun with UNIMEM_WRITE_SEEDS=1",
            path.display()
        );
    }
}

#[test]
fn seeds_run() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for seed in seeds() {
        match seed.target {
            "share_import" => {
                let out = share::run(&seed.bytes);
                let case = share::Case::decode(&seed.bytes);
                match seed.name {
                    "read_write" => assert!(out.imported, "{case:#?}\n{out:#?}"),
                    "read_only_frozen_twice" => {
                        assert!(out.imported && out.frozen && out.second, "{out:#?}")
                    }
                    "read_write_then_again" => {
                        assert!(out.imported && !out.second, "{out:#?}");
                        assert!(out.errors[0].contains("already"), "{out:#?}");
                    }
                    "unsealed_shrunk_then_sealed" => {
                        assert!(out.received && !out.imported, "{case:#?}\n{out:#?}")
                    }
                    "a_pipe" | "a_tmpfs_file" | "mmap_fails" => {
                        assert!(out.received && !out.imported, "{case:#?}\n{out:#?}")
                    }
                    "two_descriptors" => assert!(!out.received, "{out:#?}"),
                    _ => {}
                }
            }
            "tape_ops" => crate::tape::run(&seed.bytes),
            "grid_ops" => crate::grid::run(&seed.bytes),
            other => panic!("unknown target {other}"),
        }
    }
}

/// What a corpus reaches: `UNIMEM_FUZZ_DIR=corpus/share_import cargo +nightly test --lib
/// tally -- --ignored --nocapture` runs every file once and counts the outcomes.
#[test]
#[ignore]
fn tally() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::var("UNIMEM_FUZZ_DIR").expect("UNIMEM_FUZZ_DIR");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if dir.contains("share_import") {
            let case = share::Case::decode(&bytes);
            let out = share::run(&bytes);
            let stage = match (out.received, out.imported, out.frozen, out.second) {
                (false, ..) => "refused by recv",
                (true, false, ..) => "refused by import",
                (true, true, false, false) => "imported",
                (true, true, true, false) => "imported, frozen",
                (true, true, _, true) => "imported twice",
            };
            *counts
                .entry(format!("{stage}: {:?}", case.mode))
                .or_default() += 1;
            for err in &out.errors {
                let head: String = err.chars().take(110).collect();
                *counts.entry(format!("  error: {head}")).or_default() += 1;
            }
        } else if dir.contains("tape_ops") {
            crate::tape::run(&bytes);
            *counts.entry("ran".into()).or_default() += 1;
        } else {
            crate::grid::run(&bytes);
            *counts.entry("ran".into()).or_default() += 1;
        }
    }
    for (what, n) in counts {
        println!("{n:6}  {what}");
    }
}

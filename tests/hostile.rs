//! The hostile-peer table of `specs/share.md`, row by row, each tried by a real second
//! process: a sender (this test process, or a child of its own) does what a careless or
//! compromised peer can do, and the importer, a child process, must answer each with a
//! `MemError` (never a signal or a hang) and afterwards hold what it held before: the same
//! descriptors, `VmLck`, `RssShmem` and shared mappings (`common::Snapshot`).
//!
//! Most rows run in one importer child, in lockstep: the sender writes a row's message(s)
//! whole into a data socket, then says "go" on the control socket (the `Peer` socket), so
//! the importer always reads complete messages, whatever the scheduler does; the importer
//! checks the outcome and the snapshot, then acknowledges. The rows that kill or race a
//! process have tests of their own below.

#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Peer, Snapshot, ack, is_child, parent_socket, pattern, recv_raw, send_raw, wait_ack};
use unimem::{Access, Block, ErrorKind, MemError, Pin, ReadOnlyBlock, Share, page_size};

const MIB: usize = 1 << 20;
const RESIZE: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;

// ---------------------------------------------------------------------------------------
// Files a hostile sender makes

/// A new memfd of `len` bytes; `sealing`: created with `MFD_ALLOW_SEALING`.
fn memfd_raw(len: usize, sealing: bool, huge: bool) -> OwnedFd {
    let mut flags = libc::MFD_CLOEXEC;
    if sealing {
        flags |= libc::MFD_ALLOW_SEALING;
    }
    if huge {
        flags |= libc::MFD_HUGETLB;
    }
    // SAFETY: memfd_create with a literal name; the descriptor is owned below; ftruncate
    // on it.
    unsafe {
        let fd = libc::memfd_create(c"hostile".as_ptr(), flags);
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        assert_eq!(libc::ftruncate(fd.as_raw_fd(), len as libc::off_t), 0);
        fd
    }
}

/// Writes `pattern(i, salt)` into every word of `fd` from `from` to `to` (bytes): the pages
/// exist and hold data afterwards.
fn write_words(fd: &OwnedFd, from: usize, to: usize, salt: u64) {
    let words: Vec<u64> = (from / 8..to / 8).map(|i| pattern(i, salt)).collect();
    // SAFETY: pwrite reads `to - from` bytes from a live buffer of that length.
    let n = unsafe {
        libc::pwrite(
            fd.as_raw_fd(),
            words.as_ptr().cast(),
            to - from,
            from as libc::off_t,
        )
    };
    assert_eq!(
        n,
        (to - from) as isize,
        "pwrite: {}",
        std::io::Error::last_os_error()
    );
}

fn add_seals(fd: &OwnedFd, seals: libc::c_int) {
    // SAFETY: F_ADD_SEALS takes an integer; the descriptor is open.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    assert_eq!(r, 0, "F_ADD_SEALS: {}", std::io::Error::last_os_error());
}

/// A memfd as a well-behaved owner makes it: every page written, sealed `seals`.
fn memfd(len: usize, seals: libc::c_int, salt: u64) -> OwnedFd {
    let fd = memfd_raw(len, true, false);
    write_words(&fd, 0, len, salt);
    if seals != 0 {
        add_seals(&fd, seals);
    }
    fd
}

/// `fd` reopened through `/proc/self/fd` with `flags` (`O_RDONLY`, `O_WRONLY`, `O_PATH`).
fn reopen(fd: &OwnedFd, flags: libc::c_int) -> OwnedFd {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    // SAFETY: open with a valid path; the result is owned below.
    let new = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    assert!(new >= 0, "reopen: {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor just returned by open, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(new) }
}

fn fallocate(fd: &OwnedFd, mode: libc::c_int, offset: usize, len: usize) {
    // SAFETY: fallocate on an open descriptor; it changes only the file.
    let r = unsafe {
        libc::fallocate(
            fd.as_raw_fd(),
            mode,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    assert_eq!(r, 0, "fallocate: {}", std::io::Error::last_os_error());
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn mem_available() -> usize {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    kib * 1024
}

/// A share header as `specs/share.md` lays it out.
fn header(access: Access, size: u64) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[..8].copy_from_slice(b"UNIMEMSH");
    h[8..10].copy_from_slice(&1u16.to_le_bytes());
    h[10] = match access {
        Access::ReadWrite => 0,
        Access::ReadOnly => 1,
    };
    h[12..16].copy_from_slice(&77u32.to_le_bytes());
    h[16..24].copy_from_slice(&size.to_le_bytes());
    h
}

/// Sends `bytes` with `fds` whole on `socket`.
fn send(socket: &UnixStream, bytes: &[u8], fds: &[RawFd]) {
    assert_eq!(send_raw(socket, bytes, fds), bytes.len());
}

// ---------------------------------------------------------------------------------------
// What the importer does with each message

/// Receives one share and imports it as its header asks: `Block::import` for read-write,
/// `Block::import_read_only` for read-only. `Ok` carries the import, checked and dropped.
fn receive(data: &UnixStream) -> Result<(), MemError> {
    let share = Share::recv(data)?;
    match share.access() {
        Access::ReadWrite => {
            let block = common::import(share, Pin::BestEffort)?;
            assert!(block.size() > 0);
        }
        Access::ReadOnly => {
            let block = Block::import_read_only(share, Pin::BestEffort)?;
            check_words(&block);
        }
    }
    Ok(())
}

/// The words the senders write, copied out of a read-only import (frozen or not).
fn check_words(block: &ReadOnlyBlock) {
    let mut first = [0u64; 2];
    block.read_into(0, &mut first).unwrap();
    assert_eq!(first, [pattern(0, 5), pattern(1, 5)]);
}

/// What one row expects of the importer.
#[derive(Clone, Copy)]
enum Expect {
    /// One receive, refused as `fits` says; the error's kind is that of a refused peer
    /// (or, for write access the file does not allow, of denied access; for a file too
    /// large for the machine, out of memory).
    Refused(fn(&MemError) -> bool),
    /// One receive, imported.
    Imported,
    /// Several receives, in order.
    Each(&'static [Expect]),
}

impl Expect {
    fn check(self, data: &UnixStream, row: &str) {
        match self {
            Expect::Refused(fits) => {
                let err = receive(data).expect_err(row);
                assert!(fits(&err), "{row}: got {err:?}");
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::RefusedPeer | ErrorKind::AccessDenied | ErrorKind::OutOfMemory
                    ),
                    "{row}: {:?} is not a refusal of the peer",
                    err.kind()
                );
                assert!(!err.to_string().is_empty());
            }
            Expect::Imported => receive(data).unwrap_or_else(|e| panic!("{row}: {e:?}")),
            Expect::Each(all) => all.iter().for_each(|e| e.check(data, row)),
        }
    }
}

/// One row: what the sender sends, what the importer must answer, and an option the
/// importer sets on its socket first (`SO_PASSCRED`, `SO_PASSPIDFD`), if any.
struct Row {
    name: &'static str,
    send: Box<dyn Fn(&UnixStream)>,
    expect: Expect,
    socket_flags: &'static [libc::c_int],
}

fn row(name: &'static str, expect: Expect, send: impl Fn(&UnixStream) + 'static) -> Row {
    Row {
        name,
        send: Box::new(send),
        expect,
        socket_flags: &[],
    }
}

/// Every row of the lockstep table, in order. The importer child builds the same list and
/// uses only the names and expectations.
fn rows() -> Vec<Row> {
    let page = page_size();
    let ro = |size: usize| header(Access::ReadOnly, size as u64);
    let rw = |size: usize| header(Access::ReadWrite, size as u64);
    let ro_file = |len: usize| memfd(len, RESIZE | libc::F_SEAL_FUTURE_WRITE, 5);
    vec![
        // Lies about the size.
        row(
            "header larger than the file",
            Expect::Refused(
                |e| matches!(e, MemError::ShareSize { found, .. } if *found == page_size() as u64),
            ),
            move |s| send(s, &ro(2 * page), &[ro_file(page).as_raw_fd()]),
        ),
        row(
            "header smaller than the file",
            Expect::Refused(
                |e| matches!(e, MemError::ShareSize { expected, .. } if *expected == page_size()),
            ),
            move |s| send(s, &ro(page), &[ro_file(2 * page).as_raw_fd()]),
        ),
        row(
            "header claims 1 TiB",
            Expect::Refused(
                |e| matches!(e, MemError::ShareSize { expected, .. } if *expected == 1 << 40),
            ),
            move |s| send(s, &ro(1 << 40), &[ro_file(page).as_raw_fd()]),
        ),
        // Lies about the access.
        row(
            "read-only header, no write seal",
            Expect::Refused(
                |e| matches!(e, MemError::ShareUnsealed { missing, .. } if *missing == libc::F_SEAL_FUTURE_WRITE as u32),
            ),
            move |s| send(s, &ro(page), &[memfd(page, RESIZE, 5).as_raw_fd()]),
        ),
        row(
            "read-write header, descriptor opened read-only",
            Expect::Refused(|e| {
                *e == MemError::ShareOpenMode {
                    readable: true,
                    writable: false,
                    requested: Access::ReadWrite,
                }
            }),
            move |s| {
                let file = memfd(page, RESIZE, 5);
                send(s, &rw(page), &[reopen(&file, libc::O_RDONLY).as_raw_fd()]);
            },
        ),
        row(
            "read-only header, descriptor opened write-only",
            Expect::Refused(|e| {
                *e == MemError::ShareOpenMode {
                    readable: false,
                    writable: true,
                    requested: Access::ReadOnly,
                }
            }),
            move |s| {
                let file = ro_file(page);
                send(s, &ro(page), &[reopen(&file, libc::O_WRONLY).as_raw_fd()]);
            },
        ),
        row(
            "read-write header, file sealed against writing",
            Expect::Refused(|e| {
                matches!(
                    e,
                    MemError::NotWritable {
                        id: 77,
                        sealed: true
                    }
                )
            }),
            move |s| send(s, &rw(page), &[ro_file(page).as_raw_fd()]),
        ),
        // Sparse and partly sparse files: refused before anything is mapped, so the
        // importer's RssShmem stays where it was (the snapshot checks it).
        row(
            "sparse 256 MiB (only ftruncated)",
            Expect::Refused(|e| {
                *e == MemError::ShareSparse {
                    size: 256 * MIB,
                    allocated: 0,
                    hole: Some(0),
                }
            }),
            move |s| {
                let file = memfd_raw(256 * MIB, true, false);
                add_seals(&file, RESIZE | libc::F_SEAL_FUTURE_WRITE);
                send(s, &ro(256 * MIB), &[file.as_raw_fd()]);
            },
        ),
        row(
            "read-write header, sparse file larger than the machine's memory",
            // No write seal: a read-write holder could punch every page out and make the
            // importer allocate it all, so the headroom is checked first, as for `open`.
            Expect::Refused(|e| matches!(e, MemError::OutOfMemory { .. })),
            move |s| {
                let size = (2 * mem_available()).next_multiple_of(page);
                let file = memfd_raw(size, true, false);
                add_seals(&file, RESIZE);
                send(s, &rw(size), &[file.as_raw_fd()]);
            },
        ),
        row(
            "partly sparse (first half written)",
            Expect::Refused(|e| {
                let half = 8 * page_size();
                *e == MemError::ShareSparse {
                    size: 2 * half,
                    allocated: half as u64,
                    hole: Some(half as u64),
                }
            }),
            move |s| {
                let file = memfd_raw(16 * page, true, false);
                write_words(&file, 0, 8 * page, 5);
                add_seals(&file, RESIZE | libc::F_SEAL_FUTURE_WRITE);
                send(s, &ro(16 * page), &[file.as_raw_fd()]);
            },
        ),
        row(
            "sparse, pages allocated past the end before GROW was sealed",
            // st_blocks covers the size; SEEK_HOLE finds the hole at 0.
            Expect::Refused(|e| {
                let size = 16 * page_size();
                *e == MemError::ShareSparse {
                    size,
                    allocated: size as u64,
                    hole: Some(0),
                }
            }),
            move |s| {
                let file = memfd_raw(16 * page, true, false);
                fallocate(&file, libc::FALLOC_FL_KEEP_SIZE, 16 * page, 16 * page);
                add_seals(&file, RESIZE | libc::F_SEAL_FUTURE_WRITE);
                send(s, &ro(16 * page), &[file.as_raw_fd()]);
            },
        ),
        row(
            "holes punched before sealing",
            Expect::Refused(
                |e| matches!(e, MemError::ShareSparse { hole: Some(h), .. } if *h == 4 * page_size() as u64),
            ),
            move |s| {
                let file = memfd(16 * page, 0, 5);
                let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
                fallocate(&file, punch, 4 * page, 2 * page);
                add_seals(&file, RESIZE | libc::F_SEAL_FUTURE_WRITE);
                send(s, &ro(16 * page), &[file.as_raw_fd()]);
            },
        ),
        row(
            "fallocated but never written (refused, conservatively)",
            Expect::Refused(|e| matches!(e, MemError::ShareSparse { hole: Some(0), .. })),
            move |s| {
                let file = memfd_raw(16 * page, true, false);
                fallocate(&file, 0, 0, 16 * page);
                add_seals(&file, RESIZE | libc::F_SEAL_FUTURE_WRITE);
                send(s, &ro(16 * page), &[file.as_raw_fd()]);
            },
        ),
        row(
            "hugetlbfs memfd holding no page",
            // SEEK_HOLE sees no hole on hugetlbfs; st_blocks does.
            Expect::Refused(|e| {
                *e == MemError::ShareSparse {
                    size: 2 * MIB,
                    allocated: 0,
                    hole: None,
                }
            }),
            move |s| {
                let file = memfd_raw(2 * MIB, true, true);
                add_seals(&file, RESIZE | libc::F_SEAL_FUTURE_WRITE);
                send(s, &ro(2 * MIB), &[file.as_raw_fd()]);
            },
        ),
        // Unsealed and wrongly sealed files.
        row(
            "memfd that cannot be sealed",
            Expect::Refused(|e| {
                *e == MemError::ShareUnsealed {
                    seals: libc::F_SEAL_SEAL as u32,
                    missing: (RESIZE | libc::F_SEAL_FUTURE_WRITE) as u32,
                }
            }),
            move |s| {
                let file = memfd_raw(page, false, false);
                write_words(&file, 0, page, 5);
                send(s, &ro(page), &[file.as_raw_fd()]);
            },
        ),
        row(
            "memfd without seals",
            Expect::Refused(|e| {
                *e == MemError::ShareUnsealed {
                    seals: 0,
                    missing: RESIZE as u32,
                }
            }),
            move |s| send(s, &rw(page), &[memfd(page, 0, 5).as_raw_fd()]),
        ),
        row(
            "SHRINK only",
            Expect::Refused(
                |e| matches!(e, MemError::ShareUnsealed { missing, .. } if *missing == libc::F_SEAL_GROW as u32),
            ),
            move |s| {
                send(
                    s,
                    &rw(page),
                    &[memfd(page, libc::F_SEAL_SHRINK, 5).as_raw_fd()],
                )
            },
        ),
        row(
            "GROW only",
            Expect::Refused(
                |e| matches!(e, MemError::ShareUnsealed { missing, .. } if *missing == libc::F_SEAL_SHRINK as u32),
            ),
            move |s| {
                send(
                    s,
                    &rw(page),
                    &[memfd(page, libc::F_SEAL_GROW, 5).as_raw_fd()],
                )
            },
        ),
        row(
            "write-sealed and SEAL-sealed, not resize-sealed",
            Expect::Refused(
                |e| matches!(e, MemError::ShareUnsealed { missing, .. } if *missing == RESIZE as u32),
            ),
            move |s| {
                let seals = libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_SEAL;
                send(s, &ro(page), &[memfd(page, seals, 5).as_raw_fd()]);
            },
        ),
        // Descriptors that are not memfds.
        row(
            "a pipe",
            Expect::Refused(
                |e| matches!(e, MemError::ShareNotMemfd { mode } if mode & libc::S_IFMT == libc::S_IFIFO),
            ),
            move |s| {
                let (read, _write) = pipe();
                send(s, &ro(page), &[read.as_raw_fd()]);
            },
        ),
        row(
            "a socket",
            Expect::Refused(
                |e| matches!(e, MemError::ShareNotMemfd { mode } if mode & libc::S_IFMT == libc::S_IFSOCK),
            ),
            move |s| {
                let (a, _b) = UnixStream::pair().unwrap();
                send(s, &ro(page), &[a.as_raw_fd()]);
            },
        ),
        row(
            "/dev/zero",
            Expect::Refused(
                |e| matches!(e, MemError::ShareNotMemfd { mode } if mode & libc::S_IFMT == libc::S_IFCHR),
            ),
            move |s| {
                let zero = std::fs::File::options()
                    .read(true)
                    .write(true)
                    .open("/dev/zero")
                    .unwrap();
                send(s, &rw(page), &[zero.as_raw_fd()]);
            },
        ),
        row(
            "an O_PATH descriptor of a good memfd",
            Expect::Refused(
                |e| matches!(e, MemError::ShareNotMemfd { mode } if mode & libc::S_IFMT == libc::S_IFREG),
            ),
            move |s| {
                let file = ro_file(page);
                send(s, &ro(page), &[reopen(&file, libc::O_PATH).as_raw_fd()]);
            },
        ),
        row(
            "a directory",
            Expect::Refused(
                |e| matches!(e, MemError::ShareNotMemfd { mode } if mode & libc::S_IFMT == libc::S_IFDIR),
            ),
            move |s| {
                let dir = std::fs::File::open("/").unwrap();
                send(s, &ro(page), &[dir.as_raw_fd()]);
            },
        ),
        row(
            "a tmpfs file (/dev/shm): born with F_SEAL_SEAL",
            Expect::Refused(
                |e| matches!(e, MemError::ShareUnsealed { seals, .. } if *seals == libc::F_SEAL_SEAL as u32),
            ),
            move |s| {
                let path = format!("/dev/shm/unimem-hostile-{}", std::process::id());
                let file = std::fs::File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .unwrap();
                std::fs::remove_file(&path).unwrap();
                let fd = OwnedFd::from(file);
                // SAFETY: ftruncate on the file just opened.
                let sized = unsafe { libc::ftruncate(fd.as_raw_fd(), page as libc::off_t) };
                assert_eq!(sized, 0);
                write_words(&fd, 0, page, 5);
                send(s, &ro(page), &[fd.as_raw_fd()]);
            },
        ),
        row(
            "a file on disk (the crate's Cargo.toml)",
            Expect::Refused(
                |e| matches!(e, MemError::ShareNotMemfd { mode } if mode & libc::S_IFMT == libc::S_IFREG),
            ),
            move |s| {
                let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
                let file = std::fs::File::open(path).unwrap();
                send(s, &ro(page), &[file.as_raw_fd()]);
            },
        ),
        // Several descriptors.
        row(
            "two descriptors",
            Expect::Refused(|e| {
                *e == MemError::ShareFds {
                    received: 2,
                    truncated: false,
                }
            }),
            move |s| {
                let file = ro_file(page);
                send(s, &ro(page), &[file.as_raw_fd(), file.as_raw_fd()]);
            },
        ),
        row(
            "a hundred descriptors",
            Expect::Refused(|e| {
                *e == MemError::ShareFds {
                    received: 60,
                    truncated: true,
                }
            }),
            move |s| {
                let file = ro_file(page);
                send(s, &ro(page), &vec![file.as_raw_fd(); 100]);
            },
        ),
        row(
            "a header without a descriptor",
            Expect::Refused(|e| {
                *e == MemError::ShareFds {
                    received: 0,
                    truncated: false,
                }
            }),
            move |s| send(s, &ro(page), &[]),
        ),
        // The header split, or merged with other bytes.
        row(
            "header split, the descriptor with the first part",
            Expect::Each(&[
                Expect::Refused(|e| {
                    *e == MemError::ShareHeader {
                        len: 10,
                        reason: "wrong length",
                    }
                }),
                Expect::Refused(|e| {
                    *e == MemError::ShareFds {
                        received: 0,
                        truncated: false,
                    }
                }),
            ]),
            move |s| {
                let file = ro_file(page);
                let h = ro(page);
                send(s, &h[..10], &[file.as_raw_fd()]);
                send(s, &h[10..], &[]);
            },
        ),
        row(
            "header split, the descriptor with the second part (the kernel joins them)",
            Expect::Imported,
            move |s| {
                let file = ro_file(page);
                let h = ro(page);
                send(s, &h[..10], &[]);
                send(s, &h[10..], &[file.as_raw_fd()]);
            },
        ),
        row(
            "bytes before the header",
            Expect::Each(&[
                Expect::Refused(|e| {
                    *e == MemError::ShareHeader {
                        len: 24,
                        reason: "wrong magic",
                    }
                }),
                Expect::Refused(|e| {
                    *e == MemError::ShareFds {
                        received: 0,
                        truncated: false,
                    }
                }),
            ]),
            move |s| {
                let file = ro_file(page);
                send(s, b"junk!", &[]);
                send(s, &ro(page), &[file.as_raw_fd()]);
            },
        ),
        row(
            "bytes after the header, in the same message",
            Expect::Each(&[
                Expect::Imported,
                Expect::Refused(|e| {
                    *e == MemError::ShareFds {
                        received: 0,
                        truncated: false,
                    }
                }),
            ]),
            move |s| {
                let file = ro_file(page);
                let mut bytes = ro(page).to_vec();
                bytes.extend_from_slice(b"after!");
                send(s, &bytes, &[file.as_raw_fd()]);
            },
        ),
        row(
            "two shares back to back",
            Expect::Each(&[Expect::Imported, Expect::Imported]),
            move |s| {
                let file = ro_file(page);
                send(s, &ro(page), &[file.as_raw_fd()]);
                send(s, &ro(page), &[file.as_raw_fd()]);
            },
        ),
        // Credentials and pidfds: the importer turns the options on, then receives.
        Row {
            socket_flags: &[libc::SO_PASSCRED],
            ..row("SO_PASSCRED, a good share", Expect::Imported, move |s| {
                send(s, &ro(page), &[ro_file(page).as_raw_fd()]);
            })
        },
        Row {
            socket_flags: &[common::SO_PASSPIDFD],
            ..row(
                "SO_PASSCRED and SO_PASSPIDFD, a good share (the pidfd closed)",
                Expect::Imported,
                move |s| send(s, &ro(page), &[ro_file(page).as_raw_fd()]),
            )
        },
        row(
            "SO_PASSCRED and SO_PASSPIDFD, two descriptors",
            Expect::Refused(|e| {
                *e == MemError::ShareFds {
                    received: 2,
                    truncated: false,
                }
            }),
            move |s| {
                let file = ro_file(page);
                send(s, &ro(page), &[file.as_raw_fd(), file.as_raw_fd()]);
            },
        ),
        row(
            "SO_PASSCRED and SO_PASSPIDFD, a hundred descriptors",
            // Credentials and the pidfd take room first: fewer descriptors fit, the pidfd
            // does not fit at all, and nothing that arrived stays open.
            Expect::Refused(
                |e| matches!(e, MemError::ShareFds { received, truncated: true } if *received > 1 && *received < 60),
            ),
            move |s| {
                let file = ro_file(page);
                send(s, &ro(page), &vec![file.as_raw_fd(); 100]);
            },
        ),
        row(
            "SO_PASSCRED and SO_PASSPIDFD, garbage bytes",
            Expect::Refused(|e| {
                matches!(
                    e,
                    MemError::ShareHeader {
                        reason: "wrong magic",
                        ..
                    }
                )
            }),
            move |s| send(s, &[b'x'; 24], &[ro_file(page).as_raw_fd()]),
        ),
        row(
            "SO_PASSCRED and SO_PASSPIDFD, a good read-write share",
            Expect::Imported,
            move |s| send(s, &rw(page), &[memfd(page, RESIZE, 5).as_raw_fd()]),
        ),
    ]
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut ends = [0; 2];
    // SAFETY: pipe2 writes two descriptors into a live array; each is owned once below.
    unsafe {
        assert_eq!(libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1]))
    }
}

/// Hands the importer child its data socket: one byte with the descriptor attached.
fn give_socket(control: &UnixStream) -> UnixStream {
    let (here, there) = UnixStream::pair().unwrap();
    send(control, b"d", &[there.as_raw_fd()]);
    here
}

/// In the importer child: the data socket the sender handed over.
fn take_socket(control: &UnixStream) -> UnixStream {
    let (bytes, mut fds) = recv_raw(control, 1);
    assert_eq!((bytes.as_slice(), fds.len()), (&b"d"[..], 1));
    UnixStream::from(fds.pop().unwrap())
}

#[test]
fn every_row_is_refused_or_imported_and_nothing_is_kept() {
    const NAME: &str = "every_row_is_refused_or_imported_and_nothing_is_kept";
    if is_child(NAME) {
        let control = parent_socket();
        let data = take_socket(&control);
        // Nothing of unimem's has run in this process yet: the first snapshot is the
        // baseline for every row.
        let baseline = Snapshot::take();
        for row in rows() {
            wait_ack(&control);
            for &flag in row.socket_flags {
                common::set_socket_flag(&data, flag);
            }
            let before = Snapshot::take();
            row.expect.check(&data, row.name);
            before.assert_unchanged(row.name);
            ack(&control);
        }
        // The options set on the data socket cost nothing either.
        assert_eq!(Snapshot::take(), baseline);
        assert_eq!(Share::recv(&data).unwrap_err(), MemError::ShareClosed);
        return;
    }
    let mut peer = Peer::spawn(NAME, &[]);
    let data = give_socket(peer.socket());
    let rows = rows();
    for row in &rows {
        (row.send)(&data);
        // The row's messages are whole in the socket before the importer reads.
        ack(peer.socket());
        peer.wait_ack();
    }
    drop(data);
    peer.assert_passes();
    println!("{} rows tried", rows.len());
}

// ---------------------------------------------------------------------------------------
// Rows that race, kill or wait

/// A peer that sends nothing: with a receive timeout on the socket (the application's
/// choice), `recv` returns an error instead of waiting for ever; nothing arrived, nothing
/// is kept.
#[test]
fn a_silent_peer_is_a_timeout_not_a_hang() {
    const NAME: &str = "a_silent_peer_is_a_timeout_not_a_hang";
    if !is_child(NAME) {
        return common::assert_child_passes(NAME);
    }
    let (here, _there) = UnixStream::pair().unwrap();
    here.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let before = Snapshot::take();
    assert_eq!(
        Share::recv(&here).unwrap_err(),
        MemError::Os {
            call: "recvmsg",
            errno: libc::EAGAIN
        }
    );
    before.assert_unchanged("silent peer");
}

/// The shrink race (issue 11): a sender that sends an unsealed memfd, then shrinks it
/// (and sometimes grows it back, sparse) and seals it, as fast as it can, against an
/// importer that receives and imports as fast as it can, for two seconds. Seals are read
/// first, so every import sees either no seals (refused) or a final size (refused: wrong
/// size, or sparse); never a mapping larger than its file, never `SIGBUS`. One message in
/// three is sealed properly before it is sent, and imports.
#[test]
fn the_shrink_race_never_maps_a_shrinking_file() {
    const NAME: &str = "the_shrink_race_never_maps_a_shrinking_file";
    let len = 64 * page_size();
    if is_child(NAME) {
        let control = parent_socket();
        let data = take_socket(&control);
        let baseline = Snapshot::take();
        let (mut imported, mut unsealed, mut size, mut sparse) = (0u64, 0u64, 0u64, 0u64);
        loop {
            match receive(&data) {
                Ok(()) => imported += 1,
                Err(MemError::ShareClosed) => break,
                Err(MemError::ShareUnsealed { .. }) => unsealed += 1,
                Err(MemError::ShareSize { found, .. }) => {
                    assert!(found < len as u64);
                    size += 1
                }
                Err(MemError::ShareSparse { .. }) => sparse += 1,
                Err(other) => panic!("unexpected: {other:?}"),
            }
        }
        baseline.assert_unchanged("after the race");
        println!(
            "race: {imported} imported; refused {unsealed} unsealed, {size} shrunk, {sparse} sparse"
        );
        assert!(imported > 0, "the well-sealed shares must import");
        return;
    }
    let peer = Peer::spawn(NAME, &[]);
    let data = give_socket(peer.socket());
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        let file = memfd(len, 0, 5);
        let honest = sent % 3 == 0;
        if honest {
            add_seals(&file, RESIZE | libc::F_SEAL_FUTURE_WRITE);
        }
        send(
            &data,
            &header(Access::ReadOnly, len as u64),
            &[file.as_raw_fd()],
        );
        if !honest {
            // SAFETY: ftruncate on the memfd this process made (not sealed yet).
            unsafe {
                assert_eq!(
                    libc::ftruncate(file.as_raw_fd(), (len / 2) as libc::off_t),
                    0
                );
                if sent % 3 == 2 {
                    // Back to the full size: the tail is a hole now.
                    assert_eq!(libc::ftruncate(file.as_raw_fd(), len as libc::off_t), 0);
                }
            }
            add_seals(&file, RESIZE | libc::F_SEAL_FUTURE_WRITE);
        }
        sent += 1;
    }
    drop(data);
    let out = peer.finish();
    common::assert_passed(NAME, &out);
    println!(
        "race: {sent} shares sent in 2 s; {}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.split_once("race:").map(|(_, counts)| counts.to_owned()))
            .unwrap_or_default()
    );
}

/// A sender killed mid-send: it sends the first ten bytes of a header, with the descriptor,
/// and is killed before the rest. The importer gets a short header (refused, descriptor
/// closed), then the end of the stream: no hang, nothing kept.
/// The sender of `a_sender_killed_mid_send`, run only as a child of it.
#[test]
fn a_sender_killed_mid_send_sender() {
    if is_child("a_sender_killed_mid_send_sender") {
        let control = parent_socket();
        let data = take_socket(&control);
        let file = memfd(page_size(), RESIZE | libc::F_SEAL_FUTURE_WRITE, 5);
        send(
            &data,
            &header(Access::ReadOnly, page_size() as u64)[..10],
            &[file.as_raw_fd()],
        );
        ack(&control);
        // Killed here, before it sends the rest.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[test]
fn a_sender_killed_mid_send() {
    const IMPORTER: &str = "a_sender_killed_mid_send";
    const SENDER: &str = "a_sender_killed_mid_send_sender";
    if is_child(IMPORTER) {
        let control = parent_socket();
        let data = take_socket(&control);
        let before = Snapshot::take();
        // The sender is dead by now: its bytes are in the socket, then the end.
        wait_ack(&control);
        assert_eq!(
            receive(&data).unwrap_err(),
            MemError::ShareHeader {
                len: 10,
                reason: "wrong length"
            }
        );
        assert_eq!(receive(&data).unwrap_err(), MemError::ShareClosed);
        before.assert_unchanged("sender killed mid-send");
        return;
    }
    let importer = Peer::spawn(IMPORTER, &[]);
    let mut sender = Peer::spawn(SENDER, &[]);
    let (a, b) = UnixStream::pair().unwrap();
    send(importer.socket(), b"d", &[a.as_raw_fd()]);
    send(sender.socket(), b"d", &[b.as_raw_fd()]);
    drop((a, b));
    sender.wait_ack();
    sender.kill();
    let out = sender.finish();
    assert!(!out.status.success());
    ack(importer.socket());
    importer.assert_passes();
}

/// A receiver killed mid-import: the importer imports a 128 MiB read-write share over and
/// over (populating and pinning in several threads) until it is killed. The owner, a child
/// of its own, keeps everything: its snapshot, its bytes, and a freeze, which the kernel
/// grants only once no process maps the file writable any more: the dead importer's
/// mappings are gone.
/// The importer of `a_receiver_killed_mid_import`, run only as a child of its owner.
#[test]
fn a_receiver_killed_mid_import_importer() {
    if is_child("a_receiver_killed_mid_import_importer") {
        let socket = parent_socket();
        let share = Share::recv(&socket).unwrap();
        ack(&socket);
        loop {
            let share = common::import(
                // The import consumes the share: send it to ourselves to get another.
                {
                    let (a, b) = UnixStream::pair().unwrap();
                    share.send(&a).unwrap();
                    Share::recv(&b).unwrap()
                },
                Pin::BestEffort,
            );
            drop(share);
        }
    }
}

#[test]
fn a_receiver_killed_mid_import() {
    const OWNER: &str = "a_receiver_killed_mid_import";
    const IMPORTER: &str = "a_receiver_killed_mid_import_importer";
    if !is_child(OWNER) {
        return common::assert_child_passes(OWNER);
    }
    let size = 128 * MIB;
    let mut block = Block::builder(size).pin(Pin::BestEffort).open().unwrap();
    common::fill(block.as_slice_mut(), 9);
    let before = Snapshot::take();
    let mut importer = Peer::spawn(IMPORTER, &[]);
    importer.send_share(&block, Access::ReadWrite);
    importer.wait_ack();
    // Let it get into an import (no timing is asserted: wherever it is, it dies).
    std::thread::sleep(Duration::from_millis(100));
    importer.kill();
    let out = importer.finish();
    assert!(!out.status.success());
    before.assert_unchanged("owner, after its importer was killed");
    assert!(common::holds(block.as_slice(), 9));
    let frozen = block
        .freeze()
        .expect("no process maps the file writable any more");
    assert!(frozen.is_frozen() && common::holds(frozen.as_slice().unwrap(), 9));
}

/// A read-write peer that writes while the owner freezes: the freeze is refused
/// (`FreezeBusy`, a `MemError`), the owner's mapping is read-only and nothing leaks; once
/// the peer is gone (killed mid-write), the freeze goes through and every word the owner
/// wrote still holds.
/// The writer of `a_peer_that_writes_while_the_owner_freezes`, run only as a child of its
/// owner.
#[test]
fn a_peer_that_writes_while_the_owner_freezes_writer() {
    if is_child("a_peer_that_writes_while_the_owner_freezes_writer") {
        let socket = parent_socket();
        let mut block = common::import(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        ack(&socket);
        let words = block.as_slice_mut::<u64>();
        let half = words.len() / 2;
        let mut round = 0u64;
        loop {
            for w in words[half..].iter_mut() {
                // SAFETY: a volatile store through a valid `&mut u64`: the loop stays.
                unsafe { std::ptr::write_volatile(w, round) };
            }
            round += 1;
        }
    }
}

#[test]
fn a_peer_that_writes_while_the_owner_freezes() {
    const OWNER: &str = "a_peer_that_writes_while_the_owner_freezes";
    const WRITER: &str = "a_peer_that_writes_while_the_owner_freezes_writer";
    if !is_child(OWNER) {
        return common::assert_child_passes(OWNER);
    }
    let size = 4 * MIB;
    let mut block = Block::builder(size).pin(Pin::BestEffort).open().unwrap();
    let half = size / 16;
    common::fill(&mut block.as_slice_mut::<u64>()[..half], 3);
    let mut writer = Peer::spawn(WRITER, &[]);
    writer.send_share(&block, Access::ReadWrite);
    writer.wait_ack();
    let before = Snapshot::take();
    let mut frozen = block.into_read_only().unwrap();
    assert_eq!(
        frozen.freeze().unwrap_err(),
        MemError::FreezeBusy {
            id: frozen.id(),
            size
        }
    );
    assert_eq!(frozen.access(), Access::ReadOnly);
    assert!(!frozen.is_frozen());
    // Views wait for the freeze; copies do not (the peer writes the other half).
    assert!(matches!(
        frozen.as_slice::<u64>(),
        Err(MemError::NotFrozen { .. })
    ));
    let mut mine = vec![0u64; half];
    frozen.read_into(0, &mut mine).unwrap();
    assert!(common::holds(&mine, 3));
    // The replacement mapping takes the old one's place: same count, same lock state.
    before.assert_unchanged("owner, after a refused freeze");
    writer.kill();
    assert!(!writer.finish().status.success());
    frozen.freeze().unwrap();
    assert!(common::holds(&frozen.as_slice::<u64>().unwrap()[..half], 3));
}

/// A read-only peer copies bytes out while the owner writes them, as fast as both can:
/// `read_into` is sound under the race (atomic word loads), every word it copies is one the
/// owner wrote whole, and views stay refused until the owner freezes.
#[test]
fn a_reader_copies_out_while_the_owner_writes() {
    const NAME: &str = "a_reader_copies_out_while_the_owner_writes";
    let words = 64 * 1024;
    if is_child(NAME) {
        let socket = parent_socket();
        let block =
            Block::import_read_only(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        ack(&socket);
        let mut copy = vec![0u64; words];
        let mut copies = 0u64;
        let mut highest = 0u64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(500) {
            assert!(matches!(block.as_bytes(), Err(MemError::NotFrozen { .. })));
            // Odd offsets and lengths too: the byte edges of the copy.
            block.read_into(0, &mut copy).unwrap();
            for &w in &copy {
                // The owner writes `round << 32 | round`: a torn word would not match.
                assert_eq!(w >> 32, w & 0xFFFF_FFFF, "a torn word: {w:#x}");
                highest = highest.max(w & 0xFFFF_FFFF);
            }
            let mut bytes = [0u8; 13];
            block.read_into(3, &mut bytes).unwrap();
            copies += 1;
        }
        println!("reader: {copies} copies, highest round seen {highest}");
        ack(&socket);
        return;
    }
    let mut block = Block::builder(words * 8)
        .pin(Pin::BestEffort)
        .open()
        .unwrap();
    let mut peer = Peer::spawn(NAME, &[]);
    peer.send_share(&block, Access::ReadOnly);
    peer.wait_ack();
    // Write until the reader is done; this process holds the only `&mut` view.
    let socket = peer.socket().try_clone().unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut round = 1u64;
    loop {
        for w in block.as_slice_mut::<u64>() {
            // SAFETY: a volatile store through a valid `&mut u64`: the stores stay.
            unsafe { std::ptr::write_volatile(w, round << 32 | round) };
        }
        round += 1;
        let mut byte = [0u8; 1];
        if (&socket).read(&mut byte).is_ok() {
            break;
        }
    }
    socket.set_nonblocking(false).unwrap();
    peer.assert_passes();
}

/// A sender's descriptors are its own business: descriptors it attaches in control messages
/// of other kinds are not possible (the kernel takes `SCM_RIGHTS` and credentials only), but
/// credentials it attaches itself, with a receiver that asks for them, fit next to the share.
#[test]
fn a_sender_attaching_credentials_of_its_own() {
    const NAME: &str = "a_sender_attaching_credentials_of_its_own";
    if is_child(NAME) {
        let control = parent_socket();
        let data = take_socket(&control);
        common::set_socket_flag(&data, libc::SO_PASSCRED);
        common::set_socket_flag(&data, common::SO_PASSPIDFD);
        let before = Snapshot::take();
        wait_ack(&control);
        receive(&data).unwrap();
        before.assert_unchanged("credentials attached by the sender");
        ack(&control);
        return;
    }
    let mut peer = Peer::spawn(NAME, &[]);
    let data = give_socket(peer.socket());
    let file = memfd(page_size(), RESIZE | libc::F_SEAL_FUTURE_WRITE, 5);
    send_with_credentials(
        &data,
        &header(Access::ReadOnly, page_size() as u64),
        file.as_fd(),
    );
    ack(peer.socket());
    peer.wait_ack();
    peer.assert_passes();
}

/// One `sendmsg` with `SCM_CREDENTIALS` (this process's own pid, uid and gid) and
/// `SCM_RIGHTS` (one descriptor).
fn send_with_credentials(socket: &UnixStream, bytes: &[u8], fd: std::os::fd::BorrowedFd<'_>) {
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the control buffer is aligned and holds both
    // messages (CMSG_SPACE of each, checked); sendmsg only reads it and `bytes`.
    let sent = unsafe {
        let creds = libc::ucred {
            pid: libc::getpid(),
            uid: libc::getuid(),
            gid: libc::getgid(),
        };
        let creds_space = libc::CMSG_SPACE(size_of::<libc::ucred>() as u32) as usize;
        let rights_space = libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) as usize;
        assert!(creds_space + rights_space <= size_of_val(&control));
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = (creds_space + rights_space) as _;
        let first = libc::CMSG_FIRSTHDR(&msg);
        (*first).cmsg_level = libc::SOL_SOCKET;
        (*first).cmsg_type = libc::SCM_CREDENTIALS;
        (*first).cmsg_len = libc::CMSG_LEN(size_of::<libc::ucred>() as u32) as _;
        libc::CMSG_DATA(first)
            .cast::<libc::ucred>()
            .write_unaligned(creds);
        let second = libc::CMSG_NXTHDR(&msg, first);
        (*second).cmsg_level = libc::SOL_SOCKET;
        (*second).cmsg_type = libc::SCM_RIGHTS;
        (*second).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
        libc::CMSG_DATA(second)
            .cast::<libc::c_int>()
            .write_unaligned(fd.as_raw_fd());
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    assert_eq!(
        sent,
        bytes.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

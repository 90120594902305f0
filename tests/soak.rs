//! A bounded multi-process soak: one owner (this process, the survivor) and three workers
//! (this test binary re-executed) share, import, freeze and take cells, for
//! `UNIMEM_SOAK_SECS` seconds (45 by default), while the owner SIGKILLs workers at random
//! points (mid-import, holding imports, holding cells of a writable import) and starts new
//! ones. `#[ignore]`d: `.ci/run` runs it explicitly, with `--ignored`.
//!
//! Each iteration is one of:
//!
//! - **read**: the owner fills a Block, freezes it, and shares it read-only with a worker,
//!   with its checksum; the worker imports it, checks that it is frozen and that the
//!   checksum holds, and keeps the last few imports mapped;
//! - **write**: the owner shares a Block read-write; the worker imports it, carves a Grid
//!   from a Tape over it, fills cells from two threads through GridLanes, and reports
//!   their offsets; the owner checks every cell by offset, lets the worker go, and freezes
//!   the Block, which the kernel grants only once no process maps it writable: after the
//!   worker unmapped it, or after it was killed and reaped;
//! - **publish**: a worker fills and freezes a Block of its own and shares it read-only
//!   with its checksum; the owner imports it and keeps it, across the worker's death;
//! - **kill**: a worker holding imports is killed.
//!
//! One iteration in six kills its worker at a random point. At the end every worker is told
//! to quit and must exit cleanly; every frozen Block the owner kept (its own and imported
//! ones, some from killed workers) must still match its checksum; and once they are dropped
//! the owner holds exactly the descriptors, locked memory, resident shared memory and
//! memfd mappings it held before, and has no child left. The seed is printed;
//! `UNIMEM_SOAK_SEED` replays one.

#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{is_child, parent_socket, status_bytes};
use unimem::{Block, Grid, GridLane, Pin, ReadOnlyBlock, Share, Tape, page_size};

const TEST: &str = "soak";
/// Every Block of the soak has this name, so its mappings can be counted.
const NAME: &str = "unimem-soak";
const WORKERS: usize = 3;
/// Frozen Blocks the owner keeps (and checks at the end), and imports a worker keeps.
const KEEP: usize = 8;
/// No reply may take longer: a worker that waits past this is hung.
const REPLY: Duration = Duration::from_secs(30);

#[test]
#[ignore = "a soak of UNIMEM_SOAK_SECS (45) seconds; .ci/run runs it with --ignored"]
fn soak() {
    if is_child(TEST) {
        return worker();
    }
    let secs = env_u64("UNIMEM_SOAK_SECS", 45);
    let seed = env_u64("UNIMEM_SOAK_SEED", now_seed());
    println!("soak: {secs} s, seed {seed} (UNIMEM_SOAK_SEED replays it)");
    let before = Held::now();
    let mut rng = Rng(seed | 1);
    let mut stats = Stats::default();
    let mut kept: Vec<(ReadOnlyBlock, u64)> = Vec::new();
    {
        let mut workers: Vec<Worker> = (0..WORKERS).map(|_| Worker::spawn()).collect();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            stats.iterations += 1;
            let w = rng.below(WORKERS as u64) as usize;
            // A kill point in 1..=3 for one iteration in six, else 0 (none).
            let kill = if rng.below(6) == 0 {
                1 + rng.below(3) as u8
            } else {
                0
            };
            let size = page_size() << rng.below(9);
            let killed = match rng.below(10) {
                0..=3 => read(&mut workers[w], size, kill, &mut rng, &mut stats, &mut kept),
                4..=6 => write(&mut workers[w], size, kill, &mut rng, &mut stats, &mut kept),
                7..=8 => publish(&mut workers[w], size, kill, &mut rng, &mut stats, &mut kept),
                _ => {
                    workers[w].kill();
                    true
                }
            };
            if killed {
                stats.kills += 1;
                workers[w] = Worker::spawn();
            }
            kept.truncate(KEEP);
        }
        for worker in workers {
            worker.quit();
        }
    }
    for (block, sum) in &kept {
        assert!(block.is_frozen(), "a kept Block is no longer frozen");
        assert_eq!(
            checksum(block.as_slice().unwrap()),
            *sum,
            "a frozen Block changed"
        );
    }
    stats.checked_at_end = kept.len();
    drop(kept);
    let after = Held::now();
    println!("soak: {stats:?}");
    println!("soak: held before {before:?}, after {after:?}");
    assert_eq!(after.fds, before.fds, "descriptors leaked");
    assert_eq!(after.locked, before.locked, "locked memory left behind");
    assert_eq!(
        after.mappings, before.mappings,
        "memfd mappings left behind"
    );
    // Resident shared memory is summed from per-CPU counters: allow their slack.
    assert!(
        after.shmem <= before.shmem + (256 << 10),
        "shared memory left mapped: {} -> {} bytes",
        before.shmem,
        after.shmem
    );
    assert_eq!(children(), Vec::<u32>::new(), "children left behind");
}

// ---------------------------------------------------------------------------------------
// The owner's side

/// A worker process, with a socket to it as its standard input. Killed and reaped on drop.
struct Worker {
    child: Option<Child>,
    socket: UnixStream,
}

impl Worker {
    fn spawn() -> Worker {
        let (here, there) = UnixStream::pair().expect("socketpair");
        here.set_read_timeout(Some(REPLY)).unwrap();
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .args([
                TEST,
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "--ignored",
            ])
            .env("UNIMEM_CHILD", TEST)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(there)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn a worker");
        Worker {
            child: Some(child),
            socket: here,
        }
    }

    fn send(&self, command: u8, numbers: &[u64]) {
        let mut bytes = vec![command];
        bytes.extend(numbers.iter().flat_map(|n| n.to_le_bytes()));
        (&self.socket)
            .write_all(&bytes)
            .unwrap_or_else(|e| self.died(&e));
    }

    fn recv(&self, n: usize) -> Vec<u64> {
        let mut bytes = vec![0u8; 8 * n];
        (&self.socket)
            .read_exact(&mut bytes)
            .unwrap_or_else(|e| self.died(&e));
        bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// The worker stopped answering without being killed: fail with what it said.
    fn died(&self, err: &std::io::Error) -> ! {
        let pid = self.child.as_ref().map(Child::id);
        panic!("worker {pid:?} stopped answering ({err}); its stderr follows on its exit")
    }

    /// SIGKILL, then reap: when this returns the worker's mappings are gone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill a worker");
            let status = child.wait().expect("reap a worker");
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
        }
    }

    /// Tells the worker to stop, and fails unless it exits cleanly.
    fn quit(mut self) {
        self.send(b'q', &[]);
        let child = self.child.take().expect("a live worker");
        let out = child.wait_with_output().expect("reap a worker");
        assert!(
            out.status.success(),
            "a worker failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills the worker if `kill` is `at`, after a random pause of up to 2 ms for the
    /// first kill point (so it lands anywhere in what the worker is doing).
    fn maybe_kill(&mut self, kill: u8, at: u8, rng: &mut Rng) -> bool {
        if kill != at {
            return false;
        }
        if at == 1 {
            std::thread::sleep(Duration::from_micros(rng.below(2000)));
        }
        self.kill();
        true
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let out = child.wait_with_output();
            if std::thread::panicking() {
                if let Ok(out) = out {
                    eprintln!("worker stderr:\n{}", String::from_utf8_lossy(&out.stderr));
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    iterations: u64,
    kills: u64,
    reads: u64,
    writes: u64,
    cells: u64,
    publishes: u64,
    freezes: u64,
    checked_at_end: usize,
}

/// A frozen Block of the owner's, shared read-only with a worker that checks it.
fn read(
    worker: &mut Worker,
    size: usize,
    kill: u8,
    rng: &mut Rng,
    stats: &mut Stats,
    kept: &mut Vec<(ReadOnlyBlock, u64)>,
) -> bool {
    let mut block = block(size);
    fill(block.as_slice_mut(), rng.next());
    let block = block.freeze().expect("freeze a Block nobody else maps");
    stats.freezes += 1;
    let sum = checksum(block.as_slice().unwrap());
    worker.send(b'r', &[sum]);
    block.share().unwrap().send(&worker.socket).unwrap();
    kept.insert(0, (block, sum));
    if worker.maybe_kill(kill, 1, rng) || worker.maybe_kill(kill, 2, rng) {
        return true;
    }
    assert_eq!(worker.recv(1), [1], "the worker checked the frozen Block");
    stats.reads += 1;
    worker.maybe_kill(kill, 3, rng)
}

/// A Block shared read-write: the worker takes cells of a Grid over it and fills them;
/// the owner checks them by offset and freezes the Block once the worker let go (or died).
fn write(
    worker: &mut Worker,
    size: usize,
    kill: u8,
    rng: &mut Rng,
    stats: &mut Stats,
    kept: &mut Vec<(ReadOnlyBlock, u64)>,
) -> bool {
    let block = block(size.max(4 * page_size()));
    let salt = rng.next();
    worker.send(b'w', &[salt]);
    common::share_read_write(&block)
        .unwrap()
        .send(&worker.socket)
        .unwrap();
    let killed = worker.maybe_kill(kill, 1, rng) || {
        let [cell, n] = worker.recv(2)[..] else {
            unreachable!()
        };
        let offsets = worker.recv(n as usize);
        // The worker holds its cells and waits: the owner reads them by offset.
        let words = block.as_slice::<u64>();
        for &offset in &offsets {
            let at = offset as usize / 8;
            let cell_words = &words[at..at + cell as usize / 8];
            assert!(
                holds(cell_words, salt ^ offset),
                "the cell at {offset} does not hold what the worker wrote"
            );
        }
        stats.cells += n;
        worker.maybe_kill(kill, 2, rng) || {
            worker.send(b'k', &[]);
            assert_eq!(worker.recv(1), [n], "the worker let go of its cells");
            worker.maybe_kill(kill, 3, rng)
        }
    };
    // No process maps the Block writable any more (the worker unmapped it, or died and
    // was reaped): the kernel grants the write seal.
    let block = block
        .freeze()
        .expect("freeze once the worker let go or was reaped");
    stats.freezes += 1;
    stats.writes += u64::from(!killed);
    let sum = checksum(block.as_slice().unwrap());
    kept.insert(0, (block, sum));
    killed
}

/// The worker freezes a Block of its own and shares it; the owner imports and keeps it.
fn publish(
    worker: &mut Worker,
    size: usize,
    kill: u8,
    rng: &mut Rng,
    stats: &mut Stats,
    kept: &mut Vec<(ReadOnlyBlock, u64)>,
) -> bool {
    worker.send(b'p', &[size as u64, rng.next()]);
    if worker.maybe_kill(kill, 1, rng) {
        return true;
    }
    let share = Share::recv(&worker.socket).expect("the worker's share");
    let [sum] = worker.recv(1)[..] else {
        unreachable!()
    };
    let import = Block::import_read_only(share, Pin::BestEffort).expect("import a frozen Block");
    assert!(import.is_frozen(), "the worker's Block is not frozen");
    assert_eq!(
        checksum(import.as_slice().unwrap()),
        sum,
        "the worker's Block changed"
    );
    stats.publishes += 1;
    kept.insert(0, (import, sum));
    worker.maybe_kill(kill, 2, rng) || worker.maybe_kill(kill, 3, rng)
}

// ---------------------------------------------------------------------------------------
// The worker's side

fn worker() {
    let socket = parent_socket();
    let mut imports: Vec<ReadOnlyBlock> = Vec::new();
    let mut published: Vec<ReadOnlyBlock> = Vec::new();
    loop {
        let mut command = [0u8; 1];
        if (&socket).read_exact(&mut command).is_err() {
            return;
        }
        match command[0] {
            b'r' => {
                let [sum] = numbers(&socket, 1)[..] else {
                    unreachable!()
                };
                let share = Share::recv(&socket).unwrap();
                let block = Block::import_read_only(share, Pin::BestEffort).unwrap();
                assert!(
                    block.is_frozen(),
                    "a read share of a Block that is not frozen"
                );
                assert_eq!(
                    checksum(block.as_slice().unwrap()),
                    sum,
                    "checksum of an import"
                );
                imports.insert(0, block);
                imports.truncate(KEEP / 2);
                reply(&socket, &[1]);
            }
            b'w' => {
                let [salt] = numbers(&socket, 1)[..] else {
                    unreachable!()
                };
                let share = Share::recv(&socket).unwrap();
                let block = common::import(share, Pin::BestEffort).unwrap();
                take_cells(&socket, block, salt);
            }
            b'p' => {
                let [size, salt] = numbers(&socket, 2)[..] else {
                    unreachable!()
                };
                let mut own = block(size as usize);
                fill(own.as_slice_mut(), salt);
                let own = own.freeze().unwrap();
                own.share().unwrap().send(&socket).unwrap();
                reply(&socket, &[checksum(own.as_slice().unwrap())]);
                published.insert(0, own);
                published.truncate(2);
            }
            b'q' => return,
            other => panic!("unknown command {other}"),
        }
    }
}

/// Carves a Grid from a Tape over the writable import, takes cells from two threads
/// through GridLanes, fills each with the salt and its offset, reports them, and lets go
/// when the owner has read them.
fn take_cells(socket: &UnixStream, block: Block, salt: u64) {
    let tape = Tape::over(block);
    let cell = 1024;
    let cells = tape.total() / cell - 1;
    let grid = Grid::over(tape, cell, cells).unwrap();
    let held = std::thread::scope(|s| {
        let takers: Vec<_> = (0..2)
            .map(|t| {
                let grid = &grid;
                s.spawn(move || {
                    let mut lane: GridLane<'_> = grid.lane(4);
                    let mut mine = Vec::new();
                    // Take, give back some, keep the rest: churn before the final set.
                    for round in 0..cells {
                        let Some(mut c) = lane.take() else { break };
                        let offset = c.offset() as u64;
                        fill(c.as_slice_mut(), salt ^ offset);
                        if (round + t) % 3 == 0 {
                            lane.give(c).unwrap();
                        } else {
                            mine.push(c.into_id());
                        }
                    }
                    mine
                })
            })
            .collect();
        takers
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(
        grid.in_use(),
        held.len(),
        "cells in use after the takers joined"
    );
    let mut offsets: Vec<u64> = held
        .iter()
        .map(|id| grid.cell_offset(id.index()).unwrap() as u64)
        .collect();
    offsets.sort_unstable();
    assert!(
        offsets.windows(2).all(|w| w[0] != w[1]),
        "a cell taken twice"
    );
    reply(socket, &[grid.cell_size() as u64, offsets.len() as u64]);
    reply(socket, &offsets);
    // The owner reads the cells, then says go.
    let mut go = [0u8; 1];
    (&*socket).read_exact(&mut go).unwrap();
    for id in held {
        grid.release(id).unwrap();
    }
    assert_eq!(grid.in_use(), 0);
    drop(grid);
    reply(socket, &[offsets.len() as u64]);
}

fn numbers(socket: &UnixStream, n: usize) -> Vec<u64> {
    let mut bytes = vec![0u8; 8 * n];
    (&*socket).read_exact(&mut bytes).unwrap();
    bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn reply(socket: &UnixStream, numbers: &[u64]) {
    let bytes: Vec<u8> = numbers.iter().flat_map(|n| n.to_le_bytes()).collect();
    (&*socket).write_all(&bytes).unwrap();
}

// ---------------------------------------------------------------------------------------
// Helpers

fn block(size: usize) -> Block {
    Block::builder(size)
        .pin(Pin::BestEffort)
        .name(NAME)
        .open()
        .unwrap()
}

/// A word per index and salt.
fn word(i: usize, salt: u64) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
}

fn fill(words: &mut [u64], salt: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = word(i, salt);
    }
}

fn holds(words: &[u64], salt: u64) -> bool {
    words.iter().enumerate().all(|(i, &w)| w == word(i, salt))
}

/// FNV-1a over the words.
fn checksum(words: &[u64]) -> u64 {
    words.iter().fold(0xCBF2_9CE4_8422_2325, |h, &w| {
        (h ^ w).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// xorshift64*: enough randomness for kill points, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// What the owner holds: descriptors, locked and resident shared memory, soak mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    fds: usize,
    locked: u64,
    shmem: u64,
    mappings: usize,
}

impl Held {
    fn now() -> Held {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        Held {
            fds: common::open_fds(),
            locked: status_bytes("VmLck:"),
            shmem: status_bytes("RssShmem:"),
            mappings: maps.lines().filter(|l| l.contains(NAME)).count(),
        }
    }
}

/// This process's children that are not reaped yet, from every thread's
/// `/proc/self/task/TID/children`.
fn children() -> Vec<u32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("children");
        let list = std::fs::read_to_string(path).unwrap_or_default();
        pids.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    pids
}

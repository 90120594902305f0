//! Sharing 1 GiB with another process: the importer's cost (receive the share, check the
//! file, map, pin) against the owner's creation of the Block and against copying the bytes
//! over the same socket. Import does no copy, so it must not scale like the copy.
//!
//! The importer runs in this process, which therefore must not map the file otherwise (a
//! second mapping in one process would alias the first, and is refused): the owner fills
//! its Block, shares it and drops it before the import benchmarks, the share keeping the
//! memory alive. The importer then pays what a peer process pays: `recvmsg`, `fstat`,
//! `F_GET_SEALS`, `readlink`, `mmap`, then page tables and locks for pages that already
//! exist (the owner populated them; dropping its mapping does not free them). Each
//! iteration's share is sent before the clock starts and the import dropped after it
//! stops. The read-only benchmark imports a read-only share of the same file, made by a
//! read-write import (any holder may seal).
//!
//! ```sh
//! cargo bench --bench share
//! ```

// `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
    use unimem::{Block, MemError, Pin, Share};

    const GIB: usize = 1 << 30;

    /// A pinned Block, or an unpinned one where this process may not pin 1 GiB.
    fn open(size: usize) -> Block {
        match Block::open(size) {
            Ok(block) => block,
            Err(MemError::LockRefused { .. }) => {
                eprintln!("note: pinning refused, benchmarking unpinned Blocks");
                Block::builder(size).pin(Pin::BestEffort).open().unwrap()
            }
            Err(err) => panic!("{err}"),
        }
    }

    fn pin_of(block: &Block) -> Pin {
        if block.is_pinned() {
            Pin::Required
        } else {
            Pin::BestEffort
        }
    }

    fn share(c: &mut Criterion) {
        let mut group = c.benchmark_group("share 1 GiB");
        group
            .throughput(Throughput::Bytes(GIB as u64))
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500));

        group.bench_function("owner creates (open + populate + pin)", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let block = open(GIB);
                    total += start.elapsed();
                    drop(block);
                }
                total
            })
        });

        // The owner fills the Block, shares it read-write and lets go of it.
        let mut owner = open(GIB);
        owner.as_bytes_mut().fill(0x5A);
        let pin = pin_of(&owner);
        // SAFETY: one process at a time maps the file: the owner drops its Block before the
        // benchmark imports it, and each import is dropped before the next.
        let share = unsafe { owner.share_read_write() }.unwrap();
        drop(owner);
        let (here, there) = UnixStream::pair().unwrap();

        group.bench_function("peer imports read-write (recv + checks + map + pin)", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    share.send(&here).unwrap();
                    let start = Instant::now();
                    // SAFETY: no other mapping of the file exists (see `share`).
                    let peer = unsafe { Block::import(Share::recv(&there).unwrap(), pin) };
                    let peer = peer.unwrap();
                    total += start.elapsed();
                    assert_eq!(peer.as_bytes()[GIB - 1], 0x5A);
                    drop(peer);
                }
                total
            })
        });

        // Freezing is done once, by a holder: here a read-write import, dropped before the
        // benchmark (a peer reads views only of frozen bytes; the freeze costs the importer
        // nothing but one more `fcntl` in the checks).
        // SAFETY: the only mapping of the file (see `share`).
        let import = unsafe { Block::import(share, pin) }.unwrap();
        let read_only = import.freeze().unwrap().share().unwrap();
        group.bench_function("peer imports read-only (recv + checks + map + pin)", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    read_only.send(&here).unwrap();
                    let start = Instant::now();
                    let peer = Block::import_read_only(Share::recv(&there).unwrap(), pin).unwrap();
                    total += start.elapsed();
                    assert_eq!(peer.as_bytes().unwrap()[GIB - 1], 0x5A);
                    drop(peer);
                }
                total
            })
        });
        drop(read_only);

        // The copies' source: a Block of the same bytes (the shared file is freed above).
        let mut owner = open(GIB);
        owner.as_bytes_mut().fill(0x5A);
        let mut copy = open(GIB);
        group.bench_function("copy over the socket into a ready Block", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        let (source, mut sink) = (owner.as_bytes(), &here);
                        s.spawn(move || sink.write_all(source).unwrap());
                        (&there).read_exact(copy.as_bytes_mut()).unwrap();
                    });
                    total += start.elapsed();
                }
                assert_eq!(copy.as_bytes()[GIB - 1], 0x5A);
                total
            })
        });
        drop(copy);

        // What a peer pays without sharing: memory of its own, then the copy.
        group.bench_function("copy over the socket into a new Block (open + copy)", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let mut copy = open(GIB);
                    std::thread::scope(|s| {
                        let (source, mut sink) = (owner.as_bytes(), &here);
                        s.spawn(move || sink.write_all(source).unwrap());
                        (&there).read_exact(copy.as_bytes_mut()).unwrap();
                    });
                    total += start.elapsed();
                    assert_eq!(copy.as_bytes()[GIB - 1], 0x5A);
                }
                total
            })
        });
        group.finish();
    }

    criterion_group!(benches, share);
}

#[cfg(target_os = "linux")]
criterion::criterion_main!(linux::benches);

/// Sharing is Linux only in this version.
#[cfg(not(target_os = "linux"))]
fn main() {}

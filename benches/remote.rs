//! Cells moved between two processes through UCX (feature `ucx`): GB/s and cells/s for
//! cells of 16 KiB to 1 MiB, get and put, against a plain copy between two Blocks (the
//! one-machine ceiling). Compare with `ucx_perftest -t ucp_put_bw` on the same transport
//! (`specs/remote.md`, `BENCHMARKS.md`).
//!
//! ```sh
//! UCX_TLS=tcp cargo bench --features ucx --bench remote
//! UCX_TLS=sm,tcp cargo bench --features ucx --bench remote      # UCX 1.13: over TCP too
//! UCX_TLS=tcp UCX_TCP_TX_SEG_SIZE=256k UCX_TCP_RX_SEG_SIZE=1m cargo bench --features ucx --bench remote
//! ```
//!
//! The bench starts the exporter (itself, `UNIMEM_BENCH_ROLE=serve`) with a socket as its
//! standard input; each size moves 64 MiB per batch (one call), best of 7 batches, between
//! distinct cells on both sides. With `UNIMEM_BENCH_SAME_CELL=1` every cell of a batch is
//! read from or written to remote cell 0, as `ucx_perftest` moves one buffer again and
//! again (the remote side then stays in cache).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use unimem::remote::{Engine, Secret};
use unimem::{Block, Cell, Grid, Pin};

const TOTAL: usize = 64 << 20;
const ROUNDS: usize = 7;
const SIZES: [usize; 4] = [16 << 10, 64 << 10, 256 << 10, 1 << 20];

fn send(mut socket: &UnixStream, bytes: &[u8]) {
    socket
        .write_all(&(bytes.len() as u32).to_le_bytes())
        .unwrap();
    socket.write_all(bytes).unwrap();
}

fn recv(mut socket: &UnixStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    socket.read_exact(&mut len).unwrap();
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    socket.read_exact(&mut bytes).unwrap();
    bytes
}

fn grid(cell: usize) -> Grid {
    Grid::builder(cell, TOTAL / cell)
        .pin(Pin::BestEffort)
        .open()
        .unwrap()
}

/// The exporter: one Grid per size asked for, served until the next request.
fn serve() {
    let socket = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned().unwrap());
    let secret = Secret::from_bytes(recv(&socket).try_into().unwrap());
    let engine = Engine::load().unwrap();
    loop {
        let ask = recv(&socket);
        if ask.is_empty() {
            return;
        }
        let cell = u64::from_le_bytes(ask.try_into().unwrap()) as usize;
        let grid = grid(cell);
        let local = engine.register(&grid).unwrap();
        send(&socket, &local.export(&secret).unwrap());
        socket.set_nonblocking(true).unwrap();
        loop {
            for _ in 0..256 {
                engine.progress();
            }
            let mut byte = [0u8; 1];
            match (&socket).read(&mut byte) {
                Ok(_) => break,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => panic!("{err}"),
            }
        }
        socket.set_nonblocking(false).unwrap();
        drop(local);
    }
}

fn rate(bytes: usize, cells: usize, best: Duration) -> String {
    let s = best.as_secs_f64();
    format!(
        "{:6.2} GB/s {:9.0} cells/s",
        bytes as f64 / s / 1e9,
        cells as f64 / s
    )
}

fn main() {
    if std::env::var("UNIMEM_BENCH_ROLE").as_deref() == Ok("serve") {
        return serve();
    }
    let engine = match Engine::load() {
        Ok(engine) => engine,
        Err(err) => {
            println!("remote bench: no UCX ({err})");
            return;
        }
    };
    let (here, there) = UnixStream::pair().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("UNIMEM_BENCH_ROLE", "serve")
        .stdin(Stdio::from(OwnedFd::from(there)))
        .spawn()
        .unwrap();
    let secret = Secret::random().unwrap();
    send(&here, &secret.to_bytes());
    let tls = std::env::var("UCX_TLS").unwrap_or_else(|_| "any".into());
    let same_cell = std::env::var_os("UNIMEM_BENCH_SAME_CELL").is_some();
    println!(
        "remote bench: UCX {:?}, UCX_TLS={tls}, {} MiB per batch, best of {ROUNDS}{}",
        engine.version(),
        TOTAL >> 20,
        if same_cell {
            ", every cell to and from remote cell 0"
        } else {
            ""
        }
    );
    for cell in SIZES {
        send(&here, &(cell as u64).to_le_bytes());
        let description = recv(&here);
        let mine = grid(cell);
        let local = engine.register(&mine).unwrap();
        let remote = engine.import(&description, &secret).unwrap();
        let n = TOTAL / cell;
        // Distinct remote cells (what a block table names), or, like `ucx_perftest`, which
        // moves one buffer again and again, remote cell 0 every time.
        let table: Vec<u32> = if same_cell {
            vec![0; n]
        } else {
            (0..n as u32).collect()
        };
        for (name, put) in [("get", false), ("put", true)] {
            let mut best = Duration::MAX;
            for _ in 0..ROUNDS + 1 {
                let cells: Vec<Cell<'_>> = (0..n).map(|_| mine.take().unwrap()).collect();
                let started = Instant::now();
                let transfer = if put {
                    remote.put(&local, cells, &table)
                } else {
                    remote.get(&local, &table, cells)
                };
                let back = transfer.unwrap().wait(Duration::from_secs(60)).unwrap();
                best = best.min(started.elapsed());
                drop(back);
            }
            println!(
                "  {name} {:5} KiB cells: {}",
                cell >> 10,
                rate(TOTAL, n, best)
            );
        }
        drop(remote);
        drop(local);
        (&here).write_all(b"d").unwrap();
    }
    send(&here, &[]);
    child.wait().unwrap();
    // The ceiling on one machine: a copy from one Block into another.
    let (src, mut dst) = (
        Block::builder(TOTAL).pin(Pin::BestEffort).open().unwrap(),
        Block::builder(TOTAL).pin(Pin::BestEffort).open().unwrap(),
    );
    for cell in SIZES {
        let mut best = Duration::MAX;
        for _ in 0..ROUNDS + 1 {
            let started = Instant::now();
            for (d, s) in dst
                .as_bytes_mut()
                .chunks_mut(cell)
                .zip(src.as_bytes().chunks(cell))
            {
                d.copy_from_slice(s);
            }
            std::hint::black_box(&dst);
            best = best.min(started.elapsed());
        }
        println!(
            "  copy {:5} KiB cells between two Blocks: {}",
            cell >> 10,
            rate(TOTAL, TOTAL / cell, best)
        );
    }
}

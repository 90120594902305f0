//! Disaggregated prefill and decode: a "prefill" process fills the KV cells of a sequence in
//! a paged history Grid; a "decode" process pulls the sequence's block table of cells
//! through UCX into its own Grid, checks them, and goes on decoding in them.
//!
//! ```sh
//! cargo run --example kv_transfer --features ucx                 # UCX picks the transport
//! UCX_TLS=tcp cargo run --example kv_transfer --features ucx     # TCP loopback
//! UCX_TLS=sm,tcp cargo run --example kv_transfer --features ucx  # sm enabled (UCX 1.13: TCP)
//! ```
//!
//! The decode process is the one started; it starts the prefill process (this program
//! again, with the argument `prefill`) with a socket as its standard input, the control
//! channel: the secret goes one way, the Grid's description and the block table the other.
//! Without UCX it says so and exits 0, unless `UNIMEM_REQUIRE_UCX=1`.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use unimem::remote::{Engine, Secret};
use unimem::{Cell, Grid, MemError, Pin};

/// A small model: 4 layers, 2 KV heads of 64, 16 tokens per cell, fp16 K and V.
const LAYERS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 64;
const TOKENS_PER_CELL: usize = 16;
/// u16 values per token: K and V for every layer and head.
const PER_TOKEN: usize = 2 * LAYERS * KV_HEADS * HEAD_DIM;
const CELL_BYTES: usize = TOKENS_PER_CELL * PER_TOKEN * 2;
const CELLS: usize = 64;
const PROMPT: usize = 200;
const DECODE: usize = 40;

/// The value of element `i` of token `t`'s KV (fp16 bits of any pattern will do).
fn kv(t: usize, i: usize) -> u16 {
    (t.wrapping_mul(31).wrapping_add(i.wrapping_mul(7)) & 0x7bff) as u16
}

fn write_token(cell: &mut Cell<'_>, slot: usize, t: usize) {
    let values = &mut cell.as_slice_mut::<u16>()[slot * PER_TOKEN..(slot + 1) * PER_TOKEN];
    for (i, v) in values.iter_mut().enumerate() {
        *v = kv(t, i);
    }
}

fn token_ok(cell: &Cell<'_>, slot: usize, t: usize) -> bool {
    cell.as_slice::<u16>()[slot * PER_TOKEN..(slot + 1) * PER_TOKEN]
        .iter()
        .enumerate()
        .all(|(i, &v)| v == kv(t, i))
}

fn send(mut socket: &UnixStream, bytes: &[u8]) -> std::io::Result<()> {
    socket.write_all(&(bytes.len() as u32).to_le_bytes())?;
    socket.write_all(bytes)
}

fn recv(mut socket: &UnixStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    socket.read_exact(&mut len)?;
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    socket.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn history() -> Result<Grid, MemError> {
    Grid::builder(CELL_BYTES, CELLS)
        .pin(Pin::BestEffort)
        .name("kv")
        .open()
}

/// The prefill process: fill the prompt's KV, export, serve until decode is done.
fn prefill() -> Result<(), Box<dyn std::error::Error>> {
    let socket = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let secret = Secret::from_bytes(recv(&socket)?.try_into().map_err(|_| "secret")?);
    let engine = Engine::load()?;
    let grid = history()?;
    // The sequence's block table: the cells its tokens are in, in order.
    let mut table = Vec::new();
    for first in (0..PROMPT).step_by(TOKENS_PER_CELL) {
        let mut cell = grid.try_take()?;
        for t in first..(first + TOKENS_PER_CELL).min(PROMPT) {
            write_token(&mut cell, t - first, t);
        }
        table.push(cell.index());
        let _kept = cell.into_id(); // kept until decode is done
    }
    let local = engine.register(&grid)?;
    send(&socket, &local.export(&secret)?)?;
    send(
        &socket,
        &table
            .iter()
            .flat_map(|i| i.to_le_bytes())
            .collect::<Vec<u8>>(),
    )?;
    // Serve (over TCP, UCX's emulated reads need this process to make progress) until
    // decode says it is done.
    socket.set_nonblocking(true)?;
    loop {
        // Serve in bursts: a socket read per progress call would slow the serving down.
        for _ in 0..256 {
            engine.progress();
        }
        let mut byte = [0u8; 1];
        match (&socket).read(&mut byte) {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err.into()),
        }
    }
}

/// The decode process.
fn decode() -> Result<(), Box<dyn std::error::Error>> {
    let engine = match Engine::load() {
        Ok(engine) => engine,
        Err(err) if std::env::var_os("UNIMEM_REQUIRE_UCX").is_none() => {
            println!("kv_transfer: no UCX here ({err}); nothing to show");
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    };
    let (here, there) = UnixStream::pair()?;
    let mut prefill = Command::new(std::env::current_exe()?)
        .arg("prefill")
        .stdin(Stdio::from(OwnedFd::from(there)))
        .spawn()?;
    let secret = Secret::random()?;
    send(&here, &secret.to_bytes())?;
    let description = recv(&here)?;
    let table: Vec<u32> = recv(&here)?
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();

    let grid = history()?;
    let local = engine.register(&grid)?;
    let remote = engine.import(&description, &secret)?;
    let cells: Vec<Cell<'_>> = (0..table.len())
        .map(|_| grid.try_take())
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut cells = remote
        .get(&local, &table, cells)?
        .wait(Duration::from_secs(30))?;
    let took = started.elapsed();
    // Tell prefill it may let its cells go.
    (&here).write_all(b"d")?;

    for t in 0..PROMPT {
        let cell = &cells[t / TOKENS_PER_CELL];
        assert!(
            token_ok(cell, t % TOKENS_PER_CELL, t),
            "token {t} arrived wrong"
        );
    }
    // Decode: each new token's KV goes after the prompt's, into the last pulled cell
    // until it is full, then into new cells of this Grid.
    for t in PROMPT..PROMPT + DECODE {
        if t / TOKENS_PER_CELL == cells.len() {
            cells.push(grid.try_take()?);
        }
        write_token(&mut cells[t / TOKENS_PER_CELL], t % TOKENS_PER_CELL, t);
    }
    for t in 0..PROMPT + DECODE {
        assert!(token_ok(
            &cells[t / TOKENS_PER_CELL],
            t % TOKENS_PER_CELL,
            t
        ));
    }
    let bytes = table.len() * CELL_BYTES;
    println!(
        "kv_transfer: UCX {:?} (UCX_TLS={}): pulled {} cells of {} KiB ({} tokens) in {:.2} ms, \
         connection setup included \
         ({:.2} GB/s), checked them, decoded {} more tokens into {} cells",
        engine.version(),
        std::env::var("UCX_TLS").unwrap_or_else(|_| "any".into()),
        table.len(),
        CELL_BYTES >> 10,
        PROMPT,
        took.as_secs_f64() * 1e3,
        bytes as f64 / took.as_secs_f64() / 1e9,
        DECODE,
        cells.len(),
    );
    drop(cells);
    drop(remote);
    drop(local);
    let status = prefill.wait()?;
    if !status.success() {
        return Err(format!("the prefill process failed: {status}").into());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("prefill") {
        prefill()
    } else {
        decode()
    }
}

//! Grid cells moved between two processes through UCX (feature `ucx`), with `UCX_TLS=tcp`
//! (loopback) and with the shared-memory transports enabled too (`UCX_TLS=sm,tcp`; UCX 1.13
//! moves registered memory over TCP then as well, `specs/remote.md`, "Shared memory in UCX
//! 1.13"; `sm,self` alone is refused, tested).
//!
//! Each moving test runs as a child of the test binary with `UCX_TLS` set at `exec` (the
//! harness process never changes its environment); that child is the importer and starts
//! the exporter, a grandchild with the same environment, over a socketpair
//! (`tests/common`'s `Peer`). Without UCX each test skips (`tests/common`'s `skip`,
//! requirement `UCX`); `UNIMEM_REQUIRE_UCX=1` (set by `.ci/run`) makes that a failure.

#![cfg(all(feature = "ucx", target_os = "linux"))]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Peer, is_child, parent_socket};
use unimem::remote::{Engine, Secret};
use unimem::{Cell, ErrorKind, Grid, MemError, Pin};

const CELL: usize = 16 << 10;
const CELLS: usize = 32;
const WAIT: Duration = Duration::from_secs(20);
/// The shared-memory transports (`cma`, `posix`, `sysv`) next to TCP, which UCX 1.13 needs
/// to report a vanished peer; in error handling mode `PEER` it moves registered memory
/// over TCP all the same (`specs/remote.md`, "Shared memory in UCX 1.13").
const SHM: &str = "sm,tcp";

/// UCX, or `None` after saying why (`tests/common`'s `skip`: requirement `UCX`, a failure
/// under `UNIMEM_REQUIRE_UCX=1`).
fn engine_or_skip(test: &str) -> Option<Engine> {
    match Engine::load() {
        Ok(engine) => Some(engine),
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
            common::skip(test, "UCX", &format!("no UCX: {err}"));
            None
        }
    }
}

fn grid(cell: usize, cells: usize) -> Grid {
    Grid::builder(cell, cells)
        .pin(Pin::BestEffort)
        .open()
        .expect("grid")
}

/// The word at `i` of cell `index` of the side `salt`.
fn word(salt: u64, index: u32, i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(index) << 40) ^ salt
}

fn fill(cell: &mut Cell<'_>, salt: u64, index: u32) {
    for (i, w) in cell.as_slice_mut::<u64>().iter_mut().enumerate() {
        *w = word(salt, index, i);
    }
}

fn holds(cell: &Cell<'_>, salt: u64, index: u32) -> bool {
    cell.as_slice::<u64>()
        .iter()
        .enumerate()
        .all(|(i, &w)| w == word(salt, index, i))
}

/// Every cell of `grid` that is free holds its own pattern (`salt`, its index).
fn untouched(grid: &Grid, salt: u64) -> bool {
    let mut cells: Vec<Cell<'_>> = std::iter::from_fn(|| grid.take()).collect();
    let ok = cells.iter_mut().all(|c| {
        let index = c.index();
        holds(c, salt, index)
    });
    drop(cells);
    ok
}

/// Fills every cell of `grid` with its own pattern.
fn paint(grid: &Grid, salt: u64) {
    let mut cells: Vec<Cell<'_>> = std::iter::from_fn(|| grid.take()).collect();
    for c in &mut cells {
        let index = c.index();
        fill(c, salt, index);
    }
}

fn send(socket: &UnixStream, bytes: &[u8]) {
    let mut s = socket;
    s.write_all(&(bytes.len() as u32).to_le_bytes()).unwrap();
    s.write_all(bytes).unwrap();
}

fn recv(socket: &UnixStream) -> Vec<u8> {
    let mut s = socket;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut bytes).unwrap();
    bytes
}

const EXPORTER_SALT: u64 = 0x5EED_0000_0000_0001;
const IMPORTER_SALT: u64 = 0x5EED_0000_0000_0002;
const PUT_SALT: u64 = 0x5EED_0000_0000_0003;

/// The exporter (a grandchild): receives the secret and a cell size, paints a Grid,
/// exports it, then serves (makes progress) while answering the importer's requests:
/// `c` + indices: check that those cells hold the put pattern and every other cell its own;
/// `q`: quit.
#[test]
fn exporter() {
    if !is_child("exporter") {
        return;
    }
    let socket = parent_socket();
    let secret: [u8; 16] = recv(&socket).try_into().unwrap();
    let secret = Secret::from_bytes(secret);
    let shape = recv(&socket);
    let cell = u32::from_le_bytes(shape[..4].try_into().unwrap()) as usize;
    let cells = u32::from_le_bytes(shape[4..].try_into().unwrap()) as usize;
    let engine = Engine::load().expect("the importer loaded UCX, so must the exporter");
    let grid = grid(cell, cells);
    paint(&grid, EXPORTER_SALT);
    let local = engine.register(&grid).unwrap();
    send(&socket, &local.export(&secret).unwrap());
    socket.set_nonblocking(true).unwrap();
    loop {
        // Serve in bursts: a socket read per progress call would slow the serving down.
        for _ in 0..256 {
            engine.progress();
        }
        let mut byte = [0u8; 1];
        match (&socket).read(&mut byte) {
            Ok(0) => return,
            Ok(_) if byte[0] == b'q' => return,
            Ok(_) if byte[0] == b'c' => {
                socket.set_nonblocking(false).unwrap();
                let written: Vec<u32> = recv(&socket)
                    .chunks(4)
                    .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                let mut all: Vec<Cell<'_>> = std::iter::from_fn(|| grid.take()).collect();
                let ok = all.iter_mut().all(|c| {
                    let index = c.index();
                    match written.iter().position(|&w| w == index) {
                        Some(i) => holds(c, PUT_SALT, i as u32),
                        None => holds(c, EXPORTER_SALT, index),
                    }
                });
                drop(all);
                send(&socket, if ok { b"k" } else { b"x" });
                socket.set_nonblocking(true).unwrap();
            }
            Ok(_) => panic!("unknown command {byte:?}"),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => panic!("socket: {err}"),
        }
    }
}

/// The importer's side of a connection to a fresh exporter.
struct Exported {
    peer: Peer,
    secret: Secret,
    description: Vec<u8>,
}

fn start_exporter(cell: usize, cells: usize) -> Exported {
    let tls = std::env::var("UCX_TLS").unwrap_or_default();
    let peer = Peer::spawn("exporter", &[("UCX_TLS", tls)]);
    let secret = Secret::random().unwrap();
    send(peer.socket(), &secret.to_bytes());
    let mut shape = (cell as u32).to_le_bytes().to_vec();
    shape.extend_from_slice(&(cells as u32).to_le_bytes());
    send(peer.socket(), &shape);
    let description = recv(peer.socket());
    Exported {
        peer,
        secret,
        description,
    }
}

/// Runs `test` in a child with `UCX_TLS=tls`; `true` in the parent (done), `false` in the
/// child (go on).
fn over(test: &str, tls: &str) -> bool {
    if is_child(test) {
        return false;
    }
    Peer::spawn(test, &[("UCX_TLS", tls.to_owned())]).assert_passes();
    true
}

/// Gets 8 scattered cells, checks them and the untouched rest; puts 4 cells into other
/// remote cells and has the exporter check its whole Grid.
fn moves(test: &str) {
    let Some(engine) = engine_or_skip(test) else {
        return;
    };
    let exported = start_exporter(CELL, CELLS);
    let remote = engine
        .import(&exported.description, &exported.secret)
        .unwrap();
    assert_eq!((remote.cells(), remote.cell_size()), (CELLS, CELL));
    let here = grid(CELL, CELLS);
    paint(&here, IMPORTER_SALT);
    let local = engine.register(&here).unwrap();

    let table: Vec<u32> = vec![31, 0, 7, 8, 13, 21, 2, 30];
    let cells: Vec<Cell<'_>> = (0..table.len()).map(|_| here.take().unwrap()).collect();
    let landed: Vec<u32> = cells.iter().map(Cell::index).collect();
    let transfer = remote.get(&local, &table, cells).unwrap();
    assert_eq!(transfer.len(), 8);
    let cells = transfer.wait(WAIT).unwrap();
    for (cell, &index) in cells.iter().zip(&table) {
        assert!(holds(cell, EXPORTER_SALT, index), "remote cell {index}");
    }
    drop(cells);
    // The local cells not named kept their own pattern (the named ones now hold remote
    // data: repaint them to check the rest).
    let mut all: Vec<Cell<'_>> = std::iter::from_fn(|| here.take()).collect();
    for c in &mut all {
        let index = c.index();
        if landed.contains(&index) {
            fill(c, IMPORTER_SALT, index);
        }
    }
    drop(all);
    assert!(untouched(&here, IMPORTER_SALT));

    // Put 4 cells into remote cells 3, 4, 5, 29.
    let into = [3u32, 4, 5, 29];
    let mut cells: Vec<Cell<'_>> = (0..4).map(|_| here.take().unwrap()).collect();
    for (i, c) in cells.iter_mut().enumerate() {
        fill(c, PUT_SALT, i as u32);
    }
    let mut transfer = remote.put(&local, cells, &into).unwrap();
    let started = Instant::now();
    while !transfer.poll().unwrap() {
        assert!(started.elapsed() < WAIT, "put did not complete");
    }
    let back = transfer.wait(WAIT).unwrap();
    assert_eq!(back.len(), 4);
    drop(back);
    let mut socket = exported.peer.socket();
    socket.write_all(b"c").unwrap();
    let written: Vec<u8> = into.iter().flat_map(|i| i.to_le_bytes()).collect();
    send(socket, &written);
    assert_eq!(recv(socket), b"k", "the exporter's Grid after the put");
    socket.write_all(b"q").unwrap();
    drop(remote);
    drop(local);
    exported.peer.assert_passes();
}

#[test]
fn moves_over_tcp() {
    if !over("moves_over_tcp", "tcp") {
        moves("moves_over_tcp");
    }
}

#[test]
fn moves_over_shared_memory() {
    if !over("moves_over_shared_memory", SHM) {
        moves("moves_over_shared_memory");
    }
}

/// Shared memory alone cannot report a vanished peer in UCX 1.13: the import says what to
/// add instead of making an endpoint that could hang.
#[test]
fn shared_memory_alone_is_refused_with_advice() {
    if over("shared_memory_alone_is_refused_with_advice", "sm,self") {
        return;
    }
    let Some(engine) = engine_or_skip("shared_memory_alone_is_refused_with_advice") else {
        return;
    };
    let exported = start_exporter(CELL, CELLS);
    match engine.import(&exported.description, &exported.secret) {
        // A UCX that can report a vanished peer over shared memory (newer than 1.13).
        Ok(remote) => drop(remote),
        Err(err) => {
            assert!(
                matches!(err, MemError::Ucx { status: -6, .. }) && err.to_string().contains("tcp"),
                "{err}"
            );
        }
    }
    exported.peer.socket().write_all(b"q").unwrap();
    exported.peer.assert_passes();
}

/// The exporter is killed with a large get in flight: `wait` returns (the data, or
/// `PeerLost`/`TransferTimedOut`) within its timeout; the next transfer fails; the local
/// cells not named are untouched.
fn peer_killed(test: &str) {
    let Some(engine) = engine_or_skip(test) else {
        return;
    };
    const BIG: usize = 256 << 10;
    let mut exported = start_exporter(BIG, 64);
    let remote = engine
        .import(&exported.description, &exported.secret)
        .unwrap();
    let here = grid(BIG, 72);
    paint(&here, IMPORTER_SALT);
    let local = engine.register(&here).unwrap();
    let table: Vec<u32> = (0..64).collect();
    let cells: Vec<Cell<'_>> = (0..64).map(|_| here.take().unwrap()).collect();
    let transfer = remote.get(&local, &table, cells);
    exported.peer.kill();
    let started = Instant::now();
    let timeout = Duration::from_secs(5);
    match transfer.and_then(|t| t.wait(timeout)) {
        Ok(cells) => drop(cells), // it finished before the kill landed
        Err(err) => assert!(
            matches!(
                err,
                MemError::PeerLost { .. } | MemError::TransferTimedOut { .. }
            ),
            "{err}"
        ),
    }
    assert!(started.elapsed() < timeout + Duration::from_secs(5));
    // Every later transfer fails (or, over a transport that only notices on use, times
    // out), within its timeout.
    let _ = exported.peer.finish();
    let started = Instant::now();
    let mut failed = false;
    for _ in 0..3 {
        let cells = vec![here.take().unwrap()];
        match remote
            .get(&local, &[0], cells)
            .and_then(|t| t.wait(timeout))
        {
            Ok(_) => {}
            Err(err) => {
                assert!(
                    matches!(err.kind(), ErrorKind::Disconnected | ErrorKind::TimedOut),
                    "{err}"
                );
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "transfers from a dead peer kept succeeding");
    assert!(started.elapsed() < 3 * timeout + Duration::from_secs(5));
    // The 8 cells never named kept their pattern.
    let mut all: Vec<Cell<'_>> = std::iter::from_fn(|| here.take()).collect();
    let mut spared = 0;
    for c in &mut all {
        let index = c.index();
        if holds(c, IMPORTER_SALT, index) {
            spared += 1;
        }
    }
    assert!(spared >= 8, "only {spared} cells kept their pattern");
    drop(all);
    drop(remote);
    drop(local);
}

#[test]
fn peer_killed_mid_transfer_over_tcp() {
    if !over("peer_killed_mid_transfer_over_tcp", "tcp") {
        peer_killed("peer_killed_mid_transfer_over_tcp");
    }
}

#[test]
fn peer_killed_mid_transfer_over_shared_memory() {
    if !over("peer_killed_mid_transfer_over_shared_memory", SHM) {
        peer_killed("peer_killed_mid_transfer_over_shared_memory");
    }
}

/// Whether process `pid` is stopped (`T` in `/proc/PID/stat`).
fn stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses.
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('T'))
}

/// Sends `signal` to the exporter.
fn signal(peer: &Peer, signal: i32) {
    // SAFETY: kill has no memory effects; the pid is our own child's, not yet reaped.
    assert_eq!(unsafe { libc::kill(peer.pid() as i32, signal) }, 0, "kill");
}

/// An exporter that stops serving (stopped with `SIGSTOP`: alive, its connection open, its
/// worker never making progress): over TCP the reads it would answer never complete, so
/// `wait` returns `TransferTimedOut` at its timeout, with nothing written, the cells home and
/// the endpoint closed; once the exporter runs again its Grid is unchanged.
#[test]
fn a_peer_that_stops_serving_times_out() {
    const TEST: &str = "a_peer_that_stops_serving_times_out";
    if over(TEST, "tcp") {
        return;
    }
    let Some(engine) = engine_or_skip(TEST) else {
        return;
    };
    let exported = start_exporter(CELL, CELLS);
    let remote = engine
        .import(&exported.description, &exported.secret)
        .unwrap();
    let here = grid(CELL, CELLS);
    paint(&here, IMPORTER_SALT);
    let local = engine.register(&here).unwrap();
    // A first batch completes: the connection works.
    let cells = vec![here.take().unwrap()];
    drop(remote.get(&local, &[5], cells).unwrap().wait(WAIT).unwrap());
    paint(&here, IMPORTER_SALT);

    signal(&exported.peer, libc::SIGSTOP);
    let started = Instant::now();
    while !stopped(exported.peer.pid()) {
        assert!(started.elapsed() < WAIT, "the exporter did not stop");
        std::thread::yield_now();
    }
    let timeout = Duration::from_millis(1500);
    let cells: Vec<Cell<'_>> = (0..4).map(|_| here.take().unwrap()).collect();
    let err = remote
        .get(&local, &[1, 2, 3, 4], cells)
        .unwrap()
        .wait(timeout)
        .unwrap_err();
    let MemError::TransferTimedOut {
        pending,
        cells,
        waited_ms,
    } = err
    else {
        panic!("not TransferTimedOut: {err}");
    };
    assert!(pending >= 1 && cells == 4, "{pending} pending of {cells}");
    assert!(waited_ms >= timeout.as_millis() as u64, "{waited_ms} ms");
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    // The cells came home, nothing arrived in them or anywhere else.
    assert_eq!(here.free(), CELLS);
    assert!(untouched(&here, IMPORTER_SALT));
    // The abort closed the endpoint: the next batch is refused before anything is issued.
    let err = remote
        .get(&local, &[0], vec![here.take().unwrap()])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    assert_eq!(here.free(), CELLS);

    signal(&exported.peer, libc::SIGCONT);
    let mut socket = exported.peer.socket();
    socket.write_all(b"c").unwrap();
    send(socket, &[]);
    assert_eq!(recv(socket), b"k", "the exporter's Grid changed");
    socket.write_all(b"q").unwrap();
    drop((remote, local));
    exported.peer.assert_passes();
}

/// Each bad input is its error, nothing is issued, and the cells go back to their Grid.
#[test]
fn bad_inputs_move_nothing() {
    if over("bad_inputs_move_nothing", "tcp") {
        return;
    }
    let Some(engine) = engine_or_skip("bad_inputs_move_nothing") else {
        return;
    };
    let exported = start_exporter(CELL, CELLS);
    let remote = engine
        .import(&exported.description, &exported.secret)
        .unwrap();
    let here = grid(CELL, CELLS);
    paint(&here, IMPORTER_SALT);
    let local = engine.register(&here).unwrap();

    // A stale and a foreign CellId are refused by the Grid before any transfer.
    let id = here.take().unwrap().into_id();
    let cell = here.claim(id).unwrap();
    assert!(matches!(here.claim(id), Err(MemError::StaleCell { .. })));
    let other = grid(CELL, 4);
    let foreign = other.take().unwrap().into_id();
    assert!(matches!(
        here.claim(foreign),
        Err(MemError::ForeignCell { .. })
    ));

    // A remote index past the end.
    let err = remote.get(&local, &[CELLS as u32], vec![cell]).unwrap_err();
    assert_eq!(
        err,
        MemError::RemoteCellOutOfRange {
            index: CELLS as u32,
            cells: CELLS
        }
    );
    // A cell of another Grid.
    let err = remote
        .get(&local, &[0], vec![other.take().unwrap()])
        .unwrap_err();
    assert!(matches!(err, MemError::ForeignCell { .. }), "{err}");
    // Lengths that differ.
    let two = vec![here.take().unwrap(), here.take().unwrap()];
    let err = remote.put(&local, two, &[1]).unwrap_err();
    assert_eq!(
        err,
        MemError::TransferMismatch {
            cells: 2,
            indices: 1
        }
    );
    // Cell sizes that differ.
    let small = grid(CELL / 2, 4);
    let small_local = engine.register(&small).unwrap();
    let err = remote
        .get(&small_local, &[0], vec![small.take().unwrap()])
        .unwrap_err();
    assert_eq!(
        err,
        MemError::CellSizeMismatch {
            local: CELL / 2,
            remote: CELL
        }
    );
    // Every cell went home; nothing moved on either side.
    assert_eq!(here.free(), CELLS);
    assert_eq!(other.free(), 3);
    assert!(untouched(&here, IMPORTER_SALT));
    let mut socket = exported.peer.socket();
    socket.write_all(b"c").unwrap();
    send(socket, &[]);
    assert_eq!(recv(socket), b"k", "the exporter's Grid changed");
    socket.write_all(b"q").unwrap();
    drop((remote, small_local, local));
    exported.peer.assert_passes();
}

/// A description altered in any byte, cut, extended, or under another secret; a remote
/// key spliced in from another Grid's export; garbage keys re-tagged with the right secret:
/// each `RemoteRefused`, and this process goes on.
#[test]
fn descriptions_are_authenticated_and_checked() {
    let Some(engine) = engine_or_skip("descriptions_are_authenticated_and_checked") else {
        return;
    };
    let secret = Secret::random().unwrap();
    let (a, b) = (grid(CELL, 8), grid(CELL, 16));
    let (la, lb) = (engine.register(&a).unwrap(), engine.register(&b).unwrap());
    let (da, db) = (la.export(&secret).unwrap(), lb.export(&secret).unwrap());
    let refused = |bytes: &[u8], secret: &Secret| match engine.import(bytes, secret) {
        Err(MemError::RemoteRefused { reason, .. }) => reason,
        other => panic!("not refused: {other:?}"),
    };
    assert!(refused(&da, &Secret::random().unwrap()).contains("tag"));
    for i in 0..da.len() {
        let mut altered = da.clone();
        altered[i] ^= 0x20;
        assert!(refused(&altered, &secret).contains("tag"), "byte {i}");
    }
    assert!(!refused(&da[..da.len() - 3], &secret).is_empty());
    let mut longer = da.clone();
    longer.push(0);
    assert!(refused(&longer, &secret).contains("tag"));
    assert!(refused(&[], &secret).contains("length"));
    // B's Block (base, size) and cells in A's description, A's key kept: a key that is not
    // for the Block the description names. (Over TCP and shared memory the packed keys of
    // all Blocks are byte-identical, empty per domain: the binding is the tag.)
    let mut spliced = da.clone();
    spliced[32..48].copy_from_slice(&db[32..48]);
    spliced[64..68].copy_from_slice(&db[64..68]);
    assert!(refused(&spliced, &secret).contains("tag"));
    let ka = u32::from_le_bytes(da[72..76].try_into().unwrap()) as usize;
    // A buggy peer that holds the secret: garbage keys with a good tag.
    let retag = |mut body: Vec<u8>, key: &[u8]| {
        body.truncate(body.len() - 8 - ka);
        body[72..76].copy_from_slice(&(key.len() as u32).to_le_bytes());
        body.extend_from_slice(key);
        // The tag is SipHash-2-4 under the secret: the only way to make one is an export.
        unimem_retag(&body, &secret)
    };
    let mut garbage: Vec<Vec<u8>> = vec![vec![0xff; 64], vec![0x5a; 9]];
    for domain in [2u8, 3] {
        let mut key = vec![1 << domain, 0, 0, 0, 0, 0, 0, 0, 0, 40];
        key.extend_from_slice(&[0xa5; 40]);
        garbage.push(key);
    }
    let mut device = da[da.len() - 8 - ka..da.len() - 8].to_vec();
    device[8] = 1;
    garbage.push(device);
    for key in garbage {
        let reason = refused(&retag(da.clone(), &key), &secret);
        assert!(reason.contains("remote key"), "{reason}");
    }
    // The real one still imports, and a Grid pulls its own cells through it.
    let remote = engine.import(&da, &secret).unwrap();
    assert_eq!(remote.cells(), 8);
    drop(remote);
    drop((la, lb));
}

/// The tag of `body` under `secret`, appended: what an exporter holding the secret makes.
fn unimem_retag(body: &[u8], secret: &Secret) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&siphash24(&secret.to_bytes(), body).to_le_bytes());
    out
}

/// SipHash-2-4 (a second implementation, for the test's forgeries).
fn siphash24(key: &[u8; 16], message: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap());
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap());
    let mut v = [
        k0 ^ 0x736f6d6570736575,
        k1 ^ 0x646f72616e646f6d,
        k0 ^ 0x6c7967656e657261,
        k1 ^ 0x7465646279746573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut padded = message.to_vec();
    padded.resize(message.len() / 8 * 8 + 8, 0);
    *padded.last_mut().unwrap() = message.len() as u8;
    for word in padded.chunks(8) {
        let m = u64::from_le_bytes(word.try_into().unwrap());
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// One process, its own peer: a leaked Transfer does not outlive the registration's
/// protection (the LocalGrid's drop quiesces), and a dropped unfinished one gives its cells
/// back.
#[test]
fn leaked_and_dropped_transfers_are_safe() {
    let Some(engine) = engine_or_skip("leaked_and_dropped_transfers_are_safe") else {
        return;
    };
    let secret = Secret::random().unwrap();
    let there = grid(CELL, 8);
    paint(&there, EXPORTER_SALT);
    let exported = engine.register(&there).unwrap();
    let remote = engine
        .import(&exported.export(&secret).unwrap(), &secret)
        .unwrap();
    {
        let here = grid(CELL, 8);
        let local = engine.register(&here).unwrap();
        let cells: Vec<Cell<'_>> = (0..4).map(|_| here.take().unwrap()).collect();
        let transfer = remote.get(&local, &[0, 1, 2, 3], cells).unwrap();
        // Unfinished or not: the cells come back once UCX has let go of them (an unfinished
        // one closes the endpoint).
        drop(transfer);
        assert_eq!(here.free(), 8);
        let remote = engine
            .import(&exported.export(&secret).unwrap(), &secret)
            .unwrap();
        let cells: Vec<Cell<'_>> = (0..4).map(|_| here.take().unwrap()).collect();
        let transfer = remote.get(&local, &[4, 5, 6, 7], cells).unwrap();
        std::mem::forget(transfer);
        assert_eq!(here.free(), 4); // leaked cells stay taken
        drop(local); // quiesces before unmapping; then `here` may drop
        drop(remote);
    }
    drop(remote);
    drop(exported);
}

#[cfg(feature = "fault-injection")]
#[test]
fn ucx_failures_are_errors() {
    use unimem::fault;
    if !is_child("ucx_failures_are_errors") {
        common::assert_child_passes("ucx_failures_are_errors");
        return;
    }
    let Some(engine) = engine_or_skip("ucx_failures_are_errors") else {
        return;
    };
    let secret = Secret::random().unwrap();
    let there = grid(CELL, 8);
    fault::fail("ucp_mem_map", 1, -3);
    let err = engine.register(&there).unwrap_err();
    assert!(
        matches!(
            err,
            MemError::Ucx {
                call: "ucp_mem_map",
                status: -3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Os);
    let exported = engine.register(&there).unwrap();
    let description = exported.export(&secret).unwrap();
    fault::fail("ucp_ep_create", 1, -5);
    let err = engine.import(&description, &secret).unwrap_err();
    assert!(
        matches!(
            err,
            MemError::Ucx {
                call: "ucp_ep_create",
                ..
            }
        ),
        "{err}"
    );
    let remote = engine.import(&description, &secret).unwrap();
    let here = grid(CELL, 8);
    let local = engine.register(&here).unwrap();
    // The third get of a batch of five fails at once: the batch is aborted, the cells come
    // home.
    fault::fail("ucp_get_nbx", 3, -3);
    let cells: Vec<Cell<'_>> = (0..5).map(|_| here.take().unwrap()).collect();
    let err = remote.get(&local, &[0, 1, 2, 3, 4], cells).unwrap_err();
    assert!(
        matches!(
            err,
            MemError::Ucx {
                call: "ucp_get_nbx",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(here.free(), 8);
    // The endpoint was closed by the abort: later transfers say so.
    let err = remote
        .get(&local, &[0], vec![here.take().unwrap()])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disconnected, "{err}");
    fault::reset();
    drop((remote, local, exported));
}

/// Prints again the lines in which the GPU test's importer says what it moved (a child's
/// output is otherwise seen only when it fails).
#[cfg(feature = "cuda")]
fn forward_gpu_lines(out: &std::process::Output) {
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        if line.contains("read by the GPU") {
            let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// The GPU host (features `cuda` and `ucx`): an exporter's GPU writes cells of a
/// CUDA-registered Grid; an importer pulls the cells over UCX into its own CUDA-registered
/// Grid, and its GPU reads them. Once per transport (shared memory, then TCP): the harness
/// starts the exporter with `UCX_TLS` set at `exec`, the exporter the importer with the same
/// (both sides must register host memory with the same memory domains).
#[cfg(feature = "cuda")]
#[test]
fn gpu_cells_move_between_processes_and_the_gpu_reads_them() {
    use unimem::cuda::Driver;
    const TEST: &str = "gpu_cells_move_between_processes_and_the_gpu_reads_them";
    const IMPORTER: &str = "UNIMEM_GPU_IMPORTER";
    if !is_child(TEST) {
        if let Err(err) = Driver::load() {
            return common::skip(TEST, "CUDA", &format!("no CUDA driver: {err}"));
        }
        for tls in [SHM, "tcp"] {
            let out = Peer::spawn(TEST, &[("UCX_TLS", tls.to_owned())]).finish();
            common::assert_passed(TEST, &out);
            forward_gpu_lines(&out);
        }
        return;
    }
    let child = std::env::var_os(IMPORTER).is_some();
    let driver = match Driver::load() {
        Ok(driver) => driver,
        Err(err) => {
            return common::skip(TEST, "CUDA", &format!("no CUDA driver: {err}"));
        }
    };
    let Some(engine) = engine_or_skip(TEST) else {
        return;
    };
    const GPU_CELL: usize = 1 << 20;
    const GPU_CELLS: usize = 16;
    const GPU_VALUE: u32 = 0xC0DE_CAFE;
    if !child {
        // The exporter: CPU fills even cells, the GPU fills odd ones.
        let there = grid(GPU_CELL, GPU_CELLS);
        let device_ptr = there
            .tape()
            .block()
            .register_cuda(&driver, 0)
            .unwrap()
            .keep();
        let context = there.tape().block().cuda_context().unwrap();
        paint(&there, EXPORTER_SALT);
        for index in (1..GPU_CELLS as u32).step_by(2) {
            let at = device_ptr + there.cell_offset(index).unwrap() as u64;
            // SAFETY: the cell is free (no view of it is alive) and inside the registered
            // Block.
            unsafe { context.memset_d32(at, GPU_VALUE, GPU_CELL / 4) }.unwrap();
        }
        let local = engine.register(&there).unwrap();
        let secret = Secret::random().unwrap();
        let tls = std::env::var("UCX_TLS").unwrap_or_default();
        let peer = Peer::spawn(TEST, &[("UCX_TLS", tls), (IMPORTER, "1".to_owned())]);
        send(peer.socket(), &secret.to_bytes());
        send(peer.socket(), &local.export(&secret).unwrap());
        // Serve until the importer is done (its ack, or the end of the socket).
        peer.socket().set_nonblocking(true).unwrap();
        loop {
            for _ in 0..256 {
                engine.progress();
            }
            let mut byte = [0u8; 1];
            match peer.socket().read(&mut byte) {
                Ok(_) => break,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        let out = peer.finish();
        common::assert_passed(TEST, &out);
        forward_gpu_lines(&out);
        drop(local);
        return;
    }
    // The importer.
    let socket = parent_socket();
    let secret = Secret::from_bytes(recv(&socket).try_into().unwrap());
    let description = recv(&socket);
    let remote = engine.import(&description, &secret).unwrap();
    let here = grid(GPU_CELL, GPU_CELLS);
    let device_ptr = here
        .tape()
        .block()
        .register_cuda(&driver, 0)
        .unwrap()
        .keep();
    let context = here.tape().block().cuda_context().unwrap();
    let local = engine.register(&here).unwrap();
    let table: Vec<u32> = (0..GPU_CELLS as u32).rev().collect();
    let cells: Vec<Cell<'_>> = (0..GPU_CELLS).map(|_| here.take().unwrap()).collect();
    let cells = remote
        .get(&local, &table, cells)
        .unwrap()
        .wait(WAIT)
        .unwrap();
    let on_gpu = context.alloc(GPU_CELL).unwrap();
    let mut back = vec![0u64; GPU_CELL / 8];
    for (cell, &index) in cells.iter().zip(&table) {
        let at = device_ptr + cell.offset() as u64;
        // SAFETY: the cell is owned here and only read; `on_gpu` and `back` are ours.
        unsafe {
            context.copy(on_gpu.device_ptr(), at, GPU_CELL).unwrap();
            context
                .copy_to_host(back.as_mut_ptr().cast(), on_gpu.device_ptr(), GPU_CELL)
                .unwrap();
        }
        let ok = if index % 2 == 1 {
            let word = u64::from(GPU_VALUE) << 32 | u64::from(GPU_VALUE);
            back.iter().all(|&w| w == word)
        } else {
            back.iter()
                .enumerate()
                .all(|(i, &w)| w == word(EXPORTER_SALT, index, i))
        };
        assert!(ok, "cell {index} as the importer's GPU reads it");
    }
    let line = format!(
        "test {TEST}: {} cells of {} KiB moved over UCX_TLS={} and read by the GPU\n",
        cells.len(),
        GPU_CELL >> 10,
        std::env::var("UCX_TLS").unwrap_or_default()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    drop(cells);
    drop((remote, local));
    common::ack(&socket);
}

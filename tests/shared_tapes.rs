//! Tapes, Grids and Layouts over shared Blocks, each between two real processes (this test
//! binary re-executed, holding a socket to the parent as its standard input), with offsets
//! as the currency: a Tape and a Grid hosted by a writable import, a read-only Tape over a
//! frozen Block and over one that is not, and a worker's Layout whose weights are a server's
//! frozen weights.

#![cfg(all(target_os = "linux", not(miri)))]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use common::{Peer, ack, fill, holds, is_child, parent_socket, wait_ack};
use unimem::{Access, Block, Grid, Layout, MemError, Pin, Share, Tape, page_size};

/// Sends numbers (offsets, lengths) as little-endian `u64`s, after any share: bytes that
/// follow a descriptor are never merged into its message.
fn send_numbers(socket: &UnixStream, numbers: &[usize]) {
    let bytes: Vec<u8> = numbers
        .iter()
        .flat_map(|&n| (n as u64).to_le_bytes())
        .collect();
    (&*socket).write_all(&bytes).unwrap();
}

fn recv_numbers(socket: &UnixStream, n: usize) -> Vec<usize> {
    let mut bytes = vec![0u8; 8 * n];
    (&*socket).read_exact(&mut bytes).unwrap();
    bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
        .collect()
}

fn block(size: usize) -> Block {
    Block::builder(size).pin(Pin::BestEffort).open().unwrap()
}

// ---------------------------------------------------------------------------------------
// Writable imports host a Tape and a Grid

#[test]
fn a_writable_import_hosts_a_tape() {
    if is_child("a_writable_import_hosts_a_tape") {
        let socket = parent_socket();
        let import = common::import(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        let tape = Tape::over(import);
        assert_eq!(tape.used(), 0, "the head lives in this process only");
        // Three tensors, the second aligned to a page: their offsets are what the owner
        // uses, its base address being another.
        let a = tape.take_slice::<u64>(100).unwrap();
        let b = tape.take(8 * 64, page_size()).unwrap();
        let c = tape.take_slice::<u64>(7).unwrap();
        fill(a, 1);
        // SAFETY: `b` is a fresh take of 64 aligned u64s, written only here.
        let b = unsafe { std::slice::from_raw_parts_mut(b.cast::<u64>(), 64) };
        fill(b, 2);
        fill(c, 3);
        let offsets = [
            tape.offset_of(a.as_ptr()).unwrap(),
            tape.offset_of(b.as_ptr()).unwrap(),
            tape.offset_of(c.as_ptr()).unwrap(),
        ];
        assert_eq!(offsets[1] % page_size(), 0);
        send_numbers(&socket, &offsets);
        // The owner overwrote `c`: this process sees it through its own take.
        wait_ack(&socket);
        assert!(holds(c, 4));
        ack(&socket);
        return;
    }
    let mut owner = block(16 * page_size());
    let mut peer = Peer::spawn("a_writable_import_hosts_a_tape", &[]);
    peer.send_share(&owner, Access::ReadWrite);
    let offsets = recv_numbers(peer.socket(), 3);
    let words =
        |owner: &Block, at: usize, n: usize| owner.as_slice::<u64>()[at / 8..][..n].to_vec();
    assert!(holds(&words(&owner, offsets[0], 100), 1));
    assert!(holds(&words(&owner, offsets[1], 64), 2));
    assert!(holds(&words(&owner, offsets[2], 7), 3));
    fill(&mut owner.as_slice_mut::<u64>()[offsets[2] / 8..][..7], 4);
    ack(peer.socket());
    peer.wait_ack();
    peer.assert_passes();
}

#[test]
fn a_writable_import_hosts_a_grid() {
    if is_child("a_writable_import_hosts_a_grid") {
        let socket = parent_socket();
        let import = common::import(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        let grid = Grid::over(Tape::over(import), 1000, 8).unwrap();
        let mut first = grid.try_take().unwrap();
        let mut second = grid.try_take().unwrap();
        fill(first.as_slice_mut(), 5);
        fill(second.as_slice_mut(), 6);
        let words = second.size() / 8;
        send_numbers(
            &socket,
            &[
                first.offset(),
                second.offset(),
                second.index() as usize,
                words,
            ],
        );
        // The owner wrote into the first cell, by offset.
        wait_ack(&socket);
        assert!(holds(first.as_slice(), 7));
        drop((first, second));
        assert_eq!(grid.in_use(), 0);
        ack(&socket);
        return;
    }
    let mut owner = block(16 * page_size());
    let mut peer = Peer::spawn("a_writable_import_hosts_a_grid", &[]);
    peer.send_share(&owner, Access::ReadWrite);
    let [first, second, index, words] = recv_numbers(peer.socket(), 4)[..] else {
        unreachable!()
    };
    assert_eq!(words * 8, 1024, "cells are rounded to 64 bytes");
    assert_eq!(
        second - first,
        index * words * 8,
        "cells are laid out by index"
    );
    assert!(holds(&owner.as_slice::<u64>()[first / 8..][..words], 5));
    assert!(holds(&owner.as_slice::<u64>()[second / 8..][..words], 6));
    fill(&mut owner.as_slice_mut::<u64>()[first / 8..][..words], 7);
    ack(peer.socket());
    peer.wait_ack();
    peer.assert_passes();
}

// ---------------------------------------------------------------------------------------
// Read-only Tapes

#[test]
fn a_read_only_tape_over_a_frozen_block_reads_by_offset() {
    if is_child("a_read_only_tape_over_a_frozen_block_reads_by_offset") {
        let socket = parent_socket();
        let import =
            Block::import_read_only(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        let [at, n] = recv_numbers(&socket, 2)[..] else {
            unreachable!()
        };
        assert!(import.is_frozen());
        let mut tape = Tape::over_read_only(import);
        let id = tape.block().id();
        assert!(tape.is_read_only() && tape.is_frozen());
        assert_eq!(
            (tape.used(), tape.peak(), tape.free()),
            (tape.total(), tape.total(), 0)
        );
        assert!(holds(tape.read::<u64>(at, n).unwrap(), 8));
        let refused = MemError::TapeReadOnly { id, frozen: true };
        assert_eq!(tape.take(8, 8), None);
        assert_eq!(tape.try_take_slice::<u64>(1).unwrap_err(), refused);
        assert_eq!(tape.lane(4096).try_take(8, 8).unwrap_err(), refused);
        tape.clear();
        assert_eq!(tape.try_take(8, 8).unwrap_err(), refused);
        // A Grid cannot be carved from it either.
        let err = Grid::over(tape, 64, 2).unwrap_err();
        assert_eq!(err, refused);
        ack(&socket);
        return;
    }
    let mut tape = Tape::over(block(8 * page_size()));
    let _pad = tape.take(100, 8).unwrap();
    let xs = tape.take_slice::<u64>(300).unwrap();
    fill(xs, 8);
    let at = tape.offset_of(xs.as_ptr()).unwrap();
    tape.freeze().unwrap();
    let mut peer = Peer::spawn("a_read_only_tape_over_a_frozen_block_reads_by_offset", &[]);
    peer.send_share(tape.block(), Access::ReadOnly);
    send_numbers(peer.socket(), &[at, 300]);
    peer.wait_ack();
    peer.assert_passes();
    assert!(holds(tape.read::<u64>(at, 300).unwrap(), 8));
}

#[test]
fn a_read_only_tape_that_is_not_frozen_refuses_reads() {
    if is_child("a_read_only_tape_that_is_not_frozen_refuses_reads") {
        let socket = parent_socket();
        let import =
            Block::import_read_only(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        assert!(!import.is_frozen());
        // Not frozen: the ReadOnlyBlock lends no view, but copies out before wrapping.
        assert!(matches!(
            import.read::<u64>(0, 16),
            Err(MemError::NotFrozen { .. })
        ));
        let mut words = [0u64; 16];
        import.read_into(0, &mut words).unwrap();
        assert!(holds(&words, 9));
        let mut tape = Tape::over_read_only(import);
        let id = tape.block().id();
        assert!(tape.is_read_only() && !tape.is_frozen());
        assert_eq!(
            tape.read::<u64>(0, 16).unwrap_err(),
            MemError::TapeNotFrozen {
                id,
                read_only: true
            }
        );
        assert_eq!(
            tape.try_take(8, 8).unwrap_err(),
            MemError::TapeReadOnly { id, frozen: false }
        );
        // The owner still maps it writable: this process cannot freeze it...
        assert!(matches!(tape.freeze(), Err(MemError::FreezeBusy { .. })));
        ack(&socket);
        // ...until the owner has frozen it; then freezing here only notices.
        wait_ack(&socket);
        tape.freeze().unwrap();
        assert!(tape.is_frozen());
        assert!(holds(tape.read::<u64>(0, 16).unwrap(), 9));
        ack(&socket);
        return;
    }
    let mut owner = block(4 * page_size());
    fill(owner.as_slice_mut(), 9);
    let mut peer = Peer::spawn("a_read_only_tape_that_is_not_frozen_refuses_reads", &[]);
    peer.send_share(&owner, Access::ReadOnly);
    peer.wait_ack();
    let frozen = owner.freeze().unwrap();
    ack(peer.socket());
    peer.wait_ack();
    peer.assert_passes();
    assert!(holds(frozen.as_slice().unwrap(), 9));
}

// ---------------------------------------------------------------------------------------
// A worker's Layout over a server's frozen weights

/// The weight tensors of the test model: `(rows, columns)` of `f32`.
const TENSORS: [(usize, usize); 3] = [(64, 64), (64, 256), (256, 64)];

fn weight(tensor: usize, i: usize) -> f32 {
    ((tensor * 7919 + i) % 1000) as f32 / 1000.0
}

#[test]
fn a_worker_layout_reads_the_servers_frozen_weights() {
    if is_child("a_worker_layout_reads_the_servers_frozen_weights") {
        let socket = parent_socket();
        let weights =
            Block::import_read_only(Share::recv(&socket).unwrap(), Pin::BestEffort).unwrap();
        let offsets = recv_numbers(&socket, TENSORS.len());
        let mut layout = Layout::builder(0, 64 << 10, 64 << 10)
            .weights_shared(weights)
            .name("worker")
            .pin(Pin::BestEffort)
            .build()
            .unwrap();
        let w = layout.weights();
        let id = w.block().id();
        assert!(w.is_frozen() && w.block().is_frozen());
        assert_eq!(w.block().access(), Access::ReadOnly);
        assert_eq!(w.take(64, 64), None);
        assert_eq!(
            w.try_take(64, 64).unwrap_err(),
            MemError::TapeReadOnly { id, frozen: true }
        );
        let stat = layout.stat();
        assert_eq!(stat.weights_used, stat.weights_total);
        assert_eq!(stat.weights_total, w.total());

        // Decode steps: every step reads every tensor by offset and takes scratch.
        let mut checksum = 0.0f64;
        for step in 0..4 {
            for (t, (&at, &(rows, cols))) in offsets.iter().zip(&TENSORS).enumerate() {
                let tensor = layout.weights().read::<f32>(at, rows * cols).unwrap();
                assert!(tensor.iter().enumerate().all(|(i, &x)| x == weight(t, i)));
                // The device's view: base + offset in this process.
                let address = layout.weights().block().address().wrapping_add(at);
                assert_eq!(address.cast_const(), tensor.as_ptr().cast::<u8>());
                let x = layout.scratch().take_slice::<f32>(rows).unwrap();
                for (r, v) in x.iter_mut().enumerate() {
                    *v = tensor[r * cols..][..cols].iter().sum();
                }
                checksum += x.iter().map(|&v| v as f64).sum::<f64>();
            }
            let kv = layout.history().take_slice::<u16>(64).unwrap();
            kv.fill(step);
            layout.clear_pass();
        }
        assert!(checksum > 0.0);
        layout.clear_talk();
        let stat = layout.stat();
        assert_eq!((stat.scratch_used, stat.history_used), (0, 0));
        assert_eq!(
            stat.weights_used, stat.weights_total,
            "clears never touch weights"
        );
        assert!(layout.weights().read::<f32>(offsets[0], 1).is_ok());
        send_numbers(&socket, &[checksum.to_bits() as usize]);
        wait_ack(&socket);
        return;
    }
    let size: usize = TENSORS.iter().map(|(r, c)| r * c * 4).sum();
    let mut server = Layout::builder(size, 4096, 4096)
        .name("server")
        .pin(Pin::BestEffort)
        .build()
        .unwrap();
    let mut offsets = Vec::new();
    for (t, &(rows, cols)) in TENSORS.iter().enumerate() {
        let tensor = server.weights().take_slice::<f32>(rows * cols).unwrap();
        for (i, x) in tensor.iter_mut().enumerate() {
            *x = weight(t, i);
        }
        offsets.push(server.weights().offset_of(tensor.as_ptr()).unwrap());
    }
    server.freeze_weights().unwrap();
    assert_eq!(server.stat().weights_used, server.stat().weights_total);
    let peer = Peer::spawn("a_worker_layout_reads_the_servers_frozen_weights", &[]);
    peer.send_share(server.weights().block(), Access::ReadOnly);
    send_numbers(peer.socket(), &offsets);
    let checksum = f64::from_bits(recv_numbers(peer.socket(), 1)[0] as u64);
    // The same sums, here.
    let mut expected = 0.0f64;
    for _ in 0..4 {
        for (t, &(rows, cols)) in TENSORS.iter().enumerate() {
            let tensor = server
                .weights()
                .read::<f32>(offsets[t], rows * cols)
                .unwrap();
            // Summed in the worker's order, so the floating-point result is the same.
            expected += (0..rows)
                .map(|r| tensor[r * cols..][..cols].iter().sum::<f32>() as f64)
                .sum::<f64>();
        }
    }
    assert_eq!(checksum, expected);
    ack(peer.socket());
    peer.assert_passes();
}

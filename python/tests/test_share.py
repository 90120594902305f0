"""Sharing between processes: send / recv over a Unix socket, read-only and read-write
imports, frozen views, and peers that send garbage or leave."""

import gc
import socket

import numpy as np
import pytest

import unimem
from conftest import run_peer


def test_a_worker_process_reads_frozen_weights_without_a_copy():
    weights = unimem.Block(1 << 20, pin="best_effort", name="weights")
    w = np.frombuffer(weights, dtype=np.float32)
    w[:] = np.arange(w.size, dtype=np.float32)
    expected = float(w.sum(dtype=np.float64))
    del w
    gc.collect()
    weights.freeze()
    here, there = socket.socketpair()
    share = weights.share(read_only=True)
    assert share.read_only and share.nbytes == weights.nbytes
    share.send(here)
    done = run_peer(
        """
        import numpy as np
        share = unimem.Share.recv(peer)
        block = unimem.Block.import_read_only(share, pin="best_effort")
        assert block.is_frozen and block.is_read_only, block
        x = np.from_dlpack(block).view(np.float32)
        assert not x.flags.writeable
        print(float(x.sum(dtype=np.float64)), block.name)
        """,
        there,
    )
    assert done.returncode == 0, done.stderr
    total, name = done.stdout.split()
    assert float(total) == expected and name == "weights"


def test_unfrozen_import_gives_no_view():
    owner = unimem.Block(4096, pin="best_effort")
    share = owner.share(read_only=True)
    del owner  # the share keeps the memory; this process maps it no other way now
    gc.collect()
    block = unimem.Block.import_read_only(share, pin="best_effort")
    assert block.is_read_only and not block.is_frozen
    with pytest.raises(BufferError, match="not frozen"):
        memoryview(block)
    with pytest.raises(BufferError, match="not frozen"):
        np.from_dlpack(block)
    block.freeze()  # no process maps it writable any more
    assert np.from_dlpack(block).sum() == 0
    with pytest.raises(ValueError, match="used"):
        unimem.Block.import_read_only(share)


def test_a_read_write_import_sees_and_writes_the_same_pages():
    here, there = socket.socketpair()
    owner = unimem.Block(8192, pin="best_effort")
    np.frombuffer(owner, dtype=np.uint8)[0] = 1
    owner.share(read_only=False).send(here)
    done = run_peer(
        """
        import numpy as np
        block = unimem.Block.import_(unimem.Share.recv(peer), pin="best_effort")
        x = np.frombuffer(block, dtype=np.uint8)
        assert x[0] == 1
        x[1] = 2
        peer.send(b"k")
        """,
        there,
    )
    assert done.returncode == 0, done.stderr
    assert here.recv(1) == b"k"
    assert np.frombuffer(owner, dtype=np.uint8)[1] == 2


def test_a_second_mapping_that_would_alias_is_busy(block):
    share = block.share(read_only=False)
    with pytest.raises(unimem.BusyError) as e:
        unimem.Block.import_(share, pin="best_effort")
    assert e.value.variant == "AlreadyMapped"
    with pytest.raises(unimem.AccessDeniedError):
        block.share(read_only=True)
        block.share(read_only=False)  # sealed against writers for good


def test_garbage_and_hang_ups_are_refused_peers_and_disconnects():
    here, there = socket.socketpair()
    here.sendall(b"x" * 24)
    with pytest.raises(unimem.RefusedPeerError) as e:
        unimem.Share.recv(there)
    assert e.value.kind == "refused peer"
    here.close()
    with pytest.raises(unimem.DisconnectedError):
        unimem.Share.recv(there)

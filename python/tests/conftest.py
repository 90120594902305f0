"""Shared helpers for the unimem Python tests (run by `cargo test`, see tests/python.rs)."""

import os
import socket
import subprocess
import sys
import textwrap

import pytest

import unimem


@pytest.fixture
def block():
    """A fresh, best-effort pinned Block of 64 KiB."""
    return unimem.Block(64 << 10, pin="best_effort", name="pytest")


def run_peer(code: str, sock: socket.socket, *args: str) -> subprocess.CompletedProcess:
    """Runs `code` in a new Python process holding `sock` as file descriptor 3 (the
    variable `peer` in the code), waits for it (reaped), and returns its result."""
    child = sock.fileno()
    script = textwrap.dedent(
        """
        import os, socket, sys
        import unimem
        peer = socket.socket(fileno=int(os.environ["UNIMEM_PEER_FD"]))
        """
    ) + textwrap.dedent(code)
    env = dict(os.environ, UNIMEM_PEER_FD=str(child))
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        pass_fds=[child],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

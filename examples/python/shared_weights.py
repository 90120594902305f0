"""Shared weights: one frozen, pinned copy of a model's weights, read by N worker processes
through torch.from_dlpack, without a copy.

The server fills a unimem Block with weights, freezes it (no process can change the bytes
any more, so every worker's view of them is sound) and sends each worker a read-only share
over a Unix socket. Each worker maps the same pages, wraps them with torch.from_dlpack (or
NumPy where PyTorch is not installed), runs a matmul (on the GPU from the same pinned pages
when there is one: the Block is registered with CUDA, so the copy runs at pinned speed; on
the CPU otherwise) and reports the memory it added. The server prints it against what a
private copy of the weights would cost each worker.

    python3 examples/python/shared_weights.py [--workers N] [--mib M]

Memory added is the growth of the worker's private memory (Private_Clean + Private_Dirty in
/proc/self/smaps_rollup) from before the import to after its matmul: the weights' pages are
the server's, shared, and count as Shared_Clean in every process that maps them.
"""

import argparse
import gc
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np

import unimem

try:
    import torch
except ImportError:  # the CPU path with NumPy
    torch = None


def private_bytes() -> int:
    """This process's private memory (USS), from /proc/self/smaps_rollup."""
    total = 0
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return total


def worker(fd: int) -> None:
    peer = socket.socket(fileno=fd)
    n = int(peer.recv(64).decode())
    use_gpu = torch is not None and torch.cuda.is_available()
    # Warm up the libraries first, so that only the weights' cost is measured.
    if torch is not None:
        x = torch.ones(8, n)
        if use_gpu:
            (x.cuda() @ torch.zeros(n, n, device="cuda").T).sum().item()
        else:
            (x @ torch.zeros(n, n).T).sum().item()
    else:
        float((np.ones((8, n), dtype=np.float32) @ np.zeros((n, n), dtype=np.float32).T).sum())
    gc.collect()
    before = private_bytes()

    block = unimem.Block.import_read_only(unimem.Share.recv(peer), pin="best_effort")
    assert block.is_frozen, "the server shares frozen weights"
    if torch is not None:
        w = torch.from_dlpack(block).view(torch.float32)[: n * n].view(n, n)
        x = torch.ones(8, n)
        if use_gpu:
            with block.register_cuda(0):
                w_gpu = w.to("cuda", non_blocking=True)  # from the same pinned pages
                y = (x.cuda() @ w_gpu.T).sum().item()
                del w_gpu
        else:
            y = (x @ w.T).sum().item()
    else:
        w = np.from_dlpack(block).view(np.float32)[: n * n].reshape(n, n)
        y = float((np.ones((8, n), dtype=np.float32) @ w.T).sum())
    gc.collect()
    added = private_bytes() - before
    report = {
        "pid": os.getpid(),
        "device": "cuda" if use_gpu else "cpu",
        "library": "torch" if torch is not None else "numpy",
        "sum": y,
        "added": added,
        "pinned": block.is_pinned,
    }
    peer.sendall(json.dumps(report).encode())
    peer.close()


def server(workers: int, mib: int) -> int:
    n = int((mib * (1 << 20) // 4) ** 0.5)
    weights = unimem.Block(n * n * 4, pin="best_effort", name="shared-weights")
    w = np.frombuffer(weights, dtype=np.float32)[: n * n].reshape(n, n)
    w[:] = np.random.default_rng(7).standard_normal((n, n), dtype=np.float32) / n
    expected = float((np.ones((8, n), dtype=np.float32) @ w.T).sum())
    del w
    gc.collect()
    weights.freeze()
    size = weights.nbytes
    print(f"server: {size / (1 << 20):.1f} MiB of weights ({n} x {n} float32), frozen, "
          f"pinned: {weights.is_pinned}; {workers} workers")

    children = []
    try:
        for _ in range(workers):
            here, there = socket.socketpair()
            child = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", str(there.fileno())],
                pass_fds=[there.fileno()],
            )
            there.close()
            here.sendall(str(n).encode().ljust(64))
            time.sleep(0)  # the worker warms up, then waits for the share
            weights.share(read_only=True).send(here)
            children.append((child, here))
        reports = []
        for child, here in children:
            data = b""
            while chunk := here.recv(4096):
                data += chunk
            reports.append(json.loads(data))
    finally:
        for child, here in children:
            here.close()
            try:
                child.wait(timeout=300)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    ok = True
    for r in reports:
        close = abs(r["sum"] - expected) <= 1e-3 * max(1.0, abs(expected))
        ok &= close
        print(f"worker {r['pid']}: {r['library']} matmul on {r['device']}, "
              f"{'matches' if close else 'DIFFERS from'} the server's; added "
              f"{r['added'] / (1 << 20):.2f} MiB ({100 * r['added'] / size:.2f}% of the "
              f"weights) vs {size / (1 << 20):.1f} MiB for a private copy")
    worst = max(r["added"] for r in reports)
    print(f"max added per worker: {worst / (1 << 20):.2f} MiB = "
          f"{100 * worst / size:.2f}% of the weights (target < 5%)")
    print(json.dumps({"weights": size, "workers": reports}))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mib", type=int, default=64, help="size of the weights")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker)
        return 0
    return server(args.workers, args.mib)


if __name__ == "__main__":
    sys.exit(main())

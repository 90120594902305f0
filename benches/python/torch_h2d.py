"""Host-to-device copies through PyTorch: from a unimem Block registered with CUDA, against
torch's own pin_memory tensor and a pageable tensor. Run by .ci/gpu-python on the GPU host.

    python3 benches/python/torch_h2d.py [--mib 1024] [--reps 20]

Each copy is `dst.copy_(src, non_blocking=True)` into a preallocated device tensor, timed
with CUDA events around one copy, after warm-up; the median of `reps` copies is reported
in GB/s (decimal), with the ratios the issue targets: unimem / pin_memory >= 0.99,
unimem / pageable >= 5.
"""

import argparse
import gc
import json
import statistics
import time

import numpy as np
import torch

import unimem


def rate(src: torch.Tensor, dst: torch.Tensor, reps: int) -> float:
    n = src.numel() * src.element_size()
    for _ in range(3):
        dst.copy_(src, non_blocking=True)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src, non_blocking=True)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return n / statistics.median(times) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    size = args.mib << 20
    dst = torch.empty(size, dtype=torch.uint8, device="cuda")
    results = {"bytes": size, "device": torch.cuda.get_device_name(0), "torch": torch.__version__}

    pinned = torch.empty(size, dtype=torch.uint8, pin_memory=True)
    pinned.fill_(1)
    results["torch_pin_memory_gbps"] = rate(pinned, dst, args.reps)
    del pinned

    block = unimem.Block(size, pin="required", name="h2d")
    np.frombuffer(block, dtype=np.uint8)[:] = 1
    gc.collect()
    t0 = time.perf_counter()
    reg = block.register_cuda(0)
    results["register_s"] = time.perf_counter() - t0
    src = torch.from_dlpack(block)
    results["unimem_is_pinned"] = bool(src.is_pinned())
    results["unimem_gbps"] = rate(src, dst, args.reps)
    del src
    reg.release()

    # Frozen (read-only, registered read-only): the shared-weights case.
    gc.collect()
    block.freeze()
    with block.register_cuda(0):
        src = torch.from_dlpack(block)
        results["unimem_frozen_gbps"] = rate(src, dst, args.reps)
        del src
    del block

    pageable = torch.empty(size, dtype=torch.uint8)
    pageable.fill_(1)
    results["pageable_gbps"] = rate(pageable, dst, max(3, args.reps // 4))
    del pageable

    results["unimem_vs_pin_memory"] = results["unimem_gbps"] / results["torch_pin_memory_gbps"]
    results["unimem_vs_pageable"] = results["unimem_gbps"] / results["pageable_gbps"]
    print(
        f"h2d {args.mib} MiB on {results['device']} (torch {results['torch']}): "
        f"unimem {results['unimem_gbps']:.1f} GB/s (frozen {results['unimem_frozen_gbps']:.1f}), "
        f"pin_memory {results['torch_pin_memory_gbps']:.1f}, pageable {results['pageable_gbps']:.1f}; "
        f"unimem/pin_memory {results['unimem_vs_pin_memory']:.3f}x (target >= 0.99), "
        f"unimem/pageable {results['unimem_vs_pageable']:.1f}x (target >= 5); "
        f"is_pinned {results['unimem_is_pinned']}, register {results['register_s']:.3f} s"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()

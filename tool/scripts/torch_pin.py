#!/usr/bin/env python3
"""PyTorch's pinned host memory at the sizes of unimem's scale benchmark (issue 12).

For each size: torch.empty(size, dtype=uint8, pin_memory=True) (timed), then the tensor
deleted and PyTorch's pinned-memory cache emptied (timed: that is when the memory goes
back), and how much memory the allocation took from the system (MemAvailable before and
after: PyTorch's caching host allocator rounds requests up to a power of two). A size
whose power of two would not fit in MemAvailable is skipped, and says so.

Writes one JSON record per size (JSON Lines, appended to --json), the format of
unimem-cuda-bench's records: {"kind": "torch", "size", "alloc_s", "free_s", "taken", ...}.
Needs only torch (and a GPU).
"""

import argparse
import json
import time


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def empty_cache(torch):
    for name in ("_host_emptyCache",):
        fn = getattr(torch._C, name, None)
        if fn is not None:
            fn()
            return name
    fn = getattr(getattr(torch.cuda, "memory", None), "empty_host_cache", None)
    if fn is not None:
        fn()
        return "torch.cuda.memory.empty_host_cache"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,16", help="GiB, comma separated")
    parser.add_argument("--json", help="append JSON records to this file")
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    import torch

    def record(r):
        r["label"] = args.label
        line = json.dumps(r)
        print(line, flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(line + "\n")

    torch.cuda.init()
    warm = torch.empty(1 << 20, dtype=torch.uint8, pin_memory=True)
    del warm
    cleared = empty_cache(torch)
    record({"kind": "torch-machine", "torch": torch.__version__, "cuda": torch.version.cuda,
            "device": torch.cuda.get_device_name(0), "empty_cache": cleared})
    for gib in [float(s) for s in args.sizes.split(",") if s]:
        size = int(gib * (1 << 30))
        rounded = 1 << (size - 1).bit_length()
        before = mem_available()
        if before is not None and rounded > 0.9 * before:
            record({"kind": "torch", "size": size, "rounded": rounded,
                    "skipped": f"PyTorch would round {size} bytes up to {rounded}, more than "
                               f"0.9 x MemAvailable ({before})"})
            continue
        start = time.perf_counter()
        t = torch.empty(size, dtype=torch.uint8, pin_memory=True)
        alloc = time.perf_counter() - start
        after = mem_available()
        pinned = t.is_pinned()
        start = time.perf_counter()
        del t
        empty_cache(torch)
        free = time.perf_counter() - start
        record({"kind": "torch", "size": size, "alloc_s": alloc, "free_s": free,
                "taken": (before - after) if before and after else None,
                "rounded": rounded, "pinned": pinned})
        print(f"torch pin_memory {gib:g} GiB: {alloc:.3f} s, free {free:.3f} s, "
              f"took {((before or 0) - (after or 0)) / (1 << 30):.1f} GiB", flush=True)


if __name__ == "__main__":
    main()

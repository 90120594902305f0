#!/usr/bin/env bash
# The GPU check of the `ucx` feature (specs/remote.md, "GPU"): UCX and the `remote` test
# binary, built here, run on the GPU host (NVIDIA driver; no Rust, no network, no UCX).
#
#   bash tool/ucx-gpu.sh build   # here: .gpu/ucx/ (UCX's libraries + the test binary)
#   bash tool/ucx-gpu.sh run     # there, from the repository root, with `.gpu` carried
#
# Everything lives in .gpu/ucx/, its own folder: .ci/gpu-check's files in .gpu/ are left
# alone, and it leaves this folder alone.
#
# `build` copies libucp, libucs, libuct, libucm, the cma module and libnuma of the
# installed Debian 12 `libucx0` 1.13.1 (or, where it is not installed, of its .deb:
# apt-get download + dpkg -x) into .gpu/ucx/lib/, checks that they need nothing else but
# the C library, and copies the `remote` test binary (release, --all-features, stripped:
# the same build as .ci/gpu-check's, so the two share their artifacts) to .gpu/ucx/bin/.
#
# `run` runs every test of that binary (each under a 100 s limit, in a process group of
# its own) with LD_LIBRARY_PATH and UCX_MODULE_DIR pointing into .gpu/ucx/lib,
# UNIMEM_REQUIRE_UCX=1 and UNIMEM_REQUIRE_CUDA=1: the cells moved over TCP and shared
# memory between two processes, the refusals, and the GPU test (cells of a CUDA-registered
# Grid, written by the GPU, pulled into another process's CUDA-registered Grid and read by
# its GPU). It prints one summary, checks that no process it started is left, and exits
# nonzero if anything failed. Without a GPU (here) the GPU test fails, as required.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.gpu/ucx
test_name=gpu_cells_move_between_processes_and_the_gpu_reads_them

# The shared objects UCX needs, from the system if libucx0 is installed, else from the
# packages.
copy_ucx() {
    local lib=/usr/lib/x86_64-linux-gnu root=""
    if [ ! -e "$lib/libucp.so.0" ] || [ ! -e "$lib/ucx/libuct_cma.so.0" ]; then
        root=$(mktemp -d)
        (cd "$root" && apt-get download libucx0 libnuma1 >/dev/null)
        for deb in "$root"/*.deb; do dpkg -x "$deb" "$root/x"; done
        lib=$root/x/usr/lib/x86_64-linux-gnu
    fi
    for so in libucp.so.0 libucs.so.0 libuct.so.0 libucm.so.0; do
        cp -L "$lib/$so" "$dir/lib/$so"
    done
    cp -L "$lib/ucx/libuct_cma.so.0" "$dir/lib/ucx/"
    local numa
    for numa in "$lib/libnuma.so.1" /usr/lib/x86_64-linux-gnu/libnuma.so.1 \
        /lib/x86_64-linux-gnu/libnuma.so.1 "$root/x/lib/x86_64-linux-gnu/libnuma.so.1"; do
        if [ -e "$numa" ]; then cp -L "$numa" "$dir/lib/"; break; fi
    done
    [ -n "$root" ] && rm -rf "$root"
    # Nothing else may be needed: the GPU host has the C library and no UCX.
    local missing
    missing=$(for so in "$dir"/lib/*.so.* "$dir"/lib/ucx/*.so.*; do
        LD_LIBRARY_PATH="$dir/lib" ldd "$so" | awk '/=>/ {print $1, $3}'
    done | grep -vE "^(libc|libm|libdl|libpthread|librt)\.so\.[0-9]+ |$dir/lib/" | sort -u || true)
    if [ -n "$missing" ]; then
        echo "UCX's libraries need more than $dir/lib and the C library:" >&2
        echo "$missing" >&2
        exit 1
    fi
}

build() {
    local started=$SECONDS
    rm -rf "$dir"
    mkdir -p "$dir/lib/ucx" "$dir/bin"
    copy_ucx
    export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
    local bin
    bin=$(cargo test --release --all-features -p unimem --test remote --no-run \
        --message-format=json 2>"$dir/build.log" | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "remote":
        print(m["executable"])
') || { tail -20 "$dir/build.log" >&2; exit 1; }
    [ -n "$bin" ] || { tail -20 "$dir/build.log" >&2; echo "no remote test binary" >&2; exit 1; }
    cp "$bin" "$dir/bin/remote"
    rm -f "$dir/build.log"
    echo "built in $((SECONDS - started)) s: $(du -sh "$dir" | cut -f1) in $dir/" \
        "($(ls "$dir/lib" "$dir/lib/ucx" | grep -c '\.so') libraries and the remote test binary)"
    echo "run there, from the repository root with .gpu carried: bash tool/ucx-gpu.sh run"
}

run() {
    [ -x "$dir/bin/remote" ] || { echo "no $dir/bin/remote: run 'bash tool/ucx-gpu.sh build' first" >&2; exit 2; }
    local started=$SECONDS root=$PWD log
    log=$(mktemp)
    export LD_LIBRARY_PATH="$root/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export UCX_MODULE_DIR="$root/$dir/lib/ucx"
    export UNIMEM_REQUIRE_UCX=1 UNIMEM_REQUIRE_CUDA=1 RUST_BACKTRACE=1
    echo "unimem UCX GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r)"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | sed 's/^/gpu: /' || true
    else
        echo "gpu: no nvidia-smi"
    fi
    # `timeout` runs the binary in a process group of its own and signals the whole group,
    # so the test processes it re-executes go with it. First every test but the GPU one,
    # then the GPU one alone.
    local rc=0 rc_gpu=0
    timeout --kill-after=5 90 "$dir/bin/remote" --test-threads=1 --skip "$test_name" \
        </dev/null >"$log" 2>&1 || rc=$?
    timeout --kill-after=5 60 "$dir/bin/remote" --test-threads=1 --exact "$test_name" \
        </dev/null >"$log.gpu" 2>&1 || rc_gpu=$?
    # UCX's own lines about its memory pools at exit are noise here.
    cat "$log" "$log.gpu" | grep -v 'mpool.c' \
        | grep -E '^test |^test result:|: skipped \(|read by the GPU|panicked at|UNIMEM_REQUIRE' \
        | sed 's/^/  /' | tail -40
    local gpu verdict=PASS moved
    moved=$(grep -c 'read by the GPU' "$log.gpu" || true)
    if [ "$rc_gpu" -eq 0 ] && [ "$moved" -eq 2 ]; then
        gpu="PASS: cells moved over UCX_TLS=sm,tcp and tcp into another process, read by its GPU"
    elif [ "$rc_gpu" -eq 124 ] || [ "$rc_gpu" -eq 137 ]; then
        gpu="FAILED: timed out"
    elif grep -q 'UNIMEM_REQUIRE_CUDA=1, but' "$log.gpu"; then
        gpu="FAILED: required, but there is no usable CUDA driver or device here"
    else
        gpu="FAILED (exit $rc_gpu; its output is above)"
    fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        verdict="FAIL (timed out)"
    elif [ "$rc" -ne 0 ] || [ "$rc_gpu" -ne 0 ] || [ "$moved" -ne 2 ]; then
        verdict=FAIL
    fi
    local left
    left=$(pgrep -f "$root/$dir/bin/" || true)
    if [ -n "$left" ]; then
        echo "left running (killed): $left"
        kill -9 $left 2>/dev/null || true
        verdict=FAIL
    fi
    echo "UCX tests (TCP, shared memory, refusals): exit $rc; GPU test: $gpu"
    echo "$verdict; took $((SECONDS - started)) s"
    rm -f "$log" "$log.gpu"
    [ "$verdict" = PASS ]
}

case "${1:-}" in
build) build ;;
run) run ;;
*)
    sed -n '2,6p' "$0" >&2
    exit 2
    ;;
esac

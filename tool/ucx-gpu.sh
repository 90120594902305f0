#!/usr/bin/env bash
# The GPU check of the `ucx` feature (specs/remote.md, "GPU").
#
#   bash tool/ucx-gpu.sh build   # here: UCX from Debian's .debs + the test binary -> .gpu/
#   bash tool/ucx-gpu.sh run     # there (GPU host, no Rust, no network, no UCX installed)
#
# `build` extracts libucp, libucs, libuct, libucm, the cma module and libnuma from the
# Debian 12 packages (apt-get download + dpkg -x; about 2 MiB) into .gpu/ucx/, and copies
# the `remote` test binary built with --features cuda,ucx (release) to .gpu/remote-tests.
# `run` points LD_LIBRARY_PATH and UCX_MODULE_DIR there and runs the GPU test, which moves
# CUDA-registered cells between two processes over shared memory and TCP and has the
# importer's GPU read them. Carry `.gpu` to the GPU host.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
build)
    rm -rf .gpu && mkdir -p .gpu/debs .gpu/root .gpu/ucx/ucx
    (cd .gpu/debs && apt-get download libucx0 libnuma1 >/dev/null)
    for deb in .gpu/debs/*.deb; do dpkg -x "$deb" .gpu/root; done
    lib=.gpu/root/usr/lib/x86_64-linux-gnu
    cp -L "$lib"/libucp.so.0 "$lib"/libucs.so.0 "$lib"/libuct.so.0 "$lib"/libucm.so.0 .gpu/ucx/
    cp -L "$lib"/libnuma.so.1 .gpu/ucx/ 2>/dev/null || cp -L .gpu/root/lib/x86_64-linux-gnu/libnuma.so.1 .gpu/ucx/ 2>/dev/null || cp -L .gpu/root/usr/lib/x86_64-linux-gnu/libnuma.so.1* .gpu/ucx/
    cp -L "$lib"/ucx/libuct_cma.so.0 .gpu/ucx/ucx/
    rm -rf .gpu/debs .gpu/root
    bin=$(cargo test --release -p unimem --features cuda,ucx --test remote --no-run \
        --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*remote-[^"]*\)".*/\1/p' | tail -1)
    cp "$bin" .gpu/remote-tests
    du -sh .gpu
    ;;
run)
    export LD_LIBRARY_PATH="$PWD/.gpu/ucx${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export UCX_MODULE_DIR="$PWD/.gpu/ucx/ucx"
    export UNIMEM_REQUIRE_CUDA=1 UNIMEM_REQUIRE_UCX=1
    .gpu/remote-tests --test-threads=1 --nocapture 2>&1 | grep -v "mpool.c" | tail -40
    ;;
*)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac

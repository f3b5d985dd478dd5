#!/usr/bin/env bash
# bench.sh - installs the benchmark peers if missing, builds sop-bench in
# Release (build-bench/), and runs it. Arguments go to sop-bench; with none,
# the quick kv suite runs.
#
#   scripts/bench.sh                          # sop-bench kv (n = 200,000)
#   scripts/bench.sh kv --n 1000000 --json kv.jsonl
#   scripts/bench.sh kv --engines lmdb,sqlite
#
# Environment: BUILD_DIR (default <repo>/build-bench), JOBS (default nproc),
# SOP_BENCH_NO_SOP=1 to build the peers only (when the engine does not build).
# Idempotent: re-running reuses the build directory and skips apt when every
# package is present.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$repo/build-bench}"
jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
no_sop="${SOP_BENCH_NO_SOP:-0}"

# Debian 12 packages: compiler and build tools, the engine's dependency
# (isa-l), and the kv peers.
pkgs=(cmake gcc make pkg-config libisal-dev libopenblas-dev liblmdb-dev libsqlite3-dev)

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]} > 0)); then
    echo "bench.sh: installing ${missing[*]}" >&2
    if [[ $(id -u) -eq 0 ]]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "bench.sh: missing packages (${missing[*]}) and not root; install them first" >&2
        exit 1
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
fi

bench_no_sop=OFF
if [[ "$no_sop" == 1 || "$no_sop" == ON ]]; then
    bench_no_sop=ON
fi

cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSOP_BUILD_BENCH=ON \
    -DSOP_BUILD_TESTS=OFF -DSOP_BENCH_NO_SOP="$bench_no_sop" >/dev/null
cmake --build "$build" --target sop-bench -j "$jobs"

if (($# == 0)); then
    set -- kv
fi
exec "$build/bench/sop-bench" "$@"

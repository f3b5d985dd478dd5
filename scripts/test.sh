#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds with ASan+UBSan and
# -Werror, runs every test (unit, model, crash, fault, examples, CLI), runs
# the concurrency suites under TSan and the whole suite again in a Release
# build (assertions off), checks that an application builds against the
# installed library, and runs the reliability suites (quick).
# Idempotent. Usage: scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
# curl: the fake Ollama server's self-test (tests/support/fake_ollama_selftest.sh);
# redis-server: the clustered-mode tests start their own on a loopback port
scripts/deps.sh build-essential cmake pkg-config libisal-dev libhiredis-dev libopenblas-dev libcmocka-dev libcjson-dev \
    libcurl4-openssl-dev curl redis-server
jobs=$(nproc)

echo "== build (ASan+UBSan, -Werror)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DSOP_SANITIZE="address;undefined" \
      -DSOP_WERROR=ON -DSOP_TESTING=ON >/dev/null
cmake --build build/asan -j"$jobs"

echo "== tests"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd build/asan && ctest --output-on-failure -j"$jobs" "$@")

echo "== concurrency suites under ThreadSanitizer"
cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug -DSOP_SANITIZE=thread -DSOP_WERROR=ON \
      -DSOP_TESTING=ON >/dev/null
tsan_tests="bank anomalies test_cache vector_optimize replica cluster cluster_combo cluster_combo_regress
            cluster_mirror_procs cluster_ec_race"
cmake --build build/tsan -j"$jobs" --target $tsan_tests
# OpenBLAS synchronises its worker threads with its own spin-waits, which
# ThreadSanitizer cannot see: one BLAS thread under TSan. The clustered-mode
# tests (each process's heartbeat thread, the EC layer's sync threads, the
# mirror's locks, the replica's state generation) take about a minute.
(cd build/tsan && TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1} OPENBLAS_NUM_THREADS=1 \
    ctest --output-on-failure -R "^($(echo $tsan_tests | tr ' ' '|'))\$")

echo "== Release build (-O3, assertions off: NDEBUG), the whole suite again"
# what users run: optimisation and NDEBUG change timing and code paths
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DSOP_BUILD_TESTS=ON -DSOP_WERROR=ON \
      -DSOP_TESTING=ON >/dev/null
cmake --build build/release -j"$jobs"
(cd build/release && ctest --output-on-failure -j"$jobs" "$@")

echo "== install and build an application against it"
tests/install/run.sh

echo "== reliability (quick)"
scripts/reliability.sh --quick

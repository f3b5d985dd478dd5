#!/usr/bin/env bash
# Fuzzing with libFuzzer (reliability plan C7). Builds the targets of
# tests/fuzz with clang and ASan+UBSan (-DSOP_FUZZ=ON) in build/fuzz, then
# runs each for N seconds (-max_total_time) on a working corpus of its own
# (build/fuzz/corpus/<target>, grown from the repository's seeds in
# tests/fuzz/corpus/<target> and the crashers kept in
# tests/fuzz/regress/<target>), with the JSON dictionary for the JSON
# targets. A crash, leak, timeout or out-of-memory stops that target; its
# input is left in build/fuzz/crashes/<target>/ (replay it with
# build/asan/tests/fuzz/fuzz_<target>_replay FILE, or the fuzzer binary).
#
# Writes build/fuzz/fuzz.json (per target: seconds, executions, executions
# per second, corpus size, coverage, crashes) and prints one line per
# target:
#   fuzz <target>: <execs> execs, <crashes> crashes
# Exit status 1 if any target crashed. Installs clang and
# libclang-rt-14-dev when missing (Debian 12, as root).
# Usage: scripts/fuzz.sh [--seconds N] [target...]   (default: 600 s, all)
set -euo pipefail
cd "$(dirname "$0")/.."
all=(node registry log open fallback ollama tokenizer fvecs jsonl ops)
json_targets=" fallback ollama jsonl "
secs=600
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) secs=${2:?--seconds N}; shift 2 ;;
    --seconds=*) secs=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ $secs =~ ^[0-9]+$ ]] && [ "$secs" -gt 0 ] || { echo "fuzz: --seconds wants a positive number" >&2; exit 2; }
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz: no target '$t' (targets: ${all[*]})" >&2; exit 2; }
done

scripts/deps.sh build-essential cmake pkg-config clang libclang-rt-14-dev libisal-dev \
    libhiredis-dev libopenblas-dev libcmocka-dev libcjson-dev libcurl4-openssl-dev

b=build/fuzz
echo "== build (clang, libFuzzer, ASan+UBSan) in $b"
cmake -S . -B $b -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOP_FUZZ=ON \
      >/dev/null
cmake --build $b -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
js=""
for t in "${targets[@]}"; do
  corpus=$b/corpus/$t crashes=$b/crashes/$t log=$b/logs/$t.log
  mkdir -p "$corpus" "$crashes" "$b/logs"
  seeds=(tests/fuzz/corpus/$t)
  [ -d tests/fuzz/regress/$t ] && seeds+=(tests/fuzz/regress/$t)
  dict=()
  [[ $json_targets == *" $t "* ]] && dict=(-dict=tests/fuzz/dict/json.dict)
  marker=$b/logs/$t.start
  : >"$marker"
  echo "== fuzz_$t for ${secs}s (log: $log)"
  start=$(date +%s)
  # stdout and stderr of the target are closed (-close_fd_mask=3): the
  # readers print an error per bad input; sanitizer and libFuzzer reports,
  # and the targets' own failures (fuzz_util.c), still reach the log
  rc=0
  "$b/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
      -print_final_stats=1 -close_fd_mask=3 -artifact_prefix="$crashes/" "${dict[@]}" \
      "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  wall=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  execs=${execs:-0}
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | tr -dc '0-9')
  crashed=$(find "$crashes" -maxdepth 1 -type f -newer "$marker" | wc -l)
  if [ "$rc" != 0 ] && [ "$crashed" = 0 ]; then crashed=1; fi  # died without an artifact
  ncorpus=$(find "$corpus" -type f | wc -l)
  [ "$crashed" = 0 ] || { status=1; grep -m3 -E 'ERROR|fuzz: |SUMMARY' "$log" >&2 || true; }
  js="$js${js:+,}\"$t\":{\"seconds\":$wall,\"execs\":$execs,\"execs_per_sec\":$(( execs / (wall > 0 ? wall : 1) )),\"corpus\":$ncorpus,\"cov\":${cov:-0},\"crashes\":$crashed}"
  echo "fuzz $t: $execs execs, $crashed crashes"
done
regress=$(find tests/fuzz/regress -type f 2>/dev/null | wc -l)
echo "{\"seconds_per_target\":$secs,\"targets\":{$js},\"regress_inputs\":$regress}" >$b/fuzz.json
exit $status

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
# libclang-rt-14-dev when missing (Debian 12, as root). --jobs J runs J
# targets at a time (each is one process: J = the number of cores divides
# the wall time by J; each target still gets N seconds).
# Usage: scripts/fuzz.sh [--seconds N] [--jobs J] [target...]
#        (default: 600 s, 1 job, all targets)
set -euo pipefail
cd "$(dirname "$0")/.."
all=(node registry log open fallback ollama tokenizer fvecs jsonl ops)
json_targets=" fallback ollama jsonl "
secs=600
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) secs=${2:?--seconds N}; shift 2 ;;
    --seconds=*) secs=${1#*=}; shift ;;
    --jobs) jobs=${2:?--jobs J}; shift 2 ;;
    --jobs=*) jobs=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ $secs =~ ^[0-9]+$ ]] && [ "$secs" -gt 0 ] || { echo "fuzz: --seconds wants a positive number" >&2; exit 2; }
[[ $jobs =~ ^[0-9]+$ ]] && [ "$jobs" -gt 0 ] || { echo "fuzz: --jobs wants a positive number" >&2; exit 2; }
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
# one target: its line and its JSON entry in $b/results/<target>.{line,json}
fuzz_one() {
  local t=$1
  local corpus=$b/corpus/$t crashes=$b/crashes/$t log=$b/logs/$t.log
  mkdir -p "$corpus" "$crashes" "$b/logs" "$b/results"
  local seeds=(tests/fuzz/corpus/$t)
  [ -d tests/fuzz/regress/$t ] && seeds+=(tests/fuzz/regress/$t)
  local dict=()
  [[ $json_targets == *" $t "* ]] && dict=(-dict=tests/fuzz/dict/json.dict)
  local marker=$b/logs/$t.start
  : >"$marker"
  echo "== fuzz_$t for ${secs}s (log: $log)"
  local start rc=0
  start=$(date +%s)
  # stdout and stderr of the target are closed (-close_fd_mask=3): the
  # readers print an error per bad input; sanitizer and libFuzzer reports,
  # and the targets' own failures (fuzz_util.c), still reach the log
  "$b/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 \
      -print_final_stats=1 -close_fd_mask=3 -artifact_prefix="$crashes/" "${dict[@]}" \
      "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  local wall=$(( $(date +%s) - start ))
  local execs cov crashed ncorpus
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  execs=${execs:-0}
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | tr -dc '0-9')
  # crash-, leak-, timeout- and oom- inputs; slow-unit- ones (over 10 s,
  # e.g. on a loaded machine) are kept but are not failures
  crashed=$(find "$crashes" -maxdepth 1 -type f -newer "$marker" ! -name 'slow-unit-*' | wc -l)
  if [ "$rc" != 0 ] && [ "$crashed" = 0 ]; then crashed=1; fi  # died without an artifact
  ncorpus=$(find "$corpus" -type f | wc -l)
  [ "$crashed" = 0 ] || grep -m3 -E 'ERROR|fuzz: |SUMMARY' "$log" >&2 || true
  echo "\"$t\":{\"seconds\":$wall,\"execs\":$execs,\"execs_per_sec\":$(( execs / (wall > 0 ? wall : 1) )),\"corpus\":$ncorpus,\"cov\":${cov:-0},\"crashes\":$crashed}" >"$b/results/$t.json"
  echo "fuzz $t: $execs execs, $crashed crashes" | tee "$b/results/$t.line"
}

rm -rf "$b/results"
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
  fuzz_one "$t" &
  running=$((running + 1))
done
wait
status=0
js=""
for t in "${targets[@]}"; do
  if [ ! -s "$b/results/$t.json" ]; then
    echo "fuzz $t: no result" >&2; status=1; continue
  fi
  js="$js${js:+,}$(cat "$b/results/$t.json")"
  grep -q ' 0 crashes$' "$b/results/$t.line" || status=1
done
regress=$(find tests/fuzz/regress -type f 2>/dev/null | wc -l)
echo "{\"seconds_per_target\":$secs,\"targets\":{$js},\"regress_inputs\":$regress}" >$b/fuzz.json
exit $status

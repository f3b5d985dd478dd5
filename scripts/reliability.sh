#!/usr/bin/env bash
# The durability suites, with one summary (reliability plan, part D):
#   kill        SIGKILL at random times and at named kill points
#   text-kill   SIGKILL while transactions write a text index (bulk and small)
#   powerloss   simulated power loss at every I/O operation of a workload
#   ioerr       EIO / ENOSPC / short I/O at every I/O operation of open,
#               commits, checkpoint, compaction, close and check
#   ioerr-layers  the same faults in the vector store (add, optimize,
#               delete, search), the text index (add, bulk add, replace,
#               delete, search) and the knowledge-base load
#   oom         the Nth allocation fails, for every N, in every layer
#   fuzz        every libFuzzer target of tests/fuzz (scripts/fuzz.sh):
#               10 s each with --quick, 600 s each in the full run, as
#               many at a time as there are cores
#               (SOP_FUZZ_SECONDS overrides); a crash fails the run
#   mutants     deliberately broken builds (SOP_TESTING switches) that the
#               suite meant to catch them must catch: the commit sync
#               removed (powerloss), CRC checks off (corrupt), conflict
#               validation off (bank)
# Writes build/reliability.json and ends with exactly one line
#   reliability: <cases> cases, <lost> lost, <partial> partial, <corrupt> corrupt
# Exit 0 only when the last three are 0, every mutant was caught and every
# named kill point was reached at least once.
# Usage: scripts/reliability.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
scripts/deps.sh build-essential cmake pkg-config libisal-dev libhiredis-dev libopenblas-dev libcmocka-dev libcjson-dev libcurl4-openssl-dev

b=build/reliability
cmake -S . -B $b -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOP_TESTING=ON -DSOP_WERROR=ON >/dev/null
cmake --build $b -j"$(nproc)" --target crash_kill crash_text crash_powerloss ioerr ioerr_layers oom corrupt bank \
    >/dev/null
export SOP_TEST_TMP=$PWD/$b/testtmp
if [ $quick = 1 ]; then kills=${SOP_KILL_ITERS:-80}; seeds=2; else kills=${SOP_KILL_ITERS:-2000}; seeds=16; fi

out=$b/reliability.log
: >"$out"
status=0
SOP_KILL_ITERS=$kills $b/tests/crash/crash_kill >>"$out" 2>&1 || status=1
# every named kill point must have been reached (the build has SOP_TESTING)
if grep '^kill: points never reached' "$out" >&2; then status=1; fi
SOP_TKILL_ITERS=$((kills / 4)) $b/tests/crash/crash_text >>"$out" 2>&1 || status=1
$b/tests/crash/crash_powerloss --seeds $seeds >>"$out" 2>&1 || status=1
$b/tests/faults/ioerr >"$b/ioerr.log" 2>&1 || status=1
# "ioerr: <points> injection points, <bad> bad" -> the common summary shape
sed -n 's/^ioerr: \([0-9]*\) injection points, \([0-9]*\) bad$/ioerr: \1 cases, 0 acked, 0 lost, 0 partial, \2 corrupt/p' \
    "$b/ioerr.log" >>"$out"
grep -q '^ioerr: [0-9]* cases' "$out" || { echo "ioerr: no summary (see $b/ioerr.log)" >&2; status=1; }
$b/tests/faults/ioerr_layers >"$b/ioerr_layers.log" 2>&1 || status=1
# "ioerr-layers: <points> injection points, <bad> bad" -> the common summary shape
sed -n 's/^ioerr-layers: \([0-9]*\) injection points, \([0-9]*\) bad$/ioerr-layers: \1 cases, 0 acked, 0 lost, 0 partial, \2 corrupt/p' \
    "$b/ioerr_layers.log" >>"$out"
grep -q '^ioerr-layers: [0-9]* cases' "$out" ||
    { echo "ioerr-layers: no summary (see $b/ioerr_layers.log)" >&2; status=1; }
$b/tests/faults/oom >"$b/oom.log" 2>&1 || status=1
# "oom: <cases> cases, <failed> failed" -> the common summary shape
sed -n 's/^oom: \([0-9]*\) cases, \([0-9]*\) failed$/oom: \1 cases, 0 acked, 0 lost, 0 partial, \2 corrupt/p' \
    "$b/oom.log" >>"$out"
grep -q '^oom: [0-9]* cases' "$out" || { echo "oom: no summary (see $b/oom.log)" >&2; status=1; }

# fuzzing: its own clang build in build/fuzz; "fuzz <target>: <execs> execs, <crashes> crashes"
if [ $quick = 1 ]; then fsecs=${SOP_FUZZ_SECONDS:-10}; else fsecs=${SOP_FUZZ_SECONDS:-600}; fi
rm -f build/fuzz/fuzz.json
scripts/fuzz.sh --seconds "$fsecs" --jobs "$(nproc)" >"$b/fuzz.log" 2>&1 || status=1
[ -s build/fuzz/fuzz.json ] || { echo "fuzz: no report (see $b/fuzz.log)" >&2; status=1; }
fuzz_lines=$(grep -E '^fuzz [a-z]+: [0-9]+ execs, [0-9]+ crashes$' "$b/fuzz.log" || true)
fuzz_targets=$(printf '%s\n' "$fuzz_lines" | grep -c . || true)
fuzz_execs=$(printf '%s\n' "$fuzz_lines" | awk '{s += $3} END {print s + 0}')
fuzz_crashes=$(printf '%s\n' "$fuzz_lines" | awk '{s += $5} END {print s + 0}')
[ "$fuzz_crashes" = 0 ] && [ "$fuzz_targets" -gt 0 ] || status=1

# harness self-tests: each mutant must make its suite fail
mutants_run=0 mutants_caught=0 mutant_list=""
mutant() { # name, then the command that must fail
    local name=$1
    shift
    mutants_run=$((mutants_run + 1))
    if "$@" >"$b/mutant-$name.log" 2>&1; then
        mutant_list="$mutant_list $name:NOT-caught"
    else
        mutants_caught=$((mutants_caught + 1))
        mutant_list="$mutant_list $name:caught"
    fi
}
mutant nosync env SOP_TEST_NO_COMMIT_SYNC=1 $b/tests/crash/crash_powerloss --seeds $seeds
mutant nocrc env SOP_TEST_NO_CRC=1 $b/tests/faults/corrupt
mutant novalidate env SOP_TEST_NO_VALIDATE=1 SOP_BANK_SECONDS=2 $b/tests/concurrency/bank
mutant="$mutants_caught/$mutants_run caught"

grep -E '^(kill|text-kill|powerloss|ioerr|ioerr-layers|oom): [0-9]+ cases' "$out" || true
fuzzjs=$(cat build/fuzz/fuzz.json 2>/dev/null || echo null)
awk -v mutants="$mutant_list" -v caught=$mutants_caught -v run=$mutants_run -v fuzz="$fuzzjs" '
  /^(kill|text-kill|powerloss|ioerr|ioerr-layers|oom): [0-9]+ cases/ {
    name=$1; sub(":","",name)
    for (i = 2; i <= NF; i++) { v=$i; gsub(",","",v); k=$(i+1); gsub(",","",k); if (v ~ /^[0-9]+$/) f[name,k]=v }
    names[name]=1
  }
  END {
    js = "{\"suites\":{"; sep = ""
    for (n in names) {
      js = js sprintf("%s\"%s\":{\"cases\":%d,\"acked\":%d,\"lost\":%d,\"partial\":%d,\"corrupt\":%d}", sep, n, f[n,"cases"], f[n,"acked"], f[n,"lost"], f[n,"partial"], f[n,"corrupt"])
      sep = ","; c += f[n,"cases"]; l += f[n,"lost"]; p += f[n,"partial"]; x += f[n,"corrupt"]
    }
    js = js "},\"mutants\":{"; sep = ""
    n = split(mutants, m, " ")
    for (i = 1; i <= n; i++) { split(m[i], kv, ":"); js = js sprintf("%s\"%s\":\"%s\"", sep, kv[1], kv[2]); sep = "," }
    js = js "},\"fuzz\":" fuzz
    js = js sprintf(",\"mutants_caught\":%d,\"mutants_run\":%d,\"cases\":%d,\"lost\":%d,\"partial\":%d,\"corrupt\":%d}", caught, run, c, l, p, x)
    print js > "build/reliability.json"
    print c+0, l+0, p+0, x+0
  }' "$out" >$b/totals
printf '%s\n' "$fuzz_lines"
printf '%-28s %s\n' "fuzz:" "$fuzz_targets targets, $fuzz_execs execs, $fuzz_crashes crashes (${fsecs} s each)"
printf '%-28s %s (%s)\n' "harness mutants:" "$mutant" "${mutant_list# }"
[ "$mutants_caught" = "$mutants_run" ] || status=1
set -- $(cat $b/totals)
[ "$1" -gt 0 ] || status=1
[ "$2$3$4" = 000 ] || status=1
[ $status = 0 ] || { echo "see $out and $b/mutant-*.log" >&2; }
echo "reliability: $1 cases, $2 lost, $3 partial, $4 corrupt"
exit $status

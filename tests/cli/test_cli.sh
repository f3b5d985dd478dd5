#!/usr/bin/env bash
# test_cli.sh - end-to-end test of the `sop` command-line tool.
# Usage: tests/cli/test_cli.sh /path/to/sop
# Prints a PASS or FAIL line per check; exits 1 if any check failed.
# The helpers (run, check, check_err, pass, fail) are in lib.sh.
# shellcheck disable=SC2015
set -u

SOP=${1:?usage: test_cli.sh /path/to/sop}
NAME=cli
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"
DB="$TMP/db"

# ---------------------------------------------------------------- help
run --version
if [ "$RC" = 0 ] && [[ "$OUT" == sop\ * ]]; then pass "--version"; else
    fail "--version" "rc=$RC out=$OUT"; fi
run --help
if [ "$RC" = 0 ] && grep -q 'kv' <<<"$OUT" && grep -q 'stats' <<<"$OUT" &&
    grep -q 'check' <<<"$OUT"; then pass "--help lists commands"; else
    fail "--help lists commands" "rc=$RC out=$OUT"; fi
for c in "kv" "kv put" "kv get" "kv del" "kv scan" "stats" "check"; do
    # shellcheck disable=SC2086
    run $c --help
    if [ "$RC" = 0 ] && grep -q '^Usage: sop' <<<"$OUT"; then pass "$c --help"; else
        fail "$c --help" "rc=$RC out=$OUT err=$ERR"; fi
done
run help kv scan
if [ "$RC" = 0 ] && grep -q -- '--reverse' <<<"$OUT"; then pass "help kv scan"; else
    fail "help kv scan" "rc=$RC out=$OUT"; fi

# ---------------------------------------------------------------- usage errors
run
check_err "no command" 2 'Usage'
run frobnicate
check_err "unknown command" 2 "unknown command 'frobnicate'"
run kv
check_err "kv without subcommand" 2 'missing subcommand'
run kv frob "$DB" s
check_err "unknown kv subcommand" 2 "unknown command 'frob'"
run kv put "$DB" s onlykey
check_err "put with missing VALUE" 2 'missing arguments'
run kv get "$DB" s k extra
check_err "get with too many arguments" 2 'too many arguments'
run kv scan "$DB" s --bogus
check_err "unknown option" 2 "unknown option '--bogus'"
run kv scan "$DB" s --limit
check_err "option without its value" 2 'needs a value'
run kv scan "$DB" s --limit ten
check_err "bad --limit" 2 'bad --limit'
run kv scan "$DB" s --limit=-3
check_err "negative --limit" 2 'bad --limit'
run --sync sometimes kv get "$DB" s k
check_err "bad --sync" 2 'sync'
run stats
check_err "stats without DB" 2 'missing argument'
run check a b
check_err "check with two DBs" 2 'too many arguments'
[ ! -e "$DB" ] && pass "usage errors create nothing" || fail "usage errors create nothing"

# ---------------------------------------------------------------- missing database
for c in "kv get $DB s k" "kv del $DB s k" "kv scan $DB s" "stats $DB" "check $DB"; do
    # shellcheck disable=SC2086
    run $c
    check_err "missing db: ${c%% "$DB"*}" 1 "^sop: "
done
[ ! -e "$DB" ] && pass "reads of a missing db do not create it" ||
    fail "reads of a missing db do not create it"

# ---------------------------------------------------------------- put/get
ok=1
for k in c a e b d; do
    run --sync none kv put "$DB" s "$k" "v$k"
    [ "$RC" = 0 ] || { ok=0; fail "put $k" "rc=$RC err=$ERR"; }
done
[ "$ok" = 1 ] && pass "put 5 keys (creates db and store)"
[ -d "$DB" ] && pass "put created the database directory" ||
    fail "put created the database directory"
run kv get "$DB" s b
check "get b" 0 "vb"
run kv put "$DB" s b "new b" --sync full
check "put overwrites (--sync after the command)" 0 ""
run kv get "$DB" s b
check "get overwritten b" 0 "new b"
run kv put --sync=none "$DB" s b vb
check "put back b (--sync=none)" 0 ""
run kv get "$DB" s nope
check_err "get missing key" 1 '^sop: kv get: .*not found'
[ -z "$OUT" ] && pass "get missing key prints nothing on stdout" ||
    fail "get missing key prints nothing on stdout" "$OUT"
run kv get "$DB" nostore a
check_err "get in missing store" 1 '^sop: kv get: '
run kv get "$DB" s a --json
check "get --json" 0 '{"key":"a","value":"va"}'
run kv put "$DB" s empty ""
check "put empty value" 0 ""
run kv get "$DB" s empty
check "get empty value" 0 ""

# binary round trip through --stdin and --raw
printf 'bin\x00ary\x01\xff\ntail' >"$TMP/bin.in"
"$SOP" kv put --stdin "$DB" s binkey <"$TMP/bin.in" 2>"$TMP/stderr"
RC=$?; OUT=""; ERR=$(cat "$TMP/stderr")
check "put --stdin binary value" 0 ""
"$SOP" kv get --raw "$DB" s binkey >"$TMP/bin.out" 2>"$TMP/stderr"
RC=$?
if [ "$RC" = 0 ] && cmp -s "$TMP/bin.in" "$TMP/bin.out"; then pass "get --raw returns the exact bytes"
else fail "get --raw returns the exact bytes" "rc=$RC $(cat "$TMP/stderr")"; fi
run kv put --stdin "$DB" s k v
check_err "--stdin with a VALUE argument" 2 'too many arguments'

# keys that look like options, escapes
run kv put "$DB" s -- --dash dashval
check "put key starting with -- after --" 0 ""
run kv get "$DB" s -- --dash
check "get key starting with --" 0 "dashval"
run kv put -e "$DB" s 'e\x01sc' 'tab\there'
check "put -e decodes escapes" 0 ""
run kv get "$DB" s "e$(printf '\001')sc"
check "get of the decoded key" 0 "tab${TAB}here"
run kv put -e "$DB" s 'bad\q' v
check_err "put -e with a bad escape" 2 'bad escape'

# ---------------------------------------------------------------- scan
run kv del "$DB" s --dash
check "del --dash (no --: taken as unknown option)" 2
run kv del "$DB" s -- --dash
check "del --dash" 0 ""
run kv del "$DB" s "e$(printf '\001')sc"
check "del escaped key" 0 ""
run kv del "$DB" s binkey
check "del binkey" 0 ""
run kv del "$DB" s empty
check "del empty" 0 ""
run kv get "$DB" s empty
check_err "get deleted key" 1 'not found'
run kv del "$DB" s empty
check_err "del missing key" 1 '^sop: kv del: .*not found'
run kv del "$DB" nostore a
check_err "del in missing store" 1 '^sop: kv del: '

run kv scan "$DB" s
check "scan all, in order" 0 "a${TAB}va${NL}b${TAB}vb${NL}c${TAB}vc${NL}d${TAB}vd${NL}e${TAB}ve"
run kv scan "$DB" s --from b --to d
check "scan --from b --to d" 0 "b${TAB}vb${NL}c${TAB}vc${NL}d${TAB}vd"
run kv scan "$DB" s --after b --before d
check "scan --after b --before d" 0 "c${TAB}vc"
run kv scan "$DB" s --from bb
check "scan --from between keys" 0 "c${TAB}vc${NL}d${TAB}vd${NL}e${TAB}ve"
run kv scan "$DB" s --reverse
check "scan --reverse" 0 "e${TAB}ve${NL}d${TAB}vd${NL}c${TAB}vc${NL}b${TAB}vb${NL}a${TAB}va"
run kv scan "$DB" s --reverse --from b --to d -k
check "scan --reverse --from b --to d" 0 "d${NL}c${NL}b"
run kv scan "$DB" s --limit 2 --keys-only
check "scan --limit 2" 0 "a${NL}b"
run kv scan "$DB" s --offset 1 --limit 2 -k
check "scan --offset 1 --limit 2" 0 "b${NL}c"
run kv scan "$DB" s -r -n 2 --offset 1 -k
check "scan reverse offset/limit" 0 "d${NL}c"
run kv scan "$DB" s --offset 10
check "scan --offset past the end" 0 ""
run kv scan "$DB" s --from x
check "scan empty range" 0 ""
run kv scan "$DB" s --limit 1 --json
check "scan --json" 0 '{"key":"a","value":"va"}'
run kv scan "$DB" s --limit 1 --json --keys-only
check "scan --json --keys-only" 0 '{"key":"a"}'
run kv scan "$DB" nostore
check_err "scan missing store" 1 '^sop: kv scan: '
run kv scan "$DB" s --from a --after a
check_err "scan --from with --after" 2 'exclude'

# prefix
for k in ab abc abd ac; do "$SOP" kv put --sync none "$DB" p "$k" 1 || fail "put p $k"; done
run kv scan "$DB" p --prefix ab -k
check "scan --prefix" 0 "ab${NL}abc${NL}abd"
run kv scan "$DB" p --prefix ab -k -r
check "scan --prefix --reverse" 0 "abd${NL}abc${NL}ab"

# escaping in text and JSON output
printf 'q"uote\\back\ttab\nnl\x01\xc3\xa9' >"$TMP/esc.in"
"$SOP" kv put --stdin "$DB" x k1 <"$TMP/esc.in" || fail "put esc value"
printf '\x02\xff' | "$SOP" kv put --stdin "$DB" x k2 || fail "put binary value"
run kv scan "$DB" x
check "scan escapes non-printable bytes" 0 \
    "k1${TAB}q\"uote\\\\back\\ttab\\nnl\\x01é${NL}k2${TAB}\\x02\\xff"
run kv scan "$DB" x --json
check "scan --json escapes strings" 0 \
    "{\"key\":\"k1\",\"value\":\"q\\\"uote\\\\back\\ttab\\nnl\\u0001é\"}${NL}{\"key\":\"k2\",\"value_hex\":\"02ff\"}"
if command -v python3 >/dev/null 2>&1; then
    if printf '%s\n' "$OUT" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert rows[0]["value"] == "q\"uote\\back\ttab\nnl\x01\u00e9", rows[0]
assert rows[1]["value_hex"] == "02ff", rows[1]
' 2>"$TMP/py.err"; then pass "scan --json parses as JSON"
    else fail "scan --json parses as JSON" "$(cat "$TMP/py.err")"; fi
fi

# ---------------------------------------------------------------- int64 store
ok=1
for k in 10 -5 2 100 -40; do
    "$SOP" kv put --sync none --int "$DB" nums "$k" "n$k" 2>"$TMP/stderr" ||
        { ok=0; fail "put --int $k" "$(cat "$TMP/stderr")"; }
done
[ "$ok" = 1 ] && pass "put --int creates an int64 store"
run kv scan "$DB" nums -k
check "int64 keys scan in numeric order" 0 "-40${NL}-5${NL}2${NL}10${NL}100"
run kv scan "$DB" nums --from -5 --to 10
check "int64 range" 0 "-5${TAB}n-5${NL}2${TAB}n2${NL}10${TAB}n10"
run kv get "$DB" nums 100
check "get int64 key" 0 "n100"
run kv put "$DB" nums 7 seven
check "put into an int64 store without --int" 0 ""
run kv get "$DB" nums 7
check "get int64 key added without --int" 0 "seven"
run kv scan "$DB" nums --json -n 1
check "int64 keys are JSON numbers" 0 '{"key":-40,"value":"n-40"}'
run kv get "$DB" nums abc
check_err "non-numeric key for an int64 store" 2 'not a 64-bit integer'
run kv put --int "$DB" s 1 one
check_err "--int on a bytes store" 1 'not int64'

# ---------------------------------------------------------------- bad input
run kv put "$DB" '../evil' k v
check_err "bad store name" 1 '^sop: kv put: '
[ ! -e "$TMP/evil" ] && pass "bad store name creates nothing outside the db" ||
    fail "bad store name creates nothing outside the db"
run kv put "$DB" s "$(head -c 70000 /dev/zero | tr '\0' k)" v
check_err "oversized key" 1 '^sop: kv put: '
run kv get "$DB" s "$(head -c 70000 /dev/zero | tr '\0' k)"
[ "$RC" = 1 ] || [ "$RC" = 0 ] && pass "get with an oversized key does not crash" ||
    fail "get with an oversized key does not crash" "rc=$RC"
: >"$TMP/notadir"
run kv get "$TMP/notadir" s k
check_err "db path is a file" 1 '^sop: kv get: '

# a value larger than a pipe buffer, output closed early
head -c 300000 /dev/zero | tr '\0' 'z' >"$TMP/big.in"
"$SOP" kv put --stdin "$DB" big k <"$TMP/big.in" 2>"$TMP/stderr"
RC=$?; OUT=""; ERR=$(cat "$TMP/stderr")
check "put a 300 KB value" 0 ""
"$SOP" kv get --raw "$DB" big k >"$TMP/big.out" 2>"$TMP/stderr"
cmp -s "$TMP/big.in" "$TMP/big.out" && pass "get a 300 KB value" ||
    fail "get a 300 KB value" "$(cat "$TMP/stderr")"
"$SOP" kv scan "$DB" big 2>"$TMP/stderr" | head -c 10 >/dev/null
RC=${PIPESTATUS[0]}
[ "$RC" -lt 128 ] && pass "scan into a closed pipe exits cleanly (rc=$RC)" ||
    fail "scan into a closed pipe exits cleanly" "rc=$RC"

# concurrent commands on one database (each waits for the others' open)
pids=()
for i in 1 2 3 4 5 6; do
    "$SOP" kv put --sync none "$DB" conc "k$i" "v$i" 2>"$TMP/conc.$i" &
    pids+=($!)
done
ok=1
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { ok=0; fail "concurrent put $((i + 1))" "$(cat "$TMP/conc.$((i + 1))")"; }
done
[ "$ok" = 1 ] && pass "6 concurrent puts succeed"
run kv scan "$DB" conc -k
check "concurrent puts are all present" 0 "k1${NL}k2${NL}k3${NL}k4${NL}k5${NL}k6"
run --busy-wait nope kv get "$DB" conc k1
check_err "bad --busy-wait" 2 'busy-wait'

# ---------------------------------------------------------------- stats, check
run stats "$DB"
if [ "$RC" = 0 ] && grep -Eq '^commits +[0-9]+$' <<<"$OUT" &&
    grep -Eq "^store +s${TAB}5\$" <<<"$OUT" && grep -Eq "^store +nums${TAB}6\$" <<<"$OUT" &&
    grep -Eq '^stores +6$' <<<"$OUT"; then pass "stats"; else
    fail "stats" "rc=$RC" "$OUT" "$ERR"; fi
run stats "$DB" --json
if [ "$RC" = 0 ] && grep -q '"name":"s","count":5' <<<"$OUT" &&
    grep -q '"name":"nums","count":6' <<<"$OUT"; then pass "stats --json"; else
    fail "stats --json" "rc=$RC" "$OUT" "$ERR"; fi
if command -v python3 >/dev/null 2>&1; then
    printf '%s\n' "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["stores"])==6' \
        2>/dev/null && pass "stats --json parses as JSON" || fail "stats --json parses as JSON" "$OUT"
fi
run check "$DB"
check "check a clean database" 0 "ok"

# ---------------------------------------------------------------- vector
# fvecs rows: row r is (r mod 10) * 3 + r / 1000 in each of 8 components
VDB="$TMP/vdb"
perl -e 'for $r (0..199) { print pack("l<", 8), pack("f<8", ((($r % 10) * 3 + $r / 1000)) x 8) }' \
    >"$TMP/v.fvecs"
perl -e 'print pack("l<", 8), pack("f<8", (7 * 3 + 37 / 1000) x 8)' >"$TMP/q37.fvecs"
perl -e 'print pack("l<", 4), pack("f<4", 1, 2, 3, 4)' >"$TMP/d4.fvecs"
printf 'not vectors' >"$TMP/bad.fvecs"
for r in $(seq 0 199); do echo "item-$r"; done >"$TMP/ids.txt"
run vector load "$VDB" v "$TMP/v.fvecs" --metric l2
check "vector load" 0 "loaded 200 vectors of 8 dimensions into v"
run vector query "$VDB" v "$TMP/q37.fvecs" -k 1 --nprobe 100000
check "vector query finds the exact row (nprobe clamped)" 0 "37"
run vector query "$VDB" v "$TMP/q37.fvecs" -k 3
if [ "$RC" = 0 ] && [ "$(wc -w <<<"$OUT")" = 3 ] && [ "${OUT%% *}" = 37 ]; then
    pass "vector query -k 3 (default nprobe)"; else fail "vector query -k 3" "$OUT" "$ERR"; fi
run vector stats "$VDB" v
if [ "$RC" = 0 ] && grep -q '^count 200$' <<<"$OUT" && grep -q '^trained 1$' <<<"$OUT" &&
    grep -q '^metric l2$' <<<"$OUT"; then pass "vector stats"; else
    fail "vector stats" "$OUT" "$ERR"; fi
run vector load "$VDB" named "$TMP/v.fvecs" --ids "$TMP/ids.txt" --metric l2 --nlist 4
check "vector load --ids --nlist" 0 "loaded 200 vectors of 8 dimensions into named"
run vector query "$VDB" named "$TMP/q37.fvecs" -k 1 --nprobe 4
check "vector query returns the given ids" 0 "item-37"
run vector load "$VDB" v "$TMP/d4.fvecs"
check_err "vector load of another dimension" 1 'dimensions'
run vector load "$VDB" v "$TMP/v.fvecs" --metric cosine
check_err "vector load with another metric" 1 'metric'
run vector load "$VDB" w "$TMP/bad.fvecs"
check_err "vector load of a non-fvecs file" 1 'fvecs'
run vector load "$VDB" w "$TMP/v.fvecs" --metric manhattan
check_err "vector load --metric bogus" 2 'metric'
run vector query "$VDB" nope "$TMP/q37.fvecs"
check_err "vector query of an unknown store" 1 'no such vector store'
run vector query "$VDB" v "$TMP/q37.fvecs" -k 0
check_err "vector query -k 0" 2 '-k'
run vector optimize "$VDB" v --nlist 2
check "vector optimize" 0 ""
run vector query "$VDB" v "$TMP/q37.fvecs" -k 1
check "vector query after optimize" 0 "37"
run check "$VDB"
check "check a database with vector stores" 0 "ok"
# an item's content record removed behind the vector store's back
cp -r "$VDB" "$TMP/vdb-bad"
run kv del "$TMP/vdb-bad" v.vec.content 37
check "kv del of a vector store's own record" 0 ""
run check "$TMP/vdb-bad"
if [ "$RC" = 1 ] &&
    grep -q "^vector store v: index entry of id '37' in version [0-9]* has no content record\$" <<<"$OUT" &&
    grep -q "^vector store v: sop_vstore_count() says 200 items, the content store holds 199 live ones\$" <<<"$OUT" &&
    grep -Eq '^[0-9]+ problems$' <<<"$(tail -n 1 <<<"$OUT")"; then
    pass "check reports a damaged vector index"
else fail "check reports a damaged vector index" "rc=$RC" "$OUT" "$ERR"; fi

finish

#!/usr/bin/env bash
# test_stream_cli.sh - end-to-end test of `sop stream put|get|stat|rm`.
# Usage: tests/cli/test_stream_cli.sh /path/to/sop
# Prints a PASS or FAIL line per check; exits 1 if any check failed.
# The helpers (run, check, check_err, pass, fail) are in lib.sh.
# shellcheck disable=SC2015
set -u

SOP=${1:?usage: test_stream_cli.sh /path/to/sop}
NAME=stream-cli
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"
DB="$TMP/db"

# ---------------------------------------------------------------- help
for c in "stream" "stream put" "stream get" "stream stat" "stream rm"; do
    # shellcheck disable=SC2086
    run $c --help
    if [ "$RC" = 0 ] && grep -q '^Usage: sop stream' <<<"$OUT"; then pass "$c --help"; else
        fail "$c --help" "rc=$RC out=$OUT err=$ERR"; fi
done
run --help
grep -q 'stream' <<<"$OUT" && pass "--help lists stream" || fail "--help lists stream" "$OUT"

# ---------------------------------------------------------------- usage errors
run stream
check_err "stream without subcommand" 2 'missing subcommand'
run stream put "$DB" s k
check_err "put without FILE" 2 'missing arguments'
run stream get "$DB" s k f extra
check_err "get with too many arguments" 2 'too many arguments'
run stream put --chunk 100 "$DB" s k /dev/null
check_err "put --chunk below the minimum" 2 'chunk'
run stream put --chunk lots "$DB" s k /dev/null
check_err "put --chunk not a number" 2 'chunk'
run stream stat --bogus "$DB" s k
check_err "unknown option" 2 "unknown option '--bogus'"
[ ! -e "$DB" ] && pass "usage errors create nothing" || fail "usage errors create nothing"

# ---------------------------------------------------------------- round trips
# 3.5 MB of random bytes with a 64 KiB chunk: 54 chunks, the last partial
head -c 3500001 /dev/urandom >"$TMP/in.bin"
run stream put --chunk 65536 "$DB" files movie "$TMP/in.bin"
check "put a file" 0
grep -Eq '^3500001 bytes, 54 chunks, crc32c [0-9a-f]{8}$' <<<"$OUT" &&
    pass "put prints bytes, chunks, crc" || fail "put prints bytes, chunks, crc" "$OUT"
put_out=$OUT
run stream get "$DB" files movie "$TMP/out.bin"
check "get to a file" 0 "$put_out"
cmp -s "$TMP/in.bin" "$TMP/out.bin" && pass "get returns the exact bytes" ||
    fail "get returns the exact bytes" "$(cmp "$TMP/in.bin" "$TMP/out.bin" 2>&1)"
"$SOP" stream get "$DB" files movie - >"$TMP/out2.bin" 2>"$TMP/stderr"
RC=$?
[ "$RC" = 0 ] && cmp -s "$TMP/in.bin" "$TMP/out2.bin" && pass "get - writes stdout exactly" ||
    fail "get - writes stdout exactly" "rc=$RC $(cat "$TMP/stderr")"

# stdin, the default chunk size, a binary key with escapes
"$SOP" stream put -e "$DB" other 'k\x00\x01' - <"$TMP/in.bin" >"$TMP/put.out" 2>"$TMP/stderr"
RC=$?
[ "$RC" = 0 ] && grep -q '^3500001 bytes, 4 chunks' "$TMP/put.out" && pass "put - reads stdin" ||
    fail "put - reads stdin" "rc=$RC $(cat "$TMP/put.out" "$TMP/stderr")"
run stream get -e "$DB" other 'k\x00\x01' "$TMP/out3.bin"
check "get an escaped key" 0 "${put_out/54 chunks/4 chunks}"
cmp -s "$TMP/in.bin" "$TMP/out3.bin" && pass "stdin round trip" || fail "stdin round trip"

# empty input: no value (a 0-byte value has no chunks)
run stream put "$DB" other empty /dev/null
check "put an empty file" 0 "0 bytes, 0 chunks, crc32c 00000000"
run stream get "$DB" other empty "$TMP/empty.out"
check_err "an empty value is absent" 1 "key 'empty' not found"

# a known CRC32C: "123456789" -> e3069283
printf 123456789 >"$TMP/nine"
run stream put "$DB" other nine "$TMP/nine"
check "crc32c of 123456789" 0 "9 bytes, 1 chunks, crc32c e3069283"

# ---------------------------------------------------------------- stat
run stream stat "$DB" files movie
check "stat" 0 "size 3500001${NL}chunks 54${NL}chunk_bytes 65536"
run stream stat --crc --json "$DB" files movie
crc=${put_out##* }
check "stat --crc --json" 0 "{\"size\":3500001,\"chunks\":54,\"chunk_bytes\":65536,\"crc32c\":\"$crc\"}"

# ---------------------------------------------------------------- replace
head -c 70000 /dev/urandom >"$TMP/small.bin"
run stream put "$DB" files movie "$TMP/small.bin"
check "put replaces a value" 0
run stream get "$DB" files movie "$TMP/out4.bin"
check "get the replaced value" 0
cmp -s "$TMP/small.bin" "$TMP/out4.bin" && pass "the old chunks are gone" ||
    fail "the old chunks are gone" "$(ls -l "$TMP/out4.bin")"
run stream put --chunk 4096 "$DB" files movie "$TMP/small.bin"
check_err "put --chunk of another size" 1 'chunks of 65536 bytes, not 4096'

# ---------------------------------------------------------------- errors
echo keep >"$TMP/untouched"
run stream get "$DB" files nokey "$TMP/untouched"
check_err "get a missing key" 1 "key 'nokey' not found in store 'files'"
[ "$(cat "$TMP/untouched")" = keep ] && pass "a failed get leaves FILE alone" ||
    fail "a failed get leaves FILE alone"
run stream get "$DB" nostore k "$TMP/x"
check_err "get from a missing store" 1 "no store 'nostore'"
run stream get "$TMP/nodb" files movie "$TMP/x"
check_err "get from a missing database" 1 '.'
run kv put "$DB" plain k v
run stream get "$DB" plain k "$TMP/x"
check_err "get from a store that is not streaming" 1 'not a streaming store'
run kv put "$DB" files k v
check_err "kv put into a streaming store" 1 'streaming store'
run stream put "$DB" files k "$TMP/does-not-exist"
check_err "put a missing file" 1 "cannot open"
long=$(printf 'a%.0s' $(seq 1001))
run stream put "$DB" files "$long" "$TMP/nine"
check_err "put a key that is too long" 1 'exceeds the maximum'

# ---------------------------------------------------------------- rm
run stream rm "$DB" files movie
check "rm" 0
run stream stat "$DB" files movie
check_err "stat after rm" 1 "key 'movie' not found"
run stream rm "$DB" files movie
check_err "rm a missing key" 1 "key 'movie' not found"
run stream stat "$DB" other 'k'
check_err "a neighbour key is not a prefix match" 1 "not found"

run check "$DB"
check "the database checks clean" 0 "ok"

finish

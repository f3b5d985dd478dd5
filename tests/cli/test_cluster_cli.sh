#!/usr/bin/env bash
# test_cluster_cli.sh - `sop --redis URL ...` (clustered mode) end to end,
# against a redis-server it starts on a loopback port. Usage:
# test_cluster_cli.sh /path/to/sop. Exit 77 (skip) without redis-server.
SOP=$1
NAME=cluster
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null || { echo "SKIP: no redis-server"; exit 77; }

port=0
for _ in $(seq 20); do
    p=$((20000 + RANDOM % 30000))
    redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
        --logfile "$TMP/redis.log" --daemonize no &
    rpid=$!
    for _ in $(seq 100); do
        redis-cli -p "$p" ping >/dev/null 2>&1 && { port=$p; break; }
        kill -0 "$rpid" 2>/dev/null || break
        sleep 0.05
    done
    [ "$port" != 0 ] && break
    kill -9 "$rpid" 2>/dev/null; wait "$rpid" 2>/dev/null
done
[ "$port" != 0 ] || { fail "redis-server did not start"; finish; exit 1; }
trap 'kill -9 $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$TMP"' EXIT
URL="redis://127.0.0.1:$port"
DB=$TMP/db

# the first process after Redis starts waits out one lease (10 s by default)
run --redis "$URL" kv put "$DB" s k1 v1
check "put through redis" 0
run kv get --redis "$URL" "$DB" s k1
check "get through redis (option after the command)" 0 "v1"
run --redis "$URL" kv put "$DB" s k2 v2
check "second put" 0
[ "$(redis-cli -p "$port" --scan --pattern 'sop:*:state' | wc -l)" = 1 ] && pass "state key in redis" \
    || fail "state key in redis" "$(redis-cli -p "$port" keys '*')"
[ "$(redis-cli -p "$port" --scan --pattern 'sop:*:lock' | wc -l)" = 0 ] && pass "lock released" \
    || fail "lock released"
run --redis "redis://127.0.0.1:1" kv get "$DB" s k1
check_err "redis unreachable" 1 "cannot reach Redis at 127.0.0.1:1"
run --redis "redis://127.0.0.1:99999" kv get "$DB" s k1
check_err "bad redis url" 1 "bad Redis address"
run --redis "" kv get "$DB" s k1
check_err "empty redis url" 2 "needs a value"
run --parity x kv get "$DB" s k1
check_err "bad parity" 2 "parity"
run --drives "" kv get "$DB" s k1
check_err "empty drives" 2 "drives"
# standalone afterwards reads what the cluster wrote
run kv get "$DB" s k2
check "standalone reads it" 0 "v2"

# erasure coding from the shell: --drives/--parity, a drive lost, sop repair
D="$TMP/d1,$TMP/d2,$TMP/d3,$TMP/d4"
run --drives "$D" --parity 2 kv put "$TMP/ec" s k vec
check "ec put" 0
rm -rf "$TMP/d2" "$TMP/d3"
run --drives "$D" --parity 2 kv get "$TMP/ec" s k
check "ec get with 2 of 4 drives gone" 0 "vec"
run --drives "$D" --parity 2 repair "$TMP/ec"
check_err "repair" 0 ""
echo "$OUT" | grep -q "^shards_rebuilt [1-9]" && [ -e "$TMP/d2/seg-00000001" ] && pass "repair rebuilt the drives" \
    || fail "repair rebuilt the drives" "$OUT"
rm -rf "$TMP/d1" "$TMP/d4"
run --drives "$D" --parity 2 kv get "$TMP/ec" s k
check "ec get from the repaired drives" 0 "vec"
run repair "$TMP/ec"
check_err "repair without drives" 2 "needs the database's --drives"
# the same, clustered: the repair coordinates through Redis
C="$TMP/c1,$TMP/c2,$TMP/c3,$TMP/c4"
run --redis "$URL" --drives "$C" --parity 1 kv put "$TMP/cec" s k cvec
check "clustered ec put" 0
rm -rf "$TMP/c3"
run --redis "$URL" --drives "$C" --parity 1 repair "$TMP/cec"
check_err "clustered repair" 0 ""
[ -e "$TMP/c3/sop-ec.id" ] && echo "$OUT" | grep -q "^shards_rebuilt [1-9]" \
    && pass "clustered repair rebuilt and confirmed the drive" \
    || fail "clustered repair rebuilt and confirmed the drive" "$OUT"
rm -rf "$TMP/c1"
run --redis "$URL" --drives "$C" --parity 1 kv get "$TMP/cec" s k
check "clustered ec get from the repaired drive" 0 "cvec"
finish

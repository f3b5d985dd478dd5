#!/usr/bin/env bash
# fake_ollama_selftest.sh - proves that the fake Ollama server
# (tests/support/fake_ollama.c) does what the top of that file says, so
# that a failing Ollama-client test points at the client, not the fake.
# Usage: tests/support/fake_ollama_selftest.sh /path/to/fake_ollama
# Talks to the fake with curl(1) (and bash's /dev/tcp for hand-made
# requests); exits 77, which ctest reports as skipped, without curl. When
# python3 is there, answers are also checked to be (or not be) JSON.
# One server per scenario, on an ephemeral port of 127.0.0.1 found through
# --port-file. Prints PASS or FAIL per check and "N passed, N failed";
# exits 1 if a check failed. pass, fail, finish and TMP come from
# tests/cli/lib.sh; a check reads `T="name"; CONDITION && pass "$T" ||
# fail "$T" DETAIL...`.
# shellcheck disable=SC2015
set -u

FAKE=${1:?usage: fake_ollama_selftest.sh /path/to/fake_ollama}
if ! command -v curl >/dev/null 2>&1; then
    echo "SKIP: curl(1) is not installed (apt-get install curl)"
    exit 77
fi
SOP=$FAKE
NAME=fake-ollama
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/../cli/lib.sh"
export LC_ALL=C.UTF-8
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
HAVE_PY=0
command -v python3 >/dev/null 2>&1 && HAVE_PY=1

# ------------------------------------------------------------------ helpers

# start NAME ARGS...: starts the fake with ARGS and waits for its port
# file; sets PID, PORT, URL, LOG and SNAME.
start() {
    SNAME=$1
    shift
    LOG=$TMP/$SNAME.log
    "$FAKE" --port-file "$TMP/$SNAME.port" --log "$LOG" "$@" 2>>"$TMP/$SNAME.stderr" &
    PID=$!
    for _ in $(seq 200); do
        [ -s "$TMP/$SNAME.port" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    PORT=$(cat "$TMP/$SNAME.port" 2>/dev/null)
    URL=http://127.0.0.1:$PORT
    T="$SNAME: port file written"
    [[ $PORT =~ ^[0-9]+$ ]] && pass "$T" || fail "$T" "stderr: $(cat "$TMP/$SNAME.stderr")"
}

# wait_exit NAME: waits for the server, which must exit 0.
wait_exit() {
    wait "$PID"
    local st=$?
    PID=
    [ "$st" = 0 ] && pass "$1" || fail "$1" "status $st" "stderr: $(cat "$TMP/$SNAME.stderr")"
}

# stop [SIGNAL]: stops the server (SIGTERM by default); it must exit 0.
stop() {
    kill -"${1:-TERM}" "$PID"
    wait_exit "$SNAME: exits 0 on SIG${1:-TERM}"
}

# req ARGS...: curl ARGS (10 s at most unless MAXT is set); sets RC (curl's
# exit status), CODE (HTTP status), OUT (body, also in $TMP/out), HDR
# (headers), ERR (curl's stderr), MS (milliseconds taken).
req() {
    local t0=${EPOCHREALTIME/./}
    CODE=$(curl -sS --max-time "${MAXT:-10}" -o "$TMP/out" -D "$TMP/hdr" -w '%{http_code}' \
        "$@" 2>"$TMP/err")
    RC=$?
    MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
    OUT=$(cat "$TMP/out" 2>/dev/null)
    HDR=$(tr -d '\r' <"$TMP/hdr" 2>/dev/null)
    ERR=$(cat "$TMP/err")
}
# get PATH [CURL-ARGS...] and post PATH JSON [CURL-ARGS...]: req on $URL.
get() {
    local p=$1
    shift
    req "$@" "$URL$p"
}
post() {
    local p=$1 b=$2
    shift 2
    req -H 'Content-Type: application/json' --data-binary "$b" "$@" "$URL$p"
}

# expect NAME CODE [BODY]: the last request got HTTP CODE (and exactly BODY).
expect() {
    if [ "$RC" != 0 ] || [ "$CODE" != "$2" ]; then
        fail "$1" "curl status $RC, HTTP $CODE, expected HTTP $2" "body: ${OUT:0:300}" \
            "curl: $ERR"
    elif [ $# -ge 3 ] && [ "$OUT" != "$3" ]; then
        fail "$1" "body:     ${OUT:0:300}" "expected: $3"
    else
        pass "$1"
    fi
}

# Bytes and lines of the last body.
bytes() { wc -c <"$TMP/out"; }
lines() { wc -l <"$TMP/out"; }
# The embeddings of the /api/embed answer in $TMP/out, one per line.
vectors() { sed -E 's/.*"embeddings":\[\[(.*)\]\].*/\1/' "$TMP/out" | sed 's/\],\[/\n/g'; }
# "LENGTH SUM-OF-SQUARES" of each embedding.
shapes() {
    vectors | awk -F, '{ s = 0; for (i = 1; i <= NF; i++) s += $i * $i
                         printf "%d %.6f\n", NF, s }'
}
# message.content of each line of $TMP/out (contents without " or \).
contents() { sed -E 's/.*"content":"([^"\\]*)".*/\1/' "$TMP/out"; }
# How many lines of $TMP/out, less the last N ($1, default 0), are not
# content lines of a streamed chat.
bad_lines() { head -n "-${1:-0}" "$TMP/out" | grep -Evc "$STREAM_LINE"; }
# is_json: $TMP/out is JSON (python3 only); is_ndjson: each line is.
is_json() {
    python3 -c 'import json,sys; json.load(open(sys.argv[1], encoding="utf-8"))' \
        "$TMP/out" 2>/dev/null
}
is_ndjson() {
    python3 -c 'import json,sys
for l in open(sys.argv[1], encoding="utf-8"): json.loads(l)' "$TMP/out" 2>/dev/null
}

CHAT_MSGS='[{"role":"system","content":"be brief"},{"role":"user","content":"first"},
 {"role":"assistant","content":"an answer"},
 {"role":"user","content":"Grüße aus Köln — ✓ ok"}]'
CHAT_REPLY='fake answer to: Grüße aus Köln — ✓ ok'
HEAD='"model":"fake-chat","created_at":"2026-01-01T00:00:00Z"'
STREAM_LINE='^\{'$HEAD',"message":\{"role":"assistant","content":"[^"\\]*"\},"done":false\}$'
DONE_LINE='{'$HEAD',"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}'

# ---------------------------------------------------------- command line
T="--help exits 0"
"$FAKE" --help >/dev/null 2>&1 && pass "$T" || fail "$T"
for args in "--mode nope" "--dim 0" "--port 70000" "--size x" "extra"; do
    T="fake_ollama $args exits 2"
    # shellcheck disable=SC2086
    "$FAKE" $args >/dev/null 2>&1
    st=$?
    [ $st = 2 ] && pass "$T" || fail "$T" "status $st"
done

# ---------------------------------------------------------- mode ok
start ok --dim 16
get /api/tags
expect "ok: GET /api/tags" 200
T="ok: tags lists fake-embed:latest and fake-chat:latest"
grep -q '"name":"fake-embed:latest"' <<<"$OUT" && grep -q '"name":"fake-chat:latest"' <<<"$OUT" &&
    pass "$T" || fail "$T" "$OUT"
T="ok: answers say Connection: close"
grep -qi '^Connection: close$' <<<"$HDR" && pass "$T" || fail "$T" "$HDR"
get /api/version
expect "ok: GET /api/version" 200 '{"version":"0.0.0-fake"}'

post /api/embed '{"model":"fake-embed","input":["one text","another text","a third one"]}'
expect "ok: embed a batch of 3" 200
T="ok: 3 unit vectors of dimension 16"
[ "$(shapes)" = $'16 1.000000\n16 1.000000\n16 1.000000' ] && pass "$T" || fail "$T" "$(shapes)"
T="ok: the embed answer is JSON"
[ $HAVE_PY = 0 ] || { is_json && pass "$T" || fail "$T" "$OUT"; }

post /api/embed '{"model":"m","input":["Hello world","hello, WORLD!","something else",""]}'
expect "ok: embed 4 texts" 200
mapfile -t V < <(vectors)
T="ok: case and punctuation do not change a vector"
[ "${V[0]}" = "${V[1]}" ] && pass "$T" || fail "$T" "${V[@]}"
T="ok: other words give another vector"
[ "${V[0]}" != "${V[2]}" ] && pass "$T" || fail "$T" "${V[@]}"
T="ok: the empty text gives [1,0,...]"
[ "${V[3]}" = "1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0" ] && pass "$T" || fail "$T" "${V[3]}"
post /api/embed '{"model":"m","input":"Hello world","truncate":true}'
expect "ok: embed one string" 200
T="ok: a vector depends on its text only"
[ "$(vectors)" = "${V[0]}" ] && pass "$T" || fail "$T" "$(vectors)" "${V[0]}"
post /api/embed '{"model":"m","input":[]}'
expect "ok: embed no input" 200
T="ok: no input, no vector"
grep -q '"embeddings":\[\]' <<<"$OUT" && pass "$T" || fail "$T" "$OUT"

post /api/chat "{\"model\":\"fake-chat\",\"messages\":$CHAT_MSGS,\"options\":{\"seed\":1}}"
expect "ok: chat, stream absent" 200
T="ok: streaming is NDJSON in chunked encoding"
grep -qi '^Content-Type: application/x-ndjson$' <<<"$HDR" &&
    grep -qi '^Transfer-Encoding: chunked$' <<<"$HDR" && pass "$T" || fail "$T" "$HDR"
n=$(lines)
T="ok: every line but the last is a content line"
[ "$(bad_lines 1)" = 0 ] && pass "$T" || fail "$T" "$OUT"
T="ok: the last line says done"
[ "$(tail -n 1 "$TMP/out")" = "$DONE_LINE" ] && pass "$T" || fail "$T" "$(tail -n 1 "$TMP/out")"
got=$(contents | head -n -1 | tr -d '\n')
T="ok: contents add up to the answer to the last user message"
[ "$got" = "$CHAT_REPLY" ] && pass "$T" || fail "$T" "got:      $got" "expected: $CHAT_REPLY"
bad=0
while IFS= read -r c; do
    [ ${#c} -ge 1 ] && [ ${#c} -le 4 ] && iconv -f UTF-8 -t UTF-8 <<<"$c" >/dev/null 2>&1 || bad=1
done < <(contents | head -n -1)
T="ok: chunks are 1 to 4 whole UTF-8 characters"
[ $bad = 0 ] && pass "$T" || fail "$T" "$(contents)"
T="ok: $n lines for a ${#CHAT_REPLY}-character answer"
[ "$n" = $(((${#CHAT_REPLY} + 3) / 4 + 1)) ] && pass "$T" || fail "$T" "$OUT"
T="ok: every streamed line is JSON"
[ $HAVE_PY = 0 ] || { is_ndjson && pass "$T" || fail "$T" "$OUT"; }

post /api/chat "{\"model\":\"fake-chat\",\"messages\":$CHAT_MSGS,\"stream\":true}" --raw
expect "ok: chat, raw chunked framing" 200
T="ok: one HTTP chunk per line, then the end chunk"
[[ $(head -n 1 "$TMP/out") =~ ^[0-9a-f]+$'\r'$ ]] &&
    [ "$(tail -c 5 "$TMP/out" | od -An -c | tr -d ' ')" = '0\r\n\r\n' ] &&
    [ "$(grep -Ec $'^[0-9a-f]+\r$' "$TMP/out")" = $((n + 1)) ] &&
    pass "$T" || fail "$T" "$(head -c 300 "$TMP/out")"

post /api/chat '{"model":"fake-chat","messages":[{"role":"user","content":"hi"}],"stream":false}'
want='{'$HEAD',"message":{"role":"assistant","content":"fake answer to: hi"},'
expect "ok: chat, stream false" 200 "$want"'"done":true,"done_reason":"stop"}'
T="ok: a whole answer has a Content-Length"
grep -qi '^Content-Length: [0-9]' <<<"$HDR" && pass "$T" || fail "$T" "$HDR"

get /api/nothing
expect "ok: unknown path" 404 '{"error":"not found"}'
get /api/embed
expect "ok: GET on a POST path" 404 '{"error":"not found"}'
post /api/embed '{"model":"m","input":['
expect "ok: bad JSON" 400 '{"error":"invalid JSON body"}'
post /api/embed '{"model":"m"}'
expect "ok: embed without input" 400 '{"error":"input must be a string or an array of strings"}'
post /api/chat '{"model":"m","messages":[],"stream":"yes"}'
expect "ok: stream not a boolean" 400 '{"error":"stream must be a boolean"}'
post /api/embed '{"model":"m","input":"x"}' -H 'Transfer-Encoding: chunked'
expect "ok: chunked request body" 411

# Expect: 100-continue must be answered at once (else curl waits 20 s).
big=$(printf 'word%d ' $(seq 400))
post /api/embed "{\"model\":\"m\",\"input\":\"$big\"}" -H 'Expect: 100-continue' \
    --expect100-timeout 20 -v
expect "ok: a body sent after 100 Continue" 200
T="ok: 100 Continue came at once"
grep -q '^< HTTP/1.1 100 Continue' <<<"$ERR" && [ "$MS" -lt 5000 ] && pass "$T" ||
    fail "$T" "took $MS ms" "$(head -20 <<<"$ERR")"

# A request in several TCP segments.
body='{"model":"m","input":["split","request"]}'
exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
printf 'POST /api/em' >&"$fd"
sleep 0.1
printf 'bed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Len' >&"$fd"
sleep 0.1
printf 'gth: %d\r\n\r\n%s' ${#body} "${body:0:20}" >&"$fd"
sleep 0.1
printf '%s' "${body:20}" >&"$fd"
resp=$(timeout 5 cat <&"$fd" | tr -d '\r')
exec {fd}>&-
T="ok: a request in pieces"
[[ $resp == 'HTTP/1.1 200 OK'* ]] && grep -q '"embeddings":\[\[.*\],\[.*\]\]' <<<"$resp" &&
    pass "$T" || fail "$T" "$resp"

# A body over 64 MiB is refused before it is sent.
exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
printf 'POST /api/embed HTTP/1.1\r\nHost: x\r\nContent-Length: 67108865\r\n' >&"$fd"
printf 'Expect: 100-continue\r\n\r\n' >&"$fd"
IFS= read -r -t 5 line <&"$fd"
exec {fd}>&-
T="ok: 413 for a body over 64 MiB"
[[ $line == 'HTTP/1.1 413 '* ]] && pass "$T" || fail "$T" "$line"

want='GET /api/tags n_inputs=0 stream=0
GET /api/version n_inputs=0 stream=0
POST /api/embed n_inputs=3 stream=0
POST /api/embed n_inputs=4 stream=0
POST /api/embed n_inputs=1 stream=0
POST /api/embed n_inputs=0 stream=0
POST /api/chat n_inputs=0 stream=1
POST /api/chat n_inputs=0 stream=1
POST /api/chat n_inputs=0 stream=0
GET /api/nothing n_inputs=0 stream=0
GET /api/embed n_inputs=0 stream=0
POST /api/embed n_inputs=0 stream=0
POST /api/embed n_inputs=0 stream=0
POST /api/chat n_inputs=0 stream=0
POST /api/embed n_inputs=0 stream=0
POST /api/embed n_inputs=1 stream=0
POST /api/embed n_inputs=2 stream=0
POST /api/embed n_inputs=0 stream=0'
T="ok: --log has one line per request"
[ "$(cat "$LOG")" = "$want" ] && pass "$T" || fail "$T" "log:" "$(cat "$LOG")"
stop

# ------------------------------------------- read timeout, --max-requests
start idle --read-timeout-ms 300 --max-requests 1
exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" # connects, sends nothing
get /api/tags
expect "idle: a silent client does not block the next one" 200
T="idle: ... for longer than the read timeout"
[ "$MS" -lt 3000 ] && pass "$T" || fail "$T" "took $MS ms"
exec {fd}>&-
wait_exit "idle: exits 0 after --max-requests 1"
T="idle: the silent connection is not a request"
[ "$(cat "$LOG")" = 'GET /api/tags n_inputs=0 stream=0' ] && pass "$T" || fail "$T" "$(cat "$LOG")"

# ---------------------------------------------------------- --fail-first
start failfirst --fail-first 2
for i in 1 2; do
    post /api/embed '{"model":"m","input":["a","b"]}'
    expect "fail-first: request $i is busy" 503 '{"error":"busy"}'
done
post /api/embed '{"model":"m","input":["a","b"]}'
expect "fail-first: request 3 is answered" 200
T="fail-first: 3 requests logged"
[ "$(cat "$LOG")" = "$(printf 'POST /api/embed n_inputs=2 stream=0\n%.0s' 1 2 3)" ] &&
    pass "$T" || fail "$T" "$(cat "$LOG")"
stop INT

# ---------------------------------------------------------- fault modes
start slow --mode slow --delay-ms 800
MAXT=0.3 post /api/embed '{"model":"m","input":"x"}'
T="slow: the client times out"
[ "$RC" = 28 ] && pass "$T" || fail "$T" "curl status $RC, HTTP $CODE, $MS ms"
post /api/embed '{"model":"m","input":"x"}'
expect "slow: a patient client is answered" 200
T="slow: ... after the delay"
[ "$MS" -ge 750 ] && [ "$MS" -lt 5000 ] && pass "$T" || fail "$T" "took $MS ms"
stop

start drop --mode drop
post /api/embed '{"model":"m","input":"x"}'
T="drop: no answer at all"
[ "$RC" = 52 ] && pass "$T" || fail "$T" "curl status $RC, HTTP $CODE: $ERR"
T="drop: the request was read"
[ "$(cat "$LOG")" = 'POST /api/embed n_inputs=1 stream=0' ] && pass "$T" ||
    fail "$T" "$(cat "$LOG")"
stop

start http500 --mode http500
post /api/chat '{"model":"m","messages":[{"role":"user","content":"q"}]}'
expect "http500: chat" 500 '{"error":"internal error"}'
get /api/tags
expect "http500: tags" 500 '{"error":"internal error"}'
stop

start malformed --mode malformed
post /api/embed '{"model":"m","input":["x","y"]}'
expect "malformed: embed is 200" 200
T="malformed: embed body is cut short"
[[ $OUT == '{"model":"m","embeddings":['* && $OUT != *'}' ]] && pass "$T" || fail "$T" "$OUT"
T="malformed: embed body is not JSON"
[ $HAVE_PY = 0 ] || { ! is_json && pass "$T" || fail "$T" "$OUT"; }
post /api/chat '{"model":"fake-chat","messages":[{"role":"user","content":"q"}],"stream":false}'
expect "malformed: chat is 200" 200
T="malformed: chat body is not JSON"
[ $HAVE_PY = 0 ] || { ! is_json && pass "$T" || fail "$T" "$OUT"; }
post /api/chat '{"model":"fake-chat","messages":[{"role":"user","content":"a question"}]}'
expect "malformed: streamed chat is 200" 200
T="malformed: line 2 of the stream is garbage, the others are fine"
[[ $(sed -n 2p "$TMP/out") != '{'* ]] &&
    [ "$(sed 2d "$TMP/out" | head -n -1 | grep -Evc "$STREAM_LINE")" = 0 ] &&
    [ "$(tail -n 1 "$TMP/out")" = "$DONE_LINE" ] && pass "$T" || fail "$T" "$OUT"
stop

for size in 1000000 1000001; do
    start "oversized-$size" --mode oversized --size $size
    post /api/embed '{"model":"m","input":["x","y"]}'
    expect "oversized $size: embed is 200" 200
    T="oversized $size: embed body has $size bytes of zeros"
    [ "$(bytes)" = $size ] && [[ $OUT == '{"model":"m","embeddings":[[0,0,0,'* ]] &&
        [[ $OUT == *',0,0]]}' || $OUT == *',0,10]]}' ]] && pass "$T" ||
        fail "$T" "$(bytes) bytes: ${OUT:0:60}...${OUT: -20}"
    T="oversized $size: embed body is JSON"
    [ $HAVE_PY = 0 ] || { is_json && pass "$T" || fail "$T"; }
    post /api/chat '{"model":"fake-chat","messages":[{"role":"user","content":"q"}],"stream":false}'
    T="oversized $size: chat body has $size bytes"
    [ "$CODE" = 200 ] && [ "$(bytes)" = $size ] && pass "$T" ||
        fail "$T" "HTTP $CODE, $(bytes) bytes"
    T="oversized $size: chat body is JSON"
    [ $HAVE_PY = 0 ] || { is_json && pass "$T" || fail "$T"; }
    post /api/chat '{"model":"fake-chat","messages":[{"role":"user","content":"q"}]}'
    T="oversized $size: streamed chat is one line of $size bytes"
    [ "$CODE" = 200 ] && [ "$(bytes)" = $size ] && [ "$(lines)" = 1 ] &&
        [[ $OUT == *'"done":true,"done_reason":"stop"}' ]] && pass "$T" ||
        fail "$T" "HTTP $CODE, $(bytes) bytes"
    T="oversized $size: the line is JSON"
    [ $HAVE_PY = 0 ] || { is_ndjson && pass "$T" || fail "$T"; }
    stop
done

start wrongdim --mode wrongdim --dim 8
post /api/embed '{"model":"m","input":["a","b","c","d"]}'
expect "wrongdim: embed is 200" 200
T="wrongdim: every other vector has D+1 numbers"
[ "$(shapes)" = $'8 1.000000\n9 1.000000\n8 1.000000\n9 1.000000' ] && pass "$T" ||
    fail "$T" "$(shapes)"
stop

start halfstream --mode halfstream
post /api/chat '{"model":"fake-chat","messages":[{"role":"user","content":"a long question"}]}'
T="halfstream: the stream breaks off"
[ "$RC" = 18 ] && pass "$T" || fail "$T" "curl status $RC: $ERR"
T="halfstream: after two content lines"
[ "$(lines)" = 2 ] && [ "$(bad_lines)" = 0 ] && pass "$T" || fail "$T" "$OUT"
post /api/embed '{"model":"m","input":"x"}'
T="halfstream: a whole answer breaks off too"
[ "$RC" = 18 ] && pass "$T" || fail "$T" "curl status $RC: $ERR"
stop

# One write per line: with --chunk-delay-ms the lines arrive apart.
start delay --chunk-delay-ms 150 --reply 'abcdefghijklmnopqrst'
times=$(curl -sSN --max-time 10 -d '{"model":"fake-chat","messages":[]}' "$URL/api/chat" |
    while IFS= read -r l; do echo "${EPOCHREALTIME/./} $l"; done)
first=$(head -n 1 <<<"$times" | cut -d' ' -f1)
last=$(tail -n 1 <<<"$times" | cut -d' ' -f1)
got=$(cut -d' ' -f2- <<<"$times" | sed -E 's/.*"content":"([^"\\]*)".*/\1/' | tr -d '\n')
T="chunk-delay: --reply is streamed in 6 lines"
[ "$got" = abcdefghijklmnopqrst ] && [ "$(wc -l <<<"$times")" = 6 ] && pass "$T" ||
    fail "$T" "$times"
T="chunk-delay: the lines arrive over >= 600 ms"
[ $(((last - first) / 1000)) -ge 600 ] && pass "$T" || fail "$T" "$(((last - first) / 1000)) ms"
stop

# Every mode and request kind, ending by --max-requests: a normal exit,
# so that under ASan the leak checker runs (SIGTERM exits at once).
for mode in ok slow drop http500 malformed oversized wrongdim halfstream; do
    start "exit-$mode" --mode "$mode" --max-requests 8 --delay-ms 10 --size 100000 \
        --fail-first 1
    get /api/tags
    get /api/tags
    get /
    post /api/embed '{"model":"m","input":["a","b","c"]}'
    post /api/chat '{"model":"m","messages":[{"role":"user","content":"long enough question"}]}'
    post /api/chat '{"model":"m","messages":[{"role":"user","content":"q"}],"stream":false}'
    post /api/embed '{"model":'
    get /nothing
    wait_exit "exit-$mode: exits 0 after --max-requests 8"
done

finish

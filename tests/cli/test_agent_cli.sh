#!/usr/bin/env bash
# test_agent_cli.sh - end-to-end test of `sop load`, `sop ask` and
# `sop chat`: loading the shipped fallback files, load errors naming the
# record, offline answers as text and as JSON, the rebuild of a deleted or
# corrupted database, a chat fed by a pipe, and a required LLM server that
# does not answer. Every agent runs offline (--offline) or against a port
# where nothing listens: no Ollama server is needed.
# Usage: tests/cli/test_agent_cli.sh /path/to/sop
# Prints a PASS or FAIL line per check; exits 1 if any check failed.
# JSON is checked with python3, or jq when there is no python3.
# shellcheck disable=SC2015
set -u

SOP=${1:?usage: test_agent_cli.sh /path/to/sop}
NAME=agent-cli
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
DATA=$SRC/datasets
CONFIG=$DATA/agents/pipeline.json
DB="$TMP/db"
Q="my tummy hurts and I feel hot"
# The records of a shipped file: one line each starts with {"id": ...
records() { grep -c '^ *{"id"' "$1"; }
NURSE=$(records "$DATA/nurse.json")
DOCTOR=$(records "$DATA/doctor.json")

# json_answer_ok QUESTION [ONLINE]: stdout ($OUT) is one JSON object, the
# answer of QUESTION, with the keys of sop_answer_json(), a condition, and
# "online" ONLINE (default false).
json_answer_ok() {
    local online=${2:-false}
    if command -v python3 >/dev/null; then
        python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert isinstance(d, dict), "not an object"
for k in ("query", "clinical_terms", "conditions", "answer", "online"):
    assert k in d, "no key " + k
assert d["query"] == sys.argv[1], "query " + repr(d["query"])
assert isinstance(d["clinical_terms"], list) and d["clinical_terms"], "no clinical terms"
assert isinstance(d["conditions"], list) and d["conditions"], "no condition"
for c in d["conditions"]:
    for k in ("id", "name", "category", "score", "evidence", "seek_care"):
        assert k in c, "a condition without " + k
    assert isinstance(c["evidence"], list) and 0 <= c["score"] <= 1
assert isinstance(d["answer"], str) and d["answer"], "no answer"
assert d["online"] is (sys.argv[2] == "true"), "online " + repr(d["online"])
' "$1" "$online" <<<"$OUT"
    elif command -v jq >/dev/null; then
        jq -e --arg q "$1" --argjson on "$online" '.query == $q and (.clinical_terms | length > 0)
            and (.conditions | length > 0) and (.answer | length > 0) and .online == $on
            and all(.conditions[]; has("id") and has("name") and has("category")
                and has("score") and has("evidence") and has("seek_care"))' <<<"$OUT" >/dev/null
    else
        echo "neither python3 nor jq: cannot parse JSON" >&2
        return 1
    fi
}

# ---------------------------------------------------------------- help
for c in load ask chat; do
    run $c --help
    if [ "$RC" = 0 ] && grep -q "^Usage: sop $c" <<<"$OUT"; then pass "$c --help"; else
        fail "$c --help" "rc=$RC out=$OUT err=$ERR"; fi
done
run --help
grep -q '^  load ' <<<"$OUT" && grep -q '^  ask ' <<<"$OUT" && grep -q '^  chat ' <<<"$OUT" &&
    pass "sop --help lists load, ask and chat" || fail "sop --help lists load, ask, chat" "$OUT"

# ---------------------------------------------------------------- usage errors
run load "$DB"
check_err "load without a file" 2 'missing arguments'
run load "$DB" "$DATA/nurse.json" --batch 0
check_err "load --batch 0" 2 '--batch must be'
run ask "$DB"
check_err "ask without a question" 2 'missing arguments'
run ask "$DB" ""
check_err "ask an empty question" 2 'empty question'
run ask "$DB" "$Q" --offline --ollama http://127.0.0.1:9
check_err "--offline with --ollama" 2 'exclude each other'
run ask "$DB" "$Q" --ollama ftp://127.0.0.1:9
check_err "--ollama ftp://" 2 'http://'
run chat "$DB" extra
check_err "chat with two arguments" 2 'too many arguments'
[ ! -e "$DB" ] && pass "usage errors create nothing" || fail "usage errors create nothing"

# ---------------------------------------------------------------- load
run load "$DB" "$TMP/nope.json"
check_err "load a missing file" 1 '^sop: load: .*nope\.json: No such file'
[ ! -e "$DB" ] && pass "a missing file creates no database" ||
    fail "a missing file creates no database"
run load "$DB" "$DATA/nurse.json"
if [ "$RC" = 0 ] && [[ "$OUT" =~ ^loaded\ $NURSE\ records\ into\ knowledge\ base\ nurse\ \($NURSE\ embedded\)\ in\ [0-9.]+\ s$ ]]
then pass "load nurse.json: $NURSE records"; else fail "load nurse.json" "rc=$RC" "$OUT" "$ERR"; fi
run load "$DB" "$DATA/doctor.json"
if [ "$RC" = 0 ] && [[ "$OUT" == "loaded $DOCTOR records into knowledge base doctor ($DOCTOR embedded) in "* ]]
then pass "load doctor.json: $DOCTOR records"; else fail "load doctor.json" "rc=$RC" "$OUT" "$ERR"; fi
[ -z "$ERR" ] && pass "no progress bar when stderr is not a terminal" ||
    fail "no progress bar when stderr is not a terminal" "$ERR"
count() { # the items of store $2 of database $1, from sop stats
    "$SOP" stats "$1" | awk -v s="$2" '$1 == "store" && $2 == s { print $3 }'
}
n1=$(count "$DB" nurse.kb)
run load "$DB" "$DATA/nurse.json" --batch 100
check "load again in batches of 100: an upsert" 0
[ "$(count "$DB" nurse.kb)" = "$n1" ] && pass "a second load adds no record" ||
    fail "a second load adds no record" "$n1 -> $(count "$DB" nurse.kb)"
run load "$DB" "$DATA/nurse.json" --name phrases --replace
[[ "$OUT" == "loaded $NURSE records into knowledge base phrases ("* ]] &&
    pass "--name --replace" || fail "--name --replace" "rc=$RC" "$OUT" "$ERR"

cat >"$TMP/bad.json" <<'EOF'
{"format": "sop-fallback", "version": 1, "name": "bad",
 "records": [
  {"id": "r1", "text": "a first record"},
  {"id": "r2", "txt": "a typo in the key"},
  {"id": "r3", "text": "a third record"}
 ]}
EOF
run load "$DB" "$TMP/bad.json"
check_err "a bad record: exit 1, the message names it" 1 \
    '^sop: load: .*bad\.json: record 2 \(id "r2"\): no "text"'
run load "$DB" "$TMP/bad.json" --batch 1
check_err "--batch 1: the batch before the bad record is committed" 1 \
    'records 1\.\.1 were committed into knowledge base bad'
head -c 400 "$DATA/nurse.json" >"$TMP/truncated.json"
run load "$DB" "$TMP/truncated.json"
check_err "a truncated file names the record" 1 'truncated\.json: record [0-9]+: the file ends'
printf '{"format": "sop-fallback", "version": 1, "records": [{"id": "a", "text": "b"}]}' \
    >"$TMP/noname.json"
run load "$DB" "$TMP/noname.json"
check_err "a file without a name needs --name" 1 'names no knowledge base.*--name'
printf 'not json' >"$TMP/garbage.json"
run load "$DB" "$TMP/garbage.json"
check_err "not a fallback file" 1 'garbage\.json: '
run check "$DB"
check "the database is clean after the failed loads" 0 "ok"

# ---------------------------------------------------------------- ask
ADB="$TMP/agent"
run ask "$ADB" "$Q" --offline --json --config "$CONFIG"
if [ "$RC" = 0 ] && [ "$(wc -l <<<"$OUT")" = 1 ] && json_answer_ok "$Q"; then
    pass "ask --offline --json: one JSON object with the keys and a condition"
else fail "ask --offline --json" "rc=$RC" "stdout: $OUT" "stderr: $ERR"; fi
run ask "$ADB" "$Q" --offline --config "$CONFIG"
if [ "$RC" = 0 ] && grep -q '^clinical terms: ' <<<"$OUT" && grep -q '^conditions:$' <<<"$OUT" &&
    grep -q '^  1\. .*score [01]\.[0-9][0-9]$' <<<"$OUT" && grep -q '^     evidence: ' <<<"$OUT"
then pass "ask --offline: the answer, terms, conditions with score and evidence"
else fail "ask --offline (text)" "rc=$RC" "stdout: $OUT" "stderr: $ERR"; fi
[ -z "$ERR" ] && pass "an intact database: no notice" || fail "an intact database: no notice" "$ERR"
run ask "$ADB" "$Q" --offline --config "$TMP/nope.json"
check_err "a missing configuration is named" 1 '^sop: ask: .*nope\.json'
OUT=$(SOP_AGENT_CONFIG="$TMP/env.json" "$SOP" ask "$ADB" "$Q" --offline 2>"$TMP/stderr"); RC=$?
ERR=$(cat "$TMP/stderr")
check_err "\$SOP_AGENT_CONFIG names the configuration" 1 'env\.json'
OUT=$(cd "$SRC" && "$SOP" ask "$ADB" "$Q" --offline --json 2>"$TMP/stderr"); RC=$?
ERR=$(cat "$TMP/stderr")
[ "$RC" = 0 ] && json_answer_ok "$Q" && pass "the default configuration (./datasets/agents)" ||
    fail "the default configuration" "rc=$RC" "$OUT" "$ERR"
run ask "$ADB" "$Q" --config "$CONFIG" --ollama http://127.0.0.1:9
check_err "--ollama: a server that does not answer fails clearly" 1 \
    '^sop: ask: opening the agent .*127\.0\.0\.1:9'
run ask "$ADB" "$Q" --config "$CONFIG" --ollama 127.0.0.1:9
check_err "--ollama host:port means http://host:port" 1 'http://127\.0\.0\.1:9'

# ---------------------------------------------------------------- rebuilds
rm -rf "$ADB"
run ask "$ADB" "$Q" --offline --json --config "$CONFIG"
if [ "$RC" = 0 ] && json_answer_ok "$Q"; then pass "a deleted database: rebuilt, answered"
else fail "a deleted database: answered" "rc=$RC" "$OUT" "$ERR"; fi
check_err "a deleted database: the rebuild is said on stderr" 0 '^sop: ask: .*(rebuil|load)'
seg=$(find "$ADB" -maxdepth 1 -name 'seg-*' | head -1)
if [ -n "$seg" ]; then
    size=$(stat -c %s "$seg")
    yes 'garbage!' | head -c "$size" >"$seg"
    run ask "$ADB" "$Q" --offline --json --config "$CONFIG"
    if [ "$RC" = 0 ] && json_answer_ok "$Q"; then pass "a corrupted database: rebuilt, answered"
    else fail "a corrupted database: answered" "rc=$RC" "$OUT" "$ERR"; fi
    check_err "a corrupted database: the rebuild is said on stderr" 0 '^sop: ask: .*rebuil'
    ls -d "$ADB".damaged-* >/dev/null 2>&1 && pass "the damaged database is kept aside" ||
        fail "the damaged database is kept aside" "$(ls "$TMP")"
    run check "$ADB"
    check "the rebuilt database is clean" 0 "ok"
else
    fail "a corrupted database" "no seg-* file in $ADB: $(ls "$ADB")"
fi

# ---------------------------------------------------------------- chat
OUT=$(printf '%s\n' "$Q" "I've got the runs and I keep being sick" |
    "$SOP" chat "$ADB" --offline --config "$CONFIG" 2>"$TMP/stderr"); RC=$?
ERR=$(cat "$TMP/stderr")
if [ "$RC" = 0 ] && [ "$(grep -c '^you> ' <<<"$OUT")" = 2 ] &&
    [ "$(grep -c '^conditions: ' <<<"$OUT")" = 2 ]; then
    pass "chat: two piped questions, two answers"
else fail "chat: two piped questions" "rc=$RC" "stdout: $OUT" "stderr: $ERR"; fi
OUT=$(printf '/help\n%s\n/quit\n%s\n' "$Q" "never asked" |
    "$SOP" chat "$ADB" --offline --config "$CONFIG" 2>"$TMP/stderr"); RC=$?
if [ "$RC" = 0 ] && grep -q '/quit' <<<"$OUT" && [ "$(grep -c '^you> ' <<<"$OUT")" = 1 ]; then
    pass "chat: /help, then /quit ends"
else fail "chat: /help and /quit" "rc=$RC" "stdout: $OUT"; fi
OUT=$(printf '%s\n\n%s\n' "$Q" "never asked" |
    "$SOP" chat "$ADB" --offline --config "$CONFIG" 2>"$TMP/stderr"); RC=$?
[ "$RC" = 0 ] && [ "$(grep -c '^you> ' <<<"$OUT")" = 1 ] && pass "chat: an empty line ends" ||
    fail "chat: an empty line ends" "rc=$RC" "stdout: $OUT"
OUT=$("$SOP" chat "$ADB" --offline --config "$CONFIG" </dev/null 2>"$TMP/stderr"); RC=$?
[ "$RC" = 0 ] && [ -z "$OUT" ] && pass "chat: no input, no answer" ||
    fail "chat: no input" "rc=$RC" "stdout: $OUT"

run check "$ADB"
check "the agent's database is clean after the chats" 0 "ok"
# a knowledge base record removed behind its indexes' back
cp -r "$ADB" "$TMP/adb-bad"
ID=$("$SOP" kv scan "$ADB" nurse.kb | sed -n 2p | cut -f1)
run kv del "$TMP/adb-bad" nurse.kb "$ID"
check "kv del of a knowledge base's record" 0 ""
run check "$TMP/adb-bad"
if [ "$RC" = 1 ] &&
    grep -q "^knowledge base nurse: its text index holds document '$ID', which is not a record\$" <<<"$OUT" &&
    grep -q "^knowledge base nurse: its vector store holds '$ID', which is not a record\$" <<<"$OUT" &&
    grep -Eq '^[0-9]+ problems$' <<<"$(tail -n 1 <<<"$OUT")"; then
    pass "check reports a knowledge base whose stores disagree"
else fail "check reports a knowledge base whose stores disagree" "rc=$RC" "$OUT" "$ERR"; fi

# ---------------------------------------------------------------- a language model
# The fake Ollama server of the tests (tests/support/fake_ollama.c, from
# ctest through $SOP_FAKE_OLLAMA) answers every chat with REPLY, streamed a
# few characters a line: the nurse reads it as clinical terms, the doctor's
# answer is REPLY.
FAKE=${SOP_FAKE_OLLAMA:-}
FAKE_PIDS=()
cleanup() {
    local p
    for p in "${FAKE_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
REPLY_TEXT="abdominal pain, fever"
fake_start() { # NAME OPTIONS...: starts a fake, sets URL
    local name=$1 i
    shift
    "$FAKE" --port-file "$TMP/$name.port" --log "$TMP/$name.log" --reply "$REPLY_TEXT" "$@" \
        2>"$TMP/$name.err" &
    FAKE_PIDS+=($!)
    for ((i = 0; i < 100; i++)); do
        [ -s "$TMP/$name.port" ] && break
        sleep 0.05
    done
    URL=http://127.0.0.1:$(cat "$TMP/$name.port" 2>/dev/null)
}
if [ -n "$FAKE" ] && [ -x "$FAKE" ]; then
    fake_start llm --chunk-delay-ms 2
    run ask "$ADB" "$Q" --config "$CONFIG" --ollama "$URL"
    if [ "$RC" = 0 ] && [ "$(head -1 <<<"$OUT")" = "$REPLY_TEXT" ] &&
        grep -q '^conditions:$' <<<"$OUT" && grep -q 'stream=1' "$TMP/llm.log"; then
        pass "ask --ollama: the model's answer streamed, then the conditions"
    else fail "ask --ollama" "rc=$RC" "stdout: $OUT" "stderr: $ERR" "$(cat "$TMP/llm.log")"; fi
    run ask "$ADB" "$Q" --config "$CONFIG" --ollama "$URL" --json
    if [ "$RC" = 0 ] && json_answer_ok "$Q" true; then pass "ask --ollama --json: online true"
    else fail "ask --ollama --json" "rc=$RC" "stdout: $OUT" "stderr: $ERR"; fi
    # the server answers the health check and the first question (the
    # nurse's chat and the doctor's), then is gone
    fake_start gone --max-requests 3
    OUT=$(printf '%s\n' "$Q" "I've got the runs" |
        "$SOP" chat "$ADB" --config "$CONFIG" --ollama "$URL" 2>"$TMP/stderr"); RC=$?
    ERR=$(cat "$TMP/stderr")
    if [ "$RC" = 1 ] && [ "$(grep -c '^you> ' <<<"$OUT")" = 2 ] &&
        [ "$(grep -c "^$REPLY_TEXT\$" <<<"$OUT")" = 1 ] &&
        grep -q '^sop: chat: asking the agent: ' <<<"$ERR"; then
        pass "chat: a question the model fails prints its error, the chat goes on, exit 1"
    else fail "chat with a model that goes away" "rc=$RC" "stdout: $OUT" "stderr: $ERR"; fi
else
    echo "SKIP: the language-model checks (no \$SOP_FAKE_OLLAMA: run through ctest)"
fi

finish

#!/usr/bin/env bash
# test_search_cli.sh - end-to-end test of `sop search`: indexing JSON Lines,
# queries (-q, TSV, TREC), statistics, errors naming the line, atomicity of
# a failed load, --batch, index options, del and drop.
# Usage: tests/cli/test_search_cli.sh /path/to/sop
# Prints a PASS or FAIL line per check; exits 1 if any check failed.
# The expected scores are BM25 as search.h defines it (k1 1.2, b 0.75,
# IDF ln((N - n + 0.5) / (n + 0.5)) floored at 1e-6), worked out by hand
# for the corpus below (N 5, avgdl 14 / 5 = 2.8).
# shellcheck disable=SC2015
set -u

SOP=${1:?usage: test_search_cli.sh /path/to/sop}
NAME=search-cli
# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"
DB="$TMP/db"

# Terms after stop words and stemming: d1 quick brown fox (3), d2 fox jump
# over lazi dog (5), d3 dog cat (2), d4 cat dog (2), d5 brown bread (2).
cat >"$TMP/corpus.jsonl" <<'EOF'
{"id": "d1", "text": "The quick brown fox"}
{"id": "d2", "text": "Foxes jump over the lazy dog", "lang": "en"}

{"id": "d3", "text": "a dog and a cat"}
{"id": "d4", "text": "Cats and dogs"}
{"id": "d5", "text": "brown bread"}
EOF
printf 'q1\tfox\nq2\tlazy cats\n\nq3\tnothing matches\n' >"$TMP/queries.tsv"

# ---------------------------------------------------------------- help
for c in "search" "search index" "search query" "search stats" "search del" "search drop"; do
    # shellcheck disable=SC2086
    run $c --help
    if [ "$RC" = 0 ] && grep -q '^Usage: sop search' <<<"$OUT"; then pass "$c --help"; else
        fail "$c --help" "rc=$RC out=$OUT err=$ERR"; fi
done
run --help
grep -q '^  search ' <<<"$OUT" && pass "sop --help lists search" ||
    fail "sop --help lists search" "$OUT"
run search index --help
grep -q 'nothing is indexed' <<<"$OUT" && grep -q -- '--batch N' <<<"$OUT" &&
    pass "index --help documents the transaction" || fail "index --help" "$OUT"

# ---------------------------------------------------------------- usage errors
run search index "$DB" idx
check_err "index without a corpus" 2 'missing arguments'
run search query "$DB" idx
check_err "query without queries" 2 'missing arguments'
run search query "$DB" idx "$TMP/queries.tsv" -q fox
check_err "query with -q and a file" 2 'exclude each other'
run search query "$DB" idx -q fox --trec
check_err "-q with --trec" 2 'trec'
run search query "$DB" idx -q fox -k 0
check_err "-k 0" 2 '^sop: search query: -k must be 1\.\.10000'
run search query "$DB" idx -q fox --b 1.5
check_err "--b 1.5" 2 '--b must be'
run search index "$DB" idx "$TMP/corpus.jsonl" --batch x
check_err "--batch x" 2 '--batch must be'
run search index "$DB" idx "$TMP/nope.jsonl"
check_err "missing corpus file" 1 'nope.jsonl: No such file'
[ ! -e "$DB" ] && pass "usage errors create nothing" || fail "usage errors create nothing"

# ---------------------------------------------------------------- index, stats
run search index "$DB" idx "$TMP/corpus.jsonl"
check "index a corpus" 0 "indexed 5 documents into idx: 5 new, 0 replaced"
run search stats "$DB" idx
check "stats" 0 "docs 5${NL}total_len 14${NL}terms 9${NL}avgdl 2.8"
run search stats "$DB" idx --json
check "stats --json" 0 '{"docs":5,"total_len":14,"terms":9,"avgdl":2.8}'

# ---------------------------------------------------------------- query
run search query "$DB" idx -q fox
check "-q fox: rank score id" 0 "1 0.326919 d1${NL}2 0.254628 d2"
run search query "$DB" idx -q "brown FOX"
check "-q with two terms, folded" 0 "1 0.653839 d1${NL}2 0.381005 d5${NL}3 0.254628 d2"
run search query "$DB" idx -q "foxes" -k 1
check "-k 1, stemmed query" 0 "1 0.326919 d1"
run search query "$DB" idx -q cat
check "equal scores in id order" 0 "1 0.381005 d3${NL}2 0.381005 d4"
run search query "$DB" idx -q dog
check "IDF floored at 1e-6" 0 "1 0.000001 d3${NL}2 0.000001 d4${NL}3 0.000001 d2"
run search query "$DB" idx -q fox --k1 2 --b 0
check "--k1 --b" 0 "1 0.336472 d1${NL}2 0.336472 d2"
run search query "$DB" idx -q "the and"
check "a query of stop words finds nothing" 0 ""
run search query "$DB" idx "$TMP/queries.tsv"
check "TSV queries" 0 "$(printf '%s\n' "q1 1 0.326919 d1" "q1 2 0.254628 d2" \
    "q2 1 0.831382 d2" "q2 2 0.381005 d3" "q2 3 0.381005 d4")"
run search query "$DB" idx "$TMP/queries.tsv" -k 1000 --trec
check "TREC run" 0 "$(printf '%s\n' "q1 Q0 d1 1 0.326919 sop" "q1 Q0 d2 2 0.254628 sop" \
    "q2 Q0 d2 1 0.831382 sop" "q2 Q0 d3 2 0.381005 sop" "q2 Q0 d4 3 0.381005 sop")"
run search query "$DB" idx "$TMP/queries.tsv" -k 1 --trec --tag bm25
check "TREC run, -k 1 --tag" 0 "q1 Q0 d1 1 0.326919 bm25${NL}q2 Q0 d2 1 0.831382 bm25"
OUT=$(printf 'q9\tbread\n' | "$SOP" search query "$DB" idx - --trec 2>"$TMP/stderr"); RC=$?
ERR=$(cat "$TMP/stderr")
check "queries from stdin" 0 "q9 Q0 d5 1 1.244017 sop"
printf 'q1\tfox\nno tab here\n' >"$TMP/badq.tsv"
run search query "$DB" idx "$TMP/badq.tsv"
check_err "a TSV line without a tab" 1 'badq.tsv: line 2: no tab'
run search query "$DB" nope -q fox
check_err "query of an unknown index" 1 "no text index 'nope'"
run search stats "$DB" nope
check_err "stats of an unknown index" 1 "no text index 'nope'"
run search query "$TMP/nodb" idx -q fox
check_err "query of a missing database" 1 '^sop: search query: '
[ ! -e "$TMP/nodb" ] && pass "a query does not create a database" ||
    fail "a query does not create a database"

# ---------------------------------------------------------------- replacing
run search index "$DB" idx "$TMP/corpus.jsonl"
check "indexing again replaces" 0 "indexed 5 documents into idx: 0 new, 5 replaced"
run search stats "$DB" idx
check "statistics unchanged by a re-index" 0 "docs 5${NL}total_len 14${NL}terms 9${NL}avgdl 2.8"
printf '%s\n' '{"id":"a","text":"alpha"}' '{"id":"b","text":"beta"}' \
    '{"id":"a","text":"gamma"}' >"$TMP/dup.jsonl"
run search index "$DB" dup "$TMP/dup.jsonl"
check "a repeated id: the later line replaces" 0 "indexed 3 documents into dup: 2 new, 1 replaced"
run search query "$DB" dup -q "alpha"
check "the replaced text is gone" 0 ""
run search query "$DB" dup -q "gamma"
if [ "$RC" = 0 ] && [[ "$OUT" == "1 "*" a" ]]; then pass "the later text is indexed"; else
    fail "the later text is indexed" "$OUT" "$ERR"; fi
run search stats "$DB" dup
check "two documents" 0 "docs 2${NL}total_len 2${NL}terms 2${NL}avgdl 1"

# ---------------------------------------------------------------- malformed JSONL
bad() { # NAME LINE... : writes the lines to $TMP/bad.jsonl
    local f=$TMP/bad.jsonl
    shift
    printf '%s\n' "$@" >"$f"
}
good='{"id":"g1","text":"good line"}'
bad x "$good" "" '{"id": "x", "text": }'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "invalid JSON names its line (blank lines counted)" 1 'bad.jsonl: line 3: invalid JSON'
run search stats "$DB" b1
check_err "a failed load leaves no index" 1 "no text index 'b1'"
grep -q 'nothing was indexed' <<<"$(
    "$SOP" search index "$DB" b1 "$TMP/bad.jsonl" 2>&1
)" && pass "the error says nothing was indexed" || fail "the error says nothing was indexed"
bad x "$good" '{"text": "no id"}'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "a missing id names its line" 1 'line 2: no "id" member'
bad x '{"id":"x","text":42}'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "a non-string text names its line" 1 'line 1: "text" is a number, not a string'
bad x "$good" "$good" '{"id":7,"text":"x"}'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "a non-string id names its line" 1 'line 3: "id" is a number, not a string'
bad x '["id","text"]'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "not an object" 1 'line 1: expected a JSON object, found an array'
bad x '{"id":"x","text":"t"} trailing'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "trailing garbage" 1 'line 1: invalid JSON at column'
bad x '{"id":"x","text":"t","fields":{"title":3}}'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "a non-string field" 1 'line 1: field "title" is a number'
bad x '{"id":"x","text":"t","fields":{"Title":"x"}}'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "a bad field name" 1 'line 1: field name "Title"'
bad x '{"id":"x","text":"t","fields":["a"]}'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "fields not an object" 1 'line 1: "fields" is an array'
bad x "$good" '{"id":"","text":"t"}'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "an empty id" 1 'line 2: "id" has 0 bytes'
bad x "$good" '{"id":"e","text":""}'
run search index "$DB" b1 "$TMP/bad.jsonl"
check_err "an empty document" 1 'line 2: an empty document'
run search index "$DB" b1 "$TMP/bad.jsonl" --skip-empty
check "--skip-empty" 0 "indexed 1 documents into b1: 1 new, 0 replaced, 1 empty skipped"
run search stats "$DB" b1
check "only the good document is indexed" 0 "docs 1${NL}total_len 2${NL}terms 2${NL}avgdl 2"
printf '{"id":"n","text":"a\0b"}\n' >"$TMP/nul.jsonl"
run search index "$DB" b2 "$TMP/nul.jsonl"
check_err "a NUL byte" 1 'line 1: a NUL byte at column 20'
run search index "$DB" b2 "$TMP/nope.jsonl"
check_err "an unreadable corpus" 1 'nope.jsonl'

# ---------------------------------------------------------------- --batch
bad x '{"id":"c1","text":"one"}' '{"id":"c2","text":"two"}' '{"id":"c3","text":"three"}' \
    '{"id":"c4","text":"four"}' '{"id":"c5"' '{"id":"c6","text":"six"}'
run search index "$DB" bat "$TMP/bad.jsonl" --batch 2
check_err "--batch: the error names the line" 1 'line 5: invalid JSON'
grep -q 'lines 1\.\.4 (4 documents) were committed' <<<"$ERR" &&
    pass "--batch: the error says what was committed" || fail "--batch: committed message" "$ERR"
run search stats "$DB" bat
check "--batch: the batches before the bad line are indexed" 0 \
    "docs 4${NL}total_len 4${NL}terms 4${NL}avgdl 1"
run search index "$DB" bat2 "$TMP/bad.jsonl" --batch 5
check_err "--batch 5: the bad line is in the first batch" 1 'line 5'
run search stats "$DB" bat2
check_err "--batch 5: nothing committed" 1 "no text index 'bat2'"
bad x '{"id":"c1","text":"one"}' '{"id":"c2","text":"two"}' '{"id":"c3","text":"three"}'
run search index "$DB" bat3 "$TMP/bad.jsonl" --batch 1
check "--batch 1" 0 "indexed 3 documents into bat3: 3 new, 0 replaced"
run search stats "$DB" bat3
check "--batch 1: all committed" 0 "docs 3${NL}total_len 3${NL}terms 3${NL}avgdl 1"

# ---------------------------------------------------------------- stdin, empty corpus
OUT=$(printf '%s\n' '{"id":"s1","text":"from stdin"}' |
    "$SOP" search index "$DB" sin - 2>"$TMP/stderr"); RC=$?; ERR=$(cat "$TMP/stderr")
check "a corpus from stdin" 0 "indexed 1 documents into sin: 1 new, 0 replaced"
: >"$TMP/empty.jsonl"
run search index "$DB" empty "$TMP/empty.jsonl"
check "an empty corpus" 0 "indexed 0 documents into empty: 0 new, 0 replaced"
run search stats "$DB" empty
check "an empty corpus creates an empty index" 0 "docs 0${NL}total_len 0${NL}terms 0${NL}avgdl 0"

# ---------------------------------------------------------------- fields
cat >"$TMP/fields.jsonl" <<'EOF'
{"id": "f1", "text": "a story about zebras", "fields": {"title": "Horses"}}
{"id": "f2", "text": "a story about horses", "fields": {"title": "Zebras", "note": ""}}
{"id": "f3", "fields": {"title": "Lions"}}
EOF
run search index "$DB" fld "$TMP/fields.jsonl"
check "index with fields" 0 "indexed 3 documents into fld: 3 new, 0 replaced"
run search query "$DB" fld -q "title:zebra"
if [ "$RC" = 0 ] && [[ "$OUT" == "1 "*" f2" ]]; then pass "a field query matches in that field only"
else fail "a field query matches in that field only" "$OUT" "$ERR"; fi
run search query "$DB" fld -q "zebra"
if [ "$RC" = 0 ] && [ "$(cut -d' ' -f3 <<<"$OUT" | sort | tr '\n' ' ')" = "f1 f2 " ]; then
    pass "fields are also indexed as text"; else fail "fields are also indexed as text" "$OUT"; fi
run search query "$DB" fld -q "lions"
if [ "$RC" = 0 ] && [[ "$OUT" == "1 "*" f3" ]]; then pass "a document of fields only"
else fail "a document of fields only" "$OUT" "$ERR"; fi

# ---------------------------------------------------------------- index options, UTF-8
# text "Café naïve Foxes" with an invalid byte (\xff) between two words
printf '{"id":"u1","text":"Caf\xc3\xa9\xffna\xc3\xafve Foxes"}\n' >"$TMP/utf8.jsonl"
run search index "$DB" stem "$TMP/utf8.jsonl"
check "invalid UTF-8 is accepted" 0 "indexed 1 documents into stem: 1 new, 0 replaced"
run search stats "$DB" stem
check "an invalid byte separates words" 0 "docs 1${NL}total_len 3${NL}terms 3${NL}avgdl 3"
run search query "$DB" stem -q "cafe fox"
if [ "$RC" = 0 ] && [[ "$OUT" == "1 "*" u1" ]]; then pass "folding and stemming by default"
else fail "folding and stemming by default" "$OUT" "$ERR"; fi
run search index "$DB" raw "$TMP/utf8.jsonl" --no-stem --no-fold --no-stopwords
check "--no-stem --no-fold --no-stopwords" 0 "indexed 1 documents into raw: 1 new, 0 replaced"
run search query "$DB" raw -q "fox"
check "--no-stem: no stemming" 0 ""
run search query "$DB" raw -q "Foxes"
if [ "$RC" = 0 ] && [[ "$OUT" == "1 "*" u1" ]]; then pass "--no-stem: the word as written"
else fail "--no-stem: the word as written" "$OUT" "$ERR"; fi
run search query "$DB" raw -q "foxes cafe"
check "--no-fold: no folding" 0 ""
printf '%s\n' '{"id":"w1","text":"the"}' >"$TMP/the.jsonl"
run search index "$DB" raw "$TMP/the.jsonl"
check "an existing index keeps its options" 0 "indexed 1 documents into raw: 1 new, 0 replaced"
[ -z "$ERR" ] && pass "no warning without options" || fail "no warning without options" "$ERR"
run search index "$DB" raw "$TMP/the.jsonl" --no-stem
check_err "options given for an existing index: a warning" 0 \
    "warning: text index 'raw' exists: --no-stem ignored"
run search query "$DB" raw -q "the"
if [ "$RC" = 0 ] && [[ "$OUT" == "1 "*" w1" ]]; then pass "--no-stopwords keeps stop words"
else fail "--no-stopwords keeps stop words" "$OUT" "$ERR"; fi

# ---------------------------------------------------------------- --id-key, --text-key
printf '%s\n' '{"_id":"b1","title":"x","body":"beir style"}' >"$TMP/beir.jsonl"
run search index "$DB" beir "$TMP/beir.jsonl" --id-key _id --text-key body
check "--id-key --text-key" 0 "indexed 1 documents into beir: 1 new, 0 replaced"
run search query "$DB" beir -q style
if [ "$RC" = 0 ] && [[ "$OUT" == "1 "*" b1" ]]; then pass "--text-key text is indexed"
else fail "--text-key text is indexed" "$OUT" "$ERR"; fi

# ---------------------------------------------------------------- del, drop
run search del "$DB" idx d5 nope
check_err "del of a missing id" 1 "no document 'nope'"
run search stats "$DB" idx
check "a failed del deletes nothing" 0 "docs 5${NL}total_len 14${NL}terms 9${NL}avgdl 2.8"
run search del "$DB" idx d5
check "del" 0 ""
run search stats "$DB" idx
check "del updates the statistics" 0 "docs 4${NL}total_len 12${NL}terms 8${NL}avgdl 3"
run search query "$DB" idx -q bread
check "a deleted document is not found" 0 ""
run search drop "$DB" dup
check "drop" 0 ""
run search stats "$DB" dup
check_err "a dropped index is gone" 1 "no text index 'dup'"
run search drop "$DB" dup
check_err "drop of a missing index" 1 "no text index 'dup'"

run check "$DB"
check "check a database with text indexes" 0 "ok"

# ---------------------------------------------------------------- damage
run search index "$TMP/cdb" c "$TMP/corpus.jsonl"
run check "$TMP/cdb"
check "check a fresh text index" 0 "ok"
cp -r "$TMP/cdb" "$TMP/cdb-bad"
run kv del -e "$TMP/cdb-bad" c.txt.doc '\x00d1'
check "kv del of a text index's document record" 0 ""
run check "$TMP/cdb-bad"
if [ "$RC" = 1 ] &&
    grep -q "^text index c: posting of term 'fox' for document 'd1', which has no record\$" <<<"$OUT" &&
    grep -q "^text index c: the document counter says 5, there are 4 document records\$" <<<"$OUT" &&
    [ "$(tail -n 1 <<<"$OUT")" = "8 problems" ]; then
    pass "check reports a document record removed from a text index"
else fail "check reports a document record removed from a text index" "rc=$RC" "$OUT" "$ERR"; fi
cp -r "$TMP/cdb" "$TMP/cdb-bad2"
run kv put -e "$TMP/cdb-bad2" c.txt.cfg N '\x09\x00\x00\x00\x00\x00\x00\x00'
run check "$TMP/cdb-bad2"
check "check reports a wrong document counter" 1 \
    "text index c: the document counter says 9, there are 5 document records${NL}1 problem"

finish

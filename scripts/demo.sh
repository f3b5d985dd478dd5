#!/usr/bin/env bash
# The quick start: installs what it needs, builds (Release), and runs the
# main job. Until the agents layer exists, the main job is an engine demo:
# the smallest program, a vector store beside a KV store, BM25 and hybrid
# search over a text index written in the same transaction, then the sop
# command line writing items in durable
# transactions, reading them by key and by range, the database's figures
# and its full integrity check. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build-essential cmake pkg-config libisal-dev libopenblas-dev libcjson-dev libcurl4-openssl-dev
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DSOP_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
sop=build/release/cli/sop
db=build/demo-db
rm -rf "$db"
mkdir -p "$db"

echo "== the smallest program (examples/kv_basic.c)"
build/release/examples/example_kv_basic "$db/basic"

echo
echo "== a vector store next to a KV store, one transaction (examples/vector_basic.c)"
build/release/examples/example_vector_basic "$db/vec"

echo
echo "== a text index, a vector store and a KV store, one transaction (examples/text_search.c)"
build/release/examples/example_text_search "$db/text"

echo
echo "== the sop command line"
$sop kv put "$db/cli" fruit apple green
$sop kv put "$db/cli" fruit banana yellow
$sop kv put "$db/cli" fruit cherry red
echo "\$ sop kv get $db/cli fruit banana"; $sop kv get "$db/cli" fruit banana
echo "\$ sop kv scan $db/cli fruit --from b"; $sop kv scan "$db/cli" fruit --from b
$sop kv del "$db/cli" fruit cherry
echo "\$ sop kv scan $db/cli fruit --json"; $sop kv scan "$db/cli" fruit --json
echo "\$ sop stats $db/cli"; $sop stats "$db/cli"
echo "\$ sop check $db/cli"; $sop check "$db/cli"

echo
echo "== text search from the command line (datasets/medical_notes.jsonl)"
echo "\$ sop search index $db/cli notes datasets/medical_notes.jsonl"
$sop search index "$db/cli" notes datasets/medical_notes.jsonl
echo "\$ sop search query $db/cli notes -q 'burning pain after meals' -k 3"
$sop search query "$db/cli" notes -q 'burning pain after meals' -k 3
echo "\$ sop search query $db/cli notes -q 'sudden breathless chest pain' -k 3"
$sop search query "$db/cli" notes -q 'sudden breathless chest pain' -k 3
echo "\$ sop search stats $db/cli notes"; $sop search stats "$db/cli" notes

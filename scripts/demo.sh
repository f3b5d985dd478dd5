#!/usr/bin/env bash
# The quick start: installs what it needs, builds (Release), and runs the
# main job: the nurse and doctor agents. `sop load` fills a database with
# their knowledge bases from the fallback files datasets/doctor.json and
# datasets/nurse.json, then `sop ask` puts a colloquial complaint to the
# pipeline agent: the nurse rewrites it into clinical terms, the doctor
# retrieves the conditions they point to and answers, with a local Ollama
# server when one answers ($OLLAMA_HOST, else 127.0.0.1:11434) and offline
# otherwise. Then a short engine demo: one transaction across a KV store, a
# vector store, a text index and a knowledge base; the sop command line on
# a KV store; BM25 text search. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build-essential cmake pkg-config libisal-dev libhiredis-dev libopenblas-dev libcjson-dev libcurl4-openssl-dev
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DSOP_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
sop=build/release/cli/sop
db=build/demo-db
rm -rf "$db"
mkdir -p "$db"
question="my tummy hurts and I feel hot"

echo "== knowledge bases from the fallback files (docs/fallback-format.md)"
echo "\$ sop load $db/rag datasets/doctor.json"
$sop load "$db/rag" datasets/doctor.json --batch 25
echo "\$ sop load $db/rag datasets/nurse.json"
$sop load "$db/rag" datasets/nurse.json --batch 100

echo
echo "== the pipeline agent: the nurse, then the doctor (an illustration, not medical advice)"
# No --offline: a local Ollama server is used when it answers; without one
# (or when its model fails) the agent says so and answers offline.
echo "\$ sop ask $db/rag \"$question\""
$sop ask "$db/rag" "$question"

echo
echo "== one transaction across a KV store, a vector store, a text index and a knowledge base (examples/txn_across_stores.c)"
build/release/examples/example_txn_across_stores "$db/txn"

echo
echo "== the sop command line: durable transactions on a KV store"
$sop kv put "$db/cli" fruit apple green
$sop kv put "$db/cli" fruit banana yellow
$sop kv put "$db/cli" fruit cherry red
echo "\$ sop kv get $db/cli fruit banana"; $sop kv get "$db/cli" fruit banana
echo "\$ sop kv scan $db/cli fruit --from b"; $sop kv scan "$db/cli" fruit --from b
echo "\$ sop check $db/cli"; $sop check "$db/cli"

echo
echo "== BM25 text search from the command line (datasets/medical_notes.jsonl)"
echo "\$ sop search index $db/cli notes datasets/medical_notes.jsonl"
$sop search index "$db/cli" notes datasets/medical_notes.jsonl
echo "\$ sop search query $db/cli notes -q 'burning pain after meals' -k 3"
$sop search query "$db/cli" notes -q 'burning pain after meals' -k 3

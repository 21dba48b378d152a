#!/usr/bin/env bash
# Exact search over 100k vectors of 3072 dimensions in SQLite, against memory bandwidth.
# usage: bench/search/run.sh [BUILD_DIR] [BUILD_TYPE, default Release]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-bench}
"$root/scripts/build.sh" "$build" "${2:-Release}" -DLENS_BUILD_TESTS=OFF >/dev/null
work=$(mktemp -d /tmp/lens-bench-search.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$build/tools/sample-corpus/lens-sample-corpus" --sqlite "$work/lens.db" --conversations 40500 2>/dev/null
(cd "$work" && "$build/apps/lens-embed/lens-embed" run --db "sqlite:lens.db" --dimensions 3072 --limit 100000 --quiet >/dev/null)
rows=$(sqlite3 "$work/lens.db" "select count(*) from message_embeddings")
"$build/bench/search/bench_search" "$work/lens.db" local-hash local-hash-v1 3072 "$rows"

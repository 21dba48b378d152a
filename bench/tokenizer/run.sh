#!/usr/bin/env bash
# Tokenizer benchmark: builds bench_tokenizer, generates the mixed corpus (>= 20 MB, not
# committed), measures lens_tokenizer, then tiktoken's npm builds on the same corpus in the
# same run, and prints throughput ratios and whether all ids are identical.
# Usage: bench/tokenizer/run.sh [BUILD_DIR] [SIZE_MB]   (env RUNS: best-of runs, default 3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build-bench}"
size_mb="${2:-24}"
runs="${RUNS:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ ! -x "$build/bench/tokenizer/bench_tokenizer" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target bench_tokenizer -j"$(nproc)" >/dev/null

(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

echo "== lens_tokenizer (C++, $(g++ -dumpfullversion), single thread)"
"$build/bench/tokenizer/bench_tokenizer" --size-mb "$size_mb" --runs "$runs" \
  --write-corpus "$work/corpus.bin" --json "$work/lens.json"
echo
echo "== tiktoken builds from npm (node $(node --version)), same corpus"
node "$here/node/bench.mjs" "$work/corpus.bin" "$work/lens.json" "$runs"

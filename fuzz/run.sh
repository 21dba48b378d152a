#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each for SECONDS
# (default 60) from its committed seed corpus. Exits non-zero on the first crash.
# usage: fuzz/run.sh [SECONDS] [TARGET...]   targets: response_parser dotenv config tokenizer
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(response_parser dotenv config tokenizer)
build=${LENS_FUZZ_BUILD_DIR:-$root/build-fuzz}

command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
CC=clang CXX=clang++ cmake -S "$root/fuzz" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null

export LENS_DATA_DIR="$root/data"  # the tokenizer's rank tables
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# One target per core at a time (CI has 2): the wall time is about SECONDS x targets / cores.
fuzz_one() {
  local t=$1
  # New inputs go to a scratch corpus (first directory); the committed seeds stay as they are.
  local work="$build/corpus/$t"
  mkdir -p "$work" "$build/artifacts"
  "$build/fuzz_$t" "$work" "$root/fuzz/$t/corpus" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
    >"$build/$t.log" 2>&1
}
jobs=$(nproc)
failed=()
for ((i = 0; i < ${#targets[@]}; i += jobs)); do
  wave=("${targets[@]:i:jobs}")
  declare -A pids=()
  for t in "${wave[@]}"; do
    echo "== fuzz $t for ${seconds}s"
    fuzz_one "$t" &
    pids[$t]=$!
  done
  for t in "${wave[@]}"; do
    if wait "${pids[$t]}"; then
      echo "$t: $(grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$build/$t.log" | tr '\n' ' ')"
    else
      tail -60 "$build/$t.log" >&2
      echo "fuzz: $t found a crash; reproduce with: $build/fuzz_$t $build/artifacts/$t-*" >&2
      failed+=("$t")
    fi
  done
  unset pids
done
[ ${#failed[@]} -eq 0 ]

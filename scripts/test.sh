#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every ctest test, then
# builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs them again
# (the slow, chaos, partition and package tests excepted: they ran in the first pass), runs
# the concurrent parts under ThreadSanitizer and each libFuzzer target for 60 s
# (LENS_FUZZ_SECONDS), one per core at a time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
jobs=$(nproc)

echo "== format check"
"$root/scripts/check-format.sh"

# Release, as the demo and the benchmarks build: g++ 12 warns (errors here) at -O3 about
# code that -O2 lets pass, and a demo that does not build must fail CI.
echo "== build (Release) and test"
"$root/scripts/build.sh" "$root/build-test" Release -DLENS_BUILD_BENCH=OFF
(cd "$root/build-test" && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== build with ASan + UBSan and test"
# Not the tests labelled slow, chaos or partition (they wait on processes, kills, restarts
# and the clock; the first pass ran them), nor the .deb (packaging, not memory), nor the
# peak-memory tests (BatchClient.Large*): ASan keeps up to 256 MB of freed memory in
# quarantine, so a peak RSS under it measures the sanitizer.
"$root/scripts/build.sh" "$root/build-asan" Debug -DLENS_SANITIZE=ON -DLENS_BUILD_BENCH=OFF
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs" --timeout 900 -LE 'chaos|partition|package|slow' -E '^BatchClient\.Large')

echo "== build with ThreadSanitizer; test the pipeline's queues and threads and the rate control"
cmake -S "$root" -B "$root/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLENS_TSAN=ON -DLENS_BUILD_BENCH=OFF >/dev/null
cmake --build "$root/build-tsan" -j"$jobs" --target pipeline_test
# The OpenAI client tests are not run under TSan yet: under TSan on 2 busy cores their
# requests to the in-process stand-in timed out (the fixture's timeout was 5 s; it is
# 60 s now, not yet tried under TSan), which says nothing about races.
# Run them by hand: ctest -R '^OpenAiClient\.' -j1 in build-tsan on an idle machine.
# Serially, and with Debian's uninstrumented cpp-httplib (the stand-in) silenced.
(cd "$root/build-tsan" && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/chaos/tsan-suppressions.txt \
  ctest --output-on-failure -j1 --timeout 600 -R '^(PipelineTest|RateController)\.')

echo "== fuzz: each libFuzzer target for ${LENS_FUZZ_SECONDS:-60} s"
"$root/fuzz/run.sh" "${LENS_FUZZ_SECONDS:-60}"

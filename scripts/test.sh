#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every ctest test, then
# builds again with AddressSanitizer + UndefinedBehaviorSanitizer and runs them again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
jobs=$(nproc)

echo "== format check"
"$root/scripts/check-format.sh"

echo "== build (RelWithDebInfo) and test"
"$root/scripts/build.sh" "$root/build-test" RelWithDebInfo -DLENS_BUILD_BENCH=OFF
(cd "$root/build-test" && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== build with ASan + UBSan and test"
"$root/scripts/build.sh" "$root/build-asan" Debug -DLENS_SANITIZE=ON -DLENS_BUILD_BENCH=OFF
(cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs" --timeout 900)

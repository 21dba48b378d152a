#!/usr/bin/env bash
# Fails when a C++ file of ours differs from what clang-format (.clang-format) makes of it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v clang-format >/dev/null || { echo "check-format: clang-format not installed" >&2; exit 1; }
bad=0
while IFS= read -r f; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "needs formatting: $f (run: clang-format -i $f)" >&2
    bad=1
  fi
done < <(git ls-files '*.cpp' '*.h')
exit $bad

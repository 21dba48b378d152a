#!/usr/bin/env bash
# Configures and builds lens-embed into a build directory.
# usage: scripts/build.sh BUILD_DIR [Release|RelWithDebInfo|Debug] [extra cmake args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?build dir}
type=${2:-Release}
shift $(( $# >= 2 ? 2 : 1 ))
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"

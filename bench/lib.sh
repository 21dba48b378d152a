# shellcheck shell=bash disable=SC2016,SC2034
# Shared set-up of the bench scripts, sourced after `set -euo pipefail`:
#   bench_setup NAME [BUILD_DIR]  root, build, bin and gen (the lens-embed binary and the
#                                 sample-corpus generator of BUILD_DIR, default build-bench,
#                                 built Release when missing; an existing build is used as it
#                                 is: say its type beside the figures), and work: a fresh
#                                 folder /tmp/lens-bench-NAME.*, removed on exit
#   bench_postgres                a throwaway PostgreSQL 15 (scripts/pg-test-server.sh) in
#                                 $work, stopped on exit: url (its postgres database), base
#                                 (url without the database); PG_TEST_SHARED_BUFFERS default 1GB
#   bench_timed CMD...            runs CMD (stdout to $work/out.txt) and prints
#                                 "seconds cpu_seconds peak_rss_kib"; on failure prints its
#                                 stderr and exits 1
#   bench_on_exit 'COMMAND'       one more thing to do on exit (run before the others)
bench_exit_actions=()
bench_on_exit() { bench_exit_actions=("$1" "${bench_exit_actions[@]}"); }
bench_exit() {
  local action
  for action in "${bench_exit_actions[@]}"; do eval "$action" || true; done
}
trap bench_exit EXIT

bench_setup() {
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  build=$(realpath -m "${2:-$root/build-bench}")
  bin="$build/apps/lens-embed/lens-embed"
  gen="$build/tools/sample-corpus/lens-sample-corpus"
  [ -x "$bin" ] || "$root/scripts/build.sh" "$build" Release -DLENS_BUILD_TESTS=OFF >/dev/null
  work=$(mktemp -d "/tmp/lens-bench-$1.XXXXXX")
  bench_on_exit 'rm -rf "$work"'
}

bench_postgres() {
  export PG_TEST_SHARED_BUFFERS=${PG_TEST_SHARED_BUFFERS:-1GB}
  url=$("$root/scripts/pg-test-server.sh" start "$work/pg.env")
  bench_on_exit '"$root/scripts/pg-test-server.sh" stop "$work/pg.env" >/dev/null 2>&1'
  base=${url%/*}
}

bench_timed() {
  /usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" "$@" >"$work/out.txt" 2>"$work/err.txt" ||
    { cat "$work/err.txt" >&2; exit 1; }
  awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$work/time.txt"
}

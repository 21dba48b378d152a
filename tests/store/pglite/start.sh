#!/usr/bin/env bash
# Starts the PGlite+pgvector test server (node) in the background; stops it with `stop`.
# Usage: start.sh start PORT_FILE  |  start.sh stop PORT_FILE
# Installs the pinned npm packages on first use. Fails loudly if it cannot start.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
action=${1:?start|stop}
port_file=${2:?PORT_FILE}
pid_file="$port_file.pid"

case $action in
  start)
    command -v node >/dev/null || { echo "pglite: node is not installed" >&2; exit 1; }
    # Under a lock: several tests (ctest -j) may start a server at once on a fresh
    # checkout, and two `npm ci` in one folder break each other.
    (
      flock 9
      if [ ! -d "$here/node_modules/@electric-sql/pglite-socket" ]; then
        (cd "$here" && npm ci --no-audit --no-fund --silent) || { echo "pglite: npm ci failed" >&2; exit 1; }
      fi
    ) 9>"${TMPDIR:-/tmp}/lens-pglite-npm-$(printf %s "$here" | md5sum | cut -c1-12).lock"
    rm -f "$port_file"
    nohup node "$here/server.mjs" "$port_file" >"$port_file.log" 2>&1 &
    echo $! >"$pid_file"
    for _ in $(seq 1 120); do
      [ -s "$port_file" ] && { echo "pglite: listening on port $(cat "$port_file")"; exit 0; }
      kill -0 "$(cat "$pid_file")" 2>/dev/null || break
      sleep 0.5
    done
    echo "pglite: server did not start:" >&2
    cat "$port_file.log" >&2 || true
    exit 1
    ;;
  stop)
    [ -f "$pid_file" ] && kill "$(cat "$pid_file")" 2>/dev/null || true
    rm -f "$pid_file" "$port_file"
    ;;
esac

#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL 15 for tests (fsync off, 127.0.0.1, free port).
# Usage:
#   pg-test-server.sh start [STATE_FILE] [--durable]
#                                          prints the connection URL; STATE_FILE (optional)
#                                          receives PGTEST_DIR=..., PGTEST_URL=... lines.
#                                          --durable: synchronous_commit=on, so a crash
#                                          (restart) keeps every acknowledged commit
#   pg-test-server.sh stop STATE_FILE|DIR  stops it (-m immediate) and removes its directory
#   pg-test-server.sh restart STATE_FILE|DIR [SECONDS]  crash-stop, stay down SECONDS, start again
# PG_TEST_SHARED_BUFFERS (default 128MB) sizes the buffer cache (the benchmarks use 1GB).
# PG_TEST_LISTEN_ADDRESSES (default 127.0.0.1) and PG_TEST_TRUST_CIDR (a network whose
# clients are trusted, e.g. 10.213.0.0/16) serve clients in other network namespaces
# (tests/partition).
# Exits non-zero with a message when PostgreSQL cannot start: tests must fail, not skip.
set -euo pipefail

bin_dir=${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}

die() { echo "pg-test-server: $*" >&2; exit 1; }

# Run a server binary as `postgres` when we are root (initdb and postgres refuse root).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    ss -Htln "sport = :$1" 2>/dev/null | grep -q .
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  return 1
}

resolve_dir() {  # STATE_FILE or DIR -> data parent dir
  local arg=$1
  if [ -f "$arg" ]; then
    # shellcheck disable=SC1090
    (. "$arg"; echo "$PGTEST_DIR")
  else
    echo "$arg"
  fi
}

start_in() {  # DIR PORT -> 0 when the server is up
  local dir=$1 port=$2
  # fsync off is safe against a server crash (the OS keeps the WAL); synchronous_commit
  # off is not: --durable turns it on for tests that crash the server.
  local sync=off
  [ -f "$dir/durable" ] && sync=on
  as_pg "$bin_dir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=${PG_TEST_LISTEN_ADDRESSES:-127.0.0.1} -c fsync=off -c synchronous_commit=$sync -c full_page_writes=off -c max_connections=100 -c shared_buffers=${PG_TEST_SHARED_BUFFERS:-128MB}" \
    start >/dev/null
}

cmd_start() {
  local state_file="" durable=0
  for a in "$@"; do
    case $a in
      --durable) durable=1 ;;
      *) state_file=$a ;;
    esac
  done
  [ -x "$bin_dir/initdb" ] || die "no $bin_dir/initdb: install postgresql-15 (scripts/install-deps.sh)"
  # Short path under /tmp: the unix socket path must stay below 108 bytes.
  local dir
  dir=$(mktemp -d /tmp/lens-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  if ! as_pg "$bin_dir/initdb" -D "$dir/data" --no-sync -A trust -U postgres -E UTF8 \
      --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    die "initdb failed"
  fi
  [ "$durable" -eq 1 ] && touch "$dir/durable"
  if [ -n "${PG_TEST_TRUST_CIDR:-}" ]; then
    echo "host all all $PG_TEST_TRUST_CIDR trust" >>"$dir/data/pg_hba.conf"
  fi
  local port ok=0
  for _ in 1 2 3 4 5; do
    port=$(pick_port) || die "no free port"
    if start_in "$dir" "$port"; then ok=1; break; fi
  done
  if [ "$ok" -ne 1 ]; then
    cat "$dir/server.log" >&2 || true
    rm -rf "$dir"
    die "postgres did not start"
  fi
  echo "$port" >"$dir/port"
  local url="postgresql://postgres@127.0.0.1:$port/postgres"
  if [ -n "$state_file" ]; then
    printf 'PGTEST_DIR=%s\nPGTEST_PORT=%s\nPGTEST_URL=%s\n' "$dir" "$port" "$url" >"$state_file"
  fi
  echo "$url"
}

cmd_stop() {
  local arg=${1:?stop needs STATE_FILE or DIR}
  local dir
  dir=$(resolve_dir "$arg")
  [ -n "$dir" ] && [ -d "$dir/data" ] || { [ -f "$arg" ] && rm -f "$arg"; return 0; }
  as_pg "$bin_dir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  # A server still starting up (crash recovery under load) may not answer pg_ctl yet:
  # its own pid file names the postmaster to end.
  if [ -f "$dir/data/postmaster.pid" ]; then
    kill -9 "$(head -1 "$dir/data/postmaster.pid")" 2>/dev/null || true
    sleep 0.2
  fi
  rm -rf "$dir"
  [ -f "$arg" ] && rm -f "$arg"
  return 0
}

cmd_restart() {
  local dir
  dir=$(resolve_dir "${1:?restart needs STATE_FILE or DIR}")
  local down=${2:-1}
  as_pg "$bin_dir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  sleep "$down"
  start_in "$dir" "$(cat "$dir/port")" || { cat "$dir/server.log" >&2; die "restart failed"; }
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  restart) shift; cmd_restart "$@" ;;
  *) die "usage: $0 start [STATE_FILE] | stop STATE_FILE|DIR | restart STATE_FILE|DIR [SECONDS]" ;;
esac

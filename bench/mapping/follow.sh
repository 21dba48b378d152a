#!/usr/bin/env bash
# Issue 12's --follow figure: on schema (a) (no updated_at) with `init --track-changes`, how
# long a new exchange takes to be embedded by a running `run --follow`, and what each
# wake-up costs, at two sizes of the table (work per wake-up must not grow with it).
# For each size: MESSAGES messages (half user messages, each answered by the next), a full
# local-hash run, then `run --follow` in the background; EDITS times: insert a user message
# and its reply in one transaction and wait for its row (latency), with a pause between.
# CPU per wake-up: the follow process's and PostgreSQL's CPU over the edits, divided by
# their number (PostgreSQL's includes this script's own inserts and polls, the same at each
# size); buffers per wake-up: the database's shared-buffer accesses (pg_stat_database
# blks_hit + blks_read) over the edits, divided likewise: a count, not a time, so it does
# not depend on the machine's load.
# usage: bench/mapping/follow.sh [BUILD_DIR]   SIZES="100000 1000000" EDITS=20
set -euo pipefail
sizes=${SIZES:-100000 1000000}
edits=${EDITS:-20}
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/../lib.sh"
bench_setup follow "${1:-}"
bench_postgres
follow_pid=
bench_on_exit '[ -z "$follow_pid" ] || { kill "$follow_pid" 2>/dev/null && wait "$follow_pid" 2>/dev/null; }'
cp "$root/bench/mapping/schema_a.toml" "$work/a.toml"
cpu_ticks() {  # utime + stime of the processes given, in clock ticks
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}
pg_pids() { pgrep -f "postgres.*$(sed -n 's/^PGTEST_DIR=//p' "$work/pg.env")" | tr '\n' ' '; }
hz=$(getconf CLK_TCK)
cd "$work"
for n in $sizes; do
  db="$base/follow_$n"
  psql -qX -v ON_ERROR_STOP=1 "$url" -c "CREATE DATABASE follow_$n"
  psql -qX -v ON_ERROR_STOP=1 "$db" <<SQL
$(sed 's/\${source_schema}/lens_a/g' "$root/tests/support/schemas/a_qualified_bigint.postgres.sql")
INSERT INTO lens_a.chat_messages (thread_no, author_role, body, posted_at, is_deleted)
  SELECT 700000 + (g - 1) / 4, CASE WHEN g % 2 = 1 THEN 'student' ELSE 'tutor' END,
         'Message ' || g || ' about ' || md5(g::text) || repeat(' and some more words of a chat', 8),
         '2024-01-01'::timestamptz + g * interval '1 second', g % 10 = 0
  FROM generate_series(1, $n) g ORDER BY g;
VACUUM ANALYZE;
SQL
  "$bin" init --db "$db" --config a.toml --source-indexes --track-changes >/dev/null
  "$bin" run --db "$db" --config a.toml --quiet >/dev/null
  # So that no autovacuum of the rows just written runs (and counts) during the edits.
  psql -qX -v ON_ERROR_STOP=1 "$db" -c "VACUUM ANALYZE"
  "$bin" run --db "$db" --config a.toml --follow --quiet --verbose --log-file "follow_$n.log" &
  follow_pid=$!
  # Past its first pass (over the whole keyset): from then on wake-ups read the queue only.
  for ((t = 0; t < 600; ++t)); do
    grep -q "next passes read only what the change queue names" "follow_$n.log" 2>/dev/null && break
    sleep 0.5
  done
  sleep 5  # its backend reports the first pass's counts within a second or two of going idle
  blocks() { psql -qAtX "$db" -c "SELECT blks_hit + blks_read FROM pg_stat_database WHERE datname = current_database()"; }
  cpu0=$(cpu_ticks "$follow_pid"); pg0=$(cpu_ticks $(pg_pids)); blk0=$(blocks)
  : >"lat_$n"
  for ((i = 0; i < edits; ++i)); do
    thread=$((900000000 + i))
    t0=$(date +%s.%N)
    id=$(psql -qAtX -v ON_ERROR_STOP=1 "$db" -c "WITH u AS (INSERT INTO lens_a.chat_messages (thread_no, author_role, body, posted_at) VALUES ($thread, 'student', 'A new question $i from the bench', now()) RETURNING message_no), r AS (INSERT INTO lens_a.chat_messages (thread_no, author_role, body, posted_at) VALUES ($thread, 'tutor', 'Its answer $i', now() + interval '1 second')) SELECT message_no FROM u")
    until [ "$(psql -qAtX "$db" -c "SELECT count(*) FROM message_embeddings WHERE provider = 'local-hash' AND model = 'local-hash-v1' AND user_message_id = $id")" = 1 ]; do
      sleep 0.02
      if (($(echo "$(date +%s.%N) - $t0 > 30" | bc))); then echo "exchange $id not embedded within 30 s" >&2; exit 1; fi
    done
    echo "$(date +%s.%N) - $t0" | bc -l >>"lat_$n"
    sleep 0.5
  done
  cpu1=$(cpu_ticks "$follow_pid"); pg1=$(cpu_ticks $(pg_pids))
  kill "$follow_pid"; wait "$follow_pid" 2>/dev/null || true; follow_pid=
  sleep 1; blk1=$(blocks)  # a backend reports its counts when it ends (or when idle, late)
  sort -g "lat_$n" | awk -v n="$n" -v e="$edits" -v c="$((cpu1 - cpu0))" -v p="$((pg1 - pg0))" -v hz="$hz" \
    -v b="$((blk1 - blk0))" \
    '{v[NR]=$1} END {printf "%8d messages: new exchange embedded in median %.2f s, max %.2f s (%d edits); CPU per wake-up: follow %.1f ms, PostgreSQL %.1f ms; buffers per wake-up %.0f\n", n, v[int((NR+1)/2)], v[NR], e, 1000*c/hz/e, 1000*p/hz/e, b/e}'
done
